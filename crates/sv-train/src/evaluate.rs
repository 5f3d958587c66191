//! Evaluation: metrics overall and per source, latency at batch 1, ensemble fitting, and
//! the paired bootstrap of an accuracy difference between two models on the same images
//! (the deploy decision itself is [`crate::gate`]).

use std::collections::BTreeMap;
use std::time::Instant;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use sv_data::Sample;

use crate::error::Result;
use crate::finetune::{Logits, ScoredInput, predict};
use crate::metrics::{Report, nearest_rank};

/// Latency of one image at batch 1, in milliseconds (preprocessed before the clock).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Images timed.
    pub images: usize,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
}

/// Everything `eval` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// All images.
    pub overall: Report,
    /// Per source (`natix`, `synthetic`, …).
    pub by_source: BTreeMap<String, Report>,
    /// Batch-1 latency.
    pub latency: Option<Latency>,
}

/// Score `model` on `samples`, overall and per source, and time `latency_images` of them
/// one at a time.
pub fn evaluate<M: Logits>(
    model: &M,
    samples: &[Sample],
    input: impl Into<ScoredInput>,
    batch_size: usize,
    device: &Device,
    latency_images: usize,
) -> Result<Evaluation> {
    let input = input.into();
    let mut by_source: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
    for s in samples {
        by_source
            .entry(s.source.name().to_string())
            .or_default()
            .push(s.clone());
    }
    let mut all = Vec::new();
    let mut reports = BTreeMap::new();
    for (source, group) in by_source {
        let pairs = predict(model, &group, input.clone(), batch_size, device)?;
        reports.insert(source, Report::of(&pairs));
        all.extend(pairs);
    }
    let latency = (latency_images > 0 && !samples.is_empty())
        .then(|| time_batch_one(model, samples, &input, device, latency_images))
        .flatten();
    Ok(Evaluation {
        overall: Report::of(&all),
        by_source: reports,
        latency,
    })
}

fn time_batch_one<M: Logits>(
    model: &M,
    samples: &[Sample],
    input: &ScoredInput,
    device: &Device,
    n: usize,
) -> Option<Latency> {
    use burn::data::dataloader::batcher::Batcher;
    let batcher = input.batcher();
    // The first n + 3 images that can be read, repeated when there are fewer.
    let singles: Vec<_> = samples
        .iter()
        .take(n + 3)
        .map(|s| batcher.batch(vec![s.clone()], device))
        .filter(|b| !b.ids.is_empty())
        .map(|b| b.pixels)
        .collect();
    if singles.is_empty() {
        return None;
    }
    let inputs: Vec<_> = singles.iter().cycle().take(n + 3).cloned().collect();
    let mut times = Vec::with_capacity(n);
    for (i, x) in inputs.into_iter().enumerate() {
        let t = Instant::now();
        let p = burn::tensor::activation::softmax(model.logits(x), 1);
        let _ = p.into_data();
        if i >= 3 {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    Some(Latency {
        images: times.len(),
        p50_ms: nearest_rank(&times, 0.5),
        p95_ms: nearest_rank(&times, 0.95),
        p99_ms: nearest_rank(&times, 0.99),
    })
}

/// The paired bootstrap of `mean(candidate) − mean(production)` over the same images
/// (each entry: answered correctly or not), `resamples` times with `seed`: the observed
/// difference and the 2.5 % and 97.5 % percentiles.
pub fn paired_bootstrap(
    candidate: &[bool],
    production: &[bool],
    resamples: usize,
    seed: u64,
) -> (f64, f64, f64) {
    let n = candidate.len().min(production.len());
    if n == 0 {
        return (0.0, 0.0, 0.0);
    }
    let d: Vec<f64> = (0..n)
        .map(|i| f64::from(u8::from(candidate[i])) - f64::from(u8::from(production[i])))
        .collect();
    let observed = d.iter().sum::<f64>() / n as f64;
    let mut rng = sv_data::rng::SplitMix64::new(seed);
    let mut stats: Vec<f64> = (0..resamples.max(1))
        .map(|_| {
            let mut s = 0.0;
            for _ in 0..n {
                s += d[(rng.next_u64() % n as u64) as usize];
            }
            s / n as f64
        })
        .collect();
    stats.sort_by(f64::total_cmp);
    (
        observed,
        nearest_rank(&stats, 0.025),
        nearest_rank(&stats, 0.975),
    )
}

/// Fit an ensemble's weights and/or temperatures on labelled `samples` (decoded in chunks
/// of `chunk`; unreadable ones left out), storing the result in the ensemble.
pub fn fit_ensemble(
    ensemble: &mut sv_models::Ensemble,
    samples: &[Sample],
    opts: sv_models::ensemble::FitOptions,
    chunk: usize,
) -> crate::Result<sv_models::ensemble::Fit> {
    use rayon::prelude::*;
    let mut raw: Vec<Vec<f64>> = vec![Vec::new(); ensemble.members.len()];
    let mut labels = Vec::new();
    for part in samples.chunks(chunk.max(1)) {
        let decoded: Vec<(image::DynamicImage, bool)> = part
            .par_iter()
            .filter_map(|s| {
                let y = s.label.target()? > 0.5;
                let bytes = s.location.read().ok()?;
                let img = sv_data::decode_image(&bytes, sv_data::DEFAULT_MAX_PIXELS).ok()?;
                Some((img, y))
            })
            .collect();
        if decoded.is_empty() {
            continue;
        }
        let images: Vec<_> = decoded.iter().map(|(i, _)| i.clone()).collect();
        for (m, probs) in ensemble
            .raw_member_probabilities(&images)
            .into_iter()
            .enumerate()
        {
            raw[m].extend(probs);
        }
        labels.extend(decoded.iter().map(|(_, y)| *y));
    }
    if labels.is_empty() {
        return Err(crate::TrainError::Empty(
            "no readable labelled images to fit on".into(),
        ));
    }
    Ok(ensemble.fit(&raw, &labels, opts)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_interval_matches_the_normal_approximation() {
        // 1 000 images: candidate right on 80 %, production on 70 %, independent errors.
        let mut rng = sv_data::rng::SplitMix64::new(9);
        let c: Vec<bool> = (0..1000).map(|_| rng.next_f64() < 0.8).collect();
        let p: Vec<bool> = (0..1000).map(|_| rng.next_f64() < 0.7).collect();
        let (diff, lo, hi) = paired_bootstrap(&c, &p, 4000, 1);
        let d: Vec<f64> = c
            .iter()
            .zip(&p)
            .map(|(a, b)| f64::from(u8::from(*a)) - f64::from(u8::from(*b)))
            .collect();
        let var = d.iter().map(|x| (x - diff).powi(2)).sum::<f64>() / d.len() as f64;
        let half = 1.96 * (var / d.len() as f64).sqrt();
        assert!(
            ((hi - lo) / 2.0 - half).abs() < 0.1 * half,
            "{lo} {hi} vs ±{half}"
        );
        assert!((lo + hi) / 2.0 - diff < 0.2 * half);
    }
}
