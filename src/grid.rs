//! Flat-sky periodic pixel grid and its Fourier modes.
//!
//! Maps are row-major `[y][x]` (`ny` rows of `nx` pixels), batches `[b][y][x]`.
//! Fourier modes use the half-spectrum layout of a real-to-complex transform:
//! `[ky][kx]` with `ny` rows and `nx/2 + 1` columns (as cuFFT R2C and numpy's
//! `rfft2` produce).
//!
//! Wavenumbers are in cycles per pixel, as numpy's `fftfreq`:
//! `k = i/n` for `i < ceil(n/2)`, `k = (i - n)/n` otherwise (so on even `n` the
//! Nyquist mode is `-1/2`). The multipole of a mode is `ell = 2 pi |k| / Δ` with
//! `Δ` the pixel size in radians.

use crate::error::{Error, Result};

/// Arcminutes to radians.
pub const ARCMIN_TO_RAD: f64 = std::f64::consts::PI / (180.0 * 60.0);

/// A flat-sky periodic grid of `ny` x `nx` square pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    /// Pixels along x (columns).
    pub nx: usize,
    /// Pixels along y (rows).
    pub ny: usize,
    /// Pixel side in arcminutes.
    pub pixel_arcmin: f64,
}

/// `numpy.fft.fftfreq(n)[i]`: wavenumber of index `i` in cycles per sample.
pub fn fftfreq(i: usize, n: usize) -> f64 {
    let half = n.div_ceil(2);
    if i < half {
        i as f64 / n as f64
    } else {
        (i as f64 - n as f64) / n as f64
    }
}

impl Grid {
    /// A grid of `ny` rows and `nx` columns with pixels of `pixel_arcmin` arcminutes.
    pub fn new(nx: usize, ny: usize, pixel_arcmin: f64) -> Result<Self> {
        if nx < 2 || ny < 2 {
            return Err(Error::invalid(
                "grid",
                format!("need at least 2x2 pixels, got {ny}x{nx}"),
            ));
        }
        if nx.checked_mul(ny).is_none_or(|n| n > (1 << 31)) {
            return Err(Error::invalid("grid", format!("{ny}x{nx} is too large")));
        }
        if !(pixel_arcmin.is_finite() && pixel_arcmin > 0.0) {
            return Err(Error::invalid(
                "pixel_arcmin",
                format!("must be finite and positive, got {pixel_arcmin}"),
            ));
        }
        Ok(Grid {
            nx,
            ny,
            pixel_arcmin,
        })
    }

    /// A square `n` x `n` grid.
    pub fn square(n: usize, pixel_arcmin: f64) -> Result<Self> {
        Self::new(n, n, pixel_arcmin)
    }

    /// Number of pixels `nx * ny`.
    pub fn len(&self) -> usize {
        self.nx * self.ny
    }

    /// Always false: a grid has at least 2x2 pixels.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Shape `[ny, nx]`.
    pub fn shape(&self) -> [usize; 2] {
        [self.ny, self.nx]
    }

    /// Number of half-spectrum columns, `nx/2 + 1`.
    pub fn nkx(&self) -> usize {
        self.nx / 2 + 1
    }

    /// Number of half-spectrum modes, `ny * (nx/2 + 1)`.
    pub fn spectral_len(&self) -> usize {
        self.ny * self.nkx()
    }

    /// Pixel side in radians.
    pub fn pixel_rad(&self) -> f64 {
        self.pixel_arcmin * ARCMIN_TO_RAD
    }

    /// Pixel area in steradians.
    pub fn pixel_area_sr(&self) -> f64 {
        self.pixel_rad() * self.pixel_rad()
    }

    /// Field side along x and y in degrees.
    pub fn extent_deg(&self) -> (f64, f64) {
        (
            self.nx as f64 * self.pixel_arcmin / 60.0,
            self.ny as f64 * self.pixel_arcmin / 60.0,
        )
    }

    /// Wavenumber `k1` (cycles/pixel) of half-spectrum column `ix` (along x).
    pub fn kx(&self, ix: usize) -> f64 {
        fftfreq(ix, self.nx)
    }

