//! CPU speed of the learned prior (BENCHMARKS.md): forward pass, input VJP
//! (what guidance needs) and forward + full backward (what training needs) per
//! map, for the demo U-Net and the Remy-et-al.-2023-size U-Net at 360², with
//! the batch that the sampler uses; and training throughput of the demo
//! network on 32² crops. Each line is the median of `reps` runs; one thread
//! count per run (set RAYON_NUM_THREADS).
//!
//! Run: `cargo bench --bench nn` (add `-- quick` for fewer repetitions).
//!
//! Single cases for `bench/torch_cpu_unet.py`, which interleaves them with
//! the same PyTorch networks and prints one JSON line per case:
//!
//! ```text
//! cargo bench --bench nn -- infer NET SIDE BATCH REPS   # forward, forward + input VJP (ms/map)
//! cargo bench --bench nn -- train NET CROP BATCH STEPS  # training step (ms/step)
//! cargo bench --bench nn -- conv CIN COUT SIDE BATCH REPS # one 3x3 convolution (GFLOP/s)
//! cargo bench --bench nn -- peak                        # the cores' f32 FMA peak (GFLOP/s)
//! ```
//!
//! `LENSDIFF_GEMM=matrixmultiply` times the convolutions' fallback GEMM
//! instead of the AVX-512 implicit GEMM (`nn::gemm`).
//!
//! `NET` is `demo`, `remy_2023` or `uresnet18`. A training step is what `lensdiff train`
//! does per step on a stack of maps: random crops, noise levels and noise,
//! forward, backward to the weights, gradient clipping, Adam and EMA.

use std::time::Instant;

use lensdiff::grid::Grid;
use lensdiff::nn::conv::{Conv2d, Padding};
use lensdiff::nn::{Dims4, UNetConfig};
use lensdiff::prior::{Denoiser, DenoiserKind, DenoiserMeta, TrainConfig, Trainer, TrainingData};
use lensdiff::spectrum::ClTable;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

/// A pure denoiser with random weights everywhere (the initial output layer is
/// zero, which would make the backward pass cheaper than a trained one's).
fn random_denoiser(cfg: UNetConfig) -> Denoiser {
    let meta = DenoiserMeta::new(DenoiserKind::Pure, 0.02, 0.29);
    let mut den = Denoiser::new(cfg, meta, None, 0).unwrap();
    let mut z = vec![0.0f32; den.params.len()];
    lensdiff::rng::Philox::new(1, lensdiff::rng::Stream::Training, 0, 0).fill_normal(&mut z);
    den.params
        .iter_mut()
        .zip(&z)
        .for_each(|(p, z)| *p += 0.05 * z);
    den
}

/// Median seconds of (forward, forward + input VJP, forward + backward to
/// the weights) for one batch.
fn infer(cfg: UNetConfig, side: usize, batch: usize, reps: usize) -> (usize, [f64; 3]) {
    let den = random_denoiser(cfg);
    let dims = Dims4::new(batch, 1, side, side);
    let mut x = vec![0.0f32; dims.len()];
    lensdiff::rng::Philox::new(2, lensdiff::rng::Stream::Training, 0, 0).fill_normal(&mut x);
    x.iter_mut().for_each(|v| *v *= 0.02);
    let sigma = vec![0.05; batch];
    let p = den.params.clone();
    let fwd = time(reps, || {
        den.forward_cached(&p, &x, dims, &sigma, None).unwrap();
    });
    let vjp = time(reps, || {
        let (_, c) = den.forward_cached(&p, &x, dims, &sigma, None).unwrap();
        den.vjp(&p, &c, &x, None, None).unwrap();
    });
    let mut g = vec![0.0f32; p.len()];
    let full = time(reps, || {
        let (_, c) = den.forward_cached(&p, &x, dims, &sigma, None).unwrap();
        den.vjp(&p, &c, &x, None, Some(&mut g)).unwrap();
    });
    (den.unet().n_params(), [fwd, vjp, full])
}

fn network(name: &str, cfg: UNetConfig, side: usize, batch: usize, reps: usize) {
    let (params, [fwd, vjp, full]) = infer(cfg, side, batch, reps);
    let per = |t: f64| 1e3 * t / batch as f64;
    println!(
        "{name:<10} {:>9} params  {side}x{side} batch {batch:>2}: forward {:8.1} ms/map   forward+VJP {:8.1} ms/map   forward+backward(weights) {:8.1} ms/map",
        params,
        per(fwd),
        per(vjp),
        per(full)
    );
}

