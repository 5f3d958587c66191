//! Linear probe on a frozen backbone. Backbone features of the un-augmented images are
//! computed once and cached on disk, keyed by the architecture, the checkpoint's content
//! hash and the preprocessing; a later probe (other hyper-parameters, more samples) only
//! computes what the cache lacks, so it trains in seconds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sv_data::Sample;
use sv_models::preprocess::Preprocessor;
use sv_models::{Architecture, Backbone};

use crate::checkpoint::{atomic_write, serialize_f32, values_of};
use crate::error::{Result, TrainError};
use crate::metrics::Report;
use crate::optim::{AdamW, AdamWSettings, Group, Grouping};

/// Cached features: sample id → feature vector, for one (model, checkpoint,
/// preprocessing).
#[derive(Debug, Clone, Default)]
pub struct FeatureCache {
    /// The cache file.
    pub path: PathBuf,
    /// Feature width.
    pub dim: usize,
    /// Features by sample id.
    pub rows: BTreeMap<String, Vec<f32>>,
}

/// The cache key: the architecture, the SHA-256 of the checkpoint's bytes and the
/// preprocessing.
pub fn cache_key(arch: Architecture, checkpoint: &Path, pre: &Preprocessor) -> Result<String> {
    let bytes = std::fs::read(checkpoint).map_err(|e| TrainError::io(checkpoint, e))?;
    let mut h = Sha256::new();
    h.update(format!("{arch:?}\n").as_bytes());
    h.update(Sha256::digest(&bytes));
    h.update(format!("{pre:?}").as_bytes());
    Ok(h.finalize()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect())
}

impl FeatureCache {
    /// The cached features of `samples` in order, as ids and one row-major matrix, and
    /// how many samples have none (images that could not be read).
    pub fn matrix(&self, samples: &[Sample]) -> (Vec<String>, Vec<f32>, usize) {
        let (mut ids, mut values, mut missing) = (vec![], vec![], 0);
        for s in samples {
            match self.rows.get(&s.id) {
                Some(row) => {
                    ids.push(s.id.clone());
                    values.extend_from_slice(row);
                }
                None => missing += 1,
            }
        }
        (ids, values, missing)
    }

    /// Open the cache file `dir/features-<key>.safetensors` (empty when absent).
    pub fn open(dir: &Path, key: &str) -> Result<Self> {
        let path = dir.join(format!("features-{key}.safetensors"));
        let Ok(bytes) = std::fs::read(&path) else {
            return Ok(Self {
                path,
                dim: 0,
                rows: BTreeMap::new(),
            });
        };
        let bad = |reason: String| TrainError::Checkpoint {
            path: path.clone(),
            reason,
        };
        let (_, header) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let ids: Vec<String> = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get("ids"))
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| bad("no ids".into()))?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let t = st.tensor("features").map_err(|e| bad(e.to_string()))?;
        let dim = t.shape().get(1).copied().unwrap_or(0);
        let values: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if values.len() != ids.len() * dim {
            return Err(bad("ids and features disagree".into()));
        }
        let rows = ids
            .into_iter()
            .zip(values.chunks_exact(dim.max(1)).map(<[f32]>::to_vec))
            .collect();
        Ok(Self { path, dim, rows })
    }

    /// Write the cache atomically.
    pub fn save(&self) -> Result<()> {
        let ids: Vec<&String> = self.rows.keys().collect();
        let data: Vec<f32> = self.rows.values().flatten().copied().collect();
        let meta = std::collections::HashMap::from([(
            "ids".to_string(),
            serde_json::to_string(&ids).expect("json"),
        )]);
        let shape = [ids.len(), self.dim];
        let bytes = serialize_f32([("features".to_string(), &shape[..], &data[..])], meta)
            .map_err(|e| TrainError::Empty(e.to_string()))?;
        atomic_write(&self.path, &bytes)
    }
}

/// A sample's features and whether it shows roadwork.
pub type Row = (Vec<f32>, bool);

