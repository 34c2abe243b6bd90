//! The sbi_lens log-normal forward model (Zeghal et al. 2024; sbi_lens commit b2517a4).
//!
//! The 128² benchmark of sbi_lens (its forward model as the benchmark's data
//! were made, all of it stated here), parametrised by `(Omega_c, sigma_8)`:
//!
//! - **Cosmology.** Flat ΛCDM, `Omega_b = 0.0486`, `h = 0.6774`,
//!   `n_s = 0.9667`, `w0 = -1`, `wa = 0` (jax-cosmo's Planck15);
//!   `Omega_m = Omega_c + Omega_b`.
//! - **Spectrum.** One source bin, Smail `n(z) ∝ z^0.5 exp(-(z/1)^2)` on
//!   `0 < z < 10`; `C_ell` from [`convergence_cl`] (Eisenstein–Hu with
//!   wiggles, halofit, Limber) at `ell = logspace(0, 4.5, 128)`, interpolated
//!   **linearly in ell** onto the FFT grid (`ell = 2 pi fftfreq(N, d = L/N)`,
//!   `L` the side in radians), zero at `k = 0`, times `(N/L)²`.
//!   Since `L/N = Δ` (the pixel side in radians), `(N/L)² = 1/Δ²` and the
//!   sbi_lens power map *is* lensdiff's pixel power
//!   (`P_pix = C_ell / Δ²`, [`crate::spectrum`]): no conversion factor.
//! - **Log-normal field.** `xi = ifft2(P).real`,
//!   `P_G = |fft2(ln(1 + xi/lambda²))|` with `P_G[0] = 0`,
//!   `g = ifft2(fft2(z) sqrt(P_G)).real` with `z` white N(0, 1) on the pixels,
//!   `kappa = lambda (exp(g - var(g)/2) - 1)` with `var(g)` the variance of
//!   that realisation (`jnp.var`, population variance). Note the absolute
//!   value, where [`super::LogNormal`] clips negative powers, and the
//!   realisation's own variance, where `LogNormal` uses the expected one
//!   (`lensdiff train --simulate sbi-lognormal` trains on these maps,
//!   `TrainingData::SbiLens`).
//! - **Shift.** `lambda(Omega_m, sigma_8)`: bilinear interpolation of the
//!   8x8 table [`LOGNORMAL_SHIFT`] with sbi_lens's index convention
//!   (`(Omega_m - 0.2)/0.2·8 - 0.5`, `(sigma_8 - 0.6)/0.4·8 - 0.5`, as
//!   written there) and `scipy.ndimage.map_coordinates(order=1,
//!   mode="nearest")` clamping ([`lognormal_shift`]).
//! - **Noise.** iid Gaussian on the convergence pixels,
//!   `sigma_n = sigma_e / sqrt(n_gal A_pix)` with `sigma_e = 0.2`,
//!   `n_gal = 30` per arcmin² and `A_pix = (300/128)² = 5.4932` arcmin²:
//!   `sigma_n = 0.0155797` ([`noise_sigma`]).
//!
//! Random numbers: the white field `z` of map `i` is Philox
//! `(seed, Stream::Field, chain i, step 0)`, the same as
//! [`super::gaussian_fields`]; the noise of map `i` is
//! `(seed, Stream::ShapeNoise, chain i, step` [`NOISE_STEP`]`)` (steps 0 and
//! 1 are the two shear components of [`crate::noise::NoiseModel`]).

use num_complex::Complex;
use rayon::prelude::*;

use crate::cosmo::limber::{convergence_cl, ClOptions};
use crate::cosmo::nz::{Nz, SourceBin};
use crate::cosmo::Cosmology;
use crate::error::{Error, Result};
use crate::fft::Fft2;
use crate::grid::Grid;
use crate::rng::{Philox, Stream};
use crate::spectrum::ClTable;

/// Baryon density of the model (fixed).
pub const OMEGA_B: f64 = 0.0486;
/// Reduced Hubble constant of the model (fixed).
pub const H: f64 = 0.6774;
/// Spectral index of the model (fixed).
pub const N_S: f64 = 0.9667;
/// Map side in pixels.
pub const N_PIX: usize = 128;
/// Map side in degrees.
pub const SIDE_DEG: f64 = 5.0;
/// Pixel side in arcmin: `5 · 60 / 128 = 2.34375`.
pub const PIXEL_ARCMIN: f64 = SIDE_DEG * 60.0 / N_PIX as f64;
/// Galaxies per arcmin².
pub const GAL_PER_ARCMIN2: f64 = 30.0;
/// Intrinsic ellipticity dispersion.
pub const SIGMA_E: f64 = 0.2;
/// The truth of the benchmark's observation: `(Omega_c, sigma_8)`.
pub const TRUTH: (f64, f64) = (0.3, 0.8);
/// Philox step of the noise stream (see the module documentation).
pub const NOISE_STEP: u64 = 2;

