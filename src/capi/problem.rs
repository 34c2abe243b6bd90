//! The problem handle: grid, shear data, noise, mask and prior.

use super::{
    guard, handle, handle_mut, input, out_ptr, output, register, release, CError, CResult, Kind,
    LensdiffStatus,
};
use crate::baselines::{kaiser_squires, WienerFilter, WienerOptions};
use crate::catalogue::{bin_catalogue, BinningOptions, Catalogue, Projection};
use crate::cosmo::limber::{convergence_cl, ClOptions};
use crate::cosmo::linear::Transfer;
use crate::cosmo::nz::Nz;
use crate::cosmo::Cosmology;
use crate::fields::{gaussian_fields, simulate_shear, LogNormal};
use crate::grid::Grid;
use crate::noise::NoiseModel;
use crate::smoothing::Boundary;
use crate::spectrum::ClTable;

/// Gnomonic (tangent-plane) projection for [`lensdiff_problem_bin_catalogue`].
pub const LENSDIFF_PROJECTION_GNOMONIC: i32 = 0;
/// Plate projection (raw RA/Dec offsets, jax-lensing's COSMOS maps).
pub const LENSDIFF_PROJECTION_PLATE: i32 = 1;
/// Gaussian random field for [`lensdiff_problem_simulate`].
pub const LENSDIFF_FIELD_GAUSSIAN: i32 = 0;
/// Log-normal field for [`lensdiff_problem_simulate`].
pub const LENSDIFF_FIELD_LOGNORMAL: i32 = 1;

/// Opaque: a grid with its data, noise, mask and prior.
pub struct LensdiffProblem {
    pub(crate) grid: Grid,
    pub(crate) g1: Option<Vec<f32>>,
    pub(crate) g2: Option<Vec<f32>>,
    std: Option<(Vec<f32>, Vec<f32>)>,
    sigma: Option<f64>,
    mask: Option<Vec<bool>>,
    pub(crate) prior_power: Option<Vec<f64>>,
    /// The joint prior of parameters and map ([`super::joint`]), shared
    /// read-only with the joint samplers made from this problem.
    pub(crate) joint: Option<std::sync::Arc<super::joint::JointModel>>,
    /// The learned map prior ([`super::model`]), shared read-only with the
    /// samplers made from this problem.
    pub(crate) model: Option<std::sync::Arc<crate::prior::Denoiser>>,
}

impl LensdiffProblem {
    pub(crate) fn noise(&self) -> CResult<NoiseModel> {
        let mask = self.mask.as_deref();
        match (&self.std, self.sigma) {
            (Some((s1, s2)), _) => Ok(NoiseModel::from_std(self.grid, s1, s2, mask)?),
            (None, Some(s)) => Ok(NoiseModel::uniform(self.grid, s, mask)?),
            (None, None) => Err(CError::new(
                LensdiffStatus::CallOrder,
                "no noise model: call lensdiff_problem_set_noise_std or _set_noise_uniform first",
            )),
        }
    }

    pub(crate) fn shear(&self) -> CResult<(&[f32], &[f32])> {
        match (&self.g1, &self.g2) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => Err(CError::new(
                LensdiffStatus::CallOrder,
                "no shear data: call lensdiff_problem_set_shear, _bin_catalogue or _simulate first",
            )),
        }
    }

    pub(crate) fn power(&self) -> CResult<&[f64]> {
        self.prior_power.as_deref().ok_or_else(|| {
            CError::new(
                LensdiffStatus::CallOrder,
                "no prior: call lensdiff_problem_set_prior_cl, _set_prior_cosmology or _set_prior_default first",
            )
        })
    }
}

fn problem<'a>(p: *const LensdiffProblem) -> CResult<&'a LensdiffProblem> {
    handle(p, Kind::Problem, "problem")
}

fn problem_mut<'a>(p: *mut LensdiffProblem) -> CResult<&'a mut LensdiffProblem> {
    handle_mut(p, Kind::Problem, "problem")
}

