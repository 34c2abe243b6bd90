//! Shared helpers of the integration tests.
#![allow(dead_code)]

pub mod dense;
pub mod modes;

use std::path::PathBuf;

/// `../shared/data`, or `None` (with a printed notice) when it is absent.
pub fn shared_data(test: &str) -> Option<PathBuf> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data"));
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("NOTICE: {test} skipped: {} not found", p.display());
        None
    }
}

/// Deterministic pseudo-random values in [-0.5, 0.5) for test inputs.
pub fn noise_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut v = vec![0.0f32; n];
    lensdiff::rng::Philox::new(seed, lensdiff::rng::Stream::Training, 99, 0).fill_normal(&mut v);
    v
}

/// SplitMix64 → uniform f64 values in [-1, 1): inputs of the f64 gradient checks.
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next value.
    pub fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }

    /// `n` values.
    pub fn vec(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.next()).collect()
    }
}

/// A temporary directory unique to one test.
pub fn temp_dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lensdiff-test-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}
