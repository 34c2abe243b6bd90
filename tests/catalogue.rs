//! Catalogue binning: synthetic unit checks and the COSMOS acceptance test
//! against the jax-lensing maps in `../shared/data/cosmos` (`#[ignore]`d:
//! module `needs_data`).

mod common;

use std::path::Path;
use std::time::Instant;

use lensdiff::catalogue::{
    bin_catalogue, BinningOptions, Catalogue, Centre, NoiseEstimate, Projection, SkyGrid,
};
use lensdiff::{Error, Grid};

/// 4x4 pixels of 1 degree, plate projection about (10, 0), RA along +x:
/// pixel edges at RA 8, 9, 10, 11, 12 and Dec -2, -1, 0, 1, 2.
fn plate_opts() -> BinningOptions {
    BinningOptions {
        centre: Centre::Given {
            ra_deg: 10.0,
            dec_deg: 0.0,
        },
        ..BinningOptions::jax_lensing(Grid::square(4, 60.0).unwrap())
    }
}

fn cat(ra: &[f64], dec: &[f64], e1: &[f64], e2: &[f64], w: Option<&[f64]>) -> Catalogue {
    Catalogue::new(
        ra.to_vec(),
        dec.to_vec(),
        e1.to_vec(),
        e2.to_vec(),
        w.map(<[f64]>::to_vec),
    )
    .unwrap()
}

#[test]
fn galaxy_lands_in_its_pixel() {
    let c = cat(
        &[10.5, 8.2],
        &[0.5, -1.7],
        &[0.1, -0.2],
        &[0.3, 0.4],
        Some(&[1.0, 2.0]),
    );
    let b = bin_catalogue(&c, &plate_opts()).unwrap();
    assert_eq!(b.n_outside, 0);
    assert_eq!((b.centre_ra_deg, b.centre_dec_deg), (10.0, 0.0));
    let nx = 4;
    // (10.5, 0.5) -> row 2 (Dec in [0, 1)), column 2 (RA in [10, 11)).
    let p = 2 * nx + 2;
    assert_eq!(b.counts[p], 1);
    assert_eq!(b.e1[p], 0.1);
    assert_eq!(b.e2[p], -0.3, "flip_e2 negates e2");
    assert_eq!(b.weight_sum[p], 1.0);
    // (8.2, -1.7) -> row 0 (lowest Dec), column 0 (lowest RA).
    assert_eq!(b.counts[0], 1);
    assert_eq!(b.e1[0], -0.2);
    assert_eq!(b.weight_sum[0], 2.0);
    assert_eq!(b.counts.iter().sum::<u32>(), 2);
    assert_eq!(b.n_observed(), 2);
    assert!(b.mask[p] && b.mask[0]);
    assert_eq!(b.mask_f32().iter().sum::<f32>(), 2.0);
    for q in (0..16).filter(|&q| q != p && q != 0) {
        assert!(!b.mask[q]);
        assert_eq!(
            (b.e1[q], b.e2[q], b.std1[q], b.std2[q]),
            (0.0, 0.0, 0.0, 0.0)
        );
    }
    assert_eq!(b.sky_grid().pixel(10.5, 0.5), Some((2, 2)));

    // East left: columns mirror, e2 keeps its catalogue sign without the flip.
    let opts = BinningOptions {
        ra_increases_with_x: false,
        flip_e2: false,
        ..plate_opts()
    };
    let m = bin_catalogue(&c, &opts).unwrap();
    assert_eq!(m.counts[2 * nx + 1], 1);
    assert_eq!(m.e2[2 * nx + 1], 0.3);
    assert_eq!(m.counts[3], 1);
    for iy in 0..4 {
        for ix in 0..4 {
            assert_eq!(m.counts[iy * nx + ix], b.counts[iy * nx + (nx - 1 - ix)]);
        }
    }
}

