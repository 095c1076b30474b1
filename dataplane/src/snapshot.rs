//! The immutable configuration the workers forward by. The control plane
//! builds a new one for every change and publishes it through an
//! `ArcSwap`; workers pick it up at a burst boundary.

use crate::conn::template::TemplateTable;
use crate::conn::Timeouts;
use crate::route::{Route, Route6, RouteTable, RouteTable6};
use crate::service::{Dest, DestId, FwdMethod, Proto, Service, Service6, ServiceShared};
use crate::wire::Mac;
use hashbrown::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// The smallest MTU a port is given (RFC 791: every IPv4 host handles 68).
pub const MIN_MTU: u16 = 68;

/// One port the dataplane owns.
#[derive(Clone, Debug)]
pub struct PortConf {
    pub name: String,
    pub mac: Mac,
    /// The director's own addresses on this port, with prefix lengths. They
    /// create connected routes and belong to the kernel (exception path).
    pub addrs: Vec<(Ipv4Addr, u8)>,
    pub mtu: u16,
}

/// What a destination address of ours is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrKind {
    /// A virtual IP; `active` is false on a VRRP backup.
    Vip { active: bool },
    /// A FULLNAT local address.
    Laddr { active: bool },
    /// The director's own address: traffic for the kernel.
    Own,
}

/// A real server as connections resolve it by id, including servers
/// removed from the configuration that still drain connections.
#[derive(Clone, Debug)]
pub struct DestEntry {
    pub dest: Dest,
    pub svc: Arc<ServiceShared>,
}

/// The addresses the director answers for, looked up for every packet.
///
/// Open addressing over a table at most a quarter full, with a plain
/// multiplicative hash: the content is fixed when the snapshot is built, so
/// probe lengths depend on our own addresses only, whatever packets arrive;
/// that makes an unkeyed hash safe here and twice as fast as a keyed one.
#[derive(Clone, Debug)]
struct AddrTable<K = u32> {
    keys: Box<[K]>,
    kinds: Box<[AddrKind]>,
    shift: u32,
}

/// An address as an [`AddrTable`] key: 0 (0.0.0.0, ::) marks an empty
/// slot, never an address of ours.
trait AddrKey: Copy + Eq + Default {
    /// 32 bits of the address for the multiplicative hash.
    fn mix(self) -> u32;
}

impl AddrKey for u32 {
    #[inline(always)]
    fn mix(self) -> u32 {
        self
    }
}

impl AddrKey for u128 {
    #[inline(always)]
    fn mix(self) -> u32 {
        let x = (self as u64) ^ ((self >> 64) as u64).rotate_left(29);
        (x ^ (x >> 32)) as u32
    }
}

impl<K: AddrKey> AddrTable<K> {
    fn new(entries: &[(K, AddrKind)]) -> AddrTable<K> {
        let n = (entries.len().max(1) * 4).next_power_of_two().max(16);
        let mut t = AddrTable {
            keys: vec![K::default(); n].into_boxed_slice(),
            kinds: vec![AddrKind::Own; n].into_boxed_slice(),
            shift: 32 - n.trailing_zeros(),
        };
        for &(a, k) in entries {
            if a == K::default() {
                continue;
            }
            let mut i = t.slot(a);
            while t.keys[i] != K::default() && t.keys[i] != a {
                i = (i + 1) & (n - 1);
            }
            t.keys[i] = a;
            t.kinds[i] = k;
        }
        t
    }

    /// Every address in the table.
    fn iter(&self) -> impl Iterator<Item = (K, AddrKind)> + '_ {
        self.keys
            .iter()
            .zip(self.kinds.iter())
            .filter(|(k, _)| **k != K::default())
            .map(|(k, v)| (*k, *v))
    }

    fn is_empty(&self) -> bool {
        self.keys.iter().all(|k| *k == K::default())
    }

    #[inline(always)]
    fn slot(&self, a: K) -> usize {
        (a.mix().wrapping_mul(0x9e37_79b1) >> self.shift) as usize
    }

    #[inline(always)]
    fn get(&self, a: K) -> Option<AddrKind> {
        let mask = self.keys.len() - 1;
        let mut i = self.slot(a);
        loop {
            let k = self.keys[i];
            if k == a && a != K::default() {
                return Some(self.kinds[i]);
            }
            if k == K::default() {
                return None;
            }
            i = (i + 1) & mask;
        }
    }
}

