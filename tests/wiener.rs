//! The Wiener filter against exact dense solves and against its Fourier form.

mod common;

use common::dense::dense_posterior;

use lensdiff::baselines::{WienerFilter, WienerOptions};
use lensdiff::noise::NoiseModel;
use lensdiff::spectrum::ClTable;
use lensdiff::Grid;

fn table() -> ClTable {
    common::power_law(40, 1.5, 5.0, 1e-8, -1.0)
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
        let exact = dense_posterior(&g, &t, &noise, &g1, &g2).mean;
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
    // the one rule for noise levels (docs/c-api.md): negative, non-finite, zero
    use lensdiff::Error;
    assert!(matches!(
        wf.fourier(&g1, &g2, -1.0),
        Err(Error::NegativeNoise { .. })
    ));
    assert!(matches!(
        wf.fourier(&g1, &g2, f64::NAN),
        Err(Error::NonFiniteValue { .. })
    ));
    assert!(matches!(
        wf.fourier(&g1, &g2, 0.0),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(WienerFilter::new(g, vec![1.0; 3]).is_err());
}

#[test]
fn perturbation_samples_have_the_exact_posterior_moments() {
    // 512 samples on a masked 8x6 grid: per-pixel variance ratio has standard
    // error sqrt(2/511) = 6%, averaged over 48 correlated pixels about 2-3%; the
    // bounds are 4 such errors. Mean z-scores have RMS 1 ± 0.1.
    let g = Grid::new(8, 6, 2.0).unwrap();
    let n = g.len();
    let t = table();
    let z = common::noise_vec(n, 3);
    let std1: Vec<f32> = z.iter().map(|v| 0.1 + 0.05 * v.tanh()).collect();
    let mask: Vec<bool> = (0..n).map(|i| i % 5 != 2).collect();
    let noise = NoiseModel::from_std(g, &std1, &std1, Some(&mask)).unwrap();
    let g1: Vec<f32> = common::noise_vec(n, 30).iter().map(|v| 0.05 * v).collect();
    let g2: Vec<f32> = common::noise_vec(n, 31).iter().map(|v| 0.05 * v).collect();
    let exact = dense_posterior(&g, &t, &noise, &g1, &g2);
    let wf = WienerFilter::new(g, t.pixel_power(&g)).unwrap();
    let opts = WienerOptions {
        tol: 1e-8,
        max_iter: 500,
    };
    let draws: Vec<Vec<f32>> = (0..512)
        .map(|i| {
            wf.sample_exact(&g1, &g2, &noise, 9, i, &opts)
                .unwrap()
                .kappa
        })
        .collect();
    let m = draws.len() as f64;
    let (mut ratio, mut z2) = (0.0, 0.0);
    for p in 0..n {
        let mean = draws.iter().map(|d| d[p] as f64).sum::<f64>() / m;
        let var = draws
            .iter()
            .map(|d| (d[p] as f64 - mean).powi(2))
            .sum::<f64>()
            / (m - 1.0);
        let ev = exact.cov[p * n + p];
        ratio += var / ev / n as f64;
        z2 += (mean - exact.mean[p]).powi(2) / (ev / m) / n as f64;
    }
    eprintln!(
        "perturbation sampler: variance ratio {ratio:.3}, RMS z {:.3}",
        z2.sqrt()
    );
    assert!((ratio - 1.0).abs() < 0.1, "variance ratio {ratio}");
    assert!((z2.sqrt() - 1.0).abs() < 0.5, "RMS z {}", z2.sqrt());
    // same index, same sample
    assert_eq!(
        wf.sample_exact(&g1, &g2, &noise, 9, 3, &opts)
            .unwrap()
            .kappa,
        draws[3]
    );
}
