//! The linear matter power spectrum today, `P(k) = A k^n_s T(k)^2`, with the
//! amplitude `A` fixed by `sigma_8`.
//!
//! Transfer functions ([`Transfer`]):
//! - Eisenstein & Hu (1998, ApJ 496, 605; "EH98"), eqs. 2–24, with the baryon
//!   acoustic wiggles;
//! - its no-wiggle form, EH98 eqs. 26 and 28–31;
//! - BBKS (Bardeen et al. 1986, eq. G3) with Sugiyama's (1995) baryon
//!   correction to the shape parameter, in CCL's convention
//!   `q = Theta_2.7^2 k / (Omega_m h exp[-Omega_b (1 + sqrt(2h)/Omega_m)])`.
//!
//! Units: `k` in h/Mpc, `P` in (Mpc/h)^3, `R` in Mpc/h. The spectrum is that
//! of `z = 0`; callers apply the growth `D(a)^2`. Neither `w0` nor `wa`
//! enters it (the EH and BBKS fits depend on `Omega_m h^2`, `Omega_b h^2` and
//! `T_CMB` only), so two cosmologies differing only in dark energy share one
//! `P(k, z = 0)`.
//!
//! `P(k)` is evaluated from the closed-form transfer function at each call
//! (about a dozen `exp`/`ln`/`sin`; no table, so no interpolation error); the
//! `sigma_8` integral is done once per cosmology in [`LinearPower::new`].

use std::f64::consts::{E, PI};

use super::Cosmology;
use crate::error::{Error, Result};

/// Above this `k` (h/Mpc) the transfer function is set to 0: the fits are
/// below 1e-190 there, and their terms would overflow to `inf / inf`.
const K_MAX: f64 = 1e100;

/// The transfer function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Transfer {
    /// Eisenstein & Hu (1998) with baryon acoustic oscillations (eqs. 2–24).
    EisensteinHu,
    /// Eisenstein & Hu (1998) without oscillations (eqs. 26, 28–31).
    EisensteinHuNoWiggle,
    /// Bardeen et al. (1986) with CCL's baryon-corrected shape parameter.
    Bbks,
}

/// `T(k)` for `k` in h/Mpc (`T -> 1` as `k -> 0`).
///
/// `cosmo` must be one that [`LinearPower::new`] accepts (otherwise the value
/// is meaningless, possibly NaN); this convenience does not check it and
/// recomputes the `k`-independent coefficients at each call: for many `k`
/// use [`LinearPower`]. `k <= 0` or NaN gives 1 (the large-scale limit),
/// `k >= 1e100` (`+inf` included) gives 0.
pub fn transfer(cosmo: &Cosmology, kind: Transfer, k: f64) -> f64 {
    Shape::new(cosmo, kind).transfer(k)
}

/// The linear matter power spectrum today, `P(k) = A k^n_s T(k)^2`, with `A`
/// set so that the top-hat rms in `R = 8` Mpc/h equals `sigma8`.
#[derive(Debug, Clone)]
pub struct LinearPower {
    cosmo: Cosmology,
    kind: Transfer,
    shape: Shape,
    /// `A` in `P(k) = A k^n_s T(k)^2`.
    amplitude: f64,
}

impl LinearPower {
    /// Validates `cosmo` and normalises the spectrum to its `sigma8`. Fails
    /// also where the no-wiggle fit has no meaning: `alpha_Gamma <= 0` (EH98
    /// eq. 31), which needs `Omega_b/Omega_m` near 1 and `Omega_m h^2 < 0.03`.
    pub fn new(cosmo: &Cosmology, kind: Transfer) -> Result<LinearPower> {
        cosmo.validate()?;
        let shape = Shape::new(cosmo, kind);
        if let Shape::NoWiggle(nw) = &shape {
            if nw.alpha_gamma <= 0.0 {
                return Err(Error::invalid(
                    "omega_b",
                    format!(
                        "the no-wiggle Eisenstein-Hu fit needs alpha_Gamma > 0 (eq. 31), got {} \
                         (Omega_b/Omega_m too close to 1 for this Omega_m h^2)",
                        nw.alpha_gamma
                    ),
                ));
            }
        }
        let mut p = LinearPower {
            cosmo: *cosmo,
            kind,
            shape,
            amplitude: 1.0,
        };
        p.amplitude = (cosmo.sigma8 / p.sigma_r(8.0)).powi(2);
        Ok(p)
    }

    /// The cosmology it was built from.
    pub fn cosmology(&self) -> &Cosmology {
        &self.cosmo
    }

    /// The transfer function it uses.
    pub fn kind(&self) -> Transfer {
        self.kind
    }

    /// `P(k, z = 0)` in (Mpc/h)^3, `k` in h/Mpc (the growth `D(a)^2` is
    /// applied by callers). `k <= 0`, NaN and `k >= 1e100` (`+inf`
    /// included) give 0.
    pub fn power(&self, k: f64) -> f64 {
        if !(k > 0.0 && k < f64::INFINITY) {
            return 0.0;
        }
        // (k^{n_s/2} T)^2 rather than k^{n_s} T^2: no inf * 0 at huge k.
        let t = k.powf(0.5 * self.cosmo.n_s) * self.shape.transfer(k);
        self.amplitude * t * t
    }

