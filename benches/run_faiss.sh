#!/usr/bin/env bash
# Approximate all-vs-all kNN (k = 10) with sv-index's faiss backend on the vectors of
# benches/run_index.sh (run that first for each N, it writes target/index_bench_N.f32),
# with recall@10 against the exact index on 1 000 queries. Needs the faiss build
# (tools/install-faiss-deps.sh). Usage: bash benches/run_faiss.sh N KIND [KIND ...]
# with KIND ivf:NLIST:NPROBE or hnsw:M:EF. SAMPLE_ONLY=1 times the kNN of the 1 000
# recall queries instead of the whole all-vs-all (for N = 1 000 000).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cargo build --release -q -p sv-benches --features faiss --bin faiss_bench
n="$1"
shift
f="target/index_bench_$n.f32"
[ -f "$f" ] || { echo "$f is missing: run benches/run_index.sh $n first" >&2; exit 1; }
for kind in "$@"; do
  target/release/faiss_bench "$f" "$n" 768 "$kind" 1000
done
