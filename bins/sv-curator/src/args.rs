//! `sv-curator`'s command line: its subcommands and their flags. The doc comments are
//! the `--help` text, written for the terminal, not as rustdoc links.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// StreetVision curator: turns image sources and a miner's prediction log into training
/// manifests — exact and near-duplicate removal, hard cases mined from the miner's
/// failures, ensemble auto-labels, and a mix by source ratios.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Print the command's result as JSON on standard output (other lines go to standard
    /// error).
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Read sources into one manifest: labelled folders (`roadwork/`, `no_roadwork/`),
    /// NATIX parquet shards, synthetic generator outputs (with a prompt sidecar) and miner
    /// prediction logs; exact copies (same SHA-256) are kept once.
    Ingest(IngestArgs),
    /// Embed a manifest's images with a backbone (DINOv2 with registers or ConvNeXt-V2)
    /// into an index file; features are cached by (model, checkpoint hash, preprocessing).
    Embed(EmbedArgs),
    /// Remove near duplicates (cosine ≥ threshold) across all sources, keeping one per
    /// group: a test copy, else a validation copy, then labelled first, then by source
    /// order, then the smallest id. A group that spans train and a held-out split keeps
    /// its held-out copy (--on-leak drop-train) or stops the run (--on-leak fail).
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
pub struct IngestArgs {
    /// Output manifest (JSON Lines, written atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// A folder with `roadwork/` and `no_roadwork/` (or `1/`, `0/`) subfolders.
    #[arg(long, value_name = "DIR")]
    pub folder: Vec<PathBuf>,
    /// Source name of the --folder samples.
    #[arg(long, default_value = "folder")]
    pub folder_source: String,
    /// NATIX parquet shards (the dataset's label/scene_description rule applies).
    #[arg(long, value_name = "FILE")]
    pub natix: Vec<PathBuf>,
    /// A synthetic generator's output folder (labelled subfolders, or unlabelled).
    #[arg(long, value_name = "DIR")]
    pub synthetic: Vec<PathBuf>,
    /// JSON Lines of generator metadata (`file`, `prompt`, …, optional `label`) for the
    /// --synthetic folders.
    #[arg(long, value_name = "FILE")]
    pub prompts: Option<PathBuf>,
    /// A miner's log directory (`predictions*.jsonl`, `images/` from --store-images);
    /// `--miner-log` is the old spelling.
    #[arg(long = "log-dir", alias = "miner-log", value_name = "DIR")]
    pub miner_log: Vec<PathBuf>,
    /// Labels of the challenges sent to that miner (`sv-miner challenge --labels`),
    /// joined to its log by image id (repeatable).
    #[arg(long, value_name = "FILE")]
    pub challenge_labels: Vec<PathBuf>,
    /// Follow symbolic links inside --folder and --synthetic folders (each folder is
    /// walked once, so a link cycle ends). Without it, links are skipped and counted.
    #[arg(long)]
    pub follow_links: bool,
}

#[derive(Args, Debug)]
pub struct EmbedArgs {
    /// Manifest to embed.
    #[arg(long)]
    pub manifest: PathBuf,
    /// The model whose backbone embeds: a checkpoint (with config.json /
    /// preprocessor_config.json beside it) or an export directory (`--checkpoint` is the
    /// old spelling).
    #[arg(long = "model", alias = "checkpoint", value_name = "FILE_OR_DIR")]
    pub checkpoint: PathBuf,
    /// Output index file.
    #[arg(long)]
    pub out: PathBuf,
    /// Feature cache directory (default ~/.cache/streetvision-rs/features).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Device: cpu, cuda[:N], vulkan[:N] or wgpu (GPU backends need their build feature).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Images per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Index kind: `exact` (pure Rust, all-vs-all by matrix products), or with the
    /// `faiss` feature `flat`, `ivf:NLIST:NPROBE` (trained on the embeddings; e.g.
    /// ivf:4096:32) or `hnsw:M:EF` (e.g. hnsw:32:64) for pools of millions.
    #[arg(long, default_value = "exact")]
    pub kind: String,
}

