//! Training a [`Denoiser`] by denoising score matching (Vincent 2011) with the
//! EDM recipe of Karras et al. 2022 (section 5, table 1):
//!
//! ```text
//! L(θ) = E_{κ, ln σ ~ N(ln σ_d + P_mean, P_std²), z} [ λ(σ) ‖D_θ(κ + σ z; σ) - κ‖² ] / N_pix,
//! λ(σ) = 1 / c_out(σ)² = (σ² + σ_d²) / (σ σ_d)²
//! ```
//!
//! Optimiser: Adam (Kingma & Ba 2015) with bias correction, a linear warm-up of
//! the learning rate followed by a cosine decay to `lr · lr_min_fraction`,
//! clipping of the global gradient norm, and an exponential moving average
//! (EMA) of the weights, which is what gets saved as the model.
//!
//! Data: a stack of maps (FITS or npy, `[count][ny][nx]`; random crops of
//! `crop × crop`, the last `heldout` maps kept out of training), or fields
//! simulated on the fly (Gaussian or log-normal, [`crate::fields`]), a fresh
//! realisation for every item of every step. Every item is flipped and
//! rotated by a random multiple of 90° (the symmetries of an isotropic field).
//!
//! Randomness: every draw of step `t` comes from Philox keyed by the training
//! seed with counter `t` (stream `Training`), and simulated fields are
//! realisations `t·B … t·B + B - 1`. A run therefore depends only on the
//! seed, not on threads, and a run resumed from a checkpoint continues
//! exactly (bitwise) as the uninterrupted run would have.
//!
//! Held-out loss: at fixed noise levels `σ_b = σ_d · {0.03, 0.1, 0.3, 1, 3}`
//! (band centres), on fixed held-out maps with fixed noise, reported as the
//! mean squared error `‖D(κ + σ_b z; σ_b) - κ‖² / N_pix`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::denoiser::{from_json, to_json, Denoiser, EdmScaling};
use super::GaussianPrior;
use crate::error::{Error, Result};
use crate::fields::sbi_lens::SbiLens128;
use crate::fields::{gaussian_fields, LogNormal};
use crate::grid::Grid;
use crate::nn::{Dims4, UNetConfig, Weights};
use crate::rng::{Philox, Stream};

/// A batch denoiser `f(x, dims, σ)`, for comparisons on the held-out set.
pub type MapDenoiser<'a> = dyn Fn(&[f32], Dims4, f64) -> Result<Vec<f32>> + 'a;

/// Noise levels of the held-out evaluation, in units of `σ_d`.
pub const HELDOUT_SIGMAS: [f64; 5] = [0.03, 0.1, 0.3, 1.0, 3.0];

/// First realisation index of simulated held-out fields (training uses `t·B + i`).
const HELDOUT_FIRST: u64 = 1 << 48;

/// Hyper-parameters of a training run (stored in checkpoints).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Total optimiser steps (sets the learning-rate schedule).
    pub steps: u64,
    /// Maps per step.
    pub batch: usize,
    /// Side of the square training crops (pixels).
    pub crop: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warm-up steps.
    pub warmup: u64,
    /// Final learning rate as a fraction of `lr` (cosine decay).
    pub lr_min_fraction: f64,
    /// Adam `β₁`.
    pub beta1: f64,
    /// Adam `β₂`.
    pub beta2: f64,
    /// Adam `ε`.
    pub adam_eps: f64,
    /// Largest global gradient norm (larger gradients are scaled down).
    pub grad_clip: f64,
    /// EMA decay per step (`0.999` averages over ~1000 steps).
    pub ema_decay: f64,
    /// Mean of `ln(σ/σ_d)`.
    pub p_mean: f64,
    /// Standard deviation of `ln(σ/σ_d)`.
    pub p_std: f64,
    /// Held-out maps.
    pub heldout: usize,
    /// Seed of every random choice of the run.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            steps: 2000,
            batch: 16,
            crop: 32,
            lr: 2e-3,
            warmup: 100,
            lr_min_fraction: 0.05,
            beta1: 0.9,
            beta2: 0.999,
            adam_eps: 1e-8,
            grad_clip: 1.0,
            ema_decay: 0.995,
            p_mean: -1.2,
            p_std: 1.2,
            heldout: 16,
            seed: 0,
        }
    }
}

