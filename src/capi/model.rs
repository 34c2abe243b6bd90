//! The learned map prior from C (docs/c-api.md): a trained denoiser (`lensdiff
//! train`, pure or Gaussian + neural hybrid) loaded into a problem from a
//! file, from a caller's memory buffer or by built-in name, and described by
//! [`lensdiff_problem_model_info`] and [`lensdiff_problem_model_json`]. The
//! samplers made from the problem then use it instead of the Gaussian prior,
//! as `lensdiff sample --model` does; they share the loaded model read-only
//! (an `Arc`), so it is neither copied per sampler nor per call.

use std::ffi::c_char;
use std::path::Path;
use std::sync::Arc;

use super::problem::LensdiffProblem;
use super::{c_str, guard, handle, handle_mut, input, CError, CResult, Kind};
use super::{output, LensdiffStatus};
use crate::prior::builtin::builtin_model_bytes;
use crate::prior::{Denoiser, DenoiserKind, NeuralPrior, Prior};
use crate::sampler::Guidance;

/// What [`lensdiff_problem_model_info`] reports of a problem's learned prior.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LensdiffModelInfo {
    /// 1 for a Gaussian + neural hybrid (the network learns the residual of
    /// the Wiener denoiser of the file's `C_ell`), 0 for a pure network.
    pub hybrid: i32,
    /// Levels of the U-Net.
    pub levels: u32,
    /// Map sides must be multiples of this (the U-Net's pooling depth).
    pub side_multiple: u32,
    /// Zero (explicit padding).
    pub reserved: u32,
    /// Number of network parameters.
    pub n_params: u64,
    /// Pixel size the network was trained at, arcmin (the problem's).
    pub pixel_arcmin: f64,
    /// Data scale `sigma_d` of the preconditioning (the training maps' std).
    pub sigma_data: f64,
    /// Largest noise level it was trained for, where the samplers start by
    /// default; 0 where the file does not say.
    pub sigma_max: f64,
}

/// Size of the first version of [`LensdiffModelInfo`] (later versions append
/// fields).
const INFO_V1_SIZE: usize = 48;

/// The problem's learned prior, or `CALL_ORDER`.
pub(crate) fn loaded(pr: &LensdiffProblem) -> CResult<&Arc<Denoiser>> {
    pr.model.as_ref().ok_or_else(|| {
        CError::new(
            LensdiffStatus::CallOrder,
            "no learned prior: call lensdiff_problem_load_model, _load_model_buffer or _load_builtin_model first",
        )
    })
}

/// The sampler's prior for a problem with a learned model: the network on the
/// problem's grid. A pure network's Gaussian model (for the guidance, the
/// default start level and the refinement's metric) is the problem's
/// spectrum (`lensdiff_problem_set_prior_*`), as `lensdiff sample --model`
/// gives it the `--cl` table; without one, `CALL_ORDER`.
pub(crate) fn neural_prior(
    pr: &LensdiffProblem,
    model: &Arc<Denoiser>,
    guidance: Guidance,
) -> CResult<NeuralPrior> {
    guidance.check(true)?;
    let prior = NeuralPrior::new(Arc::clone(model), pr.grid)?;
    if prior.gaussian_power().is_some() {
        return Ok(prior);
    }
    let power = pr.prior_power.as_ref().ok_or_else(|| {
        CError::new(
            LensdiffStatus::CallOrder,
            "a pure learned prior needs the problem's Gaussian spectrum (for the guidance, the start level and the refinement's metric): call lensdiff_problem_set_prior_default (what lensdiff sample --model uses), _set_prior_cl or _set_prior_cosmology first",
        )
    })?;
    Ok(prior.with_guidance_power(power.clone())?)
}

