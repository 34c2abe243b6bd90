//! The sampling engine with the guided posterior, on the CPU backend (the
//! reference; `tests/gpu.rs` runs the same engine on CUDA against it).
//!
//! The CPU integrates each chain on its own (chains in parallel); a GPU
//! integrates batches, with a batched inner solve and warm starts that must
//! keep every chain to itself. `Cpu::batched()` runs the GPU's launch sequence
//! on the reference arithmetic, so for every integrator, every guidance scheme
//! and both refinements a chain's map, chi², acceptance and inner iterations
//! must be bitwise the same whether it runs alone, in a batch of 2 or in one
//! batch of 5. And the device-dispatching `sample` is the engine on the CPU
//! backend.

mod common;

use lensdiff::backend::cpu::Cpu;
use lensdiff::backend::Device;
use lensdiff::prior::GaussianPrior;
use lensdiff::sampler::{
    engine, sample, Guidance, GuidedPosterior, Model, RefineMethod, Refinement, RunSpec, SampleSet,
    SamplerConfig, SamplerKind, ScoreStats, ShearData, State, Target,
};

/// A masked problem with non-uniform noise, so the inner solve iterates.
fn problem(side: usize) -> (GaussianPrior, ShearData) {
    common::masked_problem(side, |i| i % 7 != 3)
}

/// Chain `c` of `set` (maps, chi² and acceptance).
fn chain(set: &SampleSet, c: usize) -> (Vec<f32>, f64, Option<f64>) {
    (
        set.sample(c).to_vec(),
        set.chi2[c],
        set.acceptance.as_ref().map(|a| a[c]),
    )
}

fn assert_batch_independent(post: &GuidedPosterior, cfg: &SamplerConfig, what: &str) {
    let none = &mut |_: usize, _: usize| {};
    let be = Cpu::batched();
    let run = RunSpec::new(11, 5).from_chain(3);
    let one = engine::run(&be, post, cfg, &run, none).unwrap();
    let pairs = engine::run(&be, post, cfg, &run.in_batches(2), none).unwrap();
    // chains on their own, in parallel
    let parallel = sample(post, cfg, &run, none).unwrap();
    assert_eq!(
        one.samples, parallel.samples,
        "{what}: samples, chains on their own"
    );
    assert_eq!(one.chi2, parallel.chi2, "{what}: chi2, chains on their own");
    assert_eq!(
        one.acceptance, parallel.acceptance,
        "{what}: acceptance, chains on their own"
    );
    assert_eq!(
        one.inner_iterations, parallel.inner_iterations,
        "{what}: inner iterations, chains on their own"
    );
    assert!(one.samples.iter().all(|v| v.is_finite()), "{what}");
    assert_eq!(one.samples, pairs.samples, "{what}: samples");
    assert_eq!(one.chi2, pairs.chi2, "{what}: chi2");
    assert_eq!(one.acceptance, pairs.acceptance, "{what}: acceptance");
    assert_eq!(one.nfe, pairs.nfe, "{what}: nfe");
    assert_eq!(
        one.inner_iterations, pairs.inner_iterations,
        "{what}: inner iterations"
    );
    // chain 3 + 2 alone is the third chain of the batch
    let alone = engine::run(&be, post, cfg, &RunSpec::new(11, 1).from_chain(5), none).unwrap();
    assert_eq!(chain(&alone, 0), chain(&one, 2), "{what}: a chain alone");
}

#[test]
fn every_chain_is_independent_of_its_batch_in_every_sampler_and_guidance() {
    let (prior, data) = problem(16);
    let guidances = [
        Guidance::Spectral { tol: 1e-5 },
        Guidance::Annealed { c: 0.5 },
        Guidance::Tweedie { inflate: false },
        Guidance::Tweedie { inflate: true },
    ];
    let mut inner = 0;
    for kind in ["em", "pc", "heun", "edm", "hmc"] {
        for guidance in guidances {
            let cfg = SamplerConfig {
                kind: SamplerKind::from_name(kind).unwrap(),
                levels: 7,
                ..SamplerConfig::default()
            };
            let post = GuidedPosterior::new(&prior, &data, guidance).unwrap();
            assert_batch_independent(&post, &cfg, &format!("{kind} + {}", guidance.name()));
            if matches!(guidance, Guidance::Spectral { .. }) {
                inner += sample(&post, &cfg, &RunSpec::new(11, 2), &mut |_, _| {})
                    .unwrap()
                    .inner_iterations;
            }
        }
    }
    // the spectral runs did iterate (warm starts were exercised)
    assert!(inner > 0);
    for method in [RefineMethod::Langevin, RefineMethod::Hmc] {
        for guidance in [
            Guidance::Spectral { tol: 1e-5 },
            Guidance::Annealed { c: 0.5 },
        ] {
            let cfg = SamplerConfig {
                levels: 6,
                refine: Some(Refinement::new(method, 3, None)),
                ..SamplerConfig::default()
            };
            let post = GuidedPosterior::new(&prior, &data, guidance).unwrap();
            assert_batch_independent(&post, &cfg, &format!("{method:?} + {}", guidance.name()));
        }
    }
}

