#!/usr/bin/env bash
# Python package checks: builds the moe wheel with maturin (release, abi3), installs it with numpy,
# pytest and safetensors into a fresh virtualenv in a temporary folder, runs moe-py/tests, checks the
# type stubs against the module (mypy stubtest) and runs the Python example. Run from anywhere; needs
# Rust and Python >= 3.9 with pip and the stdlib venv.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

MATURIN_VERSION=1.16.0 # pinned: the wheel layout is maturin's
PYTHON="${PYTHON:-python3}"

work="$(mktemp -d "${TMPDIR:-/tmp}/moe-python-ci.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "-- virtualenv in $work/venv ($("$PYTHON" --version))"
"$PYTHON" -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$py" -m pip install --quiet --disable-pip-version-check "maturin==$MATURIN_VERSION"

echo "-- maturin build --release"
(cd moe-py && "$work/venv/bin/maturin" build --release --strip --out "$work/wheels")
wheels=("$work"/wheels/moe-*.whl)
if [[ ${#wheels[@]} -ne 1 || ! -f "${wheels[0]}" ]]; then
  echo "expected exactly one wheel in $work/wheels" >&2
  exit 1
fi
echo "-- built $(basename "${wheels[0]}")"
case "$(basename "${wheels[0]}")" in
*-abi3-*) ;;
*)
  echo "the wheel is not an abi3 wheel" >&2
  exit 1
  ;;
esac

echo "-- install the wheel and the test dependencies"
"$py" -m pip install --quiet --disable-pip-version-check "${wheels[0]}" numpy pytest safetensors mypy

# Import from outside the checkout so that the installed wheel, not moe-py/python, is tested.
cd "$work"
"$py" -c 'import moe, sys; print("-- moe", moe.__version__, "from", moe.__file__); sys.exit(0 if "site-packages" in moe.__file__ else 1)'

echo "-- pytest moe-py/tests"
# pytest exits 5 when it collects no test, which fails this script like any other failure.
PYTHONDONTWRITEBYTECODE=1 "$py" -m pytest -p no:cacheprovider -q "$root/moe-py/tests"

echo "-- mypy stubtest moe._native (the .pyi stubs match the module)"
"$py" -m mypy.stubtest moe._native

echo "-- examples/python/generate.py"
PYTHONDONTWRITEBYTECODE=1 "$py" "$root/examples/python/generate.py" --max-new-tokens 16 >"$work/generate.out"
cat "$work/generate.out"
test -s "$work/generate.out"
