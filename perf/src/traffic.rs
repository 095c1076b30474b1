//! Pre-built traffic: frames laid out in the order they will be sent, at a
//! fixed stride per trace, so feeding them costs a sequential copy (like a
//! NIC's DMA into a ring) and the flow order seen by the worker is random.

use crate::lab::{self, CLIENT_MAC, DIR0_MAC, DIR1_MAC, RS_MAC, RS_NET, VIP, VIP6};
use ferrovs_dataplane::wire::{checksum, ipv4, ipv6};

/// IPv4 traces: 60-byte frames in 64-byte slots (one cache line each).
pub const STRIDE: usize = 64;
pub const FRAME_LEN: usize = 60;
/// IPv6 traces: a TCP segment without options is 74 bytes (14 + 40 + 20),
/// so it takes two cache lines; 128 keeps every slot line-aligned as the
/// IPv4 ones are.
pub const STRIDE6: usize = 128;
pub const FRAME_LEN6: usize = 74;
/// Where a slot keeps its frame's length and flags, relative to the trace's
/// frame length (mixed traces only; the established-flow traces are all
/// `frame_len` long).
const META_LEN: usize = 0;
const META_FLAGS: usize = 1;
/// Slot flag: a new connection's packet, whose client the generator renews
/// on every lap of the trace (see `genport::Renew`).
pub const RENEW: u8 = 1;

/// Client hosts: 198.18.128.0/17 and 198.19.0.0/16.
const CLIENT_HOSTS: u64 = 3 << 15;

/// A client flow: its address and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    pub caddr: [u8; 4],
    pub cport: u16,
}

/// The n-th client flow: addresses in 198.18.128.0/17 and 198.19.0.0/16
/// (wrapping round, so every n stays in the benchmarking range), ports
/// 10000–59999.
pub fn flow(n: u64) -> Flow {
    let host = ((n / 50_000) % CLIENT_HOSTS) as u32;
    let cport = 10_000 + (n % 50_000) as u16;
    let a = (198u32 << 24 | 18 << 16 | 128 << 8) + host;
    Flow {
        caddr: a.to_be_bytes(),
        cport,
    }
}

/// The n-th client tuple of the range kept for new connections in mixed
/// traffic: 198.19.0.0/16, ports 1024–65535. Established flows (`flow`)
/// only reach it past 1.6 G flows.
pub fn new_conn_flow(n: u64) -> Flow {
    let host = ((n / 64_512) % 65_536) as u32;
    let a = (198u32 << 24 | 19 << 16) + host;
    Flow {
        caddr: a.to_be_bytes(),
        cport: 1024 + (n % 64_512) as u16,
    }
}

/// An IPv6 client flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flow6 {
    pub caddr: [u8; 16],
    pub cport: u16,
}

/// The n-th IPv6 client flow: the n-th IPv4 flow's host number and port,
/// the host in 2001:2:0:8000::/64 (beyond the gateway of port 0).
pub fn flow6(n: u64) -> Flow6 {
    let f = flow(n);
    let host = u32::from_be_bytes(f.caddr) - (198u32 << 24 | 18 << 16 | 128 << 8);
    let mut a = lab::v6(0x8000, 0);
    a[12..16].copy_from_slice(&(host + 1).to_be_bytes());
    Flow6 {
        caddr: a,
        cport: f.cport,
    }
}

/// A minimal IPv6 TCP segment (no options, no payload, a `FRAME_LEN6`
/// frame) with a valid checksum.
#[allow(clippy::too_many_arguments)]
pub fn tcp_frame6(
    out: &mut [u8],
    smac: [u8; 6],
    dmac: [u8; 6],
    src: [u8; 16],
    sport: u16,
    dst: [u8; 16],
    dport: u16,
    flags: u8,
) {
    out[..FRAME_LEN6].fill(0);
    out[0..6].copy_from_slice(&dmac);
    out[6..12].copy_from_slice(&smac);
    out[12..14].copy_from_slice(&[0x86, 0xdd]);
    ipv6::write_header(&mut out[14..54], 20, ipv6::NH_TCP, 64, src, dst);
    let t = &mut out[54..74];
    tcp_header(t, sport, dport, flags);
    let ph = checksum::pseudo_header_v6(&src, &dst, ipv6::NH_TCP, 20);
    let c = !checksum::fold(checksum::add(ph, checksum::sum(t)));
    t[16..18].copy_from_slice(&c.to_be_bytes());
}

/// Client → [VIP6]:80 segment for an IPv6 flow.
pub fn inbound6(out: &mut [u8], f: Flow6, flags: u8) {
    tcp_frame6(out, CLIENT_MAC, DIR0_MAC, f.caddr, f.cport, VIP6, 80, flags);
}

