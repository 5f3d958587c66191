//! ConvNeXt-V2 written back in the Hugging Face transformers layout: the key map of
//! the loader run the other way (patchify GEMMs back to convolutions, PyTorch's
//! `[out, in]` matrices), with transformers' `config.json` and
//! `preprocessor_config.json`.

use std::path::Path;

use serde_json::json;

use super::ConvNextV2Classifier;
use crate::error::Result;
use crate::export::{transpose, write_repository};
use crate::weights::{Values, params_of};

/// The transformers tensors of `model`: name → (shape, values).
pub fn hf_tensors(model: &ConvNextV2Classifier) -> Values {
    let params = params_of(model);
    let cfg = &model.backbone.config;
    let mut out = Values::new();
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

/// Write `model` in the transformers layout (`ConvNextV2ForImageClassification`) into
/// `dir`, named `name` in its `ensemble.json`. `image_size` is the side the model was
/// trained at.
pub fn export_hf(
    model: &ConvNextV2Classifier,
    image_size: u32,
    name: &str,
    dir: &Path,
) -> Result<()> {
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
    write_repository(dir, &hf_tensors(model), &config, &preprocessor, name)
}
