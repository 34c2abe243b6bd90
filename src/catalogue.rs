//! Binning of galaxy shape catalogues into shear maps.
//!
//! A [`Catalogue`] holds per-galaxy sky positions (RA, Dec in degrees),
//! ellipticities `(e1, e2)` and optional shear weights. [`bin_catalogue`]
//! projects the positions onto a flat pixel grid about a centre and returns,
//! per pixel, the (weighted) mean ellipticity, the galaxy count, the sum of
//! weights, a per-pixel noise standard deviation and the mask of observed
//! pixels ([`BinnedShear`]).
//!
//! # Geometry
//!
//! Maps are row-major `[y][x]` like every map in lensdiff: `ny` rows of `nx`
//! pixels, **row 0 holds the lowest declination** (y increases with Dec,
//! North up). Along x, RA increases with the column index when
//! [`BinningOptions::ra_increases_with_x`] is true (the default, and the
//! orientation of the COSMOS maps in `../shared/data/cosmos`: East right);
//! otherwise columns are mirrored (`ix -> nx - 1 - ix`), which gives the usual
//! sky view with East left.
//!
//! Two projections map `(ra, dec)` to plane coordinates `(x, y)` in degrees
//! (x along increasing RA, y along increasing Dec) about the centre
//! `(ra0, dec0)`:
//!
//! - [`Projection::Gnomonic`] (default): the tangent-plane (`TAN`) zenithal
//!   projection of Calabretta & Greisen (2002, A&A 395, 1077, §5.1.3), with
//!   the native pole at the centre:
//!
//!   ```text
//!   cos c = sin dec0 sin dec + cos dec0 cos dec cos(ra - ra0)
//!   x     = cos dec sin(ra - ra0) / cos c
//!   y     = (cos dec0 sin dec - sin dec0 cos dec cos(ra - ra0)) / cos c
//!   ```
//!
//!   (x and y in radians, converted to degrees). Galaxies with `cos c <= 0`
//!   (90° or more from the centre) are never in the field.
//! - [`Projection::Plate`]: raw coordinate offsets, `x = ra - ra0`,
//!   `y = dec - dec0` in degrees, with no `cos dec` factor. This is what
//!   jax-lensing (Remy et al. 2023) did to build the COSMOS maps; it distorts
//!   the field by `cos dec0` along x (0.08% at COSMOS' Dec of 2.2°, enough to
//!   move 269 of the 69,191 mask pixels). RA differences are wrapped into
//!   `[-180°, 180°]`, so fields that straddle RA = 0 bin correctly.
//!
//! The grid spans `nx * pixel_arcmin / 60` degrees along x and
//! `ny * pixel_arcmin / 60` along y, centred on the centre. Pixel edges follow
//! `numpy.histogram2d(..., bins=n, range=...)` exactly: edges are
//! `linspace(lo, hi, n + 1)` (`edge_i = i * ((hi - lo) / n) + lo`,
//! `edge_n = hi`), a galaxy at `edge_i <= u < edge_{i+1}` falls in pixel `i`,
//! the last pixel also takes `u == hi`, and anything outside `[lo, hi]` is
//! counted in [`BinnedShear::n_outside`]. For the Plate projection the edges
//! are computed in absolute RA and Dec (`lo = ra0 - width / 2`, ...), as
//! jax-lensing did, which makes the COSMOS maps reproducible bit for bit.
//!
//! # Ellipticity sign convention
//!
//! Catalogue ellipticities are taken in the standard sky frame, North up and
//! East left (`e1 > 0` elongated East–West, `e2 > 0` along North-East). A map
//! with RA increasing along +x is that frame mirrored left–right; a mirror
//! leaves `e1` unchanged and **changes the sign of `e2`**. Set
//! [`BinningOptions::flip_e2`] to true in that case (the default, matching the
//! default `ra_increases_with_x = true`, and the stored COSMOS e2 map, which
//! is negated). The small rotation between local North and the grid's y axis
//! away from the centre (about `(ra - ra0) sin dec0`, 0.03° across COSMOS) is
//! not applied.
//!
//! # Means and noise
//!
//! Per pixel `p` with galaxies `g`:
//!
//! ```text
//! e_c[p]   = sum_g w_g e_c,g / sum_g w_g            (0 where the mask is false)
//! std_c[p] = sigma_c / sqrt(n_gal[p])                (NoiseEstimate::Counts)
//!          = sigma_c sqrt(sum_g w_g^2) / sum_g w_g   (NoiseEstimate::Weights)
//! ```
//!
//! with `w_g` the catalogue weights (1 when the catalogue has none or
//! [`BinningOptions::weighted`] is false) and `sigma_c` the population
//! standard deviation (`ddof = 0`, unweighted) of `e_c` over the whole
//! catalogue, galaxies outside the field included. The mask is `sum_g w_g > 0`.
//! Sums are accumulated in f64 in catalogue order; means are rounded to f32
//! once at the end.
//!
//! # Reproducing the COSMOS maps of jax-lensing
//!
//! [`BinningOptions::jax_lensing`] (Plate projection, median centre, weighted
//! mean with `nhweight_int`, e2 flipped, `sigma_c / sqrt(n_gal)` noise) on a
//! 360x360 grid of 0.29' reproduces `cosmos_full_e1_0.29arcmin360.fits`,
//! `cosmos_full_e2_0.29arcmin360.fits` and the mask bit for bit, and
//! `std1.fits`, `std2.fits` (f64) to the f32 rounding of our std maps (1e-8;
//! 2e-15 before rounding). This is lenspack's
//! `bin2d` (a weighted `numpy.histogram2d` of raw RA/Dec) with
//! `extent = [ra_med -/+ 1.74/2, dec_med -/+ 1.74/2]`.

