//! The AF_PACKET backend's edge in the control plane: opening the ports
//! (one socket per worker on every interface, in a fanout group), their
//! counters for `/metrics`, and the warning that names the fix when GSO
//! super-frames arrive, which the backend cannot forward.

use crate::daemon::{OpenRequest, Opened, PortError};
use crate::port_device::{KernelDevice, PortDevice, QueueStat};
use ferrovs_dataplane::port::afpacket::{AfPacketOptions, AfPacketPort, PortCounters};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tracing::warn;

/// An AF_PACKET interface for `/metrics` and its warnings.
struct AfPacketDevice {
    kernel: KernelDevice,
    /// The veth peer's ifindex, when the port is a veth.
    peer: Option<u32>,
    /// Per worker.
    sockets: Vec<Arc<PortCounters>>,
    /// `rx_gso` when the last warning was given.
    gso_warned: AtomicU64,
}

impl PortDevice for AfPacketDevice {
    fn name(&self) -> &str {
        self.kernel.name()
    }
    fn link_up(&self) -> bool {
        self.kernel.link_up()
    }
    fn stat(&self, name: &str) -> u64 {
        self.kernel.stat(name)
    }
    fn queue_stats(&self) -> Vec<QueueStat> {
        let mut v = Vec::new();
        for (w, c) in self.sockets.iter().enumerate() {
            let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
            let q = |name, help, value| QueueStat {
                name,
                help,
                counter: true,
                queue: w as u32,
                value,
            };
            v.extend([
                q("afpacket_rx_gso", "GSO/GRO super-frames dropped: a sender has TSO/GSO on (see the log for the fix).", r(&c.rx_gso)),
                q("afpacket_rx_oversize", "Frames too large for a packet buffer, dropped.", r(&c.rx_oversize)),
                q("afpacket_rx_truncated", "Frames truncated or malformed in the ring, dropped.", r(&c.rx_truncated)),
                q("afpacket_rx_csum_completed", "Frames whose partial TCP/UDP checksum was completed.", r(&c.rx_csum_completed)),
                q("afpacket_tx_errors", "Frames the kernel refused to send.", r(&c.tx_errors)),
            ]);
        }
        v
    }
    fn warnings(&self) -> Vec<String> {
        let gso: u64 = self
            .sockets
            .iter()
            .map(|c| c.rx_gso.load(Ordering::Relaxed))
            .sum();
        if gso <= self.gso_warned.swap(gso, Ordering::Relaxed) {
            return Vec::new();
        }
        let max = self
            .sockets
            .iter()
            .map(|c| c.rx_gso_max_len.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        vec![gso_advice(self.name(), self.peer, gso, max)]
    }
}

/// The warning for GSO super-frames on `ifname`, naming the command that
/// fixes the sender.
fn gso_advice(ifname: &str, peer: Option<u32>, count: u64, max_len: u64) -> String {
    let who = match peer {
        Some(i) => {
            format!("on the veth peer of {ifname} (its ifindex is {i}, maybe in another namespace)")
        }
        None => format!("on the host that sends to {ifname}, or turn GRO/LRO off on {ifname}"),
    };
    format!(
        "{ifname}: {count} GSO super-frames (up to {max_len} bytes) dropped so far: the AF_PACKET backend forwards frames of at most the MTU. Run `ethtool -K IFACE tso off gso off` {who}, or use the AF_XDP backend, which makes veth peers segment"
    )
}

/// Opens the AF_PACKET ports with the facts the southbound learned of
/// their interfaces (a missing or non-Ethernet one is refused, by name).
/// The kernel keeps the interfaces, so it sees the director's own traffic
/// without an exception path.
pub fn open(req: &OpenRequest) -> Result<Opened<AfPacketPort>, PortError> {
    let opts = AfPacketOptions::default();
    let mut per_worker: Vec<Vec<AfPacketPort>> = (0..req.workers).map(|_| Vec::new()).collect();
    let mut devices: Vec<Arc<dyn PortDevice>> = Vec::new();
    for i in req.ifaces {
        let (iface, peer) = {
            let net = req.net.borrow();
            let iface = net.iface(i)?;
            // A veth names its peer as IFLA_LINK.
            let peer = net.link(iface.index).and_then(|l| l.iflink);
            (iface, peer)
        };
        let ports = AfPacketPort::open_fanout(&iface, req.workers, &opts).map_err(|error| {
            PortError::Open {
                iface: i.clone(),
                error,
            }
        })?;
        if let Some(peer) = peer {
            warn!("{i}: a veth (peer ifindex {peer}): with the AF_PACKET backend, TSO/GSO must be off on the peer (`ethtool -K PEER tso off gso off`), or large transfers stall; the AF_XDP backend needs nothing");
        }
        let sockets = ports.iter().map(|p| p.counters()).collect();
        devices.push(Arc::new(AfPacketDevice {
            kernel: KernelDevice::new(i.clone(), Some(req.net.clone()), Some(req.stats.clone())),
            peer,
            sockets,
            gso_warned: AtomicU64::new(0),
        }));
        for (w, p) in ports.into_iter().enumerate() {
            per_worker[w].push(p);
        }
    }
    Ok(Opened {
        ports: per_worker,
        kernel: Vec::new(),
        macs: None,
        devices,
        spawn: None,
        keep: Vec::new(),
        on_publish: None,
        handover: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gso_advice_names_the_command() {
        let s = gso_advice("nonexistent0", None, 3, 65226);
        assert!(s.contains("ethtool -K IFACE tso off gso off"), "{s}");
        assert!(s.contains("3 GSO super-frames (up to 65226 bytes)"), "{s}");
        let s = gso_advice("veth0", Some(12), 1, 9000);
        assert!(
            s.contains("on the veth peer of veth0 (its ifindex is 12"),
            "{s}"
        );
    }
}
