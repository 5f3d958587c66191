//! Challenge labels: what `sv-miner challenge` knows about each image it sent, keyed by
//! the id the miner logs for it (the SHA-256 of the bytes sent, [`crate::predlog::Entry::image_sha256`]),
//! so that the curator can join them to the miner's log and find its wrong answers.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::RecordsError;
use crate::predlog::Entry;

/// One challenge's label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChallengeLabel {
    /// SHA-256 hex of the challenge bytes sent: the id the miner logs.
    pub image_sha256: String,
    /// 1 roadwork, 0 not.
    pub label: i64,
    /// The id of the image the challenge was made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    /// The validator augmentation level used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<u8>,
}

/// Write `labels` as JSON Lines to `path`, atomically.
pub fn write_labels(path: &Path, labels: &[ChallengeLabel]) -> Result<(), RecordsError> {
    let mut text = String::new();
    for l in labels {
        text.push_str(&serde_json::to_string(l).expect("serialisable"));
        text.push('\n');
    }
    sv_fs::atomic_write(path, text.as_bytes()).map_err(|source| RecordsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The labels of the files at `paths`, by image id. A line that is not a label, or a
/// label other than 0 or 1, is an error naming the file and line; an id labelled twice
/// keeps its last label.
pub fn read_labels(paths: &[impl AsRef<Path>]) -> Result<HashMap<String, i64>, RecordsError> {
    let mut out = HashMap::new();
    for path in paths {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| RecordsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let l: ChallengeLabel =
                serde_json::from_str(line).map_err(|source| RecordsError::Line {
                    path: path.to_path_buf(),
                    line: i + 1,
                    source,
                })?;
            if !(l.label == 0 || l.label == 1) {
                return Err(RecordsError::Invalid {
                    path: path.to_path_buf(),
                    line: i + 1,
                    reason: format!("label {} is neither 0 nor 1", l.label),
                });
            }
            out.insert(l.image_sha256, l.label);
        }
    }
    Ok(out)
}

/// Give each log entry without a label the label of its image in `labels`, if any;
/// returns how many entries got one. A label the validator sent is kept.
pub fn apply_labels(entries: &mut [Entry], labels: &HashMap<String, i64>) -> usize {
    let mut applied = 0;
    for e in entries.iter_mut().filter(|e| e.label.is_none()) {
        if let Some(&l) = labels.get(&e.image_sha256) {
            e.label = Some(l);
            applied += 1;
        }
    }
    applied
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sha: &str, label: Option<i64>) -> Entry {
        Entry {
            time: 0.0,
            validator: "v".into(),
            synapse: "ImageSynapse".into(),
            image_sha256: sha.into(),
            prediction: 0.9,
            latency_ms: 1.0,
            model_version: "m".into(),
            label,
        }
    }

    #[test]
    fn labels_round_trip_and_fill_only_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.jsonl");
        let written = vec![
            ChallengeLabel {
                image_sha256: "a".into(),
                label: 0,
                source_id: Some("src".into()),
                level: Some(2),
            },
            ChallengeLabel {
                image_sha256: "b".into(),
                label: 1,
                source_id: None,
                level: None,
            },
        ];
        write_labels(&path, &written).unwrap();
        let labels = read_labels(&[&path]).unwrap();
        assert_eq!(labels, HashMap::from([("a".into(), 0), ("b".into(), 1)]));
        let mut entries = vec![entry("a", None), entry("b", Some(0)), entry("c", None)];
        assert_eq!(apply_labels(&mut entries, &labels), 1);
        let got: Vec<Option<i64>> = entries.iter().map(|e| e.label).collect();
        assert_eq!(got, vec![Some(0), Some(0), None]);
    }

    #[test]
    fn a_bad_label_names_its_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.jsonl");
        std::fs::write(
            &path,
            "{\"image_sha256\": \"a\", \"label\": 1}\n{\"image_sha256\": \"b\", \"label\": 7}\n",
        )
        .unwrap();
        let err = read_labels(&[&path]).unwrap_err().to_string();
        assert!(err.contains("labels.jsonl:2") && err.contains("7"), "{err}");
    }
}
