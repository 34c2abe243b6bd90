//! Annealed HMC (jax-lensing's reference sampler) and fixed-level refinement.
//!
//! The energy change of a leapfrog trajectory `x_0..x_L` is integrated from
//! the score (no log-density is needed, as in jax-lensing's score HMC):
//! `U(x_L) - U(x_0) ≈ -sum_k (s(x_k) + s(x_{k+1}))/2 · (x_{k+1} - x_k)`,
//! exact when the score is linear (Gaussian targets). Per transition the host
//! downloads two f64 per chain (energy and kinetic changes), draws the
//! Metropolis uniforms and uploads the accept flags.

use super::engine::Ctx;
use super::state::State;
use crate::backend::Backend;
use crate::error::Result;
use crate::grid::Grid;
use crate::sampler::{RefineMethod, Refinement};

/// A Fourier-diagonal inverse mass matrix `M^{-1}` (half-spectrum power) and
/// the multipliers derived from it, on the backend.
struct DeviceMetric<B: Backend> {
    grid: Grid,
    inv_mass: B::Buf<f32>,
    sqrt_mass: B::Buf<f32>,
    sqrt_inv_mass: B::Buf<f32>,
}

impl<B: Backend> DeviceMetric<B> {
    /// From `M^{-1}` per mode: uploads `M^{-1}`, `M^{1/2}` (0 where
    /// `M^{-1} = 0`) and `M^{-1/2}`, in f32.
    fn new(be: &B, grid: Grid, inv_mass: &[f64]) -> Result<Self> {
        let inv: Vec<f32> = inv_mass.iter().map(|&v| v as f32).collect();
        let sqrt_mass: Vec<f32> = inv_mass
            .iter()
            .map(|&v| {
                if v > 0.0 {
                    (1.0 / v).sqrt() as f32
                } else {
                    0.0
                }
            })
            .collect();
        let sqrt_inv: Vec<f32> = inv.iter().map(|v| v.sqrt()).collect();
        Ok(DeviceMetric {
            grid,
            inv_mass: be.upload(&inv)?,
            sqrt_mass: be.upload(&sqrt_mass)?,
            sqrt_inv_mass: be.upload(&sqrt_inv)?,
        })
    }

    /// `x <- F^{-1}[f F x]` for every map of a batch (`Metric::apply`);
    /// parameters keep the identity metric.
    fn apply(&self, be: &B, x: &mut State<B>, f: &B::Buf<f32>) -> Result<()> {
        let maps = x.chains();
        let mut spec = be.alloc::<f32>(2 * maps * self.grid.spectral_len())?;
        be.fft_forward(&self.grid, &x.maps, &mut spec)?;
        be.spectral_scale(&mut spec, f)?;
        be.fft_inverse(&self.grid, &mut spec, &mut x.maps)
    }
}

/// One HMC transition of every chain at level `sigma`; returns the per-chain
/// acceptance (0 or 1). With a metric, momenta are `p ~ N(0, M)`, positions
/// move by `eps M^{-1} p` and the kinetic energy is `p^T M^{-1} p / 2`.
fn hmc_transition<B: Backend>(
    ctx: &mut Ctx<B>,
    x: &mut State<B>,
    sigma: f64,
    eps: f64,
    l: usize,
    step: u64,
    metric: Option<&DeviceMetric<B>>,
) -> Result<Vec<f64>> {
    let be = ctx.be;
    let b = x.chains();
    let mut p = x.zeros_like(be)?;
    ctx.normal(&mut p, step, 1)?;
    if let Some(m) = metric {
        m.apply(be, &mut p, &m.sqrt_mass)?;
    }
    let mut p0 = x.zeros_like(be)?;
    p0.copy_from(be, &p)?;
    let mut xk = x.zeros_like(be)?;
    xk.copy_from(be, x)?;
    let mut s = x.zeros_like(be)?;
    ctx.score(&xk, sigma, &mut s)?;
    let mut du = be.alloc::<f64>(b)?;
    let e = eps as f32;
    let mut s_new = x.zeros_like(be)?;
    let mut xprev = x.zeros_like(be)?;
    let mut v = x.zeros_like(be)?;
    for _ in 0..l {
        // p <- p + eps/2 s; x <- x + eps M^{-1} p; p <- p + eps/2 s(x)
        p.axpy(be, &s, 0.5 * e)?;
        match metric {
            Some(m) => {
                v.copy_from(be, &p)?;
                m.apply(be, &mut v, &m.inv_mass)?;
                xk.hmc_position_step(be, &mut xprev, &v, e)?;
            }
            None => xk.hmc_position_step(be, &mut xprev, &p, e)?,
        }
        ctx.score(&xk, sigma, &mut s_new)?;
        p.axpy(be, &s_new, 0.5 * e)?;
        State::hmc_energy_increment(be, &mut du, &s, &s_new, &xk, &xprev)?;
        std::mem::swap(&mut s, &mut s_new);
    }
    let u = ctx.uniforms(b, step);
    let mut dk = be.alloc::<f64>(b)?;
    match metric {
        Some(m) => {
            let mut vp0 = x.zeros_like(be)?;
            v.copy_from(be, &p)?;
            vp0.copy_from(be, &p0)?;
            m.apply(be, &mut v, &m.inv_mass)?;
            m.apply(be, &mut vp0, &m.inv_mass)?;
            State::hmc_kinetic_change(be, &p, &v, &p0, &vp0, &mut dk)?;
        }
        None => State::hmc_kinetic_change(be, &p, &p, &p0, &p0, &mut dk)?,
    }
    let (du, dk) = (be.download(&du)?, be.download(&dk)?);
    let mut accepted = vec![0.0; b];
    let mut flags = vec![0u32; b];
    for c in 0..b {
        let log_ratio = -(du[c] + dk[c]);
        if log_ratio.is_finite() && u[c].ln() < log_ratio {
            flags[c] = 1;
            accepted[c] = 1.0;
        }
    }
    x.hmc_accept(be, &xk, &be.upload(&flags)?)?;
    Ok(accepted)
}

