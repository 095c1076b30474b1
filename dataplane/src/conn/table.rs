//! The per-worker connection table: a fixed slab of 64-byte entries, two
//! bucketed indexes (client tuple, reply tuple) holding slab indices, and
//! the expiry wheel.
//!
//! Clients choose the keys, so the indexes hash with a per-table random key
//! (aHash `RandomState`). Capacity is fixed at creation: the slab and the
//! indexes are allocated once and a full table does not grow, so the fast
//! path never allocates.
//!
//! Flood defence (see `conn::pressure`): entries a spoofed flood can make
//! (half-open TCP, unconfirmed UDP) are filed, oldest first, in a ring of
//! eviction candidates; when the table is full, [`ConnTable::evict_oldest`]
//! makes room by removing the oldest of them. The table tracks its pressure
//! level as its occupancy changes.

use super::addr_pool::{self, AddrPool};
use super::entry::{Addrs6, Conn, Tuple, Tuple6, F_EVICTABLE, F_OUT_INDEXED, F_USED, NIL};
use super::evict::EvictRing;
use super::ghost::{Ghost, GhostCache};
use super::index::FlowIndex;
use super::pressure::Pressure;
use super::timer::{Wheel, TICK_MS};
use crate::persist::{Kind, Store};
use crate::port::prefetch;
use crate::port::shm::Region;
use crate::service::FwdMethod;
use std::sync::atomic::{compiler_fence, Ordering};

/// The table is full; the new connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableFull;

/// Why an IPv6 table refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused6 {
    /// No free entry (or an IPv4 table).
    Full,
    /// Its VIP, server or local address would be one more than the table's
    /// address pool holds ([`addr_pool`]).
    AddrPoolFull,
}

/// Addresses an IPv6 table's pool holds before any snapshot asked for more
/// ([`ConnTable::reserve_addrs6`]): VIPs, real servers and local addresses
/// in use at once.
pub const POOL6_INITIAL: usize = 4096;

/// An IPv6 entry's addresses as stored: the client's own, and for the VIP,
/// the real server and the local address, indices into the table's pool
/// (`addr_pool.rs`), the local address [`addr_pool::CLIENT`] when it is the
/// client's (NAT, DR, TUN).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
struct Slot6 {
    caddr: [u8; 16],
    vaddr: u16,
    daddr: u16,
    laddr: u16,
}

// 22 bytes, not padded to 24: the two bytes per entry are what keeps an
// IPv6 connection within 128 bytes with the table.
const _: () = assert!(std::mem::size_of::<Slot6>() == 22);

pub struct ConnTable {
    /// On the heap, or in a file the next process reads (`crate::persist`).
    slab: Region<Conn>,
    free: u32,
    /// One more than the highest slab index ever used (a clean stop writes
    /// it, `persist::USED_BELOW_AT`).
    used_below: u32,
    len: usize,
    fullnat_len: usize,
    in_idx: FlowIndex,
    out_idx: FlowIndex,
    hasher: ahash::RandomState,
    wheel: Wheel,
    /// Eviction candidates, oldest first.
    ring: EvictRing,
    /// Entries filed in the ring (`F_EVICTABLE`).
    unconfirmed: usize,
    /// Ring ticket up to which candidates got the short timeout in this
    /// spell of pressure.
    shorten_at: u32,
    /// Candidates that left the ring because it was full.
    untracked: u64,
    /// What evicted half-open TCP entries left behind.
    ghosts: GhostCache,
    pressure: Pressure,
    /// An IPv6 table's addresses, by slab index; empty in an IPv4 table.
    ///
    /// IPv6 connections live in a table of their own (a worker has one of
    /// each) rather than in a shared one with wider entries: IPv4's entry
    /// stays one 64-byte line and its lookups compare two words, while an
    /// IPv6 table reuses everything else unchanged (indexes, the expiry
    /// wheel, pressure, eviction) and only hashes and compares through
    /// these addresses.
    slots6: Region<Slot6>,
    /// The VIPs, servers and local addresses `slots6` name.
    pool6: AddrPool,
}

/// Converts milliseconds to wheel ticks.
#[inline(always)]
pub fn ticks(now_ms: u64) -> u32 {
    (now_ms / TICK_MS) as u32
}

/// Converts seconds to wheel ticks.
#[inline(always)]
pub fn secs_to_ticks(s: u32) -> u32 {
    ((s as u64 * 1000) / TICK_MS).min(u32::MAX as u64 / 2) as u32
}

impl ConnTable {
    pub fn new(capacity: usize, now_ms: u64) -> ConnTable {
        let capacity = capacity.clamp(1, (NIL - 1) as usize);
        ConnTable::with_slab(Region::heap(capacity, Conn::EMPTY), now_ms)
    }

    /// [`ConnTable::new`], its entries in `store`'s file for this worker, so
    /// that they outlive the process (issue 17).
    pub fn new_stored(capacity: usize, now_ms: u64, store: &Store) -> std::io::Result<ConnTable> {
        let capacity = capacity.clamp(1, (NIL - 1) as usize);
        let slab = store.region(Kind::Conn4, capacity, Conn::EMPTY)?;
        Ok(ConnTable::with_slab(slab, now_ms))
    }

    /// [`ConnTable::new_v6`] in `store`'s files: the slab, the slots and a
    /// copy of the address pool.
    pub fn new_v6_stored(
        capacity: usize,
        now_ms: u64,
        store: &Store,
    ) -> std::io::Result<ConnTable> {
        let capacity = capacity.clamp(1, (NIL - 1) as usize);
        let slab = store.region(Kind::Conn6, capacity, Conn::EMPTY)?;
        let mut t = ConnTable::with_slab(slab, now_ms);
        t.slots6 = store.region(Kind::Slots6, capacity, Slot6::default())?;
        t.pool6 = AddrPool::with_capacity(POOL6_INITIAL);
        t.pool6
            .set_mirror(store.region(Kind::Pool6, addr_pool::MAX, [0u8; 16])?);
        t.ghosts = GhostCache::with_ghosts(1);
        Ok(t)
    }

    /// Stamps the table's file as written by a clean stop (`persist::CLEAN_AT`).
    pub fn mark_clean(&mut self, at_mono_ms: u64) {
        let ub = crate::persist::encode_used_below(Some(self.used_below as u64));
        self.slab
            .write_header(crate::persist::USED_BELOW_AT, &ub.to_le_bytes());
        self.slab
            .write_header(crate::persist::CLEAN_AT, &at_mono_ms.to_le_bytes());
    }

