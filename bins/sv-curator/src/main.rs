//! `sv-curator`: the data side of the improvement loop. Each subcommand reads and writes
//! files (manifests, indexes, reports), so every step can be rerun alone.

use std::path::Path;

use anyhow::{Context, Result, bail};
use sv_cli::Output;
use sv_curate::dedup::OnLeak;
use sv_curate::mine::Reason;
use sv_data::{Sample, ShortPolicy, Source};

/// mimalloc, keeping freed buffers for reuse (`sv_cli::alloc`).
#[global_allocator]
static ALLOC: sv_cli::alloc::Allocator = sv_cli::alloc::Allocator;

mod args;

use args::{AutolabelArgs, Cli, Command, DedupArgs, EmbedArgs, IngestArgs, MineArgs, MixArgs};

fn main() {
    sv_cli::alloc::keep_freed_memory();
    let cli: Cli = sv_cli::parse(
        "sv-curator",
        &[
            ("--miner-log", "--log-dir"),
            ("--log", "--log-dir"),
            ("--checkpoint", "--model"),
        ],
    );
    let out = Output::new(cli.json);
    let result = match cli.command {
        Command::Ingest(a) => ingest(a, out),
        Command::Embed(a) => embed(a, out),
        Command::Dedup(a) => dedup(a, out),
        Command::Mine(a) => mine(a, out),
        Command::Autolabel(a) => autolabel(a, out),
        Command::Mix(a) => mix(a, out),
    };
    sv_cli::exit("sv-curator", result.map(|()| true))
}

