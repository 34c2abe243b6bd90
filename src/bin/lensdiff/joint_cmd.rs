//! `lensdiff joint`: joint posterior samples of cosmological parameters and
//! the convergence map from shear (docs/joint.md).

use std::path::PathBuf;

use lensdiff::backend::Device;
use lensdiff::baselines::kaiser_squires;
use lensdiff::cosmo::limber::ClOptions;
use lensdiff::plot::{save_corner, CornerPlot};
use lensdiff::prior::joint::{
    CosmologyRecipe, GaussianJoint, JointDenoiser, JointPrior, NeuralJoint, ParamSpace, MAX_PARAMS,
};
use lensdiff::sampler::joint_guided::{
    joint_defaults, to_physical, JointGuidedPosterior, PhysicalJoint,
};
use lensdiff::sampler::{sample, Model, SampleSet, SamplerConfig, SamplerKind};
use lensdiff::smoothing::Boundary;
use lensdiff::{Error, Result};

use crate::common::{
    progress, robust_range, save, save_figure, CosmologyArgs, GridArgs, NoiseArgs, Panel,
    ShearInput, ShearMaps,
};
use crate::sample_cmd::{RunConfig, SamplerArg, SamplerArgs, Work};
use crate::simulate::Format;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub input: ShearInput,
    #[command(flatten)]
    pub grid: GridArgs,
    #[command(flatten)]
    pub noise: NoiseArgs,
    /// The joint prior: Gaussian fields whose C_ell follows the cosmology
    /// (Eisenstein-Hu, halofit, Limber, the --nz sources), the parameters of
    /// --param varied under their Gaussian priors, the others fixed by the
    /// cosmology flags.
    #[arg(long, required_unless_present = "model", conflicts_with = "model")]
    pub gaussian_cosmology: bool,
    /// The joint prior: a learned joint denoiser (`lensdiff train --joint`);
    /// its parameters, priors and pixel are the model's. A pure model without
    /// a cosmology takes the guidance's Gaussian model from the cosmology flags.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// A varied parameter and its Gaussian prior, NAME=MEAN,STD (repeat; 1 to 3;
    /// names: omega_c, omega_b, h, n_s, sigma8, w0, wa) [default: the sbi_lens
    /// priors omega_c=0.3,0.05 sigma8=0.8,0.05]; not with --model.
    #[arg(long = "param", value_name = "NAME=MEAN,STD")]
    pub params: Vec<String>,
    /// The varied parameters and their priors from a JSON file, a list in the order of
    /// the joint state: [{"name": "omega_c", "mean": 0.3, "std": 0.05}, ...]; not with
    /// --param or --model.
    #[arg(long, value_name = "FILE")]
    pub params_file: Option<PathBuf>,
    /// True parameter values for the corner plot, NAME=VALUE (repeat).
    #[arg(long = "truth", value_name = "NAME=VALUE")]
    pub truth: Vec<String>,
    #[command(flatten)]
    pub cosmology: CosmologyArgs,
    #[command(flatten)]
    pub sampler: SamplerArgs,
    /// Output folder: theta.npy, theta.csv, corner.png, samples, mean, std,
    /// ks, summary.json, figure.png.
    #[arg(long)]
    pub out: PathBuf,
    /// Output file format of the maps.
    #[arg(long, value_enum, default_value_t = Format::Fits)]
    pub format: Format,
    /// Do not write the map samples (mean and std only).
    #[arg(long)]
    pub no_samples: bool,
}

/// The parameter space of the `--param` flags or of the `--params-file` JSON
/// file (the sbi_lens priors without either; both are refused).
pub(crate) fn param_space(flags: &[String], file: Option<&std::path::Path>) -> Result<ParamSpace> {
    if let Some(path) = file {
        if !flags.is_empty() {
            return Err(Error::invalid(
                "--params-file",
                "give the parameters with --param or with --params-file, not both",
            ));
        }
        return ParamSpace::read_json(path);
    }
    if flags.is_empty() {
        return Ok(ParamSpace::sbi_lens());
    }
    let mut names = Vec::new();
    let (mut mean, mut std) = (Vec::new(), Vec::new());
    for f in flags {
        let bad = || {
            Error::invalid(
                "--param",
                format!("expected NAME=MEAN,STD (e.g. omega_c=0.3,0.05), got `{f}`"),
            )
        };
        let (name, rest) = f.split_once('=').ok_or_else(bad)?;
        let (m, s) = rest.split_once(',').ok_or_else(bad)?;
        names.push(name.trim().to_string());
        mean.push(m.trim().parse::<f64>().map_err(|_| bad())?);
        std.push(s.trim().parse::<f64>().map_err(|_| bad())?);
    }
    let refs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    ParamSpace::new(&refs, &mean, &std)
}

