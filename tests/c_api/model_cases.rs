//! The learned-map-prior rows of the bad-input matrix (src/capi/model.rs),
//! and the small models they load.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::ptr::{null, null_mut};

use lensdiff::capi::*;
use lensdiff::grid::Grid;
use lensdiff::prior::joint::ParamSpace;
use lensdiff::prior::{Denoiser, DenoiserKind};

use super::{Case, N, S};
use crate::common::joint_models::joint_model;

fn c_path(p: &Path) -> CString {
    CString::new(p.to_str().unwrap()).unwrap()
}

/// A network of `levels` levels with its initial weights.
fn model(kind: DenoiserKind, pixel: f64, levels: usize) -> Denoiser {
    crate::common::map_models::tiny_map_model(kind, pixel, levels, 0.0, 1)
}

/// The model files of the matrix, in a temporary folder.
struct Files {
    _dir: crate::common::TempDir,
    good: PathBuf,
    pure: PathBuf,
    other_pixel: PathBuf,
    deep: PathBuf,
    nan: PathBuf,
    truncated: PathBuf,
    flipped: PathBuf,
    joint: PathBuf,
    bytes: Vec<u8>,
}

fn files() -> Files {
    let dir = crate::common::TempDir::new("c_api_model_cases");
    let at = |name: &str| dir.0.join(name);
    let good = at("hybrid.safetensors");
    model(DenoiserKind::Hybrid, 1.0, 2).save(&good).unwrap();
    let pure = at("pure.safetensors");
    model(DenoiserKind::Pure, 1.0, 2).save(&pure).unwrap();
    let other_pixel = at("other_pixel.safetensors");
    model(DenoiserKind::Hybrid, 2.0, 2)
        .save(&other_pixel)
        .unwrap();
    // 4 levels: sides must be multiples of 8, the matrix's grid is 12
    let deep = at("deep.safetensors");
    model(DenoiserKind::Hybrid, 1.0, 4).save(&deep).unwrap();
    let nan = at("nan.safetensors");
    let mut d = model(DenoiserKind::Hybrid, 1.0, 2);
    d.params[3] = f32::NAN;
    d.save(&nan).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let truncated = at("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    // the header's length field says more bytes than the file has
    let flipped = at("flipped.safetensors");
    let mut f = bytes.clone();
    f[5] ^= 0x40;
    std::fs::write(&flipped, &f).unwrap();
    let joint = at("joint.safetensors");
    let space = ParamSpace::new(&["sigma8"], &[0.8], &[0.05]).unwrap();
    joint_model(
        DenoiserKind::Hybrid,
        &space,
        &Grid::new(N, N, 1.0).unwrap(),
        false,
        1,
    )
    .save(&joint)
    .unwrap();
    Files {
        _dir: dir,
        good,
        pure,
        other_pixel,
        deep,
        nan,
        truncated,
        flipped,
        joint,
        bytes,
    }
}

/// The learned-prior rows: `p` is a problem with shear, noise and a Gaussian
/// map prior (no learned prior yet; it has none again at the end).
#[allow(clippy::too_many_lines)]
pub unsafe fn model_cases(c: &mut Vec<Case>, p: *mut LensdiffProblem, stale: *mut LensdiffProblem) {
    let f = files();
    let mut info = std::mem::zeroed::<LensdiffModelInfo>();
    let info_size = std::mem::size_of::<LensdiffModelInfo>();
    let mut buf = [0 as std::ffi::c_char; 8];
    let mut needed = 0usize;
    let good = c_path(&f.good);

    // before any learned prior
    case!(
        c,
        "lensdiff_problem_model_info",
        "no learned prior loaded",
        S::CallOrder,
        lensdiff_problem_model_info(p, &mut info, info_size)
    );
    case!(
        c,
        "lensdiff_problem_model_json",
        "no learned prior loaded",
        S::CallOrder,
        lensdiff_problem_model_json(p, buf.as_mut_ptr(), buf.len(), &mut needed)
    );
    // load_model
    case!(
        c,
        "lensdiff_problem_load_model",
        "NULL handle",
        S::NullPointer,
        lensdiff_problem_load_model(null_mut(), good.as_ptr())
    );
    case!(
        c,
        "lensdiff_problem_load_model",
        "use after destroy",
        S::StaleHandle,
        lensdiff_problem_load_model(stale, good.as_ptr())
    );
    case!(
        c,
        "lensdiff_problem_load_model",
        "NULL path",
        S::NullPointer,
        lensdiff_problem_load_model(p, null())
    );
    let missing = c_path(&f.good.with_file_name("missing.safetensors"));
    case!(
        c,
        "lensdiff_problem_load_model",
        "missing file",
        S::Io,
        lensdiff_problem_load_model(p, missing.as_ptr())
    );
    let truncated = c_path(&f.truncated);
    case!(
        c,
        "lensdiff_problem_load_model",
        "file cut to half its length",
        S::Format,
        lensdiff_problem_load_model(p, truncated.as_ptr())
    );
    let flipped = c_path(&f.flipped);
    case!(
        c,
        "lensdiff_problem_load_model",
        "header length field corrupted",
        S::Format,
        lensdiff_problem_load_model(p, flipped.as_ptr())
    );
    let nan = c_path(&f.nan);
    case!(
        c,
        "lensdiff_problem_load_model",
        "a NaN weight",
        S::NonFinite,
        lensdiff_problem_load_model(p, nan.as_ptr())
    );
    let joint = c_path(&f.joint);
    case!(
        c,
        "lensdiff_problem_load_model",
        "a joint model's file",
        S::Format,
        lensdiff_problem_load_model(p, joint.as_ptr())
    );
    let other = c_path(&f.other_pixel);
    case!(
        c,
        "lensdiff_problem_load_model",
        "trained on 2' pixels, problem on 1'",
        S::InvalidArgument,
        lensdiff_problem_load_model(p, other.as_ptr())
    );
    let deep = c_path(&f.deep);
    case!(
        c,
        "lensdiff_problem_load_model",
        "U-Net pooling 3 times, 12 x 12 grid",
        S::InvalidArgument,
        lensdiff_problem_load_model(p, deep.as_ptr())
    );
    // load_model_buffer
    case!(
        c,
        "lensdiff_problem_load_model_buffer",
        "NULL data",
        S::NullPointer,
        lensdiff_problem_load_model_buffer(p, null(), 100)
    );
    case!(
        c,
        "lensdiff_problem_load_model_buffer",
        "length 0",
        S::Format,
        lensdiff_problem_load_model_buffer(p, f.bytes.as_ptr(), 0)
    );
    case!(
        c,
        "lensdiff_problem_load_model_buffer",
        "a header longer than the buffer (first 64 bytes)",
        S::Format,
        lensdiff_problem_load_model_buffer(p, f.bytes.as_ptr(), 64)
    );
    case!(
        c,
        "lensdiff_problem_load_model_buffer",
        "stale handle",
        S::StaleHandle,
        lensdiff_problem_load_model_buffer(stale, f.bytes.as_ptr(), f.bytes.len())
    );
    // load_builtin_model
    let demo = CString::new("demo").unwrap();
    let unknown = CString::new("remy").unwrap();
    case!(
        c,
        "lensdiff_problem_load_builtin_model",
        "NULL name",
        S::NullPointer,
        lensdiff_problem_load_builtin_model(p, null())
    );
    case!(
        c,
        "lensdiff_problem_load_builtin_model",
        "unknown name",
        S::InvalidArgument,
        lensdiff_problem_load_builtin_model(p, unknown.as_ptr())
    );
    case!(
        c,
        "lensdiff_problem_load_builtin_model",
        "demo model (0.5' pixels) on a 1' problem",
        S::InvalidArgument,
        lensdiff_problem_load_builtin_model(p, demo.as_ptr())
    );
    // a pure model and a problem without a Gaussian spectrum
    let mut bare = null_mut();
    assert_eq!(lensdiff_problem_create(N, N, 1.0, &mut bare), S::Ok);
    assert_eq!(lensdiff_problem_set_noise_uniform(bare, 0.05), S::Ok);
    let zeros = vec![0.0f32; N * N];
    assert_eq!(
        lensdiff_problem_set_shear(bare, zeros.as_ptr(), zeros.as_ptr(), N * N),
        S::Ok
    );
    let pure = c_path(&f.pure);
    case!(
        c,
        "lensdiff_problem_load_model",
        "a pure model (loads; the guidance needs a spectrum later)",
        S::Ok,
        lensdiff_problem_load_model(bare, pure.as_ptr())
    );
    let mut cfg = std::mem::zeroed::<LensdiffSamplerConfig>();
    assert_eq!(lensdiff_sampler_config_init(&mut cfg), S::Ok);
    cfg.chains = 1;
    cfg.levels = 4;
    let mut sm = null_mut();
    case!(
        c,
        "lensdiff_sampler_create",
        "pure learned prior, no Gaussian spectrum set",
        S::CallOrder,
        lensdiff_sampler_create(bare, &cfg, &mut sm)
    );
    assert_eq!(lensdiff_problem_destroy(bare), S::Ok);
    // a good model
    case!(
        c,
        "lensdiff_problem_load_model",
        "a hybrid model of the problem's pixel",
        S::Ok,
        lensdiff_problem_load_model(p, good.as_ptr())
    );
    let mut cuda = cfg;
    cuda.device_kind = LENSDIFF_DEVICE_CUDA;
    case!(
        c,
        "lensdiff_sampler_create",
        "learned prior on a CUDA device",
        S::Unsupported,
        lensdiff_sampler_create(p, &cuda, &mut sm)
    );
    // model_info
    case!(
        c,
        "lensdiff_problem_model_info",
        "NULL info",
        S::NullPointer,
        lensdiff_problem_model_info(p, null_mut(), info_size)
    );
    case!(
        c,
        "lensdiff_problem_model_info",
        "info_size 8",
        S::Shape,
        lensdiff_problem_model_info(p, &mut info, 8)
    );
    case!(
        c,
        "lensdiff_problem_model_info",
        "NULL handle",
        S::NullPointer,
        lensdiff_problem_model_info(null(), &mut info, info_size)
    );
    case!(
        c,
        "lensdiff_problem_model_info",
        "a loaded model",
        S::Ok,
        lensdiff_problem_model_info(p, &mut info, info_size)
    );
    assert_eq!((info.hybrid, info.levels, info.side_multiple), (1, 2, 2));
    // model_json
    case!(
        c,
        "lensdiff_problem_model_json",
        "buffer too short (8 bytes)",
        S::Shape,
        lensdiff_problem_model_json(p, buf.as_mut_ptr(), buf.len(), &mut needed)
    );
    assert!(needed > buf.len());
    case!(
        c,
        "lensdiff_problem_model_json",
        "NULL buf with buf_len 0 (size query)",
        S::Ok,
        lensdiff_problem_model_json(p, null_mut(), 0, &mut needed)
    );
    case!(
        c,
        "lensdiff_problem_model_json",
        "NULL buf with buf_len 100",
        S::NullPointer,
        lensdiff_problem_model_json(p, null_mut(), 100, null_mut())
    );
    case!(
        c,
        "lensdiff_problem_model_json",
        "stale handle",
        S::StaleHandle,
        lensdiff_problem_model_json(stale, buf.as_mut_ptr(), buf.len(), null_mut())
    );
    // clear_model
    case!(
        c,
        "lensdiff_problem_clear_model",
        "NULL handle",
        S::NullPointer,
        lensdiff_problem_clear_model(null_mut())
    );
    case!(
        c,
        "lensdiff_problem_clear_model",
        "a problem with a learned prior",
        S::Ok,
        lensdiff_problem_clear_model(p)
    );
    case!(
        c,
        "lensdiff_problem_clear_model",
        "a problem without one (allowed)",
        S::Ok,
        lensdiff_problem_clear_model(p)
    );
}
