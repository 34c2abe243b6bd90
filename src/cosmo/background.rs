//! The background of a flat wCDM universe: `E(a) = H(a)/H0`, the comoving
//! distance `chi(a)` and its inverse, and the linear growth `D(a)`.
//!
//! Matter and dark energy with `w(a) = w0 + wa (1 - a)` (Linder 2003, PRL 90,
//! 091301), no radiation nor massive neutrinos (the jax-cosmo convention):
//!
//! `E(a)^2 = Omega_m a^-3 + Omega_de f_de(a)`,
//! `f_de(a) = a^{-3 (1 + w0 + wa)} exp(-3 wa (1 - a))`.
//!
//! [`Background::new`] tabulates `chi` and `D` once on a uniform grid in
//! `ln a` over `[A_MIN, 1]`; every later call is a cubic Hermite
//! interpolation with the exact derivatives at the nodes (~25 ns).

use super::{Cosmology, HUBBLE_DISTANCE};
use crate::error::{Error, Result};

/// The smallest tabulated scale factor (`z = 999`).
pub const A_MIN: f64 = 1e-3;

/// Intervals of the `ln a` grid on `[A_MIN, 1]` (step 0.027): `chi` and `D`
/// are then exact to ~3e-8 relative (cubic interpolation and RK4 errors).
const INTERVALS: usize = 256;

/// Where the growth ODE starts: early enough that the decaying mode an
/// imperfect initial condition excites has shrunk by `(1e-3)^{5/2}` (matter
/// domination) by `A_MIN`.
const A_GROWTH_START: f64 = 1e-6;

/// RK4 steps from `A_GROWTH_START` to `A_MIN` (step 0.11 in `ln a`).
const GROWTH_START_STEPS: usize = 64;

/// Gauss–Legendre 3-point nodes and weights on `[-1, 1]`.
const GL3: [(f64, f64); 3] = [
    (-0.774_596_669_241_483_4, 5.0 / 9.0),
    (0.0, 8.0 / 9.0),
    (0.774_596_669_241_483_4, 5.0 / 9.0),
];

/// A cosmology's background, tabulated once ([`Background::new`]).
#[derive(Debug, Clone)]
pub struct Background {
    cosmo: Cosmology,
    /// `ln A_MIN`, the first node.
    ln_a_min: f64,
    /// The grid step in `ln a`.
    step: f64,
    /// `chi` at the nodes, Mpc/h (decreasing, 0 at `a = 1`).
    chi: Vec<f64>,
    /// `d chi / d ln a = -D_H / (a E)` at the nodes.
    dchi: Vec<f64>,
    /// `D(a) / a` at the nodes, normalised to `D(1) = 1`.
    g: Vec<f64>,
    /// `d (D/a) / d ln a` at the nodes, same normalisation.
    dg: Vec<f64>,
}

/// `rho_de / rho_m = Omega_de f_de(a) / (Omega_m a^-3)` at `ln a`; 0 at
/// `a = 0` (`ln a = -inf`, as `w0 + wa < 0`) and when `Omega_de = 0`.
fn de_ratio(c: &Cosmology, ln_a: f64) -> f64 {
    if c.omega_de() == 0.0 {
        return 0.0;
    }
    let exponent = -3.0 * (c.w0 + c.wa) * ln_a - 3.0 * c.wa * (1.0 - ln_a.exp());
    c.omega_de() / c.omega_m() * exponent.exp()
}

/// `Omega_de(a) = x / (1 + x)` from `x = rho_de / rho_m`, written so that
/// `x = inf` gives 1 rather than NaN.
fn omega_de_of_ratio(x: f64) -> f64 {
    1.0 / (1.0 + 1.0 / x)
}