    /// Wavenumber `k2` (cycles/pixel) of spectrum row `iy` (along y).
    pub fn ky(&self, iy: usize) -> f64 {
        fftfreq(iy, self.ny)
    }

    /// True for the Nyquist column of an even `nx`.
    pub fn is_nyquist_x(&self, ix: usize) -> bool {
        self.nx.is_multiple_of(2) && ix == self.nx / 2
    }

    /// True for the Nyquist row of an even `ny`.
    pub fn is_nyquist_y(&self, iy: usize) -> bool {
        self.ny.is_multiple_of(2) && iy == self.ny / 2
    }

    /// |k| in cycles per pixel of half-spectrum mode `(iy, ix)`.
    pub fn k_abs(&self, iy: usize, ix: usize) -> f64 {
        self.kx(ix).hypot(self.ky(iy))
    }

    /// Multipole `ell = 2 pi |k| / Δ` of half-spectrum mode `(iy, ix)`.
    pub fn ell(&self, iy: usize, ix: usize) -> f64 {
        2.0 * std::f64::consts::PI * self.k_abs(iy, ix) / self.pixel_rad()
    }

    /// Multipole of every half-spectrum mode, layout `[ky][kx]`.
    pub fn ell_map(&self) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.spectral_len());
        for iy in 0..self.ny {
            for ix in 0..self.nkx() {
                out.push(self.ell(iy, ix));
            }
        }
        out
    }

    /// Weight of each half-spectrum column in a sum over the full spectrum:
    /// 1 for the columns that are their own mirror (`kx = 0` and the Nyquist
    /// column of even `nx`), 2 for the others.
    pub fn hermitian_weight(&self, ix: usize) -> f64 {
        if ix == 0 || self.is_nyquist_x(ix) {
            1.0
        } else {
            2.0
        }
    }

    /// Checks that `data` holds `batch` maps of this grid.
    pub fn check_batch(&self, name: &'static str, data: &[f32]) -> Result<usize> {
        let n = self.len();
        if data.is_empty() || !data.len().is_multiple_of(n) {
            return Err(Error::shape(
                name,
                format!("a multiple of {}x{} = {n}", self.ny, self.nx),
                data.len(),
            ));
        }
        Ok(data.len() / n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fftfreq_matches_numpy() {
        // numpy.fft.fftfreq(5) = [0, .2, .4, -.4, -.2]; fftfreq(4) = [0, .25, -.5, -.25]
        let f5: Vec<f64> = (0..5).map(|i| fftfreq(i, 5)).collect();
        assert_eq!(f5, vec![0.0, 0.2, 0.4, -0.4, -0.2]);
        let f4: Vec<f64> = (0..4).map(|i| fftfreq(i, 4)).collect();
        assert_eq!(f4, vec![0.0, 0.25, -0.5, -0.25]);
    }

    #[test]
    fn ell_of_a_mode() {
        // 360 pixels of 0.29': the fundamental mode has ell = 2 pi / (360 * 0.29')
        let g = Grid::square(360, 0.29).unwrap();
        let expect = 2.0 * std::f64::consts::PI / (360.0 * 0.29 * ARCMIN_TO_RAD);
        assert!((g.ell(0, 1) - expect).abs() < 1e-9 * expect);
        assert!((g.ell(1, 0) - expect).abs() < 1e-9 * expect);
        // rectangular grid: x and y fundamentals differ
        let r = Grid::new(10, 20, 1.0).unwrap();
        assert!((r.ell(0, 1) / r.ell(1, 0) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn rejects_bad_grids() {
        assert!(Grid::new(1, 8, 1.0).is_err());
        assert!(Grid::new(8, 8, 0.0).is_err());
        assert!(Grid::new(8, 8, f64::NAN).is_err());
        let g = Grid::new(4, 3, 1.0).unwrap();
        assert_eq!(g.check_batch("x", &[0.0; 24]).unwrap(), 2);
        assert!(g.check_batch("x", &[0.0; 13]).is_err());
        assert!(g.check_batch("x", &[]).is_err());
    }
}
