//! ConvNeXt-V2's Global Response Normalisation as one backend operation with its own
//! backward pass. Composed from burn's ops under autodiff it is ten operations, five
//! of them over the block's widest activations (4·C channels), several keeping full-size
//! tensors for the backward pass; this one keeps only its input and makes two
//! passes each way. On Flex both directions are fused kernels; other backends compose
//! them from their own ops.
//!
//! Per image, over its `N` pixels and `C` channels: `G_c = ‖x_{·c}‖₂`,
//! `Nx_c = G_c / (mean_c G + ε)`, `y = x·(1 + γ·Nx) + β`.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Shape, TensorMetadata};
use burn::tensor::{DType, Tensor};
use rayon::prelude::*;

use super::config::GRN_EPS;
use crate::device::runs_extensions;
use crate::flex_ops::{flex_tensor, row_major, sum_blocks, values};

/// Backends with GRN as one differentiable operation: Flex (fused kernels), the cubecl
/// GPU backends and autodiff over either. The default bodies compose the backend's ops.
#[burn::backend::backend_extension(Flex, Autodiff: cfg(feature = "train"), Cube: cfg(feature = "gpu"))]
pub trait GrnBackend: Backend {
    /// GRN of `x` `[B, N, C]` with `gamma` and `beta` `[C]`.
    fn grn(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        composed::forward::<Self>(x, gamma, beta)
    }

    /// The gradients with respect to `x`, `gamma` and `beta` of [`Self::grn`] at `x`,
    /// given the gradient `grad` of its output.
    fn grn_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        composed::backward::<Self>(x, gamma, grad)
    }
}

/// GRN of f32 `x` `[B, N, C]` as one differentiable operation where the backend has it
/// (see the module documentation); `None` elsewhere (and for other precisions), where
/// the caller composes burn's ops.
pub fn grn(x: Tensor<3>, gamma: Tensor<1>, beta: Tensor<1>) -> Option<Tensor<3>> {
    let c = x.dims()[2];
    let fits = gamma.dims() == [c] && beta.dims() == [c];
    let f32s = [x.dtype(), gamma.dtype(), beta.dtype()] == [DType::F32; 3];
    if !fits || !f32s || !runs_extensions(&x.device()) {
        return None;
    }
    let y = <Dispatch as GrnBackend>::grn(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
    );
    Some(Tensor::from_dispatch(y))
}

/// GRN from the backend's own operations, both directions.
pub(crate) mod composed {
    use super::*;

    /// `(G [B, 1, C], M [B, 1, 1])`: the per-image channel norms and their mean plus ε.
    fn norms<B: Backend>(x: FloatTensor<B>) -> (FloatTensor<B>, FloatTensor<B>) {
        let g = B::float_sqrt(B::float_sum_dim(B::float_mul(x.clone(), x), 1));
        let m = B::float_add_scalar(B::float_mean_dim(g.clone(), 2), GRN_EPS.into());
        (g, m)
    }

    fn channel_vector<B: Backend>(v: FloatTensor<B>, c: usize) -> FloatTensor<B> {
        B::float_reshape(v, Shape::new([1, 1, c]))
    }

    /// `x·(1 + γ·G/M) + β`.
    pub(crate) fn forward<B: Backend>(
        x: FloatTensor<B>,
        gamma: FloatTensor<B>,
        beta: FloatTensor<B>,
    ) -> FloatTensor<B> {
        let c = x.shape()[2];
        let (g, m) = norms::<B>(x.clone());
        let nx = B::float_div(g, m);
        let scaled = B::float_mul(B::float_mul(x.clone(), nx), channel_vector::<B>(gamma, c));
        B::float_add(B::float_add(x, scaled), channel_vector::<B>(beta, c))
    }

