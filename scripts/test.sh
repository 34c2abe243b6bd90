#!/usr/bin/env bash
# The whole test suite (README command (b); CI runs it through .ci/run).
# Needs a Rust toolchain; installs the C/Fortran tools the C-ABI tests use
# (gcc, g++, gfortran, make, pkg-config, valgrind) with apt-get when missing,
# and the NVRTC wheel (pip: nvidia-cuda-nvrtc) for the CUDA kernel check.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
# LENSDIFF_REQUIRE: a comma-separated list of data, mpi, torch, gpu (issue
# #18). A group of tests whose resource is named there and missing is a
# failure, not a SKIPPED line (.ci/run requires data and mpi).
require_list=${LENSDIFF_REQUIRE:-}
for r in ${require_list//,/ }; do
    case "$r" in
        data | mpi | torch | gpu) ;;
        *)
            echo "error: LENSDIFF_REQUIRE: unknown resource '$r' (data, mpi, torch or gpu)" >&2
            exit 1
            ;;
    esac
done
required() { [[ ",$require_list," == *",$1,"* ]]; }
# a required resource is missing: stop with an error naming it
missing_required() {
    echo "error: LENSDIFF_REQUIRE names $1, but $2" >&2
    exit 1
}
# the one prerequisite this script cannot install (LENSDIFF_TEST_PREREQS_ONLY=1:
# only install and check the others, then stop; scripts/fresh_check.sh uses it)
prereqs_only=${LENSDIFF_TEST_PREREQS_ONLY:-0}
if [ "$prereqs_only" != 1 ] && ! need cargo; then
    echo "error: cargo not found; install Rust (https://rustup.rs)" >&2
    exit 1
