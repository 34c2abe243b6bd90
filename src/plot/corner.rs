//! Corner plots: the one- and two-dimensional marginals of posterior samples
//! of a few parameters, on a triangular grid of panels.
//!
//! Diagonal panel `i` shows the histogram of parameter `i` (a step line
//! normalised to its maximum) with its central 68% interval (16th to 84th
//! percentile) shaded and "mean ± std" written above. Panel `(i, j)` below
//! the diagonal shows parameter `j` along x and `i` along y: a 2-D histogram
//! smoothed with a Gaussian kernel of one bin, filled at its 95% (light tint)
//! and 68% (darker tint) highest-density regions. An optional reference set
//! is drawn as outlines of the same regions in a second colour, optional true
//! values as thin lines (with a marker in the 2-D panels).

use std::path::Path;

use super::canvas::{Canvas, Dash, Rect, GLYPH};
use super::colormap::series_color;
use super::ticks::{format_ticks, nice_ticks};
use crate::error::{check_finite, Error, Result};

const WHITE: [u8; 3] = [255, 255, 255];
const BLACK: [u8; 3] = [0, 0, 0];
const TEXT: [u8; 3] = [20, 20, 20];
const LEGEND_EDGE: [u8; 3] = [130, 130, 130];

const PAD: u32 = 14;
const GAP: u32 = 8;
const MAJOR: u32 = 5;
const INNER: u32 = 3;
const MAX_PARAMS: usize = 6;
const MAX_BINS: usize = 1000;
/// Probability masses of the drawn credible regions, outermost first.
const MASSES: [f64; 2] = [0.95, 0.68];
const DASH: Dash = Dash { on: 4.0, off: 3.0 };

/// Posterior samples of `p` parameters as a corner plot.
#[derive(Debug, Clone, PartialEq)]
pub struct CornerPlot<'a> {
    /// Axis labels, one per parameter; their number sets `p` (1 to 6).
    pub names: Vec<String>,
    /// Samples, `[n][p]` row-major, at least two rows.
    pub samples: &'a [f64],
    /// Optional second sample set `[m][p]` (e.g. exact reference draws),
    /// at least two rows, drawn as outlines in another colour.
    pub reference: Option<&'a [f64]>,
    /// Optional true values (`p` of them), drawn as thin lines.
    pub truth: Option<Vec<f64>>,
    /// Title above the grid.
    pub title: Option<String>,
    /// Histogram bins per axis, 5 to 1000.
    pub bins: usize,
}

impl<'a> CornerPlot<'a> {
    /// A plot of `samples` (`[n][names.len()]`) with 40 bins and no
    /// reference, truth or title.
    pub fn new(names: Vec<String>, samples: &'a [f64]) -> Self {
        CornerPlot {
            names,
            samples,
            reference: None,
            truth: None,
            title: None,
            bins: 40,
        }
    }
}

/// The density thresholds enclosing the given probability masses of a
/// histogram (highest-density regions): bin masses sorted in descending
/// order are accumulated, and the threshold of mass `q` is the bin value at
/// which the cumulative sum first reaches `q` times the total. Masses of 1
/// or more give the smallest bin value; an empty or all-zero histogram gives
/// zeros. Negative and non-finite bins count as empty.
pub fn credible_levels(hist: &[f64], masses: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = hist
        .iter()
        .map(|&h| if h.is_finite() && h > 0.0 { h } else { 0.0 })
        .collect();
    v.sort_by(|a, b| b.total_cmp(a));
    let total: f64 = v.iter().sum();
    if v.is_empty() || total <= 0.0 {
        return vec![0.0; masses.len()];
    }
    let mut cum = Vec::with_capacity(v.len());
    let mut acc = 0.0;
    for &x in &v {
        acc += x;
        cum.push(acc);
    }
    masses
        .iter()
        .map(|&q| {
            let target = q * total;
            // Tolerate rounding in the running sum.
            let tol = 1e-12 * total;
            let k = cum
                .iter()
                .position(|&c| c + tol >= target)
                .unwrap_or(v.len() - 1);
            v[k]
        })
        .collect()
}

/// Saves the corner plot as a PNG at `path`.
///
/// Errors: as [`render_corner`], plus [`Error::Io`] if the file cannot be
/// written.
pub fn save_corner(path: &Path, plot: &CornerPlot) -> Result<()> {
    render_corner(plot)?.save_png(path)
}

/// Draws the corner plot into an in-memory canvas: a `p` x `p` grid of
/// square panels (lower triangle and diagonal), about 200 px each for up to
/// three parameters and smaller beyond, ticks and numbers on the bottom row
/// and left column, the names as axis labels, a legend when a reference or
/// truth is given, and the title on top.
///
/// Errors: [`Error::InvalidArgument`] if there are no names or more than six,
/// if `bins` is outside 5..=1000, or if there are fewer than two samples (or
/// reference rows); [`Error::ShapeMismatch`] if `samples` or `reference` is
/// not a whole number of rows of `p` values or `truth` has not `p` values;
/// [`Error::NonFinite`] for a NaN or infinity in any of them.
pub fn render_corner(plot: &CornerPlot) -> Result<Canvas> {
    Ok(render_with_layout(plot)?.0)
}

