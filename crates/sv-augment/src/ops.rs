//! The transforms. Each takes an RGB image and the sample's random source, and returns
//! the transformed image; deterministic ones ignore the random source.

use image::{Rgb, RgbImage};
use serde::{Deserialize, Serialize};

use crate::blur::random_motion_blur;
use crate::color::hue_saturation_value;
use crate::resample::{Filter, resize_pil};
use crate::rng::AugRng;
use crate::validator::{ValidatorSettings, rotate_nearest};
use crate::weather::{FogParams, RainParams, fog, rain};

/// Size of the shortest-edge resize, as torchvision's and HF's `int(long · edge / short)`.
pub fn shortest_edge_size(w: u32, h: u32, edge: u32) -> (u32, u32) {
    let (short, long) = (w.min(h), w.max(h));
    let new_long = (edge as f64 * long as f64 / short as f64) as u32;
    if w <= h {
        (edge, new_long)
    } else {
        (new_long, edge)
    }
}

/// Resize so the shortest edge is `edge` (aspect kept), PIL-exact.
pub fn resize_shortest_edge(img: &RgbImage, edge: u32, filter: Filter) -> RgbImage {
    let (w, h) = shortest_edge_size(img.width(), img.height(), edge);
    resize_pil(img, w, h, filter)
}

/// Centre crop to `width × height`, as torchvision's `center_crop`: the offset is half
/// the difference rounded half to even (Python's `round`); where the crop is larger,
/// the image is first zero-padded by `(crop − size) // 2` before it.
pub fn center_crop(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let offset = |size: u32, crop: u32| -> i64 {
        if crop > size {
            -(((crop - size) / 2) as i64)
        } else {
            ((size - crop) as f64 / 2.0).round_ties_even() as i64
        }
    };
    let left = offset(img.width(), width);
    let top = offset(img.height(), height);
    crop_padded(img, left, top, width, height)
}

/// The `width × height` window at (`left`, `top`), zero outside the image.
pub fn crop_padded(img: &RgbImage, left: i64, top: i64, width: u32, height: u32) -> RgbImage {
    let (w, h) = (img.width() as i64, img.height() as i64);
    RgbImage::from_fn(width, height, |x, y| {
        let (sx, sy) = (left + x as i64, top + y as i64);
        if sx >= 0 && sy >= 0 && sx < w && sy < h {
            *img.get_pixel(sx as u32, sy as u32)
        } else {
            Rgb([0, 0, 0])
        }
    })
}

/// Mirror left to right.
pub fn hflip(img: &RgbImage) -> RgbImage {
    image::imageops::flip_horizontal(img)
}

/// Parameters of a random resized crop (torchvision's `RandomResizedCrop.get_params`):
/// the `(left, top, width, height)` window, drawn with area fraction in `scale` and
/// log-uniform aspect ratio in `ratio`; after 10 failed draws, the centre crop at the
/// nearest allowed ratio. Sizes round half to even, as Python's `round`.
pub fn random_resized_crop_window(
    w: u32,
    h: u32,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut AugRng,
) -> (u32, u32, u32, u32) {
    let area = w as f64 * h as f64;
    let (log_lo, log_hi) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target = area * rng.uniform(scale.0, scale.1);
        let aspect = rng.uniform(log_lo, log_hi).exp();
        let cw = (target * aspect).sqrt().round_ties_even() as i64;
        let ch = (target / aspect).sqrt().round_ties_even() as i64;
        if cw > 0 && ch > 0 && cw <= w as i64 && ch <= h as i64 {
            let top = rng.int(0, h as i64 - ch) as u32;
            let left = rng.int(0, w as i64 - cw) as u32;
            return (left, top, cw as u32, ch as u32);
        }
    }
    let in_ratio = w as f64 / h as f64;
    let (cw, ch) = if in_ratio < ratio.0 {
        (w, (w as f64 / ratio.0).round_ties_even() as u32)
    } else if in_ratio > ratio.1 {
        ((h as f64 * ratio.1).round_ties_even() as u32, h)
    } else {
        (w, h)
    };
    ((w - cw) / 2, (h - ch) / 2, cw, ch)
}

