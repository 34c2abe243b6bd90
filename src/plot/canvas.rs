//! An RGB raster with the few drawing primitives the figures need: filled
//! rectangles, thick (optionally dashed) lines, bitmap text and PNG output.
//!
//! Coordinates are pixels with the origin at the top-left corner, `x` to the
//! right and `y` downwards. Everything drawn is clipped to the canvas and,
//! when set, to the clip rectangle ([`Canvas::set_clip`]).
//!
//! Text uses the public-domain 8x8 bitmap font of the `font8x8` crate (ASCII
//! only; other characters are drawn as `?`), scaled by an integer factor, so no
//! system font is needed.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use crate::error::{Error, Result};

/// Side of one glyph of the bitmap font, in pixels at scale 1.
pub const GLYPH: u32 = 8;

/// An axis-aligned rectangle of pixels: columns `x..x + w`, rows `y..y + h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width in pixels.
    pub w: u32,
    /// Height in pixels.
    pub h: u32,
}

impl Rect {
    /// A rectangle from its top-left corner and size.
    pub fn new(x: u32, y: u32, w: u32, h: u32) -> Self {
        Rect { x, y, w, h }
    }

    /// Whether pixel `(x, y)` lies inside.
    pub fn contains(&self, x: u32, y: u32) -> bool {
        x >= self.x && y >= self.y && x - self.x < self.w && y - self.y < self.h
    }

    /// One past the right-most column.
    pub fn right(&self) -> u32 {
        self.x + self.w
    }

    /// One past the bottom row.
    pub fn bottom(&self) -> u32 {
        self.y + self.h
    }
}

/// Dash pattern of a line: `on` pixels drawn, then `off` pixels skipped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dash {
    /// Length of each drawn dash, in pixels.
    pub on: f64,
    /// Length of each gap, in pixels.
    pub off: f64,
}

/// An in-memory 8-bit RGB image.
#[derive(Debug, Clone)]
pub struct Canvas {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Row-major RGB bytes, `3 * width * height` of them; row 0 is the top.
    pub pixels: Vec<u8>,
    clip: Option<Rect>,
}

