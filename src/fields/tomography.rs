//! Tomographic Gaussian and log-normal fields: several source bins with their auto and cross spectra.
//!
//! **Spectra.** [`TomoPower`] holds, for `n` bins, the pixel power of every
//! pair `(i, j)`, `i <= j` (order `(0,0), (0,1), .., (1,1), ..`, as
//! [`AngularCl`]), on the half spectrum of a [`Grid`], in the normalisation of
//! [`crate::spectrum`]: `P^{ij}(k) = E[X_i(k) X_j(k)^*] / N = C_ell^{ij} / Δ²`.
//!
//! **Gaussian fields** ([`TomoGaussian`]). At every mode `k` the `n x n`
//! matrix `C(k) = [P^{ij}(k)]` is split by a Jacobi eigen-decomposition
//! `C = V diag(e) V^T`; negative eigenvalues are set to 0 (and counted in
//! [`ClipStats`]) and `S(k) = V diag(sqrt(max(e, 0))) V^T` is its symmetric
//! square root. With `z_j` white N(0, 1) maps,
//! `field_i = irfft2( sum_j S_ij(k) rfft2(z_j)(k) )`, so that
//! `E[X_i X_j^*] / N = (S S^T)_ij = C_ij` wherever `C(k)` is positive
//! semi-definite. The `k = 0` mode is zero, as in [`super::gaussian_fields`].
//!
//! **Random streams.** The white noise `z_b` of bin `b` in map `m` (global
//! index `first + m`) is `Philox::new(seed, Stream::Field, first + m, b)`:
//! chain = the map index, step = the bin. Bin 0 therefore uses exactly the
//! numbers of [`super::gaussian_fields`] (step 0), and a single-bin
//! tomographic field equals the single-bin field of the same seed. Map `m`
//! does not depend on `count`.
//!
//! **Log-normal fields** ([`TomoLogNormal`]), after the single-bin
//! [`super::LogNormal`]: with shifts `lambda_i > 0`,
//! `xi_G^{ij} = ln(1 + xi_κ^{ij} / (lambda_i lambda_j))`, `xi_κ^{ij}` the
//! inverse transform of `P^{ij}`, `P_G^{ij} = Re fft2(xi_G^{ij})` with
//! `k = 0` set to 0, then the per-mode square root above (negative
//! eigenvalues clipped and reported), and
//! `κ_i = lambda_i (exp(g_i - sigma_i²/2) - 1)` with `sigma_i²` the variance
//! of the simulated `g_i` (`xi_G^{ii}(0)` after clipping and after removing
//! `k = 0`, so that `E κ_i = 0` exactly, as in the single-bin model).
//!
//! **Layout.** Samples are `[count][bin][ny][nx]` f32.
//!
//! **LSST-Y10** ([`lsst_y10_nz`], [`lsst_y10_power`]): the sbi_lens set-up,
//! Smail `a = 2`, `b = 0.68`, `z0 = 0.11`, 5 equal-number bins with
//! `sigma_z = 0.05`. sbi_lens builds the parent with jax-cosmo's
//! `smail_nz`, whose default `z_max` is 10, and splits it by `subdivide` up
//! to that `z_max`: [`LSST_Y10_Z_MAX`] = 10. [`ShiftTable`] reads sbi_lens's
//! LSST-Y10 shift table from a path the caller gives and interpolates it.

use num_complex::Complex;
use rayon::prelude::*;

use crate::cosmo::limber::{convergence_cl, AngularCl, ClOptions};
use crate::cosmo::nz::Nz;
use crate::cosmo::Cosmology;
use crate::error::{Error, Result};
use crate::fft::Fft2;
use crate::grid::Grid;
use crate::rng::{Philox, Stream};
use crate::spectrum::ClTable;

/// Number of tomographic bins of the LSST-Y10 set-up.
pub const LSST_Y10_BINS: usize = 5;
/// Photometric-redshift scatter `sigma_z (1 + z)` of the LSST-Y10 bins.
pub const LSST_Y10_SIGMA_Z: f64 = 0.05;
/// Upper redshift of the LSST-Y10 parent distribution (jax-cosmo's
/// `smail_nz` default, which sbi_lens uses).
pub const LSST_Y10_Z_MAX: f64 = 10.0;

/// Number of pairs `(i, j)`, `i <= j`, of `n` bins.
pub fn pair_count(n: usize) -> usize {
    n * (n + 1) / 2
}

