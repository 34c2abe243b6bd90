//! Reused work buffers. A score evaluation needs dozens of temporary maps and
//! spectra; allocating each afresh costs a zero fill and, on the CPU, page
//! faults (a quarter of the sampler's time at 360², measured with `perf`),
//! and on CUDA an allocation call. A [`Pool`] hands out buffers of a
//! requested length and takes them back when the [`Pooled`] handle drops.
//!
//! A pooled buffer holds what its last user left in it: take one only for an
//! output that the next operation overwrites entirely (an FFT's output, a
//! copy's destination, a product's result); use [`Backend::alloc`] where zeros
//! are needed.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use super::{Backend, Elem};
use crate::error::Result;

/// At most this many idle buffers are kept per pool.
const MAX_IDLE: usize = 64;

type FreeList<B, T> = Arc<Mutex<Vec<<B as Backend>::Buf<T>>>>;

/// Idle buffers of element type `T` on backend `B`.
pub struct Pool<B: Backend, T: Elem> {
    free: FreeList<B, T>,
}

impl<B: Backend, T: Elem> Default for Pool<B, T> {
    fn default() -> Self {
        Pool {
            free: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

impl<B: Backend, T: Elem> Pool<B, T> {
    /// A buffer of `len` elements with unspecified contents: an idle one of
    /// that length, or a new one.
    pub fn take(&self, be: &B, len: usize) -> Result<Pooled<B, T>> {
        let reused = match self.free.lock() {
            Ok(mut free) => free
                .iter()
                .position(|b| B::len(b) == len)
                .map(|i| free.swap_remove(i)),
            Err(_) => None,
        };
        let buf = match reused {
            Some(b) => b,
            None => be.alloc(len)?,
        };
        Ok(Pooled {
            buf: Some(buf),
            free: self.free.clone(),
        })
    }
}

/// A buffer of a [`Pool`], returned to it on drop.
pub struct Pooled<B: Backend, T: Elem> {
    buf: Option<B::Buf<T>>,
    free: FreeList<B, T>,
}

impl<B: Backend, T: Elem> Deref for Pooled<B, T> {
    type Target = B::Buf<T>;

    fn deref(&self) -> &B::Buf<T> {
        // `buf` is `Some` until drop
        self.buf
            .as_ref()
            .expect("a pooled buffer is present until dropped")
    }
}

impl<B: Backend, T: Elem> DerefMut for Pooled<B, T> {
    fn deref_mut(&mut self) -> &mut B::Buf<T> {
        self.buf
            .as_mut()
            .expect("a pooled buffer is present until dropped")
    }
}

impl<B: Backend, T: Elem> Drop for Pooled<B, T> {
    fn drop(&mut self) {
        if let (Some(buf), Ok(mut free)) = (self.buf.take(), self.free.lock()) {
            if free.len() < MAX_IDLE {
                free.push(buf);
            }
        }
    }
}
