// kernels/spectral.cu: Fourier-space elementwise kernels on R2C half spectra,
// batched over maps: twins of the multiplier loops between the forward and the
// inverse transforms in src/lensing.rs, src/prior/gaussian.rs,
// src/sampler/hmc.rs and src/sampler/posterior.rs.
//
// uses: common.cuh
//
// Layout: a half spectrum is `[ny][nx/2 + 1]` complex values (`spec_len =
// ny * (nx/2 + 1)`), interleaved (re, im) pairs (`cf32` / `cf64`), the layout
// of cuFFT's 2-D R2C output with dims {ny, nx} and of `Fft2::forward`
// (src/fft.rs). A batch is `[maps][spec_len]`; the real multipliers (`p1`,
// `p2`, powers, gains) are one `[spec_len]` array broadcast over the maps.
// Distinct pointer arguments must not alias (they are `__restrict__`); a
// kernel that works in place says so and takes a single in/out pointer.
//
// Launch shape (all kernels): blockDim = (256, 1),
// gridDim = (ceil(spec_len / 256), min(maps, 65535)); grid-stride in both
// dimensions, any shape is correct.
//
// Normalisation (src/fft.rs): `Fft2::forward` is unnormalised like cuFFT's
// R2C; `Fft2::inverse` is the unnormalised C2R followed by `*m = *v * scale`
// on every output pixel with `scale = 1 / N` (N = nx ny, rounded to T).
// cuFFT's C2R is unnormalised, so the 1/N goes in the elementwise `scale`
// kernel (src/backend/elementwise.rs), launched on the map after each C2R: that is
// the CPU order of operations. (For a power-of-two N, folding 1/N into the
// multiplier instead is exact, but it is not what the CPU does for other N.)
//
// Two differences from `Fft2::inverse` that the host must respect:
// - the CPU inverse keeps only the real part of the self-mirrored modes (it
//   zeroes Im on the kx = 0 and Nyquist columns after the y pass); cuFFT's C2R
//   assumes a Hermitian input. The multipliers here are real and even under
//   the mirror (`ks_multipliers` zeroes p2 where it would be odd; powers are
//   even), so a spectrum that came out of an R2C stays Hermitian up to
//   rounding and the two agree to rounding.
// - the CPU inverse reads its spectrum only; cuFFT's multi-dimensional C2R
//   overwrites its input. `KaiserSquires::forward_one` reuses kappa_hat for
//   both components; `ks_forward_multiply` therefore writes g1_hat and g2_hat
//   in one pass before either inverse transform.

// v * p for a complex v and a real p: num_complex's `Complex<T> * T`,
// (re p, im p).
template <typename C, typename R>
__device__ __forceinline__ C cscale(C v, R p) {
    C o;
    o.re = mul_rn(v.re, p);
    o.im = mul_rn(v.im, p);
    return o;
}

// a * p + b * q for complex a, b and real p, q: `a * p + b * q` in Rust
// (two real scalings, then the complex sum), never fused.
template <typename C, typename R>
__device__ __forceinline__ C cscale2_add(C a, R p, C b, R q) {
    C o;
    o.re = add_rn(mul_rn(a.re, p), mul_rn(b.re, q));
    o.im = add_rn(mul_rn(a.im, p), mul_rn(b.im, q));
    return o;
}

// a * p - b * q, as `cscale2_add`.
template <typename C, typename R>
__device__ __forceinline__ C cscale2_sub(C a, R p, C b, R q) {
    C o;
    o.re = sub_rn(mul_rn(a.re, p), mul_rn(b.re, q));
    o.im = sub_rn(mul_rn(a.im, p), mul_rn(b.im, q));
    return o;
}

template <typename C, typename R>
__device__ __forceinline__ void ks_forward_multiply_impl(const C* __restrict__ kappa_hat,
                                                         const R* __restrict__ p1,
                                                         const R* __restrict__ p2,
                                                         C* __restrict__ g1_hat,
                                                         C* __restrict__ g2_hat, u32 spec_len,
                                                         u32 maps) {
    LD_FOR_MAPS(m, maps) {
        LD_FOR_ELEMS(k, spec_len) {
            const u64 i = m * spec_len + k;
            const C v = kappa_hat[i];
            g1_hat[i] = cscale(v, p1[k]);
            g2_hat[i] = cscale(v, p2[k]);
        }
    }
}

