//! The Wiener filter against exact dense solves and against its Fourier form.

mod common;

use lensdiff::baselines::{WienerFilter, WienerOptions};
use lensdiff::noise::NoiseModel;
use lensdiff::spectrum::ClTable;
use lensdiff::Grid;

fn table() -> ClTable {
    let ell: Vec<f64> = (0..40)
        .map(|i| 10f64.powf(1.5 + 3.5 * i as f64 / 39.0))
        .collect();
    let cl = ell.iter().map(|l| 1e-8 * (l / 1000.0).powf(-1.0)).collect();
    ClTable::new(ell, cl).unwrap()
}

/// Real part of (1/N) sum_k f(k) exp(2 pi i k.(x - x')), built independently of
/// the FFT code by direct sums over the full plane.
fn dense_operator(g: &Grid, f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    let (nx, ny, n) = (g.nx, g.ny, g.len());
    let freq = |i: usize, m: usize| lensdiff::grid::fftfreq(i, m);
    let mut kernel = vec![0.0; n]; // as a function of the separation (dy, dx)
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

/// Solves `A x = b` (dense, row-major) by Gaussian elimination with partial pivoting.
fn solve(mut a: Vec<f64>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for c in 0..n {
        let p = (c..n)
            .max_by(|&i, &j| a[i * n + c].abs().total_cmp(&a[j * n + c].abs()))
            .unwrap();
        for k in 0..n {
            a.swap(c * n + k, p * n + k);
        }
        b.swap(c, p);
        for r in c + 1..n {
            let f = a[r * n + c] / a[c * n + c];
            for k in c..n {
                a[r * n + k] -= f * a[c * n + k];
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r * n + k] * x[k]).sum();
        x[r] = (b[r] - s) / a[r * n + r];
    }
    x
}

/// kappa = C P_o^T (P_o C P_o^T + N_o)^{-1} gamma_o over the observed components.
fn dense_wiener(g: &Grid, t: &ClTable, noise: &NoiseModel, g1: &[f32], g2: &[f32]) -> Vec<f64> {
    let n = g.len();
    let d = g.pixel_rad();
    let s = |k1: f64, k2: f64| t.eval(2.0 * std::f64::consts::PI * k1.hypot(k2) / d) / (d * d);
    let p1f = |k1: f64, k2: f64| {
        if k1 == 0.0 && k2 == 0.0 {
            0.0
        } else {
            (k1 * k1 - k2 * k2) / (k1 * k1 + k2 * k2)
        }
    };
    let p2f = |k1: f64, k2: f64| {
        if k1 == 0.0 && k2 == 0.0 {
            0.0
        } else {
            2.0 * k1 * k2 / (k1 * k1 + k2 * k2)
        }
    };
    let c = dense_operator(g, s);
    let p1 = dense_operator(g, p1f);
    let p2 = dense_operator(g, p2f);
    // rows of the observed operator and data
    let mut rows: Vec<Vec<f64>> = vec![];
    let mut data = vec![];
    let mut var = vec![];
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
    // PC: m x n
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
        for j in 0..m {
            a[i * m + j] = (0..n).map(|k| pc[i][k] * rows[j][k]).sum::<f64>()
                + if i == j { var[i] } else { 0.0 };
        }
    }
    let y = solve(a, data);
    (0..n)
        .map(|j| (0..m).map(|i| pc[i][j] * y[i]).sum())
        .collect()
}

