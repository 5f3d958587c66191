//! Exact (erf) GELU as one backend operation with its own backward pass, so that
//! training on the CPU gets the vectorised erf of [`crate::fast_ops`] in both directions
//! instead of a scalar libm call per element (and, backward, a chain of element-wise
//! ops). Other backends run their own `gelu` and `gelu_backward`.

use burn::backend::ops::ActivationOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, TensorMetadata};
use burn::tensor::Tensor;
use rayon::prelude::*;

use crate::device::runs_extensions;
use crate::fast_ops::{gelu_erf, gelu_erf_derivative};
use crate::flex_ops::{f32_vec, flex_tensor};

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
        Self::gelu_backward(x, grad)
    }
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

/// Elements per parallel work item.
const CHUNK: usize = 16 * 1024;

impl ExactGeluBackend for burn::backend::Flex {
    fn exact_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let Some(mut v) = f32_vec(&x) else {
            return Self::gelu(x);
        };
        v.par_chunks_mut(CHUNK).for_each(gelu_in_place);
        flex_tensor(v, x.shape())
    }

    fn exact_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        let values = (x.shape() == grad.shape())
            .then(|| f32_vec(&x).zip(f32_vec(&grad)))
            .flatten();
        let Some((xv, mut g)) = values else {
            return Self::gelu_backward(x, grad);
        };
        g.par_chunks_mut(CHUNK)
            .zip(xv.par_chunks(CHUNK))
            .for_each(|(g, x)| gelu_grad_in_place(g, x));
        flex_tensor(g, x.shape())
    }
}

fn gelu_in_place(v: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { gelu_in_place_avx2(v) };
        }
    }
    v.iter_mut().for_each(|x| *x = gelu_erf(*x));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gelu_in_place_avx2(v: &mut [f32]) {
    v.iter_mut().for_each(|x| *x = gelu_erf(*x));
}

fn gelu_grad_in_place(g: &mut [f32], x: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { gelu_grad_in_place_avx2(g, x) };
        }
    }
    gelu_grad_portable(g, x);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gelu_grad_in_place_avx2(g: &mut [f32], x: &[f32]) {
    gelu_grad_portable(g, x);
}

#[inline(always)]
fn gelu_grad_portable(g: &mut [f32], x: &[f32]) {
    for (g, x) in g.iter_mut().zip(x) {
        *g *= gelu_erf_derivative(*x);
    }
}

/// The backend's own `gelu` and `gelu_backward`.
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
