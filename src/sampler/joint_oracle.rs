//! The exact joint posterior of parameters and map for a Gaussian field
//! observed on the convergence (`y = kappa + e`, white noise, no mask): the
//! sampler model whose score is `(D(x_sigma) - x_sigma) / sigma²` with `D`
//! the exact joint *posterior* denoiser of [`GaussianJoint`]. Every
//! integrator run on it should reproduce `p(theta, kappa | y)`, which is
//! known on a grid ([`JointGaussianPosterior::reference`]): the oracle of
//! issue #15.
//!
//! The state is in joint units: params `u = (theta - mu)/s`, maps `k =
//! kappa / sigma_d` ([`crate::prior::joint`]).

use num_complex::Complex;
use rayon::prelude::*;

use super::engine::{Model, Target};
use super::posterior::ScoreStats;
use super::state::State;
use super::ShearData;
use crate::backend::cpu::Cpu;
use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::lensing::KaiserSquires;
use crate::noise::NoiseModel;
use crate::prior::joint::gaussian::{GaussianJoint, Quad};
use crate::prior::joint::quadrature::Gauss;
use crate::rng::{Philox, Stream};

/// The oracle problem of docs/joint.md observed in shear: the joint
/// Gaussian prior of the sbi_lens parameters ([`GaussianJoint::sbi_lens`])
/// on an odd `side²` grid, a Gaussian field drawn at the truth `u = 0`
/// (`omega_c = 0.3`, `sigma8 = 0.8`) from `seed`, its shear with white noise
/// of the sbi_lens level per component. On an odd grid `P^T P = 1` on every
/// non-zero mode, so the shear is exactly the convergence observation `y =
/// E(gamma)` with white noise of the same std, whose exact posterior
/// ([`JointGaussianPosterior`] of `posterior`) is the reference for guided
/// sampling with `prior`.
pub struct ShearOracle {
    /// The joint prior.
    pub prior: GaussianJoint,
    /// The same prior conditioned on `y` (the joint posterior denoiser).
    pub posterior: GaussianJoint,
    /// The shear and its noise model.
    pub data: ShearData,
    /// `y = E(gamma)`, convergence units.
    pub y: Vec<f64>,
    /// The noise std per pixel and component.
    pub noise: f64,
}

impl ShearOracle {
    /// The problem on a `side²` grid (odd `side`) from `seed`.
    pub fn sbi_lens(side: usize, seed: u64) -> Result<Self> {
        if side.is_multiple_of(2) {
            return Err(Error::invalid(
                "side",
                format!("the shear oracle needs an odd side (P^T P = 1 on every mode), got {side}"),
            ));
        }
        let prior = GaussianJoint::sbi_lens(side)?;
        let g = *prior.rings().grid();
        let sd = prior.sigma_d();
        let power: Vec<f64> = prior
            .prior_power(&[0.0, 0.0])?
            .iter()
            .map(|p| p / (sd * sd))
            .collect();
        let k = crate::fields::gaussian_fields(&g, &power, seed, 0, 1)?;
        let kappa: Vec<f64> = k.iter().map(|v| *v as f64 * sd).collect();
        let noise = crate::fields::sbi_lens::noise_sigma();
        let ks = KaiserSquires::<f64>::new(g);
        let n = g.len();
        let (mut g1, mut g2) = (vec![0.0; n], vec![0.0; n]);
        ks.forward(&kappa, &mut g1, &mut g2)?;
        let mut e = vec![0.0f64; 2 * n];
        Philox::new(seed, Stream::ShapeNoise, 0, 0).fill_normal_f64(&mut e);
        for i in 0..n {
            g1[i] += noise * e[i];
            g2[i] += noise * e[n + i];
        }
        let (mut y, mut b) = (vec![0.0; n], vec![0.0; n]);
        ks.inverse_eb(&g1, &g2, &mut y, &mut b)?;
        let posterior = prior.clone().with_observation(&y, noise)?;
        let data = ShearData::new(
            g1.iter().map(|&v| v as f32).collect(),
            g2.iter().map(|&v| v as f32).collect(),
            NoiseModel::uniform(g, noise, None)?,
        )?;
        Ok(ShearOracle {
            prior,
            posterior,
            data,
            y,
            noise,
        })
    }

