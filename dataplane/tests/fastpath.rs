//! The worker's side of the XDP fast path (`fastpath`), against the memory
//! port's stand-in flow map and a fake clock: what it offloads and when,
//! what takes a flow back, and how its timers treat flows the program
//! forwards.

mod common;

use common::*;
use ferrovs_dataplane::conn::Tuple;
use ferrovs_dataplane::fastpath::{FlowKey, FlowValue};
use ferrovs_dataplane::port::memory::MemFlowMap;
use ferrovs_dataplane::port::memory::MemPort;
use ferrovs_dataplane::service::{FwdMethod, Proto};
use ferrovs_dataplane::worker::Worker;

const CPORT: u16 = 40000;

fn lab(proto: Proto) -> Lab {
    let mut svc = Svc::new(FwdMethod::Dr);
    svc.proto = proto;
    let mut lab = Lab::new(svc, 1);
    lab.workers[0].ports_mut()[0].flows = Some(MemFlowMap::new(1024));
    lab
}

fn map(lab: &mut Lab) -> &mut MemFlowMap {
    lab.workers[0].ports_mut()[0].flows.as_mut().unwrap()
}

fn key(proto: u8, cport: u16) -> FlowKey {
    FlowKey::of(&Tuple {
        proto,
        saddr: CLIENT,
        sport: cport,
        daddr: VIP,
        dport: 80,
    })
}

fn seg(flags: &str) -> Vec<u8> {
    tcp(CLIENT_MAC, DIR0_MAC, CLIENT, CPORT, VIP, 80, 64, flags, b"")
}

fn dgram(cport: u16) -> Vec<u8> {
    udp(CLIENT_MAC, DIR0_MAC, CLIENT, cport, VIP, 80, 64, b"x")
}

fn conns(w: &Worker<MemPort>) -> usize {
    w.conns().len()
}

#[test]
fn tcp_is_offloaded_once_established_and_taken_back_on_fin() {
    let mut lab = lab(Proto::Tcp);
    let k = key(6, CPORT);
    assert_eq!(lab.send(0, 0, &seg("S"), 1).len(), 1);
    assert!(map(&mut lab).entries.is_empty(), "SYN_RECV: not offloaded");
    // The handshake's ACK establishes it: offered to the map, flushed when
    // the worker goes idle (poll_all's second round), and still forwarded
    // by the worker meanwhile.
    assert_eq!(lab.send(0, 0, &seg("A"), 1).len(), 1);
    let v = *map(&mut lab)
        .entries
        .get(&k)
        .expect("established: in the flow map");
    assert_eq!(
        v,
        FlowValue {
            dmac: rs_mac(0),
            smac: DIR1_MAC,
            ifindex: ferrovs_dataplane::port::Port::ifindex(&lab.workers[0].ports_mut()[1]),
            dest_id: 1,
            flags: 0,
            last_seen: 0,
        }
    );
    assert_eq!(lab.workers[0].fast_path().offloaded, 1);
    // More segments reaching the worker (an entry not written yet) do not
    // offer it again.
    assert_eq!(lab.send(0, 0, &seg("A"), 1).len(), 1);
    assert_eq!(lab.workers[0].fast_path().offloaded, 1);
    // The program leaves FIN to the worker, which forwards it, follows the
    // state machine and removes the entry.
    assert_eq!(lab.send(0, 0, &seg("FA"), 1).len(), 1);
    assert!(map(&mut lab).entries.is_empty(), "FIN: entry removed");
    assert_eq!(lab.workers[0].fast_path().removed, 1);
    assert_eq!(conns(&lab.workers[0]), 1, "the connection stays (FIN_WAIT)");
    // And an ACK in FIN_WAIT is not offloaded again.
    lab.send(0, 0, &seg("A"), 1);
    assert!(map(&mut lab).entries.is_empty());
}

