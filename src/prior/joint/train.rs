//! Training a [`JointDenoiser`] on simulated `(theta, kappa)` pairs by
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
//! Pairs: `u` from Philox (stream `Training`, key 5, counter `t`), the map of
//! item `i` of step `t` is realisation `t·B + i` of the field at `theta(u)`:
//! - [`JointData::Gaussian`]: a Gaussian field of the cosmology's `C_ell(theta)`
//!   (the spectrum table of the Gaussian joint prior);
//! - [`JointData::SbiLens`]: the sbi_lens 128² log-normal model at
//!   `(omega_c, sigma8)`.
//!
//! Maps are flipped and rotated as in map-only training (the parameters are
//! invariant). A run depends only on its seed, and a resumed run continues
//! bitwise.
//!
//! Held-out: `heldout` fixed pairs (`u` key 6, maps from realisation
//! `2^48`), fixed noise per band `sigma_b = {0.03, 0.1, 0.3, 1, 3}` (joint
//! units); the MSE of `theta*` (in prior sds, i.e. of `u*`) and of `k*` (in
//! `sigma_d²`), for the network and for the exact Gaussian joint denoiser.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::neural::{joint_scaling, JointDenoiser};
use super::GaussianJoint;
use crate::error::{Error, Result};
use crate::fields::gaussian_fields;
use crate::fields::sbi_lens::SbiLens128;
use crate::grid::Grid;
use crate::nn::{Dims4, Weights};
use crate::prior::denoiser::to_json;
use crate::prior::train::{
    augment, check_sbi_lens_grid, draw_sigmas, format_error, read_checkpoint, Optimiser, StepStats,
    TrainConfig, TrainState, HELDOUT_SIGMAS,
};
use crate::rng::{Philox, Stream};

/// First realisation of the held-out maps.
const HELDOUT_FIRST: u64 = 1 << 48;

/// Where the training pairs come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JointData {
    /// Gaussian fields with the spectra of the denoiser's cosmology.
    Gaussian {
        /// Seed of the fields.
        seed: u64,
    },
    /// The sbi_lens 128² log-normal model (parameters `omega_c`, `sigma8`).
    SbiLens {
        /// Seed of the fields.
        seed: u64,
    },
}

impl JointData {
    fn name(&self) -> String {
        match self {
            JointData::Gaussian { seed } => format!("joint Gaussian fields, seed {seed}"),
            JointData::SbiLens { seed } => format!("joint sbi_lens log-normal fields, seed {seed}"),
        }
    }
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
    heldout_u: Vec<f64>,
    heldout_k: Vec<f64>,
}

impl JointTrainer {
    /// A new run from the denoiser's current parameters; the crop is the
    /// training grid (`crop²` maps of the denoiser's pixel), the denoiser
    /// needs its cosmology ([`super::JointDenoiserMeta::gaussian`]).
    pub fn new(denoiser: JointDenoiser, data: JointData, config: TrainConfig) -> Result<Self> {
        let grid = config.crop_grid(denoiser.unet().config(), denoiser.meta().pixel_arcmin)?;
        if let JointData::SbiLens { .. } = data {
            check_sbi_lens_grid(&grid)?;
            let names = denoiser.space().names();
            if names != ["omega_c", "sigma8"] {
                return Err(Error::invalid(
                    "params",
                    format!("the sbi_lens model varies omega_c and sigma8, not {names:?}"),
                ));
            }
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
            heldout_u: Vec::new(),
            heldout_k: Vec::new(),
        };
        let h = t.config.heldout;
        t.heldout_u = t.draw_u(6, 0, h);
        let maps = t.maps(&t.heldout_u, HELDOUT_FIRST)?;
        t.heldout_k = t.to_joint_units(&maps);
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
            match self.data {
                JointData::Gaussian { seed } => {
                    let power = self.gauss.prior_power(ui)?;
                    out.extend(gaussian_fields(&self.grid, &power, seed, r, 1)?);
                }
                JointData::SbiLens { seed } => {
                    let theta = self.denoiser.space().theta(ui);
                    out.extend(SbiLens128::new(theta[0], theta[1])?.sample(seed, r, 1)?);
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
        let u = self.draw_u(5, t, b);
        let mut maps = self.maps(&u, t * b as u64)?;
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
