//! The Fourier modes of a grid grouped by `|ell|`: an isotropic Gaussian
//! field has one pixel power per ring, so its likelihood needs only per-ring
//! sums of the map's spectrum.
//!
//! With `K' = F x / sqrt(N)` (F the unnormalised FFT, `N` pixels) a field of
//! pixel power `S` has `E|K'_m|² = S` on every mode, and (half-spectrum modes
//! `m`, Hermitian weights `h_m`, [`Grid::hermitian_weight`])
//!
//! `ln p(x) = -1/2 sum_m h_m (ln S_m + |K'_m|² / S_m) + const`,
//!
//! so per ring `r` only `n_r = sum h_m` and `a_r = sum h_m |K'_m|²` enter.
//! The zero mode belongs to no ring.

use num_complex::Complex;

use crate::error::Result;
use crate::grid::Grid;

/// The rings of a grid ([`Rings::new`]).
#[derive(Debug, Clone)]
pub struct Rings {
    grid: Grid,
    /// The ring of each half-spectrum mode; `None` for the zero mode.
    ring_of: Vec<Option<u32>>,
    /// `h_m` of each half-spectrum mode.
    weight: Vec<f64>,
    /// `n_r = sum h_m` over the ring.
    count: Vec<f64>,
    /// The ring's multipole.
    ell: Vec<f64>,
}

impl Rings {
    /// Groups the half-spectrum modes of `grid` by the exact integer
    /// `|k|² nx² ny²`, rings ordered by `|ell|`.
    pub fn new(grid: &Grid) -> Self {
        let (nx, ny, nkx) = (grid.nx as i64, grid.ny as i64, grid.nkx());
        let signed = |i: usize, n: i64| {
            let i = i as i64;
            if i <= n / 2 {
                i
            } else {
                i - n
            }
        };
        let mut keys: Vec<(u64, usize)> = Vec::with_capacity(grid.spectral_len());
        for iy in 0..grid.ny {
            for ix in 0..nkx {
                let (a, b) = (signed(ix, nx), signed(iy, ny));
                let key = (a * a * ny * ny + b * b * nx * nx) as u64;
                keys.push((key, iy * nkx + ix));
            }
        }
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        let mut distinct: Vec<u64> = sorted.iter().map(|k| k.0).filter(|&k| k > 0).collect();
        distinct.dedup();
        let ell_map = grid.ell_map();
        let mut ring_of = vec![None; grid.spectral_len()];
        let mut weight = vec![0.0; grid.spectral_len()];
        let mut count = vec![0.0; distinct.len()];
        let mut ell = vec![0.0; distinct.len()];
        for &(key, m) in &keys {
            let h = grid.hermitian_weight(m % nkx);
            weight[m] = h;
            if key == 0 {
                continue;
            }
            let r = distinct.partition_point(|&d| d < key);
            ring_of[m] = Some(r as u32);
            count[r] += h;
            ell[r] = ell_map[m];
        }
        Rings {
            grid: *grid,
            ring_of,
            weight,
            count,
            ell,
        }
    }

    /// The grid.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// Number of rings.
    pub fn len(&self) -> usize {
        self.count.len()
    }

    /// True for a 1x1 grid (no ring).
    pub fn is_empty(&self) -> bool {
        self.count.is_empty()
    }

    /// The multipole of each ring (increasing).
    pub fn ells(&self) -> &[f64] {
        &self.ell
    }

    /// `n_r = sum h_m`: real degrees of freedom per ring.
    pub fn counts(&self) -> &[f64] {
        &self.count
    }

    /// The ring of half-spectrum mode `m` (`None` for the zero mode).
    pub fn ring_of(&self, m: usize) -> Option<usize> {
        self.ring_of[m].map(|r| r as usize)
    }

    /// `sum_m h_m Re(a_m conj(b_m)) / N` per ring, for half spectra `a`, `b`
    /// of the unnormalised FFT (`a = b` gives `a_r`).
    pub fn cross(&self, a: &[Complex<f64>], b: &[Complex<f64>]) -> Result<Vec<f64>> {
        crate::error::check_len("a", a, self.ring_of.len())?;
        crate::error::check_len("b", b, self.ring_of.len())?;
        Ok(self.cross_unchecked(a, b))
    }

    /// [`Rings::cross`] for half spectra of this grid's length.
    pub(crate) fn cross_unchecked(&self, a: &[Complex<f64>], b: &[Complex<f64>]) -> Vec<f64> {
        let mut out = vec![0.0; self.len()];
        let inv_n = 1.0 / self.grid.len() as f64;
        for (m, r) in self.ring_of.iter().enumerate() {
            if let Some(r) = r {
                out[*r as usize] += self.weight[m] * (a[m] * b[m].conj()).re * inv_n;
            }
        }
        out
    }

    /// Half-spectrum values from per-ring values (0 at the zero mode).
    pub fn expand(&self, per_ring: &[f64]) -> Result<Vec<f64>> {
        crate::error::check_len("per_ring", per_ring, self.len())?;
        Ok(self.expand_unchecked(per_ring))
    }

    /// [`Rings::expand`] for a slice of [`Rings::len`].
    pub(crate) fn expand_unchecked(&self, per_ring: &[f64]) -> Vec<f64> {
        self.ring_of
            .iter()
            .map(|r| r.map_or(0.0, |r| per_ring[r as usize]))
            .collect()
    }
}
