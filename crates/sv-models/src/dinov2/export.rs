//! DINOv2 with registers written back in the Hugging Face transformers layout: the key
//! map of the loader run the other way (the fused qkv split into query, key and
//! value, LayerScale as `lambda1`, PyTorch's `[out, in]` matrices), with transformers'
//! `config.json` and `preprocessor_config.json`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use super::{Dinov2Classifier, HeadInput};
use crate::error::{ModelError, Result};
use crate::export::{transpose, write_repository};
use crate::weights::{Values, params_of};

/// Whether transformers can express `model`'s head: it reads concat(CLS, mean patch)
/// after the final norm.
pub fn check_exportable(model: &Dinov2Classifier, dir: &Path) -> Result<()> {
    if model.head_input != HeadInput::ClsAndMeanPatch || model.backbone.norm.is_none() {
        return Err(ModelError::Config(format!(
            "{}: this DINOv2 classifier's head reads timm's CLS or average-pooled feature, \
             which transformers' Dinov2WithRegistersForImageClassification cannot express; \
             fine-tune it first (a new head reads concat(CLS, mean patch))",
            dir.display()
        )));
    }
    Ok(())
}

/// The transformers tensors of a DINOv2-with-registers classifier
/// (`Dinov2WithRegistersForImageClassification`): the fused qkv split back into query,
/// key and value, LayerScale as `lambda1`, PyTorch's `[out, in]` matrices.
pub fn hf_tensors(model: &Dinov2Classifier) -> Values {
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

/// Write a DINOv2-with-registers classifier in the transformers layout
/// (`Dinov2WithRegistersForImageClassification`) into `dir`, named `name` in its
/// `ensemble.json`. `image_size` is the side the model was trained at.
pub fn export_hf(model: &Dinov2Classifier, image_size: u32, name: &str, dir: &Path) -> Result<()> {
    check_exportable(model, dir)?;
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
    write_repository(dir, &hf_tensors(model), &config, &preprocessor, name)
}
