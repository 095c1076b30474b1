//! IPv4 fragments (issue 18 item 8): a fragmented UDP datagram goes
//! through the director as Linux's defrag + IPVS + refragment sends it,
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

/// Splits an unfragmented Ethernet/IPv4 frame into fragments of at most
/// `chunk` payload bytes (a multiple of 8), as a host's IP layer does
/// (RFC 791), with identification `id`.
fn fragment(frame: &[u8], chunk: usize, id: u16) -> Vec<Vec<u8>> {
    let (h, _) = etherparse::Ipv4Header::from_slice(&frame[14..]).unwrap();
    let hl = h.header_len();
    let payload = &frame[14 + hl..14 + h.total_len as usize];
    let mut out = vec![];
    let mut off = 0;
    while off < payload.len() {
        let n = chunk.min(payload.len() - off);
        let more = off + n < payload.len();
        let mut fh = h.clone();
        fh.identification = id;
        fh.total_len = (hl + n) as u16;
        fh.more_fragments = more;
        fh.fragment_offset = etherparse::IpFragOffset::try_new((off / 8) as u16).unwrap();
        fh.header_checksum = fh.calc_header_checksum();
        let mut f = frame[..14].to_vec();
        f.extend_from_slice(&fh.to_bytes());
        f.extend_from_slice(&payload[off..off + n]);
        out.push(f);
        off += n;
    }
    out
}

/// Reassembles fragments (any order), checking each IP header checksum,
/// into one Ethernet/IPv4 frame whose checksums are then verified.
fn reassemble(frags: &[Vec<u8>]) -> Vec<u8> {
    let mut parts: Vec<(usize, bool, Vec<u8>)> = vec![];
    let mut first_hdr = None;
    for f in frags {
        let (h, rest) = etherparse::Ipv4Header::from_slice(&f[14..]).unwrap();
        assert_eq!(
            h.header_checksum,
            h.calc_header_checksum(),
            "fragment IP checksum"
        );
        let off = h.fragment_offset.value() as usize * 8;
        let n = h.total_len as usize - h.header_len();
        if off == 0 {
            first_hdr = Some((f[..14].to_vec(), h.clone()));
        }
        parts.push((off, h.more_fragments, rest[..n].to_vec()));
    }
    parts.sort_by_key(|p| p.0);
    let mut payload = vec![];
    for (off, _, p) in &parts {
        assert_eq!(*off, payload.len(), "contiguous");
        payload.extend_from_slice(p);
    }
    assert!(!parts.last().unwrap().1, "last fragment has MF clear");
    let (l2, mut h) = first_hdr.expect("a first fragment");
    h.more_fragments = false;
    h.fragment_offset = etherparse::IpFragOffset::ZERO;
    h.total_len = (h.header_len() + payload.len()) as u16;
    h.header_checksum = h.calc_header_checksum();
    let mut f = l2;
    f.extend_from_slice(&h.to_bytes());
    f.extend_from_slice(&payload);
    assert_checksums(&f);
    f
}

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

    // TCP fragments are not forwarded.
    let t = tcp(
        CLIENT_MAC, DIR0_MAC, CLIENT, 1, VIP, 53, 64, "S", &[0; 3000],
    );
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
