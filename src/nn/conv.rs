//! 2-D convolution, stride 1, "same" output size, periodic or zero padding.
//!
//! With `r = (k - 1) / 2` the forward pass is the cross-correlation (the
//! convention of PyTorch's `conv2d`):
//!
//! ```text
//! y[n][o][i][j] = b[o] + Σ_c Σ_{p,q < k} w[o][c][p][q] · x[n][c][i + p - r][j + q - r]
//! ```
//!
//! where an out-of-range index wraps around (`Padding::Periodic`, the natural
//! choice on the flat-sky periodic grid, which makes the layer exactly
//! equivariant under cyclic shifts) or reads zero (`Padding::Zero`).
//!
//! Backward, for a loss `L` with `dy = ∂L/∂y`:
//!
//! ```text
//! db[o]          = Σ_{n,i,j} dy[n][o][i][j]
//! dw[o][c][p][q] = Σ_{n,i,j} dy[n][o][i][j] · x[n][c][i + p - r][j + q - r]
//! dx[n][c][s][t] = Σ_{o,p,q} w[o][c][p][q] · dy[n][o][s - p + r][t - q + r]
//! ```
//!
//! `dx` is the adjoint (transpose) convolution applied to `dy`, with the same
//! padding rule, so `<conv(x) - b, y> = <x, conv^T(y)>` exactly.

use rayon::prelude::*;

use super::{check_len, check_tensor, checked_product, Dims4, Real};
use crate::error::{Error, Result};

/// Boundary handling of the convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Padding {
    /// Indices wrap around the map (the grid is periodic).
    Periodic,
    /// Pixels outside the map are zero.
    Zero,
}

/// Configuration of a k × k convolution layer (stride 1, same output size).
///
/// Weights are `[out_ch][in_ch][k][k]`, bias `[out_ch]`, both row-major.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2d {
    in_ch: usize,
    out_ch: usize,
    k: usize,
    padding: Padding,
}

/// Source index `i + d` along an axis of length `len` under `padding`,
/// or `None` if it falls in the zero padding.
#[inline]
fn src_index(i: usize, d: isize, len: usize, padding: Padding) -> Option<usize> {
    let s = i as isize + d;
    match padding {
        Padding::Periodic => Some(s.rem_euclid(len as isize) as usize),
        Padding::Zero => (s >= 0 && (s as usize) < len).then_some(s as usize),
    }
}

impl Conv2d {
    /// A convolution from `in_ch` to `out_ch` channels with a `k × k` kernel.
    ///
    /// Errors if a channel count is zero or `k` is even or smaller than 3.
    pub fn new(in_ch: usize, out_ch: usize, k: usize, padding: Padding) -> Result<Self> {
        if in_ch == 0 {
            return Err(Error::invalid("in_ch", "must be positive"));
        }
        if out_ch == 0 {
            return Err(Error::invalid("out_ch", "must be positive"));
        }
        if k < 3 || k % 2 == 0 {
            return Err(Error::invalid(
                "k",
                format!("kernel size must be odd and at least 3, got {k}"),
            ));
        }
        checked_product("w", &[out_ch, in_ch, k, k])?;
        Ok(Conv2d {
            in_ch,
            out_ch,
            k,
            padding,
        })
    }

    /// Input channels.
    pub fn in_ch(&self) -> usize {
        self.in_ch
    }
    /// Output channels.
    pub fn out_ch(&self) -> usize {
        self.out_ch
    }
    /// Kernel size `k`.
    pub fn k(&self) -> usize {
        self.k
    }
    /// Boundary handling.
    pub fn padding(&self) -> Padding {
        self.padding
    }
    /// Number of weights, `out_ch * in_ch * k * k`.
    pub fn weight_len(&self) -> usize {
        self.out_ch * self.in_ch * self.k * self.k
    }
    /// Shape of the output for an input of shape `x` (same batch and map size).
    pub fn output_dims(&self, x: Dims4) -> Dims4 {
        Dims4::new(x.n, self.out_ch, x.h, x.w)
    }

