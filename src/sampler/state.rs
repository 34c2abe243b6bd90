//! The state the integrators move: per chain, a convergence map and (for
//! models with parameters, such as the joint sampler of theta with kappa) a
//! parameter vector, each part in its own backend buffer.
//!
//! Each integrator update is a [`State`] method named after the backend
//! operation it runs on every part (`x.axpby(be, &s, &z, a, b)`),
//! so an integrator is written once whatever the state holds. Per-chain
//! reductions (the corrector's norms, HMC's energy changes) sum over the
//! parts; a state without parameters runs exactly the operations of a map.

use rayon::prelude::*;

use crate::backend::{Backend, Elementwise, NoiseKey};
use crate::error::{Error, Result};
use crate::rng::Stream;

/// A batch of chains: maps `[chains][map_len]` and, if the model has any,
/// parameters `[chains][param_len]`.
pub struct State<B: Backend> {
    /// Maps `[chains][y][x]`.
    pub maps: B::Buf<f32>,
    /// Parameters `[chains][p]`, when the model has `p > 0` per chain.
    pub params: Option<B::Buf<f32>>,
    map_len: usize,
    param_len: usize,
}

/// The parameter parts of two states, the first mutable.
type PartPair<'a, B> = (
    &'a mut <B as Backend>::Buf<f32>,
    &'a <B as Backend>::Buf<f32>,
);

/// The noise streams of each part: the sampler's own draws and the Langevin
/// corrector's beyond its sub-slots (`engine::Ctx::corrector_normal`).
pub(crate) struct PartStreams {
    pub sampler: Stream,
    pub corrector: Stream,
}

const MAP_STREAMS: PartStreams = PartStreams {
    sampler: Stream::Sampler,
    corrector: Stream::Corrector,
};

const PARAM_STREAMS: PartStreams = PartStreams {
    sampler: Stream::Parameters,
    corrector: Stream::ParameterCorrector,
};

impl<B: Backend> State<B> {
    /// A zeroed state of `chains` chains.
    pub fn zeros(be: &B, chains: usize, map_len: usize, param_len: usize) -> Result<Self> {
        Ok(State {
            maps: be.alloc(chains * map_len)?,
            params: match param_len {
                0 => None,
                p => Some(be.alloc(chains * p)?),
            },
            map_len,
            param_len,
        })
    }

    /// A zeroed state of this one's shape.
    pub fn zeros_like(&self, be: &B) -> Result<Self> {
        State::zeros(be, self.chains(), self.map_len, self.param_len)
    }

    /// Number of chains.
    pub fn chains(&self) -> usize {
        B::len(&self.maps) / self.map_len.max(1)
    }

    /// Pixels per map.
    pub fn map_len(&self) -> usize {
        self.map_len
    }

    /// Parameters per chain (0 without).
    pub fn param_len(&self) -> usize {
        self.param_len
    }

    /// The parameter parts of `self` and `other`, both present or both absent.
    fn params_with<'a>(&'a mut self, other: &'a Self) -> Result<Option<PartPair<'a, B>>> {
        match (&mut self.params, &other.params) {
            (Some(a), Some(b)) => Ok(Some((a, b))),
            (None, None) => Ok(None),
            _ => Err(Error::invalid(
                "state",
                "one state has parameters and the other none",
            )),
        }
    }

    /// `self = src`.
    pub fn copy_from(&mut self, be: &B, src: &Self) -> Result<()> {
        be.copy(&src.maps, &mut self.maps)?;
        if let Some((p, q)) = self.params_with(src)? {
            be.copy(q, p)?;
        }
        Ok(())
    }

    /// Standard normals for every chain at `(step, sub)` of the sampler streams.
    pub(crate) fn fill_normal(
        &mut self,
        be: &B,
        key: NoiseKey,
        counter: u64,
        corrector: bool,
    ) -> Result<()> {
        let pick = |s: &PartStreams| if corrector { s.corrector } else { s.sampler };
        let n = self.map_len;
        let k = NoiseKey {
            stream: pick(&MAP_STREAMS),
            ..key
        };
        be.fill_normal(&mut self.maps, n, k, counter)?;
        if let Some(p) = &mut self.params {
            let k = NoiseKey {
                stream: pick(&PARAM_STREAMS),
                ..key
            };
            be.fill_normal(p, self.param_len, k, counter)?;
        }
        Ok(())
    }

