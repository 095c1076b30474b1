//! The forwarding modes' stateful allocators, one per worker, apart from
//! the pure rewrites: FULLNAT's local ports and the IP identification of
//! the outer headers TUN writes.

use std::net::Ipv4Addr;

/// First local port handed out; below are well-known and ephemeral ports
/// the kernel might use for the director's own traffic on the same address.
pub const LPORT_MIN: u16 = 1024;
/// Candidates tried before a new connection is refused as "ports exhausted".
pub const MAX_TRIES: usize = 64;

/// Local ports per local address in each worker's slice, with `workers`
/// workers: what one worker can hold open towards one real server port.
pub fn ports_per_worker(workers: usize) -> u32 {
    let w = workers.max(1) as u32;
    let start = (LPORT_MIN as u32).div_ceil(w) * w;
    (65536 - start) / w
}

/// One worker's cursor over its slice of FULLNAT local ports.
#[derive(Clone, Debug)]
pub struct PortAllocator {
    worker: u16,
    workers: u16,
    next: u32,
    laddr_rr: usize,
}

impl PortAllocator {
    pub fn new(worker: usize, workers: usize) -> PortAllocator {
        let workers = workers.max(1) as u16;
        // A random starting point: a director that restarts must not hand
        // out the (local address, port) pairs of its previous life in the
        // same order, while the real servers still hold those tuples in
        // TIME_WAIT (60 s on Linux).
        let seed = { ahash::RandomState::new().hash_one(worker) };
        PortAllocator {
            worker: worker as u16,
            workers,
            next: (seed % ports_per_worker(workers as usize) as u64) as u32,
            laddr_rr: worker,
        }
    }

    /// Picks a local address round robin and a free port of this worker's
    /// slice for it. `in_use(laddr, lport)` says whether the reply tuple
    /// (rip, rport, laddr, lport) is taken.
    pub fn alloc(
        &mut self,
        laddrs: &[Ipv4Addr],
        in_use: impl FnMut([u8; 4], u16) -> bool,
    ) -> Option<([u8; 4], u16)> {
        self.alloc_in(laddrs, |a| a.octets(), in_use)
    }

    /// [`PortAllocator::alloc`] over local addresses of any family (IPv6
    /// for FULLNAT66); the same slice of ports, so a reply's destination
    /// port names its owner whatever the family.
    pub fn alloc_in<L, A: Copy>(
        &mut self,
        laddrs: &[L],
        octets: impl Fn(&L) -> A,
        mut in_use: impl FnMut(A, u16) -> bool,
    ) -> Option<(A, u16)> {
        if laddrs.is_empty() {
            return None;
        }
        let w = self.workers as u32;
        // This worker's ports: start + k·w + worker, for k in 0..span.
        let start = (LPORT_MIN as u32).div_ceil(w) * w;
        let span = ports_per_worker(w as usize);
        for _ in 0..MAX_TRIES {
            // Every local address with one port, then the next port: the
            // pairs cover all of (address × port) before repeating.
            self.laddr_rr += 1;
            if self.laddr_rr >= laddrs.len() {
                self.laddr_rr = 0;
                self.next = (self.next + 1) % span;
            }
            let la = octets(&laddrs[self.laddr_rr]);
            let p = (start + self.next * w + self.worker as u32) as u16;
            if !in_use(la, p) {
                return Some((la, p));
            }
        }
        None
    }
}

/// The IP identification of the outer headers one worker writes (TUN
/// encapsulation and its fragments): a counter per worker, each worker's
/// starting `0x1000` apart from the next one's.
#[derive(Clone, Debug)]
pub struct IpIds {
    last: u16,
}

impl IpIds {
    pub fn new(worker: usize) -> IpIds {
        IpIds {
            last: (worker as u16).wrapping_mul(0x1000),
        }
    }

    /// The identification for the next outer packet (all fragments of one
    /// packet share it).
    #[inline(always)]
    pub fn fresh(&mut self) -> u16 {
        self.last = self.last.wrapping_add(1);
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_stay_in_the_workers_slice() {
        for w in 0..3 {
            let mut a = PortAllocator::new(w, 3);
            for _ in 0..100_000 {
                let (_, p) = a
                    .alloc(&[Ipv4Addr::new(198, 18, 2, 10)], |_, _| false)
                    .unwrap();
                assert_eq!(p as usize % 3, w);
                assert!(p >= LPORT_MIN);
            }
        }
    }

    #[test]
    fn no_local_address_allocates_nothing() {
        // The snapshot does not refuse FULLNAT without local addresses
        // (the control plane does): the worker drops such a connection.
        assert_eq!(PortAllocator::new(0, 1).alloc(&[], |_, _| false), None);
    }

    #[test]
    fn a_restarted_allocator_starts_elsewhere() {
        // Four "restarts" of worker 0 all starting on the same port would
        // mean the start is not random (chance 1 in 64,512^3 otherwise).
        let la = [Ipv4Addr::new(198, 18, 2, 10)];
        let firsts: std::collections::HashSet<u16> = (0..4)
            .map(|_| PortAllocator::new(0, 1).alloc(&la, |_, _| false).unwrap().1)
            .collect();
        assert!(firsts.len() > 1, "{firsts:?}");
    }

    #[test]
    fn every_address_port_pair_is_reachable() {
        let la: Vec<Ipv4Addr> = (0..4).map(|i| Ipv4Addr::new(198, 18, 2, 10 + i)).collect();
        let mut a = PortAllocator::new(1, 2);
        let mut seen = std::collections::HashSet::new();
        let per_addr = (65536 - 1024) / 2;
        for _ in 0..per_addr * 4 {
            seen.insert(a.alloc(&la, |_, _| false).unwrap());
        }
        assert_eq!(seen.len(), per_addr * 4);
    }

    #[test]
    fn exhaustion_is_reported() {
        let mut a = PortAllocator::new(0, 1);
        assert_eq!(a.alloc(&[Ipv4Addr::new(198, 18, 2, 10)], |_, _| true), None);
        assert_eq!(a.alloc(&[], |_, _| false), None);
        let mut n = 0;
        // Skips taken ports.
        let r = a.alloc(&[Ipv4Addr::new(198, 18, 2, 10)], |_, _| {
            n += 1;
            n < 5
        });
        assert!(r.is_some());
    }

    #[test]
    fn ip_ids_count_up_from_the_workers_start() {
        let mut a = IpIds::new(0);
        assert_eq!((a.fresh(), a.fresh()), (1, 2));
        let mut b = IpIds::new(2);
        assert_eq!(b.fresh(), 0x2001);
        let mut c = IpIds { last: u16::MAX };
        assert_eq!(c.fresh(), 0);
    }
}
