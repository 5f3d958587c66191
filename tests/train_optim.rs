//! sv-train's AdamW against PyTorch: two steps on the tiny DINOv2 classifier with
//! layer-wise learning-rate decay, no-decay groups and global-norm clipping must leave
//! every weight where `torch.optim.AdamW` + `clip_grad_norm_` left it
//! (`tools/gen_train_fixtures.py adamw`).

use std::collections::HashMap;

use burn::tensor::{Device, Tensor, activation::log_softmax};
use sv_models::Family;
use sv_models::{Dinov2Classifier, LoadOptions};
use sv_tests::{fixture, read_expected};
use sv_train::optim::{AdamW, AdamWSettings};

/// Every float parameter, flattened, by module path.
fn params<M: burn::module::Module>(m: &M) -> HashMap<String, Vec<f32>> {
    sv_train::checkpoint::params_of(m)
        .into_iter()
        .map(|(k, (_, v))| (k, v))
        .collect()
}

#[test]
fn two_adamw_steps_equal_pytorch() {
    let device = Device::default().autodiff();
    let opts = LoadOptions::default();
    let mut model =
        Dinov2Classifier::load(&fixture("dinov2/hf_mlp.safetensors"), &opts, &device).unwrap();
    let batch = read_expected("train/adamw_batch.safetensors");
    let pixels = batch["pixels"].tensor::<4>(&device);
    let labels: Vec<usize> = batch["labels"].data.iter().map(|&v| v as usize).collect();
    let mut onehot = vec![0f32; labels.len() * 2];
    for (i, &l) in labels.iter().enumerate() {
        onehot[i * 2 + l] = 1.0;
    }
    let targets = Tensor::<2>::from_data(
        burn::tensor::TensorData::new(onehot, [labels.len(), 2]),
        &device,
    );
    let settings = AdamWSettings {
        weight_decay: 0.05,
        layer_decay: 0.65,
        clip: Some(0.5),
        ..AdamWSettings::default()
    };
    let mut optim = AdamW::new(settings, model.param_groups());
    let mut norms = Vec::new();
    for _ in 0..2 {
        let logits = model.forward(pixels.clone());
        let loss = (log_softmax(logits, 1) * targets.clone())
            .sum()
            .div_scalar(-(labels.len() as f32));
        let grads = loss.backward();
        let (next, report) = optim.step(model, 1e-3, &grads);
        model = next;
        norms.push(report.grad_norm);
    }
    let want_norms = &batch["grad_norms"].data_f64;
    for (got, want) in norms.iter().zip(want_norms) {
        assert!(
            (got - want).abs() < 1e-4 * want,
            "gradient norm {got} vs {want}"
        );
    }
    let reference = Dinov2Classifier::load(
        &fixture("train/adamw_model.safetensors"),
        &opts,
        &Device::default(),
    )
    .unwrap();
    let (ours, theirs) = (params(&model), params(&reference));
    assert_eq!(ours.len(), theirs.len());
    let before = params(
        &Dinov2Classifier::load(
            &fixture("dinov2/hf_mlp.safetensors"),
            &opts,
            &Device::default(),
        )
        .unwrap(),
    );
    let (mut values, mut over) = (0usize, 0usize);
    for (path, want) in &theirs {
        let got = &ours[path];
        // The key bias has no gradient in exact arithmetic (softmax ignores a constant
        // added to every key's score); Adam normalises the rounding noise both sides
        // leave there into full-size steps of arbitrary sign, so it is not compared.
        let hidden = model.backbone.config.hidden_size;
        let skip = |i: usize| path.ends_with("attn.qkv.bias") && (hidden..2 * hidden).contains(&i);
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            if skip(i) {
                continue;
            }
            let d = (a - b).abs();
            values += 1;
            if d > 1e-5 {
                over += 1;
                // Gradients near zero keep a little rounding noise after Adam's
                // normalisation: a few values may differ by a few 1e-5.
                assert!(d <= 5e-5, "{path}[{i}]: |Δ| {d}");
            }
        }
        // And the step moved it (except the unused mask token).
        let moved = before[path]
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            moved > 1e-6 || path.contains("mask_token"),
            "{path} did not move"
        );
    }
    assert!(
        over * 5000 <= values,
        "{over} of {values} values differ by more than 1e-5"
    );
}
