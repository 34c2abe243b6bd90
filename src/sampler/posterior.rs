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

use super::{GuidedScore, Model, Target};
use crate::backend::cpu::Cpu;
use crate::backend::cuda::Cuda;
use crate::error::{check_finite, check_len, Error, Result};
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

    /// An observed *convergence* map `y = kappa + e` in this form (for the
    /// samplers that take convergence data, e.g. the joint guided sampler's
    /// [`JointGuidedPosterior::from_convergence`](super::joint_guided::JointGuidedPosterior::from_convergence)):
    /// `y` in the first component with weights `1 / std²` (0 where `mask` is
    /// false), the second component zero with zero weights.
    pub fn convergence(
        grid: Grid,
        y: Vec<f32>,
        std: &[f32],
        mask: Option<&[bool]>,
    ) -> Result<Self> {
        let n = grid.len();
        check_len("y", &y, n)?;
        check_len("std", std, n)?;
        if let Some(m) = mask {
            if m.len() != n {
                return Err(Error::shape("mask", n, m.len()));
            }
        }
        let mut w1 = vec![0.0f32; n];
        for i in 0..n {
            if mask.is_some_and(|m| !m[i]) {
                continue;
            }
            let s = std[i];
            if !(s.is_finite() && s > 0.0) {
                return Err(Error::invalid(
                    "std",
                    format!("pixel {i} is observed but has noise std {s}; mask it instead"),
                ));
            }
            w1[i] = 1.0 / (s * s);
        }
        let noise = NoiseModel::from_weights(grid, w1, vec![0.0; n])?;
        ShearData::new(y, vec![0.0; n], noise)
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
    /// Checks the scheme's settings, and that a prior with (`has_power`) or
    /// without a Gaussian power model can use it: spectral and inflated
    /// Tweedie guidance need one.
    pub fn check(&self, has_power: bool) -> Result<()> {
        match *self {
            Guidance::Annealed { c } if !(c.is_finite() && c >= 0.0) => Err(Error::invalid(
                "guidance",
                format!("annealing coefficient must be >= 0, got {c}"),
            )),
            Guidance::Spectral { tol } if !(tol.is_finite() && tol > 0.0 && tol < 1.0) => {
                Err(Error::invalid(
                    "guidance",
                    format!("inner tolerance must be in (0, 1), got {tol}"),
                ))
            }
            Guidance::Spectral { .. } | Guidance::Tweedie { inflate: true } if !has_power => {
                Err(Error::invalid(
                    "guidance",
                    format!(
                        "{} guidance needs a prior with a Gaussian power model",
                        self.name()
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

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

/// A problem's guided posterior: a prior, the data and a guidance scheme. It
/// is a [`Model`]: its score runs on any backend as a
/// [`crate::sampler::GuidedScore`] around the prior's device form.
pub struct GuidedPosterior<'a> {
    prior: &'a dyn Prior,
    data: &'a ShearData,
    guidance: Guidance,
    ks: KaiserSquires<f32>,
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
        guidance.check(prior.gaussian_power().is_some())?;
        Ok(GuidedPosterior {
            prior,
            data,
            guidance,
            ks: KaiserSquires::new(*prior.grid()),
        })
    }

    /// The guidance scheme.
    pub fn guidance(&self) -> Guidance {
        self.guidance
    }

    /// The prior.
    pub fn prior(&self) -> &'a dyn Prior {
        self.prior
    }

    /// The data.
    pub fn data(&self) -> &'a ShearData {
        self.data
    }
}

impl Model for GuidedPosterior<'_> {
    fn grid(&self) -> &Grid {
        self.prior.grid()
    }

    /// `sqrt(max S)` of the prior's Gaussian model (1 without one).
    fn prior_scale(&self) -> f64 {
        self.prior
            .gaussian_power()
            .map(|p| p.iter().cloned().fold(0.0, f64::max).sqrt())
            .unwrap_or(1.0)
    }

    fn sigma_max(&self) -> Option<f64> {
        self.prior.sigma_max()
    }

    /// `1 / (1/S + w̄) + sigma²` with `w̄` the mean noise weight per component.
    fn metric(&self, sigma: f64) -> Option<Vec<f64>> {
        let s = self.prior.gaussian_power()?;
        let (w1, w2) = (self.data.noise.weight1(), self.data.noise.weight2());
        let sum = |w: &[f32]| w.iter().map(|&w| w as f64).sum::<f64>();
        let wbar = (sum(w1) + sum(w2)) / (2.0 * w1.len() as f64);
        Some(
            s.iter()
                .map(|&s| if s > 0.0 { 1.0 / (1.0 / s + wbar) } else { 0.0 } + sigma * sigma)
                .collect(),
        )
    }

    fn chi2(&self, maps: &[f32]) -> Result<Vec<f64>> {
        shear_chi2(&self.ks, self.data, maps)
    }

    fn on_cpu(&self, be: &Cpu) -> Result<Box<dyn Target<Cpu> + '_>> {
        Ok(Box::new(GuidedScore::new(be, self)?))
    }

    fn on_cuda(&self, be: &Cuda) -> Result<Box<dyn Target<Cuda> + '_>> {
        Ok(Box::new(GuidedScore::new(be, self)?))
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