use std::path::Path;

use crate::error::{Error, Result};
use crate::grid::Grid;

/// How sky positions are mapped onto the flat grid (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Projection {
    /// Tangent-plane (gnomonic, FITS `TAN`) projection about the centre.
    #[default]
    Gnomonic,
    /// Raw offsets `(ra - ra0, dec - dec0)` in degrees, no `cos dec` factor
    /// (the jax-lensing convention).
    Plate,
}

/// Where the grid is centred.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Centre {
    /// Median RA and median Dec of the catalogue (as `numpy.median`: the mean
    /// of the two middle values for an even count). RA is unwrapped at the
    /// largest empty gap of the RA circle first, so fields across RA = 0 work.
    #[default]
    Median,
    /// Mean RA and mean Dec of the catalogue (RA unwrapped as for `Median`).
    Mean,
    /// A given centre in degrees.
    Given {
        /// Right ascension of the centre (degrees).
        ra_deg: f64,
        /// Declination of the centre (degrees, in `[-90, 90]`).
        dec_deg: f64,
    },
}

/// Which per-pixel noise standard deviation [`bin_catalogue`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoiseEstimate {
    /// `sigma_c / sqrt(n_gal)`: the convention of jax-lensing's `std1/std2`
    /// maps (exact for unweighted means).
    #[default]
    Counts,
    /// `sigma_c sqrt(sum w^2) / sum w`: the standard deviation of the weighted
    /// mean when every galaxy has the same intrinsic dispersion `sigma_c`.
    Weights,
}

/// A galaxy shape catalogue: one entry per galaxy in every column.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalogue {
    /// Right ascension in degrees.
    pub ra: Vec<f64>,
    /// Declination in degrees, in `[-90, 90]`.
    pub dec: Vec<f64>,
    /// First ellipticity component (North up, East left).
    pub e1: Vec<f64>,
    /// Second ellipticity component (North up, East left).
    pub e2: Vec<f64>,
    /// Optional non-negative shear weights (e.g. COSMOS `nhweight_int`).
    pub weight: Option<Vec<f64>>,
}

