//! The running IPVS state: the rule table that `ferrovsadm` lists and edits,
//! and what ties it to the dataplane: stable ids for services and real
//! servers, their shared counters, and servers that left the table but still
//! carry connections (they drain, as IPVS keeps removed destinations in its
//! trash until their connections are gone).

use crate::rate::RateEstimator;
use ferrovs_config::ipvs::{
    check_local_addresses, Fwd, NoLocalAddresses, Service as CfgService, ServiceKey, Table,
};
use ferrovs_config::ipvsadm::list::{ListedDest, ListedService, Listing, Stats};
use ferrovs_config::ipvsadm::TableError;
use ferrovs_config::model::{Netmask, Protocol, Scheduler as CfgScheduler};
use ferrovs_dataplane::conn::template::TemplateTable;
use ferrovs_dataplane::conn::Timeouts;
use ferrovs_dataplane::route::{Route, Route6};
use ferrovs_dataplane::sched::{SchedFlags, SchedKind, Scheduler};
use ferrovs_dataplane::service::{
    Dest, DestShared, FwdMethod, Persistence, Persistence6, Proto, RealServer6, Service, Service6,
    ServiceShared,
};
use ferrovs_dataplane::snapshot::{BuildError, PortConf, Snapshot, SnapshotBuilder};
use ferrovs_dataplane::stats::TrafficTotals;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

type DestKey = (ServiceKey, IpAddr, u16);

/// A real server removed from the table whose connections still run.
#[derive(Clone)]
struct Draining {
    key: DestKey,
    dest: Dest,
    svc: Arc<ServiceShared>,
}

/// The network the dataplane forwards on: its ports and routes, and the
/// ports' IPv6 addresses (by port index) and IPv6 gateway routes.
#[derive(Clone, Debug, Default)]
pub struct Net {
    pub ports: Vec<PortConf>,
    pub routes: Vec<Route>,
    pub addrs6: Vec<Vec<(Ipv6Addr, u8)>>,
    pub routes6: Vec<Route6>,
}

#[derive(Clone)]
pub struct IpvsState {
    pub table: Table,
    pub timeouts: Timeouts,
    /// FULLNAT local addresses per service (from `laddr_group_name`): IPv4
    /// ones for IPv4 servers (NAT64 too), IPv6 ones for IPv6 servers.
    pub laddrs: HashMap<ServiceKey, Vec<IpAddr>>,
    svc_shared: HashMap<ServiceKey, Arc<ServiceShared>>,
    dest_shared: HashMap<DestKey, Arc<DestShared>>,
    draining: Vec<Draining>,
    next_id: u32,
    workers: usize,
    pub templates: Arc<TemplateTable>,
    /// IPv6 services' templates (a table of 48-byte slots of its own).
    pub templates6: Arc<TemplateTable>,
    pub rates: RateEstimator,
    /// The `size=` of the listing header.
    pub table_size: u32,
    /// `sloppy_tcp` of the ferrovs block.
    pub sloppy_tcp: bool,
}