/// Index of pair `(i, j)` (either order) in the order `(0,0), (0,1), .., (1,1), ..`.
pub fn pair_index(n: usize, i: usize, j: usize) -> usize {
    let (i, j) = (i.min(j), i.max(j));
    i * n - i * (i + 1) / 2 + j
}

/// Eigen-decomposition of a symmetric `n x n` matrix (row-major `a`) by the
/// cyclic Jacobi method: returns the eigenvalues and the eigenvectors as the
/// columns of a row-major matrix `v` (`a = v diag(e) v^T`). Only the upper
/// triangle need be meaningful; the matrix is symmetrised first.
pub fn jacobi_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut m = vec![0.0; n * n];
    for i in 0..n {
        for j in i..n {
            let v = a[i * n + j];
            m[i * n + j] = v;
            m[j * n + i] = v;
        }
    }
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let scale: f64 = m.iter().map(|x| x * x).sum::<f64>().sqrt();
    if scale == 0.0 || !scale.is_finite() {
        return ((0..n).map(|i| m[i * n + i]).collect(), v);
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * n + j] * m[i * n + j])
            .sum::<f64>()
            .sqrt();
        if off <= 1e-15 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let (app, aqq) = (m[p * n + p], m[q * n + q]);
                // rotation angle: tan(2 phi) = 2 apq / (aqq - app)
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (mkp, mkq) = (m[k * n + p], m[k * n + q]);
                    m[k * n + p] = c * mkp - s * mkq;
                    m[k * n + q] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let (mpk, mqk) = (m[p * n + k], m[q * n + k]);
                    m[p * n + k] = c * mpk - s * mqk;
                    m[q * n + k] = s * mpk + c * mqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| m[i * n + i]).collect(), v)
}

/// The symmetric square root `V diag(sqrt(max(e, 0))) V^T` of a symmetric
/// matrix, and its smallest eigenvalue relative to the largest absolute one
/// (0 for the zero matrix).
fn sqrt_psd(a: &[f64], n: usize) -> (Vec<f64>, f64) {
    let (e, v) = jacobi_eigen(a, n);
    let top = e.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let low = e.iter().copied().fold(f64::INFINITY, f64::min);
    let rel = if top > 0.0 { low / top } else { 0.0 };
    let r: Vec<f64> = e.iter().map(|&x| x.max(0.0).sqrt()).collect();
    let mut s = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            s[i * n + j] = (0..n).map(|k| v[i * n + k] * r[k] * v[j * n + k]).sum();
        }
    }
    (s, rel)
}

/// What the per-mode square roots had to clip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipStats {
    /// Half-spectrum modes decomposed (`k = 0` excluded).
    pub modes: usize,
    /// Modes whose covariance matrix had at least one negative eigenvalue
    /// (set to 0), round-off included.
    pub clipped_modes: usize,
    /// The most negative eigenvalue over all modes, relative to the largest
    /// absolute eigenvalue of its mode (0 when nothing was clipped).
    pub most_negative_relative: f64,
}

/// The pixel power of every bin pair on the half spectrum of a grid.
#[derive(Debug, Clone, PartialEq)]
pub struct TomoPower {
    grid: Grid,
    bins: usize,
    /// `power[p][mode]`, pair `p` in [`pair_index`] order.
    power: Vec<Vec<f64>>,
}

impl TomoPower {
    /// From half-spectrum pixel powers, one per pair in [`pair_index`]
    /// order. Autos must be non-negative; crosses may have any sign.
    pub fn from_pixel_power(grid: &Grid, bins: usize, power: Vec<Vec<f64>>) -> Result<Self> {
        if bins == 0 {
            return Err(Error::invalid("bins", "need at least one bin"));
        }
        if power.len() != pair_count(bins) {
            return Err(Error::shape("power pairs", pair_count(bins), power.len()));
        }
        for (p, row) in power.iter().enumerate() {
            if row.len() != grid.spectral_len() {
                return Err(Error::shape("power", grid.spectral_len(), row.len()));
            }
            if let Some(index) = row.iter().position(|v| !v.is_finite()) {
                return Err(Error::NonFinite {
                    name: "power",
                    index: p * grid.spectral_len() + index,
                });
            }
        }
        for i in 0..bins {
            let row = &power[pair_index(bins, i, i)];
            if let Some(k) = row.iter().position(|&v| v < 0.0) {
                return Err(Error::invalid(
                    "power",
                    format!("negative auto power {} of bin {i} at mode {k}", row[k]),
                ));
            }
        }
        Ok(TomoPower {
            grid: *grid,
            bins,
            power,
        })
    }

