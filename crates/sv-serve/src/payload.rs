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

/// Decode a base64 challenge: standard alphabet with padding (as Python's `b64encode`),
/// JPEG or PNG by content, within `limits`. The error says what was wrong.
pub fn decode(b64: &str, limits: &Limits) -> Result<Challenge, String> {
    if b64.is_empty() {
        return Err("image is empty".into());
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("image is not base64: {e}"))?;
    let kind = if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "JPEG"
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "PNG"
    } else {
        return Err(format!(
            "image is not a JPEG or PNG (starts with {})",
            hex_prefix(&bytes)
        ));
    };
    let (width, height) = sv_image::dimensions(&bytes).map_err(|e| format!("{kind} image: {e}"))?;
    if width == 0 || height == 0 {
        return Err(format!("{kind} image has no pixels"));
    }
    let (short, long) = (width.min(height), width.max(height));
    if u64::from(long) > u64::from(short) * u64::from(limits.max_aspect_ratio) {
        return Err(format!(
            "{kind} image of {width}×{height} is over the {}:1 aspect-ratio limit",
            limits.max_aspect_ratio
        ));
    }
    let image = sv_image::decode_image(&bytes, limits.max_pixels)
        .map_err(|e| format!("{kind} image: {e}"))?;
    if image.width() == 0 || image.height() == 0 {
        return Err(format!("{kind} image has no pixels"));
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