/// Add Gaussian noise of standard deviation `std` (in 8-bit levels) to every channel,
/// rounding and clipping to [0, 255].
pub fn gaussian_noise(img: &RgbImage, std: f64, rng: &mut AugRng) -> RgbImage {
    let mut out = img.clone();
    let std = std as f32;
    for v in out.iter_mut() {
        // Clamped first, `+ 0.5` then truncation is `round` (half away from zero).
        *v = ((f32::from(*v) + std * rng.normal_f32()).clamp(0.0, 255.0) + 0.5) as u8;
    }
    out
}

/// `img·alpha + beta·255`, clipped to [0, 255] and truncated, in f32, as albumentations'
/// `RandomBrightnessContrast` (`brightness_by_max`) computes its lookup table.
pub fn brightness_contrast(img: &RgbImage, alpha: f64, beta: f64) -> RgbImage {
    let (a, b) = (alpha as f32, (beta * 255.0) as f32);
    let lut: Vec<u8> = (0..256)
        .map(|v| (v as f32 * a + b).clamp(0.0, 255.0) as u8)
        .collect();
    let mut out = img.clone();
    for v in out.iter_mut() {
        *v = lut[*v as usize];
    }
    out
}

/// Gaussian blur with an odd `kernel` size and standard deviation `sigma`, as
/// torchvision's `gaussian_blur`: normalised sampled Gaussian taps, reflect padding,
/// computed in f32 and rounded to 8 bits once at the end.
pub fn gaussian_blur(img: &RgbImage, kernel: usize, sigma: f64) -> RgbImage {
    let kernel = kernel.max(1) | 1;
    let half = (kernel / 2) as i64;
    let mut taps: Vec<f32> = (0..kernel)
        .map(|i| {
            let x = (i as f64 - half as f64) / sigma;
            (-0.5 * x * x).exp() as f32
        })
        .collect();
    let total: f32 = taps.iter().sum();
    taps.iter_mut().for_each(|t| *t /= total);
    let (w, h) = (img.width() as i64, img.height() as i64);
    // Reflect without repeating the edge (PyTorch's "reflect").
    let reflect = |i: i64, n: i64| -> usize {
        if n == 1 {
            return 0;
        }
        let period = 2 * (n - 1);
        let m = i.rem_euclid(period);
        (if m < n { m } else { period - m }) as usize
    };
    let src = img.as_raw();
    let mut rows = vec![0f32; src.len()];
    for y in 0..h as usize {
        for x in 0..w {
            for c in 0..3 {
                let mut acc = 0f32;
                for (k, t) in taps.iter().enumerate() {
                    let sx = reflect(x + k as i64 - half, w);
                    acc += t * f32::from(src[(y * w as usize + sx) * 3 + c]);
                }
                rows[(y * w as usize + x as usize) * 3 + c] = acc;
            }
        }
    }
    let mut out = vec![0u8; src.len()];
    for y in 0..h {
        for x in 0..w as usize {
            for c in 0..3 {
                let mut acc = 0f32;
                for (k, t) in taps.iter().enumerate() {
                    let sy = reflect(y + k as i64 - half, h);
                    acc += t * rows[(sy * w as usize + x) * 3 + c];
                }
                out[(y as usize * w as usize + x) * 3 + c] = acc.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    RgbImage::from_raw(img.width(), img.height(), out).expect("same size")
}

/// Encode as baseline JPEG at `quality` (1–100) with 4:2:0 chroma subsampling, as PIL's
/// `save(..., "JPEG", quality=q)` does by default; `None` beyond JPEG's 65535-pixel sides.
pub fn jpeg_encode(img: &RgbImage, quality: u8) -> Option<Vec<u8>> {
    let (Ok(w), Ok(h)) = (u16::try_from(img.width()), u16::try_from(img.height())) else {
        return None;
    };
    let mut bytes = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut bytes, quality.clamp(1, 100));
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_2_0);
    enc.encode(img.as_raw(), w, h, jpeg_encoder::ColorType::Rgb)
        .ok()?;
    Some(bytes)
}

/// Re-encode as [`jpeg_encode`] does and decode again. Images wider or taller than 65535
/// pixels (beyond JPEG's limit) come back unchanged.
pub fn jpeg_recompress(img: &RgbImage, quality: u8) -> RgbImage {
    let Some(bytes) = jpeg_encode(img, quality) else {
        return img.clone();
    };
    image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg)
        .map(|d| d.to_rgb8())
        .unwrap_or_else(|_| img.clone())
}

