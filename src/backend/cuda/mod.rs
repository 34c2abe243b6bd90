//! The CUDA backend: cudarc's driver API, NVRTC and cuFFT, all loaded at run
//! time (nothing CUDA is needed to build the crate or to run it on the CPU).
//!
//! - `runtime`: library probing, [`Cuda::new`] / [`Cuda::with_stream`].
//! - `kernels`: the kernel table, every kernel declared once (its `.cu` file,
//!   typed parameters and launch shape), giving the typed launch wrappers,
//!   the embedded `.cu` files and the kernel list that module loading uses.
//! - [`module`]: the embedded `kernels/` sources, their `// uses:` assembly,
//!   NVRTC compilation (once per process and architecture; optionally cached
//!   on disk under `$LENSDIFF_KERNEL_CACHE`) and the PTX/CUBIN choice.
//! - `fft`: cuFFT plans (R2C / C2R, D2Z / Z2D, dims `{ny, nx}`).
//! - `ops`: every [`Backend`](super::Backend) method as one kernel launch
//!   (through its `kernels` wrapper) with the launch shape of kernels/README.md;
//!   the elementwise operations launch the kernels generated from their rows
//!   (`crate::backend::elementwise`, program `elementwise.cu`).
//!
//! Buffers are `CudaSlice<T>` of this backend's stream; all work is queued on
//! that one stream, in order, and [`Backend::download`](super::Backend::download)
//! waits for it. Buffers of one backend must not be used with another.

mod fft;
mod kernels;
pub mod module;
mod ops;
mod runtime;

use std::sync::Arc;

use cudarc::driver::{CudaFunction, CudaStream, LaunchConfig};

use crate::error::{Error, Result};

/// One CUDA device with its stream, compiled kernels and FFT plans.
pub struct Cuda {
    // Dropped first: plans and modules need the context that `stream` keeps.
    plans: fft::Plans,
    kernels: module::Kernels,
    stream: Arc<CudaStream>,
    /// `cuda:N`, the device in error messages.
    name: String,
    /// What [`Backend::describe`](super::Backend::describe) says.
    info: String,
}

/// Threads per block of every kernel (kernels/README.md).
const THREADS: u32 = 256;
/// The largest grid x dimension (2^31 - 1).
const MAX_GRID_X: usize = i32::MAX as usize;
/// The largest grid y dimension.
const MAX_GRID_Y: usize = 65535;

/// Blocks of [`THREADS`] covering `len` threads, at most `max`.
fn blocks(len: usize, max: usize) -> u32 {
    len.div_ceil(THREADS as usize).min(max) as u32
}

/// The 1-D shape of flat kernels: `ceil(len / 256)` blocks of 256.
fn flat(len: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks(len, MAX_GRID_X), 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The 2-D shape of batch kernels: x over the `n` elements of a map, y over
/// the maps, `(ceil(n / 256), min(maps, 65535))` blocks of 256.
fn per_map(n: usize, maps: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks(n, MAX_GRID_X), maps.min(MAX_GRID_Y) as u32, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The shape of the reductions: one block of 256 per chain.
fn per_chain(chains: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (chains.min(MAX_GRID_X) as u32, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// A length as the kernels' 32-bit `n` / `chains` / `spec_len` argument.
fn u32_arg(name: &'static str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| {
        Error::invalid(
            name,
            format!("{v} exceeds the 32-bit lengths of the CUDA kernels"),
        )
    })
}

impl Cuda {
    /// A device error naming the failing call.
    fn err(&self, call: &str, e: impl std::fmt::Display) -> Error {
        Error::device(self.name.clone(), format!("{call}: {e}"))
    }

    /// The kernel called `name`.
    fn kernel(&self, name: &str) -> Result<&CudaFunction> {
        self.kernels
            .get(name)
            .ok_or_else(|| self.err("cuModuleGetFunction", format!("no kernel `{name}`")))
    }
}

#[cfg(test)]
mod tests;
