//! Multi-head self-attention read straight out of a fused query/key/value projection,
//! as one backend operation with its own backward pass.
//!
//! Composed of burn ops under autodiff, attention records the score matrix, its
//! softmax and every reshape for the backward pass: two `[B, H, T, T]` tensors kept per
//! layer, and a dozen graph nodes. [`qkv_attention`] is instead one node that keeps
//! only its input and output; its backward recomputes the softmax head by head
//! (`dV = Pᵀ·dO`, `dS = P∘(dO·Vᵀ − rowsum(dO∘O))`, `dQ = dS·K/√dₕ`, `dK = dSᵀ·Q/√dₕ`).
//!
//! - **Flex (CPU), f32**: both directions run as fused kernels, one job per image and
//!   head, with one `T×T` scratch matrix each (`flex_ops`).
//! - **GPU backends**: the forward pass is burn's fused attention kernel; the backward
//!   pass composes the backend's matmuls.
//! - Other backends, and other precisions on Flex, compose burn's ops in both
//!   directions.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Shape, Slice, TensorMetadata};
use burn::tensor::Tensor;

use crate::device::runs_extensions;

/// Backends with [`qkv_attention`] as one operation: Flex (fused CPU kernels), the
/// cubecl GPU backends (burn's fused attention forward) and autodiff over either (a
/// backward step of its own). The default bodies compose the backend's ops.
#[burn::backend::backend_extension(Flex, Autodiff: cfg(feature = "train"), Cube: cfg(feature = "gpu"))]
pub trait QkvAttentionBackend: Backend {
    /// `softmax(Q·Kᵀ/√dₕ)·V` per image and head, from `qkv` `[B·T, 3D]` (query, key
    /// and value side by side, heads contiguous within each) to `[B·T, D]`.
    fn qkv_attention(qkv: FloatTensor<Self>, batch: usize, heads: usize) -> FloatTensor<Self> {
        composed::forward::<Self>(qkv, batch, heads)
    }

    /// The gradient with respect to `qkv` of [`Self::qkv_attention`], given its input,
    /// its output `out` and the gradient `grad` of the output.
    fn qkv_attention_backward(
        qkv: FloatTensor<Self>,
        out: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        batch: usize,
        heads: usize,
    ) -> FloatTensor<Self> {
        composed::backward::<Self>(qkv, out, grad, batch, heads)
    }
}

/// Multi-head self-attention from a fused projection `qkv` `[B·T, 3D]` of `batch` images
/// to `[B·T, D]`, the heads side by side: one differentiable operation (see the module
/// documentation). `None` on a backend without it, where the caller composes burn's ops.
pub fn qkv_attention(qkv: Tensor<2>, batch: usize, heads: usize) -> Option<Tensor<2>> {
    let [rows, three_d] = qkv.dims();
    let divides = batch > 0 && heads > 0 && rows % batch == 0 && three_d % 3 == 0;
    if !divides || (three_d / 3) % heads != 0 || !runs_extensions(&qkv.device()) {
        return None;
    }
    let out = <Dispatch as QkvAttentionBackend>::qkv_attention(qkv.into_dispatch(), batch, heads);
    Some(Tensor::from_dispatch(out))
}

impl QkvAttentionBackend for burn::backend::Flex {
    fn qkv_attention(qkv: FloatTensor<Self>, batch: usize, heads: usize) -> FloatTensor<Self> {
        match crate::flex_ops::attention_flex(&qkv, batch, heads) {
            Some(out) => out,
            None => composed::forward::<Self>(qkv, batch, heads),
        }
    }

    fn qkv_attention_backward(
        qkv: FloatTensor<Self>,
        out: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        batch: usize,
        heads: usize,
    ) -> FloatTensor<Self> {
        match crate::flex_ops::attention_backward_flex(&qkv, &out, &grad, batch, heads) {
            Some(g) => g,
            None => composed::backward::<Self>(qkv, out, grad, batch, heads),
        }
    }
}

