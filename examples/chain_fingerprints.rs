//! Fingerprints of CPU chains, for refactors that must not change results:
//! run it at the old and at the new commit on the same machine and diff the
//! output (`cargo run --release --example chain_fingerprints > a.txt`).
//!
//! One line per configuration: the Gaussian prior with every sampler, every
//! guidance scheme and no/Langevin/HMC refinement, and small neural hybrid
//! and pure priors with every sampler and every guidance scheme they
//! support; each line hashes (FNV-1a) the bits of
//! the maps, chi² and acceptance of 5 chains from chain 3 in batches of 2,
//! and gives the NFE and inner iterations. FFT results can differ between
//! CPUs, so compare fingerprints made on one machine only; this is a tool,
//! not a test.

use lensdiff::grid::Grid;
use lensdiff::nn::UNetConfig;
use lensdiff::noise::NoiseModel;
use lensdiff::prior::{Denoiser, DenoiserKind, DenoiserMeta, GaussianPrior, NeuralPrior, Prior};
use lensdiff::sampler::{
    sample, Guidance, GuidedPosterior, RefineMethod, Refinement, RunSpec, SampleSet, SamplerConfig,
    SamplerKind, ShearData,
};
use lensdiff::spectrum::ClTable;

/// FNV-1a over the bits of the maps, chi² and acceptance.
fn fingerprint(s: &SampleSet) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    let mut eat = |b: u64| {
        h ^= b;
        h = h.wrapping_mul(0x100000001b3);
    };
    s.samples.iter().for_each(|v| eat(v.to_bits() as u64));
    s.chi2.iter().for_each(|v| eat(v.to_bits()));
    if let Some(a) = &s.acceptance {
        a.iter().for_each(|v| eat(v.to_bits()));
    }
    format!("{h:016x} nfe={} inner={}", s.nfe, s.inner_iterations)
}

/// The masked problem of tests/common: 16² at 2', noise std 0.02–0.06.
fn problem() -> lensdiff::Result<(GaussianPrior, ShearData)> {
    let grid = Grid::square(16, 2.0)?;
    let prior = GaussianPrior::from_cl(grid, &ClTable::default_kappa())?;
    let mask: Vec<bool> = (0..grid.len()).map(|i| i % 7 != 3).collect();
    let std: Vec<f32> = (0..grid.len())
        .map(|i| 0.02 + 0.01 * ((i % 5) as f32))
        .collect();
    let noise = NoiseModel::from_std(grid, &std, &std, Some(&mask))?;
    let truth = lensdiff::fields::gaussian_fields(&grid, prior.power(), 5, 0, 1)?;
    let (g1, g2) = lensdiff::fields::simulate_shear(&truth, &noise, 6, 0)?;
    Ok((prior, ShearData::new(g1, g2, noise)?))
}

/// A small U-Net denoiser with its weights moved off the initialisation.
fn network(kind: DenoiserKind, seed: u64, grid: Grid) -> lensdiff::Result<NeuralPrior> {
    let net = UNetConfig {
        channels: vec![4, 8],
        blocks: 1,
        groups: 2,
        embed_freqs: 2,
        embed_dim: 4,
        padding: "periodic".into(),
        joint_params: 0,
        ..UNetConfig::demo()
    };
    let table = matches!(kind, DenoiserKind::Hybrid).then(ClTable::default_kappa);
    let mut den = Denoiser::new(net, DenoiserMeta::new(kind, 0.02, 1.0), table, seed)?;
    den.params
        .iter_mut()
        .enumerate()
        .for_each(|(i, p)| *p += 0.01 * ((i as f32) * 0.7).sin());
    NeuralPrior::new(den, grid)
}

fn main() -> lensdiff::Result<()> {
    let (gauss, data) = problem()?;
    let grid = *gauss.grid();
    let hybrid = network(DenoiserKind::Hybrid, 3, grid)?;
    let pure = network(DenoiserKind::Pure, 5, grid)?;
    let priors: [(&str, &dyn Prior); 3] = [("gauss", &gauss), ("hybrid", &hybrid), ("pure", &pure)];
    let guidances = [
        Guidance::Spectral { tol: 1e-5 },
        Guidance::Annealed { c: 0.5 },
        Guidance::Tweedie { inflate: false },
        Guidance::Tweedie { inflate: true },
    ];
    let refinements = [
        None,
        Some(Refinement::new(RefineMethod::Langevin, 3, None)),
        Some(Refinement::new(RefineMethod::Hmc, 3, None)),
    ];
    let run = RunSpec::new(11, 5).from_chain(3).in_batches(2);
    for (name, prior) in priors {
        for kind in ["em", "pc", "heun", "edm", "hmc"] {
            for guidance in guidances {
                if GuidedPosterior::new(prior, &data, guidance).is_err() {
                    continue; // a scheme that needs a Gaussian power model
                }
                let post = GuidedPosterior::new(prior, &data, guidance)?;
                for refine in refinements {
                    if name != "gauss" && refine.is_some() {
                        continue;
                    }
                    let cfg = SamplerConfig {
                        kind: SamplerKind::from_name(kind)?,
                        levels: if name == "gauss" { 7 } else { 4 },
                        refine,
                        ..SamplerConfig::default()
                    };
                    let set = sample(&post, &cfg, &run, &mut |_, _| {})?;
                    let r = refine.map_or("none".to_string(), |r| format!("{:?}", r.method));
                    println!(
                        "{name} {kind} {} {r} {}",
                        guidance.name(),
                        fingerprint(&set)
                    );
                }
            }
        }
    }
    Ok(())
}
