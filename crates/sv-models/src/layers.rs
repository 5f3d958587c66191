//! Layers shared by the networks: LayerNorm, stochastic depth, and row-wise maps over
//! token matrices.

use burn::module::{Flag, Module, Param};
use burn::nn::Linear;
use burn::tensor::module::layer_norm;
use burn::tensor::{DType, Device, Distribution, Tensor};

use crate::precision::{cast_to, f32};
use crate::weights::{RawTensor, WeightTaker};

/// LayerNorm over the last axis with weight and bias.
#[derive(Module, Debug)]
pub struct Norm {
    /// Scale.
    pub gamma: Param<Tensor<1>>,
    /// Shift.
    pub beta: Param<Tensor<1>>,
    /// Epsilon added to the variance.
    #[module(skip)]
    pub eps: f64,
}

impl Norm {
    /// Normalise `x` over its last axis.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        layer_norm_f32(x, self.gamma.val(), self.beta.val(), self.eps)
    }
}

/// LayerNorm over the last axis, its statistics in f32 whatever `x`'s precision; the
/// result in `x`'s type.
pub(crate) fn layer_norm_f32<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    eps: f64,
) -> Tensor<D> {
    let dtype = x.dtype();
    if dtype == DType::F32 {
        // One operation with its own backward pass where the backend has it.
        return match crate::layer_norm::fused_layer_norm(
            x.clone(),
            gamma.clone(),
            beta.clone(),
            eps,
        ) {
            Some(y) => y,
            None => layer_norm(x, gamma, Some(beta), eps),
        };
    }
    let y = layer_norm(f32(x), f32(gamma), Some(f32(beta)), eps);
    cast_to(y, dtype)
}

/// Apply a row-wise map to `[B, T, D]` tokens viewed as one `[B·T, D]` matrix, so a
/// linear layer is one GEMM (burn's `Linear` on a rank-3 input runs one GEMM per batch
/// item against a broadcast weight).
pub(crate) fn over_tokens(x: Tensor<3>, f: impl FnOnce(Tensor<2>) -> Tensor<2>) -> Tensor<3> {
    let [b, t, d] = x.dims();
    let y = f(x.reshape([b * t, d]));
    let [_, out] = y.dims();
    y.reshape([b, t, out])
}

impl Norm {
    /// Take `{key}.weight` and `{key}.bias` `[d]` from a checkpoint.
    pub fn take(t: &mut WeightTaker, key: &str, d: usize, eps: f64, device: &Device) -> Self {
        Norm {
            gamma: t.take(&format!("{key}.weight"), &[d]).to_param(device),
            beta: t.take(&format!("{key}.bias"), &[d]).to_param(device),
            eps,
        }
    }
}

/// A burn `Linear` from a weight `[in, out]` and an optional bias `[out]`.
pub fn linear(w: RawTensor, b: Option<RawTensor>, device: &Device) -> Linear {
    Linear {
        weight: w.to_param(device),
        bias: b.map(|b| b.to_param(device)),
    }
}

/// Take the PyTorch linear layer `{key}` (`[out, in]` weight and a bias) as a burn `Linear`.
pub fn take_linear(
    t: &mut WeightTaker,
    key: &str,
    d_in: usize,
    d_out: usize,
    device: &Device,
) -> Linear {
    let (w, b) = t.take_linear(key, d_in, d_out, true);
    linear(w, b, device)
}

/// Stochastic depth: drops a sample's residual branch with probability `prob` while
/// training on an autodiff device, scaling kept ones by `1/(1-prob)`.
#[derive(Module, Debug)]
pub struct DropPath {
    /// Drop probability.
    pub prob: f64,
    /// Whether the module is in training mode.
    pub training: Param<Flag>,
}

impl DropPath {
    /// A drop path with probability `prob`, in training mode.
    pub fn new(prob: f64) -> Self {
        Self {
            prob,
            training: Param::from_bool(true),
        }
    }

    /// Apply to a residual branch `[B, T, D]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        if self.prob == 0.0 || !self.training.is_enabled() || !x.device().is_autodiff() {
            return x;
        }
        let [b, _, _] = x.dims();
        let keep = 1.0 - self.prob;
        let mask = Tensor::<3>::random([b, 1, 1], Distribution::Bernoulli(keep), &x.device());
        let mask = cast_to(mask, x.dtype());
        x * mask / keep
    }
}

/// The same linear layer with its outputs in reverse order; on a two-label head this
/// swaps the labels, so a head whose roadwork label is 0 answers with it as label 1.
pub fn reversed_outputs(head: Linear) -> Linear {
    // New leaf tensors (not results of an operation), so the head can be trained.
    fn leaf<const D: usize>(t: Tensor<D>) -> burn::module::Param<Tensor<D>> {
        let device = t.device();
        burn::module::Param::from_tensor(Tensor::from_data(t.into_data(), &device))
    }
    Linear {
        weight: leaf(head.weight.val().flip([1])),
        bias: head.bias.map(|b| leaf(b.val().flip([0]))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ones(device: &Device) -> Tensor<3> {
        Tensor::ones([64, 2, 3], device)
    }

    #[test]
    fn drop_path_is_identity_outside_training() {
        let device = Device::default();
        let dp = DropPath::new(0.5);
        let x = ones(&device);
        let y = dp.forward(x.clone());
        assert_eq!(y.into_data(), x.into_data());
    }

    #[test]
    fn drop_path_drops_whole_samples_while_training() {
        let device = Device::default().autodiff();
        let dp = DropPath::new(0.5);
        let y = dp
            .forward(ones(&device))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let per_sample: Vec<f32> = y.chunks(6).map(|c| c[0]).collect();
        for (i, c) in y.chunks(6).enumerate() {
            assert!(c.iter().all(|v| *v == per_sample[i]), "sample {i} mixed");
            assert!(
                per_sample[i] == 0.0 || per_sample[i] == 2.0,
                "{}",
                per_sample[i]
            );
        }
        let kept = per_sample.iter().filter(|v| **v > 0.0).count();
        assert!((8..=56).contains(&kept), "kept {kept} of 64");
    }
}
