//! Joint priors of cosmological parameters `theta` and the convergence map
//! `kappa` (issue #15; the JADE approach of Remy, Chang & Willett 2026): one
//! diffusion over the joint state `x = (u, k)`,
//!
//! - `u = (theta - mu) / s`: the parameters standardised by their prior's
//!   mean and std ([`ParamSpace`]);
//! - `k = kappa / sigma_d`: the map in units of a fixed data scale;
//!
//! with one noise level for both parts, `x_sigma = x + sigma n`. A joint
//! denoiser returns `(u*, k*) = E[(u, k) | x_sigma]`, and the score of the
//! diffused joint distribution is `(D(x_sigma) - x_sigma) / sigma²` on both
//! parts (Tweedie).
//!
//! - [`rings`]: the grid's Fourier modes grouped by `|ell|` (a Gaussian
//!   field's statistics per ring);
//! - [`table`]: the pixel power per ring as a function of `u`, tabulated once
//!   on a grid over the prior box and interpolated;
//! - [`quadrature`]: adaptive Gauss–Hermite and brute-force tensor grids over
//!   `u`;
//! - [`gaussian`]: the exact Gaussian joint denoiser, with an optional
//!   observation of the convergence (the exact joint *posterior* denoiser);
//! - [`neural`]: the learned joint denoiser (pure, or a residual on the
//!   Gaussian one) and its file format;
//! - [`train`]: training it on `(theta, kappa)` pairs, simulated or read
//!   from files.

pub mod gaussian;
pub mod neural;
pub mod quadrature;
pub mod rings;
pub mod table;
pub mod train;

pub use gaussian::{GaussianJoint, JointDenoised, Linearisation, Observation};
pub use neural::{CosmologyRecipe, JointDenoiser, JointDenoiserMeta, NeuralJoint};
pub use rings::Rings;
pub use table::SpectrumTable;

use std::path::Path;

use crate::cosmo::Cosmology;
use crate::error::{Error, Result};
use crate::grid::Grid;

/// A joint prior of parameters and map as the guided joint sampler uses it
/// (`sampler::joint_guided`): per chain, the denoiser `D(x_sigma) = E[(u, k)
/// | x_sigma]` with what its vector–Jacobian product needs, and that product.
/// Everything is in joint units ([module docs](self)).
pub trait JointPrior: Sync {
    /// Per-chain state carried from one noise level to the next (warm starts).
    type Chain: Default + Send;
    /// What [`JointPrior::vjp`] needs from the denoiser call at the same point.
    type Linear: Send;

    /// The parameters.
    fn space(&self) -> &ParamSpace;

    /// The grid of the maps.
    fn grid(&self) -> &Grid;

    /// The data scale `sigma_d` (`k = kappa / sigma_d`).
    fn sigma_d(&self) -> f64;

    /// The largest noise level the prior is trusted at (a learned prior's
    /// training range; samplers start at or below it), joint units.
    fn sigma_max(&self) -> Option<f64> {
        None
    }

    /// The map's Gaussian pixel power at `u` (half spectrum, convergence
    /// units), when the prior has a Gaussian model.
    fn gaussian_power(&self, u: &[f64]) -> Result<Option<Vec<f64>>>;

    /// `D(x_sigma)` for one chain, and its linearisation.
    fn denoise(
        &self,
        u_s: &[f64],
        k_s: &[f64],
        sigma: f64,
        chain: &mut Self::Chain,
    ) -> Result<(JointDenoised, Self::Linear)>;

    /// `(g_u, g_k) = J_D^T (v_u, v_k)` at the point of `lin`.
    fn vjp(&self, lin: &Self::Linear, v_u: &[f64], v_k: &[f64]) -> Result<(Vec<f64>, Vec<f64>)>;
}

/// The most parameters a joint model has.
pub const MAX_PARAMS: usize = crate::nn::unet::MAX_JOINT_PARAMS;

/// Named parameters with independent Gaussian priors `theta_i ~ N(mu_i,
/// s_i²)`, and the standardisation `u = (theta - mu) / s` (so `u ~ N(0, I)`
/// under the prior).
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpace {
    names: Vec<String>,
    mean: Vec<f64>,
    std: Vec<f64>,
}

