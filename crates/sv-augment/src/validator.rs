//! What the subnet's validators do to an image before they send it as a challenge
//! (natixnetwork/streetvision-subnet, `natix/utils/image_transforms.py`,
//! `apply_augmentation_by_level`, and `prepare_image_synapse`):
//!
//! - level 0: centre square crop, resize to 224 × 224;
//! - level 1: rotation by U(−20°, 20°) with nearest neighbour and black corners (the
//!   validator's `RandomRotation` calls `rotate` without its interpolation), then a square
//!   random resized crop (scale 0.2–1) to 224 × 224, antialiased bilinear on floats and
//!   truncated to 8 bits (the flips it configures never fire);
//! - level 2: level 1, then the DeeperForensics colour saturation, colour contrast and
//!   down-up resize, each at a level drawn from {0, 1} (0 = skip);
//! - level 3: level 1, then saturation, contrast, down-up, colour noise and Gaussian blur,
//!   each at a level drawn from {0, 1, 2};
//!
//! then JPEG at quality 75 with 4:2:0 chroma (PIL's default `save`).
//!
//! The distortions work as the reference does: OpenCV's float YCrCb with the studio-range
//! scaling, 8-bit truncation between steps, OpenCV's fixed-point bilinear resize and
//! Gaussian blur.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::blur::cv_gaussian_blur;
use crate::ops::{center_crop, jpeg_recompress, random_resized_crop_window};
use crate::resample::{Filter, resize_f32, resize_pil};
use crate::rng::AugRng;

/// The parameter of each DeeperForensics distortion at levels 1 and 2 (the validators
/// never go higher).
const SATURATION: [f32; 2] = [0.4, 0.3];
const CONTRAST: [f32; 2] = [0.85, 0.725];
const DOWN_UP: [u32; 2] = [2, 3];
const NOISE_VARIANCE: [f64; 2] = [0.001, 0.002];
const BLUR_KERNEL: [usize; 2] = [7, 9];

/// The validator's challenge settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorSettings {
    /// Output side (224).
    #[serde(default = "default_size")]
    pub size: u32,
    /// Final JPEG quality (75); 0 leaves the image unencoded.
    #[serde(default = "default_quality")]
    pub quality: u8,
    /// Probability of each level 0–3 (0.25 each).
    #[serde(default = "default_levels")]
    pub levels: [f64; 4],
}

fn default_size() -> u32 {
    224
}
fn default_quality() -> u8 {
    75
}
fn default_levels() -> [f64; 4] {
    [0.25; 4]
}

impl Default for ValidatorSettings {
    fn default() -> Self {
        Self {
            size: default_size(),
            quality: default_quality(),
            levels: default_levels(),
        }
    }
}

impl ValidatorSettings {
    /// The challenge a validator would make from an image's encoded `bytes`: the level
    /// drawn and the JPEG sent (quality 75 when the settings give no quality), or why
    /// the image cannot be used.
    pub fn challenge(&self, bytes: &[u8], rng: &mut AugRng) -> Result<(u8, Vec<u8>), String> {
        let img = sv_image::decode_image(bytes, sv_image::DEFAULT_MAX_PIXELS)
            .map_err(|e| e.to_string())?
            .to_rgb8();
        let level = self.draw_level(rng);
        let plain = ValidatorSettings {
            quality: 0,
            ..self.clone()
        };
        let out = plain.apply_level(&img, level, rng);
        let quality = if self.quality == 0 { 75 } else { self.quality };
        let jpeg = crate::ops::jpeg_encode(&out, quality).ok_or("image too large for JPEG")?;
        Ok((level, jpeg))
    }

    /// Draw a level by its probability.
    pub fn draw_level(&self, rng: &mut AugRng) -> u8 {
        let u = rng.unit() * self.levels.iter().sum::<f64>();
        let mut acc = 0.0;
        for (i, p) in self.levels.iter().enumerate() {
            acc += p;
            if u < acc {
                return i as u8;
            }
        }
        3
    }