impl TrainConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        let pos = |name: &'static str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::invalid(
                    name,
                    format!("must be finite and positive, got {v}"),
                ))
            }
        };
        if self.steps == 0 {
            return Err(Error::invalid("steps", "must be positive"));
        }
        if self.batch == 0 || self.batch > 4096 {
            return Err(Error::invalid("batch", "must be in 1..=4096"));
        }
        if self.crop < 4 || self.crop > 8192 {
            return Err(Error::invalid("crop", "must be in 4..=8192 pixels"));
        }
        pos("lr", self.lr)?;
        pos("adam_eps", self.adam_eps)?;
        pos("grad_clip", self.grad_clip)?;
        pos("p_std", self.p_std)?;
        for (name, v) in [
            ("beta1", self.beta1),
            ("beta2", self.beta2),
            ("ema_decay", self.ema_decay),
            ("lr_min_fraction", self.lr_min_fraction),
        ] {
            if !(v.is_finite() && (0.0..1.0).contains(&v)) {
                return Err(Error::invalid(name, format!("must be in [0, 1), got {v}")));
            }
        }
        if !self.p_mean.is_finite() {
            return Err(Error::invalid("p_mean", "must be finite"));
        }
        if self.heldout == 0 {
            return Err(Error::invalid("heldout", "need at least one held-out map"));
        }
        Ok(())
    }

    /// The top of the trained noise range, `σ_d exp(P_mean + 2.5 P_std)`
    /// (0.6% of training draws lie above it).
    pub fn sigma_max(&self, sigma_data: f64) -> f64 {
        sigma_data * (self.p_mean + 2.5 * self.p_std).exp()
    }

    /// The validated configuration's `crop²` training grid of `pixel_arcmin`
    /// pixels, whose side must suit the network `net`.
    pub(crate) fn crop_grid(&self, net: &UNetConfig, pixel_arcmin: f64) -> Result<Grid> {
        self.validate()?;
        let (crop, m) = (self.crop, net.side_multiple());
        if crop % m != 0 {
            return Err(Error::invalid(
                "crop",
                format!("crop {crop} must be a multiple of {m} for this network"),
            ));
        }
        Grid::square(crop, pixel_arcmin)
    }

    /// Learning rate at step `t` (0-based): linear warm-up, then cosine decay.
    pub fn lr_at(&self, t: u64) -> f64 {
        if t < self.warmup {
            return self.lr * (t + 1) as f64 / self.warmup as f64;
        }
        let span = self.steps.saturating_sub(self.warmup).max(1) as f64;
        let u = ((t - self.warmup) as f64 / span).min(1.0);
        let f = self.lr_min_fraction
            + (1.0 - self.lr_min_fraction) * 0.5 * (1.0 + (std::f64::consts::PI * u).cos());
        self.lr * f
    }
}

/// Where training maps come from.
#[derive(Clone, Debug)]
pub enum TrainingData {
    /// A stack of maps `[count][ny][nx]` (row-major), e.g. read from FITS or npy.
    Stack {
        /// The maps.
        maps: Vec<f32>,
        /// Number of maps.
        count: usize,
        /// Rows per map.
        ny: usize,
        /// Columns per map.
        nx: usize,
    },
    /// Gaussian random fields with a half-spectrum pixel power on the crop grid.
    Gaussian {
        /// Pixel power on the `crop × crop` grid.
        power: Vec<f64>,
        /// Seed of the fields.
        seed: u64,
    },
    /// Log-normal fields on the crop grid.
    LogNormal {
        /// The field model.
        field: LogNormal,
        /// Seed of the fields.
        seed: u64,
    },
    /// The sbi_lens 128² log-normal model, each map with its own Gaussian
    /// variance in the exponent ([`SbiLens128::sample`]); the crop must be the
    /// model's 128² grid.
    SbiLens {
        /// The model at one cosmology.
        model: Box<SbiLens128>,
        /// Seed of the fields.
        seed: u64,
    },
}

