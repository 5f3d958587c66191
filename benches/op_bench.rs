//! Op-level timings of one ViT block's pieces on the Flex backend, to see where the time
//! of a forward pass goes. `op_bench [tokens] [dim] [heads] [batch]`.

use std::time::Instant;

use burn::tensor::activation::gelu;
use burn::tensor::module::{attention, layer_norm};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Distribution, Tensor};

fn time<const D: usize>(name: &str, reps: usize, mut f: impl FnMut() -> Tensor<D>) {
    let _ = f().into_data();
    let t = Instant::now();
    for _ in 0..reps {
        let _ = f().into_data();
    }
    println!(
        "{name:<28} {:>9.3} ms",
        t.elapsed().as_secs_f64() * 1e3 / reps as f64
    );
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("number"))
        .collect();
    let (t, d, h, b) = (
        *args.first().unwrap_or(&261),
        *args.get(1).unwrap_or(&384),
        *args.get(2).unwrap_or(&6),
        *args.get(3).unwrap_or(&1),
    );
    let device = Device::flex();
    println!("device {device:?}, tokens {t}, dim {d}, heads {h}, batch {b}");
    let n = Distribution::Normal(0.0, 1.0);
    let x: Tensor<3> = Tensor::random([b, t, d], n, &device);
    let w_qkv: Tensor<2> = Tensor::random([d, 3 * d], n, &device);
    let w1: Tensor<2> = Tensor::random([d, 4 * d], n, &device);
    let w2: Tensor<2> = Tensor::random([4 * d, d], n, &device);
    let g: Tensor<1> = Tensor::ones([d], &device);
    let hidden: Tensor<3> = Tensor::random([b, t, 4 * d], n, &device);
    let q: Tensor<4> = Tensor::random([b, h, t, d / h], n, &device);
    let reps = 20;
    time("layer_norm", reps, || {
        layer_norm(x.clone(), g.clone(), Some(g.clone()), 1e-6)
    });
    time("matmul qkv [T,D]x[D,3D]", reps, || {
        x.clone().matmul(w_qkv.clone().unsqueeze())
    });
    time("matmul fc1 [T,D]x[D,4D]", reps, || {
        x.clone().matmul(w1.clone().unsqueeze())
    });
    time("matmul fc2 [T,4D]x[4D,D]", reps, || {
        hidden.clone().matmul(w2.clone().unsqueeze())
    });
    time("gelu [T,4D]", reps, || gelu(hidden.clone()));
    let b1: Tensor<1> = Tensor::zeros([4 * d], &device);
    time("fused bias+gelu [T,4D]", reps, || {
        sv_models::fast_ops::bias_gelu(hidden.clone(), Some(b1.clone()))
    });
    let mut raw = vec![0.5f32; t * 4 * d];
    let t0 = Instant::now();
    for _ in 0..reps {
        for v in raw.iter_mut() {
            *v = sv_models::fast_ops::gelu_erf(*v);
        }
    }
    println!(
        "{:<28} {:>9.3} ms",
        "gelu_erf loop, 1 thread",
        t0.elapsed().as_secs_f64() * 1e3 / reps as f64
    );
    time("fc1 matmul + bias + gelu", reps, || {
        gelu(x.clone().matmul(w1.clone().unsqueeze()) + b1.clone().unsqueeze())
    });
    time("fc1 matmul + fused", reps, || {
        sv_models::fast_ops::bias_gelu(x.clone().matmul(w1.clone().unsqueeze()), Some(b1.clone()))
    });
    time("into_data+from_data", reps, || {
        let data = hidden.clone().into_data();
        Tensor::<3>::from_data(data, &device)
    });
    time("attention", reps, || {
        attention(
            q.clone(),
            q.clone(),
            q.clone(),
            None,
            None,
            AttentionModuleOptions::default(),
        )
    });
    time("add [T,D]", reps, || x.clone() + x.clone());
    time("permute+reshape copy", reps, || {
        x.clone()
            .reshape([b, t, h, d / h])
            .swap_dims(1, 2)
            .reshape([b * h, t, d / h])
            + 0.0
    });
}