    /// `sigma(R) = [∫ dk/k k^3 P(k)/(2π²) W²(kR)]^{1/2}` at `z = 0`, `R` in
    /// Mpc/h, `W(x) = 3 (sin x - x cos x)/x^3` the top hat. Relative accuracy
    /// 1e-9 at `R = 8`, 2e-8 or better for `0.01 <= R <= 1000` (about 700
    /// evaluations of `P`). `R <= 0` or NaN give `+inf` (the variance
    /// diverges as `R -> 0`), `R = +inf` gives 0.
    pub fn sigma_r(&self, r: f64) -> f64 {
        if r.is_nan() || r <= 0.0 {
            return f64::INFINITY;
        }
        if r == f64::INFINITY {
            return 0.0;
        }
        sigma2_top_hat(|k| self.power(k) * k * k * k / (2.0 * PI * PI), r).sqrt()
    }
}

/// The `k`-independent coefficients of one transfer function.
#[derive(Debug, Clone)]
enum Shape {
    EisensteinHu(EisensteinHu98),
    NoWiggle(NoWiggle),
    /// BBKS: `q = k * q_per_k`.
    Bbks {
        q_per_k: f64,
    },
}

impl Shape {
    fn new(c: &Cosmology, kind: Transfer) -> Shape {
        match kind {
            Transfer::EisensteinHu => Shape::EisensteinHu(EisensteinHu98::new(c)),
            Transfer::EisensteinHuNoWiggle => Shape::NoWiggle(NoWiggle::new(c)),
            Transfer::Bbks => {
                let theta = c.t_cmb / 2.7;
                let om = c.omega_m();
                let gamma = om * c.h * (-c.omega_b * (1.0 + (2.0 * c.h).sqrt() / om)).exp();
                Shape::Bbks {
                    q_per_k: theta * theta / gamma,
                }
            }
        }
    }

    fn transfer(&self, k: f64) -> f64 {
        if k.is_nan() || k <= 0.0 {
            return 1.0;
        }
        if k >= K_MAX {
            return 0.0;
        }
        match self {
            Shape::EisensteinHu(eh) => eh.transfer(k),
            Shape::NoWiggle(nw) => nw.transfer(k),
            Shape::Bbks { q_per_k } => bbks(k * q_per_k),
        }
    }
}

/// BBKS eq. G3: `T = ln(1 + 2.34q)/(2.34q) [1 + 3.89q + (16.1q)^2 + (5.46q)^3
/// + (6.71q)^4]^{-1/4}`.
fn bbks(q: f64) -> f64 {
    let x = 2.34 * q;
    let log_term = if x == 0.0 { 1.0 } else { x.ln_1p() / x };
    let poly = 1.0 + 3.89 * q + (16.1 * q).powi(2) + (5.46 * q).powi(3) + (6.71 * q).powi(4);
    log_term / poly.sqrt().sqrt()
}

/// EH98's `k`-independent quantities, with `k` in h/Mpc and lengths in Mpc/h.
#[derive(Debug, Clone)]
struct EisensteinHu98 {
    /// Baryon and CDM fractions `Omega_b/Omega_m`, `Omega_c/Omega_m`.
    f_b: f64,
    f_c: f64,
    /// `13.41 k_eq` (eq. 10's `q = k / (13.41 k_eq)`).
    k_q: f64,
    /// Sound horizon at the drag epoch `s` (eq. 6).
    s: f64,
    /// Silk damping scale (eq. 7).
    k_silk: f64,
    alpha_c: f64,
    beta_c: f64,
    alpha_b: f64,
    beta_b: f64,
    beta_node: f64,
}

impl EisensteinHu98 {
    fn new(c: &Cosmology) -> Self {
        let om = c.omega_m();
        let (wm, wb) = (om * c.h * c.h, c.omega_b * c.h * c.h);
        let (f_b, f_c) = (c.omega_b / om, c.omega_c / om);
        let theta = c.t_cmb / 2.7;
        let theta2 = theta * theta;
        // Eqs. 2–3: equality epoch and scale (k_eq in h/Mpc). Eq. 2 gives
        // 1 + z_eq (so says the authors' code, tf_fit.c, which CCL follows).
        let zp1_eq = 2.5e4 * wm / (theta2 * theta2);
        let k_eq = 7.46e-2 * wm / (theta2 * c.h);
        // Eq. 4: drag epoch.
        let b1 = 0.313 * wm.powf(-0.419) * (1.0 + 0.607 * wm.powf(0.674));
        let b2 = 0.238 * wm.powf(0.223);
        let z_d =
            1291.0 * wm.powf(0.251) / (1.0 + 0.659 * wm.powf(0.828)) * (1.0 + b1 * wb.powf(b2));
        // Eq. 5: baryon-to-photon momentum density ratio, R ∝ a = 1/(1 + z)
        // (as in tf_fit.c; the paper prints z).
        let r_of = |zp1: f64| 31.5 * wb / (theta2 * theta2) * (1e3 / zp1);
        let y = zp1_eq / (1.0 + z_d);
        let (r_eq, r_d) = (r_of(zp1_eq), r_of(1.0 + z_d));
        let s = sound_horizon(k_eq, r_eq, y, r_d);
        // Eq. 7 (converted to h/Mpc).
        let k_silk = 1.6 * wb.powf(0.52) * wm.powf(0.73) * (1.0 + (10.4 * wm).powf(-0.95)) / c.h;
        // Eqs. 11–12: CDM suppression and shift.
        let a1 = (46.9 * wm).powf(0.670) * (1.0 + (32.1 * wm).powf(-0.532));
        let a2 = (12.0 * wm).powf(0.424) * (1.0 + (45.0 * wm).powf(-0.582));
        let alpha_c = a1.powf(-f_b) * a2.powf(-f_b * f_b * f_b);
        let bb1 = 0.944 / (1.0 + (458.0 * wm).powf(-0.708));
        let bb2 = (0.395 * wm).powf(-0.0266);
        let beta_c = 1.0 / (1.0 + bb1 * (f_c.powf(bb2) - 1.0));
        // Eqs. 14–15, 23–24: baryon suppression, node shift, envelope shift.
        let alpha_b = 2.07 * k_eq * s * (1.0 + r_d).powf(-0.75) * eh_g(y);
        let beta_node = 8.41 * wm.powf(0.435);
        let beta_b = 0.5 + f_b + (3.0 - 2.0 * f_b) * ((17.2 * wm).powi(2) + 1.0).sqrt();
        EisensteinHu98 {
            f_b,
            f_c,
            k_q: 13.41 * k_eq,
            s,
            k_silk,
            alpha_c,
            beta_c,
            alpha_b,
            beta_b,
            beta_node,
        }
    }

