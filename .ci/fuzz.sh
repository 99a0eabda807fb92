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
# address), FUZZ_RSS_LIMIT_MB (default 2048), FUZZ_KEEP_GOING=1 (libFuzzer's fork mode with crashes,
# timeouts and out-of-memory ignored: each target runs its whole time and lists the distinct panic
# sites it found, to look past a known bug; findings still fail the run).
set -uo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

seconds="${1:-60}"
shift $(($# > 0 ? 1 : 0))
[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -gt 0 ]] || {
  echo "usage: .ci/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
  exit 2
}
all_targets=(loader config tokenizer sampler c_api snapshot)
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
# site BINARY INPUT: one line naming where INPUT fails: the panic or sanitizer report, and the first
# frame in moe's own code.
site() {
  local out what frame
  out="$(timeout 60 "$1" "$2" 2>&1)"
  what="$(grep -m1 -E 'panicked at|ERROR: AddressSanitizer|ERROR: libFuzzer' <<<"$out" |
    sed -E 's/^thread .* panicked at /panic at /; s/^==[0-9]+== *//; s|/root/.cargo/registry/src/[^/]*/||; s|/rustc/[0-9a-f]*/||')"
  frame="$(grep -E '^ +#[0-9]+ 0x[0-9a-f]+ in .*/work/|^ +#[0-9]+ 0x[0-9a-f]+ in .*(moe-core|moe-ffi)/src/' <<<"$out" |
    grep -E '(moe-core|moe-ffi)/src/' | head -1 | sed -E 's/.* in ([^ ]+) .*\/((moe-core|moe-ffi)\/src\/[^ ]*)$/\1 (\2)/')"
  echo "${what:-exit without a report}${frame:+ <- $frame}"
}

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
  keep_going=()
  if [[ "${FUZZ_KEEP_GOING:-0}" == 1 ]]; then
    keep_going=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  fi
  touch "$log.start"
  t0=$SECONDS
  # The first corpus directory receives new inputs; the seeds are only read.
  "$bin" "$work" "$seeds" -max_total_time="$seconds" -timeout=10 -rss_limit_mb="$rss_limit" \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "${keep_going[@]}" >"$log" 2>&1
  rc=$?
  elapsed=$((SECONDS - t0))
  after="$(find "$artifacts" -type f | wc -l)"
  last="$(grep -E '^#[0-9]+' "$log" | tail -1)"
  # Plain mode prints stat:: lines at exit; fork mode only its progress lines ("#N: cov: ...").
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  [[ -n "$execs" ]] || execs="$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last")"
  cov="$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\).*/cov \1, features \2, corpus \3/p' <<<"$last")"
  findings=$((after - before))
  echo "fuzz $t: ${execs:-0} execs, $findings findings ($(( ${execs:-0} / (elapsed > 0 ? elapsed : 1) )) exec/s over ${elapsed}s, ${cov:-no coverage line})"
  if ((rc != 0 || findings > 0)); then
    # Distinct sites among the (at most 20) newest findings: each input replayed alone.
    find "$artifacts" -type f -newer "$log.start" -printf '%T@ %p\n' | sort -rn | head -20 | cut -d' ' -f2- |
      while read -r input; do site "$bin" "$input"; done | sort | uniq -c | sort -rn | sed 's/^/   /'
    find "$artifacts" -type f -newer "$log.start" | head -3 | sed 's/^/   input: /'
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
