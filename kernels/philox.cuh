// kernels/philox.cuh: Philox4x32-10 counter-based random numbers, the device
// twin of src/rng.rs (Salmon et al. 2011).
//
// uses: common.cuh
//
// A draw is a pure function of (key, counter):
//   key     = (seed lo, seed hi)            (the 64-bit user seed)
//   counter = (block, chain, step, stream)  (block = element index / 4)
// Each block gives four 32-bit words. Uniforms are (u + 0.5) 2^-32 in (0, 1);
// normals come from Box–Muller on the word pairs (0, 1) and (2, 3) in f64.
//
// Agreement with the CPU: the words and the uniforms are bitwise those of
// src/rng.rs (integer arithmetic, then an exact conversion and an exact scaling
// by 2^-32). The normals use the device's f64 `log`, `sqrt`, `cos`, `sin`:
// `sqrt` is correctly rounded like Rust's; `log`, `cos` and `sin` are within
// 1-2 ulp of the correctly rounded value, as is the host libm, so the f64
// normals may differ from the CPU's in the last bits and the f32 normals
// (`fill_normal`) only when the f64 value lies within a few f64 ulp of an f32
// rounding boundary (about 1e-8 of the draws).

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

// Four 32-bit words (a counter or an output block).
struct philox_u32x4 {
    u32 w0, w1, w2, w3;
};

// Mirrors `philox4x32_10(counter, key)` (src/rng.rs): ten rounds of
//   (hi0, lo0) = mulhilo(M0, c0), (hi1, lo1) = mulhilo(M1, c2),
//   c = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0),
// with the key bumped by (W0, W1) before every round but the first.
__device__ __forceinline__ philox_u32x4 philox4x32_10(philox_u32x4 c, u32 k0, u32 k1) {
#pragma unroll
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        const u32 hi0 = __umulhi(PHILOX_M0, c.w0);
        const u32 lo0 = PHILOX_M0 * c.w0;
        const u32 hi1 = __umulhi(PHILOX_M1, c.w2);
        const u32 lo1 = PHILOX_M1 * c.w2;
        philox_u32x4 n;
        n.w0 = hi1 ^ c.w1 ^ k0;
        n.w1 = lo1;
        n.w2 = hi0 ^ c.w3 ^ k1;
        n.w3 = lo0;
        c = n;
    }
    return c;
}

// Mirrors `Philox::block(block)` for the generator `Philox::new(seed, stream,
// chain, step)`: counter (block, chain, step, stream), key (seed lo, seed hi).
__device__ __forceinline__ philox_u32x4 philox_block(u32 block, u32 chain, u32 step, u32 stream,
                                                     u32 seed_lo, u32 seed_hi) {
    philox_u32x4 c;
    c.w0 = block;
    c.w1 = chain;
    c.w2 = step;
    c.w3 = stream;
    return philox4x32_10(c, seed_lo, seed_hi);
}

// Mirrors `uniform_from_u32(u)`: (u + 0.5) * 2^-32, in the open interval (0, 1).
// Both operations are exact in f64.
__device__ __forceinline__ double uniform_from_u32(u32 u) {
    return mul_rn(add_rn((double)u, 0.5), 2.3283064365386962890625e-10);
}

// Mirrors `box_muller(a, b)`: r = sqrt(-2 ln u_a), t = 2 pi u_b,
// (z0, z1) = (r cos t, r sin t), all in f64.
__device__ __forceinline__ void box_muller(u32 a, u32 b, double* z0, double* z1) {
    // 2 pi as Rust's `2.0 * std::f64::consts::PI` (an exact doubling).
    const double two_pi = 6.283185307179586;
    const double r = sqrt(mul_rn(-2.0, log(uniform_from_u32(a))));
    const double t = mul_rn(two_pi, uniform_from_u32(b));
    *z0 = mul_rn(r, cos(t));
    *z1 = mul_rn(r, sin(t));
}
