// kernels/philox.cu: batched standard normals, the twin of
// `Philox::fill_normal` (src/rng.rs) as used by `Ctx::normal`
// (src/sampler/engine.rs). The Metropolis uniforms, one per chain, are drawn
// on the host.
//
// uses: common.cuh philox.cuh
//
// Batch layout: `out` is `[chains][n]`; chain `c` of the batch is the global
// chain `first_chain + c` and gets `Philox::new(seed, stream, first_chain + c,
// step)`, i.e. counter (block, (u32)(first_chain + c), (u32)step, stream).
// The samplers pass `step = 8 t + sub` on the sampler stream (`Ctx::normal`)
// and `step = t m + j` on the corrector stream (`Ctx::corrector_normal`); the
// engine keeps both below 2^32. Like `Philox::new`, the chain and the step wrap
// modulo 2^32. Element `i` of a chain comes from block
// `i / 4`, word `i % 4`, so it depends only on `i` and the key, never on `n`.
//
// Launch shape: one thread per block of four elements.
//   blockDim = (256, 1), gridDim = (ceil(ceil(n / 4) / 256), min(chains, 65535));
// grid-stride in both dimensions, so any shape is correct.

// Four f32 values stored at once when a chain's block is 16-byte aligned.
struct alignas(16) f32x4 {
    float v0, v1, v2, v3;
};

// Mirrors `Philox::fill_normal(out)` for each chain of the batch: block b gives
// (z0, z1) = box_muller(w0, w1), (z2, z3) = box_muller(w2, w3), stored as f32
// at elements 4b .. 4b+3 (those below n).
extern "C" __global__ void fill_normal(float* __restrict__ out, u32 n, u32 chains, u32 seed_lo,
                                       u32 seed_hi, u32 stream, u64 first_chain, u64 step) {
    const u64 blocks = ((u64)n + 3) / 4;
    LD_FOR_MAPS(c, chains) {
        float* o = out + c * (u64)n;
        const u32 chain = (u32)(first_chain + c);
        LD_FOR_ELEMS(b, blocks) {
            const philox_u32x4 w = philox_block((u32)b, chain, (u32)step, stream, seed_lo, seed_hi);
            double z0, z1, z2, z3;
            box_muller(w.w0, w.w1, &z0, &z1);
            box_muller(w.w2, w.w3, &z2, &z3);
            const u64 i = 4 * b;
            float* p = o + i;
            if (i + 4 <= n && ((u64)p & 15) == 0) {
                f32x4 v;
                v.v0 = to_f32(z0);
                v.v1 = to_f32(z1);
                v.v2 = to_f32(z2);
                v.v3 = to_f32(z3);
                *(f32x4*)p = v;
            } else {
                p[0] = to_f32(z0);
                if (i + 1 < n) p[1] = to_f32(z1);
                if (i + 2 < n) p[2] = to_f32(z2);
                if (i + 3 < n) p[3] = to_f32(z3);
            }
        }
    }
}
