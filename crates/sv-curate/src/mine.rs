//! Hard cases from a miner's failures: answers that were wrong (where the validator's
//! label is known) or unsure (confidence below a threshold), and their nearest
//! neighbours in a pool of labelled images, which share the failure's look.

use serde::Serialize;
use sv_data::{Label, Sample, Source, Split};
use sv_index::EmbeddingIndex;

use sv_records::predlog::Entry;

/// Why an answer counts as a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Labelled, and the answer was on the wrong side of 0.5.
    Wrong,
    /// Confidence `|p − 0.5| · 2` below the threshold.
    Unsure,
}

impl Reason {
    /// How many of `failures` are for this reason.
    pub fn count(self, failures: &[Failure]) -> usize {
        failures.iter().filter(|f| f.reason == self).count()
    }
}

/// A failure of the miner.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// The image's id (SHA-256).
    pub id: String,
    /// Why.
    pub reason: Reason,
    /// The answer.
    pub prediction: f32,
    /// The validator's label, if sent.
    pub label: Option<i64>,
}

/// The failures among `answers` (latest answer per image): wrong where labelled;
/// otherwise unsure, labelled or not, when confidence < `min_confidence`. Wrong answers
/// come first (the most confident mistakes first), then unsure ones (the least
/// confident first). Labels the log lacks can be joined first from the challenges'
/// labels ([`sv_records::labels::apply_labels`]).
pub fn failures(answers: &[Entry], min_confidence: f32) -> Vec<Failure> {
    let mut latest: std::collections::BTreeMap<&str, &Entry> = Default::default();
    for a in answers {
        latest.insert(&a.image_sha256, a);
    }
    let mut found = latest
        .into_values()
        .filter_map(|a| {
            let said = a.prediction >= 0.5;
            let reason = match a.label {
                Some(l) if (l == 1) != said => Some(Reason::Wrong),
                _ if (a.prediction - 0.5).abs() * 2.0 < min_confidence => Some(Reason::Unsure),
                _ => None,
            }?;
            Some(Failure {
                id: a.image_sha256.clone(),
                reason,
                prediction: a.prediction,
                label: a.label,
            })
        })
        .collect::<Vec<_>>();
    let confidence = |f: &Failure| (f.prediction - 0.5).abs();
    found.sort_by(|a, b| match (a.reason, b.reason) {
        (Reason::Wrong, Reason::Unsure) => std::cmp::Ordering::Less,
        (Reason::Unsure, Reason::Wrong) => std::cmp::Ordering::Greater,
        (Reason::Wrong, Reason::Wrong) => confidence(b).total_cmp(&confidence(a)),
        (Reason::Unsure, Reason::Unsure) => confidence(a).total_cmp(&confidence(b)),
    });
    found
}

/// The hard cases of [`hard_cases`], and the neighbours left out because they belong
/// to a held-out split.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HardCases {
    /// The hard-case samples, each keeping the split it had in the pool.
    pub samples: Vec<Sample>,
    /// Neighbours in the pool's validation split, left out.
    pub left_out_val: usize,
    /// Neighbours in the pool's test split, left out.
    pub left_out_test: usize,
}

