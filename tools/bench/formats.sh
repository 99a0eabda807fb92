#!/usr/bin/env bash
# Compressed formats against bf16 and llama.cpp, alternating in every round (issue 10 and 17 figures):
# the machine's 2-thread read bandwidth, then each configuration below once (this engine's `bench`,
# llama.cpp's `llama-bench`), then the bandwidth again. Each program's files are read through the
# page cache before it runs (the checkpoints do not all stay cached together in 24 GB). 2 threads,
# batch 1, prefill PROMPT random ids then GEN greedy decode steps (llama.cpp: pp PROMPT, and tg GEN
# at depth PROMPT so both decode after the same context). Summary: tools/bench/summarize_formats.py.
# usage: tools/bench/formats.sh [CONFIG...]   (default: all below whose files exist)
#   a CONFIG is NAME (see the list); env: W (/work/bench), ROUNDS (3), PROMPT (512), GEN (64), REPS (3)
# The models: tools/bench/setup.sh (qwen3moe-a3b-8L + BF16 GGUF), then
#   $PY tools/bench/to_fp8.py   $W/models/qwen3moe-a3b-8L $W/models/qwen3moe-a3b-8L-fp8
#   $PY tools/bench/to_w4a16.py $W/models/qwen3moe-a3b-8L $W/models/qwen3moe-a3b-8L-w4a16
#   llama-quantize $W/gguf/qwen3moe-a3b-8L-BF16.gguf $W/gguf/qwen3moe-a3b-8L-Q4_K_M.gguf Q4_K_M 2
#   $PY tools/bench/make_gptoss_mxfp4.py $W/models/gptoss20b-4L --layers 4
#   LLAMACPP_PRE=gpt-4o $PY ../shared/tools/peers/convert_to_gguf.py $W/models/gptoss20b-4L \
#       --outtype bf16 --outfile $W/gguf/gptoss20b-4L-MXFP4.gguf
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
W=${W:-/work/bench}
ROUNDS=${ROUNDS:-3}; PROMPT=${PROMPT:-512}; GEN=${GEN:-64}; REPS=${REPS:-3}
OUT=${OUT:-$W/results/formats-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
(cd "$REPO" && cargo build --release --example bench)
BENCH=$REPO/target/release/examples/bench
LB=$W/llama-build/bin/llama-bench
M=$W/models; G=$W/gguf

# NAME | engine | files | arguments
CONFIGS=(
  "qwen-bf16-exact|moe|$M/qwen3moe-a3b-8L|--precision f32"
  "qwen-bf16-exact-fma|moe|$M/qwen3moe-a3b-8L|--precision f32 --kernels avx512"
  "qwen-bf16-exact-dp|moe|$M/qwen3moe-a3b-8L|--precision f32 --kernels avx512bf16"
  "qwen-bf16-bf16|moe|$M/qwen3moe-a3b-8L|--precision bf16"
  "qwen-llama-BF16|llama|$G/qwen3moe-a3b-8L-BF16.gguf|"
  "qwen-fp8-exact|moe|$M/qwen3moe-a3b-8L-fp8|--precision f32"
  "qwen-fp8-bf16|moe|$M/qwen3moe-a3b-8L-fp8|--precision bf16"
  "qwen-w4a16-exact|moe|$M/qwen3moe-a3b-8L-w4a16|--precision f32"
  "qwen-w4a16-int8|moe|$M/qwen3moe-a3b-8L-w4a16|--precision int8"
  "qwen-llama-Q4_K_M|llama|$G/qwen3moe-a3b-8L-Q4_K_M.gguf|"
  "gptoss-mxfp4-exact|moe|$M/gptoss20b-4L|--precision f32"
  "gptoss-mxfp4-bf16|moe|$M/gptoss20b-4L|--precision bf16"
  "gptoss-llama-MXFP4|llama|$G/gptoss20b-4L-MXFP4.gguf|"
)
want=("$@")
selected=()
for c in "${CONFIGS[@]}"; do
  IFS='|' read -r name engine files _ <<< "$c"
  if [ ${#want[@]} -gt 0 ]; then
    [[ " ${want[*]} " == *" $name "* ]] || continue
  fi
  [ -e "$files" ] || { echo "skip $name: no $files" >&2; continue; }
  selected+=("$c")
done
bw() { OMP_NUM_THREADS=2 OMP_PROC_BIND=close OMP_PLACES=cores "$W/machine_limits" bw 2 6; }
for r in $(seq "$ROUNDS"); do
  { date; cat /proc/loadavg; } >> "$OUT/load.txt"
  bw > "$OUT/bw.$r.pre.txt"
  for c in "${selected[@]}"; do
    IFS='|' read -r name engine files args <<< "$c"
    echo "== round $r: $name" >&2
    if [ -d "$files" ]; then cat "$files"/*.safetensors > /dev/null; else cat "$files" > /dev/null; fi
    if [ "$engine" = moe ]; then
      # shellcheck disable=SC2086
      "$BENCH" --model "$files" --prompt "$PROMPT" --gen "$GEN" --threads 2 --reps "$REPS" --json $args \
        > "$OUT/$name.$r.txt" 2>&1
    else
      "$LB" -m "$files" -t 2 -p "$PROMPT" -n 0 -r "$REPS" -o json > "$OUT/$name.$r.pp.json" 2> "$OUT/$name.$r.err"
      "$LB" -m "$files" -t 2 -p 0 -n "$GEN" -d "$PROMPT" -r "$REPS" -o json > "$OUT/$name.$r.tg.json" 2>> "$OUT/$name.$r.err"
    fi
  done
  bw > "$OUT/bw.$r.post.txt"
done
python3 "$REPO/tools/bench/summarize_formats.py" "$OUT" | tee "$OUT/summary.md"