/// The coefficients `(b, c)` of the growth equation for `G = D / a` in
/// `ln a` (Linder & Jenkins 2003, MNRAS 346, 573):
/// `G'' + b G' + c G = 0`, `b = 5/2 - 3/2 w(a) Omega_de(a)`,
/// `c = 3/2 (1 - w(a)) Omega_de(a)`.
fn growth_coefficients(cosmo: &Cosmology, ln_a: f64) -> (f64, f64) {
    let ode = omega_de_of_ratio(de_ratio(cosmo, ln_a));
    let w = cosmo.w(ln_a.exp());
    (2.5 - 1.5 * w * ode, 1.5 * (1.0 - w) * ode)
}

/// `d(G, G')/d ln a` for the coefficients `(b, c)`.
fn growth_rhs((b, c): (f64, f64), [g, dg]: [f64; 2]) -> [f64; 2] {
    [dg, -b * dg - c * g]
}

/// One RK4 step of `h` in `ln a` with the coefficients at the start, middle
/// and end of the step.
fn rk4_step(
    state: [f64; 2],
    h: f64,
    start: (f64, f64),
    mid: (f64, f64),
    end: (f64, f64),
) -> [f64; 2] {
    let shift = |s: [f64; 2], k: [f64; 2], f: f64| [s[0] + f * k[0], s[1] + f * k[1]];
    let k1 = growth_rhs(start, state);
    let k2 = growth_rhs(mid, shift(state, k1, 0.5 * h));
    let k3 = growth_rhs(mid, shift(state, k2, 0.5 * h));
    let k4 = growth_rhs(end, shift(state, k3, h));
    [
        state[0] + h / 6.0 * (k1[0] + 2.0 * k2[0] + 2.0 * k3[0] + k4[0]),
        state[1] + h / 6.0 * (k1[1] + 2.0 * k2[1] + 2.0 * k3[1] + k4[1]),
    ]
}

/// Cubic Hermite interpolation on `[0, 1]` of the values `f0, f1` with the
/// derivatives `d0, d1` already multiplied by the interval length.
fn hermite(f0: f64, f1: f64, d0: f64, d1: f64, u: f64) -> f64 {
    let v = 1.0 - u;
    (1.0 + 2.0 * u) * v * v * f0 + u * v * v * d0 + u * u * (3.0 - 2.0 * u) * f1 - u * u * v * d1
}

/// The derivative in `u` of [`hermite`].
fn hermite_du(f0: f64, f1: f64, d0: f64, d1: f64, u: f64) -> f64 {
    6.0 * u * (u - 1.0) * (f0 - f1)
        + (3.0 * u * u - 4.0 * u + 1.0) * d0
        + (3.0 * u * u - 2.0 * u) * d1
}