/// IPv6 real server → client (NAT66) or → local address (FULLNAT66).
pub fn reply6(out: &mut [u8], rs: usize, dst: [u8; 16], dport: u16, flags: u8) {
    let mut mac = RS_MAC;
    mac[5] += rs as u8;
    tcp_frame6(out, mac, DIR1_MAC, lab::rs6(rs), 80, dst, dport, flags);
}

fn eth_ip(
    out: &mut [u8],
    smac: [u8; 6],
    dmac: [u8; 6],
    ip_len: u16,
    proto: u8,
    src: [u8; 4],
    dst: [u8; 4],
) {
    out[..FRAME_LEN].fill(0);
    out[0..6].copy_from_slice(&dmac);
    out[6..12].copy_from_slice(&smac);
    out[12..14].copy_from_slice(&[0x08, 0x00]);
    ipv4::write_header(
        &mut out[14..],
        ip_len,
        0,
        ipv4::FLAG_DF,
        64,
        proto,
        src,
        dst,
    );
}

/// A 20-byte TCP header's fields (sequence 1, window 64240), the
/// checksum left to the caller (it needs the pseudo-header).
fn tcp_header(t: &mut [u8], sport: u16, dport: u16, flags: u8) {
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&1u32.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
}

/// A minimal TCP segment (no options, no payload) with valid checksums.
#[allow(clippy::too_many_arguments)]
pub fn tcp_frame(
    out: &mut [u8],
    smac: [u8; 6],
    dmac: [u8; 6],
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    flags: u8,
) {
    eth_ip(out, smac, dmac, 40, ipv4::PROTO_TCP, src, dst);
    let t = &mut out[34..54];
    tcp_header(t, sport, dport, flags);
    let ph = checksum::pseudo_header_v4(src, dst, ipv4::PROTO_TCP, 20);
    let c = !checksum::fold(checksum::add(ph, checksum::sum(t)));
    t[16..18].copy_from_slice(&c.to_be_bytes());
}

/// A UDP datagram with an 18-byte payload (a 60-byte frame), checksummed.
#[allow(clippy::too_many_arguments)]
pub fn udp_frame(
    out: &mut [u8],
    smac: [u8; 6],
    dmac: [u8; 6],
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
) {
    eth_ip(out, smac, dmac, 46, ipv4::PROTO_UDP, src, dst);
    let u = &mut out[34..60];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&26u16.to_be_bytes());
    for (i, b) in u[8..].iter_mut().enumerate() {
        *b = b'a' + i as u8;
    }
    let ph = checksum::pseudo_header_v4(src, dst, ipv4::PROTO_UDP, 26);
    let c = match !checksum::fold(checksum::add(ph, checksum::sum(u))) {
        0 => 0xffff,
        c => c,
    };
    u[6..8].copy_from_slice(&c.to_be_bytes());
}

