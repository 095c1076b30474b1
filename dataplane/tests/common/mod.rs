//! A small in-memory lab: a director with a client-side port 0
//! (198.18.0.1/24) and a server-side port 1 (198.18.1.1/24), one client,
//! three real servers, a VIP and a FULLNAT local address.
#![allow(dead_code)]

pub mod lab6;
pub mod scenarios;

use etherparse::{PacketBuilder, SlicedPacket};
use ferrovs_dataplane::conn::template::TemplateTable;
use ferrovs_dataplane::counters::DropReason;
use ferrovs_dataplane::port::memory::MemPacket;
use ferrovs_dataplane::port::memory::MemPort;
use ferrovs_dataplane::route::Route;
use ferrovs_dataplane::sched::{SchedFlags, SchedKind, Scheduler};
use ferrovs_dataplane::service::{
    Dest, DestShared, FwdMethod, Persistence, Proto, Service, ServiceShared,
};
use ferrovs_dataplane::snapshot::{PortConf, Snapshot, SnapshotBuilder};
use ferrovs_dataplane::wire::Mac;
use ferrovs_dataplane::worker::{Shared, Worker};
use std::net::Ipv4Addr;
use std::sync::Arc;

pub const DIR0_MAC: Mac = [0x02, 0, 0, 0, 0, 0x01];
pub const DIR1_MAC: Mac = [0x02, 0, 0, 0, 1, 0x01];
pub const CLIENT_MAC: Mac = [0x02, 0, 0, 0, 0, 0x02];
pub const DIR0_IP: [u8; 4] = [198, 18, 0, 1];
pub const DIR1_IP: [u8; 4] = [198, 18, 1, 1];
pub const CLIENT: [u8; 4] = [198, 18, 0, 2];
pub const VIP: [u8; 4] = [198, 18, 0, 100];
pub const LADDR: [u8; 4] = [198, 18, 1, 100];
pub const RS: [[u8; 4]; 3] = [[198, 18, 1, 11], [198, 18, 1, 12], [198, 18, 1, 13]];

pub fn rs_mac(i: usize) -> Mac {
    [0x02, 0, 0, 0, 1, 0x0b + i as u8]
}

pub fn ip(a: [u8; 4]) -> Ipv4Addr {
    Ipv4Addr::from(a)
}

/// A service description for the lab.
#[derive(Clone)]
pub struct Svc {
    pub proto: Proto,
    pub vport: u16,
    pub sched: SchedKind,
    pub fwd: FwdMethod,
    pub weights: Vec<u32>,
    pub rport: u16,
    pub persistence: Option<Persistence>,
    pub vip_active: bool,
    pub synproxy: bool,
    /// The snapshot's `sloppy_tcp`.
    pub sloppy: bool,
    /// FULLNAT's local addresses, each with whether this director holds
    /// it (one it does not is in a VRRP instance in BACKUP).
    pub laddrs: Vec<([u8; 4], bool)>,
    /// Servers (indices into `weights`) removed from the service but
    /// draining: their connections go on, no new one picks them.
    pub draining: Vec<usize>,
}

impl Svc {
    pub fn new(fwd: FwdMethod) -> Svc {
        Svc {
            proto: Proto::Tcp,
            vport: 80,
            sched: SchedKind::Rr,
            fwd,
            weights: vec![1],
            rport: 80,
            persistence: None,
            vip_active: true,
            synproxy: false,
            sloppy: false,
            draining: vec![],
            laddrs: if fwd == FwdMethod::FullNat {
                vec![(LADDR, true)]
            } else {
                vec![]
            },
        }
    }
}

pub struct Lab {
    pub shared: Arc<Shared<MemPacket>>,
    pub workers: Vec<Worker<MemPort>>,
    pub dests: Vec<Arc<DestShared>>,
    pub svc_shared: Arc<ServiceShared>,
    pub templates: Arc<TemplateTable>,
    pub now: u64,
    pub svc: Svc,
}

pub fn build_snapshot(
    gen: u64,
    nworkers: usize,
    svc: &Svc,
    dests: &[Arc<DestShared>],
    svc_shared: &Arc<ServiceShared>,
    templates: &Arc<TemplateTable>,
    mtu1: u16,
) -> Snapshot {
    let mut b = SnapshotBuilder::new(gen, nworkers, templates.clone());
    b.port(PortConf {
        name: "p0".into(),
        mac: DIR0_MAC,
        addrs: vec![(ip(DIR0_IP), 24)],
        mtu: 1500,
    });
    b.port(PortConf {
        name: "p1".into(),
        mac: DIR1_MAC,
        addrs: vec![(ip(DIR1_IP), 24)],
        mtu: mtu1,
    });
    b.route(Route {
        prefix: Ipv4Addr::UNSPECIFIED,
        len: 0,
        port: 0,
        via: Some(ip(CLIENT)),
    });
    if !svc.vip_active {
        b.inactive_vip(ip(VIP));
    }
    b.sloppy_tcp(svc.sloppy);
    for &(l, held) in &svc.laddrs {
        if !held {
            b.vrrp_vip(ip(l), false);
        }
    }
    let ds: Vec<Dest> = svc
        .weights
        .iter()
        .enumerate()
        .map(|(i, &w)| Dest {
            addr: ip(RS[i]),
            port: svc.rport,
            weight: w,
            fwd: svc.fwd,
            u_threshold: 0,
            l_threshold: 0,
            shared: dests[i].clone(),
        })
        .collect();
    let (gone, ds): (Vec<_>, Vec<_>) = ds
        .into_iter()
        .enumerate()
        .partition(|(i, _)| svc.draining.contains(i));
    let ds: Vec<Dest> = ds.into_iter().map(|(_, d)| d).collect();
    for (_, d) in gone {
        b.draining(d, svc_shared.clone());
    }
    let sched = Scheduler::new(svc.sched, SchedFlags::default(), &ds);
    b.service(Service {
        proto: svc.proto,
        vaddr: ip(VIP),
        vport: svc.vport,
        sched,
        persistence: svc.persistence,
        dests: ds,
        laddrs: svc.laddrs.iter().map(|&(l, _)| ip(l)).collect(),
        synproxy: svc.synproxy,
        shared: svc_shared.clone(),
    });
    b.build().unwrap()
}

