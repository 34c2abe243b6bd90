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
//!
//! In the U-Net every GroupNorm is followed by SiLU, in the residual blocks'
//! second half after a FiLM scale and shift: [`GroupNorm::forward_silu`] and
//! [`GroupNorm::backward_silu`] do the three layers in one pass over each
//! group (the normalised `y` and the intermediate gradients are not stored),
//! with the same results as the separate layers, bit for bit.

use rayon::prelude::*;

use super::act::{silu_backward_into, silu_into};
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
        let eps = self.eps;
        let mut y = super::workspace::uncleared(x.len());
        let stats: Vec<(f64, f64)> = y
            .par_chunks_mut(block)
            .zip(x.par_chunks(block))
            .enumerate()
            .map(|(idx, (yb, xb))| {
                let g = idx % self.groups;
                let (mu, rstd) = group_stats(xb, eps);
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
        self.check_cache(dims, cache)?;
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
                let (bt, ct) = dx_offsets(s.iter().copied(), &gamma[g * cpg..][..cpg], (mu, rs), m);
                let mt = T::from_f64(mu);
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

        let (dgamma, dbeta) = self.affine_gradients(dims, cache, |idx, cl| sums[idx][cl]);
        Ok((dx, dgamma, dbeta))
    }
}

impl GroupNorm {
    fn check_film<T: Real>(&self, dims: Dims4, film: Option<&[T]>) -> Result<()> {
        match film {
            Some(f) => check_len("film", dims.n * 2 * self.channels, f.len()),
            None => Ok(()),
        }
    }

    /// GroupNorm, an optional FiLM scale and shift per plane, and SiLU, in
    /// one pass over each group (issue #16):
    ///
    /// ```text
    /// y = γ x̂ + β,   z = y (1 + s[n][c]) + t[n][c]  (z = y without FiLM),   h = silu(z)
    /// ```
    ///
    /// `film` is `[n][2C]`: each item's scales, then its shifts (Perez et
    /// al. 2018, "FiLM", AAAI). Returns `(z, h, cache)`; `y` is not stored
    /// ([`GroupNorm::backward_silu`] recomputes it). Every element is
    /// computed with the operations of the three separate layers, in their
    /// order: the same results, bit for bit, in one pass instead of three.
    pub fn forward_silu<T: Real>(
        &self,
        x: &[T],
        dims: Dims4,
        gamma: &[T],
        beta: &[T],
        film: Option<&[T]>,
    ) -> Result<(Vec<T>, Vec<T>, GroupNormCache)> {
        self.check(x, dims, gamma)?;
        check_len("beta", self.channels, beta.len())?;
        self.check_film(dims, film)?;
        let (cc, groups) = (self.channels, self.groups);
        let cpg = cc / groups;
        let plane = dims.plane();
        let block = cpg * plane;
        let eps = self.eps;
        let mut z = super::workspace::uncleared(x.len());
        let mut h = super::workspace::uncleared(x.len());
        let stats: Vec<(f64, f64)> = z
            .par_chunks_mut(block)
            .zip(h.par_chunks_mut(block))
            .zip(x.par_chunks(block))
            .enumerate()
            .map(|(idx, ((zb, hb), xb))| {
                let (n, g) = (idx / groups, idx % groups);
                let (mu, rstd) = group_stats(xb, eps);
                for (cl, ((zp, hp), xp)) in zb
                    .chunks_mut(plane)
                    .zip(hb.chunks_mut(plane))
                    .zip(xb.chunks(plane))
                    .enumerate()
                {
                    let c = g * cpg + cl;
                    let (at, mt, bt) = (
                        T::from_f64(gamma[c].to_f64() * rstd),
                        T::from_f64(mu),
                        beta[c],
                    );
                    let (s, t) = film.map_or((T::one(), T::default()), |f| {
                        (T::one() + f[n * 2 * cc + c], f[n * 2 * cc + cc + c])
                    });
                    for ((zc, hc), xc) in zp
                        .chunks_mut(SILU_CHUNK)
                        .zip(hp.chunks_mut(SILU_CHUNK))
                        .zip(xp.chunks(SILU_CHUNK))
                    {
                        crate::vmath::with_avx2(
                            #[inline(always)]
                            || {
                                if film.is_some() {
                                    for (zv, xv) in zc.iter_mut().zip(xc) {
                                        *zv = ((*xv - mt) * at + bt) * s + t;
                                    }
                                } else {
                                    for (zv, xv) in zc.iter_mut().zip(xc) {
                                        *zv = (*xv - mt) * at + bt;
                                    }
                                }
                            },
                        );
                        silu_into(zc, hc);
                    }
                }
                (mu, rstd)
            })
            .collect();
        let (mean, rstd) = stats.into_iter().unzip();
        Ok((z, h, GroupNormCache { dims, mean, rstd }))
    }