/// Parses a model file's bytes and checks it against the problem's grid.
/// Every fault of the file's content is `FORMAT` (a bad architecture, a
/// missing or misshapen tensor), but NaN weights, `NON_FINITE`.
fn load(pr: &mut LensdiffProblem, bytes: &[u8], label: &Path) -> CResult<()> {
    let den = Denoiser::from_bytes(bytes, label).map_err(|e| super::content_fault(e, label))?;
    let grid = pr.grid;
    den.unet().config().check_map_size(grid.ny, grid.nx)?;
    let px = den.meta().pixel_arcmin;
    if (grid.pixel_arcmin / px - 1.0).abs() > 1e-6 {
        return Err(CError::new(
            LensdiffStatus::InvalidArgument,
            format!(
                "the model was trained on {px}' pixels, the problem has {}' (they must agree to 1e-6)",
                grid.pixel_arcmin
            ),
        ));
    }
    pr.model = Some(Arc::new(den));
    Ok(())
}

/// Loads a learned map prior (a `lensdiff train` safetensors file, pure or
/// hybrid) into the problem: the samplers made from it afterwards use it
/// instead of the Gaussian prior. Its training pixel must be the problem's
/// (to 1e-6) and the grid's sides multiples of its `side_multiple`
/// (`2^(pooling steps)`): else `INVALID_ARGUMENT`. A pure model's Gaussian
/// model is the problem's spectrum (`lensdiff_problem_set_prior_*`, needed
/// before `lensdiff_sampler_create`). Replaces any learned prior the problem
/// had. A missing file is `IO`; a corrupt, truncated or foreign file (e.g. a
/// joint model, a bad architecture or tensor) `FORMAT`; NaN weights
/// `NON_FINITE`.
///
/// # Safety
/// `path` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_problem_load_model(
    p: *mut LensdiffProblem,
    path: *const c_char,
) -> LensdiffStatus {
    guard(|| {
        let pr = handle_mut(p, Kind::Problem, "problem")?;
        let path = Path::new(c_str(path, "path")?);
        let bytes = super::read_file(path)?;
        load(pr, &bytes, path)
    })
}

/// As [`lensdiff_problem_load_model`], from the `len` bytes of a model file in
/// the caller's memory (e.g. broadcast over MPI); the bytes are parsed and
/// copied, so the buffer may be freed afterwards.
///
/// # Safety
/// `data` valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_problem_load_model_buffer(
    p: *mut LensdiffProblem,
    data: *const u8,
    len: usize,
) -> LensdiffStatus {
    guard(|| {
        let pr = handle_mut(p, Kind::Problem, "problem")?;
        let bytes = input(data, len, len, "data")?;
        load(pr, bytes, Path::new("<buffer>"))
    })
}

/// As [`lensdiff_problem_load_model`], for a model shipped inside the
/// library: `"demo-lognormal-hybrid"` (or `"demo"`), the hybrid prior of
/// `lensdiff demo` (the demo U-Net trained on log-normal fields at 0.5'
/// pixels; models/README.md). An unknown name is `INVALID_ARGUMENT`.
///
/// # Safety
/// `name` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_problem_load_builtin_model(
    p: *mut LensdiffProblem,
    name: *const c_char,
) -> LensdiffStatus {
    guard(|| {
        let pr = handle_mut(p, Kind::Problem, "problem")?;
        let name = c_str(name, "name")?;
        let bytes = builtin_model_bytes(name)?;
        load(pr, bytes, Path::new(&format!("<built-in model {name}>")))
    })
}

/// Removes the problem's learned prior (samplers made afterwards use the
/// Gaussian prior again; those made before keep theirs). No learned prior is
/// not an error.
///
/// # Safety
/// `p` a live problem.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_problem_clear_model(p: *mut LensdiffProblem) -> LensdiffStatus {
    guard(|| {
        handle_mut(p, Kind::Problem, "problem")?.model = None;
        Ok(())
    })
}

