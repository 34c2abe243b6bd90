// kernels/moments.cu: per-pixel mean and variance over chains, the twin of
// `Moments::of_maps` and `Moments::variance` (src/sampler/moments.rs).
//
// uses: common.cuh
//
// The CPU reduces in a fixed order that this kernel follows step for step, in
// f64, so that the results are bitwise the CPU's: the maps `[chains][n]` are
// cut into blocks of BLOCK = 8 consecutive maps (the last may be shorter),
// each block is accumulated from zero with Welford's update (`Moments::push`)
//   c += 1, d = x - m, m += d / c, M2 += d (x - m),
// and the blocks are merged left to right into the total (`Moments::merge_all`,
// `Moments::merge`): the first block is copied, every later one merged with
// Chan et al.'s parallel formula
//   n = na + nb, d = mb - ma, m = ma + (d nb) / n, M2 = M2a + (M2b + d² na nb / n).
// Blocks start at map 0 of `maps`, as in `Moments::of_maps` on the same slice.
//
// Launch shape: one thread per pixel, looping over the chains (each chain's
// reads are coalesced across the warp): blockDim = 256, gridDim = ceil(n / 256);
// 1-D grid-stride, any shape is correct.

#define MOMENTS_BLOCK 8u

// Mirrors `Moments::of_maps(maps, n)` followed by `Moments::variance()`:
// mean[i], m2[i] (sum of squared deviations) and var[i] = m2[i] / (chains - 1)
// (0 for fewer than two chains) of pixel i over the `chains` maps. With no
// chains, mean and m2 are 0 (`Moments::new`). `var` may be null.
extern "C" __global__ void moments_of_maps(const float* __restrict__ maps, u32 n, u32 chains,
                                           double* __restrict__ mean, double* __restrict__ m2,
                                           double* __restrict__ var) {
    LD_FOR_1D(i, n) {
        double tm = 0.0, ts = 0.0;  // the running total (mean, M2)
        u64 tc = 0;                 // its count
        for (u32 b0 = 0; b0 < chains; b0 += MOMENTS_BLOCK) {
            const u32 b1 = (chains - b0 < MOMENTS_BLOCK) ? chains : b0 + MOMENTS_BLOCK;
            // Welford over the block, from Moments::new.
            double bm = 0.0, bs = 0.0;
            u64 bc = 0;
            for (u32 c = b0; c < b1; ++c) {
                bc += 1;
                const double cf = (double)bc;
                const double x = (double)maps[(u64)c * n + i];
                const double d = sub_rn(x, bm);
                bm = add_rn(bm, div_rn(d, cf));
                bs = add_rn(bs, mul_rn(d, sub_rn(x, bm)));
            }
            // Moments::merge of the block into the total.
            if (tc == 0) {
                tm = bm;
                ts = bs;
                tc = bc;
            } else {
                const double na = (double)tc, nb = (double)bc;
                const double nn = add_rn(na, nb);
                const double d = sub_rn(bm, tm);
                tm = add_rn(tm, div_rn(mul_rn(d, nb), nn));
                const double t = div_rn(mul_rn(mul_rn(mul_rn(d, d), na), nb), nn);
                ts = add_rn(ts, add_rn(bs, t));
                tc += bc;
            }
        }
        mean[i] = tm;
        m2[i] = ts;
        if (var) var[i] = (tc > 1) ? div_rn(ts, (double)(tc - 1)) : 0.0;
    }
}
