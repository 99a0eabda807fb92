#!/usr/bin/env bash
# Builds libmoe (cargo build --release -p moe-ffi) and installs the C library under a prefix:
#
#   PREFIX/include/moe.h, PREFIX/include/moe_version.h
#   PREFIX/lib/libmoe.so.X.Y.Z           the shared library, SONAME libmoe.so.X
#   PREFIX/lib/libmoe.so.X -> libmoe.so.X.Y.Z,  PREFIX/lib/libmoe.so -> libmoe.so.X
#   PREFIX/lib/libmoe.a                  the static library
#   PREFIX/lib/pkgconfig/moe.pc          pkg-config --libs moe: shared; pkg-config --static --libs moe: libmoe.a
#   PREFIX/lib/pkgconfig/moe-shared.pc   (the shared link flags, required by moe.pc)
#   PREFIX/lib/cmake/moe/moeConfig.cmake, moeConfigVersion.cmake
#                                        find_package(moe): targets moe::moe (shared), moe::moe_static
#
# Usage (from anywhere): bash moe-ffi/install.sh [--prefix DIR]   (default prefix: /usr/local)
# Linux only. Honours CARGO_TARGET_DIR (and any target-dir cargo is configured with). After installing
# into a directory the dynamic loader searches (/usr/local/lib on most distributions), run `ldconfig`;
# otherwise link programs with -Wl,-rpath,PREFIX/lib (CMake does this for its build tree itself).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"

die() {
  echo "install.sh: $*" >&2
  exit 1
}
usage() { # the comment at the top of this file
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

prefix=/usr/local
while (($#)); do
  case "$1" in
  --prefix)
    (($# >= 2)) || die "--prefix needs a directory"
    prefix="$2"
    shift 2
    ;;
  --prefix=*)
    prefix="${1#--prefix=}"
    shift
    ;;
  -h | --help)
    usage
    exit 0
    ;;
  *) die "unknown argument '$1' (usage: bash moe-ffi/install.sh [--prefix DIR])" ;;
  esac
done
[[ -n "$prefix" ]] || die "--prefix is empty"
[[ "$(uname -s)" == Linux ]] || die "only Linux is supported (libmoe.so.N with a SONAME); on $(uname -s) link target/release/libmoe.* directly, see docs/c-api.md"
for tool in cargo rustc install; do
  command -v "$tool" >/dev/null || die "'$tool' is not on PATH"
done

# --- version -----------------------------------------------------------------------------------
pkgid="$(cd "$root" && cargo pkgid -p moe-ffi)" # e.g. path+file:///…/moe-ffi#0.1.0
version="${pkgid##*[#@]}"
IFS=. read -r major minor patch <<<"${version%%[-+]*}"
for n in "$major" "$minor" "$patch"; do
  [[ "$n" =~ ^[0-9]+$ ]] || die "cannot parse the version of moe-ffi from '$pkgid'"
done
header_version="$(sed -n 's/^#define MOE_VERSION_STRING "\(.*\)"$/\1/p' "$root/include/moe_version.h")"
[[ "$header_version" == "$version" ]] ||
  die "include/moe_version.h is for version '$header_version' but moe-ffi is $version: run 'bash moe-ffi/gen-header.sh'"

# --- build -------------------------------------------------------------------------------------
echo "-- cargo build --release -p moe-ffi --lib"
(cd "$root" && cargo build --release -p moe-ffi --lib)
metadata="$(cd "$root" && cargo metadata --no-deps --format-version 1)"
target_dir="$(printf '%s' "$metadata" | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
[[ -n "$target_dir" ]] || die "cannot find cargo's target directory in 'cargo metadata'"
built="$target_dir/release"
for f in libmoe.so libmoe.a; do
  [[ -f "$built/$f" ]] || die "$built/$f was not built"
done

# What the Rust standard library in libmoe.a needs from the system, as rustc reports it for a static
# library (moe itself links no C library). -lc is left out: every C compiler driver adds it.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
: >"$tmp/empty.rs"
(cd "$root" && rustc --crate-type staticlib --crate-name moe_native_libs --edition 2021 \
  --print native-static-libs -o "$tmp/libempty.a" "$tmp/empty.rs") 2>"$tmp/rustc.txt" ||
  { cat "$tmp/rustc.txt" >&2; die "rustc could not build an empty static library"; }
native="$(sed -n 's/.*native-static-libs: //p' "$tmp/rustc.txt" | head -n 1)"
static_libs=()
for flag in $native; do
  case "$flag" in
  -lc) ;;
  -l*) static_libs+=("$flag") ;;
  *) die "unexpected flag '$flag' in rustc's native-static-libs: $native" ;;
  esac
