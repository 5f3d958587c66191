//! Loading ConvNeXt-V2 checkpoints in the HF transformers (`facebook/convnextv2-*`) and
//! timm (`convnextv2_*`, including the 1×1-conv MLP of atto…nano) layouts. The layout is
//! detected from the keys; a load that leaves any key missing, unused or misshapen fails
//! listing them.

use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::{Device, Distribution, Tensor};

use super::config::{ConvNextV2Config, DW_KERNEL, NORM_EPS};
use super::model::{ConvNextBlock, ConvNextStage, ConvNextV2, ConvNextV2Classifier, Downsample};
use crate::error::{ModelError, Result};
use crate::layers::{DropPath, Norm, linear, take_linear};
use crate::weights::{RawTensor, WeightMap, WeightTaker};

/// The naming scheme of a ConvNeXt-V2 checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvNextLayout {
    /// HF transformers `ConvNextV2*` (`embeddings.*`, `encoder.stages.{i}.layers.{j}.*`).
    Hf,
    /// timm `convnextv2_*` (`stem.*`, `stages.{i}.blocks.{j}.*`, `head.norm`, `head.fc`).
    Timm,
}

impl std::fmt::Display for ConvNextLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConvNextLayout::Hf => "HF transformers ConvNeXt-V2",
            ConvNextLayout::Timm => "timm ConvNeXt-V2",
        })
    }
}

/// How to build the model from a checkpoint.
#[derive(Debug, Clone, Default)]
pub struct ConvNextLoadOptions {
    /// A full configuration, overriding everything read or inferred.
    pub config: Option<ConvNextV2Config>,
    /// An HF `config.json` to read; by default `<stem>.config.json` or `config.json` beside
    /// an HF-layout checkpoint is used when present.
    pub config_json: Option<PathBuf>,
}

/// Detect the layout and drop wrapper prefixes (`state_dict.`, `model.`, `module.`,
/// `convnextv2.`).
pub fn detect_convnext_layout(map: &mut WeightMap) -> Result<ConvNextLayout> {
    map.strip_wrappers(&["state_dict.", "model.", "module."]);
    map.strip_prefix("convnextv2.");
    if map.contains("embeddings.patch_embeddings.weight") {
        Ok(ConvNextLayout::Hf)
    } else if map.contains("stem.0.weight") {
        Ok(ConvNextLayout::Timm)
    } else {
        Err(ModelError::UnknownLayout {
            path: map.path.clone(),
            sample: map.sample_keys(6),
        })
    }
}

/// Key names of one layout.
struct Names {
    stem_conv: &'static str,
    stem_norm: &'static str,
    stage: &'static str,
    block: &'static str,
    down_norm: &'static str,
    down_conv: &'static str,
    dwconv: &'static str,
    norm: &'static str,
    fc1: &'static str,
    grn: &'static str,
    fc2: &'static str,
    head_norm: &'static str,
    head: &'static str,
}

impl Names {
    fn of(layout: ConvNextLayout) -> Self {
        match layout {
            ConvNextLayout::Hf => Names {
                stem_conv: "embeddings.patch_embeddings",
                stem_norm: "embeddings.layernorm",
                stage: "encoder.stages",
                block: "layers",
                down_norm: "downsampling_layer.0",
                down_conv: "downsampling_layer.1",
                dwconv: "dwconv",
                norm: "layernorm",
                fc1: "pwconv1",
                grn: "grn",
                fc2: "pwconv2",
                head_norm: "layernorm",
                head: "classifier",
            },
            ConvNextLayout::Timm => Names {
                stem_conv: "stem.0",
                stem_norm: "stem.1",
                stage: "stages",
                block: "blocks",
                down_norm: "downsample.0",
                down_conv: "downsample.1",
                dwconv: "conv_dw",
                norm: "norm",
                fc1: "mlp.fc1",
                grn: "mlp.grn",
                fc2: "mlp.fc2",
                head_norm: "head.norm",
                head: "head.fc",
            },
        }
    }
}

