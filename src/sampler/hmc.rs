//! Annealed HMC (jax-lensing's reference sampler) and fixed-level refinement.
//!
//! The energy change of a leapfrog trajectory `x_0..x_L` is integrated from
//! the score (no log-density is needed, as in jax-lensing's score HMC):
//! `U(x_L) - U(x_0) ≈ -sum_k (s(x_k) + s(x_{k+1}))/2 · (x_{k+1} - x_k)`,
//! exact when the score is linear (Gaussian targets).

use rayon::prelude::*;

use super::{Ctx, RefineMethod, Refinement};
use crate::error::Result;
use crate::rng::Stream;

/// One HMC transition of every chain at level `sigma`; returns the per-chain
/// acceptance (0 or 1).
fn hmc_transition(
    ctx: &mut Ctx,
    x: &mut [f32],
    sigma: f64,
    eps: f64,
    l: usize,
    step: u64,
) -> Result<Vec<f64>> {
    let n = ctx.n;
    let b = x.len() / n;
    let mut p = vec![0.0f32; x.len()];
    ctx.normal(&mut p, Stream::Sampler, step, 1);
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
        xk.par_iter_mut()
            .zip(p.par_iter())
            .for_each(|(x, p)| *x += e * p);
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
    let mut accepted = vec![0.0; b];
    for c in 0..b {
        let r = c * n..(c + 1) * n;
        let dk: f64 = r
            .clone()
            .map(|i| 0.5 * ((p[i] as f64).powi(2) - (p0[i] as f64).powi(2)))
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
        )?;
        acc.iter_mut().zip(&a).for_each(|(t, a)| *t += a);
        if i > 0 {
            tick(i);
        }
    }
    Ok(acc.iter().map(|a| a / levels.len() as f64).collect())
}

/// Refinement steps at level `sigma`; returns the acceptance for HMC.
pub(crate) fn refine(
    ctx: &mut Ctx,
    sigma: f64,
    r: &Refinement,
    x: &mut [f32],
    base_step: u64,
    tick: &mut dyn FnMut(usize),
) -> Result<Option<Vec<f64>>> {
    let b = x.len() / ctx.n;
    match r.method {
        RefineMethod::Langevin => {
            let eps = r.step * r.step;
            let (a, c) = (eps as f32, (2.0 * eps).sqrt() as f32);
            let mut s = vec![0.0f32; x.len()];
            let mut z = vec![0.0f32; x.len()];
            for k in 0..r.steps {
                ctx.score(x, sigma, &mut s)?;
                ctx.normal(&mut z, Stream::Sampler, base_step + k as u64, 0);
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
                let a = hmc_transition(ctx, x, sigma, r.step, 4, base_step + k as u64)?;
                acc.iter_mut().zip(&a).for_each(|(t, a)| *t += a);
                tick(k);
            }
            Ok(Some(
                acc.iter().map(|a| a / r.steps.max(1) as f64).collect(),
            ))
        }
    }
}
