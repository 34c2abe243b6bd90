//! The `lensdiff` command line, end to end.

mod common;

use std::path::Path;

use common::{lensdiff, lensdiff_ok as ok};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Width and height of a PNG file.
fn png_size(p: &Path) -> (u32, u32) {
    let (w, h, _, _) = common::png_header(&common::read_bytes(p));
    (w, h)
}

#[test]
fn simulate_ks_wiener_spectrum_pipeline() {
    let d = common::temp_dir("cli-pipeline");
    let prefix = d.join("sim");
    let out = ok(&[
        "simulate",
        "--size",
        "64",
        "--pixel-arcmin",
        "2",
        "--field",
        "lognormal",
        "--seed",
        "3",
        "--out-prefix",
        s(&prefix),
        "--png",
        s(&d.join("sim.png")),
    ]);
    assert!(out.contains("log-normal"), "{out}");
    let e1 = d.join("sim_e1.fits");
    let e2 = d.join("sim_e2.fits");
    for f in ["kappa", "e1", "e2", "std1", "std2", "mask"] {
        assert!(d.join(format!("sim_{f}.fits")).exists(), "{f}");
    }
    let (w, h) = png_size(&d.join("sim.png"));
    assert!(w > 600 && h > 200);
    // KS reads the pixel size from the WCS the simulation wrote
    let out = ok(&[
        "ks",
        "--e1",
        s(&e1),
        "--e2",
        s(&e2),
        "--smooth",
        "1",
        "--out-e",
        s(&d.join("ke.npy")),
        "--out-b",
        s(&d.join("kb.fits")),
    ]);
    assert!(out.contains("2.000'/px"), "{out}");
    let ke = lensdiff::io::read_map(&d.join("ke.npy"), Some([64, 64])).unwrap();
    assert!(ke.iter().any(|&v| v != 0.0));
    let out = ok(&[
        "wiener",
        "--e1",
        s(&e1),
        "--e2",
        s(&e2),
        "--std1",
        s(&d.join("sim_std1.fits")),
        "--std2",
        s(&d.join("sim_std2.fits")),
        "--out",
        s(&d.join("wf.fits")),
        "--png",
        s(&d.join("wf.png")),
    ]);
    assert!(out.contains("iterations"), "{out}");
    // the Wiener map correlates with the truth better than KS without smoothing
    let truth: Vec<f32> = lensdiff::io::read_map(&d.join("sim_kappa.fits"), None)
        .unwrap()
        .iter()
        .copied()
        .collect();
    let wf: Vec<f32> = lensdiff::io::read_map(&d.join("wf.fits"), None)
        .unwrap()
        .iter()
        .copied()
        .collect();
    let r = lensdiff::metrics::pearson(&wf, &truth, None).unwrap();
    ok(&[
        "ks",
        "--e1",
        s(&e1),
        "--e2",
        s(&e2),
        "--out-e",
        s(&d.join("ke_raw.npy")),
    ]);
    let ks: Vec<f32> = lensdiff::io::read_map(&d.join("ke_raw.npy"), None)
        .unwrap()
        .iter()
        .copied()
        .collect();
    let r_ks = lensdiff::metrics::pearson(&ks, &truth, None).unwrap();
    // one fixed simulation (seed 3): the comparison is deterministic (measured
    // r = 0.70 for the Wiener map, 0.61 for unsmoothed KS)
    assert!(
        r > r_ks && r > 0.3,
        "Wiener r = {r}, unsmoothed KS r = {r_ks}"
    );
    let out = ok(&[
        "spectrum",
        "--map",
        s(&d.join("sim_kappa.fits")),
        "--bins",
        "8",
        "--out",
        s(&d.join("cl.txt")),
        "--png",
        s(&d.join("cl.png")),
    ]);
    let t = lensdiff::spectrum::ClTable::read(&d.join("cl.txt")).unwrap();
    assert!(t.ell().len() >= 6);
    assert!(out.contains(&format!("{} bins", t.ell().len())), "{out}");
    png_size(&d.join("cl.png"));
}

#[test]
fn simulate_stack_in_npy_and_spectrum_of_the_stack() {
    let d = common::temp_dir("cli-stack");
    let prefix = d.join("g");
    ok(&[
        "simulate",
        "--size",
        "32",
        "--field",
        "gaussian",
        "--count",
        "3",
        "--format",
        "npy",
        "--out-prefix",
        s(&prefix),
    ]);
    let a = lensdiff::io::read_stack(&d.join("g_kappa.npy")).unwrap();
    assert_eq!(a.dim(), (3, 32, 32));
    // map 1 of the stack equals map 1 of any other count: the seed is per map
    ok(&[
        "simulate",
        "--size",
        "32",
        "--field",
        "gaussian",
        "--count",
        "2",
        "--format",
        "npy",
        "--out-prefix",
        s(&d.join("h")),
    ]);
    let b = lensdiff::io::read_stack(&d.join("h_kappa.npy")).unwrap();
    assert_eq!(
        a.index_axis(ndarray::Axis(0), 1),
        b.index_axis(ndarray::Axis(0), 1)
    );
    let out = ok(&[
        "spectrum",
        "--map",
        s(&d.join("g_kappa.npy")),
        "--pixel-arcmin",
        "1",
        "--bins",
        "5",
    ]);
    assert!(out.contains("3 map(s)"), "{out}");
}

