//! Image preprocessing as HF's `BitImageProcessor` does it for DINOv2: convert to RGB,
//! resize the shortest edge (PIL bicubic, 8-bit fixed point), centre crop, rescale by 1/255,
//! normalise with ImageNet mean and std, channels first.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use image::{DynamicImage, RgbImage};
use serde::Deserialize;

use crate::error::{ModelError, Result};

/// Default pixel limit for decoding (guards against decompression bombs): 64 megapixels.
pub const DEFAULT_MAX_PIXELS: u64 = sv_data::DEFAULT_MAX_PIXELS;

/// Preprocessing parameters (the fields of a `preprocessor_config.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessor {
    /// Target length of the shortest edge after resizing.
    pub shortest_edge: u32,
    /// Crop height and width.
    pub crop: (u32, u32),
    /// Per-channel mean subtracted after rescaling.
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by.
    pub std: [f32; 3],
    /// Factor applied to 8-bit values before normalising.
    pub rescale: f64,
    /// Resize straight to the crop size, ignoring the aspect ratio, instead of the
    /// shortest-edge resize and centre crop (ConvNeXt processors at 384 px and above).
    pub warp: bool,
}

impl Default for Preprocessor {
    /// The DINOv2 processor: shortest edge 256, centre crop 224, ImageNet statistics (also
    /// what `facebook/convnextv2-*-224` repositories specify).
    fn default() -> Self {
        Self {
            shortest_edge: 256,
            crop: (224, 224),
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            rescale: 1.0 / 255.0,
            warp: false,
        }
    }
}

#[derive(Deserialize)]
struct HfPreprocessor {
    size: Option<HfSize>,
    crop_size: Option<HfCrop>,
    image_mean: Option<[f32; 3]>,
    image_std: Option<[f32; 3]>,
    rescale_factor: Option<f64>,
    resample: Option<u32>,
    image_processor_type: Option<String>,
    crop_pct: Option<f64>,
}

#[derive(Deserialize)]
struct HfSize {
    shortest_edge: u32,
}

#[derive(Deserialize)]
struct HfCrop {
    height: u32,
    width: u32,
}

impl Preprocessor {
    /// Read an HF `preprocessor_config.json`: `BitImageProcessor` (DINOv2: shortest-edge
    /// resize, centre crop) or `ConvNextImageProcessor` (below 384 px: shortest edge to
    /// `size / crop_pct`, then a centre crop of `size`; from 384 px: a plain resize to
    /// `size × size`). Bicubic only.
    pub fn from_hf_json(text: &str) -> Result<Self> {
        let v: HfPreprocessor = serde_json::from_str(text)
            .map_err(|e| ModelError::Config(format!("preprocessor_config.json: {e}")))?;
        if let Some(r) = v.resample
            && r != 3
        {
            return Err(ModelError::Config(format!(
                "preprocessor_config.json: resample {r} is not supported (only 3, bicubic)"
            )));
        }
        let d = Self::default();
        let convnext = v.image_processor_type.as_deref() == Some("ConvNextImageProcessor")
            || v.crop_pct.is_some();
        if convnext {
            // The processor's own defaults: size 384, crop_pct 224/256, mean and std 0.5.
            let size = v.size.map_or(384, |s| s.shortest_edge);
            let crop_pct = v.crop_pct.unwrap_or(224.0 / 256.0);
            if !(crop_pct > 0.0 && crop_pct <= 1.0) {
                return Err(ModelError::Config(format!(
                    "preprocessor_config.json: crop_pct {crop_pct} is outside (0, 1]"
                )));
            }
            let warp = size >= 384;
            return Ok(Self {
                shortest_edge: if warp {
                    size
                } else {
                    (size as f64 / crop_pct) as u32
                },
                crop: (size, size),
                mean: v.image_mean.unwrap_or([0.5; 3]),
                std: v.image_std.unwrap_or([0.5; 3]),
                rescale: v.rescale_factor.unwrap_or(d.rescale),
                warp,
            });
        }
        Ok(Self {
            shortest_edge: v.size.map_or(d.shortest_edge, |s| s.shortest_edge),
            crop: v.crop_size.map_or(d.crop, |c| (c.height, c.width)),
            mean: v.image_mean.unwrap_or(d.mean),
            std: v.image_std.unwrap_or(d.std),
            rescale: v.rescale_factor.unwrap_or(d.rescale),
            warp: false,
        })
    }

    /// Size `(height, width)` after the shortest-edge resize, as the reference computes it.
    pub fn resized_size(&self, height: u32, width: u32) -> (u32, u32) {
        let (short, long) = (height.min(width), height.max(width));
        let s = self.shortest_edge;
        let new_long = (s as f64 * long as f64 / short as f64) as u32;
        if width <= height {
            (new_long, s)
        } else {
            (s, new_long)
        }
    }