impl TrainingData {
    /// A stack from an `[count][ny][nx]` array; rejects empty stacks and
    /// non-finite values.
    pub fn stack(maps: Vec<f32>, count: usize, ny: usize, nx: usize) -> Result<Self> {
        if count == 0 || ny == 0 || nx == 0 {
            return Err(Error::invalid(
                "maps",
                format!("the training stack is empty ({count} maps of {ny}x{nx})"),
            ));
        }
        crate::error::check_len("maps", &maps, count * ny * nx)?;
        if let Some(i) = maps.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(
                "maps",
                format!(
                    "non-finite value {} in map {} at pixel ({}, {})",
                    maps[i],
                    i / (ny * nx),
                    (i % (ny * nx)) / nx,
                    i % nx
                ),
            ));
        }
        Ok(TrainingData::Stack {
            maps,
            count,
            ny,
            nx,
        })
    }

    /// The data scale `σ_d` for the preconditioning: the pixel standard
    /// deviation of the stack, or of 64 realisations of the simulated field on
    /// `grid` (realisations `2^47 …`, disjoint from training and held-out maps).
    pub fn sigma_data(&self, grid: &Grid) -> Result<f64> {
        let maps = match self {
            TrainingData::Stack { maps, .. } => maps.clone(),
            TrainingData::Gaussian { power, seed } => {
                gaussian_fields(grid, power, *seed, 1 << 47, 64)?
            }
            TrainingData::LogNormal { field, seed } => field.sample(grid, *seed, 1 << 47, 64)?,
            TrainingData::SbiLens { model, seed } => model.sample(*seed, 1 << 47, 64)?,
        };
        let n = maps.len() as f64;
        let mean = maps.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = maps.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        if var.is_nan() || var <= 0.0 {
            return Err(Error::invalid(
                "maps",
                "the training maps are constant (zero variance)",
            ));
        }
        Ok(var.sqrt())
    }

    fn name(&self) -> String {
        match self {
            TrainingData::Stack { count, ny, nx, .. } => format!("stack of {count} maps {ny}x{nx}"),
            TrainingData::Gaussian { seed, .. } => format!("Gaussian fields, seed {seed}"),
            TrainingData::LogNormal { field, seed } => {
                format!("log-normal fields (lambda {}), seed {seed}", field.lambda)
            }
            TrainingData::SbiLens { model, seed } => {
                let c = model.cosmology();
                format!(
                    "sbi_lens 128^2 log-normal fields (Omega_c {}, sigma_8 {}), seed {seed}",
                    c.omega_c, c.sigma8
                )
            }
        }
    }
}

/// Loss on the held-out maps at one noise level.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BandLoss {
    /// Noise level σ.
    pub sigma: f64,
    /// Mean squared error per pixel of the denoised maps.
    pub mse: f64,
}

/// One optimiser step's numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// Step index (0-based) just taken.
    pub step: u64,
    /// Batch loss (EDM-weighted).
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Learning rate used.
    pub lr: f64,
}

/// Scalar state of a run (JSON in checkpoints).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct TrainState {
    pub(crate) step: u64,
    pub(crate) config: TrainConfig,
    pub(crate) data: String,
}

/// Adam moments and the EMA of the parameters: the optimiser state of a run.
#[derive(Clone, Debug)]
pub(crate) struct Optimiser {
    pub(crate) adam_m: Vec<f32>,
    pub(crate) adam_v: Vec<f32>,
    pub(crate) ema: Vec<f32>,
}

