//! The exact index against scikit-learn's exact cosine neighbours, SciPy's connected
//! components and FiftyOne's uniqueness formula (`tools/gen_index_fixtures.py`), and
//! saving/loading the index.

use serde_json::Value;
use sv_index::{
    EmbeddingIndex, ExactIndex, IndexError, label_disagreement, near_duplicate_groups, store,
    uniqueness,
};
use sv_tests::fixture;

fn load() -> (ExactIndex, Value) {
    let reference: Value =
        serde_json::from_slice(&std::fs::read(fixture("index/reference.json")).unwrap()).unwrap();
    let bytes = std::fs::read(fixture("index/vectors.f32")).unwrap();
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let n = reference["n"].as_u64().unwrap() as usize;
    let dim = reference["dim"].as_u64().unwrap() as usize;
    let ids: Vec<String> = (0..n).map(|i| format!("s{i:04}")).collect();
    let mut index = ExactIndex::new(dim);
    index.add(&ids, &values).unwrap();
    (index, reference)
}

#[test]
fn knn_equals_scikit_learn() {
    let (index, r) = load();
    let k = r["k"].as_u64().unwrap() as usize;
    let got = index.knn_all(k).unwrap();
    let mut differing_ids = 0;
    for (i, (hits, want)) in got.iter().zip(r["knn"].as_array().unwrap()).enumerate() {
        let want = want.as_array().unwrap();
        assert_eq!(hits.len(), k);
        for (rank, (h, w)) in hits.iter().zip(want).enumerate() {
            let (wid, wsim) = (w[0].as_u64().unwrap() as usize, w[1].as_f64().unwrap());
            assert!(
                (h.score as f64 - wsim).abs() < 1e-5,
                "sample {i} rank {rank}: {} vs {wsim}",
                h.score
            );
            // Ids may differ only between neighbours tied in similarity.
            if h.pos != wid {
                differing_ids += 1;
                let tied =
                    hits.iter().any(|o| o.pos == wid) || (h.score as f64 - wsim).abs() < 1e-6;
                assert!(tied, "sample {i} rank {rank}: {} vs {wid}", h.pos);
            }
        }
    }
    assert!(differing_ids < 20, "{differing_ids} ids differ (ties only)");
    // Query search gives the same as all-vs-all (plus the sample itself first).
    let q = index.vector(7).to_vec();
    let found = index.search(&q, k + 1).unwrap();
    assert!((found[0][0].score - 1.0).abs() < 1e-5);
    assert_eq!(
        found[0][1..]
            .iter()
            .map(|h| h.pos)
            .collect::<Vec<_>>()
            .len(),
        k
    );
}

#[test]
fn range_search_and_groups_equal_scikit_learn_and_scipy() {
    let (index, r) = load();
    let threshold = r["threshold"].as_f64().unwrap() as f32;
    let got = index.range_all(threshold).unwrap();
    let mut mismatches = 0;
    for (hits, want) in got.iter().zip(r["range"].as_array().unwrap()) {
        let mut ids: Vec<usize> = hits.iter().map(|h| h.pos).collect();
        ids.sort();
        let want: Vec<usize> = want
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        if ids != want {
            mismatches += 1;
        }
    }
    assert_eq!(mismatches, 0);
    let groups = near_duplicate_groups(&index, threshold).unwrap();
    let want: Vec<Vec<usize>> = serde_json::from_value(r["groups"].clone()).unwrap();
    assert_eq!(groups, want);
    assert!(!groups.is_empty());
}

#[test]
fn uniqueness_equals_fiftyones_formula() {
    let (index, r) = load();
    let got = uniqueness(&index).unwrap();
    let want = r["uniqueness"].as_array().unwrap();
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (*g as f64 - w.as_f64().unwrap()).abs() < 1e-4,
            "sample {i}: {g} vs {w}"
        );
    }
    assert!(got.iter().any(|u| (*u - 1.0).abs() < 1e-6));
}

#[test]
fn label_disagreement_equals_the_reference() {
    let (index, r) = load();
    let labels: Vec<Option<u8>> = r["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().map(|l| l as u8))
        .collect();
    let k = r["k"].as_u64().unwrap() as usize;
    let all = label_disagreement(&index, &labels, k, 0.0).unwrap();
    let want = r["disagreement"].as_object().unwrap();
    assert_eq!(all.len(), want.len());
    for d in &all {
        let w = want[&d.pos.to_string()].as_f64().unwrap();
        assert!((d.disagreeing as f64 - w).abs() < 1e-6, "sample {}", d.pos);
    }
    // Most disagreeing first; a threshold keeps only those.
    let flagged = label_disagreement(&index, &labels, k, 0.6).unwrap();
    assert!(flagged.iter().all(|d| d.disagreeing >= 0.6));
    assert!(
        flagged
            .windows(2)
            .all(|w| w[0].disagreeing >= w[1].disagreeing)
    );
}

#[test]
fn save_and_load_keep_ids_and_results_and_refuse_damage() {
    let (index, _) = load();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pool.svindex");
    store::save(&index, &path).unwrap();
    let back = store::load(&path).unwrap();
    assert_eq!(back.len(), index.len());
    assert_eq!(back.id(42), "s0042");
    assert_eq!(back.position("s0042"), Some(42));
    assert_eq!(back.knn_all(3).unwrap(), index.knn_all(3).unwrap());
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    // A cut-off file is refused by name, and a failed save keeps the old file.
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.svindex");
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    let err = store::load(&cut).unwrap_err();
    assert!(
        matches!(err, IndexError::Corrupt { .. }) && err.to_string().contains("cut.svindex"),
        "{err}"
    );
    // A flipped bit in the vectors is caught by the checksum.
    let mut flipped = bytes.clone();
    let at = flipped.len() - 5;
    flipped[at] ^= 0x10;
    let damaged = dir.path().join("damaged.svindex");
    std::fs::write(&damaged, &flipped).unwrap();
    let err = store::load(&damaged).unwrap_err();
    assert!(
        err.to_string().contains("damaged.svindex") && err.to_string().contains("checksum"),
        "{err}"
    );
    let err = store::load(&dir.path().join("missing")).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    let blocked = dir.path().join("blocked");
    std::fs::create_dir(&blocked).unwrap();
    assert!(store::save(&index, &blocked).is_err());
    assert!(blocked.is_dir());
}

#[test]
fn bad_input_changes_nothing() {
    let (mut index, _) = load();
    let n = index.len();
    let dim = index.dim();
    let err = index
        .add(&["new".into(), "s0001".into()], &vec![1.0; 2 * dim])
        .unwrap_err();
    assert!(err.to_string().contains("s0001"), "{err}");
    assert!(index.add(&["x".into()], &vec![1.0; dim - 1]).is_err());
    let mut nan = vec![1.0; dim];
    nan[3] = f32::NAN;
    assert!(index.add(&["y".into()], &nan).is_err());
    assert_eq!(index.len(), n);
    assert!(index.search(&vec![1.0; dim + 1], 3).is_err());
}
