//! Blurs as OpenCV computes them on 8-bit images (albumentations and the subnet's
//! validators call OpenCV): the motion-blur line kernel, `filter2D`, the fixed-point
//! separable `GaussianBlur` and the box `blur`, all with OpenCV's default border
//! (reflect without repeating the edge pixel, `BORDER_REFLECT_101`).

use image::RgbImage;

use crate::rng::AugRng;

/// Index `i` reflected into `0..n` without repeating the edge (`BORDER_REFLECT_101`).
pub fn reflect101(i: i64, n: i64) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let m = i.rem_euclid(period);
    (if m < n { m } else { period - m }) as usize
}

/// albumentations' `create_motion_kernel` without random shift: a `size × size` kernel
/// (row-major) of ones on the line through the centre at `angle` degrees, biased forward
/// (`direction` → 1) or backward (→ −1), normalised to sum 1.
pub fn motion_kernel(size: usize, angle: f64, direction: f64) -> Vec<f32> {
    let size = size.max(1);
    let direction = direction.clamp(-1.0, 1.0);
    let center = (size / 2) as f64;
    let (dy, dx) = angle.to_radians().sin_cos();
    let half = (size / 2) as f64;
    let (t0, t1) = if direction < 0.0 {
        (-half, half * (1.0 - direction.abs()))
    } else if direction > 0.0 {
        (-half * (1.0 - direction), half)
    } else {
        (-half, half)
    };
    let mut kernel = vec![0f32; size * size];
    for i in 0..size {
        // numpy's linspace: start + i·step, the last point exactly `t1`.
        let t = if i + 1 == size && size > 1 {
            t1
        } else if size > 1 {
            t0 + i as f64 * ((t1 - t0) / (size - 1) as f64)
        } else {
            t0
        };
        let clip = |v: f64| v.round_ties_even().clamp(0.0, (size - 1) as f64) as usize;
        let (x, y) = (clip(center + dx * t), clip(center + dy * t));
        kernel[y * size + x] = 1.0;
    }
    let total: f32 = kernel.iter().sum();
    kernel.iter_mut().for_each(|k| *k /= total);
    kernel
}

/// Correlate with a `size × size` kernel (anchor at the centre) as OpenCV's `filter2D` on
/// 8-bit images: `f32` sums, rounded to nearest and saturated.
pub fn filter2d(img: &RgbImage, kernel: &[f32], size: usize) -> RgbImage {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let half = (size / 2) as i64;
    let taps: Vec<(i64, i64, f32)> = kernel
        .iter()
        .enumerate()
        .filter(|(_, k)| **k != 0.0)
        .map(|(i, k)| ((i % size) as i64 - half, (i / size) as i64 - half, *k))
        .collect();
    let src = img.as_raw();
    let mut out = vec![0u8; src.len()];
    for y in 0..h {
        for x in 0..w {
            let mut acc = [0f32; 3];
            for &(ox, oy, k) in &taps {
                let sx = reflect101(x + ox, w);
                let sy = reflect101(y + oy, h);
                let p = &src[(sy * w as usize + sx) * 3..][..3];
                for c in 0..3 {
                    acc[c] += k * f32::from(p[c]);
                }
            }
            let o = &mut out[(y * w + x) as usize * 3..][..3];
            for c in 0..3 {
                o[c] = acc[c].round_ties_even().clamp(0.0, 255.0) as u8;
            }
        }
    }
    RgbImage::from_raw(img.width(), img.height(), out).expect("same size")
}

/// Motion blur with albumentations' `MotionBlur` draws: an odd kernel size in `kernel`,
/// angle in `angle` degrees, direction bias in `direction`.
pub fn random_motion_blur(
    img: &RgbImage,
    kernel: (u32, u32),
    angle: (f64, f64),
    direction: (f64, f64),
    rng: &mut AugRng,
) -> RgbImage {
    let (lo, hi) = (kernel.0.max(3) | 1, kernel.1.max(3) | 1);
    let odd = rng.int(0, i64::from((hi.max(lo) - lo) / 2)) as u32;
    let size = (lo + 2 * odd) as usize;
    let angle = rng.uniform(angle.0, angle.1);
    let direction = rng.uniform(direction.0, direction.1);
    filter2d(img, &motion_kernel(size, angle, direction), size)
}

