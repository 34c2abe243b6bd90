//! The sampler on a compute [`Backend`]: every integrator of
//! [`crate::sampler`] with the Gaussian prior and every guidance scheme,
//! written as a sequence of backend operations (one CUDA kernel each).
//!
//! On [`crate::backend::cpu::Cpu`] the engine reproduces
//! [`crate::sampler::sample`] with a [`GuidedPosterior`] of a
//! [`GaussianPrior`] *bitwise* (same seed, same noise, same arithmetic;
//! `tests/device_engine.rs`); on CUDA it is the same launch sequence, with
//! elementwise kernels bitwise and FFTs/reductions to rounding.
//!
//! Host work per step is limited to scalars: the level schedule, per-chain
//! Metropolis decisions (a download of one f64 per chain) and the
//! conjugate-gradient coefficients of the spectral guidance (one f64 per
//! chain per iteration).

mod gaussian;
mod hmc;
mod integrators;

use std::time::Instant;

pub use gaussian::DeviceGaussianPosterior;

use super::{
    check_diverged, check_refinement, merge_acceptance, refine_base_step, GuidedPosterior,
    SampleSet, SamplerConfig, SamplerKind, ScoreModel, ScoreStats,
};
use crate::backend::{Backend, Device, NoiseKey};
use crate::error::{Error, Result};
use crate::prior::{GaussianPrior, Prior};
use crate::rng::Stream;
use crate::sampler::{Guidance, ShearData};

/// Per-batch state of the device integrators: the backend, the model, the
/// noise keys and the work counters (the device twin of `sampler::Ctx`).
pub(crate) struct Ctx<'a, B: Backend> {
    pub be: &'a B,
    pub model: &'a mut DeviceGaussianPosterior<B>,
    pub n: usize,
    pub seed: u64,
    pub first: u64,
    pub nfe: u64,
    pub inner: u64,
}

impl<B: Backend> Ctx<'_, B> {
    /// `out = score(x, sigma)`, counting one evaluation per chain.
    pub fn score(&mut self, x: &B::Buf<f32>, sigma: f64, out: &mut B::Buf<f32>) -> Result<()> {
        let st: ScoreStats = self.model.score(self.be, x, sigma, out)?;
        self.nfe += 1;
        self.inner += st.inner_iterations;
        Ok(())
    }

    /// Standard normals for every chain of the batch at `(step, sub)`.
    pub fn normal(&self, z: &mut B::Buf<f32>, step: u64, sub: u64) -> Result<()> {
        let key = NoiseKey {
            seed: self.seed,
            stream: Stream::Sampler,
            first_chain: self.first,
        };
        self.be.fill_normal(z, self.n, key, 8 * step + sub)
    }

    /// One uniform per chain at `step` (Metropolis tests, drawn on the host).
    pub fn uniforms(&self, chains: usize, step: u64) -> Vec<f64> {
        super::metropolis_uniforms(self.seed, self.first, chains, step)
    }
}

