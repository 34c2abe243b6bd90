//! Batched 2-D real-to-complex FFT plans (plan once, execute many).
//!
//! Conventions (numpy's `fft2`/`rfft2`, cuFFT R2C/C2R):
//! - forward: `X[ky][kx] = sum_{y,x} x[y][x] exp(-2 pi i (kx x / nx + ky y / ny))`,
//!   unnormalised, stored as the half spectrum `[ny][nx/2 + 1]`;
//! - inverse: the real map whose full spectrum is the Hermitian extension of the
//!   half spectrum, divided by `N = nx * ny` (so `inverse(forward(x)) = x`).
//!
//! The x axis is transformed with `realfft`, the y axis with `rustfft` on a
//! transposed copy. Batches run in parallel over maps with rayon.
//!
//! A plan owns the buffers its transforms need (the transposed spectrum, row
//! buffers and the FFT scratch), as rustfft's plans own their twiddles: a
//! call takes one set from the plan's free list, or makes one the first time,
//! and puts it back, so repeated transforms allocate nothing (one set per
//! thread that has used the plan at once). Results do not depend on which
//! set a call gets.

use std::sync::{Arc, Mutex};

use num_complex::Complex;
use rayon::prelude::*;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use rustfft::{Fft, FftNum, FftPlanner};

use crate::error::{Error, Result};

/// A reusable plan for forward and inverse 2-D real FFTs of `ny` x `nx` maps.
pub struct Fft2<T: FftNum> {
    nx: usize,
    ny: usize,
    r2c: Arc<dyn RealToComplex<T>>,
    c2r: Arc<dyn ComplexToReal<T>>,
    fwd_y: Arc<dyn Fft<T>>,
    inv_y: Arc<dyn Fft<T>>,
    free: Mutex<Vec<Buffers<T>>>,
}

/// The buffers of one transform (module docs).
struct Buffers<T: FftNum> {
    /// The transposed half spectrum `[kx][y]`.
    t: Vec<Complex<T>>,
    /// A real row and a complex row of `nx/2 + 1` modes.
    real_row: Vec<T>,
    complex_row: Vec<Complex<T>>,
    /// Scratch of the row transforms (the larger of the two) and of the
    /// column transforms.
    row_scratch: Vec<Complex<T>>,
    col_scratch: Vec<Complex<T>>,
}

impl<T: FftNum> std::fmt::Debug for Fft2<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fft2 {{ ny: {}, nx: {} }}", self.ny, self.nx)
    }
}

impl<T: FftNum> Fft2<T> {
    /// Plans transforms of `ny` rows by `nx` columns.
    pub fn new(nx: usize, ny: usize) -> Self {
        let mut rp = RealFftPlanner::<T>::new();
        let mut cp = FftPlanner::<T>::new();
        Fft2 {
            nx,
            ny,
            r2c: rp.plan_fft_forward(nx),
            c2r: rp.plan_fft_inverse(nx),
            fwd_y: cp.plan_fft_forward(ny),
            inv_y: cp.plan_fft_inverse(ny),
            free: Mutex::new(Vec::new()),
        }
    }

    /// A buffer set from the free list, or a new one.
    fn take(&self) -> Buffers<T> {
        let reused = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        reused.unwrap_or_else(|| {
            let zero = Complex::new(T::zero(), T::zero());
            let rs = self.r2c.get_scratch_len().max(self.c2r.get_scratch_len());
            let cs = self
                .fwd_y
                .get_inplace_scratch_len()
                .max(self.inv_y.get_inplace_scratch_len());
            Buffers {
                t: vec![zero; self.ny * self.nkx()],
                real_row: vec![T::zero(); self.nx],
                complex_row: vec![zero; self.nkx()],
                row_scratch: vec![zero; rs],
                col_scratch: vec![zero; cs],
            }
        })
    }

