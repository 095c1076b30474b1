//! An in-memory IPv6 lab (the IPv6 twin of `Lab`): a director with a
//! client-side port 0 (2001:db8::1/64, 198.18.0.1/24) and a server-side
//! port 1 (2001:db8:1::1/64, 198.18.1.1/24), one IPv6 service at
//! [2001:db8::100]:80 to IPv6 servers or, for NAT64, IPv4 ones.
#![allow(dead_code)]

use super::{arp_reply, rs_mac, CLIENT_MAC, DIR0_MAC, DIR1_IP, DIR1_MAC};
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use ferrovs_dataplane::conn::template::TemplateTable;
use ferrovs_dataplane::counters::DropReason;
use ferrovs_dataplane::port::memory::{MemPacket, MemPort};
use ferrovs_dataplane::route::Route;
use ferrovs_dataplane::sched::{SchedFlags, SchedKind};
use ferrovs_dataplane::service::{
    Dest, DestShared, FwdMethod, Persistence6, Proto, RealServer6, Service, Service6, ServiceShared,
};
use ferrovs_dataplane::snapshot::{PortConf, Snapshot, SnapshotBuilder};
use ferrovs_dataplane::wire::{ndp, Mac};
use ferrovs_dataplane::worker::{Shared, Worker};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

pub type A6 = [u8; 16];

pub const fn a6(net: u16, last: u16) -> A6 {
    let n = net.to_be_bytes();
    let l = last.to_be_bytes();
    [
        0x20, 0x01, 0x0d, 0xb8, n[0], n[1], 0, 0, 0, 0, 0, 0, 0, 0, l[0], l[1],
    ]
}

pub const DIR0_IP6: A6 = a6(0, 1);
pub const DIR1_IP6: A6 = a6(1, 1);
pub const CLIENT6: A6 = a6(0, 2);
pub const VIP6: A6 = a6(0, 0x100);
pub const VIP6_BACKUP: A6 = a6(0, 0x200);
pub const LADDR6: A6 = a6(1, 0x100);
pub const RS6: [A6; 3] = [a6(1, 0x11), a6(1, 0x12), a6(1, 0x13)];
pub const RS4: [[u8; 4]; 3] = [[198, 18, 1, 11], [198, 18, 1, 12], [198, 18, 1, 13]];
pub const LADDR4: [u8; 4] = [198, 18, 1, 100];
pub const VIP4: [u8; 4] = [198, 18, 0, 100];
pub const CLIENT4: [u8; 4] = [198, 18, 0, 2];

pub struct Lab6 {
    pub shared: Arc<Shared<MemPacket>>,
    pub workers: Vec<Worker<MemPort>>,
    pub now: u64,
}

#[derive(Clone)]
pub struct Svc6 {
    pub fwd: FwdMethod,
    pub proto: Proto,
    /// NAT64: IPv4 real servers and an IPv4 local address.
    pub nat64: bool,
    pub servers: usize,
    pub rport: u16,
    pub sched: SchedKind,
    pub persistence: Option<Persistence6>,
    pub mtu1: u16,
    /// Also an IPv4 service, VIP4:80, tunnelled to the IPv6 servers (IPv4
    /// in IPv6).
    pub tun4in6: bool,
    /// The snapshot's `sloppy_tcp`.
    pub sloppy: bool,
    /// DPVS `syn_proxy` on the IPv6 service.
    pub synproxy: bool,
}

impl Svc6 {
    pub fn new(fwd: FwdMethod) -> Svc6 {
        Svc6 {
            fwd,
            proto: Proto::Tcp,
            nat64: false,
            servers: 1,
            rport: 8080,
            sched: SchedKind::Rr,
            persistence: None,
            mtu1: 1500,
            tun4in6: false,
            sloppy: false,
            synproxy: false,
        }
    }
}

