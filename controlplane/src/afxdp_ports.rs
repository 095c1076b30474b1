//! The AF_XDP backend's edge in the control plane: opening the ports (XDP
//! program and one socket per worker on every interface), keeping the XDP
//! program's address map equal to each published snapshot (VRRP ownership,
//! reload, health), and the rings' figures for `/metrics`.

use crate::daemon::{OpenRequest, Opened, PortError};
use crate::port_device::{KernelDevice, PortDevice, QueueStat};
use ferrovs_dataplane::port::afxdp::steer::{ADDR_NAT_SRC, ADDR_OWN, ADDR_STEER};
use ferrovs_dataplane::port::afxdp::umem::Umem;
use ferrovs_dataplane::port::afxdp::{
    AfXdpOptions, AfXdpPort, ChannelsGuard, IfaceHandover, Steering, XdpPortInfo,
};
use ferrovs_dataplane::service::FwdMethod;
use ferrovs_dataplane::snapshot::{AddrKind, Snapshot};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tracing::{info, warn};

/// The program's bits for one of our addresses: active VIPs and local
/// addresses are steered, the director's own never.
fn kind_bits(k: AddrKind) -> u32 {
    match k {
        AddrKind::Vip { active: true } | AddrKind::Laddr { active: true } => ADDR_STEER,
        AddrKind::Own => ADDR_OWN,
        _ => 0,
    }
}

/// What the XDP program must steer for `snap`: active VIPs and local
/// addresses, the director's own addresses (never steered), and the real
/// servers of NAT services (whose replies to clients come back through us).
pub fn steer_addrs(snap: &Snapshot) -> HashMap<Ipv4Addr, u32> {
    let mut m: HashMap<Ipv4Addr, u32> = HashMap::new();
    for (a, k) in snap.addresses() {
        *m.entry(a).or_default() |= kind_bits(k);
    }
    for d in snap.dests() {
        if d.dest.fwd == FwdMethod::Nat {
            *m.entry(d.dest.addr).or_default() |= ADDR_NAT_SRC;
        }
    }
    m
}

/// [`steer_addrs`] for IPv6: active IPv6 VIPs and local addresses, the
/// director's own IPv6 addresses, and the IPv6 servers of NAT66 services.
pub fn steer_addrs6(snap: &Snapshot) -> HashMap<Ipv6Addr, u32> {
    let mut m: HashMap<Ipv6Addr, u32> = HashMap::new();
    for (a, k) in snap.addresses6() {
        *m.entry(a).or_default() |= kind_bits(k);
    }
    for s in &snap.services6 {
        for (d, a) in s.dests.iter().zip(&s.addrs) {
            if let (FwdMethod::Nat, IpAddr::V6(a)) = (d.fwd, a) {
                *m.entry(*a).or_default() |= ADDR_NAT_SRC;
            }
        }
    }
    m
}

/// The XDP programs of all interfaces, fed from the snapshots.
pub struct XdpSteering {
    programs: Mutex<Vec<Steering>>,
    /// Put back the queue counts raised at open, when dropped (not after
    /// a hand-over: the next process runs on them).
    channels: Mutex<Vec<ChannelsGuard>>,
    /// Every socket, per interface (in the order of the programs).
    sockets: Vec<Vec<XdpPortInfo>>,
}

impl crate::daemon::HandOverPorts for XdpSteering {
    fn before_stop(&self) {
        ferrovs_dataplane::port::afxdp::hand_over_on_stop();
        if let Ok(mut c) = self.channels.lock() {
            for g in c.iter_mut() {
                g.keep_on_drop();
            }
        }
    }

    fn export(&self) -> std::io::Result<crate::handover::Ports> {
        let umem =
            Umem::existing().ok_or_else(|| std::io::Error::other("no AF_XDP packet memory"))?;
        let progs = self
            .programs
            .lock()
            .map_err(|_| std::io::Error::other("the XDP programs' lock is poisoned"))?;
        let ifaces = progs
            .iter()
            .zip(&self.sockets)
            .map(|(p, s)| IfaceHandover::of(p, s))
            .collect::<std::io::Result<Vec<_>>>()?;
        // What this thread freed last (packets queued between workers).
        umem.flush_thread_cache();
        Ok(crate::handover::Ports {
            umem: umem.dup_fd()?,
            frames: umem.frames(),
            free: umem.take_free(),
            ifaces,
        })
    }
}

impl XdpSteering {
    /// Makes every program's map follow `snap`.
    pub fn sync(&self, snap: &Snapshot) {
        let want = steer_addrs(snap);
        let want6 = steer_addrs6(snap);
        let Ok(mut progs) = self.programs.lock() else {
            return;
        };
        for p in progs.iter_mut() {
            if let Err(e) = p.set_addrs(&want) {
                warn!("{e}");
            }
            if let Err(e) = p.set_addrs6(&want6) {
                warn!("{e}");
            }
        }
    }
}

