//! Memory the network takes from the system allocator (issue #16: no
//! allocation inside a forward or backward pass).
//!
//! The activations, the convolutions' padded inputs and packed weights and the
//! gradients' scratch come from `nn::workspace`'s pool; a pass of a geometry
//! seen before takes them from there. This binary counts, with a global
//! allocator that wraps the system's, the allocations of a second
//! forward + backward pass (input VJP and weight gradient, the training case)
//! and of a forward + input VJP (the sampler's case) of the Remy-size
//! network's layout at 64², batch 2, after two warm-up passes: none may be
//! large (64 KiB or more; glibc maps fresh pages for the largest), and the
//! small ones (per-channel sums, tap offsets, statistics, the denoiser's
//! scaled input, served from malloc's bins) must stay under 5% of the
//! bytes the pool holds after the pass (measured 2026-12-07: about 1 100
//! allocations, 2.3 MB, against 86 MB). One test in this binary, so
//! that no other test's allocations are counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use lensdiff::nn::{Dims4, UNetConfig};
use lensdiff::prior::{Denoiser, DenoiserKind, DenoiserMeta};

/// Allocations of at least this many bytes count as large.
const LARGE: usize = 64 << 10;

struct Counting;

static ON: AtomicBool = AtomicBool::new(false);
static CALLS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);
static LARGE_CALLS: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

fn count(size: usize) {
    if ON.load(Ordering::Relaxed) {
        CALLS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(size, Ordering::Relaxed);
        if size >= LARGE {
            LARGE_CALLS.fetch_add(1, Ordering::Relaxed);
        }
        LARGEST.fetch_max(size, Ordering::Relaxed);
    }
}

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// (calls, bytes, large calls, largest) of the system allocator during `f`.
fn counted(f: impl FnOnce()) -> (usize, usize, usize, usize) {
    for c in [&CALLS, &BYTES, &LARGE_CALLS, &LARGEST] {
        c.store(0, Ordering::Relaxed);
    }
    ON.store(true, Ordering::SeqCst);
    f();
    ON.store(false, Ordering::SeqCst);
    (
        CALLS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
        LARGE_CALLS.load(Ordering::Relaxed),
        LARGEST.load(Ordering::Relaxed),
    )
}

#[test]
fn repeated_passes_take_their_buffers_from_the_pool() {
    let cfg = UNetConfig::remy_2023();
    let meta = DenoiserMeta::new(DenoiserKind::Pure, 0.02, 0.29);
    let den = Denoiser::new(cfg, meta, None, 0).unwrap();
    let mut p = den.params.clone();
    // nonzero everywhere (the initial output layer is zero)
    p.iter_mut()
        .enumerate()
        .for_each(|(i, v)| *v += 0.01 * ((i % 17) as f32 - 8.0));
    let dims = Dims4::new(2, 1, 64, 64);
    let x: Vec<f32> = (0..dims.len())
        .map(|i| 0.02 * (i as f32 * 0.37).sin())
        .collect();
    let sigma = [0.05, 0.3];
    let mut g = vec![0.0f32; p.len()];
    let mut pass = |grads: bool| {
        let (d, c) = den.forward_cached(&p, &x, dims, &sigma, None).unwrap();
        let dx = den
            .vjp(&p, &c, &x, None, grads.then_some(&mut g[..]))
            .unwrap();
        lensdiff::nn::workspace::recycle(d);
        lensdiff::nn::workspace::recycle(dx);
    };
    for grads in [true, false] {
        // two warm-up passes: the pool hands out the smallest buffer that
        // fits, so a second pass may still meet a request that the first
        // served with a buffer a later one needed
        pass(grads);
        pass(grads);
        let (calls, bytes, large, largest) = counted(|| pass(grads));
        let what = if grads {
            "forward + backward"
        } else {
            "forward + input VJP"
        };
        // the pooled buffers (this pass's, all back in the pool now, and
        // any that only the earlier passes used): the scale of the pass's
        // memory traffic, not an exact count of it
        let moved = lensdiff::nn::workspace::retained_bytes();
        eprintln!(
            "{what}: {calls} allocations, {bytes} bytes (largest {largest}); pooled buffers {moved} bytes"
        );
        assert_eq!(
            large, 0,
            "{what}: {large} allocations of {LARGE} bytes or more (largest {largest}) after a warm-up pass"
        );
        assert!(
            bytes * 20 < moved,
            "{what}: {bytes} bytes from the system allocator, over 5% of the {moved} pooled"
        );
    }
}
