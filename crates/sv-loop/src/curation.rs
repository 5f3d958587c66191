//! The data steps: ingest, embed, dedup, mine, autolabel, mix. Each reads the files of
//! the steps before it in the cycle's folder and writes its own.

use std::path::Path;

use sv_data::{Label, Sample, ShortPolicy, Source};

use crate::cycle::{Cycle, step_error};
use crate::error::{LoopError, Result};
use crate::step::Step;

fn write_manifest(step: Step, path: &Path, samples: &[Sample]) -> Result<()> {
    sv_data::write_manifest(path, samples.iter())
        .map(|_| ())
        .map_err(|e| step_error(step, e))
}

fn read_manifest(step: Step, path: &Path) -> Result<Vec<Sample>> {
    sv_data::read_manifest(path).map_err(|e| step_error(step, e))
}

/// The miner's log, labelled by the challenge labels → `log.jsonl`.
pub(crate) fn ingest(c: &Cycle) -> Result<String> {
    let log = &c.config.miner_log;
    if !log.is_dir() {
        return Err(LoopError::Input {
            key: "miner_log",
            path: log.clone(),
            reason: "not a folder (give the miner's log_dir, synced to this host)".into(),
        });
    }
    let nothing_logged = !log.join(sv_records::predlog::CURRENT).exists()
        && sv_records::predlog::rotated_files(log).is_empty();
    if nothing_logged {
        // A miner's first day: the cycle trains on the pool alone.
        write_manifest(Step::Ingest, &c.file("log.jsonl"), &[])?;
        return Ok(format!(
            "{}: no answers logged yet; the pool alone is curated",
            log.display()
        ));
    }
    let labels = sv_records::labels::read_labels(&c.config.challenge_labels)
        .map_err(|e| step_error(Step::Ingest, e))?;
    let (samples, count) = sv_curate::ingest::from_prediction_log(log, &labels)
        .map_err(|e| step_error(Step::Ingest, e))?;
    let (samples, _) = sv_curate::ingest::merge(vec![samples]);
    write_manifest(Step::Ingest, &c.file("log.jsonl"), &samples)?;
    let labelled = samples.iter().filter(|s| s.label != Label::Unknown).count();
    let hint = if count.stored == 0 && count.answers > 0 {
        " (the miner stores no images: set store_images = true in its config)"
    } else {
        ""
    };
    Ok(format!(
        "{}: {count}; {} images ({labelled} labelled){hint}",
        log.display(),
        samples.len()
    ))
}

/// Embed `manifest` into `index` with `checkpoint`, unless it holds no image.
fn embed_one(c: &Cycle, checkpoint: &Path, manifest: &str, index: &str) -> Result<String> {
    let samples = read_manifest(Step::Embed, &c.file(manifest))?;
    if samples.is_empty() {
        return Ok(format!("{manifest}: empty, not embedded"));
    }
    let cache = c.work.join("cache/features");
    let out = c.file(index);
    let job = sv_train::embed::EmbedJob {
        checkpoint,
        cache_dir: &cache,
        kind: "exact",
        out: &out,
        batch_size: 32,
    };
    let e = sv_train::embed::embed_index(&job, &samples, &c.device, &mut |_, _| {})
        .map_err(|e| step_error(Step::Embed, e))?;
    Ok(format!(
        "{index}: {} vectors ({} computed, {} unreadable)",
        e.count, e.computed, e.missing
    ))
}

/// The configured embedder, or production's backbone (exported into `embedder/`),
/// embeds the log and the pool.
pub(crate) fn embed(c: &Cycle) -> Result<String> {
    let checkpoint = match &c.config.curate.embedder {
        Some(file) => file.clone(),
        None => {
            let embedder = c.file("embedder");
            let run = sv_train::finetune::RunDir {
                root: c.journal.production.clone(),
            };
            let (model, _) = sv_train::finetune::load_scored(&run.root, &c.device)
                .map_err(|e| step_error(Step::Embed, e))?;
            let size = run.read_config().map_or(224, |cfg| cfg.image_size);
            sv_train::export::export_network(&model, size, None, &embedder)
                .map_err(|e| step_error(Step::Embed, e))?;
            embedder.join("model.safetensors")
        }
    };
    let pool = sv_data::read_manifest(&c.config.pool).map_err(|e| step_error(Step::Embed, e))?;
    write_manifest(Step::Embed, &c.file("pool.jsonl"), &pool)?;
    let log = embed_one(c, &checkpoint, "log.jsonl", "log.index")?;
    let pool = embed_one(c, &checkpoint, "pool.jsonl", "pool.index")?;
    Ok(format!("{log}; {pool}"))
}

