//! Gradient and identity checks for the CPU neural-network layers in `lensdiff::nn`.
//!
//! Gradient checks: every layer function is generic over the storage type, so the
//! finite differences run in f64. For a random projection loss `L(θ) = <r, f(θ)>`
//! we compare the hand-written gradient with the central difference
//! `(L(θ + h e_i) - L(θ - h e_i)) / 2h`, `h = 1e-5`, for every component.
//!
//! Bound: `max_i |fd_i - g_i| / max_i |g_i| < 1e-6`. Rationale: inputs, weights and
//! `r` are O(1), so the truncation error `h²/6 |L'''|` is ~1e-11 and the rounding
//! error `ε_f64 |L| / h` is ~1e-10 (|L| ≲ 10); 1e-6 leaves four orders of margin
//! over both, while any genuine error in a backward pass (a missing term, a wrong
//! index, a wrong sign or factor) shows up at the 1e-2 … 1 level.
//! The f32 instantiation is checked separately against the f64 one.

mod common;

use lensdiff::nn::act::{silu_backward, silu_forward};
use lensdiff::nn::conv::{Conv2d, Padding};
use lensdiff::nn::embed::FourierEmbedding;
use lensdiff::nn::linear::Linear;
use lensdiff::nn::norm::GroupNorm;
use lensdiff::nn::resample::{
    avg_pool2_backward, avg_pool2_forward, upsample2_backward, upsample2_forward,
};
use lensdiff::nn::Dims4;
use lensdiff::Error;

const H: f64 = 1e-5;
const FD_TOL: f64 = 1e-6;

use common::{dot, SplitMix as Rng};

/// Central-difference gradient of `loss` at `theta`, compared with `analytic`.
fn fd_check(what: &str, theta: &[f64], analytic: &[f64], loss: impl Fn(&[f64]) -> f64) {
    common::fd_check(what, theta, analytic, H, FD_TOL, loss);
}

fn conv_grad_check(padding: Padding, k: usize, seed: u64) {
    let mut rng = Rng(seed);
    let dims = Dims4::new(2, 4, 6, 5);
    let conv = Conv2d::new(4, 3, k, padding).unwrap();
    let x = rng.vec(dims.len());
    let w = rng.vec(conv.weight_len());
    let b = rng.vec(3);
    let r = rng.vec(conv.output_dims(dims).len());
    let (dx, dw, db) = conv.backward(&x, dims, &w, &r).unwrap();
    fd_check("conv dx", &x, &dx, |t| {
        dot(&r, &conv.forward(t, dims, &w, &b).unwrap())
    });
    fd_check("conv dw", &w, &dw, |t| {
        dot(&r, &conv.forward(&x, dims, t, &b).unwrap())
    });
    fd_check("conv db", &b, &db, |t| {
        dot(&r, &conv.forward(&x, dims, &w, t).unwrap())
    });
}

#[test]
fn conv_gradients_periodic_3x3() {
    conv_grad_check(Padding::Periodic, 3, 1);
}

#[test]
fn conv_gradients_zero_3x3() {
    conv_grad_check(Padding::Zero, 3, 2);
}

#[test]
fn conv_gradients_periodic_and_zero_5x5() {
    // k = 5 on a 6 x 5 map: the periodic kernel wraps by two pixels on each side.
    conv_grad_check(Padding::Periodic, 5, 3);
    conv_grad_check(Padding::Zero, 5, 4);
    // k = 1 is a pointwise channel mix.
    conv_grad_check(Padding::Zero, 1, 5);
}

/// The direct sum of the module documentation, evaluated naively.
fn conv_direct(conv: &Conv2d, x: &[f64], d: Dims4, w: &[f64], b: &[f64]) -> Vec<f64> {
    let (k, cin, cout) = (conv.k(), conv.in_ch(), conv.out_ch());
    let r = (k / 2) as isize;
    let mut y = vec![0.0; d.n * cout * d.plane()];
    for n in 0..d.n {
        for o in 0..cout {
            for i in 0..d.h {
                for j in 0..d.w {
                    let mut s = b[o];
                    for c in 0..cin {
                        for p in 0..k {
                            for q in 0..k {
                                let (si, sj) =
                                    (i as isize + p as isize - r, j as isize + q as isize - r);
                                let (si, sj) = match conv.padding() {
                                    Padding::Periodic => (
                                        si.rem_euclid(d.h as isize) as usize,
                                        sj.rem_euclid(d.w as isize) as usize,
                                    ),
                                    Padding::Zero => {
                                        if si < 0
                                            || sj < 0
                                            || si >= d.h as isize
                                            || sj >= d.w as isize
                                        {
                                            continue;
                                        }
                                        (si as usize, sj as usize)
                                    }
                                };
                                s += w[((o * cin + c) * k + p) * k + q]
                                    * x[((n * cin + c) * d.h + si) * d.w + sj];
                            }
                        }
                    }
                    y[((n * cout + o) * d.h + i) * d.w + j] = s;
                }
            }
        }
    }
    y
}

