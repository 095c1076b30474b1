//! Persistence templates (`ipvsadm -p timeout -M netmask`), shared by all
//! workers: a client's connections land on different workers, yet all must
//! reach the server its first connection was given.
//!
//! A fixed open-addressing table of 32-byte slots, lock-free. A slot is keyed
//! by (service, client address & mask). Its `life` word packs the number of
//! live connections it controls with its expiry, so that "acquire for a new
//! connection" and "reclaim a dead slot" are single compare-and-swaps and can
//! never both win. Key and server are published under a per-slot sequence
//! number (a seqlock) so a reader never pairs one key with another's server.
//! Keys are never cleared, which keeps linear probing correct; dead slots are
//! reused in probe order.
//!
//! IPVS semantics kept: the template's timeout restarts whenever a new
//! connection uses it, and it cannot expire while connections it controls
//! live; after the last one ends it dies at the next multiple of the timeout
//! (the kernel re-arms the template timer by a full timeout each time it
//! finds controlled connections).

use crate::service::{DestId, ServiceId};
use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};

const NO_DEST: u32 = u32::MAX;
const MAX_PROBE: usize = 32;

#[derive(Default)]
#[repr(C, align(32))]
struct Slot {
    seq: AtomicU32,
    dest: AtomicU32,
    key: AtomicU64,
    /// refs << 32 | expires (seconds).
    life: AtomicU64,
    /// The persistence timeout it was created with.
    timeout: AtomicU32,
}

#[inline(always)]
fn pack(refs: u32, exp: u32) -> u64 {
    ((refs as u64) << 32) | exp as u64
}
#[inline(always)]
fn unpack(l: u64) -> (u32, u32) {
    ((l >> 32) as u32, l as u32)
}

/// A template that a new connection now holds a reference on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    pub slot: u32,
    pub dest: DestId,
}

/// What [`TemplateTable::create`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Created {
    pub held: Held,
    /// False when another worker had just created the same template: use
    /// its server.
    pub fresh: bool,
    /// The server of a dead template whose slot this one took (its
    /// PersistConn must drop, as if the reaper had freed it).
    pub evicted: Option<DestId>,
}

/// Outcome of looking a client up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A live template; the caller now holds a reference and must
    /// [`TemplateTable::release`] it when the connection ends.
    Hit(Held),
    /// No live template: schedule, then [`TemplateTable::create`].
    Miss,
}

/// A template as `ipvsadm -Lnc` lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TemplateView {
    pub svc: ServiceId,
    pub caddr: [u8; 4],
    pub dest: DestId,
    pub refs: u32,
    pub expires_s: u32,
}

pub struct TemplateTable {
    slots: Box<[Slot]>,
    /// An IPv6 table's masked client addresses, one per slot, published
    /// under the slot's sequence number with its key (empty in an IPv4
    /// table, whose 32-bit address is the key itself). An IPv6 slot's key
    /// holds a keyed 32-bit digest of the address where IPv4's holds the
    /// address: the probe sequence stays out of a client's control and the
    /// full address decides a match, so two clients never share a template.
    addr6: Box<[[AtomicU64; 2]]>,
    mask: usize,
    hasher: ahash::RandomState,
    /// Reaper position, shared so any worker can advance it.
    reap_cursor: CachePadded<AtomicU64>,
}

#[inline(always)]
fn key(svc: ServiceId, caddr: [u8; 4]) -> u64 {
    // The top bit marks a used key so that 0 stays "never used".
    (1 << 63) | ((svc as u64 & 0x7fff_ffff) << 32) | u32::from_be_bytes(caddr) as u64
}

impl TemplateTable {
    pub fn new(capacity: usize) -> TemplateTable {
        let n = capacity.max(MAX_PROBE).next_power_of_two();
        TemplateTable {
            slots: (0..n)
                .map(|_| Slot {
                    dest: AtomicU32::new(NO_DEST),
                    ..Default::default()
                })
                .collect(),
            mask: n - 1,
            hasher: ahash::RandomState::new(),
            reap_cursor: CachePadded::new(AtomicU64::new(0)),
            addr6: Box::new([]),
        }
    }

