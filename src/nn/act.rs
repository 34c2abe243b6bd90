//! SiLU / swish activation (Elfwing, Uchibe & Doya 2018, "Sigmoid-weighted linear
//! units for neural network function approximation in reinforcement learning").
//!
//! ```text
//! silu(x)  = x · s(x),            s(x) = 1 / (1 + e^{-x}),
//! silu'(x) = s(x) · (1 + x · (1 - s(x))).
//! ```
//!
//! Element-wise, so it works on any layout; buffers are flat slices. Evaluated
//! in the storage precision: for `f32` (the network) with
//! [`crate::vmath::sigmoid_f32`], whose loops vectorise (AVX2 where the CPU
//! has it: [`crate::vmath::with_avx2`]); the C library's `expf` took 13% of a
//! forward pass (issue #16's profile).

use rayon::prelude::*;

use super::{check_len, Real};
use crate::error::Result;

/// `silu(x)` element-wise, in the storage precision.
pub fn silu_forward<T: Real>(x: &[T]) -> Vec<T> {
    let mut y = super::workspace::uncleared(x.len());
    y.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(y, x)| silu_into(x, y));
    y
}

/// `y = silu(x)` element-wise on one thread (the piece of a parallel loop);
/// `y` as long as `x` (the shorter bounds the loop).
pub fn silu_into<T: Real>(x: &[T], y: &mut [T]) {
    crate::vmath::with_avx2(
        #[inline(always)]
        || {
            for (y, &v) in y.iter_mut().zip(x) {
                *y = v * v.sigmoid();
            }
        },
    )
}

/// Elements per parallel work item.
const CHUNK: usize = 1 << 14;

/// `dx = silu'(x) · dy` element-wise; `x` and `dy` must have the same length.
pub fn silu_backward<T: Real>(x: &[T], dy: &[T]) -> Result<Vec<T>> {
    check_len("dy", x.len(), dy.len())?;
    let mut dx = super::workspace::uncleared(x.len());
    dx.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)))
        .for_each(|(dx, (x, dy))| silu_backward_into(x, dy, dx));
    Ok(dx)
}

/// `dx = silu'(x) · dy` element-wise on one thread (the piece of a parallel
/// loop); the shortest slice bounds the loop.
pub fn silu_backward_into<T: Real>(x: &[T], dy: &[T], dx: &mut [T]) {
    crate::vmath::with_avx2(
        #[inline(always)]
        || {
            for (o, (&v, &d)) in dx.iter_mut().zip(x.iter().zip(dy)) {
                let s = v.sigmoid();
                *o = s * (T::one() + v * (T::one() - s)) * d;
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let y = silu_forward(&[0.0f64, 1.0, -1.0, -800.0, 800.0]);
        let s1 = 1.0 / (1.0 + (-1.0f64).exp());
        assert_eq!(y[0], 0.0);
        assert!((y[1] - s1).abs() < 1e-15);
        assert!((y[2] + (1.0 - s1)).abs() < 1e-15);
        assert_eq!(y[3], 0.0);
        assert_eq!(y[4], 800.0);
        let d = silu_backward(&[0.0f64], &[1.0]).unwrap();
        assert_eq!(d[0], 0.5);
        assert!(silu_backward(&[0.0f64, 1.0], &[1.0]).is_err());
    }
}
