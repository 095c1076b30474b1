//! The sync daemon's counters, for `/metrics` (the workers' own, ring full
//! and installs, are in their per-worker cells).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct SyncStats {
    pub messages_sent: AtomicU64,
    pub entries_sent: AtomicU64,
    /// sendto failed: the message is lost.
    pub send_errors: AtomicU64,
    pub messages_received: AtomicU64,
    pub entries_received: AtomicU64,
    /// Received messages dropped whole: malformed, or another sync id.
    pub bad_messages: AtomicU64,
    pub wrong_syncid: AtomicU64,
    /// Received entries not installable here (`receive::Routed::unusable`).
    pub unusable_entries: AtomicU64,
    /// Received entries lost because their worker's request queue was full.
    pub queue_full_entries: AtomicU64,
}

impl SyncStats {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Relaxed)
    }
}