#[test]
fn conv_matches_direct_sum_across_row_tiles() {
    // 16 channels of 70 x 130: a tile's X_col holds 2^17 elements, 7 rows of
    // 16·9·130, so each item has 10 row tiles and the weight gradient sums 20
    // tiles in 7 groups of 3 (forward, dx and dw across tiles are exercised).
    let mut rng = Rng(11);
    let (cin, cout) = (16, 3);
    let dims = Dims4::new(2, cin, 70, 130);
    for padding in [Padding::Periodic, Padding::Zero] {
        let conv = Conv2d::new(cin, cout, 3, padding).unwrap();
        let (x, w, b) = (
            rng.vec(dims.len()),
            rng.vec(conv.weight_len()),
            rng.vec(cout),
        );
        let y = conv.forward(&x, dims, &w, &b).unwrap();
        let yd = conv_direct(&conv, &x, dims, &w, &b);
        assert!(max_abs_diff(&y, &yd) < 1e-12, "{padding:?}");
        // <conv(x) - b, r> = <x, dx(r)> and dw from the same identity per weight.
        let r = rng.vec(y.len());
        let (dx, dw, db) = conv.backward(&x, dims, &w, &r).unwrap();
        let zero_b = vec![0.0; cout];
        let lhs = dot(&r, &conv.forward(&x, dims, &w, &zero_b).unwrap());
        assert!((lhs - dot(&x, &dx)).abs() < 1e-10 * lhs.abs().max(1.0));
        assert!((lhs - dot(&w, &dw)).abs() < 1e-10 * lhs.abs().max(1.0));
        let sum_r: Vec<f64> = (0..cout)
            .map(|o| {
                (0..dims.n)
                    .map(|n| {
                        r[(n * cout + o) * dims.plane()..][..dims.plane()]
                            .iter()
                            .sum::<f64>()
                    })
                    .sum()
            })
            .collect();
        assert!(max_abs_diff(&db, &sum_r) < 1e-10);
        // the same bits with 1 and 3 threads (tiles and sums are fixed by
        // the shapes alone)
        let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let wf: Vec<f32> = w.iter().map(|&v| v as f32).collect();
        let rf: Vec<f32> = r.iter().map(|&v| v as f32).collect();
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    let y = conv.forward(&xf, dims, &wf, &[0.5; 3]).unwrap();
                    (y, conv.backward(&xf, dims, &wf, &rf).unwrap())
                })
        };
        assert!(
            run(1) == run(3),
            "{padding:?}: thread count changed the results"
        );
    }
}

/// Cyclic shift of every plane by (sy, sx): out[i][j] = in[i - sy][j - sx].
fn roll(x: &[f64], dims: Dims4, sy: usize, sx: usize) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    for (op, ip) in out.chunks_mut(dims.plane()).zip(x.chunks(dims.plane())) {
        for i in 0..dims.h {
            for j in 0..dims.w {
                op[((i + sy) % dims.h) * dims.w + (j + sx) % dims.w] = ip[i * dims.w + j];
            }
        }
    }
    out
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn periodic_conv_is_shift_equivariant() {
    let mut rng = Rng(5);
    let dims = Dims4::new(2, 4, 6, 5);
    let x = rng.vec(dims.len());
    let (sy, sx) = (2, 3);
    let xs = roll(&x, dims, sy, sx);
    for k in [3, 5] {
        let conv = Conv2d::new(4, 3, k, Padding::Periodic).unwrap();
        let w = rng.vec(conv.weight_len());
        let b = rng.vec(3);
        let y = conv.forward(&x, dims, &w, &b).unwrap();
        let ys = conv.forward(&xs, dims, &w, &b).unwrap();
        let err = max_abs_diff(&ys, &roll(&y, conv.output_dims(dims), sy, sx));
        assert!(
            err < 1e-12,
            "k = {k}: conv(shift x) != shift conv(x), max diff {err:e}"
        );

        // Control: zero padding is not shift-equivariant, so the comparison above can fail.
        let zconv = Conv2d::new(4, 3, k, Padding::Zero).unwrap();
        let y = zconv.forward(&x, dims, &w, &b).unwrap();
        let ys = zconv.forward(&xs, dims, &w, &b).unwrap();
        assert!(max_abs_diff(&ys, &roll(&y, zconv.output_dims(dims), sy, sx)) > 1e-3);
    }
}

