#!/usr/bin/env bash
# C sanitizers: the C examples and tests that .ci/ffi.sh builds (examples/c/Makefile's BINS: C11,
# C++ and static variants), built again with -fsanitize=address,undefined against libmoe (release),
# run on the same inputs as ffi.sh. AddressSanitizer (with LeakSanitizer: detect_leaks=1) and
# UndefinedBehaviorSanitizer stop at the first report. Run from anywhere; prints
# "sanitize: N passed, M failed" last.
#
# Environment: CARGO_TARGET_DIR (libmoe comes from $CARGO_TARGET_DIR/release, built when missing
# or stale by cargo); CC / CXX (default gcc / g++; clang works too).
set -uo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

MODEL_FOR_TESTS=fixtures/deepseek_v3
TEXT_MODEL=models/tiny-deepseek-pycode
SAN_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"

passed=0
failed=0
failures=()
step() { # step NAME COMMAND...: runs COMMAND, counts it, keeps going on failure
  local name="$1"
  shift
  echo "-- $name"
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "FAILED: $name"
  fi
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
target_dir="${CARGO_TARGET_DIR:-$root/target}"
lib="$target_dir/release"
bin="$target_dir/c-examples-sanitized"

# Reports go to stderr and fail the program (exit 1 for ASan and LSan; UBSan aborts with
# -fno-sanitize-recover). Leak suppressions, if any are ever needed, belong in .ci/lsan.supp with
# a reason each.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
if [[ -s .ci/lsan.supp ]]; then
  export LSAN_OPTIONS="suppressions=$root/.ci/lsan.supp:print_suppressions=1"
fi

# --- build -------------------------------------------------------------------------------------
step "cargo build --release -p moe-ffi" cargo build --release -p moe-ffi --lib
rm -rf "$bin"
# The list of programs is the Makefile's, so a program added there is sanitized too.
mapfile -t bins < <(make -s -C examples/c -pn 2>/dev/null | sed -n 's/^BINS := //p' | head -1 | tr ' ' '\n' | sed '/^$/d')
if ((${#bins[@]} == 0)); then
  step "read BINS from examples/c/Makefile" false
fi
for b in "${bins[@]}"; do
  step "compile $b (ASan+UBSan)" make -s -C examples/c "LIBDIR=$lib" "OUT=$bin" \
    "CFLAGS=-std=c11 -Wall -Wextra -Werror -pedantic -O1 -g $SAN_FLAGS" \
    "CXXFLAGS=-Wall -Wextra -Werror -O1 -g $SAN_FLAGS" "$bin/$b"
done

# --- run ---------------------------------------------------------------------------------------
# run NAME LOG COMMAND...: runs under the sanitizers; on failure shows the report.
run() {
  local name="$1" log="$tmp/$2"
  shift 2
  if "$@" >"$log.out" 2>"$log.err"; then
    return 0
  fi
  echo "   exit status $? from: $*"
  grep -E -A30 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log.err" | head -60 | sed 's/^/   /'
  tail -5 "$log.err" | sed 's/^/   /'
  return 1
}

for b in generate-shared generate-static generate-cpp; do
  step "run $b" run "$b" "$b" "$bin/$b"
done
step "generate: static and C++ print what the shared build prints" \
  sh -c "diff '$tmp/generate-shared.out' '$tmp/generate-static.out' && diff '$tmp/generate-shared.out' '$tmp/generate-cpp.out'"
for b in misuse_test misuse_test-static misuse_test-cpp; do
  step "run $b" run "$b" "$b" "$bin/$b" "$MODEL_FOR_TESTS"
done
refs=()
for d in fixtures/*/ models/*/; do
  [[ -f "$d/reference.safetensors" ]] && refs+=("${d%/}")
done
step "run fixture_test (${#refs[@]} checkpoints)" run fixture_test fixture_test "$bin/fixture_test" "${refs[@]}"
if [[ -f "$TEXT_MODEL/tokenizer.json" ]]; then
  for b in generate_text generate_text-static generate_text-cpp; do
    step "run $b" run "$b" "$b" "$bin/$b" --model "$TEXT_MODEL"
  done
  step "run text_test" run text_test text_test "$bin/text_test" "$TEXT_MODEL" "$MODEL_FOR_TESTS"
  step "run text_test-cpp" run text_test-cpp text_test-cpp "$bin/text_test-cpp" "$TEXT_MODEL" "$MODEL_FOR_TESTS"
else
  step "$TEXT_MODEL/tokenizer.json exists (text programs)" false
fi

if ((failed)); then
  printf 'failed: %s\n' "${failures[@]}"
fi
echo "sanitize: $passed passed, $failed failed"
((failed == 0))