impl Background {
    /// Validates the cosmology ([`Cosmology::validate`]) and tabulates
    /// `chi(a)` and `D(a)` on `[A_MIN, 1]`: ~1000 evaluations of `E`, ~40 µs.
    ///
    /// `chi` integrates `D_H / (a E)` in `ln a` with 3-point Gauss–Legendre
    /// per grid interval. `D` integrates the growth equation of `G = D / a`
    /// ([`Background::growth`]) with RK4 from `a = 1e-6`, starting on the
    /// growing mode of the equation with its coefficients frozen there
    /// (`G = 1`, `G' = 0` when dark energy is negligible, i.e. `D = a`).
    ///
    /// Fails on an invalid cosmology, or one so extreme (e.g. `w0 + wa`
    /// barely negative with a huge `wa`) that the tables are not finite.
    pub fn new(cosmo: &Cosmology) -> Result<Background> {
        cosmo.validate()?;
        let ln_a_min = A_MIN.ln();
        let step = -ln_a_min / INTERVALS as f64;
        let node = |i: usize| ln_a_min * (INTERVALS - i) as f64 / INTERVALS as f64;
        // 1 / (a E) = sqrt(a / (Omega_m (1 + x))).
        let inv_a_e =
            |ln_a: f64| (ln_a.exp() / (cosmo.omega_m() * (1.0 + de_ratio(cosmo, ln_a)))).sqrt();

        // The growth equation: from A_GROWTH_START to A_MIN, then node to node.
        let ln_a0 = A_GROWTH_START.ln();
        let (b, c) = growth_coefficients(cosmo, ln_a0);
        // Growing root of p^2 + b p + c = 0, in the form without cancellation.
        let p = -2.0 * c / (b + (b * b - 4.0 * c).max(0.0).sqrt());
        let mut state = [1.0, p];
        let h0 = (ln_a_min - ln_a0) / GROWTH_START_STEPS as f64;
        let mut start = (b, c);
        for k in 0..GROWTH_START_STEPS {
            let mid = growth_coefficients(cosmo, ln_a0 + (k as f64 + 0.5) * h0);
            let end = growth_coefficients(cosmo, ln_a0 + (k + 1) as f64 * h0);
            state = rk4_step(state, h0, start, mid, end);
            start = end;
        }

        let n = INTERVALS + 1;
        let (mut chi, mut dchi) = (vec![0.0; n], vec![0.0; n]);
        let (mut g, mut dg) = (vec![0.0; n], vec![0.0; n]);
        let mut integrals = vec![0.0; INTERVALS];
        [g[0], dg[0]] = state;
        dchi[0] = -HUBBLE_DISTANCE * inv_a_e(ln_a_min);
        for i in 0..INTERVALS {
            let (y0, y1) = (node(i), node(i + 1));
            let mid = 0.5 * (y0 + y1);
            integrals[i] = GL3
                .iter()
                .map(|&(xi, wi)| wi * inv_a_e(mid + 0.5 * step * xi))
                .sum::<f64>()
                * 0.5
                * step;
            dchi[i + 1] = -HUBBLE_DISTANCE * inv_a_e(y1);
            let end = growth_coefficients(cosmo, y1);
            state = rk4_step(state, step, start, growth_coefficients(cosmo, mid), end);
            [g[i + 1], dg[i + 1]] = state;
            start = end;
        }
        // chi(a_i) = D_H ∫_{ln a_i}^0 dy / (a E), accumulated from a = 1.
        for i in (0..INTERVALS).rev() {
            chi[i] = chi[i + 1] + HUBBLE_DISTANCE * integrals[i];
        }
        let norm = g[INTERVALS];
        for v in g.iter_mut().chain(dg.iter_mut()) {
            *v /= norm;
        }

        let finite = [&chi, &dchi, &g, &dg]
            .iter()
            .all(|t| t.iter().all(|v| v.is_finite()));
        let monotonic = chi.windows(2).all(|w| w[0] > w[1])
            && dchi.iter().all(|&d| d < 0.0)
            && g.iter().all(|&v| v > 0.0);
        if !(finite && monotonic && norm > 0.0) {
            return Err(Error::invalid(
                "cosmology",
                format!("the background of {cosmo:?} is not finite (extreme w0, wa?)"),
            ));
        }
        Ok(Background {
            cosmo: *cosmo,
            ln_a_min,
            step,
            chi,
            dchi,
            g,
            dg,
        })
    }

    /// The cosmology these tables are for.
    pub fn cosmology(&self) -> &Cosmology {
        &self.cosmo
    }

    /// `E(a) = H(a)/H0 = sqrt(Omega_m a^-3 + Omega_de f_de(a))`,
    /// `f_de(a) = a^{-3 (1 + w0 + wa)} exp(-3 wa (1 - a))` (Linder 2003).
    /// Analytic, for any `a >= 0` (`E(0) = inf`); a negative `a` is taken
    /// as 0.
    pub fn e(&self, a: f64) -> f64 {
        let a = a.clamp(0.0, f64::MAX);
        if a == 0.0 {
            return f64::INFINITY;
        }
        let c = &self.cosmo;
        let de = if c.omega_de() == 0.0 {
            0.0
        } else {
            c.omega_de() * (-3.0 * (1.0 + c.w0 + c.wa) * a.ln() - 3.0 * c.wa * (1.0 - a)).exp()
        };
        (c.omega_m() * a.powi(-3) + de).sqrt()
    }

