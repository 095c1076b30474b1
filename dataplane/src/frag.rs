//! IPv4 fragments: shallow ("virtual") reassembly, per worker.
//!
//! Linux reassembles a fragmented datagram before IPVS sees it
//! (`nf_defrag_ipv4`) and fragments it again on output, no larger than the
//! largest fragment received. The director gets the same packets on the
//! wire without holding 64 KB datagrams, as VPP's NAT does ("shallow
//! virtual reassembly"): only the first fragment (offset 0) carries the
//! ports, so it is forwarded as any packet (looked up and scheduled on its
//! 5-tuple) and this table remembers its ports, keyed by what RFC 791 §3.2
//! says identifies a datagram: source, destination, protocol and IP
//! identification. Later fragments find the ports here and follow the same
//! connection, with its address rewrite only (the transport checksum lives
//! in the first fragment, whose incremental update covers the whole
//! datagram: the delta depends only on the pseudo-header and the ports).
//!
//! Fragments that come before their first are held (at most
//! [`HOLD_PER_DATAGRAM`] per datagram and [`HOLD_TOTAL`] in all, like the
//! neighbour cache holds packets) and given back in arrival order when it
//! comes. Nothing is allocated after [`FragTable::new`].
//!
//! Bounds: an entry lives [`TIMEOUT_MS`] from its datagram's first
//! fragment seen, whichever that was. Linux keeps an incomplete datagram
//! for `ipfrag_time` (30 s), but it has the whole datagram to lose; a
//! sender emits all fragments of a datagram back to back, so one that has
//! not come within seconds is lost and the application retries, and a
//! long lifetime only lets bogus fragments sit in the table. A full table
//! evicts its oldest entry (first in, first out), whatever its state:
//! legitimate datagrams complete within milliseconds, so under a flood of
//! bogus first-less fragments the entries that go are the flood's, and
//! eviction is O(1), never a scan.
//!
//! Bad input (counted by the caller with the reason returned, never a
//! panic): a fragment that runs past 65535 bytes; a fragment with more
//! following whose payload is not a multiple of 8 (RFC 791); a first
//! fragment too short for its transport header (RFC 1858 §3.1, RFC 3128:
//! the tiny fragment attack; the caller checks the header); an overlap
//! with a fragment already seen, which gives up the whole datagram as
//! Linux does since the FragmentSmack fixes (`ip_frag_queue`, IPFRAG_OVERLAP,
//! as RFC 5722 asks for IPv6); an exact duplicate, or any fragment of a
//! datagram already complete; a datagram in more than [`MAX_PIECES`]
//! disjoint pieces at once.

use crate::counters::DropReason;
use hashbrown::HashMap;
use std::collections::VecDeque;

/// Datagrams tracked per worker.
pub const CAPACITY: usize = 4096;
/// How long a datagram's entry lives, from its first fragment seen.
pub const TIMEOUT_MS: u64 = 3_000;
/// Fragments held for one datagram whose first has not come: a 64 KB
/// datagram at MTU 1500 is 45 fragments.
pub const HOLD_PER_DATAGRAM: usize = 48;
/// Fragments held in all (they are port buffers taken from the pool).
pub const HOLD_TOTAL: usize = 256;
/// Disjoint byte ranges one datagram may have received at once; contiguous
/// fragments merge, so in-order traffic uses one.
pub const MAX_PIECES: usize = 8;

/// What identifies a datagram: source, destination, protocol and
/// identification (RFC 791 §3.2; RFC 8200 §4.5 for IPv6, whose 32-bit
/// identification goes with the addresses). IPv4 addresses are kept
/// IPv4-mapped, so one table serves both families.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub proto: u8,
    pub id: u32,
}

impl Key {
    pub fn v4(src: [u8; 4], dst: [u8; 4], proto: u8, id: u16) -> Key {
        Key {
            src: crate::conn::entry::mapped(src),
            dst: crate::conn::entry::mapped(dst),
            proto,
            id: id as u32,
        }
    }
}

/// One fragment, as read from its IPv4 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Offset of its payload in the datagram, in bytes.
    pub offset: u32,
    /// Payload length (total length minus the IP header).
    pub len: u32,
    /// More fragments follow (MF).
    pub more: bool,
}

