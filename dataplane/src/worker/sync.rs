//! Connection sync in the worker (`crate::sync`): the master's records of
//! the connections it forwards, and the backup's installation of what a
//! master sent, for the IPv4 table and the IPv6 one (whose NAT64 and TUN
//! connections reach IPv4 servers, kept IPv4-mapped as the table keeps
//! them).
//!
//! A SYN-proxied connection is sent only once its server answered (the
//! translation is known); the backup installs it with `F_SYNPROXY |
//! F_REPLIED`, the delta in `ring_seq` and the window scale in the state's
//! high nibble, as `synproxy_server_synack` leaves a connection on the
//! master, so that the next segment is translated as the master would.

use super::*;
use crate::conn::entry::{mapped, unmapped};
use crate::conn::{Addrs6, Refused6, Tuple6};
use crate::sync::{Refused, SynSeq, SyncRecord, SyncRecord6};
use crate::wire::ipv6;
use std::net::IpAddr;

/// The translation a backup needs for a SYN-proxied connection; None for
/// any other.
#[inline]
fn synseq(c: &Conn) -> Option<SynSeq> {
    c.synproxy_translated().then(|| SynSeq {
        delta: c.ring_seq,
        ws: c.synproxy_ws(),
    })
}

/// A received connection's SYN-proxy translation, on a new entry.
fn set_synseq(c: &mut Conn, s: Option<SynSeq>) {
    if let (Some(s), true) = (s, c.proto == ipv4::PROTO_TCP) {
        c.flags |= F_SYNPROXY | F_REPLIED;
        c.ring_seq = s.delta;
        c.state = (c.state & 0x0f) | (s.ws & 0x0f) << 4;
    }
}

/// Moves an existing entry to a received state, keeping ActiveConn and
/// InActConn and the eviction candidates right (IPVS's backup moves the
/// counters the same way in `ip_vs_proc_conn`).
fn update_state(
    conns: &mut crate::conn::ConnTable,
    snap: &Snapshot,
    ci: u32,
    tcp: bool,
    state: TcpState,
    timeout: u32,
    now: u64,
) {
    let c = conns.get_mut(ci);
    let old = TcpState::from_u8(c.state & 0x0f);
    if tcp && old != state {
        c.state = (c.state & 0xf0) | state as u8;
        let active = state == TcpState::Established;
        if active != c.is_active() {
            c.flags ^= F_INACTIVE;
            if let Some(e) = snap.dest(c.dest_id) {
                e.dest.shared.conn_became(active);
            }
        }
        if state.is_half_open() != old.is_half_open() {
            conns.reclassify(ci);
        }
    }
    conns.set_timeout(ci, timeout, now);
}

/// A received state and timeout: the message's, else ours for the state.
fn state_timeout(snap: &Snapshot, proto: u8, state: u8, timeout_s: u32) -> (bool, TcpState, u32) {
    let tcp = proto == ipv4::PROTO_TCP;
    let state = if tcp {
        TcpState::from_u8(state & 0x0f)
    } else {
        TcpState::None
    };
    let timeout = match (timeout_s, tcp) {
        (t, _) if t > 0 => t,
        (_, true) => snap.timeouts.tcp(state),
        (_, false) => snap.timeouts.udp,
    };
    (tcp, state, timeout)
}

impl<P: Port> Core<P> {
    /// An inbound packet of connection `ci` on a sync master: counted, and
    /// the connection recorded when IPVS's rules say so.
    #[inline]
    pub(super) fn sync_note(&mut self, snap: &Snapshot, ci: u32) {
        let (pkts, last) = self.sync_meta.count(ci);
        let c = self.conns.get(ci);
        if self.sync_policy.conn_needed(c.proto, c.state, last, pkts) {
            self.sync_send(snap, ci);
        }
    }

