//! Compute backends: where the sampler's arithmetic runs.
//!
//! [`Backend`] lists the operations the samplers need, grouped by what they
//! compute: memory, FFTs, random numbers, per-mode spectral multipliers,
//! per-chain updates and reductions, and one generic entry for the
//! elementwise operations of the table in [`elementwise`] (called through
//! their methods of [`Elementwise`]: `be.axpby(&mut x, &s, &z, a, b)`).
//! Operations that exist in both precisions are generic over [`Real`]
//! (`f32`, `f64`). Two implementations:
//!
//! - [`cpu::Cpu`]: host vectors, rustfft plans, rayon; the reference. Each
//!   operation is the loop of the CPU sampler it replaced, with the same
//!   arithmetic in the same order; the sampler's CPU path is the engine
//!   ([`crate::sampler::engine`]) on this backend.
//! - [`cuda::Cuda`]: cudarc (driver API, NVRTC, cuFFT) loaded at run time;
//!   elementwise kernels give bitwise the CPU values, FFTs and reductions agree
//!   to rounding (cuFFT rounds differently; parallel sums associate
//!   differently).
//!
//! Buffers are typed ([`Elem`]: `f32`, `f64`, `u32`); a batch is
//! `[maps][n]`; a half spectrum is `[maps][ny][nx/2 + 1]` complex values
//! stored as interleaved `(re, im)` pairs in a real buffer of twice the length
//! (the layout of `num_complex::Complex` and of cuFFT's R2C output).

pub mod cpu;
pub mod cuda;
pub mod elementwise;
pub mod pool;
pub mod real;
pub(crate) mod shape;

pub use elementwise::{Elementwise, ElementwiseOp};
pub use real::{Precision, Real};

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::rng::Stream;

/// Where to run: the CPU or one CUDA device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// Host threads (rayon).
    #[default]
    Cpu,
    /// A CUDA GPU by ordinal (as `CUDA_VISIBLE_DEVICES` numbers them).
    Cuda(usize),
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl FromStr for Device {
    type Err = Error;

    /// `cpu`, `cuda` (= `cuda:0`) or `cuda:N`.
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        if t == "cpu" {
            return Ok(Device::Cpu);
        }
        if t == "cuda" || t == "gpu" {
            return Ok(Device::Cuda(0));
        }
        if let Some(n) = t.strip_prefix("cuda:").or_else(|| t.strip_prefix("gpu:")) {
            if let Ok(i) = n.parse::<usize>() {
                return Ok(Device::Cuda(i));
            }
        }
        Err(Error::invalid(
            "device",
            format!("unknown device `{s}` (cpu, cuda or cuda:N)"),
        ))
    }
}

/// Element types a backend buffer can hold.
pub trait Elem:
    Copy
    + Default
    + PartialEq
    + Send
    + Sync
    + fmt::Debug
    + 'static
    + cudarc::driver::DeviceRepr
    + cudarc::driver::ValidAsZeroBits
{
}

impl Elem for f32 {}
impl Elem for f64 {}
impl Elem for u32 {}

/// Counter-based noise keys of one batch of chains (see [`crate::rng`]):
/// chain `c` of the batch is global chain `first_chain + c`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoiseKey {
    /// The run seed.
    pub seed: u64,
    /// The stream.
    pub stream: Stream,
    /// Global index of the batch's first chain.
    pub first_chain: u64,
}

/// The operations of the device engine. Lengths: `n` pixels per map,
/// `chains = len / n` maps per batch; per-pixel operands (`g1`, `w1`, `start`)
/// have length `n` and are broadcast over maps; spectral multipliers have
/// length `grid.spectral_len()` (one real per mode) and are broadcast too.
/// Each method's doc names the kernel it launches on CUDA (whose comment in
/// `kernels/` names the CPU loop it mirrors and its formula). Both backends check
/// the argument lengths with the same function of `shape.rs` before touching
/// memory, so a bad shape is the same [`Error::ShapeMismatch`] (never a
/// panic) on either; every method has a caller outside tests
/// (`src/backend/cuda/tests.rs` checks both).
pub trait Backend: Send + Sync {
    /// A device buffer of `T`.
    type Buf<T: Elem>: Send + Sync;

