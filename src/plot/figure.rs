//! Figures of 2-D maps: a grid of panels, each with a title and a colour bar.
//!
//! Orientation: row 0 of a map's data (the first `nx` values) is drawn at the
//! **top** of its panel and column 0 at the left, the image convention of
//! matplotlib's `imshow(origin="upper")`. Data are row-major, `data[iy * nx +
//! ix]`.
//!
//! Size: a map is enlarged by an integer zoom (each data pixel becomes a
//! `zoom` x `zoom` block) until its longer side is at least 256 screen pixels;
//! a map with a side over 600 pixels is shrunk by an integer factor `block`,
//! each screen pixel showing the mean of the finite, observed data pixels of a
//! `block` x `block` block.

use std::path::Path;

use super::canvas::{Canvas, Rect, GLYPH};
use super::colormap::ColorMap;
use super::ticks::{format_ticks, nice_ticks};
use crate::error::{Error, Result};

/// Colour of unobserved (mask `false`) and non-finite pixels.
pub const MASK_COLOR: [u8; 3] = [150, 150, 150];

const WHITE: [u8; 3] = [255, 255, 255];
const BLACK: [u8; 3] = [0, 0, 0];
const TEXT: [u8; 3] = [20, 20, 20];

/// Longer side (screen pixels) a map is zoomed up to at least.
const MIN_SIDE: usize = 256;
/// Longest side (data pixels) shown without block-averaging.
const MAX_SIDE: usize = 600;

const PAD: u32 = 14;
const TITLE_SCALE: u32 = 2;
const SUPTITLE_SCALE: u32 = 3;
const TICK_SCALE: u32 = 2;
const BAR_GAP: u32 = 12;
const BAR_W: u32 = 18;
const BAR_MIN_H: u32 = 120;
const TICK_LEN: u32 = 5;

/// One map to draw.
#[derive(Debug, Clone)]
pub struct MapPanel<'a> {
    /// Title drawn above the map (may be empty).
    pub title: String,
    /// Row-major values, `ny` rows of `nx`; row 0 is drawn at the top.
    pub data: &'a [f32],
    /// Number of columns.
    pub nx: usize,
    /// Number of rows.
    pub ny: usize,
    /// Optional observation mask of the same length: `true` = observed.
    /// Unobserved pixels are drawn grey ([`MASK_COLOR`]).
    pub mask: Option<&'a [bool]>,
    /// Colour range `(lo, hi)`, values outside clamped to the end colours.
    /// `None`: the 1st to 99th percentile of the finite, observed pixels
    /// (made symmetric about zero for the diverging [`ColorMap::RdBu`], so
    /// white means zero); a map with no finite observed pixel gets `(0, 1)`,
    /// a constant map a small interval around its value.
    pub range: Option<(f32, f32)>,
    /// Colour map.
    pub cmap: ColorMap,
    /// Label written along the colour bar (may be empty).
    pub colorbar_label: String,
}

impl<'a> MapPanel<'a> {
    /// A panel with no mask, a robust automatic range, viridis and no
    /// colour-bar label.
    pub fn new(title: impl Into<String>, data: &'a [f32], nx: usize, ny: usize) -> Self {
        MapPanel {
            title: title.into(),
            data,
            nx,
            ny,
            mask: None,
            range: None,
            cmap: ColorMap::Viridis,
            colorbar_label: String::new(),
        }
    }
}

/// Where the parts of one panel landed on the canvas, and how it was scaled.
#[derive(Debug, Clone, PartialEq)]
pub struct PanelLayout {
    /// Band holding the panel title.
    pub title: Rect,
    /// The map itself (inside its one-pixel frame).
    pub image: Rect,
    /// Colour strip of the colour bar (inside its frame); its top row shows
    /// `range.1`, its bottom row `range.0`.
    pub colorbar: Rect,
    /// Colour range used.
    pub range: (f64, f64),
    /// Data pixels averaged along each side per screen pixel (1 = none).
    pub block: usize,
    /// Screen pixels per (averaged) data pixel along each side.
    pub zoom: u32,
}

