//! Integrators against the exact posterior (ladder step 2): 32x32, no mask,
//! uniform noise, the exact diffused-posterior score. The posterior is Gaussian
//! and diagonal in Fourier space, so each mode's mean and variance are known.
//!
//! Statistics over K independent real Fourier components (real and imaginary
//! parts of the half spectrum, mirrors skipped) and N chains:
//! - z_k = (sample mean - exact mean) / sqrt(exact var / N); unbiased sampling
//!   gives RMS(z) = 1 with standard error 1/sqrt(2K);
//! - r_k = sample var / exact var; mean(r) = 1 with standard error
//!   sqrt(2/((N-1) K)).
//!
//! Bounds are 4 standard errors plus a 2% discretisation allowance (the level
//! counts are chosen so that each integrator's own error is below it).

mod common;

use common::modes::mode_stats;

use lensdiff::sampler::{
    sample, FourierGaussianPosterior, RunSpec, SamplerConfig, SamplerKind, ScoreModel,
};

fn check(kind: SamplerKind, levels: usize, allowance: f64) {
    let (g, power, data) = common::exact_problem();
    let oracle = FourierGaussianPosterior::new(&power, &data).unwrap();
    let chains = 128;
    let cfg = SamplerConfig {
        kind,
        levels,
        ..SamplerConfig::default()
    };
    let run = sample(
        &oracle,
        &cfg,
        &RunSpec::new(42, chains).in_batches(64),
        &mut |_, _| {},
    )
    .unwrap();
    let st = mode_stats(&g, &oracle, &run.samples);
    let se_z = 1.0 / (2.0 * st.k as f64).sqrt();
    let se_r = (2.0 / ((chains - 1) as f64 * st.k as f64)).sqrt();
    eprintln!(
        "{:<20} levels {levels:>4} NFE {:>5}: RMS z {:.3} (±{:.3}), var ratio {:.4} (±{:.4}), K = {}{}",
        kind.name(),
        run.nfe,
        st.rms_z,
        se_z,
        st.mean_ratio,
        se_r,
        st.k,
        run.acceptance.as_ref().map_or(String::new(), |a| format!(", acceptance {:.3}", a.iter().sum::<f64>() / a.len() as f64)),
    );
    assert!(
        (st.rms_z - 1.0).abs() < 4.0 * se_z + allowance,
        "{}: RMS z {}",
        kind.name(),
        st.rms_z
    );
    assert!(
        (st.mean_ratio - 1.0).abs() < 4.0 * se_r + allowance,
        "{}: variance ratio {}",
        kind.name(),
        st.mean_ratio
    );
}

#[test]
fn heun_ode_reproduces_the_exact_posterior() {
    check(SamplerKind::HeunOde, 64, 0.02);
}

#[test]
fn edm_stochastic_reproduces_the_exact_posterior() {
    check(SamplerKind::from_name("edm").unwrap(), 128, 0.02);
}

#[test]
fn euler_maruyama_reproduces_the_exact_posterior() {
    check(SamplerKind::EulerMaruyama, 1000, 0.02);
}

#[test]
fn predictor_corrector_reproduces_the_exact_posterior() {
    check(SamplerKind::from_name("pc").unwrap(), 500, 0.02);
}

#[test]
fn annealed_hmc_reproduces_the_exact_posterior() {
    check(SamplerKind::from_name("hmc").unwrap(), 600, 0.02);
}