    fn check_x(&self, x: &[impl Real], dims: Dims4) -> Result<()> {
        check_tensor("x", dims, x.len())?;
        if dims.c != self.in_ch {
            return Err(Error::shape(
                "x",
                format!("{} channels", self.in_ch),
                format!("{} channels", dims.c),
            ));
        }
        Ok(())
    }

    /// Forward pass: `y = conv(x; w) + b`, shape `[n][out_ch][h][w]`.
    pub fn forward<T: Real>(&self, x: &[T], dims: Dims4, w: &[T], b: &[T]) -> Result<Vec<T>> {
        self.check_x(x, dims)?;
        check_len("w", self.weight_len(), w.len())?;
        check_len("b", self.out_ch, b.len())?;
        let (h, wd, k, cin, cout) = (dims.h, dims.w, self.k, self.in_ch, self.out_ch);
        let plane = dims.plane();
        let r = (k / 2) as isize;
        let pad = self.padding;
        let mut y = vec![T::default(); dims.n * cout * plane];
        y.par_chunks_mut(plane).enumerate().for_each(|(idx, yp)| {
            let (n, o) = (idx / cout, idx % cout);
            let mut acc = vec![b[o].to_f64(); plane];
            for c in 0..cin {
                let xp = &x[(n * cin + c) * plane..][..plane];
                let wk = &w[(o * cin + c) * k * k..][..k * k];
                for p in 0..k {
                    for q in 0..k {
                        let wv = wk[p * k + q].to_f64();
                        for i in 0..h {
                            let Some(si) = src_index(i, p as isize - r, h, pad) else {
                                continue;
                            };
                            let xrow = &xp[si * wd..][..wd];
                            let arow = &mut acc[i * wd..][..wd];
                            for (j, a) in arow.iter_mut().enumerate() {
                                if let Some(sj) = src_index(j, q as isize - r, wd, pad) {
                                    *a += wv * xrow[sj].to_f64();
                                }
                            }
                        }
                    }
                }
            }
            for (dst, a) in yp.iter_mut().zip(&acc) {
                *dst = T::from_f64(*a);
            }
        });
        Ok(y)
    }

