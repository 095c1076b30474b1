//! Connections read back from the previous process's files (issue 17,
//! `crate::persist`), installed in a worker before it runs: the same
//! entry, resolved against this process's configuration.
//!
//! An entry keeps its state, flags, timeout, time left, real server, local
//! address and port and SYN proxy sequence delta. What belonged to the old
//! process is made again: the real server and service ids (looked up by
//! address, as IPVS's sync backup does), the hash indexes, the expiry
//! wheel, the eviction ring, the server's connection counters. An entry
//! whose service or server this configuration no longer has, whose
//! forwarding method changed, or whose FULLNAT local address is no longer
//! the service's, is refused and counted: its flow ends as it would after
//! such a reload.
//!
//! Persistence templates are the shared table's and are not in the files:
//! a restored connection that held one makes it again (its client, masked,
//! to its server, with the service's persistence timeout) and holds it, as
//! IPVS's connection holds its controller. So a client with a connection
//! open keeps its server for its next ones; a template no connection held
//! (a client that has gone quiet within the timeout) is lost.

use super::*;
use crate::conn::entry::unmapped;
use crate::conn::entry::{F_EVICTABLE, F_USED, NIL};
use crate::conn::Addrs6;
use crate::persist::Saved;
use crate::service::{DestId, ServiceId};
use crate::sync::Refused;
use std::net::IpAddr;

/// What a worker did with the connections it was given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestoreStats {
    pub restored: usize,
    pub no_service: usize,
    pub no_dest: usize,
    pub no_laddr: usize,
    /// The table (or its IPv6 address pool) had no room, or the flow was
    /// already there.
    pub no_room: usize,
}

impl RestoreStats {
    pub fn refused(&self) -> usize {
        self.no_service + self.no_dest + self.no_laddr + self.no_room
    }
    pub fn add(&mut self, o: &RestoreStats) {
        self.restored += o.restored;
        self.no_service += o.no_service;
        self.no_dest += o.no_dest;
        self.no_laddr += o.no_laddr;
        self.no_room += o.no_room;
    }
    fn count(&mut self, r: Result<(), Refused>) {
        match r {
            Ok(()) => self.restored += 1,
            Err(Refused::NoService) => self.no_service += 1,
            Err(Refused::NoDest) => self.no_dest += 1,
            Err(Refused::NoLaddr) => self.no_laddr += 1,
            Err(_) => self.no_room += 1,
        }
    }
}

/// The worker that must hold a restored connection among `workers`: NAT's
/// and FULLNAT's by the rules both directions follow (DESIGN.md, flow
/// ownership); DR's and TUN's stay on the worker that had them (the
/// receive steering is the NIC's), folded into the new count.
pub fn restore_owner(snap: &Snapshot, s: &Saved, old_worker: usize) -> usize {
    let c = &s.conn;
    let workers = snap.workers.max(1);
    match (c.fwd, &s.addrs6) {
        (FwdMethod::FullNat, _) => snap.lport_owner(c.lport),
        (FwdMethod::Nat, None) => snap.nat_owner(c.caddr, c.cport),
        (FwdMethod::Nat, Some(a)) => snap.nat_owner6(&a.caddr, c.cport),
        _ => old_worker % workers,
    }
}

impl<P: Port> Core<P> {
    pub(super) fn restore(&mut self, snap: &Snapshot, s: &Saved, now: u64) -> Result<(), Refused> {
        match s.addrs6 {
            None => self.restore4(snap, s, now),
            Some(a) => self.restore6(snap, s, &a, now),
        }
    }

    /// The entry as this table takes it: the old table's links, template
    /// and eviction ticket gone, the timeout the time it had left (set
    /// back to the state's own once inserted).
    fn fresh_entry(s: &Saved, dest_id: DestId, svc_id: ServiceId) -> Conn {
        let c = s.conn;
        Conn {
            flags: c.flags & !(F_TEMPLATE_REF | F_TEMPLATE_FRESH | F_EVICTABLE | F_USED),
            dest_id,
            svc_id,
            timeout_s: s.remaining_ms.div_ceil(1000).max(1) as u32,
            next: NIL,
            prev: NIL,
            tmpl: NIL,
            ..c
        }
    }