impl PanelLayout {
    /// Canvas pixel at the centre of where data pixel `(ix, iy)` is drawn.
    pub fn screen_of(&self, ix: usize, iy: usize) -> (u32, u32) {
        let z = self.zoom as usize;
        let x = self.image.x as usize + (ix / self.block) * z + z / 2;
        let y = self.image.y as usize + (iy / self.block) * z + z / 2;
        (x as u32, y as u32)
    }
}

/// Where everything landed in a figure drawn by [`render_maps_with_layout`].
#[derive(Debug, Clone, PartialEq)]
pub struct MapsLayout {
    /// Band holding the figure title, if any.
    pub suptitle: Option<Rect>,
    /// One entry per panel, in input order.
    pub panels: Vec<PanelLayout>,
}

/// Saves one or more map panels as a PNG at `path`, in a grid of `ncols`
/// columns (filled row by row), each with its title above and its own colour
/// bar, with numeric tick labels, at its right; `suptitle` is drawn on top.
///
/// Row 0 of each map is drawn at the top (image convention, like matplotlib's
/// `imshow(origin="upper")`). Maps are upscaled by an integer factor so a map
/// is at least ~256 pixels on screen, or block-averaged down when a side
/// exceeds ~600 pixels (each screen pixel the mean of the finite, observed
/// data pixels of its block).
///
/// Errors: [`Error::InvalidArgument`] for an empty panel list, `ncols == 0`,
/// a zero-sized map or a range that is non-finite or has `lo >= hi`;
/// [`Error::ShapeMismatch`] if a panel's data or mask length is not
/// `nx * ny`; [`Error::Io`] if the file cannot be written.
pub fn save_maps(
    path: &Path,
    panels: &[MapPanel],
    ncols: usize,
    suptitle: Option<&str>,
) -> Result<()> {
    render_maps(panels, ncols, suptitle)?.save_png(path)
}

/// Draws the figure of [`save_maps`] into an in-memory canvas.
pub fn render_maps(panels: &[MapPanel], ncols: usize, suptitle: Option<&str>) -> Result<Canvas> {
    Ok(render_maps_with_layout(panels, ncols, suptitle)?.0)
}

/// Per-panel quantities computed before layout.
struct Prepared {
    /// Screen-resolution values (`None` = grey), `w * h` of them.
    values: Vec<Option<f64>>,
    w: u32,
    h: u32,
    block: usize,
    zoom: u32,
    range: (f64, f64),
    ticks: Vec<f64>,
    labels: Vec<String>,
    label_w: u32,
}

