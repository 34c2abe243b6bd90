//! The elementwise operations: one table, one row per operation, for every
//! backend and both precisions.
//!
//! A row `name(out; in, ..; scalar, ..) = expr;` defines
//! `out_i = expr(out_i, in_i, .., scalar, ..)` for every element `i` of
//! buffers of one length (any number of maps). `expr` is written with the
//! rounding helpers of [`super::real`] (`add_rn`, `sub_rn`, `mul_rn`,
//! `div_rn`: one IEEE operation each, never fused), which mean the same in
//! Rust and in CUDA C, so the row is at once
//! - the CPU body ([`ElementwiseOp::apply`], run by [`Backend::elementwise`]
//!   on [`super::cpu::Cpu`]),
//! - the CUDA kernels `name` (`float`) and `name_f64` (`double`), generated
//!   from the same text by [`cuda_source`] into the program `elementwise.cu`,
//!   compiled by NVRTC with the files of `kernels/` (flat launch, 1-D
//!   grid-stride loop of `common.cuh`),
//! - a method of [`Elementwise`] (`be.axpby(&mut x, &s, &z, a, b)`) on every
//!   backend, and a row of [`OPERATIONS`], which the parity test, the NVRTC
//!   check and `lensdiff bench` iterate over.
//!
//! Adding an elementwise operation is adding a row. The arithmetic is that of
//! the CPU loop the row replaced, in the same order, so results are bitwise
//! the same on both backends and as before.

use super::real::{add_rn, mul_rn, sub_rn, Real};
use super::Backend;
use crate::error::{Error, Result};

mod sealed {
    /// Only the table's operations: the CUDA launch trusts a row to match
    /// its generated kernel.
    pub trait Sealed {}
}

/// An operation of the table with `N` buffer inputs and `S` scalars (sealed:
/// the rows of this file only).
pub trait ElementwiseOp<const N: usize, const S: usize>:
    sealed::Sealed + Copy + Send + Sync + 'static
{
    /// Its row.
    const ROW: &'static Row;
    /// `out_i` from `out_i` (when the row reads it), the inputs at `i` and the
    /// scalars.
    fn apply<T: Real>(out: T, ins: [T; N], scalars: [T; S]) -> T;
}

/// A row of the table, as data.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    /// The operation (and its `f32` kernel).
    pub name: &'static str,
    /// Its `f64` kernel (`name_f64`).
    pub name_f64: &'static str,
    /// The output buffer's name.
    pub out: &'static str,
    /// The input buffers' names.
    pub inputs: &'static [&'static str],
    /// The scalars' names.
    pub scalars: &'static [&'static str],
    /// The expression, as written.
    pub expr: &'static str,
    /// What it computes and where.
    pub doc: &'static str,
}

impl Row {
    /// The kernel of precision `T`.
    pub fn kernel<T: Real>(&self) -> &'static str {
        T::pick(self.name, self.name_f64)
    }

    /// Whether the expression reads `out` (an update) or only writes it.
    pub fn reads_out(&self) -> bool {
        (self
            .expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
        .any(|t| t == self.out)
    }
}