    /// The exact posterior as a sampler model.
    pub fn exact(&self) -> Result<JointGaussianPosterior<'_>> {
        JointGaussianPosterior::new(&self.posterior, &self.y, self.noise)
    }
}

/// Moments of `p(theta, kappa | y)` from a brute-force quadrature over `u`.
#[derive(Debug, Clone)]
pub struct JointReference {
    /// `E[u | y]`.
    pub u_mean: Vec<f64>,
    /// `Cov[u | y]`, `p x p`.
    pub u_cov: Vec<f64>,
    /// `E[F k | y]` per half-spectrum mode (unnormalised FFT of the map, joint units).
    pub k_mean_spec: Vec<Complex<f64>>,
    /// `Var[F k / sqrt(N) | y]` per ring (joint units): `E_u[V_u] + Var_u(m_u)`
    /// with `m_u` the Wiener mean of each mode (its ring average of `|Y'|²` used
    /// for the spread of the means).
    pub k_var_ring: Vec<f64>,
}

/// The exact joint posterior as a sampler model ([module docs](self)).
pub struct JointGaussianPosterior<'a> {
    joint: &'a GaussianJoint,
    noise_std: f64,
    y: Vec<f64>,
    /// Mean and variance per half-spectrum mode of `F k / sqrt(N)` under
    /// the posterior, for the start at `sigma_max`.
    start_mean: Vec<Complex<f64>>,
    start_var: Vec<f64>,
    u_mean: Vec<f64>,
    u_var: Vec<f64>,
    prior_scale: f64,
}

/// Chains' parameter statistics against a [`JointReference`], in the
/// reference's units ([`JointReference::compare_params`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ParamComparison {
    /// Per parameter: `(chain mean - E[u | y]) / sd`.
    pub mean_error: Vec<f64>,
    /// Per parameter: chain std over the exact sd.
    pub std_ratio: Vec<f64>,
    /// The chains' correlation of parameters 0 and 1 (NaN with one parameter).
    pub correlation: f64,
    /// The exact correlation of parameters 0 and 1 (NaN with one parameter).
    pub exact_correlation: f64,
}

impl JointReference {
    /// The statistics of chains `u [chains][p]` (joint units, at least two
    /// chains) against this reference.
    pub fn compare_params(&self, u: &[f32]) -> Result<ParamComparison> {
        let p = self.u_mean.len();
        if p == 0 || !u.len().is_multiple_of(p) || u.len() / p < 2 {
            return Err(Error::invalid(
                "params",
                format!(
                    "need at least 2 chains of {p} parameters, got {} values",
                    u.len()
                ),
            ));
        }
        let n = (u.len() / p) as f64;
        let m: Vec<f64> = (0..p)
            .map(|d| u.iter().skip(d).step_by(p).map(|&v| v as f64).sum::<f64>() / n)
            .collect();
        let cov = |a: usize, b: usize| {
            u.chunks(p)
                .map(|c| (c[a] as f64 - m[a]) * (c[b] as f64 - m[b]))
                .sum::<f64>()
                / (n - 1.0)
        };
        let sd: Vec<f64> = (0..p).map(|d| self.u_cov[d * p + d].sqrt()).collect();
        let s: Vec<f64> = (0..p).map(|d| cov(d, d).sqrt()).collect();
        let (correlation, exact_correlation) = if p > 1 {
            (cov(0, 1) / (s[0] * s[1]), self.u_cov[1] / (sd[0] * sd[1]))
        } else {
            (f64::NAN, f64::NAN)
        };
        Ok(ParamComparison {
            mean_error: (0..p).map(|d| (m[d] - self.u_mean[d]) / sd[d]).collect(),
            std_ratio: (0..p).map(|d| s[d] / sd[d]).collect(),
            correlation,
            exact_correlation,
        })
    }
}

