//! Byte-exact golden tests per forwarding mode: an input frame, the exact
//! frame expected out (built independently by etherparse, with checksums
//! computed from scratch), and every checksum verified by etherparse.

mod common;
use common::*;
use ferrovs_dataplane::counters::DropReason;
use ferrovs_dataplane::service::FwdMethod;

const PAYLOAD: &[u8] = b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n";

#[test]
fn dr_rewrites_only_macs() {
    let mut lab = Lab::new(Svc::new(FwdMethod::Dr), 1);
    let input = tcp(
        CLIENT_MAC, DIR0_MAC, CLIENT, 40000, VIP, 80, 64, "S", PAYLOAD,
    );
    let out = lab.send(0, 0, &input, 1);
    assert_eq!(out.len(), 1);
    let expected = tcp(
        DIR1_MAC,
        rs_mac(0),
        CLIENT,
        40000,
        VIP,
        80,
        64,
        "S",
        PAYLOAD,
    );
    assert_eq!(out[0], expected);
    assert_checksums(&out[0]);
    // The same flow sticks to its server; a new one goes to the next (rr).
    let input = tcp(
        CLIENT_MAC, DIR0_MAC, CLIENT, 40000, VIP, 80, 64, "A", PAYLOAD,
    );
    assert_eq!(
        lab.send(0, 0, &input, 1)[0],
        tcp(
            DIR1_MAC,
            rs_mac(0),
            CLIENT,
            40000,
            VIP,
            80,
            64,
            "A",
            PAYLOAD
        )
    );
}

#[test]
fn nat_dnat_with_port_mapping_and_snat_back() {
    let mut svc = Svc::new(FwdMethod::Nat);
    svc.rport = 8080;
    let mut lab = Lab::new(svc, 1);
    let input = tcp(
        CLIENT_MAC, DIR0_MAC, CLIENT, 40000, VIP, 80, 64, "S", PAYLOAD,
    );
    let out = lab.send(0, 0, &input, 1);
    let expected = tcp(
        DIR1_MAC,
        rs_mac(0),
        CLIENT,
        40000,
        RS[0],
        8080,
        64,
        "S",
        PAYLOAD,
    );
    assert_eq!(out, vec![expected.clone()]);
    assert_checksums(&out[0]);

    // The reply: RIP:8080 → client becomes VIP:80 → client, TTL - 1.
    let reply = tcp(
        rs_mac(0),
        DIR1_MAC,
        RS[0],
        8080,
        CLIENT,
        40000,
        64,
        "SA",
        b"",
    );
    let out = lab.send(0, 1, &reply, 0);
    let expected = tcp(DIR0_MAC, CLIENT_MAC, VIP, 80, CLIENT, 40000, 63, "SA", b"");
    assert_eq!(out, vec![expected]);
    assert_checksums(&out[0]);
}

#[test]
fn nat_udp_and_zero_udp_checksum() {
    let mut svc = Svc::new(FwdMethod::Nat);
    svc.proto = ferrovs_dataplane::service::Proto::Udp;
    svc.vport = 53;
    svc.rport = 5353;
    let mut lab = Lab::new(svc, 1);
    let input = udp(CLIENT_MAC, DIR0_MAC, CLIENT, 5000, VIP, 53, 64, b"query");
    let out = lab.send(0, 0, &input, 1);
    assert_eq!(
        out,
        vec![udp(
            DIR1_MAC,
            rs_mac(0),
            CLIENT,
            5000,
            RS[0],
            5353,
            64,
            b"query"
        )]
    );
    assert_checksums(&out[0]);
    // A datagram without checksum keeps none (RFC 768).
    let mut input = udp(CLIENT_MAC, DIR0_MAC, CLIENT, 5001, VIP, 53, 64, b"query");
    input[40] = 0;
    input[41] = 0;
    let out = lab.send(0, 0, &input, 1);
    assert_eq!(&out[0][40..42], &[0, 0]);
    let reply = udp(
        rs_mac(0),
        DIR1_MAC,
        RS[0],
        5353,
        CLIENT,
        5001,
        64,
        b"answer",
    );
    let out = lab.send(0, 1, &reply, 0);
    assert_eq!(
        out,
        vec![udp(
            DIR0_MAC, CLIENT_MAC, VIP, 53, CLIENT, 5001, 63, b"answer"
        )]
    );
}

