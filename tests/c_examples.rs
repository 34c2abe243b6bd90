//! The installed C ABI from the outside: `scripts/install.sh` into a temporary
//! prefix, the C and Fortran examples of `c_examples/` built with their
//! Makefile against the shared and the static library, their outputs compared
//! with each other and with the Rust API bit for bit, the C example under
//! valgrind, the SONAME and the pkg-config file.
//!
//! Needs bash, make, a C compiler (`cc`), pkg-config, readelf, gfortran and
//! valgrind, and fails with the list of what is missing: `scripts/test.sh`
//! installs all of them, so the Fortran builds and the leak check are part of
//! every run of the suite rather than parts that could silently drop out.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::{read_f32, read_f64, run_ok, show, ROOT};

use lensdiff::baselines::{kaiser_squires, WienerFilter, WienerOptions};
use lensdiff::fields::{gaussian_fields, simulate_shear};
use lensdiff::noise::NoiseModel;
use lensdiff::prior::GaussianPrior;
use lensdiff::sampler::{sample, Guidance, GuidedPosterior, RunSpec, SamplerConfig, ShearData};
use lensdiff::smoothing::Boundary;
use lensdiff::spectrum::ClTable;
use lensdiff::Grid;

/// The settings of c_examples/lensdiff_example.{c,f90} (keep in sync).
const N: usize = 48;
const PIXEL_ARCMIN: f64 = 1.0;
const NOISE_SIGMA: f64 = 0.05;
const SIM_SEED: u64 = 7;
const KS_SMOOTH_PX: f64 = 1.0;
const WIENER_TOL: f64 = 1e-6;
const WIENER_MAX_ITER: usize = 1000;
const CHAINS: usize = 4;
const BATCH: usize = 2;
const LEVELS: usize = 16;
const SAMPLER_SEED: u64 = 3;
/// The C ABI's default inner CG tolerance (lensdiff_sampler_config_init).
const INNER_TOL: f64 = 1e-4;
/// The grid of the valgrind run.
const N_VALGRIND: usize = 16;

const F32_FILES: [&str; 6] = [
    "truth.f32",
    "wiener.f32",
    "ks.f32",
    "mean.f32",
    "std.f32",
    "samples.f32",
];
const ALL_FILES: [&str; 7] = [
    "truth.f32",
    "wiener.f32",
    "ks.f32",
    "mean.f32",
    "std.f32",
    "samples.f32",
    "chi2.f64",
];

/// `scripts/install.sh PREFIX` of the libraries already built (scripts/test.sh
/// builds every target first: install those instead of rebuilding the crate
/// with other features).
fn install(prefix: &Path) {
    let o = run_ok(
        "scripts/install.sh",
        Command::new("bash")
            .arg(common::root().join("scripts/install.sh"))
            .arg(prefix)
            .env("LENSDIFF_INSTALL_NO_BUILD", "1")
            .current_dir(ROOT),
    );
    eprintln!("{}", String::from_utf8_lossy(&o.stdout).trim());
}

/// `make -C c_examples PREFIX=.. BUILD=.. targets...`
fn make(prefix: &Path, build: &Path, targets: &[&str]) {
    run_ok(
        "make -C c_examples",
        Command::new("make")
            .arg("-C")
            .arg(common::root().join("c_examples"))
            .arg(format!("PREFIX={}", prefix.display()))
            .arg(format!("BUILD={}", build.display()))
            .args(targets)
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS"),
    );
}

