//! The SYN proxy's hooks for IPv6 services (`fwd/synproxy.rs` has the
//! handshake): the same steps as IPv4's in `worker.rs` over the IPv6
//! connection table, towards an IPv6 real server (NAT66, FULLNAT66) or,
//! for NAT64, an IPv4 one. The client side is IPv6 throughout: the cookie
//! covers the IPv6 4-tuple and the SYN-ACK is an IPv6 segment. NAT64's
//! server side is IPv4: the director's SYN and ACK leave from the IPv4
//! local address, and the server's SYN-ACK or RST arrives through
//! `reply64`. The sequence translation works on the TCP header alone, so
//! it runs before NAT64's translation inbound and before it outbound
//! alike, and RFC 7915 leaves sequence numbers, windows and options as
//! they are.

use super::*;
use crate::conn::entry::unmapped;
use crate::fwd::nat66::L36;
use std::ops::Range;

impl<P: Port> Core<P> {
    /// SYN proxy, a client segment to an IPv6 service without a
    /// connection: a SYN is answered with a cookie (nothing is created);
    /// an ACK whose cookie validates creates the connection and sends the
    /// SYN to the real server; anything else is dropped. Sources no
    /// SYN-ACK may go to (multicast, loopback, unspecified, IPv4-mapped,
    /// our own) were refused before (`handle6`, `inbound6`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn synproxy_first6(
        &mut self,
        snap: &Snapshot,
        si: usize,
        mut pkt: P::Pkt,
        o: L36,
        t: &Tuple6,
        flags: u8,
        in_port: u16,
        now: u64,
    ) {
        let key = self.shared.synproxy_key;
        let now_s = now / 1000;
        match flags & (l4::TCP_SYN | l4::TCP_ACK | l4::TCP_RST) {
            l4::TCP_SYN => {
                let need = o.l3 + synproxy::MAX_SEGMENT_LEN6;
                if pkt.len() < need && !pkt.set_len(need) {
                    return self.drop_pkt(DropReason::NoBuffer, pkt);
                }
                let l4 = o.l4 - o.l3;
                let (n, _) = synproxy::answer_syn6(&mut pkt.data_mut()[o.l3..], l4, &key, now_s);
                pkt.set_len(o.l3 + n);
                self.ctr().synproxy_cookies_sent.inc();
                self.send6(snap, pkt, t.saddr, now);
            }
            l4::TCP_ACK => {
                let seg = &pkt.data()[o.l4..o.end];
                let isn = tcp::seq(seg).wrapping_sub(1);
                let cookie = tcp::ack(seg).wrapping_sub(1);
                let Some(opts) = synproxy::check_cookie(&key, t, isn, cookie, now_s) else {
                    self.ctr().synproxy_cookies_failed.inc();
                    return self.drop_pkt(DropReason::SynproxyBadCookie, pkt);
                };
                let window = tcp::window(seg);
                let carries = seg.len() > tcp::header_len(seg) || flags & l4::TCP_FIN != 0;
                self.ctr().synproxy_cookies_validated.inc();
                let ci = match self.new_conn6(snap, si, t, l4::TCP_SYN, now, Some(cookie)) {
                    Ok(ci) => ci,
                    Err(r) => return self.drop_pkt(r, pkt),
                };
                let dest = self.conns6.get(ci).dest_id;
                self.count_traffic(snap, dest, (o.end - o.l3) as u64, true);
                self.synproxy_syn6(snap, ci, isn, &opts, window, now);
                if carries {
                    let seg = o.l4..o.end;
                    self.synproxy_hold(snap, pkt, ci, HeldFlow::V6(*t), seg, in_port, now);
                }
                // A bare ACK is consumed: the director acks the server's
                // SYN-ACK itself.
            }
            _ => self.drop_pkt(DropReason::NoConnection, pkt),
        }
    }

    /// Sends the director's SYN for IPv6 connection `ci` to its real
    /// server: IPv6 from the client (NAT66) or the local address
    /// (FULLNAT66), or IPv4 from the IPv4 local address (NAT64).
    pub(super) fn synproxy_syn6(
        &mut self,
        snap: &Snapshot,
        ci: u32,
        isn: u32,
        opts: &synproxy::CookieOptions,
        window: u16,
        now: u64,
    ) {
        let c = *self.conns6.get(ci);
        let a = self.conns6.get6(ci);
        if let Some(rip4) = unmapped(&a.daddr) {
            let Some(lip4) = unmapped(&a.laddr) else {
                return self.ctr().drop(DropReason::Nat64Untranslatable);
            };
            let (src, rs) = ((lip4, c.lport), (rip4, c.dport));
            return self.synproxy_syn4(snap, src, rs, isn, opts, window, now);
        }
        let src = server_side_src6(&c, &a);
        let port = snap
            .routes6
            .lookup(Ipv6Addr::from(a.daddr))
            .map_or(0, |nh| nh.port as usize);
        let l3 = ethernet::HEADER_LEN;
        let eth = ethernet::ETHERTYPE_IPV6;
        let Some(mut pkt) = self.synproxy_frame(port, eth, synproxy::MAX_SEGMENT_LEN6) else {
            return;
        };
        let rs = (a.daddr, c.dport);
        let n = synproxy::syn_to_rs6(&mut pkt.data_mut()[l3..], src, rs, isn, opts, window);
        pkt.set_len(l3 + n);
        self.send6(snap, pkt, a.daddr, now);
    }

    /// The SYN proxy's part of a client segment of IPv6 connection `ci`
    /// (its TCP header at `seg`): held while the server's handshake is
    /// pending (a RST passes, as for IPv4), its acknowledgements
    /// translated after. Returns the packet when it goes on.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn synproxy_client6(
        &mut self,
        snap: &Snapshot,
        pkt: P::Pkt,
        ci: u32,
        t: &Tuple6,
        seg: Range<usize>,
        fragment: bool,
        later: bool,
        flags: u8,
        in_port: u16,
        now: u64,
    ) -> Option<P::Pkt> {
        let c = self.conns6.get(ci);
        if c.flags & F_SYNPROXY == 0 || c.proto != ipv6::NH_TCP {
            return Some(pkt);
        }
        let mut pkt = pkt;
        if c.synproxy_waiting() {
            // Held segments are replayed whole; a fragment of one would be
            // taken for a repeat. The client retransmits.
            if fragment {
                self.drop_pkt(DropReason::Fragment, pkt);
                return None;
            }
            if flags & l4::TCP_RST == 0 {
                self.synproxy_hold(snap, pkt, ci, HeldFlow::V6(*t), seg, in_port, now);
                return None;
            }
        } else if !later {
            let delta = c.ring_seq;
            synproxy::client_to_rs(&mut pkt.data_mut()[seg], delta);
        }
        Some(pkt)
    }

    /// The SYN proxy's part of a server segment of IPv6 connection `ci`
    /// (its TCP header at `seg`, in an IPv6 packet or, for NAT64, an IPv4
    /// one starting at `l3`). While the director waits for the server: a
    /// SYN-ACK completes the server's handshake (consumed), a RST goes on
    /// to the client in the client's sequence space, anything else is
    /// dropped. After: sequence number and window translated. Returns the
    /// packet when it goes on to the client.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn synproxy_server6(
        &mut self,
        snap: &Snapshot,
        mut pkt: P::Pkt,
        ci: u32,
        l3: usize,
        seg: Range<usize>,
        fragment: bool,
        later: bool,
        flags: u8,
        now: u64,
    ) -> Option<P::Pkt> {
        let c = *self.conns6.get(ci);
        if c.flags & F_SYNPROXY == 0 || c.proto != ipv6::NH_TCP {
            return Some(pkt);
        }
        let waiting = c.synproxy_waiting();
        if waiting && fragment {
            // The SYN-ACK or RST this waits for is never fragmented.
            self.drop_pkt(DropReason::Fragment, pkt);
            return None;
        }
        if later {
            // The header is in the first fragment only.
            return Some(pkt);
        }
        if !waiting {
            synproxy::rs_to_client(&mut pkt.data_mut()[seg], c.ring_seq, c.synproxy_ws());
            return Some(pkt);
        }
        if flags & l4::TCP_RST != 0 {
            // Refused: the client gets the RST in its own sequence space,
            // and its held segments go.
            let th = &mut pkt.data_mut()[seg];
            let d = synproxy::rst_delta(tcp::seq(th), c.ring_seq);
            synproxy::rs_to_client(th, d, synproxy::NO_RESCALE);
            self.conns6.get_mut(ci).ring_seq = d;
            self.ctr().synproxy_rs_refused.inc();
            self.synproxy_drop_held(ci, HeldFlow::V6(in_tuple6(&c, &self.conns6.get6(ci))));
            return Some(pkt);
        }
        if flags & (l4::TCP_SYN | l4::TCP_ACK) == l4::TCP_SYN | l4::TCP_ACK {
            self.synproxy_server_synack6(snap, pkt, ci, l3, seg, now);
        } else {
            self.drop_pkt(DropReason::NoConnection, pkt);
        }
        None
    }

    /// The real server's SYN-ACK for a SYN-proxied IPv6 connection:
    /// recorded, turned into the ACK that completes the server's handshake
    /// (IPv6, or IPv4 for NAT64), and the client's held segments released.
    fn synproxy_server_synack6(
        &mut self,
        snap: &Snapshot,
        mut pkt: P::Pkt,
        ci: u32,
        l3: usize,
        seg: Range<usize>,
        now: u64,
    ) {
        let end = seg.end;
        let (c, window) = self.synproxy_record(true, snap, ci, seg.clone(), &pkt, now);
        let a = self.conns6.get6(ci);
        self.count_traffic(snap, c.dest_id, (end - l3) as u64, false);
        self.ctr().synproxy_rs_established.inc();
        if let (Some(rip4), Some(lip4)) = (unmapped(&a.daddr), unmapped(&a.laddr)) {
            let id = self.ip_ids.fresh();
            let src = (lip4, c.lport);
            let n = synproxy::ack_to_rs(&mut pkt.data_mut()[l3..], src, window, id);
            pkt.set_len(l3 + n);
            self.send(snap, pkt, rip4, now);
        } else {
            let src = server_side_src6(&c, &a);
            let l4 = seg.start - l3;
            let n = synproxy::ack_to_rs6(&mut pkt.data_mut()[l3..], l4, src, window);
            pkt.set_len(l3 + n);
            self.send6(snap, pkt, a.daddr, now);
        }
        self.synproxy_release(snap, ci, HeldFlow::V6(in_tuple6(&c, &a)), now);
    }
}

/// The source an IPv6 real server sees: the client (NAT66) or the local
/// address (FULLNAT66).
#[inline(always)]
fn server_side_src6(c: &Conn, a: &crate::conn::Addrs6) -> ([u8; 16], u16) {
    if c.fwd == FwdMethod::FullNat {
        (a.laddr, c.lport)
    } else {
        (a.caddr, c.cport)
    }
}

/// The tuple an IPv6 connection's client packets carry.
#[inline(always)]
fn in_tuple6(c: &Conn, a: &crate::conn::Addrs6) -> Tuple6 {
    Tuple6 {
        proto: c.proto,
        saddr: a.caddr,
        sport: c.cport,
        daddr: a.vaddr,
        dport: c.vport,
    }
}