    /// From one C_ell table per pair ([`pair_index`] order): `C/Δ²` on the grid.
    pub fn from_tables(grid: &Grid, bins: usize, tables: &[ClTable]) -> Result<Self> {
        if bins == 0 {
            return Err(Error::invalid("bins", "need at least one bin"));
        }
        if tables.len() != pair_count(bins) {
            return Err(Error::shape("tables", pair_count(bins), tables.len()));
        }
        let power = tables.iter().map(|t| t.pixel_power(grid)).collect();
        Self::from_pixel_power(grid, bins, power)
    }

    /// From spectra computed by [`convergence_cl`]: each pair read as a
    /// [`ClTable`] (rows with `ell <= 0` dropped; log-log interpolation,
    /// power-law extension beyond the ends). Spectra must be non-negative.
    pub fn from_angular_cl(grid: &Grid, cl: &AngularCl) -> Result<Self> {
        let p = cl.pairs.len();
        let bins = ((((8 * p + 1) as f64).sqrt() - 1.0) / 2.0).round() as usize;
        if bins == 0 || pair_count(bins) != p {
            return Err(Error::invalid(
                "cl",
                format!("{p} pairs is not n(n+1)/2 for any n >= 1"),
            ));
        }
        let mut tables = Vec::with_capacity(p);
        for (q, &(i, j)) in cl.pairs.iter().enumerate() {
            if i > j || pair_index(bins, i, j) != q || j >= bins {
                return Err(Error::invalid(
                    "cl",
                    format!("pair {q} is ({i}, {j}), expected the order (0,0), (0,1), .."),
                ));
            }
            if cl.cl[q].len() != cl.ells.len() {
                return Err(Error::shape("cl", cl.ells.len(), cl.cl[q].len()));
            }
            let (ell, c): (Vec<f64>, Vec<f64>) = cl
                .ells
                .iter()
                .zip(&cl.cl[q])
                .filter(|(l, _)| **l > 0.0)
                .map(|(&l, &c)| (l, c))
                .unzip();
            tables.push(ClTable::new(ell, c)?);
        }
        Self::from_tables(grid, bins, &tables)
    }

    /// The grid.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// Number of bins.
    pub fn bins(&self) -> usize {
        self.bins
    }

    /// Pixel power of bins `i`, `j` (either order), half spectrum.
    pub fn pair(&self, i: usize, j: usize) -> &[f64] {
        &self.power[pair_index(self.bins, i, j)]
    }

    /// Pixel variance of each bin's Gaussian field:
    /// `sum over the full spectrum of P^{ii}(k)` / N, `k = 0` excluded.
    pub fn variances(&self) -> Vec<f64> {
        (0..self.bins)
            .map(|i| full_sum(&self.grid, self.pair(i, i)) / self.grid.len() as f64)
            .collect()
    }
}

/// `sum_k P(k)` over the full spectrum from the half spectrum, `k = 0` excluded.
fn full_sum(grid: &Grid, p: &[f64]) -> f64 {
    let nkx = grid.nkx();
    let mut s = 0.0;
    for iy in 0..grid.ny {
        for ix in 0..nkx {
            if iy == 0 && ix == 0 {
                continue;
            }
            s += grid.hermitian_weight(ix) * p[iy * nkx + ix];
        }
    }
    s
}

/// Square roots of the per-mode covariance matrices: `[mode][n*n]`.
fn mode_roots(grid: &Grid, bins: usize, power: &[Vec<f64>]) -> (Vec<f64>, ClipStats) {
    let nn = bins * bins;
    let modes = grid.spectral_len();
    let mut roots = vec![0.0; modes * nn];
    let rel: Vec<f64> = roots
        .par_chunks_mut(nn)
        .enumerate()
        .map(|(k, s)| {
            if k == 0 {
                return 0.0;
            }
            let mut c = vec![0.0; nn];
            for i in 0..bins {
                for j in i..bins {
                    let v = power[pair_index(bins, i, j)][k];
                    c[i * bins + j] = v;
                    c[j * bins + i] = v;
                }
            }
            let (r, rel) = sqrt_psd(&c, bins);
            s.copy_from_slice(&r);
            rel
        })
        .collect();
    let clipped: Vec<f64> = rel.iter().copied().filter(|&r| r < 0.0).collect();
    let stats = ClipStats {
        modes: modes - 1,
        clipped_modes: clipped.len(),
        most_negative_relative: clipped.iter().copied().fold(0.0, f64::min),
    };
    (roots, stats)
}

