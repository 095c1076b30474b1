//! The worker's IPv6 path: the same steps as IPv4's (parse, classify the
//! destination, find or make the connection, rewrite, route, resolve) over
//! the worker's IPv6 connection table and NDP neighbour cache.
//!
//! - Parsing walks at most eight extension headers (`wire::ipv6`) and
//!   refuses, counted, what a balancer must not accept: fragments (the
//!   director does not reassemble), a Routing header of type 0 (RFC 5095)
//!   or with segments left (the packet is not ours to end), malformed
//!   chains.
//! - DR rewrites the MACs only; NAT66 and FULLNAT66 rewrite addresses and
//!   ports (`fwd/nat66.rs`); TUN wraps in IPv6 (`fwd/tun6.rs`); NAT64 is
//!   FULLNAT towards an IPv4 real server from an IPv4 local address,
//!   translated by `fwd/nat64.rs` (RFC 7915).
//! - IPv6 is never fragmented (RFC 8200 §5): a packet that does not fit
//!   its egress link is answered with Packet Too Big.
//! - NDP (RFC 4861): solicitations are answered for active VIPs and local
//!   addresses only; next hops are resolved with solicitations; anything
//!   else is refused or left to the kernel.
//!
//! Flow ownership is IPv4's: NAT66 by a keyed hash of the client address
//! and port, FULLNAT (IPv6 or NAT64) by the local port's slice.

use super::*;
use crate::conn::entry::{mapped, unmapped};
use crate::conn::{Addrs6, Refused6, Tuple6};
use crate::fwd::nat66::{self, L36};
use crate::fwd::{icmp6, nat64, tun, tun6};
use crate::route::NextHop6;
use crate::sched::fold_v6;
use crate::wire::{icmpv6, ipv6, ndp};
use std::net::{IpAddr, Ipv6Addr};

/// A neighbour learnt over NDP by one worker, passed on to the others.
#[derive(Clone, Copy, Debug)]
pub struct NeighEvent6 {
    pub ip: Ipv6Addr,
    pub mac: Mac,
    pub port: u16,
}

/// The parsed headers of an IPv6 packet being handled.
#[derive(Clone, Copy)]
pub(super) struct Ip6 {
    pub l2: ethernet::L2,
    pub info: ipv6::Ipv6Info,
}

/// What forwarding reads of a TCP or UDP packet's IPv6 headers, beside
/// the addresses (read in place): built from the fixed header alone when
/// no extension header follows it, without the whole `Ipv6Info`.
#[derive(Clone, Copy)]
pub(super) struct Seg6 {
    pub o: L36,
    pub hop_limit: u8,
    /// Part of a fragmented packet (`Ipv6Info::is_fragment`).
    pub frag: bool,
    /// The tuple's hash, when the burst's prefetch pass computed it.
    pub hash: Option<u64>,
}

/// The drop reason for an IPv6 header `ipv6::parse` refuses.
#[inline]
fn ipv6_drop_reason(e: ipv6::Ipv6Error) -> DropReason {
    match e {
        ipv6::Ipv6Error::Truncated => DropReason::Truncated,
        ipv6::Ipv6Error::BadVersion | ipv6::Ipv6Error::BadPayloadLen => DropReason::Ipv6,
        ipv6::Ipv6Error::HopByHopNotFirst
        | ipv6::Ipv6Error::TooManyExtHeaders
        | ipv6::Ipv6Error::BadExtHeader => DropReason::Ipv6ExtHeaders,
    }
}

#[inline(always)]
fn folded(a: &[u8; 16]) -> [u8; 4] {
    fold_v6(a).octets()
}

impl<P: Port> Core<P> {
    /// The flow hash, from the prefetch pass when it saw this very tuple.
    #[inline(always)]
    fn hash6_of(&mut self, t: &Tuple6) -> u64 {
        match self.hash_hint6.take() {
            Some((ht, h)) if ht == *t => h,
            _ => self.conns6.hash6(t),
        }
    }

    /// The hash of a packet's tuple `t`: the prefetch pass's, or computed.
    #[inline(always)]
    fn seg_hash6(&mut self, s: &Seg6, t: &Tuple6) -> u64 {
        match s.hash {
            Some(h) => {
                debug_assert_eq!(h, self.conns6.hash6(t));
                h
            }
            None => self.hash6_of(t),
        }
    }

    /// An IPv6 frame.
    pub(super) fn handle6(
        &mut self,
        snap: &Snapshot,
        pkt: P::Pkt,
        l2: ethernet::L2,
        in_port: u16,
        now: u64,
        handed: bool,
    ) {
        // A director configured for IPv4 only leaves IPv6 to the kernel, as
        // before IPv6 was forwarded: its own IPv6 (management, neighbour
        // discovery for its link-local addresses) keeps working through
        // the exception path.
        if !snap.has_ipv6() {
            return self.pass_to_kernel(pkt, in_port, DropReason::Ipv6NotConfigured);
        }
        let l3 = l2.l3_offset;
        let data = pkt.data();
        let Some(p) = data.get(l3..) else {
            return self.drop_pkt(DropReason::Truncated, pkt);
        };
        // Most packets carry TCP or UDP right after the fixed header: they
        // take `tcp_udp6`, which reads the addresses in place and builds
        // no `Ipv6Info`. The checks are the ones below, in the same order.
        if p.len() >= ipv6::HEADER_LEN
            && matches!(ipv6::next_header(p), ipv6::NH_TCP | ipv6::NH_UDP)
        {
            return match ipv6::parse_fixed(p) {
                Ok(fx) => self.tcp_udp6(snap, pkt, l3, fx, in_port, now, handed),
                Err(e) => self.drop_pkt(ipv6_drop_reason(e), pkt),
            };
        }
        let info = match ipv6::parse(p) {
            Ok(i) => i,
            Err(e) => return self.drop_pkt(ipv6_drop_reason(e), pkt),
        };
        // (No prefetch hint: the pass peeks only at TCP and UDP right
        // after the fixed header, which `tcp_udp6` took.)
        let kind = snap.addr_kind6(&info.dst);
        // Neighbour Discovery first: solicitations travel to
        // solicited-node groups, which are no address of ours.
        if info.proto == ipv6::NH_ICMPV6 && !info.is_fragment() {
            let ty = data.get(l3 + info.l4_offset).copied();
            if ty == Some(icmpv6::TYPE_NEIGHBOR_SOLICIT) || ty == Some(icmpv6::TYPE_NEIGHBOR_ADVERT)
            {
                return self.handle_ndp(snap, pkt, Ip6 { l2, info }, kind, in_port, now);
            }
        }
        match kind {
            Some(AddrKind::Own) => return self.pass_to_kernel(pkt, in_port, DropReason::ToKernel),
            Some(AddrKind::Vip { active: false }) | Some(AddrKind::Laddr { active: false }) => {
                return self.drop_pkt(DropReason::VipInactive, pkt)
            }
            // Multicast (VRRPv3 adverts, MLD, router advertisements) and
            // link-local unicast (never a VIP, RFC 4291 §2.5.6) are the
            // kernel's; the dataplane never forwards them.
            None if ipv6::is_multicast(&info.dst) || ipv6::is_link_local(&info.dst) => {
                return self.pass_to_kernel(pkt, in_port, DropReason::NotOurs)
            }
            _ => {}
        }
        // Martian sources, as Linux's `ip6_rcv_core` drops them before
        // IPVS: multicast, loopback on a wire, IPv4-mapped (RFC 4291
        // §2.5.5.2); the unspecified address, which no TCP or UDP peer may
        // use (only DAD's solicitations, handled above). An address of
        // ours is refused where a connection would be made (`inbound6`).
        if martian_src6(&info.src) {
            return self.drop_pkt(DropReason::MartianSource, pkt);
        }
        if info.routing_type == Some(0) || info.segments_left != 0 {
            return self.drop_pkt(DropReason::Ipv6Routing, pkt);
        }
        let ip = Ip6 { l2, info };
        if info.is_fragment() {
            return self.fragment6(snap, pkt, ip, kind, in_port, now, handed);
        }
        match info.proto {
            ipv6::NH_TCP | ipv6::NH_UDP => {}
            ipv6::NH_ICMPV6 => return self.handle_icmp6(snap, pkt, ip, kind, in_port, now, handed),
            _ if kind.is_none() => return self.drop_pkt(DropReason::NotOurs, pkt),
            _ => return self.drop_pkt(DropReason::UnsupportedProto, pkt),
        }
        let s = Seg6 {
            o: L36 {
                l3,
                l4: l3 + info.l4_offset,
                end: l3 + info.total_len,
                proto: info.proto,
            },
            hop_limit: info.hop_limit,
            frag: false,
            hash: None,
        };
        self.tcp_udp_seg6(snap, pkt, s, kind, in_port, now, handed)
    }

