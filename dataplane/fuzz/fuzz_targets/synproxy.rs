//! The SYN-proxy path: two workers with a syn-proxy NAT service (port 81)
//! and a syn-proxy FULLNAT service (port 82). Cookies are keyed by a
//! random secret, so the target plays the client and the real servers
//! itself and lets the input steer them: each step is
//! [op, a, b, c, len, bytes...] where `op` picks what to send — a raw
//! frame, a client SYN with the input's bytes as TCP options, a client ACK
//! or data segment that echoes the last cookie seen (or not), a real
//! server's SYN-ACK/RST/data answering the last SYN the director sent it —
//! `a`/`b`/`c` perturb flags, sequence numbers and windows, and the bytes
//! are options (SACK blocks included) or payload.
#![no_main]

use ferrovs_dataplane::conn::template::TemplateTable;
use ferrovs_dataplane::port::memory::{MemPacket, MemPort};
use ferrovs_dataplane::route::Route;
use ferrovs_dataplane::sched::{SchedFlags, SchedKind, Scheduler};
use ferrovs_dataplane::service::{Dest, DestShared, FwdMethod, Proto, Service, ServiceShared};
use ferrovs_dataplane::snapshot::{PortConf, SnapshotBuilder};
use ferrovs_dataplane::wire::{ethernet, tcp};
use ferrovs_dataplane::worker::{Shared, Worker};
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use std::sync::Arc;

const VIP: [u8; 4] = [198, 18, 0, 100];
const CLIENT: [u8; 4] = [198, 18, 0, 2];
const MAC0: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC1: [u8; 6] = [2, 0, 0, 0, 1, 1];

fn lab() -> (Arc<Shared<MemPacket>>, Vec<Worker<MemPort>>) {
    let mut b = SnapshotBuilder::new(1, 2, Arc::new(TemplateTable::new(64)));
    b.port(PortConf { name: "p0".into(), mac: MAC0, addrs: vec![(Ipv4Addr::new(198, 18, 0, 1), 24)], mtu: 1500 });
    b.port(PortConf { name: "p1".into(), mac: MAC1, addrs: vec![(Ipv4Addr::new(198, 18, 1, 1), 24)], mtu: 1500 });
    b.route(Route { prefix: Ipv4Addr::UNSPECIFIED, len: 0, port: 0, via: Some(Ipv4Addr::new(198, 18, 0, 2)) });
    let mut id = 0;
    for (k, (port, fwd)) in [(81, FwdMethod::Nat), (82, FwdMethod::FullNat)].into_iter().enumerate() {
        let dests: Vec<Dest> = (0..2)
            .map(|i| {
                id += 1;
                Dest {
                    addr: Ipv4Addr::new(198, 18, 1, 11 + i),
                    port: 8080,
                    weight: 1,
                    fwd,
                    u_threshold: 0,
                    l_threshold: 0,
                    shared: DestShared::new(id, 2),
                }
            })
            .collect();
        b.service(Service {
            proto: Proto::Tcp,
            vaddr: Ipv4Addr::from(VIP),
            vport: port,
            sched: Scheduler::new(SchedKind::Rr, SchedFlags::default(), &dests),
            persistence: None,
            dests,
            laddrs: vec![Ipv4Addr::new(198, 18, 1, 100)],
            synproxy: true,
            shared: ServiceShared::new(k as u32 + 1, 2),
        });
    }
    let shared = Shared::new(b.build().expect("fuzz snapshot"));
    let workers = (0..2)
        .map(|i| Worker::new(i, shared.clone(), vec![MemPort::new(MAC0), MemPort::new(MAC1)], 16, 0))
        .collect();
    (shared, workers)
}

/// An Ethernet/IPv4/TCP frame; `opts` is padded to a multiple of 4 (at
/// most 40 bytes), `payload` appended with the lengths and checksum fixed.
#[allow(clippy::too_many_arguments)]
fn frame(dmac: [u8; 6], src: ([u8; 4], u16), dst: ([u8; 4], u16), seq: u32, ack: u32, flags: u8, window: u16, opts: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut o = [0u8; 40];
    let n = opts.len().min(40);
    o[..n].copy_from_slice(&opts[..n]);
    let olen = n.div_ceil(4) * 4;
    let mut f = vec![0u8; 14 + 80];
    ethernet::write_header(&mut f, &dmac, &[2, 0, 0, 0, 9, 9], None, ethernet::ETHERTYPE_IPV4);
    let seg = tcp::Segment { src: src.0, dst: dst.0, sport: src.1, dport: dst.1, seq, ack, flags, window, ttl: 64, ip_id: 0, options: &o[..olen] };
    let l = tcp::write_segment(&mut f[14..], &seg);
    f.truncate(14 + l);
    if !payload.is_empty() {
        // Rewrite with the payload: the total length and TCP checksum change.
        f.extend_from_slice(payload);
        let total = (l + payload.len()) as u16;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        ferrovs_dataplane::wire::ipv4::fill_checksum(&mut f[14..]);
        f[14 + 20 + 16..14 + 20 + 18].fill(0);
        let ph = ferrovs_dataplane::wire::checksum::pseudo_header_v4(src.0, dst.0, 6, total - 20);
        let c = !ferrovs_dataplane::wire::checksum::fold(ferrovs_dataplane::wire::checksum::add(ph, ferrovs_dataplane::wire::checksum::sum(&f[34..])));
        f[14 + 20 + 16..14 + 20 + 18].copy_from_slice(&c.to_be_bytes());
    }
    f
}

