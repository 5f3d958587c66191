//! DINOv2 with registers in burn: `[cls, reg×R, patches]`, pre-norm blocks with
//! LayerScale, exact-GELU or SwiGLU MLP, stochastic depth in training.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::silu;
use burn::tensor::module::{attention, conv2d};
use burn::tensor::ops::{AttentionModuleOptions, ConvOptions};
use burn::tensor::{Device, Tensor, TensorData};

use super::config::Dinov2Config;
use crate::exact_gelu::exact_gelu;
use crate::fast_ops::bias_gelu;
use crate::flex_ops;
use crate::fused_linear::fused_linear;
use crate::layers::{DropPath, Norm, over_tokens};
use crate::precision::{cast_to, f32};
use crate::qkv_attention::qkv_attention;
use crate::resample::bicubic_aa_matrix;

/// Multi-head self-attention with a fused query/key/value projection.
#[derive(Module, Debug)]
pub struct Attention {
    /// `[D, 3D]`: query, key and value projections side by side.
    pub qkv: Linear,
    /// Output projection `[D, D]`.
    pub proj: Linear,
    /// Number of heads.
    #[module(skip)]
    pub num_heads: usize,
}

impl Attention {
    /// `[B, T, D]` → `[B, T, D]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, t, d] = x.dims();
        let heads = self.heads(x.reshape([b * t, d]), b);
        linear_rows(&self.proj, heads, true).reshape([b, t, d])
    }

    /// The heads' outputs side by side `[B·T, D]`, before the output projection, for
    /// token rows `[B·T, D]` of `batch` images.
    fn heads(&self, rows: Tensor<2>, batch: usize) -> Tensor<2> {
        let qkv = linear_rows(&self.qkv, rows, true);
        if let Some(out) = qkv_attention(qkv.clone(), batch, self.num_heads) {
            return out;
        }
        let [bt, three_d] = qkv.dims();
        let (t, d, h) = (bt / batch, three_d / 3, self.num_heads);
        let qkv = qkv
            .reshape([batch, t, 3, h, d / h])
            .permute([2, 0, 3, 1, 4]);
        let mut parts = qkv.chunk(3, 0).into_iter().map(|p| p.squeeze_dim::<4>(0));
        let (q, k, v) = (
            parts.next().expect("q"),
            parts.next().expect("k"),
            parts.next().expect("v"),
        );
        let out = attention(q, k, v, None, None, AttentionModuleOptions::default());
        out.swap_dims(1, 2).reshape([bt, d])
    }
}

/// `rows·W (+ b)` with burn's `Linear` weights, through the Flex GEMM when possible.
fn linear_rows(layer: &Linear, rows: Tensor<2>, with_bias: bool) -> Tensor<2> {
    let weight = layer.weight.val();
    let bias = if with_bias {
        layer.bias.as_ref().map(|b| b.val())
    } else {
        None
    };
    if let Some(y) = flex_ops::linear(&rows, &weight, bias.as_ref()) {
        return y;
    }
    // Training and the GPUs: one operation with its own backward pass.
    if let Some(y) = fused_linear(rows.clone(), weight.clone(), bias.clone()) {
        return y;
    }
    let y = rows.matmul(weight);
    match bias {
        Some(b) => y + b.unsqueeze(),
        None => y,
    }
}

/// The block's MLP: fc1 → exact GELU → fc2, or SwiGLU (fc1 gives gate and value halves).
#[derive(Module, Debug)]
pub struct Mlp {
    /// `[D, h]`, or `[D, 2h]` for SwiGLU (first half gated by SiLU, second half the value).
    pub fc1: Linear,
    /// `[h, D]`.
    pub fc2: Linear,
    /// SwiGLU instead of GELU.
    #[module(skip)]
    pub swiglu: bool,
}

impl Mlp {
    /// `[B, T, D]` → `[B, T, D]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        over_tokens(x, |rows| linear_rows(&self.fc2, self.hidden(rows), true))
    }

    /// The activations before fc2 for token rows `[N, D]`.
    fn hidden(&self, rows: Tensor<2>) -> Tensor<2> {
        if self.swiglu {
            let x = linear_rows(&self.fc1, rows, true);
            let mut halves = x.chunk(2, 1).into_iter();
            let gate = halves.next().expect("gate half");
            let value = halves.next().expect("value half");
            silu(gate) * value
        } else if flex_ops::is_flex_f32(&rows) {
            // fc1's bias is added in the same pass as the exact GELU.
            let h = linear_rows(&self.fc1, rows, false);
            bias_gelu(h, self.fc1.bias.as_ref().map(|b| b.val()))
        } else {
            // Training and the GPUs: the bias is the GEMM's starting value.
            exact_gelu(linear_rows(&self.fc1, rows, true))
        }
    }
}