impl<'a> JointGaussianPosterior<'a> {
    /// `joint` must carry its observation ([`GaussianJoint::with_observation`]);
    /// `y_kappa` and `noise_std` are the same observation in convergence
    /// units (for chi²).
    pub fn new(joint: &'a GaussianJoint, y_kappa: &[f64], noise_std: f64) -> Result<Self> {
        if joint.observation().is_none() {
            return Err(Error::invalid(
                "joint",
                "the joint posterior needs a denoiser with an observation",
            ));
        }
        let r = Self::moments(joint, Quad::Adaptive(Default::default()))?;
        let rings = joint.rings();
        let g = *rings.grid();
        let n = g.len() as f64;
        let start_mean = r.k_mean_spec.iter().map(|v| v / n.sqrt()).collect();
        let start_var = rings.expand(&r.k_var_ring)?;
        let p = r.u_mean.len();
        let u_var = (0..p).map(|d| r.u_cov[d * p + d]).collect();
        // largest prior mode power in joint units, at the prior mean
        let mut ln_s = vec![0.0; rings.len()];
        joint.table().ln_power(&vec![0.0; p], &mut ln_s)?;
        let s_max =
            ln_s.iter().copied().fold(f64::NEG_INFINITY, f64::max).exp() / joint.sigma_d().powi(2);
        Ok(JointGaussianPosterior {
            joint,
            noise_std,
            y: y_kappa.to_vec(),
            start_mean,
            start_var,
            u_mean: r.u_mean,
            u_var,
            prior_scale: s_max.sqrt().max(1.0),
        })
    }

    /// The reference moments by a brute-force Simpson grid of `points` per
    /// parameter (two stages, [`Quad::Grid`]).
    pub fn reference(&self, points: usize) -> Result<JointReference> {
        Self::moments(
            self.joint,
            Quad::Grid {
                points,
                half_width: 10.0,
            },
        )
    }

    fn moments(joint: &GaussianJoint, quad: Quad) -> Result<JointReference> {
        let q = joint.theta_posterior(quad)?;
        let rings = joint.rings();
        let nr = rings.len();
        let (spec, nu) = joint
            .observation()
            .ok_or_else(|| Error::invalid("joint", "no observation"))?;
        let _ = nu;
        // per ring: E[w], E[w²], E[V] with w = S/(S+nu) the Wiener factor
        let (mut w1, mut w2, mut v) = (vec![0.0; nr], vec![0.0; nr], vec![0.0; nr]);
        for (wt, pay) in q.weights.iter().zip(&q.payloads) {
            for r in 0..nr {
                w1[r] += wt * pay[r];
                w2[r] += wt * pay[r] * pay[r];
                v[r] += wt * pay[nr + r];
            }
        }
        let k_mean_spec = spec
            .iter()
            .enumerate()
            .map(|(m, y)| {
                rings
                    .ring_of(m)
                    .map_or(Complex::new(0.0, 0.0), |r| y * w1[r])
            })
            .collect();
        // Var_u(w Y') = Var(w) |Y'|²: per ring with the ring's mean |Y'|²
        let b = rings.cross(spec, spec)?;
        let k_var_ring = (0..nr)
            .map(|r| v[r] + (w2[r] - w1[r] * w1[r]) * b[r] / rings.counts()[r])
            .collect();
        Ok(JointReference {
            u_mean: q.mean(),
            u_cov: q.covariance(),
            k_mean_spec,
            k_var_ring,
        })
    }

    /// The denoiser.
    pub fn joint(&self) -> &GaussianJoint {
        self.joint
    }
}

