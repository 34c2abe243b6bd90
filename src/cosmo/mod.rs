//! Cosmology from first principles: the convergence power spectrum
//! `C_ell^{ij}(theta)` of a flat wCDM universe, computed in Rust fast enough
//! to call inside training and quadrature loops (docs/cosmology.md).
//!
//! The chain, one concept per module:
//! - [`background`]: `E(a) = H(a)/H0`, the comoving distance `chi(z)` and the
//!   linear growth `D(a)` of a flat universe with dark energy `w(a) = w0 +
//!   wa (1 - a)` (Linder 2003), matter and no radiation nor massive neutrinos
//!   (the jax-cosmo convention);
//! - [`linear`]: the linear matter power spectrum `P(k) = A k^n_s T(k)^2`
//!   with the Eisenstein & Hu (1998) transfer function (with baryon wiggles,
//!   or its no-wiggle form) or BBKS (Bardeen et al. 1986), normalised to
//!   `sigma_8`;
//! - [`halofit`]: the nonlinear spectrum of Takahashi et al. (2012);
//! - [`nz`]: source redshift distributions and tomographic bins;
//! - [`limber`]: the lensing efficiencies and the Limber integral.
//!
//! Units: distances in Mpc/h, wavenumbers in h/Mpc, powers in (Mpc/h)^3.
//! `Omega_m = Omega_c + Omega_b`; the universe is flat, so
//! `Omega_de = 1 - Omega_m`.

pub mod background;
pub mod halofit;
pub mod limber;
pub mod linear;
pub mod nz;

use crate::error::{Error, Result};

/// The Hubble distance `c / H0` in Mpc/h (`c / (100 km/s/Mpc)`).
pub const HUBBLE_DISTANCE: f64 = 2_997.924_58;

/// The CMB temperature in K used unless set ([`Cosmology::with_t_cmb`]):
/// that of jax-cosmo and of CCL's Eisenstein–Hu benchmark.
pub const DEFAULT_T_CMB: f64 = 2.725;

/// The parameters of a flat wCDM cosmology. Build it with
/// [`Cosmology::new`], which validates; every computation that takes one
/// validates it again ([`Cosmology::validate`]), so a value built field by
/// field cannot give a NaN spectrum either.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cosmology {
    /// Cold dark matter density today, `Omega_c`.
    pub omega_c: f64,
    /// Baryon density today, `Omega_b`.
    pub omega_b: f64,
    /// `H0 / (100 km/s/Mpc)`.
    pub h: f64,
    /// Primordial spectral index.
    pub n_s: f64,
    /// RMS linear density contrast in spheres of 8 Mpc/h today.
    pub sigma8: f64,
    /// Dark-energy equation of state today.
    pub w0: f64,
    /// Its evolution, `w(a) = w0 + wa (1 - a)`.
    pub wa: f64,
    /// CMB temperature in K (enters the Eisenstein–Hu transfer function).
    pub t_cmb: f64,
}

impl Cosmology {
    /// A validated cosmology with `T_CMB = 2.725 K`.
    pub fn new(
        omega_c: f64,
        omega_b: f64,
        h: f64,
        n_s: f64,
        sigma8: f64,
        w0: f64,
        wa: f64,
    ) -> Result<Self> {
        let c = Cosmology {
            omega_c,
            omega_b,
            h,
            n_s,
            sigma8,
            w0,
            wa,
            t_cmb: DEFAULT_T_CMB,
        };
        c.validate()?;
        Ok(c)
    }

    /// The same cosmology with another CMB temperature.
    pub fn with_t_cmb(self, t_cmb: f64) -> Result<Self> {
        let c = Cosmology { t_cmb, ..self };
        c.validate()?;
        Ok(c)
    }

    /// The fiducial cosmology of sbi_lens's LSST-Y10 benchmark (Omega_c
    /// 0.2664, Omega_b 0.0492, h 0.6727, n_s 0.9645, sigma_8 0.831, w0 -1).
    pub fn sbi_lens_fiducial() -> Self {
        Cosmology {
            omega_c: 0.2664,
            omega_b: 0.0492,
            h: 0.6727,
            n_s: 0.9645,
            sigma8: 0.831,
            w0: -1.0,
            wa: 0.0,
            t_cmb: DEFAULT_T_CMB,
        }
    }