impl Catalogue {
    /// Builds a catalogue and checks it (see [`Catalogue::validate`]).
    pub fn new(
        ra: Vec<f64>,
        dec: Vec<f64>,
        e1: Vec<f64>,
        e2: Vec<f64>,
        weight: Option<Vec<f64>>,
    ) -> Result<Self> {
        let cat = Catalogue {
            ra,
            dec,
            e1,
            e2,
            weight,
        };
        cat.validate()?;
        Ok(cat)
    }

    /// Reads each column from a 1-D FITS image or `.npy` file (via
    /// [`crate::io::read_column_f64`]) and checks the result.
    pub fn from_files(
        ra: &Path,
        dec: &Path,
        e1: &Path,
        e2: &Path,
        weight: Option<&Path>,
    ) -> Result<Self> {
        let weight = match weight {
            Some(p) => Some(crate::io::read_column_f64(p)?),
            None => None,
        };
        Self::new(
            crate::io::read_column_f64(ra)?,
            crate::io::read_column_f64(dec)?,
            crate::io::read_column_f64(e1)?,
            crate::io::read_column_f64(e2)?,
            weight,
        )
    }

    /// Reads the COSMOS catalogue as laid out in `../shared/data/cosmos`:
    /// `ra.fits`, `dec.fits`, `e1.fits`, `e2.fits` and, as weights,
    /// `nhweight_int.fits`.
    pub fn from_cosmos_dir(dir: &Path) -> Result<Self> {
        Self::from_files(
            &dir.join("ra.fits"),
            &dir.join("dec.fits"),
            &dir.join("e1.fits"),
            &dir.join("e2.fits"),
            Some(&dir.join("nhweight_int.fits")),
        )
    }

    /// Number of galaxies.
    pub fn len(&self) -> usize {
        self.ra.len()
    }

    /// True when the catalogue has no galaxy (never, for a validated one).
    pub fn is_empty(&self) -> bool {
        self.ra.is_empty()
    }

    /// Checks the invariants: at least one galaxy, equal column lengths,
    /// finite values, `|dec| <= 90`, non-negative weights.
    ///
    /// The fields are public, so [`bin_catalogue`] checks again.
    pub fn validate(&self) -> Result<()> {
        let n = self.ra.len();
        if n == 0 {
            return Err(Error::invalid("catalogue", "no galaxies"));
        }
        let mut columns: Vec<(&'static str, &[f64])> = vec![
            ("ra", &self.ra),
            ("dec", &self.dec),
            ("e1", &self.e1),
            ("e2", &self.e2),
        ];
        if let Some(w) = &self.weight {
            columns.push(("weight", w));
        }
        for (name, col) in &columns {
            if col.len() != n {
                return Err(Error::shape(name, n, col.len()));
            }
            if let Some(index) = col.iter().position(|v| !v.is_finite()) {
                return Err(Error::NonFinite { name, index });
            }
        }
        if let Some(i) = self.dec.iter().position(|d| d.abs() > 90.0) {
            return Err(Error::invalid(
                "dec",
                format!(
                    "declination {} at index {i} is outside [-90, 90]",
                    self.dec[i]
                ),
            ));
        }
        if let Some(w) = &self.weight {
            // a negative weight is a negative noise level (one rule, see noise.rs)
            if let Some(index) = w.iter().position(|&v| v < 0.0) {
                return Err(Error::NegativeVariance {
                    name: "weight",
                    index,
                    value: w[index],
                });
            }
        }
        Ok(())
    }

    /// The sky centre that `centre` designates for this catalogue,
    /// `(ra_deg, dec_deg)` with RA in `[0, 360)`.
    pub fn centre(&self, centre: Centre) -> Result<(f64, f64)> {
        match centre {
            Centre::Given { ra_deg, dec_deg } => {
                check_centre(ra_deg, dec_deg)?;
                Ok((ra_deg.rem_euclid(360.0), dec_deg))
            }
            Centre::Median | Centre::Mean => {
                self.validate()?;
                let cut = ra_cut(&self.ra);
                let unwrapped: Vec<f64> = self.ra.iter().map(|&r| unwrap_ra(r, cut)).collect();
                let (ra, dec) = if centre == Centre::Median {
                    (median(unwrapped), median(self.dec.clone()))
                } else {
                    (mean(&unwrapped), mean(&self.dec))
                };
                Ok((ra.rem_euclid(360.0), dec))
            }
        }
    }
}

