//! `lensdiff wiener`.

use std::path::PathBuf;

use lensdiff::baselines::{WienerFilter, WienerOptions};
use lensdiff::Result;

use crate::common::{
    load_cl, progress, robust_range, save, save_figure, stats, GridArgs, NoiseArgs, Panel,
    ShearInput, ShearMaps,
};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub input: ShearInput,
    #[command(flatten)]
    pub grid: GridArgs,
    #[command(flatten)]
    pub noise: NoiseArgs,
    /// Prior C_ell table: text `ell C_ell` or npy (2, n) (default: built-in kappaTNG-like spectrum).
    #[arg(long)]
    pub cl: Option<PathBuf>,
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
    let ShearMaps { grid, data, wcs } = a.input.load(&a.grid, &a.noise)?;
    let table = load_cl(a.cl.as_deref())?;
    let wf = WienerFilter::new(grid, table.pixel_power(&grid))?;
    let opts = WienerOptions {
        tol: a.tol,
        max_iter: a.max_iter,
    };
    let pb = progress(None, "Wiener PCG");
    let sol = wf.solve_with_progress(&data.g1, &data.g2, &data.noise, &opts, &mut |it, r| {
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
    let m = data.noise.mask();
    let (mean, std, _, _) = stats(&sol.kappa, Some(&m));
    println!(
        "wiener: {}x{} map, {} observed pixels, {} iterations (residual {:.1e}): mean {mean:.3e} std {std:.3e} -> {}",
        grid.ny,
        grid.nx,
        data.noise.n_observed(),
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
