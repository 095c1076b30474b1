//! lblc — locality-based least connection (ip_vs_lblc.c), for cache
//! clusters: connections to the same destination address go to the same
//! server while it copes.
//!
//! The cache maps destination address → server. On a hit the cached server
//! is kept unless it is quiesced, gone, or "overloaded" in lblc's own sense:
//! more active connections than its weight while some server is below half
//! its weight. Otherwise wlc picks a server and the cache remembers it. An
//! entry unused for the expiration time (24 h) is forgotten.
//!
//! Deviations from IPVS, both deliberate:
//! - The cache is per worker, bounded, allocated once (see `cache.rs`);
//!   IPVS has one unbounded table per service.
//! - IPVS keeps a cached server that carries the connection-threshold
//!   overload flag; we re-pick, so that `-x` is a hard limit for every
//!   scheduler, as for lblcr, sh, dh and mh.

use super::cache::{Locality, Slot, Table};
use super::wlc;
use crate::service::{Dest, DestId};
use std::net::Ipv4Addr;

#[derive(Clone, Copy, Default)]
pub(crate) struct Entry {
    used: bool,
    addr: u32,
    lastuse: u32,
    dest: DestId,
}

impl Slot for Entry {
    #[inline]
    fn key(&self) -> Option<u32> {
        self.used.then_some(self.addr)
    }
    #[inline]
    fn lastuse(&self) -> u32 {
        self.lastuse
    }
}

/// One worker's lblc cache for one service.
pub(crate) type Cache = Table<Entry>;

/// lblc/lblcr `is_overloaded`: more active connections than weight, while
/// some server (any in the list) has fewer than half its weight.
pub(crate) fn overloaded(dests: &[Dest], d: &Dest) -> bool {
    d.shared.active() > d.weight
        && dests
            .iter()
            .any(|m| (m.shared.active() as u64) * 2 < m.weight as u64)
}

pub(crate) fn pick(
    loc: &Locality,
    dests: &[Dest],
    cache: &mut Cache,
    daddr: Ipv4Addr,
    now: u32,
) -> Option<usize> {
    let key = u32::from(daddr);
    if let Some(en) = cache.find(key, now, loc.expiration_s) {
        en.lastuse = now;
        if let Some(i) = loc.index_of(dests, en.dest) {
            let d = &dests[i];
            if d.is_available() && !overloaded(dests, d) {
                return Some(i);
            }
        }
    }
    // No entry, or its server must be replaced: schedule by wlc.
    let i = wlc::pick(dests)?;
    *cache.claim(key, now, loc.expiration_s) = Entry {
        used: true,
        addr: key,
        lastuse: now,
        dest: dests[i].shared.id,
    };
    Some(i)
}

#[cfg(test)]
mod tests {
    use crate::sched::testutil::*;
    use crate::sched::*;

    const X: u32 = 0xC612_0A01;
    const Y: u32 = 0xC612_0A02;

    fn go(s: &Scheduler, ds: &[Dest], st: &mut SchedState, daddr: u32, now: u32) -> Option<usize> {
        s.pick(ds, st, &input(0xC613_0001, 1234, daddr), now)
    }

    #[test]
    fn sched_lblc_caches_and_repicks_when_overloaded() {
        let ds = dests(&[1, 1, 2]);
        let s = Scheduler::new(SchedKind::Lblc, SchedFlags::default(), &ds);
        let mut st = SchedState::new(0);
        load(&ds[0], 0, 0);
        load(&ds[1], 0, 0);
        load(&ds[2], 4, 0);
        // Miss: wlc picks server 0 (tie with 1, first wins); remembered.
        assert_eq!(go(&s, &ds, &mut st, X, 0), Some(0));
        // Server 0 is now busier than server 1, but not beyond its weight:
        // locality wins over wlc.
        load(&ds[0], 1, 50);
        assert_eq!(go(&s, &ds, &mut st, X, 10), Some(0));
        // A different destination is scheduled on its own (wlc → 1).
        assert_eq!(go(&s, &ds, &mut st, Y, 10), Some(1));
        // Beyond its weight while server 1 is under half of its: re-pick.
        load(&ds[0], 2, 0);
        load(&ds[1], 0, 0);
        assert_eq!(go(&s, &ds, &mut st, X, 20), Some(1));
        // ... and the new mapping sticks.
        load(&ds[0], 0, 0);
        load(&ds[1], 1, 0);
        assert_eq!(go(&s, &ds, &mut st, X, 30), Some(1));
    }

