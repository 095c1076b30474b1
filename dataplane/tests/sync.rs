//! Connection sync between two directors' workers: what a master records
//! (IPVS's states and packet thresholds, templates with their connections,
//! a full ring counted), and a backup that installs the records and then
//! forwards the flows at once, to the same real server and, for FULLNAT,
//! the same local address and port.

mod common;
use common::*;
use ferrovs_dataplane::conn::TcpState;
use ferrovs_dataplane::service::{FwdMethod, Persistence};
use ferrovs_dataplane::sync::{self, Record, SyncRecord};
use ferrovs_dataplane::worker::Request;

/// The IPv4 records every worker made.
fn drain(lab: &Lab) -> Vec<SyncRecord> {
    let mut v = Vec::new();
    for w in 0..lab.shared.sync.workers() {
        lab.shared.sync.drain(w, usize::MAX, |r| {
            v.push(*r.v4().expect("IPv4 records only"))
        });
    }
    v
}

fn install(recs: &[SyncRecord]) -> Request {
    Request::SyncInstall(recs.iter().map(|&r| r.into()).collect())
}

/// A client's handshake and `data` data segments on port `cport`; returns
/// the frames that reached the server side.
fn client_flow(lab: &mut Lab, cport: u16, data: usize) -> Vec<Vec<u8>> {
    let mut out = lab.send(
        0,
        0,
        &tcp(CLIENT_MAC, DIR0_MAC, CLIENT, cport, VIP, 80, 64, "S", b""),
        1,
    );
    if lab.svc.fwd != FwdMethod::Dr {
        // The server's SYN-ACK, so that NAT and FULLNAT reach ESTABLISHED.
        let syn = &out[0];
        let (s, sp) = (src_ip_of(syn), src_port_of(syn));
        let (d, dp) = (dst_ip_of(syn), dst_port_of(syn));
        lab.send(
            0,
            1,
            &tcp(rs_mac(0), DIR1_MAC, d, dp, s, sp, 64, "SA", b""),
            0,
        );
    }
    out.extend(lab.send(
        0,
        0,
        &tcp(CLIENT_MAC, DIR0_MAC, CLIENT, cport, VIP, 80, 64, "A", b""),
        1,
    ));
    for _ in 0..data {
        out.extend(lab.send(
            0,
            0,
            &tcp(CLIENT_MAC, DIR0_MAC, CLIENT, cport, VIP, 80, 64, "A", b"x"),
            1,
        ));
    }
    out
}

fn master(fwd: FwdMethod) -> Lab {
    let mut svc = Svc::new(fwd);
    svc.weights = vec![1, 1, 1];
    let lab = Lab::new(svc, 1);
    lab.shared.sync.set_master(true);
    lab
}

#[test]
fn half_open_connections_are_not_sent_established_ones_at_the_third_packet() {
    let mut m = master(FwdMethod::Dr);
    m.send(
        0,
        0,
        &tcp(CLIENT_MAC, DIR0_MAC, CLIENT, 40000, VIP, 80, 64, "S", b""),
        1,
    );
    assert!(drain(&m).is_empty(), "SYN_RECV is not synchronised");
    m.send(
        0,
        0,
        &tcp(CLIENT_MAC, DIR0_MAC, CLIENT, 40000, VIP, 80, 64, "A", b""),
        1,
    );
    assert!(drain(&m).is_empty(), "ESTABLISHED waits for packet 3");
    m.send(
        0,
        0,
        &tcp(CLIENT_MAC, DIR0_MAC, CLIENT, 40000, VIP, 80, 64, "A", b"x"),
        1,
    );
    let r = drain(&m);
    assert_eq!(r.len(), 1);
    let r = r[0];
    assert_eq!(r.state, TcpState::Established as u8);
    assert_eq!(
        (r.caddr, r.cport, r.vaddr, r.vport),
        (CLIENT, 40000, VIP, 80)
    );
    assert_eq!(r.fwd, FwdMethod::Dr);
    assert_eq!(r.timeout_s, 900);
    assert!(!r.template);
    // Then every 50 packets: 49 more send nothing, the 50th sends.
    for _ in 0..49 {
        m.send(
            0,
            0,
            &tcp(CLIENT_MAC, DIR0_MAC, CLIENT, 40000, VIP, 80, 64, "A", b"x"),
            1,
        );
    }
    assert!(drain(&m).is_empty());
    m.send(
        0,
        0,
        &tcp(CLIENT_MAC, DIR0_MAC, CLIENT, 40000, VIP, 80, 64, "A", b"x"),
        1,
    );
    assert_eq!(drain(&m).len(), 1);
    // A FIN moves it to FIN_WAIT, sent at once.
    m.send(
        0,
        0,
        &tcp(CLIENT_MAC, DIR0_MAC, CLIENT, 40000, VIP, 80, 64, "FA", b""),
        1,
    );
    let r = drain(&m);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].state, TcpState::FinWait as u8);
    let c = &m.shared.counters;
    assert_eq!(c.iter().map(|c| c.sync_recorded.get()).sum::<u64>(), 3);
}

