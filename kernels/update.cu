// kernels/update.cu: the sampler updates that are not one expression per
// element (per-chain step sizes, two outputs, broadcast start maps), twins of
// the loops of src/sampler/integrators.rs and src/sampler/hmc.rs.
//
// uses: common.cuh
//
// Maps are f32 batches `[chains][n]`. Scalar coefficients are passed already
// rounded to f32 exactly as the CPU rounds them (e.g. `a = dt as f32`,
// `b = dt.sqrt() as f32`); each kernel then does the IEEE f32 operations of its
// twin in the same order, never fused (common.cuh), so it reproduces the CPU
// values bitwise for the same inputs. Distinct pointer arguments must not
// alias; the updated array is a single in/out pointer.
//
// The updates that are one expression per element (Euler–Maruyama, Langevin
// refinement, churn noise, Heun correction, momentum half step) are rows of the
// elementwise table (src/backend/elementwise.rs), generated into elementwise.cu.
//
// Launch shape: flat kernels (`len` = chains * n) use blockDim = 256,
// gridDim = ceil(len / 256) (1-D grid-stride); per-chain kernels (`n`,
// `chains`) use blockDim = (256, 1), gridDim = (ceil(n / 256), min(chains,
// 65535)) (2-D grid-stride). Any shape is correct.

// x + (a s + b z), the Rust `*x += a * s + b * z`.
__device__ __forceinline__ float axpby_update(float x, float a, float s, float b, float z) {
    return add_rn(x, add_rn(mul_rn(a, s), mul_rn(b, z)));
}

// ---------------------------------------------------------------- reverse SDE, refinement

// Mirrors the corrector loop of `euler_maruyama` with `Some((snr, m))`
// (predictor-corrector, Song et al. alg. 4), per chain c:
//   eps = 2 (snr |z_c| / |s_c|)², x_c += (eps as f32) s_c + (sqrt(2 eps) as f32) z_c,
// skipped for a chain whose score norm is not positive (`if sn > 0.0`, also
// false for NaN). |s_c| and |z_c| are the per-chain f64 Euclidean norms
// (`sn`, `zn` on the CPU: sqrt of the sum of (v as f64)², a reduction done
// before this kernel); eps and the two coefficients are computed here in f64
// exactly as on the CPU.
extern "C" __global__ void langevin_corrector_step(float* __restrict__ x,
                                                   const float* __restrict__ s,
                                                   const float* __restrict__ z,
                                                   const double* __restrict__ s_norm,
                                                   const double* __restrict__ z_norm, double snr,
                                                   u32 n, u32 chains) {
    LD_FOR_MAPS(c, chains) {
        const double sn = s_norm[c];
        if (!(sn > 0.0)) continue;
        const double r = div_rn(mul_rn(snr, z_norm[c]), sn);
        const double eps = mul_rn(2.0, mul_rn(r, r));
        const float a = to_f32(eps);
        const float b = to_f32(sqrt(mul_rn(2.0, eps)));
        const u64 base = c * n;
        LD_FOR_ELEMS(k, n) {
            const u64 i = base + k;
            x[i] = axpby_update(x[i], a, s[i], b, z[i]);
        }
    }
}

// ---------------------------------------------------------------- Heun / EDM

// Mirrors the Euler predictor of `edm` (both loops fused): d holds
// s(x, sh) on entry; d *= f with f = (-sh) as f32, so d = dx/dsigma; then
// xp = x + h d with h = (sn - sh) as f32. d is kept for `heun_corrector`.
extern "C" __global__ void heun_predictor(float* __restrict__ d, const float* __restrict__ x,
                                          float* __restrict__ xp, float f, float h, u64 len) {
    LD_FOR_1D(i, len) {
        const float di = mul_rn(d[i], f);
        d[i] = di;
        xp[i] = add_rn(x[i], mul_rn(h, di));
    }
}

// ---------------------------------------------------------------- HMC

// Mirrors the position step of the leapfrog loop of `hmc_transition`, with the
// `xprev = xk.clone()` before it fused in: xprev = x (skipped when xprev is
// null), then x += e v with v = p, or M^{-1} p with a metric
// (`spectral_scale`).
extern "C" __global__ void hmc_position_step(float* __restrict__ x, float* __restrict__ xprev,
                                             const float* __restrict__ v, float e, u64 len) {
    LD_FOR_1D(i, len) {
        const float xi = x[i];
        if (xprev) xprev[i] = xi;
        x[i] = add_rn(xi, mul_rn(e, v[i]));
    }
}

// Mirrors the Metropolis update of `hmc_transition`: chain c takes the
// proposal, x_c = xk_c, where accept[c] != 0 (the test `u_c.ln() < log_ratio`,
// decided on the host from the per-chain energy sums).
extern "C" __global__ void hmc_accept(float* __restrict__ x, const float* __restrict__ xk,
                                      const u32* __restrict__ accept, u32 n, u32 chains) {
    LD_FOR_MAPS(c, chains) {
        if (accept[c] == 0) continue;
        const u64 base = c * n;
        LD_FOR_ELEMS(k, n) { x[base + k] = xk[base + k]; }
    }
}

// ---------------------------------------------------------------- initial draws

// Mirrors the start of `annealed` (src/sampler/hmc.rs) when the model has a
// start map: x_c = start + s x_c for every chain c, with x_c ~ N(0, 1) on
// entry, start the Kaiser–Squires map (broadcast) and s = sigma_0 as f32.
extern "C" __global__ void hmc_start_from_map(float* __restrict__ x,
                                              const float* __restrict__ start, float s, u32 n,
                                              u32 chains) {
    LD_FOR_MAPS(c, chains) {
        const u64 base = c * n;
        LD_FOR_ELEMS(k, n) { x[base + k] = add_rn(start[k], mul_rn(s, x[base + k])); }
    }
}