/// Parameters per task of the optimiser's update (and per partial sum of the
/// gradient norm): fixed, so that the results do not depend on the thread
/// count.
const UPDATE_CHUNK: usize = 1 << 14;

impl Optimiser {
    /// Zero moments, the EMA starting at `params`.
    pub(crate) fn new(params: &[f32]) -> Self {
        Optimiser {
            adam_m: vec![0.0; params.len()],
            adam_v: vec![0.0; params.len()],
            ema: params.to_vec(),
        }
    }

    /// Step `t` (0-based) of Adam with bias correction on the gradient `g`
    /// clipped to the global norm `grad_clip`, then the EMA; returns the
    /// norm before clipping and the learning rate.
    pub(crate) fn update(
        &mut self,
        p: &mut [f32],
        g: &[f32],
        t: u64,
        cfg: &TrainConfig,
    ) -> (f64, f64) {
        // partial sums over fixed chunks, added in order: the same norm for
        // any thread count
        let grad_norm = g
            .par_chunks(UPDATE_CHUNK)
            .map(|c| c.iter().map(|v| (*v as f64).powi(2)).sum::<f64>())
            .collect::<Vec<f64>>()
            .into_iter()
            .sum::<f64>()
            .sqrt();
        let clip = if grad_norm > cfg.grad_clip {
            cfg.grad_clip / grad_norm
        } else {
            1.0
        };
        let lr = cfg.lr_at(t);
        let (b1, b2) = (cfg.beta1, cfg.beta2);
        let k = (t + 1) as i32;
        let (c1, c2) = (1.0 - b1.powi(k), 1.0 - b2.powi(k));
        let step_size = (lr / c1) as f32;
        let (b1f, b2f) = (b1 as f32, b2 as f32);
        let (eps, c2s) = (cfg.adam_eps as f32, (1.0 / c2).sqrt() as f32);
        let clip = clip as f32;
        let ema = cfg.ema_decay as f32;
        // the optimiser's state is sized from the parameters (`new`, `load`)
        debug_assert!([
            g.len(),
            self.adam_m.len(),
            self.adam_v.len(),
            self.ema.len()
        ]
        .iter()
        .all(|&l| l == p.len()));
        p.par_chunks_mut(UPDATE_CHUNK)
            .zip(g.par_chunks(UPDATE_CHUNK))
            .zip(self.adam_m.par_chunks_mut(UPDATE_CHUNK))
            .zip(self.adam_v.par_chunks_mut(UPDATE_CHUNK))
            .zip(self.ema.par_chunks_mut(UPDATE_CHUNK))
            .for_each(|((((p, g), m), v), e)| {
                for i in 0..p.len() {
                    let gi = g[i] * clip;
                    m[i] = b1f * m[i] + (1.0 - b1f) * gi;
                    v[i] = b2f * v[i] + (1.0 - b2f) * gi * gi;
                    p[i] -= step_size * m[i] / (v[i].sqrt() * c2s + eps);
                    e[i] = ema * e[i] + (1.0 - ema) * p[i];
                }
            });
        (grad_norm, lr)
    }

    /// Adds the state to a checkpoint's tensors.
    pub(crate) fn save(&self, w: &mut Weights) -> Result<()> {
        let n = self.adam_m.len();
        w.insert("train.adam_m", &[n], self.adam_m.clone())?;
        w.insert("train.adam_v", &[n], self.adam_v.clone())?;
        w.insert("train.ema", &[n], self.ema.clone())
    }

    /// Reads the state of `n` parameters back from a checkpoint.
    pub(crate) fn load(w: &Weights, n: usize) -> Result<Self> {
        Ok(Optimiser {
            adam_m: w.get("train.adam_m", &[n])?.to_vec(),
            adam_v: w.get("train.adam_v", &[n])?.to_vec(),
            ema: w.get("train.ema", &[n])?.to_vec(),
        })
    }
}