/// Like [`render_maps`], also returning where each part was drawn (for
/// tests and for placing annotations).
pub fn render_maps_with_layout(
    panels: &[MapPanel],
    ncols: usize,
    suptitle: Option<&str>,
) -> Result<(Canvas, MapsLayout)> {
    if panels.is_empty() {
        return Err(Error::invalid("panels", "at least one panel is needed"));
    }
    if ncols == 0 {
        return Err(Error::invalid("ncols", "must be at least 1"));
    }
    let prepared = panels
        .iter()
        .enumerate()
        .map(|(k, p)| prepare(k, p))
        .collect::<Result<Vec<_>>>()?;

    let ncols = ncols.min(panels.len());
    let nrows = panels.len().div_ceil(ncols);

    // Uniform cell size: the largest panel's needs.
    let title_band = GLYPH * TITLE_SCALE + 14;
    let tick_h = GLYPH * TICK_SCALE;
    let content_w: Vec<u32> = panels
        .iter()
        .zip(&prepared)
        .map(|(p, q)| {
            let mut w = PAD + q.w + BAR_GAP + BAR_W + TICK_LEN + 4 + q.label_w + PAD;
            if !p.colorbar_label.is_empty() {
                w += 8 + GLYPH * TICK_SCALE;
            }
            w
        })
        .collect();
    let cell_w = content_w.iter().copied().max().unwrap_or(0);
    let body_h = prepared
        .iter()
        .map(|q| q.h.max(BAR_MIN_H))
        .max()
        .unwrap_or(0);
    let cell_h = title_band + body_h + tick_h / 2 + PAD;

    let suptitle = suptitle.filter(|s| !s.is_empty());
    let sup_h = if suptitle.is_some() {
        GLYPH * SUPTITLE_SCALE + 20
    } else {
        0
    };
    let width = cell_w * ncols as u32;
    let height = sup_h + cell_h * nrows as u32;
    let mut canvas = Canvas::new(width, height, WHITE)?;

    let suptitle_rect = suptitle.map(|s| {
        let r = Rect::new(0, 0, width, sup_h);
        let (text, scale) = fit_text(s, SUPTITLE_SCALE, width.saturating_sub(2 * PAD));
        let th = GLYPH * scale;
        canvas.text_centered(
            i64::from(width / 2),
            i64::from((sup_h - th) / 2 + 4),
            &text,
            scale,
            TEXT,
        );
        r
    });

    let mut layouts = Vec::with_capacity(panels.len());
    for (k, (p, q)) in panels.iter().zip(&prepared).enumerate() {
        let cx = (k % ncols) as u32 * cell_w;
        let cy = sup_h + (k / ncols) as u32 * cell_h;
        // The band ends above the map's one-pixel frame.
        let title = Rect::new(cx, cy, cell_w, title_band - 1);
        // Narrower panels are centred in their cell.
        let shift = (cell_w - content_w[k]) / 2;
        let image = Rect::new(cx + shift + PAD, cy + title_band, q.w, q.h);
        let bar_h = q.h.max(BAR_MIN_H);
        let colorbar = Rect::new(image.right() + BAR_GAP, image.y, BAR_W, bar_h);

        // Title, centred over the map but kept inside the cell.
        if !p.title.is_empty() {
            let (text, scale) = fit_text(&p.title, TITLE_SCALE, cell_w - 2 * PAD);
            let tw = Canvas::text_width(&text, scale);
            let centre = image.x + image.w / 2;
            let x = centre
                .saturating_sub(tw / 2)
                .min((cx + cell_w).saturating_sub(PAD + tw))
                .max(cx + PAD);
            let y = cy + (title_band - GLYPH * scale) / 2 + 2;
            canvas.text(i64::from(x), i64::from(y), &text, scale, TEXT);
        }

        draw_image(&mut canvas, image, q, p.cmap);
        draw_colorbar(&mut canvas, colorbar, q, p);

        layouts.push(PanelLayout {
            title,
            image,
            colorbar,
            range: q.range,
            block: q.block,
            zoom: q.zoom,
        });
    }
    Ok((
        canvas,
        MapsLayout {
            suptitle: suptitle_rect,
            panels: layouts,
        },
    ))
}

/// Validates a panel and computes its screen image, range and ticks.
fn prepare(k: usize, p: &MapPanel) -> Result<Prepared> {
    if p.nx == 0 || p.ny == 0 {
        return Err(Error::invalid(
            "nx/ny",
            format!(
                "panel {k}: map sides must be positive, got {}x{}",
                p.nx, p.ny
            ),
        ));
    }
    let n =
        p.nx.checked_mul(p.ny)
            .ok_or_else(|| Error::invalid("nx/ny", format!("panel {k}: nx * ny overflows")))?;
    if p.data.len() != n {
        return Err(Error::shape("data", n, p.data.len()));
    }
    if let Some(m) = p.mask {
        if m.len() != n {
            return Err(Error::shape("mask", n, m.len()));
        }
    }
    let range = match p.range {
        Some((lo, hi)) => {
            if !(lo.is_finite() && hi.is_finite()) || lo >= hi {
                return Err(Error::invalid(
                    "range",
                    format!("panel {k}: need finite lo < hi, got ({lo}, {hi})"),
                ));
            }
            (f64::from(lo), f64::from(hi))
        }
        None => auto_range(p),
    };

    let side = p.nx.max(p.ny);
    let block = if side > MAX_SIDE {
        side.div_ceil(MAX_SIDE)
    } else {
        1
    };
    let (bw, bh) = (p.nx.div_ceil(block), p.ny.div_ceil(block));
    let bside = bw.max(bh);
    let zoom = if bside < MIN_SIDE {
        MIN_SIDE.div_ceil(bside)
    } else {
        1
    };
    let values = block_average(p, block, bw, bh);

    let (ticks, step) = nice_ticks(range.0, range.1, 5);
    let labels = format_ticks(&ticks, step);
    let label_w = labels
        .iter()
        .map(|l| Canvas::text_width(l, TICK_SCALE))
        .max()
        .unwrap_or(0);
    Ok(Prepared {
        values,
        w: (bw * zoom) as u32,
        h: (bh * zoom) as u32,
        block,
        zoom: zoom as u32,
        range,
        ticks,
        labels,
        label_w,
    })
}

