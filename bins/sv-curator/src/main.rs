//! `sv-curator`: the data side of the improvement loop. Each subcommand reads and writes
//! files (manifests, indexes, reports), so every step can be rerun alone.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use sv_data::{Sample, ShortPolicy, Source};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// StreetVision curator: turns image sources and a miner's prediction log into training
/// manifests — exact and near-duplicate removal, hard cases mined from the miner's
/// failures, ensemble auto-labels, and a mix by source ratios.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Read sources into one manifest: labelled folders (`roadwork/`, `no_roadwork/`),
    /// NATIX parquet shards, synthetic generator outputs (with a prompt sidecar) and miner
    /// prediction logs; exact copies (same SHA-256) are kept once.
    Ingest(IngestArgs),
    /// Embed a manifest's images with a backbone (DINOv2 with registers or ConvNeXt-V2)
    /// into an index file; features are cached by (model, checkpoint hash, preprocessing).
    Embed(EmbedArgs),
    /// Remove near duplicates (cosine ≥ threshold) across all sources, keeping one per
    /// group: labelled first, then by source order, then the smallest id. With splits
    /// assigned, refuse a group that spans train and test.
    Dedup(DedupArgs),
    /// Mine hard cases: the miner's failures (wrong where labelled, unsure otherwise) and
    /// their nearest labelled neighbours in a pool → a hard-case manifest with reasons.
    Mine(MineArgs),
    /// Label unlabelled and synthetic images where all ensemble members agree with
    /// confidence ≥ threshold; the rest go to a review list.
    Autolabel(AutolabelArgs),
    /// Mix manifests by source ratios into a training manifest, with a report; samples
    /// without a split get one (--splits).
    Mix(MixArgs),
}

#[derive(Args, Debug)]
struct IngestArgs {
    /// Output manifest (JSON Lines, written atomically).
    #[arg(long)]
    out: PathBuf,
    /// A folder with `roadwork/` and `no_roadwork/` (or `1/`, `0/`) subfolders.
    #[arg(long, value_name = "DIR")]
    folder: Vec<PathBuf>,
    /// Source name of the --folder samples.
    #[arg(long, default_value = "folder")]
    folder_source: String,
    /// NATIX parquet shards (the dataset's label/scene_description rule applies).
    #[arg(long, value_name = "FILE")]
    natix: Vec<PathBuf>,
    /// A synthetic generator's output folder (labelled subfolders, or unlabelled).
    #[arg(long, value_name = "DIR")]
    synthetic: Vec<PathBuf>,
    /// JSON Lines of generator metadata (`file`, `prompt`, …, optional `label`) for the
    /// --synthetic folders.
    #[arg(long, value_name = "FILE")]
    prompts: Option<PathBuf>,
    /// A miner's log directory (`predictions*.jsonl`, `images/` from --store-images).
    #[arg(long, value_name = "DIR")]
    miner_log: Vec<PathBuf>,
    /// Follow symbolic links inside --folder and --synthetic folders (each folder is
    /// walked once, so a link cycle ends). Without it, links are skipped and counted.
    #[arg(long)]
    follow_links: bool,
}

#[derive(Args, Debug)]
struct EmbedArgs {
    /// Manifest to embed.
    #[arg(long)]
    manifest: PathBuf,
    /// Backbone checkpoint (with config.json / preprocessor_config.json beside it).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Output index file.
    #[arg(long)]
    out: PathBuf,
    /// Feature cache directory (default ~/.cache/streetvision-rs/features).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Images per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Index kind: `exact` (pure Rust, all-vs-all by matrix products), or with the
    /// `faiss` feature `flat`, `ivf:NLIST:NPROBE` (trained on the embeddings; e.g.
    /// ivf:4096:32) or `hnsw:M:EF` (e.g. hnsw:32:64) for pools of millions.
    #[arg(long, default_value = "exact")]
    kind: String,
}