    /// A table for IPv6 services: [`TemplateTable::lookup6`] and
    /// [`TemplateTable::create6`]; 48 bytes a slot (32 + the address).
    pub fn new_v6(capacity: usize) -> TemplateTable {
        let mut t = TemplateTable::new(capacity);
        t.addr6 = (0..t.slots.len()).map(|_| Default::default()).collect();
        t
    }

    /// The key of an IPv6 client (`caddr` already masked).
    #[inline]
    fn key6(&self, svc: ServiceId, caddr: &[u8; 16]) -> (u64, u128) {
        let a = u128::from_be_bytes(*caddr);
        let digest = self.hasher.hash_one(a) as u32;
        (key(svc, digest.to_be_bytes()), a)
    }

    /// [`TemplateTable::lookup`] for an IPv6 client (masked by the
    /// service's prefix length), in a table made by
    /// [`TemplateTable::new_v6`].
    pub fn lookup6(&self, svc: ServiceId, caddr: &[u8; 16], now_s: u32, timeout_s: u32) -> Lookup {
        if self.addr6.is_empty() {
            return Lookup::Miss;
        }
        let (k, a) = self.key6(svc, caddr);
        self.lookup_key(k, a, now_s, timeout_s)
    }

    /// [`TemplateTable::create`] for an IPv6 client; None in an IPv4 table.
    pub fn create6(
        &self,
        svc: ServiceId,
        caddr: &[u8; 16],
        dest: DestId,
        now_s: u32,
        timeout_s: u32,
    ) -> Option<Created> {
        if self.addr6.is_empty() {
            return None;
        }
        let (k, a) = self.key6(svc, caddr);
        self.create_key(k, a, dest, now_s, timeout_s)
    }

