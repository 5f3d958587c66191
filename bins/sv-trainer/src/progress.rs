//! Training progress on standard error: a bar on a terminal, a line every ten seconds
//! otherwise, and a line per epoch with its validation scores.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use sv_train::finetune::Event;

/// Renders events as a progress bar on a terminal, as periodic lines otherwise.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    pub(crate) fn new() -> Self {
        Self {
            bar: None,
            started: Instant::now(),
            last_line: Instant::now(),
        }
    }

    pub(crate) fn event(&mut self, e: Event) {
        let tty = std::io::stderr().is_terminal();
        match e {
            Event::Step {
                step,
                total,
                loss,
                lr,
            } => {
                if tty {
                    let bar = self.bar.get_or_insert_with(|| {
                        let b = ProgressBar::new(total);
                        b.set_style(
                            ProgressStyle::with_template(
                                "{elapsed_precise} [{bar:30}] {pos}/{len} steps {msg} (eta {eta})",
                            )
                            .expect("valid template")
                            .progress_chars("=> "),
                        );
                        b
                    });
                    bar.set_position(step);
                    bar.set_message(format!("loss {loss:.4} lr {lr:.2e}"));
                } else if self.last_line.elapsed().as_secs() >= 10 || step == total {
                    self.last_line = Instant::now();
                    eprintln!(
                        "step {step}/{total} loss {loss:.4} lr {lr:.2e} ({:.0} s)",
                        self.started.elapsed().as_secs_f64()
                    );
                }
            }
            Event::Epoch {
                epoch,
                report,
                left_out,
            } => {
                let mut line = format!(
                    "epoch {} validation: accuracy {:.3}, MCC {:.3}, ROC-AUC {}",
                    epoch + 1,
                    report.accuracy,
                    report.mcc,
                    report.roc_auc.map_or("-".into(), |a| format!("{a:.3}"))
                );
                if left_out > 0 {
                    let what = if left_out == 1 { "image" } else { "images" };
                    line.push_str(&format!(
                        "; {left_out} training {what} could not be read or decoded and left out"
                    ));
                }
                match &self.bar {
                    Some(b) => b.println(line),
                    None => eprintln!("{line}"),
                }
            }
            Event::Checkpoint { .. } => {}
            Event::Resumed { position } => eprintln!(
                "resuming at epoch {}, batch {} (step {})",
                position.epoch + 1,
                position.batch,
                position.step
            ),
        }
    }

    pub(crate) fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
