//! Integrals over the standardised parameters `u` of an unnormalised density
//! `exp(L(u))`, as normalised weights on nodes, so that posterior means of any
//! per-node quantity are weighted sums.
//!
//! - [`adaptive`]: adaptive Gauss–Hermite quadrature (Naylor & Smith 1982;
//!   Liu & Pierce 1994). With the Gaussian `N(c, L L^T)` the nodes are `u_i =
//!   c + L z_i` (`z_i` the tensor-product probabilists' Gauss–Hermite nodes,
//!   weights `w_i`) and the weights `W_i ∝ w_i exp(L(u_i) + |z_i|²/2)`.
//!   Starting from a given Gaussian, each pass moves `(c, L L^T)` to the
//!   posterior mean and covariance of the previous pass, until both settle.
//! - [`grid`]: a brute-force tensor Simpson grid over a box (the reference).
//!
//! Both return the nodes and their weights (summing to 1) and the per-node
//! values `L(u_i)` and payloads that the caller's closure computed.

use crate::error::{Error, Result};
use crate::fields::tomography::jacobi_eigen;

/// A Gaussian `N(mean, L L^T)` over `u` (`chol` row-major lower triangular).
#[derive(Debug, Clone, PartialEq)]
pub struct Gauss {
    /// The centre.
    pub mean: Vec<f64>,
    /// The lower Cholesky factor, `p x p` row-major.
    pub chol: Vec<f64>,
}

impl Gauss {
    /// `N(mean, diag(std²))`.
    pub fn diagonal(mean: Vec<f64>, std: &[f64]) -> Self {
        let p = mean.len();
        let mut chol = vec![0.0; p * p];
        for (d, s) in std.iter().enumerate() {
            chol[d * p + d] = *s;
        }
        Gauss { mean, chol }
    }

    /// The Gaussian with this covariance (`p x p`, symmetric), `None` unless
    /// positive definite.
    pub fn from_covariance(mean: Vec<f64>, cov: &[f64]) -> Option<Self> {
        let p = mean.len();
        let mut l = vec![0.0; p * p];
        for i in 0..p {
            for j in 0..=i {
                let mut s = cov[i * p + j];
                for k in 0..j {
                    s -= l[i * p + k] * l[j * p + k];
                }
                if i == j {
                    if !(s > 0.0 && s.is_finite()) {
                        return None;
                    }
                    l[i * p + i] = s.sqrt();
                } else {
                    l[i * p + j] = s / l[j * p + j];
                }
            }
        }
        Some(Gauss { mean, chol: l })
    }
}

/// A quadrature's result: nodes, normalised weights and the closure's values.
#[derive(Debug, Clone)]
pub struct Quadrature<T> {
    /// The nodes `u_i`, `[node][p]`.
    pub nodes: Vec<Vec<f64>>,
    /// Weights, summing to 1.
    pub weights: Vec<f64>,
    /// The payload the closure returned for each node.
    pub payloads: Vec<T>,
    /// Passes made ([`adaptive`]; 1 for [`grid`]).
    pub passes: usize,
}

impl<T> Quadrature<T> {
    /// The weighted mean of the nodes.
    pub fn mean(&self) -> Vec<f64> {
        let p = self.nodes.first().map_or(0, |n| n.len());
        let mut m = vec![0.0; p];
        for (u, w) in self.nodes.iter().zip(&self.weights) {
            for d in 0..p {
                m[d] += w * u[d];
            }
        }
        m
    }

    /// The weighted covariance of the nodes (`p x p`).
    pub fn covariance(&self) -> Vec<f64> {
        let m = self.mean();
        let p = m.len();
        let mut c = vec![0.0; p * p];
        for (u, w) in self.nodes.iter().zip(&self.weights) {
            for i in 0..p {
                for j in 0..p {
                    c[i * p + j] += w * (u[i] - m[i]) * (u[j] - m[j]);
                }
            }
        }
        c
    }
}

/// The probabilists' Gauss–Hermite rule of `n` nodes (`∫ f(z) N(z; 0, 1) dz ≈
/// sum w_i f(z_i)`, exact for polynomials of degree `< 2n`), by Golub & Welsch
/// (1969): the nodes are the eigenvalues of the Jacobi matrix with
/// off-diagonal `sqrt(k)`, the weights the squared first components of its
/// eigenvectors.
pub fn gauss_hermite(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut j = vec![0.0; n * n];
    for k in 1..n {
        let v = (k as f64).sqrt();
        j[(k - 1) * n + k] = v;
        j[k * n + k - 1] = v;
    }
    let (e, v) = jacobi_eigen(&j, n);
    let mut rule: Vec<(f64, f64)> = (0..n).map(|i| (e[i], v[i] * v[i])).collect();
    rule.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = rule.iter().map(|r| r.1).sum();
    (
        rule.iter().map(|r| r.0).collect(),
        rule.iter().map(|r| r.1 / total).collect(),
    )
}

