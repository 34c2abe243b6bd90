//! Tick placement and tick-label formatting shared by colour bars and axes.

/// "Nice" tick positions (1, 2, 2.5 or 5 times a power of ten apart) inside
/// `[lo, hi]`, about `target` of them, and their spacing.
pub(crate) fn nice_ticks(lo: f64, hi: f64, target: usize) -> (Vec<f64>, f64) {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return (Vec::new(), 1.0);
    }
    let raw = (hi - lo) / target.max(2) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let step = mag
        * if norm < 1.5 {
            1.0
        } else if norm < 2.25 {
            2.0
        } else if norm < 3.5 {
            2.5
        } else if norm < 7.5 {
            5.0
        } else {
            10.0
        };
    let eps = step * 1e-9;
    let first = (lo / step - 1e-9).ceil() as i64;
    let mut ticks = Vec::new();
    let mut k = first;
    loop {
        let v = k as f64 * step;
        if v > hi + eps || ticks.len() > 100 {
            break;
        }
        // Snap values that are zero up to rounding.
        ticks.push(if v.abs() < eps { 0.0 } else { v });
        k += 1;
    }
    (ticks, step)
}

/// Labels for ticks spaced `step` apart: fixed-point with just enough
/// decimals ("0.25", "-10") for moderate magnitudes, otherwise scientific
/// ("1.5e-4", "2e6"); zero is always "0".
pub(crate) fn format_ticks(ticks: &[f64], step: f64) -> Vec<String> {
    let maxabs = ticks.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let step_exp = step.abs().log10().floor() as i32;
    // Decimals needed so that every multiple of `step` prints exactly.
    let decimals = (0..=12)
        .find(|&d| {
            let s = step * 10f64.powi(d);
            (s - s.round()).abs() < 1e-6 * s.abs().max(1.0)
        })
        .unwrap_or(12) as usize;
    let scientific = maxabs >= 1e5 || step_exp < -3;
    ticks
        .iter()
        .map(|&v| {
            if v == 0.0 {
                return "0".to_string();
            }
            if scientific {
                let v_exp = v.abs().log10().floor() as i32;
                let digits = (v_exp - step_exp + i32::from(decimals as i32 > -step_exp)).clamp(0, 6)
                    as usize;
                let s = format!("{v:.digits$e}");
                trim_mantissa(&s)
            } else {
                format!("{v:.decimals$}")
            }
        })
        .collect()
}

/// Removes trailing zeros of the mantissa: "1.50e-3" -> "1.5e-3", "2.0e4" -> "2e4".
fn trim_mantissa(s: &str) -> String {
    match s.split_once('e') {
        Some((m, e)) if m.contains('.') => {
            let m = m.trim_end_matches('0').trim_end_matches('.');
            format!("{m}e{e}")
        }
        _ => s.to_string(),
    }
}

/// Label of the decade tick `10^k` on a log axis: "1e2", "1e0", "1e-9".
pub(crate) fn decade_label(k: i32) -> String {
    format!("1e{k}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ticks_cover_range() {
        let (t, s) = nice_ticks(0.0, 1.0, 5);
        assert_eq!(s, 0.2);
        assert_eq!(t.len(), 6);
        assert_eq!(
            format_ticks(&t, s),
            ["0", "0.2", "0.4", "0.6", "0.8", "1.0"]
        );
        let (t, s) = nice_ticks(-0.037, 0.052, 5);
        assert!(t.iter().all(|&v| (-0.037..=0.052).contains(&v)));
        assert!(t.contains(&0.0));
        let labels = format_ticks(&t, s);
        assert!(labels.contains(&"0".to_string()), "{labels:?}");
        assert!(labels.iter().all(|l| !l.starts_with("-0.00")));
        assert!(nice_ticks(1.0, 1.0, 5).0.is_empty());
        assert!(nice_ticks(f64::NAN, 1.0, 5).0.is_empty());
    }

    #[test]
    fn scientific_for_tiny_and_huge() {
        let (t, s) = nice_ticks(1e-5, 5e-5, 4);
        let l = format_ticks(&t, s);
        assert!(l.iter().all(|x| x.contains('e')), "{l:?}");
        assert!(l.contains(&"2e-5".to_string()), "{l:?}");
        let (t, s) = nice_ticks(0.0, 3e6, 3);
        let l = format_ticks(&t, s);
        assert!(l.contains(&"1e6".to_string()), "{l:?}");
        let l = format_ticks(&[2.5e-5, 5e-5, 7.5e-5, 1.25e-4], 2.5e-5);
        assert_eq!(l, ["2.5e-5", "5e-5", "7.5e-5", "1.25e-4"]);
    }

    #[test]
    fn decade_labels() {
        assert_eq!(decade_label(2), "1e2");
        assert_eq!(decade_label(-9), "1e-9");
        assert_eq!(decade_label(0), "1e0");
    }
}
