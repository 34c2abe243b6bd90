//! Joint sampling through the C ABI (issue #15, part 6): the exact Gaussian
//! and the learned joint priors, from a file and from a memory buffer, give
//! bitwise the parameters, maps and moments of the Rust API and of `lensdiff
//! joint` for the same data and seed.

mod common;

use std::ffi::{CStr, CString};
use std::ptr::{null, null_mut};

use lensdiff::capi::*;
use lensdiff::fields::{gaussian_fields, simulate_shear};
use lensdiff::grid::Grid;
use lensdiff::noise::NoiseModel;
use lensdiff::prior::joint::{GaussianJoint, JointDenoiser, JointPrior, NeuralJoint, ParamSpace};
use lensdiff::prior::DenoiserKind;
use lensdiff::sampler::joint_guided::{to_physical, JointGuidedPosterior};
use lensdiff::sampler::{sample, Guidance, RunSpec, SamplerConfig, SamplerKind, ShearData};

type S = LensdiffStatus;

use common::joint_models as joint_cases;

const N: usize = 16;
const PIXEL: f64 = 2.0;
const SIGMA_N: f64 = 0.02;
const CHAINS: usize = 4;
const BATCH: usize = 2;
const LEVELS: usize = 12;
const SEED: u64 = 7;

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

fn space() -> ParamSpace {
    ParamSpace::new(&["omega_c", "sigma8"], &[0.3, 0.8], &[0.05, 0.05]).unwrap()
}

/// Shear of a Gaussian field of the joint prior's spectrum at its mean.
fn shear(prior: &GaussianJoint) -> (Vec<f32>, Vec<f32>) {
    let g = grid();
    let power = prior.prior_power(&[0.0, 0.0]).unwrap();
    let truth = gaussian_fields(&g, &power, 3, 0, 1).unwrap();
    let noise = NoiseModel::uniform(g, SIGMA_N, None).unwrap();
    simulate_shear(&truth, &noise, 3, 0).unwrap()
}

/// One run's outputs: theta, mean, std, samples, chi².
#[derive(PartialEq, Debug)]
struct Out {
    theta: Vec<f64>,
    mean: Vec<f32>,
    std: Vec<f32>,
    samples: Vec<f32>,
    chi2: Vec<f64>,
}

fn cfg() -> SamplerConfig {
    SamplerConfig {
        kind: SamplerKind::from_name("edm").unwrap(),
        levels: LEVELS,
        ..SamplerConfig::default()
    }
}

/// The run through the Rust API.
fn rust_run<P: JointPrior>(prior: &P, g1: &[f32], g2: &[f32]) -> Out {
    let noise = NoiseModel::uniform(grid(), SIGMA_N, None).unwrap();
    let data = ShearData::new(g1.to_vec(), g2.to_vec(), noise).unwrap();
    let post = JointGuidedPosterior::new(prior, &data, Guidance::Spectral { tol: 1e-4 }).unwrap();
    let mut set = sample(
        &post,
        &cfg(),
        &RunSpec::new(SEED, CHAINS).in_batches(BATCH),
        &mut |_, _| {},
    )
    .unwrap();
    let phys = to_physical(prior.space(), prior.sigma_d(), &mut set, None).unwrap();
    Out {
        theta: phys.theta,
        mean: phys.moments.mean_f32(),
        std: phys.moments.std_f32(),
        samples: set.samples,
        chi2: set.chi2,
    }
}

/// A problem with the shear and uniform noise.
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
    p
}

/// The run through the C ABI of a problem with a joint prior.
unsafe fn c_run(p: *const LensdiffProblem) -> Out {
    let mut c = std::mem::zeroed::<LensdiffSamplerConfig>();
    ok!(lensdiff_joint_sampler_config_init(&mut c));
    assert_eq!(c.sampler, LENSDIFF_SAMPLER_EDM);
    c.levels = LEVELS as u32;
    c.chains = CHAINS as u32;
    c.batch = BATCH as u32;
    c.seed = SEED;
    let mut s = null_mut();
    ok!(lensdiff_joint_sampler_create(p, &c, &mut s));
    ok!(lensdiff_sampler_run(s));
    let mut np = 0usize;
    ok!(lensdiff_sampler_params(s, &mut np));
    let mut chains = 0usize;
    ok!(lensdiff_sampler_chains(s, &mut chains));
    assert_eq!((np, chains), (2, CHAINS));
    let n = N * N;
    let mut out = Out {
        theta: vec![0.0; chains * np],
        mean: vec![0.0; n],
        std: vec![0.0; n],
        samples: vec![0.0; chains * n],
        chi2: vec![0.0; chains],
    };
    ok!(lensdiff_sampler_theta(
        s,
        out.theta.as_mut_ptr(),
        out.theta.len()
    ));
    ok!(lensdiff_sampler_mean(s, out.mean.as_mut_ptr(), n));
    ok!(lensdiff_sampler_std(s, out.std.as_mut_ptr(), n));
    ok!(lensdiff_sampler_samples(
        s,
        out.samples.as_mut_ptr(),
        chains * n
    ));
    ok!(lensdiff_sampler_chi2(s, out.chi2.as_mut_ptr(), chains));
    ok!(lensdiff_sampler_destroy(s));
    out
}