    fn restore4(&mut self, snap: &Snapshot, s: &Saved, now: u64) -> Result<(), Refused> {
        let c = &s.conn;
        let si = snap
            .service(c.proto, c.vaddr, c.vport)
            .ok_or(Refused::NoService)? as usize;
        let svc = &snap.services[si];
        let dest = svc
            .dests
            .iter()
            .find(|d| {
                d.addr.octets() == c.daddr && (d.port == c.dport || d.port == 0) && d.fwd == c.fwd
            })
            .ok_or(Refused::NoDest)?;
        let mut e = Self::fresh_entry(s, dest.shared.id, svc.id());
        if c.fwd == FwdMethod::FullNat {
            if !svc.laddrs.contains(&Ipv4Addr::from(c.laddr)) {
                return Err(Refused::NoLaddr);
            }
            if self.conns.out_tuple_in_use(&e.out_tuple()) {
                return Err(Refused::LportInUse);
            }
        }
        if self
            .conns
            .lookup_in(&e.in_tuple(), self.conns.hash(&e.in_tuple()))
            .is_some()
        {
            return Err(Refused::TableFull);
        }
        let now_s = (now / 1000) as u32;
        let held = match (c.flags & F_TEMPLATE_REF != 0, svc.persistence) {
            (true, Some(p)) => {
                let m = (u32::from_be_bytes(c.caddr) & u32::from(p.netmask)).to_be_bytes();
                let made = snap
                    .templates
                    .create(svc.id(), m, dest.shared.id, now_s, p.timeout_s);
                self.hold_template(snap, &mut e, dest, made)
            }
            _ => None,
        };
        let Ok(ci) = self.conns.insert(e, now) else {
            if let Some(slot) = held {
                snap.templates.release(slot, now_s);
            }
            return Err(Refused::TableFull);
        };
        self.conns.get_mut(ci).timeout_s = c.timeout_s;
        dest.bind_conn(e.is_active());
        self.sync_meta.installed(ci);
        Ok(())
    }

    fn restore6(
        &mut self,
        snap: &Snapshot,
        s: &Saved,
        a: &Addrs6,
        now: u64,
    ) -> Result<(), Refused> {
        let c = &s.conn;
        let si = snap
            .service6(c.proto, &a.vaddr, c.vport)
            .ok_or(Refused::NoService)? as usize;
        let svc = &snap.services6[si];
        let di = svc
            .dests
            .iter()
            .zip(&svc.addrs)
            .position(|(d, addr)| {
                let same = match addr {
                    IpAddr::V6(x) => x.octets() == a.daddr,
                    IpAddr::V4(x) => mapped(x.octets()) == a.daddr,
                };
                same && (d.port == c.dport || d.port == 0) && d.fwd == c.fwd
            })
            .ok_or(Refused::NoDest)?;
        let dest = &svc.dests[di];
        if c.fwd == FwdMethod::FullNat {
            let ours = match unmapped(&a.laddr) {
                Some(l4) => svc.laddrs4.contains(&Ipv4Addr::from(l4)),
                None => svc.laddrs6.contains(&Ipv6Addr::from(a.laddr)),
            };
            if !ours {
                return Err(Refused::NoLaddr);
            }
        }
        let mut e = Self::fresh_entry(s, dest.shared.id, svc.id());
        let t = Tuple6 {
            proto: c.proto,
            saddr: a.caddr,
            sport: c.cport,
            daddr: a.vaddr,
            dport: c.vport,
        };
        if self.conns6.lookup_in6(&t, self.conns6.hash6(&t)).is_some() {
            return Err(Refused::TableFull);
        }
        if e.flags & F_OUT_INDEXED != 0 {
            let o = Tuple6 {
                proto: c.proto,
                saddr: a.daddr,
                sport: c.dport,
                daddr: a.laddr,
                dport: c.lport,
            };
            if self.conns6.out_tuple_in_use6(&o) {
                return Err(Refused::LportInUse);
            }
        }
        let now_s = (now / 1000) as u32;
        let held = match (c.flags & F_TEMPLATE_REF != 0, svc.persistence) {
            (true, Some(p)) => {
                let made = snap.templates6.create6(
                    svc.id(),
                    &p.mask(&a.caddr),
                    dest.shared.id,
                    now_s,
                    p.timeout_s,
                );
                self.hold_template(snap, &mut e, dest, made)
            }
            _ => None,
        };
        let Ok(ci) = self.conns6.insert6(e, *a, now) else {
            if let Some(slot) = held {
                snap.templates6.release(slot, now_s);
            }
            return Err(Refused::TableFull);
        };
        self.conns6.get_mut(ci).timeout_s = c.timeout_s;
        dest.bind_conn(e.is_active());
        Ok(())
    }
}

