//! Source redshift distributions `n(z)` and tomographic bins.
//!
//! A [`Nz`] is a parent distribution: a single source plane, a Gaussian, a
//! Smail et al. (1994) law `n(z) ∝ z^a exp(-(z/z0)^b)` cut at `z_max`, or a
//! table read from a file. [`Nz::bins`] splits it into tomographic bins with
//! equal numbers of galaxies and a Gaussian photometric-redshift scatter
//! `sigma_z (1 + z)`: bin `i` with true-redshift edges `[z_i, z_i+1)` is
//!
//! `n_i(z) ∝ n(z) [erf((z_i+1 - z) / s(z)) - erf((z_i - z) / s(z))] / 2`,
//! `s(z) = sqrt(2) sigma_z (1 + z)`
//!
//! (the LSST DESC SRD convention; with `sigma_z = 0` the bins are the cuts of
//! `n(z)`). A [`SourceBin`] is what the Limber integral needs: a normalised
//! density on a redshift grid, or a plane.

use std::path::Path;

use crate::error::{Error, Result};

/// Points of the redshift grid a continuous distribution is tabulated on.
pub const NZ_POINTS: usize = 1024;

/// The fraction of a bin's sources ignored beyond [`SourceBin::z_max`].
pub const TAIL: f64 = 1e-7;

/// A parent source redshift distribution.
#[derive(Debug, Clone, PartialEq)]
pub enum Nz {
    /// Every source at redshift `z`.
    Plane { z: f64 },
    /// `exp(-(z - mean)² / 2 sigma²)` on `z > 0`.
    Gaussian { mean: f64, sigma: f64 },
    /// `z^a exp(-(z/z0)^b)` on `0 < z < z_max` (Smail et al. 1994).
    Smail { a: f64, b: f64, z0: f64, z_max: f64 },
    /// A tabulated `n(z)` (linear between the nodes, zero outside).
    Table { z: Vec<f64>, n: Vec<f64> },
}

/// One source bin, normalised: `∫ pdf dz = 1`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum SourceBin {
    /// A single source plane.
    Plane { z: f64 },
    /// A density on an increasing redshift grid starting at `z[0] >= 0`.
    Density { z: Vec<f64>, pdf: Vec<f64> },
}

fn invalid(name: &'static str, why: impl Into<String>) -> Error {
    Error::invalid(name, why)
}

fn finite(name: &'static str, value: f64) -> Result<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(Error::NonFiniteValue { name, value })
    }
}

impl Nz {
    /// Parses `plane:Z`, `gauss:MEAN,SIGMA`, `smail:A,B,Z0[,ZMAX]` (z_max 10
    /// by default) or `file:PATH` (two whitespace-separated columns `z n(z)`,
    /// `#` comments).
    pub fn parse(spec: &str) -> Result<Nz> {
        let (kind, args) = spec
            .split_once(':')
            .ok_or_else(|| invalid("nz", format!("`{spec}`: expected KIND:ARGS (plane:Z, gauss:MEAN,SIGMA, smail:A,B,Z0[,ZMAX], file:PATH)")))?;
        let nums = || -> Result<Vec<f64>> {
            args.split(',')
                .map(|s| {
                    s.trim()
                        .parse::<f64>()
                        .map_err(|_| invalid("nz", format!("`{spec}`: `{s}` is not a number")))
                })
                .collect()
        };
        let nz = match (kind.trim(), args) {
            ("plane", _) => match nums()?[..] {
                [z] => Nz::Plane { z },
                _ => return Err(invalid("nz", format!("`{spec}`: plane takes one redshift"))),
            },
            ("gauss", _) => match nums()?[..] {
                [mean, sigma] => Nz::Gaussian { mean, sigma },
                _ => return Err(invalid("nz", format!("`{spec}`: gauss takes MEAN,SIGMA"))),
            },
            ("smail", _) => match nums()?[..] {
                [a, b, z0] => Nz::Smail {
                    a,
                    b,
                    z0,
                    z_max: 10.0,
                },
                [a, b, z0, z_max] => Nz::Smail { a, b, z0, z_max },
                _ => {
                    return Err(invalid(
                        "nz",
                        format!("`{spec}`: smail takes A,B,Z0[,ZMAX]"),
                    ))
                }
            },
            ("file", path) => Nz::read(Path::new(path.trim()))?,
            (k, _) => {
                return Err(invalid(
                    "nz",
                    format!("unknown n(z) kind `{k}` (plane, gauss, smail, file)"),
                ))
            }
        };
        nz.validate()?;
        Ok(nz)
    }

