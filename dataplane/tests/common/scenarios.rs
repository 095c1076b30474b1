//! The byte-exact forwarding scenarios, run on memory ports (`Lab`, in
//! `forwarding.rs`) and on DPDK ring devices (`dpdk_ring.rs`): an input
//! frame, the exact frame expected out (built independently by etherparse,
//! with checksums computed from scratch), and every checksum verified by
//! etherparse.
//!
//! Each scenario builds its lab with `new` from the service it needs and
//! returns it, so that the caller can check more (the DPDK tests check
//! that every mbuf went back to its pool).

use super::*;

pub const PAYLOAD: &[u8] = b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n";

/// A director with port 0 on the client side and port 1 on the server
/// side, one queue of each per worker.
pub trait ForwardLab {
    /// One frame in on (worker, port); what left every worker on
    /// `out_port`.
    fn send(&mut self, w: usize, port: usize, frame: &[u8], out_port: usize) -> Vec<Vec<u8>>;
    /// Packets dropped for `r`, over all workers.
    fn dropped(&self, r: DropReason) -> u64;
}

impl ForwardLab for Lab {
    fn send(&mut self, w: usize, port: usize, frame: &[u8], out_port: usize) -> Vec<Vec<u8>> {
        Lab::send(self, w, port, frame, out_port)
    }

    fn dropped(&self, r: DropReason) -> u64 {
        Lab::dropped(self, r)
    }
}

/// DR rewrites the MACs and, as IPVS's `decrement_ttl` does for every
/// transmitter since Linux 4.3, lowers the TTL; a flow sticks to its
/// server.
pub fn dr<L: ForwardLab>(new: impl FnOnce(Svc) -> L) -> L {
    let mut lab = new(Svc::new(FwdMethod::Dr));
    for flags in ["S", "A"] {
        let input = tcp(
            CLIENT_MAC, DIR0_MAC, CLIENT, 40000, VIP, 80, 64, flags, PAYLOAD,
        );
        let out = lab.send(0, 0, &input, 1);
        let expected = tcp(
            DIR1_MAC,
            rs_mac(0),
            CLIENT,
            40000,
            VIP,
            80,
            63,
            flags,
            PAYLOAD,
        );
        assert_eq!(out, vec![expected], "{flags}");
        assert_checksums(&out[0]);
    }
    lab
}

/// NAT with a port mapping (VIP:80 to RIP:8080) and the reply translated
/// back (RIP:8080 to the client becomes VIP:80 to the client, TTL - 1).
pub fn nat_tcp<L: ForwardLab>(new: impl FnOnce(Svc) -> L) -> L {
    let mut svc = Svc::new(FwdMethod::Nat);
    svc.rport = 8080;
    let mut lab = new(svc);
    let input = tcp(
        CLIENT_MAC, DIR0_MAC, CLIENT, 40000, VIP, 80, 64, "S", PAYLOAD,
    );
    let out = lab.send(0, 0, &input, 1);
    let expected = tcp(
        DIR1_MAC,
        rs_mac(0),
        CLIENT,
        40000,
        RS[0],
        8080,
        63,
        "S",
        PAYLOAD,
    );
    assert_eq!(out, vec![expected]);
    assert_checksums(&out[0]);

    let reply = tcp(
        rs_mac(0),
        DIR1_MAC,
        RS[0],
        8080,
        CLIENT,
        40000,
        64,
        "SA",
        b"",
    );
    let out = lab.send(0, 1, &reply, 0);
    let expected = tcp(DIR0_MAC, CLIENT_MAC, VIP, 80, CLIENT, 40000, 63, "SA", b"");
    assert_eq!(out, vec![expected]);
    assert_checksums(&out[0]);
    lab
}

/// NAT for UDP: VIP:53 to RIP:5353.
pub fn nat_udp<L: ForwardLab>(new: impl FnOnce(Svc) -> L) -> L {
    let mut svc = Svc::new(FwdMethod::Nat);
    svc.proto = Proto::Udp;
    svc.vport = 53;
    svc.rport = 5353;
    let mut lab = new(svc);
    let input = udp(CLIENT_MAC, DIR0_MAC, CLIENT, 5000, VIP, 53, 64, b"query");
    let out = lab.send(0, 0, &input, 1);
    assert_eq!(
        out,
        vec![udp(
            DIR1_MAC,
            rs_mac(0),
            CLIENT,
            5000,
            RS[0],
            5353,
            63,
            b"query"
        )]
    );
    assert_checksums(&out[0]);
    lab
}