    /// `Omega_m = Omega_c + Omega_b`.
    pub fn omega_m(&self) -> f64 {
        self.omega_c + self.omega_b
    }

    /// `Omega_de = 1 - Omega_m` (flat).
    pub fn omega_de(&self) -> f64 {
        1.0 - self.omega_m()
    }

    /// `w(a) = w0 + wa (1 - a)`.
    pub fn w(&self, a: f64) -> f64 {
        self.w0 + self.wa * (1.0 - a)
    }

    /// Fails unless every parameter is finite and physical: `Omega_c >= 0`,
    /// `Omega_b >= 0`, `0 < Omega_m <= 1` (flat, `Omega_de >= 0`),
    /// `0.2 < h < 1.5`, `0 < n_s < 2`, `sigma_8 > 0`, `w0 + wa < 0` (dark
    /// energy subdominant at early times) and `0 < T_CMB < 10 K`.
    pub fn validate(&self) -> Result<()> {
        let named = [
            ("omega_c", self.omega_c),
            ("omega_b", self.omega_b),
            ("h", self.h),
            ("n_s", self.n_s),
            ("sigma8", self.sigma8),
            ("w0", self.w0),
            ("wa", self.wa),
            ("t_cmb", self.t_cmb),
        ];
        for (name, value) in named {
            if !value.is_finite() {
                return Err(Error::NonFiniteValue { name, value });
            }
        }
        let bad = |name: &'static str, why: String| Err(Error::invalid(name, why));
        if self.omega_c < 0.0 {
            return bad("omega_c", format!("must be >= 0, got {}", self.omega_c));
        }
        if self.omega_b < 0.0 {
            return bad("omega_b", format!("must be >= 0, got {}", self.omega_b));
        }
        let om = self.omega_m();
        if om <= 0.0 || om > 1.0 {
            return bad(
                "omega_m",
                format!("Omega_c + Omega_b must be in (0, 1] for a flat universe, got {om}"),
            );
        }
        if !(self.h > 0.2 && self.h < 1.5) {
            return bad("h", format!("must be in (0.2, 1.5), got {}", self.h));
        }
        if !(self.n_s > 0.0 && self.n_s < 2.0) {
            return bad("n_s", format!("must be in (0, 2), got {}", self.n_s));
        }
        if self.sigma8 <= 0.0 {
            return bad("sigma8", format!("must be > 0, got {}", self.sigma8));
        }
        if self.w0 + self.wa >= 0.0 {
            return bad(
                "w0",
                format!(
                    "w0 + wa must be < 0 (dark energy subdominant early), got {}",
                    self.w0 + self.wa
                ),
            );
        }
        if !(self.t_cmb > 0.0 && self.t_cmb < 10.0) {
            return bad("t_cmb", format!("must be in (0, 10) K, got {}", self.t_cmb));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unphysical_cosmologies_are_typed_errors() {
        let ok = Cosmology::new(0.25, 0.05, 0.7, 0.96, 0.8, -1.0, 0.0).unwrap();
        assert!((ok.omega_m() - 0.3).abs() < 1e-15);
        let bad = [
            Cosmology {
                omega_c: -0.3,
                omega_b: 0.0,
                ..ok
            },
            Cosmology {
                omega_c: 0.0,
                omega_b: 0.0,
                ..ok
            },
            Cosmology { omega_c: 1.2, ..ok },
            Cosmology { sigma8: 0.0, ..ok },
            Cosmology { h: 0.1, ..ok },
            Cosmology { h: 1.6, ..ok },
            Cosmology {
                w0: -0.5,
                wa: 0.6,
                ..ok
            },
            Cosmology {
                n_s: f64::NAN,
                ..ok
            },
            Cosmology { t_cmb: 0.0, ..ok },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
        assert!(matches!(
            Cosmology {
                sigma8: f64::INFINITY,
                ..ok
            }
            .validate(),
            Err(Error::NonFiniteValue { name: "sigma8", .. })
        ));
        assert!(ok.with_t_cmb(2.7).is_ok() && ok.with_t_cmb(-1.0).is_err());
        assert!(Cosmology::sbi_lens_fiducial().validate().is_ok());
    }
}