#[derive(Args, Debug)]
struct DedupArgs {
    /// Manifest to deduplicate.
    #[arg(long)]
    manifest: PathBuf,
    /// Its index (`sv-curator embed`).
    #[arg(long)]
    index: PathBuf,
    /// Output manifest.
    #[arg(long)]
    out: PathBuf,
    /// Cosine similarity at or above which two images are near duplicates.
    #[arg(long, default_value_t = 0.95)]
    threshold: f32,
    /// Source preference, first kept first (comma-separated).
    #[arg(
        long,
        default_value = "natix,miner_log,hard_case,hard_negative,synthetic"
    )]
    source_order: String,
    /// Write the groups (kept and dropped ids) here as JSON.
    #[arg(long)]
    report: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct MineArgs {
    /// The miner's log directory.
    #[arg(long)]
    log: PathBuf,
    /// Index of the log's images (`ingest --miner-log` then `embed`).
    #[arg(long)]
    log_index: PathBuf,
    /// Pool manifest to mine neighbours from.
    #[arg(long)]
    pool: PathBuf,
    /// The pool's index.
    #[arg(long)]
    pool_index: PathBuf,
    /// Output hard-case manifest.
    #[arg(long)]
    out: PathBuf,
    /// Neighbours per failure.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// An unlabelled answer with confidence (|p − 0.5|·2) below this is a failure.
    #[arg(long, default_value_t = 0.2)]
    min_confidence: f32,
    /// Neighbours less similar than this are left out.
    #[arg(long, default_value_t = 0.5)]
    min_similarity: f32,
}

#[derive(Args, Debug)]
struct AutolabelArgs {
    /// Manifest with unlabelled or synthetic images.
    #[arg(long)]
    manifest: PathBuf,
    /// Ensemble file whose members vote.
    #[arg(long)]
    ensemble: PathBuf,
    /// Output manifest (labels filled where the members agree).
    #[arg(long)]
    out: PathBuf,
    /// Review list (JSON Lines: id, members' probabilities, reason).
    #[arg(long)]
    review: PathBuf,
    /// Every member must pick the class with at least this probability.
    #[arg(long, default_value_t = 0.8)]
    min_confidence: f32,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Args, Debug)]
struct MixArgs {
    /// Input manifests.
    #[arg(long, required = true)]
    manifest: Vec<PathBuf>,
    /// Output manifest.
    #[arg(long)]
    out: PathBuf,
    /// Shares by source, `name=share,…` (default: the seed plan, natix 0.4, synthetic
    /// 0.3, hard_case 0.2, hard_negative 0.1).
    #[arg(long)]
    ratios: Option<String>,
    /// Mix size (default: as large as the policy allows).
    #[arg(long)]
    total: Option<usize>,
    /// A source short of its share: shrink, redistribute or oversample.
    #[arg(long, default_value = "redistribute")]
    policy: String,
    /// Seed of which samples are taken.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Train, validation and test fractions for samples without a split (hard cases,
    /// new sources); a sample's split comes from a hash of its id, so it never moves.
    #[arg(long, default_value = "0.8,0.1,0.1", value_name = "TRAIN,VAL,TEST")]
    splits: String,
    /// Write the report here as JSON (it is printed too).
    #[arg(long)]
    report: Option<PathBuf>,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ingest(a) => ingest(a),
        Command::Embed(a) => embed(a),
        Command::Dedup(a) => dedup(a),
        Command::Mine(a) => mine(a),
        Command::Autolabel(a) => autolabel(a),
        Command::Mix(a) => mix(a),
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
    let why: Vec<String> = skipped
        .counts
        .iter()
        .map(|(reason, n)| format!("{n} {}", reason.as_str()))
        .collect();
    eprintln!(
        "{}: {} images, {} skipped{}",
        dir.display(),
        samples.len(),
        skipped.counts.values().sum::<usize>(),
        if why.is_empty() {
            String::new()
        } else {
            format!(" ({})", why.join(", "))
        }
    );
    Ok(samples)
}

fn ingest(a: IngestArgs) -> Result<()> {
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
        eprintln!(
            "natix: {} images, {} skipped",
            s.len(),
            skipped.counts.values().sum::<usize>()
        );
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
    for dir in &a.miner_log {
        let (s, c) = sv_curate::ingest::from_prediction_log(dir)?;
        eprintln!(
            "{}: {} answers on {} images, {} stored, {} labelled{}",
            dir.display(),
            c.answers,
            c.images,
            c.stored,
            c.labelled,
            if c.torn > 0 {
                format!("; {} torn lines skipped", c.torn)
            } else {
                String::new()
            }
        );
        batches.push(s);
    }
    if batches.is_empty() {
        bail!("nothing to ingest: give --folder, --natix, --synthetic or --miner-log");
    }
    let (samples, report) = sv_curate::ingest::merge(batches);
    write_manifest(&a.out, &samples)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    println!("{} samples written to {}", samples.len(), a.out.display());
    Ok(())
}

