//! ConvNeXt's 7×7 depthwise convolution on channels-last data as one backend operation
//! with its own backward pass. Composed of burn ops, training permutes to `[B, C, H, W]`
//! and back around a grouped `conv2d` whose backward (a transposed convolution for the
//! input, a grouped weight gradient) is generic code: a fifth of a ConvNeXt-V2-T step on
//! the CPU. On Flex in f32 all three directions here are channels-last loops that
//! vectorise over the channels; elsewhere the backend's own `conv2d` and its backward.

use burn::backend::ops::{ConvOptions, FloatTensorOps, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, TensorMetadata};
use burn::tensor::Tensor;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::config::DW_KERNEL;
use crate::device::runs_extensions;
use crate::flex_ops::{flex_tensor, row_major, values};

const PAD: usize = DW_KERNEL / 2;
const TAPS: usize = DW_KERNEL * DW_KERNEL;

/// Backends with the channels-last depthwise 7×7 convolution as one differentiable
/// operation: Flex (channels-last kernels), the cubecl GPU backends and autodiff over
/// either. The default bodies run the backend's grouped `conv2d` and its backward on
/// `[B, C, H, W]` views.
#[burn::backend::backend_extension(Flex, Autodiff: cfg(feature = "train"), Cube: cfg(feature = "gpu"))]
pub trait DepthwiseConvBackend: Backend {
    /// `y = depthwise_conv7×7(x) + bias` for `x` `[B, H, W, C]`, `weight` `[C, 1, 7, 7]`,
    /// zero padding 3, stride 1; `y` `[B, H, W, C]`.
    fn depthwise_conv7(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let c = weight.shape()[0];
        let y = Self::conv2d(nchw::<Self>(x), weight, Some(bias), options(c));
        Self::float_permute(y, &[0, 2, 3, 1])
    }

    /// The gradient of [`Self::depthwise_conv7`] with respect to `x`, given the output's
    /// gradient `grad`.
    fn depthwise_conv7_x_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let c = weight.shape()[0];
        let g = Self::conv2d_x_backward(nchw::<Self>(x), weight, nchw::<Self>(grad), options(c));
        Self::float_permute(g, &[0, 2, 3, 1])
    }

    /// The gradient of [`Self::depthwise_conv7`] with respect to `weight` `[C, 1, 7, 7]`.
    fn depthwise_conv7_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let c = weight.shape()[0];
        Self::conv2d_weight_backward(nchw::<Self>(x), weight, nchw::<Self>(grad), options(c))
    }
}

fn options(channels: usize) -> ConvOptions<2> {
    ConvOptions::new([1, 1], [PAD, PAD], [1, 1], channels)
}

/// `[B, H, W, C]` → `[B, C, H, W]` (a view).
fn nchw<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    B::float_permute(x, &[0, 3, 1, 2])
}

/// `depthwise_conv7×7(x) + bias` over channels-last `x` `[B, H, W, C]` with `weight`
/// `[C, 1, 7, 7]`, as one differentiable operation; `None` on a backend without it.
pub fn depthwise_conv7(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>) -> Option<Tensor<4>> {
    let c = x.dims()[3];
    if !runs_extensions(&x.device())
        || weight.dims() != [c, 1, DW_KERNEL, DW_KERNEL]
        || bias.dims() != [c]
    {
        return None;
    }
    let y = <Dispatch as DepthwiseConvBackend>::depthwise_conv7(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
    );
    Some(Tensor::from_dispatch(y))
}

/// `[B, H, W, C]` of a 4-D tensor.
fn dims4(t: &FlexTensor) -> Option<[usize; 4]> {
    let s = t.shape();
    (s.num_dims() == 4).then(|| [s[0], s[1], s[2], s[3]])
}

/// The weights `[C, 7·7]` as taps `[7·7, C]`, flipped in both directions when `flip`
/// (the input gradient is the convolution of the output's gradient with the flipped
/// kernel).
fn taps(weight: &[f32], c: usize, flip: bool) -> Vec<f32> {
    let mut taps = vec![0f32; TAPS * c];
    for ch in 0..c {
        for t in 0..TAPS {
            let src = if flip { TAPS - 1 - t } else { t };
            taps[t * c + ch] = weight[ch * TAPS + src];
        }
    }
    taps
}

/// `out = bias + Σ taps ∘ shifted input` over channels-last images `[B, H, W, C]`.
fn convolve(input: &[f32], [b, h, w, c]: [usize; 4], taps: &[f32], bias: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; b * h * w * c];
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(w * c)
        .enumerate()
        .for_each(|(row, out_row)| {
            let (img, y) = (row / h, row % h);
            let image = &input[img * h * w * c..(img + 1) * h * w * c];
            convolve_row(image, (h, w, c), y, taps, bias, out_row);
        });
    out
}

