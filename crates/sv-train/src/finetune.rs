//! Fine-tuning a roadwork classifier, resumable: AdamW with separate backbone and head
//! learning rates, layer-wise decay, warmup then cosine, gradient clipping, drop path,
//! class-balanced sampling and augmentation. A run directory holds the resolved config,
//! metrics as JSON Lines, the latest checkpoint (written atomically every
//! `checkpoint_every` steps and at each epoch's end) and the final weights. A run killed
//! at any point continues from its last checkpoint and ends with the same weights as a
//! run that was never interrupted.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::Device;
use burn::tensor::activation::softmax;
use serde::{Deserialize, Serialize};
use sv_augment::{Pipeline, Step};
use sv_data::{ImageBatcher, Label, Sample, SampleDataset, Split, epoch_batches};
use sv_models::preprocess::Preprocessor;
use sv_models::{
    ConvNextV2, ConvNextV2Classifier, ConvNextV2Config, Family, FamilyFn, Network, Precision,
};

use crate::checkpoint::{Checkpoint, Position, atomic_write, load_params, values_of};
use crate::error::{Result, TrainError};
use crate::hard_negatives::HardNegatives;
use crate::metrics::Report;

/// A fine-tuning run's settings. In a TOML file every key is optional; unknown keys are
/// refused by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FinetuneConfig {
    /// A checkpoint to start from (DINOv2 with registers or ConvNeXt-V2, any layout the
    /// loaders read; its head is kept when it has two labels, else a new one is made), or
    /// `convnextv2-<atto…huge>` / `convnextv2-quickstart` (a 0.2 M-parameter ConvNeXt-V2
    /// for CPU demos) from scratch.
    pub model: String,
    /// Input side in pixels.
    pub image_size: u32,
    /// Passes over the training split.
    pub epochs: u64,
    /// Images per step.
    pub batch_size: usize,
    /// Peak learning rate of the head (the last layer group).
    pub lr: f64,
    /// Peak learning rate of the backbone's top layer, decayed by `layer_decay` per
    /// layer below it.
    pub backbone_lr: f64,
    /// Learning-rate factor per layer.
    pub layer_decay: f64,
    /// Decoupled weight decay (not on biases, norms, tokens, position embeddings).
    pub weight_decay: f64,
    /// Linear warmup steps.
    pub warmup_steps: u64,
    /// Final learning rate as a fraction of the peak.
    pub min_lr_ratio: f64,
    /// Clip the global gradient norm to this (0: no clipping).
    pub clip: f64,
    /// Stochastic depth rate of the last block.
    pub drop_path: f64,
    /// Decay of an exponential moving average of the weights, which is then what is
    /// validated and saved as the final model (0: no average).
    pub ema: f64,
    /// Draw training batches class-balanced (else a shuffled pass).
    pub balanced: bool,
    /// Augmentation: a preset (`heavy`, `validator`) or a pipeline TOML file.
    pub augment: String,
    /// Seed of everything random in the run.
    pub seed: u64,
    /// Steps between checkpoints.
    pub checkpoint_every: u64,
    /// Continue from a finished run's weights (its directory, or one of its
    /// `model.safetensors` / `checkpoint.safetensors`) instead of `model`'s: training
    /// on new data with a fresh optimizer and schedule. `model` must be the one that run
    /// started from.
    pub incremental: Option<String>,
    /// The auxiliary contrastive loss with synthetic hard negatives (off when absent).
    pub hard_negatives: Option<HardNegatives>,
    /// What the forward and backward passes compute in: `f32`, `bf16` or `f16` (with
    /// dynamic loss scaling). The weights, optimizer moments and loss stay f32, and
    /// validation runs in this precision. Written to `config.toml` only when not f32.
    #[serde(skip_serializing_if = "is_f32")]
    pub precision: Precision,
    /// Recompute the memory-bound activations (element-wise ops, norms) in the backward
    /// pass instead of keeping them: less memory for large models or batches, more
    /// compute. The weights come out the same. Written to `config.toml` only when on.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub gradient_checkpointing: bool,
}

