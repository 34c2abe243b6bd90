//! GPU against CPU (validation ladder step 4), in one test binary that the
//! GPU script (`bench/gpu_check.sh`) runs where the GPU is:
//!
//! 1. **Kernel parity**: every [`Backend`] operation on random inputs (the
//!    generic ones in both precisions, and every row of the elementwise table,
//!    `lensdiff::backend::elementwise::OPERATIONS`, run by name in `f32` and
//!    `f64`), on the device and on the CPU backend (the reference). Pure outputs are
//!    poisoned with NaN before the device run, so an element a kernel fails to
//!    write shows up as a NaN. The error is `max |gpu - cpu| / max |cpu|`
//!    per output; the bound is 0 (bitwise) for elementwise kernels, which use
//!    the CPU's IEEE operations in the CPU's order, and a few ulps times the
//!    problem size for FFTs, Box–Muller normals and parallel reductions.
//! 2. **Whole samplers**: every integrator and guidance on a masked 64²
//!    problem, GPU vs CPU with the same seed (the same noise).
//! 3. **Exact posterior on the GPU**: Heun + spectral guidance with the
//!    Gaussian prior against the Fourier-diagonal oracle (as
//!    tests/sampler_exact.rs does on the CPU).
//!
//! The GPU tests are `#[ignore]`d: `bench/gpu_check.sh` runs them with
//! `--include-ignored` (`cargo test --release --test gpu -- --ignored` where
//! the Rust toolchain and the GPU are on one machine); without a usable CUDA
//! device they fail. The harness itself runs in every `cargo test` with the
//! CPU backend standing in for the device (every error must then be exactly 0
//! and every poisoned element overwritten). `LENSDIFF_PARITY_OUT=FILE` writes
//! the parity table as Markdown.

mod common;

use common::SplitMix;
use lensdiff::backend::cpu::Cpu;
use lensdiff::backend::elementwise::{run_named, OPERATIONS};
use lensdiff::backend::{Backend, Elem, NoiseKey, Real};
use lensdiff::grid::Grid;
use lensdiff::prior::Prior;
use lensdiff::rng::Stream;
use lensdiff::Result;

const NX: usize = 40;
const NY: usize = 36;
const MAPS: usize = 3;

fn grid() -> Grid {
    Grid::new(NX, NY, 1.0).unwrap()
}

fn n() -> usize {
    NX * NY
}

fn modes() -> usize {
    grid().spectral_len()
}

fn rnd(len: usize, seed: u64) -> Vec<f32> {
    SplitMix(seed).vec(len).iter().map(|&v| v as f32).collect()
}

fn rnd64(len: usize, seed: u64) -> Vec<f64> {
    SplitMix(seed).vec(len)
}

/// [`rnd`] or [`rnd64`], whichever `T` is.
fn rnd_real<T: Real>(len: usize, seed: u64) -> Vec<T> {
    rnd64(len, seed).into_iter().map(T::narrow).collect()
}

fn positive64(len: usize, seed: u64) -> Vec<f64> {
    rnd64(len, seed).iter().map(|v| 0.1 + v.abs()).collect()
}

fn positive(len: usize, seed: u64) -> Vec<f32> {
    positive64(len, seed).iter().map(|&v| v as f32).collect()
}

/// A half spectrum that came out of a forward transform (Hermitian), as an
/// interleaved buffer.
fn hermitian<T: rustfft::FftNum>(maps: usize, seed: u64) -> Vec<T> {
    let g = grid();
    let fft = lensdiff::fft::Fft2::<T>::new(g.nx, g.ny);
    let x: Vec<T> = rnd64(maps * g.len(), seed)
        .iter()
        .map(|&v| T::from_f64(v).unwrap())
        .collect();
    let mut s = vec![num_complex::Complex::new(T::zero(), T::zero()); maps * g.spectral_len()];
    fft.forward_batch(&x, &mut s).unwrap();
    s.iter().flat_map(|c| [c.re, c.im]).collect()
}

fn poison<B: Backend, T: Elem + Poison>(be: &B, len: usize) -> Result<B::Buf<T>> {
    be.upload(&vec![T::poison(); len])
}

trait Poison: Sized {
    fn poison() -> Self;
    fn to_f64(self) -> f64;
}

