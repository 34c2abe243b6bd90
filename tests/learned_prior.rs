//! The learned priors at realistic noise (#18, parts 2 and 3): calibration of
//! their posteriors and their posterior means against the truth, on held-out
//! log-normal fields and on N-body (kappaTNG) maps. Fields, settings and
//! models: tests/common/fields.rs; the models' cards: models/README.md;
//! results and commands: docs/learned-prior.md ("Validation at realistic
//! noise").
//!
//! **Calibration.** A learned prior has no exact posterior, and the
//! Metropolis-corrected samplers are no reference with a learned score (the
//! study's PC and annealed-HMC rows fail the check below far worse than the
//! default sampler). The check needs no reference: truths drawn from the
//! prior, posterior samples are, over the truths, distributed as the prior,
//! so their mean power per band of |k| (common::modes::band_powers) equals
//! the truths'; and the truth lies within the chains' mean ± 1 (2) std as
//! often as an exact sampler's N chains allow (common::expected_coverage).
//! Each statistic is computed per field; fields are independent, so the mean
//! over F fields has the standard error std / sqrt(F) of the field-to-field
//! scatter, which needs no model of the pixels' correlations.
//!
//! **Against the truth.** RMSE (mean removed over the whole map, squared
//! error averaged inside the mask, jax-lensing's definition) and Pearson r
//! inside the mask of Kaiser-Squires (2-pixel Gaussian smoothing), the
//! Wiener filter, and the posterior means of N chains under the Gaussian
//! prior and under the learned prior. Differences between methods are paired
//! per field (same truth, same noise), their standard error from the scatter
//! of the paired differences.

mod common;

use common::fields::{ktng_crops, Setting};
use common::modes::{band_powers, BANDS};
use lensdiff::baselines::{kaiser_squires, WienerFilter, WienerOptions};
use lensdiff::metrics::{pearson, rmse_centred};
use lensdiff::prior::{Denoiser, GaussianPrior, NeuralPrior, Prior};
use lensdiff::sampler::{
    sample, Guidance, GuidedPosterior, RunSpec, SampleSet, SamplerConfig, SamplerKind, ShearData,
};
use lensdiff::smoothing::Boundary;

/// Mean and standard error of independent per-field values.
fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (m, (var / n).sqrt())
}

