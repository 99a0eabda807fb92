#!/usr/bin/env bash
# Decode at long context against llama.cpp (issue 12), alternating in every round: for each shape
# and depth, this engine's `bench --depth N` (N random tokens prefilled once, untimed; each
# repetition forks that session and times GEN greedy decode steps) with an f32 and a bf16 KV cache,
# then `llama-bench -p 0 -n GEN -d N` (its default f16 cache), then the 2-thread read bandwidth.
# 2 threads, batch 1, the library's default precision (set MOE_ARGS="--precision f32" for the exact
# mode). Summary: tools/bench/summarize_longctx.py OUT.
# usage: tools/bench/longctx.sh [SHAPE...]   SHAPE: qwen, ds (default both)
#   env: W (/work/bench), DEPTHS ("4096 16384"), GEN (64), REPS (2), ROUNDS (1), MOE_ARGS, OUT
# Models: tools/bench/setup.sh, or ../shared/tools/peers/make_random_moe.py and convert_to_gguf.py
# (qwen3moe-a3b-8L, dsv2lite-8L and their -BF16.gguf).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
W=${W:-/work/bench}
DEPTHS=${DEPTHS:-"4096 16384"}; GEN=${GEN:-64}; REPS=${REPS:-2}; ROUNDS=${ROUNDS:-1}
MOE_ARGS=${MOE_ARGS:-}
OUT=${OUT:-$W/results/longctx-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
(cd "$REPO" && cargo build --release --example bench)
BENCH=$REPO/target/release/examples/bench
LB=$W/llama-build/bin/llama-bench
shapes=("$@"); [ ${#shapes[@]} -gt 0 ] || shapes=(qwen ds)
model_of() { case $1 in qwen) echo qwen3moe-a3b-8L;; ds) echo dsv2lite-8L;; *) echo "unknown shape $1" >&2; exit 2;; esac; }
bw() { OMP_NUM_THREADS=2 OMP_PROC_BIND=close OMP_PLACES=cores "$W/machine_limits" bw 2 4; }
for r in $(seq "$ROUNDS"); do
  for s in "${shapes[@]}"; do
    m=$(model_of "$s")
    for d in $DEPTHS; do
      { date; cat /proc/loadavg; } >> "$OUT/load.txt"
      bw > "$OUT/bw.$s.$d.$r.txt"
      cat "$W/models/$m"/*.safetensors > /dev/null
      for kv in f32 bf16; do
        echo "== round $r: $s depth $d moe kv $kv" >&2
        # shellcheck disable=SC2086
        "$BENCH" --model "$W/models/$m" --depth "$d" --gen "$GEN" --reps "$REPS" --threads 2 \
          --kv-dtype "$kv" --json $MOE_ARGS > "$OUT/$s.$d.moe-$kv.$r.txt" 2>&1
      done
      echo "== round $r: $s depth $d llama.cpp" >&2
      cat "$W/gguf/$m-BF16.gguf" > /dev/null
      "$LB" -m "$W/gguf/$m-BF16.gguf" -t 2 -p 0 -n "$GEN" -d "$d" -r "$REPS" --no-warmup -o json \
        > "$OUT/$s.$d.llama.$r.json" 2> "$OUT/$s.$d.llama.$r.err"
    done
  done
done
python3 "$REPO/tools/bench/summarize_longctx.py" "$OUT" | tee "$OUT/summary.md"
