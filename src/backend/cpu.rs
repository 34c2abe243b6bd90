//! The CPU backend: host vectors, rustfft plans and rayon. Every operation
//! is the loop of the CPU sampler that its name's kernel mirrors, written with
//! the same expression, so results are bitwise those of `crate::sampler`.

use std::any::Any;
use std::sync::{Arc, Mutex};

use num_complex::Complex;
use rayon::prelude::*;

use super::shape::{self, Modes, Pixels};
use super::{Backend, Elem, ElementwiseOp, NoiseKey, Precision, Real};
use crate::error::Result;
use crate::fft::Fft2;
use crate::grid::Grid;
use crate::rng::Philox;

/// FFT plans by grid shape `(nx, ny)` and precision, made on first use (the
/// lengths alone do not identify a shape: 3 x 4 and 6 x 2 grids have the same
/// `map_len` and `spectral_len`).
#[derive(Default)]
struct Plans(Mutex<Vec<(PlanKey, Arc<dyn Any + Send + Sync>)>>);

type PlanKey = (usize, usize, Precision);

impl Plans {
    fn get<T: Real>(&self, grid: &Grid) -> Arc<Fft2<T>> {
        let mut c = match self.0.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        let key = (grid.nx, grid.ny, T::PRECISION);
        let cached = c.iter().find(|(k, _)| *k == key);
        if let Some(p) = cached.and_then(|(_, p)| p.clone().downcast::<Fft2<T>>().ok()) {
            return p;
        }
        let p = Arc::new(Fft2::<T>::new(grid.nx, grid.ny));
        c.push((key, p.clone()));
        p
    }
}

/// The host backend (the reference). Every method checks its arguments with
/// the function of its name in `shape` first, as [`super::cuda::Cuda`] does.
#[derive(Default)]
pub struct Cpu {
    plans: Plans,
    batched: bool,
}

impl Cpu {
    /// A backend with an empty plan cache. The sampler runs each chain on its
    /// own, chains in parallel (`sampler::ModelBackend::chains_in_parallel`).
    pub fn new() -> Self {
        Cpu::default()
    }

    /// A backend on which the sampler integrates batches of chains together,
    /// as on a GPU: the launch sequence of the CUDA backend, on the reference
    /// arithmetic (the same chains as [`Cpu::new`], more slowly).
    pub fn batched() -> Self {
        Cpu {
            batched: true,
            ..Cpu::default()
        }
    }

    /// Whether this backend batches chains ([`Cpu::batched`]).
    pub fn is_batched(&self) -> bool {
        self.batched
    }
}

/// An interleaved `(re, im)` buffer seen as complex values.
fn as_complex<T>(v: &[T]) -> &[Complex<T>] {
    // SAFETY: `Complex<T>` is `#[repr(C)]` { re: T, im: T }: two consecutive
    // `T` with the alignment of `T`; the length is halved (an odd tail is not viewed).
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const Complex<T>, v.len() / 2) }
}

/// Mutable [`as_complex`].
fn as_complex_mut<T>(v: &mut [T]) -> &mut [Complex<T>] {
    // SAFETY: as in `as_complex`; the borrow is exclusive.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut Complex<T>, v.len() / 2) }
}

/// `f(spectrum value, mode index)` over every mode of every map.
fn per_mode<T: Send + Sync + Copy>(
    spec: &mut [T],
    modes: usize,
    f: impl Fn(&mut Complex<T>, usize) + Sync,
) {
    as_complex_mut(spec)
        .par_chunks_mut(modes)
        .for_each(|m| m.iter_mut().enumerate().for_each(|(k, v)| f(v, k)));
}

/// Elements per parallel task at least: finer splits cost more in rayon's
/// bookkeeping than they gain (`perf` showed ~10% of a 360² run there).
const MIN_TASK: usize = 1 << 14;

/// Elementwise `f(i, out_i)` over a flat buffer.
fn elementwise<T: Send>(out: &mut [T], f: impl Fn(usize, &mut T) + Sync + Send) {
    out.par_iter_mut()
        .with_min_len(MIN_TASK)
        .enumerate()
        .for_each(|(i, o)| f(i, o));
}

impl Backend for Cpu {
    type Buf<T: Elem> = Vec<T>;

    fn describe(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }

    fn alloc<T: Elem>(&self, len: usize) -> Result<Vec<T>> {
        Ok(vec![T::default(); len])
    }

    fn upload<T: Elem>(&self, host: &[T]) -> Result<Vec<T>> {
        Ok(host.to_vec())
    }

