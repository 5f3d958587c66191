//! `sv-trainer`: fine-tunes roadwork classifiers for the StreetVision subnet (netuid 72).
//!
//! Commands: `finetune` (resumable), `probe`, `eval`, `ab`, `export` (to the transformers
//! layout) and `quickstart`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sv_models::{Device, device_by_name};
use sv_train::finetune::{Data, Event, FinetuneConfig, RunDir, finetune, predict};
use sv_train::metrics::Report;
use sv_train::quickstart;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// StreetVision trainer: fine-tunes roadwork classifiers from a manifest, resumably.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Fine-tune a classifier on a manifest's train split, validating each epoch on its
    /// val split. The run directory gets config.toml, metrics.jsonl, checkpoint.safetensors
    /// (atomic, every --checkpoint-every steps and each epoch), model.safetensors and
    /// eval.json.
    Finetune(FinetuneArgs),
    /// Linear probe on a frozen backbone: features of the un-augmented images are cached
    /// on disk (keyed by architecture, checkpoint hash and preprocessing), so later probes
    /// compute only new images and train in seconds. Reports validation and test metrics.
    Probe(ProbeArgs),
    /// Score a model (a run directory or an exported repository) on a manifest split:
    /// accuracy, balanced accuracy, MCC, F1, ROC-AUC, Brier, ECE and the confusion
    /// matrix, overall and per source, and the latency at batch 1.
    Eval(EvalArgs),
    /// Compare a candidate with the model in production on the same held-out sets: a
    /// paired bootstrap of the accuracy difference. Exits 0 only when the candidate is
    /// better by at least --threshold points and the 95 % interval excludes zero (1 when
    /// it is not, 2 on errors), so a daily loop can gate deployment on it.
    Ab(AbArgs),
    /// Fit an ensemble file's member weights and temperatures (minimum log-loss) on a
    /// manifest split and save them back (atomically) with a record of the fit.
    FitEnsemble(FitEnsembleArgs),
    /// Write a finished run's model in the Hugging Face transformers layout
    /// (ConvNextV2ForImageClassification or Dinov2WithRegistersForImageClassification):
    /// model.safetensors, config.json, preprocessor_config.json and the subnet's
    /// model_card.json.
    Export(ExportArgs),
    /// Publish an export directory to a Hugging Face model repository in one commit
    /// (weights, config.json, preprocessor_config.json, model_card.json, a README model
    /// card). Refuses a model_card.json whose submitted_by is not --hotkey, whose
    /// submission_time is not recent, or whose model_name is in --taken-names. Needs
    /// HF_TOKEN (or `huggingface-cli login`); HF_ENDPOINT selects the server.
    Publish(publish::PublishArgs),
    /// Render a synthetic street-scene set, train a tiny ConvNeXt-V2 on it on the CPU and
    /// evaluate it on its held-out test split. No network, GPU or account needed.
    Quickstart(QuickstartArgs),
}

