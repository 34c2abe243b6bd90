//! The exact Gaussian joint denoiser: `theta ~ N(mu, diag(s²))`, `kappa |
//! theta` a Gaussian field of pixel power `S_theta` ([`SpectrumTable`]), in
//! the joint units `x = (u, k)` of [`super`] (`S` below is in `k` units,
//! `S_kappa / sigma_d²`).
//!
//! Given `x_sigma = (u_sigma, k_sigma)`, and optionally an observation `y = k
//! + e` with white noise `e` of pixel variance `nu` ([`Observation`]),
//!
//! `p(u | x_sigma, y) ∝ N(u; 0, I) N(u_sigma; u, sigma² I) prod_r L_r(u)`,
//!
//! per ring `r` ([`super::rings`], statistics `a_r = sum h |K'|²`, `b_r =
//! sum h |Y'|²`, `c_r = sum h Re(K' conj Y')`, dof `n_r`):
//!
//! - without data: `ln L_r = -1/2 [n_r ln(S + sigma²) + a_r / (S + sigma²)]`;
//! - with data: `ln L_r = -1/2 [n_r ln det + ((S + nu) a_r - 2 S c_r + (S +
//!   sigma²) b_r) / det]`, `det = S (sigma² + nu) + sigma² nu` (the 2x2
//!   covariance of `(K', Y')` given `theta`).
//!
//! For fixed `theta` the map's conditional mean is the Wiener filter, per mode
//! `S / (S + sigma²) K` without data and `(S nu K + S sigma² Y) / det` with;
//! the denoiser is `u* = E[u]` and `k*` the `theta`-weighted average of those
//! filters: `D(x_sigma) = E[(u, k) | x_sigma (, y)]`, exactly, up to the
//! quadrature over `u` ([`super::quadrature`]), which is adaptive
//! Gauss–Hermite by default and is checked against a brute-force grid in the
//! tests.

use num_complex::Complex;

use super::quadrature::{self, AdaptiveOptions, Gauss, Quadrature};
use super::rings::Rings;
use super::table::SpectrumTable;
use super::{JointPrior, ParamSpace};
use crate::cosmo::limber::ClOptions;
use crate::error::{Error, Result};
use crate::fft::Fft2;
use crate::grid::Grid;
use crate::vmath;

/// An observation of the convergence, `y = kappa + e`, white noise of pixel
/// std `noise_std`, no mask (the Fourier-diagonal case), in joint units.
#[derive(Debug, Clone)]
pub struct Observation {
    /// `F (y / sigma_d)`.
    spec: Vec<Complex<f64>>,
    /// `b_r`.
    b: Vec<f64>,
    /// `nu = (noise_std / sigma_d)²`.
    nu: f64,
}

/// How the `u` integral is done.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quad {
    /// Adaptive Gauss–Hermite (the default).
    Adaptive(AdaptiveOptions),
    /// The brute-force reference: a Simpson grid of `points` per dimension
    /// over `±half_width` standard deviations of the Gaussian part `N(u; 0, I)
    /// N(u_sigma; u, sigma²)`, then a second one over `±half_width` standard
    /// deviations of the first grid's posterior around its mean.
    Grid {
        /// Nodes per dimension (odd).
        points: usize,
        /// Half width in standard deviations.
        half_width: f64,
    },
}

/// What the prior denoiser's VJP needs at one point
/// ([`GaussianJoint::denoise_linearised`]).
#[derive(Debug, Clone)]
pub struct Linearisation {
    sigma: f64,
    /// `F k_sigma`.
    k_spec: Vec<Complex<f64>>,
    /// `E[u | x_sigma]`.
    u_mean: Vec<f64>,
    /// `E[w_r]` per ring.
    wiener_mean: Vec<f64>,
    /// Nodes, weights and per-node filter factors (`w_r` first).
    quadrature: Quadrature<Vec<f64>>,
}