    /// `x += a s + b z` ([`Elementwise::axpby`]).
    pub fn axpby(&mut self, be: &B, s: &Self, z: &Self, a: f32, b: f32) -> Result<()> {
        be.axpby(&mut self.maps, &s.maps, &z.maps, a, b)?;
        if let Some((x, sp)) = self.params_with(s)? {
            be.axpby(x, sp, part(&z.params)?, a, b)?;
        }
        Ok(())
    }

    /// Per-chain norms `|x_c|` over every part ([`Backend::chain_norms`]).
    pub fn chain_norms(&self, be: &B, out: &mut B::Buf<f64>) -> Result<()> {
        be.chain_norms(&self.maps, self.map_len, out)?;
        if let Some(p) = &self.params {
            let mut q = be.alloc::<f64>(self.chains())?;
            be.chain_norms(p, self.param_len, &mut q)?;
            let (a, b) = (be.download(out)?, be.download(&q)?);
            let both: Vec<f64> = a.iter().zip(&b).map(|(a, b)| a.hypot(*b)).collect();
            *out = be.upload(&both)?;
        }
        Ok(())
    }

    /// The Langevin corrector step with per-chain norms of the whole state
    /// ([`Backend::langevin_corrector_step`]).
    pub fn langevin_corrector_step(
        &mut self,
        be: &B,
        s: &Self,
        z: &Self,
        s_norm: &B::Buf<f64>,
        z_norm: &B::Buf<f64>,
        snr: f64,
    ) -> Result<()> {
        let n = self.map_len;
        be.langevin_corrector_step(&mut self.maps, &s.maps, &z.maps, s_norm, z_norm, snr, n)?;
        let p = self.param_len;
        if let Some((x, sp)) = self.params_with(s)? {
            be.langevin_corrector_step(x, sp, part(&z.params)?, s_norm, z_norm, snr, p)?;
        }
        Ok(())
    }

    /// `x += a z` ([`Elementwise::axpy`]).
    pub fn axpy(&mut self, be: &B, z: &Self, a: f32) -> Result<()> {
        be.axpy(&mut self.maps, &z.maps, a)?;
        if let Some((x, zp)) = self.params_with(z)? {
            be.axpy(x, zp, a)?;
        }
        Ok(())
    }

    /// `d *= f`, `xp = x + h d` with `self = d` ([`Backend::heun_predictor`]).
    pub fn heun_predictor(
        &mut self,
        be: &B,
        x: &Self,
        xp: &mut Self,
        f: f32,
        h: f32,
    ) -> Result<()> {
        be.heun_predictor(&mut self.maps, &x.maps, &mut xp.maps, f, h)?;
        if let Some((d, xq)) = self.params_with(x)? {
            be.heun_predictor(d, xq, part_mut(&mut xp.params)?, f, h)?;
        }
        Ok(())
    }

    /// `x += c (d + f2 d2)` ([`Elementwise::heun_corrector`], `c = 0.5 h`).
    pub fn heun_corrector(&mut self, be: &B, d: &Self, d2: &Self, c: f32, f2: f32) -> Result<()> {
        be.heun_corrector(&mut self.maps, &d.maps, &d2.maps, c, f2)?;
        if let Some((x, dp)) = self.params_with(d)? {
            be.heun_corrector(x, dp, part(&d2.params)?, c, f2)?;
        }
        Ok(())
    }

    /// `xprev = x`, `x += e v` ([`Backend::hmc_position_step`]).
    pub fn hmc_position_step(&mut self, be: &B, xprev: &mut Self, v: &Self, e: f32) -> Result<()> {
        be.hmc_position_step(&mut self.maps, Some(&mut xprev.maps), &v.maps, e)?;
        if let Some((x, vp)) = self.params_with(v)? {
            be.hmc_position_step(x, Some(part_mut(&mut xprev.params)?), vp, e)?;
        }
        Ok(())
    }

    /// `du[c] -= sum (s + s')/2 · (x' - x)` over every part
    /// ([`Backend::hmc_energy_increment`]).
    pub fn hmc_energy_increment(
        be: &B,
        du: &mut B::Buf<f64>,
        s: &Self,
        s_new: &Self,
        xk: &Self,
        xprev: &Self,
    ) -> Result<()> {
        be.hmc_energy_increment(du, &s.maps, &s_new.maps, &xk.maps, &xprev.maps, s.map_len)?;
        if let Some(sp) = &s.params {
            let (sn, xq, xr) = (
                part(&s_new.params)?,
                part(&xk.params)?,
                part(&xprev.params)?,
            );
            be.hmc_energy_increment(du, sp, sn, xq, xr, s.param_len)?;
        }
        Ok(())
    }

