//! Training validation of the learned prior (`lensdiff::prior::train`).
//!
//! - Gaussian fields: the *pure* network (no analytic part, nothing given away)
//!   reaches a held-out MSE within 10% of the Bayes-optimal Wiener denoiser at
//!   four noise levels spanning the field's standard deviation.
//! - Log-normal fields: it beats the Wiener denoiser's MSE by at least 5% at
//!   the low noise levels where non-Gaussianity matters.
//! - Checkpoints resume exactly; bad data is a clear error.

mod common;

use lensdiff::baselines::wiener::{WienerFilter, WienerOptions};
use lensdiff::grid::Grid;
use lensdiff::nn::{Dims4, UNetConfig};
use lensdiff::noise::NoiseModel;
use lensdiff::prior::train::BandLoss;
use lensdiff::prior::{Denoiser, DenoiserKind, DenoiserMeta, TrainConfig, Trainer, TrainingData};
use lensdiff::prior::{GaussianPrior, NeuralPrior, Prior};
use lensdiff::sampler::{sample, Guidance, GuidedPosterior, RunSpec, SamplerConfig, ShearData};
use lensdiff::spectrum::ClTable;

const PIXEL: f64 = 0.5;

/// `LENSDIFF_LONG_VALIDATION=1`: train 4x longer, sample 40 fields x 32 chains.
fn long() -> bool {
    std::env::var_os("LENSDIFF_LONG_VALIDATION").is_some()
}

fn steps(short: u64) -> u64 {
    if long() {
        4 * short
    } else {
        short
    }
}

fn wiener(prior: &GaussianPrior) -> impl Fn(&[f32], Dims4, f64) -> lensdiff::Result<Vec<f32>> + '_ {
    move |x: &[f32], _d: Dims4, s: f64| {
        let mut o = vec![0.0f32; x.len()];
        prior.denoise(x, s, &mut o)?;
        Ok(o)
    }
}

fn report(name: &str, net: &[BandLoss], wf: &[BandLoss]) {
    for (a, b) in net.iter().zip(wf) {
        eprintln!(
            "{name}: sigma {:.4}  network {:.4e}  wiener {:.4e}  ratio {:.3}",
            a.sigma,
            a.mse,
            b.mse,
            a.mse / b.mse
        );
    }
}

#[test]
fn pure_network_matches_wiener_on_gaussian_fields() {
    let crop = 32;
    let grid = Grid::square(crop, PIXEL).unwrap();
    let power = ClTable::default_kappa().pixel_power(&grid);
    let data = TrainingData::Gaussian {
        power: power.clone(),
        seed: 3,
    };
    let tr = train_pure(grid, data, steps(400));
    let prior = GaussianPrior::new(grid, power).unwrap();
    let net = tr.heldout_loss(true).unwrap();
    let wf = tr.heldout_loss_of(&wiener(&prior)).unwrap();
    report("gaussian", &net, &wf);
    // The Wiener denoiser is the Bayes-optimal denoiser here, so no network
    // can beat it beyond the sampling noise of 32 held-out maps: the ratio is
    // >= 0.97. Within 10% at sigma = 0.1, 0.3, 1 and 3 sigma_data.
    for (a, b) in net.iter().zip(&wf).skip(1) {
        let r = a.mse / b.mse;
        assert!(
            (0.97..1.10).contains(&r),
            "at sigma {:.4}: network/Wiener MSE ratio {r:.3} outside [0.97, 1.10)",
            a.sigma
        );
    }
}

