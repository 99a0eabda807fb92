#!/usr/bin/env bash
# The installed C library, used as an outsider would: moe-ffi/install.sh installs into a temporary
# prefix; the layout, the SONAME and the version files are checked; examples/c/generate.c, copied out
# of the repository, is built against that prefix only, with pkg-config (shared, then --static) and
# with CMake (find_package(moe): moe::moe and moe::moe_static); each binary must print what the
# in-tree build of the same example prints (greedy tokens and logits of the shipped model), the shared
# ones must need libmoe.so.0 (found in the prefix) and the static ones no libmoe at all. Run from
# anywhere; honours CARGO_TARGET_DIR; prints "c_install: N passed, M failed" last.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

passed=0
failed=0
failures=()
step() { # step NAME COMMAND...: runs COMMAND in a subshell with set -e in force, counts it, keeps going
  local name="$1"
  shift
  echo "-- $name"
  "$@" &
  if wait $!; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "FAILED: $name"
  fi
}
finish() {
  if ((failed)); then
    printf 'failed: %s\n' "${failures[@]}"
  fi
  echo "c_install: $passed passed, $failed failed"
  ((failed == 0))
}

# --- tools -------------------------------------------------------------------------------------
missing=()
for tool in gcc make pkg-config cmake readelf nm; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  pkgs=()
  for t in "${missing[@]}"; do
    case "$t" in
    readelf | nm) pkgs+=(binutils) ;;
    *) pkgs+=("$t") ;;
    esac
  done
  echo "-- installing ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/moe-c-install.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"
outsider="$tmp/outsider" # the consumer's project: generate.c and nothing else of the repository
mkdir -p "$outsider"
cp examples/c/generate.c "$outsider/"
# Nothing but the prefix may be found: no inherited search paths for headers, libraries, packages.
unset CPATH C_INCLUDE_PATH LIBRARY_PATH LD_LIBRARY_PATH PKG_CONFIG_PATH CMAKE_PREFIX_PATH
export PKG_CONFIG_LIBDIR="$prefix/lib/pkgconfig"

version="$(sed -n 's/^#define MOE_VERSION_STRING "\(.*\)"$/\1/p' include/moe_version.h)"
major="$(sed -n 's/^#define MOE_VERSION_MAJOR \([0-9]*\)$/\1/p' include/moe_version.h)"
minor="$(sed -n 's/^#define MOE_VERSION_MINOR \([0-9]*\)$/\1/p' include/moe_version.h)"
[[ -n "$version" && -n "$major" && -n "$minor" ]] || {
  echo "cannot read the version from include/moe_version.h"
  exit 1
}
CFLAGS=(-std=c11 -Wall -Wextra -Werror -pedantic -O2)

# --- install -----------------------------------------------------------------------------------
step "bash moe-ffi/install.sh --prefix $prefix" bash moe-ffi/install.sh --prefix "$prefix"
((failed == 0)) || { finish || exit 1; }