    #[test]
    fn sched_lblc_keeps_an_overloaded_server_when_nobody_has_room() {
        let ds = dests(&[1, 1]);
        let s = Scheduler::new(SchedKind::Lblc, SchedFlags::default(), &ds);
        let mut st = SchedState::new(0);
        assert_eq!(go(&s, &ds, &mut st, X, 0), Some(0));
        // 5 > 1, but server 1 has 3 active: 6 < 1 is false, so no server is
        // under half load and the cached one stays (wlc alone would say 1).
        load(&ds[0], 5, 0);
        load(&ds[1], 3, 0);
        assert_eq!(go(&s, &ds, &mut st, X, 1), Some(0));
    }

    #[test]
    fn sched_lblc_repicks_for_quiesced_overloaded_or_removed_servers() {
        let ds = dests(&[1, 1, 1]);
        let s = Scheduler::new(SchedKind::Lblc, SchedFlags::default(), &ds);
        let mut st = SchedState::new(0);
        assert_eq!(go(&s, &ds, &mut st, X, 0), Some(0));
        // New snapshot: server 0 quiesced. The worker's cache carries over.
        let mut q = ds.clone();
        q[0].weight = 0;
        let s2 = Scheduler::new(SchedKind::Lblc, SchedFlags::default(), &q);
        load(&ds[1], 1, 0);
        assert_eq!(go(&s2, &q, &mut st, X, 1), Some(2));
        // Threshold-overloaded: re-pick too.
        let mut o = ds.clone();
        overload(&mut o[2]);
        let s3 = Scheduler::new(SchedKind::Lblc, SchedFlags::default(), &o);
        assert_eq!(go(&s3, &o, &mut st, X, 2), Some(0));
        // Removed from the list: re-pick among the rest.
        let r: Vec<Dest> = vec![ds[1].clone(), ds[2].clone()];
        load(&ds[2], 0, 0);
        o[2].recheck_overload();
        let s4 = Scheduler::new(SchedKind::Lblc, SchedFlags::default(), &r);
        let p = go(&s4, &r, &mut st, X, 3).unwrap();
        assert_eq!(
            r[p].shared.id, ds[2].shared.id,
            "wlc among the remaining servers"
        );
    }

    #[test]
    fn sched_lblc_entries_expire_after_24h() {
        let ds = dests(&[1, 1]);
        let s = Scheduler::new(SchedKind::Lblc, SchedFlags::default(), &ds);
        let mut st = SchedState::new(0);
        load(&ds[0], 1, 0);
        assert_eq!(go(&s, &ds, &mut st, X, 1000), Some(1));
        // Server 1 busier now but within its weight: cached.
        load(&ds[0], 0, 0);
        load(&ds[1], 1, 0);
        assert_eq!(go(&s, &ds, &mut st, X, 1000 + 86_399), Some(1));
        // Used at +86399, so alive until +2·86399; unused for 24 h: gone,
        // and wlc picks afresh.
        assert_eq!(go(&s, &ds, &mut st, X, 1000 + 2 * 86_399), Some(1));
        assert_eq!(go(&s, &ds, &mut st, X, 1000 + 2 * 86_399 + 86_400), Some(0));
    }

    #[test]
    fn sched_lblc_expiration_is_configurable() {
        let ds = dests(&[1, 1]);
        let opts = SchedOptions {
            expiration_s: 60,
            ..SchedOptions::default()
        };
        let s = Scheduler::with_options(SchedKind::Lblc, SchedFlags::default(), &ds, &opts);
        let mut st = SchedState::new(0);
        assert_eq!(go(&s, &ds, &mut st, X, 0), Some(0));
        load(&ds[0], 1, 0);
        assert_eq!(go(&s, &ds, &mut st, X, 59), Some(0));
        assert_eq!(go(&s, &ds, &mut st, X, 59 + 60), Some(1));
    }

    #[test]
    fn sched_lblc_cache_is_bounded() {
        let ds = dests(&[1, 1, 1]);
        let s = Scheduler::new(SchedKind::Lblc, SchedFlags::default(), &ds);
        let mut st = SchedState::new(0);
        for a in 0..200_000u32 {
            assert!(go(&s, &ds, &mut st, 0xC612_0000 + a, a / 100).is_some());
        }
        let live = st.lblc.as_ref().unwrap().live_len(2000, 86_400);
        assert!(live <= s.table_size().unwrap() && live > 15_000, "{live}");
    }
}
