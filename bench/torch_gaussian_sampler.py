"""PyTorch speed baseline for lensdiff's GPU sampler with the Gaussian prior.

This is the same algorithm, number of function evaluations (NFE) and precision
as lensdiff's default Gaussian-prior sampler, written in batched PyTorch, so
that samples/s can be compared on the same GPU. It mirrors:

- src/sampler/integrators.rs `edm` without churn: Heun steps on the
  probability-flow ODE over the levels sigma_0 > ... > sigma_{L-1},
  ``d = -sh s(x, sh); xp = x + (sn - sh) d; d2 = -sn s(xp, sn);
  x += (sn - sh)(d + d2)/2``, so NFE = 2 (L - 1) per chain. The start is
  ``x = F^{-1}[sqrt(S + sigma_0^2) F z]``, z standard normal (done in float64).
- src/sampler/guided.rs, spectral guidance (the guided score on every
  backend): ``score = (D(x) - x)/sigma^2 + D(v)`` with
  the Gaussian denoiser ``D(x) = F^{-1}[S/(S + sigma^2) F x]`` (float32 maps,
  gain computed in float64) and the exact likelihood term (float64)
  ``v = P^T W (q - P y)``, ``q = gamma - P D(x)``, ``y = C^{1/2} u``,
  ``C = S sigma^2/(S + sigma^2)``.
- src/baselines/wiener.rs `GaussianSystem::solve`: u solves
  ``(I + C^{1/2} P^T W P C^{1/2}) u = C^{1/2} P^T W q`` by preconditioned CG
  with the Fourier preconditioner ``1/(1 + C w_bar)``, ``w_bar`` the mean
  weight over pixels and components, stopping at ``|r|/|b| < tol`` (at most
  max_inner iterations). Warm start: the chain's previous u, carried to the new
  level by ``F^{-1}[sqrt(C_prev/C_now) F u]`` (0 where C_now = 0), reset for
  every batch of chains.

FFTs: forward = unnormalised rfft2 over the last two axes, inverse = irfft2
(1/N), s = (ny, nx). P k = (F^{-1}[p1 F k], F^{-1}[p2 F k]) and
P^T (a1, a2) = F^{-1}[p1 F a1 + p2 F a2].

Chains are a leading batch dimension. The CG runs batched with per-chain alpha,
beta and residuals as tensors; a chain stops updating once its own residual is
below tol, so each chain does exactly the iterations it would do alone. The
only host syncs are one ``active.any()`` every --cg-check-every CG iterations
(default 1: every iteration) plus one at the start of each solve; iteration
counts and convergence failures stay on the device until a run ends.

Input: a directory written by ``lensdiff bench --export DIR`` (g1, g2, w1, w2,
power, p1, p2, levels .npy, config.json, optionally mean.npy and std.npy).
"""
import argparse
import json
import os
import time

import numpy as np
import torch


def dot(a, b):
    """Per-map inner product over the last two axes."""
    return (a * b).sum(dim=(-2, -1))


def col(c):
    """A per-chain scalar [B] broadcast against maps [B, ny, nx]."""
    return c[:, None, None]


