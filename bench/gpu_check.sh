#!/usr/bin/env bash
# The GPU checks and benchmarks of the CUDA backend (issue #7), in one run on
# the GPU machine, from the repository root, with gpu-bin/ from
# bench/gpu_prepare.sh. Logs and tables go to $OUT (default /tmp/lensdiff-gpu):
#   gpu.txt      the card, driver and memory (nvidia-smi)
#   tests.log    tests/gpu.rs with its #[ignore]d GPU tests (--include-ignored): kernel
#                parity, samplers GPU vs CPU, exact posterior on the GPU
#   parity.md    the parity tables (Markdown, for docs/gpu.md)
#   bench.log / bench.json   lensdiff bench: samples/s on CPU and GPU, batch 1 and 32; kernel bandwidths
#   torch.log / torch.json   bench/torch_gaussian_sampler.py on the same problem and card
# Needs the NVIDIA driver, python3 with PyTorch, and NVRTC + cuFFT libraries
# (from the nvidia-cuda-nvrtc / nvidia-cufft wheels PyTorch installs, or a CUDA toolkit).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/lensdiff-gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
# NVRTC and cuFFT from the Python wheels, when no toolkit is on the library path
sp=$(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null || true)
for s in $sp; do
    for d in "$s"/nvidia/*/lib "$s"/nvidia/cu13/lib; do
        [ -d "$d" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
    done
done
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv; nproc; } 2>&1 | tee "$OUT/gpu.txt"
export LENSDIFF_PARITY_OUT="$OUT/parity.md" LENSDIFF_KERNEL_CACHE=/tmp/lensdiff-kernels
rc=0
echo "== tests/gpu.rs"
# the GPU tests are #[ignore]d (a plain `cargo test` has no GPU); the CPU harness test runs too
timeout 300 gpu-bin/gpu-tests --include-ignored --test-threads=1 --nocapture 2>&1 | tee "$OUT/tests.log" || rc=1
echo "== lensdiff bench"
timeout 300 gpu-bin/lensdiff bench --devices cuda:0,cpu --batch 1,32 --kernels --data gpu-bin/data \
    --export /tmp/lensdiff-problem --json "$OUT/bench.json" 2>&1 | tee "$OUT/bench.log" || rc=1
echo "== PyTorch baseline"
timeout 300 python3 bench/torch_gaussian_sampler.py /tmp/lensdiff-problem --batch 1 32 \
    --out "$OUT/torch.json" 2>&1 | tee "$OUT/torch.log" || rc=1
echo "== summary"
grep -E "test result|FAILED|panicked" "$OUT/tests.log" || true
grep -E "samples/s" "$OUT/bench.log" || true
tail -n 8 "$OUT/torch.log" || true
exit $rc
