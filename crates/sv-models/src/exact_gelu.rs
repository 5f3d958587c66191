//! Exact (erf) GELU as one backend operation with its own backward pass, so that
//! training on the CPU gets the vectorised erf of [`crate::fast_ops`] in both directions
//! instead of a scalar libm call per element (and, backward, a chain of element-wise
//! ops). Other backends run their own `gelu`, and the exact derivative composed of
//! their ops.

use burn::backend::ops::ActivationOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, TensorMetadata};
use burn::tensor::Tensor;

use crate::device::runs_extensions;
use crate::fast_ops::{gelu_erf, gelu_erf_derivative};
use crate::flex_ops::{
    flex_tensor, par_map_in_place, par_zip_map, par_zip_map_in_place, row_major, unique_values_mut,
    values,
};

/// Backends with exact GELU as one differentiable operation: Flex (vectorised kernels),
/// the cubecl GPU backends and autodiff over either. The default bodies are the
/// backend's own `gelu` and `gelu_backward`.
#[burn::backend::backend_extension(Flex, Autodiff: cfg(feature = "train"), Cube: cfg(feature = "gpu"))]
pub trait ExactGeluBackend: Backend {
    /// `x·Φ(x)`, element-wise.
    fn exact_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::gelu(x)
    }

    /// `grad·(Φ(x) + x·φ(x))`: the gradient of [`Self::exact_gelu`] at `x`.
    fn exact_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        composed_backward::<Self>(x, grad)
    }
}

/// `grad·(Φ(x) + x·φ(x))` composed of the backend's ops. Not burn's `gelu_backward`,
/// whose default body (kept by the cubecl GPU backends) is the derivative of GELU's
/// tanh approximation, up to about 1e-3 away from the exact one.
pub(crate) fn composed_backward<B: Backend>(
    x: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> FloatTensor<B> {
    use std::f64::consts::{FRAC_1_SQRT_2, PI};
    let erf = B::float_erf(B::float_mul_scalar(x.clone(), FRAC_1_SQRT_2.into()));
    let cdf = B::float_mul_scalar(B::float_add_scalar(erf, 1.0.into()), 0.5.into());
    let squares = B::float_mul(x.clone(), x.clone());
    let gauss = B::float_exp(B::float_mul_scalar(squares, (-0.5).into()));
    let pdf = B::float_mul_scalar(gauss, (1.0 / (2.0 * PI).sqrt()).into());
    B::float_mul(grad, B::float_add(cdf, B::float_mul(x, pdf)))
}

/// Exact GELU of `x` as one differentiable operation where the backend has it (see the
/// module documentation), burn's `gelu` elsewhere.
pub fn exact_gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !runs_extensions(&x.device()) {
        return burn::tensor::activation::gelu(x);
    }
    Tensor::from_dispatch(<Dispatch as ExactGeluBackend>::exact_gelu(
        x.into_dispatch(),
    ))
}

impl ExactGeluBackend for burn::backend::Flex {
    fn exact_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let Some(mut xs) = row_major(&x) else {
            return Self::gelu(x);
        };
        let shape = x.shape();
        // Without other references (inference) the values are replaced in place; while
        // training autodiff keeps `x`, and GELU goes into a new buffer.
        drop(x);
        if let Some(v) = unique_values_mut(&mut xs) {
            par_map_in_place(v, gelu_erf);
            return xs;
        }
        let x = values(&xs);
        flex_tensor(par_zip_map(x, x, gelu_of_first), shape)
    }

    fn exact_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        let views = (x.shape() == grad.shape())
            .then(|| row_major(&x).zip(row_major(&grad)))
            .flatten();
        let Some((xs, mut gs)) = views else {
            return Self::gelu_backward(x, grad);
        };
        let shape = x.shape();
        drop(grad);
        let xv = values(&xs);
        // The incoming gradient is usually the only reference to its buffer: scaled in
        // place, else into a new buffer.
        if let Some(g) = unique_values_mut(&mut gs) {
            par_zip_map_in_place(g, xv, gelu_grad);
            return gs;
        }
        flex_tensor(par_zip_map(values(&gs), xv, gelu_grad), shape)
    }
}

