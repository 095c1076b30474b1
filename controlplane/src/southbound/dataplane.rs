//! The dataplane as the control plane drives it: snapshots published to
//! the workers, requests on their queues, their counters.

use ferrovs_dataplane::counters::WorkerCounters;
use ferrovs_dataplane::snapshot::Snapshot;
use ferrovs_dataplane::stats::PerWorker;
use ferrovs_dataplane::worker::{Request, Shared};

/// What the control plane needs of the running dataplane, whatever its
/// packet type.
pub trait Dataplane: Send + Sync {
    fn publish(&self, s: Snapshot);
    fn request(&self, worker: usize, r: Request) -> bool;
    fn workers(&self) -> usize;
    fn counters(&self) -> &PerWorker<WorkerCounters>;
    fn handover_backlog(&self, to: usize) -> usize;
    /// Connection sync: the master flag and the workers' record rings.
    fn sync(&self) -> &ferrovs_dataplane::sync::SyncShared;
    /// A request that wakes a sleeping worker; given back when the
    /// worker's queue is full.
    fn request_now(&self, worker: usize, r: Request) -> Result<(), Request>;
    /// The snapshot the workers forward by.
    fn snapshot(&self) -> std::sync::Arc<Snapshot>;
}

impl<T: Send + 'static> Dataplane for Shared<T> {
    fn publish(&self, s: Snapshot) {
        Shared::publish(self, s)
    }
    fn request(&self, worker: usize, r: Request) -> bool {
        Shared::request(self, worker, r)
    }
    fn workers(&self) -> usize {
        self.workers
    }
    fn counters(&self) -> &PerWorker<WorkerCounters> {
        &self.counters
    }
    fn handover_backlog(&self, to: usize) -> usize {
        Shared::handover_backlog(self, to)
    }
    fn sync(&self) -> &ferrovs_dataplane::sync::SyncShared {
        &self.sync
    }
    fn request_now(&self, worker: usize, r: Request) -> Result<(), Request> {
        Shared::try_request_now(self, worker, r)
    }
    fn snapshot(&self) -> std::sync::Arc<Snapshot> {
        self.snapshot.load_full()
    }
}
