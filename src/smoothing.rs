//! Separable Gaussian smoothing of maps in pixel space.
//!
//! The kernel is the sampled Gaussian `w_i ∝ exp(-i² / (2 sigma²))` for
//! `|i| <= r`, `r = floor(truncate · sigma + 1/2)`, normalised to unit sum —
//! the kernel of `scipy.ndimage.gaussian_filter` (default `truncate = 4`), so
//! maps smoothed here match maps smoothed there. Rows (y) are filtered first,
//! then columns (x), in f64.

use crate::error::{Error, Result};
use crate::grid::Grid;

/// How the kernel sees beyond the map edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundary {
    /// Periodic (the geometry of every operator in lensdiff).
    Periodic,
    /// Mirror about the edge, repeating the edge pixel: `d c b a | a b c d | d c b a`
    /// (scipy's default `mode="reflect"`).
    Reflect,
}

/// The normalised 1-D kernel `w_{-r..=r}` for `sigma` pixels.
pub fn gaussian_kernel(sigma: f64, truncate: f64) -> Vec<f64> {
    let r = (truncate * sigma + 0.5).floor() as i64;
    let w: Vec<f64> = (-r..=r)
        .map(|i| (-0.5 * (i * i) as f64 / (sigma * sigma)).exp())
        .collect();
    let s: f64 = w.iter().sum();
    w.into_iter().map(|v| v / s).collect()
}

fn source_index(i: i64, n: i64, boundary: Boundary) -> usize {
    match boundary {
        Boundary::Periodic => i.rem_euclid(n) as usize,
        Boundary::Reflect => {
            let p = 2 * n;
            let j = i.rem_euclid(p);
            (if j < n { j } else { p - 1 - j }) as usize
        }
    }
}

/// Smooths a batch of maps `[b][y][x]` in place with a Gaussian of `sigma_px`
/// pixels (truncated at 4 sigma). `sigma_px = 0` leaves the maps unchanged.
pub fn gaussian_smooth(
    grid: &Grid,
    maps: &mut [f32],
    sigma_px: f64,
    boundary: Boundary,
) -> Result<()> {
    grid.check_batch("maps", maps)?;
    if !(sigma_px.is_finite() && sigma_px >= 0.0) {
        return Err(Error::invalid(
            "sigma",
            format!("smoothing scale must be finite and >= 0, got {sigma_px}"),
        ));
    }
    if sigma_px == 0.0 {
        return Ok(());
    }
    let w = gaussian_kernel(sigma_px, 4.0);
    let r = (w.len() / 2) as i64;
    let (nx, ny) = (grid.nx, grid.ny);
    let mut tmp = vec![0.0f64; nx * ny];
    for m in maps.chunks_mut(nx * ny) {
        // along y (axis 0)
        for y in 0..ny {
            for x in 0..nx {
                let mut acc = 0.0;
                for (k, wk) in w.iter().enumerate() {
                    let sy = source_index(y as i64 + k as i64 - r, ny as i64, boundary);
                    acc += wk * m[sy * nx + x] as f64;
                }
                tmp[y * nx + x] = acc;
            }
        }
        // along x (axis 1)
        for y in 0..ny {
            let row = &tmp[y * nx..(y + 1) * nx];
            for x in 0..nx {
                let mut acc = 0.0;
                for (k, wk) in w.iter().enumerate() {
                    acc += wk * row[source_index(x as i64 + k as i64 - r, nx as i64, boundary)];
                }
                m[y * nx + x] = acc as f32;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_matches_scipy() {
        // scipy.ndimage._filters._gaussian_kernel1d(2, 0, 8)[8] = 0.199474647864745
        let w = gaussian_kernel(2.0, 4.0);
        assert_eq!(w.len(), 17);
        assert!((w[8] - 0.199474647864745).abs() < 1e-12, "{}", w[8]);
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn preserves_mean_and_reflect_indexing() {
        assert_eq!(source_index(-1, 5, Boundary::Reflect), 0);
        assert_eq!(source_index(-2, 5, Boundary::Reflect), 1);
        assert_eq!(source_index(5, 5, Boundary::Reflect), 4);
        assert_eq!(source_index(6, 5, Boundary::Reflect), 3);
        assert_eq!(source_index(-1, 5, Boundary::Periodic), 4);
        let g = Grid::new(9, 7, 1.0).unwrap();
        let mut m: Vec<f32> = (0..63).map(|i| ((i * 37) % 11) as f32).collect();
        let mean0: f64 = m.iter().map(|&v| v as f64).sum();
        gaussian_smooth(&g, &mut m, 1.5, Boundary::Periodic).unwrap();
        let mean1: f64 = m.iter().map(|&v| v as f64).sum();
        assert!((mean0 - mean1).abs() < 1e-3);
        assert!(gaussian_smooth(&g, &mut m, -1.0, Boundary::Periodic).is_err());
    }
}
