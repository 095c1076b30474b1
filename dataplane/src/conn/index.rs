//! A cache-line-bucketed hash index from flow tuples to slab entries.
//!
//! Each 64-byte bucket holds seven (tag, entry) pairs. A lookup touches one
//! bucket line and then one slab entry, and both can be prefetched for a
//! whole burst before any packet is handled: that is what keeps a table of
//! millions of flows from costing a memory stall per packet (the same idea
//! as DPDK's rte_hash and VPP's bihash). Buckets that overflowed count how
//! many entries passed them, so a lookup stops at the first bucket that was
//! never full, and deletion needs no tombstones.

use crate::port::prefetch;

const SLOTS: usize = 7;
const EMPTY: u32 = 0;

#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Bucket {
    tags: [u32; SLOTS],
    idx: [u32; SLOTS],
    /// Entries whose home is this bucket or an earlier one, stored later.
    overflow: u32,
    _pad: u32,
}

const _: () = assert!(std::mem::size_of::<Bucket>() == 64);

pub struct FlowIndex {
    buckets: Box<[Bucket]>,
    mask: usize,
}

/// The tag is the hash's high half, never 0 (0 marks an empty slot).
#[inline(always)]
fn tag(h: u64) -> u32 {
    ((h >> 32) as u32) | 1
}

impl FlowIndex {
    /// An index for `capacity` entries at most 80% full.
    pub fn with_capacity(capacity: usize) -> FlowIndex {
        let n = (capacity * 5 / 4 / SLOTS + 1).next_power_of_two();
        FlowIndex {
            buckets: vec![Bucket::default(); n].into_boxed_slice(),
            mask: n - 1,
        }
    }

    #[inline(always)]
    fn home(&self, h: u64) -> usize {
        h as usize & self.mask
    }

    /// Starts fetching the bucket `h` lives in.
    #[inline(always)]
    pub fn prefetch(&self, h: u64) {
        prefetch(&self.buckets[self.home(h)]);
    }

    /// Calls `f(entry)` for every entry whose tag matches, until `f` returns
    /// true; returns that entry.
    #[inline]
    pub fn find(&self, h: u64, mut f: impl FnMut(u32) -> bool) -> Option<u32> {
        let t = tag(h);
        let mut b = self.home(h);
        for _ in 0..=self.mask {
            let bk = &self.buckets[b];
            for s in 0..SLOTS {
                if bk.tags[s] == t && f(bk.idx[s]) {
                    return Some(bk.idx[s]);
                }
            }
            if bk.overflow == 0 {
                return None;
            }
            b = (b + 1) & self.mask;
        }
        None
    }

    /// The first entry whose tag matches (a candidate to prefetch).
    #[inline(always)]
    pub fn first_candidate(&self, h: u64) -> Option<u32> {
        let t = tag(h);
        let bk = &self.buckets[self.home(h)];
        (0..SLOTS).find(|&s| bk.tags[s] == t).map(|s| bk.idx[s])
    }

    /// Adds `entry` under hash `h`. False when every bucket is full (cannot
    /// happen while the slab is smaller than the index).
    pub fn insert(&mut self, h: u64, entry: u32) -> bool {
        let t = tag(h);
        let home = self.home(h);
        let mut b = home;
        for _ in 0..=self.mask {
            let bk = &mut self.buckets[b];
            if let Some(s) = (0..SLOTS).find(|&s| bk.tags[s] == EMPTY) {
                bk.tags[s] = t;
                bk.idx[s] = entry;
                // Mark the buckets passed on the way.
                let mut p = home;
                while p != b {
                    self.buckets[p].overflow += 1;
                    p = (p + 1) & self.mask;
                }
                return true;
            }
            b = (b + 1) & self.mask;
        }
        false
    }

    /// Removes `entry` stored under hash `h`.
    pub fn remove(&mut self, h: u64, entry: u32) -> bool {
        let t = tag(h);
        let home = self.home(h);
        let mut b = home;
        for _ in 0..=self.mask {
            let bk = &mut self.buckets[b];
            if let Some(s) = (0..SLOTS).find(|&s| bk.tags[s] == t && bk.idx[s] == entry) {
                bk.tags[s] = EMPTY;
                let mut p = home;
                while p != b {
                    self.buckets[p].overflow -= 1;
                    p = (p + 1) & self.mask;
                }
                return true;
            }
            if bk.overflow == 0 {
                return false;
            }
            b = (b + 1) & self.mask;
        }
        false
    }

    pub fn memory_bytes(&self) -> usize {
        self.buckets.len() * std::mem::size_of::<Bucket>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_find_remove_with_overflow() {
        // A tiny index where everything collides into few buckets.
        let mut ix = FlowIndex::with_capacity(20);
        let n = ix.buckets.len();
        let keys: Vec<u64> = (0..(n * SLOTS) as u64).map(|i| (i << 32) | 1).collect();
        for (i, &h) in keys.iter().enumerate() {
            assert!(ix.insert(h, i as u32));
        }
        // Full: one more fails.
        assert!(!ix.insert(99 << 32, 999));
        for (i, &h) in keys.iter().enumerate() {
            assert_eq!(ix.find(h, |e| e == i as u32), Some(i as u32));
        }
        for (i, &h) in keys.iter().enumerate().step_by(2) {
            assert!(ix.remove(h, i as u32));
        }
        for (i, &h) in keys.iter().enumerate() {
            let found = ix.find(h, |e| e == i as u32);
            assert_eq!(found.is_some(), i % 2 == 1);
        }
        for (i, &h) in keys.iter().enumerate().skip(1).step_by(2) {
            assert!(ix.remove(h, i as u32));
        }
        assert!(ix
            .buckets
            .iter()
            .all(|b| b.overflow == 0 && b.tags.iter().all(|&t| t == EMPTY)));
    }

    #[test]
    fn random_churn_matches_a_model() {
        let mut ix = FlowIndex::with_capacity(1000);
        let mut model = std::collections::HashMap::new();
        let mut x = 0x1234_5678_9abc_def0u64;
        for step in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let h = (x % 4096).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            if let Some(&e) = model.get(&h) {
                assert!(ix.remove(h, e));
                model.remove(&h);
            } else if model.len() < 1000 {
                assert!(ix.insert(h, step));
                model.insert(h, step);
            }
        }
        for (&h, &e) in &model {
            assert_eq!(ix.find(h, |c| c == e), Some(e));
        }
    }
}