/// `R = Σ s_i / Σ t_i − 1` over fields and its standard error by the delta
/// method, `sd(s_i − (1 + R) t_i) / (sqrt(F) mean(t))`, which accounts for
/// the scatter of the truths' power as well as the samples'.
fn power_ratio(s: &[f64], t: &[f64]) -> (f64, f64) {
    let f = s.len() as f64;
    let tm = t.iter().sum::<f64>() / f;
    let r = s.iter().sum::<f64>() / t.iter().sum::<f64>();
    let resid: Vec<f64> = s.iter().zip(t).map(|(s, t)| s - r * t).collect();
    let (_, se) = mean_se(&resid);
    (r - 1.0, se / tm)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn load_prior(setting: &Setting) -> NeuralPrior {
    let den = Denoiser::load(&common::root().join("models").join(setting.model)).unwrap();
    NeuralPrior::new(den, setting.grid()).unwrap()
}

fn run(post: &GuidedPosterior<'_>, cfg: &SamplerConfig, seed: u64, chains: usize) -> SampleSet {
    sample(post, cfg, &RunSpec::new(seed, chains), &mut |_, _| {}).unwrap()
}

/// One sampler configuration of the calibration study.
struct Config {
    label: &'static str,
    learned: bool,
    sampler: &'static str,
    guidance: Guidance,
    /// Without data (zero shear, noise 1e3): the prior alone.
    unconditional: bool,
}

/// Per-field calibration statistics of a configuration against the truth.
struct Calibration {
    /// the chains' mean band power, per band of |k|.
    sample_power: [f64; BANDS],
    /// the truth's band power.
    truth_power: [f64; BANDS],
    /// fraction of observed pixels whose truth is within mean ± 1 (2) chain std.
    cov68: f64,
    cov95: f64,
    /// mean Metropolis acceptance (annealed HMC).
    acceptance: Option<f64>,
}

fn calibration(
    setting: &Setting,
    prior: &dyn Prior,
    cfg: &Config,
    i: usize,
    chains: usize,
) -> Calibration {
    let grid = setting.grid();
    let truth = setting.lognormal_truth(i);
    let data = if cfg.unconditional {
        let zero = vec![0.0; grid.len()];
        let noise = lensdiff::noise::NoiseModel::uniform(grid, 1e3, None).unwrap();
        ShearData::new(zero.clone(), zero, noise).unwrap()
    } else {
        setting.observe(&truth, i)
    };
    let post = GuidedPosterior::new(prior, &data, cfg.guidance).unwrap();
    let kind = SamplerKind::from_name(cfg.sampler).unwrap();
    let sampler = SamplerConfig {
        kind,
        levels: kind.default_levels(),
        ..SamplerConfig::default()
    };
    let set = run(&post, &sampler, 700 + i as u64, chains);
    let (ps, pt) = (band_powers(&grid, &set.samples), band_powers(&grid, &truth));
    let m = set.moments();
    let var = m.variance();
    let mask = data.noise.mask();
    let (mut c68, mut c95, mut n) = (0.0, 0.0, 0.0);
    for j in (0..grid.len()).filter(|&j| cfg.unconditional || mask[j]) {
        let d = (truth[j] as f64 - m.mean[j]).abs();
        c68 += (d < var[j].sqrt()) as u8 as f64;
        c95 += (d < 2.0 * var[j].sqrt()) as u8 as f64;
        n += 1.0;
    }
    Calibration {
        sample_power: ps,
        truth_power: pt,
        cov68: c68 / n,
        cov95: c95 / n,
        acceptance: set
            .acceptance
            .as_ref()
            .map(|a| a.iter().sum::<f64>() / a.len() as f64),
    }
}

const CONFIGS: [Config; 8] = [
    Config {
        label: "Gaussian prior, heun, spectral (control)",
        learned: false,
        sampler: "heun",
        guidance: Guidance::Spectral { tol: 1e-4 },
        unconditional: false,
    },
    Config {
        label: "learned, heun, spectral (default)",
        learned: true,
        sampler: "heun",
        guidance: Guidance::Spectral { tol: 1e-4 },
        unconditional: false,
    },
    Config {
        label: "learned, heun, tweedie (DPS, network VJP)",
        learned: true,
        sampler: "heun",
        guidance: Guidance::Tweedie { inflate: false },
        unconditional: false,
    },
    Config {
        label: "learned, pc, spectral",
        learned: true,
        sampler: "pc",
        guidance: Guidance::Spectral { tol: 1e-4 },
        unconditional: false,
    },
    Config {
        label: "learned, hmc, spectral",
        learned: true,
        sampler: "hmc",
        guidance: Guidance::Spectral { tol: 1e-4 },
        unconditional: false,
    },
    Config {
        label: "learned prior alone, heun",
        learned: true,
        sampler: "heun",
        guidance: Guidance::Spectral { tol: 1e-4 },
        unconditional: true,
    },
    Config {
        label: "learned prior alone, pc",
        learned: true,
        sampler: "pc",
        guidance: Guidance::Spectral { tol: 1e-4 },
        unconditional: true,
    },
    Config {
        label: "learned prior alone, hmc",
        learned: true,
        sampler: "hmc",
        guidance: Guidance::Spectral { tol: 1e-4 },
        unconditional: true,
    },
];

/// The study behind docs/learned-prior.md's calibration table:
/// `cargo test --release --test learned_prior calibration_against_the_truth -- --ignored --nocapture`
/// (LENSDIFF_VALIDATION_FIELDS: fields per row, default 8, the PC and
/// annealed-HMC rows use half; LENSDIFF_VALIDATION_CHAINS:
/// chains per field, default 4; LENSDIFF_VALIDATION_ROWS: only the rows
/// whose label contains this text).
/// Posterior samples drawn for truths from the prior are, over the truths,
/// distributed as the prior: their mean band power equals the truths' (the
/// table gives Σ samples' / Σ truths' power − 1 over the fields, with the
/// delta-method standard error of [`power_ratio`]). The coverage columns are
/// printed beside the Gaussian expectation (common::expected_coverage) for
/// reference only: log-normal posteriors cover more
/// ([`coverage_of_exact_lognormal_chains`]).
#[test]
#[ignore = "a study (about 20 minutes; needs ../shared/data): cargo test --release --test learned_prior calibration_against_the_truth -- --ignored --nocapture"]
fn calibration_against_the_truth() {
    let data = common::shared_data("calibration_against_the_truth");
    let fields = env_usize("LENSDIFF_VALIDATION_FIELDS", 8);
    let chains = env_usize("LENSDIFF_VALIDATION_CHAINS", 4);
    let only = std::env::var("LENSDIFF_VALIDATION_ROWS").unwrap_or_default();
    for setting in [Setting::cosmos(&data), Setting::lsst()] {
        let neural = load_prior(&setting);
        let gaussian = GaussianPrior::new(setting.grid(), setting.power()).unwrap();
        println!(
            "\n{}: {chains} chains per field; an exact sampler's coverage {:.1}% and {:.1}%",
            setting.name,
            100.0 * common::expected_coverage(1.0, chains),
            100.0 * common::expected_coverage(2.0, chains)
        );
        let (observed, std) = setting.noise_summary(fields);
        println!(
            "fields 0..{fields}: {:.1}% of pixels observed, noise std {std:.4} per component",
            100.0 * observed
        );
        // the truths' power against the spectrum they are drawn with (the
        // log-normal transform clips negative Gaussian power and the k = 0 mode)
        let grid = setting.grid();
        let expected = common::modes::band_means(
            &grid,
            &setting
                .power()
                .iter()
                .map(|p| p * grid.len() as f64)
                .collect::<Vec<_>>(),
        );
        let truths: Vec<[f64; BANDS]> = (0..256)
            .map(|i| band_powers(&grid, &setting.lognormal_truth(1000 + i)))
            .collect();
        let check: Vec<String> = (0..BANDS)
            .map(|b| {
                let (r, se) = power_ratio(
                    &truths.iter().map(|t| t[b]).collect::<Vec<_>>(),
                    &vec![expected[b]; truths.len()],
                );
                format!("{r:+.3} ± {se:.3}")
            })
            .collect();
        println!(
            "256 log-normal truths' power / the spectrum's − 1 per band: {}",
            check.join(", ")
        );
        println!("| configuration | fields | sample power / truth's − 1, bands of \\|k\\| low to high |||| 68% | 95% |");
        println!("|---|---|---|---|---|---|---|---|");
        for cfg in &CONFIGS {
            let prior: &dyn Prior = if cfg.learned { &neural } else { &gaussian };
            if !cfg.label.contains(&only) {
                continue;
            }
            // the costlier samplers on half the fields (PC 8x, HMC 24x Heun's evaluations)
            let n = match cfg.sampler {
                "pc" | "hmc" => fields.div_ceil(2),
                _ => fields,
            };
            let t = std::time::Instant::now();
            let rows: Vec<Calibration> = (0..n)
                .map(|i| calibration(&setting, prior, cfg, i, chains))
                .collect();
            let band = |b: usize| {
                let (r, se) = power_ratio(
                    &rows.iter().map(|r| r.sample_power[b]).collect::<Vec<_>>(),
                    &rows.iter().map(|r| r.truth_power[b]).collect::<Vec<_>>(),
                );
                format!("{r:+.3} ± {se:.3}")
            };
            let (c68, s68) = mean_se(&rows.iter().map(|r| r.cov68).collect::<Vec<_>>());
            let (c95, s95) = mean_se(&rows.iter().map(|r| r.cov95).collect::<Vec<_>>());
            let coverage = if cfg.unconditional {
                "– | –".to_string()
            } else {
                format!(
                    "{:.1} ± {:.1}% | {:.1} ± {:.1}%",
                    100.0 * c68,
                    100.0 * s68,
                    100.0 * c95,
                    100.0 * s95
                )
            };
            println!(
                "| {} | {n} | {} | {} | {} | {} | {coverage} |",
                cfg.label,
                band(0),
                band(1),
                band(2),
                band(3)
            );
            let acc: Vec<f64> = rows.iter().filter_map(|r| r.acceptance).collect();
            if !acc.is_empty() {
                eprintln!(
                    "  mean acceptance {:.3}",
                    acc.iter().sum::<f64>() / acc.len() as f64
                );
            }
            eprintln!("  ({:.0} s)", t.elapsed().as_secs_f64());
        }
    }
}

/// Scores of one method on one field.
#[derive(Clone, Copy)]
struct Score {
    rmse: f64,
    r: f64,
}

const METHODS: [&str; 4] = [
    "Kaiser-Squires, 2 px",
    "Wiener filter",
    "posterior mean, Gaussian prior",
    "posterior mean, learned prior",
];

/// Scores of every method of METHODS on one field.
fn scores(
    setting: &Setting,
    neural: &NeuralPrior,
    gaussian: &GaussianPrior,
    truth: &[f32],
    data: &ShearData,
    chains: usize,
    seed: u64,
) -> [Score; 4] {
    let grid = setting.grid();
    let noise = &data.noise;
    let mask = noise.mask();
    let (ks, _) = kaiser_squires(&grid, &data.g1, &data.g2, 2.0, Boundary::Periodic).unwrap();
    let wf = WienerFilter::new(grid, setting.power())
        .unwrap()
        .solve(&data.g1, &data.g2, noise, &WienerOptions::default())
        .unwrap()
        .kappa;
    let cfg = SamplerConfig::default();
    let spectral = Guidance::Spectral { tol: 1e-4 };
    let gpost = GuidedPosterior::new(gaussian, data, spectral).unwrap();
    let gmean = run(&gpost, &cfg, seed, chains).moments().mean_f32();
    let npost = GuidedPosterior::new(neural, data, spectral).unwrap();
    let nmean = run(&npost, &cfg, seed, chains).moments().mean_f32();
    [&ks, &wf, &gmean, &nmean].map(|m| Score {
        rmse: rmse_centred(m, truth, Some(&mask)).unwrap(),
        r: pearson(m, truth, Some(&mask)).unwrap(),
    })
}

/// Prints the table of METHODS on `truths` (field i observed as field i of
/// the setting) with standard errors, and the paired differences to the
/// Wiener filter and to the Gaussian prior's posterior mean.
fn score_table(setting: &Setting, label: &str, truths: &[Vec<f32>], chains: usize) {
    let neural = load_prior(setting);
    let gaussian = GaussianPrior::new(setting.grid(), setting.power()).unwrap();
    let per_field: Vec<[Score; 4]> = truths
        .iter()
        .enumerate()
        .map(|(i, truth)| {
            let data = setting.observe(truth, i);
            scores(
                setting,
                &neural,
                &gaussian,
                truth,
                &data,
                chains,
                300 + i as u64,
            )
        })
        .collect();
    let (observed, std) = setting.noise_summary(truths.len());
    println!(
        "\n{} — {label}: {} fields of {}², posterior means of {chains} chains; {:.1}% observed, noise std {std:.4}",
        setting.name,
        truths.len(),
        common::fields::SIDE,
        100.0 * observed
    );
    println!("| method | RMSE | Pearson r | RMSE − Wiener's | r − Wiener's | RMSE − Gaussian-prior mean's | r − Gaussian-prior mean's |");
    println!("|---|---|---|---|---|---|---|");
    for (k, name) in METHODS.iter().enumerate() {
        let col =
            |f: fn(&Score) -> f64| -> Vec<f64> { per_field.iter().map(|s| f(&s[k])).collect() };
        // paired per field against method `other`
        let diff = |f: fn(&Score) -> f64, other: usize| -> String {
            let d: Vec<f64> = per_field.iter().map(|s| f(&s[k]) - f(&s[other])).collect();
            let (m, se) = mean_se(&d);
            format!("{m:+.5} ± {se:.5}")
        };
        let (rm, rs) = mean_se(&col(|s| s.rmse));
        let (pm, ps) = mean_se(&col(|s| s.r));
        println!(
            "| {name} | {rm:.5} ± {rs:.5} | {pm:.4} ± {ps:.4} | {} | {} | {} | {} |",
            diff(|s| s.rmse, 1),
            diff(|s| s.r, 1),
            diff(|s| s.rmse, 2),
            diff(|s| s.r, 2)
        );
    }
}

/// The study behind docs/learned-prior.md's score tables (8 minutes on 2
/// cores beside another study): `cargo test --release --test learned_prior scores_against_the_truth -- --ignored --nocapture`
/// (LENSDIFF_VALIDATION_FIELDS: log-normal fields per setting, default 8;
/// LENSDIFF_VALIDATION_NBODY: kappaTNG crops, default 16;
/// LENSDIFF_VALIDATION_CHAINS: chains per posterior mean, default 16).
#[test]
#[ignore = "a study (about 10 minutes; needs ../shared/data): cargo test --release --test learned_prior scores_against_the_truth -- --ignored --nocapture"]
fn scores_against_the_truth() {
    let data = common::shared_data("scores_against_the_truth");
    let fields = env_usize("LENSDIFF_VALIDATION_FIELDS", 8);
    let chains = env_usize("LENSDIFF_VALIDATION_CHAINS", 16);
    let cosmos = Setting::cosmos(&data);
    for setting in [&cosmos, &Setting::lsst()] {
        let truths: Vec<Vec<f32>> = (0..fields).map(|i| setting.lognormal_truth(i)).collect();
        score_table(setting, "held-out log-normal truths", &truths, chains);
    }
    // an evenly spaced subset of the 114 crops
    let all = ktng_crops(&data);
    let count = env_usize("LENSDIFF_VALIDATION_NBODY", 16).min(all.len());
    let ktng: Vec<Vec<f32>> = (0..count)
        .map(|i| all[i * all.len() / count].clone())
        .collect();
    score_table(&cosmos, "kappaTNG N-body truths", &ktng, chains);
}

/// The coverage an exact sampler's `chains` chains give when the posterior is
/// log-normal rather than Gaussian: truth and chains drawn independently from
/// one log-normal, `λ (exp(σ_g z − σ_g²/2) − 1)` (coverage does not depend on
/// the shift and scale, so `exp(σ_g z − σ_g²/2)` is drawn), 200 000 times. With the
/// training fields' pixel marginal (λ = 0.03, pixel std 0.0275: σ_g² =
/// ln(1 + 0.0275²/0.03²), σ_g = 0.78), which the posterior resembles where
/// the noise dominates. `cargo test --release --test learned_prior coverage_of_exact_lognormal_chains -- --ignored --nocapture`
#[test]
#[ignore = "a study (a second): cargo test --release --test learned_prior coverage_of_exact_lognormal_chains -- --ignored --nocapture"]
fn coverage_of_exact_lognormal_chains() {
    let chains = 4;
    let reps = 200_000;
    for pixel_std in [0.0275, 0.015] {
        let sg = (1.0f64 + (pixel_std / 0.03f64).powi(2)).ln().sqrt();
        let mut z = vec![0.0f64; reps * (chains + 1)];
        lensdiff::rng::Philox::new(11, lensdiff::rng::Stream::Field, 0, 0).fill_normal_f64(&mut z);
        let (mut c68, mut c95) = (0.0, 0.0);
        for draw in z.chunks(chains + 1) {
            let k: Vec<f64> = draw
                .iter()
                .map(|z| (sg * z - sg * sg / 2.0).exp())
                .collect();
            let (truth, c) = (k[0], &k[1..]);
            let m = c.iter().sum::<f64>() / chains as f64;
            let sd = (c.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (chains - 1) as f64).sqrt();
            c68 += ((truth - m).abs() < sd) as u8 as f64;
            c95 += ((truth - m).abs() < 2.0 * sd) as u8 as f64;
        }
        println!(
            "log-normal pixel std {pixel_std} (sigma_g {sg:.3}), {chains} chains: coverage {:.1}% and {:.1}% (Gaussian: {:.1}% and {:.1}%)",
            100.0 * c68 / reps as f64,
            100.0 * c95 / reps as f64,
            100.0 * common::expected_coverage(1.0, chains),
            100.0 * common::expected_coverage(2.0, chains)
        );
    }
}
