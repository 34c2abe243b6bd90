//! [`Backend`] for [`Cuda`]: each method first checks its operands with the
//! function of its name in `src/backend/shape.rs`, as the CPU backend does (same
//! errors), then launches its kernel (kernels/README.md) through the typed
//! wrapper of the kernel table (`k::name`, src/backend/cuda/kernels.rs, which
//! also sizes the launch) with the scalars exactly as passed. The elementwise
//! operations launch the kernel generated from their row (`k::elementwise`).

use std::any::Any;

use cudarc::driver::CudaSlice;

use super::fft::{inverse_scale, Kind};
use super::kernels as k;
use super::{u32_arg, Cuda};
use crate::backend::shape::{self, Modes, Pixels};
use crate::backend::{Backend, Elem, Elementwise, ElementwiseOp, NoiseKey, Precision, Real};
use crate::error::{Error, Result};
use crate::grid::Grid;

/// `x` as a buffer of `B`, which is its own type (`cast` dispatches on the
/// precisions, so `A` and `B` are the same type where this is called).
fn retype<A: Elem, B: Elem>(x: &CudaSlice<A>) -> Result<&CudaSlice<B>> {
    (x as &dyn Any)
        .downcast_ref()
        .ok_or_else(|| Error::invalid("cast", "element type mismatch"))
}

/// Mutable [`retype`].
fn retype_mut<A: Elem, B: Elem>(x: &mut CudaSlice<A>) -> Result<&mut CudaSlice<B>> {
    (x as &mut dyn Any)
        .downcast_mut()
        .ok_or_else(|| Error::invalid("cast", "element type mismatch"))
}

/// `len` as the kernels' 64-bit flat length.
fn len64(len: usize) -> u64 {
    len as u64
}

impl Backend for Cuda {
    type Buf<T: Elem> = CudaSlice<T>;

    fn describe(&self) -> String {
        self.info.clone()
    }

    // ------------------------------------------------------------ memory

    fn alloc<T: Elem>(&self, len: usize) -> Result<CudaSlice<T>> {
        self.stream
            .alloc_zeros(len)
            .map_err(|e| self.err("cuMemAllocAsync", e))
    }

    fn upload<T: Elem>(&self, host: &[T]) -> Result<CudaSlice<T>> {
        self.stream
            .clone_htod(host)
            .map_err(|e| self.err("cuMemcpyHtoDAsync", e))
    }

    fn download<T: Elem>(&self, buf: &CudaSlice<T>) -> Result<Vec<T>> {
        let v = self
            .stream
            .clone_dtoh(buf)
            .map_err(|e| self.err("cuMemcpyDtoHAsync", e))?;
        self.synchronize()?;
        Ok(v)
    }

    fn copy<T: Elem>(&self, src: &CudaSlice<T>, dst: &mut CudaSlice<T>) -> Result<()> {
        shape::copy(src.len(), dst.len())?;
        self.stream
            .memcpy_dtod(src, dst)
            .map_err(|e| self.err("cuMemcpyDtoDAsync", e))
    }

    fn len<T: Elem>(buf: &CudaSlice<T>) -> usize {
        buf.len()
    }

    fn synchronize(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(|e| self.err("cuStreamSynchronize", e))?;
        self.stream
            .context()
            .check_err()
            .map_err(|e| self.err("a deferred CUDA call", e))
    }

    // ------------------------------------------------------------ FFT

    fn fft_forward<T: Real>(
        &self,
        grid: &Grid,
        maps: &CudaSlice<T>,
        spec: &mut CudaSlice<T>,
    ) -> Result<()> {
        let batch = shape::fft(grid, maps.len(), spec.len())?;
        self.fft_real_to_complex(grid, T::pick(Kind::R2C, Kind::D2Z), batch, maps, spec)
    }

    fn fft_inverse<T: Real>(
        &self,
        grid: &Grid,
        spec: &mut CudaSlice<T>,
        maps: &mut CudaSlice<T>,
    ) -> Result<()> {
        let batch = shape::fft(grid, maps.len(), spec.len())?;
        let kind = T::pick(Kind::C2R, Kind::Z2D);
        self.fft_complex_to_real(grid, kind, batch, spec, maps)?;
        self.scale(maps, inverse_scale::<T>(grid))
    }

    // ------------------------------------------------------------ philox.cu

