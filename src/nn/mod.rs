//! Neural-network building blocks for the learned U-Net denoiser prior (CPU reference).
//!
//! Every layer is a pair of free functions (or methods on a small, validated
//! configuration struct): a `forward` pass and a hand-written `backward` pass
//! that returns the gradients of a scalar loss with respect to the layer's inputs
//! and parameters, given the gradient `dy` with respect to its output.
//!
//! Conventions:
//! - Activations are stored in NCHW layout `[batch][channel][y][x]`, row-major,
//!   described by [`Dims4`]. Dense activations are `[batch][features]`.
//! - Storage is generic over [`Real`] (`f32` for the network, `f64` for the
//!   finite-difference gradient checks). Convolutions are one GEMM per row
//!   tile (im2col, [`conv`]) accumulated in the storage type; other
//!   reductions accumulate in `f64`.
//! - Activation buffers come from and go back to [`workspace`]'s pool, so a
//!   repeated evaluation does not take its large buffers fresh from the
//!   system.
//! - Shapes are validated up front; bad input becomes an
//!   [`crate::error::Error`], never a panic.
//! - Work is parallelised with rayon over independent output blocks (batch ×
//!   channel planes), so each loop nest maps onto one GPU kernel later
//!   (`docs/gpu.md`, "How it is built"). The hot loops (convolution GEMMs,
//!   SiLU, GroupNorm) are written for speed (issue #16; BENCHMARKS.md), the
//!   rest for clarity.
//!
//! Layer families: [`conv`] (2-D convolution, periodic or zero padding),
//! [`norm`] (GroupNorm), [`act`] (SiLU), [`resample`] (2×2 average pooling and
//! nearest-neighbour 2× upsampling), [`linear`] (dense layer) and [`embed`]
//! (Fourier features of ln σ for the noise-level conditioning `c_noise`).

pub mod act;
pub mod conv;
pub mod embed;
pub mod gemm;
pub mod linear;
pub mod norm;
pub mod resample;
pub mod unet;
pub mod weights;
pub mod workspace;

pub use unet::{UNet, UNetConfig};
pub use weights::{Tensor, Weights};

use crate::error::{Error, Result};

/// Floating-point storage type of activations and parameters.
///
/// Convolutions accumulate in the storage type (GEMM); the reductions of the
/// other layers accumulate in `f64` and round once on store.
pub trait Real:
    Copy + Send + Sync + Default + PartialEq + std::fmt::Debug + ndarray::LinalgScalar + 'static
{
    /// Widen to `f64`.
    fn to_f64(self) -> f64;
    /// Round from `f64` to the storage type.
    fn from_f64(v: f64) -> Self;
    /// The logistic sigmoid `1 / (1 + e^{-x})` in the storage precision,
    /// without overflow for either sign.
    fn sigmoid(self) -> Self;
    /// The pool of recycled buffers of this type ([`workspace`]).
    fn pool() -> &'static workspace::Pool<Self>;
    /// The slice as `f32` where `Self` is `f32` (the packed GEMM path of
    /// [`conv`]), else `None`.
    fn as_f32(x: &[Self]) -> Option<&[f32]>;
    /// The same for a mutable slice.
    fn as_f32_mut(x: &mut [Self]) -> Option<&mut [f32]>;
}

macro_rules! sigmoid_impl {
    ($x:expr) => {{
        let x = $x;
        if x >= 0.0 {
            1.0 / (1.0 + (-x).exp())
        } else {
            let e = x.exp();
            e / (1.0 + e)
        }
    }};
}

impl Real for f32 {
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    /// [`crate::vmath::sigmoid_f32`]: branch-free, so the SiLU loops
    /// vectorise.
    #[inline(always)]
    fn sigmoid(self) -> Self {
        crate::vmath::sigmoid_f32(self)
    }
    fn pool() -> &'static workspace::Pool<Self> {
        static POOL: workspace::Pool<f32> = workspace::Pool::new();
        &POOL
    }
    fn as_f32(x: &[Self]) -> Option<&[f32]> {
        Some(x)
    }
    fn as_f32_mut(x: &mut [Self]) -> Option<&mut [f32]> {
        Some(x)
    }
}

