//! `sv-trainer`'s command line: the commands and their flags. The doc comments are the
//! `--help` text, written for the terminal, not as rustdoc links.
#![allow(rustdoc::broken_intra_doc_links)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use sv_train::quickstart;

/// StreetVision trainer: fine-tunes roadwork classifiers from a manifest, resumably.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Fine-tune a classifier on a manifest's train split, validating each epoch on its
    /// val split. The run directory gets config.toml, metrics.jsonl, checkpoint.safetensors
    /// (atomic, every --checkpoint-every steps and each epoch), model.safetensors and
    /// eval.json. SIGTERM (a spot instance's preemption notice) or Ctrl-C writes a
    /// checkpoint at the next step boundary and exits 75; `--resume` continues.
    Finetune(FinetuneArgs),
    /// Linear probe on a frozen backbone: features of the un-augmented images are cached
    /// on disk (keyed by architecture, checkpoint hash and preprocessing), so later probes
    /// compute only new images and train in seconds. Reports validation and test metrics.
    Probe(ProbeArgs),
    /// Score a model (a run directory or an exported repository) on a manifest split:
    /// accuracy, balanced accuracy, MCC, F1, ROC-AUC, Brier, ECE and the confusion
    /// matrix, overall and per source, and the latency at batch 1.
    Eval(EvalArgs),
    /// Compare a candidate with the model in production on the same held-out sets, as
    /// they are and as validator challenges (levels 0–3, 224² JPEG q75, fixed seeds):
    /// the subnet's reward, (0.5·max(0, MCC) + 0.5·accuracy)³, on the validator-style
    /// sets decides, with a paired bootstrap. The improvement asked falls with
    /// production's age, to "not worse" at 90 days. Exits 0 to deploy the candidate, 1
    /// to keep production, 2 on errors, so a daily loop can gate deployment on it.
    Ab(AbArgs),
    /// Fit an ensemble file's member weights and temperatures (minimum log-loss) on a
    /// manifest split and save them back (atomically) with a record of the fit.
    FitEnsemble(FitEnsembleArgs),
    /// Write a finished run's model in the Hugging Face transformers layout
    /// (ConvNextV2ForImageClassification or Dinov2WithRegistersForImageClassification):
    /// model.safetensors, config.json, preprocessor_config.json and the subnet's
    /// model_card.json.
    Export(ExportArgs),
    /// Publish an export directory to a Hugging Face model repository in one commit
    /// (weights, config.json, preprocessor_config.json, model_card.json, a README model
    /// card). Refuses a model_card.json whose submitted_by is not --hotkey, whose
    /// submission_time is not recent, or whose model_name is in --taken-names. Needs
    /// HF_TOKEN (or `huggingface-cli login`); HF_ENDPOINT selects the server.
    Publish(crate::publish::PublishArgs),
    /// Render a synthetic street-scene set, train a tiny ConvNeXt-V2 on it on the CPU and
    /// evaluate it on its held-out test split. No network, GPU or account needed.
    Quickstart(QuickstartArgs),
    /// The daily improvement cycle in one restartable command, configured by one TOML
    /// file: ingest the miner's log and challenge labels → dedup, mine, autolabel, mix →
    /// incremental fine-tune with hard negatives → age-aware reward gate → export with
    /// the model card → publish to the Hub → register with the subnet operator → record.
    /// Each step is journaled; a rerun after a crash or kill continues at the first
    /// unfinished step. Exits 0 when it published (or production is not yet due), 1 when
    /// the gate kept production, 2 on errors (production untouched).
    Loop(crate::loop_cmd::LoopArgs),
}

