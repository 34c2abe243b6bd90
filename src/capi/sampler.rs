//! The sampler handle: a configured posterior-sampling run and its results.

use super::problem::LensdiffProblem;
use super::{
    guard, handle, handle_mut, out_ptr, output, register, release, CError, CResult, Kind,
    LensdiffStatus,
};
use std::sync::Arc;

use super::joint::JointModel;
use crate::backend::Device;
use crate::prior::{GaussianPrior, NeuralPrior};
use crate::sampler::joint_guided::{joint_defaults, to_physical};
use crate::sampler::Moments;
use crate::sampler::{engine, sample, RunSpec};
use crate::sampler::{
    Guidance, GuidedPosterior, RefineMethod, Refinement, SampleSet, SamplerConfig, SamplerKind,
    ShearData,
};

/// Probability-flow ODE, Heun's method (the default).
pub const LENSDIFF_SAMPLER_HEUN: i32 = 0;
/// Karras et al.'s stochastic sampler.
pub const LENSDIFF_SAMPLER_EDM: i32 = 1;
/// Reverse SDE, Euler–Maruyama.
pub const LENSDIFF_SAMPLER_EULER_MARUYAMA: i32 = 2;
/// Predictor–corrector.
pub const LENSDIFF_SAMPLER_PREDICTOR_CORRECTOR: i32 = 3;
/// Annealed HMC (jax-lensing).
pub const LENSDIFF_SAMPLER_ANNEALED_HMC: i32 = 4;

/// Spectral (Woodbury) guidance, exact for the Gaussian prior (the default).
pub const LENSDIFF_GUIDANCE_SPECTRAL: i32 = 0;
/// Noise-inflated likelihood with coefficient `anneal_c`.
pub const LENSDIFF_GUIDANCE_ANNEALED: i32 = 1;
/// Tweedie/DPS guidance.
pub const LENSDIFF_GUIDANCE_TWEEDIE: i32 = 2;
/// Tweedie guidance with noise inflated by the prior's posterior variance.
pub const LENSDIFF_GUIDANCE_TWEEDIE_INFLATED: i32 = 3;

/// Run on the CPU (host threads; the default).
pub const LENSDIFF_DEVICE_CPU: i32 = 0;
/// Run on a CUDA GPU (`device_ordinal`; Gaussian prior).
pub const LENSDIFF_DEVICE_CUDA: i32 = 1;

/// No refinement (the default).
pub const LENSDIFF_REFINE_NONE: i32 = 0;
/// Preconditioned Langevin refinement at sigma_min.
pub const LENSDIFF_REFINE_LANGEVIN: i32 = 1;
/// Preconditioned HMC refinement at sigma_min.
pub const LENSDIFF_REFINE_HMC: i32 = 2;

/// Size of the first version of [`LensdiffSamplerConfig`] (0.1): the least a
/// caller's `struct_size` may say.
const CONFIG_V1_SIZE: usize = 88;

/// Sampler settings. Always initialise with [`lensdiff_sampler_config_init`],
/// which sets `struct_size` (later versions may append fields; the library
/// reads only the fields that `struct_size` covers).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct LensdiffSamplerConfig {
    /// `sizeof(lensdiff_sampler_config)` as compiled by the caller.
    pub struct_size: u32,
    /// `LENSDIFF_SAMPLER_*`.
    pub sampler: i32,
    /// `LENSDIFF_GUIDANCE_*`.
    pub guidance: i32,
    /// Number of noise levels (0 = the sampler's default).
    pub levels: u32,
    /// Largest noise level (0 = 20 x the prior's largest pixel std).
    pub sigma_max: f64,
    /// Smallest noise level.
    pub sigma_min: f64,
    /// Annealed guidance coefficient c.
    pub anneal_c: f64,
    /// Spectral guidance: inner conjugate-gradient tolerance.
    pub inner_tol: f64,
    /// `LENSDIFF_REFINE_*`.
    pub refine: i32,
    /// Refinement steps.
    pub refine_steps: u32,
    /// Refinement step in whitened units (0 = 0.5 for HMC, 0.1 for Langevin).
    pub refine_step: f64,
    /// Random seed.
    pub seed: u64,
    /// Number of chains.
    pub chains: u32,
    /// Chains in memory at once (~ 6 x batch x map size x 4 bytes): on a GPU the
    /// chains integrated together; on the CPU, chains run in parallel, at most
    /// `batch` and at most the rayon pool's thread count at a time.
    pub batch: u32,
    /// Global index of the first chain (to split chains across processes; MPI
    /// runs number their chains from it too).
    pub first_chain: u64,
    /// `LENSDIFF_DEVICE_*` (a caller whose `struct_size` predates this field gets the CPU).
    pub device_kind: i32,
    /// CUDA device ordinal (as `CUDA_VISIBLE_DEVICES` numbers them).
    pub device_ordinal: i32,
}

