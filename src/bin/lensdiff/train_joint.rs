//! `lensdiff train --joint`: train a joint denoiser of cosmological parameters
//! and convergence map on simulated pairs or pairs read from files
//! (docs/joint.md).

use lensdiff::cosmo::limber::ClOptions;
use lensdiff::fields::sbi_lens;
use lensdiff::prior::joint::train::{JointBandLoss, JointData, JointPairs, JointTrainer};
use lensdiff::prior::joint::{CosmologyRecipe, GaussianJoint, JointDenoiser, JointDenoiserMeta};
use lensdiff::prior::train::StepStats;
use lensdiff::prior::TrainConfig;
use lensdiff::{Error, Grid, Result};

use crate::common::progress;
use crate::joint_cmd::param_space;
use crate::train_cmd::{train_loop, Args, Simulated, TrainingRun};

impl TrainingRun for JointTrainer {
    fn step(&mut self) -> Result<StepStats> {
        JointTrainer::step(self)
    }
    fn step_count(&self) -> u64 {
        JointTrainer::step_count(self)
    }
    fn config(&self) -> &TrainConfig {
        JointTrainer::config(self)
    }
    fn save_checkpoint(&self, path: &std::path::Path) -> Result<()> {
        JointTrainer::save_checkpoint(self, path)
    }
}

fn print_bands(trainer: &JointTrainer) -> Result<Vec<JointBandLoss>> {
    let (net, exact) = trainer.heldout_loss(true)?;
    eprintln!(
        "  held-out MSE (EMA weights; theta in prior sd², kappa in sigma_d²), network | exact Gaussian joint denoiser:"
    );
    for (b, e) in net.iter().zip(&exact) {
        eprintln!(
            "    sigma {:>5}: theta {:.4e} | {:.4e}   kappa {:.4e} | {:.4e}",
            b.sigma, b.mse_u, e.mse_u, b.mse_k, e.mse_k
        );
    }
    Ok(net)
}