/// Near-duplicates out of the pool; a group spanning train and a held-out split keeps
/// its held-out copy → `pool.dedup.jsonl`, `dedup.groups.json`.
pub(crate) fn dedup(c: &Cycle) -> Result<String> {
    let samples = read_manifest(Step::Dedup, &c.file("pool.jsonl"))?;
    let before = samples.len();
    let (kept, groups) = if c.file("pool.index").exists() {
        let index = sv_index::store::load_any(&c.file("pool.index"))
            .map_err(|e| step_error(Step::Dedup, e))?;
        let groups = sv_curate::dedup::groups(index.as_ref(), c.config.curate.dedup_threshold)
            .map_err(|e| step_error(Step::Dedup, e))?;
        let order = sv_curate::dedup::parse_source_order(&c.config.curate.source_order);
        let (kept, resolved) =
            sv_curate::dedup::dedup(samples.clone(), index.as_ref(), &groups, &order);
        let dropped = before - kept.len();
        if dropped as f64 > c.config.curate.dedup_max_drop * before as f64 {
            write_manifest(Step::Dedup, &c.file("pool.dedup.jsonl"), &samples)?;
            crate::journal::write_json(&c.file("dedup.groups.json"), &resolved)?;
            return Ok(format!(
                "skipped: at cosine ≥ {} it would drop {dropped} of {before} (more than curate.dedup_max_drop = {}); \
                 the embedding cannot tell these images apart (set curate.embedder to a general backbone, or raise curate.dedup_threshold)",
                c.config.curate.dedup_threshold, c.config.curate.dedup_max_drop
            ));
        }
        (kept, resolved)
    } else {
        (samples, Vec::new())
    };
    write_manifest(Step::Dedup, &c.file("pool.dedup.jsonl"), &kept)?;
    crate::journal::write_json(&c.file("dedup.groups.json"), &groups)?;
    let leaks = groups.iter().filter(|g| g.leak).count();
    Ok(format!(
        "{} groups at cosine ≥ {}: {} of {before} dropped, {leaks} spanned train and a held-out split (train copies dropped)",
        groups.len(),
        c.config.curate.dedup_threshold,
        before - kept.len()
    ))
}

/// Failures of the log (wrong answers first, then unsure ones) → their neighbours in
/// the deduplicated pool → `hard.jsonl`.
pub(crate) fn mine(c: &Cycle) -> Result<String> {
    let pool = read_manifest(Step::Mine, &c.file("pool.dedup.jsonl"))?;
    if !c.file("log.index").exists() {
        write_manifest(Step::Mine, &c.file("hard.jsonl"), &[])?;
        return Ok("no logged images: no hard cases".into());
    }
    let mut answers = sv_records::predlog::read_log(&c.config.miner_log)
        .map_err(|e| step_error(Step::Mine, e))?;
    let labels = sv_records::labels::read_labels(&c.config.challenge_labels)
        .map_err(|e| step_error(Step::Mine, e))?;
    sv_records::labels::apply_labels(&mut answers, &labels);
    let failures = sv_curate::mine::failures(&answers, c.config.curate.mine_min_confidence);
    let load = |name: &str| {
        sv_index::store::load_any(&c.file(name)).map_err(|e| step_error(Step::Mine, e))
    };
    let (log_index, pool_index) = (load("log.index")?, load("pool.index")?);
    let cases = sv_curate::mine::hard_cases(
        &failures,
        log_index.as_ref(),
        &pool,
        pool_index.as_ref(),
        c.config.curate.mine_k,
        c.config.curate.mine_min_similarity,
    );
    write_manifest(Step::Mine, &c.file("hard.jsonl"), &cases.samples)?;
    let wrong = sv_curate::mine::Reason::Wrong.count(&failures);
    Ok(format!(
        "{} failures ({wrong} wrong, {} unsure) → {} hard cases; held-out neighbours left out: {} val, {} test",
        failures.len(),
        failures.len() - wrong,
        cases.samples.len(),
        cases.left_out_val,
        cases.left_out_test
    ))
}