/// The automatic colour range of a panel (see [`MapPanel::range`]).
fn auto_range(p: &MapPanel) -> (f64, f64) {
    let mut v: Vec<f64> = p
        .data
        .iter()
        .enumerate()
        .filter(|&(i, x)| x.is_finite() && p.mask.is_none_or(|m| m[i]))
        .map(|(_, &x)| f64::from(x))
        .collect();
    if v.is_empty() {
        return (0.0, 1.0);
    }
    v.sort_by(f64::total_cmp);
    let (mut lo, mut hi) = (quantile(&v, 0.01), quantile(&v, 0.99));
    if lo >= hi {
        // Percentiles coincide (e.g. a few spikes on a flat map): full extent.
        lo = v[0];
        hi = v[v.len() - 1];
    }
    if p.cmap.is_diverging() {
        let m = lo.abs().max(hi.abs());
        lo = -m;
        hi = m;
    }
    if lo >= hi {
        // Constant map.
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return (lo - d, lo + d);
    }
    (lo, hi)
}

/// Linear-interpolated quantile `q` of sorted, non-empty `v`.
fn quantile(v: &[f64], q: f64) -> f64 {
    let pos = q * (v.len() - 1) as f64;
    let i = pos.floor() as usize;
    let j = (i + 1).min(v.len() - 1);
    let f = pos - i as f64;
    v[i] + f * (v[j] - v[i])
}

/// Block means of finite, observed pixels; `None` where a block has none.
fn block_average(p: &MapPanel, block: usize, bw: usize, bh: usize) -> Vec<Option<f64>> {
    let ok = |i: usize| p.data[i].is_finite() && p.mask.is_none_or(|m| m[i]);
    if block == 1 {
        return (0..p.data.len())
            .map(|i| ok(i).then(|| f64::from(p.data[i])))
            .collect();
    }
    let mut sum = vec![0.0f64; bw * bh];
    let mut count = vec![0u32; bw * bh];
    for iy in 0..p.ny {
        let row = (iy / block) * bw;
        for ix in 0..p.nx {
            let i = iy * p.nx + ix;
            if ok(i) {
                sum[row + ix / block] += f64::from(p.data[i]);
                count[row + ix / block] += 1;
            }
        }
    }
    sum.iter()
        .zip(&count)
        .map(|(&s, &c)| (c > 0).then(|| s / f64::from(c)))
        .collect()
}

fn draw_image(canvas: &mut Canvas, image: Rect, q: &Prepared, cmap: ColorMap) {
    let (lo, hi) = q.range;
    let bw = (q.w / q.zoom) as usize;
    let z = i64::from(q.zoom);
    for (i, v) in q.values.iter().enumerate() {
        let color = match v {
            Some(v) => cmap.eval((v - lo) / (hi - lo)),
            None => MASK_COLOR,
        };
        let (bx, by) = ((i % bw) as i64, (i / bw) as i64);
        canvas.fill_rect(
            i64::from(image.x) + bx * z,
            i64::from(image.y) + by * z,
            z,
            z,
            color,
        );
    }
    let frame = Rect::new(image.x - 1, image.y - 1, image.w + 2, image.h + 2);
    canvas.stroke_rect(frame, BLACK);
}

