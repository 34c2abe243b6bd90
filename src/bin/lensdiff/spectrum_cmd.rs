//! `lensdiff spectrum`.

use std::path::PathBuf;

use lensdiff::plot::{save_lineplot, series_color, LinePlot, LineStyle, Series};
use lensdiff::spectrum::{bin_edges, bin_theory, estimate_cl, Binning, ClTable};
use lensdiff::{Error, Grid, Result};

use crate::common::{load_mask, pixel_size, LoadedMap};

#[derive(clap::Args)]
pub struct Args {
    /// A map [y][x] or a stack [n][y][x] (FITS or npy); the stack's maps are averaged.
    #[arg(long)]
    pub map: PathBuf,
    /// Pixel size in arcmin (default: from the input's WCS).
    #[arg(long)]
    pub pixel_arcmin: Option<f64>,
    /// Number of ell bins.
    #[arg(long, default_value_t = 20)]
    pub bins: usize,
    /// Linear bins instead of logarithmic ones.
    #[arg(long)]
    pub linear: bool,
    /// Mask (non-zero = observed); the pseudo-spectrum is divided by the observed fraction.
    #[arg(long)]
    pub mask: Option<PathBuf>,
    /// A theory C_ell table to compare with (text or npy), binned like the estimate.
    #[arg(long)]
    pub theory: Option<PathBuf>,
    /// Output text table: ell C_ell sigma modes.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write a log-log PNG plot of the spectrum.
    #[arg(long)]
    pub png: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<()> {
    let stack = lensdiff::io::read_stack(&a.map)?;
    let (nb, ny, nx) = stack.dim();
    let wcs = if crate::common::is_fits(&a.map) {
        lensdiff::io::fits::read_wcs(&a.map)?
    } else {
        None
    };
    let like = LoadedMap {
        data: vec![],
        nx,
        ny,
        wcs,
    };
    let grid = Grid::new(nx, ny, pixel_size(a.pixel_arcmin, &like)?)?;
    let mask = a.mask.as_ref().map(|p| load_mask(p, &like)).transpose()?;
    let data: Vec<f32> = stack.iter().copied().collect();
    let binning = if a.linear {
        Binning::Linear(a.bins)
    } else {
        Binning::Log(a.bins)
    };
    let edges = bin_edges(&grid, binning)?;
    let est = estimate_cl(&grid, &data, mask.as_deref(), &edges)?;
    let theory = a.theory.as_ref().map(|p| ClTable::read(p)).transpose()?;
    let binned_theory = theory
        .as_ref()
        .map(|t| bin_theory(&grid, t, &edges))
        .transpose()?;
    let mut text = String::from("# ell C_ell sigma modes\n");
    for i in 0..est.ell.len() {
        text.push_str(&format!(
            "{:.6e} {:.6e} {:.6e} {}\n",
            est.ell[i], est.cl[i], est.sigma[i], est.modes[i]
        ));
    }
    if let Some(p) = &a.out {
        std::fs::write(p, &text).map_err(|source| Error::Io {
            path: p.clone(),
            source,
        })?;
    }
    print!(
        "spectrum: {nb} map(s) of {ny}x{nx} at {}'/px, {} bins",
        grid.pixel_arcmin,
        est.ell.len()
    );
    if let Some(bt) = &binned_theory {
        let chi2: f64 = est
            .cl
            .iter()
            .zip(&est.sigma)
            .zip(bt)
            .map(|((c, s), t)| ((c - t) / (s * t / c)).powi(2))
            .sum();
        print!(", chi2 vs theory {chi2:.1} for {} bins", est.ell.len());
    }
    println!();
    if a.out.is_none() {
        print!("{text}");
    } else if let Some(p) = &a.out {
        println!("table -> {}", p.display());
    }
    if let Some(p) = &a.png {
        let mut series = vec![Series {
            label: "estimate".into(),
            x: est.ell.clone(),
            y: est.cl.clone(),
            style: LineStyle::Points,
            color: series_color(0),
        }];
        if let Some(t) = &theory {
            let xs: Vec<f64> = (0..200)
                .map(|i| {
                    (edges[0].ln()
                        + i as f64 / 199.0 * (edges[edges.len() - 1].ln() - edges[0].ln()))
                    .exp()
                })
                .collect();
            series.push(Series {
                label: "theory".into(),
                y: xs.iter().map(|&l| t.eval(l)).collect(),
                x: xs,
                style: LineStyle::Solid,
                color: series_color(1),
            });
        }
        let plot = LinePlot {
            title: "angular power spectrum".into(),
            xlabel: "ell".into(),
            ylabel: "C_ell".into(),
            logx: true,
            logy: true,
            series,
            ..LinePlot::default()
        };
        save_lineplot(p, &plot)?;
        println!("figure -> {}", p.display());
    }
    Ok(())
}