#[test]
fn conv_adjoint_identity() {
    // <conv(x) - b, y> = <x, conv^T(y)>, conv^T(y) being dx from backward with dy = y.
    let mut rng = Rng(6);
    let dims = Dims4::new(2, 4, 6, 5);
    for padding in [Padding::Periodic, Padding::Zero] {
        let conv = Conv2d::new(4, 3, 3, padding).unwrap();
        let x = rng.vec(dims.len());
        let w = rng.vec(conv.weight_len());
        let y = rng.vec(conv.output_dims(dims).len());
        let cx = conv.forward(&x, dims, &w, &[0.0; 3]).unwrap();
        let (cty, _, _) = conv.backward(&x, dims, &w, &y).unwrap();
        let (lhs, rhs) = (dot(&cx, &y), dot(&x, &cty));
        assert!(
            (lhs - rhs).abs() < 1e-12 * lhs.abs().max(1.0),
            "{padding:?}: {lhs} vs {rhs}"
        );

        // The same identity in f32 storage (f64 accumulation): agreement to f32 rounding.
        let f = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        let (x32, w32, y32) = (f(&x), f(&w), f(&y));
        let cx32 = conv.forward(&x32, dims, &w32, &[0.0f32; 3]).unwrap();
        let (cty32, _, _) = conv.backward(&x32, dims, &w32, &y32).unwrap();
        let d = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(p, q)| *p as f64 * *q as f64)
                .sum::<f64>()
        };
        let (l32, r32) = (d(&cx32, &y32), d(&x32, &cty32));
        assert!(
            (l32 - r32).abs() < 1e-5 * l32.abs().max(1.0),
            "{padding:?} f32: {l32} vs {r32}"
        );
    }
}

/// The `f32` convolution against the `f64` one, forward and input gradient,
/// on odd shapes (channel counts and tile widths that are not multiples of a
/// GEMM kernel's blocks) with several row tiles per item. Bound: inputs in [-1, 1) rounded to `f32`
/// and sums of `K = k² C` products in `f32` give `|err| <= (K + 2) u K`
/// (`u = 2^-24`; Higham 2002, eq. 3.5), plus the bias's rounding.
#[test]
fn f32_convolution_matches_f64_on_odd_shapes() {
    let mut rng = Rng(17);
    for (cin, cout, k, h, w, pad) in [
        (13, 7, 3, 37, 150, Padding::Periodic),
        (5, 11, 3, 9, 21, Padding::Zero),
        (3, 1, 5, 17, 19, Padding::Periodic),
        (20, 9, 1, 30, 33, Padding::Zero),
    ] {
        let dims = Dims4::new(2, cin, h, w);
        let conv = Conv2d::new(cin, cout, k, pad).unwrap();
        let x = rng.vec(dims.len());
        let wt = rng.vec(conv.weight_len());
        let b = rng.vec(cout);
        let r = rng.vec(dims.n * cout * h * w);
        let f = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        let y64 = conv.forward(&x, dims, &wt, &b).unwrap();
        let y32 = conv.forward(&f(&x), dims, &f(&wt), &f(&b)).unwrap();
        let d64 = conv.backward_input(dims, &wt, &r).unwrap();
        let d32 = conv.backward_input(dims, &f(&wt), &f(&r)).unwrap();
        let u = 2f64.powi(-24);
        for (name, a, c, kk) in [
            ("forward", &y64, &y32, k * k * cin),
            ("dx", &d64, &d32, k * k * cout),
        ] {
            let bound = (kk as f64 + 2.0) * u * kk as f64 + 2.0 * u;
            let err = a
                .iter()
                .zip(c)
                .fold(0.0f64, |m, (a, c)| m.max((a - *c as f64).abs()));
            assert!(
                err <= bound,
                "{cin}->{cout} k{k} {h}x{w} {pad:?} {name}: {err:e} > {bound:e}"
            );
            assert!(c.iter().all(|v| v.is_finite()));
        }
    }
}