/// The log-normal shift `lambda` of sbi_lens: `LOGNORMAL_SHIFT[i][j]` at
/// `Omega_m = 0.2 + 0.2 i/7`, `sigma_8 = 0.6 + 0.4 j/7` (`linspace(0.2, 0.4,
/// 8)` by `linspace(0.6, 1.0, 8)`). The third column of
/// shift csv of the sbi_lens folder of the shared test data (`lognormal_shift_b2517a4`), sbi_lens's
/// file `lognormal_shift.csv` (its `data` folder) at commit b2517a4 (rows `Omega_m, sigma_8,
/// lambda`, `Omega_m` the outer loop), which sbi_lens reshapes to `[8, 8, 3]`.
pub const LOGNORMAL_SHIFT: [[f64; 8]; 8] = [
    [
        0.02428640949575441,
        0.024006450414330333,
        0.023785053121515992,
        0.023624886747017,
        0.023524485756293102,
        0.023479998781290198,
        0.023486993994212814,
        0.023539825858260883,
    ],
    [
        0.02629226407957147,
        0.025993252342324302,
        0.025766638582081426,
        0.025612868661904563,
        0.025528106887040797,
        0.025506138637783705,
        0.02554049492082252,
        0.02562427500567941,
    ],
    [
        0.028119426471666917,
        0.027812442932992454,
        0.027591387802242483,
        0.027454463994000578,
        0.02739473862344658,
        0.027403195810142937,
        0.027472590284477662,
        0.027593265630424038,
    ],
    [
        0.029798612114891238,
        0.02949451279136625,
        0.02929046374249824,
        0.029179268815066897,
        0.029152760894390454,
        0.029199441357538408,
        0.029309147890907744,
        0.029471016322627667,
    ],
    [
        0.03135540870606038,
        0.031064715970750424,
        0.030886485452111617,
        0.030810618201057606,
        0.030824322593274354,
        0.03091469184169037,
        0.03106820383926627,
        0.03127539504931945,
    ],
    [
        0.032810248362948304,
        0.032543448980435305,
        0.03240049938255928,
        0.032366529240656305,
        0.03242629978471611,
        0.032563490462868494,
        0.03276564462892519,
        0.03301879377854716,
    ],
    [
        0.03418177460409556,
        0.03394838693178802,
        0.03384778669856403,
        0.03386162306914285,
        0.03397141238302153,
        0.034160318920593145,
        0.034410807050932225,
        0.03471248992455402,
    ],
    [
        0.03548432423154983,
        0.03529200045447309,
        0.03524066769865861,
        0.035306964492474786,
        0.035470650521631605,
        0.035711069754591464,
        0.036012916470886135,
        0.036361901966773406,
    ],
];

/// `lambda(Omega_m, sigma_8)` as sbi_lens computes it: bilinear
/// interpolation of [`LOGNORMAL_SHIFT`] at the fractional indices
/// `(Omega_m - 0.2)/0.2·8 - 0.5` and `(sigma_8 - 0.6)/0.4·8 - 0.5` (sic: not
/// the `·7` the table's `linspace` would give), the indices clamped to the
/// table (`map_coordinates(order=1, mode="nearest")`).
pub fn lognormal_shift(omega_m: f64, sigma8: f64) -> f64 {
    let coord = |x: f64, lo: f64, width: f64| ((x - lo) / width * 8.0 - 0.5).clamp(0.0, 7.0);
    let (u, v) = (coord(omega_m, 0.2, 0.2), coord(sigma8, 0.6, 0.4));
    let (i, j) = ((u.floor() as usize).min(6), (v.floor() as usize).min(6));
    let (tu, tv) = (u - i as f64, v - j as f64);
    let t = &LOGNORMAL_SHIFT;
    (1.0 - tu) * ((1.0 - tv) * t[i][j] + tv * t[i][j + 1])
        + tu * ((1.0 - tv) * t[i + 1][j] + tv * t[i + 1][j + 1])
}

/// The per-pixel noise std `sigma_e / sqrt(n_gal A_pix)`, `A_pix` the pixel
/// area in arcmin² (`(300/128)² = 5.4932`): 0.0155797.
pub fn noise_sigma() -> f64 {
    SIGMA_E / (GAL_PER_ARCMIN2 * PIXEL_ARCMIN * PIXEL_ARCMIN).sqrt()
}

