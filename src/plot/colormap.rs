//! Colour maps for images and the palette for line series.
//!
//! The gradients come from the `colorous` crate: `Viridis`, `Magma`,
//! `Inferno` and `Cividis` are the perceptually uniform maps of matplotlib's
//! viridis family; `RdBu` and `Greys` are the ColorBrewer diverging and
//! single-hue maps (as in matplotlib's `RdBu` and `Greys`).

/// A colour map from a value in `[0, 1]` to an RGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorMap {
    /// Perceptually uniform, dark blue -> green -> yellow (matplotlib's default).
    #[default]
    Viridis,
    /// Perceptually uniform, black -> purple -> pale yellow.
    Magma,
    /// Perceptually uniform, black -> red -> pale yellow.
    Inferno,
    /// Perceptually uniform and colour-vision-deficiency friendly, blue -> yellow.
    Cividis,
    /// Diverging red -> white -> blue, for signed maps such as kappa
    /// residuals; the low end is red, the middle white, the high end blue.
    RdBu,
    /// White -> black.
    Greys,
}

impl ColorMap {
    /// The colour at `t`, clamped to `[0, 1]`; NaN maps to the middle.
    pub fn eval(self, t: f64) -> [u8; 3] {
        let t = if t.is_nan() { 0.5 } else { t.clamp(0.0, 1.0) };
        let g = match self {
            ColorMap::Viridis => colorous::VIRIDIS,
            ColorMap::Magma => colorous::MAGMA,
            ColorMap::Inferno => colorous::INFERNO,
            ColorMap::Cividis => colorous::CIVIDIS,
            ColorMap::RdBu => colorous::RED_BLUE,
            ColorMap::Greys => colorous::GREYS,
        };
        g.eval_continuous(t).as_array()
    }

    /// Whether the map is diverging (meant to be centred on zero).
    pub fn is_diverging(self) -> bool {
        matches!(self, ColorMap::RdBu)
    }
}

/// Colour of series `i` in line plots: matplotlib's ten "tab10" colours (via
/// `colorous::CATEGORY10`), all distinct and legible on white, repeating
/// after ten.
pub fn series_color(i: usize) -> [u8; 3] {
    colorous::CATEGORY10[i % colorous::CATEGORY10.len()].as_array()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_and_clamping() {
        for cmap in [
            ColorMap::Viridis,
            ColorMap::Magma,
            ColorMap::Inferno,
            ColorMap::Cividis,
            ColorMap::RdBu,
            ColorMap::Greys,
        ] {
            assert_eq!(cmap.eval(-3.0), cmap.eval(0.0));
            assert_eq!(cmap.eval(7.0), cmap.eval(1.0));
            assert_ne!(cmap.eval(0.0), cmap.eval(1.0));
        }
        // Greys runs light to dark.
        assert!(ColorMap::Greys.eval(0.0)[0] > ColorMap::Greys.eval(1.0)[0]);
        // RdBu: red low, near-white middle, blue high.
        let lo = ColorMap::RdBu.eval(0.0);
        let mid = ColorMap::RdBu.eval(0.5);
        let hi = ColorMap::RdBu.eval(1.0);
        assert!(lo[0] > lo[2] && hi[2] > hi[0]);
        assert!(mid.iter().all(|&c| c > 220));
    }

    #[test]
    fn palette_is_distinct_and_not_white() {
        for i in 0..10 {
            let c = series_color(i);
            assert!(c.iter().map(|&v| u32::from(v)).sum::<u32>() < 600);
            for j in 0..i {
                assert_ne!(c, series_color(j));
            }
        }
        assert_eq!(series_color(0), series_color(10));
    }
}
