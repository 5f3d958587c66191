#!/usr/bin/env python3
"""Brute-force baseline for benches/index_bench.rs: the same all-vs-all kNN (k = 10,
self excluded) and range search (cosine >= 0.9) with NumPy's BLAS matrix products over
blocks of up to 1024 queries and argpartition.

    python benches/numpy_index.py FILE N DIM [QUERIES]   -> one JSON line

With QUERIES, only the first QUERIES vectors query the whole set (the slice of the
all-vs-all work that index_bench does with the same argument).
"""

import json
import sys
import time

import numpy as np

path, n, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
queries = min(int(sys.argv[4]), n) if len(sys.argv) > 4 else n
# 1024 queries per block, fewer when a block's scores (and argpartition's copies)
# would not fit in memory: 128 at 1 M vectors.
block = min(1024, max(64, 2**27 // n))
x = np.fromfile(path, dtype="<f4").reshape(n, dim)
t = time.perf_counter()
x = x / np.linalg.norm(x, axis=1, keepdims=True)
add = time.perf_counter() - t

t = time.perf_counter()
top1 = 0.0
for s in range(0, queries, block):
    scores = x[s:min(s + block, queries)] @ x.T
    rows = np.arange(scores.shape[0])
    scores[rows, s + rows] = -np.inf
    part = np.argpartition(-scores, 10, axis=1)[:, :10]
    best = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-best, axis=1)
    top1 += float(np.take_along_axis(best, order, axis=1)[:, 0].sum())
knn = time.perf_counter() - t

t = time.perf_counter()
pairs = 0
for s in range(0, queries, block):
    scores = x[s:min(s + block, queries)] @ x.T
    rows = np.arange(scores.shape[0])
    scores[rows, s + rows] = -np.inf
    pairs += int((scores >= 0.9).sum())
rng = time.perf_counter() - t
print(json.dumps({"impl": "numpy", "n": n, "dim": dim, "queries": queries, "add_s": add, "knn_s": knn,
                  "range_s": rng, "top1_sum": top1, "range_pairs": pairs}))
