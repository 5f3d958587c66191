//! DINOv2 with registers: configuration, model and checkpoint loading.

mod config;
pub mod export;
mod load;
mod model;

pub use crate::layers::{DropPath, Norm};
pub use config::Dinov2Config;
pub use load::{Layout, LoadOptions, detect_layout};
pub use model::{
    Attention, Block, Dinov2, Dinov2Classifier, Dinov2Output, HeadInput, Mlp, PosResampleCache,
};