#[derive(Args, Debug)]
pub(crate) struct FinetuneArgs {
    /// Manifest (JSON Lines) with labels and splits.
    #[arg(long)]
    pub(crate) manifest: PathBuf,
    /// Run directory.
    #[arg(long)]
    pub(crate) run_dir: PathBuf,
    /// Training config (TOML); flags below override it, it overrides the defaults.
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Continue the run in --run-dir from its last checkpoint (with its own config.toml).
    /// With hf://ORG/NAME[@BRANCH] (a --checkpoint-sync target), first download that
    /// branch's newest checkpoint, config.toml and metrics.jsonl into a new --run-dir: a
    /// run preempted on one machine continues on another, bit for bit on the CPU.
    #[arg(
        long,
        conflicts_with = "force",
        num_args = 0..=1,
        default_missing_value = "",
        value_name = "hf://ORG/NAME[@BRANCH]"
    )]
    pub(crate) resume: Option<String>,
    /// Push every checkpoint, with config.toml and metrics.jsonl, and at the end the
    /// model and eval.json, to this Hub branch (a private repository, created when
    /// missing) from a background thread. Needs HF_TOKEN; HF_ENDPOINT selects the server.
    #[arg(long, value_name = "hf://ORG/NAME[@BRANCH]")]
    pub(crate) checkpoint_sync: Option<String>,
    /// Start a new run in a --run-dir that holds one already, replacing it (without
    /// this or --resume, such a directory is refused).
    #[arg(long)]
    pub(crate) force: bool,
    /// Model to start from: a Hugging Face model ORG/NAME[@REV] (DINOv2 with registers
    /// or ConvNeXt-V2, e.g. facebook/convnextv2-atto-1k-224; downloaded into the shared HF
    /// cache), a local checkpoint of either family, or a ConvNeXt-V2 with random weights
    /// named convnextv2-{atto,femto,pico,nano,tiny,small,base,large,huge} or
    /// convnextv2-quickstart [default: convnextv2-atto]. A head is kept when it has two
    /// labels whose roadwork label resolves from config.json; otherwise a new one.
    #[arg(long, value_name = "ORG/NAME[@REV]|CHECKPOINT|NAME")]
    pub(crate) model: Option<String>,
    /// Passes over the training split [default: 10].
    #[arg(long)]
    pub(crate) epochs: Option<u64>,
    /// Images per step [default: 32].
    #[arg(long)]
    pub(crate) batch_size: Option<usize>,
    /// Peak learning rate of the head [default: 0.001].
    #[arg(long)]
    pub(crate) lr: Option<f64>,
    /// Peak learning rate of the backbone's top layer [default: 0.0002].
    #[arg(long)]
    pub(crate) backbone_lr: Option<f64>,
    /// Augmentation preset (heavy, validator) or pipeline file [default: heavy].
    #[arg(long)]
    pub(crate) augment: Option<String>,
    /// Seed [default: 0].
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Steps between checkpoints [default: 200].
    #[arg(long)]
    pub(crate) checkpoint_every: Option<u64>,
    /// Continue from a finished run (its directory, or its model.safetensors or
    /// checkpoint.safetensors) on this manifest: its weights and, without --config, its
    /// config; a fresh optimizer and schedule. Lower --lr and --epochs suit new data
    /// added to a model that already works.
    #[arg(long, value_name = "RUN")]
    pub(crate) incremental: Option<PathBuf>,
    /// Add the auxiliary supervised-contrastive loss with synthetic hard negatives
    /// (temperature 0.07, weight 0.1, a 4096-feature bank, 8 negatives per anchor; tune
    /// them in the [hard_negatives] table of --config).
    #[arg(long)]
    pub(crate) hard_negatives: bool,
    /// What the forward and backward passes compute in: f32, bf16 or f16 (f16 with
    /// dynamic loss scaling) [default: f32]. Weights, optimizer state and the loss stay
    /// f32; validation runs in this precision. Half precision is for GPUs: on the CPU it
    /// is slower than f32.
    #[arg(long)]
    pub(crate) precision: Option<sv_models::Precision>,
    /// Recompute element-wise activations in the backward pass instead of keeping them:
    /// less memory (large models or batches on a small card) for more compute.
    #[arg(long)]
    pub(crate) gradient_checkpointing: bool,
    /// Print the result as JSON on standard output (other lines go to standard error).
    #[arg(long)]
    pub(crate) json: bool,
    /// Device: cpu, cuda[:N], vulkan[:N] or wgpu (GPU backends need their build feature).
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,
}

#[derive(Args, Debug)]
pub(crate) struct ProbeArgs {
    /// Backbone: a checkpoint (DINOv2 with registers or ConvNeXt-V2, any layout; a head in
    /// it is ignored) or a Hugging Face model ORG/NAME[@REV] (downloaded into the shared HF
    /// cache, e.g. facebook/dinov2-with-registers-small). preprocessor_config.json beside
    /// it sets the preprocessing.
    #[arg(long, value_name = "CHECKPOINT|ORG/NAME[@REV]")]
    pub(crate) backbone: String,
    /// Manifest with labels and splits.
    #[arg(long)]
    pub(crate) manifest: PathBuf,
    /// Run directory for probe.json and eval.json.
    #[arg(long)]
    pub(crate) run_dir: PathBuf,
    /// Feature cache folder [default: ~/.cache/streetvision-rs/features].
    #[arg(long)]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Full-batch AdamW passes.
    #[arg(long, default_value_t = 300)]
    pub(crate) epochs: u64,
    /// Learning rate.
    #[arg(long, default_value_t = 0.01)]
    pub(crate) lr: f64,
    /// Weight decay.
    #[arg(long, default_value_t = 1e-4)]
    pub(crate) weight_decay: f64,
    /// Print the result as JSON on standard output (other lines go to standard error).
    #[arg(long)]
    pub(crate) json: bool,
    /// Device: cpu, cuda[:N], vulkan[:N] or wgpu (GPU backends need their build feature).
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,
}

