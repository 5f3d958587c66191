//! `sv-trainer finetune` and `sv-trainer quickstart`: flags onto sv-train's fine-tuning.

use std::time::Instant;

use anyhow::Result;
use sv_cli::{Interrupted, Output};
use sv_train::TrainError;
use sv_train::finetune::{Data, FinetuneConfig, RunDir, finetune};
use sv_train::quickstart;

use crate::args::{FinetuneArgs, QuickstartArgs};
use crate::progress::Progress;
use crate::spot;
use crate::{report_line, training_device};

pub(crate) fn run_finetune(a: FinetuneArgs) -> Result<()> {
    let out = Output::new(a.json);
    let run = RunDir {
        root: a.run_dir.clone(),
    };
    let overrides = sv_train::overrides::FinetuneOverrides {
        model: a.model,
        epochs: a.epochs,
        batch_size: a.batch_size,
        lr: a.lr,
        backbone_lr: a.backbone_lr,
        augment: a.augment,
        seed: a.seed,
        checkpoint_every: a.checkpoint_every,
        incremental: a.incremental,
        hard_negatives: a.hard_negatives,
        precision: a.precision,
        gradient_checkpointing: a.gradient_checkpointing,
    };
    let resume = a.resume.is_some();
    let from_hub = spot::resume_source(a.resume.as_deref())?;
    if let Some(source) = &from_hub {
        // Refused before anything is downloaded, as a local resume refuses it.
        if a.config.is_some() || !overrides.is_empty() {
            anyhow::bail!(
                "--resume {source}: a resumed run continues with its own config.toml; drop the other settings"
            );
        }
        spot::restore(source, &run)?;
    }
    let config = FinetuneConfig::layered(&run, resume, a.config.as_deref(), &overrides)?;
    if !resume {
        sv_train::finetune::refuse_own_source(&config, &run)?;
        run.prepare_new(a.force)?;
    }
    let samples = sv_data::read_manifest(&a.manifest)?;
    let data = Data::from_samples(samples)?;
    let device = training_device(&a.device)?;
    let sync = spot::start_sync(a.checkpoint_sync.as_deref())?;
    spot::stop_on_signals()?;
    let mut progress = Progress::new();
    let report = finetune(&config, &data, &run, resume, &device, &mut |e| {
        spot::on_event(sync.as_ref(), &run, &e);
        progress.event(e)
    });
    progress.finish();
    if let (Some(sync), Ok(_)) = (&sync, &report)
        && let Err(e) = sync.push_final(&run)
    {
        eprintln!("sv-trainer: warning: the final model was not pushed: {e}");
    }
    let pushed = spot::finish_sync(sync);
    let report = match report {
        Ok(report) => report,
        Err(e @ TrainError::Stopped { .. }) => {
            let again = match &a.checkpoint_sync {
                Some(target) => format!(
                    "; `--resume` with the same --run-dir continues, or `--resume {target}` on another machine"
                ),
                None => "; `--resume` with the same --run-dir continues".to_string(),
            };
            return Err(Interrupted(format!("{e}{again}")).into());
        }
        Err(e) => return Err(e.into()),
    };
    out.line(report_line("validation", &report));
    out.line(format!("run: {}", run.root.display()));
    out.result(&serde_json::json!({
        "run": run.root,
        "model": run.model(),
        "validation": report,
        "checkpoint_sync": pushed,
    }))
}

pub(crate) fn run_quickstart(a: QuickstartArgs) -> Result<()> {
    let out = Output::new(a.json);
    let started = Instant::now();
    let layout = quickstart::Layout::under(&a.dir);
    eprintln!(
        "rendering {} synthetic street scenes into {}",
        a.scenes,
        layout.data.display()
    );
    let (data, test, config) = quickstart::prepare(&layout, a.scenes, a.epochs, a.seed)?;
    eprintln!(
        "training {} on {} images ({} validation) for {} epochs",
        config.model,
        data.train.len(),
        data.val.len(),
        config.epochs
    );
    let run = RunDir {
        root: layout.run.clone(),
    };
    let device = training_device("cpu")?;
    let mut progress = Progress::new();
    let report = finetune(&config, &data, &run, false, &device, &mut |e| {
        progress.event(e)
    });
    progress.finish();
    let report = report?;
    out.line(report_line("validation", &report));
    let test_report = quickstart::test_and_export(&layout, &run, &config, &test, &device.inner())?;
    out.line(report_line("test", &test_report));
    out.line(format!("data:      {}", layout.manifest.display()));
    out.line(format!("pipeline:  {}", layout.pipeline.display()));
    out.line(format!(
        "export:    {} (transformers layout; `sv-trainer export --hotkey` adds the subnet's model_card.json)",
        layout.export.display()
    ));
    out.line(format!(
        "run:       {} (config.toml, metrics.jsonl, model.safetensors, eval.json, plots/)",
        run.root.display()
    ));
    let seconds = started.elapsed().as_secs_f64();
    out.line(format!("took {seconds:.0} s"));
    out.result(&serde_json::json!({
        "validation": report,
        "test": test_report,
        "data": layout.manifest,
        "pipeline": layout.pipeline,
        "export": layout.export,
        "run": run.root,
        "seconds": seconds,
    }))
}