#[test]
fn pixel_edges_follow_histogram2d() {
    // Lower edges belong to their pixel, the last upper edge to the last pixel.
    let c = cat(
        &[8.0, 12.0, 9.0, 7.999999, 12.000001],
        &[-2.0, 2.0, 0.0, 0.0, 0.0],
        &[0.0; 5],
        &[0.0; 5],
        None,
    );
    let b = bin_catalogue(&c, &plate_opts()).unwrap();
    assert_eq!(b.counts[0], 1);
    assert_eq!(b.counts[15], 1);
    assert_eq!(b.counts[2 * 4 + 1], 1);
    assert_eq!(b.n_outside, 2);
}

#[test]
fn weighted_and_unweighted_means() {
    let c = cat(
        &[10.2, 10.7, 9.5],
        &[0.2, 0.9, 0.5],
        &[0.1, 0.5, 0.2],
        &[-0.2, 0.2, 0.0],
        Some(&[1.0, 3.0, 0.5]),
    );
    let p = 2 * 4 + 2;
    let w = bin_catalogue(&c, &plate_opts()).unwrap();
    assert_eq!(w.counts[p], 2);
    assert_eq!(w.weight_sum[p], 4.0);
    assert!((w.e1[p] - 0.4).abs() < 1e-7, "(0.1 + 3 * 0.5) / 4");
    assert!((w.e2[p] + 0.1).abs() < 1e-7, "-(-0.2 + 3 * 0.2) / 4");

    let u = bin_catalogue(
        &c,
        &BinningOptions {
            weighted: false,
            ..plate_opts()
        },
    )
    .unwrap();
    assert_eq!(u.weight_sum[p], 2.0);
    assert!((u.e1[p] - 0.3).abs() < 1e-7);
    assert!(u.e2[p].abs() < 1e-7);

    // sigma_e: population std over the whole catalogue (numpy.std).
    let pop_std = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
    };
    let s = [pop_std(&c.e1), pop_std(&c.e2)];
    for (got, want) in w.sigma_e.iter().zip(&s) {
        assert!((got - want).abs() < 1e-15);
    }
    // Counts noise: sigma / sqrt(n); weights noise: sigma sqrt(sum w^2) / sum w.
    assert!((f64::from(w.std1[p]) - s[0] / 2f64.sqrt()).abs() < 1e-7);
    assert!((f64::from(w.std2[p]) - s[1] / 2f64.sqrt()).abs() < 1e-7);
    let q = 2 * 4 + 1;
    assert!((f64::from(w.std1[q]) - s[0]).abs() < 1e-7);
    let ww = bin_catalogue(
        &c,
        &BinningOptions {
            noise: NoiseEstimate::Weights,
            ..plate_opts()
        },
    )
    .unwrap();
    assert!((f64::from(ww.std1[p]) - s[0] * 10f64.sqrt() / 4.0).abs() < 1e-7);
    assert_eq!(ww.e1, w.e1);
}

#[test]
fn zero_weight_pixels_are_masked() {
    let c = cat(
        &[10.5, 8.5],
        &[0.5, 0.5],
        &[0.3, 0.3],
        &[0.3, 0.3],
        Some(&[0.0, 1.0]),
    );
    let b = bin_catalogue(&c, &plate_opts()).unwrap();
    let p = 2 * 4 + 2;
    assert_eq!(b.counts[p], 1);
    assert!(!b.mask[p]);
    assert_eq!((b.e1[p], b.std1[p]), (0.0, 0.0));
    assert!(b.mask[2 * 4]);
}

#[test]
fn out_of_field_galaxies_are_counted() {
    let c = cat(
        &[10.5, 30.0, 10.0, 190.0, 10.0],
        &[0.5, 0.0, 5.0, 0.0, -89.0],
        &[0.0; 5],
        &[0.0; 5],
        None,
    );
    for projection in [Projection::Plate, Projection::Gnomonic] {
        let b = bin_catalogue(
            &c,
            &BinningOptions {
                projection,
                ..plate_opts()
            },
        )
        .unwrap();
        assert_eq!(b.n_outside, 4, "{projection:?}");
        assert_eq!(b.counts.iter().sum::<u32>(), 1);
    }
    // Nothing in the field at all is an error, not an empty map.
    let far = cat(&[100.0], &[40.0], &[0.0], &[0.0], None);
    let err = bin_catalogue(&far, &plate_opts()).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
}

