//! Fine-tune step throughput on burn's Flex CPU backend: one AdamW step (forward,
//! cross-entropy, backward, the update over the model's parameter groups) of DINOv2 with
//! registers (`small`, `base`) or ConvNeXt-V2 (`convnextv2-tiny`, …) with random weights
//! and a new two-label head, on a random batch.
//!
//! `train_bench --model small --batch 8 --iters 3` prints one JSON line with images/s
//! and peak resident memory; `benches/run_train.sh` runs it beside
//! `benches/torch_train.py` (PyTorch, the same step) and writes the comparison table.

use std::sync::Arc;
use std::time::Instant;

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Distribution, Tensor};
use sv_models::{
    ConvNextV2, ConvNextV2Classifier, ConvNextV2Config, Dinov2, Dinov2Classifier, Dinov2Config,
    Family, Precision, in_precision,
};
use sv_train::finetune::one_hot;
use sv_train::loss_scale::LossScaler;
use sv_train::optim::{AdamW, AdamWSettings};

#[path = "network_args.rs"]
mod network_args;
use network_args::Args;

/// mimalloc, keeping freed buffers for reuse (`sv_cli::alloc`).
#[global_allocator]
static ALLOC: sv_cli::alloc::Allocator = sv_cli::alloc::Allocator;

/// Seconds of the first step (on a GPU: kernel compilation and autotuning included)
/// and the median of `args.iters` steps after `args.warmup` untimed ones.
fn time_steps<M: Family>(mut model: M, args: &Args, device: &Device) -> (f64, f64) {
    let settings = AdamWSettings {
        weight_decay: 0.05,
        ..AdamWSettings::default()
    };
    let mut optim = AdamW::new(settings, model.param_groups());
    let mut batches = Batches::new(args, device);
    let mut times = Vec::with_capacity(args.iters);
    let mut first = 0.0;
    // As `sv-trainer finetune`: the forward pass on the weights cast to the precision,
    // the loss scaled in f16.
    let mut scaler = (args.precision == Precision::F16).then(LossScaler::new);
    for i in 0..args.warmup.max(1) + args.iters {
        let started = Instant::now();
        let (pixels, onehot) = batches.next();
        let logits = in_precision(model.clone(), args.precision).logits(pixels);
        let rows = onehot.dims()[0].max(1);
        let loss = (log_softmax(logits, 1) * onehot)
            .sum()
            .div_scalar(-(rows as f32));
        let scale = scaler.as_ref().map_or(1.0, LossScaler::scale);
        let grads = loss.mul_scalar(scale).backward();
        let (next, report) = optim.step_scaled(model, 1e-4, &grads, scale);
        if let Some(s) = scaler.as_mut() {
            s.update(!report.skipped);
        }
        model = next;
        // The gradient norm is read back, so the whole step has run.
        std::hint::black_box(report.grad_norm);
        let seconds = started.elapsed().as_secs_f64();
        if i == 0 {
            first = seconds;
        } else if i >= args.warmup.max(1) {
            times.push(seconds);
        }
    }
    times.sort_by(f64::total_cmp);
    (first, times[(times.len() - 1) / 2])
}

/// Where the steps' batches come from: one fixed random batch, or (`--data N`) N
/// synthetic street scenes through the `heavy` augmentation and a resize, decoded and
/// augmented on CPU threads two batches ahead as `sv-trainer finetune` does, so that a
/// GPU's utilisation shows whether it waits for data.
#[allow(clippy::large_enum_variant)] // one per run
enum Batches {
    Fixed(Tensor<4>, Tensor<2>),
    Pipeline {
        source: Box<dyn Iterator<Item = sv_data::ImageBatch>>,
        make: Box<dyn Fn(u64) -> Box<dyn Iterator<Item = sv_data::ImageBatch>>>,
        epoch: u64,
        device: Device,
        _scenes: tempfile::TempDir,
    },
}

