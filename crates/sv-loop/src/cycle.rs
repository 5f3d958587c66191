//! Running a cycle: find the unfinished one (or start the next when production is old
//! enough), run its steps from the first without a journal entry, and journal each.

use std::path::{Path, PathBuf};

use crate::config::LoopConfig;
use crate::error::{LoopError, Result};
use crate::journal::{Entry, Journal, Outcome, Production, read_json};
use crate::step::Step;

/// Unix seconds now.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A step's error, boxed with its name.
pub(crate) fn step_error(
    step: Step,
    e: impl std::error::Error + Send + Sync + 'static,
) -> LoopError {
    LoopError::Step {
        step: step.name(),
        source: Box::new(e),
    }
}

/// `work/production.json`.
pub fn production_file(work: &Path) -> PathBuf {
    work.join("production.json")
}

/// The cycle being run: its folder, journal and devices.
pub(crate) struct Cycle<'a> {
    pub(crate) config: &'a LoopConfig,
    pub(crate) work: PathBuf,
    pub(crate) dir: PathBuf,
    pub(crate) journal: Journal,
    pub(crate) device: sv_models::Device,
    pub(crate) train_device: burn::tensor::Device,
    /// The hotkey that signs the card and the registration.
    pub(crate) hotkey: sv_axon::Hotkey,
}

impl Cycle<'_> {
    /// A file of the cycle's folder.
    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// What happens on the next run (what `--dry-run` prints).
#[derive(Debug, Clone)]
pub struct Plan {
    /// The cycle's number.
    pub cycle: u32,
    /// Its folder.
    pub dir: PathBuf,
    /// An unfinished cycle is continued (else a new one starts).
    pub resuming: bool,
    /// Production's run directory.
    pub production: PathBuf,
    /// Production's age in days, when known.
    pub age_days: Option<f64>,
    /// Whether the cycle runs: resuming, or production is at least `retrain_after_days`
    /// old (or its age is unknown).
    pub due: bool,
    /// Each step and its entry when already done.
    pub steps: Vec<(Step, Option<Entry>)>,
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let age = self
            .age_days
            .map_or("unknown age".to_string(), |d| format!("{d:.1} days old"));
        writeln!(f, "production: {} ({age})", self.production.display())?;
        if !self.due {
            return writeln!(f, "not due: nothing to run");
        }
        writeln!(
            f,
            "cycle {} in {} ({})",
            self.cycle,
            self.dir.display(),
            if self.resuming { "continuing" } else { "new" }
        )?;
        for (i, (step, entry)) in self.steps.iter().enumerate() {
            let status = match entry {
                Some(e) => format!("done: {}", e.note),
                None => format!("to do: {} → {}", step.what(), step.outputs().join(", ")),
            };
            writeln!(f, "  {:>2}. {:<9} {status}", i + 1, step.name())?;
        }
        Ok(())
    }
}

/// The production record, or the configured starting model before the first.
pub fn current_production(config: &LoopConfig) -> Result<Production> {
    let file = production_file(&config.work_dir);
    if file.exists() {
        return read_json(&file);
    }
    let submission_time =
        sv_records::card::CardStamp::read(&config.production.join("model_card.json"))
            .and_then(|c| c.submission_time);
    Ok(Production {
        run: config.production.clone(),
        export: None,
        repo: None,
        commit: None,
        submission_time,
        cycle: None,
    })
}

/// The latest cycle's number and folder, if any.
fn latest_cycle(work: &Path) -> Result<Option<(u32, PathBuf)>> {
    let dir = work.join("cycles");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(None);
    };
    let mut best = None;
    for e in entries {
        let e = e.map_err(|e| LoopError::io(&dir, e))?;
        let n = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok());
        if let Some(n) = n
            && best.as_ref().is_none_or(|(b, _)| n > *b)
        {
            best = Some((n, e.path()));
        }
    }
    Ok(best)
}

fn cycle_dir(work: &Path, n: u32) -> PathBuf {
    work.join("cycles").join(format!("{n:04}"))
}

/// The plan of the next run at `now`.
pub fn plan(config: &LoopConfig, now: u64) -> Result<Plan> {
    let production = current_production(config)?;
    let latest = latest_cycle(&config.work_dir)?;
    let unfinished = match &latest {
        Some((n, dir)) => match Journal::load(dir) {
            Ok(j) if j.outcome.is_some() => None,
            Ok(j) => Some((*n, dir.clone(), Some(j))),
            // Killed before its journal was first written.
            Err(_) if !Journal::file(dir).exists() => Some((*n, dir.clone(), None)),
            Err(e) => return Err(e),
        },
        None => None,
    };
    let age_days = production.age_days(now);
    if let Some((cycle, dir, journal)) = unfinished {
        let steps = Step::ALL
            .iter()
            .map(|s| (*s, journal.as_ref().and_then(|j| j.entry(*s).cloned())))
            .collect();
        let production = journal.map_or(production.run, |j| j.production);
        return Ok(Plan {
            cycle,
            dir,
            resuming: true,
            production,
            age_days,
            due: true,
            steps,
        });
    }
    let cycle = latest.map_or(1, |(n, _)| n.saturating_add(1));
    Ok(Plan {
        cycle,
        dir: cycle_dir(&config.work_dir, cycle),
        resuming: false,
        production: production.run,
        age_days,
        due: age_days.is_none_or(|d| d >= config.retrain_after_days),
        steps: Step::ALL.iter().map(|s| (*s, None)).collect(),
    })
}