/// Describes the problem's learned prior into `info`, of `info_size` bytes
/// (`sizeof(lensdiff_model_info)` as compiled by the caller: the library
/// writes the fields it knows that fit, so later versions can append
/// fields; below the first version's 48 bytes is `SHAPE`). `CALL_ORDER`
/// without a learned prior.
///
/// # Safety
/// `info` valid for writing `info_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_problem_model_info(
    p: *const LensdiffProblem,
    info: *mut LensdiffModelInfo,
    info_size: usize,
) -> LensdiffStatus {
    guard(|| {
        let pr = handle(p, Kind::Problem, "problem")?;
        if info.is_null() {
            return Err(CError::new(LensdiffStatus::NullPointer, "info is NULL"));
        }
        let ours = std::mem::size_of::<LensdiffModelInfo>();
        if info_size < INFO_V1_SIZE {
            return Err(CError::new(
                LensdiffStatus::Shape,
                format!("info_size is {info_size}: pass sizeof(lensdiff_model_info) ({ours})"),
            ));
        }
        let den = loaded(pr)?;
        let cfg = den.unet().config();
        let meta = den.meta();
        let full = LensdiffModelInfo {
            hybrid: i32::from(meta.kind == DenoiserKind::Hybrid),
            levels: cfg.channels.len() as u32,
            side_multiple: cfg.side_multiple() as u32,
            reserved: 0,
            n_params: den.unet().n_params() as u64,
            pixel_arcmin: meta.pixel_arcmin,
            sigma_data: meta.sigma_data,
            sigma_max: meta.sigma_max.unwrap_or(0.0),
        };
        // SAFETY: `out` is valid for `info_size` bytes; a newer caller's
        // longer struct keeps its fields beyond ours.
        std::ptr::copy_nonoverlapping(
            &full as *const LensdiffModelInfo as *const u8,
            info as *mut u8,
            info_size.min(ours),
        );
        Ok(())
    })
}

/// The problem's learned prior as JSON text (NUL-terminated) into `buf` of
/// `buf_len` bytes: `{"kind", "pixel_arcmin", "sigma_data", "sigma_max",
/// "description", "n_params", "side_multiple", "architecture": {channels,
/// blocks, groups, ...}}`. `*needed` (when non-NULL) receives the length with
/// the NUL; a `buf_len` below it is `SHAPE` (query with `buf = NULL`,
/// `buf_len = 0`).
///
/// # Safety
/// `buf` valid for `buf_len` bytes (or NULL with `buf_len = 0`); `needed`
/// NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_problem_model_json(
    p: *const LensdiffProblem,
    buf: *mut c_char,
    buf_len: usize,
    needed: *mut usize,
) -> LensdiffStatus {
    guard(|| {
        let pr = handle(p, Kind::Problem, "problem")?;
        let den = loaded(pr)?;
        let meta = den.meta();
        let cfg = den.unet().config();
        let json = serde_json::json!({
            "kind": meta.kind.name(),
            "pixel_arcmin": meta.pixel_arcmin,
            "sigma_data": meta.sigma_data,
            "sigma_max": meta.sigma_max,
            "description": meta.description,
            "n_params": den.unet().n_params(),
            "side_multiple": cfg.side_multiple(),
            "architecture": cfg,
        })
        .to_string();
        let len = json.len() + 1;
        if !needed.is_null() {
            *needed = len;
        }
        if buf.is_null() && buf_len == 0 {
            return Ok(());
        }
        if buf.is_null() {
            return Err(CError::new(
                LensdiffStatus::NullPointer,
                "buf is NULL (pass buf_len = 0 to query the length)",
            ));
        }
        if buf_len < len {
            return Err(CError::new(
                LensdiffStatus::Shape,
                format!("buf_len is {buf_len}, the JSON needs {len} bytes with its NUL"),
            ));
        }
        let out = output(buf as *mut u8, buf_len, buf_len, "buf")?;
        out[..json.len()].copy_from_slice(json.as_bytes());
        out[json.len()] = 0;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_info_version_is_the_current_struct() {
        assert_eq!(std::mem::size_of::<LensdiffModelInfo>(), INFO_V1_SIZE);
    }
}
