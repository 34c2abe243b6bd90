//! Arrays on disk: FITS images (through cfitsio) and NumPy `.npy` files.
//!
//! Shapes are in C order, slowest axis first: a map is `[ny, nx]`, a stack of
//! maps `[nb, ny, nx]`. In FITS, `NAXIS1` is the fastest axis (x), so an image
//! with `NAXIS1 = nx`, `NAXIS2 = ny` reads as `[ny, nx]`, and writing does the
//! reverse.
//!
//! The format follows the file extension, compared without regard to case:
//! `.fits`, `.fit`, `.fts` (each optionally followed by `.gz` when reading) or
//! `.npy`. Any numeric data type on disk is converted to the element type
//! asked for. Writers replace an existing file atomically: the data go to a
//! temporary file in the same folder, renamed over the target once complete.
//!
//! The functions taking a shape or value contract ([`read_map`],
//! [`read_stack`], [`read_nonnegative_map`]) check it and fail with
//! [`Error::ShapeMismatch`], [`Error::NonFinite`] or
//! [`Error::NegativeVariance`]; flat indices in those errors are in C order.

pub mod fits;
pub mod npy;

pub use fits::Wcs;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ndarray::{Array2, Array3, ArrayD, ArrayViewD, Axis, Ix2, Ix3};

use crate::error::{Error, Result};

/// An n-dimensional f32 array read from disk: shape in C order (slowest first) and data.
pub type Array = ArrayD<f32>;

/// File formats recognised by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `.fits`, `.fit`, `.fts`.
    Fits,
    /// The same, gzip-compressed (`.fits.gz`, ...): readable only.
    FitsGz,
    /// `.npy`.
    Npy,
}

/// The format named by the extension of `path`.
fn kind_of(path: &Path) -> Result<Kind> {
    let unsupported = || Error::UnsupportedFormat {
        path: path.to_path_buf(),
    };
    let name = path
        .file_name()
        .ok_or_else(unsupported)?
        .to_string_lossy()
        .to_ascii_lowercase();
    let (base, gz) = match name.strip_suffix(".gz") {
        Some(base) => (base, true),
        None => (name.as_str(), false),
    };
    let ext = match base.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext,
        _ => return Err(unsupported()),
    };
    match (ext, gz) {
        ("fits" | "fit" | "fts", false) => Ok(Kind::Fits),
        ("fits" | "fit" | "fts", true) => Ok(Kind::FitsGz),
        ("npy", false) => Ok(Kind::Npy),
        _ => Err(unsupported()),
    }
}

/// Reads a FITS (`.fits`/`.fit`/`.fts`, optionally `.gz`) or `.npy` file by extension,
/// converting any numeric dtype to f32.
///
/// FITS: the first HDU holding image data (the primary, or the first image
/// extension when the primary is empty), `BSCALE`/`BZERO` applied and
/// undefined integer pixels (`BLANK`) returned as NaN. f8 values beyond the
/// f32 range become infinite (which [`read_map`] and [`read_stack`] reject).
pub fn read_array(path: &Path) -> Result<ArrayD<f32>> {
    match kind_of(path)? {
        Kind::Fits | Kind::FitsGz => fits::read_f32(path),
        Kind::Npy => npy::read_f32(path),
    }
}

/// Same as [`read_array`], as f64 (no precision loss for f8 files).
pub fn read_array_f64(path: &Path) -> Result<ArrayD<f64>> {
    match kind_of(path)? {
        Kind::Fits | Kind::FitsGz => fits::read_f64(path),
        Kind::Npy => npy::read_f64(path),
    }
}

/// Writes f32 data by extension: `.fits`/`.fit`/`.fts` => FITS image with optional WCS
/// keys; `.npy` => npy (`wcs` ignored).
///
/// An existing file is replaced. `.gz` names are refused
/// ([`Error::UnsupportedFormat`]); empty arrays are refused
/// ([`Error::InvalidArgument`]).
pub fn write_array(path: &Path, data: ArrayViewD<f32>, wcs: Option<&Wcs>) -> Result<()> {
    match kind_of(path)? {
        Kind::Fits => fits::write_f32(path, data, wcs),
        Kind::FitsGz => Err(Error::UnsupportedFormat {
            path: path.to_path_buf(),
        }),
        Kind::Npy => npy::write_f32(path, data),
    }
}

/// Reads a 2-D map: [`Error::ShapeMismatch`] if not 2-D or (when `Some`) not the
/// expected `[ny, nx]`; [`Error::NonFinite`] on NaN/Inf.
pub fn read_map(path: &Path, expected: Option<[usize; 2]>) -> Result<Array2<f32>> {
    let map = into_map(read_array(path)?, expected)?;
    check_all_finite("map", map.iter())?;
    Ok(map)
}

/// Reads a stack: a 2-D file gives `[1, ny, nx]`, a 3-D file is kept as is;
/// [`Error::ShapeMismatch`] otherwise, [`Error::NonFinite`] on NaN/Inf.
pub fn read_stack(path: &Path) -> Result<Array3<f32>> {
    let data = read_array(path)?;
    let got = data.shape().to_vec();
    let wrong = || shape_error("stack", "[ny, nx] or [nb, ny, nx]".into(), &got);
    let data = match data.ndim() {
        2 => data.insert_axis(Axis(0)),
        3 => data,
        _ => return Err(wrong()),
    };
    let stack = data.into_dimensionality::<Ix3>().map_err(|_| wrong())?;
    check_all_finite("stack", stack.iter())?;
    Ok(stack)
}

