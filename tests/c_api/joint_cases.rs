//! The joint-sampling rows of the bad-input matrix (src/capi/joint.rs), and
//! the small joint models they load.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::ptr::{null, null_mut};

use lensdiff::capi::*;
use lensdiff::grid::Grid;
use lensdiff::prior::joint::ParamSpace;
use lensdiff::prior::DenoiserKind;

use super::{Case, N, S};
use crate::common::joint_models::{joint_model, tiny_joint_net};

fn c_path(p: &Path) -> CString {
    CString::new(p.to_str().unwrap()).unwrap()
}

/// The model files of the matrix, in a temporary folder.
struct Files {
    _dir: crate::common::TempDir,
    good: PathBuf,
    pure_bare: PathBuf,
    other_pixel: PathBuf,
    nan: PathBuf,
    truncated: PathBuf,
    flipped: PathBuf,
    miscounted: PathBuf,
    map_only: PathBuf,
    bytes: Vec<u8>,
}

fn files() -> Files {
    let dir = crate::common::TempDir::new("c_api_joint_cases");
    let grid = Grid::new(N, N, 1.0).unwrap();
    let space = ParamSpace::new(&["sigma8"], &[0.8], &[0.05]).unwrap();
    let at = |name: &str| dir.0.join(name);
    let good = at("hybrid.safetensors");
    joint_model(DenoiserKind::Hybrid, &space, &grid, false, 1)
        .save(&good)
        .unwrap();
    let pure_bare = at("pure_bare.safetensors");
    joint_model(DenoiserKind::Pure, &space, &grid, true, 2)
        .save(&pure_bare)
        .unwrap();
    let other_pixel = at("other_pixel.safetensors");
    joint_model(
        DenoiserKind::Hybrid,
        &space,
        &Grid::new(N, N, 2.0).unwrap(),
        false,
        3,
    )
    .save(&other_pixel)
    .unwrap();
    let nan = at("nan.safetensors");
    let mut d = joint_model(DenoiserKind::Hybrid, &space, &grid, false, 4);
    d.params[7] = f32::NAN;
    d.save(&nan).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let truncated = at("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    // the header's length field says more bytes than the file has
    let flipped = at("flipped.safetensors");
    let mut f = bytes.clone();
    f[5] ^= 0x40;
    std::fs::write(&flipped, &f).unwrap();
    // a description of two parameters for a network of one
    let miscounted = at("miscounted.safetensors");
    let d = joint_model(DenoiserKind::Hybrid, &space, &grid, false, 6);
    let mut w = d.to_weights(&d.params).unwrap();
    let two = ParamSpace::new(&["omega_c", "sigma8"], &[0.3, 0.8], &[0.05, 0.05]).unwrap();
    let mut meta = d.meta().clone();
    meta.names = two.names().to_vec();
    meta.prior_mean = two.mean().to_vec();
    meta.prior_std = two.std().to_vec();
    w.metadata
        .insert("denoiser".into(), serde_json::to_string(&meta).unwrap());
    w.save(&miscounted).unwrap();
    let map_only = at("map_only.safetensors");
    let mut cfg = tiny_joint_net(0);
    cfg.joint_params = 0;
    lensdiff::prior::Denoiser::new(
        cfg,
        lensdiff::prior::DenoiserMeta::new(DenoiserKind::Pure, 0.02, 1.0),
        None,
        5,
    )
    .unwrap()
    .save(&map_only)
    .unwrap();
    Files {
        _dir: dir,
        good,
        pure_bare,
        other_pixel,
        nan,
        truncated,
        flipped,
        miscounted,
        map_only,
        bytes,
    }
}

/// The joint rows: `p` is a problem with shear, noise and a Gaussian map
/// prior (no joint prior yet); `sm` a map sampler that has run.
#[allow(clippy::too_many_lines)]
pub unsafe fn joint_cases(
    c: &mut Vec<Case>,
    p: *mut LensdiffProblem,
    stale: *mut LensdiffProblem,
    sm: *mut LensdiffSampler,
) {
    let f = files();
    let mut cosmo = std::mem::zeroed::<LensdiffCosmology>();
    assert_eq!(lensdiff_cosmology_init(&mut cosmo), S::Ok);
    let names = CString::new("sigma8").unwrap();
    let two = CString::new("omega_c,sigma8").unwrap();
    let unknown = CString::new("omega_x").unwrap();
    let dup = CString::new("sigma8,sigma8").unwrap();
    let (m1, s1) = ([0.8f64], [0.05f64]);
    let (m2, s2) = ([0.3f64, 0.8], [0.05f64, 0.05]);
    let mut n_params = 0usize;
    let mut name = [0 as std::ffi::c_char; 32];
    let (mut mean, mut std) = (0.0f64, 0.0f64);
    let mut cfg = std::mem::zeroed::<LensdiffSamplerConfig>();
    assert_eq!(lensdiff_joint_sampler_config_init(&mut cfg), S::Ok);
    cfg.chains = 2;
    cfg.batch = 2;
    cfg.levels = 4;
    let mut out = null_mut();

    // before any joint prior
    case!(
        c,
        "lensdiff_problem_joint_params",
        "no joint prior set",
        S::CallOrder,
        lensdiff_problem_joint_params(p, &mut n_params)
    );
    case!(
        c,
        "lensdiff_problem_joint_param",
        "no joint prior set",
        S::CallOrder,
        lensdiff_problem_joint_param(p, 0, name.as_mut_ptr(), 32, &mut mean, &mut std)
    );
    case!(
        c,
        "lensdiff_joint_sampler_create",
        "problem without a joint prior",
        S::CallOrder,
        lensdiff_joint_sampler_create(p, &cfg, &mut out)
    );
    // set_joint_prior_cosmology
    let set = |pp, co, nm: *const std::ffi::c_char, m: *const f64, s: *const f64, n| {
        lensdiff_problem_set_joint_prior_cosmology(pp, co, nm, m, s, n)
    };
    case!(
        c,
        "lensdiff_problem_set_joint_prior_cosmology",
        "NULL handle",
        S::NullPointer,
        set(
            null_mut(),
            &cosmo,
            names.as_ptr(),
            m1.as_ptr(),
            s1.as_ptr(),
            1
        )
    );
    case!(
        c,
        "lensdiff_problem_set_joint_prior_cosmology",
        "use after destroy",
        S::StaleHandle,
        set(stale, &cosmo, names.as_ptr(), m1.as_ptr(), s1.as_ptr(), 1)
    );
    case!(
        c,
        "lensdiff_problem_set_joint_prior_cosmology",
        "NULL cosmology",
        S::NullPointer,
        set(p, null(), names.as_ptr(), m1.as_ptr(), s1.as_ptr(), 1)
    );
    case!(
        c,
        "lensdiff_problem_set_joint_prior_cosmology",
        "NULL names",
        S::NullPointer,
        set(p, &cosmo, null(), m1.as_ptr(), s1.as_ptr(), 1)
    );
    case!(
        c,
        "lensdiff_problem_set_joint_prior_cosmology",
        "NULL prior_std",
        S::NullPointer,
        set(p, &cosmo, names.as_ptr(), m1.as_ptr(), null(), 1)
    );
    case!(
        c,
        "lensdiff_problem_set_joint_prior_cosmology",
        "n_params = 0",
        S::InvalidArgument,
        set(p, &cosmo, names.as_ptr(), m1.as_ptr(), s1.as_ptr(), 0)
    );
    case!(
        c,
        "lensdiff_problem_set_joint_prior_cosmology",
        "n_params = 4 (the table takes at most 3)",
        S::InvalidArgument,
        set(p, &cosmo, names.as_ptr(), m1.as_ptr(), s1.as_ptr(), 4)
    );
    case!(
        c,
        "lensdiff_problem_set_joint_prior_cosmology",
        "two names, n_params = 1",
        S::InvalidArgument,
        set(p, &cosmo, two.as_ptr(), m1.as_ptr(), s1.as_ptr(), 1)
    );
    case!(
        c,
        "lensdiff_problem_set_joint_prior_cosmology",
        "unknown parameter name",
        S::InvalidArgument,
        set(p, &cosmo, unknown.as_ptr(), m1.as_ptr(), s1.as_ptr(), 1)
    );
    case!(
        c,
        "lensdiff_problem_set_joint_prior_cosmology",
        "a name twice",
        S::InvalidArgument,
        set(p, &cosmo, dup.as_ptr(), m2.as_ptr(), s2.as_ptr(), 2)
    );
    case!(
        c,
        "lensdiff_problem_set_joint_prior_cosmology",
        "NaN prior mean",
        S::NonFinite,
        set(
            p,
            &cosmo,
            names.as_ptr(),
            [f64::NAN].as_ptr(),
            s1.as_ptr(),
            1
        )
    );
    case!(
        c,
        "lensdiff_problem_set_joint_prior_cosmology",
        "prior std 0",
        S::InvalidArgument,
        set(p, &cosmo, names.as_ptr(), m1.as_ptr(), [0.0].as_ptr(), 1)
    );
    let mut bad_cosmo = cosmo;
    bad_cosmo.struct_size = 8;
    case!(
        c,
        "lensdiff_problem_set_joint_prior_cosmology",
        "cosmology struct_size too small",
        S::InvalidArgument,
        set(p, &bad_cosmo, names.as_ptr(), m1.as_ptr(), s1.as_ptr(), 1)
    );
    // load_joint_model
    let load =
        |pp, path: &Path, co| lensdiff_problem_load_joint_model(pp, c_path(path).as_ptr(), co);
    case!(
        c,
        "lensdiff_problem_load_joint_model",
        "NULL handle",
        S::NullPointer,
        load(null_mut(), &f.good, null())
    );
    case!(
        c,
        "lensdiff_problem_load_joint_model",
        "NULL path",
        S::NullPointer,
        lensdiff_problem_load_joint_model(p, null(), null())
    );
    case!(
        c,
        "lensdiff_problem_load_joint_model",
        "missing file",
        S::Io,
        load(p, &f.good.with_extension("missing"), null())
    );
    case!(
        c,
        "lensdiff_problem_load_joint_model",
        "file cut in half",
        S::Format,
        load(p, &f.truncated, null())
    );
    case!(
        c,
        "lensdiff_problem_load_joint_model",
        "header length byte flipped",
        S::Format,
        load(p, &f.flipped, null())
    );
    case!(
        c,
        "lensdiff_problem_load_joint_model",
        "a map-only denoiser file",
        S::Format,
        load(p, &f.map_only, null())
    );
    case!(
        c,
        "lensdiff_problem_load_joint_model",
        "description of 2 parameters, network of 1",
        S::Format,
        load(p, &f.miscounted, null())
    );
    case!(
        c,
        "lensdiff_problem_load_joint_model",
        "a NaN weight",
        S::NonFinite,
        load(p, &f.nan, null())
    );
    case!(
        c,
        "lensdiff_problem_load_joint_model",
        "trained on another pixel size",
        S::InvalidArgument,
        load(p, &f.other_pixel, null())
    );
    case!(
        c,
        "lensdiff_problem_load_joint_model",
        "pure model without a cosmology, guidance_cosmo NULL",
        S::InvalidArgument,
        load(p, &f.pure_bare, null())
    );
    case!(
        c,
        "lensdiff_problem_load_joint_model",
        "guidance cosmology struct_size too small",
        S::InvalidArgument,
        load(p, &f.pure_bare, &bad_cosmo)
    );
    let mut odd = null_mut();
    assert_eq!(lensdiff_problem_create(N + 1, N + 1, 1.0, &mut odd), S::Ok);
    case!(
        c,
        "lensdiff_problem_load_joint_model",
        "odd grid for a two-level U-Net",
        S::InvalidArgument,
        load(odd, &f.good, null())
    );
    assert_eq!(lensdiff_problem_destroy(odd), S::Ok);
    // load_joint_model_buffer
    let b = &f.bytes;
    case!(
        c,
        "lensdiff_problem_load_joint_model_buffer",
        "NULL buffer",
        S::NullPointer,
        lensdiff_problem_load_joint_model_buffer(p, null(), b.len(), null())
    );
    case!(
        c,
        "lensdiff_problem_load_joint_model_buffer",
        "zero length",
        S::Format,
        lensdiff_problem_load_joint_model_buffer(p, b.as_ptr(), 0, null())
    );
    case!(
        c,
        "lensdiff_problem_load_joint_model_buffer",
        "buffer cut short by one byte",
        S::Format,
        lensdiff_problem_load_joint_model_buffer(p, b.as_ptr(), b.len() - 1, null())
    );
    let mut garbage = b.clone();
    garbage[8..40].fill(b'#');
    case!(
        c,
        "lensdiff_problem_load_joint_model_buffer",
        "header bytes overwritten",
        S::Format,
        lensdiff_problem_load_joint_model_buffer(p, garbage.as_ptr(), garbage.len(), null())
    );
    case!(
        c,
        "lensdiff_problem_load_joint_model_buffer",
        "use after destroy",
        S::StaleHandle,
        lensdiff_problem_load_joint_model_buffer(stale, b.as_ptr(), b.len(), null())
    );
    // with a joint prior: queries
    assert_eq!(
        lensdiff_problem_load_joint_model_buffer(p, b.as_ptr(), b.len(), null()),
        S::Ok
    );
    case!(
        c,
        "lensdiff_problem_joint_params",
        "NULL output",
        S::NullPointer,
        lensdiff_problem_joint_params(p, null_mut())
    );
    case!(
        c,
        "lensdiff_problem_joint_params",
        "NULL handle",
        S::NullPointer,
        lensdiff_problem_joint_params(null(), &mut n_params)
    );
    case!(
        c,
        "lensdiff_problem_joint_param",
        "index = number of parameters",
        S::InvalidArgument,
        lensdiff_problem_joint_param(p, 1, name.as_mut_ptr(), 32, &mut mean, &mut std)
    );
    case!(
        c,
        "lensdiff_problem_joint_param",
        "name buffer without room for the NUL",
        S::Shape,
        lensdiff_problem_joint_param(p, 0, name.as_mut_ptr(), 6, &mut mean, &mut std)
    );
    case!(
        c,
        "lensdiff_problem_joint_param",
        "all outputs NULL (allowed)",
        S::Ok,
        lensdiff_problem_joint_param(p, 0, null_mut(), 0, null_mut(), null_mut())
    );
    // joint sampler
    case!(
        c,
        "lensdiff_joint_sampler_config_init",
        "NULL config",
        S::NullPointer,
        lensdiff_joint_sampler_config_init(null_mut())
    );
    case!(
        c,
        "lensdiff_joint_sampler_create",
        "NULL config",
        S::NullPointer,
        lensdiff_joint_sampler_create(p, null(), &mut out)
    );
    case!(
        c,
        "lensdiff_joint_sampler_create",
        "NULL out-pointer",
        S::NullPointer,
        lensdiff_joint_sampler_create(p, &cfg, null_mut())
    );
    let mut cuda = cfg;
    cuda.device_kind = LENSDIFF_DEVICE_CUDA;
    case!(
        c,
        "lensdiff_joint_sampler_create",
        "device CUDA",
        S::Unsupported,
        lensdiff_joint_sampler_create(p, &cuda, &mut out)
    );
    let mut refine = cfg;
    refine.refine = LENSDIFF_REFINE_LANGEVIN;
    case!(
        c,
        "lensdiff_joint_sampler_create",
        "refinement",
        S::Unsupported,
        lensdiff_joint_sampler_create(p, &refine, &mut out)
    );
    let mut no_data = null_mut();
    assert_eq!(lensdiff_problem_create(N, N, 1.0, &mut no_data), S::Ok);
    assert_eq!(
        lensdiff_problem_load_joint_model(no_data, c_path(&f.good).as_ptr(), null()),
        S::Ok
    );
    case!(
        c,
        "lensdiff_joint_sampler_create",
        "joint prior but no shear",
        S::CallOrder,
        lensdiff_joint_sampler_create(no_data, &cfg, &mut out)
    );
    assert_eq!(lensdiff_problem_destroy(no_data), S::Ok);
    let mut js = null_mut();
    assert_eq!(lensdiff_joint_sampler_create(p, &cfg, &mut js), S::Ok);
    let mut theta = [0.0f64; 4];
    case!(
        c,
        "lensdiff_sampler_theta",
        "before run",
        S::CallOrder,
        lensdiff_sampler_theta(js, theta.as_mut_ptr(), 2)
    );
    assert_eq!(lensdiff_sampler_run(js), S::Ok);
    case!(
        c,
        "lensdiff_sampler_theta",
        "length for 2 chains of 2 parameters (1 each)",
        S::Shape,
        lensdiff_sampler_theta(js, theta.as_mut_ptr(), 4)
    );
    case!(
        c,
        "lensdiff_sampler_theta",
        "a map sampler",
        S::InvalidArgument,
        lensdiff_sampler_theta(sm, theta.as_mut_ptr(), 2)
    );
    case!(
        c,
        "lensdiff_sampler_theta",
        "NULL output",
        S::NullPointer,
        lensdiff_sampler_theta(js, null_mut(), 2)
    );
    case!(
        c,
        "lensdiff_sampler_params",
        "NULL output",
        S::NullPointer,
        lensdiff_sampler_params(js, null_mut())
    );
    case!(
        c,
        "lensdiff_sampler_params",
        "a problem handle as sampler",
        S::StaleHandle,
        lensdiff_sampler_params(p as *const LensdiffSampler, &mut n_params)
    );
    assert_eq!(lensdiff_sampler_destroy(js), S::Ok);
}
