//! `lensdiff wiener`.

use std::path::PathBuf;

use lensdiff::baselines::{WienerFilter, WienerOptions};
use lensdiff::Result;

use crate::common::{
    load_cl, load_shear, progress, robust_range, save, save_figure, stats, Panel, ShearMaps,
};

#[derive(clap::Args)]
pub struct Args {
    /// Shear component 1 map (FITS or npy).
    #[arg(long)]
    pub e1: PathBuf,
    /// Shear component 2 map, same shape.
    #[arg(long)]
    pub e2: PathBuf,
    /// Per-pixel noise std of component 1 (0 = masked unless --mask is given).
    #[arg(long, requires = "std2", conflicts_with = "sigma")]
    pub std1: Option<PathBuf>,
    /// Per-pixel noise std of component 2.
    #[arg(long, requires = "std1")]
    pub std2: Option<PathBuf>,
    /// Uniform per-component noise std instead of std maps.
    #[arg(long)]
    pub sigma: Option<f64>,
    /// Mask (non-zero = observed); unobserved pixels carry no information.
    #[arg(long)]
    pub mask: Option<PathBuf>,
    /// Prior C_ell table: text `ell C_ell` or npy (2, n) (default: built-in kappaTNG-like spectrum).
    #[arg(long)]
    pub cl: Option<PathBuf>,
    /// Pixel size in arcmin (default: from the input's WCS).
    #[arg(long)]
    pub pixel_arcmin: Option<f64>,
    /// Relative residual at which the conjugate-gradient solver stops.
    #[arg(long, default_value_t = 1e-6)]
    pub tol: f64,
    /// Maximum number of conjugate-gradient iterations.
    #[arg(long, default_value_t = 1000)]
    pub max_iter: usize,
    /// Output convergence map.
    #[arg(long)]
    pub out: PathBuf,
    /// Write a PNG figure of the Wiener map.
    #[arg(long)]
    pub png: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<()> {
    let ShearMaps {
        grid,
        e1,
        e2,
        noise,
        wcs,
    } = load_shear(
        &a.e1,
        &a.e2,
        a.pixel_arcmin,
        a.mask.as_deref(),
        a.std1.as_deref(),
        a.std2.as_deref(),
        a.sigma,
    )?;
    let table = load_cl(a.cl.as_deref())?;
    let wf = WienerFilter::new(grid, table.pixel_power(&grid))?;
    let opts = WienerOptions {
        tol: a.tol,
        max_iter: a.max_iter,
    };
    let pb = progress(None, "Wiener PCG");
    let sol = wf.solve_with_progress(&e1, &e2, &noise, &opts, &mut |it, r| {
        pb.set_message(format!("Wiener PCG: iteration {it}, residual {r:.2e}"));
    });
    pb.finish_and_clear();
    let sol = sol?;
    save(
        &a.out,
        &sol.kappa,
        &[grid.ny, grid.nx],
        wcs.as_ref(),
        Some("kappa"),
    )?;
    let m = noise.mask();
    let (mean, std, _, _) = stats(&sol.kappa, Some(&m));
    println!(
        "wiener: {}x{} map, {} observed pixels, {} iterations (residual {:.1e}): mean {mean:.3e} std {std:.3e} -> {}",
        grid.ny,
        grid.nx,
        noise.n_observed(),
        sol.iterations,
        sol.residual,
        a.out.display()
    );
    if let Some(p) = &a.png {
        let panels = [Panel::new("Wiener filter", &sol.kappa, &grid, "kappa")
            .masked(Some(&m), &grid)
            .range(robust_range(&sol.kappa, Some(&m)))];
        save_figure(p, &panels, &grid, 1, None)?;
        println!("figure -> {}", p.display());
    }
    Ok(())
}
