#!/usr/bin/env bash
# The U-Net on the CPU, lensdiff against PyTorch in the same run (issue #16):
# builds the nn bench, runs bench/torch_cpu_unet.py with it (each case in
# PyTorch eager, channels_last and torch.compile, then in lensdiff, one at a
# time), writes the table (and the raw JSON lines) to the ignored out folder
# beside this script and puts it into
# BENCHMARKS.md between the nn-vs-torch markers, with the date and machine.
# Usage: bash bench/nn_vs_torch.sh [PYTHON (with torch; default python3)] [driver options...]
# e.g.   bash bench/nn_vs_torch.sh /work/torch_venv/bin/python --reps 5
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-python3}
shift || true
threads=${RAYON_NUM_THREADS:-2}
cargo bench --locked --bench nn --no-run
bin=$(ls -t target/release/deps/nn-* | grep -v '\.d$' | head -1)
mkdir -p bench/out
# torch.compile's worker processes otherwise stay alive after compiling and
# can compete with the lensdiff run that follows; compile in-process
export TORCHINDUCTOR_COMPILE_THREADS=1
"$py" bench/torch_cpu_unet.py --threads "$threads" --lensdiff "$bin" \
    --markdown bench/out/nn_vs_torch.md "$@" | tee bench/out/nn_vs_torch.jsonl
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
flags=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512_bf16|fma)$' | tr '\n' ' ')
{
    echo "<!-- nn-vs-torch:begin (written by bench/nn_vs_torch.sh) -->"
    echo "Measured $(date -u +%Y-%m-%d) on ${cpu} (${flags% }), $(nproc) cores; command:"
    echo "\`bash bench/nn_vs_torch.sh PYTHON $*\`."
    echo
    cat bench/out/nn_vs_torch.md
    echo "<!-- nn-vs-torch:end -->"
} > bench/out/nn_vs_torch.section
python3 - <<'PY'
import re
b = open("BENCHMARKS.md").read()
sec = open("bench/out/nn_vs_torch.section").read().rstrip("\n")
pat = re.compile(r"<!-- nn-vs-torch:begin.*?<!-- nn-vs-torch:end -->", re.S)
if not pat.search(b):
    raise SystemExit("BENCHMARKS.md has no nn-vs-torch markers")
open("BENCHMARKS.md", "w").write(pat.sub(lambda _: sec, b))
PY
echo "BENCHMARKS.md updated (bench/out/nn_vs_torch.md)"
