//! Argument shapes of every [`Backend`] method on the CPU backend (issue #12):
//! a mismatched, empty or non-multiple length is a typed error
//! ([`Error::ShapeMismatch`] / [`Error::InvalidArgument`]), never a panic and
//! never a silent `Ok`; correct shapes succeed. Both backends run the same
//! checks (`src/backend/shape.rs`), so this is also what CUDA returns.

mod common;

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};

use lensdiff::backend::cpu::Cpu;
use lensdiff::backend::elementwise::{run_named, Row, OPERATIONS};
use lensdiff::backend::{Backend, Elementwise, NoiseKey, Real};
use lensdiff::rng::Stream;
use lensdiff::{Error, Grid, Result};

use common::panic_text;

/// Grid 4 x 3: `N` pixels, `M` half-spectrum modes per map; batches of 2.
const N: usize = 12;
const M: usize = 9;
const B: usize = 2;
/// A batch of maps and of half spectra (interleaved complex values).
const X: usize = B * N;
const S: usize = 2 * B * M;

fn grid() -> Grid {
    Grid::new(4, 3, 1.0).unwrap()
}

fn f(len: usize) -> Vec<f32> {
    (0..len).map(|i| 0.25 + i as f32 / 64.0).collect()
}

fn d(len: usize) -> Vec<f64> {
    (0..len).map(|i| 0.5 + i as f64 / 32.0).collect()
}

/// [`f`] or [`d`], whichever `T` is.
fn r<T: Real>(len: usize) -> Vec<T> {
    d(len).into_iter().map(T::narrow).collect()
}

fn u(len: usize) -> Vec<u32> {
    (0..len as u32).map(|i| i % 2).collect()
}

fn key() -> NoiseKey {
    NoiseKey {
        seed: 7,
        stream: Stream::Sampler,
        first_chain: 0,
    }
}

/// Runs calls, records the methods seen and what went wrong.
#[derive(Default)]
struct Probe {
    methods: BTreeSet<&'static str>,
    failures: Vec<String>,
    calls: usize,
}

impl Probe {
    /// A call with a bad shape: must return a shape / argument error.
    fn bad(&mut self, method: &'static str, case: &str, call: impl FnOnce() -> Result<()>) {
        self.methods.insert(method);
        self.calls += 1;
        match catch_unwind(AssertUnwindSafe(call)) {
            Err(p) => self
                .failures
                .push(format!("{method} ({case}): panicked: {}", panic_text(p))),
            Ok(Ok(())) => self
                .failures
                .push(format!("{method} ({case}): returned Ok")),
            Ok(Err(Error::ShapeMismatch { .. } | Error::InvalidArgument { .. })) => {}
            Ok(Err(e)) => self
                .failures
                .push(format!("{method} ({case}): not a shape error: {e}")),
        }
    }

    /// A call with a mismatched length: must return [`Error::ShapeMismatch`]
    /// (not merely an argument error).
    fn mismatch(&mut self, method: &'static str, case: &str, call: impl FnOnce() -> Result<()>) {
        self.methods.insert(method);
        self.calls += 1;
        match catch_unwind(AssertUnwindSafe(call)) {
            Err(p) => self
                .failures
                .push(format!("{method} ({case}): panicked: {}", panic_text(p))),
            Ok(Ok(())) => self
                .failures
                .push(format!("{method} ({case}): returned Ok")),
            Ok(Err(Error::ShapeMismatch { .. })) => {}
            Ok(Err(e)) => self
                .failures
                .push(format!("{method} ({case}): not a shape mismatch: {e}")),
        }
    }

    /// A call with correct shapes: must succeed.
    fn good(&mut self, method: &'static str, call: impl FnOnce() -> Result<()>) {
        self.methods.insert(method);
        self.calls += 1;
        match catch_unwind(AssertUnwindSafe(call)) {
            Err(p) => self.failures.push(format!(
                "{method} (valid shapes): panicked: {}",
                panic_text(p)
            )),
            Ok(Err(e)) => self.failures.push(format!("{method} (valid shapes): {e}")),
            Ok(Ok(())) => {}
        }
    }
}