    /// With `P = Σₙ g·x` per image and channel: `dβ = Σ g`, `dγ = Σ_images Nx·P`,
    /// `∂/∂G = γ·P/M − Σ_c(γ·P·G)/(M²·C)` and `dx = g·(1 + γ·Nx) + ∂/∂G·x/G`.
    pub(crate) fn backward<B: Backend>(
        x: FloatTensor<B>,
        gamma: FloatTensor<B>,
        grad: FloatTensor<B>,
    ) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
        let [b, n, c] = [x.shape()[0], x.shape()[1], x.shape()[2]];
        let gamma = channel_vector::<B>(gamma, c);
        let (g, m) = norms::<B>(x.clone());
        let nx = B::float_div(g.clone(), m.clone());
        let p = B::float_sum_dim(B::float_mul(grad.clone(), x.clone()), 1); // [B, 1, C]
        let vector = |t: FloatTensor<B>| B::float_reshape(t, Shape::new([c]));
        let rows = Shape::new([b * n, c]);
        let d_beta = vector(B::float_sum_dim(B::float_reshape(grad.clone(), rows), 0));
        let d_gamma = vector(B::float_sum_dim(
            B::float_reshape(B::float_mul(nx.clone(), p.clone()), Shape::new([b, c])),
            0,
        ));
        let gp = B::float_mul(gamma.clone(), p);
        let mean_gpg = B::float_mean_dim(B::float_mul(gp.clone(), g.clone()), 2); // [B, 1, 1]
        let d_g = B::float_sub(
            B::float_div(gp, m.clone()),
            B::float_div(mean_gpg, B::float_mul(m.clone(), m)),
        );
        // x/G with G at least NORM_FLOOR: a channel zero throughout gets a zero
        // gradient (as from PyTorch's norm), not 0/0.
        let per_g = B::float_div(d_g, B::float_clamp_min(g, NORM_FLOOR.into()));
        let scale = B::float_add_scalar(B::float_mul(gamma, nx), 1f32.into());
        let dx = B::float_add(B::float_mul(grad, scale), B::float_mul(x, per_g));
        (dx, d_gamma, d_beta)
    }
}

/// The least channel norm divided by in the backward pass: below it the channel's
/// values are all below it too, and their gradient through the norm vanishes.
const NORM_FLOOR: f32 = 1e-12;

/// Rows (pixels) per parallel work item of the kernels: fixed, so sums are added in the
/// same order whatever the thread count.
fn block_rows(c: usize) -> usize {
    (16 * 1024 / c.max(1)).max(1)
}

/// `(G, M)` from one image's per-channel sums of squares.
fn norms_of(sumsq: &[f32]) -> (Vec<f32>, f32) {
    let g: Vec<f32> = sumsq.iter().map(|s| s.sqrt()).collect();
    let m = g.iter().sum::<f32>() / g.len().max(1) as f32 + GRN_EPS;
    (g, m)
}

impl GrnBackend for burn::backend::Flex {
    fn grn(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let shape = x.shape();
        let views = (|| Some((row_major(&x)?, row_major(&gamma)?, row_major(&beta)?)))();
        let Some((xs, gs, bs)) = views else {
            return composed::forward::<Self>(x, gamma, beta);
        };
        let (xv, gamma, beta) = (values(&xs), values(&gs), values(&bs));
        let (n, c) = (shape[1], shape[2]);
        let mut out = xv.to_vec();
        if n * c > 0 {
            out.par_chunks_mut(n * c)
                .for_each(|image| grn_image(image, gamma, beta));
        }
        flex_tensor(out, shape)
    }

    fn grn_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let shape = x.shape();
        let views = (grad.shape() == shape)
            .then(|| Some((row_major(&x)?, row_major(&gamma)?, row_major(&grad)?)))
            .flatten();
        let Some((xs, gs, grads)) = views else {
            return composed::backward::<Self>(x, gamma, grad);
        };
        let (xv, gamma, gv) = (values(&xs), values(&gs), values(&grads));
        let (n, c) = (shape[1], shape[2]);
        let mut dx = vec![0f32; xv.len()];
        let mut params = vec![0f32; 2 * c];
        if n * c > 0 {
            let per_image: Vec<Vec<f32>> = dx
                .par_chunks_mut(n * c)
                .zip(xv.par_chunks(n * c).zip(gv.par_chunks(n * c)))
                .map(|(dx, (x, g))| grn_image_backward(x, g, gamma, dx))
                .collect();
            params = sum_blocks(per_image, 2 * c);
        }
        let d_beta = params.split_off(c);
        (
            flex_tensor(dx, shape),
            flex_tensor(params, [c]),
            flex_tensor(d_beta, [c]),
        )
    }
}