/// Features of `samples` from `backbone`, taking what `cache` has and computing (and
/// adding) the rest; returns the rows in sample order (samples that cannot be read or
/// decoded left out) and how many were computed.
pub fn features(
    backbone: &Backbone,
    pre: &Preprocessor,
    samples: &[Sample],
    cache: &mut FeatureCache,
    device: &Device,
    batch_size: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Vec<Row>, usize)> {
    let missing: Vec<&Sample> = samples
        .iter()
        .filter(|s| !cache.rows.contains_key(&s.id))
        .collect();
    let total = missing.len();
    let mut computed = 0;
    for (done, chunk) in missing.chunks(batch_size.max(1)).enumerate() {
        let images: Vec<Option<(String, image::RgbImage)>> = chunk
            .par_iter()
            .map(|s| {
                let bytes = s.location.read().ok()?;
                let img = sv_data::decode_image(&bytes, sv_data::DEFAULT_MAX_PIXELS).ok()?;
                Some((s.id.clone(), pre.resize(&img)))
            })
            .collect();
        let (ids, resized): (Vec<String>, Vec<image::RgbImage>) =
            images.into_iter().flatten().unzip();
        if !ids.is_empty() {
            // The processor's crop, or (without one) the first image's size for all.
            let pixels = pre.batch_resized(&resized, device);
            let f = values_of(backbone.features(pixels));
            let dim = f.len() / ids.len();
            cache.dim = dim;
            for (id, row) in ids.iter().zip(f.chunks_exact(dim)) {
                cache.rows.insert(id.clone(), row.to_vec());
            }
            computed += ids.len();
        }
        progress(((done + 1) * batch_size).min(total), total);
    }
    if computed > 0 {
        cache.save()?;
    }
    let rows = samples
        .iter()
        .filter_map(|s| {
            let y = s.label.target()? > 0.5;
            cache.rows.get(&s.id).map(|r| (r.clone(), y))
        })
        .collect();
    Ok((rows, computed))
}

/// Probe settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    /// Full-batch passes.
    pub epochs: u64,
    /// Learning rate (AdamW).
    pub lr: f64,
    /// Weight decay.
    pub weight_decay: f64,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            epochs: 300,
            lr: 1e-2,
            weight_decay: 1e-4,
        }
    }
}

struct Single;
impl Grouping for Single {
    fn group(&self, _: &str, rank: usize) -> Group {
        Group {
            layer: 0,
            decay: rank > 1,
        }
    }
    fn last_layer(&self) -> usize {
        0
    }
}

/// A trained probe: the head and the feature standardisation it expects.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Per-feature mean subtracted first.
    pub mean: Vec<f32>,
    /// Per-feature standard deviation divided by next.
    pub std: Vec<f32>,
    /// Head weight `[D, 2]`, row-major.
    pub weight: Vec<f32>,
    /// Head bias `[2]`.
    pub bias: Vec<f32>,
}

impl Probe {
    /// Roadwork probability of each feature row.
    pub fn probabilities(&self, rows: &[Vec<f32>]) -> Vec<f64> {
        rows.iter()
            .map(|r| {
                let mut z = [self.bias[0], self.bias[1]];
                let standardised = r
                    .iter()
                    .zip(&self.mean)
                    .zip(&self.std)
                    .map(|((v, m), s)| (v - m) / s);
                for (x, w) in standardised.zip(self.weight.chunks_exact(2)) {
                    z[0] += x * w[0];
                    z[1] += x * w[1];
                }
                let m = z[0].max(z[1]);
                let (e0, e1) = ((z[0] - m).exp(), (z[1] - m).exp());
                f64::from(e1 / (e0 + e1))
            })
            .collect()
    }
}