/// The multipoles the spectrum is tabulated at: `logspace(0, 4.5, 128)`.
pub fn ell_table() -> Vec<f64> {
    (0..128)
        .map(|i| 10f64.powf(4.5 * i as f64 / 127.0))
        .collect()
}

/// `numpy.interp`-like linear interpolation in `x` (jax-cosmo's `interp`:
/// linear extrapolation from the end intervals).
fn interp_linear(xp: &[f64], fp: &[f64], x: f64) -> f64 {
    let i = xp.partition_point(|&v| v <= x).clamp(1, xp.len() - 1);
    let (x0, x1, f0, f1) = (xp[i - 1], xp[i], fp[i - 1], fp[i]);
    (f0 * (x1 - x) + f1 * (x - x0)) / (x1 - x0)
}

/// The sbi_lens cosmology at `(Omega_c, sigma_8)`: [`OMEGA_B`], [`H`],
/// [`N_S`], `w0 = -1`, `wa = 0`.
pub fn cosmology(omega_c: f64, sigma8: f64) -> Result<Cosmology> {
    Cosmology::new(omega_c, OMEGA_B, H, N_S, sigma8, -1.0, 0.0)
}

/// The sbi_lens source distribution: Smail `a = 0.5`, `b = 2`, `z0 = 1`, cut
/// at `z = 10`.
pub fn source() -> Result<SourceBin> {
    Nz::Smail {
        a: 0.5,
        b: 2.0,
        z0: 1.0,
        z_max: 10.0,
    }
    .source()
}

/// The sbi_lens 128² log-normal model at one `(Omega_c, sigma_8)`.
#[derive(Debug, Clone)]
pub struct SbiLens128 {
    cosmology: Cosmology,
    grid: Grid,
    lambda: f64,
    ells: Vec<f64>,
    cl: Vec<f64>,
    power: Vec<f64>,
    gaussian_power: Vec<f64>,
}

impl SbiLens128 {
    /// The model at `(Omega_c, sigma_8)`. Unphysical values (non-finite,
    /// `Omega_c < 0`, `Omega_m > 1`, `sigma_8 <= 0`) are typed errors from
    /// [`Cosmology::new`]; so is a shift too small for the spectrum
    /// (`1 + xi/lambda² <= 0`).
    pub fn new(omega_c: f64, sigma8: f64) -> Result<Self> {
        let cosmology = cosmology(omega_c, sigma8)?;
        let grid = Grid::square(N_PIX, PIXEL_ARCMIN)?;
        let source = source()?;
        let ells = ell_table();
        let cl = convergence_cl(&cosmology, &[source], &ells, &ClOptions::default())?
            .cl
            .swap_remove(0);
        let lambda = lognormal_shift(cosmology.omega_m(), sigma8);
        // (N/L)² = 1/Δ²: the sbi_lens power map is lensdiff's pixel power.
        let inv_area = 1.0 / grid.pixel_area_sr();
        let mut power: Vec<f64> = grid
            .ell_map()
            .iter()
            .map(|&l| interp_linear(&ells, &cl, l) * inv_area)
            .collect();
        power[0] = 0.0;
        let gaussian_power = gaussian_power(&grid, &power, lambda)?;
        Ok(SbiLens128 {
            cosmology,
            grid,
            lambda,
            ells,
            cl,
            power,
            gaussian_power,
        })
    }

    /// The model at the benchmark's truth `(0.3, 0.8)`.
    pub fn truth() -> Result<Self> {
        Self::new(TRUTH.0, TRUTH.1)
    }

    /// The full cosmology (fixed parameters included).
    pub fn cosmology(&self) -> &Cosmology {
        &self.cosmology
    }

    /// The 128² grid of 2.34375' pixels.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// The log-normal shift: every map is `>= -lambda`.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// The tabulated spectrum: `(ell, C_ell)` at `logspace(0, 4.5, 128)`.
    pub fn cl(&self) -> (&[f64], &[f64]) {
        (&self.ells, &self.cl)
    }

    /// The target pixel power `C(ell)/Δ²` (linear in ell between the table's
    /// rows), half spectrum `[ky][kx]`, zero at `k = 0`.
    pub fn power(&self) -> &[f64] {
        &self.power
    }

    /// The pixel power `P_G` of the Gaussian field `g`, half spectrum.
    pub fn gaussian_power(&self) -> &[f64] {
        &self.gaussian_power
    }

