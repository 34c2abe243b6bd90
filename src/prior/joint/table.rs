//! The pixel power of each ring as a function of the standardised
//! parameters `u`: `ln S_r(u)` tabulated on a regular grid over the prior
//! box `[-R, R]^p` and read by tensor-product 4-point (cubic) Lagrange interpolation
//! (error `~ h^4 max|d^4 ln S / du^4| / 128` per dimension, below 1e-6 for
//! the sbi_lens parameters at `h = 0.5`). Outside the box `u` is clamped: the
//! model's spectrum is that of the box edge there (prior mass beyond `5
//! sigma` is 6e-7 per parameter).
//!
//! The table *defines* the joint prior's spectrum: the exact denoisers and the
//! reference posteriors read the same table, so they are exact for it.

use rayon::prelude::*;

use super::rings::Rings;
use super::ParamSpace;
use crate::cosmo::limber::{convergence_cl, ClOptions};
use crate::cosmo::nz::SourceBin;
use crate::cosmo::Cosmology;
use crate::error::{Error, Result};
use crate::vmath;

/// The most parameters a table interpolates over (`4^p` stencil points and
/// `(2R/h + 1)^p` spectra; 3 is 64 points and 9261 spectra at the defaults).
pub const MAX_TABLE_PARAMS: usize = 3;

/// `ln S_r(u)` on a grid ([`SpectrumTable::build`]).
#[derive(Debug, Clone)]
pub struct SpectrumTable {
    space: ParamSpace,
    rings: usize,
    radius: f64,
    step: f64,
    /// Nodes per dimension.
    side: usize,
    /// `[node][ring]`, node index `sum_d i_d side^d`.
    ln_s: Vec<f64>,
}