#[derive(Args, Debug)]
struct FinetuneArgs {
    /// Manifest (JSON Lines) with labels and splits.
    #[arg(long)]
    manifest: PathBuf,
    /// Run directory.
    #[arg(long)]
    run_dir: PathBuf,
    /// Training config (TOML); flags below override it, it overrides the defaults.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Continue the run in --run-dir from its last checkpoint (with its own config.toml).
    #[arg(long)]
    resume: bool,
    /// Model to start from: a Hugging Face model ORG/NAME[@REV] (DINOv2 with registers
    /// or ConvNeXt-V2, e.g. facebook/convnextv2-atto-1k-224; downloaded into the shared HF
    /// cache), a local checkpoint of either family, or a ConvNeXt-V2 with random weights
    /// named convnextv2-{atto,femto,pico,nano,tiny,small,base,large,huge} or
    /// convnextv2-quickstart [default: convnextv2-atto]. A head is kept when it has two
    /// labels whose roadwork label resolves from config.json; otherwise a new one.
    #[arg(long, value_name = "ORG/NAME[@REV]|CHECKPOINT|NAME")]
    model: Option<String>,
    /// Passes over the training split [default: 10].
    #[arg(long)]
    epochs: Option<u64>,
    /// Images per step [default: 32].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Peak learning rate of the head [default: 0.001].
    #[arg(long)]
    lr: Option<f64>,
    /// Peak learning rate of the backbone's top layer [default: 0.0002].
    #[arg(long)]
    backbone_lr: Option<f64>,
    /// Augmentation preset (heavy, validator) or pipeline file [default: heavy].
    #[arg(long)]
    augment: Option<String>,
    /// Seed [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// Steps between checkpoints [default: 200].
    #[arg(long)]
    checkpoint_every: Option<u64>,
    /// Continue from a finished run (its directory, or its model.safetensors or
    /// checkpoint.safetensors) on this manifest: its weights and, without --config, its
    /// config; a fresh optimizer and schedule. Lower --lr and --epochs suit new data
    /// added to a model that already works.
    #[arg(long, value_name = "RUN")]
    incremental: Option<PathBuf>,
    /// Add the auxiliary supervised-contrastive loss with synthetic hard negatives
    /// (temperature 0.07, weight 0.1, a 4096-feature bank, 8 negatives per anchor; tune
    /// them in the [hard_negatives] table of --config).
    #[arg(long)]
    hard_negatives: bool,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Args, Debug)]
struct ProbeArgs {
    /// Backbone: a checkpoint (DINOv2 with registers or ConvNeXt-V2, any layout; a head in
    /// it is ignored) or a Hugging Face model ORG/NAME[@REV] (downloaded into the shared HF
    /// cache, e.g. facebook/dinov2-with-registers-small). preprocessor_config.json beside
    /// it sets the preprocessing.
    #[arg(long, value_name = "CHECKPOINT|ORG/NAME[@REV]")]
    backbone: String,
    /// Manifest with labels and splits.
    #[arg(long)]
    manifest: PathBuf,
    /// Run directory for probe.json and eval.json.
    #[arg(long)]
    run_dir: PathBuf,
    /// Feature cache folder [default: ~/.cache/streetvision-rs/features].
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Full-batch AdamW passes.
    #[arg(long, default_value_t = 300)]
    epochs: u64,
    /// Learning rate.
    #[arg(long, default_value_t = 0.01)]
    lr: f64,
    /// Weight decay.
    #[arg(long, default_value_t = 1e-4)]
    weight_decay: f64,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Args, Debug)]
struct EvalArgs {
    /// A run directory or an exported repository (model.safetensors + config.json).
    #[arg(long)]
    model: PathBuf,
    /// Manifest with labels and splits.
    #[arg(long)]
    manifest: PathBuf,
    /// Split to score: test, val, train or all.
    #[arg(long, default_value = "test")]
    split: String,
    /// Images to time one at a time (0: no latency).
    #[arg(long, default_value_t = 50)]
    latency: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Args, Debug)]
struct AbArgs {
    /// The candidate: a run directory or an exported repository.
    #[arg(long)]
    candidate: PathBuf,
    /// The model in production: a run directory or an exported repository.
    #[arg(long)]
    production: PathBuf,
    /// A held-out set, NAME=MANIFEST (repeatable: real, synthetic out-of-distribution…).
    #[arg(long = "set", required = true, value_name = "NAME=MANIFEST")]
    sets: Vec<String>,
    /// Split of each manifest to use: test, val, train or all.
    #[arg(long, default_value = "test")]
    split: String,
    /// Required improvement in accuracy points.
    #[arg(long, default_value_t = 1.0)]
    threshold: f64,
    /// Bootstrap resamples.
    #[arg(long, default_value_t = 2000)]
    resamples: usize,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Args, Debug)]
