//! Sources into samples: labelled folders, NATIX parquet shards and synthetic generator
//! outputs through sv-data's readers (the NATIX reader applies the dataset's
//! `scene_description` rule), a generator's prompt sidecar, and a miner's prediction
//! log. [`merge`] keeps the first copy of each image (by content hash) and counts the
//! rest per source.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Serialize;
use serde_json::Value;
use sv_data::{Label, Location, Sample, Source};

use crate::error::CurateError;
use sv_records::predlog::{Entry, read_log_counted, stored_image};

/// Per source: samples read and kept, and exact copies dropped.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SourceCount {
    /// Samples the source gave.
    pub read: usize,
    /// Kept after removing exact copies.
    pub kept: usize,
    /// Exact copies of an image kept earlier (same source or another).
    pub duplicates: usize,
}

/// What [`merge`] did, by source name.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IngestReport {
    /// Counts per source.
    pub sources: BTreeMap<String, SourceCount>,
}

/// Concatenate `batches` (in order), keeping the first sample of each content id.
pub fn merge(batches: Vec<Vec<Sample>>) -> (Vec<Sample>, IngestReport) {
    let mut seen = HashSet::new();
    let mut report = IngestReport::default();
    let mut out = vec![];
    for sample in batches.into_iter().flatten() {
        let row = report
            .sources
            .entry(sample.source.name().to_string())
            .or_default();
        row.read += 1;
        if seen.insert(sample.id.clone()) {
            row.kept += 1;
            out.push(sample);
        } else {
            row.duplicates += 1;
        }
    }
    (out, report)
}

/// Attach a generator's prompt metadata to its samples: `sidecar` is JSON Lines, one
/// object per generated image with its `file` name (relative to the folder or bare) and
/// any other fields (`prompt`, `seed`, `model`, …), which go into the sample's metadata.
/// A `label` field (0/1) labels a sample the folder left unknown.
pub fn attach_prompts(samples: &mut [Sample], sidecar: &Path) -> Result<usize, CurateError> {
    let text = std::fs::read_to_string(sidecar)
        .map_err(|e| CurateError::Input(format!("{}: {e}", sidecar.display())))?;
    let mut by_file: BTreeMap<String, serde_json::Map<String, Value>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut obj: serde_json::Map<String, Value> = serde_json::from_str(line)
            .map_err(|e| CurateError::Input(format!("{}:{}: {e}", sidecar.display(), i + 1)))?;
        let Some(Value::String(file)) = obj.remove("file") else {
            return Err(CurateError::Input(format!(
                "{}:{}: no \"file\" field",
                sidecar.display(),
                i + 1
            )));
        };
        let name = Path::new(&file)
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or(file);
        by_file.insert(name, obj);
    }
    let mut matched = 0;
    for s in samples.iter_mut() {
        let Location::File { path } = &s.location else {
            continue;
        };
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().to_string()) else {
            continue;
        };
        if let Some(meta) = by_file.get(&name) {
            matched += 1;
            for (k, v) in meta {
                if k == "label" {
                    if s.label == Label::Unknown
                        && let Some(l) = v.as_i64().and_then(Label::from_binary)
                    {
                        s.label = l;
                    }
                } else {
                    s.metadata.insert(k.clone(), v.clone());
                }
            }
        }
    }
    Ok(matched)
}

/// What reading a prediction log found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LogCount {
    /// Answers in the log.
    pub answers: usize,
    /// Torn lines skipped (a write cut short by a full disk or a killed miner).
    pub torn: usize,
    /// Distinct images answered.
    pub images: usize,
    /// Of which the miner stored (the rest cannot be trained on).
    pub stored: usize,
    /// Of the stored, those a validator labelled.
    pub labelled: usize,
}

impl std::fmt::Display for LogCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} answers on {} images, {} stored, {} labelled",
            self.answers, self.images, self.stored, self.labelled
        )?;
        if self.torn > 0 {
            write!(f, "; {} torn lines skipped", self.torn)?;
        }
        Ok(())
    }
}

/// The challenges of a miner's log directory as samples (source `miner_log`): one per
/// stored image, labelled when a validator sent a label or, failing that, when
/// `labels` (challenge labels by image id, [`sv_records::labels`]) has one, with the
/// latest answer's prediction, validator, model version and time in the metadata.
pub fn from_prediction_log(
    dir: &Path,
    labels: &std::collections::HashMap<String, i64>,
) -> Result<(Vec<Sample>, LogCount), CurateError> {
    let log = read_log_counted(dir)?;
    let mut answers = log.entries;
    sv_records::labels::apply_labels(&mut answers, labels);
    let mut latest: BTreeMap<String, &Entry> = BTreeMap::new();
    for a in &answers {
        latest.insert(a.image_sha256.clone(), a);
    }
    let mut count = LogCount {
        answers: answers.len(),
        torn: log.torn,
        images: latest.len(),
        ..LogCount::default()
    };
    let mut out = vec![];
    for (sha, a) in latest {
        let Some(path) = stored_image(dir, &sha) else {
            continue;
        };
        count.stored += 1;
        let label = a
            .label
            .and_then(Label::from_binary)
            .unwrap_or(Label::Unknown);
        if label != Label::Unknown {
            count.labelled += 1;
        }
        let mut metadata = BTreeMap::new();
        metadata.insert("prediction".into(), Value::from(a.prediction as f64));
        metadata.insert("validator".into(), Value::from(a.validator.clone()));
        metadata.insert("model_version".into(), Value::from(a.model_version.clone()));
        metadata.insert("answered_at".into(), Value::from(a.time));
        out.push(Sample {
            id: sha,
            location: Location::File { path },
            label,
            source: Source::MinerLog,
            split: None,
            size: None,
            metadata,
        });
    }
    Ok((out, count))
}
