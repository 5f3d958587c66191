//! The ensemble against the reference pipeline (each member's HF processor, model and
//! softmax, temperature scaling, weighted average, computed with transformers on real
//! photos) and its fit against PyTorch's LBFGS on the same log-loss.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use sv_models::ensemble::{FitOptions, MemberSpec};
use sv_models::{Ensemble, EnsembleSpec};
use sv_tests::{fixture, read_expected};

fn member(name: &str, checkpoint: &str, preprocessor: &str, temperature: f64) -> MemberSpec {
    MemberSpec {
        name: name.into(),
        checkpoint: fixture(checkpoint),
        architecture: None,
        config: None,
        preprocessor: Some(fixture(preprocessor)),
        roadwork_index: None,
        weight: None,
        temperature,
    }
}

/// DINOv2 + ConvNeXt with the reference temperatures; the ConvNeXt processor is the
/// DINOv2 one (`shared`), ConvNeXt's 224 px one with mean and std 0.5 (`renorm`: same
/// resize) or ConvNeXt's 384 px one (`mixed`). Weights are left to the
/// defaults by architecture.
fn spec(tag: &str) -> EnsembleSpec {
    let cnx_processor = match tag {
        "shared" => "dinov2/hub/preprocessor_config.json",
        "renorm" => "preprocess/convnext224.preprocessor_config.json",
        _ => "preprocess/convnext384.preprocessor_config.json",
    };
    EnsembleSpec {
        members: vec![
            member(
                "dinov2",
                "dinov2/hf_mlp.safetensors",
                "dinov2/hub/preprocessor_config.json",
                1.5,
            ),
            member(
                "convnext",
                "convnext/hf_cls.safetensors",
                cnx_processor,
                0.7,
            ),
        ],
        fit: None,
    }
}

fn images() -> Vec<PathBuf> {
    vec![
        fixture("images/chelsea.png"),
        fixture("images/camera_grey.png"),
    ]
}

#[test]
fn ensemble_matches_the_reference_pipeline() {
    let expected = read_expected("ensemble/expected.safetensors");
    for (tag, groups) in [("shared", 1), ("renorm", 1), ("mixed", 2)] {
        let ens = Ensemble::from_spec(spec(tag), Path::new("."), &Device::default()).unwrap();
        assert_eq!(ens.members[0].weight, 0.6);
        assert_eq!(ens.members[1].weight, 0.4);
        // One resize per distinct input geometry.
        assert_eq!(ens.preprocessing_groups().len(), groups, "{tag}");
        let preds = ens.classify_files(&images()).unwrap();
        let members = &expected[&format!("{tag}.members")].data; // [member, image]
        let combined = &expected[&format!("{tag}.combined")].data;
        for (s, p) in preds.iter().enumerate() {
            let d = (p.prediction.roadwork - combined[s]).abs();
            assert!(
                d <= 1e-4,
                "{tag} image {s}: {} vs {}",
                p.prediction.roadwork,
                combined[s]
            );
            for (i, got) in p.members.iter().enumerate() {
                let want = members[i * 2 + s];
                assert!(
                    (got - want).abs() <= 1e-4,
                    "{tag} member {i} image {s}: {got} vs {want}"
                );
            }
        }
    }
}

fn fit_data() -> (
    Vec<Vec<f64>>,
    Vec<bool>,
    std::collections::HashMap<String, sv_tests::Expected>,
) {
    let expected = read_expected("ensemble/expected.safetensors");
    let probs = &expected["fit.probs"];
    let n = probs.shape[1];
    let rows = (0..2)
        .map(|i| {
            probs.data[i * n..(i + 1) * n]
                .iter()
                .map(|&v| f64::from(v))
                .collect()
        })
        .collect();
    let labels = expected["fit.labels"]
        .data
        .iter()
        .map(|&v| v > 0.5)
        .collect();
    (rows, labels, expected)
}

#[test]
fn fit_reaches_the_optimum_pytorch_lbfgs_finds() {
    let (probs, labels, expected) = fit_data();
    let fit = sv_models::ensemble::fit(
        &probs,
        &labels,
        &[0.5, 0.5],
        &[1.0, 1.0],
        FitOptions::default(),
    )
    .unwrap();
    let want_loss = expected["fit.log_loss"].data_f64[0];
    assert!(
        (fit.log_loss - want_loss).abs() <= 1e-6,
        "log-loss {} vs {want_loss}",
        fit.log_loss
    );
    assert!(fit.log_loss < fit.initial_log_loss);
    for (what, got, want) in [
        ("weights", &fit.weights, &expected["fit.weights"].data),
        (
            "temperatures",
            &fit.temperatures,
            &expected["fit.temperatures"].data,
        ),
    ] {
        for (g, w) in got.iter().zip(want.iter()) {
            assert!(
                (g - f64::from(*w)).abs() <= 1e-3,
                "{what}: {got:?} vs {want:?}"
            );
        }
    }
}

#[test]
fn fitted_values_are_saved_and_loaded_with_the_ensemble() {
    let (probs, labels, _) = fit_data();
    let device = Device::default();
    let mut ens = Ensemble::from_spec(spec("shared"), Path::new("."), &device).unwrap();
    let fit = ens.fit(&probs, &labels, FitOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ensemble.json");
    ens.save(&path).unwrap();
    let again = Ensemble::load(&path, &device).unwrap();
    for (m, (w, t)) in again
        .members
        .iter()
        .zip(fit.weights.iter().zip(&fit.temperatures))
    {
        assert_eq!(m.weight, *w);
        assert_eq!(m.temperature, *t);
    }
    let record = again.spec().fit.expect("the fit is recorded");
    assert_eq!(record.samples, labels.len());
    assert_eq!(record.log_loss, fit.log_loss);
    // Only the ensemble file is left in the folder (no temporary files).
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("ensemble.json")]);
}

#[test]
fn bad_ensemble_files_are_refused_and_leave_the_stored_one_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ensemble.json");
    spec("shared").save(&path).unwrap();
    let before = std::fs::read(&path).unwrap();

    let mut bad = spec("shared");
    bad.members[1].temperature = 0.0;
    let err = bad.save(&path).expect_err("temperature 0 is invalid");
    assert!(err.to_string().contains("convnext"), "{err}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the stored file is unchanged"
    );

    let typo = dir.path().join("typo.json");
    std::fs::write(
        &typo,
        r#"{"members": [{"name": "a", "checkpoint": "x", "wieght": 1}]}"#,
    )
    .unwrap();
    let err = EnsembleSpec::load(&typo).expect_err("unknown field");
    assert!(
        err.to_string().contains("typo.json") && err.to_string().contains("wieght"),
        "{err}"
    );

    let missing = dir.path().join("missing.json");
    let mut s = spec("shared");
    s.members[0].checkpoint = dir.path().join("nope.safetensors");
    s.save(&missing).unwrap();
    let err = Ensemble::load(&missing, &Device::default()).expect_err("missing checkpoint");
    assert!(err.to_string().contains("nope.safetensors"), "{err}");
}