#[test]
fn f32_layers_match_f64() {
    let mut rng = Rng(7);
    let dims = Dims4::new(2, 4, 6, 5);
    let x = rng.vec(dims.len());
    let conv = Conv2d::new(4, 4, 3, Padding::Periodic).unwrap();
    let w = rng.vec(conv.weight_len());
    let b = rng.vec(4);
    let f = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
    let y64 = conv.forward(&x, dims, &w, &b).unwrap();
    let y32 = conv.forward(&f(&x), dims, &f(&w), &f(&b)).unwrap();
    let err = y64
        .iter()
        .zip(&y32)
        .fold(0.0f64, |m, (a, c)| m.max((a - *c as f64).abs()));
    assert!(err < 1e-5, "conv f32 vs f64: {err:e}");

    let gn = GroupNorm::new(4, 2).unwrap();
    let (g, be) = (rng.vec(4), rng.vec(4));
    let (z64, _) = gn.forward(&y64, dims, &g, &be).unwrap();
    let (z32, _) = gn.forward(&f(&y64), dims, &f(&g), &f(&be)).unwrap();
    let err = z64
        .iter()
        .zip(&z32)
        .fold(0.0f64, |m, (a, c)| m.max((a - *c as f64).abs()));
    assert!(err < 1e-5, "groupnorm f32 vs f64: {err:e}");
}

#[test]
fn groupnorm_gradients() {
    let mut rng = Rng(8);
    let dims = Dims4::new(2, 4, 6, 5);
    for groups in [1, 2, 4] {
        let gn = GroupNorm::new(4, groups).unwrap();
        let x = rng.vec(dims.len());
        let gamma: Vec<f64> = rng.vec(4).iter().map(|v| 1.0 + 0.5 * v).collect();
        let beta = rng.vec(4);
        let r = rng.vec(dims.len());
        let (_, cache) = gn.forward(&x, dims, &gamma, &beta).unwrap();
        let (dx, dg, db) = gn.backward(&x, dims, &gamma, &cache, &r).unwrap();
        let loss = |x: &[f64], g: &[f64], b: &[f64]| dot(&r, &gn.forward(x, dims, g, b).unwrap().0);
        fd_check("groupnorm dx", &x, &dx, |t| loss(t, &gamma, &beta));
        fd_check("groupnorm dgamma", &gamma, &dg, |t| loss(&x, t, &beta));
        fd_check("groupnorm dbeta", &beta, &db, |t| loss(&x, &gamma, t));
    }
}

#[test]
fn groupnorm_normalises_each_group() {
    let mut rng = Rng(9);
    let dims = Dims4::new(2, 4, 6, 5);
    let gn = GroupNorm::new(4, 2).unwrap();
    // Groups with different offsets and scales: x = 3 + 2 u, u uniform in [-1, 1).
    let x: Vec<f64> = rng.vec(dims.len()).iter().map(|u| 3.0 + 2.0 * u).collect();
    let (y, cache) = gn.forward(&x, dims, &[1.0; 4], &[0.0; 4]).unwrap();
    let block = 2 * dims.plane();
    for (gi, yb) in y.chunks(block).enumerate() {
        let m = block as f64;
        let mean = yb.iter().sum::<f64>() / m;
        let var = yb.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / m;
        assert!(mean.abs() < 1e-12, "group {gi}: mean {mean:e}");
        // Exactly var/(var + eps) in theory; with var ≈ 4/3 that is 1 - 7.5e-6.
        assert!((var - 1.0).abs() < 2e-5, "group {gi}: variance {var}");
        assert!((cache.mean[gi] - 3.0).abs() < 0.5);
    }
    // The affine is applied per channel after normalisation.
    let gamma = [2.0, -1.0, 0.5, 3.0];
    let beta = [0.1, 0.2, -0.3, 0.4];
    let (z, _) = gn.forward(&x, dims, &gamma, &beta).unwrap();
    for (idx, (zp, yp)) in z
        .chunks(dims.plane())
        .zip(y.chunks(dims.plane()))
        .enumerate()
    {
        let c = idx % 4;
        for (a, b) in zp.iter().zip(yp) {
            assert!((a - (gamma[c] * b + beta[c])).abs() < 1e-12);
        }
    }
}

#[test]
fn silu_gradient() {
    let mut rng = Rng(10);
    let x: Vec<f64> = rng.vec(240).iter().map(|v| 4.0 * v).collect();
    let r = rng.vec(240);
    let dx = silu_backward(&x, &r).unwrap();
    fd_check("silu dx", &x, &dx, |t| dot(&r, &silu_forward(t)));
}

