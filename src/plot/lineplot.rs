//! Line plots with linear or logarithmic axes, for power spectra and the like.
//!
//! Log axes span whole decades, with a major tick and a label ("1e2",
//! "1e-9") at each decade (every n-th one when there are many) and minor
//! ticks at 2..9 times each decade; linear axes get "nice" ticks (1, 2, 2.5
//! or 5 times a power of ten apart). A point is skipped when either
//! coordinate is non-finite or, on a log axis, not positive; lines are broken
//! at skipped points.

use std::path::Path;

use super::canvas::{Canvas, Dash, Rect, GLYPH};
use super::ticks::{decade_label, format_ticks, nice_ticks};
use crate::error::{Error, Result};

const WHITE: [u8; 3] = [255, 255, 255];
const BLACK: [u8; 3] = [0, 0, 0];
const TEXT: [u8; 3] = [20, 20, 20];
const GRID: [u8; 3] = [228, 228, 228];
const LEGEND_EDGE: [u8; 3] = [130, 130, 130];

const PAD: u32 = 14;
const MAJOR: u32 = 6;
const MINOR: u32 = 3;
const LINE_W: u32 = 2;
const POINT_R: f64 = 3.0;
const DASH: Dash = Dash { on: 9.0, off: 6.0 };
/// Largest accepted side of a line plot, in pixels.
const MAX_SIZE: u32 = 8192;

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineStyle {
    /// A continuous line through the points.
    #[default]
    Solid,
    /// A dashed line through the points.
    Dashed,
    /// A filled dot at each point, no line.
    Points,
}

/// One curve of a [`LinePlot`].
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend entry (series with an empty label are left out of the legend).
    pub label: String,
    /// Abscissae.
    pub x: Vec<f64>,
    /// Ordinates, as many as `x`.
    pub y: Vec<f64>,
    /// Line or point style.
    pub style: LineStyle,
    /// RGB colour; [`series_color`](super::series_color) gives a palette.
    pub color: [u8; 3],
}

/// A line plot: axes, ticks, labels, legend and any number of series.
#[derive(Debug, Clone, PartialEq)]
pub struct LinePlot {
    /// Title above the axes (may be empty).
    pub title: String,
    /// Label under the x axis (may be empty).
    pub xlabel: String,
    /// Label along the y axis, written bottom to top (may be empty).
    pub ylabel: String,
    /// Logarithmic x axis.
    pub logx: bool,
    /// Logarithmic y axis.
    pub logy: bool,
    /// The curves, drawn in order (later ones on top).
    pub series: Vec<Series>,
    /// Image size `(width, height)` in pixels, each between 160 and 8192.
    pub size: (u32, u32),
}

impl Default for LinePlot {
    /// An empty 800 x 560 plot with linear axes.
    fn default() -> Self {
        LinePlot {
            title: String::new(),
            xlabel: String::new(),
            ylabel: String::new(),
            logx: false,
            logy: false,
            series: Vec::new(),
            size: (800, 560),
        }
    }
}

/// Where the axes of a plot drawn by [`render_lineplot_with_layout`] landed.
#[derive(Debug, Clone, PartialEq)]
pub struct LinePlotLayout {
    /// The data area inside the axes frame.
    pub plot_area: Rect,
    /// Data limits along x, in data units (not logarithms).
    pub x_range: (f64, f64),
    /// Data limits along y, in data units.
    pub y_range: (f64, f64),
    /// Whether x is logarithmic.
    pub logx: bool,
    /// Whether y is logarithmic.
    pub logy: bool,
    /// The legend box, if one was drawn.
    pub legend: Option<Rect>,
}

impl LinePlotLayout {
    /// Canvas position (column, row; fractional) of data point `(x, y)`, or
    /// `None` if it cannot be shown (non-finite, or not positive on a log axis).
    pub fn to_pixel(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        let ax = Axis::from_range(self.x_range, self.logx);
        let ay = Axis::from_range(self.y_range, self.logy);
        let a = self.plot_area;
        let fx = ax.frac(x)?;
        let fy = ay.frac(y)?;
        Some((
            f64::from(a.x) + fx * f64::from(a.w - 1),
            f64::from(a.y) + (1.0 - fy) * f64::from(a.h - 1),
        ))
    }
}

