//! Joint sampling of cosmological parameters and the convergence map from C
//! (docs/joint.md, docs/c-api.md): a problem's joint prior — the exact
//! Gaussian one from a cosmology, or a learned joint denoiser from a file or a
//! caller's buffer — and the joint sampler, whose results are the map moments
//! and samples of [`super::sampler`] plus the parameter samples.

use std::ffi::c_char;
use std::path::Path;
use std::sync::Arc;

use super::problem::{read_cosmology, LensdiffCosmology, LensdiffProblem};
use super::sampler::{LensdiffSampler, LensdiffSamplerConfig, LENSDIFF_SAMPLER_EDM};
use super::{
    c_str, guard, handle, handle_mut, input, out_ptr, output, CError, CResult, Kind, LensdiffStatus,
};
use crate::error::{check_finite, Result};
use crate::prior::joint::table::MAX_TABLE_PARAMS;
use crate::prior::joint::{
    CosmologyRecipe, GaussianJoint, JointDenoiser, JointPrior, NeuralJoint, ParamSpace,
};
use crate::sampler::engine::Model;
use crate::sampler::joint_guided::JointGuidedPosterior;
use crate::sampler::{Guidance, ShearData};

/// A problem's joint prior, shared read-only by the samplers made from it.
pub(crate) enum JointModel {
    /// The exact Gaussian joint prior (`lensdiff joint --gaussian-cosmology`).
    Gaussian(Box<GaussianJoint>),
    /// A learned joint denoiser (`lensdiff joint --model`).
    Learned(Box<NeuralJoint>),
}

impl JointModel {
    /// The parameters and their priors.
    pub(crate) fn space(&self) -> &ParamSpace {
        match self {
            JointModel::Gaussian(g) => g.space(),
            JointModel::Learned(n) => n.space(),
        }
    }

    /// The map scale: `kappa = sigma_d k`.
    pub(crate) fn sigma_d(&self) -> f64 {
        match self {
            JointModel::Gaussian(g) => JointPrior::sigma_d(g.as_ref()),
            JointModel::Learned(n) => n.sigma_d(),
        }
    }

    /// Checks that the prior, `data` and `guidance` make a posterior.
    pub(crate) fn check(&self, data: &ShearData, guidance: Guidance) -> Result<()> {
        self.with_posterior(data, guidance, |_| Ok(()))
    }

    /// Runs `f` on the guided joint posterior of this prior and `data`.
    pub(crate) fn with_posterior<T>(
        &self,
        data: &ShearData,
        guidance: Guidance,
        f: impl FnOnce(&dyn Model) -> Result<T>,
    ) -> Result<T> {
        match self {
            JointModel::Gaussian(g) => f(&JointGuidedPosterior::new(g.as_ref(), data, guidance)?),
            JointModel::Learned(n) => f(&JointGuidedPosterior::new(n.as_ref(), data, guidance)?),
        }
    }
}

/// The problem's joint prior, or why there is none.
pub(crate) fn joint_model(pr: &LensdiffProblem) -> CResult<&Arc<JointModel>> {
    pr.joint.as_ref().ok_or_else(|| {
        CError::new(
            LensdiffStatus::CallOrder,
            "no joint prior: call lensdiff_problem_set_joint_prior_cosmology or _load_joint_model first",
        )
    })
}

/// Sets the exact Gaussian joint prior: Gaussian maps whose C_ell follows
/// `cosmo` (as [`super::lensdiff_problem_set_prior_cosmology`]) with the
/// `n_params` parameters named in `names` (comma-separated, e.g.
/// `"omega_c,sigma8"`; any of omega_c, omega_b, h, n_s, sigma8, w0, wa; 1 to
/// 3) varied under independent Gaussian priors `N(prior_mean[i],
/// prior_std[i]²)`, the others fixed at `cosmo`'s values. Tabulates the
/// spectra over the prior box (21 nodes a parameter: a few seconds for two).
/// Replaces any joint prior the problem had.
///
/// # Safety
/// `cosmo` initialised with [`super::lensdiff_cosmology_init`]; `names` a
/// NUL-terminated string; `prior_mean`, `prior_std` valid for `n_params`
/// doubles.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_problem_set_joint_prior_cosmology(
    p: *mut LensdiffProblem,
    cosmo: *const LensdiffCosmology,
    names: *const c_char,
    prior_mean: *const f64,
    prior_std: *const f64,
    n_params: usize,
) -> LensdiffStatus {
    guard(|| {
        let pr = handle_mut(p, Kind::Problem, "problem")?;
        let (base, nz, opts) = read_cosmology(cosmo)?.to_rust()?;
        let names = c_str(names, "names")?;
        if n_params == 0 || n_params > MAX_TABLE_PARAMS {
            return Err(CError::new(
                LensdiffStatus::InvalidArgument,
                format!("n_params is {n_params}: the Gaussian joint prior takes 1 to {MAX_TABLE_PARAMS} parameters"),
            ));
        }
        let mean = input(prior_mean, n_params, n_params, "prior_mean")?;
        let std = input(prior_std, n_params, n_params, "prior_std")?;
        check_finite("prior_mean", mean)?;
        check_finite("prior_std", std)?;
        let list: Vec<&str> = names.split(',').map(str::trim).collect();
        if list.len() != n_params {
            return Err(CError::new(
                LensdiffStatus::InvalidArgument,
                format!(
                    "names \"{names}\" has {} entries, n_params is {n_params}",
                    list.len()
                ),
            ));
        }
        let space = ParamSpace::new(&list, mean, std)?;
        let g = GaussianJoint::from_cosmology(&pr.grid, &space, &base, &nz.source()?, &opts)?;
        pr.joint = Some(Arc::new(JointModel::Gaussian(Box::new(g))));
        Ok(())
    })
}

