//! The learned map prior through the C ABI (issue #17): a model loaded from a
//! file, from a memory buffer or by built-in name gives bitwise the samples,
//! mean, std and chi² of the Rust API and of `lensdiff sample --model` for the
//! same data and seed; one loaded model serves several samplers on different
//! threads; the model's description.

mod common;

use std::ffi::{CStr, CString};
use std::ptr::null_mut;
use std::sync::Arc;

use lensdiff::capi::*;
use lensdiff::fields::{gaussian_fields, simulate_shear};
use lensdiff::grid::Grid;
use lensdiff::noise::NoiseModel;
use lensdiff::prior::{Denoiser, DenoiserKind, NeuralPrior};
use lensdiff::sampler::{sample, Guidance, GuidedPosterior, RunSpec, SamplerConfig, ShearData};
use lensdiff::spectrum::ClTable;

type S = LensdiffStatus;

const N: usize = 16;
const PIXEL: f64 = 2.0;
const SIGMA_N: f64 = 0.02;
const CHAINS: usize = 4;
const BATCH: usize = 2;
const LEVELS: usize = 10;
const SEED: u64 = 5;

fn last_error() -> String {
    unsafe { CStr::from_ptr(lensdiff_last_error()) }
        .to_string_lossy()
        .into_owned()
}

macro_rules! ok {
    ($call:expr) => {{
        let s = $call;
        assert_eq!(s, S::Ok, "{}: {}", stringify!($call), last_error());
    }};
}

fn grid() -> Grid {
    Grid::new(N, N, PIXEL).unwrap()
}

/// A small two-level network with random weights of scale 0.3 (a trained
/// network's are not zero, and the zero-initialised output layer would make
/// every learned prior its base), `sigma_max` 0.1.
fn model(kind: DenoiserKind, seed: u64) -> Denoiser {
    let mut d = common::map_models::tiny_map_model(kind, PIXEL, 2, 0.3, seed);
    d.set_sigma_max(0.1);
    d
}

fn shear() -> (Vec<f32>, Vec<f32>) {
    let g = grid();
    let power = ClTable::default_kappa().pixel_power(&g);
    let truth = gaussian_fields(&g, &power, 3, 0, 1).unwrap();
    let noise = NoiseModel::uniform(g, SIGMA_N, None).unwrap();
    simulate_shear(&truth, &noise, 3, 0).unwrap()
}

/// One run's outputs.
#[derive(PartialEq, Debug)]
struct Out {
    mean: Vec<f32>,
    std: Vec<f32>,
    samples: Vec<f32>,
    chi2: Vec<f64>,
}

/// The run through the Rust API (a pure network's guidance takes the default
/// spectrum, as `lensdiff sample --model` and `lensdiff_problem_set_prior_default`).
fn rust_run(den: Denoiser, g1: &[f32], g2: &[f32]) -> Out {
    let mut prior = NeuralPrior::new(den, grid()).unwrap();
    if lensdiff::prior::Prior::gaussian_power(&prior).is_none() {
        prior = prior
            .with_guidance_power(ClTable::default_kappa().pixel_power(&grid()))
            .unwrap();
    }
    let noise = NoiseModel::uniform(grid(), SIGMA_N, None).unwrap();
    let data = ShearData::new(g1.to_vec(), g2.to_vec(), noise).unwrap();
    let post = GuidedPosterior::new(&prior, &data, Guidance::Spectral { tol: 1e-4 }).unwrap();
    let cfg = SamplerConfig {
        levels: LEVELS,
        ..SamplerConfig::default()
    };
    let run = RunSpec::new(SEED, CHAINS).in_batches(BATCH);
    let set = sample(&post, &cfg, &run, &mut |_, _| {}).unwrap();
    let m = set.moments();
    Out {
        mean: m.mean_f32(),
        std: m.std_f32(),
        samples: set.samples,
        chi2: set.chi2,
    }
}

/// A problem with the shear, uniform noise and the default Gaussian spectrum.
unsafe fn problem(g1: &[f32], g2: &[f32]) -> *mut LensdiffProblem {
    let mut p = null_mut();
    ok!(lensdiff_problem_create(N, N, PIXEL, &mut p));
    ok!(lensdiff_problem_set_shear(
        p,
        g1.as_ptr(),
        g2.as_ptr(),
        g1.len()
    ));
    ok!(lensdiff_problem_set_noise_uniform(p, SIGMA_N));
    ok!(lensdiff_problem_set_prior_default(p));
    p
}