#[test]
fn fullnat_rewrites_both_ends() {
    let mut svc = Svc::new(FwdMethod::FullNat);
    svc.rport = 8080;
    let mut lab = Lab::new(svc, 1);
    let input = tcp(
        CLIENT_MAC, DIR0_MAC, CLIENT, 40000, VIP, 80, 64, "S", PAYLOAD,
    );
    let out = lab.send(0, 0, &input, 1);
    assert_eq!(out.len(), 1);
    let lport = src_port_of(&out[0]);
    assert!(lport >= 1024);
    let expected = tcp(
        DIR1_MAC,
        rs_mac(0),
        LADDR,
        lport,
        RS[0],
        8080,
        64,
        "S",
        PAYLOAD,
    );
    assert_eq!(out[0], expected);
    assert_checksums(&out[0]);

    let reply = tcp(
        rs_mac(0),
        DIR1_MAC,
        RS[0],
        8080,
        LADDR,
        lport,
        64,
        "SA",
        b"",
    );
    let out = lab.send(0, 1, &reply, 0);
    assert_eq!(
        out,
        vec![tcp(
            DIR0_MAC, CLIENT_MAC, VIP, 80, CLIENT, 40000, 64, "SA", b""
        )]
    );
    assert_checksums(&out[0]);
    // A reply to a local port nobody holds is dropped.
    let stray = tcp(
        rs_mac(0),
        DIR1_MAC,
        RS[0],
        8080,
        LADDR,
        lport + 1,
        64,
        "A",
        b"",
    );
    assert!(lab.send(0, 1, &stray, 0).is_empty());
    assert_eq!(lab.dropped(DropReason::NoConnection), 1);
}

/// The IPIP frame we expect for an inner IP packet.
fn ipip(inner_frame: &[u8], dst_mac: [u8; 6], id: u16, df: bool) -> Vec<u8> {
    let inner = &inner_frame[14..];
    let mut h = etherparse::Ipv4Header::new(
        inner.len() as u16,
        64,
        etherparse::IpNumber::IPV4,
        DIR1_IP,
        RS[0],
    )
    .unwrap();
    h.identification = id;
    h.dont_fragment = df;
    h.header_checksum = h.calc_header_checksum();
    let mut v = Vec::new();
    etherparse::Ethernet2Header {
        source: DIR1_MAC,
        destination: dst_mac,
        ether_type: etherparse::EtherType::IPV4,
    }
    .write(&mut v)
    .unwrap();
    h.write(&mut v).unwrap();
    v.extend_from_slice(inner);
    v
}

#[test]
fn tun_encapsulates_in_ipip() {
    let mut lab = Lab::new(Svc::new(FwdMethod::Tun), 1);
    let input = tcp(
        CLIENT_MAC, DIR0_MAC, CLIENT, 40000, VIP, 80, 64, "S", PAYLOAD,
    );
    let out = lab.send(0, 0, &input, 1);
    assert_eq!(out.len(), 1);
    let id = u16::from_be_bytes([out[0][18], out[0][19]]);
    assert_eq!(out[0], ipip(&input, rs_mac(0), id, true));
    // Outer checksum, and the untouched inner packet's checksums.
    let outer = etherparse::Ipv4HeaderSlice::from_slice(&out[0][14..])
        .unwrap()
        .to_header();
    assert_eq!(outer.header_checksum, outer.calc_header_checksum());
    let mut inner_frame = out[0][..14].to_vec();
    inner_frame.extend_from_slice(&out[0][34..]);
    assert_checksums(&inner_frame);
}