impl Default for LensdiffSamplerConfig {
    fn default() -> Self {
        LensdiffSamplerConfig {
            struct_size: std::mem::size_of::<LensdiffSamplerConfig>() as u32,
            sampler: LENSDIFF_SAMPLER_HEUN,
            guidance: LENSDIFF_GUIDANCE_SPECTRAL,
            levels: 0,
            sigma_max: 0.0,
            sigma_min: 1e-4,
            anneal_c: 0.5,
            inner_tol: 1e-4,
            refine: LENSDIFF_REFINE_NONE,
            refine_steps: Refinement::default_steps() as u32,
            refine_step: 0.0,
            seed: 1,
            chains: 16,
            batch: 16,
            first_chain: 0,
            device_kind: LENSDIFF_DEVICE_CPU,
            device_ordinal: 0,
        }
    }
}

impl LensdiffSamplerConfig {
    /// The device the caller chose.
    pub(crate) fn device(&self) -> CResult<Device> {
        match (self.device_kind, self.device_ordinal) {
            (LENSDIFF_DEVICE_CPU, _) => Ok(Device::Cpu),
            (LENSDIFF_DEVICE_CUDA, i) if i >= 0 => Ok(Device::Cuda(i as usize)),
            (LENSDIFF_DEVICE_CUDA, i) => Err(CError::new(
                LensdiffStatus::InvalidArgument,
                format!("device_ordinal must be >= 0, got {i}"),
            )),
            (k, _) => Err(CError::new(
                LensdiffStatus::InvalidArgument,
                format!("unknown device_kind {k}"),
            )),
        }
    }

    /// The Rust configuration, guidance and run size.
    pub(crate) fn to_rust(self) -> CResult<(SamplerConfig, Guidance)> {
        let bad = |what: &str, v: i32| {
            CError::new(
                LensdiffStatus::InvalidArgument,
                format!("unknown {what} {v}"),
            )
        };
        let kind = SamplerKind::from_name(match self.sampler {
            LENSDIFF_SAMPLER_HEUN => "heun",
            LENSDIFF_SAMPLER_EDM => "edm",
            LENSDIFF_SAMPLER_EULER_MARUYAMA => "em",
            LENSDIFF_SAMPLER_PREDICTOR_CORRECTOR => "pc",
            LENSDIFF_SAMPLER_ANNEALED_HMC => "hmc",
            v => return Err(bad("sampler", v)),
        })?;
        let guidance = match self.guidance {
            LENSDIFF_GUIDANCE_SPECTRAL => Guidance::Spectral {
                tol: self.inner_tol,
            },
            LENSDIFF_GUIDANCE_ANNEALED => Guidance::Annealed { c: self.anneal_c },
            LENSDIFF_GUIDANCE_TWEEDIE => Guidance::Tweedie { inflate: false },
            LENSDIFF_GUIDANCE_TWEEDIE_INFLATED => Guidance::Tweedie { inflate: true },
            v => return Err(bad("guidance", v)),
        };
        let refine = match self.refine {
            LENSDIFF_REFINE_NONE => None,
            LENSDIFF_REFINE_LANGEVIN | LENSDIFF_REFINE_HMC => {
                let method = if self.refine == LENSDIFF_REFINE_HMC {
                    RefineMethod::Hmc
                } else {
                    RefineMethod::Langevin
                };
                let step = (self.refine_step != 0.0).then_some(self.refine_step);
                Some(Refinement::new(method, self.refine_steps as usize, step))
            }
            v => return Err(bad("refinement", v)),
        };
        if !(self.sigma_max.is_finite() && self.sigma_max >= 0.0) {
            return Err(CError::new(
                LensdiffStatus::InvalidArgument,
                "sigma_max must be >= 0 (0 = automatic)",
            ));
        }
        if self.chains == 0 || self.batch == 0 {
            return Err(CError::new(
                LensdiffStatus::InvalidArgument,
                "chains and batch must be at least 1",
            ));
        }
        let cfg = SamplerConfig {
            kind,
            levels: if self.levels == 0 {
                kind.default_levels()
            } else {
                self.levels as usize
            },
            sigma_max: (self.sigma_max > 0.0).then_some(self.sigma_max),
            sigma_min: self.sigma_min,
            schedule: None,
            refine,
        };
        Ok((cfg, guidance))
    }
}

