//! The per-worker connection table: a fixed slab of 64-byte entries, two
//! bucketed indexes (client tuple, reply tuple) holding slab indices, and
//! the expiry wheel.
//!
//! Clients choose the keys, so the indexes hash with a per-table random key
//! (aHash `RandomState`). Capacity is fixed at creation: the slab and the
//! indexes are allocated once and a full table refuses new entries instead
//! of growing, so the fast path never allocates.

use super::entry::{Conn, Tuple, F_OUT_INDEXED, F_USED, NIL};
use super::index::FlowIndex;
use super::timer::{Wheel, TICK_MS};
use crate::port::prefetch;
use crate::service::FwdMethod;

/// The table is full; the new connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableFull;

pub struct ConnTable {
    slab: Vec<Conn>,
    free: u32,
    len: usize,
    fullnat_len: usize,
    in_idx: FlowIndex,
    out_idx: FlowIndex,
    hasher: ahash::RandomState,
    wheel: Wheel,
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
        let mut slab = vec![Conn::EMPTY; capacity];
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
            len: 0,
            fullnat_len: 0,
            in_idx: FlowIndex::with_capacity(capacity),
            out_idx: FlowIndex::with_capacity(capacity),
            hasher: ahash::RandomState::new(),
            wheel: Wheel::new(ticks(now_ms)),
        }
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

    /// Second stage: fetch the entry the bucket points at.
    #[inline(always)]
    pub fn prefetch_entry(&self, h: u64, reply: bool) {
        let c = if reply {
            self.out_idx.first_candidate(h)
        } else {
            self.in_idx.first_candidate(h)
        };
        if let Some(i) = c {
            prefetch(&self.slab[i as usize]);
        }
    }

    /// Whether a reply tuple is already taken (FULLNAT port allocation).
    pub fn out_tuple_in_use(&self, t: &Tuple) -> bool {
        self.lookup_out(t, self.hash(t)).is_some()
    }

    /// Adds a connection; it expires `c.timeout_s` from `now_ms` unless
    /// refreshed. Indexed by its reply tuple too when `F_OUT_INDEXED` is set.
    pub fn insert(&mut self, mut c: Conn, now_ms: u64) -> Result<u32, TableFull> {
        if self.free == NIL {
            return Err(TableFull);
        }
        let i = self.free;
        self.free = self.slab[i as usize].next;
        c.flags |= F_USED;
        c.expires = ticks(now_ms) + secs_to_ticks(c.timeout_s);
        self.slab[i as usize] = c;
        let h = self.hash(&c.in_tuple());
        self.in_idx.insert(h, i);
        if c.flags & F_OUT_INDEXED != 0 {
            let h = self.hash(&c.out_tuple());
            self.out_idx.insert(h, i);
        }
        self.wheel.link(&mut self.slab, i);
        self.len += 1;
        self.fullnat_len += (c.fwd == FwdMethod::FullNat) as usize;
        Ok(i)
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
    pub fn expire(
        &mut self,
        now_ms: u64,
        budget: usize,
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
                let c = &self.slab[i as usize];
                self.in_idx.prefetch(self.hash(&c.in_tuple()));
                if c.flags & F_OUT_INDEXED != 0 {
                    self.out_idx.prefetch(self.hash(&c.out_tuple()));
                }
            }
            for &i in &dead[..n] {
                on_expire(&self.slab[i as usize]);
                self.remove_unlinked(i);
            }
            total += n;
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
        let h = self.hash(&c.in_tuple());
        self.in_idx.remove(h, i);
        if c.flags & F_OUT_INDEXED != 0 {
            let h = self.hash(&c.out_tuple());
            self.out_idx.remove(h, i);
        }
        let e = &mut self.slab[i as usize];
        e.flags = 0;
        e.next = self.free;
        self.free = i;
        self.len -= 1;
        self.fullnat_len -= (c.fwd == FwdMethod::FullNat) as usize;
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

    /// Bytes the table holds, whether used or not: slab, both indexes, wheel.
    pub fn memory_bytes(&self) -> usize {
        self.slab.capacity() * std::mem::size_of::<Conn>()
            + self.in_idx.memory_bytes()
            + self.out_idx.memory_bytes()
            + self.wheel.memory_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::entry::F_INACTIVE;
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
}