macro_rules! elementwise {
    ($(
        $(#[doc = $doc:literal])+
        $name:ident($out:ident; $($in:ident),*; $($s:ident),*) = $e:expr;
    )+) => {
        /// The operations as types (the `O` of [`Backend::elementwise`]).
        pub mod ops {
            $(
                $(#[doc = $doc])+
                #[allow(non_camel_case_types)]
                #[derive(Debug, Clone, Copy)]
                pub struct $name;
            )+
        }

        $(
            impl sealed::Sealed for ops::$name {}

            impl ElementwiseOp<{ <[&str]>::len(&[$(stringify!($in)),*]) },
                               { <[&str]>::len(&[$(stringify!($s)),*]) }> for ops::$name {
                const ROW: &'static Row = &Row {
                    name: stringify!($name),
                    name_f64: concat!(stringify!($name), "_f64"),
                    out: stringify!($out),
                    inputs: &[$(stringify!($in)),*],
                    scalars: &[$(stringify!($s)),*],
                    expr: stringify!($e),
                    doc: concat!($($doc, "\n"),+),
                };
                #[inline(always)]
                #[allow(unused_variables)]
                fn apply<T: Real>(
                    $out: T,
                    [$($in),*]: [T; { <[&str]>::len(&[$(stringify!($in)),*]) }],
                    [$($s),*]: [T; { <[&str]>::len(&[$(stringify!($s)),*]) }],
                ) -> T {
                    $e
                }
            }
        )+

        /// Every row, in the order of the table.
        pub const OPERATIONS: &[&Row] = &[$(<ops::$name as ElementwiseOp<
            { <[&str]>::len(&[$(stringify!($in)),*]) },
            { <[&str]>::len(&[$(stringify!($s)),*]) }>>::ROW),+];

        /// The operations as methods of every backend.
        pub trait Elementwise: Backend {
            $(
                $(#[doc = $doc])+
                #[allow(clippy::too_many_arguments)]
                fn $name<T: Real>(
                    &self,
                    $out: &mut Self::Buf<T>,
                    $($in: &Self::Buf<T>,)*
                    $($s: T,)*
                ) -> Result<()> {
                    self.elementwise(ops::$name, $out, [$($in),*], [$($s),*])
                }
            )+
        }

        /// Runs the operation called `name` with inputs and scalars as slices
        /// (for the parity test and `lensdiff bench`, which iterate over
        /// [`OPERATIONS`]).
        pub fn run_named<B: Backend, T: Real>(
            be: &B,
            name: &str,
            out: &mut B::Buf<T>,
            ins: &[&B::Buf<T>],
            scalars: &[T],
        ) -> Result<()> {
            match name {
                $(stringify!($name) => be.elementwise(
                    ops::$name,
                    out,
                    arity(name, "inputs", ins)?,
                    arity(name, "scalars", scalars)?,
                ),)+
                _ => Err(Error::invalid("operation", format!("no elementwise operation `{name}`"))),
            }
        }
    };
}

impl<B: Backend> Elementwise for B {}

/// A slice as the array of an operation's arity.
fn arity<T: Copy, const K: usize>(op: &str, what: &str, v: &[T]) -> Result<[T; K]> {
    v.try_into().map_err(|_| {
        Error::invalid(
            "operation",
            format!("`{op}` takes {K} {what}, got {}", v.len()),
        )
    })
}

elementwise! {
    /// `x += a s + b z`: the Euler–Maruyama predictor (`a = dt`,
    /// `b = sqrt(dt)`, `dt = σi² − σi+1²`) and the Langevin refinement
    /// (`a = ε`, `b = sqrt(2ε)`) of src/sampler/integrators.rs and hmc.rs.
    axpby(x; s, z; a, b) = add_rn(x, add_rn(mul_rn(a, s), mul_rn(b, z)));
    /// `x += a z`: the EDM churn noise (`a = sqrt(ŝ² − σi²) s_noise`) and the
    /// HMC momentum half step (`a = 0.5 ε`, `z` the score).
    axpy(x; z; a) = add_rn(x, mul_rn(a, z));
    /// `x += y`: accumulates `Pᵀ r` (guidance) and the CG solution's parts.
    add(x; y;) = add_rn(x, y);
    /// `x *= a`: the `1/N` of an inverse FFT after cuFFT's C2R (`Fft2::inverse`
    /// multiplies by `scale` last).
    scale(x;; a) = mul_rn(x, a);
    /// `x += c (d + f2 d2)`: the Heun correction of `edm` (`c = 0.5 h`,
    /// `f2 = −σi+1`, `d2 = s(xp, σi+1)`).
    heun_corrector(x; d, d2; c, f2) = add_rn(x, mul_rn(c, add_rn(d, mul_rn(f2, d2))));
    /// `out = (out − x) inv`: a prior score from the denoiser output
    /// `out = D(x)` (Tweedie, `inv = 1/σ²`).
    prior_score(out; x; inv) = mul_rn(sub_rn(out, x), inv);
    /// `out = (d − x) inv + jv`: the guided score, Tweedie term plus the
    /// likelihood's vector-Jacobian product `jv` (`inv = 1/σ²`).
    tweedie_score_combine(out; d, x, jv; inv) = add_rn(mul_rn(sub_rn(d, x), inv), jv);
}

/// The CUDA C of every row in both precisions (the program `elementwise.cu`,
/// after `common.cuh`): `out_[i] = expr` with the row's names bound to the
/// elements at `i` and to the scalars.
pub fn cuda_source() -> String {
    let mut s = String::from(
        "// elementwise.cu: generated from the elementwise table \
         (src/backend/elementwise.rs); do not edit.\n//\n// uses: common.cuh\n",
    );
    for row in OPERATIONS {
        kernel_source::<f32>(&mut s, row);
        kernel_source::<f64>(&mut s, row);
    }
    s
}

fn kernel_source<T: Real>(s: &mut String, row: &Row) {
    use std::fmt::Write as _;
    let c = T::C;
    let mut params = vec![format!("{c}* __restrict__ {}_", row.out)];
    params.extend((row.inputs.iter()).map(|i| format!("const {c}* __restrict__ {i}_")));
    params.extend(row.scalars.iter().map(|a| format!("{c} {a}")));
    params.push("u64 len".into());
    s.push('\n');
    for line in row.doc.lines() {
        let _ = writeln!(s, "// {}", line.trim());
    }
    let _ = writeln!(
        s,
        "extern \"C\" __global__ void {}({}) {{",
        row.kernel::<T>(),
        params.join(", ")
    );
    let _ = writeln!(s, "    LD_FOR_1D(i, len) {{");
    if row.reads_out() {
        let _ = writeln!(s, "        const {c} {0} = {0}_[i];", row.out);
    }
    for i in row.inputs {
        let _ = writeln!(s, "        const {c} {i} = {i}_[i];");
    }
    let _ = writeln!(s, "        {}_[i] = {};", row.out, row.expr);
    let _ = writeln!(s, "    }}\n}}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;

    #[test]
    fn the_rows_are_the_loops_they_replaced() {
        let be = Cpu::new();
        let (a, b) = (0.013f32, 0.11f32);
        let x0 = vec![0.3f32, -1.7, 2.5];
        let (s, z) = (vec![1.1f32, 0.2, -3.0], vec![-0.4f32, 0.9, 0.05]);
        let mut x = x0.clone();
        be.axpby(&mut x, &s, &z, a, b).unwrap();
        for i in 0..3 {
            let mut want = x0[i];
            want += a * s[i] + b * z[i];
            assert_eq!(x[i].to_bits(), want.to_bits());
        }
        let mut x = x0.clone();
        be.heun_corrector(&mut x, &s, &z, 0.5 * a, b).unwrap();
        for i in 0..3 {
            let mut want = x0[i];
            want += 0.5 * a * (s[i] + b * z[i]);
            assert_eq!(x[i].to_bits(), want.to_bits());
        }
        let mut out = x0.clone();
        be.tweedie_score_combine(&mut out, &s, &z, &x0, a).unwrap();
        for i in 0..3 {
            assert_eq!(out[i], (s[i] - z[i]) * a + x0[i]);
        }
    }

    /// Every token of an expression: the row's names, the rounding helpers,
    /// brackets and commas. A bare `+` or `*` would compile in both languages
    /// but NVRTC may fuse it into an FMA (Rust never does), and a literal is
    /// a `double` in C.
    #[test]
    fn expressions_use_only_names_and_the_rounding_helpers() {
        for row in OPERATIONS {
            let names: Vec<&str> = [row.out]
                .iter()
                .chain(row.inputs)
                .chain(row.scalars)
                .copied()
                .chain(["add_rn", "sub_rn", "mul_rn", "div_rn"])
                .collect();
            let rest: String = row.expr.chars().filter(|c| !"(), ".contains(*c)).collect();
            let words = row
                .expr
                .split(|c: char| "(), ".contains(c))
                .filter(|w| !w.is_empty());
            for w in words {
                assert!(names.contains(&w), "{}: `{w}` in {}", row.name, row.expr);
            }
            assert!(!rest.is_empty(), "{}", row.name);
        }
    }

    /// Buffers over several CPU chunks (`MIN_TASK` elements each, the last one
    /// short) against the row applied element by element.
    #[test]
    fn every_row_matches_its_expression_across_chunks() {
        let be = Cpu::new();
        let len = 40_000 + 7;
        let buf = |seed: u32| -> Vec<f64> {
            (0..len)
                .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed) as f64 / 4e9 - 0.5)
                .collect()
        };
        for (r, row) in OPERATIONS.iter().enumerate() {
            let out0 = buf(r as u32);
            let ins: Vec<Vec<f64>> = (0..row.inputs.len()).map(|j| buf(100 + j as u32)).collect();
            let scalars: Vec<f64> = (0..row.scalars.len()).map(|j| 0.3 + j as f64).collect();
            let refs: Vec<&Vec<f64>> = ins.iter().collect();
            let mut out = out0.clone();
            run_named(&be, row.name, &mut out, &refs, &scalars).unwrap();
            // the same row on one element at a time (one-element buffers)
            for i in [0, 16_383, 16_384, 32_768, len - 1] {
                let mut one = vec![out0[i]];
                let ins_i: Vec<Vec<f64>> = ins.iter().map(|b| vec![b[i]]).collect();
                let refs_i: Vec<&Vec<f64>> = ins_i.iter().collect();
                run_named(&be, row.name, &mut one, &refs_i, &scalars).unwrap();
                assert_eq!(out[i].to_bits(), one[0].to_bits(), "{} at {i}", row.name);
            }
        }
        // and one row against its hand-written loop on every element
        let (x0, s, z) = (buf(1), buf(2), buf(3));
        let mut x = x0.clone();
        be.axpby(&mut x, &s, &z, 0.25, -1.5).unwrap();
        for i in 0..len {
            let mut want = x0[i];
            want += 0.25 * s[i] + -1.5 * z[i];
            assert_eq!(x[i].to_bits(), want.to_bits(), "{i}");
        }
    }

    #[test]
    fn named_runs_check_the_arity_and_the_name() {
        let be = Cpu::new();
        let mut x = vec![1.0f64; 4];
        let y = vec![2.0f64; 4];
        run_named(&be, "add", &mut x, &[&y], &[]).unwrap();
        assert_eq!(x, vec![3.0; 4]);
        assert!(run_named(&be, "add", &mut x, &[&y, &y], &[]).is_err());
        assert!(run_named(&be, "axpy", &mut x, &[&y], &[]).is_err());
        assert!(run_named(&be, "nope", &mut x, &[&y], &[]).is_err());
        let short = vec![0.0f64; 3];
        assert!(matches!(
            run_named(&be, "add", &mut x, &[&short], &[]),
            Err(Error::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn the_generated_source_declares_every_kernel_once() {
        for row in OPERATIONS {
            let out = [row.out];
            for n in out.iter().chain(row.inputs).chain(row.scalars) {
                // the loop's index and bound, and the buffers' `name_`
                assert!(
                    !["i", "len"].contains(n) && !n.ends_with('_'),
                    "{}: {n}",
                    row.name
                );
            }
        }
        let src = cuda_source();
        for row in OPERATIONS {
            for k in [row.name, row.name_f64] {
                let decl = format!("void {k}(");
                assert_eq!(src.matches(&decl).count(), 1, "{k}");
            }
        }
        assert!(src.contains(
            "extern \"C\" __global__ void axpby_f64(double* __restrict__ x_, \
             const double* __restrict__ s_, const double* __restrict__ z_, double a, double b, u64 len)"
        ));
        assert!(src.contains("x_[i] = add_rn(x, add_rn(mul_rn(a, s), mul_rn(b, z)));"));
        // a row loads `out` exactly when its expression reads it
        for row in OPERATIONS {
            let load = format!("const float {0} = {0}_[i];", row.out);
            let body = &src[src.find(&format!("void {}(", row.name)).unwrap_or(0)..];
            let body = &body[..body.find("\n}\n").unwrap_or(body.len())];
            assert_eq!(body.contains(&load), row.reads_out(), "{}", row.name);
        }
        let tweedie = OPERATIONS
            .iter()
            .find(|r| r.name == "tweedie_score_combine");
        assert!(tweedie.is_some_and(|r| !r.reads_out()));
    }
}