/// Median seconds per training step on a stack of random maps.
fn train_step(cfg: UNetConfig, crop: usize, batch: usize, steps: usize) -> f64 {
    let den = random_denoiser(cfg);
    let count = 2 * batch + 1;
    let mut maps = vec![0.0f32; count * crop * crop];
    lensdiff::rng::Philox::new(3, lensdiff::rng::Stream::Training, 0, 0).fill_normal(&mut maps);
    maps.iter_mut().for_each(|v| *v *= 0.02);
    let data = TrainingData::stack(maps, count, crop, crop).unwrap();
    let tc = TrainConfig {
        steps: steps as u64 + 1,
        batch,
        crop,
        heldout: 1,
        ..TrainConfig::default()
    };
    let mut tr = Trainer::new(den, data, tc).unwrap();
    tr.step().unwrap(); // warm-up
    median(
        (0..steps)
            .map(|_| {
                let t = Instant::now();
                tr.step().unwrap();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn preset(name: &str) -> UNetConfig {
    match name {
        "demo" => UNetConfig::demo(),
        "remy_2023" => UNetConfig::remy_2023(),
        "uresnet18" => UNetConfig::uresnet18(),
        _ => panic!("unknown network {name:?} (demo, remy_2023 or uresnet18)"),
    }
}

/// One 3x3 periodic convolution, forward, input VJP and weight gradient, as a JSON line with
/// the achieved GFLOP/s (2·C_in·C_out·9 per pixel each) and the GEMM path.
fn conv_case(args: &[String]) {
    let num = |i: usize| -> usize {
        args.get(i)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("usage: conv CIN COUT SIDE BATCH REPS"))
    };
    let (cin, cout, side, batch, reps) = (num(1), num(2), num(3), num(4), num(5));
    let conv = Conv2d::new(cin, cout, 3, Padding::Periodic).unwrap();
    let dims = Dims4::new(batch, cin, side, side);
    let mut x = vec![0.0f32; dims.len()];
    let mut w = vec![0.0f32; conv.weight_len()];
    let mut dy = vec![0.0f32; batch * cout * side * side];
    let rng = |s| lensdiff::rng::Philox::new(s, lensdiff::rng::Stream::Training, 0, 0);
    rng(4).fill_normal(&mut x);
    rng(5).fill_normal(&mut w);
    rng(6).fill_normal(&mut dy);
    let b = vec![0.1f32; cout];
    let fwd = time(reps, || {
        lensdiff::nn::workspace::recycle(conv.forward(&x, dims, &w, &b).unwrap());
    });
    let bwd = time(reps, || {
        lensdiff::nn::workspace::recycle(conv.backward_input(dims, &w, &dy).unwrap());
    });
    let wgrad = time(reps, || {
        let (dw, _) = conv.weight_gradient(&x, dims, &dy).unwrap();
        lensdiff::nn::workspace::recycle(dw);
    });
    let gflop = 2.0 * (cin * cout * 9 * side * side * batch) as f64 / 1e9;
    let path = if lensdiff::nn::gemm::avx512_path() {
        "implicit-avx512"
    } else {
        "matrixmultiply"
    };
    println!(
        "{{\"tool\": \"lensdiff\", \"mode\": \"conv\", \"gemm\": \"{path}\", \"cin\": {cin}, \"cout\": {cout}, \"side\": {side}, \"batch\": {batch}, \"threads\": {}, \"forward_ms\": {:.3}, \"forward_gflops\": {:.1}, \"input_vjp_ms\": {:.3}, \"input_vjp_gflops\": {:.1}, \"weight_grad_ms\": {:.3}, \"weight_grad_gflops\": {:.1}}}",
        rayon::current_num_threads(),
        1e3 * fwd,
        gflop / fwd,
        1e3 * bwd,
        gflop / bwd,
        1e3 * wgrad,
        gflop / wgrad
    );
}

/// The measured `f32` peak of the threads together: every thread runs 12
/// independent chains of 16-lane fused multiply–adds (enough to cover the
/// FMA latency), 2 FLOP per lane; median of 5 runs of about 0.1 s. This is the
/// ceiling the convolutions' GFLOP/s are compared with (a VM does not report
/// its clock, so a nominal peak cannot be computed).
fn peak_case() {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        if !std::arch::is_x86_feature_detected!("avx512f") {
            println!("{{\"tool\": \"lensdiff\", \"mode\": \"peak\", \"error\": \"no AVX-512F\"}}");
            return;
        }
        #[target_feature(enable = "avx512f")]
        unsafe fn chains(iters: usize) -> f32 {
            let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
            let mut acc = [_mm512_set1_ps(1.0); 12];
            for _ in 0..iters {
                for x in acc.iter_mut() {
                    *x = _mm512_fmadd_ps(*x, a, b);
                }
            }
            acc.iter().map(|&x| _mm512_reduce_add_ps(x)).sum()
        }
        use rayon::prelude::*;
        let threads = rayon::current_num_threads();
        let iters = 30_000_000;
        let run = || {
            (0..threads)
                .into_par_iter()
                // SAFETY: AVX-512F is present (checked above).
                .map(|_| unsafe { chains(std::hint::black_box(iters)) })
                .sum::<f32>()
        };
        let t = time(5, || {
            std::hint::black_box(run());
        });
        let flop = (threads * iters * 12 * 16 * 2) as f64;
        println!(
            "{{\"tool\": \"lensdiff\", \"mode\": \"peak\", \"threads\": {threads}, \"isa\": \"avx512f\", \"gflops\": {:.1}}}",
            flop / t / 1e9
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    println!("{{\"tool\": \"lensdiff\", \"mode\": \"peak\", \"error\": \"not x86_64\"}}");
}

/// One case for bench/torch_cpu_unet.py, as a JSON line.
fn case(args: &[String]) {
    let num = |i: usize| -> usize {
        args.get(i)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("usage: infer|train NET SIDE BATCH REPS"))
    };
    let (mode, net) = (args[0].as_str(), args[1].as_str());
    let (side, batch, reps) = (num(2), num(3), num(4));
    let threads = rayon::current_num_threads();
    match mode {
        "infer" => {
            let (params, [fwd, vjp, _]) = infer(preset(net), side, batch, reps);
            let per = |t: f64| 1e3 * t / batch as f64;
            println!(
                "{{\"tool\": \"lensdiff\", \"mode\": \"infer\", \"net\": \"{net}\", \"params\": {params}, \"side\": {side}, \"batch\": {batch}, \"threads\": {threads}, \"forward_ms_per_map\": {:.3}, \"vjp_ms_per_map\": {:.3}}}",
                per(fwd),
                per(vjp)
            );
        }
        "train" => {
            let s = train_step(preset(net), side, batch, reps);
            println!(
                "{{\"tool\": \"lensdiff\", \"mode\": \"train\", \"net\": \"{net}\", \"side\": {side}, \"batch\": {batch}, \"threads\": {threads}, \"step_ms\": {:.3}}}",
                1e3 * s
            );
        }
        _ => panic!("unknown mode {mode:?} (infer or train)"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if matches!(args.first().map(String::as_str), Some("infer" | "train")) {
        return case(&args);
    }
    if args.first().map(String::as_str) == Some("conv") {
        return conv_case(&args);
    }
    if args.first().map(String::as_str) == Some("peak") {
        return peak_case();
    }
    let quick = std::env::args().any(|a| a == "quick");
    let reps = if quick { 1 } else { 3 };
    println!("threads: {}", rayon::current_num_threads());
    network("demo", UNetConfig::demo(), 360, 4, reps);
    network("remy_2023", UNetConfig::remy_2023(), 360, 1, reps);
    network("demo", UNetConfig::demo(), 32, 16, reps * 5);

    // training throughput: demo network, 32x32 log-normal crops, batch 16
    let grid = Grid::square(32, 0.5).unwrap();
    let power = ClTable::default_kappa().pixel_power(&grid);
    let field = lensdiff::fields::LogNormal::new(&grid, &power, 0.03).unwrap();
    let den = Denoiser::new(
        UNetConfig::demo(),
        DenoiserMeta::new(DenoiserKind::Pure, 0.025, 0.5),
        None,
        0,
    )
    .unwrap();
    let steps = if quick { 10 } else { 40 };
    let cfg = TrainConfig {
        steps,
        batch: 16,
        crop: 32,
        heldout: 1,
        ..TrainConfig::default()
    };
    let mut tr = Trainer::new(den, TrainingData::LogNormal { field, seed: 1 }, cfg).unwrap();
    let t = Instant::now();
    tr.run(|_, _| {}).unwrap();
    let s = t.elapsed().as_secs_f64();
    println!(
        "training   demo, 32x32 log-normal crops, batch 16: {:.0} maps/s ({:.1} ms/step, simulation included)",
        (steps * 16) as f64 / s,
        1e3 * s / steps as f64
    );
}