/// A denoised joint state.
#[derive(Debug, Clone)]
pub struct JointDenoised {
    /// `u* = E[u | ...]`.
    pub u: Vec<f64>,
    /// `Cov[u | ...]` (`p x p`): the quadrature's; for a learned denoiser,
    /// its Gaussian part's (empty for a pure network).
    pub u_cov: Vec<f64>,
    /// `k* = E[k | ...]`, the map.
    pub k: Vec<f64>,
    /// Quadrature passes.
    pub passes: usize,
}

/// The exact Gaussian joint denoiser ([module docs](self)).
#[derive(Debug, Clone)]
pub struct GaussianJoint {
    table: SpectrumTable,
    rings: Rings,
    sigma_d: f64,
    fft: std::sync::Arc<Fft2<f64>>,
    obs: Option<Observation>,
    quad: Quad,
}

impl GaussianJoint {
    /// The prior of `table` on the grid of `rings`, maps in units of
    /// `sigma_d` (> 0).
    pub fn new(table: SpectrumTable, rings: Rings, sigma_d: f64) -> Result<Self> {
        if !(sigma_d.is_finite() && sigma_d > 0.0) {
            return Err(Error::invalid(
                "sigma_d",
                format!("must be positive and finite, got {sigma_d}"),
            ));
        }
        if table.rings() != rings.len() {
            return Err(Error::shape(
                "spectrum table rings",
                rings.len(),
                table.rings(),
            ));
        }
        let g = *rings.grid();
        Ok(GaussianJoint {
            table,
            rings,
            sigma_d,
            fft: std::sync::Arc::new(Fft2::new(g.nx, g.ny)),
            obs: None,
            quad: Quad::Adaptive(AdaptiveOptions::default()),
        })
    }

    /// The joint Gaussian prior of the sbi_lens parameters on a `side²` grid
    /// of the sbi_lens pixel (2.34375'): the sbi_lens source and fixed
    /// parameters, `(omega_c, sigma8)` with its priors ([`ParamSpace::sbi_lens`]),
    /// spectra from cosmology ([`SpectrumTable::cosmology`], default
    /// [`ClOptions`]), `sigma_d` the prior pixel std at the prior mean. The
    /// oracle problem of docs/joint.md (`side = 64`).
    pub fn sbi_lens(side: usize) -> Result<Self> {
        use crate::fields::sbi_lens;
        let grid = Grid::square(side, sbi_lens::PIXEL_ARCMIN)?;
        let space = ParamSpace::sbi_lens();
        let base = sbi_lens::cosmology(space.mean()[0], space.mean()[1])?;
        GaussianJoint::from_cosmology(
            &grid,
            &space,
            &base,
            &sbi_lens::source()?,
            &ClOptions::default(),
        )
    }

    /// The joint Gaussian prior of the parameters of `space` on `grid`:
    /// spectra from cosmology ([`SpectrumTable::cosmology`]; the parameters
    /// not in `space` fixed at `base`'s values), `sigma_d` the prior pixel
    /// std at the prior mean.
    pub fn from_cosmology(
        grid: &Grid,
        space: &ParamSpace,
        base: &crate::cosmo::Cosmology,
        source: &crate::cosmo::nz::SourceBin,
        opts: &ClOptions,
    ) -> Result<Self> {
        let rings = Rings::new(grid);
        let table = SpectrumTable::cosmology(space, &rings, base, source, opts)?;
        let mut ln_s = vec![0.0; rings.len()];
        table.ln_power(&vec![0.0; space.len()], &mut ln_s)?;
        let var = ln_s
            .iter()
            .zip(rings.counts())
            .map(|(l, n)| n * l.exp())
            .sum::<f64>()
            / grid.len() as f64;
        GaussianJoint::new(table, rings, var.sqrt())
    }

    /// The prior pixel power of the map at `u`, half spectrum, convergence
    /// units (0 at the zero mode).
    pub fn prior_power(&self, u: &[f64]) -> Result<Vec<f64>> {
        let mut ln_s = vec![0.0; self.rings.len()];
        self.table.ln_power(u, &mut ln_s)?;
        let s: Vec<f64> = ln_s.iter().map(|l| l.exp()).collect();
        self.rings.expand(&s)
    }

