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
//! # Implementation: one GEMM per tile (im2col)
//!
//! Work is split into tiles of whole output rows of one batch item. For a
//! tile of `P` pixels the `k²·C_in` shifted copies of the input rows it reads
//! are laid out as the rows of a matrix `X_col` (`[c][p][q]` by pixel: row
//! `c k² + p k + q` is channel `c` shifted by `(p - r, q - r)`, wrapped or
//! zero-filled), and the whole convolution of the tile is one GEMM with the
//! weights read as a `C_out × k²C_in` matrix, written straight into the
//! output rows: `Y_tile = W X_col + b`. The backward pass is the same with the
//! opposite shift of `dy` and the transposed weights `W'[c][o k² + p k + q] =
//! w[o][c][p][q]` for `dx`, and `dW += dY_tile X_colᵀ` per tile (the tiles summed in
//! order within at most 8 groups of consecutive tiles, the groups then added
//! in order). One GEMM with the inner dimension `k²C_in` instead of `k²`
//! GEMMs with `C_in` reads and writes each output once instead of `k²` times
//! and packs the weights once (the profile of issue #16). Tiles hold about
//! 2^17 elements of `X_col` (at least one row), a size set by the
//! geometry alone, so the results do not depend on the thread count; each
//! rayon job reuses one scratch buffer (from [`super::workspace`]) for its
//! tiles. GEMMs are
//! `matrixmultiply`'s (through ndarray), accumulating in the storage type
//! (`f32` for the network, `f64` for the gradient checks).
//!
//! # The `f32` convolutions on AVX-512: implicit GEMM
//!
//! Where the CPU has AVX-512F ([`gemm::avx512_path`]) the `f32` forward
//! pass, input VJP and weight gradient skip `X_col`: the source is copied
//! once into planes with a halo of `r` pixels (wrapped or zero), and every
//! tap `(c, p, q)` becomes a fixed offset into them. The `k²`-fold copy of
//! the input that im2col writes and the GEMM then packs again (25% of the
//! convolutions' time in the profile of issue #16) is gone.
//!
//! - Forward and input VJP: each output row (or, where rows are consecutive
//!   in the source, a run of whole rows up to 256 pixels) is one
//!   [`gemm::gemm_row`] of the packed weights with those offsets, the bias
//!   added in the GEMM.
//! - Rows under 16 pixels would leave the 48-wide register block of the
//!   micro-kernel mostly empty. There the padded planes are copied once more
//!   per horizontal tap, shifted (`S[c][q][ie·w + j] = P[c][ie][j + q]`,
//!   `TapLayout`), so that the rows of an item follow one another with no
//!   halo columns between them: an item's pixels are consecutive positions,
//!   computed in runs of whole rows (the whole item up to 256 pixels) in
//!   full vectors and written in place (a `1 × 1` convolution reads the
//!   source itself the same way, at every width).
//! - Weight gradient: `dWᵀ[(c, p, q)][o] = Σ_pos P[c][pos + off(p, q)] ·
//!   dYᵀ[pos][o]` over the run of positions of each item
//!   ([`gemm::gemm_add_shifted`], `dYᵀ` zero in the halo columns), the input
//!   planes (or their shifted copies) read in place as the rows of `A`, in
//!   chunks of positions added in a fixed order.
//!
//! Each output element is summed in an order fixed by the shapes (module docs
//! of [`gemm`]), so results do not depend on the thread count; they differ
//! from `matrixmultiply`'s in the last bits.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};
use rayon::prelude::*;

use super::gemm::{self, PackedA};
use super::{check_len, check_tensor, checked_product, Dims4, Real};
use crate::error::{Error, Result};

/// Elements of a tile's `X_col` matrix (whole output rows, at least one).
const COL_ELEMENTS: usize = 1 << 17;

/// Rows at least this wide are read in place from the padded planes, one
/// implicit-GEMM call per row; narrower ones from shifted copies
/// ([`TapLayout`]). (A `1 × 1` convolution reads its source in place at
/// every width, several rows per call.) Measured (`cargo bench --bench nn --
/// conv C C SIDE 16 10`, 1 thread, best of 3, GFLOP/s forward / input VJP):
/// the shifted copies win at 8² (128 channels 92 / 88 against 78 / 77 with
/// the earlier stretches of rows, 304 → 128 channels 91 / 87 against 76 /
/// 75) and 4² (176 channels 65 / 60 against 40 / 41), and lose at 16² (64
/// channels 88 / 82 against 93 / 89) and at 32² in the VJP (32 channels
/// 80 / 64 against 79 / 82).
const WIDE_ROW: usize = 16;

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

