//! ICMP errors about flows the director forwards, in every mode and from
//! both sides (IPVS's `ip_vs_in_icmp` from a client, `ip_vs_out_icmp` from a
//! real server). Each record of the input first opens a flow with a well
//! formed client packet, then sends an ICMP error whose type, code, quoted
//! length, addresses and stray bytes come from the fuzzer. The worker must
//! translate the error like its flow or drop it, never panic; and every
//! frame it sends must carry checksums that etherparse, parsing it
//! independently, finds correct (the ICMP checksum only when the error we
//! sent had a correct one: IPVS, like us, updates it incrementally).
//!
//! Record: [sel, kind, type, code, cut, xor_at, xor, extra_len, extra...].
#![no_main]

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use ferrovs_dataplane::conn::template::TemplateTable;
use ferrovs_dataplane::port::memory::{MemPacket, MemPort};
use ferrovs_dataplane::route::Route;
use ferrovs_dataplane::sched::{SchedFlags, SchedKind, Scheduler};
use ferrovs_dataplane::service::{
    Dest, DestShared, FwdMethod, Persistence, Proto, Service, ServiceShared,
};
use ferrovs_dataplane::snapshot::{PortConf, SnapshotBuilder};
use ferrovs_dataplane::wire::checksum;
use ferrovs_dataplane::worker::{Shared, Worker};
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use std::sync::Arc;

const VIP: [u8; 4] = [198, 18, 0, 100];
const DIR0_IP: [u8; 4] = [198, 18, 0, 1];
const DIR1_IP: [u8; 4] = [198, 18, 1, 1];
const GW: [u8; 4] = [198, 18, 0, 2];
const LADDR: [u8; 4] = [198, 18, 1, 100];
const DIR0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const DIR1_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
const GW_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const RS: [[u8; 4]; 2] = [[198, 18, 1, 11], [198, 18, 1, 12]];
/// The virtual ports, one per mode; port 0 is a NAT service on every port.
const VPORTS: [(u16, FwdMethod); 5] = [
    (80, FwdMethod::Dr),
    (81, FwdMethod::Nat),
    (82, FwdMethod::FullNat),
    (83, FwdMethod::Tun),
    (0, FwdMethod::Nat),
];

fn lab() -> (Arc<Shared<MemPacket>>, Vec<Worker<MemPort>>) {
    let mut b = SnapshotBuilder::new(1, 2, Arc::new(TemplateTable::new(64)));
    b.port(PortConf {
        name: "p0".into(),
        mac: DIR0_MAC,
        addrs: vec![(DIR0_IP.into(), 24)],
        mtu: 1500,
    });
    // A small MTU towards the real servers, so that TUN's encapsulation
    // and big client packets produce errors of the director's own.
    b.port(PortConf {
        name: "p1".into(),
        mac: DIR1_MAC,
        addrs: vec![(DIR1_IP.into(), 24)],
        mtu: 600,
    });
    b.route(Route {
        prefix: Ipv4Addr::UNSPECIFIED,
        len: 0,
        port: 0,
        via: Some(GW.into()),
    });
    let mut id = 0;
    for (svc_id, (port, fwd)) in VPORTS.into_iter().enumerate() {
        for proto in [Proto::Tcp, Proto::Udp] {
            let dests: Vec<Dest> = RS
                .iter()
                .map(|rs| {
                    id += 1;
                    Dest {
                        addr: (*rs).into(),
                        port: if port == 0 { 0 } else { 8080 },
                        weight: 1,
                        fwd,
                        u_threshold: 0,
                        l_threshold: 0,
                        shared: DestShared::new(id, 2),
                    }
                })
                .collect();
            b.service(Service {
                proto,
                vaddr: VIP.into(),
                vport: port,
                sched: Scheduler::new(SchedKind::Rr, SchedFlags::default(), &dests),
                persistence: (port == 0).then_some(Persistence {
                    timeout_s: 5,
                    netmask: Ipv4Addr::new(255, 255, 255, 0),
                }),
                dests,
                laddrs: vec![LADDR.into()],
                synproxy: false,
                shared: ServiceShared::new(svc_id as u32 * 2 + proto as u32, 2),
            });
        }
    }
    let shared = Shared::new(b.build().expect("fuzz snapshot"));
    let mut workers: Vec<Worker<MemPort>> = (0..2)
        .map(|i| {
            Worker::new(
                i,
                shared.clone(),
                vec![MemPort::new(DIR0_MAC), MemPort::new(DIR1_MAC)],
                64,
                1_000_000,
            )
        })
        .collect();
    // Every worker learns the gateway's and the real servers' MACs.
    for w in workers.iter_mut() {
        w.ports_mut()[0].inject(&arp_reply(GW_MAC, GW, DIR0_MAC, DIR0_IP));
        for (i, rs) in RS.iter().enumerate() {
            w.ports_mut()[1].inject(&arp_reply([2, 0, 0, 1, 0, i as u8], *rs, DIR1_MAC, DIR1_IP));
        }
        w.poll(1_000_000);
        w.ports_mut()[0].take_tx();
        w.ports_mut()[1].take_tx();
    }
    (shared, workers)
}

