//! `lensdiff demo`: the main job on built-in defaults, no input files.

use std::path::PathBuf;
use std::time::Instant;

use lensdiff::baselines::{kaiser_squires, WienerFilter, WienerOptions};
use lensdiff::fields::{simulate_shear, LogNormal};
use lensdiff::io::Wcs;
use lensdiff::metrics::{pearson, rmse_centred};
use lensdiff::noise::NoiseModel;
use lensdiff::plot::{
    render_lineplot, series_color, Canvas, ColorMap, LinePlot, LineStyle, Series,
};
use lensdiff::prior::Denoiser;
use lensdiff::prior::{GaussianPrior, NeuralPrior};
use lensdiff::rng::{Philox, Stream};
use lensdiff::sampler::{sample, GuidedPosterior, RunSpec, SampleSet, SamplerConfig, ShearData};
use lensdiff::smoothing::Boundary;
use lensdiff::spectrum::{bin_edges, estimate_cl, Binning, ClTable};
use lensdiff::{Error, Grid, Result};

use crate::common::{progress, render_figure, robust_range, save, Panel};
use crate::sample_cmd::{run_chains, SamplerArgs};

#[derive(clap::Args)]
pub struct Args {
    /// Output folder (created if missing).
    #[arg(long, default_value = "lensdiff-demo")]
    pub out: PathBuf,
    /// Map side in pixels.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Pixel size in arcmin.
    #[arg(long, default_value_t = 0.5)]
    pub pixel_arcmin: f64,
    /// Mean galaxy density per arcmin² (COSMOS: about 70).
    #[arg(long, default_value_t = 60.0)]
    pub n_gal: f64,
    /// Log-normal shift of the simulated field.
    #[arg(long, default_value_t = 0.03)]
    pub lambda: f64,
    /// Neural denoiser prior (safetensors from `lensdiff train`); default: the
    /// built-in model of models/README.md (hybrid, log-normal fields at 0.5'/px).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Chains of the neural-prior posterior (each costs a U-Net pass per level on the CPU).
    #[arg(long, default_value_t = 4)]
    pub neural_chains: usize,
    /// Noise levels of the neural-prior posterior (Heun ODE).
    #[arg(long, default_value_t = 32)]
    pub neural_levels: usize,
    /// Skip the neural-prior posterior.
    #[arg(long)]
    pub no_neural: bool,
    #[command(flatten)]
    pub sampler: SamplerArgs,
}

/// Posterior samples under the neural prior, with a progress bar.
fn neural_posterior(
    a: &Args,
    grid: Grid,
    data: &ShearData,
    cfg: &SamplerConfig,
) -> Result<SampleSet> {
    let den = match &a.model {
        Some(p) => Denoiser::load(p)?,
        None => lensdiff::prior::builtin::builtin_model("demo")?,
    };
    let trained = den.meta().pixel_arcmin;
    if (trained - grid.pixel_arcmin).abs() > 1e-6 * trained {
        eprintln!(
            "lensdiff demo: warning: the neural prior was trained at {trained}'/px, the map has {}'/px",
            grid.pixel_arcmin
        );
    }
    let prior = NeuralPrior::new(den, grid)?;
    let post = GuidedPosterior::new(&prior, data, a.sampler.guidance())?;
    let ncfg = SamplerConfig {
        levels: a.neural_levels,
        ..cfg.clone()
    };
    let batch = a.sampler.batch.clamp(1, a.neural_chains.max(1));
    let steps = a.neural_chains.div_ceil(batch) * ncfg.levels;
    let pb = progress(Some(steps as u64), "neural-prior posterior");
    let run = RunSpec::new(a.sampler.seed, a.neural_chains).in_batches(batch);
    let set = sample(&post, &ncfg, &run, &mut |done, _| {
        pb.set_position(done as u64)
    })?;
    pb.finish_and_clear();
    Ok(set)
}

