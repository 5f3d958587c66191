//! Export a trained classifier in the Hugging Face transformers layout
//! (`ConvNextV2ForImageClassification`, `Dinov2WithRegistersForImageClassification`):
//! `model.safetensors` with transformers' key names and PyTorch's tensor layouts,
//! `config.json`, `preprocessor_config.json`, the subnet's `model_card.json`, and our
//! `ensemble.json` with the model as its one member. The subnet's base miner and plain
//! transformers load it.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;
use sv_models::{ConvNextV2Classifier, Dinov2Classifier};

use crate::checkpoint::{atomic_write, params_of, serialize_f32};
use crate::error::{Result, TrainError};

/// The subnet's model card (`model_card.json` at the repository root).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelCard {
    /// Unique model name.
    pub model_name: String,
    /// What the model is.
    pub description: String,
    /// Version string.
    pub version: String,
    /// The miner's hotkey, SS58.
    pub submitted_by: String,
    /// Unix seconds.
    pub submission_time: u64,
    /// Architecture name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Free notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

impl ModelCard {
    /// Check the fields the subnet's validators check: a name, and an SS58 hotkey
    /// (base58, 46–48 characters).
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| TrainError::Config {
            source_name: "model card".into(),
            reason,
        };
        if self.model_name.trim().is_empty() {
            return Err(bad("model_name: must not be empty".into()));
        }
        const B58: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
        let h = &self.submitted_by;
        if !(46..=48).contains(&h.len()) || !h.chars().all(|c| B58.contains(c)) {
            return Err(bad(format!("submitted_by: {h:?} is not an SS58 address")));
        }
        Ok(())
    }
}

/// A row-major `[rows, cols]` matrix transposed.
fn transpose((shape, v): &(Vec<usize>, Vec<f32>)) -> Vec<f32> {
    let (rows, cols) = (shape[0], shape[1]);
    let mut t = vec![0f32; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = v[r * cols + c];
        }
    }
    t
}

/// The transformers tensors of `model`: name → (shape, values).
pub fn hf_tensors(model: &ConvNextV2Classifier) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let params = params_of(model);
    let cfg = &model.backbone.config;
    let mut out = BTreeMap::new();
    let mut put = |k: String, shape: Vec<usize>, v: Vec<f32>| {
        out.insert(k, (shape, v));
    };
    let get = |k: &str| -> &(Vec<usize>, Vec<f32>) {
        params
            .get(k)
            .unwrap_or_else(|| panic!("the classifier has {k}"))
    };
    let norm = |put: &mut dyn FnMut(String, Vec<usize>, Vec<f32>), ours: &str, theirs: &str| {
        let g = get(&format!("{ours}.gamma"));
        put(format!("{theirs}.weight"), g.0.clone(), g.1.clone());
        let b = get(&format!("{ours}.beta"));
        put(format!("{theirs}.bias"), b.0.clone(), b.1.clone());
    };
    // A patchify GEMM [C_in·k·k, C_out] back to a convolution [C_out, C_in, k, k].
    let conv = |put: &mut dyn FnMut(String, Vec<usize>, Vec<f32>),
                ours: &str,
                theirs: &str,
                c_in: usize,
                k: usize| {
        let w = get(&format!("{ours}.weight"));
        let c_out = w.0[1];
        put(
            format!("{theirs}.weight"),
            vec![c_out, c_in, k, k],
            transpose(w),
        );
        let b = get(&format!("{ours}.bias"));
        put(format!("{theirs}.bias"), b.0.clone(), b.1.clone());
    };
    let linear = |put: &mut dyn FnMut(String, Vec<usize>, Vec<f32>), ours: &str, theirs: &str| {
        let w = get(&format!("{ours}.weight"));
        put(
            format!("{theirs}.weight"),
            vec![w.0[1], w.0[0]],
            transpose(w),
        );
        let b = get(&format!("{ours}.bias"));
        put(format!("{theirs}.bias"), b.0.clone(), b.1.clone());
    };
    let p = "convnextv2";
    conv(
        &mut put,
        "backbone.stem",
        &format!("{p}.embeddings.patch_embeddings"),
        cfg.num_channels,
        cfg.patch_size,
    );
    norm(
        &mut put,
        "backbone.stem_norm",
        &format!("{p}.embeddings.layernorm"),
    );
    let mut prev = cfg.dims[0];
    for (i, (&d, &depth)) in cfg.dims.iter().zip(&cfg.depths).enumerate() {
        let s = format!("{p}.encoder.stages.{i}");
        if i > 0 {
            norm(
                &mut put,
                &format!("backbone.stages.{i}.downsample.norm"),
                &format!("{s}.downsampling_layer.0"),
            );
            conv(
                &mut put,
                &format!("backbone.stages.{i}.downsample.conv"),
                &format!("{s}.downsampling_layer.1"),
                prev,
                2,
            );
        }
        for j in 0..depth {
            let ours = format!("backbone.stages.{i}.blocks.{j}");
            let theirs = format!("{s}.layers.{j}");
            let dw = get(&format!("{ours}.dw_weight"));
            put(
                format!("{theirs}.dwconv.weight"),
                dw.0.clone(),
                dw.1.clone(),
            );
            let db = get(&format!("{ours}.dw_bias"));
            put(format!("{theirs}.dwconv.bias"), db.0.clone(), db.1.clone());
            norm(
                &mut put,
                &format!("{ours}.norm"),
                &format!("{theirs}.layernorm"),
            );
            linear(
                &mut put,
                &format!("{ours}.fc1"),
                &format!("{theirs}.pwconv1"),
            );
            let gg = get(&format!("{ours}.grn_gamma"));
            put(
                format!("{theirs}.grn.weight"),
                vec![1, 1, 1, gg.1.len()],
                gg.1.clone(),
            );
            let gb = get(&format!("{ours}.grn_beta"));
            put(
                format!("{theirs}.grn.bias"),
                vec![1, 1, 1, gb.1.len()],
                gb.1.clone(),
            );
            linear(
                &mut put,
                &format!("{ours}.fc2"),
                &format!("{theirs}.pwconv2"),
            );
        }
        prev = d;
    }
    norm(&mut put, "backbone.head_norm", &format!("{p}.layernorm"));
    linear(&mut put, "head", "classifier");
    out
}

