//! The learned joint denoiser (`lensdiff::prior::joint::neural`) and its
//! training (`lensdiff::prior::joint::train`), issue #15 part 2:
//!
//! - a hybrid with a zero network is the exact Gaussian joint denoiser, bitwise
//!   (values and VJP);
//! - the VJP of pure and hybrid denoisers with trained-like weights against
//!   central differences along random directions;
//! - files round-trip bitwise, and bad descriptions are errors;
//! - training resumes bitwise, and a short run learns the map part (its
//!   parameter head does not learn in so short a run: printed, not asserted);
//! - log-normal pairs, pairs read from files (maps + theta table, columns by
//!   name, the last maps held out, bad tables refused) and the JSON parameter
//!   prior file; training from files lowers the held-out map error.

mod common;

use lensdiff::cosmo::limber::ClOptions;
use lensdiff::fields::sbi_lens;
use lensdiff::grid::Grid;
use lensdiff::nn::{Dims4, UNetConfig};
use lensdiff::prior::joint::train::{JointData, JointPairs, JointTrainer};
use lensdiff::prior::joint::{
    CosmologyRecipe, GaussianJoint, JointDenoiser, JointDenoiserMeta, JointPrior, NeuralJoint,
    ParamSpace,
};
use lensdiff::prior::{DenoiserKind, TrainConfig};

use common::SplitMix as Rng;

/// The two-level joint U-Net of the C ABI tests, for two parameters.
fn tiny_net() -> UNetConfig {
    common::joint_models::tiny_joint_net(2)
}

fn recipe() -> CosmologyRecipe {
    let space = ParamSpace::sbi_lens();
    CosmologyRecipe {
        base: sbi_lens::cosmology(space.mean()[0], space.mean()[1]).unwrap(),
        source: sbi_lens::source().unwrap(),
        cl: ClOptions::default(),
    }
}

fn grid(side: usize) -> Grid {
    Grid::square(side, sbi_lens::PIXEL_ARCMIN).unwrap()
}

/// A denoiser on `grid` with `sigma_d` the Gaussian prior's pixel std there.
fn denoiser(kind: DenoiserKind, g: &Grid) -> JointDenoiser {
    let space = ParamSpace::sbi_lens();
    let r = recipe();
    let sd = GaussianJoint::from_cosmology(g, &space, &r.base, &r.source, &r.cl)
        .unwrap()
        .sigma_d();
    let mut meta = JointDenoiserMeta::new(kind, &space, sd, g.pixel_arcmin);
    meta.gaussian = Some(r);
    JointDenoiser::new(tiny_net(), meta, 3).unwrap()
}

/// Weights moved off the initialisation (which zeroes the output layers).
fn perturbed(mut d: JointDenoiser, seed: u64) -> JointDenoiser {
    let mut rng = Rng(seed);
    let z = rng.vec(d.params.len());
    for (p, z) in d.params.iter_mut().zip(z) {
        *p += 0.2 * z as f32;
    }
    d
}

#[test]
fn hybrid_with_zero_network_is_the_gaussian_joint_denoiser_bitwise() {
    let g = grid(16);
    let prior = NeuralJoint::new(denoiser(DenoiserKind::Hybrid, &g), g).unwrap();
    let gauss = prior.denoiser().gaussian(&g).unwrap().unwrap();
    let mut rng = Rng(1);
    for (sigma, seed) in [(0.05, 2u64), (0.7, 3), (4.0, 4)] {
        let mut r = Rng(seed);
        let u: Vec<f64> = r.vec(2);
        let k: Vec<f64> = r.vec(g.len()).iter().map(|v| v * (1.0 + sigma)).collect();
        let (mut c1, mut c2) = (None, None);
        let (a, la) = JointPrior::denoise(&prior, &u, &k, sigma, &mut c1).unwrap();
        let (b, lb) = JointPrior::denoise(&gauss, &u, &k, sigma, &mut c2).unwrap();
        assert_eq!(a.u, b.u, "u* at sigma {sigma}");
        assert_eq!(a.k, b.k, "k* at sigma {sigma}");
        let (vu, vk) = (rng.vec(2), rng.vec(g.len()));
        let ga = JointPrior::vjp(&prior, &la, &vu, &vk).unwrap();
        let gb = JointPrior::vjp(&gauss, &lb, &vu, &vk).unwrap();
        assert_eq!(ga, gb, "VJP at sigma {sigma}");
    }
    assert_eq!(
        prior.gaussian_power(&[0.3, -0.2]).unwrap(),
        gauss.gaussian_power(&[0.3, -0.2]).unwrap()
    );
}

