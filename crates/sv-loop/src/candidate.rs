//! The model steps: the incremental fine-tune (resumed from its checkpoint after a
//! kill), the age-aware reward gate and the export with the model card.

use sv_train::finetune::{Data, FinetuneConfig, RunDir};

use crate::cycle::{Cycle, step_error};
use crate::error::Result;
use crate::step::Step;

/// The candidate's run directory.
pub(crate) fn run_dir(c: &Cycle) -> RunDir {
    RunDir {
        root: c.file("run"),
    }
}

/// The incremental run's config: production's own, continuing from it, with the
/// loop's overrides; the seed moves with the cycle.
fn config(c: &Cycle) -> Result<FinetuneConfig> {
    let t = &c.config.train;
    let overrides = sv_train::overrides::FinetuneOverrides {
        epochs: t.epochs,
        batch_size: t.batch_size,
        lr: t.lr,
        backbone_lr: t.backbone_lr,
        augment: t.augment.clone(),
        seed: Some(t.seed.wrapping_add(u64::from(c.journal.cycle))),
        checkpoint_every: t.checkpoint_every,
        hard_negatives: t.hard_negatives,
        ..Default::default()
    };
    let source = FinetuneConfig::continuing(&c.journal.production)
        .map_err(|e| step_error(Step::Finetune, e))?;
    let mut cfg = overrides.apply(source);
    cfg.warmup_steps = t.warmup_steps.unwrap_or(cfg.warmup_steps);
    if !t.hard_negatives {
        cfg.hard_negatives = None;
    }
    cfg.validate("[train]")
        .map_err(|e| step_error(Step::Finetune, e))?;
    Ok(cfg)
}

/// Fine-tune on `train.jsonl` into `run/`; a run killed part way continues from its
/// last checkpoint.
pub(crate) fn finetune(
    c: &Cycle,
    events: &mut dyn FnMut(sv_train::finetune::Event),
) -> Result<String> {
    let run = run_dir(c);
    let resume = run.checkpoint().is_file() && run.config().is_file();
    let cfg = if resume {
        run.read_config()
            .map_err(|e| step_error(Step::Finetune, e))?
    } else {
        run.prepare_new(true)
            .map_err(|e| step_error(Step::Finetune, e))?;
        config(c)?
    };
    let samples = sv_data::read_manifest(&c.file("train.jsonl"))
        .map_err(|e| step_error(Step::Finetune, e))?;
    let data = Data::from_samples(samples).map_err(|e| step_error(Step::Finetune, e))?;
    let report = sv_train::finetune::finetune(&cfg, &data, &run, resume, &c.train_device, events)
        .map_err(|e| step_error(Step::Finetune, e))?;
    Ok(format!(
        "{} epochs on {} images{}; validation: {}",
        cfg.epochs,
        data.train.len(),
        if resume {
            " (resumed from its checkpoint)"
        } else {
            ""
        },
        report.summary()
    ))
}

/// Candidate against production on every held-out set, clean and validator-style,
/// decided on the subnet's reward with production's age → `gate.json`. Returns the
/// report.
pub(crate) fn gate(c: &Cycle) -> Result<sv_train::gate::GateReport> {
    let err = |e| step_error(Step::Gate, e);
    let (cand, cand_input) =
        sv_train::finetune::load_scored(&c.file("run"), &c.device).map_err(err)?;
    let (prod, prod_input) =
        sv_train::finetune::load_scored(&c.journal.production, &c.device).map_err(err)?;
    let mut sets = Vec::new();
    for (name, manifest) in c.config.held_out_sets() {
        let samples = sv_data::read_labelled_split(&manifest, &c.config.gate.split)
            .map_err(|e| step_error(Step::Gate, e))?;
        sets.push((name, samples));
    }
    let scored = sv_train::gate::score_sets(
        (&cand, cand_input),
        (&prod, prod_input),
        &sets,
        c.config.gate.challenge_seed,
        &c.device,
    )
    .map_err(err)?;
    let settings = sv_train::gate::GateSettings {
        base_points: c.config.gate.threshold_points,
        resamples: c.config.gate.resamples,
        seed: c.config.gate.seed,
    };
    let report = sv_train::gate::reward_gate(&scored, c.journal.production_age_days, &settings)
        .map_err(err)?;
    crate::journal::write_json(&c.file("gate.json"), &report)?;
    Ok(report)
}

/// The card's version of `cycle`.
pub(crate) fn version(cycle: u32) -> String {
    format!("1.{cycle}.0")
}

/// The candidate in the transformers layout with a card signed by `hotkey` → `export/`.
pub(crate) fn export(c: &Cycle) -> Result<String> {
    let hotkey = c.hotkey.ss58.as_str();
    let p = &c.config.publish;
    let card = sv_records::card::ModelCard::now(
        p.model_name.clone(),
        p.description.clone(),
        version(c.journal.cycle),
        hotkey.to_string(),
    );
    sv_train::export::export_run(&run_dir(c), card, &c.file("export"))
        .map_err(|e| step_error(Step::Export, e))?;
    Ok(format!(
        "{} version {} submitted by {hotkey}",
        p.model_name,
        version(c.journal.cycle)
    ))
}
