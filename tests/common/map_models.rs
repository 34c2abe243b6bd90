//! Small learned map priors for the tests of the C ABI, MPI and hostile files.

use lensdiff::nn::UNetConfig;
use lensdiff::prior::{Denoiser, DenoiserKind, DenoiserMeta};
use lensdiff::spectrum::ClTable;

/// A network of `levels` levels (4 then 8 channels, then 8), one block each.
pub fn tiny_map_net(levels: usize) -> UNetConfig {
    UNetConfig {
        channels: [4, 8, 8, 8][..levels].to_vec(),
        blocks: 1,
        groups: 2,
        embed_freqs: 3,
        embed_dim: 8,
        ..UNetConfig::demo()
    }
}

/// A denoiser (hybrid on the default `C_ell`, or pure) of
/// [`tiny_map_net`]`(levels)` trained, says its metadata, on `pixel`-arcmin
/// pixels with `sigma_d = 0.02`. `weight_scale > 0` replaces the
/// initialisation by normal weights of that scale (seed `seed`), so that the
/// network is not its zero-initialised output layer.
pub fn tiny_map_model(
    kind: DenoiserKind,
    pixel: f64,
    levels: usize,
    weight_scale: f32,
    seed: u64,
) -> Denoiser {
    let meta = DenoiserMeta::new(kind, 0.02, pixel);
    let gaussian = (kind == DenoiserKind::Hybrid).then(ClTable::default_kappa);
    let mut d = Denoiser::new(tiny_map_net(levels), meta, gaussian, seed).unwrap();
    if weight_scale > 0.0 {
        d.params = super::noise_vec(d.params.len(), seed)
            .iter()
            .map(|v| weight_scale * v)
            .collect();
    }
    d
}