/// Write `model` in the transformers layout into `dir`, with `card` when given
/// (validated first; nothing is written when it is invalid). `image_size` is the side the
/// model was trained at.
pub fn export_hf(
    model: &ConvNextV2Classifier,
    image_size: u32,
    card: Option<&ModelCard>,
    dir: &Path,
) -> Result<()> {
    card.map(ModelCard::validate).transpose()?;
    let cfg = &model.backbone.config;
    let n = cfg.dims.len();
    let config = json!({
        "architectures": ["ConvNextV2ForImageClassification"],
        "model_type": "convnextv2",
        "depths": cfg.depths,
        "hidden_sizes": cfg.dims,
        "num_stages": n,
        "num_channels": cfg.num_channels,
        "patch_size": cfg.patch_size,
        "layer_norm_eps": cfg.head_norm_eps,
        "drop_path_rate": 0.0,
        "hidden_act": "gelu",
        "initializer_range": 0.02,
        "image_size": image_size,
        "id2label": {"0": "None", "1": "Roadwork"},
        "label2id": {"None": 0, "Roadwork": 1},
        "stage_names": std::iter::once("stem".to_string())
            .chain((1..=n).map(|i| format!("stage{i}")))
            .collect::<Vec<_>>(),
        "out_features": [format!("stage{n}")],
        "out_indices": [n],
        "torch_dtype": "float32",
        "transformers_version": "4.57.3",
    });
    // crop_pct 1 and bicubic: a plain resize of the (square) challenge image, as in
    // training; from 384 px transformers resizes without cropping anyway.
    let preprocessor = json!({
        "image_processor_type": "ConvNextImageProcessor",
        "do_resize": true,
        "size": {"shortest_edge": image_size},
        "crop_pct": 1.0,
        "resample": 3,
        "do_rescale": true,
        "rescale_factor": 1.0 / 255.0,
        "do_normalize": true,
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
    });
    write_repository(dir, &hf_tensors(model), &config, &preprocessor, card)
}

