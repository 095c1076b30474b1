//! The IPv6 data path over memory ports: whole TCP flows through DR, NAT66,
//! FULLNAT66, TUN (IPv6-in-IPv6) and NAT64 with two workers (hand-over),
//! NDP, hostile extension headers, ICMPv6 error translation and Packet Too
//! Big. Expected frames are built from scratch by etherparse and compared
//! byte for byte; checksums are verified by etherparse's own computation.

mod common;
use common::lab6::*;
use common::{arp_reply, rs_mac, CLIENT_MAC, DIR0_MAC, DIR1_IP, DIR1_MAC};
use etherparse::{
    Icmpv6Type, NetSlice, PacketBuilder, SlicedPacket, TcpOptionElement, TransportSlice,
};
use ferrovs_dataplane::conn::template::TemplateTable;
use ferrovs_dataplane::counters::DropReason;
use ferrovs_dataplane::port::memory::MemPort;
use ferrovs_dataplane::sched::SchedKind;
use ferrovs_dataplane::service::{FwdMethod, Persistence6, Proto};
use ferrovs_dataplane::snapshot::{PortConf, SnapshotBuilder};
use ferrovs_dataplane::wire::{ndp, Mac};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// A whole TCP connection through a mode that sees replies: SYN, SYN-ACK,
/// ACK, data both ways, FIN both ways. `to_rs(flags, payload)` and
/// `to_client(...)` are the frames expected on each side; `from_rs` the
/// server's frames. Client frames go in on worker 0, server frames on the
/// last worker, so that with two workers one direction is handed over.
fn flow(
    lab: &mut Lab6,
    cport: u16,
    to_rs: impl Fn(&str, &[u8]) -> Vec<u8>,
    from_rs: impl Fn(&str, &[u8]) -> Vec<u8>,
    to_client: impl Fn(&str, &[u8]) -> Vec<u8>,
) {
    let last = lab.workers.len() - 1;
    let c = |flags: &str, payload: &[u8]| {
        tcp6(
            CLIENT_MAC, DIR0_MAC, CLIENT6, cport, VIP6, 80, 64, flags, payload,
        )
    };
    for (flags, payload, client) in [
        ("S", &b""[..], true),
        ("SA", b"", false),
        ("A", b"", true),
        ("A", b"GET / HTTP/1.0\r\n\r\n", true),
        ("A", b"HTTP/1.0 200 OK\r\n\r\nhello", false),
        ("FA", b"", true),
        ("FA", b"", false),
        ("A", b"", true),
    ] {
        if client {
            let out = lab.send(0, 0, &c(flags, payload), 1);
            assert_eq!(out.len(), 1, "client {flags}");
            assert_eq!(
                out[0],
                to_rs(flags, payload),
                "client {flags} to the server"
            );
        } else {
            let out = lab.send(last, 1, &from_rs(flags, payload), 0);
            assert_eq!(out.len(), 1, "server {flags}");
            assert_checksums6(&out[0]);
            assert_eq!(
                out[0],
                to_client(flags, payload),
                "server {flags} to the client"
            );
        }
    }
}

#[test]
fn dr6_rewrites_only_macs() {
    let mut lab = Lab6::new(Svc6::new(FwdMethod::Dr), 2);
    for (w, cport) in [(0, 40000), (1, 40001)] {
        let syn = tcp6(CLIENT_MAC, DIR0_MAC, CLIENT6, cport, VIP6, 80, 64, "S", b"");
        let out = lab.send(w, 0, &syn, 1);
        // The hop limit one lower: IPVS's decrement_ttl covers DR too.
        let mut want = hop6(&syn);
        want[0..6].copy_from_slice(&rs_mac(0));
        want[6..12].copy_from_slice(&DIR1_MAC);
        assert_eq!(out, vec![want]);
        let data = tcp6(
            CLIENT_MAC, DIR0_MAC, CLIENT6, cport, VIP6, 80, 64, "A", b"data",
        );
        let out = lab.send(w, 0, &data, 1);
        assert_eq!(&out[0][12..], &hop6(&data)[12..]);
    }
    assert_eq!(
        lab.workers[0].conns6().len() + lab.workers[1].conns6().len(),
        2
    );
    assert_eq!(lab.workers[0].conns().len(), 0, "IPv4 table untouched");
}

#[test]
fn nat66_flow_with_port_mapping_and_hand_over() {
    let mut lab = Lab6::new(Svc6::new(FwdMethod::Nat), 2);
    for cport in 40000..40006 {
        flow(
            &mut lab,
            cport,
            |f, p| tcp6(DIR1_MAC, rs_mac(0), CLIENT6, cport, RS6[0], 8080, 63, f, p),
            |f, p| tcp6(rs_mac(0), DIR1_MAC, RS6[0], 8080, CLIENT6, cport, 64, f, p),
            |f, p| tcp6(DIR0_MAC, CLIENT_MAC, VIP6, 80, CLIENT6, cport, 63, f, p),
        );
    }
    // Six clients over two workers: some of either direction reached the
    // other worker and were handed over to the owner.
    assert!(lab.handovers() > 0);
    assert_eq!(lab.dropped(DropReason::HandoverFull), 0);
    // A reply nobody asked for is not relayed.
    let stray = tcp6(rs_mac(0), DIR1_MAC, RS6[0], 8080, CLIENT6, 1, 64, "A", b"");
    assert!(lab.send(0, 1, &stray, 0).is_empty());
    assert_eq!(lab.dropped(DropReason::NotOurs), 1);
}

#[test]
fn fullnat66_flow_rewrites_both_ends_with_hand_over() {
    let mut lab = Lab6::new(Svc6::new(FwdMethod::FullNat), 2);
    for cport in [40000u16, 40001, 40002, 40003] {
        // The local port comes from a worker's slice: learn it from the SYN.
        let syn = tcp6(CLIENT_MAC, DIR0_MAC, CLIENT6, cport, VIP6, 80, 64, "S", b"");
        lab.inject(0, 0, &syn);
        lab.poll_all();
        let out: Vec<_> = (0..2).flat_map(|w| lab.take(w, 1)).collect();
        assert_eq!(out.len(), 1);
        let lport = u16::from_be_bytes([out[0][54], out[0][55]]);
        assert_eq!(
            out[0],
            tcp6(
                DIR1_MAC,
                rs_mac(0),
                LADDR6,
                lport,
                RS6[0],
                8080,
                63,
                "S",
                b""
            )
        );
        assert_checksums6(&out[0]);
        // Replies go in on the worker that does not own the port.
        let other = 1 - (lport as usize % 2);
        for (f, p) in [("SA", &b""[..]), ("A", b"hello")] {
            let r = tcp6(rs_mac(0), DIR1_MAC, RS6[0], 8080, LADDR6, lport, 64, f, p);
            let back = lab.send(other, 1, &r, 0);
            assert_eq!(
                back,
                vec![tcp6(
                    DIR0_MAC, CLIENT_MAC, VIP6, 80, CLIENT6, cport, 64, f, p
                )]
            );
        }
        let fin = tcp6(
            CLIENT_MAC, DIR0_MAC, CLIENT6, cport, VIP6, 80, 64, "FA", b"",
        );
        let out = lab.send(0, 0, &fin, 1);
        assert_eq!(
            out,
            vec![tcp6(
                DIR1_MAC,
                rs_mac(0),
                LADDR6,
                lport,
                RS6[0],
                8080,
                63,
                "FA",
                b""
            )]
        );
    }
    assert!(lab.handovers() >= 4);
}

#[test]
fn fullnat66_udp() {
    let mut svc = Svc6::new(FwdMethod::FullNat);
    svc.proto = Proto::Udp;
    svc.rport = 53;
    let mut lab = Lab6::new(svc, 1);
    let q = udp6(CLIENT_MAC, DIR0_MAC, CLIENT6, 5353, VIP6, 80, b"query");
    let out = lab.send(0, 0, &q, 1);
    assert_eq!(out.len(), 1);
    assert_checksums6(&out[0]);
    let lport = u16::from_be_bytes([out[0][54], out[0][55]]);
    assert_eq!(
        out[0],
        hop6(&udp6(
            DIR1_MAC,
            rs_mac(0),
            LADDR6,
            lport,
            RS6[0],
            53,
            b"query"
        ))
    );
    let a = udp6(rs_mac(0), DIR1_MAC, RS6[0], 53, LADDR6, lport, b"answer");
    let back = lab.send(0, 1, &a, 0);
    assert_eq!(
        back,
        vec![udp6(
            DIR0_MAC, CLIENT_MAC, VIP6, 80, CLIENT6, 5353, b"answer"
        )]
    );
    // IPv6 forbids UDP without a checksum (RFC 8200 §8.1).
    let mut bad = udp6(CLIENT_MAC, DIR0_MAC, CLIENT6, 5354, VIP6, 80, b"query");
    bad[60] = 0;
    bad[61] = 0;
    assert!(lab.send(0, 0, &bad, 1).is_empty());
    assert_eq!(lab.dropped(DropReason::BadL4Header), 1);
}

#[test]
fn tun6_wraps_in_ipv6_and_answers_too_big() {
    let mut svc = Svc6::new(FwdMethod::Tun);
    svc.mtu1 = 1400;
    let mut lab = Lab6::new(svc, 2);
    let syn = tcp6(
        CLIENT_MAC, DIR0_MAC, CLIENT6, 40000, VIP6, 80, 64, "S", b"x",
    );
    let out = lab.send(1, 0, &syn, 1);
    assert_eq!(out.len(), 1);
    let f = &out[0];
    assert_eq!(&f[0..6], &rs_mac(0));
    assert_eq!(&f[6..12], &DIR1_MAC);
    assert_eq!(&f[12..14], &[0x86, 0xdd]);
    let mut outer = [0u8; 40];
    outer[0] = 0x60;
    outer[4..6].copy_from_slice(&((syn.len() - 14) as u16).to_be_bytes());
    outer[6] = 41;
    // The inner hop limit, already lowered (ip_vs_prepare_tunneled_skb).
    outer[7] = 63;
    outer[8..24].copy_from_slice(&DIR1_IP6);
    outer[24..40].copy_from_slice(&RS6[0]);
    assert_eq!(&f[14..54], &outer[..]);
    assert_eq!(
        &f[54..],
        &hop6(&syn)[14..],
        "the client's packet, one hop lower"
    );
    // 1361 bytes of IPv6 need 1401 in the tunnel: Packet Too Big for 1360,
    // from the VIP, quoting the packet; never a fragment.
    let big = tcp6(
        CLIENT_MAC,
        DIR0_MAC,
        CLIENT6,
        40000,
        VIP6,
        80,
        64,
        "A",
        &vec![7u8; 1361 - 60],
    );
    assert_eq!(big.len() - 14, 1361);
    assert!(lab.send(1, 0, &big, 1).is_empty());
    let back: Vec<_> = (0..2).flat_map(|w| lab.take(w, 0)).collect();
    assert_eq!(back.len(), 1);
    assert_checksums6(&back[0]);
    let p = SlicedPacket::from_ethernet(&back[0]).unwrap();
    let Some(NetSlice::Ipv6(ip)) = &p.net else {
        panic!()
    };
    assert_eq!(ip.header().source(), VIP6);
    assert_eq!(ip.header().destination(), CLIENT6);
    let Some(TransportSlice::Icmpv6(i)) = &p.transport else {
        panic!()
    };
    assert_eq!(i.icmp_type(), Icmpv6Type::PacketTooBig { mtu: 1360 });
    // Quoted one hop lower: IPVS's decrement_ttl runs before its MTU check.
    assert_eq!(&i.payload()[..40], &hop6(&big)[14..54], "quotes the packet");
    assert_eq!(lab.dropped(DropReason::TooBig), 1);
}

