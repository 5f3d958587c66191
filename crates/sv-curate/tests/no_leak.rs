//! No validation or test image reaches the train split through mining, auto-labelling
//! and mixing, on pools whose labels, splits and embeddings a seeded generator draws.

use std::collections::{BTreeMap, HashMap};

use sv_curate::mine::{Failure, Reason, hard_cases};
use sv_data::rng::SplitMix64;
use sv_data::{
    Label, Location, Sample, ShortPolicy, Source, Split, SplitFractions, assign_splits, mix,
    seed_plan,
};
use sv_index::{EmbeddingIndex, ExactIndex};

const DIM: usize = 8;

fn pick<T: Clone>(rng: &mut SplitMix64, options: &[T]) -> T {
    options[(rng.next_u64() % options.len() as u64) as usize].clone()
}

fn vector(rng: &mut SplitMix64) -> Vec<f32> {
    (0..DIM).map(|_| rng.next_f64() as f32 - 0.5).collect()
}

/// A pool of `n` samples with drawn labels, sources and splits (some unassigned).
fn pool(rng: &mut SplitMix64, n: usize) -> Vec<Sample> {
    (0..n)
        .map(|i| Sample {
            id: sv_data::content_id(format!("{}-{i}", rng.next_u64()).as_bytes()),
            location: Location::File {
                path: format!("{i}.jpg").into(),
            },
            label: pick(rng, &[Label::Roadwork, Label::NoRoadwork, Label::Unknown]),
            source: pick(rng, &[Source::Natix, Source::Synthetic]),
            split: pick(
                rng,
                &[
                    None,
                    Some(Split::Train),
                    Some(Split::Val),
                    Some(Split::Test),
                ],
            ),
            size: None,
            metadata: Default::default(),
        })
        .collect()
}

#[test]
fn held_out_images_never_reach_train_through_mine_autolabel_and_mix() {
    for seed in 0..25 {
        let mut rng = SplitMix64::new(seed);
        let pool = pool(&mut rng, 80);
        let mut pool_index = ExactIndex::new(DIM);
        let mut vectors = BTreeMap::new();
        for s in &pool {
            let v = vector(&mut rng);
            pool_index.add(std::slice::from_ref(&s.id), &v).unwrap();
            vectors.insert(s.id.clone(), v);
        }
        // Failures embedded next to drawn pool samples, wrong or unsure.
        let mut failure_index = ExactIndex::new(DIM);
        let mut failures = vec![];
        for f in 0..15 {
            let near = &pool[(rng.next_u64() % pool.len() as u64) as usize];
            let mut v = vectors[&near.id].clone();
            v[0] += 0.01;
            let id = format!("failure-{f}");
            failure_index.add(std::slice::from_ref(&id), &v).unwrap();
            failures.push(Failure {
                id,
                reason: pick(&mut rng, &[Reason::Wrong, Reason::Unsure]),
                prediction: rng.next_f64() as f32,
                label: None,
            });
        }
        let cases = hard_cases(&failures, &failure_index, &pool, &pool_index, 3, -1.0);
        let held_out_split: HashMap<&str, Split> = pool
            .iter()
            .filter_map(|s| match s.split {
                Some(sp @ (Split::Val | Split::Test)) => Some((s.id.as_str(), sp)),
                _ => None,
            })
            .collect();
        for c in &cases.samples {
            assert!(
                !held_out_split.contains_key(c.id.as_str()),
                "seed {seed}: mined a held-out image"
            );
        }
        assert!(
            cases.left_out_val + cases.left_out_test > 0 || held_out_split.is_empty(),
            "seed {seed}: nothing held out was near a failure (the draw is too easy)"
        );

        // Auto-labelling the pool and the cases changes labels, never splits.
        let mut together = pool.clone();
        together.extend(cases.samples.clone());
        let votes: HashMap<String, Vec<f32>> = together
            .iter()
            .map(|s| (s.id.clone(), vec![0.9, 0.95]))
            .collect();
        let before: Vec<Option<Split>> = together.iter().map(|s| s.split).collect();
        let (labelled, _) = sv_curate::autolabel::autolabel(together, &votes, 0.8);
        assert_eq!(
            before,
            labelled.iter().map(|s| s.split).collect::<Vec<_>>(),
            "seed {seed}"
        );

        // Mixing (pool first, then its mined copies) and assigning splits keeps every
        // held-out image where it was, and gives each id once.
        let (mut mixed, report) = mix(
            labelled,
            &seed_plan(),
            None,
            ShortPolicy::Redistribute,
            seed,
        )
        .unwrap();
        assign_splits(&mut mixed, &SplitFractions::default(), seed).unwrap();
        let mut seen = std::collections::HashSet::new();
        for s in &mixed {
            assert!(seen.insert(s.id.clone()), "seed {seed}: {} twice", s.id);
            if let Some(&sp) = held_out_split.get(s.id.as_str()) {
                assert_eq!(s.split, Some(sp), "seed {seed}: {} moved", s.id);
            }
        }
        assert_eq!(report.duplicate_ids, cases.samples.len(), "seed {seed}");
    }
}

#[test]
fn a_mined_copy_of_a_held_out_image_keeps_the_held_out_split_in_a_mix() {
    // Manifests from before mining kept splits: a copy in train, the original in test.
    let mut rng = SplitMix64::new(3);
    let mut original = pool(&mut rng, 1).remove(0);
    original.label = Label::Roadwork;
    original.source = Source::Natix;
    original.split = Some(Split::Test);
    let mut copy = original.clone();
    copy.source = Source::HardCase;
    copy.split = Some(Split::Train);
    let (unique, merged) = sv_data::unique_by_id(vec![original.clone(), copy]);
    assert_eq!(merged, 1);
    assert_eq!(unique.len(), 1);
    assert_eq!(unique[0].split, Some(Split::Test));
    assert_eq!(
        unique[0].source,
        Source::HardCase,
        "the later copy's fields"
    );
}
