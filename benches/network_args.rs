//! What the network benches (`model_bench`, `train_bench`) share: their flags, the
//! device they name, and the peak resident memory they report.

/// `--model NAME --device NAME --batch N --size PX --iters N --warmup N`.
pub struct Args {
    pub model: String,
    pub device: String,
    pub batch: usize,
    pub size: usize,
    pub iters: usize,
    pub warmup: usize,
    pub precision: sv_models::Precision,
    /// Gradient checkpointing (training only).
    pub checkpointing: bool,
    /// Synthetic scenes fed through the training pipeline (0: one fixed random batch).
    pub data: usize,
}

/// Parse the command line over `defaults`; `--help` prints `usage` and exits. Exits 2
/// with `{program}: …` on a mistake.
pub fn parse(program: &str, usage: &str, mut args: Args) -> Args {
    let fail = |e: String| -> ! {
        eprintln!("{program}: {e}");
        std::process::exit(2)
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| fail(format!("{flag} needs a value")))
        };
        let number = |text: String, flag: &str| -> usize {
            text.parse()
                .unwrap_or_else(|e| fail(format!("{flag}: {e}")))
        };
        match flag.as_str() {
            "--model" => args.model = value(),
            "--device" => args.device = value(),
            "--batch" => args.batch = number(value(), "--batch"),
            "--size" => args.size = number(value(), "--size"),
            "--iters" => args.iters = number(value(), "--iters"),
            "--warmup" => args.warmup = number(value(), "--warmup"),
            "--gradient-checkpointing" => args.checkpointing = true,
            "--data" => args.data = number(value(), "--data"),
            "--precision" => {
                args.precision = value()
                    .parse()
                    .unwrap_or_else(|e| fail(format!("--precision: {e}")))
            }
            "--help" | "-h" => {
                println!("{usage}");
                std::process::exit(0);
            }
            other => fail(format!("unknown argument {other}")),
        }
    }
    if args.batch == 0 || args.iters == 0 {
        fail("--batch and --iters must be at least 1".into());
    }
    args
}

/// The device `--device` names, refused (exit 2, naming it) where it cannot compute in
/// `precision`.
pub fn device(program: &str, name: &str, precision: sv_models::Precision) -> burn::tensor::Device {
    sv_models::device::device_computing_in(name, precision).unwrap_or_else(|e| {
        eprintln!("{program}: --device {name}: {e}");
        std::process::exit(2)
    })
}

/// `burn-flex` on the CPU, `burn-<device>` elsewhere.
pub fn implementation(device: &str) -> String {
    if device == "cpu" {
        "burn-flex".into()
    } else {
        format!("burn-{device}")
    }
}

/// Peak resident set size of this process in MiB (Linux `VmHWM`).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Print the run's JSON line: the flags, the median step `median` seconds, images/s and
/// peak memory, with `extra` fields added.
pub fn print_result(args: &Args, median: f64, extra: serde_json::Value) {
    let mut line = serde_json::json!({
        "impl": implementation(&args.device),
        "device": args.device,
        "model": args.model,
        "dtype": args.precision.name(),
        "batch": args.batch,
        "size": args.size,
        "iters": args.iters,
        "median_s": median,
        "images_per_s": args.batch as f64 / median,
        "peak_rss_mib": peak_rss_mib(),
    });
    if let (Some(line), serde_json::Value::Object(extra)) = (line.as_object_mut(), extra) {
        line.extend(extra);
    }
    println!("{line}");
}
