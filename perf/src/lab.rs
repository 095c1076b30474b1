//! The benchmark's director: two ports, a VIP with three real servers in the
//! mode under test, neighbours primed. IPv6 (and NAT64) runs use the same
//! ports and MACs with addresses in 2001:2::/48 (RFC 5180 benchmarking).

use ferrovs_dataplane::conn::template::TemplateTable;
use ferrovs_dataplane::conn::Timeouts;
use ferrovs_dataplane::route::{Route, Route6};
use ferrovs_dataplane::sched::{SchedFlags, SchedKind, Scheduler};
use ferrovs_dataplane::service::{
    Dest, DestShared, FwdMethod, Proto, RealServer6, Service, Service6, ServiceShared,
};
use ferrovs_dataplane::snapshot::{PortConf, Snapshot, SnapshotBuilder};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
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

/// 2001:2::/64 on port 0 (clients behind GW6), 2001:2:0:1::/64 on port 1
/// (real servers), local addresses in 2001:2:0:2::/64.
pub const GW6: [u8; 16] = v6(0, 2);
pub const DIR0_IP6: [u8; 16] = v6(0, 1);
pub const DIR1_IP6: [u8; 16] = v6(1, 1);
pub const VIP6: [u8; 16] = v6(0, 0x100);
pub const RS_NET6: [u8; 16] = v6(1, 0);
pub const LADDR_NET6: [u8; 16] = v6(2, 0);

/// 2001:2:0:`subnet`::`host`.
pub const fn v6(subnet: u16, host: u16) -> [u8; 16] {
    let s = subnet.to_be_bytes();
    let h = host.to_be_bytes();
    [
        0x20, 0x01, 0, 2, 0, 0, s[0], s[1], 0, 0, 0, 0, 0, 0, h[0], h[1],
    ]
}

/// The address family of a run: IPv4 throughout, IPv6 throughout, or an
/// IPv6 VIP in front of IPv4 real servers (FULLNAT's NAT64).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    V4,
    V6,
    Nat64,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
            Family::Nat64 => "nat64",
        }
    }
    /// Whether the clients (and the VIP) are IPv6.
    pub fn v6_clients(self) -> bool {
        self != Family::V4
    }
}

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

/// The IPv6 director under test: [VIP6]:80/TCP over three real servers in
/// mode `fwd`, IPv6 ones (2001:2:0:1::11-13) or, with `nat64` (FULLNAT
/// only), the IPv4 ones of `snapshot` with IPv4 local addresses. The IPv4
/// side (addresses, routes) is the same as `snapshot`'s, for NAT64 replies.
pub fn snapshot6(
    fwd: FwdMethod,
    workers: usize,
    timeouts: Timeouts,
    laddrs: u8,
    nat64: bool,
) -> Snapshot {
    let mut b = SnapshotBuilder::new(1, workers, Arc::new(TemplateTable::new(1024)));
    b.templates6(Arc::new(TemplateTable::new_v6(1024)));
    b.timeouts(timeouts);
    for (name, mac, ip) in [("p0", DIR0_MAC, DIR0_IP), ("p1", DIR1_MAC, DIR1_IP)] {
        b.port(PortConf {
            name: name.into(),
            mac,
            addrs: vec![(ip.into(), 24)],
            mtu: 1500,
        });
    }
    b.port_addrs6(0, vec![(DIR0_IP6.into(), 64)]);
    b.port_addrs6(1, vec![(DIR1_IP6.into(), 64)]);
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
    // Clients are beyond the gateway, as IPv4's are.
    b.route6(Route6 {
        prefix: Ipv6Addr::UNSPECIFIED,
        len: 0,
        port: 0,
        via: Some(GW6.into()),
    });
    b.route6(Route6 {
        prefix: LADDR_NET6.into(),
        len: 64,
        port: 1,
        via: None,
    });
    let servers = (0..NUM_RS)
        .map(|i| RealServer6 {
            addr: if nat64 {
                IpAddr::V4(Ipv4Addr::new(198, 18, 1, 11 + i as u8))
            } else {
                IpAddr::V6(rs6(i).into())
            },
            port: 80,
            weight: 1,
            fwd,
            u_threshold: 0,
            l_threshold: 0,
            shared: DestShared::new(i as u32 + 1, workers),
        })
        .collect();
    let n = laddrs.min(MAX_LADDRS);
    let laddrs: Vec<IpAddr> = match (fwd, nat64) {
        (FwdMethod::FullNat, true) => (0..n)
            .map(|i| Ipv4Addr::new(198, 18, 2, 10 + i).into())
            .collect(),
        (FwdMethod::FullNat, false) => (0..n).map(|i| Ipv6Addr::from(laddr6(i)).into()).collect(),
        _ => vec![],
    };
    b.service6(Service6::new(
        Proto::Tcp,
        VIP6.into(),
        80,
        SchedKind::Wlc,
        SchedFlags::default(),
        None,
        servers,
        laddrs,
        ServiceShared::new(1, workers),
    ));
    b.build().expect("IPv6 benchmark snapshot")
}

/// IPv6 real server `i`: 2001:2:0:1::11 + i.
pub fn rs6(i: usize) -> [u8; 16] {
    let mut a = RS_NET6;
    a[15] = 0x11 + i as u8;
    a
}

/// IPv6 local address `i`: 2001:2:0:2::10 + i.
pub fn laddr6(i: u8) -> [u8; 16] {
    let mut a = LADDR_NET6;
    a[15] = 0x10 + i;
    a
}

/// Neighbour solicitations that teach a worker the IPv6 gateway's and
/// servers' MACs: a solicitation for an active address of ours creates the
/// sender's entry (RFC 4861 §7.2.3), as an ARP reply does for IPv4. NAT64
/// adds the IPv4 servers' ARP replies.
pub fn neighbour_frames6(nat64: bool) -> Vec<(usize, Vec<u8>)> {
    let mut out = vec![(0, solicit(CLIENT_MAC, GW6, VIP6))];
    for i in 0..NUM_RS {
        let mut mac = RS_MAC;
        mac[5] += i as u8;
        out.push((1, solicit(mac, rs6(i), VIP6)));
    }
    if nat64 {
        out.extend(neighbour_frames().into_iter().filter(|(p, _)| *p == 1));
    }
    out
}

fn solicit(mac: [u8; 6], src: [u8; 16], target: [u8; 16]) -> Vec<u8> {
    use ferrovs_dataplane::wire::ndp;
    let mut f = vec![0u8; ndp::FRAME_LEN];
    let n = ndp::build_solicit(&mut f, &mac, None, src, target);
    f.truncate(n);
    f
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
