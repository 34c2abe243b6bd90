//! Criterion benchmarks of the mass-mapping core (results in BENCHMARKS.md):
//! Kaiser–Squires forward + adjoint and one Wiener PCG iteration (one
//! application of the system operator) at 360² and 1024².
//!
//! Run: `cargo bench --bench core`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use lensdiff::baselines::WienerFilter;
use lensdiff::lensing::KaiserSquires;
use lensdiff::noise::NoiseModel;
use lensdiff::spectrum::ClTable;
use lensdiff::Grid;

fn inputs(n: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; n];
    lensdiff::rng::Philox::new(1, lensdiff::rng::Stream::Field, 0, 0).fill_normal(&mut v);
    v
}

fn ks_forward_adjoint(c: &mut Criterion) {
    let mut group = c.benchmark_group("ks_forward_adjoint");
    group.sample_size(20);
    for n in [360usize, 1024] {
        let g = Grid::square(n, 0.29).unwrap();
        let ks = KaiserSquires::<f32>::new(g);
        let kappa = inputs(g.len());
        let (mut g1, mut g2, mut back) = (
            vec![0.0f32; g.len()],
            vec![0.0f32; g.len()],
            vec![0.0f32; g.len()],
        );
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{n}x{n}")),
            &n,
            |b, _| {
                b.iter(|| {
                    ks.forward(&kappa, &mut g1, &mut g2).unwrap();
                    ks.adjoint(&g1, &g2, &mut back).unwrap();
                })
            },
        );
    }
    group.finish();
}

fn wiener_iteration(c: &mut Criterion) {
    let mut group = c.benchmark_group("wiener_pcg_iteration");
    group.sample_size(10);
    for n in [360usize, 1024] {
        let g = Grid::square(n, 0.29).unwrap();
        let wf = WienerFilter::new(g, ClTable::default_kappa().pixel_power(&g)).unwrap();
        let mut mask = vec![true; g.len()];
        mask.iter_mut().step_by(3).for_each(|m| *m = false);
        let noise = NoiseModel::uniform(g, 0.3, Some(&mask)).unwrap();
        let u: Vec<f64> = inputs(g.len()).iter().map(|&v| v as f64).collect();
        let mut out = vec![0.0f64; g.len()];
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{n}x{n}")),
            &n,
            |b, _| b.iter(|| wf.apply_system(&u, &noise, &mut out).unwrap()),
        );
    }
    group.finish();
}

criterion_group!(benches, ks_forward_adjoint, wiener_iteration);
criterion_main!(benches);
