//! Image preprocessing as HF's `BitImageProcessor` does it for DINOv2: convert to RGB,
//! resize the shortest edge (PIL bicubic, 8-bit fixed point), centre crop, rescale by 1/255,
//! normalise with ImageNet mean and std, channels first.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use image::{DynamicImage, RgbImage};
use serde::Deserialize;

use crate::error::{ModelError, Result};
pub use sv_image::resample::Filter;

/// Default pixel limit for decoding (guards against decompression bombs): 64 megapixels.
pub const DEFAULT_MAX_PIXELS: u64 = sv_image::DEFAULT_MAX_PIXELS;

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
    /// shortest-edge resize and centre crop (ConvNeXt processors at 384 px and above;
    /// `BitImageProcessor` with a `{height, width}` size).
    pub warp: bool,
    /// The resampling filter, as PIL computes it (`resample` 2 bilinear, 3 bicubic).
    pub filter: Filter,
    /// Whether images are resized at all (`do_resize`).
    pub do_resize: bool,
    /// Whether images are centre cropped to [`crop`](Self::crop) (`do_center_crop`);
    /// without it the (resized) image goes in whole.
    pub do_center_crop: bool,
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
            filter: Filter::Bicubic,
            do_resize: true,
            do_center_crop: true,
        }
    }
}

#[derive(Deserialize)]
struct HfPreprocessor {
    size: Option<HfSize>,
    crop_size: Option<HfCrop>,
    image_mean: Option<Stat>,
    image_std: Option<Stat>,
    rescale_factor: Option<f64>,
    resample: Option<u32>,
    image_processor_type: Option<String>,
    crop_pct: Option<f64>,
    do_resize: Option<bool>,
    do_center_crop: Option<bool>,
    do_rescale: Option<bool>,
    do_normalize: Option<bool>,
}

/// A mean or std: one value per channel, or one for all.
#[derive(Deserialize)]
#[serde(untagged)]
enum Stat {
    PerChannel([f32; 3]),
    One(f32),
}

impl Stat {
    fn channels(self) -> [f32; 3] {
        match self {
            Stat::PerChannel(v) => v,
            Stat::One(v) => [v; 3],
        }
    }
}

/// `size`: `{"shortest_edge": n}`, `{"height": h, "width": w}` or a bare number.
#[derive(Deserialize)]
#[serde(untagged)]
enum HfSize {
    Shortest { shortest_edge: u32 },
    Exact { height: u32, width: u32 },
    Square(u32),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum HfCrop {
    Exact { height: u32, width: u32 },
    Square(u32),
}

impl HfCrop {
    fn dims(&self) -> (u32, u32) {
        match *self {
            HfCrop::Exact { height, width } => (height, width),
            HfCrop::Square(s) => (s, s),
        }
    }
}

fn config_error(what: String) -> ModelError {
    ModelError::Config(format!("preprocessor_config.json: {what}"))
}

impl Preprocessor {
    /// The preprocessing of the checkpoint at `checkpoint`: its
    /// `preprocessor_config.json` (or `<stem>.preprocessor_config.json`) beside it, else
    /// the BiT defaults.
    pub fn beside(checkpoint: &std::path::Path) -> Result<Self> {
        match crate::find_sidecar(checkpoint, "preprocessor_config.json") {
            Some(path) => Self::from_hf_json(&crate::read_text(&path)?),
            None => Ok(Self::default()),
        }
    }