/// The transformers tensors of a DINOv2-with-registers classifier
/// (`Dinov2WithRegistersForImageClassification`): the fused qkv split back into query,
/// key and value, LayerScale as `lambda1`, PyTorch's `[out, in]` matrices.
pub fn hf_tensors_dinov2(model: &Dinov2Classifier) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let params = params_of(model);
    let cfg = &model.backbone.config;
    let d = cfg.hidden_size;
    let get = |k: &str| -> &(Vec<usize>, Vec<f32>) {
        params
            .get(k)
            .unwrap_or_else(|| panic!("the classifier has {k}"))
    };
    let mut out = BTreeMap::new();
    let p = "dinov2_with_registers";
    let copy = |out: &mut BTreeMap<_, _>, ours: &str, theirs: String| {
        let t = get(ours);
        out.insert(theirs, (t.0.clone(), t.1.clone()));
    };
    let linear = |out: &mut BTreeMap<String, (Vec<usize>, Vec<f32>)>, ours: &str, theirs: &str| {
        let w = get(&format!("{ours}.weight"));
        out.insert(
            format!("{theirs}.weight"),
            (vec![w.0[1], w.0[0]], transpose(w)),
        );
        if let Some(b) = params.get(&format!("{ours}.bias")) {
            out.insert(format!("{theirs}.bias"), b.clone());
        }
    };
    let norm = |out: &mut BTreeMap<String, (Vec<usize>, Vec<f32>)>, ours: &str, theirs: &str| {
        copy(out, &format!("{ours}.gamma"), format!("{theirs}.weight"));
        copy(out, &format!("{ours}.beta"), format!("{theirs}.bias"));
    };
    let e = format!("{p}.embeddings");
    copy(
        &mut out,
        "backbone.patch_weight",
        format!("{e}.patch_embeddings.projection.weight"),
    );
    copy(
        &mut out,
        "backbone.patch_bias",
        format!("{e}.patch_embeddings.projection.bias"),
    );
    copy(&mut out, "backbone.cls_token", format!("{e}.cls_token"));
    if params.contains_key("backbone.mask_token") {
        copy(&mut out, "backbone.mask_token", format!("{e}.mask_token"));
    } else {
        out.insert(format!("{e}.mask_token"), (vec![1, d], vec![0.0; d]));
    }
    if params.contains_key("backbone.register_tokens") {
        copy(
            &mut out,
            "backbone.register_tokens",
            format!("{e}.register_tokens"),
        );
    } else {
        out.insert(format!("{e}.register_tokens"), (vec![1, 0, d], Vec::new()));
    }
    copy(
        &mut out,
        "backbone.pos_embed",
        format!("{e}.position_embeddings"),
    );
    for i in 0..cfg.num_layers {
        let ours = format!("backbone.blocks.{i}");
        let theirs = format!("{p}.encoder.layer.{i}");
        norm(
            &mut out,
            &format!("{ours}.norm1"),
            &format!("{theirs}.norm1"),
        );
        // qkv [d, 3d] (in, out) → [3d, d] → query, key, value rows.
        let qkv = transpose(get(&format!("{ours}.attn.qkv.weight")));
        let bias = params.get(&format!("{ours}.attn.qkv.bias"));
        for (j, name) in ["query", "key", "value"].iter().enumerate() {
            let a = format!("{theirs}.attention.attention.{name}");
            out.insert(
                format!("{a}.weight"),
                (vec![d, d], qkv[j * d * d..(j + 1) * d * d].to_vec()),
            );
            if let Some((_, b)) = bias {
                out.insert(
                    format!("{a}.bias"),
                    (vec![d], b[j * d..(j + 1) * d].to_vec()),
                );
            }
        }
        linear(
            &mut out,
            &format!("{ours}.attn.proj"),
            &format!("{theirs}.attention.output.dense"),
        );
        copy(
            &mut out,
            &format!("{ours}.ls1"),
            format!("{theirs}.layer_scale1.lambda1"),
        );
        norm(
            &mut out,
            &format!("{ours}.norm2"),
            &format!("{theirs}.norm2"),
        );
        let (fc1, fc2) = if cfg.swiglu {
            ("mlp.weights_in", "mlp.weights_out")
        } else {
            ("mlp.fc1", "mlp.fc2")
        };
        linear(
            &mut out,
            &format!("{ours}.mlp.fc1"),
            &format!("{theirs}.{fc1}"),
        );
        linear(
            &mut out,
            &format!("{ours}.mlp.fc2"),
            &format!("{theirs}.{fc2}"),
        );
        copy(
            &mut out,
            &format!("{ours}.ls2"),
            format!("{theirs}.layer_scale2.lambda1"),
        );
    }
    norm(&mut out, "backbone.norm", &format!("{p}.layernorm"));
    linear(&mut out, "head", "classifier");
    out
}