    /// The device, for messages (`cpu`, `cuda:0 (NVIDIA H200)`).
    fn describe(&self) -> String;

    // ------------------------------------------------------------ memory

    /// A zeroed buffer.
    fn alloc<T: Elem>(&self, len: usize) -> Result<Self::Buf<T>>;
    /// A buffer holding `host`.
    fn upload<T: Elem>(&self, host: &[T]) -> Result<Self::Buf<T>>;
    /// The contents of a buffer (waits for the work queued before).
    fn download<T: Elem>(&self, buf: &Self::Buf<T>) -> Result<Vec<T>>;
    /// `dst = src` (same lengths).
    fn copy<T: Elem>(&self, src: &Self::Buf<T>, dst: &mut Self::Buf<T>) -> Result<()>;
    /// Number of elements.
    fn len<T: Elem>(buf: &Self::Buf<T>) -> usize;
    /// Waits until all queued work is done.
    fn synchronize(&self) -> Result<()>;

    // ------------------------------------------------------------ FFT

    /// Unnormalised forward R2C transforms of a batch of maps
    /// (`Fft2::forward`; cuFFT R2C with dims `{ny, nx}`, D2Z in f64).
    fn fft_forward<T: Real>(
        &self,
        grid: &Grid,
        maps: &Self::Buf<T>,
        spec: &mut Self::Buf<T>,
    ) -> Result<()>;
    /// Inverse C2R transforms normalised by `1/N` (`Fft2::inverse`; cuFFT C2R
    /// or Z2D, then the elementwise `scale`). `spec` is left undefined (cuFFT
    /// overwrites it).
    fn fft_inverse<T: Real>(
        &self,
        grid: &Grid,
        spec: &mut Self::Buf<T>,
        maps: &mut Self::Buf<T>,
    ) -> Result<()>;

    // ------------------------------------------------------------ philox.cu

    /// `fill_normal`: map `c` gets `Philox(seed, stream, first_chain + c, step).fill_normal`.
    fn fill_normal(
        &self,
        out: &mut Self::Buf<f32>,
        n: usize,
        key: NoiseKey,
        step: u64,
    ) -> Result<()>;

    // ------------------------------------------------------------ spectral.cu

    /// `ks_forward_multiply`: `g1 = p1 k`, `g2 = p2 k` per mode.
    fn ks_forward_multiply<T: Real>(
        &self,
        kappa_hat: &Self::Buf<T>,
        p1: &Self::Buf<T>,
        p2: &Self::Buf<T>,
        g1_hat: &mut Self::Buf<T>,
        g2_hat: &mut Self::Buf<T>,
    ) -> Result<()>;
    /// `ks_adjoint_multiply`: `k = p1 g1 + p2 g2`.
    fn ks_adjoint_multiply<T: Real>(
        &self,
        g1_hat: &Self::Buf<T>,
        g2_hat: &Self::Buf<T>,
        p1: &Self::Buf<T>,
        p2: &Self::Buf<T>,
        kappa_hat: &mut Self::Buf<T>,
    ) -> Result<()>;
    /// `ks_inverse_eb_multiply`: `E = p1 g1 + p2 g2`, `B = p1 g2 - p2 g1`.
    #[allow(clippy::too_many_arguments)]
    fn ks_inverse_eb_multiply(
        &self,
        g1_hat: &Self::Buf<f32>,
        g2_hat: &Self::Buf<f32>,
        p1: &Self::Buf<f32>,
        p2: &Self::Buf<f32>,
        e_hat: &mut Self::Buf<f32>,
        b_hat: &mut Self::Buf<f32>,
    ) -> Result<()>;
    /// `gaussian_denoise_gain`: `x *= (S / (S + sigma²)) as f32`.
    fn gaussian_denoise_gain(
        &self,
        x_hat: &mut Self::Buf<f32>,
        power: &Self::Buf<f64>,
        sigma2: f64,
    ) -> Result<()>;
    /// `spectral_scale`: `x *= f` per mode (a metric's gains in f32, the
    /// warm-start rescaling of the spectral guidance in f64).
    fn spectral_scale<T: Real>(&self, x_hat: &mut Self::Buf<T>, f: &Self::Buf<T>) -> Result<()>;
    /// `diffused_prior_draw_multiply`: `z *= sqrt(S + sigma²)`.
    fn diffused_prior_draw_multiply(
        &self,
        z_hat: &mut Self::Buf<f64>,
        power: &Self::Buf<f64>,
        sigma2: f64,
    ) -> Result<()>;
    /// `cast`: `y = x as D` (`map_to_f64` widens exactly, `map_to_f32`
    /// rounds to nearest; a copy when `S = D`).
    fn cast<S: Real, D: Real>(&self, x: &Self::Buf<S>, y: &mut Self::Buf<D>) -> Result<()>;