#[test]
fn tun_to_an_ipv4_server_wraps_ipv6_in_ipv4_and_answers_too_big() {
    // IPVS tunnels to a server of the other family (ip_vs_tunnel_xmit,
    // protocol 41): an IPv6 VIP, an IPv4 TUN server.
    let mut svc = Svc6::new(FwdMethod::Tun);
    svc.nat64 = true; // IPv4 servers
    svc.mtu1 = 1400;
    let mut lab = Lab6::new(svc, 2);
    let syn = tcp6(
        CLIENT_MAC, DIR0_MAC, CLIENT6, 40000, VIP6, 80, 64, "S", b"x",
    );
    let out = lab.send(1, 0, &syn, 1);
    assert_eq!(out.len(), 1);
    let f = &out[0];
    assert_eq!(&f[0..6], &rs_mac(0));
    assert_eq!(&f[6..12], &DIR1_MAC);
    assert_eq!(&f[12..14], &[0x08, 0x00], "an IPv4 frame");
    // The outer header, checked by etherparse (checksum from scratch).
    let (h, inner) = etherparse::Ipv4Header::from_slice(&f[14..]).unwrap();
    assert_eq!(h.header_checksum, h.calc_header_checksum());
    assert_eq!(h.protocol, etherparse::IpNumber(41));
    assert_eq!(h.source, DIR1_IP);
    assert_eq!(h.destination, RS4[0]);
    assert_eq!(h.time_to_live, 63, "the inner hop limit, already lowered");
    assert!(
        !h.dont_fragment,
        "DF clear for an IPv6 inner packet, as IPVS"
    );
    assert_eq!(h.total_len as usize, 20 + syn.len() - 14);
    assert_eq!(
        inner,
        &hop6(&syn)[14..],
        "the client's packet, one hop lower"
    );
    // 1381 bytes of IPv6 need 1401 in the tunnel: Packet Too Big for 1380.
    let big = tcp6(
        CLIENT_MAC,
        DIR0_MAC,
        CLIENT6,
        40000,
        VIP6,
        80,
        64,
        "A",
        &vec![7u8; 1381 - 60],
    );
    assert!(lab.send(1, 0, &big, 1).is_empty());
    let back: Vec<_> = (0..2).flat_map(|w| lab.take(w, 0)).collect();
    assert_eq!(back.len(), 1);
    assert_checksums6(&back[0]);
    let p = SlicedPacket::from_ethernet(&back[0]).unwrap();
    let Some(TransportSlice::Icmpv6(i)) = &p.transport else {
        panic!()
    };
    assert_eq!(i.icmp_type(), Icmpv6Type::PacketTooBig { mtu: 1380 });
    assert_eq!(lab.dropped(DropReason::TooBig), 1);
    // The director still does not take an IPv4 server in other modes.
    for fwd in [FwdMethod::Dr, FwdMethod::Nat] {
        let mut svc = Svc6::new(fwd);
        svc.nat64 = true;
        let r = std::panic::catch_unwind(|| snapshot(1, &svc));
        assert!(r.is_err(), "{fwd:?} to an IPv4 server is refused");
    }
}

#[test]
fn tun_to_an_ipv6_server_wraps_ipv4_in_ipv6() {
    // IPVS's other mixed-family tunnel: an IPv4 VIP, IPv6 TUN servers.
    let mut svc = Svc6::new(FwdMethod::Tun);
    svc.tun4in6 = true;
    svc.mtu1 = 1400;
    let mut lab = Lab6::new(svc, 2);
    // The IPv4 client's MAC, for the ICMP error below.
    lab.inject(
        0,
        0,
        &arp_reply(CLIENT_MAC, CLIENT4, DIR0_MAC, [198, 18, 0, 1]),
    );
    lab.poll_all();
    let syn = tcp4(
        CLIENT_MAC, DIR0_MAC, CLIENT4, 40000, VIP4, 80, 64, "S", b"x",
    );
    let out = lab.send(1, 0, &syn, 1);
    assert_eq!(out.len(), 1);
    let f = &out[0];
    assert_eq!(&f[0..6], &rs_mac(0));
    assert_eq!(&f[12..14], &[0x86, 0xdd], "an IPv6 frame");
    let mut outer = [0u8; 40];
    outer[0] = 0x60;
    outer[4..6].copy_from_slice(&((syn.len() - 14) as u16).to_be_bytes());
    outer[6] = 4;
    outer[7] = 63; // the inner TTL, already lowered
    outer[8..24].copy_from_slice(&DIR1_IP6);
    outer[24..40].copy_from_slice(&RS6[0]);
    assert_eq!(&f[14..54], &outer[..]);
    let inner = &f[54..];
    let (h, _) = etherparse::Ipv4Header::from_slice(inner).unwrap();
    assert_eq!(h.time_to_live, 63);
    assert_eq!(h.header_checksum, h.calc_header_checksum());
    assert_eq!(&inner[20..], &syn[34..], "the client's segment as it came");
    // -Lnc shows the IPv6 server.
    let listed = lab.workers[1].conns();
    assert_eq!(listed.len(), 1);
    // Too big with DF (TCP sets it): fragmentation needed for 1360.
    let big = tcp4(
        CLIENT_MAC,
        DIR0_MAC,
        CLIENT4,
        40000,
        VIP4,
        80,
        64,
        "A",
        &vec![1u8; 1361 - 40],
    );
    let mut big = big;
    big[20] |= 0x40; // DF
    let c = {
        big[24] = 0;
        big[25] = 0;
        ferrovs_dataplane::wire::checksum::checksum(&big[14..34])
    };
    big[24..26].copy_from_slice(&c.to_be_bytes());
    assert!(lab.send(1, 0, &big, 1).is_empty());
    let back: Vec<_> = (0..2).flat_map(|w| lab.take(w, 0)).collect();
    assert_eq!(back.len(), 1);
    let p = SlicedPacket::from_ethernet(&back[0]).unwrap();
    let Some(TransportSlice::Icmpv4(i)) = &p.transport else {
        panic!("not ICMP")
    };
    assert_eq!(
        i.icmp_type(),
        etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1360 }
        )
    );
    assert_eq!(lab.dropped(DropReason::TooBig), 1);
    // Without DF: outer IPv6 fragments (the director is their source),
    // whose payloads make up the inner packet, one hop lower.
    let mut nodf = tcp4(
        CLIENT_MAC,
        DIR0_MAC,
        CLIENT4,
        40000,
        VIP4,
        80,
        64,
        "A",
        &vec![2u8; 1800],
    );
    nodf[20] &= !0x40;
    nodf[24] = 0;
    nodf[25] = 0;
    let c = ferrovs_dataplane::wire::checksum::checksum(&nodf[14..34]);
    nodf[24..26].copy_from_slice(&c.to_be_bytes());
    let frags = lab.send(1, 0, &nodf, 1);
    assert_eq!(frags.len(), 2, "1840 bytes in fragments of at most 1352");
    // Later fragments go first (the first reuses the packet).
    let mut frags = frags;
    frags.sort_by_key(|f| u16::from_be_bytes([f[14 + 42], f[14 + 43]]) >> 3);
    let mut whole = vec![];
    let mut id = None;
    for (k, f) in frags.iter().enumerate() {
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        let ip = &f[14..];
        assert!(f.len() <= 14 + 1400, "fits the link");
        assert_eq!(ip[6], 44, "a Fragment header");
        assert_eq!(&ip[8..24], &DIR1_IP6);
        assert_eq!(&ip[24..40], &RS6[0]);
        let plen = u16::from_be_bytes([ip[4], ip[5]]) as usize;
        assert_eq!(plen + 40, f.len() - 14);
        assert_eq!(ip[40], 4, "IPv4 inside");
        let word = u16::from_be_bytes([ip[42], ip[43]]);
        assert_eq!((word >> 3) as usize * 8, whole.len(), "offsets in order");
        assert_eq!(word & 1 == 1, k + 1 < frags.len(), "M on all but the last");
        let fid = u32::from_be_bytes([ip[44], ip[45], ip[46], ip[47]]);
        assert_eq!(*id.get_or_insert(fid), fid, "one identification");
        whole.extend_from_slice(&ip[48..]);
    }
    let (h, _) = etherparse::Ipv4Header::from_slice(&whole).unwrap();
    assert_eq!(h.time_to_live, 63);
    assert_eq!(h.header_checksum, h.calc_header_checksum());
    assert_eq!(&whole[20..], &nodf[34..], "the inner packet, whole");
}

#[test]
fn nat64_flow_ipv6_client_ipv4_server_with_hand_over() {
    let mut svc = Svc6::new(FwdMethod::FullNat);
    svc.nat64 = true;
    let mut lab = Lab6::new(svc, 2);
    for cport in [40000u16, 40001, 40002] {
        let syn = tcp6(CLIENT_MAC, DIR0_MAC, CLIENT6, cport, VIP6, 80, 64, "S", b"");
        lab.inject(0, 0, &syn);
        lab.poll_all();
        let out: Vec<_> = (0..2).flat_map(|w| lab.take(w, 1)).collect();
        assert_eq!(out.len(), 1);
        common::assert_checksums(&out[0]);
        let lport = common::src_port_of(&out[0]);
        // RFC 7915: DF set, TTL one lower, identification 0.
        let mut want = tcp4(
            DIR1_MAC,
            rs_mac(0),
            LADDR4,
            lport,
            RS4[0],
            8080,
            63,
            "S",
            b"",
        );
        let p = SlicedPacket::from_ethernet(&out[0]).unwrap();
        let Some(NetSlice::Ipv4(v4)) = &p.net else {
            panic!()
        };
        assert!(v4.header().dont_fragment());
        assert_eq!(v4.header().identification(), 0);
        // etherparse's builder sets DF too; compare whole frames.
        want[14 + 10..14 + 12].copy_from_slice(&out[0][14 + 10..14 + 12]);
        assert_eq!(out[0], want);
        let other = 1 - (lport as usize % 2);
        for (f, p) in [("SA", &b""[..]), ("A", b"HTTP/1.0 200 OK\r\n\r\nhello")] {
            let r = tcp4(rs_mac(0), DIR1_MAC, RS4[0], 8080, LADDR4, lport, 64, f, p);
            let back = lab.send(other, 1, &r, 0);
            assert_eq!(back.len(), 1, "reply {f}");
            assert_checksums6(&back[0]);
            assert_eq!(
                back[0],
                tcp6(DIR0_MAC, CLIENT_MAC, VIP6, 80, CLIENT6, cport, 63, f, p)
            );
        }
        let data = tcp6(
            CLIENT_MAC, DIR0_MAC, CLIENT6, cport, VIP6, 80, 64, "A", b"GET /",
        );
        let out = lab.send(0, 0, &data, 1);
        assert_eq!(out.len(), 1);
        common::assert_checksums(&out[0]);
        assert_eq!(&out[0][54..], b"GET /");
    }
    assert!(lab.handovers() >= 3);
    // An IPv4 reply to the local address that no connection has.
    let stray = tcp4(
        rs_mac(0),
        DIR1_MAC,
        RS4[0],
        8080,
        LADDR4,
        9999,
        64,
        "A",
        b"",
    );
    assert!(lab.send(1, 1, &stray, 0).is_empty());
    assert_eq!(lab.dropped(DropReason::NoConnection), 1);
}

