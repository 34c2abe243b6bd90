//! The neural prior inside the sampling engine.
//!
//! A hybrid denoiser whose network output is zero (`F ≡ 0`, the initialisation:
//! the output convolution starts at zero) *is* the Gaussian denoiser: `D = D_G`
//! and `J_Dᵀ v = D_G(v)` exactly, since no gradient flows through a zero
//! output layer. So for every sampler and every guidance scheme, sampling with
//! this `NeuralPrior` must give bit-for-bit the samples of the `GaussianPrior`
//! with the same spectrum — a check that the neural prior is wired into every
//! code path (denoise, VJP, Gaussian model, initial draw) exactly as the
//! Gaussian one. A trained (non-zero) network must then change the samples.

mod common;

use lensdiff::grid::Grid;
use lensdiff::nn::UNetConfig;
use lensdiff::noise::NoiseModel;
use lensdiff::prior::{Denoiser, DenoiserKind, DenoiserMeta};
use lensdiff::prior::{GaussianPrior, NeuralPrior, Prior};
use lensdiff::sampler::{
    sample, Guidance, GuidedPosterior, RunSpec, SamplerConfig, SamplerKind, ShearData,
};
use lensdiff::spectrum::ClTable;

fn small_net() -> UNetConfig {
    UNetConfig {
        channels: vec![4, 8],
        blocks: 1,
        groups: 2,
        embed_freqs: 2,
        embed_dim: 4,
        padding: "periodic".into(),
        joint_params: 0,
        ..UNetConfig::demo()
    }
}

#[test]
fn zero_network_hybrid_reproduces_the_gaussian_prior_in_every_sampler_and_guidance() {
    let grid = Grid::square(16, 1.0).unwrap();
    let table = ClTable::default_kappa();
    // the denoiser rounds its table to f32 (as stored on disk): use the same table
    let den = Denoiser::new(
        small_net(),
        DenoiserMeta::new(DenoiserKind::Hybrid, 0.02, 1.0),
        Some(table),
        3,
    )
    .unwrap();
    let gauss = GaussianPrior::from_cl(grid, den.gaussian().unwrap()).unwrap();
    let neural = NeuralPrior::new(den.clone(), grid).unwrap();
    assert_eq!(neural.gaussian_power(), gauss.gaussian_power());

    let mask: Vec<bool> = (0..grid.len()).map(|i| i % 7 != 3).collect();
    let noise = NoiseModel::uniform(grid, 0.03, Some(&mask)).unwrap();
    let data = common::shear_data(&grid, gauss.power(), noise, 5, 6);

    let kinds = ["em", "pc", "heun", "edm", "hmc"];
    let guidances = [
        Guidance::Spectral { tol: 1e-4 },
        Guidance::Annealed { c: 0.5 },
        Guidance::Tweedie { inflate: false },
        Guidance::Tweedie { inflate: true },
    ];
    for kind in kinds {
        for guidance in guidances {
            let cfg = SamplerConfig {
                kind: SamplerKind::from_name(kind).unwrap(),
                levels: 6,
                ..SamplerConfig::default()
            };
            let run = |p: &dyn Prior| {
                let post = GuidedPosterior::new(p, &data, guidance).unwrap();
                sample(&post, &cfg, &RunSpec::new(11, 3), &mut |_, _| {})
                    .unwrap()
                    .samples
            };
            let a = run(&gauss);
            let b = run(&neural);
            assert!(a.iter().all(|v| v.is_finite()));
            assert_eq!(a, b, "{kind} + {}", guidance.name());
        }
    }

    // a non-zero network changes the samples
    let mut trained = den;
    trained
        .params
        .iter_mut()
        .enumerate()
        .for_each(|(i, p)| *p += 0.01 * ((i as f32) * 0.7).sin());
    let neural = NeuralPrior::new(trained, grid).unwrap();
    let cfg = SamplerConfig {
        levels: 6,
        ..SamplerConfig::default()
    };
    let g = Guidance::Spectral { tol: 1e-4 };
    let a = sample(
        &GuidedPosterior::new(&gauss, &data, g).unwrap(),
        &cfg,
        &RunSpec::new(11, 3),
        &mut |_, _| {},
    )
    .unwrap();
    let b = sample(
        &GuidedPosterior::new(&neural, &data, g).unwrap(),
        &cfg,
        &RunSpec::new(11, 3),
        &mut |_, _| {},
    )
    .unwrap();
    // not a change in the last bits: the perturbed network moves the samples
    // by a visible fraction of their spread (and they stay finite); measured
    // 4% (RMS 0.0012 against 0.029), the bound 1%
    let rms = |v: &mut dyn Iterator<Item = f64>| {
        let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x * x, n + 1));
        (s / n as f64).sqrt()
    };
    let spread = rms(&mut a.samples.iter().map(|&x| x as f64));
    let moved = rms(&mut a
        .samples
        .iter()
        .zip(&b.samples)
        .map(|(&x, &y)| (x - y) as f64));
    assert!(b.samples.iter().all(|v| v.is_finite()));
    assert!(
        moved > 0.01 * spread,
        "samples moved by {moved} (RMS) against a spread of {spread}"
    );
}

