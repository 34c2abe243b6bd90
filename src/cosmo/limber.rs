//! Convergence power spectra in the Limber approximation.
//!
//! For source bins `i`, `j` (Kaiser 1992; LoVerde & Afshordi 2008 for the
//! `ell + 1/2`):
//!
//! `C_ell^{ij} = ∫_0^{chi_max} dchi q_i(chi) q_j(chi) / chi² P_NL(k = (ell + 1/2)/chi, a(chi))`
//!
//! with the lensing efficiency of a normalised source distribution `n_i(z)`
//!
//! `q_i(chi) = (3/2) Omega_m (chi / D_H²) / a(chi) ∫_{z(chi)} dz' n_i(z') (1 - chi / chi(z'))`.
//!
//! These are *convergence* spectra. The shear E-mode spectrum is
//! `C_ell^{γγ} = C_ell^{κκ} (ell+2)(ell+1) ell (ell-1) / (ell+1/2)^4`
//! ([`shear_ell_factor`]); the two differ by less than `3/ell²`.
//!
//! The integral is Simpson's rule on a grid uniform in `sqrt(chi)` (denser at
//! small distances, where the baryon wiggles of low multipoles are) from 0 to
//! the largest source distance ([`SourceBin::z_max`]); `P_NL` is
//! [`halofit`](super::halofit) on the linear spectrum of
//! [`linear`](super::linear) (tabulated in `ln k` for the call), or the
//! linear spectrum.

use super::background::Background;
use super::halofit::HalofitTable;
use super::linear::{LinearPower, Transfer};
use super::nz::SourceBin;
use super::{Cosmology, HUBBLE_DISTANCE};
use crate::error::{Error, Result};
use crate::vmath;

/// How the spectra are computed.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClOptions {
    /// The linear transfer function.
    pub transfer: Transfer,
    /// Halofit (Takahashi et al. 2012) on top of the linear spectrum.
    pub nonlinear: bool,
    /// Simpson nodes (odd; at least 33), uniform in `sqrt(chi)`.
    pub chi_points: usize,
}

impl Default for ClOptions {
    /// Eisenstein–Hu with wiggles, halofit, 129 nodes (quadrature error
    /// below 1e-4 at every ell in [10, 1e4] against 4097 nodes, for the
    /// sbi_lens and LSST-Y10 source bins).
    fn default() -> Self {
        ClOptions {
            transfer: Transfer::EisensteinHu,
            nonlinear: true,
            chi_points: 129,
        }
    }
}

/// Every auto and cross spectrum of a set of source bins.
#[derive(Debug, Clone, PartialEq)]
pub struct AngularCl {
    /// The multipoles.
    pub ells: Vec<f64>,
    /// The bin pairs `(i, j)`, `i <= j`, in the order `(0,0), (0,1), .., (1,1), ..`.
    pub pairs: Vec<(usize, usize)>,
    /// `cl[p][l]`: pair `p` at `ells[l]`.
    pub cl: Vec<Vec<f64>>,
}

impl AngularCl {
    /// The spectrum of bins `i` and `j` (either order).
    pub fn get(&self, i: usize, j: usize) -> Option<&[f64]> {
        let key = (i.min(j), i.max(j));
        let p = self.pairs.iter().position(|&q| q == key)?;
        Some(&self.cl[p])
    }
}

/// `(ell+2)(ell+1) ell (ell-1) / (ell+1/2)^4`: shear over convergence
/// spectrum (0 for `ell < 2`).
pub fn shear_ell_factor(ell: f64) -> f64 {
    if ell < 2.0 {
        return 0.0;
    }
    (ell + 2.0) * (ell + 1.0) * ell * (ell - 1.0) / (ell + 0.5).powi(4)
}

