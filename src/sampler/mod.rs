//! Posterior sampling by reverse diffusion.
//!
//! A sampler integrates the diffused-posterior score of a [`Model`] (a
//! [`GuidedPosterior`], or any host [`ScoreModel`] such as the exact oracle)
//! from `sigma_max` down to `sigma_min`, batched over chains, on the device of
//! its [`RunSpec`]:
//!
//! - [`SamplerKind::EulerMaruyama`]: the reverse variance-exploding SDE (Song et al. 2021),
//!   `x <- x + (sigma_i² - sigma_{i+1}²) s(x, sigma_i) + sqrt(sigma_i² - sigma_{i+1}²) z`;
//! - [`SamplerKind::PredictorCorrector`]: the same predictor followed by Langevin
//!   corrector steps `x <- x + eps s + sqrt(2 eps) z`, `eps = 2 (r |z| / |s|)²` (Song et al. 2021, alg. 4);
//! - [`SamplerKind::HeunOde`]: the probability-flow ODE `dx/dsigma = -sigma s(x, sigma)`
//!   with Heun's second-order method (Karras et al. 2022, alg. 1);
//! - [`SamplerKind::EdmStochastic`]: Karras et al.'s stochastic sampler (alg. 2);
//! - [`SamplerKind::AnnealedHmc`]: jax-lensing's annealed HMC (Remy et al. 2023):
//!   from the Kaiser–Squires map plus noise, one HMC transition per geometric
//!   level, Metropolis test with the energy change integrated from the score along
//!   the leapfrog path (trapezoid rule; exact for a Gaussian target).
//!
//! An optional [`Refinement`] runs Langevin or HMC steps at the end.
//!
//! Randomness: chain `c` (global index) at step `t` draws from
//! `Philox(seed, Sampler, c, 8 t + sub)`, so the same seed gives bitwise the
//! same chains whatever the batch size or the order of batches.

pub mod engine;
mod guided;
mod hmc;
mod integrators;
pub mod joint_guided;
pub mod joint_oracle;
pub mod moments;
pub mod oracle;
pub mod posterior;
pub mod schedule;
pub mod state;

pub use engine::{Model, ModelBackend, Target};
pub use guided::GuidedScore;
pub use moments::Moments;
pub use oracle::FourierGaussianPosterior;
pub use posterior::{Guidance, GuidedPosterior, ScoreModel, ScoreStats, ShearData};
pub use schedule::Schedule;
pub use state::State;

use crate::backend::cpu::Cpu;
use crate::backend::Device;
use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::rng::{Philox, Stream};

/// The integrator and its own settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerKind {
    /// Reverse VE SDE, Euler–Maruyama.
    EulerMaruyama,
    /// Euler–Maruyama predictor with Langevin corrector steps.
    PredictorCorrector {
        /// Signal-to-noise ratio of the corrector step (0.16 in Song et al.).
        snr: f64,
        /// Corrector steps per level.
        corrector_steps: usize,
    },
    /// Probability-flow ODE, Heun's method.
    HeunOde,
    /// Karras et al.'s stochastic sampler.
    EdmStochastic {
        /// Total churn (0 = the Heun ODE).
        s_churn: f64,
        /// Churn only for sigma in [s_tmin, s_tmax].
        s_tmin: f64,
        /// Upper bound of the churn range.
        s_tmax: f64,
        /// Noise inflation of the churn (1 keeps the target exact).
        s_noise: f64,
    },
    /// Annealed Hamiltonian Monte Carlo.
    AnnealedHmc {
        /// Leapfrog steps per transition.
        leapfrog_steps: usize,
        /// Leapfrog step as a multiple of the level sigma.
        step_scale: f64,
    },
}

