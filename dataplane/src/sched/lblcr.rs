//! lblcr — locality-based least connection with replication
//! (ip_vs_lblcr.c).
//!
//! Like lblc, but a destination address maps to a *set* of servers. A
//! connection goes to the least loaded (overhead / weight) available member.
//! When there is none, or it is overloaded in lblc's sense (active > weight
//! while some server is below half its weight), wlc picks a server from the
//! whole list and it joins the set. A set that has not changed for the
//! expiration time (24 h) and has more than one member drops its most loaded
//! member, so replication shrinks back when the load goes away.
//!
//! Sets list their members newest first, as IPVS's do, which decides ties.
//!
//! Deviations from IPVS: the cache is per worker and bounded (`cache.rs`),
//! and a set holds at most [`SET_MAX`] servers; when a new server joins a
//! full set, a member that left the service goes first, else the most loaded
//! one (the member IPVS's own shrinking would drop).

use super::cache::{Locality, Slot, Table};
use super::{heavier, lblc, wlc};
use crate::service::{Dest, DestId};
use std::net::Ipv4Addr;

/// Servers one destination address can be replicated on.
pub(crate) const SET_MAX: usize = 8;

#[derive(Clone, Copy, Default)]
pub(crate) struct Entry {
    addr: u32,
    lastuse: u32,
    /// When the set last gained or lost a member.
    lastmod: u32,
    /// Members in `ids[..len]`; 0 marks a free slot (a used set is never
    /// empty).
    len: u8,
    ids: [DestId; SET_MAX],
}

impl Slot for Entry {
    #[inline]
    fn key(&self) -> Option<u32> {
        (self.len > 0).then_some(self.addr)
    }
    #[inline]
    fn lastuse(&self) -> u32 {
        self.lastuse
    }
}

impl Entry {
    fn members(&self) -> &[DestId] {
        &self.ids[..self.len as usize]
    }

    fn erase(&mut self, pos: usize) {
        let len = self.len as usize;
        self.ids.copy_within(pos + 1..len, pos);
        self.len -= 1;
    }
}

/// One worker's lblcr cache for one service.
pub(crate) type Cache = Table<Entry>;

/// IPVS `ip_vs_dest_set_min`: the available member with the least
/// overhead / weight.
fn set_min(loc: &Locality, dests: &[Dest], en: &Entry) -> Option<usize> {
    let mut least: Option<(usize, u64, u32)> = None;
    for &id in en.members() {
        let Some(i) = loc.index_of(dests, id) else {
            continue;
        };
        let d = &dests[i];
        if !d.is_available() {
            continue;
        }
        let doh = d.overhead();
        match least {
            Some((_, loh, lw)) if !heavier(loh, lw, doh, d.weight) => {}
            _ => least = Some((i, doh, d.weight)),
        }
    }
    least.map(|(i, _, _)| i)
}

/// IPVS `ip_vs_dest_set_max`: position in the set of the member with a
/// weight and the most overhead / weight (the overload flag does not matter
/// here).
fn set_max(loc: &Locality, dests: &[Dest], en: &Entry) -> Option<usize> {
    let mut most: Option<(usize, u64, u32)> = None;
    for (pos, &id) in en.members().iter().enumerate() {
        let Some(i) = loc.index_of(dests, id) else {
            continue;
        };
        let d = &dests[i];
        if d.weight == 0 {
            continue;
        }
        let doh = d.overhead();
        match most {
            Some((_, moh, mw)) if !heavier(doh, d.weight, moh, mw) => {}
            _ => most = Some((pos, doh, d.weight)),
        }
    }
    most.map(|(pos, _, _)| pos)
}

/// IPVS `ip_vs_dest_set_insert` with a duplicate check, bounded.
fn insert(loc: &Locality, dests: &[Dest], en: &mut Entry, id: DestId, now: u32) {
    if en.members().contains(&id) {
        return;
    }
    if en.len as usize == SET_MAX {
        let gone = en
            .members()
            .iter()
            .position(|&m| loc.index_of(dests, m).is_none());
        let victim = gone
            .or_else(|| set_max(loc, dests, en))
            .unwrap_or(SET_MAX - 1);
        en.erase(victim);
    }
    let len = en.len as usize;
    en.ids.copy_within(0..len, 1);
    en.ids[0] = id;
    en.len += 1;
    en.lastmod = now;
}

