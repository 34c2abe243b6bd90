//! The exact posterior of a Gaussian field observed without mask under
//! uniform noise: Gaussian and diagonal in Fourier space. The oracle that
//! every integrator is tested against.
//!
//! With prior power `S`, noise weight `w = 1/sigma_n²` per component and
//! `q = p1² + p2²`, each mode has posterior variance and mean (pixel-power units)
//!
//! ```text
//! V = 1 / (1/S + q w),    M = V w (p1 G1 + p2 G2),
//! ```
//!
//! so the diffused posterior is `x_sigma ~ N(M, V + sigma²)` mode by mode and
//! its score is `-F^{-1}[(F x - M) / (V + sigma²)]`.

use num_complex::Complex;
use rayon::prelude::*;

use super::posterior::{ks_map, shear_chi2, ScoreModel, ScoreStats, ShearData};
use crate::error::{check_len, Error, Result};
use crate::fft::Fft2;
use crate::grid::Grid;
use crate::lensing::KaiserSquires;

/// Exact Fourier-diagonal Gaussian posterior.
pub struct FourierGaussianPosterior<'a> {
    grid: Grid,
    data: &'a ShearData,
    fft: Fft2<f64>,
    ks: KaiserSquires<f32>,
    prior_power: Vec<f64>,
    /// Posterior mean spectrum `M` (unnormalised, as `F x`).
    mean_spec: Vec<Complex<f64>>,
    /// Posterior pixel power `V`.
    var: Vec<f64>,
}

impl<'a> FourierGaussianPosterior<'a> {
    /// Requires uniform noise on every pixel (no mask).
    pub fn new(prior_power: &[f64], data: &'a ShearData) -> Result<Self> {
        let grid = *data.grid();
        if prior_power.len() != grid.spectral_len() {
            return Err(Error::shape(
                "power",
                grid.spectral_len(),
                prior_power.len(),
            ));
        }
        let w = data.noise.uniform_weight().ok_or_else(|| {
            Error::invalid(
                "noise",
                "the Fourier oracle needs uniform noise and no mask",
            )
        })? as f64;
        let ks64 = KaiserSquires::<f64>::new(grid);
        let fft = Fft2::<f64>::new(grid.nx, grid.ny);
        let to64 = |g: &[f32]| g.iter().map(|&v| v as f64).collect::<Vec<f64>>();
        let (mut s1, mut s2) = (
            vec![Complex::new(0.0, 0.0); grid.spectral_len()],
            vec![Complex::new(0.0, 0.0); grid.spectral_len()],
        );
        fft.forward(&to64(&data.g1), &mut s1);
        fft.forward(&to64(&data.g2), &mut s2);
        let (p1, p2) = (ks64.p1(), ks64.p2());
        let mut var = vec![0.0; grid.spectral_len()];
        let mut mean_spec = vec![Complex::new(0.0, 0.0); grid.spectral_len()];
        for i in 0..var.len() {
            let s = if i == 0 { 0.0 } else { prior_power[i] };
            if s > 0.0 {
                let q = p1[i] * p1[i] + p2[i] * p2[i];
                var[i] = 1.0 / (1.0 / s + q * w);
                mean_spec[i] = (s1[i] * p1[i] + s2[i] * p2[i]) * (var[i] * w);
            }
        }
        Ok(FourierGaussianPosterior {
            grid,
            data,
            fft,
            ks: KaiserSquires::new(grid),
            prior_power: prior_power.to_vec(),
            mean_spec,
            var,
        })
    }

    /// Posterior pixel power `V(k)` on the half spectrum.
    pub fn variance_spectrum(&self) -> &[f64] {
        &self.var
    }

    /// Posterior mean spectrum (`F` of the mean map).
    pub fn mean_spectrum(&self) -> &[Complex<f64>] {
        &self.mean_spec
    }

    /// The posterior mean map.
    pub fn mean_map(&self) -> Vec<f32> {
        let mut m = vec![0.0; self.grid.len()];
        self.fft.inverse(&self.mean_spec, &mut m);
        m.iter().map(|&v| v as f32).collect()
    }

    /// Exact posterior per-pixel variance (stationary: `mean_k V`).
    pub fn pixel_variance(&self) -> f64 {
        let g = &self.grid;
        let mut s = 0.0;
        for iy in 0..g.ny {
            for ix in 0..g.nkx() {
                s += g.hermitian_weight(ix) * self.var[iy * g.nkx() + ix];
            }
        }
        s / g.len() as f64
    }
}

impl ScoreModel for FourierGaussianPosterior<'_> {
    fn grid(&self) -> &Grid {
        &self.grid
    }

    fn score(&self, x: &[f32], sigma: f64, out: &mut [f32]) -> Result<ScoreStats> {
        let n = self.grid.len();
        self.grid.check_batch("x", x)?;
        check_len("score", out, x.len())?;
        let s2 = sigma * sigma;
        x.par_chunks(n)
            .zip(out.par_chunks_mut(n))
            .for_each(|(x, o)| {
                let xs: Vec<f64> = x.iter().map(|&v| v as f64).collect();
                let mut spec = vec![Complex::new(0.0, 0.0); self.grid.spectral_len()];
                self.fft.forward(&xs, &mut spec);
                for ((v, m), var) in spec.iter_mut().zip(&self.mean_spec).zip(&self.var) {
                    *v = -(*v - m) / (var + s2);
                }
                let mut y = vec![0.0; n];
                self.fft.inverse(&spec, &mut y);
                o.iter_mut().zip(&y).for_each(|(o, y)| *o = *y as f32);
            });
        Ok(ScoreStats::default())
    }

    /// The exact diffused posterior at `sigma_max`: `M + F^{-1}[sqrt(V + sigma²) F z]`.
    fn initial(&self, sigma_max: f64, z: &mut [f32]) -> Result<()> {
        let n = self.grid.len();
        self.grid.check_batch("z", z)?;
        let s2 = sigma_max * sigma_max;
        z.par_chunks_mut(n).for_each(|m| {
            let xs: Vec<f64> = m.iter().map(|&v| v as f64).collect();
            let mut spec = vec![Complex::new(0.0, 0.0); self.grid.spectral_len()];
            self.fft.forward(&xs, &mut spec);
            for ((v, m), var) in spec.iter_mut().zip(&self.mean_spec).zip(&self.var) {
                *v = *v * (var + s2).sqrt() + m;
            }
            let mut y = vec![0.0; n];
            self.fft.inverse(&spec, &mut y);
            m.iter_mut().zip(&y).for_each(|(o, y)| *o = *y as f32);
        });
        Ok(())
    }

    fn prior_scale(&self) -> f64 {
        self.prior_power.iter().cloned().fold(0.0, f64::max).sqrt()
    }

    fn start_map(&self) -> Option<Vec<f32>> {
        ks_map(&self.ks, self.data)
    }

    fn chi2(&self, kappa: &[f32]) -> Result<Vec<f64>> {
        shear_chi2(&self.ks, self.data, kappa)
    }

    /// The exact covariance `V + sigma²`.
    fn metric(&self, sigma: f64) -> Option<Vec<f64>> {
        Some(self.var.iter().map(|v| v + sigma * sigma).collect())
    }
}