/// What a sampler samples: the map under a Gaussian prior, or parameters and
/// map under a joint prior ([`super::joint`]).
enum SamplerPrior {
    Map(GaussianPrior),
    /// A learned map prior ([`super::model`]).
    Neural(Box<NeuralPrior>),
    Joint(Arc<JointModel>),
}

/// Opaque: a sampler bound to a copy of a problem's data and prior.
pub struct LensdiffSampler {
    prior: SamplerPrior,
    data: ShearData,
    cfg: SamplerConfig,
    guidance: Guidance,
    /// Seed, chains, batch and device.
    run: RunSpec,
    /// A CUDA backend bound to the caller's stream
    /// ([`lensdiff_sampler_set_cuda_stream`]).
    cuda: Option<std::sync::Arc<crate::backend::cuda::Cuda>>,
    result: Option<SampleSet>,
    /// Moments merged over all ranks by an MPI run.
    merged: Option<Moments>,
    /// Inner CG iterations of all chains of all ranks, by an MPI run.
    inner_all_ranks: Option<u64>,
    /// A joint run's parameter samples `[chains][p]` (physical units).
    theta: Option<Vec<f64>>,
}

impl LensdiffSampler {
    /// Registers a sampler of `prior` for the problem's data and the caller's
    /// configuration.
    unsafe fn create(
        pr: &LensdiffProblem,
        cfg: *const LensdiffSamplerConfig,
        prior: impl FnOnce(&ShearData, Guidance) -> CResult<SamplerPrior>,
    ) -> CResult<*mut LensdiffSampler> {
        let c = read_config(cfg)?;
        let (mut rcfg, guidance) = c.to_rust()?;
        let device = c.device()?;
        let (g1, g2) = pr.shear()?;
        let data = ShearData::new(g1.to_vec(), g2.to_vec(), pr.noise()?)?;
        let prior = prior(&data, guidance)?;
        if let (SamplerPrior::Neural(_), Device::Cuda(_)) = (&prior, device) {
            return Err(CError::new(
                LensdiffStatus::Unsupported,
                "the learned prior runs on the CPU for now: set device_kind = LENSDIFF_DEVICE_CPU",
            ));
        }
        if let SamplerPrior::Joint(_) = prior {
            // the integrators' joint-state defaults (em: 2000 levels; pc: SNR 0.08, 1000 levels)
            let (kind, levels) = joint_defaults(rcfg.kind);
            rcfg.kind = kind;
            if c.levels == 0 {
                rcfg.levels = levels;
            }
        }
        Ok(register(
            Box::new(LensdiffSampler {
                prior,
                data,
                cfg: rcfg,
                guidance,
                run: RunSpec {
                    seed: c.seed,
                    first_chain: c.first_chain,
                    chains: c.chains as usize,
                    batch: c.batch as usize,
                    device,
                },
                cuda: None,
                result: None,
                merged: None,
                inner_all_ranks: None,
                theta: None,
            }),
            Kind::Sampler,
        ))
    }

