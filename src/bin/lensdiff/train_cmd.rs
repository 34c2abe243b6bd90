//! `lensdiff train`: train a neural denoiser prior by denoising score matching.

use std::path::PathBuf;

use clap::ValueEnum;
use lensdiff::fields::sbi_lens::{self, SbiLens128};
use lensdiff::fields::LogNormal;
use lensdiff::nn::UNetConfig;
use lensdiff::prior::train::{BandLoss, StepStats, HELDOUT_SIGMAS};
use lensdiff::prior::{
    Denoiser, DenoiserKind, DenoiserMeta, GaussianPrior, Prior, TrainConfig, Trainer, TrainingData,
};
use lensdiff::spectrum::ClTable;
use lensdiff::{Error, Grid, Result};

use crate::common::{load_cl, progress, CosmologyArgs};
use crate::simulate::{check_sbi_lens_grid, sbi_lens_model};

#[derive(Clone, Copy, PartialEq, ValueEnum)]
pub enum Simulated {
    /// Gaussian random fields with the C_ell of --cl.
    Gaussian,
    /// Log-normal fields with the C_ell of --cl and shift --lambda.
    Lognormal,
    /// The sbi_lens 128² log-normal model (as in `lensdiff simulate`; crops 128 of
    /// 2.34375', (Omega_c, sigma_8) from --omega-c, --sigma8, default 0.3, 0.8), exactly as
    /// sbi_lens draws them (each map's own Gaussian variance in exp(g - var/2)).
    SbiLognormal,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
pub enum Net {
    /// 2 levels (16, 32 channels), 1 block per level: ~36 k parameters.
    Demo,
    /// 4 levels (32, 64, 128, 176 channels), 2 blocks: ~3.0 M parameters (Remy et al. 2023 size).
    Remy2023,
    /// Remy et al. 2023's UResNet18 layout: 7x7 input convolution, 4 levels (32, 64, 128, 128
    /// channels) entered with strides 2, 2, 2, 1, 2 blocks: ~2.7 M parameters.
    Uresnet18,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
pub enum Kind {
    /// D = c_skip x + c_out F: everything learned.
    Pure,
    /// D = Wiener denoiser of --cl + c_out F (Remy et al. 2023).
    Hybrid,
}

#[derive(clap::Args)]
pub struct Args {
    /// Training maps: FITS or npy stack [count][ny][nx] (or one map). Omit to simulate with --simulate.
    /// With --joint, the maps of (theta, kappa) pairs whose parameters are in --theta.
    #[arg(long, conflicts_with = "simulate")]
    pub data: Option<PathBuf>,
    /// With --joint and --data: the parameters of each map, one row per map. CSV with a
    /// header row of parameter names (any column order), or npy [count][p] whose columns
    /// are the parameters of --param / --params-file in their order.
    #[arg(long, value_name = "TABLE", requires_all = ["joint", "data"])]
    pub theta: Option<PathBuf>,
    /// Simulate training fields on the fly (a fresh realisation for every item of every step;
    /// alias --simulator).
    #[arg(long, alias = "simulator", value_enum)]
    pub simulate: Option<Simulated>,
    /// C_ell table (text `ell C_ell` or npy (2, n)) of simulated fields and of the hybrid's Gaussian part
    /// (default: built-in kappaTNG-like spectrum).
    #[arg(long)]
    pub cl: Option<PathBuf>,
    /// C_ell from the cosmology flags (--omega-c .. --nz, as `lensdiff cosmo`; one source bin)
    /// instead of --cl.
    #[arg(long, conflicts_with = "cl")]
    pub cosmology: bool,
    #[command(flatten)]
    pub cosmo: CosmologyArgs,
    /// Log-normal shift of simulated fields (map-only and --joint --simulate lognormal) [default: 0.03].
    #[arg(long)]
    pub lambda: Option<f64>,
    /// Seed of the simulated fields.
    #[arg(long, default_value_t = 1)]
    pub data_seed: u64,
    /// Pixel size in arcmin of the training maps [default: 0.5; 2.34375 with sbi-lognormal].
    #[arg(long)]
    pub pixel_arcmin: Option<f64>,
    /// Network size.
    #[arg(long, value_enum, default_value_t = Net::Demo)]
    pub net: Net,
    /// Channels per level, e.g. 16,32,64 (overrides --net's).
    #[arg(long, value_delimiter = ',')]
    pub channels: Option<Vec<usize>>,
    /// Convolution padding.
    #[arg(long, default_value = "periodic", value_parser = ["periodic", "zero"])]
    pub padding: String,
    /// Pure network or Gaussian + neural hybrid.
    #[arg(long, value_enum, default_value_t = Kind::Hybrid)]
    pub kind: Kind,
    /// Optimiser steps.
    #[arg(long, default_value_t = 2000)]
    pub steps: u64,
    /// Maps per step.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Side of the square training crops [default: 32; 128 with sbi-lognormal].
    #[arg(long)]
    pub crop: Option<usize>,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Warm-up steps.
    #[arg(long, default_value_t = 100)]
    pub warmup: u64,
    /// EMA decay per step.
    #[arg(long, default_value_t = 0.995)]
    pub ema: f64,
    /// Held-out maps (the last ones of a stack; with --joint --data, the last pairs).
    #[arg(long, default_value_t = 16)]
    pub heldout: usize,
    /// Training seed (noise levels, noise, crops, flips).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Evaluate the held-out loss every this many steps (0: only at the end).
    #[arg(long, default_value_t = 500)]
    pub eval_every: u64,
    /// Write a checkpoint every this many steps (0: only at the end).
    #[arg(long, default_value_t = 500)]
    pub checkpoint_every: u64,
    /// Checkpoint file (resumable; default: OUT with .ckpt.safetensors).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Resume from this checkpoint (same data; --steps may be raised).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Train a joint denoiser of cosmological parameters and map (docs/joint.md):
    /// pairs (theta ~ prior of --param, kappa ~ the field at theta) simulated on
    /// the fly with --simulate gaussian or lognormal (spectra from the cosmology flags)
    /// or sbi-lognormal, or read from files with --data MAPS --theta TABLE;
    /// --kind hybrid refines the exact Gaussian joint denoiser.
    #[arg(long)]
    pub joint: bool,
    /// With --joint: a varied parameter and its Gaussian prior, NAME=MEAN,STD
    /// (repeat; 1 to 3) [default: omega_c=0.3,0.05 sigma8=0.8,0.05].
    #[arg(long = "param", value_name = "NAME=MEAN,STD", requires = "joint")]
    pub params: Vec<String>,
    /// With --joint: the parameters and priors from a JSON file, a list in the order of
    /// the joint state: [{"name": "omega_c", "mean": 0.3, "std": 0.05}, ...]; not with --param.
    #[arg(long, value_name = "FILE", requires = "joint")]
    pub params_file: Option<PathBuf>,
    /// The trained model (EMA weights), safetensors.
    #[arg(long)]
    pub out: PathBuf,
}

impl Args {
    /// The network of `--net`, `--channels` and `--padding` (map-only).
    pub fn network(&self) -> UNetConfig {
        let mut config = match self.net {
            Net::Demo => UNetConfig::demo(),
            Net::Remy2023 => UNetConfig::remy_2023(),
            Net::Uresnet18 => UNetConfig::uresnet18(),
        };
        if let Some(c) = &self.channels {
            config.channels = c.clone();
        }
        config.padding = self.padding.clone();
        config
    }