#[cfg(feature = "gpu")]
impl QkvAttentionBackend for burn::backend::Cube {
    fn qkv_attention(qkv: FloatTensor<Self>, batch: usize, heads: usize) -> FloatTensor<Self> {
        use burn::backend::ops::{AttentionModuleOptions, ModuleOps};
        // The backend's own attention: a fused kernel on cubecl runtimes.
        let [q, k, v] = composed::split::<Self>(qkv, batch, heads);
        let out = Self::attention(q, k, v, None, None, AttentionModuleOptions::default());
        composed::merge::<Self>(out)
    }
}

#[cfg(feature = "train")]
mod autodiff {
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
    use burn::backend::autodiff::{Autodiff, NodeId};
    use burn::backend::tensor::FloatTensor;

    use super::QkvAttentionBackend;

    /// The backward step: the input is kept as a checkpoint, the output as state.
    #[derive(Debug)]
    struct QkvAttention;

    impl<B: QkvAttentionBackend> Backward<B, 1> for QkvAttention {
        type State = (NodeId, FloatTensor<B>, usize, usize);

        fn backward(
            self,
            ops: Ops<Self::State, 1>,
            grads: &mut Gradients,
            checkpointer: &mut Checkpointer,
        ) {
            let (qkv, out, batch, heads) = ops.state;
            let qkv: FloatTensor<B> = checkpointer.retrieve_node_output(qkv);
            unary::<B, _>(ops.parents, ops.node, grads, |grad| {
                B::qkv_attention_backward(qkv, out, grad, batch, heads)
            });
        }
    }

    impl<B: QkvAttentionBackend, C: CheckpointStrategy> QkvAttentionBackend for Autodiff<B, C> {
        fn qkv_attention(qkv: FloatTensor<Self>, batch: usize, heads: usize) -> FloatTensor<Self> {
            let guard = qkv.node();
            match QkvAttention
                .prepare::<C>([guard])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(mut prep) => {
                    let state = prep.checkpoint(&qkv);
                    let out = B::qkv_attention(qkv.into_primitive(), batch, heads);
                    prep.finish((state, out.clone(), batch, heads), out)
                }
                OpsKind::UnTracked(prep) => {
                    prep.finish(B::qkv_attention(qkv.into_primitive(), batch, heads))
                }
            }
        }
    }
}

/// Both directions composed of a backend's own ops, on `[B, H, T, dₕ]` views.
pub(crate) mod composed {
    use super::*;

    /// `(batch, tokens, width, heads, head width)` of `qkv` `[B·T, 3D]`.
    fn dims<B: Backend>(qkv: &FloatTensor<B>, batch: usize, heads: usize) -> [usize; 5] {
        let shape = qkv.shape();
        let (rows, d) = (shape[0], shape[1] / 3);
        [batch, rows / batch, d, heads, d / heads]
    }

    /// Q, K and V `[B, H, T, dₕ]` out of `qkv` `[B·T, 3D]`.
    pub fn split<B: Backend>(
        qkv: FloatTensor<B>,
        batch: usize,
        heads: usize,
    ) -> [FloatTensor<B>; 3] {
        let [b, t, _, h, dh] = dims::<B>(&qkv, batch, heads);
        let qkv = B::float_reshape(qkv, Shape::new([b, t, 3, h, dh]));
        let qkv = B::float_permute(qkv, &[2, 0, 3, 1, 4]);
        [0, 1, 2].map(|i| {
            let part = B::float_slice(
                qkv.clone(),
                &[
                    Slice::from(i..i + 1),
                    Slice::from(..),
                    Slice::from(..),
                    Slice::from(..),
                    Slice::from(..),
                ],
            );
            B::float_reshape(part, Shape::new([b, h, t, dh]))
        })
    }