/// Everything [`bin_catalogue`] needs besides the catalogue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BinningOptions {
    /// Output grid: `nx` columns (RA direction), `ny` rows (Dec), pixel size.
    pub grid: Grid,
    /// Grid centre.
    pub centre: Centre,
    /// Sky-to-plane projection.
    pub projection: Projection,
    /// True: RA increases with the column index (East right, like the COSMOS
    /// maps). False: columns are mirrored (East left, the usual sky view).
    pub ra_increases_with_x: bool,
    /// Negate the e2 map. A frame with RA increasing along +x is mirrored with
    /// respect to the catalogue's (North up, East left), and a mirror changes
    /// the sign of e2: set this equal to `ra_increases_with_x` for a map whose
    /// shear is consistent with its orientation.
    pub flip_e2: bool,
    /// Use the catalogue weights in the means (ignored when it has none).
    pub weighted: bool,
    /// Which per-pixel noise standard deviation to report.
    pub noise: NoiseEstimate,
}

impl BinningOptions {
    /// Defaults: median centre, gnomonic projection, RA increasing along +x,
    /// e2 flipped accordingly, weighted means, `sigma / sqrt(n_gal)` noise.
    pub fn new(grid: Grid) -> Self {
        BinningOptions {
            grid,
            centre: Centre::Median,
            projection: Projection::Gnomonic,
            ra_increases_with_x: true,
            flip_e2: true,
            weighted: true,
            noise: NoiseEstimate::Counts,
        }
    }

    /// The convention of jax-lensing's COSMOS maps (Remy et al. 2023): as
    /// [`BinningOptions::new`] but with the [`Projection::Plate`] projection.
    pub fn jax_lensing(grid: Grid) -> Self {
        BinningOptions {
            projection: Projection::Plate,
            ..Self::new(grid)
        }
    }
}

/// A grid placed on the sky: maps `(ra, dec)` to pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SkyGrid {
    /// The pixel grid.
    pub grid: Grid,
    /// RA of the grid centre (degrees).
    pub centre_ra_deg: f64,
    /// Dec of the grid centre (degrees).
    pub centre_dec_deg: f64,
    /// Sky-to-plane projection.
    pub projection: Projection,
    /// Orientation of x (see [`BinningOptions::ra_increases_with_x`]).
    pub ra_increases_with_x: bool,
}

impl SkyGrid {
    /// A grid centred on `(centre_ra_deg, centre_dec_deg)`.
    pub fn new(
        grid: Grid,
        centre_ra_deg: f64,
        centre_dec_deg: f64,
        projection: Projection,
        ra_increases_with_x: bool,
    ) -> Result<Self> {
        let grid = Grid::new(grid.nx, grid.ny, grid.pixel_arcmin)?;
        check_centre(centre_ra_deg, centre_dec_deg)?;
        Ok(SkyGrid {
            grid,
            centre_ra_deg,
            centre_dec_deg,
            projection,
            ra_increases_with_x,
        })
    }

    /// Plane coordinates `[x, y]` in degrees of a sky position, relative to
    /// the centre (x along increasing RA, y along increasing Dec); `None` for
    /// a gnomonic position 90° or more from the centre or non-finite input.
    pub fn project(&self, ra_deg: f64, dec_deg: f64) -> Option<[f64; 2]> {
        let p = Projector::new(self);
        let (u, v) = p.coords(ra_deg, dec_deg)?;
        Some([u - p.u0, v - p.v0])
    }

    /// Pixel `(iy, ix)` (row, column) of a sky position, `None` outside.
    pub fn pixel(&self, ra_deg: f64, dec_deg: f64) -> Option<(usize, usize)> {
        Projector::new(self).pixel(ra_deg, dec_deg)
    }
}

