//! ConvNeXt-V2 in burn, channels-last throughout: patchify stem, stages of
//! [7×7 depthwise conv → LayerNorm → fc1 → GELU → GRN → fc2] blocks with a residual,
//! patchify downsampling between stages, mean pool and LayerNorm.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::Tensor;

use super::config::ConvNextV2Config;
use super::kernels::{bias_gelu_grn, block_inplace, dwconv7_norm};
use crate::fused_linear::fused_linear;
use crate::layers::{DropPath, Norm};
use crate::precision::{cast_to, f32};

/// A non-overlapping `k×k`, stride-`k` convolution over channels-last `x` `[B, H, W, C]`
/// as one GEMM: `weight` is `[C·k·k, C_out]` with input rows ordered (channel, ky, kx),
/// i.e. PyTorch's `[C_out, C, k, k]` flattened and transposed. H and W are floored to
/// multiples of `k`, as the strided convolution does.
fn patchify_nhwc(x: Tensor<4>, k: usize, layer: &Linear) -> Tensor<4> {
    let [b, h, w, c] = x.dims();
    let (gh, gw) = (h / k, w / k);
    let x = if gh * k != h || gw * k != w {
        x.narrow(1, 0, gh * k).narrow(2, 0, gw * k)
    } else {
        x
    };
    let rows = x
        .reshape([b, gh, k, gw, k, c])
        .permute([0, 1, 3, 5, 2, 4])
        .reshape([b * gh * gw, c * k * k]);
    let y = layer.forward(rows);
    let [_, out] = y.dims();
    y.reshape([b, gh, gw, out])
}

/// One ConvNeXt-V2 block.
#[derive(Module, Debug)]
pub struct ConvNextBlock {
    /// Depthwise 7×7 kernel `[C, 1, 7, 7]` (PyTorch layout).
    pub dw_weight: Param<Tensor<4>>,
    /// Depthwise bias `[C]`.
    pub dw_bias: Param<Tensor<1>>,
    /// LayerNorm after the depthwise conv.
    pub norm: Norm,
    /// Pointwise expansion `[C, 4C]`.
    pub fc1: Linear,
    /// GRN scale γ `[4C]`.
    pub grn_gamma: Param<Tensor<1>>,
    /// GRN shift β `[4C]`.
    pub grn_beta: Param<Tensor<1>>,
    /// Pointwise projection `[4C, C]`.
    pub fc2: Linear,
    /// Stochastic depth of the residual branch.
    pub drop_path: DropPath,
}

impl ConvNextBlock {
    /// `[B, H, W, C]` → `[B, H, W, C]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = match block_inplace(x, self) {
            Ok(y) => return y,
            Err(x) => *x,
        };
        let [b, h, w, c] = x.dims();
        let y = dwconv7_norm(
            x.clone(),
            self.dw_weight.val(),
            self.dw_bias.val(),
            self.norm.gamma.val(),
            self.norm.beta.val(),
            self.norm.eps,
        );
        let y = y.reshape([b * h * w, c]);
        let (fc1, fc1_bias) = (
            self.fc1.weight.val(),
            self.fc1.bias.as_ref().map(|p| p.val()),
        );
        // The bias goes into the GEMM where it is one operation, else into the GELU.
        let (y, fc1_bias) = match fused_linear(y.clone(), fc1.clone(), fc1_bias.clone()) {
            Some(y) => (y, None),
            None => (y.matmul(fc1), fc1_bias),
        };
        let y = bias_gelu_grn(y, fc1_bias, b, self.grn_gamma.val(), self.grn_beta.val());
        let fc2_bias = self.fc2.bias.as_ref().map(|p| p.val());
        let y = fused_linear(y.clone(), self.fc2.weight.val(), fc2_bias)
            .unwrap_or_else(|| self.fc2.forward(y))
            .reshape([b, h * w, c]);
        x + self.drop_path.forward(y).reshape([b, h, w, c])
    }
}

/// LayerNorm then a 2×2 stride-2 convolution between stages.
#[derive(Module, Debug)]
pub struct Downsample {
    /// Norm of the incoming channels.
    pub norm: Norm,
    /// The convolution as a GEMM, weight `[C_in·2·2, C_out]` (see the stem).
    pub conv: Linear,
}

/// A stage: optional downsampling, then blocks at one width.
#[derive(Module, Debug)]
pub struct ConvNextStage {
    /// Downsampling before the blocks (all stages but the first).
    pub downsample: Option<Downsample>,
    /// The blocks.
    pub blocks: Vec<ConvNextBlock>,
}

/// Output of the backbone for a batch.
#[derive(Debug, Clone)]
pub struct ConvNextV2Output {
    /// Last feature map, channels-last `[B, H/32, W/32, C]` (before any norm).
    pub features: Tensor<4>,
    /// LayerNorm of the spatial mean of `features` `[B, C]`, the classifier's input.
    pub pooled: Tensor<2>,
}

/// The ConvNeXt-V2 backbone.
#[derive(Module, Debug)]
pub struct ConvNextV2 {
    /// Patchify stem as a GEMM: weight `[C_in·p·p, dims[0]]`, rows ordered (channel, ky, kx).
    pub stem: Linear,
    /// LayerNorm after the stem.
    pub stem_norm: Norm,
    /// The stages.
    pub stages: Vec<ConvNextStage>,
    /// LayerNorm of the pooled feature.
    pub head_norm: Norm,
    /// Configuration.
    #[module(skip)]
    pub config: ConvNextV2Config,
}

