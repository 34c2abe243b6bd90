//! The `f32` matrix product of the convolutions as an implicit GEMM with an
//! AVX-512 micro-kernel (issue #16).
//!
//! `C = A B + bias`, where `A` is `m × kd` (the weights), `C` one row of `n`
//! output pixels of `m` channels (row stride `ldc`, the output plane), and
//! `B[kk][j] = src[origin + j + offs[kk]]` is read in place from the padded
//! input planes: tap `kk` of a convolution is a fixed offset (its channel's
//! plane and its spatial shift), so the `k²`-fold copy of im2col is never
//! written ("implicit GEMM", Chetlur et al. 2014, cuDNN, arXiv:1410.0759).
//! `A` is packed once per layer call in blocks of `MR` (8) rows,
//! `a_blk[kk][r] = A[MR·blk + r][kk]`, zero rows past `m`, the layout the
//! micro-kernel reads sequentially (Goto & van de Geijn 2008, ACM TOMS 34, 12),
//! and shared by the threads.
//!
//! The micro-kernel keeps an `MR × NR` block of `C` in 24 of the 32 vector
//! registers (8 rows × 3 × 16 lanes) and, for every `kk`, loads three vectors
//! of `B` and multiplies them by eight broadcast elements of `A` in 24 fused
//! multiply–adds. Each output element is
//!
//! ```text
//! C[i][j] = fma(A[i][kd-1], B[kd-1][j], … fma(A[i][1], B[1][j], fma(A[i][0], B[0][j], bias[i])))
//! ```
//!
//! in `f32`, summed in order of `kk`: the result depends on the shapes only,
//! not on the thread count or the tiling. A row is cut into panels of `NR` (48)
//! pixels, the last one narrower (one or two vectors, masked loads and
//! stores: nothing is read or written past the row).
//!
//! The weight gradient ([`gemm_add_shifted`]) uses the same blocking with the
//! roles turned: `A`'s rows are the shifted input planes, read in place (one
//! pointer per row, a broadcast per pixel), and `B` is `dy` with pixels as
//! rows. Each element is summed over one chunk of pixels from zero (fused
//! multiply–adds in pixel order), then added to `C`; the caller adds the
//! chunks in a fixed order, so this sum too depends on the shapes only.
//!
//! The path is taken where the CPU has AVX-512F (checked once at run time)
//! and `LENSDIFF_GEMM` is not `matrixmultiply`; elsewhere the convolutions use
//! `matrixmultiply` (which sums in another order: results differ in the last
//! bits between the two paths). [`gemm_reference`] is the plain triple loop
//! that the tests hold the kernel against.

use std::sync::OnceLock;

use rayon::prelude::*;

use crate::error::{Error, Result};

/// Rows of `A` (output channels) per micro-kernel call.
const MR: usize = 8;
/// Columns of `B` (pixels) per micro-kernel call: three 16-lane vectors.
const NR: usize = 48;

/// Whether the AVX-512 implicit-GEMM path is used: the CPU has AVX-512F and the
/// environment variable `LENSDIFF_GEMM` is not `matrixmultiply` (read once;
/// the benchmarks set it to time the fallback in the same run).
pub fn avx512_path() -> bool {
    static USE: OnceLock<bool> = OnceLock::new();
    *USE.get_or_init(|| {
        let forced_off = std::env::var("LENSDIFF_GEMM").is_ok_and(|v| v == "matrixmultiply");
        !forced_off && cpu_has_avx512f()
    })
}

fn cpu_has_avx512f() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `A` (`m × kd`) in blocks of `MR` (8) rows (module docs).
pub struct PackedA {
    m: usize,
    kd: usize,
    data: Vec<f32>,
}

impl PackedA {
    /// Packs `A[i][kk] = a(i, kk)` for `i < m`, `kk < kd`.
    /// Blocks are packed in parallel.
    pub fn new(m: usize, kd: usize, a: impl Fn(usize, usize) -> f32 + Sync) -> Self {
        let blocks = m.div_ceil(MR);
        let mut data = super::workspace::zeroed::<f32>(blocks * kd * MR);
        if kd > 0 {
            data.par_chunks_exact_mut(kd * MR)
                .enumerate()
                .for_each(|(blk, dst)| {
                    let rows = (m - blk * MR).min(MR);
                    for (kk, d) in dst.chunks_exact_mut(MR).enumerate() {
                        for (r, v) in d[..rows].iter_mut().enumerate() {
                            *v = a(blk * MR + r, kk);
                        }
                    }
                });
        }
        PackedA { m, kd, data }
    }