done
((${#static_libs[@]})) || die "rustc printed no native-static-libs (got: $(cat "$tmp/rustc.txt"))"
static_libs_cmake="$(printf '%s;' "${static_libs[@]#-l}")"
static_libs_cmake="${static_libs_cmake%;}"

# --- install -----------------------------------------------------------------------------------
mkdir -p "$prefix"
prefix="$(cd "$prefix" && pwd)" # absolute, for moe.pc
inc="$prefix/include"
lib="$prefix/lib"
echo "-- installing moe $version into $prefix"
install -d "$inc" "$lib" "$lib/pkgconfig" "$lib/cmake/moe"
install -m 644 "$root/include/moe.h" "$root/include/moe_version.h" "$inc/"
install -m 755 "$built/libmoe.so" "$lib/libmoe.so.$version"
ln -sfn "libmoe.so.$version" "$lib/libmoe.so.$major"
ln -sfn "libmoe.so.$major" "$lib/libmoe.so"
install -m 644 "$built/libmoe.a" "$lib/libmoe.a"

# moe.pc: the shared library by default. Its Libs.private put libmoe.a (by full path) and the system
# libraries first, so that `pkg-config --static --libs moe` links the archive; the shared link flags
# come from moe-shared.pc (Requires: dependencies come after), where --as-needed drops libmoe.so when
# the archive already defined everything.
cat >"$lib/pkgconfig/moe-shared.pc" <<EOF
# Written by moe-ffi/install.sh: the link flags of the shared libmoe, required by moe.pc.
prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: moe-shared
Description: Mixture-of-Experts inference engine, C API (shared library link flags)
Version: $version
Libs: -L\${libdir} -Wl,--as-needed -lmoe -Wl,--no-as-needed
Cflags: -I\${includedir}
EOF
cat >"$lib/pkgconfig/moe.pc" <<EOF
# Written by moe-ffi/install.sh.
#   cc app.c \$(pkg-config --cflags --libs moe)            links libmoe.so.$major
#   cc app.c \$(pkg-config --cflags --libs --static moe)   links libmoe.a (and the C runtime dynamically)
prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: moe
Description: Mixture-of-Experts inference engine, C API
URL: https://github.com/moe-rs/moe
Version: $version
Requires: moe-shared = $version
Libs.private: \${libdir}/libmoe.a ${static_libs[*]}
Cflags: -I\${includedir}
EOF
for f in moeConfig.cmake moeConfigVersion.cmake; do
  sed -e "s|@VERSION@|$version|g" -e "s|@MAJOR@|$major|g" -e "s|@MINOR@|$minor|g" \
    -e "s|@STATIC_LIBS_CMAKE@|$static_libs_cmake|g" "$here/cmake/$f.in" >"$tmp/$f"
  if grep -n '@[A-Z_]*@' "$tmp/$f"; then die "unsubstituted placeholder in $f"; fi
  install -m 644 "$tmp/$f" "$lib/cmake/moe/$f"
done

cat <<EOF
-- installed:
   $inc/moe.h
   $inc/moe_version.h
   $lib/libmoe.so.$version (SONAME libmoe.so.$major)
   $lib/libmoe.so.$major -> libmoe.so.$version
   $lib/libmoe.so -> libmoe.so.$major
   $lib/libmoe.a
   $lib/pkgconfig/moe.pc
   $lib/pkgconfig/moe-shared.pc
   $lib/cmake/moe/moeConfig.cmake
   $lib/cmake/moe/moeConfigVersion.cmake
-- use it (docs/c-api.md):
   PKG_CONFIG_PATH=$lib/pkgconfig pkg-config --cflags --libs moe
   cmake -DCMAKE_PREFIX_PATH=$prefix ...   then find_package(moe) and moe::moe or moe::moe_static
   programs linked against libmoe.so find it with -Wl,-rpath,$lib, or after 'ldconfig' when
   $lib is one of the dynamic loader's directories
EOF
