//! Angular power spectra: C_ell tables, pixel power maps and a binned estimator.
//!
//! Convention (`docs/conventions.md`, "Power spectra"): the pixel power of a
//! map `x` on `N = nx ny` pixels is `P_pix(k) = E|fft2(x)_k|² / N`, so white
//! noise of per-pixel variance `s²` has `P_pix = s²`, and
//! `P_pix(k) = C_ell / Δ²` with `Δ` the pixel side in radians and
//! `ell = 2 pi |k| / Δ`.
//!
//! Estimator: `C_ell ≈ Δ² |fft2(x)_k|² / N`, averaged over the modes of each
//! ell bin (full-plane modes, from the half spectrum with Hermitian weights)
//! and over the maps of a batch. With a mask `m`, the pseudo-spectrum of `m x`
//! is divided by `f_sky = mean(m²)` (the leading-order correction of Hivon et
//! al. 2002, exact for white noise).

use std::path::Path;

use num_complex::Complex;

use crate::error::{Error, Result};
use crate::fft::Fft2;
use crate::grid::Grid;

/// A tabulated angular power spectrum `C_ell` (dimensionless convergence).
#[derive(Debug, Clone, PartialEq)]
pub struct ClTable {
    ell: Vec<f64>,
    cl: Vec<f64>,
}

impl ClTable {
    /// A table from multipoles (strictly increasing, positive) and
    /// non-negative spectrum values.
    pub fn new(ell: Vec<f64>, cl: Vec<f64>) -> Result<Self> {
        if ell.len() != cl.len() {
            return Err(Error::shape("cl", ell.len(), cl.len()));
        }
        if ell.len() < 2 {
            return Err(Error::invalid("cl", "a C_ell table needs at least 2 rows"));
        }
        for (i, (&l, &c)) in ell.iter().zip(&cl).enumerate() {
            if !l.is_finite() || !c.is_finite() {
                return Err(Error::NonFinite {
                    name: "cl",
                    index: i,
                });
            }
            if l <= 0.0 {
                return Err(Error::invalid(
                    "ell",
                    format!("multipoles must be positive, row {i} has {l}"),
                ));
            }
            if c < 0.0 {
                return Err(Error::invalid(
                    "cl",
                    format!("C_ell must be non-negative, row {i} has {c}"),
                ));
            }
            if i > 0 && l <= ell[i - 1] {
                return Err(Error::invalid(
                    "ell",
                    format!("multipoles must increase strictly (row {i})"),
                ));
            }
        }
        Ok(ClTable { ell, cl })
    }

    /// The built-in default spectrum: a smooth fit to the kappaTNG convergence
    /// spectrum (sources at z ≈ 1) that Remy et al. (2023) matched to their
    /// simulations, within 5% for 10 ≤ ell ≤ 1e5:
    /// `C(ell) = A ell^(-a) (1 + (ell/l1)²)^(-b/2) (1 + (ell/l2)²)^(-c/2)`,
    /// `ln A = -16.9976`, `a = -0.04293`, `l1 = 31.254`, `b = 1.33432`,
    /// `l2 = 6866.7`, `c = 0.99533`; tabulated on 241 log-spaced ell in [1, 1e6].
    pub fn default_kappa() -> Self {
        let f = |l: f64| {
            (-16.997_637_8_f64).exp()
                * l.powf(0.042_927_512)
                * (1.0 + (l / 31.253_628_6).powi(2)).powf(-1.334_323_61 / 2.0)
                * (1.0 + (l / 6_866.730_59).powi(2)).powf(-0.995_333_221 / 2.0)
        };
        let ell: Vec<f64> = (0..=240).map(|i| 10f64.powf(i as f64 / 40.0)).collect();
        let cl = ell.iter().map(|&l| f(l)).collect();
        ClTable { ell, cl }
    }