/// Where the panels of a corner plot landed.
#[derive(Debug, Clone)]
struct Layout {
    /// Side of a panel, in pixels.
    panel: u32,
    /// Top-left corner of panel `(0, 0)`.
    origin: (u32, u32),
    /// Axis limits of each parameter.
    ranges: Vec<(f64, f64)>,
}

impl Layout {
    /// The data area of panel `(row, col)`.
    fn rect(&self, row: usize, col: usize) -> Rect {
        let step = self.panel + GAP;
        Rect::new(
            self.origin.0 + col as u32 * step,
            self.origin.1 + row as u32 * step,
            self.panel,
            self.panel,
        )
    }
}

/// Fractional column of value `v` on a panel spanning `r` with limits `range`.
fn px_x(r: Rect, range: (f64, f64), v: f64) -> f64 {
    let x = f64::from(r.x) + (v - range.0) / (range.1 - range.0) * f64::from(r.w);
    x.clamp(-1e6, 1e6)
}

/// Fractional row of value `v` (increasing upwards) on panel `r`.
fn px_y(r: Rect, range: (f64, f64), v: f64) -> f64 {
    let y = f64::from(r.bottom()) - (v - range.0) / (range.1 - range.0) * f64::from(r.h);
    y.clamp(-1e6, 1e6)
}

/// Pixel boundaries of `bins` equal cells along a side of `len` pixels.
fn cell_edges(len: u32, bins: usize) -> Vec<i64> {
    (0..=bins)
        .map(|k| ((k as f64) * f64::from(len) / bins as f64).round() as i64)
        .collect()
}

/// Mixes `c` with white: `t = 0` gives `c`, `t = 1` white.
fn tint(c: [u8; 3], t: f64) -> [u8; 3] {
    c.map(|v| (f64::from(v) + (255.0 - f64::from(v)) * t).round() as u8)
}

fn main_color() -> [u8; 3] {
    series_color(0)
}
fn ref_color() -> [u8; 3] {
    series_color(1)
}
fn truth_color() -> [u8; 3] {
    series_color(3)
}
/// Fill of the 95% region.
fn fill95() -> [u8; 3] {
    tint(main_color(), 0.72)
}
/// Fill of the 68% region.
fn fill68() -> [u8; 3] {
    tint(main_color(), 0.35)
}

fn validate(plot: &CornerPlot) -> Result<usize> {
    let p = plot.names.len();
    if p == 0 || p > MAX_PARAMS {
        return Err(Error::invalid(
            "names",
            format!("a corner plot needs 1 to {MAX_PARAMS} parameters, got {p}"),
        ));
    }
    if !(5..=MAX_BINS).contains(&plot.bins) {
        return Err(Error::invalid(
            "bins",
            format!("must be in 5..={MAX_BINS}, got {}", plot.bins),
        ));
    }
    let check_set = |name: &'static str, data: &[f64]| -> Result<()> {
        if !data.len().is_multiple_of(p) {
            return Err(Error::shape(
                name,
                format!("[n][{p}]"),
                format!("{} values", data.len()),
            ));
        }
        if data.len() / p < 2 {
            return Err(Error::invalid(
                name,
                format!("need at least 2 rows, got {}", data.len() / p),
            ));
        }
        check_finite(name, data)
    };
    check_set("samples", plot.samples)?;
    if let Some(r) = plot.reference {
        check_set("reference", r)?;
    }
    if let Some(t) = &plot.truth {
        if t.len() != p {
            return Err(Error::shape("truth", p, t.len()));
        }
        check_finite("truth", t)?;
    }
    Ok(p)
}

/// Axis limits of parameter `k`: the union of every value, padded by 5%
/// (widened around the value when all are equal).
fn param_range(plot: &CornerPlot, p: usize, k: usize) -> Result<(f64, f64)> {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    let sets = [Some(plot.samples), plot.reference];
    for set in sets.into_iter().flatten() {
        for row in set.chunks_exact(p) {
            lo = lo.min(row[k]);
            hi = hi.max(row[k]);
        }
    }
    if let Some(t) = &plot.truth {
        lo = lo.min(t[k]);
        hi = hi.max(t[k]);
    }
    let span = hi - lo;
    let (lo, hi) = if span <= 1e-12 * lo.abs().max(hi.abs()) {
        let c = 0.5 * lo + 0.5 * hi;
        let d = if c.abs() < 1e-300 { 1.0 } else { c.abs() * 0.1 };
        (c - d, c + d)
    } else {
        (lo - 0.05 * span, hi + 0.05 * span)
    };
    let (lo, hi) = (lo.max(-f64::MAX), hi.min(f64::MAX));
    if (hi - lo).is_finite() {
        Ok((lo, hi))
    } else {
        Err(Error::invalid(
            "samples",
            format!("the values of parameter {k} span too wide a range to plot"),
        ))
    }
}

