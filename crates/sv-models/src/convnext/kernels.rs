//! CPU kernels of the ConvNeXt-V2 block on channels-last `[B, H, W, C]` data: the 7×7
//! depthwise convolution fused with the LayerNorm after it, fc1's bias + GELU fused with
//! the GRN statistics, and the whole block in place. Off the Flex CPU backend or on an
//! autodiff device they run as burn's ops instead (the convolution as
//! `depthwise::depthwise_conv7`), so training gets gradients, the GPUs run their own
//! kernels, and CPU inference gets the fast path.

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use super::config::{DW_KERNEL, GRN_EPS};
use super::depthwise::depthwise_conv7;
use super::grn::grn;
use crate::fast_ops::{bias_gelu, gelu_erf};
use crate::layers::layer_norm_f32;
use crate::precision::{cast_to, f32};

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
    if !crate::flex_ops::is_flex_f32(&x) {
        // Training and the GPUs: one operation with its own backward pass where the
        // backend has it, else burn's grouped convolution.
        let y = depthwise_conv7(x.clone(), weight.clone(), bias.clone()).unwrap_or_else(|| {
            let nchw = x.permute([0, 3, 1, 2]);
            let options = ConvOptions::new([1, 1], [PAD, PAD], [1, 1], c);
            conv2d(nchw, weight, Some(bias), options).permute([0, 2, 3, 1])
        });
        return layer_norm_f32(y, gamma, beta, eps);
    }
    let w_chw = taps_by_position(&to_vec(weight.reshape([c * DW_KERNEL * DW_KERNEL])), c);
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

