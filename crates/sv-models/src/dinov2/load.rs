//! Loading DINOv2-with-registers checkpoints in the three real layouts: HF transformers,
//! timm (`vit_*_patch14_reg4_dinov2`) and the original Meta release. The layout is detected
//! from the keys; a load that leaves any key missing, unused or misshapen fails listing them.

use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::{Device, Distribution, Tensor};

use super::config::Dinov2Config;
use super::model::{Attention, Block, Dinov2, Dinov2Classifier, HeadInput, Mlp};
use crate::error::{ModelError, Result};
use crate::layers::{DropPath, Norm, linear, take_linear};
use crate::weights::{RawTensor, WeightMap, WeightTaker};

/// The naming scheme of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// HF transformers `Dinov2WithRegisters*` (`embeddings.*`, `encoder.layer.{i}.*`).
    Hf,
    /// timm `vit_*_patch14_reg4_dinov2` (fused `qkv`, `reg_token`, `pos_embed` without CLS slot).
    Timm,
    /// The original Meta release (`register_tokens`, `pos_embed` with CLS slot, `w12/w3`).
    Original,
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Layout::Hf => "HF transformers",
            Layout::Timm => "timm",
            Layout::Original => "original DINOv2",
        })
    }
}

/// How to build the model from a checkpoint.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// A full configuration, overriding everything read or inferred.
    pub config: Option<Dinov2Config>,
    /// An HF `config.json` to read; by default `<stem>.config.json` or `config.json` beside
    /// the checkpoint is used when present.
    pub config_json: Option<PathBuf>,
    /// Attention heads when no config says (default: D / 64, as all released sizes).
    pub num_heads: Option<usize>,
}

/// Detect the layout and drop wrapper prefixes (`state_dict.`, `model.`, `module.`,
/// `dinov2_with_registers.`).
pub fn detect_layout(map: &mut WeightMap) -> Result<Layout> {
    map.strip_wrappers(&[
        "state_dict.",
        "model.",
        "module.",
        "teacher.backbone.",
        "backbone.",
    ]);
    map.strip_prefix("dinov2_with_registers.");
    if map.contains("embeddings.cls_token") {
        Ok(Layout::Hf)
    } else if map.contains("reg_token") {
        Ok(Layout::Timm)
    } else if map.contains("register_tokens")
        || map.contains("cls_token") && map.contains("mask_token")
    {
        // The original release keeps a mask token; without registers it has no
        // `register_tokens`.
        Ok(Layout::Original)
    } else if map.contains("cls_token") && map.contains("blocks.0.attn.qkv.weight") {
        // A timm ViT built without registers (`reg_tokens=0`).
        Ok(Layout::Timm)
    } else {
        Err(ModelError::UnknownLayout {
            path: map.path.clone(),
            sample: map.sample_keys(6),
        })
    }
}

/// Key names of one layout.
struct Names {
    patch: &'static str,
    cls: &'static str,
    mask: Option<&'static str>,
    regs: &'static str,
    pos: &'static str,
    block: &'static str,
    norm: &'static str,
    head: &'static str,
}

impl Names {
    fn of(layout: Layout) -> Self {
        match layout {
            Layout::Hf => Names {
                patch: "embeddings.patch_embeddings.projection",
                cls: "embeddings.cls_token",
                mask: Some("embeddings.mask_token"),
                regs: "embeddings.register_tokens",
                pos: "embeddings.position_embeddings",
                block: "encoder.layer",
                norm: "layernorm",
                head: "classifier",
            },
            Layout::Timm => Names {
                patch: "patch_embed.proj",
                cls: "cls_token",
                mask: None,
                regs: "reg_token",
                pos: "pos_embed",
                block: "blocks",
                norm: "norm",
                head: "head",
            },
            Layout::Original => Names {
                patch: "patch_embed.proj",
                cls: "cls_token",
                mask: Some("mask_token"),
                regs: "register_tokens",
                pos: "pos_embed",
                block: "blocks",
                norm: "norm",
                head: "head",
            },
        }
    }

    fn mlp(&self, layout: Layout, swiglu: bool) -> (&'static str, &'static str) {
        match (layout, swiglu) {
            (Layout::Hf, true) => ("mlp.weights_in", "mlp.weights_out"),
            (Layout::Original, true) => ("mlp.w12", "mlp.w3"),
            _ => ("mlp.fc1", "mlp.fc2"),
        }
    }
}

