//! The guided posterior score ([`GuidedPosterior`], formulas in the module
//! docs of `posterior`) on a backend, for every prior and every guidance
//! scheme, written once as backend operations around the prior's
//! [`DevicePrior`] denoiser and VJP. The spectral guidance's
//! conjugate-gradient solve (`GaussianSystem::solve`) runs batched: all chains
//! iterate together, each with its own step sizes, and a chain stops updating
//! once it has converged, so every chain does exactly the iterations it does
//! on its own.

use super::posterior::{inflated_tweedie_variance, posterior_power_of, warm_start_scale};
use super::state::State;
use super::{Guidance, GuidedPosterior, ScoreStats, Target};
use crate::backend::pool::{Pool, Pooled};
use crate::backend::{Backend, Elementwise};
use crate::baselines::wiener::GaussianSystem;
use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::lensing::KaiserSquires;
use crate::prior::{DevicePrior, PriorBackend};

/// Iteration limit of the inner solve.
const MAX_INNER_ITERATIONS: usize = 500;

/// A [`GuidedPosterior`] on backend `B`: the prior's device form, the
/// Kaiser–Squires multipliers, the data and the weights, uploaded.
pub struct GuidedScore<'a, B: Backend> {
    grid: Grid,
    guidance: Guidance,
    prior: Box<dyn DevicePrior<B> + 'a>,
    /// The prior's Gaussian power `S`, when it has one (the initial draw).
    power: Option<B::Buf<f64>>,
    ks64: KaiserSquires<f64>,
    p1: B::Buf<f32>,
    p2: B::Buf<f32>,
    p1_64: B::Buf<f64>,
    p2_64: B::Buf<f64>,
    g1: B::Buf<f32>,
    g2: B::Buf<f32>,
    w1: B::Buf<f32>,
    w2: B::Buf<f32>,
    w1_64: B::Buf<f64>,
    w2_64: B::Buf<f64>,
    host_w1: Vec<f64>,
    host_w2: Vec<f64>,
    /// The spectral guidance's last inner solution `u` and its level.
    warm: Option<(B::Buf<f64>, f64)>,
    /// Work buffers reused across evaluations.
    pool32: Pool<B, f32>,
    pool64: Pool<B, f64>,
}

impl<'a, B: PriorBackend> GuidedScore<'a, B> {
    /// `post` on `be` (its prior through [`PriorBackend::prior`]).
    pub fn new(be: &B, post: &GuidedPosterior<'a>) -> Result<Self> {
        let (data, guidance) = (post.data(), post.guidance());
        let grid = *data.grid();
        let prior = be.prior(post.prior())?;
        let power = match prior.gaussian_power() {
            Some(p) => Some(be.upload(p)?),
            None => None,
        };
        let ks32 = KaiserSquires::<f32>::new(grid);
        let ks64 = KaiserSquires::<f64>::new(grid);
        let host_w1: Vec<f64> = data.noise.weight1().iter().map(|&w| w as f64).collect();
        let host_w2: Vec<f64> = data.noise.weight2().iter().map(|&w| w as f64).collect();
        Ok(GuidedScore {
            grid,
            guidance,
            prior,
            power,
            p1: be.upload(ks32.p1())?,
            p2: be.upload(ks32.p2())?,
            p1_64: be.upload(ks64.p1())?,
            p2_64: be.upload(ks64.p2())?,
            ks64,
            g1: be.upload(&data.g1)?,
            g2: be.upload(&data.g2)?,
            w1: be.upload(data.noise.weight1())?,
            w2: be.upload(data.noise.weight2())?,
            w1_64: be.upload(&host_w1)?,
            w2_64: be.upload(&host_w2)?,
            host_w1,
            host_w2,
            warm: None,
            pool32: Pool::default(),
            pool64: Pool::default(),
        })
    }
}