    /// Whether the entries live in a file.
    pub fn is_stored(&self) -> bool {
        self.slab.is_mapped()
    }

    fn with_slab(mut slab: Region<Conn>, now_ms: u64) -> ConnTable {
        let capacity = slab.len();
        for (i, e) in slab.iter_mut().enumerate() {
            e.next = if i + 1 < capacity {
                (i + 1) as u32
            } else {
                NIL
            };
        }
        ConnTable {
            slab,
            free: 0,
            used_below: 0,
            len: 0,
            fullnat_len: 0,
            in_idx: FlowIndex::with_capacity(capacity),
            out_idx: FlowIndex::with_capacity(capacity),
            hasher: ahash::RandomState::new(),
            wheel: Wheel::new(ticks(now_ms)),
            ring: EvictRing::for_table(capacity),
            unconfirmed: 0,
            shorten_at: 0,
            untracked: 0,
            ghosts: GhostCache::for_table(capacity),
            pressure: Pressure::new(capacity),
            slots6: Region::default(),
            pool6: AddrPool::with_capacity(0),
        }
    }

    /// A table for IPv6 connections (and NAT64's, whose client side is
    /// IPv6): use the `*6` lookups and [`ConnTable::insert6`]. It keeps no
    /// ghosts (their 4-byte local address cannot hold an IPv6 one).
    pub fn new_v6(capacity: usize, now_ms: u64) -> ConnTable {
        let mut t = ConnTable::new(capacity, now_ms);
        t.slots6 = Region::heap(t.slab.len(), Slot6::default());
        t.pool6 = AddrPool::with_capacity(POOL6_INITIAL);
        t.ghosts = GhostCache::with_ghosts(1);
        t
    }

    pub fn is_v6(&self) -> bool {
        !self.slots6.is_empty()
    }

    /// Room in an IPv6 table's address pool for `n` VIPs, servers and local
    /// addresses at once. Allocates: for a new snapshot, not per packet.
    pub fn reserve_addrs6(&mut self, n: usize) {
        if self.is_v6() {
            self.pool6.reserve(n);
        }
    }

    /// The pool's (addresses held, capacity).
    pub fn addrs6_pooled(&self) -> (usize, usize) {
        (self.pool6.len(), self.pool6.capacity())
    }

    #[inline(always)]
    fn laddr6<'a>(pool: &'a AddrPool, s: &'a Slot6) -> &'a [u8; 16] {
        if s.laddr == addr_pool::CLIENT {
            &s.caddr
        } else {
            pool.get(s.laddr)
        }
    }

    #[inline(always)]
    fn in_tuple6(&self, i: u32) -> Tuple6 {
        let (c, s) = (&self.slab[i as usize], &self.slots6[i as usize]);
        Tuple6 {
            proto: c.proto,
            saddr: s.caddr,
            sport: c.cport,
            daddr: *self.pool6.get(s.vaddr),
            dport: c.vport,
        }
    }

    #[inline(always)]
    fn out_tuple6(&self, i: u32) -> Tuple6 {
        let (c, s) = (&self.slab[i as usize], &self.slots6[i as usize]);
        Tuple6 {
            proto: c.proto,
            saddr: *self.pool6.get(s.daddr),
            sport: c.dport,
            daddr: *Self::laddr6(&self.pool6, s),
            dport: c.lport,
        }
    }

    #[inline(always)]
    pub fn hash6(&self, t: &Tuple6) -> u64 {
        self.hasher.hash_one(t.words())
    }

    /// The client-tuple hash of entry `i`, by its family.
    #[inline(always)]
    fn in_hash(&self, i: u32) -> u64 {
        if self.is_v6() {
            self.hash6(&self.in_tuple6(i))
        } else {
            self.hash(&self.slab[i as usize].in_tuple())
        }
    }

    /// The reply-tuple hash of entry `i`, by its family.
    #[inline(always)]
    fn out_hash(&self, i: u32) -> u64 {
        if self.is_v6() {
            self.hash6(&self.out_tuple6(i))
        } else {
            self.hash(&self.slab[i as usize].out_tuple())
        }
    }

    /// The addresses of IPv6 entry `i` (an IPv6 table's entry).
    #[inline(always)]
    pub fn get6(&self, i: u32) -> Addrs6 {
        let s = &self.slots6[i as usize];
        Addrs6 {
            caddr: s.caddr,
            vaddr: *self.pool6.get(s.vaddr),
            daddr: *self.pool6.get(s.daddr),
            laddr: *Self::laddr6(&self.pool6, s),
        }
    }

    /// The real server of IPv6 entry `i`, alone: what DR needs, without
    /// the rest of [`ConnTable::get6`].
    #[inline(always)]
    pub fn daddr6(&self, i: u32) -> [u8; 16] {
        *self.pool6.get(self.slots6[i as usize].daddr)
    }

    /// The client of IPv6 entry `i`.
    #[inline(always)]
    pub fn caddr6(&self, i: u32) -> [u8; 16] {
        self.slots6[i as usize].caddr
    }

    /// The VIP of IPv6 entry `i`.
    #[inline(always)]
    pub fn vaddr6(&self, i: u32) -> [u8; 16] {
        *self.pool6.get(self.slots6[i as usize].vaddr)
    }

    /// The local address of IPv6 entry `i` (the client's, but in FULLNAT).
    #[inline(always)]
    pub fn laddr6_of(&self, i: u32) -> [u8; 16] {
        *Self::laddr6(&self.pool6, &self.slots6[i as usize])
    }

    /// Finds the IPv6 connection whose client-side tuple is `t`.
    #[inline]
    pub fn lookup_in6(&self, t: &Tuple6, h: u64) -> Option<u32> {
        let (slab, s6, pool) = (&self.slab, &self.slots6, &self.pool6);
        self.in_idx.find(h, |i| {
            let (c, s) = (&slab[i as usize], &s6[i as usize]);
            c.cport == t.sport
                && c.vport == t.dport
                && c.proto == t.proto
                && s.caddr == t.saddr
                && *pool.get(s.vaddr) == t.daddr
        })
    }

