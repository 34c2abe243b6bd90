//! Tests of the PNG figure library (`lensdiff::plot`): files are valid PNGs,
//! maps, colour bars, masks and titles land where the layout says, line plots
//! follow the data, and bad input gives typed errors.

mod common;

use std::collections::HashSet;

use lensdiff::plot::{
    render_lineplot, render_lineplot_with_layout, render_maps, render_maps_with_layout,
    save_lineplot, save_maps, series_color, Canvas, ColorMap, LinePlot, LineStyle, MapPanel, Rect,
    Series, MASK_COLOR,
};
use lensdiff::Error;

use common::{png_header, temp_dir};

fn gradient(nx: usize, ny: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(nx * ny);
    for iy in 0..ny {
        for ix in 0..nx {
            v.push(ix as f32 / (nx - 1) as f32 + 0.5 * iy as f32 / (ny - 1) as f32);
        }
    }
    v
}

fn blob(n: usize) -> Vec<f32> {
    let c = (n as f32 - 1.0) / 2.0;
    let s = n as f32 / 6.0;
    let mut v = Vec::with_capacity(n * n);
    for iy in 0..n {
        for ix in 0..n {
            let r2 = (ix as f32 - c).powi(2) + (iy as f32 - c).powi(2);
            v.push((-r2 / (2.0 * s * s)).exp());
        }
    }
    v
}

fn signed(n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n * n);
    for iy in 0..n {
        for ix in 0..n {
            let (x, y) = (ix as f32 / n as f32, iy as f32 / n as f32);
            v.push(0.03 * (6.0 * x).sin() * (4.0 * y).cos());
        }
    }
    v
}

fn luminance(c: [u8; 3]) -> f64 {
    0.2126 * f64::from(c[0]) + 0.7152 * f64::from(c[1]) + 0.0722 * f64::from(c[2])
}

fn distinct_colours(c: &Canvas, r: Rect) -> usize {
    let mut set = HashSet::new();
    for y in r.y..r.bottom() {
        for x in r.x..r.right() {
            set.insert(c.get(x, y).unwrap());
        }
    }
    set.len()
}

fn is_dark(c: [u8; 3]) -> bool {
    c.iter().all(|&v| v < 70)
}

fn count_dark(c: &Canvas, x0: u32, x1: u32, y0: u32, y1: u32) -> usize {
    let mut n = 0;
    for y in y0..y1 {
        for x in x0..x1 {
            if is_dark(c.get(x, y).unwrap()) {
                n += 1;
            }
        }
    }
    n
}

struct Maps {
    grad: Vec<f32>,
    blob: Vec<f32>,
    resid: Vec<f32>,
    mask: Vec<bool>,
}

impl Maps {
    fn new() -> Self {
        let n = 100;
        let mask = (0..n * n).map(|i| (i % n) >= 20).collect();
        Maps {
            grad: gradient(64, 48),
            blob: blob(n),
            resid: signed(n),
            mask,
        }
    }

    fn panels(&self) -> Vec<MapPanel<'_>> {
        let mut a = MapPanel::new("gradient", &self.grad, 64, 48);
        a.colorbar_label = "value".into();
        let mut b = MapPanel::new("Gaussian blob", &self.blob, 100, 100);
        b.cmap = ColorMap::Magma;
        b.mask = Some(&self.mask);
        b.colorbar_label = "kappa".into();
        let mut c = MapPanel::new("residual", &self.resid, 100, 100);
        c.cmap = ColorMap::RdBu;
        vec![a, b, c]
    }
}

#[test]
fn three_panel_figure_writes_a_valid_png() {
    let maps = Maps::new();
    let panels = maps.panels();
    let path = temp_dir("three").join("maps.png");
    save_maps(&path, &panels, 3, Some("three maps")).unwrap();
    let canvas = render_maps(&panels, 3, Some("three maps")).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let (w, h, depth, colour_type) = png_header(&bytes);
    assert_eq!((w, h), (canvas.width, canvas.height));
    assert_eq!((depth, colour_type), (8, 2), "8-bit RGB");
    assert_eq!(canvas.pixels.len(), 3 * (w * h) as usize);
    assert_eq!(&bytes[bytes.len() - 8..bytes.len() - 4], b"IEND");
}

