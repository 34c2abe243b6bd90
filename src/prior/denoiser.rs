//! The EDM-preconditioned neural denoiser and its file format.
//!
//! Karras et al. 2022 ("Elucidating the design space of diffusion-based
//! generative models", NeurIPS), eq. 7 and table 1, with data scale `σ_d`:
//!
//! ```text
//! D(x; σ) = base(x; σ) + c_out(σ) F(c_in(σ) x, ln σ)
//! c_in  = 1 / sqrt(σ² + σ_d²),   c_out = σ σ_d / sqrt(σ² + σ_d²),   c_skip = σ_d² / (σ² + σ_d²)
//! pure:   base = c_skip x                                   (EDM)
//! hybrid: base = F⁻¹[S / (S + σ²) F[x]]                     (the exact Gaussian denoiser)
//! ```
//!
//! The hybrid form is the Gaussian + neural prior of Remy et al. 2023 (A&A 672,
//! A51): the network learns only the non-Gaussian correction on top of the
//! Wiener denoiser of a fixed power spectrum `S` (stored with the weights as a
//! `C_ℓ` table). The network input is `c_in x` and its noise input is `ln σ`
//! (Fourier features, [`crate::nn::embed`]).
//!
//! Vector–Jacobian product (what Tweedie/DPS guidance needs):
//!
//! ```text
//! J_D(x)ᵀ v = baseᵀ v + c_in J_F(c_in x)ᵀ (c_out v),     baseᵀ v = c_skip v  or  D_G(v; σ)
//! ```
//!
//! # File format (safetensors)
//!
//! Tensors: the U-Net parameters under the names of [`crate::nn::unet`]; for the
//! hybrid, `gaussian.ell` and `gaussian.cl` (`[m]` each, the `C_ℓ` table).
//! Metadata: `format = "lensdiff-denoiser-v1"`, `architecture` (the
//! [`UNetConfig`] as JSON) and `denoiser` ([`DenoiserMeta`] as JSON).
//! `tools/torch_reference.py` reads the same file.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{GaussianPrior, Prior};
use crate::error::{Error, Result};
use crate::nn::unet::{UNet, UNetCache, UNetConfig};
use crate::nn::{check_len, Dims4, Weights};
use crate::spectrum::ClTable;

/// Value of the `format` metadata key.
pub const DENOISER_FORMAT: &str = "lensdiff-denoiser-v1";

/// How the network output is combined with the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DenoiserKind {
    /// `D = c_skip x + c_out F`: everything is learned.
    Pure,
    /// `D = D_Gauss + c_out F`: the network learns a residual on the Wiener denoiser.
    Hybrid,
}

impl DenoiserKind {
    /// `"pure"` or `"hybrid"`.
    pub fn name(self) -> &'static str {
        match self {
            DenoiserKind::Pure => "pure",
            DenoiserKind::Hybrid => "hybrid",
        }
    }

    /// Parses [`DenoiserKind::name`].
    pub fn from_name(s: &str) -> Result<Self> {
        match s {
            "pure" => Ok(DenoiserKind::Pure),
            "hybrid" => Ok(DenoiserKind::Hybrid),
            _ => Err(Error::invalid(
                "kind",
                format!("expected \"pure\" or \"hybrid\", got {s:?}"),
            )),
        }
    }
}

/// Scalar description of a denoiser (JSON under the `denoiser` metadata key).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DenoiserMeta {
    /// Pure or hybrid.
    pub kind: DenoiserKind,
    /// Data scale `σ_d` of the preconditioning (the standard deviation of the training maps).
    pub sigma_data: f64,
    /// Pixel size the network was trained at, arcmin.
    pub pixel_arcmin: f64,
    /// Largest noise level the network was trained for (samplers start there);
    /// `None` if unknown.
    #[serde(default)]
    pub sigma_max: Option<f64>,
    /// Free text: what the network was trained on, and how.
    #[serde(default)]
    pub description: String,
}

impl DenoiserMeta {
    /// A description with no `sigma_max` and no text.
    pub fn new(kind: DenoiserKind, sigma_data: f64, pixel_arcmin: f64) -> Self {
        DenoiserMeta {
            kind,
            sigma_data,
            pixel_arcmin,
            sigma_max: None,
            description: String::new(),
        }
    }
}

/// EDM scalings at one noise level.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EdmScaling {
    /// `σ_d² / (σ² + σ_d²)`.
    pub c_skip: f64,
    /// `σ σ_d / sqrt(σ² + σ_d²)`.
    pub c_out: f64,
    /// `1 / sqrt(σ² + σ_d²)`.
    pub c_in: f64,
}

