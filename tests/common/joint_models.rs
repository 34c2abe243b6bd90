//! Small joint models for the C ABI tests: a two-level joint U-Net, the
//! cosmology of `lensdiff_cosmology_init` as a recipe, and models with weights
//! moved off their initialisation.

use lensdiff::capi::{lensdiff_cosmology_init, LensdiffCosmology, LensdiffStatus};
use lensdiff::cosmo::limber::ClOptions;
use lensdiff::cosmo::Cosmology;
use lensdiff::grid::Grid;
use lensdiff::nn::UNetConfig;
use lensdiff::prior::joint::{
    CosmologyRecipe, GaussianJoint, JointDenoiser, JointDenoiserMeta, ParamSpace,
};
use lensdiff::prior::DenoiserKind;

/// A two-level U-Net of `params` parameters (sides must be even).
pub fn tiny_joint_net(params: usize) -> UNetConfig {
    UNetConfig {
        channels: vec![4, 8],
        blocks: 1,
        groups: 2,
        embed_freqs: 3,
        embed_dim: 8,
        padding: "periodic".into(),
        joint_params: params,
        ..UNetConfig::demo()
    }
}

/// The cosmology of `lensdiff_cosmology_init`'s defaults, as a recipe.
pub fn default_recipe() -> CosmologyRecipe {
    let mut c = std::mem::MaybeUninit::<LensdiffCosmology>::zeroed();
    assert_eq!(
        unsafe { lensdiff_cosmology_init(c.as_mut_ptr()) },
        LensdiffStatus::Ok
    );
    let c = unsafe { c.assume_init() };
    CosmologyRecipe {
        base: Cosmology {
            omega_c: c.omega_c,
            omega_b: c.omega_b,
            h: c.h,
            n_s: c.n_s,
            sigma8: c.sigma8,
            w0: c.w0,
            wa: c.wa,
            t_cmb: c.t_cmb,
        },
        source: lensdiff::cosmo::nz::Nz::Smail {
            a: c.nz_params[0],
            b: c.nz_params[1],
            z0: c.nz_params[2],
            z_max: c.nz_params[3],
        }
        .source()
        .unwrap(),
        cl: ClOptions::default(),
    }
}

/// A joint model on `grid` with weights moved off the initialisation (whose
/// output layers are zero), its cosmology in the file unless `bare`.
pub fn joint_model(
    kind: DenoiserKind,
    space: &ParamSpace,
    grid: &Grid,
    bare: bool,
    seed: u64,
) -> JointDenoiser {
    let r = default_recipe();
    let sd = GaussianJoint::from_cosmology(grid, space, &r.base, &r.source, &r.cl)
        .unwrap()
        .sigma_d();
    let mut meta = JointDenoiserMeta::new(kind, space, sd, grid.pixel_arcmin);
    if !bare {
        meta.gaussian = Some(r);
    }
    let mut d = JointDenoiser::new(tiny_joint_net(space.len()), meta, seed).unwrap();
    let mut rng = super::SplitMix(seed);
    let z = rng.vec(d.params.len());
    for (p, z) in d.params.iter_mut().zip(z) {
        *p += 0.05 * z as f32;
    }
    d
}
