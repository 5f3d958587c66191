//! Image I/O as Python's PIL does it, shared by the models, the augmentations and the
//! datasets: decoding ([`decode`]), resizing ([`resample`]) and the content id
//! ([`content_id`]).
//!
//! Decoding is `Image.open(…).convert("RGB")`, pixel for pixel, optionally with
//! `ImageOps.exif_transpose`.
//!
//! - JPEG goes through libjpeg-turbo (the decoder PIL's wheels link), with PIL's
//!   settings: accurate integer IDCT, fancy upsampling, Adobe-inverted CMYK converted
//!   to RGB by PIL's formula, greyscale replicated.
//! - PNG and WebP go through the `image` crate and are converted as PIL converts them.
//! - Every image is hostile until checked: the format comes from the bytes, the pixel
//!   count is checked from the header before anything is allocated, a JPEG without an
//!   end-of-image marker after its last scan is refused as PIL refuses it, and a refusal
//!   says why ([`Skip`]).
//!
//! The decoder is checked against PIL on a generated corpus (baseline and progressive,
//! every subsampling, qualities 30–100, odd sizes, restart markers, greyscale, CMYK and
//! YCCK, ICC profiles, EXIF orientations, truncated files): see `tests/decode_pil.rs` at
//! the workspace root.
//!
//! Decoding an image's bytes and naming them:
//!
//! ```
//! let mut png = Vec::new();
//! image::RgbImage::from_pixel(3, 2, image::Rgb([200, 10, 10]))
//!     .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
//!     .unwrap();
//! let img = sv_image::decode_image(&png, sv_image::DEFAULT_MAX_PIXELS).unwrap();
//! assert_eq!((img.width(), img.height()), (3, 2));
//! assert_eq!(sv_image::content_id(&png).len(), 64);
//! ```

#![warn(missing_docs)]

mod cmyk;
pub mod decode;
mod jpeg;
pub mod resample;

use sha2::{Digest, Sha256};

/// The id of an image: SHA-256 of its encoded bytes, lower-case hex. Datasets key their
/// samples by it and the miner logs the challenges it answered by it.
pub fn content_id(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub use decode::{
    DEFAULT_MAX_PIXELS, DecodeOptions, Skip, SkipReason, SkipReport, decode_image,
    decode_image_with, decode_rgb, dimensions,
};
