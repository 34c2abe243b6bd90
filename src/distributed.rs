//! Splitting posterior chains across processes (MPI ranks).
//!
//! Chains are assigned by global chain index in whole blocks of
//! [`crate::sampler::moments::BLOCK`] chains: with `B = ceil(chains / 8)`
//! blocks and `P` ranks, rank `r` runs blocks `[r B / P, (r + 1) B / P)`
//! (uneven remainders included; a rank may get none). Noise is keyed by the
//! global chain index and moments are reduced per block and merged in block
//! order, so the merged mean/std and the gathered samples are bitwise the same
//! for any number of ranks.

use std::ops::Range;

use crate::sampler::moments::BLOCK;

/// Global chain indices run by `rank` of `size` for `chains` chains in all.
pub fn rank_chains(chains: usize, rank: usize, size: usize) -> Range<u64> {
    let size = size.max(1);
    let blocks = chains.div_ceil(BLOCK);
    let lo = (rank * blocks / size) * BLOCK;
    let hi = ((rank + 1) * blocks / size) * BLOCK;
    (lo.min(chains) as u64)..(hi.min(chains) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_cover_every_chain_once_at_block_boundaries() {
        for chains in [1usize, 7, 8, 9, 16, 17, 33, 100] {
            for size in 1..=6 {
                let mut next = 0u64;
                for r in 0..size {
                    let c = rank_chains(chains, r, size);
                    assert_eq!(c.start, next, "{chains} chains, {size} ranks, rank {r}");
                    assert!(c.start.is_multiple_of(BLOCK as u64) || c.is_empty());
                    next = c.end;
                }
                assert_eq!(next, chains as u64);
            }
        }
    }
}