/// The run through the C ABI (default sampler: Heun, spectral guidance).
unsafe fn c_run(p: *const LensdiffProblem, seed: u64) -> Out {
    let mut c = std::mem::zeroed::<LensdiffSamplerConfig>();
    ok!(lensdiff_sampler_config_init(&mut c));
    c.levels = LEVELS as u32;
    c.chains = CHAINS as u32;
    c.batch = BATCH as u32;
    c.seed = seed;
    let mut s = null_mut();
    ok!(lensdiff_sampler_create(p, &c, &mut s));
    ok!(lensdiff_sampler_run(s));
    let n = N * N;
    let mut out = Out {
        mean: vec![0.0; n],
        std: vec![0.0; n],
        samples: vec![0.0; CHAINS * n],
        chi2: vec![0.0; CHAINS],
    };
    ok!(lensdiff_sampler_mean(s, out.mean.as_mut_ptr(), n));
    ok!(lensdiff_sampler_std(s, out.std.as_mut_ptr(), n));
    ok!(lensdiff_sampler_samples(
        s,
        out.samples.as_mut_ptr(),
        CHAINS * n
    ));
    ok!(lensdiff_sampler_chi2(s, out.chi2.as_mut_ptr(), CHAINS));
    ok!(lensdiff_sampler_destroy(s));
    out
}

#[test]
fn learned_prior_through_the_c_api_equals_the_rust_api_and_the_cli() {
    let (g1, g2) = shear();
    let dir = common::TempDir::new("c_api_model");
    for kind in [DenoiserKind::Hybrid, DenoiserKind::Pure] {
        let path = dir.path(&format!("{}.safetensors", kind.name()));
        model(kind, 11).save(&path).unwrap();
        let want = rust_run(Denoiser::load(&path).unwrap(), &g1, &g2);
        assert!(want.samples.iter().all(|v| v.is_finite()));
        let bytes = std::fs::read(&path).unwrap();
        let cpath = CString::new(path.to_str().unwrap()).unwrap();
        let (from_file, from_buffer, gaussian) = unsafe {
            let p = problem(&g1, &g2);
            let gaussian = c_run(p, SEED);
            ok!(lensdiff_problem_load_model(p, cpath.as_ptr()));
            let a = c_run(p, SEED);
            ok!(lensdiff_problem_load_model_buffer(
                p,
                bytes.as_ptr(),
                bytes.len()
            ));
            drop(bytes);
            let b = c_run(p, SEED);
            // clearing the model goes back to the Gaussian prior
            ok!(lensdiff_problem_clear_model(p));
            assert!(c_run(p, SEED) == gaussian, "{kind:?}: cleared model");
            ok!(lensdiff_problem_destroy(p));
            (a, b, gaussian)
        };
        assert!(
            from_file == want,
            "{kind:?}: C ABI (file) and Rust API differ"
        );
        assert!(
            from_buffer == want,
            "{kind:?}: C ABI (buffer) and Rust API differ"
        );
        assert!(from_file != gaussian, "{kind:?}: the model was not used");

        // the CLI on the same shear, noise, model and seed
        let shape = vec![N, N];
        for (name, g) in [("e1.npy", &g1), ("e2.npy", &g2)] {
            let a = ndarray::ArrayViewD::from_shape(shape.clone(), g).unwrap();
            lensdiff::io::npy::write_f32(&dir.path(name), a).unwrap();
        }
        let out = dir.path(&format!("out-{}", kind.name()));
        let arg = |p: std::path::PathBuf| p.to_str().unwrap().to_string();
        common::lensdiff_ok(&[
            "sample".to_string(),
            "--e1".into(),
            arg(dir.path("e1.npy")),
            "--e2".into(),
            arg(dir.path("e2.npy")),
            "--pixel-arcmin".into(),
            PIXEL.to_string(),
            "--sigma".into(),
            SIGMA_N.to_string(),
            "--model".into(),
            arg(path.clone()),
            "--levels".into(),
            LEVELS.to_string(),
            "--chains".into(),
            CHAINS.to_string(),
            "--batch".into(),
            BATCH.to_string(),
            "--seed".into(),
            SEED.to_string(),
            "--format".into(),
            "npy".into(),
            "--out".into(),
            arg(out.clone()),
        ]);
        let f32s = |name: &str| {
            lensdiff::io::npy::read_f32(&out.join(name))
                .unwrap()
                .into_raw_vec_and_offset()
                .0
        };
        assert!(
            f32s("mean.npy") == from_file.mean,
            "{kind:?}: CLI mean differs"
        );
        assert!(
            f32s("std.npy") == from_file.std,
            "{kind:?}: CLI std differs"
        );
        assert!(
            f32s("samples.npy") == from_file.samples,
            "{kind:?}: CLI samples differ"
        );
    }
}

