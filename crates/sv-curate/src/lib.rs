//! The curator's logic, on manifests (sv-data) and embedding indexes (sv-index):
//!
//! - [`ingest`]: sources → samples, exact copies removed by content hash.
//! - [`dedup`]: near-duplicate groups resolved by a stated rule; the train/test leak check.
//! - [`mine`]: a miner's failures and their nearest neighbours in a pool → hard cases.
//! - [`autolabel`]: labels where ensemble members agree confidently; the rest for review.

pub mod autolabel;
pub mod dedup;
pub mod error;
pub mod ingest;
pub mod mine;

pub use error::CurateError;