    /// Backward pass: given the input `x`, the weights `w` and `dy = ∂L/∂y`,
    /// returns `(dx, dw, db)` with the shapes of `x`, `w` and `b`.
    pub fn backward<T: Real>(
        &self,
        x: &[T],
        dims: Dims4,
        w: &[T],
        dy: &[T],
    ) -> Result<(Vec<T>, Vec<T>, Vec<T>)> {
        self.check_x(x, dims)?;
        check_len("w", self.weight_len(), w.len())?;
        check_len("dy", dims.n * self.out_ch * dims.plane(), dy.len())?;
        let (nb, h, wd, k, cin, cout) = (dims.n, dims.h, dims.w, self.k, self.in_ch, self.out_ch);
        let plane = dims.plane();
        let r = (k / 2) as isize;
        let pad = self.padding;

        // dx: one task per (n, c) input plane; scatter w · dy into it.
        let mut dx = vec![T::default(); x.len()];
        dx.par_chunks_mut(plane).enumerate().for_each(|(idx, dxp)| {
            let (n, c) = (idx / cin, idx % cin);
            let mut acc = vec![0.0f64; plane];
            for o in 0..cout {
                let dyp = &dy[(n * cout + o) * plane..][..plane];
                let wk = &w[(o * cin + c) * k * k..][..k * k];
                for p in 0..k {
                    for q in 0..k {
                        let wv = wk[p * k + q].to_f64();
                        for i in 0..h {
                            let Some(si) = src_index(i, p as isize - r, h, pad) else {
                                continue;
                            };
                            let dyrow = &dyp[i * wd..][..wd];
                            let arow = &mut acc[si * wd..][..wd];
                            for (j, g) in dyrow.iter().enumerate() {
                                if let Some(sj) = src_index(j, q as isize - r, wd, pad) {
                                    arow[sj] += wv * g.to_f64();
                                }
                            }
                        }
                    }
                }
            }
            for (dst, a) in dxp.iter_mut().zip(&acc) {
                *dst = T::from_f64(*a);
            }
        });

        // dw and db: one task per output channel.
        let per_o: Vec<(Vec<T>, T)> = (0..cout)
            .into_par_iter()
            .map(|o| {
                let mut dwo = vec![0.0f64; cin * k * k];
                let mut dbo = 0.0f64;
                for n in 0..nb {
                    let dyp = &dy[(n * cout + o) * plane..][..plane];
                    dbo += dyp.iter().map(|v| v.to_f64()).sum::<f64>();
                    for c in 0..cin {
                        let xp = &x[(n * cin + c) * plane..][..plane];
                        for p in 0..k {
                            for q in 0..k {
                                let mut s = 0.0f64;
                                for i in 0..h {
                                    let Some(si) = src_index(i, p as isize - r, h, pad) else {
                                        continue;
                                    };
                                    let xrow = &xp[si * wd..][..wd];
                                    let dyrow = &dyp[i * wd..][..wd];
                                    for (j, g) in dyrow.iter().enumerate() {
                                        if let Some(sj) = src_index(j, q as isize - r, wd, pad) {
                                            s += g.to_f64() * xrow[sj].to_f64();
                                        }
                                    }
                                }
                                dwo[(c * k + p) * k + q] += s;
                            }
                        }
                    }
                }
                (dwo.into_iter().map(T::from_f64).collect(), T::from_f64(dbo))
            })
            .collect();
        let mut dw = Vec::with_capacity(self.weight_len());
        let mut db = Vec::with_capacity(cout);
        for (dwo, dbo) in per_o {
            dw.extend(dwo);
            db.push(dbo);
        }
        Ok((dx, dw, db))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_input_reproduces_flipped_kernel() {
        // A unit impulse at (2, 2) in a 5x5 map: y[i][j] = w[2 - i + 1][2 - j + 1] near it.
        let conv = Conv2d::new(1, 1, 3, Padding::Zero).unwrap();
        let dims = Dims4::new(1, 1, 5, 5);
        let mut x = vec![0.0f64; 25];
        x[2 * 5 + 2] = 1.0;
        let w: Vec<f64> = (0..9).map(|v| v as f64 + 1.0).collect();
        let y = conv.forward(&x, dims, &w, &[0.5]).unwrap();
        for di in -1i32..=1 {
            for dj in -1i32..=1 {
                let (i, j) = ((2 + di) as usize, (2 + dj) as usize);
                let (p, q) = ((1 - di) as usize, (1 - dj) as usize);
                assert_eq!(y[i * 5 + j], w[p * 3 + q] + 0.5);
            }
        }
        assert_eq!(y[0], 0.5);
    }

    #[test]
    fn periodic_wraps_zero_does_not() {
        let dims = Dims4::new(1, 1, 4, 4);
        let mut x = vec![0.0f32; 16];
        x[0] = 1.0; // corner pixel
        let mut w = vec![0.0f32; 9];
        w[0] = 1.0; // y[i][j] = x[i-1][j-1]
        let per = Conv2d::new(1, 1, 3, Padding::Periodic).unwrap();
        let zer = Conv2d::new(1, 1, 3, Padding::Zero).unwrap();
        let yp = per.forward(&x, dims, &w, &[0.0]).unwrap();
        let yz = zer.forward(&x, dims, &w, &[0.0]).unwrap();
        assert_eq!(yp[5], 1.0);
        assert_eq!(yz[5], 1.0);
        // Output (0,0) reads x[-1][-1] = x[3][3] (periodic) or 0 (zero).
        x[15] = 2.0;
        let yp = per.forward(&x, dims, &w, &[0.0]).unwrap();
        let yz = zer.forward(&x, dims, &w, &[0.0]).unwrap();
        assert_eq!(yp[0], 2.0);
        assert_eq!(yz[0], 0.0);
    }

    #[test]
    fn rejects_bad_config() {
        assert!(Conv2d::new(1, 1, 4, Padding::Zero).is_err());
        assert!(Conv2d::new(1, 1, 1, Padding::Zero).is_err());
        assert!(Conv2d::new(0, 1, 3, Padding::Zero).is_err());
        assert!(Conv2d::new(1, 0, 3, Padding::Zero).is_err());
    }
}