#[test]
fn resample_gradients_and_adjoints() {
    let mut rng = Rng(11);
    let dims = Dims4::new(2, 4, 6, 4);
    let x = rng.vec(dims.len());
    let (p, pd) = avg_pool2_forward(&x, dims).unwrap();
    assert_eq!(pd, Dims4::new(2, 4, 3, 2));
    let rp = rng.vec(pd.len());
    let dxp = avg_pool2_backward(dims, &rp).unwrap();
    fd_check("avg_pool2 dx", &x, &dxp, |t| {
        dot(&rp, &avg_pool2_forward(t, dims).unwrap().0)
    });

    let (u, ud) = upsample2_forward(&x, dims).unwrap();
    assert_eq!(ud, Dims4::new(2, 4, 12, 8));
    let ru = rng.vec(ud.len());
    let dxu = upsample2_backward(dims, &ru).unwrap();
    fd_check("upsample2 dx", &x, &dxu, |t| {
        dot(&ru, &upsample2_forward(t, dims).unwrap().0)
    });

    // Adjoint up to a factor: <pool(x), y> = (1/4) <x, up(y)> for x on the fine grid.
    let yc = rng.vec(pd.len());
    let (up_y, _) = upsample2_forward(&yc, pd).unwrap();
    let (lhs, rhs) = (dot(&p, &yc), 0.25 * dot(&x, &up_y));
    assert!(
        (lhs - rhs).abs() < 1e-12,
        "<pool x, y> = {lhs}, <x, up y>/4 = {rhs}"
    );
    // And each backward is the exact adjoint of its forward.
    assert!((dot(&p, &yc) - dot(&x, &avg_pool2_backward(dims, &yc).unwrap())).abs() < 1e-12);
    assert!((dot(&u, &ru) - dot(&x, &dxu)).abs() < 1e-12);
}

#[test]
fn linear_gradients() {
    let mut rng = Rng(12);
    let (batch, fi, fo) = (2, 5, 3);
    let lin = Linear::new(fi, fo).unwrap();
    let x = rng.vec(batch * fi);
    let w = rng.vec(lin.weight_len());
    let b = rng.vec(fo);
    let r = rng.vec(batch * fo);
    let (dx, dw, db) = lin.backward(&x, batch, &w, &r).unwrap();
    fd_check("linear dx", &x, &dx, |t| {
        dot(&r, &lin.forward(t, batch, &w, &b).unwrap())
    });
    fd_check("linear dw", &w, &dw, |t| {
        dot(&r, &lin.forward(&x, batch, t, &b).unwrap())
    });
    fd_check("linear db", &b, &db, |t| {
        dot(&r, &lin.forward(&x, batch, &w, t).unwrap())
    });
}

#[test]
fn fourier_embedding_values() {
    let freqs = vec![0.25, 1.0, 2.5];
    let emb = FourierEmbedding::new(freqs.clone()).unwrap();
    assert_eq!(emb.dim(), 6);
    let sigma = [0.01f64, 1.0, 7.0];
    let e = emb.forward(&sigma).unwrap();
    assert_eq!(e.len(), 3 * 6);
    for (n, s) in sigma.iter().enumerate() {
        let u = s.ln();
        for (i, f) in freqs.iter().enumerate() {
            let a = 2.0 * std::f64::consts::PI * f * u;
            assert!((e[n * 6 + i] - a.cos()).abs() < 1e-14);
            assert!((e[n * 6 + 3 + i] - a.sin()).abs() < 1e-14);
        }
    }
    let e32 = emb.forward(&[7.0f32]).unwrap();
    assert!((e32[5] as f64 - e[2 * 6 + 5]).abs() < 1e-6);
}

