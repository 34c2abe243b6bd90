//! The learned joint denoiser of parameters and map (issue #15, part 2; the
//! JADE design of Remy, Chang & Willett 2026, with the EDM preconditioning of
//! Karras et al. 2022 on both parts).
//!
//! In joint units ([module docs](super)) both parts have unit data scale
//! (`u ~ N(0, I)` under the prior; `k = kappa / sigma_d` with `sigma_d` the
//! prior pixel std), so one set of EDM scalings with `sigma_data = 1` serves
//! both:
//!
//! ```text
//! (F_u, F_k) = F(c_in k_sigma, c_in u_sigma, ln sigma)          the joint U-Net (nn::unet)
//! D(x; sigma) = base(x; sigma) + c_out (F_u, F_k)
//! c_in = 1 / sqrt(sigma² + 1),  c_out = sigma / sqrt(sigma² + 1),  c_skip = 1 / (sigma² + 1)
//! pure:   base = c_skip x
//! hybrid: base = the exact Gaussian joint denoiser (GaussianJoint) of a cosmology
//! ```
//!
//! The hybrid is Remy et al. 2023's Gaussian + neural prior lifted to the
//! joint case: the network learns only what the Gaussian joint prior gets
//! wrong, and a zero network reproduces the Gaussian joint denoiser exactly.
//!
//! Vector–Jacobian product: `J_D^T v = base^T v + c_in J_F^T (c_out v)`, with
//! `base^T v = c_skip v` (pure) or the Gaussian joint denoiser's exact VJP.
//!
//! # File format (safetensors)
//!
//! The joint U-Net's parameters under the names of [`crate::nn::unet`];
//! metadata `format = "lensdiff-joint-denoiser-v1"`, `architecture` (the
//! [`UNetConfig`] as JSON, `joint_params = p`) and `denoiser`
//! ([`JointDenoiserMeta`] as JSON: parameter names and priors, `sigma_d`,
//! pixel size, and the cosmology of the Gaussian part).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::gaussian::{GaussianJoint, JointDenoised, Linearisation};
use super::quadrature::Gauss;
use super::rings::Rings;
use super::table::SpectrumTable;
use super::{JointPrior, ParamSpace};
use crate::cosmo::limber::ClOptions;
use crate::cosmo::nz::SourceBin;
use crate::cosmo::Cosmology;
use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::nn::unet::{UNet, UNetCache, UNetConfig};
use crate::nn::{check_len, Dims4, Weights};
use crate::prior::denoiser::{network_weights, read_network, DenoiserKind, EdmScaling};

/// Value of the `format` metadata key of a joint denoiser.
pub const JOINT_DENOISER_FORMAT: &str = "lensdiff-joint-denoiser-v1";

/// The EDM scalings in joint units (`sigma_data = 1`).
pub fn joint_scaling(sigma: f64) -> EdmScaling {
    EdmScaling::new(sigma, 1.0)
}

/// What makes the spectra `C_ell(theta)` of a Gaussian joint prior: the
/// cosmology of the parameters not varied, the sources and the `C_ell`
/// options ([`GaussianJoint::from_cosmology`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CosmologyRecipe {
    /// The cosmology (the varied parameters are overwritten).
    pub base: Cosmology,
    /// The source bin.
    pub source: SourceBin,
    /// How the spectra are computed.
    pub cl: ClOptions,
}

impl CosmologyRecipe {
    /// Checks the cosmology and the source bin (a file's metadata is input).
    pub fn validate(&self) -> Result<()> {
        self.base.validate()?;
        match &self.source {
            SourceBin::Plane { z } => {
                if !(z.is_finite() && *z > 0.0) {
                    return Err(Error::invalid(
                        "source",
                        format!("a source plane needs a finite positive redshift, got {z}"),
                    ));
                }
            }
            SourceBin::Density { z, pdf } => {
                SourceBin::density(z.clone(), pdf.clone())?;
            }
        }
        if self.cl.chi_points < 33
            || self.cl.chi_points.is_multiple_of(2)
            || self.cl.chi_points > 1 << 16
        {
            return Err(Error::invalid(
                "cl.chi_points",
                format!(
                    "need an odd count in 33..=65535, got {}",
                    self.cl.chi_points
                ),
            ));
        }
        Ok(())
    }