fn is_f32(p: &Precision) -> bool {
    *p == Precision::F32
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        Self {
            model: "convnextv2-atto".into(),
            image_size: 224,
            epochs: 10,
            batch_size: 32,
            lr: 1e-3,
            backbone_lr: 2e-4,
            layer_decay: 0.65,
            weight_decay: 0.05,
            warmup_steps: 100,
            min_lr_ratio: 0.01,
            clip: 3.0,
            drop_path: 0.1,
            ema: 0.0,
            balanced: true,
            augment: "heavy".into(),
            seed: 0,
            checkpoint_every: 200,
            incremental: None,
            hard_negatives: None,
            precision: Precision::F32,
            gradient_checkpointing: false,
        }
    }
}

impl FinetuneConfig {
    /// Parse TOML; `source_name` appears in errors.
    pub fn from_toml(text: &str, source_name: &str) -> Result<Self> {
        let cfg: Self = toml::from_str(text).map_err(|e| TrainError::Config {
            source_name: source_name.to_string(),
            reason: e.to_string(),
        })?;
        cfg.validate(source_name)?;
        Ok(cfg)
    }

    /// The config a run continuing from `source` (see [`incremental`](Self::incremental))
    /// starts with: the source run's own config, pointing at it.
    pub fn continuing(source: &Path) -> Result<Self> {
        let file = incremental_source(source);
        let mut cfg = Self::of_checkpoint(&Checkpoint::load(&file)?, &file)?
            .found_from(file.parent().unwrap_or(Path::new(".")));
        cfg.incremental = Some(source.to_string_lossy().into_owned());
        Ok(cfg)
    }

    /// The run config a checkpoint read from `file` was written with.
    fn of_checkpoint(ck: &Checkpoint, file: &Path) -> Result<Self> {
        let text = ck
            .meta
            .get("config")
            .ok_or_else(|| TrainError::Checkpoint {
                path: file.to_path_buf(),
                reason: "holds no run config: not written by sv-trainer finetune".into(),
            })?;
        Self::from_toml(text, &format!("{} (its run config)", file.display()))
    }

    /// This config without `incremental`: what builds the network when its weights come
    /// from elsewhere (the run's own checkpoint or final model).
    fn without_incremental(&self) -> Self {
        Self {
            incremental: None,
            ..self.clone()
        }
    }

    /// This config with a pipeline file named relative to the working directory made
    /// absolute, so that the run it is saved with reads the same from anywhere.
    pub fn anchored(&self) -> Self {
        let augment = Path::new(&self.augment);
        let mut out = self.clone();
        if augment.is_relative()
            && augment.is_file()
            && let Ok(abs) = std::path::absolute(augment)
        {
            out.augment = abs.to_string_lossy().into_owned();
        }
        out
    }

    /// This config as read with the run in `dir`: a run written before pipeline paths
    /// were stored absolute names its pipeline relative to where it was started, so a
    /// relative path that is not a file from here is looked for beside the run and
    /// above it.
    fn found_from(mut self, dir: &Path) -> Self {
        let augment = Path::new(&self.augment);
        if augment.is_relative() && !augment.is_file() {
            let root = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
            if let Some(found) = root
                .ancestors()
                .map(|a| a.join(augment))
                .find(|p| p.is_file())
            {
                self.augment = found.to_string_lossy().into_owned();
            }
        }
        self
    }