/// Runs `exe args...` under valgrind's memcheck on one worker thread and
/// asserts no memory error and nothing definitely lost.
fn assert_valgrind_clean(exe: &Path, args: &[&std::ffi::OsStr]) {
    let t = Instant::now();
    let o = Command::new("valgrind")
        .args([
            "--error-exitcode=3",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
        ])
        .arg(exe)
        .args(args)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    let text = show(&o);
    assert_eq!(o.status.code(), Some(0), "valgrind:\n{text}");
    assert!(
        text.contains("definitely lost: 0 bytes") || text.contains("no leaks are possible"),
        "valgrind:\n{text}"
    );
    assert!(
        text.contains("ERROR SUMMARY: 0 errors"),
        "valgrind:\n{text}"
    );
    eprintln!(
        "valgrind {}: clean ({:.1} s)",
        exe.display(),
        t.elapsed().as_secs_f64()
    );
}

fn pkg_config(prefix: &Path, args: &[&str]) -> String {
    let o = run_ok(
        &format!("pkg-config {}", args.join(" ")),
        Command::new("pkg-config")
            .args(args)
            .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig")),
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn readelf_dynamic(path: &Path) -> String {
    let o = run_ok(
        &format!("readelf -d {}", path.display()),
        Command::new("readelf").arg("-d").arg(path),
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts bitwise equality, reporting the first differences.
fn assert_bits_eq<T: Copy + std::fmt::Debug>(
    what: &str,
    got: &[T],
    want: &[T],
    bits: impl Fn(T) -> u64,
) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let diff: Vec<usize> = (0..got.len())
        .filter(|&i| bits(got[i]) != bits(want[i]))
        .collect();
    assert!(
        diff.is_empty(),
        "{what}: {} of {} values differ from the Rust API, first at {:?}: {:?}",
        diff.len(),
        got.len(),
        &diff[..diff.len().min(5)],
        diff.iter()
            .take(5)
            .map(|&i| (got[i], want[i]))
            .collect::<Vec<_>>()
    );
}

/// The maps of the example computed through the Rust API, in file order.
struct Reference {
    maps: Vec<(&'static str, Vec<f32>)>,
    chi2: Vec<f64>,
}

/// The example's run through the plain Rust API (what src/capi/problem.rs and
/// src/capi/sampler.rs call for the C example's settings).
fn rust_reference(n: usize) -> Reference {
    let grid = Grid::new(n, n, PIXEL_ARCMIN).unwrap();
    let power = ClTable::default_kappa().pixel_power(&grid);
    let hole = n / 4;
    let mask: Vec<bool> = (0..n * n)
        .map(|i| !(i % n < hole && i / n < hole))
        .collect();
    let noise = NoiseModel::uniform(grid, NOISE_SIGMA, Some(&mask)).unwrap();
    let truth = gaussian_fields(&grid, &power, SIM_SEED, 0, 1).unwrap();
    let (g1, g2) = simulate_shear(&truth, &noise, SIM_SEED, 0).unwrap();
    let wiener = WienerFilter::new(grid, power.clone())
        .unwrap()
        .solve(
            &g1,
            &g2,
            &noise,
            &WienerOptions {
                tol: WIENER_TOL,
                max_iter: WIENER_MAX_ITER,
            },
        )
        .unwrap()
        .kappa;
    let (ks, _) = kaiser_squires(&grid, &g1, &g2, KS_SMOOTH_PX, Boundary::Periodic).unwrap();
    let data = ShearData::new(g1, g2, noise).unwrap();
    let prior = GaussianPrior::new(grid, power).unwrap();
    let post = GuidedPosterior::new(&prior, &data, Guidance::Spectral { tol: INNER_TOL }).unwrap();
    let cfg = SamplerConfig {
        levels: LEVELS,
        ..SamplerConfig::default()
    };
    let set = sample(
        &post,
        &cfg,
        &RunSpec::new(SAMPLER_SEED, CHAINS).in_batches(BATCH),
        &mut |_, _| {},
    )
    .unwrap();
    let m = set.moments();
    Reference {
        maps: vec![
            ("truth.f32", truth),
            ("wiener.f32", wiener),
            ("ks.f32", ks),
            ("mean.f32", m.mean_f32()),
            ("std.f32", m.std_f32()),
            ("samples.f32", set.samples.clone()),
        ],
        chi2: set.chi2.clone(),
    }
}

#[test]
fn c_and_fortran_examples_against_the_installed_library() {
    let t0 = Instant::now();
    let missing = common::missing_tools(&[
        "bash",
        "make",
        "cc",
        "pkg-config",
        "readelf",
        "gfortran",
        "valgrind",
    ]);
    common::require(
        "tests/c_examples.rs",
        &missing,
        "on PATH; Debian/Ubuntu: apt-get install build-essential pkg-config binutils \
         gfortran valgrind; scripts/test.sh installs them",
    );

    let tmp = common::temp_dir("c_examples");
    let prefix = tmp.join("prefix");
    let build = tmp.join("build");

    // (a) install
    install(&prefix);
    let version = env!("CARGO_PKG_VERSION");
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    let lib = prefix.join("lib");
    let real = format!("liblensdiff.so.{version}");
    assert!(lib.join(&real).is_file(), "{real} not installed");
    assert_eq!(
        fs::read_link(lib.join(format!("liblensdiff.so.{major}"))).unwrap(),
        PathBuf::from(&real)
    );
    assert_eq!(
        fs::read_link(lib.join("liblensdiff.so")).unwrap(),
        PathBuf::from(format!("liblensdiff.so.{major}"))
    );
    assert!(lib.join("liblensdiff.a").is_file());
    assert_eq!(
        fs::read(prefix.join("include/lensdiff.h")).unwrap(),
        fs::read(common::root().join("include/lensdiff.h")).unwrap(),
        "installed header differs from include/lensdiff.h"
    );
    assert_eq!(
        fs::read(prefix.join("include/lensdiff.f90")).unwrap(),
        fs::read(common::root().join("c_examples/lensdiff.f90")).unwrap(),
        "installed Fortran module differs from c_examples/lensdiff.f90"
    );

    // (e) SONAME and pkg-config
    let dynamic = readelf_dynamic(&lib.join(&real));
    assert!(
        dynamic.contains(&format!("Library soname: [liblensdiff.so.{major}]")),
        "SONAME of {real}:\n{dynamic}"
    );
    assert_eq!(pkg_config(&prefix, &["--modversion", "lensdiff"]), version);
    let libs = pkg_config(&prefix, &["--libs", "lensdiff"]);
    assert!(
        libs.split_whitespace().any(|w| w == "-llensdiff"),
        "pkg-config --libs: {libs}"
    );
    let static_libs = pkg_config(&prefix, &["--static", "--libs", "lensdiff"]);
    assert!(
        static_libs.split_whitespace().any(|w| w == "-lm"),
        "pkg-config --static --libs lacks -lm: {static_libs}"
    );
    let cflags = pkg_config(&prefix, &["--cflags", "lensdiff"]);
    assert!(
        cflags.contains(&prefix.join("include").display().to_string()),
        "pkg-config --cflags: {cflags}"
    );

    // (b) build the examples, shared and static
    make(
        &prefix,
        &build,
        &["c", "c-static", "fortran", "fortran-static"],
    );
    let programs = [
        ("c-shared", build.join("shared/lensdiff_example")),
        ("c-static", build.join("static/lensdiff_example")),
        ("fortran-shared", build.join("shared/lensdiff_example_f")),
        ("fortran-static", build.join("static/lensdiff_example_f")),
    ];
    for (name, exe) in &programs {
        let d = readelf_dynamic(exe);
        let needs_lib = d.contains(&format!("[liblensdiff.so.{major}]"));
        if name.ends_with("shared") {
            assert!(
                needs_lib,
                "{name} does not link liblensdiff.so.{major}:\n{d}"
            );
            assert!(
                d.contains(&lib.display().to_string()),
                "{name} has no rpath to {}:\n{d}",
                lib.display()
            );
        } else {
            assert!(!needs_lib, "{name} links the shared library:\n{d}");
        }
    }

    // run them all; outputs must be identical to the C shared build's
    let out = tmp.join("out");
    for (name, exe) in &programs {
        let dir = out.join(name);
        fs::create_dir_all(&dir).unwrap();
        let o = run_ok(name, Command::new(exe).arg(&dir));
        eprint!("{}", String::from_utf8_lossy(&o.stdout));
    }
    let first = out.join(programs[0].0);
    for (name, _) in &programs[1..] {
        for f in ALL_FILES {
            assert!(
                fs::read(out.join(name).join(f)).unwrap() == fs::read(first.join(f)).unwrap(),
                "{name}/{f} differs from {}/{f}",
                programs[0].0
            );
        }
    }
    eprintln!(
        "outputs of {:?} are identical",
        programs.iter().map(|p| p.0).collect::<Vec<_>>()
    );

    // (c) and equal to the Rust API's
    let reference = rust_reference(N);
    for (f, want) in &reference.maps {
        let got = read_f32(&first.join(f));
        assert_bits_eq(f, &got, want, |x: f32| x.to_bits() as u64);
    }
    assert_eq!(reference.maps.len(), F32_FILES.len());
    assert_eq!(read_f32(&first.join("samples.f32")).len(), CHAINS * N * N);
    let chi2 = read_f64(&first.join("chi2.f64"));
    assert_bits_eq("chi2.f64", &chi2, &reference.chi2, f64::to_bits);
    eprintln!("outputs equal the Rust API bit for bit");

    // the examples' failures: exit status and a message on stderr
    let o = Command::new(&programs[0].1)
        .arg(tmp.join("no/such/dir"))
        .arg("8")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cannot open"),
        "{}",
        show(&o)
    );
    let o = Command::new(&programs[0].1)
        .arg(&out)
        .arg("2")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));

    // (d) no leaks, no memory errors
    let dir = out.join("valgrind");
    fs::create_dir_all(&dir).unwrap();
    assert_valgrind_clean(
        &programs[0].1,
        &[dir.as_os_str(), N_VALGRIND.to_string().as_ref()],
    );
    // one thread, a smaller grid: still the Rust API's values
    let reference = rust_reference(N_VALGRIND);
    for (f, want) in &reference.maps {
        let got = read_f32(&dir.join(f));
        assert_bits_eq(f, &got, want, |x: f32| x.to_bits() as u64);
    }
    let chi2 = read_f64(&dir.join("chi2.f64"));
    assert_bits_eq("chi2.f64 (valgrind)", &chi2, &reference.chi2, f64::to_bits);

    eprintln!("total {:.1} s", t0.elapsed().as_secs_f64());
    let _ = fs::remove_dir_all(&tmp);
}

/// The settings of c_examples/lensdiff_learned.{c,f90} (keep in sync).
mod learned {
    pub const N: usize = 32;
    pub const PIXEL_ARCMIN: f64 = 0.5;
    pub const NOISE_SIGMA: f64 = 0.05;
    pub const LAMBDA: f64 = 0.03;
    pub const SIM_SEED: u64 = 7;
    pub const WIENER_TOL: f64 = 1e-6;
    pub const WIENER_MAX_ITER: usize = 1000;
    pub const CHAINS: usize = 4;
    pub const BATCH: usize = 2;
    pub const LEVELS: usize = 12;
    pub const SAMPLER_SEED: u64 = 3;
    /// The grid of the valgrind run.
    pub const N_VALGRIND: usize = 16;
    pub const FILES: [&str; 6] = [
        "truth.f32",
        "wiener.f32",
        "mean.f32",
        "std.f32",
        "samples.f32",
        "chi2.f64",
    ];
}

/// The learned-prior examples (issue #17): the C and the Fortran program,
/// with the built-in demo model by name and with the same model from its
/// file, write identical files; their simulation and Wiener filter are the
/// Rust API's, and their posterior mean, std and samples are bitwise those of
/// `lensdiff sample --model` on the same shear, noise and seed; the C program
/// is valgrind clean.
#[test]
fn learned_prior_examples_in_c_and_fortran_equal_the_cli() {
    use learned::*;
    let t0 = Instant::now();
    let missing =
        common::missing_tools(&["bash", "make", "cc", "pkg-config", "gfortran", "valgrind"]);
    common::require(
        "tests/c_examples.rs (learned prior)",
        &missing,
        "on PATH; Debian/Ubuntu: apt-get install build-essential pkg-config gfortran \
         valgrind; scripts/test.sh installs them",
    );
    let tmp = common::temp_dir("c_examples_learned");
    let prefix = tmp.join("prefix");
    let build = tmp.join("build");
    install(&prefix);
    make(&prefix, &build, &["learned"]);
    let model_file = common::root().join("models/demo-lognormal-hybrid.safetensors");
    let c = build.join("shared/lensdiff_learned");
    let f = build.join("shared/lensdiff_learned_f");
    let runs = [
        ("c-builtin", &c, None),
        ("fortran-builtin", &f, None),
        ("c-file", &c, Some(&model_file)),
        ("fortran-file", &f, Some(&model_file)),
    ];
    let out = tmp.join("out");
    for (name, exe, model) in &runs {
        let dir = out.join(name);
        fs::create_dir_all(&dir).unwrap();
        let mut cmd = Command::new(exe);
        cmd.arg(&dir).arg(N.to_string());
        if let Some(m) = model {
            cmd.arg(m);
        }
        let o = run_ok(name, &mut cmd);
        let text = String::from_utf8_lossy(&o.stdout);
        eprint!("{text}");
        assert!(
            text.contains("hybrid, 35553 parameters"),
            "{name}: no model description in\n{text}"
        );
    }
    let first = out.join(runs[0].0);
    for (name, _, _) in &runs[1..] {
        for file in FILES {
            assert!(
                fs::read(out.join(name).join(file)).unwrap() == fs::read(first.join(file)).unwrap(),
                "{name}/{file} differs from {}/{file}",
                runs[0].0
            );
        }
    }
    eprintln!("C and Fortran, built-in model and model file: identical outputs");

    // the simulation and the Wiener filter through the Rust API
    let grid = Grid::new(N, N, PIXEL_ARCMIN).unwrap();
    let power = ClTable::default_kappa().pixel_power(&grid);
    let truth = lensdiff::fields::LogNormal::new(&grid, &power, LAMBDA)
        .unwrap()
        .sample(&grid, SIM_SEED, 0, 1)
        .unwrap();
    let noise = NoiseModel::uniform(grid, NOISE_SIGMA, None).unwrap();
    let (g1, g2) = simulate_shear(&truth, &noise, SIM_SEED, 0).unwrap();
    let wiener = WienerFilter::new(grid, power)
        .unwrap()
        .solve(
            &g1,
            &g2,
            &noise,
            &WienerOptions {
                tol: WIENER_TOL,
                max_iter: WIENER_MAX_ITER,
            },
        )
        .unwrap()
        .kappa;
    for (file, want) in [("truth.f32", &truth), ("wiener.f32", &wiener)] {
        let got = read_f32(&first.join(file));
        assert_bits_eq(file, &got, want, |x: f32| x.to_bits() as u64);
    }

    // the CLI on that shear with the model file
    let shape = vec![N, N];
    for (name, g) in [("e1.npy", &g1), ("e2.npy", &g2)] {
        let a = ndarray::ArrayViewD::from_shape(shape.clone(), g).unwrap();
        lensdiff::io::npy::write_f32(&tmp.join(name), a).unwrap();
    }
    let cli = tmp.join("cli");
    let path = |p: &Path| p.to_str().unwrap().to_string();
    common::lensdiff_ok(&[
        "sample".to_string(),
        "--e1".into(),
        path(&tmp.join("e1.npy")),
        "--e2".into(),
        path(&tmp.join("e2.npy")),
        "--pixel-arcmin".into(),
        PIXEL_ARCMIN.to_string(),
        "--sigma".into(),
        NOISE_SIGMA.to_string(),
        "--model".into(),
        path(&model_file),
        "--levels".into(),
        LEVELS.to_string(),
        "--chains".into(),
        CHAINS.to_string(),
        "--batch".into(),
        BATCH.to_string(),
        "--seed".into(),
        SAMPLER_SEED.to_string(),
        "--format".into(),
        "npy".into(),
        "--out".into(),
        path(&cli),
    ]);
    for (npy, raw) in [
        ("mean.npy", "mean.f32"),
        ("std.npy", "std.f32"),
        ("samples.npy", "samples.f32"),
    ] {
        let want = lensdiff::io::npy::read_f32(&cli.join(npy))
            .unwrap()
            .into_raw_vec_and_offset()
            .0;
        let got = read_f32(&first.join(raw));
        assert_bits_eq(
            &format!("{raw} (C) vs {npy} (lensdiff sample --model)"),
            &got,
            &want,
            |x: f32| x.to_bits() as u64,
        );
    }
    assert_eq!(read_f32(&first.join("samples.f32")).len(), CHAINS * N * N);
    eprintln!("equal to the Rust API (simulation, Wiener) and the CLI (posterior) bit for bit");

    // the C program under valgrind: the built-in model, one thread, a smaller grid
    let dir = out.join("valgrind");
    fs::create_dir_all(&dir).unwrap();
    assert_valgrind_clean(&c, &[dir.as_os_str(), N_VALGRIND.to_string().as_ref()]);
    let samples = read_f32(&dir.join("samples.f32"));
    assert_eq!(samples.len(), CHAINS * N_VALGRIND * N_VALGRIND);
    assert!(samples.iter().all(|v| v.is_finite()));
    eprintln!("total {:.1} s", t0.elapsed().as_secs_f64());
    let _ = fs::remove_dir_all(&tmp);
}

/// A C program linked against the build tree (`-L target/<profile>
/// -llensdiff -Wl,-rpath,...`), not an installed copy, loads and runs: the
/// loader asks for the SONAME `liblensdiff.so.MAJOR`, which build.rs links
/// to `liblensdiff.so` beside it (issue #12).
#[test]
fn a_program_linked_against_the_build_tree_runs() {
    common::require(
        "a_program_linked_against_the_build_tree_runs",
        &common::missing_tools(&["cc"]),
        "a C compiler on PATH",
    );
    // this test runs from target/<profile>/deps/
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let lib = dir.join("liblensdiff.so");
    assert!(
        lib.exists(),
        "{} missing: build every target first (cargo build --release --all-targets, as scripts/test.sh does)",
        lib.display()
    );
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    let link = dir.join(format!("liblensdiff.so.{major}"));
    assert!(
        link.exists(),
        "{} missing beside the library",
        link.display()
    );
    let tmp = common::temp_dir("c_build_tree");
    let src = tmp.join("version.c");
    fs::write(
        &src,
        "#include <stdio.h>\n#include \"lensdiff.h\"\nint main(void) { printf(\"%d %s\\n\", \
         (int)lensdiff_version(), lensdiff_version_string()); return lensdiff_version() == \
         LENSDIFF_VERSION_NUMBER ? 0 : 1; }\n",
    )
    .unwrap();
    let bin = tmp.join("version");
    run_ok(
        "cc against the build tree",
        Command::new("cc")
            .arg(&src)
            .arg(format!("-I{ROOT}/include"))
            .arg(format!("-L{}", dir.display()))
            .arg("-llensdiff")
            .arg(format!("-Wl,-rpath,{}", dir.display()))
            .arg("-o")
            .arg(&bin),
    );
    let o = run_ok(
        "the program linked against the build tree",
        &mut Command::new(&bin),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
}
