//! The Rust denoiser against the independent PyTorch reference
//! `tools/torch_reference.py`: `D(x; σ)` and `J_D(x)ᵀ v` for pure and hybrid
//! denoisers, periodic and zero padding, from the same safetensors file.
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

use lensdiff::grid::Grid;
use lensdiff::nn::{Dims4, UNetConfig};
use lensdiff::prior::GaussianPrior;
use lensdiff::prior::{Denoiser, DenoiserKind, DenoiserMeta};
use lensdiff::spectrum::ClTable;
use ndarray::{Array1, Array3};

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
    let mut d = Denoiser::new(config(padding), meta, gaussian, 0).unwrap();
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
fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    let diff = a
        .iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((*x as f64 - y).abs()));
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