/// The `--truth` values in the order of `space` (`None` without any flag).
fn truth_values(flags: &[String], space: &ParamSpace) -> Result<Option<Vec<f64>>> {
    if flags.is_empty() {
        return Ok(None);
    }
    let mut out = vec![f64::NAN; space.len()];
    for f in flags {
        let bad = || {
            Error::invalid(
                "--truth",
                format!("expected NAME=VALUE (e.g. sigma8=0.8), got `{f}`"),
            )
        };
        let (name, v) = f.split_once('=').ok_or_else(bad)?;
        let i = space
            .names()
            .iter()
            .position(|n| n == name.trim())
            .ok_or_else(|| {
                Error::invalid(
                    "--truth",
                    format!(
                        "`{}` is not a varied parameter ({})",
                        name.trim(),
                        space.names().join(", ")
                    ),
                )
            })?;
        out[i] = v.trim().parse::<f64>().map_err(|_| bad())?;
    }
    if out.iter().any(|v| !v.is_finite()) {
        return Err(Error::invalid(
            "--truth",
            format!(
                "give a finite value for every parameter ({})",
                space.names().join(", ")
            ),
        ));
    }
    Ok(Some(out))
}

/// One parameter's marginal in `summary.json`.
#[derive(serde::Serialize)]
struct ParamSummary {
    name: String,
    prior_mean: f64,
    prior_std: f64,
    mean: f64,
    std: f64,
    q16: f64,
    median: f64,
    q84: f64,
}

#[derive(serde::Serialize)]
struct JointSummary {
    #[serde(flatten)]
    config: RunConfig,
    parameters: Vec<ParamSummary>,
    /// The parameters' correlation matrix, `p x p`.
    correlation: Vec<Vec<f64>>,
    #[serde(flatten)]
    work: Work,
}

/// Mean, std and the 16/50/84% quantiles of column `d` of `theta [n][p]`.
fn marginal(theta: &[f64], p: usize, d: usize) -> (f64, f64, [f64; 3]) {
    let mut v: Vec<f64> = theta.iter().skip(d).step_by(p).copied().collect();
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
    v.sort_by(f64::total_cmp);
    let q = |f: f64| {
        let x = f * (v.len() - 1) as f64;
        let (i, t) = (x.floor() as usize, x - x.floor());
        v[i] + t * (v[(i + 1).min(v.len() - 1)] - v[i])
    };
    (mean, std, [q(0.16), q(0.5), q(0.84)])
}

pub fn run(a: Args) -> Result<()> {
    let maps = a.input.load(&a.grid, &a.noise)?;
    if a.sampler.device != Device::Cpu {
        return Err(Error::invalid(
            "--device",
            "joint sampling runs on the CPU for now: drop --device",
        ));
    }
    match &a.model {
        Some(path) => run_learned(&a, path, maps),
        None => run_gaussian(&a, maps),
    }
}

/// `--model`: the learned joint prior.
fn run_learned(a: &Args, path: &std::path::Path, maps: ShearMaps) -> Result<()> {
    if !a.params.is_empty() || a.params_file.is_some() {
        return Err(Error::invalid(
            "--param",
            "a learned joint prior fixes its parameters and priors: drop --param and --params-file",
        ));
    }
    let den = JointDenoiser::load(path)?;
    let space = den.space().clone();
    let truth = truth_values(&a.truth, &space)?;
    let kind = den.meta().kind.name();
    let pb = progress(None, "spectra over the parameter prior box");
    let prior = NeuralJoint::new(den, maps.grid);
    pb.finish_and_clear();
    let mut prior = prior?;
    let u0 = vec![0.0; space.len()];
    if prior.gaussian_power(&u0)?.is_none() {
        // a pure model without a cosmology: the guidance's Gaussian model from the flags
        let recipe = CosmologyRecipe {
            base: a.cosmology.cosmology()?,
            source: a.cosmology.nz()?.source()?,
            cl: ClOptions::default(),
        };
        let g = recipe.gaussian(&maps.grid, &space, prior.sigma_d())?;
        prior = prior.with_guidance(g)?;
    }
    let desc = format!("learned joint ({kind}, {})", path.display());
    sample_and_write(a, maps, &prior, truth, desc)
}