    /// Finds the IPv6 connection whose reply tuple is `t` (NAT64's replies
    /// with IPv4-mapped addresses).
    #[inline]
    pub fn lookup_out6(&self, t: &Tuple6, h: u64) -> Option<u32> {
        let (slab, s6, pool) = (&self.slab, &self.slots6, &self.pool6);
        self.out_idx.find(h, |i| {
            let (c, s) = (&slab[i as usize], &s6[i as usize]);
            c.dport == t.sport
                && c.lport == t.dport
                && c.proto == t.proto
                && *pool.get(s.daddr) == t.saddr
                && *Self::laddr6(pool, s) == t.daddr
        })
    }

    /// Whether an IPv6 reply tuple is taken (FULLNAT port allocation).
    pub fn out_tuple_in_use6(&self, t: &Tuple6) -> bool {
        self.lookup_out6(t, self.hash6(t)).is_some()
    }

    /// [`ConnTable::insert`] for an IPv6 table: the connection and its
    /// addresses. Refused (as full) by an IPv4 table.
    pub fn insert6(&mut self, c: Conn, a: Addrs6, now_ms: u64) -> Result<u32, Refused6> {
        if !self.is_v6() || self.free == NIL {
            return Err(Refused6::Full);
        }
        let pool = &mut self.pool6;
        let Some(vaddr) = pool.intern(&a.vaddr) else {
            return Err(Refused6::AddrPoolFull);
        };
        let Some(daddr) = pool.intern(&a.daddr) else {
            pool.release(vaddr);
            return Err(Refused6::AddrPoolFull);
        };
        let laddr = if a.laddr == a.caddr {
            addr_pool::CLIENT
        } else if let Some(l) = pool.intern(&a.laddr) {
            l
        } else {
            pool.release(vaddr);
            pool.release(daddr);
            return Err(Refused6::AddrPoolFull);
        };
        let s = Slot6 {
            caddr: a.caddr,
            vaddr,
            daddr,
            laddr,
        };
        self.insert_with(c, Some(s), now_ms)
            .map_err(|_| Refused6::Full)
    }

    #[inline(always)]
    pub fn hash(&self, t: &Tuple) -> u64 {
        self.hasher.hash_one(t.words())
    }

    /// Finds the connection whose client-side tuple is `t`.
    #[inline]
    pub fn lookup_in(&self, t: &Tuple, h: u64) -> Option<u32> {
        let w = t.words();
        let slab = &self.slab;
        self.in_idx
            .find(h, |i| slab[i as usize].in_tuple().words() == w)
    }

    /// Finds the connection whose reply tuple is `t`.
    #[inline]
    pub fn lookup_out(&self, t: &Tuple, h: u64) -> Option<u32> {
        let w = t.words();
        let slab = &self.slab;
        self.out_idx
            .find(h, |i| slab[i as usize].out_tuple().words() == w)
    }

    /// First stage of a burst lookup: fetch the index bucket.
    #[inline(always)]
    pub fn prefetch_bucket(&self, h: u64, reply: bool) {
        if reply {
            self.out_idx.prefetch(h)
        } else {
            self.in_idx.prefetch(h)
        }
    }

    /// Second stage: fetch the entry the bucket points at; returns its
    /// index (for what the caller keeps beside the entry).
    #[inline(always)]
    pub fn prefetch_entry(&self, h: u64, reply: bool) -> Option<u32> {
        let c = if reply {
            self.out_idx.first_candidate(h)
        } else {
            self.in_idx.first_candidate(h)
        };
        if let Some(i) = c {
            prefetch(&self.slab[i as usize]);
            // An IPv6 lookup compares the client's address too, in the
            // entry's slot: 22 bytes that may straddle two lines.
            if let Some(s) = self.slots6.get(i as usize) {
                prefetch(&s.caddr);
                prefetch(&s.laddr);
            }
        }
        c
    }

    /// Whether a reply tuple is already taken (FULLNAT port allocation).
    pub fn out_tuple_in_use(&self, t: &Tuple) -> bool {
        self.lookup_out(t, self.hash(t)).is_some()
    }

    /// Adds a connection; it expires `c.timeout_s` from `now_ms` unless
    /// refreshed. Indexed by its reply tuple too when `F_OUT_INDEXED` is set.
    pub fn insert(&mut self, c: Conn, now_ms: u64) -> Result<u32, TableFull> {
        if self.is_v6() {
            // An IPv6 entry needs its addresses.
            return Err(TableFull);
        }
        self.insert_with(c, None, now_ms)
    }

    #[inline]
    fn insert_with(
        &mut self,
        mut c: Conn,
        a6: Option<Slot6>,
        now_ms: u64,
    ) -> Result<u32, TableFull> {
        if self.free == NIL {
            return Err(TableFull);
        }
        let i = self.free;
        self.free = self.slab[i as usize].next;
        self.used_below = self.used_below.max(i + 1);
        c.flags &= !(F_USED | F_EVICTABLE);
        c.expires = ticks(now_ms) + secs_to_ticks(c.timeout_s);
        // The addresses and the entry first, "used" last: a process killed
        // in between leaves a free slot, never a half-written connection
        // for the next one to read (`crate::persist`).
        if let Some(a) = a6 {
            self.slots6[i as usize] = a;
        }
        self.slab[i as usize] = c;
        compiler_fence(Ordering::Release);
        self.slab[i as usize].flags |= F_USED;
        c.flags |= F_USED;
        let h = self.in_hash(i);
        self.in_idx.insert(h, i);
        if c.flags & F_OUT_INDEXED != 0 {
            let h = self.out_hash(i);
            self.out_idx.insert(h, i);
        }
        self.wheel.link(&mut self.slab, i);
        self.len += 1;
        self.fullnat_len += (c.fwd == FwdMethod::FullNat) as usize;
        if c.is_unconfirmed() {
            self.track(i);
        }
        self.pressure.update(self.slab.len() - self.len);
        Ok(i)
    }

    /// Files entry `i` as the newest eviction candidate.
    #[inline]
    fn track(&mut self, i: u32) {
        if self.ring.is_full() {
            if let Some((seq, j)) = self.ring.pop() {
                if self.holds_ticket(j, seq) {
                    self.slab[j as usize].flags &= !F_EVICTABLE;
                    self.unconfirmed -= 1;
                    self.untracked += 1;
                }
            }
        }
        let seq = self.ring.push(i);
        let e = &mut self.slab[i as usize];
        e.ring_seq = seq;
        e.flags |= F_EVICTABLE;
        self.unconfirmed += 1;
    }