/// Tomographic Gaussian random fields with given auto and cross spectra.
#[derive(Debug, Clone)]
pub struct TomoGaussian {
    grid: Grid,
    bins: usize,
    roots: Vec<f64>,
    stats: ClipStats,
}

impl TomoGaussian {
    /// Decomposes the per-mode covariance of `power`.
    pub fn new(power: &TomoPower) -> Self {
        let (roots, stats) = mode_roots(&power.grid, power.bins, &power.power);
        TomoGaussian {
            grid: power.grid,
            bins: power.bins,
            roots,
            stats,
        }
    }

    /// The clipping report.
    pub fn stats(&self) -> ClipStats {
        self.stats
    }

    /// Number of bins.
    pub fn bins(&self) -> usize {
        self.bins
    }

    /// The realised covariance `S S^T` at half-spectrum mode `k` (row-major
    /// `n x n`): the input where it is positive semi-definite.
    pub fn covariance(&self, k: usize) -> Vec<f64> {
        let n = self.bins;
        let s = &self.roots[k * n * n..(k + 1) * n * n];
        let mut c = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                c[i * n + j] = (0..n).map(|l| s[i * n + l] * s[j * n + l]).sum();
            }
        }
        c
    }

    /// Pixel variance of each bin's simulated field (`trace` of the
    /// realised covariance summed over modes / N).
    pub fn variances(&self) -> Vec<f64> {
        let n = self.bins;
        let modes = self.grid.spectral_len();
        (0..n)
            .map(|i| {
                let p: Vec<f64> = (0..modes)
                    .map(|k| {
                        let s = &self.roots[k * n * n + i * n..k * n * n + (i + 1) * n];
                        s.iter().map(|x| x * x).sum()
                    })
                    .collect();
                full_sum(&self.grid, &p) / self.grid.len() as f64
            })
            .collect()
    }

    /// Draws `count` tomographic maps, realisations `first..first + count`
    /// of `seed`; layout `[count][bin][ny][nx]`.
    pub fn sample(&self, seed: u64, first: u64, count: usize) -> Vec<f32> {
        let (g, n) = (self.grid, self.bins);
        let npix = g.len();
        let modes = g.spectral_len();
        let fft = Fft2::<f64>::new(g.nx, g.ny);
        let mut out = vec![0.0f32; count * n * npix];
        out.par_chunks_mut(n * npix)
            .enumerate()
            .for_each(|(m, maps)| {
                let mut z = vec![0.0f64; npix];
                let mut spec = vec![vec![Complex::new(0.0, 0.0); modes]; n];
                for (b, s) in spec.iter_mut().enumerate() {
                    Philox::new(seed, Stream::Field, first + m as u64, b as u64)
                        .fill_normal_f64(&mut z);
                    fft.forward(&z, s);
                }
                let mut f = vec![Complex::new(0.0, 0.0); modes];
                for (i, map) in maps.chunks_mut(npix).enumerate() {
                    for (k, fk) in f.iter_mut().enumerate() {
                        let s = &self.roots[k * n * n + i * n..k * n * n + (i + 1) * n];
                        *fk = s
                            .iter()
                            .zip(&spec)
                            .fold(Complex::new(0.0, 0.0), |acc, (&sij, zj)| acc + zj[k] * sij);
                    }
                    fft.inverse(&f, &mut z);
                    map.iter_mut().zip(&z).for_each(|(o, v)| *o = *v as f32);
                }
            });
        out
    }
}

/// Tomographic log-normal fields: per-bin shifts and the Gaussian fields
/// whose log-transformed correlations give the target spectra.
#[derive(Debug, Clone)]
pub struct TomoLogNormal {
    /// Shift `lambda_i` of each bin.
    pub shifts: Vec<f64>,
    /// The underlying Gaussian fields.
    pub gaussian: TomoGaussian,
    /// Variance `sigma_i²` of each bin's Gaussian field (after clipping).
    pub gaussian_variances: Vec<f64>,
}

