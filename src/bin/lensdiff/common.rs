//! Helpers shared by the subcommands: the shear, grid and noise flags of
//! `wiener` and `sample`, reading and writing maps, figures, progress.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::ArgGroup;
use indicatif::{ProgressBar, ProgressStyle};
use lensdiff::catalogue::{bin_catalogue, BinningOptions, Catalogue, Projection};
use lensdiff::io::Wcs;
use lensdiff::noise::NoiseModel;
use lensdiff::plot::{render_maps, Canvas, ColorMap, MapPanel};
use lensdiff::sampler::ShearData;
use lensdiff::{Error, Grid, Result};

/// A map read from disk with its shape and, for FITS, its WCS.
pub struct LoadedMap {
    pub data: Vec<f32>,
    pub nx: usize,
    pub ny: usize,
    pub wcs: Option<Wcs>,
}

pub fn is_fits(path: &Path) -> bool {
    let s = path.to_string_lossy().to_ascii_lowercase();
    [".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz"]
        .iter()
        .any(|e| s.ends_with(e))
}

/// Reads a finite 2-D map; `like` (if given) fixes the expected shape.
pub fn load_map(path: &Path, like: Option<&LoadedMap>) -> Result<LoadedMap> {
    let expected = like.map(|m| [m.ny, m.nx]);
    let a = lensdiff::io::read_map(path, expected)?;
    let (ny, nx) = a.dim();
    let wcs = if is_fits(path) {
        lensdiff::io::fits::read_wcs(path)?
    } else {
        None
    };
    Ok(LoadedMap {
        data: a.iter().copied().collect(),
        nx,
        ny,
        wcs,
    })
}

/// Reads a non-negative map (noise std) of the shape of `like`.
pub fn load_nonnegative(path: &Path, like: &LoadedMap) -> Result<Vec<f32>> {
    Ok(
        lensdiff::io::read_nonnegative_map(path, Some([like.ny, like.nx]))?
            .iter()
            .copied()
            .collect(),
    )
}

/// A C_ell table from `--cl` (text or npy), or the built-in default spectrum.
pub fn load_cl(path: Option<&Path>) -> Result<lensdiff::spectrum::ClTable> {
    match path {
        Some(p) => lensdiff::spectrum::ClTable::read(p),
        None => Ok(lensdiff::spectrum::ClTable::default_kappa()),
    }
}

/// Reads a mask (non-zero = observed) of the shape of `like`.
pub fn load_mask(path: &Path, like: &LoadedMap) -> Result<Vec<bool>> {
    Ok(load_map(path, Some(like))?
        .data
        .iter()
        .map(|&v| v != 0.0)
        .collect())
}

/// The pixel size: the flag if given, else `|CDELT2|` of the input's WCS.
pub fn pixel_size(flag: Option<f64>, map: &LoadedMap) -> Result<f64> {
    match (flag, &map.wcs) {
        (Some(p), _) => Ok(p),
        (None, Some(w)) => Ok(w.cdelt[1].abs() * 60.0),
        (None, None) => Err(Error::invalid(
            "--pixel-arcmin",
            "the input has no WCS (CDELT); give the pixel size in arcmin",
        )),
    }
}

/// The shear input of `wiener` and `sample`: `--e1`/`--e2` maps, or a
/// `--catalogue` folder binned on the fly (exactly one of the two).
///
/// Flattened together with [`GridArgs`] and [`NoiseArgs`], whose rules name
/// these flags: the three groups make one input, declared once.
#[derive(clap::Args, Clone, Debug)]
#[command(group(
    ArgGroup::new("shear-input")
        .args(["e1", "catalogue"])
        .required(true)
))]
pub struct ShearInput {
    /// Shear component 1 map (FITS or npy).
    #[arg(long, requires_all = ["e2", "noise-level"])]
    pub e1: Option<PathBuf>,
    /// Shear component 2 map, same shape.
    #[arg(long, requires = "e1", conflicts_with = "catalogue")]
    pub e2: Option<PathBuf>,
    /// Instead of maps: a catalogue folder in the COSMOS layout, binned on the
    /// fly (median centre, RA along +x) with --size, --pixel-arcmin and --plate;
    /// the binning gives the noise std maps and the mask.
    #[arg(long, requires = "pixel_arcmin")]
    pub catalogue: Option<PathBuf>,
}

