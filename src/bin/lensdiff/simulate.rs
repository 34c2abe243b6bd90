//! `lensdiff simulate`.

use std::path::PathBuf;

use clap::ValueEnum;
use lensdiff::fields::sbi_lens::{self, SbiLens128};
use lensdiff::fields::{gaussian_fields, simulate_shear, LogNormal};
use lensdiff::io::Wcs;
use lensdiff::noise::NoiseModel;
use lensdiff::{Error, Grid, Result};

use crate::common::{
    load_cl, load_mask, load_nonnegative, progress, robust_range, save, save_figure, stats,
    with_suffix, CosmologyArgs, Panel,
};

#[derive(Clone, Copy, PartialEq, ValueEnum)]
pub enum FieldKind {
    /// Gaussian random field with the given C_ell.
    Gaussian,
    /// Log-normal field with shift --lambda and the given C_ell.
    Lognormal,
    /// The sbi_lens 128² log-normal model (Zeghal et al. 2024): 128x128 pixels of 2.34375'
    /// (5 deg), (Omega_c, sigma_8) from --omega-c, --sigma8 (default: the truth 0.3, 0.8),
    /// its own C_ell and shift; also writes PREFIX_obs, kappa + its pixel noise (std 0.0155797).
    SbiLognormal,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
pub enum Format {
    Fits,
    Npy,
}

impl Format {
    pub fn ext(self) -> &'static str {
        match self {
            Format::Fits => "fits",
            Format::Npy => "npy",
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// Square map side in pixels (overridden by --nx/--ny) [default: 256; 128 with --field sbi-lognormal].
    #[arg(long)]
    pub size: Option<usize>,
    /// Pixels along x.
    #[arg(long)]
    pub nx: Option<usize>,
    /// Pixels along y.
    #[arg(long)]
    pub ny: Option<usize>,
    /// Pixel size in arcmin [default: 1; 2.34375 with --field sbi-lognormal].
    #[arg(long)]
    pub pixel_arcmin: Option<f64>,
    /// C_ell table: text `ell C_ell` or npy (2, n) (default: built-in kappaTNG-like spectrum).
    #[arg(long)]
    pub cl: Option<PathBuf>,
    /// C_ell from the cosmology flags (--omega-c .. --nz, as `lensdiff cosmo`; one source bin)
    /// instead of --cl.
    #[arg(long, conflicts_with = "cl")]
    pub cosmology: bool,
    #[command(flatten)]
    pub cosmo: CosmologyArgs,
    /// Field statistics (alias --simulator).
    #[arg(long, alias = "simulator", value_enum, default_value_t = FieldKind::Lognormal)]
    pub field: FieldKind,
    /// Log-normal shift parameter lambda (the field's minimum is -lambda) [default: 0.03].
    #[arg(long)]
    pub lambda: Option<f64>,
    /// Number of independent maps (written as stacks [n][y][x] when > 1).
    #[arg(long, default_value_t = 1)]
    pub count: usize,
    /// Random seed (map i of seed s is the same whatever --count).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Intrinsic ellipticity dispersion per component.
    #[arg(long, default_value_t = 0.26)]
    pub sigma_e: f64,
    /// Galaxy density per arcmin² (uniform noise; ignored with --std1/--std2).
    #[arg(long, default_value_t = 30.0)]
    pub n_gal: f64,
    /// Per-pixel noise std map of component 1 instead of --n-gal.
    #[arg(long, requires = "std2")]
    pub std1: Option<PathBuf>,
    /// Per-pixel noise std map of component 2.
    #[arg(long, requires = "std1")]
    pub std2: Option<PathBuf>,
    /// Mask (non-zero = observed) of the grid's shape.
    #[arg(long)]
    pub mask: Option<PathBuf>,
    /// Output prefix: writes PREFIX_kappa, PREFIX_e1, PREFIX_e2, PREFIX_std1, PREFIX_std2, PREFIX_mask.
    #[arg(long)]
    pub out_prefix: PathBuf,
    /// Output file format.
    #[arg(long, value_enum, default_value_t = Format::Fits)]
    pub format: Format,
    /// Write a PNG figure of the first map (kappa, e1, e2).
    #[arg(long)]
    pub png: Option<PathBuf>,
}

/// The sbi_lens model of `--field sbi-lognormal`, after checking that no flag
/// contradicts it (one-line errors).
pub fn sbi_lens_model(
    cosmo: &CosmologyArgs,
    cl: bool,
    cosmology: bool,
    lambda_given: bool,
) -> Result<SbiLens128> {
    let conflict = |flag: &str| {
        Err(Error::invalid(
            "sbi-lognormal",
            format!(
                "the model fixes its spectrum, shift and cosmology but for --omega-c and --sigma8: drop {flag}"
            ),
        ))
    };
    if cl {
        return conflict("--cl");
    }
    if cosmology {
        return conflict("--cosmology");
    }
    if lambda_given {
        return conflict("--lambda");
    }
    if let Some(flag) = cosmo.fixed_by_sbi_lens() {
        return conflict(flag);
    }
    SbiLens128::new(
        cosmo.omega_c.unwrap_or(sbi_lens::TRUTH.0),
        cosmo.sigma8.unwrap_or(sbi_lens::TRUTH.1),
    )
}

/// Fails unless the grid flags given agree with the sbi_lens grid (128² at 2.34375').
pub fn check_sbi_lens_grid(sizes: &[(&str, Option<usize>)], pixel: Option<f64>) -> Result<()> {
    for (flag, v) in sizes {
        if let Some(v) = v {
            if *v != sbi_lens::N_PIX {
                return Err(Error::invalid(
                    "sbi-lognormal",
                    format!(
                        "the model is 128x128 pixels of 2.34375 arcmin (5 deg): {flag} {v} conflicts; drop it"
                    ),
                ));
            }
        }
    }
    if let Some(p) = pixel {
        if (p - sbi_lens::PIXEL_ARCMIN).abs() > 1e-9 {
            return Err(Error::invalid(
                "sbi-lognormal",
                format!(
                    "the model is 128x128 pixels of 2.34375 arcmin (5 deg): --pixel-arcmin {p} conflicts; drop it"
                ),
            ));
        }
    }
    Ok(())
}

pub fn run(a: Args) -> Result<()> {
    if a.count == 0 {
        return Err(Error::invalid("--count", "need at least one map"));
    }
    a.cosmo
        .check_used(a.cosmology || a.field == FieldKind::SbiLognormal)?;
    let sbi = if a.field == FieldKind::SbiLognormal {
        check_sbi_lens_grid(
            &[("--size", a.size), ("--nx", a.nx), ("--ny", a.ny)],
            a.pixel_arcmin,
        )?;
        Some(sbi_lens_model(
            &a.cosmo,
            a.cl.is_some(),
            a.cosmology,
            a.lambda.is_some(),
        )?)
    } else {
        None
    };
    let grid = match &sbi {
        Some(m) => *m.grid(),
        None => {
            let size = a.size.unwrap_or(256);
            Grid::new(
                a.nx.unwrap_or(size),
                a.ny.unwrap_or(size),
                a.pixel_arcmin.unwrap_or(1.0),
            )?
        }
    };
    let table = if a.cosmology {
        a.cosmo.cl_table(&grid)?
    } else {
        load_cl(a.cl.as_deref())?
    };
    let like = crate::common::LoadedMap {
        data: vec![],
        nx: grid.nx,
        ny: grid.ny,
        wcs: None,
    };
    let mask = a.mask.as_ref().map(|p| load_mask(p, &like)).transpose()?;
    let noise = match (&a.std1, &a.std2) {
        (Some(s1), Some(s2)) => NoiseModel::from_std(
            grid,
            &load_nonnegative(s1, &like)?,
            &load_nonnegative(s2, &like)?,
            mask.as_deref(),
        )?,
        _ => NoiseModel::from_density(grid, a.sigma_e, a.n_gal, mask.as_deref())?,
    };
    let power = table.pixel_power(&grid);
    let lambda = a.lambda.unwrap_or(0.03);
    let kappa = match (a.field, &sbi) {
        (FieldKind::SbiLognormal, Some(m)) => m.sample(a.seed, 0, a.count)?,
        (FieldKind::Gaussian, _) => gaussian_fields(&grid, &power, a.seed, 0, a.count)?,
        _ => LogNormal::new(&grid, &power, lambda)?.sample(&grid, a.seed, 0, a.count)?,
    };
    let n = grid.len();
    if let Some(m) = &sbi {
        let mut obs = kappa.clone();
        m.add_noise(&mut obs, a.seed, 0)?;
        let shape: Vec<usize> = if a.count > 1 {
            vec![a.count, grid.ny, grid.nx]
        } else {
            vec![grid.ny, grid.nx]
        };
        let wcs = Wcs::centred(&grid, 0.0, 0.0, true);
        let p = with_suffix(&a.out_prefix, "obs", a.format.ext());
        save(&p, &obs, &shape, Some(&wcs), Some("kappa"))?;
    }
    let (mut e1, mut e2) = (
        Vec::with_capacity(a.count * n),
        Vec::with_capacity(a.count * n),
    );
    let pb = progress((a.count > 1).then_some(a.count as u64), "shear");
    for (i, k) in kappa.chunks(n).enumerate() {
        let (g1, g2) = simulate_shear(k, &noise, a.seed, i as u64)?;
        e1.extend_from_slice(&g1);
        e2.extend_from_slice(&g2);
        pb.inc(1);
    }
    pb.finish_and_clear();
    let ext = a.format.ext();
    let shape: Vec<usize> = if a.count > 1 {
        vec![a.count, grid.ny, grid.nx]
    } else {
        vec![grid.ny, grid.nx]
    };
    let wcs = Wcs::centred(&grid, 0.0, 0.0, true);
    save(
        &with_suffix(&a.out_prefix, "kappa", ext),
        &kappa,
        &shape,
        Some(&wcs),
        Some("kappa"),
    )?;
    save(
        &with_suffix(&a.out_prefix, "e1", ext),
        &e1,
        &shape,
        Some(&wcs),
        None,
    )?;
    save(
        &with_suffix(&a.out_prefix, "e2", ext),
        &e2,
        &shape,
        Some(&wcs),
        None,
    )?;
    let (s1, s2) = noise.std_maps();
    let m2 = [grid.ny, grid.nx];
    save(
        &with_suffix(&a.out_prefix, "std1", ext),
        &s1,
        &m2,
        Some(&wcs),
        None,
    )?;
    save(
        &with_suffix(&a.out_prefix, "std2", ext),
        &s2,
        &m2,
        Some(&wcs),
        None,
    )?;
    let mask_out: Vec<f32> = noise.mask().iter().map(|&m| m as u8 as f32).collect();
    save(
        &with_suffix(&a.out_prefix, "mask", ext),
        &mask_out,
        &m2,
        Some(&wcs),
        None,
    )?;
    let (mean, std, lo, hi) = stats(&kappa, None);
    let source = if a.cosmology {
        format!(
            ", C_ell of Omega_m {:.4} sigma_8 {}",
            a.cosmo.cosmology()?.omega_m(),
            a.cosmo.cosmology()?.sigma8
        )
    } else {
        String::new()
    };
    let kind = match (a.field, &sbi) {
        (FieldKind::SbiLognormal, Some(m)) => format!(
            "sbi_lens log-normal (Omega_c {}, sigma_8 {}, lambda {:.7}; noisy kappa in {}_obs.{ext}, noise std {:.7})",
            m.cosmology().omega_c,
            m.cosmology().sigma8,
            m.lambda(),
            a.out_prefix.display(),
            sbi_lens::noise_sigma()
        ),
        (FieldKind::Lognormal, _) => format!("log-normal (lambda {lambda}{source})"),
        _ => format!("Gaussian{source}"),
    };
    println!(
        "simulate: {} {kind} map(s) of {}x{} at {}'/px: kappa mean {mean:.2e} std {std:.4} min {lo:.4} max {hi:.4}; {} of {} pixels observed -> {}_*.{ext}",
        a.count,
        grid.ny,
        grid.nx,
        grid.pixel_arcmin,
        noise.n_observed(),
        n,
        a.out_prefix.display()
    );
    if let Some(p) = &a.png {
        let m = noise.mask();
        let panels = [
            Panel::new("convergence", &kappa[..n], &grid, "kappa")
                .range(robust_range(&kappa[..n], None)),
            Panel::new("shear e1", &e1[..n], &grid, "e1").masked(Some(&m), &grid),
            Panel::new("shear e2", &e2[..n], &grid, "e2").masked(Some(&m), &grid),
        ];
        save_figure(p, &panels, &grid, 3, None)?;
        println!("figure -> {}", p.display());
    }
    Ok(())
}
