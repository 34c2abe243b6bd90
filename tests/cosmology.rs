//! Convergence spectra from cosmological parameters (src/cosmo/) against third
//! parties: the sbi_lens 128² model (jax-cosmo) and CCL's C_ell benchmark
//! (`#[ignore]`d: module `needs_data`), plus the properties any set of
//! tomographic spectra must have, and `lensdiff cosmo`.

mod common;

use lensdiff::cosmo::limber::{convergence_cl, ClOptions};
use lensdiff::cosmo::linear::Transfer;
use lensdiff::cosmo::nz::{Nz, SourceBin};
use lensdiff::cosmo::Cosmology;
use lensdiff::spectrum::ClTable;

/// The sbi_lens 128² benchmark at its truth (data README): Omega_c 0.3,
/// Omega_b 0.0486, h 0.6774, n_s 0.9667, sigma_8 0.8, Smail n(z) with a = 0.5,
/// b = 2, z0 = 1, z_max 10; Eisenstein–Hu with wiggles, halofit, Limber.
fn sbi_lens_truth() -> (Cosmology, Vec<SourceBin>) {
    let c = Cosmology::new(0.3, 0.0486, 0.6774, 0.9667, 0.8, -1.0, 0.0).unwrap();
    let nz = Nz::Smail {
        a: 0.5,
        b: 2.0,
        z0: 1.0,
        z_max: 10.0,
    };
    (c, vec![nz.source().unwrap()])
}

#[test]
fn the_sbi_lens_spectrum_at_its_truth() {
    // jax-cosmo (float32) values of the data README; the issue asks for 2%.
    // jax-cosmo's spectrum is the shear one (its kernel has the ell factor),
    // ours the convergence one: they differ by < 3/ell² = 3e-4 at ell = 100.
    let (c, bins) = sbi_lens_truth();
    let ells = [100.0, 300.0, 1000.0, 3000.0];
    let want = [3.819e-9, 9.461e-10, 2.220e-10, 4.601e-11];
    let cl = convergence_cl(&c, &bins, &ells, &ClOptions::default()).unwrap();
    for ((l, got), w) in ells.iter().zip(&cl.cl[0]).zip(want) {
        let rel = got / w - 1.0;
        assert!(rel.abs() < 0.02, "ell {l}: {got:e} vs {w:e} ({rel:+.4})");
    }
}

#[test]
fn tomographic_spectra_are_a_covariance_and_grow_with_redshift() {
    // LSST-Y10 bins (Smail a = 2, b = 0.68, z0 = 0.11, 5 equal-number bins,
    // sigma_z = 0.05) at the sbi_lens fiducial
    let c = Cosmology::sbi_lens_fiducial();
    let nz = Nz::Smail {
        a: 2.0,
        b: 0.68,
        z0: 0.11,
        z_max: 3.5,
    };
    let bins = nz.bins(5, 0.05).unwrap();
    let ells: Vec<f64> = (0..16).map(|i| 10f64.powf(1.0 + i as f64 * 0.2)).collect();
    let cl = convergence_cl(&c, &bins, &ells, &ClOptions::default()).unwrap();
    assert_eq!(cl.pairs.len(), 15);
    for l in 0..ells.len() {
        // every 5x5 matrix C_ell^{ij} is positive semi-definite: Cauchy–Schwarz
        // on every pair, and autos grow with the bins' redshift (more lensing)
        for i in 0..5 {
            for j in i..5 {
                let (cii, cjj, cij) = (
                    cl.get(i, i).unwrap()[l],
                    cl.get(j, j).unwrap()[l],
                    cl.get(i, j).unwrap()[l],
                );
                assert!(
                    cij > 0.0 && cij * cij <= cii * cjj * (1.0 + 1e-12),
                    "{i}{j} at {l}"
                );
            }
            if i > 0 {
                assert!(cl.get(i, i).unwrap()[l] > cl.get(i - 1, i - 1).unwrap()[l]);
            }
        }
    }
    assert_eq!(cl.get(3, 1), cl.get(1, 3));
}