    /// A joint sampler of `model` (CPU, no refinement).
    pub(crate) unsafe fn create_joint(
        pr: &LensdiffProblem,
        cfg: *const LensdiffSamplerConfig,
        model: Arc<JointModel>,
    ) -> CResult<*mut LensdiffSampler> {
        let c = read_config(cfg)?;
        if c.device()? != Device::Cpu {
            return Err(CError::new(
                LensdiffStatus::Unsupported,
                "joint sampling runs on the CPU for now: set device_kind = LENSDIFF_DEVICE_CPU",
            ));
        }
        if c.refine != LENSDIFF_REFINE_NONE {
            return Err(CError::new(
                LensdiffStatus::Unsupported,
                "refinement is for map samplers only: set refine = LENSDIFF_REFINE_NONE",
            ));
        }
        Self::create(pr, cfg, |data, guidance| {
            model.check(data, guidance)?;
            Ok(SamplerPrior::Joint(model))
        })
    }

    /// The joint prior of a joint sampler.
    pub(crate) fn joint_model(&self) -> Option<&JointModel> {
        match &self.prior {
            SamplerPrior::Joint(m) => Some(m),
            SamplerPrior::Map(_) | SamplerPrior::Neural(_) => None,
        }
    }

    /// A joint run's parameter samples.
    pub(crate) fn theta(&self) -> CResult<&[f64]> {
        if self.joint_model().is_none() {
            return Err(CError::new(
                LensdiffStatus::InvalidArgument,
                "a map sampler draws no parameters: make a joint sampler (lensdiff_joint_sampler_create)",
            ));
        }
        self.theta.as_deref().ok_or_else(|| {
            CError::new(
                LensdiffStatus::CallOrder,
                "no results yet: call lensdiff_sampler_run first",
            )
        })
    }

    /// Stores a run's results: a joint run's in physical units (parameters,
    /// maps and their moments, from `merged` after an MPI run).
    /// Nothing changes where the conversion fails.
    fn store(
        &mut self,
        mut set: SampleSet,
        merged: Option<Moments>,
        inner_all_ranks: Option<u64>,
    ) -> CResult<()> {
        let (theta, merged) = match &self.prior {
            SamplerPrior::Map(_) | SamplerPrior::Neural(_) => (None, merged),
            SamplerPrior::Joint(m) => {
                let phys = to_physical(m.space(), m.sigma_d(), &mut set, merged.as_ref())?;
                (Some(phys.theta), Some(phys.moments))
            }
        };
        self.theta = theta;
        self.merged = merged;
        self.inner_all_ranks = inner_all_ranks;
        self.result = Some(set);
        Ok(())
    }
}

/// The caller's sampler config: the fields its `struct_size` covers (at
/// least the first version's), the rest at their defaults (size-prefixed ABI).
unsafe fn read_config(cfg: *const LensdiffSamplerConfig) -> CResult<LensdiffSamplerConfig> {
    if cfg.is_null() {
        return Err(CError::new(LensdiffStatus::NullPointer, "cfg is NULL"));
    }
    let size = std::ptr::read_unaligned(cfg as *const u32) as usize;
    let ours = std::mem::size_of::<LensdiffSamplerConfig>();
    if size < CONFIG_V1_SIZE {
        return Err(CError::new(
            LensdiffStatus::InvalidArgument,
            format!("cfg->struct_size is {size}, expected at least {CONFIG_V1_SIZE}: call lensdiff_sampler_config_init"),
        ));
    }
    let mut c = LensdiffSamplerConfig::default();
    std::ptr::copy_nonoverlapping(
        cfg as *const u8,
        &mut c as *mut LensdiffSamplerConfig as *mut u8,
        size.min(ours),
    );
    c.struct_size = ours as u32;
    Ok(c)
}