/// The grid: the pixel size, and the binning of a `--catalogue`.
#[derive(clap::Args, Clone, Debug)]
pub struct GridArgs {
    /// Pixel size in arcmin (default: from the input's WCS; required with --catalogue).
    #[arg(long)]
    pub pixel_arcmin: Option<f64>,
    /// Binning of --catalogue: map side in pixels (maps give their own shape).
    #[arg(long, default_value_t = 360, conflicts_with = "e1")]
    pub size: usize,
    /// Binning of --catalogue: plate (jax-lensing) instead of gnomonic projection.
    #[arg(long, conflicts_with = "e1")]
    pub plate: bool,
}

/// The noise of shear maps: per-pixel std maps or a uniform std (one of the
/// two, required with maps), and a mask. A catalogue's binning gives its own.
#[derive(clap::Args, Clone, Debug)]
#[command(group(ArgGroup::new("noise-level").args(["std1", "sigma"])))]
pub struct NoiseArgs {
    /// Per-pixel noise std of component 1 (0 = masked unless --mask is given).
    #[arg(long, requires = "std2", conflicts_with = "catalogue")]
    pub std1: Option<PathBuf>,
    /// Per-pixel noise std of component 2.
    #[arg(long, requires = "std1", conflicts_with_all = ["sigma", "catalogue"])]
    pub std2: Option<PathBuf>,
    /// Uniform per-component noise std instead of std maps.
    #[arg(long, conflicts_with = "catalogue")]
    pub sigma: Option<f64>,
    /// Mask (non-zero = observed); unobserved pixels carry no information.
    #[arg(long, conflicts_with = "catalogue")]
    pub mask: Option<PathBuf>,
}

/// Shear data with its grid and, when known, its WCS.
pub struct ShearMaps {
    pub grid: Grid,
    /// The shear and its noise model (masked pixels zeroed).
    pub data: ShearData,
    pub wcs: Option<Wcs>,
}

impl ShearInput {
    /// Reads the maps (or bins the catalogue) on the grid of `grid` with the
    /// noise of `noise`.
    pub fn load(&self, grid: &GridArgs, noise: &NoiseArgs) -> Result<ShearMaps> {
        match (&self.e1, &self.e2, &self.catalogue) {
            (Some(e1), Some(e2), None) => {
                let e1 = load_map(e1, None)?;
                let e2 = load_map(e2, Some(&e1))?;
                let g = grid.grid(Some(&e1))?;
                let model = noise.model(g, &e1)?;
                Ok(ShearMaps {
                    grid: g,
                    data: ShearData::new(e1.data, e2.data, model)?,
                    wcs: e1.wcs,
                })
            }
            (None, None, Some(dir)) => {
                let g = grid.grid(None)?;
                let mut opts = BinningOptions::new(g);
                if grid.plate {
                    opts.projection = Projection::Plate;
                }
                let b = bin_catalogue(&Catalogue::from_cosmos_dir(dir)?, &opts)?;
                let model = NoiseModel::from_std(g, &b.std1, &b.std2, Some(&b.mask))?;
                let wcs = Wcs::centred(
                    &g,
                    b.centre_ra_deg,
                    b.centre_dec_deg,
                    opts.ra_increases_with_x,
                );
                Ok(ShearMaps {
                    grid: g,
                    data: ShearData::new(b.e1, b.e2, model)?,
                    wcs: Some(wcs),
                })
            }
            _ => Err(Error::invalid(
                "shear",
                "give --e1 and --e2 maps or --catalogue DIR",
            )),
        }
    }
}