    // ------------------------------------------------------------ elementwise

    /// The elementwise operation `O` of the table in
    /// [`elementwise`] (called through its method of
    /// [`Elementwise`]): `out_i = O(out_i, ins_i, scalars)` for every
    /// element, all buffers of one length.
    fn elementwise<T: Real, O: ElementwiseOp<N, S>, const N: usize, const S: usize>(
        &self,
        op: O,
        out: &mut Self::Buf<T>,
        ins: [&Self::Buf<T>; N],
        scalars: [T; S],
    ) -> Result<()>;

    // ------------------------------------------------------------ update.cu

    /// `langevin_corrector_step`: per chain with `|s| > 0`,
    /// `eps = 2 (snr |z|/|s|)²`, `x += eps s + sqrt(2 eps) z`.
    #[allow(clippy::too_many_arguments)]
    fn langevin_corrector_step(
        &self,
        x: &mut Self::Buf<f32>,
        s: &Self::Buf<f32>,
        z: &Self::Buf<f32>,
        s_norm: &Self::Buf<f64>,
        z_norm: &Self::Buf<f64>,
        snr: f64,
        n: usize,
    ) -> Result<()>;
    /// `heun_predictor`: `d *= f`, `xp = x + h d`.
    fn heun_predictor(
        &self,
        d: &mut Self::Buf<f32>,
        x: &Self::Buf<f32>,
        xp: &mut Self::Buf<f32>,
        f: f32,
        h: f32,
    ) -> Result<()>;
    /// `hmc_position_step`: `xprev = x` (when given), `x += e v`.
    fn hmc_position_step(
        &self,
        x: &mut Self::Buf<f32>,
        xprev: Option<&mut Self::Buf<f32>>,
        v: &Self::Buf<f32>,
        e: f32,
    ) -> Result<()>;
    /// `hmc_accept`: map `c` of `x` becomes map `c` of `xk` where `accept[c] != 0`.
    fn hmc_accept(
        &self,
        x: &mut Self::Buf<f32>,
        xk: &Self::Buf<f32>,
        accept: &Self::Buf<u32>,
        n: usize,
    ) -> Result<()>;
    /// `hmc_start_from_map`: `x_c = start + s x_c`.
    fn hmc_start_from_map(
        &self,
        x: &mut Self::Buf<f32>,
        start: &Self::Buf<f32>,
        s: f32,
    ) -> Result<()>;

    // ------------------------------------------------------------ guidance.cu

    /// `annealed_weights`: `out = (w / (1 + k w)) as f32` in f64.
    fn annealed_weights(&self, w: &Self::Buf<f32>, k: f64, out: &mut Self::Buf<f32>) -> Result<()>;
    /// `weighted_residual`: `r = w (g - r)` per component, in place.
    #[allow(clippy::too_many_arguments)]
    fn weighted_residual(
        &self,
        r1: &mut Self::Buf<f32>,
        r2: &mut Self::Buf<f32>,
        g1: &Self::Buf<f32>,
        g2: &Self::Buf<f32>,
        w1: &Self::Buf<f32>,
        w2: &Self::Buf<f32>,
    ) -> Result<()>;
    /// `shear_residual_f64`: `q = g as f64 - q` per component, in place.
    fn shear_residual_f64(
        &self,
        q1: &mut Self::Buf<f64>,
        q2: &mut Self::Buf<f64>,
        g1: &Self::Buf<f32>,
        g2: &Self::Buf<f32>,
    ) -> Result<()>;
    /// `weighted_residual_f64`: `y = w (q - y)` per component, in place.
    #[allow(clippy::too_many_arguments)]
    fn weighted_residual_f64(
        &self,
        y1: &mut Self::Buf<f64>,
        y2: &mut Self::Buf<f64>,
        q1: &Self::Buf<f64>,
        q2: &Self::Buf<f64>,
        w1: &Self::Buf<f64>,
        w2: &Self::Buf<f64>,
    ) -> Result<()>;