/// One pre-norm transformer block with LayerScale.
#[derive(Module, Debug)]
pub struct Block {
    /// Norm before attention.
    pub norm1: Norm,
    /// Self-attention.
    pub attn: Attention,
    /// LayerScale after attention.
    pub ls1: Param<Tensor<1>>,
    /// Norm before the MLP.
    pub norm2: Norm,
    /// MLP.
    pub mlp: Mlp,
    /// LayerScale after the MLP.
    pub ls2: Param<Tensor<1>>,
    /// Stochastic depth on both branches.
    pub drop_path: DropPath,
}

impl Block {
    /// `[B, T, D]` → `[B, T, D]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, t, d] = x.dims();
        let rows = self.norm1.forward(x.clone()).reshape([b * t, d]);
        let heads = self.attn.heads(rows, b);
        let a = linear_rows(&self.attn.proj, heads, false);
        let x = self.residual(x, a, &self.attn.proj, &self.ls1);
        let rows = self.norm2.forward(x.clone()).reshape([b * t, d]);
        let m = linear_rows(&self.mlp.fc2, self.mlp.hidden(rows), false);
        self.residual(x, m, &self.mlp.fc2, &self.ls2)
    }

    /// `x + drop_path(ls ⊙ (y + bias))` for a branch output `y` `[B·T, D]` that still
    /// lacks `layer`'s bias; in place on `x`'s buffer when possible.
    fn residual(
        &self,
        x: Tensor<3>,
        y: Tensor<2>,
        layer: &Linear,
        ls: &Param<Tensor<1>>,
    ) -> Tensor<3> {
        let bias = layer.bias.as_ref().map(|b| b.val());
        let scale = ls.val();
        let x = match flex_ops::residual_scaled(x, &y, bias.as_ref(), &scale) {
            Ok(out) => return out,
            Err(x) => *x,
        };
        let y = match bias {
            Some(b) => y + b.unsqueeze(),
            None => y,
        };
        let branch = (y * scale.unsqueeze()).reshape(x.dims());
        x + self.drop_path.forward(branch)
    }
}

/// Output of the backbone for a batch.
#[derive(Debug, Clone)]
pub struct Dinov2Output {
    /// Final-normed CLS token `[B, D]`.
    pub cls: Tensor<2>,
    /// Final-normed register tokens `[B, R, D]` (none without registers).
    pub registers: Option<Tensor<3>>,
    /// Final-normed patch tokens `[B, N, D]`, row-major over the patch grid.
    pub patches: Tensor<3>,
    /// `concat(CLS, mean of patch tokens)` `[B, 2D]`, the HF classifier's input.
    pub pooled: Tensor<2>,
}

/// Resampling matrices of the position-embedding grid, one pair per target grid.
#[derive(Debug, Clone, Default)]
pub struct PosResampleCache(Arc<Mutex<HashMap<GridKey, RowColMatrices>>>);

/// (source grid, target rows, target columns).
type GridKey = (usize, usize, usize);
/// Row and column resampling matrices, row-major.
type RowColMatrices = (Vec<f32>, Vec<f32>);

impl PosResampleCache {
    fn matrices(&self, src: usize, h: usize, w: usize) -> (Vec<f32>, Vec<f32>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.entry((src, h, w))
            .or_insert_with(|| (bicubic_aa_matrix(src, h), bicubic_aa_matrix(src, w)))
            .clone()
    }
}

