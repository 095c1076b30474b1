//! A hashed timing wheel over the connection slab, with lazy extension.
//!
//! Every packet pushes a connection's expiry forward; moving it between
//! slots each time would cost a list splice per packet. Instead an entry
//! stays in the slot it was filed in (`slot_at`), its real expiry is in
//! `expires`, and when the slot comes due the wheel either expires it or
//! files it again. Only a *shorter* timeout (a state change) moves it early.
//! Work per call is bounded by a budget, so a burst never stalls behind a
//! mass expiry.

use super::entry::{Conn, NIL};

/// Wheel tick in milliseconds.
pub const TICK_MS: u64 = 250;
const SLOTS: usize = 4096;

pub struct Wheel {
    heads: Box<[u32]>,
    /// Next tick to process.
    cursor: u32,
}

impl Wheel {
    pub fn new(now: u32) -> Wheel {
        Wheel {
            heads: vec![NIL; SLOTS].into_boxed_slice(),
            cursor: now,
        }
    }

    #[inline(always)]
    fn slot(t: u32) -> usize {
        t as usize % SLOTS
    }

    /// Files entry `i` for its `expires`, never in a slot already passed.
    #[inline]
    pub fn link(&mut self, slab: &mut [Conn], i: u32) {
        let at = slab[i as usize].expires.max(self.cursor);
        let s = Self::slot(at);
        let head = self.heads[s];
        let e = &mut slab[i as usize];
        e.slot_at = at;
        e.prev = NIL;
        e.next = head;
        if head != NIL {
            slab[head as usize].prev = i;
        }
        self.heads[s] = i;
    }

    #[inline]
    pub fn unlink(&mut self, slab: &mut [Conn], i: u32) {
        let (prev, next, at) = {
            let e = &slab[i as usize];
            (e.prev, e.next, e.slot_at)
        };
        if prev != NIL {
            slab[prev as usize].next = next;
        } else {
            let s = Self::slot(at);
            if self.heads[s] == i {
                self.heads[s] = next;
            }
        }
        if next != NIL {
            slab[next as usize].prev = prev;
        }
        let e = &mut slab[i as usize];
        e.next = NIL;
        e.prev = NIL;
    }

    /// Sets a new expiry; moves the entry only when it must fire earlier.
    #[inline(always)]
    pub fn reschedule(&mut self, slab: &mut [Conn], i: u32, expires: u32) {
        slab[i as usize].expires = expires;
        if expires < slab[i as usize].slot_at {
            self.unlink(slab, i);
            self.link(slab, i);
        }
    }

    /// Advances to `now`, calling `expired(i)` for each due entry (already
    /// unlinked; the caller frees it). Examines at most `budget` entries and
    /// returns how many it examined: fewer than `budget` means it caught up.
    pub fn advance(
        &mut self,
        slab: &mut [Conn],
        now: u32,
        budget: usize,
        mut expired: impl FnMut(u32),
    ) -> usize {
        let limit = budget;
        let mut budget = budget;
        while self.cursor <= now && budget > 0 {
            let s = Self::slot(self.cursor);
            let mut i = self.heads[s];
            self.heads[s] = NIL;
            while i != NIL {
                let next = slab[i as usize].next;
                if budget == 0 {
                    // Out of budget mid-slot: put the rest back, resume later.
                    self.reattach(slab, s, i);
                    return limit;
                }
                budget -= 1;
                let (at, exp) = (slab[i as usize].slot_at, slab[i as usize].expires);
                if at > self.cursor {
                    // Filed for a later turn of the wheel.
                    self.push(slab, s, i);
                } else if exp <= self.cursor {
                    let e = &mut slab[i as usize];
                    e.next = NIL;
                    e.prev = NIL;
                    expired(i);
                } else {
                    self.link(slab, i);
                }
                i = next;
            }
            self.cursor += 1;
        }
        limit - budget
    }

    fn push(&mut self, slab: &mut [Conn], s: usize, i: u32) {
        let head = self.heads[s];
        slab[i as usize].prev = NIL;
        slab[i as usize].next = head;
        if head != NIL {
            slab[head as usize].prev = i;
        }
        self.heads[s] = i;
    }

    fn reattach(&mut self, slab: &mut [Conn], s: usize, mut i: u32) {
        while i != NIL {
            let next = slab[i as usize].next;
            self.push(slab, s, i);
            i = next;
        }
    }

    pub fn memory_bytes(&self) -> usize {
        self.heads.len() * std::mem::size_of::<u32>()
    }
}