/// A C program needs no file: the demo model by name, described by the
/// info and JSON queries, samples as the Rust API does with it.
#[test]
fn builtin_model_by_name_with_its_description() {
    let grid = Grid::new(32, 32, 0.5).unwrap();
    let power = ClTable::default_kappa().pixel_power(&grid);
    let truth = gaussian_fields(&grid, &power, 2, 0, 1).unwrap();
    let noise = NoiseModel::uniform(grid, 0.05, None).unwrap();
    let (g1, g2) = simulate_shear(&truth, &noise, 2, 0).unwrap();
    let den = lensdiff::prior::builtin::builtin_model("demo").unwrap();
    let prior = NeuralPrior::new(den, grid).unwrap();
    let data = ShearData::new(g1.clone(), g2.clone(), noise).unwrap();
    let post = GuidedPosterior::new(&prior, &data, Guidance::Spectral { tol: 1e-4 }).unwrap();
    let cfg = SamplerConfig {
        levels: 6,
        ..SamplerConfig::default()
    };
    let want = sample(&post, &cfg, &RunSpec::new(3, 2), &mut |_, _| {}).unwrap();
    unsafe {
        let mut p = null_mut();
        ok!(lensdiff_problem_create(32, 32, 0.5, &mut p));
        ok!(lensdiff_problem_set_shear(
            p,
            g1.as_ptr(),
            g2.as_ptr(),
            g1.len()
        ));
        ok!(lensdiff_problem_set_noise_uniform(p, 0.05));
        let name = CString::new("demo-lognormal-hybrid").unwrap();
        ok!(lensdiff_problem_load_builtin_model(p, name.as_ptr()));
        let mut info = std::mem::zeroed::<LensdiffModelInfo>();
        ok!(lensdiff_problem_model_info(
            p,
            &mut info,
            std::mem::size_of::<LensdiffModelInfo>()
        ));
        assert_eq!(
            (info.hybrid, info.levels, info.side_multiple, info.n_params),
            (1, 2, 2, 35_553)
        );
        assert_eq!(info.pixel_arcmin, 0.5);
        assert!(info.sigma_data > 0.0 && info.sigma_max > info.sigma_data);
        let mut needed = 0usize;
        ok!(lensdiff_problem_model_json(p, null_mut(), 0, &mut needed));
        let mut buf = vec![0 as std::ffi::c_char; needed];
        ok!(lensdiff_problem_model_json(
            p,
            buf.as_mut_ptr(),
            buf.len(),
            null_mut()
        ));
        let text = CStr::from_ptr(buf.as_ptr()).to_str().unwrap();
        let json: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(json["kind"], "hybrid");
        assert_eq!(json["n_params"], 35_553);
        assert_eq!(
            json["architecture"]["channels"],
            serde_json::json!([16, 32])
        );
        let mut c = std::mem::zeroed::<LensdiffSamplerConfig>();
        ok!(lensdiff_sampler_config_init(&mut c));
        c.levels = 6;
        c.chains = 2;
        c.seed = 3;
        let mut s = null_mut();
        ok!(lensdiff_sampler_create(p, &c, &mut s));
        ok!(lensdiff_sampler_run(s));
        let mut got = vec![0.0f32; 2 * 32 * 32];
        ok!(lensdiff_sampler_samples(s, got.as_mut_ptr(), got.len()));
        assert!(
            got == want.samples,
            "built-in model: C ABI and Rust API differ"
        );
        ok!(lensdiff_sampler_destroy(s));
        ok!(lensdiff_problem_destroy(p));
    }
}

/// One loaded model, several samplers: created from one problem, run at the
/// same time on different threads, each gives what it gives alone.
#[test]
fn one_loaded_model_serves_samplers_on_several_threads() {
    let (g1, g2) = shear();
    let dir = common::TempDir::new("c_api_model_threads");
    let path = dir.path("hybrid.safetensors");
    model(DenoiserKind::Hybrid, 12).save(&path).unwrap();
    let cpath = CString::new(path.to_str().unwrap()).unwrap();
    // handles cross threads as addresses (the C caller's pointers)
    let p = unsafe {
        let p = problem(&g1, &g2);
        ok!(lensdiff_problem_load_model(p, cpath.as_ptr()));
        p as usize
    };
    let alone: Vec<Out> = [1u64, 2, 3]
        .iter()
        .map(|&seed| unsafe { c_run(p as *const LensdiffProblem, seed) })
        .collect();
    let alone = Arc::new(alone);
    // samplers made first, then run concurrently: they share the model
    let samplers: Vec<usize> = [1u64, 2, 3]
        .iter()
        .map(|&seed| unsafe {
            let mut c = std::mem::zeroed::<LensdiffSamplerConfig>();
            ok!(lensdiff_sampler_config_init(&mut c));
            c.levels = LEVELS as u32;
            c.chains = CHAINS as u32;
            c.batch = BATCH as u32;
            c.seed = seed;
            let mut s = null_mut();
            ok!(lensdiff_sampler_create(
                p as *const LensdiffProblem,
                &c,
                &mut s
            ));
            s as usize
        })
        .collect();
    unsafe { ok!(lensdiff_problem_destroy(p as *mut LensdiffProblem)) };
    let threads: Vec<_> = samplers
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let alone = Arc::clone(&alone);
            std::thread::spawn(move || unsafe {
                let s = s as *mut LensdiffSampler;
                ok!(lensdiff_sampler_run(s));
                let mut got = vec![0.0f32; CHAINS * N * N];
                ok!(lensdiff_sampler_samples(s, got.as_mut_ptr(), got.len()));
                ok!(lensdiff_sampler_destroy(s));
                assert!(got == alone[i].samples, "sampler {i} differs on its thread");
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
