//! Antialiased resampling exactly as PIL's `Image.resize` computes it for 8-bit images
//! (`BILINEAR` and `BICUBIC`): separable filters whose support widens with the downscale
//! factor, normalised taps rounded to fixed point (22 fractional bits), a horizontal then
//! a vertical pass, each rounded and clipped to 8 bits. The floating-point taps are also
//! PyTorch's `interpolate(..., antialias=True, align_corners=False)` weights.

use image::RgbImage;
use serde::{Deserialize, Serialize};

/// A resampling filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// Triangle filter, support 1 (PIL `BILINEAR`).
    Bilinear,
    /// Keys cubic with a = −0.5, support 2 (PIL `BICUBIC`).
    Bicubic,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Filter::Bilinear => (1.0 - x).max(0.0),
            Filter::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// The input taps of one output sample: first input index and normalised weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Taps {
    /// First input index the weights apply to.
    pub start: usize,
    /// Weights for inputs `start..start + weights.len()`, summing to 1.
    pub weights: Vec<f64>,
}

/// Taps for resizing an axis of `in_size` samples to `out_size` samples.
pub fn taps(in_size: usize, out_size: usize, filter: Filter) -> Vec<Taps> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter.support() * filter_scale;
    (0..out_size)
        .map(|i| {
            let center = (i as f64 + 0.5) * scale;
            // `(int)` in C truncates toward zero, then both clamp at 0.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let mut weights: Vec<f64> = (xmin..xmax)
                .map(|x| filter.weight((x as f64 - center + 0.5) / filter_scale))
                .collect();
            let total: f64 = weights.iter().sum();
            if total != 0.0 {
                weights.iter_mut().for_each(|w| *w /= total);
            }
            Taps {
                start: xmin,
                weights,
            }
        })
        .collect()
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Fixed-point taps as PIL's `normalize_coeffs_8bpc` rounds them.
fn fixed_taps(in_size: usize, out_size: usize, filter: Filter) -> Vec<(usize, Vec<i32>)> {
    taps(in_size, out_size, filter)
        .into_iter()
        .map(|t| {
            let k = t
                .weights
                .iter()
                .map(|&w| {
                    let s = w * (1u32 << PRECISION_BITS) as f64;
                    (if w < 0.0 { s - 0.5 } else { s + 0.5 }).trunc() as i32
                })
                .collect();
            (t.start, k)
        })
        .collect()
}

fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resize an RGB image exactly as PIL's `Image.resize((w, h), filter)` does.
pub fn resize_pil(src: &RgbImage, out_w: u32, out_h: u32, filter: Filter) -> RgbImage {
    let (in_w, in_h) = (src.width() as usize, src.height() as usize);
    let (ow, oh) = (out_w as usize, out_h as usize);
    let s = src.as_raw();
    let half = 1i64 << (PRECISION_BITS - 1);
    let horizontal: Vec<u8> = if ow != in_w {
        let taps = fixed_taps(in_w, ow, filter);
        let mut out = vec![0u8; in_h * ow * 3];
        for y in 0..in_h {
            let row = &s[y * in_w * 3..(y + 1) * in_w * 3];
            for (x, (start, k)) in taps.iter().enumerate() {
                for c in 0..3 {
                    let mut acc = half;
                    for (j, &kj) in k.iter().enumerate() {
                        acc += row[(start + j) * 3 + c] as i64 * kj as i64;
                    }
                    out[(y * ow + x) * 3 + c] = clip8(acc);
                }
            }
        }
        out
    } else {
        s.to_vec()
    };
    let vertical: Vec<u8> = if oh != in_h {
        let taps = fixed_taps(in_h, oh, filter);
        let mut out = vec![0u8; oh * ow * 3];
        let stride = ow * 3;
        for (y, (start, k)) in taps.iter().enumerate() {
            for i in 0..stride {
                let mut acc = half;
                for (j, &kj) in k.iter().enumerate() {
                    acc += horizontal[(start + j) * stride + i] as i64 * kj as i64;
                }
                out[y * stride + i] = clip8(acc);
            }
        }
        out
    } else {
        horizontal
    };
    RgbImage::from_raw(out_w, out_h, vertical).expect("buffer of the output size")
}