impl Lab {
    pub fn new(svc: Svc, nworkers: usize) -> Lab {
        Lab::with(svc, nworkers, 1024, 1500)
    }

    pub fn with(svc: Svc, nworkers: usize, conn_capacity: usize, mtu1: u16) -> Lab {
        let dests: Vec<_> = (0..3)
            .map(|i| DestShared::new(i as u32 + 1, nworkers))
            .collect();
        let svc_shared = ServiceShared::new(1, nworkers);
        let templates = Arc::new(TemplateTable::new(1024));
        let snap = build_snapshot(1, nworkers, &svc, &dests, &svc_shared, &templates, mtu1);
        let shared = Shared::new(snap);
        let now = 1_000_000;
        let workers = (0..nworkers)
            .map(|i| {
                Worker::new(
                    i,
                    shared.clone(),
                    vec![MemPort::new(DIR0_MAC), MemPort::new(DIR1_MAC)],
                    conn_capacity,
                    now,
                )
            })
            .collect();
        let mut lab = Lab {
            shared,
            workers,
            dests,
            svc_shared,
            templates,
            now,
            svc,
        };
        lab.prime_neighbours();
        lab
    }

    /// Teaches every worker the client's and real servers' MACs by ARP
    /// replies addressed to the director.
    pub fn prime_neighbours(&mut self) {
        let w0 = 0;
        self.inject(w0, 0, &arp_reply(CLIENT_MAC, CLIENT, DIR0_MAC, DIR0_IP));
        for (i, rs) in RS.iter().enumerate() {
            self.inject(w0, 1, &arp_reply(rs_mac(i), *rs, DIR1_MAC, DIR1_IP));
        }
        self.poll_all();
        self.take(w0, 0);
        self.take(w0, 1);
    }

    pub fn inject(&mut self, w: usize, port: usize, frame: &[u8]) {
        self.workers[w].ports_mut()[port].inject(frame);
    }

    pub fn poll_all(&mut self) {
        // Two rounds so handed-over packets are processed too.
        for _ in 0..2 {
            for w in &mut self.workers {
                w.poll(self.now);
            }
        }
    }

    pub fn take(&mut self, w: usize, port: usize) -> Vec<Vec<u8>> {
        self.workers[w].ports_mut()[port].take_tx()
    }

    /// Sends one frame in on (worker, port) and returns what came out of
    /// every worker on `out_port`.
    pub fn send(&mut self, w: usize, port: usize, frame: &[u8], out_port: usize) -> Vec<Vec<u8>> {
        self.inject(w, port, frame);
        self.poll_all();
        let mut out = vec![];
        for i in 0..self.workers.len() {
            out.extend(self.take(i, out_port));
        }
        out
    }

    pub fn dropped(&self, r: DropReason) -> u64 {
        self.shared.counters.iter().map(|c| c.dropped(r)).sum()
    }

    pub fn republish(&mut self, gen: u64, svc: Svc) {
        let snap = build_snapshot(
            gen,
            self.workers.len(),
            &svc,
            &self.dests,
            &self.svc_shared,
            &self.templates,
            1500,
        );
        self.shared.publish(snap);
        self.svc = svc;
    }
}