impl EdmScaling {
    /// The scalings for noise level `sigma` and data scale `sigma_data`.
    pub fn new(sigma: f64, sigma_data: f64) -> Self {
        let r = (sigma * sigma + sigma_data * sigma_data).sqrt();
        EdmScaling {
            c_skip: sigma_data * sigma_data / (r * r),
            c_out: sigma * sigma_data / r,
            c_in: 1.0 / r,
        }
    }

    /// The EDM loss weight `λ(σ) = 1 / c_out²`, which makes the effective
    /// network target unit-variance at every σ.
    pub fn loss_weight(&self) -> f64 {
        1.0 / (self.c_out * self.c_out)
    }
}

/// A trained (or freshly initialised) denoiser: architecture, parameters and,
/// for the hybrid, the Gaussian `C_ℓ` it refines.
#[derive(Clone, Debug)]
pub struct Denoiser {
    unet: UNet,
    /// Flat parameter vector in the layout of [`UNet::layout`].
    pub params: Vec<f32>,
    meta: DenoiserMeta,
    gaussian: Option<ClTable>,
}

/// What [`Denoiser::vjp`] needs from [`Denoiser::forward_cached`].
pub struct DenoiserCache {
    dims: Dims4,
    sigma: Vec<f64>,
    unet: UNetCache<f32>,
}

impl Denoiser {
    /// A denoiser with freshly initialised parameters (`F ≡ 0`).
    ///
    /// `gaussian` is required for [`DenoiserKind::Hybrid`] and must be `None`
    /// for [`DenoiserKind::Pure`].
    pub fn new(
        config: UNetConfig,
        meta: DenoiserMeta,
        gaussian: Option<ClTable>,
        seed: u64,
    ) -> Result<Self> {
        let unet = UNet::new(config)?;
        let params = unet.init_params(seed);
        Self::from_parts(unet, params, meta, gaussian)
    }

    fn from_parts(
        unet: UNet,
        params: Vec<f32>,
        meta: DenoiserMeta,
        gaussian: Option<ClTable>,
    ) -> Result<Self> {
        check_len("params", unet.n_params(), params.len())?;
        if !(meta.sigma_data.is_finite() && meta.sigma_data > 0.0) {
            return Err(Error::invalid(
                "sigma_data",
                format!("must be finite and positive, got {}", meta.sigma_data),
            ));
        }
        if !(meta.pixel_arcmin.is_finite() && meta.pixel_arcmin > 0.0) {
            return Err(Error::invalid(
                "pixel_arcmin",
                format!("must be finite and positive, got {}", meta.pixel_arcmin),
            ));
        }
        if let Some(s) = meta.sigma_max {
            if !(s.is_finite() && s > 0.0) {
                return Err(Error::invalid(
                    "sigma_max",
                    format!("must be finite and positive, got {s}"),
                ));
            }
        }
        match (meta.kind, &gaussian) {
            (DenoiserKind::Hybrid, None) => {
                return Err(Error::invalid(
                    "gaussian",
                    "a hybrid denoiser needs the C_ell table of its Gaussian part",
                ))
            }
            (DenoiserKind::Pure, Some(_)) => {
                return Err(Error::invalid(
                    "gaussian",
                    "a pure denoiser has no Gaussian part",
                ))
            }
            _ => {}
        }
        crate::error::check_finite("params", &params)?;
        // The file stores the table in f32: round it here too, so that a saved
        // and reloaded denoiser (and a resumed training run) is bitwise the same.
        let gaussian = gaussian
            .map(|t| {
                let r = |v: &[f64]| v.iter().map(|&x| x as f32 as f64).collect::<Vec<_>>();
                ClTable::new(r(t.ell()), r(t.cl()))
            })
            .transpose()?;
        Ok(Denoiser {
            unet,
            params,
            meta,
            gaussian,
        })
    }

    /// The network.
    pub fn unet(&self) -> &UNet {
        &self.unet
    }

    /// The scalar description.
    pub fn meta(&self) -> &DenoiserMeta {
        &self.meta
    }

    /// Replaces the free-text description.
    pub fn set_description(&mut self, text: impl Into<String>) {
        self.meta.description = text.into();
    }

    /// Sets the largest trusted noise level (see [`DenoiserMeta::sigma_max`]).
    pub fn set_sigma_max(&mut self, sigma_max: f64) {
        self.meta.sigma_max = Some(sigma_max);
    }

    /// The Gaussian `C_ℓ` of a hybrid denoiser.
    pub fn gaussian(&self) -> Option<&ClTable> {
        self.gaussian.as_ref()
    }