    /// Records connection `ci`, and the persistence template it holds
    /// (IPVS syncs a connection's controller after it), in this worker's
    /// ring; a full ring is counted.
    #[cold]
    pub(super) fn sync_send(&mut self, snap: &Snapshot, ci: u32) {
        let c = *self.conns.get(ci);
        if c.synproxy_waiting() {
            // No translation to send yet (and no synced state before the
            // server's SYN-ACK).
            return;
        }
        let tcp = c.proto == ipv4::PROTO_TCP;
        let state = if tcp { c.state & 0x0f } else { 0 };
        self.sync_meta.sent(ci, state);
        let fullnat = c.fwd == FwdMethod::FullNat;
        let r = SyncRecord {
            proto: c.proto,
            state,
            fwd: c.fwd,
            template: false,
            caddr: c.caddr,
            cport: c.cport,
            vaddr: c.vaddr,
            vport: c.vport,
            daddr: c.daddr,
            dport: c.dport,
            laddr: if fullnat { c.laddr } else { [0; 4] },
            lport: if fullnat { c.lport } else { 0 },
            timeout_s: c.timeout_s,
            synproxy: synseq(&c),
        };
        self.sync_push(r);
        if c.flags & F_TEMPLATE_REF == 0 {
            return;
        }
        // The template: <proto, client & mask, 0, vaddr, service port,
        // server address, server port>, as IPVS keys it.
        let Some(si) = snap.service(c.proto, c.vaddr, c.vport) else {
            return;
        };
        let svc = &snap.services[si as usize];
        let (Some(p), Some(d)) = (svc.persistence, snap.dest(c.dest_id)) else {
            return;
        };
        if svc.id() != c.svc_id {
            return;
        }
        let masked = (u32::from_be_bytes(c.caddr) & u32::from(p.netmask)).to_be_bytes();
        self.sync_push(SyncRecord {
            proto: c.proto,
            state: 0,
            fwd: d.dest.fwd,
            template: true,
            caddr: masked,
            cport: 0,
            vaddr: c.vaddr,
            vport: svc.vport,
            daddr: d.dest.addr.octets(),
            dport: d.dest.port,
            laddr: [0; 4],
            lport: 0,
            timeout_s: p.timeout_s,
            synproxy: None,
        });
    }

    /// [`Self::sync_note`] for IPv6 connection `ci`.
    #[inline]
    pub(super) fn sync_note6(&mut self, snap: &Snapshot, ci: u32) {
        let (pkts, last) = self.sync_meta6.count(ci);
        let c = self.conns6.get(ci);
        if self.sync_policy.conn_needed(c.proto, c.state, last, pkts) {
            self.sync_send6(snap, ci);
        }
    }

    /// [`Self::sync_send`] for IPv6 connection `ci` and its template (the
    /// client's prefix of the service's `-M` length, as `new_conn6` keys
    /// it).
    #[cold]
    pub(super) fn sync_send6(&mut self, snap: &Snapshot, ci: u32) {
        let c = *self.conns6.get(ci);
        if c.synproxy_waiting() {
            return;
        }
        let a = self.conns6.get6(ci);
        let tcp = c.proto == ipv6::NH_TCP;
        let state = if tcp { c.state & 0x0f } else { 0 };
        self.sync_meta6.sent(ci, state);
        let fullnat = c.fwd == FwdMethod::FullNat;
        self.sync_push(SyncRecord6 {
            proto: c.proto,
            state,
            fwd: c.fwd,
            template: false,
            caddr: a.caddr,
            cport: c.cport,
            vaddr: a.vaddr,
            vport: c.vport,
            daddr: a.daddr,
            dport: c.dport,
            laddr: if fullnat { a.laddr } else { [0; 16] },
            lport: if fullnat { c.lport } else { 0 },
            timeout_s: c.timeout_s,
            synproxy: synseq(&c),
        });
        if c.flags & F_TEMPLATE_REF == 0 {
            return;
        }
        let Some(si) = snap.service6(c.proto, &a.vaddr, c.vport) else {
            return;
        };
        let svc = &snap.services6[si as usize];
        let Some(p) = svc.persistence else {
            return;
        };
        let Some(d) = svc.dests.iter().find(|d| d.shared.id == c.dest_id) else {
            return;
        };
        if svc.id() != c.svc_id {
            return;
        }
        self.sync_push(SyncRecord6 {
            proto: c.proto,
            state: 0,
            fwd: d.fwd,
            template: true,
            caddr: p.mask(&a.caddr),
            cport: 0,
            vaddr: a.vaddr,
            vport: svc.vport,
            daddr: a.daddr,
            dport: d.port,
            laddr: [0; 16],
            lport: 0,
            timeout_s: p.timeout_s,
            synproxy: None,
        });
    }

    #[inline]
    fn sync_push(&self, r: impl Into<crate::sync::Record>) {
        if self.shared.sync.push(self.id, r) {
            self.ctr().sync_recorded.inc();
        } else {
            self.ctr().sync_ring_full.inc();
        }
    }

