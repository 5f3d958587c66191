#!/usr/bin/env python3
"""Brute-force baseline for benches/index_bench.rs: the same all-vs-all kNN (k = 10,
self excluded) and range search (cosine >= 0.9) with NumPy's BLAS matrix products over
blocks of 1024 queries and argpartition.

    python benches/numpy_index.py FILE N DIM   -> one JSON line
"""

import json
import sys
import time

import numpy as np

path, n, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
x = np.fromfile(path, dtype="<f4").reshape(n, dim)
t = time.perf_counter()
x = x / np.linalg.norm(x, axis=1, keepdims=True)
add = time.perf_counter() - t

t = time.perf_counter()
top1 = 0.0
for s in range(0, n, 1024):
    scores = x[s:s + 1024] @ x.T
    rows = np.arange(scores.shape[0])
    scores[rows, s + rows] = -np.inf
    part = np.argpartition(-scores, 10, axis=1)[:, :10]
    best = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-best, axis=1)
    top1 += float(np.take_along_axis(best, order, axis=1)[:, 0].sum())
knn = time.perf_counter() - t

t = time.perf_counter()
pairs = 0
for s in range(0, n, 1024):
    scores = x[s:s + 1024] @ x.T
    rows = np.arange(scores.shape[0])
    scores[rows, s + rows] = -np.inf
    pairs += int((scores >= 0.9).sum())
rng = time.perf_counter() - t
print(json.dumps({"impl": "numpy", "n": n, "dim": dim, "add_s": add, "knn_s": knn,
                  "range_s": rng, "top1_sum": top1, "range_pairs": pairs}))