    /// Rows of `A`.
    pub fn m(&self) -> usize {
        self.m
    }
}

impl Drop for PackedA {
    fn drop(&mut self) {
        super::workspace::recycle(std::mem::take(&mut self.data));
    }
}

/// One row of outputs with `B` read in place ("implicit GEMM"):
///
/// ```text
/// C[i][j] = bias[i] + Σ_kk A[i][kk] · src[origin + j + offs[kk]],   i < m, j < n
/// ```
///
/// (summed in order of `kk` with fused multiply–adds, as [`gemm_reference`]).
/// For a convolution, `src` holds the padded input planes, `origin` is the
/// row's first pixel and `offs[kk]` the offset of tap `kk` (channel plane
/// and spatial shift), so the shifted copies of im2col are never written.
/// The row is cut into panels of `NR` (48) columns, the last one narrower
/// (masked loads and stores). `C[i][j]` is written through a raw pointer,
/// `*c.add(i * ldc + j)`, checked to lie below `c.add(c_len)`: the threads of
/// a convolution write interleaved rows of one tensor.
///
/// # Errors
/// An [`Error::invalid`] if an offset reaches outside `src`, or `C`, `bias`
/// or `offs` is too short for the shapes (internal invariants of the callers).
///
/// # Safety
/// `c` is valid for writes of `c_len` elements, and no other access touches
/// the elements `i * ldc + j` (`i < m`, `j < n`) during the call; other
/// elements in that range may be written by other threads at the same time.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_row(
    a: &PackedA,
    src: &[f32],
    offs: &[isize],
    origin: usize,
    n: usize,
    bias: Option<&[f32]>,
    c: *mut f32,
    c_len: usize,
    ldc: usize,
) -> Result<()> {
    let (m, kd) = (a.m, a.kd);
    if m == 0 || n == 0 {
        return Ok(());
    }
    let bad = |what: &str| Err(Error::invalid("gemm_row", format!("internal: {what}")));
    if !avx512_path() {
        return bad("no AVX-512F");
    }
    if offs.len() != kd {
        return bad("one offset per column of A expected");
    }
    let (lo, hi) = offs
        .iter()
        .fold((0isize, 0isize), |(lo, hi), &o| (lo.min(o), hi.max(o)));
    let first = origin as isize + lo;
    let last = (origin + n - 1) as isize + hi;
    if kd > 0 && (first < 0 || last >= src.len() as isize) {
        return bad("an offset reaches outside the source");
    }
    if ldc < n || c_len < (m - 1) * ldc + n {
        return bad("C too short");
    }
    if bias.is_some_and(|v| v.len() < m) {
        return bad("bias too short");
    }
    let mut j0 = 0;
    while j0 < n {
        let cols = (n - j0).min(NR);
        for blk in 0..m.div_ceil(MR) {
            let rows = (m - blk * MR).min(MR);
            let ap = &a.data[blk * kd * MR..][..kd * MR];
            let mut init = [0.0f32; MR];
            if let Some(bv) = bias {
                init[..rows].copy_from_slice(&bv[blk * MR..][..rows]);
            }
            let cp = c.wrapping_add(blk * MR * ldc + j0);
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX-512F is present (`avx512_path`); `ap` holds kd·MR
            // elements; for every kk and every column j < cols the element
            // `origin + j0 + j + offs[kk]` is inside `src` (checked above);
            // `cp` + r·ldc + j for r < rows, j < cols is an element (blk·MR + r,
            // j0 + j) of the block, below `c_len` (checked above) and ours
            // alone (the caller's contract).
            unsafe {
                avx512::block(kd, ap, src, origin + j0, offs, &init, rows, cols, cp, ldc)
            };
            #[cfg(not(target_arch = "x86_64"))]
            let _ = (ap, init, cp);
        }
        j0 += cols;
    }
    Ok(())
}

