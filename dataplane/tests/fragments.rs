//! IPv4 fragments (issue 18 item 8): a fragmented UDP datagram or TCP
//! segment goes through the director as Linux's defrag + IPVS + refragment sends it,
//! fragment for fragment, in DR, NAT and FULLNAT, both ways where the
//! director sees both, in order and out of order, on one worker and on
//! two. Each fragment is checked byte for byte against the fragments of
//! the datagram as IPVS would forward it (built by etherparse, checksums
//! from scratch), and the reassembled datagram's checksums verified.

mod common;
use common::*;
use ferrovs_dataplane::counters::DropReason;
use ferrovs_dataplane::service::{FwdMethod, Proto};
use ferrovs_dataplane::wire::Mac;

/// IP payload bytes per fragment at MTU 1500.
const CHUNK: usize = 1480;
const ID: u16 = 0x4242;

/// A UDP datagram of `len` payload bytes, with a recognisable pattern.
#[allow(clippy::too_many_arguments)]
fn datagram(
    smac: Mac,
    dmac: Mac,
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    ttl: u8,
    len: usize,
) -> Vec<u8> {
    let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
    udp(smac, dmac, src, sport, dst, dport, ttl, &payload)
}

fn udp_lab(fwd: FwdMethod, workers: usize) -> Lab {
    let mut svc = Svc::new(fwd);
    svc.proto = Proto::Udp;
    svc.vport = 53;
    svc.rport = if fwd == FwdMethod::Nat || fwd == FwdMethod::FullNat {
        5353
    } else {
        53
    };
    Lab::new(svc, workers)
}

fn out_all(lab: &mut Lab, port: usize) -> Vec<Vec<u8>> {
    let mut v = vec![];
    for w in 0..lab.workers.len() {
        v.extend(lab.take(w, port));
    }
    v
}

fn ctr(lab: &Lab, f: impl Fn(&ferrovs_dataplane::counters::WorkerCounters) -> u64) -> u64 {
    lab.shared.counters.iter().map(f).sum()
}

/// The orders fragments are sent in: as sent, last first, first last.
fn orders(n: usize) -> Vec<Vec<usize>> {
    let fwd: Vec<usize> = (0..n).collect();
    let rev: Vec<usize> = (0..n).rev().collect();
    let mut first_last: Vec<usize> = (1..n).collect();
    first_last.push(0);
    vec![fwd, rev, first_last]
}

/// Sends `frags` in `order` into (worker w, port), polls, and returns
/// what left on `out_port`.
fn send_frags(
    lab: &mut Lab,
    w: usize,
    port: usize,
    frags: &[Vec<u8>],
    order: &[usize],
    out_port: usize,
) -> Vec<Vec<u8>> {
    for &i in order {
        lab.inject(w, port, &frags[i]);
        lab.poll_all();
    }
    out_all(lab, out_port)
}

/// Compares frames without printing kilobytes: the count, then the first
/// differing byte of each.
#[track_caller]
fn assert_frames(got: &[Vec<u8>], want: &[Vec<u8>], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: number of fragments");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g != w {
            let at = g.iter().zip(w).position(|(a, b)| a != b);
            panic!(
                "{what}: fragment {i} differs at byte {at:?} (lengths {} and {})",
                g.len(),
                w.len()
            );
        }
    }
}

/// Sorts fragments by offset, for comparing with the expected ones.
fn by_offset(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort_by_key(|f| u16::from_be_bytes([f[20], f[21]]) & 0x1fff);
    v
}