/// Ticks and labels of an axis `len` pixels long, as many as fit side by
/// side when written horizontally.
fn axis_ticks(range: (f64, f64), len: u32) -> Vec<(f64, String)> {
    let mut best = Vec::new();
    for target in (2..=5).rev() {
        let (t, step) = nice_ticks(range.0, range.1, target);
        let labels = format_ticks(&t, step);
        let spacing = step / (range.1 - range.0) * f64::from(len);
        let widest = labels
            .iter()
            .map(|l| Canvas::text_width(l, 1))
            .max()
            .unwrap_or(0);
        best = t
            .into_iter()
            .zip(labels)
            .filter(|(v, _)| (range.0..=range.1).contains(v))
            .collect();
        if f64::from(widest + 6) <= spacing {
            break;
        }
    }
    best
}

/// Percentile `q` (0 to 1) of sorted values, interpolating linearly.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let k = (pos.floor() as usize).min(sorted.len() - 1);
    let k1 = (k + 1).min(sorted.len() - 1);
    sorted[k] + (pos - k as f64) * (sorted[k1] - sorted[k])
}

/// Histogram of column `k` of `set` over `range` with `bins` bins.
fn hist1(set: &[f64], p: usize, k: usize, range: (f64, f64), bins: usize) -> Vec<f64> {
    let mut h = vec![0.0; bins];
    let scale = bins as f64 / (range.1 - range.0);
    for row in set.chunks_exact(p) {
        let b = ((row[k] - range.0) * scale).floor();
        if b >= 0.0 && b < bins as f64 {
            h[b as usize] += 1.0;
        } else if row[k] == range.1 {
            h[bins - 1] += 1.0;
        }
    }
    h
}

/// 2-D histogram (`[iy][ix]`, `bins` x `bins`) of columns `kx`, `ky`,
/// smoothed with a Gaussian kernel of one bin.
fn hist2(
    set: &[f64],
    p: usize,
    (kx, rx): (usize, (f64, f64)),
    (ky, ry): (usize, (f64, f64)),
    bins: usize,
) -> Vec<f64> {
    let mut h = vec![0.0; bins * bins];
    let sx = bins as f64 / (rx.1 - rx.0);
    let sy = bins as f64 / (ry.1 - ry.0);
    let last = (bins - 1) as f64;
    for row in set.chunks_exact(p) {
        let bx = ((row[kx] - rx.0) * sx).floor();
        let by = ((row[ky] - ry.0) * sy).floor();
        // Values on the upper limit belong to the last bin.
        let bx = if row[kx] == rx.1 { last } else { bx };
        let by = if row[ky] == ry.1 { last } else { by };
        if (0.0..=last).contains(&bx) && (0.0..=last).contains(&by) {
            h[by as usize * bins + bx as usize] += 1.0;
        }
    }
    smooth(&h, bins)
}

/// Separable Gaussian smoothing (sigma of one bin, truncated at 3 bins) of a
/// square `n` x `n` grid; mass falling outside the grid is dropped.
fn smooth(h: &[f64], n: usize) -> Vec<f64> {
    const R: i64 = 3;
    let w: Vec<f64> = (-R..=R).map(|d| (-0.5 * (d * d) as f64).exp()).collect();
    let norm: f64 = w.iter().sum();
    let w: Vec<f64> = w.iter().map(|v| v / norm).collect();
    let ni = n as i64;
    let mut tmp = vec![0.0; n * n];
    for y in 0..n {
        for x in 0..ni {
            let mut acc = 0.0;
            for d in -R..=R {
                let xx = x + d;
                if (0..ni).contains(&xx) {
                    acc += w[(d + R) as usize] * h[y * n + xx as usize];
                }
            }
            tmp[y * n + x as usize] = acc;
        }
    }
    let mut out = vec![0.0; n * n];
    for y in 0..ni {
        for x in 0..n {
            let mut acc = 0.0;
            for d in -R..=R {
                let yy = y + d;
                if (0..ni).contains(&yy) {
                    acc += w[(d + R) as usize] * tmp[yy as usize * n + x];
                }
            }
            out[y as usize * n + x] = acc;
        }
    }
    out
}

/// Whether cell value `v` lies inside the region of threshold `level`.
fn inside(v: f64, level: f64) -> bool {
    v > 0.0 && v >= level
}

