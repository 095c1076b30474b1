//! Connection sync in the worker (`crate::sync`): the master's records of
//! the connections it forwards, and the backup's installation of what a
//! master sent (IPv4; IPv6 connections are not synchronised yet).

use super::*;
use crate::sync::{Refused, SyncRecord};

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
        });
    }

    #[inline]
    fn sync_push(&self, r: SyncRecord) {
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
        let dest = svc
            .dests
            .iter()
            .find(|d| d.addr.octets() == r.daddr && (d.port == r.dport || d.port == 0))
            .ok_or(Refused::NoDest)?;
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
            if let Some(e) = c.evicted.and_then(|d| snap.dest(d)) {
                e.dest.shared.persist_released();
            }
            if c.fresh {
                dest.shared
                    .persistconns
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            // No connection holds it: it lives until its timeout.
            snap.templates.release(c.held.slot, now_s);
            return Ok(());
        }
        let tcp = r.proto == ipv4::PROTO_TCP;
        let state = if tcp {
            TcpState::from_u8(r.state & 0x0f)
        } else {
            TcpState::None
        };
        let timeout = match (r.timeout_s, tcp) {
            (t, _) if t > 0 => t,
            (_, true) => snap.timeouts.tcp(state),
            (_, false) => snap.timeouts.udp,
        };
        let t = Tuple {
            proto: r.proto,
            saddr: r.caddr,
            sport: r.cport,
            daddr: r.vaddr,
            dport: r.vport,
        };
        let h = self.conns.hash(&t);
        if let Some(ci) = self.conns.lookup_in(&t, h) {
            let c = self.conns.get_mut(ci);
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
                    self.conns.reclassify(ci);
                }
            }
            self.conns.set_timeout(ci, timeout, now);
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
        if self.conns.is_full() {
            self.make_room(snap, now).map_err(|_| Refused::TableFull)?;
        }
        let ci = self.conns.insert(c, now).map_err(|_| Refused::TableFull)?;
        dest.bind_conn(active);
        self.sync_meta.installed(ci);
        self.shared.sync.mark_installed();
        Ok(())
    }
}
