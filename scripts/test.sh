#!/usr/bin/env bash
# The whole test suite (README command (b); CI runs it through .ci/run).
# Needs a Rust toolchain and a C compiler (cfitsio is built from source).
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
if ! need cc && ! need gcc; then
    echo "installing a C compiler (needed to build cfitsio)"
    apt-get update -qq && apt-get install -y -qq build-essential
fi
if ! need cargo; then
    echo "error: cargo not found; install Rust (https://rustup.rs)" >&2
    exit 1
fi

cargo build --release --all-targets --locked
cargo test --release --locked