#[test]
fn demo_writes_its_figures() {
    let d = common::temp_dir("cli-demo");
    let out = ok(&[
        "demo",
        "--out",
        s(&d),
        "--size",
        "64",
        "--chains",
        "4",
        "--batch",
        "4",
    ]);
    // the printed table: "  <estimator>  <RMSE>  <r>"; the orderings that hold
    // for any field (a mean of 4 chains has a quarter of one sample's
    // posterior variance; the Wiener filter is the optimal linear estimator),
    // not the learned prior's small gain, which depends on the field
    let rmse = |row: &str| -> f64 {
        out.lines()
            .find_map(|l| {
                let mut t: Vec<&str> = l.split_whitespace().collect();
                let _r = t.pop()?;
                let e = t.pop()?.parse::<f64>().ok()?;
                (t.join(" ") == row).then_some(e)
            })
            .unwrap_or_else(|| panic!("row {row:?} missing:\n{out}"))
    };
    let order = |better: &str, worse: &str| {
        assert!(
            rmse(better) < rmse(worse),
            "RMSE of {better} {} not below {worse}'s {}:\n{out}",
            rmse(better),
            rmse(worse)
        )
    };
    order("Wiener filter", "Kaiser-Squires, 2 px");
    order("Wiener filter", "one posterior sample");
    order("posterior mean", "one posterior sample");
    order("neural-prior mean", "one neural-prior sample");
    // the Gaussian prior's posterior mean is the Wiener filter plus the chains' noise
    assert!(
        rmse("posterior mean") < 1.5 * rmse("Wiener filter"),
        "{out}"
    );
    let (w, h) = png_size(&d.join("demo.png"));
    assert!(w > 900 && h > 700, "{w}x{h}");
    for f in ["wiener.fits", "mean.fits", "std.fits", "samples.fits"] {
        assert!(d.join(f).exists(), "{f}");
    }
    let samples = lensdiff::io::read_stack(&d.join("samples.fits")).unwrap();
    assert_eq!(samples.dim(), (4, 64, 64));
    let neural = lensdiff::io::read_stack(&d.join("neural_samples.fits")).unwrap();
    assert_eq!(neural.dim(), (4, 64, 64));
}