    /// The backward pass of [`GroupNorm::forward_silu`], given its `x`,
    /// `film`, cache and `z`, and `dh = ∂L/∂h`:
    ///
    /// ```text
    /// dz = silu'(z) dh,   ∂L/∂s = Σ dz · y,   ∂L/∂t = Σ dz   (per plane, f64, in pixel order),
    /// dy = dz (1 + s),    then GroupNorm's backward with dy
    /// ```
    ///
    /// Returns `(dx, dγ, dβ, dfilm)`, `dfilm` laid out as `film` (empty
    /// without FiLM). `y` is recomputed from `x` as the forward pass computed
    /// it, and `dy` is written into `dx`'s buffer and transformed there in
    /// place: the same results as the separate layers, bit for bit, with
    /// neither `dz` nor `y` stored.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    pub fn backward_silu<T: Real>(
        &self,
        x: &[T],
        dims: Dims4,
        gamma: &[T],
        beta: &[T],
        film: Option<&[T]>,
        cache: &GroupNormCache,
        z: &[T],
        dh: &[T],
    ) -> Result<(Vec<T>, Vec<T>, Vec<T>, Vec<T>)> {
        self.check(x, dims, gamma)?;
        check_len("beta", self.channels, beta.len())?;
        check_len("z", x.len(), z.len())?;
        check_len("dh", x.len(), dh.len())?;
        self.check_film(dims, film)?;
        self.check_cache(dims, cache)?;
        let (cc, groups) = (self.channels, self.groups);
        let cpg = cc / groups;
        let plane = dims.plane();
        let block = cpg * plane;
        let m = block as f64;
        let mut dx = super::workspace::uncleared(x.len());
        // per plane: (S1, S2) of GroupNorm's backward and (∂L/∂s, ∂L/∂t)
        type PlaneSums = Vec<((f64, f64), (f64, f64))>;
        let sums: Vec<PlaneSums> = dx
            .par_chunks_mut(block)
            .zip(
                x.par_chunks(block)
                    .zip(z.par_chunks(block).zip(dh.par_chunks(block))),
            )
            .enumerate()
            .map(|(idx, (dxb, (xb, (zb, dhb))))| {
                let (n, g) = (idx / groups, idx % groups);
                let (mu, rs) = (cache.mean[idx], cache.rstd[idx]);
                let mt = T::from_f64(mu);
                let s: PlaneSums = dxb
                    .chunks_mut(plane)
                    .zip(
                        xb.chunks(plane)
                            .zip(zb.chunks(plane).zip(dhb.chunks(plane))),
                    )
                    .enumerate()
                    .map(|(cl, (dxp, (xp, (zp, dhp))))| {
                        let c = g * cpg + cl;
                        silu_backward_into(zp, dhp, dxp);
                        let mut film_sums = (0.0, 0.0);
                        if let Some(f) = film {
                            // dz is in dxp; y as the forward pass made it
                            let at = T::from_f64(gamma[c].to_f64() * rs);
                            let bt = beta[c];
                            let (mut ds, mut dt) = (-0.0f64, -0.0f64);
                            for (dz, xv) in dxp.iter().zip(xp) {
                                let y = (*xv - mt) * at + bt;
                                ds += dz.to_f64() * y.to_f64();
                                dt += dz.to_f64();
                            }
                            film_sums = (ds, dt);
                            let st = T::one() + f[n * 2 * cc + c];
                            crate::vmath::with_avx2(
                                #[inline(always)]
                                || dxp.iter_mut().for_each(|v| *v = *v * st),
                            );
                        }
                        ((lane_sum(dxp, |d| d), lane_dot(dxp, xp)), film_sums)
                    })
                    .collect();
                let (bt, ct) = dx_offsets(
                    s.iter().map(|&(s12, _)| s12),
                    &gamma[g * cpg..][..cpg],
                    (mu, rs),
                    m,
                );
                for (cl, (dxp, xp)) in dxb.chunks_mut(plane).zip(xb.chunks(plane)).enumerate() {
                    let at = T::from_f64(rs * gamma[g * cpg + cl].to_f64());
                    crate::vmath::with_avx2(
                        #[inline(always)]
                        || {
                            for (dxv, xv) in dxp.iter_mut().zip(xp) {
                                *dxv = *dxv * at + (*xv - mt) * bt + ct;
                            }
                        },
                    );
                }
                s
            })
            .collect();
        let (dgamma, dbeta) = self.affine_gradients(dims, cache, |idx, cl| sums[idx][cl].0);
        let dfilm = match film {
            None => Vec::new(),
            Some(_) => {
                let mut d = vec![T::default(); dims.n * 2 * cc];
                for (idx, s) in sums.iter().enumerate() {
                    let (n, g) = (idx / groups, idx % groups);
                    for (cl, &(_, (ds, dt))) in s.iter().enumerate() {
                        d[n * 2 * cc + g * cpg + cl] = T::from_f64(ds);
                        d[n * 2 * cc + cc + g * cpg + cl] = T::from_f64(dt);
                    }
                }
                d
            }
        };
        Ok((dx, dgamma, dbeta, dfilm))
    }

    fn check_cache(&self, dims: Dims4, cache: &GroupNormCache) -> Result<()> {
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
        Ok(())
    }

    /// `dγ[c] = Σ_n rstd (S2 - μ S1)`, `dβ[c] = Σ_n S1` from each plane's
    /// `(S1, S2) = sums(n·groups + g, c mod C/G)`, summed in order of `n`.
    fn affine_gradients<T: Real>(
        &self,
        dims: Dims4,
        cache: &GroupNormCache,
        sums: impl Fn(usize, usize) -> (f64, f64),
    ) -> (Vec<T>, Vec<T>) {
        let (cc, groups) = (self.channels, self.groups);
        let cpg = cc / groups;
        (0..cc)
            .map(|c| {
                let (g, cl) = (c / cpg, c % cpg);
                let (mut dg, mut dbt) = (0.0f64, 0.0f64);
                for n in 0..dims.n {
                    let idx = n * groups + g;
                    let (s1, s2) = sums(idx, cl);
                    dg += cache.rstd[idx] * (s2 - cache.mean[idx] * s1);
                    dbt += s1;
                }
                (T::from_f64(dg), T::from_f64(dbt))
            })
            .unzip()
    }
}

