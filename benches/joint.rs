//! One joint sample of (theta, kappa) with the exact Gaussian joint posterior
//! denoiser (docs/joint.md, issue #15 part 7): the oracle problem (sbi_lens
//! pixel, source and priors on (omega_c, sigma8), noise on the convergence)
//! at 64² and 128², Heun with 64 levels (126 NFE), 4 chains on one thread.
//! Reported: seconds per sample and per denoiser call, and the table's build
//! time; the guided joint sample (the exact joint prior with spectral guidance
//! on the same data as shear, `sampler::joint_guided`); the baseline, measured in the same run, is the map-only exact
//! Gaussian posterior (shear data, same grid, sampler and chains). The learned
//! rows: the same guided sample with the joint demo U-Net (`UNetConfig::demo`
//! with 2 parameters) as a hybrid on the exact joint prior and as a pure
//! network (the guidance's Gaussian model from the same cosmology); the
//! weights are the initial ones moved by noise (the cost does not depend on
//! training).
//!
//! Run: `cargo bench --bench joint`.

use std::time::Instant;

use lensdiff::cosmo::limber::ClOptions;
use lensdiff::fields::sbi_lens;
use lensdiff::nn::UNetConfig;
use lensdiff::noise::NoiseModel;
use lensdiff::prior::joint::{
    CosmologyRecipe, GaussianJoint, JointDenoiser, JointDenoiserMeta, NeuralJoint, ParamSpace,
};
use lensdiff::prior::DenoiserKind;
use lensdiff::rng::{Philox, Stream};
use lensdiff::sampler::joint_guided::JointGuidedPosterior;
use lensdiff::sampler::joint_oracle::JointGaussianPosterior;
use lensdiff::sampler::{
    sample, FourierGaussianPosterior, Guidance, RunSpec, SamplerConfig, ShearData,
};

fn main() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| {
        for side in [64, 128] {
            let t = Instant::now();
            let joint = GaussianJoint::sbi_lens(side).unwrap();
            let t_table = t.elapsed().as_secs_f64();
            let grid = *joint.rings().grid();
            let power = joint.prior_power(&[0.0, 0.0]).unwrap();
            let kappa = lensdiff::fields::gaussian_fields(&grid, &power, 1, 0, 1).unwrap();
            let noise = sbi_lens::noise_sigma();
            let mut e = vec![0.0f64; grid.len()];
            Philox::new(1, Stream::ShapeNoise, 0, 0).fill_normal_f64(&mut e);
            let y: Vec<f64> = kappa
                .iter()
                .zip(&e)
                .map(|(k, e)| *k as f64 + noise * e)
                .collect();
            let prior = joint.clone();
            let joint = joint.with_observation(&y, noise).unwrap();
            let post = JointGaussianPosterior::new(&joint, &y, noise).unwrap();
            let chains = 4;
            let t = Instant::now();
            let set = sample(
                &post,
                &SamplerConfig::default(),
                &RunSpec::new(3, chains),
                &mut |_, _| {},
            )
            .unwrap();
            let secs = t.elapsed().as_secs_f64();
            // baseline: the map alone, the exact Fourier-diagonal posterior
            // at the prior mean's spectrum, shear with the same noise per
            // component, the same sampler and chains
            let zeros = vec![0.0f32; grid.len()];
            let data = ShearData::new(
                y.iter().map(|&v| v as f32).collect(),
                zeros,
                NoiseModel::uniform(grid, noise, None).unwrap(),
            )
            .unwrap();
            let oracle = FourierGaussianPosterior::new(&power, &data).unwrap();
            let t = Instant::now();
            sample(&oracle, &SamplerConfig::default(), &RunSpec::new(3, chains), &mut |_, _| {})
                .unwrap();
            let base = t.elapsed().as_secs_f64();
            // the guided joint sample: the exact Gaussian joint prior with
            // spectral guidance on the same data as shear (uniform noise)
            let guided =
                JointGuidedPosterior::new(&prior, &data, Guidance::Spectral { tol: 1e-4 }).unwrap();
            let t = Instant::now();
            let gset = sample(&guided, &SamplerConfig::default(), &RunSpec::new(3, chains), &mut |_, _| {})
                .unwrap();
            let gsecs = t.elapsed().as_secs_f64();
            println!(
                "baseline: map-only exact Gaussian posterior, {side}x{side}, same sampler, 1 thread: {:.4} s/sample",
                base / chains as f64
            );
            println!(
                "joint sample, exact Gaussian, {side}x{side} ({} rings), heun 64 levels ({} NFE), 1 thread: {:.2} s/sample, {:.2} ms/denoiser call; prior (spectrum table) {:.2} s",
                joint.rings().len(),
                set.nfe,
                secs / chains as f64,
                secs / chains as f64 / set.nfe as f64 * 1e3,
                t_table
            );
            println!(
                "guided joint sample, exact Gaussian joint prior + spectral guidance on shear, {side}x{side}, heun 64 levels ({} NFE), 1 thread: {:.2} s/sample ({} inner CG iterations per sample)",
                gset.nfe,
                gsecs / chains as f64,
                gset.inner_iterations / chains as u64
            );
            for kind in [DenoiserKind::Hybrid, DenoiserKind::Pure] {
                let learned = learned_prior(kind, grid, prior.sigma_d());
                let post =
                    JointGuidedPosterior::new(&learned, &data, Guidance::Spectral { tol: 1e-4 })
                        .unwrap();
                let t = Instant::now();
                let nset = sample(&post, &SamplerConfig::default(), &RunSpec::new(3, chains), &mut |_, _| {})
                    .unwrap();
                println!(
                    "guided joint sample, learned {} prior (joint demo U-Net, {} parameters) + spectral guidance on shear, {side}x{side}, heun 64 levels ({} NFE), 1 thread: {:.2} s/sample",
                    kind.name(),
                    learned.denoiser().unet().n_params(),
                    nset.nfe,
                    t.elapsed().as_secs_f64() / chains as f64
                );
            }
        }
    });
}

/// The joint demo U-Net on `grid` with the sbi_lens parameters and cosmology.
fn learned_prior(kind: DenoiserKind, grid: lensdiff::grid::Grid, sigma_d: f64) -> NeuralJoint {
    let space = ParamSpace::sbi_lens();
    let mut meta = JointDenoiserMeta::new(kind, &space, sigma_d, grid.pixel_arcmin);
    meta.gaussian = Some(CosmologyRecipe {
        base: sbi_lens::cosmology(space.mean()[0], space.mean()[1]).unwrap(),
        source: sbi_lens::source().unwrap(),
        cl: ClOptions::default(),
    });
    let config = UNetConfig {
        joint_params: 2,
        ..UNetConfig::demo()
    };
    let mut den = JointDenoiser::new(config, meta, 1).unwrap();
    let mut z = vec![0.0f32; den.params.len()];
    Philox::new(2, Stream::Training, 0, 0).fill_normal(&mut z);
    den.params
        .iter_mut()
        .zip(&z)
        .for_each(|(p, z)| *p += 0.05 * z);
    NeuralJoint::new(den, grid).unwrap()
}
