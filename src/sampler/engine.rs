//! The sampling engine: the batch loop over chains and the integrators of
//! [`crate::sampler`], written once against a compute [`Backend`].
//!
//! A run takes one [`Model`]: its host face gives what the run needs once
//! (the noise levels' bounds, the refinement metric, the final chi²), and
//! [`ModelBackend::target`] puts it on the backend as a [`Target`], the
//! batched score the integrators call. [`crate::sampler::sample`] picks the
//! backend from the run's device; [`run`] runs on a backend you hold.
//!
//! Host work per step is limited to scalars: the level schedule, per-chain
//! Metropolis decisions (one f64 per chain down, accept flags up) and, in the
//! spectral guidance, the conjugate-gradient coefficients.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use super::state::State;
use super::{
    hmc, integrators, RunSpec, SampleSet, SamplerConfig, SamplerKind, ScoreModel, ScoreStats,
};
use crate::backend::cpu::Cpu;
use crate::backend::cuda::Cuda;
use crate::backend::{Backend, NoiseKey};
use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::rng::Stream;

/// What a sampler draws from: the diffused posterior of a problem, with its
/// host-side quantities and its form on each backend.
pub trait Model: Sync {
    /// The grid of the maps.
    fn grid(&self) -> &Grid;

    /// Largest prior pixel standard deviation, which sets the default
    /// `sigma_max` ([`SamplerConfig::noise_levels`]).
    fn prior_scale(&self) -> f64;

    /// The largest noise level the prior is valid at (a learned denoiser's
    /// training range), if limited; the default `sigma_max` does not exceed it.
    fn sigma_max(&self) -> Option<f64> {
        None
    }

    /// A Fourier-diagonal approximation of the covariance of `x_sigma | data`
    /// (half-spectrum pixel power), the inverse mass matrix of preconditioned
    /// HMC/Langevin refinement; `None` = identity.
    fn metric(&self, _sigma: f64) -> Option<Vec<f64>> {
        None
    }

    /// Reduced shear chi² of each map of a batch of final maps.
    fn chi2(&self, maps: &[f32]) -> Result<Vec<f64>>;

    /// This model on the CPU backend.
    fn on_cpu(&self, be: &Cpu) -> Result<Box<dyn Target<Cpu> + '_>>;

    /// This model on a CUDA device, where it has a form there.
    fn on_cuda(&self, be: &Cuda) -> Result<Box<dyn Target<Cuda> + '_>> {
        Err(Error::device(
            be.describe(),
            "this model runs on the CPU only (--device cpu)",
        ))
    }
}

/// A model's batched score on backend `B`: what the integrators call.
pub trait Target<B: Backend> {
    /// Parameters per chain besides the map (0: the map alone).
    fn param_len(&self) -> usize {
        0
    }

    /// Resets per-chain state (warm starts) before a batch of `chains` chains,
    /// so that a chain's result never depends on the other chains of its batch.
    fn begin_batch(&mut self, be: &B, chains: usize) -> Result<()>;

    /// `out = grad log p_sigma(x | data)` for a batch.
    fn score(&mut self, be: &B, x: &State<B>, sigma: f64, out: &mut State<B>)
        -> Result<ScoreStats>;

    /// Turns white noise into a draw from the diffused prior at `sigma_max`.
    fn initial(&self, be: &B, sigma_max: f64, z: &mut State<B>) -> Result<()>;

    /// The annealed-HMC start from white noise `x`: `start + sigma0 x` with
    /// the model's start map (the Kaiser–Squires map of the data), or
    /// [`Target::initial`] without one.
    fn start_hmc(&self, be: &B, sigma0: f64, x: &mut State<B>) -> Result<()>;
}

/// The backends a [`Model`] runs on.
pub trait ModelBackend: Backend + Sized {
    /// `model` on this backend.
    fn target<'a>(&self, model: &'a dyn Model) -> Result<Box<dyn Target<Self> + 'a>>;

    /// Whether [`run`] integrates each chain on its own, chains in parallel
    /// threads (the CPU), rather than in batches (a GPU).
    fn chains_in_parallel(&self) -> bool;
}

impl ModelBackend for Cpu {
    fn target<'a>(&self, model: &'a dyn Model) -> Result<Box<dyn Target<Cpu> + 'a>> {
        model.on_cpu(self)
    }

    fn chains_in_parallel(&self) -> bool {
        !self.is_batched()
    }
}

impl ModelBackend for Cuda {
    fn target<'a>(&self, model: &'a dyn Model) -> Result<Box<dyn Target<Cuda> + 'a>> {
        model.on_cuda(self)
    }

    fn chains_in_parallel(&self) -> bool {
        false
    }
}

