//! The immutable configuration the workers forward by. The control plane
//! builds a new one for every change and publishes it through an
//! `ArcSwap`; workers pick it up at a burst boundary.

use crate::conn::template::TemplateTable;
use crate::conn::Timeouts;
use crate::route::{Route, RouteTable};
use crate::service::{Dest, DestId, FwdMethod, Proto, Service, ServiceShared};
use crate::wire::Mac;
use hashbrown::HashMap;
use std::net::Ipv4Addr;
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
struct AddrTable {
    keys: Box<[u32]>,
    kinds: Box<[AddrKind]>,
    shift: u32,
}

impl AddrTable {
    fn new(entries: &[(u32, AddrKind)]) -> AddrTable {
        let n = (entries.len().max(1) * 4).next_power_of_two().max(16);
        let mut t = AddrTable {
            keys: vec![0; n].into_boxed_slice(),
            kinds: vec![AddrKind::Own; n].into_boxed_slice(),
            shift: 32 - n.trailing_zeros(),
        };
        for &(a, k) in entries {
            // 0.0.0.0 marks an empty slot; it is never an address of ours.
            if a == 0 {
                continue;
            }
            let mut i = t.slot(a);
            while t.keys[i] != 0 && t.keys[i] != a {
                i = (i + 1) & (n - 1);
            }
            t.keys[i] = a;
            t.kinds[i] = k;
        }
        t
    }

    /// Every address in the table.
    fn iter(&self) -> impl Iterator<Item = (Ipv4Addr, AddrKind)> + '_ {
        self.keys
            .iter()
            .zip(self.kinds.iter())
            .filter(|(k, _)| **k != 0)
            .map(|(k, v)| (Ipv4Addr::from(*k), *v))
    }

    #[inline(always)]
    fn slot(&self, a: u32) -> usize {
        (a.wrapping_mul(0x9e37_79b1) >> self.shift) as usize
    }

    #[inline(always)]
    fn get(&self, a: u32) -> Option<AddrKind> {
        let mask = self.keys.len() - 1;
        let mut i = self.slot(a);
        loop {
            let k = self.keys[i];
            if k == a && a != 0 {
                return Some(self.kinds[i]);
            }
            if k == 0 {
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
}

impl Snapshot {
    #[inline]
    pub fn addr_kind(&self, a: [u8; 4]) -> Option<AddrKind> {
        self.addrs.get(u32::from_be_bytes(a))
    }

    /// Every address the snapshot classifies (VIPs, local addresses, the
    /// director's own), for steering outside the workers (the XDP program).
    pub fn addresses(&self) -> impl Iterator<Item = (Ipv4Addr, AddrKind)> + '_ {
        self.addrs.iter()
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
}

/// Why a snapshot could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    DuplicateService(Proto, Ipv4Addr, u16),
    PortZeroNeedsPersistence(Proto, Ipv4Addr),
    DuplicateDestId(DestId),
}

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
            },
            extra_routes: vec![],
            inactive_vips: vec![],
            vrrp_vips: vec![],
            addrs: HashMap::with_hasher(ahash::RandomState::new()),
        }
    }

    pub fn owner_key(&mut self, k: u64) -> &mut Self {
        self.s.owner_key = k;
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
        Ok(self.s)
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
        assert_eq!(AddrTable::new(&[]).get(5), None);
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
}
