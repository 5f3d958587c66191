//! The `sv-miner classify` command as a user runs it: a real process on fixture files.

use std::process::Command;

use burn::tensor::Device;
use sv_models::{Dinov2Classifier, LoadOptions, softmax_rows};
use sv_tests::{fixture, read_expected};

fn miner() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sv-miner"))
}

#[test]
fn classify_prints_the_probability_of_the_reference_pipeline() {
    let checkpoint = fixture("dinov2/hf_mlp.safetensors");
    let out = miner()
        .args(["classify", "--json", "--checkpoint"])
        .arg(&checkpoint)
        .arg(fixture("images/chelsea.png"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let got = line["roadwork_probability"].as_f64().unwrap() as f32;

    // The same network on the pixels HF's BitImageProcessor produced for this image.
    let device = Device::default();
    let pixels =
        read_expected("preprocess/chelsea.safetensors")["pixel_values"].tensor::<4>(&device);
    let model = Dinov2Classifier::load(&checkpoint, &LoadOptions::default(), &device).unwrap();
    let want = softmax_rows(model.forward(pixels))[0][1]; // id2label 1 = Roadwork
    assert!(
        (got - want).abs() <= 1e-4,
        "CLI {got} vs reference pipeline {want}"
    );
    assert!(line["forward_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn missing_image_fails_naming_it() {
    let out = miner()
        .args(["classify", "--checkpoint"])
        .arg(fixture("dinov2/hf_mlp.safetensors"))
        .arg("/no/such/street.jpg")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/no/such/street.jpg"), "{err}");
}

#[test]
fn cuda_without_the_feature_is_refused_clearly() {
    if cfg!(feature = "cuda") {
        return;
    }
    let out = miner()
        .args(["classify", "--device", "cuda", "--checkpoint"])
        .arg(fixture("dinov2/hf_mlp.safetensors"))
        .arg(fixture("images/chelsea.png"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--features cuda"));
}
