//! FITS images and their world coordinates, through cfitsio.
//!
//! cfitsio is the C library bundled by the `fitsio` crate; this module calls
//! it through `fitsio::sys` so that every failure becomes an [`Error`] (never a
//! panic) and file names are taken literally (no cfitsio extended-filename
//! syntax: `[`, `(`, `+`, `!` in a name are ordinary characters).
//!
//! Reading picks the first HDU that holds image data: the primary array, or
//! the first image extension when the primary is empty. cfitsio converts any
//! `BITPIX` (8, 16, 32, 64, -32, -64) to the requested type and applies
//! `BSCALE`/`BZERO`; integer pixels equal to `BLANK` come back as NaN.
//! gzip-compressed files are read transparently. Shapes are in C order:
//! `NAXIS1` (x, fastest) is the last axis.
//!
//! Calls into cfitsio are serialised by a process-wide lock: cfitsio keeps its
//! error-message stack and open-file table in global state.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use fitsio::sys;
use ndarray::{ArrayD, ArrayViewD, IxDyn};

use super::{check_readable, format_error, io_error, write_via_temp};
use crate::error::{Error, Result};
use crate::grid::Grid;

/// World coordinates for a flat-sky map (gnomonic TAN projection).
///
/// Axis 1 is x (columns, the last array axis), axis 2 is y (rows). Pixel
/// coordinates are 1-based as in FITS: the centre of the first pixel is
/// `(1, 1)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Wcs {
    /// RA, Dec of the reference point, deg.
    pub crval: [f64; 2],
    /// 1-based reference pixel x, y.
    pub crpix: [f64; 2],
    /// deg per pixel along x, y (signed).
    pub cdelt: [f64; 2],
    /// Physical unit of the pixel values (`BUNIT`), if any.
    pub bunit: Option<String>,
}

impl Wcs {
    /// Centred TAN WCS for a grid; `ra_increases_with_x` sets the sign of CDELT1.
    ///
    /// The reference point `(ra_deg, dec_deg)` sits at the geometric centre of
    /// the grid, pixel `((nx + 1) / 2, (ny + 1) / 2)` in 1-based coordinates
    /// (between pixels on even sizes). `|CDELT| = pixel_arcmin / 60`; CDELT2 is
    /// positive (Dec increases with y). The astronomical convention (East left)
    /// is `ra_increases_with_x = false`, a negative CDELT1.
    pub fn centred(grid: &Grid, ra_deg: f64, dec_deg: f64, ra_increases_with_x: bool) -> Wcs {
        let step = grid.pixel_arcmin / 60.0;
        let sign = if ra_increases_with_x { 1.0 } else { -1.0 };
        Wcs {
            crval: [ra_deg, dec_deg],
            crpix: [(grid.nx as f64 + 1.0) / 2.0, (grid.ny as f64 + 1.0) / 2.0],
            cdelt: [sign * step, step],
            bunit: None,
        }
    }

    /// Fails with [`Error::InvalidArgument`] unless every number is finite,
    /// both CDELT are non-zero and BUNIT is printable ASCII of at most 68 characters.
    fn validate(&self) -> Result<()> {
        let mut numbers = self.crval.iter().chain(&self.crpix).chain(&self.cdelt);
        if numbers.any(|v| !v.is_finite()) {
            return Err(Error::invalid(
                "wcs",
                format!("non-finite value in {self:?}"),
            ));
        }
        if self.cdelt.contains(&0.0) {
            return Err(Error::invalid("wcs", format!("zero CDELT in {self:?}")));
        }
        if let Some(unit) = &self.bunit {
            if unit.len() > 68 || !unit.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                return Err(Error::invalid(
                    "wcs.bunit",
                    format!("must be printable ASCII of at most 68 characters, got {unit:?}"),
                ));
            }
        }
        Ok(())
    }
}

/// Reads the first image of a FITS file as f32.
pub fn read_f32(path: &Path) -> Result<ArrayD<f32>> {
    read::<f32>(path)
}

/// Reads the first image of a FITS file as f64 (no precision loss for `BITPIX = -64`).
pub fn read_f64(path: &Path) -> Result<ArrayD<f64>> {
    read::<f64>(path)
}

