//! The argument shapes of every [`Backend`](super::Backend) method, checked
//! once for both backends.
//!
//! Each function takes the lengths of a method's buffers (in the method's
//! parameter order; `n` where the method takes a map size) and fails with
//! [`Error::ShapeMismatch`](crate::error::Error::ShapeMismatch) (or
//! [`Error::InvalidArgument`](crate::error::Error::InvalidArgument) for a
//! grid outside [`Grid::new`]'s domain) unless every length fits; it returns
//! the counts the method needs. [`Cpu`](super::cpu::Cpu) and
//! [`Cuda`](super::cuda::Cuda) call the function of the method's name (or of
//! its family: [`fft`], [`spectral_multiplier`], [`elementwise`]) first,
//! before touching memory, with the same arguments, so the same bad input
//! gives the same error on both (`src/backend/cuda/tests.rs` checks that
//! statically, `tests/backend_shapes.rs` that the CPU never panics). The
//! CUDA backend adds only its device limits (32-bit kernel lengths).
//!
//! Conventions: a batch `[maps][n]` has a positive multiple of `n` elements
//! (`n > 0`); per-pixel operands have length `n`, per-chain ones the chain
//! count; a half-spectrum batch holds `2 modes` reals per map, with `modes`
//! the length of its per-mode multipliers. Purely elementwise operations
//! (all operands of one length) accept empty buffers (a no-op).

use super::{maps_of, same_len};
use crate::error::{Error, Result};
use crate::grid::Grid;

/// Per-mode counts of a spectral operation: modes per map and maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Modes {
    /// Modes per map (the multipliers' length).
    pub modes: usize,
    /// Maps in the batch.
    pub maps: usize,
}

/// Per-pixel counts of a batch operation: pixels per map and maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pixels {
    /// Pixels per map (the broadcast operands' length).
    pub n: usize,
    /// Maps (chains) in the batch.
    pub chains: usize,
}