impl Canvas {
    /// A canvas of the given size filled with `background`.
    ///
    /// Fails with [`Error::InvalidArgument`] if a side is zero or the image
    /// would exceed 2^28 pixels.
    pub fn new(width: u32, height: u32, background: [u8; 3]) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(Error::invalid(
                "size",
                format!("canvas sides must be positive, got {width}x{height}"),
            ));
        }
        let n = u64::from(width) * u64::from(height);
        if n > 1 << 28 {
            return Err(Error::invalid(
                "size",
                format!("canvas of {width}x{height} pixels is too large"),
            ));
        }
        let mut pixels = Vec::with_capacity(3 * n as usize);
        for _ in 0..n {
            pixels.extend_from_slice(&background);
        }
        Ok(Canvas {
            width,
            height,
            pixels,
            clip: None,
        })
    }

    /// Restricts later drawing to `rect` (`None` lifts the restriction).
    pub fn set_clip(&mut self, rect: Option<Rect>) {
        self.clip = rect;
    }

    /// The colour of pixel `(x, y)`, or `None` outside the canvas.
    pub fn get(&self, x: u32, y: u32) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = 3 * (y as usize * self.width as usize + x as usize);
        Some([self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]])
    }

    fn visible(&self, x: i64, y: i64) -> bool {
        if x < 0 || y < 0 || x >= i64::from(self.width) || y >= i64::from(self.height) {
            return false;
        }
        match self.clip {
            Some(c) => c.contains(x as u32, y as u32),
            None => true,
        }
    }

    /// Sets pixel `(x, y)`; pixels outside the canvas or clip are ignored.
    pub fn put(&mut self, x: i64, y: i64, color: [u8; 3]) {
        if self.visible(x, y) {
            let i = 3 * (y as usize * self.width as usize + x as usize);
            self.pixels[i..i + 3].copy_from_slice(&color);
        }
    }

    /// Fills the `w` x `h` rectangle whose top-left corner is `(x, y)`.
    pub fn fill_rect(&mut self, x: i64, y: i64, w: i64, h: i64, color: [u8; 3]) {
        let x0 = x.max(0);
        let y0 = y.max(0);
        let x1 = (x + w).min(i64::from(self.width));
        let y1 = (y + h).min(i64::from(self.height));
        for yy in y0..y1 {
            for xx in x0..x1 {
                self.put(xx, yy, color);
            }
        }
    }

    /// Draws the one-pixel outline of a rectangle.
    pub fn stroke_rect(&mut self, r: Rect, color: [u8; 3]) {
        let (x, y, w, h) = (
            i64::from(r.x),
            i64::from(r.y),
            i64::from(r.w),
            i64::from(r.h),
        );
        self.fill_rect(x, y, w, 1, color);
        self.fill_rect(x, y + h - 1, w, 1, color);
        self.fill_rect(x, y, 1, h, color);
        self.fill_rect(x + w - 1, y, 1, h, color);
    }

    /// Draws a filled square of side `size` centred on `(x, y)`.
    pub fn dot(&mut self, x: f64, y: f64, size: u32, color: [u8; 3]) {
        let s = i64::from(size.max(1));
        let x0 = (x - (s as f64 - 1.0) / 2.0).round() as i64;
        let y0 = (y - (s as f64 - 1.0) / 2.0).round() as i64;
        self.fill_rect(x0, y0, s, s, color);
    }

    /// Draws a filled disc of the given radius centred on `(x, y)`.
    pub fn disc(&mut self, x: f64, y: f64, radius: f64, color: [u8; 3]) {
        let r = radius.max(0.5);
        let (x0, x1) = ((x - r).floor() as i64, (x + r).ceil() as i64);
        let (y0, y1) = ((y - r).floor() as i64, (y + r).ceil() as i64);
        for yy in y0..=y1 {
            for xx in x0..=x1 {
                let (dx, dy) = (xx as f64 - x, yy as f64 - y);
                if dx * dx + dy * dy <= r * r {
                    self.put(xx, yy, color);
                }
            }
        }
    }

    /// Draws a line from `a` to `b`, `width` pixels thick.
    pub fn line(&mut self, a: (f64, f64), b: (f64, f64), width: u32, color: [u8; 3]) {
        self.polyline(&[a, b], width, None, color);
    }

    /// Draws connected segments through `points`, `width` pixels thick,
    /// solid or with the given dash pattern (the pattern runs on across
    /// vertices). Non-finite points are skipped without breaking the line.
    pub fn polyline(
        &mut self,
        points: &[(f64, f64)],
        width: u32,
        dash: Option<Dash>,
        color: [u8; 3],
    ) {
        let pts: Vec<(f64, f64)> = points
            .iter()
            .copied()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .collect();
        if pts.len() == 1 {
            self.dot(pts[0].0, pts[0].1, width, color);
            return;
        }
        let period = dash.map(|d| (d.on.max(1.0), (d.on + d.off).max(2.0)));
        let mut travelled = 0.0;
        for seg in pts.windows(2) {
            let (a, b) = (seg[0], seg[1]);
            let (dx, dy) = (b.0 - a.0, b.1 - a.1);
            let len = dx.hypot(dy);
            // Guard against absurd coordinates far outside the canvas.
            if len > 1e6 {
                continue;
            }
            let steps = (len * 2.0).ceil().max(1.0) as usize;
            for i in 0..=steps {
                let t = i as f64 / steps as f64;
                if let Some((on, per)) = period {
                    if (travelled + t * len) % per >= on {
                        continue;
                    }
                }
                self.dot(a.0 + t * dx, a.1 + t * dy, width, color);
            }
            travelled += len;
        }
    }

    /// Width in pixels of `text` drawn at integer `scale`.
    pub fn text_width(text: &str, scale: u32) -> u32 {
        text.chars().count() as u32 * GLYPH * scale
    }

    /// Draws `text` with its top-left corner at `(x, y)`, each font pixel a
    /// `scale` x `scale` block. Returns the width drawn.
    pub fn text(&mut self, x: i64, y: i64, text: &str, scale: u32, color: [u8; 3]) -> u32 {
        let s = i64::from(scale.max(1));
        for (k, ch) in text.chars().enumerate() {
            let glyph = glyph(ch);
            let gx = x + k as i64 * i64::from(GLYPH) * s;
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        self.fill_rect(gx + col * s, y + row as i64 * s, s, s, color);
                    }
                }
            }
        }
        Self::text_width(text, scale.max(1))
    }

    /// Draws `text` centred horizontally on column `cx`, top at row `y`.
    pub fn text_centered(&mut self, cx: i64, y: i64, text: &str, scale: u32, color: [u8; 3]) {
        let w = i64::from(Self::text_width(text, scale));
        self.text(cx - w / 2, y, text, scale, color);
    }

    /// Draws `text` rotated a quarter turn anticlockwise (reading bottom to
    /// top, as a y-axis label), centred vertically on row `cy`, with its
    /// left edge (the top of the glyphs) at column `x`.
    pub fn text_vertical(&mut self, x: i64, cy: i64, text: &str, scale: u32, color: [u8; 3]) {
        let s = i64::from(scale.max(1));
        let len = i64::from(Self::text_width(text, scale.max(1)));
        let bottom = cy + len / 2;
        for (k, ch) in text.chars().enumerate() {
            let glyph = glyph(ch);
            // Glyph k occupies rows bottom - (k+1)*8s .. bottom - k*8s.
            let base = bottom - k as i64 * i64::from(GLYPH) * s;
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        // Rotation: glyph column -> upward offset, glyph row -> x.
                        let px = x + row as i64 * s;
                        let py = base - (col + 1) * s;
                        self.fill_rect(px, py, s, s, color);
                    }
                }
            }
        }
    }

    /// Stacks canvases top to bottom on a white background, each centred
    /// horizontally (e.g. a map figure above a spectrum plot).
    pub fn stack_vertical(parts: &[Canvas]) -> Result<Canvas> {
        if parts.is_empty() {
            return Err(Error::invalid("parts", "nothing to stack"));
        }
        let width = parts.iter().map(|c| c.width).max().unwrap_or(1);
        let height = parts.iter().map(|c| c.height).sum();
        let mut out = Canvas::new(width, height, [255, 255, 255])?;
        let mut y0 = 0usize;
        for c in parts {
            let x0 = ((width - c.width) / 2) as usize;
            for y in 0..c.height as usize {
                let src = &c.pixels[3 * y * c.width as usize..3 * (y + 1) * c.width as usize];
                let start = 3 * ((y0 + y) * width as usize + x0);
                out.pixels[start..start + src.len()].copy_from_slice(src);
            }
            y0 += c.height as usize;
        }
        Ok(out)
    }

    /// Writes the canvas as an 8-bit RGB PNG file.
    ///
    /// Fails with [`Error::Io`] if the file cannot be created or written.
    pub fn save_png(&self, path: &Path) -> Result<()> {
        let io_err = |source: std::io::Error| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let png_err = |e: png::EncodingError| match e {
            png::EncodingError::IoError(source) => io_err(source),
            other => io_err(std::io::Error::other(other.to_string())),
        };
        let file = File::create(path).map_err(io_err)?;
        let mut encoder = png::Encoder::new(BufWriter::new(file), self.width, self.height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(png_err)?;
        writer.write_image_data(&self.pixels).map_err(png_err)?;
        writer.finish().map_err(png_err)
    }
}