    /// The same prior conditioned on `y_kappa` (a map of the grid, convergence
    /// units) with white noise of pixel std `noise_std`: the joint
    /// *posterior* denoiser.
    pub fn with_observation(mut self, y_kappa: &[f64], noise_std: f64) -> Result<Self> {
        let g = *self.rings.grid();
        crate::error::check_len("y", y_kappa, g.len())?;
        if !(noise_std.is_finite() && noise_std > 0.0) {
            return Err(Error::invalid(
                "noise_std",
                format!("must be positive and finite, got {noise_std}"),
            ));
        }
        if y_kappa.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid("y", "the observation has non-finite pixels"));
        }
        let y: Vec<f64> = y_kappa.iter().map(|v| v / self.sigma_d).collect();
        let mut spec = vec![Complex::new(0.0, 0.0); g.spectral_len()];
        self.fft.forward(&y, &mut spec);
        let b = self.rings.cross_unchecked(&spec, &spec);
        let nu = (noise_std / self.sigma_d).powi(2);
        self.obs = Some(Observation { spec, b, nu });
        Ok(self)
    }

    /// The same denoiser with another quadrature.
    pub fn with_quadrature(mut self, quad: Quad) -> Self {
        self.quad = quad;
        self
    }

    /// The data scale `sigma_d`.
    pub fn sigma_d(&self) -> f64 {
        self.sigma_d
    }

    /// The rings.
    pub fn rings(&self) -> &Rings {
        &self.rings
    }

    /// The spectrum table.
    pub fn table(&self) -> &SpectrumTable {
        &self.table
    }

    /// `D(x_sigma)` for one chain: `u_s` the parameters, `k_s` the map (joint
    /// units), `sigma > 0`.
    pub fn denoise(&self, u_s: &[f64], k_s: &[f64], sigma: f64) -> Result<JointDenoised> {
        self.denoise_warm(u_s, k_s, sigma, &mut None)
    }

    /// [`GaussianJoint::denoise`] with a warm start: where `warm` holds a
    /// Gaussian (the previous call's posterior of `u`, e.g. the previous
    /// noise level of the same chain) the adaptive quadrature starts there
    /// instead of at the Laplace approximation; `warm` is set to this call's
    /// posterior. The result differs from a cold start by the quadrature
    /// error only (below 1e-4 posterior sd, tested).
    pub fn denoise_warm(
        &self,
        u_s: &[f64],
        k_s: &[f64],
        sigma: f64,
        warm: &mut Option<Gauss>,
    ) -> Result<JointDenoised> {
        Ok(self.denoise_at(u_s, k_s, sigma, warm, false)?.0)
    }

    /// [`GaussianJoint::denoise_warm`], and what [`GaussianJoint::vjp`] needs
    /// at the same point (the quadrature's nodes, weights and filter factors).
    pub fn denoise_linearised(
        &self,
        u_s: &[f64],
        k_s: &[f64],
        sigma: f64,
        warm: &mut Option<Gauss>,
    ) -> Result<(JointDenoised, Linearisation)> {
        let (d, lin) = self.denoise_at(u_s, k_s, sigma, warm, true)?;
        let lin = lin.ok_or_else(|| Error::invalid("joint", "no linearisation"))?;
        Ok((d, lin))
    }

    /// The denoiser, and its linearisation when `linearise` (the quadrature
    /// kept, the map's spectrum copied), else none.
    fn denoise_at(
        &self,
        u_s: &[f64],
        k_s: &[f64],
        sigma: f64,
        warm: &mut Option<Gauss>,
        linearise: bool,
    ) -> Result<(JointDenoised, Option<Linearisation>)> {
        let p = self.table.space().len();
        let g = *self.rings.grid();
        crate::error::check_len("u", u_s, p)?;
        crate::error::check_len("k", k_s, g.len())?;
        if !(sigma.is_finite() && sigma > 0.0) {
            return Err(Error::invalid(
                "sigma",
                format!("must be positive and finite, got {sigma}"),
            ));
        }
        crate::error::check_finite("u", u_s)?;
        crate::error::check_finite("k", k_s)?;
        let mut spec = vec![Complex::new(0.0, 0.0); g.spectral_len()];
        self.fft.forward(k_s, &mut spec);
        let a = self.rings.cross_unchecked(&spec, &spec);
        let c = self
            .obs
            .as_ref()
            .map(|o| self.rings.cross_unchecked(&spec, &o.spec));
        let s2 = sigma * sigma;
        let nr = self.rings.len();
        let mut ln_s = vec![0.0; nr];
        let mut f = |u: &[f64]| {
            self.table.ln_power_unchecked(u, &mut ln_s);
            let (l, fac) = self.ring_terms(&ln_s, s2, &a, c.as_deref());
            let gauss: f64 = u
                .iter()
                .zip(u_s)
                .map(|(u, us)| -0.5 * u * u - (u - us).powi(2) / (2.0 * s2))
                .sum();
            (gauss + l, fac)
        };
        // the Gaussian part N(u; 0, I) N(u_s; u, sigma²)
        let centre: Vec<f64> = u_s.iter().map(|v| v / (1.0 + s2)).collect();
        let sd = (s2 / (1.0 + s2)).sqrt();
        let q = match self.quad {
            Quad::Adaptive(opts) => {
                let start = match warm.take() {
                    Some(g) if g.mean.len() == p => g,
                    _ => quadrature::laplace(&Gauss::diagonal(centre, &vec![sd; p]), &mut f),
                };
                quadrature::adaptive(&start, &opts, &mut f)?
            }
            Quad::Grid { points, half_width } => {
                let coarse = quadrature::grid(&centre, &vec![half_width * sd; p], points, &mut f)?;
                let cov = coarse.covariance();
                let widths: Vec<f64> = (0..p).map(|d| half_width * cov[d * p + d].sqrt()).collect();
                quadrature::grid(&coarse.mean(), &widths, points, &mut f)?
            }
        };
        let fac = weighted_payload(&q, 2 * nr);
        let k_spec = linearise.then(|| spec.clone());
        for (m, s) in spec.iter_mut().enumerate() {
            *s = match self.rings.ring_of(m) {
                None => Complex::new(0.0, 0.0),
                Some(r) => {
                    let y = self
                        .obs
                        .as_ref()
                        .map_or(Complex::new(0.0, 0.0), |o| o.spec[m]);
                    *s * fac[r] + y * fac[nr + r]
                }
            };
        }
        let mut k = vec![0.0; g.len()];
        self.fft.inverse(&spec, &mut k);
        let (u, u_cov) = (q.mean(), q.covariance());
        *warm = Gauss::from_covariance(u.clone(), &u_cov);
        let passes = q.passes;
        let lin = k_spec.map(|k_spec| Linearisation {
            sigma,
            k_spec,
            u_mean: u.clone(),
            wiener_mean: fac[..nr].to_vec(),
            quadrature: q,
        });
        Ok((
            JointDenoised {
                u,
                u_cov,
                k,
                passes,
            },
            lin,
        ))
    }

    /// The vector–Jacobian product of the prior denoiser (no observation) at
    /// the point of `lin`: `(g_u, g_k) = J_D^T (v_u, v_k)`, exact up to the
    /// quadrature. With `g(u) = v_u . u + sum_r w_r(u) c_r`, the Wiener factor
    /// `w_r = S_r / (S_r + sigma²)`, `c_r = sum_{m in r} h_m Re(V'_m conj
    /// K'_m)` (`V' = F v_k / sqrt(N)`), and `Cov` under `p(u | x_sigma)`:
    ///
    /// ```text
    /// g_u  = Cov(g, u) / sigma²
    /// G'_m = E[w_r] V'_m + Cov(g, w_r) / sigma² K'_m      (m in ring r; 0 at the zero mode)
    /// ```
    ///
    /// (`d ln p(u | x_sigma) / d u_sigma = (u - u_sigma) / sigma²`, `d ln p /
    /// d k = -F^{-1}[K / (S + sigma²)]` and `1 / (S + sigma²) = (1 - w) /
    /// sigma²`; docs/joint.md.)
    pub fn vjp(
        &self,
        lin: &Linearisation,
        v_u: &[f64],
        v_k: &[f64],
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        if self.obs.is_some() {
            return Err(Error::invalid(
                "joint",
                "the vector-Jacobian product is that of the prior denoiser (no observation)",
            ));
        }
        let p = lin.u_mean.len();
        let g = *self.rings.grid();
        let nr = self.rings.len();
        crate::error::check_len("v_u", v_u, p)?;
        crate::error::check_len("v_k", v_k, g.len())?;
        crate::error::check_finite("v_u", v_u)?;
        crate::error::check_finite("v_k", v_k)?;
        let mut vs = vec![Complex::new(0.0, 0.0); g.spectral_len()];
        self.fft.forward(v_k, &mut vs);
        let c = self.rings.cross_unchecked(&vs, &lin.k_spec);
        let q = &lin.quadrature;
        // g at each node, and its weighted mean
        let gi: Vec<f64> = q
            .nodes
            .iter()
            .zip(&q.payloads)
            .map(|(u, w)| {
                let a: f64 = u.iter().zip(v_u).map(|(u, v)| u * v).sum();
                a + w[..nr].iter().zip(&c).map(|(w, c)| w * c).sum::<f64>()
            })
            .collect();
        let gbar: f64 = gi.iter().zip(&q.weights).map(|(g, w)| g * w).sum();
        let inv_s2 = 1.0 / (lin.sigma * lin.sigma);
        let mut g_u = vec![0.0; p];
        let mut cov_w = vec![0.0; nr];
        for ((u, pay), (g, wt)) in q
            .nodes
            .iter()
            .zip(&q.payloads)
            .zip(gi.iter().zip(&q.weights))
        {
            let dg = wt * (g - gbar);
            for d in 0..p {
                g_u[d] += dg * (u[d] - lin.u_mean[d]);
            }
            for (cw, w) in cov_w.iter_mut().zip(&pay[..nr]) {
                *cw += dg * w;
            }
        }
        g_u.iter_mut().for_each(|v| *v *= inv_s2);
        for (m, s) in vs.iter_mut().enumerate() {
            *s = match self.rings.ring_of(m) {
                None => Complex::new(0.0, 0.0),
                Some(r) => *s * lin.wiener_mean[r] + lin.k_spec[m] * (cov_w[r] * inv_s2),
            };
        }
        let mut g_k = vec![0.0; g.len()];
        self.fft.inverse(&vs, &mut g_k);
        Ok((g_u, g_k))
    }

    /// `p(u | y)` (needs an observation): the quadrature (nodes, weights) and,
    /// as payload per node, the per-ring Wiener factor `S / (S + nu)` and
    /// posterior variance `S nu / (S + nu)` (joint units) at that `u`.
    pub fn theta_posterior(&self, quad: Quad) -> Result<Quadrature<Vec<f64>>> {
        let o = self
            .obs
            .as_ref()
            .ok_or_else(|| Error::invalid("observation", "p(theta | y) needs an observation"))?;
        let p = self.table.space().len();
        let nr = self.rings.len();
        let counts = self.rings.counts();
        let inv_d2 = 1.0 / (self.sigma_d * self.sigma_d);
        let mut ln_s = vec![0.0; nr];
        let mut f = |u: &[f64]| {
            self.table.ln_power_unchecked(u, &mut ln_s);
            let mut l = -0.5 * u.iter().map(|v| v * v).sum::<f64>();
            let mut pay = vec![0.0; 2 * nr];
            for r in 0..nr {
                let s = ln_s[r].exp() * inv_d2;
                let v = s + o.nu;
                l -= 0.5 * (counts[r] * v.ln() + o.b[r] / v);
                pay[r] = s / v;
                pay[nr + r] = s * o.nu / v;
            }
            (l, pay)
        };
        match quad {
            Quad::Adaptive(opts) => {
                let start =
                    quadrature::laplace(&Gauss::diagonal(vec![0.0; p], &vec![1.0; p]), &mut f);
                quadrature::adaptive(&start, &opts, &mut f)
            }
            Quad::Grid { points, half_width } => {
                quadrature::grid(&vec![0.0; p], &vec![half_width; p], points, &mut f)
            }
        }
    }

    /// The observation's spectrum `F(y / sigma_d)` and noise variance `nu`.
    pub fn observation(&self) -> Option<(&[Complex<f64>], f64)> {
        self.obs.as_ref().map(|o| (&o.spec[..], o.nu))
    }

    /// `sum_r ln L_r` and the per-ring filter factors (map, then data) at
    /// one `u` ([module docs](self)).
    fn ring_terms(&self, ln_s: &[f64], s2: f64, a: &[f64], c: Option<&[f64]>) -> (f64, Vec<f64>) {
        let nr = ln_s.len();
        let counts = self.rings.counts();
        let inv_d2 = 1.0 / (self.sigma_d * self.sigma_d);
        let mut fac = vec![0.0; 2 * nr];
        let mut term = vec![0.0; nr];
        let (fa, fb) = fac.split_at_mut(nr);
        // per-ring terms in a loop that vectorises, summed after
        match (&self.obs, c) {
            (Some(o), Some(c)) => vmath::with_avx2(
                #[inline(always)]
                || {
                    let nu = o.nu;
                    let rings = term
                        .iter_mut()
                        .zip(fa.iter_mut().zip(fb.iter_mut()))
                        .zip(ln_s.iter().zip(counts))
                        .zip(a.iter().zip(c.iter().zip(&o.b)));
                    for (((t, (fa, fb)), (ln_s, n)), (a, (c, b))) in rings {
                        let s = vmath::exp(*ln_s) * inv_d2;
                        let det = s * (s2 + nu) + s2 * nu;
                        *t = n * vmath::ln(det) + ((s + nu) * a - 2.0 * s * c + (s + s2) * b) / det;
                        *fa = s * nu / det;
                        *fb = s * s2 / det;
                    }
                },
            ),
            _ => vmath::with_avx2(
                #[inline(always)]
                || {
                    let rings = term
                        .iter_mut()
                        .zip(fa.iter_mut())
                        .zip(ln_s.iter().zip(counts))
                        .zip(a);
                    for (((t, fa), (ln_s, n)), a) in rings {
                        let s = vmath::exp(*ln_s) * inv_d2;
                        let v = s + s2;
                        *t = n * vmath::ln(v) + a / v;
                        *fa = s / v;
                    }
                },
            ),
        }
        (-0.5 * term.iter().sum::<f64>(), fac)
    }
}