    fn fill_normal(
        &self,
        out: &mut CudaSlice<f32>,
        n: usize,
        key: NoiseKey,
        step: u64,
    ) -> Result<()> {
        let chains = shape::fill_normal(out.len(), n)?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        let (seed_lo, seed_hi) = (key.seed as u32, (key.seed >> 32) as u32);
        let stream = key.stream as u32;
        k::fill_normal(
            self,
            out,
            n32,
            chains32,
            seed_lo,
            seed_hi,
            stream,
            key.first_chain,
            step,
        )
    }

    // ------------------------------------------------------------ spectral.cu

    fn ks_forward_multiply<T: Real>(
        &self,
        kappa_hat: &CudaSlice<T>,
        p1: &CudaSlice<T>,
        p2: &CudaSlice<T>,
        g1_hat: &mut CudaSlice<T>,
        g2_hat: &mut CudaSlice<T>,
    ) -> Result<()> {
        let Modes { modes, maps } = shape::ks_forward_multiply(
            kappa_hat.len(),
            p1.len(),
            p2.len(),
            g1_hat.len(),
            g2_hat.len(),
        )?;
        let (modes32, maps32) = (u32_arg("spec_len", modes)?, u32_arg("maps", maps)?);
        k::ks_forward_multiply::<T>(self, kappa_hat, p1, p2, g1_hat, g2_hat, modes32, maps32)
    }

    fn ks_adjoint_multiply<T: Real>(
        &self,
        g1_hat: &CudaSlice<T>,
        g2_hat: &CudaSlice<T>,
        p1: &CudaSlice<T>,
        p2: &CudaSlice<T>,
        kappa_hat: &mut CudaSlice<T>,
    ) -> Result<()> {
        let Modes { modes, maps } = shape::ks_adjoint_multiply(
            g1_hat.len(),
            g2_hat.len(),
            p1.len(),
            p2.len(),
            kappa_hat.len(),
        )?;
        let (modes32, maps32) = (u32_arg("spec_len", modes)?, u32_arg("maps", maps)?);
        k::ks_adjoint_multiply::<T>(self, g1_hat, g2_hat, p1, p2, kappa_hat, modes32, maps32)
    }

    fn ks_inverse_eb_multiply(
        &self,
        g1_hat: &CudaSlice<f32>,
        g2_hat: &CudaSlice<f32>,
        p1: &CudaSlice<f32>,
        p2: &CudaSlice<f32>,
        e_hat: &mut CudaSlice<f32>,
        b_hat: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let Modes { modes, maps } = shape::ks_inverse_eb_multiply(
            g1_hat.len(),
            g2_hat.len(),
            p1.len(),
            p2.len(),
            e_hat.len(),
            b_hat.len(),
        )?;
        let (modes32, maps32) = (u32_arg("spec_len", modes)?, u32_arg("maps", maps)?);
        k::ks_inverse_eb_multiply(self, g1_hat, g2_hat, p1, p2, e_hat, b_hat, modes32, maps32)
    }

    fn gaussian_denoise_gain(
        &self,
        x_hat: &mut CudaSlice<f32>,
        power: &CudaSlice<f64>,
        sigma2: f64,
    ) -> Result<()> {
        let Modes { modes, maps } = shape::spectral_multiplier("x_hat", x_hat.len(), power.len())?;
        let (modes32, maps32) = (u32_arg("spec_len", modes)?, u32_arg("maps", maps)?);
        k::gaussian_denoise_gain(self, x_hat, power, sigma2, modes32, maps32)
    }

    fn spectral_scale<T: Real>(&self, x_hat: &mut CudaSlice<T>, f: &CudaSlice<T>) -> Result<()> {
        let Modes { modes, maps } = shape::spectral_multiplier("x_hat", x_hat.len(), f.len())?;
        let (modes32, maps32) = (u32_arg("spec_len", modes)?, u32_arg("maps", maps)?);
        k::spectral_scale::<T>(self, x_hat, f, modes32, maps32)
    }

    fn diffused_prior_draw_multiply(
        &self,
        z_hat: &mut CudaSlice<f64>,
        power: &CudaSlice<f64>,
        sigma2: f64,
    ) -> Result<()> {
        let Modes { modes, maps } = shape::spectral_multiplier("z_hat", z_hat.len(), power.len())?;
        let (modes32, maps32) = (u32_arg("spec_len", modes)?, u32_arg("maps", maps)?);
        k::diffused_prior_draw_multiply(self, z_hat, power, sigma2, modes32, maps32)
    }