/// Write a DINOv2-with-registers classifier in the transformers layout into `dir`, with
/// `card` when given (validated first). `image_size` is the side the model was trained
/// at.
pub fn export_hf_dinov2(
    model: &Dinov2Classifier,
    image_size: u32,
    card: Option<&ModelCard>,
    dir: &Path,
) -> Result<()> {
    card.map(ModelCard::validate).transpose()?;
    if model.head_input != sv_models::dinov2::HeadInput::ClsAndMeanPatch
        || model.backbone.norm.is_none()
    {
        return Err(TrainError::Config {
            source_name: dir.display().to_string(),
            reason: "this DINOv2 classifier's head reads timm's CLS or average-pooled \
                     feature, which transformers' Dinov2WithRegistersForImageClassification \
                     cannot express; fine-tune it first (a new head reads concat(CLS, mean patch))"
                .into(),
        });
    }
    let cfg = &model.backbone.config;
    let config = json!({
        "architectures": ["Dinov2WithRegistersForImageClassification"],
        "model_type": "dinov2_with_registers",
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        // transformers writes an integral ratio as an integer.
        "mlp_ratio": if cfg.mlp_ratio.fract() == 0.0 {
            json!(cfg.mlp_ratio as u64)
        } else {
            json!(cfg.mlp_ratio)
        },
        "use_swiglu_ffn": cfg.swiglu,
        "num_register_tokens": cfg.num_register_tokens,
        "patch_size": cfg.patch_size,
        "image_size": cfg.image_size,
        "num_channels": cfg.num_channels,
        "qkv_bias": cfg.qkv_bias,
        "layer_norm_eps": cfg.layer_norm_eps,
        "layerscale_value": 1.0,
        "drop_path_rate": 0.0,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.02,
        "apply_layernorm": true,
        "reshape_hidden_states": true,
        "id2label": {"0": "None", "1": "Roadwork"},
        "label2id": {"None": 0, "Roadwork": 1},
        "stage_names": std::iter::once("stem".to_string())
            .chain((1..=cfg.num_layers).map(|i| format!("stage{i}")))
            .collect::<Vec<_>>(),
        "out_features": [format!("stage{}", cfg.num_layers)],
        "out_indices": [cfg.num_layers],
        "torch_dtype": "float32",
        "transformers_version": "4.57.3",
    });
    // Resize the shortest edge to the training side and crop the centre square: a plain
    // bicubic resize for the square challenge images, as in training.
    let preprocessor = json!({
        "image_processor_type": "BitImageProcessor",
        "do_resize": true,
        "size": {"shortest_edge": image_size},
        "resample": 3,
        "do_center_crop": true,
        "crop_size": {"height": image_size, "width": image_size},
        "do_rescale": true,
        "rescale_factor": 1.0 / 255.0,
        "do_normalize": true,
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
        "do_convert_rgb": true,
    });
    write_repository(dir, &hf_tensors_dinov2(model), &config, &preprocessor, card)
}

/// Write the weights (safetensors with `format: pt`), both configs, the model card when
/// given and the ensemble file, each atomically.
fn write_repository(
    dir: &Path,
    tensors: &BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    config: &serde_json::Value,
    preprocessor: &serde_json::Value,
    card: Option<&ModelCard>,
) -> Result<()> {
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    let st = serialize_f32(
        tensors
            .iter()
            .map(|(k, (shape, v))| (k.clone(), shape.as_slice(), v.as_slice())),
        meta,
    )
    .map_err(|e| TrainError::Config {
        source_name: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    atomic_write(&dir.join("model.safetensors"), &st)?;
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).expect("json") + "\n";
    atomic_write(&dir.join("config.json"), pretty(config).as_bytes())?;
    atomic_write(
        &dir.join("preprocessor_config.json"),
        pretty(preprocessor).as_bytes(),
    )?;
    if let Some(card) = card {
        atomic_write(
            &dir.join("model_card.json"),
            pretty(&serde_json::to_value(card).expect("json")).as_bytes(),
        )?;
    }
    // Our own ensemble file with this model as its one member (paths relative to the
    // repository), ready to merge with other members (`sv-miner classify --ensemble`).
    let architecture = if config["model_type"] == "convnextv2" {
        "convnextv2"
    } else {
        "dinov2"
    };
    let ensemble = json!({"members": [{
        "name": card.map_or("model", |c| c.model_name.as_str()),
        "checkpoint": "model.safetensors",
        "architecture": architecture,
        "config": "config.json",
        "preprocessor": "preprocessor_config.json",
    }]});
    atomic_write(&dir.join("ensemble.json"), pretty(&ensemble).as_bytes())
}
