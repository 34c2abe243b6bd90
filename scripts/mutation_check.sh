#!/usr/bin/env bash
# Mutation spot check (issue #18): break one sign, one normalisation and one
# RNG stream in turn, run a set of tests, and report which fail; each mutation
# is reverted before the next (and on exit). A mutation that no test catches
# is a hole in the suite. Results: docs/testing.md.
# Usage: bash scripts/mutation_check.sh   (about 10 minutes on 2 cores)
set -uo pipefail
cd "$(dirname "$0")/.."
backup=$(mktemp)
current=""
restore() { [ -n "$current" ] && cp "$backup" "$current"; current=""; }
trap restore EXIT INT TERM
tests=(--test conventions --test sampler_exact --test wiener --test fields --test calibration --lib)
run() {
    local name=$1 file=$2 from=$3 to=$4
    cp "$file" "$backup"
    current=$file
    python3 - "$file" "$from" "$to" <<'PY' || { echo "=== $name: pattern not found once in $2"; restore; return; }
import sys
p, a, b = sys.argv[1:4]
s = open(p).read()
if s.count(a) != 1:
    sys.exit(1)
open(p, "w").write(s.replace(a, b))
PY
    echo "=== $name: $file: '$from' -> '$to'"
    local out failed
    out=$(cargo test --release --locked --no-fail-fast "${tests[@]}" 2>&1)
    failed=$(grep -E '^test .* FAILED$' <<<"$out" | sed 's/^test //; s/ \.\.\. FAILED$//')
    if [ -n "$failed" ]; then
        echo "caught by $(grep -c . <<<"$failed") tests:"
        sed 's/^/  /' <<<"$failed"
    else
        echo "NOT CAUGHT"
    fi
    restore
}
run "sign of the gamma2 kernel" src/lensing.rs "        2.0 * k1 * k2 / ksq" "        -2.0 * k1 * k2 / ksq"
run "pixel power normalisation x1.1" src/spectrum.rs "            .map(|&l| self.eval(l) * inv_area)" "            .map(|&l| self.eval(l) * inv_area * 1.1)"
run "RNG: every chain draws chain 0's stream" src/rng.rs "            chain: chain as u32," "            chain: 0,"
