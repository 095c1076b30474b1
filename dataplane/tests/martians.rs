//! Martian sources and TTL, as Linux and IPVS treat them (issue 18 item 7):
//! a source no host may use, or one of the director's own addresses, is
//! dropped before scheduling (`ip_route_input_slow`); what goes to a real
//! server leaves one hop lower in every mode (IPVS's `decrement_ttl`), and
//! TTL 1 is answered with ICMP time exceeded, as is a NAT reply with TTL 1
//! (`ip_forward`). Byte-for-byte, through workers over memory ports.

mod common;
use common::*;
use ferrovs_dataplane::counters::DropReason;
use ferrovs_dataplane::service::{FwdMethod, Proto};

const MODES: [FwdMethod; 4] = [
    FwdMethod::Dr,
    FwdMethod::Nat,
    FwdMethod::FullNat,
    FwdMethod::Tun,
];

/// One address of each martian class, and the director's own.
const MARTIANS: [[u8; 4]; 11] = [
    [0, 0, 0, 0],
    [0, 1, 2, 3],
    [127, 0, 0, 1],
    [127, 255, 0, 9],
    [224, 0, 0, 1],
    [239, 255, 255, 250],
    [240, 0, 0, 1],
    [255, 255, 255, 255],
    VIP,
    DIR0_IP,
    DIR1_IP,
];

fn conns(lab: &Lab) -> usize {
    lab.workers.iter().map(|w| w.conns().len()).sum()
}

fn created(lab: &Lab) -> u64 {
    lab.shared
        .counters
        .iter()
        .map(|c| c.conns_created.get())
        .sum()
}

fn everything_out(lab: &mut Lab) -> Vec<Vec<u8>> {
    let mut v = vec![];
    for w in 0..lab.workers.len() {
        for p in 0..2 {
            v.extend(lab.take(w, p));
        }
    }
    v
}

#[test]
fn martian_sources_are_dropped_counted_and_never_scheduled() {
    for fwd in MODES {
        for proto in [Proto::Tcp, Proto::Udp] {
            let mut svc = Svc::new(fwd);
            svc.proto = proto;
            let mut lab = Lab::new(svc, 2);
            let mut n = 0;
            for (i, src) in MARTIANS.into_iter().enumerate() {
                let sport = 40000 + i as u16;
                let f = match proto {
                    Proto::Tcp => tcp(CLIENT_MAC, DIR0_MAC, src, sport, VIP, 80, 64, "S", b""),
                    _ => udp(CLIENT_MAC, DIR0_MAC, src, sport, VIP, 80, 64, b"q"),
                };
                lab.inject(i % 2, 0, &f);
                lab.poll_all();
                n += 1;
                assert!(everything_out(&mut lab).is_empty(), "{fwd:?} {src:?}");
                assert_eq!(lab.dropped(DropReason::MartianSource), n, "{fwd:?} {src:?}");
            }
            assert_eq!(conns(&lab), 0, "{fwd:?}: nothing scheduled");
            assert_eq!(created(&lab), 0, "{fwd:?}");
            assert_eq!(lab.dropped(DropReason::SynproxyMartian), 0);
            // A real client is still served.
            let f = match proto {
                Proto::Tcp => tcp(CLIENT_MAC, DIR0_MAC, CLIENT, 1, VIP, 80, 64, "S", b""),
                _ => udp(CLIENT_MAC, DIR0_MAC, CLIENT, 1, VIP, 80, 64, b"q"),
            };
            assert_eq!(lab.send(0, 0, &f, 1).len(), 1, "{fwd:?}");
            assert_eq!(conns(&lab), 1);
        }
    }
}

