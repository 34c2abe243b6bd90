//! `lensdiff bin`.

use std::path::PathBuf;

use clap::ValueEnum;
use lensdiff::catalogue::{
    bin_catalogue, BinningOptions, Catalogue, Centre, NoiseEstimate, Projection,
};
use lensdiff::io::Wcs;
use lensdiff::{Error, Grid, Result};

use crate::common::{save, save_figure, with_suffix, Panel};
use crate::simulate::Format;

#[derive(Clone, Copy, ValueEnum)]
pub enum ProjectionArg {
    /// Tangent plane (TAN) about the centre.
    Gnomonic,
    /// Raw (RA - RA0, Dec - Dec0) in degrees, no cos(Dec): what jax-lensing did.
    Plate,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum NoiseArg {
    /// sigma_e / sqrt(n_gal) per pixel (jax-lensing's std maps).
    Counts,
    /// sigma_e sqrt(sum w²) / sum w: the std of the weighted mean.
    Weights,
}

#[derive(clap::Args)]
pub struct Args {
    /// Folder with ra.fits, dec.fits, e1.fits, e2.fits and nhweight_int.fits (the COSMOS layout).
    #[arg(long, conflicts_with_all = ["ra", "dec", "e1", "e2", "weight"])]
    pub cosmos: Option<PathBuf>,
    /// Galaxy right ascensions in degrees (1-D FITS or npy).
    #[arg(long, requires_all = ["dec", "e1", "e2"])]
    pub ra: Option<PathBuf>,
    /// Galaxy declinations in degrees.
    #[arg(long)]
    pub dec: Option<PathBuf>,
    /// Ellipticity component 1 (North up, East left).
    #[arg(long)]
    pub e1: Option<PathBuf>,
    /// Ellipticity component 2.
    #[arg(long)]
    pub e2: Option<PathBuf>,
    /// Galaxy weights (default: all 1).
    #[arg(long)]
    pub weight: Option<PathBuf>,
    /// Square map side in pixels (overridden by --nx/--ny).
    #[arg(long, default_value_t = 360)]
    pub size: usize,
    /// Pixels along x.
    #[arg(long)]
    pub nx: Option<usize>,
    /// Pixels along y.
    #[arg(long)]
    pub ny: Option<usize>,
    /// Pixel size in arcmin.
    #[arg(long)]
    pub pixel_arcmin: f64,
    /// Field centre: `median`, `mean` or `RA,DEC` in degrees.
    #[arg(long, default_value = "median")]
    pub centre: String,
    /// Sky-to-plane projection.
    #[arg(long, value_enum, default_value_t = ProjectionArg::Gnomonic)]
    pub projection: ProjectionArg,
    /// Put RA increasing to the left (East left, the sky as seen); the default
    /// has RA increasing along +x like the COSMOS maps of jax-lensing.
    #[arg(long)]
    pub east_left: bool,
    /// Keep the sign of e2 in a mirrored (RA along +x) frame (by default it is flipped,
    /// which keeps the shear consistent with the mirrored axes).
    #[arg(long)]
    pub keep_e2_sign: bool,
    /// Plain means instead of weighted means.
    #[arg(long)]
    pub unweighted: bool,
    /// How the noise std maps are computed.
    #[arg(long, value_enum, default_value_t = NoiseArg::Counts)]
    pub noise: NoiseArg,
    /// Output prefix: PREFIX_e1, PREFIX_e2, PREFIX_std1, PREFIX_std2, PREFIX_mask, PREFIX_counts.
    #[arg(long)]
    pub out_prefix: PathBuf,
    /// Output file format.
    #[arg(long, value_enum, default_value_t = Format::Fits)]
    pub format: Format,
    /// Write a PNG figure of the binned maps.
    #[arg(long)]
    pub png: Option<PathBuf>,
}

fn parse_centre(s: &str) -> Result<Centre> {
    match s.to_ascii_lowercase().as_str() {
        "median" => Ok(Centre::Median),
        "mean" => Ok(Centre::Mean),
        other => {
            let parts: Vec<&str> = other.split(',').collect();
            match parts.as_slice() {
                [ra, dec] => match (ra.trim().parse::<f64>(), dec.trim().parse::<f64>()) {
                    (Ok(ra_deg), Ok(dec_deg)) => Ok(Centre::Given { ra_deg, dec_deg }),
                    _ => Err(Error::invalid(
                        "--centre",
                        format!("cannot read `{s}` as RA,DEC"),
                    )),
                },
                _ => Err(Error::invalid(
                    "--centre",
                    format!("expected median, mean or RA,DEC, got `{s}`"),
                )),
            }
        }
    }
}

pub fn run(a: Args) -> Result<()> {
    let cat = match (&a.cosmos, &a.ra, &a.dec, &a.e1, &a.e2) {
        (Some(dir), ..) => Catalogue::from_cosmos_dir(dir)?,
        (None, Some(ra), Some(dec), Some(e1), Some(e2)) => {
            Catalogue::from_files(ra, dec, e1, e2, a.weight.as_deref())?
        }
        _ => {
            return Err(Error::invalid(
                "catalogue",
                "give --cosmos DIR or --ra, --dec, --e1 and --e2",
            ))
        }
    };
    let grid = Grid::new(
        a.nx.unwrap_or(a.size),
        a.ny.unwrap_or(a.size),
        a.pixel_arcmin,
    )?;
    let mut opts = BinningOptions::new(grid);
    opts.centre = parse_centre(&a.centre)?;
    opts.projection = match a.projection {
        ProjectionArg::Gnomonic => Projection::Gnomonic,
        ProjectionArg::Plate => Projection::Plate,
    };
    opts.ra_increases_with_x = !a.east_left;
    opts.flip_e2 = !a.east_left && !a.keep_e2_sign;
    opts.weighted = !a.unweighted;
    opts.noise = match a.noise {
        NoiseArg::Counts => NoiseEstimate::Counts,
        NoiseArg::Weights => NoiseEstimate::Weights,
    };
    let b = bin_catalogue(&cat, &opts)?;
    let ext = a.format.ext();
    let wcs = Wcs::centred(
        &grid,
        b.centre_ra_deg,
        b.centre_dec_deg,
        opts.ra_increases_with_x,
    );
    let shape = [grid.ny, grid.nx];
    let counts: Vec<f32> = b.counts.iter().map(|&c| c as f32).collect();
    for (name, data) in [
        ("e1", &b.e1),
        ("e2", &b.e2),
        ("std1", &b.std1),
        ("std2", &b.std2),
        ("mask", &b.mask_f32()),
        ("counts", &counts),
    ] {
        save(
            &with_suffix(&a.out_prefix, name, ext),
            data,
            &shape,
            Some(&wcs),
            None,
        )?;
    }
    println!(
        "bin: {} galaxies -> {}x{} at {}'/px centred on RA {:.6} Dec {:.6}: {} observed pixels, {} galaxies outside, sigma_e ({:.4}, {:.4}) -> {}_*.{ext}",
        cat.len(),
        grid.ny,
        grid.nx,
        grid.pixel_arcmin,
        b.centre_ra_deg,
        b.centre_dec_deg,
        b.n_observed(),
        b.n_outside,
        b.sigma_e[0],
        b.sigma_e[1],
        a.out_prefix.display()
    );
    if let Some(p) = &a.png {
        let panels = [
            Panel::new("e1", &b.e1, &grid, "e1").masked(Some(&b.mask), &grid),
            Panel::new("e2", &b.e2, &grid, "e2").masked(Some(&b.mask), &grid),
            Panel::new("galaxies per pixel", &counts, &grid, "n"),
        ];
        save_figure(p, &panels, &grid, 3, None)?;
        println!("figure -> {}", p.display());
    }
    Ok(())
}
