//! Byte-exact golden tests per forwarding mode over memory ports: the
//! shared scenarios of `common/scenarios.rs`, and the cases only this lab
//! runs (a UDP datagram without checksum, TUN's too-big handling, IP
//! options).

mod common;
use common::scenarios::{self, PAYLOAD};
use common::*;
use ferrovs_dataplane::counters::DropReason;
use ferrovs_dataplane::service::FwdMethod;

fn lab(svc: Svc) -> Lab {
    Lab::new(svc, 1)
}

#[test]
fn dr_rewrites_only_macs() {
    scenarios::dr(lab);
}

#[test]
fn nat_dnat_with_port_mapping_and_snat_back() {
    scenarios::nat_tcp(lab);
}

#[test]
fn nat_udp_and_zero_udp_checksum() {
    let mut lab = scenarios::nat_udp(lab);
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
    scenarios::fullnat(lab);
}

#[test]
fn tun_encapsulates_in_ipip() {
    scenarios::tun(lab);
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
        &one_hop_later(&input)[14..14 + 28],
        "quotes the header (TTL already lowered, as IPVS's decrement_ttl runs first) and 8 bytes"
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
    assert_eq!(&inner[..], &one_hop_later(&input)[14..]);
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
