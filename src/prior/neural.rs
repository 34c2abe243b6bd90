//! The learned prior: a neural denoiser ([`Denoiser`]) on one grid.
//!
//! `denoise` is the network's `D(x; σ)` (pure or Gaussian + neural hybrid),
//! `denoise_vjp` its vector–Jacobian product by the hand-written backward
//! pass, and `gaussian_power` the Gaussian model the guidance schemes use for
//! the likelihood covariance: the hybrid's own Gaussian part, or for a pure
//! network a power spectrum given with [`NeuralPrior::with_guidance_power`].

use std::sync::{Arc, Mutex};

use super::denoiser::DenoiserCache;
use super::Denoiser;
use crate::error::Result;
use crate::grid::Grid;
use crate::nn::Dims4;
use crate::prior::{GaussianPrior, Prior};

/// A neural denoiser prior evaluated on a fixed grid.
pub struct NeuralPrior {
    grid: Grid,
    /// Shared read-only (several samplers of one loaded model).
    denoiser: Arc<Denoiser>,
    gauss: Option<GaussianPrior>,
    guidance_power: Option<Vec<f64>>,
    /// The last forward pass (input, σ, activations): guidance calls
    /// `denoise(x)` and then `denoise_vjp(x, v)` at the same point, and the
    /// second call reuses the first's activations instead of recomputing them.
    last: Mutex<Option<(Vec<f32>, f64, DenoiserCache)>>,
}

impl NeuralPrior {
    /// The prior of `denoiser` on `grid` (sides must suit the U-Net depth);
    /// an `Arc<Denoiser>` is shared, not copied.
    pub fn new(denoiser: impl Into<Arc<Denoiser>>, grid: Grid) -> Result<Self> {
        let denoiser = denoiser.into();
        denoiser.unet().config().check_map_size(grid.ny, grid.nx)?;
        let gauss = denoiser.gaussian_prior(grid)?;
        Ok(NeuralPrior {
            grid,
            denoiser,
            gauss,
            guidance_power: None,
            last: Mutex::new(None),
        })
    }

    /// Sets the Gaussian power model used by guidance (pixel power on the half
    /// spectrum, as [`GaussianPrior::power`]); replaces the hybrid's own.
    pub fn with_guidance_power(mut self, power: Vec<f64>) -> Result<Self> {
        crate::spectrum::check_power(&self.grid, &power)?;
        let mut power = power;
        power[0] = 0.0;
        self.guidance_power = Some(power);
        Ok(self)
    }

    /// The denoiser.
    pub fn denoiser(&self) -> &Denoiser {
        &self.denoiser
    }

    fn dims(&self, x: &[f32]) -> Result<Dims4> {
        let b = self.grid.check_batch("x", x)?;
        Ok(Dims4::new(b, 1, self.grid.ny, self.grid.nx))
    }
}

impl Prior for NeuralPrior {
    fn grid(&self) -> &Grid {
        &self.grid
    }

    fn name(&self) -> String {
        format!("neural-{}", self.denoiser.meta().kind.name())
    }

    fn denoise(&self, x: &[f32], sigma: f64, out: &mut [f32]) -> Result<()> {
        let dims = self.dims(x)?;
        crate::error::check_len("out", out, x.len())?;
        let dn = &self.denoiser;
        let sig = vec![sigma; dims.n];
        let (d, cache) = dn.forward_cached(&dn.params, x, dims, &sig, self.gauss.as_ref())?;
        out.copy_from_slice(&d);
        if let Ok(mut last) = self.last.lock() {
            *last = Some((x.to_vec(), sigma, cache));
        }
        Ok(())
    }

    fn denoise_vjp(&self, x: &[f32], sigma: f64, v: &[f32], out: &mut [f32]) -> Result<()> {
        let dims = self.dims(x)?;
        crate::error::check_len("v", v, x.len())?;
        crate::error::check_len("out", out, x.len())?;
        let dn = &self.denoiser;
        let sig = vec![sigma; dims.n];
        let cached = self
            .last
            .lock()
            .ok()
            .and_then(|mut l| l.take())
            .filter(|(lx, ls, _)| *ls == sigma && lx.as_slice() == x);
        let cache = match cached {
            Some((_, _, c)) => c,
            None => {
                dn.forward_cached(&dn.params, x, dims, &sig, self.gauss.as_ref())?
                    .1
            }
        };
        let j = dn.vjp(&dn.params, &cache, v, self.gauss.as_ref(), None)?;
        out.copy_from_slice(&j);
        Ok(())
    }

    fn sigma_max(&self) -> Option<f64> {
        self.denoiser.meta().sigma_max
    }

    fn gaussian_power(&self) -> Option<&[f64]> {
        self.guidance_power
            .as_deref()
            .or_else(|| self.gauss.as_ref().map(|g| g.power()))
    }
}
