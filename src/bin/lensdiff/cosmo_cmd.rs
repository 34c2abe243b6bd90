//! `lensdiff cosmo`: convergence C_ell from cosmological parameters.

use std::path::{Path, PathBuf};
use std::time::Instant;

use lensdiff::cosmo::limber::{convergence_cl, AngularCl, ClOptions};
use lensdiff::cosmo::linear::Transfer;
use lensdiff::plot::{save_lineplot, series_color, LinePlot, LineStyle, Series};
use lensdiff::{Error, Result};

use crate::common::CosmologyArgs;

/// The transfer function, as a flag value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TransferArg {
    /// Eisenstein & Hu (1998) with baryon wiggles.
    Eh,
    /// Eisenstein & Hu (1998) without wiggles.
    EhNowiggle,
    /// Bardeen et al. (1986).
    Bbks,
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub cosmology: CosmologyArgs,
    /// Tomographic bins with equal numbers of galaxies.
    #[arg(long, default_value_t = 1)]
    pub bins: usize,
    /// Photometric-redshift scatter sigma_z (1 + z) of the bins.
    #[arg(long, default_value_t = 0.0)]
    pub sigma_z: f64,
    /// Smallest multipole.
    #[arg(long, default_value_t = 10.0)]
    pub ell_min: f64,
    /// Largest multipole.
    #[arg(long, default_value_t = 10000.0)]
    pub ell_max: f64,
    /// Number of log-spaced multipoles.
    #[arg(long, default_value_t = 128)]
    pub n_ell: usize,
    /// Linear transfer function.
    #[arg(long, value_enum, default_value_t = TransferArg::Eh)]
    pub transfer: TransferArg,
    /// The linear spectrum only (no halofit).
    #[arg(long)]
    pub linear: bool,
    /// Output table: `.npy` (rows ell, then one per bin pair) or text (columns ell, then
    /// one per pair). With one bin it is the two-column table `--cl` reads.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write a log-log PNG plot of the spectra.
    #[arg(long)]
    pub png: Option<PathBuf>,
}

fn ells(a: &Args) -> Result<Vec<f64>> {
    if !(a.ell_min > 0.0 && a.ell_max > a.ell_min && a.ell_max.is_finite()) {
        return Err(Error::invalid(
            "ell-min",
            format!(
                "need 0 < --ell-min < --ell-max, got {} and {}",
                a.ell_min, a.ell_max
            ),
        ));
    }
    if a.n_ell < 2 {
        return Err(Error::invalid("n-ell", "need at least 2 multipoles"));
    }
    let (l0, l1) = (a.ell_min.ln(), a.ell_max.ln());
    Ok((0..a.n_ell)
        .map(|i| (l0 + (l1 - l0) * i as f64 / (a.n_ell - 1) as f64).exp())
        .collect())
}

pub fn run(a: Args) -> Result<()> {
    let cosmo = a.cosmology.cosmology()?;
    let nz = a.cosmology.nz()?;
    let bins = nz.bins(a.bins, a.sigma_z)?;
    let ells = ells(&a)?;
    let opts = ClOptions {
        transfer: match a.transfer {
            TransferArg::Eh => Transfer::EisensteinHu,
            TransferArg::EhNowiggle => Transfer::EisensteinHuNoWiggle,
            TransferArg::Bbks => Transfer::Bbks,
        },
        nonlinear: !a.linear,
        ..ClOptions::default()
    };
    let t = Instant::now();
    let cl = convergence_cl(&cosmo, &bins, &ells, &opts)?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    println!(
        "cosmo: Omega_m {:.4}, sigma_8 {}, w0 {}, wa {}; {} bin(s) of {}; {} ells in [{}, {}]; \
         {} pair(s) in {ms:.1} ms",
        cosmo.omega_m(),
        cosmo.sigma8,
        cosmo.w0,
        cosmo.wa,
        bins.len(),
        a.cosmology.nz_spec(),
        ells.len(),
        a.ell_min,
        a.ell_max,
        cl.pairs.len()
    );
    match &a.out {
        Some(p) => {
            write_table(p, &cl)?;
            println!("table -> {}", p.display());
        }
        None => print!("{}", text_table(&cl)),
    }
    if let Some(p) = &a.png {
        let series = (cl.pairs.iter().zip(&cl.cl).enumerate())
            .map(|(s, (&(i, j), y))| Series {
                label: format!("bins {i},{j}"),
                x: cl.ells.clone(),
                y: y.clone(),
                style: if i == j {
                    LineStyle::Solid
                } else {
                    LineStyle::Dashed
                },
                color: series_color(s),
            })
            .collect();
        let plot = LinePlot {
            title: format!(
                "convergence C_ell, Omega_m {:.3}, sigma_8 {:.3}",
                cosmo.omega_m(),
                cosmo.sigma8
            ),
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

/// Columns `ell C_00 C_01 ..` with a header naming the pairs.
fn text_table(cl: &AngularCl) -> String {
    let names: Vec<String> = cl.pairs.iter().map(|(i, j)| format!("C_{i}{j}")).collect();
    let mut s = format!("# ell {}\n", names.join(" "));
    for (l, ell) in cl.ells.iter().enumerate() {
        s.push_str(&format!("{ell:.6e}"));
        for c in &cl.cl {
            s.push_str(&format!(" {:.6e}", c[l]));
        }
        s.push('\n');
    }
    s
}

fn write_table(path: &Path, cl: &AngularCl) -> Result<()> {
    let npy = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    if npy {
        let rows = 1 + cl.cl.len();
        let mut flat = cl.ells.clone();
        for c in &cl.cl {
            flat.extend_from_slice(c);
        }
        let arr = ndarray::Array2::from_shape_vec((rows, cl.ells.len()), flat)
            .map_err(|e| Error::invalid("out", e.to_string()))?;
        lensdiff::io::npy::write_f64(path, arr.into_dyn().view())
    } else {
        std::fs::write(path, text_table(cl)).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}