#[test]
fn chains_do_not_depend_on_the_batch_size() {
    let (_, power, data) = common::exact_problem();
    let oracle = FourierGaussianPosterior::new(&power, &data).unwrap();
    for kind in [
        SamplerKind::from_name("edm").unwrap(),
        SamplerKind::from_name("hmc").unwrap(),
    ] {
        let cfg = SamplerConfig {
            kind,
            levels: 12,
            ..SamplerConfig::default()
        };
        let a = sample(&oracle, &cfg, &RunSpec::new(7, 6), &mut |_, _| {}).unwrap();
        let b = sample(
            &oracle,
            &cfg,
            &RunSpec::new(7, 6).in_batches(4),
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(a.samples, b.samples, "{}", kind.name());
        // chains 2..6 run alone equal chains 2..6 of the full run
        let c = sample(
            &oracle,
            &cfg,
            &RunSpec::new(7, 4).from_chain(2).in_batches(3),
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(&a.samples[2 * 1024..], &c.samples[..]);
        let d = sample(&oracle, &cfg, &RunSpec::new(8, 6), &mut |_, _| {}).unwrap();
        assert_ne!(a.samples, d.samples);
    }
}

#[test]
#[ignore = "exploration, not a check (LEVELS, KIND, SMIN, SMAX): cargo test --release --test sampler_exact explore -- --ignored --nocapture"]
fn explore() {
    let levels: usize = std::env::var("LEVELS")
        .unwrap_or("32".into())
        .parse()
        .unwrap();
    let kind = SamplerKind::from_name(&std::env::var("KIND").unwrap_or("heun".into())).unwrap();
    let smin: f64 = std::env::var("SMIN")
        .unwrap_or("1e-4".into())
        .parse()
        .unwrap();
    let (g, power, data) = common::exact_problem();
    let oracle = FourierGaussianPosterior::new(&power, &data).unwrap();
    let smax: Option<f64> = std::env::var("SMAX").ok().map(|s| s.parse().unwrap());
    let cfg = SamplerConfig {
        kind,
        levels,
        sigma_min: smin,
        sigma_max: smax,
        ..SamplerConfig::default()
    };
    let run = sample(
        &oracle,
        &cfg,
        &RunSpec::new(42, 128).in_batches(64),
        &mut |_, _| {},
    )
    .unwrap();
    let st = mode_stats(&g, &oracle, &run.samples);
    eprintln!(
        "{} levels {levels} smin {smin}: RMS z {:.3} ratio {:.4} ; sqrt(maxS) {:.4} pixvar {:.3e}",
        kind.name(),
        st.rms_z,
        st.mean_ratio,
        oracle.prior_scale(),
        oracle.pixel_variance()
    );
}

#[test]
fn refinement_keeps_the_exact_posterior_and_reports_acceptance() {
    use lensdiff::sampler::{RefineMethod, Refinement};
    let (g, power, data) = common::exact_problem();
    let oracle = FourierGaussianPosterior::new(&power, &data).unwrap();
    for (method, step) in [(RefineMethod::Hmc, 0.5), (RefineMethod::Langevin, 0.1)] {
        let cfg = SamplerConfig {
            kind: SamplerKind::HeunOde,
            levels: 64,
            refine: Some(Refinement {
                method,
                steps: 10,
                step,
            }),
            ..SamplerConfig::default()
        };
        let run = sample(
            &oracle,
            &cfg,
            &RunSpec::new(3, 128).in_batches(64),
            &mut |_, _| {},
        )
        .unwrap();
        let st = mode_stats(&g, &oracle, &run.samples);
        let (se_z, se_r) = (
            1.0 / (2.0 * st.k as f64).sqrt(),
            (2.0 / (127.0 * st.k as f64)).sqrt(),
        );
        eprintln!(
            "refine {method:?}: NFE {} RMS z {:.3} ratio {:.4}",
            run.nfe, st.rms_z, st.mean_ratio
        );
        assert!((st.rms_z - 1.0).abs() < 4.0 * se_z + 0.02);
        assert!((st.mean_ratio - 1.0).abs() < 4.0 * se_r + 0.02);
        match method {
            RefineMethod::Hmc => {
                let a = run.acceptance.expect("HMC refinement reports acceptance");
                let mean = a.iter().sum::<f64>() / a.len() as f64;
                assert!(mean > 0.2 && mean <= 1.0, "acceptance {mean}");
                assert_eq!(run.nfe, 126 + 10 * 5);
            }
            RefineMethod::Langevin => {
                assert!(run.acceptance.is_none());
                assert_eq!(run.nfe, 126 + 10);
            }
        }
    }
}