struct FitEnsembleArgs {
    /// The ensemble file (JSON; see sv-miner classify --ensemble).
    #[arg(long)]
    ensemble: PathBuf,
    /// Manifest with labels and splits.
    #[arg(long)]
    manifest: PathBuf,
    /// Split to fit on: val, test, train or all.
    #[arg(long, default_value = "val")]
    split: String,
    /// Keep the weights as they are (fit temperatures only).
    #[arg(long)]
    no_weights: bool,
    /// Keep the temperatures as they are (fit weights only).
    #[arg(long)]
    no_temperatures: bool,
    /// Where to save the fitted file [default: over --ensemble].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Args, Debug)]
struct ExportArgs {
    /// A finished run directory (with config.toml and model.safetensors).
    #[arg(long)]
    run_dir: PathBuf,
    /// Output directory (the files of the model repository).
    #[arg(long)]
    out: PathBuf,
    /// model_card.json: the model's unique name.
    #[arg(long)]
    model_name: String,
    /// model_card.json: the miner's hotkey (SS58) that submits the model.
    #[arg(long)]
    hotkey: String,
    /// model_card.json: version.
    #[arg(long, default_value = "1.0.0")]
    version: String,
    /// model_card.json: description.
    #[arg(
        long,
        default_value = "Roadwork classifier for StreetVision (netuid 72), trained with streetvision-rs"
    )]
    description: String,
}

#[derive(Args, Debug)]
struct QuickstartArgs {
    /// Where the data, pipeline and run go.
    #[arg(long, default_value = "sv-quickstart")]
    dir: PathBuf,
    /// Scenes to render.
    #[arg(long, default_value_t = quickstart::DEFAULT_SCENES)]
    scenes: u64,
    /// Passes over the training split.
    #[arg(long, default_value_t = 20)]
    epochs: u64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

mod publish;

fn main() {
    let cli = Cli::parse();
    let result: Result<bool> = match cli.command {
        Command::Finetune(a) => run_finetune(a).map(|()| true),
        Command::Quickstart(a) => run_quickstart(a).map(|()| true),
        Command::Export(a) => run_export(a),
        Command::Publish(a) => publish::run_publish(a),
        Command::Eval(a) => run_eval(a),
        Command::Probe(a) => run_probe(a),
        Command::FitEnsemble(a) => run_fit_ensemble(a),
        Command::Ab(a) => run_ab(a),
    };
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {}", error_line(&e));
            std::process::exit(2);
        }
    }
}

/// The error and its causes on one line, leaving out a cause its parent already quotes.
fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

