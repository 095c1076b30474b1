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

/// Records the workers installed.
fn installed<'a>(
    counters: impl IntoIterator<Item = &'a ferrovs_dataplane::counters::WorkerCounters>,
) -> u64 {
    counters.into_iter().map(|c| c.sync_installed.get()).sum()
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
    assert_eq!(installed(c.iter()), 1);
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

// ---- IPv6, NAT64 and TUN behind an IPv6 VIP ------------------------------

use common::lab6::{self, Lab6, Svc6, CLIENT6, LADDR4, LADDR6, RS4, RS6, VIP6};
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use ferrovs_dataplane::service::Persistence6;
use ferrovs_dataplane::sync::{SynSeq, SyncRecord6};
use std::net::IpAddr;

fn drain6(lab: &Lab6) -> Vec<SyncRecord6> {
    let mut v = Vec::new();
    for w in 0..lab.shared.sync.workers() {
        lab.shared.sync.drain(w, usize::MAX, |r| {
            v.push(*r.v6().expect("IPv6 records only"))
        });
    }
    v
}

/// A frame's (source, source port, destination, destination port), IPv4
/// or IPv6.
fn ends(f: &[u8]) -> (IpAddr, u16, IpAddr, u16) {
    let p = SlicedPacket::from_ethernet(f).expect("parses");
    let (s, d) = match &p.net {
        Some(NetSlice::Ipv4(ip)) => (
            IpAddr::from(ip.header().source()),
            IpAddr::from(ip.header().destination()),
        ),
        Some(NetSlice::Ipv6(ip)) => (
            IpAddr::from(ip.header().source()),
            IpAddr::from(ip.header().destination()),
        ),
        _ => panic!("not IP"),
    };
    let Some(TransportSlice::Tcp(t)) = &p.transport else {
        panic!("not TCP")
    };
    (s, t.source_port(), d, t.destination_port())
}

/// A TCP segment from `src` to `dst` (either family) with explicit
/// sequence numbers and window.
#[allow(clippy::too_many_arguments)]
fn seg(
    macs: (ferrovs_dataplane::wire::Mac, ferrovs_dataplane::wire::Mac),
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    seq: u32,
    ack: u32,
    flags: &str,
    window: u16,
    payload: &[u8],
) -> Vec<u8> {
    let e = PacketBuilder::ethernet2(macs.0, macs.1);
    let ip = match (src.0, dst.0) {
        (IpAddr::V4(s), IpAddr::V4(d)) => e.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => e.ipv6(s.octets(), d.octets(), 64),
        _ => panic!("mixed"),
    };
    let mut b = ip.tcp(src.1, dst.1, seq, window).ack(ack);
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('P') {
        b = b.psh();
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

fn svc6(fwd: FwdMethod, nat64: bool) -> Svc6 {
    let mut s = Svc6::new(fwd);
    s.nat64 = nat64;
    s.servers = 3;
    s
}

/// A client's IPv6 handshake and one data segment: the third inbound
/// packet, which a master sends. Returns the frames the servers' side saw.
fn client_flow6(lab: &mut Lab6, cport: u16, sees_replies: bool) -> Vec<Vec<u8>> {
    let c = |flags: &str, p: &[u8]| {
        lab6::tcp6(CLIENT_MAC, DIR0_MAC, CLIENT6, cport, VIP6, 80, 64, flags, p)
    };
    let mut out = lab.send(0, 0, &c("S", b""), 1);
    assert_eq!(out.len(), 1, "SYN forwarded");
    if sees_replies {
        let (s, sp, d, dp) = ends(&out[0]);
        let rs = match s {
            IpAddr::V4(_) => RS4.iter().position(|a| IpAddr::from(*a) == d),
            IpAddr::V6(_) => RS6.iter().position(|a| IpAddr::from(*a) == d),
        }
        .unwrap();
        let synack = seg(
            (rs_mac(rs), DIR1_MAC),
            (d, dp),
            (s, sp),
            7,
            1,
            "S",
            502,
            b"",
        );
        assert_eq!(lab.send(0, 1, &synack, 0).len(), 1, "SYN-ACK relayed");
    }
    out.extend(lab.send(0, 0, &c("A", b""), 1));
    out.extend(lab.send(0, 0, &c("A", b"x"), 1));
    out
}

/// An IPv6 connection recorded by a master is installed on a backup,
/// which forwards its next segment exactly as the master did (same
/// server, same rewrite, same local address and port) and relays the
/// server's reply.
fn failover6(fwd: FwdMethod, nat64: bool) {
    let replies = fwd.sees_replies();
    let mut m = Lab6::new(svc6(fwd, nat64), 1);
    m.shared.sync.set_master(true);
    // A first client takes the first server: ours gets the second, which
    // the backup's own scheduler would not pick.
    client_flow6(&mut m, 39999, replies);
    drain6(&m);
    let seen = client_flow6(&mut m, 40010, replies);
    let last_master = seen.last().unwrap().clone();
    let recs = drain6(&m);
    assert_eq!(recs.len(), 1, "{fwd:?} nat64={nat64}: {recs:?}");
    let r = recs[0];
    assert_eq!(
        (r.caddr, r.cport, r.vaddr, r.vport),
        (CLIENT6, 40010, VIP6, 80)
    );
    assert_eq!(r.state, TcpState::Established as u8);
    let server = if nat64 {
        std::net::Ipv4Addr::from(RS4[1]).to_ipv6_mapped().octets()
    } else {
        RS6[1]
    };
    assert_eq!(
        r.daddr, server,
        "{fwd:?}: the second server, mapped if IPv4"
    );
    if fwd == FwdMethod::FullNat {
        let la = if nat64 {
            std::net::Ipv4Addr::from(LADDR4).to_ipv6_mapped().octets()
        } else {
            LADDR6
        };
        assert_eq!(r.laddr, la);
        assert_ne!(r.lport, 0);
    }

    let mut b = Lab6::new(svc6(fwd, nat64), 1);
    let snap = b.shared.snapshot.load_full();
    assert_eq!(sync::owner(&snap, &Record::V6(r)), 0);
    assert!(b
        .shared
        .request_now(0, Request::SyncInstall(vec![Record::V6(r)])));
    b.poll_all();
    assert_eq!(installed(b.shared.counters.iter()), 1, "{fwd:?}");
    assert_eq!(b.workers[0].conns6().len(), 1);
    assert_eq!(b.workers[0].conns().len(), 0);

    let data = lab6::tcp6(
        CLIENT_MAC, DIR0_MAC, CLIENT6, 40010, VIP6, 80, 64, "A", b"x",
    );
    let out = b.send(0, 0, &data, 1);
    assert_eq!(out.len(), 1, "{fwd:?} nat64={nat64}: forwarded at once");
    if nat64 && fwd == FwdMethod::Tun {
        // IPv6 in IPv4: the outer header's identification (and so its
        // checksum) is the director's own.
        let blank = |f: &[u8]| {
            let mut f = f.to_vec();
            f[18..20].fill(0);
            f[24..26].fill(0);
            f
        };
        assert_eq!(blank(&out[0]), blank(&last_master));
        assert_eq!(out[0][23], 41, "IPv6 in IPv4");
    } else if nat64 {
        // The IPv4 header's identification is the director's own.
        assert_eq!(ends(&out[0]), ends(&last_master));
        assert_eq!(out[0][..6], last_master[..6]);
    } else {
        assert_eq!(out[0], last_master, "{fwd:?}: the master's very frame");
    }
    if replies {
        let (s, sp, d, dp) = ends(&out[0]);
        let back = b.send(
            0,
            1,
            &seg(
                (rs_mac(1), DIR1_MAC),
                (d, dp),
                (s, sp),
                8,
                2,
                "A",
                502,
                b"y",
            ),
            0,
        );
        assert_eq!(back.len(), 1, "{fwd:?}: reply relayed");
        assert_eq!(
            ends(&back[0]),
            (IpAddr::from(VIP6), 80, IpAddr::from(CLIENT6), 40010)
        );
    }
}

#[test]
fn ipv6_dr_flows_are_forwarded_at_once_after_failover() {
    failover6(FwdMethod::Dr, false);
}

#[test]
fn nat66_flows_are_forwarded_at_once_after_failover() {
    failover6(FwdMethod::Nat, false);
}

#[test]
fn fullnat66_flows_keep_their_local_port_after_failover() {
    failover6(FwdMethod::FullNat, false);
}

#[test]
fn tun6_flows_are_forwarded_at_once_after_failover() {
    failover6(FwdMethod::Tun, false);
}

#[test]
fn tun_to_an_ipv4_server_behind_an_ipv6_vip_survives_failover() {
    failover6(FwdMethod::Tun, true);
}

#[test]
fn nat64_flows_keep_their_ipv4_local_port_after_failover() {
    failover6(FwdMethod::FullNat, true);
}

/// IPv6 persistence: the template of the client's /64 rides with its
/// connection, and on the backup sends the prefix's new connections to
/// the same server.
#[test]
fn an_ipv6_template_rides_with_its_connection() {
    let mut svc = svc6(FwdMethod::Dr, false);
    svc.persistence = Some(Persistence6 {
        timeout_s: 300,
        prefix_len: 64,
    });
    let mut m = Lab6::new(svc.clone(), 1);
    m.shared.sync.set_master(true);
    client_flow6(&mut m, 40002, false);
    let r = drain6(&m);
    assert_eq!(r.len(), 2, "{r:?}");
    let t = r.iter().find(|r| r.template).unwrap();
    let mut prefix = CLIENT6;
    prefix[8..].fill(0);
    assert_eq!(t.caddr, prefix);
    assert_eq!((t.cport, t.vport, t.timeout_s), (0, 80, 300));
    let c = r.iter().find(|r| !r.template).unwrap();
    assert_eq!(t.daddr, c.daddr);

    let mut b = Lab6::new(svc, 1);
    assert!(b
        .shared
        .request_now(0, Request::SyncInstall(vec![Record::V6(*t)])));
    b.poll_all();
    for port in [50000, 50001, 50002] {
        let syn = lab6::tcp6(CLIENT_MAC, DIR0_MAC, CLIENT6, port, VIP6, 80, 64, "S", b"");
        let out = b.send(0, 0, &syn, 1);
        assert_eq!(out.len(), 1);
        let i = (0..3).find(|&i| rs_mac(i) == out[0][0..6]).unwrap();
        assert_eq!(RS6[i], t.daddr, "port {port}");
    }
}

/// With two workers, a synced IPv6 DR connection installed on the worker
/// its owner rule names is found from the other one.
#[test]
fn an_ipv6_segment_steered_to_another_worker_finds_its_synced_connection() {
    let mut m = Lab6::new(svc6(FwdMethod::Dr, false), 1);
    m.shared.sync.set_master(true);
    let seen = client_flow6(&mut m, 40030, false);
    let r = drain6(&m)[0];
    let mut b = Lab6::new(svc6(FwdMethod::Dr, false), 2);
    let snap = b.shared.snapshot.load_full();
    let owner = sync::owner(&snap, &Record::V6(r));
    assert!(b
        .shared
        .request_now(owner, Request::SyncInstall(vec![Record::V6(r)])));
    b.poll_all();
    let other = 1 - owner;
    let data = lab6::tcp6(
        CLIENT_MAC, DIR0_MAC, CLIENT6, 40030, VIP6, 80, 64, "A", b"x",
    );
    let out = b.send(other, 0, &data, 1);
    assert_eq!(out, vec![seen.last().unwrap().clone()]);
    assert_eq!(b.workers[other].conns6().len(), 0, "no second connection");
    let chained: u64 = b.shared.counters.iter().map(|c| c.sync_chained.get()).sum();
    assert_eq!(chained, 1);
}

// ---- SYN-proxied connections ---------------------------------------------

const ISN: u32 = 1000;
const RS_ISN: u32 = 5_000_000;

/// A SYN-proxied NAT connection, once its server answered, is sent with
/// its delta and the server's window scale; the backup installs it
/// translated: the client's acknowledgements reach the server in its
/// sequence space, the server's segments the client in the cookie's,
/// windows rescaled from the server's shift 9 to the announced 7.
#[test]
fn a_synproxied_connection_keeps_its_translation_after_failover() {
    let mut svc = Svc::new(FwdMethod::Nat);
    svc.synproxy = true;
    let mut m = Lab::new(svc.clone(), 1);
    m.shared.sync.set_master(true);
    let client = (IpAddr::from(CLIENT), 40000);
    let vip = (IpAddr::from(VIP), 80);
    let rs = (IpAddr::from(RS[0]), 80);
    let from_client = |seq, ack, flags: &str, p: &[u8]| {
        seg((CLIENT_MAC, DIR0_MAC), client, vip, seq, ack, flags, 502, p)
    };
    // The SYN with window scale 7, answered with a cookie.
    let mut syn = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, DIR0_MAC)
        .ipv4(CLIENT, VIP, 64)
        .tcp(40000, 80, ISN, 502)
        .syn()
        .options(&[etherparse::TcpOptionElement::WindowScale(7)])
        .unwrap()
        .write(&mut syn, b"")
        .unwrap();
    let out = m.send(0, 0, &syn, 0);
    let cookie = SlicedPacket::from_ethernet(&out[0])
        .map(|p| match p.transport {
            Some(TransportSlice::Tcp(t)) => t.sequence_number(),
            _ => panic!(),
        })
        .unwrap();
    assert_eq!(
        m.send(0, 0, &from_client(ISN + 1, cookie + 1, "A", b""), 1)
            .len(),
        1,
        "SYN to the server"
    );
    let mut synack = Vec::new();
    PacketBuilder::ethernet2(rs_mac(0), DIR1_MAC)
        .ipv4(RS[0], CLIENT, 64)
        .tcp(80, 40000, RS_ISN, 65160)
        .syn()
        .ack(ISN + 1)
        .options(&[etherparse::TcpOptionElement::WindowScale(9)])
        .unwrap()
        .write(&mut synack, b"")
        .unwrap();
    m.send(0, 1, &synack, 0);
    assert!(drain(&m).is_empty(), "not before the threshold packet");
    m.send(0, 0, &from_client(ISN + 1, cookie + 1, "A", b"a"), 1);
    m.send(0, 0, &from_client(ISN + 2, cookie + 1, "A", b"b"), 1);
    let recs = drain(&m);
    assert_eq!(recs.len(), 1, "{recs:?}");
    let r = recs[0];
    assert_eq!(
        r.synproxy,
        Some(SynSeq {
            delta: RS_ISN.wrapping_sub(cookie),
            ws: 9
        })
    );

    let mut b = Lab::new(svc, 1);
    assert!(b.shared.request_now(0, install(&[r])));
    b.poll_all();
    let (_, c) = b.workers[0].conns().iter().next().unwrap();
    assert!(c.synproxy_translated());
    assert_eq!(c.synproxy_ws(), 9);
    let out = b.send(0, 0, &from_client(ISN + 3, cookie + 11, "A", b"c"), 1);
    assert_eq!(out.len(), 1);
    assert_checksums(&out[0]);
    let p = SlicedPacket::from_ethernet(&out[0]).unwrap();
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!()
    };
    assert_eq!(ends(&out[0]), (client.0, client.1, rs.0, rs.1));
    assert_eq!(t.acknowledgment_number(), RS_ISN + 11, "server's space");
    let reply = seg(
        (rs_mac(0), DIR1_MAC),
        rs,
        client,
        RS_ISN + 11,
        ISN + 4,
        "P",
        100,
        b"ok",
    );
    let out = b.send(0, 1, &reply, 0);
    assert_eq!(out.len(), 1);
    assert_checksums(&out[0]);
    let p = SlicedPacket::from_ethernet(&out[0]).unwrap();
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!()
    };
    assert_eq!(ends(&out[0]), (vip.0, vip.1, client.0, client.1));
    assert_eq!(t.sequence_number(), cookie + 11, "client's space");
    assert_eq!(t.window_size(), 400, "100 << 9 >> 7");
}