/// One step of a pipeline, as written in TOML (`op = "…"` plus its fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Shortest edge to `size` (aspect kept).
    Resize {
        /// Target shortest edge.
        size: u32,
        /// Resampling filter (default bilinear).
        #[serde(default = "bilinear")]
        filter: Filter,
    },
    /// Resize to exactly `width × height` (aspect not kept), PIL-exact.
    ResizeTo {
        /// Output width.
        width: u32,
        /// Output height.
        height: u32,
        /// Resampling filter (default bilinear).
        #[serde(default = "bilinear")]
        filter: Filter,
    },
    /// Centre crop to `size × size`.
    CenterCrop {
        /// Side.
        size: u32,
    },
    /// Random crop of area fraction in `scale` and aspect in `ratio`, resized to
    /// `size × size`.
    RandomResizedCrop {
        /// Output side.
        size: u32,
        /// Area fraction range (default 0.08–1).
        #[serde(default = "default_scale")]
        scale: (f64, f64),
        /// Aspect ratio range (default 3/4–4/3).
        #[serde(default = "default_ratio")]
        ratio: (f64, f64),
        /// Resampling filter (default bilinear).
        #[serde(default = "bilinear")]
        filter: Filter,
        /// Probability of applying (default 1).
        #[serde(default = "one")]
        p: f64,
    },
    /// Mirror left to right.
    HorizontalFlip {
        /// Probability (default 0.5).
        #[serde(default = "half")]
        p: f64,
    },
    /// Brightness and contrast: alpha = 1 + U(−contrast, contrast), beta = U(−brightness,
    /// brightness) of the full range.
    BrightnessContrast {
        /// Brightness limit (default 0.2).
        #[serde(default = "point_two")]
        brightness: f64,
        /// Contrast limit (default 0.2).
        #[serde(default = "point_two")]
        contrast: f64,
        /// Probability (default 0.5).
        #[serde(default = "half")]
        p: f64,
    },
    /// Gaussian noise with a standard deviation drawn from `std` (8-bit levels).
    GaussianNoise {
        /// Standard deviation range.
        std: (f64, f64),
        /// Probability (default 0.5).
        #[serde(default = "half")]
        p: f64,
    },
    /// Gaussian blur with an odd kernel size drawn from `kernel` and sigma from `sigma`.
    GaussianBlur {
        /// Kernel size range (odd sizes; an even draw is rounded up).
        #[serde(default = "default_blur_kernel")]
        kernel: (u32, u32),
        /// Sigma range.
        #[serde(default = "default_blur_sigma")]
        sigma: (f64, f64),
        /// Probability (default 0.5).
        #[serde(default = "half")]
        p: f64,
    },
    /// JPEG re-compression at a quality drawn from `quality`.
    Jpeg {
        /// Quality range (1–100).
        #[serde(default = "default_quality")]
        quality: (u8, u8),
        /// Probability (default 0.5).
        #[serde(default = "half")]
        p: f64,
    },
    /// Shift hue (OpenCV units, 0–179), saturation and value by amounts drawn from
    /// ±`hue`, ±`saturation`, ±`value` (albumentations' `HueSaturationValue`).
    HueSaturationValue {
        /// Hue limit (default 20).
        #[serde(default = "twenty")]
        hue: f64,
        /// Saturation limit (default 30).
        #[serde(default = "thirty")]
        saturation: f64,
        /// Value limit (default 20).
        #[serde(default = "twenty")]
        value: f64,
        /// Probability (default 0.5).
        #[serde(default = "half")]
        p: f64,
    },
    /// Motion blur along a line (albumentations' `MotionBlur`, kernel centred).
    MotionBlur {
        /// Kernel size range (odd sizes; default 3–7).
        #[serde(default = "default_motion_kernel")]
        kernel: (u32, u32),
        /// Angle range in degrees (default 0–360).
        #[serde(default = "default_angle")]
        angle: (f64, f64),
        /// Direction bias range, −1 backward to 1 forward (default −1–1).
        #[serde(default = "default_direction")]
        direction: (f64, f64),
        /// Probability (default 0.5).
        #[serde(default = "half")]
        p: f64,
    },
    /// Rain streaks (albumentations' `RandomRain`, default type).
    Rain {
        /// Slant range in pixels (default −10–10).
        #[serde(default = "default_slant")]
        slant: (f64, f64),
        /// Drop length (default an eighth of the height).
        #[serde(default)]
        drop_length: Option<u32>,
        /// Drop width (default 1).
        #[serde(default = "one_u32")]
        drop_width: u32,
        /// Drop colour (default [200, 200, 200]).
        #[serde(default = "default_drop_color")]
        drop_color: [u8; 3],
        /// Box-blur size of the streaks (default 7).
        #[serde(default = "seven")]
        blur: u32,
        /// Brightness factor (default 0.7).
        #[serde(default = "default_rain_brightness")]
        brightness: f64,
        /// Probability (default 0.5).
        #[serde(default = "half")]
        p: f64,
    },
    /// Fog (albumentations' `RandomFog`).
    Fog {
        /// Intensity range (default 0.3–1).
        #[serde(default = "default_fog_intensity")]
        intensity: (f64, f64),
        /// Blending coefficient per particle (default 0.08).
        #[serde(default = "default_fog_alpha")]
        alpha: f64,
        /// Probability (default 0.5).
        #[serde(default = "half")]
        p: f64,
    },
    /// Rotation by an angle drawn from ±`degrees`, nearest neighbour, black corners, size
    /// kept.
    Rotate {
        /// Angle limit in degrees (default 20).
        #[serde(default = "twenty")]
        degrees: f64,
        /// Probability (default 1).
        #[serde(default = "one")]
        p: f64,
    },
    /// What the subnet's validators do to a challenge (levels 0–3, then JPEG); see
    /// [`crate::validator`].
    Validator(ValidatorSettings),
    /// One of `steps`, picked uniformly, with probability `p`.
    OneOf {
        /// The candidates.
        steps: Vec<Step>,
        /// Probability (default 1).
        #[serde(default = "one")]
        p: f64,
    },
}