#[test]
fn sample_on_the_cpu_device_is_the_engine_on_the_cpu_backend() {
    let (prior, data) = problem(8);
    let post = GuidedPosterior::new(&prior, &data, Guidance::Spectral { tol: 1e-5 }).unwrap();
    let cfg = SamplerConfig {
        kind: SamplerKind::from_name("hmc").unwrap(),
        levels: 5,
        ..SamplerConfig::default()
    };
    let run = RunSpec::new(4, 3).on(Device::Cpu);
    let mut calls = Vec::new();
    let a = sample(&post, &cfg, &run, &mut |done, total| {
        calls.push((done, total))
    })
    .unwrap();
    let b = engine::run(&Cpu::new(), &post, &cfg, &run, &mut |_, _| {}).unwrap();
    assert_eq!(a.samples, b.samples);
    assert_eq!(a.acceptance, b.acceptance);
    // progress counts up to every level of every chain, and reports the end
    let total = 3 * cfg.noise_levels(&post).unwrap().len();
    assert_eq!(calls.last(), Some(&(total, total)));
    assert!(calls.windows(2).all(|w| w[0].0 < w[1].0), "{calls:?}");
}

#[test]
fn the_engine_rejects_bad_runs_before_sampling() {
    let (prior, data) = problem(8);
    let cfg = SamplerConfig {
        levels: 4,
        ..SamplerConfig::default()
    };
    let g = Guidance::Spectral { tol: 1e-5 };
    let post = GuidedPosterior::new(&prior, &data, g).unwrap();
    let none = &mut |_: usize, _: usize| {};
    assert!(sample(&post, &cfg, &RunSpec::new(1, 0), none).is_err());
    assert!(sample(&post, &cfg, &RunSpec::new(1, 1).in_batches(0), none).is_err());
    assert!(GuidedPosterior::new(&prior, &data, Guidance::Spectral { tol: 2.0 }).is_err());
    let bad = SamplerConfig {
        refine: Some(Refinement {
            method: RefineMethod::Langevin,
            steps: 1,
            step: -1.0,
        }),
        ..cfg
    };
    assert!(sample(&post, &bad, &RunSpec::new(1, 1), none).is_err());
}

/// A joint toy model: every pixel of the map and each of `P` parameters per
/// chain is an independent `N(0, V)`, so the diffused score is
/// `-x / (V + sigma²)` on both parts.
struct JointToy {
    grid: lensdiff::grid::Grid,
}

const V: f64 = 1.0;
const P: usize = 3;

impl Model for JointToy {
    fn grid(&self) -> &lensdiff::grid::Grid {
        &self.grid
    }

    fn prior_scale(&self) -> f64 {
        V.sqrt()
    }

    fn chi2(&self, maps: &[f32]) -> lensdiff::error::Result<Vec<f64>> {
        Ok(vec![0.0; maps.len() / self.grid.len()])
    }

    fn on_cpu(&self, _be: &Cpu) -> lensdiff::error::Result<Box<dyn Target<Cpu> + '_>> {
        Ok(Box::new(JointToyTarget))
    }
}

struct JointToyTarget;

fn scaled(v: &[f32], f: f64) -> Vec<f32> {
    v.iter().map(|x| (*x as f64 * f) as f32).collect()
}

impl Target<Cpu> for JointToyTarget {
    fn param_len(&self) -> usize {
        P
    }

    fn begin_batch(&mut self, _be: &Cpu, _chains: usize) -> lensdiff::error::Result<()> {
        Ok(())
    }

    fn score(
        &mut self,
        _be: &Cpu,
        x: &State<Cpu>,
        sigma: f64,
        out: &mut State<Cpu>,
    ) -> lensdiff::error::Result<ScoreStats> {
        let f = -1.0 / (V + sigma * sigma);
        out.maps = scaled(&x.maps, f);
        out.params = Some(scaled(x.params.as_ref().unwrap(), f));
        Ok(ScoreStats::default())
    }

