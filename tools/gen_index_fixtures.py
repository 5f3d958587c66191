#!/usr/bin/env python3
"""Reference results for sv-index, from scikit-learn's exact cosine neighbours, SciPy's
connected components and FiftyOne's uniqueness formula (fiftyone-brain
`_compute_uniqueness`: K = 3 nearest others, weights 0.6/0.3/0.1, divided by the
maximum).

    tools/.venv/bin/python tools/gen_index_fixtures.py

Writes tests/fixtures/index/vectors.f32 (300 × 32 little-endian f32: 20 clusters, near
duplicates, exact copies) and tests/fixtures/index/reference.json (labels, kNN ids and
similarities, range-search sets, near-duplicate groups, uniqueness, label
disagreement).
"""

import json
from pathlib import Path

import numpy as np
from scipy.sparse.csgraph import connected_components
from sklearn.neighbors import NearestNeighbors

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "index"
N, D, CLUSTERS = 300, 32, 20
K = 5
THRESHOLD = 0.95


def main():
    rng = np.random.default_rng(72)
    centres = rng.normal(size=(CLUSTERS, D))
    cluster = rng.integers(0, CLUSTERS, size=N)
    x = centres[cluster] + 0.6 * rng.normal(size=(N, D))
    labels = (cluster % 2).astype(int)
    # Near duplicates: 25 samples copied with a small perturbation; 5 exact copies.
    for i in range(25):
        src, dst = rng.integers(0, N, size=2)
        x[dst] = x[src] + 0.02 * rng.normal(size=D)
        labels[dst] = labels[src]
    for i in range(5):
        src, dst = rng.integers(0, N, size=2)
        x[dst] = x[src]
        labels[dst] = labels[src]
    # Label noise: 12 flipped labels; 10 unknown.
    flipped = rng.choice(N, size=12, replace=False)
    labels[flipped] = 1 - labels[flipped]
    known = np.ones(N, dtype=bool)
    known[rng.choice(N, size=10, replace=False)] = False
    x = x.astype(np.float32)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)

    nn = NearestNeighbors(metric="cosine", algorithm="brute").fit(xn)
    dists, idx = nn.kneighbors(xn, K + 1)
    knn = []
    for i in range(N):
        pairs = [(int(j), float(1 - d)) for j, d in zip(idx[i], dists[i]) if j != i][:K]
        knn.append(pairs)

    rdist, ridx = nn.radius_neighbors(xn, radius=1 - THRESHOLD)
    ranges = [sorted(int(j) for j in r if j != i) for i, r in enumerate(ridx)]

    graph = nn.radius_neighbors_graph(xn, radius=1 - THRESHOLD, mode="connectivity")
    _, comp = connected_components(graph, directed=False)
    groups = {}
    for i, c in enumerate(comp):
        groups.setdefault(int(c), []).append(i)
    dup_groups = sorted([g for g in groups.values() if len(g) > 1], key=lambda g: g[0])

    # FiftyOne's uniqueness on the same neighbours.
    d4, _ = nn.kneighbors(xn, 4)
    weights = [0.6, 0.3, 0.1]
    u = np.mean(d4[:, 1:] * weights, axis=1)
    u /= u.max()

    # Label disagreement: share of the K nearest labelled others with another label.
    order = np.argsort(-(xn @ xn.T), axis=1, kind="stable")
    disagreement = {}
    for i in range(N):
        if not known[i]:
            continue
        others = [j for j in order[i] if j != i and known[j]][:K]
        disagreement[i] = float(np.mean([labels[j] != labels[i] for j in others]))

    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "vectors.f32").write_bytes(x.astype("<f4").tobytes())
    (OUT / "reference.json").write_text(json.dumps({
        "n": N, "dim": D, "k": K, "threshold": THRESHOLD,
        "labels": [int(l) if k else None for l, k in zip(labels, known)],
        "knn": knn,
        "range": ranges,
        "groups": dup_groups,
        "uniqueness": [float(v) for v in u],
        "disagreement": {str(k): v for k, v in disagreement.items()},
    }) + "\n")
    print(f"{N} vectors, {len(dup_groups)} near-duplicate groups")


if __name__ == "__main__":
    main()
