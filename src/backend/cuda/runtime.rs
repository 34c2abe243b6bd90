//! Opening a device: probing the CUDA libraries (loaded at run time), the
//! context and stream, the toolchain versions, and compiling the kernels.

use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{sys as driver_sys, CudaContext};

use super::fft::Plans;
use super::module::{cuda_version, nvrtc_version, Kernels, Toolchain};
use super::Cuda;
use crate::error::{Error, Result};

/// The first CUDA library that cannot be loaded, with what to do about it.
/// Every cudarc call panics when its library is missing, so this runs first.
pub(crate) fn missing_library() -> Option<&'static str> {
    // SAFETY: these only try to dlopen the libraries (and close them again).
    let (driver, nvrtc, cufft) = unsafe {
        (
            cudarc::driver::sys::is_culib_present(),
            cudarc::nvrtc::sys::is_culib_present(),
            cudarc::cufft::sys::is_culib_present(),
        )
    };
    if !driver {
        Some(
            "the CUDA driver library (libcuda.so) was not found: install the NVIDIA driver, \
             or add the folder holding libcuda.so to LD_LIBRARY_PATH",
        )
    } else if !nvrtc {
        Some(
            "the NVRTC library (libnvrtc.so) was not found: install the CUDA toolkit or the \
             wheel `nvidia-cuda-nvrtc` (pip), and add the folder holding libnvrtc.so \
             (e.g. <site-packages>/nvidia/cu13/lib) to LD_LIBRARY_PATH",
        )
    } else if !cufft {
        Some(
            "the cuFFT library (libcufft.so) was not found: install the CUDA toolkit or the \
             wheel `nvidia-cufft` (pip), and add the folder holding libcufft.so to \
             LD_LIBRARY_PATH",
        )
    } else {
        None
    }
}

/// A process-wide backend and its ordinal.
type SharedDevice = (usize, Arc<Cuda>);

impl Cuda {
    /// Opens CUDA device `ordinal` with a stream of its own; compiles the
    /// kernels for its architecture (once per process, see [`Cuda`]).
    pub fn new(ordinal: usize) -> Result<Cuda> {
        open(ordinal, None)
    }

    /// The process's backend for device `ordinal`, opened on first use and
    /// shared afterwards (its modules, stream and FFT plans are reused by
    /// every run that asks for `cuda:N` without a stream of its own). A
    /// failed open is not remembered: the next call tries again.
    pub fn shared(ordinal: usize) -> Result<Arc<Cuda>> {
        static DEVICES: OnceLock<Mutex<Vec<SharedDevice>>> = OnceLock::new();
        let devices = DEVICES.get_or_init(|| Mutex::new(Vec::new()));
        let mut d = match devices.lock() {
            Ok(d) => d,
            Err(p) => p.into_inner(),
        };
        if let Some((_, be)) = d.iter().find(|(i, _)| *i == ordinal) {
            return Ok(be.clone());
        }
        let be = Arc::new(Cuda::new(ordinal)?);
        d.push((ordinal, be.clone()));
        Ok(be)
    }

    /// Opens CUDA device `ordinal` and queues all work on the caller's
    /// `stream` (which must belong to the device's primary context), so that
    /// it is ordered with the caller's own work.
    ///
    /// # Safety
    ///
    /// `stream` must be a valid stream of the primary context of device
    /// `ordinal` and must outlive the backend and every buffer it made.
    pub unsafe fn with_stream(ordinal: usize, stream: driver_sys::CUstream) -> Result<Cuda> {
        open(ordinal, Some(stream))
    }
}

/// [`Cuda::new`] / [`Cuda::with_stream`]: probes the libraries, then opens
/// the device with any panic inside cudarc turned into an error.
fn open(ordinal: usize, stream: Option<driver_sys::CUstream>) -> Result<Cuda> {
    let name = format!("cuda:{ordinal}");
    if let Some(reason) = missing_library() {
        return Err(Error::device(name, reason));
    }
    match catch_unwind(AssertUnwindSafe(|| create(&name, ordinal, stream))) {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            Err(Error::device(
                name,
                format!("CUDA initialisation failed: {msg}"),
            ))
        }
    }
}

fn create(name: &str, ordinal: usize, stream: Option<driver_sys::CUstream>) -> Result<Cuda> {
    let err = |call: &str, e: &dyn std::fmt::Display| Error::device(name, format!("{call}: {e}"));
    let count = CudaContext::device_count().map_err(|e| err("cuDeviceGetCount", &e))?;
    if ordinal >= count.max(0) as usize {
        return Err(Error::device(
            name,
            format!("no CUDA device {ordinal} (found {count})"),
        ));
    }
    let ctx = CudaContext::new(ordinal).map_err(|e| err("cuDevicePrimaryCtxRetain", &e))?;
    // SAFETY: every buffer and launch of this backend uses its one stream, so
    // the events that order work across streams are not needed.
    unsafe { ctx.disable_event_tracking() };
    let stream = match stream {
        // SAFETY: the caller of `Cuda::with_stream` vouches for the stream.
        Some(s) => unsafe { ctx.wrap_borrowed_stream(s) },
        None => ctx.new_stream().map_err(|e| err("cuStreamCreate", &e))?,
    };
    let device = ctx.name().map_err(|e| err("cuDeviceGetName", &e))?;
    let cc = ctx
        .compute_capability()
        .map_err(|e| err("cuDeviceGetAttribute", &e))?;
    let mut driver: c_int = 0;
    // SAFETY: a valid out-pointer; the driver library is loaded.
    unsafe { driver_sys::cuDriverGetVersion(&mut driver) }
        .result()
        .map_err(|e| err("cuDriverGetVersion", &e))?;
    let nvrtc = nvrtc_version().map_err(|e| Error::device(name, e))?;
    let tc = Toolchain { cc, driver, nvrtc };
    let kernels = Kernels::load(&ctx, &tc).map_err(|e| Error::device(name, e))?;
    let (dm, dn) = cuda_version(driver);
    let info = format!(
        "{name} ({device}, {}, driver {dm}.{dn}, NVRTC {}.{})",
        tc.arch(),
        nvrtc.0,
        nvrtc.1
    );
    Ok(Cuda {
        plans: Plans(Mutex::new(Vec::new())),
        kernels,
        stream,
        name: name.to_string(),
        info,
    })
}