    /// Installs a connection or template a master sent, as IPVS's backup
    /// does (`ip_vs_proc_conn`): an entry already here takes the state and
    /// timeout; a new one gets the message's state, timeout, real server
    /// and, for FULLNAT, local address and port, which its presence in the
    /// table keeps from being allocated again. Its real server counts it
    /// (ActiveConn in ESTABLISHED, InActConn otherwise). A synced
    /// connection holds no reference on its template, as after IPVS's
    /// sync: the template lives on its own timeout, refreshed by the
    /// master.
    pub(super) fn sync_install(
        &mut self,
        snap: &Snapshot,
        r: &SyncRecord,
        now: u64,
    ) -> Result<(), Refused> {
        let si = snap
            .service(r.proto, r.vaddr, r.vport)
            .ok_or(Refused::NoService)? as usize;
        let svc = &snap.services[si];
        let matches = |d: &crate::service::Dest| {
            d.addr.octets() == r.daddr && (d.port == r.dport || d.port == 0)
        };
        // A server removed here drains (its connections go on): so does
        // one the master still sends to, as IPVS's backup installs a
        // connection whose server it no longer has. A template only for a
        // live server (no new connection may follow one that drains).
        let dest = match svc.dests.iter().find(|d| matches(d)) {
            Some(d) => d,
            None if !r.template => snap
                .dests()
                .find(|e| e.svc.id == svc.id() && matches(&e.dest))
                .map(|e| &e.dest)
                .ok_or(Refused::NoDest)?,
            None => return Err(Refused::NoDest),
        };
        let now_s = (now / 1000) as u32;
        if r.template {
            let p = svc.persistence.ok_or(Refused::NoService)?;
            let timeout = if r.timeout_s > 0 {
                r.timeout_s
            } else {
                p.timeout_s
            };
            let c = snap
                .templates
                .create(svc.id(), r.caddr, dest.shared.id, now_s, timeout)
                .ok_or(Refused::TemplateFull)?;
            template_made(snap, dest, &c);
            // No connection holds it: it lives until its timeout.
            snap.templates.release(c.held.slot, now_s);
            return Ok(());
        }
        let (tcp, state, timeout) = state_timeout(snap, r.proto, r.state, r.timeout_s);
        let t = Tuple {
            proto: r.proto,
            saddr: r.caddr,
            sport: r.cport,
            daddr: r.vaddr,
            dport: r.vport,
        };
        let h = self.conns.hash(&t);
        if let Some(ci) = self.conns.lookup_in(&t, h) {
            update_state(&mut self.conns, snap, ci, tcp, state, timeout, now);
            return Ok(());
        }
        let active = tcp && state == TcpState::Established;
        let mut c = Conn {
            caddr: r.caddr,
            cport: r.cport,
            vaddr: r.vaddr,
            vport: r.vport,
            daddr: r.daddr,
            dport: r.dport,
            laddr: r.caddr,
            lport: r.cport,
            proto: r.proto,
            state: state as u8,
            fwd: dest.fwd,
            // A synced UDP flow has come back: it is no eviction candidate.
            flags: if active { 0 } else { F_INACTIVE } | if tcp { 0 } else { F_CONFIRMED },
            dest_id: dest.shared.id,
            svc_id: svc.id(),
            timeout_s: timeout,
            ..Conn::EMPTY
        };
        match dest.fwd {
            FwdMethod::Nat => c.flags |= F_OUT_INDEXED,
            FwdMethod::FullNat => {
                let la = Ipv4Addr::from(r.laddr);
                if !svc.laddrs.contains(&la) {
                    return Err(Refused::NoLaddr);
                }
                c.laddr = r.laddr;
                c.lport = r.lport;
                c.flags |= F_OUT_INDEXED;
                if self.conns.out_tuple_in_use(&c.out_tuple()) {
                    return Err(Refused::LportInUse);
                }
            }
            FwdMethod::Dr | FwdMethod::Tun => {}
        }
        if dest.fwd.sees_replies() {
            set_synseq(&mut c, r.synproxy);
        }
        if self.conns.is_full() {
            self.make_room(snap, now).map_err(|_| Refused::TableFull)?;
        }
        let ci = self.conns.insert(c, now).map_err(|_| Refused::TableFull)?;
        dest.bind_conn(active);
        self.sync_meta.installed(ci);
        self.shared.sync.mark_installed();
        Ok(())
    }

