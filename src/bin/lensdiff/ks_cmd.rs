//! `lensdiff ks`.

use std::path::PathBuf;

use clap::ValueEnum;
use lensdiff::baselines::kaiser_squires;
use lensdiff::smoothing::Boundary;
use lensdiff::{Grid, Result};

use crate::common::{load_map, pixel_size, robust_range, save, save_figure, stats, Panel};

#[derive(Clone, Copy, ValueEnum)]
pub enum BoundaryArg {
    /// Periodic (the geometry of the Fourier operators).
    Periodic,
    /// Mirror at the edges, like scipy.ndimage.gaussian_filter.
    Reflect,
}

impl From<BoundaryArg> for Boundary {
    fn from(b: BoundaryArg) -> Self {
        match b {
            BoundaryArg::Periodic => Boundary::Periodic,
            BoundaryArg::Reflect => Boundary::Reflect,
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// Shear component 1 map (FITS or npy).
    #[arg(long)]
    pub e1: PathBuf,
    /// Shear component 2 map, same shape.
    #[arg(long)]
    pub e2: PathBuf,
    /// Pixel size in arcmin (default: from the input's WCS).
    #[arg(long)]
    pub pixel_arcmin: Option<f64>,
    /// Gaussian smoothing scale in pixels (0 = none).
    #[arg(long, default_value_t = 0.0)]
    pub smooth: f64,
    /// Boundary of the smoothing kernel.
    #[arg(long, value_enum, default_value_t = BoundaryArg::Periodic)]
    pub boundary: BoundaryArg,
    /// Output E-mode convergence map.
    #[arg(long)]
    pub out_e: PathBuf,
    /// Output B-mode convergence map.
    #[arg(long)]
    pub out_b: Option<PathBuf>,
    /// Optional mask (non-zero = observed) drawn grey in the figure.
    #[arg(long)]
    pub mask: Option<PathBuf>,
    /// Write a PNG figure of the E and B maps.
    #[arg(long)]
    pub png: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<()> {
    let e1 = load_map(&a.e1, None)?;
    let e2 = load_map(&a.e2, Some(&e1))?;
    let grid = Grid::new(e1.nx, e1.ny, pixel_size(a.pixel_arcmin, &e1)?)?;
    let mask = a
        .mask
        .as_ref()
        .map(|p| crate::common::load_mask(p, &e1))
        .transpose()?;
    let (e, b) = kaiser_squires(&grid, &e1.data, &e2.data, a.smooth, a.boundary.into())?;
    let shape = [grid.ny, grid.nx];
    save(&a.out_e, &e, &shape, e1.wcs.as_ref(), Some("kappa"))?;
    if let Some(p) = &a.out_b {
        save(p, &b, &shape, e1.wcs.as_ref(), Some("kappa"))?;
    }
    let (me, se, _, _) = stats(&e, mask.as_deref());
    let (_, sb, _, _) = stats(&b, mask.as_deref());
    println!(
        "ks: {}x{} map, {:.3}'/px, smoothing {} px: E mean {me:.3e} std {se:.3e}, B std {sb:.3e} -> {}",
        grid.ny,
        grid.nx,
        grid.pixel_arcmin,
        a.smooth,
        a.out_e.display()
    );
    if let Some(p) = &a.png {
        let r = robust_range(&e, mask.as_deref());
        let panels = [
            Panel::new("KS E mode", &e, &grid, "kappa")
                .masked(mask.as_deref(), &grid)
                .range(r),
            Panel::new("KS B mode", &b, &grid, "kappa")
                .masked(mask.as_deref(), &grid)
                .range(r),
        ];
        save_figure(p, &panels, &grid, 2, None)?;
        println!("figure -> {}", p.display());
    }
    Ok(())
}