    /// Eq. 16: `T = f_b T_b + f_c T_c`, for `0 < k < inf`.
    fn transfer(&self, k: f64) -> f64 {
        let q = k / self.k_q;
        let x = k * self.s;
        // Eqs. 19–20: T~_0(k; alpha, beta) = L / (L + C q^2), with
        // L = ln(e + 1.8 beta q), C = 14.2/alpha + 386/(1 + 69.9 q^1.08).
        let c_q = 386.0 / (1.0 + 69.9 * q.powf(1.08));
        let t0_tilde = |l: f64, alpha: f64| l / (l + (14.2 / alpha + c_q) * q * q);
        let l_beta_c = (E + 1.8 * self.beta_c * q).ln();
        // Eqs. 17–18: CDM.
        let f = 1.0 / (1.0 + (x / 5.4).powi(4));
        let t_c = f * t0_tilde(l_beta_c, 1.0) + (1.0 - f) * t0_tilde(l_beta_c, self.alpha_c);
        // Eqs. 21–22: baryons, with the node-shifted k s~.
        let x_node = x / (1.0 + (self.beta_node / x).powi(3)).cbrt();
        let envelope =
            self.alpha_b / (1.0 + (self.beta_b / x).powi(3)) * (-(k / self.k_silk).powf(1.4)).exp();
        let t0_11 = t0_tilde((E + 1.8 * q).ln(), 1.0);
        let t_b = (t0_11 / (1.0 + (x / 5.2).powi(2)) + envelope) * sinc(x_node);
        self.f_b * t_b + self.f_c * t_c
    }
}

/// EH98 eq. 6, the sound horizon at the drag epoch,
/// `s = 2/(3 k_eq) sqrt(6/R_eq) ln[(sqrt(1+R_d) + sqrt(R_d+R_eq)) / (1 + sqrt(R_eq))]`,
/// rearranged as `ln(1 + u)/sqrt(R_eq)` so that it keeps its finite limit
/// `2 sqrt(6)/(3 k_eq) (sqrt(1 + ratio) - 1)` as `Omega_b -> 0`
/// (`ratio = R_d/R_eq = (1 + z_eq)/(1 + z_d)`).
fn sound_horizon(k_eq: f64, r_eq: f64, ratio: f64, r_d: f64) -> f64 {
    let a = r_eq.sqrt();
    // u / a, where 1 + u is the argument of the logarithm.
    let u_over_a =
        (ratio * a / ((1.0 + r_d).sqrt() + 1.0) + ratio / ((1.0 + ratio).sqrt() + 1.0)) / (1.0 + a);
    let u = u_over_a * a;
    let log_ratio = if u == 0.0 { 1.0 } else { u.ln_1p() / u };
    2.0 / (3.0 * k_eq) * 6f64.sqrt() * u_over_a * log_ratio
}

/// EH98 eq. 15, `G(y) = y [-6 sqrt(1+y) + (2+3y) ln((sqrt(1+y)+1)/(sqrt(1+y)-1))]`,
/// with the logarithm as `2 ln(sqrt(1+y)+1) - ln y` (no cancellation at small `y`).
fn eh_g(y: f64) -> f64 {
    let s = (1.0 + y).sqrt();
    y * (-6.0 * s + (2.0 + 3.0 * y) * (2.0 * (s + 1.0).ln() - y.ln()))
}

/// `sin(x)/x`.
fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-4 {
        1.0 - x * x / 6.0
    } else {
        x.sin() / x
    }
}

/// EH98's no-wiggle transfer function, eqs. 26 and 28–31.
#[derive(Debug, Clone)]
struct NoWiggle {
    /// `Omega_m h`.
    om_h: f64,
    /// `alpha_Gamma` (eq. 31).
    alpha_gamma: f64,
    /// `0.43 s` with `s` the approximate sound horizon (eq. 26) in Mpc/h.
    s43: f64,
    /// `Theta_2.7^2`.
    theta2: f64,
}