/// Creates a problem on an `ny` x `nx` grid of `pixel_arcmin` pixels.
///
/// # Safety
/// `out` must be NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_problem_create(
    nx: usize,
    ny: usize,
    pixel_arcmin: f64,
    out: *mut *mut LensdiffProblem,
) -> LensdiffStatus {
    guard(|| {
        let out = out_ptr(out, "out")?;
        let grid = Grid::new(nx, ny, pixel_arcmin)?;
        *out = register(
            Box::new(LensdiffProblem {
                grid,
                g1: None,
                g2: None,
                std: None,
                sigma: None,
                mask: None,
                prior_power: None,
                joint: None,
                model: None,
            }),
            Kind::Problem,
        );
        Ok(())
    })
}

/// Destroys a problem (NULL is accepted and does nothing).
///
/// # Safety
/// `p` must be NULL or a pointer returned by [`lensdiff_problem_create`].
#[no_mangle]
pub unsafe extern "C" fn lensdiff_problem_destroy(p: *mut LensdiffProblem) -> LensdiffStatus {
    guard(|| release(p, Kind::Problem, "problem"))
}

/// Writes the grid size.
///
/// # Safety
/// Pointers must be valid.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_problem_shape(
    p: *const LensdiffProblem,
    nx: *mut usize,
    ny: *mut usize,
) -> LensdiffStatus {
    guard(|| {
        let pr = problem(p)?;
        *out_ptr(nx, "nx")? = pr.grid.nx;
        *out_ptr(ny, "ny")? = pr.grid.ny;
        Ok(())
    })
}

/// Sets the observed shear maps (`len = nx * ny`, row-major `[y][x]`).
///
/// # Safety
/// `g1`, `g2` must point to `len` floats.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_problem_set_shear(
    p: *mut LensdiffProblem,
    g1: *const f32,
    g2: *const f32,
    len: usize,
) -> LensdiffStatus {
    guard(|| {
        let pr = problem_mut(p)?;
        let n = pr.grid.len();
        let (a, b) = (input(g1, len, n, "g1")?, input(g2, len, n, "g2")?);
        crate::error::check_finite("g1", a)?;
        crate::error::check_finite("g2", b)?;
        pr.g1 = Some(a.to_vec());
        pr.g2 = Some(b.to_vec());
        Ok(())
    })
}

/// Sets per-pixel noise std maps per component. Without a mask, pixels whose
/// two std are 0 are masked; with one, an observed pixel must have std > 0.
///
/// # Safety
/// `std1`, `std2` must point to `len` floats.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_problem_set_noise_std(
    p: *mut LensdiffProblem,
    std1: *const f32,
    std2: *const f32,
    len: usize,
) -> LensdiffStatus {
    guard(|| {
        let pr = problem_mut(p)?;
        let n = pr.grid.len();
        let (a, b) = (input(std1, len, n, "std1")?, input(std2, len, n, "std2")?);
        NoiseModel::from_std(pr.grid, a, b, pr.mask.as_deref())?;
        pr.std = Some((a.to_vec(), b.to_vec()));
        pr.sigma = None;
        Ok(())
    })
}

/// Sets a uniform per-component noise std.
///
/// # Safety
/// `p` must be a live problem.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_problem_set_noise_uniform(
    p: *mut LensdiffProblem,
    sigma: f64,
) -> LensdiffStatus {
    guard(|| {
        let pr = problem_mut(p)?;
        NoiseModel::uniform(pr.grid, sigma, pr.mask.as_deref())?;
        pr.sigma = Some(sigma);
        pr.std = None;
        Ok(())
    })
}

/// Sets the mask: non-zero = observed. A fully masked field is rejected.
///
/// # Safety
/// `mask` must point to `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_problem_set_mask(
    p: *mut LensdiffProblem,
    mask: *const u8,
    len: usize,
) -> LensdiffStatus {
    guard(|| {
        let pr = problem_mut(p)?;
        let m: Vec<bool> = input(mask, len, pr.grid.len(), "mask")?
            .iter()
            .map(|&v| v != 0)
            .collect();
        if !m.iter().any(|&v| v) {
            return Err(crate::Error::FullyMasked.into());
        }
        // the noise already set must stay valid under the new mask
        if let Some((s1, s2)) = &pr.std {
            NoiseModel::from_std(pr.grid, s1, s2, Some(&m))?;
        }
        pr.mask = Some(m);
        Ok(())
    })
}