/// An AF_XDP interface for `/metrics`: the kernel's device counters plus the
/// XDP program's and the sockets' figures.
struct XdpDevice {
    kernel: KernelDevice,
    steering: Arc<XdpSteering>,
    index: usize,
    sockets: Vec<XdpPortInfo>,
}

impl PortDevice for XdpDevice {
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
        let q = |name, help, counter, queue, value| QueueStat {
            name,
            help,
            counter,
            queue,
            value,
        };
        if let Some(s) = self
            .steering
            .programs
            .lock()
            .ok()
            .and_then(|p| p.get(self.index).map(|p| p.stats()))
        {
            // The program's counters are per interface; queue 0 carries them.
            v.push(q(
                "xdp_prog_steered",
                "Frames the XDP program steered to the workers.",
                true,
                0,
                s.steered,
            ));
            v.push(q(
                "xdp_prog_passed",
                "Frames the XDP program passed to the kernel.",
                true,
                0,
                s.passed,
            ));
            v.push(q("xdp_prog_no_socket", "Frames for the balancer on a queue without a worker's socket (passed, and dropped by the kernel).", true, 0, s.no_socket));
            v.push(q(
                "xdp_prog_fast_path",
                "Frames of offloaded DR flows the XDP program forwarded itself (never seen by a worker).",
                true,
                0,
                s.fast,
            ));
        }
        for s in &self.sockets {
            let _ = s.refresh_kernel_stats();
            let c = &s.counters;
            let r = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            let qn = s.queue;
            v.extend([
                q(
                    "xdp_rx_dropped",
                    "Frames the kernel dropped for the socket (XDP_STATISTICS rx_dropped).",
                    true,
                    qn,
                    r(&c.k_rx_dropped),
                ),
                q(
                    "xdp_rx_ring_full",
                    "Frames dropped because the RX ring was full (XDP_STATISTICS).",
                    true,
                    qn,
                    r(&c.k_rx_ring_full),
                ),
                q(
                    "xdp_fill_ring_empty",
                    "Times the fill ring was empty when a frame arrived (XDP_STATISTICS).",
                    true,
                    qn,
                    r(&c.k_rx_fill_ring_empty),
                ),
                q(
                    "xdp_rx_invalid_descs",
                    "Invalid RX descriptors (XDP_STATISTICS).",
                    true,
                    qn,
                    r(&c.k_rx_invalid_descs),
                ),
                q(
                    "xdp_tx_invalid_descs",
                    "Invalid TX descriptors (XDP_STATISTICS).",
                    true,
                    qn,
                    r(&c.k_tx_invalid_descs),
                ),
                q(
                    "xdp_tx_ring_empty",
                    "Times the kernel found the TX ring empty (XDP_STATISTICS).",
                    true,
                    qn,
                    r(&c.k_tx_ring_empty),
                ),
                q(
                    "xdp_fill_ring_frames",
                    "Frames lent to the kernel in the fill ring.",
                    false,
                    qn,
                    r(&c.fill_level),
                ),
                q(
                    "xdp_tx_outstanding_frames",
                    "Frames sent and not yet completed.",
                    false,
                    qn,
                    r(&c.tx_outstanding),
                ),
                q(
                    "xdp_tx_ring_full",
                    "Packets the TX ring had no room for.",
                    true,
                    qn,
                    r(&c.tx_ring_full),
                ),
                q(
                    "xdp_fill_no_frame",
                    "Times the fill ring could not be topped up for want of free frames.",
                    true,
                    qn,
                    r(&c.fill_no_frame),
                ),
                q(
                    "xdp_rx_csum_completed",
                    "Frames whose partial TCP/UDP checksum was completed.",
                    true,
                    qn,
                    r(&c.rx_csum_completed),
                ),
                q(
                    "xdp_rx_arp_copies",
                    "ARP frames read from the kernel's copy for neighbour learning.",
                    true,
                    qn,
                    r(&c.rx_arp_copies),
                ),
            ]);
        }
        v
    }
}

/// Whether the XDP fast path runs on `ifname`: as configured, or with
/// `auto` on interfaces backed by a device. A virtual one (veth) is left
/// out: the kernel delivers what an XDP program transmits on a veth only
/// when the peer runs an XDP program too, and drops it silently otherwise
/// (seen on Linux 6.18, GRO on the peer or not), which ferrovs cannot see
/// from its side. `xdp_fast_path on` asks for it there (perf/veth_pps.sh,
/// whose sink runs one).
fn fast_path_wanted(setting: Option<bool>, ifname: &str) -> bool {
    match setting {
        Some(on) => on,
        None => {
            let backed = std::path::Path::new(&format!("/sys/class/net/{ifname}/device")).exists();
            if !backed {
                info!(
                    "{ifname}: virtual interface, XDP fast path off (xdp_fast_path on turns it on)"
                );
            }
            backed
        }
    }
}

