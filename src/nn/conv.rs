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
//!
//! # Implementation: shift and multiply
//!
//! For each tap `(p, q)` the input is copied once, shifted by `(p - r, q - r)`
//! (wrapped or zero-filled), and multiplied by the `[out][in]` weight slice
//! `w[·][·][p][q]` with a GEMM (`matrixmultiply` through ndarray):
//! `Y += W_pq · shift_pq(X)`. The backward pass is the same with `W_pqᵀ` and
//! the opposite shift for `dx`, and `dW_pq += dY · shift_pq(X)ᵀ`. Work is split
//! into tiles of output rows of one batch item, so a single large map still
//! uses every thread; a tile needs one `in_ch × tile` scratch buffer, not the
//! `k²`-times larger im2col matrix. This is the loop structure of the CUDA
//! kernel (one tap-GEMM per shared-memory tile). Products are accumulated in
//! the storage type (`f32` for the network, `f64` for the gradient checks).

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};
use rayon::prelude::*;

use super::{check_len, check_tensor, checked_product, Dims4, Real};
use crate::error::{Error, Result};

/// Pixels per work tile (whole output rows, at least one row).
const TILE_PIXELS: usize = 2048;

/// Boundary handling of the convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Padding {
    /// Indices wrap around the map (the grid is periodic).
    Periodic,
    /// Pixels outside the map are zero.
    Zero,
}

impl Padding {
    /// The name used in architecture descriptions (`"periodic"` or `"zero"`).
    pub fn name(self) -> &'static str {
        match self {
            Padding::Periodic => "periodic",
            Padding::Zero => "zero",
        }
    }

    /// Parses [`Padding::name`].
    pub fn from_name(s: &str) -> Result<Self> {
        match s {
            "periodic" => Ok(Padding::Periodic),
            "zero" => Ok(Padding::Zero),
            _ => Err(Error::invalid(
                "padding",
                format!("expected \"periodic\" or \"zero\", got {s:?}"),
            )),
        }
    }
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

/// Geometry of one batch item's planes and of the row tile being processed.
#[derive(Clone, Copy)]
struct Tile {
    h: usize,
    w: usize,
    r0: usize,
    r1: usize,
    pad: Padding,
}

impl Tile {
    fn len(&self) -> usize {
        (self.r1 - self.r0) * self.w
    }
}

/// `dst[c][i - r0][j] = src[c][i + dy][j + dx]` for rows `r0..r1` of the
/// `ch` planes in `src` (wrapped or zero outside the map).
fn fill_shifted<T: Real>(src: &[T], ch: usize, t: Tile, dy: isize, dx: isize, dst: &mut [T]) {
    let (h, w) = (t.h, t.w);
    let plane = h * w;
    let tl = t.len();
    for c in 0..ch {
        let sp = &src[c * plane..][..plane];
        let dp = &mut dst[c * tl..][..tl];
        for (row, i) in (t.r0..t.r1).enumerate() {
            let drow = &mut dp[row * w..][..w];
            let Some(si) = src_index(i, dy, h, t.pad) else {
                drow.fill(T::default());
                continue;
            };
            let srow = &sp[si * w..][..w];
            match t.pad {
                Padding::Periodic => {
                    let s = dx.rem_euclid(w as isize) as usize;
                    drow[..w - s].copy_from_slice(&srow[s..]);
                    drow[w - s..].copy_from_slice(&srow[..s]);
                }
                Padding::Zero => {
                    if dx >= 0 {
                        let s = (dx as usize).min(w);
                        drow[..w - s].copy_from_slice(&srow[s..]);
                        drow[w - s..].fill(T::default());
                    } else {
                        let s = ((-dx) as usize).min(w);
                        drow[..s].fill(T::default());
                        drow[s..].copy_from_slice(&srow[..w - s]);
                    }
                }
            }
        }
    }
}

/// A matrix view of `data[offset..]` with the given shape and strides.
fn view<T: Real>(
    data: &[T],
    offset: usize,
    shape: (usize, usize),
    strides: (usize, usize),
) -> Result<ArrayView2<'_, T>> {
    ArrayView2::from_shape(shape.strides(strides), &data[offset..])
        .map_err(|e| Error::invalid("conv", format!("internal matrix view: {e}")))
}

fn view_mut<T: Real>(
    data: &mut [T],
    offset: usize,
    shape: (usize, usize),
    strides: (usize, usize),
) -> Result<ArrayViewMut2<'_, T>> {
    ArrayViewMut2::from_shape(shape.strides(strides), &mut data[offset..])
        .map_err(|e| Error::invalid("conv", format!("internal matrix view: {e}")))
}

