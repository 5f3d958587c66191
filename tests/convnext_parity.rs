//! ConvNeXt-V2 against HF transformers and timm: tiny random checkpoints in both layouts
//! (timm with the linear and the 1×1-conv MLP), as safetensors and `.bin`, with the
//! reference library's outputs at a square size, a wide size and a size that every
//! stride floors (`tools/gen_fixtures.sh`).

use burn::tensor::{Device, Tensor};
use sv_models::convnext::{ConvNextLayout, detect_convnext_layout};
use sv_models::weights::WeightMap;
use sv_models::{
    ConvNextLoadOptions, ConvNextV2, ConvNextV2Classifier, ConvNextV2Config, ModelError,
};
use sv_tests::{fixture, max_abs_diff, read_expected, rename_key};

const TOL: f32 = 1e-4;
const INPUTS: [&str; 3] = ["pixels_native", "pixels_wide", "pixels_odd"];

fn load(
    checkpoint: &str,
    opts: &ConvNextLoadOptions,
    head: bool,
    device: &Device,
) -> ConvNextV2Classifier {
    let path = fixture(&format!("convnext/{checkpoint}"));
    if head {
        ConvNextV2Classifier::load(&path, opts, device).unwrap_or_else(|e| panic!("{e}"))
    } else {
        let backbone = ConvNextV2::load(&path, opts, device).unwrap_or_else(|e| panic!("{e}"));
        ConvNextV2Classifier::with_new_head(backbone, 2)
    }
}

/// Run every input through the model on `device` and compare the last feature map, the
/// pooled feature and (with a head) the logits.
fn check_on(name: &str, checkpoint: &str, opts: &ConvNextLoadOptions, head: bool, device: &Device) {
    let expected = read_expected(&format!("convnext/{name}.expected.safetensors"));
    let model = load(checkpoint, opts, head, device);
    for input in INPUTS {
        let pixels = expected[input].tensor::<4>(device);
        let (out, logits) = model.forward_all(pixels);
        // The references give NCHW; ours is channels-last.
        let features: Tensor<4> = out.features.permute([0, 3, 1, 2]);
        let mut worst = vec![
            (
                "features",
                max_abs_diff(
                    "features",
                    features,
                    &expected[&format!("{input}.features")],
                ),
            ),
            (
                "pooled",
                max_abs_diff("pooled", out.pooled, &expected[&format!("{input}.pooled")]),
            ),
        ];
        if head {
            worst.push((
                "logits",
                max_abs_diff("logits", logits, &expected[&format!("{input}.logits")]),
            ));
        }
        for (what, diff) in worst {
            assert!(
                diff <= TOL,
                "{checkpoint} {input} {what}: max |Δ| = {diff:e} > {TOL:e}"
            );
        }
    }
}

fn check(name: &str, checkpoint: &str, opts: &ConvNextLoadOptions, head: bool) {
    check_on(name, checkpoint, opts, head, &Device::default());
}

#[test]
fn hf_safetensors_classifier_matches_transformers() {
    check(
        "hf_cls",
        "hf_cls.safetensors",
        &ConvNextLoadOptions::default(),
        true,
    );
}

#[test]
fn hf_pytorch_bin_backbone_matches_transformers() {
    // Same weights as hf_cls, saved as a bare `ConvNextV2Model`; the pooled-feature norm's
    // epsilon (1e-12) comes from the config.
    let opts = ConvNextLoadOptions {
        config_json: Some(fixture("convnext/hf_cls.config.json")),
        ..ConvNextLoadOptions::default()
    };
    check("hf_cls", "hf_base.bin", &opts, false);
}

#[test]
fn timm_linear_mlp_safetensors_matches_timm() {
    check(
        "timm_linear",
        "timm_linear.safetensors",
        &ConvNextLoadOptions::default(),
        true,
    );
}

#[test]
fn timm_conv_mlp_bin_matches_timm() {
    // atto…nano keep fc1/fc2 as 1×1 convolutions `[4C, C, 1, 1]` and the norms as LayerNorm2d.
    check(
        "timm_convmlp",
        "timm_convmlp.bin",
        &ConvNextLoadOptions::default(),
        true,
    );
}