/// Unlabelled hard cases labelled where the ensemble's members agree (without an
/// ensemble they are left out) → `hard.labelled.jsonl`, `review.jsonl`.
pub(crate) fn autolabel(c: &Cycle) -> Result<String> {
    let samples = read_manifest(Step::Autolabel, &c.file("hard.jsonl"))?;
    let Some(file) = &c.config.curate.autolabel_ensemble else {
        let (labelled, unlabelled): (Vec<Sample>, Vec<Sample>) =
            samples.into_iter().partition(|s| s.label != Label::Unknown);
        write_manifest(Step::Autolabel, &c.file("hard.labelled.jsonl"), &labelled)?;
        sv_curate::autolabel::write_review(&c.file("review.jsonl"), &[])
            .map_err(|e| step_error(Step::Autolabel, e))?;
        return Ok(format!(
            "no curate.autolabel_ensemble: {} labelled hard cases kept, {} unlabelled left out",
            labelled.len(),
            unlabelled.len()
        ));
    };
    let ensemble =
        sv_models::Ensemble::load(file, &c.device).map_err(|e| step_error(Step::Autolabel, e))?;
    let targets = sv_curate::autolabel::candidates(&samples);
    let probabilities = sv_curate::autolabel::votes(
        &targets,
        &mut |images| ensemble.member_probabilities(images),
        &mut |_, _| {},
    );
    let candidates = targets.len();
    let (labelled, review) = sv_curate::autolabel::autolabel(
        samples,
        &probabilities,
        c.config.curate.autolabel_min_confidence,
    );
    let labelled: Vec<Sample> = labelled
        .into_iter()
        .filter(|s| s.label != Label::Unknown)
        .collect();
    write_manifest(Step::Autolabel, &c.file("hard.labelled.jsonl"), &labelled)?;
    sv_curate::autolabel::write_review(&c.file("review.jsonl"), &review)
        .map_err(|e| step_error(Step::Autolabel, e))?;
    Ok(format!(
        "{candidates} candidates: {} labelled by agreement, {} to review",
        candidates - review.len(),
        review.len()
    ))
}

/// The deduplicated pool and the labelled hard cases → `train.jsonl` (with `ratios`,
/// mixed to them), ids unique, each keeping its most held-out split; samples without
/// a split get one from their id.
pub(crate) fn mix(c: &Cycle) -> Result<String> {
    let cfg = &c.config.curate;
    let mut samples = read_manifest(Step::Mix, &c.file("pool.dedup.jsonl"))?;
    let hard = read_manifest(Step::Mix, &c.file("hard.labelled.jsonl"))?;
    let hard_count = hard.len();
    samples.extend(hard);
    let err = |e| step_error(Step::Mix, e);
    let (mut mixed, report) = match &cfg.ratios {
        Some(text) => {
            let targets = sv_data::parse_ratios(text).map_err(err)?;
            let policy: ShortPolicy = cfg.policy.parse().map_err(err)?;
            let (mixed, report) =
                sv_data::mix(samples, &targets, cfg.total, policy, cfg.seed).map_err(err)?;
            (mixed, serde_json::to_value(&report).unwrap_or_default())
        }
        None => {
            let (unique, merged) = sv_data::unique_by_id(samples);
            (unique, serde_json::json!({ "duplicate_ids": merged }))
        }
    };
    let fractions: sv_data::SplitFractions = cfg.splits.parse().map_err(err)?;
    sv_data::assign_splits(&mut mixed, &fractions, cfg.seed).map_err(err)?;
    write_manifest(Step::Mix, &c.file("train.jsonl"), &mixed)?;
    crate::journal::write_json(&c.file("mix.json"), &report)?;
    let count = |split| mixed.iter().filter(|s| s.split == Some(split)).count();
    let negatives = mixed
        .iter()
        .filter(|s| s.source == Source::HardNegative && s.split == Some(sv_data::Split::Train))
        .count();
    Ok(format!(
        "{} samples ({hard_count} hard cases in; {negatives} hard negatives in train): train {}, val {}, test {}",
        mixed.len(),
        count(sv_data::Split::Train),
        count(sv_data::Split::Val),
        count(sv_data::Split::Test)
    ))
}