    /// Whether ring slot `seq` still stands for entry `j`.
    #[inline(always)]
    fn holds_ticket(&self, j: u32, seq: u32) -> bool {
        let e = &self.slab[j as usize];
        e.flags & (F_USED | F_EVICTABLE) == (F_USED | F_EVICTABLE) && e.ring_seq == seq
    }

    /// Files or unfiles entry `i` after its state or flags changed: a
    /// completed handshake or a confirmed UDP flow leaves the candidates, a
    /// connection that starts over (a SYN in TIME_WAIT) joins them again.
    #[inline]
    pub fn reclassify(&mut self, i: u32) {
        let e = &self.slab[i as usize];
        let filed = e.flags & F_EVICTABLE != 0;
        let want = e.is_unconfirmed();
        if want && !filed {
            self.track(i);
        } else if filed && !want {
            self.slab[i as usize].flags &= !F_EVICTABLE;
            self.unconfirmed -= 1;
        }
    }

    /// Removes the oldest eviction candidate, examining at most `budget`
    /// ring slots, and returns it so that the caller can release its real
    /// server and template. None when there is no candidate (the table holds
    /// only established and closing connections) or the budget ran out.
    pub fn evict_oldest(&mut self, budget: usize) -> Option<Conn> {
        for _ in 0..budget {
            let (seq, j) = self.ring.pop()?;
            if self.holds_ticket(j, seq) {
                let c = self.slab[j as usize];
                let h = self.in_hash(j);
                self.remove(j);
                // Ghosts keep a 4-byte local address: IPv6 entries leave
                // none (their client's next segment finds no connection).
                if c.proto == crate::wire::ipv4::PROTO_TCP && !self.is_v6() {
                    self.ghosts.remember(
                        h,
                        c.dest_id,
                        c.laddr,
                        c.lport,
                        c.flags & super::entry::F_REPLIED,
                    );
                }
                return Some(c);
            }
        }
        None
    }

    /// The ghost an evicted half-open connection with client tuple hash `h`
    /// left, taken out of the cache (see `conn::ghost`).
    #[inline]
    pub fn revive(&mut self, h: u64) -> Option<Ghost> {
        self.ghosts.take(h)
    }

    /// Drops stale slots at the head of the ring (at most `budget`), so that
    /// the next eviction finds a candidate at once.
    pub fn trim_candidates(&mut self, budget: usize) {
        for _ in 0..budget {
            match self.ring.peek() {
                Some((seq, j)) if !self.holds_ticket(j, seq) => {
                    self.ring.pop();
                }
                _ => return,
            }
        }
    }

    /// Under pressure, gives candidates filed before it began the short
    /// timeout that new ones get (`conn::pressure`), oldest first, at most
    /// `budget` ring slots per call; the garbage of a flood's first minutes
    /// then leaves as fast as the rest. Returns the entries shortened.
    pub fn shorten_candidates(&mut self, now_ms: u64, budget: usize) -> usize {
        use super::pressure::{PRESSURE_HALF_OPEN_S, PRESSURE_UDP_S};
        if !self.pressure.is_on() {
            return 0;
        }
        let (head, tail) = self.ring.span();
        if self.ring.at(self.shorten_at).is_none() && self.shorten_at != tail {
            self.shorten_at = head;
        }
        let mut n = 0;
        for _ in 0..budget {
            let seq = self.shorten_at;
            let Some(j) = self.ring.at(seq) else { break };
            self.shorten_at = seq.wrapping_add(1);
            if !self.holds_ticket(j, seq) {
                continue;
            }
            let e = &self.slab[j as usize];
            let short = if e.proto == crate::wire::ipv4::PROTO_TCP {
                PRESSURE_HALF_OPEN_S
            } else {
                PRESSURE_UDP_S
            };
            if e.timeout_s > short {
                self.set_timeout(j, short, now_ms);
                n += 1;
            }
        }
        n
    }

    /// Whether the table is under pressure (short timeouts for half-open
    /// and unconfirmed entries, secure TCP).
    #[inline(always)]
    pub fn under_pressure(&self) -> bool {
        self.pressure.is_on()
    }

    pub fn pressure(&self) -> &Pressure {
        &self.pressure
    }

    /// Entries that are eviction candidates now.
    pub fn unconfirmed(&self) -> usize {
        self.unconfirmed
    }

    /// Candidates given up because the ring was full.
    pub fn untracked(&self) -> u64 {
        self.untracked
    }

    #[inline(always)]
    pub fn get(&self, i: u32) -> &Conn {
        &self.slab[i as usize]
    }

    #[inline(always)]
    pub fn get_mut(&mut self, i: u32) -> &mut Conn {
        &mut self.slab[i as usize]
    }

    /// Refreshes the expiry from the entry's current timeout.
    #[inline(always)]
    pub fn touch(&mut self, i: u32, now_ms: u64) {
        let exp = ticks(now_ms) + secs_to_ticks(self.slab[i as usize].timeout_s);
        self.wheel.reschedule(&mut self.slab, i, exp);
    }

    /// Sets a new timeout and refreshes the expiry with it.
    #[inline]
    pub fn set_timeout(&mut self, i: u32, secs: u32, now_ms: u64) {
        self.slab[i as usize].timeout_s = secs;
        self.touch(i, now_ms);
    }

    /// Expires due entries, examining at most `budget`; `on_expire` sees each
    /// one before it is removed (to release its server and template).
    pub fn expire(&mut self, now_ms: u64, budget: usize, on_expire: impl FnMut(&Conn)) -> usize {
        self.expire_or_keep(now_ms, budget, |_| None, on_expire)
    }