    /// Read an HF `preprocessor_config.json` as transformers' slow processors apply it:
    /// `BitImageProcessor` (DINOv2: shortest-edge resize, centre crop; bicubic unless
    /// `resample` says) or `ConvNextImageProcessor` (below 384 px: shortest edge to
    /// `size / crop_pct`, then a centre crop of `size`; from 384 px: a plain resize to
    /// `size × size`; bilinear unless `resample` says). `do_resize`, `do_center_crop`,
    /// `do_rescale` and `do_normalize` are honoured; `resample` 2 (bilinear) and 3
    /// (bicubic) are supported, other filters are refused by name.
    pub fn from_hf_json(text: &str) -> Result<Self> {
        let v: HfPreprocessor =
            serde_json::from_str(text).map_err(|e| config_error(e.to_string()))?;
        let d = Self::default();
        let convnext = v.image_processor_type.as_deref() == Some("ConvNextImageProcessor")
            || v.crop_pct.is_some();
        let filter = match v.resample {
            None if convnext => Filter::Bilinear,
            None => Filter::Bicubic,
            Some(2) => Filter::Bilinear,
            Some(3) => Filter::Bicubic,
            Some(r) => {
                let name = match r {
                    0 => "nearest",
                    1 => "lanczos",
                    4 => "box",
                    5 => "hamming",
                    _ => "unknown",
                };
                return Err(config_error(format!(
                    "resample {r} ({name}) is not supported (2 bilinear and 3 bicubic are)"
                )));
            }
        };
        let rescale = match v.do_rescale {
            Some(false) => 1.0,
            _ => v.rescale_factor.unwrap_or(d.rescale),
        };
        let normalize = v.do_normalize != Some(false);
        let stats = |default_mean: [f32; 3], default_std: [f32; 3]| -> Result<_> {
            if !normalize {
                return Ok(([0.0; 3], [1.0; 3]));
            }
            let mean = v.image_mean.map_or(default_mean, Stat::channels);
            let std = v.image_std.map_or(default_std, Stat::channels);
            if std.iter().any(|s| !(s.is_finite() && *s != 0.0))
                || mean.iter().any(|m| !m.is_finite())
            {
                return Err(config_error(format!(
                    "image_std {std:?} / image_mean {mean:?}"
                )));
            }
            Ok((mean, std))
        };
        let do_resize = v.do_resize != Some(false);
        if convnext {
            // The processor's own defaults: size 384, crop_pct 224/256, mean and std 0.5.
            let size = match v.size {
                None => 384,
                Some(HfSize::Shortest { shortest_edge }) => shortest_edge,
                Some(_) => {
                    return Err(config_error(
                        "ConvNextImageProcessor needs size {\"shortest_edge\": n}".into(),
                    ));
                }
            };
            let crop_pct = v.crop_pct.unwrap_or(224.0 / 256.0);
            if !(crop_pct > 0.0 && crop_pct <= 1.0) {
                return Err(config_error(format!(
                    "crop_pct {crop_pct} is outside (0, 1]"
                )));
            }
            let warp = size >= 384;
            let (mean, std) = stats([0.5; 3], [0.5; 3])?;
            let shortest_edge = if warp {
                size
            } else {
                (f64::from(size) / crop_pct) as u32
            };
            check_sizes(shortest_edge, (size, size))?;
            return Ok(Self {
                shortest_edge,
                crop: (size, size),
                mean,
                std,
                rescale,
                warp,
                filter,
                do_resize,
                // The ConvNeXt processor crops only inside its resize step.
                do_center_crop: do_resize && !warp,
            });
        }
        let (mean, std) = stats(d.mean, d.std)?;
        let (shortest_edge, warp, warp_dims) = match v.size {
            None => (d.shortest_edge, false, None),
            Some(HfSize::Shortest { shortest_edge }) => (shortest_edge, false, None),
            Some(HfSize::Exact { height, width }) => (0, true, Some((height, width))),
            Some(HfSize::Square(s)) => (s, false, None),
        };
        let crop = v.crop_size.map_or(d.crop, |c| c.dims());
        let do_center_crop = v.do_center_crop != Some(false);
        let pre = Self {
            shortest_edge,
            crop: match warp_dims {
                Some(dims) if !do_center_crop => dims,
                _ => crop,
            },
            mean,
            std,
            rescale,
            warp,
            filter,
            do_resize,
            do_center_crop,
        };
        if let Some(dims) = warp_dims
            && do_center_crop
            && dims != crop
        {
            // A `{height, width}` resize then a different centre crop.
            return Err(config_error(format!(
                "size {dims:?} with a different crop_size {crop:?} is not supported"
            )));
        }
        check_sizes(pre.shortest_edge.max(1), pre.crop)?;
        Ok(pre)
    }