/// Reads the TAN world coordinates of the first image HDU.
///
/// `None` when the HDU has neither `CTYPE1` nor `CTYPE2`. Otherwise the HDU
/// must describe an unrotated `RA---TAN` / `DEC--TAN` system in degrees:
/// `CRVAL1/2` and `CRPIX1/2` are required, the scale comes from `CDELT1/2`
/// (default 1, times a diagonal `PC` matrix if present) or from a diagonal
/// `CD` matrix. Anything else is an [`Error::Format`].
pub fn read_wcs(path: &Path) -> Result<Option<Wcs>> {
    let mut file = Fits::open(path)?;
    file.find_image()?;
    let ctype1 = file.key_str(c"CTYPE1")?;
    let ctype2 = file.key_str(c"CTYPE2")?;
    if ctype1.is_none() && ctype2.is_none() {
        return Ok(None);
    }
    if ctype1.as_deref() != Some("RA---TAN") || ctype2.as_deref() != Some("DEC--TAN") {
        return Err(file.error(format!(
            "unsupported world coordinates CTYPE1 = {ctype1:?}, CTYPE2 = {ctype2:?} \
             (expected 'RA---TAN' and 'DEC--TAN')"
        )));
    }
    for key in [c"CUNIT1", c"CUNIT2"] {
        if let Some(unit) = file.key_str(key)? {
            if !unit.eq_ignore_ascii_case("deg") {
                return Err(file.error(format!(
                    "unsupported {} = '{unit}' (expected 'deg')",
                    key.to_string_lossy()
                )));
            }
        }
    }
    let crval = [file.required(c"CRVAL1")?, file.required(c"CRVAL2")?];
    let crpix = [file.required(c"CRPIX1")?, file.required(c"CRPIX2")?];
    let cd = [
        file.key_f64(c"CD1_1")?,
        file.key_f64(c"CD1_2")?,
        file.key_f64(c"CD2_1")?,
        file.key_f64(c"CD2_2")?,
    ];
    let cdelt = if cd.iter().any(Option::is_some) {
        let [d11, d12, d21, d22] = cd.map(|v| v.unwrap_or(0.0));
        if d12 != 0.0 || d21 != 0.0 {
            return Err(file.error("rotated CD matrix is not supported".to_string()));
        }
        [d11, d22]
    } else {
        let pc = [
            file.key_f64(c"PC1_1")?.unwrap_or(1.0),
            file.key_f64(c"PC1_2")?.unwrap_or(0.0),
            file.key_f64(c"PC2_1")?.unwrap_or(0.0),
            file.key_f64(c"PC2_2")?.unwrap_or(1.0),
        ];
        if pc[1] != 0.0 || pc[2] != 0.0 {
            return Err(file.error("rotated PC matrix is not supported".to_string()));
        }
        [
            file.key_f64(c"CDELT1")?.unwrap_or(1.0) * pc[0],
            file.key_f64(c"CDELT2")?.unwrap_or(1.0) * pc[3],
        ]
    };
    let bunit = file.key_str(c"BUNIT")?;
    let wcs = Wcs {
        crval,
        crpix,
        cdelt,
        bunit,
    };
    let mut all = wcs.crval.iter().chain(&wcs.crpix).chain(&wcs.cdelt);
    if all.any(|v| !v.is_finite()) || wcs.cdelt.contains(&0.0) {
        return Err(file.error(format!("degenerate world coordinates {wcs:?}")));
    }
    Ok(Some(wcs))
}