fn embed(a: EmbedArgs) -> Result<()> {
    use sv_train::probe;
    let device =
        sv_models::device_by_name(&a.device).with_context(|| format!("--device {}", a.device))?;
    let (backbone, pre) = sv_models::Backbone::load_with_preprocessor(&a.checkpoint, &device)?;
    let arch = backbone.architecture();
    let key = probe::cache_key(arch, &a.checkpoint, &pre)?;
    let mut cache = probe::FeatureCache::open(
        &a.cache_dir
            .clone()
            .unwrap_or_else(|| sv_cli::cache_dir("features")),
        &key,
    )?;
    let samples = sv_data::read_manifest(&a.manifest)?;
    let bar = sv_cli::progress_bar("embedding", 0);
    let (_, computed) = probe::features(
        &backbone,
        &pre,
        &samples,
        &mut cache,
        &device,
        a.batch_size,
        &mut |d, t| {
            if let Some(b) = &bar {
                b.set_length(t as u64);
                b.set_position(d as u64);
            }
        },
    )?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let mut ids = vec![];
    let mut values = vec![];
    let mut missing = 0;
    for s in &samples {
        match cache.rows.get(&s.id) {
            Some(row) => {
                ids.push(s.id.clone());
                values.extend_from_slice(row);
            }
            None => missing += 1,
        }
    }
    let count = sv_index::store::build_and_save(&a.kind, cache.dim, &ids, &values, &a.out)
        .with_context(|| format!("--kind {}", a.kind))?;
    println!(
        "{count} embeddings ({} computed, {} from the cache, {missing} unreadable images left out) of dimension {} in a {} index {}",
        computed,
        count.saturating_sub(computed),
        cache.dim,
        a.kind,
        a.out.display()
    );
    Ok(())
}

fn dedup(a: DedupArgs) -> Result<()> {
    let samples = sv_data::read_manifest(&a.manifest)?;
    let index = sv_index::store::load_any(&a.index)?;
    let index = index.as_ref();
    let groups = sv_curate::dedup::groups(index, a.threshold)?;
    sv_curate::dedup::leak_check(&samples, index, &groups, a.threshold)?;
    let order: Vec<String> = a
        .source_order
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let before = samples.len();
    let (kept, resolved) = sv_curate::dedup::dedup(samples, index, &groups, &order);
    write_manifest(&a.out, &kept)?;
    if let Some(p) = &a.report {
        write_json(p, &serde_json::to_value(&resolved)?)?;
    }
    println!(
        "{} near-duplicate groups at cosine ≥ {}: {} of {before} samples dropped; no group spans train and test; {} written to {}",
        resolved.len(),
        a.threshold,
        before - kept.len(),
        kept.len(),
        a.out.display()
    );
    Ok(())
}

fn mine(a: MineArgs) -> Result<()> {
    let answers = sv_records::predlog::read_log(&a.log)?;
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
    write_manifest(&a.out, &cases)?;
    let negatives = cases
        .iter()
        .filter(|s| s.source == Source::HardNegative)
        .count();
    println!(
        "{} answers, {} failures ({} wrong, {} unsure; {embedded} embedded) → {} hard cases ({negatives} hard negatives) in {}",
        answers.len(),
        failures.len(),
        failures
            .iter()
            .filter(|f| f.reason == sv_curate::mine::Reason::Wrong)
            .count(),
        failures
            .iter()
            .filter(|f| f.reason == sv_curate::mine::Reason::Unsure)
            .count(),
        cases.len(),
        a.out.display()
    );
    Ok(())
}

fn autolabel(a: AutolabelArgs) -> Result<()> {
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
    println!(
        "{} candidates: {} labelled by agreement ≥ {}, {} to review ({})",
        candidates,
        candidates - review.len(),
        a.min_confidence,
        review.len(),
        a.review.display()
    );
    Ok(())
}

fn mix(a: MixArgs) -> Result<()> {
    let mut samples = vec![];
    for m in &a.manifest {
        samples.extend(sv_data::read_manifest(m)?);
    }
    let targets = match &a.ratios {
        None => sv_data::seed_plan(),
        Some(text) => sv_data::parse_ratios(text).context("--ratios")?,
    };
    let policy: ShortPolicy = a.policy.parse().context("--policy")?;
    let fractions: sv_data::SplitFractions = a.splits.parse().context("--splits")?;
    let (mut mixed, report) = sv_data::mix(samples, &targets, a.total, policy, a.seed)?;
    sv_data::assign_splits(&mut mixed, &fractions, a.seed)
        .with_context(|| format!("--splits {}", a.splits))?;
    write_manifest(&a.out, &mixed)?;
    let report = serde_json::to_value(&report)?;
    if let Some(p) = &a.report {
        write_json(p, &report)?;
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    println!("{} samples written to {}", mixed.len(), a.out.display());
    Ok(())
}
