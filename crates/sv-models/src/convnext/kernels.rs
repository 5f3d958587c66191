//! CPU kernels of the ConvNeXt-V2 block on channels-last `[B, H, W, C]` data: the 7×7
//! depthwise convolution fused with the LayerNorm after it, and fc1's bias + GELU fused
//! with the GRN statistics. On an autodiff device both fall back to burn's
//! differentiable ops, so training gets gradients and inference gets the fast path.

use burn::tensor::module::{conv2d, layer_norm};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use super::config::{DW_KERNEL, GRN_EPS};
use crate::fast_ops::{bias_gelu, gelu_erf};

const PAD: usize = DW_KERNEL / 2;
/// Channels per register block of the convolution.
const LANES: usize = 16;

fn to_vec(t: Tensor<1>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec()
        .unwrap_or_default()
}

/// `layer_norm(depthwise_conv7x7(x) + bias)` over channels-last `x` `[B, H, W, C]`, with
/// `weight` `[C, 1, 7, 7]` (PyTorch layout), zero padding 3, stride 1.
pub fn dwconv7_norm(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    eps: f64,
) -> Tensor<4> {
    let device = x.device();
    let [b, h, w, c] = x.dims();
    if device.is_autodiff() {
        let nchw = x.permute([0, 3, 1, 2]);
        let y = conv2d(
            nchw,
            weight,
            Some(bias),
            ConvOptions::new([1, 1], [PAD, PAD], [1, 1], c),
        );
        return layer_norm(y.permute([0, 2, 3, 1]), gamma, Some(beta), eps);
    }
    // Taps as [7·7, C] so that one tap's weights for a channel block are contiguous.
    let w_chw = weight
        .reshape([c, DW_KERNEL * DW_KERNEL])
        .transpose()
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default();
    let (bias, gamma, beta) = (to_vec(bias), to_vec(gamma), to_vec(beta));
    let input = x
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default();
    let mut out = vec![0f32; b * h * w * c];
    let params = DwParams {
        h,
        w,
        c,
        taps: &w_chw,
        bias: &bias,
        gamma: &gamma,
        beta: &beta,
        eps: eps as f32,
    };
    out.par_chunks_mut(w * c)
        .enumerate()
        .for_each(|(row, out_row)| {
            let (img, y) = (row / h, row % h);
            let image = &input[img * h * w * c..(img + 1) * h * w * c];
            dw_row(&params, image, y, out_row);
        });
    Tensor::from_data(TensorData::new(out, [b, h, w, c]), &device)
}

struct DwParams<'a> {
    h: usize,
    w: usize,
    c: usize,
    taps: &'a [f32],
    bias: &'a [f32],
    gamma: &'a [f32],
    beta: &'a [f32],
    eps: f32,
}