    /// `--kind`.
    pub fn denoiser_kind(&self) -> DenoiserKind {
        match self.kind {
            Kind::Pure => DenoiserKind::Pure,
            Kind::Hybrid => DenoiserKind::Hybrid,
        }
    }

    /// `--checkpoint`, or the model's path with `.ckpt.safetensors`.
    pub fn checkpoint_path(&self) -> PathBuf {
        self.checkpoint
            .clone()
            .unwrap_or_else(|| self.out.with_extension("ckpt.safetensors"))
    }

    /// The optimiser flags for `crop²` training maps.
    pub fn train_config(&self, crop: usize) -> TrainConfig {
        TrainConfig {
            steps: self.steps,
            batch: self.batch,
            crop,
            lr: self.lr,
            warmup: self.warmup,
            ema_decay: self.ema,
            heldout: self.heldout,
            seed: self.seed,
            ..TrainConfig::default()
        }
    }
}

/// What the command line's training loop drives: map-only and joint runs.
pub trait TrainingRun {
    /// One optimiser step.
    fn step(&mut self) -> Result<StepStats>;
    /// Steps taken.
    fn step_count(&self) -> u64;
    /// The run's configuration.
    fn config(&self) -> &TrainConfig;
    /// Writes a checkpoint.
    fn save_checkpoint(&self, path: &std::path::Path) -> Result<()>;
}

impl TrainingRun for Trainer {
    fn step(&mut self) -> Result<StepStats> {
        Trainer::step(self)
    }
    fn step_count(&self) -> u64 {
        Trainer::step_count(self)
    }
    fn config(&self) -> &TrainConfig {
        Trainer::config(self)
    }
    fn save_checkpoint(&self, path: &std::path::Path) -> Result<()> {
        Trainer::save_checkpoint(self, path)
    }
}

/// Steps `trainer` to its configured total with a progress bar (`unit` per
/// second), `eval` every `--eval-every` steps and a checkpoint every
/// `--checkpoint-every` steps and at the end.
pub fn train_loop<T: TrainingRun>(
    trainer: &mut T,
    a: &Args,
    checkpoint: &std::path::Path,
    unit: &str,
    eval: impl Fn(&T) -> Result<()>,
) -> Result<()> {
    let total = trainer.config().steps;
    let pb = progress(Some(total), "train");
    pb.set_position(trainer.step_count());
    let mut loss_avg = None::<f64>;
    while trainer.step_count() < total {
        let t0 = std::time::Instant::now();
        let s = trainer.step()?;
        let rate = trainer.config().batch as f64 / t0.elapsed().as_secs_f64().max(1e-9);
        let avg = loss_avg.map_or(s.loss, |m| 0.98 * m + 0.02 * s.loss);
        loss_avg = Some(avg);
        pb.set_position(trainer.step_count());
        pb.set_message(format!("loss {avg:.4} lr {:.1e} {rate:.0} {unit}/s", s.lr));
        let done = trainer.step_count();
        if a.eval_every > 0 && done.is_multiple_of(a.eval_every) && done < total {
            pb.suspend(|| {
                eprintln!("  step {done}: loss {avg:.4}");
                eval(trainer)
            })?;
        }
        if a.checkpoint_every > 0 && done.is_multiple_of(a.checkpoint_every) {
            trainer.save_checkpoint(checkpoint)?;
        }
    }
    pb.finish_and_clear();
    trainer.save_checkpoint(checkpoint)
}

fn training_data(
    a: &Args,
    grid: &Grid,
    table: &ClTable,
    sbi: Option<&SbiLens128>,
) -> Result<TrainingData> {
    match (&a.data, a.simulate) {
        (Some(path), _) => {
            let stack = lensdiff::io::read_stack(path)?;
            let (count, ny, nx) = stack.dim();
            let maps: Vec<f32> = stack.iter().copied().collect();
            TrainingData::stack(maps, count, ny, nx).map_err(|e| match e {
                Error::InvalidArgument { name, reason } => {
                    Error::invalid(name, format!("{}: {reason}", path.display()))
                }
                other => other,
            })
        }
        (None, Some(kind)) => {
            let power = table.pixel_power(grid);
            Ok(match kind {
                Simulated::Gaussian => TrainingData::Gaussian {
                    power,
                    seed: a.data_seed,
                },
                Simulated::Lognormal => TrainingData::LogNormal {
                    field: LogNormal::new(grid, &power, a.lambda.unwrap_or(0.03))?,
                    seed: a.data_seed,
                },
                Simulated::SbiLognormal => TrainingData::SbiLens {
                    model: Box::new(
                        sbi.ok_or_else(|| Error::invalid("--simulate", "no sbi_lens model"))?
                            .clone(),
                    ),
                    seed: a.data_seed,
                },
            })
        }
        (None, None) => Err(Error::invalid(
            "--data",
            "give training maps with --data or simulate them with --simulate gaussian|lognormal|sbi-lognormal",
        )),
    }
}

fn print_bands(trainer: &Trainer, wiener: Option<&GaussianPrior>) -> Result<Vec<BandLoss>> {
    let net = trainer.heldout_loss(true)?;
    let wf = match wiener {
        Some(p) => Some(trainer.heldout_loss_of(&|x, _d, s| {
            let mut o = vec![0.0f32; x.len()];
            p.denoise(x, s, &mut o)?;
            Ok(o)
        })?),
        None => None,
    };
    eprintln!("  held-out MSE (EMA weights):");
    for (i, b) in net.iter().enumerate() {
        match &wf {
            Some(w) => eprintln!(
                "    sigma = {:>5} sigma_d = {:.3e}: {:.4e}   Wiener {:.4e}   ratio {:.3}",
                HELDOUT_SIGMAS[i],
                b.sigma,
                b.mse,
                w[i].mse,
                b.mse / w[i].mse
            ),
            None => eprintln!(
                "    sigma = {:>5} sigma_d = {:.3e}: {:.4e}",
                HELDOUT_SIGMAS[i], b.sigma, b.mse
            ),
        }
    }
    Ok(net)
}

pub fn run(a: Args) -> Result<()> {
    if a.joint {
        return crate::train_joint::run(&a);
    }
    a.cosmo
        .check_used(a.cosmology || a.simulate == Some(Simulated::SbiLognormal))?;
    let sbi = if a.simulate == Some(Simulated::SbiLognormal) {
        check_sbi_lens_grid(&[("--crop", a.crop)], a.pixel_arcmin)?;
        Some(sbi_lens_model(
            &a.cosmo,
            a.cl.is_some(),
            a.cosmology,
            a.lambda.is_some(),
        )?)
    } else {
        None
    };
    let (crop, pixel_arcmin) = match &sbi {
        Some(_) => (sbi_lens::N_PIX, sbi_lens::PIXEL_ARCMIN),
        None => (a.crop.unwrap_or(32), a.pixel_arcmin.unwrap_or(0.5)),
    };
    let grid = Grid::square(crop, pixel_arcmin)?;
    let table = match &sbi {
        Some(m) => m.grid_cl_table()?,
        None if a.cosmology => a.cosmo.cl_table(&grid)?,
        None => load_cl(a.cl.as_deref())?,
    };
    let data = training_data(&a, &grid, &table, sbi.as_ref())?;
    let checkpoint = a.checkpoint_path();
    let mut trainer = match &a.resume {
        Some(path) => {
            let t = Trainer::resume(path, data, Some(a.steps))?;
            eprintln!(
                "lensdiff train: resumed {} at step {}",
                path.display(),
                t.step_count()
            );
            t
        }
        None => {
            let config = a.network();
            let sd = data.sigma_data(&grid)?;
            let kind = a.denoiser_kind();
            let gaussian = (kind == DenoiserKind::Hybrid).then(|| table.clone());
            let mut den = Denoiser::new(
                config,
                DenoiserMeta::new(kind, sd, pixel_arcmin),
                gaussian,
                a.seed,
            )?;
            let what = match (&a.data, a.simulate) {
                (Some(p), _) => format!("maps from {}", p.display()),
                (None, Some(Simulated::Gaussian)) => "simulated Gaussian fields".to_string(),
                (None, Some(Simulated::SbiLognormal)) => {
                    let m = sbi.as_ref().map(|m| m.cosmology());
                    format!(
                        "the sbi_lens 128² log-normal model (Omega_c {}, sigma_8 {})",
                        m.map_or(f64::NAN, |c| c.omega_c),
                        m.map_or(f64::NAN, |c| c.sigma8)
                    )
                }
                (None, _) => format!(
                    "simulated log-normal fields (lambda {})",
                    a.lambda.unwrap_or(0.03)
                ),
            };
            den.set_description(format!(
                "{} denoiser trained by `lensdiff train` on {what}, {}x{} crops at {} arcmin",
                kind.name(),
                crop,
                crop,
                pixel_arcmin
            ));
            let cfg = a.train_config(crop);
            Trainer::new(den, data, cfg)?
        }
    };
    let den = trainer.denoiser();
    eprintln!(
        "lensdiff train: {} U-Net, {} parameters, channels {:?}; sigma_data {:.4e}; {} steps of {} crops {}x{}",
        den.meta().kind.name(),
        den.unet().n_params(),
        den.unet().config().channels,
        den.meta().sigma_data,
        trainer.config().steps,
        trainer.config().batch,
        trainer.config().crop,
        trainer.config().crop
    );
    // The Wiener denoiser of the field's spectrum, the baseline of the held-out table.
    let wiener = GaussianPrior::from_cl(*trainer.grid(), &table).ok();
    train_loop(&mut trainer, &a, &checkpoint, "maps", |t| {
        print_bands(t, wiener.as_ref()).map(|_| ())
    })?;
    trainer.save_model(&a.out)?;
    eprintln!("lensdiff train: {} steps done", trainer.step_count());
    print_bands(&trainer, wiener.as_ref())?;
    eprintln!(
        "lensdiff train: wrote {} (model, EMA weights) and {} (checkpoint)",
        a.out.display(),
        checkpoint.display()
    );
    Ok(())
}
