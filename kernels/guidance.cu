// kernels/guidance.cu: the elementwise parts of the posterior scores, twins of
// the loops of `GuidedPosterior::score` and `GuidedPosterior::add_weighted_residual`
// (src/sampler/posterior.rs) and of `Prior::score` (src/prior/mod.rs).
//
// uses: common.cuh
//
// Batches are `[chains][n]` (n = nx ny pixels); the shear data (g1, g2) and
// the per-pixel weights (w1, w2: inverse noise variance, 0 = masked) are one
// `[n]` map broadcast over the chains. Each kernel does the IEEE operations of
// its twin in the same order, never fused (common.cuh). Distinct pointer
// arguments must not alias; an updated array is a single in/out pointer.
//
// Launch shape: broadcast kernels (`n`, `chains`) use blockDim = (256, 1),
// gridDim = (ceil(n / 256), min(chains, 65535)) (2-D grid-stride); flat kernels
// (`n` weights) use blockDim = 256, gridDim = ceil(n / 256). Any shape is correct.
//
// The score of each guidance scheme on the device, f32 unless noted
// (FFT = cuFFT R2C/C2R around the multipliers of spectral.cu):
// (the elementwise `prior_score`, `add` and `tweedie_score_combine` are rows of
// the elementwise table, src/backend/elementwise.rs):
//   annealed:  out = D(x) (prior); prior_score; annealed_weights (k = c sigma²);
//              P x (ks_forward_multiply); weighted_residual;
//              P^T (ks_adjoint_multiply); add (out += P^T r).
//   tweedie:   d = D(x); [annealed_weights, k = v if inflated]; P d;
//              weighted_residual; P^T -> v; jv = J_D^T v; tweedie_score_combine.
//   spectral:  d = D(x); map_to_f64; P d (f64); shear_residual_f64; CG solve
//              (not elementwise); P y (f64); weighted_residual_f64; P^T (f64);
//              map_to_f32 -> v; jv = J_D^T v; tweedie_score_combine.

// Mirrors the `inflate` closure of `GuidedPosterior::score` (annealed
// guidance, Remy et al. 2023): a = (w / (1 + k w)) as f32 computed in f64 from
// the f32 weight w (`self.w1 = weight as f64`), with k = c sigma² (the host's
// `c * s2`); 0 stays 0 (masked). The same kernel with k = v is the closure `f`
// of the inflated Tweedie guidance, w / (1 + v w). One map, not batched:
// launch 1-D over n.
extern "C" __global__ void annealed_weights(const float* __restrict__ w, double k,
                                            float* __restrict__ out, u32 n) {
    LD_FOR_1D(i, n) {
        const double wi = (double)w[i];
        out[i] = to_f32(div_rn(wi, add_rn(1.0, mul_rn(k, wi))));
    }
}

// Mirrors the residual loop of `GuidedPosterior::add_weighted_residual`:
// r1 = w1 (g1 - r1), r2 = w2 (g2 - r2) per chain, with r = P m on entry
// (the shear of the chain's map, from ks_forward_multiply) and the data and
// weights broadcast; masked pixels (w = 0) give 0 for finite inputs.
extern "C" __global__ void weighted_residual(float* __restrict__ r1, float* __restrict__ r2,
                                             const float* __restrict__ g1,
                                             const float* __restrict__ g2,
                                             const float* __restrict__ w1,
                                             const float* __restrict__ w2, u32 n, u32 chains) {
    LD_FOR_MAPS(c, chains) {
        const u64 base = c * n;
        LD_FOR_ELEMS(k, n) {
            const u64 i = base + k;
            r1[i] = mul_rn(w1[k], sub_rn(g1[k], r1[i]));
            r2[i] = mul_rn(w2[k], sub_rn(g2[k], r2[i]));
        }
    }
}

// Mirrors the first residual loop of the spectral guidance in
// `GuidedPosterior::score`: q = (g as f64) - q per chain, r = gamma - P D(x) in
// f64, with q = P D(x) (f64) on entry and the f32 data broadcast.
extern "C" __global__ void shear_residual_f64(double* __restrict__ q1, double* __restrict__ q2,
                                              const float* __restrict__ g1,
                                              const float* __restrict__ g2, u32 n, u32 chains) {
    LD_FOR_MAPS(c, chains) {
        const u64 base = c * n;
        LD_FOR_ELEMS(k, n) {
            const u64 i = base + k;
            q1[i] = sub_rn((double)g1[k], q1[i]);
            q2[i] = sub_rn((double)g2[k], q2[i]);
        }
    }
}

// Mirrors the second residual loop of the spectral guidance in
// `GuidedPosterior::score`: y = w (q - y) per chain, f64, with y = P y_solve on
// entry, q the residual of `shear_residual_f64` and the f64 weights
// (`self.w1`, `self.w2`) broadcast.
extern "C" __global__ void weighted_residual_f64(double* __restrict__ y1,
                                                 double* __restrict__ y2,
                                                 const double* __restrict__ q1,
                                                 const double* __restrict__ q2,
                                                 const double* __restrict__ w1,
                                                 const double* __restrict__ w2, u32 n,
                                                 u32 chains) {
    LD_FOR_MAPS(c, chains) {
        const u64 base = c * n;
        LD_FOR_ELEMS(k, n) {
            const u64 i = base + k;
            y1[i] = mul_rn(w1[k], sub_rn(q1[i], y1[i]));
            y2[i] = mul_rn(w2[k], sub_rn(q2[i], y2[i]));
        }
    }
}
