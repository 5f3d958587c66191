//! LayerNorm over the last axis as one backend operation with its own backward pass.
//! burn's autodiff composes LayerNorm from nine element-wise and reduction operations,
//! several keeping a full-size tensor for the backward pass; this one keeps only its input
//! and recomputes the statistics (one pass over a row) when the gradient comes. On Flex
//! the backward is one fused kernel; other backends compose it from their own ops.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Shape, TensorMetadata};
use burn::tensor::Tensor;
use rayon::prelude::*;

use crate::device::runs_extensions;
use crate::flex_ops::{flex_tensor, row_major, sum_blocks, values};

/// Backends with LayerNorm as one differentiable operation: Flex (a fused backward
/// kernel), the cubecl GPU backends and autodiff over either. The default bodies are the
/// backend's own `layer_norm` and a backward composed of its ops.
#[burn::backend::backend_extension(Flex, Autodiff: cfg(feature = "train"), Cube: cfg(feature = "gpu"))]
pub trait LayerNormBackend: Backend {
    /// `(x − mean)/√(var + eps)·gamma + beta` over the last axis of `x`.
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self> {
        Self::layer_norm(x, gamma, Some(beta), eps)
    }

    /// The gradients with respect to `x`, `gamma` and `beta` of
    /// [`Self::fused_layer_norm`] at `x`, given the gradient `grad` of its output.
    fn fused_layer_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        composed_backward::<Self>(x, gamma, grad, eps)
    }
}

/// LayerNorm of `x` over its last axis as one differentiable operation where the backend
/// has it (see the module documentation); `None` elsewhere, where the caller uses burn's.
pub fn fused_layer_norm<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    eps: f64,
) -> Option<Tensor<D>> {
    let d = *x.dims().last()?;
    if gamma.dims() != [d] || beta.dims() != [d] || !runs_extensions(&x.device()) {
        return None;
    }
    let y = <Dispatch as LayerNormBackend>::fused_layer_norm(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        eps,
    );
    Some(Tensor::from_dispatch(y))
}

/// The backward pass from the backend's own ops, on `x` viewed as rows `[R, D]`:
/// `dβ = Σ g`, `dγ = Σ g·x̂`, `dx = (ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))/σ` with `ĝ = g·γ`.
pub(crate) fn composed_backward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    grad: FloatTensor<B>,
    eps: f64,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let shape = x.shape();
    let d = shape[shape.num_dims() - 1];
    let rows = shape.num_elements().checked_div(d).unwrap_or(0);
    let flat = Shape::new([rows, d]);
    let x = B::float_reshape(x, flat.clone());
    let grad = B::float_reshape(grad, flat.clone());
    let gamma = B::float_reshape(gamma, Shape::new([1, d]));
    let mean = B::float_mean_dim(x.clone(), 1);
    let centred = B::float_sub(x, mean);
    let var = B::float_mean_dim(B::float_mul(centred.clone(), centred.clone()), 1);
    let inv_std = B::float_recip(B::float_sqrt(B::float_add_scalar(var, eps.into())));
    let x_hat = B::float_mul(centred, inv_std.clone());
    let d_beta = B::float_sum_dim(grad.clone(), 0);
    let d_gamma = B::float_sum_dim(B::float_mul(grad.clone(), x_hat.clone()), 0);
    let g_hat = B::float_mul(grad, gamma);
    let mean_g = B::float_mean_dim(g_hat.clone(), 1);
    let mean_gx = B::float_mean_dim(B::float_mul(g_hat.clone(), x_hat.clone()), 1);
    let dx = B::float_sub(B::float_sub(g_hat, mean_g), B::float_mul(x_hat, mean_gx));
    let dx = B::float_mul(dx, inv_std);
    let vector = Shape::new([d]);
    (
        B::float_reshape(dx, shape),
        B::float_reshape(d_gamma, vector.clone()),
        B::float_reshape(d_beta, vector),
    )
}

/// Rows per parallel work item of the backward kernel. Fixed, so the parameter
/// gradients are summed in the same order whatever the thread count.
const ROWS: usize = 32;

impl LayerNormBackend for burn::backend::Flex {
    fn fused_layer_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let shape = x.shape();
        let d = shape[shape.num_dims() - 1];
        let views = (grad.shape() == shape && gamma.shape().num_elements() == d)
            .then(|| Some((row_major(&x)?, row_major(&gamma)?, row_major(&grad)?)))
            .flatten();
        let Some((xs, gs, grads)) = views else {
            return composed_backward::<Self>(x, gamma, grad, eps);
        };
        let (xv, gamma_v, gv) = (values(&xs), values(&gs), values(&grads));
        let mut dx = vec![0f32; xv.len()];
        let mut params = vec![0f32; 2 * d];
        if d > 0 && !xv.is_empty() {
            let partials: Vec<Vec<f32>> = dx
                .par_chunks_mut(ROWS * d)
                .zip(xv.par_chunks(ROWS * d).zip(gv.par_chunks(ROWS * d)))
                .map(|(dx, (x, g))| backward_rows(x, g, gamma_v, dx, d, eps as f32))
                .collect();
            params = sum_blocks(partials, 2 * d);
        }
        let d_beta = params.split_off(d);
        (
            flex_tensor(dx, shape),
            flex_tensor(params, [d]),
            flex_tensor(d_beta, [d]),
        )
    }
}

