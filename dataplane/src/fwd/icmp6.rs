//! ICMPv6 errors that quote a load-balanced IPv6 flow, translated like the
//! flow (the IPv6 counterpart of `icmp.rs`): the outer addresses and the
//! quoted packet's addresses and ports are rewritten so that the error
//! reaches the other end of the connection about the packet that end sent.
//! RFC 4443 §2.4 errors carry as much of the offending packet as fits in
//! 1280 bytes; only the quoted transport header's ports are needed. The
//! ICMPv6 checksum covers the pseudo-header and the whole message
//! (RFC 4443 §2.3) and is computed afresh (an error is a slow path, at most
//! 1280 bytes); the quoted transport checksum is left as quoted, as for
//! IPv4.

use crate::conn::{Addrs6, Conn, Tuple6};
use crate::service::FwdMethod;
use crate::wire::{icmpv6, ipv4, ipv6, l4};

/// The packet an ICMPv6 error quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quoted6 {
    /// Offset of the ICMPv6 message in the frame.
    pub icmp: usize,
    /// Offset of the quoted IPv6 header in the frame.
    pub l3: usize,
    /// Offset of the quoted transport header in the frame.
    pub l4: usize,
    pub proto: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    pub dport: u16,
}

impl Quoted6 {
    /// The flow the quoted packet belongs to, seen from its receiver (the
    /// quoted packet went the other way).
    #[inline]
    pub fn flow(&self) -> Tuple6 {
        Tuple6 {
            proto: self.proto,
            saddr: self.dst,
            sport: self.dport,
            daddr: self.src,
            dport: self.sport,
        }
    }
}

/// Parses the ICMPv6 error at `icmp_off..end` of `frame`: an error type
/// quoting a TCP or UDP packet whose ports are there to read (a first
/// fragment at most; the quoted extension headers walked as bounded as
/// the outer ones).
pub fn parse_error(frame: &[u8], icmp_off: usize, end: usize) -> Option<Quoted6> {
    let m = frame.get(icmp_off..end)?;
    if m.len() < icmpv6::HEADER_LEN + ipv6::HEADER_LEN + 8 || !icmpv6::is_error(m[0]) {
        return None;
    }
    let q = &m[icmpv6::HEADER_LEN..];
    let info = ipv6::parse_quoted(q).ok()?;
    if info.proto != ipv4::PROTO_TCP && info.proto != ipv4::PROTO_UDP {
        return None;
    }
    if matches!(info.frag, Some(f) if f.offset != 0) {
        return None;
    }
    let t = q.get(info.l4_offset..info.l4_offset + 4)?;
    let l3 = icmp_off + icmpv6::HEADER_LEN;
    Some(Quoted6 {
        icmp: icmp_off,
        l3,
        l4: l3 + info.l4_offset,
        proto: info.proto,
        src: info.src,
        dst: info.dst,
        sport: l4::src_port(t),
        dport: l4::dst_port(t),
    })
}

/// What a translation changes; `None` leaves a field as it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rewrite6 {
    pub outer_src: Option<[u8; 16]>,
    pub outer_dst: Option<[u8; 16]>,
    pub quoted_src: Option<([u8; 16], u16)>,
    pub quoted_dst: Option<([u8; 16], u16)>,
}

/// Applies `r` to the error whose IPv6 header is at `l3` and which ends at
/// `end`, then fills the ICMPv6 checksum.
pub fn translate(frame: &mut [u8], l3: usize, end: usize, q: &Quoted6, r: &Rewrite6) {
    if let Some(a) = r.outer_src {
        ipv6::set_src(&mut frame[l3..], a);
    }
    if let Some(a) = r.outer_dst {
        ipv6::set_dst(&mut frame[l3..], a);
    }
    if let Some((a, p)) = r.quoted_src {
        ipv6::set_src(&mut frame[q.l3..], a);
        l4::set_src_port_raw(&mut frame[q.l4..], p);
    }
    if let Some((a, p)) = r.quoted_dst {
        ipv6::set_dst(&mut frame[q.l3..], a);
        l4::set_dst_port_raw(&mut frame[q.l4..], p);
    }
    let src = ipv6::src(&frame[l3..]);
    let dst = ipv6::dst(&frame[l3..]);
    icmpv6::fill_checksum(&mut frame[q.icmp..end], &src, &dst);
}

/// An error from the client about a reply it got (VIP → client), for the
/// real server: as `icmp::from_client`. None for TUN (the error is
/// tunnelled as it is) and for NAT64 (translated to ICMPv4 instead).
#[inline]
pub fn from_client(c: &Conn, a: &Addrs6) -> Option<Rewrite6> {
    match c.fwd {
        FwdMethod::Nat => Some(Rewrite6 {
            outer_dst: Some(a.daddr),
            quoted_src: Some((a.daddr, c.dport)),
            ..Default::default()
        }),
        FwdMethod::FullNat => Some(Rewrite6 {
            outer_src: Some(a.laddr),
            outer_dst: Some(a.daddr),
            quoted_src: Some((a.daddr, c.dport)),
            quoted_dst: Some((a.laddr, c.lport)),
        }),
        FwdMethod::Dr => Some(Rewrite6::default()),
        FwdMethod::Tun => None,
    }
}

/// An error from a real server about a packet the director forwarded to
/// it, for the client: from the VIP, quoting client → VIP.
#[inline]
pub fn from_server(c: &Conn, a: &Addrs6, fullnat: bool) -> Rewrite6 {
    if fullnat {
        Rewrite6 {
            outer_src: Some(a.vaddr),
            outer_dst: Some(a.caddr),
            quoted_src: Some((a.caddr, c.cport)),
            quoted_dst: Some((a.vaddr, c.vport)),
        }
    } else {
        Rewrite6 {
            outer_src: Some(a.vaddr),
            quoted_dst: Some((a.vaddr, c.vport)),
            ..Default::default()
        }
    }
}