/// The methods of the `Backend` trait that take buffers or sizes (all but
/// memory management), from its source.
fn shaped_methods() -> BTreeSet<String> {
    let src = include_str!("../src/backend/mod.rs");
    let body = src
        .split("pub trait Backend")
        .nth(1)
        .and_then(|t| t.split("\n}\n").next())
        .unwrap_or_default();
    body.lines()
        .filter_map(|l| l.trim_start().strip_prefix("fn "))
        .map(|l| l.split(['(', '<']).next().unwrap_or("").to_string())
        .filter(|m| {
            ![
                "describe",
                "alloc",
                "upload",
                "download",
                "len",
                "synchronize",
            ]
            .contains(&m.as_str())
        })
        .collect()
}

/// Runs the row `op` by name on buffers of `len` elements, input `short`
/// (when given) one element shorter.
fn named<T: Real>(be: &Cpu, op: &Row, len: usize, short: Option<usize>) -> Result<()> {
    let ins: Vec<Vec<T>> = (0..op.inputs.len())
        .map(|k| r(if short == Some(k) { len - 1 } else { len }))
        .collect();
    let ins: Vec<&Vec<T>> = ins.iter().collect();
    let scalars = vec![T::narrow(0.5); op.scalars.len()];
    run_named(be, op.name, &mut r(len), &ins, &scalars)
}

/// Every input of the row `op` in turn one element short: a shape mismatch;
/// a wrong number of inputs or scalars: an argument error.
fn bad_rows<T: Real>(be: &Cpu, p: &mut Probe, op: &Row) {
    let t = std::any::type_name::<T>();
    for (k, input) in op.inputs.iter().enumerate() {
        p.mismatch(
            "elementwise",
            &format!("{} {t}, {input} short", op.name),
            || named::<T>(be, op, X, Some(k)),
        );
        p.mismatch(
            "elementwise",
            &format!("{} {t}, {input} empty", op.name),
            || {
                let ins: Vec<Vec<T>> = (0..op.inputs.len())
                    .map(|j| r(if j == k { 0 } else { X }))
                    .collect();
                let ins: Vec<&Vec<T>> = ins.iter().collect();
                run_named(
                    be,
                    op.name,
                    &mut r(X),
                    &ins,
                    &vec![T::narrow(0.5); op.scalars.len()],
                )
            },
        );
    }
    p.bad(
        "elementwise",
        &format!("{} {t}, an input too many", op.name),
        || {
            let ins: Vec<Vec<T>> = (0..=op.inputs.len()).map(|_| r(X)).collect();
            let ins: Vec<&Vec<T>> = ins.iter().collect();
            run_named(
                be,
                op.name,
                &mut r(X),
                &ins,
                &vec![T::narrow(0.5); op.scalars.len()],
            )
        },
    );
    p.bad(
        "elementwise",
        &format!("{} {t}, a scalar too many", op.name),
        || {
            let ins: Vec<Vec<T>> = (0..op.inputs.len()).map(|_| r(X)).collect();
            let ins: Vec<&Vec<T>> = ins.iter().collect();
            run_named(
                be,
                op.name,
                &mut r(X),
                &ins,
                &vec![T::narrow(0.5); op.scalars.len() + 1],
            )
        },
    );
}