    /// Channels-first normalised pixels `[3, crop_h, crop_w]` of one image.
    pub fn pixel_values(&self, image: &DynamicImage) -> Vec<f32> {
        self.crop_normalise(&self.resize(image))
    }

    /// The resize step alone (RGB, bicubic as PIL), before cropping and normalising.
    pub fn resize(&self, image: &DynamicImage) -> RgbImage {
        let rgb = image.to_rgb8();
        let (h, w) = if self.warp {
            self.crop
        } else {
            self.resized_size(rgb.height(), rgb.width())
        };
        resize_bicubic_pil(&rgb, w, h)
    }

    /// What the resize step depends on: processors with equal keys resize identically
    /// and can share [`resize`](Self::resize)'s output.
    pub fn resize_key(&self) -> (bool, u32, (u32, u32)) {
        if self.warp {
            (true, 0, self.crop)
        } else {
            (false, self.shortest_edge, (0, 0))
        }
    }

    /// Centre crop and normalise an image that went through [`resize`](Self::resize).
    pub fn crop_normalise(&self, resized: &RgbImage) -> Vec<f32> {
        let (h, w) = (resized.height(), resized.width());
        let (ch, cw) = self.crop;
        // Python's floor division, so a crop larger than the image pads with zeros.
        let top = (h as i64 - ch as i64).div_euclid(2);
        let left = (w as i64 - cw as i64).div_euclid(2);
        let plane = (ch * cw) as usize;
        let mut out = vec![0f32; 3 * plane];
        for c in 0..3 {
            let (mean, std) = (self.mean[c], self.std[c]);
            for y in 0..ch as i64 {
                for x in 0..cw as i64 {
                    let (sy, sx) = (y + top, x + left);
                    let v = if sy >= 0 && sx >= 0 && sy < h as i64 && sx < w as i64 {
                        resized.get_pixel(sx as u32, sy as u32)[c]
                    } else {
                        0
                    };
                    let scaled = (v as f64 * self.rescale) as f32;
                    out[c * plane + (y * cw as i64 + x) as usize] = (scaled - mean) / std;
                }
            }
        }
        out
    }

    /// A batch `[B, 3, crop_h, crop_w]` on `device` from already resized images.
    pub fn batch_resized(&self, resized: &[RgbImage], device: &Device) -> Tensor<4> {
        let (ch, cw) = self.crop;
        let mut data = Vec::with_capacity(resized.len() * 3 * (ch * cw) as usize);
        for img in resized {
            data.extend(self.crop_normalise(img));
        }
        Tensor::from_data(
            TensorData::new(data, [resized.len(), 3, ch as usize, cw as usize]),
            device,
        )
    }

    /// A batch `[B, 3, crop_h, crop_w]` on `device`.
    pub fn batch(&self, images: &[DynamicImage], device: &Device) -> Tensor<4> {
        let resized: Vec<RgbImage> = images.iter().map(|img| self.resize(img)).collect();
        self.batch_resized(&resized, device)
    }
}

/// Decode an image file, refusing images over `max_pixels` before allocating them.
pub fn open_image(path: &Path, max_pixels: u64) -> Result<DynamicImage> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::Image {
        path: path.into(),
        reason: e.to_string(),
    })?;
    decode_image(&bytes, max_pixels, path)
}

/// Decode an encoded image (JPEG, PNG, WebP) held in memory; `name` is used in errors.
/// Images over `max_pixels` are refused from their header, a JPEG whose entropy-coded
/// data is cut short is refused rather than decoded with grey filler, and the EXIF
/// orientation is applied (see [`sv_data::decode`]).
pub fn decode_image(bytes: &[u8], max_pixels: u64, name: &Path) -> Result<DynamicImage> {
    sv_data::decode_image(bytes, max_pixels).map_err(|skip| ModelError::Image {
        path: name.into(),
        reason: skip.to_string(),
    })
}

/// Resize an RGB image exactly as PIL's `Image.resize((w, h), Image.BICUBIC)` does for
/// 8-bit images (see [`sv_augment::resample`]).
pub fn resize_bicubic_pil(src: &RgbImage, out_w: u32, out_h: u32) -> RgbImage {
    sv_augment::resample::resize_pil(src, out_w, out_h, sv_augment::resample::Filter::Bicubic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resized_size_matches_reference_rule() {
        let p = Preprocessor::default();
        // chelsea.png is 451 wide, 300 high: int(256 * 451 / 300) = 384.
        assert_eq!(p.resized_size(300, 451), (256, 384));
        assert_eq!(p.resized_size(640, 427), (383, 256));
    }
}
