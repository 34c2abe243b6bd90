//! The Wiener filter: the posterior mean of a Gaussian convergence field.
//!
//! With prior covariance `S` (Fourier-diagonal, pixel power `P_pix`), the
//! Kaiser–Squires operator `P` and per-pixel noise weights `W = N^{-1}`
//! (0 on masked pixels), the posterior mean solves
//!
//! ```text
//! (S^{-1} + P^T W P) kappa = P^T W gamma.
//! ```
//!
//! **Uniform noise, no mask** (`W = w I`): Fourier-diagonal and exact,
//! `kappa_hat = S (p1 g1_hat + p2 g2_hat) / (S (p1² + p2²) + 1/w)`.
//!
//! **Masks, per-pixel noise**: preconditioned conjugate gradients on the
//! symmetric positive-definite system in `u = S^{-1/2} kappa`,
//! `(I + S^{1/2} P^T W P S^{1/2}) u = S^{1/2} P^T W gamma`, which is
//! well-defined where `S` vanishes (the `k = 0` mode stays zero: the mean of
//! kappa is unconstrained by shear and fixed to zero). Preconditioner:
//! `(1 + S w̄)^{-1}` in Fourier space, `w̄` the mean weight over pixels and
//! components (Elsner & Wandelt 2013 discuss this family of solvers). The
//! iteration stops when `|r| / |b| < tol`. Work is in f64.

use num_complex::Complex;
use rayon::prelude::*;

use crate::error::{check_finite, check_len, Error, Result};
use crate::grid::Grid;
use crate::lensing::KaiserSquires;
use crate::noise::NoiseModel;
use crate::rng::{Philox, Stream};

/// Step codes of the perturbation sampler's draws in the sampler stream
/// (far from the steps of the diffusion samplers).
const PERTURB_FIELD: u64 = 0xFFFF_FF00;
const PERTURB_NOISE: u64 = 0xFFFF_FF10;

/// Stopping rule of the iterative solver.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WienerOptions {
    /// Relative residual `|r| / |b|` to reach.
    pub tol: f64,
    /// Iteration limit; reaching it without `tol` is an error.
    pub max_iter: usize,
}

impl Default for WienerOptions {
    fn default() -> Self {
        WienerOptions {
            tol: 1e-6,
            max_iter: 1000,
        }
    }
}

/// A Wiener-filtered map and how the solver got there.
#[derive(Debug, Clone)]
pub struct WienerSolution {
    /// Posterior-mean convergence `[y][x]`.
    pub kappa: Vec<f32>,
    /// Conjugate-gradient iterations (0 for the Fourier solution).
    pub iterations: usize,
    /// Final relative residual (0 for the Fourier solution).
    pub residual: f64,
}

/// A Wiener-filter plan for one grid and prior spectrum.
#[derive(Debug)]
pub struct WienerFilter {
    grid: Grid,
    ks: KaiserSquires<f64>,
    power: Vec<f64>,
    sqrt_power: Vec<f64>,
}

type Spec = Vec<Complex<f64>>;

impl WienerFilter {
    /// Plans the filter for prior pixel power `power` on the half spectrum.
    pub fn new(grid: Grid, power: Vec<f64>) -> Result<Self> {
        if power.len() != grid.spectral_len() {
            return Err(Error::shape("power", grid.spectral_len(), power.len()));
        }
        if let Some(index) = power.iter().position(|p| !p.is_finite()) {
            return Err(Error::NonFinite {
                name: "power",
                index,
            });
        }
        if power.iter().any(|&p| p < 0.0) {
            return Err(Error::invalid("power", "prior power must be non-negative"));
        }
        let mut power = power;
        power[0] = 0.0;
        let sqrt_power = power.iter().map(|p| p.sqrt()).collect();
        Ok(WienerFilter {
            grid,
            ks: KaiserSquires::new(grid),
            power,
            sqrt_power,
        })
    }

