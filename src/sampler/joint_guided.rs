//! Joint posterior sampling of parameters and map from shear (or from an
//! observed convergence map, `P = 1`): a joint prior
//! ([`JointPrior`]) with likelihood guidance, the joint form of
//! [`super::GuidedPosterior`] (issue #15, part 3).
//!
//! The state is `x = (u, k)` in the joint units of [`crate::prior::joint`];
//! the data are shear `gamma = P kappa + n` with `kappa = sigma_d k`, per-pixel
//! noise weights `W` (0 where masked). The score of the diffused posterior is
//!
//! ```text
//! grad log p(x_sigma | gamma) = (D(x_sigma) - x_sigma) / sigma² + grad_x log p(gamma | x_sigma)
//! ```
//!
//! with `D` the joint prior denoiser. The likelihood depends on the map only;
//! the parameters receive the data through the denoiser's Jacobian, `J_D^T =
//! d(u*, k*)/d(u_sigma, k_sigma)^T` applied to the map cotangent (the
//! Tweedie-consistent gradient), not by a separate fit. The schemes, with
//! `kappa` units inside (`sigma_kappa = sigma_d sigma`):
//!
//! - **Annealed**: `gamma ≈ P kappa_sigma + n'` with per-component variance
//!   `1/w + c sigma_kappa²`: `grad_k = sigma_d P^T W_c (gamma - P kappa_sigma)`,
//!   `grad_u = 0`. The parameters then see the data only through the prior
//!   score's dependence on `k_sigma`.
//! - **Tweedie** (DPS): `p(k | x_sigma) ≈ δ(k - k*)`: `v = sigma_d P^T W (gamma -
//!   P kappa*)` and `(grad_u, grad_k) = J_D^T (0, v)`. With `inflate`, `W` becomes
//!   `1 / (1/w + v_sigma)`, `v_sigma` half the mean posterior power at `u*`.
//! - **Spectral**: `p(kappa | x_sigma) ≈ N(kappa*, C_sigma(u*))`, `C_sigma = S
//!   sigma_kappa² / (S + sigma_kappa²)` with the prior's Gaussian power `S` at
//!   the current parameter estimate `u*`: `v = sigma_d P^T (N + P C P^T)^{-1}
//!   (gamma - P kappa*)` (Woodbury and conjugate gradients as in the map-only
//!   spectral guidance) and `(grad_u, grad_k) = J_D^T (0, v)`. Given `u` this
//!   is exact for a Gaussian joint prior; what it leaves out is the data's
//!   information on `u` through the map's power (docs/joint.md gives the
//!   measured bias on the oracle and why).

use num_complex::Complex;
use rayon::prelude::*;

use super::engine::{Model, Target};
use super::posterior::{inflated_tweedie_variance, posterior_power_of, shear_chi2, ScoreStats};
use super::state::State;
use super::{Guidance, Moments, SampleSet, SamplerKind, ShearData};
use crate::backend::cpu::Cpu;
use crate::baselines::wiener::{GaussianSystem, WienerOptions};
use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::lensing::KaiserSquires;
use crate::prior::joint::{JointPrior, ParamSpace};

/// Iteration limit of the spectral guidance's inner solve.
const MAX_INNER_ITERATIONS: usize = 500;

/// A joint prior, shear data and a guidance scheme ([module docs](self)).
pub struct JointGuidedPosterior<'a, P: JointPrior> {
    prior: &'a P,
    data: &'a ShearData,
    guidance: Guidance,
    ks: KaiserSquires<f64>,
    ks32: KaiserSquires<f32>,
    g1: Vec<f64>,
    g2: Vec<f64>,
    w1: Vec<f64>,
    w2: Vec<f64>,
    /// The map's prior pixel power at the prior mean `u = 0`, joint units.
    power0: Option<Vec<f64>>,
    prior_scale: f64,
    observed: Observed,
}

/// What the data observe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Shear, `A = P` (Kaiser–Squires).
    Shear,
    /// Convergence, `A = 1` (in the first component of [`ShearData`], see
    /// [`ShearData::convergence`]).
    Convergence,
}

impl<'a, P: JointPrior> JointGuidedPosterior<'a, P> {
    /// Combines a joint prior, shear data and a guidance scheme (same grid).
    pub fn new(prior: &'a P, data: &'a ShearData, guidance: Guidance) -> Result<Self> {
        Self::with_observed(prior, data, guidance, Observed::Shear)
    }