    /// The Gaussian joint prior of `space` on `grid`, maps in units of `sigma_d`.
    pub fn gaussian(&self, grid: &Grid, space: &ParamSpace, sigma_d: f64) -> Result<GaussianJoint> {
        let rings = Rings::new(grid);
        let table = SpectrumTable::cosmology(space, &rings, &self.base, &self.source, &self.cl)?;
        GaussianJoint::new(table, rings, sigma_d)
    }
}

/// Scalar description of a joint denoiser (JSON under the `denoiser` key).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JointDenoiserMeta {
    /// Pure or hybrid.
    pub kind: DenoiserKind,
    /// Parameter names (`omega_c`, `sigma8`, ...).
    pub names: Vec<String>,
    /// Prior means of the parameters.
    pub prior_mean: Vec<f64>,
    /// Prior stds of the parameters.
    pub prior_std: Vec<f64>,
    /// The map scale `sigma_d` (`k = kappa / sigma_d`).
    pub sigma_d: f64,
    /// Pixel size the network was trained at, arcmin.
    pub pixel_arcmin: f64,
    /// Largest noise level trained for (samplers start there).
    #[serde(default)]
    pub sigma_max: Option<f64>,
    /// The Gaussian joint prior's cosmology: the base of a hybrid (required
    /// there), the guidance's covariance model of a pure network.
    #[serde(default)]
    pub gaussian: Option<CosmologyRecipe>,
    /// Free text: what it was trained on, and how.
    #[serde(default)]
    pub description: String,
}

impl JointDenoiserMeta {
    /// A description of the parameters of `space` with no `sigma_max`,
    /// Gaussian part or text.
    pub fn new(kind: DenoiserKind, space: &ParamSpace, sigma_d: f64, pixel_arcmin: f64) -> Self {
        JointDenoiserMeta {
            kind,
            names: space.names().to_vec(),
            prior_mean: space.mean().to_vec(),
            prior_std: space.std().to_vec(),
            sigma_d,
            pixel_arcmin,
            sigma_max: None,
            gaussian: None,
            description: String::new(),
        }
    }

    /// The parameter space.
    pub fn space(&self) -> Result<ParamSpace> {
        let names: Vec<&str> = self.names.iter().map(|s| s.as_str()).collect();
        ParamSpace::new(&names, &self.prior_mean, &self.prior_std)
    }

    fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("sigma_d", self.sigma_d),
            ("pixel_arcmin", self.pixel_arcmin),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::invalid(
                    name,
                    format!("must be finite and positive, got {v}"),
                ));
            }
        }
        if let Some(s) = self.sigma_max {
            if !(s.is_finite() && s > 0.0) {
                return Err(Error::invalid(
                    "sigma_max",
                    format!("must be finite and positive, got {s}"),
                ));
            }
        }
        match (&self.gaussian, self.kind) {
            (None, DenoiserKind::Hybrid) => Err(Error::invalid(
                "gaussian",
                "a hybrid joint denoiser needs the cosmology of its Gaussian part",
            )),
            (Some(r), _) => r.validate(),
            (None, DenoiserKind::Pure) => Ok(()),
        }
    }
}

/// A joint denoiser: the joint U-Net, its parameters and description.
#[derive(Clone, Debug)]
pub struct JointDenoiser {
    unet: UNet,
    /// Flat parameter vector in the layout of [`UNet::layout`].
    pub params: Vec<f32>,
    space: ParamSpace,
    meta: JointDenoiserMeta,
}

/// What [`JointDenoiser::vjp`] needs from [`JointDenoiser::forward_cached`].
pub struct JointDenoiserCache {
    dims: Dims4,
    sigma: Vec<f64>,
    unet: UNetCache<f32>,
    /// The Gaussian base's linearisation per item (hybrid, when asked for).
    base: Option<Vec<Linearisation>>,
}

/// A denoised batch in joint units.
#[derive(Debug, Clone, PartialEq)]
pub struct JointBatchDenoised {
    /// `u*`, `[n][p]`.
    pub u: Vec<f64>,
    /// `k*`, `[n][h][w]`.
    pub k: Vec<f64>,
    /// The Gaussian base's `Cov[u | x_sigma]` per item (hybrid only; `[n][p][p]`).
    pub base_u_cov: Vec<f64>,
}