/// Opens the AF_XDP ports; the error says why when the kernel or the build
/// cannot (the caller may fall back to AF_PACKET).
pub fn open(req: &OpenRequest) -> Result<Opened<AfXdpPort>, PortError> {
    let workers = req.workers as u32;
    // Room for every connection the workers can hold (the map is allocated
    // as flows are offloaded, not up front).
    let flow_entries = req
        .settings
        .conn_table_size
        .max(1024)
        .saturating_mul(workers);
    let mut ifindexes = Vec::new();
    let mut fast_ifaces = Vec::new();
    let mut per_worker: Vec<Vec<AfXdpPort>> = (0..req.workers).map(|_| Vec::new()).collect();
    let mut programs = Vec::new();
    let mut guards = Vec::new();
    let mut infos = Vec::new();
    // A hand-over: the packet memory first, then each interface's program
    // and sockets, as the previous process left them.
    let mut adopted: Option<std::collections::VecDeque<IfaceHandover>> = match req.takeover.take() {
        Some(p) => {
            Umem::adopt(p.umem, p.frames, &p.free).map_err(|error| PortError::Open {
                iface: req.ifaces.join(","),
                error,
            })?;
            Some(p.ifaces.into())
        }
        None => None,
    };
    for i in req.ifaces {
        // The facts the southbound learned (a missing or non-Ethernet
        // interface is refused, by name).
        let iface = req.net.borrow().iface(i)?;
        let fast = fast_path_wanted(req.settings.xdp_fast_path, i);
        let opts = AfXdpOptions {
            flow_entries: if fast { flow_entries } else { 0 },
            ..AfXdpOptions::default()
        };
        if fast {
            fast_ifaces.push(i.clone());
        }
        let o = match adopted.as_mut() {
            None => AfXdpPort::open_all(&iface, req.workers, &opts),
            Some(q) => match q.pop_front() {
                Some(h) if h.ifname == *i => AfXdpPort::adopt_all(&iface, req.workers, h),
                other => Err(std::io::Error::other(format!(
                    "the previous process handed over {} here",
                    other.map_or("nothing".to_string(), |h| h.ifname)
                ))),
            },
        }
        .map_err(|error| PortError::Open {
            iface: i.clone(),
            error,
        })?;
        info!(
            "{i}: AF_XDP, XDP program {:?} mode, sockets {}",
            o.steering.mode,
            o.ports
                .iter()
                .map(|p| format!("{:?}", p.mode()))
                .collect::<Vec<_>>()
                .join(",")
        );
        infos.push(o.ports.iter().flat_map(|p| p.infos()).collect::<Vec<_>>());
        if fast {
            // Only to interfaces where the fast path was judged safe.
            ifindexes.push(iface.index);
        }
        for (w, p) in o.ports.into_iter().enumerate() {
            per_worker[w].push(p);
        }
        programs.push(o.steering);
        guards.push(o.channels);
    }
    // The fast path forwards a flow out of the interface its real server is
    // reached through, which may be another of ours (XDP_TX covers the
    // same one).
    if !fast_ifaces.is_empty() {
        for p in programs.iter_mut() {
            let own = p.ifindex;
            for &ix in ifindexes.iter().filter(|&&ix| ix != own) {
                p.allow_tx_port(ix).map_err(|error| PortError::Open {
                    iface: p.ifname.clone(),
                    error,
                })?;
            }
        }
        info!(
            "XDP fast path on {}: established DR flows arriving there are forwarded by the XDP program (up to {flow_entries} each)",
            fast_ifaces.join(", ")
        );
    }
    let steering = Arc::new(XdpSteering {
        programs: Mutex::new(programs),
        channels: Mutex::new(guards),
        sockets: infos.clone(),
    });
    let devices = req
        .ifaces
        .iter()
        .zip(infos)
        .enumerate()
        .map(|(index, (name, sockets))| {
            Arc::new(XdpDevice {
                kernel: KernelDevice::new(
                    name.clone(),
                    Some(req.net.clone()),
                    Some(req.stats.clone()),
                ),
                steering: steering.clone(),
                index,
                sockets,
            }) as Arc<dyn PortDevice>
        })
        .collect();
    let hook = steering.clone();
    Ok(Opened {
        ports: per_worker,
        kernel: Vec::new(),
        macs: None,
        devices,
        spawn: None,
        keep: vec![Box::new(steering.clone())],
        on_publish: Some(Arc::new(move |s: &Snapshot| hook.sync(s))),
        handover: Some(steering),
    })
}