    /// [`expire`](Self::expire), but an entry for which `keep` answers
    /// `Some(ms)` is filed again to expire that much later instead (an
    /// entry the XDP fast path still forwards: `fastpath::keep_ms`).
    pub fn expire_or_keep(
        &mut self,
        now_ms: u64,
        budget: usize,
        mut keep: impl FnMut(&Conn) -> Option<u64>,
        mut on_expire: impl FnMut(&Conn),
    ) -> usize {
        let now = ticks(now_ms);
        let mut dead = [NIL; 64];
        let mut total = 0;
        let mut budget = budget;
        // In steps: the wheel borrows the slab, removal needs the indexes.
        while budget > 0 {
            let step = budget.min(dead.len());
            let mut n = 0;
            let examined = self.wheel.advance(&mut self.slab, now, step, |i| {
                dead[n] = i;
                n += 1;
            });
            // Fetch every dead entry's index buckets before touching any.
            for &i in &dead[..n] {
                self.in_idx.prefetch(self.in_hash(i));
                if self.slab[i as usize].flags & F_OUT_INDEXED != 0 {
                    self.out_idx.prefetch(self.out_hash(i));
                }
            }
            for &i in &dead[..n] {
                if let Some(ms) = keep(&self.slab[i as usize]) {
                    // Unlinked by the wheel: file it again, never in a
                    // slot already passed (link clamps to the cursor).
                    self.slab[i as usize].expires = ticks(now_ms + ms).max(now + 1);
                    self.wheel.link(&mut self.slab, i);
                    continue;
                }
                on_expire(&self.slab[i as usize]);
                self.remove_unlinked(i);
                total += 1;
            }
            if examined < step {
                break;
            }
            budget -= step;
        }
        total
    }

    /// Removes an entry now (for flushes); releases nothing else.
    pub fn remove(&mut self, i: u32) {
        if self.slab[i as usize].flags & F_USED == 0 {
            return;
        }
        self.wheel.unlink(&mut self.slab, i);
        self.remove_unlinked(i);
    }

    fn remove_unlinked(&mut self, i: u32) {
        let c = self.slab[i as usize];
        let h = self.in_hash(i);
        self.in_idx.remove(h, i);
        if c.flags & F_OUT_INDEXED != 0 {
            let h = self.out_hash(i);
            self.out_idx.remove(h, i);
        }
        if let Some(s) = self.slots6.get(i as usize) {
            let s = *s;
            self.pool6.release(s.vaddr);
            self.pool6.release(s.daddr);
            self.pool6.release(s.laddr);
        }
        let e = &mut self.slab[i as usize];
        e.flags = 0;
        e.next = self.free;
        self.free = i;
        self.len -= 1;
        self.fullnat_len -= (c.fwd == FwdMethod::FullNat) as usize;
        self.unconfirmed -= (c.flags & F_EVICTABLE != 0) as usize;
        self.pressure.update(self.slab.len() - self.len);
    }

    /// FULLNAT connections: each holds one local address and port.
    pub fn fullnat_len(&self) -> usize {
        self.fullnat_len
    }

    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn capacity(&self) -> usize {
        self.slab.len()
    }
    pub fn is_full(&self) -> bool {
        self.free == NIL
    }

