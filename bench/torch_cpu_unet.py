#!/usr/bin/env python3
"""The U-Net on the CPU, lensdiff against PyTorch, side by side (issue #16).

Builds lensdiff's networks in PyTorch from ``tools/torch_reference.py`` (the
module the parity tests use: the same layers, the same EDM preconditioning,
float32 here) and times, per case:

* ``infer``: the denoiser's forward pass ``D(x; sigma)`` (no autograd) and the
  forward pass plus the input vector-Jacobian product ``J_D(x)^T v`` (what
  likelihood guidance needs), in ms per map;
* ``train``: one training step on ``batch`` random crops: noise levels
  ``ln sigma ~ N(-1.2, 1.2^2) + ln sigma_d``, the EDM loss, backward to the
  weights, gradient clipping at norm 1, Adam and an EMA update, in ms per step
  (``lensdiff train`` also draws the crops and augments them).

PyTorch runs in three modes: ``eager`` (NCHW), ``channels_last`` (NHWC
activations and weights, oneDNN's preferred layout) and ``compile``
(``torch.compile`` of the channels-last model; skipped with a note if it
fails). With ``--lensdiff BIN`` (the ``nn`` bench binary, see
``bench/nn_vs_torch.sh``) each case runs lensdiff right after PyTorch, one at
a time, so both see the same machine state. Each number is the median of
``--reps`` timed runs after one warm-up.

Floating-point operations per map come from PyTorch's FLOP counter
(``torch.utils.flop_counter``, convolutions and matrix products; the
input-VJP pass counts the backward-data convolutions as well).

Output: one JSON line per measurement on stdout; ``--markdown FILE`` writes
the table that BENCHMARKS.md quotes (ratios lensdiff / best PyTorch mode).

PyTorch is a bench-only tool here, in a side environment; lensdiff never
needs it.
"""

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from torch_reference import LensdiffDenoiser  # noqa: E402

# the presets of src/nn/unet.rs (UNetConfig::demo, remy_2023, uresnet18)
PRESETS = {
    "demo": dict(channels=[16, 32], blocks=1, groups=4, embed_freqs=8, embed_dim=32,
                 padding="periodic", joint_params=0),
    "remy_2023": dict(channels=[32, 64, 128, 176], blocks=2, groups=8, embed_freqs=16,
                      embed_dim=128, padding="periodic", joint_params=0),
    "uresnet18": dict(channels=[32, 64, 128, 128], blocks=2, groups=8, embed_freqs=16,
                      embed_dim=128, padding="periodic", joint_params=0,
                      strides=[2, 2, 2, 1], in_kernel=7, out_kernel=5),
}
SIGMA_DATA = 0.02

DEFAULT_CASES = [
    "infer:demo:360:1", "infer:demo:360:4", "infer:remy_2023:360:1", "infer:remy_2023:360:4",
    "infer:uresnet18:360:1", "infer:uresnet18:360:4",
    "train:demo:32:16", "train:demo:64:16", "train:demo:128:8",
    "train:remy_2023:32:16", "train:remy_2023:64:16", "train:remy_2023:128:8",
]


def model(net, mode):
    torch.manual_seed(0)
    m = LensdiffDenoiser(PRESETS[net], kind="pure", sigma_data=SIGMA_DATA, pixel_arcmin=0.29)
    with torch.no_grad():  # random weights everywhere, as the Rust bench
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    m = m.float()
    if mode in ("channels_last", "compile"):
        m = m.to(memory_format=torch.channels_last)
    if mode == "compile":
        m = torch.compile(m)
    return m


def median_time(reps, f):
    f()  # warm-up (and compilation)
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def infer_case(net, side, batch, reps, mode):
    m = model(net, mode)
    g = torch.Generator().manual_seed(2)
    x = 0.02 * torch.randn(batch, side, side, generator=g)
    v = torch.randn(batch, side, side, generator=g)
    sigma = torch.full((batch,), 0.05)

    def fwd():
        with torch.inference_mode():
            m(x, sigma)

    def vjp():
        xr = x.clone().requires_grad_(True)
        (gx,) = torch.autograd.grad(m(xr, sigma), xr, v)
        return gx

    return 1e3 * median_time(reps, fwd) / batch, 1e3 * median_time(reps, vjp) / batch


def train_case(net, crop, batch, steps, mode):
    m = model(net, mode)
    opt = torch.optim.Adam(m.parameters(), lr=2e-4, betas=(0.9, 0.999), eps=1e-8)
    ema = [p.detach().clone() for p in m.parameters()]
    g = torch.Generator().manual_seed(3)
    data = 0.02 * torch.randn(2 * batch + 1, crop, crop, generator=g)

    def step():
        idx = torch.randint(0, data.shape[0], (batch,), generator=g)
        x = data[idx]
        sigma = SIGMA_DATA * torch.exp(-1.2 + 1.2 * torch.randn(batch, generator=g))
        n = torch.randn(x.shape, generator=g)
        d = m(x + sigma[:, None, None] * n, sigma)
        w = (sigma**2 + SIGMA_DATA**2) / (sigma * SIGMA_DATA) ** 2
        loss = (w[:, None, None] * (d - x) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema, m.parameters()):
                e.mul_(0.995).add_(p, alpha=0.005)

    return 1e3 * median_time(steps, step)


def flops_per_map(net, side, batch):
    """(forward, forward + input VJP) FLOPs per map from PyTorch's counter."""
    from torch.utils.flop_counter import FlopCounterMode

    m = model(net, "eager")
    x = 0.02 * torch.randn(batch, side, side)
    sigma = torch.full((batch,), 0.05)
    with FlopCounterMode(display=False) as fc:
        with torch.no_grad():
            m(x, sigma)
    fwd = fc.get_total_flops() / batch
    xr = x.clone().requires_grad_(True)
    for p in m.parameters():
        p.requires_grad_(False)
    with FlopCounterMode(display=False) as fc:
        m(xr, sigma).backward(torch.ones_like(x))
    return fwd, fc.get_total_flops() / batch


