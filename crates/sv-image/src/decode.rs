//! Decoding images defensively and as PIL does: the format from the bytes (not the file
//! name), a pixel limit checked from the header before anything is allocated, JPEGs
//! decoded by libjpeg-turbo with PIL's settings and refused where PIL refuses them (cut
//! short before the end-of-image marker), and the EXIF orientation applied when asked
//! (as `PIL.ImageOps.exif_transpose`, which transformers' `load_image` uses).

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};
use serde::Serialize;

/// Default pixel limit: 64 Mpx (a 4032×3024 phone photo is 12 Mpx).
pub const DEFAULT_MAX_PIXELS: u64 = 64 * 1024 * 1024;

/// Why an image was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The file could not be read.
    Unreadable,
    /// Zero bytes.
    Empty,
    /// Not a JPEG, PNG or WebP.
    UnknownFormat,
    /// Cut short.
    Truncated,
    /// More pixels than the limit (decompression-bomb guard).
    TooLarge,
    /// The decoder failed.
    Corrupt,
    /// The same image (same bytes) was already taken.
    Duplicate,
    /// The row breaks a rule of its dataset (e.g. a NATIX label without description).
    Inconsistent,
    /// A symbolic link not followed (or, when following, one that leads back into a
    /// folder already walked).
    Link,
}

impl SkipReason {
    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Unreadable => "unreadable",
            SkipReason::Empty => "empty",
            SkipReason::UnknownFormat => "unknown_format",
            SkipReason::Truncated => "truncated",
            SkipReason::TooLarge => "too_large",
            SkipReason::Corrupt => "corrupt",
            SkipReason::Duplicate => "duplicate",
            SkipReason::Inconsistent => "inconsistent",
            SkipReason::Link => "link",
        }
    }
}

/// An image that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", reason.as_str())]
pub struct Skip {
    /// The category.
    pub reason: SkipReason,
    /// The decoder's or reader's words.
    pub detail: String,
}

impl Skip {
    /// A skip for `reason` with the decoder's or reader's words.
    pub fn new(reason: SkipReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// How to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Images with more pixels are refused from their header (decompression bombs).
    pub max_pixels: u64,
    /// Apply the EXIF orientation as `PIL.ImageOps.exif_transpose` does (transformers'
    /// `load_image` does; a bare `Image.open` does not).
    pub exif_transpose: bool,
    /// Refuse a JPEG whose scan data ends early even when an end-of-image marker follows
    /// (PIL decodes it and fills the rest with grey; a training set should not take it).
    pub refuse_cut_scans: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            max_pixels: DEFAULT_MAX_PIXELS,
            exif_transpose: true,
            refuse_cut_scans: false,
        }
    }
}

/// Decode an encoded image with its EXIF orientation applied (as transformers'
/// `load_image`: `exif_transpose(Image.open(…))`).
pub fn decode_image(bytes: &[u8], max_pixels: u64) -> Result<DynamicImage, Skip> {
    decode_image_with(
        bytes,
        &DecodeOptions {
            max_pixels,
            ..DecodeOptions::default()
        },
    )
}

/// Decode an encoded image as PIL's `Image.open` does, then `exif_transpose` when asked.
/// JPEGs come back as greyscale or RGB (CMYK converted by PIL's formula), other formats
/// in their own colour model; [`decode_rgb`] converts as PIL's `convert("RGB")`.
pub fn decode_image_with(bytes: &[u8], opts: &DecodeOptions) -> Result<DynamicImage, Skip> {
    if bytes.is_empty() {
        return Err(Skip::new(SkipReason::Empty, "zero bytes"));
    }
    let format = image::guess_format(bytes)
        .map_err(|e| Skip::new(SkipReason::UnknownFormat, e.to_string()))?;
    if format == ImageFormat::Jpeg {
        return decode_jpeg(bytes, opts);
    }
    let (format, decoder) = open_decoder(bytes, format, opts.max_pixels)?;
    let mut decoder = decoder;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder)
        .map_err(|e| Skip::new(SkipReason::Corrupt, format!("{format:?}: {e}")))?;
    if opts.exif_transpose {
        img.apply_orientation(orientation);
    }
    Ok(img)
}

/// Decode to 8-bit RGB, as `Image.open(…).convert("RGB")` (after `exif_transpose` when
/// asked).
pub fn decode_rgb(bytes: &[u8], opts: &DecodeOptions) -> Result<RgbImage, Skip> {
    Ok(match decode_image_with(bytes, opts)? {
        DynamicImage::ImageRgb8(img) => img,
        other => other.to_rgb8(),
    })
}

/// Width and height of an image from its header (before any EXIF orientation).
pub fn dimensions(bytes: &[u8]) -> Result<(u32, u32), Skip> {
    let format = image::guess_format(bytes)
        .map_err(|e| Skip::new(SkipReason::UnknownFormat, e.to_string()))?;
    if format == ImageFormat::Jpeg {
        let (w, h, _) = crate::jpeg::header(bytes)?;
        return Ok((w, h));
    }
    let (_, decoder) = open_decoder(bytes, format, u64::MAX)?;
    Ok(decoder.dimensions())
}