fi
# libclang as bindgen (clang-sys) loads it: `libclang.so`, `libclang.so.N` or
# `libclang-N.so*` (package libclang1-N / libclang-dev). Not `libclang-cpp.so.N`
# (package libclang-cppN, on the stock image), which lacks libclang's C API.
have_libclang() {
    local d f dirs=(/usr/lib/llvm-*/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/lib)
    # with LIBCLANG_PATH set, clang-sys looks there only (a folder or the file)
    if [ -n "${LIBCLANG_PATH:-}" ]; then
        [ -f "$LIBCLANG_PATH" ] && return 0
        dirs=("$LIBCLANG_PATH")
    fi
    for d in "${dirs[@]}"; do
        for f in "$d"/libclang.so "$d"/libclang.so.[0-9]* "$d"/libclang-[0-9]*.so*; do
            [ -e "$f" ] && return 0
        done
    done
    return 1
}
# Each prerequisite: "check command|package that provides it".
prereqs=(
    "need gcc|gcc"
    "need g++|g++"
    "need gfortran|gfortran"
    "need make|make"
    "need pkg-config|pkg-config"
    "need valgrind|valgrind"
    # MPI (issue #5): OpenMPI, and libclang for rsmpi's bindings (made at build time)
    "need mpicc|libopenmpi-dev"
    "need mpirun|openmpi-bin"
    "have_libclang|libclang-dev"
    # CUDA kernel check (issue #7): Python 3 with pip
    "need python3|python3"
    "python3 -m pip --version|python3-pip"
)
missing_prereqs() {
    local p
    for p in "${prereqs[@]}"; do
        eval "${p%%|*}" >/dev/null 2>&1 || echo "${p##*|}"
    done
}
missing=($(missing_prereqs))
if [ ${#missing[@]} -gt 0 ]; then
    if need apt-get; then
        echo "installing: ${missing[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
            || echo "apt-get install failed" >&2
    fi
    still=($(missing_prereqs))
    if [ ${#still[@]} -gt 0 ]; then
        echo "error: prerequisites missing and not installable here: ${still[*]} (Debian packages; install them, e.g. apt-get install ${still[*]})" >&2
        exit 1
    fi
fi
# CUDA kernels (issue #7): compile every kernels/*.cu with NVRTC for sm_90a (no
# GPU needed); exit 3 of the check = no NVRTC library, so install the wheel once
kernels_rc=0
python3 scripts/check_kernels.py || kernels_rc=$?
if [ "$kernels_rc" -eq 3 ]; then
    echo "installing: nvidia-cuda-nvrtc (pip)"
    # Debian's own python3 refuses plain pip installs (PEP 668): then retry
    # with --break-system-packages (the wheel only adds a shared library)
    python3 -m pip install --quiet nvidia-cuda-nvrtc 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages nvidia-cuda-nvrtc \
        || { echo "error: could not pip-install nvidia-cuda-nvrtc for the kernel check" >&2; exit 1; }
    kernels_rc=0
    python3 scripts/check_kernels.py || kernels_rc=$?
fi
if [ "$kernels_rc" -ne 0 ]; then
    echo "error: CUDA kernel check failed (scripts/check_kernels.py exited $kernels_rc)" >&2
    exit 1
fi

if [ "$prereqs_only" = 1 ]; then
    echo "test.sh: prerequisites ready (LENSDIFF_TEST_PREREQS_ONLY=1)"
    exit 0
fi

# references in docs and comments resolve (issue #12); the self-test shows the
# checker can fail (two lines: under `set -e` each failure stops the script)
python3 scripts/check_refs.py --self-test
python3 scripts/check_refs.py

# build every target first: `cargo test` alone builds no cdylib/staticlib
cargo build --release --all-targets --locked
# the MPI build (feature `mpi`) in its own target dir, used by tests/mpi.rs
if need mpicc && need mpirun; then
    cargo build --release --locked --features mpi --target-dir target/mpi --lib --bins
fi

# the default suite; then the #[ignore]d groups this machine can run, by name
# (`-- --ignored` makes a missing prerequisite a failure, never a pass)
cargo test --release --locked
skipped=()
# "file::test" of each #[ignore]d test the arguments select (cargo args -- filter)
ignored_tests() {
    cargo test --release --locked "$@" --ignored --list 2>&1 | awk '
        /Running / { f = $0; sub(/.*Running (unittests )?/, "", f); sub(/\.rs.*/, "", f); sub(/.*\//, "", f) }
        /: test$/ { sub(/: test$/, ""); sub(/^needs_data::/, ""); print f "::" $0 }'
}
# "n tests need WHAT (file::test, ...)": the SKIPPED line of a group
skip() {
    local what=$1 list
    shift
    list=$(ignored_tests "$@") || list="the list failed: cargo test $* --ignored --list"
    echo "SKIPPED: $(grep -c . <<<"$list") tests need $what ($(paste -sd, - <<<"$list" | sed 's/,/, /g'))"
}
# MPI (tests/mpi.rs): OpenMPI and the mpi build are prerequisites above
if required mpi && ! { need mpicc && need mpirun; }; then
    missing_required mpi "mpicc or mpirun is not on PATH"
fi
cargo test --release --locked --test mpi -- --ignored
# the real data (modules `needs_data` of tests/{io,catalogue,cli,fields,real_data}.rs)
if [ -d ../shared/data ]; then
    cargo test --release --locked --tests -- --ignored needs_data::
else
    required data && missing_required data "../shared/data is not there ($(pwd)/../shared/data)"
    skip ../shared/data --tests -- needs_data::
    skipped+=("data tests (no ../shared/data)")
fi
# NVRTC through the Rust CUDA module (src/backend/cuda/tests.rs), with the
# libnvrtc scripts/check_kernels.py found above (the pip wheel's folder)
nvrtc_dir=$(python3 -c 'import os, sys; sys.path.insert(0, "scripts"); import check_kernels as k
lib, path = k.load_nvrtc(); print(os.path.dirname(path) if lib else "")')
LD_LIBRARY_PATH="${nvrtc_dir:+$nvrtc_dir:}${LD_LIBRARY_PATH:-}" \
    cargo test --release --locked --lib nvrtc_compiles_every_kernel_file -- --ignored
# the PyTorch reference (tests/torch_reference.rs), where torch is importable
if "${LENSDIFF_TORCH_PYTHON:-python3}" -c 'import torch, numpy' >/dev/null 2>&1; then
    cargo test --release --locked --test torch_reference -- --ignored
else
    required torch && missing_required torch "${LENSDIFF_TORCH_PYTHON:-python3} cannot import torch and numpy"
    skip "python3 with torch and numpy" --test torch_reference --
    skipped+=("torch reference tests (torch not importable)")
fi
required gpu && missing_required gpu "this script runs no GPU tests (bench/gpu_check.sh runs them on a GPU host)"
echo "SKIPPED: GPU tests (no GPU here; bench/gpu_check.sh runs them)"
skipped+=("GPU tests (no GPU here)")
if [ ${#skipped[@]} -gt 0 ]; then
    summary=$(printf '%s; ' "${skipped[@]}")
    echo "test.sh: passed; not run: ${summary%; }"
fi