    /// Every live entry with its index (for `-Lnc` and flushes).
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Conn)> {
        self.slab
            .iter()
            .enumerate()
            .filter(|(_, c)| c.flags & F_USED != 0)
            .map(|(i, c)| (i as u32, c))
    }

    /// Remaining lifetime of entry `i` in milliseconds.
    pub fn remaining_ms(&self, i: u32, now_ms: u64) -> u64 {
        (self.slab[i as usize].expires as u64 * TICK_MS).saturating_sub(now_ms)
    }

    /// Bytes the table holds, whether used or not: slab, both indexes,
    /// wheel, eviction ring.
    pub fn memory_bytes(&self) -> usize {
        self.slab.len() * std::mem::size_of::<Conn>()
            + self.slots6.len() * std::mem::size_of::<Slot6>()
            + self.pool6.memory_bytes()
            + self.in_idx.memory_bytes()
            + self.out_idx.memory_bytes()
            + self.wheel.memory_bytes()
            + self.ring.memory_bytes()
            + self.ghosts.memory_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::entry::F_INACTIVE;
    use crate::conn::TcpState;
    use crate::service::FwdMethod;

    fn conn(i: u16, fwd: FwdMethod, timeout_s: u32) -> Conn {
        Conn {
            caddr: [198, 18, 0, 2],
            cport: 10000 + i,
            vaddr: [198, 18, 0, 100],
            vport: 80,
            daddr: [198, 18, 1, 11],
            dport: 8080,
            laddr: [198, 18, 0, 2],
            lport: 10000 + i,
            proto: 6,
            fwd,
            flags: F_INACTIVE | if fwd.sees_replies() { F_OUT_INDEXED } else { 0 },
            timeout_s,
            ..Conn::EMPTY
        }
    }

    #[test]
    fn both_directions_are_indexed() {
        let mut t = ConnTable::new(16, 0);
        let c = conn(1, FwdMethod::Nat, 60);
        let i = t.insert(c, 0).unwrap();
        assert_eq!(t.lookup_in(&c.in_tuple(), t.hash(&c.in_tuple())), Some(i));
        assert_eq!(
            t.lookup_out(&c.out_tuple(), t.hash(&c.out_tuple())),
            Some(i)
        );
        let d = conn(2, FwdMethod::Dr, 60);
        let j = t.insert(d, 0).unwrap();
        assert_eq!(t.lookup_in(&d.in_tuple(), t.hash(&d.in_tuple())), Some(j));
        assert_eq!(t.lookup_out(&d.out_tuple(), t.hash(&d.out_tuple())), None);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn expiry_follows_timeouts_and_refresh() {
        let mut t = ConnTable::new(16, 0);
        let a = t.insert(conn(1, FwdMethod::Nat, 10), 0).unwrap();
        let b = t.insert(conn(2, FwdMethod::Nat, 900), 0).unwrap();
        // Refreshing a keeps it alive past its first deadline.
        t.touch(a, 8_000);
        assert_eq!(t.expire(12_000, 1000, |_| {}), 0);
        let mut gone = vec![];
        assert_eq!(t.expire(18_000, 1000, |c| gone.push(c.cport)), 1);
        assert_eq!(gone, vec![10001]);
        // A shorter timeout (ESTABLISHED → CLOSE) takes effect early.
        t.set_timeout(b, 10, 20_000);
        assert_eq!(t.expire(29_000, 1000, |_| {}), 0);
        assert_eq!(t.expire(30_000, 1000, |_| {}), 1);
        assert!(t.is_empty());
        let c = conn(2, FwdMethod::Nat, 900);
        assert_eq!(t.lookup_in(&c.in_tuple(), t.hash(&c.in_tuple())), None);
        assert_eq!(t.lookup_out(&c.out_tuple(), t.hash(&c.out_tuple())), None);
    }

    #[test]
    fn long_timeouts_survive_wheel_turns() {
        let mut t = ConnTable::new(4, 0);
        // 2000 s is almost two turns of the 1024 s wheel.
        t.insert(conn(1, FwdMethod::Dr, 2000), 0).unwrap();
        for s in (0..2000).step_by(7) {
            assert_eq!(t.expire(s * 1000, 1000, |_| {}), 0, "expired early at {s}");
        }
        assert_eq!(t.expire(2_000_000, 1000, |_| {}), 1);
    }

    #[test]
    fn expiry_work_is_bounded() {
        let mut t = ConnTable::new(1000, 0);
        for i in 0..1000 {
            t.insert(conn(i, FwdMethod::Nat, 10), 0).unwrap();
        }
        assert_eq!(t.expire(11_000, 100, |_| {}), 100);
        assert_eq!(t.len(), 900);
        let mut n = 100;
        while !t.is_empty() {
            n += t.expire(11_000, 100, |_| {});
        }
        assert_eq!(n, 1000);
    }

    #[test]
    fn full_table_refuses_and_recovers() {
        let mut t = ConnTable::new(3, 0);
        for i in 0..3 {
            t.insert(conn(i, FwdMethod::Nat, 10), 0).unwrap();
        }
        assert!(t.is_full());
        assert_eq!(t.insert(conn(9, FwdMethod::Nat, 10), 0), Err(TableFull));
        // Established entries stay found.
        let c = conn(1, FwdMethod::Nat, 10);
        assert!(t.lookup_in(&c.in_tuple(), t.hash(&c.in_tuple())).is_some());
        t.expire(11_000, 10, |_| {});
        assert!(t.insert(conn(9, FwdMethod::Nat, 10), 11_000).is_ok());
    }

    fn with_state(mut c: Conn, s: TcpState) -> Conn {
        c.state = s as u8;
        c
    }

    fn find(t: &ConnTable, c: &Conn) -> Option<u32> {
        t.lookup_in(&c.in_tuple(), t.hash(&c.in_tuple()))
    }

    /// A table full of a flood's SYN_RECV entries: every new SYN evicts the
    /// oldest; a legitimate connection whose ACK comes before the table's
    /// size of flood SYNs has passed becomes ESTABLISHED and stays through
    /// ten times the table's size of them; established entries are never
    /// evicted, and a table of nothing but them refuses.
    #[test]
    fn flood_evicts_oldest_half_open_never_established() {
        const CAP: usize = 64;
        let mut t = ConnTable::new(CAP, 0);
        let mut flood = 0u16;
        let mut syn = |t: &mut ConnTable, now: u64| {
            if t.is_full() {
                let old = t.evict_oldest(1024).expect("a half-open entry to evict");
                assert_eq!(TcpState::from_u8(old.state), TcpState::SynRecv);
                assert!(old.cport >= 20000, "only flood entries are evicted");
            }
            flood += 1;
            let mut c = with_state(conn(0, FwdMethod::Dr, 60), TcpState::SynRecv);
            c.cport = 20000 + flood;
            t.insert(c, now).unwrap();
        };
        // An established connection from before the flood.
        let est = with_state(conn(1, FwdMethod::Dr, 900), TcpState::Established);
        t.insert(est, 0).unwrap();
        for _ in 0..CAP * 2 {
            syn(&mut t, 1);
        }
        assert!(t.is_full());
        assert_eq!(t.unconfirmed(), CAP - 1);
        // The legitimate SYN gets a slot although the table is full.
        let legit = with_state(conn(2, FwdMethod::Dr, 60), TcpState::SynRecv);
        assert!(t.is_full());
        let old = t.evict_oldest(1024).unwrap();
        assert!(old.cport >= 20000);
        let li = t.insert(legit, 2).unwrap();
        // Its ACK arrives while the flood goes on.
        for _ in 0..CAP / 2 {
            syn(&mut t, 2);
        }
        assert_eq!(
            find(&t, &legit),
            Some(li),
            "the legitimate SYN is still there"
        );
        t.get_mut(li).state = TcpState::Established as u8;
        t.reclassify(li);
        for _ in 0..CAP * 10 {
            syn(&mut t, 3);
        }
        assert_eq!(find(&t, &legit), Some(li));
        assert!(find(&t, &est).is_some());
        assert_eq!(t.unconfirmed(), CAP - 2);
        assert_eq!(t.len(), CAP);
        // Only established connections left: nothing to evict.
        let mut t = ConnTable::new(4, 0);
        for i in 0..4 {
            t.insert(
                with_state(conn(i, FwdMethod::Nat, 900), TcpState::Established),
                0,
            )
            .unwrap();
        }
        assert_eq!(t.unconfirmed(), 0);
        assert!(t.evict_oldest(1024).is_none());
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn candidates_follow_state_changes_in_age_order() {
        let mut t = ConnTable::new(8, 0);
        let a = t
            .insert(
                with_state(conn(1, FwdMethod::Nat, 60), TcpState::SynRecv),
                0,
            )
            .unwrap();
        let b = t
            .insert(
                with_state(conn(2, FwdMethod::Nat, 60), TcpState::SynRecv),
                0,
            )
            .unwrap();
        let c = t
            .insert(
                with_state(conn(3, FwdMethod::Nat, 60), TcpState::SynRecv),
                0,
            )
            .unwrap();
        assert_eq!(t.unconfirmed(), 3);
        // a completes, then closes, then a new SYN reuses its tuple: it is a
        // candidate again, now the newest.
        t.get_mut(a).state = TcpState::Established as u8;
        t.reclassify(a);
        assert_eq!(t.unconfirmed(), 2);
        t.get_mut(a).state = TcpState::TimeWait as u8;
        t.reclassify(a);
        assert_eq!(t.unconfirmed(), 2);
        t.get_mut(a).state = TcpState::SynRecv as u8;
        t.reclassify(a);
        assert_eq!(t.unconfirmed(), 3);
        // Re-filing an entry that is filed already changes nothing.
        t.reclassify(b);
        assert_eq!(t.unconfirmed(), 3);
        let order: Vec<u16> = (0..3).map(|_| t.evict_oldest(16).unwrap().cport).collect();
        assert_eq!(order, vec![10002, 10003, 10001]);
        assert!(t.evict_oldest(16).is_none());
        assert!(t.is_empty());
        let _ = c;
        // Expired candidates leave the ring's count and are skipped.
        let x = t
            .insert(with_state(conn(4, FwdMethod::Dr, 5), TcpState::SynRecv), 0)
            .unwrap();
        let y = t
            .insert(with_state(conn(5, FwdMethod::Dr, 60), TcpState::SynRecv), 0)
            .unwrap();
        assert_eq!(t.expire(6_000, 100, |_| {}), 1);
        assert_eq!(t.unconfirmed(), 1);
        assert_eq!(t.get(y).cport, 10005);
        t.trim_candidates(16);
        assert_eq!(t.evict_oldest(1).map(|c| c.cport), Some(10005));
        let _ = x;
    }

    #[test]
    fn udp_is_a_candidate_until_confirmed() {
        let mut t = ConnTable::new(4, 0);
        let udp = |i: u16| Conn {
            proto: 17,
            ..conn(i, FwdMethod::Dr, 300)
        };
        let a = t.insert(udp(1), 0).unwrap();
        let b = t.insert(udp(2), 0).unwrap();
        assert_eq!(t.unconfirmed(), 2);
        t.get_mut(a).flags |= crate::conn::entry::F_CONFIRMED;
        t.reclassify(a);
        assert_eq!(t.unconfirmed(), 1);
        assert_eq!(t.evict_oldest(16).map(|c| c.cport), Some(10002));
        assert!(t.evict_oldest(16).is_none());
        assert!(find(&t, &udp(1)).is_some());
        let _ = b;
    }

    #[test]
    fn a_full_ring_gives_up_its_oldest_candidate() {
        // Capacity 2: a ring of 4. One entry stays half-open while others
        // come and go; it is given up, not evicted.
        let mut t = ConnTable::new(2, 0);
        let old = t
            .insert(with_state(conn(1, FwdMethod::Dr, 60), TcpState::SynRecv), 0)
            .unwrap();
        for k in 0..4 {
            let i = t
                .insert(
                    with_state(conn(10 + k, FwdMethod::Dr, 60), TcpState::SynRecv),
                    0,
                )
                .unwrap();
            t.get_mut(i).state = TcpState::Established as u8;
            t.reclassify(i);
            t.remove(i);
        }
        assert_eq!(t.untracked(), 1);
        assert_eq!(t.unconfirmed(), 0);
        assert!(t.evict_oldest(16).is_none());
        assert_eq!(t.len(), 1);
        // A state change files it again.
        t.get_mut(old).state = TcpState::SynAck as u8;
        t.reclassify(old);
        assert_eq!(t.evict_oldest(16).map(|c| c.cport), Some(10001));
    }

    #[test]
    fn pressure_shortens_older_candidates() {
        let mut t = ConnTable::new(16, 0);
        // Half-open entries from before the pressure, with 60 s, one
        // established connection with 900 s.
        let est = t
            .insert(
                with_state(conn(0, FwdMethod::Dr, 900), TcpState::Established),
                0,
            )
            .unwrap();
        for i in 1..12 {
            t.insert(with_state(conn(i, FwdMethod::Dr, 60), TcpState::SynRecv), 0)
                .unwrap();
        }
        assert_eq!(t.shorten_candidates(1_000, 100), 0, "no pressure yet");
        for i in 12..15 {
            t.insert(
                with_state(conn(i, FwdMethod::Dr, 60), TcpState::SynRecv),
                1_000,
            )
            .unwrap();
        }
        assert!(t.under_pressure());
        // In steps of 5 slots.
        let mut n = 0;
        for _ in 0..4 {
            n += t.shorten_candidates(2_000, 5);
        }
        assert_eq!(n, 14);
        assert_eq!(t.shorten_candidates(2_000, 5), 0, "each once");
        // Five seconds later only the established connection is left.
        assert_eq!(t.expire(7_000, 1000, |_| {}), 14);
        assert_eq!(t.len(), 1);
        assert_eq!(t.get(est).timeout_s, 900);
    }

    #[test]
    fn evicted_half_open_tcp_leaves_a_ghost() {
        let mut t = ConnTable::new(2, 0);
        let mut a = with_state(conn(1, FwdMethod::FullNat, 60), TcpState::SynRecv);
        a.laddr = [198, 18, 1, 100];
        a.lport = 5000;
        a.dest_id = 3;
        a.flags |= crate::conn::entry::F_REPLIED;
        t.insert(a, 0).unwrap();
        let udp = Conn {
            proto: 17,
            ..conn(2, FwdMethod::Dr, 300)
        };
        t.insert(udp, 0).unwrap();
        t.evict_oldest(4).unwrap();
        t.evict_oldest(4).unwrap();
        let g = t.revive(t.hash(&a.in_tuple())).expect("a ghost");
        assert_eq!((g.dest_id, g.laddr, g.lport), (3, [198, 18, 1, 100], 5000));
        assert_eq!(g.flags, crate::conn::entry::F_REPLIED);
        assert!(t.revive(t.hash(&a.in_tuple())).is_none());
        assert!(
            t.revive(t.hash(&udp.in_tuple())).is_none(),
            "UDP leaves none"
        );
    }

    #[test]
    fn pressure_follows_occupancy() {
        let mut t = ConnTable::new(16, 0);
        // 16 slots: on below 2 free, off from 4 free.
        let mut ids = vec![];
        for i in 0..14 {
            ids.push(t.insert(conn(i, FwdMethod::Dr, 10), 0).unwrap());
        }
        assert!(!t.under_pressure());
        ids.push(t.insert(conn(14, FwdMethod::Dr, 10), 0).unwrap());
        assert!(t.under_pressure());
        t.remove(ids.pop().unwrap());
        t.remove(ids.pop().unwrap());
        assert!(t.under_pressure(), "hysteresis");
        t.remove(ids.pop().unwrap());
        assert!(!t.under_pressure());
        assert_eq!(t.pressure().entered(), 1);
    }

    #[test]
    fn bytes_per_connection() {
        let t = ConnTable::new(1 << 20, 0);
        let per = t.memory_bytes() as f64 / t.capacity() as f64;
        eprintln!(
            "conn table: {} bytes for {} entries = {per:.1} B/conn",
            t.memory_bytes(),
            t.capacity()
        );
        assert!(per <= 128.0, "{per} bytes per connection");
    }

    fn v6(i: u16, fwd: FwdMethod) -> (Conn, Addrs6) {
        let a = |last: u8| {
            let mut x = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            x[15] = last;
            x
        };
        let c = Conn {
            cport: 10000 + i,
            vport: 80,
            dport: 8080,
            lport: if fwd == FwdMethod::FullNat {
                5000 + i
            } else {
                10000 + i
            },
            proto: 6,
            fwd,
            flags: F_INACTIVE | if fwd.sees_replies() { F_OUT_INDEXED } else { 0 },
            timeout_s: 60,
            ..Conn::EMPTY
        };
        let laddr = if fwd == FwdMethod::FullNat {
            a(0x64)
        } else {
            a(2)
        };
        (
            c,
            Addrs6 {
                caddr: a(2),
                vaddr: a(100),
                daddr: a(11),
                laddr,
            },
        )
    }

    #[test]
    fn ipv6_entries_take_86_bytes_and_128_with_the_table() {
        // The 64-byte entry, the client's address and three pool indices;
        // IPv4's stays at one line.
        assert_eq!(std::mem::size_of::<Conn>(), 64);
        assert_eq!(std::mem::size_of::<Slot6>(), 22);
        // Issue 15's goal: at most 128 bytes per IPv6 connection, table
        // included (indexes, wheel, eviction ring, the address pool; no
        // ghosts), at a million entries.
        let cap = 1 << 20;
        let v4 = ConnTable::new(cap, 0).memory_bytes();
        let v6 = ConnTable::new_v6(cap, 0).memory_bytes();
        println!(
            "bytes per connection, table included: IPv4 {:.1} IPv6 {:.1}",
            v4 as f64 / cap as f64,
            v6 as f64 / cap as f64
        );
        assert!(v6 <= 128 * cap, "{} bytes per IPv6 connection", v6 / cap);
    }

    #[test]
    fn ipv6_lookups_compare_whole_addresses() {
        let mut t = ConnTable::new_v6(16, 0);
        assert!(t.is_v6());
        let (c, a) = v6(1, FwdMethod::FullNat);
        // An IPv6 table takes no IPv4 entry, an IPv4 table no IPv6 one.
        assert_eq!(t.insert(conn(1, FwdMethod::Nat, 60), 0), Err(TableFull));
        assert_eq!(ConnTable::new(4, 0).insert6(c, a, 0), Err(Refused6::Full));
        let i = t.insert6(c, a, 0).unwrap();
        let tin = a.in_tuple(&c);
        let tout = a.out_tuple(&c);
        assert_eq!(t.lookup_in6(&tin, t.hash6(&tin)), Some(i));
        assert_eq!(t.lookup_out6(&tout, t.hash6(&tout)), Some(i));
        assert!(t.out_tuple_in_use6(&tout));
        assert_eq!(t.get6(i), a);
        // One bit elsewhere in the client address: another flow.
        let mut other = tin;
        other.saddr[3] ^= 1;
        assert_eq!(t.lookup_in6(&other, t.hash6(&other)), None);
        // Even when its hash is forced to be the same bucket's.
        assert_eq!(t.lookup_in6(&other, t.hash6(&tin)), None);
        t.remove(i);
        assert_eq!(t.lookup_in6(&tin, t.hash6(&tin)), None);
        assert_eq!(t.lookup_out6(&tout, t.hash6(&tout)), None);
        assert!(t.is_empty());
    }

    #[test]
    fn ipv6_entries_expire_and_are_evicted() {
        let mut t = ConnTable::new_v6(4, 0);
        let mut tuples = vec![];
        for k in 0..4 {
            let (c, a) = v6(k, FwdMethod::Nat);
            t.insert6(c, a, 0).unwrap();
            tuples.push(a.in_tuple(&c));
        }
        assert!(t.is_full());
        // Half-open TCP: evictable, oldest first.
        let old = t.evict_oldest(8).unwrap();
        assert_eq!(old.cport, 10000);
        assert_eq!(t.lookup_in6(&tuples[0], t.hash6(&tuples[0])), None);
        assert!(t.lookup_in6(&tuples[1], t.hash6(&tuples[1])).is_some());
        let mut n = 0;
        t.expire(61_000 + TICK_MS * 2, 64, |_| n += 1);
        assert_eq!(n, 3);
        assert!(t.is_empty());
        for tu in &tuples {
            assert_eq!(t.lookup_in6(tu, t.hash6(tu)), None);
        }
    }

    #[test]
    fn ipv6_entries_share_pooled_addresses_and_give_them_back() {
        let mut t = ConnTable::new_v6(64, 0);
        let mut ids = vec![];
        for k in 0..10 {
            let (c, a) = v6(k, FwdMethod::FullNat);
            ids.push(t.insert6(c, a, 0).unwrap());
        }
        // One VIP (v6() gives the local address the same one) and one
        // server for ten connections.
        assert_eq!(t.addrs6_pooled().0, 2);
        for k in 0..3 {
            let (c, a) = v6(100 + k, FwdMethod::Nat);
            let i = t.insert6(c, a, 0).unwrap();
            // NAT: the reply goes to the client, which is not pooled.
            assert_eq!(t.get6(i), a);
            assert_eq!(t.get6(i).laddr, a.caddr);
            ids.push(i);
        }
        assert_eq!(t.addrs6_pooled().0, 2);
        for i in ids {
            t.remove(i);
        }
        assert_eq!(
            t.addrs6_pooled().0,
            0,
            "the last connection gives them back"
        );
    }

    #[test]
    fn a_full_address_pool_refuses_and_leaks_nothing() {
        let mut t = ConnTable::new_v6(POOL6_INITIAL + 16, 0);
        let cap = t.addrs6_pooled().1;
        assert_eq!(cap, POOL6_INITIAL);
        // Every connection to a server of its own: the VIP and cap - 1
        // servers fill the pool.
        let with_server = |k: u16| {
            let (c, mut a) = v6(k, FwdMethod::Nat);
            a.daddr[12..14].copy_from_slice(&k.to_be_bytes());
            (c, a)
        };
        for k in 0..(cap - 1) as u16 {
            let (c, a) = with_server(k);
            t.insert6(c, a, 0).unwrap();
        }
        let (c, a) = with_server(cap as u16);
        assert_eq!(t.insert6(c, a, 0), Err(Refused6::AddrPoolFull));
        assert_eq!(t.len(), cap - 1);
        assert_eq!(t.addrs6_pooled().0, cap, "the VIP's reference given back");
        // Room made at a snapshot change: it fits.
        t.reserve_addrs6(cap + 1);
        assert!(t.insert6(c, a, 0).is_ok());
    }
}