fn draw_colorbar(canvas: &mut Canvas, bar: Rect, q: &Prepared, p: &MapPanel) {
    let (lo, hi) = q.range;
    let denom = f64::from((bar.h - 1).max(1));
    for row in 0..bar.h {
        let t = 1.0 - f64::from(row) / denom;
        let color = p.cmap.eval(t);
        canvas.fill_rect(
            i64::from(bar.x),
            i64::from(bar.y + row),
            i64::from(bar.w),
            1,
            color,
        );
    }
    canvas.stroke_rect(Rect::new(bar.x - 1, bar.y - 1, bar.w + 2, bar.h + 2), BLACK);
    let tick_x = i64::from(bar.right() + 1);
    let label_x = tick_x + i64::from(TICK_LEN) + 4;
    let th = i64::from(GLYPH * TICK_SCALE);
    for (v, label) in q.ticks.iter().zip(&q.labels) {
        let y = i64::from(bar.y) + ((1.0 - (v - lo) / (hi - lo)) * denom).round() as i64;
        canvas.fill_rect(tick_x, y, i64::from(TICK_LEN), 1, BLACK);
        canvas.text(label_x, y - th / 2 + 1, label, TICK_SCALE, TEXT);
    }
    if !p.colorbar_label.is_empty() {
        let x = label_x + i64::from(q.label_w) + 8;
        let (text, scale) = fit_text(&p.colorbar_label, TICK_SCALE, bar.h + 2 * PAD);
        let x = x + i64::from((TICK_SCALE - scale) * GLYPH / 2);
        canvas.text_vertical(x, i64::from(bar.y + bar.h / 2), &text, scale, TEXT);
    }
}

/// Picks `scale` or, if the text is too wide, scale 1, truncating with ".."
/// as a last resort, so that the text fits in `max_w` pixels.
fn fit_text(text: &str, scale: u32, max_w: u32) -> (String, u32) {
    if Canvas::text_width(text, scale) <= max_w {
        return (text.to_string(), scale);
    }
    if Canvas::text_width(text, 1) <= max_w {
        return (text.to_string(), 1);
    }
    let keep = (max_w / GLYPH).saturating_sub(2) as usize;
    let mut s: String = text.chars().take(keep).collect();
    s.push_str("..");
    (s, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_auto_range() {
        let v: Vec<f64> = (0..101).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.01), 1.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        let data: Vec<f32> = (0..101).map(|i| i as f32).collect();
        let p = MapPanel::new("", &data, 101, 1);
        assert_eq!(auto_range(&p), (1.0, 99.0));
        let mut p = p;
        p.cmap = ColorMap::RdBu;
        assert_eq!(auto_range(&p), (-99.0, 99.0));
        let flat = [3.0f32; 4];
        let (lo, hi) = auto_range(&MapPanel::new("", &flat, 2, 2));
        assert!(lo < 3.0 && hi > 3.0);
        let nan = [f32::NAN; 4];
        assert_eq!(auto_range(&MapPanel::new("", &nan, 2, 2)), (0.0, 1.0));
    }

    #[test]
    fn block_average_means_and_masks() {
        let data = [1.0f32, 3.0, 5.0, f32::NAN, 2.0, 4.0, 6.0, 8.0, 0.0];
        let mask = [true, true, false, true, true, true, false, false, false];
        let mut p = MapPanel::new("", &data, 3, 3);
        p.mask = Some(&mask);
        let b = block_average(&p, 2, 2, 2);
        assert_eq!(b, vec![Some(2.0), Some(4.0), None, None]);
    }

    #[test]
    fn fit_text_shrinks_then_truncates() {
        assert_eq!(fit_text("abc", 2, 48), ("abc".to_string(), 2));
        assert_eq!(fit_text("abcd", 2, 48), ("abcd".to_string(), 1));
        let (s, k) = fit_text("abcdefghij", 2, 48);
        assert_eq!((s.as_str(), k), ("abcd..", 1));
    }
}
