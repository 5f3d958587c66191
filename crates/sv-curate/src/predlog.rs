//! Reading a miner's prediction log: `predictions.jsonl` and its rotated
//! `predictions-<ms>[-n].jsonl` files, one JSON object per answer, and the challenge
//! images stored beside it as `images/<aa>/<sha256>.<ext>`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::CurateError;

/// One answered challenge.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Answer {
    /// Unix seconds.
    pub time: f64,
    /// The validator's hotkey.
    pub validator: String,
    /// SHA-256 hex of the challenge image.
    pub image_sha256: String,
    /// The answer, P(roadwork).
    pub prediction: f32,
    /// Version of the model that answered.
    pub model_version: String,
    /// The validator's label, when it sent one (0 or 1).
    #[serde(default)]
    pub label: Option<i64>,
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
    let current = dir.join("predictions.jsonl");
    if current.exists() {
        files.push(current);
    }
    files
}

/// Every answer in the log directory `dir`, oldest first. A torn last line (a killed
/// miner) is skipped; any other malformed line is an error naming file and line.
pub fn read_log(dir: &Path) -> Result<Vec<Answer>, CurateError> {
    let files = log_files(dir);
    if files.is_empty() {
        return Err(CurateError::Input(format!(
            "{}: no predictions.jsonl or rotated predictions-*.jsonl",
            dir.display()
        )));
    }
    let mut out = vec![];
    for f in files {
        let text = std::fs::read_to_string(&f)
            .map_err(|e| CurateError::Input(format!("{}: {e}", f.display())))?;
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Answer>(line) {
                Ok(a) => out.push(a),
                Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
                Err(e) => {
                    return Err(CurateError::Input(format!(
                        "{}:{}: {e}",
                        f.display(),
                        i + 1
                    )));
                }
            }
        }
    }
    Ok(out)
}

/// The stored image of `sha256` under `dir/images`, if the miner kept it.
pub fn stored_image(dir: &Path, sha256: &str) -> Option<PathBuf> {
    let prefix = sha256.get(..2)?;
    ["jpg", "png"]
        .iter()
        .map(|ext| {
            dir.join("images")
                .join(prefix)
                .join(format!("{sha256}.{ext}"))
        })
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
}