fn convolve_row(
    image: &[f32],
    (h, w, c): (usize, usize, usize),
    y: usize,
    taps: &[f32],
    bias: &[f32],
    out: &mut [f32],
) {
    for px in out.chunks_exact_mut(c) {
        px.copy_from_slice(bias);
    }
    for ky in 0..DW_KERNEL {
        let Some(iy) = (y + ky).checked_sub(PAD).filter(|&iy| iy < h) else {
            continue;
        };
        let in_row = &image[iy * w * c..(iy + 1) * w * c];
        for kx in 0..DW_KERNEL {
            let tap = &taps[(ky * DW_KERNEL + kx) * c..][..c];
            // Output columns x whose input column x + kx − 3 lies inside the row.
            let lo = PAD.saturating_sub(kx);
            let hi = (w + PAD).saturating_sub(kx).min(w);
            for x in lo..hi {
                let ix = x + kx - PAD;
                axpy_mul(
                    &mut out[x * c..(x + 1) * c],
                    tap,
                    &in_row[ix * c..(ix + 1) * c],
                );
            }
        }
    }
}

/// `acc += a ∘ b`.
#[inline(always)]
fn axpy_mul(acc: &mut [f32], a: &[f32], b: &[f32]) {
    for ((o, a), b) in acc.iter_mut().zip(a).zip(b) {
        *o += a * b;
    }
}

/// `∂w[c, ky, kx] = Σ grad[b, y, x, c] · input[b, y + ky − 3, x + kx − 3, c]` as
/// `[C, 1, 7, 7]`: one partial sum per image row in parallel, added in row order so the
/// result does not depend on the thread count.
fn weight_grad(input: &[f32], grad: &[f32], [b, h, w, c]: [usize; 4]) -> Vec<f32> {
    let partials: Vec<Vec<f32>> = (0..b * h)
        .into_par_iter()
        .map(|row| {
            let (img, y) = (row / h, row % h);
            let image = &input[img * h * w * c..(img + 1) * h * w * c];
            let g_row = &grad[row * w * c..(row + 1) * w * c];
            let mut part = vec![0f32; TAPS * c];
            for ky in 0..DW_KERNEL {
                let Some(iy) = (y + ky).checked_sub(PAD).filter(|&iy| iy < h) else {
                    continue;
                };
                let in_row = &image[iy * w * c..(iy + 1) * w * c];
                for kx in 0..DW_KERNEL {
                    let acc = &mut part[(ky * DW_KERNEL + kx) * c..][..c];
                    let lo = PAD.saturating_sub(kx);
                    let hi = (w + PAD).saturating_sub(kx).min(w);
                    for x in lo..hi {
                        let ix = x + kx - PAD;
                        axpy_mul(
                            acc,
                            &g_row[x * c..(x + 1) * c],
                            &in_row[ix * c..(ix + 1) * c],
                        );
                    }
                }
            }
            part
        })
        .collect();
    let mut sum = vec![0f32; TAPS * c];
    for part in &partials {
        sum.iter_mut().zip(part).for_each(|(s, p)| *s += p);
    }
    // [7·7, C] → [C, 7·7]
    let mut out = vec![0f32; c * TAPS];
    for t in 0..TAPS {
        for ch in 0..c {
            out[ch * TAPS + t] = sum[t * c + ch];
        }
    }
    out
}

impl DepthwiseConvBackend for burn::backend::Flex {
    fn depthwise_conv7(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        let (Some(dims), Some(xs), Some(ws), Some(bs)) = (
            dims4(&x),
            row_major(&x),
            row_major(&weight),
            row_major(&bias),
        ) else {
            let c = weight.shape()[0];
            let y = Self::conv2d(nchw::<Self>(x), weight, Some(bias), options(c));
            return Self::float_permute(y, &[0, 2, 3, 1]);
        };
        let out = convolve(
            values(&xs),
            dims,
            &taps(values(&ws), dims[3], false),
            values(&bs),
        );
        flex_tensor(out, dims)
    }

    fn depthwise_conv7_x_grad(x: FlexTensor, weight: FlexTensor, grad: FlexTensor) -> FlexTensor {
        let (Some(dims), Some(ws), Some(gs)) = (dims4(&x), row_major(&weight), row_major(&grad))
        else {
            let c = weight.shape()[0];
            let g =
                Self::conv2d_x_backward(nchw::<Self>(x), weight, nchw::<Self>(grad), options(c));
            return Self::float_permute(g, &[0, 2, 3, 1]);
        };
        let zeros = vec![0f32; dims[3]];
        let out = convolve(values(&gs), dims, &taps(values(&ws), dims[3], true), &zeros);
        flex_tensor(out, dims)
    }