/// The same on the IPv6 table, for a NAT64 connection installed from a
/// record: translated on both sides of the families.
#[test]
fn a_synproxied_nat64_connection_is_installed_translated() {
    let mut svc = svc6(FwdMethod::FullNat, true);
    svc.servers = 1;
    svc.synproxy = true;
    let mut b = Lab6::new(svc, 1);
    let cookie: u32 = 0x0100_0000;
    let server = std::net::Ipv4Addr::from(RS4[0]).to_ipv6_mapped().octets();
    let laddr = std::net::Ipv4Addr::from(LADDR4).to_ipv6_mapped().octets();
    let r = SyncRecord6 {
        proto: 6,
        state: TcpState::Established as u8,
        fwd: FwdMethod::FullNat,
        template: false,
        caddr: CLIENT6,
        cport: 40000,
        vaddr: VIP6,
        vport: 80,
        daddr: server,
        dport: 8080,
        laddr,
        lport: 2000,
        timeout_s: 900,
        synproxy: Some(SynSeq {
            delta: RS_ISN.wrapping_sub(cookie),
            ws: 9,
        }),
    };
    assert!(b
        .shared
        .request_now(0, Request::SyncInstall(vec![Record::V6(r)])));
    b.poll_all();
    assert_eq!(b.workers[0].conns6().len(), 1);
    let client = (IpAddr::from(CLIENT6), 40000);
    let vip = (IpAddr::from(VIP6), 80);
    let lside = (IpAddr::from(LADDR4), 2000);
    let rs = (IpAddr::from(RS4[0]), 8080);
    let out = b.send(
        0,
        0,
        &seg(
            (CLIENT_MAC, DIR0_MAC),
            client,
            vip,
            ISN + 1,
            cookie + 5,
            "A",
            502,
            b"q",
        ),
        1,
    );
    assert_eq!(out.len(), 1);
    assert_checksums(&out[0]);
    assert_eq!(ends(&out[0]), (lside.0, lside.1, rs.0, rs.1));
    let p = SlicedPacket::from_ethernet(&out[0]).unwrap();
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!()
    };
    assert_eq!(t.acknowledgment_number(), RS_ISN + 5);
    let out = b.send(
        0,
        1,
        &seg(
            (rs_mac(0), DIR1_MAC),
            rs,
            lside,
            RS_ISN + 5,
            ISN + 2,
            "P",
            100,
            b"r",
        ),
        0,
    );
    assert_eq!(out.len(), 1);
    lab6::assert_checksums6(&out[0]);
    assert_eq!(ends(&out[0]), (vip.0, vip.1, client.0, client.1));
    let p = SlicedPacket::from_ethernet(&out[0]).unwrap();
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!()
    };
    assert_eq!(t.sequence_number(), cookie + 5);
    assert_eq!(t.window_size(), 400);
}