/// Binned shear maps and their noise, all row-major `[y][x]` on `grid`.
#[derive(Debug, Clone, PartialEq)]
pub struct BinnedShear {
    /// The pixel grid.
    pub grid: Grid,
    /// RA of the grid centre (degrees, in `[0, 360)`).
    pub centre_ra_deg: f64,
    /// Dec of the grid centre (degrees).
    pub centre_dec_deg: f64,
    /// Projection used.
    pub projection: Projection,
    /// Orientation of x used.
    pub ra_increases_with_x: bool,
    /// Mean e1 per pixel (weighted if requested); 0 where `mask` is false.
    pub e1: Vec<f32>,
    /// Mean e2 per pixel, negated if `flip_e2`; 0 where `mask` is false.
    pub e2: Vec<f32>,
    /// Galaxies per pixel.
    pub counts: Vec<u32>,
    /// Sum of the weights used in the means per pixel (the count when
    /// unweighted).
    pub weight_sum: Vec<f64>,
    /// Noise standard deviation of `e1` per pixel; 0 where `mask` is false.
    pub std1: Vec<f32>,
    /// Noise standard deviation of `e2` per pixel; 0 where `mask` is false.
    pub std2: Vec<f32>,
    /// True where the pixel holds galaxies of positive total weight.
    pub mask: Vec<bool>,
    /// Population standard deviation of e1 and e2 over the whole catalogue.
    pub sigma_e: [f64; 2],
    /// Galaxies that fell outside the grid.
    pub n_outside: usize,
}

impl BinnedShear {
    /// The sky placement of the maps.
    pub fn sky_grid(&self) -> SkyGrid {
        SkyGrid {
            grid: self.grid,
            centre_ra_deg: self.centre_ra_deg,
            centre_dec_deg: self.centre_dec_deg,
            projection: self.projection,
            ra_increases_with_x: self.ra_increases_with_x,
        }
    }

    /// Number of observed (unmasked) pixels.
    pub fn n_observed(&self) -> usize {
        self.mask.iter().filter(|&&m| m).count()
    }

    /// The mask as 1.0 (observed) / 0.0 (masked), as stored in mask files.
    pub fn mask_f32(&self) -> Vec<f32> {
        self.mask
            .iter()
            .map(|&m| if m { 1.0 } else { 0.0 })
            .collect()
    }
}