/// What the target learnt from the director's output.
#[derive(Default, Clone, Copy)]
struct Seen {
    /// Last SYN-ACK to the client: (client port, vport, cookie, ack).
    synack: Option<(u16, u16, u32, u32)>,
    /// Last SYN to a real server: (src, sport, rs, rport, isn).
    syn: Option<([u8; 4], u16, [u8; 4], u16, u32)>,
}

fn learn(seen: &mut Seen, f: &[u8]) {
    if f.len() < 54 || f[12..14] != [8, 0] || f[23] != 6 {
        return;
    }
    let ip = &f[14..];
    let ihl = (ip[0] & 0x0f) as usize * 4;
    let Some(th) = ip.get(ihl..) else { return };
    if th.len() < 20 {
        return;
    }
    let flags = th[13];
    let sport = u16::from_be_bytes([th[0], th[1]]);
    let dport = u16::from_be_bytes([th[2], th[3]]);
    if flags & 0x12 == 0x12 && ip[12..16] == VIP {
        seen.synack = Some((dport, sport, tcp::seq(th), tcp::ack(th)));
    } else if flags & 0x12 == 0x02 {
        seen.syn = Some((ip[12..16].try_into().unwrap(), sport, ip[16..20].try_into().unwrap(), dport, tcp::seq(th)));
    }
}

/// An ARP reply from `spa` to the director's address `tpa` on a port, so
/// that the workers know the client's and real servers' MACs.
fn arp_reply(sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&tha);
    f[6..12].copy_from_slice(&sha);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
    f[22..28].copy_from_slice(&sha);
    f[28..32].copy_from_slice(&spa);
    f[32..38].copy_from_slice(&tha);
    f[38..42].copy_from_slice(&tpa);
    f
}

fuzz_target!(|data: &[u8]| {
    let (_shared, mut workers) = lab();
    workers[0].ports_mut()[0].inject(&arp_reply([2, 0, 0, 0, 0, 2], CLIENT, MAC0, [198, 18, 0, 1]));
    for i in 0..2u8 {
        workers[0].ports_mut()[1].inject(&arp_reply([2, 0, 0, 0, 1, 11 + i], [198, 18, 1, 11 + i], MAC1, [198, 18, 1, 1]));
    }
    for _ in 0..2 {
        for wk in workers.iter_mut() {
            wk.poll(1_000_000);
            wk.ports_mut()[0].take_tx();
            wk.ports_mut()[1].take_tx();
        }
    }
    let mut now = 1_000_000u64;
    let mut seen = Seen::default();
    let mut rest = data;
    while rest.len() >= 5 {
        let (op, a, b, c) = (rest[0], rest[1], rest[2], rest[3]);
        let len = (rest[4] as usize).min(rest.len() - 5);
        let bytes = &rest[5..5 + len];
        rest = &rest[5 + len..];
        let vport = 81 + (a & 1) as u16;
        let cport = 40000 + (b & 3) as u16;
        let w = (op >> 7) as usize;
        now += ((c >> 6) as u64) * 20_000;
        let (port, f) = match op & 7 {
            0 => (((op >> 3) & 1) as usize, bytes.to_vec()),
            1 => (0, frame(MAC0, (CLIENT, cport), (VIP, vport), u32::from_be_bytes([a, b, c, 7]), 0, 0x02 | (a & 0x28), 1024, bytes, &[])),
            2 | 3 => {
                // An ACK (op 2) or data (op 3) for the last SYN-ACK; `c`
                // bit 0 corrupts the cookie.
                let Some((cp, vp, cookie, ack)) = seen.synack else { continue };
                let echo = cookie.wrapping_add(1) ^ (c & 1) as u32;
                let payload: &[u8] = if op & 7 == 3 { bytes } else { &[] };
                let opts: &[u8] = if op & 7 == 3 { &[] } else { bytes };
                (0, frame(MAC0, (CLIENT, cp), (VIP, vp), ack.wrapping_add(b as u32 & 3), echo.wrapping_add((c >> 1 & 3) as u32), 0x10 | (a & 0x0d), u16::from_be_bytes([a, b]), opts, payload))
            }
            4..=6 => {
                // The real server answers the last SYN: SYN-ACK (4), RST
                // (5) or data (6), with the input's options or payload.
                let Some((src, sport, rs, rport, isn)) = seen.syn else { continue };
                let flags = match op & 7 {
                    4 => 0x12,
                    5 => 0x14,
                    _ => 0x18 | (a & 0x01),
                };
                let (opts, payload): (&[u8], &[u8]) = if op & 7 == 6 { (&[], bytes) } else { (bytes, &[]) };
                (1, frame(MAC1, (rs, rport), (src, sport), u32::from_be_bytes([9, a, b, c]), isn.wrapping_add(1), flags, u16::from_be_bytes([b, a]), opts, payload))
            }
            _ => (0, frame(MAC0, (CLIENT, cport), (VIP, vport), 1, 1, a, 512, bytes, &[])),
        };
        workers[w].ports_mut()[port].inject(&f);
        for _ in 0..2 {
            for wk in workers.iter_mut() {
                wk.poll(now);
                for p in 0..2 {
                    for out in wk.ports_mut()[p].take_tx() {
                        learn(&mut seen, &out);
                    }
                }
            }
        }
    }
    for wk in workers.iter_mut() {
        for _ in 0..4 {
            wk.poll(now + 10_000_000);
        }
    }
});