/// The backward pass over whole rows of width `d`: writes `dx` and returns this block's
/// `[dγ, dβ]` sums, added row by row in order.
fn backward_rows(
    x: &[f32],
    g: &[f32],
    gamma: &[f32],
    dx: &mut [f32],
    d: usize,
    eps: f32,
) -> Vec<f32> {
    let mut sums = vec![0f32; 2 * d];
    let (d_gamma, d_beta) = sums.split_at_mut(d);
    let n = d as f32;
    for ((x, g), dx) in x
        .chunks_exact(d)
        .zip(g.chunks_exact(d))
        .zip(dx.chunks_exact_mut(d))
    {
        let mean = x.iter().sum::<f32>() / n;
        let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        let inv_std = 1.0 / (var + eps).sqrt();
        let (mut sum_g, mut sum_gx) = (0f32, 0f32);
        for i in 0..d {
            let x_hat = (x[i] - mean) * inv_std;
            let g_hat = g[i] * gamma[i];
            sum_g += g_hat;
            sum_gx += g_hat * x_hat;
            d_gamma[i] += g[i] * x_hat;
            d_beta[i] += g[i];
        }
        let (mean_g, mean_gx) = (sum_g / n, sum_gx / n);
        for i in 0..d {
            let x_hat = (x[i] - mean) * inv_std;
            dx[i] = (g[i] * gamma[i] - mean_g - x_hat * mean_gx) * inv_std;
        }
    }
    sums
}

/// The backend's own `layer_norm`; the backward composed of its ops.
#[cfg(feature = "gpu")]
impl LayerNormBackend for burn::backend::Cube {}

#[cfg(feature = "train")]
mod autodiff {
    use burn::backend::autodiff::Autodiff;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::tensor::FloatTensor;

    use super::LayerNormBackend;
    use crate::extension_autodiff::record_keeping_first_two;