/// Reads a non-negative map (noise std or variance): as [`read_map`], plus
/// [`Error::NegativeVariance`] on negative values (`-0.0` is accepted).
pub fn read_nonnegative_map(path: &Path, expected: Option<[usize; 2]>) -> Result<Array2<f32>> {
    let map = into_map(read_array(path)?, expected)?;
    let name = "non-negative map";
    check_all_finite(name, map.iter())?;
    if let Some((index, &value)) = map.iter().enumerate().find(|(_, v)| **v < 0.0) {
        return Err(Error::NegativeVariance {
            name,
            index,
            value: f64::from(value),
        });
    }
    Ok(map)
}

/// Reads a 1-D column (e.g. catalogue RA) as f64 from a FITS image HDU with 1-D
/// data (as in `../shared/data/cosmos/ra.fits`) or a `.npy` file.
///
/// A 2-D array with one axis of length 1 (`[1, n]` or `[n, 1]`) is accepted
/// as a column too. Values are returned as stored (NaN is not rejected).
pub fn read_column_f64(path: &Path) -> Result<Vec<f64>> {
    let data = read_array_f64(path)?;
    let shape = data.shape();
    let ok = match shape.len() {
        1 => true,
        2 => shape[0] == 1 || shape[1] == 1,
        _ => false,
    };
    if !ok {
        return Err(shape_error("column", "[n]".into(), shape));
    }
    Ok(data.iter().copied().collect())
}

/// Checks rank and (optionally) shape of a map.
fn into_map(data: ArrayD<f32>, expected: Option<[usize; 2]>) -> Result<Array2<f32>> {
    let want = match expected {
        Some(e) => format!("{e:?}"),
        None => "[ny, nx]".into(),
    };
    let got = data.shape().to_vec();
    let map = data
        .into_dimensionality::<Ix2>()
        .map_err(|_| shape_error("map", want.clone(), &got))?;
    if let Some(e) = expected {
        if map.shape() != e {
            return Err(shape_error("map", want, &got));
        }
    }
    Ok(map)
}

fn shape_error(name: &'static str, expected: String, got: &[usize]) -> Error {
    Error::ShapeMismatch {
        name,
        expected,
        got: format!("{got:?}"),
    }
}

/// [`Error::NonFinite`] at the first NaN or infinity (flat C-order index).
fn check_all_finite<'a>(name: &'static str, values: impl Iterator<Item = &'a f32>) -> Result<()> {
    let mut values = values;
    match values.position(|v| !v.is_finite()) {
        Some(index) => Err(Error::NonFinite { name, index }),
        None => Ok(()),
    }
}

/// [`Error::Io`] for `path`.
pub(crate) fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// [`Error::Format`] for `path`.
pub(crate) fn format_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Fails with [`Error::Io`] unless `path` names an existing, readable, non-directory file.
pub(crate) fn check_readable(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| io_error(path, e))?;
    if meta.is_dir() {
        return Err(io_error(
            path,
            std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory"),
        ));
    }
    std::fs::File::open(path).map_err(|e| io_error(path, e))?;
    Ok(())
}

/// Writes `path` through a temporary file in the same folder, renamed over
/// `path` once `write` succeeded; the temporary file is removed on failure.
pub(crate) fn write_via_temp(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().ok_or_else(|| {
        Error::invalid("path", format!("{} does not name a file", path.display()))
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let meta = std::fs::metadata(&dir).map_err(|e| io_error(path, e))?;
    if !meta.is_dir() {
        return Err(io_error(
            path,
            std::io::Error::new(std::io::ErrorKind::NotADirectory, "parent is not a folder"),
        ));
    }
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = dir.join(tmp_name);
    let result =
        write(&tmp).and_then(|()| std::fs::rename(&tmp, path).map_err(|e| io_error(path, e)));
    if result.is_err() {
        // Best effort: the temporary file may not exist.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_extension() {
        let k = |s: &str| kind_of(Path::new(s));
        assert_eq!(k("a.fits").ok(), Some(Kind::Fits));
        assert_eq!(k("dir/A.FIT").ok(), Some(Kind::Fits));
        assert_eq!(k("a.fts").ok(), Some(Kind::Fits));
        assert_eq!(k("a.fits.gz").ok(), Some(Kind::FitsGz));
        assert_eq!(k("a.Fits.GZ").ok(), Some(Kind::FitsGz));
        assert_eq!(k("a.npy").ok(), Some(Kind::Npy));
        for bad in [
            "a.npy.gz",
            "a.txt",
            "fits",
            ".fits",
            "a",
            "a.gz",
            "a.fits.bz2",
            "/",
        ] {
            assert!(
                matches!(k(bad), Err(Error::UnsupportedFormat { .. })),
                "{bad} accepted"
            );
        }
    }
}
