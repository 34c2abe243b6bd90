//! `exp` and `ln` of `f64` written so that loops over slices vectorise (no
//! calls, no branches the compiler cannot turn into selects), for hot loops
//! such as the Limber integral's `P_NL(k, z)` grid ([`crate::cosmo::limber`]),
//! where the C library's scalar calls cost most of the time.
//!
//! - [`exp`]: `x = n ln 2 + r`, `|r| <= ln 2 / 2` (Cody & Waite 1980, `ln 2`
//!   split in two so that `n ln 2` is exact), `exp(r)` by its Taylor
//!   polynomial of degree 12 (truncation `r^13/13! < 2e-17`), times `2^n` built
//!   in the exponent bits. Relative error below 4e-16 for `x` in `[-708,
//!   709.78]`; `+inf` above, `0` below `-708` (no subnormal results), NaN for
//!   NaN.
//! - [`ln`]: `x = 2^e m`, `m` in `[1/√2, √2)`, `ln m = 2 atanh(s)`, `s = (m -
//!   1)/(m + 1)`, `|s| < 0.1716`, by the odd series to `s^21` (truncation
//!   `s^23 / 23 < 1e-19`). Absolute error below 3e-16 near `x = 1`, relative
//!   below 4e-16 elsewhere; `ln 0 = -inf`, `ln(+inf) = +inf`, NaN for `x < 0`
//!   and NaN; subnormal `x` are scaled by `2^54` first.
//!
//! Both are tested against the C library over the whole range (`tests` below).
//!
//! - [`sigmoid_f32`]: the logistic function of `f32` (the U-Net's SiLU):
//!   `e = exp(-|x|)` in `f32` by the same reduction (`ln 2` split for `f32`)
//!   and the Taylor polynomial of degree 7 (truncation `0.347^8/8! < 6e-9`),
//!   then `1/(1 + e)` or `e/(1 + e)` by the sign of `x`, so nothing
//!   overflows. Relative error below 3.6e-7 (3 `f32` ulp) for `|x| <= 87`
//!   (tested against `f64`); for `x < -87`, where the result is below
//!   `1.7e-38`, it returns 0.
//!
//! [`with_avx2`] runs a loop compiled for AVX2 where the CPU has it: four
//! lanes instead of SSE2's two, the same IEEE operations in the same order
//! (Rust never contracts `a * b + c` into a fused multiply-add), so the results
//! are bitwise those of the portable build.

const LOG2_E: f64 = std::f64::consts::LOG2_E;
/// `ln 2` to 32 significant bits, so that `n * LN2_HI` is exact for `|n| < 2^21`
/// (fdlibm's `ln2_hi`).
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
/// `ln 2 - LN2_HI`.
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
/// `1.5 * 2^52`: adding it rounds a `|v| < 2^51` to the nearest integer, which
/// then sits in the low mantissa bits.
const ROUND: f64 = 6_755_399_441_055_744.0;

/// `f()` compiled with AVX2 enabled when the CPU supports it (x86-64), else
/// `f()` as built (module docs). Put the whole loop in `f`, with the
/// `#[inline(always)]` functions of this module inside it.
#[inline(always)]
pub fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        fn wide<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked on the line above.
            return unsafe { wide(f) };
        }
    }
    f()
}

/// `e^x` (module docs).
#[inline(always)]
pub fn exp(x: f64) -> f64 {
    let xc = x.clamp(-708.0, 709.782_712_893_384);
    let t = xc * LOG2_E + ROUND;
    let n = t - ROUND;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    // Horner on 1/k!, k = 12 .. 0
    let mut p = 1.0 / 479_001_600.0;
    p = p * r + 1.0 / 39_916_800.0;
    p = p * r + 1.0 / 3_628_800.0;
    p = p * r + 1.0 / 362_880.0;
    p = p * r + 1.0 / 40_320.0;
    p = p * r + 1.0 / 5_040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // n in [-1021, 1024]: 2^(n-1) from the low 12 bits of n plus the bias
    // 1023 - 1, times 2 (2^1024 itself is not a finite f64)
    let scale = f64::from_bits(t.to_bits().wrapping_add(1022) << 52);
    let v = (2.0 * p) * scale;
    let v = if x > 709.782_712_893_384 {
        f64::INFINITY
    } else {
        v
    };
    if x < -708.0 {
        0.0
    } else {
        v
    }
}

