//! Shape-noise models and masks.
//!
//! Each shear component `c` of pixel `i` carries independent Gaussian noise of
//! variance `v_c[i]`; the model stores the inverse variances (weights)
//! `w_c[i] = 1 / v_c[i]`. A masked pixel has `w = 0`: it carries no
//! information, and the maths uses the weights directly (no huge-variance hacks).
//!
//! Shape noise of galaxies with intrinsic ellipticity dispersion `sigma_e`
//! (per component) averaged over `n[i]` galaxies: `v[i] = sigma_e² / n[i]`;
//! for a surface density `n_gal` per arcmin², `n[i] = n_gal · A_pix`.

use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::rng::{Philox, Stream};

/// Per-pixel, per-component Gaussian noise with masks as zero weight.
#[derive(Debug, Clone, PartialEq)]
pub struct NoiseModel {
    grid: Grid,
    w1: Vec<f32>,
    w2: Vec<f32>,
}

fn check_nonneg(name: &'static str, data: &[f32]) -> Result<()> {
    for (index, &v) in data.iter().enumerate() {
        if !v.is_finite() {
            return Err(Error::NonFinite { name, index });
        }
        if v < 0.0 {
            return Err(Error::NegativeVariance {
                name,
                index,
                value: v as f64,
            });
        }
    }
    Ok(())
}

/// The one rule for scalar noise parameters (a std, `sigma_e`, a galaxy
/// density): NaN or infinity is [`Error::NonFiniteValue`], a negative value
/// [`Error::NegativeNoise`] (as negative maps are [`Error::NegativeVariance`]),
/// and zero, which would mean infinite precision or no galaxies, is
/// [`Error::InvalidArgument`].
pub(crate) fn check_noise_level(name: &'static str, value: f64) -> Result<()> {
    if !value.is_finite() {
        return Err(Error::NonFiniteValue { name, value });
    }
    if value < 0.0 {
        return Err(Error::NegativeNoise { name, value });
    }
    if value == 0.0 {
        return Err(Error::invalid(name, "must be positive, got 0"));
    }
    Ok(())
}

impl NoiseModel {
    /// A model from inverse-variance maps (0 = masked). Fails on negative or
    /// non-finite weights and on a fully masked field.
    pub fn from_weights(grid: Grid, w1: Vec<f32>, w2: Vec<f32>) -> Result<Self> {
        crate::error::check_len("weight1", &w1, grid.len())?;
        crate::error::check_len("weight2", &w2, grid.len())?;
        check_nonneg("weight1", &w1)?;
        check_nonneg("weight2", &w2)?;
        if w1.iter().chain(&w2).all(|&w| w == 0.0) {
            return Err(Error::FullyMasked);
        }
        Ok(NoiseModel { grid, w1, w2 })
    }

    /// Uniform per-component noise std `sigma` on every observed pixel
    /// (`mask[i] = true` where observed; `None` = no mask).
    pub fn uniform(grid: Grid, sigma: f64, mask: Option<&[bool]>) -> Result<Self> {
        check_noise_level("sigma", sigma)?;
        let std = vec![sigma as f32; grid.len()];
        Self::from_std(grid, &std, &std, mask)
    }

    /// Per-pixel std maps (`std_c[i] = sqrt(v_c[i])`). With `mask = None`, pixels
    /// whose two std values are 0 are masked (the convention of the COSMOS
    /// `std1.fits` and `std2.fits` files); with a mask, unobserved pixels are
    /// masked and an observed pixel with zero std is an error (infinite precision).
    pub fn from_std(grid: Grid, std1: &[f32], std2: &[f32], mask: Option<&[bool]>) -> Result<Self> {
        crate::error::check_len("std1", std1, grid.len())?;
        crate::error::check_len("std2", std2, grid.len())?;
        check_nonneg("std1", std1)?;
        check_nonneg("std2", std2)?;
        if let Some(m) = mask {
            if m.len() != grid.len() {
                return Err(Error::shape("mask", grid.len(), m.len()));
            }
        }
        let mut w1 = vec![0.0f32; grid.len()];
        let mut w2 = vec![0.0f32; grid.len()];
        for i in 0..grid.len() {
            let observed = match mask {
                Some(m) => m[i],
                None => std1[i] > 0.0 || std2[i] > 0.0,
            };
            if !observed {
                continue;
            }
            for (w, s, name) in [(&mut w1, std1, "std1"), (&mut w2, std2, "std2")] {
                if s[i] == 0.0 {
                    return Err(Error::invalid(
                        name,
                        format!("pixel {i} is observed but has zero noise std; mask it instead"),
                    ));
                }
                w[i] = 1.0 / (s[i] * s[i]);
            }
        }
        Self::from_weights(grid, w1, w2)
    }