#[test]
fn checkpoints_resume_exactly_and_models_round_trip() {
    let grid = Grid::square(16, PIXEL).unwrap();
    let power = ClTable::default_kappa().pixel_power(&grid);
    let field = lensdiff::fields::LogNormal::new(&grid, &power, 0.03).unwrap();
    let data = || TrainingData::LogNormal {
        field: field.clone(),
        seed: 2,
    };
    let mut cfg_net = UNetConfig::demo();
    cfg_net.channels = vec![8, 16];
    let table = ClTable::default_kappa();
    let meta = DenoiserMeta::new(DenoiserKind::Hybrid, 0.02, PIXEL);
    let den = Denoiser::new(cfg_net, meta, Some(table), 4).unwrap();
    let cfg = TrainConfig {
        steps: 6,
        batch: 4,
        crop: 16,
        heldout: 4,
        warmup: 2,
        ..TrainConfig::default()
    };
    let mut full = Trainer::new(den.clone(), data(), cfg.clone()).unwrap();
    full.run(|_, _| {}).unwrap();

    let dir = common::temp_dir("train");
    let ckpt = dir.join("half.ckpt.safetensors");
    let mut half = Trainer::new(den, data(), cfg).unwrap();
    for _ in 0..3 {
        half.step().unwrap();
    }
    half.save_checkpoint(&ckpt).unwrap();
    drop(half);
    let mut resumed = Trainer::resume(&ckpt, data(), None).unwrap();
    assert_eq!(resumed.step_count(), 3);
    resumed.run(|_, _| {}).unwrap();
    assert_eq!(
        resumed.denoiser().params,
        full.denoiser().params,
        "resume is bitwise exact"
    );
    assert_eq!(resumed.ema_denoiser().params, full.ema_denoiser().params);
    assert_ne!(full.denoiser().params, full.ema_denoiser().params);

    // a resume on other data is refused
    let other = TrainingData::LogNormal {
        field: field.clone(),
        seed: 3,
    };
    assert!(Trainer::resume(&ckpt, other, None).is_err());

    // the saved model loads back with its EMA weights, sigma_max and C_ell
    let model = dir.join("model.safetensors");
    full.save_model(&model).unwrap();
    let back = Denoiser::load(&model).unwrap();
    let ema = full.ema_denoiser();
    assert_eq!(back.params, ema.params);
    assert_eq!(back.meta(), ema.meta());
    assert!(back.meta().sigma_max.is_some());
    assert_eq!(
        back.gaussian().unwrap().ell().len(),
        ClTable::default_kappa().ell().len()
    );
    // a checkpoint is not mistaken for a model of another format, and vice versa
    assert!(Trainer::resume(&model, data(), None).is_err());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_training_data_is_a_clear_error() {
    let msg = |r: lensdiff::Result<TrainingData>| match r {
        Err(e) => e.to_string(),
        Ok(_) => panic!("accepted bad data"),
    };
    let m = msg(TrainingData::stack(vec![], 0, 16, 16));
    assert!(m.contains("empty"), "{m}");
    let mut maps = vec![0.1f32; 2 * 16 * 16];
    maps[16 * 16 + 3 * 16 + 5] = f32::NAN;
    let m = msg(TrainingData::stack(maps, 2, 16, 16));
    assert!(m.contains("map 1") && m.contains("(3, 5)"), "{m}");
    assert!(TrainingData::stack(vec![0.0; 10], 2, 16, 16).is_err());
    // constant maps have no scale
    let flat = TrainingData::stack(vec![0.5; 3 * 256], 3, 16, 16).unwrap();
    assert!(flat.sigma_data(&Grid::square(16, PIXEL).unwrap()).is_err());

    let den = || {
        Denoiser::new(
            UNetConfig::demo(),
            DenoiserMeta::new(DenoiserKind::Pure, 0.02, PIXEL),
            None,
            0,
        )
        .unwrap()
    };
    let stack = || {
        let maps: Vec<f32> = (0..4 * 16 * 16).map(|i| (i as f32 * 0.37).sin()).collect();
        TrainingData::stack(maps, 4, 16, 16).unwrap()
    };
    let cfg = |crop: usize, heldout: usize| TrainConfig {
        crop,
        heldout,
        batch: 2,
        ..TrainConfig::default()
    };
    // crop larger than the maps, crop not a multiple of the network's 2^(L-1),
    // every map held out, zero learning rate
    assert!(Trainer::new(den(), stack(), cfg(32, 1)).is_err());
    assert!(Trainer::new(den(), stack(), cfg(15, 1)).is_err());
    assert!(Trainer::new(den(), stack(), cfg(16, 4)).is_err());
    let mut bad = cfg(16, 1);
    bad.lr = 0.0;
    assert!(Trainer::new(den(), stack(), bad).is_err());
    // a hybrid without its Gaussian part, a pure one with one
    let table = ClTable::default_kappa();
    assert!(Denoiser::new(
        UNetConfig::demo(),
        DenoiserMeta::new(DenoiserKind::Hybrid, 0.02, PIXEL),
        None,
        0
    )
    .is_err());
    assert!(Denoiser::new(
        UNetConfig::demo(),
        DenoiserMeta::new(DenoiserKind::Pure, 0.02, PIXEL),
        Some(table),
        0
    )
    .is_err());
    // a stack trains
    let mut t = Trainer::new(den(), stack(), cfg(16, 1)).unwrap();
    let s = t.step().unwrap();
    assert!(s.loss.is_finite() && s.grad_norm > 0.0);
}

/// Trains the pure demo network for `steps` steps of 16 maps (32 held out).
fn train_pure(grid: Grid, data: TrainingData, steps: u64) -> Trainer {
    let sd = data.sigma_data(&grid).unwrap();
    let meta = DenoiserMeta::new(DenoiserKind::Pure, sd, PIXEL);
    let den = Denoiser::new(UNetConfig::demo(), meta, None, 1).unwrap();
    let cfg = TrainConfig {
        steps,
        batch: 16,
        crop: grid.nx,
        heldout: 32,
        seed: 5,
        ..TrainConfig::default()
    };
    let mut tr = Trainer::new(den, data, cfg).unwrap();
    let t0 = std::time::Instant::now();
    tr.run(|s, rate| {
        if s.step % 100 == 0 {
            eprintln!("step {} loss {:.4} {rate:.0} maps/s", s.step, s.loss)
        }
    })
    .unwrap();
    eprintln!(
        "trained in {:.1} s, sigma_data {sd:.4}",
        t0.elapsed().as_secs_f64()
    );
    tr
}

#[test]
fn learned_prior_on_lognormal_fields_beats_wiener_and_is_calibrated() {
    let grid = Grid::square(32, PIXEL).unwrap();
    let power = ClTable::default_kappa().pixel_power(&grid);
    let field = lensdiff::fields::LogNormal::new(&grid, &power, 0.03).unwrap();
    let data = TrainingData::LogNormal {
        field: field.clone(),
        seed: 3,
    };
    let tr = train_pure(grid, data, steps(400));
    let prior = GaussianPrior::new(grid, power.clone()).unwrap();
    let net = tr.heldout_loss(true).unwrap();
    let wf = tr.heldout_loss_of(&wiener(&prior)).unwrap();
    report("lognormal", &net, &wf);
    // low noise (0.03, 0.1 and 0.3 sigma_data): at least 5% below Wiener
    for (a, b) in net.iter().zip(&wf).take(3) {
        assert!(
            a.mse < 0.95 * b.mse,
            "at sigma {:.4}: network MSE {:.4e} is not 5% below Wiener {:.4e}",
            a.sigma,
            a.mse,
            b.mse
        );
    }

    // Posterior sampling with the learned prior (default sampler: spectral
    // guidance with the field's power as the Gaussian model, Heun, 64 levels)
    // on 10 held-out log-normal truths observed through shear with 0.02 noise.
    let learned = NeuralPrior::new(tr.ema_denoiser(), grid)
        .unwrap()
        .with_guidance_power(power)
        .unwrap();
    let noise = NoiseModel::uniform(grid, 0.02, None).unwrap();
    // default sampler: starts at the network's trained sigma_max (6 sigma_data)
    let cfg = SamplerConfig::default();
    let chains = if long() { 32 } else { 8 };
    // predictive intervals mean ± t s sqrt(1 + 1/n) from n samples: exact
    // coverage for a Gaussian posterior whatever n (t quantiles of n - 1 dof,
    // times sqrt(1 + 1/n); n = 8: 1.1420, 2.5761; n = 32: 1.0322, 2.1162)
    let (t68, t95) = if long() {
        (1.0322, 2.1162)
    } else {
        (1.1420, 2.5761)
    };
    let (mut se_net, mut se_wf, mut c68, mut c95, mut count) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let mut mc_var = 0.0;
    let fields = if long() { 40 } else { 10 };
    let wf_filter = WienerFilter::new(grid, prior.power().to_vec()).unwrap();
    let t0 = std::time::Instant::now();
    for f in 0..fields {
        let truth = field.sample(&grid, 77, f, 1).unwrap();
        let (g1, g2) = lensdiff::fields::simulate_shear(&truth, &noise, 78, f).unwrap();
        let data = ShearData::new(g1, g2, noise.clone()).unwrap();
        let post = GuidedPosterior::new(&learned, &data, Guidance::Spectral { tol: 1e-4 }).unwrap();
        let run = sample(&post, &cfg, &RunSpec::new(900 + f, chains), &mut |_, _| {}).unwrap();
        let m = run.moments();
        let var = m.variance();
        let wmean = wf_filter
            .solve(&data.g1, &data.g2, &noise, &WienerOptions::default())
            .unwrap()
            .kappa;
        for i in 0..grid.len() {
            let t = truth[i] as f64;
            se_net += (m.mean[i] - t).powi(2);
            mc_var += var[i] / chains as f64;
            se_wf += (wmean[i] as f64 - t).powi(2);
            let d = (t - m.mean[i]).abs();
            c68 += (d < t68 * var[i].sqrt()) as u8 as f64;
            c95 += (d < t95 * var[i].sqrt()) as u8 as f64;
            count += 1.0;
        }
    }
    // The mean of n samples carries Monte-Carlo variance var/n on top of the
    // exact posterior mean's error: subtract it (unbiased) to compare the
    // posterior mean itself with the Wiener filter.
    let (rmse_net, rmse_wf) = ((se_net / count).sqrt(), (se_wf / count).sqrt());
    let rmse_exact = ((se_net - mc_var) / count).sqrt();
    let (c68, c95) = (c68 / count, c95 / count);
    eprintln!(
        "posterior ({fields} fields x {chains} chains, {:.1} s): RMSE learned {rmse_net:.5} (MC-corrected {rmse_exact:.5}) wiener {rmse_wf:.5}; coverage 68% {c68:.3} 95% {c95:.3}",
        t0.elapsed().as_secs_f64()
    );
    assert!(
        rmse_net < rmse_wf,
        "learned-prior posterior mean RMSE {rmse_net} >= Wiener {rmse_wf}"
    );
    assert!(
        rmse_exact < 0.98 * rmse_wf,
        "MC-corrected posterior mean RMSE {rmse_exact} not 2% below Wiener {rmse_wf}"
    );
    assert!((c68 - 0.6827).abs() <= 0.05, "68% coverage {c68}");
    assert!((c95 - 0.9545).abs() <= 0.05, "95% coverage {c95}");
}

#[test]
fn training_on_the_sbi_lens_model_uses_its_exact_maps() {
    // the held-out maps are sbi_lens maps: each with its own variance in the
    // exponent (common::sbi_own_variance_defect gives the bound)
    let model = lensdiff::fields::sbi_lens::SbiLens128::truth().unwrap();
    let pixel = model.grid().pixel_arcmin;
    let data = || TrainingData::SbiLens {
        model: Box::new(model.clone()),
        seed: 5,
    };
    let mut net = UNetConfig::demo();
    net.channels = vec![4, 8];
    let meta = DenoiserMeta::new(DenoiserKind::Pure, 0.02, pixel);
    let den = Denoiser::new(net, meta, None, 1).unwrap();
    let cfg = TrainConfig {
        steps: 1,
        batch: 2,
        crop: 128,
        heldout: 3,
        ..TrainConfig::default()
    };
    let t = Trainer::new(den.clone(), data(), cfg.clone()).unwrap();
    let defect = common::sbi_own_variance_defect(t.heldout(), model.lambda());
    assert!(defect < 1e-6, "{defect:e}");
    assert_eq!(t.heldout().len(), 3 * 128 * 128);
    // other crops or pixel sizes are refused
    let small = TrainConfig { crop: 64, ..cfg };
    let e = Trainer::new(den, data(), small).err().unwrap().to_string();
    assert!(e.contains("own 128x128 grid"), "{e}");
}
