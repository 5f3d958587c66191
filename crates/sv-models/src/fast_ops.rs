//! CPU fast paths for element-wise work that burn's Flex backend runs one element at a
//! time. `bias_gelu` works on tensors off the autodiff graph (inference); training
//! reaches the same erf through `exact_gelu`, whose backward uses
//! `gelu_erf_derivative`.

use burn::tensor::Tensor;
use rayon::prelude::*;

/// Elements per parallel work item.
const CHUNK: usize = 16 * 1024;

/// `gelu(x + bias)` with exact (erf) GELU, bias broadcast over the last axis.
///
/// On the Flex CPU backend outside autodiff, the sum and activation run in one pass over
/// the buffer, in parallel, with a vectorisable erf (Abramowitz–Stegun 7.1.26, |error| ≤
/// 1.5e-7) instead of scalar libm calls. Elsewhere (training, GPUs) this is burn's
/// `x + bias` then [`crate::exact_gelu::exact_gelu`].
pub fn bias_gelu<const D: usize>(x: Tensor<D>, bias: Option<Tensor<1>>) -> Tensor<D> {
    let device = x.device();
    if !crate::flex_ops::is_flex_f32(&x) {
        let x = match bias {
            Some(b) => x + b.unsqueeze(),
            None => x,
        };
        return crate::exact_gelu::exact_gelu(x);
    }
    let dims = x.dims();
    let width = dims[D - 1];
    let bias: Vec<f32> = match bias {
        Some(b) => b
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .unwrap_or_default(),
        None => vec![0.0; width],
    };
    let mut data = x.into_data().convert::<f32>();
    let values = data
        .as_mut_slice::<f32>()
        .expect("f32 data after conversion");
    let rows_per_chunk = (CHUNK / width.max(1)).max(1);
    values
        .par_chunks_mut(rows_per_chunk * width)
        .for_each(|chunk| bias_gelu_rows(chunk, &bias));
    Tensor::from_data(data, &device)
}

fn bias_gelu_rows(values: &mut [f32], bias: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports the features the function is compiled for.
            unsafe { bias_gelu_rows_avx512(values, bias) };
            return;
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features the function is compiled for.
            unsafe { bias_gelu_rows_avx2(values, bias) };
            return;
        }
    }
    bias_gelu_rows_portable(values, bias);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn bias_gelu_rows_avx512(values: &mut [f32], bias: &[f32]) {
    bias_gelu_rows_portable(values, bias);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn bias_gelu_rows_avx2(values: &mut [f32], bias: &[f32]) {
    bias_gelu_rows_portable(values, bias);
}

#[inline(always)]
fn bias_gelu_rows_portable(values: &mut [f32], bias: &[f32]) {
    for row in values.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v = gelu_erf(*v + b);
        }
    }
}

/// Exact GELU `x·Φ(x)`, branch-free so that loops over it vectorise.
#[inline(always)]
pub fn gelu_erf(x: f32) -> f32 {
    x * normal_cdf(x)
}

/// The derivative of exact GELU, `Φ(x) + x·φ(x)`, branch-free like [`gelu_erf`].
#[inline(always)]
pub fn gelu_erf_derivative(x: f32) -> f32 {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    normal_cdf(x) + x * INV_SQRT_2PI * exp_nonpositive(-0.5 * x * x)
}

/// `Φ(x)`, the standard normal distribution function.
#[inline(always)]
fn normal_cdf(x: f32) -> f32 {
    // Φ(x) = ½(1 + erf(x/√2)); erf(z) = 1 − poly(t)·exp(−z²), t = 1/(1 + p|z|), z ≥ 0.
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_8,
        -1.453_152_1,
        1.061_405_4,
    ];
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + P * z);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let tail = 0.5 * poly * exp_nonpositive(-z * z); // P(|X| > |x|) / 2 … = 1 − Φ(|x|)
    // Φ(x) = 1 − tail for x ≥ 0 and tail for x < 0, written without a branch.
    0.5 + (0.5 - tail).copysign(x)
}

/// `exp(v)` for `v ≤ 0` (clamped at −87, where it is below f32's normal range anyway):
/// range reduction by ln 2 and a degree-6 polynomial, relative error ≈ 2e-7.
#[inline(always)]
pub(crate) fn exp_nonpositive(v: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5·2²³: adding and subtracting rounds to an integer
    let v = if v < -87.0 { -87.0 } else { v };
    let shifted = v * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = v - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // n as an integer, read from the mantissa of `shifted` (no float-to-int conversion).
    let n_int = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(n_int.wrapping_add(127) << 23);
    p * scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::activation;

    #[test]
    fn gelu_matches_the_exact_definition() {
        let mut worst = 0.0f64;
        for i in -8000..=8000 {
            let x = i as f64 / 1000.0;
            let want = 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2));
            let got = gelu_erf(x as f32) as f64;
            worst = worst.max((got - want).abs());
        }
        assert!(worst < 1e-6, "max |Δ| = {worst:e}");
    }

    #[test]
    fn fused_bias_gelu_matches_burns_gelu_on_both_paths() {
        use burn::tensor::{Device, Distribution};
        for device in [Device::default(), Device::default().autodiff()] {
            let x: Tensor<2> = Tensor::random([37, 96], Distribution::Normal(0.0, 3.0), &device);
            let b: Tensor<1> = Tensor::random([96], Distribution::Normal(0.0, 1.0), &device);
            let want = activation::gelu(x.clone() + b.clone().unsqueeze());
            let got = bias_gelu(x, Some(b));
            let diff: f32 = (got - want).abs().max().into_scalar();
            assert!(diff < 1e-5, "max |Δ| = {diff}");
        }
    }

    #[test]
    fn extremes_are_finite() {
        assert!(gelu_erf(-100.0).abs() < 1e-30);
        assert_eq!(gelu_erf(100.0), 100.0);
        assert_eq!(gelu_erf(0.0), 0.0);
        assert!(gelu_erf(f32::MIN).abs() < 1e-30);
        assert_eq!(gelu_erf(f32::MAX), f32::MAX);
    }

    #[test]
    fn exp_is_accurate_on_its_range() {
        for i in 0..=8700 {
            let v = -(i as f32) / 100.0;
            let want = (v as f64).exp();
            let got = exp_nonpositive(v) as f64;
            assert!(
                (got - want).abs() <= 4e-7 * want + 1e-38,
                "exp({v}) = {got} vs {want}"
            );
        }
    }
}
