//! Group normalisation (Wu & He 2018, "Group Normalization", ECCV).
//!
//! The `C` channels are split into `G` contiguous groups of `C/G` channels. For
//! each batch item `n` and group `g`, over the `M = (C/G)·H·W` elements of the group:
//!
//! ```text
//! μ = (1/M) Σ x,   σ² = (1/M) Σ (x - μ)²   (biased variance),
//! x̂ = (x - μ) / sqrt(σ² + ε),
//! y[n][c] = γ[c] · x̂[n][c] + β[c]          (per-channel affine).
//! ```
//!
//! Backward, with `g_i = γ[c(i)] · dy_i`, `ρ = 1/sqrt(σ² + ε)` and means over the group:
//!
//! ```text
//! dx_i = ρ · (g_i - mean(g) - x̂_i · mean(g ⊙ x̂)),
//! dγ[c] = Σ_{n,y,x} dy · x̂,     dβ[c] = Σ_{n,y,x} dy.
//! ```
//!
//! Evaluation: the statistics and the backward sums are `f64`, accumulated in
//! 8 interleaved partial sums (so the loops vectorise; the order depends on
//! the length only). The backward pass needs, per plane, only `S1 = Σ dy` and
//! `S2 = Σ dy·x`: `Σ g x̂` is `Σ_c γ_c ρ (S2 - μ S1)`, and `dγ`, `dβ` follow
//! from the same sums. The per-element maps `y = a (x - μ) + β` and `dx = A dy
//! + B (x - μ) + C` run in the storage type with coefficients from `f64`.

use rayon::prelude::*;

use super::{check_len, check_tensor, Dims4, Real};
use crate::error::{Error, Result};

/// Default `ε` added to the group variance.
pub const GROUP_NORM_EPS: f64 = 1e-5;

/// Configuration of a GroupNorm layer over `channels` channels in `groups` groups.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupNorm {
    channels: usize,
    groups: usize,
    eps: f64,
}

/// Per-(batch, group) statistics saved by [`GroupNorm::forward`] for the backward pass.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupNormCache {
    /// Shape of the input the statistics belong to.
    pub dims: Dims4,
    /// Group means `μ`, `[n][groups]`.
    pub mean: Vec<f64>,
    /// Reciprocal standard deviations `1/sqrt(σ² + ε)`, `[n][groups]`.
    pub rstd: Vec<f64>,
}

impl GroupNorm {
    /// GroupNorm with `ε =` [`GROUP_NORM_EPS`]. `groups` must divide `channels`.
    pub fn new(channels: usize, groups: usize) -> Result<Self> {
        Self::with_eps(channels, groups, GROUP_NORM_EPS)
    }

    /// GroupNorm with a custom `ε > 0`.
    pub fn with_eps(channels: usize, groups: usize, eps: f64) -> Result<Self> {
        if channels == 0 {
            return Err(Error::invalid("channels", "must be positive"));
        }
        if groups == 0 || !channels.is_multiple_of(groups) {
            return Err(Error::invalid(
                "groups",
                format!("must be positive and divide channels = {channels}, got {groups}"),
            ));
        }
        if !(eps.is_finite() && eps > 0.0) {
            return Err(Error::invalid(
                "eps",
                format!("must be finite and positive, got {eps}"),
            ));
        }
        Ok(GroupNorm {
            channels,
            groups,
            eps,
        })
    }

    /// Channels.
    pub fn channels(&self) -> usize {
        self.channels
    }
    /// Groups.
    pub fn groups(&self) -> usize {
        self.groups
    }
    /// Variance regulariser `ε`.
    pub fn eps(&self) -> f64 {
        self.eps
    }

    fn check(&self, x: &[impl Real], dims: Dims4, gamma: &[impl Real]) -> Result<()> {
        check_tensor("x", dims, x.len())?;
        if dims.c != self.channels {
            return Err(Error::shape(
                "x",
                format!("{} channels", self.channels),
                format!("{} channels", dims.c),
            ));
        }
        check_len("gamma", self.channels, gamma.len())
    }