/// Draws `text`, where the character '±' (absent from the basic font) is
/// taken from the Latin-1 page of the same bitmap font.
fn text_pm(canvas: &mut Canvas, cx: i64, y: i64, text: &str, color: [u8; 3]) {
    let w = i64::from(Canvas::text_width(text, 1));
    let mut x = cx - w / 2;
    for ch in text.chars() {
        if ch == '\u{b1}' {
            let glyph = font8x8::legacy::LATIN_LEGACY[0xb1 - 0xa0];
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        canvas.fill_rect(x + col, y + row as i64, 1, 1, color);
                    }
                }
            }
        } else {
            let mut buf = [0u8; 4];
            canvas.text(x, y, ch.encode_utf8(&mut buf), 1, color);
        }
        x += i64::from(GLYPH);
    }
}

/// "mean ± std" with two significant digits of the standard deviation.
fn mean_std_label(mean: f64, std: f64) -> String {
    let big = mean.abs().max(std);
    if big >= 1e5 || (std > 0.0 && std < 1e-4) || (std == 0.0 && big > 0.0 && big < 1e-4) {
        return format!("{mean:.3e} \u{b1} {std:.1e}");
    }
    let decimals = if std > 0.0 {
        (1 - std.log10().floor() as i32).clamp(0, 8) as usize
    } else {
        3
    };
    let m = format!("{mean:.decimals$}");
    // Avoid "-0.00".
    let m = if m
        .trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        m.trim_start_matches('-').to_string()
    } else {
        m
    };
    format!("{m} \u{b1} {std:.decimals$}")
}