    fn cast<S: Real, D: Real>(&self, x: &CudaSlice<S>, y: &mut CudaSlice<D>) -> Result<()> {
        shape::cast(x.len(), y.len())?;
        let len = len64(x.len());
        match (S::PRECISION, D::PRECISION) {
            (Precision::F32, Precision::F64) => {
                k::map_to_f64(self, retype(x)?, retype_mut(y)?, len)
            }
            (Precision::F64, Precision::F32) => {
                k::map_to_f32(self, retype(x)?, retype_mut(y)?, len)
            }
            _ => self.copy(retype::<S, D>(x)?, y),
        }
    }

    fn elementwise<T: Real, O: ElementwiseOp<N, S>, const N: usize, const S: usize>(
        &self,
        _op: O,
        out: &mut CudaSlice<T>,
        ins: [&CudaSlice<T>; N],
        scalars: [T; S],
    ) -> Result<()> {
        shape::elementwise(out.len(), &ins.map(|b| b.len()))?;
        let len = len64(out.len());
        k::elementwise(self, O::ROW.kernel::<T>(), out, &ins, &scalars, len)
    }

    // ------------------------------------------------------------ update.cu

    fn langevin_corrector_step(
        &self,
        x: &mut CudaSlice<f32>,
        s: &CudaSlice<f32>,
        z: &CudaSlice<f32>,
        s_norm: &CudaSlice<f64>,
        z_norm: &CudaSlice<f64>,
        snr: f64,
        n: usize,
    ) -> Result<()> {
        let chains = shape::langevin_corrector_step(
            x.len(),
            s.len(),
            z.len(),
            s_norm.len(),
            z_norm.len(),
            n,
        )?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        k::langevin_corrector_step(self, x, s, z, s_norm, z_norm, snr, n32, chains32)
    }

    fn heun_predictor(
        &self,
        d: &mut CudaSlice<f32>,
        x: &CudaSlice<f32>,
        xp: &mut CudaSlice<f32>,
        f: f32,
        h: f32,
    ) -> Result<()> {
        shape::heun_predictor(d.len(), x.len(), xp.len())?;
        let len = len64(d.len());
        k::heun_predictor(self, d, x, xp, f, h, len)
    }

    fn hmc_position_step(
        &self,
        x: &mut CudaSlice<f32>,
        xprev: Option<&mut CudaSlice<f32>>,
        v: &CudaSlice<f32>,
        e: f32,
    ) -> Result<()> {
        shape::hmc_position_step(x.len(), xprev.as_ref().map(|b| b.len()), v.len())?;
        let len = len64(x.len());
        // The kernel skips the copy for a null (`None`) `xprev`.
        k::hmc_position_step(self, x, xprev, v, e, len)
    }

    fn hmc_accept(
        &self,
        x: &mut CudaSlice<f32>,
        xk: &CudaSlice<f32>,
        accept: &CudaSlice<u32>,
        n: usize,
    ) -> Result<()> {
        let chains = shape::hmc_accept(x.len(), xk.len(), accept.len(), n)?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        k::hmc_accept(self, x, xk, accept, n32, chains32)
    }

    fn hmc_start_from_map(
        &self,
        x: &mut CudaSlice<f32>,
        start: &CudaSlice<f32>,
        s: f32,
    ) -> Result<()> {
        let Pixels { n, chains } = shape::hmc_start_from_map(x.len(), start.len())?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        k::hmc_start_from_map(self, x, start, s, n32, chains32)
    }

    // ------------------------------------------------------------ guidance.cu

    fn annealed_weights(&self, w: &CudaSlice<f32>, k: f64, out: &mut CudaSlice<f32>) -> Result<()> {
        shape::annealed_weights(w.len(), out.len())?;
        let n = u32_arg("n", w.len())?;
        k::annealed_weights(self, w, k, out, n)
    }

    fn weighted_residual(
        &self,
        r1: &mut CudaSlice<f32>,
        r2: &mut CudaSlice<f32>,
        g1: &CudaSlice<f32>,
        g2: &CudaSlice<f32>,
        w1: &CudaSlice<f32>,
        w2: &CudaSlice<f32>,
    ) -> Result<()> {
        let Pixels { n, chains } =
            shape::weighted_residual(r1.len(), r2.len(), g1.len(), g2.len(), w1.len(), w2.len())?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        k::weighted_residual(self, r1, r2, g1, g2, w1, w2, n32, chains32)
    }

    fn shear_residual_f64(
        &self,
        q1: &mut CudaSlice<f64>,
        q2: &mut CudaSlice<f64>,
        g1: &CudaSlice<f32>,
        g2: &CudaSlice<f32>,
    ) -> Result<()> {
        let Pixels { n, chains } =
            shape::shear_residual_f64(q1.len(), q2.len(), g1.len(), g2.len())?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        k::shear_residual_f64(self, q1, q2, g1, g2, n32, chains32)
    }