impl Real for f64 {
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline]
    fn sigmoid(self) -> Self {
        sigmoid_impl!(self)
    }
    fn pool() -> &'static workspace::Pool<Self> {
        static POOL: workspace::Pool<f64> = workspace::Pool::new();
        &POOL
    }
    fn as_f32(_: &[Self]) -> Option<&[f32]> {
        None
    }
    fn as_f32_mut(_: &mut [Self]) -> Option<&mut [f32]> {
        None
    }
}

/// Shape of an NCHW activation tensor: `n` batch items, `c` channels, `h` rows (y),
/// `w` columns (x). Element `[b][c][y][x]` is at `((b * c_total + c) * h + y) * w + x`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dims4 {
    /// Batch size.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Height (rows, y).
    pub h: usize,
    /// Width (columns, x).
    pub w: usize,
}

impl Dims4 {
    /// A shape `[n, c, h, w]` (not validated; see [`Dims4::validate`]).
    pub const fn new(n: usize, c: usize, h: usize, w: usize) -> Self {
        Dims4 { n, c, h, w }
    }

    /// Number of pixels in one channel plane, `h * w`.
    pub const fn plane(&self) -> usize {
        self.h * self.w
    }

    /// Total number of elements `n * c * h * w` (callers validate first, which
    /// rules out overflow).
    pub const fn len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }

    /// Whether the tensor has no elements.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape as an array `[n, c, h, w]`.
    pub const fn as_array(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w]
    }

    /// Checks that every extent is positive and that the element count fits in `usize`.
    pub fn validate(&self, name: &'static str) -> Result<()> {
        if self.n == 0 || self.c == 0 || self.h == 0 || self.w == 0 {
            return Err(Error::invalid(
                name,
                format!(
                    "every extent of the NCHW shape must be positive, got {:?}",
                    self.as_array()
                ),
            ));
        }
        let total = self
            .n
            .checked_mul(self.c)
            .and_then(|v| v.checked_mul(self.h))
            .and_then(|v| v.checked_mul(self.w));
        if total.is_none() {
            return Err(Error::invalid(
                name,
                format!("NCHW shape {:?} overflows usize", self.as_array()),
            ));
        }
        Ok(())
    }
}

/// Validates `dims` and checks that `buf_len` equals its element count.
pub(crate) fn check_tensor(name: &'static str, dims: Dims4, buf_len: usize) -> Result<()> {
    dims.validate(name)?;
    check_len(name, dims.len(), buf_len)
}

/// Checks that a flat buffer has exactly `expected` elements.
pub(crate) fn check_len(name: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected != got {
        return Err(Error::shape(name, [expected], [got]));
    }
    Ok(())
}

/// Product of extents with overflow checking (for parameter tensors).
pub(crate) fn checked_product(name: &'static str, extents: &[usize]) -> Result<usize> {
    extents
        .iter()
        .try_fold(1usize, |acc, &e| acc.checked_mul(e))
        .ok_or_else(|| Error::invalid(name, format!("shape {extents:?} overflows usize")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_validate() {
        assert!(Dims4::new(1, 2, 3, 4).validate("x").is_ok());
        assert!(Dims4::new(0, 2, 3, 4).validate("x").is_err());
        assert!(Dims4::new(usize::MAX, 2, 3, 4).validate("x").is_err());
        assert!(check_tensor("x", Dims4::new(1, 2, 3, 4), 24).is_ok());
        assert!(matches!(
            check_tensor("x", Dims4::new(1, 2, 3, 4), 23),
            Err(Error::ShapeMismatch { .. })
        ));
    }
}
