//! The bounded destination-address cache behind lblc and lblcr.
//!
//! IPVS keeps one hash table per service (1024 chains), shared by every CPU
//! under the service's scheduler lock, grows it with a `kmalloc` per new
//! destination address, and lets a timer reclaim entries: every minute, once
//! the table holds more than 16 entries per chain (16384), it frees entries
//! idle for 6 minutes; every 30 minutes it frees entries idle for the
//! expiration sysctl (`lblc_expiration` / `lblcr_expiration`, 24 hours).
//!
//! ferrovs workers must not take locks or allocate per packet, so each worker
//! keeps its own cache (per service, in `SchedState`), allocated once, of the
//! same 1024 × 16 geometry:
//!
//! - a destination address hashes (`hash_32`, as IPVS) to one set of 16 slots;
//! - an entry idle for the expiration time is dead: lookups ignore it and new
//!   entries take its slot (IPVS frees it within 30 minutes of that point);
//! - a new entry in a full set replaces the least recently used one, which is
//!   the entry IPVS's 6-minute collector would free first. Where IPVS would
//!   instead grow past 16384 live entries, we stay bounded.
//!
//! Because the cache is per worker, two workers may map the same destination
//! address to different servers until their caches converge on load; IPVS has
//! one mapping per service. Real-server connection counts, which drive every
//! re-pick, are shared across workers, so the load picture is the same.

use super::hash::hash_32;
use crate::service::{Dest, DestId};
use std::fmt;

/// IPVS `CONFIG_IP_VS_LBLC_TAB_BITS` / `..._LBLCR_TAB_BITS` default.
const SET_BITS: u32 = 10;
const SETS: usize = 1 << SET_BITS;
/// IPVS starts reclaiming above `TAB_SIZE * 16` entries.
const WAYS: usize = 16;
/// Entries one worker's cache holds for one service.
pub(crate) const CAPACITY: usize = SETS * WAYS;

/// IPVS `DEFAULT_EXPIRATION`: 24 hours.
pub(crate) const DEFAULT_EXPIRATION_S: u32 = 24 * 60 * 60;

/// A cache slot: a destination address and when it was last used.
pub(crate) trait Slot: Copy + Default {
    fn key(&self) -> Option<u32>;
    fn lastuse(&self) -> u32;
}

/// Fixed-size set-associative table of [`Slot`]s.
pub(crate) struct Table<S> {
    slots: Box<[S]>,
}

impl<S: Slot> Table<S> {
    pub(crate) fn new() -> Self {
        Table {
            slots: vec![S::default(); CAPACITY].into_boxed_slice(),
        }
    }

    #[inline]
    fn set_of(&mut self, addr: u32) -> &mut [S] {
        let s = hash_32(addr, SET_BITS) as usize * WAYS;
        &mut self.slots[s..s + WAYS]
    }

    /// The live entry for `addr`, if any.
    #[inline]
    pub(crate) fn find(&mut self, addr: u32, now: u32, expiration: u32) -> Option<&mut S> {
        self.set_of(addr)
            .iter_mut()
            .find(|s| s.key() == Some(addr) && live(s.lastuse(), now, expiration))
    }

    /// The slot a new entry for `addr` goes into: its own dead entry, an
    /// empty or dead slot, or else the least recently used entry of the set.
    pub(crate) fn claim(&mut self, addr: u32, now: u32, expiration: u32) -> &mut S {
        let set = self.set_of(addr);
        let mut best = 0;
        let mut best_rank = (0u8, 0u32);
        for (i, s) in set.iter().enumerate() {
            let rank = match s.key() {
                Some(k) if k == addr => (3, 0),
                None => (2, 0),
                Some(_) if !live(s.lastuse(), now, expiration) => (1, 0),
                Some(_) => (0, now.wrapping_sub(s.lastuse())),
            };
            if rank > best_rank || i == 0 {
                best = i;
                best_rank = rank;
            }
        }
        &mut set[best]
    }

    /// Live entries (walks the whole table).
    #[cfg(test)]
    pub(crate) fn live_len(&self, now: u32, expiration: u32) -> usize {
        self.slots
            .iter()
            .filter(|s| s.key().is_some() && live(s.lastuse(), now, expiration))
            .count()
    }
}

#[inline(always)]
fn live(lastuse: u32, now: u32, expiration: u32) -> bool {
    now.wrapping_sub(lastuse) < expiration
}

impl<S> fmt::Debug for Table<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Table({} slots)", self.slots.len())
    }
}

/// What lblc/lblcr keep in the `Scheduler`: how to find a cached server in
/// the snapshot's server list, and the expiration sysctl.
///
/// Cache entries name servers by [`DestId`] (stable across snapshots), not by
/// index, so a worker's cache survives a configuration reload like IPVS's
/// does; a cached server no longer in the list counts as unavailable, as a
/// server in the IPVS trash does.
pub(crate) struct Locality {
    /// (id, index) sorted by id.
    ids: Box<[(DestId, u32)]>,
    pub(crate) expiration_s: u32,
}

impl Locality {
    pub(crate) fn new(dests: &[Dest], expiration_s: u32) -> Locality {
        let mut ids: Vec<(DestId, u32)> = dests
            .iter()
            .enumerate()
            .map(|(i, d)| (d.shared.id, i as u32))
            .collect();
        ids.sort_unstable();
        Locality {
            ids: ids.into_boxed_slice(),
            expiration_s: expiration_s.max(1),
        }
    }

    /// Index of server `id` in `dests`.
    #[inline]
    pub(crate) fn index_of(&self, dests: &[Dest], id: DestId) -> Option<usize> {
        if let Ok(k) = self.ids.binary_search_by_key(&id, |&(d, _)| d) {
            let i = self.ids[k].1 as usize;
            if dests.get(i).is_some_and(|d| d.shared.id == id) {
                return Some(i);
            }
        }
        // Called with a list other than the one we were built from: search it.
        dests.iter().position(|d| d.shared.id == id)
    }
}

impl fmt::Debug for Locality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Locality")
            .field("dests", &self.ids.len())
            .field("expiration_s", &self.expiration_s)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Default)]
    struct T {
        k: Option<u32>,
        t: u32,
    }
    impl Slot for T {
        fn key(&self) -> Option<u32> {
            self.k
        }
        fn lastuse(&self) -> u32 {
            self.t
        }
    }

    #[test]
    fn sched_cache_is_bounded_and_evicts_least_recently_used() {
        let mut t: Table<T> = Table::new();
        let exp = DEFAULT_EXPIRATION_S;
        for a in 0..100_000u32 {
            let s = t.claim(a, a / 10, exp);
            *s = T {
                k: Some(a),
                t: a / 10,
            };
        }
        let now = 100_000 / 10;
        assert!(t.live_len(now, exp) <= CAPACITY);
        assert!(
            t.live_len(now, exp) > CAPACITY * 9 / 10,
            "sets fill up evenly"
        );
        // The most recent entries survive, the oldest were evicted.
        assert!(t.find(99_999, now, exp).is_some());
        assert!(t.find(0, now, exp).is_none());
    }

    #[test]
    fn sched_cache_entries_expire() {
        let mut t: Table<T> = Table::new();
        *t.claim(7, 100, 600) = T { k: Some(7), t: 100 };
        assert!(t.find(7, 699, 600).is_some());
        assert!(t.find(7, 700, 600).is_none());
        // Its own dead slot is reused rather than a second one taken.
        *t.claim(7, 700, 600) = T { k: Some(7), t: 700 };
        assert_eq!(t.live_len(700, 600), 1);
    }
}