    /// Combines a joint prior, an observed convergence map (made by
    /// [`ShearData::convergence`]: second component unobserved) and a
    /// guidance scheme. Every formula of the [module docs](self) holds with
    /// `P = 1` on the first component.
    pub fn from_convergence(prior: &'a P, data: &'a ShearData, guidance: Guidance) -> Result<Self> {
        if data.noise.weight2().iter().any(|&w| w != 0.0) {
            return Err(Error::invalid(
                "data",
                "convergence data carry no second component: build them with ShearData::convergence",
            ));
        }
        Self::with_observed(prior, data, guidance, Observed::Convergence)
    }

    fn with_observed(
        prior: &'a P,
        data: &'a ShearData,
        guidance: Guidance,
        observed: Observed,
    ) -> Result<Self> {
        let grid = *prior.grid();
        if grid != *data.grid() {
            return Err(Error::invalid(
                "prior",
                "prior and data have different grids",
            ));
        }
        let p = prior.space().len();
        let power0 = prior.gaussian_power(&vec![0.0; p])?;
        guidance.check(power0.is_some())?;
        let sd2 = prior.sigma_d() * prior.sigma_d();
        let power0 = power0.map(|s| s.iter().map(|s| s / sd2).collect::<Vec<f64>>());
        let prior_scale = power0.as_ref().map_or(1.0, |s| {
            s.iter().copied().fold(0.0, f64::max).sqrt().max(1.0)
        });
        let to64 = |v: &[f32]| v.iter().map(|&v| v as f64).collect::<Vec<f64>>();
        Ok(JointGuidedPosterior {
            prior,
            data,
            guidance,
            ks: match observed {
                Observed::Shear => KaiserSquires::new(grid),
                Observed::Convergence => KaiserSquires::identity(grid),
            },
            ks32: match observed {
                Observed::Shear => KaiserSquires::new(grid),
                Observed::Convergence => KaiserSquires::identity(grid),
            },
            g1: to64(&data.g1),
            g2: to64(&data.g2),
            w1: to64(data.noise.weight1()),
            w2: to64(data.noise.weight2()),
            power0,
            prior_scale,
            observed,
        })
    }

    /// What the data observe.
    pub fn observed(&self) -> Observed {
        self.observed
    }

    /// The guidance scheme.
    pub fn guidance(&self) -> Guidance {
        self.guidance
    }

