"""Baseline for BENCHMARKS.md: Kaiser-Squires forward + adjoint with numpy's
complex FFT (the lenspack formulation), at the sizes of `cargo bench --bench core`.

Run: python3 bench/ks_numpy.py   (needs numpy)
"""
import time

import numpy as np


def ks_forward_adjoint(kappa, p1, p2):
    k = np.fft.fft2(kappa)
    g1 = np.fft.ifft2(p1 * k).real
    g2 = np.fft.ifft2(p2 * k).real
    return np.fft.ifft2(p1 * np.fft.fft2(g1) + p2 * np.fft.fft2(g2)).real


for n in (360, 1024):
    k1, k2 = np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n))
    ksq = k1**2 + k2**2
    ksq[0, 0] = 1.0
    p1, p2 = (k1**2 - k2**2) / ksq, 2 * k1 * k2 / ksq
    kappa = np.random.default_rng(1).standard_normal((n, n)).astype(np.float32)
    reps = 50 if n == 360 else 5
    ks_forward_adjoint(kappa, p1, p2)
    t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        ks_forward_adjoint(kappa, p1, p2)
        t.append(time.perf_counter() - t0)
    print(f"numpy ks_forward_adjoint {n}x{n}: median {1e3 * np.median(t):.2f} ms over {reps} runs")