impl JointDenoiser {
    /// A freshly initialised denoiser (`F = 0`: the pure one is `c_skip x`,
    /// the hybrid the Gaussian joint denoiser). `config.joint_params` must be
    /// the number of parameters of `meta`.
    pub fn new(config: UNetConfig, meta: JointDenoiserMeta, seed: u64) -> Result<Self> {
        let unet = UNet::new(config)?;
        let params = unet.init_params(seed);
        Self::from_parts(unet, params, meta)
    }

    fn from_parts(unet: UNet, params: Vec<f32>, meta: JointDenoiserMeta) -> Result<Self> {
        check_len("params", unet.n_params(), params.len())?;
        meta.validate()?;
        let space = meta.space()?;
        if unet.config().joint_params != space.len() {
            return Err(Error::invalid(
                "joint_params",
                format!(
                    "the network takes {} parameters but the description names {}",
                    unet.config().joint_params,
                    space.len()
                ),
            ));
        }
        crate::error::check_finite("params", &params)?;
        Ok(JointDenoiser {
            unet,
            params,
            space,
            meta,
        })
    }

    /// The network.
    pub fn unet(&self) -> &UNet {
        &self.unet
    }

    /// The description.
    pub fn meta(&self) -> &JointDenoiserMeta {
        &self.meta
    }

    /// The parameters and their priors.
    pub fn space(&self) -> &ParamSpace {
        &self.space
    }

    /// Sets the largest trusted noise level.
    pub fn set_sigma_max(&mut self, sigma_max: f64) {
        self.meta.sigma_max = Some(sigma_max);
    }

    /// Replaces the free-text description.
    pub fn set_description(&mut self, text: impl Into<String>) {
        self.meta.description = text.into();
    }

    /// The Gaussian joint prior of the description's cosmology on `grid` (the
    /// hybrid's base; `None` without a cosmology).
    pub fn gaussian(&self, grid: &Grid) -> Result<Option<GaussianJoint>> {
        self.meta
            .gaussian
            .as_ref()
            .map(|r| r.gaussian(grid, &self.space, self.meta.sigma_d))
            .transpose()
    }

    fn check_base(&self, dims: Dims4, base: Option<&GaussianJoint>) -> Result<()> {
        match (self.meta.kind, base) {
            (DenoiserKind::Hybrid, None) => Err(Error::invalid(
                "gaussian",
                "a hybrid joint denoiser needs its Gaussian part on the map's grid",
            )),
            (DenoiserKind::Hybrid, Some(b)) => {
                let g = JointPrior::grid(b);
                if (g.ny, g.nx) != (dims.h, dims.w) {
                    return Err(Error::shape("gaussian", [dims.h, dims.w], [g.ny, g.nx]));
                }
                Ok(())
            }
            (DenoiserKind::Pure, _) => Ok(()),
        }
    }