fn bilinear() -> Filter {
    Filter::Bilinear
}
fn default_scale() -> (f64, f64) {
    (0.08, 1.0)
}
fn default_ratio() -> (f64, f64) {
    (3.0 / 4.0, 4.0 / 3.0)
}
fn one() -> f64 {
    1.0
}
fn half() -> f64 {
    0.5
}
fn point_two() -> f64 {
    0.2
}
fn default_blur_kernel() -> (u32, u32) {
    (3, 7)
}
fn default_blur_sigma() -> (f64, f64) {
    (0.1, 2.0)
}
fn default_quality() -> (u8, u8) {
    (50, 95)
}
fn twenty() -> f64 {
    20.0
}
fn thirty() -> f64 {
    30.0
}
fn default_motion_kernel() -> (u32, u32) {
    (3, 7)
}
fn default_angle() -> (f64, f64) {
    (0.0, 360.0)
}
fn default_direction() -> (f64, f64) {
    (-1.0, 1.0)
}
fn default_slant() -> (f64, f64) {
    (-10.0, 10.0)
}
fn one_u32() -> u32 {
    1
}
fn seven() -> u32 {
    7
}
fn default_drop_color() -> [u8; 3] {
    [200, 200, 200]
}
fn default_rain_brightness() -> f64 {
    0.7
}
fn default_fog_intensity() -> (f64, f64) {
    (0.3, 1.0)
}
fn default_fog_alpha() -> f64 {
    0.08
}

