//! SiLU / swish activation (Elfwing, Uchibe & Doya 2018, "Sigmoid-weighted linear
//! units for neural network function approximation in reinforcement learning").
//!
//! ```text
//! silu(x)  = x · s(x),            s(x) = 1 / (1 + e^{-x}),
//! silu'(x) = s(x) · (1 + x · (1 - s(x))).
//! ```
//!
//! Element-wise, so it works on any layout; buffers are flat slices. Evaluated
//! in the storage precision (`f32` for the network: `expf`, not `exp`).

use rayon::prelude::*;

use super::{check_len, Real};
use crate::error::Result;

/// `silu(x)` element-wise, in the storage precision.
pub fn silu_forward<T: Real>(x: &[T]) -> Vec<T> {
    x.par_iter().map(|&v| v * v.sigmoid()).collect()
}

/// `dx = silu'(x) · dy` element-wise; `x` and `dy` must have the same length.
pub fn silu_backward<T: Real>(x: &[T], dy: &[T]) -> Result<Vec<T>> {
    check_len("dy", x.len(), dy.len())?;
    Ok(x.par_iter()
        .zip(dy.par_iter())
        .map(|(&v, &d)| {
            let s = v.sigmoid();
            s * (T::one() + v * (T::one() - s)) * d
        })
        .collect())
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