    /// The challenge at a random level.
    pub fn apply(&self, img: &RgbImage, rng: &mut AugRng) -> RgbImage {
        let level = self.draw_level(rng);
        self.apply_level(img, level, rng)
    }

    /// The challenge at `level` (0–3; higher means 3).
    pub fn apply_level(&self, img: &RgbImage, level: u8, rng: &mut AugRng) -> RgbImage {
        let size = self.size;
        let out = if level == 0 {
            let side = img.width().min(img.height());
            resize_pil(&center_crop(img, side, side), size, size, Filter::Bilinear)
        } else {
            let angle = rng.uniform(-20.0, 20.0);
            let rotated = rotate_nearest(img, angle);
            let (l, t, w, h) =
                random_resized_crop_window(img.width(), img.height(), (0.2, 1.0), (1.0, 1.0), rng);
            let mut out = resized_crop_truncated(&rotated, (l, t, w, h), size);
            if level >= 2 {
                out = distort(out, level, rng);
            }
            out
        };
        if self.quality == 0 {
            out
        } else {
            jpeg_recompress(&out, self.quality)
        }
    }
}

/// The DeeperForensics distortions of `level` 2 (saturation, contrast, down-up, each at
/// level 0–1) or 3 (those and colour noise and blur, each at level 0–2), in the
/// validator's order; level 0 of a distortion skips it.
fn distort(mut out: RgbImage, level: u8, rng: &mut AugRng) -> RgbImage {
    let max_level = if level == 2 { 1 } else { 2 };
    let draw = |rng: &mut AugRng| rng.int(0, max_level) as usize;
    let cs = draw(rng);
    if cs > 0 {
        out = color_saturation(&out, SATURATION[cs - 1]);
    }
    let cc = draw(rng);
    if cc > 0 {
        out = color_contrast(&out, CONTRAST[cc - 1]);
    }
    let jpeg = draw(rng);
    if jpeg > 0 {
        out = down_up(&out, DOWN_UP[jpeg - 1]);
    }
    if level >= 3 {
        let gnc = draw(rng);
        if gnc > 0 {
            out = color_noise(&out, NOISE_VARIANCE[gnc - 1], rng);
        }
        let gb = draw(rng);
        if gb > 0 {
            let k = BLUR_KERNEL[gb - 1];
            out = cv_gaussian_blur(&out, k, k as f64 / 6.0);
        }
    }
    out
}

/// Rotate by `angle` degrees counter-clockwise about the centre, keeping the size, with
/// nearest-neighbour sampling and black outside: torchvision's `rotate` on a tensor
/// (`affine_grid` + `grid_sample`, `align_corners=False`), computed in `f32` as it is.
pub fn rotate_nearest(img: &RgbImage, angle: f64) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let r = (-angle).to_radians();
    let (cos, sin) = (r.cos() as f32, r.sin() as f32);
    let (hw, hh) = (0.5 * w as f32, 0.5 * h as f32);
    // theta / [0.5·w, 0.5·h], as `_gen_affine_grid` rescales it.
    let (a, b) = (cos / hw, sin / hw);
    let (c, d) = (-sin / hh, cos / hh);
    let src = img.as_raw();
    let mut out = vec![0u8; src.len()];
    for oy in 0..h {
        let y = -hh + 0.5 + oy as f32;
        for ox in 0..w {
            let x = -hw + 0.5 + ox as f32;
            let gx = x * a + y * b;
            let gy = x * c + y * d;
            let ix = (((gx + 1.0) * w as f32 - 1.0) / 2.0).round_ties_even();
            let iy = (((gy + 1.0) * h as f32 - 1.0) / 2.0).round_ties_even();
            if ix >= 0.0 && iy >= 0.0 && ix < w as f32 && iy < h as f32 {
                let s = (iy as usize * w + ix as usize) * 3;
                out[(oy * w + ox) * 3..][..3].copy_from_slice(&src[s..s + 3]);
            }
        }
    }
    RgbImage::from_raw(w as u32, h as u32, out).expect("same size")
}

