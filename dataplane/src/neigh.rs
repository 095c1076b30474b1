//! The neighbour cache: IPv4 → MAC by ARP and IPv6 → MAC by NDP, per worker.
//!
//! A lookup that misses queues the packet (a bounded number per neighbour
//! and in all, like Linux's `unres_qlen`) and asks the worker to send an ARP
//! request; requests are retried once a second up to three times, after
//! which the queued packets are dropped and counted. Entries are trusted for
//! `REACHABLE_MS`; after that they are still used while a refresh request
//! goes out (Linux's STALE → PROBE), and forgotten if nobody answers; one
//! nobody uses is forgotten `GC_STALE_MS` after it went stale (Linux's
//! `gc_staletime`).
//!
//! What may change an entry follows Linux (`arp_process`, `neigh_update`):
//! never a broadcast, multicast or zero MAC; a different MAC only when the
//! entry is older than `LOCKTIME_MS` (`locktime`: the first answer wins a
//! race, a flood of forged ones cannot flap it). A full cache makes room
//! before it refuses, as Linux's forced GC does: a stale entry first, then
//! one learned from a neighbour's unsolicited request rather than one we
//! resolved ourselves (a real server, a router), never one with packets
//! waiting.

use crate::wire::Mac;
use hashbrown::HashMap;
use std::collections::VecDeque;
use std::net::Ipv4Addr;

pub const REACHABLE_MS: u64 = 300_000;
/// A stale entry nobody used for this long is forgotten.
pub const GC_STALE_MS: u64 = 60_000;
/// An entry changed less than this long ago keeps its MAC.
pub const LOCKTIME_MS: u64 = 1_000;
/// Entries looked at for one to evict when the cache is full.
pub const EVICT_SCAN: usize = 64;
pub const RETRY_MS: u64 = 1_000;
pub const MAX_PROBES: u8 = 3;
/// Packets queued per unresolved neighbour.
pub const QUEUE_PER_NEIGH: usize = 8;
/// Packets queued in all.
pub const QUEUE_TOTAL: usize = 256;

#[derive(Debug)]
struct Entry<P> {
    mac: Option<Mac>,
    port: u16,
    /// Reachable until; or, while resolving, when to retry.
    until_ms: u64,
    probes: u8,
    pending: VecDeque<P>,
    /// When its MAC was last set (for the lock time).
    updated_ms: u64,
    /// Created because we needed it (a next hop), not learned from a
    /// neighbour's request: kept over learned ones when making room.
    ours: bool,
}

/// What the caller must do after a resolve attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolve {
    /// Send now with this MAC.
    Mac(Mac),
    /// Send with this MAC, and also send an ARP request to refresh it.
    MacAndProbe(Mac),
    /// Packet queued; send an ARP request for the address.
    QueuedProbe,
    /// Packet queued; a request is already outstanding.
    Queued,
    /// Queue or table full: the packet is handed back to be dropped.
    Full,
}

/// Keyed by the neighbour's address: `Ipv4Addr` (ARP) or `Ipv6Addr` (NDP,
/// RFC 4861 §7: the same states, solicitations instead of requests).
pub struct NeighCache<P, A = Ipv4Addr> {
    map: HashMap<A, Entry<P>, ahash::RandomState>,
    capacity: usize,
    queued: usize,
    /// Bumped whenever a MAC changes, so cached resolutions can be checked.
    pub generation: u64,
}

impl<P, A: Copy + Eq + std::hash::Hash> NeighCache<P, A> {
    pub fn new(capacity: usize) -> NeighCache<P, A> {
        NeighCache {
            map: HashMap::with_capacity_and_hasher(capacity, ahash::RandomState::new()),
            capacity,
            queued: 0,
            generation: 0,
        }
    }

    /// The MAC of `ip` if known, without side effects.
    #[inline]
    pub fn get(&self, ip: A) -> Option<Mac> {
        self.map.get(&ip).and_then(|e| e.mac)
    }

    /// Whether `ip` is being resolved: an entry waits for an answer.
    pub fn is_pending(&self, ip: A) -> bool {
        self.map.get(&ip).is_some_and(|e| e.mac.is_none())
    }