    /// The config as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("serialisable")
    }

    /// Check ranges, naming the key at fault.
    pub fn validate(&self, source_name: &str) -> Result<()> {
        let bad = |key: &str, why: &str| {
            Err(TrainError::Config {
                source_name: source_name.to_string(),
                reason: format!("{key}: {why}"),
            })
        };
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1");
        }
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1");
        }
        if !(self.lr > 0.0 && self.backbone_lr >= 0.0) {
            return bad("lr", "learning rates must be positive");
        }
        if !(0.0..=1.0).contains(&self.layer_decay) {
            return bad("layer_decay", "must be in [0, 1]");
        }
        if !(0.0..1.0).contains(&self.drop_path) {
            return bad("drop_path", "must be in [0, 1)");
        }
        if !(0.0..1.0).contains(&self.ema) {
            return bad("ema", "must be in [0, 1)");
        }
        if self.checkpoint_every == 0 {
            return bad("checkpoint_every", "must be at least 1");
        }
        if let Some(problem) = self
            .hard_negatives
            .as_ref()
            .and_then(HardNegatives::problem)
        {
            let (key, why) = problem.split_once(": ").unwrap_or((&problem, ""));
            return bad(key, why);
        }
        if model_config(&self.model, self.drop_path).is_none()
            && !Path::new(&self.model).is_file()
            && sv_models::hub::parse_hub_id(&self.model).is_none()
        {
            return bad(
                "model",
                "neither a checkpoint file, a Hugging Face model ORG/NAME[@REV], nor a \
                 known model (convnextv2-atto … convnextv2-huge, convnextv2-quickstart)",
            );
        }
        Ok(())
    }
}

/// The checkpoint file an `incremental` path names: a run directory's final
/// `model.safetensors`, or the file itself.
pub fn incremental_source(path: &Path) -> PathBuf {
    if path.is_dir() {
        RunDir {
            root: path.to_path_buf(),
        }
        .model()
    } else {
        path.to_path_buf()
    }
}

/// The network of a `model` name, with `drop_path` as its stochastic depth rate.
pub fn model_config(name: &str, drop_path: f64) -> Option<ConvNextV2Config> {
    let mut cfg = if name == "convnextv2-quickstart" {
        let mut c = ConvNextV2Config::atto();
        c.depths = vec![1, 1, 2, 1];
        c.dims = vec![16, 32, 64, 128];
        c
    } else {
        ConvNextV2Config::by_name(name)?
    };
    cfg.drop_path_rate = drop_path;
    Some(cfg)
}

pub use sv_models::Logits;

/// What a run reports as it goes.
#[derive(Debug, Clone)]
pub enum Event {
    /// A step finished.
    Step {
        /// Steps taken so far.
        step: u64,
        /// Steps in the whole run.
        total: u64,
        /// Mean cross-entropy of the batch.
        loss: f64,
        /// Learning rate of the head.
        lr: f64,
    },
    /// An epoch finished and was evaluated on the validation split.
    Epoch {
        /// The epoch (0-based).
        epoch: u64,
        /// Validation metrics.
        report: Box<Report>,
        /// Training images left out this epoch because they could no longer be read or
        /// decoded.
        left_out: usize,
    },
    /// A checkpoint was written.
    Checkpoint {
        /// Its file.
        path: PathBuf,
        /// Where the run stood.
        position: Position,
    },
    /// The run continues from a checkpoint.
    Resumed {
        /// Where it stood.
        position: Position,
    },
}

/// Files of a run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// The directory.
    pub root: PathBuf,
}

