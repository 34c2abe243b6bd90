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

use num_complex::Complex;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::fft::Fft2;
use crate::grid::Grid;
use crate::prior::Prior;
use crate::spectrum::ClTable;

/// A Gaussian prior given by its pixel power spectrum.
#[derive(Debug)]
pub struct GaussianPrior {
    grid: Grid,
    power: Vec<f64>,
    fft: Fft2<f32>,
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
        Ok(GaussianPrior {
            grid,
            power,
            fft: Fft2::new(grid.nx, grid.ny),
        })
    }

    /// From a C_ell table.
    pub fn from_cl(grid: Grid, table: &ClTable) -> Result<Self> {
        Self::new(grid, table.pixel_power(&grid))
    }

    /// The pixel power `S(k)`.
    pub fn power(&self) -> &[f64] {
        &self.power
    }

    fn filter(&self, x: &[f32], sigma: f64, out: &mut [f32]) -> Result<()> {
        let n = self.grid.len();
        self.grid.check_batch("x", x)?;
        crate::error::check_len("out", out, x.len())?;
        let s2 = sigma * sigma;
        let gain: Vec<f32> = self.power.iter().map(|&s| (s / (s + s2)) as f32).collect();
        x.par_chunks(n)
            .zip(out.par_chunks_mut(n))
            .for_each(|(x, o)| {
                let mut spec = vec![Complex::new(0.0f32, 0.0); self.grid.spectral_len()];
                self.fft.forward(x, &mut spec);
                spec.iter_mut().zip(&gain).for_each(|(v, g)| *v *= *g);
                self.fft.inverse(&spec, o);
            });
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
        Some(&self.power)
    }

    fn as_gaussian(&self) -> Option<&GaussianPrior> {
        Some(self)
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
