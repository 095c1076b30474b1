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
    /// Where a budget-limited scan of the current slot resumes (NIL: from
    /// its head). Entries before it in the slot belong to later turns.
    resume: u32,
}

impl Wheel {
    pub fn new(now: u32) -> Wheel {
        Wheel {
            heads: vec![NIL; SLOTS].into_boxed_slice(),
            cursor: now,
            resume: NIL,
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
        if self.resume == i {
            self.resume = next;
        }
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
    /// The slot is walked in place, so running out of budget in a long slot
    /// costs nothing extra: the next call resumes where this one stopped.
    pub fn advance(
        &mut self,
        slab: &mut [Conn],
        now: u32,
        budget: usize,
        mut expired: impl FnMut(u32),
    ) -> usize {
        let mut examined = 0;
        while self.cursor <= now {
            let s = Self::slot(self.cursor);
            let mut i = if self.resume != NIL {
                self.resume
            } else {
                self.heads[s]
            };
            self.resume = NIL;
            while i != NIL {
                if examined == budget {
                    self.resume = i;
                    return examined;
                }
                examined += 1;
                let e = &slab[i as usize];
                let (next, at, exp) = (e.next, e.slot_at, e.expires);
                if at > self.cursor {
                    // Filed for a later turn of the wheel: stays.
                } else if exp <= self.cursor {
                    self.unlink(slab, i);
                    expired(i);
                } else {
                    // Its timeout was extended: file it for the new expiry.
                    self.unlink(slab, i);
                    self.link(slab, i);
                }
                i = next;
            }
            self.cursor += 1;
        }
        examined
    }

    pub fn memory_bytes(&self) -> usize {
        self.heads.len() * std::mem::size_of::<u32>()
    }
}
