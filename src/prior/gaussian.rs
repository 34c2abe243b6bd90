//! The Gaussian prior: exact denoiser of a stationary Gaussian field.
//!
//! With pixel power `S(k)` (see [`crate::spectrum`]), `kappa | x_sigma` is
//! Gaussian and, mode by mode,
//!
//! ```text
//! D(x; sigma) = F^{-1}[ S / (S + sigma²) · F[x] ],
//! ```
//!
//! a symmetric linear map, so `J_D^T v = D(v; sigma)`. The `k = 0` mode has
//! `S = 0`: the mean of kappa is fixed to zero.

use crate::backend::cpu::Cpu;
use crate::backend::cuda::Cuda;
use crate::backend::pool::Pool;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::prior::{DevicePrior, Prior};
use crate::spectrum::ClTable;

/// A Gaussian prior given by its pixel power spectrum. Its host
/// [`Prior::denoise`] is its [`GaussianOn`] form on the CPU backend, so the
/// filter is written once for every backend.
pub struct GaussianPrior {
    grid: Grid,
    host: GaussianOn<Cpu>,
    cpu: Cpu,
}

impl std::fmt::Debug for GaussianPrior {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GaussianPrior")
            .field("grid", &self.grid)
            .finish_non_exhaustive()
    }
}

impl GaussianPrior {
    /// From a pixel power map on the half spectrum (`k = 0` forced to 0).
    pub fn new(grid: Grid, mut power: Vec<f64>) -> Result<Self> {
        crate::spectrum::check_power(&grid, &power)?;
        power[0] = 0.0;
        if power.iter().all(|&p| p == 0.0) {
            return Err(Error::invalid(
                "power",
                "the prior power is zero everywhere",
            ));
        }
        let cpu = Cpu::new();
        Ok(GaussianPrior {
            grid,
            host: GaussianOn::new(&cpu, grid, &power)?,
            cpu,
        })
    }

    /// From a C_ell table.
    pub fn from_cl(grid: Grid, table: &ClTable) -> Result<Self> {
        Self::new(grid, table.pixel_power(&grid))
    }

    /// The pixel power `S(k)`.
    pub fn power(&self) -> &[f64] {
        &self.host.host_power
    }

    /// This prior on backend `be`.
    pub fn on<B: Backend>(&self, be: &B) -> Result<GaussianOn<B>> {
        GaussianOn::new(be, self.grid, self.power())
    }

    /// `out = D(x)` through the CPU backend (whose buffers are `Vec`s).
    fn filter(&self, x: &[f32], sigma: f64, out: &mut [f32]) -> Result<()> {
        self.grid.check_batch("x", x)?;
        crate::error::check_len("out", out, x.len())?;
        let mut o = vec![0.0f32; x.len()];
        self.host.denoise(&self.cpu, &x.to_vec(), sigma, &mut o)?;
        out.copy_from_slice(&o);
        Ok(())
    }
}

impl Prior for GaussianPrior {
    fn grid(&self) -> &Grid {
        &self.grid
    }

    fn name(&self) -> String {
        "gaussian".into()
    }

    fn denoise(&self, x: &[f32], sigma: f64, out: &mut [f32]) -> Result<()> {
        self.filter(x, sigma, out)
    }

    fn denoise_vjp(&self, _x: &[f32], sigma: f64, v: &[f32], out: &mut [f32]) -> Result<()> {
        self.filter(v, sigma, out)
    }

    fn gaussian_power(&self) -> Option<&[f64]> {
        Some(self.power())
    }

    fn on_cuda<'a>(&'a self, be: &Cuda) -> Result<Box<dyn DevicePrior<Cuda> + 'a>> {
        Ok(Box::new(self.on(be)?))
    }
}

/// The Gaussian prior on backend `B`: `D(x; sigma) = F^{-1}[S/(S + sigma²) F x]`,
/// a symmetric linear map, so `J_D^T v = D(v)`.
pub struct GaussianOn<B: Backend> {
    grid: Grid,
    host_power: Vec<f64>,
    power: B::Buf<f64>,
    /// Spectra reused across calls.
    spectra: Pool<B, f32>,
}

impl<B: Backend> GaussianOn<B> {
    fn new(be: &B, grid: Grid, power: &[f64]) -> Result<Self> {
        Ok(GaussianOn {
            grid,
            host_power: power.to_vec(),
            power: be.upload(power)?,
            spectra: Pool::default(),
        })
    }
}

impl<B: Backend> DevicePrior<B> for GaussianOn<B> {
    fn grid(&self) -> &Grid {
        &self.grid
    }

    fn denoise(&self, be: &B, x: &B::Buf<f32>, sigma: f64, out: &mut B::Buf<f32>) -> Result<()> {
        let maps = crate::backend::maps_of("x", B::len(x), self.grid.len())?;
        let mut spec = self.spectra.take(be, 2 * maps * self.grid.spectral_len())?;
        be.fft_forward(&self.grid, x, &mut spec)?;
        be.gaussian_denoise_gain(&mut spec, &self.power, sigma * sigma)?;
        be.fft_inverse(&self.grid, &mut spec, out)
    }

    fn denoise_vjp(
        &self,
        be: &B,
        _x: &B::Buf<f32>,
        sigma: f64,
        v: &B::Buf<f32>,
        out: &mut B::Buf<f32>,
    ) -> Result<()> {
        self.denoise(be, v, sigma, out)
    }

    fn gaussian_power(&self) -> Option<&[f64]> {
        Some(&self.host_power)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denoiser_is_the_posterior_mean_of_a_mode_and_vjp_is_its_transpose() {
        let g = Grid::square(16, 1.0).unwrap();
        let t = ClTable::new(vec![1.0, 1e5], vec![1e-8, 1e-10]).unwrap();
        let p = GaussianPrior::from_cl(g, &t).unwrap();
        let mut x = vec![0.0f32; g.len()];
        crate::rng::Philox::new(1, crate::rng::Stream::Field, 0, 0).fill_normal(&mut x);
        let mut v = vec![0.0f32; g.len()];
        crate::rng::Philox::new(2, crate::rng::Stream::Field, 0, 0).fill_normal(&mut v);
        let sigma = 0.3;
        let (mut dx, mut jv) = (vec![0.0f32; g.len()], vec![0.0f32; g.len()]);
        p.denoise(&x, sigma, &mut dx).unwrap();
        p.denoise_vjp(&x, sigma, &v, &mut jv).unwrap();
        // linear and symmetric: <D v, x> = <v, D x>
        let mut dv = vec![0.0f32; g.len()];
        p.denoise(&v, sigma, &mut dv).unwrap();
        let a: f64 = dv
            .iter()
            .zip(&x)
            .map(|(a, b)| (*a as f64) * (*b as f64))
            .sum();
        let b: f64 = v
            .iter()
            .zip(&dx)
            .map(|(a, b)| (*a as f64) * (*b as f64))
            .sum();
        assert!((a - b).abs() < 1e-4 * a.abs().max(b.abs()));
        assert_eq!(jv, dv);
        // mean removed
        let m: f64 = dx.iter().map(|&v| v as f64).sum::<f64>() / g.len() as f64;
        assert!(m.abs() < 1e-6);
        // sigma -> 0 is the identity on the zero-mean part, large sigma shrinks to 0
        let mut big = vec![0.0f32; g.len()];
        p.denoise(&x, 1e6, &mut big).unwrap();
        assert!(big.iter().all(|v| v.abs() < 1e-6));
        assert!(GaussianPrior::new(g, vec![0.0; g.spectral_len()]).is_err());
    }
}