impl RunDir {
    /// The resolved config.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    /// Whether the directory holds a run already: its config, a checkpoint or final
    /// weights.
    pub fn holds_run(&self) -> bool {
        [self.config(), self.checkpoint(), self.model()]
            .iter()
            .any(|p| p.exists())
    }
    /// Make way for a new run: refuse a directory that [holds a run](Self::holds_run)
    /// unless `force`; with `force`, remove its final weights and evaluation first, so
    /// a new run killed early leaves no old result that looks like its own (the new run
    /// replaces the log and checkpoint as it starts).
    pub fn prepare_new(&self, force: bool) -> Result<()> {
        if !self.holds_run() {
            return Ok(());
        }
        if !force {
            return Err(TrainError::Config {
                source_name: self.root.display().to_string(),
                reason: "holds a run already (config.toml, checkpoint or model.safetensors); \
                         continue it with --resume, give a new --run-dir, or replace it with \
                         --force"
                    .into(),
            });
        }
        for path in [self.model(), self.eval()] {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(TrainError::io(&path, e));
                }
                _ => {}
            }
        }
        Ok(())
    }
    /// The run's resolved config, read from [`config`](Self::config); an error names
    /// the directory and asks whether it is a run directory.
    pub fn read_config(&self) -> Result<FinetuneConfig> {
        let path = self.config();
        let text = std::fs::read_to_string(&path).map_err(|e| TrainError::Config {
            source_name: self.root.display().to_string(),
            reason: format!("reading {} (is this a run directory?): {e}", path.display()),
        })?;
        let config = FinetuneConfig::from_toml(&text, &path.display().to_string())?;
        Ok(config.found_from(&self.root))
    }
    /// Metrics, one JSON object per line.
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }
    /// The latest checkpoint.
    pub fn checkpoint(&self) -> PathBuf {
        self.root.join("checkpoint.safetensors")
    }
    /// The final weights (parameters by module path).
    pub fn model(&self) -> PathBuf {
        self.root.join("model.safetensors")
    }
    /// The final evaluation.
    pub fn eval(&self) -> PathBuf {
        self.root.join("eval.json")
    }
    /// Plots of the run (PNG): loss, validation metrics, ROC, confusion matrix.
    pub fn plots(&self) -> PathBuf {
        self.root.join("plots")
    }
}

/// Append one JSON line to the metrics log and sync it.
pub(crate) fn log_metrics(path: &Path, value: &serde_json::Value) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| TrainError::io(path, e))?;
    writeln!(f, "{value}").map_err(|e| TrainError::io(path, e))?;
    f.sync_data().map_err(|e| TrainError::io(path, e))
}

/// Keep only the metric lines up to `step` (a resumed run redoes the steps after its
/// checkpoint), rewriting the log atomically; a torn last line is dropped.
pub(crate) fn truncate_metrics(path: &Path, step: u64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    // Kept lines are copied as written: parsing and printing them again could move a
    // float by one unit in the last place (serde_json parses floats fast, not exactly).
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .is_ok_and(|v| v["step"].as_u64().is_some_and(|s| s <= step))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    atomic_write(path, kept.as_bytes())
}

/// The splits a run trains and validates on.
pub struct Data {
    /// Training samples.
    pub train: Vec<Sample>,
    /// Validation samples.
    pub val: Vec<Sample>,
}

