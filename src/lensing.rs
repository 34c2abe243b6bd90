//! The Kaiser–Squires operator: convergence to shear on a periodic flat sky.
//!
//! With `k1` along x (columns) and `k2` along y (rows), in cycles per pixel
//! (Kaiser & Squires 1993; the lenspack convention):
//!
//! ```text
//! gamma1_hat = (k1² - k2²) / k² · kappa_hat = p1 · kappa_hat
//! gamma2_hat =  2 k1 k2   / k² · kappa_hat = p2 · kappa_hat,   p(0) = 0
//! ```
//!
//! The inverse (E/B decomposition) is `E_hat = p1 g1_hat + p2 g2_hat`,
//! `B_hat = -p2 g1_hat + p1 g2_hat`, using `p1² + p2² = 1`.
//!
//! On an even axis the Nyquist mode is its own mirror (`k = -1/2`), where `p2`
//! is its own mirror: a mode on exactly one Nyquist axis has a mirror where
//! `p2` has the opposite sign. The real part of the complex operator (what a
//! complex FFT followed by `.real` computes, as lenspack does) is the operator
//! with the Hermitian-symmetrised multiplier, which sets `p2 = 0` on the
//! Nyquist row and column except at their crossing. We use that multiplier: the operator is then real
//! and symmetric per component, the adjoint equals the E-mode inversion, and a
//! round trip `E(P kappa)` is exact on odd sizes and exact on even sizes once the
//! Nyquist row/column (where `p1² + p2² < 1`) is removed.

use num_complex::Complex;
use rayon::prelude::*;
use rustfft::FftNum;

use crate::error::{Error, Result};
use crate::fft::Fft2;
use crate::grid::Grid;

/// A Kaiser–Squires plan for one grid: the FFT plan and the multipliers
/// `p1`, `p2` on the half spectrum.
#[derive(Debug)]
pub struct KaiserSquires<T: FftNum> {
    grid: Grid,
    fft: Fft2<T>,
    p1: Vec<T>,
    p2: Vec<T>,
}

/// The multipliers `(p1, p2)` of half-spectrum mode `(iy, ix)` (see module docs).
pub fn ks_multipliers(grid: &Grid, iy: usize, ix: usize) -> (f64, f64) {
    let k1 = grid.kx(ix);
    let k2 = grid.ky(iy);
    let ksq = k1 * k1 + k2 * k2;
    if ksq == 0.0 {
        return (0.0, 0.0);
    }
    let p1 = (k1 * k1 - k2 * k2) / ksq;
    // p2 is odd under the mirror of a mode on exactly one Nyquist axis; at the
    // Nyquist corner both signs flip and it is even.
    let p2 = if grid.is_nyquist_x(ix) != grid.is_nyquist_y(iy) {
        0.0
    } else {
        2.0 * k1 * k2 / ksq
    };
    (p1, p2)
}

impl<T: FftNum> KaiserSquires<T> {
    /// Plans the operator for `grid`.
    pub fn new(grid: Grid) -> Self {
        let fft = Fft2::new(grid.nx, grid.ny);
        let mut p1 = Vec::with_capacity(grid.spectral_len());
        let mut p2 = Vec::with_capacity(grid.spectral_len());
        for iy in 0..grid.ny {
            for ix in 0..grid.nkx() {
                let (a, b) = ks_multipliers(&grid, iy, ix);
                p1.push(T::from_f64(a).unwrap_or_else(T::zero));
                p2.push(T::from_f64(b).unwrap_or_else(T::zero));
            }
        }
        KaiserSquires { grid, fft, p1, p2 }
    }

    /// The observation operator of a *convergence* map in the same form:
    /// `p1 = 1`, `p2 = 0` on every mode (the mean included), i.e. `gamma1 =
    /// kappa`, `gamma2 = 0`. Every solver written for shear (Wiener systems,
    /// guidance) then handles convergence data carried in the first component,
    /// with the second component's weights zero.
    pub fn identity(grid: Grid) -> Self {
        let fft = Fft2::new(grid.nx, grid.ny);
        let m = grid.spectral_len();
        KaiserSquires {
            grid,
            fft,
            p1: vec![T::one(); m],
            p2: vec![T::zero(); m],
        }
    }

    /// The grid of this plan.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// The FFT plan (shared with callers that work in Fourier space).
    pub fn fft(&self) -> &Fft2<T> {
        &self.fft
    }

    /// Multiplier `p1` on the half spectrum `[ky][kx]`.
    pub fn p1(&self) -> &[T] {
        &self.p1
    }

    /// Multiplier `p2` on the half spectrum `[ky][kx]`.
    pub fn p2(&self) -> &[T] {
        &self.p2
    }

    fn zero_spec(&self) -> Vec<Complex<T>> {
        vec![Complex::new(T::zero(), T::zero()); self.grid.spectral_len()]
    }

    fn check(&self, name: &'static str, len: usize, batch: usize) -> Result<()> {
        if len != batch * self.grid.len() {
            return Err(Error::shape(name, batch * self.grid.len(), len));
        }
        Ok(())
    }

    fn batch(&self, name: &'static str, len: usize) -> Result<usize> {
        let n = self.grid.len();
        if len == 0 || !len.is_multiple_of(n) {
            return Err(Error::shape(name, format!("a multiple of {n}"), len));
        }
        Ok(len / n)
    }

