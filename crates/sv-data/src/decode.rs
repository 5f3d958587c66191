//! Decoding images defensively: the format from the bytes (not the file name), a pixel
//! limit checked from the header before anything is allocated, truncated JPEGs refused
//! rather than decoded with grey filler, and the EXIF orientation applied (as
//! `PIL.ImageOps.exif_transpose`, which transformers' `load_image` uses). CMYK JPEGs,
//! 16-bit and greyscale images decode; callers convert to RGB.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
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
    pub(crate) fn new(reason: SkipReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// Decode an encoded image with its EXIF orientation applied.
pub fn decode_image(bytes: &[u8], max_pixels: u64) -> Result<DynamicImage, Skip> {
    let (format, decoder) = open_decoder(bytes, max_pixels)?;
    let mut decoder = decoder;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder)
        .map_err(|e| Skip::new(SkipReason::Corrupt, format!("{format:?}: {e}")))?;
    img.apply_orientation(orientation);
    Ok(img)
}

fn open_decoder(
    bytes: &[u8],
    max_pixels: u64,
) -> Result<(ImageFormat, impl ImageDecoder + '_), Skip> {
    if bytes.is_empty() {
        return Err(Skip::new(SkipReason::Empty, "zero bytes"));
    }
    let format = image::guess_format(bytes)
        .map_err(|e| Skip::new(SkipReason::UnknownFormat, e.to_string()))?;
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(Skip::new(
            SkipReason::Truncated,
            "JPEG data is truncated (no end-of-image marker after the last scan)",
        ));
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.no_limits();
    let decoder = reader.into_decoder().map_err(|e| classify(format, e))?;
    let (w, h) = decoder.dimensions();
    if w as u64 * h as u64 > max_pixels {
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

/// An image's content id and size (EXIF orientation applied), or why it cannot be used.
pub(crate) type Checked = Result<(String, (u32, u32)), Skip>;

/// Decode `bytes` to check them; on success, their content id and oriented size.
pub(crate) fn check_bytes(bytes: &[u8], max_pixels: u64) -> Checked {
    let img = decode_image(bytes, max_pixels)?;
    Ok((crate::content_id(bytes), (img.width(), img.height())))
}

/// Admits checked images into a run: the first image with a given id passes, later ones
/// and failures are counted in the report.
#[derive(Debug, Default)]
pub(crate) struct Intake {
    seen: std::collections::HashSet<String>,
    /// What was skipped so far.
    pub report: SkipReport,
}

impl Intake {
    /// The id and size of a new image, or `None` (recorded) for a skip or a duplicate.
    pub fn admit(&mut self, at: &Path, checked: Checked) -> Option<(String, (u32, u32))> {
        match checked {
            Ok((id, size)) if self.seen.insert(id.clone()) => Some((id, size)),
            Ok((id, _)) => {
                let why = format!("same bytes as an earlier image ({id})");
                self.report.add(at, &Skip::new(SkipReason::Duplicate, why));
                None
            }
            Err(skip) => {
                self.report.add(at, &skip);
                None
            }
        }
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
