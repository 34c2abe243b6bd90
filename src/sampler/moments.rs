//! Mean and variance over chains, reduced in a fixed order.
//!
//! Chains are accumulated in blocks of [`BLOCK`] consecutive global chain
//! indices (Welford within a block) and blocks are merged in order with Chan
//! et al.'s (1979) parallel update:
//! `n = na + nb`, `d = mb - ma`, `m = ma + d nb/n`, `M2 = M2a + M2b + d² na nb/n`.
//! The result depends only on the chains, not on how they were batched or
//! split across processes, as long as blocks are merged in index order.

/// Chains per accumulation block.
pub const BLOCK: usize = 8;

/// Per-pixel running moments.
#[derive(Debug, Clone, PartialEq)]
pub struct Moments {
    /// Number of chains.
    pub count: u64,
    /// Per-pixel mean.
    pub mean: Vec<f64>,
    /// Per-pixel sum of squared deviations.
    pub m2: Vec<f64>,
}

impl Moments {
    /// Empty moments for maps of `n` pixels.
    pub fn new(n: usize) -> Self {
        Moments {
            count: 0,
            mean: vec![0.0; n],
            m2: vec![0.0; n],
        }
    }

    /// Moments of a set of maps `[b][n]`, blocked by [`BLOCK`].
    pub fn of_maps(maps: &[f32], n: usize) -> Self {
        Self::merge_all(&Self::blocks_of_maps(maps, n), n)
    }

    /// The moments of each block of [`BLOCK`] consecutive maps (the last one
    /// may be shorter). With chains split across processes at block
    /// boundaries, merging every process's blocks in order with
    /// [`Moments::merge_all`] gives bitwise the single-process result.
    pub fn blocks_of_maps(maps: &[f32], n: usize) -> Vec<Moments> {
        maps.chunks(BLOCK * n)
            .map(|block| {
                let mut b = Moments::new(n);
                for m in block.chunks(n) {
                    b.push(m);
                }
                b
            })
            .collect()
    }

    /// Merges blocks left to right.
    pub fn merge_all(blocks: &[Moments], n: usize) -> Self {
        let mut total = Moments::new(n);
        for b in blocks {
            total.merge(b);
        }
        total
    }

    /// The moments of the maps multiplied by `f`: mean `f mean`, sum of
    /// squared deviations `f² m2` (e.g. joint units to convergence).
    pub fn scaled(&self, f: f64) -> Moments {
        Moments {
            count: self.count,
            mean: self.mean.iter().map(|m| f * m).collect(),
            m2: self.m2.iter().map(|m| f * f * m).collect(),
        }
    }

    /// Flat form `[count, mean.., m2..]` (for message passing).
    pub fn to_flat(&self) -> Vec<f64> {
        let mut v = Vec::with_capacity(1 + 2 * self.mean.len());
        v.push(self.count as f64);
        v.extend_from_slice(&self.mean);
        v.extend_from_slice(&self.m2);
        v
    }

    /// Inverse of [`Moments::to_flat`] for maps of `n` pixels; `None` on a
    /// length mismatch.
    pub fn from_flat(v: &[f64], n: usize) -> Option<Self> {
        (v.len() == 1 + 2 * n).then(|| Moments {
            count: v[0] as u64,
            mean: v[1..1 + n].to_vec(),
            m2: v[1 + n..].to_vec(),
        })
    }

    /// Adds one map (Welford).
    pub fn push(&mut self, map: &[f32]) {
        self.count += 1;
        let c = self.count as f64;
        for ((m, s), &x) in self.mean.iter_mut().zip(self.m2.iter_mut()).zip(map) {
            let d = x as f64 - *m;
            *m += d / c;
            *s += d * (x as f64 - *m);
        }
    }

    /// Merges another set of moments (Chan et al.).
    pub fn merge(&mut self, other: &Moments) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        let (na, nb) = (self.count as f64, other.count as f64);
        let n = na + nb;
        for i in 0..self.mean.len() {
            let d = other.mean[i] - self.mean[i];
            self.mean[i] += d * nb / n;
            self.m2[i] += other.m2[i] + d * d * na * nb / n;
        }
        self.count += other.count;
    }

    /// Unbiased per-pixel variance (0 for fewer than two chains).
    pub fn variance(&self) -> Vec<f64> {
        let d = (self.count.max(2) - 1) as f64;
        self.m2
            .iter()
            .map(|s| if self.count > 1 { s / d } else { 0.0 })
            .collect()
    }

    /// Per-pixel standard deviation as f32.
    pub fn std_f32(&self) -> Vec<f32> {
        self.variance().iter().map(|v| v.sqrt() as f32).collect()
    }

    /// Per-pixel mean as f32.
    pub fn mean_f32(&self) -> Vec<f32> {
        self.mean.iter().map(|&m| m as f32).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_merge_equals_two_pass() {
        let n = 3;
        let maps: Vec<f32> = (0..21 * n)
            .map(|i| ((i * 31 % 17) as f32) * 0.1 - 0.5)
            .collect();
        let m = Moments::of_maps(&maps, n);
        assert_eq!(m.count, 21);
        for p in 0..n {
            let xs: Vec<f64> = (0..21).map(|c| maps[c * n + p] as f64).collect();
            let mean = xs.iter().sum::<f64>() / 21.0;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 20.0;
            assert!((m.mean[p] - mean).abs() < 1e-12);
            assert!((m.variance()[p] - var).abs() < 1e-12);
        }
    }
}