    /// Reads a table: text with two columns `ell C_ell` (`#` comments), or
    /// `.npy` of shape `(2, n)` (rows ell, C_ell, as `ktng_PS_theory.npy`) or `(n, 2)`.
    pub fn read(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .unwrap_or_default();
        if ext == "npy" {
            let a = crate::io::read_array_f64(path)?;
            let shape = a.shape().to_vec();
            let flat: Vec<f64> = a.iter().copied().collect();
            let (ell, cl) = match shape.as_slice() {
                [2, n] if *n != 2 => (flat[..*n].to_vec(), flat[*n..].to_vec()),
                [_, 2] => (
                    flat.iter().step_by(2).copied().collect(),
                    flat.iter().skip(1).step_by(2).copied().collect(),
                ),
                _ => {
                    return Err(Error::Format {
                        path: path.to_path_buf(),
                        reason: format!(
                            "a C_ell table must have shape (2, n) or (n, 2), got {shape:?}"
                        ),
                    })
                }
            };
            return Self::new(ell, cl).map_err(|e| Error::Format {
                path: path.to_path_buf(),
                reason: e.to_string(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let (mut ell, mut cl) = (Vec::new(), Vec::new());
        for (lineno, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let cols: Vec<&str> = line
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|s| !s.is_empty())
                .collect();
            let parse = |s: &str| s.parse::<f64>().ok();
            match (
                cols.first().and_then(|s| parse(s)),
                cols.get(1).and_then(|s| parse(s)),
            ) {
                (Some(l), Some(c)) => {
                    ell.push(l);
                    cl.push(c);
                }
                _ => {
                    return Err(Error::Format {
                        path: path.to_path_buf(),
                        reason: format!("line {}: expected two numbers `ell C_ell`", lineno + 1),
                    })
                }
            }
        }
        Self::new(ell, cl).map_err(|e| Error::Format {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Writes the table as two text columns.
    pub fn write_text(&self, path: &Path) -> Result<()> {
        let mut s = String::from("# ell C_ell\n");
        for (l, c) in self.ell.iter().zip(&self.cl) {
            s.push_str(&format!("{l:.6e} {c:.6e}\n"));
        }
        std::fs::write(path, s).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Multipoles of the table.
    pub fn ell(&self) -> &[f64] {
        &self.ell
    }

    /// Values of the table.
    pub fn cl(&self) -> &[f64] {
        &self.cl
    }

    /// The table with every C_ell multiplied by `factor` (≥ 0).
    pub fn scaled(&self, factor: f64) -> Result<Self> {
        Self::new(
            self.ell.clone(),
            self.cl.iter().map(|c| c * factor).collect(),
        )
    }

    /// `C(ell)` interpolated linearly in (ln ell, ln C); linearly in ell where
    /// a neighbour is zero. Outside the table, the power law through the two
    /// end rows is extended (zero if an end value is zero); `C(0) = 0`.
    pub fn eval(&self, ell: f64) -> f64 {
        if ell <= 0.0 {
            return 0.0;
        }
        let n = self.ell.len();
        let i = match self.ell.partition_point(|&l| l <= ell) {
            0 => 0,
            p if p >= n => n - 2,
            p => p - 1,
        };
        let (l0, l1, c0, c1) = (self.ell[i], self.ell[i + 1], self.cl[i], self.cl[i + 1]);
        if c0 > 0.0 && c1 > 0.0 {
            let t = (ell.ln() - l0.ln()) / (l1.ln() - l0.ln());
            (c0.ln() + t * (c1.ln() - c0.ln())).exp()
        } else if ell < l0 || ell > l1 {
            0.0
        } else {
            c0 + (ell - l0) / (l1 - l0) * (c1 - c0)
        }
    }

    /// The pixel power map `P_pix = C(ell)/Δ²` on the half spectrum `[ky][kx]`
    /// of `grid`, zero at `k = 0`.
    pub fn pixel_power(&self, grid: &Grid) -> Vec<f64> {
        let inv_area = 1.0 / grid.pixel_area_sr();
        grid.ell_map()
            .iter()
            .map(|&l| self.eval(l) * inv_area)
            .collect()
    }
}

/// How to place ell bins.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Binning {
    /// `n` bins evenly spaced in ell between the fundamental and the Nyquist multipole.
    Linear(usize),
    /// `n` bins evenly spaced in ln ell over the same range.
    Log(usize),
}

/// A binned power-spectrum estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct BinnedSpectrum {
    /// Mean multipole of the modes in each bin.
    pub ell: Vec<f64>,
    /// Estimated C_ell in each bin (averaged over the maps).
    pub cl: Vec<f64>,
    /// Number of full-plane Fourier modes in each bin (per map).
    pub modes: Vec<usize>,
    /// Bin edges (`len + 1` values).
    pub edges: Vec<f64>,
    /// Gaussian (cosmic-variance) standard error of each estimate:
    /// `C_ell sqrt(2 / (modes * maps))` (modes counted in ±k pairs, hence the 2).
    pub sigma: Vec<f64>,
}

/// Default bin edges for a grid: from the fundamental multipole to the Nyquist
/// multipole along the shorter axis.
pub fn bin_edges(grid: &Grid, binning: Binning) -> Result<Vec<f64>> {
    let ell_min = 2.0 * std::f64::consts::PI / (grid.nx.max(grid.ny) as f64 * grid.pixel_rad());
    let ell_max = std::f64::consts::PI / grid.pixel_rad();
    let (n, log) = match binning {
        Binning::Linear(n) => (n, false),
        Binning::Log(n) => (n, true),
    };
    if n == 0 {
        return Err(Error::invalid("bins", "need at least one bin"));
    }
    Ok((0..=n)
        .map(|i| {
            let t = i as f64 / n as f64;
            if log {
                (ell_min.ln() + t * (ell_max.ln() - ell_min.ln())).exp()
            } else {
                ell_min + t * (ell_max - ell_min)
            }
        })
        .collect())
}

/// Checks a half-spectrum pixel power map: its length for `grid`, finite and
/// non-negative values.
pub fn check_power(grid: &Grid, power: &[f64]) -> Result<()> {
    if power.len() != grid.spectral_len() {
        return Err(Error::shape("power", grid.spectral_len(), power.len()));
    }
    for (index, &p) in power.iter().enumerate() {
        if !p.is_finite() {
            return Err(Error::NonFinite {
                name: "power",
                index,
            });
        }
        if p < 0.0 {
            return Err(Error::invalid(
                "power",
                format!("negative power {p} at mode {index}"),
            ));
        }
    }
    Ok(())
}

fn check_edges(edges: &[f64]) -> Result<()> {
    let increasing = edges.windows(2).all(|w| w[1] > w[0]);
    if edges.len() < 2 || !increasing || edges.iter().any(|e| !e.is_finite()) {
        return Err(Error::invalid(
            "edges",
            "bin edges must be at least two increasing finite values",
        ));
    }
    Ok(())
}

/// Estimates the binned C_ell of a batch of maps `[b][y][x]` (optionally
/// masked: `mask[i] = true` where observed, applied to every map) with the
/// given bin edges. Empty bins are dropped from the result.
pub fn estimate_cl(
    grid: &Grid,
    maps: &[f32],
    mask: Option<&[bool]>,
    edges: &[f64],
) -> Result<BinnedSpectrum> {
    let b = grid.check_batch("maps", maps)?;
    crate::error::check_finite("maps", maps)?;
    check_edges(edges)?;
    let n = grid.len();
    let fsky = match mask {
        Some(m) => {
            if m.len() != n {
                return Err(Error::shape("mask", n, m.len()));
            }
            let f = m.iter().filter(|&&v| v).count() as f64 / n as f64;
            if f == 0.0 {
                return Err(Error::FullyMasked);
            }
            f
        }
        None => 1.0,
    };
    let nb = edges.len() - 1;
    let fft = Fft2::<f64>::new(grid.nx, grid.ny);
    let mut power = vec![0.0f64; nb];
    let mut ell_sum = vec![0.0f64; nb];
    let mut modes = vec![0.0f64; nb];
    let mut spec = vec![Complex::new(0.0, 0.0); grid.spectral_len()];
    let mut x = vec![0.0f64; n];
    let ells = grid.ell_map();
    let nkx = grid.nkx();
    for m in 0..b {
        for i in 0..n {
            let keep = mask.is_none_or(|mk| mk[i]);
            x[i] = if keep { maps[m * n + i] as f64 } else { 0.0 };
        }
        fft.forward(&x, &mut spec);
        for (j, s) in spec.iter().enumerate() {
            let l = ells[j];
            if l < edges[0] || l >= edges[nb] || j == 0 {
                continue;
            }
            let bin = edges.partition_point(|&e| e <= l) - 1;
            let w = grid.hermitian_weight(j % nkx);
            power[bin] += w * s.norm_sqr();
            if m == 0 {
                ell_sum[bin] += w * l;
                modes[bin] += w;
            }
        }
    }
    let area = grid.pixel_area_sr();
    let mut out = BinnedSpectrum {
        ell: vec![],
        cl: vec![],
        modes: vec![],
        edges: edges.to_vec(),
        sigma: vec![],
    };
    for i in 0..nb {
        if modes[i] == 0.0 {
            continue;
        }
        let cl = power[i] / (modes[i] * b as f64) * area / n as f64 / fsky;
        out.ell.push(ell_sum[i] / modes[i]);
        out.cl.push(cl);
        out.modes.push(modes[i].round() as usize);
        out.sigma.push(cl * (2.0 / (modes[i] * b as f64)).sqrt());
    }
    Ok(out)
}

/// The theory spectrum averaged over the same modes as [`estimate_cl`] puts
/// in each bin (what an unbiased estimate should scatter around). Bins without
/// modes are dropped, as in the estimate.
pub fn bin_theory(grid: &Grid, table: &ClTable, edges: &[f64]) -> Result<Vec<f64>> {
    check_edges(edges)?;
    let nb = edges.len() - 1;
    let (mut sum, mut modes) = (vec![0.0; nb], vec![0.0; nb]);
    let nkx = grid.nkx();
    for (j, l) in grid.ell_map().into_iter().enumerate() {
        if l < edges[0] || l >= edges[nb] || j == 0 {
            continue;
        }
        let bin = edges.partition_point(|&e| e <= l) - 1;
        let w = grid.hermitian_weight(j % nkx);
        sum[bin] += w * table.eval(l);
        modes[bin] += w;
    }
    Ok(sum
        .iter()
        .zip(&modes)
        .filter(|(_, m)| **m > 0.0)
        .map(|(s, m)| s / m)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loglog_interpolation() {
        let t = ClTable::new(vec![10.0, 100.0, 1000.0], vec![1e-6, 1e-8, 1e-9]).unwrap();
        assert!((t.eval(10.0) - 1e-6).abs() < 1e-18);
        // halfway in ln ell between 10 and 100: geometric mean
        assert!((t.eval(10f64.powf(1.5)) / 1e-7 - 1.0).abs() < 1e-12);
        // power-law extrapolation: slope -1 in log-log beyond 1000
        assert!((t.eval(1e4) / 1e-10 - 1.0).abs() < 1e-12);
        assert_eq!(t.eval(0.0), 0.0);
        assert!(ClTable::new(vec![10.0, 5.0], vec![1.0, 1.0]).is_err());
        assert!(ClTable::new(vec![10.0, 20.0], vec![1.0, -1.0]).is_err());
        assert!(ClTable::new(vec![10.0, f64::NAN], vec![1.0, 1.0]).is_err());
        assert!(ClTable::new(vec![10.0], vec![1.0]).is_err());
    }

    #[test]
    fn white_noise_has_flat_spectrum() {
        // Per-pixel variance s² => C_ell = s² Δ². 4 maps of 64²: ~8000 modes
        // per bin over 4 bins; the bin means have relative error ~ sqrt(2/modes) < 3%.
        let g = Grid::square(64, 1.0).unwrap();
        let mut maps = vec![0.0f32; 4 * g.len()];
        for (c, m) in maps.chunks_mut(g.len()).enumerate() {
            crate::rng::Philox::new(1, crate::rng::Stream::Field, c as u64, 0).fill_normal(m);
        }
        let s = 0.5f32;
        maps.iter_mut().for_each(|v| *v *= s);
        let edges = bin_edges(&g, Binning::Linear(4)).unwrap();
        let est = estimate_cl(&g, &maps, None, &edges).unwrap();
        let expect = (s * s) as f64 * g.pixel_area_sr();
        for (c, sig) in est.cl.iter().zip(&est.sigma) {
            assert!((c - expect).abs() < 5.0 * sig, "{c} vs {expect} ± {sig}");
        }
    }
}