impl ConvNextV2 {
    /// Set the stochastic depth rate of the last block; earlier blocks' rates rise
    /// linearly from 0 over all blocks (timm's schedule).
    pub fn set_drop_path(&mut self, rate: f64) {
        self.config.drop_path_rate = rate;
        let rates = self.config.drop_path_rates();
        for (stage, r) in self.stages.iter_mut().zip(rates) {
            for (block, p) in stage.blocks.iter_mut().zip(r) {
                block.drop_path.prob = p;
            }
        }
    }

    /// The last feature map `[B, H/32, W/32, C]` (channels-last) for images `[B, C, H, W]`.
    pub fn forward_features(&self, pixels: Tensor<4>) -> Tensor<4> {
        // NCHW pixels (in the weights' precision) → NHWC, then the stem as a patchify GEMM.
        let pixels = cast_to(pixels, self.stem.weight.val().dtype());
        let x = patchify_nhwc(
            pixels.permute([0, 2, 3, 1]),
            self.config.patch_size,
            &self.stem,
        );
        let mut x = self.stem_norm.forward(x);
        for stage in &self.stages {
            if let Some(ds) = &stage.downsample {
                x = patchify_nhwc(ds.norm.forward(x), 2, &ds.conv);
            }
            for block in &stage.blocks {
                x = block.forward(x);
            }
        }
        x
    }

    /// Feature map and pooled feature for images `[B, C, H, W]`.
    pub fn forward(&self, pixels: Tensor<4>) -> ConvNextV2Output {
        let features = self.forward_features(pixels);
        let [b, h, w, c] = features.dims();
        let mean = features
            .clone()
            .reshape([b, h * w, c])
            .mean_dim(1)
            .reshape([b, c]);
        let pooled = self.head_norm.forward(mean);
        ConvNextV2Output { features, pooled }
    }

    /// Number of parameters held.
    pub fn num_parameters(&self) -> usize {
        self.num_params()
    }
}

/// A ConvNeXt-V2 backbone with a linear head on the pooled feature, as
/// `ConvNextV2ForImageClassification` and timm's `convnextv2_*` with classes.
#[derive(Module, Debug)]
pub struct ConvNextV2Classifier {
    /// The backbone.
    pub backbone: ConvNextV2,
    /// `Linear(C, num_labels)`.
    pub head: Linear,
}

impl ConvNextV2Classifier {
    /// Logits `[B, num_labels]` for images `[B, C, H, W]`.
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<2> {
        self.features_and_logits(pixels).1
    }

    /// Logits together with the backbone's outputs.
    pub fn forward_all(&self, pixels: Tensor<4>) -> (ConvNextV2Output, Tensor<2>) {
        let out = self.backbone.forward(pixels);
        let logits = self.head.forward(f32(out.pooled.clone()));
        (out, logits)
    }

    /// The pooled feature the head reads, in f32, and the logits.
    pub(crate) fn features_and_logits(&self, pixels: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let features = f32(self.backbone.forward(pixels).pooled);
        let logits = self.head.forward(features.clone());
        (features, logits)
    }

    /// Number of labels of the head.
    pub fn num_labels(&self) -> usize {
        self.head.weight.dims()[1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    fn random_block(c: usize, device: &Device) -> ConvNextBlock {
        let n = |shape: Vec<usize>, std: f64| -> Param<Tensor<1>> {
            let len: usize = shape.iter().product();
            Param::from_tensor(Tensor::random(
                [len],
                Distribution::Normal(0.0, std),
                device,
            ))
        };
        let lin = |i: usize, o: usize| Linear {
            weight: Param::from_tensor(Tensor::random(
                [i, o],
                Distribution::Normal(0.0, 0.2),
                device,
            )),
            bias: Some(n(vec![o], 0.1)),
        };
        ConvNextBlock {
            dw_weight: Param::from_tensor(Tensor::random(
                [c, 1, 7, 7],
                Distribution::Normal(0.0, 0.2),
                device,
            )),
            dw_bias: n(vec![c], 0.1),
            norm: Norm {
                gamma: Param::from_tensor(Tensor::ones([c], device) + n(vec![c], 0.1).val()),
                beta: n(vec![c], 0.1),
                eps: 1e-6,
            },
            fc1: lin(c, 4 * c),
            grn_gamma: n(vec![4 * c], 0.5),
            grn_beta: n(vec![4 * c], 0.5),
            fc2: lin(4 * c, c),
            drop_path: DropPath::new(0.0),
        }
    }

    #[test]
    fn in_place_block_matches_the_differentiable_path() {
        // Interior register blocks (W ≥ 10), full and partial channel blocks, two images.
        let device = Device::default();
        let ad = device.clone().autodiff();
        for (h, w, c) in [(12, 13, 40), (7, 7, 16)] {
            let block = random_block(c, &device);
            let x: Tensor<4> =
                Tensor::random([2, h, w, c], Distribution::Normal(0.0, 1.0), &device);
            let fast = block.forward(x.clone());
            let slow = block.clone().fork(&ad).forward(x.to_device(&ad));
            let d: f32 = (fast - slow.to_device(&device)).abs().max().into_scalar();
            assert!(d < 1e-4, "{h}x{w}x{c}: max |Δ| = {d}");
        }
    }
}
