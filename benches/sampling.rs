//! Posterior sampling speed at the 360x360 COSMOS geometry (BENCHMARKS.md):
//! the default sampler configuration (Heun ODE, 64 EDM levels, spectral
//! guidance) with the Gaussian kappaTNG prior, on 1 and 2 threads, next to the
//! exact perturbation sampler (one conjugate-gradient solve per sample), the
//! cost floor for this prior. Uses ../shared/data when present (COSMOS noise and
//! mask, kappaTNG map and spectrum), a synthetic stand-in otherwise.
//!
//! Run: `cargo bench --bench sampling`.

use std::path::Path;
use std::time::Instant;

use lensdiff::baselines::{WienerFilter, WienerOptions};
use lensdiff::noise::NoiseModel;
use lensdiff::prior::GaussianPrior;
use lensdiff::sampler::{sample, Guidance, GuidedPosterior, RunSpec, SamplerConfig, ShearData};
use lensdiff::spectrum::ClTable;
use lensdiff::Grid;

fn map(p: &Path) -> Vec<f32> {
    lensdiff::io::read_map(p, Some([360, 360]))
        .expect("read map")
        .iter()
        .copied()
        .collect()
}

fn main() {
    let g = Grid::square(360, 0.29).unwrap();
    let d = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data"));
    let (table, truth, noise, source) = if d.is_dir() {
        let std1 = map(&d.join("cosmos/std1.fits"));
        let std2 = map(&d.join("cosmos/std2.fits"));
        let noise = NoiseModel::from_std(g, &std1, &std2, None).unwrap();
        let table = ClTable::read(&d.join("ktng/ktng_PS_theory.npy")).unwrap();
        (
            table,
            map(&d.join("ktng/ktng_kappa360v2.fits")),
            noise,
            "COSMOS noise and mask, kappaTNG truth",
        )
    } else {
        let table = ClTable::default_kappa();
        let truth = lensdiff::fields::gaussian_fields(&g, &table.pixel_power(&g), 1, 0, 1).unwrap();
        let mask: Vec<bool> = (0..g.len())
            .map(|i| (i % 360) > 60 && (i / 360) > 40)
            .collect();
        (
            table,
            truth,
            NoiseModel::uniform(g, 0.12, Some(&mask)).unwrap(),
            "synthetic stand-in (no shared data)",
        )
    };
    let (g1, g2) = lensdiff::fields::simulate_shear(&truth, &noise, 2023, 0).unwrap();
    println!(
        "360x360 at 0.29'/px, {} observed pixels; {source}",
        noise.n_observed()
    );
    let prior = GaussianPrior::from_cl(g, &table).unwrap();
    let data = ShearData::new(g1.clone(), g2.clone(), noise.clone()).unwrap();
    let post = GuidedPosterior::new(&prior, &data, Guidance::Spectral { tol: 1e-4 }).unwrap();
    let cfg = SamplerConfig::default();
    let wf = WienerFilter::new(g, table.pixel_power(&g)).unwrap();
    let opts = WienerOptions {
        tol: 1e-6,
        max_iter: 1000,
    };
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let chains = 2 * threads;
        pool.install(|| {
            let t0 = Instant::now();
            let set = sample(&post, &cfg, &RunSpec::new(1, chains), &mut |_, _| {}).unwrap();
            let dt = t0.elapsed().as_secs_f64();
            println!(
                "default sampler ({} levels, {} NFE/chain, {:.1} inner CG its/NFE), {threads} thread(s): {chains} samples in {dt:.1} s = {:.3} samples/s",
                cfg.levels,
                set.nfe,
                set.inner_iterations as f64 / (set.nfe as f64 * chains as f64),
                chains as f64 / dt
            );
            let n_exact = 8 * threads;
            let t0 = Instant::now();
            let its: Vec<usize> = {
                use rayon::prelude::*;
                (0..n_exact as u64)
                    .into_par_iter()
                    .map(|i| wf.sample_exact(&g1, &g2, &noise, 5, i, &opts).unwrap().iterations)
                    .collect()
            };
            let dt = t0.elapsed().as_secs_f64();
            println!(
                "exact perturbation sampler (PCG to 1e-6, {:.0} its/sample), {threads} thread(s): {n_exact} samples in {dt:.2} s = {:.2} samples/s",
                its.iter().sum::<usize>() as f64 / n_exact as f64,
                n_exact as f64 / dt
            );
        });
    }
}
