//! `lensdiff demo`: the main job on built-in defaults.

use std::path::PathBuf;
use std::time::Instant;

use lensdiff::baselines::{kaiser_squires, WienerFilter, WienerOptions};
use lensdiff::fields::{simulate_shear, LogNormal};
use lensdiff::io::Wcs;
use lensdiff::metrics::{pearson, rmse_centred};
use lensdiff::noise::NoiseModel;
use lensdiff::plot::{save_lineplot, series_color, ColorMap, LinePlot, LineStyle, Series};
use lensdiff::rng::{Philox, Stream};
use lensdiff::smoothing::Boundary;
use lensdiff::spectrum::{bin_edges, estimate_cl, Binning, ClTable};
use lensdiff::{Error, Grid, Result};

use crate::common::{progress, robust_range, save, save_figure, Panel};

#[derive(clap::Args)]
pub struct Args {
    /// Output folder (created if missing).
    #[arg(long, default_value = "lensdiff-demo")]
    pub out: PathBuf,
    /// Map side in pixels.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Pixel size in arcmin.
    #[arg(long, default_value_t = 1.0)]
    pub pixel_arcmin: f64,
    /// Mean galaxy density per arcmin².
    #[arg(long, default_value_t = 20.0)]
    pub n_gal: f64,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// A survey-like mask: the field minus a 4% border strip and circular holes
/// (bright stars), placed by the seed.
fn demo_mask(grid: &Grid, seed: u64) -> Vec<bool> {
    let (nx, ny) = (grid.nx as f64, grid.ny as f64);
    let mut u = vec![0.0f64; 3 * 12];
    Philox::new(seed, Stream::Field, 1 << 20, 0).fill_uniform(&mut u);
    let holes: Vec<(f64, f64, f64)> = u
        .chunks(3)
        .map(|c| (c[0] * nx, c[1] * ny, (0.015 + 0.035 * c[2]) * nx))
        .collect();
    let mut mask = vec![true; grid.len()];
    for y in 0..grid.ny {
        for x in 0..grid.nx {
            let (fx, fy) = (x as f64, y as f64);
            let border = fx < 0.04 * nx && fy > 0.3 * ny;
            let hole = holes
                .iter()
                .any(|(cx, cy, r)| (fx - cx).powi(2) + (fy - cy).powi(2) < r * r);
            mask[y * grid.nx + x] = !(border || hole);
        }
    }
    mask
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
    let pb = progress(Some(4), "demo");
    pb.set_message("log-normal field");
    let truth = LogNormal::new(&grid, &power, 0.03)?.sample(&grid, a.seed, 0, 1)?;
    pb.inc(1);

    // galaxy counts vary smoothly across the field (per-pixel noise), holes masked
    let mask = demo_mask(&grid, a.seed);
    let mean_n = a.n_gal * grid.pixel_arcmin * grid.pixel_arcmin;
    let counts: Vec<f32> = (0..grid.len())
        .map(|i| {
            let (x, y) = (
                (i % grid.nx) as f64 / grid.nx as f64,
                (i / grid.nx) as f64 / grid.ny as f64,
            );
            let n = mean_n
                * (1.0
                    + 0.5
                        * (2.0 * std::f64::consts::PI * x).sin()
                        * (std::f64::consts::PI * y).cos());
            if mask[i] {
                n as f32
            } else {
                0.0
            }
        })
        .collect();
    let noise = NoiseModel::from_counts(grid, 0.26, &counts)?;
    pb.set_message("mock shear");
    let (e1, e2) = simulate_shear(&truth, &noise, a.seed, 0)?;
    pb.inc(1);

    pb.set_message("Kaiser-Squires");
    let (ks, _) = kaiser_squires(&grid, &e1, &e2, 2.0, Boundary::Periodic)?;
    pb.inc(1);
    pb.set_message("Wiener filter");
    let wf = WienerFilter::new(grid, power)?;
    let sol = wf.solve(&e1, &e2, &noise, &WienerOptions::default())?;
    pb.inc(1);
    pb.finish_and_clear();

    let wcs = Wcs::centred(&grid, 0.0, 0.0, true);
    let shape = [grid.ny, grid.nx];
    for (name, data) in [
        ("truth", &truth),
        ("e1", &e1),
        ("e2", &e2),
        ("ks", &ks),
        ("wiener", &sol.kappa),
    ] {
        save(
            &a.out.join(format!("{name}.fits")),
            data,
            &shape,
            Some(&wcs),
            None,
        )?;
    }
    let m = Some(mask.as_slice());
    let range = robust_range(&truth, None);
    let panels = [
        Panel::new("truth (log-normal)", &truth, &grid, "kappa")
            .range(range)
            .cmap(ColorMap::Magma),
        Panel::new("Kaiser-Squires, 2 px", &ks, &grid, "kappa")
            .masked(m, &grid)
            .range(range)
            .cmap(ColorMap::Magma),
        Panel::new("Wiener filter", &sol.kappa, &grid, "kappa")
            .masked(m, &grid)
            .range(range)
            .cmap(ColorMap::Magma),
    ];
    let maps_png = a.out.join("maps.png");
    save_figure(
        &maps_png,
        &panels,
        &grid,
        3,
        Some("lensdiff demo: truth | KS | Wiener"),
    )?;

    let edges = bin_edges(&grid, Binning::Log(16))?;
    let mut series = vec![];
    for (i, (label, data)) in [
        ("truth", &truth),
        ("KS (2 px)", &ks),
        ("Wiener", &sol.kappa),
    ]
    .into_iter()
    .enumerate()
    {
        let est = estimate_cl(&grid, data, None, &edges)?;
        series.push(Series {
            label: label.into(),
            x: est.ell,
            y: est.cl,
            style: LineStyle::Points,
            color: series_color(i),
        });
    }
    let xs: Vec<f64> = (0..100)
        .map(|i| (edges[0].ln() + i as f64 / 99.0 * (edges[16].ln() - edges[0].ln())).exp())
        .collect();
    series.push(Series {
        label: "prior C_ell".into(),
        y: xs.iter().map(|&l| table.eval(l)).collect(),
        x: xs,
        style: LineStyle::Solid,
        color: series_color(3),
    });
    let spec_png = a.out.join("spectra.png");
    save_lineplot(
        &spec_png,
        &LinePlot {
            title: "power spectra".into(),
            xlabel: "ell".into(),
            ylabel: "C_ell".into(),
            logx: true,
            logy: true,
            series,
            ..LinePlot::default()
        },
    )?;
    let rk = rmse_centred(&ks, &truth, m)?;
    let rw = rmse_centred(&sol.kappa, &truth, m)?;
    let ck = pearson(&ks, &truth, m)?;
    let cw = pearson(&sol.kappa, &truth, m)?;
    println!(
        "demo: {}x{} log-normal field at {}'/px, {:.0}% observed, {} gal/arcmin²",
        grid.ny,
        grid.nx,
        grid.pixel_arcmin,
        100.0 * noise.n_observed() as f64 / grid.len() as f64,
        a.n_gal
    );
    println!("  Kaiser-Squires (2 px): RMSE {rk:.5}  r {ck:.3}");
    println!(
        "  Wiener filter:         RMSE {rw:.5}  r {cw:.3}  ({} PCG iterations)",
        sol.iterations
    );
    println!(
        "  figures -> {} and {}  ({:.1} s)",
        maps_png.display(),
        spec_png.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