    /// Resolves `ip` reached through `port` for a packet about to be sent.
    /// On `QueuedProbe`/`Queued` the cache keeps the packet; on `Full` the
    /// packet is returned in `pkt` unchanged for the caller to drop.
    pub fn resolve(&mut self, ip: A, port: u16, now_ms: u64, pkt: &mut Option<P>) -> Resolve {
        let key = ip;
        if let Some(e) = self.map.get_mut(&key) {
            if let Some(mac) = e.mac {
                if now_ms < e.until_ms || now_ms < e.until_ms + RETRY_MS * (e.probes as u64) {
                    return Resolve::Mac(mac);
                }
                e.probes += 1;
                if e.probes > MAX_PROBES {
                    // Stale and unanswered: forget it, resolve afresh below.
                    self.map.remove(&key);
                    self.generation += 1;
                } else {
                    return Resolve::MacAndProbe(mac);
                }
            } else {
                if e.pending.len() >= QUEUE_PER_NEIGH || self.queued >= QUEUE_TOTAL {
                    return Resolve::Full;
                }
                if let Some(p) = pkt.take() {
                    e.pending.push_back(p);
                    self.queued += 1;
                }
                return Resolve::Queued;
            }
        }
        if self.queued >= QUEUE_TOTAL
            || (self.map.len() >= self.capacity && !self.evict_one(now_ms))
        {
            return Resolve::Full;
        }
        let mut pending = VecDeque::with_capacity(QUEUE_PER_NEIGH);
        if let Some(p) = pkt.take() {
            pending.push_back(p);
            self.queued += 1;
        }
        self.map.insert(
            key,
            Entry {
                mac: None,
                port,
                until_ms: now_ms + RETRY_MS,
                probes: 1,
                pending,
                updated_ms: now_ms,
                ours: true,
            },
        );
        Resolve::QueuedProbe
    }

    /// Learns `ip` at `mac` (from an ARP reply, or a request or gratuitous
    /// ARP from a connected neighbour). `create` is false for traffic that
    /// only refreshes entries we asked about, as Linux does for requests not
    /// aimed at us. Queued packets now ready to send go to `ready` with
    /// their port. False when the update is refused (a broadcast, multicast
    /// or zero MAC; another MAC within the lock time; no room): the caller
    /// counts it.
    pub fn learn(
        &mut self,
        ip: A,
        mac: Mac,
        port: u16,
        now_ms: u64,
        create: bool,
        ready: &mut Vec<(u16, P)>,
    ) -> bool {
        if mac[0] & 1 != 0 || mac == [0; 6] {
            return false;
        }
        let key = ip;
        if let Some(e) = self.map.get_mut(&key) {
            if let Some(old) = e.mac {
                if old != mac && now_ms < e.updated_ms + LOCKTIME_MS {
                    return false;
                }
            }
            if e.mac != Some(mac) {
                self.generation += 1;
                e.updated_ms = now_ms;
            }
            e.mac = Some(mac);
            e.port = port;
            e.until_ms = now_ms + REACHABLE_MS;
            e.probes = 0;
            self.queued -= e.pending.len();
            ready.extend(e.pending.drain(..).map(|p| (port, p)));
            return true;
        }
        if !create {
            return true;
        }
        if self.map.len() >= self.capacity && !self.evict_one(now_ms) {
            return false;
        }
        self.map.insert(
            key,
            Entry {
                mac: Some(mac),
                port,
                until_ms: now_ms + REACHABLE_MS,
                probes: 0,
                pending: VecDeque::new(),
                updated_ms: now_ms,
                ours: false,
            },
        );
        self.generation += 1;
        true
    }

    /// Makes room for one entry: among the first [`EVICT_SCAN`] entries, a
    /// resolved one past its probes (stale), else one learned from a
    /// neighbour; never one with packets waiting or being resolved.
    fn evict_one(&mut self, now_ms: u64) -> bool {
        let mut learned = None;
        let mut stale = None;
        for (k, e) in self.map.iter().take(EVICT_SCAN) {
            if e.mac.is_none() || !e.pending.is_empty() {
                continue;
            }
            if now_ms >= e.until_ms + RETRY_MS * MAX_PROBES as u64 {
                stale = Some(*k);
                break;
            }
            if !e.ours && learned.is_none() {
                learned = Some(*k);
            }
        }
        match stale.or(learned) {
            Some(k) => {
                self.map.remove(&k);
                self.generation += 1;
                true
            }
            None => false,
        }
    }