/// Every host [`ScoreModel`] (the exact oracles, test models) is a model of
/// the CPU backend.
impl<T: ScoreModel> Model for T {
    fn grid(&self) -> &Grid {
        ScoreModel::grid(self)
    }

    fn prior_scale(&self) -> f64 {
        ScoreModel::prior_scale(self)
    }

    fn sigma_max(&self) -> Option<f64> {
        ScoreModel::sigma_max(self)
    }

    fn metric(&self, sigma: f64) -> Option<Vec<f64>> {
        ScoreModel::metric(self, sigma)
    }

    fn chi2(&self, maps: &[f32]) -> Result<Vec<f64>> {
        ScoreModel::chi2(self, maps)
    }

    fn on_cpu(&self, _be: &Cpu) -> Result<Box<dyn Target<Cpu> + '_>> {
        Ok(Box::new(HostModel(self)))
    }
}

/// A [`ScoreModel`] on the CPU backend (whose buffers are `Vec`s).
struct HostModel<'a, T: ScoreModel>(&'a T);

impl<T: ScoreModel> Target<Cpu> for HostModel<'_, T> {
    fn begin_batch(&mut self, _be: &Cpu, chains: usize) -> Result<()> {
        self.0.begin_batch(chains);
        Ok(())
    }

    fn score(
        &mut self,
        _be: &Cpu,
        x: &State<Cpu>,
        sigma: f64,
        out: &mut State<Cpu>,
    ) -> Result<ScoreStats> {
        self.0.score(&x.maps, sigma, &mut out.maps)
    }

    fn initial(&self, _be: &Cpu, sigma_max: f64, z: &mut State<Cpu>) -> Result<()> {
        self.0.initial(sigma_max, &mut z.maps)
    }

    fn start_hmc(&self, be: &Cpu, sigma0: f64, x: &mut State<Cpu>) -> Result<()> {
        match self.0.start_map() {
            Some(start) => be.hmc_start_from_map(&mut x.maps, &start, sigma0 as f32),
            None => self.0.initial(sigma0, &mut x.maps),
        }
    }
}

/// Corrector steps per level that draw from the sampler stream's sub-slots
/// `1..=7` (slot 0 is the predictor's noise).
const CORRECTOR_SUBSLOTS: u64 = 7;

/// Per-batch state of the integrators: the backend, the model's target, the
/// noise keys and the work counters.
pub(crate) struct Ctx<'a, 't, B: Backend> {
    pub be: &'a B,
    pub target: &'a mut (dyn Target<B> + 't),
    pub grid: Grid,
    pub param_len: usize,
    pub seed: u64,
    pub first: u64,
    pub nfe: u64,
    pub inner: u64,
}

impl<B: Backend> Ctx<'_, '_, B> {
    /// A zeroed state of `chains` chains.
    pub fn state(&self, chains: usize) -> Result<State<B>> {
        State::zeros(self.be, chains, self.grid.len(), self.param_len)
    }

    /// `out = score(x, sigma)`, counting one evaluation per chain.
    pub fn score(&mut self, x: &State<B>, sigma: f64, out: &mut State<B>) -> Result<()> {
        let st: ScoreStats = self.target.score(self.be, x, sigma, out)?;
        self.nfe += 1;
        self.inner += st.inner_iterations;
        Ok(())
    }

    fn key(&self) -> NoiseKey {
        NoiseKey {
            seed: self.seed,
            stream: Stream::Sampler,
            first_chain: self.first,
        }
    }

    /// Standard normals for every chain of the batch at `(step, sub)`.
    pub fn normal(&self, z: &mut State<B>, step: u64, sub: u64) -> Result<()> {
        z.fill_normal(self.be, self.key(), 8 * step + sub, false)
    }

    /// Standard normals of Langevin corrector step `j` (of `m` per level) after
    /// predictor step `step`. Steps `j < 7` use the sampler stream's sub-slots
    /// `8 step + 1 + j` (the layout of earlier releases, so that their seeds
    /// reproduce); later ones use [`Stream::Corrector`] at counter
    /// `step m + j`, so every corrector step of a run has noise of its own
    /// ([`check_counters`] keeps that counter within 32 bits).
    pub fn corrector_normal(&self, z: &mut State<B>, step: u64, j: u64, m: u64) -> Result<()> {
        if j < CORRECTOR_SUBSLOTS {
            return self.normal(z, step, 1 + j);
        }
        z.fill_normal(self.be, self.key(), step * m + j, true)
    }