/// Sets a Gaussian prior from a C_ell table (`n` rows, ell increasing).
///
/// # Safety
/// `ell`, `cl` must point to `n` doubles.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_problem_set_prior_cl(
    p: *mut LensdiffProblem,
    ell: *const f64,
    cl: *const f64,
    n: usize,
) -> LensdiffStatus {
    guard(|| {
        let pr = problem_mut(p)?;
        let (l, c) = (input(ell, n, n, "ell")?, input(cl, n, n, "cl")?);
        let t = ClTable::new(l.to_vec(), c.to_vec())?;
        pr.prior_power = Some(t.pixel_power(&pr.grid));
        Ok(())
    })
}

/// Sets the built-in Gaussian prior (a fit to the kappaTNG spectrum).
///
/// # Safety
/// `p` must be a live problem.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_problem_set_prior_default(
    p: *mut LensdiffProblem,
) -> LensdiffStatus {
    guard(|| {
        let pr = problem_mut(p)?;
        pr.prior_power = Some(ClTable::default_kappa().pixel_power(&pr.grid));
        Ok(())
    })
}

/// Bins a catalogue of `n` galaxies (degrees, ellipticities, optional
/// weights) on the problem's grid around the median RA/Dec, RA along +x (e2
/// flipped), and sets the shear, the noise std maps and the mask.
///
/// # Safety
/// Arrays must point to `n` doubles; `weight` may be NULL.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_problem_bin_catalogue(
    p: *mut LensdiffProblem,
    ra: *const f64,
    dec: *const f64,
    e1: *const f64,
    e2: *const f64,
    weight: *const f64,
    n: usize,
    projection: i32,
) -> LensdiffStatus {
    guard(|| {
        let pr = problem_mut(p)?;
        let col = |ptr: *const f64, name: &str| -> CResult<Vec<f64>> {
            Ok(input(ptr, n, n, name)?.to_vec())
        };
        let w = if weight.is_null() {
            None
        } else {
            Some(col(weight, "weight")?)
        };
        let cat = Catalogue::new(
            col(ra, "ra")?,
            col(dec, "dec")?,
            col(e1, "e1")?,
            col(e2, "e2")?,
            w,
        )?;
        let mut opts = BinningOptions::new(pr.grid);
        opts.projection = match projection {
            LENSDIFF_PROJECTION_GNOMONIC => Projection::Gnomonic,
            LENSDIFF_PROJECTION_PLATE => Projection::Plate,
            other => {
                return Err(CError::new(
                    LensdiffStatus::InvalidArgument,
                    format!("unknown projection {other}"),
                ))
            }
        };
        let b = bin_catalogue(&cat, &opts)?;
        pr.g1 = Some(b.e1);
        pr.g2 = Some(b.e2);
        pr.std = Some((b.std1, b.std2));
        pr.mask = Some(b.mask);
        pr.sigma = None;
        Ok(())
    })
}

/// Simulates data: a convergence field from the prior (Gaussian, or
/// log-normal with shift `lambda`), written to `kappa_out`, observed through
/// the problem's noise model (or, if none is set, shape noise `sigma_e` with
/// `n_gal` galaxies per arcmin²); the noisy shear becomes the problem's data.
///
/// # Safety
/// `kappa_out` must point to `len` floats.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_problem_simulate(
    p: *mut LensdiffProblem,
    field: i32,
    lambda: f64,
    sigma_e: f64,
    n_gal: f64,
    seed: u64,
    kappa_out: *mut f32,
    len: usize,
) -> LensdiffStatus {
    guard(|| {
        let pr = problem_mut(p)?;
        let out = output(kappa_out, len, pr.grid.len(), "kappa_out")?;
        let power = pr.power()?.to_vec();
        let kappa = match field {
            LENSDIFF_FIELD_GAUSSIAN => gaussian_fields(&pr.grid, &power, seed, 0, 1)?,
            LENSDIFF_FIELD_LOGNORMAL => {
                LogNormal::new(&pr.grid, &power, lambda)?.sample(&pr.grid, seed, 0, 1)?
            }
            other => {
                return Err(CError::new(
                    LensdiffStatus::InvalidArgument,
                    format!("unknown field kind {other}"),
                ))
            }
        };
        let noise = match (&pr.std, pr.sigma) {
            (None, None) => {
                let n = NoiseModel::from_density(pr.grid, sigma_e, n_gal, pr.mask.as_deref())?;
                pr.sigma =
                    Some(sigma_e / (n_gal * pr.grid.pixel_arcmin * pr.grid.pixel_arcmin).sqrt());
                n
            }
            _ => pr.noise()?,
        };
        let (g1, g2) = simulate_shear(&kappa, &noise, seed, 0)?;
        out.copy_from_slice(&kappa);
        pr.g1 = Some(g1);
        pr.g2 = Some(g2);
        Ok(())
    })
}