impl TomoLogNormal {
    /// The log-normal model whose fields have spectra `power` and shifts
    /// `shifts` (one per bin, finite and positive).
    pub fn new(power: &TomoPower, shifts: &[f64]) -> Result<Self> {
        let (grid, n) = (power.grid, power.bins);
        if shifts.len() != n {
            return Err(Error::shape("shifts", n, shifts.len()));
        }
        if let Some(&l) = shifts.iter().find(|l| !(l.is_finite() && **l > 0.0)) {
            return Err(Error::invalid(
                "lambda",
                format!("shifts must be finite and positive, got {l}"),
            ));
        }
        let fft = Fft2::<f64>::new(grid.nx, grid.ny);
        let npix = grid.len();
        let mut pg = Vec::with_capacity(pair_count(n));
        for i in 0..n {
            for j in i..n {
                let spec: Vec<Complex<f64>> = power
                    .pair(i, j)
                    .iter()
                    .map(|&p| Complex::new(p, 0.0))
                    .collect();
                let mut xi = vec![0.0f64; npix];
                fft.inverse(&spec, &mut xi);
                let l2 = shifts[i] * shifts[j];
                for (px, v) in xi.iter_mut().enumerate() {
                    let a = 1.0 + *v / l2;
                    if a <= 0.0 {
                        return Err(Error::invalid(
                            "lambda",
                            format!(
                                "shifts ({}, {}) too small for bins ({i}, {j}): \
                                 1 + xi/(lambda_i lambda_j) = {a:.3} <= 0 at pixel {px}",
                                shifts[i], shifts[j]
                            ),
                        ));
                    }
                    *v = a.ln();
                }
                let mut s = vec![Complex::new(0.0, 0.0); grid.spectral_len()];
                fft.forward(&xi, &mut s);
                let mut p: Vec<f64> = s.iter().map(|c| c.re).collect();
                p[0] = 0.0;
                pg.push(p);
            }
        }
        let gaussian = TomoGaussian::new(&TomoPower {
            grid,
            bins: n,
            power: pg,
        });
        let gaussian_variances = gaussian.variances();
        Ok(TomoLogNormal {
            shifts: shifts.to_vec(),
            gaussian,
            gaussian_variances,
        })
    }

    /// The clipping report of the Gaussian fields' square roots.
    pub fn stats(&self) -> ClipStats {
        self.gaussian.stats()
    }

    /// Draws `count` tomographic log-normal maps (realisations
    /// `first..first + count` of `seed`); layout `[count][bin][ny][nx]`.
    pub fn sample(&self, seed: u64, first: u64, count: usize) -> Vec<f32> {
        let npix = self.gaussian.grid.len();
        let n = self.gaussian.bins;
        let mut g = self.gaussian.sample(seed, first, count);
        g.par_chunks_mut(npix).enumerate().for_each(|(c, map)| {
            let b = c % n;
            let (l, h) = (self.shifts[b], 0.5 * self.gaussian_variances[b]);
            map.iter_mut()
                .for_each(|v| *v = (l * ((*v as f64 - h).exp() - 1.0)) as f32);
        });
        g
    }
}

/// sbi_lens's LSST-Y10 log-normal shift table
/// (`lognormal_shifts_LSSTY10_om_s8_w_bin.npy`, made by sbi_lens's
/// script `compute_log_normal_shifts.py` (its `utils` folder) with CosMomentum).
///
/// The file has shape `(n_s8, n_om, n_w, n_bins, 5)`: numpy's default
/// `meshgrid(om, s8, w, bin)` ("xy" indexing) puts sigma_8 on the first axis
/// and Omega_m on the second; the last axis holds the columns
/// `(Omega_m, sigma_8, w, bin, shift)`, so the table carries its own axes
/// (the stored one: Omega_m in linspace(0.1, 0.9, 8), sigma_8 in
/// linspace(0.3, 1.3, 8), w in linspace(-2, -0.3, 8), 5 bins). The axes
/// are read from those columns and checked to form a regular product grid.
/// [`ShiftTable::shifts`] interpolates trilinearly in
/// `(Omega_m, sigma_8, w)`, clamped to the table's edges.
#[derive(Debug, Clone, PartialEq)]
pub struct ShiftTable {
    /// Omega_m nodes (increasing).
    pub omega_m: Vec<f64>,
    /// sigma_8 nodes (increasing).
    pub sigma8: Vec<f64>,
    /// w nodes (increasing).
    pub w: Vec<f64>,
    /// `shift[((i_om * n_s8 + i_s8) * n_w + i_w) * n_bins + bin]`.
    shift: Vec<f64>,
    bins: usize,
}