impl Poison for f32 {
    fn poison() -> Self {
        f32::NAN
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Poison for f64 {
    fn poison() -> Self {
        f64::NAN
    }
    fn to_f64(self) -> f64 {
        self
    }
}

fn host<B: Backend, T: Elem + Poison>(be: &B, b: &B::Buf<T>) -> Result<Vec<f64>> {
    Ok(be.download(b)?.into_iter().map(Poison::to_f64).collect())
}

/// One line of the parity table.
#[derive(Debug)]
struct Row {
    name: String,
    elements: usize,
    error: f64,
    unwritten: usize,
    bound: f64,
}

impl Row {
    fn ok(&self) -> bool {
        self.unwritten == 0 && self.error <= self.bound
    }
}

fn compare(name: &str, bound: f64, cpu: Result<Vec<Vec<f64>>>, dev: Result<Vec<Vec<f64>>>) -> Row {
    let (cpu, dev) = match (cpu, dev) {
        (Ok(c), Ok(d)) => (c, d),
        (c, d) => panic!("{name}: cpu {:?} / device {:?}", c.err(), d.err()),
    };
    let (mut error, mut unwritten, mut elements) = (0.0f64, 0usize, 0usize);
    for (c, d) in cpu.iter().zip(&dev) {
        assert_eq!(c.len(), d.len(), "{name}");
        let scale = c.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
        for (a, b) in c.iter().zip(d) {
            if b.is_nan() && !a.is_nan() {
                unwritten += 1;
            } else if !(a.is_nan() && b.is_nan()) {
                error = error.max((a - b).abs() / scale);
            }
        }
        elements += c.len();
    }
    Row {
        name: name.to_string(),
        elements,
        error,
        unwritten,
        bound,
    }
}

/// `case!(rows, dev, "name", bound, |be| { ... Ok(vec![outputs as f64]) })`:
/// the body runs once on the CPU backend and once on the device.
macro_rules! case {
    ($rows:expr, $dev:expr, $name:literal, $bound:expr, |$be:ident| $body:block) => {{
        fn run<B: Backend>($be: &B) -> Result<Vec<Vec<f64>>> $body
        $rows.push(compare($name, $bound, run(&Cpu::new()), run($dev)));
    }};
}

/// Every backend operation, device against the CPU backend.
fn parity<D: Backend>(dev: &D) -> Vec<Row> {
    let mut rows = Vec::new();
    let r = &mut rows;
    // --- FFTs: cuFFT and rustfft round differently (a few ulps x log N)
    case!(r, dev, "fft_forward f32", 1e-5, |be| {
        let x = be.upload(&rnd(MAPS * n(), 1))?;
        let mut s = poison::<B, f32>(be, 2 * MAPS * modes())?;
        be.fft_forward(&grid(), &x, &mut s)?;
        Ok(vec![host(be, &s)?])
    });
    case!(r, dev, "fft_inverse f32", 1e-5, |be| {
        let mut s = be.upload(&hermitian::<f32>(MAPS, 2))?;
        let mut x = poison::<B, f32>(be, MAPS * n())?;
        be.fft_inverse(&grid(), &mut s, &mut x)?;
        Ok(vec![host(be, &x)?])
    });
    case!(r, dev, "fft_forward f64", 1e-13, |be| {
        let x = be.upload(&rnd64(MAPS * n(), 3))?;
        let mut s = poison::<B, f64>(be, 2 * MAPS * modes())?;
        be.fft_forward(&grid(), &x, &mut s)?;
        Ok(vec![host(be, &s)?])
    });
    case!(r, dev, "fft_inverse f64", 1e-13, |be| {
        let mut s = be.upload(&hermitian::<f64>(MAPS, 4))?;
        let mut x = poison::<B, f64>(be, MAPS * n())?;
        be.fft_inverse(&grid(), &mut s, &mut x)?;
        Ok(vec![host(be, &x)?])
    });
    // --- random numbers: the device's f64 log/sin/cos may differ by an ulp
    case!(r, dev, "fill_normal", 1e-6, |be| {
        // a map length that is not a multiple of 4 (a partial Philox block)
        let m = n() + 3;
        let mut z = poison::<B, f32>(be, MAPS * m)?;
        let key = NoiseKey {
            seed: 0x1234_5678_9abc,
            stream: Stream::Sampler,
            first_chain: 5,
        };
        be.fill_normal(&mut z, m, key, 17)?;
        Ok(vec![host(be, &z)?])
    });
    // --- spectral multipliers: bitwise
    case!(r, dev, "ks_forward_multiply f32", 0.0, |be| {
        let k = be.upload(&rnd(2 * MAPS * modes(), 5))?;
        let (p1, p2) = (be.upload(&rnd(modes(), 6))?, be.upload(&rnd(modes(), 7))?);
        let mut a = poison::<B, f32>(be, 2 * MAPS * modes())?;
        let mut b = poison::<B, f32>(be, 2 * MAPS * modes())?;
        be.ks_forward_multiply(&k, &p1, &p2, &mut a, &mut b)?;
        Ok(vec![host(be, &a)?, host(be, &b)?])
    });
    case!(r, dev, "ks_forward_multiply f64", 0.0, |be| {
        let k = be.upload(&rnd64(2 * MAPS * modes(), 8))?;
        let (p1, p2) = (
            be.upload(&rnd64(modes(), 9))?,
            be.upload(&rnd64(modes(), 10))?,
        );
        let mut a = poison::<B, f64>(be, 2 * MAPS * modes())?;
        let mut b = poison::<B, f64>(be, 2 * MAPS * modes())?;
        be.ks_forward_multiply(&k, &p1, &p2, &mut a, &mut b)?;
        Ok(vec![host(be, &a)?, host(be, &b)?])
    });
    case!(r, dev, "ks_adjoint_multiply f32", 0.0, |be| {
        let g1 = be.upload(&rnd(2 * MAPS * modes(), 11))?;
        let g2 = be.upload(&rnd(2 * MAPS * modes(), 12))?;
        let (p1, p2) = (be.upload(&rnd(modes(), 13))?, be.upload(&rnd(modes(), 14))?);
        let mut k = poison::<B, f32>(be, 2 * MAPS * modes())?;
        be.ks_adjoint_multiply(&g1, &g2, &p1, &p2, &mut k)?;
        Ok(vec![host(be, &k)?])
    });
    case!(r, dev, "ks_adjoint_multiply f64", 0.0, |be| {
        let g1 = be.upload(&rnd64(2 * MAPS * modes(), 15))?;
        let g2 = be.upload(&rnd64(2 * MAPS * modes(), 16))?;
        let (p1, p2) = (
            be.upload(&rnd64(modes(), 17))?,
            be.upload(&rnd64(modes(), 18))?,
        );
        let mut k = poison::<B, f64>(be, 2 * MAPS * modes())?;
        be.ks_adjoint_multiply(&g1, &g2, &p1, &p2, &mut k)?;
        Ok(vec![host(be, &k)?])
    });
    case!(r, dev, "ks_inverse_eb_multiply", 0.0, |be| {
        let g1 = be.upload(&rnd(2 * MAPS * modes(), 19))?;
        let g2 = be.upload(&rnd(2 * MAPS * modes(), 20))?;
        let (p1, p2) = (be.upload(&rnd(modes(), 21))?, be.upload(&rnd(modes(), 22))?);
        let mut e = poison::<B, f32>(be, 2 * MAPS * modes())?;
        let mut b = poison::<B, f32>(be, 2 * MAPS * modes())?;
        be.ks_inverse_eb_multiply(&g1, &g2, &p1, &p2, &mut e, &mut b)?;
        Ok(vec![host(be, &e)?, host(be, &b)?])
    });
    case!(r, dev, "gaussian_denoise_gain", 0.0, |be| {
        let mut s = be.upload(&rnd(2 * MAPS * modes(), 23))?;
        let p = be.upload(&positive64(modes(), 24))?;
        be.gaussian_denoise_gain(&mut s, &p, 0.37)?;
        Ok(vec![host(be, &s)?])
    });
    case!(r, dev, "spectral_scale f32", 0.0, |be| {
        let mut s = be.upload(&rnd(2 * MAPS * modes(), 25))?;
        let f = be.upload(&rnd(modes(), 26))?;
        be.spectral_scale(&mut s, &f)?;
        Ok(vec![host(be, &s)?])
    });
    case!(r, dev, "spectral_scale f64", 0.0, |be| {
        let mut s = be.upload(&rnd64(2 * MAPS * modes(), 27))?;
        let f = be.upload(&rnd64(modes(), 28))?;
        be.spectral_scale(&mut s, &f)?;
        Ok(vec![host(be, &s)?])
    });
    case!(r, dev, "diffused_prior_draw_multiply", 0.0, |be| {
        let mut s = be.upload(&rnd64(2 * MAPS * modes(), 29))?;
        let p = be.upload(&positive64(modes(), 30))?;
        be.diffused_prior_draw_multiply(&mut s, &p, 0.21)?;
        Ok(vec![host(be, &s)?])
    });
    case!(r, dev, "cast f32 -> f64", 0.0, |be| {
        let x = be.upload(&rnd(MAPS * n(), 31))?;
        let mut y = poison::<B, f64>(be, MAPS * n())?;
        be.cast(&x, &mut y)?;
        Ok(vec![host(be, &y)?])
    });
    case!(r, dev, "cast f64 -> f32", 0.0, |be| {
        let x = be.upload(&rnd64(MAPS * n(), 32))?;
        let mut y = poison::<B, f32>(be, MAPS * n())?;
        be.cast(&x, &mut y)?;
        Ok(vec![host(be, &y)?])
    });
    // --- the elementwise table: bitwise, every row in both precisions
    elementwise_rows::<D, f32>(r, dev, 1000);
    elementwise_rows::<D, f64>(r, dev, 2000);
    // --- update steps: bitwise
    case!(r, dev, "langevin_corrector_step", 0.0, |be| {
        let mut x = be.upload(&rnd(MAPS * n(), 36))?;
        let (s, z) = (
            be.upload(&rnd(MAPS * n(), 37))?,
            be.upload(&rnd(MAPS * n(), 38))?,
        );
        // the middle chain has a zero score norm: it must stay unchanged
        let sn = be.upload(&[2.5, 0.0, 0.7])?;
        let zn = be.upload(&[30.0, 31.0, 29.0])?;
        be.langevin_corrector_step(&mut x, &s, &z, &sn, &zn, 0.16, n())?;
        Ok(vec![host(be, &x)?])
    });
    case!(r, dev, "heun_predictor", 0.0, |be| {
        let mut d = be.upload(&rnd(MAPS * n(), 41))?;
        let x = be.upload(&rnd(MAPS * n(), 42))?;
        let mut xp = poison::<B, f32>(be, MAPS * n())?;
        be.heun_predictor(&mut d, &x, &mut xp, -0.3, -0.02)?;
        Ok(vec![host(be, &d)?, host(be, &xp)?])
    });
    case!(r, dev, "hmc_position_step", 0.0, |be| {
        let mut x = be.upload(&rnd(MAPS * n(), 48))?;
        let v = be.upload(&rnd(MAPS * n(), 49))?;
        let mut xprev = poison::<B, f32>(be, MAPS * n())?;
        be.hmc_position_step(&mut x, Some(&mut xprev), &v, 0.031)?;
        let mut y = be.upload(&rnd(MAPS * n(), 50))?;
        be.hmc_position_step(&mut y, None, &v, 0.029)?;
        Ok(vec![host(be, &x)?, host(be, &xprev)?, host(be, &y)?])
    });
    case!(r, dev, "hmc_accept", 0.0, |be| {
        let mut x = be.upload(&rnd(MAPS * n(), 51))?;
        let xk = be.upload(&rnd(MAPS * n(), 52))?;
        be.hmc_accept(&mut x, &xk, &be.upload(&[1u32, 0, 1])?, n())?;
        Ok(vec![host(be, &x)?])
    });
    case!(r, dev, "hmc_start_from_map", 0.0, |be| {
        let mut x = be.upload(&rnd(MAPS * n(), 53))?;
        let start = be.upload(&rnd(n(), 54))?;
        be.hmc_start_from_map(&mut x, &start, 0.9)?;
        Ok(vec![host(be, &x)?])
    });
    // --- guidance: bitwise
    case!(r, dev, "annealed_weights", 0.0, |be| {
        let w = be.upload(&positive(n(), 61))?;
        let mut a = poison::<B, f32>(be, n())?;
        be.annealed_weights(&w, 0.013, &mut a)?;
        Ok(vec![host(be, &a)?])
    });
    case!(r, dev, "weighted_residual", 0.0, |be| {
        let mut r1 = be.upload(&rnd(MAPS * n(), 62))?;
        let mut r2 = be.upload(&rnd(MAPS * n(), 63))?;
        let (g1, g2) = (be.upload(&rnd(n(), 64))?, be.upload(&rnd(n(), 65))?);
        let (w1, w2) = (
            be.upload(&positive(n(), 66))?,
            be.upload(&positive(n(), 67))?,
        );
        be.weighted_residual(&mut r1, &mut r2, &g1, &g2, &w1, &w2)?;
        Ok(vec![host(be, &r1)?, host(be, &r2)?])
    });
    case!(r, dev, "shear_residual_f64", 0.0, |be| {
        let mut q1 = be.upload(&rnd64(MAPS * n(), 73))?;
        let mut q2 = be.upload(&rnd64(MAPS * n(), 74))?;
        let (g1, g2) = (be.upload(&rnd(n(), 75))?, be.upload(&rnd(n(), 76))?);
        be.shear_residual_f64(&mut q1, &mut q2, &g1, &g2)?;
        Ok(vec![host(be, &q1)?, host(be, &q2)?])
    });
    case!(r, dev, "weighted_residual_f64", 0.0, |be| {
        let mut y1 = be.upload(&rnd64(MAPS * n(), 77))?;
        let mut y2 = be.upload(&rnd64(MAPS * n(), 78))?;
        let (q1, q2) = (
            be.upload(&rnd64(MAPS * n(), 79))?,
            be.upload(&rnd64(MAPS * n(), 80))?,
        );
        let (w1, w2) = (
            be.upload(&positive64(n(), 81))?,
            be.upload(&positive64(n(), 82))?,
        );
        be.weighted_residual_f64(&mut y1, &mut y2, &q1, &q2, &w1, &w2)?;
        Ok(vec![host(be, &y1)?, host(be, &y2)?])
    });
    // --- conjugate gradients: bitwise
    case!(r, dev, "multiply_weights_f64", 0.0, |be| {
        let mut a = be.upload(&rnd64(MAPS * n(), 83))?;
        be.multiply_weights_f64(&mut a, &be.upload(&positive64(n(), 84))?)?;
        Ok(vec![host(be, &a)?])
    });
    case!(r, dev, "cg_initial_residual", 0.0, |be| {
        let mut rr = be.upload(&rnd64(MAPS * n(), 87))?;
        let (ap, u) = (
            be.upload(&rnd64(MAPS * n(), 88))?,
            be.upload(&rnd64(MAPS * n(), 89))?,
        );
        be.cg_initial_residual(&mut rr, &ap, &u, &be.upload(&[1u32, 0, 1])?, n())?;
        Ok(vec![host(be, &rr)?])
    });
    case!(r, dev, "cg_update_solution", 0.0, |be| {
        let mut u = be.upload(&rnd64(MAPS * n(), 90))?;
        let mut rr = be.upload(&rnd64(MAPS * n(), 91))?;
        let (p, ap) = (
            be.upload(&rnd64(MAPS * n(), 92))?,
            be.upload(&rnd64(MAPS * n(), 93))?,
        );
        let alpha = be.upload(&[0.3, 7.0, -0.2])?;
        be.cg_update_solution(
            &mut u,
            &mut rr,
            &p,
            &ap,
            &alpha,
            &be.upload(&[0u32, 1, 1])?,
            n(),
        )?;
        Ok(vec![host(be, &u)?, host(be, &rr)?])
    });
    case!(r, dev, "cg_update_direction", 0.0, |be| {
        let mut p = be.upload(&rnd64(MAPS * n(), 94))?;
        let z = be.upload(&rnd64(MAPS * n(), 95))?;
        let beta = be.upload(&[0.5, 0.25, 1.5])?;
        be.cg_update_direction(&mut p, &z, &beta, &be.upload(&[1u32, 1, 0])?, n())?;
        Ok(vec![host(be, &p)?])
    });
    // --- reductions: a different summation order (f64 sums, ~n ulps)
    case!(r, dev, "chain_norms", 1e-12, |be| {
        let x = be.upload(&rnd(MAPS * n(), 96))?;
        let mut o = poison::<B, f64>(be, MAPS)?;
        be.chain_norms(&x, n(), &mut o)?;
        Ok(vec![host(be, &o)?])
    });
    case!(r, dev, "chain_dot_f64", 1e-11, |be| {
        let (a, b) = (
            be.upload(&rnd64(MAPS * n(), 97))?,
            be.upload(&rnd64(MAPS * n(), 98))?,
        );
        let mut o = poison::<B, f64>(be, MAPS)?;
        be.chain_dot_f64(&a, &b, n(), &mut o)?;
        Ok(vec![host(be, &o)?])
    });
    case!(r, dev, "hmc_energy_increment", 1e-11, |be| {
        let mut du = be.upload(&rnd64(MAPS, 99))?;
        let (s, s2) = (
            be.upload(&rnd(MAPS * n(), 100))?,
            be.upload(&rnd(MAPS * n(), 101))?,
        );
        let (xk, xp) = (
            be.upload(&rnd(MAPS * n(), 102))?,
            be.upload(&rnd(MAPS * n(), 103))?,
        );
        be.hmc_energy_increment(&mut du, &s, &s2, &xk, &xp, n())?;
        Ok(vec![host(be, &du)?])
    });
    case!(r, dev, "hmc_kinetic_change", 1e-11, |be| {
        let (p, vp) = (
            be.upload(&rnd(MAPS * n(), 104))?,
            be.upload(&rnd(MAPS * n(), 105))?,
        );
        let (p0, vp0) = (
            be.upload(&rnd(MAPS * n(), 106))?,
            be.upload(&rnd(MAPS * n(), 107))?,
        );
        let mut o = poison::<B, f64>(be, MAPS)?;
        be.hmc_kinetic_change(&p, &vp, &p0, &vp0, n(), &mut o)?;
        Ok(vec![host(be, &o)?])
    });
    rows
}

/// The cases of [`parity`] besides the elementwise table (one per
/// precision of a generic operation).
const CASES: usize = 33;

/// Every row of the elementwise table in precision `T`: random buffers (the
/// output too, which a row may read; a distinct seed each, from `seed0` on)
/// and random scalars, run by name on the CPU backend and on the device.
fn elementwise_rows<D: Backend, T: Real + Poison>(rows: &mut Vec<Row>, dev: &D, seed0: u64) {
    fn run<B: Backend, T: Real + Poison>(
        be: &B,
        op: &lensdiff::backend::elementwise::Row,
        seed: u64,
    ) -> Result<Vec<Vec<f64>>> {
        let len = MAPS * n();
        let mut out = be.upload(&rnd_real::<T>(len, seed))?;
        let ins = (1..=op.inputs.len() as u64)
            .map(|k| be.upload(&rnd_real::<T>(len, seed + k)))
            .collect::<Result<Vec<_>>>()?;
        let ins: Vec<&B::Buf<T>> = ins.iter().collect();
        let scalars = rnd_real::<T>(op.scalars.len(), seed + 1 + op.inputs.len() as u64);
        run_named(be, op.name, &mut out, &ins, &scalars)?;
        Ok(vec![host(be, &out)?])
    }
    let precision = match T::PRECISION {
        lensdiff::backend::Precision::F32 => "f32",
        lensdiff::backend::Precision::F64 => "f64",
    };
    for (i, op) in OPERATIONS.iter().enumerate() {
        // every row uses fewer than 16 seeds: buffers and scalars
        let seed = seed0 + 16 * i as u64;
        rows.push(compare(
            &format!("{} ({precision})", op.name),
            0.0,
            run::<Cpu, T>(&Cpu::new(), op, seed),
            run::<D, T>(dev, op, seed),
        ));
    }
}

fn table(title: &str, rows: &[Row]) -> String {
    let mut s = format!("{title}\n\n| kernel | elements | max rel. error | bound | unwritten | ok |\n|---|---|---|---|---|---|\n");
    for r in rows {
        s += &format!(
            "| `{}` | {} | {:.2e} | {:.0e} | {} | {} |\n",
            r.name,
            r.elements,
            r.error,
            r.bound,
            r.unwritten,
            if r.ok() { "yes" } else { "**NO**" }
        );
    }
    s
}

/// CUDA device 0; fails `test` when there is none (no GPU, driver or CUDA
/// libraries).
fn device(test: &str) -> lensdiff::backend::cuda::Cuda {
    lensdiff::backend::cuda::Cuda::new(0).unwrap_or_else(|e| {
        panic!("{test} needs an NVIDIA GPU with its driver, NVRTC and cuFFT (bench/gpu_check.sh runs it there): {e}")
    })
}

#[test]
fn parity_harness_with_the_cpu_backend_as_the_device() {
    // the CPU against itself: every error is exactly 0 and every poisoned
    // output element is overwritten, so the harness reads what it should
    let rows = parity(&Cpu::new());
    assert_eq!(
        rows.len(),
        CASES + 2 * OPERATIONS.len(),
        "one case per Backend operation and precision, one per elementwise row and precision"
    );
    for op in OPERATIONS {
        for p in ["f32", "f64"] {
            let name = format!("{} ({p})", op.name);
            assert!(rows.iter().any(|r| r.name == name), "{name}");
        }
    }
    for r in &rows {
        assert_eq!(r.unwritten, 0, "{r:?}");
        assert_eq!(r.error, 0.0, "{r:?}");
    }
    // and it would notice an unwritten element or a wrong value
    let bad = compare(
        "x",
        0.0,
        Ok(vec![vec![1.0, 2.0]]),
        Ok(vec![vec![1.0, f64::NAN]]),
    );
    assert!(!bad.ok() && bad.unwritten == 1);
    let bad = compare(
        "x",
        1e-6,
        Ok(vec![vec![1.0, 2.0]]),
        Ok(vec![vec![1.0, 2.001]]),
    );
    assert!(!bad.ok());
}

#[test]
#[ignore = "needs an NVIDIA GPU: bench/gpu_check.sh runs it"]
fn gpu_kernel_parity() {
    let dev = device("gpu_kernel_parity");
    let rows = parity(&dev);
    let t = table(
        &format!(
            "Kernel parity on {} against the CPU backend",
            dev.describe()
        ),
        &rows,
    );
    println!("{t}");
    if let Ok(p) = std::env::var("LENSDIFF_PARITY_OUT") {
        std::fs::write(p, &t).expect("write parity table");
    }
    let bad: Vec<_> = rows.iter().filter(|r| !r.ok()).collect();
    assert!(bad.is_empty(), "{bad:?}");
}

/// A masked 64² problem with non-uniform noise (the inner solve iterates).
fn masked_problem() -> (lensdiff::prior::GaussianPrior, lensdiff::sampler::ShearData) {
    common::masked_problem(64, |i| (i % 64) > 8 || (i / 64) > 20)
}

#[test]
#[ignore = "needs an NVIDIA GPU: bench/gpu_check.sh runs it"]
fn gpu_samplers_match_the_cpu_with_the_same_seed() {
    use lensdiff::sampler::{engine, Guidance, RunSpec, SamplerConfig, SamplerKind};
    let dev = device("gpu_samplers_match_the_cpu_with_the_same_seed");
    let (prior, data) = masked_problem();
    let n = prior.grid().len();
    let chains = 4;
    let mut out = String::from(
        "| sampler | guidance | levels | max rel. RMS diff | chains within 1e-3 | inner its cpu / gpu |\n|---|---|---|---|---|---|\n",
    );
    let mut failures = Vec::new();
    for (kind, levels) in [
        ("em", 60),
        ("pc", 30),
        ("heun", 16),
        ("edm", 24),
        ("hmc", 30),
    ] {
        for guidance in [
            Guidance::Spectral { tol: 1e-4 },
            Guidance::Annealed { c: 0.5 },
            Guidance::Tweedie { inflate: false },
            Guidance::Tweedie { inflate: true },
        ] {
            let cfg = SamplerConfig {
                kind: SamplerKind::from_name(kind).unwrap(),
                levels,
                ..SamplerConfig::default()
            };
            // the reference: the CPU sampler with the same seed
            let post = lensdiff::sampler::GuidedPosterior::new(&prior, &data, guidance).unwrap();
            let run = RunSpec::new(3, chains);
            let cpu = lensdiff::sampler::sample(&post, &cfg, &run, &mut |_, _| {}).unwrap();
            let gpu = engine::run(&dev, &post, &cfg, &run, &mut |_, _| {}).unwrap();
            assert_eq!(cpu.nfe, gpu.nfe);
            let rel: Vec<f64> = (0..chains)
                .map(|c| {
                    let (a, b) = (
                        &cpu.samples[c * n..(c + 1) * n],
                        &gpu.samples[c * n..(c + 1) * n],
                    );
                    let d: f64 = a
                        .iter()
                        .zip(b)
                        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
                        .sum();
                    let s: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum();
                    (d / s).sqrt()
                })
                .collect();
            let close = rel.iter().filter(|&&r| r < 1e-3).count();
            let worst = rel.iter().cloned().fold(0.0, f64::max);
            out += &format!(
                "| {kind} | {} | {levels} | {worst:.2e} | {close}/{chains} | {} / {} |\n",
                guidance.name(),
                cpu.inner_iterations,
                gpu.inner_iterations
            );
            // deterministic or contracting dynamics keep rounding differences
            // small; an HMC chain whose Metropolis decision flips on a rounding
            // difference goes its own (equally valid) way, so 3 of 4 suffice
            let need = if kind == "hmc" { 3 } else { chains };
            if close < need {
                failures.push(format!("{kind} + {}: {rel:?}", guidance.name()));
            }
        }
    }
    println!(
        "Samplers on {} against the CPU (64², masked, seed 3, {chains} chains)\n\n{out}",
        dev.describe()
    );
    if let Ok(p) = std::env::var("LENSDIFF_PARITY_OUT") {
        let t = std::fs::read_to_string(&p).unwrap_or_default();
        std::fs::write(
            &p,
            format!(
                "{t}\nSamplers against the CPU (64², masked, seed 3, {chains} chains)\n\n{out}"
            ),
        )
        .unwrap();
    }
    assert!(failures.is_empty(), "{failures:?}");
}

#[test]
#[ignore = "needs an NVIDIA GPU: bench/gpu_check.sh runs it"]
fn gpu_heun_with_spectral_guidance_reproduces_the_exact_posterior() {
    use lensdiff::sampler::{
        engine, FourierGaussianPosterior, Guidance, GuidedPosterior, RunSpec, SamplerConfig,
    };
    let dev = device("gpu_heun_with_spectral_guidance_reproduces_the_exact_posterior");
    // tests/sampler_exact.rs's problem: 32², uniform noise, no mask
    let (g, power, data) = common::exact_problem();
    let prior = lensdiff::prior::GaussianPrior::new(g, power).unwrap();
    let oracle = FourierGaussianPosterior::new(prior.power(), &data).unwrap();
    let chains = 128;
    let cfg = SamplerConfig::default(); // Heun, 64 EDM levels
    let post = GuidedPosterior::new(&prior, &data, Guidance::Spectral { tol: 1e-6 }).unwrap();
    let spec = RunSpec::new(42, chains).in_batches(64);
    let run = engine::run(&dev, &post, &cfg, &spec, &mut |_, _| {}).unwrap();
    let st = common::modes::mode_stats(&g, &oracle, &run.samples);
    // 4 standard errors plus sampling_exact's 2% discretisation allowance
    let se_z = 1.0 / (2.0 * st.k as f64).sqrt();
    let se_r = (2.0 / ((chains - 1) as f64 * st.k as f64)).sqrt();
    let line = format!(
        "exact Gaussian posterior on {}: Heun 64 levels + spectral guidance, {chains} chains: RMS z {:.3} (1 ± {:.3}), variance ratio {:.4} (1 ± {:.4}), K = {}",
        dev.describe(), st.rms_z, 4.0 * se_z + 0.02, st.mean_ratio, 4.0 * se_r + 0.02, st.k
    );
    println!("{line}");
    if let Ok(p) = std::env::var("LENSDIFF_PARITY_OUT") {
        let t = std::fs::read_to_string(&p).unwrap_or_default();
        std::fs::write(&p, format!("{t}\n{line}\n")).unwrap();
    }
    assert!((st.rms_z - 1.0).abs() < 4.0 * se_z + 0.02, "{line}");
    assert!((st.mean_ratio - 1.0).abs() < 4.0 * se_r + 0.02, "{line}");
}