#[derive(Args, Debug)]
pub(crate) struct EvalArgs {
    /// A run directory or an exported repository (model.safetensors + config.json).
    #[arg(long)]
    pub(crate) model: PathBuf,
    /// Manifest with labels and splits.
    #[arg(long)]
    pub(crate) manifest: PathBuf,
    /// Split to score: test, val, train or all.
    #[arg(long, default_value = "test")]
    pub(crate) split: String,
    /// Images to time one at a time (0: no latency).
    #[arg(long, default_value_t = 50)]
    pub(crate) latency: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// Device: cpu, cuda[:N], vulkan[:N] or wgpu (GPU backends need their build feature).
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,
    /// Precision of the forward pass: f32, bf16 or f16 [default: f32]. Half precision is
    /// for GPUs; answers stay within about 0.03 (bf16) or 0.005 (f16) of f32's.
    #[arg(long, default_value = "f32")]
    pub(crate) precision: sv_models::Precision,
}

#[derive(Args, Debug)]
pub(crate) struct AbArgs {
    /// The candidate: a run directory or an exported repository.
    #[arg(long)]
    pub(crate) candidate: PathBuf,
    /// The model in production: a run directory or an exported repository.
    #[arg(long)]
    pub(crate) production: PathBuf,
    /// A held-out set, NAME=MANIFEST (repeatable: real, synthetic out-of-distribution…).
    #[arg(long = "set", required = true, value_name = "NAME=MANIFEST")]
    pub(crate) sets: Vec<String>,
    /// Split of each manifest to use: test, val, train or all.
    #[arg(long, default_value = "test")]
    pub(crate) split: String,
    /// Improvement in subnet-reward points (1 point = 0.01 of reward) asked of a
    /// candidate against a new production model; it falls linearly to 0 ("not worse")
    /// as production reaches 90 days.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) threshold: f64,
    /// Production's age in days [default: from its model_card.json's submission_time;
    /// unknown counts as new].
    #[arg(long)]
    pub(crate) production_age_days: Option<f64>,
    /// Seed of the validator-style challenges drawn from each set's images.
    #[arg(long, default_value_t = 0)]
    pub(crate) challenge_seed: u64,
    /// Bootstrap resamples.
    #[arg(long, default_value_t = 2000)]
    pub(crate) resamples: usize,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// Device: cpu, cuda[:N], vulkan[:N] or wgpu (GPU backends need their build feature).
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,
    /// Precision of the forward pass: f32, bf16 or f16 [default: f32]. Half precision is
    /// for GPUs; answers stay within about 0.03 (bf16) or 0.005 (f16) of f32's.
    #[arg(long, default_value = "f32")]
    pub(crate) precision: sv_models::Precision,
}

#[derive(Args, Debug)]
pub(crate) struct FitEnsembleArgs {
    /// The ensemble file (JSON; see sv-miner classify --ensemble).
    #[arg(long)]
    pub(crate) ensemble: PathBuf,
    /// Manifest with labels and splits.
    #[arg(long)]
    pub(crate) manifest: PathBuf,
    /// Split to fit on: val, test, train or all.
    #[arg(long, default_value = "val")]
    pub(crate) split: String,
    /// Keep the weights as they are (fit temperatures only).
    #[arg(long)]
    pub(crate) no_weights: bool,
    /// Keep the temperatures as they are (fit weights only).
    #[arg(long)]
    pub(crate) no_temperatures: bool,
    /// Where to save the fitted file [default: over --ensemble].
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Print the result as JSON on standard output (other lines go to standard error).
    #[arg(long)]
    pub(crate) json: bool,
    /// Device: cpu, cuda[:N], vulkan[:N] or wgpu (GPU backends need their build feature).
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,
}

#[derive(Args, Debug)]
pub(crate) struct ExportArgs {
    /// A finished run directory (with config.toml and model.safetensors).
    #[arg(long)]
    pub(crate) run_dir: PathBuf,
    /// Output directory (the files of the model repository).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// model_card.json: the model's unique name.
    #[arg(long)]
    pub(crate) model_name: String,
    /// model_card.json: the miner's hotkey (SS58) that submits the model.
    #[arg(long)]
    pub(crate) hotkey: String,
    /// model_card.json: version.
    #[arg(long, default_value = "1.0.0")]
    pub(crate) version: String,
    /// model_card.json: description.
    #[arg(
        long,
        default_value = "Roadwork classifier for StreetVision (netuid 72), trained with streetvision-rs"
    )]
    pub(crate) description: String,
    /// Print the result as JSON on standard output (other lines go to standard error).
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct QuickstartArgs {
    /// Where the data, pipeline and run go.
    #[arg(long, default_value = "sv-quickstart")]
    pub(crate) dir: PathBuf,
    /// Scenes to render.
    #[arg(long, default_value_t = quickstart::DEFAULT_SCENES)]
    pub(crate) scenes: u64,
    /// Passes over the training split.
    #[arg(long, default_value_t = 20)]
    pub(crate) epochs: u64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Print the result as JSON on standard output (other lines go to standard error).
    #[arg(long)]
    pub(crate) json: bool,
}