/// `<J^T v, w>` against `(<v, D(x + h w)> - <v, D(x - h w)>) / 2h` along random
/// directions `w`. The network runs in f32: the difference quotient carries a
/// rounding error of about `ε_f32 |<v, D>| / h ≈ 1e-7 · 50 / 1e-2 = 5e-4` of
/// `|<J^T v, w>| ~ 10`, and the truncation error `h² |D'''| / 6` is below
/// 1e-4 for these smooth layers; the bound 2e-3 (relative) sits above both
/// while a missing scaling (`c_in`, `c_out`, `c_skip`) or a wrong base VJP
/// gives errors of order 1.
fn vjp_check(kind: DenoiserKind, seed: u64) {
    let g = grid(16);
    let prior = NeuralJoint::new(perturbed(denoiser(kind, &g), seed), g).unwrap();
    let mut rng = Rng(seed + 10);
    let n = g.len();
    for sigma in [0.1, 1.0, 5.0] {
        let u = rng.vec(2);
        let k: Vec<f64> = rng.vec(n).iter().map(|v| v * (1.0 + sigma)).collect();
        let (vu, vk) = (rng.vec(2), rng.vec(n));
        let f = |u: &[f64], k: &[f64]| {
            let (d, _) = JointPrior::denoise(&prior, u, k, sigma, &mut None).unwrap();
            common::dot(&vu, &d.u) + common::dot(&vk, &d.k)
        };
        let (_, lin) = JointPrior::denoise(&prior, &u, &k, sigma, &mut None).unwrap();
        let (gu, gk) = JointPrior::vjp(&prior, &lin, &vu, &vk).unwrap();
        for _ in 0..3 {
            let (wu, wk) = (rng.vec(2), rng.vec(n));
            let h = 1e-2;
            let shift = |s: f64| {
                let uu: Vec<f64> = u.iter().zip(&wu).map(|(a, b)| a + s * b).collect();
                let kk: Vec<f64> = k.iter().zip(&wk).map(|(a, b)| a + s * b).collect();
                f(&uu, &kk)
            };
            let fd = (shift(h) - shift(-h)) / (2.0 * h);
            let an = common::dot(&gu, &wu) + common::dot(&gk, &wk);
            let rel = (fd - an).abs() / an.abs().max(1.0);
            assert!(
                rel < 2e-3,
                "{kind:?} sigma {sigma}: VJP {an} vs finite differences {fd} (rel {rel:.1e})"
            );
        }
    }
}

#[test]
fn pure_joint_denoiser_vjp_matches_finite_differences() {
    vjp_check(DenoiserKind::Pure, 20);
}

#[test]
fn hybrid_joint_denoiser_vjp_matches_finite_differences() {
    vjp_check(DenoiserKind::Hybrid, 30);
}