    /// Forward operator on one map: `kappa -> (gamma1, gamma2)`.
    fn forward_one(&self, kappa: &[T], g1: &mut [T], g2: &mut [T]) {
        let mut k = self.zero_spec();
        self.fft.forward(kappa, &mut k);
        let mut s = self.zero_spec();
        for ((s, k), p) in s.iter_mut().zip(&k).zip(&self.p1) {
            *s = *k * *p;
        }
        self.fft.inverse(&s, g1);
        for ((s, k), p) in s.iter_mut().zip(&k).zip(&self.p2) {
            *s = *k * *p;
        }
        self.fft.inverse(&s, g2);
    }

    /// `(E_hat, B_hat)`-like combination of one shear pair, returned in Fourier space.
    fn combine_one(&self, g1: &[T], g2: &[T], e: &mut [Complex<T>], b: Option<&mut [Complex<T>]>) {
        let mut s1 = self.zero_spec();
        let mut s2 = self.zero_spec();
        self.fft.forward(g1, &mut s1);
        self.fft.forward(g2, &mut s2);
        for i in 0..e.len() {
            e[i] = s1[i] * self.p1[i] + s2[i] * self.p2[i];
        }
        if let Some(b) = b {
            for i in 0..b.len() {
                b[i] = s2[i] * self.p1[i] - s1[i] * self.p2[i];
            }
        }
    }

    /// Shear from convergence for a batch `[b][y][x]`: `gamma = P kappa`.
    pub fn forward(&self, kappa: &[T], g1: &mut [T], g2: &mut [T]) -> Result<()> {
        let b = self.batch("kappa", kappa.len())?;
        self.check("gamma1", g1.len(), b)?;
        self.check("gamma2", g2.len(), b)?;
        let n = self.grid.len();
        kappa
            .par_chunks(n)
            .zip(g1.par_chunks_mut(n).zip(g2.par_chunks_mut(n)))
            .for_each(|(k, (a, c))| self.forward_one(k, a, c));
        Ok(())
    }

    /// The adjoint `P^T (gamma1, gamma2)` for a batch; equal to the E-mode
    /// inversion since the multipliers are real and even.
    pub fn adjoint(&self, g1: &[T], g2: &[T], kappa: &mut [T]) -> Result<()> {
        let b = self.batch("gamma1", g1.len())?;
        self.check("gamma2", g2.len(), b)?;
        self.check("kappa", kappa.len(), b)?;
        let n = self.grid.len();
        g1.par_chunks(n)
            .zip(g2.par_chunks(n))
            .zip(kappa.par_chunks_mut(n))
            .for_each(|((a, c), k)| {
                let mut e = self.zero_spec();
                self.combine_one(a, c, &mut e, None);
                self.fft.inverse(&e, k);
            });
        Ok(())
    }

    /// Kaiser–Squires inversion of a batch: E and B convergence maps.
    pub fn inverse_eb(&self, g1: &[T], g2: &[T], e: &mut [T], b: &mut [T]) -> Result<()> {
        let nb = self.batch("gamma1", g1.len())?;
        self.check("gamma2", g2.len(), nb)?;
        self.check("kappa_e", e.len(), nb)?;
        self.check("kappa_b", b.len(), nb)?;
        let n = self.grid.len();
        g1.par_chunks(n)
            .zip(g2.par_chunks(n))
            .zip(e.par_chunks_mut(n).zip(b.par_chunks_mut(n)))
            .for_each(|((a, c), (em, bm))| {
                let mut es = self.zero_spec();
                let mut bs = self.zero_spec();
                self.combine_one(a, c, &mut es, Some(&mut bs));
                self.fft.inverse(&es, em);
                self.fft.inverse(&bs, bm);
            });
        Ok(())
    }

    /// Removes the Nyquist row and column (even sizes) and the mean of a batch
    /// of maps: the modes the shear cannot recover exactly.
    pub fn project_recoverable(&self, maps: &mut [T]) -> Result<()> {
        let g = self.grid;
        self.batch("maps", maps.len())?;
        let n = g.len();
        maps.par_chunks_mut(n).for_each(|m| {
            let mut s = self.zero_spec();
            self.fft.forward(m, &mut s);
            for iy in 0..g.ny {
                for ix in 0..g.nkx() {
                    if (iy == 0 && ix == 0) || g.is_nyquist_x(ix) || g.is_nyquist_y(iy) {
                        s[iy * g.nkx() + ix] = Complex::new(T::zero(), T::zero());
                    }
                }
            }
            self.fft.inverse(&s, m);
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_response_8x8() {
        // docs/conventions.md, "Kaiser–Squires": unit kappa at [0][0] on 8x8.
        let g = Grid::square(8, 1.0).unwrap();
        let ks = KaiserSquires::<f64>::new(g);
        let mut kappa = vec![0.0; 64];
        kappa[0] = 1.0;
        let (mut g1, mut g2) = (vec![0.0; 64], vec![0.0; 64]);
        ks.forward(&kappa, &mut g1, &mut g2).unwrap();
        let at = |m: &[f64], y: usize, x: usize| m[y * 8 + x];
        assert!((at(&g1, 0, 1) + 0.307609).abs() < 1e-6, "{}", at(&g1, 0, 1));
        assert!((at(&g1, 1, 0) - 0.307609).abs() < 1e-6, "{}", at(&g1, 1, 0));
        assert!((at(&g2, 1, 1) + 0.299175).abs() < 1e-6, "{}", at(&g2, 1, 1));
        assert!((at(&g2, 1, 7) - 0.330425).abs() < 1e-6, "{}", at(&g2, 1, 7));
    }
}
