//! Training for streetvision-rs.
//!
//! - [`metrics`]: accuracy, balanced accuracy, MCC, F1, ROC-AUC, Brier score, expected
//!   calibration error and the subnet's reward, with the validator's decision rule.
//! - [`optim`]: AdamW with layer-wise learning-rate decay and no-decay groups, global-norm
//!   clipping and the warmup-then-cosine schedule, as PyTorch computes them.
//! - [`checkpoint`]: parameters and optimizer moments by module path, written atomically.
//! - [`ema`]: the moving average of the parameters, kept on their device.
//! - [`evaluate`]: metrics per source, batch-1 latency, ensemble fitting.
//! - [`gate`]: the deploy decision on the subnet's reward, clean and validator-style,
//!   with a paired bootstrap, relaxed as production ages.
//! - [`export`]: the transformers layout (`ConvNextV2ForImageClassification`,
//!   `Dinov2WithRegistersForImageClassification`), its configs and the subnet's card.
//! - [`finetune`]: the resumable fine-tuning run, its config and run directory; the
//!   loop itself is `train_loop`'s named steps.
//! - [`hard_negatives`]: the auxiliary contrastive term with synthetic hard negatives.
//! - [`loss_scale`]: dynamic loss scaling for f16 training (`precision = "f16"`).
//! - [`plot`]: PNG charts of a run (loss, validation metrics, ROC, confusion matrix).
//! - [`probe`]: the linear probe on a frozen backbone, with its on-disk feature cache.
//! - [`quickstart`]: synthetic data and a tiny model that train on a CPU in minutes.
//!
//! Layering a run's settings, flags over the defaults:
//!
//! ```
//! use sv_train::finetune::{FinetuneConfig, RunDir};
//! use sv_train::overrides::FinetuneOverrides;
//!
//! let run = RunDir { root: "runs/new".into() };
//! let flags = FinetuneOverrides { epochs: Some(3), ..Default::default() };
//! let config = FinetuneConfig::layered(&run, false, None, &flags).unwrap();
//! assert_eq!(config.epochs, 3);
//! ```

#![warn(missing_docs)]

pub mod checkpoint;
pub mod ema;
pub mod embed;
pub mod error;
pub mod evaluate;
pub mod export;
pub mod finetune;
pub mod gate;
pub mod hard_negatives;
pub mod loss_scale;
/// Scores of a set of predictions, shared with the miner ([`sv_records::metrics`]).
pub use sv_records::metrics;
pub mod optim;
pub mod overrides;
pub mod plot;
pub mod probe;
pub mod publish;
pub mod quickstart;
pub mod stop;
mod train_loop;

pub use error::{Result, TrainError};