#[test]
fn nat_forwards_fragments_both_ways_in_any_order() {
    for workers in [1, 2] {
        for len in [3000usize, 6000] {
            let n = (len + 8).div_ceil(CHUNK);
            for (k, order) in orders(n).into_iter().enumerate() {
                let mut lab = udp_lab(FwdMethod::Nat, workers);
                let sport = 40000 + k as u16 * 7 + len as u16;
                let id = ID + k as u16;
                let inp = datagram(CLIENT_MAC, DIR0_MAC, CLIENT, sport, VIP, 53, 64, len);
                assert_eq!(fragment(&inp, CHUNK, id).len(), n);
                for w in 0..workers {
                    // Each worker gets the datagram in turn (a new id, so
                    // a new datagram) and must hand it to the owner.
                    let id = id.wrapping_add(100 * w as u16);
                    let frags = fragment(&inp, CHUNK, id);
                    let got = by_offset(send_frags(&mut lab, w, 0, &frags, &order, 1));
                    let want = datagram(DIR1_MAC, rs_mac(0), CLIENT, sport, RS[0], 5353, 63, len);
                    let want = fragment(&want, CHUNK, id);
                    let what = format!("NAT in, {workers} workers, {len} B, order {order:?}");
                    assert_frames(&got, &want, &what);
                    reassemble(&got);
                }
                // The real server's answer, fragmented by its kernel.
                let rep = datagram(rs_mac(0), DIR1_MAC, RS[0], 5353, CLIENT, sport, 64, len);
                let frags = fragment(&rep, CHUNK, id ^ 0x8000);
                let got = by_offset(send_frags(&mut lab, workers - 1, 1, &frags, &order, 0));
                let want = datagram(DIR0_MAC, CLIENT_MAC, VIP, 53, CLIENT, sport, 63, len);
                let what = format!("NAT reply, {workers} workers, {len} B, order {order:?}");
                assert_frames(&got, &fragment(&want, CHUNK, id ^ 0x8000), &what);
                reassemble(&got);
                let n = frags.len() as u64 * (workers as u64 + 1);
                assert!(ctr(&lab, |c| c.frag_forwarded.get()) >= n);
                assert_eq!(lab.dropped(DropReason::Fragment), 0);
                assert_eq!(lab.dropped(DropReason::FragOrphan), 0);
            }
        }
    }
}

#[test]
fn fullnat_rewrites_addresses_on_every_fragment_and_ports_on_the_first() {
    for workers in [1, 2] {
        for order in orders(3) {
            let mut lab = udp_lab(FwdMethod::FullNat, workers);
            let inp = datagram(CLIENT_MAC, DIR0_MAC, CLIENT, 41000, VIP, 53, 64, 4000);
            let frags = fragment(&inp, CHUNK, ID);
            let got = by_offset(send_frags(&mut lab, 0, 0, &frags, &order, 1));
            let lport = src_port_of(&got[0]);
            let want = datagram(DIR1_MAC, rs_mac(0), LADDR, lport, RS[0], 5353, 63, 4000);
            assert_frames(
                &got,
                &fragment(&want, CHUNK, ID),
                &format!("FULLNAT in {order:?}"),
            );
            reassemble(&got);
            // The reply comes to the local address and port; it may
            // arrive on any worker.
            let rep = datagram(rs_mac(0), DIR1_MAC, RS[0], 5353, LADDR, lport, 64, 4000);
            let frags = fragment(&rep, CHUNK, 77);
            let got = by_offset(send_frags(&mut lab, workers - 1, 1, &frags, &order, 0));
            // FULLNAT does not lower a reply's TTL (fwd/fullnat.rs).
            let want = datagram(DIR0_MAC, CLIENT_MAC, VIP, 53, CLIENT, 41000, 64, 4000);
            assert_frames(
                &got,
                &fragment(&want, CHUNK, 77),
                &format!("FULLNAT reply {order:?}"),
            );
            reassemble(&got);
        }
    }
}

#[test]
fn dr_forwards_fragments_untouched_but_for_mac_and_ttl() {
    for order in orders(5) {
        let mut lab = udp_lab(FwdMethod::Dr, 1);
        let inp = datagram(CLIENT_MAC, DIR0_MAC, CLIENT, 42000, VIP, 53, 64, 6000);
        let frags = fragment(&inp, CHUNK, ID);
        assert_eq!(frags.len(), 5);
        let got = by_offset(send_frags(&mut lab, 0, 0, &frags, &order, 1));
        let want = datagram(DIR1_MAC, rs_mac(0), CLIENT, 42000, VIP, 53, 63, 6000);
        assert_frames(&got, &fragment(&want, CHUNK, ID), &format!("DR {order:?}"));
        reassemble(&got);
        if order[0] != 0 {
            assert!(ctr(&lab, |c| c.frag_held.get()) > 0);
            assert_eq!(
                ctr(&lab, |c| c.frag_held.get()),
                ctr(&lab, |c| c.frag_released.get())
            );
        }
    }
}

