//! What the control plane reads about the devices behind the dataplane's
//! ports (link state, device counters, packet-buffer pool) for `/metrics`,
//! whichever backend owns them.

/// Device counters, named as Linux names them in sysfs.
pub const STATS: [(&str, &str); 5] = [
    ("rx_packets", "Packets the device received."),
    ("tx_packets", "Packets the device sent."),
    ("rx_dropped", "Packets the device dropped on receive."),
    ("tx_dropped", "Packets the device dropped on transmit."),
    ("rx_errors", "Receive errors of the device."),
];

pub trait PortDevice: Send + Sync {
    /// The port's name, as in the configuration.
    fn name(&self) -> &str;
    fn link_up(&self) -> bool;
    /// One of `STATS`; 0 when the device does not count it.
    fn stat(&self, name: &str) -> u64;
    /// Packet buffers in use and in all (DPDK's mempool); None when the
    /// kernel owns the buffers.
    fn buffers(&self) -> Option<(u64, u64)> {
        None
    }
    /// Per-queue counters and gauges of the backend's rings (AF_XDP):
    /// (metric suffix, help, is a counter, queue, value).
    fn queue_stats(&self) -> Vec<QueueStat> {
        Vec::new()
    }
    /// Conditions the operator must hear about, new since the last call
    /// (the daemon logs them every tick).
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// One per-queue figure for `/metrics` (see [`PortDevice::queue_stats`]);
/// `name` follows `ferrovs_` in the metric's name (counters get `_total`
/// from the encoder).
#[derive(Clone, Copy, Debug)]
pub struct QueueStat {
    pub name: &'static str,
    pub help: &'static str,
    pub counter: bool,
    pub queue: u32,
    pub value: u64,
}

/// A port whose device the kernel owns (AF_PACKET): sysfs has it all.
pub struct KernelDevice {
    pub name: String,
}

impl PortDevice for KernelDevice {
    fn name(&self) -> &str {
        &self.name
    }
    fn link_up(&self) -> bool {
        std::fs::read_to_string(format!("/sys/class/net/{}/operstate", self.name))
            .map(|s| matches!(s.trim(), "up" | "unknown"))
            .unwrap_or(false)
    }
    fn stat(&self, stat: &str) -> u64 {
        std::fs::read_to_string(format!("/sys/class/net/{}/statistics/{stat}", self.name))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }
}