/// Row tiles `(item, tile)` covering every batch item of `h x w` planes, for
/// an `X_col` of `col_rows` rows, and the pixels of the longest tile (the
/// scratch a worker needs is `col_rows` times that).
fn tiles(
    n: usize,
    h: usize,
    w: usize,
    col_rows: usize,
    pad: Padding,
) -> (Vec<(usize, Tile)>, usize) {
    let rows = (COL_ELEMENTS / (col_rows * w).max(1)).clamp(1, h.max(1));
    let tiles = (0..n)
        .flat_map(|b| {
            (0..h).step_by(rows).map(move |r0| {
                let r1 = (r0 + rows).min(h);
                (b, Tile { h, w, r0, r1, pad })
            })
        })
        .collect();
    (tiles, rows.min(h) * w)
}

/// `X_col` of one tile into `dst` (`ch k²` rows of the tile's pixels): row
/// `c k² + p k + q` is plane `c` of `src` shifted by `±(p - r, q - r)`
/// (`+` for the forward pass and the weight gradient, `-` for `dx`).
fn im2col<T: Real>(src: &[T], ch: usize, k: usize, t: Tile, flip: bool, dst: &mut [T]) {
    let plane = t.h * t.w;
    let tl = t.len();
    let r = (k / 2) as isize;
    for c in 0..ch {
        let sp = &src[c * plane..][..plane];
        for p in 0..k {
            for q in 0..k {
                let (dy, dx) = (p as isize - r, q as isize - r);
                let (dy, dx) = if flip { (-dy, -dx) } else { (dy, dx) };
                let row = (c * k + p) * k + q;
                fill_shifted(sp, 1, t, dy, dx, &mut dst[row * tl..][..tl]);
            }
        }
    }
}

/// The input planes with a halo of `r` pixels on every side (wrapped or
/// zero, as `pad`): `[n·ch][(h + 2r)][(w + 2r)]`, so that every tap of a
/// `(2r + 1)²` kernel reads a plain offset ([`gemm::gemm_row`]).
fn padded_planes(
    src: &[f32],
    planes: usize,
    h: usize,
    w: usize,
    r: usize,
    pad: Padding,
) -> Vec<f32> {
    let (he, we) = (h + 2 * r, w + 2 * r);
    let mut out = super::workspace::uncleared::<f32>(planes * he * we);
    // the source row of every padded row and the source column of every
    // halo column (None: zero), computed once
    let rows: Vec<Option<usize>> = (0..he)
        .map(|ie| src_index(ie, -(r as isize), h, pad))
        .collect();
    let left: Vec<Option<usize>> = (0..r)
        .map(|q| src_index(q, -(r as isize), w, pad))
        .collect();
    let right: Vec<Option<usize>> = (0..r).map(|q| src_index(w + q, 0, w, pad)).collect();
    out.par_chunks_mut(he * we)
        .zip(src.par_chunks(h * w))
        .for_each(|(dst, sp)| {
            for (drow, si) in dst.chunks_exact_mut(we).zip(&rows) {
                let Some(si) = *si else {
                    drow.fill(0.0);
                    continue;
                };
                let srow = &sp[si * w..][..w];
                let (lh, rest) = drow.split_at_mut(r);
                let (mid, rh) = rest.split_at_mut(w);
                mid.copy_from_slice(srow);
                for (d, j) in lh.iter_mut().zip(&left) {
                    *d = j.map_or(0.0, |j| srow[j]);
                }
                for (d, j) in rh.iter_mut().zip(&right) {
                    *d = j.map_or(0.0, |j| srow[j]);
                }
            }
        });
    out
}

/// The offset of tap `(c, p, q)`, in order `(c k + p) k + q`, in padded
/// planes of `he × we`: channel `c`'s plane shifted by `(p - r, q - r)`, or
/// by the opposite for the transposed convolution (`flip`).
fn tap_offsets(ch: usize, k: usize, he: usize, we: usize, flip: bool) -> Vec<isize> {
    let (kk, r) = (k * k, (k / 2) as isize);
    let sign = if flip { -1 } else { 1 };
    (0..ch * kk)
        .map(|j| {
            let (c, t) = (j / kk, j % kk);
            let (dy, dx) = ((t / k) as isize - r, (t % k) as isize - r);
            (c * he * we) as isize + sign * (dy * we as isize + dx)
        })
        .collect()
}

/// `db[o] = Σ_{n, p} dy[n][o][p]` in `f64`, each sum in order of item and
/// pixel; eight channels' sums side by side (independent chains the CPU
/// overlaps), blocks of channels in parallel.
fn bias_gradient(dy: &[f32], n: usize, cout: usize, plane: usize) -> Vec<f64> {
    let mut db = vec![0.0f64; cout];
    db.par_chunks_mut(8).enumerate().for_each(|(blk, acc)| {
        let o0 = 8 * blk;
        for item in dy.chunks_exact(cout * plane).take(n) {
            let last = acc.len() - 1;
            let rows: [&[f32]; 8] =
                std::array::from_fn(|l| &item[(o0 + l.min(last)) * plane..][..plane]);
            for p in 0..plane {
                for (a, row) in acc.iter_mut().zip(&rows) {
                    *a += f64::from(row[p]);
                }
            }
        }
    });
    db
}