/// The convergence spectra `C_ell^{ij}` of `bins` at `ells` for `cosmo`.
pub fn convergence_cl(
    cosmo: &Cosmology,
    bins: &[SourceBin],
    ells: &[f64],
    opts: &ClOptions,
) -> Result<AngularCl> {
    cosmo.validate()?;
    if bins.is_empty() {
        return Err(Error::invalid("bins", "need at least one source bin"));
    }
    if opts.chi_points < 33 || opts.chi_points.is_multiple_of(2) {
        return Err(Error::invalid(
            "chi_points",
            format!("need an odd number >= 33, got {}", opts.chi_points),
        ));
    }
    for &l in ells {
        if !(l.is_finite() && l >= 0.0) {
            return Err(Error::invalid(
                "ell",
                format!("must be finite and >= 0, got {l}"),
            ));
        }
    }
    let bg = Background::new(cosmo)?;
    let exact = LinearPower::new(cosmo, opts.transfer)?;
    let z_max = bins.iter().map(SourceBin::z_max).fold(0.0, f64::max);
    let a_far = 1.0 / (1.0 + z_max);
    if a_far < super::background::A_MIN {
        return Err(Error::invalid(
            "nz",
            format!("sources up to z = {z_max} are beyond the distance table"),
        ));
    }
    let chi_max = bg.chi(a_far);
    let n = opts.chi_points;
    // nodes uniform in t = sqrt(chi / chi_max): denser where small distances
    // carry the BAO wiggles of low multipoles (dchi = 2 chi_max t dt)
    let h = 1.0 / (n - 1) as f64;
    let chis: Vec<f64> = (0..n).map(|i| chi_max * (i as f64 * h).powi(2)).collect();
    let scale: Vec<f64> = chis.iter().map(|&c| bg.a_of_chi(c)).collect();
    // Simpson weights in t times dchi/dt
    let simpson: Vec<f64> = (0..n)
        .map(|i| {
            let w = if i == 0 || i == n - 1 {
                1.0
            } else if i % 2 == 1 {
                4.0
            } else {
                2.0
            };
            w * h / 3.0 * 2.0 * chi_max * (i as f64 * h)
        })
        .collect();
    let q: Vec<Vec<f64>> = bins
        .iter()
        .map(|b| efficiency(&bg, b, &chis, &scale))
        .collect();
    // every k the integral reads: (ell_min + 1/2)/chi_max .. (ell_max + 1/2)/chis[1]
    let ell_lo = ells.iter().copied().fold(f64::INFINITY, f64::min);
    let ell_hi = ells.iter().copied().fold(0.0, f64::max);
    let lin = PowerTable::new(&exact, (ell_lo + 0.5) / chi_max, (ell_hi + 0.5) / chis[1]);
    let table = if opts.nonlinear {
        Some(HalofitTable::new(&|k| lin.power(k))?)
    } else {
        None
    };
    let mut pairs = Vec::new();
    for i in 0..bins.len() {
        for j in i..bins.len() {
            pairs.push((i, j));
        }
    }
    let mut cl = vec![vec![0.0; ells.len()]; pairs.len()];
    // per ell: ell + 1/2 and its log; per node, k = (ell + 1/2)/chi and the
    // power over all ells at once (the loops vectorise, crate::vmath)
    let l_half: Vec<f64> = ells.iter().map(|&l| l + 0.5).collect();
    let ln_l_half: Vec<f64> = l_half.iter().map(|&l| l.ln()).collect();
    let m = ells.len();
    let (mut k, mut ln_k, mut ln_p, mut p) =
        (vec![0.0; m], vec![0.0; m], vec![0.0; m], vec![0.0; m]);
    // chi = 0 contributes nothing (q = 0 there)
    for node in 1..n {
        let (chi, a) = (chis[node], scale[node]);
        let weights: Vec<f64> = pairs
            .iter()
            .map(|&(i, j)| simpson[node] * q[i][node] * q[j][node] / (chi * chi))
            .collect();
        if weights.iter().all(|&w| w == 0.0) {
            continue;
        }
        let (inv_chi, ln_chi) = (1.0 / chi, chi.ln());
        for l in 0..m {
            k[l] = l_half[l] * inv_chi;
            ln_k[l] = ln_l_half[l] - ln_chi;
        }
        let d = bg.growth(a);
        lin.ln_power_many(&k, &ln_k, 2.0 * d.ln(), &mut ln_p);
        match &table {
            Some(t) => t
                .at(d, bg.omega_m_a(a), bg.omega_de_a(a), cosmo.w(a))
                .power_many(&k, &ln_k, &ln_p, &mut p),
            None => {
                for (p, &lp) in p.iter_mut().zip(&ln_p) {
                    *p = vmath::exp(lp);
                }
            }
        }
        for (c, w) in cl.iter_mut().zip(&weights) {
            for (c, &p) in c.iter_mut().zip(&p) {
                *c += w * p;
            }
        }
    }
    if let Some(bad) = cl.iter().flatten().find(|v| !v.is_finite()) {
        return Err(Error::invalid(
            "cosmology",
            format!("the Limber integral is not finite ({bad}) for {cosmo:?}"),
        ));
    }
    Ok(AngularCl {
        ells: ells.to_vec(),
        pairs,
        cl,
    })
}