    /// Forward pass: returns `y` (shape of `x`) and the statistics the backward pass needs.
    pub fn forward<T: Real>(
        &self,
        x: &[T],
        dims: Dims4,
        gamma: &[T],
        beta: &[T],
    ) -> Result<(Vec<T>, GroupNormCache)> {
        self.check(x, dims, gamma)?;
        check_len("beta", self.channels, beta.len())?;
        let cpg = self.channels / self.groups;
        let plane = dims.plane();
        let block = cpg * plane;
        let m = block as f64;
        let eps = self.eps;
        let mut y = super::workspace::uncleared(x.len());
        let stats: Vec<(f64, f64)> = y
            .par_chunks_mut(block)
            .zip(x.par_chunks(block))
            .enumerate()
            .map(|(idx, (yb, xb))| {
                let g = idx % self.groups;
                let mu = lane_sum(xb, |v| v) / m;
                let var = lane_sum(xb, |v| (v - mu) * (v - mu)) / m;
                let rstd = 1.0 / (var + eps).sqrt();
                for (cl, (yp, xp)) in yb.chunks_mut(plane).zip(xb.chunks(plane)).enumerate() {
                    let c = g * cpg + cl;
                    // y = a (x - mu) + beta, a = gamma rstd (x - mu in the
                    // storage type: exact-ish for a nearly constant group)
                    let (at, mt, bt) = (
                        T::from_f64(gamma[c].to_f64() * rstd),
                        T::from_f64(mu),
                        beta[c],
                    );
                    crate::vmath::with_avx2(
                        #[inline(always)]
                        || {
                            for (yv, xv) in yp.iter_mut().zip(xp) {
                                *yv = (*xv - mt) * at + bt;
                            }
                        },
                    );
                }
                (mu, rstd)
            })
            .collect();
        let (mean, rstd) = stats.into_iter().unzip();
        Ok((y, GroupNormCache { dims, mean, rstd }))
    }

    /// Backward pass: given `x`, `gamma`, the cache from [`GroupNorm::forward`] on
    /// that `x`, and `dy = ∂L/∂y`, returns `(dx, dgamma, dbeta)`.
    pub fn backward<T: Real>(
        &self,
        x: &[T],
        dims: Dims4,
        gamma: &[T],
        cache: &GroupNormCache,
        dy: &[T],
    ) -> Result<(Vec<T>, Vec<T>, Vec<T>)> {
        self.check(x, dims, gamma)?;
        check_len("dy", x.len(), dy.len())?;
        if cache.dims != dims
            || cache.mean.len() != dims.n * self.groups
            || cache.rstd.len() != cache.mean.len()
        {
            return Err(Error::shape(
                "cache",
                dims.as_array(),
                cache.dims.as_array(),
            ));
        }
        let cpg = self.channels / self.groups;
        let plane = dims.plane();
        let block = cpg * plane;
        let m = block as f64;

        // per plane (n, c): S1 = Σ dy, S2 = Σ dy x; then with g = gamma dy,
        // Σ g = Σ_c gamma_c S1, Σ g x̂ = Σ_c gamma_c rstd (S2 - mu S1), and
        // dx = A dy + B (x - mu) + C with A = rstd gamma_c,
        // B = -rstd² mean(g x̂), C = -rstd mean(g)
        let mut dx = super::workspace::uncleared(x.len());
        let sums: Vec<Vec<(f64, f64)>> = dx
            .par_chunks_mut(block)
            .zip(x.par_chunks(block).zip(dy.par_chunks(block)))
            .enumerate()
            .map(|(idx, (dxb, (xb, dyb)))| {
                let g = idx % self.groups;
                let (mu, rs) = (cache.mean[idx], cache.rstd[idx]);
                let s: Vec<(f64, f64)> = xb
                    .chunks(plane)
                    .zip(dyb.chunks(plane))
                    .map(|(xp, dyp)| (lane_sum(dyp, |d| d), lane_dot(dyp, xp)))
                    .collect();
                let (mut sg, mut sgx) = (0.0f64, 0.0f64);
                for (cl, &(s1, s2)) in s.iter().enumerate() {
                    let ga = gamma[g * cpg + cl].to_f64();
                    sg += ga * s1;
                    sgx += ga * rs * (s2 - mu * s1);
                }
                let (mg, mgx) = (sg / m, sgx / m);
                let (bt, mt) = (T::from_f64(-rs * rs * mgx), T::from_f64(mu));
                let ct = T::from_f64(-rs * mg);
                for (cl, ((dxp, xp), dyp)) in dxb
                    .chunks_mut(plane)
                    .zip(xb.chunks(plane))
                    .zip(dyb.chunks(plane))
                    .enumerate()
                {
                    let at = T::from_f64(rs * gamma[g * cpg + cl].to_f64());
                    crate::vmath::with_avx2(
                        #[inline(always)]
                        || {
                            for ((dxv, xv), dv) in dxp.iter_mut().zip(xp).zip(dyp) {
                                *dxv = *dv * at + (*xv - mt) * bt + ct;
                            }
                        },
                    );
                }
                s
            })
            .collect();

        let (nb, cc, groups) = (dims.n, self.channels, self.groups);
        let per_c: Vec<(T, T)> = (0..cc)
            .map(|c| {
                let (g, cl) = (c / cpg, c % cpg);
                let (mut dg, mut dbt) = (0.0f64, 0.0f64);
                for n in 0..nb {
                    let idx = n * groups + g;
                    let (s1, s2) = sums[idx][cl];
                    dg += cache.rstd[idx] * (s2 - cache.mean[idx] * s1);
                    dbt += s1;
                }
                (T::from_f64(dg), T::from_f64(dbt))
            })
            .collect();
        let (dgamma, dbeta) = per_c.into_iter().unzip();
        Ok((dx, dgamma, dbeta))
    }
}

