#!/usr/bin/env bash
# Exact all-vs-all kNN and range search: sv-index against a NumPy brute-force baseline
# on the same vectors (768-d, 200 clusters), N given as arguments (default 20000 100000).
# With QUERIES=Q in the environment, only the first Q vectors query the whole set (both
# sides do the same slice of the all-vs-all work; for N = 1 000 000, whose whole
# all-vs-all takes hours on 2 cores). Prints one JSON line per implementation and size,
# then the ratios.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-$root/tools/.venv/bin/python}"
cd "$root"
cargo build --release -q -p sv-benches --bin index_bench
sizes="${*:-20000 100000}"
for n in $sizes; do
  f="target/index_bench_$n.f32"
  [ -f "$f" ] || "$py" -c "
import numpy as np, sys
n, d = $n, 768
rng = np.random.default_rng(0)
c = rng.normal(size=(200, d)).astype(np.float32)
x = c[rng.integers(0, 200, size=n)] + 0.7 * rng.normal(size=(n, d)).astype(np.float32)
x.astype('<f4').tofile('$f')"
  q="${QUERIES:-$n}"
  ours=$(target/release/index_bench "$f" "$n" 768 "$q")
  theirs=$("$py" benches/numpy_index.py "$f" "$n" 768 "$q")
  echo "$ours"
  echo "$theirs"
  "$py" -c "
import json
a, b = json.loads('''$ours'''), json.loads('''$theirs''')
print(f\"N={a['n']}, {a['queries']} queries: kNN {a['knn_s']:.2f} s vs {b['knn_s']:.2f} s ({b['knn_s']/a['knn_s']:.2f}x), range {a['range_s']:.2f} s vs {b['range_s']:.2f} s ({b['range_s']/a['range_s']:.2f}x); top-1 sums {a['top1_sum']:.3f}/{b['top1_sum']:.3f}, range pairs {a['range_pairs']}/{b['range_pairs']}\")"
done