/// Writes `data` as the primary image (`BITPIX = -32`) of a new FITS file, replacing any existing file.
///
/// The shape is in C order: `[ny, nx]` gives `NAXIS1 = nx`, `NAXIS2 = ny`.
/// With `wcs`, writes `CTYPE1 = 'RA---TAN'`, `CTYPE2 = 'DEC--TAN'`,
/// `CRVAL1/2`, `CRPIX1/2`, `CDELT1/2` (17 significant digits, so they read
/// back bitwise), `CUNIT1/2 = 'deg'` and `BUNIT` when given. NaN pixels are
/// written as is (FITS undefined values).
pub fn write_f32(path: &Path, data: ArrayViewD<f32>, wcs: Option<&Wcs>) -> Result<()> {
    if data.is_empty() || data.ndim() == 0 || data.ndim() > 999 {
        return Err(Error::invalid(
            "data",
            format!(
                "a FITS image needs 1 to 999 axes and at least one pixel, got shape {:?}",
                data.shape()
            ),
        ));
    }
    if let Some(wcs) = wcs {
        wcs.validate()?;
    }
    let mut naxes = Vec::with_capacity(data.ndim());
    for &n in data.shape().iter().rev() {
        naxes.push(sys::LONGLONG::try_from(n).map_err(|_| {
            Error::invalid("data", format!("axis of length {n} is too long for FITS"))
        })?);
    }
    let n = sys::LONGLONG::try_from(data.len())
        .map_err(|_| Error::invalid("data", "too many pixels for FITS"))?;
    // C order, and a buffer cfitsio may use freely.
    let mut pixels: Vec<f32> = data.iter().copied().collect();
    write_via_temp(path, |tmp| {
        let mut file = Fits::create(tmp, path)?;
        let mut status = 0;
        // SAFETY: valid open file; `naxes` holds `naxes.len()` axis lengths.
        unsafe {
            sys::ffcrimll(
                file.ptr,
                sys::FLOAT_IMG,
                naxes.len() as c_int,
                naxes.as_mut_ptr(),
                &mut status,
            );
        }
        file.check_write(status)?;
        if let Some(wcs) = wcs {
            file.write_str(c"CTYPE1", "RA---TAN", c"gnomonic projection")?;
            file.write_str(c"CTYPE2", "DEC--TAN", c"gnomonic projection")?;
            file.write_f64(c"CRVAL1", wcs.crval[0], c"[deg] RA of the reference point")?;
            file.write_f64(c"CRVAL2", wcs.crval[1], c"[deg] Dec of the reference point")?;
            file.write_f64(
                c"CRPIX1",
                wcs.crpix[0],
                c"reference pixel along x (1-based)",
            )?;
            file.write_f64(
                c"CRPIX2",
                wcs.crpix[1],
                c"reference pixel along y (1-based)",
            )?;
            file.write_f64(c"CDELT1", wcs.cdelt[0], c"[deg] pixel step along x")?;
            file.write_f64(c"CDELT2", wcs.cdelt[1], c"[deg] pixel step along y")?;
            file.write_str(c"CUNIT1", "deg", c"unit of CRVAL1 and CDELT1")?;
            file.write_str(c"CUNIT2", "deg", c"unit of CRVAL2 and CDELT2")?;
            if let Some(unit) = &wcs.bunit {
                file.write_str(c"BUNIT", unit, c"unit of the pixel values")?;
            }
        }
        // SAFETY: valid open file; `pixels` holds `n` f32 values.
        unsafe {
            sys::ffppr(
                file.ptr,
                sys::TFLOAT as c_int,
                1,
                n,
                pixels.as_mut_ptr().cast::<c_void>(),
                &mut status,
            );
        }
        file.check_write(status)?;
        file.close()
    })
}

/// Element types cfitsio converts images to.
trait Elem: Copy {
    /// cfitsio datatype code.
    const DATATYPE: c_int;
    const ZERO: Self;
    const NAN: Self;
}

impl Elem for f32 {
    const DATATYPE: c_int = sys::TFLOAT as c_int;
    const ZERO: Self = 0.0;
    const NAN: Self = f32::NAN;
}

impl Elem for f64 {
    const DATATYPE: c_int = sys::TDOUBLE as c_int;
    const ZERO: Self = 0.0;
    const NAN: Self = f64::NAN;
}

fn read<T: Elem>(path: &Path) -> Result<ArrayD<T>> {
    let mut file = Fits::open(path)?;
    let shape = file.find_image()?;
    let len = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| file.error(format!("image shape {shape:?} is too large")))?;
    let data = file.read_pixels::<T>(len)?;
    ArrayD::from_shape_vec(IxDyn(&shape), data).map_err(|e| file.error(e.to_string()))
}

/// cfitsio's global state is not safe to share between threads.
static CFITSIO: Mutex<()> = Mutex::new(());

/// An open cfitsio file, closed on drop; holds the cfitsio lock while open.
struct Fits<'a> {
    ptr: *mut sys::fitsfile,
    /// The path reported in errors.
    path: &'a Path,
    _lock: MutexGuard<'static, ()>,
}

impl Drop for Fits<'_> {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            let mut status = 0;
            // SAFETY: `ptr` is an open file, closed exactly once.
            unsafe {
                sys::ffclos(self.ptr, &mut status);
                sys::ffcmsg();
            }
            self.ptr = std::ptr::null_mut();
        }
    }
}

fn lock() -> MutexGuard<'static, ()> {
    CFITSIO.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The file name as cfitsio takes it.