/// What the dataplane cannot forward by, in the words `ferrovsadm` and the
/// reload log have always used (ipvsadm's where it has some).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unforwardable {
    #[error("Protocol or address family not supported")]
    Family,
    #[error("Invalid argument: a port-0 service needs persistence")]
    PortZeroWithoutPersistence,
    #[error("local forwarding is not supported")]
    LocalForwarding,
    #[error(transparent)]
    NoLocalAddresses(#[from] NoLocalAddresses),
    #[error("SYN proxy needs masquerading or fullnat servers (-m, --fullnat): replies bypass the director with -g and -i")]
    SynproxyBypassed,
    /// The table and the ids the state keeps for it disagree (a bug).
    #[error("internal: service without id")]
    ServiceWithoutId,
    #[error("internal: server without id")]
    ServerWithoutId,
    /// The dataplane's own refusal of the snapshot.
    #[error(transparent)]
    Snapshot(#[from] BuildError),
}

/// Converts ipvsadm's forwarding method; `Local` (the director itself as a
/// real server) has no meaning for a userspace director.
fn fwd_method(f: Fwd) -> Result<FwdMethod, Unforwardable> {
    match f {
        Fwd::Route => Ok(FwdMethod::Dr),
        Fwd::Masq => Ok(FwdMethod::Nat),
        Fwd::Tunnel => Ok(FwdMethod::Tun),
        Fwd::FullNat => Ok(FwdMethod::FullNat),
        Fwd::Local => Err(Unforwardable::LocalForwarding),
    }
}

/// The dataplane's scheduler for the configured one (every IPVS scheduler
/// has one).
fn sched_kind(s: CfgScheduler) -> SchedKind {
    match s {
        CfgScheduler::Rr => SchedKind::Rr,
        CfgScheduler::Wrr => SchedKind::Wrr,
        CfgScheduler::Lc => SchedKind::Lc,
        CfgScheduler::Wlc => SchedKind::Wlc,
        CfgScheduler::Lblc => SchedKind::Lblc,
        CfgScheduler::Lblcr => SchedKind::Lblcr,
        CfgScheduler::Dh => SchedKind::Dh,
        CfgScheduler::Sh => SchedKind::Sh,
        CfgScheduler::Sed => SchedKind::Sed,
        CfgScheduler::Nq => SchedKind::Nq,
        CfgScheduler::Fo => SchedKind::Fo,
        CfgScheduler::Ovf => SchedKind::Ovf,
        CfgScheduler::Mh => SchedKind::Mh,
        CfgScheduler::Twos => SchedKind::Twos,
    }
}

/// The scheduler flags, keepalived's names (`sh-port`, `mh-fallback`)
/// being IPVS's flag 1 and 2.
fn sched_flags(s: &CfgService) -> SchedFlags {
    let f = s.sched_flags;
    SchedFlags {
        flag1: f.flag1 || f.sh_fallback || f.mh_fallback,
        flag2: f.flag2 || f.sh_port || f.mh_port,
        flag3: f.flag3,
    }
}

fn totals_to_stats(t: TrafficTotals) -> Stats {
    Stats {
        conns: t.conns,
        inpkts: t.inpkts,
        outpkts: t.outpkts,
        inbytes: t.inbytes,
        outbytes: t.outbytes,
        ..Stats::default()
    }
}

/// The parts of a service key the IPv4 dataplane handles.
pub fn v4_key(k: &ServiceKey) -> Option<(Proto, Ipv4Addr, u16)> {
    match k {
        ServiceKey::Addr {
            proto,
            addr: IpAddr::V4(a),
            port,
        } => {
            let p = match proto {
                Protocol::Tcp => Proto::Tcp,
                Protocol::Udp => Proto::Udp,
                Protocol::Sctp => return None,
            };
            Some((p, *a, *port))
        }
        _ => None,
    }
}

impl IpvsState {
    pub fn new(workers: usize, templates: Arc<TemplateTable>, table_size: u32) -> IpvsState {
        IpvsState {
            table: Table::default(),
            timeouts: Timeouts::default(),
            laddrs: HashMap::new(),
            svc_shared: HashMap::new(),
            dest_shared: HashMap::new(),
            draining: Vec::new(),
            next_id: 1,
            workers: workers.max(1),
            templates,
            templates6: Arc::new(TemplateTable::new_v6(64)),
            rates: RateEstimator::default(),
            table_size,
            sloppy_tcp: false,
        }
    }

    /// How many workers the state's counters have cells for.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Replaces the whole table (configuration load) and syncs identities:
    /// servers present before and after keep their counters and connections.
    pub fn replace_table(&mut self, t: Table) {
        self.table = t;
        self.sync();
    }

    /// Gives every service and server of the table its shared state, and
    /// moves servers that left it to the draining list.
    fn sync(&mut self) {
        let mut svc_keep = HashMap::new();
        let mut dest_keep = HashMap::new();
        for s in &self.table.services {
            let svc = match self.svc_shared.remove(&s.key) {
                Some(x) => x,
                None => {
                    self.next_id += 1;
                    ServiceShared::new(self.next_id, self.workers)
                }
            };
            for d in &s.dests {
                let k = (s.key.clone(), d.addr, d.port);
                let ds = match self.dest_shared.remove(&k) {
                    Some(x) => x,
                    // A server that comes back while draining picks up its
                    // counters and connections (IPVS takes it out of its trash).
                    None => match self.draining.iter().position(|x| x.key == k) {
                        Some(i) => self.draining.swap_remove(i).dest.shared,
                        None => {
                            self.next_id += 1;
                            // An IPv4 service's IPv6 server: the tunnel's
                            // address rides with its identity.
                            let tunnel6 = match (&s.key, d.addr) {
                                (
                                    ServiceKey::Addr {
                                        addr: IpAddr::V4(_),
                                        ..
                                    },
                                    IpAddr::V6(a),
                                ) => Some(a),
                                _ => None,
                            };
                            DestShared::with_tunnel6(self.next_id, self.workers, tunnel6)
                        }
                    },
                };
                dest_keep.insert(k, ds);
            }
            svc_keep.insert(s.key.clone(), svc);
        }
        // What is left was removed: drain servers that still hold connections.
        for ((key, addr, port), ds) in std::mem::take(&mut self.dest_shared) {
            if ds.refs() == 0 {
                continue;
            }
            let svc = svc_keep
                .get(&key)
                .or_else(|| self.svc_shared.get(&key))
                .cloned()
                .unwrap_or_else(|| ServiceShared::new(0, self.workers));
            if let IpAddr::V4(a) = addr {
                self.draining.push(Draining {
                    key: (key.clone(), addr, port),
                    dest: Dest {
                        addr: a,
                        port,
                        weight: 0,
                        fwd: FwdMethod::Dr,
                        u_threshold: 0,
                        l_threshold: 0,
                        shared: ds,
                    },
                    svc,
                });
            }
        }
        self.svc_shared = svc_keep;
        self.dest_shared = dest_keep;
    }

    /// Forgets drained servers whose last connection is gone. Returns how
    /// many went.
    pub fn reap_draining(&mut self) -> usize {
        let before = self.draining.len();
        self.draining.retain(|d| d.dest.shared.refs() > 0);
        before - self.draining.len()
    }

    pub fn draining_count(&self) -> usize {
        self.draining.len()
    }

    /// `-Z`: zero the counters of one service (and its servers) or all.
    pub fn zero(&mut self, key: Option<&ServiceKey>) -> Result<(), TableError> {
        if let Some(k) = key {
            if self.table.find(k).is_none() {
                return Err(TableError::NoSuchService);
            }
        }
        for (k, s) in &self.svc_shared {
            if key.is_none_or(|x| x == k) {
                s.stats.reset();
            }
        }
        for ((k, _, _), d) in &self.dest_shared {
            if key.is_none_or(|x| x == k) {
                d.stats.reset();
            }
        }
        self.rates.reset();
        Ok(())
    }

    /// Builds the dataplane snapshot: the table's TCP/UDP services (IPv4
    /// and IPv6), draining servers, the network, and the addresses VRRP
    /// manages with whether this director holds them.
    pub fn build(
        &self,
        generation: u64,
        net: &Net,
        vrrp: &[(IpAddr, bool)],
    ) -> Result<Snapshot, Unforwardable> {
        let mut b = SnapshotBuilder::new(generation, self.workers, self.templates.clone());
        b.timeouts(self.timeouts);
        b.sloppy_tcp(self.sloppy_tcp);
        for p in &net.ports {
            b.port(p.clone());
        }
        for r in &net.routes {
            b.route(*r);
        }
        for (i, a) in net.addrs6.iter().enumerate() {
            b.port_addrs6(i as u16, a.clone());
        }
        for r in &net.routes6 {
            b.route6(*r);
        }
        b.templates6(self.templates6.clone());
        for &(a, active) in vrrp {
            match a {
                IpAddr::V4(a) => b.vrrp_vip(a, active),
                IpAddr::V6(a) => b.vrrp_vip6(a, active),
            };
        }
        for s in &self.table.services {
            if !carried_key(&s.key) {
                continue;
            }
            let laddrs = self.laddrs.get(&s.key).map_or(&[][..], Vec::as_slice);
            check_service(s, laddrs)?;
            let Some((proto, vaddr, vport)) = v4_key(&s.key) else {
                if let Some(svc) = self.service6(s, laddrs)? {
                    b.service6(svc);
                }
                continue;
            };
            let svc_shared = self
                .svc_shared
                .get(&s.key)
                .cloned()
                .ok_or(Unforwardable::ServiceWithoutId)?;
            let mut dests = Vec::with_capacity(s.dests.len());
            for d in &s.dests {
                // An IPv6 server (a tunnel, checked above) stands in the
                // IPv4 tables as its folded address; its own is in
                // `DestShared::tunnel6`.
                let addr = match d.addr {
                    IpAddr::V4(a) => a,
                    IpAddr::V6(a) => ferrovs_dataplane::sched::fold_v6(&a.octets()),
                };
                let shared = self
                    .dest_shared
                    .get(&(s.key.clone(), d.addr, d.port))
                    .cloned()
                    .ok_or(Unforwardable::ServerWithoutId)?;
                dests.push(Dest {
                    addr,
                    port: d.port,
                    weight: d.weight.max(0) as u32,
                    fwd: fwd_method(d.fwd)?,
                    u_threshold: d.u_threshold,
                    l_threshold: d.l_threshold,
                    shared,
                });
            }
            let kind = sched_kind(s.scheduler);
            let flags = sched_flags(s);
            let persistence = s.persistence.map(|p| Persistence {
                timeout_s: p.timeout,
                netmask: match p.granularity {
                    Netmask::V4(m) => m,
                    Netmask::V6(_) => Ipv4Addr::BROADCAST,
                },
            });
            b.service(Service {
                proto,
                vaddr,
                vport,
                sched: Scheduler::new(kind, flags, &dests),
                persistence,
                dests,
                laddrs: laddrs
                    .iter()
                    .filter_map(|a| match a {
                        IpAddr::V4(a) => Some(*a),
                        IpAddr::V6(_) => None,
                    })
                    .collect(),
                synproxy: s.synproxy,
                shared: svc_shared,
            });
        }
        for d in &self.draining {
            b.draining(d.dest.clone(), d.svc.clone());
        }
        Ok(b.build()?)
    }

    /// The dataplane's IPv6 service for an IPv6 one of the table (None for
    /// a key it does not forward by: fwmark). Checked by `check_service`.
    fn service6(
        &self,
        s: &CfgService,
        laddrs: &[IpAddr],
    ) -> Result<Option<Service6>, Unforwardable> {
        let ServiceKey::Addr {
            proto,
            addr: IpAddr::V6(vaddr),
            port,
        } = &s.key
        else {
            return Ok(None);
        };
        let proto = match proto {
            Protocol::Tcp => Proto::Tcp,
            Protocol::Udp => Proto::Udp,
            Protocol::Sctp => return Err(Unforwardable::Family),
        };
        let shared = self
            .svc_shared
            .get(&s.key)
            .cloned()
            .ok_or(Unforwardable::ServiceWithoutId)?;
        let mut servers = Vec::with_capacity(s.dests.len());
        for d in &s.dests {
            let dshared = self
                .dest_shared
                .get(&(s.key.clone(), d.addr, d.port))
                .cloned()
                .ok_or(Unforwardable::ServerWithoutId)?;
            servers.push(RealServer6 {
                addr: d.addr,
                port: d.port,
                weight: d.weight.max(0) as u32,
                fwd: fwd_method(d.fwd)?,
                u_threshold: d.u_threshold,
                l_threshold: d.l_threshold,
                shared: dshared,
            });
        }
        // `-M` of an IPv6 service is a prefix length (ipvsadm takes
        // `-M 64`); a dotted mask cannot apply to it: all 128 bits.
        let persistence = s.persistence.map(|p| Persistence6 {
            timeout_s: p.timeout,
            prefix_len: match p.granularity {
                Netmask::V6(len) => len,
                Netmask::V4(_) => 128,
            },
        });
        let mut svc = Service6::new(
            proto,
            *vaddr,
            *port,
            sched_kind(s.scheduler),
            sched_flags(s),
            persistence,
            servers,
            laddrs.to_vec(),
            shared,
        );
        svc.synproxy = s.synproxy;
        Ok(Some(svc))
    }

    /// Feeds the rate estimator from the counters (every 2 s, as IPVS).
    pub fn estimate(&mut self) {
        let mut samples = Vec::new();
        for (k, s) in &self.svc_shared {
            samples.push((format!("s {k}"), s.stats.totals()));
        }
        for ((k, a, p), d) in &self.dest_shared {
            samples.push((format!("d {k} {a} {p}"), d.stats.totals()));
        }
        for (k, t) in samples {
            self.rates.sample(&k, t);
        }
    }

    /// The connections a graceful drain waits for (see the README,
    /// "Draining"): a TCP service's ESTABLISHED ones (ActiveConn), since its
    /// closing and TIME_WAIT entries carry nothing a client still waits
    /// for; every entry of a UDP or SCTP service and of a firewall-mark
    /// one (ActiveConn + InActConn), since their entries are the flows
    /// themselves and only their timeout tells that one ended.
    pub fn drain_conns(&self) -> u64 {
        self.dest_shared
            .iter()
            .map(|((key, _, _), d)| {
                let tcp = matches!(
                    key,
                    ServiceKey::Addr {
                        proto: Protocol::Tcp,
                        ..
                    }
                );
                let n = d.active() as u64;
                if tcp {
                    n
                } else {
                    n + d.inactive() as u64
                }
            })
            .sum()
    }

    /// Packets the services forwarded since they exist, both directions: a
    /// graceful drain watches it stop rising (see [`Self::drain_conns`]).
    pub fn forwarded_packets(&self) -> u64 {
        self.svc_shared
            .values()
            .map(|s| {
                let t = s.stats.totals();
                t.inpkts.wrapping_add(t.outpkts)
            })
            .fold(0u64, u64::wrapping_add)
    }

    /// What `ipvsadm -L` shows, with live numbers.
    pub fn listing(&self, service: Option<&ServiceKey>) -> Result<Listing, TableError> {
        if let Some(k) = service {
            if self.table.find(k).is_none() {
                return Err(TableError::NoSuchService);
            }
        }
        let mut services = Vec::new();
        for s in &self.table.services {
            if service.is_some_and(|k| k != &s.key) {
                continue;
            }
            let mut stats = self
                .svc_shared
                .get(&s.key)
                .map(|x| totals_to_stats(x.stats.totals()))
                .unwrap_or_default();
            self.rates.fill(&format!("s {}", s.key), &mut stats);
            let dests = s
                .dests
                .iter()
                .map(|d| {
                    let sh = self.dest_shared.get(&(s.key.clone(), d.addr, d.port));
                    let mut st = sh
                        .map(|x| totals_to_stats(x.stats.totals()))
                        .unwrap_or_default();
                    self.rates
                        .fill(&format!("d {} {} {}", s.key, d.addr, d.port), &mut st);
                    ListedDest {
                        dest: d.clone(),
                        active_conns: sh.map_or(0, |x| x.active()),
                        inact_conns: sh.map_or(0, |x| x.inactive()),
                        persist_conns: sh.map_or(0, |x| {
                            x.persistconns.load(std::sync::atomic::Ordering::Relaxed)
                        }),
                        stats: st,
                    }
                })
                .collect();
            services.push(ListedService {
                service: CfgService {
                    dests: Vec::new(),
                    ..s.clone()
                },
                stats,
                dests,
            });
        }
        Ok(Listing {
            version: (1, 2, 1),
            table_size: self.table_size,
            services,
        })
    }

    /// Every server by its key with its shared state, draining ones too.
    pub fn dests(&self) -> impl Iterator<Item = (&DestKey, &Arc<DestShared>)> {
        self.dest_shared
            .iter()
            .chain(self.draining.iter().map(|d| (&d.key, &d.dest.shared)))
    }
}

/// What the IPv4 dataplane cannot forward by, in ipvsadm's words. Every
/// change (command, reload, health check) passes here when its snapshot is
/// built, so this is where the control plane checks; FULLNAT's rule itself
/// is `ferrovs_config::ipvs::check_local_addresses`, which the
/// configuration check asks too.
/// Whether the dataplane forwards by a service key: TCP and UDP on an
/// address, either family (not fwmark or SCTP services, which a
/// configuration may name and the snapshot leaves out).
pub fn carried_key(k: &ServiceKey) -> bool {
    matches!(k, ServiceKey::Addr { proto, .. } if *proto != Protocol::Sctp)
}

/// Whether the dataplane forwards to a server of a service on `vaddr`: one
/// of the service's family; or an IPv4 one behind an IPv6 VIP, by FULLNAT
/// (NAT64, as DPVS does it) or by TUN (IPv6 in IPv4, as IPVS tunnels to a
/// server of the other family); or an IPv6 one behind an IPv4 VIP by TUN
/// (IPv4 in IPv6, IPVS's other mixed case).
pub fn carried_dest(vaddr: &IpAddr, d: &ferrovs_config::ipvs::Dest) -> bool {
    d.addr.is_ipv6() == vaddr.is_ipv6()
        || d.fwd == Fwd::Tunnel
        || (d.fwd == Fwd::FullNat && vaddr.is_ipv6() && d.addr.is_ipv4())
}

/// What the dataplane refuses in a service it carries, checked before
/// anything is built. FULLNAT needs local addresses of its servers'
/// family (IPv4 ones for NAT64).
fn check_service(s: &CfgService, laddrs: &[IpAddr]) -> Result<(), Unforwardable> {
    let ServiceKey::Addr { addr, port, .. } = &s.key else {
        return Err(Unforwardable::Family);
    };
    if *port == 0 && s.persistence.is_none() {
        return Err(Unforwardable::PortZeroWithoutPersistence);
    }
    for d in &s.dests {
        if !carried_dest(addr, d) {
            return Err(Unforwardable::Family);
        }
        let f = fwd_method(d.fwd)?;
        let of_family = laddrs
            .iter()
            .filter(|a| a.is_ipv6() == d.addr.is_ipv6())
            .count();
        check_local_addresses(f == FwdMethod::FullNat, of_family)?;
        if s.synproxy && !f.sees_replies() {
            return Err(Unforwardable::SynproxyBypassed);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_configured_scheduler_maps_to_the_dataplane_one_of_its_name() {
        for s in CfgScheduler::ALL {
            assert_eq!(sched_kind(s).name(), s.as_str());
        }
    }

    #[test]
    fn syn_proxy_is_refused_with_servers_whose_replies_bypass_the_director() {
        let mut s = CfgService::new(ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "198.18.0.100".parse().unwrap(),
            port: 80,
        });
        s.synproxy = true;
        let d = |fwd| ferrovs_config::ipvs::Dest {
            addr: "198.18.1.1".parse().unwrap(),
            port: 80,
            fwd,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
        };
        s.dests = vec![d(Fwd::Masq)];
        assert_eq!(check_service(&s, &[]), Ok(()));
        for f in [Fwd::Route, Fwd::Tunnel] {
            s.dests = vec![d(f)];
            let e = check_service(&s, &[]).unwrap_err();
            assert_eq!(e, Unforwardable::SynproxyBypassed);
            assert!(e.to_string().starts_with("SYN proxy needs"));
        }
    }

    fn dest(addr: &str, fwd: Fwd) -> ferrovs_config::ipvs::Dest {
        ferrovs_config::ipvs::Dest {
            addr: addr.parse().unwrap(),
            port: 80,
            fwd,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
        }
    }

    fn svc6(dests: Vec<ferrovs_config::ipvs::Dest>) -> CfgService {
        let mut s = CfgService::new(ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "2001:2::100".parse().unwrap(),
            port: 80,
        });
        s.dests = dests;
        s
    }

    #[test]
    fn ipv4_services_tunnel_to_ipv6_servers_only() {
        // IPVS's IPv4 in IPv6: TUN only.
        let mut s = CfgService::new(ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "198.18.0.100".parse().unwrap(),
            port: 80,
        });
        s.dests = vec![dest("2001:2:0:1::1", Fwd::Tunnel)];
        assert_eq!(check_service(&s, &[]), Ok(()));
        for f in [Fwd::Route, Fwd::Masq, Fwd::FullNat] {
            s.dests = vec![dest("2001:2:0:1::1", f)];
            assert_eq!(check_service(&s, &[]), Err(Unforwardable::Family), "{f:?}");
        }
    }

    #[test]
    fn ipv6_services_take_servers_of_their_family_but_nat64_and_tunnels() {
        let v4l: Vec<IpAddr> = vec!["198.18.1.100".parse().unwrap()];
        let v6l: Vec<IpAddr> = vec!["2001:2:0:1::100".parse().unwrap()];
        for f in [Fwd::Route, Fwd::Masq, Fwd::Tunnel] {
            assert_eq!(
                check_service(&svc6(vec![dest("2001:2:0:1::1", f)]), &[]),
                Ok(())
            );
        }
        for f in [Fwd::Route, Fwd::Masq] {
            assert_eq!(
                check_service(&svc6(vec![dest("198.18.1.1", f)]), &[]),
                Err(Unforwardable::Family),
                "{f:?} to an IPv4 server"
            );
        }
        // IPv6 in IPv4 to a tunnel server, as IPVS does.
        assert_eq!(
            check_service(&svc6(vec![dest("198.18.1.1", Fwd::Tunnel)]), &[]),
            Ok(())
        );
        // FULLNAT66 needs IPv6 local addresses, NAT64 IPv4 ones.
        let full6 = svc6(vec![dest("2001:2:0:1::1", Fwd::FullNat)]);
        assert!(matches!(
            check_service(&full6, &v4l),
            Err(Unforwardable::NoLocalAddresses(_))
        ));
        assert_eq!(check_service(&full6, &v6l), Ok(()));
        let nat64 = svc6(vec![dest("198.18.1.1", Fwd::FullNat)]);
        assert_eq!(check_service(&nat64, &v4l), Ok(()));
        assert!(matches!(
            check_service(&nat64, &v6l),
            Err(Unforwardable::NoLocalAddresses(_))
        ));
        // SYN proxy for IPv6 as for IPv4: NAT66, FULLNAT66 and NAT64
        // carry it; DR and TUN replies bypass the director.
        for (d, l) in [
            (dest("2001:2:0:1::1", Fwd::Masq), &[][..]),
            (dest("2001:2:0:1::1", Fwd::FullNat), &v6l[..]),
            (dest("198.18.1.1", Fwd::FullNat), &v4l[..]),
        ] {
            let mut sp = svc6(vec![d]);
            sp.synproxy = true;
            assert_eq!(check_service(&sp, l), Ok(()));
        }
        for d in [
            dest("2001:2:0:1::1", Fwd::Route),
            dest("2001:2:0:1::1", Fwd::Tunnel),
            dest("198.18.1.1", Fwd::Tunnel),
        ] {
            let mut sp = svc6(vec![d]);
            sp.synproxy = true;
            assert_eq!(
                check_service(&sp, &[]),
                Err(Unforwardable::SynproxyBypassed)
            );
        }
    }

    #[test]
    fn ipv6_services_reach_the_snapshot() {
        let mut st = IpvsState::new(1, Arc::new(TemplateTable::new(64)), 1024);
        let mut t = Table::default();
        let mut dr = svc6(vec![dest("2001:2:0:1::1", Fwd::Route)]);
        dr.persistence = Some(ferrovs_config::model::Persistence {
            timeout: 300,
            granularity: Netmask::V6(64),
        });
        t.services.push(dr);
        let mut nat64 = svc6(vec![dest("198.18.1.1", Fwd::FullNat)]);
        let ServiceKey::Addr { port, .. } = &mut nat64.key else {
            unreachable!()
        };
        *port = 8080;
        t.services.push(nat64.clone());
        st.laddrs
            .insert(nat64.key.clone(), vec!["198.18.1.100".parse().unwrap()]);
        st.replace_table(t);

        let net = Net {
            ports: vec![PortConf {
                name: "p0".into(),
                mac: [2, 0, 0, 0, 0, 1],
                addrs: vec![(Ipv4Addr::new(198, 18, 0, 1), 24)],
                mtu: 1500,
            }],
            addrs6: vec![vec![("2001:2::1".parse().unwrap(), 64)]],
            ..Default::default()
        };
        let held: Ipv6Addr = "2001:2::200".parse().unwrap();
        let snap = st.build(1, &net, &[(IpAddr::V6(held), false)]).unwrap();
        assert_eq!(snap.services6.len(), 2);
        let s = &snap.services6[0];
        assert_eq!((s.vport, s.dests.len()), (80, 1));
        assert_eq!(s.persistence.map(|p| p.prefix_len), Some(64));
        assert_eq!(
            snap.services6[1].laddrs4,
            vec![Ipv4Addr::new(198, 18, 1, 100)]
        );
        let vip: Ipv6Addr = "2001:2::100".parse().unwrap();
        assert!(snap.service6(6, &vip.octets(), 80).is_some());
        assert_eq!(
            snap.port_addr6(0),
            Some("2001:2::1".parse().unwrap()),
            "the port's IPv6 address"
        );
        assert_eq!(
            snap.addr_kind6(&held.octets()),
            Some(ferrovs_dataplane::snapshot::AddrKind::Vip { active: false }),
            "an IPv6 address of a vrrp_instance, released"
        );
        let snap = st.build(2, &net, &[(IpAddr::V6(held), true)]).unwrap();
        assert_eq!(
            snap.addr_kind6(&held.octets()),
            Some(ferrovs_dataplane::snapshot::AddrKind::Vip { active: true }),
            "and held"
        );
    }
}
