//! The C ABI from Rust: the bad-input matrix (every public function × the
//! ways a caller can misuse it, each answered with its documented status and a
//! message, never a crash), call order, use after destroy, and thread safety.
//! The matrix is also the table in docs/c-api.md (`UPDATE_DOCS=1` rewrites it).

mod common;

use std::ffi::CStr;
use std::ptr::{null, null_mut};

use lensdiff::capi::*;

const N: usize = 12;

type S = LensdiffStatus;

fn last_error() -> String {
    unsafe { CStr::from_ptr(lensdiff_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// A problem with shear, uniform noise and the default prior.
unsafe fn ready_problem() -> *mut LensdiffProblem {
    let mut p = null_mut();
    assert_eq!(lensdiff_problem_create(N, N, 1.0, &mut p), S::Ok);
    assert_eq!(lensdiff_problem_set_prior_default(p), S::Ok);
    assert_eq!(lensdiff_problem_set_noise_uniform(p, 0.05), S::Ok);
    let mut k = vec![0.0f32; N * N];
    assert_eq!(
        lensdiff_problem_simulate(
            p,
            LENSDIFF_FIELD_GAUSSIAN,
            0.0,
            0.3,
            30.0,
            1,
            k.as_mut_ptr(),
            k.len()
        ),
        S::Ok
    );
    p
}

unsafe fn config(chains: u32) -> LensdiffSamplerConfig {
    let mut c = std::mem::zeroed::<LensdiffSamplerConfig>();
    assert_eq!(lensdiff_sampler_config_init(&mut c), S::Ok);
    c.chains = chains;
    c.batch = chains;
    c.levels = 8;
    c
}

unsafe fn ran_sampler(p: *const LensdiffProblem) -> *mut LensdiffSampler {
    let c = config(2);
    let mut s = null_mut();
    assert_eq!(lensdiff_sampler_create(p, &c, &mut s), S::Ok);
    assert_eq!(lensdiff_sampler_run(s), S::Ok);
    s
}

struct Case {
    function: &'static str,
    input: &'static str,
    expected: S,
    got: S,
}

macro_rules! case {
    ($cases:expr, $f:expr, $what:expr, $exp:expr, $call:expr) => {{
        let got = $call;
        $cases.push(Case {
            function: $f,
            input: $what,
            expected: $exp,
            got,
        });
    }};
}

#[path = "c_api/joint_cases.rs"]
mod joint_cases;
#[path = "c_api/model_cases.rs"]
mod model_cases;

fn status_name(s: S) -> String {
    unsafe { CStr::from_ptr(lensdiff_status_name(s as i32)) }
        .to_string_lossy()
        .into_owned()
}

#[allow(clippy::too_many_lines)]
unsafe fn matrix() -> Vec<Case> {
    let mut c: Vec<Case> = Vec::new();
    let n = N * N;
    let good = vec![0.01f32; n];
    let mut nan = good.clone();
    nan[5] = f32::NAN;
    let mut inf = good.clone();
    inf[7] = f32::INFINITY;
    let mut neg = vec![0.05f32; n];
    neg[3] = -0.05;
    let mut outbuf = vec![0.0f32; n];
    let mut out64 = vec![0.0f64; 4];
    let p = ready_problem();
    let stale = ready_problem();
    lensdiff_problem_destroy(stale);
    let mut pp = null_mut();

    // problem_create
    case!(
        c,
        "lensdiff_problem_create",
        "NULL out-pointer",
        S::NullPointer,
        lensdiff_problem_create(N, N, 1.0, null_mut())
    );
    case!(
        c,
        "lensdiff_problem_create",
        "nx = 0",
        S::InvalidArgument,
        lensdiff_problem_create(0, N, 1.0, &mut pp)
    );
    case!(
        c,
        "lensdiff_problem_create",
        "pixel size 0",
        S::InvalidArgument,
        lensdiff_problem_create(N, N, 0.0, &mut pp)
    );
    case!(
        c,
        "lensdiff_problem_create",
        "pixel size NaN",
        S::InvalidArgument,
        lensdiff_problem_create(N, N, f64::NAN, &mut pp)
    );
    case!(
        c,
        "lensdiff_problem_create",
        "pixel size negative",
        S::InvalidArgument,
        lensdiff_problem_create(N, N, -1.0, &mut pp)
    );
    // problem_destroy
    case!(
        c,
        "lensdiff_problem_destroy",
        "NULL handle (allowed)",
        S::Ok,
        lensdiff_problem_destroy(null_mut())
    );
    case!(
        c,
        "lensdiff_problem_destroy",
        "destroyed twice",
        S::StaleHandle,
        lensdiff_problem_destroy(stale)
    );
    // problem_shape
    let (mut nx, mut ny) = (0usize, 0usize);
    case!(
        c,
        "lensdiff_problem_shape",
        "NULL handle",
        S::NullPointer,
        lensdiff_problem_shape(null(), &mut nx, &mut ny)
    );
    case!(
        c,
        "lensdiff_problem_shape",
        "NULL output",
        S::NullPointer,
        lensdiff_problem_shape(p, null_mut(), &mut ny)
    );
    case!(
        c,
        "lensdiff_problem_shape",
        "use after destroy",
        S::StaleHandle,
        lensdiff_problem_shape(stale, &mut nx, &mut ny)
    );
    // set_shear
    case!(
        c,
        "lensdiff_problem_set_shear",
        "NULL handle",
        S::NullPointer,
        lensdiff_problem_set_shear(null_mut(), good.as_ptr(), good.as_ptr(), n)
    );
    case!(
        c,
        "lensdiff_problem_set_shear",
        "NULL buffer",
        S::NullPointer,
        lensdiff_problem_set_shear(p, null(), good.as_ptr(), n)
    );
    case!(
        c,
        "lensdiff_problem_set_shear",
        "zero length",
        S::Shape,
        lensdiff_problem_set_shear(p, good.as_ptr(), good.as_ptr(), 0)
    );
    case!(
        c,
        "lensdiff_problem_set_shear",
        "mismatched length",
        S::Shape,
        lensdiff_problem_set_shear(p, good.as_ptr(), good.as_ptr(), n - 1)
    );
    case!(
        c,
        "lensdiff_problem_set_shear",
        "NaN in g1",
        S::NonFinite,
        lensdiff_problem_set_shear(p, nan.as_ptr(), good.as_ptr(), n)
    );
    case!(
        c,
        "lensdiff_problem_set_shear",
        "Inf in g2",
        S::NonFinite,
        lensdiff_problem_set_shear(p, good.as_ptr(), inf.as_ptr(), n)
    );
    case!(
        c,
        "lensdiff_problem_set_shear",
        "use after destroy",
        S::StaleHandle,
        lensdiff_problem_set_shear(stale, good.as_ptr(), good.as_ptr(), n)
    );
    // set_noise_std
    case!(
        c,
        "lensdiff_problem_set_noise_std",
        "NULL handle",
        S::NullPointer,
        lensdiff_problem_set_noise_std(null_mut(), good.as_ptr(), good.as_ptr(), n)
    );
    case!(
        c,
        "lensdiff_problem_set_noise_std",
        "NULL buffer",
        S::NullPointer,
        lensdiff_problem_set_noise_std(p, good.as_ptr(), null(), n)
    );
    case!(
        c,
        "lensdiff_problem_set_noise_std",
        "mismatched length",
        S::Shape,
        lensdiff_problem_set_noise_std(p, good.as_ptr(), good.as_ptr(), n + 1)
    );
    case!(
        c,
        "lensdiff_problem_set_noise_std",
        "negative std",
        S::NegativeVariance,
        lensdiff_problem_set_noise_std(p, neg.as_ptr(), good.as_ptr(), n)
    );
    case!(
        c,
        "lensdiff_problem_set_noise_std",
        "NaN std",
        S::NonFinite,
        lensdiff_problem_set_noise_std(p, good.as_ptr(), nan.as_ptr(), n)
    );
    let zeros = vec![0.0f32; n];
    case!(
        c,
        "lensdiff_problem_set_noise_std",
        "all std 0 (fully masked)",
        S::FullyMasked,
        lensdiff_problem_set_noise_std(p, zeros.as_ptr(), zeros.as_ptr(), n)
    );
    // set_noise_uniform
    case!(
        c,
        "lensdiff_problem_set_noise_uniform",
        "NULL handle",
        S::NullPointer,
        lensdiff_problem_set_noise_uniform(null_mut(), 0.1)
    );
    case!(
        c,
        "lensdiff_problem_set_noise_uniform",
        "zero std",
        S::InvalidArgument,
        lensdiff_problem_set_noise_uniform(p, 0.0)
    );
    case!(
        c,
        "lensdiff_problem_set_noise_uniform",
        "negative std",
        S::NegativeVariance,
        lensdiff_problem_set_noise_uniform(p, -0.1)
    );
    case!(
        c,
        "lensdiff_problem_set_noise_uniform",
        "NaN std",
        S::NonFinite,
        lensdiff_problem_set_noise_uniform(p, f64::NAN)
    );
    case!(
        c,
        "lensdiff_problem_set_noise_uniform",
        "use after destroy",
        S::StaleHandle,
        lensdiff_problem_set_noise_uniform(stale, 0.1)
    );
    // set_mask
    let ones = vec![1u8; n];
    let nomask = vec![0u8; n];
    case!(
        c,
        "lensdiff_problem_set_mask",
        "NULL handle",
        S::NullPointer,
        lensdiff_problem_set_mask(null_mut(), ones.as_ptr(), n)
    );
    case!(
        c,
        "lensdiff_problem_set_mask",
        "NULL buffer",
        S::NullPointer,
        lensdiff_problem_set_mask(p, null(), n)
    );
    case!(
        c,
        "lensdiff_problem_set_mask",
        "mismatched length",
        S::Shape,
        lensdiff_problem_set_mask(p, ones.as_ptr(), 3)
    );
    case!(
        c,
        "lensdiff_problem_set_mask",
        "fully masked field",
        S::FullyMasked,
        lensdiff_problem_set_mask(p, nomask.as_ptr(), n)
    );
    // set_prior_cl
    let ell = [10.0, 100.0, 1000.0];
    let cl = [1e-8, 1e-9, 1e-10];
    let badell = [10.0, 5.0, 1000.0];
    let negcl = [1e-8, -1e-9, 1e-10];
    let nancl = [1e-8, f64::NAN, 1e-10];
    case!(
        c,
        "lensdiff_problem_set_prior_cl",
        "NULL handle",
        S::NullPointer,
        lensdiff_problem_set_prior_cl(null_mut(), ell.as_ptr(), cl.as_ptr(), 3)
    );
    case!(
        c,
        "lensdiff_problem_set_prior_cl",
        "NULL buffer",
        S::NullPointer,
        lensdiff_problem_set_prior_cl(p, ell.as_ptr(), null(), 3)
    );
    case!(
        c,
        "lensdiff_problem_set_prior_cl",
        "one row",
        S::InvalidArgument,
        lensdiff_problem_set_prior_cl(p, ell.as_ptr(), cl.as_ptr(), 1)
    );
    case!(
        c,
        "lensdiff_problem_set_prior_cl",
        "ell not increasing",
        S::InvalidArgument,
        lensdiff_problem_set_prior_cl(p, badell.as_ptr(), cl.as_ptr(), 3)
    );
    case!(
        c,
        "lensdiff_problem_set_prior_cl",
        "negative C_ell",
        S::InvalidArgument,
        lensdiff_problem_set_prior_cl(p, ell.as_ptr(), negcl.as_ptr(), 3)
    );
    case!(
        c,
        "lensdiff_problem_set_prior_cl",
        "NaN C_ell",
        S::NonFinite,
        lensdiff_problem_set_prior_cl(p, ell.as_ptr(), nancl.as_ptr(), 3)
    );
    // set_prior_default
    case!(
        c,
        "lensdiff_problem_set_prior_default",
        "NULL handle",
        S::NullPointer,
        lensdiff_problem_set_prior_default(null_mut())
    );
    case!(
        c,
        "lensdiff_problem_set_prior_default",
        "use after destroy",
        S::StaleHandle,
        lensdiff_problem_set_prior_default(stale)
    );
    // cosmology_init, set_prior_cosmology
    case!(
        c,
        "lensdiff_cosmology_init",
        "NULL pointer",
        S::NullPointer,
        lensdiff_cosmology_init(null_mut())
    );
    let mut cosmo = std::mem::zeroed::<LensdiffCosmology>();
    assert_eq!(lensdiff_cosmology_init(&mut cosmo), S::Ok);
    let with = |f: &dyn Fn(&mut LensdiffCosmology)| {
        let mut k = cosmo;
        f(&mut k);
        k
    };
    case!(
        c,
        "lensdiff_problem_set_prior_cosmology",
        "NULL handle",
        S::NullPointer,
        lensdiff_problem_set_prior_cosmology(null_mut(), &cosmo)
    );
    case!(
        c,
        "lensdiff_problem_set_prior_cosmology",
        "use after destroy",
        S::StaleHandle,
        lensdiff_problem_set_prior_cosmology(stale, &cosmo)
    );
    case!(
        c,
        "lensdiff_problem_set_prior_cosmology",
        "NULL cosmology",
        S::NullPointer,
        lensdiff_problem_set_prior_cosmology(p, null())
    );
    case!(
        c,
        "lensdiff_problem_set_prior_cosmology",
        "struct_size 0 (not initialised)",
        S::InvalidArgument,
        lensdiff_problem_set_prior_cosmology(p, &with(&|k| k.struct_size = 0))
    );
    case!(
        c,
        "lensdiff_problem_set_prior_cosmology",
        "sigma8 NaN",
        S::NonFinite,
        lensdiff_problem_set_prior_cosmology(p, &with(&|k| k.sigma8 = f64::NAN))
    );
    case!(
        c,
        "lensdiff_problem_set_prior_cosmology",
        "omega_c infinite",
        S::NonFinite,
        lensdiff_problem_set_prior_cosmology(p, &with(&|k| k.omega_c = f64::INFINITY))
    );
    case!(
        c,
        "lensdiff_problem_set_prior_cosmology",
        "Omega_c + Omega_b > 1",
        S::InvalidArgument,
        lensdiff_problem_set_prior_cosmology(p, &with(&|k| k.omega_c = 1.2))
    );
    case!(
        c,
        "lensdiff_problem_set_prior_cosmology",
        "sigma8 = 0",
        S::InvalidArgument,
        lensdiff_problem_set_prior_cosmology(p, &with(&|k| k.sigma8 = 0.0))
    );
    case!(
        c,
        "lensdiff_problem_set_prior_cosmology",
        "h = 0",
        S::InvalidArgument,
        lensdiff_problem_set_prior_cosmology(p, &with(&|k| k.h = 0.0))
    );
    case!(
        c,
        "lensdiff_problem_set_prior_cosmology",
        "w0 + wa >= 0",
        S::InvalidArgument,
        lensdiff_problem_set_prior_cosmology(p, &with(&|k| k.w0 = 0.5))
    );
    case!(
        c,
        "lensdiff_problem_set_prior_cosmology",
        "unknown nz_kind",
        S::InvalidArgument,
        lensdiff_problem_set_prior_cosmology(p, &with(&|k| k.nz_kind = 7))
    );
    case!(
        c,
        "lensdiff_problem_set_prior_cosmology",
        "unknown transfer",
        S::InvalidArgument,
        lensdiff_problem_set_prior_cosmology(p, &with(&|k| k.transfer = -1))
    );
    case!(
        c,
        "lensdiff_problem_set_prior_cosmology",
        "source plane at z = 0",
        S::InvalidArgument,
        lensdiff_problem_set_prior_cosmology(
            p,
            &with(&|k| {
                k.nz_kind = LENSDIFF_NZ_PLANE;
                k.nz_params = [0.0; 4];
            })
        )
    );
    case!(
        c,
        "lensdiff_problem_set_prior_cosmology",
        "Gaussian n(z) sigma NaN",
        S::NonFinite,
        lensdiff_problem_set_prior_cosmology(
            p,
            &with(&|k| {
                k.nz_kind = LENSDIFF_NZ_GAUSSIAN;
                k.nz_params = [1.0, f64::NAN, 0.0, 0.0];
            })
        )
    );
    case!(
        c,
        "lensdiff_problem_set_prior_cosmology",
        "Smail n(z) z0 <= 0",
        S::InvalidArgument,
        lensdiff_problem_set_prior_cosmology(p, &with(&|k| k.nz_params[2] = 0.0))
    );
    case!(
        c,
        "lensdiff_problem_set_prior_cosmology",
        "sources beyond z = 999",
        S::InvalidArgument,
        lensdiff_problem_set_prior_cosmology(
            p,
            &with(&|k| {
                k.nz_kind = LENSDIFF_NZ_GAUSSIAN;
                k.nz_params = [2000.0, 1.0, 0.0, 0.0];
            })
        )
    );
    // bin_catalogue
    let ra = [150.0, 150.01, 150.02];
    let dec = [2.0, 2.01, 2.02];
    let e = [0.1, -0.1, 0.05];
    let nanra = [150.0, f64::NAN, 150.02];
    let negw = [1.0, -1.0, 1.0];
    let q = ready_problem();
    case!(
        c,
        "lensdiff_problem_bin_catalogue",
        "NULL handle",
        S::NullPointer,
        lensdiff_problem_bin_catalogue(
            null_mut(),
            ra.as_ptr(),
            dec.as_ptr(),
            e.as_ptr(),
            e.as_ptr(),
            null(),
            3,
            0
        )
    );
    case!(
        c,
        "lensdiff_problem_bin_catalogue",
        "NULL column",
        S::NullPointer,
        lensdiff_problem_bin_catalogue(
            q,
            ra.as_ptr(),
            null(),
            e.as_ptr(),
            e.as_ptr(),
            null(),
            3,
            0
        )
    );
    case!(
        c,
        "lensdiff_problem_bin_catalogue",
        "zero galaxies",
        S::InvalidArgument,
        lensdiff_problem_bin_catalogue(
            q,
            ra.as_ptr(),
            dec.as_ptr(),
            e.as_ptr(),
            e.as_ptr(),
            null(),
            0,
            0
        )
    );
    case!(
        c,
        "lensdiff_problem_bin_catalogue",
        "NaN RA",
        S::NonFinite,
        lensdiff_problem_bin_catalogue(
            q,
            nanra.as_ptr(),
            dec.as_ptr(),
            e.as_ptr(),
            e.as_ptr(),
            null(),
            3,
            0
        )
    );
    case!(
        c,
        "lensdiff_problem_bin_catalogue",
        "negative weight",
        S::NegativeVariance,
        lensdiff_problem_bin_catalogue(
            q,
            ra.as_ptr(),
            dec.as_ptr(),
            e.as_ptr(),
            e.as_ptr(),
            negw.as_ptr(),
            3,
            0
        )
    );
    case!(
        c,
        "lensdiff_problem_bin_catalogue",
        "unknown projection",
        S::InvalidArgument,
        lensdiff_problem_bin_catalogue(
            q,
            ra.as_ptr(),
            dec.as_ptr(),
            e.as_ptr(),
            e.as_ptr(),
            null(),
            3,
            7
        )
    );
    // simulate
    let fresh = {
        let mut f = null_mut();
        lensdiff_problem_create(N, N, 1.0, &mut f);
        f
    };
    case!(
        c,
        "lensdiff_problem_simulate",
        "NULL handle",
        S::NullPointer,
        lensdiff_problem_simulate(null_mut(), 0, 0.0, 0.3, 30.0, 1, outbuf.as_mut_ptr(), n)
    );
    case!(
        c,
        "lensdiff_problem_simulate",
        "NULL output",
        S::NullPointer,
        lensdiff_problem_simulate(p, 0, 0.0, 0.3, 30.0, 1, null_mut(), n)
    );
    case!(
        c,
        "lensdiff_problem_simulate",
        "mismatched length",
        S::Shape,
        lensdiff_problem_simulate(p, 0, 0.0, 0.3, 30.0, 1, outbuf.as_mut_ptr(), 5)
    );
    case!(
        c,
        "lensdiff_problem_simulate",
        "unknown field kind",
        S::InvalidArgument,
        lensdiff_problem_simulate(p, 9, 0.0, 0.3, 30.0, 1, outbuf.as_mut_ptr(), n)
    );
    case!(
        c,
        "lensdiff_problem_simulate",
        "log-normal with lambda 0",
        S::InvalidArgument,
        lensdiff_problem_simulate(
            p,
            LENSDIFF_FIELD_LOGNORMAL,
            0.0,
            0.3,
            30.0,
            1,
            outbuf.as_mut_ptr(),
            n
        )
    );
    case!(
        c,
        "lensdiff_problem_simulate",
        "before a prior is set",
        S::CallOrder,
        lensdiff_problem_simulate(fresh, 0, 0.0, 0.3, 30.0, 1, outbuf.as_mut_ptr(), n)
    );
    case!(
        c,
        "lensdiff_problem_simulate",
        "negative sigma_e (no noise set)",
        S::NegativeVariance,
        {
            lensdiff_problem_set_prior_default(fresh);
            lensdiff_problem_simulate(fresh, 0, 0.0, -0.3, 30.0, 1, outbuf.as_mut_ptr(), n)
        }
    );
    // ks
    let fresh2 = {
        let mut f = null_mut();
        lensdiff_problem_create(N, N, 1.0, &mut f);
        f
    };
    case!(
        c,
        "lensdiff_ks",
        "NULL handle",
        S::NullPointer,
        lensdiff_ks(null(), 0.0, outbuf.as_mut_ptr(), null_mut(), n)
    );
    case!(
        c,
        "lensdiff_ks",
        "NULL output",
        S::NullPointer,
        lensdiff_ks(p, 0.0, null_mut(), null_mut(), n)
    );
    case!(
        c,
        "lensdiff_ks",
        "mismatched length",
        S::Shape,
        lensdiff_ks(p, 0.0, outbuf.as_mut_ptr(), null_mut(), n * 2)
    );
    case!(
        c,
        "lensdiff_ks",
        "negative smoothing",
        S::InvalidArgument,
        lensdiff_ks(p, -1.0, outbuf.as_mut_ptr(), null_mut(), n)
    );
    case!(
        c,
        "lensdiff_ks",
        "before shear is set",
        S::CallOrder,
        lensdiff_ks(fresh2, 0.0, outbuf.as_mut_ptr(), null_mut(), n)
    );
    case!(
        c,
        "lensdiff_ks",
        "use after destroy",
        S::StaleHandle,
        lensdiff_ks(stale, 0.0, outbuf.as_mut_ptr(), null_mut(), n)
    );
    // wiener
    let mut it = 0u32;
    case!(
        c,
        "lensdiff_wiener",
        "NULL handle",
        S::NullPointer,
        lensdiff_wiener(null(), 1e-6, 100, outbuf.as_mut_ptr(), n, &mut it)
    );
    case!(
        c,
        "lensdiff_wiener",
        "NULL output",
        S::NullPointer,
        lensdiff_wiener(p, 1e-6, 100, null_mut(), n, &mut it)
    );
    case!(
        c,
        "lensdiff_wiener",
        "zero length",
        S::Shape,
        lensdiff_wiener(p, 1e-6, 100, outbuf.as_mut_ptr(), 0, &mut it)
    );
    case!(
        c,
        "lensdiff_wiener",
        "zero iterations",
        S::InvalidArgument,
        lensdiff_wiener(p, 1e-6, 0, outbuf.as_mut_ptr(), n, &mut it)
    );
    case!(
        c,
        "lensdiff_wiener",
        "tolerance NaN",
        S::InvalidArgument,
        lensdiff_wiener(p, f64::NAN, 10, outbuf.as_mut_ptr(), n, &mut it)
    );
    case!(
        c,
        "lensdiff_wiener",
        "unreachable tolerance",
        S::NotConverged,
        lensdiff_wiener(p, 1e-30, 2, outbuf.as_mut_ptr(), n, &mut it)
    );
    case!(c, "lensdiff_wiener", "before noise is set", S::CallOrder, {
        lensdiff_problem_set_shear(fresh2, good.as_ptr(), good.as_ptr(), n);
        lensdiff_wiener(fresh2, 1e-6, 100, outbuf.as_mut_ptr(), n, &mut it)
    });
    case!(
        c,
        "lensdiff_wiener",
        "before a prior is set",
        S::CallOrder,
        {
            lensdiff_problem_set_noise_uniform(fresh2, 0.1);
            lensdiff_wiener(fresh2, 1e-6, 100, outbuf.as_mut_ptr(), n, &mut it)
        }
    );
    // sampler_config_init
    case!(
        c,
        "lensdiff_sampler_config_init",
        "NULL config",
        S::NullPointer,
        lensdiff_sampler_config_init(null_mut())
    );
    // sampler_create
    let mut s = null_mut();
    let base = config(2);
    let with = |f: &dyn Fn(&mut LensdiffSamplerConfig)| {
        let mut k = base;
        f(&mut k);
        k
    };
    case!(
        c,
        "lensdiff_sampler_create",
        "NULL problem",
        S::NullPointer,
        lensdiff_sampler_create(null(), &base, &mut s)
    );
    case!(
        c,
        "lensdiff_sampler_create",
        "NULL config",
        S::NullPointer,
        lensdiff_sampler_create(p, null(), &mut s)
    );
    case!(
        c,
        "lensdiff_sampler_create",
        "NULL out-pointer",
        S::NullPointer,
        lensdiff_sampler_create(p, &base, null_mut())
    );
    case!(
        c,
        "lensdiff_sampler_create",
        "config not initialised (struct_size 0)",
        S::InvalidArgument,
        lensdiff_sampler_create(p, &with(&|k| k.struct_size = 0), &mut s)
    );
    case!(
        c,
        "lensdiff_sampler_create",
        "unknown sampler",
        S::InvalidArgument,
        lensdiff_sampler_create(p, &with(&|k| k.sampler = 42), &mut s)
    );
    case!(
        c,
        "lensdiff_sampler_create",
        "unknown guidance",
        S::InvalidArgument,
        lensdiff_sampler_create(p, &with(&|k| k.guidance = -1), &mut s)
    );
    case!(
        c,
        "lensdiff_sampler_create",
        "unknown refinement",
        S::InvalidArgument,
        lensdiff_sampler_create(p, &with(&|k| k.refine = 5), &mut s)
    );
    case!(
        c,
        "lensdiff_sampler_create",
        "zero chains",
        S::InvalidArgument,
        lensdiff_sampler_create(p, &with(&|k| k.chains = 0), &mut s)
    );
    case!(
        c,
        "lensdiff_sampler_create",
        "zero batch",
        S::InvalidArgument,
        lensdiff_sampler_create(p, &with(&|k| k.batch = 0), &mut s)
    );
    case!(
        c,
        "lensdiff_sampler_create",
        "negative sigma_max",
        S::InvalidArgument,
        lensdiff_sampler_create(p, &with(&|k| k.sigma_max = -1.0), &mut s)
    );
    case!(
        c,
        "lensdiff_sampler_create",
        "inner tolerance 0",
        S::InvalidArgument,
        lensdiff_sampler_create(p, &with(&|k| k.inner_tol = 0.0), &mut s)
    );
    case!(
        c,
        "lensdiff_sampler_create",
        "problem without data",
        S::CallOrder,
        {
            let mut e = null_mut();
            lensdiff_problem_create(N, N, 1.0, &mut e);
            let st = lensdiff_sampler_create(e, &base, &mut s);
            lensdiff_problem_destroy(e);
            st
        }
    );
    case!(
        c,
        "lensdiff_sampler_create",
        "destroyed problem",
        S::StaleHandle,
        lensdiff_sampler_create(stale, &base, &mut s)
    );
    // a sampler handle passed where a problem is expected is caught
    let sm = ran_sampler(p);
    case!(
        c,
        "lensdiff_problem_shape",
        "sampler handle as problem",
        S::StaleHandle,
        lensdiff_problem_shape(sm as *const LensdiffProblem, &mut nx, &mut ny)
    );
    // sampler_run and results
    let mut unrun = null_mut();
    assert_eq!(lensdiff_sampler_create(p, &base, &mut unrun), S::Ok);
    let dead = ran_sampler(p);
    lensdiff_sampler_destroy(dead);
    let mut chains = 0usize;
    case!(
        c,
        "lensdiff_sampler_run",
        "NULL handle",
        S::NullPointer,
        lensdiff_sampler_run(null_mut())
    );
    case!(
        c,
        "lensdiff_sampler_run",
        "use after destroy",
        S::StaleHandle,
        lensdiff_sampler_run(dead)
    );
    case!(
        c,
        "lensdiff_sampler_set_cuda_stream",
        "NULL handle",
        S::NullPointer,
        lensdiff_sampler_set_cuda_stream(null_mut(), null_mut())
    );
    case!(
        c,
        "lensdiff_sampler_set_cuda_stream",
        "use after destroy",
        S::StaleHandle,
        lensdiff_sampler_set_cuda_stream(dead, null_mut())
    );
    case!(
        c,
        "lensdiff_sampler_set_cuda_stream",
        "a CPU sampler",
        S::InvalidArgument,
        lensdiff_sampler_set_cuda_stream(unrun, null_mut())
    );
    case!(
        c,
        "lensdiff_sampler_chains",
        "NULL output",
        S::NullPointer,
        lensdiff_sampler_chains(sm, null_mut())
    );
    case!(
        c,
        "lensdiff_sampler_chains",
        "NULL handle",
        S::NullPointer,
        lensdiff_sampler_chains(null(), &mut chains)
    );
    case!(
        c,
        "lensdiff_sampler_mean",
        "before run",
        S::CallOrder,
        lensdiff_sampler_mean(unrun, outbuf.as_mut_ptr(), n)
    );
    case!(
        c,
        "lensdiff_sampler_mean",
        "NULL output",
        S::NullPointer,
        lensdiff_sampler_mean(sm, null_mut(), n)
    );
    case!(
        c,
        "lensdiff_sampler_mean",
        "mismatched length",
        S::Shape,
        lensdiff_sampler_mean(sm, outbuf.as_mut_ptr(), n - 2)
    );
    case!(
        c,
        "lensdiff_sampler_mean",
        "use after destroy",
        S::StaleHandle,
        lensdiff_sampler_mean(dead, outbuf.as_mut_ptr(), n)
    );
    case!(
        c,
        "lensdiff_sampler_std",
        "before run",
        S::CallOrder,
        lensdiff_sampler_std(unrun, outbuf.as_mut_ptr(), n)
    );
    case!(
        c,
        "lensdiff_sampler_std",
        "zero length",
        S::Shape,
        lensdiff_sampler_std(sm, outbuf.as_mut_ptr(), 0)
    );
    case!(
        c,
        "lensdiff_sampler_samples",
        "length of one map for two chains",
        S::Shape,
        lensdiff_sampler_samples(sm, outbuf.as_mut_ptr(), n)
    );
    case!(
        c,
        "lensdiff_sampler_samples",
        "NULL handle",
        S::NullPointer,
        lensdiff_sampler_samples(null(), outbuf.as_mut_ptr(), n)
    );
    case!(
        c,
        "lensdiff_sampler_chi2",
        "mismatched length",
        S::Shape,
        lensdiff_sampler_chi2(sm, out64.as_mut_ptr(), 4)
    );
    case!(
        c,
        "lensdiff_sampler_chi2",
        "before run",
        S::CallOrder,
        lensdiff_sampler_chi2(unrun, out64.as_mut_ptr(), 2)
    );
    case!(
        c,
        "lensdiff_sampler_acceptance",
        "run without Metropolis test",
        S::Unsupported,
        lensdiff_sampler_acceptance(sm, out64.as_mut_ptr(), 2)
    );
    case!(
        c,
        "lensdiff_sampler_acceptance",
        "NULL output",
        S::NullPointer,
        lensdiff_sampler_acceptance(sm, null_mut(), 2)
    );
    case!(
        c,
        "lensdiff_sampler_stats",
        "before run",
        S::CallOrder,
        lensdiff_sampler_stats(unrun, null_mut(), null_mut())
    );
    case!(
        c,
        "lensdiff_sampler_stats",
        "use after destroy",
        S::StaleHandle,
        lensdiff_sampler_stats(dead, null_mut(), null_mut())
    );
    let mut inner = 0u64;
    case!(
        c,
        "lensdiff_sampler_inner_iterations",
        "before run",
        S::CallOrder,
        lensdiff_sampler_inner_iterations(unrun, &mut inner)
    );
    case!(
        c,
        "lensdiff_sampler_inner_iterations",
        "NULL output",
        S::NullPointer,
        lensdiff_sampler_inner_iterations(sm, null_mut())
    );
    case!(
        c,
        "lensdiff_sampler_inner_iterations",
        "use after destroy",
        S::StaleHandle,
        lensdiff_sampler_inner_iterations(dead, &mut inner)
    );
    let (mut nr, mut ns) = (0i32, 0i32);
    case!(
        c,
        "lensdiff_mpi_node_rank",
        "NULL output",
        S::NullPointer,
        lensdiff_mpi_node_rank(0, null_mut(), &mut ns)
    );
    #[cfg(not(feature = "mpi"))]
    case!(
        c,
        "lensdiff_mpi_node_rank",
        "build without the mpi feature",
        S::Unsupported,
        lensdiff_mpi_node_rank(0, &mut nr, &mut ns)
    );
    let _ = nr;
    case!(
        c,
        "lensdiff_sampler_run_mpi",
        "NULL handle",
        S::NullPointer,
        lensdiff_sampler_run_mpi(null_mut(), 0, 1)
    );
    #[cfg(not(feature = "mpi"))]
    case!(
        c,
        "lensdiff_sampler_run_mpi",
        "build without the mpi feature",
        S::Unsupported,
        lensdiff_sampler_run_mpi(sm, 0, 1)
    );
    case!(
        c,
        "lensdiff_sampler_destroy",
        "NULL handle (allowed)",
        S::Ok,
        lensdiff_sampler_destroy(null_mut())
    );
    case!(
        c,
        "lensdiff_sampler_destroy",
        "destroyed twice",
        S::StaleHandle,
        lensdiff_sampler_destroy(dead)
    );
    case!(
        c,
        "lensdiff_sampler_destroy",
        "problem handle as sampler",
        S::StaleHandle,
        lensdiff_sampler_destroy(p as *mut LensdiffSampler)
    );
    joint_cases::joint_cases(&mut c, p, stale, sm);
    model_cases::model_cases(&mut c, p, stale);
    for h in [p, q, fresh, fresh2] {
        assert_eq!(lensdiff_problem_destroy(h), S::Ok);
    }
    assert_eq!(lensdiff_sampler_destroy(sm), S::Ok);
    assert_eq!(lensdiff_sampler_destroy(unrun), S::Ok);
    c
}

#[test]
fn bad_input_matrix() {
    let cases = unsafe { matrix() };
    let mut table = String::from("| function | input | status |\n|---|---|---|\n");
    let mut failures = vec![];
    for k in &cases {
        table.push_str(&format!(
            "| `{}` | {} | `{}` |\n",
            k.function,
            k.input,
            status_name(k.expected)
        ));
        if k.got != k.expected {
            failures.push(format!(
                "{} / {}: expected {:?}, got {:?}",
                k.function, k.input, k.expected, k.got
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(cases.len() >= 60, "only {} cases", cases.len());
    // every exported function of the header appears in the matrix or in the other tests below
    let header = std::fs::read_to_string(common::root().join("include/lensdiff.h")).unwrap();
    for line in header
        .lines()
        .filter(|l| l.starts_with("lensdiff_status lensdiff_"))
    {
        let name = line
            .trim_start_matches("lensdiff_status ")
            .split('(')
            .next()
            .unwrap();
        assert!(
            cases.iter().any(|k| k.function == name),
            "{name} has no bad-input case"
        );
    }
    // the docs carry the same table
    let path = common::root().join("docs/c-api.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_default();
    let (begin, end) = (
        "<!-- bad-input matrix: begin -->\n",
        "<!-- bad-input matrix: end -->",
    );
    if std::env::var("UPDATE_DOCS").is_ok() {
        if let (Some(a), Some(b)) = (doc.find(begin), doc.find(end)) {
            let new = format!("{}{begin}{table}{}", &doc[..a], &doc[b..]);
            std::fs::write(&path, new).unwrap();
        }
    }
    let doc = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        doc.contains(&format!("{begin}{table}{end}")),
        "docs/c-api.md table is stale: UPDATE_DOCS=1 cargo test --test c_api"
    );
}

#[test]
fn errors_carry_a_message_and_success_keeps_it() {
    unsafe {
        let mut p = null_mut();
        assert_eq!(
            lensdiff_problem_create(0, 4, 1.0, &mut p),
            S::InvalidArgument
        );
        let m = last_error();
        assert!(m.contains("grid"), "{m}");
        assert_eq!(lensdiff_problem_create(4, 4, 1.0, &mut p), S::Ok);
        assert_eq!(last_error(), m, "success does not clear the last error");
        let mut k = vec![0.0f32; 16];
        assert_eq!(
            lensdiff_problem_simulate(p, 0, 0.0, 0.3, 30.0, 1, k.as_mut_ptr(), 16),
            S::CallOrder
        );
        assert!(last_error().contains("prior"), "{}", last_error());
        lensdiff_problem_destroy(p);
        assert_eq!(status_name(S::Shape), "LENSDIFF_STATUS_SHAPE");
        // any integer is a valid argument (Fortran passes plain integers)
        let unknown = CStr::from_ptr(lensdiff_status_name(99)).to_str().unwrap();
        assert_eq!(unknown, "LENSDIFF_STATUS_UNKNOWN");
        // a config from a newer caller (bigger struct_size) is read up to our fields
        let mut big = [0u8; 128];
        let mut c = std::mem::zeroed::<LensdiffSamplerConfig>();
        lensdiff_sampler_config_init(&mut c);
        std::ptr::copy_nonoverlapping(
            &c as *const _ as *const u8,
            big.as_mut_ptr(),
            std::mem::size_of_val(&c),
        );
        big[..4].copy_from_slice(&128u32.to_ne_bytes());
        let q = ready_problem();
        let mut s = null_mut();
        assert_eq!(
            lensdiff_sampler_create(q, big.as_ptr() as *const LensdiffSamplerConfig, &mut s),
            S::Ok
        );
        lensdiff_sampler_destroy(s);
        lensdiff_problem_destroy(q);
        assert_eq!(lensdiff_version(), LENSDIFF_VERSION_NUMBER);
        let v = CStr::from_ptr(lensdiff_version_string()).to_str().unwrap();
        assert_eq!(v, env!("CARGO_PKG_VERSION"));
    }
}

#[test]
fn error_messages_are_per_thread() {
    unsafe {
        let mut p = null_mut();
        assert_eq!(
            lensdiff_problem_create(4, 4, -1.0, &mut p),
            S::InvalidArgument
        );
        let here = last_error();
        std::thread::spawn(|| {
            assert_eq!(last_error(), "");
            let mut q = null_mut();
            assert_eq!(
                lensdiff_problem_create(0, 4, 1.0, &mut q),
                S::InvalidArgument
            );
        })
        .join()
        .unwrap();
        assert_eq!(last_error(), here);
    }
}

unsafe fn full_run(seed: u64) -> Vec<f32> {
    let p = ready_problem();
    let mut c = config(3);
    c.seed = seed;
    let mut s = null_mut();
    assert_eq!(lensdiff_sampler_create(p, &c, &mut s), S::Ok);
    assert_eq!(lensdiff_sampler_run(s), S::Ok);
    let mut out = vec![0.0f32; 3 * N * N];
    assert_eq!(
        lensdiff_sampler_samples(s, out.as_mut_ptr(), out.len()),
        S::Ok
    );
    lensdiff_sampler_destroy(s);
    lensdiff_problem_destroy(p);
    out
}

#[test]
fn distinct_handles_run_concurrently_with_sequential_results() {
    let a = unsafe { full_run(1) };
    let b = unsafe { full_run(2) };
    let ta = std::thread::spawn(|| unsafe { full_run(1) });
    let tb = std::thread::spawn(|| unsafe { full_run(2) });
    assert_eq!(ta.join().unwrap(), a);
    assert_eq!(tb.join().unwrap(), b);
    assert_ne!(a, b);
}

#[test]
fn c_api_equals_the_rust_api() {
    // the C calls produce exactly what the Rust API gives for the same settings
    use lensdiff::prior::GaussianPrior;
    use lensdiff::sampler::{sample, Guidance, GuidedPosterior, RunSpec, SamplerConfig};
    let grid = lensdiff::Grid::square(N, 1.0).unwrap();
    let power = lensdiff::spectrum::ClTable::default_kappa().pixel_power(&grid);
    let noise = lensdiff::noise::NoiseModel::uniform(grid, 0.05, None).unwrap();
    let data = common::shear_data(&grid, &power, noise, 1, 1);
    let prior = GaussianPrior::new(grid, power).unwrap();
    let post = GuidedPosterior::new(&prior, &data, Guidance::Spectral { tol: 1e-4 }).unwrap();
    let cfg = SamplerConfig {
        levels: 8,
        ..SamplerConfig::default()
    };
    let set = sample(&post, &cfg, &RunSpec::new(1, 3), &mut |_, _| {}).unwrap();
    assert_eq!(unsafe { full_run(1) }, set.samples);
}

#[test]
fn device_selection_fails_cleanly_without_cuda_and_rejects_bad_values() {
    unsafe {
        let p = ready_problem();
        let mut base = std::mem::zeroed::<LensdiffSamplerConfig>();
        lensdiff_sampler_config_init(&mut base);
        assert_eq!(base.device_kind, LENSDIFF_DEVICE_CPU);
        let mut s = null_mut();
        // unknown kinds and negative ordinals are argument errors
        let mut c = base;
        c.device_kind = 7;
        assert_eq!(
            lensdiff_sampler_create(p, &c, &mut s),
            LensdiffStatus::InvalidArgument
        );
        assert!(last_error().contains("device_kind"), "{}", last_error());
        c.device_kind = LENSDIFF_DEVICE_CUDA;
        c.device_ordinal = -1;
        assert_eq!(
            lensdiff_sampler_create(p, &c, &mut s),
            LensdiffStatus::InvalidArgument
        );
        // a caller stream only for CUDA samplers
        let mut cpu = null_mut();
        assert_eq!(
            lensdiff_sampler_create(p, &base, &mut cpu),
            LensdiffStatus::Ok
        );
        assert_eq!(
            lensdiff_sampler_set_cuda_stream(cpu, null_mut()),
            LensdiffStatus::InvalidArgument
        );
        lensdiff_sampler_destroy(cpu);
        // a CUDA sampler is created; running it needs the libraries
        c.device_ordinal = 0;
        c.chains = 1;
        c.batch = 1;
        c.levels = 4;
        assert_eq!(lensdiff_sampler_create(p, &c, &mut s), LensdiffStatus::Ok);
        let cuda_here = lensdiff::backend::cuda::Cuda::new(0).is_ok();
        if !cuda_here {
            assert_eq!(lensdiff_sampler_run(s), LensdiffStatus::Device);
            let m = last_error();
            assert!(m.contains("cuda:0") && m.contains("LD_LIBRARY_PATH"), "{m}");
            assert_eq!(
                lensdiff_sampler_set_cuda_stream(s, null_mut()),
                LensdiffStatus::Device
            );
            assert_eq!(status_name(S::Device), "LENSDIFF_STATUS_DEVICE");
        } else {
            assert_eq!(lensdiff_sampler_run(s), LensdiffStatus::Ok);
        }
        lensdiff_sampler_destroy(s);
        // a caller whose struct predates the device fields gets the CPU
        let mut old = base;
        old.struct_size = 88;
        old.device_kind = LENSDIFF_DEVICE_CUDA; // beyond struct_size: not read
        old.chains = 1;
        old.batch = 1;
        old.levels = 4;
        assert_eq!(lensdiff_sampler_create(p, &old, &mut s), LensdiffStatus::Ok);
        assert_eq!(lensdiff_sampler_run(s), LensdiffStatus::Ok);
        lensdiff_sampler_destroy(s);
        lensdiff_problem_destroy(p);
    }
}

/// A problem whose prior comes from `cosmo`, or (`None`) from the C_ell
/// table `(ell, cl)` through `lensdiff_problem_set_prior_cl`; returns the
/// convergence map it simulates with seed 3 (a function of the prior power).
unsafe fn simulated_kappa(
    grid: &lensdiff::Grid,
    cosmo: Option<*const LensdiffCosmology>,
    table: Option<(&[f64], &[f64])>,
) -> (LensdiffStatus, Vec<f32>) {
    let mut p = null_mut();
    assert_eq!(
        lensdiff_problem_create(grid.nx, grid.ny, grid.pixel_arcmin, &mut p),
        S::Ok
    );
    let st = match (cosmo, table) {
        (Some(c), _) => lensdiff_problem_set_prior_cosmology(p, c),
        (None, Some((l, c))) => lensdiff_problem_set_prior_cl(p, l.as_ptr(), c.as_ptr(), l.len()),
        (None, None) => lensdiff_problem_set_prior_default(p),
    };
    let mut k = vec![0.0f32; grid.len()];
    if st == S::Ok {
        assert_eq!(lensdiff_problem_set_noise_uniform(p, 0.05), S::Ok);
        assert_eq!(
            lensdiff_problem_simulate(
                p,
                LENSDIFF_FIELD_GAUSSIAN,
                0.0,
                0.3,
                30.0,
                3,
                k.as_mut_ptr(),
                k.len()
            ),
            S::Ok
        );
    }
    assert_eq!(lensdiff_problem_destroy(p), S::Ok);
    (st, k)
}

#[test]
fn prior_from_a_cosmology_equals_the_prior_from_its_cl() {
    use lensdiff::cosmo::limber::{convergence_cl, ClOptions};
    use lensdiff::cosmo::linear::Transfer;
    use lensdiff::cosmo::nz::Nz;
    use lensdiff::cosmo::Cosmology;
    let grid = lensdiff::Grid::new(16, 12, 2.0).unwrap();
    // the multipoles cover every mode of the grid
    let ells = cosmology_prior_ells(&grid);
    let modes = grid.ell_map();
    let lo = modes
        .iter()
        .copied()
        .filter(|&l| l > 0.0)
        .fold(f64::INFINITY, f64::min);
    let hi = modes.iter().copied().fold(0.0, f64::max);
    assert!(ells[0] < lo && *ells.last().unwrap() > hi, "{ells:?}");
    assert!(ells.windows(2).all(|w| w[1] > w[0]));
    unsafe {
        let mut dflt = std::mem::zeroed::<LensdiffCosmology>();
        assert_eq!(lensdiff_cosmology_init(&mut dflt), S::Ok);
        assert_eq!(
            dflt.struct_size as usize,
            std::mem::size_of::<LensdiffCosmology>()
        );
        let fid = Cosmology::sbi_lens_fiducial();
        assert_eq!(
            (
                dflt.omega_c,
                dflt.omega_b,
                dflt.h,
                dflt.n_s,
                dflt.sigma8,
                dflt.w0,
                dflt.wa,
                dflt.t_cmb
            ),
            (
                fid.omega_c,
                fid.omega_b,
                fid.h,
                fid.n_s,
                fid.sigma8,
                fid.w0,
                fid.wa,
                fid.t_cmb
            )
        );
        let mut other = dflt;
        other.omega_c = 0.3;
        other.sigma8 = 0.75;
        other.w0 = -0.9;
        other.wa = 0.1;
        other.nz_kind = LENSDIFF_NZ_GAUSSIAN;
        other.nz_params = [0.9, 0.2, 0.0, 0.0];
        other.transfer = LENSDIFF_TRANSFER_BBKS;
        other.nonlinear = 0;
        let mut plane = dflt;
        plane.nz_kind = LENSDIFF_NZ_PLANE;
        plane.nz_params = [1.2, 0.0, 0.0, 0.0];
        plane.transfer = LENSDIFF_TRANSFER_EH_NOWIGGLE;
        let cases = [
            (
                dflt,
                fid,
                Nz::Smail {
                    a: 2.0,
                    b: 0.68,
                    z0: 0.11,
                    z_max: 3.5,
                },
                ClOptions::default(),
            ),
            (
                other,
                Cosmology::new(0.3, fid.omega_b, fid.h, fid.n_s, 0.75, -0.9, 0.1).unwrap(),
                Nz::Gaussian {
                    mean: 0.9,
                    sigma: 0.2,
                },
                ClOptions {
                    transfer: Transfer::Bbks,
                    nonlinear: false,
                    ..ClOptions::default()
                },
            ),
            (
                plane,
                fid,
                Nz::Plane { z: 1.2 },
                ClOptions {
                    transfer: Transfer::EisensteinHuNoWiggle,
                    ..ClOptions::default()
                },
            ),
        ];
        let (_, from_default) = simulated_kappa(&grid, None, None);
        let mut seen: Vec<Vec<f32>> = vec![];
        for (c, cosmo, nz, opts) in cases {
            let cl = convergence_cl(&cosmo, &[nz.source().unwrap()], &ells, &opts).unwrap();
            let (st, a) = simulated_kappa(&grid, Some(&c), None);
            assert_eq!(st, S::Ok, "{}", last_error());
            let (st, b) = simulated_kappa(&grid, None, Some((&ells, &cl.cl[0])));
            assert_eq!(st, S::Ok);
            assert_eq!(a, b, "{c:?}");
            assert_ne!(a, from_default);
            assert!(!seen.contains(&a), "distinct settings give distinct priors");
            seen.push(a);
        }
    }
}

#[test]
fn cosmology_struct_size_is_forward_compatible() {
    let grid = lensdiff::Grid::new(12, 12, 1.0).unwrap();
    assert_eq!(std::mem::size_of::<LensdiffCosmology>(), 112, "v1 layout");
    unsafe {
        let mut c = std::mem::zeroed::<LensdiffCosmology>();
        assert_eq!(lensdiff_cosmology_init(&mut c), S::Ok);
        let (st, v1) = simulated_kappa(&grid, Some(&c), None);
        assert_eq!(st, S::Ok);
        // a v1-sized struct, stated explicitly
        c.struct_size = 112;
        assert_eq!(simulated_kappa(&grid, Some(&c), None), (S::Ok, v1.clone()));
        // a newer caller's bigger struct: its unknown tail is not read
        #[repr(C)]
        struct Newer {
            v1: LensdiffCosmology,
            tail: [u8; 40],
        }
        let mut newer = Newer {
            v1: c,
            tail: [0xff; 40],
        };
        newer.v1.struct_size = std::mem::size_of::<Newer>() as u32;
        let ptr = &newer as *const Newer as *const LensdiffCosmology;
        assert_eq!(simulated_kappa(&grid, Some(ptr), None), (S::Ok, v1));
        // smaller than v1: an error that names the fix
        for size in [0u32, 4, 104, 111] {
            c.struct_size = size;
            let (st, _) = simulated_kappa(&grid, Some(&c), None);
            assert_eq!(st, S::InvalidArgument, "struct_size {size}");
            let m = last_error();
            assert!(
                m.contains("struct_size") && m.contains("lensdiff_cosmology_init"),
                "{m}"
            );
        }
    }
}