/// Highest `{prefix}.{n}.` index plus one among the keys.
fn count_indexed(map: &WeightMap, prefix: &str) -> usize {
    let prefix = format!("{prefix}.");
    map.tensors
        .keys()
        .filter_map(|k| {
            k.strip_prefix(&prefix)?
                .split('.')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .max()
        .map_or(0, |m| m + 1)
}

/// Infer the configuration from tensor shapes.
fn infer_config(map: &WeightMap, layout: ConvNextLayout) -> Result<ConvNextV2Config> {
    let n = Names::of(layout);
    let stem = format!("{}.weight", n.stem_conv);
    let stem_shape = map.shape(&stem).ok_or_else(|| {
        ModelError::Config(format!("{}: `{stem}` is missing", map.path.display()))
    })?;
    if stem_shape.len() != 4 {
        return Err(ModelError::Config(format!(
            "{}: `{stem}` has shape {stem_shape:?}, not [C, 3, p, p]",
            map.path.display()
        )));
    }
    let (num_channels, patch_size) = (stem_shape[1], stem_shape[2]);
    let stages = count_indexed(map, n.stage);
    let mut depths = Vec::with_capacity(stages);
    let mut dims = Vec::with_capacity(stages);
    for i in 0..stages {
        let prefix = format!("{}.{i}.{}", n.stage, n.block);
        let depth = count_indexed(map, &prefix);
        let key = format!("{prefix}.0.{}.weight", n.dwconv);
        let d = map
            .shape(&key)
            .and_then(|s| s.first().copied())
            .ok_or_else(|| {
                ModelError::Config(format!(
                    "{}: stage {i} has no block 0 (`{key}` is missing)",
                    map.path.display()
                ))
            })?;
        depths.push(depth);
        dims.push(d);
    }
    let cfg = ConvNextV2Config {
        depths,
        dims,
        patch_size,
        num_channels,
        head_norm_eps: match layout {
            ConvNextLayout::Hf => 1e-12,
            ConvNextLayout::Timm => NORM_EPS,
        },
        drop_path_rate: 0.0,
        image_size: 224,
    };
    cfg.validate()?;
    Ok(cfg)
}

/// Resolve the configuration: explicit > config.json (HF layout) > inferred from shapes.
fn resolve_config(
    map: &WeightMap,
    layout: ConvNextLayout,
    opts: &ConvNextLoadOptions,
) -> Result<ConvNextV2Config> {
    if let Some(cfg) = &opts.config {
        cfg.validate()?;
        return Ok(cfg.clone());
    }
    let json = crate::config_json_for(
        opts.config_json.as_deref(),
        &map.path,
        layout == ConvNextLayout::Hf,
    );
    match json {
        Some(p) => ConvNextV2Config::from_hf_json(&crate::read_text(&p)?)
            .map(|(cfg, _)| cfg)
            .map_err(|e| ModelError::Config(format!("{}: {e}", p.display()))),
        None => infer_config(map, layout),
    }
}

/// Take a `[C_out, C_in, k, k]` convolution as a patchify GEMM `Linear` `[C_in·k·k, C_out]`.
fn take_patchify(
    t: &mut WeightTaker,
    key: &str,
    c_in: usize,
    c_out: usize,
    k: usize,
    device: &Device,
) -> Linear {
    let w = t.take(&format!("{key}.weight"), &[c_out, c_in, k, k]);
    let w = RawTensor::new(vec![c_out, c_in * k * k], w.data).transposed();
    let b = t.take(&format!("{key}.bias"), &[c_out]);
    linear(w, Some(b), device)
}

fn build_backbone(
    t: &mut WeightTaker,
    layout: ConvNextLayout,
    cfg: &ConvNextV2Config,
    device: &Device,
) -> ConvNextV2 {
    let n = Names::of(layout);
    let d0 = cfg.dims[0];
    let stem = take_patchify(t, n.stem_conv, cfg.num_channels, d0, cfg.patch_size, device);
    let stem_norm = Norm::take(t, n.stem_norm, d0, NORM_EPS, device);
    let rates = cfg.drop_path_rates();
    let mut prev = d0;
    let stages = cfg
        .dims
        .iter()
        .zip(&cfg.depths)
        .enumerate()
        .map(|(i, (&d, &depth))| {
            let s = format!("{}.{i}", n.stage);
            let downsample = (i > 0).then(|| Downsample {
                norm: Norm::take(t, &format!("{s}.{}", n.down_norm), prev, NORM_EPS, device),
                conv: take_patchify(t, &format!("{s}.{}", n.down_conv), prev, d, 2, device),
            });
            prev = d;
            let blocks = (0..depth)
                .map(|j| {
                    let b = format!("{s}.{}.{j}", n.block);
                    let dw = format!("{b}.{}", n.dwconv);
                    let grn = format!("{b}.{}", n.grn);
                    ConvNextBlock {
                        dw_weight: t
                            .take(&format!("{dw}.weight"), &[d, 1, DW_KERNEL, DW_KERNEL])
                            .to_param(device),
                        dw_bias: t.take(&format!("{dw}.bias"), &[d]).to_param(device),
                        norm: Norm::take(t, &format!("{b}.{}", n.norm), d, NORM_EPS, device),
                        // timm's conv-MLP `[4C, C, 1, 1]` is taken as `[4C, C]` (size-1
                        // axes are squeezed), as is HF's GRN `[1, 1, 1, 4C]`.
                        fc1: take_linear(t, &format!("{b}.{}", n.fc1), d, 4 * d, device),
                        grn_gamma: t.take(&format!("{grn}.weight"), &[4 * d]).to_param(device),
                        grn_beta: t.take(&format!("{grn}.bias"), &[4 * d]).to_param(device),
                        fc2: take_linear(t, &format!("{b}.{}", n.fc2), 4 * d, d, device),
                        drop_path: DropPath::new(rates[i][j]),
                    }
                })
                .collect();
            ConvNextStage { downsample, blocks }
        })
        .collect();
    let head_norm = Norm::take(t, n.head_norm, prev, cfg.head_norm_eps, device);
    ConvNextV2 {
        stem,
        stem_norm,
        stages,
        head_norm,
        config: cfg.clone(),
    }
}

fn open(
    mut map: WeightMap,
    opts: &ConvNextLoadOptions,
) -> Result<(WeightTaker, ConvNextLayout, ConvNextV2Config)> {
    let layout = detect_convnext_layout(&mut map)?;
    let cfg = resolve_config(&map, layout, opts)?;
    Ok((WeightTaker::new(map, layout.to_string()), layout, cfg))
}

impl ConvNextV2 {
    /// Load a backbone from a checkpoint file. A classification head in the file is an
    /// unused key and makes the load fail: use [`ConvNextV2Classifier::load`] for those.
    pub fn load(path: &Path, opts: &ConvNextLoadOptions, device: &Device) -> Result<Self> {
        Self::from_weights(WeightMap::from_file(path)?, opts, device)
    }

    /// Build a backbone from checkpoint tensors already read (see [`load`](Self::load)).
    pub fn from_weights(
        map: WeightMap,
        opts: &ConvNextLoadOptions,
        device: &Device,
    ) -> Result<Self> {
        let (mut taker, layout, cfg) = open(map, opts)?;
        let model = build_backbone(&mut taker, layout, &cfg, device);
        taker.finish()?;
        Ok(model)
    }

    /// A backbone with random weights: normal(0, 0.02) matrices and kernels, zero biases,
    /// unit norms, zero GRN (the identity, as at initialisation in both references).
    pub fn random(cfg: &ConvNextV2Config, device: &Device) -> Result<Self> {
        cfg.validate()?;
        let mut map = WeightMap {
            path: PathBuf::from("<random>"),
            tensors: Default::default(),
        };
        let normal = |shape: Vec<usize>| -> RawTensor {
            let t: Tensor<1> = Tensor::random(
                [shape.iter().product::<usize>()],
                Distribution::Normal(0.0, 0.02),
                device,
            );
            RawTensor::new(shape, t.into_data().try_to_vec::<f32>().unwrap_or_default())
        };
        let fill = |n: usize, v: f32| RawTensor::new(vec![n], vec![v; n]);
        let mut put = |k: String, t: RawTensor| {
            map.tensors.insert(k, t);
        };
        let put_norm = |put: &mut dyn FnMut(String, RawTensor), k: &str, d: usize| {
            put(format!("{k}.weight"), fill(d, 1.0));
            put(format!("{k}.bias"), fill(d, 0.0));
        };
        let (p, c, d0) = (cfg.patch_size, cfg.num_channels, cfg.dims[0]);
        put("stem.0.weight".into(), normal(vec![d0, c, p, p]));
        put("stem.0.bias".into(), fill(d0, 0.0));
        put_norm(&mut put, "stem.1", d0);
        let mut prev = d0;
        for (i, (&d, &depth)) in cfg.dims.iter().zip(&cfg.depths).enumerate() {
            if i > 0 {
                put_norm(&mut put, &format!("stages.{i}.downsample.0"), prev);
                put(
                    format!("stages.{i}.downsample.1.weight"),
                    normal(vec![d, prev, 2, 2]),
                );
                put(format!("stages.{i}.downsample.1.bias"), fill(d, 0.0));
            }
            for j in 0..depth {
                let b = format!("stages.{i}.blocks.{j}");
                put(format!("{b}.conv_dw.weight"), normal(vec![d, 1, 7, 7]));
                put(format!("{b}.conv_dw.bias"), fill(d, 0.0));
                put_norm(&mut put, &format!("{b}.norm"), d);
                put(format!("{b}.mlp.fc1.weight"), normal(vec![4 * d, d]));
                put(format!("{b}.mlp.fc1.bias"), fill(4 * d, 0.0));
                put(format!("{b}.mlp.grn.weight"), fill(4 * d, 0.0));
                put(format!("{b}.mlp.grn.bias"), fill(4 * d, 0.0));
                put(format!("{b}.mlp.fc2.weight"), normal(vec![d, 4 * d]));
                put(format!("{b}.mlp.fc2.bias"), fill(d, 0.0));
            }
            prev = d;
        }
        put_norm(&mut put, "head.norm", prev);
        let mut taker = WeightTaker::new(map, "random");
        let model = build_backbone(&mut taker, ConvNextLayout::Timm, cfg, device);
        taker.finish()?;
        Ok(model)
    }
}

impl ConvNextV2Classifier {
    /// Load a backbone and its classification head `Linear(C, n)` from a checkpoint file;
    /// a file without a head is refused (load the backbone and use
    /// [`with_new_head`](Self::with_new_head)).
    pub fn load(path: &Path, opts: &ConvNextLoadOptions, device: &Device) -> Result<Self> {
        Self::from_weights(WeightMap::from_file(path)?, opts, device)
    }

    /// Build a classifier from checkpoint tensors already read (see [`load`](Self::load)).
    pub fn from_weights(
        map: WeightMap,
        opts: &ConvNextLoadOptions,
        device: &Device,
    ) -> Result<Self> {
        let path = map.path.clone();
        let (mut taker, layout, cfg) = open(map, opts)?;
        let backbone = build_backbone(&mut taker, layout, &cfg, device);
        let head_key = Names::of(layout).head;
        let c = cfg.num_features();
        let head = match taker.shape(&format!("{head_key}.weight")) {
            Some(shape) => {
                let labels = shape.first().copied().unwrap_or(0);
                take_linear(&mut taker, head_key, c, labels, device)
            }
            None => {
                return Err(ModelError::Config(format!(
                    "{}: the checkpoint has no classification head (`{head_key}.weight`); load it as a backbone",
                    path.display()
                )));
            }
        };
        taker.finish()?;
        Ok(Self { backbone, head })
    }

    /// A classifier on a loaded backbone with a new head of `num_labels` (zero weights).
    pub fn with_new_head(backbone: ConvNextV2, num_labels: usize) -> Self {
        let device = backbone.stem.weight.val().device();
        let c = backbone.config.num_features();
        let head = Linear {
            weight: Param::from_tensor(Tensor::zeros([c, num_labels], &device)),
            bias: Some(Param::from_tensor(Tensor::zeros([num_labels], &device))),
        };
        Self { backbone, head }
    }
}