/// Fit a linear head on standardised features with full-batch AdamW on cross-entropy.
pub fn fit(rows: &[Row], config: &ProbeConfig, device: &Device) -> Result<Probe> {
    if rows.is_empty() {
        return Err(TrainError::Empty("no training features".into()));
    }
    let n = rows.len();
    let d = rows[0].0.len();
    let mut mean = vec![0f32; d];
    for (r, _) in rows {
        for (m, v) in mean.iter_mut().zip(r) {
            *m += v / n as f32;
        }
    }
    let mut std = vec![0f32; d];
    for (r, _) in rows {
        for ((s, v), m) in std.iter_mut().zip(r).zip(&mean) {
            *s += (v - m).powi(2) / n as f32;
        }
    }
    std.iter_mut().for_each(|s| *s = s.sqrt().max(1e-6));
    let x: Vec<f32> = rows
        .iter()
        .flat_map(|(r, _)| {
            (0..d)
                .map(|k| (r[k] - mean[k]) / std[k])
                .collect::<Vec<_>>()
        })
        .collect();
    let mut onehot = vec![0f32; n * 2];
    for (i, (_, y)) in rows.iter().enumerate() {
        onehot[i * 2 + usize::from(*y)] = 1.0;
    }
    let ad = device.clone().autodiff();
    let x = Tensor::<2>::from_data(TensorData::new(x, [n, d]), &ad);
    let t = Tensor::<2>::from_data(TensorData::new(onehot, [n, 2]), &ad);
    let mut head = Linear {
        weight: Param::from_tensor(Tensor::zeros([d, 2], &ad)),
        bias: Some(Param::from_tensor(Tensor::zeros([2], &ad))),
    };
    let settings = AdamWSettings {
        weight_decay: config.weight_decay,
        layer_decay: 1.0,
        clip: None,
        ..AdamWSettings::default()
    };
    let mut optim = AdamW::new(settings, Single);
    for _ in 0..config.epochs {
        let logits = head.forward(x.clone());
        let loss = (log_softmax(logits, 1) * t.clone())
            .sum()
            .div_scalar(-(n as f32));
        let grads = loss.backward();
        head = optim.step(head, config.lr, &grads).0;
    }
    let weight = values_of(head.weight.val());
    let bias = head
        .bias
        .as_ref()
        .map_or_else(|| vec![0.0; 2], |b| values_of(b.val()));
    Ok(Probe {
        mean,
        std,
        weight,
        bias,
    })
}

/// Score a probe on feature rows.
pub fn score(probe: &Probe, rows: &[Row]) -> Report {
    let feats: Vec<Vec<f32>> = rows.iter().map(|(r, _)| r.clone()).collect();
    let pairs: Vec<(f64, bool)> = probe
        .probabilities(&feats)
        .into_iter()
        .zip(rows.iter().map(|(_, y)| *y))
        .collect();
    Report::of(&pairs)
}
/// Whether `dir` is a probe's run directory (it holds `probe.json`).
pub fn is_probe_run(dir: &Path) -> bool {
    dir.join("probe.json").is_file()
}

/// A probe run as a classifier: its backbone with a two-label head that folds the
/// probe's standardisation into the linear layer (`W' = W / std`, `b' = b − Σ mean·W'`,
/// label 1 roadwork), and the backbone's preprocessing, which its features were
/// computed with. Its backbone is the file recorded in `probe.json` (else the
/// backbone as named, a path or a Hub id).
pub fn load_network(dir: &Path, device: &Device) -> Result<(sv_models::Network, Preprocessor)> {
    let path = dir.join("probe.json");
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
    let bad = |reason: String| TrainError::Config {
        source_name: path.display().to_string(),
        reason,
    };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let floats = |key: &str| -> Result<Vec<f32>> {
        v[key]
            .as_array()
            .ok_or_else(|| bad(format!("`{key}` is missing")))?
            .iter()
            .map(|x| {
                x.as_f64()
                    .map(|f| f as f32)
                    .ok_or_else(|| bad(format!("`{key}` holds a non-number")))
            })
            .collect()
    };
    let (mean, std, weight, bias) = (
        floats("mean")?,
        floats("std")?,
        floats("weight")?,
        floats("bias")?,
    );
    let d = mean.len();
    if std.len() != d || weight.len() != 2 * d || bias.len() != 2 {
        return Err(bad(format!(
            "a head of {d} features needs {d} stds, {} weights and 2 biases",
            2 * d
        )));
    }
    let backbone = match v["backbone_file"]
        .as_str()
        .filter(|p| Path::new(p).is_file())
    {
        Some(file) => PathBuf::from(file),
        None => {
            let named = v["backbone"]
                .as_str()
                .ok_or_else(|| bad("`backbone` is missing".into()))?;
            sv_models::hub::resolve_checkpoint(named)?
        }
    };
    let (backbone, pre) = Backbone::load_with_preprocessor(&backbone, device)?;
    let mut folded_w = vec![0f32; 2 * d];
    let mut folded_b = [bias[0], bias[1]];
    for k in 0..d {
        for c in 0..2 {
            let w = weight[k * 2 + c] / std[k];
            folded_w[k * 2 + c] = w;
            folded_b[c] -= mean[k] * w;
        }
    }
    let mut network = backbone.with_new_head(2);
    network.set_head(folded_w, folded_b.to_vec())?;
    Ok((network, pre))
}

