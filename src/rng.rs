//! Counter-based random numbers: Philox4x32-10 (Salmon et al. 2011, "Parallel
//! random numbers: as easy as 1, 2, 3", SC'11).
//!
//! A draw is a pure function of `(key, counter)`, so any element of any chain
//! can be generated independently, in any order, on any device:
//! - key = the 64-bit user seed;
//! - counter = `(block, chain, step, stream)`: `block` = element index / 4,
//!   `chain` = the global chain (or map) index, `step` = the iteration,
//!   `stream` = which purpose the numbers serve ([`Stream`]).
//!
//! Each block yields four 32-bit words. Uniforms are `(u + 0.5) / 2^32` in
//! (0, 1); normals come from Box–Muller on the word pairs (0, 1) and (2, 3),
//! computed in f64. The same code lives in `kernels/` for the GPU.

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// What a block of random numbers is used for; part of the counter so that
/// different uses never share numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Stream {
    /// Random fields (Gaussian or log-normal convergence).
    Field = 1,
    /// Observation noise added to simulated shear.
    ShapeNoise = 2,
    /// Noise injected by samplers.
    Sampler = 3,
    /// Accept/reject uniforms of Metropolis tests.
    Metropolis = 4,
    /// Random choices during training (crops, flips, noise levels).
    Training = 5,
    /// Noise of Langevin corrector steps beyond the seventh of a level (the
    /// first seven use sub-slots of [`Stream::Sampler`]; see
    /// `sampler::engine::Ctx::corrector_normal`).
    Corrector = 6,
    /// Noise injected by samplers into per-chain parameters (the joint
    /// sampler's theta; `sampler::State`), counters as [`Stream::Sampler`].
    Parameters = 7,
    /// The parameters' share of [`Stream::Corrector`].
    ParameterCorrector = 8,
}

#[inline]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

/// Philox4x32 with 10 rounds: the bijection `counter -> output` under `key`.
#[inline]
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(W0);
            k[1] = k[1].wrapping_add(W1);
        }
        let (hi0, lo0) = mulhilo(M0, c[0]);
        let (hi1, lo1) = mulhilo(M1, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// Uniform in the open interval (0, 1) from a 32-bit word.
#[inline]
pub fn uniform_from_u32(u: u32) -> f64 {
    (u as f64 + 0.5) * (1.0 / 4_294_967_296.0)
}

/// Two standard normals from two words by Box–Muller.
#[inline]
pub fn box_muller(a: u32, b: u32) -> (f64, f64) {
    let r = (-2.0 * uniform_from_u32(a).ln()).sqrt();
    let t = 2.0 * std::f64::consts::PI * uniform_from_u32(b);
    (r * t.cos(), r * t.sin())
}

/// A generator bound to `(seed, chain, step, stream)`: fills arrays whose
/// element `i` depends only on `i` and this key, never on how many elements are
/// drawn or in which order.
#[derive(Debug, Clone, Copy)]
pub struct Philox {
    key: [u32; 2],
    chain: u32,
    step: u32,
    stream: u32,
}

impl Philox {
    /// Generator for global chain (or map) `chain` at iteration `step`.
    pub fn new(seed: u64, stream: Stream, chain: u64, step: u64) -> Self {
        Philox {
            key: [seed as u32, (seed >> 32) as u32],
            // Chains and steps beyond 2^32 wrap; document-level limit.
            chain: chain as u32,
            step: step as u32,
            stream: stream as u32,
        }
    }

    /// The four words of block `block`.
    #[inline]
    pub fn block(&self, block: u32) -> [u32; 4] {
        philox4x32_10([block, self.chain, self.step, self.stream], self.key)
    }

    /// Standard normals for elements `0..out.len()` (f32 storage).
    pub fn fill_normal(&self, out: &mut [f32]) {
        for (b, chunk) in out.chunks_mut(4).enumerate() {
            let w = self.block(b as u32);
            let (z0, z1) = box_muller(w[0], w[1]);
            let (z2, z3) = box_muller(w[2], w[3]);
            for (o, z) in chunk.iter_mut().zip([z0, z1, z2, z3]) {
                *o = z as f32;
            }
        }
    }

    /// Standard normals in f64.
    pub fn fill_normal_f64(&self, out: &mut [f64]) {
        for (b, chunk) in out.chunks_mut(4).enumerate() {
            let w = self.block(b as u32);
            let (z0, z1) = box_muller(w[0], w[1]);
            let (z2, z3) = box_muller(w[2], w[3]);
            for (o, z) in chunk.iter_mut().zip([z0, z1, z2, z3]) {
                *o = z;
            }
        }
    }

    /// Uniforms in (0, 1) for elements `0..out.len()`.
    pub fn fill_uniform(&self, out: &mut [f64]) {
        for (b, chunk) in out.chunks_mut(4).enumerate() {
            let w = self.block(b as u32);
            for (o, u) in chunk.iter_mut().zip(w) {
                *o = uniform_from_u32(u);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer vectors of the Random123 distribution (kat_vectors).
    #[test]
    fn philox_known_answers() {
        assert_eq!(
            philox4x32_10([0, 0, 0, 0], [0, 0]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0]
            ),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn draws_do_not_depend_on_length() {
        let g = Philox::new(42, Stream::Field, 3, 7);
        let mut a = vec![0.0f32; 10];
        let mut b = vec![0.0f32; 37];
        g.fill_normal(&mut a);
        g.fill_normal(&mut b);
        assert_eq!(&a[..], &b[..10]);
        let h = Philox::new(42, Stream::Field, 4, 7);
        let mut c = vec![0.0f32; 10];
        h.fill_normal(&mut c);
        assert_ne!(a, c);
    }

    #[test]
    fn normal_moments() {
        // 2^18 draws: the mean has MC error 1/512 ~ 0.002, the variance
        // sqrt(2/n) ~ 0.0028, the fourth moment sqrt(96/n) ~ 0.019. Bounds at 5 sigma.
        let n = 1 << 18;
        let mut z = vec![0.0f64; n];
        Philox::new(7, Stream::Sampler, 0, 0).fill_normal_f64(&mut z);
        let m = z.iter().sum::<f64>() / n as f64;
        let v = z.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n as f64;
        let k = z.iter().map(|x| x.powi(4)).sum::<f64>() / n as f64;
        assert!(m.abs() < 0.01, "mean {m}");
        assert!((v - 1.0).abs() < 0.014, "var {v}");
        assert!((k - 3.0).abs() < 0.1, "kurt {k}");
    }
}