#[test]
fn rst_takes_the_flow_back_too() {
    let mut lab = lab(Proto::Tcp);
    lab.send(0, 0, &seg("S"), 1);
    lab.send(0, 0, &seg("A"), 1);
    assert_eq!(map(&mut lab).entries.len(), 1);
    lab.send(0, 0, &seg("R"), 1);
    assert!(map(&mut lab).entries.is_empty());
}

#[test]
fn udp_is_offloaded_when_confirmed_not_on_its_first_datagram() {
    let mut lab = lab(Proto::Udp);
    lab.send(0, 0, &dgram(CPORT), 1);
    assert!(
        map(&mut lab).entries.is_empty(),
        "one datagram: maybe spoofed"
    );
    lab.send(0, 0, &dgram(CPORT), 1);
    assert!(map(&mut lab).entries.contains_key(&key(17, CPORT)));
}

#[test]
fn timer_keeps_a_flow_the_program_forwards_and_expires_an_idle_one() {
    let mut lab = lab(Proto::Udp);
    for p in [CPORT, CPORT + 1] {
        lab.send(0, 0, &dgram(p), 1);
        lab.send(0, 0, &dgram(p), 1);
    }
    assert_eq!(map(&mut lab).entries.len(), 2);
    // 300 s (the UDP timeout) later, with no packet through the worker: the
    // program forwarded CPORT's last packet 5 s ago and CPORT+1's never.
    lab.now += 301_000;
    map(&mut lab).idle.insert(key(17, CPORT), 5_000);
    lab.poll_all();
    assert_eq!(conns(&lab.workers[0]), 1, "the idle flow expired");
    assert!(map(&mut lab).entries.contains_key(&key(17, CPORT)));
    assert!(
        !map(&mut lab).entries.contains_key(&key(17, CPORT + 1)),
        "its entry went with it"
    );
    assert_eq!(lab.workers[0].fast_path().kept, 1);
    // It was re-armed for what was left of its timeout (295 s): still there
    // at 290 s, gone after 296 s if the program forwarded nothing more.
    map(&mut lab).idle.insert(key(17, CPORT), 301_000);
    lab.now += 290_000;
    lab.poll_all();
    assert_eq!(conns(&lab.workers[0]), 1);
    lab.now += 6_000;
    lab.poll_all();
    assert_eq!(conns(&lab.workers[0]), 0);
    assert!(map(&mut lab).entries.is_empty());
}

#[test]
fn a_real_server_mac_change_takes_its_flows_back() {
    let mut lab = lab(Proto::Udp);
    lab.send(0, 0, &dgram(CPORT), 1);
    lab.send(0, 0, &dgram(CPORT), 1);
    assert_eq!(map(&mut lab).entries.len(), 1);
    // The real server's MAC changes (after the neighbour lock time).
    lab.now += 2_000;
    let new_mac = [0x02, 0, 0, 0, 9, 9];
    lab.inject(0, 1, &arp_reply(new_mac, RS[0], DIR1_MAC, DIR1_IP));
    lab.poll_all();
    assert!(
        map(&mut lab).entries.is_empty(),
        "an entry with the old MAC would send the flow nowhere"
    );
    // The flow's next datagram goes through the worker, which offers it
    // again with the new MAC.
    let out = lab.send(0, 0, &dgram(CPORT), 1);
    assert_eq!(&out[0][0..6], &new_mac);
    let v = map(&mut lab).entries[&key(17, CPORT)];
    assert_eq!(v.dmac, new_mac);
}