#[test]
fn panels_hold_many_colours_and_follow_the_grid() {
    let maps = Maps::new();
    let panels = maps.panels();
    let (canvas, layout) = render_maps_with_layout(&panels, 3, None).unwrap();
    assert!(layout.suptitle.is_none());
    for (k, p) in layout.panels.iter().enumerate() {
        let n = distinct_colours(&canvas, p.image);
        assert!(n > 40, "panel {k}: only {n} distinct colours");
        assert!(
            p.image.w >= 256 || p.image.h >= 256,
            "panel {k} too small: {:?}",
            p.image
        );
        assert!(p.image.right() <= canvas.width && p.image.bottom() <= canvas.height);
    }
    // Three columns: one row, left to right.
    let im: Vec<Rect> = layout.panels.iter().map(|p| p.image).collect();
    assert_eq!((im[0].y, im[1].y), (im[1].y, im[2].y));
    assert!(im[0].right() < im[1].x && im[1].right() < im[2].x);
    // Two columns: the third panel starts a second row under the first.
    let (c2, l2) = render_maps_with_layout(&panels, 2, None).unwrap();
    assert!(l2.panels[2].image.y > l2.panels[0].image.bottom());
    assert!(l2.panels[2].image.right() < l2.panels[1].image.x);
    assert!(c2.height > canvas.height && c2.width < canvas.width);
}

#[test]
fn colour_bars_vary_monotonically() {
    let maps = Maps::new();
    let mut panels = maps.panels();
    panels[1].cmap = ColorMap::Greys;
    let (canvas, layout) = render_maps_with_layout(&panels, 3, None).unwrap();
    // Viridis gets brighter upwards, Greys darker; both steadily.
    for (k, sign) in [(0usize, 1.0), (1, -1.0)] {
        let bar = layout.panels[k].colorbar;
        let x = bar.x + bar.w / 2;
        let lum: Vec<f64> = (bar.y..bar.bottom())
            .rev()
            .map(|y| sign * luminance(canvas.get(x, y).unwrap()))
            .collect();
        for w in lum.windows(2) {
            assert!(w[1] >= w[0] - 1.0, "panel {k}: bar not monotonic: {w:?}");
        }
        let rise = lum[lum.len() - 1] - lum[0];
        assert!(rise > 150.0, "panel {k}: bar spans only {rise}");
        // Same colour across the bar's width.
        let y = bar.y + bar.h / 3;
        assert_eq!(canvas.get(bar.x, y), canvas.get(bar.right() - 1, y));
    }
    // Ends of the viridis bar are the ends of the map.
    let bar = layout.panels[0].colorbar;
    let x = bar.x + bar.w / 2;
    assert_eq!(canvas.get(x, bar.y).unwrap(), ColorMap::Viridis.eval(1.0));
    assert_eq!(
        canvas.get(x, bar.bottom() - 1).unwrap(),
        ColorMap::Viridis.eval(0.0)
    );
    // Tick labels: dark pixels right of each bar.
    for p in &layout.panels {
        let b = p.colorbar;
        let n = count_dark(&canvas, b.right() + 2, b.right() + 60, b.y, b.bottom());
        assert!(n > 40, "no tick labels next to bar {b:?}: {n}");
    }
}