impl Model for JointGaussianPosterior<'_> {
    fn grid(&self) -> &Grid {
        self.joint.rings().grid()
    }

    fn prior_scale(&self) -> f64 {
        self.prior_scale
    }

    /// `sum (y - kappa)² / noise² / N` per map (maps in joint units).
    fn chi2(&self, maps: &[f32]) -> Result<Vec<f64>> {
        let n = self.y.len();
        let sd = self.joint.sigma_d();
        Ok(maps
            .chunks(n)
            .map(|m| {
                m.iter()
                    .zip(&self.y)
                    .map(|(k, y)| ((y - sd * *k as f64) / self.noise_std).powi(2))
                    .sum::<f64>()
                    / n as f64
            })
            .collect())
    }

    fn on_cpu(&self, _be: &Cpu) -> Result<Box<dyn Target<Cpu> + '_>> {
        Ok(Box::new(JointOracleTarget {
            model: self,
            warm: Vec::new(),
        }))
    }
}

/// The model on the CPU, with each chain's last posterior of `u` as the
/// quadrature's warm start (reset per batch).
struct JointOracleTarget<'m, 'a> {
    model: &'m JointGaussianPosterior<'a>,
    warm: Vec<Option<Gauss>>,
}

impl Target<Cpu> for JointOracleTarget<'_, '_> {
    fn param_len(&self) -> usize {
        self.model.u_mean.len()
    }

    fn begin_batch(&mut self, _be: &Cpu, chains: usize) -> Result<()> {
        self.warm = vec![None; chains];
        Ok(())
    }

    fn score(
        &mut self,
        _be: &Cpu,
        x: &State<Cpu>,
        sigma: f64,
        out: &mut State<Cpu>,
    ) -> Result<ScoreStats> {
        let inv = 1.0 / (sigma * sigma);
        if self.warm.len() != x.chains() {
            self.warm = vec![None; x.chains()];
        }
        let joint = self.model.joint;
        x.score_chains(out, &mut self.warm, |warm, u, k| {
            let d = joint.denoise_warm(u, k, sigma, warm)?;
            let su = d.u.iter().zip(u).map(|(d, u)| (d - u) * inv).collect();
            let sk = d.k.iter().zip(k).map(|(d, k)| (d - k) * inv).collect();
            Ok((su, sk, 0))
        })?;
        Ok(ScoreStats::default())
    }

    /// The posterior's Gaussian approximation at `sigma_max` (exact moments,
    /// per-mode and per-parameter independent): `m + sqrt(V + sigma²) z`. At
    /// the default `sigma_max` (20 prior scales) the neglected non-Gaussianity
    /// and correlations are `O(V / sigma²) < 1/400` of the spread.
    fn initial(&self, _be: &Cpu, sigma_max: f64, z: &mut State<Cpu>) -> Result<()> {
        let g = *self.model.grid();
        let n = g.len();
        let fft = crate::fft::Fft2::<f64>::new(g.nx, g.ny);
        let s2 = sigma_max * sigma_max;
        let sqrt_n = (n as f64).sqrt();
        z.maps.par_chunks_mut(n).for_each(|m| {
            let x: Vec<f64> = m.iter().map(|&v| v as f64).collect();
            let mut spec = vec![Complex::new(0.0, 0.0); g.spectral_len()];
            fft.forward(&x, &mut spec);
            for ((s, mean), var) in spec
                .iter_mut()
                .zip(&self.model.start_mean)
                .zip(&self.model.start_var)
            {
                *s = *s * (var + s2).sqrt() + mean * sqrt_n;
            }
            let mut y = vec![0.0; n];
            fft.inverse(&spec, &mut y);
            m.iter_mut().zip(&y).for_each(|(o, y)| *o = *y as f32);
        });
        if let Some(params) = &mut z.params {
            let p = self.model.u_mean.len();
            for c in params.chunks_mut(p) {
                for ((v, m), var) in c.iter_mut().zip(&self.model.u_mean).zip(&self.model.u_var) {
                    *v = (m + (var + s2).sqrt() * *v as f64) as f32;
                }
            }
        }
        Ok(())
    }

    fn start_hmc(&self, be: &Cpu, sigma0: f64, x: &mut State<Cpu>) -> Result<()> {
        self.initial(be, sigma0, x)
    }
}
