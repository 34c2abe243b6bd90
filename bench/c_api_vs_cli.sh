#!/usr/bin/env bash
# The learned-prior posterior sample time through the C ABI (the compiled C
# example c_examples/lensdiff_learned.c) against `lensdiff sample --model` on
# the same problem: the built-in demo model, N x N pixels of 0.5', a
# log-normal field (seed 7) and its shear with uniform noise 0.05, 4 chains
# in batches of 2, 12 levels, seed 3. Runs alternate; both report the sampler's
# own time (lensdiff_sampler_stats and summary.json's "seconds"), so loading
# and writing files are not counted on either side. The posterior means of the
# two are checked to be bitwise identical (the same problem and the same
# computation), then the medians and their ratio are printed.
#
#   bash bench/c_api_vs_cli.sh [N] [REPS]      (default 128 and 7)
#
# Needs what tests/c_examples.rs needs (cc, make, pkg-config, gfortran) and
# python3 (standard library only). Set LENSDIFF_BENCH_NO_BUILD=1 to use
# the release build already in target/.
set -euo pipefail
N=${1:-128}
REPS=${2:-7}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/lensdiff-c-api-vs-cli.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cd "$ROOT"
if [ "${LENSDIFF_BENCH_NO_BUILD:-0}" != 1 ]; then
    cargo build --release --locked --lib --bins >&2
fi
LENSDIFF_INSTALL_NO_BUILD=1 bash scripts/install.sh "$WORK/prefix" >/dev/null
make -s -C c_examples PREFIX="$WORK/prefix" BUILD="$WORK/build" learned >&2
C_EXE="$WORK/build/shared/lensdiff_learned"
CLI="$ROOT/target/release/lensdiff"
MODEL="$ROOT/models/demo-lognormal-hybrid.safetensors"

# the same data for the CLI: sigma_e / sqrt(n_gal A_pix) = 0.26 / sqrt(108.16 * 0.25) = 0.05
"$CLI" simulate --field lognormal --lambda 0.03 --size "$N" --pixel-arcmin 0.5 --seed 7 \
    --sigma-e 0.26 --n-gal 108.16 --out-prefix "$WORK/sim" --format npy >&2

c_times=() cli_times=()
for r in $(seq 1 "$REPS"); do
    mkdir -p "$WORK/c" "$WORK/cli"
    line=$("$C_EXE" "$WORK/c" "$N" | grep 'sampler: NFE')
    c_times+=("$(echo "$line" | sed -E 's/.* per chain, ([0-9.]+) s.*/\1/')")
    "$CLI" sample --e1 "$WORK/sim_e1.npy" --e2 "$WORK/sim_e2.npy" --pixel-arcmin 0.5 \
        --sigma 0.05 --model "$MODEL" --levels 12 --chains 4 --batch 2 --seed 3 \
        --format npy --out "$WORK/cli" >/dev/null 2>&1
    cli_times+=("$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seconds"])' \
        "$WORK/cli/summary.json")")
    echo "run $r: C ABI ${c_times[-1]} s, CLI ${cli_times[-1]} s" >&2
done

python3 - "$WORK" "$N" "${c_times[*]}" "${cli_times[*]}" <<'PY'
import ast, os, platform, statistics, struct, sys
work, n = sys.argv[1], int(sys.argv[2])


def raw(path):
    return open(path, "rb").read()


def npy_f32(path):
    """The data bytes of a little-endian float32 C-order .npy file."""
    b = raw(path)
    assert b[:6] == b"\x93NUMPY", path
    hlen, start = (struct.unpack("<H", b[8:10])[0], 10) if b[6] == 1 else (struct.unpack("<I", b[8:12])[0], 12)
    head = ast.literal_eval(b[start:start + hlen].decode("latin1"))
    assert head["descr"] == "<f4" and not head["fortran_order"], (path, head)
    return b[start + hlen:]


c = [float(x) for x in sys.argv[3].split()]
cli = [float(x) for x in sys.argv[4].split()]
same_truth = raw(f"{work}/c/truth.f32") == npy_f32(f"{work}/sim_kappa.npy")
same_mean = raw(f"{work}/c/mean.f32") == npy_f32(f"{work}/cli/mean.npy")
if not (same_truth and same_mean):
    sys.exit(f"not the same problem: truth equal {same_truth}, posterior mean equal {same_mean}")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
threads = os.environ.get("RAYON_NUM_THREADS", str(os.cpu_count()))
mc, ml = statistics.median(c), statistics.median(cli)
print(f"{n}x{n} at 0.5', demo model, 4 chains, 12 levels, {len(c)} runs each; {cpu}, {threads} threads")
print("truth and posterior mean bitwise identical (same problem, same computation)")
print(f"C ABI (lensdiff_learned.c): median {mc:.3f} s  (min {min(c):.3f}, max {max(c):.3f})")
print(f"CLI (lensdiff sample):      median {ml:.3f} s  (min {min(cli):.3f}, max {max(cli):.3f})")
print(f"C ABI / CLI = {mc / ml:.3f}")
PY
