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

# The version macros live in moe_version.h beside moe.h, written here from Cargo.toml; moe.h includes it,
# so plain `cbindgen --config moe-ffi/cbindgen.toml --crate moe-ffi` reproduces moe.h exactly.
mkdir -p "$(dirname "$out")"
{
  printf '/* Generated from moe-ffi/Cargo.toml by moe-ffi/gen-header.sh; do not edit by hand. */\n'
  printf '#ifndef MOE_VERSION_H\n#define MOE_VERSION_H\n'
  printf '/** The version of this header, from Cargo.toml; moe_version() gives the linked library'"'"'s. */\n'
  printf '#define MOE_VERSION_MAJOR %s\n#define MOE_VERSION_MINOR %s\n#define MOE_VERSION_PATCH %s\n' \
    "$major" "$minor" "$patch"
  printf '#define MOE_VERSION_STRING "%s"\n#endif /* MOE_VERSION_H */\n' "$version"
} >"$(dirname "$out")/moe_version.h"
cbindgen --quiet --config "$here/cbindgen.toml" --crate moe-ffi --output "$out" "$root"
