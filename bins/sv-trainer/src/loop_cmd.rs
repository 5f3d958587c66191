//! `sv-trainer loop`: flags onto sv-loop, with progress on standard error.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use sv_loop::{Event, Finish, Outcome};

use crate::progress::Progress;

#[derive(Args, Debug)]
pub struct LoopArgs {
    /// The loop's TOML file (`sv-trainer loop --example-config` prints a commented one).
    #[arg(long, required_unless_present = "example_config")]
    config: Option<PathBuf>,
    /// Print what the next run would do (the cycle, each step done or to do, and
    /// whether production is old enough to retrain), then exit.
    #[arg(long)]
    dry_run: bool,
    /// Print a commented example configuration and exit.
    #[arg(long)]
    example_config: bool,
    /// Print the outcome as JSON (the cycle's journal, or why nothing ran) instead of a
    /// sentence.
    #[arg(long)]
    json: bool,
}

pub fn run_loop(a: LoopArgs) -> Result<bool> {
    if a.example_config {
        print!("{}", sv_loop::config::EXAMPLE);
        return Ok(true);
    }
    let file = a.config.context("--config is required")?;
    let config = sv_loop::LoopConfig::load(&file)?;
    if a.dry_run {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        print!("{}", sv_loop::plan(&config, now)?);
        return Ok(true);
    }
    let mut progress: Option<Progress> = None;
    let finish = sv_loop::run(&config, &mut |e| match e {
        Event::Cycle(plan) => eprintln!(
            "sv-trainer: cycle {} in {} ({})",
            plan.cycle,
            plan.dir.display(),
            if plan.resuming {
                "continuing at its first unfinished step"
            } else {
                "new"
            }
        ),
        Event::Started(step) => eprintln!("sv-trainer: {step}: {}", step.what()),
        Event::Finished(step, note) => {
            if let Some(mut p) = progress.take() {
                p.finish();
            }
            eprintln!("sv-trainer: {step}: done: {note}");
        }
        Event::Train(t) => progress.get_or_insert_with(Progress::new).event(t),
    });
    if let Some(mut p) = progress.take() {
        p.finish();
    }
    let finish = finish?;
    if a.json {
        let value = match &finish {
            Finish::NotDue {
                age_days,
                retrain_after_days,
            } => serde_json::json!({
                "not_due": { "age_days": age_days, "retrain_after_days": retrain_after_days }
            }),
            Finish::Done(journal) => serde_json::json!({ "journal": journal }),
        };
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(!matches!(
            &finish,
            Finish::Done(j) if matches!(j.outcome, Some(Outcome::Kept { .. }))
        ));
    }
    match finish {
        Finish::NotDue {
            age_days,
            retrain_after_days,
        } => {
            println!(
                "production is {age_days:.1} days old; the loop retrains at {retrain_after_days} days (retrain_after_days): nothing to do"
            );
            Ok(true)
        }
        Finish::Done(journal) => match journal.outcome {
            Some(Outcome::Published { repo, commit }) => {
                println!(
                    "cycle {}: published {repo} commit {commit}; it is production now",
                    journal.cycle
                );
                Ok(true)
            }
            Some(Outcome::Kept { reason }) => {
                println!(
                    "cycle {}: production kept, nothing published: {reason}",
                    journal.cycle
                );
                Ok(false)
            }
            None => Ok(true),
        },
    }
}