    /// One uniform per chain at `step` (Metropolis tests, drawn on the host).
    pub fn uniforms(&self, chains: usize, step: u64) -> Vec<f64> {
        super::metropolis_uniforms(self.seed, self.first, chains, step)
    }
}

/// Runs the chains of `run` (global indices `run.first_chain..`) of `model`
/// on backend `be` (`run.device` is not read: the backend is given).
/// Backends that batch ([`ModelBackend::chains_in_parallel`] false: CUDA)
/// integrate batches of at most `run.batch` chains one after the other; the
/// CPU integrates every chain on its own, chains in parallel on the rayon
/// pool (its operations gain nothing from batching, and a chain then does
/// exactly the inner iterations it needs). Either way a chain's result is the
/// same. `progress(done, total)` is called as levels complete.
pub fn run<B: ModelBackend>(
    be: &B,
    model: &dyn Model,
    cfg: &SamplerConfig,
    run: &RunSpec,
    progress: &mut (dyn FnMut(usize, usize) + Send),
) -> Result<SampleSet> {
    let _release = crate::nn::workspace::ReleaseOnDrop;
    let (n_chains, batch) = (run.chains, run.batch);
    if n_chains == 0 {
        return Err(Error::invalid("chains", "need at least one chain"));
    }
    if batch == 0 {
        return Err(Error::invalid("batch", "batch size must be at least 1"));
    }
    if run.first_chain.checked_add(n_chains as u64).is_none() {
        return Err(Error::invalid(
            "first_chain",
            format!(
                "chains {}.. + {n_chains} overflow the 64-bit chain index",
                run.first_chain
            ),
        ));
    }
    check_counters(cfg, cfg.levels)?;
    check_kind(&cfg.kind)?;
    let levels = cfg.noise_levels(model)?;
    check_refinement(cfg)?;
    let t0 = Instant::now();
    // the refinement's preconditioner at sigma_min, the same for every batch
    let metric = cfg
        .refine
        .and_then(|_| model.metric(levels[levels.len() - 1]));
    let plan = Plan {
        cfg,
        levels: &levels,
        metric: metric.as_deref(),
        grid: *model.grid(),
        seed: run.seed,
    };
    let steps_per_chain = levels.len() + cfg.refine.map_or(0, |r| r.steps);
    let outs: Vec<BatchOut> = if be.chains_in_parallel() {
        let total = n_chains * steps_per_chain;
        let done = AtomicUsize::new(0);
        // the callback and the last count it reported
        let progress = Mutex::new((0usize, progress));
        let tick = || {
            let d = done.fetch_add(1, Ordering::Relaxed) + 1;
            // a busy callback is skipped, not waited for; the last tick always
            // reports, and the counts it sees only go up
            let guard = if d == total {
                progress.lock().ok()
            } else {
                progress.try_lock().ok()
            };
            if let Some(mut g) = guard {
                if d > g.0 {
                    g.0 = d;
                    (g.1)(d, total);
                }
            }
        };
        let one_chain = |c: usize| -> Result<BatchOut> {
            let mut target = be.target(model)?;
            let first = run.first_chain + c as u64;
            plan.batch(be, &mut *target, first, 1, &mut |_| tick())
        };
        // at most `batch` chains in memory at once
        let workers = rayon::current_num_threads().min(n_chains).min(batch);
        if workers <= 1 {
            // one thread (as under MPI_THREAD_SINGLE): no other thread is made
            (0..n_chains).map(one_chain).collect::<Result<Vec<_>>>()?
        } else {
            on_workers(workers, n_chains, &one_chain)?
        }
    } else {
        let mut target = be.target(model)?;
        let n_batches = n_chains.div_ceil(batch);
        let total = n_batches * steps_per_chain;
        let mut done = 0usize;
        let mut outs = Vec::with_capacity(n_batches);
        for bi in 0..n_batches {
            let b = batch.min(n_chains - bi * batch);
            let first = run.first_chain + (bi * batch) as u64;
            outs.push(plan.batch(be, &mut *target, first, b, &mut |_| {
                done += 1;
                progress(done, total);
            })?);
        }
        outs
    };
    let grid = plan.grid;
    let mut samples = Vec::with_capacity(n_chains * grid.len());
    let (mut params, mut acceptance): (Option<Vec<f32>>, Option<Vec<f64>>) = (None, None);
    let (mut nfe, mut inner) = (0u64, 0u64);
    for out in outs {
        samples.extend(out.maps);
        if let Some(p) = out.params {
            params.get_or_insert_with(Vec::new).extend(p);
        }
        if let Some(a) = out.acceptance {
            acceptance.get_or_insert_with(Vec::new).extend(a);
        }
        nfe = out.nfe;
        inner += out.inner;
    }
    let chi2 = model.chi2(&samples)?;
    Ok(SampleSet {
        grid,
        first_chain: run.first_chain,
        samples,
        params,
        chi2,
        acceptance,
        nfe,
        inner_iterations: inner,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Runs `job(c)` for `c in 0..jobs` on `workers` threads, each taking the
/// next job when done, and returns the results in job order. Each thread
/// runs its jobs in a one-thread rayon pool of its own: a chain's operations
/// do not split across threads, so the threads never interleave chains (which
/// would multiply the working sets in the caches).
fn on_workers<T: Send>(
    workers: usize,
    jobs: usize,
    job: &(dyn Fn(usize) -> Result<T> + Sync),
) -> Result<Vec<T>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<T>>>> = Mutex::new((0..jobs).map(|_| None).collect());
    // takes jobs until none is left; a failed or panicking job stops the others
    let take_jobs = || loop {
        let c = next.fetch_add(1, Ordering::Relaxed);
        if c >= jobs {
            return;
        }
        let stop = StopOnUnwind(&next, jobs);
        let r = job(c);
        std::mem::forget(stop);
        let failed = r.is_err();
        if let Ok(mut all) = results.lock() {
            all[c] = Some(r);
        }
        if failed {
            next.store(jobs, Ordering::Relaxed);
        }
    };
    let worker = || -> Result<()> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .use_current_thread()
            .build()
            .map_err(|e| Error::invalid("threads", format!("cannot build a thread pool: {e}")))?;
        pool.install(take_jobs);
        Ok(())
    };
    let started: Vec<Result<()>> = std::thread::scope(|scope| {
        // a thread the system refuses is one worker less
        let handles: Vec<_> = (0..workers)
            .filter_map(|_| std::thread::Builder::new().spawn_scoped(scope, worker).ok())
            .collect();
        if handles.is_empty() {
            // no thread at all: every job on this one
            take_jobs();
        }
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::invalid("threads", "a sampling thread panicked"))
                })
            })
            .collect()
    });
    started.into_iter().collect::<Result<Vec<()>>>()?;
    let all = results
        .into_inner()
        .map_err(|_| Error::invalid("threads", "a sampling thread panicked"))?;
    // a failed job's error comes first; the jobs not run after it leave gaps
    let mut out = Vec::with_capacity(jobs);
    let mut gap = false;
    for r in all {
        match r {
            Some(Ok(v)) => out.push(v),
            Some(Err(e)) => return Err(e),
            None => gap = true,
        }
    }
    if gap {
        return Err(Error::invalid("threads", "a chain was not run"));
    }
    Ok(out)
}

