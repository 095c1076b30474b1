//! TCP (RFC 9293) and UDP (RFC 768) header fields that a load balancer reads
//! and rewrites: ports, TCP flags and the checksum.
//!
//! Functions take the slice that starts at the transport header.

use super::checksum::Delta;

pub const TCP_MIN_HEADER_LEN: usize = 20;
pub const UDP_HEADER_LEN: usize = 8;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// Offset of the checksum field inside the transport header.
#[inline(always)]
pub fn checksum_offset(proto: u8) -> usize {
    if proto == super::ipv4::PROTO_TCP {
        16
    } else {
        6
    }
}

/// Minimum header length for `proto` (TCP: the data offset is checked too).
#[inline]
pub fn header_ok(proto: u8, p: &[u8]) -> bool {
    if proto == super::ipv4::PROTO_TCP {
        p.len() >= TCP_MIN_HEADER_LEN && {
            let doff = (p[12] >> 4) as usize * 4;
            doff >= TCP_MIN_HEADER_LEN && doff <= p.len()
        }
    } else {
        p.len() >= UDP_HEADER_LEN
    }
}

/// A view of the first bytes of a TCP or UDP header, which both lay out
/// alike: the ports. All the worker's prefetch pass reads of a segment;
/// the TCP fields beyond are [`super::tcp::TcpPacket`]'s.
#[derive(Clone, Copy, Debug)]
pub struct Ports<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ports<T> {
    /// None when the buffer cannot hold both ports.
    #[inline(always)]
    pub fn new_checked(buf: T) -> Option<Ports<T>> {
        (buf.as_ref().len() >= 4).then_some(Ports { buf })
    }
    #[inline(always)]
    pub fn src_port(&self) -> u16 {
        src_port(self.buf.as_ref())
    }
    #[inline(always)]
    pub fn dst_port(&self) -> u16 {
        dst_port(self.buf.as_ref())
    }
}

#[inline(always)]
pub fn src_port(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[0], p[1]])
}
#[inline(always)]
pub fn dst_port(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[2], p[3]])
}
#[inline(always)]
pub fn tcp_flags(p: &[u8]) -> u8 {
    p[13]
}
#[inline(always)]
pub fn set_src_port_raw(p: &mut [u8], v: u16) {
    p[0..2].copy_from_slice(&v.to_be_bytes())
}
#[inline(always)]
pub fn set_dst_port_raw(p: &mut [u8], v: u16) {
    p[2..4].copy_from_slice(&v.to_be_bytes())
}

/// Applies an accumulated change (addresses from the pseudo-header and ports)
/// to the transport checksum. UDP checksum 0 stays 0 (no checksum).
#[inline(always)]
pub fn apply_delta(proto: u8, p: &mut [u8], d: &Delta) {
    let off = checksum_offset(proto);
    let old = u16::from_be_bytes([p[off], p[off + 1]]);
    let new = if proto == super::ipv4::PROTO_TCP {
        d.apply(old)
    } else {
        d.apply_udp(old)
    };
    p[off..off + 2].copy_from_slice(&new.to_be_bytes());
}