#[test]
fn ndp_answers_only_for_active_vips_and_local_addresses() {
    let mut svc = Svc6::new(FwdMethod::FullNat);
    svc.servers = 1;
    let mut lab = Lab6::new(svc, 1);
    let peer: Mac = [2, 0, 0, 0, 0, 0x77];
    let who = a6(0, 0x77);
    for target in [VIP6, LADDR6] {
        let port = if target == VIP6 { 0 } else { 1 };
        let src = if port == 0 { who } else { a6(1, 0x77) };
        let out = lab.send(0, port, &ns(peer, src, target, 255), port);
        assert_eq!(out.len(), 1);
        let f = &out[0];
        assert_checksums6(f);
        assert_eq!(&f[0..6], &peer, "to the solicitor");
        let p = SlicedPacket::from_ethernet(f).unwrap();
        let Some(NetSlice::Ipv6(ip)) = &p.net else {
            panic!()
        };
        assert_eq!(ip.header().hop_limit(), 255);
        assert_eq!(ip.header().destination(), src);
        assert_eq!(ip.header().source(), target);
        let Some(TransportSlice::Icmpv6(i)) = &p.transport else {
            panic!()
        };
        let Icmpv6Type::NeighborAdvertisement(h) = i.icmp_type() else {
            panic!("{:?}", i.icmp_type())
        };
        assert!(h.solicited && h.r#override && !h.router);
        assert_eq!(&i.payload()[..16], &target);
        let mac = if port == 0 { DIR0_MAC } else { DIR1_MAC };
        assert_eq!(
            &i.payload()[16..24],
            &[2, 1, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]]
        );
    }
    assert_eq!(
        lab.shared
            .counters
            .iter()
            .map(|c| c.ndp_adverts.get())
            .sum::<u64>(),
        2 + 4, // and the four of priming (the client, three servers)
    );
    // Not ours, inactive (a VRRP backup's), a real server's: no answer.
    for target in [a6(0, 0x99), VIP6_BACKUP, RS6[0]] {
        assert!(lab.send(0, 0, &ns(peer, who, target, 255), 0).is_empty());
    }
    assert_eq!(lab.dropped(DropReason::NdpIgnored), 3);
    // Hop limit not 255: from off-link, refused (RFC 4861 §7.1.1).
    assert!(lab.send(0, 0, &ns(peer, who, VIP6, 64), 0).is_empty());
    // A bad checksum.
    let mut bad = ns(peer, who, VIP6, 255);
    bad[14 + 40 + 2] ^= 0xff;
    assert!(lab.send(0, 0, &bad, 0).is_empty());
    assert_eq!(lab.dropped(DropReason::NdpInvalid), 2);
    // The director's own address is the kernel's.
    let before = lab.dropped(DropReason::ToKernel);
    lab.send(0, 0, &ns(peer, who, DIR0_IP6, 255), 0);
    assert_eq!(lab.dropped(DropReason::ToKernel), before + 1);
}

#[test]
fn next_hops_are_resolved_by_solicitation() {
    // An echo request from an on-link client the director has never
    // heard of: its reply waits for NDP to resolve the client.
    let mut lab = Lab6::new(Svc6::new(FwdMethod::Dr), 1);
    let fresh: Mac = [2, 0, 0, 0, 1, 0x99];
    let mut echo = vec![];
    PacketBuilder::ethernet2(fresh, DIR0_MAC)
        .ipv6(a6(0, 0x55), VIP6, 64)
        .icmpv6_echo_request(1, 1)
        .write(&mut echo, b"ping")
        .unwrap();
    let to_kernel = lab.dropped(DropReason::ToKernel);
    let out = lab.send(0, 0, &echo, 0);
    // The reply waits; a solicitation for the client went out instead.
    assert_eq!(out.len(), 1);
    let s = &out[0];
    assert_checksums6(s);
    let p = SlicedPacket::from_ethernet(s).unwrap();
    let Some(NetSlice::Ipv6(ip)) = &p.net else {
        panic!()
    };
    assert_eq!(ip.header().hop_limit(), 255);
    assert_eq!(ip.header().source(), DIR0_IP6);
    assert_eq!(
        ip.header().destination(),
        [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0x55]
    );
    assert_eq!(&s[0..6], &[0x33, 0x33, 0xff, 0, 0, 0x55]);
    let Some(TransportSlice::Icmpv6(i)) = &p.transport else {
        panic!()
    };
    assert!(matches!(i.icmp_type(), Icmpv6Type::NeighborSolicitation));
    // The client advertises itself: the echo reply leaves at once.
    let mut na = vec![0u8; ndp::FRAME_LEN];
    let n = ndp::build_reply(&mut na, &DIR0_MAC, DIR0_IP6, &fresh, None, a6(0, 0x55));
    na.truncate(n);
    let out = lab.send(0, 0, &na, 0);
    assert_eq!(out.len(), 1);
    assert_checksums6(&out[0]);
    assert_eq!(&out[0][0..6], &fresh);
    let p = SlicedPacket::from_ethernet(&out[0]).unwrap();
    let Some(TransportSlice::Icmpv6(i)) = &p.transport else {
        panic!()
    };
    assert!(matches!(i.icmp_type(), Icmpv6Type::EchoReply(_)));
    // An advertisement nobody asked for creates nothing.
    let mut na = vec![0u8; ndp::FRAME_LEN];
    let n = ndp::build_reply(&mut na, &DIR0_MAC, DIR0_IP6, &fresh, None, a6(0, 0x66));
    na.truncate(n);
    lab.send(0, 0, &na, 0);
    assert!(lab.workers[0]
        .neigh6()
        .get(Ipv6Addr::from(a6(0, 0x66)))
        .is_none());
    // Both advertisements were addressed to the director's own address:
    // the kernel sees them too, as ARP replies to it.
    assert_eq!(lab.dropped(DropReason::ToKernel), to_kernel + 2);
    // One to an address of nobody's is refused.
    let mut na = vec![0u8; ndp::FRAME_LEN];
    let n = ndp::build_reply(&mut na, &DIR0_MAC, a6(0, 0x77), &fresh, None, a6(0, 0x66));
    na.truncate(n);
    lab.send(0, 0, &na, 0);
    assert_eq!(lab.dropped(DropReason::NdpIgnored), 1);
}

/// Inserts extension headers (`ext`, each a whole header whose first byte
/// will be set to the next one's protocol) between the IPv6 header and the
/// transport header of `f`.
fn with_ext(f: &[u8], exts: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let l4_proto = f[14 + 6];
    let mut out = f[..54].to_vec();
    let mut total = 0;
    for (k, (_, h)) in exts.iter().enumerate() {
        let mut h = h.clone();
        h[0] = exts.get(k + 1).map_or(l4_proto, |e| e.0);
        total += h.len();
        out.extend_from_slice(&h);
    }
    out.extend_from_slice(&f[54..]);
    out[14 + 6] = exts.first().map_or(l4_proto, |e| e.0);
    let pl = u16::from_be_bytes([f[18], f[19]]) as usize + total;
    out[18..20].copy_from_slice(&(pl as u16).to_be_bytes());
    out
}

fn dest_opts() -> (u8, Vec<u8>) {
    // Next header, length 0 (8 bytes), PadN of 4.
    (60, vec![0, 0, 1, 4, 0, 0, 0, 0])
}

#[test]
fn hostile_extension_headers_are_counted_and_dropped() {
    let mut lab = Lab6::new(Svc6::new(FwdMethod::Nat), 1);
    let syn = tcp6(CLIENT_MAC, DIR0_MAC, CLIENT6, 40000, VIP6, 80, 64, "S", b"");
    let cases: Vec<(Vec<u8>, DropReason)> = vec![
        // Fragments, first and later, with more to come but a length that
        // is no multiple of 8 (RFC 8200 §4.5): malformed.
        (
            with_ext(&syn, &[(44, vec![0, 0, 0, 1, 0, 0, 0, 7])]),
            DropReason::FragBad,
        ),
        (
            with_ext(&syn, &[(44, vec![0, 0, 0, 0x11, 0, 0, 0, 7])]),
            DropReason::FragBad,
        ),
        // Routing header type 0 (RFC 5095), even with no segments left.
        (
            with_ext(&syn, &[(43, vec![0, 0, 0, 0, 0, 0, 0, 0])]),
            DropReason::Ipv6Routing,
        ),
        // Type 2 with a segment left: not the final destination.
        (
            with_ext(
                &syn,
                &[(43, {
                    let mut h = vec![0, 2, 2, 1, 0, 0, 0, 0];
                    h.extend_from_slice(&a6(9, 9));
                    h
                })],
            ),
            DropReason::Ipv6Routing,
        ),
        // Nine headers: more than an honest packet carries.
        (
            with_ext(&syn, &vec![dest_opts(); 9]),
            DropReason::Ipv6ExtHeaders,
        ),
        // Hop-by-hop after another header.
        (
            with_ext(&syn, &[dest_opts(), (0, vec![0, 0, 1, 4, 0, 0, 0, 0])]),
            DropReason::Ipv6ExtHeaders,
        ),
        // A header whose length runs past the packet.
        (
            {
                let mut f = with_ext(&syn, &[dest_opts()]);
                f[54 + 1] = 200;
                f
            },
            DropReason::Ipv6ExtHeaders,
        ),
        // Payload length beyond the frame.
        (
            {
                let mut f = syn.clone();
                f[18] = 0x40;
                f
            },
            DropReason::Ipv6,
        ),
        // Another IP version under the IPv6 ethertype.
        (
            {
                let mut f = syn.clone();
                f[14] = 0x45;
                f
            },
            DropReason::Ipv6,
        ),
        // Cut in the middle of the fixed header.
        (syn[..40].to_vec(), DropReason::Truncated),
    ];
    for (f, r) in cases {
        let before = lab.dropped(r);
        assert!(lab.send(0, 0, &f, 1).is_empty(), "{r:?} forwarded");
        assert_eq!(lab.dropped(r), before + 1, "{r:?} not counted");
    }
    assert!(lab.workers[0].conns6().is_empty());
    // Honest options pass: the rewrite skips them, checksums hold.
    let f = with_ext(&syn, &[dest_opts(), dest_opts()]);
    let out = lab.send(0, 0, &f, 1);
    assert_eq!(out.len(), 1);
    assert_checksums6(&out[0]);
    assert_eq!(&out[0][14 + 24..14 + 40], &RS6[0]);
    assert_eq!(&out[0][54..70], &f[54..70], "options unchanged");
}