// ---- Master and backup at once (active-active) ---------------------------

/// A director running both daemons (`--start-daemon master` and
/// `--start-daemon backup`, as two directors behind ECMP do) installs what
/// its peer sends without recording it again: nothing is echoed back to
/// the peer until the director forwards the flow itself, and then by the
/// same rules as its own connections (IPVS sends every connection its
/// master daemon sees packets of).
#[test]
fn installing_as_a_backup_records_nothing_while_master() {
    let mut peer = master(FwdMethod::Nat);
    client_flow(&mut peer, 40040, 1);
    let recs = drain(&peer);
    assert_eq!(recs.len(), 1);
    let mut both = master(FwdMethod::Nat);
    for _ in 0..3 {
        // The peer refreshes it (every 50 packets): still nothing back.
        assert!(both.shared.request_now(0, install(&recs)));
        both.poll_all();
        assert!(drain(&both).is_empty(), "an installed entry is not echoed");
    }
    assert_eq!(both.workers[0].conns().len(), 1);
    // Its own traffic: recorded at the third inbound packet it forwards.
    for n in 1..=3 {
        both.send(
            0,
            0,
            &tcp(CLIENT_MAC, DIR0_MAC, CLIENT, 40040, VIP, 80, 64, "A", b"x"),
            1,
        );
        assert_eq!(drain(&both).len(), usize::from(n == 3), "packet {n}");
    }
}