/// Positions per task of the implicit GEMM where rows are consecutive in the
/// source ([`TapLayout`]): whole rows up to this many pixels (a narrow item
/// whole; eight rows of 32 for a 1 × 1 convolution).
const RUN_PIXELS: usize = 256;

/// Where the taps of a `k × k` convolution read, and at which positions.
///
/// Rows of at least [`WIDE_ROW`] pixels (and every `1 × 1` convolution): the
/// padded planes `P` ([`padded_planes`]) in place, row `i` at position
/// `(i + r)(w + 2r) + r`, with the `2r` halo columns between rows; taps from
/// [`tap_offsets`]. Narrower rows: copies of `P` shifted by each horizontal
/// tap, `S[pl][q][ie·w + j] = P[pl][ie][j + q]` (`q < k`, `ie < h + 2r`), so
/// that row `i` is at position `i·w` and an item's pixels are consecutive
/// positions (full vectors, no halo columns computed): tap `(c, p, q)` is
/// the offset `(c k + q)(h + 2r) w + p w`. The `k`-fold copy of a small plane
/// costs little beside its `k² C_in C_out` multiply–adds per pixel.
struct TapLayout {
    shifted: Option<Scratch<f32>>,
    k: usize,
    he: usize,
    w: usize,
    /// Positions per row.
    pitch: usize,
    /// Position of pixel `(0, 0)`.
    origin: usize,
}

impl TapLayout {
    /// The layout for `count` padded planes of `h × w` pixels (`planes`).
    fn new(planes: &[f32], count: usize, h: usize, w: usize, k: usize) -> Result<Self> {
        let r = k / 2;
        let (he, we) = (h + 2 * r, w + 2 * r);
        if w >= WIDE_ROW || r == 0 {
            return Ok(TapLayout {
                shifted: None,
                k,
                he,
                w,
                pitch: we,
                origin: r * we + r,
            });
        }
        let len = checked_product("shifted planes", &[count, k, he, w])?;
        let mut s = Scratch(super::workspace::uncleared::<f32>(len));
        s.0.par_chunks_mut(k * he * w)
            .zip(planes.par_chunks(he * we))
            .for_each(|(dst, p)| {
                for (q, dq) in dst.chunks_exact_mut(he * w).enumerate() {
                    for (ie, d) in dq.chunks_exact_mut(w).enumerate() {
                        d.copy_from_slice(&p[ie * we + q..][..w]);
                    }
                }
            });
        Ok(TapLayout {
            shifted: Some(s),
            k,
            he,
            w,
            pitch: w,
            origin: 0,
        })
    }

    /// What the taps read: the shifted copies, or `planes` in place.
    fn source<'a>(&'a self, planes: &'a [f32]) -> &'a [f32] {
        self.shifted.as_ref().map_or(planes, |s| &s.0)
    }

    /// The offset of tap `(c, p, q)` for `ch` channels, in order
    /// `(c k + p) k + q`; `flip` for the transposed convolution (the
    /// opposite shift).
    fn offsets(&self, ch: usize, flip: bool) -> Vec<isize> {
        let (k, he, w) = (self.k, self.he, self.w);
        if self.shifted.is_none() {
            return tap_offsets(ch, k, he, w + k - 1, flip);
        }
        (0..ch * k * k)
            .map(|j| {
                let (c, t) = (j / (k * k), j % (k * k));
                let (p, q) = if flip {
                    (k - 1 - t / k, k - 1 - t % k)
                } else {
                    (t / k, t % k)
                };
                (((c * k + q) * he + p) * w) as isize
            })
            .collect()
    }

    /// The position of pixel `(i, 0)`.
    fn position(&self, i: usize) -> usize {
        self.origin + i * self.pitch
    }
}

/// Positions per chunk of the implicit weight gradient: 128 rows of 48
/// columns of `dYᵀ` (24 KiB) stay in a core's L1 data cache while every row
/// block of `dWᵀ` reads them.
const WEIGHT_CHUNK: usize = 128;

/// Tile groups of the weight gradient (module docs).
const WEIGHT_GROUPS: usize = 8;

/// A worker's scratch (an `X_col` tile, shifted planes, transposed
/// weights), from and back to the workspace pool.
struct Scratch<T: Real>(Vec<T>);

impl<T: Real> Scratch<T> {
    fn new(len: usize) -> Self {
        Scratch(super::workspace::zeroed(len))
    }
}

