//! `sv-trainer export` and `sv-trainer publish`: flags onto sv-train's export, its
//! publication check and sv-hub's publisher.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use sv_cli::Output;
use sv_train::finetune::RunDir;
use sv_train::metrics::Report;

#[derive(Args, Debug)]
pub struct PublishArgs {
    /// The export directory (`sv-trainer export --model-name … --hotkey …`).
    #[arg(long)]
    export: PathBuf,
    /// The model repository, `owner/name` (created when missing; `--repo` is the old
    /// spelling).
    #[arg(long = "hub-repo", alias = "repo", value_name = "OWNER/NAME")]
    repo: String,
    /// Branch to commit to.
    #[arg(long, default_value = "main")]
    revision: String,
    /// The miner's hotkey (SS58): model_card.json's submitted_by must be it.
    #[arg(long)]
    hotkey: String,
    /// File of model names other miners already use (one per line).
    #[arg(long)]
    taken_names: Option<PathBuf>,
    /// Metrics for the commit message and README: a run's eval.json (its validation
    /// split) or the `overall` of `sv-trainer eval --json`.
    #[arg(long)]
    eval: Option<PathBuf>,
    /// The split --eval was measured on, named in the commit message and README.
    #[arg(long, default_value = "validation")]
    eval_split: String,
    /// Create the repository private.
    #[arg(long)]
    private: bool,
    /// Do not ask before publishing.
    #[arg(long)]
    yes: bool,
    /// Print the result as JSON on standard output (other lines go to standard error).
    #[arg(long)]
    json: bool,
}

pub fn run_export(a: crate::args::ExportArgs) -> Result<bool> {
    let out = Output::new(a.json);
    let run = RunDir {
        root: a.run_dir.clone(),
    };
    let card = sv_train::export::ModelCard::now(a.model_name, a.description, a.version, a.hotkey);
    sv_train::export::export_run(&run, card, &a.out)?;
    out.line(format!(
        "exported {} to {}",
        run.model().display(),
        a.out.display()
    ));
    let card_file = a.out.join("model_card.json");
    let card: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&card_file).with_context(|| format!("reading {}", card_file.display()))?,
    )
    .with_context(|| format!("{} is not JSON", card_file.display()))?;
    out.result(&serde_json::json!({
        "model": run.model(),
        "out": a.out,
        "model_card": card,
    }))?;
    Ok(true)
}

pub fn run_publish(a: PublishArgs) -> Result<bool> {
    let out = Output::new(a.json);
    let taken: Vec<String> = match &a.taken_names {
        Some(p) => sv_train::publish::read_taken_names(p)?,
        None => Vec::new(),
    };
    let report: Option<Report> = match &a.eval {
        Some(p) => {
            let mut v: serde_json::Value = serde_json::from_slice(
                &std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
            )
            .with_context(|| format!("{} is not JSON", p.display()))?;
            if let Some(overall) = v.get_mut("overall") {
                v = overall.take();
            }
            Some(serde_json::from_value(v).with_context(|| {
                format!(
                    "{} is neither a run's eval.json nor `sv-trainer eval --json` output",
                    p.display()
                )
            })?)
        }
        None => None,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let metrics = report.as_ref().map(|r| (r, a.eval_split.as_str()));
    let plan = sv_train::publish::plan(&a.export, &a.hotkey, now, &taken, metrics)?;
    let settings = sv_hub::HubSettings::from_env();
    out.line(format!(
        "will publish to {}/{} ({}):",
        settings.endpoint, a.repo, a.revision
    ));
    let mut files = Vec::new();
    for (local, remote) in &plan.files {
        let bytes = std::fs::metadata(local)
            .with_context(|| format!("reading {}", local.display()))?
            .len();
        out.line(format!("  {remote}  ({bytes} bytes)"));
        files.push(serde_json::json!({ "path": remote, "bytes": bytes }));
    }
    out.line("  README.md  (model card)");
    out.line(format!("commit: {}", plan.summary));
    sv_cli::confirm("go ahead?", a.yes, "not published")?;
    let done = sv_loop::publish_plan(&plan, &settings, &a.repo, &a.revision, a.private)
        .with_context(|| format!("publishing to {}", a.repo))?;
    out.line(format!(
        "published {} as commit {} ({})",
        a.repo, done.commit, done.url
    ));
    out.result(&serde_json::json!({
        "endpoint": settings.endpoint,
        "repo": a.repo,
        "revision": a.revision,
        "commit": done.commit,
        "url": done.url,
        "summary": plan.summary,
        "files": files,
    }))?;
    Ok(true)
}