impl NoWiggle {
    fn new(c: &Cosmology) -> Self {
        let om = c.omega_m();
        let (wm, wb) = (om * c.h * c.h, c.omega_b * c.h * c.h);
        let f_b = c.omega_b / om;
        // Eq. 26, in Mpc/h.
        let s = 44.5 * (9.83 / wm).ln() / (1.0 + 10.0 * wb.powf(0.75)).sqrt() * c.h;
        let alpha_gamma =
            1.0 - 0.328 * (431.0 * wm).ln() * f_b + 0.38 * (22.3 * wm).ln() * f_b * f_b;
        let theta = c.t_cmb / 2.7;
        NoWiggle {
            om_h: om * c.h,
            alpha_gamma,
            s43: 0.43 * s,
            theta2: theta * theta,
        }
    }

    /// Eqs. 28–30: `T_0 = L_0/(L_0 + C_0 q^2)`, `L_0 = ln(2e + 1.8q)`,
    /// `C_0 = 14.2 + 731/(1 + 62.5q)`, `q = k Theta^2 / Gamma_eff`.
    fn transfer(&self, k: f64) -> f64 {
        let ag = self.alpha_gamma;
        let gamma_eff = self.om_h * (ag + (1.0 - ag) / (1.0 + (k * self.s43).powi(4)));
        let q = k * self.theta2 / gamma_eff;
        let l = (2.0 * E + 1.8 * q).ln();
        let c = 14.2 + 731.0 / (1.0 + 62.5 * q);
        l / (l + c * q * q)
    }
}

/// The top hat in Fourier space, `W(x) = 3 (sin x - x cos x)/x^3`, by its
/// series `1 - x^2/10 + x^4/280` below `x = 0.01` (no cancellation).
fn top_hat(x: f64) -> f64 {
    if x < 1e-2 {
        let x2 = x * x;
        1.0 - x2 / 10.0 + x2 * x2 / 280.0
    } else {
        3.0 * (x.sin() - x * x.cos()) / (x * x * x)
    }
}

/// Gauss–Legendre nodes and weights, 8 points on [-1, 1] (the symmetric half).
const GL8: [(f64, f64); 4] = [
    (0.183_434_642_495_649_8, 0.362_683_783_378_362),
    (0.525_532_409_916_329, 0.313_706_645_877_887_27),
    (0.796_666_477_413_626_7, 0.222_381_034_453_374_48),
    (0.960_289_856_497_536_3, 0.101_228_536_290_376_26),
];

/// `∫_a^b f` over `n` equal Gauss–Legendre panels.
fn gauss_legendre(f: impl Fn(f64) -> f64, a: f64, b: f64, n: usize) -> f64 {
    let half = 0.5 * (b - a) / n as f64;
    (0..n)
        .map(|i| {
            let mid = a + (2 * i + 1) as f64 * half;
            GL8.iter()
                .map(|&(x, w)| w * (f(mid - half * x) + f(mid + half * x)))
                .sum::<f64>()
                * half
        })
        .sum()
}

