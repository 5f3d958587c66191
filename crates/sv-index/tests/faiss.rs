//! The faiss backend cross-checked against the exact backend on the reference vectors
//! (`cargo test -p sv-index --features faiss`; not in CI, which does not build faiss).
#![cfg(feature = "faiss")]

use sv_index::{EmbeddingIndex, ExactIndex, FaissIndex, FaissKind, near_duplicate_groups};
use sv_tests::fixture;

fn vectors() -> (Vec<String>, Vec<f32>, usize) {
    let bytes = std::fs::read(fixture("index/vectors.f32")).unwrap();
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let dim = 32;
    let ids = (0..values.len() / dim)
        .map(|i| format!("s{i:04}"))
        .collect();
    (ids, values, dim)
}

fn both(kind: FaissKind) -> (ExactIndex, FaissIndex) {
    let (ids, values, dim) = vectors();
    let mut exact = ExactIndex::new(dim);
    exact.add(&ids, &values).unwrap();
    let mut faiss = FaissIndex::new(kind, dim).unwrap();
    faiss.add(&ids, &values).unwrap();
    (exact, faiss)
}

fn recall(exact: &[Vec<sv_index::Neighbor>], other: &[Vec<sv_index::Neighbor>]) -> f64 {
    let mut hit = 0;
    let mut total = 0;
    for (e, o) in exact.iter().zip(other) {
        total += e.len();
        hit += e
            .iter()
            .filter(|n| o.iter().any(|m| m.pos == n.pos))
            .count();
    }
    hit as f64 / total as f64
}

#[test]
fn flat_equals_the_exact_backend() {
    let (exact, faiss) = both(FaissKind::Flat);
    let (a, b) = (exact.knn_all(5).unwrap(), faiss.knn_all(5).unwrap());
    for (x, y) in a.iter().zip(&b) {
        for (m, n) in x.iter().zip(y) {
            assert!((m.score - n.score).abs() < 1e-5);
        }
    }
    assert!(recall(&a, &b) > 0.99);
    let (ra, rb) = (
        exact.range_all(0.95).unwrap(),
        faiss.range_all(0.95).unwrap(),
    );
    assert_eq!(recall(&ra, &rb), 1.0);
    assert_eq!(
        near_duplicate_groups(&exact, 0.95).unwrap(),
        near_duplicate_groups(&faiss, 0.95).unwrap()
    );
}

#[test]
fn ivf_searching_every_cell_equals_the_exact_backend() {
    let (exact, faiss) = both(FaissKind::IvfFlat {
        nlist: 4,
        nprobe: 4,
    });
    assert!(recall(&exact.knn_all(5).unwrap(), &faiss.knn_all(5).unwrap()) > 0.99);
    let few = both(FaissKind::IvfFlat {
        nlist: 4,
        nprobe: 1,
    })
    .1;
    assert!(recall(&exact.knn_all(5).unwrap(), &few.knn_all(5).unwrap()) > 0.5);
}

#[test]
fn hnsw_finds_most_neighbours() {
    let (exact, faiss) = both(FaissKind::Hnsw {
        m: 16,
        ef_search: 64,
    });
    let r = recall(&exact.knn_all(5).unwrap(), &faiss.knn_all(5).unwrap());
    assert!(r > 0.95, "recall {r}");
}

#[test]
fn ivf_needs_enough_vectors_to_train() {
    let mut f = FaissIndex::new(
        FaissKind::IvfFlat {
            nlist: 64,
            nprobe: 4,
        },
        4,
    )
    .unwrap();
    let err = f.add(&["a".into()], &[1.0, 0.0, 0.0, 0.0]).unwrap_err();
    assert!(err.to_string().contains("at least 64"), "{err}");
    assert_eq!(f.len(), 0);
}

/// Each kind saved and loaded gives the same ids and the same answers without training
/// or building again; the file also loads as an exact index over the same vectors, and
/// as the faiss index through `load_any`. A damaged structure is named.
#[test]
fn saved_faiss_indexes_load_with_their_structure() {
    use sv_index::store;
    let dir = tempfile::tempdir().unwrap();
    for kind in [
        FaissKind::Flat,
        FaissKind::IvfFlat {
            nlist: 4,
            nprobe: 2,
        },
        FaissKind::Hnsw {
            m: 8,
            ef_search: 16,
        },
    ] {
        let (exact, faiss) = both(kind);
        let path = dir.path().join("pool.svindex");
        faiss.save(&path).unwrap();
        let back = FaissIndex::load(&path).unwrap();
        assert_eq!(back.kind(), kind);
        assert_eq!(back.len(), faiss.len());
        assert_eq!(back.position("s0042"), Some(42));
        assert_eq!(
            back.knn_all(5).unwrap(),
            faiss.knn_all(5).unwrap(),
            "{kind:?}"
        );
        assert_eq!(
            back.range_all(0.9).unwrap(),
            faiss.range_all(0.9).unwrap(),
            "{kind:?}"
        );
        let any = store::load_any(&path).unwrap();
        assert_eq!(any.knn_all(5).unwrap(), faiss.knn_all(5).unwrap());
        let as_exact = store::load(&path).unwrap();
        assert_eq!(as_exact.data(), exact.data());
        assert!(store::kind_of(&path).unwrap().starts_with("faiss-"));

        // Flip bytes in the faiss part: refused, naming the file.
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        for b in &mut bytes[n - 64..] {
            *b ^= 0xa5;
        }
        let bad = dir.path().join("bad.svindex");
        std::fs::write(&bad, &bytes).unwrap();
        let err = FaissIndex::load(&bad).unwrap_err();
        assert!(err.to_string().contains("bad.svindex"), "{err}");
    }
    // An exact file is not a faiss index.
    let (exact, _) = both(FaissKind::Flat);
    let path = dir.path().join("exact.svindex");
    store::save(&exact, &path).unwrap();
    let err = FaissIndex::load(&path).unwrap_err();
    assert!(err.to_string().contains("exact-ip"), "{err}");
}