/// Settings of [`adaptive`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveOptions {
    /// Gauss–Hermite nodes per dimension of the first pass.
    pub first_nodes: usize,
    /// Nodes per dimension of the later passes.
    pub nodes: usize,
    /// Stop when the pass's Gaussian was centred within this many standard
    /// deviations of the posterior mean it found and its stds within this
    /// fraction of the posterior's. The posterior of `u` can be far from
    /// Gaussian (the `omega_c`–`sigma8` banana), where a pass from a poor
    /// centre is poor too: 0.05 let a warm start settle 1 sd off; the default
    /// 1e-4 is within 3e-5 sd of a brute-force grid (tests/joint.rs).
    pub tol: f64,
    /// At most this many passes.
    pub max_passes: usize,
}

impl Default for AdaptiveOptions {
    fn default() -> Self {
        AdaptiveOptions {
            first_nodes: 10,
            nodes: 10,
            tol: 1e-4,
            max_passes: 8,
        }
    }
}

/// Adaptive Gauss–Hermite quadrature of `exp(L(u))` from the Gaussian
/// `start` (module docs); `f(u)` returns `(L(u), payload)`. Fails if every
/// node has `L = -inf` or a NaN appears.
pub fn adaptive<T>(
    start: &Gauss,
    opts: &AdaptiveOptions,
    f: &mut dyn FnMut(&[f64]) -> (f64, T),
) -> Result<Quadrature<T>> {
    let p = start.mean.len();
    let mut g = start.clone();
    let mut passes = 0;
    // the two rules, once per call (not once per pass)
    let first = gauss_hermite(opts.first_nodes);
    let later = if opts.nodes == opts.first_nodes {
        first.clone()
    } else {
        gauss_hermite(opts.nodes)
    };
    loop {
        passes += 1;
        let (n, (z1, w1)) = if passes == 1 {
            (opts.first_nodes, &first)
        } else {
            (opts.nodes, &later)
        };
        let total = n.pow(p as u32);
        let mut nodes = Vec::with_capacity(total);
        let mut log_w = Vec::with_capacity(total);
        let mut payloads = Vec::with_capacity(total);
        let mut z = vec![0.0; p];
        for idx in 0..total {
            let (mut rest, mut lw, mut z2) = (idx, 0.0, 0.0);
            for zd in z.iter_mut() {
                let i = rest % n;
                rest /= n;
                *zd = z1[i];
                lw += w1[i].ln();
                z2 += z1[i] * z1[i];
            }
            let u: Vec<f64> = (0..p)
                .map(|i| g.mean[i] + (0..=i).map(|k| g.chol[i * p + k] * z[k]).sum::<f64>())
                .collect();
            let (l, payload) = f(&u);
            log_w.push(lw + l + 0.5 * z2);
            nodes.push(u);
            payloads.push(payload);
        }
        let q = normalise(nodes, log_w, payloads, passes)?;
        let (m, c) = (q.mean(), q.covariance());
        let next = Gauss::from_covariance(m.clone(), &c);
        let settled = next.as_ref().is_some_and(|next| {
            (0..p).all(|d| {
                let (s_old, s_new) = (row_norm(&g.chol, p, d), row_norm(&next.chol, p, d));
                (m[d] - g.mean[d]).abs() <= opts.tol * s_old
                    && (s_new / s_old - 1.0).abs() <= opts.tol
            })
        });
        match next {
            Some(next) if !settled && passes < opts.max_passes => g = next,
            _ => return Ok(q),
        }
    }
}

