//! The kernel table: every `extern "C" __global__` kernel of `kernels/*.cu`,
//! declared once, by the `kernels!` invocation at the end of this file.
//!
//! A row `fn name(p: T, ..) => shape(size, ..);` under `"file.cu"` gives
//! - a typed launch wrapper `name(cuda, p, ..)` (`ops.rs` calls it as
//!   `k::name(self, ..)`): each `T` is the Rust twin of the C parameter type
//!   (`*const f32` is `const float*`, `*mut cf32` is `cf32*`, `u64` is `u64`,
//!   `Option<*mut f32>` a `float*` the kernel may get null), and the wrapper
//!   takes what [`Param::Arg`] says: a `&CudaSlice` for a `*const`, a
//!   `&mut CudaSlice` for a `*mut`, the scalar itself for a scalar. The
//!   launch shape is `shape` (`flat`, `per_map` or `per_chain` of
//!   `super`, kernels/README.md) of the sizes, which are expressions of the
//!   kernel's own parameters, so a launch is always sized by the lengths the
//!   kernel is given;
//! - [`PROGRAMS`], the embedded `.cu` files (one module each), and
//!   [`KERNELS`], the rows as data (names, files, C parameter types, shapes):
//!   module loading fetches exactly these functions, and the tests compare
//!   each row with the kernel's C signature and loops (`tests.rs`).

use cudarc::driver::{CudaSlice, LaunchArgs, LaunchConfig, PushKernelArg};

use super::{flat, per_chain, per_map, Cuda};
use crate::error::Result;

/// The interleaved complex `cf32` of common.cuh, `(re, im)` as two `f32`:
/// a `*const cf32` parameter takes a `CudaSlice<f32>` of pairs.
#[allow(non_camel_case_types)]
pub(crate) enum cf32 {}

/// The interleaved complex `cf64` of common.cuh: a `*const cf64` parameter
/// takes a `CudaSlice<f64>` of pairs.
#[allow(non_camel_case_types)]
pub(crate) enum cf64 {}

/// A kernel parameter type of the table.
pub(crate) trait Param {
    /// What the launch wrapper takes for it.
    type Arg<'a>;
    /// Its C type in a kernel signature, `__restrict__` and the name left
    /// out (`const float*`).
    const C: &'static str;
    /// Whether the argument may be a null pointer (the kernel must test it).
    const NULLABLE: bool = false;
    /// Adds the argument to a launch.
    fn push<'s>(arg: &'s mut Self::Arg<'_>, launch: &mut LaunchArgs<'s>);
}

/// The device pointer of a `None` for an `Option<*mut T>` parameter.
static NULL: u64 = 0;

/// Scalar parameters: passed by value, as the C type.
macro_rules! scalars {
    ($($t:ty => $c:literal),+ $(,)?) => {$(
        impl Param for $t {
            type Arg<'a> = $t;
            const C: &'static str = $c;
            fn push<'s>(arg: &'s mut Self::Arg<'_>, launch: &mut LaunchArgs<'s>) {
                launch.arg(&*arg);
            }
        }
    )+};
}

scalars!(f32 => "float", f64 => "double", u32 => "u32", u64 => "u64");

/// Pointer parameters to elements `$t` (C `$c`), stored as `CudaSlice<$store>`.
macro_rules! buffers {
    ($($t:ty => $store:ty, $c:literal;)+) => {$(
        impl Param for *const $t {
            type Arg<'a> = &'a CudaSlice<$store>;
            const C: &'static str = concat!("const ", $c, "*");
            fn push<'s>(arg: &'s mut Self::Arg<'_>, launch: &mut LaunchArgs<'s>) {
                launch.arg(&**arg);
            }
        }

        impl Param for *mut $t {
            type Arg<'a> = &'a mut CudaSlice<$store>;
            const C: &'static str = concat!($c, "*");
            fn push<'s>(arg: &'s mut Self::Arg<'_>, launch: &mut LaunchArgs<'s>) {
                launch.arg(&mut **arg);
            }
        }

        impl Param for Option<*mut $t> {
            type Arg<'a> = Option<&'a mut CudaSlice<$store>>;
            const C: &'static str = concat!($c, "*");
            const NULLABLE: bool = true;
            fn push<'s>(arg: &'s mut Self::Arg<'_>, launch: &mut LaunchArgs<'s>) {
                match arg {
                    Some(buf) => launch.arg(&mut **buf),
                    None => launch.arg(&NULL),
                };
            }
        }
    )+};
}

buffers! {
    f32 => f32, "float";
    f64 => f64, "double";
    u32 => u32, "u32";
    cf32 => f32, "cf32";
    cf64 => f64, "cf64";
}

/// A parameter of a [`Kernel`] row.
// (The rows' parameters, shapes and sizes are data for the tests, which
// compare them with the kernels' C signatures and loops.)
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arg {
    /// Its name, as in the C signature.
    pub name: &'static str,
    /// Its C type ([`Param::C`]).
    pub c: &'static str,
    /// Whether it may be null ([`Param::NULLABLE`]).
    pub nullable: bool,
}