fn c_path(path: &Path) -> Result<CString> {
    #[cfg(unix)]
    let bytes = {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes().to_vec()
    };
    #[cfg(not(unix))]
    let bytes = path
        .to_str()
        .ok_or_else(|| Error::invalid("path", format!("{} is not valid UTF-8", path.display())))?
        .as_bytes()
        .to_vec();
    CString::new(bytes)
        .map_err(|_| Error::invalid("path", format!("{} contains a NUL byte", path.display())))
}

/// Text of a NUL-terminated buffer filled by cfitsio.
fn buffer_text(buf: &[c_char]) -> String {
    let bytes: Vec<u8> = buf.iter().map(|&c| c as u8).collect();
    match CStr::from_bytes_until_nul(&bytes) {
        Ok(s) => s.to_string_lossy(),
        Err(_) => String::from_utf8_lossy(&bytes),
    }
    .replace(|c: char| c.is_control(), " ")
    .trim_end()
    .to_string()
}

/// cfitsio's description of `status` followed by its error-message stack (which it clears).
fn cfitsio_message(status: c_int) -> String {
    let mut buf = [0 as c_char; 81];
    // SAFETY: ffgerr writes at most 31 bytes (FLEN_STATUS).
    unsafe { sys::ffgerr(status, buf.as_mut_ptr()) };
    let mut text = format!("cfitsio error {status} ({})", buffer_text(&buf));
    let mut details: Vec<String> = Vec::new();
    for _ in 0..32 {
        let mut msg = [0 as c_char; 81];
        // SAFETY: ffgmsg writes at most 81 bytes (FLEN_ERRMSG).
        unsafe { sys::ffgmsg(msg.as_mut_ptr()) };
        let msg = buffer_text(&msg);
        if msg.is_empty() {
            break;
        }
        if !details.contains(&msg) {
            details.push(msg);
        }
    }
    // SAFETY: clears the global message stack; no arguments.
    unsafe { sys::ffcmsg() };
    if !details.is_empty() {
        text.push_str(": ");
        text.push_str(&details.join("; "));
    }
    text
}

impl<'a> Fits<'a> {
    /// Opens an existing file read-only. A missing or unreadable file is an [`Error::Io`].
    fn open(path: &'a Path) -> Result<Self> {
        check_readable(path)?;
        let name = c_path(path)?;
        let lock = lock();
        let mut ptr = std::ptr::null_mut();
        let mut status = 0;
        // SAFETY: `name` is NUL-terminated; cfitsio sets `ptr` or a non-zero status.
        unsafe {
            sys::ffcmsg();
            sys::ffdkopn(&mut ptr, name.as_ptr(), 0, &mut status);
        }
        let file = Fits {
            ptr: if status == 0 {
                ptr
            } else {
                std::ptr::null_mut()
            },
            path,
            _lock: lock,
        };
        if status != 0 || file.ptr.is_null() {
            return Err(file.error(format!(
                "not a readable FITS file: {}",
                cfitsio_message(status)
            )));
        }
        Ok(file)
    }

    /// Creates a new file at `tmp` (which must not exist); errors name `path`.
    fn create(tmp: &Path, path: &'a Path) -> Result<Self> {
        let name = c_path(tmp)?;
        let lock = lock();
        let mut ptr = std::ptr::null_mut();
        let mut status = 0;
        // SAFETY: `name` is NUL-terminated; cfitsio sets `ptr` or a non-zero status.
        unsafe {
            sys::ffcmsg();
            sys::ffdkinit(&mut ptr, name.as_ptr(), &mut status);
        }
        let file = Fits {
            ptr: if status == 0 {
                ptr
            } else {
                std::ptr::null_mut()
            },
            path,
            _lock: lock,
        };
        if status != 0 || file.ptr.is_null() {
            return Err(file.write_error(status));
        }
        Ok(file)
    }

    /// Closes the file, reporting errors from flushing it.
    fn close(mut self) -> Result<()> {
        let mut status = 0;
        // SAFETY: `ptr` is open; it is nulled so that drop does not close it again.
        unsafe { sys::ffclos(self.ptr, &mut status) };
        self.ptr = std::ptr::null_mut();
        self.check_write(status)
    }

    fn error(&self, reason: String) -> Error {
        format_error(self.path, reason)
    }

    /// [`Error::Format`] with cfitsio's message unless `status` is 0.
    fn check(&self, status: c_int) -> Result<()> {
        if status == 0 {
            Ok(())
        } else {
            Err(self.error(cfitsio_message(status)))
        }
    }