/// GELU of the first operand (a map over one buffer through the two-operand kernel).
#[inline(always)]
fn gelu_of_first(x: f32, _: f32) -> f32 {
    gelu_erf(x)
}

/// The gradient `g` scaled by GELU's derivative at `x`.
#[inline(always)]
fn gelu_grad(g: f32, x: f32) -> f32 {
    g * gelu_erf_derivative(x)
}

/// The backend's own `gelu`; the backward pass composed of its ops.
#[cfg(feature = "gpu")]
impl ExactGeluBackend for burn::backend::Cube {}

#[cfg(feature = "train")]
mod autodiff {
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
    use burn::backend::autodiff::{Autodiff, NodeId};
    use burn::backend::tensor::FloatTensor;

    use super::ExactGeluBackend;

    /// The backward step: the input is kept as a checkpoint.
    #[derive(Debug)]
    struct ExactGelu;

    impl<B: ExactGeluBackend> Backward<B, 1> for ExactGelu {
        type State = NodeId;

        fn backward(
            self,
            ops: Ops<Self::State, 1>,
            grads: &mut Gradients,
            checkpointer: &mut Checkpointer,
        ) {
            let x: FloatTensor<B> = checkpointer.retrieve_node_output(ops.state);
            unary::<B, _>(ops.parents, ops.node, grads, |grad| {
                B::exact_gelu_backward(x, grad)
            });
        }
    }

    impl<B: ExactGeluBackend, C: CheckpointStrategy> ExactGeluBackend for Autodiff<B, C> {
        fn exact_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
            match ExactGelu
                .prepare::<C>([x.node()])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(mut prep) => {
                    let state = prep.checkpoint(&x);
                    prep.finish(state, B::exact_gelu(x.into_primitive()))
                }
                OpsKind::UnTracked(prep) => prep.finish(B::exact_gelu(x.into_primitive())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, Tensor, activation};

    use super::*;

    fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    #[test]
    fn the_forward_pass_equals_burns_gelu() {
        let device = Device::default();
        let x: Tensor<3> = Tensor::random([3, 7, 101], Distribution::Normal(0.0, 3.0), &device);
        assert!(max_diff(exact_gelu(x.clone()), activation::gelu(x.clone())) < 1e-6 * 12.0);
        // A strided view is read in its own layout.
        let t = x.clone().swap_dims(0, 2);
        assert!(max_diff(exact_gelu(t.clone()), activation::gelu(t)) < 1e-5);
        let empty: Tensor<2> = Tensor::zeros([0, 5], &device);
        assert_eq!(exact_gelu(empty).dims(), [0, 5]);
    }