fn sampler<'a>(s: *const LensdiffSampler) -> CResult<&'a LensdiffSampler> {
    handle(s, Kind::Sampler, "sampler")
}

fn results<'a>(s: *const LensdiffSampler) -> CResult<&'a SampleSet> {
    sampler(s)?.result.as_ref().ok_or_else(|| {
        CError::new(
            LensdiffStatus::CallOrder,
            "no results yet: call lensdiff_sampler_run first",
        )
    })
}

/// Fills `cfg` with the defaults (Heun ODE, 64 levels, spectral guidance,
/// 16 chains, seed 1) and sets `struct_size`.
///
/// # Safety
/// `cfg` must be valid for writing a `lensdiff_sampler_config`.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_sampler_config_init(
    cfg: *mut LensdiffSamplerConfig,
) -> LensdiffStatus {
    guard(|| {
        *out_ptr(cfg, "cfg")? = LensdiffSamplerConfig::default();
        Ok(())
    })
}

/// Creates a sampler for a problem (which needs shear, noise and a prior; it
/// is copied, so the problem may change or be destroyed afterwards). The
/// prior is the problem's learned one where one is loaded
/// (`lensdiff_problem_load_model*`: CPU only, shared with the problem, not
/// copied), else its Gaussian prior.
///
/// # Safety
/// `p` a live problem, `cfg` an initialised config, `out` valid for one pointer.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_sampler_create(
    p: *const LensdiffProblem,
    cfg: *const LensdiffSamplerConfig,
    out: *mut *mut LensdiffSampler,
) -> LensdiffStatus {
    guard(|| {
        let out = out_ptr(out, "out")?;
        let pr = handle(p, Kind::Problem, "problem")?;
        *out = LensdiffSampler::create(pr, cfg, |data, guidance| match &pr.model {
            Some(model) => {
                let prior = super::model::neural_prior(pr, model, guidance)?;
                GuidedPosterior::new(&prior, data, guidance)?;
                Ok(SamplerPrior::Neural(Box::new(prior)))
            }
            None => {
                let prior = GaussianPrior::new(pr.grid, pr.power()?.to_vec())?;
                GuidedPosterior::new(&prior, data, guidance)?;
                Ok(SamplerPrior::Map(prior))
            }
        })?;
        Ok(())
    })
}

/// Destroys a sampler (NULL is accepted).
///
/// # Safety
/// `s` NULL or from [`lensdiff_sampler_create`].
#[no_mangle]
pub unsafe extern "C" fn lensdiff_sampler_destroy(s: *mut LensdiffSampler) -> LensdiffStatus {
    guard(|| release(s, Kind::Sampler, "sampler"))
}

/// Runs all chains (blocking; uses the global rayon thread pool).
///
/// # Safety
/// `s` a live sampler.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_sampler_run(s: *mut LensdiffSampler) -> LensdiffStatus {
    guard(|| {
        let sm = handle_mut(s, Kind::Sampler, "sampler")?;
        let run = sm.run;
        let set = match &sm.prior {
            SamplerPrior::Map(prior) => {
                let post = GuidedPosterior::new(prior, &sm.data, sm.guidance)?;
                match &sm.cuda {
                    Some(be) => engine::run(be.as_ref(), &post, &sm.cfg, &run, &mut |_, _| {})?,
                    None => sample(&post, &sm.cfg, &run, &mut |_, _| {})?,
                }
            }
            SamplerPrior::Neural(prior) => {
                let post = GuidedPosterior::new(prior.as_ref(), &sm.data, sm.guidance)?;
                sample(&post, &sm.cfg, &run, &mut |_, _| {})?
            }
            SamplerPrior::Joint(m) => m.with_posterior(&sm.data, sm.guidance, |post| {
                sample(post, &sm.cfg, &run, &mut |_, _| {})
            })?,
        };
        sm.store(set, None, None)
    })
}