#[test]
fn pcg_matches_dense_exact_solve_on_small_masked_grids() {
    for (nx, ny, seed) in [(8usize, 6usize, 1u64), (7, 9, 2)] {
        let g = Grid::new(nx, ny, 2.0).unwrap();
        let n = g.len();
        let t = table();
        // per-pixel noise std 0.05 .. 0.15, with a masked block and a few holes
        let z = common::noise_vec(n, seed);
        let std1: Vec<f32> = z.iter().map(|v| 0.1 + 0.05 * v.tanh()).collect();
        let std2: Vec<f32> = z.iter().rev().map(|v| 0.1 + 0.05 * v.tanh()).collect();
        let mask: Vec<bool> = (0..n)
            .map(|i| !((i % nx < 3 && i / nx < 2) || i % 7 == 3))
            .collect();
        let noise = NoiseModel::from_std(g, &std1, &std2, Some(&mask)).unwrap();
        let g1: Vec<f32> = common::noise_vec(n, seed + 10)
            .iter()
            .map(|v| 0.05 * v)
            .collect();
        let g2: Vec<f32> = common::noise_vec(n, seed + 20)
            .iter()
            .map(|v| 0.05 * v)
            .collect();
        let wf = WienerFilter::new(g, t.pixel_power(&g)).unwrap();
        let opts = WienerOptions {
            tol: 1e-10,
            max_iter: 2000,
        };
        let sol = wf.solve(&g1, &g2, &noise, &opts).unwrap();
        let exact = dense_wiener(&g, &t, &noise, &g1, &g2);
        let num: f64 = sol
            .kappa
            .iter()
            .zip(&exact)
            .map(|(a, b)| (*a as f64 - b).powi(2))
            .sum();
        let den: f64 = exact.iter().map(|b| b * b).sum();
        let rel = (num / den).sqrt();
        assert!(
            rel < 1e-5,
            "{ny}x{nx}: relative error {rel} after {} iterations",
            sol.iterations
        );
        assert!(den > 0.0);
    }
}

#[test]
fn fourier_solution_equals_pcg_for_uniform_noise() {
    let g = Grid::new(32, 24, 1.0).unwrap();
    let n = g.len();
    let t = table();
    let wf = WienerFilter::new(g, t.pixel_power(&g)).unwrap();
    let sigma = 0.2;
    let noise = NoiseModel::uniform(g, sigma, None).unwrap();
    let g1: Vec<f32> = common::noise_vec(n, 4).iter().map(|v| 0.1 * v).collect();
    let g2: Vec<f32> = common::noise_vec(n, 5).iter().map(|v| 0.1 * v).collect();
    let f = wf.fourier(&g1, &g2, sigma).unwrap();
    let p = wf
        .solve(
            &g1,
            &g2,
            &noise,
            &WienerOptions {
                tol: 1e-9,
                max_iter: 500,
            },
        )
        .unwrap();
    let num: f64 = f
        .kappa
        .iter()
        .zip(&p.kappa)
        .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
        .sum();
    let den: f64 = f.kappa.iter().map(|a| (*a as f64).powi(2)).sum();
    assert!((num / den).sqrt() < 1e-5);
    // uniform noise: the preconditioner is exact except on the Nyquist modes
    // (where p1² + p2² < 1), so PCG needs few iterations (a masked field needs tens)
    assert!(p.iterations <= 10, "{} iterations", p.iterations);
    // the mean is fixed to zero
    let mean = p.kappa.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    assert!(mean.abs() < 1e-9);
}

#[test]
fn solver_reports_non_convergence_and_bad_input() {
    let g = Grid::square(16, 1.0).unwrap();
    let t = table();
    let wf = WienerFilter::new(g, t.pixel_power(&g)).unwrap();
    let mut mask = vec![true; g.len()];
    mask[..100].iter_mut().for_each(|m| *m = false);
    let noise = NoiseModel::uniform(g, 0.01, Some(&mask)).unwrap();
    let g1 = common::noise_vec(g.len(), 1);
    let g2 = common::noise_vec(g.len(), 2);
    let r = wf.solve(
        &g1,
        &g2,
        &noise,
        &WienerOptions {
            tol: 1e-14,
            max_iter: 2,
        },
    );
    assert!(matches!(r, Err(lensdiff::Error::NotConverged { .. })));
    let mut bad = g1.clone();
    bad[0] = f32::INFINITY;
    assert!(wf
        .solve(&bad, &g2, &noise, &WienerOptions::default())
        .is_err());
    assert!(wf.fourier(&g1, &g2, -1.0).is_err());
    assert!(WienerFilter::new(g, vec![1.0; 3]).is_err());
}
