//! Reverse-diffusion integrators on a backend: Euler–Maruyama (with the
//! Langevin corrector) and the Heun/EDM samplers (formulas in the module docs
//! of `sampler`).

use super::engine::Ctx;
use super::state::State;
use crate::backend::Backend;
use crate::error::Result;

/// Euler–Maruyama on the reverse VE SDE, optionally with Langevin corrector
/// steps `(snr, steps)` after each predictor step.
pub(crate) fn euler_maruyama<B: Backend>(
    ctx: &mut Ctx<B>,
    levels: &[f64],
    x: &mut State<B>,
    corrector: Option<(f64, usize)>,
    tick: &mut dyn FnMut(usize),
) -> Result<()> {
    let be = ctx.be;
    let chains = x.chains();
    ctx.normal(x, 0, 0)?;
    ctx.target.initial(be, levels[0], x)?;
    tick(0);
    let mut s = x.zeros_like(be)?;
    let mut z = x.zeros_like(be)?;
    let (mut s_norm, mut z_norm) = (be.alloc::<f64>(chains)?, be.alloc::<f64>(chains)?);
    for i in 0..levels.len() - 1 {
        let step = i as u64 + 1;
        ctx.score(x, levels[i], &mut s)?;
        let dt = levels[i] * levels[i] - levels[i + 1] * levels[i + 1];
        ctx.normal(&mut z, step, 0)?;
        x.axpby(be, &s, &z, dt as f32, dt.sqrt() as f32)?;
        if let Some((snr, m)) = corrector {
            for j in 0..m {
                ctx.score(x, levels[i + 1], &mut s)?;
                ctx.corrector_normal(&mut z, step, j as u64, m as u64)?;
                s.chain_norms(be, &mut s_norm)?;
                z.chain_norms(be, &mut z_norm)?;
                x.langevin_corrector_step(be, &s, &z, &s_norm, &z_norm, snr)?;
            }
        }
        tick(i + 1);
    }
    Ok(())
}

/// Karras et al.'s sampler: Heun steps on the probability-flow ODE, with churn
/// `(s_churn, s_tmin, s_tmax, s_noise)` when given (alg. 2), none otherwise (alg. 1).
pub(crate) fn edm<B: Backend>(
    ctx: &mut Ctx<B>,
    levels: &[f64],
    x: &mut State<B>,
    churn: Option<(f64, f64, f64, f64)>,
    tick: &mut dyn FnMut(usize),
) -> Result<()> {
    let be = ctx.be;
    ctx.normal(x, 0, 0)?;
    ctx.target.initial(be, levels[0], x)?;
    tick(0);
    let steps = levels.len() - 1;
    let mut d = x.zeros_like(be)?;
    let mut d2 = x.zeros_like(be)?;
    let mut xp = x.zeros_like(be)?;
    let mut z = x.zeros_like(be)?;
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
            ctx.normal(&mut z, i as u64 + 1, 0)?;
            let a = ((sh * sh - si * si).sqrt() * s_noise) as f32;
            x.axpy(be, &z, a)?;
        }
        // d = dx/dsigma = -sigma s(x, sigma)
        ctx.score(x, sh, &mut d)?;
        d.heun_predictor(be, x, &mut xp, -sh as f32, (sn - sh) as f32)?;
        ctx.score(&xp, sn, &mut d2)?;
        x.heun_corrector(be, &d, &d2, 0.5 * ((sn - sh) as f32), -sn as f32)?;
        tick(i + 1);
    }
    Ok(())
}