/// One axis: its limits in transformed units (log10 for a log axis).
#[derive(Debug, Clone, Copy)]
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Axis {
    fn from_range(r: (f64, f64), log: bool) -> Self {
        if log {
            Axis {
                lo: r.0.log10(),
                hi: r.1.log10(),
                log,
            }
        } else {
            Axis {
                lo: r.0,
                hi: r.1,
                log,
            }
        }
    }

    fn range(&self) -> (f64, f64) {
        if self.log {
            (10f64.powf(self.lo), 10f64.powf(self.hi))
        } else {
            (self.lo, self.hi)
        }
    }

    /// Value in transformed units, if showable.
    fn transform(log: bool, v: f64) -> Option<f64> {
        if !v.is_finite() || (log && v <= 0.0) {
            None
        } else if log {
            Some(v.log10())
        } else {
            Some(v)
        }
    }

    /// Position of `v` as a fraction of the axis length.
    fn frac(&self, v: f64) -> Option<f64> {
        Axis::transform(self.log, v).map(|t| self.frac_t(t))
    }

    fn frac_t(&self, t: f64) -> f64 {
        (t - self.lo) / (self.hi - self.lo)
    }

    /// Limits fitting the transformed values `t` (whole decades on a log axis,
    /// 5% margins on a linear one).
    fn fit(t: &[f64], log: bool) -> Self {
        let (mut lo, mut hi) = t
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        if t.is_empty() {
            (lo, hi) = (0.0, 1.0);
        } else if log {
            // Tolerate rounding: 1e3 must not open the decade above.
            (lo, hi) = ((lo + 1e-9).floor(), (hi - 1e-9).ceil());
            if lo == hi {
                (lo, hi) = (lo - 1.0, hi + 1.0);
            }
        } else if lo == hi {
            let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
            (lo, hi) = (lo - d, hi + d);
        } else {
            let m = 0.05 * (hi - lo);
            (lo, hi) = (lo - m, hi + m);
        }
        Axis { lo, hi, log }
    }

    /// Major ticks (transformed position, label) and minor tick positions.
    fn ticks(&self) -> (Vec<(f64, String)>, Vec<f64>) {
        if self.log {
            let (k0, k1) = (self.lo.round() as i64, self.hi.round() as i64);
            let ndec = (k1 - k0).max(1);
            let stride = (ndec as f64 / 8.0).ceil().max(1.0) as i64;
            let major = (k0..=k1)
                .filter(|k| k.rem_euclid(stride) == 0)
                .map(|k| (k as f64, decade_label(k as i32)))
                .collect();
            let mut minor = Vec::new();
            if stride == 1 {
                for k in k0..k1 {
                    for m in 2..10 {
                        minor.push(k as f64 + f64::from(m).log10());
                    }
                }
            }
            (major, minor)
        } else {
            let (t, step) = nice_ticks(self.lo, self.hi, 6);
            let labels = format_ticks(&t, step);
            (t.into_iter().zip(labels).collect(), Vec::new())
        }
    }
}

/// Saves a line plot as a PNG at `path`: axes with ticks and tick labels
/// (decade ticks labelled like "1e2" or "1e-9" on log axes, "nice" linear
/// ticks otherwise), light grid lines, axis labels, a title and a legend
/// placed in the emptiest corner. Points with a non-finite coordinate, or a
/// non-positive one on a log axis, are skipped.
///
/// Errors: [`Error::ShapeMismatch`] if a series has `x.len() != y.len()`;
/// [`Error::InvalidArgument`] if a side of `size` is outside 160..=8192;
/// [`Error::Io`] if the file cannot be written.
pub fn save_lineplot(path: &Path, plot: &LinePlot) -> Result<()> {
    render_lineplot(plot)?.save_png(path)
}