#[test]
fn a_martian_cannot_ride_an_existing_flow_either() {
    // The check is per packet, as ip_route_input's: a data segment from
    // loopback to the VIP is dropped even without a SYN.
    let mut lab = Lab::new(Svc::new(FwdMethod::Nat), 1);
    let f = tcp(
        CLIENT_MAC,
        DIR0_MAC,
        [127, 0, 0, 1],
        5,
        VIP,
        80,
        64,
        "A",
        b"x",
    );
    assert!(lab.send(0, 0, &f, 1).is_empty());
    assert_eq!(lab.dropped(DropReason::MartianSource), 1);
    assert_eq!(lab.dropped(DropReason::NoConnection), 0);
}

#[test]
fn ttl_is_lowered_in_every_mode_with_the_checksum_right() {
    for fwd in MODES {
        let mut svc = Svc::new(fwd);
        svc.rport = 8080;
        let mut lab = Lab::new(svc, 1);
        for (ttl, sport) in [(64u8, 40000u16), (2, 40001), (255, 40002)] {
            let f = tcp(
                CLIENT_MAC, DIR0_MAC, CLIENT, sport, VIP, 80, ttl, "S", b"abc",
            );
            let out = lab.send(0, 0, &f, 1);
            assert_eq!(out.len(), 1, "{fwd:?} ttl {ttl}");
            // The packet the real server gets (TUN: the inner one).
            let inner = if fwd == FwdMethod::Tun {
                let mut v = out[0][..14].to_vec();
                v.extend_from_slice(&out[0][34..]);
                v
            } else {
                out[0].clone()
            };
            let (h, _) = etherparse::Ipv4Header::from_slice(&inner[14..]).unwrap();
            assert_eq!(h.time_to_live, ttl - 1, "{fwd:?}");
            assert_checksums(&inner);
            if fwd == FwdMethod::Dr || fwd == FwdMethod::Tun {
                // Nothing else changed.
                assert_eq!(&inner[14..], &one_hop_later(&f)[14..], "{fwd:?}");
            }
        }
    }
}

/// The time exceeded the client gets for `orig` (a frame), from `src`:
/// built by etherparse, quoting the whole IP packet up to 548 bytes.
fn time_exceeded(smac: [u8; 6], dmac: [u8; 6], src: [u8; 4], dst: [u8; 4], orig: &[u8]) -> Vec<u8> {
    let ip = &orig[14..];
    let q = &ip[..ip.len().min(548)];
    let mut v = vec![];
    etherparse::PacketBuilder::ethernet2(smac, dmac)
        .ipv4(src, dst, 64)
        .icmpv4(etherparse::Icmpv4Type::TimeExceeded(
            etherparse::icmpv4::TimeExceededCode::TtlExceededInTransit,
        ))
        .write(&mut v, q)
        .unwrap();
    v
}

/// Our header differs from etherparse's default only in the
/// identification (0 both) and DF (ours clear, etherparse's set):
/// normalise DF before comparing, and check the checksums independently.
fn without_df(f: &[u8]) -> Vec<u8> {
    let mut v = f.to_vec();
    let (mut h, _) = etherparse::Ipv4Header::from_slice(&v[14..]).unwrap();
    h.dont_fragment = false;
    h.header_checksum = h.calc_header_checksum();
    v[14..34].copy_from_slice(&h.to_bytes());
    v
}

#[test]
fn ttl_1_is_answered_with_time_exceeded_from_the_vip_in_every_mode() {
    for fwd in MODES {
        let mut lab = Lab::new(Svc::new(fwd), 1);
        for (sport, payload) in [(40000u16, &b"hello"[..]), (40001, &[0x5a; 1000][..])] {
            let f = tcp(
                CLIENT_MAC, DIR0_MAC, CLIENT, sport, VIP, 80, 1, "S", payload,
            );
            assert!(lab.send(0, 0, &f, 1).is_empty(), "{fwd:?}: not forwarded");
            let back = lab.take(0, 0);
            assert_eq!(back.len(), 1, "{fwd:?}");
            assert_checksums(&back[0]);
            let want = time_exceeded(DIR0_MAC, CLIENT_MAC, VIP, CLIENT, &f);
            assert_eq!(without_df(&back[0]), without_df(&want), "{fwd:?}");
            let icmp = &back[0][34..];
            assert_eq!((icmp[0], icmp[1]), (11, 0));
            assert_eq!(back[0].len(), 14 + 20 + 8 + (f.len() - 14).min(548));
        }
        assert_eq!(lab.dropped(DropReason::TtlExceeded), 2, "{fwd:?}");
        // IPVS scheduled before its transmitter refused: the connection
        // stays, as there.
        assert_eq!(conns(&lab), 2, "{fwd:?}");
    }
}

