//! Flood defence in the worker: a table full of a spoofed flood's half-open
//! or unconfirmed entries still lets legitimate clients in, never evicts an
//! established connection, and clears its garbage in seconds under pressure.

mod common;
use common::*;
use ferrovs_dataplane::conn::pressure::{PRESSURE_HALF_OPEN_S, PRESSURE_UDP_S};
use ferrovs_dataplane::counters::DropReason;
use ferrovs_dataplane::service::{FwdMethod, Proto};

const CAP: usize = 64;

/// The k-th spoofed source: addresses on the client segment (the lab
/// routes them), ports that never repeat within a test.
fn spoofed(k: u32) -> ([u8; 4], u16) {
    (
        [198, 18, 0, 30 + (k % 200) as u8],
        1024 + (k / 200) as u16 * 7 + (k % 7) as u16,
    )
}

fn syn_from(src: [u8; 4], sport: u16) -> Vec<u8> {
    tcp(CLIENT_MAC, DIR0_MAC, src, sport, VIP, 80, 64, "S", b"")
}

fn client(flags: &str, payload: &[u8]) -> Vec<u8> {
    tcp(
        CLIENT_MAC, DIR0_MAC, CLIENT, 40000, VIP, 80, 64, flags, payload,
    )
}

/// The real server's answer to the legitimate client (NAT and FULLNAT).
fn server_answer(lab: &mut Lab, fwd: FwdMethod, forwarded: &[u8], flags: &str) {
    let (dst, dport) = match fwd {
        FwdMethod::Nat => (CLIENT, 40000),
        FwdMethod::FullNat => (LADDR, src_port_of(forwarded)),
        _ => return,
    };
    let rs = RS
        .iter()
        .position(|r| *r == dst_ip_of(forwarded))
        .unwrap_or(0);
    let f = tcp(rs_mac(rs), DIR1_MAC, RS[rs], 80, dst, dport, 64, flags, b"");
    assert_eq!(lab.send(0, 1, &f, 0).len(), 1, "{fwd:?}: answer relayed");
}

fn counter(lab: &Lab, f: impl Fn(&ferrovs_dataplane::counters::WorkerCounters) -> u64) -> u64 {
    lab.shared.counters.iter().map(f).sum()
}

fn out_port(fwd: FwdMethod) -> usize {
    // TUN leaves through the server side too (encapsulated).
    let _ = fwd;
    1
}

