//! Shared helpers of the integration tests; every `tests/*.rs` declares
//! `mod common;`.
//!
//! A test that needs what a plain `cargo test` may lack (a GPU, the MPI build,
//! `../shared/data`, PyTorch, libnvrtc) is `#[ignore = "<what it needs>: <what
//! runs it>"]`. Run with `--ignored`, it fails with a message naming what is
//! missing ([`require`], [`shared_data`]); it never passes without it.
#![allow(dead_code)]

pub mod dense;
pub mod fields;
pub mod joint;
pub mod joint_models;
pub mod map_models;
pub mod modes;

use std::ffi::OsStr;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use lensdiff::noise::NoiseModel;
use lensdiff::prior::GaussianPrior;
use lensdiff::sampler::ShearData;
use lensdiff::spectrum::ClTable;
use lensdiff::Grid;

/// The repository root.
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The repository root as a path.
pub fn root() -> &'static Path {
    Path::new(ROOT)
}

/// The `lensdiff` command-line program of this build.
pub const LENSDIFF: &str = env!("CARGO_BIN_EXE_lensdiff");

// ---------------------------------------------------------------- prerequisites

/// Fails `test` with one message naming everything in `missing` and `how` to
/// get it; does nothing when `missing` is empty.
pub fn require(test: &str, missing: &[impl Display], how: &str) {
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|m| m.to_string()).collect();
        panic!("{test} needs {} ({how})", list.join(", "));
    }
}

/// Whether `tool` is an executable file on `PATH` (as `command -v` finds it).
pub fn have(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|d| {
        std::fs::metadata(d.join(tool))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The tools of `tools` that are not on `PATH`.
pub fn missing_tools<'a>(tools: &[&'a str]) -> Vec<&'a str> {
    tools.iter().copied().filter(|t| !have(t)).collect()
}

/// `../shared/data` (the real COSMOS and kappaTNG data); fails `test` when the
/// folder is absent. Tests that call it are `#[ignore]`d: scripts/test.sh runs
/// those in `needs_data` modules when the folder exists; the long studies
/// (e.g. tests/learned_prior.rs) are run by hand, as their docs say.
pub fn shared_data(test: &str) -> PathBuf {
    let p = root().join("../shared/data");
    let missing: Vec<String> = if p.is_dir() {
        vec![]
    } else {
        vec![p.display().to_string()]
    };
    require(
        test,
        &missing,
        "the shared data folder beside the repository",
    );
    p
}

// ---------------------------------------------------------------- files

/// A fresh, empty directory unique to one test (kept after it, for a look).
pub fn temp_dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lensdiff-test-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

