#!/usr/bin/env bash
# Fuzzing: builds the cargo-fuzz targets of fuzz/ (nightly, AddressSanitizer) and runs each for
# SECONDS_PER_TARGET seconds (default 60) from its committed seeds (fuzz/corpus/<target>/) plus
# what earlier runs found (fuzz/corpus-run/<target>/, not committed). Prints per target
#   fuzz <target>: N execs, M findings (...)
# and last "fuzz: N passed, M failed" (targets). Any crash, leak, timeout or out-of-memory is a
# failure; its input is kept in fuzz/artifacts/<target>/ and libFuzzer's log in fuzz/logs/<target>.log.
#
#   .ci/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      # all targets when none is named
# Environment: CARGO_TARGET_DIR (default fuzz/target), FUZZ_SANITIZER (address | none; default
# address), FUZZ_RSS_LIMIT_MB (default 2048).
set -uo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

seconds="${1:-60}"
shift $(($# > 0 ? 1 : 0))
[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -gt 0 ]] || {
  echo "usage: .ci/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
  exit 2
}
all_targets=(loader config tokenizer sampler c_api)
targets=("${@:-${all_targets[@]}}")
sanitizer="${FUZZ_SANITIZER:-address}"
rss_limit="${FUZZ_RSS_LIMIT_MB:-2048}"
target_dir="${CARGO_TARGET_DIR:-$root/fuzz/target}"
triple="$(rustc +nightly -vV 2>/dev/null | sed -n 's/^host: //p')"

passed=0
failed=0
failures=()
fail() { # fail TARGET REASON
  failed=$((failed + 1))
  failures+=("$1: $2")
  echo "FAILED: $1: $2"
}

# --- tools -------------------------------------------------------------------------------------
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "-- installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal
  triple="$(rustc +nightly -vV | sed -n 's/^host: //p')"
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "-- installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi

# --- build -------------------------------------------------------------------------------------
echo "-- cargo +nightly fuzz build (sanitizer: $sanitizer)"
build_args=(-O -s "$sanitizer" --target-dir "$target_dir")
if ! (cd fuzz && cargo +nightly fuzz build "${build_args[@]}" 2>&1 | grep -Ev '^\s+(Compiling|Checking) '); then
  echo "fuzz: 0 passed, ${#targets[@]} failed (build)"
  exit 1
fi
bin_dir="$target_dir/$triple/release"

# --- run ---------------------------------------------------------------------------------------
mkdir -p fuzz/logs
for t in "${targets[@]}"; do
  bin="$bin_dir/$t"
  if [[ ! -x "$bin" ]]; then
    fail "$t" "no binary $bin"
    continue
  fi
  seeds="fuzz/corpus/$t"
  work="fuzz/corpus-run/$t"
  artifacts="fuzz/artifacts/$t"
  log="fuzz/logs/$t.log"
  mkdir -p "$work" "$artifacts"
  before="$(find "$artifacts" -type f | wc -l)"
  # The first corpus directory receives new inputs; the seeds are only read.
  "$bin" "$work" "$seeds" -max_total_time="$seconds" -timeout=10 -rss_limit_mb="$rss_limit" \
    -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1
  rc=$?
  after="$(find "$artifacts" -type f | wc -l)"
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
  last="$(grep -E '^#[0-9]+' "$log" | tail -1)"
  cov="$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\).*/cov \1, features \2, corpus \3/p' <<<"$last")"
  findings=$((after - before))
  echo "fuzz $t: ${execs:-0} execs, $findings findings (${rate:-0} exec/s, ${seconds}s, ${cov:-no coverage line})"
  if ((rc != 0 || findings > 0)); then
    grep -E -m3 'ERROR: libFuzzer|panicked at|ERROR: AddressSanitizer|SUMMARY' "$log" | sed 's/^/   /'
    ls -t "$artifacts" | head -3 | sed "s|^|   input: $artifacts/|"
    fail "$t" "libFuzzer exit $rc, $findings new findings (log: $log)"
  else
    passed=$((passed + 1))
  fi
done

if ((failed)); then
  printf 'failed: %s\n' "${failures[@]}"
fi
echo "fuzz: $passed passed, $failed failed"
((failed == 0))
