//! Export a trained ConvNeXt-V2 classifier in the Hugging Face transformers layout
//! (`ConvNextV2ForImageClassification`): `model.safetensors` with transformers' key
//! names and PyTorch's tensor layouts, `config.json`, `preprocessor_config.json`, and the
//! subnet's `model_card.json`. The subnet's base miner and plain transformers load it.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use serde_json::json;
use sv_models::ConvNextV2Classifier;

use crate::checkpoint::{atomic_write, params_of};
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
    // burn `Linear` is [in, out]; PyTorch is [out, in].
    let transpose = |(shape, v): &(Vec<usize>, Vec<f32>)| -> Vec<f32> {
        let (rows, cols) = (shape[0], shape[1]);
        let mut t = vec![0f32; v.len()];
        for r in 0..rows {
            for c in 0..cols {
                t[c * rows + r] = v[r * cols + c];
            }
        }
        t
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

/// Write `model` in the transformers layout into `dir`, with `card` (validated first;
/// nothing is written when it is invalid). `image_size` is the side the model was
/// trained at.
pub fn export_hf(
    model: &ConvNextV2Classifier,
    image_size: u32,
    card: &ModelCard,
    dir: &Path,
) -> Result<()> {
    card.validate()?;
    let cfg = &model.backbone.config;
    let tensors = hf_tensors(model);
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(k, (shape, v))| (k, shape, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(k, shape, b)| {
            (
                k.clone(),
                TensorView::new(Dtype::F32, shape.clone(), b).expect("sizes agree"),
            )
        })
        .collect();
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    let st = safetensors::serialize(views, Some(meta)).map_err(|e| TrainError::Config {
        source_name: dir.display().to_string(),
        reason: e.to_string(),
    })?;
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
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    atomic_write(&dir.join("model.safetensors"), &st)?;
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).expect("json") + "\n";
    atomic_write(&dir.join("config.json"), pretty(&config).as_bytes())?;
    atomic_write(
        &dir.join("preprocessor_config.json"),
        pretty(&preprocessor).as_bytes(),
    )?;
    atomic_write(
        &dir.join("model_card.json"),
        pretty(&serde_json::to_value(card).expect("json")).as_bytes(),
    )
}
