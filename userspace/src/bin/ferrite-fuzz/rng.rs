// SPDX-License-Identifier: MIT
//! The fuzzer's deterministic PRNG: a thin wrapper around
//! `rand_xoshiro`'s Xoshiro256++ (seeded from a `u64` through SplitMix64,
//! as that crate documents), with the bounded helpers the engine uses. The
//! same seed gives the same stream on every machine, so a single-threaded
//! run replays exactly.
//!
//! The seeds of streams and steps are derived with the crate's SplitMix64,
//! as they were before with a SplitMix64 of our own; the numbers drawn
//! from a seed changed with the move to Xoshiro256++ (a seed printed by an
//! older build does not replay the same calls).

use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use rand_xoshiro::{SplitMix64, Xoshiro256PlusPlus};

/// The first SplitMix64 output from state `x`: a well-mixed function of `x`.
pub fn mix(x: u64) -> u64 {
    SplitMix64::seed_from_u64(x).next_u64()
}

/// The seed of the stream of thread `thread` of fuzz process `proc`.
/// Stream (0, 0) is the run's seed itself, so any stream can be replayed
/// alone with `--seed <stream seed> --threads 1 --procs 1`.
pub fn stream_seed(seed: u64, proc: u32, thread: u32) -> u64 {
    if proc == 0 && thread == 0 {
        return seed;
    }
    let mut s = SplitMix64::seed_from_u64(
        seed ^ (u64::from(proc) << 32 | u64::from(thread)).wrapping_mul(0xd6e8_feb8_6659_fd93),
    );
    s.next_u64() ^ s.next_u64().rotate_left(17)
}