/// GRN in place on one image's `[N, C]` activations.
fn grn_image(x: &mut [f32], gamma: &[f32], beta: &[f32]) {
    let c = gamma.len();
    let block = block_rows(c) * c;
    let partials = x
        .par_chunks(block)
        .map(|rows| {
            let mut s = vec![0f32; c];
            for row in rows.chunks_exact(c) {
                s.iter_mut().zip(row).for_each(|(s, v)| *s += v * v);
            }
            s
        })
        .collect();
    let (g, m) = norms_of(&sum_blocks(partials, c));
    let scale: Vec<f32> = g
        .iter()
        .zip(gamma)
        .map(|(g, gm)| 1.0 + gm * (g / m))
        .collect();
    x.par_chunks_mut(block).for_each(|rows| {
        for row in rows.chunks_exact_mut(c) {
            for ((v, s), b) in row.iter_mut().zip(&scale).zip(beta) {
                *v = *v * s + b;
            }
        }
    });
}

/// The backward pass over one image: writes `dx`, returns the image's `[dγ, dβ]`.
fn grn_image_backward(x: &[f32], g: &[f32], gamma: &[f32], dx: &mut [f32]) -> Vec<f32> {
    let c = gamma.len();
    let block = block_rows(c) * c;
    // Pass 1: Σx², P = Σg·x and Σg per channel.
    let partials = x
        .par_chunks(block)
        .zip(g.par_chunks(block))
        .map(|(xs, gs)| {
            let mut s = vec![0f32; 3 * c];
            let (sq, rest) = s.split_at_mut(c);
            let (p, sg) = rest.split_at_mut(c);
            for (xr, gr) in xs.chunks_exact(c).zip(gs.chunks_exact(c)) {
                for i in 0..c {
                    sq[i] += xr[i] * xr[i];
                    p[i] += gr[i] * xr[i];
                    sg[i] += gr[i];
                }
            }
            s
        })
        .collect();
    let sums = sum_blocks(partials, 3 * c);
    let (sumsq, rest) = sums.split_at(c);
    let (p, sum_g) = rest.split_at(c);
    let (norm, m) = norms_of(sumsq);
    let mean_gpg = (0..c).map(|i| gamma[i] * p[i] * norm[i]).sum::<f32>() / c as f32;
    let mut scale = vec![0f32; c];
    let mut per_x = vec![0f32; c];
    let mut params = vec![0f32; 2 * c];
    for i in 0..c {
        let nx = norm[i] / m;
        scale[i] = 1.0 + gamma[i] * nx;
        let d_g = gamma[i] * p[i] / m - mean_gpg / (m * m);
        per_x[i] = d_g / norm[i].max(NORM_FLOOR);
        params[i] = nx * p[i];
        params[c + i] = sum_g[i];
    }
    // Pass 2: dx = g·(1 + γ·Nx) + x·∂/∂G/G.
    dx.par_chunks_mut(block)
        .zip(x.par_chunks(block).zip(g.par_chunks(block)))
        .for_each(|(d, (xs, gs))| {
            for ((dr, xr), gr) in d
                .chunks_exact_mut(c)
                .zip(xs.chunks_exact(c))
                .zip(gs.chunks_exact(c))
            {
                for i in 0..c {
                    dr[i] = gr[i] * scale[i] + xr[i] * per_x[i];
                }
            }
        });
    params
}

/// GRN and its backward composed of the backend's own ops.
#[cfg(feature = "gpu")]
impl GrnBackend for burn::backend::Cube {}

#[cfg(feature = "train")]
mod autodiff {
    use burn::backend::autodiff::Autodiff;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::tensor::FloatTensor;

    use super::GrnBackend;
    use crate::extension_autodiff::record_keeping_first_two;