/// Crop the window `(left, top, width, height)` and resize it to `size × size` with
/// antialiased bilinear on `[0, 1]` floats (torchvision's `resized_crop` on a tensor), then
/// back to 8 bits by truncation (`mul(255).byte()`).
pub fn resized_crop_truncated(img: &RgbImage, window: (u32, u32, u32, u32), size: u32) -> RgbImage {
    let (l, t, w, h) = window;
    let (iw, _) = (img.width() as usize, img.height() as usize);
    let mut crop = Vec::with_capacity(w as usize * h as usize * 3);
    for y in t as usize..(t + h) as usize {
        let row = &img.as_raw()[(y * iw + l as usize) * 3..(y * iw + (l + w) as usize) * 3];
        crop.extend(row.iter().map(|&v| f32::from(v) / 255.0));
    }
    let out = resize_f32(
        &crop,
        w as usize,
        h as usize,
        size as usize,
        size as usize,
        Filter::Bilinear,
    );
    let bytes = out.iter().map(|&v| (v * 255.0) as u8).collect();
    RgbImage::from_raw(size, size, bytes).expect("size × size")
}

/// OpenCV's float `BGR2YCrCb` on 0–255 values, then the reference's studio-range scaling
/// to `[y, cb, cr]`.
fn to_ycbcr(p: [u8; 3]) -> [f32; 3] {
    let [r, g, b] = p.map(f32::from);
    let y = 0.299 * r + 0.587 * g + 0.114 * b;
    let cr = (r - y) * 0.713 + 0.5;
    let cb = (b - y) * 0.564 + 0.5;
    [
        (y * (235.0 - 16.0) + 16.0) / 255.0,
        (cb * (240.0 - 16.0) + 16.0) / 255.0,
        (cr * (240.0 - 16.0) + 16.0) / 255.0,
    ]
}

/// The inverse of [`to_ycbcr`], giving unclipped float RGB.
fn from_ycbcr(v: [f32; 3]) -> [f32; 3] {
    let y = (v[0] * 255.0 - 16.0) / (235.0 - 16.0);
    let cb = (v[1] * 255.0 - 16.0) / (240.0 - 16.0) - 0.5;
    let cr = (v[2] * 255.0 - 16.0) / (240.0 - 16.0) - 0.5;
    [y + 1.403 * cr, y - 0.714 * cr - 0.344 * cb, y + 1.773 * cb]
}

fn map_pixels(img: &RgbImage, mut f: impl FnMut([u8; 3]) -> [u8; 3]) -> RgbImage {
    let mut out = img.clone();
    for p in out.pixels_mut() {
        p.0 = f(p.0);
    }
    out
}

/// DeeperForensics colour saturation: chroma pulled towards 0.5 by `param` in the scaled
/// YCbCr, truncated back to 8 bits.
pub fn color_saturation(img: &RgbImage, param: f32) -> RgbImage {
    map_pixels(img, |p| {
        let [y, cb, cr] = to_ycbcr(p);
        let v = [y, 0.5 + (cb - 0.5) * param, 0.5 + (cr - 0.5) * param];
        from_ycbcr(v).map(|c| c as u8)
    })
}

/// DeeperForensics colour contrast: every value times `param`, truncated.
pub fn color_contrast(img: &RgbImage, param: f32) -> RgbImage {
    map_pixels(img, |p| p.map(|c| (f32::from(c) * param) as u8))
}

/// DeeperForensics "JPEG": OpenCV bilinear resize down by `factor` (integer division of
/// the sides) and back up.
pub fn down_up(img: &RgbImage, factor: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let (sw, sh) = ((w / factor).max(1), (h / factor).max(1));
    cv_resize_linear(&cv_resize_linear(img, sw, sh), w, h)
}

/// DeeperForensics colour noise: Gaussian noise of `variance` on the scaled YCbCr (in
/// units of the full range), clipped and truncated back to 8 bits.
pub fn color_noise(img: &RgbImage, variance: f64, rng: &mut AugRng) -> RgbImage {
    let std = variance.sqrt();
    map_pixels(img, |p| {
        let v = to_ycbcr(p).map(|c| {
            let unit = f64::from(c / 255.0);
            ((unit + std * rng.normal()) * 255.0) as f32
        });
        from_ycbcr(v).map(|c| c.clamp(0.0, 255.0) as u8)
    })
}

