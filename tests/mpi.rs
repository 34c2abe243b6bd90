//! MPI-distributed chains, end to end under `mpirun` (issue #5): the C MPI
//! example, the Fortran mpi_f08 example and the CLI with 1, 2, 3 and 4 ranks
//! give bitwise the same samples, mean and std as one process, and a split
//! sub-communicator works. Needs the `mpi` build in target/mpi and OpenMPI
//! (`mpirun`, `mpicc`, `mpifort`), so the tests are `#[ignore]`d: scripts/test.sh
//! makes the build and runs them (`cargo test --release --test mpi -- --ignored`);
//! run so without those, they fail naming what is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

struct Tools {
    lib_dir: PathBuf,
    cli: PathBuf,
}

/// The MPI build and the OpenMPI programs `needs`; fails `test` naming what is missing.
fn tools(test: &str, needs: &[&str]) -> Tools {
    let build = common::root().join("target/mpi/release");
    let (lib, cli) = (build.join("liblensdiff.so"), build.join("lensdiff"));
    let mut missing: Vec<&str> = [
        (!lib.exists()).then_some("target/mpi/release/liblensdiff.so"),
        (!cli.exists()).then_some("target/mpi/release/lensdiff"),
    ]
    .into_iter()
    .flatten()
    .collect();
    missing.extend(common::missing_tools(needs));
    common::require(
        test,
        &missing,
        "scripts/test.sh installs OpenMPI and makes the build: cargo build --release \
         --features mpi --target-dir target/mpi --lib --bins",
    );
    // the SONAME is liblensdiff.so.0: give the loader that name
    let lib_dir = common::temp_dir(&format!("mpi-lib-{test}"));
    std::fs::copy(&lib, lib_dir.join("liblensdiff.so.0")).unwrap();
    std::os::unix::fs::symlink("liblensdiff.so.0", lib_dir.join("liblensdiff.so")).unwrap();
    Tools { lib_dir, cli }
}

/// `LD_LIBRARY_PATH` without cargo's build folders: `cargo test` puts
/// `target/<profile>` on it, where `liblensdiff.so.0` is the build without MPI
/// (build.rs links it), and the loader searches `LD_LIBRARY_PATH` before a
/// program's RUNPATH, which points at the MPI build.
fn library_path_outside_target() -> std::ffi::OsString {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> -> target/
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    let kept: Vec<PathBuf> = std::env::var_os("LD_LIBRARY_PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .filter(|d| !d.starts_with(&target))
                .collect()
        })
        .unwrap_or_default();
    std::env::join_paths(kept).unwrap()
}