impl<B: Backend> GuidedScore<'_, B> {
    fn maps(&self, len: usize) -> usize {
        len / self.grid.len()
    }

    /// A work half spectrum of `maps` maps (contents unspecified: an output).
    fn spec32(&self, be: &B, maps: usize) -> Result<Pooled<B, f32>> {
        self.pool32.take(be, 2 * maps * self.grid.spectral_len())
    }

    /// f64 [`Self::spec32`].
    fn spec64(&self, be: &B, maps: usize) -> Result<Pooled<B, f64>> {
        self.pool64.take(be, 2 * maps * self.grid.spectral_len())
    }

    /// A work batch of `len` pixels (contents unspecified: an output).
    fn work32(&self, be: &B, len: usize) -> Result<Pooled<B, f32>> {
        self.pool32.take(be, len)
    }

    /// f64 [`Self::work32`].
    fn work64(&self, be: &B, len: usize) -> Result<Pooled<B, f64>> {
        self.pool64.take(be, len)
    }

    /// The prior's Gaussian power, which the spectral and inflated schemes
    /// need (`GuidedPosterior::new` checks that it exists).
    fn host_power(&self) -> Result<&[f64]> {
        self.prior.gaussian_power().ok_or_else(|| {
            Error::invalid(
                "guidance",
                format!(
                    "{} guidance needs a prior with a Gaussian power model",
                    self.guidance.name()
                ),
            )
        })
    }

    /// `(r1, r2) = P m` in f32.
    fn ks_forward(
        &self,
        be: &B,
        m: &B::Buf<f32>,
        r1: &mut B::Buf<f32>,
        r2: &mut B::Buf<f32>,
    ) -> Result<()> {
        let maps = self.maps(B::len(m));
        let (mut kh, mut s1, mut s2) = (
            self.spec32(be, maps)?,
            self.spec32(be, maps)?,
            self.spec32(be, maps)?,
        );
        be.fft_forward(&self.grid, m, &mut kh)?;
        be.ks_forward_multiply(&kh, &self.p1, &self.p2, &mut s1, &mut s2)?;
        be.fft_inverse(&self.grid, &mut s1, r1)?;
        be.fft_inverse(&self.grid, &mut s2, r2)
    }

    /// `out += P^T (a ⊙ (gamma - P m))`.
    fn add_weighted_residual(
        &self,
        be: &B,
        m: &B::Buf<f32>,
        a1: &B::Buf<f32>,
        a2: &B::Buf<f32>,
        out: &mut B::Buf<f32>,
    ) -> Result<()> {
        let len = B::len(m);
        let maps = self.maps(len);
        let (mut r1, mut r2) = (self.work32(be, len)?, self.work32(be, len)?);
        self.ks_forward(be, m, &mut r1, &mut r2)?;
        be.weighted_residual(&mut r1, &mut r2, &self.g1, &self.g2, a1, a2)?;
        let (mut s1, mut s2, mut kh) = (
            self.spec32(be, maps)?,
            self.spec32(be, maps)?,
            self.spec32(be, maps)?,
        );
        be.fft_forward(&self.grid, &r1, &mut s1)?;
        be.fft_forward(&self.grid, &r2, &mut s2)?;
        be.ks_adjoint_multiply(&s1, &s2, &self.p1, &self.p2, &mut kh)?;
        let mut back = self.work32(be, len)?;
        be.fft_inverse(&self.grid, &mut kh, &mut back)?;
        be.add(out, &back)
    }

    /// `out = (d - x)/sigma² + J_D^T v`.
    fn finish_tweedie(
        &self,
        be: &B,
        x: &B::Buf<f32>,
        d: &B::Buf<f32>,
        v: &B::Buf<f32>,
        sigma: f64,
        out: &mut B::Buf<f32>,
    ) -> Result<()> {
        let mut jv = self.work32(be, B::len(x))?;
        self.prior.denoise_vjp(be, x, sigma, v, &mut jv)?;
        be.tweedie_score_combine(out, d, x, &jv, (1.0 / (sigma * sigma)) as f32)
    }

    /// `out = F^{-1}[f F x]` in f64.
    fn fourier_multiply(
        &self,
        be: &B,
        x: &B::Buf<f64>,
        f: &B::Buf<f64>,
        out: &mut B::Buf<f64>,
    ) -> Result<()> {
        let mut spec = self.spec64(be, self.maps(B::len(x)))?;
        be.fft_forward(&self.grid, x, &mut spec)?;
        be.spectral_scale(&mut spec, f)?;
        be.fft_inverse(&self.grid, &mut spec, out)
    }

    /// `(y1, y2) = P y` in f64.
    fn ks_forward_f64(
        &self,
        be: &B,
        y: &B::Buf<f64>,
        y1: &mut B::Buf<f64>,
        y2: &mut B::Buf<f64>,
    ) -> Result<()> {
        let maps = self.maps(B::len(y));
        let (mut kh, mut s1, mut s2) = (
            self.spec64(be, maps)?,
            self.spec64(be, maps)?,
            self.spec64(be, maps)?,
        );
        be.fft_forward(&self.grid, y, &mut kh)?;
        be.ks_forward_multiply(&kh, &self.p1_64, &self.p2_64, &mut s1, &mut s2)?;
        be.fft_inverse(&self.grid, &mut s1, y1)?;
        be.fft_inverse(&self.grid, &mut s2, y2)
    }

    /// `out = F^{-1}[(p1 F a1 + p2 F a2) f]`: `P^T` followed by a Fourier
    /// multiplier (`f = 1` gives `P^T`; `sqrt C` gives the system's rhs).
    fn ks_adjoint_scaled_f64(
        &self,
        be: &B,
        a1: &B::Buf<f64>,
        a2: &B::Buf<f64>,
        f: Option<&B::Buf<f64>>,
        out: &mut B::Buf<f64>,
    ) -> Result<()> {
        let maps = self.maps(B::len(a1));
        let (mut s1, mut s2, mut t) = (
            self.spec64(be, maps)?,
            self.spec64(be, maps)?,
            self.spec64(be, maps)?,
        );
        be.fft_forward(&self.grid, a1, &mut s1)?;
        be.fft_forward(&self.grid, a2, &mut s2)?;
        be.ks_adjoint_multiply(&s1, &s2, &self.p1_64, &self.p2_64, &mut t)?;
        if let Some(f) = f {
            be.spectral_scale(&mut t, f)?;
        }
        be.fft_inverse(&self.grid, &mut t, out)
    }

    /// The spectral (Woodbury) likelihood gradient before the VJP:
    /// `v = P^T [W q - W P y]`, `q = gamma - P d`,
    /// `y = (C^{-1} + P^T W P)^{-1} P^T W q` (module docs of `posterior`).
    /// Returns the inner iterations summed over chains.
    fn spectral_likelihood(
        &mut self,
        be: &B,
        d: &B::Buf<f32>,
        sigma: f64,
        tol: f64,
        maps: usize,
        v: &mut B::Buf<f32>,
    ) -> Result<u64> {
        let len = B::len(d);
        let host_power = self.host_power()?.to_vec();
        let power = posterior_power_of(Some(&host_power), sigma);
        let sqrt_power: Vec<f64> = power.iter().map(|p| p.sqrt()).collect();
        // q = gamma - P D(x)
        let mut d64 = self.work64(be, len)?;
        be.cast(d, &mut d64)?;
        let (mut q1, mut q2) = (self.work64(be, len)?, self.work64(be, len)?);
        self.ks_forward_f64(be, &d64, &mut q1, &mut q2)?;
        be.shear_residual_f64(&mut q1, &mut q2, &self.g1, &self.g2)?;
        // warm start: the previous u, carried to this level's variables
        let mut u = match self.warm.take() {
            Some((u, prev)) if B::len(&u) == len => {
                if prev != sigma {
                    let scale = be.upload(&warm_start_scale(Some(&host_power), prev, &power))?;
                    let mut spec = self.spec64(be, maps)?;
                    be.fft_forward(&self.grid, &u, &mut spec)?;
                    be.spectral_scale(&mut spec, &scale)?;
                    let mut w = be.alloc::<f64>(len)?;
                    be.fft_inverse(&self.grid, &mut spec, &mut w)?;
                    w
                } else {
                    u
                }
            }
            _ => be.alloc::<f64>(len)?,
        };
        let sys = SpectralSystem::new(be, self, &power, &sqrt_power)?;
        let iterations = sys.solve(be, self, &q1, &q2, &mut u, tol)?;
        // y = C^{1/2} u, then the Woodbury correction W (q - P y)
        let mut y = self.work64(be, len)?;
        self.fourier_multiply(be, &u, &sys.sqrt_power, &mut y)?;
        self.warm = Some((u, sigma));
        let (mut y1, mut y2) = (self.work64(be, len)?, self.work64(be, len)?);
        self.ks_forward_f64(be, &y, &mut y1, &mut y2)?;
        be.weighted_residual_f64(&mut y1, &mut y2, &q1, &q2, &self.w1_64, &self.w2_64)?;
        let mut back = self.work64(be, len)?;
        self.ks_adjoint_scaled_f64(be, &y1, &y2, None, &mut back)?;
        be.cast(&back, v)?;
        Ok(iterations)
    }
}

