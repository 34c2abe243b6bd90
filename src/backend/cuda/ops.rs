//! [`Backend`] for [`Cuda`]: each method checks its operands as the CPU
//! backend does (same errors) and launches its kernel (kernels/README.md)
//! with the scalars exactly as passed.

use cudarc::driver::CudaSlice;

use super::fft::{inverse_scale_f32, inverse_scale_f64, Kind};
use super::{flat, launch, per_chain, per_map, u32_arg, Cuda};
use crate::backend::{maps_of, same_len, Backend, Elem, NoiseKey};
use crate::error::Result;
use crate::grid::Grid;

/// `len` as the kernels' 64-bit flat length.
fn len64(len: usize) -> u64 {
    len as u64
}

/// Checks a half-spectrum batch (`2 modes` reals per map) against a
/// per-mode multiplier; returns the map count (the CPU's `spec_maps`).
fn spec_maps(name: &'static str, spec_len: usize, modes: usize) -> Result<usize> {
    maps_of(name, spec_len, 2 * modes)
}

/// Three operands of one length (the CPU's `same3`).
fn same3(a: usize, b: usize, c: usize) -> Result<()> {
    same_len("operand", a, b)?;
    same_len("operand", a, c)
}

/// A CG batch and its per-chain mask: returns the chain count (the CPU's
/// `chains_of`).
fn chains_of(a: usize, others: &[usize], active: usize, n: usize) -> Result<usize> {
    let chains = maps_of("vector", a, n)?;
    for &o in others {
        same_len("vector", a, o)?;
    }
    same_len("active", chains, active)?;
    Ok(chains)
}

impl Cuda {
    /// `ks_forward_multiply` / `_f64` arguments: (spec_len, maps).
    fn ks_shape(&self, spec: usize, p1: usize, p2: usize, outs: [usize; 2]) -> Result<(u32, u32)> {
        let maps = spec_maps("kappa_hat", spec, p1)?;
        same_len("p2", p1, p2)?;
        same_len("g1_hat", spec, outs[0])?;
        same_len("g2_hat", spec, outs[1])?;
        Ok((u32_arg("spec_len", p1)?, u32_arg("maps", maps)?))
    }
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
        same_len("copy", dst.len(), src.len())?;
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

    fn fft_forward(
        &self,
        grid: &Grid,
        maps: &CudaSlice<f32>,
        spec: &mut CudaSlice<f32>,
    ) -> Result<()> {
        self.fft_real_to_complex(grid, Kind::R2C, maps, spec)
    }

    fn fft_inverse(
        &self,
        grid: &Grid,
        spec: &mut CudaSlice<f32>,
        maps: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let len = len64(self.fft_complex_to_real(grid, Kind::C2R, spec, maps)?);
        let scale = inverse_scale_f32(grid);
        launch!(
            self,
            "fft_inverse_scale",
            flat(len as usize),
            maps,
            &scale,
            &len
        )
    }

    fn fft_forward_f64(
        &self,
        grid: &Grid,
        maps: &CudaSlice<f64>,
        spec: &mut CudaSlice<f64>,
    ) -> Result<()> {
        self.fft_real_to_complex(grid, Kind::D2Z, maps, spec)
    }

    fn fft_inverse_f64(
        &self,
        grid: &Grid,
        spec: &mut CudaSlice<f64>,
        maps: &mut CudaSlice<f64>,
    ) -> Result<()> {
        let len = len64(self.fft_complex_to_real(grid, Kind::Z2D, spec, maps)?);
        let scale = inverse_scale_f64(grid);
        launch!(
            self,
            "fft_inverse_scale_f64",
            flat(len as usize),
            maps,
            &scale,
            &len
        )
    }

    // ------------------------------------------------------------ philox.cu

