//! All-vs-all kNN (k = 10) with a faiss IVF-Flat or HNSW index on N vectors, and its
//! recall against the exact index on the first QUERIES of them.
//!
//!     faiss_bench FILE N DIM KIND QUERIES   → one JSON line
//!
//! KIND is `ivf:NLIST:NPROBE` or `hnsw:M:EF`. Times: building (training and adding),
//! all-vs-all kNN (with `SAMPLE_ONLY=1`, the kNN of the first QUERIES only), and the
//! exact kNN of the QUERIES used for the recall.

use std::time::Instant;

#[path = "sampled.rs"]
mod sampled;

use sv_index::{EmbeddingIndex, ExactIndex, FaissIndex, FaissKind};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (path, n, dim, kind, queries) = (
        &args[1],
        args[2].parse::<usize>().unwrap(),
        args[3].parse::<usize>().unwrap(),
        &args[4],
        args[5].parse::<usize>().unwrap(),
    );
    let faiss_kind: FaissKind = kind.parse().unwrap();
    let bytes = std::fs::read(path).unwrap();
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    drop(bytes);
    assert_eq!(values.len(), n * dim);
    let ids: Vec<String> = (0..n).map(|i| i.to_string()).collect();

    let t = Instant::now();
    let mut index = FaissIndex::new(faiss_kind, dim).unwrap();
    index.add(&ids, &values).unwrap();
    let build_s = t.elapsed().as_secs_f64();
    // All-vs-all, or with SAMPLE_ONLY=1 in the environment only the first QUERIES
    // vectors as queries (self excluded either way).
    let sample_only = std::env::var("SAMPLE_ONLY").is_ok_and(|v| v == "1");
    let t = Instant::now();
    let knn = if sample_only {
        sampled::knn_excluding_self(&index, &values[..queries * dim], 10)
    } else {
        index.knn_all(10).unwrap()
    };
    let knn_s = t.elapsed().as_secs_f64();
    let knn_queries = knn.len();
    drop(index);

    let t = Instant::now();
    let mut exact = ExactIndex::new(dim);
    exact.add(&ids, &values).unwrap();
    drop(values);
    let truth = sampled::knn_excluding_self(&exact, &exact.data()[..queries * dim], 10);
    let exact_s = t.elapsed().as_secs_f64();
    let (mut found, mut total) = (0usize, 0usize);
    for (q, hits) in truth.iter().enumerate() {
        total += hits.len();
        found += hits
            .iter()
            .filter(|h| knn[q].iter().any(|g| g.pos == h.pos))
            .count();
    }
    println!(
        "{}",
        serde_json::json!({"impl": format!("faiss {kind}"), "n": n, "dim": dim,
            "build_s": build_s, "knn_s": knn_s, "knn_queries": knn_queries, "recall_at_10": found as f64 / total as f64,
            "recall_queries": queries, "exact_sample_s": exact_s})
    );
}