#[test]
fn masked_and_non_finite_pixels_are_grey() {
    let maps = Maps::new();
    let mut resid = maps.resid.clone();
    resid[50 * 100 + 70] = f32::NAN;
    let mut panels = maps.panels();
    panels[2].data = &resid;
    let (canvas, layout) = render_maps_with_layout(&panels, 3, None).unwrap();
    let blob = &layout.panels[1];
    for iy in [0, 37, 99] {
        for ix in [0, 10, 19] {
            let (x, y) = blob.screen_of(ix, iy);
            assert_eq!(canvas.get(x, y).unwrap(), MASK_COLOR, "({ix}, {iy})");
        }
        for ix in [20, 50, 99] {
            let (x, y) = blob.screen_of(ix, iy);
            assert_ne!(canvas.get(x, y).unwrap(), MASK_COLOR, "({ix}, {iy})");
        }
    }
    let (x, y) = layout.panels[2].screen_of(70, 50);
    assert_eq!(canvas.get(x, y).unwrap(), MASK_COLOR);
    let (x, y) = layout.panels[2].screen_of(71, 50);
    assert_ne!(canvas.get(x, y).unwrap(), MASK_COLOR);
    // Masked pixels do not enter the automatic range: the blob's maximum
    // (in the observed part) still maps to the top colour.
    let (x, y) = blob.screen_of(50, 50);
    assert_eq!(canvas.get(x, y).unwrap(), ColorMap::Magma.eval(1.0));
}

#[test]
fn row_zero_is_drawn_at_the_top() {
    let (nx, ny) = (30, 20);
    let data: Vec<f32> = (0..nx * ny).map(|i| (i / nx) as f32).collect();
    let mut panel = MapPanel::new("rows", &data, nx, ny);
    panel.range = Some((0.0, (ny - 1) as f32));
    let (canvas, layout) = render_maps_with_layout(&[panel], 1, None).unwrap();
    let im = layout.panels[0].image;
    let top = canvas.get(im.x + im.w / 2, im.y).unwrap();
    let bottom = canvas.get(im.x + im.w / 2, im.bottom() - 1).unwrap();
    assert_eq!(top, ColorMap::Viridis.eval(0.0));
    assert_eq!(bottom, ColorMap::Viridis.eval(1.0));
    // Columns run left to right.
    let data: Vec<f32> = (0..nx * ny).map(|i| (i % nx) as f32).collect();
    let mut panel = MapPanel::new("cols", &data, nx, ny);
    panel.range = Some((0.0, (nx - 1) as f32));
    let (canvas, layout) = render_maps_with_layout(&[panel], 1, None).unwrap();
    let im = layout.panels[0].image;
    assert_eq!(
        canvas.get(im.x, im.y + im.h / 2).unwrap(),
        ColorMap::Viridis.eval(0.0)
    );
    assert_eq!(
        canvas.get(im.right() - 1, im.y + im.h / 2).unwrap(),
        ColorMap::Viridis.eval(1.0)
    );
}

#[test]
fn titles_produce_dark_pixels() {
    let maps = Maps::new();
    let mut panels = maps.panels();
    panels[1].title.clear();
    let (canvas, layout) = render_maps_with_layout(&panels, 3, Some("Figure title")).unwrap();
    let sup = layout.suptitle.expect("suptitle band");
    let n = count_dark(&canvas, sup.x, sup.right(), sup.y, sup.bottom());
    assert!(n > 100, "suptitle: {n} dark pixels");
    for (k, p) in layout.panels.iter().enumerate() {
        // Over the map only: the colour bar's top tick label may reach up.
        let n = count_dark(
            &canvas,
            p.image.x,
            p.image.right(),
            p.title.y,
            p.title.bottom(),
        );
        if k == 1 {
            assert_eq!(n, 0, "untitled panel has ink in its title band");
        } else {
            assert!(n > 50, "panel {k}: {n} dark pixels in title band");
        }
    }
    // Without a suptitle the band is gone and the figure is shorter.
    let (c2, l2) = render_maps_with_layout(&panels, 3, None).unwrap();
    assert!(l2.suptitle.is_none() && c2.height < canvas.height);
}