/// `1 / (1 + e^{-x})` in `f32` (module docs).
#[inline(always)]
pub fn sigmoid_f32(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    /// `ln 2` rounded to 9 significant bits, 355/512 (`n * LN2_HI` exact for
    /// `|n| < 2^15`).
    const LN2_HI: f32 = 0.693_359_4;
    /// `ln 2 - LN2_HI`.
    const LN2_LO: f32 = -2.121_944_4e-4;
    /// `1.5 * 2^23`: adding it rounds a small `f32` to an integer.
    const ROUND: f32 = 12_582_912.0;
    let a = x.abs().min(87.0);
    // e^{-a} = 2^n e^r, n = round(-a log2 e), |r| <= ln 2 / 2
    let t = -a * LOG2_E + ROUND;
    let n = t - ROUND;
    let r = (-a - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.0 / 5_040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // n in [-126, 0]: 2^n from the low bits of t (n + 127 in the exponent)
    let scale = f32::from_bits((t.to_bits().wrapping_add(127)) << 23);
    let e = p * scale;
    let s = if x >= 0.0 { 1.0 } else { e } / (1.0 + e);
    let s = if x < -87.0 { 0.0 } else { s };
    if x.is_nan() {
        x
    } else {
        s
    }
}

/// `ln x` (module docs).
#[inline(always)]
pub fn ln(x: f64) -> f64 {
    const TWO54: f64 = 18_014_398_509_481_984.0;
    let sub = x < f64::MIN_POSITIVE;
    let xs = if sub { x * TWO54 } else { x };
    let bits = xs.to_bits();
    // the biased exponent as an exact f64 (2^52 + k - 2^52)
    let k =
        f64::from_bits(0x4330_0000_0000_0000 | ((bits >> 52) & 0x7ff)) - 4_503_599_627_370_496.0;
    let m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    let big = m > std::f64::consts::SQRT_2;
    let m = if big { 0.5 * m } else { m };
    let e = k - 1023.0 + if big { 1.0 } else { 0.0 } - if sub { 54.0 } else { 0.0 };
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    // 1/3 + s²/5 + .. + s^18/21
    let mut p = 1.0 / 21.0;
    p = p * s2 + 1.0 / 19.0;
    p = p * s2 + 1.0 / 17.0;
    p = p * s2 + 1.0 / 15.0;
    p = p * s2 + 1.0 / 13.0;
    p = p * s2 + 1.0 / 11.0;
    p = p * s2 + 1.0 / 9.0;
    p = p * s2 + 1.0 / 7.0;
    p = p * s2 + 1.0 / 5.0;
    p = p * s2 + 1.0 / 3.0;
    // ln m = 2 s + 2 s s² p: the leading term added last
    let tail = 2.0 * s * s2 * p;
    let v = e * LN2_HI + (2.0 * s + (tail + e * LN2_LO));
    let v = if x == 0.0 { f64::NEG_INFINITY } else { v };
    let v = if x == f64::INFINITY { x } else { v };
    if x < 0.0 || x.is_nan() {
        f64::NAN
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic spread of test points (SplitMix64).
    fn points(n: usize, seed: u64) -> impl Iterator<Item = f64> {
        let mut s = seed;
        (0..n).map(move |_| {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        })
    }

    #[test]
    fn sigmoid_f32_is_within_3_ulp_of_f64() {
        let mut worst = 0.0f64;
        let exact = |x: f32| 1.0 / (1.0 + (-(x as f64)).exp());
        for u in points(1_000_000, 3) {
            let x = (-87.0 + u * 174.0) as f32;
            let (a, b) = (sigmoid_f32(x) as f64, exact(x));
            worst = worst.max(((a - b) / b).abs());
        }
        for u in points(200_000, 4) {
            let x = ((u - 0.5) * 4.0) as f32;
            worst = worst.max(((sigmoid_f32(x) as f64 - exact(x)) / exact(x)).abs());
        }
        assert!(worst < 3.6e-7, "{worst:e}");
        assert_eq!(sigmoid_f32(0.0), 0.5);
        assert_eq!(sigmoid_f32(100.0), 1.0);
        assert_eq!(sigmoid_f32(-100.0), 0.0);
        assert_eq!(sigmoid_f32(f32::INFINITY), 1.0);
        assert_eq!(sigmoid_f32(f32::NEG_INFINITY), 0.0);
        assert!(sigmoid_f32(f32::NAN).is_nan());
    }

    #[test]
    fn exp_is_within_4e_16_of_the_c_library() {
        let mut worst = 0.0f64;
        for u in points(1_000_000, 1) {
            let x = -708.0 + u * (709.78 + 708.0);
            let (a, b) = (exp(x), x.exp());
            worst = worst.max(((a - b) / b).abs());
        }
        for u in points(200_000, 2) {
            let x = (u - 0.5) * 2e-3;
            worst = worst.max(((exp(x) - x.exp()) / x.exp()).abs());
        }
        assert!(worst < 4e-16, "{worst:e}");
    }

    #[test]
    fn the_avx2_build_gives_bitwise_the_same_results() {
        let x: Vec<f64> = points(10_000, 5).map(|u| (u - 0.5) * 1400.0).collect();
        let portable: Vec<(f64, f64)> = x.iter().map(|&v| (exp(v), ln(v.abs()))).collect();
        let mut wide = vec![(0.0, 0.0); x.len()];
        with_avx2(
            #[inline(always)]
            || {
                for (o, &v) in wide.iter_mut().zip(&x) {
                    *o = (exp(v), ln(v.abs()));
                }
            },
        );
        for (a, b) in portable.iter().zip(&wide) {
            assert_eq!(a.0.to_bits(), b.0.to_bits());
            assert_eq!(a.1.to_bits(), b.1.to_bits());
        }
    }

    #[test]
    fn exp_edges() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(710.0), f64::INFINITY);
        assert_eq!(exp(f64::INFINITY), f64::INFINITY);
        assert_eq!(exp(-709.0), 0.0);
        assert_eq!(exp(f64::NEG_INFINITY), 0.0);
        assert!(exp(f64::NAN).is_nan());
        assert!((exp(709.78) / 709.78f64.exp() - 1.0).abs() < 4e-16);
        assert!((exp(-708.0) / (-708.0f64).exp() - 1.0).abs() < 4e-16);
    }

    #[test]
    fn ln_is_within_4e_16_of_the_c_library() {
        let mut worst = 0.0f64;
        // log-uniform over the normal range
        for u in points(1_000_000, 3) {
            let x = (-700.0 + 1400.0 * u).exp();
            let (a, b) = (ln(x), x.ln());
            worst = worst.max(((a - b) / b).abs());
        }
        assert!(worst < 4e-16, "relative {worst:e}");
        // near 1, where ln x -> 0: absolute error
        let mut worst = 0.0f64;
        for u in points(200_000, 4) {
            let x = 0.5 + 1.5 * u;
            worst = worst.max((ln(x) - x.ln()).abs());
        }
        assert!(worst < 3e-16, "absolute {worst:e}");
    }

    #[test]
    fn ln_edges() {
        assert_eq!(ln(1.0), 0.0);
        assert_eq!(ln(0.0), f64::NEG_INFINITY);
        assert_eq!(ln(f64::INFINITY), f64::INFINITY);
        assert!(ln(-1.0).is_nan());
        assert!(ln(f64::NAN).is_nan());
        assert!(ln(f64::NEG_INFINITY).is_nan());
        for x in [5e-324, 1e-310, f64::MIN_POSITIVE, f64::MAX, 2.0, 0.5] {
            assert!((ln(x) / x.ln() - 1.0).abs() < 4e-16, "{x:e}");
        }
    }
}
