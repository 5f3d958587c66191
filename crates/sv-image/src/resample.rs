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
    // PIL multiplies by the reciprocal (`ss = 1.0 / filterscale`); dividing can differ in
    // the last bit and move a fixed-point tap.
    let ss = 1.0 / filter_scale;
    (0..out_size)
        .map(|i| {
            let center = (i as f64 + 0.5) * scale;
            // `(int)` in C truncates toward zero, then both clamp at 0.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let mut weights: Vec<f64> = (xmin..xmax)
                .map(|x| filter.weight((x as f64 - center + 0.5) * ss))
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

fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resize an RGB image exactly as PIL's `Image.resize((w, h), filter)` does.
pub fn resize_pil(src: &RgbImage, out_w: u32, out_h: u32, filter: Filter) -> RgbImage {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, the only feature the function is compiled for.
        return unsafe { resize_pil_avx2(src, out_w, out_h, filter) };
    }
    resize_pil_generic(src, out_w, out_h, filter, true)
}

/// [`resize_pil`] without the SIMD kernels, for checking them against each other and
/// against PIL on any CPU.
#[doc(hidden)]
pub fn resize_pil_scalar(src: &RgbImage, out_w: u32, out_h: u32, filter: Filter) -> RgbImage {
    resize_pil_generic(src, out_w, out_h, filter, false)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn resize_pil_avx2(src: &RgbImage, out_w: u32, out_h: u32, filter: Filter) -> RgbImage {
    resize_pil_generic(src, out_w, out_h, filter, true)
}

/// PIL's integer arithmetic (32-bit sums of 8-bit values times 22-bit taps), laid out so
/// the compiler vectorises it: pixels widened to four 32-bit lanes for the horizontal
/// pass, whole rows at a time for the vertical one.
#[inline(always)]
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
fn resize_pil_generic(
    src: &RgbImage,
    out_w: u32,
    out_h: u32,
    filter: Filter,
    simd: bool,
) -> RgbImage {
    let (in_w, in_h) = (src.width() as usize, src.height() as usize);
    let (ow, oh) = (out_w as usize, out_h as usize);
    let s = src.as_raw();
    let half = 1i32 << (PRECISION_BITS - 1);
    // Only the rows the vertical pass reads need the horizontal one (as PIL does).
    let vtaps = (oh != in_h).then(|| fixed_taps(in_h, oh, filter));
    let (row_first, row_last) = match &vtaps {
        Some(t) => (
            t.iter().map(|(st, _)| *st).min().unwrap_or(0),
            t.iter().map(|(st, k)| st + k.len()).max().unwrap_or(0),
        ),
        None => (0, in_h),
    };
    let rows = row_last - row_first;
    let horizontal: Vec<u8> = if ow != in_w {
        let taps = fixed_taps(in_w, ow, filter);
        let mut out = vec![0u8; rows * ow * 3];
        let mut wide = vec![[0i32; 4]; in_w];
        #[cfg(target_arch = "x86_64")]
        let paired = if !simd {
            None
        } else if std::arch::is_x86_feature_detected!("avx512bw") {
            Some(PairedTaps::new(&taps, in_w, 4))
        } else if std::arch::is_x86_feature_detected!("avx2") {
            Some(PairedTaps::new(&taps, in_w, 2))
        } else {
            None
        };
        #[cfg(target_arch = "x86_64")]
        let mut padded_row =
            vec![0u8; in_w * 3 + 3 * taps.iter().map(|t| t.1.len()).max().unwrap_or(0) + 64];
        for y in 0..rows {
            let row = &s[(row_first + y) * in_w * 3..(row_first + y + 1) * in_w * 3];
            let dst = &mut out[y * ow * 3..(y + 1) * ow * 3];
            #[cfg(target_arch = "x86_64")]
            if let Some(paired) = &paired {
                padded_row[..row.len()].copy_from_slice(row);
                // SAFETY: the group size was chosen by the detected features; the row is
                // padded as both need.
                unsafe {
                    if paired.group == 4 {
                        paired.row_avx512(&padded_row, dst)
                    } else {
                        paired.row_avx2(&padded_row, dst)
                    }
                };
                continue;
            }
            for (w, p) in wide.iter_mut().zip(row.chunks_exact(3)) {
                *w = [i32::from(p[0]), i32::from(p[1]), i32::from(p[2]), 0];
            }
            for ((start, k), d) in taps.iter().zip(dst.chunks_exact_mut(3)) {
                let mut acc = [half; 4];
                for (p, &kj) in wide[*start..*start + k.len()].iter().zip(k) {
                    for c in 0..4 {
                        acc[c] += p[c] * kj;
                    }
                }
                d[0] = clip8(acc[0]);
                d[1] = clip8(acc[1]);
                d[2] = clip8(acc[2]);
            }
        }
        out
    } else {
        s[row_first * in_w * 3..row_last * in_w * 3].to_vec()
    };
    let Some(vtaps) = vtaps else {
        return RgbImage::from_raw(out_w, out_h, horizontal).expect("buffer of the output size");
    };
    let stride = ow * 3;
    let mut out = vec![0u8; oh * stride];
    let mut acc = vec![0i32; stride];
    for (y, (start, k)) in vtaps.iter().enumerate() {
        acc.iter_mut().for_each(|a| *a = half);
        for (j, &kj) in k.iter().enumerate() {
            let r = start - row_first + j;
            for (a, &v) in acc
                .iter_mut()
                .zip(&horizontal[r * stride..(r + 1) * stride])
            {
                *a += i32::from(v) * kj;
            }
        }
        for (o, &a) in out[y * stride..(y + 1) * stride].iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    RgbImage::from_raw(out_w, out_h, out).expect("buffer of the output size")
}

/// Horizontal taps laid out for two taps per 256-bit register: every window padded with
/// zero taps to one even length and moved inside the row, each tap pair broadcast as
/// `[k_j ×4, k_j+1 ×4]`. Zero taps add nothing, so the sums are PIL's.
#[cfg(target_arch = "x86_64")]
struct PairedTaps {
    /// Taps per window (a multiple of `group`).
    len: usize,
    /// Taps per register: 2 (AVX2) or 4 (AVX-512).
    group: usize,
    /// Window start per output pixel.
    starts: Vec<usize>,
    /// `len / group` vectors of `4·group` lanes per output pixel.
    k: Vec<i32>,
}

#[cfg(target_arch = "x86_64")]
impl PairedTaps {
    fn new(taps: &[(usize, Vec<i32>)], in_w: usize, group: usize) -> Self {
        let longest = taps.iter().map(|(_, k)| k.len()).max().unwrap_or(1);
        let len = longest.div_ceil(group) * group;
        let mut starts = Vec::with_capacity(taps.len());
        let mut k = Vec::with_capacity(taps.len() * len / 2);
        for (start, kx) in taps {
            // Move the window left where it would run past the row; the extra taps in
            // front are zero. A row shorter than the window reads into the padding.
            let s = (*start).min(in_w.saturating_sub(len));
            let mut row = vec![0i32; len];
            for (j, &kj) in kx.iter().enumerate() {
                row[start + j - s] = kj;
            }
            starts.push(s);
            k.extend(row.iter().flat_map(|&kj| [kj; 4]));
        }
        Self {
            len,
            group,
            starts,
            k,
        }
    }

    /// One row. `row` holds the input's RGB bytes followed by at least `3·len + 16` bytes
    /// of padding; `dst` gets RGB bytes.
    #[target_feature(enable = "avx2")]
    unsafe fn row_avx2(&self, row: &[u8], dst: &mut [u8]) {
        use std::arch::x86_64::*;
        // Bytes of pixel 0 into the low lane's i32s, of pixel 1 into the high lane's.
        let spread = _mm256_setr_epi8(
            0, -1, -1, -1, 1, -1, -1, -1, 2, -1, -1, -1, -1, -1, -1, -1, //
            3, -1, -1, -1, 4, -1, -1, -1, 5, -1, -1, -1, -1, -1, -1, -1,
        );
        let half = _mm_set1_epi32(1 << (PRECISION_BITS - 1));
        let lanes = self.len * 4;
        for (x, &start) in self.starts.iter().enumerate() {
            let mut acc = _mm256_setzero_si256();
            let k = &self.k[x * lanes..(x + 1) * lanes];
            let mut p = row.as_ptr().wrapping_add(start * 3);
            for kj in k.chunks_exact(8) {
                // SAFETY: the window lies in the row and the row is padded by 16 bytes;
                // `kj` is 32 readable bytes.
                let (v, kv) = unsafe {
                    (
                        _mm256_broadcastsi128_si256(_mm_loadu_si128(p.cast())),
                        _mm256_loadu_si256(kj.as_ptr().cast()),
                    )
                };
                let v = _mm256_shuffle_epi8(v, spread);
                acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(v, kv));
                p = p.wrapping_add(6);
            }
            let sum = _mm_add_epi32(
                _mm256_castsi256_si128(acc),
                _mm256_extracti128_si256::<1>(acc),
            );
            store_rgb(sum, half, &mut dst[x * 3..x * 3 + 3]);
        }
    }

    /// [`Self::row_avx2`] with four taps per 512-bit register.
    #[target_feature(enable = "avx512f,avx512bw,avx2")]
    unsafe fn row_avx512(&self, row: &[u8], dst: &mut [u8]) {
        use std::arch::x86_64::*;
        // Pixel i of the four loaded into 128-bit lane i's i32s.
        let spread = _mm512_set_epi8(
            -1, -1, -1, -1, -1, -1, -1, 11, -1, -1, -1, 10, -1, -1, -1, 9, //
            -1, -1, -1, -1, -1, -1, -1, 8, -1, -1, -1, 7, -1, -1, -1, 6, //
            -1, -1, -1, -1, -1, -1, -1, 5, -1, -1, -1, 4, -1, -1, -1, 3, //
            -1, -1, -1, -1, -1, -1, -1, 2, -1, -1, -1, 1, -1, -1, -1, 0,
        );
        let half = _mm_set1_epi32(1 << (PRECISION_BITS - 1));
        let lanes = self.len * 4;
        for (x, &start) in self.starts.iter().enumerate() {
            let mut acc = _mm512_setzero_si512();
            let k = &self.k[x * lanes..(x + 1) * lanes];
            let mut p = row.as_ptr().wrapping_add(start * 3);
            for kj in k.chunks_exact(16) {
                // SAFETY: the window lies in the row and the row is padded by 16 bytes;
                // `kj` is 64 readable bytes.
                let (v, kv) = unsafe {
                    (
                        _mm512_broadcast_i32x4(_mm_loadu_si128(p.cast())),
                        _mm512_loadu_si512(kj.as_ptr().cast()),
                    )
                };
                let v = _mm512_shuffle_epi8(v, spread);
                acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(v, kv));
                p = p.wrapping_add(12);
            }
            let lo = _mm512_castsi512_si256(acc);
            let hi = _mm512_extracti64x4_epi64::<1>(acc);
            let acc = _mm256_add_epi32(lo, hi);
            let sum = _mm_add_epi32(
                _mm256_castsi256_si128(acc),
                _mm256_extracti128_si256::<1>(acc),
            );
            store_rgb(sum, half, &mut dst[x * 3..x * 3 + 3]);
        }
    }
}

/// Round the fixed-point sums `[r, g, b, _]` (plus `half`) to 8 bits, clipped as PIL's
/// `clip8`, into `dst`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn store_rgb(sum: std::arch::x86_64::__m128i, half: std::arch::x86_64::__m128i, dst: &mut [u8]) {
    use std::arch::x86_64::*;
    let v = _mm_srai_epi32::<{ PRECISION_BITS as i32 }>(_mm_add_epi32(sum, half));
    let v = _mm_packus_epi16(_mm_packs_epi32(v, v), v);
    dst.copy_from_slice(&_mm_cvtsi128_si32(v).to_le_bytes()[..3]);
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
    fn vector_and_portable_paths_agree() {
        let img = RgbImage::from_fn(97, 61, |x, y| {
            image::Rgb([(x * 7 + y) as u8, (x * y) as u8, (255 - x * 2) as u8])
        });
        for filter in [Filter::Bilinear, Filter::Bicubic] {
            for (w, h) in [(24, 24), (13, 50), (97, 20), (200, 61), (3, 2), (150, 140)] {
                assert_eq!(
                    resize_pil(&img, w, h, filter),
                    resize_pil_scalar(&img, w, h, filter),
                    "{w}x{h} {filter:?}"
                );
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