/// Renders events as a progress bar on a terminal, as periodic lines otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    fn new() -> Self {
        Self {
            bar: None,
            started: Instant::now(),
            last_line: Instant::now(),
        }
    }

    fn event(&mut self, e: Event) {
        let tty = std::io::stderr().is_terminal();
        match e {
            Event::Step {
                step,
                total,
                loss,
                lr,
            } => {
                if tty {
                    let bar = self.bar.get_or_insert_with(|| {
                        let b = ProgressBar::new(total);
                        b.set_style(
                            ProgressStyle::with_template(
                                "{elapsed_precise} [{bar:30}] {pos}/{len} steps {msg} (eta {eta})",
                            )
                            .expect("valid template")
                            .progress_chars("=> "),
                        );
                        b
                    });
                    bar.set_position(step);
                    bar.set_message(format!("loss {loss:.4} lr {lr:.2e}"));
                } else if self.last_line.elapsed().as_secs() >= 10 || step == total {
                    self.last_line = Instant::now();
                    eprintln!(
                        "step {step}/{total} loss {loss:.4} lr {lr:.2e} ({:.0} s)",
                        self.started.elapsed().as_secs_f64()
                    );
                }
            }
            Event::Epoch {
                epoch,
                report,
                left_out,
            } => {
                let mut line = format!(
                    "epoch {} validation: accuracy {:.3}, MCC {:.3}, ROC-AUC {}",
                    epoch + 1,
                    report.accuracy,
                    report.mcc,
                    report.roc_auc.map_or("-".into(), |a| format!("{a:.3}"))
                );
                if left_out > 0 {
                    let what = if left_out == 1 { "image" } else { "images" };
                    line.push_str(&format!(
                        "; {left_out} training {what} could not be read or decoded and left out"
                    ));
                }
                match &self.bar {
                    Some(b) => b.println(line),
                    None => eprintln!("{line}"),
                }
            }
            Event::Checkpoint { .. } => {}
            Event::Resumed { position } => eprintln!(
                "resuming at epoch {}, batch {} (step {})",
                position.epoch + 1,
                position.batch,
                position.step
            ),
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

fn training_device(name: &str) -> Result<Device> {
    Ok(device_by_name(name)
        .with_context(|| format!("--device {name}"))?
        .autodiff())
}

fn run_finetune(a: FinetuneArgs) -> Result<()> {
    let run = RunDir {
        root: a.run_dir.clone(),
    };
    let mut config = if a.resume {
        let path = run.config();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("--resume: reading {}", path.display()))?;
        FinetuneConfig::from_toml(&text, &path.display().to_string())?
    } else if let Some(path) = &a.config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        FinetuneConfig::from_toml(&text, &path.display().to_string())?
    } else if let Some(source) = &a.incremental {
        FinetuneConfig::continuing(source)
            .with_context(|| format!("--incremental {}", source.display()))?
    } else {
        FinetuneConfig::default()
    };
    if a.resume
        && (a.config.is_some()
            || a.model.is_some()
            || a.epochs.is_some()
            || a.batch_size.is_some()
            || a.lr.is_some()
            || a.backbone_lr.is_some()
            || a.augment.is_some()
            || a.seed.is_some()
            || a.checkpoint_every.is_some()
            || a.incremental.is_some()
            || a.hard_negatives)
    {
        bail!("--resume continues with the run's own config.toml; drop the other settings");
    }
    if let Some(v) = a.model {
        config.model = v;
    }
    if let Some(v) = a.epochs {
        config.epochs = v;
    }
    if let Some(v) = a.batch_size {
        config.batch_size = v;
    }
    if let Some(v) = a.lr {
        config.lr = v;
    }
    if let Some(v) = a.backbone_lr {
        config.backbone_lr = v;
    }
    if let Some(v) = a.augment {
        config.augment = v;
    }
    if let Some(v) = a.seed {
        config.seed = v;
    }
    if let Some(v) = a.checkpoint_every {
        config.checkpoint_every = v;
    }
    if let Some(v) = a.incremental {
        let v = std::path::absolute(&v).unwrap_or(v);
        config.incremental = Some(v.to_string_lossy().into_owned());
    }
    if a.hard_negatives && config.hard_negatives.is_none() {
        config.hard_negatives = Some(Default::default());
    }
    config.validate("<flags>")?;
    let samples = sv_data::read_manifest(&a.manifest)?;
    let data = Data::from_samples(samples)?;
    let device = training_device(&a.device)?;
    let mut progress = Progress::new();
    let report = finetune(&config, &data, &run, a.resume, &device, &mut |e| {
        progress.event(e)
    });
    progress.finish();
    let report = report?;
    print_report("validation", &report);
    println!("run: {}", run.root.display());
    Ok(())
}

fn print_report(what: &str, r: &Report) {
    println!(
        "{what}: {} images, accuracy {:.3}, balanced accuracy {:.3}, MCC {:.3}, F1 {:.3}, ROC-AUC {}, Brier {:.4}, ECE {:.4}",
        r.samples,
        r.accuracy,
        r.balanced_accuracy,
        r.mcc,
        r.f1,
        r.roc_auc.map_or("-".into(), |a| format!("{a:.3}")),
        r.brier,
        r.ece
    );
}