#[test]
fn nothing_is_recorded_unless_master() {
    let mut m = master(FwdMethod::Dr);
    m.shared.sync.set_master(false);
    client_flow(&mut m, 40001, 5);
    assert!(drain(&m).is_empty());
}

#[test]
fn a_template_rides_with_its_connection() {
    let mut svc = Svc::new(FwdMethod::Dr);
    svc.weights = vec![1, 1, 1];
    svc.persistence = Some(Persistence {
        timeout_s: 300,
        netmask: "255.255.255.0".parse().unwrap(),
    });
    let mut m = Lab::new(svc.clone(), 1);
    m.shared.sync.set_master(true);
    client_flow(&mut m, 40002, 1);
    let r = drain(&m);
    assert_eq!(r.len(), 2, "{r:?}");
    let t = r.iter().find(|r| r.template).unwrap();
    assert_eq!(t.caddr, [198, 18, 0, 0]);
    assert_eq!((t.cport, t.vport, t.timeout_s), (0, 80, 300));
    let c = r.iter().find(|r| !r.template).unwrap();
    assert_eq!(t.daddr, c.daddr);

    // The backup takes the template: a new connection of the client's
    // network goes to the same server, though rr would pick the next.
    let mut b = Lab::new(svc, 1);
    assert!(b.shared.request_now(0, install(&[*t])));
    b.poll_all();
    for port in [50000, 50001, 50002] {
        let out = b.send(
            0,
            0,
            &tcp(CLIENT_MAC, DIR0_MAC, CLIENT, port, VIP, 80, 64, "S", b""),
            1,
        );
        assert_eq!(out.len(), 1);
        let i = (0..3).find(|&i| rs_mac(i) == out[0][0..6]).unwrap();
        assert_eq!(RS[i], t.daddr, "port {port}");
    }
}

#[test]
fn a_full_ring_is_counted() {
    let mut m = master(FwdMethod::Dr);
    let filler = SyncRecord {
        proto: 6,
        state: 1,
        fwd: FwdMethod::Dr,
        template: false,
        caddr: CLIENT,
        cport: 1,
        vaddr: VIP,
        vport: 80,
        daddr: RS[0],
        dport: 80,
        laddr: [0; 4],
        lport: 0,
        timeout_s: 900,
        synproxy: None,
    };
    while m.shared.sync.push(0, filler) {}
    client_flow(&mut m, 40003, 1);
    let c = &m.shared.counters;
    assert_eq!(c.iter().map(|c| c.sync_ring_full.get()).sum::<u64>(), 1);
}

/// The master's connection, installed on a backup, is forwarded by it at
/// once: same server, same rewrite.
fn failover(fwd: FwdMethod) {
    let mut m = master(fwd);
    // A first client takes the first server: ours gets the second, which
    // the backup's own scheduler would not pick for a new connection.
    client_flow(&mut m, 39999, 1);
    drain(&m);
    let seen = client_flow(&mut m, 40010, 1);
    let last_master = seen.last().unwrap().clone();
    let records = drain(&m);
    assert_eq!(records.len(), 1, "{records:?}");
    let r = records[0];
    if fwd == FwdMethod::FullNat {
        assert_eq!(r.laddr, LADDR);
        assert_ne!(r.lport, 0);
    }

    let mut svc = Svc::new(fwd);
    svc.weights = vec![1, 1, 1];
    let mut b = Lab::new(svc, 1);
    assert_eq!(r.daddr, RS[1]);
    let snap = b.shared.snapshot.load_full();
    assert_eq!(sync::owner(&snap, &Record::V4(r)), 0);
    assert!(b.shared.request_now(0, install(&records)));
    b.poll_all();
    let c = &b.shared.counters;
    assert_eq!(c.iter().map(|c| c.sync_installed.get()).sum::<u64>(), 1);
    assert_eq!(b.workers[0].conns().len(), 1);
    let d = b
        .dests
        .iter()
        .find(|d| d.active() == 1)
        .expect("counted active");
    assert_eq!(d.inactive(), 0);

    // A data segment (no SYN) is forwarded exactly as the master did.
    let out = b.send(
        0,
        0,
        &tcp(CLIENT_MAC, DIR0_MAC, CLIENT, 40010, VIP, 80, 64, "A", b"x"),
        1,
    );
    assert_eq!(out.len(), 1, "{fwd:?}: forwarded at once");
    assert_eq!(out[0][..6], last_master[..6], "same server MAC");
    assert_eq!(dst_ip_of(&out[0]), dst_ip_of(&last_master));
    assert_eq!(src_ip_of(&out[0]), src_ip_of(&last_master));
    assert_eq!(src_port_of(&out[0]), src_port_of(&last_master));
    assert_eq!(dst_port_of(&out[0]), dst_port_of(&last_master));

    if fwd.sees_replies() {
        // The server's reply finds its connection too.
        let (s, sp) = (dst_ip_of(&out[0]), dst_port_of(&out[0]));
        let (d, dp) = (src_ip_of(&out[0]), src_port_of(&out[0]));
        let rs = (0..3).find(|&i| RS[i] == s).unwrap();
        let back = b.send(
            0,
            1,
            &tcp(rs_mac(rs), DIR1_MAC, s, sp, d, dp, 64, "A", b"y"),
            0,
        );
        assert_eq!(back.len(), 1, "{fwd:?}: reply relayed");
        assert_eq!((src_ip_of(&back[0]), src_port_of(&back[0])), (VIP, 80));
        assert_eq!(
            (dst_ip_of(&back[0]), dst_port_of(&back[0])),
            (CLIENT, 40010)
        );
    }
}

