//! What the control plane reads about the devices behind the dataplane's
//! ports (link state, device counters, packet-buffer pool) for `/metrics`,
//! whichever backend owns them.

use crate::southbound::NetState;
use std::sync::Arc;
use tokio::sync::watch;

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

/// A port whose device the kernel owns (AF_PACKET, AF_XDP). Its link
/// state is the southbound's (rtnetlink announces every operstate change,
/// so nothing is polled); its counters are read from sysfs when asked
/// (the kernel announces no counter change, so netlink would need a dump
/// per scrape for them).
pub struct KernelDevice {
    pub name: String,
    /// The kernel's network as the southbound follows it; None (in-process
    /// tests) reads the operstate from sysfs.
    net: Option<watch::Receiver<Arc<NetState>>>,
}

impl KernelDevice {
    pub fn new(name: String, net: Option<watch::Receiver<Arc<NetState>>>) -> KernelDevice {
        KernelDevice { name, net }
    }
}

impl PortDevice for KernelDevice {
    fn name(&self) -> &str {
        &self.name
    }
    fn link_up(&self) -> bool {
        match &self.net {
            Some(net) => net
                .borrow()
                .link_by_name(&self.name)
                .is_some_and(|l| l.oper_up),
            None => std::fs::read_to_string(format!("/sys/class/net/{}/operstate", self.name))
                .map(|s| matches!(s.trim(), "up" | "unknown"))
                .unwrap_or(false),
        }
    }
    fn stat(&self, stat: &str) -> u64 {
        std::fs::read_to_string(format!("/sys/class/net/{}/statistics/{stat}", self.name))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::southbound::{Link, NetEvent};

    #[test]
    fn a_kernel_port_is_up_as_the_southbound_says() {
        let link = |up: bool| {
            NetEvent::Link(Link {
                index: 7,
                name: "fvs-test0".into(),
                mac: Some([2, 0, 0, 0, 0, 7]),
                mtu: 1500,
                admin_up: true,
                oper_up: up,
            })
        };
        let mut ns = NetState::new();
        ns.apply(link(true));
        let (tx, rx) = watch::channel(Arc::new(ns.clone()));
        let dev = KernelDevice::new("fvs-test0".into(), Some(rx));
        assert!(dev.link_up());
        ns.apply(link(false));
        tx.send_replace(Arc::new(ns.clone()));
        assert!(
            !dev.link_up(),
            "an operstate change is seen without polling"
        );
        ns.apply(NetEvent::LinkGone(7));
        tx.send_replace(Arc::new(ns));
        assert!(!dev.link_up(), "a link that is gone is down");
    }
}
