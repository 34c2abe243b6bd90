"""pyccl's time for the call `cargo bench --bench cosmology` times (BENCHMARKS.md):
one cosmology -> convergence-like C_ell at 128 log-spaced ells in [10, 10000],
Eisenstein-Hu + halofit + Limber, for one source bin (the sbi_lens 128^2 n(z))
and for 5 LSST-Y10 tomographic bins (15 spectra), with a new cosmology per call.

Run in a side environment (pip install pyccl numpy): python3 bench/ccl_cl_timing.py
pyccl is a reference here, never a run-time need of lensdiff.
"""
import time

import numpy as np
import pyccl as ccl
from scipy.special import erf

ELLS = np.logspace(1, 4, 128)
Z = np.linspace(0.0, 10.0, 1024)


def smail(z, a, b, z0, z_max):
    n = z**a * np.exp(-((z / z0) ** b))
    n[(z <= 0) | (z > z_max)] = 0.0
    return n


def bins(n, nbins, sigma_z):
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * np.diff(Z) * (n[1:] + n[:-1]))])
    edges = np.interp(np.linspace(0, cdf[-1], nbins + 1), cdf, Z)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        s = np.sqrt(2.0) * sigma_z * (1.0 + Z)
        out.append(0.5 * n * (erf((hi - Z) / s) - erf((lo - Z) / s)))
    return out


def one_call(s8, nzs):
    c = ccl.Cosmology(Omega_c=0.25, Omega_b=0.049, h=0.67, n_s=0.96, sigma8=s8,
                      transfer_function="eisenstein_hu", matter_power_spectrum="halofit")
    tr = [ccl.WeakLensingTracer(c, dndz=(Z, nz)) for nz in nzs]
    return [ccl.angular_cl(c, tr[i], tr[j], ELLS) for i in range(len(tr)) for j in range(i, len(tr))]


for what, nzs in [("1 bin", bins(smail(Z, 0.5, 2.0, 1.0, 10.0), 1, 0.05)),
                  ("5 bins", bins(smail(Z, 2.0, 0.68, 0.11, 3.5), 5, 0.05))]:
    times = []
    for rep in range(15):
        t = time.perf_counter()
        one_call(0.7 + 0.2 * rep / 15, nzs)
        times.append(time.perf_counter() - t)
    times.sort()
    print(f"pyccl {ccl.__version__}: cosmology -> C_ell, {what}, 128 ells: "
          f"median {1e3 * times[len(times) // 2]:.1f} ms, min {1e3 * times[0]:.1f} ms")