impl<B: Backend> Target<B> for GuidedScore<'_, B> {
    /// Forgets per-chain state (the warm starts) before a batch.
    fn begin_batch(&mut self, _be: &B, _chains: usize) -> Result<()> {
        self.warm = None;
        Ok(())
    }

    /// `out = grad log p_sigma(x | data)` for a batch.
    fn score(
        &mut self,
        be: &B,
        x: &State<B>,
        sigma: f64,
        out: &mut State<B>,
    ) -> Result<ScoreStats> {
        let (x, out) = (&x.maps, &mut out.maps);
        let len = B::len(x);
        let maps = crate::backend::maps_of("x", len, self.grid.len())?;
        crate::backend::same_len("score", len, B::len(out))?;
        let s2 = sigma * sigma;
        let n = self.grid.len();
        match self.guidance {
            Guidance::Annealed { c } => {
                self.prior.denoise(be, x, sigma, out)?;
                be.prior_score(out, x, (1.0 / s2) as f32)?;
                let (mut a1, mut a2) = (self.work32(be, n)?, self.work32(be, n)?);
                be.annealed_weights(&self.w1, c * s2, &mut a1)?;
                be.annealed_weights(&self.w2, c * s2, &mut a2)?;
                self.add_weighted_residual(be, x, &a1, &a2, out)?;
                Ok(ScoreStats::default())
            }
            Guidance::Tweedie { inflate } => {
                let mut d = self.work32(be, len)?;
                self.prior.denoise(be, x, sigma, &mut d)?;
                let mut v = be.alloc::<f32>(len)?;
                if inflate {
                    let k = inflated_tweedie_variance(&self.grid, Some(self.host_power()?), sigma);
                    let (mut e1, mut e2) = (self.work32(be, n)?, self.work32(be, n)?);
                    be.annealed_weights(&self.w1, k, &mut e1)?;
                    be.annealed_weights(&self.w2, k, &mut e2)?;
                    self.add_weighted_residual(be, &d, &e1, &e2, &mut v)?;
                } else {
                    self.add_weighted_residual(be, &d, &self.w1, &self.w2, &mut v)?;
                }
                self.finish_tweedie(be, x, &d, &v, sigma, out)?;
                Ok(ScoreStats::default())
            }
            Guidance::Spectral { tol } => {
                let mut d = self.work32(be, len)?;
                self.prior.denoise(be, x, sigma, &mut d)?;
                let mut v = self.work32(be, len)?;
                let it = self.spectral_likelihood(be, &d, sigma, tol, maps, &mut v)?;
                self.finish_tweedie(be, x, &d, &v, sigma, out)?;
                Ok(ScoreStats {
                    inner_iterations: it,
                })
            }
        }
    }

    /// Turns white noise into a draw from the diffused prior at `sigma_max`:
    /// `F^{-1}[sqrt(S + sigma_max²) F z]` with the prior's Gaussian power
    /// `S`, `sigma_max z` without one.
    fn initial(&self, be: &B, sigma_max: f64, z: &mut State<B>) -> Result<()> {
        let z = &mut z.maps;
        let len = B::len(z);
        let Some(power) = &self.power else {
            // 0 + sigma z: the product, rounded once
            let mut scaled = be.alloc::<f32>(len)?;
            be.axpy(&mut scaled, z, sigma_max as f32)?;
            return be.copy(&scaled, z);
        };
        let mut z64 = be.alloc::<f64>(len)?;
        be.cast(z, &mut z64)?;
        let mut spec = self.spec64(be, self.maps(len))?;
        be.fft_forward(&self.grid, &z64, &mut spec)?;
        be.diffused_prior_draw_multiply(&mut spec, power, sigma_max * sigma_max)?;
        be.fft_inverse(&self.grid, &mut spec, &mut z64)?;
        be.cast(&z64, z)
    }

    /// `x_c = E + s x_c` with `E` the Kaiser–Squires E map of the data (the
    /// annealed-HMC start, `ks_map`).
    fn start_hmc(&self, be: &B, sigma0: f64, x: &mut State<B>) -> Result<()> {
        let (mut s1, mut s2) = (self.spec32(be, 1)?, self.spec32(be, 1)?);
        be.fft_forward(&self.grid, &self.g1, &mut s1)?;
        be.fft_forward(&self.grid, &self.g2, &mut s2)?;
        let (mut eh, mut bh) = (self.spec32(be, 1)?, self.spec32(be, 1)?);
        be.ks_inverse_eb_multiply(&s1, &s2, &self.p1, &self.p2, &mut eh, &mut bh)?;
        let mut e = be.alloc::<f32>(self.grid.len())?;
        be.fft_inverse(&self.grid, &mut eh, &mut e)?;
        be.hmc_start_from_map(&mut x.maps, &e, sigma0 as f32)
    }
}