    /// Both directions on the Flex backend whether or not the buffer they may overwrite
    /// is shared, against burn's `gelu` and `gelu_backward`, on sampled shapes.
    #[test]
    fn shared_and_unshared_buffers_give_burns_values() {
        use burn::backend::Flex;
        use burn::backend::ops::ActivationOps;
        use burn_flex::FlexTensor;

        let device = Device::default();
        let n = Distribution::Normal(0.0, 3.0);
        let flex = |t: &Tensor<2>| t.clone().try_into_primitive::<Flex>().expect("Flex");
        // A copy with a buffer of its own.
        let own = |t: &Tensor<2>| FlexTensor::from_data(t.to_data());
        let host = |f: FlexTensor| Tensor::<2>::from_primitive::<Flex>(f);
        for [rows, cols] in crate::test_support::sampled_dims(11, 12, [40, 2100]) {
            let x: Tensor<2> = Tensor::random([rows, cols], n, &device);
            let g: Tensor<2> = Tensor::random([rows, cols], n, &device);
            let (x_data, g_data) = (x.to_data(), g.to_data());
            let want = host(Flex::gelu(flex(&x)));
            let unshared = host(<Flex as ExactGeluBackend>::exact_gelu(own(&x)));
            let shared = host(<Flex as ExactGeluBackend>::exact_gelu(flex(&x)));
            assert!(max_diff(unshared, want.clone()) < 1e-5, "{rows}×{cols}");
            assert!(max_diff(shared, want) < 1e-5, "{rows}×{cols}");
            let want = host(Flex::gelu_backward(flex(&x), flex(&g)));
            let scale = want.clone().abs().max().into_scalar::<f32>().max(1.0);
            let unshared = host(<Flex as ExactGeluBackend>::exact_gelu_backward(
                flex(&x),
                own(&g),
            ));
            let shared = host(<Flex as ExactGeluBackend>::exact_gelu_backward(
                flex(&x),
                flex(&g),
            ));
            assert!(
                max_diff(unshared, want.clone()) < 1e-6 * scale,
                "{rows}×{cols}"
            );
            assert!(max_diff(shared, want) < 1e-6 * scale, "{rows}×{cols}");
            // Shared inputs are left as they were.
            x.to_data().assert_eq(&x_data, true);
            g.to_data().assert_eq(&g_data, true);
        }
    }

    /// The composed backward pass the GPU backends run, on Flex, against Flex's own
    /// exact `gelu_backward` and the derivative's value at 2 (burn's default
    /// `gelu_backward`, the tanh approximation's derivative, is 8.7e-4 away there).
    #[test]
    fn the_composed_backward_is_the_exact_derivative() {
        use burn::backend::Flex;
        use burn::backend::ops::ActivationOps;
        let device = Device::default();
        let flex = |t: &Tensor<2>| t.clone().try_into_primitive::<Flex>().expect("Flex");
        let host = |f| Tensor::<2>::from_primitive::<Flex>(f);
        let x: Tensor<2> = Tensor::random([61, 257], Distribution::Normal(0.0, 3.0), &device);
        let g: Tensor<2> = Tensor::random([61, 257], Distribution::Normal(0.0, 1.0), &device);
        let exact = host(Flex::gelu_backward(flex(&x), flex(&g)));
        let composed = host(composed_backward::<Flex>(flex(&x), flex(&g)));
        assert!(max_diff(composed.clone(), exact.clone()) < 2e-6);
        // x = 2: Φ(2) + 2·φ(2) = 1.085232, where the tanh approximation's derivative
        // is 1.086099.
        let at = |v: f32| {
            let t = |v: f32| flex(&Tensor::<2>::from_floats([[v]], &device));
            host(composed_backward::<Flex>(t(v), t(1.0))).into_scalar::<f32>()
        };
        assert!((at(2.0) - 1.085_232).abs() < 2e-6, "{}", at(2.0));
    }

    #[cfg(feature = "train")]
    #[test]
    fn the_backward_pass_equals_burns_autodiff() {
        let host = Device::default();
        let device = host.clone().autodiff();
        let n = Distribution::Normal(0.0, 3.0);
        let x: Tensor<2> = Tensor::random([67, 129], n, &host);
        let w: Tensor<2> = Tensor::random([129, 67], n, &host);
        let grad = |f: &dyn Fn(Tensor<2>) -> Tensor<2>| {
            let x = Tensor::<2>::from_data(x.to_data(), &device).require_grad();
            let w = Tensor::<2>::from_data(w.to_data(), &device);
            // The output's gradient arrives transposed, as from a permuted consumer.
            let grads = (f(x.clone()).transpose() * w).sum().backward();
            Tensor::<2>::from_data(x.grad(&grads).unwrap().to_data(), &host)
        };
        let want = grad(&|x| activation::gelu(x));
        let got = grad(&|x| exact_gelu(x));
        let scale = want.clone().abs().max().into_scalar::<f32>().max(1.0);
        assert!(max_diff(got, want) < 1e-6 * scale);
    }
}
