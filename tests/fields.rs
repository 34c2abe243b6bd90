//! Simulated fields: Gaussian and log-normal spectra, log-normal shape; the
//! default spectrum against the kappaTNG theory table of `../shared/data`
//! (`#[ignore]`d: module `needs_data`).

mod common;

use lensdiff::fields::{gaussian_fields, LogNormal};
use lensdiff::spectrum::{bin_edges, bin_theory, estimate_cl, Binning, ClTable};
use lensdiff::Grid;

/// A kappaTNG-like power law: C_ell = 2e-9 (ell/1000)^-1.2 up to ell 1e5.
fn table() -> ClTable {
    common::power_law(60, 1.0, 5.0, 2e-9, -1.2)
}

#[test]
fn gaussian_field_spectrum_within_cosmic_variance() {
    // 16 maps of 128² at 1'/px, 10 log bins. Each bin's estimate has Gaussian
    // relative error sqrt(2/(modes*maps)) (reported as `sigma`); the test
    // asks every bin to lie within 4 sigma of the mode-averaged theory, and the
    // chi² over bins to be below 10 + 4 sqrt(20) (its mean is 10).
    let g = Grid::square(128, 1.0).unwrap();
    let t = table();
    let maps = gaussian_fields(&g, &t.pixel_power(&g), 11, 0, 16).unwrap();
    let edges = bin_edges(&g, Binning::Log(10)).unwrap();
    let est = estimate_cl(&g, &maps, None, &edges).unwrap();
    let theory = bin_theory(&g, &t, &edges).unwrap();
    assert_eq!(theory.len(), est.cl.len());
    let mut chi2 = 0.0;
    for ((c, s), th) in est.cl.iter().zip(&est.sigma).zip(&theory) {
        let sig = s * th / c; // error from the theory, not the noisy estimate
        assert!((c - th).abs() < 4.0 * sig, "{c} vs {th} ± {sig}");
        chi2 += ((c - th) / sig).powi(2);
    }
    assert!(chi2 < 10.0 + 4.0 * 20f64.sqrt(), "chi2 {chi2}");
    // map i does not depend on how many maps are drawn
    let one = gaussian_fields(&g, &t.pixel_power(&g), 11, 5, 1).unwrap();
    assert_eq!(&one[..], &maps[5 * g.len()..6 * g.len()]);
}

