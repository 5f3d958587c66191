//! ConvNeXt-V2: configuration, model, CPU kernels and checkpoint loading.

mod config;
pub mod depthwise;
pub mod export;
pub mod family;
pub mod grn;
mod kernels;
mod load;
mod model;

pub use config::{ConvNextV2Config, DW_KERNEL, GRN_EPS, NORM_EPS};
pub use family::param_groups;
pub use kernels::{bias_gelu_grn, dwconv7_norm};
pub use load::{ConvNextLayout, ConvNextLoadOptions, detect_convnext_layout};
pub use model::{
    ConvNextBlock, ConvNextStage, ConvNextV2, ConvNextV2Classifier, ConvNextV2Output, Downsample,
};