    /// Whether slot `i`'s IPv6 address is `a` (always, in an IPv4 table).
    /// Read between the two sequence loads of [`TemplateTable::read`].
    #[inline(always)]
    fn addr_is(&self, i: usize, a: u128) -> bool {
        match self.addr6.get(i) {
            None => true,
            Some(w) => ((w[0].load(Acquire) as u128) << 64 | w[1].load(Acquire) as u128) == a,
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Reads key and server consistently.
    #[inline]
    fn read(&self, s: &Slot) -> (u64, u32, u32) {
        loop {
            let a = s.seq.load(Acquire);
            if a & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let k = s.key.load(Acquire);
            let d = s.dest.load(Acquire);
            if s.seq.load(Acquire) == a {
                return (k, d, a);
            }
        }
    }

    /// Looks up (service, masked client) and, when alive, takes a reference
    /// and restarts its timeout.
    pub fn lookup(&self, svc: ServiceId, caddr: [u8; 4], now_s: u32, timeout_s: u32) -> Lookup {
        self.lookup_key(key(svc, caddr), 0, now_s, timeout_s)
    }

    #[inline]
    fn lookup_key(&self, k: u64, a6: u128, now_s: u32, timeout_s: u32) -> Lookup {
        let h = self.hasher.hash_one(k) as usize;
        for p in 0..MAX_PROBE {
            let i = (h + p) & self.mask;
            let s = &self.slots[i];
            let (sk, d, seq) = self.read(s);
            if sk == 0 {
                return Lookup::Miss;
            }
            if sk != k || d == NO_DEST {
                continue;
            }
            if !self.addr6.is_empty() && (!self.addr_is(i, a6) || s.seq.load(Acquire) != seq) {
                continue;
            }
            if self.try_acquire(s, now_s, timeout_s) {
                if s.seq.load(Acquire) == seq {
                    return Lookup::Hit(Held {
                        slot: i as u32,
                        dest: d,
                    });
                }
                // Reclaimed for another client under us: undo and go on.
                self.release(i as u32, now_s);
            }
        }
        Lookup::Miss
    }

    fn try_acquire(&self, s: &Slot, now_s: u32, timeout_s: u32) -> bool {
        let mut cur = s.life.load(Acquire);
        loop {
            let (refs, exp) = unpack(cur);
            if refs == 0 && exp <= now_s {
                return false;
            }
            let new = pack(refs + 1, exp.max(now_s.saturating_add(timeout_s)));
            match s.life.compare_exchange_weak(cur, new, AcqRel, Acquire) {
                Ok(_) => return true,
                Err(c) => cur = c,
            }
        }
    }

    /// Creates a template for a client that just got server `dest`, holding
    /// one reference. None when every slot of its probe window is alive
    /// (the caller counts it and forwards without persistence). If another
    /// worker created the same template first, that one is returned instead
    /// and the caller must use its server.
    pub fn create(
        &self,
        svc: ServiceId,
        caddr: [u8; 4],
        dest: DestId,
        now_s: u32,
        timeout_s: u32,
    ) -> Option<Created> {
        self.create_key(key(svc, caddr), 0, dest, now_s, timeout_s)
    }

    fn create_key(
        &self,
        k: u64,
        a6: u128,
        dest: DestId,
        now_s: u32,
        timeout_s: u32,
    ) -> Option<Created> {
        let h = self.hasher.hash_one(k) as usize;
        let exp = now_s.saturating_add(timeout_s);
        let mut p = 0;
        while p < MAX_PROBE {
            let i = (h + p) & self.mask;
            let s = &self.slots[i];
            let (mut sk, d, seq) = self.read(s);
            if sk == k
                && !self.addr6.is_empty()
                && (!self.addr_is(i, a6) || s.seq.load(Acquire) != seq)
            {
                // Another client whose digest matches ours: not our key.
                // (A slot that changed under us is read again.)
                if s.seq.load(Acquire) != seq {
                    continue;
                }
                sk = !k;
            }
            if sk == k && d != NO_DEST && self.try_acquire(s, now_s, timeout_s) {
                if s.seq.load(Acquire) == seq {
                    return Some(Created {
                        held: Held {
                            slot: i as u32,
                            dest: d,
                        },
                        fresh: false,
                        evicted: None,
                    });
                }
                self.release(i as u32, now_s);
                continue;
            }
            let (refs, e) = unpack(s.life.load(Acquire));
            let dead = refs == 0 && e <= now_s;
            if !dead && (sk != k || d == NO_DEST) {
                // Live and someone else's (or ours but invalidated, waiting
                // for its last connection): its key cannot change while it
                // lives, so our template is not here.
                p += 1;
                continue;
            }
            // Empty or dead (or ours, being created): claim it under the
            // slot's writer lock, from exactly the state read above, so two
            // creators of one template can never pick different slots.
            if !self.lock_from(s, seq) {
                continue;
            }
            let cur = s.life.load(Acquire);
            let (refs, e) = unpack(cur);
            if refs == 0 && e <= now_s && Self::claim(s, cur, pack(1, exp)) {
                s.key.store(k, Release);
                if let Some(w) = self.addr6.get(i) {
                    w[0].store((a6 >> 64) as u64, Release);
                    w[1].store(a6 as u64, Release);
                }
                let evicted = s.dest.swap(dest, AcqRel);
                s.timeout.store(timeout_s, Release);
                Self::unlock(s);
                return Some(Created {
                    held: Held {
                        slot: i as u32,
                        dest,
                    },
                    fresh: true,
                    evicted: (evicted != NO_DEST).then_some(evicted),
                });
            }
            // Came alive since: look at it again.
            Self::unlock(s);
        }
        None
    }

    /// Turns a dead slot's life word into ours, only if it is still the
    /// dead one read: the writer lock keeps other writers out, not a
    /// worker whose clock lags ours and who may still take a reference on
    /// the old template (`try_acquire` is lock-free). A plain store would
    /// overwrite that reference, and the undo that follows when the worker
    /// sees the sequence move would then free ours.
    #[inline]
    fn claim(s: &Slot, dead: u64, ours: u64) -> bool {
        s.life.compare_exchange(dead, ours, AcqRel, Acquire).is_ok()
    }

    /// Takes the slot's writer lock, only if the slot is still as read at
    /// sequence `seq` (even); false when it changed meanwhile.
    #[inline]
    fn lock_from(&self, s: &Slot, seq: u32) -> bool {
        seq & 1 == 0
            && s.seq
                .compare_exchange(seq, seq + 1, AcqRel, Acquire)
                .is_ok()
    }

    /// Takes the slot's writer lock, waiting for another writer.
    fn lock(&self, s: &Slot) {
        loop {
            let seq = s.seq.load(Acquire);
            if self.lock_from(s, seq) {
                return;
            }
            std::hint::spin_loop();
        }
    }

    #[inline]
    fn unlock(s: &Slot) {
        s.seq.fetch_add(1, Release);
    }

    /// Drops a connection's reference. When the last one goes, the template
    /// lives until the next multiple of its timeout, as in IPVS.
    pub fn release(&self, slot: u32, now_s: u32) {
        let s = &self.slots[slot as usize & self.mask];
        let timeout_s = s.timeout.load(Acquire);
        let mut cur = s.life.load(Acquire);
        loop {
            let (refs, mut exp) = unpack(cur);
            if refs == 0 {
                return;
            }
            if refs == 1 && exp < now_s && timeout_s > 0 {
                let turns = (now_s - exp).div_ceil(timeout_s);
                exp = exp.saturating_add(turns.saturating_mul(timeout_s));
            }
            match s
                .life
                .compare_exchange_weak(cur, pack(refs - 1, exp), AcqRel, Acquire)
            {
                Ok(_) => return,
                Err(c) => cur = c,
            }
        }
    }

    /// Releases the reference of a connection that created the template
    /// and was evicted half-open (a flood's SYN, most likely): when it was
    /// the template's only connection, the template dies now instead of a
    /// persistence timeout later, so that a spoofed flood does not fill the
    /// table with templates for minutes. A template another connection
    /// also holds is released as usual.
    pub fn release_abandoned(&self, slot: u32, now_s: u32) {
        let s = &self.slots[slot as usize & self.mask];
        let mut cur = s.life.load(Acquire);
        loop {
            let (refs, _) = unpack(cur);
            if refs == 0 {
                return;
            }
            if refs > 1 {
                return self.release(slot, now_s);
            }
            match s
                .life
                .compare_exchange_weak(cur, pack(0, 0), AcqRel, Acquire)
            {
                Ok(_) => return,
                Err(c) => cur = c,
            }
        }
    }

    /// Stops a template from being used again because its server left the
    /// service (IPVS `ip_vs_check_template`): new connections of the client
    /// are scheduled afresh. Connections holding it keep their reference.
    /// Returns the server it pointed to, whose PersistConn the caller drops.
    pub fn invalidate(&self, slot: u32) -> Option<DestId> {
        let s = &self.slots[slot as usize & self.mask];
        self.lock(s);
        let d = s.dest.swap(NO_DEST, AcqRel);
        Self::unlock(s);
        // Let it die as soon as its last connection goes.
        let _ = s
            .life
            .fetch_update(AcqRel, Acquire, |l| Some(pack(unpack(l).0, 0)));
        (d != NO_DEST).then_some(d)
    }

    /// Frees up to `budget` dead templates from where the last call stopped,
    /// calling `freed(dest)` for each (to drop the server's PersistConn).
    pub fn reap(&self, now_s: u32, budget: usize, mut freed: impl FnMut(DestId)) -> usize {
        let start = self.reap_cursor.fetch_add(budget as u64, Relaxed) as usize;
        let mut n = 0;
        for j in 0..budget {
            let s = &self.slots[(start + j) & self.mask];
            let cur = s.life.load(Acquire);
            let (refs, e) = unpack(cur);
            let d = s.dest.load(Acquire);
            if d == NO_DEST || refs != 0 || e > now_s {
                continue;
            }
            // Under the writer lock, and only if still dead: clear the
            // server and let the slot go.
            let (_, _, seq) = self.read(s);
            if !self.lock_from(s, seq) {
                continue;
            }
            let (refs, e) = unpack(s.life.load(Acquire));
            let d = if refs == 0 && e <= now_s {
                s.dest.swap(NO_DEST, AcqRel)
            } else {
                NO_DEST
            };
            Self::unlock(s);
            if d != NO_DEST {
                freed(d);
                n += 1;
            }
        }
        n
    }

    /// Live templates, for listings.
    pub fn iter(&self, now_s: u32) -> impl Iterator<Item = TemplateView> + '_ {
        self.slots.iter().filter_map(move |s| {
            let (k, d, _) = self.read(s);
            let (refs, e) = unpack(s.life.load(Acquire));
            if k == 0 || d == NO_DEST || (refs == 0 && e <= now_s) {
                return None;
            }
            Some(TemplateView {
                svc: ((k >> 32) & 0x7fff_ffff) as u32,
                caddr: (k as u32).to_be_bytes(),
                dest: d,
                refs,
                expires_s: e,
            })
        })
    }

    /// Live templates of an IPv6 table with their masked client addresses,
    /// for listings (none in an IPv4 table).
    pub fn iter6(&self, now_s: u32) -> impl Iterator<Item = (TemplateView, [u8; 16])> + '_ {
        self.slots
            .iter()
            .zip(self.addr6.iter())
            .filter_map(move |(s, w)| {
                // Key, server and address read under one sequence number.
                let (k, d, a) = loop {
                    let (k, d, seq) = self.read(s);
                    let a = (w[0].load(Acquire) as u128) << 64 | w[1].load(Acquire) as u128;
                    if s.seq.load(Acquire) == seq {
                        break (k, d, a);
                    }
                };
                let (refs, e) = unpack(s.life.load(Acquire));
                if k == 0 || d == NO_DEST || (refs == 0 && e <= now_s) {
                    return None;
                }
                Some((
                    TemplateView {
                        svc: ((k >> 32) & 0x7fff_ffff) as u32,
                        caddr: [0; 4],
                        dest: d,
                        refs,
                        expires_s: e,
                    },
                    a.to_be_bytes(),
                ))
            })
    }