/// OpenCV's 1-D Gaussian kernel for 8-bit images in its fixed-point form: taps in units
/// of 1/256 summing to 256. A non-positive `sigma` means OpenCV's default for the size
/// (and its exact binomial tables up to 7 taps).
pub fn cv_gaussian_taps(size: usize, sigma: f64) -> Vec<u32> {
    let size = size.max(1) | 1;
    if sigma <= 0.0 {
        let table: Option<&[u32]> = match size {
            1 => Some(&[256]),
            3 => Some(&[64, 128, 64]),
            5 => Some(&[16, 64, 96, 64, 16]),
            7 => Some(&[8, 28, 56, 72, 56, 28, 8]),
            _ => None,
        };
        if let Some(t) = table {
            return t.to_vec();
        }
    }
    let sigma = if sigma > 0.0 {
        sigma
    } else {
        0.3 * ((size as f64 - 1.0) * 0.5 - 1.0) + 0.8
    };
    let c = (size / 2) as f64;
    let raw: Vec<f64> = (0..size)
        .map(|i| (-(i as f64 - c).powi(2) / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f64 = raw.iter().sum();
    let mut taps: Vec<u32> = raw
        .iter()
        .map(|v| (v / total * 256.0).round() as u32)
        .collect();
    // Keep the sum exactly 256 by moving the rounding error onto the centre tap.
    let sum: i64 = taps.iter().map(|&t| i64::from(t)).sum();
    let mid = size / 2;
    taps[mid] = (i64::from(taps[mid]) + 256 - sum) as u32;
    taps
}

/// Separable blur with fixed-point taps (units of 1/256 each axis), exact integer sums,
/// rounded half up once at the end: OpenCV's bit-exact 8-bit `GaussianBlur`.
pub fn separable_fixed(img: &RgbImage, taps: &[u32]) -> RgbImage {
    let (w, h) = img.dimensions();
    let out = separable_sums(img, taps, taps, |a| ((a + (1 << 15)) >> 16).min(255) as u8);
    RgbImage::from_raw(w, h, out).expect("same size")
}

/// `Σ taps_y · Σ taps_x · pixel` over a reflect-101 neighbourhood, per channel, in `u32`
/// (the caller keeps the sums in range), finished by `finish`.
fn separable_sums(
    img: &RgbImage,
    taps_x: &[u32],
    taps_y: &[u32],
    finish: impl Fn(u32) -> u8,
) -> Vec<u8> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (hx, hy) = ((taps_x.len() / 2) as i64, (taps_y.len() / 2) as i64);
    let src = img.as_raw();
    let stride = w * 3;
    // Horizontal: each row padded by reflection, then one pass per tap over the row.
    let cols: Vec<usize> = (0..w as i64 + 2 * hx)
        .map(|i| reflect101(i - hx, w as i64))
        .collect();
    let mut padded = vec![0u32; cols.len() * 3];
    let mut rows = vec![0u32; src.len()];
    for y in 0..h {
        let row = &src[y * stride..(y + 1) * stride];
        for (p, &c) in padded.chunks_exact_mut(3).zip(&cols) {
            p.copy_from_slice(&[
                u32::from(row[c * 3]),
                u32::from(row[c * 3 + 1]),
                u32::from(row[c * 3 + 2]),
            ]);
        }
        let dst = &mut rows[y * stride..(y + 1) * stride];
        for (k, &t) in taps_x.iter().enumerate() {
            for (d, &v) in dst.iter_mut().zip(&padded[k * 3..k * 3 + stride]) {
                *d += t * v;
            }
        }
    }
    // Vertical: whole rows at a time.
    let mut out = vec![0u8; src.len()];
    let mut acc = vec![0u32; stride];
    for y in 0..h {
        acc.iter_mut().for_each(|a| *a = 0);
        for (k, &t) in taps_y.iter().enumerate() {
            let sy = reflect101(y as i64 + k as i64 - hy, h as i64);
            for (a, &r) in acc.iter_mut().zip(&rows[sy * stride..(sy + 1) * stride]) {
                *a += t * r;
            }
        }
        for (o, &a) in out[y * stride..(y + 1) * stride].iter_mut().zip(&acc) {
            *o = finish(a);
        }
    }
    out
}

/// OpenCV's `GaussianBlur(img, (size, size), sigma)` on an 8-bit image.
pub fn cv_gaussian_blur(img: &RgbImage, size: usize, sigma: f64) -> RgbImage {
    separable_fixed(img, &cv_gaussian_taps(size, sigma))
}

/// OpenCV's normalised box filter `blur(img, (size, size))` on 8-bit values: the window
/// sum divided by its area, rounded to nearest.
pub fn box_blur(img: &RgbImage, size: usize) -> RgbImage {
    let (w, h) = img.dimensions();
    let ones = vec![1u32; size.max(1)];
    let scale = 1.0 / (size * size) as f32;
    let out = separable_sums(img, &ones, &ones, |a| {
        (a as f32 * scale).round_ties_even().min(255.0) as u8
    });
    RgbImage::from_raw(w, h, out).expect("same size")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn horizontal_symmetric_kernel_is_the_middle_row() {
        let k = motion_kernel(5, 0.0, 0.0);
        for (i, v) in k.iter().enumerate() {
            let expect = if i / 5 == 2 { 0.2 } else { 0.0 };
            assert!((v - expect).abs() < 1e-6);
        }
    }

    #[test]
    fn gaussian_taps_sum_to_one() {
        for (k, s) in [(7, 7.0 / 6.0), (9, 1.5), (21, 3.5), (9, 0.0)] {
            assert_eq!(cv_gaussian_taps(k, s).iter().sum::<u32>(), 256);
        }
    }
}