#[test]
fn degenerate_maps_still_render() {
    let nan = vec![f32::NAN; 16 * 16];
    let flat = vec![2.5f32; 16 * 16];
    let zero = vec![0.0f32; 16 * 16];
    let ones = vec![1.0f32; 16 * 16];
    let none = vec![false; 16 * 16];
    let one = [7.0f32];
    let mut masked = MapPanel::new("all masked", &ones, 16, 16);
    masked.mask = Some(&none);
    let mut flat_rdbu = MapPanel::new("zero, RdBu", &zero, 16, 16);
    flat_rdbu.cmap = ColorMap::RdBu;
    let panels = vec![
        MapPanel::new("all NaN", &nan, 16, 16),
        masked,
        MapPanel::new("constant", &flat, 16, 16),
        flat_rdbu,
        MapPanel::new("1x1", &one, 1, 1),
    ];
    let (canvas, layout) = render_maps_with_layout(&panels, 3, Some("degenerate")).unwrap();
    for k in [0, 1] {
        let im = layout.panels[k].image;
        assert_eq!(distinct_colours(&canvas, im), 1);
        assert_eq!(canvas.get(im.x + 3, im.y + 3).unwrap(), MASK_COLOR);
    }
    for p in &layout.panels {
        assert!(p.range.0 < p.range.1, "{:?}", p.range);
        assert!(p.image.w >= 256 && p.image.h >= 256, "{:?}", p.image);
    }
    let (lo, hi) = layout.panels[2].range;
    assert!(lo < 2.5 && hi > 2.5);
    let path = temp_dir("degenerate").join("degenerate.png");
    save_maps(&path, &panels, 3, None).unwrap();
    png_header(&std::fs::read(&path).unwrap());
}

#[test]
fn maps_are_zoomed_or_block_averaged() {
    // Small maps are zoomed by an integer factor to >= 256 px.
    let small = gradient(16, 8);
    let (_, l) = render_maps_with_layout(&[MapPanel::new("", &small, 16, 8)], 1, None).unwrap();
    let p = &l.panels[0];
    assert_eq!((p.zoom, p.block), (16, 1));
    assert_eq!((p.image.w, p.image.h), (256, 128));
    // A 1200 x 700 pixel-scale checkerboard averages to a uniform grey level.
    let (nx, ny) = (1200, 700);
    let chk: Vec<f32> = (0..nx * ny)
        .map(|i| ((i % nx + i / nx) % 2) as f32)
        .collect();
    let mut panel = MapPanel::new("checkerboard", &chk, nx, ny);
    panel.range = Some((0.0, 1.0));
    let (canvas, l) = render_maps_with_layout(&[panel], 1, None).unwrap();
    let p = &l.panels[0];
    assert_eq!((p.block, p.zoom), (2, 1));
    assert_eq!((p.image.w, p.image.h), (600, 350));
    assert_eq!(distinct_colours(&canvas, p.image), 1);
    let c = canvas.get(p.image.x + 10, p.image.y + 10).unwrap();
    assert_eq!(c, ColorMap::Viridis.eval(0.5));
}

fn power_law_plot() -> LinePlot {
    let x: Vec<f64> = (0..40).map(|i| 10f64.powf(3.0 * i as f64 / 39.0)).collect();
    let y: Vec<f64> = x.iter().map(|x| 1e-3 * x.powi(-2)).collect();
    // A second series with points a log axis cannot show.
    let x2 = vec![-1.0, 0.0, 3.0, 30.0, 300.0, f64::NAN];
    let y2 = vec![1e-4, 1e-4, 0.0, 1e-7, -1.0, 1e-6];
    LinePlot {
        title: "power law".into(),
        xlabel: "ell".into(),
        ylabel: "C_ell".into(),
        logx: true,
        logy: true,
        series: vec![
            Series {
                label: "1e-3 x^-2".into(),
                x,
                y,
                style: LineStyle::Solid,
                color: series_color(0),
            },
            Series {
                label: "scattered".into(),
                x: x2,
                y: y2,
                style: LineStyle::Points,
                color: series_color(1),
            },
        ],
        size: (800, 560),
    }
}