/// `Σ f(x_i)` in `f64` with 8 interleaved partial sums (so that the loop
/// vectorises; the order is fixed by the length alone).
fn lane_sum<T: Real>(x: &[T], f: impl Fn(f64) -> f64) -> f64 {
    crate::vmath::with_avx2(
        #[inline(always)]
        || {
            let mut acc = [0.0f64; 8];
            let mut it = x.chunks_exact(8);
            for c in &mut it {
                for (a, v) in acc.iter_mut().zip(c) {
                    *a += f(v.to_f64());
                }
            }
            let tail: f64 = it.remainder().iter().map(|v| f(v.to_f64())).sum();
            acc.iter().sum::<f64>() + tail
        },
    )
}

/// `Σ a_i b_i` in `f64`, as [`lane_sum`].
fn lane_dot<T: Real>(a: &[T], b: &[T]) -> f64 {
    crate::vmath::with_avx2(
        #[inline(always)]
        || {
            let mut acc = [0.0f64; 8];
            let (mut ia, mut ib) = (a.chunks_exact(8), b.chunks_exact(8));
            for (ca, cb) in (&mut ia).zip(&mut ib) {
                for ((s, x), y) in acc.iter_mut().zip(ca).zip(cb) {
                    *s += x.to_f64() * y.to_f64();
                }
            }
            let tail: f64 = ia
                .remainder()
                .iter()
                .zip(ib.remainder())
                .map(|(x, y)| x.to_f64() * y.to_f64())
                .sum();
            acc.iter().sum::<f64>() + tail
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_group_maps_to_beta() {
        let gn = GroupNorm::new(2, 1).unwrap();
        let dims = Dims4::new(1, 2, 2, 2);
        let x = vec![3.0f64; 8];
        let (y, cache) = gn.forward(&x, dims, &[2.0, 2.0], &[0.25, -1.0]).unwrap();
        assert_eq!(cache.mean, vec![3.0]);
        assert!(y[..4].iter().all(|&v| v == 0.25));
        assert!(y[4..].iter().all(|&v| v == -1.0));
    }

    #[test]
    fn rejects_bad_config() {
        assert!(GroupNorm::new(6, 4).is_err());
        assert!(GroupNorm::new(6, 0).is_err());
        assert!(GroupNorm::new(0, 1).is_err());
        assert!(GroupNorm::with_eps(4, 2, 0.0).is_err());
        assert!(GroupNorm::with_eps(4, 2, f64::NAN).is_err());
    }
}
