//! PNG figures with no system dependencies: map panels with colour bars and
//! log-log (or linear) line plots of spectra.
//!
//! - [`save_maps`] / [`render_maps`]: a grid of 2-D maps, each with a title
//!   and a colour bar. Row 0 of a map is drawn at the **top** (image
//!   convention, as matplotlib's `imshow(origin="upper")`); masked pixels are
//!   grey. See [`MapPanel`].
//! - [`save_lineplot`] / [`render_lineplot`]: curves on linear or log axes,
//!   with decade ticks, a legend and labels. See [`LinePlot`].
//! - [`save_corner`] / [`render_corner`]: corner plots of posterior samples
//!   (1-D histograms and 68/95% regions of 2-D ones). See [`CornerPlot`].
//!
//! Colour maps come from the `colorous` crate: the perceptually uniform
//! viridis family of matplotlib (viridis, magma, inferno, cividis), plus the
//! diverging `RdBu` for signed maps such as kappa residuals and `Greys`.
//! Text is drawn with the 8x8 bitmap font of `font8x8`, scaled by an integer
//! factor; PNGs are written with the `png` crate. The `render_*` functions
//! return the in-memory [`Canvas`] so its pixels can be inspected; the
//! `*_with_layout` variants also say where each part was drawn.
//!
//! ```no_run
//! use lensdiff::plot::{save_maps, ColorMap, MapPanel};
//! let kappa = vec![0.0f32; 128 * 128];
//! let mut panel = MapPanel::new("kappa", &kappa, 128, 128);
//! panel.cmap = ColorMap::Magma;
//! save_maps("kappa.png".as_ref(), &[panel], 1, None).unwrap();
//! ```

mod canvas;
mod colormap;
mod corner;
mod figure;
mod lineplot;
mod ticks;

pub use canvas::{Canvas, Dash, Rect, GLYPH};
pub use colormap::{series_color, ColorMap};
pub use corner::{credible_levels, render_corner, save_corner, CornerPlot};
pub use figure::{
    render_maps, render_maps_with_layout, save_maps, MapPanel, MapsLayout, PanelLayout, MASK_COLOR,
};
pub use lineplot::{
    render_lineplot, render_lineplot_with_layout, save_lineplot, LinePlot, LinePlotLayout,
    LineStyle, Series,
};
