//! The eviction candidates of a connection table, oldest first.
//!
//! A ring of slab indices in the order the entries became candidates
//! (half-open TCP, unconfirmed UDP). Each push hands out a ticket, the
//! ring position's sequence number, which the entry keeps (`Conn::ring_seq`)
//! with its `F_EVICTABLE` flag. An entry that stops being a candidate (its
//! handshake completed, it expired, it was removed and its slot reused)
//! is not searched for in the ring: its slot simply stops matching, and is
//! skipped when it reaches the head. Every slot is pushed and popped once,
//! so finding the oldest live candidate is O(1) amortised, and the work of
//! one search is bounded by a budget.
//!
//! The ring has twice as many slots as the table has entries, so that at
//! least half of a full ring is stale. When it is full anyway (a candidate
//! that stayed half-open while twice the table's size of others came and
//! went), the oldest slot is given up: its entry, if still a candidate,
//! leaves the ring and only its (short) timeout removes it.

pub struct EvictRing {
    slots: Box<[u32]>,
    mask: u32,
    /// Sequence number of the oldest slot.
    head: u32,
    /// Sequence number the next push gets.
    tail: u32,
}

impl EvictRing {
    /// A ring for a table of `capacity` entries.
    pub fn for_table(capacity: usize) -> EvictRing {
        let n = (capacity.max(1) * 2).next_power_of_two().min(1 << 31);
        EvictRing {
            slots: vec![0; n].into_boxed_slice(),
            mask: (n - 1) as u32,
            head: 0,
            tail: 0,
        }
    }

    #[inline(always)]
    pub fn len(&self) -> usize {
        self.tail.wrapping_sub(self.head) as usize
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.head == self.tail
    }

    #[inline(always)]
    pub fn is_full(&self) -> bool {
        self.len() == self.slots.len()
    }

    /// Appends slab index `i`; returns its ticket. The ring must not be
    /// full (pop first).
    #[inline(always)]
    pub fn push(&mut self, i: u32) -> u32 {
        debug_assert!(!self.is_full());
        let seq = self.tail;
        self.slots[(seq & self.mask) as usize] = i;
        self.tail = seq.wrapping_add(1);
        seq
    }

    /// The oldest (ticket, slab index), removed.
    #[inline(always)]
    pub fn pop(&mut self) -> Option<(u32, u32)> {
        if self.is_empty() {
            return None;
        }
        let seq = self.head;
        self.head = seq.wrapping_add(1);
        Some((seq, self.slots[(seq & self.mask) as usize]))
    }

    /// Sequence numbers of the oldest slot and of the next push.
    #[inline(always)]
    pub fn span(&self) -> (u32, u32) {
        (self.head, self.tail)
    }

    /// The slab index under ticket `seq`, if the ring still holds it.
    #[inline(always)]
    pub fn at(&self, seq: u32) -> Option<u32> {
        (seq.wrapping_sub(self.head) < self.tail.wrapping_sub(self.head))
            .then(|| self.slots[(seq & self.mask) as usize])
    }

    /// The oldest (ticket, slab index), left in place.
    #[inline(always)]
    pub fn peek(&self) -> Option<(u32, u32)> {
        (!self.is_empty()).then(|| (self.head, self.slots[(self.head & self.mask) as usize]))
    }

    pub fn memory_bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_with_tickets_across_wrap() {
        let mut r = EvictRing::for_table(3);
        assert_eq!(r.slots.len(), 8);
        // Start near the sequence numbers' wrap.
        r.head = u32::MAX - 5;
        r.tail = u32::MAX - 5;
        let mut want = std::collections::VecDeque::new();
        for i in 0..40u32 {
            if r.is_full() {
                assert_eq!(r.pop(), want.pop_front());
            }
            let t = r.push(i);
            want.push_back((t, i));
            if i % 3 == 0 {
                assert_eq!(r.peek(), want.front().copied());
                assert_eq!(r.pop(), want.pop_front());
            }
            assert_eq!(r.len(), want.len());
        }
        for &(t, i) in &want {
            assert_eq!(r.at(t), Some(i));
        }
        assert_eq!(r.at(r.span().1), None);
        assert_eq!(r.at(r.span().0.wrapping_sub(1)), None);
        while let Some(x) = r.pop() {
            assert_eq!(Some(x), want.pop_front());
        }
        assert!(want.is_empty() && r.is_empty());
    }
}
