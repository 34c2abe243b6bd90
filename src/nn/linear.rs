//! Dense (fully connected) layer on `[batch][features]` activations.
//!
//! ```text
//! y[n][o] = b[o] + Σ_i W[o][i] · x[n][i]           (W is [out][in], row-major)
//! dx[n][i] = Σ_o W[o][i] · dy[n][o]
//! dW[o][i] = Σ_n dy[n][o] · x[n][i],    db[o] = Σ_n dy[n][o]
//! ```

use rayon::prelude::*;

use super::{check_len, checked_product, Real};
use crate::error::{Error, Result};

/// Configuration of a dense layer from `in_features` to `out_features`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Linear {
    in_features: usize,
    out_features: usize,
}

/// Outputs of [`Linear::forward`] summed side by side.
const OUT_LANES: usize = 8;

impl Linear {
    /// A dense layer; both feature counts must be positive.
    pub fn new(in_features: usize, out_features: usize) -> Result<Self> {
        if in_features == 0 {
            return Err(Error::invalid("in_features", "must be positive"));
        }
        if out_features == 0 {
            return Err(Error::invalid("out_features", "must be positive"));
        }
        checked_product("w", &[out_features, in_features])?;
        Ok(Linear {
            in_features,
            out_features,
        })
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.in_features
    }
    /// Output features.
    pub fn out_features(&self) -> usize {
        self.out_features
    }
    /// Number of weights, `out_features * in_features`.
    pub fn weight_len(&self) -> usize {
        self.out_features * self.in_features
    }

    fn check_x(&self, x: &[impl Real], batch: usize) -> Result<()> {
        if batch == 0 {
            return Err(Error::invalid("batch", "must be positive"));
        }
        let n = checked_product("x", &[batch, self.in_features])?;
        check_len("x", n, x.len())
    }

    /// Forward pass: `y = W x + b`, shape `[batch][out_features]`.
    pub fn forward<T: Real>(&self, x: &[T], batch: usize, w: &[T], b: &[T]) -> Result<Vec<T>> {
        self.check_x(x, batch)?;
        check_len("w", self.weight_len(), w.len())?;
        check_len("b", self.out_features, b.len())?;
        let (fi, fo) = (self.in_features, self.out_features);
        let mut y = vec![T::default(); batch * fo];
        // OUT_LANES outputs at a time: independent sums (each in order of
        // the input index, as a plain dot product) that the CPU overlaps
        y.par_chunks_mut(fo)
            .zip(x.par_chunks(fi))
            .for_each(|(yr, xr)| {
                for (o0, yc) in (0..fo).step_by(OUT_LANES).zip(yr.chunks_mut(OUT_LANES)) {
                    // from -0.0, as `Iterator::sum` (bitwise the same as a plain sum)
                    let mut acc = [-0.0f64; OUT_LANES];
                    for (i, xv) in xr.iter().enumerate() {
                        let xv = xv.to_f64();
                        for (l, a) in acc[..yc.len()].iter_mut().enumerate() {
                            *a += w[(o0 + l) * fi + i].to_f64() * xv;
                        }
                    }
                    for (l, yv) in yc.iter_mut().enumerate() {
                        *yv = T::from_f64(acc[l] + b[o0 + l].to_f64());
                    }
                }
            });
        Ok(y)
    }

    /// Backward pass: returns `(dx, dw, db)` with the shapes of `x`, `w` and `b`.
    pub fn backward<T: Real>(
        &self,
        x: &[T],
        batch: usize,
        w: &[T],
        dy: &[T],
    ) -> Result<(Vec<T>, Vec<T>, Vec<T>)> {
        let dx = self.backward_input(x, batch, w, dy)?;
        let (dw, db) = self.weight_gradient(x, batch, dy)?;
        Ok((dx, dw, db))
    }

    /// Input gradient only, `dx = Wᵀ dy` (what a vector–Jacobian product
    /// through the network needs).
    pub fn backward_input<T: Real>(
        &self,
        x: &[T],
        batch: usize,
        w: &[T],
        dy: &[T],
    ) -> Result<Vec<T>> {
        self.check_x(x, batch)?;
        check_len("w", self.weight_len(), w.len())?;
        check_len("dy", batch * self.out_features, dy.len())?;
        let (fi, fo) = (self.in_features, self.out_features);
        let mut dx = vec![T::default(); x.len()];
        // row by row of W: every dx[i] summed in order of o, the inner loop
        // over contiguous weights
        dx.par_chunks_mut(fi).zip(dy.par_chunks(fo)).for_each_init(
            || vec![-0.0f64; fi],
            |acc, (dxr, dyr)| {
                acc.fill(-0.0);
                for (wr, d) in w.chunks_exact(fi).zip(dyr) {
                    let d = d.to_f64();
                    acc.iter_mut()
                        .zip(wr)
                        .for_each(|(a, wv)| *a += wv.to_f64() * d);
                }
                dxr.iter_mut()
                    .zip(acc.iter())
                    .for_each(|(dv, a)| *dv = T::from_f64(*a));
            },
        );
        Ok(dx)
    }

    /// Weight and bias gradients `(dw, db)`; `dw` comes from the workspace
    /// pool ([`super::workspace`]: the caller may recycle it).
    pub fn weight_gradient<T: Real>(
        &self,
        x: &[T],
        batch: usize,
        dy: &[T],
    ) -> Result<(Vec<T>, Vec<T>)> {
        self.check_x(x, batch)?;
        check_len("dy", batch * self.out_features, dy.len())?;
        let (fi, fo) = (self.in_features, self.out_features);
        // every element is written
        let mut dw = super::workspace::uncleared(self.weight_len());
        // every dw[o][i] summed in order of n, the inner loop over
        // contiguous inputs
        dw.par_chunks_mut(fi).enumerate().for_each_init(
            || vec![-0.0f64; fi],
            |acc, (o, dwr)| {
                acc.fill(-0.0);
                for (xr, dyr) in x.chunks_exact(fi).zip(dy.chunks_exact(fo)) {
                    let d = dyr[o].to_f64();
                    acc.iter_mut()
                        .zip(xr)
                        .for_each(|(a, xv)| *a += d * xv.to_f64());
                }
                dwr.iter_mut()
                    .zip(acc.iter())
                    .for_each(|(dv, a)| *dv = T::from_f64(*a));
            },
        );
        let db = (0..fo)
            .map(|o| T::from_f64((0..batch).map(|n| dy[n * fo + o].to_f64()).sum()))
            .collect();
        Ok((dw, db))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_example() {
        let lin = Linear::new(2, 3).unwrap();
        let w = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0];
        let y = lin.forward(&[1.0, -1.0], 1, &w, &[0.0, 1.0, 2.0]).unwrap();
        assert_eq!(y, vec![-1.0, 0.0, 1.0]);
        assert!(lin.forward(&[1.0, -1.0], 2, &w, &[0.0, 1.0, 2.0]).is_err());
        assert!(lin
            .forward(&[1.0, -1.0], 1, &w[..5], &[0.0, 1.0, 2.0])
            .is_err());
        assert!(Linear::new(0, 3).is_err());
    }
}