/// A COSMOS-like footprint: a square tilted by 8° covering ~70% of the field,
/// with stair-stepped edges (the tiling of the ACS pointings) and circular holes
/// around bright stars, placed by the seed.
pub fn cosmos_like_mask(grid: &Grid, seed: u64) -> Vec<bool> {
    let (nx, ny) = (grid.nx as f64, grid.ny as f64);
    let mut u = vec![0.0f64; 3 * 16];
    Philox::new(seed, Stream::Field, 1 << 20, 0).fill_uniform(&mut u);
    let holes: Vec<(f64, f64, f64)> = u
        .chunks(3)
        .map(|c| (c[0] * nx, c[1] * ny, (0.005 + 0.012 * c[2]) * nx))
        .collect();
    let (ca, sa) = (8f64.to_radians().cos(), 8f64.to_radians().sin());
    let tile = nx / 16.0;
    let mut mask = vec![true; grid.len()];
    for y in 0..grid.ny {
        for x in 0..grid.nx {
            let (fx, fy) = (x as f64 - nx / 2.0, y as f64 - ny / 2.0);
            // rotate into the footprint frame, snap to tiles for the jagged edge
            let (rx, ry) = (ca * fx + sa * fy, -sa * fx + ca * fy);
            let (tx, ty) = ((rx / tile).floor(), (ry / tile).floor());
            let jag = ((tx * 7.0 + ty * 3.0).rem_euclid(3.0)) * 0.3 * tile;
            let half = 0.42 * nx - jag;
            let inside = rx.abs() < half && ry.abs() < half;
            let hole = holes
                .iter()
                .any(|(cx, cy, r)| (x as f64 - cx).powi(2) + (y as f64 - cy).powi(2) < r * r);
            mask[y * grid.nx + x] = inside && !hole;
        }
    }
    mask
}

fn spectrum_series(
    grid: &Grid,
    label: &str,
    maps: &[f32],
    edges: &[f64],
    i: usize,
    style: LineStyle,
) -> Result<Series> {
    let e = estimate_cl(grid, maps, None, edges)?;
    Ok(Series {
        label: label.into(),
        x: e.ell,
        y: e.cl,
        style,
        color: series_color(i),
    })
}

