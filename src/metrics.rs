//! Map-comparison metrics used by the validation tests and the CLI.

use crate::error::{Error, Result};

fn masked_pairs<'a>(
    a: &'a [f32],
    b: &'a [f32],
    mask: Option<&'a [bool]>,
) -> Result<impl Iterator<Item = (f64, f64)> + 'a> {
    if a.len() != b.len() {
        return Err(Error::shape("maps", a.len(), b.len()));
    }
    if let Some(m) = mask {
        if m.len() != a.len() {
            return Err(Error::shape("mask", a.len(), m.len()));
        }
        if !m.iter().any(|&v| v) {
            return Err(Error::FullyMasked);
        }
    }
    Ok(a.iter()
        .zip(b)
        .enumerate()
        .filter(move |(i, _)| mask.is_none_or(|m| m[*i]))
        .map(|(_, (x, y))| (*x as f64, *y as f64)))
}

fn mean(a: &[f32]) -> f64 {
    a.iter().map(|&v| v as f64).sum::<f64>() / a.len().max(1) as f64
}

/// The RMSE of jax-lensing (Remy et al. 2023): maps are centred by their mean
/// over the *whole* map, the squared difference is averaged inside the mask:
/// `sqrt( mean_{mask} ((a - <a>) - (b - <b>))² )`.
pub fn rmse_centred(a: &[f32], b: &[f32], mask: Option<&[bool]>) -> Result<f64> {
    let (ma, mb) = (mean(a), mean(b));
    let (mut s, mut n) = (0.0, 0usize);
    for (x, y) in masked_pairs(a, b, mask)? {
        s += ((x - ma) - (y - mb)).powi(2);
        n += 1;
    }
    Ok((s / n as f64).sqrt())
}

/// Pearson correlation coefficient of the pixels inside the mask.
pub fn pearson(a: &[f32], b: &[f32], mask: Option<&[bool]>) -> Result<f64> {
    let pairs: Vec<(f64, f64)> = masked_pairs(a, b, mask)?.collect();
    let n = pairs.len() as f64;
    let (mx, my) = pairs
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x / n, sy + y / n));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in &pairs {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx).powi(2);
        syy += (y - my).powi(2);
    }
    if sxx == 0.0 || syy == 0.0 {
        return Err(Error::invalid(
            "maps",
            "a constant map has no correlation coefficient",
        ));
    }
    Ok(sxy / (sxx * syy).sqrt())
}

/// Maximum absolute difference over the pixels at least `margin` pixels from
/// every edge of `ny` x `nx` maps.
pub fn max_abs_diff_interior(
    a: &[f32],
    b: &[f32],
    nx: usize,
    ny: usize,
    margin: usize,
) -> Result<f64> {
    if a.len() != nx * ny || b.len() != nx * ny {
        return Err(Error::shape("maps", nx * ny, a.len().min(b.len())));
    }
    let mut m = 0.0f64;
    for y in margin..ny.saturating_sub(margin) {
        for x in margin..nx.saturating_sub(margin) {
            m = m.max((a[y * nx + x] as f64 - b[y * nx + x] as f64).abs());
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rmse_and_pearson() {
        let a = [1.0f32, 2.0, 3.0, 4.0];
        let b = [2.0f32, 3.0, 4.0, 5.0];
        assert!(rmse_centred(&a, &b, None).unwrap() < 1e-12);
        assert!((pearson(&a, &b, None).unwrap() - 1.0).abs() < 1e-12);
        let c = [4.0f32, 3.0, 2.0, 1.0];
        assert!((pearson(&a, &c, None).unwrap() + 1.0).abs() < 1e-12);
        // centred difference a - c = [-3,-1,1,3]: rmse sqrt(5)
        assert!((rmse_centred(&a, &c, None).unwrap() - 5f64.sqrt()).abs() < 1e-12);
        let m = [true, true, false, false];
        assert!((rmse_centred(&a, &c, Some(&m)).unwrap() - 5f64.sqrt()).abs() < 1e-12);
        assert!(rmse_centred(&a, &c, Some(&[false; 4])).is_err());
        assert!(pearson(&a, &[1.0; 4], None).is_err());
    }
}