    /// A two-column text table `z n(z)`.
    pub fn read(path: &Path) -> Result<Nz> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let (mut z, mut n) = (Vec::new(), Vec::new());
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let cols: Vec<f64> = line
                .split_whitespace()
                .map(|s| s.parse::<f64>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| {
                    invalid(
                        "nz",
                        format!(
                            "{}:{}: expected two numbers `z n(z)`",
                            path.display(),
                            i + 1
                        ),
                    )
                })?;
            match cols[..] {
                [a, b] => {
                    z.push(a);
                    n.push(b);
                }
                _ => {
                    return Err(invalid(
                        "nz",
                        format!(
                            "{}:{}: expected two columns `z n(z)`",
                            path.display(),
                            i + 1
                        ),
                    ))
                }
            }
        }
        let nz = Nz::Table { z, n };
        nz.validate()?;
        Ok(nz)
    }

    /// Fails on a distribution that is empty, non-finite or outside `z >= 0`.
    pub fn validate(&self) -> Result<()> {
        match self {
            Nz::Plane { z } => {
                if finite("nz plane z", *z)? <= 0.0 {
                    return Err(invalid(
                        "nz",
                        format!("the source plane must be at z > 0, got {z}"),
                    ));
                }
            }
            Nz::Gaussian { mean, sigma } => {
                finite("nz mean", *mean)?;
                if finite("nz sigma", *sigma)? <= 0.0 {
                    return Err(invalid(
                        "nz",
                        format!("gauss sigma must be > 0, got {sigma}"),
                    ));
                }
                if *mean + 5.0 * sigma <= 0.0 {
                    return Err(invalid("nz", "gauss n(z) has no weight at z > 0"));
                }
            }
            Nz::Smail { a, b, z0, z_max } => {
                finite("nz a", *a)?;
                if finite("nz b", *b)? <= 0.0 || finite("nz z0", *z0)? <= 0.0 || *a <= -1.0 {
                    return Err(invalid(
                        "nz",
                        format!("smail needs a > -1, b > 0, z0 > 0 (got a={a}, b={b}, z0={z0})"),
                    ));
                }
                if finite("nz z_max", *z_max)? <= 0.0 {
                    return Err(invalid("nz", format!("z_max must be > 0, got {z_max}")));
                }
            }
            Nz::Table { z, n } => {
                if z.len() < 2 || z.len() != n.len() {
                    return Err(invalid(
                        "nz",
                        format!(
                            "a table needs at least 2 rows of `z n(z)`, got {} and {}",
                            z.len(),
                            n.len()
                        ),
                    ));
                }
                for (i, (&zi, &ni)) in z.iter().zip(n).enumerate() {
                    finite("nz table z", zi)?;
                    finite("nz table n", ni)?;
                    if zi < 0.0 || ni < 0.0 {
                        return Err(invalid(
                            "nz",
                            format!("row {}: z and n(z) must be >= 0", i + 1),
                        ));
                    }
                    if i > 0 && zi <= z[i - 1] {
                        return Err(invalid("nz", format!("row {}: z must increase", i + 1)));
                    }
                }
                if !n.iter().any(|&v| v > 0.0) {
                    return Err(invalid("nz", "the n(z) table is zero everywhere"));
                }
            }
        }
        Ok(())
    }

    /// The redshift range that holds the distribution.
    fn range(&self) -> (f64, f64) {
        match self {
            Nz::Plane { z } => (*z, *z),
            Nz::Gaussian { mean, sigma } => ((mean - 8.0 * sigma).max(0.0), mean + 8.0 * sigma),
            Nz::Smail { z_max, .. } => (0.0, *z_max),
            Nz::Table { z, .. } => (z[0], z[z.len() - 1]),
        }
    }

    /// The unnormalised density at `z` (not for a plane).
    fn density(&self, z: f64) -> f64 {
        match self {
            Nz::Plane { .. } => 0.0,
            Nz::Gaussian { mean, sigma } => {
                if z < 0.0 {
                    0.0
                } else {
                    (-0.5 * ((z - mean) / sigma).powi(2)).exp()
                }
            }
            Nz::Smail { a, b, z0, z_max } => {
                if z <= 0.0 || z > *z_max {
                    0.0
                } else {
                    z.powf(*a) * (-(z / z0).powf(*b)).exp()
                }
            }
            Nz::Table { z: zs, n } => {
                if z < zs[0] || z > zs[zs.len() - 1] {
                    return 0.0;
                }
                let j = zs.partition_point(|&v| v <= z).clamp(1, zs.len() - 1);
                let t = (z - zs[j - 1]) / (zs[j] - zs[j - 1]);
                n[j - 1] + t * (n[j] - n[j - 1])
            }
        }
    }

    /// The whole distribution as one source bin.
    pub fn source(&self) -> Result<SourceBin> {
        self.validate()?;
        if let Nz::Plane { z } = self {
            return Ok(SourceBin::Plane { z: *z });
        }
        let (lo, hi) = self.range();
        let z = grid(lo, hi);
        let pdf: Vec<f64> = z.iter().map(|&z| self.density(z)).collect();
        SourceBin::density(z, pdf)
    }

    /// `n` tomographic bins with equal numbers of galaxies (edges at the
    /// quantiles `i/n` of this distribution) and photometric-redshift
    /// scatter `sigma_z (1 + z)`.
    pub fn bins(&self, n: usize, sigma_z: f64) -> Result<Vec<SourceBin>> {
        self.validate()?;
        if n == 0 {
            return Err(invalid("bins", "need at least one bin"));
        }
        if finite("sigma_z", sigma_z)? < 0.0 {
            return Err(invalid("sigma_z", format!("must be >= 0, got {sigma_z}")));
        }
        if let Nz::Plane { .. } = self {
            if n > 1 {
                return Err(invalid(
                    "bins",
                    "a single source plane cannot be split into bins",
                ));
            }
            return Ok(vec![self.source()?]);
        }
        let (lo, hi) = self.range();
        let z = grid(lo, hi);
        let parent: Vec<f64> = z.iter().map(|&z| self.density(z)).collect();
        let edges = quantiles(&z, &parent, n);
        let mut bins = Vec::with_capacity(n);
        for w in edges.windows(2) {
            let (zl, zh) = (w[0], w[1]);
            let pdf: Vec<f64> = z
                .iter()
                .zip(&parent)
                .map(|(&zi, &p)| {
                    if sigma_z == 0.0 {
                        if zi >= zl && zi < zh {
                            p
                        } else {
                            0.0
                        }
                    } else {
                        let s = std::f64::consts::SQRT_2 * sigma_z * (1.0 + zi);
                        0.5 * p * (erf((zh - zi) / s) - erf((zl - zi) / s))
                    }
                })
                .collect();
            bins.push(SourceBin::density(z.clone(), pdf)?);
        }
        Ok(bins)
    }
}