/// Bins a catalogue into shear maps (see the module docs for the conventions).
///
/// Errors: an invalid catalogue or grid, an invalid given centre, more than
/// `u32::MAX` galaxies, or no galaxy of positive weight inside the grid.
pub fn bin_catalogue(cat: &Catalogue, opts: &BinningOptions) -> Result<BinnedShear> {
    cat.validate()?;
    let n = cat.len();
    if u32::try_from(n).is_err() {
        return Err(Error::invalid(
            "catalogue",
            format!("{n} galaxies exceed the u32 pixel counters"),
        ));
    }
    let (ra0, dec0) = cat.centre(opts.centre)?;
    let sky = SkyGrid::new(
        opts.grid,
        ra0,
        dec0,
        opts.projection,
        opts.ra_increases_with_x,
    )?;
    let grid = sky.grid;
    let npix = grid.len();
    let weights = if opts.weighted {
        cat.weight.as_deref()
    } else {
        None
    };

    let mut counts = vec![0u32; npix];
    let mut sw = vec![0f64; npix];
    let mut sw2 = vec![0f64; npix];
    let mut s1 = vec![0f64; npix];
    let mut s2 = vec![0f64; npix];
    let mut n_outside = 0usize;
    let proj = Projector::new(&sky);
    for g in 0..n {
        let Some((iy, ix)) = proj.pixel(cat.ra[g], cat.dec[g]) else {
            n_outside += 1;
            continue;
        };
        let p = iy * grid.nx + ix;
        counts[p] += 1;
        match weights {
            Some(w) => {
                let w = w[g];
                sw[p] += w;
                sw2[p] += w * w;
                s1[p] += cat.e1[g] * w;
                s2[p] += cat.e2[g] * w;
            }
            None => {
                sw[p] += 1.0;
                sw2[p] += 1.0;
                s1[p] += cat.e1[g];
                s2[p] += cat.e2[g];
            }
        }
    }

    let mask: Vec<bool> = sw.iter().map(|&w| w > 0.0).collect();
    if !mask.iter().any(|&m| m) {
        return Err(Error::invalid(
            "catalogue",
            format!(
                "no galaxy of positive weight falls in the {}x{} grid of {}' pixels \
                 centred on RA {ra0}, Dec {dec0} ({n_outside} of {n} outside)",
                grid.ny, grid.nx, grid.pixel_arcmin
            ),
        ));
    }
    let sigma_e = [population_std(&cat.e1), population_std(&cat.e2)];
    let sign2 = if opts.flip_e2 { -1.0 } else { 1.0 };
    let mut e1 = vec![0f32; npix];
    let mut e2 = vec![0f32; npix];
    let mut std1 = vec![0f32; npix];
    let mut std2 = vec![0f32; npix];
    for p in 0..npix {
        if !mask[p] {
            continue;
        }
        e1[p] = (s1[p] / sw[p]) as f32;
        e2[p] = (sign2 * (s2[p] / sw[p])) as f32;
        let scale = match opts.noise {
            NoiseEstimate::Counts => 1.0 / f64::from(counts[p]).sqrt(),
            NoiseEstimate::Weights => sw2[p].sqrt() / sw[p],
        };
        std1[p] = (sigma_e[0] * scale) as f32;
        std2[p] = (sigma_e[1] * scale) as f32;
    }

    Ok(BinnedShear {
        grid,
        centre_ra_deg: ra0,
        centre_dec_deg: dec0,
        projection: opts.projection,
        ra_increases_with_x: opts.ra_increases_with_x,
        e1,
        e2,
        counts,
        weight_sum: sw,
        std1,
        std2,
        mask,
        sigma_e,
        n_outside,
    })
}

fn check_centre(ra_deg: f64, dec_deg: f64) -> Result<()> {
    if !ra_deg.is_finite() {
        return Err(Error::invalid(
            "centre",
            format!("RA must be finite, got {ra_deg}"),
        ));
    }
    if !(dec_deg.is_finite() && dec_deg.abs() <= 90.0) {
        return Err(Error::invalid(
            "centre",
            format!("Dec must be in [-90, 90], got {dec_deg}"),
        ));
    }
    Ok(())
}

/// Precomputed projection and pixel edges of a [`SkyGrid`].
///
/// Binning happens in coordinates `(u, v)`: absolute `(ra, dec)` for Plate
/// (so that edges match numpy's `linspace` about the centre bit for bit),
/// plane `(x, y)` in degrees for Gnomonic. `(u0, v0)` is the centre in them.
struct Projector {
    projection: Projection,
    ra0: f64,
    ra0_rad: f64,
    sin_dec0: f64,
    cos_dec0: f64,
    u0: f64,
    v0: f64,
    half_x: f64,
    half_y: f64,
    nx: usize,
    ny: usize,
    mirror: bool,
}

impl Projector {
    fn new(sky: &SkyGrid) -> Self {
        let (width, height) = sky.grid.extent_deg();
        let (sin_dec0, cos_dec0) = sky.centre_dec_deg.to_radians().sin_cos();
        let (u0, v0) = match sky.projection {
            Projection::Plate => (sky.centre_ra_deg, sky.centre_dec_deg),
            Projection::Gnomonic => (0.0, 0.0),
        };
        Projector {
            projection: sky.projection,
            ra0: sky.centre_ra_deg,
            ra0_rad: sky.centre_ra_deg.to_radians(),
            sin_dec0,
            cos_dec0,
            u0,
            v0,
            half_x: width / 2.0,
            half_y: height / 2.0,
            nx: sky.grid.nx,
            ny: sky.grid.ny,
            mirror: !sky.ra_increases_with_x,
        }
    }

