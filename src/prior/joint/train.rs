//! Training a [`JointDenoiser`] on `(theta, kappa)` pairs by
//! denoising score matching on the joint state (issue #15, part 2; JADE,
//! Remy, Chang & Willett 2026), with the recipe of [`crate::prior::train`]
//! (EDM noise levels and weights, Adam, warm-up and cosine decay, gradient
//! clipping, EMA):
//!
//! ```text
//! u ~ N(0, I),  kappa ~ p(kappa | theta(u)),  k = kappa / sigma_d,  ln sigma ~ N(P_mean, P_std²)
//! L = E[ lambda(sigma) ( |D_k(x_sigma) - k|² / N_pix + |D_u(x_sigma) - u|² / p ) ],
//! lambda = 1 / c_out² = (sigma² + 1) / sigma²
//! ```
//!
//! Each part is averaged over its own elements, so the parameters weigh as
//! much as the map (summed over all `N_pix + p` numbers, the map would drown
//! the `p` parameters).
//!
//! Simulated pairs: `u` from Philox (stream `Training`, key 5, counter `t`),
//! the map of item `i` of step `t` is realisation `t·B + i` of the field at
//! `theta(u)`:
//! - [`JointData::Gaussian`]: a Gaussian field of the cosmology's `C_ell(theta)`
//!   (the spectrum table of the Gaussian joint prior);
//! - [`JointData::LogNormal`]: a log-normal field of the same spectrum, with
//!   a fixed shift `lambda`;
//! - [`JointData::SbiLens`]: the sbi_lens 128² log-normal model at
//!   `(omega_c, sigma8)`.
//!
//! Pairs from files ([`JointData::Pairs`], [`JointPairs`]): a stack of maps
//! and a theta table, one row per map. As in map-only training, the last
//! `heldout` pairs are kept out, and item `i` of step `t` is a random
//! `crop²` crop of a random training map (Philox key 0), its parameters the
//! map's row.
//!
//! Maps are flipped and rotated as in map-only training (the parameters are
//! invariant). A run depends only on its seed (and files), and a resumed run
//! continues bitwise.
//!
//! Held-out: `heldout` fixed pairs (simulated: `u` key 6, maps from
//! realisation `2^48`; files: the centre crops of the last `heldout` maps),
//! fixed noise per band `sigma_b = {0.03, 0.1, 0.3, 1, 3}` (joint units); the
//! MSE of `theta*` (in prior sds, i.e. of `u*`) and of `k*` (in `sigma_d²`),
//! for the network and for the exact Gaussian joint denoiser of the
//! denoiser's cosmology (also for pairs from files).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::neural::{joint_scaling, JointDenoiser};
use super::{GaussianJoint, ParamSpace};
use crate::error::{Error, Result};
use crate::fields::sbi_lens::SbiLens128;
use crate::fields::{gaussian_fields, LogNormal};
use crate::grid::Grid;
use crate::nn::{Dims4, Weights};
use crate::prior::denoiser::to_json;
use crate::prior::train::{
    augment, check_sbi_lens_grid, crop_picks, draw_sigmas, format_error, read_checkpoint,
    Optimiser, StepStats, TrainConfig, TrainState, HELDOUT_SIGMAS,
};
use crate::rng::{Philox, Stream};

/// First realisation of the held-out maps.
const HELDOUT_FIRST: u64 = 1 << 48;