    fn depthwise_conv7_weight_grad(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
    ) -> FlexTensor {
        let (Some(dims), Some(xs), Some(gs)) = (dims4(&x), row_major(&x), row_major(&grad)) else {
            let c = weight.shape()[0];
            return Self::conv2d_weight_backward(
                nchw::<Self>(x),
                weight,
                nchw::<Self>(grad),
                options(c),
            );
        };
        let out = weight_grad(values(&xs), values(&gs), dims);
        flex_tensor(out, [dims[3], 1, DW_KERNEL, DW_KERNEL])
    }
}

/// The backend's own grouped `conv2d` and its backward.
#[cfg(feature = "gpu")]
impl DepthwiseConvBackend for burn::backend::Cube {}

#[cfg(feature = "train")]
mod autodiff {
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops};
    use burn::backend::autodiff::{Autodiff, NodeId};
    use burn::backend::tensor::FloatTensor;
    use burn::backend::{Shape, TensorMetadata};

    use super::DepthwiseConvBackend;
    use crate::extension_autodiff::record;

    /// The backward step: input and weight kept as checkpoints.
    #[derive(Debug)]
    struct DepthwiseConv7;

    impl<B: DepthwiseConvBackend> Backward<B, 3> for DepthwiseConv7 {
        type State = (NodeId, NodeId);

        fn backward(
            self,
            ops: Ops<Self::State, 3>,
            grads: &mut Gradients,
            checkpointer: &mut Checkpointer,
        ) {
            let [x_node, w_node, b_node] = ops.parents;
            let grad = grads.consume::<B>(&ops.node);
            let x: FloatTensor<B> = checkpointer.retrieve_node_output(ops.state.0);
            let w: FloatTensor<B> = checkpointer.retrieve_node_output(ops.state.1);
            if let Some(node) = b_node {
                let s = grad.shape();
                let rows = B::float_reshape(grad.clone(), Shape::new([s[0] * s[1] * s[2], s[3]]));
                let sum = B::float_sum_dim(rows, 0);
                grads.register::<B>(node.id, B::float_reshape(sum, Shape::new([s[3]])));
            }
            if let Some(node) = w_node {
                let g = B::depthwise_conv7_weight_grad(x.clone(), w.clone(), grad.clone());
                grads.register::<B>(node.id, g);
            }
            if let Some(node) = x_node {
                grads.register::<B>(node.id, B::depthwise_conv7_x_grad(x, w, grad));
            }
        }
    }

    impl<B: DepthwiseConvBackend, C: CheckpointStrategy> DepthwiseConvBackend for Autodiff<B, C> {
        fn depthwise_conv7(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            bias: FloatTensor<Self>,
        ) -> FloatTensor<Self> {
            record::<B, C, _, 3>(
                DepthwiseConv7,
                [x, weight, bias],
                |keep| (keep(0), keep(1)),
                |[x, weight, bias]| B::depthwise_conv7(x, weight, bias),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::module::conv2d;
    use burn::tensor::{Device, Distribution};

    use super::*;
    use crate::test_support::sampled_dims;

    /// burn's own grouped convolution on the `[B, C, H, W]` view.
    fn burns(x: Tensor<4>, w: Tensor<4>, b: Tensor<1>) -> Tensor<4> {
        let c = x.dims()[3];
        conv2d(x.permute([0, 3, 1, 2]), w, Some(b), {
            burn::tensor::ops::ConvOptions::new([1, 1], [PAD, PAD], [1, 1], c)
        })
        .permute([0, 2, 3, 1])
    }

    fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    /// Shapes from a seeded generator (images 1–6 px, narrower than the kernel,
    /// included), and a ConvNeXt stage's own.
    fn shapes() -> Vec<[usize; 4]> {
        let mut out = sampled_dims(0x2545_f491_4f6c_dd1d, 8, [3, 12, 12, 20]);
        out.extend([[1, 1, 1, 3], [2, 3, 6, 5], [2, 14, 14, 96]]);
        out
    }

    #[test]
    fn empty_images_give_empty_answers_and_zero_gradients() {
        let device = Device::default();
        let x: Tensor<4> = Tensor::zeros([2, 0, 5, 3], &device);
        let w: Tensor<4> = Tensor::zeros([3, 1, DW_KERNEL, DW_KERNEL], &device);
        let y = depthwise_conv7(x, w, Tensor::zeros([3], &device)).unwrap();
        assert_eq!(y.dims(), [2, 0, 5, 3]);
        for [b, h, w, c] in [[2, 3, 0, 4], [0, 3, 3, 2], [1, 2, 2, 0]] {
            let x: Tensor<4> = Tensor::zeros([b, h, w, c], &device);
            let wt: Tensor<4> = Tensor::ones([c, 1, DW_KERNEL, DW_KERNEL], &device);
            assert_eq!(
                depthwise_conv7(x, wt, Tensor::ones([c], &device))
                    .unwrap()
                    .dims(),
                [b, h, w, c]
            );
        }
        #[cfg(feature = "train")]
        {
            let ad = device.autodiff();
            let x: Tensor<4> = Tensor::<4>::zeros([2, 3, 0, 4], &ad).require_grad();
            let wt = Tensor::<4>::ones([4, 1, DW_KERNEL, DW_KERNEL], &ad).require_grad();
            let bias = Tensor::<1>::ones([4], &ad).require_grad();
            let y = depthwise_conv7(x.clone(), wt.clone(), bias.clone()).unwrap();
            let grads = y.sum().backward();
            assert_eq!(x.grad(&grads).unwrap().dims(), [2, 3, 0, 4]);
            let gw: f32 = wt.grad(&grads).unwrap().abs().sum().into_scalar();
            let gb: f32 = bias.grad(&grads).unwrap().abs().sum().into_scalar();
            assert_eq!((gw, gb), (0.0, 0.0));
        }
    }

    #[test]
    fn the_forward_pass_equals_burns_grouped_conv2d() {
        let device = Device::default();
        let n = Distribution::Normal(0.0, 1.0);
        for [b, h, w, c] in shapes() {
            let x: Tensor<4> = Tensor::random([b, h, w, c], n, &device);
            let wt: Tensor<4> = Tensor::random([c, 1, DW_KERNEL, DW_KERNEL], n, &device);
            let bias: Tensor<1> = Tensor::random([c], n, &device);
            let want = burns(x.clone(), wt.clone(), bias.clone());
            let got = depthwise_conv7(x, wt, bias).expect("Flex runs it");
            assert!(max_diff(got, want) < 1e-4, "{b}×{h}×{w}×{c}");
        }
    }

    #[cfg(feature = "train")]
    #[test]
    fn the_backward_pass_equals_burns_autodiff() {
        let host = Device::default();
        let device = host.clone().autodiff();
        let n = Distribution::Normal(0.0, 1.0);
        for [b, h, w, c] in shapes() {
            let x: Tensor<4> = Tensor::random([b, h, w, c], n, &host);
            let wt: Tensor<4> = Tensor::random([c, 1, DW_KERNEL, DW_KERNEL], n, &host);
            let bias: Tensor<1> = Tensor::random([c], n, &host);
            // The output's gradient arrives in another layout, as from a permute.
            let probe: Tensor<4> = Tensor::random([b, c, h, w], n, &host);
            let grads = |f: &dyn Fn(Tensor<4>, Tensor<4>, Tensor<1>) -> Tensor<4>| {
                let on =
                    |t: &Tensor<4>| Tensor::<4>::from_data(t.to_data(), &device).require_grad();
                let (x, wt) = (on(&x), on(&wt));
                let bias = Tensor::<1>::from_data(bias.to_data(), &device).require_grad();
                let probe = Tensor::<4>::from_data(probe.to_data(), &device);
                let loss =
                    (f(x.clone(), wt.clone(), bias.clone()).permute([0, 3, 1, 2]) * probe).sum();
                let g = loss.backward();
                let back = |t: Tensor<4>| Tensor::<4>::from_data(t.to_data(), &host);
                (
                    back(x.grad(&g).unwrap()),
                    back(wt.grad(&g).unwrap()),
                    Tensor::<1>::from_data(bias.grad(&g).unwrap().to_data(), &host),
                )
            };
            let want = grads(&|x, w, b| burns(x, w, b));
            let got = grads(&|x, w, b| depthwise_conv7(x, w, b).unwrap());
            let tol = |t: &Tensor<4>| 1e-5 * t.clone().abs().max().into_scalar::<f32>().max(1.0);
            let shape = format!("{b}×{h}×{w}×{c}");
            assert!(max_diff(got.0, want.0.clone()) < tol(&want.0), "x {shape}");
            assert!(
                max_diff(got.1, want.1.clone()) < tol(&want.1),
                "weight {shape}"
            );
            let tb = 1e-5 * want.2.clone().abs().max().into_scalar::<f32>().max(1.0);
            assert!(max_diff(got.2, want.2) < tb, "bias {shape}");
        }
    }
}