#[test]
fn icmpv6_errors_are_translated_like_their_flow() {
    // FULLNAT66: a server's Packet Too Big about LIP → RIP reaches the
    // client from the VIP about client → VIP.
    let mut lab = Lab6::new(Svc6::new(FwdMethod::FullNat), 1);
    let syn = tcp6(CLIENT_MAC, DIR0_MAC, CLIENT6, 40000, VIP6, 80, 64, "S", b"");
    let out = lab.send(0, 0, &syn, 1);
    assert_eq!(out.len(), 1);
    let mut err = vec![];
    PacketBuilder::ethernet2(rs_mac(0), DIR1_MAC)
        .ipv6(RS6[0], LADDR6, 64)
        .icmpv6(Icmpv6Type::PacketTooBig { mtu: 1300 })
        .write(&mut err, &out[0][14..])
        .unwrap();
    let back = lab.send(0, 1, &err, 0);
    assert_eq!(back.len(), 1);
    let mut want = vec![];
    PacketBuilder::ethernet2(DIR0_MAC, CLIENT_MAC)
        .ipv6(VIP6, CLIENT6, 64)
        .icmpv6(Icmpv6Type::PacketTooBig { mtu: 1300 })
        .write(&mut want, &{
            // The client's own SYN, except for what the server saw: its
            // quoted checksum stays as quoted.
            let mut q = hop6(&syn)[14..].to_vec();
            q[40 + 16..40 + 18].copy_from_slice(&out[0][54 + 16..54 + 18]);
            q
        })
        .unwrap();
    assert_eq!(back[0], want);

    // NAT66: the client's Destination Unreachable about VIP → client
    // reaches the server about RIP → client.
    let mut lab = Lab6::new(Svc6::new(FwdMethod::Nat), 1);
    let syn = tcp6(CLIENT_MAC, DIR0_MAC, CLIENT6, 40000, VIP6, 80, 64, "S", b"");
    lab.send(0, 0, &syn, 1);
    let synack = tcp6(
        rs_mac(0),
        DIR1_MAC,
        RS6[0],
        8080,
        CLIENT6,
        40000,
        64,
        "SA",
        b"",
    );
    let to_client = lab.send(0, 1, &synack, 0);
    let mut err = vec![];
    PacketBuilder::ethernet2(CLIENT_MAC, DIR0_MAC)
        .ipv6(CLIENT6, VIP6, 64)
        .icmpv6(Icmpv6Type::DestinationUnreachable(
            etherparse::icmpv6::DestUnreachableCode::Port,
        ))
        .write(&mut err, &to_client[0][14..])
        .unwrap();
    let fwd = lab.send(0, 0, &err, 1);
    assert_eq!(fwd.len(), 1);
    assert_checksums6(&fwd[0]);
    let p = SlicedPacket::from_ethernet(&fwd[0]).unwrap();
    let Some(NetSlice::Ipv6(ip)) = &p.net else {
        panic!()
    };
    assert_eq!(ip.header().source(), CLIENT6);
    assert_eq!(ip.header().destination(), RS6[0]);
    let Some(TransportSlice::Icmpv6(i)) = &p.transport else {
        panic!()
    };
    let q = i.payload();
    assert_eq!(&q[8..24], &RS6[0], "quoted source is the server again");
    assert_eq!(&q[40..42], &8080u16.to_be_bytes());
    assert_eq!(&q[24..40], &CLIENT6);
    assert_eq!(
        lab.shared
            .counters
            .iter()
            .map(|c| c.icmp_translated.get())
            .sum::<u64>(),
        1
    );

    // An error quoting nothing of ours.
    let mut err = vec![];
    PacketBuilder::ethernet2(CLIENT_MAC, DIR0_MAC)
        .ipv6(CLIENT6, VIP6, 64)
        .icmpv6(Icmpv6Type::DestinationUnreachable(
            etherparse::icmpv6::DestUnreachableCode::Port,
        ))
        .write(
            &mut err,
            &tcp6(DIR0_MAC, CLIENT_MAC, VIP6, 80, CLIENT6, 1, 64, "SA", b"")[14..],
        )
        .unwrap();
    assert!(lab.send(0, 0, &err, 1).is_empty());
    assert_eq!(lab.dropped(DropReason::IcmpUnmatched), 1);
}

#[test]
fn nat64_icmp_errors_cross_the_families() {
    let mut svc = Svc6::new(FwdMethod::FullNat);
    svc.nat64 = true;
    let mut lab = Lab6::new(svc, 1);
    let syn = tcp6(CLIENT_MAC, DIR0_MAC, CLIENT6, 40000, VIP6, 80, 64, "S", b"");
    let out = lab.send(0, 0, &syn, 1);
    assert_eq!(out.len(), 1);
    // The IPv4 server says fragmentation needed, MTU 1400: the client
    // hears Packet Too Big for 1420 from the VIP, about its own packet.
    let mut err = vec![];
    PacketBuilder::ethernet2(rs_mac(0), DIR1_MAC)
        .ipv4(RS4[0], LADDR4, 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
        ))
        .write(&mut err, &out[0][14..])
        .unwrap();
    let back = lab.send(0, 1, &err, 0);
    assert_eq!(back.len(), 1);
    assert_checksums6(&back[0]);
    let p = SlicedPacket::from_ethernet(&back[0]).unwrap();
    let Some(NetSlice::Ipv6(ip)) = &p.net else {
        panic!()
    };
    assert_eq!(ip.header().source(), VIP6);
    assert_eq!(ip.header().destination(), CLIENT6);
    let Some(TransportSlice::Icmpv6(i)) = &p.transport else {
        panic!()
    };
    assert_eq!(i.icmp_type(), Icmpv6Type::PacketTooBig { mtu: 1420 });
    let q = i.payload();
    assert_eq!(&q[8..24], &CLIENT6);
    assert_eq!(&q[24..40], &VIP6);
    assert_eq!(&q[40..44], &[0x9c, 0x40, 0, 80]);

    // The client's Destination Unreachable about VIP → client reaches the
    // IPv4 server as ICMPv4 about RIP → LIP.
    let synack = tcp4(
        rs_mac(0),
        DIR1_MAC,
        RS4[0],
        8080,
        LADDR4,
        common::src_port_of(&out[0]),
        64,
        "SA",
        b"",
    );
    let to_client = lab.send(0, 1, &synack, 0);
    assert_eq!(to_client.len(), 1);
    let mut err = vec![];
    PacketBuilder::ethernet2(CLIENT_MAC, DIR0_MAC)
        .ipv6(CLIENT6, VIP6, 64)
        .icmpv6(Icmpv6Type::DestinationUnreachable(
            etherparse::icmpv6::DestUnreachableCode::Port,
        ))
        .write(&mut err, &to_client[0][14..])
        .unwrap();
    let fwd = lab.send(0, 0, &err, 1);
    assert_eq!(fwd.len(), 1);
    common::assert_checksums(&fwd[0]);
    assert_eq!(common::src_ip_of(&fwd[0]), LADDR4);
    assert_eq!(common::dst_ip_of(&fwd[0]), RS4[0]);
    // Port unreachable: ICMPv4 type 3 code 3.
    assert_eq!((fwd[0][34], fwd[0][35]), (3, 3));
    let q = &fwd[0][42..];
    assert_eq!(&q[12..16], &RS4[0]);
    assert_eq!(&q[16..20], &LADDR4);
}

#[test]
fn echo_to_an_ipv6_vip_is_answered() {
    let mut lab = Lab6::new(Svc6::new(FwdMethod::Dr), 1);
    let mut echo = vec![];
    PacketBuilder::ethernet2(CLIENT_MAC, DIR0_MAC)
        .ipv6(CLIENT6, VIP6, 64)
        .icmpv6_echo_request(7, 9)
        .write(&mut echo, b"ping")
        .unwrap();
    let out = lab.send(0, 0, &echo, 0);
    let mut want = vec![];
    PacketBuilder::ethernet2(DIR0_MAC, CLIENT_MAC)
        .ipv6(VIP6, CLIENT6, 64)
        .icmpv6_echo_reply(7, 9)
        .write(&mut want, b"ping")
        .unwrap();
    assert_eq!(out, vec![want]);
    // Not for an inactive VIP.
    let mut echo = vec![];
    PacketBuilder::ethernet2(CLIENT_MAC, DIR0_MAC)
        .ipv6(CLIENT6, VIP6_BACKUP, 64)
        .icmpv6_echo_request(7, 9)
        .write(&mut echo, b"ping")
        .unwrap();
    assert!(lab.send(0, 0, &echo, 0).is_empty());
    assert_eq!(lab.dropped(DropReason::VipInactive), 1);
}

#[test]
fn ipv6_persistence_by_prefix_and_hashing_schedulers() {
    // -p 360 -M 64: two clients of one /64 share a server; sh spreads by
    // the folded address as IPVS does.
    let mut svc = Svc6::new(FwdMethod::Dr);
    svc.servers = 3;
    svc.persistence = Some(Persistence6 {
        timeout_s: 360,
        prefix_len: 64,
    });
    let mut lab = Lab6::new(svc, 2);
    let mut first = None;
    for (k, w) in [(2u16, 0usize), (3, 1), (0x4444, 0), (0x5555, 1)] {
        let src = a6(0, k);
        lab.inject(w, 0, &ns([2, 0, 0, 0, 0, k as u8], src, VIP6, 255));
        let syn = tcp6(CLIENT_MAC, DIR0_MAC, src, 40000, VIP6, 80, 64, "S", b"");
        lab.inject(w, 0, &syn);
        lab.poll_all();
        let out: Vec<_> = (0..2).flat_map(|x| lab.take(x, 1)).collect();
        assert_eq!(out.len(), 1);
        let mac = out[0][0..6].to_vec();
        match &first {
            None => first = Some(mac),
            Some(m) => assert_eq!(&mac, m, "client {k:x} of the same /64"),
        }
        for x in 0..2 {
            lab.take(x, 0);
        }
    }
    // sh: the same client address always gets the same server, whichever
    // worker schedules it.
    let mut svc = Svc6::new(FwdMethod::Dr);
    svc.servers = 3;
    svc.sched = SchedKind::Sh;
    let mut lab = Lab6::new(svc, 2);
    let mut seen = std::collections::HashSet::new();
    for k in 0..24u16 {
        let src = a6(0, 0x1000 + k);
        let mut macs = vec![];
        for (w, cport) in [(0usize, 40000u16), (1, 40001)] {
            let syn = tcp6(CLIENT_MAC, DIR0_MAC, src, cport, VIP6, 80, 64, "S", b"");
            lab.inject(w, 0, &syn);
            lab.poll_all();
            let out: Vec<_> = (0..2).flat_map(|x| lab.take(x, 1)).collect();
            assert_eq!(out.len(), 1);
            macs.push(out[0][0..6].to_vec());
        }
        assert_eq!(macs[0], macs[1]);
        seen.insert(macs[0].clone());
    }
    assert!(seen.len() > 1, "sh spreads clients over the servers");
}