impl SourceBin {
    /// A density normalised by its trapezoid integral.
    pub fn density(z: Vec<f64>, pdf: Vec<f64>) -> Result<SourceBin> {
        let total = trapezoid(&z, &pdf);
        if !(total > 0.0 && total.is_finite()) {
            return Err(invalid("nz", "the source distribution integrates to zero"));
        }
        let pdf = pdf.into_iter().map(|p| p / total).collect();
        Ok(SourceBin::Density { z, pdf })
    }

    /// The largest source redshift that matters: where the weight left
    /// beyond it falls below [`TAIL`] (the last redshift with weight, for a
    /// plane the plane). Lensing at larger distances changes spectra by less
    /// than that fraction.
    pub fn z_max(&self) -> f64 {
        match self {
            SourceBin::Plane { z } => *z,
            SourceBin::Density { z, pdf } => {
                let mut tail = 0.0;
                for i in (1..z.len()).rev() {
                    tail += 0.5 * (z[i] - z[i - 1]) * (pdf[i] + pdf[i - 1]);
                    if tail > TAIL {
                        return z[i];
                    }
                }
                z[z.len() - 1]
            }
        }
    }
    /// The mean redshift.
    pub fn mean(&self) -> f64 {
        match self {
            SourceBin::Plane { z } => *z,
            SourceBin::Density { z, pdf } => {
                let zp: Vec<f64> = z.iter().zip(pdf).map(|(z, p)| z * p).collect();
                trapezoid(z, &zp)
            }
        }
    }
}

/// [`NZ_POINTS`] redshifts from `lo` to `hi`.
fn grid(lo: f64, hi: f64) -> Vec<f64> {
    (0..NZ_POINTS)
        .map(|i| lo + (hi - lo) * i as f64 / (NZ_POINTS - 1) as f64)
        .collect()
}