#[test]
fn train_writes_a_model_that_resumes_and_samples() {
    let d = common::temp_dir("cli-train");
    let model = d.join("m.safetensors");
    let ckpt = d.join("m.ckpt.safetensors");
    let train = |steps: &str, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--simulate",
            "lognormal",
            "--steps",
            steps,
            "--batch",
            "2",
            "--crop",
            "16",
            "--heldout",
            "2",
            "--channels",
            "8,16",
            "--eval-every",
            "0",
            "--out",
            s(&model),
        ];
        args.extend_from_slice(extra);
        lensdiff(&args)
    };
    let o = train("4", &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("held-out MSE") && err.contains("Wiener"),
        "{err}"
    );
    let den = lensdiff::prior::Denoiser::load(&model).unwrap();
    assert_eq!(den.unet().config().channels, vec![8, 16]);
    assert_eq!(den.meta().kind, lensdiff::prior::DenoiserKind::Hybrid);
    // resume to 6 steps
    let o = train("6", &["--resume", s(&ckpt)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("resumed"));
    // resuming on other data is refused with one line
    let o = train("8", &["--resume", s(&ckpt), "--data-seed", "9"]);
    assert!(!o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stderr)
            .trim_end()
            .lines()
            .count(),
        1
    );
    // sample with the trained model
    let grid = lensdiff::Grid::square(16, 0.5).unwrap();
    let kappa = vec![0.0f32; grid.len()];
    let e = d.join("e.npy");
    lensdiff::io::write_array(
        &e,
        ndarray::ArrayView2::from_shape((16, 16), &kappa)
            .unwrap()
            .into_dyn(),
        None,
    )
    .unwrap();
    let out = d.join("post");
    let o = lensdiff(&[
        "sample",
        "--e1",
        s(&e),
        "--e2",
        s(&e),
        "--sigma",
        "0.05",
        "--pixel-arcmin",
        "0.5",
        "--model",
        s(&model),
        "--chains",
        "2",
        "--levels",
        "8",
        "--out",
        s(&out),
        "--format",
        "npy",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = std::fs::read_to_string(out.join("summary.json")).unwrap();
    assert!(summary.contains("neural-hybrid"), "{summary}");
    // a stack with a NaN is refused by name
    let bad = d.join("bad.npy");
    let mut m = ndarray::Array3::<f32>::zeros((3, 16, 16));
    m[[1, 2, 3]] = f32::NAN;
    lensdiff::io::write_array(&bad, m.view().into_dyn(), None).unwrap();
    let o = lensdiff(&[
        "train",
        "--data",
        s(&bad),
        "--crop",
        "16",
        "--heldout",
        "1",
        "--out",
        s(&model),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("non-finite"), "{err}");
}

#[test]
fn bad_input_exits_nonzero_with_one_line() {
    let d = common::temp_dir("cli-bad");
    let mut cases: Vec<Vec<String>> = vec![
        vec![
            "ks".into(),
            "--e1".into(),
            "/nonexistent/e1.fits".into(),
            "--e2".into(),
            "x.fits".into(),
            "--out-e".into(),
            "o.fits".into(),
        ],
        vec![
            "simulate".into(),
            "--size".into(),
            "1".into(),
            "--out-prefix".into(),
            s(&d.join("p")).into(),
        ],
        vec![
            "simulate".into(),
            "--pixel-arcmin=-1".into(),
            "--out-prefix".into(),
            s(&d.join("p")).into(),
        ],
        vec![
            "simulate".into(),
            "--size".into(),
            "16".into(),
            "--out-prefix".into(),
            s(&d.join("p.txt")).into(),
            "--format".into(),
            "npy".into(),
            "--lambda".into(),
            "0".into(),
        ],
    ];
    cases.push(vec!["ks".into(), "--no-such-flag".into()]);
    for c in &cases {
        let args: Vec<&str> = c.iter().map(|x| x.as_str()).collect();
        let o = lensdiff(&args);
        assert!(!o.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.starts_with("lensdiff: error:"), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    // a map with a NaN is rejected by name
    let nan = d.join("nan.npy");
    let mut m = ndarray::Array2::<f32>::zeros((8, 8));
    m[[2, 3]] = f32::NAN;
    lensdiff::io::write_array(&nan, m.view().into_dyn(), None).unwrap();
    let o = lensdiff(&[
        "ks",
        "--e1",
        s(&nan),
        "--e2",
        s(&nan),
        "--pixel-arcmin",
        "1",
        "--out-e",
        s(&d.join("o.npy")),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("non-finite"));
    // a map without WCS needs --pixel-arcmin
    let z = d.join("z.npy");
    lensdiff::io::write_array(
        &z,
        ndarray::Array2::<f32>::zeros((8, 8)).view().into_dyn(),
        None,
    )
    .unwrap();
    let o = lensdiff(&[
        "ks",
        "--e1",
        s(&z),
        "--e2",
        s(&z),
        "--out-e",
        s(&d.join("o.npy")),
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--pixel-arcmin"));
}

#[test]
fn help_documents_every_subcommand() {
    let top = ok(&["--help"]);
    for c in [
        "bin", "ks", "wiener", "simulate", "spectrum", "sample", "joint", "train", "demo", "bench",
    ] {
        assert!(top.contains(c), "{c} missing from --help");
        let h = ok(&[c, "--help"]);
        assert!(h.contains("--"), "{c} --help lists no flags");
    }
    assert!(ok(&["wiener", "--help"]).contains("--tol"));
    // `sample` says which priors it has and how each is chosen (issue #12:
    // a one-valued `--prior gaussian` flag, and help that said Gaussian only)
    let sample = ok(&["sample", "--help"]);
    assert!(!sample.contains("--prior"), "{sample}");
    for flag in ["--cl", "--model"] {
        assert!(sample.contains(flag), "{flag} missing from sample --help");
    }
    let line = top
        .lines()
        .find(|l| l.trim_start().starts_with("sample"))
        .expect("sample in --help");
    assert!(line.contains("--model"), "{line}");
}

/// Writes `data` as an npy array of `shape`.
fn write_npy(path: &Path, data: &[f32], shape: &[usize]) {
    lensdiff::io::write_array(
        path,
        ndarray::ArrayViewD::from_shape(shape, data).unwrap(),
        None,
    )
    .unwrap();
}

/// `wiener` and `sample` flatten the same shear-input, grid and noise flag
/// groups: every bad combination of those flags is refused by both, with the
/// same exit status and the same one-line message.
#[test]
fn wiener_and_sample_refuse_the_same_input_flags_alike() {
    let d = common::temp_dir("cli-shared-flags");
    let map = d.join("zero.npy");
    write_npy(&map, &[0.0; 64], &[8, 8]);
    let m = s(&map);
    let missing = d.join("no-catalogue");
    let c = s(&missing);
    let maps = ["--e1", m, "--e2", m];
    let with = |extra: &[&'static str]| -> Vec<&str> {
        maps.iter()
            .chain(extra.iter())
            .copied()
            .collect::<Vec<&str>>()
    };
    // (flags, what the message names, exit status)
    let cases: Vec<(Vec<&str>, Vec<&str>, i32)> = vec![
        // a missing required input
        (vec![], vec!["not provided", "--e1", "--catalogue"], 2),
        (
            vec!["--e1", m, "--sigma", "0.1"],
            vec!["not provided", "--e2"],
            2,
        ),
        (
            vec!["--e2", m, "--sigma", "0.1"],
            vec!["not provided", "--e1"],
            2,
        ),
        (with(&[]), vec!["not provided", "--std1", "--sigma"], 2),
        (with(&["--std2", "x"]), vec!["not provided", "--std1"], 2),
        (
            vec!["--catalogue", c],
            vec!["not provided", "--pixel-arcmin"],
            2,
        ),
        // conflicting pairs
        (
            with(&["--std1", "a", "--std2", "b", "--sigma", "0.1"]),
            vec!["cannot be used with", "--std1", "--sigma"],
            2,
        ),
        (
            vec![
                "--e2", m, "--std1", "a", "--std2", "b", "--sigma", "0.1", "--e1", m,
            ],
            vec!["cannot be used with", "--std1", "--sigma"],
            2,
        ),
        (
            with(&[
                "--sigma",
                "0.1",
                "--catalogue",
                "cat",
                "--pixel-arcmin",
                "1",
            ]),
            vec!["cannot be used with", "--e1", "--catalogue"],
            2,
        ),
        (
            vec!["--catalogue", c, "--pixel-arcmin", "1", "--sigma", "0.1"],
            vec!["cannot be used with", "--catalogue", "--sigma"],
            2,
        ),
        (
            vec!["--catalogue", c, "--pixel-arcmin", "1", "--mask", m],
            vec!["cannot be used with", "--catalogue", "--mask"],
            2,
        ),
        (
            vec![
                "--catalogue",
                c,
                "--pixel-arcmin",
                "1",
                "--std1",
                m,
                "--std2",
                m,
            ],
            vec!["cannot be used with", "--catalogue", "--std1"],
            2,
        ),
        (
            with(&["--sigma", "0.1", "--size", "64"]),
            vec!["cannot be used with", "--e1", "--size"],
            2,
        ),
        (
            with(&["--sigma", "0.1", "--plate"]),
            vec!["cannot be used with", "--e1", "--plate"],
            2,
        ),
        // refused on reading: no WCS for the pixel size, no catalogue there
        (with(&["--sigma", "0.1"]), vec!["--pixel-arcmin", "WCS"], 1),
        (
            vec!["--catalogue", c, "--pixel-arcmin", "1"],
            vec!["no-catalogue"],
            1,
        ),
    ];
    let outs = [("wiener", d.join("wf.fits")), ("sample", d.join("run"))];
    for (flags, names, status) in &cases {
        let mut messages = Vec::new();
        for (cmd, out) in &outs {
            let mut args = vec![*cmd];
            args.extend(flags.iter().copied());
            args.extend(["--out", s(out)]);
            let o = lensdiff(&args);
            let err = String::from_utf8_lossy(&o.stderr).into_owned();
            assert_eq!(o.status.code(), Some(*status), "{args:?}: {err}");
            assert!(err.starts_with("lensdiff: error:"), "{args:?}: {err}");
            assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
            for n in names {
                assert!(err.contains(n), "{args:?}: {n} missing from {err}");
            }
            messages.push(err);
        }
        assert_eq!(messages[0], messages[1], "{flags:?}");
    }
    for (_, out) in &outs {
        assert!(!out.exists(), "{} written", out.display());
    }
}

/// `observed_pixels`, `pixel_arcmin` and `grid` of a `sample` run's summary.json.
fn summary_geometry(dir: &Path) -> (u64, f64, Vec<u64>) {
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let grid = doc["grid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    (
        doc["observed_pixels"].as_u64().unwrap(),
        doc["pixel_arcmin"].as_f64().unwrap(),
        grid,
    )
}

/// The observed pixels that `wiener` reports.
fn wiener_observed(out: &str) -> u64 {
    let head = out.split(" observed pixels").next().unwrap();
    head.rsplit(' ').next().unwrap().parse().unwrap()
}

/// The same maps, or the same catalogue, give `wiener` and `sample` the same
/// grid, mask and WCS: one flag group builds the input of both.
#[test]
fn wiener_and_sample_read_maps_and_catalogues_alike() {
    let d = common::temp_dir("cli-shared-input");
    // maps without WCS: --pixel-arcmin, a uniform --sigma and a --mask
    let n = 12;
    let (e1, e2, mask) = (d.join("e1.npy"), d.join("e2.npy"), d.join("mask.npy"));
    let mut r = common::SplitMix(5);
    let shear = |r: &mut common::SplitMix| -> Vec<f32> {
        (0..n * n).map(|_| 0.05 * r.next() as f32).collect()
    };
    write_npy(&e1, &shear(&mut r), &[n, n]);
    write_npy(&e2, &shear(&mut r), &[n, n]);
    let m: Vec<f32> = (0..n * n).map(|i| (i % 5 != 0) as u8 as f32).collect();
    let observed = m.iter().filter(|&&v| v != 0.0).count() as u64;
    write_npy(&mask, &m, &[n, n]);
    let input = [
        "--e1",
        s(&e1),
        "--e2",
        s(&e2),
        "--pixel-arcmin",
        "2",
        "--sigma",
        "0.1",
        "--mask",
        s(&mask),
    ];
    let sampler = ["--chains", "2", "--levels", "4"];
    let run = |cmd: &str, input: &[&str], out: &Path| -> String {
        let mut args = vec![cmd];
        args.extend_from_slice(input);
        if cmd == "sample" {
            args.extend_from_slice(&sampler);
        }
        args.extend(["--out", s(out)]);
        ok(&args)
    };
    let out = run("wiener", &input, &d.join("wf.npy"));
    assert_eq!(wiener_observed(&out), observed, "{out}");
    run("sample", &input, &d.join("run"));
    assert_eq!(
        summary_geometry(&d.join("run")),
        (observed, 2.0, vec![n as u64, n as u64])
    );
    // a catalogue in the COSMOS layout, binned on the fly by both commands
    let cat = d.join("cat");
    std::fs::create_dir_all(&cat).unwrap();
    let galaxies = 3000;
    let (ra0, dec0) = (150.0, 2.0);
    let column = |r: &mut common::SplitMix, centre: f64, half: f64| -> Vec<f32> {
        (0..galaxies)
            .map(|_| (centre + half * r.next()) as f32)
            .collect()
    };
    // within 5' of the centre (RA and Dec offsets in degrees, plate projection)
    let ra = column(&mut r, ra0, 5.0 / 60.0);
    let dec = column(&mut r, dec0, 5.0 / 60.0);
    let g1 = column(&mut r, 0.0, 0.1);
    let g2 = column(&mut r, 0.0, 0.1);
    for (name, v) in [
        ("ra", ra),
        ("dec", dec),
        ("e1", g1),
        ("e2", g2),
        ("nhweight_int", vec![1.0; galaxies]),
    ] {
        lensdiff::io::write_array(
            &cat.join(format!("{name}.fits")),
            ndarray::ArrayView1::from(&v).into_dyn(),
            None,
        )
        .unwrap();
    }
    let input = [
        "--catalogue",
        s(&cat),
        "--pixel-arcmin",
        "1",
        "--size",
        &n.to_string(),
        "--plate",
    ]
    .map(String::from);
    let input: Vec<&str> = input.iter().map(|x| x.as_str()).collect();
    let out = run("wiener", &input, &d.join("wf.fits"));
    let observed = wiener_observed(&out);
    // the 10' square of galaxies fills the central pixels, not the 12' grid
    assert!(observed > 80 && observed < (n * n) as u64, "{out}");
    run("sample", &input, &d.join("run-cat"));
    assert_eq!(
        summary_geometry(&d.join("run-cat")),
        (observed, 1.0, vec![n as u64, n as u64])
    );
    let wcs = |p: &Path| lensdiff::io::fits::read_wcs(p).unwrap().unwrap();
    let (a, b) = (wcs(&d.join("wf.fits")), wcs(&d.join("run-cat/mean.fits")));
    assert_eq!((a.crval, a.cdelt), (b.crval, b.cdelt));
    assert!((a.crval[0] - ra0).abs() < 0.01 && (a.crval[1] - dec0).abs() < 0.01);
    assert!((a.cdelt[1] * 60.0 - 1.0).abs() < 1e-9);
}

/// Tests on ../shared/data: scripts/test.sh runs them when the folder exists.
mod needs_data {
    use super::*;

    #[test]
    #[ignore = "needs ../shared/data: scripts/test.sh runs it when present"]
    fn bin_reproduces_the_cosmos_maps() {
        let data = common::shared_data("bin_reproduces_the_cosmos_maps");
        let d = common::temp_dir("cli-bin");
        let prefix = d.join("cosmos");
        let out = ok(&[
            "bin",
            "--cosmos",
            s(&data.join("cosmos")),
            "--pixel-arcmin",
            "0.29",
            "--size",
            "360",
            "--projection",
            "plate",
            "--out-prefix",
            s(&prefix),
            "--png",
            s(&d.join("bin.png")),
        ]);
        assert!(out.contains("417117 galaxies"), "{out}");
        assert!(out.contains("69191 observed"), "{out}");
        let ours = lensdiff::io::read_map(&d.join("cosmos_e1.fits"), Some([360, 360])).unwrap();
        let reference = lensdiff::io::read_map(
            &data.join("cosmos/cosmos_full_e1_0.29arcmin360.fits"),
            Some([360, 360]),
        )
        .unwrap();
        let diff = ours
            .iter()
            .zip(reference.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-6, "{diff}");
        // the written FITS carries the TAN WCS of the field
        let wcs = lensdiff::io::fits::read_wcs(&d.join("cosmos_e1.fits"))
            .unwrap()
            .unwrap();
        assert!((wcs.crval[0] - 150.116).abs() < 1e-3 && (wcs.cdelt[1] * 60.0 - 0.29).abs() < 1e-9);
    }
}

#[test]
fn sample_writes_samples_summary_and_figure() {
    let d = common::temp_dir("cli-sample");
    let prefix = d.join("sim");
    ok(&[
        "simulate",
        "--size",
        "48",
        "--pixel-arcmin",
        "1",
        "--field",
        "gaussian",
        "--seed",
        "2",
        "--out-prefix",
        s(&prefix),
    ]);
    let out_dir = d.join("run");
    let out = ok(&[
        "sample",
        "--e1",
        s(&d.join("sim_e1.fits")),
        "--e2",
        s(&d.join("sim_e2.fits")),
        "--std1",
        s(&d.join("sim_std1.fits")),
        "--std2",
        s(&d.join("sim_std2.fits")),
        "--chains",
        "3",
        "--batch",
        "2",
        "--levels",
        "16",
        "--out",
        s(&out_dir),
    ]);
    assert!(out.contains("3 chains"), "{out}");
    let samples = lensdiff::io::read_stack(&out_dir.join("samples.fits")).unwrap();
    assert_eq!(samples.dim(), (3, 48, 48));
    let mean = lensdiff::io::read_map(&out_dir.join("mean.fits"), Some([48, 48])).unwrap();
    // the mean map is the mean of the samples
    let m0: f32 = (0..3).map(|c| samples[[c, 10, 20]]).sum::<f32>() / 3.0;
    assert!((mean[[10, 20]] - m0).abs() < 1e-6);
    // the WCS of the input is carried to the outputs
    let wcs = lensdiff::io::fits::read_wcs(&out_dir.join("std.fits"))
        .unwrap()
        .unwrap();
    assert!((wcs.cdelt[1] * 60.0 - 1.0).abs() < 1e-9);
    let summary = std::fs::read_to_string(out_dir.join("summary.json")).unwrap();
    for key in [
        "\"nfe_per_chain\": 30",
        "\"chains\": 3",
        "\"guidance\": \"spectral\"",
        "chi2_per_dof",
    ] {
        assert!(summary.contains(key), "{key} missing from {summary}");
    }
    png_size(&out_dir.join("figure.png"));
    // the same seed gives the same samples whatever the batch size
    let out2 = d.join("run2");
    ok(&[
        "sample",
        "--e1",
        s(&d.join("sim_e1.fits")),
        "--e2",
        s(&d.join("sim_e2.fits")),
        "--std1",
        s(&d.join("sim_std1.fits")),
        "--std2",
        s(&d.join("sim_std2.fits")),
        "--chains",
        "3",
        "--batch",
        "3",
        "--levels",
        "16",
        "--out",
        s(&out2),
        "--format",
        "npy",
    ]);
    let again = lensdiff::io::read_stack(&out2.join("samples.npy")).unwrap();
    assert_eq!(samples, again);
    // bad settings are one-line errors
    let o = lensdiff(&[
        "sample",
        "--e1",
        s(&d.join("sim_e1.fits")),
        "--e2",
        s(&d.join("sim_e2.fits")),
        "--sigma",
        "0.1",
        "--chains",
        "0",
        "--out",
        s(&d.join("run3")),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("lensdiff: error:"));
}

#[test]
fn sample_on_a_missing_gpu_fails_with_one_clear_line_and_unknown_devices_are_rejected() {
    let d = common::temp_dir("cli-device");
    let prefix = d.join("sim");
    ok(&[
        "simulate",
        "--size",
        "16",
        "--pixel-arcmin",
        "1",
        "--seed",
        "2",
        "--out-prefix",
        s(&prefix),
    ]);
    let args = |dev: &'static str| {
        vec![
            "sample".to_string(),
            "--e1".into(),
            s(&d.join("sim_e1.fits")).into(),
            "--e2".into(),
            s(&d.join("sim_e2.fits")).into(),
            "--sigma".into(),
            "0.05".into(),
            "--chains".into(),
            "1".into(),
            "--levels".into(),
            "4".into(),
            "--out".into(),
            s(&d.join("run")).into(),
            "--device".into(),
            dev.into(),
        ]
    };
    let run = |dev| {
        let a = args(dev);
        let v: Vec<&str> = a.iter().map(|x| x.as_str()).collect();
        lensdiff(&v)
    };
    let o = run("tpu:0");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown device"));
    if lensdiff::backend::cuda::Cuda::new(0).is_err() {
        let o = run("cuda:0");
        assert!(!o.status.success());
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("cuda:0") && e.contains("LD_LIBRARY_PATH"), "{e}");
        assert_eq!(e.trim().lines().count(), 1, "{e}");
    }
    // the CPU still works with the flag
    let o = run("cpu");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn bench_times_the_cpu_exports_the_problem_and_writes_json() {
    let d = common::temp_dir("cli-bench");
    let json = d.join("bench.json");
    let out = ok(&[
        "bench",
        "--devices",
        "cpu",
        "--batch",
        "1",
        "--levels",
        "3",
        "--kernels",
        "--kernel-maps",
        "1",
        "--export",
        s(&d.join("problem")),
        "--json",
        s(&json),
    ]);
    assert!(out.contains("samples/s") && out.contains("axpby"), "{out}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let r = &doc["results"][0];
    assert_eq!(r["batch"], 1);
    assert_eq!(r["nfe"], 4);
    assert!(r["samples_per_s"].as_f64().unwrap() > 0.0);
    assert!(doc["kernels"].as_array().unwrap().len() >= 25);
    for f in [
        "g1.npy",
        "g2.npy",
        "w1.npy",
        "w2.npy",
        "power.npy",
        "p1.npy",
        "p2.npy",
        "levels.npy",
        "mean.npy",
        "std.npy",
        "config.json",
    ] {
        assert!(d.join("problem").join(f).is_file(), "{f}");
    }
    let levels = lensdiff::io::npy::read_f64(&d.join("problem/levels.npy")).unwrap();
    assert_eq!(levels.len(), 3);
    let power = lensdiff::io::npy::read_f64(&d.join("problem/power.npy")).unwrap();
    assert_eq!(power.shape(), &[360, 181]);
}

/// `lensdiff train --joint` writes a joint model and a checkpoint, and
/// `lensdiff joint --model` samples with it (a pure model's guidance takes its
/// Gaussian model from the model's cosmology); misuse is one line each.
#[test]
fn train_joint_then_sample_with_the_learned_joint_prior() {
    let d = common::temp_dir("cli-train-joint");
    let model = d.join("joint.safetensors");
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--joint",
            "--simulate",
            "gaussian",
            "--crop",
            "16",
            "--pixel-arcmin",
            "2.34375",
            "--channels",
            "4,8",
            "--kind",
            "pure",
            "--steps",
            "6",
            "--batch",
            "2",
            "--heldout",
            "2",
            "--eval-every",
            "0",
        ];
        args.extend_from_slice(extra);
        lensdiff(&args)
    };
    let o = train(&["--out", s(&model)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("exact Gaussian joint denoiser") && err.contains("theta"),
        "{err}"
    );
    assert!(d.join("joint.ckpt.safetensors").exists());
    let den = lensdiff::prior::joint::JointDenoiser::load(&model).unwrap();
    assert_eq!(den.space().names(), ["omega_c", "sigma8"]);
    ok(&[
        "simulate",
        "--size",
        "16",
        "--pixel-arcmin",
        "2.34375",
        "--cosmology",
        "--field",
        "gaussian",
        "--seed",
        "2",
        "--out-prefix",
        s(&d.join("sim")),
    ]);
    let out = d.join("run");
    let stdout = ok(&[
        "joint",
        "--model",
        s(&model),
        "--e1",
        s(&d.join("sim_e1.fits")),
        "--e2",
        s(&d.join("sim_e2.fits")),
        "--std1",
        s(&d.join("sim_std1.fits")),
        "--std2",
        s(&d.join("sim_std2.fits")),
        "--chains",
        "2",
        "--levels",
        "8",
        "--out",
        s(&out),
    ]);
    assert!(
        stdout.contains("2 chains") && stdout.contains("sigma8 = "),
        "{stdout}"
    );
    let theta = lensdiff::io::npy::read_f64(&out.join("theta.npy")).unwrap();
    assert_eq!(theta.shape(), &[2, 2]);
    assert!(theta.iter().all(|v| v.is_finite()));
    let summary = std::fs::read_to_string(out.join("summary.json")).unwrap();
    assert!(summary.contains("learned joint (pure"), "{summary}");
    // misuse
    for (o, needle) in [
        (
            train(&["--data", "maps.npy", "--out", "x.safetensors"]),
            "--data",
        ),
        (
            lensdiff(&[
                "joint",
                "--model",
                s(&model),
                "--e1",
                s(&d.join("sim_e1.fits")),
                "--e2",
                s(&d.join("sim_e2.fits")),
                "--std1",
                s(&d.join("sim_std1.fits")),
                "--std2",
                s(&d.join("sim_std2.fits")),
                "--param",
                "w0=-1,0.3",
                "--out",
                s(&d.join("bad")),
            ]),
            "drop --param",
        ),
    ] {
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
}

/// `lensdiff joint` (issue #15, part 5): theta samples in npy and CSV with the
/// parameter names, the corner plot, the maps and summary.json; the same seed
/// gives the same chains whatever the batch; bad parameter flags are one-line
/// errors.
#[test]
fn joint_writes_theta_corner_maps_and_summary() {
    let d = common::temp_dir("cli-joint");
    let prefix = d.join("sim");
    ok(&[
        "simulate",
        "--size",
        "32",
        "--pixel-arcmin",
        "2.34375",
        "--cosmology",
        "--field",
        "gaussian",
        "--seed",
        "4",
        "--out-prefix",
        s(&prefix),
    ]);
    let data = [
        "--e1",
        s(&d.join("sim_e1.fits")),
        "--e2",
        s(&d.join("sim_e2.fits")),
        "--std1",
        s(&d.join("sim_std1.fits")),
        "--std2",
        s(&d.join("sim_std2.fits")),
    ]
    .map(String::from);
    let run = |out: &Path, extra: &[&str]| {
        let mut args: Vec<String> = vec!["joint".into(), "--gaussian-cosmology".into()];
        args.extend(data.iter().cloned());
        args.extend(extra.iter().map(|v| v.to_string()));
        args.extend(["--out".to_string(), s(out).to_string()]);
        lensdiff(&args.iter().map(|v| v.as_str()).collect::<Vec<_>>())
    };
    let out_dir = d.join("run");
    let o = run(
        &out_dir,
        &[
            "--chains",
            "4",
            "--batch",
            "2",
            "--levels",
            "12",
            "--truth",
            "omega_c=0.2664",
            "--truth",
            "sigma8=0.831",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("4 chains") && stdout.contains("omega_c = "),
        "{stdout}"
    );
    let theta = lensdiff::io::npy::read_f64(&out_dir.join("theta.npy")).unwrap();
    assert_eq!(theta.shape(), &[4, 2]);
    assert!(theta.iter().all(|v| v.is_finite()));
    let csv = std::fs::read_to_string(out_dir.join("theta.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "chain,omega_c,sigma8");
    assert_eq!(lines.len(), 5);
    let first: Vec<f64> = lines[1]
        .split(',')
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    assert!((first[0] - theta[[0, 0]]).abs() < 1e-7 * theta[[0, 0]].abs());
    png_size(&out_dir.join("corner.png"));
    png_size(&out_dir.join("figure.png"));
    let samples = lensdiff::io::read_stack(&out_dir.join("samples.fits")).unwrap();
    assert_eq!(samples.dim(), (4, 32, 32));
    let summary = std::fs::read_to_string(out_dir.join("summary.json")).unwrap();
    for key in [
        "\"sampler\": \"edm-stochastic\"",
        "\"guidance\": \"spectral\"",
        "\"name\": \"sigma8\"",
        "\"correlation\"",
        "\"q84\"",
        "\"nfe_per_chain\": 22",
    ] {
        assert!(summary.contains(key), "{key} missing from {summary}");
    }
    // the same seed, another batch size: the same theta
    let again = d.join("run2");
    let o = run(
        &again,
        &[
            "--chains",
            "4",
            "--batch",
            "4",
            "--levels",
            "12",
            "--no-samples",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let theta2 = lensdiff::io::npy::read_f64(&again.join("theta.npy")).unwrap();
    assert_eq!(theta, theta2);
    assert!(!again.join("samples.fits").exists());
    // bad flags: one line each
    for (extra, needle) in [
        (vec!["--param", "omega_c=0.3"], "NAME=MEAN,STD"),
        (vec!["--param", "bogus=1,0.1"], "bogus"),
        (vec!["--param", "omega_c=0.3,-0.1"], "omega_c"),
        (vec!["--truth", "w0=-1"], "not a varied parameter"),
        (vec!["--truth", "omega_c=0.3"], "every parameter"),
        (
            vec![
                "--param",
                "omega_c=0.3,0.05",
                "--param",
                "sigma8=0.8,0.05",
                "--param",
                "h=0.7,0.05",
                "--param",
                "n_s=0.96,0.02",
            ],
            "at most 3",
        ),
    ] {
        let mut e = vec!["--chains", "2", "--levels", "4"];
        e.extend(extra.iter().copied());
        let o = run(&d.join("bad"), &e);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{extra:?} succeeded");
        assert!(
            err.starts_with("lensdiff: error:") && err.lines().count() == 1,
            "{err}"
        );
        assert!(err.contains(needle), "{extra:?}: {err}");
    }
    // --gaussian-cosmology is required (the only joint prior)
    let o = lensdiff(&[
        "joint",
        "--e1",
        s(&d.join("sim_e1.fits")),
        "--out",
        s(&d.join("x")),
    ]);
    assert!(!o.status.success());
}

/// `lensdiff train --joint` on pairs read from files (`--data MAPS --theta
/// TABLE`, CSV by name or npy in the space's order) with the parameter prior
/// from `--params-file`, and on `--simulate lognormal` pairs; `lensdiff joint
/// --gaussian-cosmology` takes the same `--params-file`; bad tables and flag
/// misuse are one-line errors.
#[test]
fn train_joint_from_files_with_a_params_file_and_lognormal_pairs() {
    let d = common::temp_dir("cli-train-joint-files");
    let (count, side) = (8, 16);
    let maps: Vec<f32> = common::noise_vec(count * side * side, 3)
        .iter()
        .map(|v| 0.01 * v)
        .collect();
    let m = d.join("maps.npy");
    let a = ndarray::ArrayD::from_shape_vec(vec![count, side, side], maps).unwrap();
    lensdiff::io::npy::write_f32(&m, a.view()).unwrap();
    let theta: Vec<[f64; 2]> = (0..count)
        .map(|i| [0.3 + 0.01 * i as f64, 0.8 - 0.01 * i as f64])
        .collect();
    let csv = |name: &str, rows: &[String]| {
        let p = d.join(name);
        std::fs::write(&p, rows.join("\n")).unwrap();
        p
    };
    let mut rows = vec!["omega_c,sigma8".to_string()];
    rows.extend(theta.iter().map(|t| format!("{},{}", t[0], t[1])));
    let t = csv("theta.csv", &rows);
    // the prior file lists sigma8 first: the model's order is the file's
    let pf = d.join("prior.json");
    std::fs::write(
        &pf,
        r#"[{"name": "sigma8", "mean": 0.8, "std": 0.05}, {"name": "omega_c", "mean": 0.3, "std": 0.05}]"#,
    )
    .unwrap();
    let small = [
        "--crop",
        "16",
        "--channels",
        "4,8",
        "--kind",
        "pure",
        "--steps",
        "3",
        "--batch",
        "2",
        "--heldout",
        "2",
        "--eval-every",
        "0",
    ];
    let train = |extra: &[&str]| {
        let mut args = vec!["train", "--joint"];
        args.extend_from_slice(&small);
        args.extend_from_slice(extra);
        lensdiff(&args)
    };
    let model = d.join("files.safetensors");
    let o = train(&[
        "--data",
        s(&m),
        "--theta",
        s(&t),
        "--params-file",
        s(&pf),
        "--pixel-arcmin",
        "2.34375",
        "--out",
        s(&model),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("8 pairs 16x16") && err.contains("exact Gaussian joint denoiser"),
        "{err}"
    );
    let den = lensdiff::prior::joint::JointDenoiser::load(&model).unwrap();
    assert_eq!(den.space().names(), ["sigma8", "omega_c"]);
    // an npy table: its columns are the parameters in the space's order
    let tn = d.join("theta.npy");
    let a = ndarray::ArrayD::from_shape_vec(
        vec![count, 2],
        theta.iter().flat_map(|t| [t[1], t[0]]).collect(),
    )
    .unwrap();
    lensdiff::io::npy::write_f64(&tn, a.view()).unwrap();
    let o = train(&[
        "--data",
        s(&m),
        "--theta",
        s(&tn),
        "--params-file",
        s(&pf),
        "--pixel-arcmin",
        "2.34375",
        "--out",
        s(&d.join("npy.safetensors")),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // log-normal pairs of C_ell(theta)
    let o = train(&[
        "--simulate",
        "lognormal",
        "--lambda",
        "0.03",
        "--pixel-arcmin",
        "2.34375",
        "--out",
        s(&d.join("ln.safetensors")),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // bad tables and flags: one line each
    let mut short = rows.clone();
    short.pop();
    let mut nan = rows.clone();
    nan[3] = "nan,0.8".into();
    let mut unknown = rows.clone();
    unknown[0] = "omega_c,s8".into();
    let short = csv("short.csv", &short);
    let nan = csv("nan.csv", &nan);
    let unknown = csv("unknown.csv", &unknown);
    let px = ["--pixel-arcmin", "2.34375", "--out", "x.safetensors"];
    for (extra, needle) in [
        (vec!["--data", s(&m)], "--theta"),
        (
            vec!["--data", s(&m), "--theta", s(&short)],
            "7 rows for 8 maps",
        ),
        (
            vec!["--data", s(&m), "--theta", s(&nan)],
            "`omega_c` in row 2",
        ),
        (
            vec!["--data", s(&m), "--theta", s(&unknown)],
            "unknown parameter `s8`",
        ),
        (
            vec!["--params-file", s(&pf), "--param", "omega_c=0.3,0.05"],
            "not both",
        ),
        (
            vec!["--simulate", "gaussian", "--lambda", "0.03"],
            "--lambda",
        ),
    ] {
        let mut args = extra.clone();
        args.extend_from_slice(&px);
        let o = train(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{extra:?} succeeded");
        assert!(
            err.starts_with("lensdiff: error:") && err.lines().count() == 1,
            "{extra:?}: {err}"
        );
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    // npy maps have no WCS: the pixel size is needed
    let o = train(&["--data", s(&m), "--theta", s(&t), "--out", "x.safetensors"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no WCS"));
    // `lensdiff joint --gaussian-cosmology --params-file`
    ok(&[
        "simulate",
        "--size",
        "16",
        "--pixel-arcmin",
        "2.34375",
        "--cosmology",
        "--field",
        "gaussian",
        "--seed",
        "2",
        "--out-prefix",
        s(&d.join("sim")),
    ]);
    let sim = ["e1", "e2", "std1", "std2"].map(|f| d.join(format!("sim_{f}.fits")));
    let joint = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "joint",
            "--gaussian-cosmology",
            "--e1",
            s(&sim[0]),
            "--e2",
            s(&sim[1]),
            "--std1",
            s(&sim[2]),
            "--std2",
            s(&sim[3]),
            "--params-file",
            s(&pf),
            "--chains",
            "2",
            "--levels",
            "4",
            "--no-samples",
            "--out",
            s(out),
        ];
        args.extend_from_slice(extra);
        lensdiff(&args)
    };
    let run = d.join("run");
    let o = joint(&run, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let header = std::fs::read_to_string(run.join("theta.csv")).unwrap();
    assert!(header.starts_with("chain,sigma8,omega_c\n"), "{header}");
    let o = joint(&d.join("bad"), &["--param", "h=0.7,0.05"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("not both"), "{err}");
}
