//! Held-out validation fields of the learned priors (tests/learned_prior.rs):
//! survey settings (pixel size, noise, mask, the model trained for them),
//! truths (log-normal or N-body crops) and their mock shear.

use std::path::Path;

use lensdiff::fields::{simulate_shear, LogNormal};
use lensdiff::noise::NoiseModel;
use lensdiff::sampler::ShearData;
use lensdiff::spectrum::ClTable;
use lensdiff::Grid;

/// Side of the validation fields in pixels (the models' training crop).
pub const SIDE: usize = 64;
/// Seed of the held-out truths and noise (the models were trained with data
/// seed 1 and evaluated with their own held-out seed).
pub const HELD_OUT_SEED: u64 = 2026;
/// Log-normal shift of the truths (the models' training fields).
pub const LAMBDA: f64 = 0.03;

/// The 360² COSMOS noise maps and footprint of ../shared/data/cosmos.
pub struct CosmosMaps {
    pub std1: Vec<f32>,
    pub std2: Vec<f32>,
    pub mask: Vec<bool>,
    /// Top-left corners of the SIDE² crops at least 70% inside the footprint.
    pub crops: Vec<(usize, usize)>,
}

const COSMOS_SIDE: usize = 360;

/// The SIDE² crop with top-left corner (x0, y0) of a row-major map `width`
/// pixels wide.
fn crop<T: Copy>(map: &[T], width: usize, (x0, y0): (usize, usize)) -> Vec<T> {
    (0..SIDE * SIDE)
        .map(|j| map[(y0 + j / SIDE) * width + x0 + j % SIDE])
        .collect()
}

impl CosmosMaps {
    pub fn load(data: &Path) -> CosmosMaps {
        let read = |f: &str| -> Vec<f32> {
            lensdiff::io::read_map(&data.join("cosmos").join(f), Some([COSMOS_SIDE; 2]))
                .unwrap()
                .iter()
                .copied()
                .collect()
        };
        let (std1, std2) = (read("std1.fits"), read("std2.fits"));
        let mask: Vec<bool> = read("cosmos_full_mask_0.29arcmin360.fits")
            .iter()
            .map(|&m| m > 0.0)
            .collect();
        // candidate corners every 24 px; keep crops mostly inside the footprint
        let mut crops = Vec::new();
        for y0 in (0..=COSMOS_SIDE - SIDE).step_by(24) {
            for x0 in (0..=COSMOS_SIDE - SIDE).step_by(24) {
                let inside = crop(&mask, COSMOS_SIDE, (x0, y0))
                    .into_iter()
                    .filter(|&m| m)
                    .count();
                if inside as f64 >= 0.7 * (SIDE * SIDE) as f64 {
                    crops.push((x0, y0));
                }
            }
        }
        CosmosMaps {
            std1,
            std2,
            mask,
            crops,
        }
    }

    /// The noise of field `i`: crop `⌊frac(i φ) len⌋` (φ the golden ratio's
    /// fractional part), so that consecutive fields spread over the footprint.
    fn crop_noise(&self, grid: Grid, i: usize) -> NoiseModel {
        let spread = (i as f64 * 0.618_033_988_749_895).fract();
        let corner = self.crops[(spread * self.crops.len() as f64) as usize];
        NoiseModel::from_std(
            grid,
            &crop(&self.std1, COSMOS_SIDE, corner),
            &crop(&self.std2, COSMOS_SIDE, corner),
            Some(&crop(&self.mask, COSMOS_SIDE, corner)),
        )
        .unwrap()
    }
}

/// A survey setting of the validation.
pub enum Noise {
    /// COSMOS per-pixel noise and footprint, SIDE² crops of the 0.29' maps
    /// (Remy et al. 2023's setting).
    Cosmos(CosmosMaps),
    /// LSST-like: 30 galaxies per arcmin², sigma_e 0.26 per component, no mask.
    Lsst,
}

pub struct Setting {
    pub name: &'static str,
    pub pixel_arcmin: f64,
    /// The model file in models/ trained at this pixel size.
    pub model: &'static str,
    pub noise: Noise,
}

