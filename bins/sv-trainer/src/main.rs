//! `sv-trainer`: fine-tunes roadwork classifiers for the StreetVision subnet (netuid 72).
//!
//! Commands: `finetune` (resumable), `probe`, `eval`, `ab`, `fit-ensemble`, `export` (to the
//! transformers layout), `publish`, `quickstart` and `loop`.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use sv_models::{Device, device_by_name};
use sv_train::finetune::{Data, FinetuneConfig, RunDir, finetune};
use sv_train::metrics::Report;
use sv_train::quickstart;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod args;
mod loop_cmd;
mod progress;

use args::*;
use progress::Progress;
mod publish;

fn main() {
    let cli: Cli = sv_cli::parse("sv-trainer", &[("--repo", "--hub-repo")]);
    let result: Result<bool> = match cli.command {
        Command::Finetune(a) => run_finetune(a).map(|()| true),
        Command::Quickstart(a) => run_quickstart(a).map(|()| true),
        Command::Export(a) => run_export(a),
        Command::Publish(a) => publish::run_publish(a),
        Command::Eval(a) => run_eval(a),
        Command::Probe(a) => run_probe(a),
        Command::FitEnsemble(a) => run_fit_ensemble(a),
        Command::Ab(a) => run_ab(a),
        Command::Loop(a) => loop_cmd::run_loop(a),
    };
    sv_cli::exit("sv-trainer", result)
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
    let overrides = sv_train::overrides::FinetuneOverrides {
        model: a.model,
        epochs: a.epochs,
        batch_size: a.batch_size,
        lr: a.lr,
        backbone_lr: a.backbone_lr,
        augment: a.augment,
        seed: a.seed,
        checkpoint_every: a.checkpoint_every,
        incremental: a.incremental,
        hard_negatives: a.hard_negatives,
    };
    let config = FinetuneConfig::layered(&run, a.resume, a.config.as_deref(), &overrides)?;
    if !a.resume {
        sv_train::finetune::refuse_own_source(&config, &run)?;
        run.prepare_new(a.force)?;
    }
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
    println!("{what}: {}", r.summary());
}

fn run_probe(a: ProbeArgs) -> Result<bool> {
    let device = device_by_name(&a.device).with_context(|| format!("--device {}", a.device))?;
    let backbone_file = sv_models::hub::resolve_checkpoint(&a.backbone)
        .with_context(|| format!("--backbone {}", a.backbone))?;
    let samples = sv_data::read_manifest(&a.manifest)?;
    let cache_dir = a
        .cache_dir
        .clone()
        .unwrap_or_else(|| sv_cli::cache_dir("features"));
    let bar = sv_cli::progress_bar("features", 0);
    let run = sv_train::probe::ProbeRun {
        backbone: &a.backbone,
        backbone_file: &backbone_file,
        samples: &samples,
        cache_dir: &cache_dir,
        config: sv_train::probe::ProbeConfig {
            epochs: a.epochs,
            lr: a.lr,
            weight_decay: a.weight_decay,
        },
        run_dir: &a.run_dir,
    };
    let outcome = sv_train::probe::run(&run, &device, &mut |done, total| {
        if let Some(b) = &bar {
            b.set_length(total as u64);
            b.set_position(done as u64);
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let o = outcome?;
    eprintln!(
        "features: {} computed, {} from the cache {}{}",
        o.computed,
        o.cached,
        o.cache_file.display(),
        if o.left_out > 0 {
            format!(
                "; {} images could not be read or decoded and were left out",
                o.left_out
            )
        } else {
            String::new()
        }
    );
    eprintln!("probe trained in {:.1} s", o.train_seconds);
    print_report("validation", &o.val);
    print_report("test", &o.test);
    Ok(true)
}

fn run_fit_ensemble(a: FitEnsembleArgs) -> Result<bool> {
    if a.no_weights && a.no_temperatures {
        bail!("--no-weights and --no-temperatures leave nothing to fit");
    }
    let device = device_by_name(&a.device).with_context(|| format!("--device {}", a.device))?;
    let mut ensemble = sv_models::Ensemble::load(&a.ensemble, &device)?;
    let samples = sv_data::read_labelled_split(&a.manifest, &a.split)?;
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
    let (model, input) = sv_train::finetune::load_scored(&a.model, &device)?;
    let samples = sv_data::read_labelled_split(&a.manifest, &a.split)?;
    let e = sv_train::evaluate::evaluate(&model, &samples, input, 32, &device, a.latency)?;
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
    let mut sets = Vec::new();
    for spec in &a.sets {
        let (name, path) = spec
            .split_once('=')
            .with_context(|| format!("--set {spec}: expected NAME=MANIFEST"))?;
        let samples = sv_data::read_labelled_split(std::path::Path::new(path), &a.split)?;
        sets.push((name.to_string(), samples));
    }
    let scored = sv_train::gate::score_sets(
        (&cand, cand_pipe),
        (&prod, prod_pipe),
        &sets,
        a.challenge_seed,
        &device,
    )?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let age = a
        .production_age_days
        .or_else(|| sv_train::gate::age_days_of(&a.production, now));
    let settings = sv_train::gate::GateSettings {
        base_points: a.threshold,
        resamples: a.resamples,
        seed: a.seed,
    };
    let report = sv_train::gate::reward_gate(&scored, age, &settings)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for s in &report.sets {
            let (c, p) = (s.candidate, s.production);
            println!(
                "{}: {} images; accuracy {:.3} vs {:.3}, MCC {:.3} vs {:.3}, reward {:.3} vs {:.3} (candidate vs production)",
                s.name, s.images, c.accuracy, p.accuracy, c.mcc, p.mcc, c.reward, p.reward
            );
        }
        println!("{}", report.reason);
    }
    Ok(report.pass)
}

fn run_export(a: ExportArgs) -> Result<bool> {
    let run = RunDir {
        root: a.run_dir.clone(),
    };
    let card = sv_train::export::ModelCard::now(a.model_name, a.description, a.version, a.hotkey);
    sv_train::export::export_run(&run, card, &a.out)?;
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
    let test_report = quickstart::test_and_export(&layout, &run, &config, &test, &device.inner())?;
    print_report("test", &test_report);
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