/// Makes a CUDA sampler (`device_kind = LENSDIFF_DEVICE_CUDA`) launch its
/// work on the caller's stream (a `cudaStream_t` / `CUstream` of the
/// sampler's device and the current context; NULL = the legacy default
/// stream) instead of its own, so that it orders with the caller's kernels.
/// `lensdiff_sampler_run` still returns only when its work is done. The
/// stream must outlive the sampler or the next call of this function.
/// Fails with `LENSDIFF_STATUS_INVALID_ARGUMENT` for a CPU sampler and
/// `LENSDIFF_STATUS_DEVICE` where CUDA is unavailable.
///
/// # Safety
/// `s` a live sampler; `stream` NULL or a live CUDA stream of its device.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_sampler_set_cuda_stream(
    s: *mut LensdiffSampler,
    stream: *mut std::ffi::c_void,
) -> LensdiffStatus {
    guard(|| {
        let sm = handle_mut(s, Kind::Sampler, "sampler")?;
        let Device::Cuda(ordinal) = sm.run.device else {
            return Err(CError::new(
                LensdiffStatus::InvalidArgument,
                "a CUDA stream needs device_kind = LENSDIFF_DEVICE_CUDA",
            ));
        };
        let be = crate::backend::cuda::Cuda::with_stream(ordinal, stream as _)?;
        sm.cuda = Some(std::sync::Arc::new(be));
        Ok(())
    })
}

/// Runs the chains split across the ranks of an MPI communicator, given as a
/// Fortran handle (`MPI_Comm_c2f(comm)` in C, `comm` with `use mpi`,
/// `comm%MPI_VAL` with `mpi_f08`). Collective: every rank of the communicator
/// must call it with the same settings. The communicator is duplicated (and
/// freed before returning); MPI is neither initialised nor finalised here.
/// Chains go to ranks by global index in blocks of 8; afterwards every rank
/// can read the mean and std of all chains, bitwise equal to a one-process run.
/// With `gather_samples` non-zero, rank 0 holds all samples and chi² values in
/// global order (`lensdiff_sampler_chains` tells how many a rank holds);
/// otherwise each rank keeps its own chains. Under `MPI_THREAD_SINGLE` the
/// chains run on the calling thread only. Without the `mpi` cargo feature,
/// returns `LENSDIFF_STATUS_UNSUPPORTED`.
///
/// # Safety
/// `s` a live sampler; `comm` a valid communicator handle, MPI initialised.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_sampler_run_mpi(
    s: *mut LensdiffSampler,
    comm: i32,
    gather_samples: i32,
) -> LensdiffStatus {
    guard(|| {
        let sm = handle_mut(s, Kind::Sampler, "sampler")?;
        run_mpi(sm, comm, gather_samples != 0)
    })
}

/// This rank's index among the ranks of `comm` on the same node, and their
/// number (`MPI_Comm_split_type` with `MPI_COMM_TYPE_SHARED`), to choose a GPU
/// per rank. Collective over `comm`. UNSUPPORTED without the `mpi` feature.
///
/// # Safety
/// `node_rank`, `node_size` valid pointers; `comm` a valid communicator handle.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_mpi_node_rank(
    comm: i32,
    node_rank: *mut i32,
    node_size: *mut i32,
) -> LensdiffStatus {
    guard(|| {
        let r = out_ptr(node_rank, "node_rank")?;
        let s = out_ptr(node_size, "node_size")?;
        let (a, b) = node_rank_of(comm)?;
        *r = a as i32;
        *s = b as i32;
        Ok(())
    })
}

#[cfg(not(feature = "mpi"))]
fn node_rank_of(_comm: i32) -> CResult<(usize, usize)> {
    Err(CError::new(
        LensdiffStatus::Unsupported,
        "this lensdiff was built without MPI support (cargo feature `mpi`)",
    ))
}

