//! Dense f64 linear algebra for exact oracles on small grids, built from
//! direct DFT sums (independent of the FFT code).

use lensdiff::noise::NoiseModel;
use lensdiff::spectrum::ClTable;
use lensdiff::Grid;

/// Real part of (1/N) sum_k f(k) exp(2 pi i k.(x - x')) as an N x N matrix.
pub fn dense_operator(g: &Grid, f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    let (nx, ny, n) = (g.nx, g.ny, g.len());
    let freq = |i: usize, m: usize| lensdiff::grid::fftfreq(i, m);
    let mut kernel = vec![0.0; n];
    for dy in 0..ny {
        for dx in 0..nx {
            let mut acc = 0.0;
            for iy in 0..ny {
                for ix in 0..nx {
                    let (k1, k2) = (freq(ix, nx), freq(iy, ny));
                    let ph = 2.0
                        * std::f64::consts::PI
                        * (ix as f64 * dx as f64 / nx as f64 + iy as f64 * dy as f64 / ny as f64);
                    acc += f(k1, k2) * ph.cos();
                }
            }
            kernel[dy * nx + dx] = acc / n as f64;
        }
    }
    let mut m = vec![0.0; n * n];
    for a in 0..n {
        for b in 0..n {
            let dy = ((a / nx) + ny - (b / nx)) % ny;
            let dx = ((a % nx) + nx - (b % nx)) % nx;
            m[a * n + b] = kernel[dy * nx + dx];
        }
    }
    m
}

/// Cholesky factor L (lower, row-major) of an SPD matrix.
pub fn cholesky(a: &[f64], n: usize) -> Vec<f64> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                assert!(s > 0.0, "matrix not positive definite");
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    l
}

/// Solves L L^T x = b.
pub fn cholesky_solve(l: &[f64], n: usize, b: &[f64]) -> Vec<f64> {
    let mut y = b.to_vec();
    for i in 0..n {
        for k in 0..i {
            y[i] -= l[i * n + k] * y[k];
        }
        y[i] /= l[i * n + i];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            y[i] -= l[k * n + i] * y[k];
        }
        y[i] /= l[i * n + i];
    }
    y
}

/// The exact Gaussian posterior of kappa on a small masked grid.
pub struct DensePosterior {
    /// Posterior mean per pixel.
    pub mean: Vec<f64>,
    /// Posterior covariance (N x N).
    pub cov: Vec<f64>,
}

/// kappa | gamma for prior C (from the table), observed components of P,
/// noise variances 1/w: mean = C P_o^T A^{-1} g_o, cov = C - C P_o^T A^{-1} P_o C,
/// A = P_o C P_o^T + N_o.
pub fn dense_posterior(
    g: &Grid,
    t: &ClTable,
    noise: &NoiseModel,
    g1: &[f32],
    g2: &[f32],
) -> DensePosterior {
    let n = g.len();
    let d = g.pixel_rad();
    let s = |k1: f64, k2: f64| t.eval(2.0 * std::f64::consts::PI * k1.hypot(k2) / d) / (d * d);
    let zero = |k1: f64, k2: f64| k1 == 0.0 && k2 == 0.0;
    let p1f = |k1: f64, k2: f64| {
        if zero(k1, k2) {
            0.0
        } else {
            (k1 * k1 - k2 * k2) / (k1 * k1 + k2 * k2)
        }
    };
    let p2f = |k1: f64, k2: f64| {
        if zero(k1, k2) {
            0.0
        } else {
            2.0 * k1 * k2 / (k1 * k1 + k2 * k2)
        }
    };
    let c = dense_operator(g, s);
    let p1 = dense_operator(g, p1f);
    let p2 = dense_operator(g, p2f);
    let mut rows: Vec<Vec<f64>> = vec![];
    let (mut data, mut var) = (vec![], vec![]);
    for (p, w, gm) in [(&p1, noise.weight1(), g1), (&p2, noise.weight2(), g2)] {
        for i in 0..n {
            if w[i] > 0.0 {
                rows.push(p[i * n..(i + 1) * n].to_vec());
                data.push(gm[i] as f64);
                var.push(1.0 / w[i] as f64);
            }
        }
    }
    let m = rows.len();
    // PC (m x n), C symmetric
    let pc: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| {
            (0..n)
                .map(|j| (0..n).map(|k| r[k] * c[k * n + j]).sum())
                .collect()
        })
        .collect();
    let mut a = vec![0.0; m * m];
    for i in 0..m {
        for j in 0..=i {
            let v = (0..n).map(|k| pc[i][k] * rows[j][k]).sum::<f64>();
            a[i * m + j] = v;
            a[j * m + i] = v;
        }
        a[i * m + i] += var[i];
    }
    let l = cholesky(&a, m);
    let y = cholesky_solve(&l, m, &data);
    let mean: Vec<f64> = (0..n)
        .map(|j| (0..m).map(|i| pc[i][j] * y[i]).sum())
        .collect();
    // cov = C - (PC)^T A^{-1} (PC)
    let mut cov = c.clone();
    for j in 0..n {
        let col: Vec<f64> = (0..m).map(|i| pc[i][j]).collect();
        let x = cholesky_solve(&l, m, &col);
        for i in 0..n {
            let v: f64 = (0..m).map(|k| pc[k][i] * x[k]).sum();
            cov[i * n + j] -= v;
        }
    }
    DensePosterior { mean, cov }
}
