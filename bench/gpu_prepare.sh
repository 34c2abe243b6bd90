#!/usr/bin/env bash
# Builds, on a machine with the Rust toolchain, everything bench/gpu_check.sh
# runs on the GPU machine (which has no cargo) and puts it in gpu-bin/ (git
# ignores it; the device tool carries it):
#   gpu-bin/lensdiff     the CLI (lensdiff bench)
#   gpu-bin/gpu-tests    the test binary of tests/gpu.rs (kernel parity, samplers, exact posterior;
#                        the GPU tests are #[ignore]d: gpu_check.sh passes --include-ignored)
#   gpu-bin/data/        the COSMOS noise maps and the kappaTNG map and spectrum of the benchmark
# Usage: bash bench/gpu_prepare.sh [DATA_DIR (default ../shared/data)]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data}
cargo build --release --locked --bin lensdiff
cargo test --release --locked --test gpu --no-run
rm -rf gpu-bin && mkdir -p gpu-bin/data/cosmos gpu-bin/data/ktng
cp target/release/lensdiff gpu-bin/
# the newest test binary of tests/gpu.rs
bin=$(ls -t target/release/deps/gpu-* | grep -v '\.d$' | head -1)
cp "$bin" gpu-bin/gpu-tests
if [ -d "$data/cosmos" ]; then
    cp "$data/cosmos/std1.fits" "$data/cosmos/std2.fits" gpu-bin/data/cosmos/
    cp "$data/ktng/ktng_PS_theory.npy" "$data/ktng/ktng_kappa360v2.fits" gpu-bin/data/ktng/
else
    echo "note: $data not found: the benchmark will use its synthetic stand-in" >&2
fi
grep -qx '/gpu-bin/' .git/info/exclude 2>/dev/null || echo '/gpu-bin/' >> .git/info/exclude
du -sh gpu-bin