#[test]
fn lognormal_field_shape_and_spectrum() {
    let g = Grid::square(128, 1.0).unwrap();
    let t = table();
    let lambda = 0.03;
    let ln = LogNormal::new(&g, &t.pixel_power(&g), lambda).unwrap();
    let maps = ln.sample(&g, 3, 0, 64).unwrap();
    // bounded below by -lambda
    let min = maps.iter().cloned().fold(f32::INFINITY, f32::min);
    assert!(min as f64 >= -lambda, "min {min}");
    // positive skewness (a Gaussian field has 0 ± sqrt(6/n_eff))
    let n = maps.len() as f64;
    let m = maps.iter().map(|&v| v as f64).sum::<f64>() / n;
    let v = maps.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / n;
    let s = maps.iter().map(|&x| (x as f64 - m).powi(3)).sum::<f64>() / n / v.powf(1.5);
    assert!(s > 0.3, "skewness {s}");
    // C_ell within 5% of the target in bins where the Monte-Carlo error
    // (Gaussian formula inflated by 2 for the non-Gaussian field) is below 1.25%,
    // i.e. where a 5% deviation is a 4-sigma event.
    let edges = bin_edges(&g, Binning::Log(8)).unwrap();
    let est = estimate_cl(&g, &maps, None, &edges).unwrap();
    let theory = bin_theory(&g, &t, &edges).unwrap();
    let mut checked = 0;
    for ((c, sg), th) in est.cl.iter().zip(&est.sigma).zip(&theory) {
        eprintln!(
            "ell bin: C {c:.4e} target {th:.4e} ratio {:.4} rel.err {:.4}",
            c / th,
            2.0 * sg / c
        );
        if 2.0 * sg / c < 0.0125 {
            assert!((c / th - 1.0).abs() < 0.05, "C_ell {c} vs target {th}");
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} bins precise enough");
    // too small a shift is rejected
    assert!(LogNormal::new(&g, &t.pixel_power(&g), 1e-4).is_err());
}

#[test]
fn default_spectrum_has_the_kappatng_amplitude_at_ell_1000() {
    let t = ClTable::default_kappa();
    assert!(
        (t.eval(1000.0) / 5.385e-10 - 1.0).abs() < 0.05,
        "{}",
        t.eval(1000.0)
    );
}

/// Tests on ../shared/data: scripts/test.sh runs them when the folder exists.
mod needs_data {
    use super::*;

    #[test]
    #[ignore = "needs ../shared/data: scripts/test.sh runs it when present"]
    fn default_spectrum_is_close_to_the_kappatng_theory() {
        // the fit quality stated in the docs: 5% at every tabulated ell
        let t = ClTable::default_kappa();
        let data = common::shared_data("default_spectrum_is_close_to_the_kappatng_theory");
        let k = ClTable::read(&data.join("ktng/ktng_PS_theory.npy")).unwrap();
        for (l, c) in k.ell().iter().zip(k.cl()) {
            assert!(
                (t.eval(*l) / c - 1.0).abs() < 0.05,
                "ell {l}: {} vs {c}",
                t.eval(*l)
            );
        }
    }
}

// ------------------------------------------------ the sbi_lens 128² log-normal model

mod sbi_lens {
    use super::common;
    use lensdiff::fields::sbi_lens::{
        lognormal_shift, noise_sigma, SbiLens128, LOGNORMAL_SHIFT, OMEGA_B, PIXEL_ARCMIN,
    };
    use lensdiff::spectrum::{bin_theory, estimate_cl, ClTable};
    use lensdiff::Grid;

    /// 10 log-spaced bins over 100 <= ell <= 3000.
    fn edges() -> Vec<f64> {
        (0..=10)
            .map(|i| (100f64.ln() + (3000f64.ln() - 100f64.ln()) * i as f64 / 10.0).exp())
            .collect()
    }

    #[test]
    fn shift_at_the_truth() {
        // sbi_lens's lambda at Omega_c 0.3, sigma_8 0.8 (data README): 0.0330713
        let l = lognormal_shift(0.3 + OMEGA_B, 0.8);
        eprintln!("lambda(0.3486, 0.8) = {l:.7}");
        assert!((l - 0.0330713).abs() < 1e-6, "{l}");
        let m = SbiLens128::truth().unwrap();
        assert_eq!(m.lambda(), l);
        assert!((noise_sigma() - 0.2 / (30.0f64 * 5.4932).sqrt()).abs() < 1e-6);
    }

    #[test]
    fn bad_parameters_are_typed_errors() {
        for (oc, s8) in [(-0.1, 0.8), (0.3, 0.0), (f64::NAN, 0.8), (0.98, 0.8)] {
            assert!(
                matches!(
                    SbiLens128::new(oc, s8),
                    Err(lensdiff::Error::InvalidArgument { .. }
                        | lensdiff::Error::NonFiniteValue { .. })
                ),
                "({oc}, {s8})"
            );
        }
        assert!(SbiLens128::truth().unwrap().sample(1, 0, 0).is_err());
    }

    #[test]
    fn power_is_lensdiffs_pixel_power() {
        // sbi_lens's power map is C(ell) (N/L)², L = N Δ the side in radians:
        // that is C/Δ², lensdiff's pixel power (E|fft2(x)|²/N). Check against
        // the table, interpolated linearly in ell, and the grid's ell.
        let m = SbiLens128::truth().unwrap();
        let g = *m.grid();
        assert_eq!((g.nx, g.ny), (128, 128));
        let side_rad = 5f64.to_radians();
        assert!((g.pixel_rad() * 128.0 - side_rad).abs() < 1e-15);
        let (ells, cl) = m.cl();
        assert!((ells[0] - 1.0).abs() < 1e-12 && (ells[127] / 10f64.powf(4.5) - 1.0).abs() < 1e-12);
        let nkx = g.nkx();
        for (iy, ix) in [(0usize, 1usize), (1, 1), (5, 3), (64, 64), (100, 20)] {
            let kx =
                2.0 * std::f64::consts::PI * lensdiff::grid::fftfreq(ix, 128) / (side_rad / 128.0);
            let ky =
                2.0 * std::f64::consts::PI * lensdiff::grid::fftfreq(iy, 128) / (side_rad / 128.0);
            let ell = kx.hypot(ky);
            let j = ells.partition_point(|&l| l <= ell);
            let c = cl[j - 1] + (ell - ells[j - 1]) / (ells[j] - ells[j - 1]) * (cl[j] - cl[j - 1]);
            let want = c * (128.0 / side_rad).powi(2);
            let got = m.power()[iy * nkx + ix];
            assert!(
                (got / want - 1.0).abs() < 1e-12,
                "({iy},{ix}): {got} vs {want}"
            );
        }
        assert_eq!(m.power()[0], 0.0);
        // and the table of the grid's multipoles gives back the same values
        let t = m.grid_cl_table().unwrap();
        let back = t.pixel_power(&g);
        for (a, b) in back.iter().zip(m.power()).skip(1) {
            assert!((a / b - 1.0).abs() < 1e-9, "{a} vs {b}");
        }
    }

    #[test]
    fn maps_are_bounded_by_the_shift_and_reproducible() {
        let m = SbiLens128::truth().unwrap();
        let maps = m.sample(5, 0, 8).unwrap();
        let min = maps.iter().copied().fold(f32::INFINITY, f32::min) as f64;
        assert!(min >= -m.lambda(), "min {min} < -lambda {}", m.lambda());
        let one = m.sample(5, 3, 1).unwrap();
        let n = m.grid().len();
        assert_eq!(&one[..], &maps[3 * n..4 * n]);
        // the noise: its own stream, std sigma_n
        let (kappa, data) = m.observe(5, 0, 2).unwrap();
        assert_eq!(kappa, maps[..2 * n]);
        let d: Vec<f64> = data
            .iter()
            .zip(&kappa)
            .map(|(a, b)| (a - b) as f64)
            .collect();
        let s = (d.iter().map(|v| v * v).sum::<f64>() / d.len() as f64).sqrt();
        // 32768 draws: relative error of the std 1/sqrt(2n) = 0.4%
        assert!((s / noise_sigma() - 1.0).abs() < 0.02, "noise std {s}");
    }

    #[test]
    fn spectrum_of_200_maps_matches_the_target() {
        // Mean binned C_ell of 200 noiseless maps at the truth against the
        // target binned over the same modes. Tolerance: 4 sigma of the mean
        // from the per-bin scatter of the 200 maps, or 3% (the issue's), the
        // larger.
        let m = SbiLens128::truth().unwrap();
        let g = *m.grid();
        let theory = bin_theory(&g, &m.grid_cl_table().unwrap(), &edges()).unwrap();
        let count = 200;
        let maps = m.sample(2024, 0, count).unwrap();
        let n = g.len();
        let per_map: Vec<Vec<f64>> = maps
            .chunks(n)
            .map(|x| estimate_cl(&g, x, None, &edges()).unwrap().cl)
            .collect();
        let nb = theory.len();
        assert_eq!(per_map[0].len(), nb);
        let mut worst: f64 = 0.0;
        for b in 0..nb {
            let v: Vec<f64> = per_map.iter().map(|c| c[b]).collect();
            let mean = v.iter().sum::<f64>() / count as f64;
            let sd =
                (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (count - 1) as f64).sqrt();
            let err = sd / (count as f64).sqrt();
            let tol = (4.0 * err).max(0.03 * theory[b]);
            let ratio = mean / theory[b];
            eprintln!(
                "bin {b}: mean/target {ratio:.4} (MC error {:.4})",
                err / theory[b]
            );
            worst = worst.max((ratio - 1.0).abs());
            assert!(
                (mean - theory[b]).abs() < tol,
                "bin {b}: {mean:e} vs {:e} ± {tol:e}",
                theory[b]
            );
        }
        eprintln!("largest |mean/target - 1| = {worst:.4}");
    }

    /// Tests on ../shared/data: scripts/test.sh runs them when the folder exists.
    mod needs_data {
        use super::*;

        #[test]
        #[ignore = "needs ../shared/data: scripts/test.sh runs it when present"]
        fn the_embedded_shift_table_is_the_csv() {
            let data = common::shared_data("the_embedded_shift_table_is_the_csv");
            let text =
                std::fs::read_to_string(data.join("sbi_lens/lognormal_shift_b2517a4.csv")).unwrap();
            let rows: Vec<Vec<f64>> = text
                .lines()
                .skip(1)
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.split(',').map(|s| s.trim().parse().unwrap()).collect())
                .collect();
            assert_eq!(rows.len(), 64);
            for (k, r) in rows.iter().enumerate() {
                let (i, j) = (k / 8, k % 8);
                assert!(
                    (r[0] - (0.2 + 0.2 * i as f64 / 7.0)).abs() < 1e-7,
                    "row {k}"
                );
                assert!(
                    (r[1] - (0.6 + 0.4 * j as f64 / 7.0)).abs() < 1e-7,
                    "row {k}"
                );
                assert_eq!(r[2], LOGNORMAL_SHIFT[i][j], "row {k}");
            }
        }

        #[test]
        #[ignore = "needs ../shared/data: scripts/test.sh runs it when present"]
        fn the_benchmark_observation_has_the_model_spectrum() {
            // C_ell(truth) + white noise sigma_n² Δ²; per-bin error from the
            // number of modes, (C + N) sqrt(2/modes) (cosmic variance + noise).
            let data = common::shared_data("the_benchmark_observation_has_the_model_spectrum");
            let map = lensdiff::io::read_map(
                &data.join("sbi_lens/m_data__128N_5ms_30gpa_0.2se.npy"),
                Some([128, 128]),
            )
            .unwrap();
            let x: Vec<f32> = map.iter().copied().collect();
            let g = Grid::square(128, PIXEL_ARCMIN).unwrap();
            let m = SbiLens128::truth().unwrap();
            let est = estimate_cl(&g, &x, None, &edges()).unwrap();
            let noise = noise_sigma().powi(2) * g.pixel_area_sr();
            let signal = bin_theory(&g, &m.grid_cl_table().unwrap(), &edges()).unwrap();
            let mut chi2 = 0.0;
            for (b, ((c, s), modes)) in est.cl.iter().zip(&signal).zip(&est.modes).enumerate() {
                let t = s + noise;
                let sig = t * (2.0 / *modes as f64).sqrt();
                eprintln!(
                    "bin {b}: ell {:.0} data/model {:.3} ({:.1} sigma)",
                    est.ell[b],
                    c / t,
                    (c - t) / sig
                );
                chi2 += ((c - t) / sig).powi(2);
            }
            let dof = est.cl.len() as f64;
            eprintln!("chi2/dof = {:.3} ({dof} bins)", chi2 / dof);
            assert!(
                (0.5..=2.0).contains(&(chi2 / dof)),
                "chi2/dof {}",
                chi2 / dof
            );
            let _ = ClTable::default_kappa();
        }
    }
}