/// The 8x8 bitmap of an ASCII character (`?` for anything else). Row `r` is
/// byte `r`; bit `c` (least significant first) is column `c`.
fn glyph(ch: char) -> [u8; 8] {
    let code = ch as u32;
    let idx = if (32..127).contains(&code) {
        code as usize
    } else {
        b'?' as usize
    };
    font8x8::legacy::BASIC_LEGACY[idx]
}

#[cfg(test)]
mod tests {
    #[test]
    fn stack_vertical_centres_parts() {
        let a = super::Canvas::new(4, 2, [0, 0, 0]).unwrap();
        let b = super::Canvas::new(2, 1, [10, 20, 30]).unwrap();
        let s = super::Canvas::stack_vertical(&[a, b]).unwrap();
        assert_eq!((s.width, s.height), (4, 3));
        assert_eq!(s.get(0, 0), Some([0, 0, 0]));
        assert_eq!(s.get(0, 2), Some([255, 255, 255]));
        assert_eq!(s.get(1, 2), Some([10, 20, 30]));
        assert!(super::Canvas::stack_vertical(&[]).is_err());
    }

    use super::*;

    #[test]
    fn text_draws_inside_its_box() {
        let mut c = Canvas::new(40, 20, [255; 3]).unwrap();
        let w = c.text(2, 2, "Ag", 2, [0; 3]);
        assert_eq!(w, 32);
        let mut dark = 0;
        for y in 0..20 {
            for x in 0..40 {
                if c.get(x, y) == Some([0; 3]) {
                    assert!((2..34).contains(&x) && (2..18).contains(&y));
                    dark += 1;
                }
            }
        }
        assert!(dark > 20);
    }

    #[test]
    fn vertical_text_is_taller_than_wide() {
        let mut c = Canvas::new(30, 60, [255; 3]).unwrap();
        c.text_vertical(5, 30, "HIH", 1, [0; 3]);
        let (mut x0, mut x1, mut y0, mut y1) = (u32::MAX, 0, u32::MAX, 0);
        for y in 0..60 {
            for x in 0..30 {
                if c.get(x, y) == Some([0; 3]) {
                    x0 = x0.min(x);
                    x1 = x1.max(x);
                    y0 = y0.min(y);
                    y1 = y1.max(y);
                }
            }
        }
        assert!(y1 - y0 > 2 * (x1 - x0), "{x0}..{x1} x {y0}..{y1}");
    }

    #[test]
    fn clip_and_bounds() {
        let mut c = Canvas::new(10, 10, [255; 3]).unwrap();
        c.set_clip(Some(Rect::new(2, 2, 4, 4)));
        c.fill_rect(-5, -5, 100, 100, [0; 3]);
        assert_eq!(c.get(1, 1), Some([255; 3]));
        assert_eq!(c.get(2, 2), Some([0; 3]));
        assert_eq!(c.get(6, 6), Some([255; 3]));
        assert_eq!(c.get(10, 0), None);
        assert!(Canvas::new(0, 5, [0; 3]).is_err());
    }

    #[test]
    fn dashed_line_has_gaps() {
        let mut c = Canvas::new(100, 5, [255; 3]).unwrap();
        let dash = Dash { on: 6.0, off: 4.0 };
        c.polyline(&[(0.0, 2.0), (99.0, 2.0)], 1, Some(dash), [0; 3]);
        let drawn = (0..100).filter(|&x| c.get(x, 2) == Some([0; 3])).count();
        assert!(drawn > 50 && drawn < 70, "{drawn}");
    }
}