/// Kaiser–Squires E (and optionally B, `b_out` may be NULL) maps, smoothed
/// by a periodic Gaussian of `smooth_px` pixels (0 = none).
///
/// # Safety
/// `e_out` (and `b_out` unless NULL) must point to `len` floats.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_ks(
    p: *const LensdiffProblem,
    smooth_px: f64,
    e_out: *mut f32,
    b_out: *mut f32,
    len: usize,
) -> LensdiffStatus {
    guard(|| {
        let pr = problem(p)?;
        let n = pr.grid.len();
        let e_out = output(e_out, len, n, "e_out")?;
        let b_out = if b_out.is_null() {
            None
        } else {
            Some(output(b_out, len, n, "b_out")?)
        };
        let (g1, g2) = pr.shear()?;
        let (e, b) = kaiser_squires(&pr.grid, g1, g2, smooth_px, Boundary::Periodic)?;
        e_out.copy_from_slice(&e);
        if let Some(bo) = b_out {
            bo.copy_from_slice(&b);
        }
        Ok(())
    })
}

/// The Wiener filter (conjugate gradients to relative residual `tol`, at most
/// `max_iter` iterations); `iterations` may be NULL.
///
/// # Safety
/// `out` must point to `len` floats; `iterations` NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_wiener(
    p: *const LensdiffProblem,
    tol: f64,
    max_iter: u32,
    out: *mut f32,
    len: usize,
    iterations: *mut u32,
) -> LensdiffStatus {
    guard(|| {
        let pr = problem(p)?;
        let out = output(out, len, pr.grid.len(), "out")?;
        let (g1, g2) = pr.shear()?;
        let noise = pr.noise()?;
        let wf = WienerFilter::new(pr.grid, pr.power()?.to_vec())?;
        let sol = wf.solve(
            g1,
            g2,
            &noise,
            &WienerOptions {
                tol,
                max_iter: max_iter as usize,
            },
        )?;
        out.copy_from_slice(&sol.kappa);
        if !iterations.is_null() {
            *iterations = sol.iterations as u32;
        }
        Ok(())
    })
}

/// Every source at one redshift, `nz_params[0] = z` (for [`LensdiffCosmology`]).
pub const LENSDIFF_NZ_PLANE: i32 = 0;
/// A Gaussian n(z) on `z > 0`, `nz_params = {mean, sigma}`.
pub const LENSDIFF_NZ_GAUSSIAN: i32 = 1;
/// A Smail et al. (1994) n(z) `z^a exp(-(z/z0)^b)` on `0 < z < z_max`,
/// `nz_params = {a, b, z0, z_max}` (the default: 2, 0.68, 0.11, 3.5).
pub const LENSDIFF_NZ_SMAIL: i32 = 2;
/// Eisenstein & Hu (1998) transfer function with baryon wiggles (the default).
pub const LENSDIFF_TRANSFER_EH: i32 = 0;
/// Eisenstein & Hu (1998) without wiggles.
pub const LENSDIFF_TRANSFER_EH_NOWIGGLE: i32 = 1;
/// Bardeen et al. (1986).
pub const LENSDIFF_TRANSFER_BBKS: i32 = 2;

/// Size of the first version of [`LensdiffCosmology`] (0.2): the least a
/// caller's `struct_size` may say.
const COSMOLOGY_V1_SIZE: usize = 112;

