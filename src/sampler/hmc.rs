//! Annealed HMC (jax-lensing's reference sampler) and fixed-level refinement.
//!
//! The energy change of a leapfrog trajectory `x_0..x_L` is integrated from
//! the score (no log-density is needed, as in jax-lensing's score HMC):
//! `U(x_L) - U(x_0) ≈ -sum_k (s(x_k) + s(x_{k+1}))/2 · (x_{k+1} - x_k)`,
//! exact when the score is linear (Gaussian targets).

use rayon::prelude::*;

use num_complex::Complex;

use super::{Ctx, RefineMethod, Refinement};
use crate::error::Result;
use crate::fft::Fft2;
use crate::grid::Grid;
use crate::rng::Stream;

/// A Fourier-diagonal inverse mass matrix `M^{-1}` (half-spectrum power).
pub(crate) struct Metric {
    fft: Fft2<f32>,
    /// `M^{-1}` per mode (f32).
    pub inv_mass: Vec<f32>,
    /// `M^{1/2}`: turns white noise into momenta `p ~ N(0, M)`.
    pub sqrt_mass: Vec<f32>,
}

impl Metric {
    pub fn new(grid: &Grid, inv_mass: &[f64]) -> Self {
        Metric {
            fft: Fft2::new(grid.nx, grid.ny),
            inv_mass: inv_mass.iter().map(|&v| v as f32).collect(),
            sqrt_mass: inv_mass
                .iter()
                .map(|&v| {
                    if v > 0.0 {
                        (1.0 / v).sqrt() as f32
                    } else {
                        0.0
                    }
                })
                .collect(),
        }
    }

    /// `M^{-1/2}`: the noise gain of preconditioned Langevin steps.
    pub fn sqrt_inv_mass(&self) -> Vec<f32> {
        self.inv_mass.iter().map(|v| v.sqrt()).collect()
    }

    /// `x <- F^{-1}[f F x]` for every map of a batch.
    fn apply(&self, x: &mut [f32], f: &[f32]) {
        let n = self.fft.map_len();
        x.par_chunks_mut(n).for_each(|m| {
            let mut s = vec![Complex::new(0.0f32, 0.0); self.fft.spectral_len()];
            self.fft.forward(m, &mut s);
            s.iter_mut().zip(f).for_each(|(v, g)| *v *= *g);
            self.fft.inverse(&s, m);
        });
    }
}