/// Draws the plot of [`save_lineplot`] into an in-memory canvas.
pub fn render_lineplot(plot: &LinePlot) -> Result<Canvas> {
    Ok(render_lineplot_with_layout(plot)?.0)
}

/// Like [`render_lineplot`], also returning where the axes landed (for tests
/// and for placing annotations).
pub fn render_lineplot_with_layout(plot: &LinePlot) -> Result<(Canvas, LinePlotLayout)> {
    let (width, height) = plot.size;
    if !(160..=MAX_SIZE).contains(&width) || !(160..=MAX_SIZE).contains(&height) {
        return Err(Error::invalid(
            "size",
            format!("each side must be in 160..={MAX_SIZE}, got {width}x{height}"),
        ));
    }
    for s in &plot.series {
        if s.x.len() != s.y.len() {
            return Err(Error::shape("series.y", s.x.len(), s.y.len()));
        }
    }

    // Transformed coordinates of every showable point, per series.
    let pts: Vec<Vec<Option<(f64, f64)>>> = plot
        .series
        .iter()
        .map(|s| {
            s.x.iter()
                .zip(&s.y)
                .map(|(&x, &y)| {
                    Some((
                        Axis::transform(plot.logx, x)?,
                        Axis::transform(plot.logy, y)?,
                    ))
                })
                .collect()
        })
        .collect();
    let all: Vec<(f64, f64)> = pts.iter().flatten().flatten().copied().collect();
    let tx: Vec<f64> = all.iter().map(|p| p.0).collect();
    let ty: Vec<f64> = all.iter().map(|p| p.1).collect();
    let ax = Axis::fit(&tx, plot.logx);
    let ay = Axis::fit(&ty, plot.logy);
    let (xmajor, xminor) = ax.ticks();
    let (ymajor, yminor) = ay.ticks();

    // Text sizes and margins.
    let s = if width.min(height) >= 360 { 2 } else { 1 };
    let th = GLYPH * s;
    let ylab_w = ymajor
        .iter()
        .map(|(_, l)| Canvas::text_width(l, s))
        .max()
        .unwrap_or(0);
    let xlast_w = xmajor.last().map_or(0, |(_, l)| Canvas::text_width(l, s));
    let left = PAD + if plot.ylabel.is_empty() { 0 } else { th + 10 } + ylab_w + 6 + MAJOR;
    let bottom = MAJOR + 6 + th + if plot.xlabel.is_empty() { 0 } else { 10 + th } + PAD;
    let top = PAD + if plot.title.is_empty() { 0 } else { th + 12 } + th / 2;
    let right = PAD + (xlast_w / 2).max(th);
    if left + right + 40 > width || top + bottom + 40 > height {
        return Err(Error::invalid(
            "size",
            format!("{width}x{height} leaves no room for the axes and labels"),
        ));
    }
    let area = Rect::new(left, top, width - left - right, height - top - bottom);
    let mut canvas = Canvas::new(width, height, WHITE)?;

    let to_px = |t: (f64, f64)| -> (f64, f64) {
        (
            f64::from(area.x) + ax.frac_t(t.0) * f64::from(area.w - 1),
            f64::from(area.y) + (1.0 - ay.frac_t(t.1)) * f64::from(area.h - 1),
        )
    };
    let col = |t: f64| (f64::from(area.x) + ax.frac_t(t) * f64::from(area.w - 1)).round() as i64;
    let row =
        |t: f64| (f64::from(area.y) + (1.0 - ay.frac_t(t)) * f64::from(area.h - 1)).round() as i64;
    let (ax0, ay0) = (i64::from(area.x), i64::from(area.y));
    let (aw, ah) = (i64::from(area.w), i64::from(area.h));

    // Grid.
    for (t, _) in &xmajor {
        canvas.fill_rect(col(*t), ay0, 1, ah, GRID);
    }
    for (t, _) in &ymajor {
        canvas.fill_rect(ax0, row(*t), aw, 1, GRID);
    }

    // Series, clipped to the data area.
    canvas.set_clip(Some(area));
    for (srs, p) in plot.series.iter().zip(&pts) {
        match srs.style {
            LineStyle::Points => {
                for &(x, y) in p.iter().flatten() {
                    let (px, py) = to_px((x, y));
                    canvas.disc(px, py, POINT_R, srs.color);
                }
            }
            LineStyle::Solid | LineStyle::Dashed => {
                let dash = (srs.style == LineStyle::Dashed).then_some(DASH);
                for run in p.split(Option::is_none) {
                    let run: Vec<(f64, f64)> = run.iter().flatten().map(|&t| to_px(t)).collect();
                    if !run.is_empty() {
                        canvas.polyline(&run, LINE_W, dash, srs.color);
                    }
                }
            }
        }
    }
    canvas.set_clip(None);

    // Frame, ticks and tick labels.
    canvas.stroke_rect(
        Rect::new(area.x - 1, area.y - 1, area.w + 2, area.h + 2),
        BLACK,
    );
    let below = ay0 + ah + 1;
    for (t, label) in &xmajor {
        let c = col(*t);
        canvas.fill_rect(c, below, 1, i64::from(MAJOR), BLACK);
        canvas.text_centered(c, below + i64::from(MAJOR) + 5, label, s, TEXT);
    }
    for t in &xminor {
        canvas.fill_rect(col(*t), below, 1, i64::from(MINOR), BLACK);
    }
    let leftx = ax0 - 1;
    for (t, label) in &ymajor {
        let r = row(*t);
        canvas.fill_rect(leftx - i64::from(MAJOR), r, i64::from(MAJOR), 1, BLACK);
        let w = i64::from(Canvas::text_width(label, s));
        canvas.text(
            leftx - i64::from(MAJOR) - 5 - w,
            r - i64::from(th) / 2 + 1,
            label,
            s,
            TEXT,
        );
    }
    for t in &yminor {
        canvas.fill_rect(
            leftx - i64::from(MINOR),
            row(*t),
            i64::from(MINOR),
            1,
            BLACK,
        );
    }

    // Axis labels and title.
    let cx = ax0 + aw / 2;
    if !plot.xlabel.is_empty() {
        let y = below + i64::from(MAJOR + 5 + th + 10);
        canvas.text_centered(cx, y, &plot.xlabel, s, TEXT);
    }
    if !plot.ylabel.is_empty() {
        canvas.text_vertical(i64::from(PAD), ay0 + ah / 2, &plot.ylabel, s, TEXT);
    }
    if !plot.title.is_empty() {
        canvas.text_centered(cx, i64::from(PAD), &plot.title, s, TEXT);
    }

    let legend = draw_legend(&mut canvas, plot, area, s, &pts, &to_px);
    Ok((
        canvas,
        LinePlotLayout {
            plot_area: area,
            x_range: ax.range(),
            y_range: ay.range(),
            logx: plot.logx,
            logy: plot.logy,
            legend,
        },
    ))
}