def lensdiff_case(binary, kind, net, side, batch, reps, threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run([binary, kind, net, str(side), str(batch), str(reps)], env=env,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", default=DEFAULT_CASES,
                    help="infer:NET:SIDE:BATCH or train:NET:CROP:BATCH (default: the issue's set)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5, help="timed runs per measurement (median)")
    ap.add_argument("--modes", nargs="+", default=["eager", "channels_last", "compile"])
    ap.add_argument("--lensdiff", metavar="BIN", help="the nn bench binary (cargo bench --bench nn)")
    ap.add_argument("--markdown", metavar="FILE", help="write the comparison table here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.peak = None
    if args.lensdiff:
        env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
        out = subprocess.run([args.lensdiff, "peak"], env=env, check=True,
                             capture_output=True, text=True).stdout
        peak = json.loads(out.strip().splitlines()[-1])
        print(json.dumps(peak), flush=True)
        args.peak = peak.get("gflops")
    rows = []
    for case in args.cases:
        kind, net, side, batch = case.split(":")
        side, batch = int(side), int(batch)
        row = dict(kind=kind, net=net, side=side, batch=batch, torch={})
        reps = args.reps if not (net == "remy_2023" and side >= 256) else max(3, args.reps // 2)
        if kind == "infer":
            row["flops"] = flops_per_map(net, side, batch)
        for mode in args.modes:
            try:
                if kind == "infer":
                    r = infer_case(net, side, batch, reps, mode)
                else:
                    r = train_case(net, side, batch, reps, mode)
            except Exception as e:  # torch.compile needs a working C++ toolchain
                print(f"# {case} {mode}: failed ({type(e).__name__}: {str(e)[:200]})",
                      file=sys.stderr)
                continue
            row["torch"][mode] = r
            print(json.dumps(dict(tool="torch", mode=mode, case=case, ms=r)), flush=True)
        if args.lensdiff:
            r = lensdiff_case(args.lensdiff, kind, net, side, batch, reps, args.threads)
            row["lensdiff"] = ((r["forward_ms_per_map"], r["vjp_ms_per_map"])
                               if kind == "infer" else r["step_ms"])
            print(json.dumps(r), flush=True)
        rows.append(row)
    if args.markdown:
        write_markdown(args, rows)


def write_markdown(args, rows):
    def fmt(v):
        return f"{v:.1f}" if v >= 10 else f"{v:.2f}"

    lines = [
        f"PyTorch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), "
        f"{args.threads} threads, {platform.processor() or platform.machine()}, "
        f"median of {args.reps} runs (max(3, {args.reps} // 2) for the Remy-size network at "
        "256² and larger); "
        "`best` is the fastest PyTorch mode, ratio = lensdiff / best (below 1: lensdiff faster).",
        "",
        "| case | op | eager | channels_last | compile | lensdiff | ratio | lensdiff GFLOP/s (of peak) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        name = f"{r['net']} {r['side']}², batch {r['batch']}"
        ops = ([("forward (ms/map)", 0), ("forward + input VJP (ms/map)", 1)]
               if r["kind"] == "infer" else [("training step (ms/step)", None)])
        for op, i in ops:
            t = {k: (v[i] if i is not None else v) for k, v in r["torch"].items()}
            cells = [fmt(t[m]) if m in t else "n/a" for m in ("eager", "channels_last", "compile")]
            ld = r.get("lensdiff")
            ld = None if ld is None else (ld[i] if i is not None else ld)
            best = min(t.values()) if t else math.nan
            ratio = f"{ld / best:.2f}" if ld is not None and t else "n/a"
            gflops = ""
            if ld is not None and i is not None:
                g = r['flops'][i] / (ld * 1e-3) / 1e9
                gflops = f"{g:.0f}" + (f" ({100 * g / args.peak:.0f}%)" if args.peak else "")
            lines.append(f"| {name} | {op} | " + " | ".join(cells)
                         + f" | {fmt(ld) if ld is not None else 'n/a'} | {ratio} | {gflops} |")
    train = [r for r in rows if r["kind"] == "train" and r["torch"] and r.get("lensdiff")]
    if train:
        lines.append("")
        lines.append("Training throughput, maps per second (batch / step time; a step is what "
                     "`lensdiff train` does per step, against the same PyTorch training loop): "
                     + "; ".join(f"{r['net']} {r['side']}², batch {r['batch']}: lensdiff "
                                 f"{1e3 * r['batch'] / r['lensdiff']:.0f}, PyTorch best "
                                 f"{1e3 * r['batch'] / min(r['torch'].values()):.0f}"
                                 for r in train) + ".")
    flops = {(r["net"], r["side"]): r["flops"] for r in rows if "flops" in r}
    if flops or args.peak:
        lines.append("")
    if args.peak:
        lines.append(f"- Peak: {args.peak:.0f} GFLOP/s, the {args.threads} threads' `f32` "
                     "fused multiply–add throughput as measured by `cargo bench --bench nn -- "
                     "peak` (12 independent chains of 16-lane FMAs per thread); the "
                     "percentages in the last column are of this peak.")
    for (net, side), f in flops.items():
        lines.append(f"- {net} {side}²: {f[0] / 1e9:.2f} GFLOP per map forward, "
                     f"{f[1] / 1e9:.2f} forward + input VJP (PyTorch's FLOP counter).")
    with open(args.markdown, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