#[test]
fn training_path_matches_timm() {
    // On an autodiff device the block runs burn's differentiable conv, norm and GRN.
    let device = Device::default().autodiff();
    check_on(
        "timm_linear",
        "timm_linear.safetensors",
        &ConvNextLoadOptions::default(),
        true,
        &device,
    );
}

#[test]
fn layouts_are_detected_from_keys() {
    for (file, layout) in [
        ("hf_cls.safetensors", ConvNextLayout::Hf),
        ("hf_base.bin", ConvNextLayout::Hf),
        ("timm_linear.safetensors", ConvNextLayout::Timm),
        ("timm_convmlp.bin", ConvNextLayout::Timm),
    ] {
        let mut map = WeightMap::from_file(&fixture(&format!("convnext/{file}"))).unwrap();
        assert_eq!(detect_convnext_layout(&mut map).unwrap(), layout, "{file}");
    }
}

#[test]
fn inferred_config_matches_the_fixture() {
    let model = load(
        "timm_linear.safetensors",
        &ConvNextLoadOptions::default(),
        true,
        &Device::default(),
    );
    assert_eq!(model.backbone.config.depths, vec![2, 1, 2, 1]);
    assert_eq!(model.backbone.config.dims, vec![8, 24, 40, 48]);
    assert_eq!(model.backbone.config.head_norm_eps, 1e-6);
}

#[test]
fn parameter_counts_of_released_sizes_match_the_references() {
    let text = std::fs::read_to_string(fixture("convnext/real_configs.json")).unwrap();
    let table: serde_json::Value = serde_json::from_str(&text).unwrap();
    for size in [
        "atto", "femto", "pico", "nano", "tiny", "base", "large", "huge",
    ] {
        let cfg = ConvNextV2Config::by_name(size).unwrap();
        let row = &table[size];
        assert_eq!(
            serde_json::json!(cfg.depths),
            row["depths"],
            "{size} depths"
        );
        assert_eq!(serde_json::json!(cfg.dims), row["dims"], "{size} dims");
        for key in ["hf_backbone_params", "timm_backbone_params"] {
            assert_eq!(
                cfg.num_backbone_params() as u64,
                row[key].as_u64().unwrap(),
                "{size} {key}"
            );
        }
    }
    // The count from shapes is the count of the built model.
    let atto = ConvNextV2::random(&ConvNextV2Config::atto(), &Device::default()).unwrap();
    assert_eq!(
        atto.num_parameters(),
        ConvNextV2Config::atto().num_backbone_params()
    );
}

#[test]
fn renamed_key_fails_listing_missing_and_unused() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("renamed.safetensors");
    rename_key(
        &fixture("convnext/timm_linear.safetensors"),
        &bad,
        "stages.2.blocks.1.mlp.grn.weight",
        "stages.2.blocks.1.mlp.grn.gamma",
    );
    let err = ConvNextV2Classifier::load(&bad, &ConvNextLoadOptions::default(), &Device::default())
        .expect_err("a renamed key must fail the load");
    assert!(matches!(err, ModelError::KeyMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("renamed.safetensors"), "names the file: {msg}");
    assert!(
        msg.contains("missing keys (1):\n    stages.2.blocks.1.mlp.grn.weight"),
        "{msg}"
    );
    assert!(
        msg.contains("unused keys (1):\n    stages.2.blocks.1.mlp.grn.gamma"),
        "{msg}"
    );
}

#[test]
fn head_in_backbone_load_is_an_unused_key_and_missing_head_is_refused() {
    let err = ConvNextV2::load(
        &fixture("convnext/hf_cls.safetensors"),
        &ConvNextLoadOptions::default(),
        &Device::default(),
    )
    .expect_err("the head is not part of the backbone");
    assert!(err.to_string().contains("classifier.weight"), "{err}");
    let err = ConvNextV2Classifier::load(
        &fixture("convnext/hf_base.bin"),
        &ConvNextLoadOptions::default(),
        &Device::default(),
    )
    .expect_err("a backbone file has no head");
    assert!(err.to_string().contains("no classification head"), "{err}");
}

#[test]
fn a_dinov2_checkpoint_is_not_taken_for_a_convnext() {
    let err = ConvNextV2::load(
        &fixture("dinov2/hf_mlp.safetensors"),
        &ConvNextLoadOptions::default(),
        &Device::default(),
    )
    .expect_err("wrong architecture");
    assert!(matches!(err, ModelError::UnknownLayout { .. }), "{err}");
}