fn decode_jpeg(bytes: &[u8], opts: &DecodeOptions) -> Result<DynamicImage, Skip> {
    if !jpeg_is_complete(bytes) {
        return Err(Skip::new(
            SkipReason::Truncated,
            "JPEG data is truncated (no end-of-image marker after the last scan)",
        ));
    }
    let decoded = crate::jpeg::decode(bytes, opts.max_pixels, opts.refuse_cut_scans)?;
    let markers = crate::jpeg::markers(bytes);
    let (w, h) = (decoded.width, decoded.height);
    let corrupt = || {
        Skip::new(
            SkipReason::Corrupt,
            "JPEG: decoded buffer of the wrong size",
        )
    };
    let mut img = match decoded.model {
        crate::jpeg::Model::Grey => DynamicImage::ImageLuma8(
            image::GrayImage::from_raw(w, h, decoded.pixels).ok_or_else(corrupt)?,
        ),
        crate::jpeg::Model::Rgb => {
            DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, decoded.pixels).ok_or_else(corrupt)?)
        }
        crate::jpeg::Model::Cmyk => {
            let rgb = crate::cmyk::to_rgb(&decoded.pixels);
            DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, rgb).ok_or_else(corrupt)?)
        }
    };
    if opts.exif_transpose
        && let Some(o) = markers
            .exif
            .and_then(image::metadata::Orientation::from_exif_chunk)
    {
        img.apply_orientation(o);
    }
    Ok(img)
}

fn open_decoder(
    bytes: &[u8],
    format: ImageFormat,
    max_pixels: u64,
) -> Result<(ImageFormat, impl ImageDecoder + '_), Skip> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.no_limits();
    let decoder = reader.into_decoder().map_err(|e| classify(format, e))?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(Skip::new(
            SkipReason::TooLarge,
            format!("{w}×{h} exceeds the pixel limit of {max_pixels}"),
        ));
    }
    Ok((format, decoder))
}

fn classify(format: ImageFormat, e: image::ImageError) -> Skip {
    let text = e.to_string();
    let truncated = matches!(&e, image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof)
        || text.to_ascii_lowercase().contains("eof")
        || text.to_ascii_lowercase().contains("end of");
    let reason = if truncated {
        SkipReason::Truncated
    } else {
        SkipReason::Corrupt
    };
    Skip::new(reason, format!("{format:?}: {text}"))
}

/// Whether a JPEG has an end-of-image marker after its last start-of-scan marker. Inside
/// entropy-coded data every 0xFF byte is followed by 0x00 or a restart marker, so neither
/// marker can appear by accident.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last = |marker: u8| bytes.windows(2).rposition(|w| w == [0xFF, marker]);
    match (last(0xDA), last(0xD9)) {
        (Some(sos), Some(eoi)) => eoi > sos,
        _ => false,
    }
}

/// Skipped images of a run, counted by reason, with the first few examples of each.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SkipReport {
    /// Count per reason.
    pub counts: BTreeMap<SkipReason, usize>,
    /// Up to [`SkipReport::EXAMPLES`] (where, why) per reason.
    pub examples: BTreeMap<SkipReason, Vec<(PathBuf, String)>>,
}

impl SkipReport {
    /// Examples kept per reason.
    pub const EXAMPLES: usize = 5;

    /// Record one skipped image.
    pub fn add(&mut self, at: &Path, skip: &Skip) {
        *self.counts.entry(skip.reason).or_default() += 1;
        let ex = self.examples.entry(skip.reason).or_default();
        if ex.len() < Self::EXAMPLES {
            ex.push((at.to_path_buf(), skip.detail.clone()));
        }
    }

    /// Add another report's counts and examples.
    pub fn merge(&mut self, other: SkipReport) {
        for (reason, n) in other.counts {
            *self.counts.entry(reason).or_default() += n;
        }
        for (reason, list) in other.examples {
            let ex = self.examples.entry(reason).or_default();
            ex.extend(
                list.into_iter()
                    .take(Self::EXAMPLES.saturating_sub(ex.len())),
            );
        }
    }

    /// Total skipped.
    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }

    /// One line: `N skipped`, with the count of each reason when any.
    pub fn summary(&self) -> String {
        let why: Vec<String> = self
            .counts
            .iter()
            .map(|(reason, n)| format!("{n} {}", reason.as_str()))
            .collect();
        if why.is_empty() {
            format!("{} skipped", self.total())
        } else {
            format!("{} skipped ({})", self.total(), why.join(", "))
        }
    }
}

impl std::fmt::Display for SkipReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.counts.is_empty() {
            return f.write_str("no images skipped");
        }
        write!(f, "{} images skipped:", self.total())?;
        for (reason, n) in &self.counts {
            write!(f, "\n  {}: {n}", reason.as_str())?;
            for (at, why) in self.examples.get(reason).into_iter().flatten() {
                write!(f, "\n    {}: {why}", at.display())?;
            }
        }
        Ok(())
    }
}
