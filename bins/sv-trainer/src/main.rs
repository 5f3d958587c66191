//! `sv-trainer`: fine-tunes roadwork classifiers for the StreetVision subnet (netuid 72).
//!
//! Commands: `finetune` (resumable), `probe`, `eval`, `ab`, `fit-ensemble`, `export` (to the
//! transformers layout), `publish`, `quickstart` and `loop`.

use anyhow::{Context, Result};
use sv_models::{Device, device_by_name};
use sv_train::metrics::Report;

/// mimalloc, keeping freed buffers for reuse (`sv_cli::alloc`).
#[global_allocator]
static ALLOC: sv_cli::alloc::Allocator = sv_cli::alloc::Allocator;

mod args;
mod loop_cmd;
mod progress;
mod publish;
mod score_cmd;
mod spot;
mod train_cmd;

use args::{Cli, Command};

fn main() {
    sv_cli::alloc::keep_freed_memory();
    let cli: Cli = sv_cli::parse("sv-trainer", &[("--repo", "--hub-repo")]);
    let result: Result<bool> = match cli.command {
        Command::Finetune(a) => train_cmd::run_finetune(a).map(|()| true),
        Command::Quickstart(a) => train_cmd::run_quickstart(a).map(|()| true),
        Command::Export(a) => publish::run_export(a),
        Command::Publish(a) => publish::run_publish(a),
        Command::Eval(a) => score_cmd::run_eval(a),
        Command::Probe(a) => score_cmd::run_probe(a),
        Command::FitEnsemble(a) => score_cmd::run_fit_ensemble(a),
        Command::Ab(a) => score_cmd::run_ab(a),
        Command::Loop(a) => loop_cmd::run_loop(a),
    };
    sv_cli::exit("sv-trainer", result)
}

/// The `--device` named, for inference.
fn device(name: &str) -> Result<Device> {
    device_by_name(name).with_context(|| format!("--device {name}"))
}

/// The `--device` named, for inference in `precision` (refused where it cannot
/// compute in it).
fn device_in(name: &str, precision: sv_models::Precision) -> Result<Device> {
    let device = device(name)?;
    sv_models::precision::ensure_computes(precision, &device)
        .with_context(|| format!("--device {name} --precision {precision}"))?;
    Ok(device)
}

/// The `--device` named, for training.
fn training_device(name: &str) -> Result<Device> {
    Ok(device(name)?.autodiff())
}

/// `{what}: {summary}` of a report.
fn report_line(what: &str, r: &Report) -> String {
    format!("{what}: {}", r.summary())
}
