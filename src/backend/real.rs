//! [`Real`]: the floating-point element types of the backend operations that
//! exist in both precisions (`f32` maps, `f64` for the spectral guidance's
//! solves). A generic operation is one method; on CUDA, the element type picks
//! the kernel of that precision (`name` for `f32`, `name_f64` for `f64`, the
//! two instantiations of one template in `kernels/`).
//!
//! The arithmetic helpers [`add_rn`], [`sub_rn`], [`mul_rn`], [`div_rn`] have
//! the names and the meaning of the device functions of `kernels/common.cuh`
//! (one IEEE operation, rounded to nearest, never fused), so an expression
//! written with them means the same on both backends; the elementwise table
//! (`super::elementwise`) writes its operations that way once for both.

use std::fmt;

use super::Elem;

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// The precision of a [`Real`], for dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    /// `f32` (CUDA `float`).
    F32,
    /// `f64` (CUDA `double`).
    F64,
}

/// `f32` or `f64` (sealed).
pub trait Real:
    Elem
    + sealed::Sealed
    + rustfft::FftNum
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + fmt::Display
{
    /// Which one it is.
    const PRECISION: Precision;
    /// Its C type (`float`, `double`).
    const C: &'static str;
    /// The C type of an interleaved complex of it (`cf32`, `cf64`, common.cuh).
    const C_COMPLEX: &'static str;
    /// Pointer spellings of the kernel table (src/backend/cuda/kernels.rs):
    /// `[T*, const T*, C*, const C*]` for `T` = [`Real::C`], `C` =
    /// [`Real::C_COMPLEX`].
    const C_POINTERS: [&'static str; 4];
    /// `x as f64` (exact).
    fn widen(self) -> f64;
    /// `x as Self` (round to nearest).
    fn narrow(x: f64) -> Self;

    /// `f32` for `f32`, `f64` for `f64`: the name of this precision's kernel.
    fn pick<V>(f32: V, f64: V) -> V {
        match Self::PRECISION {
            Precision::F32 => f32,
            Precision::F64 => f64,
        }
    }
}

impl Real for f32 {
    const PRECISION: Precision = Precision::F32;
    const C: &'static str = "float";
    const C_COMPLEX: &'static str = "cf32";
    const C_POINTERS: [&'static str; 4] = ["float*", "const float*", "cf32*", "const cf32*"];
    fn widen(self) -> f64 {
        self as f64
    }
    fn narrow(x: f64) -> Self {
        x as f32
    }
}

impl Real for f64 {
    const PRECISION: Precision = Precision::F64;
    const C: &'static str = "double";
    const C_COMPLEX: &'static str = "cf64";
    const C_POINTERS: [&'static str; 4] = ["double*", "const double*", "cf64*", "const cf64*"];
    fn widen(self) -> f64 {
        self
    }
    fn narrow(x: f64) -> Self {
        x
    }
}

/// `a + b` (`add_rn` of common.cuh).
#[inline(always)]
pub fn add_rn<T: Real>(a: T, b: T) -> T {
    a + b
}

/// `a - b` (`sub_rn`).
#[inline(always)]
pub fn sub_rn<T: Real>(a: T, b: T) -> T {
    a - b
}

/// `a * b` (`mul_rn`).
#[inline(always)]
pub fn mul_rn<T: Real>(a: T, b: T) -> T {
    a * b
}

/// `a / b` (`div_rn`).
#[inline(always)]
pub fn div_rn<T: Real>(a: T, b: T) -> T {
    a / b
}