/// `sum_i W_i payload_i`.
fn weighted_payload(q: &Quadrature<Vec<f64>>, len: usize) -> Vec<f64> {
    let mut out = vec![0.0; len];
    for (w, pay) in q.weights.iter().zip(&q.payloads) {
        for (o, v) in out.iter_mut().zip(pay) {
            *o += w * v;
        }
    }
    out
}

/// The exact Gaussian joint *prior* denoiser (no observation) as a
/// [`JointPrior`]: each chain's posterior of `u` warm-starts its next call.
impl JointPrior for GaussianJoint {
    type Chain = Option<Gauss>;
    type Linear = Linearisation;

    fn space(&self) -> &ParamSpace {
        self.table.space()
    }

    fn grid(&self) -> &Grid {
        self.rings.grid()
    }

    fn sigma_d(&self) -> f64 {
        self.sigma_d
    }

    fn gaussian_power(&self, u: &[f64]) -> Result<Option<Vec<f64>>> {
        self.prior_power(u).map(Some)
    }

    fn denoise(
        &self,
        u_s: &[f64],
        k_s: &[f64],
        sigma: f64,
        chain: &mut Option<Gauss>,
    ) -> Result<(JointDenoised, Linearisation)> {
        self.denoise_linearised(u_s, k_s, sigma, chain)
    }

    fn vjp(&self, lin: &Linearisation, v_u: &[f64], v_k: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
        GaussianJoint::vjp(self, lin, v_u, v_k)
    }
}
