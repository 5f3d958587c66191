//! The prediction log a miner keeps: one JSON object per answer ([`Entry`]) in
//! `predictions.jsonl`, rotated by size into `predictions-<unix ms>[-n].jsonl`, and the
//! challenge images stored beside it as `images/<aa>/<sha256>.<ext>`. The miner writes
//! it (`sv_serve::predlog`); the curator reads it ([`read_log`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::RecordsError;

/// The current log file's name.
pub const CURRENT: &str = "predictions.jsonl";

/// One answer: a line of the prediction log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Unix seconds when the answer was sent.
    pub time: f64,
    /// The validator's hotkey.
    pub validator: String,
    /// The synapse route.
    #[serde(default)]
    pub synapse: String,
    /// SHA-256 hex of the challenge image's bytes.
    pub image_sha256: String,
    /// The answer, P(roadwork).
    pub prediction: f32,
    /// Milliseconds from request to answer.
    #[serde(default)]
    pub latency_ms: f64,
    /// Version of the model that answered.
    pub model_version: String,
    /// The validator's `testnet_label`, when it sent one (≥ 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<i64>,
}

/// Where a stored image goes.
pub fn image_path(dir: &Path, sha256: &str, bytes: &[u8]) -> PathBuf {
    let ext = if bytes.starts_with(b"\x89PNG") {
        "png"
    } else {
        "jpg"
    };
    image_file(dir, sha256.get(..2).unwrap_or("xx"), sha256, ext)
}

/// `dir/images/<prefix>/<sha256>.<ext>`.
fn image_file(dir: &Path, prefix: &str, sha256: &str, ext: &str) -> PathBuf {
    dir.join("images")
        .join(prefix)
        .join(format!("{sha256}.{ext}"))
}

/// The rotated log files of `dir` (`predictions-<ms>[-n].jsonl`), oldest first.
pub fn rotated_files(dir: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<(u128, u32, PathBuf)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| {
                let p = e.ok()?.path();
                let name = p.file_name()?.to_str()?;
                let stem = name.strip_prefix("predictions-")?.strip_suffix(".jsonl")?;
                let (ms, n) = match stem.split_once('-') {
                    Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
                    None => (stem.parse().ok()?, 0),
                };
                Some((ms, n, p))
            })
            .collect()
        })
        .unwrap_or_default();
    rotated.sort();
    rotated.into_iter().map(|(_, _, p)| p).collect()
}

/// The log files of `dir`, oldest first (rotated files, then the current one).
pub fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = rotated_files(dir);
    let current = dir.join(CURRENT);
    if current.exists() {
        files.push(current);
    }
    files
}

/// The entries of a log directory and the torn lines skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Log {
    /// Every answer, oldest first.
    pub entries: Vec<Entry>,
    /// Lines that are not complete JSON (a write cut short by a full disk or a killed
    /// miner), skipped.
    pub torn: usize,
}

/// Every answer in the log directory `dir`, oldest first. A line that is not complete
/// JSON (torn by a full disk or a killed miner) is skipped and counted; a complete JSON
/// line that is not an answer is an error naming file and line.
pub fn read_log(dir: &Path) -> Result<Vec<Entry>, RecordsError> {
    read_log_counted(dir).map(|log| log.entries)
}

/// [`read_log`], with the count of torn lines skipped.
pub fn read_log_counted(dir: &Path) -> Result<Log, RecordsError> {
    let files = log_files(dir);
    if files.is_empty() {
        return Err(RecordsError::NoLog(dir.to_path_buf()));
    }
    let mut log = Log::default();
    for f in files {
        let bytes = std::fs::read(&f).map_err(|source| RecordsError::Io {
            path: f.clone(),
            source,
        })?;
        // A torn write can end inside a multi-byte character.
        let text = String::from_utf8_lossy(&bytes);
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Entry>(line) {
                Ok(a) => log.entries.push(a),
                Err(e) if e.is_syntax() || e.is_eof() => log.torn += 1,
                Err(source) => {
                    return Err(RecordsError::Line {
                        path: f.clone(),
                        line: i + 1,
                        source,
                    });
                }
            }
        }
    }
    Ok(log)
}

/// The stored image of `sha256` under `dir/images`, if the miner kept it.
pub fn stored_image(dir: &Path, sha256: &str) -> Option<PathBuf> {
    let prefix = sha256.get(..2)?;
    ["jpg", "png"]
        .iter()
        .map(|ext| image_file(dir, prefix, sha256, ext))
        .find(|p| p.exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_files_come_first_and_a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let line = |sha: &str| {
            format!(
                "{{\"time\":1.0,\"validator\":\"v\",\"synapse\":\"ImageSynapse\",\"image_sha256\":\"{sha}\",\"prediction\":0.5,\"latency_ms\":1.0,\"model_version\":\"m\"}}\n"
            )
        };
        std::fs::write(dir.path().join("predictions-200.jsonl"), line("b")).unwrap();
        std::fs::write(dir.path().join("predictions-100.jsonl"), line("a")).unwrap();
        std::fs::write(
            dir.path().join("predictions.jsonl"),
            format!("{}{{\"time\":", line("c")),
        )
        .unwrap();
        let got: Vec<String> = read_log(dir.path())
            .unwrap()
            .into_iter()
            .map(|a| a.image_sha256)
            .collect();
        assert_eq!(got, ["a", "b", "c"]);
    }

    #[test]
    fn torn_lines_anywhere_are_skipped_and_counted_and_foreign_lines_refused() {
        let dir = tempfile::tempdir().unwrap();
        let line = |sha: &str| {
            format!(
                "{{\"time\":1.0,\"validator\":\"v\",\"synapse\":\"ImageSynapse\",\"image_sha256\":\"{sha}\",\"prediction\":0.5,\"latency_ms\":1.0,\"model_version\":\"m\"}}\n"
            )
        };
        // A write cut short in the middle of the file, the next line glued to it.
        let torn = &line("x")[..40];
        let text = format!("{}{torn}{}\u{e9}{{\"ti", line("a"), line("b"));
        let mut bytes = text.into_bytes();
        bytes.pop(); // ends inside nothing valid
        bytes.push(0xC3); // half a UTF-8 character
        std::fs::write(dir.path().join("predictions.jsonl"), bytes).unwrap();
        let log = read_log_counted(dir.path()).unwrap();
        let got: Vec<&str> = log
            .entries
            .iter()
            .map(|a| a.image_sha256.as_str())
            .collect();
        assert_eq!(got, ["a"]);
        assert_eq!(log.torn, 2);
        std::fs::write(dir.path().join("predictions.jsonl"), "{\"other\": 1}\n").unwrap();
        let err = read_log(dir.path()).unwrap_err().to_string();
        assert!(err.contains("predictions.jsonl:1"), "{err}");
    }
}