layout() {
  local f
  for f in include/moe.h include/moe_version.h "lib/libmoe.so.$version" lib/libmoe.a \
    lib/pkgconfig/moe.pc lib/pkgconfig/moe-shared.pc lib/cmake/moe/moeConfig.cmake lib/cmake/moe/moeConfigVersion.cmake; do
    [[ -f "$prefix/$f" && ! -L "$prefix/$f" ]] || { echo "missing file: $prefix/$f"; return 1; }
  done
  [[ "$(readlink "$prefix/lib/libmoe.so.$major")" == "libmoe.so.$version" ]] || { echo "libmoe.so.$major is not a link to libmoe.so.$version"; return 1; }
  [[ "$(readlink "$prefix/lib/libmoe.so")" == "libmoe.so.$major" ]] || { echo "libmoe.so is not a link to libmoe.so.$major"; return 1; }
  cmp include/moe.h "$prefix/include/moe.h"
  cmp include/moe_version.h "$prefix/include/moe_version.h"
  # The cmake templates must be fully substituted.
  ! grep -n '@[A-Z_]*@' "$prefix"/lib/cmake/moe/*.cmake
}
step "layout: headers, libmoe.so.$version with its links, libmoe.a, moe.pc, CMake config" layout

soname() {
  local d
  d="$(readelf -d "$prefix/lib/libmoe.so.$version")"
  grep -F "(SONAME)" <<<"$d"
  grep -qF "Library soname: [libmoe.so.$major]" <<<"$d" || { echo "no SONAME libmoe.so.$major"; return 1; }
}
step "libmoe.so.$version has SONAME libmoe.so.$major" soname

# --- helpers -----------------------------------------------------------------------------------
# needs_libmoe_so BIN: BIN needs libmoe.so.MAJOR (no path, not the unversioned name), which the
# loader finds in the prefix.
needs_libmoe_so() {
  local needed
  needed="$(readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')"
  echo "   NEEDED: $(tr '\n' ' ' <<<"$needed")"
  grep -qx "libmoe.so.$major" <<<"$needed" || { echo "$1 does not need libmoe.so.$major"; return 1; }
  [[ "$(grep -c libmoe <<<"$needed")" == 1 ]] || { echo "$1 needs another libmoe too"; return 1; }
  local resolved
  resolved="$(ldd "$1" | sed -n "s/^[[:space:]]*libmoe.so.$major => \([^ ]*\) .*/\1/p")"
  echo "   libmoe.so.$major => $resolved"
  [[ "$resolved" == "$prefix/lib/libmoe.so.$major" ]] || { echo "libmoe.so.$major resolves to '$resolved', not the prefix's"; return 1; }
}
# static_without_libmoe BIN: BIN needs no libmoe and defines the moe functions itself.
static_without_libmoe() {
  local needed
  needed="$(readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')"
  echo "   NEEDED: $(tr '\n' ' ' <<<"$needed")"
  if grep -q libmoe <<<"$needed"; then
    echo "$1 needs a shared libmoe"
    return 1
  fi
  nm --defined-only "$1" | grep -w moe_model_load >/dev/null || { echo "$1 does not define moe_model_load"; return 1; }
}
# same_output BIN: BIN, run from the repository root without arguments (the shipped model and its
# prompt), prints exactly what the in-tree build of generate.c prints: 16 greedy tokens with logits.
same_output() {
  (cd "$root" && "$1") >"$1.out"
  diff -u "$tmp/reference.out" "$1.out"
}

# The reference: generate.c built in the tree by examples/c/Makefile against the build's libmoe.
target_dir="${CARGO_TARGET_DIR:-$root/target}"
reference() {
  make -s -C examples/c "LIBDIR=$target_dir/release" "OUT=$tmp/intree" "$tmp/intree/generate-shared"
  (cd "$root" && "$tmp/intree/generate-shared") >"$tmp/reference.out"
  cat "$tmp/reference.out"
  [[ "$(grep -c '^token [0-9]* ' "$tmp/reference.out")" == 16 ]] || { echo "expected 16 token lines"; return 1; }
}
step "reference: the in-tree generate-shared on the shipped model" reference

# --- pkg-config --------------------------------------------------------------------------------
pc_flags() {
  local shared static
  [[ "$(pkg-config --modversion moe)" == "$version" ]] || { echo "pkg-config --modversion moe: $(pkg-config --modversion moe)"; return 1; }
  shared="$(pkg-config --libs moe)"
  static="$(pkg-config --static --libs moe)"
  echo "   pkg-config --libs moe:          $shared"
  echo "   pkg-config --static --libs moe: $static"
  [[ "$shared" != *libmoe.a* ]] || { echo "the shared flags name libmoe.a"; return 1; }
  [[ "$static" == "$prefix/lib/libmoe.a "* ]] || { echo "the static flags do not start with $prefix/lib/libmoe.a"; return 1; }
}
step "pkg-config: version $version, shared and static flags" pc_flags