fn dw_row(p: &DwParams, image: &[f32], y: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features the function is compiled for.
            unsafe { dw_row_avx2(p, image, y, out) };
            return;
        }
    }
    dw_row_portable(p, image, y, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dw_row_avx2(p: &DwParams, image: &[f32], y: usize, out: &mut [f32]) {
    dw_row_portable(p, image, y, out);
}

/// One output row `[W, C]`: the convolution into registers, channel block by channel
/// block, then the LayerNorm of each pixel over its channels.
#[inline(always)]
fn dw_row_portable(p: &DwParams, image: &[f32], y: usize, out: &mut [f32]) {
    let (h, w, c) = (p.h, p.w, p.c);
    let ky_lo = PAD.saturating_sub(y);
    let ky_hi = DW_KERNEL.min(h + PAD - y);
    for x in 0..w {
        let kx_lo = PAD.saturating_sub(x);
        let kx_hi = DW_KERNEL.min(w + PAD - x);
        let pixel = &mut out[x * c..(x + 1) * c];
        let mut c0 = 0;
        while c0 < c {
            let n = LANES.min(c - c0);
            let mut acc = [0f32; LANES];
            acc[..n].copy_from_slice(&p.bias[c0..c0 + n]);
            for ky in ky_lo..ky_hi {
                let iy = y + ky - PAD;
                let in_row = &image[iy * w * c..(iy + 1) * w * c];
                for kx in kx_lo..kx_hi {
                    let ix = x + kx - PAD;
                    let src = &in_row[ix * c + c0..ix * c + c0 + n];
                    let tap = &p.taps[(ky * DW_KERNEL + kx) * c + c0..][..n];
                    if n == LANES {
                        for l in 0..LANES {
                            acc[l] += src[l] * tap[l];
                        }
                    } else {
                        for l in 0..n {
                            acc[l] += src[l] * tap[l];
                        }
                    }
                }
            }
            pixel[c0..c0 + n].copy_from_slice(&acc[..n]);
            c0 += n;
        }
        normalise(pixel, p.gamma, p.beta, p.eps);
    }
}

/// LayerNorm of one pixel's channels in place (two-pass mean and variance, as PyTorch).
#[inline(always)]
fn normalise(v: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = v.len() as f32;
    let mean = v.iter().sum::<f32>() / n;
    let var = v.iter().map(|a| (a - mean) * (a - mean)).sum::<f32>() / n;
    let inv = 1.0 / (var + eps).sqrt();
    for ((a, g), b) in v.iter_mut().zip(gamma).zip(beta) {
        *a = (*a - mean) * inv * g + b;
    }
}

/// `grn(gelu(h + bias))` for fc1's output `h` `[B·N, C]` of `batch` images of N pixels:
/// GRN is `x + β + γ·(x·Nx)`, Nx = ‖x‖₂ over the pixels divided by its channel mean + 1e-6.
pub fn bias_gelu_grn(
    h: Tensor<2>,
    bias: Option<Tensor<1>>,
    batch: usize,
    gamma: Tensor<1>,
    beta: Tensor<1>,
) -> Tensor<2> {
    let device = h.device();
    let [rows, c] = h.dims();
    let n = rows / batch.max(1);
    if device.is_autodiff() {
        let x = bias_gelu(h, bias).reshape([batch, n, c]);
        let gx = x.clone().powi_scalar(2).sum_dim(1).sqrt(); // [B, 1, C]
        let nx = gx.clone() / (gx.mean_dim(2) + GRN_EPS); // [B, 1, C]
        let y = x.clone() + beta.unsqueeze() + gamma.unsqueeze() * (x * nx);
        return y.reshape([rows, c]);
    }
    let bias = bias.map(to_vec).unwrap_or_else(|| vec![0.0; c]);
    let (gamma, beta) = (to_vec(gamma), to_vec(beta));
    let mut data = h.into_data().convert::<f32>();
    let values = data
        .as_mut_slice::<f32>()
        .expect("f32 data after conversion");
    // Pass 1: bias + GELU in place, with per-block sums of squares per channel. Blocks
    // never straddle two images.
    let block_len = (16 * 1024 / c.max(1)).clamp(1, n.max(1)) * c;
    let bias = &bias;
    let partial: Vec<Vec<f32>> = values
        .par_chunks_mut(n * c)
        .flat_map(|image| {
            image
                .par_chunks_mut(block_len)
                .map(move |block| gelu_sumsq(block, bias))
        })
        .collect();
    let blocks_per_image = (n * c).div_ceil(block_len);
    // Per image: Nx, then the per-channel scale 1 + γ·Nx.
    let scales: Vec<Vec<f32>> = partial
        .chunks(blocks_per_image)
        .map(|blocks| {
            let mut gx = vec![0f32; c];
            for b in blocks {
                for (g, s) in gx.iter_mut().zip(b) {
                    *g += s;
                }
            }
            gx.iter_mut().for_each(|g| *g = g.sqrt());
            let mean = gx.iter().sum::<f32>() / c as f32;
            gx.iter()
                .zip(&gamma)
                .map(|(g, gm)| 1.0 + gm * (g / (mean + GRN_EPS)))
                .collect()
        })
        .collect();
    // Pass 2: x·(1 + γ·Nx) + β.
    values
        .par_chunks_mut(n * c)
        .zip(scales.par_iter())
        .for_each(|(image, scale)| {
            image
                .par_chunks_mut(block_len)
                .for_each(|block| scale_shift(block, scale, &beta));
        });
    Tensor::from_data(data, &device)
}

fn gelu_sumsq(block: &mut [f32], bias: &[f32]) -> Vec<f32> {
    let mut sums = vec![0f32; bias.len()];
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features the function is compiled for.
            unsafe { gelu_sumsq_avx2(block, bias, &mut sums) };
            return sums;
        }
    }
    gelu_sumsq_portable(block, bias, &mut sums);
    sums
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gelu_sumsq_avx2(block: &mut [f32], bias: &[f32], sums: &mut [f32]) {
    gelu_sumsq_portable(block, bias, sums);
}

