//! `lensdiff sample`: posterior samples of kappa.

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use lensdiff::backend::Device;
use lensdiff::baselines::kaiser_squires;
use lensdiff::prior::Denoiser;
use lensdiff::prior::{GaussianPrior, NeuralPrior, Prior};
use lensdiff::sampler::{
    sample, Guidance, GuidedPosterior, RefineMethod, Refinement, RunSpec, SampleSet, SamplerConfig,
    SamplerKind,
};
use lensdiff::smoothing::Boundary;
use lensdiff::{Error, Grid, Result};

use crate::common::{
    load_cl, progress, robust_range, save, save_figure, GridArgs, NoiseArgs, Panel, ShearInput,
    ShearMaps,
};
use crate::simulate::Format;

#[derive(Clone, Copy, ValueEnum)]
pub enum SamplerArg {
    /// Probability-flow ODE, Heun's method (default).
    Heun,
    /// Karras et al.'s stochastic sampler.
    Edm,
    /// Reverse SDE, Euler–Maruyama.
    Em,
    /// Predictor–corrector (Langevin corrector).
    Pc,
    /// Annealed HMC (jax-lensing).
    Hmc,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum GuidanceArg {
    /// Woodbury with the prior's Gaussian covariance (exact for the Gaussian prior).
    Spectral,
    /// Noise-inflated likelihood, variance sigma_pix² + c sigma².
    Annealed,
    /// Tweedie/DPS through the denoiser's Jacobian.
    Tweedie,
    /// Tweedie with the noise inflated by the prior's posterior variance.
    TweedieInflated,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum RefineArg {
    /// Unadjusted Langevin steps.
    Langevin,
    /// HMC steps with a Metropolis test.
    Hmc,
}

/// Sampler settings shared by `sample` and `demo`.
#[derive(clap::Args, Clone)]
pub struct SamplerArgs {
    /// Integrator [default: heun; edm for `joint`].
    #[arg(long, value_enum)]
    pub sampler: Option<SamplerArg>,
    /// Likelihood guidance scheme.
    #[arg(long, value_enum, default_value_t = GuidanceArg::Spectral)]
    pub guidance: GuidanceArg,
    /// Noise levels (default: 64 for heun, 128 edm, 1000 em, 500 pc, 600 hmc).
    #[arg(long)]
    pub levels: Option<usize>,
    /// Largest noise level (default: 20 x the prior's largest pixel std).
    #[arg(long)]
    pub sigma_max: Option<f64>,
    /// Smallest noise level.
    #[arg(long, default_value_t = 1e-4)]
    pub sigma_min: f64,
    /// Annealed guidance: inflation coefficient c.
    #[arg(long, default_value_t = 0.5)]
    pub anneal_c: f64,
    /// Spectral guidance: relative residual of the inner conjugate-gradient solve.
    #[arg(long, default_value_t = 1e-4)]
    pub inner_tol: f64,
    /// Optional refinement at sigma_min.
    #[arg(long, value_enum)]
    pub refine: Option<RefineArg>,
    /// Refinement steps.
    #[arg(long, default_value_t = Refinement::default_steps())]
    pub refine_steps: usize,
    /// Refinement step in units whitened by the prior's Gaussian posterior
    /// approximation (default 0.5 for hmc, 0.1 for langevin).
    #[arg(long)]
    pub refine_step: Option<f64>,
    /// Number of chains (posterior samples).
    #[arg(long, default_value_t = 16)]
    pub chains: usize,
    /// Chains integrated together (memory: chains x map size x 4 bytes x ~6).
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Random seed (chain c of seed s is the same whatever --batch).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where to run: `cpu`, or a CUDA GPU as `cuda:N` (`cuda` = `cuda:0`;
    /// Gaussian prior; needs the NVIDIA driver, NVRTC and cuFFT libraries).
    #[arg(long, default_value = "cpu", value_parser = crate::common::parse_device)]
    pub device: Device,
}

impl SamplerArgs {
    /// The seed, chains, batch and device of the run.
    pub fn run_spec(&self) -> RunSpec {
        RunSpec::new(self.seed, self.chains)
            .in_batches(self.batch.max(1))
            .on(self.device)
    }

    /// The sampler settings, Heun unless `--sampler` says otherwise.
    pub fn config(&self) -> SamplerConfig {
        self.config_or(SamplerArg::Heun)
    }

    /// The sampler settings with `default` as the integrator unless
    /// `--sampler` says otherwise.
    pub fn config_or(&self, default: SamplerArg) -> SamplerConfig {
        let name = match self.sampler.unwrap_or(default) {
            SamplerArg::Heun => "heun",
            SamplerArg::Edm => "edm",
            SamplerArg::Em => "em",
            SamplerArg::Pc => "pc",
            SamplerArg::Hmc => "hmc",
        };
        let kind = SamplerKind::from_name(name).unwrap_or(SamplerKind::HeunOde);
        SamplerConfig {
            kind,
            levels: self.levels.unwrap_or(kind.default_levels()),
            sigma_max: self.sigma_max,
            sigma_min: self.sigma_min,
            schedule: None,
            refine: self.refine.map(|r| {
                let method = match r {
                    RefineArg::Langevin => RefineMethod::Langevin,
                    RefineArg::Hmc => RefineMethod::Hmc,
                };
                Refinement::new(method, self.refine_steps, self.refine_step)
            }),
        }
    }

    pub fn guidance(&self) -> Guidance {
        match self.guidance {
            GuidanceArg::Spectral => Guidance::Spectral {
                tol: self.inner_tol,
            },
            GuidanceArg::Annealed => Guidance::Annealed { c: self.anneal_c },
            GuidanceArg::Tweedie => Guidance::Tweedie { inflate: false },
            GuidanceArg::TweedieInflated => Guidance::Tweedie { inflate: true },
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub input: ShearInput,
    #[command(flatten)]
    pub grid: GridArgs,
    #[command(flatten)]
    pub noise: NoiseArgs,
    /// C_ell table of the Gaussian prior, the prior used without --model
    /// (default: built-in kappaTNG-like spectrum); with a pure --model, the
    /// Gaussian model the guidance uses.
    #[arg(long)]
    pub cl: Option<PathBuf>,
    /// Learned prior: a denoiser from `lensdiff train` (safetensors) instead of the Gaussian prior.
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    pub sampler: SamplerArgs,
    /// Output folder: samples, mean, std, ks, summary.json, figure.png.
    #[arg(long)]
    pub out: PathBuf,
    /// Output file format of the maps.
    #[arg(long, value_enum, default_value_t = Format::Fits)]
    pub format: Format,
    /// Do not write the sample cube (mean and std only).
    #[arg(long)]
    pub no_samples: bool,
    /// Under mpirun (builds with the `mpi` feature): each rank writes its own
    /// chains to samples_rankR instead of gathering all samples on rank 0.
    #[arg(long)]
    pub per_rank: bool,
}

/// Runs the sampler with a progress bar.
pub fn run_chains(
    post: &GuidedPosterior,
    cfg: &SamplerConfig,
    s: &SamplerArgs,
) -> Result<SampleSet> {
    let pb = progress(None, "sampling");
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} levels {elapsed} (eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let set = sample(post, cfg, &s.run_spec(), &mut |done, total| {
        pb.set_length(total as u64);
        pb.set_position(done as u64);
    });
    pb.finish_and_clear();
    set
}

/// `summary.json` of a run: the configuration, then what it cost and the
/// per-chain diagnostics (non-finite numbers are written as `null`).
#[derive(serde::Serialize)]
pub struct Summary {
    #[serde(flatten)]
    pub config: RunConfig,
    #[serde(flatten)]
    pub work: Work,
}

/// The configuration part of `summary.json`.
#[derive(serde::Serialize)]
pub struct RunConfig {
    pub prior: String,
    pub guidance: String,
    pub sampler: String,
    pub device: String,
    pub levels: usize,
    pub sigma_max: f64,
    pub sigma_min: f64,
    pub seed: u64,
    pub grid: [usize; 2],
    pub pixel_arcmin: f64,
    pub observed_pixels: usize,
    /// The MPI split, when run under `mpirun`.
    pub mpi: Option<String>,
}

/// What a run did, over all its chains (all ranks of an MPI run).
#[derive(serde::Serialize)]
pub struct Work {
    pub chains: usize,
    pub nfe_per_chain: u64,
    pub inner_cg_iterations: u64,
    pub seconds: f64,
    pub samples_per_second: f64,
    pub chi2_per_dof: Vec<f64>,
    pub acceptance: Option<Vec<f64>>,
}

impl Work {
    /// The work of `chains` chains in `seconds`.
    fn new(
        chains: usize,
        nfe: u64,
        inner: u64,
        seconds: f64,
        chi2: Vec<f64>,
        acceptance: Option<Vec<f64>>,
    ) -> Work {
        Work {
            chains,
            nfe_per_chain: nfe,
            inner_cg_iterations: inner,
            seconds,
            samples_per_second: chains as f64 / seconds.max(1e-9),
            chi2_per_dof: chi2,
            acceptance,
        }
    }

    /// The work of the chains of `set`.
    pub fn of(set: &SampleSet) -> Work {
        Work::new(
            set.chains(),
            set.nfe,
            set.inner_iterations,
            set.seconds,
            set.chi2.clone(),
            set.acceptance.clone(),
        )
    }
}

impl Summary {
    /// Writes it as pretty-printed JSON.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::invalid("summary", format!("cannot encode summary.json: {e}")))?;
        std::fs::write(path, text + "\n").map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Results on the rank that writes outputs: the chains it holds, the moments
/// of all chains, and a note on the MPI split (if any).
/// The chains are rank 0's own with `--per-rank`; the work is always all ranks'.
type RootResult = (SampleSet, lensdiff::sampler::Moments, Option<String>, Work);

#[cfg(not(feature = "mpi"))]
fn sample_maybe_mpi(
    post: &GuidedPosterior,
    cfg: &SamplerConfig,
    a: &Args,
    _grid: Grid,
) -> Result<Option<RootResult>> {
    let _ = a.per_rank;
    let set = run_chains(post, cfg, &a.sampler)?;
    let m = set.moments();
    let work = Work::of(&set);
    Ok(Some((set, m, None, work)))
}

/// Under `mpirun` (detected from the launcher's environment) the chains are
/// split across ranks; otherwise this is a plain run.
#[cfg(feature = "mpi")]
fn sample_maybe_mpi(
    post: &GuidedPosterior,
    cfg: &SamplerConfig,
    a: &Args,
    grid: Grid,
) -> Result<Option<RootResult>> {
    use ::mpi::traits::Communicator;
    let launched = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    if !launched {
        let set = run_chains(post, cfg, &a.sampler)?;
        let m = set.moments();
        let work = Work::of(&set);
        return Ok(Some((set, m, None, work)));
    }
    if a.sampler.device != Device::Cpu {
        return Err(Error::invalid(
            "--device",
            "MPI runs use the CPU backend for now: drop --device or run without mpirun",
        ));
    }
    let (universe, threading) = ::mpi::initialize_with_threading(::mpi::Threading::Funneled)
        .ok_or_else(|| Error::invalid("mpi", "MPI was already initialised"))?;
    let world = universe.world();
    let rank = world.rank();
    let single = threading == ::mpi::Threading::Single;
    let gather = !a.per_rank;
    let pb = if rank == 0 {
        Some(crate::common::progress(None, "sampling (rank 0)"))
    } else {
        None
    };
    let out = lensdiff::mpi_run::sample_distributed(
        &world,
        post,
        cfg,
        &a.sampler.run_spec(),
        gather,
        single,
        &mut |done, total| {
            if let Some(p) = &pb {
                p.set_length(total as u64);
                p.set_position(done as u64);
            }
        },
    );
    if let Some(p) = pb {
        p.finish_and_clear();
    }
    let out = out?;
    if a.per_rank {
        if let Some(local) = &out.local {
            let ext = a.format.ext();
            std::fs::create_dir_all(&a.out).map_err(|source| Error::Io {
                path: a.out.clone(),
                source,
            })?;
            save(
                &a.out.join(format!("samples_rank{rank}.{ext}")),
                &local.samples,
                &[local.chains(), grid.ny, grid.nx],
                None,
                Some("kappa"),
            )?;
        }
    }
    let note = format!(
        "{} MPI ranks: compute {:.2} s (slowest rank), communication {:.3} s (rank 0)",
        out.ranks, out.max_compute_seconds, out.comm_seconds
    );
    if rank != 0 {
        return Ok(None);
    }
    let moments = out.moments.clone();
    let work = Work::new(
        out.chains,
        out.nfe,
        out.inner_iterations,
        out.max_compute_seconds + out.comm_seconds,
        out.chi2.clone().unwrap_or_default(),
        out.acceptance.clone(),
    );
    let set = out.into_set(grid);
    if set.chains() == 0 {
        return Err(Error::invalid("mpi", "rank 0 holds no chains"));
    }
    Ok(Some((set, moments, Some(note), work)))
}

pub fn run(a: Args) -> Result<()> {
    let ShearMaps { grid, data, wcs } = a.input.load(&a.grid, &a.noise)?;
    let table = load_cl(a.cl.as_deref())?;
    let prior: Box<dyn Prior> = match &a.model {
        Some(p) => {
            let np = NeuralPrior::new(Denoiser::load(p)?, grid)?;
            // a pure network has no Gaussian part: guidance uses the C_ell's
            if np.gaussian_power().is_none() {
                Box::new(np.with_guidance_power(table.pixel_power(&grid))?)
            } else {
                Box::new(np)
            }
        }
        None => Box::new(GaussianPrior::from_cl(grid, &table)?),
    };
    let post = GuidedPosterior::new(prior.as_ref(), &data, a.sampler.guidance())?;
    let cfg = a.sampler.config();
    std::fs::create_dir_all(&a.out).map_err(|source| Error::Io {
        path: a.out.clone(),
        source,
    })?;
    let (set, m, mpi_note, work) = match sample_maybe_mpi(&post, &cfg, &a, grid)? {
        Some(x) => x,
        None => return Ok(()), // an MPI rank other than 0: rank 0 writes the outputs
    };
    let (mean, std) = (m.mean_f32(), m.std_f32());
    let ext = a.format.ext();
    let shape = [grid.ny, grid.nx];
    save(
        &a.out.join(format!("mean.{ext}")),
        &mean,
        &shape,
        wcs.as_ref(),
        Some("kappa"),
    )?;
    save(
        &a.out.join(format!("std.{ext}")),
        &std,
        &shape,
        wcs.as_ref(),
        Some("kappa"),
    )?;
    if !a.no_samples && !a.per_rank {
        save(
            &a.out.join(format!("samples.{ext}")),
            &set.samples,
            &[set.chains(), grid.ny, grid.nx],
            wcs.as_ref(),
            Some("kappa"),
        )?;
    }
    let (ks, _) = kaiser_squires(&grid, &data.g1, &data.g2, 2.0, Boundary::Periodic)?;
    save(
        &a.out.join(format!("ks.{ext}")),
        &ks,
        &shape,
        wcs.as_ref(),
        Some("kappa"),
    )?;
    let config = RunConfig {
        prior: match &a.model {
            Some(p) => format!("{} ({})", prior.name(), p.display()),
            None => format!(
                "gaussian ({})",
                a.cl.as_ref()
                    .map_or("built-in C_ell".into(), |p| p.display().to_string())
            ),
        },
        guidance: post.guidance().name().into(),
        sampler: cfg.kind.name().into(),
        device: a.sampler.device.to_string(),
        levels: cfg.levels,
        sigma_max: cfg.noise_levels(&post)?[0],
        sigma_min: cfg.sigma_min,
        seed: a.sampler.seed,
        grid: [grid.ny, grid.nx],
        pixel_arcmin: grid.pixel_arcmin,
        observed_pixels: data.noise.n_observed(),
        mpi: mpi_note.clone(),
    };
    let summary = Summary { config, work };
    summary.write(&a.out.join("summary.json"))?;
    let mask = data.noise.mask();
    let r = robust_range(&mean, Some(&mask));
    let mut panels = vec![
        Panel::new("posterior mean", &mean, &grid, "kappa")
            .masked(Some(&mask), &grid)
            .range(r),
        Panel::new("posterior std", &std, &grid, "kappa").masked(Some(&mask), &grid),
        Panel::new("KS, 2 px", &ks, &grid, "kappa")
            .masked(Some(&mask), &grid)
            .range(r),
    ];
    let sr = robust_range(set.sample(0), Some(&mask));
    for i in 0..set.chains().min(2) {
        panels.push(
            Panel::new(&format!("sample {}", i + 1), set.sample(i), &grid, "kappa")
                .masked(Some(&mask), &grid)
                .range(sr),
        );
    }
    save_figure(
        &a.out.join("figure.png"),
        &panels,
        &grid,
        3,
        Some("lensdiff sample"),
    )?;
    let (c, w) = (&summary.config, &summary.work);
    let chi2 = w.chi2_per_dof.iter().sum::<f64>() / w.chi2_per_dof.len().max(1) as f64;
    println!(
        "sample: {} chains of {}x{} ({} / {} guidance, {} NFE per chain) in {:.1} s ({:.3} samples/s); shear chi2/dof {:.3} -> {}",
        w.chains,
        grid.ny,
        grid.nx,
        c.sampler,
        c.guidance,
        w.nfe_per_chain,
        w.seconds,
        w.samples_per_second,
        chi2,
        a.out.display()
    );
    if let Some(n) = &mpi_note {
        println!("  {n}");
    }
    Ok(())
}
