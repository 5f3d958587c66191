//! Antialiased bicubic resampling coefficients, as PIL's `Image.resize(BICUBIC)` and
//! PyTorch's `interpolate(mode="bicubic", antialias=True, align_corners=False)` compute them
//! (Keys cubic with a = −0.5, support widened by the downscale factor, normalised rows).

/// The Keys cubic convolution kernel with a = −0.5.
fn cubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
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
pub fn bicubic_aa_taps(in_size: usize, out_size: usize) -> Vec<Taps> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = 2.0 * filter_scale;
    (0..out_size)
        .map(|i| {
            let center = (i as f64 + 0.5) * scale;
            // `(int)` in C truncates toward zero, then both clamp at 0.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let mut weights: Vec<f64> = (xmin..xmax)
                .map(|x| cubic((x as f64 - center + 0.5) / filter_scale))
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

    #[test]
    fn rows_sum_to_one() {
        for (a, b) in [(37, 16), (4, 5), (4, 3), (300, 256)] {
            for t in bicubic_aa_taps(a, b) {
                let s: f64 = t.weights.iter().sum();
                assert!((s - 1.0).abs() < 1e-12);
            }
        }
    }
}
