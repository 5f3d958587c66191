//! Antialiased bicubic resampling coefficients, as PIL's `Image.resize(BICUBIC)` and
//! PyTorch's `interpolate(mode="bicubic", antialias=True, align_corners=False)` compute them
//! (Keys cubic with a = −0.5, support widened by the downscale factor, normalised rows).

pub use sv_image::resample::Taps;
use sv_image::resample::{Filter, taps};

/// Bicubic antialiased taps for resizing an axis of `in_size` samples to `out_size`.
pub fn bicubic_aa_taps(in_size: usize, out_size: usize) -> Vec<Taps> {
    taps(in_size, out_size, Filter::Bicubic)
}

/// The resampling of an axis as a dense `[out_size, in_size]` row-major matrix.
pub fn bicubic_aa_matrix(in_size: usize, out_size: usize) -> Vec<f32> {
    let mut m = vec![0.0f32; out_size * in_size];
    for (i, taps) in bicubic_aa_taps(in_size, out_size).iter().enumerate() {
        for (k, w) in taps.weights.iter().enumerate() {
            m[i * in_size + taps.start + k] = *w as f32;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_identity() {
        let m = bicubic_aa_matrix(5, 5);
        for i in 0..5 {
            for j in 0..5 {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!(
                    (m[i * 5 + j] - want).abs() < 1e-7,
                    "{i},{j}: {}",
                    m[i * 5 + j]
                );
            }
        }
    }
}