fn arp_reply(sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&tha);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa);
    f.extend_from_slice(&tha);
    f.extend_from_slice(&tpa);
    f
}

/// A client's packet to the VIP, built by etherparse.
fn client_packet(client: [u8; 4], cport: u16, vport: u16, tcp: bool, len: usize) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(GW_MAC, DIR0_MAC).ipv4(client, VIP, 64);
    let mut v = Vec::new();
    let payload = vec![0x5a; len];
    if tcp {
        b.tcp(cport, vport, 0x1234_5678, 64240)
            .syn()
            .write(&mut v, &payload)
            .unwrap();
    } else {
        b.udp(cport, vport).write(&mut v, &payload).unwrap();
    }
    v
}

/// The IP packet a reply of the flow would be (VIP → client), as a client
/// would quote it: 20 bytes of IP header and 8 of the transport header.
fn reply_quote(client: [u8; 4], cport: u16, vport: u16, tcp: bool) -> Vec<u8> {
    let b = PacketBuilder::ipv4(VIP, client, 63);
    let mut v = Vec::new();
    if tcp {
        b.tcp(vport, cport, 7, 64240)
            .syn()
            .ack(0x1234_5679)
            .write(&mut v, &[])
            .unwrap();
    } else {
        b.udp(vport, cport).write(&mut v, &[0; 8]).unwrap();
    }
    v
}