    /// The Gaussian base denoiser on `grid` (hybrid only).
    pub fn gaussian_prior(&self, grid: crate::grid::Grid) -> Result<Option<GaussianPrior>> {
        self.gaussian
            .as_ref()
            .map(|t| GaussianPrior::from_cl(grid, t))
            .transpose()
    }

    /// `base(x; σ_i)` per batch item.
    fn base(
        &self,
        x: &[f32],
        dims: Dims4,
        sigma: &[f64],
        gauss: Option<&GaussianPrior>,
    ) -> Result<Vec<f32>> {
        let plane = dims.plane();
        let mut out = vec![0.0f32; x.len()];
        for (i, (xi, oi)) in x.chunks(plane).zip(out.chunks_mut(plane)).enumerate() {
            match (self.meta.kind, gauss) {
                (DenoiserKind::Pure, _) => {
                    let c = EdmScaling::new(sigma[i], self.meta.sigma_data).c_skip as f32;
                    oi.iter_mut().zip(xi).for_each(|(o, v)| *o = c * v);
                }
                (DenoiserKind::Hybrid, Some(g)) => g.denoise(xi, sigma[i], oi)?,
                (DenoiserKind::Hybrid, None) => {
                    return Err(Error::invalid(
                        "gaussian",
                        "a hybrid denoiser needs its Gaussian prior on the map's grid",
                    ))
                }
            }
        }
        Ok(out)
    }

    fn scalings(&self, sigma: &[f64]) -> Vec<EdmScaling> {
        sigma
            .iter()
            .map(|&s| EdmScaling::new(s, self.meta.sigma_data))
            .collect()
    }

    fn check_gauss(&self, dims: Dims4, gauss: Option<&GaussianPrior>) -> Result<()> {
        if let Some(g) = gauss {
            let gr = g.grid();
            if gr.nx != dims.w || gr.ny != dims.h {
                return Err(Error::shape("gaussian", [dims.h, dims.w], [gr.ny, gr.nx]));
            }
        }
        Ok(())
    }

    /// `D(x; σ_i)` for a batch `[n][h][w]` with one σ per item, using the
    /// parameters `params` (the model's own, an EMA copy, ...).
    pub fn forward_cached(
        &self,
        params: &[f32],
        x: &[f32],
        dims: Dims4,
        sigma: &[f64],
        gauss: Option<&GaussianPrior>,
    ) -> Result<(Vec<f32>, DenoiserCache)> {
        self.unet.check_input(dims, x.len(), sigma.len())?;
        self.check_gauss(dims, gauss)?;
        let plane = dims.plane();
        let sc = self.scalings(sigma);
        let xin = scaled_items(x, plane, sc.iter().map(|c| c.c_in));
        let (f, cache) = self.unet.forward_cached(params, &xin, dims, sigma)?;
        let mut d = self.base(x, dims, sigma, gauss)?;
        add_scaled_items(&mut d, &f, plane, sc.iter().map(|c| c.c_out));
        Ok((
            d,
            DenoiserCache {
                dims,
                sigma: sigma.to_vec(),
                unet: cache,
            },
        ))
    }

    /// `D(x; σ_i)` with the model's parameters.
    pub fn denoise(
        &self,
        x: &[f32],
        dims: Dims4,
        sigma: &[f64],
        gauss: Option<&GaussianPrior>,
    ) -> Result<Vec<f32>> {
        Ok(self.forward_cached(&self.params, x, dims, sigma, gauss)?.0)
    }

    /// `J_D(x)ᵀ v` for the forward pass in `cache`; if `grads` is given, also
    /// adds `J_θ D(x)ᵀ v` (the parameter gradient of `<v, D>`) into it.
    pub fn vjp(
        &self,
        params: &[f32],
        cache: &DenoiserCache,
        v: &[f32],
        gauss: Option<&GaussianPrior>,
        grads: Option<&mut [f32]>,
    ) -> Result<Vec<f32>> {
        let dims = cache.dims;
        check_len("v", dims.len(), v.len())?;
        let plane = dims.plane();
        let sc = self.scalings(&cache.sigma);
        let dy = scaled_items(v, plane, sc.iter().map(|c| c.c_out));
        let dxin = self.unet.backward(params, &cache.unet, &dy, grads)?;
        let mut out = self.base(v, dims, &cache.sigma, gauss)?;
        add_scaled_items(&mut out, &dxin, plane, sc.iter().map(|c| c.c_in));
        Ok(out)
    }

    /// The weights file contents (tensors and metadata).
    pub fn to_weights(&self, params: &[f32]) -> Result<Weights> {
        let mut w = network_weights(&self.unet, params, DENOISER_FORMAT, &self.meta)?;
        if let Some(t) = &self.gaussian {
            let m = t.ell().len();
            w.insert(
                "gaussian.ell",
                &[m],
                t.ell().iter().map(|&v| v as f32).collect(),
            )?;
            w.insert(
                "gaussian.cl",
                &[m],
                t.cl().iter().map(|&v| v as f32).collect(),
            )?;
        }
        Ok(w)
    }