    /// The grid.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    fn zero(&self) -> Spec {
        vec![Complex::new(0.0, 0.0); self.grid.spectral_len()]
    }

    fn check_shear(&self, g1: &[f32], g2: &[f32]) -> Result<()> {
        check_len("gamma1", g1, self.grid.len())?;
        check_len("gamma2", g2, self.grid.len())?;
        check_finite("gamma1", g1)?;
        check_finite("gamma2", g2)
    }

    /// The PCG system of this filter for noise weights `w1, w2`.
    fn system<'a>(&'a self, w1: &'a [f64], w2: &'a [f64]) -> GaussianSystem<'a> {
        GaussianSystem {
            ks: &self.ks,
            power: &self.power,
            sqrt_power: &self.sqrt_power,
            w1,
            w2,
        }
    }

    /// Exact Fourier-space solution for uniform per-component noise std
    /// `sigma` on every pixel (no mask).
    pub fn fourier(&self, g1: &[f32], g2: &[f32], sigma: f64) -> Result<WienerSolution> {
        self.check_shear(g1, g2)?;
        crate::noise::check_noise_level("sigma", sigma)?;
        let fft = self.ks.fft();
        let to64 = |g: &[f32]| g.iter().map(|&v| v as f64).collect::<Vec<f64>>();
        let (mut s1, mut s2) = (self.zero(), self.zero());
        fft.forward(&to64(g1), &mut s1);
        fft.forward(&to64(g2), &mut s2);
        let (p1, p2) = (self.ks.p1(), self.ks.p2());
        let nv = sigma * sigma;
        let k: Spec = (0..s1.len())
            .map(|i| {
                let s = self.power[i];
                let d = s * (p1[i] * p1[i] + p2[i] * p2[i]) + nv;
                (s1[i] * p1[i] + s2[i] * p2[i]) * (s / d)
            })
            .collect();
        let mut out = vec![0.0f64; self.grid.len()];
        fft.inverse(&k, &mut out);
        Ok(WienerSolution {
            kappa: out.iter().map(|&v| v as f32).collect(),
            iterations: 0,
            residual: 0.0,
        })
    }

    /// Iterative solution with masks and per-pixel noise.
    pub fn solve(
        &self,
        g1: &[f32],
        g2: &[f32],
        noise: &NoiseModel,
        opts: &WienerOptions,
    ) -> Result<WienerSolution> {
        self.solve_with_progress(g1, g2, noise, opts, &mut |_, _| {})
    }

    /// [`WienerFilter::solve`], calling `progress(iteration, relative residual)`
    /// after every iteration.
    pub fn solve_with_progress(
        &self,
        g1: &[f32],
        g2: &[f32],
        noise: &NoiseModel,
        opts: &WienerOptions,
        progress: &mut dyn FnMut(usize, f64),
    ) -> Result<WienerSolution> {
        self.check_shear(g1, g2)?;
        if noise.grid() != &self.grid {
            return Err(Error::invalid(
                "noise",
                "noise model and filter have different grids",
            ));
        }
        let w1: Vec<f64> = noise.weight1().iter().map(|&v| v as f64).collect();
        let w2: Vec<f64> = noise.weight2().iter().map(|&v| v as f64).collect();
        let r1: Vec<f64> = g1.iter().map(|&v| v as f64).collect();
        let r2: Vec<f64> = g2.iter().map(|&v| v as f64).collect();
        let sys = self.system(&w1, &w2);
        let (kappa, iterations, residual) = sys.solve(&r1, &r2, opts, None, progress)?;
        Ok(WienerSolution {
            kappa: kappa.iter().map(|&v| v as f32).collect(),
            iterations,
            residual,
        })
    }

    /// An exact sample of the Gaussian posterior by perturbation
    /// (Hoffman & Ribak 1991; Papandreou & Yuille 2010):
    /// `kappa_s = kappa' + (S^{-1} + P^T W P)^{-1} P^T W (gamma - P kappa' - n')`
    /// with `kappa' ~ N(0, S)` and `n' ~ N(0, N)`: one conjugate-gradient solve
    /// per sample, the cost floor of posterior sampling with this prior. Sample
    /// `index` of `seed` is the same whatever else is drawn.
    pub fn sample_exact(
        &self,
        g1: &[f32],
        g2: &[f32],
        noise: &NoiseModel,
        seed: u64,
        index: u64,
        opts: &WienerOptions,
    ) -> Result<WienerSolution> {
        self.check_shear(g1, g2)?;
        if noise.grid() != &self.grid {
            return Err(Error::invalid(
                "noise",
                "noise model and filter have different grids",
            ));
        }
        let n = self.grid.len();
        let fft = self.ks.fft();
        // kappa' = F^{-1}[sqrt(S) F z]
        let mut z = vec![0.0f64; n];
        Philox::new(seed, Stream::Sampler, index, PERTURB_FIELD).fill_normal_f64(&mut z);
        let mut zh = self.zero();
        fft.forward(&z, &mut zh);
        zh.iter_mut()
            .zip(&self.sqrt_power)
            .for_each(|(v, a)| *v *= *a);
        let mut kp = vec![0.0f64; n];
        fft.inverse(&zh, &mut kp);
        let (mut r1, mut r2) = (vec![0.0; n], vec![0.0; n]);
        self.ks.forward(&kp, &mut r1, &mut r2)?;
        let (mut n1, mut n2) = (vec![0.0f64; n], vec![0.0f64; n]);
        Philox::new(seed, Stream::Sampler, index, PERTURB_NOISE).fill_normal_f64(&mut n1);
        Philox::new(seed, Stream::Sampler, index, PERTURB_NOISE + 1).fill_normal_f64(&mut n2);
        let (w1, w2) = (noise.weight1(), noise.weight2());
        for i in 0..n {
            let s1 = if w1[i] > 0.0 {
                n1[i] / (w1[i] as f64).sqrt()
            } else {
                0.0
            };
            let s2 = if w2[i] > 0.0 {
                n2[i] / (w2[i] as f64).sqrt()
            } else {
                0.0
            };
            r1[i] = g1[i] as f64 - r1[i] - s1;
            r2[i] = g2[i] as f64 - r2[i] - s2;
        }
        let w1: Vec<f64> = w1.iter().map(|&v| v as f64).collect();
        let w2: Vec<f64> = w2.iter().map(|&v| v as f64).collect();
        let sys = self.system(&w1, &w2);
        let (y, iterations, residual) = sys.solve(&r1, &r2, opts, None, &mut |_, _| {})?;
        Ok(WienerSolution {
            kappa: kp.iter().zip(&y).map(|(a, b)| (a + b) as f32).collect(),
            iterations,
            residual,
        })
    }

    /// Solves a batch of shear pairs `[b][y][x]` sharing one noise model, in parallel.
    pub fn solve_batch(
        &self,
        g1: &[f32],
        g2: &[f32],
        noise: &NoiseModel,
        opts: &WienerOptions,
    ) -> Result<Vec<WienerSolution>> {
        let n = self.grid.len();
        let b = self.grid.check_batch("gamma1", g1)?;
        check_len("gamma2", g2, b * n)?;
        g1.par_chunks(n)
            .zip(g2.par_chunks(n))
            .map(|(a, c)| self.solve(a, c, noise, opts))
            .collect()
    }

    /// One application of the system operator to a map; what one PCG
    /// iteration costs (used by the benchmarks).
    pub fn apply_system(&self, u: &[f64], noise: &NoiseModel, out: &mut [f64]) -> Result<()> {
        let n = self.grid.len();
        if u.len() != n || out.len() != n {
            return Err(Error::shape("u", n, u.len()));
        }
        let w1: Vec<f64> = noise.weight1().iter().map(|&v| v as f64).collect();
        let w2: Vec<f64> = noise.weight2().iter().map(|&v| v as f64).collect();
        let sys = self.system(&w1, &w2);
        sys.data_term(u, out);
        out.iter_mut().zip(u).for_each(|(o, u)| *o += u);
        Ok(())
    }
}

