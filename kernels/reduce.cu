// kernels/reduce.cu: per-chain reductions, twins of the f64 sums of
// src/backend/cpu.rs (`chain_norms`, `chain_dot_f64`, `hmc_energy_increment`,
// `hmc_kinetic_change`): the norms of the Langevin corrector, the dot
// products of the conjugate-gradient solve and the HMC energy terms.
//
// uses: common.cuh
//
// Inputs are batches `[chains][n]`; the output has one f64 per chain. The CPU
// sums each chain left to right in f64; here each thread sums a strided part
// of the chain and the block adds the partial sums in a shared-memory tree,
// so results agree with the CPU to rounding, not bitwise. The terms
// themselves are computed with the same (never fused) operations as on the
// CPU.
//
// Launch shape: one block per chain, blockDim = 256, gridDim = chains (blocks
// loop over chains grid-stride, so fewer blocks are correct too; any
// blockDim.x up to 256 is correct).

#define REDUCE_THREADS 256

// Sum over the block of one f64 per thread: the partial sums are padded with
// zeros to REDUCE_THREADS and added pairwise, (s[t] + s[t + h]) for h = 128,
// 64, ..., 1. Every thread gets the total. All threads of the block must call
// it (it synchronises).
__device__ __forceinline__ double block_sum(double v, double* sh) {
    __syncthreads();  // the previous call's readers are done with sh
    for (u32 t = threadIdx.x; t < REDUCE_THREADS; t += blockDim.x) sh[t] = 0.0;
    __syncthreads();
    sh[threadIdx.x] = v;
    __syncthreads();
    for (u32 h = REDUCE_THREADS / 2; h > 0; h >>= 1) {
        if (threadIdx.x < h) sh[threadIdx.x] = add_rn(sh[threadIdx.x], sh[threadIdx.x + h]);
        __syncthreads();
    }
    return sh[0];
}

// Mirrors `chain_norms` (the `sn`, `zn` of the predictor-corrector in
// src/sampler/integrators.rs): out[c] = sqrt(sum_i (x_ci as f64)²).
extern "C" __global__ void __launch_bounds__(REDUCE_THREADS)
    chain_norms(const float* __restrict__ x, u32 n, u32 chains, double* __restrict__ out) {
    __shared__ double sh[REDUCE_THREADS];
    for (u64 c = blockIdx.x; c < chains; c += gridDim.x) {
        const float* xc = x + c * n;
        double acc = 0.0;
        for (u64 k = threadIdx.x; k < n; k += blockDim.x) {
            const double v = (double)xc[k];
            acc = add_rn(acc, mul_rn(v, v));
        }
        const double total = block_sum(acc, sh);
        if (threadIdx.x == 0) out[c] = sqrt(total);
    }
}

// Mirrors `chain_dot_f64` (the dot products of `GaussianSystem::solve`,
// src/baselines/wiener.rs): out[c] = sum_i a_ci b_ci.
extern "C" __global__ void __launch_bounds__(REDUCE_THREADS)
    chain_dot_f64(const double* __restrict__ a, const double* __restrict__ b, u32 n, u32 chains,
                  double* __restrict__ out) {
    __shared__ double sh[REDUCE_THREADS];
    for (u64 c = blockIdx.x; c < chains; c += gridDim.x) {
        const u64 base = c * n;
        double acc = 0.0;
        for (u64 k = threadIdx.x; k < n; k += blockDim.x) {
            acc = add_rn(acc, mul_rn(a[base + k], b[base + k]));
        }
        const double total = block_sum(acc, sh);
        if (threadIdx.x == 0) out[c] = total;
    }
}

// Mirrors `hmc_energy_increment` (the potential-energy change of a leapfrog
// step in `hmc_transition`, src/sampler/hmc.rs, by the trapezoidal rule):
// du[c] -= sum_i (0.5 (s_i + s'_i)) (x'_i - x_i), every operand widened to f64.
extern "C" __global__ void __launch_bounds__(REDUCE_THREADS)
    hmc_energy_increment(double* __restrict__ du, const float* __restrict__ s,
                         const float* __restrict__ s_new, const float* __restrict__ xk,
                         const float* __restrict__ xprev, u32 n, u32 chains) {
    __shared__ double sh[REDUCE_THREADS];
    for (u64 c = blockIdx.x; c < chains; c += gridDim.x) {
        const u64 base = c * n;
        double acc = 0.0;
        for (u64 k = threadIdx.x; k < n; k += blockDim.x) {
            const u64 i = base + k;
            const double g = mul_rn(0.5, add_rn((double)s[i], (double)s_new[i]));
            acc = add_rn(acc, mul_rn(g, sub_rn((double)xk[i], (double)xprev[i])));
        }
        const double total = block_sum(acc, sh);
        if (threadIdx.x == 0) du[c] = sub_rn(du[c], total);
    }
}

// Mirrors `hmc_kinetic_change` (the kinetic-energy change of `hmc_transition`,
// with v = p or M^{-1} p): out[c] = sum_i 0.5 (p_i vp_i - p0_i vp0_i) in f64.
extern "C" __global__ void __launch_bounds__(REDUCE_THREADS)
    hmc_kinetic_change(const float* __restrict__ p, const float* __restrict__ vp,
                       const float* __restrict__ p0, const float* __restrict__ vp0, u32 n,
                       u32 chains, double* __restrict__ out) {
    __shared__ double sh[REDUCE_THREADS];
    for (u64 c = blockIdx.x; c < chains; c += gridDim.x) {
        const u64 base = c * n;
        double acc = 0.0;
        for (u64 k = threadIdx.x; k < n; k += blockDim.x) {
            const u64 i = base + k;
            const double e = mul_rn((double)p[i], (double)vp[i]);
            const double e0 = mul_rn((double)p0[i], (double)vp0[i]);
            acc = add_rn(acc, mul_rn(0.5, sub_rn(e, e0)));
        }
        const double total = block_sum(acc, sh);
        if (threadIdx.x == 0) out[c] = total;
    }
}