/// Runs `n_chains` chains (global indices `first_chain..`) of the Gaussian
/// prior's posterior on `backend`, in batches of at most `batch`: the device
/// counterpart of [`crate::sampler::sample`] with
/// `GuidedPosterior::new(prior, data, guidance)`, with the same results for
/// the same seed. `progress(done, total)` is called after every level of
/// every batch.
#[allow(clippy::too_many_arguments)]
pub fn sample<B: Backend>(
    backend: &B,
    prior: &GaussianPrior,
    data: &ShearData,
    guidance: Guidance,
    cfg: &SamplerConfig,
    seed: u64,
    first_chain: u64,
    n_chains: usize,
    batch: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<SampleSet> {
    if n_chains == 0 {
        return Err(Error::invalid("chains", "need at least one chain"));
    }
    if batch == 0 {
        return Err(Error::invalid("batch", "batch size must be at least 1"));
    }
    // The host model gives the levels, the metric and the final chi² exactly
    // as on the CPU (and checks the guidance settings).
    let host = GuidedPosterior::new(prior, data, guidance)?;
    let levels = cfg.noise_levels(&host)?;
    check_refinement(cfg)?;
    let grid = *prior.grid();
    let n = grid.len();
    let t0 = Instant::now();
    let mut model = DeviceGaussianPosterior::new(backend, prior, data, guidance)?;
    let mut samples = Vec::with_capacity(n_chains * n);
    let mut acceptance: Option<Vec<f64>> = None;
    let (mut nfe, mut inner) = (0u64, 0u64);
    let n_batches = n_chains.div_ceil(batch);
    let steps_per_batch = levels.len() + cfg.refine.map_or(0, |r| r.steps);
    let total = n_batches * steps_per_batch;
    let mut done = 0usize;
    for bi in 0..n_batches {
        let b = batch.min(n_chains - bi * batch);
        model.begin_batch(backend, b)?;
        let metric = cfg
            .refine
            .and_then(|_| host.metric(levels[levels.len() - 1]));
        let mut ctx = Ctx {
            be: backend,
            model: &mut model,
            n,
            seed,
            first: first_chain + (bi * batch) as u64,
            nfe: 0,
            inner: 0,
        };
        let mut tick = |_: usize| {
            done += 1;
            progress(done, total);
        };
        let mut x = backend.alloc::<f32>(b * n)?;
        let mut acc = match cfg.kind {
            SamplerKind::EulerMaruyama => {
                integrators::euler_maruyama(&mut ctx, &levels, &mut x, None, &mut tick)?;
                None
            }
            SamplerKind::PredictorCorrector {
                snr,
                corrector_steps,
            } => {
                let corrector = Some((snr, corrector_steps));
                integrators::euler_maruyama(&mut ctx, &levels, &mut x, corrector, &mut tick)?;
                None
            }
            SamplerKind::HeunOde => {
                integrators::edm(&mut ctx, &levels, &mut x, None, &mut tick)?;
                None
            }
            SamplerKind::EdmStochastic {
                s_churn,
                s_tmin,
                s_tmax,
                s_noise,
            } => {
                let churn = Some((s_churn, s_tmin, s_tmax, s_noise));
                integrators::edm(&mut ctx, &levels, &mut x, churn, &mut tick)?;
                None
            }
            SamplerKind::AnnealedHmc {
                leapfrog_steps,
                step_scale,
            } => Some(hmc::annealed(
                &mut ctx,
                &levels,
                &mut x,
                leapfrog_steps,
                step_scale,
                &mut tick,
            )?),
        };
        if let Some(r) = &cfg.refine {
            let sigma = levels[levels.len() - 1];
            let base = refine_base_step(levels.len());
            let a = hmc::refine(
                &mut ctx,
                sigma,
                r,
                metric.as_deref(),
                &mut x,
                base,
                &mut tick,
            )?;
            acc = merge_acceptance(acc, a);
        }
        if let Some(a) = acc {
            acceptance.get_or_insert_with(Vec::new).extend(a);
        }
        let host_x = backend.download(&x)?;
        check_diverged(&cfg.kind, &host_x)?;
        nfe = ctx.nfe;
        inner += ctx.inner;
        samples.extend_from_slice(&host_x);
    }
    let chi2 = host.chi2(&samples)?;
    Ok(SampleSet {
        grid,
        first_chain,
        samples,
        chi2,
        acceptance,
        nfe,
        inner_iterations: inner,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Runs a guided posterior on `device`: [`crate::sampler::sample`] on the CPU,
/// this engine on a CUDA device (Gaussian prior only, for now; the kernels of
/// the learned prior's U-Net come next). Same arguments and results as
/// [`crate::sampler::sample`].
#[allow(clippy::too_many_arguments)]
pub fn sample_on(
    device: Device,
    post: &GuidedPosterior,
    cfg: &SamplerConfig,
    seed: u64,
    first_chain: u64,
    n_chains: usize,
    batch: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<SampleSet> {
    match device {
        Device::Cpu => super::sample(post, cfg, seed, first_chain, n_chains, batch, progress),
        Device::Cuda(ordinal) => {
            let prior = post.prior().as_gaussian().ok_or_else(|| {
                Error::device(
                    device.to_string(),
                    format!(
                        "the CUDA backend runs the Gaussian prior only; the {} prior runs on the CPU (--device cpu)",
                        post.prior().name()
                    ),
                )
            })?;
            let be = crate::backend::cuda::Cuda::shared(ordinal)?;
            sample(
                be.as_ref(),
                prior,
                post.data(),
                post.guidance(),
                cfg,
                seed,
                first_chain,
                n_chains,
                batch,
                progress,
            )
        }
    }
}