/// The samples of `split` ("all" for every labelled one).
fn split_samples(manifest: &std::path::Path, split: &str) -> Result<Vec<sv_data::Sample>> {
    let samples = sv_data::read_manifest(manifest)?;
    let want = match split {
        "all" => None,
        "train" => Some(sv_data::Split::Train),
        "val" => Some(sv_data::Split::Val),
        "test" => Some(sv_data::Split::Test),
        other => bail!("--split {other}: expected test, val, train or all"),
    };
    let chosen: Vec<_> = samples
        .into_iter()
        .filter(|s| s.label != sv_data::Label::Unknown && (want.is_none() || s.split == want))
        .collect();
    if chosen.is_empty() {
        bail!(
            "{}: no labelled samples in split {split}",
            manifest.display()
        );
    }
    Ok(chosen)
}

fn default_cache() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("streetvision-rs").join("features")
}

fn run_probe(a: ProbeArgs) -> Result<bool> {
    use sv_train::probe;
    let device = device_by_name(&a.device).with_context(|| format!("--device {}", a.device))?;
    let backbone_file = sv_models::hub::resolve_checkpoint(&a.backbone)
        .with_context(|| format!("--backbone {}", a.backbone))?;
    let (backbone, pre) = sv_models::Backbone::load_with_preprocessor(&backbone_file, &device)?;
    let arch = backbone.architecture();
    let key = probe::cache_key(arch, &backbone_file, &pre)?;
    let cache_dir = a.cache_dir.clone().unwrap_or_else(default_cache);
    let mut cache = probe::FeatureCache::open(&cache_dir, &key)?;
    let samples = sv_data::read_manifest(&a.manifest)?;
    let by_split = |want: sv_data::Split| -> Vec<sv_data::Sample> {
        samples
            .iter()
            .filter(|s| s.split == Some(want) && s.label != sv_data::Label::Unknown)
            .cloned()
            .collect()
    };
    let (train, val, test) = (
        by_split(sv_data::Split::Train),
        by_split(sv_data::Split::Val),
        by_split(sv_data::Split::Test),
    );
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template("features [{bar:30}] {pos}/{len} (eta {eta})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        b
    });
    let mut computed = 0;
    let mut left_out = 0;
    let mut rows = Vec::new();
    for part in [&train, &val, &test] {
        let (r, n) = probe::features(
            &backbone,
            &pre,
            part,
            &mut cache,
            &device,
            32,
            &mut |d, t| {
                if let Some(b) = &bar {
                    b.set_length(t as u64);
                    b.set_position(d as u64);
                }
            },
        )?;
        computed += n;
        left_out += part.len() - r.len();
        rows.push(r);
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    eprintln!(
        "features: {} computed, {} from the cache {}{}",
        computed,
        rows.iter()
            .map(Vec::len)
            .sum::<usize>()
            .saturating_sub(computed),
        cache.path.display(),
        if left_out > 0 {
            format!("; {left_out} images could not be read or decoded and were left out")
        } else {
            String::new()
        }
    );
    let config = probe::ProbeConfig {
        epochs: a.epochs,
        lr: a.lr,
        weight_decay: a.weight_decay,
    };
    let started = Instant::now();
    let fitted = probe::fit(&rows[0], &config, &device)?;
    eprintln!("probe trained in {:.1} s", started.elapsed().as_secs_f64());
    let (val_report, test_report) = (
        probe::score(&fitted, &rows[1]),
        probe::score(&fitted, &rows[2]),
    );
    print_report("validation", &val_report);
    print_report("test", &test_report);
    let out = serde_json::json!({
        "backbone": a.backbone, "architecture": format!("{arch:?}"), "cache_key": key,
        "config": config, "mean": fitted.mean, "std": fitted.std,
        "weight": fitted.weight, "bias": fitted.bias,
    });
    sv_train::checkpoint::atomic_write(
        &a.run_dir.join("probe.json"),
        serde_json::to_string(&out)?.as_bytes(),
    )?;
    sv_train::checkpoint::atomic_write(
        &a.run_dir.join("eval.json"),
        serde_json::to_string_pretty(&serde_json::json!({"val": val_report, "test": test_report}))?
            .as_bytes(),
    )?;
    Ok(true)
}