#[test]
fn error_cases() {
    let dims = Dims4::new(2, 4, 6, 5);
    let x = vec![0.0f32; dims.len()];
    let shape = |r: Result<_, Error>| matches!(r, Err(Error::ShapeMismatch { .. }));
    let invalid = |r: Result<_, Error>| matches!(r, Err(Error::InvalidArgument { .. }));

    // Convolution.
    assert!(invalid(Conv2d::new(4, 3, 2, Padding::Zero).map(|_| ())));
    assert!(invalid(Conv2d::new(4, 3, 0, Padding::Zero).map(|_| ())));
    assert!(invalid(Conv2d::new(0, 3, 3, Padding::Zero).map(|_| ())));
    let conv = Conv2d::new(4, 3, 3, Padding::Periodic).unwrap();
    let w = vec![0.0f32; conv.weight_len()];
    let b = vec![0.0f32; 3];
    assert!(conv.forward(&x, dims, &w, &b).is_ok());
    assert!(shape(conv.forward(&x[1..], dims, &w, &b).map(|_| ())));
    assert!(shape(conv.forward(&x, dims, &w[1..], &b).map(|_| ())));
    assert!(shape(conv.forward(&x, dims, &w, &b[1..]).map(|_| ())));
    assert!(shape(
        conv.forward(&x[..60], Dims4::new(1, 2, 6, 5), &w, &b)
            .map(|_| ())
    ));
    assert!(invalid(
        conv.forward(&[] as &[f32], Dims4::new(0, 4, 6, 5), &w, &b)
            .map(|_| ())
    ));
    let dy = vec![0.0f32; conv.output_dims(dims).len()];
    assert!(conv.backward(&x, dims, &w, &dy).is_ok());
    assert!(shape(conv.backward(&x, dims, &w, &dy[1..]).map(|_| ())));
    assert!(shape(conv.backward(&x, dims, &w, &x).map(|_| ())));

    // GroupNorm.
    assert!(invalid(GroupNorm::new(4, 3).map(|_| ())));
    let gn = GroupNorm::new(4, 2).unwrap();
    let g = [1.0f32; 4];
    assert!(shape(gn.forward(&x, dims, &g[..3], &g).map(|_| ())));
    assert!(shape(gn.forward(&x, dims, &g, &g[..3]).map(|_| ())));
    assert!(shape(
        gn.forward(&x[..150], Dims4::new(1, 5, 6, 5), &g, &g)
            .map(|_| ())
    ));
    let (_, cache) = gn.forward(&x, dims, &g, &g).unwrap();
    assert!(gn.backward(&x, dims, &g, &cache, &x).is_ok());
    assert!(shape(
        gn.backward(&x, dims, &g, &cache, &x[1..]).map(|_| ())
    ));
    let (_, other) = gn
        .forward(&x[..120], Dims4::new(1, 4, 6, 5), &g, &g)
        .unwrap();
    assert!(shape(gn.backward(&x, dims, &g, &other, &x).map(|_| ())));

    // SiLU.
    assert!(shape(silu_backward(&x, &x[1..]).map(|_| ())));

    // Resampling.
    assert!(invalid(avg_pool2_forward(&x, dims).map(|_| ()))); // width 5 is odd
    let even = Dims4::new(2, 4, 6, 4);
    let xe = vec![0.0f32; even.len()];
    assert!(avg_pool2_forward(&xe, even).is_ok());
    assert!(shape(avg_pool2_forward(&xe[1..], even).map(|_| ())));
    assert!(shape(avg_pool2_backward(even, &xe).map(|_| ())));
    assert!(invalid(avg_pool2_backward(dims, &xe).map(|_| ())));
    assert!(shape(upsample2_forward(&xe[1..], even).map(|_| ())));
    assert!(shape(upsample2_backward(even, &xe).map(|_| ())));
    assert!(invalid(
        upsample2_forward(&xe, Dims4::new(2, 4, usize::MAX / 2, 4)).map(|_| ())
    ));

    // Linear.
    assert!(invalid(Linear::new(3, 0).map(|_| ())));
    let lin = Linear::new(5, 3).unwrap();
    let wl = vec![0.0f32; 15];
    assert!(shape(lin.forward(&x[..9], 2, &wl, &b).map(|_| ())));
    assert!(invalid(lin.forward(&x[..0], 0, &wl, &b).map(|_| ())));
    assert!(shape(lin.backward(&x[..10], 2, &wl, &b).map(|_| ())));

    // Embedding.
    assert!(invalid(FourierEmbedding::new(vec![]).map(|_| ())));
    assert!(matches!(
        FourierEmbedding::new(vec![1.0, f64::NAN]),
        Err(Error::NonFinite { index: 1, .. })
    ));
    let emb = FourierEmbedding::new(vec![1.0]).unwrap();
    assert!(invalid(emb.forward(&[1.0f32, -1.0]).map(|_| ())));
    assert!(invalid(emb.forward(&[f32::INFINITY]).map(|_| ())));
    assert!(invalid(emb.forward(&[] as &[f32]).map(|_| ())));
}