#[test]
fn tun_encapsulates_each_fragment() {
    let mut lab = udp_lab(FwdMethod::Tun, 1);
    let inp = datagram(CLIENT_MAC, DIR0_MAC, CLIENT, 43000, VIP, 53, 64, 3000);
    let frags = fragment(&inp, 1400, ID);
    let got = send_frags(&mut lab, 0, 0, &frags, &[2, 0, 1], 1);
    assert_eq!(got.len(), 3);
    let inner: Vec<Vec<u8>> = got
        .iter()
        .map(|f| {
            assert_eq!(f[23], 4, "IPIP");
            let mut v = f[..14].to_vec();
            v.extend_from_slice(&f[34..]);
            v
        })
        .collect();
    let want = datagram(DIR1_MAC, rs_mac(0), CLIENT, 43000, VIP, 53, 63, 3000);
    assert_frames(&by_offset(inner), &fragment(&want, 1400, ID), "TUN");
}

#[test]
fn bad_fragments_are_dropped_and_counted() {
    let mut lab = udp_lab(FwdMethod::Nat, 1);
    let inp = datagram(CLIENT_MAC, DIR0_MAC, CLIENT, 44000, VIP, 53, 64, 3000);
    let frags = fragment(&inp, CHUNK, ID);

    // A first fragment too short for the UDP header (RFC 1858).
    let tiny = &fragment(&inp, 8, 1)[0];
    let mut tiny = tiny.clone();
    tiny.truncate(14 + 20 + 4);
    tiny[16..18].copy_from_slice(&24u16.to_be_bytes());
    fix_ip_checksum(&mut tiny);
    assert!(lab.send(0, 0, &tiny, 1).is_empty());
    assert_eq!(lab.dropped(DropReason::FragTiny), 1);

    // Running past 65535.
    let mut far = frags[1].clone();
    far[20..22].copy_from_slice(&(0x1fffu16).to_be_bytes());
    fix_ip_checksum(&mut far);
    assert!(lab.send(0, 0, &far, 1).is_empty());
    assert_eq!(lab.dropped(DropReason::FragBad), 1);

    // A whole datagram, then a fragment of it again: a duplicate.
    for f in &frags {
        lab.send(0, 0, f, 1);
    }
    assert!(lab.send(0, 0, &frags[1], 1).is_empty());
    assert_eq!(lab.dropped(DropReason::FragDuplicate), 1);

    // Overlapping: 0..1480 held as a later piece of another datagram
    // at 8..1488 overlaps the first fragment's 0..1480.
    let frags2 = fragment(&inp, CHUNK, 2);
    let mut over = frags2[1].clone();
    over[20..22].copy_from_slice(&(0x2000u16 | 1).to_be_bytes());
    fix_ip_checksum(&mut over);
    assert!(lab.send(0, 0, &over, 1).is_empty()); // held
    assert!(lab.send(0, 0, &frags2[0], 1).is_empty()); // overlaps: given up
    assert_eq!(lab.dropped(DropReason::FragBad), 3);

    // ICMP fragments (a big ping) are not forwarded.
    let mut t = Vec::new();
    etherparse::PacketBuilder::ethernet2(CLIENT_MAC, DIR0_MAC)
        .ipv4(CLIENT, VIP, 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut t, &[0; 3000])
        .unwrap();
    for f in fragment(&t, CHUNK, 3) {
        assert!(lab.send(0, 0, &f, 1).is_empty());
    }
    assert_eq!(lab.dropped(DropReason::Fragment), 3);

    // A datagram to a port without a service: every fragment finds none.
    let other = datagram(CLIENT_MAC, DIR0_MAC, CLIENT, 1, VIP, 9999, 64, 3000);
    for f in &fragment(&other, CHUNK, 4) {
        assert!(lab.send(0, 0, f, 1).is_empty());
    }
    assert_eq!(lab.dropped(DropReason::NoService), 3);
    // A fragmented "reply" without a connection: its first is not ours,
    // the later ones are orphans, none creates anything.
    let stray = datagram(rs_mac(0), DIR1_MAC, RS[0], 5353, CLIENT, 7, 64, 3000);
    for f in &fragment(&stray, CHUNK, 5) {
        assert!(lab.send(0, 1, f, 0).is_empty());
    }
    assert_eq!(lab.dropped(DropReason::NotOurs), 1);
    assert_eq!(lab.dropped(DropReason::FragOrphan), 2);
    assert_eq!(lab.dropped(DropReason::FragBad), 3);
}

