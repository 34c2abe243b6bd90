// kernels/cg.cu: the elementwise steps of the batched conjugate-gradient solve
// of the spectral guidance (`GaussianSystem::solve`, src/baselines/wiener.rs),
// twins of the loops of src/backend/cpu.rs of the same names. The dot products
// between them are `chain_dot_f64` (reduce.cu).
//
// uses: common.cuh
//
// Vectors are f64 batches `[chains][n]`. The per-chain kernels update only
// the chains with `active[c] != 0` (those not yet converged) and take the
// per-chain step lengths `alpha[c]`, `beta[c]` from the host. Each kernel does
// the IEEE f64 operations of its twin in the same order, never fused
// (common.cuh), so it gives bitwise the CPU values. Distinct pointer
// arguments must not alias; an updated array is a single in/out pointer.
//
// (`x += y` is the elementwise `add`, src/backend/elementwise.rs.)
//
// Launch shape: per-chain and broadcast kernels (`n`, `chains`) use blockDim = (256, 1), gridDim = (ceil(n / 256),
// min(chains, 65535)) (2-D grid-stride). Any shape is correct.

// Mirrors `multiply_weights_f64`: a *= w per chain, with the per-pixel
// weights w `[n]` broadcast (the noise-weighted operator of the solve).
extern "C" __global__ void multiply_weights_f64(double* __restrict__ a,
                                                const double* __restrict__ w, u32 n,
                                                u32 chains) {
    LD_FOR_MAPS(c, chains) {
        const u64 base = c * n;
        LD_FOR_ELEMS(k, n) { a[base + k] = mul_rn(a[base + k], w[k]); }
    }
}

// Mirrors `cg_initial_residual`: r -= ap + u on the active chains (the
// residual b - A u0 of a warm start, with ap = A u0 split in two terms).
extern "C" __global__ void cg_initial_residual(double* __restrict__ r,
                                               const double* __restrict__ ap,
                                               const double* __restrict__ u,
                                               const u32* __restrict__ active, u32 n,
                                               u32 chains) {
    LD_FOR_MAPS(c, chains) {
        if (active[c] == 0) continue;
        const u64 base = c * n;
        LD_FOR_ELEMS(k, n) {
            const u64 i = base + k;
            r[i] = sub_rn(r[i], add_rn(ap[i], u[i]));
        }
    }
}

// Mirrors `cg_update_solution`: u += alpha_c p, r -= alpha_c ap on the active
// chains (alpha_c = r·z / p·Ap from the host).
extern "C" __global__ void cg_update_solution(double* __restrict__ u, double* __restrict__ r,
                                              const double* __restrict__ p,
                                              const double* __restrict__ ap,
                                              const double* __restrict__ alpha,
                                              const u32* __restrict__ active, u32 n, u32 chains) {
    LD_FOR_MAPS(c, chains) {
        if (active[c] == 0) continue;
        const double a = alpha[c];
        const u64 base = c * n;
        LD_FOR_ELEMS(k, n) {
            const u64 i = base + k;
            u[i] = add_rn(u[i], mul_rn(a, p[i]));
            r[i] = sub_rn(r[i], mul_rn(a, ap[i]));
        }
    }
}

// Mirrors `cg_update_direction`: p = z + beta_c p on the active chains
// (beta_c = r'·z' / r·z from the host; z the preconditioned residual).
extern "C" __global__ void cg_update_direction(double* __restrict__ p,
                                               const double* __restrict__ z,
                                               const double* __restrict__ beta,
                                               const u32* __restrict__ active, u32 n,
                                               u32 chains) {
    LD_FOR_MAPS(c, chains) {
        if (active[c] == 0) continue;
        const double b = beta[c];
        const u64 base = c * n;
        LD_FOR_ELEMS(k, n) {
            const u64 i = base + k;
            p[i] = add_rn(z[i], mul_rn(b, p[i]));
        }
    }
}
