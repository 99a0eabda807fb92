#!/usr/bin/env bash
# Side-by-side decode/prefill comparison on the benchmark models made by setup.sh: in each round, the
# machine's 2-thread read bandwidth, this engine's bench example, and llama.cpp's llama-bench (BF16
# GGUF: pp512 + tg128 from an empty context as in YARDSTICKS.md, and tg128 at depth 512), alternating; then PyTorch bf16 (transformers eager) once per model. 2 threads, batch 1.
# Each program's files are read through the page cache before it runs (both models of a shape do not
# always stay cached together in 24 GB). Prints the summary table (tools/bench/summarize.py).
# usage: tools/bench/compare.sh [MODEL...]   (default: qwen3moe-a3b-8L dsv2lite-8L)
#   env: W (work folder, /work/bench), PY (python with torch), ROUNDS (3), PROMPT (512), GEN (128),
#        TORCH (1 = run PyTorch), PRECISION (bf16 | f32)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
W=${W:-/work/bench}
PY=${PY:-python3}
PEERS=${PEERS:-$REPO/../shared/tools/peers}
if [[ ! -d "$PEERS" ]]; then
  echo "compare.sh: no peers recipes at $PEERS; set PEERS to the folder with torch_bench.py" >&2
  exit 2
fi
ROUNDS=${ROUNDS:-3}; PROMPT=${PROMPT:-512}; GEN=${GEN:-128}; TORCH=${TORCH:-1}
PRECISION=${PRECISION:-bf16}
OUT=${OUT:-$W/results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
(cd "$REPO" && cargo build --release --example bench)
BENCH=$REPO/target/release/examples/bench
LB=$W/llama-build/bin/llama-bench
models=("$@"); [ ${#models[@]} -gt 0 ] || models=(qwen3moe-a3b-8L dsv2lite-8L)
for m in "${models[@]}"; do
  hf=$W/models/$m; gg=$W/gguf/$m-BF16.gguf
  for r in $(seq "$ROUNDS"); do
    echo "== $m round $r" >&2
    { date; cat /proc/loadavg; top -bn1 | sed -n 7,10p; } >> "$OUT/load.txt"   # other users of the CPUs
    OMP_NUM_THREADS=2 OMP_PROC_BIND=close OMP_PLACES=cores "$W/machine_limits" bw 2 6 > "$OUT/$m.bw.$r.txt"
    cat "$hf"/*.safetensors > /dev/null
    "$BENCH" --model "$hf" --prompt "$PROMPT" --gen "$GEN" --threads 2 --reps 3 --precision "$PRECISION" --json \
      > "$OUT/$m.moe.$r.txt"
    cat "$gg" > /dev/null
    "$LB" -m "$gg" -t 2 -p "$PROMPT" -n "$GEN" -r 3 -o json > "$OUT/$m.llama.$r.json" 2> "$OUT/$m.llama.$r.err"
    # decode after a PROMPT-token context, as this engine's bench measures it (llama-bench's tg starts empty)
    "$LB" -m "$gg" -t 2 -p 0 -n "$GEN" -d "$PROMPT" -r 3 -o json > "$OUT/$m.llamad.$r.json" 2>> "$OUT/$m.llama.$r.err"
    OMP_NUM_THREADS=2 OMP_PROC_BIND=close OMP_PLACES=cores "$W/machine_limits" bw 2 6 > "$OUT/$m.bw.$r.post.txt"
  done
  if [ "$TORCH" = 1 ]; then
    echo "== $m PyTorch bf16" >&2
    "$PY" "$PEERS/torch_bench.py" "$hf" --dtype bf16 --prompt "$PROMPT" --decode 32 --reps 3 > "$OUT/$m.torch.txt" 2> "$OUT/$m.torch.err" || true
  fi
done
python3 "$REPO/tools/bench/summarize.py" "$OUT" | tee "$OUT/summary.md"