/// Where the training pairs come from.
#[derive(Clone, Debug, PartialEq)]
pub enum JointData {
    /// Gaussian fields with the spectra of the denoiser's cosmology.
    Gaussian {
        /// Seed of the fields.
        seed: u64,
    },
    /// Log-normal fields whose spectrum is the cosmology's `C_ell(theta)` at
    /// each drawn `theta`: [`LogNormal`] (the construction of the map-only
    /// log-normal simulator, [`crate::prior::train::TrainingData::LogNormal`])
    /// of the Gaussian joint prior's pixel power at `u`.
    ///
    /// The shift is the one fixed `lambda` for every `theta`, as the map-only
    /// log-normal simulator takes it: a constant given by the user
    /// (`--lambda` of `lensdiff train` and `lensdiff simulate`, default 0.03
    /// there), not a function of the parameters. (The sbi_lens model's
    /// shift table `lambda(Omega_m, sigma_8)` belongs to that model:
    /// [`JointData::SbiLens`].) A shift too small for a drawn spectrum
    /// (`1 + xi/lambda² <= 0`) is an error of the step that draws it.
    LogNormal {
        /// Seed of the fields.
        seed: u64,
        /// Shift `lambda > 0`: every map is `>= -lambda`.
        lambda: f64,
    },
    /// The sbi_lens 128² log-normal model (parameters `omega_c`, `sigma8`).
    SbiLens {
        /// Seed of the fields.
        seed: u64,
    },
    /// Pairs read from files.
    Pairs(JointPairs),
}

impl JointData {
    fn name(&self) -> String {
        match self {
            JointData::Gaussian { seed } => format!("joint Gaussian fields, seed {seed}"),
            JointData::LogNormal { seed, lambda } => {
                format!("joint log-normal fields (lambda {lambda}), seed {seed}")
            }
            JointData::SbiLens { seed } => format!("joint sbi_lens log-normal fields, seed {seed}"),
            JointData::Pairs(p) => {
                // the names sorted: a table's column order does not matter
                let mut names = p.names.clone();
                names.sort();
                format!(
                    "joint pairs: {} maps {}x{} with ({})",
                    p.count,
                    p.ny,
                    p.nx,
                    names.join(", ")
                )
            }
        }
    }
}

/// `(theta, kappa)` pairs read from files: a stack of convergence maps
/// `[count][ny][nx]` and one parameter vector per map (physical units),
/// with the parameters' names. The names are matched to the denoiser's
/// parameter space by name, so the table's column order is free.
#[derive(Clone, Debug, PartialEq)]
pub struct JointPairs {
    maps: Vec<f32>,
    count: usize,
    ny: usize,
    nx: usize,
    names: Vec<String>,
    theta: Vec<f64>,
    pixel_arcmin: Option<f64>,
}

