//! The sampler on a compute [`Backend`] with the Gaussian prior: every
//! integrator of [`crate::sampler`] (the engine, `src/sampler/engine.rs`) with
//! the Gaussian prior's posterior score for every guidance scheme as backend
//! operations ([`DeviceGaussianPosterior`]), one CUDA kernel each.
//!
//! On [`crate::backend::cpu::Cpu`] this reproduces [`crate::sampler::sample`]
//! with a [`GuidedPosterior`] of a [`GaussianPrior`] *bitwise*
//! (`tests/device_engine.rs`); on CUDA it is the same launch sequence, with
//! elementwise kernels bitwise and FFTs and reductions to rounding.

mod gaussian;

pub use gaussian::DeviceGaussianPosterior;

use super::{GuidedPosterior, SampleSet, SamplerConfig};
use crate::backend::{Backend, Device};
use crate::error::{Error, Result};
use crate::prior::GaussianPrior;
use crate::sampler::{Guidance, ShearData};

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
    // The host model gives the levels, the metric and the final chi² exactly
    // as on the CPU (and checks the guidance settings).
    let host = GuidedPosterior::new(prior, data, guidance)?;
    let mut model = DeviceGaussianPosterior::new(backend, prior, data, guidance)?;
    super::engine::run(
        backend,
        &host,
        &mut model,
        cfg,
        seed,
        first_chain,
        n_chains,
        batch,
        progress,
    )
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
