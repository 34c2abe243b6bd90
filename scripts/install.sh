#!/usr/bin/env bash
# Builds the lensdiff C ABI and installs it under PREFIX:
#
#   PREFIX/lib/liblensdiff.so.X.Y.Z  (+ liblensdiff.so.X -> , liblensdiff.so -> )
#   PREFIX/lib/liblensdiff.a
#   PREFIX/lib/pkgconfig/lensdiff.pc
#   PREFIX/include/lensdiff.h        (C header)
#   PREFIX/include/lensdiff.f90      (Fortran 2008 iso_c_binding module source)
#
# Usage: scripts/install.sh PREFIX
#
# Environment: CARGO (cargo binary, default `cargo`); LENSDIFF_FEATURES (cargo
# features, e.g. `mpi`; use with CARGO_TARGET_DIR to keep builds apart);
# LENSDIFF_INSTALL_NO_BUILD=1 (install what is already built); LENSDIFF_REFRESH_NATIVE_LIBS=1
# re-queries rustc for the native libraries of the static library instead of
# using the value cached in the target directory (the query recompiles the
# crate, so it is only run when the toolchain or Cargo.lock changed).
set -euo pipefail

if [[ $# -ne 1 || -z "$1" || "$1" == -h || "$1" == --help ]]; then
    echo "usage: $0 PREFIX" >&2
    exit 2
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$1"
PREFIX="$(cd "$1" && pwd)"
CARGO="${CARGO:-cargo}"
cd "$ROOT"

# --- package metadata from Cargo.toml ([package] table) ----------------------
pkg_field() {
    sed -n '/^\[package\]/,/^\[/{s/^'"$1"'[[:space:]]*=[[:space:]]*"\(.*\)"[[:space:]]*$/\1/p;}' Cargo.toml | head -n 1
}
VERSION="$(pkg_field version)"
DESCRIPTION="$(pkg_field description)"
if [[ ! "$VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]]; then
    echo "error: could not read the package version from Cargo.toml (got '$VERSION')" >&2
    exit 1
fi
MAJOR="${VERSION%%.*}"
DESCRIPTION="${DESCRIPTION:-lensdiff weak-lensing mass mapping}"

# --- target directory (honours CARGO_TARGET_DIR and .cargo/config) -----------
TARGET_DIR="$("$CARGO" metadata --format-version 1 --no-deps 2>/dev/null \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
TARGET_DIR="${TARGET_DIR:-$ROOT/target}"
OUT="$TARGET_DIR/release"

# --- native libraries a static link needs (Libs.private) ---------------------
FALLBACK_LIBS="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"
CACHE="$OUT/lensdiff-native-static-libs.txt"
key_of() {
    {
        "${RUSTC:-rustc}" -vV 2>/dev/null || true
        cat Cargo.lock 2>/dev/null || true
    } | cksum | cut -d' ' -f1
}
KEY="$(key_of)"
NATIVE_LIBS=""
if [[ "${LENSDIFF_REFRESH_NATIVE_LIBS:-0}" != 1 && -f "$CACHE" ]] \
    && [[ "$(sed -n 1p "$CACHE")" == "$KEY" ]]; then
    NATIVE_LIBS="$(sed -n 2p "$CACHE")"
fi
if [[ -z "$NATIVE_LIBS" ]]; then
    echo "install.sh: querying rustc for the static library's native dependencies"
    LOG="$(mktemp)"
    trap 'rm -f "$LOG"' EXIT
    if "$CARGO" rustc --release --lib --crate-type staticlib -- --print native-static-libs \
        >"$LOG" 2>&1; then
        NATIVE_LIBS="$(sed -n 's/.*note: native-static-libs:[[:space:]]*//p' "$LOG" | tail -n 1)"
    else
        echo "warning: cargo rustc --print native-static-libs failed:" >&2
        tail -n 20 "$LOG" >&2
    fi
    if [[ -n "$NATIVE_LIBS" ]]; then
        mkdir -p "$OUT"
        printf '%s\n%s\n' "$KEY" "$NATIVE_LIBS" >"$CACHE"
    else
        echo "warning: could not parse native-static-libs; using '$FALLBACK_LIBS'" >&2
        NATIVE_LIBS="$FALLBACK_LIBS"
    fi
fi

# --- build -------------------------------------------------------------------
# LENSDIFF_FEATURES (e.g. "mpi") selects cargo features; LENSDIFF_INSTALL_NO_BUILD=1
# installs the libraries already built in the target directory (the test suite
# uses this after `cargo build --release --all-targets`).
if [[ "${LENSDIFF_INSTALL_NO_BUILD:-0}" == 1 && -f "$OUT/liblensdiff.so" && -f "$OUT/liblensdiff.a" ]]; then
    echo "install.sh: using the libraries already built in $OUT"
elif [[ -n "${LENSDIFF_FEATURES:-}" ]]; then
    "$CARGO" build --release --lib --features "$LENSDIFF_FEATURES"
else
    "$CARGO" build --release --lib
fi

SO="$OUT/liblensdiff.so"
A="$OUT/liblensdiff.a"
for f in "$SO" "$A" include/lensdiff.h c_examples/lensdiff.f90; do
    if [[ ! -f "$f" ]]; then
        echo "error: $f not found after the build" >&2
        exit 1
    fi
done

# --- install -----------------------------------------------------------------
LIBDIR="$PREFIX/lib"
INCDIR="$PREFIX/include"
PCDIR="$LIBDIR/pkgconfig"
install -d "$LIBDIR" "$INCDIR" "$PCDIR"

REAL="liblensdiff.so.$VERSION"
install -m 0755 "$SO" "$LIBDIR/$REAL"
ln -sfn "$REAL" "$LIBDIR/liblensdiff.so.$MAJOR"
ln -sfn "liblensdiff.so.$MAJOR" "$LIBDIR/liblensdiff.so"
install -m 0644 "$A" "$LIBDIR/liblensdiff.a"
install -m 0644 include/lensdiff.h "$INCDIR/lensdiff.h"
install -m 0644 c_examples/lensdiff.f90 "$INCDIR/lensdiff.f90"

cat >"$PCDIR/lensdiff.pc" <<EOF
prefix=$PREFIX
exec_prefix=\${prefix}
libdir=\${exec_prefix}/lib
includedir=\${prefix}/include
# Fortran: compile \${fmodsrc} (module lensdiff) with your program.
fmodsrc=\${includedir}/lensdiff.f90

Name: lensdiff
Description: $DESCRIPTION
Version: $VERSION
Cflags: -I\${includedir}
Libs: -L\${libdir} -llensdiff
Libs.private: $NATIVE_LIBS
EOF

echo "installed lensdiff $VERSION under $PREFIX"
echo "  $LIBDIR/$REAL (+ liblensdiff.so.$MAJOR, liblensdiff.so), $LIBDIR/liblensdiff.a"
echo "  $INCDIR/lensdiff.h, $INCDIR/lensdiff.f90, $PCDIR/lensdiff.pc"