impl Setting {
    pub fn cosmos(data: &Path) -> Setting {
        Setting {
            name: "COSMOS-like (0.29'/px, COSMOS noise and mask)",
            pixel_arcmin: 0.29,
            model: "cosmos-lognormal-hybrid.safetensors",
            noise: Noise::Cosmos(CosmosMaps::load(data)),
        }
    }

    pub fn lsst() -> Setting {
        Setting {
            name: "LSST-like (1'/px, 30 gal/arcmin², sigma_e 0.26)",
            pixel_arcmin: 1.0,
            model: "lsst-lognormal-hybrid.safetensors",
            noise: Noise::Lsst,
        }
    }

    pub fn grid(&self) -> Grid {
        Grid::square(SIDE, self.pixel_arcmin).unwrap()
    }

    /// The pixel power of the built-in spectrum (the models' training
    /// spectrum and their Gaussian part) on this setting's grid.
    pub fn power(&self) -> Vec<f64> {
        ClTable::default_kappa().pixel_power(&self.grid())
    }

    /// The noise of field `i`.
    pub fn field_noise(&self, i: usize) -> NoiseModel {
        let grid = self.grid();
        match &self.noise {
            Noise::Cosmos(maps) => maps.crop_noise(grid, i),
            Noise::Lsst => NoiseModel::from_density(grid, 0.26, 30.0, None).unwrap(),
        }
    }

    /// Held-out log-normal truth `i` (the models' training distribution,
    /// another seed).
    pub fn lognormal_truth(&self, i: usize) -> Vec<f32> {
        let grid = self.grid();
        LogNormal::new(&grid, &self.power(), LAMBDA)
            .unwrap()
            .sample(&grid, HELD_OUT_SEED, i as u64, 1)
            .unwrap()
    }

    /// The fields `0..count`' mean observed fraction and mean noise std per
    /// shear component over their observed pixels.
    pub fn noise_summary(&self, count: usize) -> (f64, f64) {
        let (mut observed, mut std, mut pixels) = (0usize, 0.0f64, 0usize);
        for i in 0..count {
            let noise = self.field_noise(i);
            let (s1, s2) = noise.std_maps();
            for (j, m) in noise.mask().iter().enumerate() {
                pixels += 1;
                if *m {
                    observed += 1;
                    std += 0.5 * (s1[j] + s2[j]) as f64;
                }
            }
        }
        (
            observed as f64 / pixels as f64,
            std / observed.max(1) as f64,
        )
    }

    /// Mock data of `truth` as field `i`: this setting's noise, realisation
    /// `i` of the held-out seed.
    pub fn observe(&self, truth: &[f32], i: usize) -> ShearData {
        let noise = self.field_noise(i);
        let (g1, g2) = simulate_shear(truth, &noise, HELD_OUT_SEED, i as u64).unwrap();
        ShearData::new(g1, g2, noise).unwrap()
    }
}

/// SIDE² crops (non-overlapping, row by row) of the kappaTNG N-body maps at
/// 0.29'/px: the two 360² maps of ../shared/data/ktng and the 512² map of
/// ../shared/data/kappa_maps (25 + 25 + 64 crops).
pub fn ktng_crops(data: &Path) -> Vec<Vec<f32>> {
    let maps = [
        data.join("ktng/ktng_kappa360v2.fits"),
        data.join("ktng/ktng_cosmos_kappa360.fits"),
        data.join("kappa_maps/ktng_kappa_512.npy"),
    ];
    let mut crops = Vec::new();
    for path in maps {
        let m = lensdiff::io::read_map(&path, None).unwrap();
        let (ny, nx) = m.dim();
        let map: Vec<f32> = m.iter().copied().collect();
        for y0 in (0..=ny - SIDE).step_by(SIDE) {
            for x0 in (0..=nx - SIDE).step_by(SIDE) {
                crops.push(crop(&map, nx, (x0, y0)));
            }
        }
    }
    crops
}
