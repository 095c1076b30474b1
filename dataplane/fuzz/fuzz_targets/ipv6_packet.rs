//! IPv6 and NAT64 frames into two workers whose snapshot has an IPv6
//! service in every mode (DR, NAT66, FULLNAT66, TUN, NAT64 towards IPv4
//! servers, a port-0 NAT66 service with /64 persistence) and a 600-byte
//! server link (Packet Too Big, fragmentation needed). Each record builds a
//! well-formed frame of one kind (client segments, server replies of
//! either family, NDP, ICMPv6 and ICMPv4 errors, echo, extension-header
//! chains, or raw bytes), then damages it as the fuzzer says. The workers
//! must forward, translate or drop, never panic; every IPv6 or IPv4 frame
//! they send must parse with etherparse.
//!
//! Record: [sel, kind, sub, cut, xor_at_hi, xor_at_lo, xor, extra_len,
//! extra...].
#![no_main]

use etherparse::{Icmpv6Type, PacketBuilder, SlicedPacket};
use ferrovs_dataplane::conn::template::TemplateTable;
use ferrovs_dataplane::port::memory::{MemPacket, MemPort};
use ferrovs_dataplane::route::Route;
use ferrovs_dataplane::sched::{SchedFlags, SchedKind};
use ferrovs_dataplane::service::{
    DestShared, FwdMethod, Persistence6, Proto, RealServer6, Service6, ServiceShared,
};
use ferrovs_dataplane::snapshot::{PortConf, SnapshotBuilder};
use ferrovs_dataplane::wire::ndp;
use ferrovs_dataplane::worker::{Shared, Worker};
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

const DIR0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const DIR1_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
const PEER: [u8; 6] = [2, 0, 0, 0, 0, 2];

const fn a6(net: u8, last: u8) -> [u8; 16] {
    [0x20, 1, 0xd, 0xb8, 0, net, 0, 0, 0, 0, 0, 0, 0, 0, 0, last]
}
const VIP6: [u8; 16] = a6(0, 100);
const LADDR6: [u8; 16] = a6(1, 100);
const DIR0_IP6: [u8; 16] = a6(0, 1);
const RS6: [u8; 16] = a6(1, 11);
const RS4: [u8; 4] = [198, 18, 1, 11];
const LADDR4: [u8; 4] = [198, 18, 1, 100];
const VPORTS: [u16; 6] = [80, 81, 82, 83, 84, 0];

fn lab() -> (Arc<Shared<MemPacket>>, Vec<Worker<MemPort>>) {
    let mut b = SnapshotBuilder::new(1, 2, Arc::new(TemplateTable::new(64)));
    b.templates6(Arc::new(TemplateTable::new_v6(64)));
    b.port(PortConf {
        name: "p0".into(),
        mac: DIR0_MAC,
        addrs: vec![(Ipv4Addr::new(198, 18, 0, 1), 24)],
        mtu: 1500,
    });
    b.port(PortConf {
        name: "p1".into(),
        mac: DIR1_MAC,
        addrs: vec![(Ipv4Addr::new(198, 18, 1, 1), 24)],
        mtu: 600,
    });
    b.port_addrs6(0, vec![(Ipv6Addr::from(DIR0_IP6), 64)]);
    b.port_addrs6(1, vec![(Ipv6Addr::from(a6(1, 1)), 64)]);
    b.route(Route {
        prefix: Ipv4Addr::UNSPECIFIED,
        len: 0,
        port: 0,
        via: Some(Ipv4Addr::new(198, 18, 0, 2)),
    });
    let mut id = 0;
    let modes = [
        (80, FwdMethod::Dr, false),
        (81, FwdMethod::Nat, false),
        (82, FwdMethod::FullNat, false),
        (83, FwdMethod::Tun, false),
        (84, FwdMethod::FullNat, true),
        (0, FwdMethod::Nat, false),
    ];
    for (svc_id, (port, fwd, nat64)) in modes.into_iter().enumerate() {
        for proto in [Proto::Tcp, Proto::Udp] {
            let servers = (0..2u8)
                .map(|i| {
                    id += 1;
                    RealServer6 {
                        addr: if nat64 {
                            IpAddr::from([198, 18, 1, 11 + i])
                        } else {
                            IpAddr::from(a6(1, 11 + i))
                        },
                        port: if port == 0 { 0 } else { 8080 },
                        weight: 1,
                        fwd,
                        u_threshold: 4,
                        l_threshold: 2,
                        shared: DestShared::new(id, 2),
                    }
                })
                .collect();
            let laddrs = match (fwd, nat64) {
                (FwdMethod::FullNat, true) => vec![IpAddr::from(LADDR4)],
                (FwdMethod::FullNat, false) => vec![IpAddr::from(LADDR6)],
                _ => vec![],
            };
            b.service6(Service6::new(
                proto,
                Ipv6Addr::from(VIP6),
                port,
                if svc_id % 2 == 0 { SchedKind::Mh } else { SchedKind::Wlc },
                SchedFlags::default(),
                (port == 0).then_some(Persistence6 {
                    timeout_s: 5,
                    prefix_len: 64,
                }),
                servers,
                laddrs,
                ServiceShared::new(svc_id as u32 * 2 + proto as u32, 2),
            ));
        }
    }
    let shared = Shared::new(b.build().expect("fuzz snapshot"));
    let workers = (0..2)
        .map(|i| {
            let mut w = Worker::new(
                i,
                shared.clone(),
                vec![MemPort::new(DIR0_MAC), MemPort::new(DIR1_MAC)],
                16,
                0,
            );
            w.set_conn_capacity6(16, 0);
            w
        })
        .collect();
    (shared, workers)
}