    /// `Omega_m(a) = Omega_m a^-3 / E(a)^2`. Analytic, for any `a >= 0`
    /// (`Omega_m(0) = 1`); a negative `a` is taken as 0.
    pub fn omega_m_a(&self, a: f64) -> f64 {
        1.0 / (1.0 + de_ratio(&self.cosmo, a.clamp(0.0, f64::MAX).ln()))
    }

    /// `Omega_de(a) = Omega_de f_de(a) / E(a)^2 = 1 - Omega_m(a)` (flat, no
    /// radiation). Analytic, for any `a >= 0` (`Omega_de(0) = 0`); a
    /// negative `a` is taken as 0.
    pub fn omega_de_a(&self, a: f64) -> f64 {
        omega_de_of_ratio(de_ratio(&self.cosmo, a.clamp(0.0, f64::MAX).ln()))
    }

    /// The grid interval holding `ln a` (in `[ln A_MIN, 0]`) and the position
    /// `u` in `[0, 1]` within it.
    fn locate(&self, ln_a: f64) -> (usize, f64) {
        let t = ((ln_a - self.ln_a_min) / self.step).max(0.0);
        let i = (t as usize).min(INTERVALS - 1);
        (i, (t - i as f64).min(1.0))
    }

    /// Hermite interpolation of `values` (with `derivs` in `ln a`) at `ln a`.
    fn interpolate(&self, values: &[f64], derivs: &[f64], ln_a: f64) -> f64 {
        if ln_a.is_nan() {
            return f64::NAN;
        }
        let (i, u) = self.locate(ln_a);
        let h = self.step;
        hermite(
            values[i],
            values[i + 1],
            h * derivs[i],
            h * derivs[i + 1],
            u,
        )
    }

    /// Comoving distance to scale factor `a` in Mpc/h:
    /// `chi(a) = D_H ∫_a^1 da' / (a'^2 E(a'))`, `D_H` = [`HUBBLE_DISTANCE`];
    /// relative accuracy ~3e-8 on `[A_MIN, 1]`. `a` is clamped to
    /// `[A_MIN, 1]` (so `chi(a > 1) = 0`, `chi(a < A_MIN) = chi_max()`); a
    /// NaN `a` gives NaN.
    pub fn chi(&self, a: f64) -> f64 {
        let a = a.clamp(A_MIN, 1.0);
        self.interpolate(&self.chi, &self.dchi, a.ln())
    }

    /// `chi(A_MIN)`, the largest tabulated comoving distance, Mpc/h.
    pub fn chi_max(&self) -> f64 {
        self.chi[0]
    }

    /// The scale factor at comoving distance `chi` (Mpc/h): the exact
    /// inverse of the interpolant [`Background::chi`] (Newton's method on the
    /// bracketing interval), so `a_of_chi(chi(a)) = a` to ~1e-14. `chi` is
    /// clamped to `[0, chi_max()]` (so the result is in `[A_MIN, 1]`); a NaN
    /// `chi` gives NaN.
    pub fn a_of_chi(&self, chi: f64) -> f64 {
        let chi = chi.clamp(0.0, self.chi_max());
        if chi.is_nan() {
            return chi;
        }
        // The table decreases: the first node at or below chi ends the interval.
        let i = self
            .chi
            .partition_point(|&v| v > chi)
            .saturating_sub(1)
            .min(INTERVALS - 1);
        let h = self.step;
        let (f0, f1) = (self.chi[i], self.chi[i + 1]);
        let (d0, d1) = (h * self.dchi[i], h * self.dchi[i + 1]);
        let mut u = ((f0 - chi) / (f0 - f1)).clamp(0.0, 1.0);
        for _ in 0..8 {
            let slope = hermite_du(f0, f1, d0, d1, u);
            if slope.is_nan() || slope >= 0.0 {
                break;
            }
            let du = (hermite(f0, f1, d0, d1, u) - chi) / slope;
            u = (u - du).clamp(0.0, 1.0);
            if du.abs() < 1e-15 {
                break;
            }
        }
        (self.ln_a_min + (i as f64 + u) * h).exp()
    }

