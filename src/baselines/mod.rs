//! Classical mass-mapping baselines: Kaiser–Squires with Gaussian smoothing
//! (Kaiser & Squires 1993) and the Wiener filter ([`wiener`]).

pub mod wiener;

pub use wiener::{WienerFilter, WienerOptions, WienerSolution};

use crate::error::Result;
use crate::grid::Grid;
use crate::lensing::KaiserSquires;
use crate::smoothing::{gaussian_smooth, Boundary};

/// E and B convergence maps of a batch of shear maps by Kaiser–Squires
/// inversion, each smoothed by a Gaussian of `sigma_px` pixels (0 = none).
pub fn kaiser_squires(
    grid: &Grid,
    g1: &[f32],
    g2: &[f32],
    sigma_px: f64,
    boundary: Boundary,
) -> Result<(Vec<f32>, Vec<f32>)> {
    crate::error::check_finite("gamma1", g1)?;
    crate::error::check_finite("gamma2", g2)?;
    let ks = KaiserSquires::<f32>::new(*grid);
    let mut e = vec![0.0f32; g1.len()];
    let mut b = vec![0.0f32; g1.len()];
    ks.inverse_eb(g1, g2, &mut e, &mut b)?;
    gaussian_smooth(grid, &mut e, sigma_px, boundary)?;
    gaussian_smooth(grid, &mut b, sigma_px, boundary)?;
    Ok((e, b))
}
