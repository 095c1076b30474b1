//! SYN proxy in the worker (in-memory ports): the whole handshake for NAT
//! and FULLNAT, sequence translation both ways, a spoofed SYN flood that
//! creates no connection entry, a bad cookie, a refusing real server.

mod common;
use common::*;
use etherparse::{PacketBuilder, SlicedPacket, TcpHeader, TcpOptionElement, TransportSlice};
use ferrovs_dataplane::counters::{DropReason, WorkerCounters};
use ferrovs_dataplane::service::FwdMethod;

const CPORT: u16 = 40000;
const ISN: u32 = 1000;
const RS_ISN: u32 = 5_000_000;

#[allow(clippy::too_many_arguments)]
fn seg(
    smac: [u8; 6],
    dmac: [u8; 6],
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    seq: u32,
    ack: Option<u32>,
    flags: &str,
    window: u16,
    opts: &[TcpOptionElement],
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(smac, dmac)
        .ipv4(src.0, dst.0, 64)
        .tcp(src.1, dst.1, seq, window);
    if flags.contains('S') {
        b = b.syn();
    }
    if let Some(a) = ack {
        b = b.ack(a);
    }
    if flags.contains('R') {
        b = b.rst();
    }
    if flags.contains('F') {
        b = b.fin();
    }
    if flags.contains('P') {
        b = b.psh();
    }
    let b = b.options(opts).unwrap();
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

fn client_seg(
    flags: &str,
    seq: u32,
    ack: Option<u32>,
    opts: &[TcpOptionElement],
    p: &[u8],
) -> Vec<u8> {
    seg(
        CLIENT_MAC,
        DIR0_MAC,
        (CLIENT, CPORT),
        (VIP, 80),
        seq,
        ack,
        flags,
        502,
        opts,
        p,
    )
}

/// A frame's TCP header, payload and (source, destination), checksums
/// verified by etherparse.
type Endpoint = ([u8; 4], u16);

fn parse(f: &[u8]) -> (TcpHeader, Vec<u8>, Endpoint, Endpoint) {
    assert_checksums(f);
    let p = SlicedPacket::from_ethernet(f).unwrap();
    let Some(TransportSlice::Tcp(t)) = &p.transport else {
        panic!("not TCP")
    };
    (
        t.to_header(),
        t.payload().to_vec(),
        (src_ip_of(f), src_port_of(f)),
        (dst_ip_of(f), dst_port_of(f)),
    )
}

fn ctr(lab: &Lab, f: impl Fn(&WorkerCounters) -> u64) -> u64 {
    lab.shared.counters.iter().map(f).sum()
}

fn lab(fwd: FwdMethod, cap: usize) -> Lab {
    let mut svc = Svc::new(fwd);
    svc.synproxy = true;
    Lab::with(svc, 1, cap, 1500)
}

const SYN_OPTS: [TcpOptionElement; 3] = [
    TcpOptionElement::MaximumSegmentSize(1460),
    TcpOptionElement::SelectiveAcknowledgementPermitted,
    TcpOptionElement::WindowScale(7),
];

/// Client SYN → SYN-ACK with a cookie; returns the cookie.
fn syn(lab: &mut Lab) -> u32 {
    let out = lab.send(0, 0, &client_seg("S", ISN, None, &SYN_OPTS, b""), 0);
    assert_eq!(out.len(), 1, "one SYN-ACK");
    let (t, _, src, dst) = parse(&out[0]);
    assert!(t.syn && t.ack && !t.rst);
    assert_eq!((src, dst), ((VIP, 80), (CLIENT, CPORT)));
    assert_eq!(t.acknowledgment_number, ISN + 1);
    assert!(lab.take(0, 1).is_empty());
    assert_eq!(lab.workers[0].conns().len(), 0, "no entry for a SYN");
    t.sequence_number
}

fn handshake(fwd: FwdMethod) {
    let mut lab = lab(fwd, 1024);
    let cookie = syn(&mut lab);
    // A retransmitted SYN gets the same cookie, still no entry.
    assert_eq!(syn(&mut lab), cookie);

    // The client's ACK validates: the real server gets a SYN with the
    // client's ISN and its options.
    let ack = client_seg("A", ISN + 1, Some(cookie.wrapping_add(1)), &[], b"");
    let out = lab.send(0, 0, &ack, 1);
    assert_eq!(out.len(), 1, "{fwd:?}: SYN to the real server");
    let (t, _, src, dst) = parse(&out[0]);
    assert!(t.syn && !t.ack);
    assert_eq!(t.sequence_number, ISN);
    assert_eq!(dst, (RS[0], 80));
    let server_side = match fwd {
        FwdMethod::Nat => (CLIENT, CPORT),
        _ => {
            assert_eq!(src.0, LADDR);
            src
        }
    };
    assert_eq!(src, server_side);
    assert_eq!(
        t.options_iterator().map(|o| o.unwrap()).collect::<Vec<_>>(),
        vec![
            TcpOptionElement::MaximumSegmentSize(1460),
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::SelectiveAcknowledgementPermitted,
            TcpOptionElement::Noop,
            TcpOptionElement::WindowScale(7),
        ]
    );
    assert_eq!(lab.workers[0].conns().len(), 1);
    assert_eq!(ctr(&lab, |c| c.synproxy_cookies_validated.get()), 1);

    // The request comes before the server answers: held.
    let req = client_seg("AP", ISN + 1, Some(cookie.wrapping_add(1)), &[], b"GET /");
    assert!(lab.send(0, 0, &req, 1).is_empty());
    assert_eq!(ctr(&lab, |c| c.synproxy_early_held.get()), 1);

    // The server's SYN-ACK is consumed: the director acks it, and the
    // held request follows with its ack translated.
    let rs_synack = seg(
        rs_mac(0),
        DIR1_MAC,
        (RS[0], 80),
        server_side,
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
    lab.inject(0, 1, &rs_synack);
    lab.poll_all();
    assert!(
        lab.take(0, 0).is_empty(),
        "the SYN-ACK stays with the director"
    );
    let out = lab.take(0, 1);
    assert_eq!(out.len(), 2, "{fwd:?}: ACK and the held request");
    let (t, p, src, dst) = parse(&out[0]);
    assert!(t.ack && !t.syn && p.is_empty());
    assert_eq!(
        (t.sequence_number, t.acknowledgment_number),
        (ISN + 1, RS_ISN + 1)
    );
    assert_eq!((src, dst), (server_side, (RS[0], 80)));
    let (t, p, src, dst) = parse(&out[1]);
    assert_eq!(p, b"GET /");
    assert_eq!(
        (t.sequence_number, t.acknowledgment_number),
        (ISN + 1, RS_ISN + 1)
    );
    assert_eq!((src, dst), (server_side, (RS[0], 80)));
    assert_eq!(ctr(&lab, |c| c.synproxy_rs_established.get()), 1);
    assert_eq!(ctr(&lab, |c| c.synproxy_early_released.get()), 1);

    // The server's reply reaches the client in the client's sequence
    // space, its window rescaled from shift 9 to the announced 7.
    let reply = seg(
        rs_mac(0),
        DIR1_MAC,
        (RS[0], 80),
        server_side,
        RS_ISN + 1,
        Some(ISN + 6),
        "P",
        100,
        &[],
        b"HTTP/1.0 200 OK",
    );
    let out = lab.send(0, 1, &reply, 0);
    assert_eq!(out.len(), 1);
    let (t, p, src, dst) = parse(&out[0]);
    assert_eq!(p, b"HTTP/1.0 200 OK");
    assert_eq!((src, dst), ((VIP, 80), (CLIENT, CPORT)));
    assert_eq!(t.sequence_number, cookie.wrapping_add(1));
    assert_eq!(t.acknowledgment_number, ISN + 6);
    assert_eq!(t.window_size, 400);

    // The client acks part of it and SACKs a later block: both move into
    // the server's space.
    let c0 = cookie.wrapping_add(1);
    let sack = [
        TcpOptionElement::Noop,
        TcpOptionElement::Noop,
        TcpOptionElement::SelectiveAcknowledgement(
            (c0.wrapping_add(20), c0.wrapping_add(30)),
            [None; 3],
        ),
    ];
    let ack2 = client_seg("A", ISN + 6, Some(c0.wrapping_add(15)), &sack, b"");
    let out = lab.send(0, 0, &ack2, 1);
    assert_eq!(out.len(), 1);
    let (t, _, _, _) = parse(&out[0]);
    assert_eq!(t.acknowledgment_number, RS_ISN + 1 + 15);
    let blocks: Vec<_> = t.options_iterator().map(|o| o.unwrap()).collect();
    assert_eq!(
        blocks[2],
        TcpOptionElement::SelectiveAcknowledgement((RS_ISN + 21, RS_ISN + 31), [None; 3])
    );
    assert_eq!(ctr(&lab, |c| c.synproxy_cookies_sent.get()), 2);
    assert_eq!(ctr(&lab, |c| c.synproxy_cookies_failed.get()), 0);
    assert_eq!(lab.dropped(DropReason::SynproxyEarly), 0);
}

#[test]
fn nat_handshake_and_translation() {
    handshake(FwdMethod::Nat);
}

#[test]
fn fullnat_handshake_and_translation() {
    handshake(FwdMethod::FullNat);
}

fn flood(fwd: FwdMethod) {
    const CAP: usize = 64;
    let mut lab = lab(fwd, CAP);
    let n = 10 * CAP as u32;
    for k in 0..n {
        // Sources on the client segment, none of the director's.
        let src = [198, 18, 0, 101 + (k % 100) as u8];
        let f = seg(
            CLIENT_MAC,
            DIR0_MAC,
            (src, 1024 + (k / 100) as u16),
            (VIP, 80),
            k.wrapping_mul(2_654_435_761),
            None,
            "S",
            1024,
            &[],
            b"",
        );
        lab.inject(0, 0, &f);
        if k % 16 == 15 {
            lab.poll_all();
            lab.take(0, 0);
        }
    }
    lab.poll_all();
    lab.take(0, 0);
    assert_eq!(lab.workers[0].conns().len(), 0, "{fwd:?}: no entry");
    assert_eq!(ctr(&lab, |c| c.synproxy_cookies_sent.get()), n as u64);
    assert!(lab.take(0, 1).is_empty(), "nothing reached a real server");
    // A legitimate client still gets through.
    let cookie = syn(&mut lab);
    let ack = client_seg("A", ISN + 1, Some(cookie.wrapping_add(1)), &[], b"");
    assert_eq!(lab.send(0, 0, &ack, 1).len(), 1);
    assert_eq!(lab.workers[0].conns().len(), 1);
}

#[test]
fn spoofed_syn_flood_creates_no_connection_nat() {
    flood(FwdMethod::Nat);
}

#[test]
fn spoofed_syn_flood_creates_no_connection_fullnat() {
    flood(FwdMethod::FullNat);
}

#[test]
fn bad_cookie_ack_is_dropped_and_counted() {
    for fwd in [FwdMethod::Nat, FwdMethod::FullNat] {
        let mut lab = lab(fwd, 1024);
        let cookie = syn(&mut lab);
        for bad in [cookie ^ 0x100, cookie ^ 1, 0x1234_5678] {
            let ack = client_seg("A", ISN + 1, Some(bad.wrapping_add(1)), &[], b"");
            assert!(lab.send(0, 0, &ack, 1).is_empty());
        }
        // The right cookie with another ISN fails too.
        let ack = client_seg("A", ISN + 2, Some(cookie.wrapping_add(1)), &[], b"");
        assert!(lab.send(0, 0, &ack, 1).is_empty());
        assert_eq!(lab.workers[0].conns().len(), 0);
        assert_eq!(lab.dropped(DropReason::SynproxyBadCookie), 4);
        assert_eq!(ctr(&lab, |c| c.synproxy_cookies_failed.get()), 4);
        // An expired cookie (two slots later) fails as well.
        lab.now += 2 * 64_000;
        let ack = client_seg("A", ISN + 1, Some(cookie.wrapping_add(1)), &[], b"");
        assert!(lab.send(0, 0, &ack, 1).is_empty());
        assert_eq!(lab.dropped(DropReason::SynproxyBadCookie), 5);
    }
}

#[test]
fn a_refusing_server_resets_the_client() {
    for fwd in [FwdMethod::Nat, FwdMethod::FullNat] {
        let mut lab = lab(fwd, 1024);
        let cookie = syn(&mut lab);
        let ack = client_seg("A", ISN + 1, Some(cookie.wrapping_add(1)), &[], b"");
        let out = lab.send(0, 0, &ack, 1);
        let (_, _, server_side, _) = parse(&out[0]);
        let req = client_seg("AP", ISN + 1, Some(cookie.wrapping_add(1)), &[], b"GET /");
        assert!(lab.send(0, 0, &req, 1).is_empty());
        let rst = seg(
            rs_mac(0),
            DIR1_MAC,
            (RS[0], 80),
            server_side,
            0,
            Some(ISN + 1),
            "R",
            0,
            &[],
            b"",
        );
        let out = lab.send(0, 1, &rst, 0);
        assert_eq!(out.len(), 1, "{fwd:?}: RST to the client");
        let (t, _, src, dst) = parse(&out[0]);
        assert!(t.rst);
        assert_eq!((src, dst), ((VIP, 80), (CLIENT, CPORT)));
        assert_eq!(t.sequence_number, cookie.wrapping_add(1));
        assert_eq!(ctr(&lab, |c| c.synproxy_rs_refused.get()), 1);
        assert_eq!(ctr(&lab, |c| c.synproxy_early_dropped.get()), 1);
        assert!(
            lab.take(0, 1).is_empty(),
            "the held request never reaches it"
        );
    }
}

#[test]
fn held_segments_expire() {
    let mut lab = lab(FwdMethod::Nat, 1024);
    let cookie = syn(&mut lab);
    let ack = client_seg("A", ISN + 1, Some(cookie.wrapping_add(1)), &[], b"");
    assert_eq!(lab.send(0, 0, &ack, 1).len(), 1);
    let req = client_seg("AP", ISN + 1, Some(cookie.wrapping_add(1)), &[], b"GET /");
    assert!(lab.send(0, 0, &req, 1).is_empty());
    lab.now += ferrovs_dataplane::worker::HOLD_MS + 1;
    lab.poll_all();
    assert_eq!(ctr(&lab, |c| c.synproxy_early_dropped.get()), 1);
    assert_eq!(lab.dropped(DropReason::SynproxyEarly), 1);
}

#[test]
fn a_lost_syn_to_the_server_is_sent_again_when_the_client_retransmits() {
    for fwd in [FwdMethod::Nat, FwdMethod::FullNat] {
        let mut lab = lab(fwd, 1024);
        let cookie = syn(&mut lab);
        let ack = client_seg("A", ISN + 1, Some(cookie.wrapping_add(1)), &[], b"");
        assert_eq!(lab.send(0, 0, &ack, 1).len(), 1, "the SYN, lost on the way");
        let req = client_seg("AP", ISN + 1, Some(cookie.wrapping_add(1)), &[], b"GET /");
        assert!(lab.send(0, 0, &req, 1).is_empty());
        // The client retransmits its request: the SYN goes again.
        let out = lab.send(0, 0, &req, 1);
        assert_eq!(out.len(), 1, "{fwd:?}");
        let (t, _, _, dst) = parse(&out[0]);
        assert!(t.syn && !t.ack);
        assert_eq!((t.sequence_number, dst), (ISN, (RS[0], 80)));
        assert_eq!(ctr(&lab, |c| c.synproxy_syn_retransmitted.get()), 1);
        assert_eq!(ctr(&lab, |c| c.synproxy_early_held.get()), 1, "held once");
        // A later segment (not the client's first) sends nothing.
        let more = client_seg("AP", ISN + 6, Some(cookie.wrapping_add(1)), &[], b"more");
        assert!(lab.send(0, 0, &more, 1).is_empty());
        assert!(lab.send(0, 0, &more, 1).is_empty());
        assert_eq!(ctr(&lab, |c| c.synproxy_syn_retransmitted.get()), 1);
    }
}

#[test]
fn no_syn_ack_towards_martian_or_own_sources() {
    let mut lab = lab(FwdMethod::Nat, 1024);
    for src in [
        [0, 0, 0, 0],
        [127, 0, 0, 1],
        [224, 0, 0, 1],
        [255, 255, 255, 255],
        VIP,
        DIR0_IP,
    ] {
        let f = seg(
            CLIENT_MAC,
            DIR0_MAC,
            (src, 1234),
            (VIP, 80),
            1,
            None,
            "S",
            1024,
            &[],
            b"",
        );
        assert!(lab.send(0, 0, &f, 0).is_empty(), "{src:?}");
    }
    assert_eq!(ctr(&lab, |c| c.synproxy_cookies_sent.get()), 0);
    // Refused before the SYN proxy sees them, as Linux's
    // ip_route_input_slow refuses them before IPVS.
    assert_eq!(lab.dropped(DropReason::MartianSource), 6);
    assert_eq!(lab.workers[0].conns().len(), 0);
}

#[test]
fn two_workers_hand_the_handshake_to_the_flow_owner() {
    for fwd in [FwdMethod::Nat, FwdMethod::FullNat] {
        let mut svc = Svc::new(fwd);
        svc.synproxy = true;
        let mut lab = Lab::with(svc, 2, 1024, 1500);
        let all = |lab: &mut Lab, port: usize| -> Vec<Vec<u8>> {
            (0..2).flat_map(|w| lab.take(w, port)).collect()
        };
        let conns = |lab: &Lab| lab.workers.iter().map(|w| w.conns().len()).sum::<usize>();
        // SYN on one worker, ACK and data on the other, the server's
        // answers on either: each reaches the flow's owner.
        for (k, (syn_w, ack_w, rs_w)) in [(0, 1, 0), (1, 0, 1), (1, 1, 0)].into_iter().enumerate() {
            let cport = CPORT + k as u16;
            let syn = seg(
                CLIENT_MAC,
                DIR0_MAC,
                (CLIENT, cport),
                (VIP, 80),
                ISN,
                None,
                "S",
                502,
                &SYN_OPTS,
                b"",
            );
            lab.inject(syn_w, 0, &syn);
            lab.poll_all();
            let out = all(&mut lab, 0);
            assert_eq!(out.len(), 1, "{fwd:?} {k}");
            let cookie = parse(&out[0]).0.sequence_number;
            let ack = seg(
                CLIENT_MAC,
                DIR0_MAC,
                (CLIENT, cport),
                (VIP, 80),
                ISN + 1,
                Some(cookie.wrapping_add(1)),
                "AP",
                502,
                &[],
                b"GET /",
            );
            lab.inject(ack_w, 0, &ack);
            lab.poll_all();
            let out = all(&mut lab, 1);
            assert_eq!(out.len(), 1, "{fwd:?} {k}: SYN to the server (data held)");
            let (t, _, server_side, rs) = parse(&out[0]);
            assert!(t.syn);
            let synack = seg(
                rs_mac(0),
                DIR1_MAC,
                rs,
                server_side,
                RS_ISN,
                Some(ISN + 1),
                "S",
                65160,
                &[],
                b"",
            );
            lab.inject(rs_w, 1, &synack);
            lab.poll_all();
            let out = all(&mut lab, 1);
            assert_eq!(out.len(), 2, "{fwd:?} {k}: ACK and the held data");
            assert_eq!(parse(&out[1]).1, b"GET /");
            assert_eq!(parse(&out[1]).0.acknowledgment_number, RS_ISN + 1);
            assert_eq!(conns(&lab), k + 1);
        }
    }
}

#[test]
fn fragmented_segments_are_translated_in_their_first_fragment() {
    for fwd in [FwdMethod::Nat, FwdMethod::FullNat] {
        let mut lab = lab(fwd, 1024);
        let cookie = syn(&mut lab);
        let c1 = cookie.wrapping_add(1);
        let ack = client_seg("A", ISN + 1, Some(c1), &[], b"");
        let out = lab.send(0, 0, &ack, 1);
        let (_, _, server_side, _) = parse(&out[0]);
        // While the server has not answered, a fragmented segment is
        // dropped (held segments are replayed whole), counted.
        let big: Vec<u8> = (0..3000).map(|i| (i * 3) as u8).collect();
        let req = client_seg("AP", ISN + 1, Some(c1), &[], &big);
        let frags = fragment(&req, 1480, 7);
        for f in &frags {
            assert!(lab.send(0, 0, f, 1).is_empty());
        }
        assert_eq!(lab.dropped(DropReason::Fragment), 3, "{fwd:?}");
        let synack = seg(
            rs_mac(0),
            DIR1_MAC,
            (RS[0], 80),
            server_side,
            RS_ISN,
            Some(ISN + 1),
            "S",
            65160,
            &[],
            b"",
        );
        assert_eq!(lab.send(0, 1, &synack, 1).len(), 1, "{fwd:?}: the ACK");
        // Established: the client's retransmission, fragmented, reaches
        // the server with its acknowledgement in the server's space.
        let mut got = vec![];
        for f in fragment(&req, 1480, 8) {
            got.extend(lab.send(0, 0, &f, 1));
        }
        assert_eq!(got.len(), 3, "{fwd:?}");
        let whole = reassemble(&got);
        let (t, p, src, dst) = parse(&whole);
        assert_eq!(p, big);
        assert_eq!((src, dst), (server_side, (RS[0], 80)));
        assert_eq!(
            (t.sequence_number, t.acknowledgment_number),
            (ISN + 1, RS_ISN + 1)
        );
        // And the server's fragmented answer reaches the client in its.
        let rep = seg(
            rs_mac(0),
            DIR1_MAC,
            (RS[0], 80),
            server_side,
            RS_ISN + 1,
            Some(ISN + 3001),
            "A",
            100,
            &[],
            &big,
        );
        let mut got = vec![];
        for f in fragment(&rep, 1480, 9) {
            got.extend(lab.send(0, 1, &f, 0));
        }
        assert_eq!(got.len(), 3, "{fwd:?}");
        let (t, p, src, dst) = parse(&reassemble(&got));
        assert_eq!(p, big);
        assert_eq!((src, dst), ((VIP, 80), (CLIENT, CPORT)));
        assert_eq!(
            (t.sequence_number, t.acknowledgment_number),
            (c1, ISN + 3001)
        );
    }
}
