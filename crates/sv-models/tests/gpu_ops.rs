//! The backend extensions on a GPU device against the same operations on the CPU (Flex
//! kernels), in both directions: the outputs, and the gradients of a weighted sum of
//! the outputs with respect to every input.
//!
//! Runs where a GPU backend is compiled in (`--features wgpu,train`, `vulkan` or
//! `cuda`) and `SV_TEST_GPU_DEVICE` names the device (`wgpu`, `vulkan`, `cuda:0`);
//! `tools/gpu-offline.sh` runs it on Mesa's software Vulkan driver, on a machine
//! without a GPU. Without a device named, every test returns at once and says why; a
//! device this build lacks fails them.
#![cfg(feature = "train")]

use burn::tensor::{Distribution, TensorData};
use sv_models::convnext::depthwise::depthwise_conv7;
use sv_models::convnext::grn::grn;
use sv_models::exact_gelu::exact_gelu;
use sv_models::fused_linear::fused_linear;
use sv_models::layer_norm::fused_layer_norm;
use sv_models::qkv_attention::qkv_attention;
use sv_models::{Device, Tensor};

/// Largest difference allowed, relative to the largest magnitude of the CPU's answer:
/// `SV_TEST_GPU_TOLERANCE`, else 1e-4. f32 on both sides differs only in the order of
/// sums (lavapipe: at most 1.7e-6); burn's tanh-approximate GELU derivative was
/// 7e-4 off. A runtime that rounds matmul operands to TF32 needs about 2e-3.
fn tolerance() -> f32 {
    std::env::var("SV_TEST_GPU_TOLERANCE")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(1e-4)
}

/// The GPU named by `SV_TEST_GPU_DEVICE`, or `None` (and a note) when none is named.
fn gpu() -> Option<Device> {
    let Some(name) = std::env::var("SV_TEST_GPU_DEVICE")
        .ok()
        .filter(|n| !n.is_empty())
    else {
        eprintln!("skipped: SV_TEST_GPU_DEVICE names no GPU device");
        return None;
    };
    let device = sv_models::device_by_name(&name)
        .unwrap_or_else(|e| panic!("SV_TEST_GPU_DEVICE={name}: {e}"));
    Some(device)
}

/// An operation over flat inputs (each reshaped inside), giving a flat output.
type Op<'a> = &'a dyn Fn(Vec<Tensor<1>>) -> Tensor<1>;

/// Fixed weights in [-1, 1) for `n` outputs, the same on every device.
fn weights(n: usize, device: &Device) -> Tensor<1> {
    let w: Vec<f32> = (0..n as u64)
        .map(|i| (i * 2_654_435_761 % 1000) as f32 / 500.0 - 1.0)
        .collect();
    Tensor::from_data(TensorData::new(w, [n]), device)
}

/// The output of `op` on `device` and the gradients of `Σ output·weights` with respect
/// to each input, as host values.
fn output_and_gradients(
    device: &Device,
    inputs: &[Tensor<1>],
    op: Op,
) -> (Vec<f32>, Vec<Vec<f32>>) {
    let device = device.clone().autodiff();
    let leaves: Vec<Tensor<1>> = inputs
        .iter()
        .map(|t| Tensor::from_data(t.to_data(), &device).require_grad())
        .collect();
    let out = op(leaves.clone());
    let weight = weights(out.dims()[0], &device);
    let grads = (out.clone() * weight).sum().backward();
    let values = |d: TensorData| d.convert::<f32>().try_to_vec::<f32>().expect("f32 values");
    let gradients = leaves
        .iter()
        .enumerate()
        .map(|(i, leaf)| {
            let g = leaf.grad(&grads);
            values(
                g.unwrap_or_else(|| panic!("no gradient for input {i}"))
                    .into_data(),
            )
        })
        .collect();
    (values(out.into_data()), gradients)
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
    let (at, diff) = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .enumerate()
        .fold((0, 0f32), |best, (i, d)| {
            if d > best.1 || d.is_nan() {
                (i, d)
            } else {
                best
            }
        });
    // Shown with `--nocapture`: exactly 0 everywhere would mean that both sides ran on
    // one device.
    eprintln!(
        "{what}: largest difference {:.2e} of the largest magnitude",
        diff / scale
    );
    assert!(
        diff <= tolerance() * scale,
        "{what}: differs by {diff:.3e} at {at} (GPU {}, CPU {}; largest magnitude {scale:.3e})",
        got[at],
        want[at]
    );
}

/// Runs `op` on the CPU and on `gpu` over the same random inputs of `shapes`, and
/// compares the outputs and every input's gradient.
fn check(gpu: &Device, name: &str, shapes: &[&[usize]], op: Op) {
    // Flex: `Device::default()` is the GPU in a build with a GPU backend.
    let cpu = Device::flex();
    let inputs: Vec<Tensor<1>> = shapes
        .iter()
        .map(|s| {
            let n = s.iter().product::<usize>();
            Tensor::random([n], Distribution::Normal(0.0, 1.0), &cpu)
        })
        .collect();
    let (want, want_grads) = output_and_gradients(&cpu, &inputs, op);
    let (got, got_grads) = output_and_gradients(gpu, &inputs, op);
    let what = format!("{name} {shapes:?}");
    assert_close(&format!("{what}: output"), &got, &want);
    for (i, (g, w)) in got_grads.iter().zip(&want_grads).enumerate() {
        assert_close(&format!("{what}: gradient of input {i}"), g, w);
    }
}

