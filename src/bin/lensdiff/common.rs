//! Helpers shared by the subcommands: reading and writing maps, figures, progress.

use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use lensdiff::io::Wcs;
use lensdiff::plot::{render_maps, Canvas, ColorMap, MapPanel};
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

/// The noise model from `--std1/--std2` maps or a uniform `--sigma` (exactly one).
pub fn load_noise(
    std1: Option<&Path>,
    std2: Option<&Path>,
    sigma: Option<f64>,
    mask: Option<&[bool]>,
    like: &LoadedMap,
    grid: Grid,
) -> Result<lensdiff::noise::NoiseModel> {
    use lensdiff::noise::NoiseModel;
    match (std1, std2, sigma) {
        (Some(s1), Some(s2), None) => NoiseModel::from_std(
            grid,
            &load_nonnegative(s1, like)?,
            &load_nonnegative(s2, like)?,
            mask,
        ),
        (None, None, Some(s)) => NoiseModel::uniform(grid, s, mask),
        _ => Err(Error::invalid(
            "noise",
            "give either --std1 and --std2 maps or a uniform --sigma",
        )),
    }
}

/// A C_ell table from `--cl` (text or npy), or the built-in default spectrum.
pub fn load_cl(path: Option<&Path>) -> Result<lensdiff::spectrum::ClTable> {
    match path {
        Some(p) => lensdiff::spectrum::ClTable::read(p),
        None => Ok(lensdiff::spectrum::ClTable::default_kappa()),
    }
}

/// Shear maps `e1`, `e2` with their grid (pixel size from `--pixel-arcmin` or
/// the WCS), mask and noise model (std maps or a uniform `--sigma`).
pub struct ShearMaps {
    pub grid: Grid,
    pub e1: Vec<f32>,
    pub e2: Vec<f32>,
    pub noise: lensdiff::noise::NoiseModel,
    pub wcs: Option<Wcs>,
}

/// Loads [`ShearMaps`] from the usual input flags.
pub fn load_shear(
    e1: &Path,
    e2: &Path,
    pixel_arcmin: Option<f64>,
    mask: Option<&Path>,
    std1: Option<&Path>,
    std2: Option<&Path>,
    sigma: Option<f64>,
) -> Result<ShearMaps> {
    let e1 = load_map(e1, None)?;
    let e2 = load_map(e2, Some(&e1))?;
    let grid = Grid::new(e1.nx, e1.ny, pixel_size(pixel_arcmin, &e1)?)?;
    let mask = mask.map(|p| load_mask(p, &e1)).transpose()?;
    let noise = load_noise(std1, std2, sigma, mask.as_deref(), &e1, grid)?;
    Ok(ShearMaps {
        grid,
        e1: e1.data,
        e2: e2.data,
        noise,
        wcs: e1.wcs,
    })
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