#[test]
fn log_log_power_law_lies_on_the_diagonal() {
    let plot = power_law_plot();
    let (canvas, layout) = render_lineplot_with_layout(&plot).unwrap();
    assert_eq!(layout.x_range, (1.0, 1e3));
    assert_eq!(layout.y_range, (1e-9, 1e-3));
    let blue = series_color(0);
    let near = |px: f64, py: f64, r: i64, col: [u8; 3]| {
        (-r..=r).any(|dy| {
            (-r..=r).any(|dx| {
                let (x, y) = (px.round() as i64 + dx, py.round() as i64 + dy);
                x >= 0 && y >= 0 && canvas.get(x as u32, y as u32) == Some(col)
            })
        })
    };
    // The curve passes through every expected point...
    for i in 0..=60 {
        let x = 10f64.powf(0.05 + 2.9 * i as f64 / 60.0);
        let (px, py) = layout.to_pixel(x, 1e-3 * x.powi(-2)).unwrap();
        assert!(near(px, py, 2, blue), "curve missing at x = {x}");
    }
    // ...which lie on the straight line from top-left to bottom-right.
    let a = layout.plot_area;
    let (p0, p1) = (
        layout.to_pixel(1.0, 1e-3).unwrap(),
        layout.to_pixel(1e3, 1e-9).unwrap(),
    );
    assert!((p0.0 - f64::from(a.x)).abs() < 1.0 && (p0.1 - f64::from(a.y)).abs() < 1.0);
    assert!((p1.0 - f64::from(a.right() - 1)).abs() < 1.0);
    assert!((p1.1 - f64::from(a.bottom() - 1)).abs() < 1.0);
    // No blue pixel strays from that line (outside the legend).
    let legend = layout.legend.expect("legend");
    let (dx, dy) = (p1.0 - p0.0, p1.1 - p0.1);
    let len = dx.hypot(dy);
    let mut blue_px = 0;
    for y in a.y..a.bottom() {
        for x in a.x..a.right() {
            if canvas.get(x, y) == Some(blue) && !legend.contains(x, y) {
                let dist = ((f64::from(x) - p0.0) * dy - (f64::from(y) - p0.1) * dx).abs() / len;
                assert!(
                    dist < 3.0,
                    "blue pixel at ({x}, {y}), {dist:.1} px off the line"
                );
                blue_px += 1;
            }
        }
    }
    assert!(blue_px as f64 > 1.5 * len, "line too thin: {blue_px} px");
    // The legend sits in an empty corner, away from the diagonal.
    let centre = (
        f64::from(legend.x + legend.w / 2),
        f64::from(legend.y + legend.h / 2),
    );
    assert!(((centre.0 - p0.0) * dy - (centre.1 - p0.1) * dx).abs() / len > 100.0);
    // Points of the second series: shown where positive, skipped otherwise.
    let orange = series_color(1);
    let (px, py) = layout.to_pixel(30.0, 1e-7).unwrap();
    assert!(near(px, py, 1, orange));
    let (px, py) = layout.to_pixel(3.0, 1e-9).unwrap();
    assert!(!near(px, py, 4, orange), "y = 0 drawn at the bottom edge");
    assert!(layout.to_pixel(3.0, 0.0).is_none());
    assert!(layout.to_pixel(-1.0, 1e-4).is_none());
    // Tick labels and axis labels: ink below and left of the axes.
    assert!(count_dark(&canvas, a.x, a.right(), a.bottom() + 2, canvas.height) > 200);
    assert!(count_dark(&canvas, 0, a.x - 2, a.y, a.bottom()) > 200);
    assert!(
        count_dark(&canvas, a.x, a.right(), 0, a.y - 2) > 50,
        "title"
    );
}