pub fn run(a: Args) -> Result<()> {
    let t0 = Instant::now();
    std::fs::create_dir_all(&a.out).map_err(|source| Error::Io {
        path: a.out.clone(),
        source,
    })?;
    let grid = Grid::square(a.size, a.pixel_arcmin)?;
    let table = ClTable::default_kappa();
    let power = table.pixel_power(&grid);
    let seed = a.sampler.seed;
    let truth = LogNormal::new(&grid, &power, a.lambda)?.sample(&grid, seed, 0, 1)?;

    // galaxy counts vary smoothly across the field (per-pixel noise), holes masked
    let mask = cosmos_like_mask(&grid, seed);
    let mean_n = a.n_gal * grid.pixel_arcmin * grid.pixel_arcmin;
    let counts: Vec<f32> = (0..grid.len())
        .map(|i| {
            let (x, y) = (
                (i % grid.nx) as f64 / grid.nx as f64,
                (i / grid.nx) as f64 / grid.ny as f64,
            );
            let n = mean_n
                * (1.0
                    + 0.4
                        * (2.0 * std::f64::consts::PI * x).sin()
                        * (std::f64::consts::PI * y).cos());
            if mask[i] {
                n as f32
            } else {
                0.0
            }
        })
        .collect();
    let noise = NoiseModel::from_counts(grid, 0.3, &counts)?;
    let (e1, e2) = simulate_shear(&truth, &noise, seed, 0)?;

    let (ks, _) = kaiser_squires(&grid, &e1, &e2, 2.0, Boundary::Periodic)?;
    let wf = WienerFilter::new(grid, power.clone())?.solve(
        &e1,
        &e2,
        &noise,
        &WienerOptions::default(),
    )?;

    let prior = GaussianPrior::new(grid, power)?;
    let data = ShearData::new(e1.clone(), e2.clone(), noise.clone())?;
    let post = GuidedPosterior::new(&prior, &data, a.sampler.guidance())?;
    let cfg = a.sampler.config();
    let set = run_chains(&post, &cfg, &a.sampler)?;
    let m = set.moments();
    let (mean, std) = (m.mean_f32(), m.std_f32());
    let neural = if a.no_neural || a.neural_chains == 0 {
        None
    } else {
        let nset = neural_posterior(&a, grid, &data, &cfg)?;
        let nm = nset.moments();
        Some((nm.mean_f32(), nm.std_f32(), nset))
    };

    let wcs = Wcs::centred(&grid, 150.0, 2.2, true);
    let shape = [grid.ny, grid.nx];
    for (name, d) in [
        ("truth", &truth),
        ("e1", &e1),
        ("e2", &e2),
        ("ks", &ks),
        ("wiener", &wf.kappa),
        ("mean", &mean),
        ("std", &std),
    ] {
        save(
            &a.out.join(format!("{name}.fits")),
            d,
            &shape,
            Some(&wcs),
            None,
        )?;
    }
    save(
        &a.out.join("samples.fits"),
        &set.samples,
        &[set.chains(), grid.ny, grid.nx],
        Some(&wcs),
        Some("kappa"),
    )?;
    if let Some((nmean, nstd, nset)) = &neural {
        save(
            &a.out.join("neural_mean.fits"),
            nmean,
            &shape,
            Some(&wcs),
            None,
        )?;
        save(
            &a.out.join("neural_std.fits"),
            nstd,
            &shape,
            Some(&wcs),
            None,
        )?;
        save(
            &a.out.join("neural_samples.fits"),
            &nset.samples,
            &[nset.chains(), grid.ny, grid.nx],
            Some(&wcs),
            Some("kappa"),
        )?;
    }

    // one figure: maps (North up) above the power spectra
    let range = robust_range(&truth, None);
    let m = Some(mask.as_slice());
    let magma = |title: &str, data: &[f32], masked: bool| {
        Panel::new(title, data, &grid, "kappa")
            .masked(if masked { m } else { None }, &grid)
            .range(range)
            .with_cmap(ColorMap::Magma)
    };
    let mut panels = vec![
        magma("truth (log-normal)", &truth, false),
        magma("Kaiser-Squires 2 px", &ks, true),
        magma("Wiener filter", &wf.kappa, true),
        magma(
            &format!("mean, Gaussian prior ({})", set.chains()),
            &mean,
            true,
        ),
    ];
    let std_range = robust_range(&std, m);
    let std_panel = |title: &str, data: &[f32]| {
        Panel::new(title, data, &grid, "kappa")
            .masked(m, &grid)
            .range(std_range)
    };
    match &neural {
        Some((nmean, nstd, nset)) => {
            // rows: data and baselines; Gaussian prior; neural prior
            panels.push(magma("sample, Gaussian prior", set.sample(0), true));
            panels.push(std_panel("std, Gaussian prior", &std));
            panels.push(magma(
                &format!("mean, neural prior ({})", nset.chains()),
                nmean,
                true,
            ));
            panels.push(magma("sample, neural prior", nset.sample(0), true));
            panels.push(std_panel("std, neural prior", nstd));
        }
        None => {
            panels.push(std_panel("posterior std", &std));
            for i in 0..set.chains().min(2) {
                panels.push(magma(
                    &format!("posterior sample {}", i + 1),
                    set.sample(i),
                    true,
                ));
            }
        }
    }
    let top = render_figure(
        &panels,
        &grid,
        if neural.is_some() { 3 } else { 4 },
        Some("lensdiff demo: log-normal field, COSMOS-like mask and noise"),
    )?;
    let edges = bin_edges(&grid, Binning::Log(18))?;
    let mut series = vec![
        spectrum_series(&grid, "truth", &truth, &edges, 0, LineStyle::Points)?,
        spectrum_series(
            &grid,
            "posterior samples",
            &set.samples,
            &edges,
            1,
            LineStyle::Points,
        )?,
        spectrum_series(&grid, "Wiener", &wf.kappa, &edges, 2, LineStyle::Points)?,
    ];
    if let Some((_, _, nset)) = &neural {
        series.push(spectrum_series(
            &grid,
            "neural-prior samples",
            &nset.samples,
            &edges,
            4,
            LineStyle::Points,
        )?);
    }
    let xs: Vec<f64> = (0..100)
        .map(|i| (edges[0].ln() + i as f64 / 99.0 * (edges[18].ln() - edges[0].ln())).exp())
        .collect();
    series.push(Series {
        label: "prior C_ell".into(),
        y: xs.iter().map(|&l| table.eval(l)).collect(),
        x: xs,
        style: LineStyle::Solid,
        color: series_color(3),
    });
    let bottom = render_lineplot(&LinePlot {
        title: "power spectra (full field)".into(),
        xlabel: "ell".into(),
        ylabel: "C_ell".into(),
        logx: true,
        logy: true,
        series,
        size: (900, 480),
    })?;
    let fig = a.out.join("demo.png");
    Canvas::stack_vertical(&[top, bottom])?.save_png(&fig)?;

    let mref = Some(mask.as_slice());
    println!(
        "demo: {}x{} log-normal field at {}'/px, {:.0}% observed, {} gal/arcmin², sigma_e 0.3",
        grid.ny,
        grid.nx,
        grid.pixel_arcmin,
        100.0 * noise.n_observed() as f64 / grid.len() as f64,
        a.n_gal
    );
    println!(
        "  {:<28} {:>8} {:>8}",
        "estimator (inside the mask)", "RMSE", "r"
    );
    let mut rows: Vec<(&str, &[f32])> = vec![
        ("Kaiser-Squires, 2 px", &ks),
        ("Wiener filter", &wf.kappa),
        ("posterior mean", &mean),
        ("one posterior sample", set.sample(0)),
    ];
    // the Gaussian-prior mean over as many chains as the neural one, for a fair row
    let k = neural
        .as_ref()
        .map_or(0, |n| n.2.chains().min(set.chains()));
    let few_mean: Vec<f32> = (0..grid.len() * (k > 0) as usize)
        .map(|i| (0..k).map(|c| set.sample(c)[i]).sum::<f32>() / k as f32)
        .collect();
    let few_label = format!("posterior mean, {k} chains");
    if let Some((nmean, _, nset)) = &neural {
        rows.push((&few_label, &few_mean));
        rows.push(("neural-prior mean", nmean));
        rows.push(("one neural-prior sample", nset.sample(0)));
    }
    for (name, map) in rows {
        println!(
            "  {:<28} {:>8.5} {:>8.3}",
            name,
            rmse_centred(map, &truth, mref)?,
            pearson(map, &truth, mref)?
        );
    }
    println!(
        "  sampling: {} chains, {} + {} guidance, {} NFE per chain, {:.1} s; mean shear chi2/dof {:.3}",
        set.chains(),
        cfg.kind.name(),
        post.guidance().name(),
        set.nfe,
        set.seconds,
        set.chi2.iter().sum::<f64>() / set.chi2.len() as f64
    );
    if let Some((_, _, nset)) = &neural {
        println!(
            "  neural prior: {} chains, {} NFE per chain, {:.1} s; mean shear chi2/dof {:.3}",
            nset.chains(),
            nset.nfe,
            nset.seconds,
            nset.chi2.iter().sum::<f64>() / nset.chi2.len() as f64
        );
    }
    println!(
        "  figure -> {}  ({:.1} s in all)",
        fig.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