fn run_fit_ensemble(a: FitEnsembleArgs) -> Result<bool> {
    if a.no_weights && a.no_temperatures {
        bail!("--no-weights and --no-temperatures leave nothing to fit");
    }
    let device = device_by_name(&a.device).with_context(|| format!("--device {}", a.device))?;
    let mut ensemble = sv_models::Ensemble::load(&a.ensemble, &device)?;
    let samples = split_samples(&a.manifest, &a.split)?;
    let opts = sv_models::ensemble::FitOptions {
        weights: !a.no_weights,
        temperatures: !a.no_temperatures,
        ..Default::default()
    };
    let fit = sv_train::evaluate::fit_ensemble(&mut ensemble, &samples, opts, 64)?;
    let out = a.out.clone().unwrap_or_else(|| a.ensemble.clone());
    ensemble.save(&out)?;
    println!(
        "log-loss {:.4} -> {:.4} on {} images; weights {:?}, temperatures {:?}; saved {}",
        fit.initial_log_loss,
        fit.log_loss,
        samples.len(),
        fit.weights,
        fit.temperatures,
        out.display()
    );
    Ok(true)
}

fn run_eval(a: EvalArgs) -> Result<bool> {
    let device = device_by_name(&a.device).with_context(|| format!("--device {}", a.device))?;
    let (model, pipeline) = sv_train::finetune::load_scored(&a.model, &device)?;
    let samples = split_samples(&a.manifest, &a.split)?;
    let e = sv_train::evaluate::evaluate(
        &model,
        &samples,
        std::sync::Arc::new(pipeline),
        32,
        &device,
        a.latency,
    );
    if a.json {
        println!("{}", serde_json::to_string_pretty(&e)?);
        return Ok(true);
    }
    print_report("overall", &e.overall);
    for (source, r) in &e.by_source {
        print_report(source, r);
    }
    let c = e.overall.confusion;
    println!(
        "confusion (rows truth, columns prediction; roadwork, no roadwork): [[{}, {}], [{}, {}]]",
        c.tp, c.fn_, c.fp, c.tn
    );
    println!(
        "subnet reward at this accuracy and MCC: {:.3}",
        e.overall.subnet_reward
    );
    if let Some(l) = e.latency {
        println!(
            "latency at batch 1 on {}: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms ({} images)",
            a.device, l.p50_ms, l.p95_ms, l.p99_ms, l.images
        );
    }
    Ok(true)
}

fn run_ab(a: AbArgs) -> Result<bool> {
    let device = device_by_name(&a.device).with_context(|| format!("--device {}", a.device))?;
    let (cand, cand_pipe) = sv_train::finetune::load_scored(&a.candidate, &device)?;
    let (prod, prod_pipe) = sv_train::finetune::load_scored(&a.production, &device)?;
    let (cand_pipe, prod_pipe) = (
        std::sync::Arc::new(cand_pipe),
        std::sync::Arc::new(prod_pipe),
    );
    let mut sets = Vec::new();
    for spec in &a.sets {
        let (name, path) = spec
            .split_once('=')
            .with_context(|| format!("--set {spec}: expected NAME=MANIFEST"))?;
        let samples = split_samples(std::path::Path::new(path), &a.split)?;
        let right = |pairs: Vec<(f64, bool)>| -> Vec<bool> {
            pairs.into_iter().map(|(p, y)| (p > 0.5) == y).collect()
        };
        let c = right(predict(&cand, &samples, cand_pipe.clone(), 32, &device));
        let p = right(predict(&prod, &samples, prod_pipe.clone(), 32, &device));
        if c.len() != p.len() {
            bail!("--set {name}: the models scored different numbers of images");
        }
        sets.push((name.to_string(), c, p));
    }
    let report = sv_train::evaluate::ab_gate(&sets, a.threshold, a.resamples, a.seed);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for (name, c, p, n) in &report.sets {
            println!(
                "{name}: {n} images, candidate {:.3}, production {:.3}",
                c, p
            );
        }
        println!(
            "difference {:+.2} points, 95 % interval [{:+.2}, {:+.2}], threshold {:.2}: {}",
            report.difference_points,
            report.interval_points.0,
            report.interval_points.1,
            report.threshold_points,
            if report.pass {
                "deploy the candidate"
            } else {
                "keep production"
            }
        );
    }
    Ok(report.pass)
}

