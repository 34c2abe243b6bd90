//! Reverse-diffusion integrators (formulas in the module docs of `sampler`).

use rayon::prelude::*;

use super::Ctx;
use crate::error::Result;
use crate::rng::Stream;

/// Euler–Maruyama on the reverse VE SDE, optionally with Langevin corrector
/// steps `(snr, steps)` after each predictor step.
pub(crate) fn euler_maruyama(
    ctx: &mut Ctx,
    levels: &[f64],
    x: &mut [f32],
    corrector: Option<(f64, usize)>,
    tick: &mut dyn FnMut(usize),
) -> Result<()> {
    let n = ctx.n;
    ctx.normal(x, Stream::Sampler, 0, 0);
    ctx.model.initial(levels[0], x)?;
    tick(0);
    let mut s = vec![0.0f32; x.len()];
    let mut z = vec![0.0f32; x.len()];
    for i in 0..levels.len() - 1 {
        let step = i as u64 + 1;
        ctx.score(x, levels[i], &mut s)?;
        let dt = levels[i] * levels[i] - levels[i + 1] * levels[i + 1];
        ctx.normal(&mut z, Stream::Sampler, step, 0);
        let (a, b) = (dt as f32, dt.sqrt() as f32);
        x.par_iter_mut()
            .zip(s.par_iter().zip(z.par_iter()))
            .for_each(|(x, (s, z))| *x += a * s + b * z);
        if let Some((snr, m)) = corrector {
            for j in 0..m {
                ctx.score(x, levels[i + 1], &mut s)?;
                ctx.normal(&mut z, Stream::Sampler, step, 1 + j as u64 % 7);
                x.par_chunks_mut(n)
                    .zip(s.par_chunks(n).zip(z.par_chunks(n)))
                    .for_each(|(x, (s, z))| {
                        let sn = s.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
                        let zn = z.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
                        if sn > 0.0 {
                            let eps = 2.0 * (snr * zn / sn).powi(2);
                            let (a, b) = (eps as f32, (2.0 * eps).sqrt() as f32);
                            x.iter_mut()
                                .zip(s.iter().zip(z))
                                .for_each(|(x, (s, z))| *x += a * s + b * z);
                        }
                    });
            }
        }
        tick(i + 1);
    }
    Ok(())
}

/// Karras et al.'s sampler: Heun steps on the probability-flow ODE, with churn
/// `(s_churn, s_tmin, s_tmax, s_noise)` when given (alg. 2), none otherwise (alg. 1).
pub(crate) fn edm(
    ctx: &mut Ctx,
    levels: &[f64],
    x: &mut [f32],
    churn: Option<(f64, f64, f64, f64)>,
    tick: &mut dyn FnMut(usize),
) -> Result<()> {
    ctx.normal(x, Stream::Sampler, 0, 0);
    ctx.model.initial(levels[0], x)?;
    tick(0);
    let steps = levels.len() - 1;
    let mut d = vec![0.0f32; x.len()];
    let mut d2 = vec![0.0f32; x.len()];
    let mut xp = vec![0.0f32; x.len()];
    let mut z = vec![0.0f32; x.len()];
    for i in 0..steps {
        let (si, sn) = (levels[i], levels[i + 1]);
        let gamma = match churn {
            Some((c, tmin, tmax, _)) if si >= tmin && si <= tmax => {
                (c / steps as f64).min(2f64.sqrt() - 1.0)
            }
            _ => 0.0,
        };
        let sh = si * (1.0 + gamma);
        if gamma > 0.0 {
            let s_noise = churn.map_or(1.0, |c| c.3);
            ctx.normal(&mut z, Stream::Sampler, i as u64 + 1, 0);
            let a = ((sh * sh - si * si).sqrt() * s_noise) as f32;
            x.par_iter_mut()
                .zip(z.par_iter())
                .for_each(|(x, z)| *x += a * z);
        }
        // d = dx/dsigma = -sigma s(x, sigma)
        ctx.score(x, sh, &mut d)?;
        let h = (sn - sh) as f32;
        let f = -sh as f32;
        d.par_iter_mut().for_each(|v| *v *= f);
        xp.par_iter_mut()
            .zip(x.par_iter().zip(d.par_iter()))
            .for_each(|(p, (x, d))| *p = x + h * d);
        ctx.score(&xp, sn, &mut d2)?;
        let f2 = -sn as f32;
        x.par_iter_mut()
            .zip(d.par_iter().zip(d2.par_iter()))
            .for_each(|(x, (d, d2))| *x += 0.5 * h * (d + f2 * d2));
        tick(i + 1);
    }
    Ok(())
}
