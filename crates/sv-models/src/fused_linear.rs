//! A linear layer, `x·W + b`, as one backend operation with its own backward pass. On
//! Flex every direction is one GEMM written straight into the result's buffer: the
//! bias is the forward GEMM's starting value, the weight gradient `xᵀ·g` and the input
//! gradient `g·Wᵀ` read their operands transposed in place, and the bias gradient is
//! summed in fixed blocks. burn's composed path (matmul, then a broadcast add, each with
//! its autodiff node) makes a zero-filled buffer and a copy of it for every GEMM result,
//! and a separate pass for the bias each way. Other backends compose their own ops.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Shape, TensorMetadata};
use burn::tensor::{DType, Tensor};
use rayon::prelude::*;

use crate::device::runs_extensions;
use crate::flex_ops::{Operand, flex_tensor, gemm_operands, row_major, sum_blocks, values};

/// Backends with a linear layer as one differentiable operation: Flex (GEMMs into
/// their result buffers), the cubecl GPU backends and autodiff over either. The
/// default bodies compose the backend's matmul, transpose, add and sum.
#[burn::backend::backend_extension(Flex, Autodiff: cfg(feature = "train"), Cube: cfg(feature = "gpu"))]
pub trait LinearBackend: Backend {
    /// `x·w + bias` for `x` `[M, K]`, `w` `[K, N]` (burn's `Linear` layout), `bias` `[N]`.
    fn fused_linear(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        composed::forward::<Self>(x, w, bias)
    }

    /// The gradients with respect to `x`, `w` and `bias` of [`Self::fused_linear`],
    /// given the gradient `grad` `[M, N]` of its output.
    fn fused_linear_backward(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        composed::backward::<Self>(x, w, grad)
    }
}

/// `x·w (+ bias)` for f32 `x` `[M, K]` and `w` `[K, N]` as one differentiable operation
/// where the backend has it (see the module documentation); `None` elsewhere (and for
/// other precisions), where the caller composes burn's ops.
pub fn fused_linear(x: Tensor<2>, w: Tensor<2>, bias: Option<Tensor<1>>) -> Option<Tensor<2>> {
    let ([_, k], [k2, n]) = (x.dims(), w.dims());
    let bias_fits = bias.as_ref().is_none_or(|b| b.dims() == [n]);
    let f32s = x.dtype() == DType::F32
        && w.dtype() == DType::F32
        && bias.as_ref().is_none_or(|b| b.dtype() == DType::F32);
    if k != k2 || !bias_fits || !f32s || !runs_extensions(&x.device()) {
        return None;
    }
    // No bias: a zero one that nothing differentiates.
    let bias = bias.unwrap_or_else(|| Tensor::zeros([n], &w.device()));
    let y = <Dispatch as LinearBackend>::fused_linear(
        x.into_dispatch(),
        w.into_dispatch(),
        bias.into_dispatch(),
    );
    Some(Tensor::from_dispatch(y))
}

/// The linear layer from the backend's own operations, both directions.
pub(crate) mod composed {
    use super::*;

    /// `x·w + bias`.
    pub(crate) fn forward<B: Backend>(
        x: FloatTensor<B>,
        w: FloatTensor<B>,
        bias: FloatTensor<B>,
    ) -> FloatTensor<B> {
        let n = w.shape()[1];
        let y = B::float_matmul(x, w);
        B::float_add(y, B::float_reshape(bias, Shape::new([1, n])))
    }

    /// `(g·wᵀ, xᵀ·g, Σ_rows g)`.
    pub(crate) fn backward<B: Backend>(
        x: FloatTensor<B>,
        w: FloatTensor<B>,
        grad: FloatTensor<B>,
    ) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
        let n = w.shape()[1];
        let dx = B::float_matmul(grad.clone(), B::float_transpose(w));
        let dw = B::float_matmul(B::float_transpose(x), grad.clone());
        let db = B::float_reshape(B::float_sum_dim(grad, 0), Shape::new([n]));
        (dx, dw, db)
    }
}