impl Step {
    /// Apply to `img` with the sample's random source.
    pub fn apply(&self, img: RgbImage, rng: &mut AugRng) -> RgbImage {
        match self {
            Step::Resize { size, filter } => resize_shortest_edge(&img, *size, *filter),
            Step::ResizeTo {
                width,
                height,
                filter,
            } => resize_pil(&img, *width, *height, *filter),
            Step::CenterCrop { size } => center_crop(&img, *size, *size),
            Step::RandomResizedCrop {
                size,
                scale,
                ratio,
                filter,
                p,
            } => {
                if !rng.chance(*p) {
                    return img;
                }
                let (l, t, w, h) =
                    random_resized_crop_window(img.width(), img.height(), *scale, *ratio, rng);
                let crop = image::imageops::crop_imm(&img, l, t, w, h).to_image();
                resize_pil(&crop, *size, *size, *filter)
            }
            Step::HorizontalFlip { p } => {
                if rng.chance(*p) {
                    hflip(&img)
                } else {
                    img
                }
            }
            Step::BrightnessContrast {
                brightness,
                contrast,
                p,
            } => {
                if !rng.chance(*p) {
                    return img;
                }
                let alpha = 1.0 + rng.uniform(-contrast, *contrast);
                let beta = rng.uniform(-brightness, *brightness);
                brightness_contrast(&img, alpha, beta)
            }
            Step::GaussianNoise { std, p } => {
                if !rng.chance(*p) {
                    return img;
                }
                let s = rng.uniform(std.0, std.1);
                gaussian_noise(&img, s, rng)
            }
            Step::GaussianBlur { kernel, sigma, p } => {
                if !rng.chance(*p) {
                    return img;
                }
                let k = rng.int(i64::from(kernel.0), i64::from(kernel.1)) as usize;
                let s = rng.uniform(sigma.0, sigma.1);
                gaussian_blur(&img, k, s)
            }
            Step::Jpeg { quality, p } => {
                if !rng.chance(*p) {
                    return img;
                }
                let q = rng.int(i64::from(quality.0), i64::from(quality.1)) as u8;
                jpeg_recompress(&img, q)
            }
            Step::HueSaturationValue {
                hue,
                saturation,
                value,
                p,
            } => {
                if !rng.chance(*p) {
                    return img;
                }
                let h = rng.uniform(-hue, *hue);
                let s = rng.uniform(-saturation, *saturation);
                let v = rng.uniform(-value, *value);
                hue_saturation_value(&img, h, s, v)
            }
            Step::MotionBlur {
                kernel,
                angle,
                direction,
                p,
            } => {
                if !rng.chance(*p) {
                    return img;
                }
                random_motion_blur(&img, *kernel, *angle, *direction, rng)
            }
            Step::Rain {
                slant,
                drop_length,
                drop_width,
                drop_color,
                blur,
                brightness,
                p,
            } => {
                if !rng.chance(*p) {
                    return img;
                }
                let params = RainParams::draw(
                    img.width(),
                    img.height(),
                    *slant,
                    *drop_length,
                    *drop_width,
                    *drop_color,
                    *blur,
                    *brightness,
                    rng,
                );
                rain(&img, &params)
            }
            Step::Fog {
                intensity,
                alpha,
                p,
            } => {
                if !rng.chance(*p) {
                    return img;
                }
                let params = FogParams::draw(img.width(), img.height(), *intensity, *alpha, rng);
                fog(&img, &params)
            }
            Step::Rotate { degrees, p } => {
                if !rng.chance(*p) {
                    return img;
                }
                rotate_nearest(&img, rng.uniform(-degrees, *degrees))
            }
            Step::Validator(settings) => settings.apply(&img, rng),
            Step::OneOf { steps, p } => {
                if steps.is_empty() || !rng.chance(*p) {
                    return img;
                }
                let i = rng.int(0, steps.len() as i64 - 1) as usize;
                steps[i].apply(img, rng)
            }
        }
    }
}