/// A flat wCDM cosmology and one source n(z), for
/// [`lensdiff_problem_set_prior_cosmology`]. Always initialise with
/// [`lensdiff_cosmology_init`], which sets `struct_size` and the defaults
/// (later versions may append fields; the library reads only the fields that
/// `struct_size` covers, the others keep their defaults).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LensdiffCosmology {
    /// `sizeof(lensdiff_cosmology)` as compiled by the caller.
    pub struct_size: u32,
    /// `LENSDIFF_NZ_*`: the source redshift distribution.
    pub nz_kind: i32,
    /// Cold dark matter density today, `Omega_c`.
    pub omega_c: f64,
    /// Baryon density today, `Omega_b` (flat: `Omega_de = 1 - Omega_c - Omega_b`).
    pub omega_b: f64,
    /// `H0 / (100 km/s/Mpc)`.
    pub h: f64,
    /// Primordial spectral index.
    pub n_s: f64,
    /// RMS linear density contrast in spheres of 8 Mpc/h today.
    pub sigma8: f64,
    /// Dark-energy equation of state today.
    pub w0: f64,
    /// Its evolution, `w(a) = w0 + wa (1 - a)`.
    pub wa: f64,
    /// CMB temperature in K.
    pub t_cmb: f64,
    /// The n(z) parameters (see `LENSDIFF_NZ_*`; unused entries are ignored).
    pub nz_params: [f64; 4],
    /// `LENSDIFF_TRANSFER_*`.
    pub transfer: i32,
    /// Non-zero: halofit (Takahashi et al. 2012) nonlinear spectrum; 0: linear.
    pub nonlinear: i32,
}

impl Default for LensdiffCosmology {
    fn default() -> Self {
        let c = Cosmology::sbi_lens_fiducial();
        LensdiffCosmology {
            struct_size: std::mem::size_of::<LensdiffCosmology>() as u32,
            nz_kind: LENSDIFF_NZ_SMAIL,
            omega_c: c.omega_c,
            omega_b: c.omega_b,
            h: c.h,
            n_s: c.n_s,
            sigma8: c.sigma8,
            w0: c.w0,
            wa: c.wa,
            t_cmb: c.t_cmb,
            nz_params: [2.0, 0.68, 0.11, 3.5],
            transfer: LENSDIFF_TRANSFER_EH,
            nonlinear: 1,
        }
    }
}

impl LensdiffCosmology {
    /// The validated Rust cosmology, source distribution and options.
    pub(crate) fn to_rust(self) -> CResult<(Cosmology, Nz, ClOptions)> {
        let cosmo = Cosmology {
            omega_c: self.omega_c,
            omega_b: self.omega_b,
            h: self.h,
            n_s: self.n_s,
            sigma8: self.sigma8,
            w0: self.w0,
            wa: self.wa,
            t_cmb: self.t_cmb,
        };
        cosmo.validate()?;
        let [p0, p1, p2, p3] = self.nz_params;
        let nz = match self.nz_kind {
            LENSDIFF_NZ_PLANE => Nz::Plane { z: p0 },
            LENSDIFF_NZ_GAUSSIAN => Nz::Gaussian {
                mean: p0,
                sigma: p1,
            },
            LENSDIFF_NZ_SMAIL => Nz::Smail {
                a: p0,
                b: p1,
                z0: p2,
                z_max: p3,
            },
            k => {
                return Err(CError::new(
                    LensdiffStatus::InvalidArgument,
                    format!("unknown nz_kind {k}"),
                ))
            }
        };
        nz.validate()?;
        let transfer = match self.transfer {
            LENSDIFF_TRANSFER_EH => Transfer::EisensteinHu,
            LENSDIFF_TRANSFER_EH_NOWIGGLE => Transfer::EisensteinHuNoWiggle,
            LENSDIFF_TRANSFER_BBKS => Transfer::Bbks,
            t => {
                return Err(CError::new(
                    LensdiffStatus::InvalidArgument,
                    format!("unknown transfer {t}"),
                ))
            }
        };
        let opts = ClOptions {
            transfer,
            nonlinear: self.nonlinear != 0,
            ..ClOptions::default()
        };
        Ok((cosmo, nz, opts))
    }
}