/// `ln P_lin` on a grid uniform in `ln k` ([`PowerTable::PER_DECADE`] nodes a
/// decade), read by 4-point Lagrange interpolation (error `~ h^4 |d^4 ln P / d ln k^4| / 24`,
/// below 5e-5 on the baryon wiggles of Eisenstein–Hu); the exact spectrum
/// outside the range or where it is not positive.
struct PowerTable<'a> {
    exact: &'a LinearPower,
    ln_k0: f64,
    inv_step: f64,
    ln_p: Vec<f64>,
}

impl<'a> PowerTable<'a> {
    const PER_DECADE: f64 = 128.0;

    fn new(exact: &'a LinearPower, k_lo: f64, k_hi: f64) -> Self {
        let step = std::f64::consts::LN_10 / Self::PER_DECADE;
        // margin on each side for the 4-point stencil
        let lo = k_lo.max(1e-300).ln() - 2.0 * step;
        let hi = k_hi.max(k_lo).ln() + 2.0 * step;
        let nodes = (((hi - lo) / step).ceil() as usize + 1).min(1 << 16);
        let ln_p: Vec<f64> = (0..nodes)
            .map(|i| exact.power((lo + i as f64 * step).exp()).ln())
            .collect();
        let usable = ln_p.iter().all(|v| v.is_finite()) && nodes >= 4;
        PowerTable {
            exact,
            ln_k0: lo,
            inv_step: 1.0 / step,
            ln_p: if usable { ln_p } else { Vec::new() },
        }
    }

    fn power(&self, k: f64) -> f64 {
        let mut ln_p = [0.0];
        self.ln_power_many(&[k], &[k.ln()], 0.0, &mut ln_p);
        vmath::exp(ln_p[0])
    }

    /// `ln P_lin(k) + shift` at `k` (with `ln k` given) into `ln_p`: the table
    /// inside its range, the exact spectrum outside (`-inf` where it is 0).
    fn ln_power_many(&self, k: &[f64], ln_k: &[f64], shift: f64, ln_p: &mut [f64]) {
        let n = self.ln_p.len();
        let inside = |x: f64| x >= 1.0 && x < (n as f64) - 2.0;
        if n >= 4 {
            // the table, with the stencil clamped to it (vectorises); the
            // points outside are redone below
            vmath::with_avx2(
                #[inline(always)]
                || {
                    for (out, &ln_k) in ln_p.iter_mut().zip(ln_k) {
                        let x = ((ln_k - self.ln_k0) * self.inv_step).clamp(1.0, (n - 2) as f64);
                        let i = (x as usize).min(n - 3); // nodes i-1, i, i+1, i+2
                        let t = x - i as f64;
                        let p = &self.ln_p[i - 1..i + 3];
                        *out = shift
                            + (-t * (t - 1.0) * (t - 2.0) / 6.0 * p[0]
                                + (t + 1.0) * (t - 1.0) * (t - 2.0) / 2.0 * p[1]
                                - (t + 1.0) * t * (t - 2.0) / 2.0 * p[2]
                                + (t + 1.0) * t * (t - 1.0) / 6.0 * p[3]);
                    }
                },
            );
        }
        for ((out, &k), &ln_k) in ln_p.iter_mut().zip(k).zip(ln_k) {
            if !inside((ln_k - self.ln_k0) * self.inv_step) {
                *out = shift + self.exact.power(k).ln();
            }
        }
    }
}

