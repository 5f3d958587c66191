//! `sv-trainer eval`, `ab`, `probe` and `fit-ensemble`: flags onto sv-train's scoring,
//! gate, probe and ensemble fit.

use anyhow::{Context, Result, bail};
use sv_cli::Output;

use crate::args::{AbArgs, EvalArgs, FitEnsembleArgs, ProbeArgs};
use crate::{device, device_in, report_line};

pub(crate) fn run_probe(a: ProbeArgs) -> Result<bool> {
    let out = Output::new(a.json);
    let device = device(&a.device)?;
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
    out.line(report_line("validation", &o.val));
    out.line(report_line("test", &o.test));
    out.result(&serde_json::json!({
        "run": a.run_dir,
        "features": {
            "computed": o.computed,
            "cached": o.cached,
            "left_out": o.left_out,
            "cache_file": o.cache_file,
        },
        "train_seconds": o.train_seconds,
        "validation": o.val,
        "test": o.test,
    }))?;
    Ok(true)
}

pub(crate) fn run_fit_ensemble(a: FitEnsembleArgs) -> Result<bool> {
    let out = Output::new(a.json);
    if a.no_weights && a.no_temperatures {
        bail!("--no-weights and --no-temperatures leave nothing to fit");
    }
    let device = device(&a.device)?;
    let mut ensemble = sv_models::Ensemble::load(&a.ensemble, &device)?;
    let samples = sv_data::read_labelled_split(&a.manifest, &a.split)?;
    let opts = sv_models::ensemble::FitOptions {
        weights: !a.no_weights,
        temperatures: !a.no_temperatures,
        ..Default::default()
    };
    let fit = sv_train::evaluate::fit_ensemble(&mut ensemble, &samples, opts, 64)?;
    let saved = a.out.clone().unwrap_or_else(|| a.ensemble.clone());
    ensemble.save(&saved)?;
    out.line(format!(
        "log-loss {:.4} -> {:.4} on {} images; weights {:?}, temperatures {:?}; saved {}",
        fit.initial_log_loss,
        fit.log_loss,
        samples.len(),
        fit.weights,
        fit.temperatures,
        saved.display()
    ));
    out.result(&serde_json::json!({
        "images": samples.len(),
        "initial_log_loss": fit.initial_log_loss,
        "log_loss": fit.log_loss,
        "weights": fit.weights,
        "temperatures": fit.temperatures,
        "iterations": fit.iterations,
        "saved": saved,
    }))?;
    Ok(true)
}

pub(crate) fn run_eval(a: EvalArgs) -> Result<bool> {
    let device = device_in(&a.device, a.precision)?;
    let (model, input) = sv_train::finetune::load_scored(&a.model, &device)?;
    let model = model.in_precision(a.precision);
    let samples = sv_data::read_labelled_split(&a.manifest, &a.split)?;
    let e = sv_train::evaluate::evaluate(&model, &samples, input, 32, &device, a.latency)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&e)?);
        return Ok(true);
    }
    println!("{}", report_line("overall", &e.overall));
    for (source, r) in &e.by_source {
        println!("{}", report_line(source, r));
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

pub(crate) fn run_ab(a: AbArgs) -> Result<bool> {
    let device = device_in(&a.device, a.precision)?;
    let (cand, cand_pipe) = sv_train::finetune::load_scored(&a.candidate, &device)?;
    let (prod, prod_pipe) = sv_train::finetune::load_scored(&a.production, &device)?;
    let (cand, prod) = (
        cand.in_precision(a.precision),
        prod.in_precision(a.precision),
    );
    let mut sets = Vec::new();
    for spec in &a.sets {
        let Some((name, path)) = spec.split_once('=') else {
            bail!("--set {spec}: expected NAME=MANIFEST");
        };
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