/// What the loop reports as it goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// A cycle starts or continues.
    Cycle(&'a Plan),
    /// A step starts.
    Started(Step),
    /// A step finished with this note.
    Finished(Step, &'a str),
    /// Training progress.
    Train(sv_train::finetune::Event),
}

/// How a run of the loop ended.
#[derive(Debug, Clone)]
pub enum Finish {
    /// Production is younger than `retrain_after_days`: nothing ran.
    NotDue {
        /// Production's age.
        age_days: f64,
        /// The configured age.
        retrain_after_days: f64,
    },
    /// The cycle ran to its end.
    Done(Journal),
}

/// Hold the work folder's lock: a second loop on the same folder is refused (the lock
/// goes with the process, so a killed loop leaves none behind).
fn lock(work: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(work).map_err(|e| LoopError::io(work, e))?;
    let path = work.join("loop.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| LoopError::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(LoopError::Config {
            file: path,
            reason: "another loop is running on this work_dir".into(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(LoopError::io(&path, e)),
    }
}

/// Run the loop: continue an unfinished cycle, or start one when production is due.
pub fn run(config: &LoopConfig, events: &mut dyn FnMut(Event)) -> Result<Finish> {
    let _lock = lock(&config.work_dir)?;
    let now = now();
    let plan = plan(config, now)?;
    if !plan.due {
        return Ok(Finish::NotDue {
            age_days: plan.age_days.unwrap_or(0.0),
            retrain_after_days: config.retrain_after_days,
        });
    }
    // What the last steps need is checked before hours of training.
    let hotkey = config.wallet.hotkey()?;
    if sv_hub::HubSettings::from_env().token.is_none() {
        return Err(LoopError::Config {
            file: PathBuf::from("HF_TOKEN"),
            reason: "publishing needs a Hugging Face token: set HF_TOKEN or log in with \
                     `huggingface-cli login`"
                .into(),
        });
    }
    events(Event::Cycle(&plan));
    std::fs::create_dir_all(&plan.dir).map_err(|e| LoopError::io(&plan.dir, e))?;
    let journal = match Journal::load(&plan.dir) {
        Ok(j) => j,
        Err(_) => {
            let j = Journal {
                cycle: plan.cycle,
                started: now,
                production: plan.production.clone(),
                production_age_days: plan.age_days,
                steps: Vec::new(),
                outcome: None,
            };
            j.save(&plan.dir)?;
            j
        }
    };
    let device = sv_models::device_by_name(&config.device).map_err(|e| LoopError::Config {
        file: PathBuf::from("device"),
        reason: e.to_string(),
    })?;
    let mut cycle = Cycle {
        config,
        work: config.work_dir.clone(),
        dir: plan.dir.clone(),
        journal,
        train_device: device.clone().autodiff(),
        device,
        hotkey,
    };
    run_steps(&mut cycle, events)?;
    Ok(Finish::Done(cycle.journal))
}

/// Journal `step` as done (and the cycle's `outcome` when it ends it) in one atomic
/// write, so that no kill can leave a last step done without its outcome.
fn finish(
    c: &mut Cycle,
    step: Step,
    note: String,
    outcome: Option<Outcome>,
    events: &mut dyn FnMut(Event),
) -> Result<()> {
    c.journal.steps.push(Entry {
        step,
        finished: now(),
        note: note.clone(),
    });
    c.journal.outcome = outcome;
    c.journal.save(&c.dir)?;
    events(Event::Finished(step, &note));
    Ok(())
}

fn run_steps(c: &mut Cycle, events: &mut dyn FnMut(Event)) -> Result<()> {
    for step in Step::ALL {
        if c.journal.done(step) {
            continue;
        }
        events(Event::Started(step));
        let note = match step {
            Step::Ingest => crate::curation::ingest(c)?,
            Step::Embed => crate::curation::embed(c)?,
            Step::Dedup => crate::curation::dedup(c)?,
            Step::Mine => crate::curation::mine(c)?,
            Step::Autolabel => crate::curation::autolabel(c)?,
            Step::Mix => crate::curation::mix(c)?,
            Step::Finetune => crate::candidate::finetune(c, &mut |e| events(Event::Train(e)))?,
            Step::Gate => {
                let report = crate::candidate::gate(c)?;
                let note = report.reason.clone();
                if !report.pass {
                    let kept = Outcome::Kept {
                        reason: note.clone(),
                    };
                    return finish(c, step, note, Some(kept), events);
                }
                note
            }
            Step::Export => crate::candidate::export(c)?,
            Step::Publish => crate::deploy::publish(c)?,
            Step::Register => crate::deploy::register(c)?,
            Step::Record => {
                let (note, production) = crate::deploy::record(c)?;
                let published = Outcome::Published {
                    repo: production.repo.unwrap_or_default(),
                    commit: production.commit.unwrap_or_default(),
                };
                return finish(c, step, note, Some(published), events);
            }
        };
        finish(c, step, note, None, events)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, retrain_after_days: f64) -> LoopConfig {
        let file = dir.join("loop.toml");
        let text = crate::config::EXAMPLE.replace(
            "retrain_after_days = 1",
            &format!("retrain_after_days = {retrain_after_days}"),
        );
        std::fs::write(&file, text).unwrap();
        LoopConfig::load(&file).unwrap()
    }

    fn journal(cycle: u32, steps: &[Step], outcome: Option<Outcome>) -> Journal {
        Journal {
            cycle,
            started: 0,
            production: "runs/base".into(),
            production_age_days: None,
            steps: steps
                .iter()
                .map(|s| Entry {
                    step: *s,
                    finished: 1,
                    note: format!("{s} note"),
                })
                .collect(),
            outcome,
        }
    }

    #[test]
    fn an_unfinished_cycle_is_continued_at_its_first_missing_step() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path(), 30.0);
        let one = cycle_dir(&c.work_dir, 1);
        std::fs::create_dir_all(&one).unwrap();
        let kept = Some(Outcome::Kept {
            reason: "worse".into(),
        });
        journal(1, &Step::ALL[..8], kept).save(&one).unwrap();
        let two = cycle_dir(&c.work_dir, 2);
        std::fs::create_dir_all(&two).unwrap();
        journal(2, &[Step::Ingest, Step::Embed], None)
            .save(&two)
            .unwrap();
        // Continued whatever production's age: the cycle was started.
        let p = plan(&c, 0).unwrap();
        assert!(p.resuming && p.due && p.cycle == 2);
        let todo: Vec<Step> = p
            .steps
            .iter()
            .filter(|(_, e)| e.is_none())
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(todo[0], Step::Dedup);
        assert_eq!(todo.len(), 10);
        assert!(p.to_string().contains("done: embed note"), "{p}");
    }

    #[test]
    fn a_new_cycle_waits_for_production_to_age() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path(), 30.0);
        std::fs::create_dir_all(&c.work_dir).unwrap();
        let day = 86_400;
        let production = Production {
            run: "runs/cycle".into(),
            export: None,
            repo: None,
            commit: None,
            submission_time: Some(10 * day),
            cycle: Some(3),
        };
        crate::journal::write_json(&production_file(&c.work_dir), &production).unwrap();
        let three = cycle_dir(&c.work_dir, 3);
        std::fs::create_dir_all(&three).unwrap();
        let done = Some(Outcome::Published {
            repo: "o/n".into(),
            commit: "c".into(),
        });
        journal(3, &Step::ALL, done).save(&three).unwrap();
        let young = plan(&c, 39 * day).unwrap();
        assert!(!young.due && young.to_string().contains("not due"));
        let old = plan(&c, 40 * day).unwrap();
        assert!(old.due && !old.resuming && old.cycle == 4);
        assert_eq!(old.production, PathBuf::from("runs/cycle"));
        assert_eq!(old.age_days, Some(30.0));
    }

    #[test]
    fn a_cycle_killed_before_its_journal_is_continued_and_a_torn_journal_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path(), 0.0);
        let one = cycle_dir(&c.work_dir, 1);
        std::fs::create_dir_all(&one).unwrap();
        let p = plan(&c, 0).unwrap();
        assert!(p.resuming && p.cycle == 1 && p.steps.iter().all(|(_, e)| e.is_none()));
        std::fs::write(Journal::file(&one), b"{\"cycle\": 1, \"sta").unwrap();
        let e = plan(&c, 0).unwrap_err().to_string();
        assert!(e.contains("journal.json"), "{e}");
    }

    #[test]
    fn a_second_loop_on_the_same_work_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path()).unwrap();
        let e = lock(dir.path()).unwrap_err().to_string();
        assert!(e.contains("another loop"), "{e}");
        drop(held);
        lock(dir.path()).unwrap();
    }
}
