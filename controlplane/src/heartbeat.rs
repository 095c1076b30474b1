//! Worker liveness. Every worker stamps its own slot with the workers'
//! clock on each pass of its loop (an idle worker still passes every
//! millisecond, out of its poll(2) sleep); the control plane reads the
//! stamps and calls a worker stalled when its stamp is older than
//! [`STALL_MS`]. A stalled worker cannot forward the flows it owns, so the
//! director gives its VIPs up (VRRP FAULT, as a failed tracked interface
//! would) until every worker runs again.

use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// How old a stamp may be. Far above a worker's longest housekeeping pass
/// and its 1 ms idle sleep; short enough that the peer takes over within
/// about two VRRP advert intervals of one second.
pub const STALL_MS: u64 = 1500;

/// One slot per worker, each on its own cache line (workers write theirs on
/// every pass).
#[derive(Clone)]
pub struct Heartbeats(Arc<[CachePadded<AtomicU64>]>);

impl Heartbeats {
    pub fn new(workers: usize, now_ms: u64) -> Heartbeats {
        Heartbeats(
            (0..workers)
                .map(|_| CachePadded::new(AtomicU64::new(now_ms)))
                .collect(),
        )
    }

    /// A worker's pass.
    #[inline]
    pub fn beat(&self, worker: usize, now_ms: u64) {
        self.0[worker].store(now_ms, Ordering::Relaxed);
    }

    pub fn read(&self) -> Vec<u64> {
        self.0.iter().map(|b| b.load(Ordering::Relaxed)).collect()
    }
}

/// A worker that stopped or started again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    pub worker: usize,
    pub stalled: bool,
    /// How long since its last pass, when it stalled.
    pub silent_ms: u64,
}

/// Turns stamps into stall and recovery events (sans-IO).
#[derive(Debug, Default)]
pub struct StallDetector {
    stalled: Vec<bool>,
    /// Stalls seen since start.
    pub stalls: u64,
}

impl StallDetector {
    pub fn new(workers: usize) -> StallDetector {
        StallDetector {
            stalled: vec![false; workers],
            stalls: 0,
        }
    }

    pub fn check(&mut self, stamps: &[u64], now_ms: u64) -> Vec<Change> {
        let mut out = Vec::new();
        for (w, (&t, st)) in stamps.iter().zip(self.stalled.iter_mut()).enumerate() {
            let silent_ms = now_ms.saturating_sub(t);
            let stalled = silent_ms > STALL_MS;
            if stalled != *st {
                *st = stalled;
                if stalled {
                    self.stalls += 1;
                }
                out.push(Change {
                    worker: w,
                    stalled,
                    silent_ms,
                });
            }
        }
        out
    }

    /// Whether every worker runs.
    pub fn all_running(&self) -> bool {
        !self.stalled.iter().any(|s| *s)
    }
}

/// The workers' clock at `now`: milliseconds since `epoch`, offset so
/// that time 0 is never "now".
pub fn clock_ms(epoch: Instant, now: Instant) -> u64 {
    now.saturating_duration_since(epoch).as_millis() as u64 + 1_000_000
}

/// The workers' clock now.
pub fn worker_clock_ms(epoch: Instant) -> u64 {
    clock_ms(epoch, Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_worker_stalls_and_recovers() {
        let hb = Heartbeats::new(2, 0);
        let mut d = StallDetector::new(2);
        hb.beat(0, 1000);
        hb.beat(1, 1000);
        assert!(d.check(&hb.read(), 1000 + STALL_MS).is_empty());
        hb.beat(0, 2000);
        // Worker 1 has been silent for more than STALL_MS.
        assert_eq!(
            d.check(&hb.read(), 2000 + STALL_MS),
            vec![Change {
                worker: 1,
                stalled: true,
                silent_ms: 1000 + STALL_MS
            }]
        );
        assert!(!d.all_running());
        hb.beat(0, 2000 + STALL_MS);
        assert!(
            d.check(&hb.read(), 2000 + STALL_MS + 1).is_empty(),
            "reported once"
        );
        hb.beat(0, 5000);
        hb.beat(1, 5000);
        assert_eq!(
            d.check(&hb.read(), 5001),
            vec![Change {
                worker: 1,
                stalled: false,
                silent_ms: 1
            }]
        );
        assert!(d.all_running());
        assert_eq!(d.stalls, 1);
    }
}