    /// The joint prior.
    pub fn prior(&self) -> &'a P {
        self.prior
    }

    /// `P^T (a ⊙ (gamma - P kappa))` with per-component factors `a` (f64).
    fn weighted_residual_back(&self, kappa: &[f64], a1: &[f64], a2: &[f64]) -> Result<Vec<f64>> {
        let n = kappa.len();
        let (mut r1, mut r2) = (vec![0.0; n], vec![0.0; n]);
        self.ks.forward(kappa, &mut r1, &mut r2)?;
        for i in 0..n {
            r1[i] = a1[i] * (self.g1[i] - r1[i]);
            r2[i] = a2[i] * (self.g2[i] - r2[i]);
        }
        let mut back = vec![0.0; n];
        self.ks.adjoint(&r1, &r2, &mut back)?;
        Ok(back)
    }

    /// `B^{-1} z = W (z - P y)`, `y = (C^{-1} + P^T W P)^{-1} P^T W z`, for
    /// `B = N + P C P^T` and a shear-space `z` (Woodbury, the map-only
    /// spectral guidance's system). `warm` holds this solve's previous `y`
    /// (start and result). Returns `B^{-1} z` and the iterations.
    fn noise_plus_map_inverse(
        &self,
        z: (&[f64], &[f64]),
        power: &[f64],
        sqrt_power: &[f64],
        tol: f64,
        warm: &mut Option<Vec<f64>>,
    ) -> Result<(ShearPair, usize)> {
        let n = z.0.len();
        // the previous y in this level's variables, u = C^{-1/2} y
        let mut u = match warm.take() {
            Some(y) if y.len() == n => {
                let fft = self.ks.fft();
                let mut spec = vec![Complex::new(0.0, 0.0); self.ks.grid().spectral_len()];
                fft.forward(&y, &mut spec);
                for (s, c) in spec.iter_mut().zip(sqrt_power) {
                    *s = if *c > 0.0 {
                        *s / *c
                    } else {
                        Complex::new(0.0, 0.0)
                    };
                }
                let mut u = vec![0.0; n];
                fft.inverse(&spec, &mut u);
                u
            }
            _ => vec![0.0; n],
        };
        let sys = GaussianSystem {
            ks: &self.ks,
            power,
            sqrt_power,
            w1: &self.w1,
            w2: &self.w2,
        };
        let opts = WienerOptions {
            tol,
            max_iter: MAX_INNER_ITERATIONS,
        };
        let (y, iterations, _) = sys.solve(z.0, z.1, &opts, Some(&mut u), &mut |_, _| {})?;
        let (mut y1, mut y2) = (vec![0.0; n], vec![0.0; n]);
        self.ks.forward(&y, &mut y1, &mut y2)?;
        for i in 0..n {
            y1[i] = self.w1[i] * (z.0[i] - y1[i]);
            y2[i] = self.w2[i] * (z.1[i] - y2[i]);
        }
        *warm = Some(y);
        Ok(((y1, y2), iterations))
    }

    /// The spectral scheme's map cotangent `P^T (N + P C P^T)^{-1} (gamma - P
    /// kappa*)`, `C = C_sigma(u*)`, warm-started from the chain's previous
    /// solve.
    fn spectral_back(
        &self,
        kappa: &[f64],
        power: &[f64],
        tol: f64,
        warm: &mut Option<Vec<f64>>,
    ) -> Result<(Vec<f64>, usize)> {
        let n = kappa.len();
        let sqrt_power: Vec<f64> = power.iter().map(|v| v.sqrt()).collect();
        let (mut r1, mut r2) = (vec![0.0; n], vec![0.0; n]);
        self.ks.forward(kappa, &mut r1, &mut r2)?;
        for i in 0..n {
            r1[i] = self.g1[i] - r1[i];
            r2[i] = self.g2[i] - r2[i];
        }
        let ((b1, b2), iterations) =
            self.noise_plus_map_inverse((&r1, &r2), power, &sqrt_power, tol, warm)?;
        let mut back = vec![0.0; n];
        self.ks.adjoint(&b1, &b2, &mut back)?;
        Ok((back, iterations))
    }

    /// The score of one chain: `(s_u, s_k)` and the inner iterations.
    fn chain_score(
        &self,
        chain: &mut ChainState<P::Chain>,
        u: &[f64],
        k: &[f64],
        sigma: f64,
    ) -> Result<(Vec<f64>, Vec<f64>, usize)> {
        let sd = self.prior.sigma_d();
        let inv = 1.0 / (sigma * sigma);
        let sigma_kappa = sd * sigma;
        let (d, lin) = self.prior.denoise(u, k, sigma, &mut chain.prior)?;
        let mut su: Vec<f64> = d.u.iter().zip(u).map(|(d, u)| (d - u) * inv).collect();
        let mut sk: Vec<f64> = d.k.iter().zip(k).map(|(d, k)| (d - k) * inv).collect();
        let dkappa: Vec<f64> = d.k.iter().map(|v| v * sd).collect();
        // the map cotangent of the likelihood at D(x), kappa units
        let (back, iterations) = match self.guidance {
            Guidance::Annealed { c } => {
                let kappa: Vec<f64> = k.iter().map(|v| v * sd).collect();
                let k2 = c * sigma_kappa * sigma_kappa;
                let a = |w: &[f64]| w.iter().map(|w| w / (1.0 + k2 * w)).collect::<Vec<f64>>();
                let back = self.weighted_residual_back(&kappa, &a(&self.w1), &a(&self.w2))?;
                sk.iter_mut().zip(&back).for_each(|(s, b)| *s += sd * b);
                return Ok((su, sk, 0));
            }
            Guidance::Tweedie { inflate: false } => {
                (self.weighted_residual_back(&dkappa, &self.w1, &self.w2)?, 0)
            }
            Guidance::Tweedie { inflate: true } => {
                let power = self.power_at(&d.u)?;
                let v = inflated_tweedie_variance(self.prior.grid(), Some(&power), sigma_kappa);
                let a = |w: &[f64]| w.iter().map(|w| w / (1.0 + v * w)).collect::<Vec<f64>>();
                (
                    self.weighted_residual_back(&dkappa, &a(&self.w1), &a(&self.w2))?,
                    0,
                )
            }
            Guidance::Spectral { tol } => {
                let power = self.power_at(&d.u)?;
                let c = posterior_power_of(Some(&power), sigma_kappa);
                self.spectral_back(&dkappa, &c, tol, &mut chain.spectral)?
            }
        };
        let v_k: Vec<f64> = back.iter().map(|b| b * sd).collect();
        let (gu, gk) = self.prior.vjp(&lin, &vec![0.0; u.len()], &v_k)?;
        su.iter_mut().zip(&gu).for_each(|(s, g)| *s += g);
        sk.iter_mut().zip(&gk).for_each(|(s, g)| *s += g);
        Ok((su, sk, iterations))
    }

    /// The prior's Gaussian power at `u` (convergence units).
    fn power_at(&self, u: &[f64]) -> Result<Vec<f64>> {
        self.prior.gaussian_power(u)?.ok_or_else(|| {
            Error::invalid(
                "guidance",
                format!(
                    "{} guidance needs a joint prior with a Gaussian power model",
                    self.guidance.name()
                ),
            )
        })
    }
}

