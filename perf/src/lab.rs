//! The benchmark's director: two ports, a VIP with three real servers in the
//! mode under test, neighbours primed.

use ferrovs_dataplane::conn::template::TemplateTable;
use ferrovs_dataplane::conn::Timeouts;
use ferrovs_dataplane::route::Route;
use ferrovs_dataplane::sched::{SchedFlags, SchedKind, Scheduler};
use ferrovs_dataplane::service::{Dest, DestShared, FwdMethod, Proto, Service, ServiceShared};
use ferrovs_dataplane::snapshot::{PortConf, Snapshot, SnapshotBuilder};
use std::net::Ipv4Addr;
use std::sync::Arc;

pub const DIR0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
pub const DIR1_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
pub const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
pub const RS_MAC: [u8; 6] = [2, 0, 0, 0, 1, 11];
pub const GW: [u8; 4] = [198, 18, 0, 2];
pub const DIR0_IP: [u8; 4] = [198, 18, 0, 1];
pub const DIR1_IP: [u8; 4] = [198, 18, 1, 1];
pub const VIP: [u8; 4] = [198, 18, 0, 100];
pub const RS_NET: [u8; 4] = [198, 18, 1, 0];
pub const NUM_RS: usize = 3;
pub const NUM_LADDRS: u8 = 16;

pub fn snapshot(fwd: FwdMethod, workers: usize, timeouts: Timeouts) -> Snapshot {
    let mut b = SnapshotBuilder::new(1, workers, Arc::new(TemplateTable::new(1024)));
    b.timeouts(timeouts);
    b.port(PortConf {
        name: "p0".into(),
        mac: DIR0_MAC,
        addrs: vec![(DIR0_IP.into(), 24)],
        mtu: 1500,
    });
    b.port(PortConf {
        name: "p1".into(),
        mac: DIR1_MAC,
        addrs: vec![(DIR1_IP.into(), 24)],
        mtu: 1500,
    });
    b.route(Route {
        prefix: Ipv4Addr::UNSPECIFIED,
        len: 0,
        port: 0,
        via: Some(GW.into()),
    });
    b.route(Route {
        prefix: Ipv4Addr::new(198, 18, 2, 0),
        len: 24,
        port: 1,
        via: None,
    });
    let dests: Vec<Dest> = (0..NUM_RS)
        .map(|i| Dest {
            addr: Ipv4Addr::new(198, 18, 1, 11 + i as u8),
            port: 80,
            weight: 1,
            fwd,
            u_threshold: 0,
            l_threshold: 0,
            shared: DestShared::new(i as u32 + 1, workers),
        })
        .collect();
    let sched = Scheduler::new(SchedKind::Wlc, SchedFlags::default(), &dests);
    b.service(Service {
        proto: Proto::Tcp,
        vaddr: VIP.into(),
        vport: 80,
        sched,
        persistence: None,
        dests,
        laddrs: if fwd == FwdMethod::FullNat {
            (0..NUM_LADDRS)
                .map(|i| Ipv4Addr::new(198, 18, 2, 10 + i))
                .collect()
        } else {
            vec![]
        },
        shared: ServiceShared::new(1, workers),
    });
    b.build().expect("benchmark snapshot")
}

/// ARP replies that teach a worker the gateway's and servers' MACs.
pub fn neighbour_frames() -> Vec<(usize, Vec<u8>)> {
    let mut out = vec![(0, arp_reply(CLIENT_MAC, GW, DIR0_MAC, DIR0_IP))];
    for i in 0..NUM_RS {
        let mut mac = RS_MAC;
        mac[5] += i as u8;
        out.push((
            1,
            arp_reply(mac, [198, 18, 1, 11 + i as u8], DIR1_MAC, DIR1_IP),
        ));
    }
    out
}

fn arp_reply(sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    let l = ferrovs_dataplane::wire::arp::Arp {
        op: 2,
        sha,
        spa: spa.into(),
        tha,
        tpa: tpa.into(),
    };
    ferrovs_dataplane::wire::arp::build_frame(&mut f, &tha, &sha, None, &l);
    f
}
