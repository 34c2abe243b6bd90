//! Posterior scores: what a diffusion sampler integrates.
//!
//! At diffusion level sigma the sampler needs the score of the *diffused
//! posterior* `p(x_sigma | gamma)` with `x_sigma = kappa + sigma z`:
//!
//! ```text
//! grad log p(x_sigma | gamma) = s_prior(x; sigma) + grad_x log p(gamma | x_sigma).
//! ```
//!
//! The prior score comes from the denoiser (Tweedie). The likelihood term
//! `p(gamma | x_sigma) = ∫ p(gamma | kappa) p(kappa | x_sigma) dkappa` is
//! intractable for a general prior; [`Guidance`] selects an approximation:
//!
//! - **Annealed** (Remy et al. 2023): `gamma ≈ P x + n'`, `n'` with
//!   per-component variance `sigma_pix² + c sigma²`, so
//!   `grad = P^T W_c (gamma - P x)`, `W_c = 1/(sigma_pix² + c sigma²)`
//!   (0 where masked). `c = 1/2` by default: `P` maps white noise of variance
//!   `sigma²` to shear whose components have variance `sigma² <p_c²> = sigma²/2`
//!   (averaged over modes, `p1² + p2² = 1`), so `c = 1/2` matches the per-pixel
//!   variance of the term that `x` adds (jax-lensing used `c = 1`).
//! - **Tweedie** (DPS, Chung et al. 2023): `p(kappa | x) ≈ δ(kappa - D(x))`,
//!   `grad = J_D^T P^T W (gamma - P D(x))`. With `inflate`, `W` becomes
//!   `1/(sigma_pix² + v_sigma)` with `v_sigma = <C_sigma>/2` the per-component
//!   shear variance of the prior's posterior covariance `C_sigma` (a diagonal
//!   form of the ΠGDM correction, Song et al. 2023).
//! - **Spectral**: `p(kappa | x) ≈ N(D(x), C_sigma)` with
//!   `C_sigma = S sigma² / (S + sigma²)` from the prior's Gaussian power `S`:
//!   `grad = J_D^T P^T (N + P C_sigma P^T)^{-1} (gamma - P D(x))`, the inverse
//!   by Woodbury, `(N + P C P^T)^{-1} = W - W P (C^{-1} + P^T W P)^{-1} P^T W`,
//!   with a conjugate-gradient solve. For the Gaussian prior this is the exact
//!   `p(gamma | x_sigma)` (the oracle); for other priors, the Gaussian
//!   approximation of `kappa | x_sigma`.

use num_complex::Complex;
use rayon::prelude::*;

use crate::baselines::wiener::{GaussianSystem, WienerOptions};
use crate::error::{check_finite, check_len, Error, Result};
use crate::fft::Fft2;
use crate::grid::Grid;
use crate::lensing::KaiserSquires;
use crate::noise::NoiseModel;
use crate::prior::Prior;

/// Work counted during score evaluations (per call, summed over the batch).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ScoreStats {
    /// Conjugate-gradient iterations spent inside the guidance.
    pub inner_iterations: u64,
}

/// A batched posterior score at diffusion level sigma: what samplers integrate.
pub trait ScoreModel: Sync {
    /// The grid of the maps.
    fn grid(&self) -> &Grid;

    /// `out = grad log p_sigma(x | data)` for a batch `[b][y][x]`.
    fn score(&self, x: &[f32], sigma: f64, out: &mut [f32]) -> Result<ScoreStats>;

    /// Turns white noise `z` (a batch) into a draw from the diffused prior at
    /// `sigma_max`, in place: `F^{-1}[sqrt(S + sigma_max²) F z]` when the prior
    /// has a Gaussian model, `sigma_max z` otherwise.
    fn initial(&self, sigma_max: f64, z: &mut [f32]) -> Result<()>;

    /// Largest prior pixel standard deviation `sqrt(max S)`, which sets the
    /// default `sigma_max`.
    fn prior_scale(&self) -> f64;

