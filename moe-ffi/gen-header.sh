#!/usr/bin/env bash
# Generates the C header of moe-ffi with cbindgen, adding MOE_VERSION_* macros taken from Cargo.toml.
# Usage (from anywhere): bash moe-ffi/gen-header.sh [OUTPUT]   (default: include/moe.h)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
out="${1:-$root/include/moe.h}"

pkgid="$(cd "$root" && cargo pkgid -p moe-ffi)"     # e.g. path+file:///…/moe-ffi#0.1.0
version="${pkgid##*[#@]}"
core="${version%%[-+]*}"
IFS=. read -r major minor patch <<<"$core"
for n in "$major" "$minor" "$patch"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "gen-header: cannot parse version '$version'" >&2; exit 1; }
done

config="$(mktemp)"
trap 'rm -f "$config"' EXIT
{
  # Top-level keys must precede the tables of cbindgen.toml.
  printf 'after_includes = """\n'
  printf '/** The version of this header, from Cargo.toml; moe_version() gives the linked library'"'"'s. */\n'
  printf '#define MOE_VERSION_MAJOR %s\n#define MOE_VERSION_MINOR %s\n#define MOE_VERSION_PATCH %s\n' \
    "$major" "$minor" "$patch"
  printf '#define MOE_VERSION_STRING "%s"\n"""\n' "$version"
  cat "$here/cbindgen.toml"
} >"$config"
mkdir -p "$(dirname "$out")"
cbindgen --quiet --config "$config" --crate moe-ffi --output "$out" "$root"
