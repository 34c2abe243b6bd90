//! Simulated convergence fields and mock shear.
//!
//! **Gaussian random field** with pixel power `P` (see [`crate::spectrum`]):
//! `x = irfft2( rfft2(z) · sqrt(P) )` with `z` white N(0, 1) on the pixels, so
//! that `E|fft2(x)|² / N = P`. The `k = 0` mode is zero.
//!
//! **Log-normal field** with shift `lambda` (Hilbert et al. 2011; Xavier et al.
//! 2016): `kappa = lambda (exp(g - sigma_g²/2) - 1)` with `g` Gaussian. Its
//! correlation function is `xi_kappa = lambda² (exp(xi_g) - 1)`, so the
//! Gaussian field's spectrum is built from the log-transformed correlation
//! function: `xi_g = ln(1 + xi_kappa / lambda²)`, `P_g = fft2(xi_g)` (negative
//! values clipped, `k = 0` set to 0), and `sigma_g² = xi_g(0)` after clipping.
//! Then `kappa >= -lambda` and the field has positive skewness.

pub mod sbi_lens;
pub mod tomography;

use num_complex::Complex;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::fft::Fft2;
use crate::grid::Grid;
use crate::lensing::KaiserSquires;
use crate::noise::NoiseModel;
use crate::rng::{Philox, Stream};

use crate::spectrum::check_power;

/// Draws `count` Gaussian random fields with half-spectrum pixel power `power`.
/// Map `i` of the result is realisation `first + i` of `seed`: it does not
/// depend on `count`. Layout `[count][y][x]`.
pub fn gaussian_fields(
    grid: &Grid,
    power: &[f64],
    seed: u64,
    first: u64,
    count: usize,
) -> Result<Vec<f32>> {
    check_power(grid, power)?;
    let n = grid.len();
    let amp: Vec<f64> = power
        .iter()
        .enumerate()
        .map(|(i, p)| if i == 0 { 0.0 } else { p.sqrt() })
        .collect();
    let fft = Fft2::<f64>::new(grid.nx, grid.ny);
    let mut out = vec![0.0f32; count * n];
    out.par_chunks_mut(n).enumerate().for_each(|(i, m)| {
        let mut z = vec![0.0f64; n];
        Philox::new(seed, Stream::Field, first + i as u64, 0).fill_normal_f64(&mut z);
        let mut s = vec![Complex::new(0.0, 0.0); grid.spectral_len()];
        fft.forward(&z, &mut s);
        s.iter_mut().zip(&amp).for_each(|(s, a)| *s *= *a);
        fft.inverse(&s, &mut z);
        m.iter_mut().zip(&z).for_each(|(m, z)| *m = *z as f32);
    });
    Ok(out)
}

/// The Gaussian spectrum behind a log-normal field with a target spectrum.
#[derive(Debug, Clone)]
pub struct LogNormal {
    /// Shift parameter `lambda` (> 0): the field's minimum is `-lambda`.
    pub lambda: f64,
    /// Pixel power of the underlying Gaussian field (half spectrum).
    pub gaussian_power: Vec<f64>,
    /// Variance `sigma_g²` of the Gaussian field.
    pub gaussian_variance: f64,
}

/// `fft2(ln(1 + xi / lambda²))` with `xi = ifft2(P)` the correlation function
/// of the pixel power `P` (half spectrum): the spectrum of a log-normal
/// field's Gaussian part before its negative (or imaginary) parts are dealt
/// with. Fails unless `lambda` is finite and positive and `1 + xi/lambda² > 0`.
pub(crate) fn log_correlation_spectrum(
    grid: &Grid,
    power: &[f64],
    lambda: f64,
) -> Result<Vec<Complex<f64>>> {
    if !(lambda.is_finite() && lambda > 0.0) {
        return Err(Error::invalid(
            "lambda",
            format!("shift must be finite and positive, got {lambda}"),
        ));
    }
    let fft = Fft2::<f64>::new(grid.nx, grid.ny);
    // xi(r) = (1/N) sum_k P(k) e^{i k r}: the inverse transform of P.
    let spec: Vec<Complex<f64>> = power.iter().map(|&p| Complex::new(p, 0.0)).collect();
    let mut xi = vec![0.0f64; grid.len()];
    fft.inverse(&spec, &mut xi);
    let l2 = lambda * lambda;
    for (i, v) in xi.iter_mut().enumerate() {
        let a = 1.0 + *v / l2;
        if a <= 0.0 {
            return Err(Error::invalid(
                "lambda",
                format!("shift {lambda} too small: 1 + xi/lambda² = {a:.3} <= 0 at pixel {i}"),
            ));
        }
        *v = a.ln();
    }
    let mut pg = vec![Complex::new(0.0, 0.0); grid.spectral_len()];
    fft.forward(&xi, &mut pg);
    Ok(pg)
}

impl LogNormal {
    /// Builds the Gaussian spectrum for a log-normal field whose pixel power
    /// is `power` (half spectrum) and whose shift is `lambda`.
    pub fn new(grid: &Grid, power: &[f64], lambda: f64) -> Result<Self> {
        check_power(grid, power)?;
        let pg = log_correlation_spectrum(grid, power, lambda)?;
        let mut gaussian_power: Vec<f64> = pg.iter().map(|c| c.re.max(0.0)).collect();
        gaussian_power[0] = 0.0;
        let mut var = 0.0;
        for iy in 0..grid.ny {
            for ix in 0..grid.nkx() {
                var += grid.hermitian_weight(ix) * gaussian_power[iy * grid.nkx() + ix];
            }
        }
        Ok(LogNormal {
            lambda,
            gaussian_power,
            gaussian_variance: var / grid.len() as f64,
        })
    }

    /// Draws `count` log-normal fields (realisations `first..first+count` of `seed`).
    pub fn sample(&self, grid: &Grid, seed: u64, first: u64, count: usize) -> Result<Vec<f32>> {
        let mut g = gaussian_fields(grid, &self.gaussian_power, seed, first, count)?;
        let (l, h) = (self.lambda, 0.5 * self.gaussian_variance);
        g.par_iter_mut()
            .for_each(|v| *v = (l * ((*v as f64 - h).exp() - 1.0)) as f32);
        Ok(g)
    }
}

/// A mock observation: shear `P kappa + n` with masked pixels zeroed, where the
/// noise is realisation `index` of `seed`.
pub fn simulate_shear(
    kappa: &[f32],
    noise: &NoiseModel,
    seed: u64,
    index: u64,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let grid = *noise.grid();
    crate::error::check_len("kappa", kappa, grid.len())?;
    crate::error::check_finite("kappa", kappa)?;
    let ks = KaiserSquires::<f32>::new(grid);
    let (mut g1, mut g2) = (vec![0.0f32; grid.len()], vec![0.0f32; grid.len()]);
    ks.forward(kappa, &mut g1, &mut g2)?;
    noise.add_noise(&mut g1, &mut g2, seed, index)?;
    Ok((g1, g2))
}
