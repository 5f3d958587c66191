//! `sv-curator` as a process over generated street scenes: ingest (folders, a synthetic
//! generator's output with its prompt sidecar, and a prediction log written by the
//! miner's own log writer), embed, dedup with the leak check, mine, autolabel and mix.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sv_data::{Label, Sample, Source, Split};
use sv_index::EmbeddingIndex;
use sv_tests::fixture;

mod common;
use common::{curator, file_of, ok, s, write_log};

/// A checkpoint directory the embedder reads: the ConvNeXt-V2 fixture and its config.
fn backbone(dir: &Path) -> PathBuf {
    let d = dir.join("backbone");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(
        fixture("convnext/hf_cls.safetensors"),
        d.join("model.safetensors"),
    )
    .unwrap();
    std::fs::copy(
        fixture("convnext/hf_cls.config.json"),
        d.join("config.json"),
    )
    .unwrap();
    d.join("model.safetensors")
}

#[test]
fn the_curation_loop_runs_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A labelled pool of generated scenes, one of them again as a JPEG (a near copy).
    let pool = sv_data::synthetic::generate(&d.join("pool"), 40, 64, 1).unwrap();
    let original = file_of(&pool[3]);
    let near = original.with_file_name("near-copy.jpg");
    image::open(&original)
        .unwrap()
        .save_with_format(&near, image::ImageFormat::Jpeg)
        .unwrap();
    // A generator's unlabelled output with a prompt sidecar; one file is an exact copy
    // of a pool image.
    let generated = d.join("generated");
    std::fs::create_dir_all(&generated).unwrap();
    let extra = sv_data::synthetic::generate(&d.join("extra"), 6, 64, 9).unwrap();
    let mut prompts = String::new();
    for (i, smp) in extra.iter().enumerate() {
        let name = format!("gen{i}.png");
        std::fs::copy(file_of(smp), generated.join(&name)).unwrap();
        prompts.push_str(&format!(
            "{{\"file\": \"{name}\", \"prompt\": \"street scene {i}\", \"seed\": {i}}}\n"
        ));
    }
    std::fs::copy(&original, generated.join("copy.png")).unwrap();
    std::fs::write(d.join("prompts.jsonl"), prompts).unwrap();
    // The miner's log: challenges from other scenes; 2 wrong, 2 unsure, 2 right.
    let challenges = sv_data::synthetic::generate(&d.join("challenges"), 6, 64, 5).unwrap();
    let answers: Vec<(PathBuf, f32, Option<i64>)> = challenges
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let y = i64::from(c.label == Label::Roadwork);
            let (p, label) = match i {
                0 | 1 => (if y == 1 { 0.1 } else { 0.9 }, Some(y)),
                2 | 3 => (0.55, None),
                _ => (if y == 1 { 0.95 } else { 0.05 }, Some(y)),
            };
            (file_of(c), p, label)
        })
        .collect();
    let log_dir = d.join("miner-log");
    write_log(&log_dir, &answers);

    // ingest
    let manifest = d.join("all.jsonl");
    let out = ok(&[
        "ingest",
        "--out",
        s(&manifest),
        "--folder",
        s(&d.join("pool")),
        "--synthetic",
        s(&generated),
        "--prompts",
        s(&d.join("prompts.jsonl")),
    ]);
    let report: Value = serde_json::from_str(&out[..out.rfind('}').unwrap() + 1]).unwrap();
    assert_eq!(report["sources"]["folder"]["kept"], 41, "{out}");
    assert_eq!(report["sources"]["synthetic"]["duplicates"], 1, "{out}");
    let samples: Vec<Sample> = sv_data::read_manifest(&manifest).unwrap();
    assert_eq!(samples.len(), 41 + 6);
    let prompted = samples
        .iter()
        .filter(|s| s.metadata.contains_key("prompt"))
        .count();
    assert_eq!(prompted, 6);
    let log_manifest = d.join("log.jsonl");
    ok(&[
        "ingest",
        "--out",
        s(&log_manifest),
        "--log-dir",
        s(&log_dir),
    ]);
    let logged = sv_data::read_manifest(&log_manifest).unwrap();
    assert_eq!(logged.len(), 6);
    assert!(logged.iter().all(|s| s.source == Source::MinerLog));
    assert_eq!(
        logged.iter().filter(|s| s.label != Label::Unknown).count(),
        4
    );
    // Challenge labels join the log by image id: the unlabelled third answer gets its
    // image's label; a label the validator sent is kept.
    let third = sv_data::content_id(&std::fs::read(file_of(&challenges[2])).unwrap());
    let y = i64::from(challenges[2].label == Label::Roadwork);
    let first = sv_data::content_id(&std::fs::read(file_of(&challenges[0])).unwrap());
    let labels_file = d.join("challenge-labels.jsonl");
    sv_records::labels::write_labels(
        &labels_file,
        &[
            sv_records::labels::ChallengeLabel {
                image_sha256: third.clone(),
                label: y,
                source_id: None,
                level: Some(1),
            },
            sv_records::labels::ChallengeLabel {
                image_sha256: first.clone(),
                label: 1 - i64::from(challenges[0].label == Label::Roadwork),
                source_id: None,
                level: None,
            },
        ],
    )
    .unwrap();
    let joined_manifest = d.join("log-joined.jsonl");
    ok(&[
        "ingest",
        "--out",
        s(&joined_manifest),
        "--log-dir",
        s(&log_dir),
        "--challenge-labels",
        s(&labels_file),
    ]);
    let joined = sv_data::read_manifest(&joined_manifest).unwrap();
    let label_of = |id: &str| joined.iter().find(|x| x.id == id).unwrap().label;
    assert_eq!(label_of(&third), challenges[2].label);
    assert_eq!(
        label_of(&first),
        challenges[0].label,
        "the validator's label stays"
    );
    assert_eq!(
        joined.iter().filter(|s| s.label != Label::Unknown).count(),
        5
    );

    // embed (a second run takes every feature from the cache)
    let ckpt = backbone(d);
    let cache = d.join("cache");
    let index = d.join("all.svindex");
    let embed = |m: &Path, out: &Path| {
        ok(&[
            "embed",
            "--manifest",
            s(m),
            "--model",
            s(&ckpt),
            "--out",
            s(out),
            "--cache-dir",
            s(&cache),
        ])
    };
    let first = embed(&manifest, &index);
    assert!(first.contains("47 embeddings (47 computed"), "{first}");
    let again = embed(&manifest, &index);
    assert!(again.contains("(0 computed, 47 from the cache"), "{again}");
    // A faiss kind needs the `faiss` feature; without it the error says so and nothing
    // is written.
    let hnsw = d.join("all-hnsw.svindex");
    let (success, out, err) = curator(&[
        "embed",
        "--manifest",
        s(&manifest),
        "--model",
        s(&ckpt),
        "--out",
        s(&hnsw),
        "--cache-dir",
        s(&cache),
        "--kind",
        "hnsw:8:64",
    ]);
    if cfg!(feature = "faiss") {
        assert!(success, "{out}{err}");
        assert_eq!(sv_index::store::kind_of(&hnsw).unwrap(), "faiss-hnsw");
        let exact = sv_index::store::load(&index).unwrap();
        let graph = sv_index::store::load_any(&hnsw).unwrap();
        let (a, b) = (exact.knn_all(1).unwrap(), graph.knn_all(1).unwrap());
        let agree = a
            .iter()
            .zip(&b)
            .filter(|(x, y)| x[0].pos == y[0].pos)
            .count();
        assert!(agree * 10 >= a.len() * 9, "{agree} of {}", a.len());
    } else {
        assert!(!success && err.contains("faiss") && !hnsw.exists(), "{err}");
    }
    let log_index = d.join("log.svindex");
    embed(&log_manifest, &log_index);

    // The fixture backbone has random weights, so its embeddings do not tell scenes
    // apart; dedup and mine run on an index of known vectors instead: each sample a
    // random direction, the JPEG copy its original's, each failure a pool sample's.
    let near_id = sv_data::content_id(&std::fs::read(&near).unwrap());
    let orig_id = sv_data::content_id(&std::fs::read(&original).unwrap());
    let dim = 24;
    let mut state = 7u64;
    let mut direction = || -> Vec<f32> {
        (0..dim)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect()
    };
    let mut vectors: std::collections::HashMap<String, Vec<f32>> = samples
        .iter()
        .map(|smp| (smp.id.clone(), direction()))
        .collect();
    let mut copy = vectors[&orig_id].clone();
    copy[0] += 1e-3;
    vectors.insert(near_id.clone(), copy);
    let known = d.join("known.svindex");
    let mut idx = sv_index::ExactIndex::new(dim);
    for smp in &samples {
        idx.add(std::slice::from_ref(&smp.id), &vectors[&smp.id])
            .unwrap();
    }
    sv_index::store::save(&idx, &known).unwrap();

    // dedup: exactly the JPEG copy and its original group; the rule keeps the smaller
    // id (both are labelled folder samples). A split across them is a leak.
    let deduped = d.join("dedup.jsonl");
    let report_path = d.join("groups.json");
    let out = ok(&[
        "dedup",
        "--manifest",
        s(&manifest),
        "--index",
        s(&known),
        "--out",
        s(&deduped),
        "--threshold",
        "0.999",
        "--source-order",
        "folder,synthetic",
        "--report",
        s(&report_path),
    ]);
    let groups: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let want_kept = orig_id.clone().min(near_id.clone());
    let want_dropped = orig_id.clone().max(near_id.clone());
    assert_eq!(
        groups,
        serde_json::json!([{"kept": want_kept, "dropped": [want_dropped]}]),
        "{out}"
    );
    let kept = sv_data::read_manifest(&deduped).unwrap();
    assert_eq!(kept.len(), samples.len() - 1);
    assert!(kept.iter().all(|k| k.id != want_dropped));
    let mut split = samples.clone();
    for smp in &mut split {
        smp.split = Some(if smp.id == near_id {
            Split::Test
        } else {
            Split::Train
        });
    }
    let leaky = d.join("leaky.jsonl");
    sv_data::write_manifest(&leaky, split.iter()).unwrap();
    // A group across train and test: by default the test copy is kept and the train
    // copy dropped; with --on-leak fail nothing is written and the groups go to a file.
    let resolved = d.join("resolved.jsonl");
    ok(&[
        "dedup",
        "--manifest",
        s(&leaky),
        "--index",
        s(&known),
        "--out",
        s(&resolved),
        "--threshold",
        "0.999",
    ]);
    let after_leak = sv_data::read_manifest(&resolved).unwrap();
    assert_eq!(after_leak.len(), samples.len() - 1);
    assert!(
        after_leak
            .iter()
            .any(|k| k.id == near_id && k.split == Some(Split::Test))
    );
    assert!(
        after_leak.iter().all(|k| k.id != orig_id),
        "the train copy is dropped"
    );
    let groups: Value =
        serde_json::from_slice(&std::fs::read(d.join("resolved.jsonl.groups.json")).unwrap())
            .unwrap();
    assert_eq!(
        groups,
        serde_json::json!([{"kept": near_id, "dropped": [orig_id], "leak": true}])
    );
    let (success, _, err) = curator(&[
        "dedup",
        "--manifest",
        s(&leaky),
        "--index",
        s(&known),
        "--out",
        s(&d.join("x.jsonl")),
        "--threshold",
        "0.999",
        "--on-leak",
        "fail",
    ]);
    assert!(!success);
    assert!(
        err.contains("span train and a held-out split") && err.contains("x.jsonl.groups.json"),
        "{err}"
    );
    assert!(
        !err.contains(&near_id),
        "ids go to the file, not the terminal: {err}"
    );
    let listed = std::fs::read_to_string(d.join("x.jsonl.groups.json")).unwrap();
    assert!(
        listed.contains(&near_id) && listed.contains(&orig_id),
        "{listed}"
    );
    assert!(!d.join("x.jsonl").exists(), "nothing written on a leak");

    // mine: 2 wrong + 2 unsure failures; each failure's vector is a pool sample's
    // (slightly moved), so its nearest labelled neighbour is that sample.
    let failed: Vec<&Sample> = logged
        .iter()
        .filter(|l| {
            let p = l.metadata["prediction"].as_f64().unwrap();
            match l.label {
                Label::Roadwork => p < 0.5,
                Label::NoRoadwork => p >= 0.5,
                Label::Unknown => true,
            }
        })
        .collect();
    assert_eq!(failed.len(), 4);
    let mut log_idx = sv_index::ExactIndex::new(dim);
    let mut expected = std::collections::BTreeMap::new();
    for (i, (f, target)) in failed.iter().zip(kept.iter().skip(5)).enumerate() {
        let mut v = vectors[&target.id].clone();
        v[1] += 1e-3 * (i as f32 + 1.0);
        log_idx.add(std::slice::from_ref(&f.id), &v).unwrap();
        expected.insert(target.id.clone(), f.id.clone());
    }
    let log_known = d.join("log-known.svindex");
    sv_index::store::save(&log_idx, &log_known).unwrap();
    let hard = d.join("hard.jsonl");
    let out = ok(&[
        "mine",
        "--log-dir",
        s(&log_dir),
        "--log-index",
        s(&log_known),
        "--pool",
        s(&deduped),
        "--pool-index",
        s(&known),
        "--out",
        s(&hard),
        "--k",
        "1",
        "--min-similarity",
        "0.99",
    ]);
    assert!(
        out.contains("4 failures (2 wrong, 2 unsure; 4 embedded)"),
        "{out}"
    );
    let cases = sv_data::read_manifest(&hard).unwrap();
    let got: std::collections::BTreeMap<String, String> = cases
        .iter()
        .map(|c| {
            (
                c.id.clone(),
                c.metadata["mined_from"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, expected, "{out}");
    for c in &cases {
        let looked_like_roadwork = logged
            .iter()
            .find(|l| l.id == got[&c.id])
            .map(|l| l.metadata["prediction"].as_f64().unwrap() >= 0.5)
            .unwrap();
        let want = if c.label == Label::NoRoadwork && looked_like_roadwork {
            Source::HardNegative
        } else {
            Source::HardCase
        };
        assert_eq!(c.source, want);
    }
    // The real embeddings of the log's images were written too.
    assert!(sv_index::store::load(&log_index).unwrap().len() == 6);

    // autolabel: every candidate is labelled or sent to review, never both.
    let ensemble = d.join("ensemble.json");
    std::fs::write(
        &ensemble,
        serde_json::json!({"members": [
            {"name": "a", "checkpoint": fixture("convnext/hf_cls.safetensors"),
             "preprocessor": fixture("preprocess/convnext384.preprocessor_config.json"), "temperature": 1.0},
            {"name": "b", "checkpoint": fixture("dinov2/hf_mlp.safetensors"),
             "preprocessor": fixture("dinov2/hub/preprocessor_config.json"), "temperature": 1.0},
        ]})
        .to_string(),
    )
    .unwrap();
    let labelled = d.join("labelled.jsonl");
    let review = d.join("review.jsonl");
    let out = ok(&[
        "autolabel",
        "--manifest",
        s(&manifest),
        "--ensemble",
        s(&ensemble),
        "--out",
        s(&labelled),
        "--review",
        s(&review),
        "--min-confidence",
        "0.5",
    ]);
    let reviewed = std::fs::read_to_string(&review).unwrap().lines().count();
    let after = sv_data::read_manifest(&labelled).unwrap();
    let auto = after
        .iter()
        .filter(|s| s.metadata.contains_key("autolabel_confidence"))
        .count();
    assert_eq!(auto + reviewed, 6, "{out}");

    // mix by source shares, with a report.
    let mixed = d.join("mixed.jsonl");
    let out = ok(&[
        "mix",
        "--manifest",
        s(&deduped),
        "--manifest",
        s(&hard),
        "--out",
        s(&mixed),
        "--ratios",
        "folder=0.5,hard_case=0.25,hard_negative=0.25",
        "--policy",
        "oversample",
    ]);
    assert!(out.contains("\"folder\""), "{out}");
    assert!(!sv_data::read_manifest(&mixed).unwrap().is_empty());
}

#[test]
fn bad_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().to_str().unwrap();
    let (success, _, err) = curator(&["ingest", "--out", "x.jsonl", "--log-dir", log]);
    assert!(!success && err.contains("predictions.jsonl"), "{err}");
    std::fs::write(
        dir.path().join("predictions.jsonl"),
        "{\"time\": 1}\nnot json\n",
    )
    .unwrap();
    let (success, _, err) = curator(&["ingest", "--out", "x.jsonl", "--log-dir", log]);
    assert!(!success && err.contains("predictions.jsonl:1"), "{err}");
    let (success, _, err) = curator(&["mix", "--manifest", "missing.jsonl", "--out", "y.jsonl"]);
    assert!(!success && err.contains("missing.jsonl"), "{err}");
}