/// `sigma^2(R) = ∫ Δ²(k) W²(kR) d ln k`, `Δ²(k) = k³P(k)/(2π²)` given as
/// `delta2`, in three parts of 8-point Gauss–Legendre panels:
/// - `k` from `min(1e-4, 1e-2/R)` (`Δ²` below 1e-9 of `sigma^2` there) to
///   `x = kR = 4π`: panels of 0.2 in `ln k`, which resolve the baryon
///   wiggles and the window's first oscillations;
/// - `x` from 4π to `X = nπ >= max(32π, R * 0.5 h/Mpc)`: one panel per
///   period `π` of `W²`;
/// - beyond `X`, the mean over a period `<W²> = 9 (1 + x²) / (2 x^6)` in
///   place of `W²`, over 12 e-folds in `k` (panels of 1.5): the neglected
///   oscillating part is `~1/X²` of this tail, itself `< 1e-4` of `sigma^2`.
fn sigma2_top_hat(delta2: impl Fn(f64) -> f64, r: f64) -> f64 {
    let x_mid = 4.0 * PI;
    let n_periods = (32.0f64).max((0.5 * r / PI).ceil());
    let x_max = n_periods * PI;
    let ln_k_lo = (1e-4f64).min(1e-2 / r).ln();
    let ln_k_mid = (x_mid / r).ln();
    let n_log = ((ln_k_mid - ln_k_lo) / 0.2).ceil() as usize;
    let low = gauss_legendre(
        |ln_k| {
            let k = ln_k.exp();
            delta2(k) * top_hat(k * r).powi(2)
        },
        ln_k_lo,
        ln_k_mid,
        n_log,
    );
    let high = gauss_legendre(
        |x| delta2(x / r) * top_hat(x).powi(2) / x,
        x_mid,
        x_max,
        n_periods as usize - 4,
    );
    let ln_x_max = x_max.ln();
    let tail = gauss_legendre(
        |ln_x| {
            let x = ln_x.exp();
            delta2(x / r) * 4.5 * (1.0 + x * x) / x.powi(6)
        },
        ln_x_max,
        ln_x_max + 12.0,
        8,
    );
    low + high + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Transfer; 3] = [
        Transfer::EisensteinHu,
        Transfer::EisensteinHuNoWiggle,
        Transfer::Bbks,
    ];

    /// CCL's Eisenstein–Hu benchmark cosmology (T_CMB = 2.725 K).
    fn ccl_eh_cosmology() -> Cosmology {
        Cosmology::new(0.25, 0.05, 0.7, 0.96, 0.8, -1.0, 0.0).unwrap()
    }

    fn assert_rel(got: f64, want: f64, tol: f64, what: &str) {
        let rel = (got / want - 1.0).abs();
        assert!(
            rel <= tol,
            "{what}: got {got}, want {want}, rel {rel:.2e} > {tol:.0e}"
        );
    }

    /// `sigma(R)` by brute force: Simpson's rule on 400 000 intervals in
    /// `ln k` from 1e-7 h/Mpc to `kR = 1e4` (the tail beyond is below 1e-15).
    fn sigma_r_reference(p: &LinearPower, r: f64) -> f64 {
        let n = 400_000;
        let (a, b) = ((1e-7f64).ln(), (1e4 / r).ln());
        let h = (b - a) / n as f64;
        let f = |i: usize| {
            let k = (a + i as f64 * h).exp();
            p.power(k) * k.powi(3) / (2.0 * PI * PI) * top_hat(k * r).powi(2)
        };
        let inner: f64 = (1..n)
            .map(|i| if i % 2 == 1 { 4.0 } else { 2.0 } * f(i))
            .sum();
        ((f(0) + inner + f(n)) * h / 3.0).sqrt()
    }

    #[test]
    fn gauss_legendre_is_exact_to_degree_15() {
        // 8 points integrate x^14 exactly: a wrong digit in GL8 shows at 1e-14.
        let i = gauss_legendre(|x| x.powi(14), -1.0, 1.0, 1);
        assert!((i - 2.0 / 15.0).abs() < 1e-15, "{i}");
        let i = gauss_legendre(|x| 15.0 * x.powi(14), 0.0, 2.0, 3);
        assert!((i / 2f64.powi(15) - 1.0).abs() < 1e-14, "{i}");
    }

    #[test]
    fn top_hat_series_and_closed_form_agree() {
        // At the switch x = 0.01 the series (error ~ x^6 / 15000) and the
        // closed form (cancellation ~ 1e-16 / x^2) agree to 1e-11.
        let x: f64 = 1e-2;
        let closed = 3.0 * (x.sin() - x * x.cos()) / (x * x * x);
        assert!((top_hat(x * (1.0 - 1e-12)) - closed).abs() < 1e-11);
        assert_eq!(top_hat(0.0), 1.0);
        // First zero, tan x = x.
        assert!(top_hat(4.493_409_457_909_064).abs() < 1e-15);
    }

    #[test]
    fn sound_horizon_matches_eq_6_and_has_its_no_baryon_limit() {
        // Eq. 6 as printed, for Omega_b h^2 = 0.0245 (R_eq ~ 0.2): the
        // rearrangement only changes rounding (1e-13).
        let (k_eq, z_eq, z_d): (f64, f64, f64) = (0.0149, 3600.0, 1020.0);
        let (r_eq, r_d) = (0.214 * 1e3 / z_eq * 3.6, 0.214 * 1e3 / z_d * 3.6);
        let direct = 2.0 / (3.0 * k_eq)
            * (6.0 / r_eq).sqrt()
            * (((1.0 + r_d).sqrt() + (r_d + r_eq).sqrt()) / (1.0 + r_eq.sqrt())).ln();
        assert_rel(
            sound_horizon(k_eq, r_eq, z_eq / z_d, r_d),
            direct,
            1e-13,
            "s",
        );
        // R -> 0: continuous, and exactly the limit at 0.
        let limit = 2.0 * 6f64.sqrt() / (3.0 * k_eq) * ((1.0 + z_eq / z_d).sqrt() - 1.0);
        assert_rel(
            sound_horizon(k_eq, 0.0, z_eq / z_d, 0.0),
            limit,
            1e-15,
            "s at R = 0",
        );
        let tiny = sound_horizon(k_eq, 1e-300, z_eq / z_d, 1e-300 * z_eq / z_d);
        assert_rel(tiny, limit, 1e-15, "s at R = 1e-300");
        let small = sound_horizon(k_eq, 1e-8, z_eq / z_d, 1e-8 * z_eq / z_d);
        assert_rel(small, limit, 1e-3, "s at R = 1e-8");
    }

    #[test]
    fn sigma_r_is_normalised_accurate_and_decreasing() {
        for kind in ALL {
            let p = LinearPower::new(&ccl_eh_cosmology(), kind).unwrap();
            // sigma_r(8) re-runs the quadrature that set A: equal up to rounding.
            assert_rel(p.sigma_r(8.0), 0.8, 1e-12, "sigma_8");
            // Against brute force (Simpson, 4e5 points: agrees with 4e6 to
            // 1e-12). Measured: <= 4e-10 at R = 8 and for the smooth fits;
            // ~1e-8 for EH at R <= 1, where the 0.2 panels in ln k do not
            // resolve the small (~1e-5) wiggles of eq. 21 beyond k ~ 1 h/Mpc.
            for r in [0.01, 0.1, 1.0, 8.0, 50.0, 300.0, 1000.0] {
                let want = sigma_r_reference(&p, r);
                let tol = if r == 8.0 { 2e-9 } else { 3e-8 };
                assert_rel(p.sigma_r(r), want, tol, &format!("{kind:?} sigma({r})"));
            }
            let rs: Vec<f64> = (0..60).map(|i| 10f64.powf(-2.0 + 0.1 * i as f64)).collect();
            for w in rs.windows(2) {
                assert!(
                    p.sigma_r(w[1]) < p.sigma_r(w[0]),
                    "{kind:?} at R = {}",
                    w[0]
                );
            }
        }
    }

    #[test]
    fn odd_inputs_give_limits_not_nan() {
        let c = ccl_eh_cosmology();
        for kind in ALL {
            let p = LinearPower::new(&c, kind).unwrap();
            for k in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
                assert_eq!(p.power(k), 0.0, "{kind:?} P({k})");
            }
            assert_eq!(transfer(&c, kind, 0.0), 1.0);
            assert_eq!(transfer(&c, kind, f64::NAN), 1.0);
            assert_eq!(transfer(&c, kind, f64::INFINITY), 0.0);
            assert_rel(transfer(&c, kind, 1e-8), 1.0, 1e-6, "T(1e-8)");
            assert_eq!(p.sigma_r(0.0), f64::INFINITY);
            assert_eq!(p.sigma_r(f64::NAN), f64::INFINITY);
            assert_eq!(p.sigma_r(f64::INFINITY), 0.0);
            // power is A k^n_s T^2 with the free function's T.
            let a = p.power(1.0) / transfer(&c, kind, 1.0).powi(2);
            for k in [1e-3f64, 0.1, 10.0] {
                let want = a * k.powf(c.n_s) * transfer(&c, kind, k).powi(2);
                assert_rel(p.power(k), want, 1e-13, "P vs T");
            }
        }
    }

    #[test]
    fn spectra_are_finite_for_corner_cosmologies() {
        let fid = ccl_eh_cosmology();
        let corners = [
            fid,
            Cosmology { w0: -0.7, ..fid },
            Cosmology {
                omega_b: 0.0,
                omega_c: 0.3,
                ..fid
            },
            Cosmology {
                omega_c: 0.0,
                omega_b: 0.3,
                ..fid
            },
            Cosmology {
                omega_c: 0.95,
                omega_b: 0.05,
                ..fid
            },
            Cosmology {
                omega_c: 0.005,
                omega_b: 0.005,
                h: 0.21,
                ..fid
            },
            Cosmology {
                h: 1.49,
                n_s: 1.99,
                ..fid
            },
            Cosmology {
                n_s: 0.01,
                t_cmb: 0.1,
                ..fid
            },
            Cosmology {
                t_cmb: 9.9,
                sigma8: 3.0,
                ..fid
            },
        ];
        let ks: Vec<f64> = (0..=200)
            .map(|i| 10f64.powf(-6.0 + 0.05 * i as f64))
            .collect();
        for c in corners {
            c.validate().unwrap();
            for kind in ALL {
                let p = LinearPower::new(&c, kind).unwrap();
                for &k in ks.iter().chain(&[1e-300, 1e300, f64::MAX]) {
                    let v = p.power(k);
                    assert!(v.is_finite() && v >= 0.0, "{kind:?} {c:?}: P({k}) = {v}");
                }
                assert_rel(p.sigma_r(8.0), c.sigma8, 1e-12, "sigma_8");
            }
        }
    }

    #[test]
    fn dark_energy_does_not_enter_the_z0_spectrum() {
        let c = ccl_eh_cosmology();
        let w = Cosmology {
            w0: -0.7,
            wa: -0.2,
            ..c
        };
        for kind in ALL {
            let (p, q) = (
                LinearPower::new(&c, kind).unwrap(),
                LinearPower::new(&w, kind).unwrap(),
            );
            for k in [1e-3, 0.1, 1.0] {
                assert_eq!(p.power(k), q.power(k));
            }
        }
    }

    #[test]
    fn eisenstein_hu_without_baryons_is_the_cdm_fit() {
        // With f_b = 0, alpha_c = beta_c = 1 and T = T~_0(k; 1, 1) (eq. 19)
        // exactly: only rounding differs (1e-14).
        let c = Cosmology {
            omega_c: 0.3,
            omega_b: 0.0,
            ..ccl_eh_cosmology()
        };
        let wm = 0.3 * 0.49;
        let theta2 = (2.725f64 / 2.7).powi(2);
        let k_eq = 7.46e-2 * wm / (theta2 * 0.7);
        for k in [1e-4f64, 0.01, 0.07, 0.2, 1.0, 30.0] {
            let q = k / (13.41 * k_eq);
            let l = (E + 1.8 * q).ln();
            let want = l / (l + (14.2 + 386.0 / (1.0 + 69.9 * q.powf(1.08))) * q * q);
            assert_rel(transfer(&c, Transfer::EisensteinHu, k), want, 1e-14, "T");
        }
        // And Omega_b -> 0 is continuous (T moves by O(f_b)).
        let tiny = Cosmology {
            omega_b: 1e-9,
            omega_c: 0.3 - 1e-9,
            ..c
        };
        let p0 = LinearPower::new(&c, Transfer::EisensteinHu).unwrap();
        let p1 = LinearPower::new(&tiny, Transfer::EisensteinHu).unwrap();
        for k in [1e-3, 0.1, 1.0, 10.0] {
            assert_rel(p1.power(k), p0.power(k), 1e-6, "P at Omega_b = 1e-9");
        }
    }

    #[test]
    fn invalid_cosmologies_are_rejected() {
        let ok = ccl_eh_cosmology();
        let bad = [
            Cosmology {
                omega_c: -1.0,
                ..ok
            },
            Cosmology {
                omega_b: -0.01,
                ..ok
            },
            Cosmology { h: f64::NAN, ..ok },
            Cosmology { sigma8: 0.0, ..ok },
            Cosmology { t_cmb: -2.7, ..ok },
        ];
        for kind in ALL {
            assert!(LinearPower::new(&ok, kind).is_ok());
            for c in bad {
                assert!(LinearPower::new(&c, kind).is_err(), "{kind:?} {c:?}");
            }
        }
        // Valid, but outside the no-wiggle fit: all baryons, Omega_m h^2 =
        // 0.019, alpha_Gamma = -0.02 (its Gamma_eff would cross 0).
        let baryons = Cosmology {
            omega_c: 0.0,
            omega_b: 0.3,
            h: 0.25,
            ..ok
        };
        assert!(LinearPower::new(&baryons, Transfer::EisensteinHuNoWiggle).is_err());
        for kind in [Transfer::EisensteinHu, Transfer::Bbks] {
            let p = LinearPower::new(&baryons, kind).unwrap();
            assert!((0..=100).all(|i| p.power(10f64.powf(-4.0 + 0.07 * i as f64)).is_finite()));
        }
    }

    /// Timing, for the record: `cargo test --release --lib cosmo::linear --
    /// --ignored --nocapture`. Loose bounds (50x the measured) so that only a
    /// gross regression fails on a loaded machine.
    #[test]
    #[ignore]
    fn timing() {
        use std::hint::black_box;
        use std::time::Instant;
        let c = ccl_eh_cosmology();
        for kind in ALL {
            let n = 2000;
            let t = Instant::now();
            for i in 0..n {
                let ci = Cosmology {
                    sigma8: 0.8 + 1e-5 * i as f64,
                    ..c
                };
                black_box(LinearPower::new(black_box(&ci), kind).unwrap());
            }
            let new_us = t.elapsed().as_secs_f64() / n as f64 * 1e6;
            let p = LinearPower::new(&c, kind).unwrap();
            // 1e5 wavenumbers from 1e-4 to 1e2 h/Mpc, 20 passes.
            let ks: Vec<f64> = (0..100_000)
                .map(|i| 1e-4 * 1e6f64.powf(i as f64 / 1e5))
                .collect();
            let t = Instant::now();
            let mut acc = 0.0;
            for _ in 0..20 {
                acc += black_box(&ks).iter().map(|&k| p.power(k)).sum::<f64>();
            }
            black_box(acc);
            let power_ns = t.elapsed().as_secs_f64() / (20 * ks.len()) as f64 * 1e9;
            println!("{kind:?}: new {new_us:.1} us, power {power_ns:.1} ns");
            assert!(new_us < 10_000.0 && power_ns < 10_000.0);
        }
    }

    /// `P(k)` from pyccl 3.3.6, k in h/Mpc, P in (Mpc/h)^3:
    /// `c = ccl.Cosmology(Omega_c=oc, Omega_b=ob, h=0.7, sigma8=0.8, n_s=0.96,
    /// T_CMB=t, transfer_function=tf, matter_power_spectrum='linear')`;
    /// `ccl.linear_matter_power(c, k * 0.7, 1.0) * 0.7**3`.
    const K_CCL: [f64; 8] = [
        1e-3,
        1e-2,
        0.050_118_723_362_727_22,
        0.1,
        0.3,
        1.0,
        3.0,
        10.0,
    ];

    /// Compares with pyccl: each `P(k)` to 1e-5, and the shape (the ratio to
    /// CCL, constant if only the amplitude differs) to 1e-6. CCL normalises
    /// with a `sigma_8` integral at `epsrel = 1e-5` and splines `P(k)`; the
    /// measured offsets are a constant -0.8e-6 (EH), -1.1e-6 (no-wiggle),
    /// -1.35e-6 (BBKS), with a spread over `k` below 3.1e-7. (The issue asked
    /// for 1e-4.)
    fn check_ccl(c: &Cosmology, kind: Transfer, want: &[f64; 8]) {
        let p = LinearPower::new(c, kind).unwrap();
        let ratios: Vec<f64> = K_CCL
            .iter()
            .zip(want)
            .map(|(&k, &w)| p.power(k) / w)
            .collect();
        for (&k, &w) in K_CCL.iter().zip(want) {
            assert_rel(p.power(k), w, 1e-5, &format!("{kind:?} P({k})"));
        }
        let (lo, hi) = ratios
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &r| (lo.min(r), hi.max(r)));
        assert!(
            hi - lo < 1e-6,
            "{kind:?}: the shape differs from CCL's, ratios {ratios:?}"
        );
    }

    #[test]
    fn eisenstein_hu_matches_ccl() {
        // oc 0.25, ob 0.05, t 2.725, tf 'eisenstein_hu'.
        let want = [
            3.895_013_715_566e3,
            2.194_846_756_650e4,
            1.210_620_810_538e4,
            5.448_597_468_435e3,
            8.415_190_067_317e2,
            6.324_125_447_722e1,
            4.555_597_972_852,
            2.111_048_505_840e-1,
        ];
        check_ccl(&ccl_eh_cosmology(), Transfer::EisensteinHu, &want);
        // The benchmark numbers (CCL's older test file, 6 digits) at
        // k = 0.01, 10^-1.3 (printed "0.05012": at k = 0.05012 itself CCL
        // gives 12105.955, 2e-5 off), 0.1, 1: within their rounding (<= 3e-6)
        // plus CCL's own error.
        let p = LinearPower::new(&ccl_eh_cosmology(), Transfer::EisensteinHu).unwrap();
        for (k, w) in [
            (0.01, 21948.4),
            (K_CCL[2], 12106.2),
            (0.1, 5448.59),
            (1.0, 63.2412),
        ] {
            assert_rel(p.power(k), w, 1e-5, &format!("issue P({k})"));
        }
    }

    #[test]
    fn no_wiggle_matches_ccl() {
        // oc 0.25, ob 0.05, t 2.725, tf 'eisenstein_hu_nowiggles'.
        let want = [
            3.872_335_902_378e3,
            2.217_966_395_411e4,
            1.269_593_646_522e4,
            5.638_012_735_158e3,
            8.462_899_976_236e2,
            6.194_891_528_660e1,
            4.424_205_154_418,
            2.049_209_896_281e-1,
        ];
        check_ccl(&ccl_eh_cosmology(), Transfer::EisensteinHuNoWiggle, &want);
    }

    #[test]
    fn baryon_wiggles_oscillate_about_the_no_wiggle_fit() {
        // EH / no-wiggle: within 10% of 1 (the no-wiggle fit is the
        // wiggles' envelope mean to a few per cent, EH98 fig. 3), with a first,
        // node-shifted maximum below 0.05 h/Mpc, then maxima near k = 0.07
        // and 0.13 h/Mpc, spaced by ~2π/s (s = 102.6 Mpc/h, eq. 26 here).
        // (Found 0.0251, 0.0771, 0.1365, 0.1967, 0.2573 on a 1e-4 grid.)
        let c = ccl_eh_cosmology();
        let eh = LinearPower::new(&c, Transfer::EisensteinHu).unwrap();
        let nw = LinearPower::new(&c, Transfer::EisensteinHuNoWiggle).unwrap();
        let ks: Vec<f64> = (0..4000).map(|i| 0.01 + 1e-4 * i as f64).collect();
        let ratio: Vec<f64> = ks.iter().map(|&k| eh.power(k) / nw.power(k)).collect();
        assert!(ratio.iter().all(|r| (r - 1.0).abs() < 0.1));
        let maxima: Vec<f64> = (1..ks.len() - 1)
            .filter(|&i| ratio[i] > ratio[i - 1] && ratio[i] > ratio[i + 1])
            .map(|i| ks[i])
            .collect();
        assert!(maxima[0] < 0.05, "{maxima:?}");
        assert!((maxima[1] - 0.07).abs() < 0.01, "{maxima:?}");
        assert!((maxima[2] - 0.13).abs() < 0.01, "{maxima:?}");
        let s = 44.5 * (9.83f64 / 0.147).ln() / (1.0 + 10.0 * 0.0245f64.powf(0.75)).sqrt() * 0.7;
        for w in maxima[1..].windows(2).take(4) {
            assert_rel(w[1] - w[0], 2.0 * PI / s, 0.15, "peak spacing");
        }
    }

    #[test]
    fn bbks_matches_ccl() {
        // oc 0.30, ob 0.0 (CCL accepts it), t 2.7, tf 'bbks': the C_ell
        // benchmark cosmology.
        let c = Cosmology::new(0.30, 0.0, 0.7, 0.96, 0.8, -1.0, 0.0)
            .unwrap()
            .with_t_cmb(2.7)
            .unwrap();
        let want = [
            1.890_714_266_967e3,
            1.182_055_232_744e4,
            1.036_938_922_232e4,
            5.365_077_857_927e3,
            9.171_955_956_878e2,
            7.138_279_543_903e1,
            5.124_064_562_189,
            2.352_961_169_997e-1,
        ];
        check_ccl(&c, Transfer::Bbks, &want);
        // With baryons (Sugiyama's shape parameter): oc 0.25, ob 0.05,
        // t 2.725, tf 'bbks'.
        let want = [
            3.706_233_439_163e3,
            2.000_077_557_664e4,
            1.291_637_424_754e4,
            5.755_674_136_461e3,
            8.335_223_125_501e2,
            5.901_965_547_261e1,
            4.033_082_579_769,
            1.791_627_805_194e-1,
        ];
        check_ccl(&ccl_eh_cosmology(), Transfer::Bbks, &want);
    }
}