/// A checkpoint's tensors and run state; fails unless it was trained on `data`
/// (the data's name).
pub(crate) fn read_checkpoint(path: &Path, data: &str) -> Result<(Weights, TrainState)> {
    let w = Weights::load(path)?;
    let text = w.metadata.get("train_state").ok_or_else(|| Error::Format {
        path: path.to_path_buf(),
        reason: "not a training checkpoint (no `train_state` metadata)".into(),
    })?;
    let state: TrainState = from_json("train_state", text).map_err(|e| format_error(path, e))?;
    if state.data != data {
        return Err(Error::invalid(
            "data",
            format!(
                "the checkpoint was trained on {}, not on {data}",
                state.data
            ),
        ));
    }
    Ok((w, state))
}

/// `e` as a format error of the file `path`.
pub(crate) fn format_error(path: &Path, e: Error) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        reason: match e {
            Error::Format { reason, .. } => reason,
            other => other.to_string(),
        },
    }
}

/// The crops of step `t` from a stack of `train` training maps of `shape`:
/// `(map, y0, x0)` per batch item, uniform from Philox (stream `Training`,
/// key 0, counter `t`).
pub(crate) fn crop_picks(
    config: &TrainConfig,
    t: u64,
    train: usize,
    (ny, nx): (usize, usize),
) -> Vec<(usize, usize, usize)> {
    let (b, c) = (config.batch, config.crop);
    let mut u = vec![0.0f64; 3 * b];
    Philox::new(config.seed, Stream::Training, 0, t).fill_uniform(&mut u);
    let pick = |v: f64, n: usize| ((v * n as f64) as usize).min(n - 1);
    (0..b)
        .map(|i| {
            (
                pick(u[3 * i], train),
                pick(u[3 * i + 1], ny - c + 1),
                pick(u[3 * i + 2], nx - c + 1),
            )
        })
        .collect()
}

/// Fails unless `grid` is the sbi_lens model's own 128² grid of its pixel.
pub(crate) fn check_sbi_lens_grid(grid: &Grid) -> Result<()> {
    use crate::fields::sbi_lens::{N_PIX, PIXEL_ARCMIN};
    if (grid.nx, grid.ny) != (N_PIX, N_PIX) || (PIXEL_ARCMIN / grid.pixel_arcmin - 1.0).abs() > 1e-9
    {
        return Err(Error::invalid(
            "crop",
            format!(
                "the sbi_lens model trains on its own {N_PIX}x{N_PIX} grid of {PIXEL_ARCMIN}' pixels, \
                 not crops of {} at {}'",
                grid.nx, grid.pixel_arcmin
            ),
        ));
    }
    Ok(())
}

/// The training noise levels of step `t` in units of the data scale:
/// `exp(P_mean + P_std z)`, `z` from Philox (stream `Training`, key 1).
pub(crate) fn draw_sigmas(cfg: &TrainConfig, t: u64) -> Vec<f64> {
    let mut z = vec![0.0f64; cfg.batch];
    Philox::new(cfg.seed, Stream::Training, 1, t).fill_normal_f64(&mut z);
    z.iter()
        .map(|z| (cfg.p_mean + cfg.p_std * z).exp())
        .collect()
}

/// Random flips and 90° rotations of each `crop²` map of step `t` (in place).
pub(crate) fn augment(cfg: &TrainConfig, t: u64, maps: &mut [f32]) {
    let c = cfg.crop;
    let n = c * c;
    let mut buf = vec![0.0f32; n];
    for (i, m) in maps.chunks_mut(n).enumerate() {
        let r = Philox::new(cfg.seed, Stream::Training, 3, t).block(i as u32);
        let (flip, rot) = (r[0] & 1, r[1] & 3);
        for y in 0..c {
            for x in 0..c {
                let (mut sy, mut sx) = (y, if flip == 1 { c - 1 - x } else { x });
                for _ in 0..rot {
                    (sy, sx) = (sx, c - 1 - sy);
                }
                buf[y * c + x] = m[sy * c + sx];
            }
        }
        m.copy_from_slice(&buf);
    }
}