pub struct Snapshot {
    pub generation: u64,
    pub workers: usize,
    pub ports: Vec<PortConf>,
    pub routes: RouteTable,
    addrs: AddrTable,
    pub services: Vec<Service>,
    svc_index: HashMap<(u8, u32, u16), u32, ahash::RandomState>,
    dests: Vec<Option<DestEntry>>,
    pub timeouts: Timeouts,
    pub templates: Arc<TemplateTable>,
    /// Keys the NAT owner hash, so clients cannot aim at one worker.
    pub owner_key: u64,
    /// IPv6, beside IPv4 rather than in the same maps, so that IPv4's
    /// lookups stay on 32-bit keys (see `service::Service6`).
    pub routes6: RouteTable6,
    /// Per port (same order as `ports`): its IPv6 addresses with prefix
    /// lengths, the director's own (the kernel's, as `PortConf::addrs`).
    pub port_addrs6: Vec<Vec<(Ipv6Addr, u8)>>,
    /// Every IPv6 address the director answers for, as `addrs` holds the
    /// IPv4 ones.
    addrs6: AddrTable<u128>,
    pub services6: Vec<Service6>,
    /// Persistence templates of IPv6 services (`TemplateTable::new_v6`),
    /// shared by all workers and carried across snapshots like
    /// `templates`.
    pub templates6: Arc<TemplateTable>,
    /// IPVS's `sloppy_tcp`: a TCP segment without SYN of a flow not in the
    /// table makes a connection (a flow another director started, behind
    /// ECMP), instead of being dropped.
    pub sloppy_tcp: bool,
    svc_index6: HashMap<(u8, u128, u16), u32, ahash::RandomState>,
    /// NAT64's IPv4 local addresses, sorted: their replies are looked up
    /// in the IPv6 table (the burst's prefetch pass needs to know).
    laddrs64: Vec<u32>,
    /// Per service (`services`' order): the local addresses this director
    /// holds now, those of `Service::laddrs` no VRRP instance in BACKUP
    /// keeps inactive. New FULLNAT connections take their local port from
    /// these only: the servers send replies to a local address, and those
    /// reach whichever director holds it.
    held_laddrs: Vec<Vec<Ipv4Addr>>,
    /// The same for `services6`: (FULLNAT66's IPv6, NAT64's IPv4).
    held_laddrs6: Vec<(Vec<Ipv6Addr>, Vec<Ipv4Addr>)>,
}

impl Snapshot {
    #[inline]
    pub fn addr_kind(&self, a: [u8; 4]) -> Option<AddrKind> {
        self.addrs.get(u32::from_be_bytes(a))
    }