    /// `[B, H, T, dₕ]` → `[B·T, H·dₕ]`.
    pub fn merge<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
        let shape = x.shape();
        let (b, h, t, dh) = (shape[0], shape[1], shape[2], shape[3]);
        B::float_reshape(B::float_swap_dims(x, 1, 2), Shape::new([b * t, h * dh]))
    }

    /// `[B·T, H·dₕ]` → `[B, H, T, dₕ]`.
    fn unmerge<B: Backend>(x: FloatTensor<B>, b: usize, h: usize) -> FloatTensor<B> {
        let shape = x.shape();
        let (t, dh) = (shape[0] / b, shape[1] / h);
        B::float_swap_dims(B::float_reshape(x, Shape::new([b, t, h, dh])), 1, 2)
    }

    /// `softmax(Q·Kᵀ·scale)` `[B, H, T, T]`.
    fn probabilities<B: Backend>(
        q: FloatTensor<B>,
        k: FloatTensor<B>,
        scale: f64,
    ) -> FloatTensor<B> {
        let scores = B::float_mul_scalar(B::float_matmul(q, B::float_transpose(k)), scale.into());
        let max = B::float_max_dim(scores.clone(), 3);
        let e = B::float_exp(B::float_sub(scores, max));
        let sum = B::float_sum_dim(e.clone(), 3);
        B::float_div(e, sum)
    }

    fn scale(dh: usize) -> f64 {
        1.0 / (dh as f64).sqrt()
    }

    /// The forward pass composed of the backend's ops.
    pub fn forward<B: Backend>(qkv: FloatTensor<B>, batch: usize, heads: usize) -> FloatTensor<B> {
        let dh = dims::<B>(&qkv, batch, heads)[4];
        let [q, k, v] = split::<B>(qkv, batch, heads);
        merge::<B>(B::float_matmul(probabilities::<B>(q, k, scale(dh)), v))
    }

    /// The backward pass composed of the backend's ops.
    pub fn backward<B: Backend>(
        qkv: FloatTensor<B>,
        out: FloatTensor<B>,
        grad: FloatTensor<B>,
        batch: usize,
        heads: usize,
    ) -> FloatTensor<B> {
        let [b, t, d, h, dh] = dims::<B>(&qkv, batch, heads);
        let s = scale(dh);
        let [q, k, v] = split::<B>(qkv, batch, heads);
        let p = probabilities::<B>(q.clone(), k.clone(), s);
        let out = unmerge::<B>(out, b, h);
        let grad = unmerge::<B>(grad, b, h);
        let dv = B::float_matmul(B::float_transpose(p.clone()), grad.clone());
        let dp = B::float_matmul(grad.clone(), B::float_transpose(v));
        let row = B::float_sum_dim(B::float_mul(grad, out), 3);
        let ds = B::float_mul(p, B::float_sub(dp, row));
        let dq = B::float_mul_scalar(B::float_matmul(ds.clone(), k), s.into());
        let dk = B::float_mul_scalar(B::float_matmul(B::float_transpose(ds), q), s.into());
        // [3, B, H, T, dₕ] → [B, T, 3, H, dₕ] → [B·T, 3D]
        let parts = [dq, dk, dv].map(|g| B::float_reshape(g, Shape::new([1, b, h, t, dh])));
        let all = B::float_cat(parts.into(), 0);
        B::float_reshape(
            B::float_permute(all, &[1, 3, 0, 2, 4]),
            Shape::new([b * t, 3 * d]),
        )
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::module::attention;
    use burn::tensor::ops::AttentionModuleOptions;
    use burn::tensor::{Device, Distribution, Tensor};

    use super::*;

    /// Shapes drawn from a seeded generator: batch 1–3, tokens 1–70, heads 1–6, head
    /// widths 1–40 (odd ones included), and DINOv2-S's own (261 tokens, 6 × 64).
    fn shapes() -> Vec<[usize; 4]> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut draw = |n: usize| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            1 + (state >> 33) as usize % n
        };
        let mut out: Vec<[usize; 4]> = (0..10)
            .map(|_| [draw(3), draw(70), draw(6), draw(40)])
            .collect();
        out.push([2, 261, 6, 64]);
        out
    }

    /// burn's own attention on `qkv` `[B·T, 3D]`, composed by the tensor API.
    fn burns_attention(qkv: Tensor<2>, b: usize, h: usize) -> Tensor<2> {
        let [bt, three_d] = qkv.dims();
        let (t, d) = (bt / b, three_d / 3);
        let parts = qkv
            .reshape([b, t, 3, h, d / h])
            .permute([2, 0, 3, 1, 4])
            .chunk(3, 0);
        let [q, k, v]: [Tensor<4>; 3] = parts
            .into_iter()
            .map(|p| p.squeeze_dim::<4>(0))
            .collect::<Vec<_>>()
            .try_into()
            .unwrap();
        attention(q, k, v, None, None, AttentionModuleOptions::default())
            .swap_dims(1, 2)
            .reshape([bt, d])
    }

    fn max_diff(a: Tensor<2>, b: Tensor<2>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    #[test]
    fn the_forward_pass_equals_burns_attention_on_sampled_shapes() {
        let device = Device::default();
        for [b, t, h, dh] in shapes() {
            let qkv: Tensor<2> =
                Tensor::random([b * t, 3 * h * dh], Distribution::Normal(0.0, 2.0), &device);
            let want = burns_attention(qkv.clone(), b, h);
            let scale = want.clone().abs().max().into_scalar::<f32>().max(1.0);
            let fused = qkv_attention(qkv.clone(), b, h).expect("Flex runs it");
            let diff = max_diff(fused, want.clone());
            assert!(diff < 2e-6 * scale, "{b}×{t}, {h}×{dh}: max |Δ| = {diff}");
            let composed = Tensor::<2>::from_primitive::<burn::backend::Flex>(composed::forward::<
                burn::backend::Flex,
            >(
                qkv.into_primitive_flex(),
                b,
                h,
            ));
            let diff = max_diff(composed, want);
            assert!(
                diff < 2e-6 * scale,
                "composed {b}×{t}, {h}×{dh}: max |Δ| = {diff}"
            );
        }
    }

    #[test]
    fn shapes_that_do_not_divide_are_left_to_the_caller() {
        let device = Device::default();
        let qkv: Tensor<2> = Tensor::zeros([10, 12], &device);
        assert!(qkv_attention(qkv.clone(), 3, 2).is_none());
        assert!(qkv_attention(qkv.clone(), 0, 2).is_none());
        assert!(qkv_attention(qkv.clone(), 2, 3).is_none());
        assert!(qkv_attention(qkv.clone(), 2, 0).is_none());
        assert!(qkv_attention(Tensor::zeros([10, 13], &device), 2, 1).is_none());
    }

    #[test]
    fn empty_inputs_give_empty_answers() {
        let mut devices = vec![Device::default()];
        if cfg!(feature = "train") {
            devices.push(Device::default().autodiff());
        }
        for device in devices {
            for (shape, out) in [([0, 12], [0, 4]), ([6, 0], [6, 0])] {
                let mut qkv = Tensor::<2>::zeros(shape, &device);
                if device.is_autodiff() {
                    qkv = qkv.require_grad();
                }
                let y = qkv_attention(qkv.clone(), 2, 2).unwrap();
                assert_eq!(y.dims(), out);
                if device.is_autodiff() {
                    let grads = y.sum().backward();
                    assert_eq!(qkv.grad(&grads).unwrap().dims(), shape);
                }
            }
        }
    }

    trait IntoFlex {
        fn into_primitive_flex(self) -> burn::backend::tensor::FloatTensor<burn::backend::Flex>;
    }

    impl IntoFlex for Tensor<2> {
        fn into_primitive_flex(self) -> burn::backend::tensor::FloatTensor<burn::backend::Flex> {
            self.try_into_primitive::<burn::backend::Flex>()
                .expect("a Flex tensor")
        }
    }

    #[cfg(feature = "train")]
    mod gradients {
        use super::*;
        use burn::backend::Flex;

        /// `∂ Σ(out ∘ w) / ∂ qkv` through `attend`, on the autodiff Flex device.
        fn gradient(
            qkv: &Tensor<2>,
            w: &Tensor<2>,
            attend: impl Fn(Tensor<2>) -> Tensor<2>,
        ) -> Tensor<2> {
            let device = Device::default().autodiff();
            let x = Tensor::<2>::from_data(qkv.to_data(), &device).require_grad();
            let w = Tensor::<2>::from_data(w.to_data(), &device);
            let grads = (attend(x.clone()) * w).sum().backward();
            let g = x.grad(&grads).expect("qkv takes part");
            Tensor::from_data(g.to_data(), &Device::default())
        }

        #[test]
        fn the_backward_pass_equals_burns_autodiff_on_sampled_shapes() {
            let device = Device::default();
            for [b, t, h, dh] in shapes() {
                let n = Distribution::Normal(0.0, 1.5);
                let qkv: Tensor<2> = Tensor::random([b * t, 3 * h * dh], n, &device);
                let w: Tensor<2> = Tensor::random([b * t, h * dh], n, &device);
                let want = gradient(&qkv, &w, |x| burns_attention(x, b, h));
                let fused = gradient(&qkv, &w, |x| {
                    qkv_attention(x, b, h).expect("autodiff Flex runs it")
                });
                let scale = want.clone().abs().max().into_scalar::<f32>().max(1.0);
                let diff = max_diff(fused, want.clone());
                assert!(diff < 2e-5 * scale, "{b}×{t}, {h}×{dh}: max |Δ| = {diff}");

                // The composed backward, which the GPU backends run.
                let out = qkv_attention(qkv.clone(), b, h).unwrap();
                let composed = composed::backward::<Flex>(
                    qkv.into_primitive_flex(),
                    out.into_primitive_flex(),
                    w.into_primitive_flex(),
                    b,
                    h,
                );
                let diff = max_diff(Tensor::from_primitive::<Flex>(composed), want);
                assert!(
                    diff < 2e-5 * scale,
                    "composed {b}×{t}, {h}×{dh}: max |Δ| = {diff}"
                );
            }
        }

        #[test]
        fn a_strided_output_gradient_is_read_in_its_own_layout() {
            // The output's gradient arrives transposed from a permuted consumer.
            let device = Device::default();
            let (b, t, h, dh) = (2, 9, 2, 5);
            let n = Distribution::Normal(0.0, 1.0);
            let qkv: Tensor<2> = Tensor::random([b * t, 3 * h * dh], n, &device);
            let w: Tensor<2> = Tensor::random([h * dh, b * t], n, &device);
            let want = gradient(&qkv, &w, |x| burns_attention(x, b, h).transpose());
            let got = gradient(&qkv, &w, |x| qkv_attention(x, b, h).unwrap().transpose());
            assert!(max_diff(got, want) < 1e-5);
        }

        #[test]
        fn half_precision_takes_the_composed_path_and_stays_near_f32() {
            let device = Device::default();
            let (b, t, h, dh) = (2, 17, 3, 8);
            let n = Distribution::Normal(0.0, 1.0);
            let qkv: Tensor<2> = Tensor::random([b * t, 3 * h * dh], n, &device);
            let w: Tensor<2> = Tensor::random([b * t, h * dh], n, &device);
            let want = gradient(&qkv, &w, |x| qkv_attention(x, b, h).unwrap());
            let half = gradient(&qkv, &w, |x| {
                let x = x.cast(burn::tensor::DType::BF16);
                qkv_attention(x, b, h)
                    .unwrap()
                    .cast(burn::tensor::DType::F32)
            });
            assert!(max_diff(half, want) < 5e-2);
        }
    }
}
