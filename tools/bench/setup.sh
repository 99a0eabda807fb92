#!/usr/bin/env bash
# Builds the peers and the benchmark models OUTSIDE the repository (in $W, default /work/bench) with
# the recipes of ../shared/tools/peers: llama.cpp (llama-bench) from the llama-cpp-python sdist on PyPI,
# the random-weight Qwen3-30B-A3B-shaped and DeepSeek-V2-Lite-shaped 8-layer checkpoints, their BF16
# GGUFs, and the machine-limits probe. About 20 minutes on 2 cores; ~41 GB of disk.
# usage: tools/bench/setup.sh   (env: W work folder, PY python with torch + transformers 5.23)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
W=${W:-/work/bench}
PY=${PY:-python3}
PEERS=${PEERS:-$REPO/../shared/tools/peers}
mkdir -p "$W"
command -v cmake >/dev/null || apt-get install -y cmake
[ -x "$W/llama-build/bin/llama-bench" ] || PY=$PY "$PEERS/build_llamacpp.sh" "$W"
[ -x "$W/machine_limits" ] || gcc -O3 -march=native -fopenmp "$PEERS/machine_limits.c" -o "$W/machine_limits"
[ -s "$W/models/dsv2lite-8L/config.json" ] && [ -s "$W/models/qwen3moe-a3b-8L/config.json" ] ||
  "$PY" "$PEERS/make_random_moe.py" "$W/models"
export LLAMACPP_SRC=${LLAMACPP_SRC:-$W/sdist/llama_cpp_python-0.3.36/vendor/llama.cpp}
mkdir -p "$W/gguf"
for spec in qwen3moe-a3b-8L:qwen2 dsv2lite-8L:deepseek-llm; do
  m=${spec%%:*}; pre=${spec##*:}
  out=$W/gguf/$m-BF16.gguf
  [ -s "$out" ] || LLAMACPP_PRE=$pre "$PY" "$PEERS/convert_to_gguf.py" "$W/models/$m" --outtype bf16 --outfile "$out"
done
ls -la "$W/models" "$W/gguf"