    pub fn memory_bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<Slot>() + self.addr6.len() * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: [u8; 4] = [198, 18, 0, 2];

    #[test]
    fn create_hit_release_expire() {
        let t = TemplateTable::new(64);
        assert_eq!(t.lookup(1, C, 100, 360), Lookup::Miss);
        let Created { held: h, fresh, .. } = t.create(1, C, 7, 100, 360).unwrap();
        assert!(fresh);
        assert_eq!(
            t.lookup(1, C, 101, 360),
            Lookup::Hit(Held {
                slot: h.slot,
                dest: 7
            })
        );
        // Another service or client does not match.
        assert_eq!(t.lookup(2, C, 101, 360), Lookup::Miss);
        assert_eq!(t.lookup(1, [198, 18, 0, 3], 101, 360), Lookup::Miss);
        t.release(h.slot, 200);
        t.release(h.slot, 200);
        // Last use at 101: alive until 461.
        assert!(matches!(t.lookup(1, C, 460, 360), Lookup::Hit(_)));
        t.release(h.slot, 460);
        assert_eq!(t.lookup(1, C, 820, 360), Lookup::Miss);
        let mut freed = vec![];
        t.reap(820, 64, |d| freed.push(d));
        assert_eq!(freed, vec![7]);
        assert_eq!(t.iter(820).count(), 0);
    }