#[test]
fn bad_inputs_are_errors() {
    let v = || vec![1.0, 2.0];
    let e = Catalogue::new(v(), vec![1.0], v(), v(), None).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { name: "dec", .. }), "{e}");
    let e = Catalogue::new(v(), v(), v(), v(), Some(vec![1.0])).unwrap_err();
    assert!(
        matches!(e, Error::ShapeMismatch { name: "weight", .. }),
        "{e}"
    );
    let e = Catalogue::new(v(), v(), vec![0.1, f64::NAN], v(), None).unwrap_err();
    assert!(
        matches!(
            e,
            Error::NonFinite {
                name: "e1",
                index: 1
            }
        ),
        "{e}"
    );
    let e = Catalogue::new(vec![f64::INFINITY, 1.0], v(), v(), v(), None).unwrap_err();
    assert!(
        matches!(
            e,
            Error::NonFinite {
                name: "ra",
                index: 0
            }
        ),
        "{e}"
    );
    let e = Catalogue::new(v(), v(), v(), v(), Some(vec![1.0, f64::NAN])).unwrap_err();
    assert!(matches!(e, Error::NonFinite { name: "weight", .. }), "{e}");
    // a negative weight is a negative noise level (the one rule of docs/c-api.md)
    let e = Catalogue::new(v(), v(), v(), v(), Some(vec![1.0, -0.5])).unwrap_err();
    assert!(
        matches!(
            e,
            Error::NegativeVariance {
                name: "weight",
                index: 1,
                ..
            }
        ),
        "{e}"
    );
    let e = Catalogue::new(v(), vec![0.0, 90.5], v(), v(), None).unwrap_err();
    assert!(
        matches!(e, Error::InvalidArgument { name: "dec", .. }),
        "{e}"
    );
    let e = Catalogue::new(vec![], vec![], vec![], vec![], None).unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidArgument {
                name: "catalogue",
                ..
            }
        ),
        "{e}"
    );

    // Public fields edited after construction are checked again.
    let mut c = cat(&[10.0], &[0.0], &[0.0], &[0.0], None);
    c.e2.push(0.0);
    assert!(bin_catalogue(&c, &plate_opts()).is_err());

    // Bad centres and grids.
    let c = cat(&[10.0], &[0.0], &[0.0], &[0.0], None);
    for (ra_deg, dec_deg) in [(f64::NAN, 0.0), (0.0, 91.0), (0.0, f64::INFINITY)] {
        let opts = BinningOptions {
            centre: Centre::Given { ra_deg, dec_deg },
            ..plate_opts()
        };
        assert!(bin_catalogue(&c, &opts).is_err());
    }
    let mut opts = plate_opts();
    opts.grid.pixel_arcmin = -1.0;
    assert!(bin_catalogue(&c, &opts).is_err());
    assert!(SkyGrid::new(
        Grid::square(4, 1.0).unwrap(),
        0.0,
        95.0,
        Projection::Plate,
        true
    )
    .is_err());
    // A missing file is an error, not a panic.
    let nowhere = Path::new("/nonexistent/ra.fits");
    assert!(Catalogue::from_files(nowhere, nowhere, nowhere, nowhere, None).is_err());
}