impl ParamSpace {
    /// 1 to [`MAX_PARAMS`] parameters with distinct non-empty names, finite
    /// means and positive finite stds.
    pub fn new(names: &[&str], mean: &[f64], std: &[f64]) -> Result<Self> {
        let p = names.len();
        if p == 0 || p > MAX_PARAMS {
            return Err(Error::invalid(
                "params",
                format!("need 1 to {MAX_PARAMS} parameters, got {p}"),
            ));
        }
        if mean.len() != p || std.len() != p {
            return Err(Error::invalid(
                "params",
                format!("{p} names but {} means and {} stds", mean.len(), std.len()),
            ));
        }
        for (i, n) in names.iter().enumerate() {
            if n.is_empty() || names[..i].contains(n) {
                return Err(Error::invalid(
                    "params",
                    format!("parameter names must be distinct and non-empty: {names:?}"),
                ));
            }
            if !(mean[i].is_finite() && std[i].is_finite() && std[i] > 0.0) {
                return Err(Error::invalid(
                    "params",
                    format!(
                        "{n}: the prior needs a finite mean and a positive std, got N({}, {}²)",
                        mean[i], std[i]
                    ),
                ));
            }
        }
        Ok(ParamSpace {
            names: names.iter().map(|s| s.to_string()).collect(),
            mean: mean.to_vec(),
            std: std.to_vec(),
        })
    }

    /// The sbi_lens 128² benchmark's parameters and priors: `omega_c ~ N(0.3,
    /// 0.05²)`, `sigma8 ~ N(0.8, 0.05²)`.
    pub fn sbi_lens() -> Self {
        ParamSpace {
            names: vec!["omega_c".into(), "sigma8".into()],
            mean: vec![0.3, 0.8],
            std: vec![0.05, 0.05],
        }
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Always false (a space has at least one parameter).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The prior means.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// The prior stds.
    pub fn std(&self) -> &[f64] {
        &self.std
    }

    /// `u = (theta - mu) / s`.
    pub fn standardise(&self, theta: &[f64]) -> Vec<f64> {
        theta
            .iter()
            .zip(self.mean.iter().zip(&self.std))
            .map(|(t, (m, s))| (t - m) / s)
            .collect()
    }

    /// `theta = mu + s u`.
    pub fn theta(&self, u: &[f64]) -> Vec<f64> {
        u.iter()
            .zip(self.mean.iter().zip(&self.std))
            .map(|(u, (m, s))| m + s * u)
            .collect()
    }

    /// The parameters and priors of a JSON prior file: a list of
    /// `{"name": NAME, "mean": MEAN, "std": STD}` objects, in the order of
    /// the joint state, e.g.
    ///
    /// ```json
    /// [{"name": "omega_c", "mean": 0.3, "std": 0.05},
    ///  {"name": "sigma8", "mean": 0.8, "std": 0.05}]
    /// ```
    ///
    /// A list, not an object keyed by name, so that the order is the file's.
    /// Unknown keys are refused; the values are checked as in
    /// [`ParamSpace::new`]. `label` names the source in errors.
    pub fn from_json(text: &str, label: &Path) -> Result<Self> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Entry {
            name: String,
            mean: f64,
            std: f64,
        }
        let entries: Vec<Entry> = serde_json::from_str(text).map_err(|e| Error::Format {
            path: label.to_path_buf(),
            reason: format!(
                "not a parameter prior list [{{\"name\": NAME, \"mean\": MEAN, \"std\": STD}}, ...]: {e}"
            ),
        })?;
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        let mean: Vec<f64> = entries.iter().map(|e| e.mean).collect();
        let std: Vec<f64> = entries.iter().map(|e| e.std).collect();
        ParamSpace::new(&names, &mean, &std).map_err(|e| Error::Format {
            path: label.to_path_buf(),
            reason: match e {
                Error::InvalidArgument { reason, .. } => reason,
                other => other.to_string(),
            },
        })
    }

    /// [`ParamSpace::from_json`] of the file `path`.
    pub fn read_json(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        ParamSpace::from_json(&text, path)
    }

    /// `base` with the parameters set to `theta` (names as in
    /// [`set_cosmology_param`]).
    pub fn cosmology(&self, base: &Cosmology, theta: &[f64]) -> Result<Cosmology> {
        let mut c = *base;
        for (n, &v) in self.names.iter().zip(theta) {
            set_cosmology_param(&mut c, n, v)?;
        }
        c.validate()?;
        Ok(c)
    }
}

/// Sets one parameter of `c` by name: `omega_c`, `omega_b`, `h`, `n_s`,
/// `sigma8`, `w0`, `wa`.
pub fn set_cosmology_param(c: &mut Cosmology, name: &str, value: f64) -> Result<()> {
    let slot = match name {
        "omega_c" => &mut c.omega_c,
        "omega_b" => &mut c.omega_b,
        "h" => &mut c.h,
        "n_s" => &mut c.n_s,
        "sigma8" => &mut c.sigma8,
        "w0" => &mut c.w0,
        "wa" => &mut c.wa,
        other => {
            return Err(Error::invalid(
                "params",
                format!("unknown cosmological parameter `{other}` (omega_c, omega_b, h, n_s, sigma8, w0, wa)"),
            ))
        }
    };
    *slot = value;
    Ok(())
}
