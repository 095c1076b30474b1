//! `sloppy_tcp` (IPVS's `net.ipv4.vs.sloppy_tcp`): behind ECMP, a flow
//! started on one director may continue on another when the router's
//! director set changes. The other director has no connection for it; with
//! sloppy TCP it makes one for the mid-flow segment, and with `mh` (the
//! same Maglev table on every director, IPVS's fixed hash keys) it picks
//! the real server the first director picked.

mod common;
use common::*;
use ferrovs_dataplane::conn::TcpState;
use ferrovs_dataplane::counters::DropReason;
use ferrovs_dataplane::sched::SchedKind;
use ferrovs_dataplane::service::FwdMethod;

fn svc(fwd: FwdMethod, sloppy: bool) -> Svc {
    let mut s = Svc::new(fwd);
    s.sched = SchedKind::Mh;
    s.weights = vec![1, 1, 1];
    s.sloppy = sloppy;
    s
}

fn seg(sport: u16, flags: &str, payload: &[u8]) -> Vec<u8> {
    tcp(
        CLIENT_MAC, DIR0_MAC, CLIENT, sport, VIP, 80, 64, flags, payload,
    )
}

fn picked_up(lab: &Lab) -> u64 {
    lab.shared
        .counters
        .iter()
        .map(|c| c.conns_picked_up.get())
        .sum()
}

/// Director A sees the handshake; director B, same configuration, gets the
/// flow's later segments and sends them to the same real server.
fn flow_moves_to_another_director(fwd: FwdMethod) {
    let mut a = Lab::new(svc(fwd, true), 1);
    let mut b = Lab::new(svc(fwd, true), 1);
    for sport in 40000..40040u16 {
        let first = a.send(0, 0, &seg(sport, "S", b""), 1);
        assert_eq!(first.len(), 1, "{fwd:?}: SYN forwarded by A");
        let later = b.send(0, 0, &seg(sport, "A", b"GET / HTTP/1.1\r\n\r\n"), 1);
        assert_eq!(later.len(), 1, "{fwd:?}: mid-flow segment forwarded by B");
        assert_checksums(&later[0]);
        // The same real server: DR rewrites the MAC, NAT the address, TUN
        // the outer destination.
        match fwd {
            FwdMethod::Dr => assert_eq!(later[0][..6], first[0][..6], "{fwd:?} sport {sport}"),
            _ => assert_eq!(
                dst_ip_of(&later[0]),
                dst_ip_of(&first[0]),
                "{fwd:?} sport {sport}"
            ),
        }
        // And B keeps it: the next segment finds the connection.
        assert_eq!(b.send(0, 0, &seg(sport, "A", b"x"), 1).len(), 1);
    }
    assert_eq!(picked_up(&b), 40, "{fwd:?}");
    assert_eq!(picked_up(&a), 0, "{fwd:?}");
    // Picked up half-open, confirmed by the next segment.
    let t = b.workers[0].conns();
    assert_eq!(t.len(), 40);
    assert!(
        t.iter()
            .all(|(_, c)| c.state & 0x0f == TcpState::Established as u8),
        "{fwd:?}"
    );
}

#[test]
fn dr_flow_moves_to_another_director() {
    flow_moves_to_another_director(FwdMethod::Dr);
}

#[test]
fn tun_flow_moves_to_another_director() {
    flow_moves_to_another_director(FwdMethod::Tun);
}

#[test]
fn nat_flow_moves_to_another_director() {
    flow_moves_to_another_director(FwdMethod::Nat);
}

/// Without sloppy TCP a mid-flow segment of an unknown flow is dropped, as
/// IPVS drops it; with it, a RST never makes a connection, and FULLNAT
/// (whose server would see a new local port) never picks up.
#[test]
fn what_is_not_picked_up() {
    let mut off = Lab::new(svc(FwdMethod::Dr, false), 1);
    assert!(off.send(0, 0, &seg(41000, "A", b"x"), 1).is_empty());
    assert_eq!(off.dropped(DropReason::NoConnection), 1);
    assert_eq!(picked_up(&off), 0);

    let mut on = Lab::new(svc(FwdMethod::Dr, true), 1);
    assert!(on.send(0, 0, &seg(41001, "R", b""), 1).is_empty());
    assert!(on.send(0, 0, &seg(41002, "RA", b""), 1).is_empty());
    assert_eq!(on.dropped(DropReason::NoConnection), 2);

    let mut full = Lab::new(svc(FwdMethod::FullNat, true), 1);
    assert!(full.send(0, 0, &seg(41003, "A", b"x"), 1).is_empty());
    assert_eq!(full.dropped(DropReason::NoConnection), 1);
    assert_eq!(picked_up(&on) + picked_up(&full), 0);
}

/// A flood of spoofed mid-flow segments fills the table with picked-up
/// entries, which are half-open and evicted first: an established
/// connection keeps its place and a new client still gets in.
#[test]
fn spoofed_ack_flood_evicts_only_picked_up_entries() {
    let mut lab = Lab::with(svc(FwdMethod::Dr, true), 1, 64, 1500);
    // An established connection.
    assert_eq!(lab.send(0, 0, &seg(42000, "S", b""), 1).len(), 1);
    assert_eq!(lab.send(0, 0, &seg(42000, "A", b""), 1).len(), 1);
    for k in 0..500u32 {
        let src = [198, 18, 0, 30 + (k % 200) as u8];
        let f = tcp(
            CLIENT_MAC,
            DIR0_MAC,
            src,
            1024 + k as u16,
            VIP,
            80,
            64,
            "A",
            b"",
        );
        lab.inject(0, 0, &f);
        if k % 16 == 15 {
            lab.poll_all();
            lab.take(0, 1);
        }
    }
    lab.poll_all();
    lab.take(0, 1);
    assert_eq!(lab.dropped(DropReason::ConnTableFull), 0);
    let drops: Vec<_> = DropReason::ALL
        .iter()
        .map(|&r| (r, lab.dropped(r)))
        .filter(|(_, n)| *n > 0)
        .collect();
    // A few sources are addresses of the director itself (dropped).
    assert!(picked_up(&lab) >= 490, "{} {drops:?}", picked_up(&lab));
    // The established connection is still there, and a new client gets in.
    let est = lab.workers[0]
        .conns()
        .iter()
        .filter(|(_, c)| c.cport == 42000 && c.state == TcpState::Established as u8)
        .count();
    assert_eq!(est, 1);
    assert_eq!(lab.send(0, 0, &seg(42001, "S", b""), 1).len(), 1);
}