    /// Shape noise `sigma_e² / n[i]` from per-pixel galaxy counts (0 = masked).
    pub fn from_counts(grid: Grid, sigma_e: f64, counts: &[f32]) -> Result<Self> {
        check_noise_level("sigma_e", sigma_e)?;
        crate::error::check_len("counts", counts, grid.len())?;
        check_nonneg("counts", counts)?;
        let w: Vec<f32> = counts
            .iter()
            .map(|&n| (n as f64 / (sigma_e * sigma_e)) as f32)
            .collect();
        Self::from_weights(grid, w.clone(), w)
    }

    /// Shape noise for a uniform galaxy density `n_gal` per arcmin²:
    /// per-component std `sigma_e / sqrt(n_gal A_pix)`.
    pub fn from_density(
        grid: Grid,
        sigma_e: f64,
        n_gal_per_arcmin2: f64,
        mask: Option<&[bool]>,
    ) -> Result<Self> {
        check_noise_level("n_gal", n_gal_per_arcmin2)?;
        check_noise_level("sigma_e", sigma_e)?;
        let sigma = sigma_e / (n_gal_per_arcmin2 * grid.pixel_arcmin * grid.pixel_arcmin).sqrt();
        Self::uniform(grid, sigma, mask)
    }

    /// The grid.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// Inverse variance of component 1 (0 = masked).
    pub fn weight1(&self) -> &[f32] {
        &self.w1
    }

    /// Inverse variance of component 2 (0 = masked).
    pub fn weight2(&self) -> &[f32] {
        &self.w2
    }

    /// `true` where at least one component is observed.
    pub fn mask(&self) -> Vec<bool> {
        self.w1
            .iter()
            .zip(&self.w2)
            .map(|(a, b)| *a > 0.0 || *b > 0.0)
            .collect()
    }

    /// Number of observed pixels.
    pub fn n_observed(&self) -> usize {
        self.w1
            .iter()
            .zip(&self.w2)
            .filter(|(a, b)| **a > 0.0 || **b > 0.0)
            .count()
    }

    /// Per-component std maps (0 where masked).
    pub fn std_maps(&self) -> (Vec<f32>, Vec<f32>) {
        let s = |w: &[f32]| {
            w.iter()
                .map(|&w| if w > 0.0 { 1.0 / w.sqrt() } else { 0.0 })
                .collect()
        };
        (s(&self.w1), s(&self.w2))
    }

    /// Whether every observed pixel has the same weight in both components
    /// and nothing is masked (the case the Fourier-space Wiener filter solves exactly).
    pub fn uniform_weight(&self) -> Option<f32> {
        let w0 = self.w1[0];
        (w0 > 0.0 && self.w1.iter().chain(&self.w2).all(|&w| w == w0)).then_some(w0)
    }

