//! Virtual services and real servers as the workers see them.
//!
//! A [`Service`] is immutable once built; it lives inside a snapshot that the
//! workers pick up at a burst boundary. What must outlive a snapshot (the
//! connection counts the schedulers read, the traffic counters) sits in
//! [`DestShared`] / [`ServiceShared`] behind an `Arc` that the control plane
//! carries from one snapshot to the next for servers present in both.

use crate::sched::Scheduler;
use crate::stats::{PerWorker, TrafficCounters};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::sync::Arc;

/// Transport protocols IPVS balances here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Proto {
    Tcp = 6,
    Udp = 17,
}

impl Proto {
    pub fn from_ip(p: u8) -> Option<Proto> {
        match p {
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
        }
    }
}

/// Per real server forwarding method (ipvsadm `-g`, `-m`, `-i`; DPVS FULLNAT).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FwdMethod {
    /// Direct routing: rewrite the destination MAC only.
    Dr,
    /// Masquerading: DNAT in, SNAT back.
    Nat,
    /// DNAT and SNAT to a local address, both reversed on the reply.
    FullNat,
    /// IP-in-IP to the real server.
    Tun,
}

impl FwdMethod {
    /// The word `ipvsadm -L` prints in the Forward column.
    pub fn ipvsadm_name(self) -> &'static str {
        match self {
            FwdMethod::Dr => "Route",
            FwdMethod::Nat => "Masq",
            FwdMethod::FullNat => "FullNat",
            FwdMethod::Tun => "Tunnel",
        }
    }
    /// Whether replies come back through the director.
    pub fn sees_replies(self) -> bool {
        matches!(self, FwdMethod::Nat | FwdMethod::FullNat)
    }
}

/// Stable identity of a real server across snapshots. Connections store it
/// (4 bytes instead of a pointer) and resolve it in the snapshot's dest table,
/// which keeps removed-but-draining servers until their connections are gone.
pub type DestId = u32;
/// Stable identity of a virtual service across snapshots.
pub type ServiceId = u32;

/// State of a real server shared by every worker and every snapshot.
#[derive(Debug)]
pub struct DestShared {
    pub id: DestId,
    /// Connections in ESTABLISHED (IPVS counts only those as active).
    pub activeconns: AtomicU32,
    /// Every other connection state.
    pub inactconns: AtomicU32,
    /// Persistence templates pointing at this server.
    pub persistconns: AtomicU32,
    /// IPVS `IP_VS_DEST_F_OVERLOAD`: set at the upper threshold, cleared at the
    /// lower one.
    overloaded: AtomicBool,
    pub stats: PerWorker<TrafficCounters>,
    /// An IPv4 service's TUN server that is IPv6 (IPVS's IPv4-in-IPv6
    /// tunnel to a server of the other family): its address, which the
    /// 4-byte `Dest::addr` and `Conn::daddr` only stand for (folded).
    pub tunnel6: Option<Ipv6Addr>,
}

impl DestShared {
    pub fn new(id: DestId, workers: usize) -> Arc<DestShared> {
        Self::with_tunnel6(id, workers, None)
    }

    /// A server reached as [`DestShared::tunnel6`] says.
    pub fn with_tunnel6(id: DestId, workers: usize, tunnel6: Option<Ipv6Addr>) -> Arc<DestShared> {
        Arc::new(DestShared {
            id,
            activeconns: AtomicU32::new(0),
            inactconns: AtomicU32::new(0),
            persistconns: AtomicU32::new(0),
            overloaded: AtomicBool::new(false),
            stats: PerWorker::new(workers),
            tunnel6,
        })
    }
    #[inline]
    pub fn active(&self) -> u32 {
        self.activeconns.load(Relaxed)
    }
    #[inline]
    pub fn inactive(&self) -> u32 {
        self.inactconns.load(Relaxed)
    }
    #[inline]
    pub fn is_overloaded(&self) -> bool {
        self.overloaded.load(Relaxed)
    }
    /// A connection moved between ESTABLISHED and the other states (IPVS
    /// `set_tcp_state` moving it between ActiveConn and InActConn).
    pub fn conn_became(&self, active: bool) {
        let (to, from) = if active {
            (&self.activeconns, &self.inactconns)
        } else {
            (&self.inactconns, &self.activeconns)
        };
        to.fetch_add(1, Relaxed);
        dec(from);
    }