pub fn snapshot(nworkers: usize, svc: &Svc6) -> Snapshot {
    let mut b = SnapshotBuilder::new(1, nworkers, Arc::new(TemplateTable::new(64)));
    b.templates6(Arc::new(TemplateTable::new_v6(1024)));
    b.port(PortConf {
        name: "p0".into(),
        mac: DIR0_MAC,
        addrs: vec![(Ipv4Addr::new(198, 18, 0, 1), 24)],
        mtu: 1500,
    });
    b.port(PortConf {
        name: "p1".into(),
        mac: DIR1_MAC,
        addrs: vec![(Ipv4Addr::from(DIR1_IP), 24)],
        mtu: svc.mtu1,
    });
    b.port_addrs6(0, vec![(Ipv6Addr::from(DIR0_IP6), 64)]);
    b.port_addrs6(1, vec![(Ipv6Addr::from(DIR1_IP6), 64)]);
    b.route(Route {
        prefix: Ipv4Addr::UNSPECIFIED,
        len: 0,
        port: 0,
        via: Some(Ipv4Addr::new(198, 18, 0, 2)),
    });
    b.vrrp_vip6(Ipv6Addr::from(VIP6_BACKUP), false);
    b.sloppy_tcp(svc.sloppy);
    let servers = (0..svc.servers)
        .map(|i| RealServer6 {
            addr: if svc.nat64 {
                IpAddr::from(RS4[i])
            } else {
                IpAddr::from(RS6[i])
            },
            port: svc.rport,
            weight: 1,
            fwd: svc.fwd,
            u_threshold: 0,
            l_threshold: 0,
            shared: DestShared::new(i as u32 + 1, nworkers),
        })
        .collect();
    let laddrs = match (svc.fwd, svc.nat64) {
        (FwdMethod::FullNat, true) => vec![IpAddr::from(LADDR4)],
        (FwdMethod::FullNat, false) => vec![IpAddr::from(LADDR6)],
        _ => vec![],
    };
    let mut s6 = Service6::new(
        svc.proto,
        Ipv6Addr::from(VIP6),
        80,
        svc.sched,
        SchedFlags::default(),
        svc.persistence,
        servers,
        laddrs,
        ServiceShared::new(1, nworkers),
    );
    s6.synproxy = svc.synproxy;
    b.service6(s6);
    if svc.tun4in6 {
        let dests: Vec<Dest> = (0..svc.servers)
            .map(|i| Dest {
                addr: ferrovs_dataplane::sched::fold_v6(&RS6[i]),
                port: 80,
                weight: 1,
                fwd: FwdMethod::Tun,
                u_threshold: 0,
                l_threshold: 0,
                shared: DestShared::with_tunnel6(
                    100 + i as u32,
                    nworkers,
                    Some(Ipv6Addr::from(RS6[i])),
                ),
            })
            .collect();
        b.service(Service {
            proto: Proto::Tcp,
            vaddr: Ipv4Addr::from(VIP4),
            vport: 80,
            sched: ferrovs_dataplane::sched::Scheduler::new(
                SchedKind::Rr,
                SchedFlags::default(),
                &dests,
            ),
            persistence: None,
            dests,
            laddrs: vec![],
            synproxy: false,
            shared: ServiceShared::new(2, nworkers),
        });
    }
    b.build().unwrap()
}

impl Lab6 {
    pub fn new(svc: Svc6, nworkers: usize) -> Lab6 {
        let shared = Shared::new(snapshot(nworkers, &svc));
        let now = 1_000_000;
        let workers = (0..nworkers)
            .map(|i| {
                Worker::new(
                    i,
                    shared.clone(),
                    vec![MemPort::new(DIR0_MAC), MemPort::new(DIR1_MAC)],
                    1024,
                    now,
                )
            })
            .collect();
        let mut lab = Lab6 {
            shared,
            workers,
            now,
        };
        lab.prime();
        lab
    }

    /// Teaches worker 0 (which tells the others) the client's and the
    /// servers' MACs: each solicits an active address of ours, so the
    /// director creates its entry (RFC 4861 §7.2.3); IPv4 servers by ARP.
    pub fn prime(&mut self) {
        self.inject(0, 0, &ns(CLIENT_MAC, CLIENT6, VIP6, 255));
        for (i, rs) in RS6.iter().enumerate() {
            self.inject(0, 1, &ns(rs_mac(i), *rs, VIP6, 255));
        }
        for (i, rs) in RS4.iter().enumerate() {
            self.inject(0, 1, &arp_reply(rs_mac(i), *rs, DIR1_MAC, DIR1_IP));
        }
        self.poll_all();
        for w in 0..self.workers.len() {
            self.take(w, 0);
            self.take(w, 1);
        }
    }