impl ShiftTable {
    /// Reads the `.npy` table (any path; nothing is looked up implicitly).
    pub fn read(path: &std::path::Path) -> Result<Self> {
        let a = crate::io::read_array_f64(path)?;
        let shape = a.shape().to_vec();
        let data: Vec<f64> = a.iter().copied().collect();
        Self::from_array(&shape, &data).map_err(|e| Error::Format {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// From the array as stored: `shape = [n_s8, n_om, n_w, n_bins, 5]`,
    /// row-major `data`.
    pub fn from_array(shape: &[usize], data: &[f64]) -> Result<Self> {
        let &[n_s8, n_om, n_w, bins, 5] = shape else {
            return Err(Error::shape(
                "shift table",
                "[n_s8, n_om, n_w, n_bins, 5]",
                shape,
            ));
        };
        if n_s8 < 2 || n_om < 2 || n_w < 2 || bins == 0 {
            return Err(Error::invalid(
                "shift table",
                format!("need at least 2 nodes per parameter and 1 bin, got {shape:?}"),
            ));
        }
        if data.len() != n_s8 * n_om * n_w * bins * 5 {
            return Err(Error::shape(
                "shift table",
                n_s8 * n_om * n_w * bins * 5,
                data.len(),
            ));
        }
        if let Some(index) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                name: "shift table",
                index,
            });
        }
        let at = |s: usize, o: usize, w: usize, b: usize, c: usize| {
            data[(((s * n_om + o) * n_w + w) * bins + b) * 5 + c]
        };
        let omega_m: Vec<f64> = (0..n_om).map(|o| at(0, o, 0, 0, 0)).collect();
        let sigma8: Vec<f64> = (0..n_s8).map(|s| at(s, 0, 0, 0, 1)).collect();
        let w: Vec<f64> = (0..n_w).map(|i| at(0, 0, i, 0, 2)).collect();
        for (name, axis) in [("omega_m", &omega_m), ("sigma8", &sigma8), ("w", &w)] {
            if !axis.windows(2).all(|p| p[1] > p[0]) {
                return Err(Error::invalid(
                    "shift table",
                    format!("the {name} nodes do not increase: {axis:?}"),
                ));
            }
        }
        let mut shift = vec![0.0; n_om * n_s8 * n_w * bins];
        for s in 0..n_s8 {
            for o in 0..n_om {
                for i in 0..n_w {
                    for b in 0..bins {
                        let row = [omega_m[o], sigma8[s], w[i], b as f64];
                        for (c, want) in row.iter().enumerate() {
                            let got = at(s, o, i, b, c);
                            if (got - want).abs() > 1e-9 * want.abs().max(1.0) {
                                return Err(Error::invalid(
                                    "shift table",
                                    format!(
                                        "not a regular (sigma_8, Omega_m, w, bin) grid at \
                                         [{s}, {o}, {i}, {b}]: column {c} is {got}, expected {want}"
                                    ),
                                ));
                            }
                        }
                        let v = at(s, o, i, b, 4);
                        if v <= 0.0 {
                            return Err(Error::invalid(
                                "shift table",
                                format!("non-positive shift {v} at [{s}, {o}, {i}, {b}]"),
                            ));
                        }
                        shift[((o * n_s8 + s) * n_w + i) * bins + b] = v;
                    }
                }
            }
        }
        Ok(ShiftTable {
            omega_m,
            sigma8,
            w,
            shift,
            bins,
        })
    }

    /// Number of bins.
    pub fn bins(&self) -> usize {
        self.bins
    }