#[test]
fn the_default_quadrature_is_within_1e_4_of_a_fine_one() {
    // 129 nodes uniform in sqrt(chi) against 4097: the quadrature error the
    // docs quote, for the sbi_lens bin and the five LSST-Y10 bins
    let c = Cosmology::sbi_lens_fiducial();
    let ells: Vec<f64> = (0..64)
        .map(|i| 10f64.powf(1.0 + 3.0 * i as f64 / 63.0))
        .collect();
    let lsst = Nz::Smail {
        a: 2.0,
        b: 0.68,
        z0: 0.11,
        z_max: 3.5,
    };
    let (_, sbi) = sbi_lens_truth();
    for bins in [sbi, lsst.bins(5, 0.05).unwrap()] {
        let coarse = convergence_cl(&c, &bins, &ells, &ClOptions::default()).unwrap();
        let fine = ClOptions {
            chi_points: 4097,
            ..ClOptions::default()
        };
        let fine = convergence_cl(&c, &bins, &ells, &fine).unwrap();
        for (a, b) in coarse.cl.iter().flatten().zip(fine.cl.iter().flatten()) {
            assert!((a / b - 1.0).abs() < 1e-4, "{a:e} vs {b:e}");
        }
    }
}

#[test]
fn the_nonlinear_spectrum_exceeds_the_linear_one_on_small_scales_only() {
    let (c, bins) = sbi_lens_truth();
    let ells = [10.0, 3000.0];
    let nl = convergence_cl(&c, &bins, &ells, &ClOptions::default()).unwrap();
    let lin = ClOptions {
        nonlinear: false,
        ..ClOptions::default()
    };
    let l = convergence_cl(&c, &bins, &ells, &lin).unwrap();
    // halofit adds little at ell = 10 (k ~ 0.005 h/Mpc at z ~ 1) and a lot at 3000
    assert!((nl.cl[0][0] / l.cl[0][0] - 1.0).abs() < 0.02);
    assert!(nl.cl[0][1] / l.cl[0][1] > 2.0);
}

#[test]
fn bad_inputs_are_errors_not_nan() {
    let (c, bins) = sbi_lens_truth();
    let opts = ClOptions::default();
    let bad_cosmo = Cosmology { sigma8: -0.8, ..c };
    assert!(convergence_cl(&bad_cosmo, &bins, &[100.0], &opts).is_err());
    assert!(convergence_cl(&c, &[], &[100.0], &opts).is_err());
    assert!(convergence_cl(&c, &bins, &[f64::NAN], &opts).is_err());
    assert!(convergence_cl(&c, &bins, &[-1.0], &opts).is_err());
    let even = ClOptions {
        chi_points: 128,
        ..opts
    };
    assert!(convergence_cl(&c, &bins, &[100.0], &even).is_err());
    // sources beyond the distance table (z = 999)
    let far = Nz::Plane { z: 2000.0 }.source().unwrap();
    assert!(convergence_cl(&c, &[far], &[100.0], &opts).is_err());
    // extreme but valid cosmologies stay finite
    for w in [(-0.5, -0.4), (-2.0, 0.5), (-1.0, 0.0)] {
        let c2 = Cosmology {
            w0: w.0,
            wa: w.1,
            omega_c: 0.1,
            ..c
        };
        let cl = convergence_cl(&c2, &bins, &[2.0, 100.0, 1e5], &opts).unwrap();
        assert!(cl.cl[0].iter().all(|v| v.is_finite() && *v > 0.0), "{w:?}");
    }
}