/// The hard-case manifest: for each failure present in `index` (the failures' own
/// embeddings), its `k` nearest labelled pool samples (at similarity ≥
/// `min_similarity`), marked `hard_case`, or `hard_negative` when a no-roadwork
/// neighbour of a roadwork-looking failure, with the failure and similarity recorded in
/// the metadata, in the failures' order. Each pool sample appears once (its most
/// similar failure). A neighbour
/// keeps its split; one in the validation or test split is left out (and counted), so
/// mining never moves a held-out image into training.
pub fn hard_cases(
    failures: &[Failure],
    failure_index: &dyn EmbeddingIndex,
    pool: &[Sample],
    pool_index: &dyn EmbeddingIndex,
    k: usize,
    min_similarity: f32,
) -> HardCases {
    let mut best: std::collections::BTreeMap<usize, (f32, &Failure)> = Default::default();
    let by_id: std::collections::HashMap<&str, usize> = pool
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    for f in failures {
        let Some(pos) = failure_index.position(&f.id) else {
            continue;
        };
        let Some(query) = failure_index.vector_of(pos).map(<[f32]>::to_vec) else {
            continue;
        };
        let Ok(hits) = pool_index.search(&query, k + 1) else {
            continue;
        };
        for h in hits.into_iter().flatten() {
            let id = pool_index.id(h.pos);
            if id == f.id || h.score < min_similarity {
                continue;
            }
            let Some(&i) = by_id.get(id) else { continue };
            if pool[i].label == Label::Unknown {
                continue;
            }
            let e = best.entry(i).or_insert((h.score, f));
            if h.score > e.0 {
                *e = (h.score, f);
            }
        }
    }
    // In the failures' order (wrong answers first), most similar first.
    let rank: std::collections::HashMap<&str, usize> = failures
        .iter()
        .enumerate()
        .map(|(r, f)| (f.id.as_str(), r))
        .collect();
    let mut best: Vec<(usize, (f32, &Failure))> = best.into_iter().collect();
    best.sort_by(|(_, (sa, fa)), (_, (sb, fb))| {
        rank[fa.id.as_str()]
            .cmp(&rank[fb.id.as_str()])
            .then(sb.total_cmp(sa))
    });
    let mut out = HardCases::default();
    for (i, (score, f)) in best {
        match pool[i].split {
            Some(Split::Val) => out.left_out_val += 1,
            Some(Split::Test) => out.left_out_test += 1,
            Some(Split::Train) | None => out.samples.push(hard_case(&pool[i], score, f)),
        }
    }
    out
}

/// A pool sample as a hard case of failure `f` at similarity `score`.
fn hard_case(pool_sample: &Sample, score: f32, f: &Failure) -> Sample {
    let mut s = pool_sample.clone();
    let looked_like_roadwork = f.prediction >= 0.5;
    s.source = if s.label == Label::NoRoadwork && looked_like_roadwork {
        Source::HardNegative
    } else {
        Source::HardCase
    };
    s.metadata.insert("mined_from".into(), f.id.clone().into());
    s.metadata.insert(
        "mined_reason".into(),
        serde_json::to_value(f.reason).expect("enum"),
    );
    s.metadata
        .insert("mined_similarity".into(), (score as f64).into());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(sha: &str, p: f32, label: Option<i64>) -> Entry {
        Entry {
            time: 0.0,
            validator: "v".into(),
            synapse: "ImageSynapse".into(),
            image_sha256: sha.into(),
            prediction: p,
            latency_ms: 1.0,
            model_version: "m".into(),
            label,
        }
    }

    #[test]
    fn wrong_labelled_and_unsure_unlabelled_answers_fail() {
        let answers = [
            answer("a", 0.2, Some(1)), // wrong
            answer("b", 0.9, Some(1)), // right
            answer("c", 0.55, None),   // unsure
            answer("d", 0.95, None),   // confident
            answer("e", 0.9, Some(0)), // wrong, later answered right:
            answer("e", 0.1, Some(0)),
            answer("f", 0.52, Some(1)), // right but unsure: a near miss
        ];
        let f = failures(&answers, 0.2);
        let got: Vec<(&str, Reason)> = f.iter().map(|f| (f.id.as_str(), f.reason)).collect();
        assert_eq!(
            got,
            vec![
                ("a", Reason::Wrong),
                ("f", Reason::Unsure),
                ("c", Reason::Unsure)
            ]
        );
    }

    #[test]
    fn a_wrong_answer_known_from_challenge_labels_ranks_above_unsure_ones() {
        // The log has no labels (mainnet validators send none); the challenge's labels
        // say the confident 0.9 on "x" was wrong.
        let mut answers = vec![
            answer("u1", 0.55, None),
            answer("x", 0.9, None),
            answer("u2", 0.45, None),
            answer("y", 0.8, None),
            answer("z", 0.35, None),
        ];
        assert!(
            failures(&answers, 0.2)
                .iter()
                .all(|f| f.reason == Reason::Unsure)
        );
        let labels = std::collections::HashMap::from([
            ("x".to_string(), 0),
            ("y".to_string(), 1),
            ("z".to_string(), 1),
        ]);
        assert_eq!(sv_records::labels::apply_labels(&mut answers, &labels), 3);
        let got: Vec<(String, Reason)> = failures(&answers, 0.2)
            .into_iter()
            .map(|f| (f.id, f.reason))
            .collect();
        assert_eq!(
            got,
            vec![
                ("x".to_string(), Reason::Wrong),
                ("z".to_string(), Reason::Wrong),
                ("u1".to_string(), Reason::Unsure),
                ("u2".to_string(), Reason::Unsure),
            ]
        );
    }
}