    fn fill_normal(
        &self,
        out: &mut CudaSlice<f32>,
        n: usize,
        key: NoiseKey,
        step: u64,
    ) -> Result<()> {
        let chains = maps_of("noise", out.len(), n)?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        let (seed_lo, seed_hi) = (key.seed as u32, (key.seed >> 32) as u32);
        let stream = key.stream as u32;
        let cfg = per_map(n.div_ceil(4), chains);
        launch!(
            self,
            "fill_normal",
            cfg,
            out,
            &n32,
            &chains32,
            &seed_lo,
            &seed_hi,
            &stream,
            &key.first_chain,
            &step
        )
    }

    // ------------------------------------------------------------ spectral.cu

    fn ks_forward_multiply(
        &self,
        kappa_hat: &CudaSlice<f32>,
        p1: &CudaSlice<f32>,
        p2: &CudaSlice<f32>,
        g1_hat: &mut CudaSlice<f32>,
        g2_hat: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let (modes, maps) = self.ks_shape(
            kappa_hat.len(),
            p1.len(),
            p2.len(),
            [g1_hat.len(), g2_hat.len()],
        )?;
        let cfg = per_map(modes as usize, maps as usize);
        launch!(
            self,
            "ks_forward_multiply",
            cfg,
            kappa_hat,
            p1,
            p2,
            g1_hat,
            g2_hat,
            &modes,
            &maps
        )
    }

    fn ks_forward_multiply_f64(
        &self,
        kappa_hat: &CudaSlice<f64>,
        p1: &CudaSlice<f64>,
        p2: &CudaSlice<f64>,
        g1_hat: &mut CudaSlice<f64>,
        g2_hat: &mut CudaSlice<f64>,
    ) -> Result<()> {
        let (modes, maps) = self.ks_shape(
            kappa_hat.len(),
            p1.len(),
            p2.len(),
            [g1_hat.len(), g2_hat.len()],
        )?;
        let cfg = per_map(modes as usize, maps as usize);
        launch!(
            self,
            "ks_forward_multiply_f64",
            cfg,
            kappa_hat,
            p1,
            p2,
            g1_hat,
            g2_hat,
            &modes,
            &maps
        )
    }

    fn ks_adjoint_multiply(
        &self,
        g1_hat: &CudaSlice<f32>,
        g2_hat: &CudaSlice<f32>,
        p1: &CudaSlice<f32>,
        p2: &CudaSlice<f32>,
        kappa_hat: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let (modes, maps) = self.ks_shape(
            kappa_hat.len(),
            p1.len(),
            p2.len(),
            [g1_hat.len(), g2_hat.len()],
        )?;
        let cfg = per_map(modes as usize, maps as usize);
        launch!(
            self,
            "ks_adjoint_multiply",
            cfg,
            g1_hat,
            g2_hat,
            p1,
            p2,
            kappa_hat,
            &modes,
            &maps
        )
    }

    fn ks_adjoint_multiply_f64(
        &self,
        g1_hat: &CudaSlice<f64>,
        g2_hat: &CudaSlice<f64>,
        p1: &CudaSlice<f64>,
        p2: &CudaSlice<f64>,
        kappa_hat: &mut CudaSlice<f64>,
    ) -> Result<()> {
        let (modes, maps) = self.ks_shape(
            kappa_hat.len(),
            p1.len(),
            p2.len(),
            [g1_hat.len(), g2_hat.len()],
        )?;
        let cfg = per_map(modes as usize, maps as usize);
        launch!(
            self,
            "ks_adjoint_multiply_f64",
            cfg,
            g1_hat,
            g2_hat,
            p1,
            p2,
            kappa_hat,
            &modes,
            &maps
        )
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
        let maps = spec_maps("e_hat", e_hat.len(), p1.len())?;
        same_len("b_hat", e_hat.len(), b_hat.len())?;
        same_len("g1_hat", e_hat.len(), g1_hat.len())?;
        same_len("g2_hat", e_hat.len(), g2_hat.len())?;
        same_len("p2", p1.len(), p2.len())?;
        let (modes, maps32) = (u32_arg("spec_len", p1.len())?, u32_arg("maps", maps)?);
        let cfg = per_map(p1.len(), maps);
        launch!(
            self,
            "ks_inverse_eb_multiply",
            cfg,
            g1_hat,
            g2_hat,
            p1,
            p2,
            e_hat,
            b_hat,
            &modes,
            &maps32
        )
    }