/// A learned joint prior for the problem's grid from a file's bytes, with
/// the guidance's Gaussian model from `guidance_cosmo` when given.
unsafe fn learned(
    pr: &mut LensdiffProblem,
    bytes: &[u8],
    label: &Path,
    guidance_cosmo: *const LensdiffCosmology,
) -> CResult<()> {
    let den =
        JointDenoiser::from_bytes(bytes, label).map_err(|e| super::content_fault(e, label))?;
    let mut prior = NeuralJoint::new(den, pr.grid)?;
    if !guidance_cosmo.is_null() {
        let (base, nz, cl) = read_cosmology(guidance_cosmo)?.to_rust()?;
        let recipe = CosmologyRecipe {
            base,
            source: nz.source()?,
            cl,
        };
        let g = recipe.gaussian(&pr.grid, &prior.space().clone(), prior.sigma_d())?;
        prior = prior.with_guidance(g)?;
    } else if prior
        .gaussian_power(&vec![0.0; prior.space().len()])?
        .is_none()
    {
        return Err(CError::new(
            LensdiffStatus::InvalidArgument,
            "this pure joint model carries no cosmology for the spectral guidance: pass guidance_cosmo",
        ));
    }
    pr.joint = Some(Arc::new(JointModel::Learned(Box::new(prior))));
    Ok(())
}

/// Loads a learned joint prior (a `lensdiff train --joint` safetensors file,
/// pure or hybrid) for the problem's grid: its pixel must be the training
/// pixel and its sides divisible by 2^(levels - 1) of the U-Net. The
/// parameters, their priors and `sigma_d` are the model's. The spectral
/// guidance takes its Gaussian model from `guidance_cosmo` when non-NULL (a
/// cosmology with the model's parameters varied), else from the model's own
/// cosmology (a pure model without one then fails with INVALID_ARGUMENT).
/// Replaces any joint prior the problem had. A missing file is `IO`; a
/// corrupt, truncated or foreign file `FORMAT`; NaN weights `NON_FINITE`.
///
/// # Safety
/// `path` a NUL-terminated string; `guidance_cosmo` NULL or initialised with
/// [`super::lensdiff_cosmology_init`].
#[no_mangle]
pub unsafe extern "C" fn lensdiff_problem_load_joint_model(
    p: *mut LensdiffProblem,
    path: *const c_char,
    guidance_cosmo: *const LensdiffCosmology,
) -> LensdiffStatus {
    guard(|| {
        let pr = handle_mut(p, Kind::Problem, "problem")?;
        let path = Path::new(c_str(path, "path")?);
        let bytes = super::read_file(path)?;
        learned(pr, &bytes, path, guidance_cosmo)
    })
}

/// As [`lensdiff_problem_load_joint_model`], from the `len` bytes of a
/// model file in the caller's memory (e.g. broadcast over MPI); the bytes are
/// parsed and copied, so the buffer may be freed afterwards.
///
/// # Safety
/// `data` valid for `len` bytes; `guidance_cosmo` NULL or initialised.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_problem_load_joint_model_buffer(
    p: *mut LensdiffProblem,
    data: *const u8,
    len: usize,
    guidance_cosmo: *const LensdiffCosmology,
) -> LensdiffStatus {
    guard(|| {
        let pr = handle_mut(p, Kind::Problem, "problem")?;
        let bytes = input(data, len, len, "data")?;
        learned(pr, bytes, Path::new("<buffer>"), guidance_cosmo)
    })
}

/// Number of parameters of the problem's joint prior.
///
/// # Safety
/// `n_params` valid for one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_problem_joint_params(
    p: *const LensdiffProblem,
    n_params: *mut usize,
) -> LensdiffStatus {
    guard(|| {
        let pr = handle(p, Kind::Problem, "problem")?;
        let out = out_ptr(n_params, "n_params")?;
        *out = joint_model(pr)?.space().len();
        Ok(())
    })
}