    /// [`Self::sync_install`] for the IPv6 table: the service, server and
    /// local address are looked up among the IPv6 service's (NAT64's
    /// IPv4 ones compared IPv4-mapped); NAT64's local port must be free in
    /// both tables, as `new_conn6` allocates it.
    pub(super) fn sync_install6(
        &mut self,
        snap: &Snapshot,
        r: &SyncRecord6,
        now: u64,
    ) -> Result<(), Refused> {
        let si = snap
            .service6(r.proto, &r.vaddr, r.vport)
            .ok_or(Refused::NoService)? as usize;
        let svc = &snap.services6[si];
        let addr16 = |a: &IpAddr| match a {
            IpAddr::V6(a) => a.octets(),
            IpAddr::V4(a) => mapped(a.octets()),
        };
        let di = svc
            .dests
            .iter()
            .zip(&svc.addrs)
            .position(|(d, a)| addr16(a) == r.daddr && (d.port == r.dport || d.port == 0))
            .ok_or(Refused::NoDest)?;
        let dest = &svc.dests[di];
        let now_s = (now / 1000) as u32;
        if r.template {
            let p = svc.persistence.ok_or(Refused::NoService)?;
            let timeout = if r.timeout_s > 0 {
                r.timeout_s
            } else {
                p.timeout_s
            };
            let c = snap
                .templates6
                .create6(svc.id(), &r.caddr, dest.shared.id, now_s, timeout)
                .ok_or(Refused::TemplateFull)?;
            template_made(snap, dest, &c);
            snap.templates6.release(c.held.slot, now_s);
            return Ok(());
        }
        let (tcp, state, timeout) = state_timeout(snap, r.proto, r.state, r.timeout_s);
        let t = Tuple6 {
            proto: r.proto,
            saddr: r.caddr,
            sport: r.cport,
            daddr: r.vaddr,
            dport: r.vport,
        };
        let h = self.conns6.hash6(&t);
        if let Some(ci) = self.conns6.lookup_in6(&t, h) {
            update_state(&mut self.conns6, snap, ci, tcp, state, timeout, now);
            return Ok(());
        }
        let fold = |a: &[u8; 16]| crate::sched::fold_v6(a).octets();
        let active = tcp && state == TcpState::Established;
        let mut c = Conn {
            caddr: fold(&r.caddr),
            cport: r.cport,
            vaddr: fold(&r.vaddr),
            vport: r.vport,
            daddr: unmapped(&r.daddr).unwrap_or_else(|| fold(&r.daddr)),
            dport: r.dport,
            laddr: fold(&r.caddr),
            lport: r.cport,
            proto: r.proto,
            state: state as u8,
            fwd: dest.fwd,
            flags: if active { 0 } else { F_INACTIVE } | if tcp { 0 } else { F_CONFIRMED },
            dest_id: dest.shared.id,
            svc_id: svc.id(),
            timeout_s: timeout,
            ..Conn::EMPTY
        };
        let mut a = Addrs6 {
            caddr: r.caddr,
            vaddr: r.vaddr,
            daddr: r.daddr,
            laddr: r.caddr,
        };
        match dest.fwd {
            FwdMethod::Nat => c.flags |= F_OUT_INDEXED,
            FwdMethod::FullNat => {
                let la4 = unmapped(&r.laddr);
                let known = match la4 {
                    Some(l) => svc.laddrs4.contains(&Ipv4Addr::from(l)),
                    None => svc.laddrs6.contains(&Ipv6Addr::from(r.laddr)),
                };
                if !known {
                    return Err(Refused::NoLaddr);
                }
                a.laddr = r.laddr;
                c.laddr = la4.unwrap_or_else(|| fold(&r.laddr));
                c.lport = r.lport;
                c.flags |= F_OUT_INDEXED;
                if self.conns6.out_tuple_in_use6(&a.out_tuple(&c)) {
                    return Err(Refused::LportInUse);
                }
                // NAT64: IPv4 FULLNAT services may share the local address.
                if let (Some(l), Some(d)) = (la4, unmapped(&r.daddr)) {
                    let t4 = Tuple {
                        proto: r.proto,
                        saddr: d,
                        sport: r.dport,
                        daddr: l,
                        dport: r.lport,
                    };
                    if self.conns.out_tuple_in_use(&t4) {
                        return Err(Refused::LportInUse);
                    }
                }
            }
            FwdMethod::Dr | FwdMethod::Tun => {}
        }
        if dest.fwd.sees_replies() {
            set_synseq(&mut c, r.synproxy);
        }
        if self.conns6.is_full() {
            self.make_room6(snap, now).map_err(|_| Refused::TableFull)?;
        }
        let ci = self.conns6.insert6(c, a, now).map_err(|e| match e {
            Refused6::Full => Refused::TableFull,
            Refused6::AddrPoolFull => Refused::AddrPoolFull,
        })?;
        dest.bind_conn(active);
        self.sync_meta6.installed(ci);
        self.shared.sync.mark_installed();
        Ok(())
    }
}