impl JointPairs {
    /// Pairs from a row-major stack `maps` `[count][ny][nx]` and a table
    /// `theta` `[count][p]` whose columns are `names` (`p` of them).
    /// Refuses an empty stack, a table without one row per map, repeated or
    /// empty names and non-finite values (naming the map and pixel, or the
    /// row and parameter).
    pub fn new<S: AsRef<str>>(
        maps: Vec<f32>,
        count: usize,
        ny: usize,
        nx: usize,
        names: &[S],
        theta: Vec<f64>,
    ) -> Result<Self> {
        if count == 0 || ny == 0 || nx == 0 {
            return Err(Error::invalid(
                "maps",
                format!("the stack is empty ({count} maps of {ny}x{nx})"),
            ));
        }
        crate::error::check_len("maps", &maps, count * ny * nx)?;
        let names: Vec<String> = names
            .iter()
            .map(|n| n.as_ref().trim().to_string())
            .collect();
        let p = names.len();
        if p == 0 {
            return Err(Error::invalid("theta", "the theta table has no columns"));
        }
        for (i, n) in names.iter().enumerate() {
            if n.is_empty() || names[..i].contains(n) {
                return Err(Error::invalid(
                    "theta",
                    format!("the parameter names must be distinct and non-empty: {names:?}"),
                ));
            }
        }
        if !theta.len().is_multiple_of(p) {
            return Err(Error::invalid(
                "theta",
                format!(
                    "{} values do not make rows of the {p} parameters {names:?}",
                    theta.len()
                ),
            ));
        }
        let rows = theta.len() / p;
        if rows != count {
            return Err(Error::invalid(
                "theta",
                format!("the theta table has {rows} rows for {count} maps (one row per map)"),
            ));
        }
        let n = ny * nx;
        if let Some(i) = maps.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(
                "maps",
                format!(
                    "non-finite value {} in map {} at pixel ({}, {})",
                    maps[i],
                    i / n,
                    (i % n) / nx,
                    i % nx
                ),
            ));
        }
        if let Some(i) = theta.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(
                "theta",
                format!(
                    "non-finite value {} of `{}` in row {} (map {})",
                    theta[i],
                    names[i % p],
                    i / p,
                    i / p
                ),
            ));
        }
        Ok(JointPairs {
            maps,
            count,
            ny,
            nx,
            names,
            theta,
            pixel_arcmin: None,
        })
    }

    /// Records the maps' pixel size (arcmin), e.g. from a FITS file's WCS:
    /// training then refuses a denoiser of another pixel.
    pub fn with_pixel_arcmin(mut self, pixel_arcmin: f64) -> Result<Self> {
        if !(pixel_arcmin.is_finite() && pixel_arcmin > 0.0) {
            return Err(Error::invalid(
                "pixel_arcmin",
                format!("must be finite and positive, got {pixel_arcmin}"),
            ));
        }
        self.pixel_arcmin = Some(pixel_arcmin);
        Ok(self)
    }

    /// Reads the maps (FITS or npy, `[count][ny][nx]` or one `[ny][nx]`
    /// map, as map-only training reads them; a FITS file's WCS gives the
    /// pixel size) and the theta table:
    ///
    /// - `.csv`: a header row of parameter names, then one row of numbers
    ///   per map, comma-separated (blank lines and lines starting with `#`
    ///   are skipped);
    /// - `.npy`: `[count][p]` (or `[count]` for one parameter), the columns
    ///   named by `npy_names` (the parameter space's names, in its order).
    ///
    /// Every error names the file.
    pub fn read<S: AsRef<str>>(maps: &Path, theta: &Path, npy_names: &[S]) -> Result<Self> {
        let stack = crate::io::read_stack(maps)?;
        let (count, ny, nx) = stack.dim();
        let data: Vec<f32> = stack.iter().copied().collect();
        let fits = {
            let s = maps.to_string_lossy().to_ascii_lowercase();
            let s = s.strip_suffix(".gz").unwrap_or(&s);
            [".fits", ".fit", ".fts"].iter().any(|e| s.ends_with(e))
        };
        let pixel = if fits {
            crate::io::fits::read_wcs(maps)?.map(|w| w.cdelt[1].abs() * 60.0)
        } else {
            None
        };
        let (names, values) = read_theta_table(theta, npy_names)?;
        let in_files = |e: Error| match e {
            Error::InvalidArgument { name, reason } => Error::invalid(
                name,
                format!("{} and {}: {reason}", maps.display(), theta.display()),
            ),
            other => other,
        };
        let pairs = JointPairs::new(data, count, ny, nx, &names, values).map_err(in_files)?;
        match pixel {
            Some(p) => pairs
                .with_pixel_arcmin(p)
                .map_err(|e| format_error(maps, e)),
            None => Ok(pairs),
        }
    }

    /// Number of pairs.
    pub fn count(&self) -> usize {
        self.count
    }

    /// `(ny, nx)` of the maps.
    pub fn map_shape(&self) -> (usize, usize) {
        (self.ny, self.nx)
    }

    /// The table's parameter names (its column order).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The table, `[count][p]` in the order of [`JointPairs::names`].
    pub fn theta(&self) -> &[f64] {
        &self.theta
    }

    /// The maps' pixel size when the file said (FITS WCS).
    pub fn pixel_arcmin(&self) -> Option<f64> {
        self.pixel_arcmin
    }

    /// The pixel standard deviation of all the maps (convergence).
    pub fn pixel_std(&self) -> f64 {
        let n = self.maps.len() as f64;
        let mean = self.maps.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = self
            .maps
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        var.sqrt()
    }

    /// The table as `u = (theta - mu) / s` in the order of `space`: every
    /// column must be a parameter of the space and every parameter a column.
    pub fn standardised(&self, space: &ParamSpace) -> Result<Vec<f64>> {
        let want = space.names();
        if let Some(n) = self.names.iter().find(|n| !want.contains(n)) {
            return Err(Error::invalid(
                "theta",
                format!(
                    "unknown parameter `{n}` in the theta table: the parameters are ({})",
                    want.join(", ")
                ),
            ));
        }
        let mut cols = Vec::with_capacity(want.len());
        for w in want {
            let j = self.names.iter().position(|n| n == w).ok_or_else(|| {
                Error::invalid(
                    "theta",
                    format!(
                        "the theta table has no column `{w}` (its columns: {})",
                        self.names.join(", ")
                    ),
                )
            })?;
            cols.push(j);
        }
        let q = self.names.len();
        let mut u = Vec::with_capacity(self.count * want.len());
        for row in self.theta.chunks(q) {
            let t: Vec<f64> = cols.iter().map(|&j| row[j]).collect();
            u.extend(space.standardise(&t));
        }
        Ok(u)
    }

    /// `crop²` crops `(map, y0, x0)` of the stack.
    fn crops(&self, picks: &[(usize, usize, usize)], crop: usize) -> Vec<f32> {
        let (ny, nx) = (self.ny, self.nx);
        let mut out = Vec::with_capacity(picks.len() * crop * crop);
        for &(k, y0, x0) in picks {
            let m = &self.maps[k * ny * nx..][..ny * nx];
            for y in 0..crop {
                out.extend_from_slice(&m[(y0 + y) * nx + x0..][..crop]);
            }
        }
        out
    }
}