    fn gaussian_denoise_gain(
        &self,
        x_hat: &mut CudaSlice<f32>,
        power: &CudaSlice<f64>,
        sigma2: f64,
    ) -> Result<()> {
        let maps = spec_maps("x_hat", x_hat.len(), power.len())?;
        let (modes, maps32) = (u32_arg("spec_len", power.len())?, u32_arg("maps", maps)?);
        let cfg = per_map(power.len(), maps);
        launch!(
            self,
            "gaussian_denoise_gain",
            cfg,
            x_hat,
            power,
            &sigma2,
            &modes,
            &maps32
        )
    }

    fn metric_apply_multiply(&self, x_hat: &mut CudaSlice<f32>, f: &CudaSlice<f32>) -> Result<()> {
        let maps = spec_maps("x_hat", x_hat.len(), f.len())?;
        let (modes, maps32) = (u32_arg("spec_len", f.len())?, u32_arg("maps", maps)?);
        let cfg = per_map(f.len(), maps);
        launch!(
            self,
            "metric_apply_multiply",
            cfg,
            x_hat,
            f,
            &modes,
            &maps32
        )
    }

    fn fourier_scale(&self, x_hat: &mut CudaSlice<f64>, scale: &CudaSlice<f64>) -> Result<()> {
        let maps = spec_maps("x_hat", x_hat.len(), scale.len())?;
        let (modes, maps32) = (u32_arg("spec_len", scale.len())?, u32_arg("maps", maps)?);
        let cfg = per_map(scale.len(), maps);
        launch!(self, "fourier_scale", cfg, x_hat, scale, &modes, &maps32)
    }

    fn diffused_prior_draw_multiply(
        &self,
        z_hat: &mut CudaSlice<f64>,
        power: &CudaSlice<f64>,
        sigma2: f64,
    ) -> Result<()> {
        let maps = spec_maps("z_hat", z_hat.len(), power.len())?;
        let (modes, maps32) = (u32_arg("spec_len", power.len())?, u32_arg("maps", maps)?);
        let cfg = per_map(power.len(), maps);
        launch!(
            self,
            "diffused_prior_draw_multiply",
            cfg,
            z_hat,
            power,
            &sigma2,
            &modes,
            &maps32
        )
    }

    fn map_to_f64(&self, x: &CudaSlice<f32>, y: &mut CudaSlice<f64>) -> Result<()> {
        same_len("map", y.len(), x.len())?;
        let len = len64(x.len());
        launch!(self, "map_to_f64", flat(x.len()), x, y, &len)
    }

    fn map_to_f32(&self, x: &CudaSlice<f64>, y: &mut CudaSlice<f32>) -> Result<()> {
        same_len("map", y.len(), x.len())?;
        let len = len64(x.len());
        launch!(self, "map_to_f32", flat(x.len()), x, y, &len)
    }

    // ------------------------------------------------------------ update.cu