fn fix_ip_checksum(f: &mut [u8]) {
    f[24] = 0;
    f[25] = 0;
    let (h, _) = etherparse::Ipv4Header::from_slice(&f[14..]).unwrap();
    f[24..26].copy_from_slice(&h.calc_header_checksum().to_be_bytes());
}

#[test]
fn held_fragments_time_out_and_a_flood_does_not_stop_real_datagrams() {
    let mut lab = udp_lab(FwdMethod::Nat, 1);
    // Later fragments with no first: held up to the bound, then refused.
    for id in 0..400u16 {
        let d = datagram(CLIENT_MAC, DIR0_MAC, CLIENT, 1, VIP, 53, 64, 3000);
        let f = &fragment(&d, CHUNK, id)[1];
        assert!(lab.send(0, 0, f, 1).is_empty());
    }
    assert_eq!(ctr(&lab, |c| c.frag_held.get()), 256);
    assert_eq!(lab.dropped(DropReason::FragHoldFull), 144);
    // A real datagram still passes.
    let d = datagram(CLIENT_MAC, DIR0_MAC, CLIENT, 45000, VIP, 53, 64, 3000);
    let mut got = vec![];
    for f in fragment(&d, CHUNK, 9999) {
        got.extend(lab.send(0, 0, &f, 1));
    }
    assert_eq!(got.len(), 3);
    reassemble(&got);
    // The held ones are given up after 3 s.
    lab.now += 3_100;
    lab.poll_all();
    assert_eq!(lab.dropped(DropReason::FragTimeout), 256);
    assert_eq!(ctr(&lab, |c| c.frag_expired.get()), 400);
    // A flood of more datagrams than the table holds evicts the oldest.
    for id in 0..5000u16 {
        let d = datagram(CLIENT_MAC, DIR0_MAC, CLIENT, 1, VIP, 53, 64, 3000);
        let f = &fragment(&d, CHUNK, id)[2];
        lab.inject(0, 0, f);
        if id % 32 == 0 {
            lab.poll_all();
        }
    }
    lab.poll_all();
    assert!(ctr(&lab, |c| c.frag_evicted.get()) > 0);
    let mut got = vec![];
    for f in fragment(&d, CHUNK, 12345) {
        got.extend(lab.send(0, 0, &f, 1));
    }
    assert_eq!(got.len(), 3);
}

#[test]
fn ttl_1_fragments_are_dropped_and_only_the_first_is_answered() {
    let mut lab = udp_lab(FwdMethod::Nat, 1);
    let d = datagram(CLIENT_MAC, DIR0_MAC, CLIENT, 46000, VIP, 53, 1, 3000);
    let mut icmp = 0;
    for f in fragment(&d, CHUNK, 6) {
        for o in lab.send(0, 0, &f, 0) {
            assert_eq!((o[23], o[34]), (1, 11), "ICMP time exceeded");
            icmp += 1;
        }
    }
    // RFC 1122 §3.2.2: no ICMP error about a non-first fragment.
    assert_eq!(icmp, 1);
    assert_eq!(lab.dropped(DropReason::TtlExceeded), 3);
    assert!(out_all(&mut lab, 1).is_empty());
}

/// A TCP segment of `len` payload bytes with a recognisable pattern.
#[allow(clippy::too_many_arguments)]
fn segment(
    smac: Mac,
    dmac: Mac,
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    ttl: u8,
    flags: &str,
    len: usize,
) -> Vec<u8> {
    let payload: Vec<u8> = (0..len).map(|i| (i * 5 + 1) as u8).collect();
    tcp(smac, dmac, src, sport, dst, dport, ttl, flags, &payload)
}