impl<T: Real> Drop for Scratch<T> {
    fn drop(&mut self) {
        super::workspace::recycle(std::mem::take(&mut self.0));
    }
}

/// A raw pointer to the output tensor that worker threads write disjoint
/// tiles of.
#[derive(Clone, Copy)]
struct OutPtr<T>(*mut T);
// SAFETY: only used by `Conv2d::apply` and `Conv2d::apply_implicit`, whose
// tiles and runs of rows write disjoint elements.
unsafe impl<T: Send> Send for OutPtr<T> {}
unsafe impl<T: Sync> Sync for OutPtr<T> {}

impl<T> OutPtr<T> {
    /// The pointer `offset` elements on (the caller keeps it in bounds).
    fn at(self, offset: usize) -> *mut T {
        self.0.wrapping_add(offset)
    }
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
        if k == 0 || k.is_multiple_of(2) {
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

    /// `out = M X_col + bias` over every tile of `src` (`src_ch` planes per
    /// item), where `M` is `w` as a `out_ch × k² in_ch` matrix (`transpose =
    /// false`) or `W'` as a `in_ch × k² out_ch` one (`transpose = true`,
    /// `src` is `dy`); the result is `[n][rows of M][h][w]`.
    fn apply<T: Real>(
        &self,
        src: &[T],
        src_ch: usize,
        dims: Dims4,
        w: &[T],
        transpose: bool,
        bias: Option<&[T]>,
    ) -> Result<Vec<T>> {
        let (h, wd, plane, k) = (dims.h, dims.w, dims.plane(), self.k);
        let kk = k * k;
        let (m, cols) = if transpose {
            (self.in_ch, self.out_ch * kk)
        } else {
            (self.out_ch, self.in_ch * kk)
        };
        if gemm::avx512_path() {
            if let (Some(src), Some(w)) = (T::as_f32(src), T::as_f32(w)) {
                let bias = bias.and_then(T::as_f32);
                let y_len = checked_product("y", &[dims.n, m, plane])?;
                let r = k / 2;
                checked_product("padded input", &[dims.n, src_ch, h + 2 * r, wd + 2 * r])?;
                // every element is written by the GEMM (bias included)
                let mut y = super::workspace::uncleared::<T>(y_len);
                let out = T::as_f32_mut(&mut y)
                    .ok_or_else(|| Error::invalid("conv", "internal: f32 output expected"))?;
                self.apply_implicit(src, src_ch, dims, w, transpose, bias, out)?;
                return Ok(y);
            }
        }
        let mut wt = Scratch::<T>(Vec::new());
        let a = if transpose {
            let at = self.weight_index(true);
            wt.0 = super::workspace::uncleared(m * cols);
            wt.0.iter_mut()
                .enumerate()
                .for_each(|(e, v)| *v = w[at(e / cols, e % cols)]);
            view(&wt.0, 0, (m, cols), (cols, 1))?
        } else {
            view(w, 0, (m, cols), (cols, 1))?
        };
        // the checked lengths bound every tile's writes below
        let y_len = checked_product("y", &[dims.n, m, plane])?;
        checked_product("X_col", &[cols, wd, h.min(COL_ELEMENTS)])?;
        let mut y = super::workspace::zeroed(y_len);
        if let Some(b) = bias {
            for (ch, yp) in y.chunks_mut(plane).enumerate() {
                yp.fill(b[ch % m]);
            }
        }
        let beta = if bias.is_some() {
            T::one()
        } else {
            T::default()
        };
        let out = OutPtr(y.as_mut_ptr());
        let (tiles, tile_len) = tiles(dims.n, h, wd, cols, self.padding);
        tiles
            .into_par_iter()
            .map_init(
                || Scratch::new(cols * tile_len),
                |col, (n, t)| -> Result<()> {
                    let (r0, tl) = (t.r0, t.len());
                    let s = &src[n * src_ch * plane..][..src_ch * plane];
                    im2col(s, src_ch, k, t, transpose, &mut col.0[..cols * tl]);
                    let b = view(&col.0, 0, (cols, tl), (tl, 1))?;
                    // SAFETY: tile (n, r0..r1) writes rows r0..r1 of the m
                    // planes of item n, `m·tl` elements at plane stride,
                    // inside `y` (whose length n·m·plane was computed with
                    // overflow checks) and disjoint from every other tile's;
                    // `y` outlives the parallel loop and is not otherwise read.
                    let mut c = unsafe {
                        ArrayViewMut2::from_shape_ptr(
                            (m, tl).strides((plane, 1)),
                            out.at(n * m * plane + r0 * wd),
                        )
                    };
                    general_mat_mul(T::one(), &a, &b, beta, &mut c);
                    Ok(())
                },
            )
            .collect::<Result<()>>()?;
        Ok(y)
    }

    /// The index in `w` of element `(row, col)` of the GEMM's weight matrix:
    /// `w` as `out_ch × k² in_ch`, or for the transposed convolution
    /// `W'[c][o k² + t] = w[o][c][t]` (`in_ch × k² out_ch`).
    fn weight_index(&self, transpose: bool) -> impl Fn(usize, usize) -> usize + Sync {
        let (cin, kk) = (self.in_ch, self.k * self.k);
        // W' column o k² + t starts at w[o][0][t] (no division per element)
        let col_base: Vec<usize> = if transpose {
            (0..self.out_ch)
                .flat_map(|o| (0..kk).map(move |t| o * cin * kk + t))
                .collect()
        } else {
            Vec::new()
        };
        move |row, col| {
            if transpose {
                col_base[col] + row * kk
            } else {
                row * cin * kk + col
            }
        }
    }

    /// [`Conv2d::apply`] on the `f32` implicit-GEMM path ([`gemm`]): the
    /// weights packed once, the source padded once (and for rows under
    /// [`WIDE_ROW`] pixels copied shifted, [`TapLayout`]), then one
    /// [`gemm::gemm_row`] per task with the taps as offsets into the source;
    /// `out` is `[n][m][h][w]`, every element written (the bias included).
    /// A task is one output row, or, where rows are consecutive in the source
    /// (the shifted copies, `1 × 1` convolutions), whole rows up to
    /// [`RUN_PIXELS`] pixels in one call: consecutive in the output too.
    #[allow(clippy::too_many_arguments)]
    fn apply_implicit(
        &self,
        src: &[f32],
        src_ch: usize,
        dims: Dims4,
        w: &[f32],
        transpose: bool,
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) -> Result<()> {
        let (h, wd, plane, k) = (dims.h, dims.w, dims.plane(), self.k);
        let (kk, r) = (k * k, k / 2);
        let (cin, cout) = (self.in_ch, self.out_ch);
        let at = self.weight_index(transpose);
        let a = if transpose {
            PackedA::new(cin, cout * kk, |c, j| w[at(c, j)])
        } else {
            PackedA::new(cout, cin * kk, |o, j| w[at(o, j)])
        };
        let m = a.m();
        let padded = (r > 0).then(|| padded_planes(src, dims.n * src_ch, h, wd, r, self.padding));
        let planes = padded.as_deref().unwrap_or(src);
        let layout = TapLayout::new(planes, dims.n * src_ch, h, wd, k)?;
        let (source, offs) = (layout.source(planes), layout.offsets(src_ch, transpose));
        let item_len = source.len() / dims.n.max(1);
        // a task: one row, or on contiguous rows up to RUN_PIXELS positions
        // of whole rows (a narrow item whole)
        let run_rows = if layout.pitch == wd {
            (RUN_PIXELS / wd).clamp(1, h)
        } else {
            1
        };
        let per_item = h.div_ceil(run_rows);
        let (out_ptr, out_len) = (OutPtr(out.as_mut_ptr()), out.len());
        let result = (0..dims.n * per_item)
            .into_par_iter()
            .with_min_len((COL_ELEMENTS / (kk * src_ch * wd * run_rows).max(1)).max(1))
            .map(|task| -> Result<()> {
                let (n, i0) = (task / per_item, (task % per_item) * run_rows);
                let rows = run_rows.min(h - i0);
                // the SAFETY argument below: several rows only where rows are
                // consecutive in the source (then len = rows·wd)
                debug_assert!(rows == 1 || layout.pitch == wd);
                let item = &source[n * item_len..][..item_len];
                let off = n * m * plane + i0 * wd;
                // SAFETY: task (n, i0) writes rows i0..i0 + rows of the m
                // planes of item n, the elements off + o·plane + j (o < m,
                // j < rows·wd: consecutive rows are consecutive in `out`, and
                // a run of several rows is only formed where they are
                // consecutive in the source too), all inside `out`
                // (n·m·plane long: the length passed below is what remains
                // of it from `off`) and written by no other task; `out`
                // outlives the loop and is not otherwise accessed during it.
                unsafe {
                    gemm::gemm_row(
                        &a,
                        item,
                        &offs,
                        layout.position(i0),
                        (rows - 1) * layout.pitch + wd,
                        bias,
                        out_ptr.at(off),
                        out_len.saturating_sub(off),
                        plane,
                    )
                }
            })
            .collect::<Result<()>>();
        drop(layout);
        if let Some(p) = padded {
            super::workspace::recycle(p);
        }
        result
    }

    /// [`Conv2d::weight_gradient`] on the `f32` implicit-GEMM path: writes
    /// every element of `dw` (`[out][in][k][k]`) and returns `db`. `dw` is
    /// the transpose of `dWᵀ[(c, p, q)][o] = Σ_pos P[c][pos + off(p, q)] · dYᵀ[pos][o]`
    /// ([`gemm::gemm_add_shifted`]), where `P` is the source the taps read
    /// ([`TapLayout`]: the padded input in place, or its shifted copies for
    /// rows under [`WIDE_ROW`] pixels), `pos` runs over its positions from
    /// pixel `(0, 0)` to `(h - 1, w - 1)` (in place, the halo columns between
    /// rows included, with `dYᵀ` zero there; none in the shifted copies) and
    /// `dYᵀ` is `dy` with pixels as rows. Each weight's sum runs over chunks of
    /// [`WEIGHT_CHUNK`] positions, each chunk summed from zero and
    /// added in order of item and position: the result depends on the
    /// shapes only. The threads split the rows of `dWᵀ` and each streams all
    /// of `dYᵀ`, one chunk at a time for all its rows. `db` in `f64`, summed
    /// in order of item and pixel.
    fn weight_gradient_implicit(
        &self,
        x: &[f32],
        dims: Dims4,
        dy: &[f32],
        dw: &mut [f32],
    ) -> Result<Vec<f64>> {
        let (h, wd, plane, k) = (dims.h, dims.w, dims.plane(), self.k);
        let (kk, r, cin, cout) = (k * k, k / 2, self.in_ch, self.out_ch);
        let (he, we) = (h + 2 * r, wd + 2 * r);
        checked_product("padded input", &[dims.n, cin, he, we])?;
        let padded = (r > 0).then(|| padded_planes(x, dims.n * cin, h, wd, r, self.padding));
        let planes = padded.as_deref().unwrap_or(x);
        let layout = TapLayout::new(planes, dims.n * cin, h, wd, k)?;
        let source = layout.source(planes);
        let pitch = layout.pitch;
        // the run of positions from pixel (0, 0) to (h - 1, w - 1)
        let span = (h - 1) * pitch + wd;
        let dyt_len = checked_product("dy transposed", &[dims.n, span, cout])?;
        // dYᵀ[n][pos][o], zero in the halo columns
        let mut dyt = super::workspace::uncleared::<f32>(dyt_len);
        dyt.par_chunks_mut(span * cout)
            .zip(dy.par_chunks(cout * plane))
            .for_each(|(t, d)| {
                // row i of the item: positions i·pitch .. i·pitch + wd, then
                // the halo (none in the last row, nor where pitch = w)
                t.par_chunks_mut(pitch * cout)
                    .enumerate()
                    .for_each(|(i, trow)| {
                        let (valid, halo) = trow.split_at_mut(wd * cout);
                        // eight channels at a time: eight read streams, and
                        // eight consecutive elements written per pixel
                        for o0 in (0..cout).step_by(8) {
                            let lanes = (cout - o0).min(8);
                            let rows: [&[f32]; 8] = std::array::from_fn(|l| {
                                let o = o0 + l.min(lanes - 1);
                                &d[o * plane + i * wd..][..wd]
                            });
                            for (j, v) in valid.chunks_exact_mut(cout).enumerate() {
                                for (l, x) in v[o0..o0 + lanes].iter_mut().enumerate() {
                                    *x = rows[l][j];
                                }
                            }
                        }
                        halo.fill(0.0);
                    });
            });
        let origin = layout.position(0) as isize;
        let offs: Vec<isize> = layout
            .offsets(cin, false)
            .into_iter()
            .map(|o| o + origin)
            .collect();
        let rows = cin * kk;
        let chunk = WEIGHT_CHUNK;
        // thread tasks: groups of whole 8-row blocks of dWᵀ
        let groups = (2 * rayon::current_num_threads()).clamp(1, rows.div_ceil(8));
        let group_rows = rows.div_ceil(8).div_ceil(groups) * 8;
        let mut dwt = super::workspace::zeroed::<f32>(rows * cout);
        let item_len = source.len() / dims.n.max(1);
        dwt.par_chunks_mut(group_rows * cout)
            .enumerate()
            .map(|(g, c)| -> Result<()> {
                let offs = &offs[g * group_rows..][..c.len() / cout];
                let mut o = offs.to_vec();
                for n in 0..dims.n {
                    let item = &source[n * item_len..][..item_len];
                    let bt = &dyt[n * span * cout..][..span * cout];
                    for q0 in (0..span).step_by(chunk) {
                        let len = chunk.min(span - q0);
                        o.iter_mut()
                            .zip(offs)
                            .for_each(|(o, &base)| *o = base + q0 as isize);
                        gemm::gemm_add_shifted(
                            item,
                            &o,
                            len,
                            &bt[q0 * cout..],
                            cout,
                            cout,
                            c,
                            cout,
                        )?;
                    }
                }
                Ok(())
            })
            .collect::<Result<()>>()?;
        super::workspace::recycle(dyt);
        drop(layout);
        if let Some(p) = padded {
            super::workspace::recycle(p);
        }
        if dw.len() != rows * cout {
            return Err(Error::invalid("conv", "internal: weight gradient length"));
        }
        for (o, wo) in dw.chunks_exact_mut(rows).enumerate() {
            for (j, v) in wo.iter_mut().enumerate() {
                *v = dwt[j * cout + o];
            }
        }
        super::workspace::recycle(dwt);
        Ok(bias_gradient(dy, dims.n, cout, plane))
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
        let wl = self.weight_len();
        let cols = cin * k * k;
        if gemm::avx512_path() {
            if let (Some(x), Some(dy)) = (T::as_f32(x), T::as_f32(dy)) {
                // every element is written
                let mut dw = super::workspace::uncleared::<T>(wl);
                let dwf = T::as_f32_mut(&mut dw)
                    .ok_or_else(|| Error::invalid("conv", "internal: f32 gradient expected"))?;
                let db = self.weight_gradient_implicit(x, dims, dy, dwf)?;
                return Ok((dw, db.into_iter().map(T::from_f64).collect()));
            }
        }
        checked_product("X_col", &[cols, wd, h.min(COL_ELEMENTS)])?;
        let (tiles, tile_len) = tiles(dims.n, h, wd, cols, self.padding);
        // Tiles in at most WEIGHT_GROUPS groups of consecutive tiles (the
        // grouping depends on the shapes only), each summed in order into its
        // own gradient (GEMMs with beta = 1; the bias gradient in f64), the
        // groups then added in order: the same sums whatever the thread count.
        let per_group = tiles.len().div_ceil(WEIGHT_GROUPS).max(1);
        let group = |col: &mut Scratch<T>, ts: &[(usize, Tile)]| -> Result<(Vec<T>, Vec<f64>)> {
            let mut dw = super::workspace::zeroed(wl);
            let mut db = vec![0.0f64; cout];
            for &(n, t) in ts {
                let (r0, tl) = (t.r0, t.len());
                let xs = &x[n * cin * plane..][..cin * plane];
                let dy_off = n * cout * plane + r0 * wd;
                let dyt = view(dy, dy_off, (cout, tl), (plane, 1))?;
                im2col(xs, cin, k, t, false, &mut col.0[..cols * tl]);
                let b = view(&col.0, 0, (cols, tl), (tl, 1))?;
                let mut c = view_mut(&mut dw, 0, (cout, cols), (cols, 1))?;
                general_mat_mul(T::one(), &dyt, &b.t(), T::one(), &mut c);
                for (o, acc) in db.iter_mut().enumerate() {
                    *acc = dy[dy_off + o * plane..][..tl]
                        .iter()
                        .fold(*acc, |a, v| a + v.to_f64());
                }
            }
            Ok((dw, db))
        };
        let parts: Result<Vec<(Vec<T>, Vec<f64>)>> = tiles
            .par_chunks(per_group)
            .map_init(|| Scratch::new(cols * tile_len), group)
            .collect();
        let mut parts = parts?.into_iter();
        let (mut dw, mut db) = parts
            .next()
            .unwrap_or_else(|| (vec![T::default(); wl], vec![0.0; cout]));
        for (w2, b2) in parts {
            dw.iter_mut().zip(&w2).for_each(|(a, b)| *a = *a + *b);
            db.iter_mut().zip(&b2).for_each(|(a, b)| *a += *b);
            super::workspace::recycle(w2);
        }
        Ok((dw, db.into_iter().map(T::from_f64).collect()))
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

    /// The `f32` path (the implicit GEMM where the CPU has AVX-512F, else
    /// `matrixmultiply`) against the `f64` convolution of the same `f32`
    /// inputs, forward and input VJP, both paddings, kernels 1 to 7, odd
    /// widths and channel counts off the kernel's 8-row blocks; the weight
    /// gradient (a sum of `n h w` products, so `K = n h w`) and the bias
    /// gradient (summed in `f64`, so only its final rounding). Bound per
    /// element: a sum of `K = k² C + 1` products (bias included) in `f32` is
    /// within `γ_K S = K u S / (1 - K u)` of the exact one, `u = 2^-24`,
    /// `S = Σ |w x| + |b|` (Higham 2002, Accuracy and Stability of Numerical
    /// Algorithms, eq. 3.5), and the `f64` reference is exact to far below
    /// that. An element left unwritten would hold zero or a stale value (the
    /// pool is seeded with NaN buffers, which serve some of the outputs)
    /// against a random sum with a random bias, and fail the bound.
    #[test]
    fn f32_path_agrees_with_f64_within_the_rounding_bound() {
        use crate::rng::{Philox, Stream};
        let random = |len: usize, seed: u64| {
            let mut v = vec![0.0f32; len];
            Philox::new(seed, Stream::Training, 0, 0).fill_normal(&mut v);
            v
        };
        let u = f64::powi(2.0, -24);
        for (cin, cout, k, n, h, w, pad) in [
            (3, 5, 3, 2, 7, 17, Padding::Periodic),
            (9, 17, 3, 1, 5, 33, Padding::Zero),
            (16, 8, 1, 2, 4, 16, Padding::Periodic),
            (1, 16, 7, 1, 9, 50, Padding::Zero),
            (2, 3, 5, 1, 6, 49, Padding::Periodic),
            (1, 1, 3, 1, 3, 3, Padding::Periodic),
            (8, 12, 3, 2, 12, 40, Padding::Zero),
            // fewer rows than the kernel's radius: the halo wraps more than once
            (2, 3, 7, 1, 2, 20, Padding::Periodic),
            (2, 3, 7, 1, 2, 20, Padding::Zero),
            // rows under 16 pixels (shifted copies of the planes, whole
            // items per task or several tasks per item), output channels off
            // the vector width, a halo that wraps more than once
            (4, 9, 3, 3, 8, 8, Padding::Periodic),
            (2, 3, 7, 2, 2, 6, Padding::Periodic),
            (2, 3, 5, 1, 3, 4, Padding::Zero),
            (3, 50, 3, 2, 5, 4, Padding::Zero),
            (5, 2, 5, 2, 9, 6, Padding::Periodic),
            (2, 3, 3, 1, 30, 15, Padding::Zero),
            // narrow rows of a 1 × 1 convolution (no halo: the source itself)
            (4, 9, 1, 2, 5, 6, Padding::Periodic),
            // a 1 × 1 convolution in runs of 8 rows of 32, the last run short
            (3, 5, 1, 2, 9, 32, Padding::Zero),
        ] {
            let conv = Conv2d::new(cin, cout, k, pad).unwrap();
            let dims = Dims4::new(n, cin, h, w);
            let x = random(dims.len(), 1);
            let wt = random(conv.weight_len(), 2);
            let b = random(cout, 3);
            let dy = random(n * cout * h * w, 4);
            let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
            let abs = |v: &[f64]| v.iter().map(|x| x.abs()).collect::<Vec<f64>>();
            let check = |got: &[f32], want: &[f64], scale: &[f64], terms: usize, what: &str| {
                let kn = terms as f64 * u;
                let gamma = kn / (1.0 - kn);
                assert_eq!(got.len(), want.len());
                for (e, ((&g, &r), &s)) in got.iter().zip(want).zip(scale).enumerate() {
                    let err = (g as f64 - r).abs();
                    assert!(
                        err <= gamma * s,
                        "{what} ({cin}, {cout}, k {k}, {h}x{w}, {pad:?}) element {e}: {g} vs {r}, error {err:e} over the bound {:e}",
                        gamma * s
                    );
                }
            };
            // forward
            super::super::workspace::recycle(vec![f32::NAN; n * cout * h * w]);
            let y = conv.forward(&x, dims, &wt, &b).unwrap();
            let want = conv
                .forward(&f64s(&x), dims, &f64s(&wt), &f64s(&b))
                .unwrap();
            let scale = conv
                .forward(&abs(&f64s(&x)), dims, &abs(&f64s(&wt)), &abs(&f64s(&b)))
                .unwrap();
            check(&y, &want, &scale, k * k * cin + 1, "forward");
            // input VJP
            super::super::workspace::recycle(vec![f32::NAN; dims.len()]);
            let dx = conv.backward_input(dims, &wt, &dy).unwrap();
            let want = conv.backward_input(dims, &f64s(&wt), &f64s(&dy)).unwrap();
            let scale = conv
                .backward_input(dims, &abs(&f64s(&wt)), &abs(&f64s(&dy)))
                .unwrap();
            check(&dx, &want, &scale, k * k * cout, "input VJP");
            // weight and bias gradients: sums over the n h w pixels
            let (dw, db) = conv.weight_gradient(&x, dims, &dy).unwrap();
            let (want_w, want_b) = conv.weight_gradient(&f64s(&x), dims, &f64s(&dy)).unwrap();
            let (scale_w, scale_b) = conv
                .weight_gradient(&abs(&f64s(&x)), dims, &abs(&f64s(&dy)))
                .unwrap();
            check(&dw, &want_w, &scale_w, n * h * w, "weight gradient");
            check(&db, &want_b, &scale_b, 2, "bias gradient");
        }
    }
}