/// A row of the table, as data.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kernel {
    pub name: &'static str,
    /// The `.cu` file that defines it.
    pub file: &'static str,
    pub params: &'static [Arg],
    /// `flat`, `per_map` or `per_chain`.
    pub shape: &'static str,
    /// The sizes of the shape, as written (`len`, `n.div_ceil(4)`).
    pub sizes: &'static [&'static str],
}

impl Cuda {
    /// A launch of kernel `name` with shape `cfg`, `None` for an empty grid
    /// (nothing to launch).
    fn launch_args(&self, name: &str, cfg: &LaunchConfig) -> Result<Option<LaunchArgs<'_>>> {
        if cfg.grid_dim.0 == 0 || cfg.grid_dim.1 == 0 {
            return Ok(None);
        }
        Ok(Some(self.stream.launch_builder(self.kernel(name)?)))
    }
}

/// Queues a launch whose arguments the wrapper of `name` pushed.
fn finish(cuda: &Cuda, name: &str, mut launch: LaunchArgs<'_>, cfg: LaunchConfig) -> Result<()> {
    // SAFETY: the wrapper pushed one argument per parameter of the kernel, in
    // order, of the C type of its table row (which the tests compare with the
    // kernel's signature); the callers checked the buffer lengths against the
    // sizes passed, and the kernels check every index against those sizes.
    unsafe { launch.launch(cfg) }
        .map(|_| ())
        .map_err(|e| cuda.err(&format!("cuLaunchKernel({name})"), e))
}

/// The table: `"file.cu" { fn name(param: Type, ..) => shape(size, ..); .. }`.
macro_rules! kernels {
    ($(
        $file:literal {
            $(fn $name:ident($($p:ident: $t:ty),* $(,)?) => $shape:ident($($size:expr),+ $(,)?);)+
        }
    )+) => {
        /// Every `.cu` file of `kernels/` as `(name, text)`, embedded.
        pub(crate) const PROGRAMS: &[(&str, &str)] = &[$(
            ($file, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/kernels/", $file))),
        )+];

        /// Every kernel, in the order of the table.
        pub(crate) const KERNELS: &[Kernel] = &[$($(
            Kernel {
                name: stringify!($name),
                file: $file,
                params: &[$(Arg {
                    name: stringify!($p),
                    c: <$t as Param>::C,
                    nullable: <$t as Param>::NULLABLE,
                }),*],
                shape: stringify!($shape),
                sizes: &[$(stringify!($size)),+],
            },
        )+)+];

        $($(
            #[doc = concat!("Launches `", stringify!($name), "` (kernels/", $file, "), shape `",
                stringify!($shape), "(", stringify!($($size),+), ")`.")]
            #[allow(clippy::too_many_arguments)]
            pub(super) fn $name(cuda: &Cuda, $(mut $p: <$t as Param>::Arg<'_>),*) -> Result<()> {
                let cfg = $shape($(($size) as usize),+);
                let Some(mut launch) = cuda.launch_args(stringify!($name), &cfg)? else {
                    return Ok(());
                };
                $(<$t as Param>::push(&mut $p, &mut launch);)*
                finish(cuda, stringify!($name), launch, cfg)
            }
        )+)+
    };
}