/// OpenCV's `resize(..., INTER_LINEAR)` on 8-bit RGB (no antialiasing): 11-bit fixed
/// coefficients, a horizontal then a vertical pass rounded as its vector code rounds.
pub fn cv_resize_linear(img: &RgbImage, dw: u32, dh: u32) -> RgbImage {
    const ONE: i32 = 2048;
    let (sw, sh) = (img.width() as usize, img.height() as usize);
    let (dw, dh) = (dw as usize, dh as usize);
    let coefs = |src: usize, dst: usize| -> Vec<(usize, usize, i32, i32)> {
        let scale = src as f64 / dst as f64;
        (0..dst)
            .map(|d| {
                let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
                let mut s = f.floor() as i64;
                let mut f = f - s as f32;
                if s < 0 {
                    s = 0;
                    f = 0.0;
                }
                if s >= src as i64 - 1 {
                    s = src as i64 - 1;
                    f = 0.0;
                }
                let a0 = ((1.0 - f) * ONE as f32).round_ties_even() as i32;
                let a1 = (f * ONE as f32).round_ties_even() as i32;
                let s1 = (s as usize + 1).min(src - 1);
                (s as usize, s1, a0, a1)
            })
            .collect()
    };
    let xs = coefs(sw, dw);
    let ys = coefs(sh, dh);
    let src = img.as_raw();
    let hrow = |y: usize| -> Vec<i32> {
        let row = &src[y * sw * 3..(y + 1) * sw * 3];
        let mut out = vec![0i32; dw * 3];
        for (x, &(s0, s1, a0, a1)) in xs.iter().enumerate() {
            for c in 0..3 {
                out[x * 3 + c] = i32::from(row[s0 * 3 + c]) * a0 + i32::from(row[s1 * 3 + c]) * a1;
            }
        }
        out
    };
    let rows: Vec<Vec<i32>> = (0..sh).map(hrow).collect();
    let mut out = vec![0u8; dw * dh * 3];
    for (y, &(s0, s1, b0, b1)) in ys.iter().enumerate() {
        let (r0, r1) = (&rows[s0], &rows[s1]);
        for i in 0..dw * 3 {
            let v = (((r0[i] >> 4) * b0) >> 16) + (((r1[i] >> 4) * b1) >> 16);
            out[y * dw * 3 + i] = ((v + 2) >> 2).clamp(0, 255) as u8;
        }
    }
    RgbImage::from_raw(dw as u32, dh as u32, out).expect("dw × dh")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_rotation_is_identity_and_corners_go_black() {
        let img = RgbImage::from_fn(31, 20, |x, y| image::Rgb([x as u8 * 8, y as u8 * 12, 7]));
        assert_eq!(rotate_nearest(&img, 0.0), img);
        let r = rotate_nearest(&img, 20.0);
        assert_eq!(r.get_pixel(0, 0).0, [0, 0, 0]);
        assert_ne!(r.get_pixel(15, 10).0, [0, 0, 0]);
    }

    #[test]
    fn grey_survives_saturation() {
        let img = RgbImage::from_pixel(4, 4, image::Rgb([120, 120, 120]));
        let out = color_saturation(&img, 0.3);
        assert!(
            out.pixels()
                .all(|p| p.0.iter().all(|&c| (119..=120).contains(&c)))
        );
    }

    #[test]
    fn levels_have_the_output_size() {
        let img = RgbImage::from_fn(300, 200, |x, y| image::Rgb([x as u8, y as u8, 50]));
        let settings = ValidatorSettings::default();
        let mut rng = AugRng::from_seed(3);
        for level in 0..4 {
            let out = settings.apply_level(&img, level, &mut rng);
            assert_eq!(out.dimensions(), (224, 224));
        }
    }
}