    /// `D(x; sigma_i)` for a batch: `u` `[n][p]`, `k` `[n][h][w]` (joint
    /// units), one sigma per item, with the parameters `params` (the model's,
    /// an EMA copy, ...). `base` is the hybrid's Gaussian part on the maps'
    /// grid, `chains` its warm starts (one per item, or empty for cold
    /// starts); `linearise` keeps what [`JointDenoiser::vjp`] needs of it.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_cached(
        &self,
        params: &[f32],
        u: &[f64],
        k: &[f64],
        dims: Dims4,
        sigma: &[f64],
        base: Option<&GaussianJoint>,
        chains: &mut [Option<Gauss>],
        linearise: bool,
    ) -> Result<(JointBatchDenoised, JointDenoiserCache)> {
        let p = self.space.len();
        let n = dims.n;
        self.unet.check_input(dims, k.len(), sigma.len())?;
        check_len("u", n * p, u.len())?;
        self.check_base(dims, base)?;
        if !chains.is_empty() {
            check_len("chains", n, chains.len())?;
        }
        if let Some(s) = sigma.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(Error::invalid(
                "sigma",
                format!("noise levels must be finite and positive, got {s}"),
            ));
        }
        let plane = dims.plane();
        let sc: Vec<EdmScaling> = sigma.iter().map(|&s| joint_scaling(s)).collect();
        let k_in = scaled_f32(k, plane, &sc, |c| c.c_in);
        let u_in = scaled_f32(u, p, &sc, |c| c.c_in);
        let (f_k, f_u, cache) = self
            .unet
            .forward_joint_cached(params, &k_in, dims, sigma, &u_in)?;
        let mut out = JointBatchDenoised {
            u: vec![0.0; n * p],
            k: vec![0.0; n * plane],
            base_u_cov: Vec::new(),
        };
        let mut lins = Vec::new();
        match (self.meta.kind, base) {
            (DenoiserKind::Hybrid, Some(g)) => {
                let mut none = None;
                for i in 0..n {
                    let warm = match chains.get_mut(i) {
                        Some(c) => c,
                        None => &mut none,
                    };
                    let (ui, ki) = (&u[i * p..][..p], &k[i * plane..][..plane]);
                    let d: JointDenoised = if linearise {
                        let (d, lin) = g.denoise_linearised(ui, ki, sigma[i], warm)?;
                        lins.push(lin);
                        d
                    } else {
                        g.denoise_warm(ui, ki, sigma[i], warm)?
                    };
                    out.u[i * p..][..p].copy_from_slice(&d.u);
                    out.k[i * plane..][..plane].copy_from_slice(&d.k);
                    out.base_u_cov.extend_from_slice(&d.u_cov);
                    none = None;
                }
            }
            _ => {
                for (i, (o, v)) in out.u.iter_mut().zip(u).enumerate() {
                    *o = sc[i / p].c_skip * v;
                }
                for (i, (o, v)) in out.k.iter_mut().zip(k).enumerate() {
                    *o = sc[i / plane].c_skip * v;
                }
            }
        }
        for (i, (o, f)) in out.u.iter_mut().zip(&f_u).enumerate() {
            *o += sc[i / p].c_out * *f as f64;
        }
        for (i, (o, f)) in out.k.iter_mut().zip(&f_k).enumerate() {
            *o += sc[i / plane].c_out * *f as f64;
        }
        let cache = JointDenoiserCache {
            dims,
            sigma: sigma.to_vec(),
            unet: cache,
            base: linearise.then_some(lins),
        };
        Ok((out, cache))
    }

    /// `(g_u, g_k) = J_D^T (v_u, v_k)` at the forward pass of `cache` (for a
    /// hybrid, one made with `linearise`), and if `grads` is given, adds the
    /// parameter gradient of `<v, D>` into it.
    pub fn vjp(
        &self,
        params: &[f32],
        cache: &JointDenoiserCache,
        v_u: &[f64],
        v_k: &[f64],
        base: Option<&GaussianJoint>,
        grads: Option<&mut [f32]>,
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        let dims = cache.dims;
        let p = self.space.len();
        let plane = dims.plane();
        check_len("v_u", dims.n * p, v_u.len())?;
        check_len("v_k", dims.len(), v_k.len())?;
        self.check_base(dims, base)?;
        let sc: Vec<EdmScaling> = cache.sigma.iter().map(|&s| joint_scaling(s)).collect();
        let (dy, du_out) = (
            scaled_f32(v_k, plane, &sc, |c| c.c_out),
            scaled_f32(v_u, p, &sc, |c| c.c_out),
        );
        let (dk_in, du_in) = self
            .unet
            .backward_joint(params, &cache.unet, &dy, &du_out, grads)?;
        let (mut g_u, mut g_k) = match (self.meta.kind, base) {
            (DenoiserKind::Hybrid, Some(g)) => {
                let lins = cache.base.as_ref().ok_or_else(|| {
                    Error::invalid(
                        "cache",
                        "the hybrid's VJP needs a forward pass made with `linearise`",
                    )
                })?;
                let (mut gu, mut gk) = (Vec::with_capacity(dims.n * p), Vec::new());
                for (i, lin) in lins.iter().enumerate() {
                    let (a, b) = g.vjp(lin, &v_u[i * p..][..p], &v_k[i * plane..][..plane])?;
                    gu.extend(a);
                    gk.extend(b);
                }
                (gu, gk)
            }
            _ => (
                v_u.iter()
                    .enumerate()
                    .map(|(i, v)| sc[i / p].c_skip * v)
                    .collect(),
                v_k.iter()
                    .enumerate()
                    .map(|(i, v)| sc[i / plane].c_skip * v)
                    .collect::<Vec<f64>>(),
            ),
        };
        for (i, (o, d)) in g_u.iter_mut().zip(&du_in).enumerate() {
            *o += sc[i / p].c_in * *d as f64;
        }
        for (i, (o, d)) in g_k.iter_mut().zip(&dk_in).enumerate() {
            *o += sc[i / plane].c_in * *d as f64;
        }
        Ok((g_u, g_k))
    }

    /// Adds the parameter gradient of `<v, D>` into `grads` (training: the
    /// base has no parameters, so a hybrid needs no linearisation here).
    pub fn param_gradient(
        &self,
        params: &[f32],
        cache: &JointDenoiserCache,
        v_u: &[f64],
        v_k: &[f64],
        grads: &mut [f32],
    ) -> Result<()> {
        let dims = cache.dims;
        let p = self.space.len();
        let plane = dims.plane();
        check_len("v_u", dims.n * p, v_u.len())?;
        check_len("v_k", dims.len(), v_k.len())?;
        let sc: Vec<EdmScaling> = cache.sigma.iter().map(|&s| joint_scaling(s)).collect();
        let (dy, du_out) = (
            scaled_f32(v_k, plane, &sc, |c| c.c_out),
            scaled_f32(v_u, p, &sc, |c| c.c_out),
        );
        self.unet
            .backward_joint(params, &cache.unet, &dy, &du_out, Some(grads))?;
        Ok(())
    }

    /// The weights file contents (tensors and metadata).
    pub fn to_weights(&self, params: &[f32]) -> Result<Weights> {
        network_weights(&self.unet, params, JOINT_DENOISER_FORMAT, &self.meta)
    }

    /// Reads a joint denoiser from weights in the format above.
    pub fn from_weights(w: &Weights) -> Result<Self> {
        let (unet, params, meta) = read_network(w, JOINT_DENOISER_FORMAT, "joint denoiser")?;
        Self::from_parts(unet, params, meta)
    }

    /// Writes the denoiser with `params` (e.g. the EMA copy), adding `extra`
    /// metadata entries.
    pub fn save_with(
        &self,
        params: &[f32],
        path: &Path,
        extra: &BTreeMap<String, String>,
    ) -> Result<()> {
        let mut w = self.to_weights(params)?;
        w.metadata
            .extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        w.save(path)
    }

    /// Writes the denoiser with its own parameters.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.save_with(&self.params, path, &BTreeMap::new())
    }

    /// Loads a joint denoiser; errors carry the path.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses the bytes of a joint denoiser file (e.g. a buffer broadcast
    /// over MPI); `label` names the source in errors. A description that
    /// contradicts itself or the network (e.g. other parameter counts) is a
    /// [`Error::Format`] error of the file; NaN weights are
    /// [`Error::NonFinite`].
    pub fn from_bytes(bytes: &[u8], label: &Path) -> Result<Self> {
        let w = Weights::from_bytes(bytes, label)?;
        Self::from_weights(&w).map_err(|e| match e {
            e @ (Error::Format { .. } | Error::InvalidArgument { .. }) => {
                crate::prior::train::format_error(label, e)
            }
            other => other,
        })
    }
}