#[test]
fn lensdiff_cosmo_writes_a_table_that_cl_reads_and_a_plot() {
    let dir = common::TempDir::new("lensdiff_cosmo_writes_a_table_that_cl_reads_and_a_plot");
    let (txt, npy, png) = (dir.path("cl.txt"), dir.path("cl5.npy"), dir.path("cl.png"));
    let out = common::lensdiff(&[
        "cosmo",
        "--n-ell",
        "64",
        "--out",
        txt.to_str().unwrap(),
        "--png",
        png.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", common::show(&out));
    let t = ClTable::read(&txt).unwrap();
    assert_eq!(t.ell().len(), 64);
    assert_eq!(common::png_header(&common::read_bytes(&png)).0, 800);
    let out = common::lensdiff(&[
        "cosmo",
        "--bins",
        "3",
        "--sigma-z",
        "0.05",
        "--out",
        npy.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", common::show(&out));
    // rows: ell, then the 6 pairs of 3 bins
    let a = lensdiff::io::read_array_f64(&npy).unwrap();
    assert_eq!(a.shape(), &[7, 128]);
    assert!(a.iter().all(|v| v.is_finite() && *v > 0.0));
    for bad in [
        vec!["cosmo", "--sigma8", "-1"],
        vec!["cosmo", "--nz", "smail:1"],
        vec!["cosmo", "--ell-min", "100", "--ell-max", "10"],
        vec!["cosmo", "--h", "3"],
    ] {
        let out = common::lensdiff(&bad);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad:?}");
        assert_eq!(err.trim().lines().count(), 1, "{bad:?}: {err}");
        assert!(err.starts_with("lensdiff: error:"), "{err}");
    }
}

#[test]
fn every_flag_of_lensdiff_cosmo_is_in_the_readme() {
    let help = common::lensdiff(&["cosmo", "--help"]);
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    let readme = std::fs::read_to_string(common::root().join("README.md")).unwrap();
    let at = readme
        .find("### `lensdiff cosmo`")
        .expect("a README section");
    let section = &readme[at..at + readme[at..].find("\n### ").unwrap_or(readme.len() - at)];
    let flags: Vec<&str> = help
        .split_whitespace()
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()))
        .filter(|w| !["--help", "--version"].contains(w))
        .collect();
    assert!(flags.len() >= 18, "{flags:?}");
    for f in flags {
        assert!(
            section.contains(&format!("`{f}")),
            "{f} is not in the README's cosmo section"
        );
    }
}

/// Tests on ../shared/data: scripts/test.sh runs them when the folder exists.
mod needs_data {
    use super::*;

    #[test]
    #[ignore = "needs ../shared/data: scripts/test.sh runs it when present"]
    fn the_ccl_benchmark_spectrum() {
        // CCL's run_b1b1analytic_log_cl_ll.txt (data README): Omega_c 0.30,
        // Omega_b 0, h 0.7, sigma_8 0.8, n_s 0.96, BBKS linear P(k), Gaussian
        // n(z) at z = 1 with sigma 0.15, Limber; the file holds convergence
        // spectra. The issue asks for 0.5% at every ell in [10, 10000].
        let data = common::shared_data("the_ccl_benchmark_spectrum");
        let text =
            std::fs::read_to_string(data.join("ccl_benchmark/run_b1b1analytic_log_cl_ll.txt"))
                .unwrap();
        let rows: Vec<(f64, f64)> = text
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace().map(|v| v.parse::<f64>());
                Some((w.next()?.ok()?, w.next()?.ok()?))
            })
            .filter(|(l, _)| (10.0..=10000.0).contains(l))
            .collect();
        assert_eq!(rows.len(), 9991);
        let c = Cosmology::new(0.30, 0.0, 0.7, 0.96, 0.8, -1.0, 0.0)
            .unwrap()
            .with_t_cmb(2.7)
            .unwrap();
        let bins = vec![Nz::Gaussian {
            mean: 1.0,
            sigma: 0.15,
        }
        .source()
        .unwrap()];
        let opts = ClOptions {
            transfer: Transfer::Bbks,
            nonlinear: false,
            ..ClOptions::default()
        };
        let ells: Vec<f64> = rows.iter().map(|r| r.0).collect();
        let cl = convergence_cl(&c, &bins, &ells, &opts).unwrap();
        let worst = (rows.iter().zip(&cl.cl[0]))
            .map(|((l, want), got)| (got / want - 1.0, *l))
            .fold(
                (0.0f64, 0.0),
                |m, (r, l)| if r.abs() > m.0.abs() { (r, l) } else { m },
            );
        assert!(
            worst.0.abs() < 0.005,
            "worst {:+.5} at ell {}",
            worst.0,
            worst.1
        );
    }
}