impl GridArgs {
    /// The grid of the shear map `like` (its shape; the pixel size from
    /// `--pixel-arcmin` or its WCS), or without a map (a catalogue) the
    /// `--size`² grid of `--pixel-arcmin` pixels.
    pub fn grid(&self, like: Option<&LoadedMap>) -> Result<Grid> {
        match like {
            Some(map) => Grid::new(map.nx, map.ny, pixel_size(self.pixel_arcmin, map)?),
            None => {
                let pixel = self
                    .pixel_arcmin
                    .ok_or_else(|| Error::invalid("--pixel-arcmin", "required with --catalogue"))?;
                Grid::square(self.size, pixel)
            }
        }
    }
}

impl NoiseArgs {
    /// The noise model on `grid` of maps shaped like `like`: `--std1`/`--std2`
    /// maps or a uniform `--sigma`, with `--mask`.
    pub fn model(&self, grid: Grid, like: &LoadedMap) -> Result<NoiseModel> {
        let mask = self.mask.as_ref().map(|p| load_mask(p, like)).transpose()?;
        match (&self.std1, &self.std2, self.sigma) {
            (Some(s1), Some(s2), None) => NoiseModel::from_std(
                grid,
                &load_nonnegative(s1, like)?,
                &load_nonnegative(s2, like)?,
                mask.as_deref(),
            ),
            (None, None, Some(s)) => NoiseModel::uniform(grid, s, mask.as_deref()),
            _ => Err(Error::invalid(
                "noise",
                "give either --std1 and --std2 maps or a uniform --sigma",
            )),
        }
    }
}

/// Writes a map or stack by extension, with the WCS when known (FITS only).
pub fn save(
    path: &Path,
    data: &[f32],
    shape: &[usize],
    wcs: Option<&Wcs>,
    bunit: Option<&str>,
) -> Result<()> {
    let a = ndarray::ArrayViewD::from_shape(shape, data)
        .map_err(|e| Error::invalid("output", format!("internal shape error: {e}")))?;
    let wcs = wcs.map(|w| {
        let mut w = w.clone();
        if let Some(b) = bunit {
            w.bunit = Some(b.to_string());
        }
        w
    });
    lensdiff::io::write_array(path, a, wcs.as_ref())
}

/// `PREFIX_name.ext`.
pub fn with_suffix(prefix: &Path, name: &str, ext: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_os_string();
    s.push(format!("_{name}.{ext}"));
    PathBuf::from(s)
}

/// Rows flipped so that row 0 (lowest y / Dec) is drawn at the bottom: North up.
pub fn north_up(data: &[f32], nx: usize) -> Vec<f32> {
    data.chunks(nx).rev().flatten().copied().collect()
}

/// Rows of a mask flipped like [`north_up`].
pub fn north_up_mask(mask: &[bool], nx: usize) -> Vec<bool> {
    mask.chunks(nx).rev().flatten().copied().collect()
}

/// One figure panel of a map (North up), in the given colour map.
pub struct Panel {
    pub title: String,
    pub data: Vec<f32>,
    pub mask: Option<Vec<bool>>,
    pub range: Option<(f32, f32)>,
    pub cmap: ColorMap,
    pub label: String,
}

impl Panel {
    pub fn new(title: &str, data: &[f32], grid: &Grid, label: &str) -> Self {
        Panel {
            title: title.to_string(),
            data: north_up(data, grid.nx),
            mask: None,
            range: None,
            cmap: ColorMap::Viridis,
            label: label.to_string(),
        }
    }

    pub fn masked(mut self, mask: Option<&[bool]>, grid: &Grid) -> Self {
        self.mask = mask.map(|m| north_up_mask(m, grid.nx));
        self
    }

    pub fn range(mut self, r: Option<(f32, f32)>) -> Self {
        self.range = r;
        self
    }

    pub fn with_cmap(mut self, c: ColorMap) -> Self {
        self.cmap = c;
        self
    }
}

/// Saves panels as one PNG figure.
pub fn save_figure(
    path: &Path,
    panels: &[Panel],
    grid: &Grid,
    ncols: usize,
    title: Option<&str>,
) -> Result<()> {
    render_figure(panels, grid, ncols, title)?.save_png(path)
}