impl SpectrumTable {
    /// Tabulates `power(theta)` (the pixel power of every ring, positive and
    /// finite) at `u` in `{-radius, -radius + step, .., radius}^p`, `theta =
    /// space.theta(u)`, in parallel.
    pub fn build(
        space: &ParamSpace,
        rings: &Rings,
        radius: f64,
        step: f64,
        power: &(dyn Fn(&[f64]) -> Result<Vec<f64>> + Sync),
    ) -> Result<Self> {
        let p = space.len();
        if p > MAX_TABLE_PARAMS {
            return Err(Error::invalid(
                "params",
                format!("the tabulated Gaussian joint prior takes at most {MAX_TABLE_PARAMS} parameters, got {p}"),
            ));
        }
        if !(radius.is_finite() && step.is_finite() && step > 0.0 && radius >= 1.5 * step) {
            return Err(Error::invalid(
                "table",
                format!("need radius >= 1.5 step > 0, got radius {radius}, step {step}"),
            ));
        }
        let side = (2.0 * radius / step).round() as usize + 1;
        if side < 4 {
            return Err(Error::invalid(
                "table",
                "need at least 4 nodes per parameter",
            ));
        }
        let nodes = side.pow(p as u32);
        let nr = rings.len();
        let rows: Vec<Result<Vec<f64>>> = (0..nodes)
            .into_par_iter()
            .map(|node| {
                let u = node_u(node, p, side, radius, step);
                let theta = space.theta(&u);
                let s = power(&theta)?;
                if s.len() != nr {
                    return Err(Error::shape("ring power", nr, s.len()));
                }
                if let Some(bad) = s.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
                    return Err(Error::invalid(
                        "spectrum",
                        format!("the ring power must be positive and finite, got {bad} at {:?} = {theta:?}", space.names()),
                    ));
                }
                Ok(s.iter().map(|v| v.ln()).collect())
            })
            .collect();
        let mut ln_s = Vec::with_capacity(nodes * nr);
        for r in rows {
            ln_s.extend(r?);
        }
        Ok(SpectrumTable {
            space: space.clone(),
            rings: nr,
            radius,
            step,
            side,
            ln_s,
        })
    }

    /// The table of convergence spectra from cosmology: `base` with the
    /// parameters of `space` set, one source `bin`, `C_ell` at 64 multipoles
    /// log-spaced over the rings' range and interpolated in `(ln ell, ln C)`
    /// (4-point Lagrange) to each ring, pixel power `C / Δ²`. Radius 5, step
    /// 0.5 (21 nodes a parameter).
    pub fn cosmology(
        space: &ParamSpace,
        rings: &Rings,
        base: &Cosmology,
        bin: &SourceBin,
        opts: &ClOptions,
    ) -> Result<Self> {
        let ells = rings.ells();
        let (lo, hi) = match (ells.first(), ells.last()) {
            (Some(&a), Some(&b)) => (a.ln(), b.ln().max(a.ln() + 1e-6)),
            _ => return Err(Error::invalid("grid", "the grid has no Fourier ring")),
        };
        const N: usize = 64;
        let h = (hi - lo) / (N - 4) as f64;
        // two nodes beyond each end for the stencil
        let table_ells: Vec<f64> = (0..N).map(|i| (lo + (i as f64 - 1.5) * h).exp()).collect();
        let inv_area = 1.0 / rings.grid().pixel_area_sr();
        let power = |theta: &[f64]| -> Result<Vec<f64>> {
            let c = space.cosmology(base, theta)?;
            let cl = convergence_cl(&c, std::slice::from_ref(bin), &table_ells, opts)?;
            let ln_c: Vec<f64> = cl.cl[0].iter().map(|v| v.ln()).collect();
            Ok(ells
                .iter()
                .map(|&l| {
                    let x = ((l.ln() - lo) / h + 1.5).clamp(1.0, (N - 3) as f64);
                    let i = (x as usize).min(N - 3);
                    let w = lagrange4(x - i as f64);
                    let v: f64 = (0..4).map(|j| w[j] * ln_c[i - 1 + j]).sum();
                    v.exp() * inv_area
                })
                .collect())
        };
        SpectrumTable::build(space, rings, 5.0, 0.5, &power)
    }

    /// The parameter space.
    pub fn space(&self) -> &ParamSpace {
        &self.space
    }

    /// Number of rings.
    pub fn rings(&self) -> usize {
        self.rings
    }

    /// `ln S_r(u)` for every ring into `out` (`u` of the space's length,
    /// `out` of [`SpectrumTable::rings`]).
    pub fn ln_power(&self, u: &[f64], out: &mut [f64]) -> Result<()> {
        crate::error::check_len("u", u, self.space.len())?;
        crate::error::check_len("ln_power", out, self.rings)?;
        if u.iter().any(|v| v.is_nan()) {
            return Err(Error::invalid("u", "the parameters are NaN"));
        }
        self.ln_power_unchecked(u, out);
        Ok(())
    }

    /// [`SpectrumTable::ln_power`] for lengths the caller has checked (the
    /// quadrature's inner loop).
    pub(crate) fn ln_power_unchecked(&self, u: &[f64], out: &mut [f64]) {
        let p = self.space.len();
        let side = self.side;
        // per dimension: the stencil's first node and its 4 weights
        let mut first = [0usize; MAX_TABLE_PARAMS];
        let mut w = [[0.0f64; 4]; MAX_TABLE_PARAMS];
        for d in 0..p {
            // the cubic of the nearest 4 nodes (t in [-1, 2] at the edges)
            let x = (u[d].clamp(-self.radius, self.radius) + self.radius) / self.step;
            let i = (x.max(0.0) as usize).clamp(1, side - 3);
            first[d] = i - 1;
            w[d] = lagrange4(x - i as f64);
        }
        out.fill(0.0);
        for s in 0..4usize.pow(p as u32) {
            let (mut node, mut weight, mut stride, mut rest) = (0, 1.0, 1, s);
            for d in 0..p {
                let j = rest % 4;
                rest /= 4;
                node += (first[d] + j) * stride;
                weight *= w[d][j];
                stride *= side;
            }
            let row = &self.ln_s[node * self.rings..][..self.rings];
            vmath::with_avx2(
                #[inline(always)]
                || {
                    for (o, v) in out.iter_mut().zip(row) {
                        *o += weight * v;
                    }
                },
            );
        }
    }
}

/// The 4-point Lagrange weights of nodes `-1, 0, 1, 2` at `t`.
fn lagrange4(t: f64) -> [f64; 4] {
    [
        -t * (t - 1.0) * (t - 2.0) / 6.0,
        (t + 1.0) * (t - 1.0) * (t - 2.0) / 2.0,
        -(t + 1.0) * t * (t - 2.0) / 2.0,
        (t + 1.0) * t * (t - 1.0) / 6.0,
    ]
}

/// `u` of table node `node`.
fn node_u(node: usize, p: usize, side: usize, radius: f64, step: f64) -> Vec<f64> {
    let mut rest = node;
    (0..p)
        .map(|_| {
            let i = rest % side;
            rest /= side;
            -radius + i as f64 * step
        })
        .collect()
}
