#!/usr/bin/env bash
# The OpenAI-compatible server against the official client: builds `moe` (release), installs the
# `openai` package and pytest into a fresh virtualenv, runs moe-cli/tests/test_openai.py (its
# fixtures start `moe serve` on the demo model on free ports and stop it), then starts one server
# itself, waits for /health, runs the bounded load script against it and stops it.
# Run from anywhere; needs Rust and Python >= 3.9 with pip and the stdlib venv.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
PYTHON="${PYTHON:-python3}"
target="${CARGO_TARGET_DIR:-$root/target}"

echo "-- cargo build --release -p moe-cli"
cargo build --release -p moe-cli
moe="$target/release/moe"
"$moe" --version

work="$(mktemp -d "${TMPDIR:-/tmp}/moe-server-ci.XXXXXX")"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "-- virtualenv with openai and pytest in $work/venv"
"$PYTHON" -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install --quiet --disable-pip-version-check openai pytest
"$py" -c 'import openai; print("-- openai", openai.__version__)'

echo "-- pytest moe-cli/tests/test_openai.py"
MOE_BIN="$moe" PYTHONDONTWRITEBYTECODE=1 "$py" -m pytest -p no:cacheprovider -q "$root/moe-cli/tests/test_openai.py"

echo "-- moe serve on the demo model, then tools/load_test.py"
"$moe" serve --port 0 --max-batch 8 >"$work/serve.log" 2>&1 &
server_pid=$!
url=""
for _ in $(seq 1 600); do
  url="$(grep -o 'http://[0-9.:]*' "$work/serve.log" | head -n1 || true)"
  if [[ -n "$url" ]] && "$py" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/health", timeout=5)' "$url" 2>/dev/null; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then cat "$work/serve.log"; exit 1; fi
  url=""
  sleep 0.1
done
if [[ -z "$url" ]]; then echo "moe serve did not become healthy" >&2; cat "$work/serve.log"; exit 1; fi
"$py" "$root/tools/load_test.py" --url "$url" --requests 32 --concurrency 8 --max-tokens 64 --deadline 300
"$py" -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1] + "/metrics", timeout=5).read().decode())' "$url" | grep -E '^moe_(requests_total|completion_tokens_total|steps_total|batch_rows_total) '