template <typename C, typename R>
__device__ __forceinline__ void ks_adjoint_multiply_impl(const C* __restrict__ g1_hat,
                                                         const C* __restrict__ g2_hat,
                                                         const R* __restrict__ p1,
                                                         const R* __restrict__ p2,
                                                         C* __restrict__ kappa_hat, u32 spec_len,
                                                         u32 maps) {
    LD_FOR_MAPS(m, maps) {
        LD_FOR_ELEMS(k, spec_len) {
            const u64 i = m * spec_len + k;
            kappa_hat[i] = cscale2_add(g1_hat[i], p1[k], g2_hat[i], p2[k]);
        }
    }
}

template <typename C, typename R>
__device__ __forceinline__ void ks_inverse_eb_multiply_impl(
    const C* __restrict__ g1_hat, const C* __restrict__ g2_hat, const R* __restrict__ p1,
    const R* __restrict__ p2, C* __restrict__ e_hat, C* __restrict__ b_hat, u32 spec_len,
    u32 maps) {
    LD_FOR_MAPS(m, maps) {
        LD_FOR_ELEMS(k, spec_len) {
            const u64 i = m * spec_len + k;
            const C s1 = g1_hat[i];
            const C s2 = g2_hat[i];
            e_hat[i] = cscale2_add(s1, p1[k], s2, p2[k]);
            b_hat[i] = cscale2_sub(s2, p1[k], s1, p2[k]);
        }
    }
}

template <typename C, typename R>
__device__ __forceinline__ void spectrum_scale_impl(C* __restrict__ spec, const R* __restrict__ f,
                                                    u32 spec_len, u32 maps) {
    LD_FOR_MAPS(m, maps) {
        LD_FOR_ELEMS(k, spec_len) {
            const u64 i = m * spec_len + k;
            spec[i] = cscale(spec[i], f[k]);
        }
    }
}

// ---------------------------------------------------------------- Kaiser–Squires

// Mirrors `KaiserSquires::forward_one` (src/lensing.rs), f32 plan
// (`KaiserSquires<f32>`): g1_hat = p1 kappa_hat, g2_hat = p2 kappa_hat, with
// the real multipliers `KaiserSquires::p1()` / `p2()` computed on the CPU
// (`ks_multipliers`: p(0) = 0, the Nyquist handling of p2). Inverse C2R of
// each output + the `1/N` scale give gamma1, gamma2.
extern "C" __global__ void ks_forward_multiply(const cf32* __restrict__ kappa_hat,
                                               const float* __restrict__ p1,
                                               const float* __restrict__ p2,
                                               cf32* __restrict__ g1_hat,
                                               cf32* __restrict__ g2_hat, u32 spec_len,
                                               u32 maps) {
    ks_forward_multiply_impl(kappa_hat, p1, p2, g1_hat, g2_hat, spec_len, maps);
}

// Mirrors `KaiserSquires::forward_one` for the f64 plan (`KaiserSquires<f64>`,
// the `ks64` of the spectral guidance in src/sampler/posterior.rs): as
// `ks_forward_multiply` in f64.
extern "C" __global__ void ks_forward_multiply_f64(const cf64* __restrict__ kappa_hat,
                                                   const double* __restrict__ p1,
                                                   const double* __restrict__ p2,
                                                   cf64* __restrict__ g1_hat,
                                                   cf64* __restrict__ g2_hat, u32 spec_len,
                                                   u32 maps) {
    ks_forward_multiply_impl(kappa_hat, p1, p2, g1_hat, g2_hat, spec_len, maps);
}

// Mirrors `KaiserSquires::adjoint` (its `combine_one` without B), f32:
// kappa_hat = p1 g1_hat + p2 g2_hat (the E-mode inversion; the multipliers are
// real and even, so this is the adjoint). Inverse C2R + the `1/N` scale
// give P^T (gamma1, gamma2).
extern "C" __global__ void ks_adjoint_multiply(const cf32* __restrict__ g1_hat,
                                               const cf32* __restrict__ g2_hat,
                                               const float* __restrict__ p1,
                                               const float* __restrict__ p2,
                                               cf32* __restrict__ kappa_hat, u32 spec_len,
                                               u32 maps) {
    ks_adjoint_multiply_impl(g1_hat, g2_hat, p1, p2, kappa_hat, spec_len, maps);
}

// Mirrors `KaiserSquires::adjoint` for the f64 plan: as `ks_adjoint_multiply`.
extern "C" __global__ void ks_adjoint_multiply_f64(const cf64* __restrict__ g1_hat,
                                                   const cf64* __restrict__ g2_hat,
                                                   const double* __restrict__ p1,
                                                   const double* __restrict__ p2,
                                                   cf64* __restrict__ kappa_hat, u32 spec_len,
                                                   u32 maps) {
    ks_adjoint_multiply_impl(g1_hat, g2_hat, p1, p2, kappa_hat, spec_len, maps);
}