#[test]
fn tcp_fragments_follow_their_connection_and_only_the_first_moves_its_state() {
    for fwd in [FwdMethod::Nat, FwdMethod::FullNat, FwdMethod::Dr] {
        for workers in [1, 2] {
            for (k, order) in orders(3).into_iter().enumerate() {
                let what = format!("{fwd:?}, {workers} workers, order {order:?}");
                let mut lab = Lab::new(Svc::new(fwd), workers);
                let sport = 45000 + k as u16;
                // A fragmented SYN (with data, as TCP Fast Open sends)
                // makes the connection from its first fragment.
                let syn = segment(CLIENT_MAC, DIR0_MAC, CLIENT, sport, VIP, 80, 64, "S", 3000);
                let got = by_offset(send_frags(
                    &mut lab,
                    0,
                    0,
                    &fragment(&syn, CHUNK, ID),
                    &order,
                    1,
                ));
                assert_eq!(got.len(), 3, "{what}: the SYN's fragments");
                let (src, lport) = match fwd {
                    FwdMethod::FullNat => (LADDR, src_port_of(&got[0])),
                    _ => (CLIENT, sport),
                };
                let vip_or_rs = if fwd == FwdMethod::Dr { VIP } else { RS[0] };
                let want = segment(
                    DIR1_MAC,
                    rs_mac(0),
                    src,
                    lport,
                    vip_or_rs,
                    80,
                    63,
                    "S",
                    3000,
                );
                assert_frames(&got, &fragment(&want, CHUNK, ID), &format!("{what}: SYN"));
                reassemble(&got);
                assert_eq!(lab.dests[0].inactive(), 1, "{what}: SYN_RECV");

                // Data: the first fragment's ACK establishes; the later
                // ones, without a header, change nothing.
                let data = segment(CLIENT_MAC, DIR0_MAC, CLIENT, sport, VIP, 80, 64, "A", 4000);
                let frags = fragment(&data, CHUNK, ID + 1);
                let got = by_offset(send_frags(&mut lab, workers - 1, 0, &frags, &order, 1));
                let want = segment(
                    DIR1_MAC,
                    rs_mac(0),
                    src,
                    lport,
                    vip_or_rs,
                    80,
                    63,
                    "A",
                    4000,
                );
                assert_frames(
                    &got,
                    &fragment(&want, CHUNK, ID + 1),
                    &format!("{what}: data"),
                );
                reassemble(&got);
                assert_eq!(lab.dests[0].active(), 1, "{what}: ESTABLISHED");
                // Sent to the other worker than the SYN's: NAT knows the
                // owner; the other modes pass the fragments round.
                let chained = ctr(&lab, |c| c.frag_chained.get());
                if workers == 2 && fwd != FwdMethod::Nat {
                    assert_eq!(chained, 3, "{what}: passed to the SYN's worker");
                } else {
                    assert_eq!(chained, 0, "{what}");
                }

                if fwd != FwdMethod::Dr {
                    // The server's fragmented answer, back to the client.
                    let rep = segment(rs_mac(0), DIR1_MAC, RS[0], 80, src, lport, 64, "A", 4000);
                    let frags = fragment(&rep, CHUNK, 99);
                    let got = by_offset(send_frags(&mut lab, workers - 1, 1, &frags, &order, 0));
                    // FULLNAT does not lower a reply's TTL (fwd/fullnat.rs).
                    let ttl = if fwd == FwdMethod::FullNat { 64 } else { 63 };
                    let want =
                        segment(DIR0_MAC, CLIENT_MAC, VIP, 80, CLIENT, sport, ttl, "A", 4000);
                    assert_frames(&got, &fragment(&want, CHUNK, 99), &format!("{what}: reply"));
                    reassemble(&got);
                }

                // A fragmented FIN: its first fragment closes, once.
                let fin = segment(CLIENT_MAC, DIR0_MAC, CLIENT, sport, VIP, 80, 64, "FA", 3000);
                let got = send_frags(&mut lab, 0, 0, &fragment(&fin, CHUNK, ID + 2), &order, 1);
                assert_eq!(got.len(), 3, "{what}: the FIN's fragments");
                assert_eq!(lab.dests[0].active(), 0, "{what}: out of ESTABLISHED");
                assert_eq!(lab.dropped(DropReason::Fragment), 0, "{what}");
                assert_eq!(lab.dropped(DropReason::FragOrphan), 0, "{what}");
            }
        }
    }
}

#[test]
fn tcp_fragments_of_no_connection_are_orphans() {
    let mut lab = Lab::new(Svc::new(FwdMethod::Nat), 1);
    // No SYN came: the first fragment is refused (no connection), the
    // later ones follow it.
    let data = segment(CLIENT_MAC, DIR0_MAC, CLIENT, 46000, VIP, 80, 64, "R", 3000);
    let got = send_frags(&mut lab, 0, 0, &fragment(&data, CHUNK, ID), &[0, 1, 2], 1);
    assert!(got.is_empty());
    assert_eq!(lab.dropped(DropReason::NoConnection), 1);
    assert_eq!(lab.dropped(DropReason::FragOrphan), 2);
    assert_eq!(lab.workers[0].conns().len(), 0);
}
