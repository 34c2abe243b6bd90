// kernels/common.cuh: definitions shared by every lensdiff kernel.
//
// Header-free: NVRTC ships no CUDA headers, so nothing here (or anywhere in
// kernels/) includes one. Prepended to a .cu file that names it in a
// `// uses: common.cuh` line (see kernels/README.md).
//
// Three rules keep the kernels close to their CPU twins in src/:
//
// 1. Storage types match the Rust ones: f32 maps are `float`, f64 maps
//    `double`, half spectra `cf32` / `cf64` (interleaved re, im: the layout of
//    `num_complex::Complex<T>` and of cuFFT's `cufftComplex` /
//    `cufftDoubleComplex`).
// 2. Arithmetic that the Rust code writes as separate operations is done with
//    the explicit round-to-nearest intrinsics below, so that NVRTC's default
//    `--fmad=true` cannot contract `a * b + c` into one FMA (Rust never
//    contracts). Each elementwise kernel then does the same IEEE operations in
//    the same order as its twin and gives bitwise the CPU result for the same
//    inputs.
// 3. Every kernel takes explicit lengths, checks its bounds and uses
//    grid-stride loops, so any launch shape is correct; each documents the
//    shape it is tuned for. 64-bit element indices everywhere: a batch may
//    hold more than 2^32 values.

typedef unsigned int u32;
typedef unsigned long long u64;

// One complex f32 value of a half spectrum: (re, im), 8 bytes.
struct alignas(8) cf32 {
    float re;
    float im;
};

// One complex f64 value of a half spectrum: (re, im), 16 bytes.
struct alignas(16) cf64 {
    double re;
    double im;
};

// IEEE arithmetic, round to nearest, never fused: overloaded for f32 and f64
// (mixing the two is a compile error, as in Rust).
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ float sub_rn(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ float div_rn(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ double sub_rn(double a, double b) { return __dsub_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ double div_rn(double a, double b) { return __ddiv_rn(a, b); }

// `x as f32` for an f64 `x` (round to nearest).
__device__ __forceinline__ float to_f32(double x) { return __double2float_rn(x); }

// Grid-stride loop over a flat range `[0, len)`.
// Launch shape: 1-D, blockDim.x = 256, gridDim.x = ceil(len / 256) (or fewer
// blocks, e.g. a few per SM: the loop strides); any shape is correct.
#define LD_FOR_1D(i, len)                                                      \
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < (u64)(len);   \
         i += (u64)blockDim.x * gridDim.x)

// Grid-stride loops over a batch `[maps][n]` whose per-element operand (data,
// weights, multipliers) is broadcast over maps: y runs over maps, x over the
// elements of one map, so a warp reads consecutive elements of one map.
// Launch shape: blockDim = (256, 1), gridDim = (ceil(n / 256), min(maps, 65535));
// any shape is correct.
#define LD_FOR_MAPS(m, maps) for (u64 m = blockIdx.y; m < (u64)(maps); m += gridDim.y)
#define LD_FOR_ELEMS(i, n)                                                     \
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < (u64)(n);     \
         i += (u64)blockDim.x * gridDim.x)
