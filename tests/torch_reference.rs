//! The Rust denoiser against the independent PyTorch reference
//! `tools/torch_reference.py`: `D(x; σ)` and `J_D(x)ᵀ v` for pure and hybrid
//! denoisers, periodic and zero padding, from the same safetensors file; and
//! the pure joint denoiser (`JointDenoiser`: both parts of `D(u, k; σ)` and of
//! `J_Dᵀ (v_u, v_k)`), whose hybrid the reference refuses.
//!
//! The network gets random O(0.3) parameters (the real initialisation zeroes
//! the output convolution, so `F ≡ 0` would make the comparison vacuous). The
//! reference runs in float64; the Rust side runs in f32, so the bound is
//! `max |a_rust - a_torch| / max |a_torch| < 1e-4` (f32 rounding through a few
//! dozen layers is ~1e-6; a wrong layer, name or convention gives 1e-2 or more).
//!
//! Needs `python3` with `torch` and `numpy` (`LENSDIFF_TORCH_PYTHON` names
//! another interpreter), so the tests are `#[ignore]`d: scripts/test.sh runs
//! them (`cargo test --release --test torch_reference -- --ignored`) when torch
//! is importable; run so without it, they fail.

mod common;

use std::path::Path;
use std::process::Command;

use lensdiff::cosmo::limber::ClOptions;
use lensdiff::cosmo::nz::SourceBin;
use lensdiff::cosmo::Cosmology;
use lensdiff::grid::Grid;
use lensdiff::nn::{Dims4, UNetConfig};
use lensdiff::prior::joint::{CosmologyRecipe, JointDenoiser, JointDenoiserMeta, ParamSpace};
use lensdiff::prior::GaussianPrior;
use lensdiff::prior::{Denoiser, DenoiserKind, DenoiserMeta};
use lensdiff::spectrum::ClTable;
use ndarray::{Array1, Array2, Array3};

const TOL: f64 = 1e-4;
const N: usize = 2;
const SIDE: usize = 16;
const PIXEL_ARCMIN: f64 = 2.0;
const SIGMA: [f64; N] = [0.03, 1.5];