/// The linear system of a Gaussian field `kappa ~ N(0, C)` (C Fourier-diagonal
/// with pixel power `power`) observed through `P` with noise weights `w1, w2`:
/// `(C^{-1} + P^T W P) y = P^T W r`, solved by PCG in `u = C^{-1/2} y`.
/// Shared by the Wiener filter (`C = S`) and the spectral guidance of the
/// samplers (`C` = the covariance of `kappa | x_sigma`).
pub(crate) struct GaussianSystem<'a> {
    pub ks: &'a KaiserSquires<f64>,
    pub power: &'a [f64],
    pub sqrt_power: &'a [f64],
    pub w1: &'a [f64],
    pub w2: &'a [f64],
}

impl GaussianSystem<'_> {
    fn zero(&self) -> Spec {
        vec![Complex::new(0.0, 0.0); self.ks.grid().spectral_len()]
    }

    /// `C^{1/2} P^T W P C^{1/2} u`, the data part of the system operator.
    fn data_term(&self, u: &[f64], out: &mut [f64]) {
        let fft = self.ks.fft();
        let (p1, p2) = (self.ks.p1(), self.ks.p2());
        let n = self.ks.grid().len();
        let mut uh = self.zero();
        fft.forward(u, &mut uh);
        let (mut a, mut a1, mut a2) = (self.zero(), vec![0.0; n], vec![0.0; n]);
        for i in 0..uh.len() {
            a[i] = uh[i] * (p1[i] * self.sqrt_power[i]);
        }
        fft.inverse(&a, &mut a1);
        for i in 0..uh.len() {
            a[i] = uh[i] * (p2[i] * self.sqrt_power[i]);
        }
        fft.inverse(&a, &mut a2);
        for i in 0..n {
            a1[i] *= self.w1[i];
            a2[i] *= self.w2[i];
        }
        let (mut b1, mut b2) = (self.zero(), self.zero());
        fft.forward(&a1, &mut b1);
        fft.forward(&a2, &mut b2);
        for i in 0..uh.len() {
            a[i] = (b1[i] * p1[i] + b2[i] * p2[i]) * self.sqrt_power[i];
        }
        fft.inverse(&a, out);
    }

    /// Multiplies by a Fourier-diagonal `f(mode index)`.
    fn fourier_multiply(&self, x: &[f64], f: impl Fn(usize) -> f64, out: &mut [f64]) {
        let fft = self.ks.fft();
        let mut xh = self.zero();
        fft.forward(x, &mut xh);
        xh.iter_mut().enumerate().for_each(|(i, v)| *v *= f(i));
        fft.inverse(&xh, out);
    }

    /// `C^{1/2} P^T (W r)` for the weighted residual.
    fn rhs(&self, r1: &[f64], r2: &[f64]) -> Vec<f64> {
        let n = self.ks.grid().len();
        let wg1: Vec<f64> = r1.iter().zip(self.w1).map(|(g, w)| g * w).collect();
        let wg2: Vec<f64> = r2.iter().zip(self.w2).map(|(g, w)| g * w).collect();
        let fft = self.ks.fft();
        let (mut s1, mut s2) = (self.zero(), self.zero());
        fft.forward(&wg1, &mut s1);
        fft.forward(&wg2, &mut s2);
        let (p1, p2) = (self.ks.p1(), self.ks.p2());
        let bh: Spec = (0..s1.len())
            .map(|i| (s1[i] * p1[i] + s2[i] * p2[i]) * self.sqrt_power[i])
            .collect();
        let mut b = vec![0.0; n];
        fft.inverse(&bh, &mut b);
        b
    }

    /// The Fourier-diagonal preconditioner `(1 + C w̄)^{-1}`, `w̄` the mean
    /// weight over pixels and components.
    pub fn preconditioner(&self) -> Vec<f64> {
        let n = self.ks.grid().len();
        let wbar = (self.w1.iter().sum::<f64>() + self.w2.iter().sum::<f64>()) / (2 * n) as f64;
        self.power.iter().map(|p| 1.0 / (1.0 + p * wbar)).collect()
    }

    /// Solves for `y = (C^{-1} + P^T W P)^{-1} P^T W r`. `warm` holds the
    /// previous `u` of this chain (start and result) when given.
    pub fn solve(
        &self,
        r1: &[f64],
        r2: &[f64],
        opts: &WienerOptions,
        warm: Option<&mut Vec<f64>>,
        progress: &mut dyn FnMut(usize, f64),
    ) -> Result<(Vec<f64>, usize, f64)> {
        if !(opts.tol.is_finite() && opts.tol > 0.0) || opts.max_iter == 0 {
            return Err(Error::invalid(
                "options",
                "tolerance must be positive and max_iter at least 1",
            ));
        }
        let n = self.ks.grid().len();
        let b = self.rhs(r1, r2);
        let dot = |a: &[f64], c: &[f64]| a.iter().zip(c).map(|(x, y)| x * y).sum::<f64>();
        let bnorm = dot(&b, &b).sqrt();
        let mut u = match &warm {
            Some(w) if w.len() == n => w.to_vec(),
            _ => vec![0.0; n],
        };
        let mut iterations = 0;
        let mut residual = 0.0;
        if bnorm > 0.0 {
            let pre = self.preconditioner();
            let precond = |i: usize| pre[i];
            // r = b - A u
            let mut r = b.clone();
            let mut ap = vec![0.0; n];
            if u.iter().any(|&v| v != 0.0) {
                self.data_term(&u, &mut ap);
                for i in 0..n {
                    r[i] -= ap[i] + u[i];
                }
            }
            residual = dot(&r, &r).sqrt() / bnorm;
            let mut z = vec![0.0; n];
            self.fourier_multiply(&r, precond, &mut z);
            let mut p = z.clone();
            let mut rz = dot(&r, &z);
            while residual >= opts.tol && iterations < opts.max_iter {
                self.data_term(&p, &mut ap);
                ap.iter_mut().zip(&p).for_each(|(a, p)| *a += p);
                let alpha = rz / dot(&p, &ap);
                u.iter_mut().zip(&p).for_each(|(u, p)| *u += alpha * p);
                r.iter_mut().zip(&ap).for_each(|(r, a)| *r -= alpha * a);
                iterations += 1;
                residual = dot(&r, &r).sqrt() / bnorm;
                progress(iterations, residual);
                if residual < opts.tol {
                    break;
                }
                self.fourier_multiply(&r, precond, &mut z);
                let rz_new = dot(&r, &z);
                let beta = rz_new / rz;
                rz = rz_new;
                p.iter_mut().zip(&z).for_each(|(p, z)| *p = z + beta * *p);
            }
            if residual >= opts.tol {
                return Err(Error::NotConverged {
                    solver: "Gaussian PCG",
                    iterations,
                    residual,
                    tolerance: opts.tol,
                });
            }
        } else {
            u.iter_mut().for_each(|v| *v = 0.0);
        }
        if let Some(w) = warm {
            w.clone_from(&u);
        }
        let mut y = vec![0.0; n];
        self.fourier_multiply(&u, |i| self.sqrt_power[i], &mut y);
        Ok((y, iterations, residual))
    }
}
