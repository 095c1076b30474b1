//! The IPv6 addresses an IPv6 connection table's entries share, each kept
//! once and named by a 16-bit index.
//!
//! An IPv6 connection has four 16-byte addresses, but only the client's is
//! its own: the VIP, the real server and the FULLNAT local address are a
//! few addresses from the configuration, shared by every connection of a
//! service. Storing them once and an index per entry keeps an IPv6 entry at
//! 64 + 22 bytes instead of 64 + 64 (issue 15: at most 128 bytes per IPv6
//! connection, table included). Addresses are reference-counted by the
//! entries that name them, so an address stays while a connection uses it
//! after a reload took it out of the configuration (as IPVS keeps a
//! removed real server while its connections last).
//!
//! Nothing is allocated after [`AddrPool::with_capacity`] or
//! [`AddrPool::reserve`] (the worker calls it when a snapshot arrives, not
//! per packet): a pool that is full refuses, and the caller counts it.

use crate::port::shm::Region;
use hashbrown::HashMap;

/// An index that names no pooled address: the entry's laddr is its client's
/// address (NAT, DR, TUN), which is never pooled (clients are many).
pub const CLIENT: u16 = u16::MAX;
/// The most addresses a pool holds (indices below [`CLIENT`]).
pub const MAX: usize = CLIENT as usize;

pub struct AddrPool {
    addrs: Vec<[u8; 16]>,
    refs: Vec<u32>,
    index: HashMap<u128, u16, ahash::RandomState>,
    free: Vec<u16>,
    cap: usize,
    /// Every address interned, at its index, in a file the next process
    /// reads (`crate::persist`); written only when an index takes a new
    /// address, so never per packet.
    mirror: Region<[u8; 16]>,
}

impl AddrPool {
    /// A pool for at most `cap` addresses at once (up to [`MAX`]).
    pub fn with_capacity(cap: usize) -> AddrPool {
        let cap = cap.min(MAX);
        AddrPool {
            addrs: Vec::with_capacity(cap),
            refs: Vec::with_capacity(cap),
            index: HashMap::with_capacity_and_hasher(cap, ahash::RandomState::new()),
            free: Vec::with_capacity(cap),
            cap,
            mirror: Region::default(),
        }
    }

    /// Room for at least `cap` addresses (up to [`MAX`]); allocates, so it
    /// is for the control path (a new snapshot), never per packet.
    pub fn reserve(&mut self, cap: usize) {
        let cap = cap.min(MAX);
        if cap <= self.cap {
            return;
        }
        let more = cap - self.addrs.len();
        self.addrs.reserve_exact(more);
        self.refs.reserve_exact(more);
        self.free.reserve_exact(cap - self.free.len());
        self.index.reserve(cap - self.index.len());
        self.cap = cap;
    }

    /// The index of `a`, taking a reference; None when the pool is full.
    pub fn intern(&mut self, a: &[u8; 16]) -> Option<u16> {
        let key = u128::from_be_bytes(*a);
        if let Some(&ix) = self.index.get(&key) {
            self.refs[ix as usize] += 1;
            return Some(ix);
        }
        let ix = match self.free.pop() {
            Some(ix) => {
                self.addrs[ix as usize] = *a;
                self.refs[ix as usize] = 1;
                ix
            }
            None if self.addrs.len() < self.cap => {
                self.addrs.push(*a);
                self.refs.push(1);
                (self.addrs.len() - 1) as u16
            }
            None => return None,
        };
        self.index.insert(key, ix);
        if let Some(m) = self.mirror.get_mut(ix as usize) {
            *m = *a;
        }
        Some(ix)
    }

    /// Keeps a copy of every address in `mirror` ([`MAX`] entries, by
    /// index), from now on and for the addresses already held.
    pub fn set_mirror(&mut self, mut mirror: Region<[u8; 16]>) {
        for (i, a) in self.addrs.iter().enumerate() {
            if let Some(m) = mirror.get_mut(i) {
                *m = *a;
            }
        }
        self.mirror = mirror;
    }

    /// Gives back a reference taken by [`AddrPool::intern`]; the last one
    /// frees the index. [`CLIENT`] is ignored.
    pub fn release(&mut self, ix: u16) {
        let Some(r) = self.refs.get_mut(ix as usize) else {
            return;
        };
        if *r == 0 {
            return;
        }
        *r -= 1;
        if *r == 0 {
            self.index
                .remove(&u128::from_be_bytes(self.addrs[ix as usize]));
            self.free.push(ix);
        }
    }

    /// The address at `ix` (an index [`AddrPool::intern`] gave).
    #[inline(always)]
    pub fn get(&self, ix: u16) -> &[u8; 16] {
        &self.addrs[ix as usize]
    }

    /// Addresses held now.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Bytes the pool holds, used or not.
    pub fn memory_bytes(&self) -> usize {
        self.addrs.capacity() * 16
            + self.refs.capacity() * 4
            + self.free.capacity() * 2
            // hashbrown: a key, a value and a control byte per bucket.
            + self.index.capacity() * (16 + 2 + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(i: u16) -> [u8; 16] {
        let mut x = [0x20, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        x[14..].copy_from_slice(&i.to_be_bytes());
        x
    }

    #[test]
    fn shares_counts_and_frees() {
        let mut p = AddrPool::with_capacity(2);
        let x = p.intern(&a(1)).unwrap();
        assert_eq!(p.intern(&a(1)), Some(x), "the same address, the same index");
        let y = p.intern(&a(2)).unwrap();
        assert_ne!(x, y);
        assert_eq!(p.intern(&a(3)), None, "full");
        assert_eq!(p.get(x), &a(1));
        p.release(x);
        assert_eq!(p.intern(&a(3)), None, "a(1) still has a reference");
        p.release(x);
        let z = p.intern(&a(3)).unwrap();
        assert_eq!(z, x, "the freed index is reused");
        assert_eq!(p.get(z), &a(3));
        assert_eq!(p.len(), 2);
        // Releasing what holds no reference, or CLIENT, changes nothing.
        p.release(CLIENT);
        p.release(y);
        p.release(y);
        assert_eq!(p.len(), 1);
        assert_eq!(p.intern(&a(2)).map(|i| *p.get(i)), Some(a(2)));
    }

    #[test]
    fn reserve_grows_up_to_the_index_space() {
        let mut p = AddrPool::with_capacity(1);
        p.intern(&a(1)).unwrap();
        assert_eq!(p.intern(&a(2)), None);
        p.reserve(3);
        assert_eq!(p.capacity(), 3);
        assert!(p.intern(&a(2)).is_some() && p.intern(&a(3)).is_some());
        assert_eq!(p.intern(&a(4)), None);
        p.reserve(1 << 20);
        assert_eq!(p.capacity(), MAX);
    }
}
