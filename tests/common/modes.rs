//! Per-mode statistics of samples against an exact Fourier-diagonal Gaussian
//! posterior (module docs of tests/sampler_exact.rs give the formulas).
//!
//! Statistics over K independent real Fourier components (real and imaginary
//! parts of the half spectrum, mirrors skipped) and N chains:
//! - z_k = (sample mean - exact mean) / sqrt(exact var / N); unbiased sampling
//!   gives RMS(z) = 1 with standard error 1/sqrt(2K);
//! - r_k = sample var / exact var; mean(r) = 1 with standard error
//!   sqrt(2/((N-1) K)).
//!
//! The variance ratio is also reported per band of |k| ([`BANDS`] bands of
//! equal width in |k| up to the largest), so that an excess at low k cannot
//! cancel a deficit at high k; band b's mean has standard error
//! sqrt(2/((N-1) K_b)).
//!
//! [`band_powers`] gives maps' mean power per band, for the learned priors'
//! calibration against held-out truths (tests/learned_prior.rs).

use lensdiff::sampler::FourierGaussianPosterior;
use lensdiff::Grid;
use num_complex::Complex;

/// Bands of |k| for the per-band variance ratios.
pub const BANDS: usize = 4;

pub struct ModeStats {
    pub rms_z: f64,
    pub mean_ratio: f64,
    pub k: usize,
    /// Per band of |k| (low to high): mean variance ratio and count K_b.
    pub band_ratio: [(f64, usize); BANDS],
}

/// The band of |k| (0 .. BANDS, equal widths up to the largest |k|) of the
/// half-spectrum mode (ix, iy).
pub fn band(g: &Grid, ix: usize, iy: usize) -> usize {
    // |k| in units of the fundamental (signed frequency index along y)
    let kmag = |ix: usize, iy: usize| {
        let ky = if iy > g.ny / 2 {
            iy as f64 - g.ny as f64
        } else {
            iy as f64
        };
        (ix as f64).hypot(ky)
    };
    let kmax = kmag(g.nkx() - 1, g.ny / 2);
    ((kmag(ix, iy) / kmax * BANDS as f64) as usize).min(BANDS - 1)
}

/// The mean of a half-spectrum quantity `[ky][kx]` per band of |k| (the
/// k = 0 mode left out; the kx = 0 and Nyquist columns hold both of a
/// conjugate pair, which are counted as stored).
pub fn band_means(g: &Grid, values: &[f64]) -> [f64; BANDS] {
    let mut sums = [(0.0f64, 0usize); BANDS];
    for iy in 0..g.ny {
        for ix in 0..g.nkx() {
            if ix == 0 && iy == 0 {
                continue;
            }
            let b = band(g, ix, iy);
            sums[b].0 += values[iy * g.nkx() + ix];
            sums[b].1 += 1;
        }
    }
    sums.map(|(v, k)| v / k.max(1) as f64)
}

/// The mean power per band of |k| of maps: |F x|² (unnormalised FFT, so
/// n times the pixel power in expectation) averaged over the maps and over
/// the band's modes ([`band_means`]).
pub fn band_powers(g: &Grid, maps: &[f32]) -> [f64; BANDS] {
    let specs = spectra(g, maps);
    let mut power = vec![0.0; g.spectral_len()];
    for s in &specs {
        for (p, c) in power.iter_mut().zip(s) {
            *p += c.norm_sqr() / specs.len() as f64;
        }
    }
    band_means(g, &power)
}

/// The half spectrum (unnormalised forward FFT, f64) of each map of `maps`.
fn spectra(g: &Grid, maps: &[f32]) -> Vec<Vec<Complex<f64>>> {
    let fft = lensdiff::fft::Fft2::<f64>::new(g.nx, g.ny);
    maps.chunks(g.len())
        .map(|m| {
            let x: Vec<f64> = m.iter().map(|&v| v as f64).collect();
            let mut s = vec![Complex::new(0.0, 0.0); g.spectral_len()];
            fft.forward(&x, &mut s);
            s
        })
        .collect()
}

pub fn mode_stats(g: &Grid, oracle: &FourierGaussianPosterior, samples: &[f32]) -> ModeStats {
    let n = g.len();
    let chains = samples.len() / n;
    let specs = spectra(g, samples);
    let (v, m) = (oracle.variance_spectrum(), oracle.mean_spectrum());
    let (mut z2, mut ratio, mut k) = (0.0, 0.0, 0usize);
    let mut bands = [(0.0f64, 0usize); BANDS];
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
                let b = band(g, ix, iy);
                bands[b].0 += sv / var;
                bands[b].1 += 1;
            }
        }
    }
    ModeStats {
        rms_z: (z2 / k as f64).sqrt(),
        mean_ratio: ratio / k as f64,
        k,
        band_ratio: bands.map(|(r, kb)| (r / kb.max(1) as f64, kb)),
    }
}