    /// A `preprocessor_config.json` (transformers' `BitImageProcessor`) that
    /// [`from_hf_json`](Self::from_hf_json) reads back into a processor that prepares
    /// every image the same way.
    pub fn to_hf_json(&self) -> serde_json::Value {
        let size = if self.warp {
            serde_json::json!({"height": self.crop.0, "width": self.crop.1})
        } else {
            serde_json::json!({"shortest_edge": self.shortest_edge})
        };
        serde_json::json!({
            "image_processor_type": "BitImageProcessor",
            "do_resize": self.do_resize,
            "size": size,
            "resample": match self.filter {
                Filter::Bilinear => 2,
                Filter::Bicubic => 3,
            },
            "do_center_crop": self.do_center_crop && !self.warp,
            "crop_size": {"height": self.crop.0, "width": self.crop.1},
            "do_rescale": true,
            "rescale_factor": self.rescale,
            "do_normalize": true,
            "image_mean": self.mean,
            "image_std": self.std,
        })
    }

    /// Size `(height, width)` after the shortest-edge resize, as the reference computes it,
    /// with the long side bounded by [`MAX_RESIZED_EDGE`] (an extreme aspect ratio would
    /// otherwise ask for billions of pixels).
    pub fn resized_size(&self, height: u32, width: u32) -> (u32, u32) {
        let (short, long) = (height.min(width).max(1), height.max(width));
        let s = self.shortest_edge;
        let new_long = ((s as f64 * long as f64 / short as f64) as u32).min(MAX_RESIZED_EDGE);
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

    /// The resize step alone (RGB, as PIL resizes), before cropping and normalising.
    pub fn resize(&self, image: &DynamicImage) -> RgbImage {
        let rgb = match image {
            DynamicImage::ImageRgb8(img) => std::borrow::Cow::Borrowed(img),
            other => std::borrow::Cow::Owned(other.to_rgb8()),
        };
        if !self.do_resize {
            return rgb.into_owned();
        }
        let (h, w) = if self.warp {
            self.crop
        } else {
            self.resized_size(rgb.height(), rgb.width())
        };
        if (w, h) == rgb.dimensions() {
            // PIL copies an image resized to its own size.
            return rgb.into_owned();
        }
        sv_image::resample::resize_pil(&rgb, w.max(1), h.max(1), self.filter)
    }

    /// What the resize step depends on: processors with equal keys resize identically
    /// and can share [`resize`](Self::resize)'s output.
    pub fn resize_key(&self) -> (bool, bool, u32, (u32, u32), Filter) {
        match (self.do_resize, self.warp) {
            (false, _) => (false, false, 0, (0, 0), Filter::Bicubic),
            (true, true) => (true, true, 0, self.crop, self.filter),
            (true, false) => (true, false, self.shortest_edge, (0, 0), self.filter),
        }
    }

    /// The size `(height, width)` the network sees for an image that went through
    /// [`resize`](Self::resize) with `resized` dimensions `(height, width)`.
    pub fn output_size(&self, resized: (u32, u32)) -> (u32, u32) {
        if self.do_center_crop || self.warp && self.do_resize {
            self.crop
        } else {
            resized
        }
    }

    /// The image the network sees before normalisation: resized, then centre cropped
    /// (zero-padded where the crop is larger) as [`crop_normalise`](Self::crop_normalise)
    /// crops.
    pub fn resize_crop(&self, image: &DynamicImage) -> RgbImage {
        let resized = self.resize(image);
        let (h, w) = (resized.height(), resized.width());
        let (ch, cw) = self.output_size((h, w));
        let top = (h as i64 - ch as i64).div_euclid(2);
        let left = (w as i64 - cw as i64).div_euclid(2);
        RgbImage::from_fn(cw, ch, |x, y| {
            let (sy, sx) = (y as i64 + top, x as i64 + left);
            if sy >= 0 && sx >= 0 && sy < h as i64 && sx < w as i64 {
                *resized.get_pixel(sx as u32, sy as u32)
            } else {
                image::Rgb([0, 0, 0])
            }
        })
    }

    /// Centre crop and normalise an image that went through [`resize`](Self::resize).
    pub fn crop_normalise(&self, resized: &RgbImage) -> Vec<f32> {
        let (h, w) = (resized.height(), resized.width());
        self.crop_normalise_to(resized, self.output_size((h, w)))
    }

    /// Centre crop (zero-padded where larger) to `(ch, cw)` and normalise.
    fn crop_normalise_to(&self, resized: &RgbImage, (ch, cw): (u32, u32)) -> Vec<f32> {
        let (h, w) = (resized.height(), resized.width());
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
    /// Without a centre crop, every image of the batch is cropped or zero-padded to the
    /// first one's size.
    pub fn batch_resized(&self, resized: &[RgbImage], device: &Device) -> Tensor<4> {
        let (ch, cw) = resized.first().map_or(self.crop, |img| {
            self.output_size((img.height(), img.width()))
        });
        let mut data = Vec::with_capacity(resized.len() * 3 * (ch * cw) as usize);
        for img in resized {
            data.extend(self.crop_normalise_to(img, (ch, cw)));
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

/// The longest side a resize produces.
pub const MAX_RESIZED_EDGE: u32 = 1 << 16;

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
/// orientation is applied (see [`sv_image::decode`]).
pub fn decode_image(bytes: &[u8], max_pixels: u64, name: &Path) -> Result<DynamicImage> {
    sv_image::decode_image(bytes, max_pixels).map_err(|skip| ModelError::Image {
        path: name.into(),
        reason: skip.to_string(),
    })
}

/// Sizes a processor may ask for: positive and bounded, so a hostile config cannot ask
/// for gigapixel buffers.
fn check_sizes(shortest_edge: u32, (h, w): (u32, u32)) -> Result<()> {
    const LIMIT: u32 = 8192;
    if shortest_edge == 0 || h == 0 || w == 0 || shortest_edge > LIMIT || h > LIMIT || w > LIMIT {
        return Err(config_error(format!(
            "sizes must be within 1..={LIMIT} (shortest edge {shortest_edge}, crop {h}×{w})"
        )));
    }
    Ok(())
}

/// Resize an RGB image exactly as PIL's `Image.resize((w, h), Image.BICUBIC)` does for
/// 8-bit images (see [`sv_image::resample`]).
pub fn resize_bicubic_pil(src: &RgbImage, out_w: u32, out_h: u32) -> RgbImage {
    sv_image::resample::resize_pil(src, out_w, out_h, sv_image::resample::Filter::Bicubic)
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

    #[test]
    fn a_written_processor_reads_back_preparing_images_the_same() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
        let image = open_image(&fixtures.join("images/chelsea.png"), u64::MAX).unwrap();
        let mut processors = vec![Preprocessor::default()];
        for name in ["convnext224", "convnext384"] {
            let text = std::fs::read_to_string(
                fixtures.join(format!("preprocess/{name}.preprocessor_config.json")),
            )
            .unwrap();
            processors.push(Preprocessor::from_hf_json(&text).unwrap());
        }
        processors.push(
            Preprocessor::from_hf_json(r#"{"size": {"height": 200, "width": 120}, "do_center_crop": false, "resample": 2}"#)
                .unwrap(),
        );
        for p in processors {
            let back = Preprocessor::from_hf_json(&p.to_hf_json().to_string()).unwrap();
            assert_eq!(back.pixel_values(&image), p.pixel_values(&image), "{p:?}");
            let resized = p.resize(&image);
            let (h, w) = p.output_size((resized.height(), resized.width()));
            assert_eq!(back.resize_crop(&image).dimensions(), (w, h));
        }
    }
}