/// `lhs·rhs` `[m, n]` into a new row-major buffer (added to `start` when given, whose
/// length must be `m·n`).
fn gemm_into(
    (m, k, n): (usize, usize, usize),
    lhs: Operand,
    rhs: Operand,
    start: Option<Vec<f32>>,
) -> Vec<f32> {
    let size = m * n;
    let accumulate = start.is_some();
    let mut out = start.unwrap_or_else(|| Vec::with_capacity(size));
    debug_assert!(!accumulate || out.len() == size);
    if m * n * k == 0 {
        // Nothing to multiply: the start, or zeros.
        out.resize(size, 0.0);
        return out;
    }
    // SAFETY: `out` has room for `m·n` values written at row stride `n`; the operands
    // describe `m×k` and `k×n` matrices inside slices that outlive the call. Without a
    // start the destination is only written (`read_dst` false), then holds `m·n` values.
    unsafe {
        gemm_operands(
            out.as_mut_ptr(),
            n,
            (m, k, n),
            lhs,
            rhs,
            1.0,
            accumulate,
            true,
        );
        out.set_len(size);
    }
    out
}

/// `rows` copies of `bias` side by side, written in parallel (the forward GEMM's start).
fn bias_rows(bias: &[f32], rows: usize) -> Vec<f32> {
    let n = bias.len();
    let mut out = Vec::with_capacity(rows * n);
    if n > 0 {
        out.spare_capacity_mut()[..rows * n]
            .par_chunks_mut(SUM_ROWS * n)
            .for_each(|block| {
                for row in block.chunks_exact_mut(n) {
                    for (d, b) in row.iter_mut().zip(bias) {
                        d.write(*b);
                    }
                }
            });
    }
    // SAFETY: the blocks cover the first `rows·n` elements, each written above (none
    // when `n` is 0).
    unsafe { out.set_len(rows * n) };
    out
}

/// Rows per parallel block of the bias gradient: fixed, so the sums are added in the
/// same order whatever the thread count.
const SUM_ROWS: usize = 256;

/// Column sums of row-major `g` `[rows, n]`.
fn column_sums(g: &[f32], n: usize) -> Vec<f32> {
    if n == 0 {
        return Vec::new();
    }
    let partials: Vec<Vec<f32>> = g
        .par_chunks(SUM_ROWS * n)
        .map(|block| {
            let mut s = vec![0f32; n];
            for row in block.chunks_exact(n) {
                s.iter_mut().zip(row).for_each(|(s, v)| *s += v);
            }
            s
        })
        .collect();
    sum_blocks(partials, n)
}

impl LinearBackend for burn::backend::Flex {
    fn fused_linear(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let views = (|| Some((row_major(&x)?, row_major(&w)?, row_major(&bias)?)))();
        let Some((xs, ws, bs)) = views else {
            return composed::forward::<Self>(x, w, bias);
        };
        let ([m, k], n) = ([x.shape()[0], x.shape()[1]], w.shape()[1]);
        let (xv, wv, bv) = (values(&xs), values(&ws), values(&bs));
        let start = bias_rows(bv, m);
        let out = gemm_into(
            (m, k, n),
            Operand::plain(xv, k),
            Operand::plain(wv, n),
            Some(start),
        );
        flex_tensor(out, [m, n])
    }

    fn fused_linear_backward(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let views = (|| Some((row_major(&x)?, row_major(&w)?, row_major(&grad)?)))();
        let Some((xs, ws, gs)) = views else {
            return composed::backward::<Self>(x, w, grad);
        };
        let ([m, k], n) = ([x.shape()[0], x.shape()[1]], w.shape()[1]);
        let (xv, wv, gv) = (values(&xs), values(&ws), values(&gs));
        let dx = gemm_into(
            (m, n, k),
            Operand::plain(gv, n),
            Operand::transposed(wv, n),
            None,
        );
        let dw = gemm_into(
            (k, m, n),
            Operand::transposed(xv, k),
            Operand::plain(gv, n),
            None,
        );
        let db = column_sums(gv, n);
        (
            flex_tensor(dx, [m, k]),
            flex_tensor(dw, [k, n]),
            flex_tensor(db, [n]),
        )
    }
}

/// The backend's own matmul, transpose, add and sum.
#[cfg(feature = "gpu")]
impl LinearBackend for burn::backend::Cube {}