/// The per-level multipliers of `(C^{-1} + P^T W P) y = P^T W r` in
/// `u = C^{-1/2} y` (`GaussianSystem`), uploaded.
struct SpectralSystem<B: Backend> {
    sqrt_power: B::Buf<f64>,
    /// `p1 sqrt(C)`, `p2 sqrt(C)` (the products `data_term` forms).
    p1s: B::Buf<f64>,
    p2s: B::Buf<f64>,
    /// `(1 + C w̄)^{-1}`.
    precond: B::Buf<f64>,
}

impl<B: Backend> SpectralSystem<B> {
    fn new(be: &B, m: &GuidedScore<'_, B>, power: &[f64], sqrt_power: &[f64]) -> Result<Self> {
        let host = GaussianSystem {
            ks: &m.ks64,
            power,
            sqrt_power,
            w1: &m.host_w1,
            w2: &m.host_w2,
        };
        let (p1, p2) = (m.ks64.p1(), m.ks64.p2());
        let p1s: Vec<f64> = (0..power.len()).map(|i| p1[i] * sqrt_power[i]).collect();
        let p2s: Vec<f64> = (0..power.len()).map(|i| p2[i] * sqrt_power[i]).collect();
        Ok(SpectralSystem {
            sqrt_power: be.upload(sqrt_power)?,
            p1s: be.upload(&p1s)?,
            p2s: be.upload(&p2s)?,
            precond: be.upload(&host.preconditioner())?,
        })
    }