/// `--gaussian-cosmology`: the exact Gaussian joint prior.
fn run_gaussian(a: &Args, maps: ShearMaps) -> Result<()> {
    let grid = maps.grid;
    let space = param_space(&a.params, a.params_file.as_deref())?;
    let p = space.len();
    if p > lensdiff::prior::joint::table::MAX_TABLE_PARAMS {
        return Err(Error::invalid(
            "--param",
            format!(
                "the Gaussian joint prior takes at most {} parameters (of {MAX_PARAMS} in a joint state), got {p}",
                lensdiff::prior::joint::table::MAX_TABLE_PARAMS
            ),
        ));
    }
    let truth = truth_values(&a.truth, &space)?;
    let base = a.cosmology.cosmology()?;
    let source = a.cosmology.nz()?.source()?;
    let pb = progress(None, "spectra over the parameter prior box");
    let prior = GaussianJoint::from_cosmology(&grid, &space, &base, &source, &ClOptions::default());
    pb.finish_and_clear();
    let prior = prior?;
    let desc = format!(
        "gaussian joint ({}; nz {})",
        space
            .names()
            .iter()
            .zip(space.mean().iter().zip(space.std()))
            .map(|(n, (m, s))| format!("{n} ~ N({m}, {s}²)"))
            .collect::<Vec<_>>()
            .join(", "),
        a.cosmology.nz_spec()
    );
    sample_and_write(a, maps, &prior, truth, desc)
}

/// Samples the joint posterior with `prior` and writes every output.
fn sample_and_write<P: JointPrior>(
    a: &Args,
    maps: ShearMaps,
    prior: &P,
    truth: Option<Vec<f64>>,
    prior_desc: String,
) -> Result<()> {
    let ShearMaps { grid, data, wcs } = maps;
    let space = prior.space();
    let p = space.len();
    // EDM by default: Heun's ODE is biased with the joint guidance (docs/joint.md)
    let mut cfg = a.sampler.config_or(SamplerArg::Edm);
    // the integrators' joint-state defaults (em: 2000 levels; pc: SNR 0.08, 1000 levels)
    let (kind, levels) = joint_defaults(cfg.kind);
    cfg.kind = kind;
    cfg.levels = a.sampler.levels.unwrap_or(levels);
    if !matches!(
        cfg.kind,
        SamplerKind::HeunOde | SamplerKind::EdmStochastic { .. }
    ) {
        eprintln!(
            "lensdiff: note: {} is checked on the joint state only against 120-chain bounds at its joint default levels (docs/joint.md); heun and edm are validated with 2000 chains",
            cfg.kind.name()
        );
    }
    let post = JointGuidedPosterior::new(prior, &data, a.sampler.guidance())?;
    std::fs::create_dir_all(&a.out).map_err(|source| Error::Io {
        path: a.out.clone(),
        source,
    })?;
    let Some((mut set, mpi_note)) = run_chains(&post, &cfg, a)? else {
        return Ok(()); // an MPI rank other than 0: rank 0 writes
    };
    // joint units to physical ones: kappa = sigma_d k, theta = mu + s u
    let PhysicalJoint { theta, moments: m } = to_physical(space, prior.sigma_d(), &mut set, None)?;
    let chains = set.chains();
    let (mean, std) = (m.mean_f32(), m.std_f32());
    let ext = a.format.ext();
    let shape = [grid.ny, grid.nx];
    let kappa = Some("kappa");
    save(
        &a.out.join(format!("mean.{ext}")),
        &mean,
        &shape,
        wcs.as_ref(),
        kappa,
    )?;
    save(
        &a.out.join(format!("std.{ext}")),
        &std,
        &shape,
        wcs.as_ref(),
        kappa,
    )?;
    if !a.no_samples {
        save(
            &a.out.join(format!("samples.{ext}")),
            &set.samples,
            &[chains, grid.ny, grid.nx],
            wcs.as_ref(),
            kappa,
        )?;
    }
    let (ks, _) = kaiser_squires(&grid, &data.g1, &data.g2, 2.0, Boundary::Periodic)?;
    save(
        &a.out.join(format!("ks.{ext}")),
        &ks,
        &shape,
        wcs.as_ref(),
        kappa,
    )?;
    // theta: npy [chains][p] and CSV with the names
    let arr = ndarray::ArrayViewD::from_shape(vec![chains, p], &theta)
        .map_err(|e| Error::invalid("output", format!("internal shape error: {e}")))?;
    lensdiff::io::npy::write_f64(&a.out.join("theta.npy"), arr)?;
    let mut csv = format!("chain,{}\n", space.names().join(","));
    for (c, row) in theta.chunks(p).enumerate() {
        let vals: Vec<String> = row.iter().map(|v| format!("{v:.8e}")).collect();
        csv += &format!("{c},{}\n", vals.join(","));
    }
    let csv_path = a.out.join("theta.csv");
    std::fs::write(&csv_path, csv).map_err(|source| Error::Io {
        path: csv_path,
        source,
    })?;
    // the corner plot
    let mut corner = CornerPlot::new(space.names().to_vec(), &theta);
    // about 2 sqrt(n) bins: 8 for 16 chains, 40 from 400
    corner.bins = ((2.0 * (chains as f64).sqrt()) as usize).clamp(8, 40);
    corner.truth = truth.clone();
    corner.title = Some(format!(
        "lensdiff joint: {chains} chains ({}, {} guidance)",
        cfg.kind.name(),
        post.guidance().name()
    ));
    save_corner(&a.out.join("corner.png"), &corner)?;
    // summary.json
    let stats: Vec<(f64, f64, [f64; 3])> = (0..p).map(|d| marginal(&theta, p, d)).collect();
    let correlation = (0..p)
        .map(|i| {
            (0..p)
                .map(|j| {
                    let c: f64 = theta
                        .chunks(p)
                        .map(|r| (r[i] - stats[i].0) * (r[j] - stats[j].0))
                        .sum::<f64>()
                        / (chains as f64 - 1.0).max(1.0);
                    c / (stats[i].1 * stats[j].1)
                })
                .collect()
        })
        .collect();
    let parameters = (0..p)
        .map(|d| ParamSummary {
            name: space.names()[d].clone(),
            prior_mean: space.mean()[d],
            prior_std: space.std()[d],
            mean: stats[d].0,
            std: stats[d].1,
            q16: stats[d].2[0],
            median: stats[d].2[1],
            q84: stats[d].2[2],
        })
        .collect();
    let config = RunConfig {
        prior: prior_desc,
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
        mpi: mpi_note,
    };
    let summary = JointSummary {
        config,
        parameters,
        correlation,
        work: Work::of(&set),
    };
    let json_path = a.out.join("summary.json");
    let text = serde_json::to_string_pretty(&summary)
        .map_err(|e| Error::invalid("summary", format!("cannot encode summary.json: {e}")))?;
    std::fs::write(&json_path, text + "\n").map_err(|source| Error::Io {
        path: json_path,
        source,
    })?;
    // the map figure
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
    if chains > 0 {
        let sr = robust_range(set.sample(0), Some(&mask));
        panels.push(
            Panel::new("sample 1", set.sample(0), &grid, "kappa")
                .masked(Some(&mask), &grid)
                .range(sr),
        );
    }
    save_figure(
        &a.out.join("figure.png"),
        &panels,
        &grid,
        2,
        Some("lensdiff joint"),
    )?;
    let line: Vec<String> = summary
        .parameters
        .iter()
        .map(|s| format!("{} = {:.4} ± {:.4}", s.name, s.mean, s.std))
        .collect();
    println!(
        "joint: {chains} chains of {}x{} ({} / {} guidance, {} NFE per chain) in {:.1} s: {} -> {}",
        grid.ny,
        grid.nx,
        summary.config.sampler,
        summary.config.guidance,
        set.nfe,
        set.seconds,
        line.join(", "),
        a.out.display()
    );
    Ok(())
}