/// One chunk of a weight gradient, `len` pixels long, added to `C`:
///
/// ```text
/// C[i][o] += Σ_{q < len} src[offs[i] + q] · b[q·ldb + o],   i < offs.len(), o < ncols
/// ```
///
/// The sum starts from zero and runs in order of `q` (fused multiply–adds),
/// then is added to `C[i][o]` (row stride `ldc`), as
/// [`gemm_add_reference`]. For the gradient of a convolution's weights,
/// row `i` of `A` is the padded input plane of one tap `(c, p, q)` read in
/// place at its offset (no im2col), `b` is `dy` with the pixels as rows and
/// the output channels as columns, and the caller sums the chunks of the
/// pixels in a fixed order. Blocks of `MR` (8) rows × up to `NR` (48)
/// columns, the accumulators in registers for the whole chunk.
///
/// # Errors
/// An [`Error::invalid`] if an offset is negative or reaches past `src`, or
/// `b` or `C` is too short for the shapes (internal invariants of the
/// callers), or the CPU lacks AVX-512F.
#[allow(clippy::too_many_arguments)]
pub fn gemm_add_shifted(
    src: &[f32],
    offs: &[isize],
    len: usize,
    b: &[f32],
    ldb: usize,
    ncols: usize,
    c: &mut [f32],
    ldc: usize,
) -> Result<()> {
    let m = offs.len();
    if m == 0 || ncols == 0 || len == 0 {
        return Ok(());
    }
    let bad = |what: &str| {
        Err(Error::invalid(
            "gemm_add_shifted",
            format!("internal: {what}"),
        ))
    };
    if !avx512_path() {
        return bad("no AVX-512F");
    }
    if offs.iter().any(|&o| o < 0 || o as usize + len > src.len()) {
        return bad("an offset reaches outside the source");
    }
    if ldb < ncols || b.len() < (len - 1) * ldb + ncols {
        return bad("B too short");
    }
    if ldc < ncols || c.len() < (m - 1) * ldc + ncols {
        return bad("C too short");
    }
    // column blocks outside: one block of B (len × NR) stays in the L1
    // cache while every row block reads it
    let mut o0 = 0;
    while o0 < ncols {
        let cols = (ncols - o0).min(NR);
        for blk in 0..m.div_ceil(MR) {
            let rows = (m - blk * MR).min(MR);
            let mut ptrs = [src.as_ptr(); MR];
            for (p, &o) in ptrs.iter_mut().zip(&offs[blk * MR..][..rows]) {
                *p = src.as_ptr().wrapping_offset(o);
            }
            let cp = c[blk * MR * ldc + o0..].as_mut_ptr();
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX-512F is present (`avx512_path`); `ptrs[r] + q` for
            // r < rows, q < len lies in `src` (offsets checked above);
            // `b[q·ldb + o0 + j]` for q < len, j < cols lies in `b` (checked
            // above); `cp + r·ldc + j` for r < rows, j < cols is the element
            // (blk·MR + r, o0 + j) of `c`, inside it (checked above) and
            // exclusively borrowed.
            unsafe {
                avx512::add_block(&ptrs, len, b[o0..].as_ptr(), ldb, rows, cols, cp, ldc)
            };
            #[cfg(not(target_arch = "x86_64"))]
            let _ = (ptrs, cp);
        }
        o0 += cols;
    }
    Ok(())
}

/// The reference of [`gemm_add_shifted`], in its order, for tests.
#[allow(clippy::too_many_arguments)]
pub fn gemm_add_reference(
    src: &[f32],
    offs: &[isize],
    len: usize,
    b: &[f32],
    ldb: usize,
    ncols: usize,
    c: &mut [f32],
    ldc: usize,
) {
    for (i, &o) in offs.iter().enumerate() {
        for j in 0..ncols {
            let mut s = 0.0f32;
            for q in 0..len {
                s = src[o as usize + q].mul_add(b[q * ldb + j], s);
            }
            c[i * ldc + j] += s;
        }
    }
}