#[test]
fn mh_and_dh_pick_alike_on_every_director_and_worker() {
    // Maglev over folded IPv6 addresses: two directors (two labs, tables
    // built separately) and both workers of each give a client one server.
    for sched in [SchedKind::Mh, SchedKind::Dh] {
        let mk = || {
            let mut svc = Svc6::new(FwdMethod::Dr);
            svc.servers = 3;
            svc.sched = sched;
            Lab6::new(svc, 2)
        };
        let (mut a, mut b) = (mk(), mk());
        let mut seen = std::collections::HashSet::new();
        for k in 0..24u16 {
            let src = a6(0, 0x2000 + k);
            let mut macs = vec![];
            for (lab, w) in [(&mut a, 0usize), (&mut b, 1)] {
                let syn = tcp6(CLIENT_MAC, DIR0_MAC, src, 40000 + k, VIP6, 80, 64, "S", b"");
                lab.inject(w, 0, &syn);
                lab.poll_all();
                let out: Vec<_> = (0..2).flat_map(|x| lab.take(x, 1)).collect();
                assert_eq!(out.len(), 1);
                macs.push(out[0][0..6].to_vec());
            }
            assert_eq!(macs[0], macs[1], "{sched:?} client {k}");
            seen.insert(macs[0].clone());
        }
        // dh hashes the destination (one VIP: one server); mh the client.
        if sched == SchedKind::Mh {
            assert!(seen.len() > 1);
        } else {
            assert_eq!(seen.len(), 1);
        }
    }
}

/// `sloppy_tcp` over IPv6: a flow started on director A goes on through
/// director B (same configuration, mh), to the same server; without it B
/// drops the mid-flow segment.
#[test]
fn ipv6_flow_moves_to_another_director_with_sloppy_tcp() {
    for sloppy in [true, false] {
        let mk = || {
            let mut svc = Svc6::new(FwdMethod::Dr);
            svc.servers = 3;
            svc.sched = SchedKind::Mh;
            svc.sloppy = sloppy;
            Lab6::new(svc, 1)
        };
        let (mut a, mut b) = (mk(), mk());
        for k in 0..24u16 {
            let src = a6(0, 0x3000 + k);
            let syn = tcp6(CLIENT_MAC, DIR0_MAC, src, 41000 + k, VIP6, 80, 64, "S", b"");
            let first = a.send(0, 0, &syn, 1);
            assert_eq!(first.len(), 1);
            let ack = tcp6(
                CLIENT_MAC,
                DIR0_MAC,
                src,
                41000 + k,
                VIP6,
                80,
                64,
                "A",
                b"x",
            );
            let later = b.send(0, 0, &ack, 1);
            if sloppy {
                assert_eq!(later.len(), 1, "client {k}");
                assert_eq!(later[0][..6], first[0][..6], "client {k}: same server");
                assert_checksums6(&later[0]);
            } else {
                assert!(later.is_empty());
            }
        }
        let picked: u64 = b
            .shared
            .counters
            .iter()
            .map(|c| c.conns_picked_up.get())
            .sum();
        assert_eq!(picked, if sloppy { 24 } else { 0 });
        if !sloppy {
            assert_eq!(b.dropped(DropReason::NoConnection), 24);
        }
    }
}