    #[test]
    fn abandoned_template_dies_at_once_unless_shared() {
        let t = TemplateTable::new(64);
        let h = t.create(1, C, 7, 100, 360).unwrap().held;
        t.release_abandoned(h.slot, 101);
        assert_eq!(t.lookup(1, C, 101, 360), Lookup::Miss);
        let mut freed = vec![];
        t.reap(101, 64, |d| freed.push(d));
        assert_eq!(freed, vec![7]);
        // Held by a second connection too: released as usual, it lives on.
        let h = t.create(1, C, 8, 200, 360).unwrap().held;
        assert!(matches!(t.lookup(1, C, 201, 360), Lookup::Hit(_)));
        t.release_abandoned(h.slot, 202);
        assert!(matches!(t.lookup(1, C, 203, 360), Lookup::Hit(_)));
        t.release(h.slot, 204);
        t.release(h.slot, 204);
        assert!(matches!(t.lookup(1, C, 500, 360), Lookup::Hit(_)));
    }

    #[test]
    fn invalidated_template_is_skipped() {
        let t = TemplateTable::new(64);
        let h = t.create(1, C, 7, 0, 360).unwrap().held;
        assert_eq!(t.invalidate(h.slot), Some(7));
        assert_eq!(t.lookup(1, C, 1, 360), Lookup::Miss);
        let Created {
            held: h2, fresh, ..
        } = t.create(1, C, 8, 1, 360).unwrap();
        assert!(fresh);
        assert_ne!(h2.slot, h.slot);
        assert!(matches!(
            t.lookup(1, C, 2, 360),
            Lookup::Hit(Held { dest: 8, .. })
        ));
        // The old one frees its slot once its connection ends.
        t.release(h.slot, 3);
        assert_eq!(t.reap(3, 64, |_| {}), 0);
    }