    /// A persistence template pointing here went away.
    pub fn persist_released(&self) {
        dec(&self.persistconns);
    }

    /// Connections that reference this server, templates included; a removed
    /// server may be forgotten once this reaches zero.
    pub fn refs(&self) -> u32 {
        self.active() + self.inactive() + self.persistconns.load(Relaxed)
    }
}

/// Decrements, saturating rather than wrapping if a counter was reset under
/// us.
fn dec(c: &AtomicU32) {
    let _ = c.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(1)));
}

/// A real server inside a service.
#[derive(Clone, Debug)]
pub struct Dest {
    pub addr: Ipv4Addr,
    pub port: u16,
    /// 0 = quiesced: no new connections, existing ones continue.
    pub weight: u32,
    pub fwd: FwdMethod,
    /// `-x`: 0 = no limit.
    pub u_threshold: u32,
    /// `-y`: 0 = clear at ¾ of the upper threshold.
    pub l_threshold: u32,
    pub shared: Arc<DestShared>,
}

impl Dest {
    /// IPVS `ip_vs_dest_conn_overhead`: active connections weigh 256 times
    /// an inactive one.
    #[inline]
    pub fn overhead(&self) -> u64 {
        ((self.shared.active() as u64) << 8) + self.shared.inactive() as u64
    }
    /// Schedulers skip quiesced and overloaded servers.
    #[inline]
    pub fn is_available(&self) -> bool {
        self.weight > 0 && !self.shared.is_overloaded()
    }
    pub fn total_conns(&self) -> u32 {
        self.shared.active() + self.shared.inactive()
    }

    /// A connection was bound to this server (IPVS `ip_vs_bind_dest`).
    pub fn bind_conn(&self, active: bool) {
        if active {
            self.shared.activeconns.fetch_add(1, Relaxed);
        } else {
            self.shared.inactconns.fetch_add(1, Relaxed);
        }
        if self.u_threshold > 0 && self.total_conns() >= self.u_threshold {
            self.shared.overloaded.store(true, Relaxed);
        }
    }

    /// A connection left this server (IPVS `ip_vs_unbind_dest`).
    pub fn unbind_conn(&self, active: bool) {
        let c = if active {
            &self.shared.activeconns
        } else {
            &self.shared.inactconns
        };
        dec(c);
        self.recheck_overload();
    }

    /// Clears the overload flag under the lower threshold, or under ¾ of the
    /// upper one when no lower threshold is set (IPVS semantics). Also clears
    /// it when thresholds were removed by an edit.
    pub fn recheck_overload(&self) {
        if !self.shared.is_overloaded() {
            return;
        }
        let total = self.total_conns();
        let clear = if self.u_threshold == 0 {
            true
        } else if self.l_threshold > 0 {
            total < self.l_threshold
        } else {
            total * 4 <= self.u_threshold * 3
        };
        if clear {
            self.shared.overloaded.store(false, Relaxed);
        }
    }
}

/// Counters of a virtual service.
#[derive(Debug)]
pub struct ServiceShared {
    pub id: ServiceId,
    pub stats: PerWorker<TrafficCounters>,
}

impl ServiceShared {
    pub fn new(id: ServiceId, workers: usize) -> Arc<ServiceShared> {
        Arc::new(ServiceShared {
            id,
            stats: PerWorker::new(workers),
        })
    }
}

/// `-p timeout -M netmask`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Persistence {
    pub timeout_s: u32,
    pub netmask: Ipv4Addr,
}

/// A virtual service keyed by (protocol, VIP, port). Port 0 means every port
/// and requires persistence, as in IPVS.
#[derive(Debug)]
pub struct Service {
    pub proto: Proto,
    pub vaddr: Ipv4Addr,
    pub vport: u16,
    pub sched: Scheduler,
    pub persistence: Option<Persistence>,
    pub dests: Vec<Dest>,
    /// FULLNAT local addresses (DPVS `local_address_group`).
    pub laddrs: Vec<Ipv4Addr>,
    /// DPVS `syn_proxy` / ipvsadm `-j enable`: TCP handshakes are answered
    /// with SYN cookies by the director (`fwd/synproxy.rs`). NAT and
    /// FULLNAT only (the configuration refuses it for DR and TUN).
    pub synproxy: bool,
    pub shared: Arc<ServiceShared>,
}

impl Service {
    pub fn id(&self) -> ServiceId {
        self.shared.id
    }
}