fn dim(map: &WeightMap, key: &str, axis: usize) -> Result<usize> {
    map.shape(key)
        .and_then(|s| s.get(axis).copied())
        .ok_or_else(|| {
            ModelError::Config(format!(
                "{}: key `{key}` needed to infer the config is missing or has too few axes",
                map.path.display()
            ))
        })
}

/// Infer the configuration from tensor shapes (heads cannot be inferred: `num_heads` or D/64).
fn infer_config(map: &WeightMap, layout: Layout, num_heads: Option<usize>) -> Result<Dinov2Config> {
    let n = Names::of(layout);
    let d = dim(map, n.cls, 2)?;
    let prefix = format!("{}.", n.block);
    let num_layers = map
        .tensors
        .keys()
        .filter_map(|k| {
            k.strip_prefix(&prefix)?
                .split('.')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .max()
        .map_or(0, |m| m + 1);
    let patch_key = format!("{}.weight", n.patch);
    let patch_size = dim(map, &patch_key, 2)?;
    let num_channels = dim(map, &patch_key, 1)?;
    let num_register_tokens = if map.contains(n.regs) {
        dim(map, n.regs, 1)?
    } else {
        0
    };
    let stored = dim(map, n.pos, 1)?;
    let positions = stored - usize::from(pos_has_cls_slot(layout, stored));
    let grid = (positions as f64).sqrt().round() as usize;
    if grid * grid != positions {
        return Err(ModelError::Config(format!(
            "{}: {} holds {positions} patch positions, not a square grid",
            map.path.display(),
            n.pos
        )));
    }
    let b0 = format!("{}.0", n.block);
    let swiglu = match layout {
        Layout::Hf => map.contains(&format!("{b0}.mlp.weights_in.weight")),
        Layout::Original => map.contains(&format!("{b0}.mlp.w12.weight")),
        Layout::Timm => {
            let fc1 = dim(map, &format!("{b0}.mlp.fc1.weight"), 0)?;
            let fc2 = dim(map, &format!("{b0}.mlp.fc2.weight"), 1)?;
            fc1 == 2 * fc2
        }
    };
    let (_, out_name) = n.mlp(layout, swiglu);
    let hidden = dim(map, &format!("{b0}.{out_name}.weight"), 1)?;
    let qkv_bias = match layout {
        Layout::Hf => map.contains(&format!("{b0}.attention.attention.query.bias")),
        _ => map.contains(&format!("{b0}.attn.qkv.bias")),
    };
    let num_heads = match num_heads {
        Some(h) => h,
        // The released sizes (S, B, L, g) all use 64-wide heads; the weights of any
        // other width do not say how they are split.
        None if matches!(d, 384 | 768 | 1024 | 1536) => d / 64,
        None => {
            return Err(ModelError::Config(format!(
                "{}: the number of attention heads of a DINOv2 of width {d} cannot be read \
                 from its weights and there is no config.json; pass --heads N",
                map.path.display()
            )));
        }
    };
    let cfg = Dinov2Config {
        hidden_size: d,
        num_layers,
        num_heads,
        mlp_ratio: if swiglu {
            4.0
        } else {
            hidden as f64 / d as f64
        },
        swiglu,
        patch_size,
        image_size: grid * patch_size,
        num_register_tokens,
        layer_norm_eps: 1e-6,
        qkv_bias,
        drop_path_rate: 0.0,
        num_channels,
    };
    if cfg.mlp_hidden() != hidden {
        return Err(ModelError::Config(format!(
            "{}: MLP hidden width {hidden} does not follow the SwiGLU rounding of ratio 4 for D={d}",
            map.path.display()
        )));
    }
    cfg.validate()?;
    Ok(cfg)
}

/// Whether a checkpoint's position embeddings hold a CLS slot before the patch grid: HF
/// and the original release always; timm only without `no_embed_class` (its models
/// without registers), which shows as one more than a square.
fn pos_has_cls_slot(layout: Layout, stored: usize) -> bool {
    if layout != Layout::Timm {
        return true;
    }
    let square = |n: usize| {
        let g = (n as f64).sqrt().round() as usize;
        g * g == n
    };
    !square(stored) && stored > 0 && square(stored - 1)
}

/// Resolve the configuration: explicit > config.json (HF layout) > inferred from shapes.
fn resolve_config(map: &WeightMap, layout: Layout, opts: &LoadOptions) -> Result<Dinov2Config> {
    if let Some(cfg) = &opts.config {
        cfg.validate()?;
        return Ok(cfg.clone());
    }
    let json = crate::config_json_for(opts.config_json.as_deref(), &map.path, layout == Layout::Hf);
    match json {
        Some(p) => {
            let (mut cfg, _) = Dinov2Config::from_hf_json(&crate::read_text(&p)?)
                .map_err(|e| ModelError::Config(format!("{}: {e}", p.display())))?;
            if let Some(h) = opts.num_heads {
                cfg.num_heads = h;
            }
            Ok(cfg)
        }
        None => infer_config(map, layout, opts.num_heads),
    }
}

fn build_backbone(
    t: &mut WeightTaker,
    layout: Layout,
    cfg: &Dinov2Config,
    device: &Device,
) -> Dinov2 {
    let n = Names::of(layout);
    let d = cfg.hidden_size;
    let (p, c, r) = (cfg.patch_size, cfg.num_channels, cfg.num_register_tokens);
    let g = cfg.pos_grid();
    let h = cfg.mlp_hidden();
    let eps = cfg.layer_norm_eps;

    let patch_weight = t.take(&format!("{}.weight", n.patch), &[d, c, p, p]);
    let patch_bias = t.take(&format!("{}.bias", n.patch), &[d]);
    let cls = t.take(n.cls, &[1, 1, d]);
    let mask = n.mask.map(|k| t.take(k, &[1, d]));
    let regs = if r > 0 {
        Some(t.take(n.regs, &[1, r, d]))
    } else {
        // transformers saves an empty `[1, 0, D]` tensor; timm and the original none.
        if t.has(n.regs) {
            t.take(n.regs, &[1, 0, d]);
        }
        None
    };
    let timm_slot = layout == Layout::Timm
        && t.shape(n.pos)
            .is_some_and(|s| s.len() == 3 && s[1] == 1 + g * g);
    let pos = if layout == Layout::Timm && !timm_slot {
        // timm keeps no CLS slot; its CLS token already includes that position.
        let patch_pos = t.take(n.pos, &[1, g * g, d]);
        let mut data = vec![0.0; d];
        data.extend_from_slice(&patch_pos.data);
        RawTensor::new(vec![1, 1 + g * g, d], data)
    } else {
        t.take(n.pos, &[1, 1 + g * g, d])
    };

    let (fc1_name, fc2_name) = n.mlp(layout, cfg.swiglu);
    let fc1_out = if cfg.swiglu { 2 * h } else { h };
    let blocks = (0..cfg.num_layers)
        .map(|i| {
            let b = format!("{}.{i}", n.block);
            let (qkv_w, qkv_b, proj, ls1, ls2) = match layout {
                Layout::Hf => {
                    let a = format!("{b}.attention.attention");
                    let parts: Vec<(RawTensor, Option<RawTensor>)> = ["query", "key", "value"]
                        .iter()
                        .map(|q| {
                            let w = t.take(&format!("{a}.{q}.weight"), &[d, d]);
                            let bias = cfg.qkv_bias.then(|| t.take(&format!("{a}.{q}.bias"), &[d]));
                            (w, bias)
                        })
                        .collect();
                    let w: Vec<RawTensor> = parts.iter().map(|(w, _)| w.clone()).collect();
                    let bias: Option<Vec<RawTensor>> =
                        parts.iter().map(|(_, b)| b.clone()).collect();
                    (
                        RawTensor::cat0(&w).transposed(),
                        bias.map(|b| RawTensor::cat0(&b)),
                        take_linear(t, &format!("{b}.attention.output.dense"), d, d, device),
                        t.take(&format!("{b}.layer_scale1.lambda1"), &[d]),
                        t.take(&format!("{b}.layer_scale2.lambda1"), &[d]),
                    )
                }
                Layout::Timm | Layout::Original => {
                    let (w, bias) = t.take_linear(&format!("{b}.attn.qkv"), d, 3 * d, cfg.qkv_bias);
                    (
                        w,
                        bias,
                        take_linear(t, &format!("{b}.attn.proj"), d, d, device),
                        t.take(&format!("{b}.ls1.gamma"), &[d]),
                        t.take(&format!("{b}.ls2.gamma"), &[d]),
                    )
                }
            };
            let drop = if cfg.num_layers > 1 {
                cfg.drop_path_rate * i as f64 / (cfg.num_layers - 1) as f64
            } else {
                cfg.drop_path_rate
            };
            Block {
                norm1: Norm::take(t, &format!("{b}.norm1"), d, eps, device),
                attn: Attention {
                    qkv: linear(qkv_w, qkv_b, device),
                    proj,
                    num_heads: cfg.num_heads,
                },
                ls1: ls1.to_param(device),
                norm2: Norm::take(t, &format!("{b}.norm2"), d, eps, device),
                mlp: Mlp {
                    fc1: take_linear(t, &format!("{b}.{fc1_name}"), d, fc1_out, device),
                    fc2: take_linear(t, &format!("{b}.{fc2_name}"), h, d, device),
                    swiglu: cfg.swiglu,
                },
                ls2: ls2.to_param(device),
                drop_path: DropPath::new(drop),
            }
        })
        .collect();
    // timm's average-pooling classifiers norm after pooling (`fc_norm`) instead.
    let final_norm = (layout != Layout::Timm || t.has(&format!("{}.weight", n.norm)))
        .then(|| Norm::take(t, n.norm, d, eps, device));
    Dinov2::from_parts(
        cfg.clone(),
        patch_weight.to_param(device),
        patch_bias.to_param(device),
        cls.to_param(device),
        mask.map(|m| m.to_param(device)),
        regs.map(|r| r.to_param(device)),
        pos.to_param(device),
        blocks,
        final_norm,
    )
}

fn open(mut map: WeightMap, opts: &LoadOptions) -> Result<(WeightTaker, Layout, Dinov2Config)> {
    let layout = detect_layout(&mut map)?;
    let cfg = resolve_config(&map, layout, opts)?;
    Ok((WeightTaker::new(map, layout.to_string()), layout, cfg))
}

impl Dinov2 {
    /// Load a backbone from a checkpoint file. A classification head in the file is an
    /// unused key and makes the load fail: use [`Dinov2Classifier::load`] for those.
    pub fn load(path: &Path, opts: &LoadOptions, device: &Device) -> Result<Self> {
        Self::from_weights(WeightMap::from_file(path)?, opts, device)
    }

    /// Build a backbone from checkpoint tensors already read (see [`load`](Self::load)).
    pub fn from_weights(map: WeightMap, opts: &LoadOptions, device: &Device) -> Result<Self> {
        let (mut taker, layout, cfg) = open(map, opts)?;
        let model = build_backbone(&mut taker, layout, &cfg, device);
        taker.finish()?;
        Ok(model)
    }
}

impl Dinov2Classifier {
    /// Load a backbone and its classification head `Linear(2D, n)` from a checkpoint file.
    pub fn load(path: &Path, opts: &LoadOptions, device: &Device) -> Result<Self> {
        Self::from_weights(WeightMap::from_file(path)?, opts, device)
    }

    /// Build a classifier from checkpoint tensors already read (see [`load`](Self::load)).
    pub fn from_weights(map: WeightMap, opts: &LoadOptions, device: &Device) -> Result<Self> {
        let (mut taker, layout, cfg) = open(map, opts)?;
        let backbone = build_backbone(&mut taker, layout, &cfg, device);
        let head_name = Names::of(layout).head;
        let key = format!("{head_name}.weight");
        let d = cfg.hidden_size;
        // The label count and what the head reads, from the head's own shape: `[n, 2D]`
        // is transformers' concat(CLS, mean patch); a timm `[n, D]` head reads the CLS
        // token, or the normed mean of the patches when the file has timm's `fc_norm`.
        let (labels, width) = match taker_shape(&taker, &key).as_slice() {
            [n, w] => (*n, *w),
            _ => (2, 2 * d),
        };
        let head_input = match (layout, width) {
            (Layout::Timm, w) if w == d && taker.has("fc_norm.weight") => HeadInput::MeanPatch,
            (Layout::Timm | Layout::Original, w) if w == d => HeadInput::Cls,
            _ => HeadInput::ClsAndMeanPatch,
        };
        let fc_norm = (head_input == HeadInput::MeanPatch)
            .then(|| Norm::take(&mut taker, "fc_norm", d, cfg.layer_norm_eps, device));
        let in_width = if head_input == HeadInput::ClsAndMeanPatch {
            2 * d
        } else {
            d
        };
        let head = take_linear(&mut taker, head_name, in_width, labels, device);
        taker.finish()?;
        Ok(Self {
            backbone,
            fc_norm,
            head,
            head_input,
        })
    }

    /// A classifier on a loaded backbone with a new head of `num_labels` (zero weights).
    pub fn with_new_head(backbone: Dinov2, num_labels: usize) -> Self {
        let device = backbone.cls_token.val().device();
        let d2 = 2 * backbone.config.hidden_size;
        let head = Linear {
            weight: Param::from_tensor(Tensor::zeros([d2, num_labels], &device)),
            bias: Some(Param::from_tensor(Tensor::zeros([num_labels], &device))),
        };
        Self {
            backbone,
            fc_norm: None,
            head,
            head_input: HeadInput::ClsAndMeanPatch,
        }
    }
}

fn taker_shape(taker: &WeightTaker, key: &str) -> Vec<usize> {
    taker.shape(key).map(<[usize]>::to_vec).unwrap_or_default()
}

/// A backbone with random weights: normal(0, 0.02) matrices, zero biases, unit norms,
/// LayerScale 1.
pub(super) fn random_backbone(cfg: &Dinov2Config, device: &Device) -> Dinov2 {
    let normal = |shape: Vec<usize>| -> RawTensor {
        let t: Tensor<1> = Tensor::random(
            [shape.iter().product::<usize>()],
            Distribution::Normal(0.0, 0.02),
            device,
        );
        let data = t.into_data().try_to_vec::<f32>().unwrap_or_default();
        RawTensor::new(shape, data)
    };
    let d = cfg.hidden_size;
    let mut map = WeightMap {
        path: PathBuf::from("<random>"),
        tensors: Default::default(),
    };
    let mut put = |k: String, t: RawTensor| {
        map.tensors.insert(k, t);
    };
    let (p, c, r, g, h) = (
        cfg.patch_size,
        cfg.num_channels,
        cfg.num_register_tokens,
        cfg.pos_grid(),
        cfg.mlp_hidden(),
    );
    let ones = |n: usize| RawTensor::new(vec![n], vec![1.0; n]);
    let zeros = |n: usize| RawTensor::new(vec![n], vec![0.0; n]);
    put("patch_embed.proj.weight".into(), normal(vec![d, c, p, p]));
    put("patch_embed.proj.bias".into(), zeros(d));
    put("cls_token".into(), normal(vec![1, 1, d]));
    put(
        "mask_token".into(),
        RawTensor::new(vec![1, d], vec![0.0; d]),
    );
    if r > 0 {
        put("register_tokens".into(), normal(vec![1, r, d]));
    }
    put("pos_embed".into(), normal(vec![1, 1 + g * g, d]));
    let (fc1, fc2) = if cfg.swiglu {
        ("w12", "w3")
    } else {
        ("fc1", "fc2")
    };
    let fc1_out = if cfg.swiglu { 2 * h } else { h };
    for i in 0..cfg.num_layers {
        let b = format!("blocks.{i}");
        for n in ["norm1", "norm2"] {
            put(format!("{b}.{n}.weight"), ones(d));
            put(format!("{b}.{n}.bias"), zeros(d));
        }
        put(format!("{b}.attn.qkv.weight"), normal(vec![3 * d, d]));
        if cfg.qkv_bias {
            put(format!("{b}.attn.qkv.bias"), zeros(3 * d));
        }
        put(format!("{b}.attn.proj.weight"), normal(vec![d, d]));
        put(format!("{b}.attn.proj.bias"), zeros(d));
        put(format!("{b}.ls1.gamma"), ones(d));
        put(format!("{b}.ls2.gamma"), ones(d));
        put(format!("{b}.mlp.{fc1}.weight"), normal(vec![fc1_out, d]));
        put(format!("{b}.mlp.{fc1}.bias"), zeros(fc1_out));
        put(format!("{b}.mlp.{fc2}.weight"), normal(vec![d, h]));
        put(format!("{b}.mlp.{fc2}.bias"), zeros(d));
    }
    put("norm.weight".into(), ones(d));
    put("norm.bias".into(), zeros(d));
    let mut taker = WeightTaker::new(map, "random");
    build_backbone(&mut taker, Layout::Original, cfg, device)
}