impl Data {
    /// Take the train and validation splits of labelled samples.
    pub fn from_samples(samples: Vec<Sample>) -> Result<Self> {
        let labelled = samples.into_iter().filter(|s| s.label != Label::Unknown);
        let (mut train, mut val) = (Vec::new(), Vec::new());
        for s in labelled {
            match s.split {
                Some(Split::Train) => train.push(s),
                Some(Split::Val) => val.push(s),
                _ => {}
            }
        }
        if train.is_empty() {
            return Err(TrainError::Empty(
                "no labelled training samples (assign splits to the manifest first)".into(),
            ));
        }
        // A manifest pointing at files that are gone is an error up front, not a run
        // that quietly trains on fewer images.
        let missing: Vec<String> = train
            .iter()
            .chain(&val)
            .filter_map(|s| match &s.location {
                sv_data::Location::File { path } if !path.is_file() => {
                    Some(path.display().to_string())
                }
                sv_data::Location::Parquet { path, .. } if !path.is_file() => {
                    Some(path.display().to_string())
                }
                _ => None,
            })
            .collect();
        if !missing.is_empty() {
            return Err(TrainError::Empty(format!(
                "{} image files of the manifest are missing, e.g. {}",
                missing.len(),
                missing
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(Self { train, val })
    }
}

pub(crate) fn seed_for(seed: u64, step: u64) -> u64 {
    let mut z = seed ^ step.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A pipeline that only resizes to `size × size` with PIL's bicubic (validation, and the
/// `ConvNextImageProcessor` an export declares), with `normalise` of the training
/// pipeline.
pub(crate) fn eval_pipeline(train: &Pipeline, size: u32) -> Pipeline {
    Pipeline {
        steps: vec![Step::ResizeTo {
            width: size,
            height: size,
            filter: sv_augment::Filter::Bicubic,
        }],
        normalise: train.normalise,
    }
}

/// A pipeline that resizes to `size × size` and normalises with ImageNet's statistics
/// (the input of an exported model).
pub fn resize_pipeline(size: u32) -> Pipeline {
    eval_pipeline(&Pipeline::default(), size)
}

/// The validation pipeline of `config` (resize only, the training pipeline's
/// normalisation).
pub fn eval_pipeline_for(config: &FinetuneConfig) -> Result<Pipeline> {
    Ok(eval_pipeline(
        &Pipeline::load(&config.augment)?,
        config.image_size,
    ))
}

/// The final model of a finished run, on `device`.
pub fn load_trained(run: &RunDir, config: &FinetuneConfig, device: &Device) -> Result<Network> {
    let ck = Checkpoint::load(&run.model())?;
    // The run's own weights replace whatever it started from.
    initial_model(&config.without_incremental(), device)?.apply(LoadParams {
        values: &ck.model,
        file: &run.model(),
    })
}

/// A model to score and how its input is prepared: a run directory (its final weights
/// and validation pipeline), a probe's run directory (its backbone with the probe's head,
/// and the backbone's preprocessing) or an exported repository (`model.safetensors` and
/// `config.json`, its `image_size` resized to, label 1 roadwork).
pub fn load_scored(path: &Path, device: &Device) -> Result<(Network, ScoredInput)> {
    if crate::probe::is_probe_run(path) {
        let (network, pre) = crate::probe::load_network(path, device)?;
        return Ok((network, ScoredInput::Processor(Arc::new(pre))));
    }
    let run = RunDir {
        root: path.to_path_buf(),
    };
    if run.config().exists() {
        let config = run.read_config()?;
        let model = load_trained(&run, &config, device)?;
        return Ok((model, eval_pipeline_for(&config)?.into()));
    }
    let weights = path.join("model.safetensors");
    let config = path.join("config.json");
    if !(weights.exists() && config.exists()) {
        return Err(TrainError::Config {
            source_name: path.display().to_string(),
            reason: "neither a run directory (config.toml) nor an exported repository \
                     (model.safetensors + config.json)"
                .into(),
        });
    }
    let network = Network::load(&weights, &Default::default(), device)?;
    let text = std::fs::read_to_string(&config).map_err(|e| TrainError::io(&config, e))?;
    let roadwork =
        sv_models::labels::roadwork_index_from_config(&text, network.num_labels(), &config)?;
    let model = network.with_roadwork_as_label_one(roadwork)?;
    let size = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["image_size"].as_u64())
        .and_then(|s| u32::try_from(s).ok())
        .unwrap_or(224);
    Ok((model, resize_pipeline(size).into()))
}

/// How a scored model's input is prepared: an augmentation pipeline (a run's validation
/// pipeline, an export's resize) or a checkpoint's own preprocessing (a probe's
/// backbone).
#[derive(Debug, Clone)]
pub enum ScoredInput {
    /// An sv-augment pipeline: its steps, then its normalisation.
    Pipeline(Arc<Pipeline>),
    /// A transformers image processor: resize, centre crop, normalise.
    Processor(Arc<Preprocessor>),
}

impl From<Arc<Pipeline>> for ScoredInput {
    fn from(pipeline: Arc<Pipeline>) -> Self {
        ScoredInput::Pipeline(pipeline)
    }
}

impl From<Pipeline> for ScoredInput {
    fn from(pipeline: Pipeline) -> Self {
        ScoredInput::Pipeline(Arc::new(pipeline))
    }
}

impl ScoredInput {
    /// A batcher that prepares images this way.
    pub fn batcher(&self) -> ImageBatcher {
        match self {
            ScoredInput::Pipeline(p) => ImageBatcher::augmenting(p.clone(), 0),
            ScoredInput::Processor(pre) => {
                // The batcher divides by 255; a processor rescales by `rescale`:
                // (v·r − m)/s = (v/255 − m/(255·r)) / (s/(255·r)).
                let k = (255.0 * pre.rescale) as f32;
                let normalise = sv_augment::Normalise {
                    mean: pre.mean.map(|m| m / k),
                    std: pre.std.map(|s| s / k),
                };
                let pre = pre.clone();
                ImageBatcher::new(Arc::new(move |img, _| pre.resize_crop(&img)), normalise, 0)
            }
        }
    }
}

/// Two-label one-hot targets `[B, 2]` of 0/1 roadwork targets (above 0.5: label 1),
/// as the fine-tuning step's cross-entropy reads them.
pub fn one_hot(targets: &[f32], device: &Device) -> burn::tensor::Tensor<2> {
    let mut values = vec![0f32; targets.len() * 2];
    for (i, t) in targets.iter().enumerate() {
        values[i * 2 + usize::from(*t > 0.5)] = 1.0;
    }
    burn::tensor::Tensor::from_data(
        burn::tensor::TensorData::new(values, [targets.len(), 2]),
        device,
    )
}

/// Roadwork probabilities of `samples` (in order; unreadable ones left out) with their
/// labels. A batch whose images could not be read is skipped; when no image at all could
/// be read, the error names how many there were and why the first failed.
pub fn predict<M: Logits>(
    model: &M,
    samples: &[Sample],
    input: impl Into<ScoredInput>,
    batch_size: usize,
    device: &Device,
) -> Result<Vec<(f64, bool)>> {
    let batcher = Arc::new(input.into().batcher());
    let dataset = Arc::new(SampleDataset::new(samples.to_vec()));
    let mut out = Vec::with_capacity(samples.len());
    for batch in epoch_batches(
        dataset,
        batcher,
        (0..samples.len()).collect(),
        batch_size,
        2,
        device.clone(),
    ) {
        if batch.ids.is_empty() {
            continue;
        }
        let values = values_of(softmax(model.logits(batch.pixels), 1));
        let targets = values_of(batch.targets);
        for (i, t) in targets.iter().enumerate() {
            out.push((f64::from(values[i * 2 + 1]), *t > 0.5));
        }
    }
    match samples.first() {
        Some(first) if out.is_empty() => Err(TrainError::Empty(format!(
            "none of the {} images could be read; the first, {}: {}",
            samples.len(),
            first.location,
            why_unreadable(first)
        ))),
        _ => Ok(out),
    }
}

/// Why `sample`'s image cannot be used: the read or decode error.
fn why_unreadable(sample: &Sample) -> String {
    match sample.location.read() {
        Err(e) => e.to_string(),
        Ok(bytes) => match sv_data::decode_image(&bytes, sv_data::DEFAULT_MAX_PIXELS) {
            Err(e) => e.to_string(),
            Ok(_) => "read and decoded, but the pipeline gave no image".into(),
        },
    }
}

/// Train `config` on `data` in `run`, from scratch or (with `resume`) from the run's
/// checkpoint, on `device` (an autodiff device), reporting through `events`. Returns the
/// final validation report.
pub fn finetune(
    config: &FinetuneConfig,
    data: &Data,
    run: &RunDir,
    resume: bool,
    device: &Device,
    events: &mut dyn FnMut(Event),
) -> Result<Report> {
    config.validate("<config>")?;
    refuse_own_source(config, run)?;
    std::fs::create_dir_all(&run.root).map_err(|e| TrainError::io(&run.root, e))?;
    let device = &if config.gradient_checkpointing {
        device.clone().gradient_checkpointing()
    } else {
        device.clone()
    };
    device.seed(config.seed);
    // A resumed run takes its weights from its checkpoint: an incremental run's source
    // is not read again (it may be gone by now).
    let start = if resume && run.checkpoint().exists() {
        config.without_incremental()
    } else {
        config.clone()
    };
    initial_model(&start, device)?.apply(TrainLoop {
        config,
        data,
        run,
        resume,
        device,
        events,
    })
}

/// A network of any family with parameters replaced by `values` (read from `file`).
struct LoadParams<'a> {
    values: &'a crate::checkpoint::Values,
    file: &'a Path,
}

impl FamilyFn for LoadParams<'_> {
    type Output = Result<Network>;
    fn apply<F: Family>(self, model: F) -> Result<Network> {
        Ok(load_params(model, self.values, self.file)?.into())
    }
}

/// The training loop on whichever family the initial network is.
struct TrainLoop<'a> {
    config: &'a FinetuneConfig,
    data: &'a Data,
    run: &'a RunDir,
    resume: bool,
    device: &'a Device,
    events: &'a mut dyn FnMut(Event),
}

impl FamilyFn for TrainLoop<'_> {
    type Output = Result<Report>;
    fn apply<F: Family>(self, model: F) -> Result<Report> {
        crate::train_loop::train_loop(
            model,
            self.config,
            self.data,
            self.run,
            self.resume,
            self.device,
            self.events,
        )
    }
}