fn syn_flood_keeps_clients_in(fwd: FwdMethod) {
    let mut svc = Svc::new(fwd);
    svc.weights = vec![1, 1, 1];
    let mut lab = Lab::with(svc, 1, CAP, 1500);
    let o = out_port(fwd);
    // An established connection from before the flood.
    let before = tcp(CLIENT_MAC, DIR0_MAC, CLIENT, 39999, VIP, 80, 64, "S", b"");
    let fwd0 = lab.send(0, 0, &before, o);
    assert_eq!(fwd0.len(), 1);
    server_answer_port(&mut lab, fwd, &fwd0[0], 39999);
    let ack = tcp(CLIENT_MAC, DIR0_MAC, CLIENT, 39999, VIP, 80, 64, "A", b"");
    assert_eq!(lab.send(0, 0, &ack, o).len(), 1);

    let mut k = 0u32;
    let mut flood = |lab: &mut Lab, n: usize| {
        for _ in 0..n {
            let (s, p) = spoofed(k);
            k += 1;
            lab.inject(0, 0, &syn_from(s, p));
            if k.is_multiple_of(16) {
                lab.poll_all();
                lab.take(0, 0);
                lab.take(0, 1);
            }
        }
        lab.poll_all();
        lab.take(0, 0);
        lab.take(0, 1);
    };
    flood(&mut lab, CAP * 2);
    assert!(lab.workers[0].conns().is_full());
    assert!(lab.workers[0].conns().under_pressure());

    // Twenty legitimate connections, each completing its handshake while
    // half the table's size of flood SYNs arrive, all through a flood of
    // ten times the table's size.
    for c in 0..20u16 {
        let port = 41000 + c;
        let out = lab.send(
            0,
            0,
            &tcp(CLIENT_MAC, DIR0_MAC, CLIENT, port, VIP, 80, 64, "S", b""),
            o,
        );
        assert_eq!(out.len(), 1, "{fwd:?}: SYN {c} forwarded in a full table");
        flood(&mut lab, CAP / 4);
        server_answer_port(&mut lab, fwd, &out[0], port);
        flood(&mut lab, CAP / 4);
        let ack = tcp(CLIENT_MAC, DIR0_MAC, CLIENT, port, VIP, 80, 64, "A", b"");
        assert_eq!(lab.send(0, 0, &ack, o).len(), 1, "{fwd:?}: ACK {c}");
        flood(&mut lab, CAP / 2);
    }
    flood(&mut lab, CAP * 10);
    // Every one of them, and the one from before, still forwarded.
    for port in (41000..41020).chain([39999]) {
        let data = tcp(
            CLIENT_MAC, DIR0_MAC, CLIENT, port, VIP, 80, 64, "PA", b"GET /",
        );
        assert_eq!(
            lab.send(0, 0, &data, o).len(),
            1,
            "{fwd:?}: established {port} kept"
        );
    }
    assert!(counter(&lab, |c| c.evicted_tcp_half_open.get()) >= (CAP * 20) as u64);
    assert_eq!(lab.dropped(DropReason::ConnTableFull), 0);
    assert_eq!(lab.workers[0].conns().unconfirmed(), CAP - 21);

    // Right after the flood: the garbage had the short timeout.
    lab.now += (PRESSURE_HALF_OPEN_S as u64 + 1) * 1000;
    for _ in 0..4 {
        lab.poll_all();
    }
    assert_eq!(lab.workers[0].conns().len(), 21, "{fwd:?}: garbage expired");
    assert!(!lab.workers[0].conns().under_pressure());
    let d = lab.dests.iter().map(|d| d.active()).sum::<u32>();
    assert_eq!(d, 21, "ActiveConn counts only the established ones");
    let i = lab.dests.iter().map(|d| d.inactive()).sum::<u32>();
    assert_eq!(i, 0, "evicted entries released their servers");
}

/// The server's SYN-ACK to the legitimate client on `port` (NAT, FULLNAT).
fn server_answer_port(lab: &mut Lab, fwd: FwdMethod, forwarded: &[u8], port: u16) {
    match fwd {
        FwdMethod::Nat => {
            let rs = RS.iter().position(|r| *r == dst_ip_of(forwarded)).unwrap();
            let f = tcp(
                rs_mac(rs),
                DIR1_MAC,
                RS[rs],
                80,
                CLIENT,
                port,
                64,
                "SA",
                b"",
            );
            assert_eq!(lab.send(0, 1, &f, 0).len(), 1);
        }
        FwdMethod::FullNat => server_answer(lab, fwd, forwarded, "SA"),
        _ => {}
    }
}

#[test]
fn syn_flood_dr() {
    syn_flood_keeps_clients_in(FwdMethod::Dr);
}

#[test]
fn syn_flood_nat() {
    syn_flood_keeps_clients_in(FwdMethod::Nat);
}

#[test]
fn syn_flood_fullnat() {
    syn_flood_keeps_clients_in(FwdMethod::FullNat);
}

#[test]
fn syn_flood_tun() {
    syn_flood_keeps_clients_in(FwdMethod::Tun);
}

