//! The StreetVision miner's serving logic, behind `sv-miner serve` and `sv-miner challenge`:
//!
//! - [`payload`]: the challenge image checks (base64, JPEG/PNG only, pixel limit) that
//!   refuse bad input before it reaches a model;
//! - [`model`]: loading a model or ensemble from an export directory, a checkpoint or a
//!   Hugging Face repository, with its version and age; [`slot`] swaps it atomically;
//!   [`age`] warns, daily, when it is past 45, 60, 75 and 90 days; [`hub_follow`]
//!   follows a Hugging Face branch and swaps in a new commit that loads and answers;
//! - [`batcher`]: micro-batching concurrent requests (max batch, max wait) in stake order,
//!   answering a request whose deadline cannot be met with an error rather than late;
//! - [`predlog`]: the JSON Lines prediction log with size-based rotation and optional
//!   storage of challenge images by hash, written off the answer path;
//! - [`metrics`]: Prometheus counters and histograms, served with `/healthz`;
//! - [`config`]: the miner's TOML config with the subnet's `miner.env` names;
//! - [`miner`]: all of it wired to an axon ([`sv_axon`]);
//! - [`challenge`]: validator-style challenges sent through our dendrite, scored with the
//!   subnet's reward.
//!
//! Checking a challenge image as the miner does before any inference:
//!
//! ```
//! use sv_serve::payload::{Limits, decode, encode};
//!
//! let mut png = Vec::new();
//! image::RgbImage::from_pixel(4, 4, image::Rgb([0, 0, 0]))
//!     .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
//!     .unwrap();
//! let challenge = decode(&encode(&png), &Limits::default()).unwrap();
//! assert_eq!(challenge.sha256, sv_image::content_id(&png));
//! assert!(decode("not base64!", &Limits::default()).is_err());
//! ```

#![warn(missing_docs)]

pub mod age;
pub mod batcher;
pub mod chain_link;
pub mod challenge;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod history;
pub mod hub_follow;
pub mod metrics;
pub mod miner;
pub mod model;
pub mod payload;
pub mod predlog;
pub mod process_metrics;
pub mod slot;

pub use config::MinerConfig;
pub use error::ServeError;
pub use miner::Miner;