    /// [`Error::Format`] naming `key` unless `status` is 0.
    fn check_key(&self, key: &CStr, status: c_int) -> Result<()> {
        if status == 0 {
            Ok(())
        } else {
            Err(self.error(format!(
                "key {}: {}",
                key.to_string_lossy(),
                cfitsio_message(status)
            )))
        }
    }

    fn write_error(&self, status: c_int) -> Error {
        io_error(
            self.path,
            std::io::Error::other(format!("writing FITS: {}", cfitsio_message(status))),
        )
    }

    /// [`Error::Io`] with cfitsio's message unless `status` is 0.
    fn check_write(&self, status: c_int) -> Result<()> {
        if status == 0 {
            Ok(())
        } else {
            Err(self.write_error(status))
        }
    }

    /// Moves to the first HDU holding image data and returns its shape in C order.
    fn find_image(&mut self) -> Result<Vec<usize>> {
        let mut hdu: c_int = 1;
        loop {
            let mut hdu_type = 0;
            let mut status = 0;
            // SAFETY: valid open file; outputs are plain integers.
            unsafe { sys::ffmahd(self.ptr, hdu, &mut hdu_type, &mut status) };
            if status == sys::END_OF_FILE as c_int && hdu > 1 {
                // SAFETY: clears the global message stack.
                unsafe { sys::ffcmsg() };
                return Err(self.error(format!(
                    "no HDU holds image data ({} HDU(s): empty images or tables)",
                    hdu - 1
                )));
            }
            self.check(status)?;
            if hdu_type == sys::IMAGE_HDU as c_int {
                let mut naxis: c_int = 0;
                // SAFETY: valid open file, current HDU is an image.
                unsafe { sys::ffgidm(self.ptr, &mut naxis, &mut status) };
                self.check(status)?;
                if naxis > 0 {
                    let mut naxes: Vec<sys::LONGLONG> = vec![0; naxis as usize];
                    // SAFETY: `naxes` has room for `naxis` values.
                    unsafe { sys::ffgiszll(self.ptr, naxis, naxes.as_mut_ptr(), &mut status) };
                    self.check(status)?;
                    if naxes.iter().all(|&n| n > 0) {
                        let mut shape = Vec::with_capacity(naxes.len());
                        for &n in naxes.iter().rev() {
                            shape.push(usize::try_from(n).map_err(|_| {
                                self.error(format!("axis length {n} is too large"))
                            })?);
                        }
                        return Ok(shape);
                    }
                }
            }
            hdu = hdu
                .checked_add(1)
                .ok_or_else(|| self.error("too many HDUs".to_string()))?;
        }
    }

    /// Reads `len` pixels of the current image, in chunks so that a header
    /// promising more data than the file holds fails before a large allocation.
    ///
    /// Integer images (`BITPIX > 0`) map `BLANK` pixels to NaN. Float images
    /// are read without cfitsio's null check, which would also flush `-0.0`
    /// and subnormals to `+0.0`: their bits come back unchanged.
    fn read_pixels<T: Elem>(&mut self, len: usize) -> Result<Vec<T>> {
        const CHUNK: usize = 1 << 20;
        let mut bitpix: c_int = 0;
        let mut status = 0;
        // SAFETY: valid open file, current HDU is an image.
        unsafe { sys::ffgidt(self.ptr, &mut bitpix, &mut status) };
        self.check(status)?;
        let mut null_value = T::NAN;
        let null_ptr: *mut c_void = if bitpix > 0 {
            (&mut null_value as *mut T).cast::<c_void>()
        } else {
            std::ptr::null_mut()
        };
        let mut out: Vec<T> = Vec::with_capacity(len.min(CHUNK));
        while out.len() < len {
            let start = out.len();
            let count = CHUNK.min(len - start);
            out.resize(start + count, T::ZERO);
            let mut any_null = 0;
            // SAFETY: `out[start..]` holds `count` elements of the datatype
            // cfitsio is told to write; `null_ptr` is null or points to one
            // such element (`null_value`, alive for the whole loop).
            unsafe {
                sys::ffgpv(
                    self.ptr,
                    T::DATATYPE,
                    start as sys::LONGLONG + 1,
                    count as sys::LONGLONG,
                    null_ptr,
                    out[start..].as_mut_ptr().cast::<c_void>(),
                    &mut any_null,
                    &mut status,
                );
            }
            if status != 0 {
                return Err(self.error(format!(
                    "reading pixels {} to {} of {len}: {}",
                    start + 1,
                    start + count,
                    cfitsio_message(status)
                )));
            }
        }
        Ok(out)
    }