#[test]
fn joint_denoiser_files_round_trip_and_bad_descriptions_are_errors() {
    let dir = common::TempDir::new("joint_denoiser_files");
    let g = grid(16);
    let d = perturbed(denoiser(DenoiserKind::Pure, &g), 5);
    let path = dir.path("joint.safetensors");
    d.save(&path).unwrap();
    let back = JointDenoiser::load(&path).unwrap();
    assert_eq!(back.params, d.params);
    assert_eq!(back.meta(), d.meta());
    assert_eq!(back.unet().config(), d.unet().config());
    // a map-only loader refuses it, and the reverse
    assert!(lensdiff::prior::Denoiser::load(&path).is_err());
    let dims = Dims4::new(1, 1, 16, 16);
    let x = Rng(6).vec(256);
    let run = |d: &JointDenoiser| {
        d.forward_cached(
            &d.params,
            &[0.1, 0.2],
            &x,
            dims,
            &[0.5],
            None,
            &mut [],
            false,
        )
        .unwrap()
        .0
    };
    assert_eq!(run(&back), run(&d));
    // bad descriptions
    let space = ParamSpace::sbi_lens();
    let hybrid_without_cosmology = JointDenoiserMeta::new(DenoiserKind::Hybrid, &space, 0.02, 2.0);
    assert!(JointDenoiser::new(tiny_net(), hybrid_without_cosmology, 1).is_err());
    let three = UNetConfig {
        joint_params: 3,
        ..tiny_net()
    };
    let meta = JointDenoiserMeta::new(DenoiserKind::Pure, &space, 0.02, 2.0);
    assert!(JointDenoiser::new(three, meta.clone(), 1).is_err());
    let mut bad = meta.clone();
    bad.sigma_d = f64::NAN;
    assert!(JointDenoiser::new(tiny_net(), bad, 1).is_err());
    let mut bad = meta;
    bad.gaussian = Some(CosmologyRecipe {
        source: lensdiff::cosmo::nz::SourceBin::Plane { z: -1.0 },
        ..recipe()
    });
    assert!(JointDenoiser::new(tiny_net(), bad, 1).is_err());
    // a pixel other than the training pixel
    assert!(NeuralJoint::new(d, Grid::square(16, 1.0).unwrap()).is_err());
}

fn config(steps: u64) -> TrainConfig {
    TrainConfig {
        steps,
        batch: 4,
        crop: 16,
        lr: 3e-3,
        warmup: 5,
        heldout: 8,
        seed: 9,
        ..TrainConfig::default()
    }
}

#[test]
fn joint_training_resumes_bitwise() {
    let dir = common::TempDir::new("joint_training_resume");
    let g = grid(16);
    let data = JointData::Gaussian { seed: 4 };
    let mut straight =
        JointTrainer::new(denoiser(DenoiserKind::Hybrid, &g), data.clone(), config(6)).unwrap();
    straight.run(|_, _| {}).unwrap();
    let mut first =
        JointTrainer::new(denoiser(DenoiserKind::Hybrid, &g), data.clone(), config(6)).unwrap();
    for _ in 0..3 {
        first.step().unwrap();
    }
    let ck = dir.path("ck.safetensors");
    first.save_checkpoint(&ck).unwrap();
    let mut resumed = JointTrainer::resume(&ck, data, None).unwrap();
    resumed.run(|_, _| {}).unwrap();
    assert_eq!(resumed.step_count(), 6);
    assert_eq!(resumed.denoiser().params, straight.denoiser().params);
    assert_eq!(
        resumed.ema_denoiser().params,
        straight.ema_denoiser().params
    );
    // other data is refused
    assert!(JointTrainer::resume(&ck, JointData::Gaussian { seed: 5 }, None).is_err());
    // the saved model loads as a prior
    let model = dir.path("model.safetensors");
    resumed.save_model(&model).unwrap();
    let m = JointDenoiser::load(&model).unwrap();
    assert_eq!(
        m.meta().sigma_max,
        Some(TrainConfig::default().sigma_max(1.0))
    );
    NeuralJoint::new(m, g).unwrap();
}