impl<P: Port> Core<P> {
    /// Makes `e` hold the template `made` (as a new connection does): its
    /// slot, or None when the table had no room (counted; the connection
    /// goes on without).
    fn hold_template(
        &self,
        snap: &Snapshot,
        e: &mut Conn,
        dest: &crate::service::Dest,
        made: Option<crate::conn::template::Created>,
    ) -> Option<u32> {
        let Some(made) = made else {
            self.ctr().templates_full.inc();
            return None;
        };
        if template_made(snap, dest, &made) {
            e.flags |= F_TEMPLATE_FRESH;
        }
        e.flags |= F_TEMPLATE_REF;
        e.tmpl = made.held.slot;
        Some(made.held.slot)
    }
}

impl<P: Port> Worker<P> {
    /// Keeps this worker's connection tables in `store`'s files from now on
    /// (empty, with the capacities they have): before the worker runs.
    pub fn use_store(&mut self, store: &crate::persist::Store, now_ms: u64) -> std::io::Result<()> {
        let c4 = self.core.conns.capacity();
        let c6 = self.core.conns6.capacity();
        let store = store.for_worker(self.core.id);
        self.core.conns = ConnTable::new_stored(c4, now_ms, &store)?;
        self.core.conns6 = ConnTable::new_v6_stored(c6, now_ms, &store)?;
        Ok(())
    }

    /// Installs connections read back from the previous process's files,
    /// before the worker runs.
    pub fn restore(&mut self, saved: &[Saved], now_ms: u64) -> RestoreStats {
        let snap = self.snap.clone();
        // The IPv6 pool needs room for the addresses the entries name.
        self.core
            .conns6
            .reserve_addrs6(snap.services6.len() * 8 + 64);
        let mut st = RestoreStats::default();
        for s in saved {
            st.count(self.core.restore(&snap, s, now_ms));
        }
        if st.restored > 0 && self.core.shared.workers > 1 {
            // DR and TUN flows stay on their old worker, which the NIC's
            // steering may not pick under a new worker count: a segment
            // that misses looks round the others, as after a sync install.
            self.core.shared.sync.mark_installed();
        }
        st
    }

    /// The neighbours this worker has resolved (IPv4 and IPv6), with their
    /// MAC and port: what a stopping process leaves the next one.
    pub fn neighbours(&self) -> Vec<(IpAddr, crate::wire::Mac, u16)> {
        let v4 = self
            .core
            .neigh
            .entries()
            .map(|(a, m, p)| (IpAddr::V4(a), m, p));
        let v6 = self
            .core
            .neigh6
            .entries()
            .map(|(a, m, p)| (IpAddr::V6(a), m, p));
        v4.chain(v6).collect()
    }

    /// Learns neighbours a previous process resolved, before the worker
    /// runs: its first packets to them go at once instead of waiting for
    /// ARP or NDP. They are confirmed again as any entry is, when they
    /// age. Returns how many were taken.
    pub fn seed_neighbours(&mut self, n: &[(IpAddr, crate::wire::Mac, u16)], now_ms: u64) -> usize {
        let ports = self.core.ports.len() as u16;
        let mut ready = Vec::new();
        let mut taken = 0;
        for &(ip, mac, port) in n {
            if port >= ports {
                continue;
            }
            let ok = match ip {
                IpAddr::V4(a) => self
                    .core
                    .neigh
                    .learn(a, mac, port, now_ms, true, &mut ready),
                IpAddr::V6(a) => self
                    .core
                    .neigh6
                    .learn(a, mac, port, now_ms, true, &mut ready),
            };
            taken += ok as usize;
        }
        taken
    }

    /// Stamps the tables' files as left by a clean stop.
    pub fn mark_clean(&mut self, at_mono_ms: u64) {
        self.core.conns.mark_clean(at_mono_ms);
        self.core.conns6.mark_clean(at_mono_ms);
    }

    /// Leaves the tables' memory to the process's exit instead of freeing
    /// it: freeing a large table takes tens of milliseconds, and in a
    /// hand-over (`ferrovs upgrade`) no process forwards meanwhile.
    pub fn leak_tables(&mut self) {
        let c4 = std::mem::replace(&mut self.core.conns, ConnTable::new(1, 0));
        let c6 = std::mem::replace(&mut self.core.conns6, ConnTable::new_v6(1, 0));
        std::mem::forget(c4);
        std::mem::forget(c6);
    }
}
