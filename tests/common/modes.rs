//! Per-mode statistics of samples against an exact Fourier-diagonal Gaussian
//! posterior (module docs of tests/sampler_exact.rs give the formulas).
//!
//! Statistics over K independent real Fourier components (real and imaginary
//! parts of the half spectrum, mirrors skipped) and N chains:
//! - z_k = (sample mean - exact mean) / sqrt(exact var / N); unbiased sampling
//!   gives RMS(z) = 1 with standard error 1/sqrt(2K);
//! - r_k = sample var / exact var; mean(r) = 1 with standard error
//!   sqrt(2/((N-1) K)).

use lensdiff::sampler::FourierGaussianPosterior;
use lensdiff::Grid;
use num_complex::Complex;

pub struct ModeStats {
    pub rms_z: f64,
    pub mean_ratio: f64,
    pub k: usize,
}

pub fn mode_stats(g: &Grid, oracle: &FourierGaussianPosterior, samples: &[f32]) -> ModeStats {
    let n = g.len();
    let chains = samples.len() / n;
    let fft = lensdiff::fft::Fft2::<f64>::new(g.nx, g.ny);
    let specs: Vec<Vec<Complex<f64>>> = samples
        .chunks(n)
        .map(|m| {
            let x: Vec<f64> = m.iter().map(|&v| v as f64).collect();
            let mut s = vec![Complex::new(0.0, 0.0); g.spectral_len()];
            fft.forward(&x, &mut s);
            s
        })
        .collect();
    let (v, m) = (oracle.variance_spectrum(), oracle.mean_spectrum());
    let (mut z2, mut ratio, mut k) = (0.0, 0.0, 0usize);
    let nkx = g.nkx();
    for iy in 0..g.ny {
        for ix in 0..nkx {
            let self_col = ix == 0 || g.is_nyquist_x(ix);
            if self_col && iy > g.ny / 2 {
                continue; // mirror of a mode already counted
            }
            let i = iy * nkx + ix;
            if v[i] == 0.0 {
                continue;
            }
            let self_mirror = self_col && (iy == 0 || g.is_nyquist_y(iy));
            let parts: &[usize] = if self_mirror { &[0] } else { &[0, 1] };
            let var = if self_mirror {
                n as f64 * v[i]
            } else {
                n as f64 * v[i] / 2.0
            };
            for &p in parts {
                let get = |c: &Complex<f64>| if p == 0 { c.re } else { c.im };
                let xs: Vec<f64> = specs.iter().map(|s| get(&s[i])).collect();
                let mean = xs.iter().sum::<f64>() / chains as f64;
                let sv = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (chains - 1) as f64;
                z2 += ((mean - get(&m[i])) / (var / chains as f64).sqrt()).powi(2);
                ratio += sv / var;
                k += 1;
            }
        }
    }
    ModeStats {
        rms_z: (z2 / k as f64).sqrt(),
        mean_ratio: ratio / k as f64,
        k,
    }
}
