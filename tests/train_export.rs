//! Export to the transformers layout: re-exporting the transformers-written ConvNeXt-V2
//! fixture must give back transformers' own file tensor for tensor, a config with its
//! fields, and a model whose logits equal the ones transformers computed.

use safetensors::SafeTensors;
use sv_models::{ConvNextLoadOptions, ConvNextV2Classifier, Device};
use sv_tests::{fixture, max_abs_diff, read_expected};
use sv_train::export::{ModelCard, export_hf};

/// Both safetensors files hold the same names, shapes and bytes.
fn assert_same_tensors(what: &str, original: &std::path::Path, exported: &std::path::Path) {
    let (original, exported) = (
        std::fs::read(original).unwrap(),
        std::fs::read(exported).unwrap(),
    );
    let (a, b) = (
        SafeTensors::deserialize(&original).unwrap(),
        SafeTensors::deserialize(&exported).unwrap(),
    );
    let names = |s: &SafeTensors| {
        let mut n: Vec<String> = s.names().into_iter().map(String::from).collect();
        n.sort();
        n
    };
    assert_eq!(names(&a), names(&b), "{what}: transformers' key names");
    for key in names(&a) {
        let (ta, tb) = (a.tensor(&key).unwrap(), b.tensor(&key).unwrap());
        assert_eq!(ta.shape(), tb.shape(), "{what} {key}");
        assert_eq!(ta.data(), tb.data(), "{what} {key}: values");
    }
}

/// The listed keys of two JSON files agree.
fn assert_same_keys(what: &str, theirs: &std::path::Path, ours: &std::path::Path, keys: &[&str]) {
    let read = |p: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let (theirs, ours) = (read(theirs), read(ours));
    for key in keys {
        assert_eq!(ours[key], theirs[key], "{what} config.json {key}");
    }
}

fn card() -> ModelCard {
    ModelCard {
        model_name: "roadwork-convnextv2-test".into(),
        description: "fixture".into(),
        version: "1.0.0".into(),
        submitted_by: "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY".into(),
        submission_time: 1_764_000_000,
        architecture: Some("ConvNextV2ForImageClassification".into()),
        notes: None,
    }
}

#[test]
fn export_gives_back_the_transformers_file() {
    let device = Device::default();
    let src = fixture("convnext/hf_cls.safetensors");
    let model = ConvNextV2Classifier::load(&src, &ConvNextLoadOptions::default(), &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    export_hf(&model, 224, Some(&card()), dir.path()).unwrap();

    assert_same_tensors("convnext", &src, &dir.path().join("model.safetensors"));
    assert_same_keys(
        "convnext",
        &fixture("convnext/hf_cls.config.json"),
        &dir.path().join("config.json"),
        &[
            "model_type",
            "depths",
            "hidden_sizes",
            "num_stages",
            "num_channels",
            "patch_size",
            "layer_norm_eps",
            "id2label",
            "label2id",
            "stage_names",
            "out_features",
            "out_indices",
        ],
    );
    let ours: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    assert_eq!(ours["architectures"][0], "ConvNextV2ForImageClassification");
    // The exported labels name roadwork as label 1 by the rule every command applies.
    assert_eq!(
        sv_models::labels::roadwork_index_from_config(
            &ours.to_string(),
            2,
            &dir.path().join("config.json")
        )
        .unwrap(),
        1
    );
    assert_eq!(ours["id2label"]["1"], "Roadwork");
    let card_back: ModelCard =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("model_card.json")).unwrap())
            .unwrap();
    assert_eq!(card_back, card());

    // Our ensemble file: one member, usable as it is.
    let ensemble = sv_models::Ensemble::load(&dir.path().join("ensemble.json"), &device).unwrap();
    let probs = ensemble
        .classify_files(&[fixture("images/chelsea.png")])
        .unwrap();
    assert_eq!(probs.len(), 1);

    // Loaded back, the export computes transformers' logits.
    let again = ConvNextV2Classifier::load(
        &dir.path().join("model.safetensors"),
        &ConvNextLoadOptions::default(),
        &device,
    )
    .unwrap();
    let expected = read_expected("convnext/hf_cls.expected.safetensors");
    let pixels = expected["pixels_native"].tensor::<4>(&device);
    let worst = max_abs_diff(
        "logits",
        again.forward(pixels),
        &expected["pixels_native.logits"],
    );
    assert!(worst < 1e-4, "logits differ by {worst}");
}