/// `v` with item `i` (of `len` elements) scaled by `f(scalings[i])`, in f32
/// (the network's cotangents).
fn scaled_f32(
    v: &[f64],
    len: usize,
    sc: &[EdmScaling],
    f: impl Fn(&EdmScaling) -> f64,
) -> Vec<f32> {
    v.iter()
        .enumerate()
        .map(|(i, x)| (f(&sc[i / len]) * x) as f32)
        .collect()
}

/// A learned joint prior on one grid, as the guided joint sampler uses it
/// ([`JointPrior`]): the denoiser, the hybrid's Gaussian part on the grid and
/// the Gaussian model the spectral guidance takes its covariance from (the
/// description's cosmology, or one given with [`NeuralJoint::with_guidance`]).
pub struct NeuralJoint {
    grid: Grid,
    denoiser: JointDenoiser,
    base: Option<GaussianJoint>,
    guidance: Option<GaussianJoint>,
}

/// What [`NeuralJoint`]'s VJP needs: one item's forward pass.
pub struct NeuralLinear(JointDenoiserCache);

impl NeuralJoint {
    /// The prior of `denoiser` on `grid`: its sides must suit the U-Net depth
    /// and its pixel must be the training pixel (to 1e-6).
    pub fn new(denoiser: JointDenoiser, grid: Grid) -> Result<Self> {
        denoiser.unet().config().check_map_size(grid.ny, grid.nx)?;
        let px = denoiser.meta().pixel_arcmin;
        if (grid.pixel_arcmin / px - 1.0).abs() > 1e-6 {
            return Err(Error::invalid(
                "grid",
                format!(
                    "the network was trained on {px}' pixels, the maps have {}'",
                    grid.pixel_arcmin
                ),
            ));
        }
        let gauss = denoiser.gaussian(&grid)?;
        let (base, guidance) = match denoiser.meta().kind {
            DenoiserKind::Hybrid => (gauss, None),
            DenoiserKind::Pure => (None, gauss),
        };
        Ok(NeuralJoint {
            grid,
            denoiser,
            base,
            guidance,
        })
    }