    // ------------------------------------------------------------ cg.cu

    /// `multiply_weights_f64`: `a *= w` (w broadcast over maps).
    fn multiply_weights_f64(&self, a: &mut Self::Buf<f64>, w: &Self::Buf<f64>) -> Result<()>;
    /// `cg_initial_residual`: `r -= ap + u` on chains with `active[c] != 0`.
    fn cg_initial_residual(
        &self,
        r: &mut Self::Buf<f64>,
        ap: &Self::Buf<f64>,
        u: &Self::Buf<f64>,
        active: &Self::Buf<u32>,
        n: usize,
    ) -> Result<()>;
    /// `cg_update_solution`: `u += alpha_c p`, `r -= alpha_c ap` on active chains.
    #[allow(clippy::too_many_arguments)]
    fn cg_update_solution(
        &self,
        u: &mut Self::Buf<f64>,
        r: &mut Self::Buf<f64>,
        p: &Self::Buf<f64>,
        ap: &Self::Buf<f64>,
        alpha: &Self::Buf<f64>,
        active: &Self::Buf<u32>,
        n: usize,
    ) -> Result<()>;
    /// `cg_update_direction`: `p = z + beta_c p` on active chains.
    fn cg_update_direction(
        &self,
        p: &mut Self::Buf<f64>,
        z: &Self::Buf<f64>,
        beta: &Self::Buf<f64>,
        active: &Self::Buf<u32>,
        n: usize,
    ) -> Result<()>;

    // ------------------------------------------------------------ reduce.cu

    /// `chain_norms`: `out[c] = sqrt(sum_i (x_ci as f64)²)`.
    fn chain_norms(&self, x: &Self::Buf<f32>, n: usize, out: &mut Self::Buf<f64>) -> Result<()>;
    /// `chain_dot_f64`: `out[c] = sum_i a_ci b_ci`.
    fn chain_dot_f64(
        &self,
        a: &Self::Buf<f64>,
        b: &Self::Buf<f64>,
        n: usize,
        out: &mut Self::Buf<f64>,
    ) -> Result<()>;
    /// `hmc_energy_increment`: `du[c] -= sum_i (0.5 (s + s')) (x' - x)` in f64.
    #[allow(clippy::too_many_arguments)]
    fn hmc_energy_increment(
        &self,
        du: &mut Self::Buf<f64>,
        s: &Self::Buf<f32>,
        s_new: &Self::Buf<f32>,
        xk: &Self::Buf<f32>,
        xprev: &Self::Buf<f32>,
        n: usize,
    ) -> Result<()>;
    /// `hmc_kinetic_change`: `out[c] = sum_i 0.5 (p vp - p0 vp0)` in f64.
    #[allow(clippy::too_many_arguments)]
    fn hmc_kinetic_change(
        &self,
        p: &Self::Buf<f32>,
        vp: &Self::Buf<f32>,
        p0: &Self::Buf<f32>,
        vp0: &Self::Buf<f32>,
        n: usize,
        out: &mut Self::Buf<f64>,
    ) -> Result<()>;
}

/// Fails unless `len` is a positive multiple of `n`; returns the map count.
pub(crate) fn maps_of(name: &'static str, len: usize, n: usize) -> Result<usize> {
    if n == 0 || len == 0 || !len.is_multiple_of(n) {
        return Err(Error::shape(name, format!("a multiple of {n}"), len));
    }
    Ok(len / n)
}

/// Fails unless two buffers have the same length.
pub(crate) fn same_len(name: &'static str, a: usize, b: usize) -> Result<()> {
    if a != b {
        return Err(Error::shape(name, a, b));
    }
    Ok(())
}