impl Batches {
    fn new(args: &Args, device: &Device) -> Self {
        let b = args.batch;
        if args.data == 0 {
            let pixels = Tensor::<4>::random(
                [b, 3, args.size, args.size],
                Distribution::Normal(0.0, 1.0),
                device,
            );
            let labels: Vec<f32> = (0..b).map(|i| (i % 2) as f32).collect();
            return Batches::Fixed(pixels, one_hot(&labels, device));
        }
        let fail = |e: String| -> ! {
            eprintln!("train_bench: --data: {e}");
            std::process::exit(2)
        };
        let scenes = tempfile::tempdir().unwrap_or_else(|e| fail(e.to_string()));
        let samples = sv_data::synthetic::generate(scenes.path(), args.data as u64, 256, 0)
            .unwrap_or_else(|e| fail(e.to_string()));
        let mut pipeline =
            sv_augment::Pipeline::load("heavy").unwrap_or_else(|e| fail(e.to_string()));
        pipeline.steps.push(sv_augment::Step::ResizeTo {
            width: args.size as u32,
            height: args.size as u32,
            filter: sv_augment::Filter::Bicubic,
        });
        let batcher = Arc::new(sv_data::ImageBatcher::augmenting(Arc::new(pipeline), 0));
        let dataset = Arc::new(sv_data::SampleDataset::new(samples));
        let n = args.data;
        let on = device.clone();
        let make = Box::new(
            move |epoch: u64| -> Box<dyn Iterator<Item = sv_data::ImageBatch>> {
                batcher.set_epoch(epoch);
                Box::new(sv_data::epoch_batches(
                    dataset.clone(),
                    batcher.clone(),
                    (0..n).collect(),
                    b,
                    2,
                    on.clone(),
                ))
            },
        );
        Batches::Pipeline {
            source: make(0),
            make,
            epoch: 0,
            device: device.clone(),
            _scenes: scenes,
        }
    }

    /// The next batch's pixels and one-hot targets.
    fn next(&mut self) -> (Tensor<4>, Tensor<2>) {
        match self {
            Batches::Fixed(pixels, targets) => (pixels.clone(), targets.clone()),
            Batches::Pipeline {
                source,
                make,
                epoch,
                device,
                ..
            } => loop {
                match source.next() {
                    Some(batch) if !batch.ids.is_empty() => {
                        return (batch.pixels, one_hot(&batch.labels, device));
                    }
                    Some(_) => continue,
                    None => {
                        *epoch += 1;
                        *source = make(*epoch);
                    }
                }
            },
        }
    }
}

fn main() {
    sv_cli::alloc::keep_freed_memory();
    let args = network_args::parse(
        "train_bench",
        "train_bench [--model small|base|convnextv2-tiny|…] [--device cpu|vulkan|…] [--batch N] [--size PX] [--iters N] [--warmup N] [--precision f32|bf16|f16] [--gradient-checkpointing] [--data SCENES]",
        Args {
            model: "small".into(),
            device: "cpu".into(),
            batch: 8,
            size: 224,
            iters: 3,
            warmup: 1,
            precision: Default::default(),
            checkpointing: false,
            data: 0,
        },
    );
    let mut device = network_args::device("train_bench", &args.device, args.precision).autodiff();
    if args.checkpointing {
        device = device.gradient_checkpointing();
    }
    let (first, median) = if let Some(cfg) = Dinov2Config::by_name(&args.model) {
        let model = Dinov2Classifier::with_new_head(Dinov2::random(&cfg, &device), 2);
        time_steps(model, &args, &device)
    } else if let Some(cfg) = ConvNextV2Config::by_name(&args.model) {
        let backbone = ConvNextV2::random(&cfg, &device).unwrap_or_else(|e| {
            eprintln!("train_bench: {e}");
            std::process::exit(2);
        });
        time_steps(
            ConvNextV2Classifier::with_new_head(backbone, 2),
            &args,
            &device,
        )
    } else {
        eprintln!("train_bench: unknown model {}", args.model);
        std::process::exit(2);
    };
    network_args::print_result(
        &args,
        median,
        serde_json::json!({
            "first_step_s": first,
            "gradient_checkpointing": args.checkpointing,
            "data": if args.data > 0 { "pipeline" } else { "fixed" },
        }),
    );
}