    /// Puts a buffer set back on the free list.
    fn give(&self, b: Buffers<T>) {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).push(b);
    }

    /// Pixels per map.
    pub fn map_len(&self) -> usize {
        self.nx * self.ny
    }

    /// Half-spectrum modes per map, `ny * (nx/2 + 1)`.
    pub fn spectral_len(&self) -> usize {
        self.ny * (self.nx / 2 + 1)
    }

    fn nkx(&self) -> usize {
        self.nx / 2 + 1
    }

    /// Forward transform of one map into its half spectrum.
    pub fn forward(&self, map: &[T], spec: &mut [Complex<T>]) {
        let (nx, ny, nkx) = (self.nx, self.ny, self.nkx());
        debug_assert_eq!(map.len(), nx * ny);
        debug_assert_eq!(spec.len(), ny * nkx);
        let mut b = self.take();
        let Buffers {
            t,
            real_row: row,
            complex_row: out,
            row_scratch,
            col_scratch,
        } = &mut b;
        let rs = self.r2c.get_scratch_len();
        // Transposed half spectrum [kx][y], so each column FFT is contiguous.
        for y in 0..ny {
            row.copy_from_slice(&map[y * nx..(y + 1) * nx]);
            // Lengths match the plan, so this cannot fail.
            let _ = self
                .r2c
                .process_with_scratch(row, out, &mut row_scratch[..rs]);
            for (kx, v) in out.iter().enumerate() {
                t[kx * ny + y] = *v;
            }
        }
        let cs = self.fwd_y.get_inplace_scratch_len();
        self.fwd_y.process_with_scratch(t, &mut col_scratch[..cs]);
        for kx in 0..nkx {
            for ky in 0..ny {
                spec[ky * nkx + kx] = t[kx * ny + ky];
            }
        }
        self.give(b);
    }

    /// Inverse transform of one half spectrum (normalised by `1/N`). The
    /// spectrum is read only.
    pub fn inverse(&self, spec: &[Complex<T>], map: &mut [T]) {
        let (nx, ny, nkx) = (self.nx, self.ny, self.nkx());
        debug_assert_eq!(map.len(), nx * ny);
        debug_assert_eq!(spec.len(), ny * nkx);
        let mut b = self.take();
        let Buffers {
            t,
            real_row: out,
            complex_row: row,
            row_scratch,
            col_scratch,
        } = &mut b;
        for ky in 0..ny {
            for kx in 0..nkx {
                t[kx * ny + ky] = spec[ky * nkx + kx];
            }
        }
        let cs = self.inv_y.get_inplace_scratch_len();
        self.inv_y.process_with_scratch(t, &mut col_scratch[..cs]);
        let rs = self.c2r.get_scratch_len();
        let scale = T::one() / T::from_usize(nx * ny).unwrap_or_else(T::one);
        for y in 0..ny {
            for kx in 0..nkx {
                row[kx] = t[kx * ny + y];
            }
            // The real transform keeps only the real part of the self-mirrored
            // modes (kx = 0 and the Nyquist column): the real part of the full
            // inverse transform.
            row[0].im = T::zero();
            if nx % 2 == 0 {
                row[nkx - 1].im = T::zero();
            }
            let _ = self
                .c2r
                .process_with_scratch(row, out, &mut row_scratch[..rs]);
            for (m, v) in map[y * nx..(y + 1) * nx].iter_mut().zip(out.iter()) {
                *m = *v * scale;
            }
        }
        self.give(b);
    }

    /// Forward transforms of a batch `[b][y][x]` into `[b][ky][kx]`, in parallel.
    pub fn forward_batch(&self, maps: &[T], specs: &mut [Complex<T>]) -> Result<()> {
        let b = self.batch_of(maps.len(), specs.len())?;
        if b == 1 {
            self.forward(maps, specs);
            return Ok(());
        }
        maps.par_chunks(self.map_len())
            .zip(specs.par_chunks_mut(self.spectral_len()))
            .for_each(|(m, s)| self.forward(m, s));
        Ok(())
    }

    /// Inverse transforms of a batch of half spectra, in parallel.
    pub fn inverse_batch(&self, specs: &[Complex<T>], maps: &mut [T]) -> Result<()> {
        let b = self.batch_of(maps.len(), specs.len())?;
        if b == 1 {
            self.inverse(specs, maps);
            return Ok(());
        }
        specs
            .par_chunks(self.spectral_len())
            .zip(maps.par_chunks_mut(self.map_len()))
            .for_each(|(s, m)| self.inverse(s, m));
        Ok(())
    }

    fn batch_of(&self, map_len: usize, spec_len: usize) -> Result<usize> {
        let n = self.map_len();
        if map_len == 0 || !map_len.is_multiple_of(n) {
            return Err(Error::shape("maps", format!("a multiple of {n}"), map_len));
        }
        let b = map_len / n;
        if spec_len != b * self.spectral_len() {
            return Err(Error::shape("spectra", b * self.spectral_len(), spec_len));
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct O(N^2) DFT in f64, the reference for the plan.
    fn dft(map: &[f64], nx: usize, ny: usize) -> Vec<Complex<f64>> {
        let nkx = nx / 2 + 1;
        let mut out = vec![Complex::new(0.0, 0.0); ny * nkx];
        for ky in 0..ny {
            for kx in 0..nkx {
                let mut acc = Complex::new(0.0, 0.0);
                for y in 0..ny {
                    for x in 0..nx {
                        let ph = -2.0
                            * std::f64::consts::PI
                            * (kx as f64 * x as f64 / nx as f64 + ky as f64 * y as f64 / ny as f64);
                        acc += Complex::from_polar(map[y * nx + x], ph);
                    }
                }
                out[ky * nkx + kx] = acc;
            }
        }
        out
    }

    #[test]
    fn matches_direct_dft_and_round_trips() {
        for &(nx, ny) in &[(8usize, 8usize), (7, 5), (6, 9), (5, 4)] {
            let map: Vec<f64> = (0..nx * ny)
                .map(|i| ((i * 7919 % 113) as f64 / 113.0) - 0.4)
                .collect();
            let plan = Fft2::<f64>::new(nx, ny);
            let mut spec = vec![Complex::new(0.0, 0.0); plan.spectral_len()];
            plan.forward(&map, &mut spec);
            let reference = dft(&map, nx, ny);
            for (a, b) in spec.iter().zip(reference.iter()) {
                assert!((a - b).norm() < 1e-10, "{nx}x{ny}: {a} vs {b}");
            }
            let mut back = vec![0.0; nx * ny];
            plan.inverse(&spec, &mut back);
            for (a, b) in back.iter().zip(map.iter()) {
                assert!((a - b).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn batch_equals_single_and_checks_lengths() {
        let (nx, ny) = (6usize, 5usize);
        let plan = Fft2::<f32>::new(nx, ny);
        let maps: Vec<f32> = (0..3 * nx * ny).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut specs = vec![Complex::new(0.0f32, 0.0); 3 * plan.spectral_len()];
        plan.forward_batch(&maps, &mut specs).unwrap();
        let mut one = vec![Complex::new(0.0f32, 0.0); plan.spectral_len()];
        plan.forward(&maps[2 * nx * ny..], &mut one);
        assert_eq!(&specs[2 * plan.spectral_len()..], &one[..]);
        let mut wrong = vec![Complex::new(0.0f32, 0.0); 2 * plan.spectral_len()];
        assert!(plan.forward_batch(&maps, &mut wrong).is_err());
        let mut bad_maps = vec![0.0f32; 7];
        assert!(plan.inverse_batch(&specs, &mut bad_maps).is_err());
    }
}