    /// Reads a denoiser from weights in the format above.
    pub fn from_weights(w: &Weights) -> Result<Self> {
        let (unet, params, meta): (UNet, Vec<f32>, DenoiserMeta) =
            read_network(w, DENOISER_FORMAT, "denoiser")?;
        let gaussian = match meta.kind {
            DenoiserKind::Pure => None,
            DenoiserKind::Hybrid => {
                let ell = w.tensors.get("gaussian.ell").ok_or_else(|| {
                    Error::invalid("weights", "hybrid denoiser without `gaussian.ell`")
                })?;
                let cl = w.get("gaussian.cl", &ell.shape)?;
                Some(ClTable::new(
                    ell.data.iter().map(|&v| v as f64).collect(),
                    cl.iter().map(|&v| v as f64).collect(),
                )?)
            }
        };
        Self::from_parts(unet, params, meta, gaussian)
    }

    /// Writes the denoiser (with `params`, e.g. the EMA copy) to a safetensors file,
    /// adding `extra` metadata entries.
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

    /// Loads a denoiser written by [`Denoiser::save`]; errors carry the path.
    pub fn load(path: &Path) -> Result<Self> {
        Self::from_bytes(
            &std::fs::read(path).map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })?,
            path,
        )
    }

    /// Parses the bytes of a denoiser file (e.g. one embedded in a binary);
    /// `path` labels errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let w = Weights::from_bytes(bytes, path)?;
        Self::from_weights(&w).map_err(|e| match e {
            Error::Format { reason, .. } => Error::Format {
                path: path.to_path_buf(),
                reason,
            },
            other => other,
        })
    }
}

/// `x` with batch item `i` (of `plane` pixels) multiplied by `factors[i]`.
fn scaled_items(x: &[f32], plane: usize, factors: impl Iterator<Item = f64>) -> Vec<f32> {
    let mut out = x.to_vec();
    for (f, chunk) in factors.zip(out.chunks_mut(plane)) {
        let f = f as f32;
        chunk.iter_mut().for_each(|v| *v *= f);
    }
    out
}

/// `acc[i] += factors[i] · y[i]` per batch item.
fn add_scaled_items(acc: &mut [f32], y: &[f32], plane: usize, factors: impl Iterator<Item = f64>) {
    for (f, (a, b)) in factors.zip(acc.chunks_mut(plane).zip(y.chunks(plane))) {
        let f = f as f32;
        a.iter_mut().zip(b).for_each(|(a, b)| *a += f * b);
    }
}

/// A network's weights: its parameters under their names, and the metadata
/// `format`, `architecture` (the [`UNetConfig`]) and `denoiser` (`meta`).
pub(crate) fn network_weights<M: Serialize>(
    unet: &UNet,
    params: &[f32],
    format: &str,
    meta: &M,
) -> Result<Weights> {
    let mut w = Weights::new();
    unet.to_weights(params, &mut w, "")?;
    w.metadata.insert("format".into(), format.into());
    w.metadata
        .insert("architecture".into(), to_json(unet.config())?);
    w.metadata.insert("denoiser".into(), to_json(meta)?);
    Ok(w)
}

/// Reads back what [`network_weights`] wrote, checking the `format`
/// (`what` names the kind of file in errors).
pub(crate) fn read_network<M: for<'de> Deserialize<'de>>(
    w: &Weights,
    format: &str,
    what: &str,
) -> Result<(UNet, Vec<f32>, M)> {
    let meta_str = |key: &str| -> Result<&String> {
        w.metadata.get(key).ok_or_else(|| Error::Format {
            path: Default::default(),
            reason: format!("weights have no `{key}` metadata: not a lensdiff {what}"),
        })
    };
    let found = meta_str("format")?;
    if found != format {
        return Err(Error::Format {
            path: Default::default(),
            reason: format!("format {found:?}, expected {format:?}"),
        });
    }
    let config: UNetConfig = from_json("architecture", meta_str("architecture")?)?;
    let meta: M = from_json("denoiser", meta_str("denoiser")?)?;
    let unet = UNet::new(config)?;
    let params = unet.params_from_weights(w, "")?;
    Ok((unet, params, meta))
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::invalid("json", e.to_string()))
}

pub(crate) fn from_json<T: for<'de> Deserialize<'de>>(key: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| Error::Format {
        path: Default::default(),
        reason: format!("bad `{key}` metadata: {e}"),
    })
}