/// Refuse an incremental run whose source is the run's own directory.
pub fn refuse_own_source(config: &FinetuneConfig, run: &RunDir) -> Result<()> {
    if let Some(source) = &config.incremental {
        let file = incremental_source(Path::new(source));
        let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if file.parent().is_some_and(|p| same(p, &run.root)) {
            return Err(TrainError::Config {
                source_name: "<config>".into(),
                reason: format!(
                    "incremental: {source} is this run's own directory; give the new run \
                     a directory of its own"
                ),
            });
        }
    }
    Ok(())
}

/// The model a run starts from: a checkpoint (its two-label head kept, else a new zero
/// head) or a named network with random weights, with the run's drop path rate; with
/// `incremental`, that network carrying the source run's final weights (its moving
/// average, when it kept one).
pub fn initial_model(config: &FinetuneConfig, device: &Device) -> Result<Network> {
    if let Some(source) = &config.incremental {
        let file = incremental_source(Path::new(source));
        if !file.is_file() {
            return Err(TrainError::Config {
                source_name: "<config>".into(),
                reason: format!(
                    "incremental: {source} is neither a run directory with a \
                     model.safetensors nor a checkpoint file"
                ),
            });
        }
        let ck = Checkpoint::load(&file)?;
        let source_config = FinetuneConfig::of_checkpoint(&ck, &file)?;
        if source_config.model != config.model {
            return Err(TrainError::Config {
                source_name: "<config>".into(),
                reason: format!(
                    "incremental: {} started from model {:?}, this run names {:?}",
                    file.display(),
                    source_config.model,
                    config.model
                ),
            });
        }
        let weights = if ck.ema.is_empty() {
            &ck.model
        } else {
            &ck.ema
        };
        return initial_model(&config.without_incremental(), device)?.apply(LoadParams {
            values: weights,
            file: &file,
        });
    }
    if let Some(cfg) = model_config(&config.model, config.drop_path) {
        return Ok(Network::ConvNextV2(ConvNextV2Classifier::with_new_head(
            ConvNextV2::random(&cfg, device)?,
            2,
        )));
    }
    // A local checkpoint, or a Hub model (`ORG/NAME[@REV]`) fetched into the shared cache.
    let path = sv_models::hub::resolve_checkpoint(&config.model)?;
    let mut model = start_from_checkpoint(&path, device)?;
    model.set_drop_path(config.drop_path);
    Ok(model)
}

