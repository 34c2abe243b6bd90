//! Priors on a compute backend: what the guided posterior
//! ([`crate::sampler::GuidedScore`]) calls, written once for every backend.
//!
//! A [`DevicePrior`] is the denoiser `D(x; sigma)`, its vector–Jacobian
//! product `J_D^T v` and (optionally) its Gaussian power model, with batches
//! in the backend's buffers. [`PriorBackend::prior`] puts a host [`Prior`] on
//! a backend: on the CPU every prior runs as itself ([`HostPrior`]); on CUDA
//! a prior runs when it has a device form ([`Prior::on_cuda`]: the Gaussian
//! prior today, the U-Net with issue #19).

use crate::backend::cpu::Cpu;
use crate::backend::cuda::Cuda;
use crate::backend::Backend;
use crate::error::Result;
use crate::grid::Grid;
use crate::prior::Prior;

/// A batched denoiser prior whose batches `[b][y][x]` live on backend `B`.
pub trait DevicePrior<B: Backend> {
    /// The grid the prior is defined on.
    fn grid(&self) -> &Grid;

    /// `out = D(x; sigma)` for a batch.
    fn denoise(&self, be: &B, x: &B::Buf<f32>, sigma: f64, out: &mut B::Buf<f32>) -> Result<()>;

    /// `out = J_D(x; sigma)^T v` for a batch.
    fn denoise_vjp(
        &self,
        be: &B,
        x: &B::Buf<f32>,
        sigma: f64,
        v: &B::Buf<f32>,
        out: &mut B::Buf<f32>,
    ) -> Result<()>;

    /// The pixel power of the prior's Gaussian model on the half spectrum
    /// ([`Prior::gaussian_power`]), on the host.
    fn gaussian_power(&self) -> Option<&[f64]>;
}

/// Any host [`Prior`] on the CPU backend, whose buffers are `Vec`s.
pub struct HostPrior<'a>(pub &'a dyn Prior);

impl DevicePrior<Cpu> for HostPrior<'_> {
    fn grid(&self) -> &Grid {
        self.0.grid()
    }

    fn denoise(&self, _be: &Cpu, x: &Vec<f32>, sigma: f64, out: &mut Vec<f32>) -> Result<()> {
        self.0.denoise(x, sigma, out)
    }

    fn denoise_vjp(
        &self,
        _be: &Cpu,
        x: &Vec<f32>,
        sigma: f64,
        v: &Vec<f32>,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        self.0.denoise_vjp(x, sigma, v, out)
    }

    fn gaussian_power(&self) -> Option<&[f64]> {
        self.0.gaussian_power()
    }
}

/// The backends a host [`Prior`] can be put on.
pub trait PriorBackend: Backend + Sized {
    /// `prior` on this backend, or an error naming the device and the prior
    /// when it has no form here.
    fn prior<'a>(&self, prior: &'a dyn Prior) -> Result<Box<dyn DevicePrior<Self> + 'a>>;
}

impl PriorBackend for Cpu {
    fn prior<'a>(&self, prior: &'a dyn Prior) -> Result<Box<dyn DevicePrior<Cpu> + 'a>> {
        Ok(Box::new(HostPrior(prior)))
    }
}

impl PriorBackend for Cuda {
    fn prior<'a>(&self, prior: &'a dyn Prior) -> Result<Box<dyn DevicePrior<Cuda> + 'a>> {
        prior.on_cuda(self)
    }
}