fn tcp6(src: [u8; 16], sp: u16, dst: [u8; 16], dp: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(PEER, DIR0_MAC)
        .ipv6(src, dst, 64)
        .tcp(sp, dp, 1000, 64000);
    if flags & 1 != 0 {
        b = b.syn();
    }
    if flags & 2 != 0 {
        b = b.ack(5);
    }
    if flags & 4 != 0 {
        b = b.fin();
    }
    if flags & 8 != 0 {
        b = b.rst();
    }
    let mut v = vec![];
    b.write(&mut v, payload).unwrap();
    v
}

fn client(sub: u8) -> [u8; 16] {
    a6(0, 2 + (sub >> 4))
}

fn frame(kind: u8, sub: u8, extra: &[u8]) -> Vec<u8> {
    let vport = VPORTS[sub as usize % VPORTS.len()];
    let cport = 40000 + (sub as u16 >> 3);
    match kind % 14 {
        0 => tcp6(client(sub), cport, VIP6, vport, 1, extra),
        1 => tcp6(client(sub), cport, VIP6, vport, sub >> 4, extra),
        2 => {
            let mut v = vec![];
            PacketBuilder::ethernet2(PEER, DIR0_MAC)
                .ipv6(client(sub), VIP6, 64)
                .udp(cport, vport)
                .write(&mut v, extra)
                .unwrap();
            v
        }
        3 => tcp6(RS6, 8080, LADDR6, 1024 + sub as u16 * 7, 3, extra),
        4 => tcp6(RS6, 8080, client(sub), cport, 2, extra),
        5 => {
            let mut v = vec![];
            PacketBuilder::ethernet2(PEER, DIR1_MAC)
                .ipv4(RS4, LADDR4, 64)
                .tcp(8080, 1024 + sub as u16 * 7, 1, 1000)
                .syn()
                .ack(1)
                .write(&mut v, extra)
                .unwrap();
            v
        }
        6 | 7 => {
            let target = [VIP6, LADDR6, DIR0_IP6, RS6][sub as usize % 4];
            let mut f = vec![0u8; ndp::FRAME_LEN];
            let n = if kind % 14 == 6 {
                ndp::build_solicit(&mut f, &PEER, None, client(sub), target)
            } else {
                ndp::build_reply(&mut f, &DIR0_MAC, DIR0_IP6, &PEER, None, a6(0, sub))
            };
            f.truncate(n);
            f
        }
        8 | 9 => {
            let (src, dst, quoted) = if kind % 14 == 8 {
                (client(sub), VIP6, tcp6(VIP6, vport, client(sub), cport, 3, extra))
            } else {
                (RS6, LADDR6, tcp6(LADDR6, 1024 + sub as u16 * 7, RS6, 8080, 1, extra))
            };
            let ty = match sub % 4 {
                0 => Icmpv6Type::PacketTooBig { mtu: 1200 + sub as u32 },
                1 => Icmpv6Type::DestinationUnreachable(
                    etherparse::icmpv6::DestUnreachableCode::Port,
                ),
                2 => Icmpv6Type::TimeExceeded(etherparse::icmpv6::TimeExceededCode::HopLimitExceeded),
                _ => Icmpv6Type::ParameterProblem(etherparse::icmpv6::ParameterProblemHeader {
                    code: etherparse::icmpv6::ParameterProblemCode::ErroneousHeaderField,
                    pointer: sub as u32,
                }),
            };
            let mut v = vec![];
            PacketBuilder::ethernet2(PEER, DIR0_MAC)
                .ipv6(src, dst, 64)
                .icmpv6(ty)
                .write(&mut v, &quoted[14..])
                .unwrap();
            v
        }
        10 => {
            let mut q = vec![];
            PacketBuilder::ipv4(LADDR4, RS4, 64)
                .tcp(1024 + sub as u16 * 7, 8080, 1, 1000)
                .syn()
                .write(&mut q, extra)
                .unwrap();
            let mut v = vec![];
            PacketBuilder::ethernet2(PEER, DIR1_MAC)
                .ipv4(RS4, LADDR4, 64)
                .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                    etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
                        next_hop_mtu: sub as u16 * 8,
                    },
                ))
                .write(&mut v, &q)
                .unwrap();
            v
        }
        11 => {
            let mut v = vec![];
            PacketBuilder::ethernet2(PEER, DIR0_MAC)
                .ipv6(client(sub), VIP6, 64)
                .icmpv6_echo_request(1, sub as u16)
                .write(&mut v, extra)
                .unwrap();
            v
        }
        12 => {
            // An extension header chain: `sub` picks the headers.
            let f = tcp6(client(sub), cport, VIP6, vport, 1, extra);
            let kinds = [0u8, 60, 43, 44, 60, 51, 135, 60];
            let mut hdrs: Vec<(u8, Vec<u8>)> = vec![];
            for (i, k) in kinds.iter().enumerate() {
                if sub & (1 << i) != 0 {
                    let h = match k {
                        44 => vec![0, 0, 0, (sub & 1) | (sub & 0xf0), 0, 0, 0, 1],
                        43 => vec![0, 0, sub & 3, sub >> 6, 0, 0, 0, 0],
                        51 => vec![0, 0, 0, 0, 0, 0, 0, 0],
                        _ => vec![0, 0, 1, 4, 0, 0, 0, 0],
                    };
                    hdrs.push((*k, h));
                }
            }
            let l4 = f[20];
            let mut out = f[..54].to_vec();
            let mut total = 0;
            for k in 0..hdrs.len() {
                let mut h = hdrs[k].1.clone();
                h[0] = hdrs.get(k + 1).map_or(l4, |e| e.0);
                total += h.len();
                out.extend_from_slice(&h);
            }
            out.extend_from_slice(&f[54..]);
            out[20] = hdrs.first().map_or(l4, |e| e.0);
            let pl = u16::from_be_bytes([f[18], f[19]]) as usize + total;
            out[18..20].copy_from_slice(&(pl as u16).to_be_bytes());
            out
        }
        _ => {
            let mut v = vec![0x33, 0x33, 0, 0, 0, 1];
            v.extend_from_slice(&PEER);
            v.extend_from_slice(&[0x86, 0xdd]);
            v.extend_from_slice(extra);
            v
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (_shared, mut workers) = lab();
    let mut now = 1_000_000u64;
    let mut rest = data;
    while rest.len() >= 8 {
        let (sel, kind, sub, cut) = (rest[0], rest[1], rest[2], rest[3]);
        let xor_at = u16::from_be_bytes([rest[4], rest[5]]) as usize;
        let xor = rest[6];
        let n = (rest[7] as usize).min(rest.len() - 8);
        let extra = &rest[8..8 + n];
        rest = &rest[8 + n..];
        let mut f = frame(kind, sub, extra);
        if xor != 0 && !f.is_empty() {
            let i = xor_at % f.len();
            f[i] ^= xor;
        }
        if cut != 0 {
            let keep = f.len().saturating_sub(cut as usize);
            f.truncate(keep.max(1));
        }
        let w = (sel & 1) as usize;
        let port = ((sel >> 1) & 1) as usize;
        now += ((sel >> 2) as u64) * 500;
        workers[w].ports_mut()[port].inject(&f);
        for w in workers.iter_mut() {
            w.poll(now);
            for p in 0..2 {
                for out in w.ports_mut()[p].take_tx() {
                    if matches!(&out[12..14], [0x86, 0xdd] | [0x08, 0x00]) {
                        SlicedPacket::from_ethernet(&out).expect("a frame we sent parses");
                    }
                }
            }
        }
    }
    for w in workers.iter_mut() {
        for _ in 0..4 {
            w.poll(now + 10_000_000);
        }
    }
});