fn flat<const D: usize>(t: Tensor<D>) -> Tensor<1> {
    let n = t.dims().iter().product::<usize>();
    t.reshape([n])
}

#[test]
fn attention_equals_the_cpu() {
    let Some(gpu) = gpu() else { return };
    // (images, tokens, heads, head width): odd widths and token counts, and DINOv2-S's
    // own head shape.
    for (b, t, h, dh) in [(2, 5, 2, 8), (1, 17, 3, 5), (2, 37, 6, 64)] {
        let d = h * dh;
        check(&gpu, "qkv_attention", &[&[b * t, 3 * d]], &|x| {
            let qkv = x[0].clone().reshape([b * t, 3 * d]);
            flat(qkv_attention(qkv, b, h).expect("the backend has qkv_attention"))
        });
    }
}

#[test]
fn layer_norm_equals_the_cpu() {
    let Some(gpu) = gpu() else { return };
    for (r, d) in [(7, 33), (74, 384)] {
        check(&gpu, "fused_layer_norm", &[&[r, d], &[d], &[d]], &|x| {
            let out = fused_layer_norm(
                x[0].clone().reshape([r, d]),
                x[1].clone(),
                x[2].clone(),
                1e-6,
            );
            flat(out.expect("the backend has layer_norm"))
        });
    }
}

#[test]
fn grn_equals_the_cpu() {
    let Some(gpu) = gpu() else { return };
    for (b, n, c) in [(2, 9, 16), (1, 49, 96)] {
        check(&gpu, "grn", &[&[b, n, c], &[c], &[c]], &|x| {
            let out = grn(x[0].clone().reshape([b, n, c]), x[1].clone(), x[2].clone());
            flat(out.expect("the backend has grn"))
        });
    }
}

#[test]
fn linear_equals_the_cpu() {
    let Some(gpu) = gpu() else { return };
    for (m, k, n) in [(5, 7, 3), (74, 384, 96)] {
        check(&gpu, "fused_linear", &[&[m, k], &[k, n], &[n]], &|x| {
            let (a, w) = (x[0].clone().reshape([m, k]), x[1].clone().reshape([k, n]));
            flat(fused_linear(a, w, Some(x[2].clone())).expect("the backend has fused_linear"))
        });
        check(
            &gpu,
            "fused_linear without bias",
            &[&[m, k], &[k, n]],
            &|x| {
                let (a, w) = (x[0].clone().reshape([m, k]), x[1].clone().reshape([k, n]));
                flat(fused_linear(a, w, None).expect("the backend has fused_linear"))
            },
        );
    }
}

#[test]
fn gelu_equals_the_cpu() {
    let Some(gpu) = gpu() else { return };
    check(&gpu, "exact_gelu", &[&[3, 1000]], &|x| {
        flat(exact_gelu(x[0].clone().reshape([3, 1000]) * 3.0))
    });
}

#[test]
fn depthwise_equals_the_cpu() {
    let Some(gpu) = gpu() else { return };
    // Channels-last images, one smaller than the 7×7 kernel.
    for (b, h, w, c) in [(2, 5, 6, 8), (1, 14, 14, 32)] {
        check(
            &gpu,
            "depthwise_conv7",
            &[&[b, h, w, c], &[c, 1, 7, 7], &[c]],
            &|x| {
                let out = depthwise_conv7(
                    x[0].clone().reshape([b, h, w, c]),
                    x[1].clone().reshape([c, 1, 7, 7]),
                    x[2].clone(),
                );
                flat(out.expect("the backend has the depthwise convolution"))
            },
        );
    }
}

/// A fixture classifier checkpoint of this repository.
fn fixture(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(path)
}

/// Whole networks: the logits of fixture checkpoints on random images, and the images'
/// gradient of a weighted sum of them, which runs every layer's backward pass.
#[test]
fn whole_networks_equal_the_cpu() {
    let Some(gpu) = gpu() else { return };
    for (checkpoint, size) in [
        ("dinov2/hf_mlp.safetensors", 56),
        ("convnext/hf_cls.safetensors", 64),
    ] {
        let path = fixture(checkpoint);
        check(&gpu, checkpoint, &[&[2, 3, size, size]], &|x| {
            // Loaded where the images are: the CPU or the GPU, under autodiff or not.
            let opts = sv_models::NetworkOptions::default();
            let network = sv_models::Network::load(&path, &opts, &x[0].device())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            flat(network.forward(x[0].clone().reshape([2, 3, size, size])))
        });
    }
}