impl<P: JointPrior> Model for JointGuidedPosterior<'_, P> {
    fn grid(&self) -> &Grid {
        self.prior.grid()
    }

    /// `max(1, sqrt(max S))` of the map's prior power at the prior mean, joint units.
    fn prior_scale(&self) -> f64 {
        self.prior_scale
    }

    fn sigma_max(&self) -> Option<f64> {
        self.prior.sigma_max()
    }

    /// The reduced shear chi² of each final map (joint units in, `kappa =
    /// sigma_d k`).
    fn chi2(&self, maps: &[f32]) -> Result<Vec<f64>> {
        let sd = self.prior.sigma_d() as f32;
        let kappa: Vec<f32> = maps.iter().map(|v| v * sd).collect();
        shear_chi2(&self.ks32, self.data, &kappa)
    }

    fn on_cpu(&self, _be: &Cpu) -> Result<Box<dyn Target<Cpu> + '_>> {
        Ok(Box::new(JointGuidedTarget {
            model: self,
            chains: Vec::new(),
        }))
    }
}

/// Two shear components.
type ShearPair = (Vec<f64>, Vec<f64>);

/// Per-chain state: the prior's warm start and the spectral solve's last `y`.
struct ChainState<C> {
    prior: C,
    spectral: Option<Vec<f64>>,
}

impl<C: Default> Default for ChainState<C> {
    fn default() -> Self {
        ChainState {
            prior: C::default(),
            spectral: None,
        }
    }
}

/// The model on the CPU (per-chain state reset per batch).
struct JointGuidedTarget<'m, 'a, P: JointPrior> {
    model: &'m JointGuidedPosterior<'a, P>,
    chains: Vec<ChainState<P::Chain>>,
}

impl<P: JointPrior> Target<Cpu> for JointGuidedTarget<'_, '_, P> {
    fn param_len(&self) -> usize {
        self.model.prior.space().len()
    }

    fn begin_batch(&mut self, _be: &Cpu, chains: usize) -> Result<()> {
        self.chains = (0..chains).map(|_| ChainState::default()).collect();
        Ok(())
    }

    fn score(
        &mut self,
        _be: &Cpu,
        x: &State<Cpu>,
        sigma: f64,
        out: &mut State<Cpu>,
    ) -> Result<ScoreStats> {
        if self.chains.len() != x.chains() {
            self.chains = (0..x.chains()).map(|_| ChainState::default()).collect();
        }
        let model = self.model;
        let inner = x.score_chains(out, &mut self.chains, |chain, u, k| {
            model.chain_score(chain, u, k, sigma)
        })?;
        Ok(ScoreStats {
            inner_iterations: inner,
        })
    }