class GaussianPosterior:
    """The spectral-guidance posterior score of the Gaussian prior, batched."""

    def __init__(self, d, tol, max_inner, check_every, device):
        f64 = dict(dtype=torch.float64, device=device)
        self.ny, self.nx = d["g1"].shape
        self.s = (self.ny, self.nx)
        self.S = torch.tensor(d["power"], **f64)
        self.S[0, 0] = 0.0  # the mean of kappa is fixed to zero (as lensdiff)
        self.p = torch.tensor(np.stack([d["p1"], d["p2"]]), **f64)[:, None]  # [2,1,ny,nk]
        self.w = torch.tensor(np.stack([d["w1"], d["w2"]]).astype(np.float64), **f64)[:, None]
        self.g = torch.tensor(np.stack([d["g1"], d["g2"]]).astype(np.float64), **f64)[:, None]
        self.wbar = float(self.w.sum()) / (2 * self.ny * self.nx)
        self.tol, self.max_inner, self.check_every = tol, max_inner, check_every
        self.device = device
        self.compiled = False
        self._pre, self._cg_update, self._cg_direction, self._post = (
            self.pre, self.cg_update, self.cg_direction, self.post)
        self.begin_batch(0)

    # -- compile ------------------------------------------------------------
    def enable_compile(self, mode):
        """torch.compile the score's building blocks (the CG loop stays in Python)."""
        if not hasattr(torch, "compile"):
            print("torch.compile not available in torch", torch.__version__, "- running eager")
            return False
        try:
            c = lambda f: torch.compile(f, mode=mode, dynamic=False)
            self._pre, self._cg_update, self._cg_direction, self._post = (
                c(self.pre), c(self.cg_update), c(self.cg_direction), c(self.post))
        except Exception as e:  # noqa: BLE001 - any failure means "run eager"
            print("torch.compile failed (%s) - running eager" % e)
            self.disable_compile()
            return False
        self.compiled = True
        return True

    def disable_compile(self):
        self._pre, self._cg_update, self._cg_direction, self._post = (
            self.pre, self.cg_update, self.cg_direction, self.post)
        self.compiled = False

    # -- operators ----------------------------------------------------------
    def rfft(self, x):
        return torch.fft.rfft2(x)

    def irfft(self, xh):
        return torch.fft.irfft2(xh, s=self.s)

    def fmul(self, x, f):
        """F^{-1}[f F x]."""
        return self.irfft(self.rfft(x) * f)

    def ks(self, y):
        """P y -> [2, B, ny, nx]."""
        return self.irfft(self.rfft(y)[None] * self.p)

    def ks_adj(self, a, f=None):
        """F^{-1}[(p1 F a1 + p2 F a2) f] for a = [2, B, ny, nx] (f = 1: P^T)."""
        t = (self.rfft(a) * self.p).sum(0)
        return self.irfft(t if f is None else t * f)

    def data_term(self, u, ps, sqrt_c):
        """C^{1/2} P^T W P C^{1/2} u (GaussianSystem::data_term)."""
        a = self.irfft(self.rfft(u)[None] * ps) * self.w
        return self.ks_adj(a, sqrt_c)

    def level(self, sigma):
        """Per-level Fourier multipliers (float64, the gain cast to float32)."""
        s2 = sigma * sigma
        S = self.S
        c = S * s2 / (S + s2)
        sqrt_c = c.sqrt()
        return dict(gain=(S / (S + s2)).float(), c=c, sqrt_c=sqrt_c, ps=self.p * sqrt_c,
                    pre=1.0 / (1.0 + c * self.wbar),
                    inv=torch.full((), 1.0 / s2, dtype=torch.float32, device=self.device))

    # -- the score, in compilable pieces --------------------------------------
    def pre(self, x, gain, sqrt_c):
        """D(x), q = gamma - P D(x), b = C^{1/2} P^T W q, |b|."""
        d = self.fmul(x, gain)
        q = self.g - self.ks(d.double())
        b = self.ks_adj(self.w * q, sqrt_c)
        return d, q, b, dot(b, b).sqrt()

    def cg_update(self, u, r, p, rz, res, active, its, bnorm, ps, sqrt_c):
        ap = self.data_term(p, ps, sqrt_c) + p
        alpha = torch.where(active, rz / dot(p, ap), torch.zeros_like(rz))
        u = u + col(alpha) * p
        r = r - col(alpha) * ap
        its = its + active.long()
        res = torch.where(active, dot(r, r).sqrt() / bnorm, res)
        return u, r, res, active & (res >= self.tol), its

    def cg_direction(self, r, p, rz, active, pre):
        z = self.fmul(r, pre)
        rz_new = dot(r, z)
        beta = torch.where(active, rz_new / rz, torch.zeros_like(rz))
        p = torch.where(col(active), z + col(beta) * p, p)
        return p, torch.where(active, rz_new, rz)

    def post(self, x, d, q, u, gain, sqrt_c, inv):
        """y = C^{1/2} u, v = P^T W (q - P y), score = (D(x) - x)/sigma^2 + D(v)."""
        y = self.fmul(u, sqrt_c)
        v = self.ks_adj(self.w * (q - self.ks(y))).float()
        return (d - x) * inv + self.fmul(v, gain)

    def begin_batch(self, b):
        self.warm = None  # (u, sigma) of the previous call
        z = torch.zeros(b, dtype=torch.long, device=self.device)
        self.iterations, self.unconverged = z, z.clone()

    def solve(self, b, bnorm, u, warm, lv):
        """Batched PCG on (I + A) u = b from u (GaussianSystem::solve)."""
        has_b = bnorm > 0
        bn = torch.where(has_b, bnorm, torch.ones_like(bnorm))
        u = torch.where(col(has_b), u, torch.zeros_like(u))
        r = b - (self.data_term(u, lv["ps"], lv["sqrt_c"]) + u) if warm else b
        res = torch.where(has_b, dot(r, r).sqrt() / bn, torch.zeros_like(bn))
        z = self.fmul(r, lv["pre"])
        p, rz = z, dot(r, z)
        active = has_b & (res >= self.tol)
        its = torch.zeros_like(self.iterations)
        if bool(active.any()):
            for k in range(1, self.max_inner + 1):
                u, r, res, active, its = self._cg_update(
                    u, r, p, rz, res, active, its, bn, lv["ps"], lv["sqrt_c"])
                if k == self.max_inner or (k % self.check_every == 0 and not bool(active.any())):
                    break
                p, rz = self._cg_direction(r, p, rz, active, lv["pre"])
        self.iterations += its
        self.unconverged += (has_b & (res >= self.tol)).long()
        return u

    def score(self, x, sigma):
        lv = self.level(sigma)
        d, q, b, bnorm = self._pre(x, lv["gain"], lv["sqrt_c"])
        if self.warm is None:
            u, warm = torch.zeros_like(b), False
        else:
            u, prev = self.warm
            warm = True
            if prev != sigma:
                s2 = prev * prev
                c_prev = self.S * s2 / (self.S + s2)
                scale = torch.where(lv["c"] > 0, (c_prev / lv["c"]).sqrt(), torch.zeros_like(c_prev))
                u = self.fmul(u, scale)
        u = self.solve(b, bnorm, u, warm, lv)
        self.warm = (u, sigma)
        return self._post(x, d, q, u, lv["gain"], lv["sqrt_c"], lv["inv"])

    def initial(self, sigma, z):
        """F^{-1}[sqrt(S + sigma^2) F z] in float64, cast to float32."""
        return self.fmul(z.double(), (self.S + sigma * sigma).sqrt()).float()


