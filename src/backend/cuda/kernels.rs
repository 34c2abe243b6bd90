//! The kernel table: every `extern "C" __global__` kernel of `kernels/*.cu`,
//! declared once, by the `kernels!` invocation at the end of this file.
//!
//! A row `fn name(p: T, ..) => shape(size, ..);` under `"file.cu"` gives
//! - a typed launch wrapper `name(cuda, p, ..)` (`ops.rs` calls it as
//!   `k::name(self, ..)`): each `T` is the Rust twin of the C parameter type
//!   (`*const f32` is `const float*`, `*mut Cx<f32>` is `cf32*`, `u64` is
//!   `u64`, `Option<*mut f32>` a `float*` the kernel may get null), and the
//!   wrapper takes what [`Param::Arg`] says: a `&CudaSlice` for a `*const`, a
//!   `&mut CudaSlice` for a `*mut`, the scalar itself for a scalar. The
//!   launch shape is `shape` (`flat`, `per_map` or `per_chain` of
//!   `super`, kernels/README.md) of the sizes, which are expressions of the
//!   kernel's own parameters, so a launch is always sized by the lengths the
//!   kernel is given;
//! - a row `fn name<R>(..)` is generic over [`Real`] `R`: its wrapper
//!   `name::<T>` launches `name` for `f32` and `name_f64` for `f64`;
//! - [`PROGRAMS`], the embedded `.cu` files (one module each), and
//!   [`kernels`], the rows as data (names, files, C parameter types, shapes):
//!   module loading fetches exactly these functions, and the tests compare
//!   each row with the kernel's C signature and loops (`tests.rs`).
//!
//! The kernels of the elementwise table (`crate::backend::elementwise`) are
//! generated into the program [`ELEMENTWISE_PROGRAM`] and launched by
//! [`elementwise`].

use std::marker::PhantomData;

use cudarc::driver::{CudaSlice, LaunchArgs, LaunchConfig, PushKernelArg};

use super::{flat, per_chain, per_map, Cuda};
use crate::backend::elementwise::OPERATIONS;
use crate::backend::Real;
use crate::error::Result;

/// The interleaved complex of common.cuh, `(re, im)` as two `R` (`cf32`,
/// `cf64`): a `*const Cx<R>` parameter takes a `CudaSlice<R>` of pairs.
pub(crate) struct Cx<R>(PhantomData<R>);

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

scalars!(u32 => "u32", u64 => "u64");

impl<R: Real> Param for R {
    type Arg<'a> = R;
    const C: &'static str = R::C;
    fn push<'s>(arg: &'s mut Self::Arg<'_>, launch: &mut LaunchArgs<'s>) {
        launch.arg(&*arg);
    }
}