pub(crate) fn pick(
    loc: &Locality,
    dests: &[Dest],
    cache: &mut Cache,
    daddr: Ipv4Addr,
    now: u32,
) -> Option<usize> {
    let key = u32::from(daddr);
    let exp = loc.expiration_s;
    if let Some(en) = cache.find(key, now, exp) {
        en.lastuse = now;
        let dest = set_min(loc, dests, en);
        // Unchanged for the expiration time: drop the most loaded member.
        if en.len > 1 && now.wrapping_sub(en.lastmod) > exp {
            if let Some(pos) = set_max(loc, dests, en) {
                en.erase(pos);
                en.lastmod = now;
            }
        }
        if let Some(i) = dest {
            if !lblc::overloaded(dests, &dests[i]) {
                return Some(i);
            }
        }
        let i = wlc::pick(dests)?;
        insert(loc, dests, en, dests[i].shared.id, now);
        return Some(i);
    }
    let i = wlc::pick(dests)?;
    let en = cache.claim(key, now, exp);
    *en = Entry {
        addr: key,
        lastuse: now,
        lastmod: now,
        len: 1,
        ids: [0; SET_MAX],
    };
    en.ids[0] = dests[i].shared.id;
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::*;
    use crate::sched::*;

    const X: u32 = 0xC612_0B01;

    fn go(s: &Scheduler, ds: &[Dest], st: &mut SchedState, now: u32) -> Option<usize> {
        s.pick(ds, st, &input(0xC613_0001, 1234, X), now)
    }

    fn members(st: &mut SchedState, now: u32) -> Vec<DestId> {
        let Some(c) = st.lblcr.as_mut() else {
            return Vec::new();
        };
        c.find(X, now, 86_400)
            .map(|e| e.members().to_vec())
            .unwrap_or_default()
    }

    #[test]
    fn sched_lblcr_replicates_and_picks_least_loaded_member() {
        let ds = dests(&[1, 1, 1]);
        let s = Scheduler::new(SchedKind::Lblcr, SchedFlags::default(), &ds);
        let mut st = SchedState::new(0);
        load(&ds[2], 1, 0);
        assert_eq!(go(&s, &ds, &mut st, 0), Some(0));
        assert_eq!(members(&mut st, 0), vec![1]);
        // Member 0 beyond its weight while server 1 is idle: wlc adds 1.
        load(&ds[0], 2, 0);
        assert_eq!(go(&s, &ds, &mut st, 10), Some(1));
        assert_eq!(members(&mut st, 10), vec![2, 1], "newest first");
        // Now the least loaded member serves: 1 (0 active) ...
        assert_eq!(go(&s, &ds, &mut st, 20), Some(1));
        // ... or 0, once it is the lighter one; server 2 (not a member,
        // lighter still) is not used while a member copes.
        load(&ds[0], 0, 5);
        load(&ds[1], 1, 0);
        load(&ds[2], 0, 0);
        assert_eq!(go(&s, &ds, &mut st, 30), Some(0));
        assert_eq!(members(&mut st, 30), vec![2, 1]);
    }

    #[test]
    fn sched_lblcr_shrinks_after_expiration_without_change() {
        let ds = dests(&[1, 1]);
        let s = Scheduler::new(SchedKind::Lblcr, SchedFlags::default(), &ds);
        let mut st = SchedState::new(0);
        assert_eq!(go(&s, &ds, &mut st, 0), Some(0));
        load(&ds[0], 2, 0);
        assert_eq!(go(&s, &ds, &mut st, 100), Some(1)); // set {1, 0}, lastmod 100
                                                        // Server 1 now the heavier member; 0 serves and the set is stable.
        load(&ds[0], 0, 0);
        load(&ds[1], 1, 0);
        let mut t = 100;
        while t <= 100 + 86_400 {
            assert_eq!(go(&s, &ds, &mut st, t), Some(0));
            assert_eq!(members(&mut st, t).len(), 2, "t={t}");
            t += 3600;
        }
        // More than 24 h since the set last changed: the most loaded goes.
        assert_eq!(go(&s, &ds, &mut st, t), Some(0));
        assert_eq!(members(&mut st, t), vec![1]);
        // A single member is never dropped.
        for _ in 0..30 {
            t += 3600;
            assert_eq!(go(&s, &ds, &mut st, t), Some(0));
            assert_eq!(members(&mut st, t), vec![1]);
        }
    }

    #[test]
    fn sched_lblcr_skips_quiesced_members_and_expires_idle_entries() {
        let ds = dests(&[1, 1]);
        let s = Scheduler::new(SchedKind::Lblcr, SchedFlags::default(), &ds);
        let mut st = SchedState::new(0);
        assert_eq!(go(&s, &ds, &mut st, 0), Some(0));
        let mut q = ds.clone();
        q[0].weight = 0;
        let s2 = Scheduler::new(SchedKind::Lblcr, SchedFlags::default(), &q);
        assert_eq!(go(&s2, &q, &mut st, 1), Some(1));
        assert_eq!(members(&mut st, 1), vec![2, 1]);
        // Entry unused for 24 h: forgotten, scheduled afresh.
        load(&ds[1], 3, 0);
        assert_eq!(go(&s, &ds, &mut st, 1 + 86_400), Some(0));
        assert_eq!(members(&mut st, 1 + 86_400), vec![1]);
    }

    #[test]
    fn sched_lblcr_set_is_bounded() {
        let ds = dests(&[1; 12]);
        let s = Scheduler::new(SchedKind::Lblcr, SchedFlags::default(), &ds);
        let mut st = SchedState::new(0);
        for step in 0..12u32 {
            // Every member beyond its weight, the rest idle: a new one joins.
            let m = members(&mut st, step);
            for d in &ds {
                let member = m.contains(&d.shared.id);
                load(d, if member { 2 } else { 0 }, 0);
            }
            let p = go(&s, &ds, &mut st, step).unwrap();
            assert!(!m.contains(&ds[p].shared.id), "step {step}");
            let now = members(&mut st, step);
            assert_eq!(now[0], ds[p].shared.id);
            assert_eq!(now.len(), (step as usize + 1).min(SET_MAX));
        }
    }
}