/// Active-active FULLNAT (issue 16): every director configures the local
/// addresses of all, holds its own in a server-side VRRP instance and
/// backs up the others'. A director allocates only on an address it
/// holds; it installs a flow synced from another with that director's
/// address, forwards it with it, and relays its replies once VRRP gives
/// it the address (its owner gone).
#[test]
fn fullnat_active_active_allocates_on_held_addresses_and_takes_over_the_others() {
    const LADDR_B: [u8; 4] = [198, 18, 1, 101];
    let mut svc_a = Svc::new(FwdMethod::FullNat);
    svc_a.weights = vec![1, 1, 1];
    svc_a.laddrs = vec![(LADDR, true), (LADDR_B, false)];
    let mut a = Lab::new(svc_a, 1);
    a.shared.sync.set_master(true);
    for cport in 41000..41020 {
        let out = client_flow(&mut a, cport, 1);
        assert_eq!(src_ip_of(&out[0]), LADDR, "only the held address");
    }
    let records = drain(&a);
    assert_eq!(records.len(), 20);
    assert!(records.iter().all(|r| r.laddr == LADDR));

    // Director B holds LADDR_B only; A's flows come to it by sync.
    let mut svc_b = Svc::new(FwdMethod::FullNat);
    svc_b.weights = vec![1, 1, 1];
    svc_b.laddrs = vec![(LADDR, false), (LADDR_B, true)];
    let mut b = Lab::new(svc_b.clone(), 1);
    assert!(b.shared.request_now(0, install(&records)));
    b.poll_all();
    assert_eq!(
        installed(b.shared.counters.iter()),
        20,
        "another director's local address is installed"
    );
    // B's own new connections use its own address.
    let own = client_flow(&mut b, 42000, 0);
    assert_eq!(src_ip_of(&own[0]), LADDR_B);

    // ECMP moves A's flow to B: forwarded with A's local address and port.
    let r = records[5];
    let out = b.send(
        0,
        0,
        &tcp(
            CLIENT_MAC, DIR0_MAC, CLIENT, r.cport, VIP, 80, 64, "A", b"x",
        ),
        1,
    );
    assert_eq!(out.len(), 1);
    assert_eq!((src_ip_of(&out[0]), src_port_of(&out[0])), (LADDR, r.lport));
    assert_eq!(dst_ip_of(&out[0]), r.daddr);
    let rs = (0..3).find(|&i| RS[i] == r.daddr).unwrap();
    let reply = tcp(
        rs_mac(rs),
        DIR1_MAC,
        r.daddr,
        r.dport,
        LADDR,
        r.lport,
        64,
        "A",
        b"y",
    );
    // While A holds LADDR, its replies are A's: B takes none.
    assert!(b.send(0, 1, &reply, 0).is_empty());
    assert_eq!(
        b.dropped(ferrovs_dataplane::counters::DropReason::VipInactive),
        1
    );

    // A is gone: B's instance for LADDR becomes master.
    svc_b.laddrs = vec![(LADDR, true), (LADDR_B, true)];
    b.republish(2, svc_b.clone());
    let back = b.send(0, 1, &reply, 0);
    assert_eq!(back.len(), 1, "the reply is relayed by the new holder");
    assert_eq!((src_ip_of(&back[0]), src_port_of(&back[0])), (VIP, 80));
    assert_eq!(
        (dst_ip_of(&back[0]), dst_port_of(&back[0])),
        (CLIENT, r.cport)
    );
    // Its new connections may now use both, never a port A's flows hold.
    let synced: std::collections::HashSet<(_, _)> =
        records.iter().map(|r| (r.laddr, r.lport)).collect();
    for cport in 43000..43040 {
        let out = client_flow(&mut b, cport, 0);
        assert!(!synced.contains(&(src_ip_of(&out[0]), src_port_of(&out[0]))));
    }

    // Holding no local address at all, a director makes no FULLNAT
    // connection: a counted drop, not a reply sent elsewhere.
    svc_b.laddrs = vec![(LADDR, false), (LADDR_B, false)];
    b.republish(3, svc_b);
    let out = b.send(
        0,
        0,
        &tcp(CLIENT_MAC, DIR0_MAC, CLIENT, 44000, VIP, 80, 64, "S", b""),
        1,
    );
    assert!(out.is_empty());
    assert_eq!(
        b.dropped(ferrovs_dataplane::counters::DropReason::LaddrExhausted),
        1
    );
}

/// A server removed from the backup's configuration drains there; a
/// connection the master still sends to it is installed and forwarded to
/// it (IPVS's backup installs it without the server), not refused.
#[test]
fn a_connection_to_a_server_that_drains_here_is_installed() {
    let mut m = master(FwdMethod::Dr);
    client_flow(&mut m, 39999, 1);
    drain(&m);
    client_flow(&mut m, 40030, 1);
    let records = drain(&m);
    assert_eq!(records[0].daddr, RS[1]);
    let mut svc = Svc::new(FwdMethod::Dr);
    svc.weights = vec![1, 1, 1];
    svc.draining = vec![1];
    let mut b = Lab::new(svc, 1);
    assert!(b.shared.request_now(0, install(&records)));
    b.poll_all();
    assert_eq!(installed(b.shared.counters.iter()), 1);
    let out = b.send(
        0,
        0,
        &tcp(CLIENT_MAC, DIR0_MAC, CLIENT, 40030, VIP, 80, 64, "A", b"x"),
        1,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0][..6], rs_mac(1)[..], "to the draining server");
}