    fn initial(
        &self,
        _be: &Cpu,
        sigma_max: f64,
        z: &mut State<Cpu>,
    ) -> lensdiff::error::Result<()> {
        let f = (V + sigma_max * sigma_max).sqrt();
        z.maps = scaled(&z.maps, f);
        z.params = Some(scaled(z.params.as_ref().unwrap(), f));
        Ok(())
    }

    fn start_hmc(&self, be: &Cpu, sigma0: f64, x: &mut State<Cpu>) -> lensdiff::error::Result<()> {
        self.initial(be, sigma0, x)
    }
}

/// Sample variance and correlation with the map's first pixels of the
/// parameters of a run.
fn param_stats(set: &SampleSet) -> (f64, f64) {
    let params = set.params.as_ref().expect("the run returns its parameters");
    let n = set.grid.len();
    assert_eq!(params.len(), set.chains() * P);
    let (mut var, mut cross) = (0.0, 0.0);
    for c in 0..set.chains() {
        for j in 0..P {
            let t = params[c * P + j] as f64;
            var += t * t;
            cross += t * set.samples[c * n + j] as f64;
        }
    }
    let k = (set.chains() * P) as f64;
    (var / k, cross / k)
}

#[test]
fn the_state_carries_parameters_with_noise_of_their_own_through_every_integrator() {
    let model = JointToy {
        grid: lensdiff::grid::Grid::square(8, 2.0).unwrap(),
    };
    // k = 600 parameter draws of N(0, 1) (and of the maps' first pixels): the
    // variance estimate has std sqrt(2/k) = 0.058 and the cross moment with
    // independent map pixels std 1/sqrt(k) = 0.041; 4 sigma each, plus up to
    // 0.05 of discretisation bias for the variance (400 Euler–Maruyama levels;
    // HMC and Heun are exact for a Gaussian up to the levels' end, sigma_min²).
    let chains = 200;
    for (kind, levels) in [("em", 400), ("heun", 64), ("hmc", 60), ("pc", 200)] {
        let cfg = SamplerConfig {
            kind: SamplerKind::from_name(kind).unwrap(),
            levels,
            ..SamplerConfig::default()
        };
        // batched (the State's parameter updates run on every batch operation)
        let run = RunSpec::new(9, chains).in_batches(64);
        let set = engine::run(&Cpu::batched(), &model, &cfg, &run, &mut |_, _| {}).unwrap();
        let (var, cross) = param_stats(&set);
        assert!(
            (var - V).abs() < 4.0 * 0.058 + 0.05,
            "{kind}: parameter variance {var}"
        );
        // parameters drawn with the maps' stream would equal the maps' first pixels (cross = 1)
        assert!(
            cross.abs() < 4.0 * 0.041,
            "{kind}: parameters follow the map noise ({cross})"
        );
        // batches do not change a chain's parameters, nor chains run on their own
        let one = sample(&model, &cfg, &RunSpec::new(9, chains), &mut |_, _| {}).unwrap();
        assert_eq!(one.params, set.params, "{kind}");
    }
    // a model without parameters returns none
    let (prior, data) = problem(8);
    let post = GuidedPosterior::new(&prior, &data, Guidance::Annealed { c: 0.5 }).unwrap();
    let cfg = SamplerConfig {
        levels: 4,
        ..SamplerConfig::default()
    };
    assert!(sample(&post, &cfg, &RunSpec::new(1, 1), &mut |_, _| {})
        .unwrap()
        .params
        .is_none());
}

#[test]
fn progress_only_counts_up_and_overflowing_chain_indices_are_refused() {
    let (prior, data) = problem(8);
    let post = GuidedPosterior::new(&prior, &data, Guidance::Annealed { c: 0.5 }).unwrap();
    let cfg = SamplerConfig {
        levels: 5,
        ..SamplerConfig::default()
    };
    // 6 chains on the worker threads, at most 2 at a time
    let mut calls = Vec::new();
    let run = RunSpec::new(2, 6).in_batches(2);
    sample(&post, &cfg, &run, &mut |d, t| calls.push((d, t))).unwrap();
    assert_eq!(calls.last(), Some(&(30, 30)));
    assert!(calls.windows(2).all(|w| w[0].0 < w[1].0), "{calls:?}");
    let e = sample(
        &post,
        &cfg,
        &RunSpec::new(2, 2).from_chain(u64::MAX),
        &mut |_, _| {},
    );
    assert!(format!("{}", e.unwrap_err()).contains("first_chain"));
}
