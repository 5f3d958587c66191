//! DINOv2 with registers: configuration, model and checkpoint loading.

mod config;
pub mod export;
pub mod family;
mod load;
mod model;

pub use crate::layers::{DropPath, Norm};
pub use config::Dinov2Config;
pub use family::param_groups;
pub use load::{Layout, LoadOptions, detect_layout};
pub use model::{
    Attention, Block, Dinov2, Dinov2Classifier, Dinov2Output, HeadInput, Mlp, PosResampleCache,
};
