#!/usr/bin/env bash
# Strong and weak scaling of MPI-distributed chains (BENCHMARKS.md).
# Needs the MPI build: cargo build --release --features mpi --target-dir target/mpi --bins
# Usage: bash bench/mpi_scaling.sh [SIZE]   (default 128: SIZE x SIZE maps at 1')
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE="${1:-128}"
LD=target/mpi/release/lensdiff
PLAIN=target/release/lensdiff
[[ -x "$LD" ]] || { echo "build first: cargo build --release --features mpi --target-dir target/mpi --bins" >&2; exit 1; }
[[ -x "$PLAIN" ]] || PLAIN="$LD"
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
"$PLAIN" simulate --size "$SIZE" --field lognormal --seed 5 --out-prefix "$T/sim" >/dev/null
run() { # ranks chains -> "compute comm wall"
    local n=$1 c=$2 t0 t1 line
    t0=$(date +%s.%N)
    line=$(RAYON_NUM_THREADS=1 mpirun --allow-run-as-root --oversubscribe -n "$n" "$LD" sample \
        --e1 "$T/sim_e1.fits" --e2 "$T/sim_e2.fits" --std1 "$T/sim_std1.fits" --std2 "$T/sim_std2.fits" \
        --chains "$c" --batch 8 --out "$T/run" --no-samples | grep "MPI ranks")
    t1=$(date +%s.%N)
    echo "$line" | sed -E 's/.*compute ([0-9.]+) s.*communication ([0-9.]+) s.*/\1 \2/' | tr '\n' ' '
    echo "$t1 - $t0" | bc
}
echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); ${SIZE}x${SIZE} maps, default sampler (Heun, 64 levels, spectral guidance), 1 thread per rank"
echo
echo "strong scaling: 32 chains in all (4 blocks of 8)"
echo "| ranks | compute (slowest rank, s) | communication (rank 0, s) | wall (s) | speed-up |"
echo "|---|---|---|---|---|"
base=""
for n in 1 2 3 4; do
    read -r comp comm wall <<<"$(run "$n" 32)"
    base=${base:-$wall}
    printf "| %d | %.2f | %.3f | %.2f | %.2f |\n" "$n" "$comp" "$comm" "$wall" "$(echo "$base / $wall" | bc -l)"
done
echo
echo "weak scaling: 8 chains per rank"
echo "| ranks | chains | compute (slowest rank, s) | communication (rank 0, s) | wall (s) | efficiency |"
echo "|---|---|---|---|---|---|"
base=""
for n in 1 2 3 4; do
    read -r comp comm wall <<<"$(run "$n" $((8 * n)))"
    base=${base:-$wall}
    printf "| %d | %d | %.2f | %.3f | %.2f | %.2f |\n" "$n" $((8 * n)) "$comp" "$comm" "$wall" "$(echo "$base / $wall" | bc -l)"
done