#[test]
fn sbi_lens_maps_use_their_own_variance_in_the_exponent() {
    let m = lensdiff::fields::sbi_lens::SbiLens128::truth().unwrap();
    let maps = m.sample(9, 0, 4).unwrap();
    let d = common::sbi_own_variance_defect(&maps, m.lambda());
    assert!(d < 1e-6, "{d:e}");
}

// ------------------------------------------------ the command line: cosmology and sbi_lens

mod cli {
    use super::common;

    fn fails_with_one_line(args: &[&str]) -> String {
        let out = common::lensdiff(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("lensdiff: error:"), "{err}");
        err
    }

    #[test]
    fn simulate_the_sbi_lens_model_and_from_a_cosmology() {
        let dir = common::TempDir::new("simulate_the_sbi_lens_model_and_from_a_cosmology");
        let p = dir.path("s");
        let out = common::lensdiff_ok(&[
            "simulate",
            "--simulator",
            "sbi-lognormal",
            "--count",
            "2",
            "--format",
            "npy",
            "--out-prefix",
            p.to_str().unwrap(),
        ]);
        assert!(out.contains("lambda 0.0330713"), "{out}");
        let kappa = lensdiff::io::read_stack(&dir.path("s_kappa.npy")).unwrap();
        let obs = lensdiff::io::read_stack(&dir.path("s_obs.npy")).unwrap();
        assert_eq!(kappa.dim(), (2, 128, 128));
        assert_eq!(obs.dim(), (2, 128, 128));
        assert!(kappa.iter().all(|&v| v as f64 >= -0.0330713));
        let d: Vec<f64> = obs
            .iter()
            .zip(kappa.iter())
            .map(|(a, b)| (a - b) as f64)
            .collect();
        let s = (d.iter().map(|v| v * v).sum::<f64>() / d.len() as f64).sqrt();
        assert!((s / 0.0155797 - 1.0).abs() < 0.03, "noise std {s}");
        // the same maps as the library's
        let m = lensdiff::fields::sbi_lens::SbiLens128::truth().unwrap();
        let lib = m.sample(1, 0, 2).unwrap();
        assert_eq!(kappa.iter().copied().collect::<Vec<f32>>(), lib);
        // C_ell from a cosmology
        let out = common::lensdiff_ok(&[
            "simulate",
            "--cosmology",
            "--sigma8",
            "0.7",
            "--size",
            "32",
            "--field",
            "gaussian",
            "--format",
            "npy",
            "--out-prefix",
            dir.path("c").to_str().unwrap(),
        ]);
        assert!(out.contains("C_ell of Omega_m 0.3156 sigma_8 0.7"), "{out}");
        // conflicting flags and bad values: one line each
        for bad in [
            vec!["simulate", "--field", "sbi-lognormal", "--size", "64"],
            vec![
                "simulate",
                "--field",
                "sbi-lognormal",
                "--pixel-arcmin",
                "1",
            ],
            vec!["simulate", "--field", "sbi-lognormal", "--h", "0.7"],
            vec!["simulate", "--field", "sbi-lognormal", "--lambda", "0.02"],
            vec!["simulate", "--field", "sbi-lognormal", "--omega-c", "-1"],
            vec!["simulate", "--cosmology", "--cl", "x.txt"],
            vec!["simulate", "--sigma8", "0.9"],
            vec!["simulate", "--cosmology", "--sigma8", "0"],
            vec!["train", "--simulate", "sbi-lognormal", "--crop", "32"],
            vec![
                "train",
                "--simulate",
                "lognormal",
                "--cosmology",
                "--h",
                "5",
            ],
        ] {
            let mut args = bad.clone();
            if bad[0] == "train" {
                args.extend(["--out", "unused.safetensors"]);
            } else {
                args.extend(["--out-prefix", "unused"]);
            }
            fails_with_one_line(&args);
        }
    }

    #[test]
    fn every_flag_of_simulate_and_train_is_in_the_readme() {
        let readme = std::fs::read_to_string(common::root().join("README.md")).unwrap();
        for (cmd, heading) in [
            ("simulate", "### `lensdiff simulate`"),
            ("train", "### `lensdiff train`"),
        ] {
            let help = common::lensdiff(&[cmd, "--help"]);
            assert!(help.status.success());
            let help = String::from_utf8_lossy(&help.stdout);
            let at = readme.find(heading).expect("a README section");
            let section =
                &readme[at..at + readme[at..].find("\n### ").unwrap_or(readme.len() - at)];
            for f in help
                .split(|c: char| c.is_whitespace() || c == '/' || c == '(')
                .filter(|w| w.starts_with("--") && w.len() > 2)
                .map(|w| {
                    w.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                        .next()
                        .unwrap_or(w)
                })
                .filter(|w| !["--help", "--version"].contains(w))
            {
                assert!(
                    section.contains(&format!("`{f}")),
                    "{f} is not in the README's {cmd} section"
                );
            }
            for f in ["--cosmology", "--omega-c", "sbi-lognormal"] {
                assert!(help.contains(f), "{cmd} --help lacks {f}");
            }
        }
    }
}