pub fn run(a: &Args) -> Result<()> {
    if a.cl.is_some() || a.cosmology {
        return Err(Error::invalid(
            "--joint",
            "joint training takes its spectra from the cosmology flags at each theta: drop --cl and --cosmology",
        ));
    }
    if a.lambda.is_some() && (a.data.is_some() || a.simulate != Some(Simulated::Lognormal)) {
        return Err(Error::invalid(
            "--lambda",
            "with --joint, --lambda is the shift of --simulate lognormal",
        ));
    }
    let space = param_space(&a.params, a.params_file.as_deref())?;
    let recipe_of_flags = || -> Result<CosmologyRecipe> {
        Ok(CosmologyRecipe {
            base: a.cosmo.cosmology()?,
            source: a.cosmo.nz()?.source()?,
            cl: ClOptions::default(),
        })
    };
    let simulated_grid = || Grid::square(a.crop.unwrap_or(32), a.pixel_arcmin.unwrap_or(0.5));
    let (data, grid, recipe) = match (&a.data, a.simulate) {
        (Some(maps), _) => {
            let theta = a.theta.as_deref().ok_or_else(|| {
                Error::invalid(
                    "--theta",
                    "joint training from files needs the parameters of each map: --data MAPS --theta TABLE \
                     (CSV with a header row of parameter names, or npy [count][p])",
                )
            })?;
            let pairs = JointPairs::read(maps, theta, space.names())?;
            // the columns must be the parameters: checked before any work
            pairs.standardised(&space)?;
            // the flag, else the FITS WCS; the trainer refuses a flag the WCS contradicts
            let pixel = match (a.pixel_arcmin, pairs.pixel_arcmin()) {
                (Some(p), _) | (None, Some(p)) => p,
                (None, None) => {
                    return Err(Error::invalid(
                        "--pixel-arcmin",
                        format!(
                            "{} has no WCS: give the maps' pixel size in arcmin",
                            maps.display()
                        ),
                    ))
                }
            };
            let grid = Grid::square(a.crop.unwrap_or(32), pixel)?;
            (JointData::Pairs(pairs), grid, recipe_of_flags()?)
        }
        (None, Some(Simulated::Gaussian)) => (
            JointData::Gaussian { seed: a.data_seed },
            simulated_grid()?,
            recipe_of_flags()?,
        ),
        (None, Some(Simulated::Lognormal)) => (
            JointData::LogNormal {
                seed: a.data_seed,
                lambda: a.lambda.unwrap_or(0.03),
            },
            simulated_grid()?,
            recipe_of_flags()?,
        ),
        (None, Some(Simulated::SbiLognormal)) => {
            crate::simulate::check_sbi_lens_grid(&[("--crop", a.crop)], a.pixel_arcmin)?;
            a.cosmo.check_used(false).map_err(|_| {
                Error::invalid(
                    "--joint",
                    "the sbi_lens model fixes its cosmology and sources: drop the cosmology flags",
                )
            })?;
            let grid = Grid::square(sbi_lens::N_PIX, sbi_lens::PIXEL_ARCMIN)?;
            let m = space.mean();
            let recipe = CosmologyRecipe {
                base: sbi_lens::cosmology(m[0], m.get(1).copied().unwrap_or(0.8))?,
                source: sbi_lens::source()?,
                cl: ClOptions::default(),
            };
            (JointData::SbiLens { seed: a.data_seed }, grid, recipe)
        }
        (None, None) => {
            return Err(Error::invalid(
                "--simulate",
                "joint training simulates pairs with --simulate gaussian|lognormal|sbi-lognormal \
                 or reads them with --data MAPS --theta TABLE",
            ))
        }
    };
    let checkpoint = a.checkpoint_path();
    let mut trainer = match &a.resume {
        Some(path) => {
            let t = JointTrainer::resume(path, data, Some(a.steps))?;
            eprintln!(
                "lensdiff train: resumed {} at step {}",
                path.display(),
                t.step_count()
            );
            t
        }
        None => {
            let mut config = a.network();
            config.joint_params = space.len();
            let pb = progress(None, "spectra over the parameter prior box");
            let sd = GaussianJoint::from_cosmology(
                &grid,
                &space,
                &recipe.base,
                &recipe.source,
                &recipe.cl,
            );
            pb.finish_and_clear();
            let sd = sd?.sigma_d();
            let kind = a.denoiser_kind();
            let mut meta = JointDenoiserMeta::new(kind, &space, sd, grid.pixel_arcmin);
            meta.gaussian = Some(recipe);
            let mut den = JointDenoiser::new(config, meta, a.seed)?;
            let what = match &data {
                JointData::Gaussian { .. } => "Gaussian fields of C_ell(theta)".to_string(),
                JointData::LogNormal { lambda, .. } => {
                    format!("log-normal fields of C_ell(theta) (lambda {lambda})")
                }
                JointData::SbiLens { .. } => "the sbi_lens 128² log-normal model".to_string(),
                JointData::Pairs(p) => {
                    let (ny, nx) = p.map_shape();
                    let files = format!(
                        "{} with {}",
                        a.data
                            .as_deref()
                            .map_or("?".into(), |p| p.display().to_string()),
                        a.theta
                            .as_deref()
                            .map_or("?".into(), |p| p.display().to_string())
                    );
                    eprintln!(
                        "lensdiff train: {} pairs {ny}x{nx} ({files}); maps' pixel std {:.4e}, \
                         sigma_d of the Gaussian joint prior {sd:.4e}",
                        p.count(),
                        p.pixel_std()
                    );
                    format!("{} (theta, kappa) pairs from {files}", p.count())
                }
            };
            den.set_description(format!(
                "{} joint denoiser of ({}) trained by `lensdiff train --joint` on {what}, {}x{} maps at {} arcmin",
                kind.name(),
                space.names().join(", "),
                grid.ny,
                grid.nx,
                grid.pixel_arcmin
            ));
            let cfg = a.train_config(grid.nx);
            let pb = progress(None, "held-out pairs");
            let t = JointTrainer::new(den, data, cfg);
            pb.finish_and_clear();
            t?
        }
    };
    let den = trainer.denoiser();
    eprintln!(
        "lensdiff train: joint {} U-Net of ({}), {} parameters, channels {:?}; sigma_d {:.4e}; {} steps of {} pairs {}x{}",
        den.meta().kind.name(),
        den.space().names().join(", "),
        den.unet().n_params(),
        den.unet().config().channels,
        den.meta().sigma_d,
        trainer.config().steps,
        trainer.config().batch,
        trainer.config().crop,
        trainer.config().crop
    );
    train_loop(&mut trainer, a, &checkpoint, "pairs", |t| {
        print_bands(t).map(|_| ())
    })?;
    trainer.save_model(&a.out)?;
    eprintln!("lensdiff train: {} steps done", trainer.step_count());
    print_bands(&trainer)?;
    eprintln!(
        "lensdiff train: wrote {} (joint model, EMA weights) and {} (checkpoint)",
        a.out.display(),
        checkpoint.display()
    );
    Ok(())
}
