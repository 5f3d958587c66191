//! The bank, the synthetic negatives and the loss against the PyTorch reference
//! (`tools/gen_contrastive_fixtures.py`): negatives, loss and gradients within 1e-5.

use burn::tensor::{Device, Tensor, TensorData};
use serde_json::Value;
use sv_contrastive::{FeatureBank, supcon_loss, synthetic_negatives};
use sv_tests::fixture;

fn flat(v: &Value) -> Vec<f32> {
    match v {
        Value::Array(items) => items.iter().flat_map(flat).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap() as f32],
        other => panic!("{other}"),
    }
}

fn reference() -> Value {
    serde_json::from_slice(&std::fs::read(fixture("contrastive/reference.json")).unwrap()).unwrap()
}

fn close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{what}[{i}]: {g} vs {w}");
    }
}

fn negatives(r: &Value) -> (Vec<f32>, Vec<usize>, usize) {
    let d = r["features"][0].as_array().unwrap().len();
    let capacity = r["capacity"].as_u64().unwrap() as usize;
    let m = r["per_anchor"].as_u64().unwrap() as usize;
    let mut bank = FeatureBank::new(d, capacity);
    let bank_values = flat(&r["bank"]);
    for (i, label) in r["bank_labels"].as_array().unwrap().iter().enumerate() {
        bank.push(
            &format!("b{i}"),
            label.as_u64().unwrap() as u8,
            &bank_values[i * d..(i + 1) * d],
        )
        .unwrap();
    }
    assert_eq!(bank.len(), capacity);
    assert_eq!(
        bank.entries().next().unwrap().id,
        "b4",
        "the oldest were dropped"
    );
    let labels: Vec<u8> = labels(r);
    let (values, filled) = synthetic_negatives(
        &flat(&r["features"]),
        &labels,
        &bank,
        &flat(&r["alphas"]),
        m,
    )
    .unwrap();
    (values, filled, m)
}

fn labels(r: &Value) -> Vec<u8> {
    r["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_u64().unwrap() as u8)
        .collect()
}

#[test]
fn synthetic_negatives_equal_pytorch() {
    let r = reference();
    let (values, filled, m) = negatives(&r);
    assert!(filled.iter().all(|f| *f == m));
    close(&values, &flat(&r["negatives"]), 1e-6, "negatives");
}

fn loss_and_grad(r: &Value, with_negatives: bool) -> (f32, Vec<f32>) {
    let device = Device::default().autodiff();
    let b = r["features"].as_array().unwrap().len();
    let d = r["features"][0].as_array().unwrap().len();
    let f = Tensor::<2>::from_data(TensorData::new(flat(&r["features"]), [b, d]), &device)
        .require_grad();
    let (values, filled, m) = negatives(r);
    let t = r["temperature"].as_f64().unwrap() as f32;
    let negs = with_negatives.then_some((values.as_slice(), filled.as_slice(), m));
    let loss = supcon_loss(f.clone(), &labels(r), negs, t).unwrap();
    let value = loss.clone().into_data().try_to_vec::<f32>().unwrap()[0];
    let grads = loss.backward();
    let grad = f
        .grad(&grads)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    (value, grad)
}

fn check_against_pytorch(with_negatives: bool, key: &str) {
    let r = reference();
    let (loss, grad) = loss_and_grad(&r, with_negatives);
    let want = &r[key];
    assert!(
        (loss - want["loss"].as_f64().unwrap() as f32).abs() < 1e-5,
        "{loss} vs {}",
        want["loss"]
    );
    close(&grad, &flat(&want["grad"]), 1e-5, "grad");
}

#[test]
fn loss_and_gradients_with_hard_negatives_equal_pytorch() {
    check_against_pytorch(true, "with_negatives");
}

#[test]
fn loss_and_gradients_without_negatives_equal_pytorch() {
    check_against_pytorch(false, "without_negatives");
}

#[test]
fn an_empty_bank_gives_no_negatives_and_bad_shapes_are_named() {
    let bank = FeatureBank::new(4, 8);
    let (values, filled) = synthetic_negatives(&[1.0; 8], &[0, 1], &bank, &[0.5; 4], 2).unwrap();
    assert_eq!(filled, vec![0, 0]);
    assert!(values.iter().all(|v| *v == 0.0));
    let mut bank = FeatureBank::new(4, 8);
    let err = bank.push("x", 0, &[1.0; 3]).unwrap_err();
    assert!(err.to_string().contains("\"x\""), "{err}");
    assert!(synthetic_negatives(&[1.0; 8], &[0, 1], &bank, &[1.5; 4], 2).is_err());
}