/// A table of nothing but established connections refuses new ones.
#[test]
fn established_connections_are_never_evicted() {
    let mut lab = Lab::with(Svc::new(FwdMethod::Dr), 1, 4, 1500);
    for p in 0..4u16 {
        let s = tcp(
            CLIENT_MAC,
            DIR0_MAC,
            CLIENT,
            40000 + p,
            VIP,
            80,
            64,
            "S",
            b"",
        );
        assert_eq!(lab.send(0, 0, &s, 1).len(), 1);
        let a = tcp(
            CLIENT_MAC,
            DIR0_MAC,
            CLIENT,
            40000 + p,
            VIP,
            80,
            64,
            "A",
            b"",
        );
        assert_eq!(lab.send(0, 0, &a, 1).len(), 1);
    }
    assert!(lab
        .send(0, 0, &syn_from([198, 18, 0, 99], 5555), 1)
        .is_empty());
    assert_eq!(lab.dropped(DropReason::ConnTableFull), 1);
    assert_eq!(counter(&lab, |c| c.evicted_tcp_half_open.get()), 0);
    for p in 0..4u16 {
        let d = tcp(
            CLIENT_MAC,
            DIR0_MAC,
            CLIENT,
            40000 + p,
            VIP,
            80,
            64,
            "PA",
            b"x",
        );
        assert_eq!(lab.send(0, 0, &d, 1).len(), 1);
    }
}

/// NAT under pressure: a spoofed SYN and a spoofed ACK do not make an
/// ESTABLISHED connection before the real server answered (secure TCP).
#[test]
fn secure_tcp_under_pressure_nat() {
    let mut lab = Lab::with(Svc::new(FwdMethod::Nat), 1, 8, 1500);
    for k in 0..8u32 {
        let (s, p) = spoofed(k);
        lab.send(0, 0, &syn_from(s, p), 1);
    }
    assert!(lab.workers[0].conns().under_pressure());
    let (s, p) = spoofed(7);
    let ack = tcp(CLIENT_MAC, DIR0_MAC, s, p, VIP, 80, 64, "A", b"");
    assert_eq!(lab.send(0, 0, &ack, 1).len(), 1, "still forwarded");
    assert_eq!(counter(&lab, |c| c.secure_tcp_held.get()), 1);
    assert_eq!(lab.workers[0].conns().unconfirmed(), 8);
    assert_eq!(lab.dests[0].active(), 0);
    // With the server's SYN-ACK seen, the client's ACK establishes.
    lab.send(0, 0, &client("S", b""), 1);
    let sa = tcp(rs_mac(0), DIR1_MAC, RS[0], 80, CLIENT, 40000, 64, "SA", b"");
    assert_eq!(lab.send(0, 1, &sa, 0).len(), 1);
    lab.send(0, 0, &client("A", b""), 1);
    assert_eq!(lab.dests[0].active(), 1);
}

