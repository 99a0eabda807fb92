#!/usr/bin/env bash
# Aggregate decode throughput of B concurrent sequences (issue 12) on the Qwen3-30B-A3B and
# DeepSeek-V2-Lite 8-layer shapes: `batch_bench` (B = 1, 4, 8, 16, 32; the bound from the bytes
# each step actually read, at the 2-thread read bandwidth it measures beside the runs). Each model's
# files are read through the page cache first. 2 threads, the library's default precision.
# usage: tools/bench/batch.sh [SHAPE...]   SHAPE: qwen, ds (default both)
#   env: W (/work/bench), BATCHES (1,4,8,16,32), STEPS (16), PROMPT (32), ARGS (more batch_bench flags), OUT
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
W=${W:-/work/bench}
BATCHES=${BATCHES:-1,4,8,16,32}; STEPS=${STEPS:-16}; PROMPT=${PROMPT:-32}; ARGS=${ARGS:-}
OUT=${OUT:-$W/results/batch-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
(cd "$REPO" && cargo build --release --example batch_bench)
shapes=("$@"); [ ${#shapes[@]} -gt 0 ] || shapes=(qwen ds)
for s in "${shapes[@]}"; do
  case $s in qwen) m=qwen3moe-a3b-8L;; ds) m=dsv2lite-8L;; *) echo "unknown shape $s" >&2; exit 2;; esac
  cat "$W/models/$m"/*.safetensors > /dev/null
  { date; cat /proc/loadavg; } >> "$OUT/load.txt"
  echo "== $s ($m)" | tee -a "$OUT/summary.txt"
  # shellcheck disable=SC2086
  "$REPO/target/release/examples/batch_bench" --model "$W/models/$m" --batches "$BATCHES" \
    --steps "$STEPS" --prompt "$PROMPT" --threads 2 --json "$OUT/$s.json" $ARGS 2>&1 \
    | grep -v '^{' | tee -a "$OUT/summary.txt"
done