    /// Retries and gives up on unresolved entries. Calls `probe(ip, port)`
    /// for each request to send and `dropped(pkt)` for each packet given up.
    pub fn tick(&mut self, now_ms: u64, mut probe: impl FnMut(A, u16), mut dropped: impl FnMut(P)) {
        let queued = &mut self.queued;
        let mut forgot = false;
        self.map.retain(|&k, e| {
            if e.mac.is_some() {
                // Stale and unused for gc_staletime: forgotten.
                let keep = now_ms < e.until_ms + GC_STALE_MS || !e.pending.is_empty();
                forgot |= !keep;
                return keep;
            }
            if now_ms < e.until_ms {
                return true;
            }
            if e.probes >= MAX_PROBES {
                *queued -= e.pending.len();
                e.pending.drain(..).for_each(&mut dropped);
                return false;
            }
            e.probes += 1;
            e.until_ms = now_ms + RETRY_MS;
            probe(k, e.port);
            true
        });
        if forgot {
            self.generation += 1;
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    pub fn queued(&self) -> usize {
        self.queued
    }
    /// Resolved entries, for listings.
    pub fn entries(&self) -> impl Iterator<Item = (A, Mac, u16)> + '_ {
        self.map
            .iter()
            .filter_map(|(&k, e)| e.mac.map(|m| (k, m, e.port)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 11);
    const MAC: Mac = [2, 0, 0, 0, 1, 11];

    #[test]
    fn queue_then_learn_flushes() {
        let mut n: NeighCache<u32> = NeighCache::new(16);
        assert_eq!(n.resolve(IP, 1, 0, &mut Some(1)), Resolve::QueuedProbe);
        assert_eq!(n.resolve(IP, 1, 10, &mut Some(2)), Resolve::Queued);
        assert_eq!(n.queued(), 2);
        let mut ready = vec![];
        n.learn(IP, MAC, 1, 20, false, &mut ready);
        assert_eq!(ready, vec![(1, 1), (1, 2)]);
        assert_eq!(n.queued(), 0);
        assert_eq!(n.resolve(IP, 1, 30, &mut Some(3)), Resolve::Mac(MAC));
    }

    #[test]
    fn bounded_queue_and_give_up() {
        let mut n: NeighCache<u32> = NeighCache::new(16);
        for i in 0..QUEUE_PER_NEIGH as u32 {
            let mut p = Some(i);
            assert_ne!(n.resolve(IP, 1, 0, &mut p), Resolve::Full);
        }
        let mut p = Some(99);
        assert_eq!(n.resolve(IP, 1, 0, &mut p), Resolve::Full);
        assert_eq!(p, Some(99));
        let (mut probes, mut drops) = (0, 0);
        for t in 1..=5 {
            n.tick(t * RETRY_MS, |_, _| probes += 1, |_| drops += 1);
        }
        assert_eq!(probes, (MAX_PROBES - 1) as usize);
        assert_eq!(drops, QUEUE_PER_NEIGH);
        assert!(n.is_empty());
        assert_eq!(n.queued(), 0);
    }

    #[test]
    fn stale_entries_are_probed_then_forgotten() {
        let mut n: NeighCache<u32> = NeighCache::new(16);
        let mut ready = vec![];
        n.learn(IP, MAC, 1, 0, true, &mut ready);
        let t = REACHABLE_MS;
        assert_eq!(n.resolve(IP, 1, t, &mut Some(1)), Resolve::MacAndProbe(MAC));
        assert_eq!(n.resolve(IP, 1, t + 10, &mut Some(1)), Resolve::Mac(MAC));
        // Answered: reachable again.
        n.learn(IP, MAC, 1, t + 20, false, &mut ready);
        assert_eq!(n.resolve(IP, 1, t + 30, &mut Some(1)), Resolve::Mac(MAC));
        // Unanswered probes: forgotten and resolved afresh.
        let t2 = t + 20 + REACHABLE_MS;
        let mut now = t2;
        let mut last = Resolve::Mac(MAC);
        for _ in 0..10 {
            last = n.resolve(IP, 1, now, &mut Some(1));
            if last == Resolve::QueuedProbe {
                break;
            }
            now += RETRY_MS;
        }
        assert_eq!(last, Resolve::QueuedProbe);
    }

    #[test]
    fn unsolicited_only_refreshes_unless_created() {
        let mut n: NeighCache<u32> = NeighCache::new(16);
        let mut ready = vec![];
        n.learn(IP, MAC, 1, 0, false, &mut ready);
        assert_eq!(n.get(IP), None);
        n.learn(IP, MAC, 1, 0, true, &mut ready);
        assert_eq!(n.get(IP), Some(MAC));
    }

    const MAC2: Mac = [2, 0, 0, 0, 1, 12];

    #[test]
    fn bogus_macs_and_the_lock_time() {
        let mut n: NeighCache<u32> = NeighCache::new(16);
        let mut ready = vec![];
        for bad in [
            [0xff; 6],
            [0x01, 0, 0x5e, 0, 0, 1],
            [0x33, 0x33, 0, 0, 0, 1],
            [0; 6],
        ] {
            assert!(!n.learn(IP, bad, 1, 0, true, &mut ready));
        }
        assert_eq!(n.get(IP), None);
        assert!(n.learn(IP, MAC, 1, 0, true, &mut ready));
        // Another MAC within the lock time: refused; the same one refreshes.
        assert!(!n.learn(IP, MAC2, 1, LOCKTIME_MS - 1, true, &mut ready));
        assert_eq!(n.get(IP), Some(MAC));
        assert!(n.learn(IP, MAC, 1, LOCKTIME_MS - 1, true, &mut ready));
        // After it, a real server that changed its MAC is followed.
        assert!(n.learn(IP, MAC2, 1, LOCKTIME_MS, true, &mut ready));
        assert_eq!(n.get(IP), Some(MAC2));
    }

    #[test]
    fn unused_stale_entries_are_forgotten() {
        let mut n: NeighCache<u32> = NeighCache::new(16);
        let mut ready = vec![];
        n.learn(IP, MAC, 1, 0, true, &mut ready);
        let g = n.generation;
        n.tick(REACHABLE_MS + GC_STALE_MS - 1, |_, _| {}, |_| {});
        assert_eq!(n.get(IP), Some(MAC));
        n.tick(REACHABLE_MS + GC_STALE_MS, |_, _| {}, |_| {});
        assert_eq!(n.get(IP), None);
        assert!(n.generation > g);
    }

    /// A flood of ARP requests from spoofed senders fills the cache with
    /// learned entries; a next hop we need still gets resolved (a learned
    /// entry makes room), and what we resolved is kept over what we learned.
    #[test]
    fn a_full_cache_makes_room_for_our_next_hops() {
        let mut n: NeighCache<u32> = NeighCache::new(8);
        let mut ready = vec![];
        let hop = Ipv4Addr::new(198, 18, 1, 1);
        assert_eq!(n.resolve(hop, 1, 0, &mut Some(0)), Resolve::QueuedProbe);
        n.learn(hop, MAC, 1, 1, false, &mut ready);
        for i in 0..100u8 {
            let spoofed = Ipv4Addr::new(198, 18, 2, i);
            n.learn(spoofed, [2, 0, 0, 9, 0, i], 1, 2, true, &mut ready);
            assert!(n.len() <= 8);
        }
        assert_eq!(n.get(hop), Some(MAC), "our next hop was evicted");
        let hop2 = Ipv4Addr::new(198, 18, 1, 2);
        assert_eq!(n.resolve(hop2, 1, 3, &mut Some(1)), Resolve::QueuedProbe);
        n.learn(hop2, MAC2, 1, 4, false, &mut ready);
        assert_eq!(n.get(hop2), Some(MAC2));
        assert_eq!(n.get(hop), Some(MAC));
        // Only entries we resolved, all fresh, with packets waiting: full.
        let mut m: NeighCache<u32> = NeighCache::new(2);
        assert_eq!(m.resolve(hop, 1, 0, &mut Some(0)), Resolve::QueuedProbe);
        assert_eq!(m.resolve(hop2, 1, 0, &mut Some(0)), Resolve::QueuedProbe);
        let mut p = Some(9);
        assert_eq!(m.resolve(IP, 1, 0, &mut p), Resolve::Full);
        assert_eq!(p, Some(9));
    }
}