fn icmp_frame(smac: [u8; 6], dmac: [u8; 6], src: [u8; 4], dst: [u8; 4], msg: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(34 + msg.len());
    f.extend_from_slice(&dmac);
    f.extend_from_slice(&smac);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + msg.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[8] = 64;
    ip[9] = 1;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let c = !checksum::fold(checksum::sum(&ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(msg);
    f
}

fn icmp_ok(msg: &[u8]) -> bool {
    checksum::fold(checksum::sum(msg)) == 0xffff
}

/// Every frame out of the director parses, and its checksums are right.
fn check(frame: &[u8], icmp_valid: bool) {
    let Ok(p) = SlicedPacket::from_ethernet(frame) else {
        return;
    };
    let Some(NetSlice::Ipv4(v4)) = &p.net else {
        return;
    };
    let h = v4.header().to_header();
    assert_eq!(
        h.header_checksum,
        h.calc_header_checksum(),
        "IPv4 header checksum"
    );
    if v4.header().is_fragmenting_payload() {
        return;
    }
    match &p.transport {
        Some(TransportSlice::Tcp(t)) => {
            assert_eq!(
                t.checksum(),
                t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap(),
                "TCP checksum"
            );
        }
        Some(TransportSlice::Udp(u)) if u.checksum() != 0 => {
            assert_eq!(
                u.checksum(),
                u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap(),
                "UDP checksum"
            );
        }
        Some(TransportSlice::Icmpv4(i)) if icmp_valid => {
            assert!(icmp_ok(i.slice()), "ICMP checksum")
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let (_shared, mut workers) = lab();
    let mut now = 1_000_000u64;
    let mut rest = data;
    while rest.len() >= 8 {
        let (sel, kind, ty, code, cut, xor_at, xor) = (
            rest[0], rest[1], rest[2], rest[3], rest[4], rest[5], rest[6],
        );
        let extra_len = (rest[7] as usize).min(rest.len() - 8);
        let extra = &rest[8..8 + extra_len];
        rest = &rest[8 + extra_len..];
        now += 1000;

        let (vport, fwd) = VPORTS[(sel % 5) as usize];
        let tcp = sel & 0x08 != 0;
        let w = ((sel >> 4) & 1) as usize;
        let client = [198, 19, 0, 1 + (sel >> 5)];
        let cport = 40000 + (kind & 0x0f) as u16;
        let dport = if vport == 0 { 5353 } else { vport };

        // Open the flow (a big packet sometimes, to make TUN's own errors).
        let len = if kind & 0x10 != 0 { 700 } else { 16 };
        workers[w].ports_mut()[0].inject(&client_packet(client, cport, dport, tcp, len));
        let mut to_rs = None;
        for wk in workers.iter_mut() {
            wk.poll(now);
            wk.poll(now);
            for f in wk.ports_mut()[0].take_tx() {
                check(&f, true);
            }
            for f in wk.ports_mut()[1].take_tx() {
                check(&f, true);
                if to_rs.is_none() && f.len() >= 14 + 28 && f[12..14] == [0x08, 0x00] {
                    to_rs = Some(f);
                }
            }
        }

        // The error: from the real server about what we sent it, or from
        // the client's side about a reply.
        let from_server = kind & 0x20 != 0;
        let (quoted, src, dst, port, smac) = match (&to_rs, from_server) {
            (Some(f), true) => {
                let ip = &f[14..];
                let src: [u8; 4] = if kind & 0x40 != 0 {
                    [198, 18, 1, 254]
                } else {
                    ip[16..20].try_into().unwrap()
                };
                (
                    ip.to_vec(),
                    src,
                    ip[12..16].try_into().unwrap(),
                    1,
                    [2, 0, 0, 1, 0, 0],
                )
            }
            _ => {
                let src = if kind & 0x40 != 0 {
                    [198, 19, 9, 9]
                } else {
                    client
                };
                (reply_quote(client, cport, dport, tcp), src, VIP, 0, GW_MAC)
            }
        };
        // Quote 28 bytes or more, as much as the fuzzer cuts, then stray bytes.
        let keep = (8 + cut as usize).min(quoted.len());
        let mut msg = vec![ty, code, 0, 0, 0, 0, (cut >> 4) & 0x3, cut & 0x0f];
        if ty == 3 && code == 4 {
            msg[6..8].copy_from_slice(&(576u16 + cut as u16).to_be_bytes());
        }
        msg.extend_from_slice(&quoted[..keep]);
        msg.extend_from_slice(extra);
        let post_xor = kind & 0x80 != 0;
        let at = xor_at as usize % msg.len();
        if !post_xor {
            msg[at] ^= xor;
        }
        let c = !checksum::fold(checksum::sum(&msg));
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        if post_xor {
            msg[at] ^= xor;
        }
        let valid = icmp_ok(&msg);
        let _ = fwd;
        let dmac = if port == 0 { DIR0_MAC } else { DIR1_MAC };
        workers[(w + (code as usize & 1)) % 2].ports_mut()[port]
            .inject(&icmp_frame(smac, dmac, src, dst, &msg));
        for wk in workers.iter_mut() {
            wk.poll(now);
            wk.poll(now);
        }
        for wk in workers.iter_mut() {
            for p in 0..2 {
                for f in wk.ports_mut()[p].take_tx() {
                    check(&f, valid);
                }
            }
        }
    }
});