fn write_manifest(path: &Path, samples: &[Sample]) -> Result<()> {
    sv_data::write_manifest(path, samples.iter())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    sv_fs::atomic_write(path, &serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// Read a folder as `source` (unlabelled files too when `unlabelled`), saying how many
/// images it held and skipped, and why.
fn read_folder(
    dir: &Path,
    source: Source,
    unlabelled: bool,
    follow_links: bool,
) -> Result<Vec<Sample>> {
    let opts = sv_data::FolderOptions {
        source,
        unlabelled,
        follow_links,
        ..Default::default()
    };
    let (samples, skipped) = sv_data::read_folder(dir, &opts)?;
    eprintln!(
        "{}: {} images, {}",
        dir.display(),
        samples.len(),
        skipped.summary()
    );
    Ok(samples)
}

fn ingest(a: IngestArgs, out: Output) -> Result<()> {
    let mut batches = vec![];
    for dir in &a.folder {
        batches.push(read_folder(
            dir,
            Source::from_name(&a.folder_source),
            false,
            a.follow_links,
        )?);
    }
    if !a.natix.is_empty() {
        let (s, skipped) = sv_data::read_natix(&a.natix, &Default::default())?;
        eprintln!("natix: {} images, {}", s.len(), skipped.summary());
        batches.push(s);
    }
    for dir in &a.synthetic {
        let mut s = read_folder(dir, Source::Synthetic, true, a.follow_links)?;
        if let Some(p) = &a.prompts {
            let n = sv_curate::ingest::attach_prompts(&mut s, p)?;
            eprintln!(
                "{}: prompt metadata for {n} of {} images",
                p.display(),
                s.len()
            );
        }
        batches.push(s);
    }
    let labels = sv_records::labels::read_labels(&a.challenge_labels)?;
    for dir in &a.miner_log {
        let (s, c) = sv_curate::ingest::from_prediction_log(dir, &labels)?;
        eprintln!("{}: {c}", dir.display());
        batches.push(s);
    }
    if batches.is_empty() {
        bail!("nothing to ingest: give --folder, --natix, --synthetic or --miner-log");
    }
    let (samples, report) = sv_curate::ingest::merge(batches);
    write_manifest(&a.out, &samples)?;
    out.line(serde_json::to_string_pretty(&report)?);
    out.line(format!(
        "{} samples written to {}",
        samples.len(),
        a.out.display()
    ));
    out.result(&serde_json::json!({
        "out": a.out,
        "samples": samples.len(),
        "report": report,
    }))
}

fn embed(a: EmbedArgs, out: Output) -> Result<()> {
    let device =
        sv_models::device_by_name(&a.device).with_context(|| format!("--device {}", a.device))?;
    let samples = sv_data::read_manifest(&a.manifest)?;
    let cache_dir = a
        .cache_dir
        .clone()
        .unwrap_or_else(|| sv_cli::cache_dir("features"));
    let checkpoint = if a.checkpoint.is_dir() {
        a.checkpoint.join("model.safetensors")
    } else {
        a.checkpoint.clone()
    };
    let job = sv_train::embed::EmbedJob {
        checkpoint: &checkpoint,
        cache_dir: &cache_dir,
        kind: &a.kind,
        out: &a.out,
        batch_size: a.batch_size,
    };
    let bar = sv_cli::progress_bar("embedding", 0);
    let done = sv_train::embed::embed_index(&job, &samples, &device, &mut |d, t| {
        if let Some(b) = &bar {
            b.set_length(t as u64);
            b.set_position(d as u64);
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let e = done.with_context(|| format!("--kind {}", a.kind))?;
    out.line(format!(
        "{} embeddings ({} computed, {} from the cache, {} unreadable images left out) of dimension {} in a {} index {}",
        e.count,
        e.computed,
        e.count.saturating_sub(e.computed),
        e.missing,
        e.dim,
        a.kind,
        a.out.display()
    ));
    out.result(&serde_json::json!({
        "out": a.out,
        "kind": a.kind,
        "embeddings": e.count,
        "computed": e.computed,
        "cached": e.count.saturating_sub(e.computed),
        "left_out": e.missing,
        "dim": e.dim,
    }))
}

fn dedup(a: DedupArgs, out: Output) -> Result<()> {
    let on_leak: OnLeak = a.on_leak.parse().context("--on-leak")?;
    let samples = sv_data::read_manifest(&a.manifest)?;
    let index = sv_index::store::load_any(&a.index)?;
    let index = index.as_ref();
    let groups = sv_curate::dedup::groups(index, a.threshold)?;
    let report = a.report.clone().unwrap_or_else(|| {
        let mut name = a.out.clone().into_os_string();
        name.push(".groups.json");
        name.into()
    });
    if on_leak == OnLeak::Fail {
        let leaks = sv_curate::dedup::leaks(&samples, index, &groups);
        if !leaks.is_empty() {
            write_json(&report, &serde_json::json!({ "leaks": leaks }))?;
            bail!(
                "{} near-duplicate groups at cosine ≥ {} span train and a held-out split (listed in {}); \
                 no manifest written. --on-leak drop-train keeps each held-out copy and drops the train copies",
                leaks.len(),
                a.threshold,
                report.display()
            );
        }
    }
    let order = sv_curate::dedup::parse_source_order(&a.source_order);
    let before = samples.len();
    let (kept, resolved) = sv_curate::dedup::dedup(samples, index, &groups, &order);
    write_manifest(&a.out, &kept)?;
    write_json(&report, &serde_json::to_value(&resolved)?)?;
    let leaks = resolved.iter().filter(|g| g.leak).count();
    out.line(format!(
        "{} near-duplicate groups at cosine ≥ {}: {} of {before} samples dropped; {leaks} groups spanned train and a held-out split (their train copies dropped); {} written to {}, groups to {}",
        resolved.len(),
        a.threshold,
        before - kept.len(),
        kept.len(),
        a.out.display(),
        report.display()
    ));
    out.result(&serde_json::json!({
        "out": a.out,
        "report": report,
        "threshold": a.threshold,
        "groups": resolved.len(),
        "leak_groups": leaks,
        "before": before,
        "kept": kept.len(),
        "dropped": before - kept.len(),
    }))
}

fn mine(a: MineArgs, out: Output) -> Result<()> {
    let mut answers = sv_records::predlog::read_log(&a.log)?;
    let labels = sv_records::labels::read_labels(&a.challenge_labels)?;
    let joined = sv_records::labels::apply_labels(&mut answers, &labels);
    if !a.challenge_labels.is_empty() {
        eprintln!("{joined} answers labelled from the challenge labels");
    }
    let failures = sv_curate::mine::failures(&answers, a.min_confidence);
    let log_index = sv_index::store::load_any(&a.log_index)?;
    let log_index = log_index.as_ref();
    let pool = sv_data::read_manifest(&a.pool)?;
    let pool_index = sv_index::store::load_any(&a.pool_index)?;
    let pool_index = pool_index.as_ref();
    let embedded = failures
        .iter()
        .filter(|f| log_index.position(&f.id).is_some())
        .count();
    let cases = sv_curate::mine::hard_cases(
        &failures,
        log_index,
        &pool,
        pool_index,
        a.k,
        a.min_similarity,
    );
    write_manifest(&a.out, &cases.samples)?;
    let negatives = cases
        .samples
        .iter()
        .filter(|s| s.source == Source::HardNegative)
        .count();
    out.line(format!(
        "{} answers, {} failures ({} wrong, {} unsure; {embedded} embedded) → {} hard cases ({negatives} hard negatives) in {}; neighbours held out, left out: {} val, {} test",
        answers.len(),
        failures.len(),
        Reason::Wrong.count(&failures),
        Reason::Unsure.count(&failures),
        cases.samples.len(),
        a.out.display(),
        cases.left_out_val,
        cases.left_out_test
    ));
    out.result(&serde_json::json!({
        "out": a.out,
        "answers": answers.len(),
        "failures": failures.len(),
        "wrong": Reason::Wrong.count(&failures),
        "unsure": Reason::Unsure.count(&failures),
        "embedded": embedded,
        "hard_cases": cases.samples.len(),
        "hard_negatives": negatives,
        "left_out_val": cases.left_out_val,
        "left_out_test": cases.left_out_test,
        "challenge_labels_joined": joined,
    }))
}

fn autolabel(a: AutolabelArgs, out: Output) -> Result<()> {
    let device =
        sv_models::device_by_name(&a.device).with_context(|| format!("--device {}", a.device))?;
    let ensemble = sv_models::Ensemble::load(&a.ensemble, &device)?;
    let samples = sv_data::read_manifest(&a.manifest)?;
    let targets = sv_curate::autolabel::candidates(&samples);
    let bar = sv_cli::progress_bar("voting", targets.len() as u64);
    let probabilities = sv_curate::autolabel::votes(
        &targets,
        &mut |images| ensemble.member_probabilities(images),
        &mut |done, _| {
            if let Some(b) = &bar {
                b.set_position(done as u64);
            }
        },
    );
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let candidates = targets.len();
    let (labelled, review) =
        sv_curate::autolabel::autolabel(samples, &probabilities, a.min_confidence);
    write_manifest(&a.out, &labelled)?;
    sv_curate::autolabel::write_review(&a.review, &review)?;
    out.line(format!(
        "{} candidates: {} labelled by agreement ≥ {}, {} to review ({})",
        candidates,
        candidates - review.len(),
        a.min_confidence,
        review.len(),
        a.review.display()
    ));
    out.result(&serde_json::json!({
        "out": a.out,
        "review_file": a.review,
        "candidates": candidates,
        "labelled": candidates - review.len(),
        "review": review.len(),
        "min_confidence": a.min_confidence,
    }))
}

fn mix(a: MixArgs, out: Output) -> Result<()> {
    // Flags first, so a typo is reported before any file is read.
    let targets = match &a.ratios {
        None => sv_data::seed_plan(),
        Some(text) => sv_data::parse_ratios(text).context("--ratios")?,
    };
    let policy: ShortPolicy = a.policy.parse().context("--policy")?;
    let fractions: sv_data::SplitFractions = a.splits.parse().context("--splits")?;
    let mut samples = vec![];
    for m in &a.manifest {
        samples.extend(sv_data::read_manifest(m)?);
    }
    let (mut mixed, report) = sv_data::mix(samples, &targets, a.total, policy, a.seed)?;
    for line in &report.shortfalls {
        eprintln!("sv-curator: warning: {line}");
    }
    if report.duplicate_ids > 0 {
        eprintln!(
            "sv-curator: {} copies of ids given more than once were merged (the later copy, the most held-out split)",
            report.duplicate_ids
        );
    }
    sv_data::assign_splits(&mut mixed, &fractions, a.seed)
        .with_context(|| format!("--splits {}", a.splits))?;
    write_manifest(&a.out, &mixed)?;
    let report = serde_json::to_value(&report)?;
    if let Some(p) = &a.report {
        write_json(p, &report)?;
    }
    out.line(serde_json::to_string_pretty(&report)?);
    out.line(format!(
        "{} samples written to {}",
        mixed.len(),
        a.out.display()
    ));
    out.result(&serde_json::json!({
        "out": a.out,
        "samples": mixed.len(),
        "report": report,
    }))
}