/// Row tiles `(n, r0, r1)` covering every batch item.
fn tiles(n: usize, h: usize, w: usize) -> Vec<(usize, usize, usize)> {
    let rows = (TILE_PIXELS / w.max(1)).clamp(1, h);
    (0..n)
        .flat_map(|b| {
            (0..h)
                .step_by(rows)
                .map(move |r0| (b, r0, (r0 + rows).min(h)))
        })
        .collect()
}

impl Conv2d {
    /// A convolution from `in_ch` to `out_ch` channels with a `k × k` kernel.
    ///
    /// Errors if a channel count is zero or `k` is even (`k = 1` is a
    /// pointwise channel mix).
    pub fn new(in_ch: usize, out_ch: usize, k: usize, padding: Padding) -> Result<Self> {
        if in_ch == 0 {
            return Err(Error::invalid("in_ch", "must be positive"));
        }
        if out_ch == 0 {
            return Err(Error::invalid("out_ch", "must be positive"));
        }
        if k == 0 || k % 2 == 0 {
            return Err(Error::invalid(
                "k",
                format!("kernel size must be odd, got {k}"),
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

    /// `Σ_taps M_pq · shift(src)` for one tile, where `M_pq` is `w[·][·][p][q]`
    /// (`transpose = false`, src has `in_ch` planes, shift `+(p-r, q-r)`) or its
    /// transpose (`transpose = true`, src has `out_ch` planes, shift `-(p-r, q-r)`).
    /// Returns the tile `[rows_of_M][tile]`.
    fn tap_gemm<T: Real>(&self, src: &[T], w: &[T], t: Tile, transpose: bool) -> Result<Vec<T>> {
        let (k, cin, cout) = (self.k, self.in_ch, self.out_ch);
        let r = (k / 2) as isize;
        let (m, kk) = if transpose { (cin, cout) } else { (cout, cin) };
        let strides = if transpose {
            (k * k, cin * k * k)
        } else {
            (cin * k * k, k * k)
        };
        let tl = t.len();
        let mut out = vec![T::default(); m * tl];
        let mut shifted = vec![T::default(); kk * tl];
        for p in 0..k {
            for q in 0..k {
                let (dy, dx) = (p as isize - r, q as isize - r);
                let (dy, dx) = if transpose { (-dy, -dx) } else { (dy, dx) };
                fill_shifted(src, kk, t, dy, dx, &mut shifted);
                let a = view(w, p * k + q, (m, kk), strides)?;
                let b = view(&shifted, 0, (kk, tl), (tl, 1))?;
                let mut c = view_mut(&mut out, 0, (m, tl), (tl, 1))?;
                general_mat_mul(T::one(), &a, &b, T::one(), &mut c);
            }
        }
        Ok(out)
    }

    /// Runs `tap_gemm` over every tile of `src` (`src_ch` planes per item) and
    /// assembles the `[n][out_planes][h][w]` result, adding `bias` if given.
    fn apply<T: Real>(
        &self,
        src: &[T],
        src_ch: usize,
        dims: Dims4,
        w: &[T],
        transpose: bool,
        bias: Option<&[T]>,
    ) -> Result<Vec<T>> {
        let (h, wd, plane) = (dims.h, dims.w, dims.plane());
        let out_ch = if transpose { self.in_ch } else { self.out_ch };
        let pad = self.padding;
        let parts: Result<Vec<(usize, usize, Vec<T>)>> = tiles(dims.n, h, wd)
            .into_par_iter()
            .map(|(n, r0, r1)| {
                let t = Tile {
                    h,
                    w: wd,
                    r0,
                    r1,
                    pad,
                };
                let s = &src[n * src_ch * plane..][..src_ch * plane];
                Ok((n, r0, self.tap_gemm(s, w, t, transpose)?))
            })
            .collect();
        let mut y = vec![T::default(); dims.n * out_ch * plane];
        for (n, r0, tile) in parts? {
            let tl = tile.len() / out_ch;
            for o in 0..out_ch {
                let dst = &mut y[(n * out_ch + o) * plane + r0 * wd..][..tl];
                let src = &tile[o * tl..][..tl];
                match bias {
                    Some(b) => {
                        let bo = b[o];
                        dst.iter_mut().zip(src).for_each(|(d, s)| *d = *s + bo);
                    }
                    None => dst.copy_from_slice(src),
                }
            }
        }
        Ok(y)
    }

    /// Forward pass: `y = conv(x; w) + b`, shape `[n][out_ch][h][w]`.
    pub fn forward<T: Real>(&self, x: &[T], dims: Dims4, w: &[T], b: &[T]) -> Result<Vec<T>> {
        self.check_x(x, dims)?;
        check_len("w", self.weight_len(), w.len())?;
        check_len("b", self.out_ch, b.len())?;
        self.apply(x, self.in_ch, dims, w, false, Some(b))
    }

    /// Input gradient only: `dx = conv^T(dy)` (what a vector–Jacobian product
    /// through the network needs; skips the weight gradient).
    pub fn backward_input<T: Real>(&self, dims: Dims4, w: &[T], dy: &[T]) -> Result<Vec<T>> {
        check_tensor("x", dims, dims.len())?;
        check_len("w", self.weight_len(), w.len())?;
        check_len("dy", dims.n * self.out_ch * dims.plane(), dy.len())?;
        if dims.c != self.in_ch {
            return Err(Error::shape(
                "x",
                format!("{} channels", self.in_ch),
                format!("{} channels", dims.c),
            ));
        }
        self.apply(dy, self.out_ch, dims, w, true, None)
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
        let dx = self.backward_input(dims, w, dy)?;
        let (dw, db) = self.weight_gradient(x, dims, dy)?;
        Ok((dx, dw, db))
    }

    /// Weight and bias gradients `(dw, db)` for input `x` and `dy = ∂L/∂y`.
    pub fn weight_gradient<T: Real>(
        &self,
        x: &[T],
        dims: Dims4,
        dy: &[T],
    ) -> Result<(Vec<T>, Vec<T>)> {
        self.check_x(x, dims)?;
        check_len("dy", dims.n * self.out_ch * dims.plane(), dy.len())?;
        let (h, wd, plane, k, cin, cout) = (
            dims.h,
            dims.w,
            dims.plane(),
            self.k,
            self.in_ch,
            self.out_ch,
        );
        let r = (k / 2) as isize;
        let pad = self.padding;
        let wl = self.weight_len();
        let partial = |(n, r0, r1): (usize, usize, usize)| -> Result<(Vec<T>, Vec<T>)> {
            let t = Tile {
                h,
                w: wd,
                r0,
                r1,
                pad,
            };
            let tl = t.len();
            let xs = &x[n * cin * plane..][..cin * plane];
            let dy_off = n * cout * plane + r0 * wd;
            let dyt = view(dy, dy_off, (cout, tl), (plane, 1))?;
            let mut dw = vec![T::default(); wl];
            let mut shifted = vec![T::default(); cin * tl];
            for p in 0..k {
                for q in 0..k {
                    fill_shifted(xs, cin, t, p as isize - r, q as isize - r, &mut shifted);
                    let b = view(&shifted, 0, (cin, tl), (tl, 1))?;
                    let mut c = view_mut(&mut dw, p * k + q, (cout, cin), (cin * k * k, k * k))?;
                    general_mat_mul(T::one(), &dyt, &b.t(), T::one(), &mut c);
                }
            }
            let db = (0..cout)
                .map(|o| {
                    dy[dy_off + o * plane..][..tl]
                        .iter()
                        .fold(T::default(), |a, v| a + *v)
                })
                .collect();
            Ok((dw, db))
        };
        let sum = |a: (Vec<T>, Vec<T>), b: (Vec<T>, Vec<T>)| {
            let add = |mut u: Vec<T>, v: Vec<T>| {
                u.iter_mut().zip(v).for_each(|(x, y)| *x = *x + y);
                u
            };
            (add(a.0, b.0), add(a.1, b.1))
        };
        let parts: Result<Vec<(Vec<T>, Vec<T>)>> =
            tiles(dims.n, h, wd).into_par_iter().map(partial).collect();
        Ok(parts?
            .into_iter()
            .reduce(sum)
            .unwrap_or_else(|| (vec![T::default(); wl], vec![T::default(); cout])))
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
        assert!(Conv2d::new(1, 1, 1, Padding::Zero).is_ok());
        assert!(Conv2d::new(1, 1, 0, Padding::Zero).is_err());
        assert!(Conv2d::new(0, 1, 3, Padding::Zero).is_err());
        assert!(Conv2d::new(1, 0, 3, Padding::Zero).is_err());
    }
}