    /// Adds one noise realisation to a shear pair and zeroes masked pixels.
    /// The noise of map `index` under `seed` is the same whatever the batch.
    pub fn add_noise(&self, g1: &mut [f32], g2: &mut [f32], seed: u64, index: u64) -> Result<()> {
        crate::error::check_len("gamma1", g1, self.grid.len())?;
        crate::error::check_len("gamma2", g2, self.grid.len())?;
        let mut z = vec![0.0f32; self.grid.len()];
        for (c, (g, w)) in [(g1, &self.w1), (g2, &self.w2)].into_iter().enumerate() {
            Philox::new(seed, Stream::ShapeNoise, index, c as u64).fill_normal(&mut z);
            for ((g, &w), &z) in g.iter_mut().zip(w.iter()).zip(&z) {
                *g = if w > 0.0 { *g + z / w.sqrt() } else { 0.0 };
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_and_errors() {
        let g = Grid::square(4, 1.0).unwrap();
        let mut mask = vec![true; 16];
        mask[3] = false;
        let m = NoiseModel::uniform(g, 0.5, Some(&mask)).unwrap();
        assert_eq!(m.n_observed(), 15);
        assert_eq!(m.weight1()[0], 4.0);
        assert_eq!(m.weight2()[3], 0.0);
        assert!(m.uniform_weight().is_none());
        assert_eq!(
            NoiseModel::uniform(g, 0.5, None).unwrap().uniform_weight(),
            Some(4.0)
        );
        // sigma_e / sqrt(n): 0.3 / sqrt(9) = 0.1 => weight 100
        let mut counts = vec![9.0f32; 16];
        counts[0] = 0.0;
        let c = NoiseModel::from_counts(g, 0.3, &counts).unwrap();
        assert!((c.weight1()[1] - 100.0).abs() < 1e-3);
        assert!(!c.mask()[0]);
        assert!(matches!(
            NoiseModel::uniform(g, 0.5, Some(&[false; 16])),
            Err(Error::FullyMasked)
        ));
        assert!(matches!(
            NoiseModel::from_std(g, &[-1.0; 16], &[1.0; 16], None),
            Err(Error::NegativeVariance { .. })
        ));
        let mut nan = vec![1.0f32; 16];
        nan[5] = f32::NAN;
        assert!(matches!(
            NoiseModel::from_std(g, &nan, &[1.0; 16], None),
            Err(Error::NonFinite { .. })
        ));
        assert!(NoiseModel::from_std(g, &[0.0; 16], &[1.0; 16], Some(&[true; 16])).is_err());
        assert!(matches!(
            NoiseModel::uniform(g, 0.0, None),
            Err(Error::InvalidArgument { .. })
        ));
        // one rule for scalar noise levels: negative, non-finite, zero
        for (r, what) in [
            (NoiseModel::uniform(g, -0.1, None), "uniform std"),
            (NoiseModel::from_counts(g, -0.3, &[1.0; 16]), "sigma_e"),
            (NoiseModel::from_density(g, -0.3, 30.0, None), "sigma_e"),
            (NoiseModel::from_density(g, 0.3, -30.0, None), "n_gal"),
        ] {
            assert!(
                matches!(r, Err(Error::NegativeNoise { .. })),
                "{what}: {r:?}"
            );
        }
        for r in [
            NoiseModel::uniform(g, f64::NAN, None),
            NoiseModel::from_counts(g, f64::INFINITY, &[1.0; 16]),
            NoiseModel::from_density(g, 0.3, f64::NAN, None),
        ] {
            assert!(matches!(r, Err(Error::NonFiniteValue { .. })), "{r:?}");
        }
        assert!(NoiseModel::from_std(g, &[1.0; 15], &[1.0; 16], None).is_err());
    }

    #[test]
    fn noise_has_the_stated_variance_and_respects_the_mask() {
        // 256² pixels with std 0.2: the sample variance has relative MC error
        // sqrt(2/65536) = 0.55%; bound at 5 sigma.
        let g = Grid::square(256, 1.0).unwrap();
        let mut mask = vec![true; g.len()];
        mask[..256].iter_mut().for_each(|m| *m = false);
        let m = NoiseModel::uniform(g, 0.2, Some(&mask)).unwrap();
        let (mut g1, mut g2) = (vec![1.0f32; g.len()], vec![0.0f32; g.len()]);
        m.add_noise(&mut g1, &mut g2, 9, 0).unwrap();
        assert!(g1[..256].iter().all(|&v| v == 0.0));
        let obs = &g2[256..];
        let var = obs.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / obs.len() as f64;
        assert!(
            (var / 0.04 - 1.0).abs() < 5.0 * (2.0 / obs.len() as f64).sqrt(),
            "{var}"
        );
        let mean1 = g1[256..].iter().map(|&v| v as f64).sum::<f64>() / obs.len() as f64;
        assert!((mean1 - 1.0).abs() < 5.0 * 0.2 / (obs.len() as f64).sqrt());
    }
}