/// Draws the legend in the corner of `area` covering the fewest data points.
fn draw_legend(
    canvas: &mut Canvas,
    plot: &LinePlot,
    area: Rect,
    s: u32,
    pts: &[Vec<Option<(f64, f64)>>],
    to_px: &dyn Fn((f64, f64)) -> (f64, f64),
) -> Option<Rect> {
    let entries: Vec<&Series> = plot.series.iter().filter(|s| !s.label.is_empty()).collect();
    if entries.is_empty() {
        return None;
    }
    let th = GLYPH * s;
    let sample = 36;
    let row_h = th + 8;
    let text_w = entries
        .iter()
        .map(|e| Canvas::text_width(&e.label, s))
        .max()
        .unwrap_or(0);
    let w = (10 + sample + 8 + text_w + 10).min(area.w.saturating_sub(4));
    let h = (8 + row_h * entries.len() as u32).min(area.h.saturating_sub(4));
    let inset = 8;
    let (x0, x1) = (area.x + inset, area.right().saturating_sub(inset + w));
    let (y0, y1) = (area.y + inset, area.bottom().saturating_sub(inset + h));
    let candidates = [(x1, y0), (x0, y0), (x0, y1), (x1, y1)];
    // Every point, plus samples every few pixels along drawn lines.
    let mut pix: Vec<(f64, f64)> = Vec::new();
    for (srs, p) in plot.series.iter().zip(pts) {
        for run in p.split(Option::is_none) {
            let run: Vec<(f64, f64)> = run.iter().flatten().map(|&t| to_px(t)).collect();
            pix.extend_from_slice(&run);
            if srs.style == LineStyle::Points {
                continue;
            }
            for seg in run.windows(2) {
                let (a, b) = (seg[0], seg[1]);
                let n = ((b.0 - a.0).hypot(b.1 - a.1) / 4.0).ceil().min(1e4) as usize;
                for i in 1..n {
                    let t = i as f64 / n as f64;
                    pix.push((a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1)));
                }
            }
        }
    }
    let covered = |r: &Rect| {
        pix.iter()
            .filter(|&&(px, py)| {
                px >= f64::from(r.x)
                    && py >= f64::from(r.y)
                    && px < f64::from(r.right())
                    && py < f64::from(r.bottom())
            })
            .count()
    };
    let rect = candidates
        .iter()
        .map(|&(x, y)| Rect::new(x, y, w, h))
        .min_by_key(covered)?;

    canvas.set_clip(Some(area));
    let (rx, ry) = (i64::from(rect.x), i64::from(rect.y));
    canvas.fill_rect(rx, ry, i64::from(w), i64::from(h), WHITE);
    canvas.stroke_rect(rect, LEGEND_EDGE);
    for (i, e) in entries.iter().enumerate() {
        let top = ry + 4 + i64::from(row_h) * i as i64;
        let mid = (top + i64::from(row_h) / 2) as f64;
        let (a, b) = ((rx + 10) as f64, (rx + 10 + i64::from(sample)) as f64);
        match e.style {
            LineStyle::Solid => canvas.line((a, mid), (b, mid), LINE_W, e.color),
            LineStyle::Dashed => {
                canvas.polyline(&[(a, mid), (b, mid)], LINE_W, Some(DASH), e.color)
            }
            LineStyle::Points => {
                for k in 0..3 {
                    let x = a + (b - a) * (0.5 + f64::from(k)) / 3.0;
                    canvas.disc(x, mid, POINT_R, e.color);
                }
            }
        }
        canvas.text(rx + 10 + i64::from(sample) + 8, top + 4, &e.label, s, TEXT);
    }
    canvas.set_clip(None);
    Some(rect)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_axis_spans_decades() {
        let a = Axis::fit(&[0.3, 2.7], true);
        assert_eq!((a.lo, a.hi), (0.0, 3.0));
        let (major, minor) = a.ticks();
        let labels: Vec<&str> = major.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(labels, ["1e0", "1e1", "1e2", "1e3"]);
        assert_eq!(minor.len(), 24);
        let a = Axis::fit(&[-9.5, -7.2], true);
        let (major, _) = a.ticks();
        assert_eq!(major[0].1, "1e-10");
        assert_eq!(major.last().unwrap().1, "1e-7");
        // Many decades: fewer labels, no minor ticks.
        let a = Axis::fit(&[-40.0, 40.0], true);
        let (major, minor) = a.ticks();
        assert!(major.len() <= 10 && major.len() >= 5, "{}", major.len());
        assert!(minor.is_empty());
    }

    #[test]
    fn degenerate_axes() {
        let a = Axis::fit(&[2.0, 2.0], true);
        assert_eq!((a.lo, a.hi), (1.0, 3.0));
        let a = Axis::fit(&[5.0], false);
        assert!(a.lo < 5.0 && a.hi > 5.0);
        let a = Axis::fit(&[], false);
        assert_eq!((a.lo, a.hi), (0.0, 1.0));
        assert_eq!(Axis::transform(true, 0.0), None);
        assert_eq!(Axis::transform(true, -1.0), None);
        assert_eq!(Axis::transform(false, -1.0), Some(-1.0));
        assert_eq!(Axis::transform(false, f64::NAN), None);
    }
}