    /// A starting map for MCMC (the Kaiser–Squires map of the data), if any.
    fn start_map(&self) -> Option<Vec<f32>>;

    /// Reduced shear chi² of each map of a batch, `sum w (gamma - P kappa)² / n_obs`.
    fn chi2(&self, kappa: &[f32]) -> Result<Vec<f64>>;

    /// A Fourier-diagonal approximation of the covariance of `x_sigma | data`
    /// (half-spectrum pixel power), used as the inverse mass matrix of
    /// preconditioned HMC/Langevin refinement; `None` = identity.
    fn metric(&self, _sigma: f64) -> Option<Vec<f64>> {
        None
    }

    /// Called by the samplers before each batch of `chains` chains: models
    /// that carry per-chain state between evaluations (warm starts) reset it,
    /// so that a chain's result never depends on the other chains of its batch.
    fn begin_batch(&self, _chains: usize) {}

    /// The largest noise level the prior is valid at (a learned denoiser's
    /// training range), if limited; the default `sigma_max` does not exceed it.
    fn sigma_max(&self) -> Option<f64> {
        None
    }
}

/// Observed shear and its noise model.
#[derive(Debug, Clone)]
pub struct ShearData {
    /// Shear component 1 `[y][x]` (ignored where masked).
    pub g1: Vec<f32>,
    /// Shear component 2.
    pub g2: Vec<f32>,
    /// Noise weights and mask.
    pub noise: NoiseModel,
}

impl ShearData {
    /// Checks shapes and values; masked pixels are zeroed.
    pub fn new(mut g1: Vec<f32>, mut g2: Vec<f32>, noise: NoiseModel) -> Result<Self> {
        let n = noise.grid().len();
        check_len("gamma1", &g1, n)?;
        check_len("gamma2", &g2, n)?;
        check_finite("gamma1", &g1)?;
        check_finite("gamma2", &g2)?;
        for i in 0..n {
            if noise.weight1()[i] == 0.0 {
                g1[i] = 0.0;
            }
            if noise.weight2()[i] == 0.0 {
                g2[i] = 0.0;
            }
        }
        Ok(ShearData { g1, g2, noise })
    }

    /// The grid.
    pub fn grid(&self) -> &Grid {
        self.noise.grid()
    }

    /// Number of observed shear components (the chi² degrees of freedom).
    pub fn n_observed_components(&self) -> usize {
        let w = self.noise.weight1().iter().chain(self.noise.weight2());
        w.filter(|&&w| w > 0.0).count()
    }
}

/// How the likelihood enters the score (module docs give the formulas).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Guidance {
    /// Noise-inflated likelihood with variance `sigma_pix² + c sigma²`.
    Annealed {
        /// Inflation coefficient (default 1/2).
        c: f64,
    },
    /// Tweedie/DPS guidance through the denoiser's vector–Jacobian product.
    Tweedie {
        /// Inflate the noise by the prior's posterior variance at sigma.
        inflate: bool,
    },
    /// Woodbury guidance with the prior's Gaussian covariance model (exact for
    /// the Gaussian prior).
    Spectral {
        /// Relative residual of the inner conjugate-gradient solve.
        tol: f64,
    },
}

impl Guidance {
    /// A short name.
    pub fn name(&self) -> &'static str {
        match self {
            Guidance::Annealed { .. } => "annealed",
            Guidance::Tweedie { inflate: false } => "tweedie",
            Guidance::Tweedie { inflate: true } => "tweedie-inflated",
            Guidance::Spectral { .. } => "spectral",
        }
    }
}

/// Prior score plus a guided likelihood term.
pub struct GuidedPosterior<'a> {
    prior: &'a dyn Prior,
    data: &'a ShearData,
    guidance: Guidance,
    ks: KaiserSquires<f32>,
    ks64: KaiserSquires<f64>,
    w1: Vec<f64>,
    w2: Vec<f64>,
    /// Per-chain start of the inner solve (the previous solution, rescaled).
    warm: std::sync::Mutex<Vec<WarmStart>>,
}