/// Parameter `index` of the joint prior: its name (NUL-terminated, into
/// `name` of `name_len` bytes; SHAPE if it does not fit) and its prior mean
/// and std. Any of the three outputs may be NULL.
///
/// # Safety
/// Non-NULL outputs valid: `name` for `name_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_problem_joint_param(
    p: *const LensdiffProblem,
    index: usize,
    name: *mut c_char,
    name_len: usize,
    prior_mean: *mut f64,
    prior_std: *mut f64,
) -> LensdiffStatus {
    guard(|| {
        let pr = handle(p, Kind::Problem, "problem")?;
        let space = joint_model(pr)?.space();
        if index >= space.len() {
            return Err(CError::new(
                LensdiffStatus::InvalidArgument,
                format!(
                    "index {index}: the joint prior has {} parameters",
                    space.len()
                ),
            ));
        }
        if !name.is_null() {
            let s = space.names()[index].as_bytes();
            if name_len < s.len() + 1 {
                return Err(CError::new(
                    LensdiffStatus::Shape,
                    format!(
                        "name_len is {name_len}: `{}` needs {} bytes with its NUL",
                        space.names()[index],
                        s.len() + 1
                    ),
                ));
            }
            // only the bytes written: the name and its NUL
            let out = output(name as *mut u8, s.len() + 1, s.len() + 1, "name")?;
            out[..s.len()].copy_from_slice(s);
            out[s.len()] = 0;
        }
        if !prior_mean.is_null() {
            *prior_mean = space.mean()[index];
        }
        if !prior_std.is_null() {
            *prior_std = space.std()[index];
        }
        Ok(())
    })
}

/// Fills `cfg` with the joint sampler's defaults and sets `struct_size`: as
/// [`super::lensdiff_sampler_config_init`] but Karras et al.'s stochastic
/// sampler (EDM) with 128 levels, `lensdiff joint`'s default (Heun's ODE is
/// biased with the joint guidance, docs/joint.md).
///
/// # Safety
/// `cfg` valid for writing a `lensdiff_sampler_config`.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_joint_sampler_config_init(
    cfg: *mut LensdiffSamplerConfig,
) -> LensdiffStatus {
    guard(|| {
        *out_ptr(cfg, "cfg")? = LensdiffSamplerConfig {
            sampler: LENSDIFF_SAMPLER_EDM,
            ..LensdiffSamplerConfig::default()
        };
        Ok(())
    })
}

/// Creates a joint sampler of parameters and map for a problem with shear,
/// noise and a joint prior (shared with the problem, which may change or be
/// destroyed afterwards). Runs on the CPU (device CUDA and refinement are
/// UNSUPPORTED); every integrator and guidance scheme is accepted, with the
/// integrators' joint-state defaults (Euler–Maruyama 2000 levels,
/// predictor–corrector SNR 0.08 and 1000 levels, where `levels` is 0; the
/// spectral guidance with EDM or Heun is the validated setting, docs/joint.md). The
/// results: the map functions of `lensdiff_sampler_*` (convergence units)
/// and [`lensdiff_sampler_theta`].
///
/// # Safety
/// `p` a live problem, `cfg` an initialised config, `out` valid for one pointer.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_joint_sampler_create(
    p: *const LensdiffProblem,
    cfg: *const LensdiffSamplerConfig,
    out: *mut *mut LensdiffSampler,
) -> LensdiffStatus {
    guard(|| {
        let out = out_ptr(out, "out")?;
        let pr = handle(p, Kind::Problem, "problem")?;
        let model = joint_model(pr)?.clone();
        *out = LensdiffSampler::create_joint(pr, cfg, model)?;
        Ok(())
    })
}

/// Number of parameters a sampler draws besides the map (0 for a map
/// sampler).
///
/// # Safety
/// `s` a live sampler, `n_params` valid.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_sampler_params(
    s: *const LensdiffSampler,
    n_params: *mut usize,
) -> LensdiffStatus {
    guard(|| {
        let sm = handle(s, Kind::Sampler, "sampler")?;
        *out_ptr(n_params, "n_params")? = sm.joint_model().map_or(0, |m| m.space().len());
        Ok(())
    })
}

/// The parameter samples of a joint sampler, `[chains][n_params]` in the
/// prior's order and physical units (`len = chains * n_params`, with the
/// chains this handle holds: see `lensdiff_sampler_chains`).
/// INVALID_ARGUMENT for a map sampler.
///
/// # Safety
/// `out` valid for `len` doubles.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_sampler_theta(
    s: *const LensdiffSampler,
    out: *mut f64,
    len: usize,
) -> LensdiffStatus {
    guard(|| {
        let sm = handle(s, Kind::Sampler, "sampler")?;
        let theta = sm.theta()?;
        output(out, len, theta.len(), "out")?.copy_from_slice(theta);
        Ok(())
    })
}
