//! What keeps a fine-tune safe on a spot instance: SIGTERM and SIGINT ask the run to
//! stop at its next step boundary (a second one ends the process at once), checkpoints
//! pushed to a Hub branch (`--checkpoint-sync`), and a run restored from one
//! (`--resume hf://…`).

use anyhow::{Context, Result};
use sv_loop::spot::{CheckpointSync, HubBranch};
use sv_train::finetune::{Event, RunDir};

/// SIGTERM and SIGINT set sv-train's stop request; a second of either exits with 130 at
/// once.
pub(crate) fn stop_on_signals() -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let flag = sv_train::stop::flag();
    for signal in [SIGTERM, SIGINT] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, flag.clone())
            .context("installing the signal handlers")?;
        signal_hook::flag::register(signal, flag.clone())
            .context("installing the signal handlers")?;
    }
    Ok(())
}

/// The `--resume` value: `None` for the run directory's own checkpoint, else the Hub
/// branch to restore from.
pub(crate) fn resume_source(value: Option<&str>) -> Result<Option<HubBranch>> {
    match value {
        None | Some("") => Ok(None),
        Some(text) => Ok(Some(text.parse().context("--resume")?)),
    }
}

/// Restore `source`'s newest checkpoint into `run`, saying where it stood.
pub(crate) fn restore(source: &HubBranch, run: &RunDir) -> Result<()> {
    let settings = sv_hub::HubSettings::from_env();
    let position = sv_loop::spot::restore(source, run, &settings)
        .with_context(|| format!("--resume {source}"))?;
    eprintln!(
        "restored the checkpoint at step {} (epoch {}, batch {}) from {source} into {}",
        position.step,
        position.epoch,
        position.batch,
        run.root.display()
    );
    Ok(())
}

/// Start pushing checkpoints to `target` (`--checkpoint-sync`).
pub(crate) fn start_sync(target: Option<&str>) -> Result<Option<CheckpointSync>> {
    let Some(text) = target else {
        return Ok(None);
    };
    let branch: HubBranch = text.parse().context("--checkpoint-sync")?;
    let settings = sv_hub::HubSettings::from_env();
    let sync = CheckpointSync::start(branch, &settings)
        .with_context(|| format!("--checkpoint-sync {text}"))?;
    Ok(Some(sync))
}

/// Queue the checkpoint an event announces; a file that cannot be read is a warning,
/// never a reason to stop training.
pub(crate) fn on_event(sync: Option<&CheckpointSync>, run: &RunDir, event: &Event) {
    if let (Some(sync), Event::Checkpoint { position, .. }) = (sync, event)
        && let Err(e) = sync.push_checkpoint(run, *position)
    {
        eprintln!("sv-trainer: warning: checkpoint not pushed: {e}");
    }
}

/// Wait for the pushes to finish; a summary for `--json` (target, commits, errors).
pub(crate) fn finish_sync(sync: Option<CheckpointSync>) -> serde_json::Value {
    let Some(sync) = sync else {
        return serde_json::Value::Null;
    };
    let target = sync.target().to_string();
    eprintln!("waiting for the checkpoint pushes to {target} to finish");
    let (pushed, errors) = sync.finish();
    for e in &errors {
        eprintln!("sv-trainer: warning: not pushed: {e}");
    }
    if let Some(last) = pushed.last() {
        eprintln!(
            "{} commits pushed to {target}; the last is {}",
            pushed.len(),
            last.commit
        );
    }
    serde_json::json!({
        "target": target,
        "commits": pushed.iter().map(|p| &p.commit).collect::<Vec<_>>(),
        "errors": errors,
    })
}