/// IPv6 `-p timeout -M prefix`: ipvsadm takes the granularity of an IPv6
/// service as a prefix length (`-M 64`), where IPv4 takes a netmask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Persistence6 {
    pub timeout_s: u32,
    /// 0..=128; clients whose addresses share this many leading bits share
    /// a template.
    pub prefix_len: u8,
}

impl Persistence6 {
    /// `caddr` with the bits past the prefix cleared.
    #[inline]
    pub fn mask(&self, caddr: &[u8; 16]) -> [u8; 16] {
        let len = self.prefix_len.min(128) as u32;
        let m = if len == 0 {
            0
        } else {
            u128::MAX << (128 - len)
        };
        (u128::from_be_bytes(*caddr) & m).to_be_bytes()
    }
}

/// A real server of an IPv6 service: IPv6 for DR, NAT66, TUN and FULLNAT66;
/// IPv4 for NAT64 (FULLNAT with IPv4 local addresses).
#[derive(Clone, Debug)]
pub struct RealServer6 {
    pub addr: IpAddr,
    pub port: u16,
    pub weight: u32,
    pub fwd: FwdMethod,
    pub u_threshold: u32,
    pub l_threshold: u32,
    pub shared: Arc<DestShared>,
}

/// An IPv6 virtual service, beside the IPv4 [`Service`] rather than merged
/// into it: IPv4's types, and the 64-byte connection entry built from them,
/// stay as they are (issue 15 asks to keep that entry), and the control
/// plane's IPv4 code is untouched.
///
/// The schedulers take a `&[Dest]`, so the servers are kept twice, in the
/// same order: `dests` for scheduling and counting, where `Dest::addr` is
/// the address folded to 32 bits as IPVS folds an IPv6 address for its
/// hashing schedulers (`sched::fold_v6`; an IPv4 server keeps its own), and
/// `addrs` with the real addresses. Build it with [`Service6::new`], which
/// keeps the two in step.
#[derive(Debug)]
pub struct Service6 {
    pub proto: Proto,
    pub vaddr: Ipv6Addr,
    pub vport: u16,
    pub sched: Scheduler,
    pub persistence: Option<Persistence6>,
    pub dests: Vec<Dest>,
    pub addrs: Vec<IpAddr>,
    /// FULLNAT local addresses: IPv6 ones for FULLNAT66, IPv4 ones for
    /// NAT64 (an IPv6 VIP in front of IPv4 servers, as DPVS does it).
    pub laddrs6: Vec<Ipv6Addr>,
    pub laddrs4: Vec<Ipv4Addr>,
    /// [`Service::synproxy`] for an IPv6 VIP: NAT66, FULLNAT66 and NAT64
    /// (`fwd/synproxy.rs`). [`Service6::new`] leaves it off.
    pub synproxy: bool,
    pub shared: Arc<ServiceShared>,
}

impl Service6 {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        proto: Proto,
        vaddr: Ipv6Addr,
        vport: u16,
        kind: crate::sched::SchedKind,
        flags: crate::sched::SchedFlags,
        persistence: Option<Persistence6>,
        servers: Vec<RealServer6>,
        laddrs: Vec<IpAddr>,
        shared: Arc<ServiceShared>,
    ) -> Service6 {
        let dests: Vec<Dest> = servers
            .iter()
            .map(|s| Dest {
                addr: match s.addr {
                    IpAddr::V4(a) => a,
                    IpAddr::V6(a) => crate::sched::fold_v6(&a.octets()),
                },
                port: s.port,
                weight: s.weight,
                fwd: s.fwd,
                u_threshold: s.u_threshold,
                l_threshold: s.l_threshold,
                shared: s.shared.clone(),
            })
            .collect();
        let sched = Scheduler::new(kind, flags, &dests);
        Service6 {
            proto,
            vaddr,
            vport,
            sched,
            persistence,
            dests,
            addrs: servers.iter().map(|s| s.addr).collect(),
            laddrs6: laddrs
                .iter()
                .filter_map(|a| match a {
                    IpAddr::V6(a) => Some(*a),
                    IpAddr::V4(_) => None,
                })
                .collect(),
            laddrs4: laddrs
                .iter()
                .filter_map(|a| match a {
                    IpAddr::V4(a) => Some(*a),
                    IpAddr::V6(_) => None,
                })
                .collect(),
            synproxy: false,
            shared,
        }
    }

    pub fn id(&self) -> ServiceId {
        self.shared.id
    }
}