/// An ICMP echo request from a client to the VIP (18 bytes of data).
pub fn icmp_echo(out: &mut [u8], src: [u8; 4], id: u16, seq: u16) {
    eth_ip(out, CLIENT_MAC, DIR0_MAC, 46, ipv4::PROTO_ICMP, src, VIP);
    let m = &mut out[34..60];
    m[0] = ferrovs_dataplane::wire::icmp::TYPE_ECHO_REQUEST;
    m[4..6].copy_from_slice(&id.to_be_bytes());
    m[6..8].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in m[8..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let c = checksum::checksum(m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
}

/// Frames for one worker, sent round and round.
pub struct Trace {
    pub bytes: Vec<u8>,
    pub frames: usize,
    /// Port each frame arrives on.
    pub ports: Vec<u8>,
    /// Bytes per slot, and the length of a full frame in it (the slot's
    /// meta bytes follow the frame).
    stride: usize,
    frame_len: usize,
}

impl Default for Trace {
    fn default() -> Self {
        Trace::new()
    }
}

impl Trace {
    /// An IPv4 trace (`STRIDE`, `FRAME_LEN`).
    pub fn new() -> Trace {
        Trace::with_capacity(0)
    }
    pub fn with_capacity(frames: usize) -> Trace {
        Trace::with_layout(frames, STRIDE, FRAME_LEN)
    }
    /// An IPv6 trace (`STRIDE6`, `FRAME_LEN6`).
    pub fn with_capacity6(frames: usize) -> Trace {
        Trace::with_layout(frames, STRIDE6, FRAME_LEN6)
    }
    pub fn with_layout(frames: usize, stride: usize, frame_len: usize) -> Trace {
        // Room for the two meta bytes after a full frame.
        assert!(frame_len + 2 <= stride);
        Trace {
            bytes: Vec::with_capacity(frames * stride),
            frames: 0,
            ports: Vec::with_capacity(frames),
            stride,
            frame_len,
        }
    }
    pub fn stride(&self) -> usize {
        self.stride
    }
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }
    pub fn push(&mut self, port: u8, f: impl FnOnce(&mut [u8])) {
        let start = self.bytes.len();
        self.bytes.resize(start + self.stride, 0);
        f(&mut self.bytes[start..start + self.stride]);
        self.ports.push(port);
        self.frames += 1;
    }
    /// Adds a frame of `len` bytes (at most the trace's frame length) with
    /// slot flags, read back by `frame_meta`.
    pub fn push_meta(&mut self, port: u8, len: usize, flags: u8, f: impl FnOnce(&mut [u8])) {
        assert!(len <= self.frame_len);
        let meta = self.frame_len;
        self.push(port, |b| {
            f(b);
            b[meta + META_LEN] = len as u8;
            b[meta + META_FLAGS] = flags;
        });
    }
    /// Copies frame `i` of another trace of the same layout (its slot,
    /// flags included).
    pub fn push_slot(&mut self, from: &Trace, i: usize) {
        assert_eq!((self.stride, self.frame_len), (from.stride, from.frame_len));
        let st = self.stride;
        self.bytes
            .extend_from_slice(&from.bytes[i * st..(i + 1) * st]);
        self.ports.push(from.ports[i]);
        self.frames += 1;
    }
    #[inline(always)]
    pub fn frame(&self, i: usize) -> &[u8] {
        let at = i * self.stride;
        &self.bytes[at..at + self.frame_len]
    }
    /// Frame `i` at its own length, and its slot flags.
    #[inline(always)]
    pub fn frame_meta(&self, i: usize) -> (&[u8], u8) {
        let s = &self.bytes[i * self.stride..(i + 1) * self.stride];
        let m = &s[self.frame_len..];
        (&s[..m[META_LEN] as usize], m[META_FLAGS])
    }
}

/// Client → VIP segment for a flow.
pub fn inbound(out: &mut [u8], f: Flow, flags: u8) {
    tcp_frame(out, CLIENT_MAC, DIR0_MAC, f.caddr, f.cport, VIP, 80, flags);
}

/// Client → VIP:53 datagram for a flow.
pub fn udp_inbound(out: &mut [u8], f: Flow) {
    udp_frame(out, CLIENT_MAC, DIR0_MAC, f.caddr, f.cport, VIP, 53);
}

/// Real server `rs`'s address and MAC.
fn rs_addr(rs: usize) -> ([u8; 4], [u8; 6]) {
    let mut rip = RS_NET;
    rip[3] = 11 + rs as u8;
    let mut mac = RS_MAC;
    mac[5] += rs as u8;
    (rip, mac)
}

/// Real server → client (NAT) or → local address (FULLNAT) segment.
pub fn reply(out: &mut [u8], rs: usize, dst: [u8; 4], dport: u16, flags: u8) {
    let (rip, mac) = rs_addr(rs);
    tcp_frame(out, mac, DIR1_MAC, rip, 80, dst, dport, flags);
}

/// Real server's port 53 → client (NAT) or local address (FULLNAT).
pub fn udp_reply(out: &mut [u8], rs: usize, dst: [u8; 4], dport: u16) {
    let (rip, mac) = rs_addr(rs);
    udp_frame(out, mac, DIR1_MAC, rip, 53, dst, dport);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovs_dataplane::wire::l4;

    #[test]
    fn flows_stay_in_the_benchmarking_range() {
        for n in [0, 49_999, 50_000, 10_000_000, 1 << 32, 1 << 40, u64::MAX] {
            let f = flow(n);
            assert_eq!(f.caddr[0], 198);
            assert!(
                f.caddr[1] == 18 && f.caddr[2] >= 128 || f.caddr[1] == 19,
                "{f:?}"
            );
            assert!((10_000..60_000).contains(&f.cport));
            let g = new_conn_flow(n);
            assert_eq!(&g.caddr[..2], &[198, 19]);
            assert!(g.cport >= 1024);
        }
        // Distinct below the wrap.
        assert_ne!(flow(49_999), flow(50_000));
        assert_ne!(new_conn_flow(64_511), new_conn_flow(64_512));
    }

    #[test]
    fn frames_parse_with_good_checksums() {
        let mut b = [0u8; STRIDE];
        inbound(&mut b, flow(7), l4::TCP_SYN);
        let ip = ipv4::parse(&b[14..FRAME_LEN]).expect("tcp frame");
        assert_eq!(ip.proto, ipv4::PROTO_TCP);
        let ph = checksum::pseudo_header_v4(ip.src, ip.dst, ipv4::PROTO_TCP, 20);
        assert_eq!(
            checksum::fold(checksum::add(ph, checksum::sum(&b[34..54]))),
            0xffff
        );

        udp_inbound(&mut b, flow(7));
        let ip = ipv4::parse(&b[14..FRAME_LEN]).expect("udp frame");
        assert_eq!((ip.proto, ip.total_len), (ipv4::PROTO_UDP, 46));
        let ph = checksum::pseudo_header_v4(ip.src, ip.dst, ipv4::PROTO_UDP, 26);
        assert_eq!(
            checksum::fold(checksum::add(ph, checksum::sum(&b[34..60]))),
            0xffff
        );

        icmp_echo(&mut b, flow(7).caddr, 1, 2);
        let ip = ipv4::parse(&b[14..FRAME_LEN]).expect("icmp frame");
        assert_eq!((ip.proto, ip.dst), (ipv4::PROTO_ICMP, VIP));
        assert_eq!(checksum::fold(checksum::sum(&b[34..60])), 0xffff);
    }

    #[test]
    fn ipv6_flows_stay_in_the_benchmarking_range() {
        for n in [0, 49_999, 50_000, 10_000_000, 1 << 40, u64::MAX] {
            let f = flow6(n);
            assert_eq!(&f.caddr[..8], &[0x20, 0x01, 0, 2, 0, 0, 0x80, 0]);
            assert_eq!(f.cport, flow(n).cport);
        }
        assert_ne!(flow6(49_999), flow6(50_000));
    }

    /// Checked by an independent parser: etherparse, as the dataplane's
    /// IPv6 golden tests do.
    #[test]
    fn ipv6_frames_parse_with_good_checksums() {
        use etherparse::{NetSlice, SlicedPacket, TransportSlice};
        let mut b = [0u8; STRIDE6];
        let check = |b: &[u8], src: [u8; 16], dst: [u8; 16], sport: u16, dport: u16| {
            let p = SlicedPacket::from_ethernet(&b[..FRAME_LEN6]).expect("parses");
            let Some(NetSlice::Ipv6(ip)) = &p.net else {
                panic!("not IPv6")
            };
            let h = ip.header().to_header();
            assert_eq!((h.source, h.destination), (src, dst));
            let Some(TransportSlice::Tcp(t)) = &p.transport else {
                panic!("not TCP")
            };
            assert_eq!((t.source_port(), t.destination_port()), (sport, dport));
            let calc = t.to_header().calc_checksum_ipv6(&h, t.payload()).unwrap();
            assert_eq!(t.checksum(), calc);
        };
        let f = flow6(7);
        inbound6(&mut b, f, l4::TCP_SYN);
        check(&b, f.caddr, VIP6, f.cport, 80);
        reply6(&mut b, 2, f.caddr, f.cport, l4::TCP_ACK);
        check(&b, lab::rs6(2), f.caddr, 80, f.cport);
        reply6(&mut b, 0, lab::laddr6(3), 4242, l4::TCP_ACK);
        check(&b, lab::rs6(0), lab::laddr6(3), 80, 4242);
    }

    #[test]
    fn ipv6_slots_keep_their_layout() {
        let mut t = Trace::with_capacity6(2);
        t.push_meta(0, FRAME_LEN6, RENEW, |b| inbound6(b, flow6(1), l4::TCP_ACK));
        t.push(1, |b| reply6(b, 1, flow6(2).caddr, 9, l4::TCP_ACK));
        assert_eq!(t.bytes.len(), 2 * STRIDE6);
        assert_eq!(t.frame(1).len(), FRAME_LEN6);
        assert_eq!(t.frame_meta(0), (t.frame(0), RENEW));
        // IPv4 traces keep their 64-byte slots with the meta bytes at 60.
        let mut u = Trace::new();
        u.push_meta(0, 30, RENEW, |b| inbound(b, flow(1), l4::TCP_ACK));
        assert_eq!((u.bytes.len(), u.bytes[60], u.bytes[61]), (64, 30, RENEW));
    }

    #[test]
    fn slots_keep_length_and_flags() {
        let mut t = Trace::new();
        t.push_meta(0, 30, RENEW, |b| inbound(b, flow(1), l4::TCP_ACK));
        t.push_meta(1, FRAME_LEN, 0, |b| inbound(b, flow(2), l4::TCP_ACK));
        let (f, fl) = t.frame_meta(0);
        assert_eq!((f.len(), fl), (30, RENEW));
        let (f, fl) = t.frame_meta(1);
        assert_eq!((f.len(), fl), (FRAME_LEN, 0));
        let mut u = Trace::new();
        u.push_slot(&t, 1);
        u.push_slot(&t, 0);
        assert_eq!(u.frame_meta(0).0, t.frame_meta(1).0);
        assert_eq!(u.frame_meta(1).1, RENEW);
        assert_eq!(u.ports, vec![1, 0]);
    }
}
