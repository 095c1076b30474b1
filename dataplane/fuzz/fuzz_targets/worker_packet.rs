//! Arbitrary frames into two workers whose snapshot has a service in every
//! forwarding mode, with persistence, a port-0 service and a FULLNAT pool.
//! Each input is a sequence of frames: [selector, len_hi, len_lo, bytes...].
//! The selector picks the worker, the port, and how far the clock moves.
#![no_main]

use ferrovs_dataplane::conn::template::TemplateTable;
use ferrovs_dataplane::port::memory::{MemPacket, MemPort};
use ferrovs_dataplane::route::Route;
use ferrovs_dataplane::sched::{SchedFlags, SchedKind, Scheduler};
use ferrovs_dataplane::service::{
    Dest, DestShared, FwdMethod, Persistence, Proto, Service, ServiceShared,
};
use ferrovs_dataplane::snapshot::{PortConf, SnapshotBuilder};
use ferrovs_dataplane::worker::{Shared, Worker};
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use std::sync::Arc;

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);

fn lab() -> (Arc<Shared<MemPacket>>, Vec<Worker<MemPort>>) {
    let mut b = SnapshotBuilder::new(1, 2, Arc::new(TemplateTable::new(64)));
    b.port(PortConf {
        name: "p0".into(),
        mac: [2, 0, 0, 0, 0, 1],
        addrs: vec![(Ipv4Addr::new(198, 18, 0, 1), 24)],
        mtu: 1500,
    });
    b.port(PortConf {
        name: "p1".into(),
        mac: [2, 0, 0, 0, 1, 1],
        addrs: vec![(Ipv4Addr::new(198, 18, 1, 1), 24)],
        mtu: 600,
    });
    b.route(Route {
        prefix: Ipv4Addr::UNSPECIFIED,
        len: 0,
        port: 0,
        via: Some(Ipv4Addr::new(198, 18, 0, 2)),
    });
    let mut id = 0;
    let modes = [
        (80, FwdMethod::Dr),
        (81, FwdMethod::Nat),
        (82, FwdMethod::FullNat),
        (83, FwdMethod::Tun),
        (0, FwdMethod::Nat),
    ];
    for (svc_id, (port, fwd)) in modes.into_iter().enumerate() {
        for proto in [Proto::Tcp, Proto::Udp] {
            let dests: Vec<Dest> = (0..2)
                .map(|i| {
                    id += 1;
                    Dest {
                        addr: Ipv4Addr::new(198, 18, 1, 11 + i),
                        port: if port == 0 { 0 } else { 8080 },
                        weight: 1,
                        fwd,
                        u_threshold: 4,
                        l_threshold: 2,
                        shared: DestShared::new(id, 2),
                    }
                })
                .collect();
            b.service(Service {
                proto,
                vaddr: VIP,
                vport: port,
                sched: Scheduler::new(SchedKind::Wlc, SchedFlags::default(), &dests),
                persistence: (port == 0 || port == 83).then_some(Persistence {
                    timeout_s: 5,
                    netmask: Ipv4Addr::new(255, 255, 255, 0),
                }),
                dests,
                laddrs: vec![Ipv4Addr::new(198, 18, 1, 100)],
                synproxy: false,
                shared: ServiceShared::new(svc_id as u32 * 2 + proto as u32, 2),
            });
        }
    }
    let shared = Shared::new(b.build().expect("fuzz snapshot"));
    let workers = (0..2)
        .map(|i| {
            Worker::new(
                i,
                shared.clone(),
                vec![
                    MemPort::new([2, 0, 0, 0, 0, 1]),
                    MemPort::new([2, 0, 0, 0, 1, 1]),
                ],
                16,
                0,
            )
        })
        .collect();
    (shared, workers)
}

fuzz_target!(|data: &[u8]| {
    let (_shared, mut workers) = lab();
    let mut now = 1_000_000u64;
    let mut rest = data;
    while rest.len() >= 3 {
        let sel = rest[0];
        let len = (u16::from_be_bytes([rest[1], rest[2]]) as usize).min(rest.len() - 3);
        let frame = &rest[3..3 + len];
        rest = &rest[3 + len..];
        let w = (sel & 1) as usize;
        let port = ((sel >> 1) & 1) as usize;
        now += ((sel >> 2) as u64) * 500;
        workers[w].ports_mut()[port].inject(frame);
        for w in workers.iter_mut() {
            w.poll(now);
            w.ports_mut()[0].take_tx();
            w.ports_mut()[1].take_tx();
        }
    }
    // Let everything expire.
    for w in workers.iter_mut() {
        for _ in 0..4 {
            w.poll(now + 10_000_000);
        }
    }
});