    /// Every address the snapshot classifies (VIPs, local addresses, the
    /// director's own), for steering outside the workers (the XDP program).
    pub fn addresses(&self) -> impl Iterator<Item = (Ipv4Addr, AddrKind)> + '_ {
        self.addrs.iter().map(|(a, k)| (Ipv4Addr::from(a), k))
    }

    /// The service for a packet to (proto, vaddr, vport): the exact port
    /// first, then the port-0 "all ports" service.
    #[inline]
    pub fn service(&self, proto: u8, vaddr: [u8; 4], vport: u16) -> Option<u32> {
        let a = u32::from_be_bytes(vaddr);
        self.svc_index
            .get(&(proto, a, vport))
            .or_else(|| self.svc_index.get(&(proto, a, 0)))
            .copied()
    }

    #[inline]
    pub fn dest(&self, id: DestId) -> Option<&DestEntry> {
        self.dests.get(id as usize).and_then(|d| d.as_ref())
    }

    /// Every server connections may still reference, by id.
    pub fn dests(&self) -> impl Iterator<Item = &DestEntry> {
        self.dests.iter().flatten()
    }

    pub fn port_addr(&self, port: u16) -> Option<Ipv4Addr> {
        self.ports
            .get(port as usize)
            .and_then(|p| p.addrs.first().map(|a| a.0))
    }

    /// Which worker owns a NAT flow: a keyed hash of the client address and
    /// port, which both directions carry (DESIGN.md, flow ownership).
    #[inline(always)]
    pub fn nat_owner(&self, caddr: [u8; 4], cport: u16) -> usize {
        if self.workers <= 1 {
            return 0;
        }
        let x = ((u32::from_be_bytes(caddr) as u64) << 16) | cport as u64;
        let h = (x ^ self.owner_key).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (((h >> 32) * self.workers as u64) >> 32) as usize
    }

    /// Which worker owns a FULLNAT local port (DPVS-style slicing).
    #[inline(always)]
    pub fn lport_owner(&self, lport: u16) -> usize {
        lport as usize % self.workers.max(1)
    }

    /// The worker that must handle a new inbound packet of `svc` from
    /// (caddr, cport): NAT flows belong to their owner; None when any
    /// worker may (one worker, or no NAT server).
    #[inline]
    pub fn inbound_owner(&self, svc: &Service, caddr: [u8; 4], cport: u16) -> Option<usize> {
        (self.workers > 1 && svc.dests.iter().any(|d| d.fwd == FwdMethod::Nat))
            .then(|| self.nat_owner(caddr, cport))
    }

    /// The worker owning a reply (real server to `daddr`:`dport`): the
    /// local port's slice for FULLNAT, the client hash for NAT.
    #[inline]
    pub fn reply_owner(&self, daddr: [u8; 4], dport: u16, fullnat: bool) -> usize {
        if fullnat {
            self.lport_owner(dport)
        } else {
            self.nat_owner(daddr, dport)
        }
    }

    /// What an IPv6 destination address of ours is.
    #[inline]
    pub fn addr_kind6(&self, a: &[u8; 16]) -> Option<AddrKind> {
        self.addrs6.get(u128::from_be_bytes(*a))
    }

    /// Every IPv6 address the snapshot classifies.
    pub fn addresses6(&self) -> impl Iterator<Item = (Ipv6Addr, AddrKind)> + '_ {
        self.addrs6.iter().map(|(a, k)| (Ipv6Addr::from(a), k))
    }

    /// The IPv6 service for (proto, vaddr, vport), the exact port first.
    #[inline]
    pub fn service6(&self, proto: u8, vaddr: &[u8; 16], vport: u16) -> Option<u32> {
        let a = u128::from_be_bytes(*vaddr);
        self.svc_index6
            .get(&(proto, a, vport))
            .or_else(|| self.svc_index6.get(&(proto, a, 0)))
            .copied()
    }

    /// The local addresses service `si` takes new FULLNAT connections'
    /// ports from: those this director holds. Behind ECMP every director
    /// configures the local addresses of all (a flow moved from another
    /// director keeps its local address, synced), each holding its own in
    /// a server-side VRRP instance that the others back up: a director
    /// allocating on an address another holds would have its replies
    /// delivered there.
    #[inline]
    pub fn held_laddrs(&self, si: usize) -> &[Ipv4Addr] {
        self.held_laddrs.get(si).map(|v| &v[..]).unwrap_or(&[])
    }

    /// [`Self::held_laddrs`] for IPv6 service `si`: (IPv6, NAT64's IPv4).
    #[inline]
    pub fn held_laddrs6(&self, si: usize) -> (&[Ipv6Addr], &[Ipv4Addr]) {
        match self.held_laddrs6.get(si) {
            Some((a, b)) => (a, b),
            None => (&[], &[]),
        }
    }

    /// Whether `a` is a local address of a NAT64 service (IPv4 replies to
    /// it may belong to the IPv6 table).
    #[inline]
    pub fn is_laddr64(&self, a: [u8; 4]) -> bool {
        !self.laddrs64.is_empty() && self.laddrs64.binary_search(&u32::from_be_bytes(a)).is_ok()
    }

    /// Whether anything IPv6 is configured: an IPv6 address on a port, an
    /// IPv6 VIP or service. Without, the workers leave IPv6 to the kernel.
    #[inline]
    pub fn has_ipv6(&self) -> bool {
        !self.addrs6.is_empty()
    }

    /// The first IPv6 address of a port (the source of its neighbour
    /// solicitations).
    pub fn port_addr6(&self, port: u16) -> Option<Ipv6Addr> {
        self.port_addrs6
            .get(port as usize)
            .and_then(|v| v.first().map(|a| a.0))
    }

    /// [`Snapshot::nat_owner`] for an IPv6 client: the same keyed hash over
    /// the whole address and the port.
    #[inline(always)]
    pub fn nat_owner6(&self, caddr: &[u8; 16], cport: u16) -> usize {
        if self.workers <= 1 {
            return 0;
        }
        let a = u128::from_be_bytes(*caddr);
        let mut h = self.owner_key ^ cport as u64;
        for w in [(a >> 64) as u64, a as u64] {
            h = (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            h ^= h >> 29;
        }
        (((h >> 32) * self.workers as u64) >> 32) as usize
    }

    /// [`Snapshot::inbound_owner`] for an IPv6 service.
    #[inline]
    pub fn inbound_owner6(&self, svc: &Service6, caddr: &[u8; 16], cport: u16) -> Option<usize> {
        (self.workers > 1 && svc.dests.iter().any(|d| d.fwd == FwdMethod::Nat))
            .then(|| self.nat_owner6(caddr, cport))
    }

    /// At most how many distinct IPv6 (and NAT64's IPv4-mapped) VIPs,
    /// servers and local addresses the IPv6 services name: what an IPv6
    /// connection table's address pool needs room for.
    pub fn addrs6_named(&self) -> usize {
        self.services6
            .iter()
            .map(|s| 1 + s.addrs.len() + s.laddrs6.len() + s.laddrs4.len())
            .sum()
    }

    pub fn has_nat(&self) -> bool {
        self.services
            .iter()
            .any(|s| s.dests.iter().any(|d| d.fwd == FwdMethod::Nat))
    }
}

/// Builds snapshots; checks what the dataplane relies on.
pub struct SnapshotBuilder {
    s: Snapshot,
    addrs: HashMap<u32, AddrKind, ahash::RandomState>,
    extra_routes: Vec<Route>,
    inactive_vips: Vec<Ipv4Addr>,
    vrrp_vips: Vec<Ipv4Addr>,
    extra_routes6: Vec<Route6>,
    inactive_vips6: Vec<Ipv6Addr>,
    vrrp_vips6: Vec<Ipv6Addr>,
}

/// Why a snapshot could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    DuplicateService(Proto, Ipv4Addr, u16),
    PortZeroNeedsPersistence(Proto, Ipv4Addr),
    DuplicateDestId(DestId),
    /// An IPv6 service defined twice.
    DuplicateService6(Proto, Ipv6Addr, u16),
    PortZeroNeedsPersistence6(Proto, Ipv6Addr),
    /// FULLNAT servers of an IPv6 service without local addresses of their
    /// family (IPv6 ones for IPv6 servers, IPv4 ones for NAT64).
    FullNatWithoutLaddr6(Proto, Ipv6Addr, u16),
    /// An IPv4 real server behind an IPv6 VIP that is neither FULLNAT
    /// (NAT64 translates between the families) nor TUN (IPv6 in IPv4).
    Ipv4ServerNotFullNat(Proto, Ipv6Addr, u16),
    /// An IPv6 real server behind an IPv4 VIP that is not TUN.
    Ipv6ServerNotTun(Proto, Ipv4Addr, u16),
    /// More ports than a handover ring's word carries
    /// ([`MAX_PORTS`]).
    TooManyPorts(usize),
}