    /// Input and scale kept as checkpoints.
    impl<B: GrnBackend, C: CheckpointStrategy> GrnBackend for Autodiff<B, C> {
        fn grn(
            x: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
        ) -> FloatTensor<Self> {
            record_keeping_first_two::<B, C, _>(
                [x, gamma, beta],
                (),
                |[x, gamma, beta]| B::grn(x, gamma, beta),
                |x, gamma, grad, ()| B::grn_backward(x, gamma, grad),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution};

    use super::*;
    use crate::test_support::sampled_dims;

    /// timm's `GlobalResponseNorm` on channels-last `[B, N, C]`, from burn's tensor API.
    fn reference(x: Tensor<3>, gamma: Tensor<1>, beta: Tensor<1>) -> Tensor<3> {
        let gx = x.clone().powi_scalar(2).sum_dim(1).sqrt();
        let nx = gx.clone() / (gx.mean_dim(2) + GRN_EPS);
        x.clone() + beta.unsqueeze() + gamma.unsqueeze() * (x * nx)
    }

    fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    /// Shapes from a seeded generator (one pixel and one channel included), and a
    /// ConvNeXt-T stage's own.
    fn shapes() -> Vec<[usize; 3]> {
        let mut out = sampled_dims(0x853c_49e6_748f_ea9b, 8, [3, 60, 50]);
        out.extend([
            [1, 1, 1],
            [2, 1, 7],
            [1, 5, 1],
            [2, 49, 3072],
            [1, 3136, 384],
        ]);
        out
    }

    fn params(c: usize, device: &Device) -> (Tensor<1>, Tensor<1>) {
        (
            Tensor::random([c], Distribution::Normal(0.3, 0.5), device),
            Tensor::random([c], Distribution::Normal(0.0, 0.5), device),
        )
    }

    #[test]
    fn the_forward_pass_equals_the_composed_reference() {
        let device = Device::default();
        for [b, n, c] in shapes() {
            let x: Tensor<3> = Tensor::random([b, n, c], Distribution::Normal(0.2, 1.0), &device);
            let (gamma, beta) = params(c, &device);
            let want = reference(x.clone(), gamma.clone(), beta.clone());
            let got = grn(x, gamma, beta).expect("Flex runs it");
            let scale = want.clone().abs().max().into_scalar::<f32>().max(1.0);
            assert!(max_diff(got, want) < 2e-6 * scale, "{b}×{n}×{c}");
        }
        let device = Device::default();
        let x: Tensor<3> = Tensor::ones([1, 2, 3], &device);
        let (gamma, beta) = params(4, &device);
        assert!(
            grn(x, gamma, beta).is_none(),
            "parameters of the wrong width"
        );
    }

    #[cfg(feature = "train")]
    #[test]
    fn the_backward_pass_equals_burns_autodiff() {
        let host = Device::default();
        let device = host.clone().autodiff();
        for [b, n, c] in shapes() {
            let x: Tensor<3> = Tensor::random([b, n, c], Distribution::Normal(0.2, 1.0), &host);
            // The output's gradient arrives strided, as from a permuted consumer.
            let w: Tensor<3> = Tensor::random([c, n, b], Distribution::Normal(0.0, 1.0), &host);
            let (gamma, beta) = params(c, &host);
            type Op<'a> = &'a dyn Fn(Tensor<3>, Tensor<1>, Tensor<1>) -> Tensor<3>;
            let grads = |f: Op| {
                let x = Tensor::<3>::from_data(x.to_data(), &device).require_grad();
                let g = Tensor::<1>::from_data(gamma.to_data(), &device).require_grad();
                let bt = Tensor::<1>::from_data(beta.to_data(), &device).require_grad();
                let w = Tensor::<3>::from_data(w.to_data(), &device);
                let out = (f(x.clone(), g.clone(), bt.clone()).permute([2, 1, 0]) * w).sum();
                let grads = out.backward();
                let on_host1 = |t: Tensor<1>| Tensor::<1>::from_data(t.to_data(), &host);
                (
                    Tensor::<3>::from_data(x.grad(&grads).unwrap().to_data(), &host),
                    on_host1(g.grad(&grads).unwrap()),
                    on_host1(bt.grad(&grads).unwrap()),
                )
            };
            let want = grads(&reference);
            let got = grads(&|x, g, b| grn(x, g, b).expect("autodiff Flex runs it"));
            let tol = |t: &Tensor<1>| 1e-5 * t.clone().abs().max().into_scalar::<f32>().max(1.0);
            let tol_x = 1e-5 * want.0.clone().abs().max().into_scalar::<f32>().max(1.0);
            assert!(max_diff(got.0, want.0) < tol_x, "dx {b}×{n}×{c}");
            assert!(
                max_diff(got.1, want.1.clone()) < tol(&want.1) * 4.0,
                "dγ {b}×{n}×{c}"
            );
            assert!(
                max_diff(got.2, want.2.clone()) < tol(&want.2) * 4.0,
                "dβ {b}×{n}×{c}"
            );
        }
    }

    /// The composed passes the GPU backends run, on Flex, against the kernels; and a
    /// channel that is zero throughout gets a zero gradient, not NaN.
    #[test]
    fn the_composed_passes_equal_the_kernels() {
        use burn::backend::Flex;
        let device = Device::default();
        let flex = |t: Tensor<3>| t.try_into_primitive::<Flex>().expect("a Flex tensor");
        let flex1 = |t: Tensor<1>| t.try_into_primitive::<Flex>().expect("a Flex tensor");
        let back = |t| Tensor::<3>::from_primitive::<Flex>(t);
        let back1 = |t| Tensor::<1>::from_primitive::<Flex>(t);
        for [b, n, c] in shapes() {
            let x: Tensor<3> = Tensor::random([b, n, c], Distribution::Normal(0.2, 1.0), &device);
            // Channel 0 of image 0 is zero throughout.
            let x = x.slice_assign([0..1, 0..n, 0..1], Tensor::zeros([1, n, 1], &device));
            let grad: Tensor<3> =
                Tensor::random([b, n, c], Distribution::Normal(0.0, 1.0), &device);
            let (gamma, beta) = params(c, &device);
            let kernel = Flex::grn(flex(x.clone()), flex1(gamma.clone()), flex1(beta.clone()));
            let composed =
                composed::forward::<Flex>(flex(x.clone()), flex1(gamma.clone()), flex1(beta));
            // Relative to the output's size: the two sum the norms in different orders.
            let composed = back(composed);
            let scale = composed.clone().abs().max().into_scalar::<f32>().max(1.0);
            let diff = max_diff(back(kernel), composed);
            assert!(
                diff < 2e-6 * scale,
                "y {b}×{n}×{c}: {diff} at scale {scale}"
            );
            let kernel =
                Flex::grn_backward(flex(x.clone()), flex1(gamma.clone()), flex(grad.clone()));
            let composed = composed::backward::<Flex>(flex(x), flex1(gamma), flex(grad));
            let dx = back(kernel.0);
            assert!(
                !dx.clone().is_nan().any().into_scalar::<bool>(),
                "NaN {b}×{n}×{c}"
            );
            assert!(max_diff(dx, back(composed.0)) < 1e-4, "dx {b}×{n}×{c}");
            let sums = 1e-5 * (b * n) as f32;
            assert!(
                max_diff(back1(kernel.1), back1(composed.1)) < sums,
                "dγ {b}×{n}×{c}"
            );
            assert!(
                max_diff(back1(kernel.2), back1(composed.2)) < sums,
                "dβ {b}×{n}×{c}"
            );
        }
    }

    #[test]
    fn empty_inputs_give_empty_answers() {
        let device = Device::default();
        for dims in [[2, 0, 4], [0, 3, 4], [2, 3, 0]] {
            let (gamma, beta) = params(dims[2], &device);
            let y = grn(Tensor::zeros(dims, &device), gamma, beta).unwrap();
            assert_eq!(y.dims(), dims);
        }
    }
}