impl Piece {
    /// From the header's flags/offset word and the payload length.
    pub fn new(frag: u16, len: usize) -> Piece {
        Piece {
            offset: ((frag & crate::wire::ipv4::FRAG_OFFSET_MASK) as u32) * 8,
            len: len as u32,
            more: frag & crate::wire::ipv4::FLAG_MF != 0,
        }
    }

    fn end(&self) -> u32 {
        self.offset + self.len
    }
}

/// What the caller does with a later (offset > 0) fragment.
#[derive(Debug, PartialEq, Eq)]
pub enum Later<P> {
    /// Forward it with the ports of its first fragment.
    Forward { pkt: P, sport: u16, dport: u16 },
    /// Its first has not come: the table holds it.
    Held,
    /// Drop it, counted under this reason.
    Drop(DropReason, P),
}

#[derive(Debug)]
struct Entry {
    /// When it was created; also its stamp in the age queue.
    born_ms: u64,
    /// The first fragment's ports, once it came.
    ports: Option<(u16, u16)>,
    /// Byte ranges received, sorted, disjoint, not adjacent.
    pieces: [(u32, u32); MAX_PIECES],
    npieces: u8,
    /// The datagram's length, once its last fragment (MF clear) came.
    total: Option<u32>,
    /// An overlap gave it up: everything else of it is dropped.
    dead: bool,
    held: u8,
}

impl Entry {
    fn new(now: u64) -> Entry {
        Entry {
            born_ms: now,
            ports: None,
            pieces: [(0, 0); MAX_PIECES],
            npieces: 0,
            total: None,
            dead: false,
            held: 0,
        }
    }

    fn complete(&self) -> bool {
        self.npieces == 1 && self.pieces[0].0 == 0 && Some(self.pieces[0].1) == self.total
    }

    /// Records `p`'s byte range; the reason if it may not be forwarded.
    fn add(&mut self, p: &Piece) -> Result<(), DropReason> {
        if self.dead {
            return Err(DropReason::FragBad);
        }
        if self.complete() {
            return Err(DropReason::FragDuplicate);
        }
        let (s, e) = (p.offset, p.end());
        // A last fragment fixes the length; everything must fit in it
        // and it may not change (Linux: "already have last" → drop).
        let total = if p.more {
            self.total
        } else {
            match self.total {
                Some(t) if t != e => return self.kill(),
                _ => Some(e),
            }
        };
        if total.is_some_and(|t| e > t) {
            return self.kill();
        }
        let n = self.npieces as usize;
        if let Some(last) = n.checked_sub(1) {
            if !p.more && self.pieces[last].1 > e {
                return self.kill();
            }
        }
        // Where it goes, and whether it touches a range already there.
        let mut i = 0;
        while i < n && self.pieces[i].1 < s {
            i += 1;
        }
        if i < n && self.pieces[i].0 < e {
            if self.pieces[i] == (s, e) || (self.pieces[i].0 <= s && e <= self.pieces[i].1) {
                return Err(DropReason::FragDuplicate);
            }
            if self.pieces[i].1 > s {
                return self.kill();
            }
        }
        // Merge with the range ending at s and/or the one starting at e.
        let joins_left = i < n && self.pieces[i].1 == s;
        let right = if joins_left { i + 1 } else { i };
        let joins_right = right < n && self.pieces[right].0 == e;
        match (joins_left, joins_right) {
            (true, true) => {
                self.pieces[i].1 = self.pieces[right].1;
                self.pieces.copy_within(right + 1..n, right);
                self.npieces -= 1;
            }
            (true, false) => self.pieces[i].1 = e,
            (false, true) => self.pieces[right].0 = s,
            (false, false) => {
                if n == MAX_PIECES {
                    return self.kill();
                }
                self.pieces.copy_within(i..n, i + 1);
                self.pieces[i] = (s, e);
                self.npieces += 1;
            }
        }
        self.total = total;
        Ok(())
    }

    fn kill(&mut self) -> Result<(), DropReason> {
        self.dead = true;
        Err(DropReason::FragBad)
    }
}

