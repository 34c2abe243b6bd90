//! NumPy `.npy` files, through `ndarray-npy`.
//!
//! Reading accepts floating-point (`f4`, `f8`), integer (`i1`..`i8`,
//! `u1`..`u8`) and boolean (`b1`) arrays, little- or big-endian, in C or
//! Fortran order; the result is always in C (row-major) order. The header
//! is checked against the file size before any data is allocated, so a
//! truncated or garbled file is an [`Error::Format`], never a huge
//! allocation. Writing produces a little-endian `<f4` (or `<f8`) array in C order.

use std::io::Write;
use std::path::Path;

use ndarray::{ArrayD, ArrayViewD};
use ndarray_npy::npy::header::Header;
use ndarray_npy::{ReadNpyExt, ReadableElement, WriteNpyError, WriteNpyExt};

use super::{check_readable, format_error, io_error, write_via_temp};
use crate::error::{Error, Result};

/// Reads an `.npy` file as f32 (f8 and 64-bit integers are rounded to the nearest f32).
pub fn read_f32(path: &Path) -> Result<ArrayD<f32>> {
    read::<f32>(path)
}

/// Reads an `.npy` file as f64 (exact for every supported dtype except 64-bit integers beyond 2^53).
pub fn read_f64(path: &Path) -> Result<ArrayD<f64>> {
    read::<f64>(path)
}

/// Writes `data` as a little-endian f32 `.npy` file in C order, replacing any existing file.
pub fn write_f32(path: &Path, data: ArrayViewD<f32>) -> Result<()> {
    write(path, data)
}

/// Writes `data` as a little-endian f64 (`<f8`) `.npy` file in C order.
pub fn write_f64(path: &Path, data: ArrayViewD<f64>) -> Result<()> {
    write(path, data)
}

fn write<T: ndarray_npy::WritableElement + Clone>(path: &Path, data: ArrayViewD<T>) -> Result<()> {
    if data.is_empty() {
        return Err(Error::invalid(
            "data",
            format!("cannot write an empty array (shape {:?})", data.shape()),
        ));
    }
    let data = data.as_standard_layout();
    write_via_temp(path, |tmp| {
        let file = std::fs::File::create(tmp).map_err(|e| io_error(path, e))?;
        let mut out = std::io::BufWriter::new(file);
        data.write_npy(&mut out).map_err(|e| match e {
            WriteNpyError::Io(e) => io_error(path, e),
            other => format_error(path, other.to_string()),
        })?;
        out.flush().map_err(|e| io_error(path, e))?;
        out.get_ref().sync_all().map_err(|e| io_error(path, e))
    })
}

/// Element types the readers produce.
trait Target: Copy + 'static {
    fn from_f32(v: f32) -> Self;
    fn from_f64(v: f64) -> Self;
}

impl Target for f32 {
    fn from_f32(v: f32) -> Self {
        v
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Target for f64 {
    fn from_f32(v: f32) -> Self {
        f64::from(v)
    }
    fn from_f64(v: f64) -> Self {
        v
    }
}

/// Splits a dtype descriptor such as `<f4` into its kind (`f`, `i`, `u`, `b`) and item size.
fn parse_descr(descr: &str) -> Option<(char, usize)> {
    let rest = descr.strip_prefix(['<', '>', '|']).unwrap_or(descr);
    let mut chars = rest.chars();
    let kind = chars.next()?;
    let size = chars.as_str().parse().ok()?;
    Some((kind, size))
}

fn read<T: Target>(path: &Path) -> Result<ArrayD<T>> {
    check_readable(path)?;
    let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
    let mut rest: &[u8] = &bytes;
    let header = Header::from_reader(&mut rest)
        .map_err(|e| format_error(path, format!("not a valid .npy file: {e}")))?;
    let descr = match header.type_descriptor.as_string() {
        Some(d) => d.clone(),
        None => {
            return Err(format_error(
                path,
                format!(
                    "unsupported dtype {} (structured arrays are not supported)",
                    header.type_descriptor
                ),
            ))
        }
    };
    let unsupported = || {
        format_error(
            path,
            format!("unsupported dtype '{descr}' (expected a float, integer or bool array)"),
        )
    };
    let (kind, size) = parse_descr(&descr).ok_or_else(unsupported)?;
    let len = header
        .shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format_error(path, format!("shape {:?} is too large", header.shape)))?;
    if len == 0 {
        return Err(format_error(
            path,
            format!("empty array (shape {:?})", header.shape),
        ));
    }
    let need = len
        .checked_mul(size)
        .ok_or_else(|| format_error(path, format!("shape {:?} is too large", header.shape)))?;
    if rest.len() != need {
        return Err(format_error(
            path,
            format!(
                "header describes {need} bytes of data (dtype '{descr}', shape {:?}) but the file holds {}",
                header.shape,
                rest.len()
            ),
        ));
    }
    let data = &bytes[..];
    let out = match (kind, size) {
        ('f', 4) => decode::<f32, T>(path, data, T::from_f32)?,
        ('f', 8) => decode::<f64, T>(path, data, T::from_f64)?,
        ('i', 1) => decode::<i8, T>(path, data, |v| T::from_f32(f32::from(v)))?,
        ('i', 2) => decode::<i16, T>(path, data, |v| T::from_f32(f32::from(v)))?,
        ('i', 4) => decode::<i32, T>(path, data, |v| T::from_f64(f64::from(v)))?,
        ('i', 8) => decode::<i64, T>(path, data, |v| T::from_f64(v as f64))?,
        ('u', 1) => decode::<u8, T>(path, data, |v| T::from_f32(f32::from(v)))?,
        ('u', 2) => decode::<u16, T>(path, data, |v| T::from_f32(f32::from(v)))?,
        ('u', 4) => decode::<u32, T>(path, data, |v| T::from_f64(f64::from(v)))?,
        ('u', 8) => decode::<u64, T>(path, data, |v| T::from_f64(v as f64))?,
        ('b', 1) => decode::<bool, T>(path, data, |v| T::from_f32(f32::from(u8::from(v))))?,
        _ => return Err(unsupported()),
    };
    Ok(out)
}

/// Decodes the whole file as element type `S`, converts to `T`, returns C order.
fn decode<S: ReadableElement + Copy, T: Target>(
    path: &Path,
    bytes: &[u8],
    convert: impl Fn(S) -> T,
) -> Result<ArrayD<T>> {
    let raw = ArrayD::<S>::read_npy(bytes).map_err(|e| format_error(path, e.to_string()))?;
    let out = raw.mapv(convert);
    if out.is_standard_layout() {
        Ok(out)
    } else {
        // Fortran-order file: same logical array, re-laid out row-major.
        Ok(out.as_standard_layout().into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_descr;

    #[test]
    fn descriptors() {
        assert_eq!(parse_descr("<f4"), Some(('f', 4)));
        assert_eq!(parse_descr(">f8"), Some(('f', 8)));
        assert_eq!(parse_descr("|b1"), Some(('b', 1)));
        assert_eq!(parse_descr("u1"), Some(('u', 1)));
        assert_eq!(parse_descr("<U10"), Some(('U', 10)));
        assert_eq!(parse_descr("<M8[ns]"), None);
        assert_eq!(parse_descr(""), None);
    }
}