    /// Input and scale kept as checkpoints, epsilon as the setting.
    impl<B: LayerNormBackend, C: CheckpointStrategy> LayerNormBackend for Autodiff<B, C> {
        fn fused_layer_norm(
            x: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            eps: f64,
        ) -> FloatTensor<Self> {
            record_keeping_first_two::<B, C, _>(
                [x, gamma, beta],
                eps,
                |[x, gamma, beta]| B::fused_layer_norm(x, gamma, beta, eps),
                |x, gamma, grad, eps| B::fused_layer_norm_backward(x, gamma, grad, eps),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::module::layer_norm;
    use burn::tensor::{Device, Distribution, Tensor};

    use super::*;
    use crate::test_support::sampled_dims;

    fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    /// Row counts and widths from a seeded generator (width 1 and single rows
    /// included), and DINOv2-S's and a ConvNeXt stage's own.
    fn shapes() -> Vec<[usize; 2]> {
        let mut out = sampled_dims(0x9e37_79b9_7f4a_7c15, 10, [90, 70]);
        out.extend([[1, 1], [5, 1], [1, 384], [2 * 261, 384], [196, 96]]);
        out
    }

    #[test]
    fn the_forward_pass_equals_burns_layer_norm() {
        let device = Device::default();
        for [r, d] in shapes() {
            let x: Tensor<2> = Tensor::random([r, d], Distribution::Normal(0.5, 2.0), &device);
            let g: Tensor<1> = Tensor::random([d], Distribution::Normal(1.0, 0.5), &device);
            let b: Tensor<1> = Tensor::random([d], Distribution::Normal(0.0, 0.5), &device);
            let want = layer_norm(x.clone(), g.clone(), Some(b.clone()), 1e-6);
            let got = fused_layer_norm(x, g, b, 1e-6).expect("Flex runs it");
            assert!(max_diff(got, want) < 1e-5, "{r}×{d}");
        }
        let g: Tensor<1> = Tensor::ones([4], &device);
        let wrong = fused_layer_norm(Tensor::<2>::ones([2, 3], &device), g.clone(), g, 1e-6);
        assert!(wrong.is_none(), "a scale of the wrong width is refused");
    }

    #[cfg(feature = "train")]
    #[test]
    fn the_backward_pass_equals_burns_autodiff() {
        let host = Device::default();
        let device = host.clone().autodiff();
        for [r, d] in shapes() {
            let n = |m: f64, s: f64| Distribution::Normal(m, s);
            // Rank 3, the output's gradient arriving transposed (a permuted consumer),
            // and a large mean, which a one-pass variance would lose.
            let x: Tensor<3> = Tensor::random([2, r, d], n(30.0, 2.0), &host);
            let w: Tensor<3> = Tensor::random([2, d, r], n(0.0, 1.0), &host);
            let g: Tensor<1> = Tensor::random([d], n(1.0, 0.5), &host);
            let b: Tensor<1> = Tensor::random([d], n(0.0, 0.5), &host);
            type Norm<'a> = &'a dyn Fn(Tensor<3>, Tensor<1>, Tensor<1>) -> Tensor<3>;
            let grads = |f: Norm| {
                let on = |t: &Tensor<3>| Tensor::<3>::from_data(t.to_data(), &device);
                let on1 = |t: &Tensor<1>| Tensor::<1>::from_data(t.to_data(), &device);
                let (x, g, b) = (
                    on(&x).require_grad(),
                    on1(&g).require_grad(),
                    on1(&b).require_grad(),
                );
                let out = (f(x.clone(), g.clone(), b.clone()).swap_dims(1, 2) * on(&w)).sum();
                let grads = out.backward();
                let back = |t: Tensor<1>| Tensor::<1>::from_data(t.to_data(), &host);
                (
                    Tensor::<3>::from_data(x.grad(&grads).unwrap().to_data(), &host),
                    back(g.grad(&grads).unwrap()),
                    back(b.grad(&grads).unwrap()),
                )
            };
            let want = grads(&|x, g, b| layer_norm(x, g, Some(b), 1e-6));
            let got = grads(&|x, g, b| fused_layer_norm(x, g, b, 1e-6).unwrap());
            let tol = |t: &Tensor<1>| 1e-5 * t.clone().abs().max().into_scalar::<f32>().max(1.0);
            let tol3 = 1e-5 * want.0.clone().abs().max().into_scalar::<f32>().max(1.0);
            assert!(max_diff(got.0, want.0) < tol3, "dx {r}×{d}");
            assert!(
                max_diff(got.1, want.1.clone()) < tol(&want.1) * 4.0,
                "dγ {r}×{d}"
            );
            assert!(
                max_diff(got.2, want.2.clone()) < tol(&want.2) * 4.0,
                "dβ {r}×{d}"
            );
        }
    }

    /// The composed backward the GPU backends run, on Flex, against the kernel.
    #[test]
    fn the_composed_backward_equals_the_kernel() {
        use burn::backend::Flex;
        let device = Device::default();
        let flex = |t: Tensor<2>| t.try_into_primitive::<Flex>().expect("a Flex tensor");
        let flex1 = |t: Tensor<1>| t.try_into_primitive::<Flex>().expect("a Flex tensor");
        let back = |t| Tensor::<2>::from_primitive::<Flex>(t);
        let back1 = |t| Tensor::<1>::from_primitive::<Flex>(t);
        for [r, d] in shapes() {
            let n = |m: f64, s: f64| Distribution::Normal(m, s);
            let x: Tensor<2> = Tensor::random([r, d], n(0.0, 3.0), &device);
            let g: Tensor<1> = Tensor::random([d], n(1.0, 0.5), &device);
            let grad: Tensor<2> = Tensor::random([r, d], n(0.0, 1.0), &device);
            let args = || (flex(x.clone()), flex1(g.clone()), flex(grad.clone()));
            let (a, b, c) = args();
            let kernel = Flex::fused_layer_norm_backward(a, b, c, 1e-5);
            let (a, b, c) = args();
            let composed = composed_backward::<Flex>(a, b, c, 1e-5);
            assert!(
                max_diff(back(kernel.0), back(composed.0)) < 1e-4,
                "dx {r}×{d}"
            );
            let sums = 1e-5 * r as f32;
            assert!(
                max_diff(back1(kernel.1), back1(composed.1)) < sums,
                "dγ {r}×{d}"
            );
            assert!(
                max_diff(back1(kernel.2), back1(composed.2)) < sums,
                "dβ {r}×{d}"
            );
        }
    }

    #[test]
    fn empty_inputs_give_empty_answers() {
        let device = Device::default();
        let x: Tensor<3> = Tensor::zeros([2, 0, 4], &device);
        let g: Tensor<1> = Tensor::ones([4], &device);
        let y = fused_layer_norm(x, g.clone(), g, 1e-6).unwrap();
        assert_eq!(y.dims(), [2, 0, 4]);
    }
}
