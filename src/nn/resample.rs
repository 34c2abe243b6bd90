//! Resolution changes of the U-Net: 2 × 2 average pooling and nearest-neighbour 2× upsampling.
//!
//! ```text
//! pool(x)[n][c][i][j] = (1/4) Σ_{a,b ∈ {0,1}} x[n][c][2i + a][2j + b]      (h, w even)
//! up(x)[n][c][i][j]   = x[n][c][⌊i/2⌋][⌊j/2⌋]                              (2h × 2w)
//! ```
//!
//! Both are linear; their backward passes are their adjoints:
//! `pool^T(dy) = up(dy) / 4` and `up^T(dy) = 4 · pool(dy)` (sum over each 2 × 2 block),
//! so `<pool(x), y> = (1/4) <x, up(y)>`.

use rayon::prelude::*;

use super::{check_tensor, Dims4, Real};
use crate::error::{Error, Result};

/// Sum (times `scale`) over 2 × 2 blocks of each plane of `x` (`dims` validated, even).
fn block_sum<T: Real>(x: &[T], dims: Dims4, scale: f64) -> Vec<T> {
    let (h2, w2, wd) = (dims.h / 2, dims.w / 2, dims.w);
    let mut y = super::workspace::uncleared(dims.n * dims.c * h2 * w2);
    y.par_chunks_mut(h2 * w2)
        .zip(x.par_chunks(dims.plane()))
        .for_each(|(yp, xp)| {
            for i in 0..h2 {
                for j in 0..w2 {
                    let at = |a: usize, b: usize| xp[(2 * i + a) * wd + 2 * j + b].to_f64();
                    yp[i * w2 + j] =
                        T::from_f64(scale * (at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)));
                }
            }
        });
    y
}

/// Nearest-neighbour 2× replication (times `scale`) of each plane of `x`.
fn replicate<T: Real>(x: &[T], dims: Dims4, scale: f64) -> Vec<T> {
    let (h, w) = (dims.h, dims.w);
    let w2 = 2 * w;
    let mut y = super::workspace::uncleared(dims.n * dims.c * 4 * h * w);
    y.par_chunks_mut(4 * h * w)
        .zip(x.par_chunks(h * w))
        .for_each(|(yp, xp)| {
            for i in 0..2 * h {
                for j in 0..w2 {
                    yp[i * w2 + j] = T::from_f64(scale * xp[(i / 2) * w + j / 2].to_f64());
                }
            }
        });
    y
}

fn check_even(name: &'static str, dims: Dims4) -> Result<()> {
    if !dims.h.is_multiple_of(2) || !dims.w.is_multiple_of(2) {
        return Err(Error::invalid(
            name,
            format!(
                "2x2 pooling needs even height and width, got {} x {}",
                dims.h, dims.w
            ),
        ));
    }
    Ok(())
}

fn doubled(name: &'static str, dims: Dims4) -> Result<Dims4> {
    let up = Dims4::new(
        dims.n,
        dims.c,
        dims.h.checked_mul(2).unwrap_or(0),
        dims.w.checked_mul(2).unwrap_or(0),
    );
    up.validate(name)?;
    Ok(up)
}

/// 2 × 2 average pooling of `x` (`dims.h`, `dims.w` even); returns `y` and its shape `[n][c][h/2][w/2]`.
pub fn avg_pool2_forward<T: Real>(x: &[T], dims: Dims4) -> Result<(Vec<T>, Dims4)> {
    check_tensor("x", dims, x.len())?;
    check_even("x", dims)?;
    Ok((
        block_sum(x, dims, 0.25),
        Dims4::new(dims.n, dims.c, dims.h / 2, dims.w / 2),
    ))
}

/// Backward of [`avg_pool2_forward`] for an input of shape `x_dims`:
/// `dx[..][i][j] = dy[..][i/2][j/2] / 4`.
pub fn avg_pool2_backward<T: Real>(x_dims: Dims4, dy: &[T]) -> Result<Vec<T>> {
    x_dims.validate("x_dims")?;
    check_even("x_dims", x_dims)?;
    let dy_dims = Dims4::new(x_dims.n, x_dims.c, x_dims.h / 2, x_dims.w / 2);
    check_tensor("dy", dy_dims, dy.len())?;
    Ok(replicate(dy, dy_dims, 0.25))
}

/// Nearest-neighbour 2× upsampling; returns `y` and its shape `[n][c][2h][2w]`.
pub fn upsample2_forward<T: Real>(x: &[T], dims: Dims4) -> Result<(Vec<T>, Dims4)> {
    check_tensor("x", dims, x.len())?;
    let up = doubled("x", dims)?;
    Ok((replicate(x, dims, 1.0), up))
}

/// Backward of [`upsample2_forward`] for an input of shape `x_dims`: `dx` is the sum of `dy`
/// over each 2 × 2 block.
pub fn upsample2_backward<T: Real>(x_dims: Dims4, dy: &[T]) -> Result<Vec<T>> {
    x_dims.validate("x_dims")?;
    let dy_dims = doubled("x_dims", x_dims)?;
    check_tensor("dy", dy_dims, dy.len())?;
    Ok(block_sum(dy, dy_dims, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_then_up_small_example() {
        let dims = Dims4::new(1, 1, 2, 4);
        let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let (p, pd) = avg_pool2_forward(&x, dims).unwrap();
        assert_eq!(pd, Dims4::new(1, 1, 1, 2));
        assert_eq!(p, vec![3.5, 5.5]);
        let (u, ud) = upsample2_forward(&p, pd).unwrap();
        assert_eq!(ud, dims);
        assert_eq!(u, vec![3.5, 3.5, 5.5, 5.5, 3.5, 3.5, 5.5, 5.5]);
        assert!(avg_pool2_forward(&x[..6], Dims4::new(1, 1, 2, 3)).is_err());
        assert!(avg_pool2_forward(&x, Dims4::new(1, 1, 1, 8)).is_err());
    }
}