#[test]
fn every_cpu_method_rejects_bad_shapes_without_panicking() {
    let be = Cpu::new();
    let g = grid();
    let mut p = Probe::default();

    p.bad("copy", "dst shorter", || be.copy(&f(X), &mut f(X - 1)));
    p.bad("copy", "dst empty", || be.copy(&f(X), &mut f(0)));

    // FFTs: maps a multiple of N, spectra exactly 2 M per map
    let bad_grid = Grid {
        nx: 0,
        ny: 3,
        pixel_arcmin: 1.0,
    };
    for (m, s, case) in [
        (X - 1, S, "maps not a multiple of N"),
        (0, 0, "empty"),
        (X, S - 2, "spectra one mode short"),
        (X, S + 1, "spectra of odd length"),
        (X, S + 2, "spectra one mode long"),
    ] {
        p.bad("fft_forward", case, || be.fft_forward(&g, &f(m), &mut f(s)));
        p.bad("fft_inverse", case, || {
            be.fft_inverse(&g, &mut f(s), &mut f(m))
        });
        p.bad("fft_forward", &format!("f64, {case}"), || {
            be.fft_forward(&g, &d(m), &mut d(s))
        });
        p.bad("fft_inverse", &format!("f64, {case}"), || {
            be.fft_inverse(&g, &mut d(s), &mut d(m))
        });
    }
    p.bad("fft_forward", "a 0 x 3 grid", || {
        be.fft_forward(&bad_grid, &f(5), &mut f(S))
    });
    p.bad("fft_inverse", "a 0 x 3 grid", || {
        be.fft_inverse(&bad_grid, &mut f(S), &mut f(5))
    });
    p.bad("fft_forward", "f64, a 0 x 3 grid", || {
        be.fft_forward(&bad_grid, &d(5), &mut d(S))
    });
    p.bad("fft_inverse", "f64, a 0 x 3 grid", || {
        be.fft_inverse(&bad_grid, &mut d(S), &mut d(5))
    });

    p.bad("fill_normal", "n = 0", || {
        be.fill_normal(&mut f(X), 0, key(), 0)
    });
    p.bad("fill_normal", "not a multiple", || {
        be.fill_normal(&mut f(X + 1), N, key(), 0)
    });
    p.bad("fill_normal", "empty", || {
        be.fill_normal(&mut f(0), N, key(), 0)
    });

    // Kaiser-Squires multipliers: every spectrum S, p1 and p2 M
    for (k, p1, p2, g1, g2, case) in [
        (S, M, M - 1, S, S, "p2 shorter"),
        (S, M, M + 1, S, S, "p2 longer"),
        (S, M, M, S, S - 2, "second spectrum short"),
        (S, M, M, S - 2, S, "first spectrum short"),
        (S - 1, M, M, S - 1, S - 1, "spectra not a multiple"),
        (S, 0, 0, S, S, "no modes"),
    ] {
        p.bad("ks_forward_multiply", case, || {
            be.ks_forward_multiply(&f(k), &f(p1), &f(p2), &mut f(g1), &mut f(g2))
        });
        p.bad("ks_forward_multiply", &format!("f64, {case}"), || {
            be.ks_forward_multiply(&d(k), &d(p1), &d(p2), &mut d(g1), &mut d(g2))
        });
        p.bad("ks_adjoint_multiply", case, || {
            be.ks_adjoint_multiply(&f(g1), &f(g2), &f(p1), &f(p2), &mut f(k))
        });
        p.bad("ks_adjoint_multiply", &format!("f64, {case}"), || {
            be.ks_adjoint_multiply(&d(g1), &d(g2), &d(p1), &d(p2), &mut d(k))
        });
        p.bad("ks_inverse_eb_multiply", case, || {
            be.ks_inverse_eb_multiply(&f(g1), &f(g2), &f(p1), &f(p2), &mut f(k), &mut f(k))
        });
    }
    p.bad("ks_inverse_eb_multiply", "b_hat short", || {
        be.ks_inverse_eb_multiply(&f(S), &f(S), &f(M), &f(M), &mut f(S), &mut f(S - 2))
    });

    // per-mode multipliers
    for (s, m, case) in [
        (S, 0, "no modes"),
        (S - 1, M, "not a multiple"),
        (0, M, "empty"),
    ] {
        p.bad("gaussian_denoise_gain", case, || {
            be.gaussian_denoise_gain(&mut f(s), &d(m), 0.5)
        });
        p.bad("spectral_scale", case, || {
            be.spectral_scale(&mut f(s), &f(m))
        });
        p.bad("spectral_scale", &format!("f64, {case}"), || {
            be.spectral_scale(&mut d(s), &d(m))
        });
        p.bad("diffused_prior_draw_multiply", case, || {
            be.diffused_prior_draw_multiply(&mut d(s), &d(m), 0.5)
        });
    }

    p.bad("cast", "f32 -> f64, y shorter", || {
        be.cast(&f(X), &mut d(X - 1))
    });
    p.bad("cast", "f64 -> f32, y longer", || {
        be.cast(&d(X), &mut f(X + 1))
    });
    p.bad("cast", "f32 -> f32, y empty", || be.cast(&f(X), &mut f(0)));

    // the elementwise table: every operand X, through the methods of
    // `Elementwise` and by name for every row
    p.mismatch("elementwise", "axpby, z short", || {
        be.axpby(&mut f(X), &f(X), &f(X - 1), 0.1, 0.2)
    });
    p.mismatch("elementwise", "axpby, s empty", || {
        be.axpby(&mut f(X), &f(0), &f(X), 0.1, 0.2)
    });
    p.mismatch("elementwise", "axpy f64, z long", || {
        be.axpy(&mut d(X), &d(X + 1), 0.1)
    });
    p.mismatch("elementwise", "tweedie_score_combine, jv short", || {
        be.tweedie_score_combine(&mut f(X), &f(X), &f(X), &f(X - 1), 2.0)
    });
    p.mismatch("elementwise", "add f64, x short", || {
        be.add(&mut d(X - 1), &d(X))
    });
    for op in OPERATIONS {
        bad_rows::<f32>(&be, &mut p, op);
        bad_rows::<f64>(&be, &mut p, op);
    }
    p.bad("heun_predictor", "xp short", || {
        be.heun_predictor(&mut f(X), &f(X), &mut f(X - 1), 0.1, 0.2)
    });
    p.bad("heun_predictor", "x long", || {
        be.heun_predictor(&mut f(X), &f(X + 1), &mut f(X), 0.1, 0.2)
    });
    p.bad("hmc_position_step", "v short", || {
        be.hmc_position_step(&mut f(X), None, &f(X - 1), 0.1)
    });
    p.bad("hmc_position_step", "xprev short", || {
        be.hmc_position_step(&mut f(X), Some(&mut f(X - 1)), &f(X), 0.1)
    });
    p.bad("annealed_weights", "out short", || {
        be.annealed_weights(&f(N), 0.1, &mut f(N - 1))
    });

    // per-chain operations with a map size n
    for (x, n, norms, case) in [
        (X, 0, B, "n = 0"),
        (X, 5, B, "n not a divisor"),
        (X, N, B + 1, "one value per chain too many"),
        (X, N, B - 1, "one value per chain too few"),
        (0, N, 0, "empty"),
    ] {
        p.bad("langevin_corrector_step", case, || {
            be.langevin_corrector_step(&mut f(x), &f(x), &f(x), &d(norms), &d(norms), 0.1, n)
        });
        p.bad("hmc_accept", case, || {
            be.hmc_accept(&mut f(x), &f(x), &u(norms), n)
        });
        p.bad("chain_norms", case, || {
            be.chain_norms(&f(x), n, &mut d(norms))
        });
        p.bad("chain_dot_f64", case, || {
            be.chain_dot_f64(&d(x), &d(x), n, &mut d(norms))
        });
        p.bad("hmc_energy_increment", case, || {
            be.hmc_energy_increment(&mut d(norms), &f(x), &f(x), &f(x), &f(x), n)
        });
        p.bad("hmc_kinetic_change", case, || {
            be.hmc_kinetic_change(&f(x), &f(x), &f(x), &f(x), n, &mut d(norms))
        });
        p.bad("cg_initial_residual", case, || {
            be.cg_initial_residual(&mut d(x), &d(x), &d(x), &u(norms), n)
        });
        p.bad("cg_update_solution", case, || {
            be.cg_update_solution(&mut d(x), &mut d(x), &d(x), &d(x), &d(norms), &u(norms), n)
        });
        p.bad("cg_update_direction", case, || {
            be.cg_update_direction(&mut d(x), &d(x), &d(norms), &u(norms), n)
        });
    }
    p.bad("langevin_corrector_step", "z short", || {
        be.langevin_corrector_step(&mut f(X), &f(X), &f(X - 1), &d(B), &d(B), 0.1, N)
    });
    p.bad("langevin_corrector_step", "z_norm short", || {
        be.langevin_corrector_step(&mut f(X), &f(X), &f(X), &d(B), &d(B - 1), 0.1, N)
    });
    p.bad("hmc_accept", "xk short", || {
        be.hmc_accept(&mut f(X), &f(X - 1), &u(B), N)
    });
    p.bad("chain_dot_f64", "b short", || {
        be.chain_dot_f64(&d(X), &d(X - 1), N, &mut d(B))
    });
    p.bad("hmc_energy_increment", "xprev short", || {
        be.hmc_energy_increment(&mut d(B), &f(X), &f(X), &f(X), &f(X - 1), N)
    });
    p.bad("hmc_kinetic_change", "vp0 short", || {
        be.hmc_kinetic_change(&f(X), &f(X), &f(X), &f(X - 1), N, &mut d(B))
    });
    p.bad("cg_initial_residual", "u short", || {
        be.cg_initial_residual(&mut d(X), &d(X), &d(X - 1), &u(B), N)
    });
    p.bad("cg_update_solution", "alpha short", || {
        be.cg_update_solution(&mut d(X), &mut d(X), &d(X), &d(X), &d(B - 1), &u(B), N)
    });
    p.bad("cg_update_direction", "beta short", || {
        be.cg_update_direction(&mut d(X), &d(X), &d(B - 1), &u(B), N)
    });

    // operands broadcast over maps: per-pixel length n
    for (start, case) in [(0, "empty"), (5, "not a divisor"), (X + N, "longer than x")] {
        p.bad("hmc_start_from_map", case, || {
            be.hmc_start_from_map(&mut f(X), &f(start), 0.5)
        });
        p.bad("multiply_weights_f64", case, || {
            be.multiply_weights_f64(&mut d(X), &d(start))
        });
    }
    for (r2, g1, g2, w1, w2, case) in [
        (X, N, N - 1, N, N, "g2 short"),
        (X, N, N, N - 1, N, "w1 short"),
        (X, N, N, N, N - 1, "w2 short"),
        (X, N, N + 1, N + 1, N + 1, "g2, w1, w2 long"),
        (X - 1, N, N, N, N, "r2 short"),
        (X, 0, 0, 0, 0, "empty per-pixel operands"),
    ] {
        p.bad("weighted_residual", case, || {
            be.weighted_residual(&mut f(X), &mut f(r2), &f(g1), &f(g2), &f(w1), &f(w2))
        });
    }
    for (r2, g1, g2, case) in [
        (X, N, N - 1, "g2 short"),
        (X, N, N + 1, "g2 long"),
        (X - 1, N, N, "q2 short"),
        (X, 0, 0, "empty per-pixel operands"),
        (X, 5, 5, "n not a divisor"),
    ] {
        p.bad("shear_residual_f64", case, || {
            be.shear_residual_f64(&mut d(X), &mut d(r2), &f(g1), &f(g2))
        });
    }
    for (y2, w1, w2, case) in [
        (X, N - 1, N, "w1 short"),
        (X, N, N - 1, "w2 short"),
        (X, N + 1, N + 1, "w1, w2 long"),
        (X - 1, N, N, "y2 short"),
        (X, 0, 0, "empty weights"),
    ] {
        p.bad("weighted_residual_f64", case, || {
            be.weighted_residual_f64(&mut d(X), &mut d(y2), &d(X), &d(X), &d(w1), &d(w2))
        });
    }
    p.bad("weighted_residual_f64", "q1 short", || {
        be.weighted_residual_f64(&mut d(X), &mut d(X), &d(X - 1), &d(X), &d(N), &d(N))
    });
    p.bad("weighted_residual_f64", "q2 long", || {
        be.weighted_residual_f64(&mut d(X), &mut d(X), &d(X), &d(X + 1), &d(N), &d(N))
    });

    assert!(
        p.failures.is_empty(),
        "{} of {} bad-shape calls were not rejected:\n{}",
        p.failures.len(),
        p.calls,
        p.failures.join("\n")
    );
    let missing: Vec<_> = shaped_methods()
        .into_iter()
        .filter(|m| !p.methods.contains(m.as_str()))
        .collect();
    assert!(missing.is_empty(), "methods not probed: {missing:?}");
}