    #[test]
    fn held_template_outlives_timeout() {
        let t = TemplateTable::new(64);
        let h = t.create(1, C, 3, 0, 10).unwrap().held;
        // A connection lasting 25 s keeps it; it dies at the next multiple.
        assert!(t.iter(25).any(|v| v.dest == 3));
        t.release(h.slot, 25);
        assert!(t.iter(29).any(|v| v.dest == 3));
        assert!(!t.iter(30).any(|v| v.dest == 3));
    }

    #[test]
    fn dead_slots_are_reused_and_full_is_reported() {
        let t = TemplateTable::new(32);
        let mut held = vec![];
        for c in 0..32u8 {
            if let Some(c) = t.create(1, [198, 18, 1, c], 1, 0, 10) {
                held.push(c.held);
            }
        }
        // Probing is bounded, so a few may not fit; a new one fails while all
        // are alive and held.
        assert!(held.len() >= 16);
        let extra = t.create(1, [198, 18, 2, 1], 1, 0, 10);
        if held.len() == 32 {
            assert!(extra.is_none());
        }
        for h in &held {
            t.release(h.slot, 0);
        }
        assert!(t.create(1, [198, 18, 2, 2], 2, 11, 10).is_some());
    }

    #[test]
    fn concurrent_creates_agree() {
        use std::sync::Arc;
        let t = Arc::new(TemplateTable::new(1 << 12));
        let threads: Vec<_> = (0..4u32)
            .map(|w| {
                let t = t.clone();
                std::thread::spawn(move || {
                    let mut got = vec![];
                    for c in 0..500u16 {
                        let caddr = [198, 19, (c >> 8) as u8, c as u8];
                        let d = match t.lookup(1, caddr, 1, 360) {
                            Lookup::Hit(h) => h.dest,
                            Lookup::Miss => t.create(1, caddr, w, 1, 360).unwrap().held.dest,
                        };
                        got.push(d);
                    }
                    got
                })
            })
            .collect();
        let results: Vec<Vec<u32>> = threads.into_iter().map(|h| h.join().unwrap()).collect();
        for c in 0..500 {
            let d = results[0][c];
            assert!(
                results.iter().all(|r| r[c] == d),
                "client {c} split across servers"
            );
        }
    }

    /// The interleaving of the race, step by step: a creator has found a
    /// slot dead by its clock and holds the writer lock; a worker whose
    /// clock lags takes a reference on the old template; the creator's
    /// claim must fail and leave that reference alone.
    #[test]
    fn a_reclaim_never_overwrites_a_lagging_acquire() {
        let t = TemplateTable::new(64);
        let old = t.create(1, C, 7, 100, 10).unwrap().held;
        t.release(old.slot, 100);
        let s = &t.slots[old.slot as usize];
        // Creator at t=200: dead (expired at 110). It locks the slot.
        let (_, _, seq) = t.read(s);
        let dead = s.life.load(Acquire);
        assert_eq!(unpack(dead), (0, 110));
        assert!(t.lock_from(s, seq));
        // A worker at t=105 still sees it alive and takes a reference.
        assert!(t.try_acquire(s, 105, 10));
        assert_eq!(unpack(s.life.load(Acquire)).0, 1);
        // The creator's claim fails; the reference stays.
        assert!(!TemplateTable::claim(s, dead, pack(1, 210)));
        assert_eq!(unpack(s.life.load(Acquire)), (1, 115));
        TemplateTable::unlock(s);
    }

