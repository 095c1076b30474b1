//! Ghosts of evicted half-open connections: a second chance for the
//! legitimate client whose entry a flood pushed out before its ACK came.
//!
//! When the table is full of a SYN flood's entries, each new SYN evicts the
//! oldest, so a half-open entry lives for a table's worth of newer SYNs.
//! A legitimate client whose ACK is lost or late (an overloaded path drops
//! packets, and TCP retransmits after 200 ms or more) would then find no
//! entry: its ACK and data are dropped as segments without a connection,
//! and the connection hangs. A flood never sends a second packet for the
//! sources it spoofs; a real client does. So an evicted half-open entry
//! leaves a 16-byte ghost (a tag of the keyed flow hash, its real server,
//! FULLNAT's local address and port, whether the server had answered), and
//! a client segment without SYN that finds no connection but a ghost
//! brings the connection back to the same server, which holds the other
//! half of the handshake (or its SYN cookie).
//!
//! The cache is set-associative: 64-byte buckets of four ghosts, and a new
//! ghost replaces the oldest of its bucket, so a ghost lasts for about as
//! many evictions as the cache has ghosts (four arrivals in its bucket).
//! What matters is time: the client's ACK comes an RTT or a retransmission
//! timeout (200 ms to seconds, on a loaded path) after its SYN, however
//! large the table. So the cache holds one ghost per table entry, but at
//! least [`MIN_GHOSTS`] (4 MiB), which lasts about two seconds at 128k
//! evictions a second. Lookups and inserts touch one cache line.

use crate::port::prefetch;

const WAYS: usize = 4;
/// Ghosts per worker at least, whatever the table's size.
pub const MIN_GHOSTS: usize = 1 << 18;

/// What an evicted half-open entry leaves behind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Ghost {
    /// Hash tag of the client tuple, never 0 (0: empty).
    tag: u32,
    pub dest_id: u32,
    /// FULLNAT: the local address and port the connection had.
    pub laddr: [u8; 4],
    pub lport: u16,
    /// Insertion stamp, for replacing the oldest of a bucket.
    stamp: u8,
    /// Entry flags worth keeping (`F_REPLIED`).
    pub flags: u8,
}

const _: () = assert!(std::mem::size_of::<Ghost>() == 16);

#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Bucket([Ghost; WAYS]);

pub struct GhostCache {
    buckets: Box<[Bucket]>,
    mask: usize,
    stamp: u8,
}

#[inline(always)]
fn tag(h: u64) -> u32 {
    ((h >> 32) as u32) | 1
}

impl GhostCache {
    /// A cache with one ghost per table entry, and at least [`MIN_GHOSTS`].
    pub fn for_table(capacity: usize) -> GhostCache {
        GhostCache::with_ghosts(capacity.max(MIN_GHOSTS))
    }

    /// A cache of about `ghosts` ghosts.
    pub fn with_ghosts(ghosts: usize) -> GhostCache {
        let n = (ghosts / WAYS).max(1).next_power_of_two();
        GhostCache {
            buckets: vec![Bucket::default(); n].into_boxed_slice(),
            mask: n - 1,
            stamp: 0,
        }
    }

    #[inline(always)]
    fn bucket(&self, h: u64) -> usize {
        // The index uses the low bits; the bucket takes the next ones.
        (h >> 16) as usize & self.mask
    }

    /// Remembers an evicted entry whose client tuple hashes to `h`.
    #[inline]
    pub fn remember(&mut self, h: u64, dest_id: u32, laddr: [u8; 4], lport: u16, flags: u8) {
        let t = tag(h);
        self.stamp = self.stamp.wrapping_add(1);
        let now = self.stamp;
        let b = self.bucket(h);
        let slots = &mut self.buckets[b].0;
        // The same flow's older ghost, else an empty slot, else the oldest.
        let k = slots
            .iter()
            .position(|g| g.tag == t)
            .or_else(|| slots.iter().position(|g| g.tag == 0))
            .unwrap_or_else(|| {
                (0..WAYS)
                    .max_by_key(|&k| now.wrapping_sub(slots[k].stamp))
                    .unwrap_or(0)
            });
        slots[k] = Ghost {
            tag: t,
            dest_id,
            laddr,
            lport,
            stamp: now,
            flags,
        };
    }

    /// Takes the ghost of the flow hashing to `h`, if there is one.
    #[inline]
    pub fn take(&mut self, h: u64) -> Option<Ghost> {
        let t = tag(h);
        let b = self.bucket(h);
        let slots = &mut self.buckets[b].0;
        let k = slots.iter().position(|g| g.tag == t)?;
        let g = slots[k];
        slots[k] = Ghost::default();
        Some(g)
    }

    #[inline(always)]
    pub fn prefetch(&self, h: u64) {
        prefetch(&self.buckets[self.bucket(h)]);
    }

    pub fn memory_bytes(&self) -> usize {
        self.buckets.len() * std::mem::size_of::<Bucket>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u64) -> u64 {
        i.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    #[test]
    fn remembers_takes_once_and_replaces_the_oldest() {
        assert_eq!(GhostCache::for_table(64).buckets.len(), MIN_GHOSTS / WAYS);
        assert_eq!(
            GhostCache::for_table(1 << 20).buckets.len(),
            (1 << 20) / WAYS
        );
        let mut g = GhostCache::with_ghosts(64);
        assert_eq!(g.buckets.len(), 16);
        g.remember(h(1), 7, [198, 18, 1, 100], 4000, 0x08);
        let got = g.take(h(1)).unwrap();
        assert_eq!(
            (got.dest_id, got.laddr, got.lport, got.flags),
            (7, [198, 18, 1, 100], 4000, 0x08)
        );
        assert_eq!(g.take(h(1)), None, "taken once");
        assert_eq!(g.take(h(2)), None);
        // Five flows in one bucket: the first is replaced, the others stay.
        let same = |i: u64| (i << 33) | (3 << 16);
        for i in 1..=5 {
            g.remember(same(i), i as u32, [0; 4], 0, 0);
        }
        assert_eq!(g.take(same(1)), None);
        for i in 2..=5 {
            assert_eq!(g.take(same(i)).map(|x| x.dest_id), Some(i as u32));
        }
        // A flow remembered again keeps one ghost, the newest.
        g.remember(same(9), 1, [0; 4], 0, 0);
        g.remember(same(9), 2, [0; 4], 0, 0);
        assert_eq!(g.take(same(9)).map(|x| x.dest_id), Some(2));
        assert_eq!(g.take(same(9)), None);
    }
}
