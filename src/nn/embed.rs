//! Fourier-feature embedding of the noise level, the `c_noise` input of the
//! EDM-parametrised denoiser (`docs/learned-prior.md`, "Denoiser and score").
//!
//! For fixed frequencies `f_1 … f_F` and `u = ln σ`:
//!
//! ```text
//! e(σ) = [cos(2π f_1 u), …, cos(2π f_F u), sin(2π f_1 u), …, sin(2π f_F u)]
//! ```
//!
//! (all cosines first, then all sines), one row of `2F` features per batch item.
//! The embedding has no trainable parameters and σ is an input, so there is no
//! backward pass.

use std::f64::consts::PI;

use super::Real;
use crate::error::{Error, Result};

/// Fourier features of `ln σ` with frequencies fixed at construction.
#[derive(Clone, Debug, PartialEq)]
pub struct FourierEmbedding {
    freqs: Vec<f64>,
}

impl FourierEmbedding {
    /// An embedding with the given frequencies (non-empty, all finite).
    pub fn new(freqs: Vec<f64>) -> Result<Self> {
        if freqs.is_empty() {
            return Err(Error::invalid("freqs", "at least one frequency is needed"));
        }
        if let Some(i) = freqs.iter().position(|f| !f.is_finite()) {
            return Err(Error::NonFinite {
                name: "freqs",
                index: i,
            });
        }
        Ok(FourierEmbedding { freqs })
    }

    /// The frequencies `f_i`.
    pub fn freqs(&self) -> &[f64] {
        &self.freqs
    }

    /// Output features per batch item, `2F`.
    pub fn dim(&self) -> usize {
        2 * self.freqs.len()
    }

    /// Embeds one noise level per batch item: output `[sigma.len()][2F]`.
    ///
    /// Every σ must be finite and positive; `sigma` must be non-empty.
    pub fn forward<T: Real>(&self, sigma: &[T]) -> Result<Vec<T>> {
        if sigma.is_empty() {
            return Err(Error::invalid(
                "sigma",
                "at least one noise level is needed",
            ));
        }
        let nf = self.freqs.len();
        let mut out = vec![T::default(); sigma.len() * 2 * nf];
        for (n, (s, row)) in sigma.iter().zip(out.chunks_mut(2 * nf)).enumerate() {
            let s = s.to_f64();
            if !(s.is_finite() && s > 0.0) {
                return Err(Error::invalid(
                    "sigma",
                    format!("must be finite and positive, got {s} at index {n}"),
                ));
            }
            let u = s.ln();
            for (i, f) in self.freqs.iter().enumerate() {
                let (sn, cs) = (2.0 * PI * f * u).sin_cos();
                row[i] = T::from_f64(cs);
                row[nf + i] = T::from_f64(sn);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigma_one_gives_unit_cosines() {
        let e = FourierEmbedding::new(vec![0.5, 3.0]).unwrap();
        assert_eq!(e.dim(), 4);
        let y = e.forward(&[1.0f32]).unwrap();
        assert_eq!(y, vec![1.0, 1.0, 0.0, 0.0]);
        assert!(e.forward(&[0.0f32]).is_err());
        assert!(FourierEmbedding::new(vec![]).is_err());
    }
}