#[test]
fn dr_flows_are_forwarded_at_once_after_failover() {
    failover(FwdMethod::Dr);
}

#[test]
fn nat_flows_are_forwarded_at_once_after_failover() {
    failover(FwdMethod::Nat);
}

#[test]
fn fullnat_flows_keep_their_local_port_after_failover() {
    failover(FwdMethod::FullNat);
}

#[test]
fn an_update_moves_the_state_and_a_stranger_is_refused() {
    let mut m = master(FwdMethod::Nat);
    client_flow(&mut m, 40020, 1);
    let mut r = drain(&m)[0];
    let mut b = Lab::new(m.svc.clone(), 1);
    b.shared.request_now(0, install(&[r]));
    b.poll_all();
    r.state = TcpState::FinWait as u8;
    r.timeout_s = 120;
    let mut stranger = r;
    stranger.vport = 81;
    b.shared.request_now(0, install(&[r, stranger]));
    b.poll_all();
    assert_eq!(b.workers[0].conns().len(), 1);
    let (_, c) = b.workers[0].conns().iter().next().unwrap();
    assert_eq!(c.state & 0x0f, TcpState::FinWait as u8);
    assert!(!c.is_active());
    assert_eq!(b.dests.iter().map(|d| d.inactive()).sum::<u32>(), 1);
    assert_eq!(b.dests.iter().map(|d| d.active()).sum::<u32>(), 0);
    let c = &b.shared.counters;
    assert_eq!(c.iter().map(|c| c.sync_refused.get()).sum::<u64>(), 1);
}

/// With two workers, a synced DR or FULLNAT connection lives on the worker
/// its owner rule names; a segment that the receive steering puts on the
/// other one finds it by looking round the workers.
fn steered_elsewhere(fwd: FwdMethod) {
    let mut m = master(fwd);
    let seen = client_flow(&mut m, 40030, 1);
    let last_master = seen.last().unwrap().clone();
    let records = drain(&m);
    let r = records[0];
    let mut svc = Svc::new(fwd);
    svc.weights = vec![1, 1, 1];
    let mut b = Lab::new(svc, 2);
    let snap = b.shared.snapshot.load_full();
    let owner = sync::owner(&snap, &Record::V4(r));
    assert!(b.shared.request_now(owner, install(&records)));
    b.poll_all();
    assert_eq!(b.workers[owner].conns().len(), 1);
    let other = 1 - owner;
    let out = b.send(
        other,
        0,
        &tcp(CLIENT_MAC, DIR0_MAC, CLIENT, 40030, VIP, 80, 64, "A", b"x"),
        1,
    );
    assert_eq!(out.len(), 1, "{fwd:?}: found on the other worker");
    assert_eq!(out[0][..6], last_master[..6]);
    assert_eq!(src_port_of(&out[0]), src_port_of(&last_master));
    assert_eq!(b.workers[other].conns().len(), 0, "no second connection");
    let c = &b.shared.counters;
    assert_eq!(c.iter().map(|c| c.sync_chained.get()).sum::<u64>(), 1);
}

#[test]
fn a_dr_segment_steered_to_another_worker_finds_its_synced_connection() {
    steered_elsewhere(FwdMethod::Dr);
}

#[test]
fn a_fullnat_segment_steered_to_another_worker_finds_its_synced_connection() {
    steered_elsewhere(FwdMethod::FullNat);
}