/// PyTorch's antialiased taps for float tensors (`_compute_weights_aa`): PIL's scheme,
/// computed in `f32`.
fn taps_f32(in_size: usize, out_size: usize, filter: Filter) -> Vec<(usize, Vec<f32>)> {
    let scale = in_size as f32 / out_size as f32;
    let support = filter.support() as f32 * scale.max(1.0);
    let invscale = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
    (0..out_size)
        .map(|i| {
            let center = scale * (i as f32 + 0.5);
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
            let mut w: Vec<f32> = (xmin..xmax)
                .map(|x| filter.weight(f64::from((x as f32 - center + 0.5) * invscale)) as f32)
                .collect();
            let total: f32 = w.iter().sum();
            if total != 0.0 {
                w.iter_mut().for_each(|v| *v /= total);
            }
            (xmin as usize, w)
        })
        .collect()
}

/// Resize an interleaved RGB `f32` image of `in_w × in_h` as PyTorch's
/// `interpolate(..., antialias=True, align_corners=False)` does for float tensors on an
/// x86 CPU: PIL's taps in `f32`, sums accumulated with fused multiply-adds, horizontal
/// pass then vertical. Bit-exact against PyTorch 2.9.
pub fn resize_f32(
    src: &[f32],
    in_w: usize,
    in_h: usize,
    out_w: usize,
    out_h: usize,
    filter: Filter,
) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has FMA, the only feature the function is compiled for.
        return unsafe { resize_f32_fma(src, in_w, in_h, out_w, out_h, filter) };
    }
    resize_f32_generic(src, in_w, in_h, out_w, out_h, filter)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
unsafe fn resize_f32_fma(
    src: &[f32],
    in_w: usize,
    in_h: usize,
    out_w: usize,
    out_h: usize,
    filter: Filter,
) -> Vec<f32> {
    resize_f32_generic(src, in_w, in_h, out_w, out_h, filter)
}

#[inline(always)]
fn resize_f32_generic(
    src: &[f32],
    in_w: usize,
    in_h: usize,
    out_w: usize,
    out_h: usize,
    filter: Filter,
) -> Vec<f32> {
    let horizontal: Vec<f32> = if out_w != in_w {
        let taps = taps_f32(in_w, out_w, filter);
        let mut out = vec![0f32; in_h * out_w * 3];
        for y in 0..in_h {
            let row = &src[y * in_w * 3..(y + 1) * in_w * 3];
            for (x, (start, weights)) in taps.iter().enumerate() {
                for c in 0..3 {
                    let mut acc = 0f32;
                    for (j, &w) in weights.iter().enumerate() {
                        acc = row[(start + j) * 3 + c].mul_add(w, acc);
                    }
                    out[(y * out_w + x) * 3 + c] = acc;
                }
            }
        }
        out
    } else {
        src.to_vec()
    };
    if out_h == in_h {
        return horizontal;
    }
    let taps = taps_f32(in_h, out_h, filter);
    let stride = out_w * 3;
    let mut out = vec![0f32; out_h * stride];
    for (y, (start, weights)) in taps.iter().enumerate() {
        let dst = &mut out[y * stride..(y + 1) * stride];
        for (j, &w) in weights.iter().enumerate() {
            let row = &horizontal[(start + j) * stride..(start + j + 1) * stride];
            for (d, s) in dst.iter_mut().zip(row) {
                *d = s.mul_add(w, *d);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sum_to_one() {
        for filter in [Filter::Bilinear, Filter::Bicubic] {
            for (a, b) in [(37, 16), (4, 5), (4, 3), (300, 256)] {
                for t in taps(a, b, filter) {
                    let s: f64 = t.weights.iter().sum();
                    assert!((s - 1.0).abs() < 1e-12);
                }
            }
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = RgbImage::from_pixel(37, 23, image::Rgb([200, 10, 99]));
        for filter in [Filter::Bilinear, Filter::Bicubic] {
            let out = resize_pil(&img, 11, 50, filter);
            assert!(out.pixels().all(|p| p.0 == [200, 10, 99]));
        }
    }
}