pub fn arp_reply(sha: Mac, spa: [u8; 4], tha: Mac, tpa: [u8; 4]) -> Vec<u8> {
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

pub fn arp_request(sha: Mac, spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut f = arp_reply(sha, spa, [0; 6], tpa);
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[21] = 1;
    f
}

/// A TCP segment built by etherparse (checksums computed from scratch).
#[allow(clippy::too_many_arguments)]
pub fn tcp(
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
    let mut b = PacketBuilder::ethernet2(smac, dmac)
        .ipv4(src, dst, ttl)
        .tcp(sport, dport, 0x1234_5678, 64240);
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('A') {
        b = b.ack(0x0bad_beef);
    }
    if flags.contains('F') {
        b = b.fin();
    }
    if flags.contains('R') {
        b = b.rst();
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

#[allow(clippy::too_many_arguments)]
pub fn udp(
    smac: Mac,
    dmac: Mac,
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    ttl: u8,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(smac, dmac)
        .ipv4(src, dst, ttl)
        .udp(sport, dport);
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

/// Asserts that every checksum in an Ethernet/IPv4 frame is right, by
/// etherparse's own computation.
pub fn assert_checksums(frame: &[u8]) {
    let p = SlicedPacket::from_ethernet(frame).expect("etherparse parses the frame");
    let Some(etherparse::NetSlice::Ipv4(v4)) = &p.net else {
        panic!("not IPv4")
    };
    let h = v4.header().to_header();
    assert_eq!(
        h.header_checksum,
        h.calc_header_checksum(),
        "IPv4 header checksum"
    );
    let payload = v4.payload().payload;
    match &p.transport {
        Some(etherparse::TransportSlice::Tcp(t)) => {
            let calc = t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap();
            assert_eq!(t.checksum(), calc, "TCP checksum");
        }
        Some(etherparse::TransportSlice::Udp(u)) => {
            let calc = u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap();
            assert_eq!(u.checksum(), calc, "UDP checksum");
        }
        Some(etherparse::TransportSlice::Icmpv4(i)) => {
            let sum = ferrovs_dataplane::wire::checksum::fold(
                ferrovs_dataplane::wire::checksum::sum(i.slice()),
            );
            assert_eq!(sum, 0xffff, "ICMP checksum");
        }
        _ => {
            let _ = payload;
        }
    }
}

/// The frame one router hop later: IPv4 TTL lowered by one, the header
/// checksum recomputed from scratch (by etherparse).
pub fn one_hop_later(frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    let (mut h, _) = etherparse::Ipv4Header::from_slice(&f[14..]).unwrap();
    h.time_to_live -= 1;
    h.header_checksum = h.calc_header_checksum();
    let hl = h.header_len();
    f[14..14 + hl].copy_from_slice(&h.to_bytes());
    f
}

pub fn dst_port_of(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[36], frame[37]])
}
pub fn src_port_of(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[34], frame[35]])
}
pub fn dst_ip_of(frame: &[u8]) -> [u8; 4] {
    frame[30..34].try_into().unwrap()
}
pub fn src_ip_of(frame: &[u8]) -> [u8; 4] {
    frame[26..30].try_into().unwrap()
}

/// Splits an unfragmented Ethernet/IPv4 frame into fragments of at most
/// `chunk` payload bytes (a multiple of 8), as a host's IP layer does
/// (RFC 791), with identification `id`.
pub fn fragment(frame: &[u8], chunk: usize, id: u16) -> Vec<Vec<u8>> {
    let (h, _) = etherparse::Ipv4Header::from_slice(&frame[14..]).unwrap();
    let hl = h.header_len();
    let payload = &frame[14 + hl..14 + h.total_len as usize];
    let mut out = vec![];
    let mut off = 0;
    while off < payload.len() {
        let n = chunk.min(payload.len() - off);
        let more = off + n < payload.len();
        let mut fh = h.clone();
        fh.identification = id;
        fh.total_len = (hl + n) as u16;
        fh.more_fragments = more;
        fh.fragment_offset = etherparse::IpFragOffset::try_new((off / 8) as u16).unwrap();
        fh.header_checksum = fh.calc_header_checksum();
        let mut f = frame[..14].to_vec();
        f.extend_from_slice(&fh.to_bytes());
        f.extend_from_slice(&payload[off..off + n]);
        out.push(f);
        off += n;
    }
    out
}

/// Reassembles fragments (any order), checking each IP header checksum,
/// into one Ethernet/IPv4 frame whose checksums are then verified.
pub fn reassemble(frags: &[Vec<u8>]) -> Vec<u8> {
    let mut parts: Vec<(usize, bool, Vec<u8>)> = vec![];
    let mut first_hdr = None;
    for f in frags {
        let (h, rest) = etherparse::Ipv4Header::from_slice(&f[14..]).unwrap();
        assert_eq!(
            h.header_checksum,
            h.calc_header_checksum(),
            "fragment IP checksum"
        );
        let off = h.fragment_offset.value() as usize * 8;
        let n = h.total_len as usize - h.header_len();
        if off == 0 {
            first_hdr = Some((f[..14].to_vec(), h.clone()));
        }
        parts.push((off, h.more_fragments, rest[..n].to_vec()));
    }
    parts.sort_by_key(|p| p.0);
    let mut payload = vec![];
    for (off, _, p) in &parts {
        assert_eq!(*off, payload.len(), "contiguous");
        payload.extend_from_slice(p);
    }
    assert!(!parts.last().unwrap().1, "last fragment has MF clear");
    let (l2, mut h) = first_hdr.expect("a first fragment");
    h.more_fragments = false;
    h.fragment_offset = etherparse::IpFragOffset::ZERO;
    h.total_len = (h.header_len() + payload.len()) as u16;
    h.header_checksum = h.calc_header_checksum();
    let mut f = l2;
    f.extend_from_slice(&h.to_bytes());
    f.extend_from_slice(&payload);
    assert_checksums(&f);
    f
}
