//! The learned joint denoiser (`lensdiff::prior::joint::neural`) and its
//! training (`lensdiff::prior::joint::train`), issue #15 part 2:
//!
//! - a hybrid with a zero network is the exact Gaussian joint denoiser, bitwise
//!   (values and VJP);
//! - the VJP of pure and hybrid denoisers with trained-like weights against
//!   central differences along random directions;
//! - files round-trip bitwise, and bad descriptions are errors;
//! - training resumes bitwise, and a short run learns the map part (its
//!   parameter head does not learn in so short a run: printed, not asserted).

mod common;

use lensdiff::cosmo::limber::ClOptions;
use lensdiff::fields::sbi_lens;
use lensdiff::grid::Grid;
use lensdiff::nn::{Dims4, UNetConfig};
use lensdiff::prior::joint::train::{JointData, JointTrainer};
use lensdiff::prior::joint::{
    CosmologyRecipe, GaussianJoint, JointDenoiser, JointDenoiserMeta, JointPrior, NeuralJoint,
    ParamSpace,
};
use lensdiff::prior::{DenoiserKind, TrainConfig};

use common::SplitMix as Rng;

fn tiny_net() -> UNetConfig {
    UNetConfig {
        channels: vec![4, 8],
        blocks: 1,
        groups: 2,
        embed_freqs: 3,
        embed_dim: 8,
        padding: "periodic".into(),
        joint_params: 2,
    }
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
        JointTrainer::new(denoiser(DenoiserKind::Hybrid, &g), data, config(6)).unwrap();
    straight.run(|_, _| {}).unwrap();
    let mut first = JointTrainer::new(denoiser(DenoiserKind::Hybrid, &g), data, config(6)).unwrap();
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
