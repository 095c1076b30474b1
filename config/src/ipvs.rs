//! A neutral IPVS rule model (what `ipvsadm -A/-a` installs), and the rules
//! keepalived installs for a configuration right after loading it.

use crate::model::*;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// Forwarding method of one destination, as ipvsadm names them.
#[cfg(test)]
mod tests {
    #[test]
    fn fullnat_needs_a_local_address_and_nothing_else_does() {
        use super::{check_local_addresses, NoLocalAddresses};
        assert_eq!(check_local_addresses(true, 0), Err(NoLocalAddresses));
        assert_eq!(check_local_addresses(true, 1), Ok(()));
        assert_eq!(check_local_addresses(false, 0), Ok(()));
        assert_eq!(
            NoLocalAddresses.to_string(),
            "FULLNAT needs local addresses (local_address_group)"
        );
    }

    #[test]
    fn ipv6_text_follows_inet_ntop() {
        let t = |s: &str| super::addr_port(s.parse().unwrap(), 80);
        assert_eq!(t("::1.2.3.4"), "[::1.2.3.4]:80");
        assert_eq!(t("::ffff:1.2.3.4"), "[::ffff:1.2.3.4]:80");
        assert_eq!(t("::1"), "[::1]:80");
        assert_eq!(t("::"), "[::]:80");
        assert_eq!(t("2001:db8:0:0:1:0:0:1"), "[2001:db8::1:0:0:1]:80");
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Fwd {
    Masq,
    Local,
    Tunnel,
    Route,
    FullNat,
}

impl Fwd {
    /// The Forward column of `ipvsadm -L`.
    pub fn name(self) -> &'static str {
        match self {
            Fwd::Masq => "Masq",
            Fwd::Local => "Local",
            Fwd::Tunnel => "Tunnel",
            Fwd::Route => "Route",
            Fwd::FullNat => "FullNat",
        }
    }
    /// The switch `ipvsadm -S` writes.
    pub fn switch(self) -> &'static str {
        match self {
            Fwd::Masq => "-m",
            Fwd::Tunnel => "-i",
            Fwd::Local | Fwd::Route => "-g",
            Fwd::FullNat => "--fullnat",
        }
    }
    pub fn from_lb_kind(k: LbKind) -> Fwd {
        match k {
            LbKind::Dr => Fwd::Route,
            LbKind::Nat => Fwd::Masq,
            LbKind::Tun => Fwd::Tunnel,
            LbKind::FullNat => Fwd::FullNat,
        }
    }
    pub fn lb_kind(self) -> LbKind {
        match self {
            Fwd::Masq => LbKind::Nat,
            Fwd::Tunnel => LbKind::Tun,
            Fwd::Local | Fwd::Route => LbKind::Dr,
            Fwd::FullNat => LbKind::FullNat,
        }
    }
}

/// What identifies a virtual service.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ServiceKey {
    Addr {
        proto: Protocol,
        addr: IpAddr,
        port: u16,
    },
    Fwmark {
        mark: u32,
        v6: bool,
    },
}

impl ServiceKey {
    pub fn is_v6(&self) -> bool {
        match self {
            ServiceKey::Addr { addr, .. } => addr.is_ipv6(),
            ServiceKey::Fwmark { v6, .. } => *v6,
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Addr { proto, addr, port } => {
                write!(f, "{} {}", proto.name(), addr_port(*addr, *port))
            }
            ServiceKey::Fwmark { mark, v6: false } => write!(f, "FWM {mark}"),
            ServiceKey::Fwmark { mark, v6: true } => write!(f, "FWM {mark} IPv6"),
        }
    }
}

/// `a.b.c.d:port` or `[v6]:port`, as ipvsadm prints them.
pub fn addr_port(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{}]:{port}", ntop6(&a)),
    }
}