#[derive(Args, Debug)]
pub struct DedupArgs {
    /// Manifest to deduplicate.
    #[arg(long)]
    pub manifest: PathBuf,
    /// Its index (`sv-curator embed`).
    #[arg(long)]
    pub index: PathBuf,
    /// Output manifest.
    #[arg(long)]
    pub out: PathBuf,
    /// Cosine similarity at or above which two images are near duplicates.
    #[arg(long, default_value_t = 0.95)]
    pub threshold: f32,
    /// Source preference, first kept first (comma-separated).
    #[arg(
        long,
        default_value = "natix,miner_log,hard_case,hard_negative,synthetic"
    )]
    pub source_order: String,
    /// Write the groups (kept and dropped ids, and whether each spanned train and a
    /// held-out split) here as JSON [default: <OUT>.groups.json].
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// A group that spans train and a held-out split (val or test): `drop-train` keeps
    /// the held-out copy and drops the train copies; `fail` writes those groups to the
    /// report and stops, writing no manifest.
    #[arg(long, default_value = "drop-train", value_name = "drop-train|fail")]
    pub on_leak: String,
}

#[derive(Args, Debug)]
pub struct MineArgs {
    /// The miner's log directory (`--log` is the old spelling).
    #[arg(long = "log-dir", alias = "log", value_name = "DIR")]
    pub log: PathBuf,
    /// Labels of challenges sent to the miner (`sv-miner challenge --labels`), joined
    /// to the log by image id so wrong answers are found, not only unsure ones
    /// (repeatable).
    #[arg(long, value_name = "FILE")]
    pub challenge_labels: Vec<PathBuf>,
    /// Index of the log's images (`ingest --miner-log` then `embed`).
    #[arg(long)]
    pub log_index: PathBuf,
    /// Pool manifest to mine neighbours from.
    #[arg(long)]
    pub pool: PathBuf,
    /// The pool's index.
    #[arg(long)]
    pub pool_index: PathBuf,
    /// Output hard-case manifest.
    #[arg(long)]
    pub out: PathBuf,
    /// Neighbours per failure.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// An unlabelled answer with confidence (|p − 0.5|·2) below this is a failure.
    #[arg(long, default_value_t = 0.2)]
    pub min_confidence: f32,
    /// Neighbours less similar than this are left out.
    #[arg(long, default_value_t = 0.5)]
    pub min_similarity: f32,
}

#[derive(Args, Debug)]
pub struct AutolabelArgs {
    /// Manifest with unlabelled or synthetic images.
    #[arg(long)]
    pub manifest: PathBuf,
    /// Ensemble file whose members vote.
    #[arg(long)]
    pub ensemble: PathBuf,
    /// Output manifest (labels filled where the members agree).
    #[arg(long)]
    pub out: PathBuf,
    /// Review list (JSON Lines: id, members' probabilities, reason).
    #[arg(long)]
    pub review: PathBuf,
    /// Every member must pick the class with at least this probability.
    #[arg(long, default_value_t = 0.8)]
    pub min_confidence: f32,
    /// Device: cpu, cuda[:N], vulkan[:N] or wgpu (GPU backends need their build feature).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

#[derive(Args, Debug)]
pub struct MixArgs {
    /// Input manifests.
    #[arg(long, required = true)]
    pub manifest: Vec<PathBuf>,
    /// Output manifest.
    #[arg(long)]
    pub out: PathBuf,
    /// Shares by source, `name=share,…` (default: the seed plan, natix 0.4, synthetic
    /// 0.3, hard_case 0.2, hard_negative 0.1).
    #[arg(long)]
    pub ratios: Option<String>,
    /// Mix size (default: as large as the policy allows).
    #[arg(long)]
    pub total: Option<usize>,
    /// A source short of its share: shrink, redistribute or oversample.
    #[arg(long, default_value = "redistribute")]
    pub policy: String,
    /// Seed of which samples are taken.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Train, validation and test fractions for samples without a split (hard cases,
    /// new sources); a sample's split comes from a hash of its id, so it never moves.
    #[arg(long, default_value = "0.8,0.1,0.1", value_name = "TRAIN,VAL,TEST")]
    pub splits: String,
    /// Write the report here as JSON (it is printed too).
    #[arg(long)]
    pub report: Option<PathBuf>,
}
