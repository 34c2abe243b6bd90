// kernels/update.cu: the elementwise update steps of the samplers, twins of
// the loops of src/sampler/integrators.rs and src/sampler/hmc.rs (and the
// no-power branch of `diffused_prior_draw`, src/sampler/posterior.rs).
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
// Launch shape: flat kernels (`len` = chains * n) use blockDim = 256,
// gridDim = ceil(len / 256) (1-D grid-stride); per-chain kernels (`n`,
// `chains`) use blockDim = (256, 1), gridDim = (ceil(n / 256), min(chains,
// 65535)) (2-D grid-stride). Any shape is correct.

// x + (a s + b z), the Rust `*x += a * s + b * z`.
__device__ __forceinline__ float axpby_update(float x, float a, float s, float b, float z) {
    return add_rn(x, add_rn(mul_rn(a, s), mul_rn(b, z)));
}

// ---------------------------------------------------------------- reverse SDE, refinement

// Mirrors two loops of `x += a * s + b * z` (elementwise x += a s + b z, the
// score step plus scaled noise), launched by two Backend methods:
// - `euler_maruyama_step`: the predictor loop of `euler_maruyama`
//   (src/sampler/integrators.rs), the reverse VE SDE step, with
//   dt = sigma_i² - sigma_{i+1}², a = dt as f32, b = sqrt(dt) as f32,
//   s = score(x, sigma_i), z ~ N(0, 1) (`fill_normal`, stream Sampler,
//   step 8 (i + 1));
// - `langevin_refine_step`: the Langevin branch of `refine`
//   (src/sampler/hmc.rs), the unadjusted Langevin step, with eps = step²,
//   a = eps as f32, b = sqrt(2 eps) as f32; with a metric, s and z are
//   M^{-1} s and M^{-1/2} z (`metric_apply_multiply` with `inv_mass` and
//   `inv_mass.sqrt()`).
extern "C" __global__ void axpby_step(float* __restrict__ x, const float* __restrict__ s,
                                      const float* __restrict__ z, float a, float b, u64 len) {
    LD_FOR_1D(i, len) { x[i] = axpby_update(x[i], a, s[i], b, z[i]); }
}

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

// Mirrors the churn loop of `edm` (src/sampler/integrators.rs, Karras et al.
// alg. 2): x += a z with a = (sqrt(sh² - si²) s_noise) as f32.
extern "C" __global__ void edm_churn_noise(float* __restrict__ x, const float* __restrict__ z,
                                           float a, u64 len) {
    LD_FOR_1D(i, len) { x[i] = add_rn(x[i], mul_rn(a, z[i])); }
}

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

// Mirrors the Heun corrector of `edm`: x += (0.5 h) (d + f2 d2) with d from
// `heun_predictor`, d2 = s(xp, sn) and f2 = (-sn) as f32 (the Rust
// `*x += 0.5 * h * (d + f2 * d2)`).
extern "C" __global__ void heun_corrector(float* __restrict__ x, const float* __restrict__ d,
                                          const float* __restrict__ d2, float h, float f2,
                                          u64 len) {
    const float half_h = mul_rn(0.5f, h);
    LD_FOR_1D(i, len) {
        x[i] = add_rn(x[i], mul_rn(half_h, add_rn(d[i], mul_rn(f2, d2[i]))));
    }
}

// ---------------------------------------------------------------- HMC

// Mirrors the two momentum half steps of the leapfrog loop of
// `hmc_transition` (src/sampler/hmc.rs): p += (0.5 e) s with e = eps as f32
// and s the score at the current position.
extern "C" __global__ void hmc_momentum_half_step(float* __restrict__ p,
                                                  const float* __restrict__ s, float e, u64 len) {
    const float half_e = mul_rn(0.5f, e);
    LD_FOR_1D(i, len) { p[i] = add_rn(p[i], mul_rn(half_e, s[i])); }
}

// Mirrors the position step of the leapfrog loop of `hmc_transition`, with the
// `xprev = xk.clone()` before it fused in: xprev = x (skipped when xprev is
// null), then x += e v with v = p, or M^{-1} p with a metric
// (`metric_apply_multiply`).
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