#[test]
fn a_bad_card_writes_nothing() {
    let device = Device::default();
    let model = ConvNextV2Classifier::load(
        &fixture("convnext/hf_cls.safetensors"),
        &ConvNextLoadOptions::default(),
        &device,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut bad = card();
    bad.submitted_by = "not-a-hotkey".into();
    let err = export_hf(&model, 224, Some(&bad), dir.path()).unwrap_err();
    assert!(err.to_string().contains("submitted_by"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn dinov2_export_gives_back_the_transformers_files() {
    use sv_models::{Dinov2Classifier, LoadOptions};
    let device = Device::default();
    for name in ["hf_mlp", "hf_swiglu"] {
        let src = fixture(&format!("dinov2/{name}.safetensors"));
        let model = Dinov2Classifier::load(&src, &LoadOptions::default(), &device).unwrap();
        let dir = tempfile::tempdir().unwrap();
        export_hf(&model, 56, Some(&card()), dir.path()).unwrap();
        assert_same_tensors(name, &src, &dir.path().join("model.safetensors"));
        let their_config = fixture(&format!("dinov2/{name}.config.json"));
        assert_same_keys(
            name,
            &their_config,
            &dir.path().join("config.json"),
            &[
                "model_type",
                "hidden_size",
                "num_hidden_layers",
                "num_attention_heads",
                "mlp_ratio",
                "num_register_tokens",
                "patch_size",
                "image_size",
                "qkv_bias",
                "layer_norm_eps",
                "id2label",
                "label2id",
                "stage_names",
                "out_features",
                "out_indices",
            ],
        );
        let read = |p: &std::path::Path| -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
        };
        let (theirs, ours) = (read(&their_config), read(&dir.path().join("config.json")));
        assert_eq!(
            ours["use_swiglu_ffn"].as_bool().unwrap_or(false),
            theirs["use_swiglu_ffn"].as_bool().unwrap_or(false)
        );
        // Loaded back, transformers' logits.
        let again = Dinov2Classifier::load(
            &dir.path().join("model.safetensors"),
            &LoadOptions::default(),
            &device,
        )
        .unwrap();
        let expected = read_expected(&format!("dinov2/{name}.expected.safetensors"));
        let pixels = expected["pixels_native"].tensor::<4>(&device);
        let worst = max_abs_diff(
            "logits",
            again.forward(pixels),
            &expected["pixels_native.logits"],
        );
        assert!(worst < 1e-4, "{name}: logits differ by {worst}");
    }
}

#[test]
fn a_checkpoint_of_another_architecture_is_refused_by_name() {
    use sv_models::{Dinov2Classifier, LoadOptions};
    use sv_train::checkpoint::{load_params, params_of};
    let device = Device::default();
    let dino = Dinov2Classifier::load(
        &fixture("dinov2/hf_mlp.safetensors"),
        &LoadOptions::default(),
        &device,
    )
    .unwrap();
    let convnext = ConvNextV2Classifier::load(
        &fixture("convnext/hf_cls.safetensors"),
        &ConvNextLoadOptions::default(),
        &device,
    )
    .unwrap();
    let err = load_params(
        convnext,
        &params_of(&dino),
        std::path::Path::new("dino.ckpt"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("dino.ckpt")
            && err.contains("another architecture")
            && err.contains("missing backbone.stem"),
        "{err}"
    );
}

#[test]
fn a_failed_checkpoint_write_leaves_the_old_one_and_no_debris() {
    use sv_train::checkpoint::atomic_write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint.safetensors");
    atomic_write(&path, b"old").unwrap();
    // The temporary file cannot be created: directories are in the way of the names
    // this process would use next (`.{name}.tmp-{pid}-{n}`, n counting this process's
    // atomic writes).
    let blockers: Vec<_> = (0..5000)
        .map(|n| {
            dir.path().join(format!(
                ".checkpoint.safetensors.tmp-{}-{n}",
                std::process::id()
            ))
        })
        .collect();
    for b in &blockers {
        std::fs::create_dir(b).unwrap();
    }
    assert!(atomic_write(&path, b"new").is_err());
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
    for b in &blockers {
        std::fs::remove_dir(b).unwrap();
    }
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("checkpoint.safetensors")]
    );
}
