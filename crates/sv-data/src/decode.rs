//! Checking images as they enter a dataset: decoded by [`sv_image`] (pixel-identical to
//! PIL), hashed, and admitted once; skips counted by reason.

use std::path::Path;

pub use sv_image::decode::{
    DEFAULT_MAX_PIXELS, DecodeOptions, Skip, SkipReason, SkipReport, decode_image,
    decode_image_with, decode_rgb,
};

/// An image's content id and size (EXIF orientation applied), or why it cannot be used.
pub(crate) type Checked = Result<(String, (u32, u32)), Skip>;

/// Decode `bytes` to check them; on success, their content id and oriented size.
pub(crate) fn check_bytes(bytes: &[u8], max_pixels: u64) -> Checked {
    // A scan cut short decodes (as PIL does) to grey filler: not a training image.
    let img = sv_image::decode_image_with(
        bytes,
        &sv_image::DecodeOptions {
            max_pixels,
            refuse_cut_scans: true,
            ..Default::default()
        },
    )?;
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