#[test]
fn gnomonic_projection_formula() {
    let deg = std::f64::consts::PI / 180.0;
    let (ra0, dec0) = (200.0, 60.0);
    let sky = SkyGrid::new(
        Grid::square(64, 6.0).unwrap(),
        ra0,
        dec0,
        Projection::Gnomonic,
        true,
    )
    .unwrap();
    let (ra, dec) = (201.5_f64, 59.2_f64);
    let da = (ra - ra0) * deg;
    let cos_c =
        (dec0 * deg).sin() * (dec * deg).sin() + (dec0 * deg).cos() * (dec * deg).cos() * da.cos();
    let x = (dec * deg).cos() * da.sin() / cos_c / deg;
    let y = ((dec0 * deg).cos() * (dec * deg).sin()
        - (dec0 * deg).sin() * (dec * deg).cos() * da.cos())
        / cos_c
        / deg;
    let [px, py] = sky.project(ra, dec).unwrap();
    assert!((px - x).abs() < 1e-12 && (py - y).abs() < 1e-12);
    // x shrinks by about cos(dec0) with respect to the raw RA offset.
    assert!((px / 1.5 - 0.5).abs() < 0.02, "{px}");
    // The centre falls on the corner shared by the four central pixels.
    assert_eq!(sky.project(ra0, dec0), Some([0.0, 0.0]));
    assert_eq!(sky.pixel(ra0, dec0), Some((32, 32)));
    assert_eq!(sky.pixel(ra0 + 0.01, dec0 - 0.01), Some((31, 32)));
    // Far hemisphere: no projection.
    assert_eq!(sky.project(20.0, -60.0), None);

    // Plate: raw offsets, wrapped through RA = 0.
    let plate = SkyGrid::new(
        Grid::square(8, 12.0).unwrap(),
        359.5,
        10.0,
        Projection::Plate,
        true,
    )
    .unwrap();
    let [u, v] = plate.project(0.2, 10.3).unwrap();
    assert!((u - 0.7).abs() < 1e-9 && (v - 0.3).abs() < 1e-12, "{u} {v}");
    assert!(plate.pixel(0.2, 10.3).is_some());
    assert_eq!(plate.pixel(0.2, 10.3), plate.pixel(360.2, 10.3));
    assert_eq!(plate.pixel(0.2, 10.3), plate.pixel(-359.8, 10.3));
}

#[test]
fn centres_median_mean_and_wrap() {
    let c = cat(
        &[1.0, 2.0, 3.0, 10.0],
        &[-1.0, 0.0, 2.0, 3.0],
        &[0.0; 4],
        &[0.0; 4],
        None,
    );
    assert_eq!(c.centre(Centre::Median).unwrap(), (2.5, 1.0));
    assert_eq!(c.centre(Centre::Mean).unwrap(), (4.0, 1.0));
    let g = Centre::Given {
        ra_deg: -30.0,
        dec_deg: 5.0,
    };
    assert_eq!(c.centre(g).unwrap(), (330.0, 5.0));
    // A field across RA = 0.
    let w = cat(
        &[359.0, 359.6, 0.4, 1.0, 0.2],
        &[0.0; 5],
        &[0.0; 5],
        &[0.0; 5],
        None,
    );
    let (ra, _) = w.centre(Centre::Median).unwrap();
    assert!((ra - 0.2).abs() < 1e-9, "{ra}");
    let (ra, _) = w.centre(Centre::Mean).unwrap();
    assert!((ra - 0.04).abs() < 1e-9, "{ra}");
    let opts = BinningOptions {
        centre: Centre::Median,
        ..BinningOptions::jax_lensing(Grid::square(4, 60.0).unwrap())
    };
    let b = bin_catalogue(&w, &opts).unwrap();
    assert_eq!(b.n_outside, 0);
    assert_eq!(b.counts.iter().sum::<u32>(), 5);
}

/// Tests on ../shared/data: scripts/test.sh runs them when the folder exists.
mod needs_data {
    use super::*;