    fn weighted_residual_f64(
        &self,
        y1: &mut CudaSlice<f64>,
        y2: &mut CudaSlice<f64>,
        q1: &CudaSlice<f64>,
        q2: &CudaSlice<f64>,
        w1: &CudaSlice<f64>,
        w2: &CudaSlice<f64>,
    ) -> Result<()> {
        let Pixels { n, chains } = shape::weighted_residual_f64(
            y1.len(),
            y2.len(),
            q1.len(),
            q2.len(),
            w1.len(),
            w2.len(),
        )?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        k::weighted_residual_f64(self, y1, y2, q1, q2, w1, w2, n32, chains32)
    }

    // ------------------------------------------------------------ cg.cu

    fn multiply_weights_f64(&self, a: &mut CudaSlice<f64>, w: &CudaSlice<f64>) -> Result<()> {
        let Pixels { n, chains } = shape::multiply_weights_f64(a.len(), w.len())?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        k::multiply_weights_f64(self, a, w, n32, chains32)
    }

    fn cg_initial_residual(
        &self,
        r: &mut CudaSlice<f64>,
        ap: &CudaSlice<f64>,
        u: &CudaSlice<f64>,
        active: &CudaSlice<u32>,
        n: usize,
    ) -> Result<()> {
        let chains = shape::cg_initial_residual(r.len(), ap.len(), u.len(), active.len(), n)?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        k::cg_initial_residual(self, r, ap, u, active, n32, chains32)
    }

    fn cg_update_solution(
        &self,
        u: &mut CudaSlice<f64>,
        r: &mut CudaSlice<f64>,
        p: &CudaSlice<f64>,
        ap: &CudaSlice<f64>,
        alpha: &CudaSlice<f64>,
        active: &CudaSlice<u32>,
        n: usize,
    ) -> Result<()> {
        let chains = shape::cg_update_solution(
            u.len(),
            r.len(),
            p.len(),
            ap.len(),
            alpha.len(),
            active.len(),
            n,
        )?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        k::cg_update_solution(self, u, r, p, ap, alpha, active, n32, chains32)
    }

    fn cg_update_direction(
        &self,
        p: &mut CudaSlice<f64>,
        z: &CudaSlice<f64>,
        beta: &CudaSlice<f64>,
        active: &CudaSlice<u32>,
        n: usize,
    ) -> Result<()> {
        let chains = shape::cg_update_direction(p.len(), z.len(), beta.len(), active.len(), n)?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        k::cg_update_direction(self, p, z, beta, active, n32, chains32)
    }

    // ------------------------------------------------------------ reduce.cu

    fn chain_norms(&self, x: &CudaSlice<f32>, n: usize, out: &mut CudaSlice<f64>) -> Result<()> {
        let chains = shape::chain_norms(x.len(), n, out.len())?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        k::chain_norms(self, x, n32, chains32, out)
    }

    fn chain_dot_f64(
        &self,
        a: &CudaSlice<f64>,
        b: &CudaSlice<f64>,
        n: usize,
        out: &mut CudaSlice<f64>,
    ) -> Result<()> {
        let chains = shape::chain_dot_f64(a.len(), b.len(), n, out.len())?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        k::chain_dot_f64(self, a, b, n32, chains32, out)
    }

    fn hmc_energy_increment(
        &self,
        du: &mut CudaSlice<f64>,
        s: &CudaSlice<f32>,
        s_new: &CudaSlice<f32>,
        xk: &CudaSlice<f32>,
        xprev: &CudaSlice<f32>,
        n: usize,
    ) -> Result<()> {
        let chains =
            shape::hmc_energy_increment(du.len(), s.len(), s_new.len(), xk.len(), xprev.len(), n)?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        k::hmc_energy_increment(self, du, s, s_new, xk, xprev, n32, chains32)
    }

    fn hmc_kinetic_change(
        &self,
        p: &CudaSlice<f32>,
        vp: &CudaSlice<f32>,
        p0: &CudaSlice<f32>,
        vp0: &CudaSlice<f32>,
        n: usize,
        out: &mut CudaSlice<f64>,
    ) -> Result<()> {
        let chains =
            shape::hmc_kinetic_change(p.len(), vp.len(), p0.len(), vp0.len(), n, out.len())?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        k::hmc_kinetic_change(self, p, vp, p0, vp0, n32, chains32, out)
    }
}
