//! Training for streetvision-rs.
//!
//! - [`metrics`]: accuracy, balanced accuracy, MCC, F1, ROC-AUC, Brier score, expected
//!   calibration error and the subnet's reward, with the validator's decision rule.
//! - [`optim`]: AdamW with layer-wise learning-rate decay and no-decay groups, global-norm
//!   clipping and the warmup-then-cosine schedule, as PyTorch computes them.
//!
//! Not built yet (issue 5): the probe with its feature cache, the fine-tuning loop with
//! resumable checkpoints, `eval`/`ab`/`export`, the `sv-trainer` binary and quickstart.

pub mod metrics;
pub mod optim;
