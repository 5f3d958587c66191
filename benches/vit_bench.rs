//! ViT (DINOv2 with registers) inference throughput on burn's Flex CPU backend.
//!
//! `vit_bench --model small --batch 8 --iters 10` prints one JSON line with images/s and
//! peak resident memory; `benches/run_vit.sh` runs it beside `benches/torch_vit.py`
//! (PyTorch, same configs, same inputs) and writes the comparison table.

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};
use sv_models::{Dinov2, Dinov2Classifier, Dinov2Config};

/// As in `sv-miner`: see the workspace manifest.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    model: String,
    batch: usize,
    size: usize,
    iters: usize,
    warmup: usize,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        model: "small".into(),
        batch: 1,
        size: 224,
        iters: 10,
        warmup: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => args.model = value()?,
            "--batch" => args.batch = value()?.parse().map_err(|e| format!("--batch: {e}"))?,
            "--size" => args.size = value()?.parse().map_err(|e| format!("--size: {e}"))?,
            "--iters" => args.iters = value()?.parse().map_err(|e| format!("--iters: {e}"))?,
            "--warmup" => args.warmup = value()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--help" | "-h" => {
                println!(
                    "vit_bench [--model small|base|large|giant] [--batch N] [--size PX] [--iters N] [--warmup N]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

/// Peak resident set size of this process in MiB (Linux `VmHWM`).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    let args = parse().unwrap_or_else(|e| {
        eprintln!("vit_bench: {e}");
        std::process::exit(2);
    });
    let config = Dinov2Config::by_name(&args.model).unwrap_or_else(|| {
        eprintln!("vit_bench: unknown model {}", args.model);
        std::process::exit(2);
    });
    let device = Device::default();
    let model = Dinov2Classifier::with_new_head(Dinov2::random(&config, &device), 2);
    let input: Tensor<4> = Tensor::random(
        [args.batch, 3, args.size, args.size],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let run = || {
        let logits = model.forward(input.clone());
        // Reading the result back forces the whole graph to execute.
        logits.into_data().try_to_vec::<f32>().expect("f32 logits")
    };
    for _ in 0..args.warmup {
        run();
    }
    let mut times = Vec::with_capacity(args.iters);
    for _ in 0..args.iters {
        let t = Instant::now();
        run();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let line = serde_json::json!({
        "impl": "burn-flex",
        "model": args.model,
        "batch": args.batch,
        "size": args.size,
        "iters": args.iters,
        "median_s": median,
        "images_per_s": args.batch as f64 / median,
        "peak_rss_mib": peak_rss_mib(),
    });
    println!("{line}");
}