    /// Binning coordinates of a sky position.
    fn coords(&self, ra: f64, dec: f64) -> Option<(f64, f64)> {
        if !(ra.is_finite() && dec.is_finite()) {
            return None;
        }
        match self.projection {
            Projection::Plate => {
                let d = ra - self.ra0;
                // Leave RA untouched unless it is on the other side of the
                // wrap, so that the common case is bit-exact.
                let ra = if d.abs() > 180.0 {
                    self.ra0 + ((d + 180.0).rem_euclid(360.0) - 180.0)
                } else {
                    ra
                };
                Some((ra, dec))
            }
            Projection::Gnomonic => {
                let (sin_d, cos_d) = dec.to_radians().sin_cos();
                let (sin_da, cos_da) = (ra.to_radians() - self.ra0_rad).sin_cos();
                let cos_c = self.sin_dec0 * sin_d + self.cos_dec0 * cos_d * cos_da;
                if cos_c <= 0.0 {
                    return None;
                }
                let x = cos_d * sin_da / cos_c;
                let y = (self.cos_dec0 * sin_d - self.sin_dec0 * cos_d * cos_da) / cos_c;
                Some((x.to_degrees(), y.to_degrees()))
            }
        }
    }

    fn pixel(&self, ra: f64, dec: f64) -> Option<(usize, usize)> {
        let (u, v) = self.coords(ra, dec)?;
        let ix = bin_index(u, self.u0 - self.half_x, self.u0 + self.half_x, self.nx)?;
        let iy = bin_index(v, self.v0 - self.half_y, self.v0 + self.half_y, self.ny)?;
        let ix = if self.mirror { self.nx - 1 - ix } else { ix };
        Some((iy, ix))
    }
}

/// Bin of `x` among `n` bins with edges `numpy.linspace(lo, hi, n + 1)`, as
/// `numpy.histogram2d`: `edge_k <= x < edge_{k+1}`, the last bin closed.
fn bin_index(x: f64, lo: f64, hi: f64, n: usize) -> Option<usize> {
    if n == 0 || !(x >= lo && x <= hi) {
        return None;
    }
    let step = (hi - lo) / n as f64;
    let edge = |i: usize| if i >= n { hi } else { i as f64 * step + lo };
    // Candidate from arithmetic (saturating cast), then exact fix-up against
    // the edges numpy would compute.
    let mut k = (((x - lo) / step).floor() as usize).min(n - 1);
    while k > 0 && edge(k) > x {
        k -= 1;
    }
    while k + 1 < n && edge(k + 1) <= x {
        k += 1;
    }
    Some(k)
}

/// Where to cut the RA circle: the middle of its largest empty stretch (on a
/// 0.1° histogram). Returns 0 when that stretch contains or touches RA = 0
/// (no unwrapping needed) or when no stretch is empty.
fn ra_cut(ra: &[f64]) -> f64 {
    const NB: usize = 3600;
    let mut occupied = vec![false; NB];
    for &r in ra {
        let b = ((r.rem_euclid(360.0) / 360.0 * NB as f64) as usize).min(NB - 1);
        occupied[b] = true;
    }
    let Some(start) = occupied.iter().position(|&o| o) else {
        return 0.0;
    };
    // Walk the circle once from an occupied bin, tracking empty runs.
    let (mut best_len, mut best_start) = (0usize, 0usize);
    let mut run = 0usize;
    for step in 1..=NB {
        let b = (start + step) % NB;
        if occupied[b] {
            run = 0;
        } else {
            run += 1;
            if run > best_len {
                best_len = run;
                best_start = (b + NB + 1 - run) % NB;
            }
        }
    }
    if best_len == 0 || best_start == 0 || best_start + best_len >= NB {
        // No gap, or the largest gap touches RA = 0: nothing to unwrap.
        return 0.0;
    }
    (best_start as f64 + best_len as f64 / 2.0) * 360.0 / NB as f64
}