/// Elements per piece of a plane in [`GroupNorm::forward_silu`] (`z` is
/// still in the L1 cache when SiLU reads it).
const SILU_CHUNK: usize = 2048;

/// A group's mean and `1/sqrt(σ² + ε)` (biased variance about the mean).
fn group_stats<T: Real>(xb: &[T], eps: f64) -> (f64, f64) {
    let m = xb.len() as f64;
    let mu = lane_sum(xb, |v| v) / m;
    let var = lane_sum(xb, |v| (v - mu) * (v - mu)) / m;
    (mu, 1.0 / (var + eps).sqrt())
}

/// The coefficients `B = -rstd² mean(g x̂)` and `C = -rstd mean(g)` of a
/// group's `dx = A dy + B (x - μ) + C` (module docs), from each plane's
/// `(S1, S2) = (Σ dy, Σ dy x)`, the group's `γ`, `(μ, rstd)` and size `m`.
fn dx_offsets<T: Real>(
    sums: impl Iterator<Item = (f64, f64)>,
    gamma: &[T],
    (mu, rs): (f64, f64),
    m: f64,
) -> (T, T) {
    let (mut sg, mut sgx) = (0.0f64, 0.0f64);
    for ((s1, s2), ga) in sums.zip(gamma) {
        let ga = ga.to_f64();
        sg += ga * s1;
        sgx += ga * rs * (s2 - mu * s1);
    }
    let (mg, mgx) = (sg / m, sgx / m);
    (T::from_f64(-rs * rs * mgx), T::from_f64(-rs * mg))
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

    /// The fused layer equals GroupNorm, FiLM and SiLU run one after the
    /// other (`nn::act`), forward and backward, bit for bit, with and
    /// without FiLM, in `f32` and `f64`.
    #[test]
    fn fused_silu_equals_the_separate_layers_bitwise() {
        use crate::nn::act::{silu_backward, silu_forward};
        use crate::rng::{Philox, Stream};
        fn run<T: Real + std::fmt::Debug>(with_film: bool) {
            let (n, c, g, h, w) = (3, 8, 4, 5, 7);
            let dims = Dims4::new(n, c, h, w);
            let plane = h * w;
            let random = |len: usize, seed: u64, scale: f64| -> Vec<T> {
                let mut v = vec![0.0f32; len];
                Philox::new(seed, Stream::Training, 0, 0).fill_normal(&mut v);
                v.iter()
                    .map(|&x| T::from_f64(0.3 + scale * f64::from(x)))
                    .collect()
            };
            let gn = GroupNorm::new(c, g).unwrap();
            let (x, gamma, beta) = (
                random(dims.len(), 1, 2.0),
                random(c, 2, 1.0),
                random(c, 3, 1.0),
            );
            let film = random(n * 2 * c, 4, 0.5);
            let film = with_film.then_some(&film[..]);
            let dh = random(dims.len(), 5, 1.0);
            // separately
            let (y, cache) = gn.forward(&x, dims, &gamma, &beta).unwrap();
            let mut z = y.clone();
            if let Some(f) = film {
                for (idx, zp) in z.chunks_mut(plane).enumerate() {
                    let (i, ch) = (idx / c, idx % c);
                    let (s, t) = (T::one() + f[i * 2 * c + ch], f[i * 2 * c + c + ch]);
                    zp.iter_mut().for_each(|v| *v = *v * s + t);
                }
            }
            let hh = silu_forward(&z);
            let dz = silu_backward(&z, &dh).unwrap();
            let mut dy = dz.clone();
            let mut dfilm = vec![T::default(); if with_film { n * 2 * c } else { 0 }];
            if let Some(f) = film {
                for (idx, (dyp, (dzp, yp))) in dy
                    .chunks_mut(plane)
                    .zip(dz.chunks(plane).zip(y.chunks(plane)))
                    .enumerate()
                {
                    let (i, ch) = (idx / c, idx % c);
                    let ds: f64 = dzp
                        .iter()
                        .zip(yp)
                        .map(|(a, b)| a.to_f64() * b.to_f64())
                        .sum();
                    let dt: f64 = dzp.iter().map(|a| a.to_f64()).sum();
                    dfilm[i * 2 * c + ch] = T::from_f64(ds);
                    dfilm[i * 2 * c + c + ch] = T::from_f64(dt);
                    let s = T::one() + f[i * 2 * c + ch];
                    dyp.iter_mut().for_each(|v| *v = *v * s);
                }
            }
            let (dx, dg, db) = gn.backward(&x, dims, &gamma, &cache, &dy).unwrap();
            // fused
            let (z2, h2, cache2) = gn.forward_silu(&x, dims, &gamma, &beta, film).unwrap();
            let (dx2, dg2, db2, dfilm2) = gn
                .backward_silu(&x, dims, &gamma, &beta, film, &cache2, &z2, &dh)
                .unwrap();
            let bits = |a: &[T], b: &[T], what: &str| {
                assert_eq!(a.len(), b.len(), "{what}");
                for (i, (p, q)) in a.iter().zip(b).enumerate() {
                    assert!(
                        p.to_f64().to_bits() == q.to_f64().to_bits(),
                        "{what} [{i}]: {p:?} vs {q:?} (film {with_film})"
                    );
                }
            };
            assert_eq!(cache, cache2);
            bits(&z, &z2, "z");
            bits(&hh, &h2, "h");
            bits(&dx, &dx2, "dx");
            bits(&dg, &dg2, "dgamma");
            bits(&db, &db2, "dbeta");
            bits(&dfilm, &dfilm2, "dfilm");
        }
        for with_film in [false, true] {
            run::<f32>(with_film);
            run::<f64>(with_film);
        }
        // a FiLM vector of the wrong length is an error
        let gn = GroupNorm::new(2, 1).unwrap();
        let dims = Dims4::new(1, 2, 2, 2);
        assert!(gn
            .forward_silu(&[0.0f64; 8], dims, &[1.0; 2], &[0.0; 2], Some(&[0.0; 3]))
            .is_err());
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