impl SamplerKind {
    /// A short name.
    pub fn name(&self) -> &'static str {
        match self {
            SamplerKind::EulerMaruyama => "euler-maruyama",
            SamplerKind::PredictorCorrector { .. } => "predictor-corrector",
            SamplerKind::HeunOde => "heun-ode",
            SamplerKind::EdmStochastic { .. } => "edm-stochastic",
            SamplerKind::AnnealedHmc { .. } => "annealed-hmc",
        }
    }

    /// The default number of noise levels of this integrator, the calibrated
    /// presets of docs/sampling.md that the CLI and the C ABI both use:
    /// 64 for Heun, 128 for EDM, 1000 for Euler–Maruyama, 500 for
    /// predictor–corrector, 600 for annealed HMC.
    pub fn default_levels(&self) -> usize {
        match self {
            SamplerKind::HeunOde => 64,
            SamplerKind::EdmStochastic { .. } => 128,
            SamplerKind::EulerMaruyama => 1000,
            SamplerKind::PredictorCorrector { .. } => 500,
            SamplerKind::AnnealedHmc { .. } => 600,
        }
    }

    /// The default settings of each integrator, by name.
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "euler-maruyama" | "em" => SamplerKind::EulerMaruyama,
            "predictor-corrector" | "pc" => SamplerKind::PredictorCorrector { snr: 0.16, corrector_steps: 1 },
            "heun-ode" | "heun" | "ode" => SamplerKind::HeunOde,
            "edm-stochastic" | "edm" => SamplerKind::EdmStochastic {
                s_churn: 10.0,
                s_tmin: 0.0,
                s_tmax: f64::INFINITY,
                s_noise: 1.0,
            },
            "annealed-hmc" | "hmc" => SamplerKind::AnnealedHmc { leapfrog_steps: 4, step_scale: 0.5 },
            other => {
                return Err(Error::invalid(
                    "sampler",
                    format!("unknown sampler `{other}` (euler-maruyama, predictor-corrector, heun-ode, edm-stochastic, annealed-hmc)"),
                ))
            }
        })
    }
}

/// Extra MCMC steps at a fixed noise level after the main run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Refinement {
    /// Langevin (unadjusted) or HMC steps.
    pub method: RefineMethod,
    /// Number of steps.
    pub steps: usize,
    /// Step size: HMC leapfrog step, or `sqrt(eps)` of Langevin. With a model
    /// metric (a Fourier-diagonal Gaussian approximation of the posterior,
    /// see [`Model::metric`]) in whitened units (0.3–1 for HMC), else in kappa units.
    pub step: f64,
}

/// The refinement kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefineMethod {
    /// Unadjusted Langevin: `x <- x + eps s + sqrt(2 eps) z`, `eps = step²`.
    Langevin,
    /// HMC with 4 leapfrog steps and a Metropolis test.
    Hmc,
}

impl Refinement {
    /// Steps of a refinement unless the caller sets them (CLI and C ABI).
    pub fn default_steps() -> usize {
        20
    }

    /// A refinement with its default step in whitened units (HMC 0.5,
    /// Langevin 0.1; docs/sampling.md) when `step` is `None`.
    pub fn new(method: RefineMethod, steps: usize, step: Option<f64>) -> Self {
        let default = match method {
            RefineMethod::Langevin => 0.1,
            RefineMethod::Hmc => 0.5,
        };
        Refinement {
            method,
            steps,
            step: step.unwrap_or(default),
        }
    }
}

/// Everything a sampling run needs besides the model.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerConfig {
    /// The integrator.
    pub kind: SamplerKind,
    /// Number of noise levels (including both ends).
    pub levels: usize,
    /// Largest level; `None` = 20 x the prior's largest pixel std, capped at
    /// the model's [`Model::sigma_max`] (a learned prior's training range).
    pub sigma_max: Option<f64>,
    /// Smallest level.
    pub sigma_min: f64,
    /// Level spacing; `None` = EDM (rho 7) for ODE/EDM samplers, geometric otherwise.
    pub schedule: Option<Schedule>,
    /// Optional final refinement at `sigma_min`.
    pub refine: Option<Refinement>,
}

impl Default for SamplerConfig {
    /// The calibrated default (see docs/sampling.md): Heun ODE, 64 EDM levels.
    fn default() -> Self {
        SamplerConfig {
            kind: SamplerKind::HeunOde,
            levels: 64,
            sigma_max: None,
            sigma_min: 1e-4,
            schedule: None,
            refine: None,
        }
    }
}

impl SamplerConfig {
    /// The noise levels of this configuration for a model.
    pub fn noise_levels(&self, model: &dyn Model) -> Result<Vec<f64>> {
        let smax = self.sigma_max.unwrap_or_else(|| {
            let s = 20.0 * model.prior_scale();
            model.sigma_max().map_or(s, |m| m.min(s))
        });
        let schedule = self.schedule.unwrap_or(match self.kind {
            SamplerKind::HeunOde | SamplerKind::EdmStochastic { .. } => Schedule::Edm { rho: 7.0 },
            _ => Schedule::Geometric,
        });
        schedule.levels(smax, self.sigma_min, self.levels)
    }
}