    /// `out[c] = sum 0.5 (p vp - p0 vp0)` over every part
    /// ([`Backend::hmc_kinetic_change`]).
    pub fn hmc_kinetic_change(
        be: &B,
        p: &Self,
        vp: &Self,
        p0: &Self,
        vp0: &Self,
        out: &mut B::Buf<f64>,
    ) -> Result<()> {
        be.hmc_kinetic_change(&p.maps, &vp.maps, &p0.maps, &vp0.maps, p.map_len, out)?;
        if let Some(pp) = &p.params {
            let mut q = be.alloc::<f64>(p.chains())?;
            let (a, b, c) = (part(&vp.params)?, part(&p0.params)?, part(&vp0.params)?);
            be.hmc_kinetic_change(pp, a, b, c, p.param_len, &mut q)?;
            let (m, q) = (be.download(out)?, be.download(&q)?);
            let both: Vec<f64> = m.iter().zip(&q).map(|(m, q)| m + q).collect();
            *out = be.upload(&both)?;
        }
        Ok(())
    }

    /// Chain `c` becomes chain `c` of `xk` where `accept[c] != 0`
    /// ([`Backend::hmc_accept`]).
    pub fn hmc_accept(&mut self, be: &B, xk: &Self, accept: &B::Buf<u32>) -> Result<()> {
        let (n, p) = (self.map_len, self.param_len);
        be.hmc_accept(&mut self.maps, &xk.maps, accept, n)?;
        if let Some((x, xq)) = self.params_with(xk)? {
            be.hmc_accept(x, xq, accept, p)?;
        }
        Ok(())
    }
}

/// The parameter part of a state that must have one.
fn part<T>(p: &Option<T>) -> Result<&T> {
    p.as_ref()
        .ok_or_else(|| Error::invalid("state", "one state has parameters and the other none"))
}

/// Mutable [`part`].
fn part_mut<T>(p: &mut Option<T>) -> Result<&mut T> {
    p.as_mut()
        .ok_or_else(|| Error::invalid("state", "one state has parameters and the other none"))
}

impl State<crate::backend::cpu::Cpu> {
    /// Scores a host state chain by chain, in parallel: `f(chain_state, u, k)`
    /// returns `(s_u, s_k, inner iterations)` of one chain (f64, the state's
    /// parameters and map), written to `out` in f32. For host models of the
    /// joint state (`joint_oracle`, `joint_guided`), each with its per-chain
    /// state in `chains` (one per chain). Returns the inner iterations summed.
    pub(crate) fn score_chains<S: Send>(
        &self,
        out: &mut Self,
        chains: &mut [S],
        f: impl Fn(&mut S, &[f64], &[f64]) -> Result<(Vec<f64>, Vec<f64>, usize)> + Sync,
    ) -> Result<u64> {
        let (n, p) = (self.map_len(), self.param_len());
        let (xp, op) = match (&self.params, &mut out.params) {
            (Some(a), Some(b)) => (a, b),
            _ => return Err(Error::invalid("state", "the joint model needs parameters")),
        };
        if chains.len() != self.chains() {
            return Err(Error::shape("chain states", self.chains(), chains.len()));
        }
        let results: Vec<Result<usize>> = self
            .maps
            .par_chunks(n)
            .zip(out.maps.par_chunks_mut(n))
            .zip(xp.par_chunks(p).zip(op.par_chunks_mut(p)))
            .zip(chains.par_iter_mut())
            .map(|(((xm, om), (xu, ou)), chain)| {
                let k: Vec<f64> = xm.iter().map(|&v| v as f64).collect();
                let u: Vec<f64> = xu.iter().map(|&v| v as f64).collect();
                let (su, sk, it) = f(chain, &u, &k)?;
                om.iter_mut().zip(&sk).for_each(|(o, s)| *o = *s as f32);
                ou.iter_mut().zip(&su).for_each(|(o, s)| *o = *s as f32);
                Ok(it)
            })
            .collect();
        let mut inner = 0u64;
        for r in results {
            inner += r? as u64;
        }
        Ok(inner)
    }
}