/// RA reduced to `[0, 360)`, plus 360 below the cut.
fn unwrap_ra(ra: f64, cut: f64) -> f64 {
    let r = ra.rem_euclid(360.0);
    if r < cut {
        r + 360.0
    } else {
        r
    }
}

/// `numpy.median` of finite values (non-empty).
fn median(mut v: Vec<f64>) -> f64 {
    let n = v.len();
    let mid = n / 2;
    let (lower, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let m = *m;
    if n % 2 == 1 {
        m
    } else {
        let a = lower.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (a + m) / 2.0
    }
}

/// Compensated (Neumaier) sum.
fn sum(v: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut c) = (0.0f64, 0.0f64);
    for x in v {
        let t = s + x;
        if s.abs() >= x.abs() {
            c += (s - t) + x;
        } else {
            c += (x - t) + s;
        }
        s = t;
    }
    s + c
}

fn mean(v: &[f64]) -> f64 {
    sum(v.iter().copied()) / v.len() as f64
}

/// Standard deviation with `ddof = 0`, as `numpy.std`.
fn population_std(v: &[f64]) -> f64 {
    let m = mean(v);
    (sum(v.iter().map(|x| (x - m) * (x - m))) / v.len() as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_index_follows_numpy_edges() {
        // linspace(0, 1, 11): edge 3 = 3 * 0.1 = 0.30000000000000004 > 0.3,
        // edge 7 = 0.7000000000000001 > 0.7, so numpy puts 0.3 in bin 2 and
        // 0.7 in bin 6; 1.0 (the last edge) goes in the last bin.
        assert_eq!(bin_index(0.3, 0.0, 1.0, 10), Some(2));
        assert_eq!(bin_index(0.7, 0.0, 1.0, 10), Some(6));
        assert_eq!(bin_index(0.0, 0.0, 1.0, 10), Some(0));
        assert_eq!(bin_index(1.0, 0.0, 1.0, 10), Some(9));
        assert_eq!(bin_index(0.1, 0.0, 1.0, 10), Some(1));
        assert_eq!(bin_index(-1e-300, 0.0, 1.0, 10), None);
        assert_eq!(bin_index(1.0 + f64::EPSILON, 0.0, 1.0, 10), None);
        assert_eq!(bin_index(f64::NAN, 0.0, 1.0, 10), None);
        // Against a brute-force searchsorted on many points.
        let (lo, hi, n) = (150.1161025 - 0.87, 150.1161025 + 0.87, 360);
        let step = (hi - lo) / n as f64;
        let mut edges: Vec<f64> = (0..=n).map(|i| i as f64 * step + lo).collect();
        edges[n] = hi;
        for k in 0..=20000 {
            let x = lo - 0.01 + (hi - lo + 0.02) * k as f64 / 20000.0;
            for x in [x, edges[(k % (n + 1)).min(n)]] {
                let right = edges.partition_point(|&e| e <= x);
                let expect = if x == hi {
                    Some(n - 1)
                } else if right == 0 || right > n {
                    None
                } else {
                    Some(right - 1)
                };
                assert_eq!(bin_index(x, lo, hi, n), expect, "x = {x}");
            }
        }
    }

    #[test]
    fn median_matches_numpy() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![5.0]), 5.0);
    }

    #[test]
    fn ra_cut_finds_the_gap() {
        // No wrap: the gap contains RA = 0.
        assert_eq!(ra_cut(&[150.0, 151.0]), 0.0);
        // A field across RA = 0: the cut lands in the big empty middle.
        let c = ra_cut(&[359.0, 359.5, 0.5, 1.0]);
        assert!(c > 2.0 && c < 358.0, "cut {c}");
        assert_eq!(unwrap_ra(0.5, c), 360.5);
        assert_eq!(unwrap_ra(359.0, c), 359.0);
    }
}