/// A whole probe: the backbone (as named, and its local file), the labelled samples
/// (their splits choose train, validation and test), the feature cache's folder, the
/// head's settings and the run directory `probe.json` and `eval.json` go to.
#[derive(Debug, Clone)]
pub struct ProbeRun<'a> {
    /// The backbone as the user named it (recorded in `probe.json`).
    pub backbone: &'a str,
    /// Its checkpoint file.
    pub backbone_file: &'a Path,
    /// Labelled samples with splits.
    pub samples: &'a [Sample],
    /// Where feature caches live.
    pub cache_dir: &'a Path,
    /// The head's training settings.
    pub config: ProbeConfig,
    /// Where `probe.json` and `eval.json` are written.
    pub run_dir: &'a Path,
}

/// What a probe did and scored.
#[derive(Debug, Clone)]
pub struct ProbeOutcome {
    /// Features computed now.
    pub computed: usize,
    /// Features taken from the cache.
    pub cached: usize,
    /// Images that could not be read or decoded.
    pub left_out: usize,
    /// The cache file.
    pub cache_file: PathBuf,
    /// Seconds the head took to train.
    pub train_seconds: f64,
    /// Scores on the validation split.
    pub val: Report,
    /// Scores on the test split.
    pub test: Report,
}

/// Run a probe: features of each split (cached), the head trained on the train split,
/// scored on validation and test, and `probe.json` (the head) and `eval.json` (the
/// scores) written atomically into the run directory. `progress` gets (done, total)
/// images of the split in progress.
pub fn run(
    r: &ProbeRun<'_>,
    device: &Device,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ProbeOutcome> {
    let (backbone, pre) = Backbone::load_with_preprocessor(r.backbone_file, device)?;
    let arch = backbone.architecture();
    let key = cache_key(arch, r.backbone_file, &pre)?;
    let mut cache = FeatureCache::open(r.cache_dir, &key)?;
    let split = |want: sv_data::Split| -> Vec<Sample> {
        r.samples
            .iter()
            .filter(|s| s.split == Some(want) && s.label != sv_data::Label::Unknown)
            .cloned()
            .collect()
    };
    let parts = [
        split(sv_data::Split::Train),
        split(sv_data::Split::Val),
        split(sv_data::Split::Test),
    ];
    let (mut computed, mut left_out, mut rows) = (0, 0, Vec::new());
    for part in &parts {
        let (got, n) = features(&backbone, &pre, part, &mut cache, device, 32, progress)?;
        computed += n;
        left_out += part.len() - got.len();
        rows.push(got);
    }
    let started = std::time::Instant::now();
    let fitted = fit(&rows[0], &r.config, device)?;
    let train_seconds = started.elapsed().as_secs_f64();
    let (val, test) = (score(&fitted, &rows[1]), score(&fitted, &rows[2]));
    let backbone_file =
        std::path::absolute(r.backbone_file).unwrap_or_else(|_| r.backbone_file.to_path_buf());
    let head = serde_json::json!({
        "backbone": r.backbone, "backbone_file": backbone_file,
        "architecture": format!("{arch:?}"), "cache_key": key,
        "config": r.config, "mean": fitted.mean, "std": fitted.std,
        "weight": fitted.weight, "bias": fitted.bias,
    });
    atomic_write(&r.run_dir.join("probe.json"), head.to_string().as_bytes())?;
    let scores = serde_json::json!({"val": val, "test": test});
    atomic_write(
        &r.run_dir.join("eval.json"),
        serde_json::to_string_pretty(&scores)
            .expect("json")
            .as_bytes(),
    )?;
    Ok(ProbeOutcome {
        computed,
        cached: rows
            .iter()
            .map(Vec::len)
            .sum::<usize>()
            .saturating_sub(computed),
        left_out,
        cache_file: cache.path.clone(),
        train_seconds,
        val,
        test,
    })
}