fn udp_flood_keeps_clients_in(fwd: FwdMethod) {
    let mut svc = Svc::new(fwd);
    svc.proto = Proto::Udp;
    svc.vport = 53;
    svc.rport = 53;
    let mut lab = Lab::with(svc, 1, CAP, 1500);
    let req = |sport: u16| udp(CLIENT_MAC, DIR0_MAC, CLIENT, sport, VIP, 53, 64, b"q");
    // A flow that came back before the flood: confirmed.
    assert_eq!(lab.send(0, 0, &req(5000), 1).len(), 1);
    assert_eq!(lab.send(0, 0, &req(5000), 1).len(), 1);
    let mut k = 0u32;
    let mut flood = |lab: &mut Lab, n: usize| {
        for _ in 0..n {
            let (s, p) = spoofed(k);
            k += 1;
            let f = udp(CLIENT_MAC, DIR0_MAC, s, p, VIP, 53, 64, b"junk");
            let out = lab.send(0, 0, &f, 1);
            // NAT: the real server answers the spoofed source once.
            if fwd == FwdMethod::Nat && out.len() == 1 {
                let r = udp(rs_mac(0), DIR1_MAC, RS[0], 53, s, p, 64, b"a");
                lab.send(0, 1, &r, 0);
            }
        }
        lab.take(0, 0);
    };
    flood(&mut lab, CAP * 2);
    // New request/answer exchanges, and one more flow that comes back.
    for c in 0..20u16 {
        assert_eq!(
            lab.send(0, 0, &req(6000 + c), 1).len(),
            1,
            "{fwd:?}: request {c}"
        );
        if fwd == FwdMethod::Nat {
            let r = udp(rs_mac(0), DIR1_MAC, RS[0], 53, CLIENT, 6000 + c, 64, b"a");
            assert_eq!(lab.send(0, 1, &r, 0).len(), 1, "{fwd:?}: answer {c}");
        }
        flood(&mut lab, CAP / 2);
    }
    flood(&mut lab, CAP * 10);
    assert_eq!(lab.send(0, 0, &req(5000), 1).len(), 1);
    if fwd == FwdMethod::Nat {
        let r = udp(rs_mac(0), DIR1_MAC, RS[0], 53, CLIENT, 5000, 64, b"a");
        assert_eq!(lab.send(0, 1, &r, 0).len(), 1, "confirmed flow kept");
    }
    assert!(counter(&lab, |c| c.evicted_udp_unconfirmed.get()) >= (CAP * 10) as u64);
    assert_eq!(lab.dropped(DropReason::ConnTableFull), 0);
    lab.now += (PRESSURE_UDP_S as u64 + 1) * 1000;
    for _ in 0..4 {
        lab.poll_all();
    }
    assert_eq!(
        lab.workers[0].conns().len(),
        1,
        "{fwd:?}: only the confirmed flow left"
    );
}

#[test]
fn udp_flood_dr() {
    udp_flood_keeps_clients_in(FwdMethod::Dr);
}

#[test]
fn udp_flood_nat() {
    udp_flood_keeps_clients_in(FwdMethod::Nat);
}

/// A legitimate client whose half-open entry the flood evicted before its
/// ACK arrived gets its connection back, to the same server (and, in
/// FULLNAT, the same local port); a stray ACK without a ghost does not.
fn late_ack_revives(fwd: FwdMethod) {
    let mut svc = Svc::new(fwd);
    svc.weights = vec![1, 1, 1];
    let mut lab = Lab::with(svc, 1, CAP, 1500);
    let syn = tcp(CLIENT_MAC, DIR0_MAC, CLIENT, 40000, VIP, 80, 64, "S", b"");
    let first = lab.send(0, 0, &syn, 1);
    assert_eq!(first.len(), 1);
    server_answer_port(&mut lab, fwd, &first[0], 40000);
    // The flood pushes it out. (Its ghost is then replaced when four later
    // evictions land in its bucket of the ghost cache, which depends on the
    // table's random hash key: stop right after the eviction.)
    let c = client("A", b"");
    let present = |lab: &Lab| {
        let t = lab.workers[0].conns();
        t.lookup_in(&tuple_of(&c), t.hash(&tuple_of(&c))).is_some()
    };
    let mut k = 0u32;
    while present(&lab) {
        assert!(k < 4 * CAP as u32, "never evicted");
        let (s, p) = spoofed(k);
        k += 1;
        lab.send(0, 0, &syn_from(s, p), 1);
        lab.take(0, 0);
    }
    assert!(k > CAP as u32 / 2, "it lived ({k} flood SYNs)");
    let out = lab.send(0, 0, &client("PA", b"GET /"), 1);
    assert_eq!(out.len(), 1, "{fwd:?}: the late segment is forwarded");
    assert_eq!(
        out[0][0..6],
        first[0][0..6],
        "{fwd:?}: to the same next hop"
    );
    assert_eq!(
        dst_ip_of(&out[0]),
        dst_ip_of(&first[0]),
        "{fwd:?}: same server"
    );
    if fwd == FwdMethod::FullNat {
        assert_eq!(
            src_port_of(&out[0]),
            src_port_of(&first[0]),
            "same local port"
        );
    }
    assert_eq!(counter(&lab, |c| c.conns_revived.get()), 1);
    assert_eq!(
        lab.dests.iter().map(|d| d.active()).sum::<u32>(),
        1,
        "{fwd:?}: ESTABLISHED"
    );
    // A segment of a flow that never was: dropped.
    let stray = tcp(CLIENT_MAC, DIR0_MAC, CLIENT, 40001, VIP, 80, 64, "A", b"");
    assert!(lab.send(0, 0, &stray, 1).is_empty());
    assert_eq!(lab.dropped(DropReason::NoConnection), 1);
}