// Mirrors `KaiserSquires::inverse_eb` (`combine_one` with B), f32:
// e_hat = p1 g1_hat + p2 g2_hat, b_hat = p1 g2_hat - p2 g1_hat (the
// Kaiser–Squires start map of annealed HMC, `ks_map` in src/sampler/posterior.rs).
extern "C" __global__ void ks_inverse_eb_multiply(const cf32* __restrict__ g1_hat,
                                                  const cf32* __restrict__ g2_hat,
                                                  const float* __restrict__ p1,
                                                  const float* __restrict__ p2,
                                                  cf32* __restrict__ e_hat,
                                                  cf32* __restrict__ b_hat, u32 spec_len,
                                                  u32 maps) {
    ks_inverse_eb_multiply_impl(g1_hat, g2_hat, p1, p2, e_hat, b_hat, spec_len, maps);
}

// ---------------------------------------------------------------- priors, metrics

// Mirrors `GaussianPrior::filter` (src/prior/gaussian.rs), the Gaussian
// denoiser and its VJP: x_hat *= S / (S + sigma²), with the gain computed in
// f64 from the f64 power S and rounded to f32 as on the CPU
// (`(s / (s + s2)) as f32`), then applied to both parts. `sigma2` is the host's
// `sigma * sigma`. S(0) = 0, so the mean is removed (sigma2 = 0 with S = 0
// gives NaN there, as on the CPU).
extern "C" __global__ void gaussian_denoise_gain(cf32* __restrict__ x_hat,
                                                 const double* __restrict__ power, double sigma2,
                                                 u32 spec_len, u32 maps) {
    LD_FOR_MAPS(m, maps) {
        LD_FOR_ELEMS(k, spec_len) {
            const u64 i = m * spec_len + k;
            const double s = power[k];
            const float g = to_f32(div_rn(s, add_rn(s, sigma2)));
            x_hat[i] = cscale(x_hat[i], g);
        }
    }
}

// x_hat *= f per mode, f32 and f64 (`Backend::spectral_scale`): `Metric::apply`
// (src/sampler/hmc.rs, the Fourier-diagonal mass matrix of preconditioned HMC and
// Langevin refinement, with `sqrt_mass`, `inv_mass` or `inv_mass.sqrt()` made on
// the host) and the warm-start rescaling of the spectral guidance
// (src/sampler/guided.rs, f64).
extern "C" __global__ void spectral_scale(cf32* __restrict__ x_hat, const float* __restrict__ f,
                                          u32 spec_len, u32 maps) {
    spectrum_scale_impl(x_hat, f, spec_len, maps);
}

extern "C" __global__ void spectral_scale_f64(cf64* __restrict__ x_hat,
                                              const double* __restrict__ f, u32 spec_len,
                                              u32 maps) {
    spectrum_scale_impl(x_hat, f, spec_len, maps);
}

// Mirrors the spectral loop of `diffused_prior_draw` (src/sampler/posterior.rs),
// the initial draw of the samplers with a Gaussian prior model:
// z_hat *= sqrt(S + sigma²), f64 (`sigma2` = the host's `sigma * sigma`).
extern "C" __global__ void diffused_prior_draw_multiply(cf64* __restrict__ z_hat,
                                                        const double* __restrict__ power,
                                                        double sigma2, u32 spec_len, u32 maps) {
    LD_FOR_MAPS(m, maps) {
        LD_FOR_ELEMS(k, spec_len) {
            const u64 i = m * spec_len + k;
            z_hat[i] = cscale(z_hat[i], sqrt(add_rn(power[k], sigma2)));
        }
    }
}

// ---------------------------------------------------------------- precision (real maps)
// These run on real maps `[maps][n]` (n = nx ny), flat: blockDim = 256,
// gridDim = ceil(len / 256) (1-D grid-stride, len = maps * n).

// Mirrors `m.iter().map(|&v| v as f64)`: the widening before every f64
// transform of an f32 map (`diffused_prior_draw` and the spectral
// guidance's `dm64`). Exact.
extern "C" __global__ void map_to_f64(const float* __restrict__ x, double* __restrict__ y,
                                      u64 len) {
    LD_FOR_1D(i, len) { y[i] = (double)x[i]; }
}

// Mirrors `*m = *y as f32`: the rounding after those f64 transforms (round to
// nearest).
extern "C" __global__ void map_to_f32(const double* __restrict__ x, float* __restrict__ y,
                                      u64 len) {
    LD_FOR_1D(i, len) { y[i] = to_f32(x[i]); }
}