/// The classifier a run starts from a checkpoint file: its head when it is a two-label
/// head whose roadwork label resolves (by [`sv_models::labels`]; reordered so label 1 is
/// roadwork), else its backbone with a new zero two-label head.
pub fn start_from_checkpoint(path: &Path, device: &Device) -> Result<Network> {
    let arch = sv_models::Architecture::detect(path)?;
    let opts = sv_models::NetworkOptions {
        architecture: Some(arch),
        ..Default::default()
    };
    let Ok(net) = Network::load(path, &opts, device) else {
        // No head in the file (or one the classifier cannot read): its backbone.
        return Ok(sv_models::Backbone::load_headless(path, arch, device)?.with_new_head(2));
    };
    // A timm head on the CLS token or the average-pooled patches is replaced: the
    // export's transformers layout has a head on concat(CLS, mean patch) only.
    let exportable = net.head_on_pooled();
    // The labels of config.json beside the file; one that cannot be read keeps no head.
    let config = sv_models::find_sidecar(path, "config.json");
    let labels = match &config {
        None => Ok(None),
        Some(c) => std::fs::read_to_string(c)
            .map_err(|_| ())
            .and_then(|t| sv_models::labels::id2label(&t, c).map_err(|_| ())),
    };
    let at = config.unwrap_or_else(|| path.to_path_buf());
    let roadwork = labels
        .ok()
        .and_then(|l| sv_models::labels::roadwork_index(l.as_ref(), net.num_labels(), &at).ok());
    Ok(match roadwork.filter(|_| exportable) {
        Some(index) if net.num_labels() == 2 => net.with_roadwork_as_label_one(index)?,
        _ => net.into_backbone().with_new_head(2),
    })
}