fn run_export(a: ExportArgs) -> Result<bool> {
    let run = RunDir {
        root: a.run_dir.clone(),
    };
    let path = run.config();
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (is this a run directory?)", path.display()))?;
    let config = FinetuneConfig::from_toml(&text, &path.display().to_string())?;
    let model = sv_train::finetune::load_trained(&run, &config, &Device::default())?;
    let mut card = sv_train::export::ModelCard {
        model_name: a.model_name,
        description: a.description,
        version: a.version,
        submitted_by: a.hotkey,
        submission_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        architecture: None,
        notes: None,
    };
    match model {
        sv_models::Network::ConvNextV2(m) => {
            card.architecture = Some("ConvNextV2ForImageClassification".into());
            sv_train::export::export_hf(&m, config.image_size, Some(&card), &a.out)?
        }
        sv_models::Network::Dinov2(m) => {
            card.architecture = Some("Dinov2WithRegistersForImageClassification".into());
            sv_train::export::export_hf_dinov2(&m, config.image_size, Some(&card), &a.out)?
        }
    }
    println!("exported {} to {}", run.model().display(), a.out.display());
    Ok(true)
}

fn run_quickstart(a: QuickstartArgs) -> Result<()> {
    let started = Instant::now();
    let layout = quickstart::Layout::under(&a.dir);
    eprintln!(
        "rendering {} synthetic street scenes into {}",
        a.scenes,
        layout.data.display()
    );
    let (data, test, config) = quickstart::prepare(&layout, a.scenes, a.epochs, a.seed)?;
    eprintln!(
        "training {} on {} images ({} validation) for {} epochs",
        config.model,
        data.train.len(),
        data.val.len(),
        config.epochs
    );
    let run = RunDir {
        root: layout.run.clone(),
    };
    let device = training_device("cpu")?;
    let mut progress = Progress::new();
    let report = finetune(&config, &data, &run, false, &device, &mut |e| {
        progress.event(e)
    });
    progress.finish();
    let report = report?;
    print_report("validation", &report);
    // The held-out test split, never seen in training or model selection.
    let model = sv_train::finetune::load_trained(&run, &config, &device.clone().inner())?;
    let pipeline = std::sync::Arc::new(sv_train::finetune::eval_pipeline_for(&config)?);
    let pairs = predict(&model, &test, pipeline, 64, &device.inner());
    let test_report = Report::of(&pairs);
    print_report("test", &test_report);
    let sv_models::Network::ConvNextV2(model) = model else {
        bail!("the quickstart trains a ConvNeXt-V2");
    };
    sv_train::export::export_hf(&model, config.image_size, None, &layout.export)?;
    println!("data:      {}", layout.manifest.display());
    println!("pipeline:  {}", layout.pipeline.display());
    println!(
        "export:    {} (transformers layout; `sv-trainer export --hotkey` adds the subnet's model_card.json)",
        layout.export.display()
    );
    println!(
        "run:       {} (config.toml, metrics.jsonl, model.safetensors, eval.json, plots/)",
        run.root.display()
    );
    println!("took {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