/// Name and prior of each parameter of the problem's joint prior.
unsafe fn params(p: *const LensdiffProblem) -> Vec<(String, f64, f64)> {
    let mut np = 0usize;
    ok!(lensdiff_problem_joint_params(p, &mut np));
    (0..np)
        .map(|i| {
            let mut name = [0 as std::ffi::c_char; 16];
            let (mut m, mut s) = (0.0, 0.0);
            ok!(lensdiff_problem_joint_param(
                p,
                i,
                name.as_mut_ptr(),
                name.len(),
                &mut m,
                &mut s
            ));
            let name = CStr::from_ptr(name.as_ptr()).to_string_lossy().into_owned();
            (name, m, s)
        })
        .collect()
}

fn gaussian_prior() -> GaussianJoint {
    let r = joint_cases::default_recipe();
    GaussianJoint::from_cosmology(&grid(), &space(), &r.base, &r.source, &r.cl).unwrap()
}

#[test]
fn gaussian_joint_prior_through_the_c_api_equals_the_rust_api_and_the_cli() {
    let prior = gaussian_prior();
    let (g1, g2) = shear(&prior);
    let want = rust_run(&prior, &g1, &g2);
    assert!(want.theta.iter().all(|v| v.is_finite()));
    let got = unsafe {
        let p = problem(&g1, &g2);
        let mut cosmo = std::mem::zeroed::<LensdiffCosmology>();
        ok!(lensdiff_cosmology_init(&mut cosmo));
        let names = CString::new("omega_c, sigma8").unwrap();
        ok!(lensdiff_problem_set_joint_prior_cosmology(
            p,
            &cosmo,
            names.as_ptr(),
            [0.3, 0.8].as_ptr(),
            [0.05, 0.05].as_ptr(),
            2
        ));
        assert_eq!(
            params(p),
            vec![("omega_c".into(), 0.3, 0.05), ("sigma8".into(), 0.8, 0.05)]
        );
        let out = c_run(p);
        ok!(lensdiff_problem_destroy(p));
        out
    };
    assert!(got == want, "C ABI and Rust API differ");

    // the CLI on the same shear, noise, prior and seed
    let dir = common::TempDir::new("c_api_joint_cli");
    let shape = vec![N, N];
    for (name, g) in [("e1.npy", &g1), ("e2.npy", &g2)] {
        let a = ndarray::ArrayViewD::from_shape(shape.clone(), g).unwrap();
        lensdiff::io::npy::write_f32(&dir.path(name), a).unwrap();
    }
    let out = dir.path("out");
    let arg = |p: std::path::PathBuf| p.to_str().unwrap().to_string();
    common::lensdiff_ok(&[
        "joint".to_string(),
        "--e1".into(),
        arg(dir.path("e1.npy")),
        "--e2".into(),
        arg(dir.path("e2.npy")),
        "--pixel-arcmin".into(),
        PIXEL.to_string(),
        "--sigma".into(),
        SIGMA_N.to_string(),
        "--gaussian-cosmology".into(),
        "--param".into(),
        "omega_c=0.3,0.05".into(),
        "--param".into(),
        "sigma8=0.8,0.05".into(),
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
    let theta = lensdiff::io::npy::read_f64(&out.join("theta.npy"))
        .unwrap()
        .into_raw_vec_and_offset()
        .0;
    assert!(theta == got.theta, "CLI theta differs from the C ABI's");
    assert!(f32s("mean.npy") == got.mean, "CLI mean differs");
    assert!(f32s("std.npy") == got.std, "CLI std differs");
    assert!(f32s("samples.npy") == got.samples, "CLI samples differ");
}

#[test]
fn learned_joint_prior_from_a_file_and_a_buffer_equals_the_rust_api() {
    let gauss = gaussian_prior();
    let (g1, g2) = shear(&gauss);
    let dir = common::TempDir::new("c_api_joint_learned");
    for (kind, bare) in [(DenoiserKind::Hybrid, false), (DenoiserKind::Pure, true)] {
        let path = dir.path(&format!("{}.safetensors", kind.name()));
        joint_cases::joint_model(kind, &space(), &grid(), bare, 11)
            .save(&path)
            .unwrap();
        // Rust: a pure model without cosmology takes the guidance's from the caller
        let mut prior = NeuralJoint::new(JointDenoiser::load(&path).unwrap(), grid()).unwrap();
        if bare {
            let g = joint_cases::default_recipe()
                .gaussian(&grid(), &space(), prior.sigma_d())
                .unwrap();
            prior = prior.with_guidance(g).unwrap();
        }
        let want = rust_run(&prior, &g1, &g2);
        let bytes = std::fs::read(&path).unwrap();
        let cpath = CString::new(path.to_str().unwrap()).unwrap();
        let (from_file, from_buffer) = unsafe {
            let mut cosmo = std::mem::zeroed::<LensdiffCosmology>();
            ok!(lensdiff_cosmology_init(&mut cosmo));
            let gc: *const LensdiffCosmology = if bare { &cosmo } else { null() };
            let p = problem(&g1, &g2);
            ok!(lensdiff_problem_load_joint_model(p, cpath.as_ptr(), gc));
            assert_eq!(
                params(p),
                vec![("omega_c".into(), 0.3, 0.05), ("sigma8".into(), 0.8, 0.05)]
            );
            let a = c_run(p);
            ok!(lensdiff_problem_load_joint_model_buffer(
                p,
                bytes.as_ptr(),
                bytes.len(),
                gc
            ));
            drop(bytes);
            let b = c_run(p);
            ok!(lensdiff_problem_destroy(p));
            (a, b)
        };
        assert!(
            from_file == want,
            "{kind:?}: C ABI (file) and Rust API differ"
        );
        assert!(
            from_buffer == want,
            "{kind:?}: C ABI (buffer) and Rust API differ"
        );
    }
}