/// The Laplace approximation of `exp(L(u))` from `start`: Newton's method on
/// `L` with central finite differences (step `1e-3` of `start`'s stds),
/// halving steps that do not increase `L`, then `N(mode, (-H)^-1)`. Returns
/// `start` moved to the best point found if the Hessian there is not
/// negative definite. About `1 + 2p²` evaluations of `L` per iteration.
pub fn laplace<T>(start: &Gauss, f: &mut dyn FnMut(&[f64]) -> (f64, T)) -> Gauss {
    let p = start.mean.len();
    let scale: Vec<f64> = (0..p).map(|d| row_norm(&start.chol, p, d)).collect();
    let mut u = start.mean.clone();
    let mut l0 = f(&u).0;
    let mut hess = vec![0.0; p * p];
    for _ in 0..30 {
        // gradient and Hessian by central differences
        let h: Vec<f64> = scale.iter().map(|s| 1e-3 * s).collect();
        let mut grad = vec![0.0; p];
        let mut at = |d: &[(usize, f64)]| {
            let mut v = u.clone();
            for &(i, s) in d {
                v[i] += s * h[i];
            }
            f(&v).0
        };
        let mut plus = vec![0.0; p];
        let mut minus = vec![0.0; p];
        for i in 0..p {
            plus[i] = at(&[(i, 1.0)]);
            minus[i] = at(&[(i, -1.0)]);
            grad[i] = (plus[i] - minus[i]) / (2.0 * h[i]);
            hess[i * p + i] = (plus[i] - 2.0 * l0 + minus[i]) / (h[i] * h[i]);
        }
        for i in 0..p {
            for j in 0..i {
                let v = (at(&[(i, 1.0), (j, 1.0)])
                    - at(&[(i, 1.0), (j, -1.0)])
                    - at(&[(i, -1.0), (j, 1.0)])
                    + at(&[(i, -1.0), (j, -1.0)]))
                    / (4.0 * h[i] * h[j]);
                hess[i * p + j] = v;
                hess[j * p + i] = v;
            }
        }
        // Newton step -H^-1 g where -H is positive definite, else a gradient
        // step of one start std
        let neg: Vec<f64> = hess.iter().map(|v| -v).collect();
        let step = match Gauss::from_covariance(vec![0.0; p], &neg) {
            Some(c) => solve_chol(&c.chol, p, &grad),
            None => {
                let norm = grad
                    .iter()
                    .zip(&scale)
                    .map(|(g, s)| (g * s).powi(2))
                    .sum::<f64>()
                    .sqrt();
                grad.iter()
                    .zip(&scale)
                    .map(|(g, s)| g * s * s / norm.max(1e-300))
                    .collect()
            }
        };
        if step.iter().any(|v| !v.is_finite()) {
            break;
        }
        let mut t = 1.0;
        let mut moved = false;
        for _ in 0..20 {
            let v: Vec<f64> = u.iter().zip(&step).map(|(u, s)| u + t * s).collect();
            let l = f(&v).0;
            if l > l0 {
                u = v;
                l0 = l;
                moved = true;
                break;
            }
            t *= 0.5;
        }
        let small = step
            .iter()
            .zip(&scale)
            .all(|(s, sc)| (t * s).abs() < 1e-6 * sc);
        if !moved || small {
            break;
        }
    }
    // the covariance (-H)^-1 at the mode
    let neg: Vec<f64> = hess.iter().map(|v| -v).collect();
    match invert_spd(&neg, p) {
        Some(cov) => Gauss::from_covariance(u.clone(), &cov).unwrap_or(Gauss {
            mean: u,
            chol: start.chol.clone(),
        }),
        None => Gauss {
            mean: u,
            chol: start.chol.clone(),
        },
    }
}

/// `(L L^T)^-1 b` for lower-triangular `L`.
fn solve_chol(l: &[f64], p: usize, b: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; p];
    for i in 0..p {
        y[i] = (b[i] - (0..i).map(|k| l[i * p + k] * y[k]).sum::<f64>()) / l[i * p + i];
    }
    let mut x = vec![0.0; p];
    for i in (0..p).rev() {
        x[i] = (y[i] - (i + 1..p).map(|k| l[k * p + i] * x[k]).sum::<f64>()) / l[i * p + i];
    }
    x
}

/// The inverse of a symmetric positive definite `p x p` matrix, `None` if it
/// is not.
fn invert_spd(a: &[f64], p: usize) -> Option<Vec<f64>> {
    let c = Gauss::from_covariance(vec![0.0; p], a)?;
    let mut inv = vec![0.0; p * p];
    for j in 0..p {
        let e: Vec<f64> = (0..p).map(|i| if i == j { 1.0 } else { 0.0 }).collect();
        let col = solve_chol(&c.chol, p, &e);
        for i in 0..p {
            inv[i * p + j] = col[i];
        }
    }
    Some(inv)
}