/// IPv6 text as glibc's inet_ntop writes it; differs from Rust's Display
/// only for IPv4-compatible addresses (`::a.b.c.d`), which glibc writes
/// with a dotted quad.
pub fn ntop6(a: &std::net::Ipv6Addr) -> String {
    let w = a.segments();
    if w[..6] == [0; 6] && w[6] != 0 {
        let o = a.octets();
        return format!("::{}.{}.{}.{}", o[12], o[13], o[14], o[15]);
    }
    a.to_string()
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Dest {
    pub addr: IpAddr,
    pub port: u16,
    pub fwd: Fwd,
    /// ipvsadm allows 0..=65535 (printed with %d).
    pub weight: i32,
    pub u_threshold: u32,
    pub l_threshold: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Service {
    pub key: ServiceKey,
    pub scheduler: Scheduler,
    pub sched_flags: SchedFlags,
    pub persistence: Option<Persistence>,
    /// Persistence engine (`--pe`).
    pub pe_name: Option<String>,
    /// One-packet scheduling (`-o`).
    pub ops: bool,
    /// DPVS SYN proxy (`-j enable`, keepalived `syn_proxy`).
    #[serde(default)]
    pub synproxy: bool,
    pub dests: Vec<Dest>,
}

impl Service {
    pub fn new(key: ServiceKey) -> Service {
        Service {
            key,
            scheduler: Scheduler::Wlc,
            sched_flags: SchedFlags::default(),
            persistence: None,
            pe_name: None,
            ops: false,
            synproxy: false,
            dests: Vec::new(),
        }
    }
}

impl Service {
    /// Whether any of its servers is reached by FULLNAT.
    pub fn forwards_by_fullnat(&self) -> bool {
        self.dests.iter().any(|d| d.fwd == Fwd::FullNat)
    }
}

/// A service forwarding by FULLNAT without a local address to put in
/// place of the client's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("FULLNAT needs local addresses (local_address_group)")]
pub struct NoLocalAddresses;

/// FULLNAT's rule: forwarding by FULLNAT replaces the client's address
/// with one of the director's local addresses, so whatever forwards by
/// FULLNAT needs at least one. Stated here once: the configuration check
/// (`validate`) asks it of every virtual_server, the control plane of
/// every service before it publishes a snapshot (an administrator's
/// `--fullnat` server too); the dataplane takes the control plane's word.
pub fn check_local_addresses(
    forwards_by_fullnat: bool,
    local_addresses: usize,
) -> Result<(), NoLocalAddresses> {
    if forwards_by_fullnat && local_addresses == 0 {
        Err(NoLocalAddresses)
    } else {
        Ok(())
    }
}

/// A whole IPVS table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub services: Vec<Service>,
}

impl Table {
    pub fn find(&self, key: &ServiceKey) -> Option<&Service> {
        self.services.iter().find(|s| &s.key == key)
    }
    pub fn find_mut(&mut self, key: &ServiceKey) -> Option<&mut Service> {
        self.services.iter_mut().find(|s| &s.key == key)
    }
}

/// The address family (true = IPv6) the servers of a fwmark or group
/// service give it: that of the first server that is not tunnelled (the
/// sorry server counts too); None when there is none.
pub fn service_family_v6(vs: &VirtualServer) -> Option<bool> {
    vs.real_servers
        .iter()
        .filter(|r| r.fwd != LbKind::Tun)
        .map(|r| r.addr.is_ipv6())
        .chain(
            vs.sorry_server
                .iter()
                .filter(|s| s.fwd != LbKind::Tun)
                .map(|s| s.addr.is_ipv6()),
        )
        .next()
        .or_else(|| vs.real_servers.first().map(|r| r.addr.is_ipv6()))
}

/// The IPVS services one `virtual_server` stands for (a group expands to
/// one per address and fwmark entry).
pub fn service_keys(cfg: &Config, vs: &VirtualServer) -> Vec<ServiceKey> {
    let v6_from_rs = || service_family_v6(vs).unwrap_or(false);
    match &vs.address {
        VsAddress::Addr { addr, port } => vec![ServiceKey::Addr {
            proto: vs.protocol,
            addr: *addr,
            port: *port,
        }],
        VsAddress::Fwmark(m) => vec![ServiceKey::Fwmark {
            mark: *m,
            v6: v6_from_rs(),
        }],
        VsAddress::Group(name) => {
            let Some(g) = cfg.virtual_server_group(name) else {
                return Vec::new();
            };
            let mut out = Vec::new();
            for e in &g.entries {
                match e {
                    VsgEntry::Range { first, last, port } => {
                        for a in addr_range(*first, *last) {
                            out.push(ServiceKey::Addr {
                                proto: vs.protocol,
                                addr: a,
                                port: *port,
                            });
                        }
                    }
                    VsgEntry::Fwmark(m) => out.push(ServiceKey::Fwmark {
                        mark: *m,
                        v6: v6_from_rs(),
                    }),
                }
            }
            out
        }
    }
}

/// Destination port for a real server of `key`: only NAT and FULLNAT map
/// ports (ipvsadm forces the service port for -g and -i).
pub fn dest_port(key: &ServiceKey, rs_port: u16, kind: LbKind) -> u16 {
    let remaps = matches!(kind, LbKind::Nat | LbKind::FullNat);
    match key {
        ServiceKey::Addr { port, .. } => {
            if rs_port == 0 || !remaps {
                *port
            } else {
                rs_port
            }
        }
        ServiceKey::Fwmark { .. } => {
            if remaps {
                rs_port
            } else {
                0
            }
        }
    }
}

/// The table keepalived installs right after loading `cfg`: real servers
/// that start alive (no `alpha` checker) with their weight, failed ones with
/// weight 0 when `inhibit_on_failure`, and the sorry server when the live
/// weight is below the quorum.
pub fn initial_table(cfg: &Config) -> Table {
    let mut t = Table::default();
    for vs in &cfg.virtual_servers {
        for key in service_keys(cfg, vs) {
            if t.find(&key).is_some() {
                continue; // duplicate: validation reports it
            }
            let mut svc = Service::new(key.clone());
            svc.scheduler = vs.scheduler.name;
            svc.sched_flags = vs.scheduler.flags;
            svc.persistence = vs.persistence;
            if let (Some(p), ServiceKey::Addr { addr, .. }) = (&mut svc.persistence, &key) {
                // Group entries may mix families with the granularity given.
                match (addr, p.granularity) {
                    (IpAddr::V6(_), Netmask::V4(_)) => p.granularity = Netmask::V6(128),
                    (IpAddr::V4(_), Netmask::V6(_)) => {
                        p.granularity = Netmask::V4([255, 255, 255, 255].into())
                    }
                    _ => {}
                }
            }
            svc.pe_name = vs.persistence_engine.clone();
            svc.ops = vs.ops;
            svc.synproxy = vs.syn_proxy;
            let mut live_weight: u64 = 0;
            // (dest, alive, inhibit)
            let mut dests: Vec<(Dest, bool, bool)> = Vec::new();
            for rs in &vs.real_servers {
                let port = dest_port(&key, rs.port, rs.fwd);
                if dests
                    .iter()
                    .any(|(d, _, _)| d.addr == rs.addr && d.port == port)
                {
                    // Two servers that end up the same destination for this
                    // entry (e.g. a group's port): IPVS keeps the first.
                    continue;
                }
                let alive = rs.initially_alive();
                if alive {
                    live_weight += rs.weight as u64;
                } else if !rs.inhibit_on_failure {
                    continue;
                }
                dests.push((
                    Dest {
                        addr: rs.addr,
                        port,
                        fwd: Fwd::from_lb_kind(rs.fwd),
                        weight: if alive { rs.weight as i32 } else { 0 },
                        u_threshold: rs.uthreshold,
                        l_threshold: rs.lthreshold,
                    },
                    alive,
                    rs.inhibit_on_failure,
                ));
            }
            // keepalived starts with the quorum down when the live weight is
            // zero or below quorum + hysteresis.
            let quorum_up =
                live_weight > 0 && live_weight >= vs.quorum as u64 + vs.hysteresis as u64;
            let sorry = vs.sorry_server.as_ref().map(|ss| Dest {
                addr: ss.addr,
                port: dest_port(&key, ss.port, ss.fwd),
                fwd: Fwd::from_lb_kind(ss.fwd),
                weight: 1,
                u_threshold: 0,
                l_threshold: 0,
            });
            let sorry_dup = sorry.as_ref().is_some_and(|s| {
                dests
                    .iter()
                    .any(|(d, _, _)| d.addr == s.addr && d.port == s.port)
            });
            match (&sorry, quorum_up) {
                (Some(s), false) => {
                    // The sorry server takes over; live servers leave the pool
                    // (inhibited ones stay with weight 0).
                    for (d, alive, inhibit) in dests {
                        if !alive || inhibit {
                            svc.dests.push(Dest { weight: 0, ..d });
                        }
                    }
                    if let Some(d) = svc
                        .dests
                        .iter_mut()
                        .find(|d| d.addr == s.addr && d.port == s.port)
                    {
                        d.weight = s.weight;
                    } else {
                        svc.dests.push(s.clone());
                    }
                }
                (Some(s), true) => {
                    svc.dests.extend(dests.into_iter().map(|(d, _, _)| d));
                    if vs.sorry_server.as_ref().is_some_and(|ss| ss.inhibit) && !sorry_dup {
                        svc.dests.push(Dest {
                            weight: 0,
                            ..s.clone()
                        });
                    }
                }
                (None, _) => svc.dests.extend(dests.into_iter().map(|(d, _, _)| d)),
            }
            t.services.push(svc);
        }
    }
    t
}