/// The last inner solution of a chain and the level it was computed at.
#[derive(Default)]
struct WarmStart {
    u: Vec<f64>,
    sigma: f64,
}

impl<'a> GuidedPosterior<'a> {
    /// Combines a prior, data and a guidance scheme (same grid).
    pub fn new(prior: &'a dyn Prior, data: &'a ShearData, guidance: Guidance) -> Result<Self> {
        if prior.grid() != data.grid() {
            return Err(Error::invalid(
                "prior",
                "prior and data have different grids",
            ));
        }
        match guidance {
            Guidance::Annealed { c } if !(c.is_finite() && c >= 0.0) => {
                return Err(Error::invalid(
                    "guidance",
                    format!("annealing coefficient must be >= 0, got {c}"),
                ))
            }
            Guidance::Spectral { tol } if !(tol.is_finite() && tol > 0.0 && tol < 1.0) => {
                return Err(Error::invalid(
                    "guidance",
                    format!("inner tolerance must be in (0, 1), got {tol}"),
                ))
            }
            Guidance::Spectral { .. } | Guidance::Tweedie { inflate: true }
                if prior.gaussian_power().is_none() =>
            {
                return Err(Error::invalid(
                    "guidance",
                    format!(
                        "{} guidance needs a prior with a Gaussian power model",
                        guidance.name()
                    ),
                ))
            }
            _ => {}
        }
        let grid = *prior.grid();
        Ok(GuidedPosterior {
            prior,
            data,
            guidance,
            ks: KaiserSquires::new(grid),
            ks64: KaiserSquires::new(grid),
            w1: data.noise.weight1().iter().map(|&w| w as f64).collect(),
            w2: data.noise.weight2().iter().map(|&w| w as f64).collect(),
            warm: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The guidance scheme.
    pub fn guidance(&self) -> Guidance {
        self.guidance
    }

    /// The prior.
    pub fn prior(&self) -> &dyn Prior {
        self.prior
    }

    /// The data.
    pub fn data(&self) -> &ShearData {
        self.data
    }

    /// `C_sigma = S sigma² / (S + sigma²)` on the half spectrum.
    fn posterior_power(&self, sigma: f64) -> Vec<f64> {
        posterior_power_of(self.prior.gaussian_power(), sigma)
    }

    /// `out += P^T (w ⊙ (gamma - P m))` per map with the weights `w1, w2`.
    fn add_weighted_residual(
        &self,
        m: &[f32],
        w1: &[f32],
        w2: &[f32],
        out: &mut [f32],
    ) -> Result<()> {
        let n = self.prior.grid().len();
        let (mut p1, mut p2) = (vec![0.0f32; m.len()], vec![0.0f32; m.len()]);
        self.ks.forward(m, &mut p1, &mut p2)?;
        for (c1, c2) in p1.chunks_mut(n).zip(p2.chunks_mut(n)) {
            for i in 0..n {
                c1[i] = w1[i] * (self.data.g1[i] - c1[i]);
                c2[i] = w2[i] * (self.data.g2[i] - c2[i]);
            }
        }
        let mut back = vec![0.0f32; m.len()];
        self.ks.adjoint(&p1, &p2, &mut back)?;
        out.iter_mut().zip(&back).for_each(|(o, b)| *o += b);
        Ok(())
    }
}

impl ScoreModel for GuidedPosterior<'_> {
    fn grid(&self) -> &Grid {
        self.prior.grid()
    }

    fn score(&self, x: &[f32], sigma: f64, out: &mut [f32]) -> Result<ScoreStats> {
        let grid = *self.prior.grid();
        let n = grid.len();
        grid.check_batch("x", x)?;
        check_len("score", out, x.len())?;
        let s2 = sigma * sigma;
        match self.guidance {
            Guidance::Annealed { c } => {
                self.prior.score(x, sigma, out)?;
                let inflate = |w: &f64| (w / (1.0 + c * s2 * w)) as f32;
                let a1: Vec<f32> = self.w1.iter().map(inflate).collect();
                let a2: Vec<f32> = self.w2.iter().map(inflate).collect();
                self.add_weighted_residual(x, &a1, &a2, out)?;
                Ok(ScoreStats::default())
            }
            Guidance::Tweedie { inflate } => {
                let mut d = vec![0.0f32; x.len()];
                self.prior.denoise(x, sigma, &mut d)?;
                let (e1, e2) = if inflate {
                    let v = inflated_tweedie_variance(
                        self.prior.grid(),
                        self.prior.gaussian_power(),
                        sigma,
                    );
                    let f = |w: &f64| (w / (1.0 + v * w)) as f32;
                    (
                        self.w1.iter().map(f).collect(),
                        self.w2.iter().map(f).collect(),
                    )
                } else {
                    (
                        self.data.noise.weight1().to_vec(),
                        self.data.noise.weight2().to_vec(),
                    )
                };
                let mut v = vec![0.0f32; x.len()];
                self.add_weighted_residual(&d, &e1, &e2, &mut v)?;
                let mut jv = vec![0.0f32; x.len()];
                self.prior.denoise_vjp(x, sigma, &v, &mut jv)?;
                let inv = (1.0 / s2) as f32;
                for i in 0..x.len() {
                    out[i] = (d[i] - x[i]) * inv + jv[i];
                }
                Ok(ScoreStats::default())
            }
            Guidance::Spectral { tol } => {
                let mut d = vec![0.0f32; x.len()];
                self.prior.denoise(x, sigma, &mut d)?;
                let power = self.posterior_power(sigma);
                let sqrt_power: Vec<f64> = power.iter().map(|p| p.sqrt()).collect();
                let sys = GaussianSystem {
                    ks: &self.ks64,
                    power: &power,
                    sqrt_power: &sqrt_power,
                    w1: &self.w1,
                    w2: &self.w2,
                };
                let opts = WienerOptions { tol, max_iter: 500 };
                let b = x.len() / n;
                let mut warm = match self.warm.lock() {
                    Ok(mut w) => std::mem::take(&mut *w),
                    Err(_) => Vec::new(),
                };
                if warm.len() != b {
                    warm = (0..b).map(|_| WarmStart::default()).collect();
                }
                // the chains of a batch move together, so once per call
                let warm_scale = |prev_sigma: f64| {
                    warm_start_scale(self.prior.gaussian_power(), prev_sigma, &power)
                };
                let shared_scale = warm
                    .first()
                    .filter(|w| !w.u.is_empty() && w.sigma != sigma)
                    .map(|w| (w.sigma, warm_scale(w.sigma)));
                let mut v = vec![0.0f32; x.len()];
                let iters: Result<Vec<usize>> = d
                    .par_chunks(n)
                    .zip(v.par_chunks_mut(n))
                    .zip(warm.par_iter_mut())
                    .map(|((dm, vm), ws)| {
                        // r = gamma - P D(x)
                        let dm64: Vec<f64> = dm.iter().map(|&v| v as f64).collect();
                        let (mut q1, mut q2) = (vec![0.0; n], vec![0.0; n]);
                        self.ks64.forward(&dm64, &mut q1, &mut q2)?;
                        for i in 0..n {
                            q1[i] = self.data.g1[i] as f64 - q1[i];
                            q2[i] = self.data.g2[i] as f64 - q2[i];
                        }
                        // warm start: the previous u of this chain, carried to this
                        // level's variables (u = C^{-1/2} y with y kept fixed)
                        if ws.u.len() == n && ws.sigma != sigma {
                            match &shared_scale {
                                Some((s0, scale)) if *s0 == ws.sigma => {
                                    fourier_scale(self.ks64.fft(), &mut ws.u, scale)
                                }
                                _ => {
                                    fourier_scale(self.ks64.fft(), &mut ws.u, &warm_scale(ws.sigma))
                                }
                            }
                        }
                        ws.sigma = sigma;
                        // g = W r - W P y, y = (C^{-1} + P^T W P)^{-1} P^T W r
                        let (y, it, _) =
                            sys.solve(&q1, &q2, &opts, Some(&mut ws.u), &mut |_, _| {})?;
                        let (mut y1, mut y2) = (vec![0.0; n], vec![0.0; n]);
                        self.ks64.forward(&y, &mut y1, &mut y2)?;
                        for i in 0..n {
                            y1[i] = self.w1[i] * (q1[i] - y1[i]);
                            y2[i] = self.w2[i] * (q2[i] - y2[i]);
                        }
                        let mut back = vec![0.0; n];
                        self.ks64.adjoint(&y1, &y2, &mut back)?;
                        vm.iter_mut().zip(&back).for_each(|(o, b)| *o = *b as f32);
                        Ok(it)
                    })
                    .collect();
                if let Ok(mut w) = self.warm.lock() {
                    *w = warm;
                }
                let mut jv = vec![0.0f32; x.len()];
                self.prior.denoise_vjp(x, sigma, &v, &mut jv)?;
                let inv = (1.0 / s2) as f32;
                for i in 0..x.len() {
                    out[i] = (d[i] - x[i]) * inv + jv[i];
                }
                Ok(ScoreStats {
                    inner_iterations: iters?.iter().map(|&i| i as u64).sum(),
                })
            }
        }
    }

    fn initial(&self, sigma_max: f64, z: &mut [f32]) -> Result<()> {
        diffused_prior_draw(self.prior.grid(), self.prior.gaussian_power(), sigma_max, z)
    }

    fn prior_scale(&self) -> f64 {
        self.prior
            .gaussian_power()
            .map(|p| p.iter().cloned().fold(0.0, f64::max).sqrt())
            .unwrap_or(1.0)
    }

    fn start_map(&self) -> Option<Vec<f32>> {
        ks_map(&self.ks, self.data)
    }

    fn chi2(&self, kappa: &[f32]) -> Result<Vec<f64>> {
        shear_chi2(&self.ks, self.data, kappa)
    }

    /// `1 / (1/S + w̄) + sigma²` with `w̄` the mean noise weight per component.
    fn metric(&self, sigma: f64) -> Option<Vec<f64>> {
        let s = self.prior.gaussian_power()?;
        let n = self.w1.len() as f64;
        let wbar = (self.w1.iter().sum::<f64>() + self.w2.iter().sum::<f64>()) / (2.0 * n);
        Some(
            s.iter()
                .map(|&s| if s > 0.0 { 1.0 / (1.0 / s + wbar) } else { 0.0 } + sigma * sigma)
                .collect(),
        )
    }

    fn sigma_max(&self) -> Option<f64> {
        self.prior.sigma_max()
    }

    fn begin_batch(&self, _chains: usize) {
        if let Ok(mut w) = self.warm.lock() {
            w.clear();
        }
    }
}

/// The shear variance per component that inflates the Tweedie guidance:
/// `v_sigma = <C_sigma> / 2`, the mean over full-plane modes of the posterior
/// power `C_sigma` (= its pixel variance), halved.
pub(crate) fn inflated_tweedie_variance(grid: &Grid, power: Option<&[f64]>, sigma: f64) -> f64 {
    let p = posterior_power_of(power, sigma);
    let mut s = 0.0;
    for iy in 0..grid.ny {
        for ix in 0..grid.nkx() {
            s += grid.hermitian_weight(ix) * p[iy * grid.nkx() + ix];
        }
    }
    0.5 * (s / grid.len() as f64)
}

/// `sqrt(C_prev / C_now)` per mode: carries a spectral-guidance warm start
/// `u = C^{-1/2} y` from the level it was computed at to the current one
/// (0 where `C_now` vanishes).
pub(crate) fn warm_start_scale(power: Option<&[f64]>, prev_sigma: f64, now: &[f64]) -> Vec<f64> {
    posterior_power_of(power, prev_sigma)
        .iter()
        .zip(now)
        .map(|(p, c)| if *c > 0.0 { (p / c).sqrt() } else { 0.0 })
        .collect()
}

/// `C_sigma = S sigma² / (S + sigma²)` for a prior power `S`.
pub(crate) fn posterior_power_of(power: Option<&[f64]>, sigma: f64) -> Vec<f64> {
    let s2 = sigma * sigma;
    power
        .map(|s| s.iter().map(|&s| s * s2 / (s + s2)).collect())
        .unwrap_or_default()
}

/// `x <- F^{-1}[scale F x]`.
fn fourier_scale(fft: &Fft2<f64>, x: &mut [f64], scale: &[f64]) {
    let mut spec = vec![Complex::new(0.0, 0.0); scale.len()];
    fft.forward(x, &mut spec);
    spec.iter_mut().zip(scale).for_each(|(v, s)| *v *= *s);
    fft.inverse(&spec, x);
}

/// The Kaiser–Squires E map of the data (the MCMC starting point).
pub(crate) fn ks_map(ks: &KaiserSquires<f32>, data: &ShearData) -> Option<Vec<f32>> {
    let n = data.grid().len();
    let (mut e, mut b) = (vec![0.0f32; n], vec![0.0f32; n]);
    ks.inverse_eb(&data.g1, &data.g2, &mut e, &mut b).ok()?;
    Some(e)
}

/// Reduced chi² of the shear residual of each map of a batch.
pub fn shear_chi2(ks: &KaiserSquires<f32>, data: &ShearData, kappa: &[f32]) -> Result<Vec<f64>> {
    let n = data.grid().len();
    let (mut p1, mut p2) = (vec![0.0f32; kappa.len()], vec![0.0f32; kappa.len()]);
    ks.forward(kappa, &mut p1, &mut p2)?;
    let dof = data.n_observed_components().max(1) as f64;
    let (w1, w2) = (data.noise.weight1(), data.noise.weight2());
    Ok(p1
        .chunks(n)
        .zip(p2.chunks(n))
        .map(|(a, b)| {
            let mut s = 0.0f64;
            for i in 0..n {
                s += w1[i] as f64 * (data.g1[i] - a[i]) as f64 * (data.g1[i] - a[i]) as f64;
                s += w2[i] as f64 * (data.g2[i] - b[i]) as f64 * (data.g2[i] - b[i]) as f64;
            }
            s / dof
        })
        .collect())
}

/// `z <- F^{-1}[sqrt(S + sigma²) F z]` per map (or `sigma z` without `S`).
pub(crate) fn diffused_prior_draw(
    grid: &Grid,
    power: Option<&[f64]>,
    sigma: f64,
    z: &mut [f32],
) -> Result<()> {
    grid.check_batch("z", z)?;
    let Some(s) = power else {
        z.iter_mut().for_each(|v| *v *= sigma as f32);
        return Ok(());
    };
    let fft = Fft2::<f64>::new(grid.nx, grid.ny);
    let amp: Vec<f64> = s.iter().map(|&p| (p + sigma * sigma).sqrt()).collect();
    z.par_chunks_mut(grid.len()).for_each(|m| {
        let x: Vec<f64> = m.iter().map(|&v| v as f64).collect();
        let mut spec = vec![Complex::new(0.0, 0.0); grid.spectral_len()];
        fft.forward(&x, &mut spec);
        spec.iter_mut().zip(&amp).for_each(|(v, a)| *v *= *a);
        let mut y = vec![0.0; grid.len()];
        fft.inverse(&spec, &mut y);
        m.iter_mut().zip(&y).for_each(|(m, y)| *m = *y as f32);
    });
    Ok(())
}