fn tuple_of(frame: &[u8]) -> ferrovs_dataplane::conn::Tuple {
    ferrovs_dataplane::conn::Tuple {
        proto: 6,
        saddr: src_ip_of(frame),
        sport: src_port_of(frame),
        daddr: dst_ip_of(frame),
        dport: dst_port_of(frame),
    }
}

#[test]
fn late_ack_revives_dr() {
    late_ack_revives(FwdMethod::Dr);
}

#[test]
fn late_ack_revives_nat() {
    late_ack_revives(FwdMethod::Nat);
}

#[test]
fn late_ack_revives_fullnat() {
    late_ack_revives(FwdMethod::FullNat);
}

/// Persistence through a flood: the evicted half-open connections release
/// their templates, and a client's template (and server) outlives them.
#[test]
fn persistence_survives_a_flood() {
    let mut svc = Svc::new(FwdMethod::Dr);
    svc.weights = vec![1, 1, 1];
    svc.persistence = Some(ferrovs_dataplane::service::Persistence {
        timeout_s: 360,
        netmask: std::net::Ipv4Addr::new(255, 255, 255, 255),
    });
    let mut lab = Lab::with(svc, 1, CAP, 1500);
    let first = lab.send(0, 0, &client("S", b""), 1);
    lab.send(0, 0, &client("A", b""), 1);
    // Every SYN from another address, as from random spoofed sources.
    for k in 0..(CAP * 10) as u32 {
        let s = [198, 19, (k / 250) as u8, (k % 250) as u8 + 1];
        lab.inject(0, 0, &syn_from(s, 1024 + k as u16));
        if k % 16 == 15 {
            lab.poll_all();
            lab.take(0, 0);
            lab.take(0, 1);
        }
    }
    lab.poll_all();
    lab.take(0, 1);
    assert!(counter(&lab, |c| c.evicted_tcp_half_open.get()) >= (CAP * 9) as u64);
    // New connections of the client go where its first one went.
    for p in 0..5u16 {
        let s = tcp(
            CLIENT_MAC,
            DIR0_MAC,
            CLIENT,
            41000 + p,
            VIP,
            80,
            64,
            "S",
            b"",
        );
        let out = lab.send(0, 0, &s, 1);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0][0..6], first[0][0..6], "persistence kept");
    }
    // The servers' connection counts are the table's: every evicted
    // connection was released.
    let held: u32 = lab.dests.iter().map(|d| d.inactive() + d.active()).sum();
    assert_eq!(held as usize, lab.workers[0].conns().len());
    // The templates the evicted SYNs created died with them: what is left
    // are the client's and those of the flood's entries still in the table
    // (at most one per spoofed address).
    let now_s = (lab.now / 1000) as u32;
    let live = lab.templates.iter(now_s).count();
    assert!(live <= CAP + 1, "{live} templates left");
    assert!(lab.templates.iter(now_s).any(|t| t.caddr == CLIENT));
    // The flood's entries left in the table time out (5 s under pressure);
    // those that do while the pressure lasts take their templates along.
    lab.now += 6_000;
    for _ in 0..4 {
        lab.poll_all();
    }
    let now_s = (lab.now / 1000) as u32;
    let after = lab.templates.iter(now_s).count();
    assert!(
        after + CAP / 8 - 1 <= live,
        "{live} templates, then {after}"
    );
    assert!(lab.templates.iter(now_s).any(|t| t.caddr == CLIENT));
}