#[test]
fn counts_of_the_program_reach_the_server_and_service_counters() {
    let mut lab = lab(Proto::Udp);
    lab.send(0, 0, &dgram(CPORT), 1);
    lab.send(0, 0, &dgram(CPORT), 1);
    let before = lab.dests[0]
        .stats
        .iter()
        .map(|s| s.inpkts.get())
        .sum::<u64>();
    assert_eq!(before, 2);
    map(&mut lab).dest_totals.insert(1, (1000, 64_000));
    lab.now += 1_100;
    lab.poll_all();
    assert_eq!(
        lab.dests[0]
            .stats
            .iter()
            .map(|s| s.inpkts.get())
            .sum::<u64>(),
        1002
    );
    assert_eq!(
        lab.svc_shared
            .stats
            .iter()
            .map(|s| s.inpkts.get())
            .sum::<u64>(),
        1002
    );
    // Only the difference is credited at the next harvest.
    map(&mut lab).dest_totals.insert(1, (1500, 96_000));
    lab.now += 1_100;
    lab.poll_all();
    assert_eq!(
        lab.dests[0]
            .stats
            .iter()
            .map(|s| s.inpkts.get())
            .sum::<u64>(),
        1502
    );
}

#[test]
fn a_full_map_leaves_flows_with_the_worker() {
    let mut lab = lab(Proto::Udp);
    map(&mut lab).capacity = 1;
    for p in [CPORT, CPORT + 1] {
        lab.send(0, 0, &dgram(p), 1);
        assert_eq!(lab.send(0, 0, &dgram(p), 1).len(), 1);
    }
    assert_eq!(map(&mut lab).entries.len(), 1);
    assert_eq!(lab.workers[0].fast_path().refused, 1);
    // The refused one is still forwarded by the worker.
    assert_eq!(lab.send(0, 0, &dgram(CPORT + 1), 1).len(), 1);
}

#[test]
fn no_flow_map_no_offload() {
    let mut svc = Svc::new(FwdMethod::Dr);
    svc.proto = Proto::Udp;
    let mut lab = Lab::new(svc, 1);
    lab.send(0, 0, &dgram(CPORT), 1);
    lab.send(0, 0, &dgram(CPORT), 1);
    assert_eq!(lab.workers[0].fast_path().offloaded, 0);
}

#[test]
fn nat_is_never_offloaded() {
    let mut svc = Svc::new(FwdMethod::Nat);
    svc.proto = Proto::Udp;
    let mut lab = Lab::new(svc, 1);
    lab.workers[0].ports_mut()[0].flows = Some(MemFlowMap::new(16));
    lab.send(0, 0, &dgram(CPORT), 1);
    lab.send(0, 0, &dgram(CPORT), 1);
    assert_eq!(lab.workers[0].fast_path().offloaded, 0);
}

#[test]
fn the_next_hop_of_offloaded_flows_is_kept_fresh() {
    // The worker sends nothing to a server whose flows the program
    // forwards: it must still refresh the server's MAC as its own traffic
    // would (an ARP probe once the entry is stale), or the entry would be
    // forgotten and every flow to that server taken back.
    let mut lab = lab(Proto::Udp);
    lab.send(0, 0, &dgram(CPORT), 1);
    lab.send(0, 0, &dgram(CPORT), 1);
    assert_eq!(map(&mut lab).entries.len(), 1);
    lab.take(0, 1);
    // Past REACHABLE_MS (300 s), the program still forwarding the flow.
    let mut probed = false;
    for _ in 0..31 {
        lab.now += 10_000;
        map(&mut lab).idle.insert(key(17, CPORT), 1_000);
        lab.poll_all();
        probed |= lab
            .take(0, 1)
            .iter()
            .any(|f| f[12..14] == [0x08, 0x06] && f[38..42] == RS[0]);
    }
    assert!(probed, "an ARP request for the real server");
    // Answered: the entry stays, and so does the offload.
    lab.inject(0, 1, &arp_reply(rs_mac(0), RS[0], DIR1_MAC, DIR1_IP));
    for _ in 0..10 {
        lab.now += 10_000;
        map(&mut lab).idle.insert(key(17, CPORT), 1_000);
        lab.poll_all();
    }
    assert_eq!(map(&mut lab).entries.len(), 1);
    assert_eq!(lab.workers[0].fast_path().removed, 0);
}
