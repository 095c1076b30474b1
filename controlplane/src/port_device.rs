//! What the control plane reads about the devices behind the dataplane's
//! ports (link state, device counters, packet-buffer pool) for `/metrics`,
//! whichever backend owns them.

use crate::southbound::{LinkStatsMap, NetState};
use std::sync::Arc;
use tokio::sync::watch;

/// Device counters, named as Linux names them (IFLA_STATS64, sysfs).
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

/// A port whose device the kernel owns (AF_PACKET, AF_XDP), as the
/// southbound sees it over rtnetlink: its link state as announced (every
/// operstate change, so nothing is polled), its counters as the last link
/// dump read them (the kernel announces no counter change; the southbound
/// reads them every couple of seconds, so a scrape never waits for the
/// kernel).
pub struct KernelDevice {
    pub name: String,
    /// The kernel's network as the southbound follows it; None (in-process
    /// tests without a southbound): down.
    net: Option<watch::Receiver<Arc<NetState>>>,
    /// The links' counters; None: all 0.
    stats: Option<watch::Receiver<Arc<LinkStatsMap>>>,
}

impl KernelDevice {
    pub fn new(
        name: String,
        net: Option<watch::Receiver<Arc<NetState>>>,
        stats: Option<watch::Receiver<Arc<LinkStatsMap>>>,
    ) -> KernelDevice {
        KernelDevice { name, net, stats }
    }
}

impl PortDevice for KernelDevice {
    fn name(&self) -> &str {
        &self.name
    }
    fn link_up(&self) -> bool {
        self.net.as_ref().is_some_and(|net| {
            net.borrow()
                .link_by_name(&self.name)
                .is_some_and(|l| l.oper_up)
        })
    }
    fn stat(&self, stat: &str) -> u64 {
        self.stats
            .as_ref()
            .and_then(|s| s.borrow().get(&self.name).and_then(|st| st.get(stat)))
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
                ether: true,
                iflink: None,
            })
        };
        let mut ns = NetState::new();
        ns.apply(link(true));
        let (tx, rx) = watch::channel(Arc::new(ns.clone()));
        let dev = KernelDevice::new("fvs-test0".into(), Some(rx), None);
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

    #[test]
    fn a_kernel_port_counts_what_the_last_link_dump_read() {
        let mut m = LinkStatsMap::new();
        m.insert(
            "fvs-test0".into(),
            crate::southbound::LinkStats {
                rx_packets: 10,
                tx_dropped: 3,
                ..Default::default()
            },
        );
        let (tx, rx) = watch::channel(Arc::new(m.clone()));
        let dev = KernelDevice::new("fvs-test0".into(), None, Some(rx));
        assert_eq!((dev.stat("rx_packets"), dev.stat("tx_dropped")), (10, 3));
        assert_eq!(dev.stat("no_such_counter"), 0);
        if let Some(s) = m.get_mut("fvs-test0") {
            s.rx_packets = 11;
        }
        tx.send_replace(Arc::new(m));
        assert_eq!(dev.stat("rx_packets"), 11);
        let orphan = KernelDevice::new("fvs-test1".into(), None, None);
        assert_eq!(orphan.stat("rx_packets"), 0);
        assert!(!orphan.link_up());
    }
}
