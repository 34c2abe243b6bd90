//! Hostile model files (issue #17, part 2): mutated bytes of a map model and
//! of a joint model, loaded through the C ABI's buffer loaders, never panic
//! (a caught panic would be `LENSDIFF_STATUS_INTERNAL`), never crash, and never
//! allocate without bound: this test binary's allocator refuses any single
//! allocation above 256 MiB, which aborts the process (a failure, not a skip).
//!
//! Mutations (seeded SplitMix64; the safetensors writer orders the metadata
//! keys by a hash map, so the header's layout, and with it the inputs, vary a
//! little between processes, and so do the counts printed): a flipped
//! bit, overwritten bytes, a truncation, an inserted run of bytes, a random or
//! huge header-length field, and a number inside the JSON header (a shape, a
//! data offset, a channel count) replaced by a huge or negative one.
//! `LENSDIFF_FUZZ_CASES` sets the number of inputs per model (default 20 000;
//! `LENSDIFF_LONG_VALIDATION=1` makes it 10^6, the long run:
//! docs/c-api.md gives its command and time).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::CStr;
use std::ptr::{null, null_mut};

use lensdiff::capi::*;
use lensdiff::grid::Grid;
use lensdiff::nn::UNetConfig;
use lensdiff::prior::joint::ParamSpace;
use lensdiff::prior::DenoiserKind;

/// The largest single allocation this test allows.
const LIMIT: usize = 256 << 20;

/// The system allocator, refusing allocations above [`LIMIT`] (Rust then
/// aborts with "memory allocation failed").
struct Capped;

unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > LIMIT {
            return null_mut();
        }
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > LIMIT {
            return null_mut();
        }
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > LIMIT {
            return null_mut();
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Capped = Capped;

type S = LensdiffStatus;

const N: usize = 16;

fn last_error() -> String {
    unsafe { CStr::from_ptr(lensdiff_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn cases() -> usize {
    if let Some(n) = std::env::var("LENSDIFF_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    if std::env::var_os("LENSDIFF_LONG_VALIDATION").is_some() {
        1_000_000
    } else {
        20_000
    }
}

/// A small hybrid map model on 1' pixels, as bytes.
fn map_model_bytes(dir: &common::TempDir) -> Vec<u8> {
    let d = common::map_models::tiny_map_model(DenoiserKind::Hybrid, 1.0, 2, 0.0, 1);
    let path = dir.path("map.safetensors");
    d.save(&path).unwrap();
    std::fs::read(path).unwrap()
}

/// A small pure joint model without a cosmology (its load parses everything
/// and then stops at the missing guidance model), as bytes.
fn joint_model_bytes(dir: &common::TempDir) -> Vec<u8> {
    let space = ParamSpace::new(&["sigma8"], &[0.8], &[0.05]).unwrap();
    let grid = Grid::new(N, N, 1.0).unwrap();
    let d = common::joint_models::joint_model(DenoiserKind::Pure, &space, &grid, true, 1);
    let path = dir.path("joint.safetensors");
    d.save(&path).unwrap();
    std::fs::read(path).unwrap()
}

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutation of `good` (module docs).
fn mutate(good: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = good.to_vec();
    let header_len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    match rng.below(7) {
        0 => {
            let i = rng.below(b.len());
            b[i] ^= 1 << rng.below(8);
        }
        1 => {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
        }
        2 => b.truncate(rng.below(b.len())),
        3 => {
            let i = rng.below(b.len());
            let run: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
            b.splice(i..i, run);
        }
        4 => {
            let v = match rng.below(3) {
                0 => rng.next(),
                1 => u64::MAX - rng.below(16) as u64,
                _ => (header_len as u64)
                    .wrapping_add(rng.below(64) as u64)
                    .wrapping_sub(32),
            };
            b[..8].copy_from_slice(&v.to_le_bytes());
        }
        _ => {
            // a number in the JSON header, replaced
            let header = &good[8..8 + header_len];
            let starts: Vec<usize> = (0..header.len())
                .filter(|&i| {
                    header[i].is_ascii_digit() && (i == 0 || !header[i - 1].is_ascii_digit())
                })
                .collect();
            if let Some(&s) = starts.get(rng.below(starts.len())) {
                let e = (s..header.len())
                    .find(|&i| !header[i].is_ascii_digit())
                    .unwrap_or(header.len());
                let huge = [
                    "18446744073709551615",
                    "9223372036854775807",
                    "4294967296",
                    "4096",
                    "65536",
                    "-1",
                    "1e308",
                    "0",
                ];
                let with = huge[rng.below(huge.len())].as_bytes();
                b.splice(8 + s..8 + e, with.iter().copied());
                // keep the length field right, so the parser reads the new header
                let new_len = (header_len + with.len()) as u64 - (e - s) as u64;
                b[..8].copy_from_slice(&new_len.to_le_bytes());
            }
        }
    }
    b
}

#[test]
fn mutated_model_files_are_errors_never_panics_or_huge_allocations() {
    let dir = common::TempDir::new("model_fuzz");
    let map = map_model_bytes(&dir);
    let joint = joint_model_bytes(&dir);
    let n = cases();
    let t = std::time::Instant::now();
    let (mut p, mut q) = (null_mut(), null_mut());
    unsafe {
        assert_eq!(lensdiff_problem_create(N, N, 1.0, &mut p), S::Ok);
        assert_eq!(lensdiff_problem_create(N, N, 1.0, &mut q), S::Ok);
        // the unmutated files load (the joint one stops at its guidance model)
        assert_eq!(
            lensdiff_problem_load_model_buffer(p, map.as_ptr(), map.len()),
            S::Ok,
            "{}",
            last_error()
        );
        assert_eq!(
            lensdiff_problem_load_joint_model_buffer(q, joint.as_ptr(), joint.len(), null()),
            S::InvalidArgument,
            "{}",
            last_error()
        );
    }
    let mut rng = Rng(2026);
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    let mut by_loader = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..n {
        for (good, is_joint) in [(&map, false), (&joint, true)] {
            let bad = mutate(good, &mut rng);
            let s = unsafe {
                if is_joint {
                    lensdiff_problem_load_joint_model_buffer(q, bad.as_ptr(), bad.len(), null())
                } else {
                    lensdiff_problem_load_model_buffer(p, bad.as_ptr(), bad.len())
                }
            };
            assert_ne!(
                s,
                S::Internal,
                "input {i} ({}): a panic: {}",
                if is_joint { "joint" } else { "map" },
                last_error()
            );
            *counts.entry(format!("{s:?}")).or_default() += 1;
            let loader = if is_joint { "joint" } else { "map" };
            *by_loader.entry(format!("{loader} {s:?}")).or_default() += 1;
        }
    }
    unsafe {
        lensdiff_problem_destroy(p);
        lensdiff_problem_destroy(q);
    }
    eprintln!(
        "{} mutated inputs in {:.1} s: {by_loader:?}",
        2 * n,
        t.elapsed().as_secs_f64()
    );
    // the mutations reach past the parser (some inputs still load) and
    // every fault of a file's content is FORMAT, or NON_FINITE for NaN
    // weights, or (the joint loader's own checks, and the unmutated joint
    // model's missing guidance cosmology) INVALID_ARGUMENT
    assert!(counts.get("Ok").copied().unwrap_or(0) > 0, "{counts:?}");
    assert!(counts.get("Format").copied().unwrap_or(0) > 0, "{counts:?}");
    assert!(counts.len() >= 3, "{counts:?}");
}

/// An architecture that claims 10^11 parameters in a file of a few kB fails
/// on the missing tensors before anything of that size is allocated.
#[test]
fn a_hostile_architecture_is_refused_without_allocating_it() {
    let dir = common::TempDir::new("model_fuzz_arch");
    let good = map_model_bytes(&dir);
    let path = dir.path("good.safetensors");
    std::fs::write(&path, &good).unwrap();
    let mut w = lensdiff::nn::Weights::load(&path).unwrap();
    let huge = UNetConfig {
        channels: vec![4096; 8],
        blocks: 16,
        groups: 1,
        embed_freqs: 1024,
        embed_dim: 65536,
        ..UNetConfig::demo()
    };
    w.metadata
        .insert("architecture".into(), serde_json::to_string(&huge).unwrap());
    let bad = dir.path("huge.safetensors");
    w.save(&bad).unwrap();
    let bytes = std::fs::read(&bad).unwrap();
    let mut p = null_mut();
    unsafe {
        assert_eq!(lensdiff_problem_create(N, N, 1.0, &mut p), S::Ok);
        let s = lensdiff_problem_load_model_buffer(p, bytes.as_ptr(), bytes.len());
        assert!(s == S::Format, "{s:?}: {}", last_error());
        lensdiff_problem_destroy(p);
    }
}
