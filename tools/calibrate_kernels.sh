#!/usr/bin/env bash
# Measures, on this machine, which kernel multiplies bf16 weights fastest (VDPBF16PS or widen + FMA)
# for prefill and decode at f32 and bf16 precision, and prints the rows to add to
# moe-core/src/kernels/choice.rs's TABLE for this CPU. Run on an idle machine.
# usage: tools/calibrate_kernels.sh [--threads N] [--rounds R]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release --quiet --example calibrate -- "$@"