#[cfg(feature = "train")]
mod autodiff {
    use burn::backend::autodiff::Autodiff;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::tensor::FloatTensor;

    use super::LinearBackend;
    use crate::extension_autodiff::record_keeping_first_two;

    /// Input and weight kept as checkpoints.
    impl<B: LinearBackend, C: CheckpointStrategy> LinearBackend for Autodiff<B, C> {
        fn fused_linear(
            x: FloatTensor<Self>,
            w: FloatTensor<Self>,
            bias: FloatTensor<Self>,
        ) -> FloatTensor<Self> {
            record_keeping_first_two::<B, C, _>(
                [x, w, bias],
                (),
                |[x, w, bias]| B::fused_linear(x, w, bias),
                |x, w, grad, ()| B::fused_linear_backward(x, w, grad),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution};

    use super::*;
    use crate::test_support::sampled_dims;

    fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    /// `[M, K, N]` from a seeded generator (ones included), and DINOv2-S's fc1 and a
    /// ConvNeXt-T stage's fc2 at batch 1.
    fn shapes() -> Vec<[usize; 3]> {
        let mut out = sampled_dims(0xda94_2042_e4dd_58b5, 8, [80, 70, 60]);
        out.extend([[1, 1, 1], [3, 1, 5], [261, 384, 1536], [196, 1536, 384]]);
        out
    }

    fn tolerance<const D: usize>(want: &Tensor<D>, k: usize) -> f32 {
        1e-6 * (k as f32).sqrt() * want.clone().abs().max().into_scalar::<f32>().max(1.0) * 4.0
    }

    #[test]
    fn the_forward_pass_equals_burns_matmul_and_add() {
        let device = Device::default();
        for [m, k, n] in shapes() {
            let d = Distribution::Normal(0.0, 1.0);
            let x: Tensor<2> = Tensor::random([m, k], d, &device);
            let w: Tensor<2> = Tensor::random([k, n], d, &device);
            let b: Tensor<1> = Tensor::random([n], d, &device);
            let want = x.clone().matmul(w.clone()) + b.clone().unsqueeze();
            let got = fused_linear(x.clone(), w.clone(), Some(b)).expect("Flex runs it");
            assert!(
                max_diff(got, want.clone()) < tolerance(&want, k),
                "{m}×{k}×{n}"
            );
            // Without a bias; and a transposed view of x is read in its own layout.
            let want = x.clone().matmul(w.clone());
            let xt = x.transpose().into_data();
            let x_view = Tensor::<2>::from_data(xt, &device).transpose();
            let got = fused_linear(x_view, w, None).unwrap();
            assert!(
                max_diff(got, want.clone()) < tolerance(&want, k),
                "{m}×{k}×{n}"
            );
        }
        let device = Device::default();
        let x: Tensor<2> = Tensor::ones([2, 3], &device);
        assert!(fused_linear(x.clone(), Tensor::ones([4, 5], &device), None).is_none());
        let b = Some(Tensor::ones([4], &device));
        assert!(fused_linear(x, Tensor::ones([3, 5], &device), b).is_none());
    }

    #[cfg(feature = "train")]
    #[test]
    fn the_backward_pass_equals_burns_autodiff() {
        let host = Device::default();
        let device = host.clone().autodiff();
        for [m, k, n] in shapes() {
            let d = Distribution::Normal(0.0, 1.0);
            let x: Tensor<2> = Tensor::random([m, k], d, &host);
            let w: Tensor<2> = Tensor::random([k, n], d, &host);
            let b: Tensor<1> = Tensor::random([n], d, &host);
            // The output's gradient arrives transposed, as from a permuted consumer.
            let r: Tensor<2> = Tensor::random([n, m], d, &host);
            type Op<'a> = &'a dyn Fn(Tensor<2>, Tensor<2>, Tensor<1>) -> Tensor<2>;
            let grads = |f: Op| {
                let on = |t: &Tensor<2>| Tensor::<2>::from_data(t.to_data(), &device);
                let x = on(&x).require_grad();
                let w = on(&w).require_grad();
                let b = Tensor::<1>::from_data(b.to_data(), &device).require_grad();
                let out = (f(x.clone(), w.clone(), b.clone()).transpose() * on(&r)).sum();
                let grads = out.backward();
                let back = |t: Tensor<2>| Tensor::<2>::from_data(t.to_data(), &host);
                (
                    back(x.grad(&grads).unwrap()),
                    back(w.grad(&grads).unwrap()),
                    Tensor::<1>::from_data(b.grad(&grads).unwrap().to_data(), &host),
                )
            };
            let want = grads(&|x, w, b| x.matmul(w) + b.unsqueeze());
            let got = grads(&|x, w, b| fused_linear(x, w, Some(b)).expect("autodiff Flex"));
            assert!(
                max_diff(got.0, want.0.clone()) < tolerance(&want.0, n),
                "dx {m}×{k}×{n}"
            );
            assert!(
                max_diff(got.1, want.1.clone()) < tolerance(&want.1, m),
                "dw {m}×{k}×{n}"
            );
            assert!(
                max_diff(got.2, want.2.clone()) < tolerance(&want.2, m),
                "db {m}×{k}×{n}"
            );
        }
    }

    /// The composed passes the GPU backends run, on Flex, against the kernels.
    #[test]
    fn the_composed_passes_equal_the_kernels() {
        use burn::backend::Flex;
        let device = Device::default();
        let flex = |t: Tensor<2>| t.try_into_primitive::<Flex>().expect("a Flex tensor");
        let back = |t| Tensor::<2>::from_primitive::<Flex>(t);
        let back1 = |t| Tensor::<1>::from_primitive::<Flex>(t);
        for [m, k, n] in shapes() {
            let d = Distribution::Normal(0.0, 1.0);
            let x: Tensor<2> = Tensor::random([m, k], d, &device);
            let w: Tensor<2> = Tensor::random([k, n], d, &device);
            let g: Tensor<2> = Tensor::random([m, n], d, &device);
            let b: Tensor<1> = Tensor::random([n], d, &device);
            let bias = || {
                b.clone()
                    .try_into_primitive::<Flex>()
                    .expect("a Flex tensor")
            };
            let kernel = back(Flex::fused_linear(flex(x.clone()), flex(w.clone()), bias()));
            let composed = back(composed::forward::<Flex>(
                flex(x.clone()),
                flex(w.clone()),
                bias(),
            ));
            assert!(max_diff(kernel, composed.clone()) < tolerance(&composed, k));
            let kernel =
                Flex::fused_linear_backward(flex(x.clone()), flex(w.clone()), flex(g.clone()));
            let composed = composed::backward::<Flex>(flex(x), flex(w), flex(g));
            let want = back(composed.0);
            assert!(max_diff(back(kernel.0), want.clone()) < tolerance(&want, n));
            let want = back(composed.1);
            assert!(max_diff(back(kernel.1), want.clone()) < tolerance(&want, m));
            let want = back1(composed.2);
            assert!(max_diff(back1(kernel.2), want.clone()) < tolerance(&want, m));
        }
    }

    #[test]
    fn empty_inputs_give_empty_answers_and_zero_gradients() {
        use burn::backend::Flex;
        let device = Device::default();
        for [m, k, n] in [[0, 3, 4], [2, 0, 4], [2, 3, 0]] {
            let x: Tensor<2> = Tensor::zeros([m, k], &device);
            let w: Tensor<2> = Tensor::zeros([k, n], &device);
            let b: Tensor<1> = Tensor::ones([n], &device);
            let y = fused_linear(x.clone(), w.clone(), Some(b)).unwrap();
            assert_eq!(y.dims(), [m, n]);
            let flex = |t: Tensor<2>| t.try_into_primitive::<Flex>().expect("a Flex tensor");
            let g = flex(Tensor::zeros([m, n], &device));
            let (dx, dw, db) = Flex::fused_linear_backward(flex(x), flex(w), g);
            assert_eq!(dx.shape(), Shape::new([m, k]));
            assert_eq!(dw.shape(), Shape::new([k, n]));
            assert_eq!(db.shape(), Shape::new([n]));
        }
    }
}
