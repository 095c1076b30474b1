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
}