/// The most ports a dataplane drives: a handover carries the port in the
/// low bits of a 16-bit word (`worker::PORT_MASK`).
pub const MAX_PORTS: usize = 255;

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::DuplicateService(p, a, port) => {
                write!(f, "service {} {a}:{port} defined twice", p.name())
            }
            BuildError::PortZeroNeedsPersistence(p, a) => {
                write!(
                    f,
                    "service {} {a}:0 (all ports) requires persistence",
                    p.name()
                )
            }
            BuildError::DuplicateDestId(id) => write!(f, "real server id {id} used twice"),
            BuildError::Ipv6ServerNotTun(p, a, port) => write!(
                f,
                "service {} {a}:{port}: an IPv6 real server behind an IPv4 VIP needs TUN",
                p.name()
            ),
            BuildError::TooManyPorts(n) => {
                write!(f, "{n} interfaces: at most {MAX_PORTS} are supported")
            }
            BuildError::DuplicateService6(p, a, port) => {
                write!(f, "service {} [{a}]:{port} defined twice", p.name())
            }
            BuildError::PortZeroNeedsPersistence6(p, a) => write!(
                f,
                "service {} [{a}]:0 (all ports) requires persistence",
                p.name()
            ),
            BuildError::FullNatWithoutLaddr6(p, a, port) => write!(
                f,
                "service {} [{a}]:{port} has FULLNAT servers but no local addresses of their family",
                p.name()
            ),
            BuildError::Ipv4ServerNotFullNat(p, a, port) => write!(
                f,
                "service {} [{a}]:{port}: an IPv4 real server behind an IPv6 VIP needs FULLNAT (NAT64) or TUN",
                p.name()
            ),
        }
    }
}

impl std::error::Error for BuildError {}

impl SnapshotBuilder {
    pub fn new(generation: u64, workers: usize, templates: Arc<TemplateTable>) -> SnapshotBuilder {
        let hasher = ahash::RandomState::new();
        SnapshotBuilder {
            s: Snapshot {
                generation,
                workers: workers.max(1),
                ports: vec![],
                routes: RouteTable::default(),
                addrs: AddrTable::new(&[]),
                services: vec![],
                svc_index: HashMap::with_hasher(hasher),
                dests: vec![],
                timeouts: Timeouts::default(),
                templates,
                owner_key: 0x5bd1_e995_0000_0001,
                routes6: RouteTable6::default(),
                port_addrs6: vec![],
                addrs6: AddrTable::new(&[]),
                laddrs64: vec![],
                held_laddrs: vec![],
                held_laddrs6: vec![],
                sloppy_tcp: false,
                services6: vec![],
                templates6: Arc::new(TemplateTable::new_v6(64)),
                svc_index6: HashMap::with_hasher(ahash::RandomState::new()),
            },
            extra_routes: vec![],
            inactive_vips: vec![],
            vrrp_vips: vec![],
            extra_routes6: vec![],
            inactive_vips6: vec![],
            vrrp_vips6: vec![],
            addrs: HashMap::with_hasher(ahash::RandomState::new()),
        }
    }

    pub fn owner_key(&mut self, k: u64) -> &mut Self {
        self.s.owner_key = k;
        self
    }

    pub fn sloppy_tcp(&mut self, on: bool) -> &mut Self {
        self.s.sloppy_tcp = on;
        self
    }

    pub fn timeouts(&mut self, t: Timeouts) -> &mut Self {
        self.s.timeouts = t;
        self
    }

    /// A port. Its MTU is taken as at least IPv4's minimum (RFC 791: 68),
    /// which TUN's fragmentation and fragmentation-needed rely on.
    pub fn port(&mut self, mut p: PortConf) -> &mut Self {
        p.mtu = p.mtu.max(MIN_MTU);
        self.s.ports.push(p);
        self
    }

    pub fn route(&mut self, r: Route) -> &mut Self {
        self.extra_routes.push(r);
        self
    }

    /// An address a vrrp_instance carries: answered for (ARP, ping) while
    /// `active`, whether or not a service uses it (a NAT gateway address, for
    /// one), and its services forward only while active.
    pub fn vrrp_vip(&mut self, a: Ipv4Addr, active: bool) -> &mut Self {
        if !active {
            self.inactive_vips.push(a);
        }
        self.vrrp_vips.push(a);
        self
    }

    /// Marks a VIP inactive (a VRRP backup): no ARP answers, no forwarding.
    pub fn inactive_vip(&mut self, a: Ipv4Addr) -> &mut Self {
        self.inactive_vips.push(a);
        self
    }

    /// The IPv6 addresses of port `port` (its index in `port` order), with
    /// prefix lengths: the director's own, and connected routes.
    pub fn port_addrs6(&mut self, port: u16, addrs: Vec<(Ipv6Addr, u8)>) -> &mut Self {
        let p = port as usize;
        if self.s.port_addrs6.len() <= p {
            self.s.port_addrs6.resize(p + 1, vec![]);
        }
        self.s.port_addrs6[p] = addrs;
        self
    }