/// The seed of operation number `step` of the stream `seed`. Each
/// operation draws from its own generator, so an answer that depends on
/// timing (a wait that times out, a queue still busy) changes what later
/// operations find in the pools but not the numbers they draw.
pub fn step_seed(seed: u64, step: u64) -> u64 {
    mix(seed ^ step.wrapping_mul(0xa076_1d64_78bd_642f))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    gen: Xoshiro256PlusPlus,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng {
            gen: Xoshiro256PlusPlus::seed_from_u64(seed),
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.gen.next_u64()
    }

    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        debug_assert!(lo <= hi);
        match (hi - lo).checked_add(1) {
            Some(n) => lo + self.below(n),
            None => self.next_u64(),
        }
    }

    /// Uniform index into a collection of `len` elements (`len` > 0).
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// With probability `num / den`, remove and return a uniformly chosen
    /// element of `v`; None when `v` is empty (no randomness drawn then).
    pub fn take<T>(&mut self, v: &mut Vec<T>, num: u64, den: u64) -> Option<T> {
        if v.is_empty() || !self.chance(num, den) {
            return None;
        }
        let i = self.index(v.len());
        Some(v.swap_remove(i))
    }

    /// A uniformly chosen element, or None for an empty slice.
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> Option<&'a T> {
        if v.is_empty() {
            None
        } else {
            Some(&v[self.index(v.len())])
        }
    }

    /// An index chosen with the given weights (not all zero).
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut x = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            if x < u64::from(w) {
                return i;
            }
            x -= u64::from(w);
        }
        weights.len() - 1
    }

    /// A value with a few random bits set, biased to small and edge values.
    pub fn interesting_u64(&mut self) -> u64 {
        match self.below(10) {
            0 => 0,
            1 => u64::MAX,
            2 => 1 << self.below(64),
            3 => (1 << self.below(64)) - 1,
            4 => (1u64 << self.below(64)).wrapping_add(self.range(1, 8)),
            5 => self.below(4096),
            6 => u64::MAX - self.below(4096),
            7 => i64::MAX as u64 + self.below(2),
            _ => self.next_u64(),
        }
    }

    pub fn interesting_u32(&mut self) -> u32 {
        match self.below(8) {
            0 => 0,
            1 => u32::MAX,
            2 => 1 << self.below(32),
            3 => self.below(64) as u32,
            4 => u32::MAX - self.below(64) as u32,
            5 => i32::MAX as u32 + self.below(2) as u32,
            _ => self.next_u32(),
        }
    }

    /// Fill `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Xoshiro256++ seeded with SplitMix64 from 1: the first outputs, as
    /// the published reference algorithm gives them.
    const PINNED: [u64; 4] = [
        0xcfc5_d07f_6f03_c29b,
        0xbf42_4132_963f_e08d,
        0x19a3_7d57_57aa_f520,
        0xbf08_119f_05cd_56d6,
    ];

    #[test]
    fn same_seed_same_stream() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        let va: Vec<u64> = (0..1000).map(|_| a.next_u64()).collect();
        let vb: Vec<u64> = (0..1000).map(|_| b.next_u64()).collect();
        assert_eq!(va, vb);
        let mut c = Rng::new(43);
        assert_ne!(va[0], c.next_u64());
    }

    #[test]
    fn splitmix_reference_values() {
        // SplitMix64 from state 0: the published first outputs (the seeds
        // of streams and steps are what they were before the crate).
        let mut s = SplitMix64::seed_from_u64(0);
        assert_eq!(s.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(s.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(s.next_u64(), 0x06c4_5d18_8009_454f);
        assert_eq!(mix(0), 0xe220_a839_7b1d_cdaf);
    }

    #[test]
    fn stream_is_pinned() {
        // The first outputs for seed 1: a crate update that changed the
        // stream (and so what a seed replays) fails here.
        let mut r = Rng::new(1);
        let v: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
        assert_eq!(v, PINNED);
        // Bounded draws are functions of those outputs.
        let mut r = Rng::new(1);
        assert_eq!(r.below(1000), ((u128::from(PINNED[0]) * 1000) >> 64) as u64);
        assert_eq!(r.next_u32(), (PINNED[1] >> 32) as u32);
    }

    #[test]
    fn stream_seeds() {
        assert_eq!(stream_seed(7, 0, 0), 7);
        let s: Vec<u64> = (0..4)
            .flat_map(|p| (0..4).map(move |t| stream_seed(7, p, t)))
            .collect();
        for (i, a) in s.iter().enumerate() {
            for b in &s[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(stream_seed(7, 2, 3), stream_seed(7, 2, 3));
    }

    #[test]
    fn step_seeds() {
        assert_eq!(step_seed(5, 9), step_seed(5, 9));
        let v: Vec<u64> = (0..1000).map(|i| step_seed(5, i)).collect();
        let mut d = v.clone();
        d.sort_unstable();
        d.dedup();
        assert_eq!(d.len(), v.len());
        assert_ne!(step_seed(5, 1), step_seed(6, 1));
    }

    #[test]
    fn bounded_helpers_stay_in_bounds() {
        let mut r = Rng::new(1);
        for _ in 0..10_000 {
            assert!(r.below(7) < 7);
            let v = r.range(10, 20);
            assert!((10..=20).contains(&v));
            assert!(r.index(3) < 3);
        }
        assert_eq!(r.below(0), 0);
        assert_eq!(r.range(5, 5), 5);
        let _ = r.range(0, u64::MAX);
        assert_eq!(r.pick::<u8>(&[]), None);
        assert_eq!(r.pick(&[9]), Some(&9));
    }

    #[test]
    fn weighted_respects_zero_weights() {
        let mut r = Rng::new(3);
        let mut seen = [0u32; 3];
        for _ in 0..3000 {
            seen[r.weighted(&[1, 0, 3])] += 1;
        }
        assert_eq!(seen[1], 0);
        assert!(seen[0] > 400 && seen[2] > 1800, "{seen:?}");
    }

    #[test]
    fn take_removes_one_element_and_draws_nothing_when_empty() {
        let mut r = Rng::new(7);
        let mut empty: Vec<u32> = Vec::new();
        let before = r.clone().next_u64();
        assert_eq!(r.take(&mut empty, 1, 1), None);
        assert_eq!(r.clone().next_u64(), before);
        let mut v = vec![1, 2, 3];
        let got = r.take(&mut v, 1, 1).expect("always taken");
        assert_eq!(v.len(), 2);
        assert!(!v.contains(&got));
        assert_eq!(r.take(&mut v, 0, 1), None);
        assert_eq!(v.len(), 2);
    }

    #[test]
    fn chance_is_roughly_right() {
        let mut r = Rng::new(5);
        let n = (0..10_000).filter(|_| r.chance(1, 4)).count();
        assert!((2_200..2_800).contains(&n), "{n}");
        assert!((0..100).all(|_| !r.chance(0, 4)));
        assert!((0..100).all(|_| r.chance(4, 4)));
    }

    #[test]
    fn fill_is_deterministic() {
        let (mut a, mut b) = (Rng::new(9), Rng::new(9));
        let (mut x, mut y) = ([0u8; 13], [0u8; 13]);
        a.fill(&mut x);
        b.fill(&mut y);
        assert_eq!(x, y);
        assert!(x.iter().any(|&v| v != 0));
    }
}