/// The DINOv2-with-registers backbone.
#[derive(Module, Debug)]
pub struct Dinov2 {
    /// Patch embedding convolution `[D, C, p, p]`.
    pub patch_weight: Param<Tensor<4>>,
    /// Patch embedding bias `[D]`.
    pub patch_bias: Param<Tensor<1>>,
    /// CLS token `[1, 1, D]`.
    pub cls_token: Param<Tensor<3>>,
    /// Mask token `[1, D]` (masked image modelling; not used by `forward`).
    pub mask_token: Option<Param<Tensor<2>>>,
    /// Register tokens `[1, R, D]` (none when the model has no registers).
    pub register_tokens: Option<Param<Tensor<3>>>,
    /// Position embeddings `[1, 1 + G², D]`, CLS slot first.
    pub pos_embed: Param<Tensor<3>>,
    /// Transformer blocks.
    pub blocks: Vec<Block>,
    /// Final LayerNorm (none in timm's average-pooling classifiers, which norm after
    /// pooling instead: [`Dinov2Classifier::fc_norm`]).
    pub norm: Option<Norm>,
    /// Configuration.
    #[module(skip)]
    pub config: Dinov2Config,
    #[module(skip)]
    pos_cache: PosResampleCache,
}

impl Dinov2 {
    /// Set the stochastic depth rate of the last block; block `i` of `n` gets
    /// `rate · i / (n − 1)`.
    pub fn set_drop_path(&mut self, rate: f64) {
        self.config.drop_path_rate = rate;
        let n = self.blocks.len();
        for (i, block) in self.blocks.iter_mut().enumerate() {
            block.drop_path.prob = if n > 1 {
                rate * i as f64 / (n - 1) as f64
            } else {
                rate
            };
        }
    }

    /// Assemble a backbone from parts (used by the checkpoint loaders).
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        config: Dinov2Config,
        patch_weight: Param<Tensor<4>>,
        patch_bias: Param<Tensor<1>>,
        cls_token: Param<Tensor<3>>,
        mask_token: Option<Param<Tensor<2>>>,
        register_tokens: Option<Param<Tensor<3>>>,
        pos_embed: Param<Tensor<3>>,
        blocks: Vec<Block>,
        norm: Option<Norm>,
    ) -> Self {
        Self {
            patch_weight,
            patch_bias,
            cls_token,
            mask_token,
            register_tokens,
            pos_embed,
            blocks,
            norm,
            config,
            pos_cache: PosResampleCache::default(),
        }
    }

    /// Position embeddings of the patches for a `gh × gw` grid `[1, gh·gw, D]`: the
    /// checkpoint's grid resampled bicubic with antialiasing (as HF, timm and the original
    /// code do), identity when the grid is the checkpoint's.
    pub fn patch_pos_embed(&self, gh: usize, gw: usize) -> Tensor<3> {
        let d = self.config.hidden_size;
        let src = self.config.pos_grid();
        let patch_pos = self.pos_embed.val().narrow(1, 1, src * src);
        if gh == src && gw == src {
            return patch_pos;
        }
        let device = patch_pos.device();
        let (mh, mw) = self.pos_cache.matrices(src, gh, gw);
        let dtype = patch_pos.dtype();
        let mh = Tensor::<2>::from_data(TensorData::new(mh, [gh, src]), &device);
        let mw = Tensor::<3>::from_data(TensorData::new(mw, [1, gw, src]), &device);
        let (mh, mw) = (cast_to(mh, dtype), cast_to(mw, dtype));
        // [src, src·D] → rows resampled → [gh, src, D] → columns resampled per row.
        let rows = mh
            .matmul(patch_pos.reshape([src, src * d]))
            .reshape([gh, src, d]);
        mw.matmul(rows).reshape([1, gh * gw, d])
    }

    /// Tokens after the final norm (if any) `[B, 1 + R + N, D]` for images `[B, C, H, W]`
    /// (H and W are floored to multiples of the patch size, as the reference convolution does).
    pub fn forward_tokens(&self, pixels: Tensor<4>) -> Tensor<3> {
        let [b, _, _, _] = pixels.dims();
        let p = self.config.patch_size;
        let d = self.config.hidden_size;
        let r = self.config.num_register_tokens;
        // Pixels in the weights' precision (f32 unless cast by `in_precision`).
        let pixels = cast_to(pixels, self.patch_weight.val().dtype());
        let x = conv2d(
            pixels,
            self.patch_weight.val(),
            Some(self.patch_bias.val()),
            ConvOptions::new([p, p], [0, 0], [1, 1], 1),
        );
        let [_, _, gh, gw] = x.dims();
        let patches = x.flatten::<3>(2, 3).swap_dims(1, 2); // [B, N, D]
        let pos = self.pos_embed.val();
        let cls = (self.cls_token.val() + pos.narrow(1, 0, 1)).expand([b, 1, d]);
        let patches = patches + self.patch_pos_embed(gh, gw);
        let mut x = match (&self.register_tokens, r) {
            (Some(regs), 1..) => Tensor::cat(vec![cls, regs.val().expand([b, r, d]), patches], 1),
            _ => Tensor::cat(vec![cls, patches], 1),
        };
        for block in &self.blocks {
            x = block.forward(x);
        }
        match &self.norm {
            Some(norm) => norm.forward(x),
            None => x,
        }
    }

    /// CLS, registers, patch tokens and the pooled feature for images `[B, C, H, W]`.
    pub fn forward(&self, pixels: Tensor<4>) -> Dinov2Output {
        let tokens = self.forward_tokens(pixels);
        let [b, t, d] = tokens.dims();
        let r = self.config.num_register_tokens;
        let cls = tokens.clone().narrow(1, 0, 1).reshape([b, d]);
        let registers = (r > 0).then(|| tokens.clone().narrow(1, 1, r));
        let patches = tokens.narrow(1, 1 + r, t - 1 - r);
        let mean = patches.clone().mean_dim(1).reshape([b, d]);
        let pooled = Tensor::cat(vec![cls.clone(), mean], 1);
        Dinov2Output {
            cls,
            registers,
            patches,
            pooled,
        }
    }

    /// Number of parameters held.
    pub fn num_parameters(&self) -> usize {
        self.num_params()
    }

    /// A backbone with random weights (for training from scratch and tests), on `device`.
    pub fn random(config: &Dinov2Config, device: &Device) -> Self {
        super::load::random_backbone(config, device)
    }
}