    /// A TCP or UDP packet right after the fixed header (no extension
    /// header, so no fragment and no Routing header): `handle6`'s checks
    /// on the fields it needs, read in place.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn tcp_udp6(
        &mut self,
        snap: &Snapshot,
        pkt: P::Pkt,
        l3: usize,
        fx: ipv6::Fixed,
        in_port: u16,
        now: u64,
        handed: bool,
    ) {
        let p = &pkt.data()[l3..];
        let dst = ipv6::dst_ref(p);
        let hint = self.peek6.take();
        let kind = match hint {
            Some((_, k)) => k,
            None => snap.addr_kind6(dst),
        };
        debug_assert!(hint.is_none_or(|(_, k)| k == snap.addr_kind6(dst)));
        match kind {
            Some(AddrKind::Own) => return self.pass_to_kernel(pkt, in_port, DropReason::ToKernel),
            Some(AddrKind::Vip { active: false }) | Some(AddrKind::Laddr { active: false }) => {
                return self.drop_pkt(DropReason::VipInactive, pkt)
            }
            None if ipv6::is_multicast(dst) || ipv6::is_link_local(dst) => {
                return self.pass_to_kernel(pkt, in_port, DropReason::NotOurs)
            }
            _ => {}
        }
        if martian_src6(ipv6::src_ref(p)) {
            return self.drop_pkt(DropReason::MartianSource, pkt);
        }
        let s = Seg6 {
            o: L36 {
                l3,
                l4: l3 + ipv6::HEADER_LEN,
                end: l3 + fx.total_len,
                proto: fx.next_header,
            },
            hop_limit: fx.hop_limit,
            frag: false,
            hash: hint.map(|(h, _)| h),
        };
        self.tcp_udp_seg6(snap, pkt, s, kind, in_port, now, handed)
    }

    /// A whole TCP or UDP packet (not a fragment) that passed `handle6`'s
    /// checks: its transport header checked, then to the VIP's side or the
    /// server's.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn tcp_udp_seg6(
        &mut self,
        snap: &Snapshot,
        pkt: P::Pkt,
        s: Seg6,
        kind: Option<AddrKind>,
        in_port: u16,
        now: u64,
        handed: bool,
    ) {
        let o = s.o;
        let data = pkt.data();
        let seg = &data[o.l4..o.end];
        // RFC 8200 §8.1: a UDP datagram over IPv6 without a checksum is
        // discarded.
        if !l4::header_ok(o.proto, seg) || (o.proto == ipv6::NH_UDP && seg[6..8] == [0, 0]) {
            return self.drop_pkt(DropReason::BadL4Header, pkt);
        }
        let flags = if o.proto == ipv6::NH_TCP {
            l4::tcp_flags(seg)
        } else {
            0
        };
        let p = &data[o.l3..];
        let t = Tuple6 {
            proto: o.proto,
            saddr: ipv6::src(p),
            sport: l4::src_port(seg),
            daddr: ipv6::dst(p),
            dport: l4::dst_port(seg),
        };
        match kind {
            Some(AddrKind::Vip { .. }) => {
                self.inbound6(snap, pkt, &s, &t, flags, in_port, now, handed, false)
            }
            Some(AddrKind::Laddr { .. }) => {
                self.reply6(snap, pkt, &s, &t, flags, true, in_port, now, handed, false)
            }
            _ => self.reply6(snap, pkt, &s, &t, flags, false, in_port, now, handed, false),
        }
    }

    /// The headers of the packet in `pkt` once more, for the rare answer
    /// (Time Exceeded, Packet Too Big) or translation (NAT64) that needs
    /// them whole: the fast path keeps only what forwarding reads. The
    /// frame parsed before, and only its hop limit may have changed since.
    #[cold]
    #[inline(never)]
    fn reparse6(pkt: &P::Pkt) -> Option<Ip6> {
        let data = pkt.data();
        let l2 = ethernet::parse(data)?;
        let info = ipv6::parse(data.get(l2.l3_offset..)?).ok()?;
        Some(Ip6 { l2, info })
    }

    /// [`Core::time_exceeded6`] for a packet the fast path carries.
    #[cold]
    #[inline(never)]
    fn time_exceeded6_again(&mut self, snap: &Snapshot, pkt: P::Pkt, from: [u8; 16], now: u64) {
        match Self::reparse6(&pkt) {
            Some(ip) => self.time_exceeded6(snap, pkt, &ip, from, now),
            None => self.drop_pkt(DropReason::TtlExceeded, pkt),
        }
    }

    /// [`Core::too_big6`] for a packet the fast path carries.
    #[cold]
    #[inline(never)]
    fn too_big6_again(&mut self, snap: &Snapshot, pkt: P::Pkt, from: [u8; 16], mtu: u32, now: u64) {
        match Self::reparse6(&pkt) {
            Some(ip) => self.too_big6(snap, pkt, &ip, from, mtu, now),
            None => self.drop_pkt(DropReason::TooBig, pkt),
        }
    }

    /// An IPv6 fragment, by the shallow reassembly of IPv4's (`fragment`,
    /// `frag.rs`): Linux reassembles before IPVS (`nf_defrag_ipv6`) and
    /// sends the datagram on in fragments no larger; the director forwards
    /// the fragments as they come. The first carries the transport header
    /// (RFC 8200 §4.5, RFC 7112: a first fragment without the whole
    /// upper-layer header is dropped) and is forwarded as any packet, its
    /// ports remembered under source, destination and identification;
    /// later ones follow it with the address rewrite alone. TCP and UDP
    /// only; NAT64 does not translate fragments (dropped, counted).
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn fragment6(
        &mut self,
        snap: &Snapshot,
        pkt: P::Pkt,
        ip: Ip6,
        kind: Option<AddrKind>,
        in_port: u16,
        now: u64,
        handed: bool,
    ) {
        let info = ip.info;
        let Some(f) = info.frag else {
            return self.drop_pkt(DropReason::Ipv6Fragment, pkt);
        };
        if info.proto != ipv6::NH_TCP && info.proto != ipv6::NH_UDP {
            return self.drop_pkt(DropReason::Ipv6Fragment, pkt);
        }
        let l3 = ip.l2.l3_offset;
        let key = frag::Key {
            src: info.src,
            dst: info.dst,
            proto: info.proto,
            id: f.id,
        };
        // The fragmentable part: what follows the Fragment header (where
        // the walk stops for a later fragment; for a first one, the
        // transport header's start, the same offset when no other
        // extension header follows the Fragment header).
        let piece = frag::Piece {
            offset: f.offset as u32 * 8,
            len: (info.total_len - info.l4_offset) as u32,
            more: f.more,
        };
        // RFC 8200 §4.5: the unfragmentable part and the fragments make at
        // most 65535 bytes of payload.
        let hl = (info.l4_offset - ipv6::HEADER_LEN) as u32;
        let first = f.offset == 0;
        let (l4_at, end) = (l3 + info.l4_offset, l3 + info.total_len);
        let Some((pkt, (sport, dport), flags)) =
            self.frag_admit(pkt, key, &piece, hl, l4_at, end, in_port, handed, now)
        else {
            return;
        };
        let ports = (sport, dport);
        self.forward_fragment6(
            snap, pkt, ip, kind, ports, flags, !first, in_port, now, handed,
        );
        if first {
            while let Some((p, port, h)) = self.frags.release(key) {
                self.ctr().frag_released.inc();
                let data = p.data();
                let parsed = ethernet::parse(data)
                    .and_then(|l2| Some((l2, ipv6::parse(data.get(l2.l3_offset..)?).ok()?)));
                let Some((l2, info)) = parsed else {
                    self.drop_pkt(DropReason::Truncated, p);
                    continue;
                };
                let kind = snap.addr_kind6(&info.dst);
                let ip = Ip6 { l2, info };
                self.forward_fragment6(snap, p, ip, kind, ports, 0, true, port, now, h);
            }
        }
    }

    /// Forwards an IPv6 fragment the table let through, with its
    /// datagram's ports and, for the first of a TCP segment, its flags.
    #[allow(clippy::too_many_arguments)]
    fn forward_fragment6(
        &mut self,
        snap: &Snapshot,
        pkt: P::Pkt,
        ip: Ip6,
        kind: Option<AddrKind>,
        (sport, dport): (u16, u16),
        flags: u8,
        later: bool,
        in_port: u16,
        now: u64,
        handed: bool,
    ) {
        self.ctr().frag_forwarded.inc();
        let info = ip.info;
        let l3 = ip.l2.l3_offset;
        let s = Seg6 {
            o: L36 {
                l3,
                l4: l3 + info.l4_offset,
                end: l3 + info.total_len,
                proto: info.proto,
            },
            hop_limit: info.hop_limit,
            frag: info.is_fragment(),
            hash: None,
        };
        let t = Tuple6 {
            proto: info.proto,
            saddr: info.src,
            sport,
            daddr: info.dst,
            dport,
        };
        match kind {
            Some(AddrKind::Vip { .. }) => {
                self.inbound6(snap, pkt, &s, &t, flags, in_port, now, handed, later)
            }
            Some(AddrKind::Laddr { .. }) => {
                self.reply6(snap, pkt, &s, &t, flags, true, in_port, now, handed, later)
            }
            _ => self.reply6(snap, pkt, &s, &t, flags, false, in_port, now, handed, later),
        }
    }

    /// A client packet to an IPv6 VIP.
    #[allow(clippy::too_many_arguments)]
    fn inbound6(
        &mut self,
        snap: &Snapshot,
        mut pkt: P::Pkt,
        s: &Seg6,
        t: &Tuple6,
        flags: u8,
        in_port: u16,
        now: u64,
        handed: bool,
        later: bool,
    ) {
        let o = s.o;
        let h = self.seg_hash6(s, t);
        let mut found = self.conns6.lookup_in6(t, h);
        if let Some(ci) = found {
            if t.proto == ipv6::NH_TCP
                && flags & (l4::TCP_SYN | l4::TCP_ACK | l4::TCP_RST) == l4::TCP_SYN
                && reuse_is_new(self.conns6.get(ci))
            {
                self.expire_now6(snap, ci, now);
                found = None;
            }
        }
        let ci = match found {
            Some(ci) => {
                let frag = s.frag;
                let seg = o.l4..o.end;
                pkt = match self
                    .synproxy_client6(snap, pkt, ci, t, seg, frag, later, flags, in_port, now)
                {
                    Some(p) => p,
                    None => return,
                };
                let dir = if self.conns6.get(ci).fwd.sees_replies() {
                    Dir::Input
                } else {
                    Dir::InputOnly
                };
                // A later fragment has no flags: its first moved the state.
                if !later {
                    self.update_state_in(true, snap, ci, dir, flags, now);
                    if self.sync_on {
                        self.sync_note6(snap, ci);
                    }
                }
                ci
            }
            None => {
                // Our own address as the source: never a client.
                if snap.addr_kind6(&t.saddr).is_some() {
                    return self.drop_pkt(DropReason::MartianSource, pkt);
                }
                let Some(si) = snap.service6(t.proto, &t.daddr, t.dport) else {
                    return self.drop_pkt(DropReason::NoService, pkt);
                };
                let svc = &snap.services6[si as usize];
                let owner = snap.inbound_owner6(svc, &t.saddr, t.sport);
                if let Some(owner) = owner.filter(|&o| !handed && o != self.id) {
                    return self.handover(pkt, in_port, owner);
                }
                if t.proto == ipv6::NH_TCP
                    && flags & l4::TCP_SYN == 0
                    && !s.frag
                    && snap.workers > 1
                    && self.shared.sync.holds_installed()
                {
                    // A synced connection may live on another worker than
                    // the receive steering's (see `inbound`): looked for
                    // round the workers before a SYN proxy takes the
                    // segment for a cookie or it is refused.
                    match self.chain(snap, pkt, in_port, owner.is_some(), false) {
                        Some(p) => pkt = p,
                        None => return,
                    }
                }
                if svc.synproxy && t.proto == ipv6::NH_TCP {
                    // The segments of a handshake are never fragmented:
                    // the SYN-ACK is written over the SYN, whose header
                    // chain it replaces.
                    if s.frag {
                        return self.drop_pkt(DropReason::Fragment, pkt);
                    }
                    let si = si as usize;
                    return self.synproxy_first6(snap, si, pkt, o, t, flags, in_port, now);
                }
                if s.frag {
                    match self.chain_fragment(snap, pkt, in_port, owner.is_some()) {
                        Some(p) => pkt = p,
                        None => return,
                    }
                }
                // A later fragment never makes a connection.
                if later {
                    return self.drop_pkt(DropReason::FragOrphan, pkt);
                }
                // IPVS schedules TCP only on a SYN without RST. (Evicted
                // IPv6 connections leave no ghost to revive.)
                let pickup = t.proto == ipv6::NH_TCP
                    && (flags & l4::TCP_SYN == 0 || flags & l4::TCP_RST != 0);
                if pickup && !sloppy_pickup(snap, &svc.dests, flags) {
                    return self.drop_pkt(DropReason::NoConnection, pkt);
                }
                match self.new_conn6(snap, si as usize, t, flags, now, None) {
                    Ok(ci) if pickup => self.picked_up(snap, true, ci, now),
                    Ok(ci) => ci,
                    Err(r) => return self.drop_pkt(r, pkt),
                }
            }
        };
        let c = *self.conns6.get(ci);
        // The server's address alone: the VIP and local address are read
        // where they are needed (DR needs neither).
        let daddr = self.conns6.daddr6(ci);
        let len = o.end - o.l3;
        self.count_traffic(snap, c.dest_id, len as u64, true);
        if let (FwdMethod::FullNat, Some(rip4)) = (c.fwd, unmapped(&daddr)) {
            if s.frag {
                return self.drop_pkt(DropReason::Nat64Untranslatable, pkt);
            }
            let a = self.conns6.get6(ci);
            return self.nat64_inbound(snap, pkt, s, &c, &a, rip4, now);
        }
        // IPVS's `decrement_ttl` (ip_vs_xmit.c, in `__ip_vs_get_out_rt_v6`
        // for every transmitter): hop limit 1 is answered with time
        // exceeded (ICMPv6 type 3 code 0) from the VIP; the rest go one
        // lower, before the MTU check, as there.
        if s.hop_limit <= 1 {
            if later {
                return self.drop_pkt(DropReason::TtlExceeded, pkt);
            }
            let vaddr = self.conns6.vaddr6(ci);
            return self.time_exceeded6_again(snap, pkt, vaddr, now);
        }
        ipv6::dec_hop_limit(&mut pkt.data_mut()[o.l3..]);
        if let (FwdMethod::Tun, Some(rip4)) = (c.fwd, unmapped(&daddr)) {
            let vaddr = self.conns6.vaddr6(ci);
            return match Self::reparse6(&pkt) {
                Some(ip) => self.tunnel_6in4(snap, pkt, &ip, o.end, vaddr, rip4, now),
                None => self.drop_pkt(DropReason::NoRoute, pkt),
            };
        }
        // What the packet needs on the real server's link.
        let (need, tun) = match c.fwd {
            FwdMethod::Tun => (len + tun6::OVERHEAD, true),
            _ => (len, false),
        };
        let Some(nh) = snap.routes6.lookup(Ipv6Addr::from(daddr)) else {
            return self.drop_pkt(DropReason::NoRoute, pkt);
        };
        let mtu = snap.ports.get(nh.port as usize).map_or(0, |p| p.mtu) as usize;
        if need > mtu {
            // From the VIP, the address the client used (as IPVS answers).
            let room = (mtu - (need - len)) as u32;
            let vaddr = self.conns6.vaddr6(ci);
            return self.too_big6_again(snap, pkt, vaddr, room, now);
        }
        let laddr = match c.fwd {
            FwdMethod::FullNat => self.conns6.laddr6_of(ci),
            _ => [0; 16],
        };
        let frame = pkt.data_mut();
        match c.fwd {
            FwdMethod::Dr => {}
            // A later fragment: the addresses alone (see `fragment6`).
            FwdMethod::Nat if later => nat66::fragment(frame, o.l3, None, Some(&daddr), false),
            FwdMethod::FullNat if later => {
                nat66::fragment(frame, o.l3, Some(&laddr), Some(&daddr), false)
            }
            FwdMethod::Nat => nat66::inbound(frame, o, &daddr, c.dport),
            FwdMethod::FullNat => {
                nat66::fullnat_inbound(frame, o, &laddr, c.lport, &daddr, c.dport)
            }
            FwdMethod::Tun => {}
        }
        if tun {
            let Some(src) = snap.port_addr6(nh.port) else {
                return self.drop_pkt(DropReason::NoRoute, pkt);
            };
            // The tunnel carries the IP packet only, without padding.
            pkt.set_len(o.end);
            if !pkt.prepend(tun6::OVERHEAD) {
                return self.drop_pkt(DropReason::NoBuffer, pkt);
            }
            tun6::encap_in_place(pkt.data_mut(), o.l3, src.octets(), daddr);
        }
        self.send6_via(snap, pkt, nh, now);
    }

    /// TUN to an IPv6 server of an IPv4 service: the IPv4 packet in an IPv6
    /// header (next header 4), as IPVS tunnels to a server of the other
    /// family. One that would not fit the server's link once wrapped is
    /// answered, with DF, by fragmentation needed for the MTU the tunnel
    /// leaves (`answer`: not for an ICMP error, which gets no error, and
    /// is dropped, counted as `too_big`); one without DF goes as outer
    /// IPv6 fragments, as IPVS's (`ip6_fragment`: the director is the
    /// outer packet's source).
    pub(super) fn tunnel_4in6(
        &mut self,
        snap: &Snapshot,
        mut pkt: P::Pkt,
        ip: &Ip,
        answer: bool,
        rip6: [u8; 16],
        now: u64,
    ) {
        let l3 = ip.l2.l3_offset;
        let len = ip.info.total_len;
        let Some(nh) = snap.routes6.lookup(Ipv6Addr::from(rip6)) else {
            return self.drop_pkt(DropReason::NoRoute, pkt);
        };
        let mtu = snap.ports.get(nh.port as usize).map_or(0, |p| p.mtu) as usize;
        let Some(src) = snap.port_addr6(nh.port) else {
            return self.drop_pkt(DropReason::NoRoute, pkt);
        };
        if len + tun6::OVERHEAD > mtu {
            if ip.info.df() && answer {
                let m = mtu.saturating_sub(tun6::OVERHEAD) as u16;
                return fwd::tun::too_big(self, snap, pkt, l3, &ip.info, nh.port, m, now);
            }
            if ip.info.df() || tun6::fragment_payload(mtu as u16) == 0 {
                return self.drop_pkt(DropReason::TooBig, pkt);
            }
            return self.fragment_4in6(
                snap,
                pkt,
                l3,
                len,
                mtu as u16,
                nh.port,
                src.octets(),
                rip6,
                now,
            );
        }
        pkt.set_len(l3 + len);
        if !pkt.prepend(tun6::OVERHEAD) {
            return self.drop_pkt(DropReason::NoBuffer, pkt);
        }
        tun6::encap_4in6_in_place(pkt.data_mut(), l3, src.octets(), rip6);
        self.send6(snap, pkt, rip6, now);
    }

    /// [`Core::tunnel_4in6`] for an IPv4 packet without DF too big for the
    /// tunnel: outer IPv6 fragments of it. Later fragments are copies; the
    /// first reuses the packet.
    #[allow(clippy::too_many_arguments)]
    fn fragment_4in6(
        &mut self,
        snap: &Snapshot,
        mut pkt: P::Pkt,
        l3: usize,
        inner_len: usize,
        mtu: u16,
        port: u16,
        src: [u8; 16],
        rip6: [u8; 16],
        now: u64,
    ) {
        let chunk = tun6::fragment_payload(mtu);
        let id = u32::from(self.ip_ids.fresh()) << 16 | u32::from(self.ip_ids.fresh());
        let mut off = chunk;
        while off < inner_len {
            let len = chunk.min(inner_len - off);
            let more = off + len < inner_len;
            let Some(mut f) = self.ports.get_mut(port as usize).and_then(|p| p.alloc()) else {
                self.ctr().drop(DropReason::NoBuffer);
                return self.drop_pkt(DropReason::NoBuffer, pkt);
            };
            if !f.set_len(l3 + tun6::FRAG_OVERHEAD + len) {
                self.ctr().drop(DropReason::NoBuffer);
                return self.drop_pkt(DropReason::NoBuffer, pkt);
            }
            let frame = pkt.data();
            tun6::write_fragment(
                f.data_mut(),
                &frame[..l3],
                &frame[l3..l3 + inner_len],
                off,
                len,
                more,
                id,
                src,
                rip6,
            );
            self.ctr().fragments_sent.inc();
            self.send6(snap, f, rip6, now);
            off += len;
        }
        pkt.set_len(l3 + inner_len);
        if !pkt.prepend(tun6::FRAG_OVERHEAD) {
            return self.drop_pkt(DropReason::NoBuffer, pkt);
        }
        tun6::first_fragment_in_place(pkt.data_mut(), l3, chunk, id, src, rip6);
        pkt.set_len(l3 + tun6::FRAG_OVERHEAD + chunk);
        self.ctr().fragments_sent.inc();
        self.send6(snap, pkt, rip6, now);
    }

    /// TUN to an IPv4 server behind an IPv6 VIP: the packet (up to `end`,
    /// without padding) in an IPv4 header, protocol 41, as IPVS tunnels to
    /// a server of the other family; one that would not fit the server's
    /// link once wrapped is answered with Packet Too Big from `from` for
    /// the MTU the tunnel leaves (IPv6 is never fragmented on the way).
    #[allow(clippy::too_many_arguments)]
    fn tunnel_6in4(
        &mut self,
        snap: &Snapshot,
        mut pkt: P::Pkt,
        ip: &Ip6,
        end: usize,
        from: [u8; 16],
        rip4: [u8; 4],
        now: u64,
    ) {
        let l3 = ip.l2.l3_offset;
        let Some(nh) = snap.routes.lookup(std::net::Ipv4Addr::from(rip4)) else {
            return self.drop_pkt(DropReason::NoRoute, pkt);
        };
        let mtu = snap.ports.get(nh.port as usize).map_or(0, |p| p.mtu) as usize;
        if end - l3 + tun::OVERHEAD > mtu {
            let room = mtu.saturating_sub(tun::OVERHEAD) as u32;
            return self.too_big6(snap, pkt, ip, from, room, now);
        }
        let Some(src) = snap.port_addr(nh.port) else {
            return self.drop_pkt(DropReason::NoRoute, pkt);
        };
        pkt.set_len(end);
        if !pkt.prepend(tun::OVERHEAD) {
            return self.drop_pkt(DropReason::NoBuffer, pkt);
        }
        let id = self.ip_ids.fresh();
        tun::encap_6in4_in_place(pkt.data_mut(), l3, id, src.octets(), rip4);
        self.send(snap, pkt, rip4, now);
    }

    /// NAT64, client → IPv4 real server: translated (RFC 7915 §5.1, the
    /// hop limit becomes the TTL less one, as a router's), then the
    /// addresses are the local address and the server's and the ports the
    /// connection's.
    /// Kept out of `inbound6`, whose DR and NAT66 path it would otherwise
    /// crowd (8 more instructions per DR packet under callgrind).
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn nat64_inbound(
        &mut self,
        snap: &Snapshot,
        mut pkt: P::Pkt,
        s: &Seg6,
        c: &Conn,
        a: &Addrs6,
        rip4: [u8; 4],
        now: u64,
    ) {
        let o = s.o;
        // A router's translation (RFC 7915 §5.1) answers hop limit 1 with
        // time exceeded, as `ip6_forward` would, from the VIP.
        if fwd::nat::reply_ttl_expired(s.hop_limit) {
            return self.time_exceeded6_again(snap, pkt, a.vaddr, now);
        }
        let Some(lip4) = unmapped(&a.laddr) else {
            return self.drop_pkt(DropReason::Nat64Untranslatable, pkt);
        };
        let Some(nh) = snap.routes.lookup(Ipv4Addr::from(rip4)) else {
            return self.drop_pkt(DropReason::NoRoute, pkt);
        };
        let mtu = snap.ports.get(nh.port as usize).map_or(0, |p| p.mtu) as usize;
        let len4 = o.end - o.l4 + ipv4::MIN_HEADER_LEN;
        if len4 > mtu {
            // The IPv6 packet that would fit: the IPv4 MTU plus what the
            // IPv6 headers take beyond IPv4's (RFC 7915 §4.2's adjustment
            // the other way), never below IPv6's minimum.
            let room = (mtu + (o.l4 - o.l3) - ipv4::MIN_HEADER_LEN).max(icmpv6::MIN_MTU) as u32;
            return self.too_big6_again(snap, pkt, a.vaddr, room, now);
        }
        pkt.set_len(o.end);
        let ttl = s.hop_limit - 1;
        let shifted = if o.l4 == o.l3 + ipv6::HEADER_LEN {
            // No extension header, so no Fragment header: the fixed
            // header's fields are all the translation reads.
            let h = nat64::Headers6::fixed(&pkt.data()[o.l3..], o.end - o.l3, o.proto);
            nat64::tcp_udp_headers_to_v4(pkt.data_mut(), o.l3, &h, lip4, rip4, ttl)
        } else {
            match Self::reparse6(&pkt) {
                Some(ip) => nat64::tcp_udp_to_v4(pkt.data_mut(), o.l3, &ip.info, lip4, rip4, ttl),
                None => Err(nat64::Untranslatable::Protocol),
            }
        };
        let Ok(shift) = shifted else {
            return self.drop_pkt(DropReason::Nat64Untranslatable, pkt);
        };
        pkt.adj(shift);
        let o4 = L34 {
            l3: o.l3,
            l4: o.l3 + ipv4::MIN_HEADER_LEN,
            proto: o.proto,
        };
        fwd::rewrite_tuple(
            pkt.data_mut(),
            o4,
            Some((lip4, c.lport)),
            Some((rip4, c.dport)),
        );
        self.send(snap, pkt, rip4, now);
    }

    /// A reply from an IPv6 real server: NAT66 (to the client's address)
    /// or FULLNAT66 (to a local address).
    #[allow(clippy::too_many_arguments)]
    fn reply6(
        &mut self,
        snap: &Snapshot,
        mut pkt: P::Pkt,
        s: &Seg6,
        t: &Tuple6,
        flags: u8,
        fullnat: bool,
        in_port: u16,
        now: u64,
        handed: bool,
        later: bool,
    ) {
        let o = s.o;
        if !handed && snap.workers > 1 {
            let owner = if fullnat {
                snap.lport_owner(t.dport)
            } else {
                snap.nat_owner6(&t.daddr, t.dport)
            };
            if owner != self.id {
                return self.handover(pkt, in_port, owner);
            }
        }
        let h = self.seg_hash6(s, t);
        let Some(ci) = self.conns6.lookup_out6(t, h) else {
            let r = if later {
                DropReason::FragOrphan
            } else if fullnat {
                DropReason::NoConnection
            } else {
                DropReason::NotOurs
            };
            return self.drop_pkt(r, pkt);
        };
        let c = *self.conns6.get(ci);
        // What the rewrite needs: the client and the VIP (the local
        // address only for a too-big answer).
        let (caddr, vaddr) = (self.conns6.caddr6(ci), self.conns6.vaddr6(ci));
        // `ip6_forward` checks the hop limit before the FORWARD hook where
        // IPVS rewrites the reply: the server hears of it, quoting its own
        // packet, from the director's address on its link.
        if c.fwd != FwdMethod::FullNat && nat66::reply_hop_limit_expired(s.hop_limit) {
            if later {
                return self.drop_pkt(DropReason::TtlExceeded, pkt);
            }
            return match snap.port_addr6(in_port) {
                Some(from) => self.time_exceeded6_again(snap, pkt, from.octets(), now),
                None => self.drop_pkt(DropReason::TtlExceeded, pkt),
            };
        }
        let Some(nh) = snap.routes6.lookup(Ipv6Addr::from(caddr)) else {
            return self.drop_pkt(DropReason::NoRoute, pkt);
        };
        let mtu = snap.ports.get(nh.port as usize).map_or(0, |p| p.mtu) as u32;
        let len = o.end - o.l3;
        if len as u32 > mtu {
            // From the address the server sent to: the local address, or
            // (NAT66, the director routing) its own address on that link.
            let from = if fullnat {
                Some(self.conns6.laddr6_of(ci))
            } else {
                snap.port_addr6(in_port).map(|x| x.octets())
            };
            return match from {
                Some(f) => self.too_big6_again(snap, pkt, f, mtu, now),
                None => self.drop_pkt(DropReason::TooBig, pkt),
            };
        }
        // Only a SYN-proxied TCP connection's replies are the proxy's
        // business: checked here, on the copy in hand, as IPv4's `reply`
        // does, rather than in a call that copies the entry again.
        if c.flags & F_SYNPROXY != 0 && c.proto == ipv6::NH_TCP {
            let seg = o.l4..o.end;
            pkt = match self.synproxy_server6(snap, pkt, ci, o.l3, seg, s.frag, later, flags, now) {
                Some(p) => p,
                None => return,
            };
        }
        if !later {
            self.update_state_in(true, snap, ci, Dir::Output, flags, now);
        }
        self.count_traffic(snap, c.dest_id, len as u64, false);
        let frame = pkt.data_mut();
        if later {
            // A later fragment: the addresses alone (see `fragment6`).
            if c.fwd == FwdMethod::FullNat {
                nat66::fragment(frame, o.l3, Some(&vaddr), Some(&caddr), false);
            } else {
                nat66::fragment(frame, o.l3, Some(&vaddr), None, true);
            }
        } else if c.fwd == FwdMethod::FullNat {
            nat66::fullnat_outbound(frame, o, &vaddr, c.vport, &caddr, c.cport);
        } else {
            nat66::outbound(frame, o, &vaddr, c.vport);
        }
        self.send6_via(snap, pkt, nh, now);
    }

    /// NAT64, a reply from an IPv4 real server to an IPv4 local address
    /// that no IPv4 connection holds: the IPv6 table's, if one of its
    /// NAT64 connections has that reply tuple (IPv4-mapped). Translated
    /// to IPv6 from the VIP to the client (RFC 7915 §4.1).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn reply64(
        &mut self,
        snap: &Snapshot,
        mut pkt: P::Pkt,
        ip: Ip,
        o: L34,
        t: Tuple,
        flags: u8,
        now: u64,
    ) {
        let t6 = mapped_tuple(&t);
        let h = self.hash6_of(&t6);
        let Some(ci) = self.conns6.lookup_out6(&t6, h) else {
            return self.drop_pkt(DropReason::NoConnection, pkt);
        };
        let c = *self.conns6.get(ci);
        let a = self.conns6.get6(ci);
        if fwd::nat::reply_ttl_expired(ip.info.ttl) {
            return self.drop_pkt(DropReason::TtlExceeded, pkt);
        }
        if ip.info.is_fragment() {
            return self.drop_pkt(DropReason::Nat64Untranslatable, pkt);
        }
        // The SYN proxy's sequence translation, on the IPv4 TCP header
        // before it is translated (RFC 7915 leaves it as it is).
        let seg = o.l4..o.l3 + ip.info.total_len;
        pkt = match self.synproxy_server6(snap, pkt, ci, o.l3, seg, false, false, flags, now) {
            Some(p) => p,
            None => return,
        };
        let Some(nh) = snap.routes6.lookup(Ipv6Addr::from(a.caddr)) else {
            return self.drop_pkt(DropReason::NoRoute, pkt);
        };
        let mtu = snap.ports.get(nh.port as usize).map_or(0, |p| p.mtu) as usize;
        let len6 = ip.info.total_len - ip.info.header_len + ipv6::HEADER_LEN;
        if len6 > mtu {
            // RFC 7915 §4.2: the IPv4 side is told the IPv6 MTU less the
            // 20 bytes the translation adds. Never an IPv6 fragment.
            let room = (mtu - nat64::GROWTH) as u16;
            return self.frag_needed4(snap, pkt, &ip, t.daddr, room, now);
        }
        self.update_state_in(true, snap, ci, Dir::Output, flags, now);
        self.count_traffic(snap, c.dest_id, ip.info.total_len as u64, false);
        pkt.set_len(o.l3 + ip.info.total_len);
        if !pkt.prepend(nat64::GROWTH) {
            return self.drop_pkt(DropReason::NoBuffer, pkt);
        }
        let hop = ip.info.ttl - 1;
        let shift =
            match nat64::tcp_udp_to_v6(pkt.data_mut(), o.l3, &ip.info, a.vaddr, a.caddr, hop) {
                Ok(s) => s,
                Err(_) => return self.drop_pkt(DropReason::Nat64Untranslatable, pkt),
            };
        pkt.adj(shift);
        let end = pkt.len();
        let o6 = L36 {
            l3: o.l3,
            l4: o.l3 + ipv6::HEADER_LEN,
            end,
            proto: t.proto,
        };
        nat66::rewrite_tuple6(
            pkt.data_mut(),
            o6,
            Some((&a.vaddr, c.vport)),
            Some((&a.caddr, c.cport)),
        );
        self.send6(snap, pkt, a.caddr, now);
    }

    /// Schedules a new IPv6 connection (through its persistence template)
    /// and adds it to the IPv6 table, as `new_conn` does for IPv4; with
    /// `synproxy` (the cookie the client acknowledged), a SYN-proxied one
    /// waiting for its server's SYN-ACK.
    pub(super) fn new_conn6(
        &mut self,
        snap: &Snapshot,
        si: usize,
        t: &Tuple6,
        flags: u8,
        now: u64,
        synproxy: Option<u32>,
    ) -> Result<u32, DropReason> {
        if self.conns6.is_full() {
            self.make_room6(snap, now)?;
        }
        let svc = &snap.services6[si];
        let now_s = (now / 1000) as u32;
        let tmpl = &snap.templates6;
        let mut held = None;
        let mut fresh_template = false;
        let mut di = None;
        let masked = svc.persistence.map(|p| p.mask(&t.saddr));
        if let (Some(p), Some(m)) = (svc.persistence, masked) {
            if let Lookup::Hit(h) = tmpl.lookup6(svc.id(), &m, now_s, p.timeout_s) {
                match svc.dests.iter().position(|d| d.shared.id == h.dest) {
                    Some(i) => {
                        held = Some(h);
                        di = Some(i);
                    }
                    None => {
                        if let Some(d) = tmpl.invalidate(h.slot) {
                            if let Some(e) = snap.dest(d) {
                                e.dest.shared.persist_released();
                            }
                        }
                        tmpl.release(h.slot, now_s);
                    }
                }
            }
        }
        let di = match di {
            Some(i) => i,
            None => {
                let seed = svc.id() as u64;
                let st = self
                    .sched
                    .entry(svc.id())
                    .or_insert_with(|| SchedState::new(seed));
                // sh, dh, mh, lblc and lblcr hash the addresses folded as
                // IPVS folds IPv6 ones.
                let input = SchedInput::v6(&t.saddr, t.sport, &t.daddr, t.dport);
                let Some(mut i) = svc.sched.pick(&svc.dests, st, &input, now_s) else {
                    return Err(DropReason::NoDest);
                };
                if let (Some(p), Some(m)) = (svc.persistence, masked) {
                    match tmpl.create6(svc.id(), &m, svc.dests[i].shared.id, now_s, p.timeout_s) {
                        Some(c) => {
                            let h = c.held;
                            if template_made(snap, &svc.dests[i], &c) {
                                fresh_template = true;
                            } else if let Some(j) =
                                svc.dests.iter().position(|d| d.shared.id == h.dest)
                            {
                                i = j;
                            }
                            held = Some(h);
                        }
                        None => self.ctr().templates_full.inc(),
                    }
                }
                i
            }
        };
        let release = |held: Option<crate::conn::template::Held>| {
            if let Some(h) = held {
                tmpl.release(h.slot, now_s);
            }
        };
        let dest = &svc.dests[di];
        let dport = if dest.port == 0 { t.dport } else { dest.port };
        let (daddr16, daddr4) = match svc.addrs[di] {
            IpAddr::V6(x) => (x.octets(), folded(&x.octets())),
            IpAddr::V4(x) => (mapped(x.octets()), x.octets()),
        };
        let mut c = Conn {
            caddr: folded(&t.saddr),
            cport: t.sport,
            vaddr: folded(&t.daddr),
            vport: t.dport,
            daddr: daddr4,
            dport,
            laddr: folded(&t.saddr),
            lport: t.sport,
            proto: t.proto,
            fwd: dest.fwd,
            flags: F_INACTIVE,
            dest_id: dest.shared.id,
            svc_id: svc.id(),
            ..Conn::EMPTY
        };
        let mut a = Addrs6 {
            caddr: t.saddr,
            vaddr: t.daddr,
            daddr: daddr16,
            laddr: t.saddr,
        };
        if t.proto == ipv6::NH_TCP {
            let dir = if dest.fwd.sees_replies() {
                Dir::Input
            } else {
                Dir::InputOnly
            };
            let mut first = crate::conn::state::tcp_next(TcpState::None, dir, flags);
            if let Some(cookie) = synproxy {
                // The director's SYN is on its way to the server.
                first = TcpState::SynSent;
                c.flags |= F_SYNPROXY;
                c.ring_seq = cookie;
            }
            c.state = first as u8;
            c.timeout_s = self.conns6.pressure().tcp_timeout(&snap.timeouts, first);
        } else {
            c.timeout_s = self.conns6.pressure().udp_timeout(&snap.timeouts, false);
        }
        match dest.fwd {
            FwdMethod::Nat => c.flags |= F_OUT_INDEXED,
            FwdMethod::FullNat => {
                let (conns, conns6) = (&self.conns, &self.conns6);
                let (proto, rp) = (t.proto, dport);
                let (held6, held4) = snap.held_laddrs6(si);
                let got = match svc.addrs[di] {
                    IpAddr::V6(_) => self.lports.alloc_in(
                        held6,
                        |l| l.octets(),
                        |la: [u8; 16], lp| {
                            conns6.out_tuple_in_use6(&Tuple6 {
                                proto,
                                saddr: daddr16,
                                sport: rp,
                                daddr: la,
                                dport: lp,
                            })
                        },
                    ),
                    // NAT64: an IPv4 local address, which IPv4 FULLNAT
                    // services may share: free in both tables.
                    IpAddr::V4(_) => self
                        .lports
                        .alloc_in(
                            held4,
                            |l| l.octets(),
                            |la: [u8; 4], lp| {
                                conns.out_tuple_in_use(&Tuple {
                                    proto,
                                    saddr: daddr4,
                                    sport: rp,
                                    daddr: la,
                                    dport: lp,
                                }) || conns6.out_tuple_in_use6(&Tuple6 {
                                    proto,
                                    saddr: daddr16,
                                    sport: rp,
                                    daddr: mapped(la),
                                    dport: lp,
                                })
                            },
                        )
                        .map(|(la, lp)| (mapped(la), lp)),
                };
                let Some((la, lp)) = got else {
                    release(held);
                    return Err(DropReason::LaddrExhausted);
                };
                a.laddr = la;
                c.laddr = unmapped(&la).unwrap_or_else(|| folded(&la));
                c.lport = lp;
                c.flags |= F_OUT_INDEXED;
            }
            FwdMethod::Dr | FwdMethod::Tun => {}
        }
        if let Some(h) = held {
            c.flags |= F_TEMPLATE_REF;
            if fresh_template {
                c.flags |= F_TEMPLATE_FRESH;
            }
            c.tmpl = h.slot;
        }
        let ci = match self.conns6.insert6(c, a, now) {
            Ok(ci) => ci,
            Err(e) => {
                release(held);
                return Err(match e {
                    Refused6::Full => DropReason::ConnTableFull,
                    Refused6::AddrPoolFull => DropReason::Addrs6PoolFull,
                });
            }
        };
        dest.bind_conn(false);
        // The creating packet is the connection's first (IPVS's in_pkts).
        self.sync_meta6.started(ci);
        self.ctr().conns_created.inc();
        dest.shared.stats.cell(self.id).conns.inc();
        svc.shared.stats.cell(self.id).conns.inc();
        Ok(ci)
    }

    /// Removes an IPv6 connection at once (a SYN reusing a finished
    /// connection's tuple).
    fn expire_now6(&mut self, snap: &Snapshot, ci: u32, now: u64) {
        let c = *self.conns6.get(ci);
        self.conns6.remove(ci);
        release_conn6(snap, &c, (now / 1000) as u32, false);
        self.ctr().conns_expired.inc();
    }

    /// `make_room` for the IPv6 table.
    #[cold]
    pub(super) fn make_room6(&mut self, snap: &Snapshot, now: u64) -> Result<(), DropReason> {
        let Some(old) = self.conns6.evict_oldest(EVICT_BUDGET) else {
            return Err(DropReason::ConnTableFull);
        };
        release_conn6(snap, &old, (now / 1000) as u32, true);
        let ctr = self.ctr();
        if old.proto == ipv6::NH_TCP {
            ctr.evicted_tcp_half_open.inc();
        } else {
            ctr.evicted_udp_unconfirmed.inc();
        }
        Ok(())
    }

    /// A packet whose hop limit would reach 0: dropped (counted) and,
    /// within the rate limit and where RFC 4443 §2.4(e) allows, answered
    /// with Time Exceeded (type 3 code 0) from `from`, quoting it as it
    /// arrived.
    #[cold]
    pub(super) fn time_exceeded6(
        &mut self,
        snap: &Snapshot,
        pkt: P::Pkt,
        ip: &Ip6,
        from: [u8; 16],
        now: u64,
    ) {
        let l3 = ip.l2.l3_offset;
        let orig = pkt.data().get(l3..l3 + ip.info.total_len);
        let route = snap.routes6.lookup(Ipv6Addr::from(ip.info.src));
        if let (Some(orig), Some(nh)) = (orig, route) {
            if icmpv6::may_answer(orig, &ip.info, icmpv6::TYPE_TIME_EXCEEDED)
                && self.icmp_limit.allow(now)
            {
                match self.ports.get_mut(nh.port as usize).and_then(|p| p.alloc()) {
                    Some(mut reply) => {
                        let n = ethernet::HEADER_LEN + icmpv6::error_len(orig.len());
                        if reply.set_len(n) {
                            let o = reply.data_mut();
                            ethernet::write_header(
                                o,
                                &[0; 6],
                                &[0; 6],
                                None,
                                ethernet::ETHERTYPE_IPV6,
                            );
                            icmpv6::build_error(
                                &mut o[ethernet::HEADER_LEN..],
                                orig,
                                from,
                                icmpv6::TYPE_TIME_EXCEEDED,
                                0,
                                0,
                            );
                            self.send6(snap, reply, ip.info.src, now);
                        } else {
                            self.ctr().drop(DropReason::NoBuffer);
                        }
                    }
                    None => self.ctr().drop(DropReason::NoBuffer),
                }
            }
        }
        self.drop_pkt(DropReason::TtlExceeded, pkt)
    }

    /// Answers a packet that does not fit its egress link with Packet Too
    /// Big (RFC 4443 §3.2) from `from` to its source, quoting it as it
    /// stands (a client's packet one hop lower already, as IPVS's
    /// `decrement_ttl` precedes its MTU check), and drops it: the director
    /// never fragments IPv6.
    pub(super) fn too_big6(
        &mut self,
        snap: &Snapshot,
        pkt: P::Pkt,
        ip: &Ip6,
        from: [u8; 16],
        mtu: u32,
        now: u64,
    ) {
        let l3 = ip.l2.l3_offset;
        let orig = &pkt.data()[l3..l3 + ip.info.total_len];
        // RFC 4443 §2.4(e): no error towards a source that names no node.
        if !icmpv6::may_answer(orig, &ip.info, icmpv6::TYPE_PACKET_TOO_BIG) {
            return self.drop_pkt(DropReason::TooBig, pkt);
        }
        let port = snap
            .routes6
            .lookup(Ipv6Addr::from(ip.info.src))
            .map_or(0, |nh| nh.port);
        match self.ports.get_mut(port as usize).and_then(|p| p.alloc()) {
            Some(mut reply) => {
                let n = ethernet::HEADER_LEN + icmpv6::error_len(orig.len());
                if reply.set_len(n) {
                    let o = reply.data_mut();
                    ethernet::write_header(o, &[0; 6], &[0; 6], None, ethernet::ETHERTYPE_IPV6);
                    icmpv6::build_packet_too_big(&mut o[ethernet::HEADER_LEN..], orig, from, mtu);
                    self.send6(snap, reply, ip.info.src, now);
                } else {
                    self.ctr().drop(DropReason::NoBuffer);
                }
            }
            None => self.ctr().drop(DropReason::NoBuffer),
        }
        self.drop_pkt(DropReason::TooBig, pkt);
    }

    /// ICMP fragmentation needed (RFC 1191) from `from` to the source of
    /// the IPv4 packet `ip`, which is dropped.
    fn frag_needed4(
        &mut self,
        snap: &Snapshot,
        pkt: P::Pkt,
        ip: &Ip,
        from: [u8; 4],
        mtu: u16,
        now: u64,
    ) {
        let l3 = ip.l2.l3_offset;
        let port = snap
            .routes
            .lookup(Ipv4Addr::from(ip.info.src))
            .map_or(0, |nh| nh.port);
        match self.ports.get_mut(port as usize).and_then(|p| p.alloc()) {
            Some(mut reply) => {
                let n = ethernet::HEADER_LEN
                    + icmp::frag_needed_len(ip.info.header_len, ip.info.total_len);
                if reply.set_len(n) {
                    let o = reply.data_mut();
                    ethernet::write_header(o, &[0; 6], &[0; 6], None, ethernet::ETHERTYPE_IPV4);
                    icmp::build_frag_needed(
                        &mut o[ethernet::HEADER_LEN..],
                        &pkt.data()[l3..],
                        ip.info.header_len,
                        from,
                        mtu,
                    );
                    self.send(snap, reply, ip.info.src, now);
                } else {
                    self.ctr().drop(DropReason::NoBuffer);
                }
            }
            None => self.ctr().drop(DropReason::NoBuffer),
        }
        self.drop_pkt(DropReason::TooBig, pkt);
    }

    /// Routes to `dst` over IPv6, resolves the next hop by NDP and queues
    /// for transmission.
    pub(super) fn send6(&mut self, snap: &Snapshot, pkt: P::Pkt, dst: [u8; 16], now: u64) {
        let Some(nh) = snap.routes6.lookup(Ipv6Addr::from(dst)) else {
            return self.drop_pkt(DropReason::NoRoute, pkt);
        };
        self.send6_via(snap, pkt, nh, now)
    }

    /// [`Core::send6`] to a next hop the caller already looked up.
    pub(super) fn send6_via(&mut self, snap: &Snapshot, pkt: P::Pkt, nh: NextHop6, now: u64) {
        let port = nh.port as usize;
        if port >= self.ports.len() {
            return self.drop_pkt(DropReason::NoRoute, pkt);
        }
        // As IPv4's `send`: a direct-mapped cache of resolved next hops.
        let key = u128::from(nh.ip);
        let at = key as usize % NH_CACHE;
        let c = &self.nh_cache6[at];
        if c.ip == key
            && c.port == nh.port
            && c.generation == self.neigh6.generation
            && now < c.until_ms
        {
            let mac = c.mac;
            return self.queue_tx(port, pkt, &mac);
        }
        let mut slot = Some(pkt);
        match self.neigh6.resolve(nh.ip, nh.port, now, &mut slot) {
            Resolve::Mac(mac) => {
                self.nh_cache6[at] = NhCached {
                    ip: key,
                    port: nh.port,
                    mac,
                    generation: self.neigh6.generation,
                    until_ms: now + 1000,
                };
                if let Some(p) = slot.take() {
                    self.queue_tx(port, p, &mac)
                }
            }
            Resolve::MacAndProbe(mac) => {
                if let Some(p) = slot.take() {
                    self.queue_tx(port, p, &mac);
                }
                self.ndp_probe(snap, nh.ip, nh.port);
            }
            Resolve::QueuedProbe => self.ndp_probe(snap, nh.ip, nh.port),
            Resolve::Queued => {}
            Resolve::Full => {
                if let Some(p) = slot.take() {
                    self.drop_pkt(DropReason::NeighFull, p)
                }
            }
        }
    }

    /// A neighbour solicitation for `target` out of `port`, from the port's
    /// IPv6 address (RFC 4861 §7.2.2).
    pub(super) fn ndp_probe(&mut self, snap: &Snapshot, target: Ipv6Addr, port: u16) {
        let p = port as usize;
        let Some(src) = snap.port_addr6(port) else {
            return self.ctr().drop(DropReason::NoRoute);
        };
        let Some(mut pkt) = self.ports.get_mut(p).and_then(|x| x.alloc()) else {
            return self.ctr().drop(DropReason::NoBuffer);
        };
        if !pkt.set_len(ndp::FRAME_LEN) {
            return self.drop_pkt(DropReason::NoBuffer, pkt);
        }
        let mac = self.ports[p].mac();
        let n = ndp::build_solicit(pkt.data_mut(), &mac, None, src.octets(), target.octets());
        pkt.set_len(n);
        self.ctr().ndp_solicits.inc();
        self.tx[p].push(pkt);
    }

    /// Neighbour solicitations and advertisements (RFC 4861 §7.1 validation
    /// in `wire::ndp`): solicitations for active VIPs and local addresses
    /// are answered; the solicitor and advertised next hops are learnt.
    fn handle_ndp(
        &mut self,
        snap: &Snapshot,
        mut pkt: P::Pkt,
        ip: Ip6,
        kind: Option<AddrKind>,
        in_port: u16,
        now: u64,
    ) {
        let l3 = ip.l2.l3_offset;
        let info = ip.info;
        let p = &pkt.data()[l3..];
        let solicit = p.get(info.l4_offset) == Some(&icmpv6::TYPE_NEIGHBOR_SOLICIT);
        if solicit {
            let Ok(s) = ndp::Solicit::parse(p, &info) else {
                return self.drop_pkt(DropReason::NdpInvalid, pkt);
            };
            let target = snap.addr_kind6(&s.target);
            let ours = matches!(
                target,
                Some(AddrKind::Vip { active: true }) | Some(AddrKind::Laddr { active: true })
            );
            // RFC 4861 §7.2.3: a solicitation with a source link-layer
            // option teaches its sender's address; Linux creates the entry
            // only when the solicitation is for one of its addresses.
            let src = Ipv6Addr::from(info.src);
            if let Some(mac) = s.source_ll {
                if !ipv6::is_unspecified(&info.src) && snap.routes6.is_connected(in_port, src) {
                    self.learn6(src, mac, in_port, now, ours);
                }
            }
            match target {
                _ if ours => {
                    let mut sender = [0u8; 6];
                    sender.copy_from_slice(&pkt.data()[6..12]);
                    let to = s.source_ll.unwrap_or(sender);
                    let mac = self.ports[in_port as usize].mac();
                    if !pkt.set_len(l3 + ndp::FRAME_LEN - ethernet::HEADER_LEN) {
                        return self.drop_pkt(DropReason::NoBuffer, pkt);
                    }
                    let n =
                        ndp::build_reply(pkt.data_mut(), &to, info.src, &mac, ip.l2.vlan, s.target);
                    pkt.set_len(n);
                    self.ctr().ndp_adverts.inc();
                    self.tx[in_port as usize].push(pkt);
                }
                Some(AddrKind::Own) => self.pass_to_kernel(pkt, in_port, DropReason::ToKernel),
                // Not answered. An address the snapshot does not know may
                // still be the kernel's (its link-local ones): it decides.
                None => self.pass_to_kernel(pkt, in_port, DropReason::NdpIgnored),
                _ => self.drop_pkt(DropReason::NdpIgnored, pkt),
            }
        } else {
            let Ok(adv) = ndp::Advert::parse(p, &info) else {
                return self.drop_pkt(DropReason::NdpInvalid, pkt);
            };
            let target = Ipv6Addr::from(adv.target);
            // RFC 4861 §7.2.5: an advertisement updates an entry that
            // exists (we asked); it creates none. Without a target
            // link-layer option it teaches nothing.
            let learnt = match adv.target_ll {
                Some(mac) if self.neigh6.get(target).is_some() || self.neigh6_pending(target) => {
                    self.learn6(target, mac, in_port, now, false);
                    true
                }
                _ => false,
            };
            match kind {
                Some(AddrKind::Own) => self.pass_to_kernel(pkt, in_port, DropReason::ToKernel),
                _ if learnt => {}
                None => self.pass_to_kernel(pkt, in_port, DropReason::NdpIgnored),
                _ => self.drop_pkt(DropReason::NdpIgnored, pkt),
            }
        }
    }

    /// Whether `ip` is being resolved (an entry without a MAC yet).
    fn neigh6_pending(&self, ip: Ipv6Addr) -> bool {
        self.neigh6.is_pending(ip)
    }

    /// Learns an IPv6 neighbour, releases what waited for it and tells the
    /// other workers.
    fn learn6(&mut self, ip: Ipv6Addr, mac: Mac, port: u16, now: u64, create: bool) {
        let mut ready = std::mem::take(&mut self.ready);
        self.neigh6.learn(ip, mac, port, now, create, &mut ready);
        if self.neigh6.get(ip) == Some(mac) {
            let w = self.shared.workers;
            for to in 0..w {
                if to != self.id {
                    let _ = self.shared.neigh6_events[self.id * w + to].push(NeighEvent6 {
                        ip,
                        mac,
                        port,
                    });
                }
            }
        }
        for (port, p) in ready.drain(..) {
            self.queue_tx(port as usize, p, &mac);
        }
        self.ready = ready;
    }

    /// ICMPv6 to an address of ours or about a flow: echo requests to a VIP
    /// are answered; errors quoting a flow are translated like the flow
    /// (to ICMPv4 for NAT64); the rest is refused.
    #[allow(clippy::too_many_arguments)]
    fn handle_icmp6(
        &mut self,
        snap: &Snapshot,
        mut pkt: P::Pkt,
        ip: Ip6,
        kind: Option<AddrKind>,
        in_port: u16,
        now: u64,
        handed: bool,
    ) {
        let l3 = ip.l2.l3_offset;
        let icmp_off = l3 + ip.info.l4_offset;
        let end = l3 + ip.info.total_len;
        if end - icmp_off < icmpv6::HEADER_LEN {
            return self.drop_pkt(DropReason::Truncated, pkt);
        }
        if !icmpv6::checksum_ok(&pkt.data()[icmp_off..end], &ip.info.src, &ip.info.dst) {
            return self.drop_pkt(DropReason::BadL4Header, pkt);
        }
        let ty = pkt.data()[icmp_off];
        if ty == icmpv6::TYPE_ECHO_REQUEST && matches!(kind, Some(AddrKind::Vip { .. })) {
            // As for IPv4: the director answers pings to its VIPs.
            icmpv6::echo_reply(&mut pkt.data_mut()[l3..], ip.info.l4_offset);
            pkt.set_len(end);
            return self.send6(snap, pkt, ip.info.src, now);
        }
        let Some(q) = icmp6::parse_error(pkt.data(), icmp_off, end) else {
            let r = if kind.is_none() {
                DropReason::NotOurs
            } else {
                DropReason::IcmpUnmatched
            };
            return self.drop_pkt(r, pkt);
        };
        let t = q.flow();
        match kind {
            Some(AddrKind::Vip { .. }) => {
                // From the client, about a reply we sent (VIP → client).
                let Some(si) = snap.service6(t.proto, &t.daddr, t.dport) else {
                    return self.drop_pkt(DropReason::IcmpUnmatched, pkt);
                };
                let svc = &snap.services6[si as usize];
                if let Some(owner) = snap
                    .inbound_owner6(svc, &t.saddr, t.sport)
                    .filter(|&o| !handed && o != self.id)
                {
                    return self.handover(pkt, in_port, owner);
                }
                let h = self.hash6_of(&t);
                let Some(ci) = self.conns6.lookup_in6(&t, h) else {
                    return self.drop_pkt(DropReason::IcmpUnmatched, pkt);
                };
                let c = *self.conns6.get(ci);
                let a = self.conns6.get6(ci);
                self.conns6.touch(ci, now);
                if let (Some(rip4), Some(lip4)) = (unmapped(&a.daddr), unmapped(&a.laddr)) {
                    return self.icmp6_to_v4(snap, pkt, &ip, &c, rip4, lip4, now);
                }
                self.ctr().icmp_translated.inc();
                match icmp6::from_client(&c, &a) {
                    Some(r) => {
                        icmp6::translate(pkt.data_mut(), l3, end, &q, &r);
                        pkt.set_len(end);
                        self.send6(snap, pkt, a.daddr, now);
                    }
                    None if unmapped(&a.daddr).is_some() => {
                        // TUN to an IPv4 server: IPv6 in IPv4.
                        let rip4 = unmapped(&a.daddr).unwrap_or_default();
                        self.tunnel_6in4(snap, pkt, &ip, end, a.vaddr, rip4, now);
                    }
                    None => {
                        // TUN: tunnelled to the server as it is.
                        let Some(nh) = snap.routes6.lookup(Ipv6Addr::from(a.daddr)) else {
                            return self.drop_pkt(DropReason::NoRoute, pkt);
                        };
                        let Some(src) = snap.port_addr6(nh.port) else {
                            return self.drop_pkt(DropReason::NoRoute, pkt);
                        };
                        pkt.set_len(end);
                        if !pkt.prepend(tun6::OVERHEAD) {
                            return self.drop_pkt(DropReason::NoBuffer, pkt);
                        }
                        tun6::encap_in_place(pkt.data_mut(), l3, src.octets(), a.daddr);
                        self.send6(snap, pkt, a.daddr, now);
                    }
                }
            }
            _ => {
                // From an IPv6 real server, about a packet we forwarded to
                // it: (client | local address) → RIP.
                let fullnat = matches!(kind, Some(AddrKind::Laddr { .. }));
                if !handed && snap.workers > 1 {
                    let owner = if fullnat {
                        snap.lport_owner(t.dport)
                    } else {
                        snap.nat_owner6(&t.daddr, t.dport)
                    };
                    if owner != self.id {
                        return self.handover(pkt, in_port, owner);
                    }
                }
                let h = self.hash6_of(&t);
                let Some(ci) = self.conns6.lookup_out6(&t, h) else {
                    let r = if fullnat {
                        DropReason::IcmpUnmatched
                    } else {
                        DropReason::NotOurs
                    };
                    return self.drop_pkt(r, pkt);
                };
                let c = *self.conns6.get(ci);
                let a = self.conns6.get6(ci);
                self.conns6.touch(ci, now);
                let r = icmp6::from_server(&c, &a, fullnat);
                icmp6::translate(pkt.data_mut(), l3, end, &q, &r);
                pkt.set_len(end);
                self.ctr().icmp_translated.inc();
                self.send6(snap, pkt, a.caddr, now);
            }
        }
    }

    /// NAT64: an ICMPv6 error from the client about a reply it got, for
    /// the IPv4 real server, translated to ICMPv4 (RFC 7915 §5.2) from the
    /// local address, quoting the server's packet as it left the server.
    #[allow(clippy::too_many_arguments)]
    fn icmp6_to_v4(
        &mut self,
        snap: &Snapshot,
        pkt: P::Pkt,
        ip: &Ip6,
        c: &Conn,
        rip4: [u8; 4],
        lip4: [u8; 4],
        now: u64,
    ) {
        let l3 = ip.l2.l3_offset;
        let port = snap
            .routes
            .lookup(Ipv4Addr::from(rip4))
            .map_or(0, |nh| nh.port);
        let Some(mut out) = self.ports.get_mut(port as usize).and_then(|p| p.alloc()) else {
            self.ctr().drop(DropReason::NoBuffer);
            return self.drop_pkt(DropReason::NoBuffer, pkt);
        };
        if !out.set_len(ethernet::HEADER_LEN + nat64::ERROR_BUF) {
            self.drop_pkt(DropReason::NoBuffer, out);
            return self.drop_pkt(DropReason::NoBuffer, pkt);
        }
        let addrs = nat64::ErrorAddrs {
            src: lip4,
            dst: rip4,
            quoted_src: (rip4, c.dport),
            quoted_dst: (lip4, c.lport),
        };
        let orig = &pkt.data()[l3..l3 + ip.info.total_len];
        // Rebuilt by the director, from its local address: a fresh TTL.
        let res = nat64::error_to_v4(
            orig,
            &ip.info,
            &addrs,
            64,
            &mut out.data_mut()[ethernet::HEADER_LEN..],
        );
        match res {
            Ok(n) => {
                ethernet::write_header(
                    out.data_mut(),
                    &[0; 6],
                    &[0; 6],
                    None,
                    ethernet::ETHERTYPE_IPV4,
                );
                out.set_len(ethernet::HEADER_LEN + n);
                self.ctr().icmp_translated.inc();
                self.drop_pkt_silently(pkt);
                self.send(snap, out, rip4, now);
            }
            Err(_) => {
                self.drop_pkt(DropReason::Nat64Untranslatable, out);
                self.drop_pkt(DropReason::Nat64Untranslatable, pkt);
            }
        }
    }

    /// NAT64: an ICMPv4 error from an IPv4 real server to an IPv4 local
    /// address, quoting a packet of a NAT64 connection: translated to
    /// ICMPv6 for the client, from the VIP (RFC 7915 §4.2). Called by the
    /// IPv4 path when no IPv4 connection matches.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn icmp4_to_v6(
        &mut self,
        snap: &Snapshot,
        pkt: P::Pkt,
        ip: &Ip,
        q: &fwd::icmp::Quoted,
        now: u64,
    ) {
        let t = q.flow();
        let t6 = mapped_tuple(&t);
        let h = self.hash6_of(&t6);
        let Some(ci) = self.conns6.lookup_out6(&t6, h) else {
            return self.drop_pkt(DropReason::IcmpUnmatched, pkt);
        };
        let c = *self.conns6.get(ci);
        let a = self.conns6.get6(ci);
        self.conns6.touch(ci, now);
        let port = snap
            .routes6
            .lookup(Ipv6Addr::from(a.caddr))
            .map_or(0, |nh| nh.port);
        let Some(mut out) = self.ports.get_mut(port as usize).and_then(|p| p.alloc()) else {
            self.ctr().drop(DropReason::NoBuffer);
            return self.drop_pkt(DropReason::NoBuffer, pkt);
        };
        if !out.set_len(ethernet::HEADER_LEN + nat64::ERROR_BUF) {
            self.drop_pkt(DropReason::NoBuffer, out);
            return self.drop_pkt(DropReason::NoBuffer, pkt);
        }
        let l3 = ip.l2.l3_offset;
        let addrs = nat64::ErrorAddrs {
            src: a.vaddr,
            dst: a.caddr,
            quoted_src: (a.caddr, c.cport),
            quoted_dst: (a.vaddr, c.vport),
        };
        let orig = &pkt.data()[l3..l3 + ip.info.total_len];
        let res = nat64::error_to_v6(
            orig,
            &ip.info,
            &addrs,
            64,
            &mut out.data_mut()[ethernet::HEADER_LEN..],
        );
        match res {
            Ok(n) => {
                ethernet::write_header(
                    out.data_mut(),
                    &[0; 6],
                    &[0; 6],
                    None,
                    ethernet::ETHERTYPE_IPV6,
                );
                out.set_len(ethernet::HEADER_LEN + n);
                self.ctr().icmp_translated.inc();
                self.drop_pkt_silently(pkt);
                self.send6(snap, out, a.caddr, now);
            }
            Err(_) => {
                self.drop_pkt(DropReason::Nat64Untranslatable, out);
                self.drop_pkt(DropReason::Nat64Untranslatable, pkt);
            }
        }
    }

    /// Lets a packet buffer go without counting a drop (its content left
    /// in another buffer).
    #[inline(always)]
    fn drop_pkt_silently(&self, _p: P::Pkt) {}

    /// IPv6 housekeeping: expiry, template reaping, neighbours learnt by
    /// other workers, NDP retries.
    pub(super) fn housekeeping6(&mut self, snap: &Snapshot, now: u64, neigh_tick: bool) {
        let now_s = (now / 1000) as u32;
        let pressure = self.conns6.under_pressure();
        let expired = self.conns6.expire(now, EXPIRE_BUDGET, |c| {
            release_conn6(snap, c, now_s, pressure && c.is_unconfirmed());
        });
        self.conns6.trim_candidates(EXPIRE_BUDGET);
        self.conns6.shorten_candidates(now, EXPIRE_BUDGET);
        self.ctr().conns_expired.add(expired as u64);
        if now >= self.reap_ms6 + 5 {
            self.reap_ms6 = now;
            snap.templates6.reap(now_s, REAP_BUDGET, |d| {
                if let Some(e) = snap.dest(d) {
                    e.dest.shared.persist_released();
                }
            });
        }
        let w = self.shared.workers;
        let mut ready = std::mem::take(&mut self.ready);
        for from in 0..w {
            if from == self.id {
                continue;
            }
            while let Some(ev) = self.shared.neigh6_events[from * w + self.id].pop() {
                self.neigh6
                    .learn(ev.ip, ev.mac, ev.port, now, true, &mut ready);
                for (port, p) in ready.drain(..) {
                    self.queue_tx(port as usize, p, &ev.mac);
                }
            }
        }
        self.ready = ready;
        if !neigh_tick {
            return;
        }
        let mut probes = [(Ipv6Addr::UNSPECIFIED, 0u16); 16];
        let mut np = 0;
        let mut dropped = 0u64;
        self.neigh6.tick(
            now,
            |ip, port| {
                if np < probes.len() {
                    probes[np] = (ip, port);
                    np += 1;
                }
            },
            |_p| dropped += 1,
        );
        for _ in 0..dropped {
            self.ctr().drop(DropReason::NeighUnresolved);
        }
        for &(ip, port) in &probes[..np] {
            self.ndp_probe(snap, ip, port);
        }
    }
}

/// `release_conn` for an IPv6 connection: its templates are the IPv6
/// table's.
#[inline]
fn release_conn6(snap: &Snapshot, c: &Conn, now_s: u32, abandon: bool) {
    if let Some(e) = snap.dest(c.dest_id) {
        e.dest.unbind_conn(c.is_active());
    }
    if c.flags & F_TEMPLATE_REF != 0 {
        if abandon && c.flags & F_TEMPLATE_FRESH != 0 {
            snap.templates6.release_abandoned(c.tmpl, now_s);
        } else {
            snap.templates6.release(c.tmpl, now_s);
        }
    }
}

/// IPv6 martian sources: ::, ::1, ff00::/8 and ::ffff:0:0/96 (see
/// `ip6_rcv_core` in net/ipv6/ip6_input.c). A few compares.
#[inline(always)]
pub(crate) fn martian_src6(s: &[u8; 16]) -> bool {
    let a = u128::from_be_bytes(*s);
    a <= 1 || s[0] == 0xff || a >> 32 == 0xffff
}