/// Wraps a duplicate of the caller's communicator (never the caller's own).
#[cfg(feature = "mpi")]
fn duplicate_comm(comm: i32) -> CResult<::mpi::topology::SimpleCommunicator> {
    use ::mpi::environment::{is_finalized, is_initialized};
    if !is_initialized() || is_finalized() {
        return Err(CError::new(
            LensdiffStatus::CallOrder,
            "MPI is not initialised (or already finalised)",
        ));
    }
    // SAFETY: MPI is initialised; `comm` is the caller's Fortran handle.
    let raw = unsafe { ::mpi::ffi::MPI_Comm_f2c(comm) };
    if raw == unsafe { ::mpi::ffi::RSMPI_COMM_NULL } {
        return Err(CError::new(
            LensdiffStatus::InvalidArgument,
            "comm is MPI_COMM_NULL",
        ));
    }
    let mut dup = unsafe { ::mpi::ffi::RSMPI_COMM_NULL };
    // SAFETY: `raw` is a valid communicator; `dup` receives a new one.
    let rc = unsafe { ::mpi::ffi::MPI_Comm_dup(raw, &mut dup) };
    if rc != 0 {
        return Err(CError::new(
            LensdiffStatus::InvalidArgument,
            format!("MPI_Comm_dup failed with code {rc}"),
        ));
    }
    // SAFETY: `dup` is a live intra-communicator that only this wrapper uses
    // (and frees when dropped).
    Ok(unsafe { <::mpi::topology::SimpleCommunicator as ::mpi::raw::FromRaw>::from_raw(dup) })
}

#[cfg(feature = "mpi")]
fn node_rank_of(comm: i32) -> CResult<(usize, usize)> {
    let c = duplicate_comm(comm)?;
    Ok(crate::mpi_run::node_rank(&c))
}

#[cfg(not(feature = "mpi"))]
fn run_mpi(_s: &mut LensdiffSampler, _comm: i32, _gather: bool) -> CResult<()> {
    Err(CError::new(
        LensdiffStatus::Unsupported,
        "this lensdiff was built without MPI support (cargo feature `mpi`)",
    ))
}

#[cfg(feature = "mpi")]
fn run_mpi(sm: &mut LensdiffSampler, comm: i32, gather: bool) -> CResult<()> {
    use ::mpi::environment::threading_support;
    use ::mpi::Threading;
    if sm.run.device != Device::Cpu {
        return Err(CError::new(
            LensdiffStatus::Unsupported,
            "MPI runs use the CPU backend for now: set device_kind = LENSDIFF_DEVICE_CPU",
        ));
    }
    let world = duplicate_comm(comm)?;
    let single = threading_support() == Threading::Single;
    let run = |post: &dyn crate::sampler::engine::Model| {
        crate::mpi_run::sample_distributed(
            &world,
            post,
            &sm.cfg,
            &sm.run,
            gather,
            single,
            &mut |_, _| {},
        )
    };
    let out = match &sm.prior {
        SamplerPrior::Map(prior) => run(&GuidedPosterior::new(prior, &sm.data, sm.guidance)?)?,
        SamplerPrior::Neural(prior) => run(&GuidedPosterior::new(
            prior.as_ref(),
            &sm.data,
            sm.guidance,
        )?)?,
        SamplerPrior::Joint(m) => m.with_posterior(&sm.data, sm.guidance, run)?,
    };
    drop(world);
    let grid = *sm.data.grid();
    let (merged, inner) = (out.moments.clone(), out.inner_iterations);
    sm.store(out.into_set(grid), Some(merged), Some(inner))
}

/// Number of chains of the sampler.
///
/// # Safety
/// `s` live, `chains` valid.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_sampler_chains(
    s: *const LensdiffSampler,
    chains: *mut usize,
) -> LensdiffStatus {
    guard(|| {
        let sm = sampler(s)?;
        // chains held by this handle: all of them after a one-process run;
        // after an MPI run, what this rank holds
        *out_ptr(chains, "chains")? = sm.result.as_ref().map_or(sm.run.chains, |r| r.chains());
        Ok(())
    })
}