    /// A numeric header key of the current HDU, `None` when absent.
    fn key_f64(&mut self, key: &CStr) -> Result<Option<f64>> {
        let mut value = 0.0;
        let mut status = 0;
        // SAFETY: `key` is NUL-terminated; a null comment pointer is allowed.
        unsafe {
            sys::ffgkyd(
                self.ptr,
                key.as_ptr(),
                &mut value,
                std::ptr::null_mut(),
                &mut status,
            );
        }
        if status == sys::KEY_NO_EXIST as c_int {
            // SAFETY: clears the global message stack.
            unsafe { sys::ffcmsg() };
            return Ok(None);
        }
        self.check_key(key, status)?;
        Ok(Some(value))
    }

    /// A numeric header key that must be present.
    fn required(&mut self, key: &CStr) -> Result<f64> {
        self.key_f64(key)?.ok_or_else(|| {
            self.error(format!(
                "TAN world coordinates without {}",
                key.to_string_lossy()
            ))
        })
    }

    /// A string header key of the current HDU (trailing blanks removed), `None` when absent.
    fn key_str(&mut self, key: &CStr) -> Result<Option<String>> {
        let mut value = [0 as c_char; 71];
        let mut status = 0;
        // SAFETY: `value` has FLEN_VALUE (71) bytes; a null comment pointer is allowed.
        unsafe {
            sys::ffgkys(
                self.ptr,
                key.as_ptr(),
                value.as_mut_ptr(),
                std::ptr::null_mut(),
                &mut status,
            );
        }
        if status == sys::KEY_NO_EXIST as c_int {
            // SAFETY: clears the global message stack.
            unsafe { sys::ffcmsg() };
            return Ok(None);
        }
        self.check_key(key, status)?;
        Ok(Some(buffer_text(&value)))
    }

    fn write_str(&mut self, key: &CStr, value: &str, comment: &CStr) -> Result<()> {
        let value = CString::new(value)
            .map_err(|_| Error::invalid("wcs", format!("{value:?} contains a NUL byte")))?;
        let mut status = 0;
        // SAFETY: all strings are NUL-terminated; cfitsio copies them.
        unsafe {
            sys::ffpkys(
                self.ptr,
                key.as_ptr(),
                value.as_ptr(),
                comment.as_ptr(),
                &mut status,
            );
        }
        self.check_write(status)
    }

    fn write_f64(&mut self, key: &CStr, value: f64, comment: &CStr) -> Result<()> {
        let mut status = 0;
        // SAFETY: strings are NUL-terminated; decimals -17 selects "%.17G",
        // which round-trips every f64.
        unsafe {
            sys::ffpkyd(
                self.ptr,
                key.as_ptr(),
                value,
                -17,
                comment.as_ptr(),
                &mut status,
            );
        }
        self.check_write(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centred_reference_pixel_and_steps() {
        let grid = Grid::new(360, 100, 0.29).expect("grid");
        let w = Wcs::centred(&grid, 150.0, 2.0, false);
        assert_eq!(w.crpix, [180.5, 50.5]);
        assert_eq!(w.crval, [150.0, 2.0]);
        assert!((w.cdelt[0] + 0.29 / 60.0).abs() < 1e-15);
        assert!((w.cdelt[1] - 0.29 / 60.0).abs() < 1e-15);
        let e = Wcs::centred(&grid, 150.0, 2.0, true);
        assert_eq!(e.cdelt[0], -w.cdelt[0]);
        let odd = Grid::new(5, 7, 1.0).expect("grid");
        assert_eq!(Wcs::centred(&odd, 0.0, 0.0, true).crpix, [3.0, 4.0]);
    }

    #[test]
    fn invalid_wcs_is_refused() {
        let grid = Grid::square(8, 1.0).expect("grid");
        let mut w = Wcs::centred(&grid, f64::NAN, 0.0, true);
        assert!(w.validate().is_err());
        w.crval[0] = 10.0;
        assert!(w.validate().is_ok());
        w.cdelt[1] = 0.0;
        assert!(w.validate().is_err());
        w.cdelt[1] = 1.0;
        w.bunit = Some("κ".into());
        assert!(w.validate().is_err());
    }
}