/// One HMC transition of every chain at level `sigma`; returns the per-chain
/// acceptance (0 or 1). With a metric, momenta are `p ~ N(0, M)`, positions move
/// by `eps M^{-1} p` and the kinetic energy is `p^T M^{-1} p / 2`.
fn hmc_transition(
    ctx: &mut Ctx,
    x: &mut [f32],
    sigma: f64,
    eps: f64,
    l: usize,
    step: u64,
    metric: Option<&Metric>,
) -> Result<Vec<f64>> {
    let n = ctx.n;
    let b = x.len() / n;
    let mut p = vec![0.0f32; x.len()];
    ctx.normal(&mut p, Stream::Sampler, step, 1);
    if let Some(m) = metric {
        m.apply(&mut p, &m.sqrt_mass);
    }
    let p0 = p.clone();
    let mut xk = x.to_vec();
    let mut s = vec![0.0f32; x.len()];
    ctx.score(&xk, sigma, &mut s)?;
    let mut du = vec![0.0f64; b];
    let e = eps as f32;
    let mut s_new = vec![0.0f32; x.len()];
    for _ in 0..l {
        // p <- p + eps/2 s; x <- x + eps p; p <- p + eps/2 s(x)
        p.par_iter_mut()
            .zip(s.par_iter())
            .for_each(|(p, s)| *p += 0.5 * e * s);
        let xprev = xk.clone();
        let mut v = p.clone();
        if let Some(m) = metric {
            m.apply(&mut v, &m.inv_mass);
        }
        xk.par_iter_mut()
            .zip(v.par_iter())
            .for_each(|(x, v)| *x += e * v);
        ctx.score(&xk, sigma, &mut s_new)?;
        p.par_iter_mut()
            .zip(s_new.par_iter())
            .for_each(|(p, s)| *p += 0.5 * e * s);
        for (c, d) in du.iter_mut().enumerate() {
            let mut acc = 0.0f64;
            for i in c * n..(c + 1) * n {
                acc += 0.5 * (s[i] as f64 + s_new[i] as f64) * (xk[i] as f64 - xprev[i] as f64);
            }
            *d -= acc;
        }
        std::mem::swap(&mut s, &mut s_new);
    }
    let u = ctx.uniforms(b, step);
    let (mut vp, mut vp0) = (p.clone(), p0.clone());
    if let Some(m) = metric {
        m.apply(&mut vp, &m.inv_mass);
        m.apply(&mut vp0, &m.inv_mass);
    }
    let mut accepted = vec![0.0; b];
    for c in 0..b {
        let r = c * n..(c + 1) * n;
        let dk: f64 = r
            .clone()
            .map(|i| 0.5 * (p[i] as f64 * vp[i] as f64 - p0[i] as f64 * vp0[i] as f64))
            .sum();
        let log_ratio = -(du[c] + dk);
        if log_ratio.is_finite() && u[c].ln() < log_ratio {
            x[r.clone()].copy_from_slice(&xk[r]);
            accepted[c] = 1.0;
        }
    }
    Ok(accepted)
}

/// Annealed HMC over geometric levels from the KS map plus `sigma_max` noise;
/// returns the mean acceptance of each chain.
pub(crate) fn annealed(
    ctx: &mut Ctx,
    levels: &[f64],
    x: &mut [f32],
    leapfrog_steps: usize,
    step_scale: f64,
    tick: &mut dyn FnMut(usize),
) -> Result<Vec<f64>> {
    let n = ctx.n;
    let b = x.len() / n;
    ctx.normal(x, Stream::Sampler, 0, 0);
    match ctx.model.start_map() {
        Some(start) => {
            let s = levels[0] as f32;
            x.par_chunks_mut(n)
                .for_each(|m| m.iter_mut().zip(&start).for_each(|(x, k)| *x = k + s * *x));
        }
        None => ctx.model.initial(levels[0], x)?,
    }
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

/// Refinement steps at level `sigma`, preconditioned by the model's metric
/// when it has one (steps then in whitened units); returns the acceptance for HMC.
pub(crate) fn refine(
    ctx: &mut Ctx,
    sigma: f64,
    r: &Refinement,
    x: &mut [f32],
    base_step: u64,
    tick: &mut dyn FnMut(usize),
) -> Result<Option<Vec<f64>>> {
    let b = x.len() / ctx.n;
    let metric = ctx
        .model
        .metric(sigma)
        .map(|m| Metric::new(ctx.model.grid(), &m));
    match r.method {
        RefineMethod::Langevin => {
            // x <- x + eps M^{-1} s + sqrt(2 eps) M^{-1/2} z, eps = step²
            let eps = r.step * r.step;
            let (a, c) = (eps as f32, (2.0 * eps).sqrt() as f32);
            let mut s = vec![0.0f32; x.len()];
            let mut z = vec![0.0f32; x.len()];
            for k in 0..r.steps {
                ctx.score(x, sigma, &mut s)?;
                ctx.normal(&mut z, Stream::Sampler, base_step + k as u64, 0);
                if let Some(m) = &metric {
                    m.apply(&mut s, &m.inv_mass);
                    m.apply(&mut z, &m.sqrt_inv_mass());
                }
                x.par_iter_mut()
                    .zip(s.par_iter().zip(z.par_iter()))
                    .for_each(|(x, (s, z))| *x += a * s + c * z);
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