/// FULLNAT rewrites both ends (client to LADDR:lport, VIP:80 to RIP:8080)
/// and back; a reply to a local port nobody holds is dropped.
pub fn fullnat<L: ForwardLab>(new: impl FnOnce(Svc) -> L) -> L {
    let mut svc = Svc::new(FwdMethod::FullNat);
    svc.rport = 8080;
    let mut lab = new(svc);
    let input = tcp(
        CLIENT_MAC, DIR0_MAC, CLIENT, 40000, VIP, 80, 64, "S", PAYLOAD,
    );
    let out = lab.send(0, 0, &input, 1);
    assert_eq!(out.len(), 1);
    let lport = src_port_of(&out[0]);
    assert!(lport >= 1024);
    let expected = tcp(
        DIR1_MAC,
        rs_mac(0),
        LADDR,
        lport,
        RS[0],
        8080,
        63,
        "S",
        PAYLOAD,
    );
    assert_eq!(out[0], expected);
    assert_checksums(&out[0]);

    let reply = tcp(
        rs_mac(0),
        DIR1_MAC,
        RS[0],
        8080,
        LADDR,
        lport,
        64,
        "SA",
        b"",
    );
    let out = lab.send(0, 1, &reply, 0);
    assert_eq!(
        out,
        vec![tcp(
            DIR0_MAC, CLIENT_MAC, VIP, 80, CLIENT, 40000, 64, "SA", b""
        )]
    );
    assert_checksums(&out[0]);

    let stray = tcp(
        rs_mac(0),
        DIR1_MAC,
        RS[0],
        8080,
        LADDR,
        lport + 1,
        64,
        "A",
        b"",
    );
    assert!(lab.send(0, 1, &stray, 0).is_empty());
    assert_eq!(lab.dropped(DropReason::NoConnection), 1);
    lab
}

/// TUN puts an outer IPv4 header (DIR1_IP to the real server, DF and TTL
/// copied from the inner packet) in front of the inner packet, one hop
/// lower, for a
/// small frame and a 1054-byte one.
pub fn tun<L: ForwardLab>(new: impl FnOnce(Svc) -> L) -> L {
    let mut lab = new(Svc::new(FwdMethod::Tun));
    let big = vec![0x5a; 1000];
    for (sport, payload) in [(40000, PAYLOAD), (40001, &big[..])] {
        let input = tcp(
            CLIENT_MAC, DIR0_MAC, CLIENT, sport, VIP, 80, 64, "S", payload,
        );
        let out = lab.send(0, 0, &input, 1);
        assert_eq!(out.len(), 1);
        let id = u16::from_be_bytes([out[0][18], out[0][19]]);
        // The inner packet one hop lower (IPVS decrements before
        // encapsulating).
        assert_eq!(out[0], ipip(&one_hop_later(&input), rs_mac(0), id, true));
        let outer = etherparse::Ipv4HeaderSlice::from_slice(&out[0][14..])
            .unwrap()
            .to_header();
        assert_eq!(outer.header_checksum, outer.calc_header_checksum());
        let mut inner_frame = out[0][..14].to_vec();
        inner_frame.extend_from_slice(&out[0][34..]);
        assert_checksums(&inner_frame);
    }
    lab
}

/// The IPIP frame expected for an inner IP packet.
pub fn ipip(inner_frame: &[u8], dst_mac: [u8; 6], id: u16, df: bool) -> Vec<u8> {
    let inner = &inner_frame[14..];
    // The outer TTL copies the inner one (ip_vs_prepare_tunneled_skb).
    let mut h = etherparse::Ipv4Header::new(
        inner.len() as u16,
        inner[8],
        etherparse::IpNumber::IPV4,
        DIR1_IP,
        RS[0],
    )
    .unwrap();
    h.identification = id;
    h.dont_fragment = df;
    h.header_checksum = h.calc_header_checksum();
    let mut v = Vec::new();
    etherparse::Ethernet2Header {
        source: DIR1_MAC,
        destination: dst_mac,
        ether_type: etherparse::EtherType::IPV4,
    }
    .write(&mut v)
    .unwrap();
    h.write(&mut v).unwrap();
    v.extend_from_slice(inner);
    v
}
