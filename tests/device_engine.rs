//! The device engine (`sampler::device`) on the CPU backend against the CPU
//! sampler: for every integrator, every guidance scheme and both refinements,
//! the same seed must give *bitwise* the same chains, evaluation counts,
//! inner iterations, acceptances and chi². This checks the launch sequence
//! the CUDA backend runs (each of its kernels is then checked against the CPU
//! backend's method of the same name by `bench/gpu_check.sh`).

mod common;

use lensdiff::backend::cpu::Cpu;
use lensdiff::prior::GaussianPrior;
use lensdiff::sampler::{
    device, sample, Guidance, GuidedPosterior, RefineMethod, Refinement, SampleSet, SamplerConfig,
    SamplerKind, ShearData,
};

/// A masked problem with non-uniform noise, so the inner solve iterates.
fn problem(side: usize) -> (GaussianPrior, ShearData) {
    common::masked_problem(side, |i| i % 7 != 3)
}

fn assert_same(a: &SampleSet, b: &SampleSet, what: &str) {
    assert!(a.samples.iter().all(|v| v.is_finite()), "{what}");
    assert_eq!(a.samples, b.samples, "{what}: samples");
    assert_eq!(a.nfe, b.nfe, "{what}: nfe");
    assert_eq!(
        a.inner_iterations, b.inner_iterations,
        "{what}: inner iterations"
    );
    assert_eq!(a.acceptance, b.acceptance, "{what}: acceptance");
    assert_eq!(a.chi2, b.chi2, "{what}: chi2");
}

#[test]
fn device_engine_on_the_cpu_backend_is_the_cpu_sampler_bitwise() {
    let (prior, data) = problem(16);
    let be = Cpu::new();
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
            // 5 chains in batches of 2: the last batch is smaller
            let a = sample(&post, &cfg, 11, 3, 5, 2, &mut |_, _| {}).unwrap();
            let b = device::sample(
                &be,
                &prior,
                &data,
                guidance,
                &cfg,
                11,
                3,
                5,
                2,
                &mut |_, _| {},
            )
            .unwrap();
            assert_same(&a, &b, &format!("{kind} + {}", guidance.name()));
            inner += b.inner_iterations;
        }
    }
    // the spectral guidance's solve did iterate (warm starts and all)
    assert!(inner > 100, "{inner}");
}

#[test]
fn device_engine_refinement_matches_with_and_without_a_metric() {
    let (prior, data) = problem(12);
    let be = Cpu::new();
    for method in [RefineMethod::Langevin, RefineMethod::Hmc] {
        for guidance in [
            Guidance::Spectral { tol: 1e-5 },
            Guidance::Annealed { c: 0.5 },
        ] {
            let cfg = SamplerConfig {
                levels: 5,
                refine: Some(Refinement {
                    method,
                    steps: 3,
                    step: 0.3,
                }),
                ..SamplerConfig::default()
            };
            let post = GuidedPosterior::new(&prior, &data, guidance).unwrap();
            let a = sample(&post, &cfg, 5, 0, 3, 3, &mut |_, _| {}).unwrap();
            let b = device::sample(
                &be,
                &prior,
                &data,
                guidance,
                &cfg,
                5,
                0,
                3,
                3,
                &mut |_, _| {},
            )
            .unwrap();
            assert_same(&a, &b, &format!("{method:?} + {}", guidance.name()));
            if method == RefineMethod::Hmc {
                assert!(b.acceptance.is_some());
            }
        }
    }
}

#[test]
fn device_engine_rejects_what_the_cpu_sampler_rejects() {
    let (prior, data) = problem(8);
    let be = Cpu::new();
    let cfg = SamplerConfig {
        levels: 4,
        ..SamplerConfig::default()
    };
    let g = Guidance::Spectral { tol: 1e-5 };
    assert!(device::sample(&be, &prior, &data, g, &cfg, 1, 0, 0, 1, &mut |_, _| {}).is_err());
    assert!(device::sample(&be, &prior, &data, g, &cfg, 1, 0, 1, 0, &mut |_, _| {}).is_err());
    let bad = Guidance::Spectral { tol: 2.0 };
    assert!(device::sample(&be, &prior, &data, bad, &cfg, 1, 0, 1, 1, &mut |_, _| {}).is_err());
    let cfg = SamplerConfig {
        refine: Some(Refinement {
            method: RefineMethod::Langevin,
            steps: 1,
            step: -1.0,
        }),
        ..cfg
    };
    assert!(device::sample(&be, &prior, &data, g, &cfg, 1, 0, 1, 1, &mut |_, _| {}).is_err());
}