    pub fn inject(&mut self, w: usize, port: usize, frame: &[u8]) {
        self.workers[w].ports_mut()[port].inject(frame);
    }

    pub fn poll_all(&mut self) {
        for _ in 0..2 {
            for w in &mut self.workers {
                w.poll(self.now);
            }
        }
    }

    pub fn take(&mut self, w: usize, port: usize) -> Vec<Vec<u8>> {
        self.workers[w].ports_mut()[port].take_tx()
    }

    /// One frame in on (worker, port); what every worker sent on `out`.
    pub fn send(&mut self, w: usize, port: usize, frame: &[u8], out: usize) -> Vec<Vec<u8>> {
        self.inject(w, port, frame);
        self.poll_all();
        let mut v = vec![];
        for i in 0..self.workers.len() {
            v.extend(self.take(i, out));
        }
        v
    }

    pub fn dropped(&self, r: DropReason) -> u64 {
        self.shared.counters.iter().map(|c| c.dropped(r)).sum()
    }

    pub fn handovers(&self) -> u64 {
        self.shared
            .counters
            .iter()
            .map(|c| c.handover_in.get())
            .sum()
    }
}

#[allow(clippy::too_many_arguments)]
pub fn tcp6(
    smac: Mac,
    dmac: Mac,
    src: A6,
    sport: u16,
    dst: A6,
    dport: u16,
    hl: u8,
    flags: &str,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(smac, dmac).ipv6(src, dst, hl).tcp(
        sport,
        dport,
        0x1234_5678,
        64240,
    );
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('A') {
        b = b.ack(0x0bad_beef);
    }
    if flags.contains('F') {
        b = b.fin();
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

#[allow(clippy::too_many_arguments)]
pub fn tcp4(
    smac: Mac,
    dmac: Mac,
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    ttl: u8,
    flags: &str,
    payload: &[u8],
) -> Vec<u8> {
    super::tcp(smac, dmac, src, sport, dst, dport, ttl, flags, payload)
}

/// The frame one hop later: hop limit lowered by one (IPv6 has no header
/// checksum).
pub fn hop6(frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[14 + 7] -= 1;
    f
}

pub fn udp6(
    smac: Mac,
    dmac: Mac,
    src: A6,
    sport: u16,
    dst: A6,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(smac, dmac)
        .ipv6(src, dst, 64)
        .udp(sport, dport)
        .write(&mut v, payload)
        .unwrap();
    v
}

/// A neighbour solicitation for `target` from `src`, to its
/// solicited-node group, with a source link-layer option.
pub fn ns(mac: Mac, src: A6, target: A6, hop_limit: u8) -> Vec<u8> {
    let mut f = vec![0u8; ndp::FRAME_LEN];
    let n = ndp::build_solicit(&mut f, &mac, None, src, target);
    f.truncate(n);
    if hop_limit != 255 {
        f[14 + 7] = hop_limit;
    }
    f
}

/// Verifies every checksum of an Ethernet/IPv6 frame by etherparse, and
/// returns its transport.
pub fn assert_checksums6(f: &[u8]) {
    let p = SlicedPacket::from_ethernet(f).expect("etherparse parses the frame");
    let Some(NetSlice::Ipv6(ip)) = &p.net else {
        panic!("not IPv6: {f:02x?}")
    };
    let h = ip.header().to_header();
    match &p.transport {
        Some(TransportSlice::Tcp(t)) => {
            let calc = t.to_header().calc_checksum_ipv6(&h, t.payload()).unwrap();
            assert_eq!(t.checksum(), calc, "TCP checksum");
        }
        Some(TransportSlice::Udp(u)) => {
            let calc = u.to_header().calc_checksum_ipv6(&h, u.payload()).unwrap();
            assert_eq!(u.checksum(), calc, "UDP checksum");
        }
        Some(TransportSlice::Icmpv6(i)) => {
            let calc = i
                .header()
                .icmp_type
                .calc_checksum(h.source, h.destination, i.payload())
                .unwrap();
            assert_eq!(i.checksum(), calc, "ICMPv6 checksum");
        }
        other => panic!("unexpected transport {other:?}"),
    }
}