#[test]
fn pure_network_needs_a_guidance_power_for_spectral_guidance_and_a_suitable_grid() {
    let den = Denoiser::new(
        small_net(),
        DenoiserMeta::new(DenoiserKind::Pure, 0.02, 1.0),
        None,
        0,
    )
    .unwrap();
    let grid = Grid::square(16, 1.0).unwrap();
    let noise = NoiseModel::uniform(grid, 0.03, None).unwrap();
    let data = ShearData::new(vec![0.0; 256], vec![0.0; 256], noise).unwrap();
    let prior = NeuralPrior::new(den.clone(), grid).unwrap();
    assert!(prior.gaussian_power().is_none());
    assert!(GuidedPosterior::new(&prior, &data, Guidance::Spectral { tol: 1e-4 }).is_err());
    assert!(GuidedPosterior::new(&prior, &data, Guidance::Annealed { c: 0.5 }).is_ok());
    let power = ClTable::default_kappa().pixel_power(&grid);
    let prior = prior.with_guidance_power(power).unwrap();
    assert!(GuidedPosterior::new(&prior, &data, Guidance::Spectral { tol: 1e-4 }).is_ok());
    // an odd side cannot be pooled by a 2-level U-Net
    assert!(NeuralPrior::new(den, Grid::square(15, 1.0).unwrap()).is_err());
}

#[test]
fn neural_vjp_is_the_transpose_of_the_denoiser_jacobian() {
    // <J_D(x) u, v> = <u, J_D(x)ᵀ v>, with J_D(x) u by central differences in
    // f32 (step 1e-3 of an O(0.02) map; the f32 rounding of D, 6e-8 relative,
    // over the step gives ~1e-4 relative error on the directional derivative,
    // so the bound is 1e-2).
    let grid = Grid::square(16, 1.0).unwrap();
    let mut den = Denoiser::new(
        small_net(),
        DenoiserMeta::new(DenoiserKind::Hybrid, 0.02, 1.0),
        Some(ClTable::default_kappa()),
        0,
    )
    .unwrap();
    den.params
        .iter_mut()
        .enumerate()
        .for_each(|(i, p)| *p += 0.2 * ((i as f32) * 1.3).sin());
    let prior = NeuralPrior::new(den, grid).unwrap();
    let n = grid.len();
    let mut x = vec![0.0f32; 2 * n];
    lensdiff::rng::Philox::new(1, lensdiff::rng::Stream::Field, 0, 0).fill_normal(&mut x);
    x.iter_mut().for_each(|v| *v *= 0.02);
    let (mut u, mut v) = (vec![0.0f32; 2 * n], vec![0.0f32; 2 * n]);
    lensdiff::rng::Philox::new(2, lensdiff::rng::Stream::Field, 0, 0).fill_normal(&mut u);
    lensdiff::rng::Philox::new(3, lensdiff::rng::Stream::Field, 0, 0).fill_normal(&mut v);
    let sigma = 0.01;
    let h = 1e-3f32;
    let (mut dp, mut dm, mut jv) = (vec![0.0; 2 * n], vec![0.0; 2 * n], vec![0.0; 2 * n]);
    let xp: Vec<f32> = x.iter().zip(&u).map(|(a, b)| a + h * b).collect();
    let xm: Vec<f32> = x.iter().zip(&u).map(|(a, b)| a - h * b).collect();
    prior.denoise(&xp, sigma, &mut dp).unwrap();
    prior.denoise(&xm, sigma, &mut dm).unwrap();
    prior.denoise_vjp(&x, sigma, &v, &mut jv).unwrap();
    let lhs: f64 = (0..2 * n)
        .map(|i| ((dp[i] - dm[i]) / (2.0 * h)) as f64 * v[i] as f64)
        .sum();
    let rhs: f64 = u.iter().zip(&jv).map(|(a, b)| *a as f64 * *b as f64).sum();
    let rel = (lhs - rhs).abs() / rhs.abs();
    eprintln!("<J u, v> = {lhs:.6}, <u, J^T v> = {rhs:.6}, relative {rel:.2e}");
    assert!(rel < 1e-2, "relative mismatch {rel}");
}