/// Pointer parameters to elements `$t` (C `$const_c` / `$mut_c`), stored as
/// `CudaSlice<$store>`, for the element types `$t` with parameters `$g`.
macro_rules! buffers {
    ($([$($g:tt)*] $t:ty => $store:ty, $mut_c:expr, $const_c:expr;)+) => {$(
        impl<$($g)*> Param for *const $t {
            type Arg<'a> = &'a CudaSlice<$store>;
            const C: &'static str = $const_c;
            fn push<'s>(arg: &'s mut Self::Arg<'_>, launch: &mut LaunchArgs<'s>) {
                launch.arg(&**arg);
            }
        }

        impl<$($g)*> Param for *mut $t {
            type Arg<'a> = &'a mut CudaSlice<$store>;
            const C: &'static str = $mut_c;
            fn push<'s>(arg: &'s mut Self::Arg<'_>, launch: &mut LaunchArgs<'s>) {
                launch.arg(&mut **arg);
            }
        }

        impl<$($g)*> Param for Option<*mut $t> {
            type Arg<'a> = Option<&'a mut CudaSlice<$store>>;
            const C: &'static str = $mut_c;
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
    [] u32 => u32, "u32*", "const u32*";
    [R: Real] R => R, R::C_POINTERS[0], R::C_POINTERS[1];
    [R: Real] Cx<R> => R, R::C_POINTERS[2], R::C_POINTERS[3];
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

/// The table: `"file.cu" { fn name(param: Type, ..) => shape(size, ..); .. }`;
/// a row `fn name<R>(..)` is generic over [`Real`] `R` (the kernels `name`
/// for `f32` and `name_f64` for `f64`, the two instantiations of one template).
macro_rules! kernels {
    ($(
        $file:literal {
            $(fn $name:ident $(<$r:ident>)? ($($p:ident: $t:ty),* $(,)?)
                => $shape:ident($($size:expr),+ $(,)?);)+
        }
    )+) => {
        /// Every `.cu` file of `kernels/` as `(name, text)`, embedded.
        pub(crate) const PROGRAMS: &[(&str, &str)] = &[$(
            ($file, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/kernels/", $file))),
        )+];

        /// The rows, one slice per row (two kernels for a generic row).
        const ROWS: &[&[Kernel]] = &[$($(
            kernels!(@rows $file, $name, [$($r)?], ($($p: $t),*), $shape, ($($size),+)),
        )+)+];

        $($(
            kernels!(@wrapper $file, $name, [$($r)?], ($($p: $t),*), $shape, ($($size),+));
        )+)+
    };
    (@row $file:literal, $name:expr, ($($p:ident: $t:ty),*), $shape:ident, ($($size:expr),+)) => {
        Kernel {
            name: $name,
            file: $file,
            params: &[$(Arg {
                name: stringify!($p),
                c: <$t as Param>::C,
                nullable: <$t as Param>::NULLABLE,
            }),*],
            shape: stringify!($shape),
            sizes: &[$(stringify!($size)),+],
        }
    };
    (@rows $file:literal, $name:ident, [], $params:tt, $shape:ident, $sizes:tt) => {
        &[kernels!(@row $file, stringify!($name), $params, $shape, $sizes)]
    };
    (@rows $file:literal, $name:ident, [$r:ident], $params:tt, $shape:ident, $sizes:tt) => {
        &[
            { type $r = f32; kernels!(@row $file, stringify!($name), $params, $shape, $sizes) },
            {
                type $r = f64;
                kernels!(@row $file, concat!(stringify!($name), "_f64"), $params, $shape, $sizes)
            },
        ]
    };
    (@wrapper $file:literal, $name:ident, [$($r:ident)?], ($($p:ident: $t:ty),*),
        $shape:ident, ($($size:expr),+)) => {
        #[doc = concat!("Launches `", stringify!($name), "` (kernels/", $file, "), shape `",
            stringify!($shape), "(", stringify!($($size),+), ")`.")]
        #[allow(clippy::too_many_arguments)]
        pub(super) fn $name$(<$r: Real>)?(cuda: &Cuda, $(mut $p: <$t as Param>::Arg<'_>),*)
            -> Result<()> {
            let name = stringify!($name);
            $(let name = $r::pick(name, concat!(stringify!($name), "_f64"));)?
            let cfg = $shape($(($size) as usize),+);
            let Some(mut launch) = cuda.launch_args(name, &cfg)? else {
                return Ok(());
            };
            $(<$t as Param>::push(&mut $p, &mut launch);)*
            finish(cuda, name, launch, cfg)
        }
    };
}

/// Every kernel of the table, in its order (a generic row's `f32` kernel
/// first).
pub(crate) fn kernels() -> impl Iterator<Item = &'static Kernel> {
    ROWS.iter().flat_map(|r| r.iter())
}

/// The program generated from the elementwise table
/// ([`crate::backend::elementwise::cuda_source`]).
pub(crate) const ELEMENTWISE_PROGRAM: &str = "elementwise.cu";

/// The kernels a program defines: the table's rows of a `kernels/` file, or
/// the two kernels of each elementwise row.
pub(crate) fn kernel_names(file: &str) -> Vec<&'static str> {
    if file == ELEMENTWISE_PROGRAM {
        return OPERATIONS
            .iter()
            .flat_map(|r| [r.name, r.name_f64])
            .collect();
    }
    kernels()
        .filter(|k| k.file == file)
        .map(|k| k.name)
        .collect()
}

/// Launches the elementwise kernel `name` (flat shape over `len`) with
/// `out`, the inputs, the scalars and `len`, the parameter order of
/// [`crate::backend::elementwise::cuda_source`].
pub(super) fn elementwise<T: Real>(
    cuda: &Cuda,
    name: &'static str,
    out: &mut CudaSlice<T>,
    ins: &[&CudaSlice<T>],
    scalars: &[T],
    len: u64,
) -> Result<()> {
    let cfg = flat(len as usize);
    let Some(mut launch) = cuda.launch_args(name, &cfg)? else {
        return Ok(());
    };
    launch.arg(out);
    for b in ins {
        launch.arg(*b);
    }
    for a in scalars {
        launch.arg(a);
    }
    launch.arg(&len);
    finish(cuda, name, launch, cfg)
}

kernels! {
    "philox.cu" {
        fn fill_normal(out: *mut f32, n: u32, chains: u32, seed_lo: u32, seed_hi: u32,
            stream: u32, first_chain: u64, step: u64) => per_map(n.div_ceil(4), chains);
    }
    "spectral.cu" {
        fn ks_forward_multiply<R>(kappa_hat: *const Cx<R>, p1: *const R, p2: *const R,
            g1_hat: *mut Cx<R>, g2_hat: *mut Cx<R>, spec_len: u32, maps: u32)
            => per_map(spec_len, maps);
        fn ks_adjoint_multiply<R>(g1_hat: *const Cx<R>, g2_hat: *const Cx<R>, p1: *const R,
            p2: *const R, kappa_hat: *mut Cx<R>, spec_len: u32, maps: u32)
            => per_map(spec_len, maps);
        fn ks_inverse_eb_multiply(g1_hat: *const Cx<f32>, g2_hat: *const Cx<f32>,
            p1: *const f32, p2: *const f32, e_hat: *mut Cx<f32>, b_hat: *mut Cx<f32>,
            spec_len: u32, maps: u32)
            => per_map(spec_len, maps);
        fn gaussian_denoise_gain(x_hat: *mut Cx<f32>, power: *const f64, sigma2: f64,
            spec_len: u32, maps: u32) => per_map(spec_len, maps);
        fn spectral_scale<R>(x_hat: *mut Cx<R>, f: *const R, spec_len: u32, maps: u32)
            => per_map(spec_len, maps);
        fn diffused_prior_draw_multiply(z_hat: *mut Cx<f64>, power: *const f64, sigma2: f64,
            spec_len: u32, maps: u32) => per_map(spec_len, maps);
        fn map_to_f64(x: *const f32, y: *mut f64, len: u64) => flat(len);
        fn map_to_f32(x: *const f64, y: *mut f32, len: u64) => flat(len);
    }
    "update.cu" {
        fn langevin_corrector_step(x: *mut f32, s: *const f32, z: *const f32,
            s_norm: *const f64, z_norm: *const f64, snr: f64, n: u32, chains: u32)
            => per_map(n, chains);
        fn heun_predictor(d: *mut f32, x: *const f32, xp: *mut f32, f: f32, h: f32, len: u64)
            => flat(len);
        fn hmc_position_step(x: *mut f32, xprev: Option<*mut f32>, v: *const f32, e: f32,
            len: u64) => flat(len);
        fn hmc_accept(x: *mut f32, xk: *const f32, accept: *const u32, n: u32, chains: u32)
            => per_map(n, chains);
        fn hmc_start_from_map(x: *mut f32, start: *const f32, s: f32, n: u32, chains: u32)
            => per_map(n, chains);
    }
    "guidance.cu" {
        fn annealed_weights(w: *const f32, k: f64, out: *mut f32, n: u32) => flat(n);
        fn weighted_residual(r1: *mut f32, r2: *mut f32, g1: *const f32, g2: *const f32,
            w1: *const f32, w2: *const f32, n: u32, chains: u32) => per_map(n, chains);
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
        fn cg_initial_residual(r: *mut f64, ap: *const f64, u: *const f64, active: *const u32,
            n: u32, chains: u32) => per_map(n, chains);
        fn cg_update_solution(u: *mut f64, r: *mut f64, p: *const f64, ap: *const f64,
            alpha: *const f64, active: *const u32, n: u32, chains: u32) => per_map(n, chains);
        fn cg_update_direction(p: *mut f64, z: *const f64, beta: *const f64,
            active: *const u32, n: u32, chains: u32) => per_map(n, chains);
    }
}