    fn download<T: Elem>(&self, buf: &Vec<T>) -> Result<Vec<T>> {
        Ok(buf.clone())
    }

    fn copy<T: Elem>(&self, src: &Vec<T>, dst: &mut Vec<T>) -> Result<()> {
        shape::copy(src.len(), dst.len())?;
        dst.copy_from_slice(src);
        Ok(())
    }

    fn len<T: Elem>(buf: &Vec<T>) -> usize {
        buf.len()
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    fn fft_forward<T: Real>(&self, grid: &Grid, maps: &Vec<T>, spec: &mut Vec<T>) -> Result<()> {
        shape::fft(grid, maps.len(), spec.len())?;
        self.plans
            .get::<T>(grid)
            .forward_batch(maps, as_complex_mut(spec))
    }

    fn fft_inverse<T: Real>(
        &self,
        grid: &Grid,
        spec: &mut Vec<T>,
        maps: &mut Vec<T>,
    ) -> Result<()> {
        shape::fft(grid, maps.len(), spec.len())?;
        self.plans
            .get::<T>(grid)
            .inverse_batch(as_complex(spec), maps)
    }

    fn fill_normal(&self, out: &mut Vec<f32>, n: usize, key: NoiseKey, step: u64) -> Result<()> {
        shape::fill_normal(out.len(), n)?;
        out.par_chunks_mut(n).enumerate().for_each(|(c, m)| {
            Philox::new(key.seed, key.stream, key.first_chain + c as u64, step).fill_normal(m)
        });
        Ok(())
    }

    fn ks_forward_multiply<T: Real>(
        &self,
        kappa_hat: &Vec<T>,
        p1: &Vec<T>,
        p2: &Vec<T>,
        g1_hat: &mut Vec<T>,
        g2_hat: &mut Vec<T>,
    ) -> Result<()> {
        let m = shape::ks_forward_multiply(
            kappa_hat.len(),
            p1.len(),
            p2.len(),
            g1_hat.len(),
            g2_hat.len(),
        )?;
        ks_forward(m, kappa_hat, p1, p2, g1_hat, g2_hat);
        Ok(())
    }

    fn ks_adjoint_multiply<T: Real>(
        &self,
        g1_hat: &Vec<T>,
        g2_hat: &Vec<T>,
        p1: &Vec<T>,
        p2: &Vec<T>,
        kappa_hat: &mut Vec<T>,
    ) -> Result<()> {
        let m = shape::ks_adjoint_multiply(
            g1_hat.len(),
            g2_hat.len(),
            p1.len(),
            p2.len(),
            kappa_hat.len(),
        )?;
        ks_adjoint(m, g1_hat, g2_hat, p1, p2, kappa_hat);
        Ok(())
    }

    fn ks_inverse_eb_multiply(
        &self,
        g1_hat: &Vec<f32>,
        g2_hat: &Vec<f32>,
        p1: &Vec<f32>,
        p2: &Vec<f32>,
        e_hat: &mut Vec<f32>,
        b_hat: &mut Vec<f32>,
    ) -> Result<()> {
        let Modes { modes, .. } = shape::ks_inverse_eb_multiply(
            g1_hat.len(),
            g2_hat.len(),
            p1.len(),
            p2.len(),
            e_hat.len(),
            b_hat.len(),
        )?;
        let (s1, s2) = (as_complex(g1_hat), as_complex(g2_hat));
        as_complex_mut(e_hat)
            .par_iter_mut()
            .zip(as_complex_mut(b_hat).par_iter_mut())
            .with_min_len(MIN_TASK)
            .enumerate()
            .for_each(|(i, (e, b))| {
                let k = i % modes;
                *e = s1[i] * p1[k] + s2[i] * p2[k];
                *b = s2[i] * p1[k] - s1[i] * p2[k];
            });
        Ok(())
    }

    fn gaussian_denoise_gain(
        &self,
        x_hat: &mut Vec<f32>,
        power: &Vec<f64>,
        sigma2: f64,
    ) -> Result<()> {
        shape::spectral_multiplier("x_hat", x_hat.len(), power.len())?;
        let gain: Vec<f32> = power.iter().map(|&s| (s / (s + sigma2)) as f32).collect();
        per_mode(x_hat, power.len(), |v, k| *v *= gain[k]);
        Ok(())
    }

    fn spectral_scale<T: Real>(&self, x_hat: &mut Vec<T>, f: &Vec<T>) -> Result<()> {
        shape::spectral_multiplier("x_hat", x_hat.len(), f.len())?;
        per_mode(x_hat, f.len(), |v, k| *v = *v * f[k]);
        Ok(())
    }

    fn diffused_prior_draw_multiply(
        &self,
        z_hat: &mut Vec<f64>,
        power: &Vec<f64>,
        sigma2: f64,
    ) -> Result<()> {
        shape::spectral_multiplier("z_hat", z_hat.len(), power.len())?;
        let amp: Vec<f64> = power.iter().map(|&p| (p + sigma2).sqrt()).collect();
        per_mode(z_hat, power.len(), |v, k| *v *= amp[k]);
        Ok(())
    }

    fn cast<S: Real, D: Real>(&self, x: &Vec<S>, y: &mut Vec<D>) -> Result<()> {
        shape::cast(x.len(), y.len())?;
        elementwise(y, |i, y| *y = D::narrow(x[i].widen()));
        Ok(())
    }

    fn elementwise<T: Real, O: ElementwiseOp<N, S>, const N: usize, const S: usize>(
        &self,
        _op: O,
        out: &mut Vec<T>,
        ins: [&Vec<T>; N],
        scalars: [T; S],
    ) -> Result<()> {
        shape::elementwise(out.len(), &ins.map(|b| b.len()))?;
        out.par_chunks_mut(MIN_TASK)
            .enumerate()
            .for_each(|(c, out)| {
                let (start, len) = (c * MIN_TASK, out.len());
                // inputs cut to the chunk's length, so the loop has no bounds checks
                let ins = ins.map(|b| &b[start..start + len]);
                for (i, o) in out.iter_mut().enumerate() {
                    *o = O::apply(*o, ins.map(|b| b[i]), scalars);
                }
            });
        Ok(())
    }

    fn langevin_corrector_step(
        &self,
        x: &mut Vec<f32>,
        s: &Vec<f32>,
        z: &Vec<f32>,
        s_norm: &Vec<f64>,
        z_norm: &Vec<f64>,
        snr: f64,
        n: usize,
    ) -> Result<()> {
        shape::langevin_corrector_step(x.len(), s.len(), z.len(), s_norm.len(), z_norm.len(), n)?;
        x.par_chunks_mut(n).enumerate().for_each(|(c, x)| {
            let (sn, zn) = (s_norm[c], z_norm[c]);
            if sn > 0.0 {
                let eps = 2.0 * (snr * zn / sn).powi(2);
                let (a, b) = (eps as f32, (2.0 * eps).sqrt() as f32);
                let (s, z) = (&s[c * n..(c + 1) * n], &z[c * n..(c + 1) * n]);
                x.iter_mut()
                    .zip(s.iter().zip(z))
                    .for_each(|(x, (s, z))| *x += a * s + b * z);
            }
        });
        Ok(())
    }

    fn heun_predictor(
        &self,
        d: &mut Vec<f32>,
        x: &Vec<f32>,
        xp: &mut Vec<f32>,
        f: f32,
        h: f32,
    ) -> Result<()> {
        shape::heun_predictor(d.len(), x.len(), xp.len())?;
        d.par_iter_mut()
            .zip(xp.par_iter_mut())
            .zip(x.par_iter())
            .with_min_len(MIN_TASK)
            .for_each(|((d, p), x)| {
                *d *= f;
                *p = x + h * *d;
            });
        Ok(())
    }

    fn hmc_position_step(
        &self,
        x: &mut Vec<f32>,
        xprev: Option<&mut Vec<f32>>,
        v: &Vec<f32>,
        e: f32,
    ) -> Result<()> {
        shape::hmc_position_step(x.len(), xprev.as_ref().map(|b| b.len()), v.len())?;
        if let Some(xp) = xprev {
            self.copy(x, xp)?;
        }
        elementwise(x, |i, x| *x += e * v[i]);
        Ok(())
    }

    fn hmc_accept(
        &self,
        x: &mut Vec<f32>,
        xk: &Vec<f32>,
        accept: &Vec<u32>,
        n: usize,
    ) -> Result<()> {
        let chains = shape::hmc_accept(x.len(), xk.len(), accept.len(), n)?;
        for c in 0..chains {
            if accept[c] != 0 {
                x[c * n..(c + 1) * n].copy_from_slice(&xk[c * n..(c + 1) * n]);
            }
        }
        Ok(())
    }

    fn hmc_start_from_map(&self, x: &mut Vec<f32>, start: &Vec<f32>, s: f32) -> Result<()> {
        let Pixels { n, .. } = shape::hmc_start_from_map(x.len(), start.len())?;
        x.par_chunks_mut(n)
            .for_each(|m| m.iter_mut().zip(start).for_each(|(x, k)| *x = k + s * *x));
        Ok(())
    }

    fn annealed_weights(&self, w: &Vec<f32>, k: f64, out: &mut Vec<f32>) -> Result<()> {
        shape::annealed_weights(w.len(), out.len())?;
        out.iter_mut()
            .zip(w)
            .for_each(|(o, &w)| *o = (w as f64 / (1.0 + k * w as f64)) as f32);
        Ok(())
    }

    fn weighted_residual(
        &self,
        r1: &mut Vec<f32>,
        r2: &mut Vec<f32>,
        g1: &Vec<f32>,
        g2: &Vec<f32>,
        w1: &Vec<f32>,
        w2: &Vec<f32>,
    ) -> Result<()> {
        let Pixels { n, .. } =
            shape::weighted_residual(r1.len(), r2.len(), g1.len(), g2.len(), w1.len(), w2.len())?;
        r1.par_chunks_mut(n)
            .zip(r2.par_chunks_mut(n))
            .for_each(|(c1, c2)| {
                for i in 0..n {
                    c1[i] = w1[i] * (g1[i] - c1[i]);
                    c2[i] = w2[i] * (g2[i] - c2[i]);
                }
            });
        Ok(())
    }

    fn shear_residual_f64(
        &self,
        q1: &mut Vec<f64>,
        q2: &mut Vec<f64>,
        g1: &Vec<f32>,
        g2: &Vec<f32>,
    ) -> Result<()> {
        let Pixels { n, .. } = shape::shear_residual_f64(q1.len(), q2.len(), g1.len(), g2.len())?;
        q1.par_chunks_mut(n)
            .zip(q2.par_chunks_mut(n))
            .for_each(|(c1, c2)| {
                for i in 0..n {
                    c1[i] = g1[i] as f64 - c1[i];
                    c2[i] = g2[i] as f64 - c2[i];
                }
            });
        Ok(())
    }

    fn weighted_residual_f64(
        &self,
        y1: &mut Vec<f64>,
        y2: &mut Vec<f64>,
        q1: &Vec<f64>,
        q2: &Vec<f64>,
        w1: &Vec<f64>,
        w2: &Vec<f64>,
    ) -> Result<()> {
        let Pixels { n, .. } = shape::weighted_residual_f64(
            y1.len(),
            y2.len(),
            q1.len(),
            q2.len(),
            w1.len(),
            w2.len(),
        )?;
        elementwise(y1, |i, y| *y = w1[i % n] * (q1[i] - *y));
        elementwise(y2, |i, y| *y = w2[i % n] * (q2[i] - *y));
        Ok(())
    }

    fn multiply_weights_f64(&self, a: &mut Vec<f64>, w: &Vec<f64>) -> Result<()> {
        let Pixels { n, .. } = shape::multiply_weights_f64(a.len(), w.len())?;
        a.par_chunks_mut(n)
            .for_each(|m| m.iter_mut().zip(w).for_each(|(a, w)| *a *= w));
        Ok(())
    }

    fn cg_initial_residual(
        &self,
        r: &mut Vec<f64>,
        ap: &Vec<f64>,
        u: &Vec<f64>,
        active: &Vec<u32>,
        n: usize,
    ) -> Result<()> {
        shape::cg_initial_residual(r.len(), ap.len(), u.len(), active.len(), n)?;
        r.par_chunks_mut(n)
            .enumerate()
            .filter(|(c, _)| active[*c] != 0)
            .for_each(|(c, r)| {
                for i in 0..n {
                    r[i] -= ap[c * n + i] + u[c * n + i];
                }
            });
        Ok(())
    }

    fn cg_update_solution(
        &self,
        u: &mut Vec<f64>,
        r: &mut Vec<f64>,
        p: &Vec<f64>,
        ap: &Vec<f64>,
        alpha: &Vec<f64>,
        active: &Vec<u32>,
        n: usize,
    ) -> Result<()> {
        shape::cg_update_solution(
            u.len(),
            r.len(),
            p.len(),
            ap.len(),
            alpha.len(),
            active.len(),
            n,
        )?;
        u.par_chunks_mut(n)
            .zip(r.par_chunks_mut(n))
            .enumerate()
            .filter(|(c, _)| active[*c] != 0)
            .for_each(|(c, (u, r))| {
                let a = alpha[c];
                let (p, ap) = (&p[c * n..(c + 1) * n], &ap[c * n..(c + 1) * n]);
                u.iter_mut().zip(p).for_each(|(u, p)| *u += a * p);
                r.iter_mut().zip(ap).for_each(|(r, ap)| *r -= a * ap);
            });
        Ok(())
    }

    fn cg_update_direction(
        &self,
        p: &mut Vec<f64>,
        z: &Vec<f64>,
        beta: &Vec<f64>,
        active: &Vec<u32>,
        n: usize,
    ) -> Result<()> {
        shape::cg_update_direction(p.len(), z.len(), beta.len(), active.len(), n)?;
        p.par_chunks_mut(n)
            .enumerate()
            .filter(|(c, _)| active[*c] != 0)
            .for_each(|(c, p)| {
                let b = beta[c];
                p.iter_mut()
                    .zip(&z[c * n..(c + 1) * n])
                    .for_each(|(p, z)| *p = z + b * *p);
            });
        Ok(())
    }

    fn chain_norms(&self, x: &Vec<f32>, n: usize, out: &mut Vec<f64>) -> Result<()> {
        shape::chain_norms(x.len(), n, out.len())?;
        out.par_iter_mut()
            .zip(x.par_chunks(n))
            .for_each(|(o, s)| *o = s.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt());
        Ok(())
    }

    fn chain_dot_f64(
        &self,
        a: &Vec<f64>,
        b: &Vec<f64>,
        n: usize,
        out: &mut Vec<f64>,
    ) -> Result<()> {
        shape::chain_dot_f64(a.len(), b.len(), n, out.len())?;
        out.par_iter_mut()
            .zip(a.par_chunks(n).zip(b.par_chunks(n)))
            .for_each(|(o, (a, c))| *o = a.iter().zip(c).map(|(x, y)| x * y).sum::<f64>());
        Ok(())
    }

    fn hmc_energy_increment(
        &self,
        du: &mut Vec<f64>,
        s: &Vec<f32>,
        s_new: &Vec<f32>,
        xk: &Vec<f32>,
        xprev: &Vec<f32>,
        n: usize,
    ) -> Result<()> {
        shape::hmc_energy_increment(du.len(), s.len(), s_new.len(), xk.len(), xprev.len(), n)?;
        du.par_iter_mut().enumerate().for_each(|(c, d)| {
            let mut acc = 0.0f64;
            for i in c * n..(c + 1) * n {
                acc += 0.5 * (s[i] as f64 + s_new[i] as f64) * (xk[i] as f64 - xprev[i] as f64);
            }
            *d -= acc;
        });
        Ok(())
    }

    fn hmc_kinetic_change(
        &self,
        p: &Vec<f32>,
        vp: &Vec<f32>,
        p0: &Vec<f32>,
        vp0: &Vec<f32>,
        n: usize,
        out: &mut Vec<f64>,
    ) -> Result<()> {
        shape::hmc_kinetic_change(p.len(), vp.len(), p0.len(), vp0.len(), n, out.len())?;
        out.par_iter_mut().enumerate().for_each(|(c, o)| {
            *o = (c * n..(c + 1) * n)
                .map(|i| 0.5 * (p[i] as f64 * vp[i] as f64 - p0[i] as f64 * vp0[i] as f64))
                .sum();
        });
        Ok(())
    }
}

/// `ks_forward_multiply` in either precision, on checked shapes.
fn ks_forward<T: rustfft::FftNum>(
    Modes { modes, .. }: Modes,
    kappa_hat: &[T],
    p1: &[T],
    p2: &[T],
    g1_hat: &mut [T],
    g2_hat: &mut [T],
) {
    let k = as_complex(kappa_hat);
    as_complex_mut(g1_hat)
        .par_iter_mut()
        .zip(as_complex_mut(g2_hat).par_iter_mut())
        .with_min_len(MIN_TASK)
        .enumerate()
        .for_each(|(i, (a, b))| {
            *a = k[i] * p1[i % modes];
            *b = k[i] * p2[i % modes];
        });
}

/// `ks_adjoint_multiply` in either precision, on checked shapes.
fn ks_adjoint<T: rustfft::FftNum>(
    Modes { modes, .. }: Modes,
    g1_hat: &[T],
    g2_hat: &[T],
    p1: &[T],
    p2: &[T],
    kappa_hat: &mut [T],
) {
    let (s1, s2) = (as_complex(g1_hat), as_complex(g2_hat));
    as_complex_mut(kappa_hat)
        .par_iter_mut()
        .with_min_len(MIN_TASK)
        .enumerate()
        .for_each(|(i, e)| *e = s1[i] * p1[i % modes] + s2[i] * p2[i % modes]);
}
