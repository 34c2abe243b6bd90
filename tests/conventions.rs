//! The conventions of `docs/conventions.md`: Kaiser–Squires signs, adjoint, round trips,
//! E/B separation, power normalisation.

mod common;

use lensdiff::lensing::KaiserSquires;
use lensdiff::spectrum::{bin_edges, estimate_cl, Binning, ClTable};
use lensdiff::Grid;

use common::dot;

fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

#[test]
fn adjoint_identity_on_odd_even_and_rectangular_grids() {
    for (nx, ny) in [(8, 8), (9, 9), (12, 7), (5, 16)] {
        let g = Grid::new(nx, ny, 1.0).unwrap();
        let n = g.len();
        // f64: identity to 1e-12 relative
        let ks = KaiserSquires::<f64>::new(g);
        let k = to64(&common::noise_vec(n, 1));
        let (a1, a2) = (
            to64(&common::noise_vec(n, 2)),
            to64(&common::noise_vec(n, 3)),
        );
        let (mut p1, mut p2) = (vec![0.0; n], vec![0.0; n]);
        ks.forward(&k, &mut p1, &mut p2).unwrap();
        let mut pt = vec![0.0; n];
        ks.adjoint(&a1, &a2, &mut pt).unwrap();
        let lhs = dot(&p1, &a1) + dot(&p2, &a2);
        let rhs = dot(&k, &pt);
        assert!(
            (lhs - rhs).abs() <= 1e-12 * lhs.abs().max(rhs.abs()),
            "{nx}x{ny}: {lhs} {rhs}"
        );
        // f32: identity to single precision (1e-5 relative)
        let ks32 = KaiserSquires::<f32>::new(g);
        let k32 = common::noise_vec(n, 1);
        let (b1, b2) = (common::noise_vec(n, 2), common::noise_vec(n, 3));
        let (mut q1, mut q2, mut qt) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
        ks32.forward(&k32, &mut q1, &mut q2).unwrap();
        ks32.adjoint(&b1, &b2, &mut qt).unwrap();
        let l32 = dot(&to64(&q1), &to64(&b1)) + dot(&to64(&q2), &to64(&b2));
        let r32 = dot(&to64(&k32), &to64(&qt));
        assert!(
            (l32 - r32).abs() <= 1e-5 * l32.abs().max(r32.abs()),
            "{l32} {r32}"
        );
    }
}

#[test]
fn round_trip_exact_on_odd_and_on_even_after_removing_nyquist() {
    for (nx, ny) in [(9, 9), (7, 11), (8, 8), (16, 10)] {
        let g = Grid::new(nx, ny, 1.0).unwrap();
        let n = g.len();
        let ks = KaiserSquires::<f64>::new(g);
        let mut k = to64(&common::noise_vec(n, 5));
        // the mean is never recoverable; on even sizes the Nyquist modes are not either
        ks.project_recoverable(&mut k).unwrap();
        let (mut g1, mut g2) = (vec![0.0; n], vec![0.0; n]);
        ks.forward(&k, &mut g1, &mut g2).unwrap();
        let (mut e, mut b) = (vec![0.0; n], vec![0.0; n]);
        ks.inverse_eb(&g1, &g2, &mut e, &mut b).unwrap();
        let err = e
            .iter()
            .zip(&k)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-12, "{nx}x{ny}: round trip error {err}");
        // a pure E field has no B mode
        let bmax = b.iter().map(|v| v.abs()).fold(0.0, f64::max);
        assert!(bmax < 1e-12, "{nx}x{ny}: B = {bmax}");
    }
    // without removing the Nyquist modes an even grid does NOT round-trip: the test can fail
    let g = Grid::square(8, 1.0).unwrap();
    let ks = KaiserSquires::<f64>::new(g);
    let mut k = to64(&common::noise_vec(64, 5));
    let m = k.iter().sum::<f64>() / 64.0;
    k.iter_mut().for_each(|v| *v -= m);
    let (mut g1, mut g2, mut e, mut b) =
        (vec![0.0; 64], vec![0.0; 64], vec![0.0; 64], vec![0.0; 64]);
    ks.forward(&k, &mut g1, &mut g2).unwrap();
    ks.inverse_eb(&g1, &g2, &mut e, &mut b).unwrap();
    let err = e
        .iter()
        .zip(&k)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(err > 1e-3);
}

#[test]
fn batched_forward_equals_map_by_map() {
    let g = Grid::new(10, 6, 1.0).unwrap();
    let n = g.len();
    let ks = KaiserSquires::<f32>::new(g);
    let k = common::noise_vec(3 * n, 8);
    let (mut g1, mut g2) = (vec![0.0f32; 3 * n], vec![0.0f32; 3 * n]);
    ks.forward(&k, &mut g1, &mut g2).unwrap();
    let (mut h1, mut h2) = (vec![0.0f32; n], vec![0.0f32; n]);
    ks.forward(&k[n..2 * n], &mut h1, &mut h2).unwrap();
    assert_eq!(&g1[n..2 * n], &h1[..]);
    assert_eq!(&g2[n..2 * n], &h2[..]);
    let mut bad = vec![0.0f32; n];
    assert!(ks.forward(&k, &mut bad, &mut h2).is_err());
}

#[test]
fn ell_convention_is_not_the_360_pixel_shortcut() {
    // ell = 2 pi |k| / Δ; on a 256-pixel map the shortcut 2 pi k / Δ / 360 is wrong.
    let g = Grid::square(256, 1.0).unwrap();
    let delta = 1.0f64.to_radians() / 60.0;
    let expect = 2.0 * std::f64::consts::PI * (3.0 / 256.0) / delta;
    assert!((g.ell(0, 3) - expect).abs() < 1e-9 * expect);
}

#[test]
fn pixel_power_normalisation() {
    // A flat C_ell = s² Δ² gives P_pix = s² at every k != 0.
    let g = Grid::square(32, 2.0).unwrap();
    let s2 = 0.01;
    let c = s2 * g.pixel_area_sr();
    let t = ClTable::new(vec![1.0, 1e6], vec![c, c]).unwrap();
    let p = t.pixel_power(&g);
    assert_eq!(p[0], 0.0);
    assert!(p[1..].iter().all(|&v| (v - s2).abs() < 1e-12 * s2));
    // and the estimator returns the table for white noise: see spectrum unit tests;
    // here an estimate from a single flat map must be rejected for a NaN pixel
    let mut m = vec![0.0f32; g.len()];
    m[3] = f32::NAN;
    let edges = bin_edges(&g, Binning::Log(5)).unwrap();
    assert!(estimate_cl(&g, &m, None, &edges).is_err());
}
