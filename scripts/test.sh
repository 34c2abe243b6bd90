#!/usr/bin/env bash
# The whole test suite (README command (b); CI runs it through .ci/run).
# Needs a Rust toolchain; installs the C/Fortran tools the C-ABI tests use
# (gcc, g++, gfortran, make, pkg-config, valgrind) with apt-get when missing,
# and the NVRTC wheel (pip: nvidia-cuda-nvrtc) for the CUDA kernel check.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
missing=()
need gcc || missing+=(gcc)
need g++ || missing+=(g++)
need gfortran || missing+=(gfortran)
need make || missing+=(make)
need pkg-config || missing+=(pkg-config)
need valgrind || missing+=(valgrind)
# MPI (issue #5): OpenMPI and libclang (rsmpi's bindings are generated at build time)
need mpicc || missing+=(libopenmpi-dev)
need mpirun || missing+=(openmpi-bin)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || ls /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1 || missing+=(libclang-dev)
# CUDA kernel check (issue #7): Python 3 with pip
need python3 || missing+=(python3)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
if [ ${#missing[@]} -gt 0 ]; then
    if need apt-get; then
        echo "installing: ${missing[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "warning: missing ${missing[*]} and no apt-get; the tests that need them print a NOTICE" >&2
    fi
fi
# CUDA kernels (issue #7): compile every kernels/*.cu with NVRTC for sm_90a (no
# GPU needed); exit 3 of the check = no NVRTC library, so install the wheel once
kernels_rc=0
python3 scripts/check_kernels.py || kernels_rc=$?
if [ "$kernels_rc" -eq 3 ]; then
    echo "installing: nvidia-cuda-nvrtc (pip)"
    python3 -m pip install --quiet nvidia-cuda-nvrtc \
        || python3 -m pip install --quiet --break-system-packages nvidia-cuda-nvrtc \
        || { echo "error: could not pip-install nvidia-cuda-nvrtc for the kernel check" >&2; exit 1; }
    kernels_rc=0
    python3 scripts/check_kernels.py || kernels_rc=$?
fi
if [ "$kernels_rc" -ne 0 ]; then
    echo "error: CUDA kernel check failed (scripts/check_kernels.py exited $kernels_rc)" >&2
    exit 1
fi

if ! need cargo; then
    echo "error: cargo not found; install Rust (https://rustup.rs)" >&2
    exit 1
fi

# build every target first: `cargo test` alone builds no cdylib/staticlib
cargo build --release --all-targets --locked
# the MPI build (feature `mpi`) in its own target dir, used by tests/mpi.rs
if need mpicc && need mpirun; then
    cargo build --release --locked --features mpi --target-dir target/mpi --lib --bins
    export LENSDIFF_MPI_TESTS=1
fi
cargo test --release --locked
