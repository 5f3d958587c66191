//! Exact all-vs-all kNN (k = 10) and range search (cosine ≥ 0.9) with sv-index on N
//! vectors of dimension 768, read from a file that `benches/numpy_index.py` reads too.
//!
//! ```text
//! index_bench FILE N DIM [QUERIES]   → one JSON line: seconds for add, kNN, range
//! ```
//!
//! With QUERIES, only that many (the first) vectors query the whole set: a measured
//! slice of the all-vs-all work, for sizes where the whole would take hours.

use std::time::Instant;

#[path = "sampled.rs"]
mod sampled;

use sv_index::{EmbeddingIndex, ExactIndex};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (path, n, dim) = (
        &args[1],
        args[2].parse::<usize>().unwrap(),
        args[3].parse::<usize>().unwrap(),
    );
    let bytes = std::fs::read(path).unwrap();
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(values.len(), n * dim);
    let ids: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    let t = Instant::now();
    let mut index = ExactIndex::new(dim);
    index.add(&ids, &values).unwrap();
    let add = t.elapsed().as_secs_f64();
    // With QUERIES < N, only the first QUERIES vectors query all N (self excluded), the
    // same slice of the all-vs-all work the NumPy baseline then does.
    let queries = args
        .get(4)
        .map_or(n, |q| q.parse::<usize>().unwrap())
        .min(n);
    let t = Instant::now();
    let knn = if queries == n {
        index.knn_all(10).unwrap()
    } else {
        sampled::knn_excluding_self(&index, &index.data()[..queries * dim], 10)
    };
    let knn_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let range = if queries == n {
        index.range_all(0.9).unwrap()
    } else {
        let hits = index
            .range_search(&index.data()[..queries * dim], 0.9)
            .unwrap();
        hits.into_iter()
            .enumerate()
            .map(|(q, mut h)| {
                h.retain(|nb| nb.pos != q);
                h
            })
            .collect()
    };
    let range_s = t.elapsed().as_secs_f64();
    let checksum: f64 = knn.iter().map(|h| h[0].score as f64).sum();
    let pairs: usize = range.iter().map(Vec::len).sum();
    println!(
        "{}",
        serde_json::json!({"impl": "sv-index", "n": n, "dim": dim, "queries": queries,
            "add_s": add, "knn_s": knn_s,
            "range_s": range_s, "top1_sum": checksum, "range_pairs": pairs})
    );
}