fn render_with_layout(plot: &CornerPlot) -> Result<(Canvas, Layout)> {
    let p = validate(plot)?;
    let bins = plot.bins;
    let panel: u32 = match p {
        1..=3 => 200,
        4 => 170,
        5 => 150,
        _ => 130,
    };
    let ranges = (0..p)
        .map(|k| param_range(plot, p, k))
        .collect::<Result<Vec<(f64, f64)>>>()?;
    let ticks: Vec<Vec<(f64, String)>> = ranges.iter().map(|&r| axis_ticks(r, panel)).collect();

    // Margins.
    let ls = if panel >= 170 { 2 } else { 1 };
    let lh = GLYPH * ls;
    let th = GLYPH;
    let ytick_w = (1..p)
        .flat_map(|i| ticks[i].iter().map(|(_, l)| Canvas::text_width(l, 1)))
        .max()
        .unwrap_or(0);
    let left = if p >= 2 {
        PAD + lh + 8 + ytick_w + 4 + MAJOR
    } else {
        PAD + 8
    };
    let has_legend = plot.reference.is_some() || plot.truth.is_some();
    let legend_entries = {
        let mut e = vec!["samples"];
        if plot.reference.is_some() {
            e.push("reference");
        }
        if plot.truth.is_some() {
            e.push("truth");
        }
        e
    };
    let sample_w = 24;
    let row_h = th + 8;
    let legend_w = 10 + sample_w + 8 + Canvas::text_width("reference", 1) + 10;
    let legend_h = 8 + row_h * legend_entries.len() as u32;
    let title_h = if plot.title.is_some() {
        2 * GLYPH + 10
    } else {
        0
    };
    let top = PAD + title_h + th + 6;
    let bottom = MAJOR + 4 + th + 8 + lh + PAD;
    let right = PAD
        + 24
        + if p == 1 && has_legend {
            legend_w + 8
        } else {
            0
        };
    let grid = p as u32 * panel + (p as u32 - 1) * GAP;
    let width = left + grid + right;
    let height = top + grid + bottom;
    let layout = Layout {
        panel,
        origin: (left, top),
        ranges,
    };
    let ranges = &layout.ranges;
    let mut canvas = Canvas::new(width, height, WHITE)?;

    let main = main_color();
    let refc = ref_color();
    let truthc = truth_color();
    let sample_rows = plot.samples.len() / p;

    // Diagonal panels.
    for i in 0..p {
        let r = layout.rect(i, i);
        let range = ranges[i];
        let h = hist1(plot.samples, p, i, range, bins);
        let hmax = h.iter().fold(0.0f64, |m, &v| m.max(v)).max(1.0);
        let edges = cell_edges(r.w, bins);
        let bar_top = |v: f64, m: f64| -> i64 {
            let frac = v / m / 1.1;
            i64::from(r.bottom()) - (frac * f64::from(r.h)).round() as i64
        };

        let mut col: Vec<f64> = plot.samples.chunks_exact(p).map(|row| row[i]).collect();
        col.sort_by(f64::total_cmp);
        let (q16, q84) = (percentile(&col, 0.16), percentile(&col, 0.84));
        let mean = col.iter().map(|v| v / sample_rows as f64).sum::<f64>();
        let var =
            col.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (sample_rows - 1) as f64;
        let std = var.max(0.0).sqrt();

        canvas.set_clip(Some(r));
        // Shade the 68% interval under the histogram.
        let (s0, s1) = (
            px_x(r, range, q16).round() as i64,
            px_x(r, range, q84).round() as i64,
        );
        let shade = fill95();
        for k in 0..bins {
            let (x0, x1) = (i64::from(r.x) + edges[k], i64::from(r.x) + edges[k + 1]);
            let (a, b) = (x0.max(s0), x1.min(s1 + 1));
            if b > a && h[k] > 0.0 {
                let y = bar_top(h[k], hmax);
                canvas.fill_rect(a, y, b - a, i64::from(r.bottom()) - y, shade);
            }
        }
        for q in [q16, q84] {
            let x = px_x(r, range, q);
            canvas.polyline(
                &[(x, f64::from(r.y)), (x, f64::from(r.bottom()))],
                1,
                Some(DASH),
                main,
            );
        }
        if let Some(rset) = plot.reference {
            let hr = hist1(rset, p, i, range, bins);
            let m = hr.iter().fold(0.0f64, |m, &v| m.max(v)).max(1.0);
            draw_steps(&mut canvas, r, &edges, &hr, m, refc, &bar_top);
        }
        draw_steps(&mut canvas, r, &edges, &h, hmax, main, &bar_top);
        if let Some(t) = &plot.truth {
            let x = px_x(r, range, t[i]);
            canvas.line((x, f64::from(r.y)), (x, f64::from(r.bottom())), 1, truthc);
        }
        canvas.set_clip(None);
        text_pm(
            &mut canvas,
            i64::from(r.x + r.w / 2),
            i64::from(r.y) - i64::from(th) - 5,
            &mean_std_label(mean, std),
            TEXT,
        );
    }

    // Lower panels: parameter j along x, i along y.
    for i in 1..p {
        for j in 0..i {
            let r = layout.rect(i, j);
            let (rx, ry) = (ranges[j], ranges[i]);
            let ex = cell_edges(r.w, bins);
            let ey = cell_edges(r.h, bins);
            // Cell (ix, iy) covers columns x0..x1 and rows y1..y0 (y up).
            let cell = |ix: usize, iy: usize| -> (i64, i64, i64, i64) {
                (
                    i64::from(r.x) + ex[ix],
                    i64::from(r.x) + ex[ix + 1],
                    i64::from(r.bottom()) - ey[iy],
                    i64::from(r.bottom()) - ey[iy + 1],
                )
            };
            canvas.set_clip(Some(r));
            let h = hist2(plot.samples, p, (j, rx), (i, ry), bins);
            let levels = credible_levels(&h, &MASSES);
            for (level, color) in levels.iter().zip([fill95(), fill68()]) {
                for iy in 0..bins {
                    for ix in 0..bins {
                        if inside(h[iy * bins + ix], *level) {
                            let (x0, x1, y0, y1) = cell(ix, iy);
                            canvas.fill_rect(x0, y1, x1 - x0, y0 - y1, color);
                        }
                    }
                }
            }
            if let Some(rset) = plot.reference {
                let hr = hist2(rset, p, (j, rx), (i, ry), bins);
                let levels = credible_levels(&hr, &MASSES);
                for (level, w) in levels.iter().zip([1i64, 2]) {
                    let inn = |ix: i64, iy: i64| -> bool {
                        ix >= 0
                            && iy >= 0
                            && (ix as usize) < bins
                            && (iy as usize) < bins
                            && inside(hr[iy as usize * bins + ix as usize], *level)
                    };
                    for iy in 0..bins as i64 {
                        for ix in 0..bins as i64 {
                            let here = inn(ix, iy);
                            let (x0, x1, y0, y1) = cell(ix as usize, iy as usize);
                            // Left edge.
                            if here != inn(ix - 1, iy) {
                                canvas.fill_rect(x0 - w / 2, y1 - w / 2, w, y0 - y1 + w, refc);
                            }
                            // Bottom edge.
                            if here != inn(ix, iy - 1) {
                                canvas.fill_rect(x0 - w / 2, y0 - w / 2, x1 - x0 + w, w, refc);
                            }
                            if here && ix as usize == bins - 1 {
                                canvas.fill_rect(x1 - w / 2, y1 - w / 2, w, y0 - y1 + w, refc);
                            }
                            if here && iy as usize == bins - 1 {
                                canvas.fill_rect(x0 - w / 2, y1 - w / 2, x1 - x0 + w, w, refc);
                            }
                        }
                    }
                }
            }
            if let Some(t) = &plot.truth {
                let (x, y) = (px_x(r, rx, t[j]), px_y(r, ry, t[i]));
                let (l, rr) = (f64::from(r.x), f64::from(r.right()));
                let (tp, bt) = (f64::from(r.y), f64::from(r.bottom()));
                canvas.line((x, tp), (x, bt), 1, truthc);
                canvas.line((l, y), (rr, y), 1, truthc);
                canvas.disc(x, y, 3.0, truthc);
            }
            canvas.set_clip(None);
        }
    }

    // Frames, inner ticks, tick labels and axis labels.
    for i in 0..p {
        for j in 0..=i {
            let r = layout.rect(i, j);
            canvas.stroke_rect(Rect::new(r.x - 1, r.y - 1, r.w + 2, r.h + 2), BLACK);
            let below = i64::from(r.bottom());
            for (v, label) in &ticks[j] {
                let c = px_x(r, ranges[j], *v).round() as i64;
                canvas.fill_rect(c, below - i64::from(INNER), 1, i64::from(INNER), BLACK);
                if i == p - 1 {
                    canvas.fill_rect(c, below + 1, 1, i64::from(MAJOR), BLACK);
                    canvas.text_centered(c, below + i64::from(MAJOR) + 4, label, 1, TEXT);
                }
            }
            if i != j {
                let leftx = i64::from(r.x) - 1;
                for (v, label) in &ticks[i] {
                    let row = px_y(r, ranges[i], *v).round() as i64;
                    canvas.fill_rect(leftx + 1, row, i64::from(INNER), 1, BLACK);
                    if j == 0 {
                        canvas.fill_rect(leftx - i64::from(MAJOR), row, i64::from(MAJOR), 1, BLACK);
                        let w = i64::from(Canvas::text_width(label, 1));
                        canvas.text(
                            leftx - i64::from(MAJOR) - 4 - w,
                            row - i64::from(th) / 2 + 1,
                            label,
                            1,
                            TEXT,
                        );
                    }
                }
            }
        }
    }
    for (k, name) in plot.names.iter().enumerate() {
        let r = layout.rect(p - 1, k);
        let s = if Canvas::text_width(name, ls) <= panel {
            ls
        } else {
            1
        };
        let y = i64::from(r.bottom() + MAJOR + 4 + th + 8);
        canvas.text_centered(i64::from(r.x + r.w / 2), y, name, s, TEXT);
        if k >= 1 {
            let r = layout.rect(k, 0);
            canvas.text_vertical(i64::from(PAD), i64::from(r.y + r.h / 2), name, s, TEXT);
        }
    }
    if let Some(title) = &plot.title {
        let s = if Canvas::text_width(title, 2) + 2 * PAD <= width {
            2
        } else {
            1
        };
        canvas.text_centered(i64::from(width / 2), i64::from(PAD), title, s, TEXT);
    }

    // Legend: in the empty upper-right corner of the grid, or to the right
    // of a single panel.
    if has_legend {
        let (lx, ly) = if p == 1 {
            let r = layout.rect(0, 0);
            (r.right() + 16, r.y)
        } else {
            let r = layout.rect(0, p - 1);
            (r.right().saturating_sub(legend_w), r.y)
        };
        let rect = Rect::new(lx, ly, legend_w, legend_h);
        let (rx, ry) = (i64::from(lx), i64::from(ly));
        canvas.stroke_rect(rect, LEGEND_EDGE);
        for (k, label) in legend_entries.iter().enumerate() {
            let top = ry + 4 + i64::from(row_h) * k as i64;
            let mid = top + i64::from(row_h) / 2;
            let (a, b) = (rx + 10, rx + 10 + i64::from(sample_w));
            match *label {
                "samples" => {
                    canvas.fill_rect(a, mid - 5, b - a, 10, fill68());
                    canvas.fill_rect(a, mid - 5, b - a, 2, main);
                }
                "reference" => canvas.fill_rect(a, mid - 1, b - a, 2, refc),
                _ => {
                    canvas.line((a as f64, mid as f64), (b as f64, mid as f64), 1, truthc);
                    canvas.disc((a + b) as f64 / 2.0, mid as f64, 3.0, truthc);
                }
            }
            canvas.text(b + 8, top + 4, label, 1, TEXT);
        }
    }
    Ok((canvas, layout))
}