#[test]
fn unsolicited_advertisement_for_a_vip_leaves_through_the_worker() {
    // What the control plane sends on becoming VRRP master, as it sends
    // gratuitous ARP: built by `ndp::build_unsolicited`, transmitted by a
    // worker.
    let mut lab = Lab6::new(Svc6::new(FwdMethod::Dr), 1);
    let mut f = vec![0u8; ndp::FRAME_LEN];
    let n = ndp::build_unsolicited(&mut f, &DIR0_MAC, None, VIP6);
    f.truncate(n);
    assert!(lab.shared.request(
        0,
        ferrovs_dataplane::worker::Request::Transmit {
            port: 0,
            frame: f.clone()
        }
    ));
    lab.poll_all();
    let out = lab.take(0, 0);
    assert_eq!(out, vec![f]);
    assert_checksums6(&out[0]);
    assert_eq!(&out[0][0..6], &[0x33, 0x33, 0, 0, 0, 1]);
    let p = SlicedPacket::from_ethernet(&out[0]).unwrap();
    let Some(NetSlice::Ipv6(ip)) = &p.net else {
        panic!()
    };
    assert_eq!(ip.header().hop_limit(), 255);
    assert_eq!(ip.header().source(), VIP6);
    let Some(TransportSlice::Icmpv6(i)) = &p.transport else {
        panic!()
    };
    let Icmpv6Type::NeighborAdvertisement(h) = i.icmp_type() else {
        panic!()
    };
    assert!(h.r#override && !h.solicited);
    assert_eq!(&i.payload()[..16], &VIP6);
}

#[test]
fn ipv6_connections_are_listed_expire_and_release_their_server() {
    let mut svc = Svc6::new(FwdMethod::FullNat);
    svc.nat64 = true;
    svc.persistence = Some(Persistence6 {
        timeout_s: 60,
        prefix_len: 64,
    });
    let mut lab = Lab6::new(svc, 1);
    let syn = tcp6(CLIENT_MAC, DIR0_MAC, CLIENT6, 40000, VIP6, 80, 64, "S", b"");
    assert_eq!(lab.send(0, 0, &syn, 1).len(), 1);
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    assert!(lab
        .shared
        .request(0, ferrovs_dataplane::worker::Request::ListConns6(tx)));
    lab.poll_all();
    let list = rx.recv().unwrap();
    assert_eq!(list.len(), 1);
    let c = list[0];
    assert_eq!(c.state, "SYN_RECV");
    assert_eq!(c.client, (IpAddr::from(CLIENT6), 40000));
    assert_eq!(c.virt, (IpAddr::from(VIP6), 80));
    assert_eq!(c.dest, (IpAddr::from(RS4[0]), 8080));
    let snap = lab.shared.snapshot.load_full();
    let dest = &snap.dest(1).unwrap().dest;
    assert_eq!(dest.shared.inactive(), 1);
    assert_eq!(
        dest.shared
            .persistconns
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // SYN_RECV lasts 60 s; the template outlives its connection by up
    // to a persistence timeout.
    lab.now += 61_000;
    lab.poll_all();
    assert!(lab.workers[0].conns6().is_empty());
    assert_eq!(dest.shared.inactive(), 0);
    lab.now += 200_000;
    // The reaper visits a slice of the template table every 5 ms.
    for _ in 0..8 {
        lab.now += 10;
        lab.poll_all();
    }
    assert_eq!(
        dest.shared
            .persistconns
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[test]
fn replies_too_big_for_the_client_link_are_answered_not_fragmented() {
    // NAT64: a 1500-byte IPv4 reply grows to 1520 bytes of IPv6, more than
    // the client's 1500-byte link: the server hears fragmentation needed
    // for 1480 (RFC 7915 §4.2) from the local address it sent to.
    let mut svc = Svc6::new(FwdMethod::FullNat);
    svc.nat64 = true;
    let mut lab = Lab6::new(svc, 1);
    let syn = tcp6(CLIENT_MAC, DIR0_MAC, CLIENT6, 40000, VIP6, 80, 64, "S", b"");
    let out = lab.send(0, 0, &syn, 1);
    let lport = common::src_port_of(&out[0]);
    let big = tcp4(
        rs_mac(0),
        DIR1_MAC,
        RS4[0],
        8080,
        LADDR4,
        lport,
        64,
        "A",
        &[1u8; 1460],
    );
    assert_eq!(big.len() - 14, 1500);
    assert!(lab.send(0, 1, &big, 0).is_empty());
    let back = lab.take(0, 1);
    assert_eq!(back.len(), 1);
    common::assert_checksums(&back[0]);
    assert_eq!(common::src_ip_of(&back[0]), LADDR4);
    assert_eq!(common::dst_ip_of(&back[0]), RS4[0]);
    assert_eq!((back[0][34], back[0][35]), (3, 4));
    assert_eq!(&back[0][34 + 6..34 + 8], &1480u16.to_be_bytes());
    assert_eq!(lab.dropped(DropReason::TooBig), 1);

    // FULLNAT66 towards a client link of 1500: a 1501-byte reply gets
    // Packet Too Big for 1500, from the local address.
    let mut lab = Lab6::new(Svc6::new(FwdMethod::FullNat), 1);
    let out = lab.send(0, 0, &syn, 1);
    let lport = u16::from_be_bytes([out[0][54], out[0][55]]);
    let big = tcp6(
        rs_mac(0),
        DIR1_MAC,
        RS6[0],
        8080,
        LADDR6,
        lport,
        64,
        "A",
        &[1u8; 1441],
    );
    assert_eq!(big.len() - 14, 1501);
    assert!(lab.send(0, 1, &big, 0).is_empty());
    let back = lab.take(0, 1);
    assert_eq!(back.len(), 1);
    assert_checksums6(&back[0]);
    let p = SlicedPacket::from_ethernet(&back[0]).unwrap();
    let Some(NetSlice::Ipv6(ip)) = &p.net else {
        panic!()
    };
    assert_eq!(ip.header().source(), LADDR6);
    assert_eq!(ip.header().destination(), RS6[0]);
    let Some(TransportSlice::Icmpv6(i)) = &p.transport else {
        panic!()
    };
    assert_eq!(i.icmp_type(), Icmpv6Type::PacketTooBig { mtu: 1500 });
    // The error quotes as much as fits in 1280 bytes (RFC 4443 §2.4).
    assert_eq!(back[0].len() - 14, 1280);
}

#[test]
fn the_kernels_own_ipv6_reaches_it_through_the_exception_path() {
    // With DPDK the kernel sees only what the workers give it: its
    // link-local addresses, which no snapshot lists, must keep working.
    let mut lab = Lab6::new(Svc6::new(FwdMethod::Dr), 1);
    lab.workers[0].set_exception(vec![MemPort::new(DIR0_MAC), MemPort::new(DIR1_MAC)]);
    let mut ll = [0u8; 16];
    ll[0] = 0xfe;
    ll[1] = 0x80;
    ll[15] = 1;
    let ssh = tcp6(CLIENT_MAC, DIR0_MAC, CLIENT6, 50000, ll, 22, 64, "S", b"");
    let ns_ll = ns(CLIENT_MAC, CLIENT6, ll, 255);
    let ns_vip = ns(CLIENT_MAC, CLIENT6, VIP6, 255);
    for f in [&ssh, &ns_ll, &ns_vip] {
        lab.inject(0, 0, f);
    }
    lab.poll_all();
    assert_eq!(lab.workers[0].kernel_mut()[0].take_tx(), vec![ssh, ns_ll]);
    // The VIP's solicitation was answered by the worker, not the kernel.
    assert_eq!(lab.take(0, 0).len(), 1);
    // A director without IPv6 configured leaves all of IPv6 to the kernel.
    let mut b = SnapshotBuilder::new(2, 1, Arc::new(TemplateTable::new(16)));
    b.port(PortConf {
        name: "p0".into(),
        mac: DIR0_MAC,
        addrs: vec![(Ipv4Addr::new(198, 18, 0, 1), 24)],
        mtu: 1500,
    });
    let s = b.build().unwrap();
    assert!(!s.has_ipv6());
    lab.shared.publish(s);
    let syn = tcp6(CLIENT_MAC, DIR0_MAC, CLIENT6, 40000, VIP6, 80, 64, "S", b"");
    lab.inject(0, 0, &syn);
    lab.poll_all();
    assert_eq!(lab.workers[0].kernel_mut()[0].take_tx(), vec![syn]);
}

/// Martian IPv6 sources (issue 18 item 7), as `ip6_rcv_core` drops them
/// before IPVS: unspecified, loopback, multicast, IPv4-mapped, and the
/// director's own addresses. Dropped, counted, never scheduled.
#[test]
fn martian_ipv6_sources_are_dropped_and_never_scheduled() {
    for fwd in [FwdMethod::Dr, FwdMethod::Nat, FwdMethod::FullNat] {
        let mut lab = Lab6::new(Svc6::new(fwd), 1);
        let mut mapped = [0u8; 16];
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        mapped[12..].copy_from_slice(&[198, 18, 0, 2]);
        let martians: [A6; 7] = [
            [0; 16],
            {
                let mut a = [0; 16];
                a[15] = 1;
                a
            },
            {
                let mut a = [0; 16];
                a[0] = 0xff;
                a[1] = 0x02;
                a[15] = 1;
                a
            },
            mapped,
            VIP6,
            DIR0_IP6,
            DIR1_IP6,
        ];
        for (i, src) in martians.into_iter().enumerate() {
            let syn = tcp6(
                CLIENT_MAC,
                DIR0_MAC,
                src,
                40000 + i as u16,
                VIP6,
                80,
                64,
                "S",
                b"",
            );
            assert!(lab.send(0, 0, &syn, 1).is_empty(), "{fwd:?} {src:?}");
            assert!(lab.take(0, 0).is_empty());
        }
        assert_eq!(lab.dropped(DropReason::MartianSource), 7, "{fwd:?}");
        assert_eq!(lab.workers[0].conns6().len(), 0, "{fwd:?}");
        // A real client still gets through, one hop lower.
        let syn = tcp6(CLIENT_MAC, DIR0_MAC, CLIENT6, 1, VIP6, 80, 64, "S", b"");
        let out = lab.send(0, 0, &syn, 1);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0][14 + 7], 63);
    }
}

/// Hop limit 1 towards a real server: ICMPv6 time exceeded (type 3 code
/// 0) from the VIP, quoting the packet as it arrived (IPVS's
/// `decrement_ttl`, `icmpv6_send`); in every mode.
#[test]
fn hop_limit_1_is_answered_with_icmpv6_time_exceeded() {
    for fwd in [
        FwdMethod::Dr,
        FwdMethod::Nat,
        FwdMethod::FullNat,
        FwdMethod::Tun,
    ] {
        let mut lab = Lab6::new(Svc6::new(fwd), 1);
        let syn = tcp6(
            CLIENT_MAC, DIR0_MAC, CLIENT6, 40000, VIP6, 80, 1, "S", b"hi",
        );
        assert!(lab.send(0, 0, &syn, 1).is_empty(), "{fwd:?}");
        let back = lab.take(0, 0);
        assert_eq!(back.len(), 1, "{fwd:?}");
        assert_checksums6(&back[0]);
        let mut want = vec![];
        PacketBuilder::ethernet2(DIR0_MAC, CLIENT_MAC)
            .ipv6(VIP6, CLIENT6, 64)
            .icmpv6(Icmpv6Type::TimeExceeded(
                etherparse::icmpv6::TimeExceededCode::HopLimitExceeded,
            ))
            .write(&mut want, &syn[14..])
            .unwrap();
        assert_eq!(back[0], want, "{fwd:?}");
        assert_eq!(lab.dropped(DropReason::TtlExceeded), 1);
    }
}

/// A UDP datagram over IPv6 with hop limit `hop`.
#[allow(clippy::too_many_arguments)]
fn udp6_hop(
    smac: Mac,
    dmac: Mac,
    src: A6,
    sport: u16,
    dst: A6,
    dport: u16,
    hop: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(smac, dmac)
        .ipv6(src, dst, hop)
        .udp(sport, dport)
        .write(&mut v, payload)
        .unwrap();
    v
}

/// Splits an IPv6 packet (no extension headers) into fragments of `chunk`
/// bytes (a multiple of 8) with a Fragment header, as a host does
/// (RFC 8200 §4.5).
fn frag6(frame: &[u8], chunk: usize, id: u32) -> Vec<Vec<u8>> {
    let nh = frame[14 + 6];
    let payload = &frame[54..];
    let mut out = vec![];
    let mut off = 0;
    while off < payload.len() {
        let n = chunk.min(payload.len() - off);
        let more = off + n < payload.len();
        let mut f = frame[..54].to_vec();
        f[14 + 4..14 + 6].copy_from_slice(&((8 + n) as u16).to_be_bytes());
        f[14 + 6] = 44;
        f.extend_from_slice(&[nh, 0]);
        f.extend_from_slice(&((off as u16) | more as u16).to_be_bytes());
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(&payload[off..off + n]);
        out.push(f);
        off += n;
    }
    out
}

/// Puts fragments (sorted by offset) back together and checks the
/// datagram's checksums.
fn unfrag6(frags: &[Vec<u8>]) -> Vec<u8> {
    let mut v = frags.to_vec();
    v.sort_by_key(|f| u16::from_be_bytes([f[56], f[57]]) >> 3);
    let mut whole = v[0][..54].to_vec();
    whole[14 + 6] = v[0][54];
    let mut payload = vec![];
    for f in &v {
        assert_eq!(
            (u16::from_be_bytes([f[56], f[57]]) >> 3) as usize * 8,
            payload.len()
        );
        payload.extend_from_slice(&f[62..]);
    }
    whole[14 + 4..14 + 6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    whole.extend_from_slice(&payload);
    assert_checksums6(&whole);
    whole
}

#[test]
fn ipv6_fragments_follow_their_flow_both_ways() {
    let payload: Vec<u8> = (0..3000).map(|i| (i * 7 + 1) as u8).collect();
    for fwd in [FwdMethod::Nat, FwdMethod::FullNat, FwdMethod::Dr] {
        for workers in [1, 2] {
            for rev in [false, true] {
                let what = format!("{fwd:?}, {workers} workers, reversed {rev}");
                let mut svc = Svc6::new(fwd);
                svc.proto = Proto::Udp;
                if fwd == FwdMethod::Dr {
                    svc.rport = 80;
                }
                let mut lab = Lab6::new(svc, workers);
                let order = |mut v: Vec<Vec<u8>>| {
                    if rev {
                        v.reverse();
                    }
                    v
                };
                let inp = udp6_hop(CLIENT_MAC, DIR0_MAC, CLIENT6, 41000, VIP6, 80, 64, &payload);
                let mut got = vec![];
                for f in order(frag6(&inp, 1448, 0x1234_5678)) {
                    got.extend(lab.send(workers - 1, 0, &f, 1));
                }
                assert_eq!(got.len(), 3, "{what}: every fragment forwarded");
                got.sort_by_key(|f| u16::from_be_bytes([f[56], f[57]]) >> 3);
                let (src, sport) = match fwd {
                    FwdMethod::FullNat => (LADDR6, u16::from_be_bytes([got[0][62], got[0][63]])),
                    _ => (CLIENT6, 41000),
                };
                let (dst, dport) = match fwd {
                    FwdMethod::Dr => (VIP6, 80),
                    _ => (RS6[0], 8080),
                };
                let want = udp6_hop(DIR1_MAC, rs_mac(0), src, sport, dst, dport, 63, &payload);
                assert_eq!(got, frag6(&want, 1448, 0x1234_5678), "{what}: inbound");
                unfrag6(&got);
                if fwd == FwdMethod::Dr {
                    continue;
                }
                let rep = udp6_hop(rs_mac(0), DIR1_MAC, RS6[0], 8080, src, sport, 64, &payload);
                let mut back = vec![];
                for f in order(frag6(&rep, 1448, 77)) {
                    back.extend(lab.send(0, 1, &f, 0));
                    for w in 1..workers {
                        back.extend(lab.take(w, 0));
                    }
                }
                back.sort_by_key(|f| u16::from_be_bytes([f[56], f[57]]) >> 3);
                let hop = if fwd == FwdMethod::FullNat { 64 } else { 63 };
                let want = udp6_hop(
                    DIR0_MAC, CLIENT_MAC, VIP6, 80, CLIENT6, 41000, hop, &payload,
                );
                assert_eq!(back, frag6(&want, 1448, 77), "{what}: reply");
                unfrag6(&back);
                assert_eq!(lab.dropped(DropReason::Ipv6Fragment), 0, "{what}");
            }
        }
    }
}

#[test]
fn ipv6_fragments_of_icmp_and_orphans_are_dropped_counted() {
    let mut svc = Svc6::new(FwdMethod::Nat);
    svc.proto = Proto::Udp;
    let mut lab = Lab6::new(svc, 1);
    let payload = vec![9u8; 3000];
    // A later fragment whose first never comes: held, then given up.
    let inp = udp6_hop(CLIENT_MAC, DIR0_MAC, CLIENT6, 41001, VIP6, 80, 64, &payload);
    let frags = frag6(&inp, 1448, 5);
    assert!(lab.send(0, 0, &frags[1], 1).is_empty());
    // A first fragment to a port without a service: refused, and its
    // later fragments with it.
    let other = udp6_hop(CLIENT_MAC, DIR0_MAC, CLIENT6, 41002, VIP6, 9, 64, &payload);
    for f in frag6(&other, 1448, 6) {
        assert!(lab.send(0, 0, &f, 1).is_empty());
    }
    assert_eq!(lab.dropped(DropReason::NoService), 3);
    // A big ping: ICMPv6 fragments are not forwarded.
    let mut ping = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, DIR0_MAC)
        .ipv6(CLIENT6, VIP6, 64)
        .icmpv6_echo_request(1, 1)
        .write(&mut ping, &payload)
        .unwrap();
    for f in frag6(&ping, 1448, 7) {
        assert!(lab.send(0, 0, &f, 1).is_empty());
    }
    assert_eq!(lab.dropped(DropReason::Ipv6Fragment), 3);
    // A first fragment too short for the UDP header (RFC 7112).
    let tiny = frag6(&inp, 8, 8);
    let mut first = tiny[0].clone();
    first.truncate(62 + 4);
    first[14 + 4..14 + 6].copy_from_slice(&12u16.to_be_bytes());
    assert!(lab.send(0, 0, &first, 1).is_empty());
    assert_eq!(lab.dropped(DropReason::FragTiny), 1);
}

// SYN proxy for IPv6 services: NAT66, FULLNAT66 and NAT64.

const ISN: u32 = 1000;
const RS_ISN: u32 = 5_000_000;

/// A TCP segment with every field chosen, over IPv6 or (NAT64's server
/// side) IPv4, by etherparse.
#[allow(clippy::too_many_arguments)]
fn sp_seg(
    macs: (Mac, Mac),
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    seq: u32,
    ack: Option<u32>,
    flags: &str,
    window: u16,
    opts: &[TcpOptionElement],
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(macs.0, macs.1);
    let b = match (src.0, dst.0) {
        (IpAddr::V6(s), IpAddr::V6(d)) => b.ipv6(s.octets(), d.octets(), 64),
        (IpAddr::V4(s), IpAddr::V4(d)) => b.ipv4(s.octets(), d.octets(), 64),
        _ => unreachable!(),
    };
    let mut b = b.tcp(src.1, dst.1, seq, window);
    if flags.contains('S') {
        b = b.syn();
    }
    if let Some(a) = ack {
        b = b.ack(a);
    }
    if flags.contains('R') {
        b = b.rst();
    }
    if flags.contains('P') {
        b = b.psh();
    }
    let b = b.options(opts).unwrap();
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

type Ends = ((IpAddr, u16), (IpAddr, u16));

/// A frame's TCP header, payload and ends, every checksum verified by
/// etherparse (IPv6 or IPv4).
fn sp_parse(f: &[u8]) -> (etherparse::TcpHeader, Vec<u8>, Ends) {
    let p = SlicedPacket::from_ethernet(f).unwrap();
    let (s, d): (IpAddr, IpAddr) = match &p.net {
        Some(NetSlice::Ipv6(ip)) => {
            assert_checksums6(f);
            let h = ip.header();
            (h.source_addr().into(), h.destination_addr().into())
        }
        Some(NetSlice::Ipv4(ip)) => {
            common::assert_checksums(f);
            let h = ip.header();
            (h.source_addr().into(), h.destination_addr().into())
        }
        _ => panic!("not IP"),
    };
    let Some(TransportSlice::Tcp(t)) = &p.transport else {
        panic!("not TCP")
    };
    let h = t.to_header();
    let ends = ((s, h.source_port), (d, h.destination_port));
    (h, t.payload().to_vec(), ends)
}

fn sp_ctr(lab: &Lab6, f: impl Fn(&ferrovs_dataplane::counters::WorkerCounters) -> u64) -> u64 {
    lab.shared.counters.iter().map(f).sum()
}

fn sp_conns(lab: &Lab6) -> usize {
    lab.workers.iter().map(|w| w.conns6().len()).sum()
}

fn sp_lab(fwd: FwdMethod, nat64: bool, nworkers: usize) -> Lab6 {
    let mut svc = Svc6::new(fwd);
    svc.nat64 = nat64;
    svc.synproxy = true;
    Lab6::new(svc, nworkers)
}

fn client6(cport: u16) -> (IpAddr, u16) {
    (IpAddr::from(CLIENT6), cport)
}
fn vip6() -> (IpAddr, u16) {
    (IpAddr::from(VIP6), 80)
}

const SP_OPTS: [TcpOptionElement; 3] = [
    TcpOptionElement::MaximumSegmentSize(1440),
    TcpOptionElement::SelectiveAcknowledgementPermitted,
    TcpOptionElement::WindowScale(7),
];

fn client_seg6(cport: u16, flags: &str, seq: u32, ack: Option<u32>, p: &[u8]) -> Vec<u8> {
    let opts: &[TcpOptionElement] = if flags == "S" { &SP_OPTS } else { &[] };
    sp_seg(
        (CLIENT_MAC, DIR0_MAC),
        client6(cport),
        vip6(),
        seq,
        ack,
        flags,
        502,
        opts,
        p,
    )
}

/// Client SYN → the director's IPv6 SYN-ACK with a cookie, and no
/// connection; returns the cookie.
fn sp_syn(lab: &mut Lab6, cport: u16) -> u32 {
    let n = sp_conns(lab);
    let out = lab.send(0, 0, &client_seg6(cport, "S", ISN, None, b""), 0);
    assert_eq!(out.len(), 1, "one SYN-ACK");
    let (t, _, ends) = sp_parse(&out[0]);
    assert!(t.syn && t.ack && !t.rst);
    assert_eq!(ends, (vip6(), client6(cport)));
    assert_eq!(&out[0][0..6], &CLIENT_MAC);
    assert_eq!(out[0][14 + 7], 64, "hop limit");
    assert_eq!(t.acknowledgment_number, ISN + 1);
    // MSS 1440: a 1500-byte link less the IPv6 and TCP headers.
    assert_eq!(
        t.options_iterator().map(|o| o.unwrap()).collect::<Vec<_>>(),
        vec![
            TcpOptionElement::MaximumSegmentSize(1440),
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::SelectiveAcknowledgementPermitted,
            TcpOptionElement::Noop,
            TcpOptionElement::WindowScale(7),
        ]
    );
    assert!((0..lab.workers.len()).all(|w| lab.take(w, 1).is_empty()));
    assert_eq!(sp_conns(lab), n, "no entry for a SYN");
    t.sequence_number
}

/// The server's end of a flow and what the director's segments to it
/// come from: the client (NAT66), the IPv6 local address (FULLNAT66) or
/// the IPv4 one (NAT64).
fn sp_server(fwd: FwdMethod, nat64: bool) -> (IpAddr, u16) {
    match (fwd, nat64) {
        (_, true) => (IpAddr::from(RS4[0]), 8080),
        _ => (IpAddr::from(RS6[0]), 8080),
    }
}

fn synproxy6_handshake(fwd: FwdMethod, nat64: bool) {
    let what = format!("{fwd:?} nat64={nat64}");
    let mut lab = sp_lab(fwd, nat64, 2);
    let cport = 40000;
    let cookie = sp_syn(&mut lab, cport);
    assert_eq!(sp_syn(&mut lab, cport), cookie, "a retransmitted SYN");

    // The ACK validates: the server gets a SYN with the client's ISN and
    // its options (the cookie's IPv6 MSS table has 1440).
    let ack = client_seg6(cport, "A", ISN + 1, Some(cookie.wrapping_add(1)), b"");
    let out = lab.send(0, 0, &ack, 1);
    assert_eq!(out.len(), 1, "{what}: SYN to the real server");
    let (t, _, (src, dst)) = sp_parse(&out[0]);
    assert!(t.syn && !t.ack, "{what}");
    assert_eq!(t.sequence_number, ISN);
    assert_eq!(dst, sp_server(fwd, nat64));
    match (fwd, nat64) {
        (FwdMethod::Nat, _) => assert_eq!(src, client6(cport)),
        (_, true) => assert_eq!(src.0, IpAddr::from(LADDR4)),
        _ => assert_eq!(src.0, IpAddr::from(LADDR6)),
    }
    assert_eq!(&out[0][0..6], &rs_mac(0));
    assert_eq!(
        t.options_iterator().map(|o| o.unwrap()).collect::<Vec<_>>(),
        vec![
            TcpOptionElement::MaximumSegmentSize(1440),
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::SelectiveAcknowledgementPermitted,
            TcpOptionElement::Noop,
            TcpOptionElement::WindowScale(7),
        ]
    );
    assert_eq!(t.window_size, 502 << 7);
    assert_eq!(sp_conns(&lab), 1);
    assert_eq!(sp_ctr(&lab, |c| c.synproxy_cookies_validated.get()), 1);

    // The request before the server answers: held. Sent again, it sends
    // the SYN again (the server may not have got it).
    let req = client_seg6(cport, "AP", ISN + 1, Some(cookie.wrapping_add(1)), b"GET /");
    assert!(lab.send(0, 0, &req, 1).is_empty());
    assert_eq!(sp_ctr(&lab, |c| c.synproxy_early_held.get()), 1);
    let again = lab.send(0, 0, &req, 1);
    assert_eq!(again.len(), 1, "{what}: the SYN again");
    assert!(sp_parse(&again[0]).0.syn);
    assert_eq!(sp_ctr(&lab, |c| c.synproxy_syn_retransmitted.get()), 1);

    // The server's SYN-ACK is consumed: the director acks it and the held
    // request follows, its ack in the server's sequence space.
    let server = sp_server(fwd, nat64);
    let rs_synack = sp_seg(
        (rs_mac(0), DIR1_MAC),
        server,
        src,
        RS_ISN,
        Some(ISN + 1),
        "S",
        65160,
        &[
            TcpOptionElement::MaximumSegmentSize(1400),
            TcpOptionElement::Noop,
            TcpOptionElement::WindowScale(9),
        ],
        b"",
    );
    let last = lab.workers.len() - 1;
    lab.inject(last, 1, &rs_synack);
    lab.poll_all();
    let to_client: Vec<_> = (0..2).flat_map(|w| lab.take(w, 0)).collect();
    assert!(to_client.is_empty(), "{what}: the SYN-ACK stays");
    let out: Vec<_> = (0..2).flat_map(|w| lab.take(w, 1)).collect();
    assert_eq!(out.len(), 2, "{what}: ACK and the held request");
    let (t, p, ends) = sp_parse(&out[0]);
    assert!(t.ack && !t.syn && p.is_empty());
    assert_eq!(
        (t.sequence_number, t.acknowledgment_number),
        (ISN + 1, RS_ISN + 1)
    );
    assert_eq!(ends, (src, server));
    let (t, p, ends) = sp_parse(&out[1]);
    assert_eq!(p, b"GET /");
    assert_eq!(
        (t.sequence_number, t.acknowledgment_number),
        (ISN + 1, RS_ISN + 1)
    );
    assert_eq!(ends, (src, server));
    assert_eq!(sp_ctr(&lab, |c| c.synproxy_rs_established.get()), 1);
    assert_eq!(sp_ctr(&lab, |c| c.synproxy_early_released.get()), 1);

    // Server data reaches the client in the cookie's sequence space, its
    // window rescaled from shift 9 to 7, over IPv6 from the VIP.
    let body = b"HTTP/1.0 200 OK\r\n\r\nhello";
    let data = sp_seg(
        (rs_mac(0), DIR1_MAC),
        server,
        src,
        RS_ISN + 1,
        Some(ISN + 6),
        "AP",
        300,
        &[],
        body,
    );
    let out = lab.send(last, 1, &data, 0);
    assert_eq!(out.len(), 1, "{what}: data to the client");
    let (t, p, ends) = sp_parse(&out[0]);
    assert_eq!(p, body);
    assert_eq!(ends, (vip6(), client6(cport)));
    assert_eq!(t.sequence_number, cookie.wrapping_add(1));
    assert_eq!(t.acknowledgment_number, ISN + 6);
    assert_eq!(t.window_size, 1200);

    // The client's ack of it, with a SACK block, into the server's space.
    let n = body.len() as u32;
    let c1 = cookie.wrapping_add(1);
    let sack = sp_seg(
        (CLIENT_MAC, DIR0_MAC),
        client6(cport),
        vip6(),
        ISN + 6,
        Some(c1.wrapping_add(n)),
        "A",
        502,
        &[TcpOptionElement::SelectiveAcknowledgement(
            (c1.wrapping_add(100), c1.wrapping_add(200)),
            [None, None, None],
        )],
        b"",
    );
    let out = lab.send(0, 0, &sack, 1);
    assert_eq!(out.len(), 1);
    let (t, _, ends) = sp_parse(&out[0]);
    assert_eq!(ends, (src, server));
    assert_eq!(t.acknowledgment_number, RS_ISN + 1 + n);
    assert_eq!(
        t.options_iterator().map(|o| o.unwrap()).last(),
        Some(TcpOptionElement::SelectiveAcknowledgement(
            (RS_ISN + 101, RS_ISN + 201),
            [None, None, None]
        ))
    );
}

#[test]
fn synproxy6_nat66_handshake_and_translation() {
    synproxy6_handshake(FwdMethod::Nat, false);
}

#[test]
fn synproxy6_fullnat66_handshake_and_translation() {
    synproxy6_handshake(FwdMethod::FullNat, false);
}

#[test]
fn synproxy6_nat64_ipv6_client_side_ipv4_server_side() {
    synproxy6_handshake(FwdMethod::FullNat, true);
}

#[test]
fn synproxy6_spoofed_flood_creates_nothing_and_forged_acks_fail() {
    for (fwd, nat64) in [
        (FwdMethod::Nat, false),
        (FwdMethod::FullNat, false),
        (FwdMethod::FullNat, true),
    ] {
        let mut lab = sp_lab(fwd, nat64, 1);
        for i in 0..2000u32 {
            let mut src = CLIENT6;
            src[8..12].copy_from_slice(&i.to_be_bytes());
            let f = sp_seg(
                (CLIENT_MAC, DIR0_MAC),
                (IpAddr::from(src), 1024 + (i % 50000) as u16),
                vip6(),
                i.wrapping_mul(2_654_435_761),
                None,
                "S",
                1024,
                &[],
                b"",
            );
            lab.inject(0, 0, &f);
            if i % 32 == 31 {
                lab.poll_all();
                lab.take(0, 0);
            }
        }
        lab.poll_all();
        lab.take(0, 0);
        assert_eq!(sp_ctr(&lab, |c| c.synproxy_cookies_sent.get()), 2000);
        assert_eq!(sp_conns(&lab), 0, "a flood of SYNs makes no entry");
        assert!(lab.take(0, 1).is_empty(), "nothing reaches the servers");
        // A forged ACK (wrong cookie) creates nothing.
        let forged = client_seg6(41000, "A", ISN + 1, Some(0x1234_5678), b"");
        assert!(lab.send(0, 0, &forged, 1).is_empty());
        assert_eq!(sp_ctr(&lab, |c| c.synproxy_cookies_failed.get()), 1);
        assert_eq!(lab.dropped(DropReason::SynproxyBadCookie), 1);
        assert_eq!(sp_conns(&lab), 0);
        // A legitimate client still gets through.
        let cookie = sp_syn(&mut lab, 42000);
        let ack = client_seg6(42000, "A", ISN + 1, Some(cookie.wrapping_add(1)), b"");
        assert_eq!(lab.send(0, 0, &ack, 1).len(), 1);
        assert_eq!(sp_conns(&lab), 1);
    }
}

#[test]
fn synproxy6_refusing_server_rst_reaches_the_client_in_sequence() {
    for (fwd, nat64) in [(FwdMethod::Nat, false), (FwdMethod::FullNat, true)] {
        let mut lab = sp_lab(fwd, nat64, 1);
        let cookie = sp_syn(&mut lab, 40000);
        let ack = client_seg6(40000, "A", ISN + 1, Some(cookie.wrapping_add(1)), b"");
        let out = lab.send(0, 0, &ack, 1);
        let (_, _, (src, _)) = sp_parse(&out[0]);
        let req = client_seg6(40000, "AP", ISN + 1, Some(cookie.wrapping_add(1)), b"GET /");
        assert!(lab.send(0, 0, &req, 1).is_empty());
        let rst = sp_seg(
            (rs_mac(0), DIR1_MAC),
            sp_server(fwd, nat64),
            src,
            0,
            Some(ISN + 1),
            "R",
            0,
            &[],
            b"",
        );
        let out = lab.send(0, 1, &rst, 0);
        assert_eq!(out.len(), 1, "the RST to the client");
        let (t, _, ends) = sp_parse(&out[0]);
        assert!(t.rst);
        assert_eq!(ends, (vip6(), client6(40000)));
        assert_eq!(t.sequence_number, cookie.wrapping_add(1));
        assert_eq!(sp_ctr(&lab, |c| c.synproxy_rs_refused.get()), 1);
        assert_eq!(sp_ctr(&lab, |c| c.synproxy_early_dropped.get()), 1);
    }
}

/// A handshake segment is never fragmented: a fragmented SYN to a
/// syn-proxy service is dropped and counted, not answered (the SYN-ACK is
/// written over the SYN, whose header chain it replaces), and its later
/// fragments make nothing either.
#[test]
fn synproxy6_fragmented_syn_is_dropped_counted() {
    let mut lab = sp_lab(FwdMethod::Nat, false, 1);
    let syn = client_seg6(40000, "S", ISN, None, &[7u8; 120]);
    let frags = frag6(&syn, 64, 9);
    assert_eq!(frags.len(), 3);
    for f in &frags {
        assert!(lab.send(0, 0, f, 0).is_empty());
    }
    assert!(lab.take(0, 1).is_empty());
    assert_eq!(lab.dropped(DropReason::Fragment), 3);
    assert_eq!(sp_ctr(&lab, |c| c.synproxy_cookies_sent.get()), 0);
    assert_eq!(sp_conns(&lab), 0);
}

/// Issue 17: IPv6 flows (and NAT64's) outlive the process like IPv4's: a
/// worker whose tables are files goes away as `kill -9` takes it, a new
/// one reads the slots and the address pool back and forwards the same
/// flow byte for byte, both ways.
#[test]
fn ipv6_and_nat64_flows_survive_a_restart() {
    use ferrovs_dataplane::persist::{self, Store, TableFiles};
    const BOOT: [u8; 36] = *b"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
    const EPOCH: u64 = 70_000_000;
    for (fwd, nat64) in [
        (FwdMethod::Dr, false),
        (FwdMethod::Nat, false),
        (FwdMethod::FullNat, false),
        (FwdMethod::FullNat, true),
    ] {
        let dir = std::env::temp_dir().join(format!(
            "ferrovs-persist6-{fwd:?}-{nat64}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = |d: &std::path::Path| Store {
            dir: d.to_path_buf(),
            worker: 0,
            workers: 1,
            epoch_mono_ms: EPOCH,
            boot_id: BOOT,
        };
        let mut svc = Svc6::new(fwd);
        svc.nat64 = nat64;
        let mut a = Lab6::new(svc.clone(), 1);
        a.workers[0].use_store(&store(&dir), a.now).unwrap();
        let c = |cport: u16, f: &str, p: &[u8]| {
            tcp6(CLIENT_MAC, DIR0_MAC, CLIENT6, cport, VIP6, 80, 64, f, p)
        };
        let mut before = Vec::new();
        for cport in [41000u16, 41001, 41002] {
            let out = a.send(0, 0, &c(cport, "S", b""), 1);
            assert_eq!(out.len(), 1, "{fwd:?} SYN");
            if fwd.sees_replies() {
                // The server's SYN-ACK, back the way the SYN went.
                let syn = &out[0];
                let back = if nat64 {
                    let lport = common::src_port_of(syn);
                    tcp4(
                        rs_mac(0),
                        DIR1_MAC,
                        RS4[0],
                        8080,
                        LADDR4,
                        lport,
                        64,
                        "SA",
                        b"",
                    )
                } else {
                    let p = SlicedPacket::from_ethernet(syn).unwrap();
                    let Some(NetSlice::Ipv6(v6)) = &p.net else {
                        panic!()
                    };
                    let (s, d) = (v6.header().source(), v6.header().destination());
                    let Some(etherparse::TransportSlice::Tcp(t)) = &p.transport else {
                        panic!()
                    };
                    tcp6(
                        rs_mac(0),
                        DIR1_MAC,
                        d,
                        t.destination_port(),
                        s,
                        t.source_port(),
                        64,
                        "SA",
                        b"",
                    )
                };
                assert_eq!(a.send(0, 1, &back, 0).len(), 1, "{fwd:?} SYN-ACK");
            }
            a.send(0, 0, &c(cport, "A", b""), 1);
            let out = a.send(0, 0, &c(cport, "A", b"data"), 1);
            assert_eq!(out.len(), 1);
            before.push(out[0].clone());
        }
        let now_mono = EPOCH + a.now;
        drop(a);

        let read = |n: &str| std::fs::read(dir.join(n)).unwrap();
        let (c6, s6, p6) = (read("w0.conn6"), read("w0.slots6"), read("w0.pool6"));
        let mut saved = Vec::new();
        let (_, st) = persist::read_table(
            &TableFiles {
                conns: &c6,
                v6: Some((&s6, &p6)),
            },
            &BOOT,
            now_mono + 500,
            |s| saved.push(s),
        )
        .unwrap();
        assert_eq!((st.taken, st.bad), (3, 0), "{fwd:?} nat64={nat64}");
        let dir2 = dir.join("next");
        std::fs::create_dir_all(&dir2).unwrap();
        let mut b = Lab6::new(svc, 1);
        b.workers[0].use_store(&store(&dir2), b.now).unwrap();
        let r = b.workers[0].restore(&saved, b.now);
        assert_eq!(r.restored, 3, "{fwd:?} nat64={nat64}: {r:?}");
        for (k, cport) in [41000u16, 41001, 41002].into_iter().enumerate() {
            let out = b.send(0, 0, &c(cport, "A", b"data"), 1);
            assert_eq!(
                out.len(),
                1,
                "{fwd:?} nat64={nat64} {cport} after the restart"
            );
            let mut got = out[0].clone();
            let mut want = before[k].clone();
            if nat64 {
                // The IPv4 header's identification is the process's own.
                got[18..20].fill(0);
                got[24..26].fill(0);
                want[18..20].fill(0);
                want[24..26].fill(0);
            }
            assert_eq!(got, want, "{fwd:?} nat64={nat64} {cport}: the same frame");
        }
        assert_eq!(b.workers[0].conns6().len(), 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
