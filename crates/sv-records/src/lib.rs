//! Records the miner and the trainer share, with no dependency on either: the miner
//! writes its answers and scores challenges with them, the trainer and the curator read
//! and score the same records.
//!
//! - [`predlog`]: the prediction log's line schema ([`predlog::Entry`]), its files
//!   (`predictions.jsonl` and the rotated `predictions-<ms>[-n].jsonl`), the stored
//!   challenge images, and a reader that skips and counts torn lines.
//! - [`card`]: the subnet's `model_card.json` ([`card::ModelCard`]), and the version and
//!   submission time a miner reads from any card ([`card::CardStamp`]).
//! - [`labels`]: the labels of the challenges `sv-miner challenge` sent, keyed by the
//!   id the miner logs, and their join with a log.
//! - [`metrics`]: binary classification scores at the validator's decision rule
//!   (`p > 0.5` is roadwork), the subnet's reward, and nearest-rank quantiles.
//!
//! ```
//! use sv_records::metrics::Report;
//!
//! let report = Report::of(&[(0.9, true), (0.2, false), (0.7, false)]);
//! assert_eq!(report.confusion.fp, 1);
//! assert!((report.accuracy - 2.0 / 3.0).abs() < 1e-12);
//! ```

#![warn(missing_docs)]

pub mod card;
pub mod labels;
pub mod metrics;
pub mod predlog;

/// Why a record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A complete JSON line that is not a record of this kind.
    #[error("{}:{line}: {source}", path.display())]
    Line {
        /// The file.
        path: std::path::PathBuf,
        /// The line, from 1.
        line: usize,
        /// The cause.
        source: serde_json::Error,
    },
    /// A complete line that holds a value out of range.
    #[error("{}:{line}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: std::path::PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A model card the subnet would refuse.
    #[error("model card: {reason}")]
    Card {
        /// The field at fault and why.
        reason: String,
    },
    /// A log directory without any log file.
    #[error("{}: no predictions.jsonl or rotated predictions-*.jsonl", .0.display())]
    NoLog(std::path::PathBuf),
}