    /// Sets the Gaussian joint prior whose power at `u*` the spectral
    /// guidance uses, in place of the description's (same parameters, grid
    /// and `sigma_d` required). A hybrid's denoiser keeps its own base.
    pub fn with_guidance(mut self, gauss: GaussianJoint) -> Result<Self> {
        if JointPrior::space(&gauss) != self.denoiser.space() {
            return Err(Error::invalid(
                "guidance",
                "the guidance's Gaussian prior has other parameters than the network",
            ));
        }
        if *JointPrior::grid(&gauss) != self.grid {
            return Err(Error::invalid(
                "guidance",
                "the guidance's Gaussian prior is on another grid",
            ));
        }
        if (gauss.sigma_d() / self.denoiser.meta().sigma_d - 1.0).abs() > 1e-12 {
            return Err(Error::invalid(
                "guidance",
                "the guidance's Gaussian prior has another map scale sigma_d",
            ));
        }
        self.guidance = Some(gauss);
        Ok(self)
    }

    /// The denoiser.
    pub fn denoiser(&self) -> &JointDenoiser {
        &self.denoiser
    }
}

impl JointPrior for NeuralJoint {
    type Chain = Option<Gauss>;
    type Linear = NeuralLinear;

    fn space(&self) -> &ParamSpace {
        self.denoiser.space()
    }

    fn grid(&self) -> &Grid {
        &self.grid
    }

    fn sigma_d(&self) -> f64 {
        self.denoiser.meta().sigma_d
    }

    fn sigma_max(&self) -> Option<f64> {
        self.denoiser.meta().sigma_max
    }

    fn gaussian_power(&self, u: &[f64]) -> Result<Option<Vec<f64>>> {
        self.guidance
            .as_ref()
            .or(self.base.as_ref())
            .map(|g| g.prior_power(u))
            .transpose()
    }

    fn denoise(
        &self,
        u_s: &[f64],
        k_s: &[f64],
        sigma: f64,
        chain: &mut Option<Gauss>,
    ) -> Result<(JointDenoised, NeuralLinear)> {
        let dn = &self.denoiser;
        let dims = Dims4::new(1, 1, self.grid.ny, self.grid.nx);
        let (d, cache) = dn.forward_cached(
            &dn.params,
            u_s,
            k_s,
            dims,
            &[sigma],
            self.base.as_ref(),
            std::slice::from_mut(chain),
            true,
        )?;
        Ok((
            JointDenoised {
                u: d.u,
                u_cov: d.base_u_cov,
                k: d.k,
                passes: 0,
            },
            NeuralLinear(cache),
        ))
    }

    fn vjp(&self, lin: &NeuralLinear, v_u: &[f64], v_k: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
        let dn = &self.denoiser;
        dn.vjp(&dn.params, &lin.0, v_u, v_k, self.base.as_ref(), None)
    }
}
