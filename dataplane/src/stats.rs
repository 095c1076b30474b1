//! Counters shared between workers and the control plane.
//!
//! Each worker owns one cache-line-padded cell per counter set and is its only
//! writer, so it updates with a relaxed load and store instead of an atomic
//! read-modify-write (IPVS does the same with per-cpu stats). The control plane
//! sums the cells when asked.

use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A counter written by exactly one thread and read by any.
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline(always)]
    pub fn add(&self, n: u64) {
        // Single writer: load+store is enough and avoids a locked instruction.
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }
    #[inline(always)]
    pub fn inc(&self) {
        self.add(1)
    }
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
    /// For gauges kept by their single writer.
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Relaxed)
    }
    /// Only for `-Z`: racing with the writer may lose an increment, as in IPVS.
    pub fn reset(&self) {
        self.0.store(0, Relaxed)
    }
}

/// One cell per worker, each on its own cache line.
#[derive(Debug)]
pub struct PerWorker<T>(Box<[CachePadded<T>]>);

impl<T: Default> PerWorker<T> {
    pub fn new(workers: usize) -> Self {
        PerWorker(
            (0..workers.max(1))
                .map(|_| CachePadded::new(T::default()))
                .collect(),
        )
    }
}

impl<T> PerWorker<T> {
    /// The cell of worker `w`. Out-of-range workers share the last cell rather
    /// than panicking; the control plane sizes these by the worker count.
    #[inline(always)]
    pub fn cell(&self, w: usize) -> &T {
        let i = w.min(self.0.len() - 1);
        &self.0[i]
    }
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.iter().map(|c| &**c)
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Traffic counters of a virtual service or a real server, as IPVS keeps them
/// (`ipvsadm -L --stats`): connections, packets and bytes in each direction.
/// "In" is client → real server, "out" is real server → client.
#[derive(Default, Debug)]
pub struct TrafficCounters {
    pub conns: Counter,
    pub inpkts: Counter,
    pub outpkts: Counter,
    pub inbytes: Counter,
    pub outbytes: Counter,
}

/// A summed snapshot of [`TrafficCounters`].
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrafficTotals {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

impl PerWorker<TrafficCounters> {
    pub fn totals(&self) -> TrafficTotals {
        let mut t = TrafficTotals::default();
        for c in self.iter() {
            t.conns += c.conns.get();
            t.inpkts += c.inpkts.get();
            t.outpkts += c.outpkts.get();
            t.inbytes += c.inbytes.get();
            t.outbytes += c.outbytes.get();
        }
        t
    }
    pub fn reset(&self) {
        for c in self.iter() {
            c.conns.reset();
            c.inpkts.reset();
            c.outpkts.reset();
            c.inbytes.reset();
            c.outbytes.reset();
        }
    }
}
