//! The journal of a cycle and the production record, both rewritten atomically: a step
//! counts as done only once its outputs are written and its entry is in the journal,
//! so a rerun after a crash or SIGKILL starts at the first step without an entry.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{LoopError, Result};
use crate::step::Step;

/// One finished step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// The step.
    pub step: Step,
    /// When it finished (Unix seconds).
    pub finished: u64,
    /// What it did, in one line.
    pub note: String,
}

/// How a cycle ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// The candidate was published (and registered, when configured) and is production.
    Published {
        /// `owner/name`.
        repo: String,
        /// The Hub commit.
        commit: String,
    },
    /// The gate kept production.
    Kept {
        /// The gate's reason.
        reason: String,
    },
}

/// A cycle's journal (`journal.json` in its folder).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Journal {
    /// The cycle's number, from 1.
    pub cycle: u32,
    /// When it started (Unix seconds).
    pub started: u64,
    /// The run directory it continues from (production when it started).
    pub production: PathBuf,
    /// Production's age in days when it started, if known.
    pub production_age_days: Option<f64>,
    /// Finished steps, in order.
    pub steps: Vec<Entry>,
    /// Set when the cycle is over.
    pub outcome: Option<Outcome>,
}

impl Journal {
    /// The journal file of the cycle in `dir`.
    pub fn file(dir: &Path) -> PathBuf {
        dir.join("journal.json")
    }

    /// Read the journal in `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        read_json(&Self::file(dir))
    }

    /// Write it to `dir`, atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        write_json(&Self::file(dir), self)
    }

    /// Whether `step` is done.
    pub fn done(&self, step: Step) -> bool {
        self.steps.iter().any(|e| e.step == step)
    }

    /// The entry of `step`, if done.
    pub fn entry(&self, step: Step) -> Option<&Entry> {
        self.steps.iter().find(|e| e.step == step)
    }
}

/// The model in production, as the loop last recorded it (`production.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Production {
    /// Its run directory (what the next cycle continues from).
    pub run: PathBuf,
    /// Its export (the transformers layout with model_card.json), when the loop made it.
    pub export: Option<PathBuf>,
    /// The Hub repository and commit it was published as.
    pub repo: Option<String>,
    /// The commit.
    pub commit: Option<String>,
    /// The card's submission time (Unix seconds), when known.
    pub submission_time: Option<u64>,
    /// The cycle that made it.
    pub cycle: Option<u32>,
}

impl Production {
    /// Its age in days at `now`, when known.
    pub fn age_days(&self, now: u64) -> Option<f64> {
        self.submission_time
            .map(|t| now.saturating_sub(t) as f64 / 86_400.0)
    }
}

/// Read JSON from `path`, naming the file on failure.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| LoopError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| LoopError::Record {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Write `value` as pretty JSON to `path` through the one atomic write.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| LoopError::Record {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    sv_fs::atomic_write(path, &bytes).map_err(|e| LoopError::io(path, e))
}