    /// `out = C^{1/2} P^T W P C^{1/2} u` (`GaussianSystem::data_term`).
    fn data_term(
        &self,
        be: &B,
        m: &GuidedScore<'_, B>,
        u: &B::Buf<f64>,
        out: &mut B::Buf<f64>,
    ) -> Result<()> {
        let len = B::len(u);
        let maps = m.maps(len);
        let mut uh = m.spec64(be, maps)?;
        be.fft_forward(&m.grid, u, &mut uh)?;
        let mut t = m.spec64(be, maps)?;
        be.copy(&uh, &mut t)?;
        be.spectral_scale(&mut t, &self.p1s)?;
        let (mut a1, mut a2) = (m.work64(be, len)?, m.work64(be, len)?);
        be.fft_inverse(&m.grid, &mut t, &mut a1)?;
        be.spectral_scale(&mut uh, &self.p2s)?;
        be.fft_inverse(&m.grid, &mut uh, &mut a2)?;
        be.multiply_weights_f64(&mut a1, &m.w1_64)?;
        be.multiply_weights_f64(&mut a2, &m.w2_64)?;
        m.ks_adjoint_scaled_f64(be, &a1, &a2, Some(&self.sqrt_power), out)
    }

    /// `out = F^{-1}[(1 + C w̄)^{-1} F r]`.
    fn precondition(
        &self,
        be: &B,
        m: &GuidedScore<'_, B>,
        r: &B::Buf<f64>,
        out: &mut B::Buf<f64>,
    ) -> Result<()> {
        m.fourier_multiply(be, r, &self.precond, out)
    }