struct HeldFrag<P> {
    key: Key,
    born_ms: u64,
    pkt: P,
    port: u16,
    handed: bool,
}

/// What [`FragTable::expire`] gave up.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Given {
    /// Entries removed for their age whose datagram had not completed.
    pub expired: u64,
}

/// Per-worker table of datagrams in flight.
pub struct FragTable<P> {
    map: HashMap<Key, Entry, ahash::RandomState>,
    /// Keys by age, oldest first, with the entry's `born_ms` (an entry
    /// replaced by a new datagram with the same key leaves a stale item).
    ages: VecDeque<(Key, u64)>,
    held: Vec<HeldFrag<P>>,
    capacity: usize,
    /// Incomplete entries evicted since [`FragTable::take_evicted`].
    evicted: u64,
}

impl<P> FragTable<P> {
    pub fn new(capacity: usize) -> FragTable<P> {
        FragTable {
            map: HashMap::with_capacity_and_hasher(capacity, ahash::RandomState::new()),
            ages: VecDeque::with_capacity(capacity),
            held: Vec::with_capacity(HOLD_TOTAL),
            capacity,
            evicted: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Incomplete entries evicted to make room since the last call.
    pub fn take_evicted(&mut self) -> u64 {
        std::mem::take(&mut self.evicted)
    }

    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Checks a fragment's geometry alone (RFC 791): inside 65535 bytes,
    /// and a multiple of 8 bytes long unless it is the last.
    fn geometry_ok(p: &Piece, header_len: u32) -> bool {
        header_len + p.end() <= 65535 && (!p.more || (p.len > 0 && p.len.is_multiple_of(8)))
    }

    /// The entry for `key`, made (evicting the oldest when full) if new.
    fn entry(&mut self, key: Key, now: u64, dropped: &mut impl FnMut(DropReason, P)) -> &mut Entry {
        if !self.map.contains_key(&key) {
            while self.map.len() >= self.capacity || self.ages.len() >= self.capacity {
                let Some((k, born)) = self.ages.pop_front() else {
                    break;
                };
                if self.remove_if(k, born, DropReason::FragEvicted, dropped) {
                    self.evicted += 1;
                }
            }
            self.map.insert(key, Entry::new(now));
            self.ages.push_back((key, now));
        }
        self.map.get_mut(&key).unwrap()
    }

    /// Removes `key`'s entry if it is the one born at `born`, dropping
    /// what it held under `r`; whether it was incomplete.
    fn remove_if(
        &mut self,
        key: Key,
        born: u64,
        r: DropReason,
        dropped: &mut impl FnMut(DropReason, P),
    ) -> bool {
        let Some(e) = self.map.get(&key) else {
            return false;
        };
        if e.born_ms != born {
            return false;
        }
        let incomplete = !e.complete();
        let held = e.held;
        self.map.remove(&key);
        if held > 0 {
            self.drop_held(key, born, r, dropped);
        }
        incomplete
    }

    fn drop_held(
        &mut self,
        key: Key,
        born: u64,
        r: DropReason,
        dropped: &mut impl FnMut(DropReason, P),
    ) {
        let mut i = 0;
        while i < self.held.len() {
            if self.held[i].key == key && self.held[i].born_ms == born {
                dropped(r, self.held.remove(i).pkt);
            } else {
                i += 1;
            }
        }
    }

    /// A first fragment (offset 0) whose transport header the caller has
    /// checked, with its ports: recorded, so that its later fragments
    /// follow it. `Ok` means forward it; afterwards [`FragTable::release`]
    /// gives back the fragments held for it. Packets the table gives up
    /// (evictions) are passed to `dropped`.
    pub fn first(
        &mut self,
        key: Key,
        p: &Piece,
        header_len: u32,
        ports: (u16, u16),
        now: u64,
        dropped: &mut impl FnMut(DropReason, P),
    ) -> Result<(), DropReason> {
        if !Self::geometry_ok(p, header_len) {
            return Err(DropReason::FragBad);
        }
        // A first fragment for a datagram that completed is a new
        // datagram reusing the IP id (ids wrap): it starts afresh.
        if self.map.get(&key).is_some_and(|e| e.complete()) {
            let born = self.map[&key].born_ms;
            self.remove_if(key, born, DropReason::FragDuplicate, dropped);
        }
        let e = self.entry(key, now, dropped);
        if let Err(r) = e.add(p) {
            self.gave_up(key, dropped);
            return Err(r);
        }
        e.ports = Some(ports);
        Ok(())
    }

    /// After a refused fragment: if that gave its datagram up, the
    /// fragments held for it go too.
    fn gave_up(&mut self, key: Key, dropped: &mut impl FnMut(DropReason, P)) {
        if let Some(e) = self.map.get_mut(&key) {
            if e.dead && e.held > 0 {
                let born = e.born_ms;
                e.held = 0;
                self.drop_held(key, born, DropReason::FragBad, dropped);
            }
        }
    }

    /// A later fragment (offset > 0): forward it with its first's ports,
    /// or hold it until its first comes, or drop it. `port` and `handed`
    /// are kept with a held fragment for the worker.
    #[allow(clippy::too_many_arguments)]
    pub fn later(
        &mut self,
        key: Key,
        p: &Piece,
        header_len: u32,
        pkt: P,
        port: u16,
        handed: bool,
        now: u64,
        dropped: &mut impl FnMut(DropReason, P),
    ) -> Later<P> {
        if !Self::geometry_ok(p, header_len) {
            return Later::Drop(DropReason::FragBad, pkt);
        }
        let full = self.held.len() >= HOLD_TOTAL;
        let e = self.entry(key, now, dropped);
        if e.ports.is_none() && (full || e.held as usize >= HOLD_PER_DATAGRAM) {
            return Later::Drop(DropReason::FragHoldFull, pkt);
        }
        if let Err(r) = e.add(p) {
            self.gave_up(key, dropped);
            return Later::Drop(r, pkt);
        }
        match e.ports {
            Some((sport, dport)) => Later::Forward { pkt, sport, dport },
            None => {
                e.held += 1;
                let born_ms = e.born_ms;
                self.held.push(HeldFrag {
                    key,
                    born_ms,
                    pkt,
                    port,
                    handed,
                });
                Later::Held
            }
        }
    }

    /// The next fragment held for `key`, oldest first, with the port it
    /// came in on and whether it was handed over; call after
    /// [`FragTable::first`] until `None`, and forward each with the
    /// first's ports (they are recorded already: not through
    /// [`FragTable::later`] again).
    pub fn release(&mut self, key: Key) -> Option<(P, u16, bool)> {
        let e = self.map.get_mut(&key)?;
        if e.held == 0 {
            return None;
        }
        let born = e.born_ms;
        let i = self
            .held
            .iter()
            .position(|h| h.key == key && h.born_ms == born)?;
        e.held -= 1;
        let h = self.held.remove(i);
        Some((h.pkt, h.port, h.handed))
    }

    /// Removes entries older than [`TIMEOUT_MS`]; their held fragments go
    /// to `dropped` under `FragTimeout`.
    pub fn expire(&mut self, now: u64, dropped: &mut impl FnMut(DropReason, P)) -> Given {
        let mut g = Given::default();
        while let Some(&(k, born)) = self.ages.front() {
            if born + TIMEOUT_MS > now {
                break;
            }
            self.ages.pop_front();
            if self.remove_if(k, born, DropReason::FragTimeout, dropped) {
                g.expired += 1;
            }
        }
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k() -> Key {
        Key::v4([198, 18, 0, 1], [198, 18, 0, 100], 17, 7)
    }

    fn pc(offset: u32, len: u32, more: bool) -> Piece {
        Piece { offset, len, more }
    }

    fn key(id: u16) -> Key {
        Key {
            id: id as u32,
            ..k()
        }
    }

    /// The table, and the packets it gave up.
    fn table() -> (FragTable<u32>, Vec<(DropReason, u32)>) {
        (FragTable::new(16), Vec::new())
    }

    #[test]
    fn piece_from_header_word() {
        let p = Piece::new(0x2000 | 185, 1480);
        assert_eq!(p, pc(1480, 1480, true));
        assert_eq!(Piece::new(370, 40), pc(2960, 40, false));
    }

    #[test]
    fn in_order_fragments_follow_the_first() {
        let (mut t, mut d) = table();
        let mut drop = |r, p| d.push((r, p));
        assert_eq!(
            t.first(k(), &pc(0, 1480, true), 20, (53, 5353), 0, &mut drop),
            Ok(())
        );
        assert_eq!(t.release(k()), None);
        assert_eq!(
            t.later(k(), &pc(1480, 1480, true), 20, 1, 0, false, 1, &mut drop),
            Later::Forward {
                pkt: 1,
                sport: 53,
                dport: 5353
            }
        );
        assert_eq!(
            t.later(k(), &pc(2960, 100, false), 20, 2, 0, false, 1, &mut drop),
            Later::Forward {
                pkt: 2,
                sport: 53,
                dport: 5353
            }
        );
        // Complete: the same bytes again are a duplicate.
        assert_eq!(
            t.later(k(), &pc(2960, 100, false), 20, 3, 0, false, 2, &mut drop),
            Later::Drop(DropReason::FragDuplicate, 3)
        );
        assert!(d.is_empty());
    }

    #[test]
    fn fragments_before_the_first_are_held_and_released_in_order() {
        let (mut t, mut d) = table();
        let mut drop = |r, p| d.push((r, p));
        assert_eq!(
            t.later(k(), &pc(2960, 100, false), 20, 10, 1, false, 0, &mut drop),
            Later::Held
        );
        assert_eq!(
            t.later(k(), &pc(1480, 1480, true), 20, 11, 2, true, 0, &mut drop),
            Later::Held
        );
        // Another datagram's held fragment stays.
        assert_eq!(
            t.later(key(8), &pc(8, 8, false), 20, 20, 0, false, 0, &mut drop),
            Later::Held
        );
        assert_eq!(t.held(), 3);
        assert_eq!(
            t.first(k(), &pc(0, 1480, true), 20, (1, 2), 5, &mut drop),
            Ok(())
        );
        assert_eq!(t.release(k()), Some((10, 1, false)));
        assert_eq!(t.release(k()), Some((11, 2, true)));
        assert_eq!(t.release(k()), None);
        assert_eq!(t.held(), 1);
        // Released fragments were recorded when held (the worker forwards
        // them with the first's ports): a copy is a duplicate.
        assert_eq!(
            t.later(k(), &pc(1480, 1480, true), 20, 12, 0, false, 6, &mut drop),
            Later::Drop(DropReason::FragDuplicate, 12)
        );
        assert!(d.is_empty());
    }

    #[test]
    fn entries_and_held_fragments_expire() {
        let (mut t, mut d) = table();
        let mut drop = |r, p| d.push((r, p));
        t.later(k(), &pc(8, 8, false), 20, 1, 0, false, 100, &mut drop);
        t.first(key(2), &pc(0, 8, true), 20, (1, 2), 200, &mut drop)
            .unwrap();
        assert_eq!(t.expire(100 + TIMEOUT_MS - 1, &mut drop), Given::default());
        assert_eq!(t.expire(100 + TIMEOUT_MS, &mut drop).expired, 1);
        assert_eq!(t.len(), 1);
        assert_eq!(t.held(), 0);
        assert_eq!(t.expire(200 + TIMEOUT_MS, &mut drop).expired, 1);
        assert!(t.is_empty());
        assert_eq!(d, vec![(DropReason::FragTimeout, 1)]);
        // A later fragment after its entry expired is held afresh.
        let mut d2 = Vec::new();
        let mut drop2 = |r, p| d2.push((r, p));
        assert_eq!(
            t.later(key(2), &pc(8, 8, false), 20, 3, 0, false, 9000, &mut drop2),
            Later::Held
        );
    }

    #[test]
    fn a_full_table_evicts_the_oldest() {
        let mut t: FragTable<u32> = FragTable::new(4);
        let mut d = Vec::new();
        let mut drop = |r, p| d.push((r, p));
        for i in 0..4u16 {
            assert_eq!(
                t.later(
                    key(i),
                    &pc(8, 8, false),
                    20,
                    i as u32,
                    0,
                    false,
                    i as u64,
                    &mut drop
                ),
                Later::Held
            );
        }
        // A legitimate datagram still gets in; the oldest bogus one goes.
        t.first(key(100), &pc(0, 8, true), 20, (5, 6), 10, &mut drop)
            .unwrap();
        assert_eq!(t.len(), 4);
        assert_eq!(t.take_evicted(), 1);
        assert_eq!(
            t.later(key(100), &pc(8, 8, false), 20, 9, 0, false, 11, &mut drop),
            Later::Forward {
                pkt: 9,
                sport: 5,
                dport: 6
            }
        );
        assert_eq!(d, vec![(DropReason::FragEvicted, 0)]);
    }

    #[test]
    fn holding_is_bounded_per_datagram_and_in_all() {
        let mut t: FragTable<u32> = FragTable::new(1024);
        let mut d = Vec::new();
        let mut drop = |r, p| d.push((r, p));
        for i in 0..HOLD_PER_DATAGRAM as u32 {
            // Adjacent pieces: they merge, so only the hold bound counts.
            assert_eq!(
                t.later(k(), &pc(8 + 8 * i, 8, true), 20, i, 0, false, 0, &mut drop),
                Later::Held
            );
        }
        assert_eq!(
            t.later(k(), &pc(8 * 1000, 8, true), 20, 99, 0, false, 0, &mut drop),
            Later::Drop(DropReason::FragHoldFull, 99)
        );
        let mut id = 1;
        while t.held() < HOLD_TOTAL {
            t.later(key(id), &pc(8, 8, false), 20, 0, 0, false, 0, &mut drop);
            id += 1;
        }
        assert_eq!(
            t.later(key(id), &pc(8, 8, false), 20, 7, 0, false, 0, &mut drop),
            Later::Drop(DropReason::FragHoldFull, 7)
        );
        assert!(d.is_empty());
    }

    #[test]
    fn bad_geometry_is_refused() {
        let (mut t, mut d) = table();
        let mut drop = |r, p| d.push((r, p));
        // Past 65535 with its header.
        assert_eq!(
            t.later(k(), &pc(65528, 8, false), 20, 1, 0, false, 0, &mut drop),
            Later::Drop(DropReason::FragBad, 1)
        );
        // Not the last and not a multiple of 8.
        assert_eq!(
            t.later(k(), &pc(8, 12, true), 20, 2, 0, false, 0, &mut drop),
            Later::Drop(DropReason::FragBad, 2)
        );
        assert_eq!(
            t.first(k(), &pc(0, 1001, true), 20, (1, 2), 0, &mut drop),
            Err(DropReason::FragBad)
        );
        assert!(t.is_empty());
    }

    #[test]
    fn an_overlap_gives_the_datagram_up() {
        let (mut t, mut d) = table();
        let mut drop = |r, p| d.push((r, p));
        assert_eq!(
            t.later(k(), &pc(800, 800, true), 20, 1, 0, false, 0, &mut drop),
            Later::Held
        );
        // Overlaps 800..1600 from below.
        assert_eq!(
            t.later(k(), &pc(400, 800, true), 20, 2, 0, false, 0, &mut drop),
            Later::Drop(DropReason::FragBad, 2)
        );
        // Dead: its first is refused too, and the rest.
        assert_eq!(
            t.first(k(), &pc(0, 400, true), 20, (1, 2), 0, &mut drop),
            Err(DropReason::FragBad)
        );
        assert_eq!(
            t.later(k(), &pc(1600, 8, false), 20, 3, 0, false, 0, &mut drop),
            Later::Drop(DropReason::FragBad, 3)
        );
        // The fragment it held went with it.
        assert_eq!(d, vec![(DropReason::FragBad, 1)]);
    }

    #[test]
    fn a_first_fragment_overlapping_a_held_one_gives_both_up() {
        let (mut t, mut d) = table();
        let mut drop = |r, p| d.push((r, p));
        t.later(k(), &pc(8, 800, true), 20, 1, 0, false, 0, &mut drop);
        assert_eq!(
            t.first(k(), &pc(0, 800, true), 20, (1, 2), 0, &mut drop),
            Err(DropReason::FragBad)
        );
        assert_eq!(t.release(k()), None);
        assert_eq!(t.held(), 0);
        assert_eq!(d, vec![(DropReason::FragBad, 1)]);
    }

    #[test]
    fn last_fragments_must_agree() {
        let (mut t, mut d) = table();
        let mut drop = |r, p| d.push((r, p));
        t.first(k(), &pc(0, 800, true), 20, (1, 2), 0, &mut drop)
            .unwrap();
        assert_eq!(
            t.later(k(), &pc(1600, 100, false), 20, 1, 0, false, 0, &mut drop),
            Later::Forward {
                pkt: 1,
                sport: 1,
                dport: 2
            }
        );
        // Past the end the last fragment set.
        assert_eq!(
            t.later(k(), &pc(1704, 8, true), 20, 2, 0, false, 0, &mut drop),
            Later::Drop(DropReason::FragBad, 2)
        );
        let mut t2: FragTable<u32> = FragTable::new(4);
        t2.first(k(), &pc(0, 800, true), 20, (1, 2), 0, &mut drop)
            .unwrap();
        t2.later(k(), &pc(1600, 100, false), 20, 1, 0, false, 0, &mut drop);
        // A second, different last fragment.
        assert_eq!(
            t2.later(k(), &pc(800, 8, false), 20, 3, 0, false, 0, &mut drop),
            Later::Drop(DropReason::FragBad, 3)
        );
    }

    #[test]
    fn pieces_merge_and_are_bounded() {
        let mut e = Entry::new(0);
        e.add(&pc(16, 8, true)).unwrap();
        e.add(&pc(0, 8, true)).unwrap();
        assert_eq!(e.npieces, 2);
        e.add(&pc(8, 8, true)).unwrap();
        assert_eq!((e.npieces, e.pieces[0]), (1, (0, 24)));
        assert_eq!(e.add(&pc(8, 8, true)), Err(DropReason::FragDuplicate));
        assert!(!e.dead);
        let mut e = Entry::new(0);
        for i in 0..MAX_PIECES as u32 {
            e.add(&pc(16 * i, 8, true)).unwrap();
        }
        assert_eq!(
            e.add(&pc(16 * MAX_PIECES as u32, 8, true)),
            Err(DropReason::FragBad)
        );
    }

    #[test]
    fn a_first_fragment_after_completion_starts_a_new_datagram() {
        let (mut t, mut d) = table();
        let mut drop = |r, p| d.push((r, p));
        t.first(k(), &pc(0, 8, true), 20, (1, 2), 0, &mut drop)
            .unwrap();
        t.later(k(), &pc(8, 8, false), 20, 1, 0, false, 0, &mut drop);
        // The id wrapped: a new datagram with other ports.
        assert_eq!(
            t.first(k(), &pc(0, 8, true), 20, (3, 4), 1, &mut drop),
            Ok(())
        );
        assert_eq!(
            t.later(k(), &pc(8, 8, false), 20, 2, 0, false, 1, &mut drop),
            Later::Forward {
                pkt: 2,
                sport: 3,
                dport: 4
            }
        );
        // Its stale age item does not remove the new entry early.
        assert_eq!(t.expire(TIMEOUT_MS, &mut drop), Given::default());
        assert_eq!(t.len(), 1);
        assert!(d.is_empty());
    }

    #[test]
    fn random_input_never_panics_and_stays_bounded() {
        let mut t: FragTable<u32> = FragTable::new(64);
        let mut s = 0x1234_5678u32;
        let mut rnd = || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        };
        let mut dropped = 0;
        let mut drop = |_, _| dropped += 1;
        for now in 0..50_000u64 {
            let r = rnd();
            let k = key((r % 97) as u16);
            let p = Piece::new((rnd() & 0x3fff) as u16, (rnd() % 2000) as usize);
            if p.offset == 0 {
                let _ = t.first(k, &p, 20, (1, 2), now, &mut drop);
                while t.release(k).is_some() {}
            } else {
                let _ = t.later(k, &p, 20, 0, 0, false, now, &mut drop);
            }
            if now % 100 == 0 {
                t.expire(now, &mut drop);
            }
            assert!(t.len() <= 64 && t.held() <= HOLD_TOTAL);
        }
    }
}