# The documented commands (docs/c-api.md): the shared build adds the prefix's lib/ as its rpath.
pc_shared() {
  # shellcheck disable=SC2046 # pkg-config's output is a list of flags
  (cd "$outsider" && gcc "${CFLAGS[@]}" generate.c $(pkg-config --cflags --libs moe) \
    -Wl,-rpath,"$(pkg-config --variable=libdir moe)" -o pc-shared)
}
pc_static() {
  # shellcheck disable=SC2046
  (cd "$outsider" && gcc "${CFLAGS[@]}" generate.c $(pkg-config --cflags --libs --static moe) -o pc-static)
}
step "pkg-config, shared: gcc generate.c \$(pkg-config --cflags --libs moe)" pc_shared
step "pkg-config, shared: needs libmoe.so.$major from the prefix" needs_libmoe_so "$outsider/pc-shared"
step "pkg-config, shared: runs, same output" same_output "$outsider/pc-shared"
step "pkg-config, static: gcc generate.c \$(pkg-config --cflags --libs --static moe)" pc_static
step "pkg-config, static: needs no libmoe" static_without_libmoe "$outsider/pc-static"
step "pkg-config, static: runs, same output" same_output "$outsider/pc-static"

# --- CMake -------------------------------------------------------------------------------------
cat >"$outsider/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.16)
project(moe_outsider C)
set(MOE_VERSION_WANTED "" CACHE STRING "the version given to find_package(moe)")
find_package(moe ${MOE_VERSION_WANTED} REQUIRED)
message(STATUS "found moe ${moe_VERSION} in ${moe_DIR}")
set(CMAKE_C_STANDARD 11)
set(CMAKE_C_STANDARD_REQUIRED ON)
add_compile_options(-Wall -Wextra -Werror -pedantic)
add_executable(cmake-shared generate.c)
target_link_libraries(cmake-shared PRIVATE moe::moe)
add_executable(cmake-static generate.c)
target_link_libraries(cmake-static PRIVATE moe::moe_static)
EOF
cmake_build() {
  cmake -S "$outsider" -B "$outsider/build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
    "-DMOE_VERSION_WANTED=$major.$minor" >"$tmp/cmake.log" || { cat "$tmp/cmake.log"; return 1; }
  grep -F "found moe $version in $prefix/lib/cmake/moe" "$tmp/cmake.log"
  cmake --build "$outsider/build" -j 2 >"$tmp/cmake-build.log" || { cat "$tmp/cmake-build.log"; return 1; }
}
step "CMake: find_package(moe $major.$minor), moe::moe and moe::moe_static build" cmake_build
step "CMake, moe::moe: needs libmoe.so.$major from the prefix" needs_libmoe_so "$outsider/build/cmake-shared"
step "CMake, moe::moe: runs, same output" same_output "$outsider/build/cmake-shared"
step "CMake, moe::moe_static: needs no libmoe" static_without_libmoe "$outsider/build/cmake-static"
step "CMake, moe::moe_static: runs, same output" same_output "$outsider/build/cmake-static"

refused() { # refused VERSION: find_package(moe VERSION REQUIRED) fails on this install
  if cmake -S "$outsider" -B "$tmp/refused-$1" -DCMAKE_PREFIX_PATH="$prefix" "-DMOE_VERSION_WANTED=$1" \
    >"$tmp/refused-$1.log" 2>&1; then
    echo "find_package(moe $1) accepted moe $version"
    return 1
  fi
  # Refused for its version, not for anything else.
  grep -qF "moeConfig.cmake, version: $version" "$tmp/refused-$1.log" || { cat "$tmp/refused-$1.log"; return 1; }
}
step "CMake: find_package(moe $((major + 1)).0) is refused" refused "$((major + 1)).0"
if ((major == 0)); then
  step "CMake: find_package(moe 0.$((minor + 1))) is refused (0.x: minor versions are incompatible)" refused "0.$((minor + 1))"
fi

finish
