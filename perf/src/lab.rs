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
/// At most this many local addresses (198.18.2.10 up to .249).
pub const MAX_LADDRS: u8 = 240;

/// FULLNAT local addresses for `flows` connections: a local address gives
/// each real server one reply tuple per port (about 64 k), so large flow
/// counts need more than the usual 16 (with room for half as many again).
pub fn laddrs_for(flows: u64) -> u8 {
    let per_laddr = NUM_RS as u64 * 60_000;
    (flows * 3 / 2)
        .div_ceil(per_laddr)
        .clamp(NUM_LADDRS as u64, MAX_LADDRS as u64) as u8
}

/// The director under test: VIP:80/TCP, and with `udp` also VIP:53/UDP,
/// each over three real servers in mode `fwd` (FULLNAT: with `laddrs`
/// local addresses).
pub fn snapshot(
    fwd: FwdMethod,
    workers: usize,
    timeouts: Timeouts,
    udp: bool,
    laddrs: u8,
) -> Snapshot {
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
    let services: &[(Proto, u16)] = if udp {
        &[(Proto::Tcp, 80), (Proto::Udp, 53)]
    } else {
        &[(Proto::Tcp, 80)]
    };
    for (k, &(proto, port)) in services.iter().enumerate() {
        let dests: Vec<Dest> = (0..NUM_RS)
            .map(|i| Dest {
                addr: Ipv4Addr::new(198, 18, 1, 11 + i as u8),
                port,
                weight: 1,
                fwd,
                u_threshold: 0,
                l_threshold: 0,
                shared: DestShared::new((k * NUM_RS + i) as u32 + 1, workers),
            })
            .collect();
        let sched = Scheduler::new(SchedKind::Wlc, SchedFlags::default(), &dests);
        b.service(Service {
            proto,
            vaddr: VIP.into(),
            vport: port,
            sched,
            persistence: None,
            dests,
            laddrs: if fwd == FwdMethod::FullNat {
                (0..laddrs.min(MAX_LADDRS))
                    .map(|i| Ipv4Addr::new(198, 18, 2, 10 + i))
                    .collect()
            } else {
                vec![]
            },
            synproxy: false,
            shared: ServiceShared::new(k as u32 + 1, workers),
        });
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_addresses_grow_with_the_flows() {
        assert_eq!(laddrs_for(1000), NUM_LADDRS);
        assert_eq!(laddrs_for(1_000_000), NUM_LADDRS);
        let n = laddrs_for(10_000_000);
        // Enough reply tuples for every flow, and they fit below .250.
        assert!(n as u64 * NUM_RS as u64 * 60_000 >= 10_000_000 * 3 / 2);
        assert!(10 + n as u32 - 1 < 250);
        assert_eq!(laddrs_for(u64::MAX / 4), MAX_LADDRS);
    }
}