/// Annealed HMC over the levels from the KS map plus `sigma_max` noise;
/// returns the mean acceptance of each chain.
pub(crate) fn annealed<B: Backend>(
    ctx: &mut Ctx<B>,
    levels: &[f64],
    x: &mut State<B>,
    leapfrog_steps: usize,
    step_scale: f64,
    tick: &mut dyn FnMut(usize),
) -> Result<Vec<f64>> {
    let be = ctx.be;
    let b = x.chains();
    ctx.normal(x, 0, 0)?;
    ctx.target.start_hmc(be, levels[0], x)?;
    tick(0);
    let mut acc = vec![0.0f64; b];
    for (i, &sigma) in levels.iter().enumerate() {
        let a = hmc_transition(
            ctx,
            x,
            sigma,
            step_scale * sigma,
            leapfrog_steps.max(1),
            i as u64 + 1,
            None,
        )?;
        acc.iter_mut().zip(&a).for_each(|(t, a)| *t += a);
        if i > 0 {
            tick(i);
        }
    }
    Ok(acc.iter().map(|a| a / levels.len() as f64).collect())
}

/// Refinement steps at level `sigma`, preconditioned by `inv_mass` (the host
/// model's metric, steps then in whitened units) when given; returns the
/// acceptance for HMC.
pub(crate) fn refine<B: Backend>(
    ctx: &mut Ctx<B>,
    sigma: f64,
    r: &Refinement,
    inv_mass: Option<&[f64]>,
    x: &mut State<B>,
    base_step: u64,
    tick: &mut dyn FnMut(usize),
) -> Result<Option<Vec<f64>>> {
    let be = ctx.be;
    let b = x.chains();
    let grid = ctx.grid;
    let metric = match inv_mass {
        Some(m) => Some(DeviceMetric::new(be, grid, m)?),
        None => None,
    };
    match r.method {
        RefineMethod::Langevin => {
            // x <- x + eps M^{-1} s + sqrt(2 eps) M^{-1/2} z, eps = step²
            let eps = r.step * r.step;
            let (a, c) = (eps as f32, (2.0 * eps).sqrt() as f32);
            let mut s = x.zeros_like(be)?;
            let mut z = x.zeros_like(be)?;
            for k in 0..r.steps {
                ctx.score(x, sigma, &mut s)?;
                ctx.normal(&mut z, base_step + k as u64, 0)?;
                if let Some(m) = &metric {
                    m.apply(be, &mut s, &m.inv_mass)?;
                    m.apply(be, &mut z, &m.sqrt_inv_mass)?;
                }
                x.axpby(be, &s, &z, a, c)?;
                tick(k);
            }
            Ok(None)
        }
        RefineMethod::Hmc => {
            let mut acc = vec![0.0f64; b];
            for k in 0..r.steps {
                let a = hmc_transition(
                    ctx,
                    x,
                    sigma,
                    r.step,
                    4,
                    base_step + k as u64,
                    metric.as_ref(),
                )?;
                acc.iter_mut().zip(&a).for_each(|(t, a)| *t += a);
                tick(k);
            }
            Ok(Some(
                acc.iter().map(|a| a / r.steps.max(1) as f64).collect(),
            ))
        }
    }
}