#[test]
fn line_plots_save_and_handle_linear_axes() {
    let dir = temp_dir("lines");
    let plot = power_law_plot();
    let path = dir.join("loglog.png");
    save_lineplot(&path, &plot).unwrap();
    let canvas = render_lineplot(&plot).unwrap();
    let (w, h, _, _) = png_header(&std::fs::read(&path).unwrap());
    assert_eq!((w, h), (canvas.width, canvas.height));
    assert_eq!((w, h), plot.size);

    // Linear axes with negative values, a dashed series, an empty series.
    let x: Vec<f64> = (0..50).map(|i| i as f64 * 0.2 - 5.0).collect();
    let y: Vec<f64> = x.iter().map(|x| x.sin() * 3.0).collect();
    let lin = LinePlot {
        title: "linear".into(),
        logx: false,
        logy: false,
        series: vec![
            Series {
                label: "sin".into(),
                x: x.clone(),
                y,
                style: LineStyle::Dashed,
                color: series_color(2),
            },
            Series {
                label: String::new(),
                x: vec![],
                y: vec![],
                style: LineStyle::Solid,
                color: series_color(3),
            },
        ],
        size: (400, 300),
        ..LinePlot::default()
    };
    let (canvas, layout) = render_lineplot_with_layout(&lin).unwrap();
    assert!(layout.x_range.0 < -5.0 && layout.x_range.1 > 4.8);
    assert!(layout.y_range.0 < -2.9 && layout.y_range.1 > 2.9);
    let green = series_color(2);
    let n = canvas.pixels.chunks(3).filter(|c| *c == green).count();
    assert!(n > 200, "dashed series: {n} px");
    save_lineplot(&dir.join("linear.png"), &lin).unwrap();
    // An empty plot still draws its axes.
    let empty = LinePlot {
        logx: true,
        logy: true,
        ..LinePlot::default()
    };
    render_lineplot(&empty).unwrap();
}

#[test]
fn bad_input_gives_typed_errors() {
    let data = vec![0.0f32; 12];
    let mask = vec![true; 11];
    let ok = || MapPanel::new("", &data, 4, 3);
    let err = |p: MapPanel| render_maps(&[p], 1, None).unwrap_err();

    let mut p = ok();
    p.nx = 5;
    assert!(matches!(err(p), Error::ShapeMismatch { name: "data", .. }));
    let mut p = ok();
    p.mask = Some(&mask);
    assert!(matches!(err(p), Error::ShapeMismatch { name: "mask", .. }));
    let mut p = ok();
    p.nx = 0;
    p.data = &[];
    assert!(matches!(err(p), Error::InvalidArgument { .. }));
    for range in [
        (1.0, 1.0),
        (2.0, 1.0),
        (f32::NAN, 1.0),
        (0.0, f32::INFINITY),
        (f32::NEG_INFINITY, 0.0),
    ] {
        let mut p = ok();
        p.range = Some(range);
        assert!(
            matches!(err(p), Error::InvalidArgument { name: "range", .. }),
            "{range:?}"
        );
    }
    assert!(matches!(
        render_maps(&[], 1, None),
        Err(Error::InvalidArgument { name: "panels", .. })
    ));
    assert!(matches!(
        render_maps(&[ok()], 0, None),
        Err(Error::InvalidArgument { name: "ncols", .. })
    ));
    // A bad panel anywhere in the list fails the figure, and no file appears.
    let dir = temp_dir("errors");
    let path = dir.join("never.png");
    let mut bad = ok();
    bad.data = &data[..11];
    assert!(save_maps(&path, &[ok(), bad], 2, Some("x")).is_err());
    assert!(!path.exists());
    // Unwritable path.
    let missing = dir.join("no-such-dir").join("x.png");
    assert!(matches!(
        save_maps(&missing, &[ok()], 1, None),
        Err(Error::Io { .. })
    ));

    // Line plots.
    let mut plot = power_law_plot();
    plot.series[1].y.pop();
    assert!(matches!(
        render_lineplot(&plot),
        Err(Error::ShapeMismatch {
            name: "series.y",
            ..
        })
    ));
    assert!(save_lineplot(&dir.join("never2.png"), &plot).is_err());
    assert!(!dir.join("never2.png").exists());
    for size in [(0, 400), (400, 10), (100_000, 400)] {
        let plot = LinePlot {
            size,
            ..power_law_plot()
        };
        assert!(
            matches!(
                render_lineplot(&plot),
                Err(Error::InvalidArgument { name: "size", .. })
            ),
            "{size:?}"
        );
    }
    assert!(matches!(
        save_lineplot(&missing, &power_law_plot()),
        Err(Error::Io { .. })
    ));
}
