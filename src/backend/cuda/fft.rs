//! cuFFT plans: batched 2-D real transforms with dims `{ny, nx}` (R2C / C2R
//! in f32, D2Z / Z2D in f64), the half-spectrum layout of `Fft2`
//! (src/fft.rs). Plans are made on first use and kept per
//! (nx, ny, batch, kind), on the backend's stream.

use std::ffi::c_int;
use std::sync::{Arc, Mutex};

use cudarc::cufft::{result as cufft, sys as cufft_sys};
use cudarc::driver::sys::CUdeviceptr;
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut};

use super::Cuda;
use crate::backend::{Elem, Real};
use crate::error::{Error, Result};
use crate::grid::Grid;

/// A transform type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// f32 real to complex (forward).
    R2C,
    /// f32 complex to real (inverse, unnormalised).
    C2R,
    /// f64 real to complex.
    D2Z,
    /// f64 complex to real.
    Z2D,
}

impl Kind {
    fn cufft_type(self) -> cufft_sys::cufftType {
        match self {
            Kind::R2C => cufft_sys::cufftType::CUFFT_R2C,
            Kind::C2R => cufft_sys::cufftType::CUFFT_C2R,
            Kind::D2Z => cufft_sys::cufftType::CUFFT_D2Z,
            Kind::Z2D => cufft_sys::cufftType::CUFFT_Z2D,
        }
    }
}

/// What a plan is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    nx: usize,
    ny: usize,
    batch: usize,
    kind: Kind,
}

/// A cuFFT plan, destroyed on drop (with its context current).
pub(crate) struct Plan {
    key: Key,
    handle: cufft_sys::cufftHandle,
    stream: Arc<CudaStream>,
}

impl Drop for Plan {
    fn drop(&mut self) {
        // A failure here leaks the plan; nothing else can be done in a drop.
        let _ = self.stream.context().bind_to_thread();
        // SAFETY: the handle came from `cufftPlanMany` and is destroyed once.
        let _ = unsafe { cufft::destroy(self.handle) };
    }
}

/// The plan cache of one backend.
pub(crate) struct Plans(pub(crate) Mutex<Vec<Plan>>);

/// `x` as a cuFFT `int`.
fn c_int_of(name: &'static str, x: usize) -> Result<c_int> {
    c_int::try_from(x).map_err(|_| Error::invalid(name, format!("{x} exceeds cuFFT's int range")))
}

impl Cuda {
    /// Forward transforms (`kind` R2C or D2Z) of a batch of `batch` maps
    /// into their half spectra (shapes checked by the caller with
    /// `shape::fft`).
    pub(crate) fn fft_real_to_complex<T: Elem>(
        &self,
        grid: &Grid,
        kind: Kind,
        batch: usize,
        maps: &CudaSlice<T>,
        spec: &mut CudaSlice<T>,
    ) -> Result<()> {
        let (i, _ri) = maps.device_ptr(&self.stream);
        let (o, _ro) = spec.device_ptr_mut(&self.stream);
        self.exec(grid, kind, batch, i, o)
    }

    /// Unnormalised inverse transforms (`kind` C2R or Z2D) of a batch of
    /// `batch` half spectra (which cuFFT overwrites) into maps (shapes
    /// checked by the caller with `shape::fft`).
    pub(crate) fn fft_complex_to_real<T: Elem>(
        &self,
        grid: &Grid,
        kind: Kind,
        batch: usize,
        spec: &mut CudaSlice<T>,
        maps: &mut CudaSlice<T>,
    ) -> Result<()> {
        let (i, _ri) = spec.device_ptr_mut(&self.stream);
        let (o, _ro) = maps.device_ptr_mut(&self.stream);
        self.exec(grid, kind, batch, i, o)
    }

    /// Runs `kind` from device address `i` into `o` with a cached plan.
    fn exec(
        &self,
        grid: &Grid,
        kind: Kind,
        batch: usize,
        i: CUdeviceptr,
        o: CUdeviceptr,
    ) -> Result<()> {
        let key = Key {
            nx: grid.nx,
            ny: grid.ny,
            batch,
            kind,
        };
        // cuFFT makes and runs plans in the calling thread's current context
        // (cudarc binds it for its own launches and copies, not for cuFFT):
        // a thread that did not open the backend, or a device other than 0,
        // needs it bound here.
        self.stream
            .context()
            .bind_to_thread()
            .map_err(|e| self.err("cuCtxSetCurrent", e))?;
        let mut plans = self.plans.0.lock().unwrap_or_else(|p| p.into_inner());
        let at = match plans.iter().position(|p| p.key == key) {
            Some(at) => at,
            None => {
                plans.push(self.make_plan(key)?);
                plans.len() - 1
            }
        };
        let handle = plans[at].handle;
        // SAFETY: the plan was made for these sizes; the caller checked that
        // the buffers hold `batch` maps and spectra (`shape::fft`); cuFFT's
        // complex types are interleaved (re, im) pairs like the spectrum
        // buffers, and device allocations are aligned for them.
        let r = unsafe {
            match kind {
                Kind::R2C => cufft::exec_r2c(handle, i as *mut f32, o as *mut _),
                Kind::C2R => cufft::exec_c2r(handle, i as *mut _, o as *mut f32),
                Kind::D2Z => cufft::exec_d2z(handle, i as *mut f64, o as *mut _),
                Kind::Z2D => cufft::exec_z2d(handle, i as *mut _, o as *mut f64),
            }
        };
        r.map_err(|e| self.err(&format!("cufftExec{kind:?}"), e))
    }

    /// A plan for `key` on the backend's stream: `cufftPlanMany` with rank
    /// 2, dims `{ny, nx}`, packed layouts, `batch` transforms (the context
    /// bound by `exec`).
    fn make_plan(&self, key: Key) -> Result<Plan> {
        let mut dims = [c_int_of("ny", key.ny)?, c_int_of("nx", key.nx)?];
        let batch = c_int_of("maps", key.batch)?;
        let null = std::ptr::null_mut();
        // SAFETY: `dims` holds the two sizes; null embeddings select the
        // packed layouts (strides and distances are then ignored).
        let handle = unsafe {
            cufft::plan_many(
                2,
                dims.as_mut_ptr(),
                null,
                1,
                0,
                null,
                1,
                0,
                key.kind.cufft_type(),
                batch,
            )
        }
        .map_err(|e| self.err("cufftPlanMany", e))?;
        let plan = Plan {
            key,
            handle,
            stream: self.stream.clone(),
        };
        // SAFETY: a live plan and the backend's live stream.
        unsafe { cufft::set_stream(handle, self.stream.cu_stream() as cufft_sys::cudaStream_t) }
            .map_err(|e| self.err("cufftSetStream", e))?;
        Ok(plan)
    }
}

/// The scale of the last loop of `Fft2::inverse`: `1 / N` with `N = nx ny`
/// rounded to `T` (`T::one() / T::from_usize(nx * ny)`; `N` is exact in f64).
pub(crate) fn inverse_scale<T: Real>(grid: &Grid) -> T {
    T::narrow(1.0) / T::narrow((grid.nx * grid.ny) as f64)
}