/// Draws a histogram as a step line (heights relative to `max`).
fn draw_steps(
    canvas: &mut Canvas,
    r: Rect,
    edges: &[i64],
    h: &[f64],
    max: f64,
    color: [u8; 3],
    bar_top: &dyn Fn(f64, f64) -> i64,
) {
    let base = f64::from(r.bottom());
    let x0 = f64::from(r.x);
    let mut pts = vec![(x0 + edges[0] as f64, base)];
    for (k, &v) in h.iter().enumerate() {
        let y = bar_top(v, max) as f64;
        pts.push((x0 + edges[k] as f64, y));
        pts.push((x0 + edges[k + 1] as f64, y));
    }
    pts.push((x0 + edges[h.len()] as f64, base));
    canvas.polyline(&pts, 2, None, color);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Philox, Stream};

    /// `n` draws of a 2-D Gaussian with unit variances and correlation `rho`.
    fn correlated(n: usize, rho: f64, seed: u64) -> Vec<f64> {
        let mut z = vec![0.0; 2 * n];
        Philox::new(seed, Stream::Sampler, 0, 0).fill_normal_f64(&mut z);
        let c = (1.0 - rho * rho).sqrt();
        let mut out = Vec::with_capacity(2 * n);
        for row in z.chunks_exact(2) {
            out.push(row[0]);
            out.push(rho * row[0] + c * row[1]);
        }
        out
    }

    fn names(p: usize) -> Vec<String> {
        (0..p).map(|k| format!("theta_{k}")).collect()
    }

    #[test]
    fn credible_levels_of_known_histograms() {
        let l = credible_levels(&[0.15, 0.5, 0.05, 0.3], &[0.68, 0.95]);
        assert_eq!(l, [0.3, 0.15]);
        // Unnormalised, same shape: the same relative thresholds.
        let l = credible_levels(&[30.0, 100.0, 10.0, 60.0], &[0.68, 0.95, 0.4, 1.0]);
        assert_eq!(l, [60.0, 30.0, 100.0, 10.0]);
        assert_eq!(credible_levels(&[], &[0.5]), [0.0]);
        assert_eq!(credible_levels(&[0.0, 0.0], &[0.5]), [0.0]);
    }

    #[test]
    fn renders_correlated_gaussian_with_truth_and_reference() {
        let n = 4000;
        let s = correlated(n, 0.7, 1);
        let reference = correlated(n, 0.7, 2);
        let mut plot = CornerPlot::new(vec!["Omega_m".into(), "sigma_8".into()], &s);
        plot.reference = Some(&reference);
        plot.truth = Some(vec![0.4, -0.3]);
        plot.title = Some("posterior".into());
        let (c, layout) = render_with_layout(&plot).unwrap();

        // Two 200 px panels plus margins.
        assert_eq!(layout.panel, 200);
        let last = layout.rect(1, 1);
        assert!(c.width >= last.right() && c.width < last.right() + 80);
        assert!(c.height >= last.bottom() && c.height < last.bottom() + 80);
        assert!(c.width >= 2 * 200 + GAP && c.height >= 2 * 200 + GAP);
        assert_eq!(c.width, last.right() + PAD + 24);
        assert_eq!(c.height, last.bottom() + MAJOR + 4 + 3 * GLYPH + 8 + PAD);
        assert_eq!(last.x - layout.rect(1, 0).x, 200 + GAP);

        // The 2-D panel: the mean is inside the 68% region, a far corner is
        // empty (the correlation runs from lower left to upper right).
        let r = layout.rect(1, 0);
        let (rx, ry) = (layout.ranges[0], layout.ranges[1]);
        let mx = s.chunks_exact(2).map(|v| v[0]).sum::<f64>() / n as f64;
        let my = s.chunks_exact(2).map(|v| v[1]).sum::<f64>() / n as f64;
        let (cx, cy) = (px_x(r, rx, mx) as u32, px_y(r, ry, my) as u32);
        assert_eq!(c.get(cx, cy), Some(fill68()));
        assert_eq!(c.get(r.x + 4, r.y + 4), Some(WHITE));
        // Both fills and the reference outline appear in the panel.
        let count = |color: [u8; 3], r: Rect| {
            (r.y..r.bottom())
                .flat_map(|y| (r.x..r.right()).map(move |x| (x, y)))
                .filter(|&(x, y)| c.get(x, y) == Some(color))
                .count()
        };
        assert!(count(fill95(), r) > 100);
        assert!(count(ref_color(), r) > 100);
        assert!(count(truth_color(), r) > 100);
        // The diagonal panels hold the histogram.
        for k in 0..2 {
            assert!(count(main_color(), layout.rect(k, k)) > 100, "panel {k}");
        }
        // The upper triangle holds nothing but the legend (at its top).
        let e = layout.rect(0, 1);
        let empty = Rect::new(e.x, e.y + e.h / 2, e.w, e.h / 2);
        assert_eq!(count(main_color(), empty), 0);
        assert_eq!(count(fill68(), empty), 0);

        let path = std::env::temp_dir().join(format!("lensdiff_corner_{}.png", std::process::id()));
        save_corner(&path, &plot).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    }

    #[test]
    fn bad_inputs_are_errors() {
        let s = correlated(10, 0.0, 3);
        let ok = CornerPlot::new(names(2), &s);
        assert!(render_corner(&ok).is_ok());

        let none: Vec<f64> = Vec::new();
        assert!(render_corner(&CornerPlot::new(Vec::new(), &none)).is_err());
        let seven = vec![0.0; 14];
        assert!(render_corner(&CornerPlot::new(names(7), &seven)).is_err());
        // Three names for two-column samples of length 20: not a multiple.
        assert!(render_corner(&CornerPlot::new(names(3), &s)).is_err());
        let odd = &s[..19];
        assert!(render_corner(&CornerPlot::new(names(2), odd)).is_err());
        let one_row = &s[..2];
        assert!(render_corner(&CornerPlot::new(names(2), one_row)).is_err());
        let mut nan = s.clone();
        nan[5] = f64::NAN;
        assert!(matches!(
            render_corner(&CornerPlot::new(names(2), &nan)),
            Err(Error::NonFinite { index: 5, .. })
        ));
        let mut inf = s.clone();
        inf[0] = f64::INFINITY;
        assert!(render_corner(&CornerPlot::new(names(2), &inf)).is_err());

        let bad_ref = vec![0.0; 5];
        let mut p = ok.clone();
        p.reference = Some(&bad_ref);
        assert!(matches!(
            render_corner(&p),
            Err(Error::ShapeMismatch { .. })
        ));
        let mut p = ok.clone();
        p.reference = Some(&nan);
        assert!(render_corner(&p).is_err());

        let mut p = ok.clone();
        p.truth = Some(vec![0.0]);
        assert!(matches!(
            render_corner(&p),
            Err(Error::ShapeMismatch { .. })
        ));
        let mut p = ok.clone();
        p.truth = Some(vec![0.0, f64::NAN]);
        assert!(render_corner(&p).is_err());

        for bins in [0, 4, MAX_BINS + 1] {
            let mut p = ok.clone();
            p.bins = bins;
            assert!(render_corner(&p).is_err(), "bins {bins}");
        }
        let path = std::env::temp_dir()
            .join("no_such_dir_lensdiff")
            .join("x.png");
        assert!(matches!(save_corner(&path, &ok), Err(Error::Io { .. })));
    }

    #[test]
    fn one_and_four_parameters_render() {
        let mut z = vec![0.0; 500];
        Philox::new(4, Stream::Sampler, 0, 0).fill_normal_f64(&mut z);
        let mut plot = CornerPlot::new(names(1), &z);
        plot.truth = Some(vec![0.1]);
        let (c, layout) = render_with_layout(&plot).unwrap();
        assert_eq!(layout.panel, 200);
        let r = layout.rect(0, 0);
        assert!(c.width > r.right() && c.height > r.bottom());
        let hist = (r.y..r.bottom())
            .flat_map(|y| (r.x..r.right()).map(move |x| (x, y)))
            .filter(|&(x, y)| c.get(x, y) == Some(main_color()))
            .count();
        assert!(hist > 100);

        let mut z = vec![0.0; 4 * 1000];
        Philox::new(5, Stream::Sampler, 0, 0).fill_normal_f64(&mut z);
        for (k, v) in z.iter_mut().enumerate() {
            // Different scales per parameter, and a shift.
            *v = *v * 10f64.powi(k as i32 % 4 - 2) + (k % 4) as f64;
        }
        let (c, layout) = render_with_layout(&CornerPlot::new(names(4), &z)).unwrap();
        assert_eq!(layout.panel, 170);
        assert!(c.width > 4 * 170 && c.height > 4 * 170);
    }

    #[test]
    fn degenerate_samples_still_render() {
        let s = vec![1.5; 20];
        let mut plot = CornerPlot::new(names(2), &s);
        plot.truth = Some(vec![1.5, 1.5]);
        plot.reference = Some(&s);
        let (c, layout) = render_with_layout(&plot).unwrap();
        let (lo, hi) = layout.ranges[0];
        assert!(lo < 1.5 && hi > 1.5);
        assert!(c.width > 0);
        let zeros = vec![0.0; 20];
        assert!(render_corner(&CornerPlot::new(names(2), &zeros)).is_ok());
        // Extreme magnitudes: drawn, or a typed error, never a panic.
        for v in [1e-320, 1e-300, 1e300, f64::MAX, -f64::MAX] {
            let s = vec![v; 20];
            assert!(render_corner(&CornerPlot::new(names(2), &s)).is_ok(), "{v}");
        }
        let wide = vec![f64::MAX, -f64::MAX, 0.0, 1.0];
        assert!(render_corner(&CornerPlot::new(names(2), &wide)).is_err());
        let spread = vec![1e300, -1e300, 1e-300, -1e-300];
        assert!(render_corner(&CornerPlot::new(names(2), &spread)).is_ok());
    }

    #[test]
    fn mean_std_labels() {
        assert_eq!(mean_std_label(0.3123, 0.0456), "0.312 \u{b1} 0.046");
        assert_eq!(mean_std_label(-0.0001, 0.25), "0.00 \u{b1} 0.25");
        assert_eq!(mean_std_label(812.0, 31.0), "812 \u{b1} 31");
        assert!(mean_std_label(1e6, 10.0).contains('e'));
    }
}
