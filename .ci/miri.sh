#!/usr/bin/env bash
# Miri: the unit tests of the code Miri can run, under `cargo +nightly miri test`:
#   moe-core: weights parsing (safetensors headers, shards and indexes, copied: Miri cannot mmap),
#             the sampler, the scalar kernels (dot, axpy, and products split over a pool, whose
#             workers write through a raw pointer), top-k, and two small dispatch tests (under Miri
#             no SIMD level is detected, so they run the scalar paths; the larger kernel tests take
#             too long interpreted);
#   moe-ffi:  the handle registry, out buffers, argument checks, the panic boundary, last error,
#             statuses.
# Tests are selected by name; each group runs as one step. -Zmiri-disable-isolation lets the weights
# tests write and read temporary files. Prints "miri: N passed, M failed" (steps) last.
#
# Environment: CARGO_TARGET_DIR (default target; Miri builds go to its miri/ subdirectory),
# MIRIFLAGS (default -Zmiri-disable-isolation).
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
failures=()
step() { # step NAME COMMAND...
  local name="$1"
  shift
  echo "-- $name"
  local t0=$SECONDS
  if "$@"; then
    passed=$((passed + 1))
    echo "   ($((SECONDS - t0)) s)"
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "FAILED: $name ($((SECONDS - t0)) s)"
  fi
}

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "-- installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly miri --version >/dev/null 2>&1; then
  echo "-- installing miri and rust-src (nightly)"
  rustup component add miri rust-src --toolchain nightly
fi
step "cargo miri setup" cargo +nightly miri setup

export MIRIFLAGS="${MIRIFLAGS:--Zmiri-disable-isolation}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# miri_test NAME PACKAGE FILTER...: the package's unit tests whose names contain any FILTER; fails
# unless cargo succeeds and at least one test ran.
miri_test() {
  local name="$1" pkg="$2"
  shift 2
  step "$name" bash -c '
    log="$1" pkg="$2"; shift 2
    cargo +nightly miri test -p "$pkg" --lib -- "$@" >"$log" 2>&1
    rc=$?
    grep -Ev "^\s+(Compiling|Checking|Fresh) " "$log"
    ((rc == 0)) && grep -q "^test result: ok\. [1-9][0-9]* passed" "$log"' _ "$log" "$pkg" "$@"
}

miri_test "moe-core weights (headers, shards, index; copied)" moe-core weights::
miri_test "moe-core sampler" moe-core sampler::
# The kernel tests run products on rayon pools, whose crossbeam-epoch is known not to follow Stacked
# Borrows (it does follow Tree Borrows, which crossbeam's own Miri CI uses:
# crossbeam-rs/crossbeam#996, rayon-rs/rayon#1185), so this group runs under Tree Borrows. A
# dropped rayon pool lets its workers exit on their own instead of joining them, which Miri reports
# as threads left running at exit: the group ignores leaks (the other groups keep the leak check).
MIRIFLAGS="$MIRIFLAGS -Zmiri-tree-borrows -Zmiri-ignore-leaks" \
  miri_test "moe-core scalar kernels, top-k, kernel dispatch (scalar level; Tree Borrows)" moe-core \
  kernels::scalar:: kernels::topk:: kernels::tests::matmul_n_is_the_transpose_of_matmul_t \
  kernels::tests::softmax_sums_to_one_and_keeps_order
miri_test "moe-ffi handles, out buffers, arguments, boundary, errors" moe-ffi \
  handle:: out_buffer:: args:: boundary:: last_error:: diagnostics:: status::

if ((failed)); then
  printf 'failed: %s\n' "${failures[@]}"
fi
echo "miri: $passed passed, $failed failed"
((failed == 0))