    fn euler_maruyama_step(
        &self,
        x: &mut CudaSlice<f32>,
        s: &CudaSlice<f32>,
        z: &CudaSlice<f32>,
        a: f32,
        b: f32,
    ) -> Result<()> {
        same3(x.len(), s.len(), z.len())?;
        let len = len64(x.len());
        launch!(
            self,
            "euler_maruyama_step",
            flat(x.len()),
            x,
            s,
            z,
            &a,
            &b,
            &len
        )
    }

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
        same3(x.len(), s.len(), z.len())?;
        let chains = maps_of("x", x.len(), n)?;
        same_len("s_norm", chains, s_norm.len())?;
        same_len("z_norm", chains, z_norm.len())?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        let cfg = per_map(n, chains);
        launch!(
            self,
            "langevin_corrector_step",
            cfg,
            x,
            s,
            z,
            s_norm,
            z_norm,
            &snr,
            &n32,
            &chains32
        )
    }

    fn edm_churn_noise(&self, x: &mut CudaSlice<f32>, z: &CudaSlice<f32>, a: f32) -> Result<()> {
        same_len("z", x.len(), z.len())?;
        let len = len64(x.len());
        launch!(self, "edm_churn_noise", flat(x.len()), x, z, &a, &len)
    }

    fn heun_predictor(
        &self,
        d: &mut CudaSlice<f32>,
        x: &CudaSlice<f32>,
        xp: &mut CudaSlice<f32>,
        f: f32,
        h: f32,
    ) -> Result<()> {
        same_len("x", d.len(), x.len())?;
        same_len("xp", d.len(), xp.len())?;
        let len = len64(d.len());
        launch!(
            self,
            "heun_predictor",
            flat(d.len()),
            d,
            x,
            xp,
            &f,
            &h,
            &len
        )
    }

    fn heun_corrector(
        &self,
        x: &mut CudaSlice<f32>,
        d: &CudaSlice<f32>,
        d2: &CudaSlice<f32>,
        h: f32,
        f2: f32,
    ) -> Result<()> {
        same3(x.len(), d.len(), d2.len())?;
        let len = len64(x.len());
        launch!(
            self,
            "heun_corrector",
            flat(x.len()),
            x,
            d,
            d2,
            &h,
            &f2,
            &len
        )
    }

    fn hmc_momentum_half_step(
        &self,
        p: &mut CudaSlice<f32>,
        s: &CudaSlice<f32>,
        e: f32,
    ) -> Result<()> {
        same_len("s", p.len(), s.len())?;
        let len = len64(p.len());
        launch!(
            self,
            "hmc_momentum_half_step",
            flat(p.len()),
            p,
            s,
            &e,
            &len
        )
    }

    fn hmc_position_step(
        &self,
        x: &mut CudaSlice<f32>,
        xprev: Option<&mut CudaSlice<f32>>,
        v: &CudaSlice<f32>,
        e: f32,
    ) -> Result<()> {
        same_len("v", x.len(), v.len())?;
        let len = len64(x.len());
        let cfg = flat(x.len());
        match xprev {
            Some(xp) => {
                same_len("copy", xp.len(), x.len())?;
                launch!(self, "hmc_position_step", cfg, x, xp, v, &e, &len)
            }
            None => {
                // The kernel skips the copy for a null `xprev`.
                let null: u64 = 0;
                launch!(self, "hmc_position_step", cfg, x, &null, v, &e, &len)
            }
        }
    }

    fn hmc_accept(
        &self,
        x: &mut CudaSlice<f32>,
        xk: &CudaSlice<f32>,
        accept: &CudaSlice<u32>,
        n: usize,
    ) -> Result<()> {
        same_len("xk", x.len(), xk.len())?;
        let chains = maps_of("x", x.len(), n)?;
        same_len("accept", chains, accept.len())?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        launch!(
            self,
            "hmc_accept",
            per_map(n, chains),
            x,
            xk,
            accept,
            &n32,
            &chains32
        )
    }

    fn hmc_start_from_map(
        &self,
        x: &mut CudaSlice<f32>,
        start: &CudaSlice<f32>,
        s: f32,
    ) -> Result<()> {
        let n = start.len();
        let chains = maps_of("x", x.len(), n)?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        launch!(
            self,
            "hmc_start_from_map",
            per_map(n, chains),
            x,
            start,
            &s,
            &n32,
            &chains32
        )
    }

    fn diffused_prior_draw_scale(&self, z: &mut CudaSlice<f32>, sigma: f32) -> Result<()> {
        let len = len64(z.len());
        launch!(
            self,
            "diffused_prior_draw_scale",
            flat(z.len()),
            z,
            &sigma,
            &len
        )
    }

    fn langevin_refine_step(
        &self,
        x: &mut CudaSlice<f32>,
        s: &CudaSlice<f32>,
        z: &CudaSlice<f32>,
        a: f32,
        c: f32,
    ) -> Result<()> {
        same3(x.len(), s.len(), z.len())?;
        let len = len64(x.len());
        launch!(
            self,
            "langevin_refine_step",
            flat(x.len()),
            x,
            s,
            z,
            &a,
            &c,
            &len
        )
    }

    // ------------------------------------------------------------ guidance.cu

    fn prior_score(&self, out: &mut CudaSlice<f32>, x: &CudaSlice<f32>, inv: f32) -> Result<()> {
        same_len("x", out.len(), x.len())?;
        let len = len64(x.len());
        launch!(self, "prior_score", flat(x.len()), out, x, &inv, &len)
    }

    fn annealed_weights(&self, w: &CudaSlice<f32>, k: f64, out: &mut CudaSlice<f32>) -> Result<()> {
        same_len("weights", out.len(), w.len())?;
        let n = u32_arg("n", w.len())?;
        launch!(self, "annealed_weights", flat(w.len()), w, &k, out, &n)
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
        let n = g1.len();
        let chains = maps_of("r1", r1.len(), n)?;
        same_len("r2", r1.len(), r2.len())?;
        same3(n, g2.len(), w1.len())?;
        same_len("w2", n, w2.len())?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        let cfg = per_map(n, chains);
        launch!(
            self,
            "weighted_residual",
            cfg,
            r1,
            r2,
            g1,
            g2,
            w1,
            w2,
            &n32,
            &chains32
        )
    }

    fn add_weighted_residual_accumulate(
        &self,
        out: &mut CudaSlice<f32>,
        back: &CudaSlice<f32>,
    ) -> Result<()> {
        same_len("back", out.len(), back.len())?;
        let len = len64(back.len());
        launch!(
            self,
            "add_weighted_residual_accumulate",
            flat(back.len()),
            out,
            back,
            &len
        )
    }

    fn tweedie_score_combine(
        &self,
        out: &mut CudaSlice<f32>,
        d: &CudaSlice<f32>,
        x: &CudaSlice<f32>,
        jv: &CudaSlice<f32>,
        inv: f32,
    ) -> Result<()> {
        same3(out.len(), d.len(), x.len())?;
        same_len("jv", out.len(), jv.len())?;
        let len = len64(x.len());
        launch!(
            self,
            "tweedie_score_combine",
            flat(x.len()),
            out,
            d,
            x,
            jv,
            &inv,
            &len
        )
    }

    fn shear_residual_f64(
        &self,
        q1: &mut CudaSlice<f64>,
        q2: &mut CudaSlice<f64>,
        g1: &CudaSlice<f32>,
        g2: &CudaSlice<f32>,
    ) -> Result<()> {
        let n = g1.len();
        let chains = maps_of("q1", q1.len(), n)?;
        same_len("q2", q1.len(), q2.len())?;
        same_len("g2", n, g2.len())?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        launch!(
            self,
            "shear_residual_f64",
            per_map(n, chains),
            q1,
            q2,
            g1,
            g2,
            &n32,
            &chains32
        )
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
        let n = w1.len();
        let chains = maps_of("y1", y1.len(), n)?;
        same_len("y2", y1.len(), y2.len())?;
        same_len("q1", y1.len(), q1.len())?;
        same_len("q2", y1.len(), q2.len())?;
        same_len("w2", n, w2.len())?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        let cfg = per_map(n, chains);
        launch!(
            self,
            "weighted_residual_f64",
            cfg,
            y1,
            y2,
            q1,
            q2,
            w1,
            w2,
            &n32,
            &chains32
        )
    }

    // ------------------------------------------------------------ cg.cu

    fn multiply_weights_f64(&self, a: &mut CudaSlice<f64>, w: &CudaSlice<f64>) -> Result<()> {
        let n = w.len();
        let chains = maps_of("a", a.len(), n)?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        launch!(
            self,
            "multiply_weights_f64",
            per_map(n, chains),
            a,
            w,
            &n32,
            &chains32
        )
    }

    fn add_assign_f64(&self, a: &mut CudaSlice<f64>, b: &CudaSlice<f64>) -> Result<()> {
        same_len("b", a.len(), b.len())?;
        let len = len64(b.len());
        launch!(self, "add_assign_f64", flat(b.len()), a, b, &len)
    }

    fn cg_initial_residual(
        &self,
        r: &mut CudaSlice<f64>,
        ap: &CudaSlice<f64>,
        u: &CudaSlice<f64>,
        active: &CudaSlice<u32>,
        n: usize,
    ) -> Result<()> {
        let chains = chains_of(r.len(), &[ap.len(), u.len()], active.len(), n)?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        let cfg = per_map(n, chains);
        launch!(
            self,
            "cg_initial_residual",
            cfg,
            r,
            ap,
            u,
            active,
            &n32,
            &chains32
        )
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
        let chains = chains_of(u.len(), &[r.len(), p.len(), ap.len()], active.len(), n)?;
        same_len("alpha", chains, alpha.len())?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        let cfg = per_map(n, chains);
        launch!(
            self,
            "cg_update_solution",
            cfg,
            u,
            r,
            p,
            ap,
            alpha,
            active,
            &n32,
            &chains32
        )
    }

    fn cg_update_direction(
        &self,
        p: &mut CudaSlice<f64>,
        z: &CudaSlice<f64>,
        beta: &CudaSlice<f64>,
        active: &CudaSlice<u32>,
        n: usize,
    ) -> Result<()> {
        let chains = chains_of(p.len(), &[z.len()], active.len(), n)?;
        same_len("beta", chains, beta.len())?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        let cfg = per_map(n, chains);
        launch!(
            self,
            "cg_update_direction",
            cfg,
            p,
            z,
            beta,
            active,
            &n32,
            &chains32
        )
    }

    // ------------------------------------------------------------ reduce.cu

    fn chain_norms(&self, x: &CudaSlice<f32>, n: usize, out: &mut CudaSlice<f64>) -> Result<()> {
        let chains = maps_of("x", x.len(), n)?;
        same_len("norms", chains, out.len())?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        launch!(
            self,
            "chain_norms",
            per_chain(chains),
            x,
            &n32,
            &chains32,
            out
        )
    }

    fn chain_dot_f64(
        &self,
        a: &CudaSlice<f64>,
        b: &CudaSlice<f64>,
        n: usize,
        out: &mut CudaSlice<f64>,
    ) -> Result<()> {
        let chains = maps_of("a", a.len(), n)?;
        same_len("b", a.len(), b.len())?;
        same_len("dots", chains, out.len())?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        launch!(
            self,
            "chain_dot_f64",
            per_chain(chains),
            a,
            b,
            &n32,
            &chains32,
            out
        )
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
        let chains = maps_of("s", s.len(), n)?;
        same_len("du", chains, du.len())?;
        same3(s.len(), s_new.len(), xk.len())?;
        same_len("xprev", s.len(), xprev.len())?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        let cfg = per_chain(chains);
        launch!(
            self,
            "hmc_energy_increment",
            cfg,
            du,
            s,
            s_new,
            xk,
            xprev,
            &n32,
            &chains32
        )
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
        let chains = maps_of("p", p.len(), n)?;
        same_len("out", chains, out.len())?;
        same3(p.len(), vp.len(), p0.len())?;
        same_len("vp0", p.len(), vp0.len())?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        let cfg = per_chain(chains);
        launch!(
            self,
            "hmc_kinetic_change",
            cfg,
            p,
            vp,
            p0,
            vp0,
            &n32,
            &chains32,
            out
        )
    }

    // ------------------------------------------------------------ moments.cu

    fn moments_of_maps(
        &self,
        maps: &CudaSlice<f32>,
        n: usize,
        mean: &mut CudaSlice<f64>,
        m2: &mut CudaSlice<f64>,
        var: &mut CudaSlice<f64>,
    ) -> Result<()> {
        let chains = maps_of("maps", maps.len(), n)?;
        same_len("mean", n, mean.len())?;
        same_len("m2", n, m2.len())?;
        same_len("var", n, var.len())?;
        let (n32, chains32) = (u32_arg("n", n)?, u32_arg("chains", chains)?);
        launch!(
            self,
            "moments_of_maps",
            flat(n),
            maps,
            &n32,
            &chains32,
            mean,
            m2,
            var
        )
    }
}