/// `q(chi)` of one bin at the nodes `chis` (scale factors `scale`).
fn efficiency(bg: &Background, bin: &SourceBin, chis: &[f64], scale: &[f64]) -> Vec<f64> {
    let pre = 1.5 * bg.cosmology().omega_m() / (HUBBLE_DISTANCE * HUBBLE_DISTANCE);
    let g: Vec<f64> = match bin {
        SourceBin::Plane { z } => {
            let chi_s = bg.chi(1.0 / (1.0 + z));
            chis.iter()
                .map(|&c| if c < chi_s { 1.0 - c / chi_s } else { 0.0 })
                .collect()
        }
        SourceBin::Density { z, pdf } => {
            // g(chi) = ∫_{z(chi)} n dz' - chi ∫_{z(chi)} n / chi(z') dz': two
            // suffix integrals on the n(z) grid (trapezoid), interpolated
            let m = z.len();
            let chi_z: Vec<f64> = z.iter().map(|&v| bg.chi(1.0 / (1.0 + v))).collect();
            let f: Vec<f64> = (0..m)
                .map(|i| {
                    if chi_z[i] > 0.0 {
                        pdf[i] / chi_z[i]
                    } else {
                        0.0
                    }
                })
                .collect();
            let (mut s0, mut s1) = (vec![0.0; m], vec![0.0; m]);
            for i in (0..m - 1).rev() {
                let dz = z[i + 1] - z[i];
                s0[i] = s0[i + 1] + 0.5 * dz * (pdf[i] + pdf[i + 1]);
                s1[i] = s1[i + 1] + 0.5 * dz * (f[i] + f[i + 1]);
            }
            chis.iter()
                .map(|&c| {
                    // the grid index where chi(z) passes c
                    let j = chi_z.partition_point(|&x| x <= c);
                    if j >= m {
                        return 0.0;
                    }
                    if j == 0 {
                        return (s0[0] - c * s1[0]).max(0.0);
                    }
                    // the part of the cell [j-1, j] above c, linear in chi
                    let t = (c - chi_z[j - 1]) / (chi_z[j] - chi_z[j - 1]);
                    let p_c = pdf[j - 1] + t * (pdf[j] - pdf[j - 1]);
                    let f_c = f[j - 1] + t * (f[j] - f[j - 1]);
                    let dz = (1.0 - t) * (z[j] - z[j - 1]);
                    let a0 = s0[j] + 0.5 * dz * (p_c + pdf[j]);
                    let a1 = s1[j] + 0.5 * dz * (f_c + f[j]);
                    (a0 - c * a1).max(0.0)
                })
                .collect()
        }
    };
    chis.iter()
        .zip(scale)
        .zip(g)
        .map(|((&c, &a), g)| pre * c / a * g)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_power_table_reads_the_linear_spectrum_to_5e_5() {
        for kind in [Transfer::EisensteinHu, Transfer::Bbks] {
            let c = Cosmology::sbi_lens_fiducial();
            let exact = LinearPower::new(&c, kind).unwrap();
            let t = PowerTable::new(&exact, 1e-3, 1e3);
            assert!(!t.ln_p.is_empty());
            let mut worst = 0.0f64;
            for i in 0..20_000 {
                let k = 1e-3 * 10f64.powf(6.0 * i as f64 / 19_999.0);
                worst = worst.max((t.power(k) / exact.power(k) - 1.0).abs());
            }
            assert!(worst < 5e-5, "{kind:?}: {worst:e}");
            // outside the table: the exact spectrum (through ln and exp)
            for k in [1e-5, 1e5] {
                assert!((t.power(k) / exact.power(k) - 1.0).abs() < 1e-14);
            }
        }
    }

    #[test]
    fn the_shear_factor_is_one_at_high_ell_and_zero_below_two() {
        assert_eq!(shear_ell_factor(0.0), 0.0);
        assert_eq!(shear_ell_factor(1.0), 0.0);
        // 1 - 2.5/ell² + O(ell^-3) (expand (1+2/l)(1+1/l)(1-1/l)/(1+1/(2l))^4)
        for l in [100.0, 1000.0] {
            let f = shear_ell_factor(l);
            assert!(
                (f - (1.0 - 2.5 / (l * l))).abs() < 5.0 / (l * l * l),
                "{l}: {f}"
            );
        }
        assert!((shear_ell_factor(2.0) - 24.0 / 39.0625).abs() < 1e-15);
    }
}