/// A training run: the denoiser being trained, the optimiser state and the data.
pub struct Trainer {
    denoiser: Denoiser,
    config: TrainConfig,
    data: TrainingData,
    grid: Grid,
    gauss: Option<GaussianPrior>,
    step: u64,
    opt: Optimiser,
    heldout: Vec<f32>,
}

impl Trainer {
    /// A new run starting from the denoiser's current parameters.
    pub fn new(denoiser: Denoiser, data: TrainingData, config: TrainConfig) -> Result<Self> {
        let grid = config.crop_grid(denoiser.unet().config(), denoiser.meta().pixel_arcmin)?;
        let crop = config.crop;
        match &data {
            TrainingData::Stack { count, ny, nx, .. } => {
                if *ny < crop || *nx < crop {
                    return Err(Error::invalid(
                        "crop",
                        format!("crop {crop} is larger than the {ny}x{nx} maps"),
                    ));
                }
                if *count <= config.heldout {
                    return Err(Error::invalid(
                        "heldout",
                        format!(
                            "{} held-out maps leave none of the {count} maps for training",
                            config.heldout
                        ),
                    ));
                }
            }
            TrainingData::Gaussian { power, .. } => crate::spectrum::check_power(&grid, power)?,
            TrainingData::LogNormal { field, .. } => {
                crate::spectrum::check_power(&grid, &field.gaussian_power)?
            }
            TrainingData::SbiLens { .. } => check_sbi_lens_grid(&grid)?,
        }
        let gauss = denoiser.gaussian_prior(grid)?;
        let opt = Optimiser::new(&denoiser.params);
        let mut t = Trainer {
            denoiser,
            config,
            data,
            grid,
            gauss,
            step: 0,
            opt,
            heldout: Vec::new(),
        };
        t.heldout = t.heldout_maps()?;
        Ok(t)
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Steps taken so far.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The training crop grid.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// The denoiser with the raw (non-averaged) parameters.
    pub fn denoiser(&self) -> &Denoiser {
        &self.denoiser
    }

    /// The denoiser with the EMA parameters (the model to use and ship), its
    /// `sigma_max` set to the training range [`TrainConfig::sigma_max`].
    pub fn ema_denoiser(&self) -> Denoiser {
        let mut d = self.denoiser.clone();
        d.params = self.opt.ema.clone();
        d.set_sigma_max(self.config.sigma_max(d.meta().sigma_data));
        d
    }

    /// `count` crops of the stack `maps` at the given pixel offsets / indices.
    fn crop_from_stack(&self, picks: &[(usize, usize, usize)]) -> Vec<f32> {
        let TrainingData::Stack { maps, ny, nx, .. } = &self.data else {
            return Vec::new();
        };
        let c = self.config.crop;
        let mut out = Vec::with_capacity(picks.len() * c * c);
        for &(k, y0, x0) in picks {
            let m = &maps[k * ny * nx..][..ny * nx];
            for y in 0..c {
                out.extend_from_slice(&m[(y0 + y) * nx + x0..][..c]);
            }
        }
        out
    }

    /// The fixed held-out maps: the last `heldout` maps of a stack (centre
    /// crops) or dedicated realisations of a simulated field.
    fn heldout_maps(&self) -> Result<Vec<f32>> {
        let h = self.config.heldout;
        let c = self.config.crop;
        match &self.data {
            TrainingData::Stack { count, ny, nx, .. } => {
                let picks: Vec<_> = (count - h..*count)
                    .map(|k| (k, (ny - c) / 2, (nx - c) / 2))
                    .collect();
                Ok(self.crop_from_stack(&picks))
            }
            TrainingData::Gaussian { power, seed } => {
                gaussian_fields(&self.grid, power, *seed, HELDOUT_FIRST, h)
            }
            TrainingData::LogNormal { field, seed } => {
                field.sample(&self.grid, *seed, HELDOUT_FIRST, h)
            }
            TrainingData::SbiLens { model, seed } => model.sample(*seed, HELDOUT_FIRST, h),
        }
    }

    /// The clean training maps of step `t` (before augmentation).
    fn batch_maps(&self, t: u64) -> Result<Vec<f32>> {
        let b = self.config.batch;
        match &self.data {
            TrainingData::Stack { count, ny, nx, .. } => {
                let train = count - self.config.heldout;
                let picks = crop_picks(&self.config, t, train, (*ny, *nx));
                Ok(self.crop_from_stack(&picks))
            }
            TrainingData::Gaussian { power, seed } => {
                gaussian_fields(&self.grid, power, *seed, t * b as u64, b)
            }
            TrainingData::LogNormal { field, seed } => {
                field.sample(&self.grid, *seed, t * b as u64, b)
            }
            TrainingData::SbiLens { model, seed } => model.sample(*seed, t * b as u64, b),
        }
    }

    /// One optimiser step; returns the batch loss and gradient norm.
    pub fn step(&mut self) -> Result<StepStats> {
        let t = self.step;
        let cfg = &self.config;
        let (b, c) = (cfg.batch, cfg.crop);
        let n = c * c;
        let sd = self.denoiser.meta().sigma_data;
        let mut kappa = self.batch_maps(t)?;
        augment(cfg, t, &mut kappa);
        let sigma: Vec<f64> = draw_sigmas(cfg, t).iter().map(|s| sd * s).collect();
        let mut noise = vec![0.0f32; b * n];
        Philox::new(cfg.seed, Stream::Training, 2, t).fill_normal(&mut noise);
        let x: Vec<f32> = kappa
            .iter()
            .zip(&noise)
            .enumerate()
            .map(|(i, (k, e))| k + sigma[i / n] as f32 * e)
            .collect();
        let dims = Dims4::new(b, 1, c, c);
        let params = &self.denoiser.params;
        let (d, cache) =
            self.denoiser
                .forward_cached(params, &x, dims, &sigma, self.gauss.as_ref())?;
        // dL/dD = 2 λ (D - κ) / (B N)
        let mut loss = 0.0f64;
        let mut v = vec![0.0f32; b * n];
        for (i, &sig) in sigma.iter().enumerate() {
            let lam = EdmScaling::new(sig, sd).loss_weight();
            for p in i * n..(i + 1) * n {
                let r = (d[p] - kappa[p]) as f64;
                loss += lam * r * r;
                v[p] = (2.0 * lam * r / (b * n) as f64) as f32;
            }
        }
        loss /= (b * n) as f64;
        if !loss.is_finite() {
            return Err(Error::invalid(
                "training",
                format!("the loss became non-finite at step {t}; lower the learning rate"),
            ));
        }
        let mut g = vec![0.0f32; params.len()];
        self.denoiser
            .vjp(params, &cache, &v, self.gauss.as_ref(), Some(&mut g))?;
        let (grad_norm, lr) = self.opt.update(&mut self.denoiser.params, &g, t, cfg);
        self.step += 1;
        Ok(StepStats {
            step: t,
            loss,
            grad_norm,
            lr,
        })
    }

    /// Runs until `config.steps` steps are done, calling `progress` after each.
    pub fn run(&mut self, mut progress: impl FnMut(&StepStats, f64)) -> Result<()> {
        let _release = crate::nn::workspace::ReleaseOnDrop;
        let start = Instant::now();
        let first = self.step;
        while self.step < self.config.steps {
            let s = self.step()?;
            let maps = (self.step - first) as f64 * self.config.batch as f64;
            progress(&s, maps / start.elapsed().as_secs_f64().max(1e-9));
        }
        Ok(())
    }

    /// Held-out MSE at the noise levels [`HELDOUT_SIGMAS`] (times `σ_d`),
    /// with the EMA parameters (`ema = true`) or the raw ones.
    pub fn heldout_loss(&self, ema: bool) -> Result<Vec<BandLoss>> {
        let params = if ema {
            &self.opt.ema
        } else {
            &self.denoiser.params
        };
        self.heldout_loss_of(&|x: &[f32], dims: Dims4, sigma: f64| {
            let s = vec![sigma; dims.n];
            Ok(self
                .denoiser
                .forward_cached(params, x, dims, &s, self.gauss.as_ref())?
                .0)
        })
    }

    /// Held-out MSE of any denoiser `f(x, dims, σ)` on the same noisy maps as
    /// [`Trainer::heldout_loss`] (e.g. the Wiener denoiser, for comparison).
    pub fn heldout_loss_of(&self, f: &MapDenoiser<'_>) -> Result<Vec<BandLoss>> {
        let sd = self.denoiser.meta().sigma_data;
        let c = self.config.crop;
        let n = c * c;
        let h = self.config.heldout;
        HELDOUT_SIGMAS
            .iter()
            .enumerate()
            .map(|(bi, &s)| {
                let sigma = s * sd;
                let mut noise = vec![0.0f32; h * n];
                Philox::new(self.config.seed, Stream::Training, 4, bi as u64)
                    .fill_normal(&mut noise);
                let x: Vec<f32> = self
                    .heldout
                    .iter()
                    .zip(&noise)
                    .map(|(k, e)| k + sigma as f32 * e)
                    .collect();
                let d = f(&x, Dims4::new(h, 1, c, c), sigma)?;
                crate::error::check_len("denoised", &d, x.len())?;
                let mse = d
                    .iter()
                    .zip(&self.heldout)
                    .map(|(a, b)| ((a - b) as f64).powi(2))
                    .sum::<f64>()
                    / (h * n) as f64;
                Ok(BandLoss { sigma, mse })
            })
            .collect()
    }

    /// The held-out maps (clean), `[heldout][crop][crop]`.
    pub fn heldout(&self) -> &[f32] {
        &self.heldout
    }

    /// Writes a checkpoint: the denoiser with its raw parameters plus the
    /// Adam moments, the EMA parameters and the step (resumes exactly).
    pub fn save_checkpoint(&self, path: &Path) -> Result<()> {
        let mut w: Weights = self.denoiser.to_weights(&self.denoiser.params)?;
        self.opt.save(&mut w)?;
        let state = TrainState {
            step: self.step,
            config: self.config.clone(),
            data: self.data.name(),
        };
        w.metadata.insert("train_state".into(), to_json(&state)?);
        w.save(path)
    }

    /// Resumes from a checkpoint written by [`Trainer::save_checkpoint`] with
    /// the same data. `steps` may be raised to train longer; every other
    /// hyper-parameter must match the checkpoint's.
    pub fn resume(path: &Path, data: TrainingData, steps: Option<u64>) -> Result<Self> {
        let (w, state) = read_checkpoint(path, &data.name())?;
        let denoiser = Denoiser::from_weights(&w).map_err(|e| format_error(path, e))?;
        let n = denoiser.unet().n_params();
        let mut config = state.config;
        if let Some(s) = steps {
            config.steps = s;
        }
        let mut t = Trainer::new(denoiser, data, config)?;
        t.opt = Optimiser::load(&w, n)?;
        t.step = state.step;
        Ok(t)
    }

    /// Saves the EMA model (the file `lensdiff sample --model` loads), adding
    /// the training summary to its metadata.
    pub fn save_model(&self, path: &Path) -> Result<()> {
        let mut extra = BTreeMap::new();
        extra.insert(
            "training".into(),
            to_json(&TrainState {
                step: self.step,
                config: self.config.clone(),
                data: self.data.name(),
            })?,
        );
        self.ema_denoiser().save_with(&self.opt.ema, path, &extra)
    }
}