/// Every operand has `len` elements (named in the error).
fn all_len(len: usize, operands: &[(&'static str, usize)]) -> Result<()> {
    operands
        .iter()
        .try_for_each(|&(name, l)| same_len(name, len, l))
}

/// A half-spectrum batch against a per-mode multiplier of `modes` values.
fn spec_maps(name: &'static str, spec: usize, modes: usize) -> Result<Modes> {
    let maps = maps_of(name, spec, 2 * modes)?;
    Ok(Modes { modes, maps })
}

/// `copy`: `dst` as long as `src`.
pub(crate) fn copy(src: usize, dst: usize) -> Result<()> {
    same_len("copy", dst, src)
}

/// The four FFT methods: `grid` within [`Grid::new`]'s domain, `maps` a
/// positive multiple of `grid.len()` and `spec` exactly `2 spectral_len` reals
/// per map (what `Fft2::forward_batch` and cuFFT need). Returns the map count.
pub(crate) fn fft(grid: &Grid, maps: usize, spec: usize) -> Result<usize> {
    let n = grid.nx.saturating_mul(grid.ny);
    if grid.nx < 2 || grid.ny < 2 || n > 1 << 31 {
        return Err(Error::invalid(
            "grid",
            format!(
                "need at least 2x2 and at most 2^31 pixels, got {}x{}",
                grid.ny, grid.nx
            ),
        ));
    }
    let b = maps_of("maps", maps, n)?;
    // spectral_len <= n, so this cannot overflow
    same_len("spectra", 2 * b * grid.spectral_len(), spec)?;
    Ok(b)
}

/// `fill_normal`: `out` a batch of maps of `n`. Returns the chain count.
pub(crate) fn fill_normal(out: usize, n: usize) -> Result<usize> {
    maps_of("noise", out, n)
}

/// `ks_forward_multiply`: spectra batches of one length against
/// `p1`, `p2` of one length.
pub(crate) fn ks_forward_multiply(
    kappa_hat: usize,
    p1: usize,
    p2: usize,
    g1_hat: usize,
    g2_hat: usize,
) -> Result<Modes> {
    let m = spec_maps("kappa_hat", kappa_hat, p1)?;
    same_len("p2", p1, p2)?;
    all_len(kappa_hat, &[("g1_hat", g1_hat), ("g2_hat", g2_hat)])?;
    Ok(m)
}

/// `ks_adjoint_multiply`.
pub(crate) fn ks_adjoint_multiply(
    g1_hat: usize,
    g2_hat: usize,
    p1: usize,
    p2: usize,
    kappa_hat: usize,
) -> Result<Modes> {
    ks_forward_multiply(kappa_hat, p1, p2, g1_hat, g2_hat)
}

/// `ks_inverse_eb_multiply`.
pub(crate) fn ks_inverse_eb_multiply(
    g1_hat: usize,
    g2_hat: usize,
    p1: usize,
    p2: usize,
    e_hat: usize,
    b_hat: usize,
) -> Result<Modes> {
    let m = spec_maps("e_hat", e_hat, p1)?;
    same_len("p2", p1, p2)?;
    all_len(
        e_hat,
        &[("b_hat", b_hat), ("g1_hat", g1_hat), ("g2_hat", g2_hat)],
    )?;
    Ok(m)
}

/// `gaussian_denoise_gain`, `spectral_scale`, `diffused_prior_draw_multiply`:
/// a spectra batch `name` against a per-mode multiplier of `modes` values.
pub(crate) fn spectral_multiplier(name: &'static str, spec: usize, modes: usize) -> Result<Modes> {
    spec_maps(name, spec, modes)
}

/// `cast`: `y` as long as `x`.
pub(crate) fn cast(x: usize, y: usize) -> Result<()> {
    same_len("map", y, x)
}

/// `elementwise`: every input as long as `out`.
pub(crate) fn elementwise(out: usize, ins: &[usize]) -> Result<()> {
    ins.iter().try_for_each(|&l| same_len("operand", out, l))
}

/// `langevin_corrector_step`: one norm per chain. Returns the chain count.
pub(crate) fn langevin_corrector_step(
    x: usize,
    s: usize,
    z: usize,
    s_norm: usize,
    z_norm: usize,
    n: usize,
) -> Result<usize> {
    all_len(x, &[("operand", s), ("operand", z)])?;
    let chains = maps_of("x", x, n)?;
    all_len(chains, &[("s_norm", s_norm), ("z_norm", z_norm)])?;
    Ok(chains)
}

/// `heun_predictor`.
pub(crate) fn heun_predictor(d: usize, x: usize, xp: usize) -> Result<()> {
    all_len(d, &[("x", x), ("xp", xp)])
}

/// `hmc_position_step`: `v` and, when given, `xprev` as long as `x`.
pub(crate) fn hmc_position_step(x: usize, xprev: Option<usize>, v: usize) -> Result<()> {
    same_len("v", x, v)?;
    xprev.map_or(Ok(()), |xp| copy(x, xp))
}

/// `hmc_accept`: one flag per chain. Returns the chain count.
pub(crate) fn hmc_accept(x: usize, xk: usize, accept: usize, n: usize) -> Result<usize> {
    same_len("xk", x, xk)?;
    let chains = maps_of("x", x, n)?;
    same_len("accept", chains, accept)?;
    Ok(chains)
}

/// `hmc_start_from_map`: `x` a batch of maps of `start.len()` pixels.
pub(crate) fn hmc_start_from_map(x: usize, start: usize) -> Result<Pixels> {
    let chains = maps_of("x", x, start)?;
    Ok(Pixels { n: start, chains })
}

/// `annealed_weights`.
pub(crate) fn annealed_weights(w: usize, out: usize) -> Result<()> {
    same_len("weights", out, w)
}

/// `weighted_residual`: `r1`, `r2` batches of maps of `g1.len()` pixels,
/// `g2`, `w1`, `w2` per pixel.
pub(crate) fn weighted_residual(
    r1: usize,
    r2: usize,
    g1: usize,
    g2: usize,
    w1: usize,
    w2: usize,
) -> Result<Pixels> {
    let chains = maps_of("r1", r1, g1)?;
    same_len("r2", r1, r2)?;
    all_len(g1, &[("g2", g2), ("w1", w1), ("w2", w2)])?;
    Ok(Pixels { n: g1, chains })
}

/// `shear_residual_f64`: `q1`, `q2` batches of maps of `g1.len()` pixels.
pub(crate) fn shear_residual_f64(q1: usize, q2: usize, g1: usize, g2: usize) -> Result<Pixels> {
    let chains = maps_of("q1", q1, g1)?;
    same_len("q2", q1, q2)?;
    same_len("g2", g1, g2)?;
    Ok(Pixels { n: g1, chains })
}

/// `weighted_residual_f64`: batches of maps of `w1.len()` pixels.
pub(crate) fn weighted_residual_f64(
    y1: usize,
    y2: usize,
    q1: usize,
    q2: usize,
    w1: usize,
    w2: usize,
) -> Result<Pixels> {
    let chains = maps_of("y1", y1, w1)?;
    all_len(y1, &[("y2", y2), ("q1", q1), ("q2", q2)])?;
    same_len("w2", w1, w2)?;
    Ok(Pixels { n: w1, chains })
}

/// `multiply_weights_f64`: `a` a batch of maps of `w.len()` pixels.
pub(crate) fn multiply_weights_f64(a: usize, w: usize) -> Result<Pixels> {
    let chains = maps_of("a", a, w)?;
    Ok(Pixels { n: w, chains })
}

/// A CG batch `a` with `others` of its length and one `active` flag per
/// chain. Returns the chain count.
fn cg_batch(a: usize, others: &[usize], active: usize, n: usize) -> Result<usize> {
    let chains = maps_of("vector", a, n)?;
    for &o in others {
        same_len("vector", a, o)?;
    }
    same_len("active", chains, active)?;
    Ok(chains)
}

/// `cg_initial_residual`. Returns the chain count.
pub(crate) fn cg_initial_residual(
    r: usize,
    ap: usize,
    u: usize,
    active: usize,
    n: usize,
) -> Result<usize> {
    cg_batch(r, &[ap, u], active, n)
}

/// `cg_update_solution`. Returns the chain count.
pub(crate) fn cg_update_solution(
    u: usize,
    r: usize,
    p: usize,
    ap: usize,
    alpha: usize,
    active: usize,
    n: usize,
) -> Result<usize> {
    let chains = cg_batch(u, &[r, p, ap], active, n)?;
    same_len("alpha", chains, alpha)?;
    Ok(chains)
}

/// `cg_update_direction`. Returns the chain count.
pub(crate) fn cg_update_direction(
    p: usize,
    z: usize,
    beta: usize,
    active: usize,
    n: usize,
) -> Result<usize> {
    let chains = cg_batch(p, &[z], active, n)?;
    same_len("beta", chains, beta)?;
    Ok(chains)
}

/// `chain_norms`: one norm per chain. Returns the chain count.
pub(crate) fn chain_norms(x: usize, n: usize, out: usize) -> Result<usize> {
    let chains = maps_of("x", x, n)?;
    same_len("norms", chains, out)?;
    Ok(chains)
}

/// `chain_dot_f64`. Returns the chain count.
pub(crate) fn chain_dot_f64(a: usize, b: usize, n: usize, out: usize) -> Result<usize> {
    let chains = maps_of("a", a, n)?;
    same_len("b", a, b)?;
    same_len("dots", chains, out)?;
    Ok(chains)
}

/// `hmc_energy_increment`. Returns the chain count.
pub(crate) fn hmc_energy_increment(
    du: usize,
    s: usize,
    s_new: usize,
    xk: usize,
    xprev: usize,
    n: usize,
) -> Result<usize> {
    let chains = maps_of("s", s, n)?;
    same_len("du", chains, du)?;
    all_len(s, &[("operand", s_new), ("operand", xk), ("xprev", xprev)])?;
    Ok(chains)
}

/// `hmc_kinetic_change`. Returns the chain count.
pub(crate) fn hmc_kinetic_change(
    p: usize,
    vp: usize,
    p0: usize,
    vp0: usize,
    n: usize,
    out: usize,
) -> Result<usize> {
    let chains = maps_of("p", p, n)?;
    same_len("out", chains, out)?;
    all_len(p, &[("operand", vp), ("operand", p0), ("vp0", vp0)])?;
    Ok(chains)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_shape(r: Result<impl std::fmt::Debug>) -> bool {
        matches!(r, Err(Error::ShapeMismatch { .. }))
    }

    #[test]
    fn the_checks_return_counts_and_typed_errors() {
        let g = Grid::new(4, 3, 1.0).unwrap();
        assert_eq!(fft(&g, 24, 36).unwrap(), 2);
        assert!(is_shape(fft(&g, 24, 37)));
        assert!(is_shape(fft(&g, 0, 0)));
        let bad = Grid { nx: 0, ..g };
        assert!(matches!(
            fft(&bad, 12, 18),
            Err(Error::InvalidArgument { name: "grid", .. })
        ));
        let huge = Grid {
            nx: usize::MAX,
            ny: 3,
            pixel_arcmin: 1.0,
        };
        assert!(fft(&huge, 12, 18).is_err());
        assert_eq!(
            ks_forward_multiply(36, 9, 9, 36, 36).unwrap(),
            Modes { modes: 9, maps: 2 }
        );
        assert!(is_shape(ks_forward_multiply(36, 9, 8, 36, 36)));
        assert_eq!(
            weighted_residual(24, 24, 12, 12, 12, 12).unwrap(),
            Pixels { n: 12, chains: 2 }
        );
        assert!(is_shape(weighted_residual(24, 24, 12, 12, 11, 12)));
        assert!(is_shape(hmc_position_step(24, Some(23), 24)));
        assert!(hmc_position_step(24, None, 24).is_ok());
        assert_eq!(cg_update_solution(24, 24, 24, 24, 2, 2, 12).unwrap(), 2);
        assert!(is_shape(cg_update_solution(24, 24, 24, 24, 2, 2, 0)));
        // elementwise operations accept empty operands
        assert!(elementwise(0, &[0, 0]).is_ok());
        assert!(is_shape(elementwise(3, &[3, 2])));
    }
}