/// Stops the other workers from taking jobs if dropped while unwinding (a
/// job panicked); forgotten after a job returns.
struct StopOnUnwind<'a>(&'a AtomicUsize, usize);

impl Drop for StopOnUnwind<'_> {
    fn drop(&mut self) {
        self.0.store(self.1, Ordering::Relaxed);
    }
}

/// What every batch of a run shares.
struct Plan<'a> {
    cfg: &'a SamplerConfig,
    levels: &'a [f64],
    metric: Option<&'a [f64]>,
    grid: Grid,
    seed: u64,
}

/// The final state of a batch and what it cost.
struct BatchOut {
    maps: Vec<f32>,
    params: Option<Vec<f32>>,
    acceptance: Option<Vec<f64>>,
    /// Score evaluations per chain.
    nfe: u64,
    /// Inner iterations summed over the batch's chains.
    inner: u64,
}

impl Plan<'_> {
    /// Integrates chains `first..first + b` with `target`; `tick` after every level.
    fn batch<B: Backend>(
        &self,
        be: &B,
        target: &mut dyn Target<B>,
        first: u64,
        b: usize,
        tick: &mut dyn FnMut(usize),
    ) -> Result<BatchOut> {
        let (cfg, levels) = (self.cfg, self.levels);
        target.begin_batch(be, b)?;
        let param_len = target.param_len();
        let mut ctx = Ctx {
            be,
            target,
            grid: self.grid,
            param_len,
            seed: self.seed,
            first,
            nfe: 0,
            inner: 0,
        };
        let mut x = ctx.state(b)?;
        let mut acc = match cfg.kind {
            SamplerKind::EulerMaruyama => {
                integrators::euler_maruyama(&mut ctx, levels, &mut x, None, tick)?;
                None
            }
            SamplerKind::PredictorCorrector {
                snr,
                corrector_steps,
            } => {
                let corrector = Some((snr, corrector_steps));
                integrators::euler_maruyama(&mut ctx, levels, &mut x, corrector, tick)?;
                None
            }
            SamplerKind::HeunOde => {
                integrators::edm(&mut ctx, levels, &mut x, None, tick)?;
                None
            }
            SamplerKind::EdmStochastic {
                s_churn,
                s_tmin,
                s_tmax,
                s_noise,
            } => {
                let churn = Some((s_churn, s_tmin, s_tmax, s_noise));
                integrators::edm(&mut ctx, levels, &mut x, churn, tick)?;
                None
            }
            SamplerKind::AnnealedHmc {
                leapfrog_steps,
                step_scale,
            } => Some(hmc::annealed(
                &mut ctx,
                levels,
                &mut x,
                leapfrog_steps,
                step_scale,
                tick,
            )?),
        };
        if let Some(r) = &cfg.refine {
            let sigma = levels[levels.len() - 1];
            let base = refine_base_step(levels.len());
            let a = hmc::refine(&mut ctx, sigma, r, self.metric, &mut x, base, tick)?;
            acc = merge_acceptance(acc, a);
        }
        let maps = be.download(&x.maps)?;
        check_diverged(&cfg.kind, &maps)?;
        let params = match &x.params {
            Some(p) => {
                let p = be.download(p)?;
                check_diverged(&cfg.kind, &p)?;
                Some(p)
            }
            None => None,
        };
        Ok(BatchOut {
            maps,
            params,
            acceptance: acc,
            nfe: ctx.nfe,
            inner: ctx.inner,
        })
    }
}