    /// Batched PCG for every chain (`GaussianSystem::solve`): `u` holds the
    /// start (warm or zero) and receives the solution. Returns the iterations
    /// summed over chains; fails like the CPU if a chain does not converge.
    fn solve(
        &self,
        be: &B,
        m: &GuidedScore<'_, B>,
        q1: &B::Buf<f64>,
        q2: &B::Buf<f64>,
        u: &mut B::Buf<f64>,
        tol: f64,
    ) -> Result<u64> {
        let n = m.grid.len();
        let len = B::len(u);
        let chains = m.maps(len);
        // b = C^{1/2} P^T W q
        let (mut wq1, mut wq2) = (m.work64(be, len)?, m.work64(be, len)?);
        be.copy(q1, &mut wq1)?;
        be.copy(q2, &mut wq2)?;
        be.multiply_weights_f64(&mut wq1, &m.w1_64)?;
        be.multiply_weights_f64(&mut wq2, &m.w2_64)?;
        let mut b = m.work64(be, len)?;
        m.ks_adjoint_scaled_f64(be, &wq1, &wq2, Some(&self.sqrt_power), &mut b)?;
        let mut dots = be.alloc::<f64>(chains)?;
        be.chain_dot_f64(&b, &b, n, &mut dots)?;
        let bnorm: Vec<f64> = be.download(&dots)?.iter().map(|v| v.sqrt()).collect();
        if bnorm.iter().any(|&b| b.is_nan() || b <= 0.0) {
            // a chain without data residual: its solution is 0 (rare; on the host)
            let mut h = be.download(u)?;
            for (c, b) in bnorm.iter().enumerate() {
                if b.is_nan() || *b <= 0.0 {
                    h[c * n..(c + 1) * n].iter_mut().for_each(|v| *v = 0.0);
                }
            }
            *u = be.upload(&h)?;
        }
        // r = b - A u where the start is non-zero
        be.chain_dot_f64(u, u, n, &mut dots)?;
        let warm: Vec<u32> = be
            .download(&dots)?
            .iter()
            .zip(&bnorm)
            .map(|(uu, b)| u32::from(*b > 0.0 && *uu > 0.0))
            .collect();
        let mut r = m.work64(be, len)?;
        be.copy(&*b, &mut *r)?;
        let mut ap = m.work64(be, len)?;
        if warm.iter().any(|&w| w != 0) {
            self.data_term(be, m, u, &mut ap)?;
            be.cg_initial_residual(&mut r, &ap, u, &be.upload(&warm)?, n)?;
        }
        be.chain_dot_f64(&r, &r, n, &mut dots)?;
        let mut residual: Vec<f64> = be
            .download(&dots)?
            .iter()
            .zip(&bnorm)
            .map(|(rr, b)| if *b > 0.0 { rr.sqrt() / b } else { 0.0 })
            .collect();
        let mut z = m.work64(be, len)?;
        self.precondition(be, m, &r, &mut z)?;
        let mut p = m.work64(be, len)?;
        be.copy(&*z, &mut *p)?;
        be.chain_dot_f64(&r, &z, n, &mut dots)?;
        let mut rz = be.download(&dots)?;
        let mut active: Vec<u32> = (0..chains)
            .map(|c| u32::from(bnorm[c] > 0.0 && residual[c] >= tol))
            .collect();
        let mut iterations = vec![0usize; chains];
        let mut it = 0usize;
        while active.iter().any(|&a| a != 0) && it < MAX_INNER_ITERATIONS {
            let act = be.upload(&active)?;
            self.data_term(be, m, &p, &mut ap)?;
            be.add(&mut ap, &p)?;
            be.chain_dot_f64(&p, &ap, n, &mut dots)?;
            let pap = be.download(&dots)?;
            let alpha: Vec<f64> = (0..chains)
                .map(|c| if active[c] != 0 { rz[c] / pap[c] } else { 0.0 })
                .collect();
            be.cg_update_solution(u, &mut r, &p, &ap, &be.upload(&alpha)?, &act, n)?;
            it += 1;
            be.chain_dot_f64(&r, &r, n, &mut dots)?;
            let rr = be.download(&dots)?;
            for c in 0..chains {
                if active[c] != 0 {
                    iterations[c] = it;
                    residual[c] = rr[c].sqrt() / bnorm[c];
                    if residual[c] < tol {
                        active[c] = 0;
                    }
                }
            }
            if active.iter().all(|&a| a == 0) || it >= MAX_INNER_ITERATIONS {
                break;
            }
            self.precondition(be, m, &r, &mut z)?;
            be.chain_dot_f64(&r, &z, n, &mut dots)?;
            let rz_new = be.download(&dots)?;
            let beta: Vec<f64> = (0..chains)
                .map(|c| {
                    if active[c] != 0 {
                        rz_new[c] / rz[c]
                    } else {
                        0.0
                    }
                })
                .collect();
            for c in 0..chains {
                if active[c] != 0 {
                    rz[c] = rz_new[c];
                }
            }
            be.cg_update_direction(&mut p, &z, &be.upload(&beta)?, &be.upload(&active)?, n)?;
        }
        if let Some(c) = (0..chains).find(|&c| bnorm[c] > 0.0 && residual[c] >= tol) {
            return Err(Error::NotConverged {
                solver: "Gaussian PCG",
                iterations: iterations[c],
                residual: residual[c],
                tolerance: tol,
            });
        }
        Ok(iterations.iter().map(|&i| i as u64).sum())
    }
}