/// What a DINOv2 classifier's head reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeadInput {
    /// `concat(CLS, mean of patch tokens)` `[B, 2D]`: transformers'
    /// `Dinov2WithRegistersForImageClassification`.
    #[default]
    ClsAndMeanPatch,
    /// The CLS token `[B, D]`: timm's `global_pool="token"`.
    Cls,
    /// The mean of the patch tokens (registers excluded), normed by `fc_norm` `[B, D]`:
    /// timm's `global_pool="avg"`.
    MeanPatch,
}

/// A DINOv2 backbone with a linear head on a pooled feature, as
/// `Dinov2WithRegistersForImageClassification` or timm's ViT classifiers.
#[derive(Module, Debug)]
pub struct Dinov2Classifier {
    /// The backbone.
    pub backbone: Dinov2,
    /// timm's LayerNorm after average pooling (only with [`HeadInput::MeanPatch`]).
    pub fc_norm: Option<Norm>,
    /// `Linear(2D or D, num_labels)`.
    pub head: Linear,
    /// What the head reads.
    #[module(skip)]
    pub head_input: HeadInput,
}

impl Dinov2Classifier {
    /// Logits `[B, num_labels]` for images `[B, C, H, W]`.
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<2> {
        self.forward_all(pixels).1
    }

    /// Logits together with the backbone's outputs.
    pub fn forward_all(&self, pixels: Tensor<4>) -> (Dinov2Output, Tensor<2>) {
        let out = self.backbone.forward(pixels);
        let (_, logits) = self.features_and_logits(&out);
        (out, logits)
    }

    /// The feature the head reads, in f32, and the logits, from the backbone's outputs.
    pub(crate) fn features_and_logits(&self, out: &Dinov2Output) -> (Tensor<2>, Tensor<2>) {
        let features = f32(self.head_features(out));
        let logits = self.head.forward(features.clone());
        (features, logits)
    }

    /// The feature the head reads, from the backbone's outputs.
    pub fn head_features(&self, out: &Dinov2Output) -> Tensor<2> {
        match self.head_input {
            HeadInput::ClsAndMeanPatch => out.pooled.clone(),
            HeadInput::Cls => out.cls.clone(),
            HeadInput::MeanPatch => {
                let [b, _, d] = out.patches.dims();
                let mean = out.patches.clone().mean_dim(1).reshape([b, d]);
                match &self.fc_norm {
                    Some(norm) => norm.forward(mean),
                    None => mean,
                }
            }
        }
    }

    /// Number of labels of the head.
    pub fn num_labels(&self) -> usize {
        self.head.weight.dims()[1]
    }
}