/// The integrator's own settings: a positive finite corrector SNR.
fn check_kind(kind: &SamplerKind) -> Result<()> {
    if let SamplerKind::PredictorCorrector { snr, .. } = *kind {
        if !(snr.is_finite() && snr > 0.0) {
            return Err(Error::invalid(
                "snr",
                format!("corrector SNR must be positive and finite, got {snr}"),
            ));
        }
    }
    Ok(())
}

/// Every noise draw of a run has its own 32-bit step word: `8 step + slot`
/// on the sampler stream (the last step is the refinement's, or the last
/// level's) and `step m + j` on the corrector stream (`Ctx::corrector_normal`);
/// both must stay below 2^32.
fn check_counters(cfg: &SamplerConfig, levels: usize) -> Result<()> {
    if let SamplerKind::PredictorCorrector {
        corrector_steps, ..
    } = cfg.kind
    {
        if levels as u128 * corrector_steps as u128 > u32::MAX as u128 {
            return Err(Error::invalid(
                "corrector_steps",
                format!(
                    "{corrector_steps} corrector steps x {levels} levels exceed the 2^32 noise counters of a chain"
                ),
            ));
        }
    }
    let last = match &cfg.refine {
        // refine_base_step, in u128
        Some(r) => 8 * levels as u128 + 64 + r.steps as u128,
        None => levels as u128,
    };
    if 8 * last + 7 > u32::MAX as u128 {
        return Err(Error::invalid(
            "levels",
            format!(
                "{levels} levels{} exceed the 2^32 noise counters of a chain",
                cfg.refine.map_or(String::new(), |r| format!(
                    " and {} refinement steps",
                    r.steps
                ))
            ),
        ));
    }
    Ok(())
}

/// The HMC/Langevin refinement step size must be positive and finite.
fn check_refinement(cfg: &SamplerConfig) -> Result<()> {
    if let Some(r) = &cfg.refine {
        if !(r.step.is_finite() && r.step > 0.0) {
            return Err(Error::invalid(
                "refine",
                format!("step must be positive, got {}", r.step),
            ));
        }
    }
    Ok(())
}

/// Fails if a batch of final maps holds NaN or infinity.
fn check_diverged(kind: &SamplerKind, x: &[f32]) -> Result<()> {
    if x.iter().any(|v| !v.is_finite()) {
        return Err(Error::invalid(
            "sampler",
            format!(
                "{} diverged (non-finite values); use more levels or a smaller step",
                kind.name()
            ),
        ));
    }
    Ok(())
}

/// Mean acceptance of the main run and of the refinement, where both exist.
fn merge_acceptance(a0: Option<Vec<f64>>, a1: Option<Vec<f64>>) -> Option<Vec<f64>> {
    match (a0, a1) {
        (Some(a0), Some(a1)) => Some(a0.iter().zip(&a1).map(|(p, q)| 0.5 * (p + q)).collect()),
        (a0, a1) => a0.or(a1),
    }
}

/// The first Philox step of the refinement (after every level's steps).
fn refine_base_step(levels: usize) -> u64 {
    8 * levels as u64 + 64
}