    #[test]
    #[ignore = "needs ../shared/data: scripts/test.sh runs it when present"]
    fn cosmos_reproduces_jax_lensing_maps() {
        let dir = common::shared_data("cosmos_reproduces_jax_lensing_maps").join("cosmos");
        let t = Instant::now();
        let c = Catalogue::from_cosmos_dir(&dir).unwrap();
        let t_read = t.elapsed();
        assert_eq!(c.len(), 417_117);
        let grid = Grid::square(360, 0.29).unwrap();
        let t = Instant::now();
        let b = bin_catalogue(&c, &BinningOptions::jax_lensing(grid)).unwrap();
        let t_bin = t.elapsed();
        println!(
            "COSMOS: read {:.1} ms, binned {} galaxies in {:.1} ms; centre ({}, {}); \
             sigma_e = {:?}; {} outside",
            t_read.as_secs_f64() * 1e3,
            c.len(),
            t_bin.as_secs_f64() * 1e3,
            b.centre_ra_deg,
            b.centre_dec_deg,
            b.sigma_e,
            b.n_outside
        );
        assert!(t_bin.as_secs_f64() < 1.0, "binning took {t_bin:?}");
        assert!((b.centre_ra_deg - 150.1161025).abs() < 1e-9);
        assert!((b.centre_dec_deg - 2.247490268).abs() < 1e-9);
        assert!((b.sigma_e[0] - 0.3052).abs() < 1e-4 && (b.sigma_e[1] - 0.3056).abs() < 1e-4);
        assert_eq!(b.n_outside, 0);

        let shape = Some([360, 360]);
        let read = |name: &str| lensdiff::io::read_map(&dir.join(name), shape).unwrap();
        let max_diff = |a: &[f32], r: &[f32]| {
            a.iter()
                .zip(r)
                .map(|(x, y)| (f64::from(*x) - f64::from(*y)).abs())
                .fold(0.0, f64::max)
        };
        let e1 = read("cosmos_full_e1_0.29arcmin360.fits");
        let e2 = read("cosmos_full_e2_0.29arcmin360.fits");
        let mask = read("cosmos_full_mask_0.29arcmin360.fits");
        let (e1, e2, mask) = (
            e1.as_standard_layout()
                .iter()
                .copied()
                .collect::<Vec<f32>>(),
            e2.as_standard_layout()
                .iter()
                .copied()
                .collect::<Vec<f32>>(),
            mask.as_standard_layout()
                .iter()
                .copied()
                .collect::<Vec<f32>>(),
        );
        let d1 = max_diff(&b.e1, &e1);
        let d2 = max_diff(&b.e2, &e2);
        let mask_diff = b
            .mask
            .iter()
            .zip(&mask)
            .filter(|(m, r)| **m != (**r > 0.5))
            .count();
        let std_diff = |ours: &[f32], name: &str| {
            let r = lensdiff::io::read_array_f64(&dir.join(name)).unwrap();
            assert_eq!(r.shape(), &[360, 360]);
            let r: Vec<f64> = r.as_standard_layout().iter().copied().collect();
            ours.iter()
                .zip(&r)
                .map(|(x, y)| (f64::from(*x) - y).abs())
                .fold(0.0, f64::max)
        };
        let s1 = std_diff(&b.std1, "std1.fits");
        let s2 = std_diff(&b.std2, "std2.fits");
        println!(
            "max |diff|: e1 {d1:.3e}, e2 {d2:.3e}, std1 {s1:.3e}, std2 {s2:.3e}; \
             mask: {} pixels, {mask_diff} differ",
            b.n_observed()
        );
        assert!(d1 <= 1e-6 && d2 <= 1e-6);
        assert_eq!(mask_diff, 0);
        assert_eq!(b.n_observed(), 69_191);
        assert!(s1 <= 1e-6 && s2 <= 1e-6);

        // Without the flip, e2 is the catalogue-frame (unnegated) map.
        let unflipped = bin_catalogue(
            &c,
            &BinningOptions {
                flip_e2: false,
                ..BinningOptions::jax_lensing(grid)
            },
        )
        .unwrap();
        let neg: Vec<f32> = e2.iter().map(|v| -v).collect();
        assert!(max_diff(&unflipped.e2, &neg) <= 1e-6);

        // The tangent-plane projection shrinks RA offsets by cos(dec0) and moves
        // a few hundred boundary pixels of the mask.
        let g = bin_catalogue(&c, &BinningOptions::new(grid)).unwrap();
        let changed = g.mask.iter().zip(&b.mask).filter(|(a, b)| a != b).count();
        println!(
            "gnomonic: {} mask pixels ({changed} differ from the plate mask), {} outside",
            g.n_observed(),
            g.n_outside
        );
        assert!(changed > 0 && changed < 2000, "{changed}");
    }
}