/// A progress bar over the noise levels.
fn level_bar() -> indicatif::ProgressBar {
    let pb = progress(None, "joint sampling");
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} levels {elapsed} (eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb
}

/// Every chain, with a note on the MPI split: a plain run, or under `mpirun`
/// (builds with the `mpi` feature) the chains split across ranks
/// (`rank_chains`) and gathered on rank 0, which alone gets `Some`. Each
/// chain draws from its own Philox streams, so the chains do not depend on
/// the number of ranks.
fn run_chains(
    post: &dyn Model,
    cfg: &SamplerConfig,
    a: &Args,
) -> Result<Option<(SampleSet, Option<String>)>> {
    #[cfg(feature = "mpi")]
    if ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
    {
        use ::mpi::traits::Communicator;
        let (universe, threading) = ::mpi::initialize_with_threading(::mpi::Threading::Funneled)
            .ok_or_else(|| Error::invalid("mpi", "MPI was already initialised"))?;
        let world = universe.world();
        let rank = world.rank();
        let pb = (rank == 0).then(level_bar);
        let out = lensdiff::mpi_run::sample_distributed(
            &world,
            post,
            cfg,
            &a.sampler.run_spec(),
            true,
            threading == ::mpi::Threading::Single,
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
        if rank != 0 {
            return Ok(None);
        }
        let note = format!(
            "{} MPI ranks: compute {:.2} s (slowest rank), communication {:.3} s (rank 0)",
            out.ranks, out.max_compute_seconds, out.comm_seconds
        );
        return Ok(Some((out.into_set(*post.grid()), Some(note))));
    }
    let pb = level_bar();
    let set = sample(post, cfg, &a.sampler.run_spec(), &mut |done, total| {
        pb.set_length(total as u64);
        pb.set_position(done as u64);
    });
    pb.finish_and_clear();
    Ok(Some((set?, None)))
}