def f32(v):
    return float(np.float32(v))


def sample(model, levels, z):
    """Heun ODE (edm without churn) for the chains of z [B, ny, nx]; returns x."""
    model.begin_batch(z.shape[0])
    x = model.initial(levels[0], z)
    for i in range(len(levels) - 1):
        sh, sn = float(levels[i]), float(levels[i + 1])
        h, f, f2 = f32(sn - sh), f32(-sh), f32(-sn)
        d = model.score(x, sh) * f
        xp = x + h * d
        d2 = model.score(xp, sn)
        x = x + f32(0.5 * h) * (d + f2 * d2)
    return x


def load(dirname):
    d = {k: np.load(os.path.join(dirname, k + ".npy"))
         for k in ("g1", "g2", "w1", "w2", "power", "p1", "p2", "levels")}
    for k in ("mean", "std"):
        f = os.path.join(dirname, k + ".npy")
        d[k] = np.load(f) if os.path.exists(f) else None
    cfg = {}
    f = os.path.join(dirname, "config.json")
    if os.path.exists(f):
        with open(f) as fh:
            cfg = json.load(fh)
    ny, nx = d["g1"].shape
    assert d["power"].shape == (ny, nx // 2 + 1), "power must be [ny, nx//2+1]"
    return d, cfg


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main():
    ap = argparse.ArgumentParser(
        description="PyTorch baseline of lensdiff's Gaussian-prior sampler (Heun/EDM ODE with "
                    "spectral guidance and batched PCG): samples/s on the same problem.",
        epilog="Example: python bench/torch_gaussian_sampler.py /tmp/export --batch 1 32 "
               "--out torch.json")
    ap.add_argument("dir", help="directory from `lensdiff bench --export DIR`")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 32],
                    help="batch sizes (chains run together) to time (default: 1 32)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="timed runs per batch size; seconds = median (default 1)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="cuda, cuda:N or cpu (default: cuda if available)")
    ap.add_argument("--out", help="write the results as JSON to this file")
    ap.add_argument("--seed", type=int, default=0, help="seed of the white noise (default 0)")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the score's pieces (falls back to eager on failure)")
    ap.add_argument("--compile-mode", default="default",
                    help="torch.compile mode with --compile (default, reduce-overhead, ...)")
    ap.add_argument("--cg-check-every", type=int, default=1,
                    help="host sync to test for CG convergence every K iterations (default 1); "
                         "converged chains are frozen either way, so results do not change")
    ap.add_argument("--warmup-levels", type=int, default=4,
                    help="levels of the untimed warm-up run per batch size (default 4)")
    args = ap.parse_args()

    d, cfg = load(args.dir)
    device = torch.device(args.device)
    tol, max_inner = float(cfg.get("tol", 1e-4)), int(cfg.get("max_inner", 500))
    levels = [float(v) for v in d["levels"]]
    model = GaussianPosterior(d, tol, max_inner, max(1, args.cg_check_every), device)
    if args.compile:
        model.enable_compile(args.compile_mode)
    nfe = 2 * (len(levels) - 1)
    ny, nx = model.ny, model.nx
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print("torch %s on %s: %dx%d, %d levels, NFE %d, tol %g, compile %s"
          % (torch.__version__, name, ny, nx, len(levels), nfe, tol, model.compiled))

    results, last = [], None
    for bi, B in enumerate(args.batch):
        gen = torch.Generator().manual_seed(args.seed)
        z = torch.randn(B, ny, nx, generator=gen, dtype=torch.float32).to(device)
        warm_levels = levels[:max(2, args.warmup_levels)]
        try:
            sample(model, warm_levels, z)
        except Exception as e:  # noqa: BLE001
            if not model.compiled:
                raise
            print("compiled run failed (%s: %s) - running eager" % (type(e).__name__, e))
            model.disable_compile()
            sample(model, warm_levels, z)
        sync(device)
        times = []
        for _ in range(args.repeats):
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            sync(device)
            t0 = time.perf_counter()
            x = sample(model, levels, z)  # the white noise is already on the device
            sync(device)
            times.append(time.perf_counter() - t0)
        sec = float(np.median(times))
        its, bad = int(model.iterations.sum()), int(model.unconverged.sum())
        if bad:
            print("warning: %d inner solves did not reach tol in %d iterations" % (bad, max_inner))
        peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
        results.append(dict(batch=B, seconds=sec, seconds_all=times, samples_per_s=B / sec,
                            nfe=nfe, inner_per_eval=its / (B * nfe), unconverged=bad,
                            peak_mem_mb=peak))
        if last is None or B >= last.shape[0]:
            last = x.double().cpu().numpy()

    print("%6s %10s %12s %5s %14s %12s" % ("batch", "seconds", "samples/s", "NFE",
                                            "inner/eval", "peak MiB"))
    for r in results:
        print("%6d %10.3f %12.3f %5d %14.2f %12s" % (
            r["batch"], r["seconds"], r["samples_per_s"], r["nfe"], r["inner_per_eval"],
            "-" if r["peak_mem_mb"] is None else "%.1f" % r["peak_mem_mb"]))

    check = {"available": False}
    if d["mean"] is not None and d["std"] is not None:
        bt, bl = last.shape[0], int(cfg.get("chains", 32))
        mean_l, std_l = d["mean"].astype(np.float64), d["std"].astype(np.float64)
        obs = ((d["w1"] > 0) | (d["w2"] > 0)) & (std_l > 0)
        zs = (last.mean(0) - mean_l) / (std_l * np.sqrt(1.0 / bt + 1.0 / bl))
        rms = float(np.sqrt(np.mean(zs[obs] ** 2)))
        check = dict(available=True, chains_torch=bt, chains_lensdiff=bl,
                     observed_pixels=int(obs.sum()), rms_z=rms, passed=bool(rms < 1.5))
        if bt > 1:
            check["median_std_ratio"] = float(np.median(last.std(0, ddof=1)[obs] / std_l[obs]))
        print("cross-check vs lensdiff (B_torch %d, B_lensdiff %d): RMS z = %.3f over %d "
              "observed pixels -> %s" % (bt, bl, rms, obs.sum(), "PASS" if rms < 1.5 else "FAIL"))
    out = {"torch": torch.__version__, "device": name, "grid": [ny, nx], "levels": len(levels),
           "tol": tol, "compiled": model.compiled, "cg_check_every": model.check_every,
           "results": results, "check": check}
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=2)
        print("wrote", args.out)


if __name__ == "__main__":
    main()