/// The columns and values of a theta table (`.csv` with a header of names,
/// or `.npy` `[n][p]` named by `npy_names`).
fn read_theta_table<S: AsRef<str>>(
    path: &Path,
    npy_names: &[S],
) -> Result<(Vec<String>, Vec<f64>)> {
    let lower = path.to_string_lossy().to_ascii_lowercase();
    let bad = |reason: String| Error::Format {
        path: path.to_path_buf(),
        reason,
    };
    if lower.ends_with(".npy") {
        let a = crate::io::npy::read_f64(path)?;
        let names: Vec<String> = npy_names.iter().map(|n| n.as_ref().to_string()).collect();
        let p = names.len();
        let cols = match a.shape() {
            [_, c] => *c,
            [_] => 1,
            other => return Err(bad(format!("a theta table is [n][p], got shape {other:?}"))),
        };
        if cols != p {
            return Err(bad(format!(
                "the theta table has {cols} columns, the parameters are {p} ({}); \
                 an npy table's columns are the parameters in their order",
                names.join(", ")
            )));
        }
        return Ok((names, a.iter().copied().collect()));
    }
    if !lower.ends_with(".csv") {
        return Err(Error::invalid(
            "theta",
            format!(
                "{}: a theta table is .csv (a header row of parameter names) or .npy [n][p]",
                path.display()
            ),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    let (_, header) = lines.next().ok_or_else(|| {
        bad("empty theta table (expected a header row of parameter names)".into())
    })?;
    let split = |l: &str| -> Vec<String> {
        l.split(',')
            .map(|v| v.trim().trim_matches('"').trim().to_string())
            .collect()
    };
    let names = split(header);
    if names.iter().all(|n| n.parse::<f64>().is_ok()) {
        return Err(bad(format!(
            "the first row must be a header of parameter names, got `{header}`"
        )));
    }
    let mut values = Vec::new();
    for (line, l) in lines {
        let row = split(l);
        if row.len() != names.len() {
            return Err(bad(format!(
                "line {line} has {} values, the header has {} ({})",
                row.len(),
                names.len(),
                names.join(", ")
            )));
        }
        for (v, n) in row.iter().zip(&names) {
            values.push(
                v.parse::<f64>().map_err(|_| {
                    bad(format!("line {line}, column `{n}`: `{v}` is not a number"))
                })?,
            );
        }
    }
    Ok((names, values))
}

/// Held-out losses at one noise level (joint units).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct JointBandLoss {
    /// Noise level sigma (joint units).
    pub sigma: f64,
    /// Mean squared error of `u*` per parameter (in prior standard deviations²).
    pub mse_u: f64,
    /// Mean squared error of `k*` per pixel (in `sigma_d²`).
    pub mse_k: f64,
}

/// A joint training run.
pub struct JointTrainer {
    denoiser: JointDenoiser,
    config: TrainConfig,
    data: JointData,
    grid: Grid,
    /// The Gaussian joint prior of the denoiser's cosmology on the crop grid
    /// (the hybrid's base, the Gaussian fields' spectra, the reference).
    gauss: GaussianJoint,
    step: u64,
    opt: Optimiser,
    /// The parameters of pairs from files, standardised, in the space's order.
    pairs_u: Vec<f64>,
    heldout_u: Vec<f64>,
    heldout_k: Vec<f64>,
}

impl JointTrainer {
    /// A new run from the denoiser's current parameters; the crop is the
    /// training grid (`crop²` maps of the denoiser's pixel), the denoiser
    /// needs its cosmology ([`super::JointDenoiserMeta::gaussian`]).
    ///
    /// Pairs from files must have maps at least `crop` on a side, more than
    /// `heldout` of them, a column per parameter of the denoiser (by name)
    /// and, when the files gave a pixel size, the denoiser's pixel.
    pub fn new(denoiser: JointDenoiser, data: JointData, config: TrainConfig) -> Result<Self> {
        let grid = config.crop_grid(denoiser.unet().config(), denoiser.meta().pixel_arcmin)?;
        let mut pairs_u = Vec::new();
        match &data {
            JointData::SbiLens { .. } => {
                check_sbi_lens_grid(&grid)?;
                let names = denoiser.space().names();
                if names != ["omega_c", "sigma8"] {
                    return Err(Error::invalid(
                        "params",
                        format!("the sbi_lens model varies omega_c and sigma8, not {names:?}"),
                    ));
                }
            }
            JointData::Pairs(pairs) => {
                let (crop, (ny, nx)) = (config.crop, pairs.map_shape());
                if ny < crop || nx < crop {
                    return Err(Error::invalid(
                        "crop",
                        format!("crop {crop} is larger than the {ny}x{nx} maps"),
                    ));
                }
                if pairs.count() <= config.heldout {
                    return Err(Error::invalid(
                        "heldout",
                        format!(
                            "{} held-out pairs leave none of the {} pairs for training",
                            config.heldout,
                            pairs.count()
                        ),
                    ));
                }
                if let Some(px) = pairs.pixel_arcmin() {
                    if (px / grid.pixel_arcmin - 1.0).abs() > 1e-6 {
                        return Err(Error::invalid(
                            "pixel_arcmin",
                            format!(
                                "the maps' pixels are {px}' (WCS), the denoiser's are {}'",
                                grid.pixel_arcmin
                            ),
                        ));
                    }
                }
                pairs_u = pairs.standardised(denoiser.space())?;
            }
            JointData::Gaussian { .. } | JointData::LogNormal { .. } => {}
        }
        let gauss = denoiser.gaussian(&grid)?.ok_or_else(|| {
            Error::invalid(
                "gaussian",
                "joint training needs the cosmology of the spectra in the denoiser's description",
            )
        })?;
        let opt = Optimiser::new(&denoiser.params);
        let mut t = JointTrainer {
            denoiser,
            config,
            data,
            grid,
            gauss,
            step: 0,
            opt,
            pairs_u,
            heldout_u: Vec::new(),
            heldout_k: Vec::new(),
        };
        let (u, maps) = t.heldout_pairs_raw()?;
        t.heldout_k = t.to_joint_units(&maps);
        t.heldout_u = u;
        Ok(t)
    }

    /// The held-out pairs `(u, k)` in joint units: `[heldout][p]` and
    /// `[heldout][crop][crop]`.
    pub fn heldout_pairs(&self) -> (&[f64], &[f64]) {
        (&self.heldout_u, &self.heldout_k)
    }

    /// The held-out `u` and maps (convergence): the centre crops of the last
    /// `heldout` pairs from files, or dedicated simulated pairs.
    fn heldout_pairs_raw(&self) -> Result<(Vec<f64>, Vec<f32>)> {
        let h = self.config.heldout;
        match &self.data {
            JointData::Pairs(pairs) => {
                let (c, (ny, nx)) = (self.config.crop, pairs.map_shape());
                let picks: Vec<_> = (pairs.count() - h..pairs.count())
                    .map(|k| (k, (ny - c) / 2, (nx - c) / 2))
                    .collect();
                Ok((self.rows_u(&picks), pairs.crops(&picks, c)))
            }
            _ => {
                let u = self.draw_u(6, 0, h);
                let maps = self.maps(&u, HELDOUT_FIRST)?;
                Ok((u, maps))
            }
        }
    }

    /// The clean pairs `(u, maps)` of step `t` (maps before augmentation).
    fn batch(&self, t: u64) -> Result<(Vec<f64>, Vec<f32>)> {
        let b = self.config.batch;
        match &self.data {
            JointData::Pairs(pairs) => {
                // the crops of a stack, as map-only training picks them
                let train = pairs.count() - self.config.heldout;
                let picks = crop_picks(&self.config, t, train, pairs.map_shape());
                Ok((self.rows_u(&picks), pairs.crops(&picks, self.config.crop)))
            }
            _ => {
                let u = self.draw_u(5, t, b);
                let maps = self.maps(&u, t * b as u64)?;
                Ok((u, maps))
            }
        }
    }

    /// The standardised parameters of the picked pairs from files.
    fn rows_u(&self, picks: &[(usize, usize, usize)]) -> Vec<f64> {
        let p = self.denoiser.space().len();
        picks
            .iter()
            .flat_map(|&(k, _, _)| self.pairs_u[k * p..][..p].iter().copied())
            .collect()
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Steps taken so far.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The training grid.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// The Gaussian joint prior on the training grid.
    pub fn gaussian(&self) -> &GaussianJoint {
        &self.gauss
    }

    /// The denoiser with the raw parameters.
    pub fn denoiser(&self) -> &JointDenoiser {
        &self.denoiser
    }

    /// The denoiser with the EMA parameters, `sigma_max` set to the training
    /// range (in joint units: `exp(P_mean + 2.5 P_std)`).
    pub fn ema_denoiser(&self) -> JointDenoiser {
        let mut d = self.denoiser.clone();
        d.params = self.opt.ema.clone();
        d.set_sigma_max(self.config.sigma_max(1.0));
        d
    }

    /// `count` standard normal parameter vectors (Philox key `key`, counter `t`).
    fn draw_u(&self, key: u64, t: u64, count: usize) -> Vec<f64> {
        let mut u = vec![0.0f64; count * self.denoiser.space().len()];
        Philox::new(self.config.seed, Stream::Training, key, t).fill_normal_f64(&mut u);
        u
    }

    /// One map per parameter vector of `u`, realisations `first + i` (convergence).
    fn maps(&self, u: &[f64], first: u64) -> Result<Vec<f32>> {
        let p = self.denoiser.space().len();
        let mut out = Vec::with_capacity(u.len() / p * self.grid.len());
        for (i, ui) in u.chunks(p).enumerate() {
            let r = first + i as u64;
            match &self.data {
                JointData::Gaussian { seed } => {
                    let power = self.gauss.prior_power(ui)?;
                    out.extend(gaussian_fields(&self.grid, &power, *seed, r, 1)?);
                }
                JointData::LogNormal { seed, lambda } => {
                    let power = self.gauss.prior_power(ui)?;
                    let field = LogNormal::new(&self.grid, &power, *lambda)?;
                    out.extend(field.sample(&self.grid, *seed, r, 1)?);
                }
                JointData::SbiLens { seed } => {
                    let theta = self.denoiser.space().theta(ui);
                    out.extend(SbiLens128::new(theta[0], theta[1])?.sample(*seed, r, 1)?);
                }
                JointData::Pairs(_) => {
                    return Err(Error::invalid("data", "pairs from files are not simulated"))
                }
            }
        }
        Ok(out)
    }

    fn to_joint_units(&self, maps: &[f32]) -> Vec<f64> {
        let sd = self.denoiser.meta().sigma_d;
        maps.iter().map(|&v| v as f64 / sd).collect()
    }

    /// One optimiser step.
    pub fn step(&mut self) -> Result<StepStats> {
        let t = self.step;
        let cfg = &self.config;
        let (b, n) = (cfg.batch, self.grid.len());
        let p = self.denoiser.space().len();
        let (u, mut maps) = self.batch(t)?;
        augment(cfg, t, &mut maps);
        let k = self.to_joint_units(&maps);
        let sigma = draw_sigmas(cfg, t);
        let mut z = vec![0.0f64; b * (n + p)];
        Philox::new(cfg.seed, Stream::Training, 2, t).fill_normal_f64(&mut z);
        let (zk, zu) = z.split_at(b * n);
        let k_s: Vec<f64> = k
            .iter()
            .zip(zk)
            .enumerate()
            .map(|(i, (v, e))| v + sigma[i / n] * e)
            .collect();
        let u_s: Vec<f64> = u
            .iter()
            .zip(zu)
            .enumerate()
            .map(|(i, (v, e))| v + sigma[i / p] * e)
            .collect();
        let dims = Dims4::new(b, 1, self.grid.ny, self.grid.nx);
        let base = Some(&self.gauss).filter(|_| self.is_hybrid());
        let dn = &self.denoiser;
        let (d, cache) =
            dn.forward_cached(&dn.params, &u_s, &k_s, dims, &sigma, base, &mut [], false)?;
        // dL/dD_k = 2 lambda (D_k - k) / (B N), dL/dD_u = 2 lambda (D_u - u) / (B p)
        let mut loss = 0.0f64;
        let mut v_k = vec![0.0f64; b * n];
        let mut v_u = vec![0.0f64; b * p];
        for (i, &s) in sigma.iter().enumerate() {
            let lam = joint_scaling(s).loss_weight();
            for j in i * n..(i + 1) * n {
                let r = d.k[j] - k[j];
                loss += lam * r * r / n as f64;
                v_k[j] = 2.0 * lam * r / (b * n) as f64;
            }
            for j in i * p..(i + 1) * p {
                let r = d.u[j] - u[j];
                loss += lam * r * r / p as f64;
                v_u[j] = 2.0 * lam * r / (b * p) as f64;
            }
        }
        loss /= b as f64;
        if !loss.is_finite() {
            return Err(Error::invalid(
                "training",
                format!("the loss became non-finite at step {t}; lower the learning rate"),
            ));
        }
        let mut g = vec![0.0f32; dn.params.len()];
        dn.param_gradient(&dn.params, &cache, &v_u, &v_k, &mut g)?;
        let (grad_norm, lr) = self.opt.update(&mut self.denoiser.params, &g, t, cfg);
        self.step += 1;
        Ok(StepStats {
            step: t,
            loss,
            grad_norm,
            lr,
        })
    }

    fn is_hybrid(&self) -> bool {
        self.denoiser.meta().kind == crate::prior::DenoiserKind::Hybrid
    }

    /// Runs until `config.steps`, calling `progress` with each step and the
    /// pairs per second.
    pub fn run(&mut self, mut progress: impl FnMut(&StepStats, f64)) -> Result<()> {
        let _release = crate::nn::workspace::ReleaseOnDrop;
        let start = Instant::now();
        let first = self.step;
        while self.step < self.config.steps {
            let s = self.step()?;
            let pairs = (self.step - first) as f64 * self.config.batch as f64;
            progress(&s, pairs / start.elapsed().as_secs_f64().max(1e-9));
        }
        Ok(())
    }

    /// The held-out noisy states of band `bi`: `(u_sigma, k_sigma)`.
    fn heldout_noisy(&self, bi: usize, sigma: f64) -> (Vec<f64>, Vec<f64>) {
        let (nu, nk) = (self.heldout_u.len(), self.heldout_k.len());
        let mut z = vec![0.0f64; nk + nu];
        Philox::new(self.config.seed, Stream::Training, 4, bi as u64).fill_normal_f64(&mut z);
        let (zk, zu) = z.split_at(nk);
        let add = |x: &[f64], e: &[f64]| x.iter().zip(e).map(|(a, b)| a + sigma * b).collect();
        (add(&self.heldout_u, zu), add(&self.heldout_k, zk))
    }

    /// Held-out MSE per band of the network (`ema`: EMA or raw parameters)
    /// and of the exact Gaussian joint denoiser, in that order.
    pub fn heldout_loss(&self, ema: bool) -> Result<(Vec<JointBandLoss>, Vec<JointBandLoss>)> {
        let params = if ema {
            &self.opt.ema
        } else {
            &self.denoiser.params
        };
        let h = self.config.heldout;
        let (n, p) = (self.grid.len(), self.denoiser.space().len());
        let dims = Dims4::new(h, 1, self.grid.ny, self.grid.nx);
        let base = Some(&self.gauss).filter(|_| self.is_hybrid());
        let mse = |a: &[f64], b: &[f64]| {
            a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / a.len() as f64
        };
        let (mut net, mut gauss) = (Vec::new(), Vec::new());
        for (bi, &sigma) in HELDOUT_SIGMAS.iter().enumerate() {
            let (u_s, k_s) = self.heldout_noisy(bi, sigma);
            let (d, _) = self.denoiser.forward_cached(
                params,
                &u_s,
                &k_s,
                dims,
                &vec![sigma; h],
                base,
                &mut [],
                false,
            )?;
            net.push(JointBandLoss {
                sigma,
                mse_u: mse(&d.u, &self.heldout_u),
                mse_k: mse(&d.k, &self.heldout_k),
            });
            let (mut gu, mut gk) = (Vec::with_capacity(h * p), Vec::with_capacity(h * n));
            for i in 0..h {
                let g = self
                    .gauss
                    .denoise(&u_s[i * p..][..p], &k_s[i * n..][..n], sigma)?;
                gu.extend(g.u);
                gk.extend(g.k);
            }
            gauss.push(JointBandLoss {
                sigma,
                mse_u: mse(&gu, &self.heldout_u),
                mse_k: mse(&gk, &self.heldout_k),
            });
        }
        Ok((net, gauss))
    }

    /// Writes a checkpoint (raw parameters, Adam moments, EMA, step).
    pub fn save_checkpoint(&self, path: &Path) -> Result<()> {
        let mut w: Weights = self.denoiser.to_weights(&self.denoiser.params)?;
        self.opt.save(&mut w)?;
        w.metadata
            .insert("train_state".into(), to_json(&self.state())?);
        w.save(path)
    }

    fn state(&self) -> TrainState {
        TrainState {
            step: self.step,
            config: self.config.clone(),
            data: self.data.name(),
        }
    }

    /// Resumes from [`JointTrainer::save_checkpoint`] with the same data;
    /// `steps` may be raised.
    pub fn resume(path: &Path, data: JointData, steps: Option<u64>) -> Result<Self> {
        let (w, state) = read_checkpoint(path, &data.name())?;
        let denoiser = JointDenoiser::from_weights(&w).map_err(|e| format_error(path, e))?;
        let n = denoiser.unet().n_params();
        let mut config = state.config;
        if let Some(s) = steps {
            config.steps = s;
        }
        let mut t = JointTrainer::new(denoiser, data, config)?;
        t.opt = Optimiser::load(&w, n)?;
        t.step = state.step;
        Ok(t)
    }

    /// Saves the EMA model with the training summary in its metadata.
    pub fn save_model(&self, path: &Path) -> Result<()> {
        let mut extra = BTreeMap::new();
        extra.insert("training".into(), to_json(&self.state())?);
        self.ema_denoiser().save_with(&self.opt.ema, path, &extra)
    }
}