#[test]
fn joint_training_learns_the_map_part() {
    // A pure network from F = 0 (D = c_skip x), 300 steps of 8 pairs on 32²
    // Gaussian fields. Held-out: 64 fixed pairs with fixed noise, so the
    // comparison between untrained, trained and exact denoisers is paired
    // (same inputs) and deterministic. At sigma >= 0.3 the trained map error
    // must close at least 75% of the gap between c_skip k_sigma and the exact
    // Gaussian joint denoiser (measured when written: 87 to 91%).
    //
    // The parameter head does not learn in so short a run (the parameter
    // error moved by under 2%, either way, up to 800 steps): the map carries
    // the parameters only through its power, a second-order statistic of a
    // 32² field; that is for the long training runs of docs/joint.md, and is
    // printed here, not asserted.
    let side = 32;
    let g = grid(side);
    let data = JointData::Gaussian { seed: 1 };
    let cfg = TrainConfig {
        batch: 8,
        crop: side,
        heldout: 64,
        ..config(300)
    };
    let mut t = JointTrainer::new(denoiser(DenoiserKind::Pure, &g), data, cfg).unwrap();
    let (before, exact) = t.heldout_loss(false).unwrap();
    t.run(|_, _| {}).unwrap();
    let (after, _) = t.heldout_loss(false).unwrap();
    for ((b, a), e) in before.iter().zip(&after).zip(&exact) {
        eprintln!(
            "sigma {:5.2}: mse_u untrained {:.4} trained {:.4} exact {:.4} | mse_k {:.4} {:.4} {:.4}",
            b.sigma, b.mse_u, a.mse_u, e.mse_u, b.mse_k, a.mse_k, e.mse_k
        );
        if b.sigma >= 0.3 {
            let closed = 1.0 - (a.mse_k - e.mse_k) / (b.mse_k - e.mse_k);
            assert!(
                closed > 0.75,
                "sigma {}: training closed {:.0}% of the map error gap",
                b.sigma,
                100.0 * closed
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Log-normal pairs, pairs from files, the parameter-prior file (issue #15,
// part 2: `lensdiff train --joint` from files).

/// Skewness of all the values.
fn skewness(x: &[f64]) -> f64 {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n;
    x.iter().map(|v| (v - m).powi(3)).sum::<f64>() / n / var.powf(1.5)
}

fn variance(x: &[f64]) -> f64 {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n
}

#[test]
fn joint_lognormal_pairs_are_shifted_log_normal_fields_of_the_spectrum_at_theta() {
    // The held-out pairs of the log-normal and the Gaussian data share their
    // theta (Philox key 6 of the training seed): the log-normal maps are
    // >= -lambda, skewed, and have the pixel variance of the Gaussian fields
    // of the same C_ell(theta) (the same construction as the map-only
    // log-normal simulator).
    let g = grid(16);
    let lambda = 0.03;
    let data = JointData::LogNormal { seed: 2, lambda };
    let cfg = TrainConfig {
        heldout: 16,
        ..config(3)
    };
    let mut t = JointTrainer::new(
        denoiser(DenoiserKind::Hybrid, &g),
        data.clone(),
        cfg.clone(),
    )
    .unwrap();
    let gauss = JointTrainer::new(
        denoiser(DenoiserKind::Hybrid, &g),
        JointData::Gaussian { seed: 2 },
        cfg,
    )
    .unwrap();
    let sd = t.denoiser().meta().sigma_d;
    let (u, k) = t.heldout_pairs();
    assert_eq!(u, gauss.heldout_pairs().0);
    let kappa: Vec<f64> = k.iter().map(|v| v * sd).collect();
    let min = kappa.iter().cloned().fold(f64::INFINITY, f64::min);
    assert!(min >= -lambda * (1.0 + 1e-6), "min {min}");
    let skew = skewness(&kappa);
    let ratio = variance(k) / variance(gauss.heldout_pairs().1);
    eprintln!(
        "log-normal pairs: min {min:.4}, skewness {skew:.3}, variance / Gaussian's {ratio:.3}"
    );
    assert!(skew > 0.2, "skewness {skew}");
    assert!((ratio - 1.0).abs() < 0.25, "variance ratio {ratio}");
    // it trains, and a checkpoint resumes only with the same shift
    for _ in 0..2 {
        assert!(t.step().unwrap().loss.is_finite());
    }
    let dir = common::TempDir::new("joint_lognormal_resume");
    let ck = dir.path("ck.safetensors");
    t.save_checkpoint(&ck).unwrap();
    assert!(JointTrainer::resume(
        &ck,
        JointData::LogNormal {
            seed: 2,
            lambda: 0.05
        },
        None
    )
    .is_err());
    let mut r = JointTrainer::resume(&ck, data, None).unwrap();
    r.run(|_, _| {}).unwrap();
    assert_eq!(r.step_count(), 3);
    // a shift too small for the spectrum is an error, not a panic
    let tiny = JointData::LogNormal {
        seed: 2,
        lambda: 1e-4,
    };
    assert!(JointTrainer::new(denoiser(DenoiserKind::Pure, &g), tiny, config(2)).is_err());
}

/// `count` Gaussian fields of `C_ell(theta)` on `g` at theta drawn from the
/// sbi_lens prior (seed `seed`), and their theta `[count][2]` (omega_c, sigma8).
fn simulated_pairs(g: &Grid, count: usize, seed: u64) -> (Vec<f32>, Vec<f64>) {
    let space = ParamSpace::sbi_lens();
    let r = recipe();
    let gauss = GaussianJoint::from_cosmology(g, &space, &r.base, &r.source, &r.cl).unwrap();
    let mut rng = Rng(seed);
    let (mut maps, mut theta) = (Vec::new(), Vec::new());
    for i in 0..count {
        let u = rng.vec(2);
        let power = gauss.prior_power(&u).unwrap();
        maps.extend(lensdiff::fields::gaussian_fields(g, &power, seed, i as u64, 1).unwrap());
        theta.extend(space.theta(&u));
    }
    (maps, theta)
}

/// Writes `maps` (`[count][side][side]`) as npy and theta as a CSV with the
/// columns in the order `sigma8, omega_c` (the space's order reversed).
fn write_pairs(
    dir: &common::TempDir,
    maps: &[f32],
    theta: &[f64],
    side: usize,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let count = theta.len() / 2;
    let m = dir.path("maps.npy");
    let a = ndarray::ArrayD::from_shape_vec(vec![count, side, side], maps.to_vec()).unwrap();
    lensdiff::io::npy::write_f32(&m, a.view()).unwrap();
    let mut csv = String::from("sigma8,omega_c\n");
    for row in theta.chunks(2) {
        csv += &format!("{},{}\n", row[1], row[0]);
    }
    let t = dir.path("theta.csv");
    std::fs::write(&t, csv).unwrap();
    (m, t)
}

fn names() -> Vec<String> {
    ParamSpace::sbi_lens().names().to_vec()
}

#[test]
fn joint_pairs_from_files_map_columns_by_name_and_hold_out_the_last_maps() {
    let dir = common::TempDir::new("joint_pairs_files");
    let (side, count, crop) = (24, 10, 16);
    let g = grid(crop);
    let (maps, theta) = simulated_pairs(
        &Grid::square(side, sbi_lens::PIXEL_ARCMIN).unwrap(),
        count,
        3,
    );
    let (m, t) = write_pairs(&dir, &maps, &theta, side);
    let pairs = JointPairs::read(&m, &t, &names()).unwrap();
    assert_eq!(pairs.count(), count);
    assert_eq!(pairs.names(), ["sigma8", "omega_c"]);
    assert_eq!(pairs.pixel_arcmin(), None);
    let cfg = TrainConfig {
        crop,
        heldout: 3,
        ..config(4)
    };
    let mut tr = JointTrainer::new(
        denoiser(DenoiserKind::Hybrid, &g),
        JointData::Pairs(pairs.clone()),
        cfg.clone(),
    )
    .unwrap();
    // held out: the last 3 maps, centre crops, theta standardised in the space's order
    let space = ParamSpace::sbi_lens();
    let sd = tr.denoiser().meta().sigma_d;
    let (u, k) = tr.heldout_pairs();
    let want_u: Vec<f64> = theta[2 * (count - 3)..]
        .chunks(2)
        .flat_map(|t| space.standardise(t))
        .collect();
    assert_eq!(u, want_u);
    let off = (side - crop) / 2;
    for (i, map) in (count - 3..count).enumerate() {
        for y in 0..crop {
            for x in 0..crop {
                let want = maps[map * side * side + (off + y) * side + off + x] as f64 / sd;
                assert_eq!(k[(i * crop + y) * crop + x], want);
            }
        }
    }
    // an npy table, its columns in the space's order, gives the same pairs
    let tn = dir.path("theta.npy");
    let a = ndarray::ArrayD::from_shape_vec(vec![count, 2], theta.clone()).unwrap();
    lensdiff::io::npy::write_f64(&tn, a.view()).unwrap();
    let from_npy = JointPairs::read(&m, &tn, &names()).unwrap();
    assert_eq!(
        from_npy.standardised(&space).unwrap(),
        pairs.standardised(&space).unwrap()
    );
    // it trains and resumes
    for _ in 0..2 {
        assert!(tr.step().unwrap().loss.is_finite());
    }
    let ck = dir.path("ck.safetensors");
    tr.save_checkpoint(&ck).unwrap();
    let mut r = JointTrainer::resume(&ck, JointData::Pairs(from_npy), None).unwrap();
    r.run(|_, _| {}).unwrap();
    tr.run(|_, _| {}).unwrap();
    assert_eq!(r.denoiser().params, tr.denoiser().params);
    assert!(JointTrainer::resume(&ck, JointData::Gaussian { seed: 1 }, None).is_err());
    // FITS maps carry their pixel: the denoiser's must match
    let mf = dir.path("maps.fits");
    let wcs = lensdiff::io::Wcs::centred(
        &Grid::square(side, sbi_lens::PIXEL_ARCMIN).unwrap(),
        150.0,
        2.0,
        false,
    );
    let a = ndarray::ArrayD::from_shape_vec(vec![count, side, side], maps.clone()).unwrap();
    lensdiff::io::write_array(&mf, a.view(), Some(&wcs)).unwrap();
    let fits = JointPairs::read(&mf, &t, &names()).unwrap();
    let px = fits.pixel_arcmin().unwrap();
    assert!((px / sbi_lens::PIXEL_ARCMIN - 1.0).abs() < 1e-9, "{px}");
    JointTrainer::new(
        denoiser(DenoiserKind::Pure, &g),
        JointData::Pairs(fits.clone()),
        cfg.clone(),
    )
    .unwrap();
    let other = Grid::square(crop, 1.0).unwrap();
    let e = JointTrainer::new(
        denoiser(DenoiserKind::Pure, &other),
        JointData::Pairs(fits),
        cfg,
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("pixel"), "{e}");
}

#[test]
fn joint_pairs_bad_inputs_are_typed_errors() {
    use lensdiff::Error;
    let dir = common::TempDir::new("joint_pairs_bad");
    let (side, count) = (16, 6);
    let g = grid(side);
    let (maps, theta) = simulated_pairs(&g, count, 5);
    let (m, good) = write_pairs(&dir, &maps, &theta, side);
    let csv = |name: &str, text: &str| {
        let p = dir.path(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let rows = |header: &str, n: usize, f: &dyn Fn(usize) -> String| {
        let mut s = format!("{header}\n");
        for i in 0..n {
            s += &f(i);
            s += "\n";
        }
        s
    };
    let ok_row = |i: usize| format!("{},{}", theta[2 * i + 1], theta[2 * i]);
    let read = |t: &std::path::Path| JointPairs::read(&m, t, &names());
    // one row per map
    let short = csv("short.csv", &rows("sigma8,omega_c", count - 1, &ok_row));
    let e = read(&short).err().unwrap();
    assert!(
        matches!(e, Error::InvalidArgument { name: "theta", .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("5 rows for 6 maps"), "{e}");
    // NaN (and infinity) values name the row and the parameter
    for (file, v) in [("nan.csv", "nan"), ("inf.csv", "inf")] {
        let t = csv(
            file,
            &rows("sigma8,omega_c", count, &|i| {
                if i == 3 {
                    format!("{v},0.3")
                } else {
                    ok_row(i)
                }
            }),
        );
        let e = read(&t).err().unwrap();
        assert!(
            matches!(e, Error::InvalidArgument { name: "theta", .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("`sigma8` in row 3"), "{e}");
    }
    // not a number, a ragged row, no header: format errors naming the file
    for (file, text, needle) in [
        (
            "word.csv",
            rows("sigma8,omega_c", count, &|i| {
                if i == 2 {
                    "0.8,abc".into()
                } else {
                    ok_row(i)
                }
            }),
            "`abc` is not a number",
        ),
        (
            "ragged.csv",
            rows("sigma8,omega_c", count, &|i| {
                if i == 1 {
                    "0.8".into()
                } else {
                    ok_row(i)
                }
            }),
            "has 1 values",
        ),
        ("noheader.csv", rows("0.8,0.3", count, &ok_row), "header"),
        ("empty.csv", String::new(), "empty"),
    ] {
        let t = csv(file, &text);
        let e = read(&t).err().unwrap();
        match &e {
            Error::Format { path, reason } => {
                assert_eq!(path, &t);
                assert!(reason.contains(needle), "{file}: {reason}");
            }
            other => panic!("{file}: {other:?}"),
        }
    }
    // names: an unknown column, a missing one (read fine; refused against the space)
    let space = ParamSpace::sbi_lens();
    let train = |t: &std::path::Path| {
        let pairs = read(t).unwrap();
        assert!(pairs.standardised(&space).is_err());
        JointTrainer::new(
            denoiser(DenoiserKind::Pure, &g),
            JointData::Pairs(pairs),
            TrainConfig {
                crop: side,
                heldout: 2,
                ..config(2)
            },
        )
        .err()
        .unwrap()
        .to_string()
    };
    let unknown = csv("unknown.csv", &rows("sigma_8,omega_c", count, &ok_row));
    let e = train(&unknown);
    assert!(e.contains("unknown parameter `sigma_8`"), "{e}");
    let missing = csv(
        "missing.csv",
        &rows("omega_c", count, &|i| format!("{}", theta[2 * i])),
    );
    let e = train(&missing);
    assert!(e.contains("no column `sigma8`"), "{e}");
    let twice = csv("twice.csv", &rows("omega_c,omega_c", count, &ok_row));
    assert!(read(&twice).is_err());
    // an npy table with the wrong number of columns, a table of another format
    let tn = dir.path("theta3.npy");
    let a = ndarray::ArrayD::from_shape_vec(vec![2, 6], theta.clone()).unwrap();
    lensdiff::io::npy::write_f64(&tn, a.view()).unwrap();
    let e = read(&tn).err().unwrap();
    assert!(e.to_string().contains("6 columns"), "{e}");
    assert!(read(&dir.path("theta.txt")).is_err());
    assert!(matches!(read(&dir.path("none.csv")), Err(Error::Io { .. })));
    // crop larger than the maps, every pair held out
    let pairs = read(&good).unwrap();
    for (cfg, needle) in [
        (
            TrainConfig {
                crop: 32,
                heldout: 2,
                ..config(2)
            },
            "larger than the 16x16 maps",
        ),
        (
            TrainConfig {
                crop: side,
                heldout: count,
                ..config(2)
            },
            "leave none",
        ),
    ] {
        let g = grid(cfg.crop);
        let e = JointTrainer::new(
            denoiser(DenoiserKind::Pure, &g),
            JointData::Pairs(pairs.clone()),
            cfg,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains(needle), "{e}");
    }
    // in memory: non-finite maps, rows that do not fit the names
    let mut bad = maps.clone();
    bad[300] = f32::NAN;
    let e = JointPairs::new(bad, count, side, side, &names(), theta.clone())
        .err()
        .unwrap();
    assert!(e.to_string().contains("map 1"), "{e}");
    assert!(JointPairs::new(
        maps.clone(),
        count,
        side,
        side,
        &names(),
        theta[1..].to_vec()
    )
    .is_err());
    assert!(JointPairs::new(maps, count, side, side, &["omega_c", ""], theta).is_err());
}

#[test]
fn a_parameter_prior_file_is_a_list_in_the_state_order() {
    use lensdiff::Error;
    let label = std::path::Path::new("prior.json");
    let s = ParamSpace::from_json(
        r#"[{"name": "sigma8", "mean": 0.8, "std": 0.05},
            {"name": "omega_c", "mean": 0.3, "std": 0.04}]"#,
        label,
    )
    .unwrap();
    assert_eq!(s.names(), ["sigma8", "omega_c"]);
    assert_eq!(s.mean(), [0.8, 0.3]);
    assert_eq!(s.std(), [0.05, 0.04]);
    for (text, needle) in [
        (r#"{"omega_c": {"mean": 0.3, "std": 0.05}}"#, "list"),
        (r#"[{"name": "omega_c", "mean": 0.3, "sd": 0.05}]"#, "sd"),
        (
            r#"[{"name": "omega_c", "mean": 0.3, "std": -0.05}]"#,
            "positive std",
        ),
        (
            r#"[{"name": "omega_c", "mean": 0.3, "std": 0.05}, {"name": "omega_c", "mean": 0.3, "std": 0.05}]"#,
            "distinct",
        ),
        ("[]", "need 1 to"),
        ("[{", "list"),
    ] {
        match ParamSpace::from_json(text, label) {
            Err(Error::Format { path, reason }) => {
                assert_eq!(path, label);
                assert!(reason.contains(needle), "{text}: {reason}");
            }
            other => panic!("{text}: {other:?}"),
        }
    }
    let dir = common::TempDir::new("params_file");
    let p = dir.path("p.json");
    std::fs::write(&p, r#"[{"name": "omega_c", "mean": 0.3, "std": 0.05}, {"name": "sigma8", "mean": 0.8, "std": 0.05}]"#).unwrap();
    assert_eq!(ParamSpace::read_json(&p).unwrap(), ParamSpace::sbi_lens());
    assert!(matches!(
        ParamSpace::read_json(&dir.path("none.json")),
        Err(Error::Io { .. })
    ));
}

#[test]
fn joint_training_from_files_reduces_the_heldout_loss() {
    // 96 Gaussian fields of C_ell(theta) on 32² at theta from the prior,
    // written to npy + CSV and read back; the last 16 held out. A pure
    // network from F = 0 trained STEPS steps of 8 pairs: the held-out map
    // error at sigma >= 0.3 must fall, closing at least half the gap between
    // c_skip k_sigma and the exact Gaussian joint denoiser (measured when
    // written: 86, 89 and 83% at sigma = 0.3, 1 and 3).
    const STEPS: u64 = 200;
    let dir = common::TempDir::new("joint_train_files");
    let side = 32;
    let g = grid(side);
    let (maps, theta) = simulated_pairs(&g, 96, 11);
    let (m, t) = write_pairs(&dir, &maps, &theta, side);
    let pairs = JointPairs::read(&m, &t, &names()).unwrap();
    let cfg = TrainConfig {
        batch: 8,
        crop: side,
        heldout: 16,
        ..config(STEPS)
    };
    let mut tr = JointTrainer::new(
        denoiser(DenoiserKind::Pure, &g),
        JointData::Pairs(pairs),
        cfg,
    )
    .unwrap();
    let (before, exact) = tr.heldout_loss(false).unwrap();
    tr.run(|_, _| {}).unwrap();
    let (after, _) = tr.heldout_loss(false).unwrap();
    for ((b, a), e) in before.iter().zip(&after).zip(&exact) {
        let closed = 1.0 - (a.mse_k - e.mse_k) / (b.mse_k - e.mse_k);
        eprintln!(
            "sigma {:5.2}: mse_u untrained {:.4} trained {:.4} exact {:.4} | mse_k {:.4} {:.4} {:.4} (gap closed {:.0}%)",
            b.sigma, b.mse_u, a.mse_u, e.mse_u, b.mse_k, a.mse_k, e.mse_k, 100.0 * closed
        );
        if b.sigma >= 0.3 {
            assert!(
                a.mse_k < b.mse_k,
                "sigma {}: {} -> {}",
                b.sigma,
                b.mse_k,
                a.mse_k
            );
            assert!(
                closed > 0.5,
                "sigma {}: closed {:.0}%",
                b.sigma,
                100.0 * closed
            );
        }
    }
}
