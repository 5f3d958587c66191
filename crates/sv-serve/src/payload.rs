//! Challenge images as validators send them: base64 of a JPEG (PNG accepted too). Anything
//! else, or an image over the pixel or aspect-ratio limit, is refused from its header,
//! before any pixel is decoded or resized.

use base64::Engine;
use image::DynamicImage;

/// A decoded challenge image.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// The decoded pixels.
    pub image: DynamicImage,
    /// The encoded bytes, as sent.
    pub bytes: Vec<u8>,
    /// SHA-256 hex of the encoded bytes.
    pub sha256: String,
}

/// Limits on a challenge image.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest width × height accepted.
    pub max_pixels: u64,
    /// Largest ratio of the long side to the short side: a 1×16M image is within a
    /// pixel limit but its shortest-edge resize is not.
    pub max_aspect_ratio: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_pixels: 4096 * 4096,
            max_aspect_ratio: 32,
        }
    }
}

/// Why a challenge image was refused (the text of the 400 answer).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PayloadError {
    /// The field is empty.
    #[error("image is empty")]
    Empty,
    /// The field is not standard padded base64.
    #[error("image is not base64: {0}")]
    NotBase64(#[from] base64::DecodeError),
    /// The bytes are neither a JPEG nor a PNG.
    #[error("image is not a JPEG or PNG (starts with {prefix})")]
    NotAnImage {
        /// The first bytes in hex.
        prefix: String,
    },
    /// The header or the pixels could not be read, or are over the pixel limit.
    #[error("{kind} image: {source}")]
    Unreadable {
        /// `JPEG` or `PNG`.
        kind: &'static str,
        /// The decoder's reason.
        source: sv_image::Skip,
    },
    /// A width or height of zero.
    #[error("{kind} image has no pixels")]
    NoPixels {
        /// `JPEG` or `PNG`.
        kind: &'static str,
    },
    /// The long side is more than the limit times the short side.
    #[error("{kind} image of {width}×{height} is over the {limit}:1 aspect-ratio limit")]
    AspectRatio {
        /// `JPEG` or `PNG`.
        kind: &'static str,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// The largest ratio accepted.
        limit: u32,
    },
}

/// Decode a base64 challenge: standard alphabet with padding (as Python's `b64encode`),
/// JPEG or PNG by content, within `limits`. The error says what was wrong.
pub fn decode(b64: &str, limits: &Limits) -> Result<Challenge, PayloadError> {
    if b64.is_empty() {
        return Err(PayloadError::Empty);
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64.trim())?;
    let kind = if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "JPEG"
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "PNG"
    } else {
        return Err(PayloadError::NotAnImage {
            prefix: hex_prefix(&bytes),
        });
    };
    let unreadable = |source| PayloadError::Unreadable { kind, source };
    let (width, height) = sv_image::dimensions(&bytes).map_err(unreadable)?;
    if width == 0 || height == 0 {
        return Err(PayloadError::NoPixels { kind });
    }
    let (short, long) = (width.min(height), width.max(height));
    if u64::from(long) > u64::from(short) * u64::from(limits.max_aspect_ratio) {
        return Err(PayloadError::AspectRatio {
            kind,
            width,
            height,
            limit: limits.max_aspect_ratio,
        });
    }
    let image = sv_image::decode_image(&bytes, limits.max_pixels).map_err(unreadable)?;
    if image.width() == 0 || image.height() == 0 {
        return Err(PayloadError::NoPixels { kind });
    }
    let sha256 = sv_image::content_id(&bytes);
    Ok(Challenge {
        image,
        bytes,
        sha256,
    })
}

fn hex_prefix(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "nothing".into();
    }
    format!("0x{}", hex(&bytes[..bytes.len().min(8)]))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Base64 (standard, padded) of `bytes`, as validators encode challenges.
pub fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
