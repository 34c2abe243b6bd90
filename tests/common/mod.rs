//! Shared helpers of the integration tests.
#![allow(dead_code)]

pub mod dense;

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

/// A temporary directory unique to one test.
pub fn temp_dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lensdiff-test-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}