    /// Linear growth `D(a)`, normalised to `D(1) = 1`, from the growth
    /// equation (Linder & Jenkins 2003; Percival 2005, A&A 443, 819)
    ///
    /// `D'' + (3/a + dlnE/da) D' - 3/2 Omega_m(a) D / a^2 = 0`,
    ///
    /// valid for any `w(a)` (dark energy smooth), with `D ∝ a` in matter
    /// domination; integrated as `G = D / a` in `ln a`. Relative accuracy
    /// ~3e-8 on `[A_MIN, 1]`. `a` is clamped to `[0, 1]`, and below `A_MIN`
    /// `D ∝ a` (matter domination): `growth(0) = 0`, `growth(a > 1) = 1`. A
    /// NaN `a` gives NaN.
    pub fn growth(&self, a: f64) -> f64 {
        let a = a.clamp(0.0, 1.0);
        a * self.interpolate(&self.g, &self.dg, a.max(A_MIN).ln())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcdm() -> Cosmology {
        Cosmology::new(0.25, 0.05, 0.7, 0.96, 0.8, -1.0, 0.0).unwrap()
    }

    fn wcdm(w0: f64, wa: f64) -> Cosmology {
        Cosmology { w0, wa, ..lcdm() }
    }

    /// Composite Simpson's rule with `n` (even) intervals.
    fn simpson(f: impl Fn(f64) -> f64, lo: f64, hi: f64, n: usize) -> f64 {
        let h = (hi - lo) / n as f64;
        let inner: f64 = (1..n)
            .map(|k| if k % 2 == 1 { 4.0 } else { 2.0 } * f(lo + k as f64 * h))
            .sum();
        (f(lo) + inner + f(hi)) * h / 3.0
    }

    /// `E(a)` written independently of the implementation (powers of `a`).
    fn e_ref(c: &Cosmology, a: f64) -> f64 {
        let f_de = a.powf(-3.0 * (1.0 + c.w0 + c.wa)) * (-3.0 * c.wa * (1.0 - a)).exp();
        (c.omega_m() * a.powi(-3) + c.omega_de() * f_de).sqrt()
    }

    /// `chi(a)` by Simpson's rule in `a` (not `ln a`, as the tables use):
    /// 20000 intervals on `[a, 1]`, error ~h^4 < 1e-12 relative for
    /// `a >= 1/11`.
    fn chi_ref(c: &Cosmology, a: f64) -> f64 {
        HUBBLE_DISTANCE * simpson(|x| 1.0 / (x * x * e_ref(c, x)), a, 1.0, 20_000)
    }

    fn rel(got: f64, want: f64) -> f64 {
        ((got - want) / want).abs()
    }

    #[test]
    fn einstein_de_sitter_is_analytic() {
        // Omega_m = 1: chi = 2 D_H (1 - 1/sqrt(1 + z)) and D = a exactly. The
        // tables' interpolation error is ~1e-10, so 1e-6 leaves a wide margin
        // while catching any wrong factor or normalisation.
        let eds = Cosmology::new(0.95, 0.05, 0.7, 0.96, 0.8, -1.0, 0.0).unwrap();
        let bg = Background::new(&eds).unwrap();
        let (mut worst_chi, mut worst_d) = (0.0_f64, 0.0_f64);
        for k in 0..=200 {
            let z = 0.01 * (2000.0_f64).powf(k as f64 / 200.0); // 0.01 .. 20
            let a = 1.0 / (1.0 + z);
            let chi = 2.0 * HUBBLE_DISTANCE * (1.0 - 1.0 / (1.0 + z).sqrt());
            worst_chi = worst_chi.max(rel(bg.chi(a), chi));
            worst_d = worst_d.max(rel(bg.growth(a), a));
            assert!((bg.e(a) - a.powf(-1.5)).abs() < 1e-12 * a.powf(-1.5));
            assert_eq!((bg.omega_m_a(a), bg.omega_de_a(a)), (1.0, 0.0));
        }
        eprintln!("EdS: chi {worst_chi:.2e}, D {worst_d:.2e}");
        assert!(
            worst_chi < 1e-6 && worst_d < 1e-6,
            "{worst_chi:e} {worst_d:e}"
        );
    }

    #[test]
    fn lcdm_growth_matches_heath_integral() {
        // For w = -1, D ∝ E(a) ∫_0^a da' / (a' E(a'))^3 (Heath 1977). With
        // a' = s^2 the integrand 2 s^4 (Omega_m + Omega_de s^6)^{-3/2} is
        // smooth; Simpson with 4000 intervals is exact to ~1e-14, so the
        // 1e-5 tolerance measures the RK4 tables alone (3e-8 measured).
        for cosmo in [
            lcdm(),
            Cosmology {
                omega_c: 0.05,
                omega_b: 0.03,
                ..lcdm()
            },
        ] {
            let (om, ode) = (cosmo.omega_m(), cosmo.omega_de());
            let heath = |a: f64| {
                let integral = simpson(
                    |s: f64| 2.0 * s.powi(4) * (om + ode * s.powi(6)).powf(-1.5),
                    0.0,
                    a.sqrt(),
                    4000,
                );
                e_ref(&cosmo, a) * integral
            };
            let bg = Background::new(&cosmo).unwrap();
            let norm = heath(1.0);
            let mut worst = 0.0_f64;
            for a in [
                A_MIN, 2e-3, 0.01, 0.05, 0.1, 0.2, 0.33, 0.5, 0.7, 0.8, 0.9, 0.99, 1.0,
            ] {
                worst = worst.max(rel(bg.growth(a), heath(a) / norm));
            }
            eprintln!("Heath, Omega_m {om}: D {worst:.2e}");
            assert!(worst < 1e-5, "{worst:e}");
        }
    }

    #[test]
    fn chi_matches_independent_quadrature() {
        // Simpson in `a` with 20000 intervals is exact to ~1e-12; 1e-5 is the
        // accuracy the Limber integrals need (3e-8 measured).
        for cosmo in [lcdm(), wcdm(-0.8, -0.5)] {
            let bg = Background::new(&cosmo).unwrap();
            let mut worst = 0.0_f64;
            for z in [0.05, 0.5, 1.0, 3.0, 10.0] {
                let a = 1.0 / (1.0 + z);
                worst = worst.max(rel(bg.chi(a), chi_ref(&cosmo, a)));
                assert!(rel(bg.e(a), e_ref(&cosmo, a)) < 1e-13);
                assert!((bg.omega_m_a(a) + bg.omega_de_a(a) - 1.0).abs() < 1e-15);
                let om_a = cosmo.omega_m() * a.powi(-3) / e_ref(&cosmo, a).powi(2);
                assert!(rel(bg.omega_m_a(a), om_a) < 1e-13);
            }
            eprintln!("chi, w0 {} wa {}: {worst:.2e}", cosmo.w0, cosmo.wa);
            assert!(worst < 1e-5, "{worst:e}");
        }
    }

    #[test]
    fn a_of_chi_inverts_chi() {
        // The inverse is Newton's method on the same interpolant, so the
        // round trip is exact to rounding (~1e-15); 1e-8 is the brief's bound.
        for cosmo in [lcdm(), wcdm(-0.8, -0.5), wcdm(-0.9, 0.1)] {
            let bg = Background::new(&cosmo).unwrap();
            let mut worst = 0.0_f64;
            for k in 0..=1000 {
                let a = A_MIN.powf(1.0 - k as f64 / 1000.0); // A_MIN .. 1
                worst = worst.max(rel(bg.a_of_chi(bg.chi(a)), a));
                let chi = bg.chi_max() * k as f64 / 1000.0;
                let back = bg.chi(bg.a_of_chi(chi));
                assert!((back - chi).abs() <= 1e-12 * bg.chi_max(), "{chi} {back}");
            }
            eprintln!("round trip, w0 {} wa {}: {worst:.2e}", cosmo.w0, cosmo.wa);
            assert!(worst < 1e-8, "{worst:e}");
        }
    }

    #[test]
    fn out_of_range_arguments_clamp_without_nan() {
        let bg = Background::new(&lcdm()).unwrap();
        let inf = f64::INFINITY;
        for a in [
            -inf,
            -1.0,
            0.0,
            1e-300,
            1e-9,
            0.5 * A_MIN,
            A_MIN,
            0.5,
            1.0,
            1.5,
            inf,
        ] {
            let values = [bg.chi(a), bg.growth(a), bg.omega_m_a(a), bg.omega_de_a(a)];
            assert!(values.iter().all(|v| v.is_finite()), "a = {a}: {values:?}");
            assert!(!bg.e(a).is_nan(), "a = {a}");
        }
        for chi in [-inf, -1.0, 0.0, 1.0, bg.chi_max(), 2.0 * bg.chi_max(), inf] {
            let a = bg.a_of_chi(chi);
            assert!(
                (A_MIN * (1.0 - 1e-14)..=1.0).contains(&a),
                "chi = {chi}: {a}"
            );
        }
        assert_eq!(bg.chi(1.0), 0.0);
        assert_eq!(bg.chi(2.0), 0.0);
        assert_eq!(bg.chi(1e-6), bg.chi_max());
        assert!(rel(bg.chi(A_MIN), bg.chi_max()) < 1e-15);
        assert_eq!(bg.a_of_chi(0.0), 1.0);
        assert_eq!(bg.a_of_chi(-3.0), 1.0);
        assert!(rel(bg.a_of_chi(inf), A_MIN) < 1e-14);
        assert_eq!((bg.growth(0.0), bg.growth(-1.0)), (0.0, 0.0));
        assert_eq!((bg.growth(1.0), bg.growth(3.0)), (1.0, 1.0));
        // Below A_MIN, D ∝ a (matter domination).
        assert!(rel(bg.growth(0.5 * A_MIN), 0.5 * bg.growth(A_MIN)) < 1e-14);
        assert_eq!(
            (bg.omega_m_a(0.0), bg.omega_de_a(0.0), bg.e(0.0)),
            (1.0, 0.0, inf)
        );
        assert!((bg.e(1.0) - 1.0).abs() < 1e-15);
        // NaN in, NaN out (documented), never a panic.
        assert!(bg.chi(f64::NAN).is_nan() && bg.a_of_chi(f64::NAN).is_nan());
        assert!(bg.growth(f64::NAN).is_nan());
    }

    #[test]
    fn invalid_or_extreme_cosmologies_are_errors_or_finite() {
        let ok = lcdm();
        for bad in [
            Cosmology { sigma8: -1.0, ..ok },
            Cosmology {
                omega_c: f64::NAN,
                ..ok
            },
            Cosmology {
                w0: -0.5,
                wa: 0.5,
                ..ok
            },
        ] {
            assert!(Background::new(&bad).is_err(), "{bad:?}");
        }
        // Valid but extreme: dark energy that never decays (w0 + wa = -0.01),
        // a tiny or zero Omega_de, phantom w: Ok with finite tables or an
        // error, never a panic nor a NaN.
        for cosmo in [
            wcdm(0.5, -0.51),
            wcdm(-3.0, 2.99),
            wcdm(-0.3, -5.0),
            Cosmology {
                omega_c: 1e-4,
                omega_b: 0.0,
                w0: -0.2,
                wa: 0.1,
                ..ok
            },
            Cosmology {
                omega_c: 0.999_999,
                omega_b: 0.0,
                ..ok
            },
        ] {
            if let Ok(bg) = Background::new(&cosmo) {
                for k in 0..=100 {
                    let a = A_MIN.powf(k as f64 / 100.0);
                    let v = [bg.chi(a), bg.growth(a), bg.a_of_chi(bg.chi(a))];
                    assert!(
                        v.iter().all(|x| x.is_finite() && *x >= 0.0),
                        "{cosmo:?} {v:?}"
                    );
                    assert!(rel(v[2], a) < 1e-8, "{cosmo:?} {a} {}", v[2]);
                }
            }
        }
    }

    #[test]
    fn matches_pyccl() {
        // Made with pyccl 3.3.6 (/work/ccl_venv/bin/python), its own
        // precision raised so that its error (~1e-6 by default) is ~1e-9:
        //   ccl.gsl_params.INTEGRATION_DISTANCE_EPSREL = 1e-10
        //   ccl.gsl_params.ODE_GROWTH_EPSREL = 1e-10
        //   ccl.gsl_params.EPS_SCALEFAC_GROWTH = 1e-8
        //   ccl.spline_params.A_SPLINE_NA = ccl.spline_params.A_SPLINE_NLOG = 4000
        //   c = ccl.Cosmology(Omega_c=0.25, Omega_b=0.05, h=0.7, sigma8=0.8,
        //       n_s=0.96, w0=W0, wa=WA, Omega_g=0.0, Neff=0.0, m_nu=0.0,
        //       transfer_function='bbks')
        //   ccl.comoving_radial_distance(c, a) * 0.7   # Mpc/h
        //   ccl.growth_factor(c, a)                    # D(1) = 1
        // at a = 1/(1+z). Omega_g = Neff = 0 remove CCL's radiation (then
        // Omega_l = 1 - Omega_m exactly), so both compute the same model.
        // The tolerance, 1e-6, is CCL's default-precision error (its values
        // move by up to 6e-7 between default and raised precision).
        const Z: [f64; 7] = [0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0];
        #[allow(clippy::type_complexity)]
        const CCL: [(f64, f64, [f64; 7], [f64; 7]); 2] = [
            (
                -1.0,
                0.0,
                [
                    292.9181413414102,
                    1322.037777149103,
                    2312.6801641270263,
                    3625.903452066472,
                    5442.759346952961,
                    6608.174738381545,
                    7519.607566473397,
                ],
                [
                    0.9496624998910986,
                    0.7731811501988167,
                    0.6118057533094821,
                    0.4214456966781287,
                    0.2135366186858284,
                    0.1166654084148749,
                    0.0611271204968548,
                ],
            ),
            (
                -0.9,
                0.1,
                [
                    291.4857999449394,
                    1298.4716815060415,
                    2256.881609492341,
                    3533.010027071931,
                    5324.542505539855,
                    6485.28081252286,
                    7395.73894875789,
                ],
                [
                    0.950161704941484,
                    0.777985285594737,
                    0.6210769612296044,
                    0.4329148591609659,
                    0.2215997475205322,
                    0.1213867523445235,
                    0.0636477531682385,
                ],
            ),
        ];
        for (w0, wa, chi, growth) in CCL {
            let bg = Background::new(&wcdm(w0, wa)).unwrap();
            let (mut worst_chi, mut worst_d) = (0.0_f64, 0.0_f64);
            for ((z, chi), d) in Z.iter().zip(chi).zip(growth) {
                let a = 1.0 / (1.0 + z);
                worst_chi = worst_chi.max(rel(bg.chi(a), chi));
                worst_d = worst_d.max(rel(bg.growth(a), d));
            }
            eprintln!("pyccl, w0 {w0} wa {wa}: chi {worst_chi:.2e}, D {worst_d:.2e}");
            assert!(
                worst_chi < 1e-6 && worst_d < 1e-6,
                "{worst_chi:e} {worst_d:e}"
            );
        }
    }
}