/// A fresh, empty directory unique to one test, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(test: &str) -> TempDir {
        TempDir(temp_dir(test))
    }

    /// `file` inside the directory.
    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }

    /// The names in the directory, sorted.
    pub fn entries(&self) -> Vec<String> {
        listing(&self.0)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The names in `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The bytes of `path`, failing with its name.
pub fn read_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A raw little-endian `f32` file (the C examples' outputs).
pub fn read_f32(path: &Path) -> Vec<f32> {
    read_raw(path, f32::from_le_bytes)
}

/// A raw little-endian `f64` file.
pub fn read_f64(path: &Path) -> Vec<f64> {
    read_raw(path, f64::from_le_bytes)
}

/// A raw file of `N`-byte values, each decoded by `value`.
fn read_raw<T, const N: usize>(path: &Path, value: fn([u8; N]) -> T) -> Vec<T> {
    let b = read_bytes(path);
    assert_eq!(b.len() % N, 0, "{}: {} bytes", path.display(), b.len());
    b.chunks_exact(N)
        .map(|c| value(c.try_into().unwrap()))
        .collect()
}

/// Width, height, bit depth and colour type of a PNG file's bytes, after
/// checking the signature and the IHDR chunk.
pub fn png_header(bytes: &[u8]) -> (u32, u32, u8, u8) {
    assert!(bytes.len() > 33, "file too short: {} bytes", bytes.len());
    assert_eq!(
        &bytes[..8],
        &[137, 80, 78, 71, 13, 10, 26, 10],
        "PNG signature"
    );
    assert_eq!(&bytes[8..12], &[0, 0, 0, 13], "IHDR length");
    assert_eq!(&bytes[12..16], b"IHDR");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (w, h, bytes[24], bytes[25])
}

// ---------------------------------------------------------------- commands

/// A command's status, stdout and stderr, for a failure message.
pub fn show(o: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs a command, failing with its output unless it succeeds.
pub fn run_ok(what: &str, cmd: &mut Command) -> Output {
    let t = Instant::now();
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(o.status.success(), "{what} failed: {cmd:?}\n{}", show(&o));
    eprintln!("{what}: ok ({:.1} s)", t.elapsed().as_secs_f64());
    o
}

/// Runs [`LENSDIFF`] with `args`.
pub fn lensdiff<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(LENSDIFF)
        .args(args)
        .output()
        .expect("run lensdiff")
}

/// Runs [`LENSDIFF`] with `args`, failing with its output unless it succeeds;
/// its stdout.
pub fn lensdiff_ok<S: AsRef<OsStr>>(args: &[S]) -> String {
    let o = run_ok("lensdiff", Command::new(LENSDIFF).args(args));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

// ---------------------------------------------------------------- problems

/// A Gaussian truth of pixel power `power` (seed `truth_seed`, chain 0) and its
/// shear with `noise` (seed `noise_seed`), as sampler data.
pub fn shear_data(
    grid: &Grid,
    power: &[f64],
    noise: NoiseModel,
    truth_seed: u64,
    noise_seed: u64,
) -> ShearData {
    let truth = lensdiff::fields::gaussian_fields(grid, power, truth_seed, 0, 1).unwrap();
    let (g1, g2) = lensdiff::fields::simulate_shear(&truth, &noise, noise_seed, 0).unwrap();
    ShearData::new(g1, g2, noise).unwrap()
}

/// The default kappa prior on a `side`² grid of 2' pixels, and data with
/// per-pixel noise std 0.02 to 0.06 and the pixels where `observed(i)` holds,
/// so that the inner solve iterates (truth seed 5, noise seed 6).
pub fn masked_problem(side: usize, observed: impl Fn(usize) -> bool) -> (GaussianPrior, ShearData) {
    let grid = Grid::square(side, 2.0).unwrap();
    let prior = GaussianPrior::from_cl(grid, &ClTable::default_kappa()).unwrap();
    let mask: Vec<bool> = (0..grid.len()).map(observed).collect();
    let std: Vec<f32> = (0..grid.len())
        .map(|i| 0.02 + 0.01 * ((i % 5) as f32))
        .collect();
    let noise = NoiseModel::from_std(grid, &std, &std, Some(&mask)).unwrap();
    let data = shear_data(&grid, prior.power(), noise, 5, 6);
    (prior, data)
}

/// The problem of tests/sampler_exact.rs: a 32² grid of 2' pixels, a power-law
/// spectrum, uniform noise 0.02, no mask (truth and noise seed 5); the grid,
/// its pixel power and the data.
pub fn exact_problem() -> (Grid, Vec<f64>, ShearData) {
    let g = Grid::square(32, 2.0).unwrap();
    let power = power_law(30, 1.5, 4.5, 1e-8, -1.2).pixel_power(&g);
    // noise comparable to the signal at intermediate scales
    let noise = NoiseModel::uniform(g, 0.02, None).unwrap();
    let data = shear_data(&g, &power, noise, 5, 5);
    (g, power, data)
}

// ---------------------------------------------------------------- statistics

/// The coverage an exact sampler has with `chains` chains: the truth and
/// the chain mean m differ by N(0, σ²(1 + 1/N)), independent of the chain
/// variance s² ~ σ² χ²_{N-1}/(N - 1), so P(|truth - m| < c s) =
/// E[erf(c s / sqrt(2 σ² (1 + 1/N)))] (a t distribution: a little under the
/// nominal 68.3% and 95.4% for finite N); integrated over the χ² density
/// on a grid (normalised numerically).
pub fn expected_coverage(c: f64, chains: usize) -> f64 {
    let nu = (chains - 1) as f64;
    let hi = nu + 12.0 * (2.0 * nu).sqrt();
    let steps = 20_000;
    let (mut num, mut den) = (0.0, 0.0);
    for i in 1..steps {
        let u = hi * i as f64 / steps as f64;
        let w =
            ((nu / 2.0 - 1.0) * u.ln() - u / 2.0 - ((nu / 2.0 - 1.0) * nu.ln() - nu / 2.0)).exp();
        let sd = (u / nu).sqrt();
        num += w * lensdiff::cosmo::nz::erf(c * sd / (2.0 * (1.0 + 1.0 / chains as f64)).sqrt());
        den += w;
    }
    num / den
}

// ---------------------------------------------------------------- values

/// The message of a caught panic (`std::panic::catch_unwind`'s error).
pub fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// Deterministic pseudo-random values in [-0.5, 0.5) for test inputs.
pub fn noise_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut v = vec![0.0f32; n];
    lensdiff::rng::Philox::new(seed, lensdiff::rng::Stream::Training, 99, 0).fill_normal(&mut v);
    v
}

/// SplitMix64 → uniform f64 values in [-1, 1): inputs of the f64 gradient checks.
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next value.
    pub fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }

    /// `n` values.
    pub fn vec(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.next()).collect()
    }
}

/// `sum a_i b_i` of two equally long vectors.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// A power-law spectrum `C_ell = cl_1000 (ell / 1000)^slope` tabulated at
/// `points` log-spaced multipoles from `10^log_lo` to `10^log_hi`.
pub fn power_law(points: usize, log_lo: f64, log_hi: f64, cl_1000: f64, slope: f64) -> ClTable {
    let ell: Vec<f64> = (0..points)
        .map(|i| 10f64.powf(log_lo + (log_hi - log_lo) * i as f64 / (points - 1) as f64))
        .collect();
    let cl = ell
        .iter()
        .map(|l| cl_1000 * (l / 1000.0).powf(slope))
        .collect();
    ClTable::new(ell, cl).unwrap()
}

/// Central differences `(L(θ + h e_i) - L(θ - h e_i)) / 2h` of `loss` at
/// `theta` against the gradient `analytic`: `max_i |fd_i - g_i| / max_i |g_i|`
/// must be below `tol` (and the gradient not vacuously zero).
pub fn fd_check(
    what: &str,
    theta: &[f64],
    analytic: &[f64],
    h: f64,
    tol: f64,
    loss: impl Fn(&[f64]) -> f64,
) {
    assert_eq!(theta.len(), analytic.len(), "{what}: gradient length");
    let mut t = theta.to_vec();
    let mut max_err = 0.0f64;
    for i in 0..t.len() {
        let t0 = t[i];
        t[i] = t0 + h;
        let lp = loss(&t);
        t[i] = t0 - h;
        let lm = loss(&t);
        t[i] = t0;
        let fd = (lp - lm) / (2.0 * h);
        max_err = max_err.max((fd - analytic[i]).abs());
    }
    let scale = analytic.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(
        scale > 1e-3,
        "{what}: gradient is (nearly) zero, the check would be vacuous"
    );
    let rel = max_err / scale;
    eprintln!("{what}: relative error {rel:.2e}");
    assert!(
        rel < tol,
        "{what}: finite-difference relative error {rel:.3e} >= {tol:.0e}"
    );
}

/// The sbi_lens exponent uses each map's own variance: `ln(1 + kappa/lambda) =
/// g - var(g)/2` with `mean(g) = 0` exactly (`P_G[0] = 0`), so every map
/// has `mean(y) = -var(y)/2` for `y = ln(1 + kappa/lambda)`. The expected
/// variance `sigma_g²` instead would miss by `(var(g) - sigma_g²)/2`: var(g)
/// is 0.112 to 0.123 over 8 maps at the truth, so ~1e-3. The float32 maps
/// leave 1e-10 (measured): tolerance 1e-6.
pub fn sbi_own_variance_defect(maps: &[f32], lambda: f64) -> f64 {
    maps.chunks(128 * 128)
        .map(|m| {
            let y: Vec<f64> = m.iter().map(|&k| (1.0 + k as f64 / lambda).ln()).collect();
            let n = y.len() as f64;
            let mean = y.iter().sum::<f64>() / n;
            let var = y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            (mean + 0.5 * var).abs()
        })
        .fold(0.0, f64::max)
}