    /// Several workers with skewed clocks create, look up and release
    /// templates of a few clients in a small table, so that slots die and
    /// are reclaimed while a worker whose clock lags still finds them
    /// alive. At the end every slot's reference count must equal the
    /// references the workers still hold on it: a reclaim that overwrote
    /// a concurrent acquire (the bug: a plain store of the new life word)
    /// loses one, and its undo then frees a reference it never had.
    #[test]
    fn refcounts_match_holders_under_skewed_clocks() {
        use std::sync::Arc;
        let t = Arc::new(TemplateTable::new(64));
        let start = Arc::new(std::sync::Barrier::new(4));
        let threads: Vec<_> = (0..4u32)
            .map(|w| {
                let t = t.clone();
                let start = start.clone();
                std::thread::spawn(move || {
                    start.wait();
                    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (w as u64 + 1);
                    let mut next = move || {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        rng
                    };
                    let mut held: Vec<u32> = Vec::new();
                    for i in 0..2_000_000u32 {
                        // Clocks a few seconds apart, templates of 2 s.
                        let now = i / 20_000 + w * 3;
                        let r = next();
                        if held.len() < 6 && r % 3 != 0 {
                            let caddr = [198, 19, 0, (r >> 8) as u8 % 48];
                            match t.lookup(1, caddr, now, 2) {
                                Lookup::Hit(h) => held.push(h.slot),
                                Lookup::Miss => {
                                    if let Some(c) = t.create(1, caddr, w, now, 2) {
                                        held.push(c.held.slot);
                                    }
                                }
                            }
                        } else if !held.is_empty() {
                            let k = (r >> 16) as usize % held.len();
                            t.release(held.swap_remove(k), now);
                        }
                    }
                    held
                })
            })
            .collect();
        let mut want = vec![0u32; t.capacity()];
        for h in threads {
            for slot in h.join().unwrap() {
                want[slot as usize] += 1;
            }
        }
        let got: Vec<u32> = t
            .slots
            .iter()
            .map(|s| unpack(s.life.load(Acquire)).0)
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn ipv6_templates_match_the_whole_address() {
        let t = TemplateTable::new_v6(64);
        let a: [u8; 16] = "2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        let b: [u8; 16] = "2001:db8::2"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        assert_eq!(t.lookup6(1, &a, 100, 360), Lookup::Miss);
        let c = t.create6(1, &a, 7, 100, 360).unwrap();
        assert!(c.fresh);
        assert_eq!(t.lookup6(1, &a, 101, 360), Lookup::Hit(c.held));
        assert_eq!(t.lookup6(1, &b, 101, 360), Lookup::Miss);
        assert_eq!(t.lookup6(2, &a, 101, 360), Lookup::Miss);
        let d = t.create6(1, &b, 8, 101, 360).unwrap();
        assert!(d.fresh && d.held.slot != c.held.slot);
        // Another worker creating the same template gets the first one.
        let again = t.create6(1, &a, 9, 102, 360).unwrap();
        assert!(!again.fresh);
        assert_eq!(again.held.dest, 7);
        // An IPv4 table refuses IPv6 keys rather than confuse them.
        let v4 = TemplateTable::new(64);
        assert_eq!(v4.lookup6(1, &a, 100, 360), Lookup::Miss);
        assert!(v4.create6(1, &a, 7, 100, 360).is_none());
        assert_eq!(t.memory_bytes(), 64 * 48);
        // Listed with their addresses.
        let mut l: Vec<_> = t.iter6(102).map(|(v, a)| (v.svc, v.dest, a)).collect();
        l.sort();
        assert_eq!(l, vec![(1, 7, a), (1, 8, b)]);
        assert_eq!(v4.iter6(102).count(), 0);
    }

    #[test]
    fn ipv6_template_digest_collisions_do_not_share() {
        // Find two clients whose 32-bit digests collide (the seed is random,
        // so search: by the birthday bound a collision is expected near 82k
        // draws, and 2M draws miss one with probability about e^-465), then
        // check they still get their own slots.
        let t = TemplateTable::new_v6(1 << 12);
        let mut by_digest = std::collections::HashMap::new();
        let mut pair = None;
        for i in 0u32..2_000_000 {
            let mut a = [0u8; 16];
            a[12..].copy_from_slice(&i.to_be_bytes());
            let (k, _) = t.key6(1, &a);
            if let Some(prev) = by_digest.insert(k, a) {
                pair = Some((prev, a));
                break;
            }
        }
        let (a, b) = pair.expect("a 32-bit digest collides within 2M addresses");
        let ca = t.create6(1, &a, 7, 100, 360).unwrap();
        assert!(ca.fresh);
        assert_eq!(t.lookup6(1, &b, 100, 360), Lookup::Miss);
        let cb = t.create6(1, &b, 8, 100, 360).unwrap();
        assert!(cb.fresh);
        assert_ne!(ca.held.slot, cb.held.slot);
        assert_eq!(
            t.lookup6(1, &a, 100, 360),
            Lookup::Hit(Held {
                slot: ca.held.slot,
                dest: 7
            })
        );
        assert_eq!(
            t.lookup6(1, &b, 100, 360),
            Lookup::Hit(Held {
                slot: cb.held.slot,
                dest: 8
            })
        );
    }
}