/// The chains of a run and what it cost.
#[derive(Debug, Clone)]
pub struct SampleSet {
    /// The grid.
    pub grid: Grid,
    /// Global index of the first chain.
    pub first_chain: u64,
    /// Final maps `[chains][y][x]`.
    pub samples: Vec<f32>,
    /// Final parameters `[chains][p]`, for models with parameters besides
    /// the map ([`Target::param_len`]).
    pub params: Option<Vec<f32>>,
    /// Reduced shear chi² of each final map.
    pub chi2: Vec<f64>,
    /// Metropolis acceptance rate of each chain (HMC only).
    pub acceptance: Option<Vec<f64>>,
    /// Score (denoiser) evaluations per chain.
    pub nfe: u64,
    /// Inner conjugate-gradient iterations, summed over chains.
    pub inner_iterations: u64,
    /// Wall time in seconds.
    pub seconds: f64,
}

impl SampleSet {
    /// Number of chains.
    pub fn chains(&self) -> usize {
        self.samples.len() / self.grid.len()
    }

    /// Per-pixel moments over chains (blocked, order-independent).
    pub fn moments(&self) -> Moments {
        Moments::of_maps(&self.samples, self.grid.len())
    }

    /// Map `i` of the set.
    pub fn sample(&self, i: usize) -> &[f32] {
        let n = self.grid.len();
        &self.samples[i * n..(i + 1) * n]
    }
}

/// One uniform per chain `first..first + chains` at `step` (Metropolis tests).
pub(crate) fn metropolis_uniforms(seed: u64, first: u64, chains: usize, step: u64) -> Vec<f64> {
    (0..chains)
        .map(|c| {
            let mut u = [0.0f64; 1];
            Philox::new(seed, Stream::Metropolis, first + c as u64, step).fill_uniform(&mut u);
            u[0]
        })
        .collect()
}

/// What a run draws, besides the model and the sampler: the seed, the chains
/// (global indices `first_chain..first_chain + chains`), the batch size and
/// the device. The same seed and chains give the same maps whatever the batch
/// size or the order of batches (module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunSpec {
    /// The run seed.
    pub seed: u64,
    /// Global index of the first chain.
    pub first_chain: u64,
    /// Number of chains.
    pub chains: usize,
    /// Chains in memory at once (memory and throughput, never the results):
    /// on a GPU the chains integrated together, on the CPU at most this many
    /// chains run in parallel.
    pub batch: usize,
    /// Where to run.
    pub device: Device,
}

impl RunSpec {
    /// `chains` chains from chain 0, all in one batch, on the CPU.
    pub fn new(seed: u64, chains: usize) -> Self {
        RunSpec {
            seed,
            first_chain: 0,
            chains,
            batch: chains,
            device: Device::Cpu,
        }
    }

    /// The same run from global chain `first` on.
    pub fn from_chain(self, first: u64) -> Self {
        RunSpec {
            first_chain: first,
            ..self
        }
    }

    /// The same run in batches of at most `batch` chains.
    pub fn in_batches(self, batch: usize) -> Self {
        RunSpec { batch, ..self }
    }

    /// The same run on `device`.
    pub fn on(self, device: Device) -> Self {
        RunSpec { device, ..self }
    }
}

/// Runs `run` of `model` with the sampler `cfg` on `run.device` (the engine,
/// [`engine::run`], on that device's backend). `progress(done, total)` is
/// called after every level of every batch.
pub fn sample(
    model: &dyn Model,
    cfg: &SamplerConfig,
    run: &RunSpec,
    progress: &mut (dyn FnMut(usize, usize) + Send),
) -> Result<SampleSet> {
    match run.device {
        Device::Cpu => engine::run(&Cpu::new(), model, cfg, run, progress),
        Device::Cuda(ordinal) => {
            let be = crate::backend::cuda::Cuda::shared(ordinal)?;
            engine::run(be.as_ref(), model, cfg, run, progress)
        }
    }
}