fn python() -> String {
    std::env::var("LENSDIFF_TORCH_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Fails `test` unless the interpreter has torch and numpy.
fn require_torch(test: &str) {
    let ok = Command::new(python())
        .args(["-c", "import torch, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    let missing: &[&str] = if ok { &[] } else { &["torch and numpy"] };
    common::require(
        test,
        missing,
        &format!(
            "`{} -c \"import torch, numpy\"` failed; LENSDIFF_TORCH_PYTHON names another interpreter",
            python()
        ),
    );
}

fn config(padding: &str) -> UNetConfig {
    UNetConfig {
        channels: vec![8, 16],
        blocks: 1,
        groups: 4,
        embed_freqs: 4,
        embed_dim: 8,
        padding: padding.into(),
        joint_params: 0,
        ..UNetConfig::demo()
    }
}

/// A denoiser with random parameters of scale 0.3 (`seed`): hybrid on the
/// `C_ell` table `gaussian` if given, pure otherwise.
fn denoiser(
    padding: &str,
    gaussian: Option<ClTable>,
    meta_pixel_arcmin: f64,
    seed: u64,
) -> Denoiser {
    denoiser_of(config(padding), gaussian, meta_pixel_arcmin, seed)
}

fn denoiser_of(
    config: UNetConfig,
    gaussian: Option<ClTable>,
    meta_pixel_arcmin: f64,
    seed: u64,
) -> Denoiser {
    let kind = match gaussian {
        Some(_) => DenoiserKind::Hybrid,
        None => DenoiserKind::Pure,
    };
    let meta = DenoiserMeta {
        kind,
        sigma_data: 0.5,
        pixel_arcmin: meta_pixel_arcmin,
        sigma_max: Some(2.0),
        description: "torch reference test".into(),
    };
    let mut d = Denoiser::new(config, meta, gaussian, 0).unwrap();
    d.params = common::noise_vec(d.params.len(), seed)
        .iter()
        .map(|v| 0.3 * v)
        .collect();
    d
}

fn max_abs(a: &[f64]) -> f64 {
    a.iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

/// `max |a - b| / max |b|`.
fn rel_err<A: Copy + Into<f64>>(a: &[A], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let diff = a
        .iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max(((*x).into() - y).abs()));
    diff / max_abs(b)
}

fn write_maps(path: &Path, v: &[f32]) {
    let a = Array3::from_shape_vec((N, SIDE, SIDE), v.to_vec()).unwrap();
    ndarray_npy::write_npy(path, &a).unwrap();
}

fn read_maps(path: &Path) -> Vec<f64> {
    let a: Array3<f64> = ndarray_npy::read_npy(path).unwrap();
    assert_eq!(a.shape(), [N, SIDE, SIDE], "{}", path.display());
    a.iter().copied().collect()
}

/// One comparison: Rust and torch outputs for the same model and inputs.
struct Outcome {
    d_rust: Vec<f32>,
    d_torch: Vec<f64>,
    vjp_rust: Vec<f32>,
    vjp_torch: Vec<f64>,
}

/// Saves `den`, runs the reference on it (`extra` command-line arguments) and
/// the Rust forward pass and VJP on the reloaded file; checks both.
fn compare(test: &str, den: &Denoiser, extra: &[&str], grid: Grid) -> Outcome {
    let dir = common::temp_dir(&format!("torch-{test}"));
    let model = dir.join("model.safetensors");
    den.save(&model).unwrap();
    // the file is what both sides read
    let den = Denoiser::load(&model).unwrap();
    let gauss: Option<GaussianPrior> = den.gaussian_prior(grid).unwrap();
    let dims = Dims4::new(N, 1, SIDE, SIDE);
    let x: Vec<f32> = common::noise_vec(dims.len(), 11)
        .iter()
        .map(|v| 0.5 * v)
        .collect();
    let v = common::noise_vec(dims.len(), 12);
    let p = |name: &str| dir.join(name);
    write_maps(&p("x.npy"), &x);
    write_maps(&p("v.npy"), &v);
    ndarray_npy::write_npy(p("sigma.npy"), &Array1::from(SIGMA.to_vec())).unwrap();

    let script = common::root().join("tools/torch_reference.py");
    common::run_ok(
        &format!("{test}: torch_reference.py"),
        Command::new(python())
            .arg(&script)
            .args([&model, &p("x.npy"), &p("sigma.npy"), &p("d.npy")])
            .arg("--vjp")
            .args([p("v.npy"), p("vjp.npy")])
            .args(extra),
    );
    let d_torch = read_maps(&p("d.npy"));
    let vjp_torch = read_maps(&p("vjp.npy"));

    let (d_rust, cache) = den
        .forward_cached(&den.params, &x, dims, &SIGMA, gauss.as_ref())
        .unwrap();
    let vjp_rust = den
        .vjp(&den.params, &cache, &v, gauss.as_ref(), None)
        .unwrap();

    // not vacuous: the network term is a sizeable part of D
    let init = den.unet().init_params(0);
    let d_base = den
        .forward_cached(&init, &x, dims, &SIGMA, gauss.as_ref())
        .unwrap()
        .0;
    let net_part: Vec<f64> = d_rust
        .iter()
        .zip(&d_base)
        .map(|(a, b)| (*a - *b) as f64)
        .collect();
    assert!(
        max_abs(&net_part) > 0.1 * max_abs(&d_torch),
        "{test}: the network term is negligible"
    );

    let (ed, ev) = (rel_err(&d_rust, &d_torch), rel_err(&vjp_rust, &vjp_torch));
    eprintln!("{test}: D relative error {ed:.2e}, VJP relative error {ev:.2e}");
    assert!(ed < TOL, "{test}: D relative error {ed:.3e}");
    assert!(ev < TOL, "{test}: VJP relative error {ev:.3e}");
    Outcome {
        d_rust,
        d_torch,
        vjp_rust,
        vjp_torch,
    }
}

#[test]
#[ignore = "needs python3 with torch and numpy: scripts/test.sh runs it when torch is importable"]
fn periodic_pure_and_hybrid_match_torch() {
    require_torch("periodic_pure_and_hybrid_match_torch");
    let grid = Grid::square(SIDE, PIXEL_ARCMIN).unwrap();
    let pure = denoiser("periodic", None, PIXEL_ARCMIN, 5);
    let hybrid = denoiser("periodic", Some(ClTable::default_kappa()), PIXEL_ARCMIN, 5);
    assert_eq!(pure.params, hybrid.params);
    // the hybrid takes its pixel size from the file's metadata
    let a = compare("periodic-pure", &pure, &[], grid);
    let b = compare("periodic-hybrid", &hybrid, &[], grid);
    // Same network: the difference isolates the bases (Wiener filter minus
    // c_skip x), checked on its own scale.
    let diff = |h: &[f32], p: &[f32]| -> Vec<f32> { h.iter().zip(p).map(|(a, b)| a - b).collect() };
    let diff64 =
        |h: &[f64], p: &[f64]| -> Vec<f64> { h.iter().zip(p).map(|(a, b)| a - b).collect() };
    let ed = rel_err(&diff(&b.d_rust, &a.d_rust), &diff64(&b.d_torch, &a.d_torch));
    let ev = rel_err(
        &diff(&b.vjp_rust, &a.vjp_rust),
        &diff64(&b.vjp_torch, &a.vjp_torch),
    );
    eprintln!("hybrid - pure: D relative error {ed:.2e}, VJP relative error {ev:.2e}");
    assert!(ed < TOL, "hybrid - pure D: relative error {ed:.3e}");
    assert!(ev < TOL, "hybrid - pure VJP: relative error {ev:.3e}");
}

#[test]
#[ignore = "needs python3 with torch and numpy: scripts/test.sh runs it when torch is importable"]
fn zero_padding_hybrid_matches_torch_and_export_round_trips() {
    require_torch("zero_padding_hybrid_matches_torch_and_export_round_trips");
    // The metadata's pixel size differs from the map's: `--pixel-arcmin`
    // must override it (the Rust side builds its Gaussian part on `grid`).
    let grid = Grid::square(SIDE, PIXEL_ARCMIN).unwrap();
    let den = denoiser("zero", Some(ClTable::default_kappa()), 1.0, 7);
    let dir = common::temp_dir("torch-export");
    let resaved = dir.join("resaved.safetensors");
    let arcmin = PIXEL_ARCMIN.to_string();
    compare(
        "zero-hybrid",
        &den,
        &[
            "--pixel-arcmin",
            &arcmin,
            "--resave",
            resaved.to_str().unwrap(),
        ],
        grid,
    );
    // save_lensdiff writes a file lensdiff reads back unchanged
    let back = Denoiser::load(&resaved).unwrap();
    assert_eq!(back.unet().config(), den.unet().config());
    assert_eq!(back.meta(), den.meta());
    assert_eq!(back.params, den.params);
    let (g0, g1) = (back.gaussian().unwrap(), den.gaussian().unwrap());
    let as_f32 = |v: &[f64]| -> Vec<f32> { v.iter().map(|&x| x as f32).collect() };
    assert_eq!(as_f32(g0.ell()), as_f32(g1.ell()));
    assert_eq!(as_f32(g0.cl()), as_f32(g1.cl()));
}

/// The strides and kernel sizes of `UNetConfig::uresnet18` on a small
/// network: level 0 pooled (the input convolution's output joins before the
/// output convolution), level 1 at level 0's resolution, 7 x 7 in, 5 x 5 out.
#[test]
#[ignore = "needs python3 with torch and numpy: scripts/test.sh runs it when torch is importable"]
fn strided_network_matches_torch_and_export_round_trips() {
    require_torch("strided_network_matches_torch_and_export_round_trips");
    let grid = Grid::square(SIDE, PIXEL_ARCMIN).unwrap();
    let cfg = UNetConfig {
        strides: vec![2, 1],
        in_kernel: 7,
        out_kernel: 5,
        ..config("periodic")
    };
    let den = denoiser_of(cfg, None, PIXEL_ARCMIN, 9);
    let dir = common::temp_dir("torch-strided");
    let resaved = dir.join("resaved.safetensors");
    compare(
        "strided-pure",
        &den,
        &["--resave", resaved.to_str().unwrap()],
        grid,
    );
    let back = Denoiser::load(&resaved).unwrap();
    assert_eq!(back.unet().config(), den.unet().config());
    assert_eq!(back.params, den.params);
}

#[test]
#[ignore = "needs python3 with torch and numpy: scripts/test.sh runs it when torch is importable"]
fn hybrid_with_short_table_matches_torch() {
    // The map's multipoles run from 675 (fundamental) to 7.6e3 (corner): below
    // the table (power-law extrapolation), inside it (log-log), next to a zero
    // row (linear in ell) and past it (zero), every branch of `ClTable::eval`.
    require_torch("hybrid_with_short_table_matches_torch");
    let grid = Grid::square(SIDE, PIXEL_ARCMIN).unwrap();
    let table = ClTable::new(vec![1e3, 2.5e3, 5e3], vec![4e-10, 1e-10, 0.0]).unwrap();
    let ell = grid.ell_map();
    assert!(ell[1..].iter().any(|&l| l < 1e3) && ell.iter().any(|&l| l > 5e3));
    let den = denoiser("periodic", Some(table), PIXEL_ARCMIN, 9);
    compare("short-table-hybrid", &den, &[], grid);
}

// ------------------------------------------------------------ joint denoiser

/// Noise levels of the joint comparison (joint units: unit data scale).
const JOINT_SIGMA: [f64; N] = [0.3, 2.0];

/// A joint denoiser over `ParamSpace::sbi_lens()` (p = 2) on the map-only
/// test architecture (periodic, 2 levels), with random parameters of scale
/// 0.3 (`seed`): pure, or hybrid on the sbi_lens fiducial cosmology.
fn joint_denoiser(kind: DenoiserKind, seed: u64) -> JointDenoiser {
    let space = ParamSpace::sbi_lens();
    let config = UNetConfig {
        joint_params: space.len(),
        ..config("periodic")
    };
    let mut meta = JointDenoiserMeta::new(kind, &space, 0.02, PIXEL_ARCMIN);
    meta.sigma_max = Some(80.0);
    meta.description = "torch reference test (joint)".into();
    if kind == DenoiserKind::Hybrid {
        meta.gaussian = Some(CosmologyRecipe {
            base: Cosmology::sbi_lens_fiducial(),
            source: SourceBin::Plane { z: 1.0 },
            cl: ClOptions::default(),
        });
    }
    let mut d = JointDenoiser::new(config, meta, 0).unwrap();
    d.params = common::noise_vec(d.params.len(), seed)
        .iter()
        .map(|v| 0.3 * v)
        .collect();
    d
}

fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

fn write_params(path: &Path, v: &[f64], p: usize) {
    let a = Array2::from_shape_vec((N, p), v.to_vec()).unwrap();
    ndarray_npy::write_npy(path, &a).unwrap();
}

fn write_maps64(path: &Path, v: &[f64]) {
    let a = Array3::from_shape_vec((N, SIDE, SIDE), v.to_vec()).unwrap();
    ndarray_npy::write_npy(path, &a).unwrap();
}

fn read_params(path: &Path, p: usize) -> Vec<f64> {
    let a: Array2<f64> = ndarray_npy::read_npy(path).unwrap();
    assert_eq!(a.shape(), [N, p], "{}", path.display());
    a.iter().copied().collect()
}

fn diff64(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x - y).collect()
}

#[test]
#[ignore = "needs python3 with torch and numpy: scripts/test.sh runs it when torch is importable"]
fn periodic_pure_joint_matches_torch_and_export_round_trips() {
    let test = "periodic_pure_joint_matches_torch_and_export_round_trips";
    require_torch(test);
    let dir = common::temp_dir("torch-joint");
    let model = dir.join("joint.safetensors");
    joint_denoiser(DenoiserKind::Pure, 21).save(&model).unwrap();
    // the file is what both sides read
    let den = JointDenoiser::load(&model).unwrap();
    let np = den.space().len();
    let dims = Dims4::new(N, 1, SIDE, SIDE);
    // joint units: u ~ N(0, I), k of unit scale, both noised at sigma
    let u = to_f64(&common::noise_vec(N * np, 23));
    let k = to_f64(&common::noise_vec(dims.len(), 11));
    let v_u = to_f64(&common::noise_vec(N * np, 24));
    let v_k = to_f64(&common::noise_vec(dims.len(), 12));
    let p = |name: &str| dir.join(name);
    write_params(&p("u.npy"), &u, np);
    write_maps64(&p("k.npy"), &k);
    write_params(&p("vu.npy"), &v_u, np);
    write_maps64(&p("vk.npy"), &v_k);
    ndarray_npy::write_npy(p("sigma.npy"), &Array1::from(JOINT_SIGMA.to_vec())).unwrap();
    let resaved = p("resaved.safetensors");

    let script = common::root().join("tools/torch_reference.py");
    common::run_ok(
        &format!("{test}: torch_reference.py"),
        Command::new(python())
            .arg(&script)
            .args([&model, &p("k.npy"), &p("sigma.npy"), &p("dk.npy")])
            .arg("--u")
            .args([p("u.npy"), p("du.npy")])
            .arg("--vjp")
            .args([p("vk.npy"), p("gk.npy")])
            .arg("--vjp-u")
            .args([p("vu.npy"), p("gu.npy")])
            .arg("--resave")
            .arg(&resaved),
    );
    let du_torch = read_params(&p("du.npy"), np);
    let dk_torch = read_maps(&p("dk.npy"));
    let gu_torch = read_params(&p("gu.npy"), np);
    let gk_torch = read_maps(&p("gk.npy"));

    let (d, cache) = den
        .forward_cached(
            &den.params,
            &u,
            &k,
            dims,
            &JOINT_SIGMA,
            None,
            &mut [],
            false,
        )
        .unwrap();
    let (gu, gk) = den
        .vjp(&den.params, &cache, &v_u, &v_k, None, None)
        .unwrap();

    // not vacuous: the network terms are sizeable parts of D and of the VJP
    let init = den.unet().init_params(0);
    let (d0, cache0) = den
        .forward_cached(&init, &u, &k, dims, &JOINT_SIGMA, None, &mut [], false)
        .unwrap();
    let (gu0, gk0) = den.vjp(&init, &cache0, &v_u, &v_k, None, None).unwrap();
    for (what, a, b, reference) in [
        ("D_u", &d.u, &d0.u, &du_torch),
        ("D_k", &d.k, &d0.k, &dk_torch),
        ("VJP_u", &gu, &gu0, &gu_torch),
        ("VJP_k", &gk, &gk0, &gk_torch),
    ] {
        let net = max_abs(&diff64(a, b));
        let scale = max_abs(reference);
        eprintln!("{test}: {what}: network term {net:.3e} of {scale:.3e}");
        assert!(
            net > 0.1 * scale,
            "{test}: the network term of {what} is negligible"
        );
    }

    let errs = [
        ("D_u", rel_err(&d.u, &du_torch)),
        ("D_k", rel_err(&d.k, &dk_torch)),
        ("VJP_u", rel_err(&gu, &gu_torch)),
        ("VJP_k", rel_err(&gk, &gk_torch)),
    ];
    for (what, e) in errs {
        eprintln!("{test}: {what} relative error {e:.2e}");
    }
    for (what, e) in errs {
        assert!(e < TOL, "{test}: {what} relative error {e:.3e}");
    }

    // save_lensdiff writes a joint file lensdiff reads back unchanged
    let back = JointDenoiser::load(&resaved).unwrap();
    assert_eq!(back.unet().config(), den.unet().config());
    assert_eq!(back.meta(), den.meta());
    assert_eq!(back.params, den.params);
}

#[test]
#[ignore = "needs python3 with torch and numpy: scripts/test.sh runs it when torch is importable"]
fn hybrid_joint_file_is_refused_by_torch_reference() {
    let test = "hybrid_joint_file_is_refused_by_torch_reference";
    require_torch(test);
    let dir = common::temp_dir("torch-joint-hybrid");
    let model = dir.join("joint-hybrid.safetensors");
    joint_denoiser(DenoiserKind::Hybrid, 21)
        .save(&model)
        .unwrap();
    let np = ParamSpace::sbi_lens().len();
    let p = |name: &str| dir.join(name);
    write_params(&p("u.npy"), &vec![0.0; N * np], np);
    write_maps64(&p("k.npy"), &vec![0.0; N * SIDE * SIDE]);
    ndarray_npy::write_npy(p("sigma.npy"), &Array1::from(JOINT_SIGMA.to_vec())).unwrap();
    let script = common::root().join("tools/torch_reference.py");
    let out = Command::new(python())
        .arg(&script)
        .args([&model, &p("k.npy"), &p("sigma.npy"), &p("dk.npy")])
        .arg("--u")
        .args([p("u.npy"), p("du.npy")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{test}: a hybrid joint file loaded");
    assert!(
        stderr.contains("hybrid joint denoiser is not supported"),
        "{test}: unexpected message:\n{stderr}"
    );
    assert!(!p("dk.npy").exists() && !p("du.npy").exists());
}