/// Brute-force tensor Simpson quadrature of `exp(L(u))` on `points` (odd)
/// nodes per dimension over `centre ± half_width`.
pub fn grid<T>(
    centre: &[f64],
    half_width: &[f64],
    points: usize,
    f: &mut dyn FnMut(&[f64]) -> (f64, T),
) -> Result<Quadrature<T>> {
    if points < 3 || points.is_multiple_of(2) {
        return Err(Error::invalid(
            "points",
            format!("need an odd number >= 3, got {points}"),
        ));
    }
    let p = centre.len();
    let total = points.pow(p as u32);
    let (mut nodes, mut log_w, mut payloads) = (
        Vec::with_capacity(total),
        Vec::with_capacity(total),
        Vec::with_capacity(total),
    );
    for idx in 0..total {
        let (mut rest, mut lw) = (idx, 0.0);
        let u: Vec<f64> = (0..p)
            .map(|d| {
                let i = rest % points;
                rest /= points;
                let w: f64 = if i == 0 || i == points - 1 {
                    1.0
                } else if i % 2 == 1 {
                    4.0
                } else {
                    2.0
                };
                lw += w.ln();
                centre[d] - half_width[d] + 2.0 * half_width[d] * i as f64 / (points - 1) as f64
            })
            .collect();
        let (l, payload) = f(&u);
        log_w.push(lw + l);
        nodes.push(u);
        payloads.push(payload);
    }
    normalise(nodes, log_w, payloads, 1)
}

/// `|row d of L|`: the std of dimension `d`.
fn row_norm(l: &[f64], p: usize, d: usize) -> f64 {
    (0..p)
        .map(|k| l[d * p + k] * l[d * p + k])
        .sum::<f64>()
        .sqrt()
}

fn normalise<T>(
    nodes: Vec<Vec<f64>>,
    log_w: Vec<f64>,
    payloads: Vec<T>,
    passes: usize,
) -> Result<Quadrature<T>> {
    if log_w.iter().any(|v| v.is_nan()) {
        return Err(Error::invalid(
            "quadrature",
            "the log integrand is NaN at a node",
        ));
    }
    let top = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if top.is_infinite() {
        return Err(Error::invalid(
            "quadrature",
            format!("the log integrand is {top} at every node"),
        ));
    }
    let mut weights: Vec<f64> = log_w.iter().map(|v| (v - top).exp()).collect();
    let total: f64 = weights.iter().sum();
    weights.iter_mut().for_each(|w| *w /= total);
    Ok(Quadrature {
        nodes,
        weights,
        payloads,
        passes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_hermite_integrates_gaussian_moments() {
        for n in [1, 4, 10, 16] {
            let (z, w) = gauss_hermite(n);
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-14);
            // E z^2k = (2k-1)!! for 2k < 2n
            let mut dfact = 1.0;
            for k in 1..n {
                dfact *= (2 * k - 1) as f64;
                let m: f64 = z
                    .iter()
                    .zip(&w)
                    .map(|(z, w)| w * z.powi(2 * k as i32))
                    .sum();
                assert!(
                    (m / dfact - 1.0).abs() < 1e-10,
                    "n {n} k {k}: {m} vs {dfact}"
                );
            }
        }
    }

    #[test]
    fn adaptive_and_grid_agree_on_a_skewed_density() {
        // exp(L) = N(u; 0, I) N(u0; 1.5, 0.3²) times a skewing factor that is
        // analytic everywhere (a factor with poles near the real axis, such as
        // exp(tanh), converges much more slowly under Gauss–Hermite: 2.4e-4 sd
        // with 10 nodes), from the prior's Gaussian through the Laplace start,
        // as the joint denoiser does; bound: 1e-4 sd (the denoiser's claim)
        let mut f = |u: &[f64]| {
            let l = -0.5 * (u[0] * u[0] + u[1] * u[1]) - (u[0] - 1.5).powi(2) / (2.0 * 0.09)
                + 0.3 * (u[1] - 0.5 * u[0]).sin();
            (l, ())
        };
        let g = grid(&[0.0, 0.0], &[8.0, 8.0], 801, &mut f).unwrap();
        let (mg, cg) = (g.mean(), g.covariance());
        let start = laplace(&Gauss::diagonal(vec![0.0, 0.0], &[1.0, 1.0]), &mut f);
        let a = adaptive(&start, &AdaptiveOptions::default(), &mut f).unwrap();
        let (ma, ca) = (a.mean(), a.covariance());
        eprintln!(
            "adaptive {ma:?} {ca:?} ({} passes), grid {mg:?} {cg:?}",
            a.passes
        );
        for d in 0..2 {
            assert!(
                (ma[d] - mg[d]).abs() < 1e-4 * cg[d * 3].sqrt(),
                "{ma:?} {mg:?}"
            );
            assert!((ca[d * 3] / cg[d * 3] - 1.0).abs() < 1e-3, "{ca:?} {cg:?}");
        }
    }
}