/// Loss per step and validation accuracy and MCC per epoch from the run's metric log,
/// and the last validation's ROC curve and confusion matrix, as PNGs.
pub fn write_plots(run: &RunDir, report: &Report, pairs: &[(f64, bool)]) -> Result<()> {
    let text = std::fs::read_to_string(run.metrics()).unwrap_or_default();
    let (mut loss, mut acc, mut mcc) = (Vec::new(), Vec::new(), Vec::new());
    for v in text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    {
        let step = v["step"].as_f64().unwrap_or(0.0);
        if let Some(l) = v["loss"].as_f64() {
            loss.push((step, l));
        }
        if let Some(a) = v["val"]["accuracy"].as_f64() {
            let epoch = v["epoch"].as_f64().unwrap_or(0.0) + 1.0;
            acc.push((epoch, a));
            mcc.push((epoch, v["val"]["mcc"].as_f64().unwrap_or(0.0)));
        }
    }
    let dir = run.plots();
    let png = |name: &str, img: image::RgbImage| -> Result<()> {
        let mut bytes = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| TrainError::Empty(format!("encoding {name}: {e}")))?;
        atomic_write(&dir.join(name), &bytes)
    };
    png(
        "loss.png",
        crate::plot::line_chart("training loss", "step", &[("loss", loss)], None),
    )?;
    let low = mcc.iter().map(|p| p.1).fold(0.0f64, f64::min).min(0.0);
    png(
        "validation.png",
        crate::plot::line_chart(
            "validation",
            "epoch",
            &[("accuracy", acc), ("mcc", mcc)],
            Some((low, 1.0)),
        ),
    )?;
    png(
        "roc.png",
        crate::plot::roc_chart(&crate::metrics::roc_curve(pairs), report.roc_auc),
    )?;
    png(
        "confusion.png",
        crate::plot::confusion_chart(&report.confusion),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipeline_path_reads_the_same_from_any_directory() {
        let dir = tempfile::tempdir().unwrap();
        let qs = dir.path().join("qs");
        std::fs::create_dir_all(qs.join("run")).unwrap();
        std::fs::write(qs.join("augment.toml"), "").unwrap();
        // A run written with a path relative to where it was started (`qs/…`), read
        // from elsewhere: found beside the run's folder.
        let legacy = FinetuneConfig {
            augment: "qs/augment.toml".into(),
            ..FinetuneConfig::default()
        };
        let found = legacy.clone().found_from(&qs.join("run"));
        assert_eq!(Path::new(&found.augment), qs.join("augment.toml"));
        // A preset stays a preset; a file relative to here is stored absolute.
        let preset = FinetuneConfig::default().found_from(&qs.join("run"));
        assert_eq!(preset.augment, "heavy");
        assert_eq!(FinetuneConfig::default().anchored().augment, "heavy");
        let here = FinetuneConfig {
            augment: "Cargo.toml".into(),
            ..FinetuneConfig::default()
        };
        assert!(Path::new(&here.anchored().augment).is_absolute());
    }
}