/// `∫ y dx` by the trapezoid rule.
pub(crate) fn trapezoid(x: &[f64], y: &[f64]) -> f64 {
    x.windows(2)
        .zip(y.windows(2))
        .map(|(x, y)| 0.5 * (x[1] - x[0]) * (y[0] + y[1]))
        .sum()
}

/// The `n + 1` edges `z_0 = lo, .., z_n = hi` with `i/n` of the (piecewise
/// linear) distribution below `z_i`.
fn quantiles(z: &[f64], p: &[f64], n: usize) -> Vec<f64> {
    let mut cdf = vec![0.0; z.len()];
    for i in 1..z.len() {
        cdf[i] = cdf[i - 1] + 0.5 * (z[i] - z[i - 1]) * (p[i] + p[i - 1]);
    }
    let total = cdf[z.len() - 1];
    let mut edges = vec![z[0]];
    for q in 1..n {
        let target = total * q as f64 / n as f64;
        let j = cdf.partition_point(|&c| c < target).clamp(1, z.len() - 1);
        let (c0, c1) = (cdf[j - 1], cdf[j]);
        let t = if c1 > c0 {
            (target - c0) / (c1 - c0)
        } else {
            0.0
        };
        edges.push(z[j - 1] + t * (z[j] - z[j - 1]));
    }
    edges.push(z[z.len() - 1] + 1e-12);
    edges
}

/// The error function, to 1.2e-7 absolute (Numerical Recipes' `erfcc`, a
/// Chebyshev fit: Press et al. 2007, §6.2).
pub fn erf(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 {
        1.0 - erfc
    } else {
        erfc - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        // Abramowitz & Stegun table 7.1
        for (x, e) in [
            (0.0, 0.0),
            (0.5, 0.520_499_877_8),
            (1.0, 0.842_700_792_9),
            (2.0, 0.995_322_265_0),
        ] {
            assert!((erf(x) - e).abs() < 2e-7, "{x}");
            assert!((erf(-x) + e).abs() < 2e-7, "{x}");
        }
    }

    #[test]
    fn parsing_and_validation() {
        assert_eq!(Nz::parse("plane:1.0").unwrap(), Nz::Plane { z: 1.0 });
        assert_eq!(
            Nz::parse("smail:0.5,2,1").unwrap(),
            Nz::Smail {
                a: 0.5,
                b: 2.0,
                z0: 1.0,
                z_max: 10.0
            }
        );
        for bad in [
            "plane:-1",
            "gauss:1,0",
            "smail:2,0.68",
            "smail:2,0.68,0.11,0",
            "nope:1",
            "plane",
            "gauss:a,b",
            "plane:nan",
        ] {
            assert!(Nz::parse(bad).is_err(), "{bad}");
        }
        assert!(Nz::Table {
            z: vec![0.0, 1.0],
            n: vec![0.0, 0.0]
        }
        .source()
        .is_err());
        assert!(Nz::Table {
            z: vec![1.0, 0.5],
            n: vec![1.0, 1.0]
        }
        .validate()
        .is_err());
    }

    #[test]
    fn equal_number_bins_hold_equal_numbers() {
        let nz = Nz::Smail {
            a: 2.0,
            b: 0.68,
            z0: 0.11,
            z_max: 3.5,
        };
        let (lo, hi) = nz.range();
        let z = grid(lo, hi);
        let p: Vec<f64> = z.iter().map(|&v| nz.density(v)).collect();
        let e = quantiles(&z, &p, 5);
        assert_eq!(e.len(), 6);
        // each bin without scatter holds a fifth of the cumulative weight
        let total = trapezoid(&z, &p);
        for w in e.windows(2) {
            let inside: Vec<f64> = z
                .iter()
                .zip(&p)
                .map(|(&zi, &pi)| if zi >= w[0] && zi < w[1] { pi } else { 0.0 })
                .collect();
            let f = trapezoid(&z, &inside) / total;
            // one grid cell of the 1024 is the resolution of a cut
            assert!((f - 0.2).abs() < 0.01, "{f}");
        }
        let bins = nz.bins(5, 0.05).unwrap();
        let means: Vec<f64> = bins.iter().map(|b| b.mean()).collect();
        assert!(means.windows(2).all(|m| m[1] > m[0]), "{means:?}");
        for b in &bins {
            let SourceBin::Density { z, pdf } = b else {
                panic!()
            };
            assert!((trapezoid(z, pdf) - 1.0).abs() < 1e-12);
        }
    }
}
