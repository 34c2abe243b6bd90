//! Noise-level schedules from `sigma_max` down to `sigma_min`.
//!
//! - EDM (Karras et al. 2022, eq. 5): `sigma_i = (smax^(1/rho) + i/(N-1)
//!   (smin^(1/rho) - smax^(1/rho)))^rho`, dense at small sigma (`rho = 7`).
//! - Geometric (Song & Ermon 2019; jax-lensing's annealing):
//!   `sigma_i = smax (smin/smax)^(i/(N-1))`.

use crate::error::{Error, Result};

/// How the noise levels are spaced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// Karras et al. with exponent `rho`.
    Edm {
        /// Exponent (7 in EDM).
        rho: f64,
    },
    /// Log-uniform levels.
    Geometric,
}

impl Schedule {
    /// `n` levels from `sigma_max` to `sigma_min` (both included), decreasing.
    pub fn levels(&self, sigma_max: f64, sigma_min: f64, n: usize) -> Result<Vec<f64>> {
        if n < 2 {
            return Err(Error::invalid(
                "levels",
                format!("need at least 2 noise levels, got {n}"),
            ));
        }
        if !(sigma_min > 0.0 && sigma_max > sigma_min && sigma_max.is_finite()) {
            return Err(Error::invalid(
                "sigma",
                format!("need 0 < sigma_min < sigma_max, got {sigma_min} and {sigma_max}"),
            ));
        }
        let t = |i: usize| i as f64 / (n - 1) as f64;
        Ok(match *self {
            Schedule::Edm { rho } => {
                if !(rho.is_finite() && rho > 0.0) {
                    return Err(Error::invalid(
                        "rho",
                        format!("must be positive, got {rho}"),
                    ));
                }
                let (a, b) = (sigma_max.powf(1.0 / rho), sigma_min.powf(1.0 / rho));
                (0..n).map(|i| (a + t(i) * (b - a)).powf(rho)).collect()
            }
            Schedule::Geometric => (0..n)
                .map(|i| sigma_max * (sigma_min / sigma_max).powf(t(i)))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_monotonic() {
        for s in [Schedule::Edm { rho: 7.0 }, Schedule::Geometric] {
            let l = s.levels(80.0, 0.002, 18).unwrap();
            assert_eq!(l.len(), 18);
            assert!((l[0] - 80.0).abs() < 1e-9 && (l[17] - 0.002).abs() < 1e-12);
            assert!(l.windows(2).all(|w| w[1] < w[0]));
        }
        let g = Schedule::Geometric.levels(1.0, 0.01, 3).unwrap();
        assert!((g[1] - 0.1).abs() < 1e-12);
        assert!(Schedule::Geometric.levels(1.0, 2.0, 3).is_err());
        assert!(Schedule::Geometric.levels(1.0, 0.1, 1).is_err());
    }
}
