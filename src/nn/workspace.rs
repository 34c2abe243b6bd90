//! Recycled activation buffers (issue #16).
//!
//! A forward and backward pass of the U-Net allocates a few dozen activation
//! tensors of megabytes each. Returned to the C library's `malloc` and taken
//! again on the next evaluation, each costs fresh pages from the kernel
//! (glibc serves large blocks with `mmap` and trims the heap's top): 41% of
//! a forward pass of the demo network at 64² was spent in page faults and
//! page clearing. The layers therefore take their large output buffers from
//! a pool of buffers freed by earlier passes ([`zeroed`]), and the network's
//! caches and temporaries go back to it when dropped ([`recycle`]). After the
//! first evaluations of a given geometry (two, as `tests/nn_alloc.rs`
//! measures: the pool hands out the smallest buffer that fits, so the second
//! pass may still meet a request the first served with a buffer a later one
//! needed), a pass takes its activation buffers, padded inputs, packed
//! weights and gradient scratch from the pool; small vectors, such as
//! per-channel sums, still come from `malloc`, whose small-block bins serve
//! them without system calls.
//!
//! The pool is one per element type (`f32`, `f64`), shared by all threads
//! (a mutex held only to pick or store a buffer). It keeps at most 256
//! buffers and 8 GiB, dropping the smallest first (the Remy-size network's
//! forward + VJP at 360², batch 4, needs more than 4 GiB: with that bound,
//! every pass paid page faults and clearing for the buffers it dropped,
//! 8% of the profile); [`release`] frees
//! everything it holds. A sampler run ([`crate::sampler::engine::run`]) and
//! a training run release the pools when they end ([`ReleaseOnDrop`]), so a
//! program that samples or trains through them keeps no pooled memory
//! between runs; one that calls the network directly (`Denoiser::denoise`,
//! `UNet::forward`) keeps up to the bound until it calls [`release`]. The
//! pools are global: a run that ends empties them for any other still going
//! in the process, which costs that run some speed, never correctness.

use std::sync::{Mutex, MutexGuard};

use super::Real;

/// Most buffers kept per element type.
const MAX_BUFFERS: usize = 256;
/// Most bytes kept per element type.
const MAX_RETAINED_BYTES: usize = 8 << 30;
/// Buffers shorter than this go back to `malloc` (its small-block bins are
/// fast).
const MIN_ELEMENTS: usize = 1 << 12;

/// The free buffers of one element type.
pub struct Pool<T> {
    free: Mutex<Vec<Vec<T>>>,
}

impl<T> Pool<T> {
    /// An empty pool.
    pub const fn new() -> Self {
        Pool {
            free: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Vec<T>>> {
        // a panic elsewhere cannot leave the list inconsistent
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The smallest free buffer that holds `len` elements (and at most `2 len`:
/// a small request must not take, and hand to a caller who may keep it, a
/// large buffer), with its old contents.
fn take<T: Real>(len: usize) -> Option<Vec<T>> {
    if len < MIN_ELEMENTS {
        return None;
    }
    let mut free = T::pool().lock();
    let best = free
        .iter()
        .enumerate()
        .filter(|(_, v)| v.capacity() >= len && v.capacity() <= 2 * len)
        .min_by_key(|(_, v)| v.capacity())
        .map(|(i, _)| i);
    best.map(|i| free.swap_remove(i))
}

/// A buffer of `len` zeros: the smallest free one that holds `len`, else a
/// new one.
pub fn zeroed<T: Real>(len: usize) -> Vec<T> {
    match take(len) {
        Some(mut v) => {
            v.clear();
            v.resize(len, T::default());
            v
        }
        None => vec![T::default(); len],
    }
}

/// A buffer of `len` elements whose values are unspecified (a reused
/// buffer keeps what it held): for outputs the caller overwrites entirely,
/// which saves [`zeroed`]'s clearing pass.
pub fn uncleared<T: Real>(len: usize) -> Vec<T> {
    match take(len) {
        Some(mut v) => {
            v.truncate(len);
            v.resize(len, T::default());
            v
        }
        None => vec![T::default(); len],
    }
}

/// A copy of `x` in a pooled buffer.
pub fn copied<T: Real>(x: &[T]) -> Vec<T> {
    let mut v = zeroed(x.len());
    v.copy_from_slice(x);
    v
}

/// Gives `v` back for reuse.
pub fn recycle<T: Real>(v: Vec<T>) {
    if v.capacity() < MIN_ELEMENTS {
        return;
    }
    let size = std::mem::size_of::<T>();
    let mut free = T::pool().lock();
    free.push(v);
    let mut bytes: usize = free.iter().map(|v| v.capacity() * size).sum();
    while free.len() > MAX_BUFFERS || bytes > MAX_RETAINED_BYTES {
        let Some(i) = free
            .iter()
            .enumerate()
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i)
        else {
            break;
        };
        bytes -= free.swap_remove(i).capacity() * size;
    }
}

/// Frees every buffer the pools hold.
pub fn release() {
    <f32 as Real>::pool().lock().clear();
    <f64 as Real>::pool().lock().clear();
}

/// Calls [`release`] when dropped: held by a run (a sampler's chains, a
/// training run), so that the pools are emptied however it ends.
pub struct ReleaseOnDrop;

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        release();
    }
}

/// Bytes the pools hold now.
pub fn retained_bytes() -> usize {
    let b32: usize = <f32 as Real>::pool()
        .lock()
        .iter()
        .map(|v| v.capacity() * 4)
        .sum();
    let b64: usize = <f64 as Real>::pool()
        .lock()
        .iter()
        .map(|v| v.capacity() * 8)
        .sum();
    b32 + b64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_zeroed_and_bounded() {
        // f64, and a size no other test of this binary asks for (the pool is
        // global and the tests run in parallel: a request between half and
        // all of this length could take the buffer first)
        let mut v = zeroed::<f64>(1_000_003);
        v.iter_mut().for_each(|x| *x = 1.0);
        let ptr = v.as_ptr();
        recycle(v);
        let w = zeroed::<f64>(999_999);
        assert_eq!(w.as_ptr(), ptr, "the free buffer is reused");
        assert!(w.iter().all(|&x| x == 0.0) && w.len() == 999_999);
        // small buffers are not kept; the count is bounded
        recycle(vec![0.0f64; 10]);
        for _ in 0..MAX_BUFFERS + 10 {
            recycle(vec![0.0f64; MIN_ELEMENTS]);
        }
        assert!(<f64 as Real>::pool().lock().len() <= MAX_BUFFERS);
        drop(w);
        <f64 as Real>::pool().lock().clear();
    }
}