    pub fn route6(&mut self, r: Route6) -> &mut Self {
        self.extra_routes6.push(r);
        self
    }

    /// [`SnapshotBuilder::vrrp_vip`] for an IPv6 address.
    pub fn vrrp_vip6(&mut self, a: Ipv6Addr, active: bool) -> &mut Self {
        if !active {
            self.inactive_vips6.push(a);
        }
        self.vrrp_vips6.push(a);
        self
    }

    /// Marks an IPv6 VIP or local address inactive: no NDP answers, no
    /// forwarding.
    pub fn inactive_vip6(&mut self, a: Ipv6Addr) -> &mut Self {
        self.inactive_vips6.push(a);
        self
    }

    /// The IPv6 persistence templates (made by `TemplateTable::new_v6`;
    /// pass the same table to every snapshot). Without one, a snapshot
    /// gets a small table of its own.
    pub fn templates6(&mut self, t: Arc<TemplateTable>) -> &mut Self {
        self.s.templates6 = t;
        self
    }

    pub fn service6(&mut self, svc: Service6) -> &mut Self {
        self.s.services6.push(svc);
        self
    }

    pub fn service(&mut self, svc: Service) -> &mut Self {
        self.s.services.push(svc);
        self
    }

    /// Keeps a server that left the configuration reachable by id while its
    /// connections drain.
    pub fn draining(&mut self, dest: Dest, svc: Arc<ServiceShared>) -> &mut Self {
        let id = dest.shared.id as usize;
        if self.s.dests.len() <= id {
            self.s.dests.resize(id + 1, None);
        }
        if self.s.dests[id].is_none() {
            self.s.dests[id] = Some(DestEntry { dest, svc });
        }
        self
    }

    pub fn build(mut self) -> Result<Snapshot, BuildError> {
        let s = &mut self.s;
        if s.ports.len() > MAX_PORTS {
            return Err(BuildError::TooManyPorts(s.ports.len()));
        }
        let mut routes = vec![];
        for (i, p) in s.ports.iter().enumerate() {
            for &(a, len) in &p.addrs {
                self.addrs.insert(u32::from(a), AddrKind::Own);
                routes.push(Route {
                    prefix: a,
                    len,
                    port: i as u16,
                    via: None,
                });
            }
        }
        routes.extend(self.extra_routes.iter().copied());
        s.routes = RouteTable::new(routes);

        let mut seen_ids = std::collections::HashSet::new();
        for (idx, svc) in s.services.iter().enumerate() {
            let key = (svc.proto as u8, u32::from(svc.vaddr), svc.vport);
            if s.svc_index.insert(key, idx as u32).is_some() {
                return Err(BuildError::DuplicateService(
                    svc.proto, svc.vaddr, svc.vport,
                ));
            }
            if svc.vport == 0 && svc.persistence.is_none() {
                return Err(BuildError::PortZeroNeedsPersistence(svc.proto, svc.vaddr));
            }
            s.held_laddrs.push(
                svc.laddrs
                    .iter()
                    .filter(|l| !self.inactive_vips.contains(l))
                    .copied()
                    .collect(),
            );
            // FULLNAT without local addresses is the control plane's to
            // refuse (ferrovs_config::ipvs::check_local_addresses, the one
            // statement of the rule); should one come through, its new
            // connections find no local port and are dropped, counted as
            // laddr_exhausted.
            let active = !self.inactive_vips.contains(&svc.vaddr);
            self.addrs
                .entry(u32::from(svc.vaddr))
                .or_insert(AddrKind::Vip { active });
            for &l in &svc.laddrs {
                self.addrs.entry(u32::from(l)).or_insert(AddrKind::Laddr {
                    active: !self.inactive_vips.contains(&l),
                });
            }
            for d in &svc.dests {
                let id = d.shared.id as usize;
                if !seen_ids.insert(id) {
                    return Err(BuildError::DuplicateDestId(id as DestId));
                }
                // An IPv6 server of an IPv4 service is reached by tunnel
                // only (IPVS's rule for servers of the other family).
                if d.shared.tunnel6.is_some() && d.fwd != FwdMethod::Tun {
                    return Err(BuildError::Ipv6ServerNotTun(
                        svc.proto, svc.vaddr, svc.vport,
                    ));
                }
                if s.dests.len() <= id {
                    s.dests.resize(id + 1, None);
                }
                // A live server replaces a draining entry with the same id.
                s.dests[id] = Some(DestEntry {
                    dest: d.clone(),
                    svc: svc.shared.clone(),
                });
            }
        }
        for &a in &self.vrrp_vips {
            let active = !self.inactive_vips.contains(&a);
            self.addrs
                .entry(u32::from(a))
                .or_insert(AddrKind::Vip { active });
        }
        let entries: Vec<(u32, AddrKind)> = self.addrs.iter().map(|(&a, &k)| (a, k)).collect();
        self.s.addrs = AddrTable::new(&entries);
        self.build6(&mut seen_ids)?;
        Ok(self.s)
    }

