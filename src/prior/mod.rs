//! Diffusion priors as denoisers.
//!
//! Variance-exploding diffusion: `x_sigma = kappa + sigma z`. A prior is a
//! batched denoiser `D(x; sigma) ≈ E[kappa | x_sigma = x]`; its score follows
//! from Tweedie's formula (Efron 2011; Robbins 1956):
//!
//! ```text
//! s(x; sigma) = grad log p_sigma(x) = (D(x; sigma) - x) / sigma².
//! ```
//!
//! Guidance schemes also need the vector–Jacobian product `J_D(x)^T v` and,
//! for the spectral (exact-for-Gaussian) scheme, a Gaussian model of the prior
//! covariance as a pixel power spectrum.

pub mod builtin;
pub mod denoiser;
pub mod device;
pub mod gaussian;
pub mod joint;
pub mod neural;
pub mod train;

pub use denoiser::{Denoiser, DenoiserKind, DenoiserMeta, EdmScaling};
pub use device::{DevicePrior, HostPrior, PriorBackend};
pub use gaussian::{GaussianOn, GaussianPrior};
pub use neural::NeuralPrior;
pub use train::{TrainConfig, Trainer, TrainingData};

use crate::backend::cuda::Cuda;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::grid::Grid;

/// A batched denoiser prior on one grid. Batches are `[b][y][x]`.
pub trait Prior: Send + Sync {
    /// The grid the prior is defined on.
    fn grid(&self) -> &Grid;

    /// A short name for logs and summaries.
    fn name(&self) -> String;

    /// `out = D(x; sigma)` for a batch.
    fn denoise(&self, x: &[f32], sigma: f64, out: &mut [f32]) -> Result<()>;

    /// `out = J_D(x; sigma)^T v` for a batch (the input vector–Jacobian product).
    fn denoise_vjp(&self, x: &[f32], sigma: f64, v: &[f32], out: &mut [f32]) -> Result<()>;

    /// Prior pixel power on the half spectrum `[ky][kx]` of a Gaussian model
    /// of the prior (exact for [`GaussianPrior`]); `None` if the prior has none.
    fn gaussian_power(&self) -> Option<&[f64]>;

    /// The largest noise level the denoiser is valid at, if limited (a learned
    /// denoiser's training range). Samplers start there by default, from the
    /// diffused Gaussian model of [`Prior::gaussian_power`]: at noise levels
    /// well above the field's own scale, `p_sigma` is Gaussian to high accuracy.
    fn sigma_max(&self) -> Option<f64> {
        None
    }

    /// This prior on a CUDA device, if it has a device form there (the
    /// Gaussian prior does; the learned prior's U-Net runs on the CPU until
    /// its kernels exist, issue #19).
    fn on_cuda<'a>(&'a self, be: &Cuda) -> Result<Box<dyn DevicePrior<Cuda> + 'a>> {
        Err(Error::device(
            be.describe(),
            format!(
                "the {} prior runs on the CPU only (--device cpu)",
                self.name()
            ),
        ))
    }

    /// `out = (D(x; sigma) - x) / sigma²`.
    fn score(&self, x: &[f32], sigma: f64, out: &mut [f32]) -> Result<()> {
        self.denoise(x, sigma, out)?;
        let inv = (1.0 / (sigma * sigma)) as f32;
        out.iter_mut().zip(x).for_each(|(o, x)| *o = (*o - x) * inv);
        Ok(())
    }
}