    /// The shift of every bin at `(Omega_m, sigma_8, w)`: trilinear between
    /// the nodes, clamped to the edges of the table.
    pub fn shifts(&self, omega_m: f64, sigma8: f64, w: f64) -> Result<Vec<f64>> {
        for (name, v) in [("omega_m", omega_m), ("sigma8", sigma8), ("w", w)] {
            if !v.is_finite() {
                return Err(Error::NonFiniteValue { name, value: v });
            }
        }
        // (lower node, weight of the upper node), clamped
        let locate = |axis: &[f64], x: f64| -> (usize, f64) {
            let n = axis.len();
            let i = axis.partition_point(|&a| a <= x).clamp(1, n - 1) - 1;
            let t = ((x - axis[i]) / (axis[i + 1] - axis[i])).clamp(0.0, 1.0);
            (i, t)
        };
        let (io, to) = locate(&self.omega_m, omega_m);
        let (is, ts) = locate(&self.sigma8, sigma8);
        let (iw, tw) = locate(&self.w, w);
        let (ns, nw, nb) = (self.sigma8.len(), self.w.len(), self.bins);
        let mut out = vec![0.0; nb];
        for (do_, wo) in [(0, 1.0 - to), (1, to)] {
            for (ds, ws) in [(0, 1.0 - ts), (1, ts)] {
                for (dw, ww) in [(0, 1.0 - tw), (1, tw)] {
                    let wt = wo * ws * ww;
                    if wt == 0.0 {
                        continue;
                    }
                    let base = (((io + do_) * ns + is + ds) * nw + iw + dw) * nb;
                    for (o, v) in out.iter_mut().zip(&self.shift[base..base + nb]) {
                        *o += wt * v;
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The LSST-Y10 parent distribution of sbi_lens: Smail `a = 2`, `b = 0.68`,
/// `z0 = 0.11` on `0 < z < z_max` (sbi_lens: [`LSST_Y10_Z_MAX`]).
pub fn lsst_y10_nz(z_max: f64) -> Nz {
    Nz::Smail {
        a: 2.0,
        b: 0.68,
        z0: 0.11,
        z_max,
    }
}

/// The pixel power of the five LSST-Y10 bins (equal numbers, `sigma_z =
/// 0.05`, parent [`lsst_y10_nz`]`(z_max)`) on `grid` for `cosmo`: C_ell from
/// [`convergence_cl`] on 256 log-spaced multipoles from a quarter of the
/// fundamental to twice the corner multipole of the grid, read as in
/// [`TomoPower::from_angular_cl`].
pub fn lsst_y10_power(
    cosmo: &Cosmology,
    grid: &Grid,
    z_max: f64,
    opts: &ClOptions,
) -> Result<TomoPower> {
    let bins = lsst_y10_nz(z_max).bins(LSST_Y10_BINS, LSST_Y10_SIGMA_Z)?;
    let two_pi = 2.0 * std::f64::consts::PI;
    let lo = 0.25 * two_pi / (grid.nx.max(grid.ny) as f64 * grid.pixel_rad());
    let hi = 2.0 * two_pi * std::f64::consts::FRAC_1_SQRT_2 / grid.pixel_rad();
    let ells: Vec<f64> = (0..256)
        .map(|i| lo * (hi / lo).powf(i as f64 / 255.0))
        .collect();
    let cl = convergence_cl(cosmo, &bins, &ells, opts)?;
    TomoPower::from_angular_cl(grid, &cl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_reconstructs_symmetric_matrices() {
        // a fixed 5x5 symmetric matrix with mixed-sign eigenvalues
        let n = 5;
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = ((i * 7 + j * 7 + i * j) % 11) as f64 - 5.0;
            }
        }
        let (e, v) = jacobi_eigen(&a, n);
        for i in 0..n {
            for j in 0..n {
                let r: f64 = (0..n).map(|k| v[i * n + k] * e[k] * v[j * n + k]).sum();
                assert!((r - a[i * n + j]).abs() < 1e-12, "{i} {j}: {r}");
                let o: f64 = (0..n).map(|k| v[k * n + i] * v[k * n + j]).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((o - want).abs() < 1e-12);
            }
        }
        // the square root of a PSD matrix squares back to it
        let b: Vec<f64> = (0..n * n)
            .map(|ij| {
                (0..n)
                    .map(|k| a[(ij / n) * n + k] * a[(ij % n) * n + k])
                    .sum()
            })
            .collect();
        let (s, rel) = sqrt_psd(&b, n);
        assert!(rel > -1e-12);
        for i in 0..n {
            for j in 0..n {
                let r: f64 = (0..n).map(|k| s[i * n + k] * s[k * n + j]).sum();
                assert!((r - b[i * n + j]).abs() < 1e-9 * b[0].abs().max(1.0));
            }
        }
    }

    #[test]
    fn pair_indices_follow_angular_cl_order() {
        let n = 4;
        let mut q = 0;
        for i in 0..n {
            for j in i..n {
                assert_eq!(pair_index(n, i, j), q);
                assert_eq!(pair_index(n, j, i), q);
                q += 1;
            }
        }
        assert_eq!(q, pair_count(n));
    }
}