kernels! {
    "philox.cu" {
        fn fill_normal(out: *mut f32, n: u32, chains: u32, seed_lo: u32, seed_hi: u32,
            stream: u32, first_chain: u64, step: u64) => per_map(n.div_ceil(4), chains);
    }
    "spectral.cu" {
        fn ks_forward_multiply(kappa_hat: *const cf32, p1: *const f32, p2: *const f32,
            g1_hat: *mut cf32, g2_hat: *mut cf32, spec_len: u32, maps: u32)
            => per_map(spec_len, maps);
        fn ks_forward_multiply_f64(kappa_hat: *const cf64, p1: *const f64, p2: *const f64,
            g1_hat: *mut cf64, g2_hat: *mut cf64, spec_len: u32, maps: u32)
            => per_map(spec_len, maps);
        fn ks_adjoint_multiply(g1_hat: *const cf32, g2_hat: *const cf32, p1: *const f32,
            p2: *const f32, kappa_hat: *mut cf32, spec_len: u32, maps: u32)
            => per_map(spec_len, maps);
        fn ks_adjoint_multiply_f64(g1_hat: *const cf64, g2_hat: *const cf64, p1: *const f64,
            p2: *const f64, kappa_hat: *mut cf64, spec_len: u32, maps: u32)
            => per_map(spec_len, maps);
        fn ks_inverse_eb_multiply(g1_hat: *const cf32, g2_hat: *const cf32, p1: *const f32,
            p2: *const f32, e_hat: *mut cf32, b_hat: *mut cf32, spec_len: u32, maps: u32)
            => per_map(spec_len, maps);
        fn gaussian_denoise_gain(x_hat: *mut cf32, power: *const f64, sigma2: f64,
            spec_len: u32, maps: u32) => per_map(spec_len, maps);
        fn metric_apply_multiply(x_hat: *mut cf32, f: *const f32, spec_len: u32, maps: u32)
            => per_map(spec_len, maps);
        fn fourier_scale(x_hat: *mut cf64, scale: *const f64, spec_len: u32, maps: u32)
            => per_map(spec_len, maps);
        fn diffused_prior_draw_multiply(z_hat: *mut cf64, power: *const f64, sigma2: f64,
            spec_len: u32, maps: u32) => per_map(spec_len, maps);
        fn fft_inverse_scale(x: *mut f32, scale: f32, len: u64) => flat(len);
        fn fft_inverse_scale_f64(x: *mut f64, scale: f64, len: u64) => flat(len);
        fn map_to_f64(x: *const f32, y: *mut f64, len: u64) => flat(len);
        fn map_to_f32(x: *const f64, y: *mut f32, len: u64) => flat(len);
    }
    "update.cu" {
        fn axpby_step(x: *mut f32, s: *const f32, z: *const f32, a: f32, b: f32, len: u64)
            => flat(len);
        fn langevin_corrector_step(x: *mut f32, s: *const f32, z: *const f32,
            s_norm: *const f64, z_norm: *const f64, snr: f64, n: u32, chains: u32)
            => per_map(n, chains);
        fn edm_churn_noise(x: *mut f32, z: *const f32, a: f32, len: u64) => flat(len);
        fn heun_predictor(d: *mut f32, x: *const f32, xp: *mut f32, f: f32, h: f32, len: u64)
            => flat(len);
        fn heun_corrector(x: *mut f32, d: *const f32, d2: *const f32, h: f32, f2: f32,
            len: u64) => flat(len);
        fn hmc_momentum_half_step(p: *mut f32, s: *const f32, e: f32, len: u64) => flat(len);
        fn hmc_position_step(x: *mut f32, xprev: Option<*mut f32>, v: *const f32, e: f32,
            len: u64) => flat(len);
        fn hmc_accept(x: *mut f32, xk: *const f32, accept: *const u32, n: u32, chains: u32)
            => per_map(n, chains);
        fn hmc_start_from_map(x: *mut f32, start: *const f32, s: f32, n: u32, chains: u32)
            => per_map(n, chains);
    }
    "guidance.cu" {
        fn prior_score(out: *mut f32, x: *const f32, inv: f32, len: u64) => flat(len);
        fn annealed_weights(w: *const f32, k: f64, out: *mut f32, n: u32) => flat(n);
        fn weighted_residual(r1: *mut f32, r2: *mut f32, g1: *const f32, g2: *const f32,
            w1: *const f32, w2: *const f32, n: u32, chains: u32) => per_map(n, chains);
        fn add_weighted_residual_accumulate(out: *mut f32, back: *const f32, len: u64)
            => flat(len);
        fn tweedie_score_combine(out: *mut f32, d: *const f32, x: *const f32, jv: *const f32,
            inv: f32, len: u64) => flat(len);
        fn shear_residual_f64(q1: *mut f64, q2: *mut f64, g1: *const f32, g2: *const f32,
            n: u32, chains: u32) => per_map(n, chains);
        fn weighted_residual_f64(y1: *mut f64, y2: *mut f64, q1: *const f64, q2: *const f64,
            w1: *const f64, w2: *const f64, n: u32, chains: u32) => per_map(n, chains);
    }
    "reduce.cu" {
        fn chain_norms(x: *const f32, n: u32, chains: u32, out: *mut f64) => per_chain(chains);
        fn chain_dot_f64(a: *const f64, b: *const f64, n: u32, chains: u32, out: *mut f64)
            => per_chain(chains);
        fn hmc_energy_increment(du: *mut f64, s: *const f32, s_new: *const f32,
            xk: *const f32, xprev: *const f32, n: u32, chains: u32) => per_chain(chains);
        fn hmc_kinetic_change(p: *const f32, vp: *const f32, p0: *const f32, vp0: *const f32,
            n: u32, chains: u32, out: *mut f64) => per_chain(chains);
    }
    "cg.cu" {
        fn multiply_weights_f64(a: *mut f64, w: *const f64, n: u32, chains: u32)
            => per_map(n, chains);
        fn add_assign_f64(a: *mut f64, b: *const f64, len: u64) => flat(len);
        fn cg_initial_residual(r: *mut f64, ap: *const f64, u: *const f64, active: *const u32,
            n: u32, chains: u32) => per_map(n, chains);
        fn cg_update_solution(u: *mut f64, r: *mut f64, p: *const f64, ap: *const f64,
            alpha: *const f64, active: *const u32, n: u32, chains: u32) => per_map(n, chains);
        fn cg_update_direction(p: *mut f64, z: *const f64, beta: *const f64,
            active: *const u32, n: u32, chains: u32) => per_map(n, chains);
    }
}