#[test]
fn tun_too_big_with_df_gets_frag_needed() {
    let mut lab = Lab::with(Svc::new(FwdMethod::Tun), 1, 1024, 1500);
    let big = vec![0x5a; 1460 - 20 + 10];
    let input = tcp(CLIENT_MAC, DIR0_MAC, CLIENT, 40000, VIP, 80, 64, "S", &big);
    assert_eq!(input.len() - 14, 1490);
    let to_rs = lab.send(0, 0, &input, 1);
    assert!(to_rs.is_empty());
    let back = lab.take(0, 0);
    assert_eq!(back.len(), 1);
    let f = &back[0];
    assert_checksums(f);
    assert_eq!(src_ip_of(f), VIP);
    assert_eq!(dst_ip_of(f), CLIENT);
    let icmp = &f[34..];
    assert_eq!((icmp[0], icmp[1]), (3, 4));
    assert_eq!(
        u16::from_be_bytes([icmp[6], icmp[7]]),
        1480,
        "next-hop MTU is the tunnel's"
    );
    assert_eq!(
        &icmp[8..8 + 28],
        &input[14..14 + 28],
        "quotes the header and 8 bytes"
    );
    assert_eq!(lab.dropped(DropReason::TooBig), 1);
}

#[test]
fn tun_too_big_without_df_is_fragmented() {
    let mut lab = Lab::new(Svc::new(FwdMethod::Tun), 1);
    let big: Vec<u8> = (0..1600u32).map(|i| (i * 7) as u8).collect();
    let mut input = tcp(CLIENT_MAC, DIR0_MAC, CLIENT, 40000, VIP, 80, 64, "S", &big);
    // Clear DF and fix the header checksum.
    input[20] &= !0x40;
    input[24] = 0;
    input[25] = 0;
    let c = ferrovs_dataplane::wire::checksum::checksum(&input[14..34]);
    input[24..26].copy_from_slice(&c.to_be_bytes());
    let out = lab.send(0, 0, &input, 1);
    assert_eq!(out.len(), 2);
    // Reassemble the outer fragments and compare with the inner packet.
    let mut inner = vec![0u8; input.len() - 14];
    let mut seen = 0;
    let mut ids = vec![];
    for f in &out {
        let h = etherparse::Ipv4HeaderSlice::from_slice(&f[14..])
            .unwrap()
            .to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        assert!(!h.dont_fragment);
        assert_eq!(h.protocol, etherparse::IpNumber::IPV4);
        assert!(f.len() - 14 <= 1500);
        ids.push(h.identification);
        let off = h.fragment_offset.byte_offset() as usize;
        let body = &f[34..];
        inner[off..off + body.len()].copy_from_slice(body);
        seen += body.len();
        assert_eq!(h.more_fragments, off + body.len() < inner.len());
    }
    assert_eq!(ids[0], ids[1]);
    assert_eq!(seen, inner.len());
    assert_eq!(&inner[..], &input[14..]);
}

#[test]
fn ip_options_are_carried() {
    let mut svc = Svc::new(FwdMethod::Nat);
    svc.rport = 8080;
    let mut lab = Lab::new(svc, 1);
    // A SYN with a 4-byte IP option (NOP x3 + EOL).
    let mut b =
        etherparse::Ipv4Header::new(20 + 4, 64, etherparse::IpNumber::TCP, CLIENT, VIP).unwrap();
    b.options = [1u8, 1, 1, 0][..].try_into().unwrap();
    let mut t = etherparse::TcpHeader::new(40000, 80, 1, 1000);
    t.syn = true;
    t.checksum = t.calc_checksum_ipv4(&b, PAYLOAD).unwrap();
    b.total_len = (b.header_len() + t.header_len() + PAYLOAD.len()) as u16;
    b.header_checksum = b.calc_header_checksum();
    let mut input = vec![];
    etherparse::Ethernet2Header {
        source: CLIENT_MAC,
        destination: DIR0_MAC,
        ether_type: etherparse::EtherType::IPV4,
    }
    .write(&mut input)
    .unwrap();
    b.write(&mut input).unwrap();
    t.write(&mut input).unwrap();
    input.extend_from_slice(PAYLOAD);
    let out = lab.send(0, 0, &input, 1);
    assert_eq!(out.len(), 1);
    assert_checksums(&out[0]);
    assert_eq!(&out[0][34..38], &[1, 1, 1, 0]);
    assert_eq!(&out[0][30..34], &RS[0]);
}
