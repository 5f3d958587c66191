//! The curator's logic, on manifests (sv-data) and embedding indexes (sv-index):
//!
//! - [`ingest`]: sources → samples, exact copies removed by content hash.
//! - [`dedup`]: near-duplicate groups resolved by a stated rule; the train/test leak check.
//! - [`mine`]: a miner's failures and their nearest neighbours in a pool → hard cases.
//! - [`autolabel`]: labels where ensemble members agree confidently; the rest for review.
//!
//! The agreement rule of auto-labelling:
//!
//! ```
//! use sv_curate::autolabel::decide;
//! use sv_data::Label;
//!
//! assert_eq!(decide(&[0.95, 0.9], 0.8).unwrap().0, Label::Roadwork);
//! assert!(decide(&[0.95, 0.1], 0.8).is_err());
//! ```

#![warn(missing_docs)]

pub mod autolabel;
pub mod dedup;
pub mod error;
pub mod ingest;
pub mod mine;

pub use error::CurateError;