/// Renders panels as one figure (to stack with other plots).
pub fn render_figure(
    panels: &[Panel],
    grid: &Grid,
    ncols: usize,
    title: Option<&str>,
) -> Result<Canvas> {
    let views: Vec<MapPanel> = panels
        .iter()
        .map(|p| {
            let mut m = MapPanel::new(p.title.clone(), &p.data, grid.nx, grid.ny);
            m.mask = p.mask.as_deref();
            m.range = p.range;
            m.cmap = p.cmap;
            m.colorbar_label = p.label.clone();
            m
        })
        .collect();
    render_maps(&views, ncols.max(1), title)
}

/// The 1st–99th percentile range of a map's observed pixels (shared colour scale).
pub fn robust_range(data: &[f32], mask: Option<&[bool]>) -> Option<(f32, f32)> {
    let mut v: Vec<f32> = data
        .iter()
        .enumerate()
        .filter(|(i, x)| x.is_finite() && mask.is_none_or(|m| m[*i]))
        .map(|(_, x)| *x)
        .collect();
    if v.len() < 2 {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let lo = v[v.len() / 100];
    let hi = v[v.len() - 1 - v.len() / 100];
    (hi > lo).then_some((lo, hi))
}

/// A spinner or bar on stderr (hidden when stderr is not a terminal).
pub fn progress(len: Option<u64>, msg: &str) -> ProgressBar {
    let pb = match len {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed} (eta {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// Mean and standard deviation of the observed pixels.
pub fn stats(data: &[f32], mask: Option<&[bool]>) -> (f64, f64, f64, f64) {
    let (mut n, mut s, mut s2) = (0.0f64, 0.0f64, 0.0f64);
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (i, &v) in data.iter().enumerate() {
        if mask.is_none_or(|m| m[i]) {
            let v = v as f64;
            n += 1.0;
            s += v;
            s2 += v * v;
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    let m = s / n.max(1.0);
    (m, (s2 / n.max(1.0) - m * m).max(0.0).sqrt(), lo, hi)
}

/// `cpu`, `cuda` or `cuda:N` as a clap value parser.
pub fn parse_device(s: &str) -> std::result::Result<lensdiff::backend::Device, String> {
    s.parse().map_err(|e: lensdiff::Error| e.to_string())
}

/// The cosmological parameters of `cosmo`, and of `simulate --cosmology` and
/// `train --cosmology`: flat wCDM and one source distribution. Every flag is
/// optional so that a command can tell which were given; the defaults (the
/// sbi_lens LSST-Y10 fiducial) are applied by [`CosmologyArgs::cosmology`]
/// and [`CosmologyArgs::nz`].
#[derive(clap::Args, Clone, Debug, Default)]
pub struct CosmologyArgs {
    /// Cold dark matter density Omega_c (Omega_m = Omega_c + Omega_b) [default: 0.2664].
    #[arg(long, allow_hyphen_values = true)]
    pub omega_c: Option<f64>,
    /// Baryon density Omega_b [default: 0.0492].
    #[arg(long, allow_hyphen_values = true)]
    pub omega_b: Option<f64>,
    /// Reduced Hubble constant h = H0 / (100 km/s/Mpc) [default: 0.6727].
    #[arg(long, allow_hyphen_values = true)]
    pub h: Option<f64>,
    /// Primordial spectral index n_s [default: 0.9645].
    #[arg(long, allow_hyphen_values = true)]
    pub n_s: Option<f64>,
    /// Amplitude sigma_8 of linear fluctuations in 8 Mpc/h spheres today [default: 0.831].
    #[arg(long, allow_hyphen_values = true)]
    pub sigma8: Option<f64>,
    /// Dark-energy equation of state today, w0 [default: -1].
    #[arg(long, allow_hyphen_values = true)]
    pub w0: Option<f64>,
    /// Its evolution wa: w(a) = w0 + wa (1 - a) [default: 0].
    #[arg(long, allow_hyphen_values = true)]
    pub wa: Option<f64>,
    /// CMB temperature in K (enters the Eisenstein-Hu transfer function) [default: 2.725].
    #[arg(long)]
    pub t_cmb: Option<f64>,
    /// Source redshifts: smail:A,B,Z0[,ZMAX] (n ∝ z^A exp(-(z/Z0)^B), ZMAX 10 by default),
    /// gauss:MEAN,SIGMA, plane:Z, or file:PATH (two columns z n(z)) [default: smail:2,0.68,0.11,3.5].
    #[arg(long)]
    pub nz: Option<String>,
}

impl CosmologyArgs {
    /// The source distribution of `--nz` (spec as given, or the default).
    pub fn nz_spec(&self) -> &str {
        self.nz.as_deref().unwrap_or("smail:2,0.68,0.11,3.5")
    }

    /// The validated cosmology of the flags, defaults filled in.
    pub fn cosmology(&self) -> Result<lensdiff::cosmo::Cosmology> {
        let f = lensdiff::cosmo::Cosmology::sbi_lens_fiducial();
        lensdiff::cosmo::Cosmology::new(
            self.omega_c.unwrap_or(f.omega_c),
            self.omega_b.unwrap_or(f.omega_b),
            self.h.unwrap_or(f.h),
            self.n_s.unwrap_or(f.n_s),
            self.sigma8.unwrap_or(f.sigma8),
            self.w0.unwrap_or(f.w0),
            self.wa.unwrap_or(f.wa),
        )?
        .with_t_cmb(self.t_cmb.unwrap_or(lensdiff::cosmo::DEFAULT_T_CMB))
    }

    /// The parsed `--nz`.
    pub fn nz(&self) -> Result<lensdiff::cosmo::nz::Nz> {
        lensdiff::cosmo::nz::Nz::parse(self.nz_spec())
    }

    /// The first flag given other than `--omega-c` and `--sigma8`: the
    /// parameters that the sbi_lens model fixes.
    pub fn fixed_by_sbi_lens(&self) -> Option<&'static str> {
        [
            ("--omega-b", self.omega_b.is_some()),
            ("--h", self.h.is_some()),
            ("--n-s", self.n_s.is_some()),
            ("--w0", self.w0.is_some()),
            ("--wa", self.wa.is_some()),
            ("--t-cmb", self.t_cmb.is_some()),
            ("--nz", self.nz.is_some()),
        ]
        .into_iter()
        .find(|f| f.1)
        .map(|f| f.0)
    }

    /// The first cosmology flag given, if any.
    pub fn first_given(&self) -> Option<&'static str> {
        [
            ("--omega-c", self.omega_c.is_some()),
            ("--sigma8", self.sigma8.is_some()),
        ]
        .into_iter()
        .find(|f| f.1)
        .map(|f| f.0)
        .or_else(|| self.fixed_by_sbi_lens())
    }

    /// Fails when a cosmology flag is given but unused (neither
    /// `--cosmology` nor an sbi-lognormal simulator).
    pub fn check_used(&self, used: bool) -> Result<()> {
        match self.first_given() {
            Some(flag) if !used => Err(Error::invalid(
                "--cosmology",
                format!("{flag} is used only with --cosmology or sbi-lognormal"),
            )),
            _ => Ok(()),
        }
    }

    /// The convergence C_ell of the whole `--nz` (one bin; Eisenstein-Hu,
    /// halofit, Limber) on 128 log-spaced multipoles covering every mode of
    /// `grid` (from half its fundamental to its corner multipole).
    pub fn cl_table(&self, grid: &Grid) -> Result<lensdiff::spectrum::ClTable> {
        use lensdiff::cosmo::limber::{convergence_cl, ClOptions};
        let cosmo = self.cosmology()?;
        let source = self.nz()?.source()?;
        let lo = std::f64::consts::PI / (grid.nx.max(grid.ny) as f64 * grid.pixel_rad());
        let hi = 1.5 * std::f64::consts::PI / grid.pixel_rad();
        let ells: Vec<f64> = (0..128)
            .map(|i| (lo.ln() + (hi.ln() - lo.ln()) * i as f64 / 127.0).exp())
            .collect();
        let cl = convergence_cl(&cosmo, &[source], &ells, &ClOptions::default())?;
        lensdiff::spectrum::ClTable::new(ells, cl.cl[0].clone())
    }
}
