//! The neighbour cache: IPv4 → MAC by ARP and IPv6 → MAC by NDP, per worker.
//!
//! A lookup that misses queues the packet (a bounded number per neighbour
//! and in all, like Linux's `unres_qlen`) and asks the worker to send an ARP
//! request; requests are retried once a second up to three times, after
//! which the queued packets are dropped and counted. Entries are trusted for
//! `REACHABLE_MS`; after that they are still used while a refresh request
//! goes out (Linux's STALE → PROBE), and forgotten if nobody answers.

use crate::wire::Mac;
use hashbrown::HashMap;
use std::collections::VecDeque;
use std::net::Ipv4Addr;

pub const REACHABLE_MS: u64 = 300_000;
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
        if self.map.len() >= self.capacity || self.queued >= QUEUE_TOTAL {
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
            },
        );
        Resolve::QueuedProbe
    }

    /// Learns `ip` at `mac` (from an ARP reply, or a request or gratuitous
    /// ARP from a connected neighbour). `create` is false for traffic that
    /// only refreshes entries we asked about, as Linux does for requests not
    /// aimed at us. Returns the queued packets now ready to send with their
    /// port.
    pub fn learn(
        &mut self,
        ip: A,
        mac: Mac,
        port: u16,
        now_ms: u64,
        create: bool,
        ready: &mut Vec<(u16, P)>,
    ) {
        let key = ip;
        let room = self.map.len() < self.capacity;
        match self.map.get_mut(&key) {
            Some(e) => {
                if e.mac != Some(mac) {
                    self.generation += 1;
                }
                e.mac = Some(mac);
                e.port = port;
                e.until_ms = now_ms + REACHABLE_MS;
                e.probes = 0;
                self.queued -= e.pending.len();
                ready.extend(e.pending.drain(..).map(|p| (port, p)));
            }
            None if create && room => {
                self.map.insert(
                    key,
                    Entry {
                        mac: Some(mac),
                        port,
                        until_ms: now_ms + REACHABLE_MS,
                        probes: 0,
                        pending: VecDeque::new(),
                    },
                );
                self.generation += 1;
            }
            None => {}
        }
    }

    /// Retries and gives up on unresolved entries. Calls `probe(ip, port)`
    /// for each request to send and `dropped(pkt)` for each packet given up.
    pub fn tick(&mut self, now_ms: u64, mut probe: impl FnMut(A, u16), mut dropped: impl FnMut(P)) {
        let queued = &mut self.queued;
        self.map.retain(|&k, e| {
            if e.mac.is_some() || now_ms < e.until_ms {
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
}
