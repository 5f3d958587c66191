//! Contrastive learning with hard negatives, as an auxiliary loss beside cross-entropy.
//!
//! - [`FeatureBank`]: a bounded queue of recent embeddings with labels and sample ids.
//! - [`synthetic_negatives`]: for each anchor, the bank's most similar features of the
//!   other class, mixed with the anchor (`a·b + (1 − a)·z`, `a` in [0.5, 0.9]) and
//!   normalised: negatives harder than any the batch holds.
//! - [`supcon_loss`]: the supervised-contrastive (InfoNCE) loss over the batch and those
//!   negatives at a temperature (0.07 by default).
//!
//! The supervised contrastive loss of a small batch (two classes, two samples each):
//!
//! ```
//! use burn::tensor::{Device, Tensor, TensorData};
//!
//! let features = Tensor::<2>::from_data(
//!     TensorData::new(vec![1.0f32, 0.0, 0.9, 0.1, 0.0, 1.0, 0.1, 0.9], [4, 2]),
//!     &Device::default(),
//! );
//! let loss = sv_contrastive::supcon_loss(features, &[1, 1, 0, 0], None, 0.1).unwrap();
//! let value = loss.into_data().to_vec::<f32>().unwrap()[0];
//! assert!(value.is_finite() && value > 0.0);
//! ```

#![warn(missing_docs)]

pub mod bank;
pub mod loss;

pub use bank::{BankEntry, FeatureBank, synthetic_negatives};
pub use loss::{ContrastiveSettings, supcon_loss};

/// Why a contrastive step could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ContrastiveError {
    /// Shapes or counts that do not fit together (names them).
    #[error("{0}")]
    Shape(String),
}