    /// A draw from the diffused prior's Gaussian approximation at `sigma_max`:
    /// `u = sqrt(1 + sigma²) z_u`, `k = F^{-1}[sqrt(S(0) + sigma²) F z_k]` with
    /// the map's power at the prior mean (`sigma z_k` without a Gaussian
    /// model). The neglected spread of `S(u)` over the prior is `O(S /
    /// sigma²)` of the draw's variance, below 1/400 at the default `sigma_max`.
    fn initial(&self, _be: &Cpu, sigma_max: f64, z: &mut State<Cpu>) -> Result<()> {
        let g = *self.model.grid();
        let n = g.len();
        let s2 = sigma_max * sigma_max;
        match &self.model.power0 {
            Some(power) => {
                let fft = self.model.ks.fft();
                z.maps.par_chunks_mut(n).for_each(|m| {
                    let x: Vec<f64> = m.iter().map(|&v| v as f64).collect();
                    let mut spec = vec![Complex::new(0.0, 0.0); g.spectral_len()];
                    fft.forward(&x, &mut spec);
                    for (s, p) in spec.iter_mut().zip(power) {
                        *s *= (p + s2).sqrt();
                    }
                    let mut y = vec![0.0; n];
                    fft.inverse(&spec, &mut y);
                    m.iter_mut().zip(&y).for_each(|(o, y)| *o = *y as f32);
                });
            }
            None => z
                .maps
                .iter_mut()
                .for_each(|v| *v = (*v as f64 * sigma_max) as f32),
        }
        if let Some(params) = &mut z.params {
            let f = (1.0 + s2).sqrt();
            params.iter_mut().for_each(|v| *v = (*v as f64 * f) as f32);
        }
        Ok(())
    }

    fn start_hmc(&self, be: &Cpu, sigma0: f64, x: &mut State<Cpu>) -> Result<()> {
        self.initial(be, sigma0, x)
    }
}

/// An integrator's settings on the joint state, where they differ from the
/// map's (docs/joint.md, the oracle's integrator table): Euler–Maruyama
/// takes 2000 levels by default (its first-order error on `omega_c`'s mean
/// falls as 1/levels: 0.49 posterior sd with 500, 0.22 with 2000), and
/// predictor–corrector an SNR of 0.08 and 1000 levels (at SNR 0.16 its
/// Langevin corrector's error does not fall with the levels). The others are
/// unchanged. Returns the integrator and its default number of levels.
pub fn joint_defaults(kind: SamplerKind) -> (SamplerKind, usize) {
    match kind {
        SamplerKind::EulerMaruyama => (kind, 2000),
        SamplerKind::PredictorCorrector {
            corrector_steps, ..
        } => (
            SamplerKind::PredictorCorrector {
                snr: 0.08,
                corrector_steps,
            },
            1000,
        ),
        other => (other, other.default_levels()),
    }
}

/// A joint run in physical units ([`to_physical`]).
#[derive(Clone, Debug)]
pub struct PhysicalJoint {
    /// Parameters `theta = mu + s u` per chain, `[chains][p]`.
    pub theta: Vec<f64>,
    /// Per-pixel moments of the convergence maps `kappa = sigma_d k`.
    pub moments: Moments,
}

/// Converts a joint run from joint units to physical ones: the parameters
/// `theta = mu + s u` of each chain, the maps `kappa = sigma_d k` in place
/// (f32), and their moments: those of the joint-unit maps (or `merged`, the
/// moments a distributed run merged over its ranks) scaled by `sigma_d` in
/// f64, so that they are bitwise the same whatever the number of ranks.
pub fn to_physical(
    space: &ParamSpace,
    sigma_d: f64,
    set: &mut SampleSet,
    merged: Option<&Moments>,
) -> Result<PhysicalJoint> {
    let p = space.len();
    // a rank of a distributed run may hold no chain (and then no parameters)
    let u: &[f32] = match (&set.params, set.chains()) {
        (Some(u), _) => u,
        (None, 0) => &[],
        (None, _) => return Err(Error::invalid("joint", "the run returned no parameters")),
    };
    if u.len() != p * set.chains() {
        return Err(Error::invalid(
            "joint",
            format!(
                "{} parameter values for {} chains of {p} parameters",
                u.len(),
                set.chains()
            ),
        ));
    }
    let theta = u
        .chunks(p)
        .flat_map(|c| space.theta(&c.iter().map(|&v| v as f64).collect::<Vec<f64>>()))
        .collect();
    let moments = match merged {
        Some(m) => m.scaled(sigma_d),
        None => set.moments().scaled(sigma_d),
    };
    let sd = sigma_d as f32;
    set.samples.iter_mut().for_each(|v| *v *= sd);
    Ok(PhysicalJoint { theta, moments })
}