    /// The target spectrum at the grid's own multipoles: one row per distinct
    /// `|ell|` of the grid (zero mode excluded), `C = power · Δ²`. Its
    /// log-log interpolation ([`ClTable::eval`]) returns the model's value
    /// at every grid mode, so `bin_theory` of it is exact; it is also the
    /// Gaussian prior of this model.
    pub fn grid_cl_table(&self) -> Result<ClTable> {
        let area = self.grid.pixel_area_sr();
        let mut rows: Vec<(f64, f64)> = self
            .grid
            .ell_map()
            .into_iter()
            .zip(&self.power)
            .skip(1)
            .map(|(l, p)| (l, p * area))
            .collect();
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        rows.dedup_by(|a, b| a.0 <= b.0 * (1.0 + 1e-12));
        ClTable::new(
            rows.iter().map(|r| r.0).collect(),
            rows.iter().map(|r| r.1).collect(),
        )
    }

    /// Draws `count` noiseless convergence maps, realisations
    /// `first..first + count` of `seed` (map `i` does not depend on `count`).
    /// Layout `[count][128][128]`.
    pub fn sample(&self, seed: u64, first: u64, count: usize) -> Result<Vec<f32>> {
        if count == 0 {
            return Err(Error::invalid("count", "need at least one map"));
        }
        let g = &self.grid;
        let n = g.len();
        let amp: Vec<f64> = self.gaussian_power.iter().map(|p| p.sqrt()).collect();
        let fft = Fft2::<f64>::new(g.nx, g.ny);
        let lambda = self.lambda;
        let mut out = vec![0.0f32; count * n];
        out.par_chunks_mut(n).enumerate().for_each(|(i, m)| {
            let mut z = vec![0.0f64; n];
            Philox::new(seed, Stream::Field, first + i as u64, 0).fill_normal_f64(&mut z);
            let mut s = vec![Complex::new(0.0, 0.0); g.spectral_len()];
            fft.forward(&z, &mut s);
            s.iter_mut().zip(&amp).for_each(|(s, a)| *s *= *a);
            fft.inverse(&s, &mut z);
            let mean = z.iter().sum::<f64>() / n as f64;
            let var = z.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
            for (m, v) in m.iter_mut().zip(&z) {
                *m = (lambda * ((v - 0.5 * var).exp() - 1.0)) as f32;
            }
        });
        Ok(out)
    }

    /// Adds the model's pixel noise ([`noise_sigma`]) to a stack of maps;
    /// map `i` gets realisation `first + i` of `seed`.
    pub fn add_noise(&self, maps: &mut [f32], seed: u64, first: u64) -> Result<()> {
        let n = self.grid.len();
        self.grid.check_batch("maps", maps)?;
        let s = noise_sigma();
        maps.par_chunks_mut(n).enumerate().for_each(|(i, m)| {
            let mut e = vec![0.0f64; n];
            Philox::new(seed, Stream::ShapeNoise, first + i as u64, NOISE_STEP)
                .fill_normal_f64(&mut e);
            for (m, e) in m.iter_mut().zip(&e) {
                *m = (*m as f64 + s * e) as f32;
            }
        });
        Ok(())
    }

    /// Noiseless maps and their noisy observations: `(kappa, kappa + noise)`,
    /// realisations `first..first + count` of `seed` (field and noise streams
    /// differ).
    pub fn observe(&self, seed: u64, first: u64, count: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let kappa = self.sample(seed, first, count)?;
        let mut data = kappa.clone();
        self.add_noise(&mut data, seed, first)?;
        Ok((kappa, data))
    }
}

/// `P_G = |fft2(ln(1 + ifft2(P)/lambda²))|`, zero at `k = 0`.
fn gaussian_power(grid: &Grid, power: &[f64], lambda: f64) -> Result<Vec<f64>> {
    let pg = super::log_correlation_spectrum(grid, power, lambda)?;
    let mut out: Vec<f64> = pg.iter().map(|c| c.norm()).collect();
    out[0] = 0.0;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_interpolation_clamps_and_hits_the_nodes() {
        // index (Om - 0.2)/0.2*8 - 0.5 = 0 at Om = 0.2125, 7 at Om = 0.3875
        let om = |i: f64| 0.2 + (i + 0.5) / 8.0 * 0.2;
        let s8 = |j: f64| 0.6 + (j + 0.5) / 8.0 * 0.4;
        assert!((lognormal_shift(om(2.0), s8(5.0)) - LOGNORMAL_SHIFT[2][5]).abs() < 1e-15);
        assert_eq!(lognormal_shift(0.0, 0.0), LOGNORMAL_SHIFT[0][0]);
        assert_eq!(lognormal_shift(1.0, 2.0), LOGNORMAL_SHIFT[7][7]);
        assert_eq!(lognormal_shift(om(7.0), s8(7.0)), LOGNORMAL_SHIFT[7][7]);
        assert!((noise_sigma() - 0.0155797).abs() < 1e-7);
    }
}