#[test]
fn every_cpu_method_accepts_correct_shapes() {
    let be = Cpu::new();
    let g = grid();
    let mut p = Probe::default();
    p.good("copy", || be.copy(&f(X), &mut f(X)));
    p.good("fft_forward", || be.fft_forward(&g, &f(X), &mut f(S)));
    p.good("fft_inverse", || be.fft_inverse(&g, &mut f(S), &mut f(X)));
    p.good("fft_forward", || be.fft_forward(&g, &d(X), &mut d(S)));
    p.good("fft_inverse", || be.fft_inverse(&g, &mut d(S), &mut d(X)));
    // one map: the unbatched path of the plans
    p.good("fft_forward", || be.fft_forward(&g, &f(N), &mut f(2 * M)));
    p.good("fill_normal", || be.fill_normal(&mut f(X), N, key(), 3));
    p.good("ks_forward_multiply", || {
        be.ks_forward_multiply(&f(S), &f(M), &f(M), &mut f(S), &mut f(S))
    });
    p.good("ks_forward_multiply", || {
        be.ks_forward_multiply(&d(S), &d(M), &d(M), &mut d(S), &mut d(S))
    });
    p.good("ks_adjoint_multiply", || {
        be.ks_adjoint_multiply(&f(S), &f(S), &f(M), &f(M), &mut f(S))
    });
    p.good("ks_adjoint_multiply", || {
        be.ks_adjoint_multiply(&d(S), &d(S), &d(M), &d(M), &mut d(S))
    });
    p.good("ks_inverse_eb_multiply", || {
        be.ks_inverse_eb_multiply(&f(S), &f(S), &f(M), &f(M), &mut f(S), &mut f(S))
    });
    p.good("gaussian_denoise_gain", || {
        be.gaussian_denoise_gain(&mut f(S), &d(M), 0.5)
    });
    p.good("spectral_scale", || be.spectral_scale(&mut f(S), &f(M)));
    p.good("spectral_scale", || be.spectral_scale(&mut d(S), &d(M)));
    p.good("diffused_prior_draw_multiply", || {
        be.diffused_prior_draw_multiply(&mut d(S), &d(M), 0.5)
    });
    p.good("cast", || be.cast(&f(X), &mut d(X)));
    p.good("cast", || be.cast(&d(X), &mut f(X)));
    p.good("cast", || be.cast(&d(X), &mut d(X)));
    p.good("elementwise", || {
        be.axpby(&mut f(X), &f(X), &f(X), 0.1, 0.2)
    });
    p.good("elementwise", || be.axpy(&mut d(X), &d(X), 0.1));
    p.good("elementwise", || be.add(&mut f(X), &f(X)));
    p.good("elementwise", || be.scale(&mut d(X), 0.5));
    p.good("elementwise", || {
        be.heun_corrector(&mut f(X), &f(X), &f(X), 0.05, 0.2)
    });
    p.good("elementwise", || be.prior_score(&mut f(X), &f(X), 2.0));
    p.good("elementwise", || {
        be.tweedie_score_combine(&mut d(X), &d(X), &d(X), &d(X), 2.0)
    });
    for op in OPERATIONS {
        for len in [X, N, 0] {
            p.good("elementwise", || named::<f32>(&be, op, len, None));
            p.good("elementwise", || named::<f64>(&be, op, len, None));
        }
    }
    p.good("langevin_corrector_step", || {
        be.langevin_corrector_step(&mut f(X), &f(X), &f(X), &d(B), &d(B), 0.1, N)
    });
    p.good("heun_predictor", || {
        be.heun_predictor(&mut f(X), &f(X), &mut f(X), 0.1, 0.2)
    });
    p.good("hmc_position_step", || {
        be.hmc_position_step(&mut f(X), Some(&mut f(X)), &f(X), 0.1)
    });
    p.good("hmc_position_step", || {
        be.hmc_position_step(&mut f(X), None, &f(X), 0.1)
    });
    p.good("hmc_accept", || be.hmc_accept(&mut f(X), &f(X), &u(B), N));
    p.good("hmc_start_from_map", || {
        be.hmc_start_from_map(&mut f(X), &f(N), 0.5)
    });
    p.good("annealed_weights", || {
        be.annealed_weights(&f(N), 0.1, &mut f(N))
    });
    p.good("weighted_residual", || {
        be.weighted_residual(&mut f(X), &mut f(X), &f(N), &f(N), &f(N), &f(N))
    });
    p.good("shear_residual_f64", || {
        be.shear_residual_f64(&mut d(X), &mut d(X), &f(N), &f(N))
    });
    p.good("weighted_residual_f64", || {
        be.weighted_residual_f64(&mut d(X), &mut d(X), &d(X), &d(X), &d(N), &d(N))
    });
    p.good("multiply_weights_f64", || {
        be.multiply_weights_f64(&mut d(X), &d(N))
    });
    p.good("cg_initial_residual", || {
        be.cg_initial_residual(&mut d(X), &d(X), &d(X), &u(B), N)
    });
    p.good("cg_update_solution", || {
        be.cg_update_solution(&mut d(X), &mut d(X), &d(X), &d(X), &d(B), &u(B), N)
    });
    p.good("cg_update_direction", || {
        be.cg_update_direction(&mut d(X), &d(X), &d(B), &u(B), N)
    });
    p.good("chain_norms", || be.chain_norms(&f(X), N, &mut d(B)));
    p.good("chain_dot_f64", || {
        be.chain_dot_f64(&d(X), &d(X), N, &mut d(B))
    });
    p.good("hmc_energy_increment", || {
        be.hmc_energy_increment(&mut d(B), &f(X), &f(X), &f(X), &f(X), N)
    });
    p.good("hmc_kinetic_change", || {
        be.hmc_kinetic_change(&f(X), &f(X), &f(X), &f(X), N, &mut d(B))
    });
    // elementwise operations on empty batches stay no-ops
    p.good("elementwise", || {
        be.axpby(&mut f(0), &f(0), &f(0), 0.1, 0.2)
    });
    p.good("elementwise", || be.add(&mut d(0), &d(0)));
    p.good("copy", || be.copy(&f(0), &mut f(0)));

    let missing: Vec<_> = shaped_methods()
        .into_iter()
        .filter(|m| !p.methods.contains(m.as_str()))
        .collect();
    assert!(missing.is_empty(), "methods not run: {missing:?}");
    assert!(p.failures.is_empty(), "{}", p.failures.join("\n"));
}

#[test]
fn fft_plans_are_cached_per_grid_shape_not_per_length() {
    // 3 x 4 and 6 x 2 grids have the same map and half-spectrum lengths (12, 8)
    let be = Cpu::new();
    let (a, b) = (Grid::new(3, 4, 1.0).unwrap(), Grid::new(6, 2, 1.0).unwrap());
    assert_eq!((a.len(), a.spectral_len()), (b.len(), b.spectral_len()));
    let x = f(12);
    let mut s = f(2 * a.spectral_len());
    be.fft_forward(&a, &x, &mut s).unwrap();
    be.fft_forward(&b, &x, &mut s).unwrap();
    let mut want = vec![num_complex::Complex::new(0.0f32, 0.0); b.spectral_len()];
    lensdiff::fft::Fft2::<f32>::new(b.nx, b.ny)
        .forward_batch(&x, &mut want)
        .unwrap();
    let want: Vec<f32> = want.iter().flat_map(|c| [c.re, c.im]).collect();
    assert_eq!(s, want);
}
