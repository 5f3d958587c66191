//! Helpers the sv-curator process tests share: running the binary and writing a
//! prediction log with the miner's own log writer.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use sv_data::Sample;

/// Run sv-curator with `args`: success, stdout, stderr.
pub fn curator(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sv-curator"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Run sv-curator with `args`, failing the test when it fails; its stdout.
pub fn ok(args: &[&str]) -> String {
    let (success, out, err) = curator(args);
    assert!(success, "sv-curator {args:?} failed:\n{out}\n{err}");
    out
}

/// A path as a `&str` argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The image file of a file-backed sample.
pub fn file_of(sample: &Sample) -> PathBuf {
    match &sample.location {
        sv_data::Location::File { path } => path.clone(),
        other => panic!("{other:?}"),
    }
}

/// The miner's own log writer records `answers` (image path, prediction, label).
pub fn write_log(dir: &Path, answers: &[(PathBuf, f32, Option<i64>)]) {
    let metrics = Arc::new(sv_serve::metrics::Metrics::default());
    let log = sv_serve::predlog::PredictionLog::open(
        sv_serve::predlog::LogSettings {
            dir: dir.to_path_buf(),
            max_bytes: 1 << 20,
            keep: 3,
            store_images: true,
        },
        metrics,
    )
    .unwrap();
    for (i, (path, prediction, label)) in answers.iter().enumerate() {
        let bytes = std::fs::read(path).unwrap();
        log.record(
            sv_serve::predlog::Entry {
                time: 1_764_000_000.0 + i as f64,
                validator: "5Validator".into(),
                synapse: "ImageSynapse".into(),
                image_sha256: sv_data::content_id(&bytes),
                prediction: *prediction,
                latency_ms: 12.0,
                model_version: "v1".into(),
                label: *label,
            },
            Some(bytes),
        );
    }
    drop(log);
}
