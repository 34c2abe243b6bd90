//! Every noise draw of a sampler is its own: the Langevin corrector steps of
//! the predictor–corrector sampler draw independent noise however many there
//! are per level (issue #12: steps j and j + 7 used to share their noise), and
//! the integrator settings that would break that are refused.

use std::sync::Mutex;

use lensdiff::sampler::{sample, RunSpec, SamplerConfig, SamplerKind, ScoreModel, ScoreStats};
use lensdiff::Grid;

mod common;

/// A model whose score is a fixed vector `c` whatever `x` and `sigma`, and
/// which records the state `x` of chain 0 at every score evaluation.
struct ConstantScore {
    grid: Grid,
    c: Vec<f32>,
    seen: Mutex<Vec<Vec<f32>>>,
}

impl ScoreModel for ConstantScore {
    fn grid(&self) -> &Grid {
        &self.grid
    }

    fn score(&self, x: &[f32], _sigma: f64, out: &mut [f32]) -> lensdiff::Result<ScoreStats> {
        let n = self.grid.len();
        self.seen.lock().unwrap().push(x[..n].to_vec());
        for o in out.chunks_mut(n) {
            o.copy_from_slice(&self.c);
        }
        Ok(ScoreStats::default())
    }

    fn initial(&self, sigma_max: f64, z: &mut [f32]) -> lensdiff::Result<()> {
        z.iter_mut().for_each(|v| *v *= sigma_max as f32);
        Ok(())
    }

    fn prior_scale(&self) -> f64 {
        1.0
    }

    fn start_map(&self) -> Option<Vec<f32>> {
        None
    }

    fn chi2(&self, kappa: &[f32]) -> lensdiff::Result<Vec<f64>> {
        Ok(vec![0.0; kappa.len() / self.grid.len()])
    }
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        ab += (x - ma) * (y - mb);
        aa += (x - ma) * (x - ma);
        bb += (y - mb) * (y - mb);
    }
    ab / (aa * bb).sqrt()
}

/// With a constant score `c`, corrector step j moves chain 0 by
/// `Δ_j = ε_j c + sqrt(2 ε_j) z_j` with `ε_j = 2 (r |z_j| / |c|)²`, so its
/// noise `z_j` is visible in the recorded states. For independent `z_j`,
/// `z_k` the correlation of `Δ_j` and `Δ_k` is `r² / (1 + r²)` (the shared
/// `ε c` part; r = 0.16 gives 0.025) with a Monte-Carlo standard deviation of
/// about `1 / sqrt(n)` = 1/64 on n = 64² pixels; we require every pair below
/// 0.025 + 5/64 < 0.11 (36 pairs, 5 sigma each: a false alarm has probability
/// below 1e-5 — and the seed is fixed). Shared noise gives a correlation of 1.
#[test]
fn corrector_steps_draw_independent_noise_beyond_seven_per_level() {
    let grid = Grid::square(64, 1.0).unwrap();
    let model = ConstantScore {
        grid,
        c: common::noise_vec(grid.len(), 5),
        seen: Mutex::new(vec![]),
    };
    let m = 9;
    let cfg = SamplerConfig {
        kind: SamplerKind::PredictorCorrector {
            snr: 0.16,
            corrector_steps: m,
        },
        levels: 3,
        sigma_max: Some(1.0),
        sigma_min: 0.5,
        ..SamplerConfig::default()
    };
    let set = sample(&model, &cfg, &RunSpec::new(11, 1), &mut |_, _| {}).unwrap();
    let seen = model.seen.into_inner().unwrap();
    // per level: one predictor evaluation, then one before each corrector step
    assert_eq!(seen.len(), 2 * (1 + m));
    // states before corrector steps 0..m of level 0, then the next level's start
    let states: Vec<&Vec<f32>> = seen[1..=m + 1].iter().collect();
    let steps: Vec<Vec<f64>> = states
        .windows(2)
        .map(|w| w[1].iter().zip(w[0]).map(|(b, a)| (b - a) as f64).collect())
        .collect();
    assert_eq!(steps.len(), m);
    for j in 0..m {
        for k in j + 1..m {
            let r = correlation(&steps[j], &steps[k]);
            assert!(
                r.abs() < 0.11,
                "corrector steps {j} and {k} of a level are correlated: r = {r:.4}"
            );
        }
    }
    assert!(set.samples.iter().all(|v| v.is_finite()));
}

/// Settings of the corrector that cannot give a valid run are typed errors.
#[test]
fn corrector_settings_are_validated() {
    let grid = Grid::square(8, 1.0).unwrap();
    let model = ConstantScore {
        grid,
        c: common::noise_vec(grid.len(), 5),
        seen: Mutex::new(vec![]),
    };
    let run = |snr: f64, corrector_steps: usize| {
        let cfg = SamplerConfig {
            kind: SamplerKind::PredictorCorrector {
                snr,
                corrector_steps,
            },
            levels: 3,
            sigma_max: Some(1.0),
            sigma_min: 0.5,
            ..SamplerConfig::default()
        };
        sample(&model, &cfg, &RunSpec::new(1, 1), &mut |_, _| {})
    };
    for snr in [0.0, -0.1, f64::NAN, f64::INFINITY] {
        let e = run(snr, 1).expect_err("bad snr accepted");
        assert!(e.to_string().contains("snr"), "{e}");
    }
    // 3 levels x 2^31 steps exceed the 2^32 noise counters of a chain
    let e = run(0.16, 1 << 31).expect_err("counter overflow accepted");
    assert!(e.to_string().contains("corrector_steps"), "{e}");
    assert!(run(0.16, 0).is_ok());
    // 2^29 levels: the sampler stream's step word 8 step + slot would wrap
    let cfg = SamplerConfig {
        levels: 1 << 29,
        ..SamplerConfig::default()
    };
    let e = sample(&model, &cfg, &RunSpec::new(1, 1), &mut |_, _| {})
        .expect_err("counter wrap accepted");
    assert!(e.to_string().contains("noise counters"), "{e}");
}