/// Writes a per-pixel statistic of the moments over all chains: those merged
/// across ranks by an MPI run, else those of the chains held here.
fn write_moment(
    s: *const LensdiffSampler,
    out: *mut f32,
    len: usize,
    f: fn(&Moments) -> Vec<f32>,
) -> CResult<()> {
    let sm = sampler(s)?;
    let r = results(s)?;
    let out = output(out, len, r.grid.len(), "out")?;
    match &sm.merged {
        Some(m) => out.copy_from_slice(&f(m)),
        None => out.copy_from_slice(&f(&r.moments())),
    }
    Ok(())
}

/// Posterior mean map (`len = nx * ny`).
///
/// # Safety
/// `out` must point to `len` floats.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_sampler_mean(
    s: *const LensdiffSampler,
    out: *mut f32,
    len: usize,
) -> LensdiffStatus {
    guard(|| write_moment(s, out, len, Moments::mean_f32))
}

/// Posterior standard deviation map (`len = nx * ny`).
///
/// # Safety
/// `out` must point to `len` floats.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_sampler_std(
    s: *const LensdiffSampler,
    out: *mut f32,
    len: usize,
) -> LensdiffStatus {
    guard(|| write_moment(s, out, len, Moments::std_f32))
}

/// All samples `[chains][y][x]` (`len = chains * nx * ny`).
///
/// # Safety
/// `out` must point to `len` floats.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_sampler_samples(
    s: *const LensdiffSampler,
    out: *mut f32,
    len: usize,
) -> LensdiffStatus {
    guard(|| {
        let r = results(s)?;
        output(out, len, r.samples.len(), "out")?.copy_from_slice(&r.samples);
        Ok(())
    })
}

/// Reduced shear chi² of each chain's final map (`len = chains`).
///
/// # Safety
/// `out` must point to `len` doubles.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_sampler_chi2(
    s: *const LensdiffSampler,
    out: *mut f64,
    len: usize,
) -> LensdiffStatus {
    guard(|| {
        let r = results(s)?;
        output(out, len, r.chi2.len(), "out")?.copy_from_slice(&r.chi2);
        Ok(())
    })
}

/// Metropolis acceptance rate of each chain (`len = chains`); UNSUPPORTED
/// unless the run used HMC (annealed HMC or HMC refinement).
///
/// # Safety
/// `out` must point to `len` doubles.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_sampler_acceptance(
    s: *const LensdiffSampler,
    out: *mut f64,
    len: usize,
) -> LensdiffStatus {
    guard(|| {
        if out.is_null() {
            return Err(CError::new(LensdiffStatus::NullPointer, "out is NULL"));
        }
        let r = results(s)?;
        let a = r.acceptance.as_ref().ok_or_else(|| {
            CError::new(
                LensdiffStatus::Unsupported,
                "this run has no Metropolis test (use annealed HMC or HMC refinement)",
            )
        })?;
        output(out, len, a.len(), "out")?.copy_from_slice(a);
        Ok(())
    })
}

/// Inner conjugate-gradient iterations of the spectral guidance, summed over
/// every chain of the run: after `lensdiff_sampler_run_mpi`, over the chains of
/// all ranks (on every rank). 0 for the other guidance schemes.
///
/// # Safety
/// `s` a live sampler, `out` valid.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_sampler_inner_iterations(
    s: *const LensdiffSampler,
    out: *mut u64,
) -> LensdiffStatus {
    guard(|| {
        let r = results(s)?;
        let out = out_ptr(out, "out")?;
        *out = sampler(s)?.inner_all_ranks.unwrap_or(r.inner_iterations);
        Ok(())
    })
}

/// Score evaluations per chain (NFE) and wall time in seconds (either pointer may be NULL).
///
/// # Safety
/// Non-NULL pointers must be valid.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_sampler_stats(
    s: *const LensdiffSampler,
    nfe: *mut u64,
    seconds: *mut f64,
) -> LensdiffStatus {
    guard(|| {
        let r = results(s)?;
        if !nfe.is_null() {
            *nfe = r.nfe;
        }
        if !seconds.is_null() {
            *seconds = r.seconds;
        }
        Ok(())
    })
}