/// The reference `C = A B + bias`, summed in the order of
/// [`gemm_row`] (`f32` fused multiply–adds from the bias up), for tests.
pub fn gemm_reference(
    a: impl Fn(usize, usize) -> f32,
    b: impl Fn(usize, usize) -> f32,
    (m, kd, n): (usize, usize, usize),
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let mut c = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = bias.map_or(0.0, |v| v[i]);
            for kk in 0..kd {
                s = a(i, kk).mul_add(b(kk, j), s);
            }
            c[i * n + j] = s;
        }
    }
    c
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// The `rows × cols` block of `C` (see [`super::gemm_row`]), dispatched
    /// to the kernel for its row count and vector count so that no register
    /// is spent on rows past `m` or columns past the panel.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `a` holds `kd·MR` elements and `offs` `kd`;
    /// `1 <= rows <= MR`, `1 <= cols <= NR`; `src[origin + j + offs[kk]]`
    /// exists for every `j < cols`, `kk < kd`; `c + r·ldc + j` is valid for
    /// writes, and written by no one else during the call, for `r < rows`,
    /// `j < cols`.
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn block(
        kd: usize,
        a: &[f32],
        src: &[f32],
        origin: usize,
        offs: &[isize],
        init: &[f32; MR],
        rows: usize,
        cols: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        debug_assert!(a.len() >= kd * MR && offs.len() >= kd);
        debug_assert!((1..=MR).contains(&rows) && (1..=NR).contains(&cols));
        let (a, b, offs) = (a.as_ptr(), src.as_ptr().wrapping_add(origin), offs.as_ptr());
        macro_rules! go {
            ($nv:literal) => {
                match rows {
                    1 => kernel::<1, $nv>(kd, a, b, offs, init, cols, c, ldc),
                    2 => kernel::<2, $nv>(kd, a, b, offs, init, cols, c, ldc),
                    3 => kernel::<3, $nv>(kd, a, b, offs, init, cols, c, ldc),
                    4 => kernel::<4, $nv>(kd, a, b, offs, init, cols, c, ldc),
                    5 => kernel::<5, $nv>(kd, a, b, offs, init, cols, c, ldc),
                    6 => kernel::<6, $nv>(kd, a, b, offs, init, cols, c, ldc),
                    7 => kernel::<7, $nv>(kd, a, b, offs, init, cols, c, ldc),
                    _ => kernel::<8, $nv>(kd, a, b, offs, init, cols, c, ldc),
                }
            };
        }
        match cols.div_ceil(16) {
            1 => go!(1),
            2 => go!(2),
            _ => go!(3),
        }
    }

    /// The `rows × cols` block of [`super::gemm_add_shifted`], dispatched
    /// like [`block`].
    ///
    /// # Safety
    /// The CPU has AVX-512F; `1 <= rows <= MR`, `1 <= cols <= NR`;
    /// `a[r].add(q)` is readable for `r < rows`, `q < len`; `b + q·ldb + j`
    /// for `q < len`, `j < cols`; `c + r·ldc + j` is valid for reads and
    /// writes, and accessed by no one else during the call, for `r < rows`,
    /// `j < cols`.
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn add_block(
        a: &[*const f32; MR],
        len: usize,
        b: *const f32,
        ldb: usize,
        rows: usize,
        cols: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        debug_assert!((1..=MR).contains(&rows) && (1..=NR).contains(&cols));
        macro_rules! go {
            ($nv:literal) => {
                match rows {
                    1 => add_kernel::<1, $nv>(a, len, b, ldb, cols, c, ldc),
                    2 => add_kernel::<2, $nv>(a, len, b, ldb, cols, c, ldc),
                    3 => add_kernel::<3, $nv>(a, len, b, ldb, cols, c, ldc),
                    4 => add_kernel::<4, $nv>(a, len, b, ldb, cols, c, ldc),
                    5 => add_kernel::<5, $nv>(a, len, b, ldb, cols, c, ldc),
                    6 => add_kernel::<6, $nv>(a, len, b, ldb, cols, c, ldc),
                    7 => add_kernel::<7, $nv>(a, len, b, ldb, cols, c, ldc),
                    _ => add_kernel::<8, $nv>(a, len, b, ldb, cols, c, ldc),
                }
            };
        }
        match cols.div_ceil(16) {
            1 => go!(1),
            2 => go!(2),
            _ => go!(3),
        }
    }

    /// `ROWS × 16·NV` sums from zero over `len` rank-1 updates of
    /// broadcast `a[r][q]` times `B` row `q`, then added to `C` (masked to
    /// the first `cols` columns).
    #[target_feature(enable = "avx512f")]
    unsafe fn add_kernel<const ROWS: usize, const NV: usize>(
        a: &[*const f32; MR],
        len: usize,
        b: *const f32,
        ldb: usize,
        cols: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        let mut masks = [0 as __mmask16; NV];
        for (v, m) in masks.iter_mut().enumerate() {
            let k = cols.saturating_sub(16 * v).min(16);
            *m = ((1u32 << k) - 1) as __mmask16;
        }
        let mut rp = [std::ptr::null::<f32>(); ROWS];
        rp.copy_from_slice(&a[..ROWS]);
        let mut acc = [[_mm512_setzero_ps(); NV]; ROWS];
        let mut bq = b;
        for q in 0..len {
            let mut bv = [_mm512_setzero_ps(); NV];
            for (v, x) in bv.iter_mut().enumerate() {
                // lanes past `cols` are masked off: nothing is read there
                *x = _mm512_maskz_loadu_ps(masks[v], bq.wrapping_add(16 * v));
            }
            for (row, p) in acc.iter_mut().zip(&rp) {
                let av = _mm512_set1_ps(*p.add(q));
                for (x, &y) in row.iter_mut().zip(&bv) {
                    *x = _mm512_fmadd_ps(av, y, *x);
                }
            }
            bq = bq.wrapping_add(ldb);
        }
        for (r, row) in acc.iter().enumerate() {
            let cr = c.wrapping_add(r * ldc);
            for (v, &x) in row.iter().enumerate() {
                let p = cr.wrapping_add(16 * v);
                let old = _mm512_maskz_loadu_ps(masks[v], p);
                _mm512_mask_storeu_ps(p, masks[v], _mm512_add_ps(old, x));
            }
        }
    }

    /// `ROWS × 16·NV` outputs: accumulators from `init`, `kd` rank-1 updates
    /// with `B[kk][j] = b[offs[kk] + j]`, masked loads and stores of the
    /// first `cols` columns.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    unsafe fn kernel<const ROWS: usize, const NV: usize>(
        kd: usize,
        a: *const f32,
        b: *const f32,
        offs: *const isize,
        init: &[f32; MR],
        cols: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        let mut masks = [0 as __mmask16; NV];
        for (v, m) in masks.iter_mut().enumerate() {
            let k = cols.saturating_sub(16 * v).min(16);
            *m = ((1u32 << k) - 1) as __mmask16;
        }
        let mut acc = [[_mm512_setzero_ps(); NV]; ROWS];
        for (r, row) in acc.iter_mut().enumerate() {
            *row = [_mm512_set1_ps(init[r]); NV];
        }
        let mut a = a;
        for kk in 0..kd {
            let bk = b.wrapping_offset(*offs.add(kk));
            let mut bv = [_mm512_setzero_ps(); NV];
            for (v, x) in bv.iter_mut().enumerate() {
                // lanes past `cols` are masked off: nothing is read there
                *x = _mm512_maskz_loadu_ps(masks[v], bk.wrapping_add(16 * v));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*a.add(r));
                for (x, &y) in row.iter_mut().zip(&bv) {
                    *x = _mm512_fmadd_ps(av, y, *x);
                }
            }
            a = a.add(MR);
        }
        for (r, row) in acc.iter().enumerate() {
            let cr = c.wrapping_add(r * ldc);
            for (v, &x) in row.iter().enumerate() {
                // lanes past `cols` are masked off: nothing is written there
                _mm512_mask_storeu_ps(cr.wrapping_add(16 * v), masks[v], x);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Philox, Stream};

    /// [`gemm_row`] into a slice.
    #[allow(clippy::too_many_arguments)]
    fn row(
        a: &PackedA,
        src: &[f32],
        offs: &[isize],
        origin: usize,
        n: usize,
        bias: Option<&[f32]>,
        c: &mut [f32],
        ldc: usize,
    ) -> Result<()> {
        // SAFETY: `c` is exclusively borrowed and its length is passed.
        unsafe { gemm_row(a, src, offs, origin, n, bias, c.as_mut_ptr(), c.len(), ldc) }
    }

    fn random(len: usize, seed: u64) -> Vec<f32> {
        let mut v = vec![0.0f32; len];
        Philox::new(seed, Stream::Training, 0, 0).fill_normal(&mut v);
        v
    }

    /// Every shape class (row counts 1 to 2·MR + 1, columns on and off the
    /// panel and vector widths, offsets of both signs): the implicit product
    /// equals the reference bit for bit (the same fused multiply–adds in the
    /// same order), every output written, nothing outside it.
    #[test]
    fn implicit_product_equals_the_reference_bitwise() {
        if !avx512_path() {
            eprintln!("gemm: no AVX-512F on this CPU, the AVX-512 path is not tested here");
            return;
        }
        for (m, kd, n) in [
            (1, 1, 1),
            (1, 9, 47),
            (3, 18, 48),
            (8, 27, 49),
            (9, 5, 95),
            (16, 144, 96),
            (17, 33, 130),
            (5, 1, 200),
            (2, 7, 16),
            (4, 3, 33),
        ] {
            let a = random(m * kd, 1 + m as u64);
            let src = random(4 * n + 64, 2 + n as u64);
            // offsets from -n to about 2n: every tap a different shift
            let offs: Vec<isize> = (0..kd)
                .map(|kk| ((kk * 37) % (3 * n + 1)) as isize - n as isize)
                .collect();
            let origin = n;
            let bias = random(m, 3);
            let pa = PackedA::new(m, kd, |i, kk| a[i * kd + kk]);
            for with_bias in [false, true] {
                let bias = with_bias.then_some(&bias[..]);
                let b = |kk: usize, j: usize| src[((origin + j) as isize + offs[kk]) as usize];
                let want = gemm_reference(|i, kk| a[i * kd + kk], b, (m, kd, n), bias);
                // C with a row stride past n, guarded by sentinels
                let ldc = n + 3;
                let mut c = vec![-7.0f32; m * ldc];
                row(&pa, &src, &offs, origin, n, bias, &mut c, ldc).unwrap();
                for i in 0..m {
                    for j in 0..ldc {
                        let got = c[i * ldc + j];
                        if j < n {
                            assert_eq!(
                                got.to_bits(),
                                want[i * n + j].to_bits(),
                                "({m}, {kd}, {n}) bias {with_bias}: C[{i}][{j}] = {got}, want {}",
                                want[i * n + j]
                            );
                        } else {
                            assert_eq!(got, -7.0, "({m}, {kd}, {n}): wrote past the row");
                        }
                    }
                }
            }
        }
    }

    /// The weight-gradient chunk ([`gemm_add_shifted`]) equals its
    /// reference bit for bit for row counts off the block size, column
    /// counts off the vector and panel widths and `ldb`, `ldc` past the
    /// columns (the sentinels there must survive), added to a nonzero `C`.
    #[test]
    fn shifted_chunk_equals_the_reference_bitwise() {
        if !avx512_path() {
            eprintln!("gemm: no AVX-512F on this CPU, the AVX-512 path is not tested here");
            return;
        }
        for (m, len, ncols) in [
            (1, 1, 1),
            (9, 17, 16),
            (8, 128, 48),
            (17, 5, 49),
            (3, 64, 130),
            (24, 33, 32),
        ] {
            let src = random(3 * len + 40, 5 + m as u64);
            let offs: Vec<isize> = (0..m)
                .map(|i| ((i * 13) % (2 * len + 40)) as isize)
                .collect();
            let (ldb, ldc) = (ncols + 5, ncols + 2);
            let b = random(len * ldb, 6 + len as u64);
            let mut c = vec![-7.0f32; m * ldc];
            let c0 = random(m * ldc, 7);
            for i in 0..m {
                c[i * ldc..][..ncols].copy_from_slice(&c0[i * ldc..][..ncols]);
            }
            let mut want = c.clone();
            gemm_add_reference(&src, &offs, len, &b, ldb, ncols, &mut want, ldc);
            gemm_add_shifted(&src, &offs, len, &b, ldb, ncols, &mut c, ldc).unwrap();
            for (e, (g, w)) in c.iter().zip(&want).enumerate() {
                assert_eq!(
                    g.to_bits(),
                    w.to_bits(),
                    "({m}, {len}, {ncols}): C[{e}] = {g}, want {w}"
                );
            }
            assert!(
                (0..m).all(|i| c[i * ldc + ncols..][..ldc - ncols]
                    .iter()
                    .all(|&v| v == -7.0)),
                "({m}, {len}, {ncols}): wrote past the columns"
            );
        }
        // an offset past the source is refused
        let mut c = vec![0.0f32; 4];
        assert!(gemm_add_shifted(&[0.0; 10], &[0, 5], 6, &[0.0; 12], 2, 2, &mut c, 2).is_err());
        assert!(gemm_add_shifted(&[0.0; 10], &[0, 4], 6, &[0.0; 12], 2, 2, &mut c, 2).is_ok());
    }

    /// Offsets that reach outside the source are an error, not a read.
    #[test]
    fn offsets_outside_the_source_are_refused() {
        if !avx512_path() {
            return;
        }
        let pa = PackedA::new(2, 2, |_, _| 1.0);
        let src = vec![1.0f32; 20];
        let mut c = vec![0.0f32; 40];
        assert!(row(&pa, &src, &[0, 5], 0, 16, None, &mut c, 20).is_err());
        assert!(row(&pa, &src, &[0, -1], 0, 4, None, &mut c, 20).is_err());
        assert!(row(&pa, &src, &[0, 4], 0, 16, None, &mut c, 20).is_ok());
    }

    /// Page-sized slices between inaccessible guard pages: `src` and `C`
    /// end (and `src` begins) exactly where the offsets and the row reach,
    /// with a row width off the vector width, so a load or store of a lane
    /// past the row (a masking fault) would stop the test with a segmentation
    /// fault instead of passing unnoticed.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[test]
    fn loads_and_stores_stay_inside_the_row() {
        if !avx512_path() {
            eprintln!("gemm: no AVX-512F on this CPU, the AVX-512 path is not tested here");
            return;
        }
        const PAGE: usize = 4096;
        /// One read-write page between two `PROT_NONE` pages.
        struct Guarded(*mut libc::c_void);
        impl Guarded {
            fn new() -> Self {
                // SAFETY: an anonymous private mapping of three pages, the
                // first and last then made inaccessible; checked results.
                unsafe {
                    let p = libc::mmap(
                        std::ptr::null_mut(),
                        3 * PAGE,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                        -1,
                        0,
                    );
                    assert_ne!(p, libc::MAP_FAILED, "mmap");
                    assert_eq!(libc::mprotect(p, PAGE, libc::PROT_NONE), 0);
                    assert_eq!(libc::mprotect(p.add(2 * PAGE), PAGE, libc::PROT_NONE), 0);
                    Guarded(p)
                }
            }
            /// The last `len` floats of the middle page.
            fn tail(&mut self, len: usize) -> &mut [f32] {
                assert!(len * 4 <= PAGE);
                // SAFETY: the middle page is mapped read-write and zeroed;
                // the slice ends at its end and lives as long as `self`.
                unsafe {
                    std::slice::from_raw_parts_mut(
                        (self.0 as *mut u8).add(2 * PAGE - 4 * len) as *mut f32,
                        len,
                    )
                }
            }
        }
        impl Drop for Guarded {
            fn drop(&mut self) {
                // SAFETY: the mapping made in `new`.
                unsafe { libc::munmap(self.0, 3 * PAGE) };
            }
        }
        for (m, kd, n) in [(3, 4, 37), (9, 2, 17), (1, 3, 50), (8, 1, 1)] {
            // taps from -origin to the last element: src has exactly the
            // elements read
            let origin = 5;
            let span = 11;
            let len = origin + n + span;
            let mut offs: Vec<isize> = (0..kd).map(|kk| (kk % 3) as isize).collect();
            offs[0] = -(origin as isize);
            offs[kd - 1] = span as isize;
            let mut sg = Guarded::new();
            let src = sg.tail(len);
            src.iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = (i % 7) as f32 - 3.0);
            let src: &[f32] = src;
            let a = random(m * kd, 9);
            let pa = PackedA::new(m, kd, |i, kk| a[i * kd + kk]);
            let mut cg = Guarded::new();
            let c = cg.tail(m * n);
            row(&pa, src, &offs, origin, n, None, c, n).unwrap();
            let want = gemm_reference(
                |i, kk| a[i * kd + kk],
                |kk, j| src[((origin + j) as isize + offs[kk]) as usize],
                (m, kd, n),
                None,
            );
            assert!(
                c.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()),
                "({m}, {kd}, {n})"
            );
        }
    }
}