/// The caller's cosmology struct: the fields its `struct_size` covers (at
/// least the first version's), the rest at their defaults (size-prefixed ABI).
///
/// # Safety
/// `cosmo` NULL or valid for `cosmo->struct_size` bytes.
pub(crate) unsafe fn read_cosmology(cosmo: *const LensdiffCosmology) -> CResult<LensdiffCosmology> {
    if cosmo.is_null() {
        return Err(CError::new(LensdiffStatus::NullPointer, "cosmo is NULL"));
    }
    let size = std::ptr::read_unaligned(cosmo as *const u32) as usize;
    let ours = std::mem::size_of::<LensdiffCosmology>();
    if size < COSMOLOGY_V1_SIZE {
        return Err(CError::new(
            LensdiffStatus::InvalidArgument,
            format!("cosmo->struct_size is {size}, expected at least {COSMOLOGY_V1_SIZE}: call lensdiff_cosmology_init"),
        ));
    }
    let mut c = LensdiffCosmology::default();
    std::ptr::copy_nonoverlapping(
        cosmo as *const u8,
        &mut c as *mut LensdiffCosmology as *mut u8,
        size.min(ours),
    );
    c.struct_size = ours as u32;
    Ok(c)
}

/// Points per decade of the multipoles of [`cosmology_prior_ells`].
const PRIOR_ELLS_PER_DECADE: f64 = 64.0;

/// The multipoles at which [`lensdiff_problem_set_prior_cosmology`] computes
/// C_ell for `grid`: log-spaced, 64 per decade, from half the fundamental
/// multipole `2 pi / (max(nx, ny) Δ)` to 1.5 times the grid's corner
/// multipole `sqrt(2) pi / Δ` (so every mode of `ClTable::pixel_power` is
/// interpolated, never extrapolated).
pub fn cosmology_prior_ells(grid: &Grid) -> Vec<f64> {
    use std::f64::consts::PI;
    let lo = 0.5 * 2.0 * PI / (grid.nx.max(grid.ny) as f64 * grid.pixel_rad());
    let hi = 1.5 * std::f64::consts::SQRT_2 * PI / grid.pixel_rad();
    let decades = (hi / lo).log10();
    let n = ((decades * PRIOR_ELLS_PER_DECADE).ceil() as usize).max(16) + 1;
    let (a, b) = (lo.ln(), hi.ln());
    (0..n)
        .map(|i| (a + (b - a) * i as f64 / (n - 1) as f64).exp())
        .collect()
}

/// Fills `cosmo` with the defaults and sets `struct_size`: the sbi_lens
/// LSST-Y10 fiducial cosmology (Omega_c 0.2664, Omega_b 0.0492, h 0.6727,
/// n_s 0.9645, sigma_8 0.831, w0 -1, wa 0, T_CMB 2.725 K), a Smail n(z)
/// (a 2, b 0.68, z0 0.11, z_max 3.5), Eisenstein–Hu with wiggles, halofit.
///
/// # Safety
/// `cosmo` must be NULL or valid for writing a `lensdiff_cosmology`.
#[no_mangle]
pub unsafe extern "C" fn lensdiff_cosmology_init(cosmo: *mut LensdiffCosmology) -> LensdiffStatus {
    guard(|| {
        *out_ptr(cosmo, "cosmo")? = LensdiffCosmology::default();
        Ok(())
    })
}

/// Sets a Gaussian prior from a cosmology: the Limber convergence spectrum
/// C_ell of the source n(z) (flat wCDM, halofit or linear), computed at
/// log-spaced multipoles covering every mode of the grid and set exactly as
/// [`lensdiff_problem_set_prior_cl`] would set that table.
///
/// # Safety
/// `cosmo` must be NULL or point to at least `cosmo->struct_size` readable
/// bytes, initialised with [`lensdiff_cosmology_init`].
#[no_mangle]
pub unsafe extern "C" fn lensdiff_problem_set_prior_cosmology(
    p: *mut LensdiffProblem,
    cosmo: *const LensdiffCosmology,
) -> LensdiffStatus {
    guard(|| {
        let pr = problem_mut(p)?;
        let (cosmology, nz, opts) = read_cosmology(cosmo)?.to_rust()?;
        let ells = cosmology_prior_ells(&pr.grid);
        let cl = convergence_cl(&cosmology, &[nz.source()?], &ells, &opts)?;
        let t = ClTable::new(ells, cl.cl[0].clone())?;
        pr.prior_power = Some(t.pixel_power(&pr.grid));
        Ok(())
    })
}