    /// The IPv6 half of `build`.
    fn build6(
        &mut self,
        seen_ids: &mut std::collections::HashSet<usize>,
    ) -> Result<(), BuildError> {
        let s = &mut self.s;
        let mut addrs6: HashMap<u128, AddrKind> = HashMap::default();
        s.port_addrs6
            .resize(s.ports.len().max(s.port_addrs6.len()), vec![]);
        let mut routes = vec![];
        for (i, v) in s.port_addrs6.iter().enumerate() {
            for &(a, len) in v {
                addrs6.insert(u128::from(a), AddrKind::Own);
                routes.push(Route6 {
                    prefix: a,
                    len,
                    port: i as u16,
                    via: None,
                });
            }
        }
        routes.extend(self.extra_routes6.iter().copied());
        s.routes6 = RouteTable6::new(routes);
        let inactive = |a: &Ipv6Addr| self.inactive_vips6.contains(a);
        for (idx, svc) in s.services6.iter().enumerate() {
            let key = (svc.proto as u8, u128::from(svc.vaddr), svc.vport);
            if s.svc_index6.insert(key, idx as u32).is_some() {
                return Err(BuildError::DuplicateService6(
                    svc.proto, svc.vaddr, svc.vport,
                ));
            }
            if svc.vport == 0 && svc.persistence.is_none() {
                return Err(BuildError::PortZeroNeedsPersistence6(svc.proto, svc.vaddr));
            }
            for (d, a) in svc.dests.iter().zip(&svc.addrs) {
                let laddrs_ok = match a {
                    // IPVS tunnels to a server of the other family
                    // (`ip_vs_tunnel_xmit`: IPv6 in IPv4, protocol 41).
                    IpAddr::V4(_) if d.fwd == FwdMethod::Tun => true,
                    IpAddr::V4(_) if d.fwd != FwdMethod::FullNat => {
                        return Err(BuildError::Ipv4ServerNotFullNat(
                            svc.proto, svc.vaddr, svc.vport,
                        ))
                    }
                    IpAddr::V4(_) => !svc.laddrs4.is_empty(),
                    IpAddr::V6(_) => d.fwd != FwdMethod::FullNat || !svc.laddrs6.is_empty(),
                };
                if !laddrs_ok {
                    return Err(BuildError::FullNatWithoutLaddr6(
                        svc.proto, svc.vaddr, svc.vport,
                    ));
                }
            }
            s.held_laddrs6.push((
                svc.laddrs6
                    .iter()
                    .filter(|l| !inactive(l))
                    .copied()
                    .collect(),
                svc.laddrs4
                    .iter()
                    .filter(|l| !self.inactive_vips.contains(l))
                    .copied()
                    .collect(),
            ));
            addrs6
                .entry(u128::from(svc.vaddr))
                .or_insert(AddrKind::Vip {
                    active: !inactive(&svc.vaddr),
                });
            for l in &svc.laddrs6 {
                addrs6.entry(u128::from(*l)).or_insert(AddrKind::Laddr {
                    active: !inactive(l),
                });
            }
            for d in &svc.dests {
                let id = d.shared.id as usize;
                if !seen_ids.insert(id) {
                    return Err(BuildError::DuplicateDestId(id as DestId));
                }
                if s.dests.len() <= id {
                    s.dests.resize(id + 1, None);
                }
                s.dests[id] = Some(DestEntry {
                    dest: d.clone(),
                    svc: svc.shared.clone(),
                });
            }
        }
        // NAT64's IPv4 local addresses answer ARP and take replies like
        // IPv4 FULLNAT's.
        let laddrs4: Vec<Ipv4Addr> = s
            .services6
            .iter()
            .flat_map(|v| v.laddrs4.iter().copied())
            .collect();
        s.laddrs64 = laddrs4.iter().map(|&l| u32::from(l)).collect();
        s.laddrs64.sort_unstable();
        s.laddrs64.dedup();
        let entries: Vec<(u32, AddrKind)> = {
            let mut m: HashMap<u32, AddrKind> = s.addrs.iter().collect();
            for l in laddrs4 {
                let k = AddrKind::Laddr {
                    active: !self.inactive_vips.contains(&l),
                };
                // A VRRP instance may hold it (a pair puts FULLNAT's local
                // addresses in a server-side instance, so that the new
                // master's ARPs reach the servers): `build` filed it as a
                // VIP then, and NAT64's replies to it would be taken for
                // clients'. It is a local address unless a service's VIP,
                // as IPv4 FULLNAT's are (filed before the VRRP ones).
                let svc_vip = s.services.iter().any(|v| v.vaddr == l);
                let e = m.entry(u32::from(l)).or_insert(k);
                if matches!(e, AddrKind::Vip { .. }) && !svc_vip {
                    *e = k;
                }
            }
            m.into_iter().collect()
        };
        s.addrs = AddrTable::new(&entries);
        for a in &self.vrrp_vips6 {
            addrs6.entry(u128::from(*a)).or_insert(AddrKind::Vip {
                active: !inactive(a),
            });
        }
        let entries: Vec<(u128, AddrKind)> = addrs6.into_iter().collect();
        s.addrs6 = AddrTable::new(&entries);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addr_table_finds_exactly_its_entries() {
        let entries: Vec<(u32, AddrKind)> = (0..300u32)
            .map(|i| {
                (
                    u32::from(Ipv4Addr::new(198, 18, (i / 200) as u8, (i % 200) as u8 + 1)),
                    AddrKind::Vip { active: i % 2 == 0 },
                )
            })
            .collect();
        let t = AddrTable::new(&entries);
        for &(a, k) in &entries {
            assert_eq!(t.get(a), Some(k));
        }
        for a in [0u32, 1, u32::from(Ipv4Addr::new(198, 19, 0, 1)), u32::MAX] {
            assert_eq!(t.get(a), None);
        }
        assert_eq!(AddrTable::<u32>::new(&[]).get(5), None);
    }

    /// NAT64's IPv4 local addresses stay local addresses when a VRRP
    /// instance holds them too (as a pair's server-side instance does), as
    /// IPv4 FULLNAT's do, active or not by the instance's state.
    #[test]
    fn nat64_local_addresses_held_by_vrrp_are_local_addresses() {
        use crate::service::{DestShared, RealServer6};
        let mut b = SnapshotBuilder::new(1, 1, Arc::new(TemplateTable::new(16)));
        b.templates6(Arc::new(TemplateTable::new_v6(16)));
        let (l1, l2) = (
            Ipv4Addr::new(198, 18, 1, 100),
            Ipv4Addr::new(198, 18, 1, 101),
        );
        b.vrrp_vip(l1, true);
        b.vrrp_vip(l2, false);
        b.vrrp_vip(Ipv4Addr::new(198, 18, 1, 254), true);
        b.service6(Service6::new(
            Proto::Tcp,
            "2001:db8::100".parse().unwrap(),
            80,
            crate::sched::SchedKind::Rr,
            crate::sched::SchedFlags::default(),
            None,
            vec![RealServer6 {
                addr: IpAddr::V4(Ipv4Addr::new(198, 18, 1, 11)),
                port: 80,
                weight: 1,
                fwd: FwdMethod::FullNat,
                u_threshold: 0,
                l_threshold: 0,
                shared: DestShared::new(1, 1),
            }],
            vec![IpAddr::V4(l1), IpAddr::V4(l2)],
            ServiceShared::new(1, 1),
        ));
        let s = b.build().unwrap();
        assert_eq!(
            s.addr_kind(l1.octets()),
            Some(AddrKind::Laddr { active: true })
        );
        assert_eq!(
            s.addr_kind(l2.octets()),
            Some(AddrKind::Laddr { active: false })
        );
        assert!(s.is_laddr64(l1.octets()));
        // A VRRP address that is no local address stays a VIP.
        assert_eq!(
            s.addr_kind([198, 18, 1, 254]),
            Some(AddrKind::Vip { active: true })
        );
    }

    /// The IPv6 table the same way, with addresses that differ only in
    /// their low or their high bits.
    #[test]
    fn addr_table6_finds_exactly_its_entries() {
        let base = u128::from("2001:db8::".parse::<Ipv6Addr>().unwrap());
        let entries: Vec<(u128, AddrKind)> = (0..300u128)
            .map(|i| {
                let a = if i % 2 == 0 {
                    base + i
                } else {
                    base | (i << 64)
                };
                (a, AddrKind::Laddr { active: i % 3 == 0 })
            })
            .collect();
        let t = AddrTable::new(&entries);
        for &(a, k) in &entries {
            assert_eq!(t.get(a), Some(k));
        }
        for a in [0u128, 1, base + 1000, u128::MAX] {
            assert_eq!(t.get(a), None);
        }
        assert_eq!(t.iter().count(), 300);
        assert!(AddrTable::<u128>::new(&[]).is_empty());
    }

    #[test]
    fn a_port_gets_at_least_the_ipv4_minimum_mtu() {
        // A port described without an MTU (0) must not reach TUN's
        // fragmentation, which needs room for an outer header and 8 bytes.
        let mut b = SnapshotBuilder::new(
            1,
            1,
            std::sync::Arc::new(crate::conn::template::TemplateTable::new(16)),
        );
        b.port(PortConf {
            name: "p0".into(),
            mac: [2, 0, 0, 0, 0, 1],
            addrs: vec![],
            mtu: 0,
        });
        assert_eq!(b.build().unwrap().ports[0].mtu, MIN_MTU);
    }

    fn v6_service(servers: Vec<(IpAddr, FwdMethod)>, laddrs: Vec<IpAddr>) -> Service6 {
        use crate::service::{DestShared, RealServer6};
        let rs = servers
            .into_iter()
            .enumerate()
            .map(|(i, (addr, fwd))| RealServer6 {
                addr,
                port: 80,
                weight: 1,
                fwd,
                u_threshold: 0,
                l_threshold: 0,
                shared: DestShared::new(10 + i as u32, 1),
            })
            .collect();
        Service6::new(
            Proto::Tcp,
            "2001:db8::100".parse().unwrap(),
            80,
            crate::sched::SchedKind::Rr,
            Default::default(),
            None,
            rs,
            laddrs,
            ServiceShared::new(7, 1),
        )
    }

    fn builder() -> SnapshotBuilder {
        let mut b = SnapshotBuilder::new(1, 2, Arc::new(TemplateTable::new(16)));
        b.port(PortConf {
            name: "p0".into(),
            mac: [2, 0, 0, 0, 0, 1],
            addrs: vec![(Ipv4Addr::new(198, 18, 0, 1), 24)],
            mtu: 1500,
        });
        b.port_addrs6(0, vec![("2001:db8::1".parse().unwrap(), 64)]);
        b
    }

    #[test]
    fn ipv6_services_addresses_and_routes() {
        let rs6: IpAddr = "2001:db8:1::11".parse().unwrap();
        let rs4: IpAddr = "198.18.1.11".parse().unwrap();
        let l6: IpAddr = "2001:db8:1::100".parse().unwrap();
        let l4: IpAddr = "198.18.1.100".parse().unwrap();
        let mut b = builder();
        b.service6(v6_service(
            vec![(rs6, FwdMethod::FullNat), (rs4, FwdMethod::FullNat)],
            vec![l6, l4],
        ));
        b.inactive_vip6("2001:db8::200".parse().unwrap());
        b.vrrp_vip6("2001:db8::200".parse().unwrap(), false);
        let s = b.build().unwrap();
        let vip: Ipv6Addr = "2001:db8::100".parse().unwrap();
        assert_eq!(
            s.addr_kind6(&vip.octets()),
            Some(AddrKind::Vip { active: true })
        );
        assert_eq!(
            s.addr_kind6(&"2001:db8::200".parse::<Ipv6Addr>().unwrap().octets()),
            Some(AddrKind::Vip { active: false })
        );
        assert_eq!(
            s.addr_kind6(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets()),
            Some(AddrKind::Own)
        );
        assert_eq!(
            s.addr_kind6(&"2001:db8:1::100".parse::<Ipv6Addr>().unwrap().octets()),
            Some(AddrKind::Laddr { active: true })
        );
        // NAT64's IPv4 local address is an IPv4 local address.
        assert_eq!(
            s.addr_kind([198, 18, 1, 100]),
            Some(AddrKind::Laddr { active: true })
        );
        assert_eq!(s.addr_kind([198, 18, 0, 1]), Some(AddrKind::Own));
        assert_eq!(s.service6(6, &vip.octets(), 80), Some(0));
        assert_eq!(s.service6(6, &vip.octets(), 81), None);
        assert_eq!(s.service6(17, &vip.octets(), 80), None);
        // The scheduler's view of an IPv6 server is its folded address.
        let svc = &s.services6[0];
        assert_eq!(
            svc.dests[0].addr,
            crate::sched::fold_v6(&"2001:db8:1::11".parse::<Ipv6Addr>().unwrap().octets())
        );
        assert_eq!(svc.dests[1].addr, Ipv4Addr::new(198, 18, 1, 11));
        assert!(s.dest(10).is_some() && s.dest(11).is_some());
        let nh = s.routes6.lookup("2001:db8::77".parse().unwrap()).unwrap();
        assert_eq!((nh.port, nh.ip), (0, "2001:db8::77".parse().unwrap()));
        assert!(s.routes6.lookup("2001:db9::1".parse().unwrap()).is_none());
    }

    #[test]
    fn ipv6_build_errors() {
        let rs4: IpAddr = "198.18.1.11".parse().unwrap();
        let rs6: IpAddr = "2001:db8:1::11".parse().unwrap();
        let mut b = builder();
        b.service6(v6_service(vec![(rs4, FwdMethod::Nat)], vec![]));
        assert!(matches!(
            b.build(),
            Err(BuildError::Ipv4ServerNotFullNat(..))
        ));
        let mut b = builder();
        // NAT64 needs IPv4 local addresses; IPv6 ones do not do.
        b.service6(v6_service(
            vec![(rs4, FwdMethod::FullNat)],
            vec!["2001:db8:1::100".parse().unwrap()],
        ));
        assert!(matches!(
            b.build(),
            Err(BuildError::FullNatWithoutLaddr6(..))
        ));
        let mut b = builder();
        b.service6(v6_service(vec![(rs6, FwdMethod::Dr)], vec![]));
        b.service6(v6_service(vec![], vec![]));
        assert!(matches!(b.build(), Err(BuildError::DuplicateService6(..))));
    }

    #[test]
    fn ipv6_nat_owner_uses_the_whole_address() {
        let b = builder();
        let s = b.build().unwrap();
        let mut seen = [0usize; 2];
        for i in 0..256u32 {
            let mut a = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            // Only the interface identifier varies.
            a[12..16].copy_from_slice(&i.to_be_bytes());
            let o = s.nat_owner6(&a, 40000);
            assert_eq!(o, s.nat_owner6(&a, 40000));
            seen[o] += 1;
        }
        assert!(seen[0] > 64 && seen[1] > 64, "{seen:?}");
    }

    #[test]
    fn persistence6_masks_by_prefix_length() {
        use crate::service::Persistence6;
        let a: Ipv6Addr = "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff".parse().unwrap();
        let m = |len| {
            Ipv6Addr::from(
                Persistence6 {
                    timeout_s: 1,
                    prefix_len: len,
                }
                .mask(&a.octets()),
            )
        };
        assert_eq!(m(128), a);
        assert_eq!(m(64), "2001:db8:aaaa:bbbb::".parse::<Ipv6Addr>().unwrap());
        assert_eq!(m(36), "2001:db8:a000::".parse::<Ipv6Addr>().unwrap());
        assert_eq!(m(0), Ipv6Addr::UNSPECIFIED);
    }
}