#[inline(always)]
fn gelu_sumsq_portable(block: &mut [f32], bias: &[f32], sums: &mut [f32]) {
    for row in block.chunks_exact_mut(bias.len()) {
        for ((v, b), s) in row.iter_mut().zip(bias).zip(sums.iter_mut()) {
            let g = gelu_erf(*v + b);
            *v = g;
            *s += g * g;
        }
    }
}

fn scale_shift(block: &mut [f32], scale: &[f32], shift: &[f32]) {
    for row in block.chunks_exact_mut(scale.len()) {
        for ((v, s), b) in row.iter_mut().zip(scale).zip(shift) {
            *v = *v * s + b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    #[test]
    fn fast_dwconv_norm_matches_burns_conv_and_norm() {
        // Odd sizes and a channel count that is not a multiple of the register block.
        for (h, w, c) in [(5, 9, 40), (8, 8, 16), (2, 3, 7)] {
            let device = Device::default();
            let ad = device.clone().autodiff();
            let x: Tensor<4> =
                Tensor::random([2, h, w, c], Distribution::Normal(0.0, 1.0), &device);
            let wt: Tensor<4> =
                Tensor::random([c, 1, 7, 7], Distribution::Normal(0.0, 0.3), &device);
            let bias: Tensor<1> = Tensor::random([c], Distribution::Normal(0.0, 0.3), &device);
            let g: Tensor<1> = Tensor::random([c], Distribution::Normal(1.0, 0.2), &device);
            let be: Tensor<1> = Tensor::random([c], Distribution::Normal(0.0, 0.2), &device);
            let fast = dwconv7_norm(
                x.clone(),
                wt.clone(),
                bias.clone(),
                g.clone(),
                be.clone(),
                1e-6,
            );
            let slow = dwconv7_norm(
                x.to_device(&ad),
                wt.to_device(&ad),
                bias.to_device(&ad),
                g.to_device(&ad),
                be.to_device(&ad),
                1e-6,
            );
            let d = max_diff(fast, slow.to_device(&device));
            assert!(d < 1e-4, "{h}x{w}x{c}: max |Δ| = {d}");
        }
    }

    #[test]
    fn fast_gelu_grn_matches_the_differentiable_path() {
        let device = Device::default();
        let ad = device.clone().autodiff();
        // 3 images of 37 pixels: blocks do not divide the pixels evenly.
        for c in [24, 1000] {
            let h: Tensor<2> = Tensor::random([3 * 37, c], Distribution::Normal(0.0, 2.0), &device);
            let b: Tensor<1> = Tensor::random([c], Distribution::Normal(0.0, 0.5), &device);
            let g: Tensor<1> = Tensor::random([c], Distribution::Normal(0.0, 0.5), &device);
            let be: Tensor<1> = Tensor::random([c], Distribution::Normal(0.0, 0.5), &device);
            let fast = bias_gelu_grn(h.clone(), Some(b.clone()), 3, g.clone(), be.clone());
            let slow = bias_gelu_grn(
                h.to_device(&ad),
                Some(b.to_device(&ad)),
                3,
                g.to_device(&ad),
                be.to_device(&ad),
            );
            let d = max_diff(fast, slow.to_device(&device));
            assert!(d < 1e-4, "C={c}: max |Δ| = {d}");
        }
    }
}
