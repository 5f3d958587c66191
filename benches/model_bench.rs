//! Inference throughput of the networks on burn's Flex CPU backend: DINOv2 with registers
//! (`small`, `base`, `large`), ConvNeXt-V2 (`convnextv2-atto` … `convnextv2-huge`) and the
//! two-model ensemble (`ensemble`: DINOv2-S/14 + ConvNeXt-V2-tiny on one shared input,
//! probabilities averaged 0.6 / 0.4).
//!
//! `model_bench --model small --batch 8 --iters 10` prints one JSON line with images/s and
//! peak resident memory; `benches/run_models.sh` runs it beside `benches/torch_models.py`
//! (PyTorch, same configs, same inputs) and writes the comparison table.

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};
use sv_models::{
    ConvNextV2, ConvNextV2Classifier, ConvNextV2Config, Dinov2, Dinov2Classifier, Dinov2Config,
    softmax_rows,
};

#[path = "network_args.rs"]
mod network_args;
use network_args::Args;

/// mimalloc, keeping freed buffers for reuse (`sv_cli::alloc`).
#[global_allocator]
static ALLOC: sv_cli::alloc::Allocator = sv_cli::alloc::Allocator;

fn main() {
    sv_cli::alloc::keep_freed_memory();
    let args = network_args::parse(
        "model_bench",
        "model_bench [--model small|base|large|convnextv2-tiny|…|ensemble] [--device cpu|vulkan|…] [--batch N] [--size PX] [--iters N] [--warmup N] [--precision f32|bf16|f16]",
        Args {
            model: "small".into(),
            device: "cpu".into(),
            batch: 1,
            size: 224,
            iters: 10,
            warmup: 2,
            precision: Default::default(),
            checkpointing: false,
            data: 0,
        },
    );
    let device = network_args::device("model_bench", &args.device, args.precision);
    let model = Model::build(&args.model, &device)
        .unwrap_or_else(|| {
            eprintln!("model_bench: unknown model {}", args.model);
            std::process::exit(2);
        })
        .in_precision(args.precision);
    let input: Tensor<4> = Tensor::random(
        [args.batch, 3, args.size, args.size],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let run = || model.roadwork(input.clone());
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
    network_args::print_result(&args, median, serde_json::Value::Null);
}

/// The network under test, with random weights.
#[allow(clippy::large_enum_variant)] // one per benchmark run
enum Model {
    Dinov2(Dinov2Classifier),
    ConvNext(ConvNextV2Classifier),
    /// DINOv2-S/14 and ConvNeXt-V2-tiny.
    Ensemble(Box<(Dinov2Classifier, ConvNextV2Classifier)>),
}

impl Model {
    fn build(name: &str, device: &Device) -> Option<Self> {
        let dino =
            |cfg: &Dinov2Config| Dinov2Classifier::with_new_head(Dinov2::random(cfg, device), 2);
        let convnext = |cfg: &ConvNextV2Config| -> Option<ConvNextV2Classifier> {
            Some(ConvNextV2Classifier::with_new_head(
                ConvNextV2::random(cfg, device).ok()?,
                2,
            ))
        };
        if name == "ensemble" {
            return Some(Model::Ensemble(Box::new((
                dino(&Dinov2Config::small()),
                convnext(&ConvNextV2Config::tiny())?,
            ))));
        }
        if let Some(cfg) = Dinov2Config::by_name(name) {
            return Some(Model::Dinov2(dino(&cfg)));
        }
        ConvNextV2Config::by_name(name).and_then(|cfg| convnext(&cfg).map(Model::ConvNext))
    }

    /// The networks computing in `precision`.
    fn in_precision(self, precision: sv_models::Precision) -> Self {
        use sv_models::in_precision;
        match self {
            Model::Dinov2(m) => Model::Dinov2(in_precision(m, precision)),
            Model::ConvNext(m) => Model::ConvNext(in_precision(m, precision)),
            Model::Ensemble(pair) => {
                let (d, c) = *pair;
                Model::Ensemble(Box::new((
                    in_precision(d, precision),
                    in_precision(c, precision),
                )))
            }
        }
    }

    /// Roadwork probabilities; reading them back forces the whole graph to execute.
    fn roadwork(&self, x: Tensor<4>) -> Vec<f32> {
        let probs = |logits: Tensor<2>| -> Vec<f32> {
            softmax_rows(logits).into_iter().map(|p| p[1]).collect()
        };
        match self {
            Model::Dinov2(m) => probs(m.forward(x)),
            Model::ConvNext(m) => probs(m.forward(x)),
            Model::Ensemble(pair) => {
                let (d, c) = &**pair;
                let pd = probs(d.forward(x.clone()));
                let pc = probs(c.forward(x));
                pd.iter().zip(&pc).map(|(a, b)| 0.6 * a + 0.4 * b).collect()
            }
        }
    }
}