/// Depthwise weights `[C, 7·7]` (PyTorch's `[C, 1, 7, 7]` flattened) rearranged as
/// `[7·7, C]`, so that one tap's weights for a block of channels are contiguous.
fn taps_by_position(weights: &[f32], c: usize) -> Vec<f32> {
    let k = DW_KERNEL * DW_KERNEL;
    let mut taps = vec![0f32; k * c];
    for ch in 0..c {
        for t in 0..k {
            taps[t * c + ch] = weights[ch * k + t];
        }
    }
    taps
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
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports the features the function is compiled for.
            unsafe { dw_row_avx512(p, image, y, out) };
            return;
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            unsafe { dw_row_avx2(p, image, y, out) };
            return;
        }
    }
    dw_row_portable::<false>(p, image, y, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn dw_row_avx512(p: &DwParams, image: &[f32], y: usize, out: &mut [f32]) {
    dw_row_portable::<true>(p, image, y, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dw_row_avx2(p: &DwParams, image: &[f32], y: usize, out: &mut [f32]) {
    dw_row_portable::<true>(p, image, y, out);
}

/// `acc + a·b`, fused when the caller was compiled with FMA.
#[inline(always)]
fn madd<const FMA: bool>(acc: f32, a: f32, b: f32) -> f32 {
    if FMA { a.mul_add(b, acc) } else { acc + a * b }
}

/// Pixels per register block of the convolution.
const XB: usize = 4;

/// One output row `[W, C]`: the convolution into registers, then the LayerNorm of each
/// pixel over its channels. Away from the left and right borders, `XB` pixels of one
/// channel block are computed together so that each tap's weights are loaded once.
#[inline(always)]
fn dw_row_portable<const FMA: bool>(p: &DwParams, image: &[f32], y: usize, out: &mut [f32]) {
    let (w, c) = (p.w, p.c);
    let mut x = 0;
    while x < w {
        if x >= PAD && x + XB + PAD <= w {
            let mut c0 = 0;
            while c0 + LANES <= c {
                dw_interior::<FMA>(p, image, y, x, c0, &mut out[x * c..(x + XB) * c]);
                c0 += LANES;
            }
            for j in 0..XB {
                dw_pixel::<FMA>(
                    p,
                    image,
                    y,
                    x + j,
                    c0,
                    &mut out[(x + j) * c..(x + j + 1) * c],
                );
            }
            x += XB;
        } else {
            dw_pixel::<FMA>(p, image, y, x, 0, &mut out[x * c..(x + 1) * c]);
            x += 1;
        }
    }
    for pixel in out.chunks_exact_mut(c) {
        normalise(pixel, p.gamma, p.beta, p.eps);
    }
}

/// Rows of the kernel that fall inside the image for output row `y`.
#[inline(always)]
fn ky_range(p: &DwParams, y: usize) -> std::ops::Range<usize> {
    PAD.saturating_sub(y)..DW_KERNEL.min(p.h + PAD - y)
}

/// Channels `c0..c0+LANES` of pixels `x..x+XB`, all of whose columns are inside the image.
#[inline(always)]
fn dw_interior<const FMA: bool>(
    p: &DwParams,
    image: &[f32],
    y: usize,
    x: usize,
    c0: usize,
    out: &mut [f32],
) {
    let (w, c) = (p.w, p.c);
    let mut acc = [[0f32; LANES]; XB];
    for a in acc.iter_mut() {
        a.copy_from_slice(&p.bias[c0..c0 + LANES]);
    }
    for ky in ky_range(p, y) {
        let iy = y + ky - PAD;
        let row = &image[iy * w * c..(iy + 1) * w * c];
        for kx in 0..DW_KERNEL {
            let tap: &[f32; LANES] = p.taps[(ky * DW_KERNEL + kx) * c + c0..][..LANES]
                .try_into()
                .expect("LANES taps");
            for (j, a) in acc.iter_mut().enumerate() {
                let ix = x + j + kx - PAD;
                let src: &[f32; LANES] = row[ix * c + c0..][..LANES]
                    .try_into()
                    .expect("LANES inputs");
                for l in 0..LANES {
                    a[l] = madd::<FMA>(a[l], src[l], tap[l]);
                }
            }
        }
    }
    for (j, a) in acc.iter().enumerate() {
        out[j * c + c0..j * c + c0 + LANES].copy_from_slice(a);
    }
}

/// Channels `c0..` of one pixel, with any border.
#[inline(always)]
fn dw_pixel<const FMA: bool>(
    p: &DwParams,
    image: &[f32],
    y: usize,
    x: usize,
    c0: usize,
    pixel: &mut [f32],
) {
    let c = p.c;
    let mut c0 = c0;
    while c0 + LANES <= c {
        let mut acc = [0f32; LANES];
        acc.copy_from_slice(&p.bias[c0..c0 + LANES]);
        dw_taps::<FMA, LANES>(p, image, y, x, c0, &mut acc);
        pixel[c0..c0 + LANES].copy_from_slice(&acc);
        c0 += LANES;
    }
    // Remaining channels, in blocks of 1 (rare: widths that are not multiples of 16).
    while c0 < c {
        let mut acc = [p.bias[c0]];
        dw_taps::<FMA, 1>(p, image, y, x, c0, &mut acc);
        pixel[c0] = acc[0];
        c0 += 1;
    }
}

/// Accumulate the in-image taps of channels `c0..c0+N` of pixel (`y`, `x`) into `acc`.
#[inline(always)]
fn dw_taps<const FMA: bool, const N: usize>(
    p: &DwParams,
    image: &[f32],
    y: usize,
    x: usize,
    c0: usize,
    acc: &mut [f32; N],
) {
    let (w, c) = (p.w, p.c);
    let kx_lo = PAD.saturating_sub(x);
    let kx_hi = DW_KERNEL.min(w + PAD - x);
    for ky in ky_range(p, y) {
        let iy = y + ky - PAD;
        let in_row = &image[iy * w * c..(iy + 1) * w * c];
        for kx in kx_lo..kx_hi {
            let ix = x + kx - PAD;
            let src: &[f32; N] = in_row[ix * c + c0..][..N].try_into().expect("N inputs");
            let tap: &[f32; N] = p.taps[(ky * DW_KERNEL + kx) * c + c0..][..N]
                .try_into()
                .expect("N taps");
            for l in 0..N {
                acc[l] = madd::<FMA>(acc[l], src[l], tap[l]);
            }
        }
    }
}

/// LayerNorm of one pixel's channels in place (two-pass mean and variance, as PyTorch),
/// with lane-wise partial sums so that the reductions vectorise.
#[inline(always)]
fn normalise(v: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = v.len() as f32;
    let mean = lane_sum(v, |a| a) / n;
    let var = lane_sum(v, |a| (a - mean) * (a - mean)) / n;
    let inv = 1.0 / (var + eps).sqrt();
    for ((a, g), b) in v.iter_mut().zip(gamma).zip(beta) {
        *a = (*a - mean) * inv * g + b;
    }
}

/// `Σ f(v_i)` accumulated in `LANES` independent partial sums.
#[inline(always)]
fn lane_sum(v: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0f32; LANES];
    let mut chunks = v.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            lanes[l] += f(c[l]);
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|&a| f(a)).sum();
    lanes.iter().sum::<f32>() + tail
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
    if !crate::flex_ops::is_flex_f32(&h) {
        let x = bias_gelu(h, bias).reshape([batch, n, c]);
        // One operation with its own backward pass where the backend has it (f32).
        if let Some(y) = grn(x.clone(), gamma.clone(), beta.clone()) {
            return y.reshape([rows, c]);
        }
        // The norm over the pixels in f32 whatever the activations' precision.
        let gx = f32(x.clone()).powi_scalar(2).sum_dim(1).sqrt(); // [B, 1, C]
        let nx = cast_to(gx.clone() / (gx.mean_dim(2) + GRN_EPS), x.dtype()); // [B, 1, C]
        let y = x.clone() + beta.unsqueeze() + gamma.unsqueeze() * (x * nx);
        return y.reshape([rows, c]);
    }
    let bias = bias.map(to_vec).unwrap_or_else(|| vec![0.0; c]);
    let (gamma, beta) = (to_vec(gamma), to_vec(beta));
    let mut data = h.into_data().convert::<f32>();
    let values = data
        .as_mut_slice::<f32>()
        .expect("f32 data after conversion");
    values
        .par_chunks_mut(n * c)
        .for_each(|image| gelu_grn_image(image, &bias, &gamma, &beta));
    Tensor::from_data(data, &device)
}

/// `grn(gelu(h + bias))` in place on one image's `[N, C]` activations.
pub(crate) fn gelu_grn_image(h: &mut [f32], bias: &[f32], gamma: &[f32], beta: &[f32]) {
    let c = bias.len();
    let n = h.len() / c.max(1);
    // Pass 1: bias + GELU with per-block sums of squares per channel.
    let block_len = (16 * 1024 / c.max(1)).clamp(1, n.max(1)) * c;
    let partial: Vec<Vec<f32>> = h
        .par_chunks_mut(block_len)
        .map(|block| gelu_sumsq(block, bias))
        .collect();
    // Nx, then the per-channel scale 1 + γ·Nx.
    let mut gx = vec![0f32; c];
    for b in &partial {
        for (g, s) in gx.iter_mut().zip(b) {
            *g += s;
        }
    }
    gx.iter_mut().for_each(|g| *g = g.sqrt());
    let mean = gx.iter().sum::<f32>() / c as f32;
    let scale: Vec<f32> = gx
        .iter()
        .zip(gamma)
        .map(|(g, gm)| 1.0 + gm * (g / (mean + GRN_EPS)))
        .collect();
    // Pass 2: x·(1 + γ·Nx) + β.
    h.par_chunks_mut(block_len)
        .for_each(|block| scale_shift(block, &scale, beta));
}

fn gelu_sumsq(block: &mut [f32], bias: &[f32]) -> Vec<f32> {
    let mut sums = vec![0f32; bias.len()];
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports the features the function is compiled for.
            unsafe { gelu_sumsq_avx512(block, bias, &mut sums) };
            return sums;
        }
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
#[target_feature(enable = "avx512f,avx2,fma")]
fn gelu_sumsq_avx512(block: &mut [f32], bias: &[f32], sums: &mut [f32]) {
    gelu_sumsq_portable(block, bias, sums);
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

/// The whole ConvNeXt-V2 block in place on channels-last `x` `[B, H, W, C]`, one image
/// at a time: depthwise conv + LayerNorm into a scratch buffer, fc1, GELU + GRN, then fc2
/// accumulated straight into the image's rows (the residual). Gives `x` back untouched
/// when the tensors are not plain f32 Flex tensors (training, other backends).
pub(crate) fn block_inplace(
    x: Tensor<4>,
    block: &super::model::ConvNextBlock,
) -> Result<Tensor<4>, Box<Tensor<4>>> {
    use crate::flex_ops::{flex, gemm_rows, values};
    let params = [
        flex(&block.dw_bias.val()),
        flex(&block.norm.gamma.val()),
        flex(&block.norm.beta.val()),
        block.fc1.bias.as_ref().and_then(|b| flex(&b.val())),
        flex(&block.grn_gamma.val()),
        flex(&block.grn_beta.val()),
        block.fc2.bias.as_ref().and_then(|b| flex(&b.val())),
    ];
    let (w1, w2, dw) = (
        flex(&block.fc1.weight.val()),
        flex(&block.fc2.weight.val()),
        flex(&block.dw_weight.val()),
    );
    if flex(&x).is_none() || params.iter().any(Option::is_none) {
        return Err(Box::new(x));
    }
    let (Some(w1), Some(w2), Some(dw)) = (w1, w2, dw) else {
        return Err(Box::new(x));
    };
    let [dw_b, gamma, beta, b1, grn_g, grn_b, b2] = params.map(|p| p.expect("checked"));
    let [_, h, w, c] = x.dims();
    let hidden = block.fc1.weight.dims()[1];
    let Ok(mut fx) = x.try_into_primitive::<burn_flex::Flex>() else {
        unreachable!("checked to be a Flex tensor");
    };
    let taps = taps_by_position(values(&dw), c);
    let dw_params = DwParams {
        h,
        w,
        c,
        taps: &taps,
        bias: values(&dw_b),
        gamma: values(&gamma),
        beta: values(&beta),
        eps: block.norm.eps as f32,
    };
    let (w1, w2) = (values(&w1), values(&w2));
    let (b1, grn_g, grn_b, b2) = (values(&b1), values(&grn_g), values(&grn_b), values(&b2));
    let pixels = h * w;
    // Scratch kept per thread across blocks and calls: no page faults on fresh buffers.
    thread_local! {
        static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> = const {
            std::cell::RefCell::new((Vec::new(), Vec::new()))
        };
    }
    let (mut normed, mut act) = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    normed.resize(pixels * c, 0.0);
    act.resize(pixels * hidden, 0.0);
    let (start, end) = fx.layout().contiguous_offsets().expect("contiguous");
    let xs = &mut fx.storage_mut::<f32>()[start..end];
    for image in xs.chunks_exact_mut(pixels * c) {
        {
            let src: &[f32] = image;
            normed
                .par_chunks_mut(w * c)
                .enumerate()
                .for_each(|(y, row)| dw_row(&dw_params, src, y, row));
        }
        // SAFETY: `act` holds `pixels` rows of `hidden`; `image` holds `pixels` rows of `c`.
        unsafe {
            gemm_rows(
                &normed,
                w1,
                act.as_mut_ptr(),
                hidden,
                (pixels, c, hidden),
                false,
                true,
            );
        }
        gelu_grn_image(&mut act, b1, grn_g, grn_b);
        image
            .par_chunks_mut(c * 64)
            .for_each(|rows| rows.chunks_exact_mut(c).for_each(|r| add(r, b2)));
        // SAFETY: as above; fc2 accumulates into the residual rows.
        unsafe {
            gemm_rows(
                &act,
                w2,
                image.as_mut_ptr(),
                c,
                (pixels, hidden, c),
                true,
                true,
            );
        }
    }
    Ok(Tensor::from_primitive::<burn_flex::Flex>(fx))
}

fn add(row: &mut [f32], bias: &[f32]) {
    row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
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
        for (h, w, c) in [(5, 9, 40), (8, 8, 16), (2, 3, 7), (12, 17, 40), (9, 14, 32)] {
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