fn mpirun(n: usize, args: &[&str]) -> String {
    let o = common::run_ok(
        &format!("mpirun -n {n}"),
        Command::new("mpirun")
            .args([
                "--allow-run-as-root",
                "--oversubscribe",
                "-n",
                &n.to_string(),
            ])
            .args(args)
            .env("RAYON_NUM_THREADS", "1")
            .env("LD_LIBRARY_PATH", library_path_outside_target()),
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
#[ignore = "needs the mpi build and mpirun: scripts/test.sh runs it"]
fn c_example_is_bitwise_identical_for_1_to_4_ranks_and_a_split_communicator() {
    let t = tools("c_example_mpi", &["mpirun", "mpicc"]);
    let d = common::temp_dir("mpi-c");
    let exe = d.join("lensdiff_mpi");
    let root = common::root();
    common::run_ok(
        "mpicc lensdiff_mpi.c",
        Command::new("mpicc")
            .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-I"])
            .arg(root.join("include"))
            .arg(root.join("c_examples/lensdiff_mpi.c"))
            .arg(format!("-L{}", t.lib_dir.display()))
            .arg("-llensdiff")
            .arg(format!("-Wl,-rpath,{}", t.lib_dir.display()))
            .arg("-o")
            .arg(&exe),
    );
    for n in 1..=4 {
        let out = d.join(format!("n{n}"));
        std::fs::create_dir_all(&out).unwrap();
        let stdout = mpirun(n, &[exe.to_str().unwrap(), out.to_str().unwrap()]);
        // one node here: node-local ranks 0..n of n (how ranks pick a GPU)
        for r in 0..n {
            assert!(
                stdout.contains(&format!("node rank {r} of {n}")),
                "{stdout}"
            );
        }
    }
    for f in ["samples.f32", "mean.f32", "std.f32"] {
        let one = common::read_bytes(&d.join("n1").join(f));
        for n in 2..=4 {
            assert!(
                one == common::read_bytes(&d.join(format!("n{n}")).join(f)),
                "{f} differs between 1 and {n} ranks"
            );
        }
    }
    // the same as the Rust API in one process, bitwise
    use lensdiff::prior::GaussianPrior;
    use lensdiff::sampler::{sample, Guidance, GuidedPosterior, RunSpec, SamplerConfig};
    let g = lensdiff::Grid::square(48, 1.0).unwrap();
    let power = lensdiff::spectrum::ClTable::default_kappa().pixel_power(&g);
    let noise = lensdiff::noise::NoiseModel::uniform(g, 0.05, None).unwrap();
    let data = common::shear_data(&g, &power, noise, 7, 7);
    let prior = GaussianPrior::new(g, power).unwrap();
    let post = GuidedPosterior::new(&prior, &data, Guidance::Spectral { tol: 1e-4 }).unwrap();
    let cfg = SamplerConfig {
        levels: 16,
        ..SamplerConfig::default()
    };
    let set = sample(
        &post,
        &cfg,
        &RunSpec::new(3, 20).in_batches(4),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(common::read_f32(&d.join("n1/samples.f32")), set.samples);
    assert_eq!(
        common::read_f32(&d.join("n3/mean.f32")),
        set.moments().mean_f32()
    );
    // NFE and the inner CG iterations of all chains, whatever the ranks
    let work = format!("{} {}\n", set.nfe, set.inner_iterations);
    assert!(set.inner_iterations > 0);
    for n in 1..=4 {
        let got = std::fs::read_to_string(d.join(format!("n{n}/work.txt"))).unwrap();
        assert_eq!(got, work, "NFE and inner CG iterations with {n} ranks");
    }
    // annealed HMC: the acceptance of every chain reaches rank 0
    let hmc_cfg = SamplerConfig {
        kind: lensdiff::sampler::SamplerKind::from_name("hmc").unwrap(),
        levels: 16,
        ..SamplerConfig::default()
    };
    let hmc = sample(
        &post,
        &hmc_cfg,
        &RunSpec::new(3, 20).in_batches(4),
        &mut |_, _| {},
    )
    .unwrap();
    let hmc_acc = hmc.acceptance.clone().expect("HMC has acceptance");
    for n in [1, 3] {
        let out = d.join(format!("hmc{n}"));
        std::fs::create_dir_all(&out).unwrap();
        mpirun(n, &[exe.to_str().unwrap(), out.to_str().unwrap(), "hmc"]);
        let acc = common::read_f64(&out.join("acceptance.f64"));
        assert_eq!(acc, hmc_acc, "acceptance with {n} ranks");
        assert_eq!(
            common::read_f32(&out.join("samples.f32")),
            hmc.samples,
            "HMC samples with {n} ranks"
        );
    }
    // two halves of MPI_COMM_WORLD (MPI_Comm_split) sample independently
    let split = d.join("split");
    std::fs::create_dir_all(&split).unwrap();
    mpirun(
        4,
        &[exe.to_str().unwrap(), split.to_str().unwrap(), "split"],
    );
    for h in ["half0_", "half1_"] {
        assert!(
            common::read_bytes(&split.join(format!("{h}samples.f32")))
                == common::read_bytes(&d.join("n1/samples.f32")),
            "{h}"
        );
        assert!(
            common::read_bytes(&split.join(format!("{h}std.f32")))
                == common::read_bytes(&d.join("n1/std.f32")),
            "{h}"
        );
    }
}

/// The per-chain diagnostics and work counts of two `summary.json` texts
/// agree (an MPI run against a plain one).
fn assert_same_work(summary: &str, plain: &str, what: &str) {
    for key in [
        "nfe_per_chain",
        "inner_cg_iterations",
        "chi2_per_dof",
        "acceptance",
    ] {
        assert_eq!(
            json_field(summary, key),
            json_field(plain, key),
            "summary.json {key}: {what} against the plain run"
        );
    }
}

/// A top-level field of `summary.json` (whatever its layout).
fn json_field(summary: &str, key: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(summary).unwrap_or_else(|e| panic!("summary.json: {e}\n{summary}"));
    v.get(key)
        .cloned()
        .unwrap_or_else(|| panic!("no {key} in {summary}"))
}

#[test]
#[ignore = "needs the mpi build and mpirun: scripts/test.sh runs it"]
fn cli_under_mpirun_is_bitwise_identical_to_a_plain_run() {
    let t = tools("cli_mpi", &["mpirun"]);
    let d = common::temp_dir("mpi-cli");
    let sim = d.join("sim");
    common::lensdiff_ok(&[
        "simulate",
        "--size",
        "40",
        "--field",
        "gaussian",
        "--seed",
        "4",
        "--out-prefix",
        sim.to_str().unwrap(),
    ]);
    let s = |n: &str| {
        d.join(format!("sim_{n}.fits"))
            .to_str()
            .unwrap()
            .to_string()
    };
    let common_args = |out: &Path| -> Vec<String> {
        [
            "sample",
            "--e1",
            &s("e1"),
            "--e2",
            &s("e2"),
            "--std1",
            &s("std1"),
            "--std2",
            &s("std2"),
            "--chains",
            "19",
            "--batch",
            "3",
            "--levels",
            "12",
            "--format",
            "npy",
            "--out",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|x| x.to_string())
        .collect()
    };
    let reference = d.join("plain");
    common::lensdiff_ok(&common_args(&reference));
    let plain_summary = std::fs::read_to_string(reference.join("summary.json")).unwrap();
    for n in 1..=4 {
        let out = d.join(format!("n{n}"));
        let mut args = vec![t.cli.to_str().unwrap().to_string()];
        args.extend(common_args(&out));
        let a: Vec<&str> = args.iter().map(|x| x.as_str()).collect();
        let _ = mpirun(n, &a);
        for f in ["samples.npy", "mean.npy", "std.npy"] {
            assert!(
                common::read_bytes(&out.join(f)) == common::read_bytes(&reference.join(f)),
                "{f}: {n} ranks differ from the plain run"
            );
        }
        let summary = std::fs::read_to_string(out.join("summary.json")).unwrap();
        assert!(summary.contains(&format!("{n} MPI ranks")), "{summary}");
        assert_same_work(&summary, &plain_summary, &format!("{n} ranks"));
    }
    // annealed HMC: per-chain acceptance and the CG count survive the gather
    let hmc_args = |out: &Path| {
        let mut a = common_args(out);
        a.extend(["--sampler", "hmc"].map(String::from));
        a
    };
    let reference_hmc = d.join("plain-hmc");
    common::lensdiff_ok(&hmc_args(&reference_hmc));
    let plain_hmc = std::fs::read_to_string(reference_hmc.join("summary.json")).unwrap();
    assert!(
        json_field(&plain_hmc, "acceptance").is_array(),
        "{plain_hmc}"
    );
    let out = d.join("hmc-n2");
    let mut args = vec![t.cli.to_str().unwrap().to_string()];
    args.extend(hmc_args(&out));
    let a: Vec<&str> = args.iter().map(|x| x.as_str()).collect();
    let _ = mpirun(2, &a);
    let summary = std::fs::read_to_string(out.join("summary.json")).unwrap();
    assert_same_work(&summary, &plain_hmc, "HMC, 2 ranks");
    // per-rank output: each rank writes its own chains; together they are the samples
    let out = d.join("per-rank");
    let mut args = vec![t.cli.to_str().unwrap().to_string()];
    args.extend(common_args(&out));
    args.push("--per-rank".into());
    let a: Vec<&str> = args.iter().map(|x| x.as_str()).collect();
    let _ = mpirun(3, &a);
    let mut joined = vec![];
    for r in 0..3 {
        joined.extend(
            lensdiff::io::read_stack(&out.join(format!("samples_rank{r}.npy")))
                .unwrap()
                .iter()
                .copied(),
        );
    }
    let all: Vec<f32> = lensdiff::io::read_stack(&reference.join("samples.npy"))
        .unwrap()
        .iter()
        .copied()
        .collect();
    assert_eq!(joined, all);
    assert!(
        common::read_bytes(&out.join("mean.npy"))
            == common::read_bytes(&reference.join("mean.npy"))
    );
    // the summary counts every rank's chains, not rank 0's alone
    let summary = std::fs::read_to_string(out.join("summary.json")).unwrap();
    assert_same_work(&summary, &plain_summary, "--per-rank, 3 ranks");
    assert_eq!(
        json_field(&summary, "chains"),
        json_field(&plain_summary, "chains")
    );
}

/// Builds the C MPI example and the Fortran mpi_f08 example (with the
/// module) into `d`, linked against the MPI build: their paths.
fn build_c_and_fortran_examples(t: &Tools, d: &Path) -> (PathBuf, PathBuf) {
    let root = common::root();
    let link = |cmd: &mut Command| {
        cmd.arg(format!("-L{}", t.lib_dir.display()))
            .arg("-llensdiff")
            .arg(format!("-Wl,-rpath,{}", t.lib_dir.display()));
    };

    // the C MPI example, as in the C test
    let c_exe = d.join("lensdiff_mpi");
    let mut cc = Command::new("mpicc");
    cc.args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-I"])
        .arg(root.join("include"))
        .arg(root.join("c_examples/lensdiff_mpi.c"));
    link(&mut cc);
    common::run_ok("mpicc lensdiff_mpi.c", cc.arg("-o").arg(&c_exe));

    // the module (its .mod into a directory of its own) and the mpi_f08 program
    let gnu = Command::new("mpifort")
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("GNU Fortran"));
    let flags: &[&str] = if gnu {
        &[
            "-O2",
            "-std=f2008",
            "-Wall",
            "-Wextra",
            "-pedantic",
            "-Werror",
            "-ffpe-summary=none",
        ]
    } else {
        &["-O2"]
    };
    let mod_dir = d.join("mod");
    std::fs::create_dir_all(&mod_dir).unwrap();
    let mut module = Command::new("mpifort");
    module.args(flags);
    if gnu {
        module.arg(format!("-J{}", mod_dir.display()));
    }
    common::run_ok(
        "mpifort lensdiff.f90",
        module
            .arg("-c")
            .arg(root.join("c_examples/lensdiff.f90"))
            .arg("-o")
            .arg(mod_dir.join("lensdiff.o"))
            .current_dir(&mod_dir), // where compilers without -J write the .mod
    );
    let f_obj = d.join("lensdiff_mpi_f08.o");
    common::run_ok(
        "mpifort lensdiff_mpi_f08.f90",
        Command::new("mpifort")
            .args(flags)
            .arg(format!("-I{}", mod_dir.display()))
            .arg("-c")
            .arg(root.join("c_examples/lensdiff_mpi_f08.f90"))
            .arg("-o")
            .arg(&f_obj),
    );
    let f_exe = d.join("lensdiff_mpi_f08");
    let mut ld = Command::new("mpifort");
    ld.args(flags).arg(&f_obj).arg(mod_dir.join("lensdiff.o"));
    link(&mut ld);
    common::run_ok("mpifort (link)", ld.arg("-o").arg(&f_exe));

    (c_exe, f_exe)
}

#[test]
#[ignore = "needs the mpi build and mpirun: scripts/test.sh runs it"]
fn fortran_f08_example_matches_the_c_example() {
    let t = tools("fortran_f08_example", &["mpirun", "mpicc", "mpifort"]);
    let d = common::temp_dir("mpi-fortran");
    let (c_exe, f_exe) = build_c_and_fortran_examples(&t, &d);

    // 1, 2, 3, 4 ranks over MPI_COMM_WORLD and 4 split in two halves: same files, bitwise
    let plain = ["mean.f32", "std.f32", "samples.f32", "work.txt"];
    let halves: Vec<String> = ["half0_", "half1_"]
        .iter()
        .flat_map(|h| plain.iter().map(move |f| format!("{h}{f}")))
        .collect();
    for (name, n, split) in [
        ("n1", 1, false),
        ("n2", 2, false),
        ("n3", 3, false),
        ("n4", 4, false),
        ("split4", 4, true),
    ] {
        let (c_out, f_out) = (d.join("c").join(name), d.join("fortran").join(name));
        for (exe, out) in [(&c_exe, &c_out), (&f_exe, &f_out)] {
            std::fs::create_dir_all(out).unwrap();
            let mut args = vec![exe.to_str().unwrap(), out.to_str().unwrap()];
            if split {
                args.push("split");
            }
            let _ = mpirun(n, &args);
        }
        let mut expected: Vec<String> = if split {
            halves.clone()
        } else {
            plain.iter().map(|f| f.to_string()).collect()
        };
        expected.sort();
        assert_eq!(common::listing(&c_out), expected, "C example, {name}");
        assert_eq!(
            common::listing(&f_out),
            expected,
            "Fortran example, {name}: other files than C's"
        );
        for f in &expected {
            let c = common::read_bytes(&c_out.join(f));
            if f.ends_with(".f32") {
                assert_eq!(
                    c.len(),
                    if f.ends_with("samples.f32") {
                        20 * 48 * 48 * 4
                    } else {
                        48 * 48 * 4
                    },
                    "{name}/{f}"
                );
            }
            assert!(
                c == common::read_bytes(&f_out.join(f)),
                "{name}/{f}: the Fortran mpi_f08 example differs from the C example"
            );
        }
    }
    // and the rank count changes nothing (each half of the split is a whole run)
    for f in plain {
        let one = common::read_bytes(&d.join("fortran/n1").join(f));
        for other in ["n2/", "n4/", "split4/half0_", "split4/half1_"] {
            assert!(
                one == common::read_bytes(&d.join(format!("fortran/{other}{f}"))),
                "fortran {other}{f} differs from 1 rank"
            );
        }
    }
}

/// `lensdiff joint` under `mpirun`: the chains split across ranks give the
/// same parameters and maps, bitwise, with 1 and 3 ranks (each chain draws
/// from its own Philox streams), and rank 0 alone writes the outputs.
#[test]
#[ignore = "needs the mpi build and mpirun: scripts/test.sh runs it"]
fn joint_under_mpirun_is_independent_of_the_rank_count() {
    let t = tools("joint_mpi", &["mpirun"]);
    let d = common::temp_dir("mpi-joint");
    let sim = d.join("sim");
    common::lensdiff_ok(&[
        "simulate",
        "--size",
        "16",
        "--pixel-arcmin",
        "2.34375",
        "--cosmology",
        "--field",
        "gaussian",
        "--seed",
        "4",
        "--out-prefix",
        sim.to_str().unwrap(),
    ]);
    let run = |ranks: &str, out: &Path| {
        let o = Command::new("mpirun")
            .args(["--allow-run-as-root", "--oversubscribe", "-n", ranks])
            .arg(&t.cli)
            .args(["joint", "--gaussian-cosmology", "--sigma", "0.1"])
            .args(["--chains", "5", "--levels", "8", "--e1"])
            .arg(d.join("sim_e1.fits"))
            .arg("--e2")
            .arg(d.join("sim_e2.fits"))
            .arg("--out")
            .arg(out)
            .env("LD_LIBRARY_PATH", library_path_outside_target())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{ranks} ranks: {err}");
        let stdout = String::from_utf8_lossy(&o.stdout).to_string();
        assert_eq!(stdout.matches("joint: 5 chains").count(), 1, "{stdout}");
        stdout
    };
    let (one, three) = (d.join("one"), d.join("three"));
    run("1", &one);
    run("3", &three);
    let theta = |dir: &Path| std::fs::read(dir.join("theta.npy")).unwrap();
    assert_eq!(
        theta(&one),
        theta(&three),
        "theta differs between 1 and 3 ranks"
    );
    let maps = |dir: &Path| lensdiff::io::read_stack(&dir.join("samples.fits")).unwrap();
    assert_eq!(
        maps(&one),
        maps(&three),
        "maps differ between 1 and 3 ranks"
    );
    let summary = std::fs::read_to_string(three.join("summary.json")).unwrap();
    assert!(summary.contains("3 MPI ranks"), "{summary}");
}

/// Joint sampling of parameters and map from C and Fortran under `mpirun`
/// (issue #15, part 6): the C and mpi_f08 examples in their `joint` (exact
/// Gaussian joint prior) and `joint-model` (learned joint prior: C loads the
/// bytes rank 0 broadcast, Fortran the file on every rank) modes write
/// bitwise the same parameters, maps and moments with 1 to 4 ranks (a rank
/// with no chain included), and
/// the `joint` run is the Rust API's.
#[test]
#[ignore = "needs the mpi build and mpirun: scripts/test.sh runs it"]
fn joint_c_and_fortran_examples_are_bitwise_identical_for_1_to_4_ranks() {
    use lensdiff::prior::joint::{GaussianJoint, JointPrior, ParamSpace};
    use lensdiff::sampler::joint_guided::{to_physical, JointGuidedPosterior};
    use lensdiff::sampler::{sample, Guidance, RunSpec, SamplerConfig, SamplerKind};

    let t = tools("joint_examples_mpi", &["mpirun", "mpicc", "mpifort"]);
    let d = common::temp_dir("mpi-joint-examples");
    let (c_exe, f_exe) = build_c_and_fortran_examples(&t, &d);
    let g = lensdiff::Grid::square(48, 1.0).unwrap();
    let space = ParamSpace::new(&["omega_c", "sigma8"], &[0.3, 0.8], &[0.05, 0.05]).unwrap();
    let model = d.join("joint.safetensors");
    common::joint_models::joint_model(lensdiff::prior::DenoiserKind::Hybrid, &space, &g, false, 5)
        .save(&model)
        .unwrap();
    let files = [
        "mean.f32",
        "std.f32",
        "samples.f32",
        "theta.f64",
        "work.txt",
    ];
    for mode in ["joint", "joint-model"] {
        let mut outs = vec![];
        for (lang, exe, n) in [
            ("c", &c_exe, 1),
            ("c", &c_exe, 2),
            ("c", &c_exe, 3),
            // 20 chains in blocks of 8: rank 3 of 4 holds none
            ("c", &c_exe, 4),
            ("fortran", &f_exe, 1),
            ("fortran", &f_exe, 3),
        ] {
            let out = d.join(format!("{mode}-{lang}-{n}"));
            std::fs::create_dir_all(&out).unwrap();
            let mut args = vec![exe.to_str().unwrap(), out.to_str().unwrap(), mode];
            if mode == "joint-model" {
                args.push(model.to_str().unwrap());
            }
            mpirun(n, &args);
            let mut want: Vec<String> = files.iter().map(|f| f.to_string()).collect();
            want.sort();
            assert_eq!(common::listing(&out), want, "{mode} {lang} {n} ranks");
            outs.push((format!("{lang} with {n} ranks"), out));
        }
        let (_, first) = &outs[0];
        assert_eq!(common::read_f64(&first.join("theta.f64")).len(), 40);
        for (what, out) in &outs[1..] {
            for f in files {
                assert!(
                    common::read_bytes(&first.join(f)) == common::read_bytes(&out.join(f)),
                    "{mode}: {f} of {what} differs from C with 1 rank"
                );
            }
        }
    }
    // the exact Gaussian joint prior's run is the Rust API's
    let power = lensdiff::spectrum::ClTable::default_kappa().pixel_power(&g);
    let noise = lensdiff::noise::NoiseModel::uniform(g, 0.05, None).unwrap();
    let data = common::shear_data(&g, &power, noise, 7, 7);
    let r = common::joint_models::default_recipe();
    let prior = GaussianJoint::from_cosmology(&g, &space, &r.base, &r.source, &r.cl).unwrap();
    let post = JointGuidedPosterior::new(&prior, &data, Guidance::Spectral { tol: 1e-4 }).unwrap();
    let cfg = SamplerConfig {
        kind: SamplerKind::from_name("edm").unwrap(),
        levels: 16,
        ..SamplerConfig::default()
    };
    let mut set = sample(
        &post,
        &cfg,
        &RunSpec::new(3, 20).in_batches(4),
        &mut |_, _| {},
    )
    .unwrap();
    let phys = to_physical(prior.space(), prior.sigma_d(), &mut set, None).unwrap();
    let c1 = d.join("joint-c-1");
    assert_eq!(common::read_f64(&c1.join("theta.f64")), phys.theta);
    assert_eq!(common::read_f32(&c1.join("samples.f32")), set.samples);
    assert_eq!(
        common::read_f32(&c1.join("mean.f32")),
        phys.moments.mean_f32()
    );
}

/// The learned map prior under `mpirun` (issue #17): the C example's `model`
/// mode (rank 0 reads the file and broadcasts its bytes) and the Fortran
/// example's (every rank opens the file) write bitwise the same maps and
/// moments with 1 to 4 ranks (a rank with no chain included), and those of
/// the Rust API with the same model, data and seed.
#[test]
#[ignore = "needs the mpi build and mpirun: scripts/test.sh runs it"]
fn learned_prior_c_and_fortran_examples_are_bitwise_identical_for_1_to_4_ranks() {
    use lensdiff::prior::{Denoiser, DenoiserKind, NeuralPrior};
    use lensdiff::sampler::{sample, Guidance, GuidedPosterior, RunSpec, SamplerConfig};
    use lensdiff::spectrum::ClTable;

    let t = tools("model_examples_mpi", &["mpirun", "mpicc", "mpifort"]);
    let d = common::temp_dir("mpi-model-examples");
    let (c_exe, f_exe) = build_c_and_fortran_examples(&t, &d);
    let g = lensdiff::Grid::square(48, 1.0).unwrap();
    // a small hybrid network with random weights (scale 0.3), 1' pixels
    let den = common::map_models::tiny_map_model(DenoiserKind::Hybrid, 1.0, 2, 0.3, 21);
    let model = d.join("map.safetensors");
    den.save(&model).unwrap();
    let files = ["mean.f32", "std.f32", "samples.f32", "work.txt"];
    let mut outs = vec![];
    for (lang, exe, n) in [
        ("c", &c_exe, 1),
        ("c", &c_exe, 2),
        ("c", &c_exe, 3),
        // 20 chains in blocks of 8: rank 3 of 4 holds none
        ("c", &c_exe, 4),
        ("fortran", &f_exe, 1),
        ("fortran", &f_exe, 3),
    ] {
        let out = d.join(format!("model-{lang}-{n}"));
        std::fs::create_dir_all(&out).unwrap();
        mpirun(
            n,
            &[
                exe.to_str().unwrap(),
                out.to_str().unwrap(),
                "model",
                model.to_str().unwrap(),
            ],
        );
        let mut want: Vec<String> = files.iter().map(|f| f.to_string()).collect();
        want.sort();
        assert_eq!(common::listing(&out), want, "{lang} {n} ranks");
        outs.push((format!("{lang} with {n} ranks"), out));
    }
    let (_, first) = &outs[0];
    for (what, out) in &outs[1..] {
        for f in files {
            assert!(
                common::read_bytes(&first.join(f)) == common::read_bytes(&out.join(f)),
                "{f} of {what} differs from C with 1 rank"
            );
        }
    }
    // the Rust API with the same model, data and seed
    let power = ClTable::default_kappa().pixel_power(&g);
    let noise = lensdiff::noise::NoiseModel::uniform(g, 0.05, None).unwrap();
    let data = common::shear_data(&g, &power, noise, 7, 7);
    let prior = NeuralPrior::new(Denoiser::load(&model).unwrap(), g).unwrap();
    let post = GuidedPosterior::new(&prior, &data, Guidance::Spectral { tol: 1e-4 }).unwrap();
    let cfg = SamplerConfig {
        levels: 16,
        ..SamplerConfig::default()
    };
    let set = sample(
        &post,
        &cfg,
        &RunSpec::new(3, 20).in_batches(4),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(common::read_f32(&first.join("samples.f32")), set.samples);
    assert_eq!(
        common::read_f32(&first.join("mean.f32")),
        set.moments().mean_f32()
    );
}