#[test]
fn a_nat_reply_with_ttl_1_tells_the_server() {
    let mut svc = Svc::new(FwdMethod::Nat);
    svc.rport = 8080;
    let mut lab = Lab::new(svc, 1);
    let syn = tcp(CLIENT_MAC, DIR0_MAC, CLIENT, 40000, VIP, 80, 64, "S", b"");
    assert_eq!(lab.send(0, 0, &syn, 1).len(), 1);
    let reply = tcp(
        rs_mac(0),
        DIR1_MAC,
        RS[0],
        8080,
        CLIENT,
        40000,
        1,
        "SA",
        b"",
    );
    assert!(lab.send(0, 1, &reply, 0).is_empty());
    let back = lab.take(0, 1);
    assert_eq!(back.len(), 1);
    assert_checksums(&back[0]);
    // ip_forward checks before IPVS rewrites: the server's own packet is
    // quoted, from the director's address on the server's link.
    let want = time_exceeded(DIR1_MAC, rs_mac(0), DIR1_IP, RS[0], &reply);
    assert_eq!(without_df(&back[0]), without_df(&want));
    assert_eq!(lab.dropped(DropReason::TtlExceeded), 1);
}

#[test]
fn time_exceeded_is_rate_limited_like_icmp_global_allow() {
    let mut lab = Lab::new(Svc::new(FwdMethod::Nat), 1);
    for sport in 0..80u16 {
        let f = tcp(
            CLIENT_MAC,
            DIR0_MAC,
            CLIENT,
            1000 + sport,
            VIP,
            80,
            1,
            "S",
            b"",
        );
        lab.inject(0, 0, &f);
        lab.poll_all();
    }
    let back = lab.take(0, 0);
    assert_eq!(back.len(), 50, "a burst of 50 at one instant");
    assert_eq!(
        lab.dropped(DropReason::TtlExceeded),
        80,
        "every one counted"
    );
    // A millisecond buys one more.
    lab.now += 1;
    let f = tcp(CLIENT_MAC, DIR0_MAC, CLIENT, 2000, VIP, 80, 1, "S", b"");
    assert_eq!(
        {
            lab.inject(0, 0, &f);
            lab.poll_all();
            lab.take(0, 0).len()
        },
        1
    );
}

#[test]
fn a_relayed_icmp_error_with_ttl_1_dies_silently() {
    // ip_vs_icmp_xmit's decrement_ttl: icmp_send never answers an error.
    let mut svc = Svc::new(FwdMethod::Nat);
    svc.rport = 8080;
    let mut lab = Lab::new(svc, 1);
    let syn = tcp(CLIENT_MAC, DIR0_MAC, CLIENT, 40000, VIP, 80, 64, "S", b"");
    assert_eq!(lab.send(0, 0, &syn, 1).len(), 1);
    let reply = tcp(DIR0_MAC, CLIENT_MAC, VIP, 80, CLIENT, 40000, 63, "SA", b"");
    let mut err = vec![];
    etherparse::PacketBuilder::ethernet2(CLIENT_MAC, DIR0_MAC)
        .ipv4(CLIENT, VIP, 1)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port,
        ))
        .write(&mut err, &reply[14..14 + 28])
        .unwrap();
    assert!(lab.send(0, 0, &err, 1).is_empty());
    assert!(lab.take(0, 0).is_empty(), "no error about an error");
    assert_eq!(lab.dropped(DropReason::TtlExceeded), 1);
}
