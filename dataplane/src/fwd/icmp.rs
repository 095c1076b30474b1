//! ICMP errors that quote a load-balanced packet are translated like the
//! flow they belong to (IPVS `ip_vs_in_icmp` / `ip_vs_out_icmp`): the outer
//! addresses, the quoted header's addresses and ports, the quoted IP
//! checksum and the ICMP checksum are rewritten. The quoted transport
//! checksum is left alone, as IPVS leaves it (only 8 bytes are quoted).
//! The worker finds the connection an error belongs to; what the error
//! becomes for that connection's forwarding mode is decided here
//! ([`from_client`], [`from_server`]). Echo requests to a VIP are answered
//! ([`echo_reply`]).

use crate::conn::{Conn, Tuple};
use crate::service::FwdMethod;
use crate::wire::{checksum, icmp, ipv4, l4};

/// The packet an ICMP error quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quoted {
    /// Offset of the ICMP header in the frame.
    pub icmp: usize,
    /// Offset of the quoted IP header in the frame.
    pub l3: usize,
    pub ihl: usize,
    pub proto: u8,
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub sport: u16,
    pub dport: u16,
}

impl Quoted {
    /// The flow's tuple in the direction the error travels, opposite to
    /// the quoted packet's: from a client about a reply (VIP → client), the
    /// inbound tuple; from a real server about a packet sent to it
    /// ((client | local address) → RIP), the reply tuple.
    #[inline]
    pub fn flow(&self) -> Tuple {
        Tuple {
            proto: self.proto,
            saddr: self.dst,
            sport: self.dport,
            daddr: self.src,
            dport: self.sport,
        }
    }
}

/// Parses an ICMP error at `icmp_off` that ends at `end`. None when it is
/// not an error, or quotes too little to name a TCP/UDP flow.
pub fn parse_error(frame: &[u8], icmp_off: usize, end: usize) -> Option<Quoted> {
    let m = frame.get(icmp_off..end)?;
    if m.len() < icmp::HEADER_LEN + ipv4::MIN_HEADER_LEN + 8 || !icmp::is_error(m[0]) {
        return None;
    }
    let q = &m[icmp::HEADER_LEN..];
    if q[0] >> 4 != 4 {
        return None;
    }
    let ihl = (q[0] & 0x0f) as usize * 4;
    if ihl < ipv4::MIN_HEADER_LEN || q.len() < ihl + 8 {
        return None;
    }
    let proto = q[9];
    if proto != ipv4::PROTO_TCP && proto != ipv4::PROTO_UDP {
        return None;
    }
    Some(Quoted {
        icmp: icmp_off,
        l3: icmp_off + icmp::HEADER_LEN,
        ihl,
        proto,
        src: q[12..16].try_into().unwrap(),
        dst: q[16..20].try_into().unwrap(),
        sport: l4::src_port(&q[ihl..]),
        dport: l4::dst_port(&q[ihl..]),
    })
}

/// New values for an ICMP error's outer and quoted addresses.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rewrite {
    pub outer_src: Option<[u8; 4]>,
    pub outer_dst: Option<[u8; 4]>,
    pub quoted_src: Option<([u8; 4], u16)>,
    pub quoted_dst: Option<([u8; 4], u16)>,
}

/// Applies `r` to the error at `q` inside the IP packet at `l3` ending at
/// `end`.
pub fn translate(frame: &mut [u8], l3: usize, end: usize, q: &Quoted, r: &Rewrite) {
    if let Some(a) = r.outer_src {
        ipv4::set_src(&mut frame[l3..], a);
    }
    if let Some(a) = r.outer_dst {
        ipv4::set_dst(&mut frame[l3..], a);
    }
    let ql = q.l3;
    if let Some((a, p)) = r.quoted_src {
        frame[ql + 12..ql + 16].copy_from_slice(&a);
        l4::set_src_port_raw(&mut frame[ql + q.ihl..], p);
    }
    if let Some((a, p)) = r.quoted_dst {
        frame[ql + 16..ql + 20].copy_from_slice(&a);
        l4::set_dst_port_raw(&mut frame[ql + q.ihl..], p);
    }
    ipv4::fill_checksum(&mut frame[ql..ql + q.ihl]);
    icmp::fill_checksum(&mut frame[q.icmp..end]);
}

/// What an error from the client side, about a reply of `c`, becomes on
/// its way to the real server: NAT and FULLNAT translate it like the flow's
/// packets, DR forwards it untouched. None for TUN: the error is tunnelled
/// to the real server as the flow's packets are.
#[inline]
pub fn from_client(c: &Conn) -> Option<Rewrite> {
    match c.fwd {
        FwdMethod::Nat => Some(Rewrite {
            outer_dst: Some(c.daddr),
            quoted_src: Some((c.daddr, c.dport)),
            ..Default::default()
        }),
        FwdMethod::FullNat => Some(Rewrite {
            outer_src: Some(c.laddr),
            outer_dst: Some(c.daddr),
            quoted_src: Some((c.daddr, c.dport)),
            quoted_dst: Some((c.laddr, c.lport)),
        }),
        FwdMethod::Dr => Some(Rewrite::default()),
        FwdMethod::Tun => None,
    }
}

/// What an error from a real server, about a packet of `c` the director
/// sent it, becomes on its way to the client. `fullnat`: the error was
/// addressed to a local address (else to the client, through us).
#[inline]
pub fn from_server(c: &Conn, fullnat: bool) -> Rewrite {
    if fullnat {
        Rewrite {
            outer_src: Some(c.vaddr),
            outer_dst: Some(c.caddr),
            quoted_src: Some((c.caddr, c.cport)),
            quoted_dst: Some((c.vaddr, c.vport)),
        }
    } else {
        Rewrite {
            outer_src: Some(c.vaddr),
            quoted_dst: Some((c.vaddr, c.vport)),
            ..Default::default()
        }
    }
}

/// Turns the echo request at `icmp_off` (inside the IP packet at `l3`,
/// ending at `end`) into its reply in place: addresses swapped, type
/// changed, checksums updated incrementally. The caller sends it back to
/// the request's source.
#[inline]
pub fn echo_reply(frame: &mut [u8], l3: usize, icmp_off: usize, end: usize) {
    let src: [u8; 4] = frame[l3 + 12..l3 + 16].try_into().unwrap();
    let dst: [u8; 4] = frame[l3 + 16..l3 + 20].try_into().unwrap();
    ipv4::set_src(&mut frame[l3..], dst);
    ipv4::set_dst(&mut frame[l3..], src);
    let m = &mut frame[icmp_off..end];
    let old = u16::from_be_bytes([m[0], m[1]]);
    m[0] = icmp::TYPE_ECHO_REPLY;
    let c = checksum::update16(
        u16::from_be_bytes([m[2], m[3]]),
        old,
        u16::from_be_bytes([m[0], m[1]]),
    );
    m[2..4].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(fwd: FwdMethod) -> Conn {
        Conn {
            caddr: [203, 0, 113, 7],
            cport: 40000,
            vaddr: [192, 0, 2, 10],
            vport: 80,
            daddr: [10, 0, 0, 2],
            dport: 8080,
            laddr: [10, 0, 0, 100],
            lport: 5000,
            proto: ipv4::PROTO_TCP,
            fwd,
            ..Conn::EMPTY
        }
    }

    #[test]
    fn errors_from_clients_follow_the_mode() {
        let n = from_client(&conn(FwdMethod::Nat)).unwrap();
        assert_eq!(n.outer_src, None);
        assert_eq!(n.outer_dst, Some([10, 0, 0, 2]));
        assert_eq!(n.quoted_src, Some(([10, 0, 0, 2], 8080)));
        assert_eq!(n.quoted_dst, None);
        let f = from_client(&conn(FwdMethod::FullNat)).unwrap();
        assert_eq!(f.outer_src, Some([10, 0, 0, 100]));
        assert_eq!(f.quoted_dst, Some(([10, 0, 0, 100], 5000)));
        let d = from_client(&conn(FwdMethod::Dr)).unwrap();
        assert!(d.outer_src.is_none() && d.outer_dst.is_none());
        assert!(d.quoted_src.is_none() && d.quoted_dst.is_none());
        assert!(from_client(&conn(FwdMethod::Tun)).is_none());
    }

    #[test]
    fn errors_from_servers_go_back_to_the_client() {
        let c = conn(FwdMethod::Nat);
        let n = from_server(&c, false);
        assert_eq!(n.outer_src, Some(c.vaddr));
        assert_eq!(n.outer_dst, None);
        assert_eq!(n.quoted_dst, Some((c.vaddr, c.vport)));
        let f = from_server(&conn(FwdMethod::FullNat), true);
        assert_eq!(f.outer_dst, Some(c.caddr));
        assert_eq!(f.quoted_src, Some((c.caddr, c.cport)));
    }

    #[test]
    fn an_echo_request_becomes_its_reply() {
        let mut p = [0u8; 20 + 12];
        ipv4::write_header(
            &mut p,
            32,
            7,
            0,
            64,
            ipv4::PROTO_ICMP,
            [203, 0, 113, 7],
            [192, 0, 2, 10],
        );
        p[20] = icmp::TYPE_ECHO_REQUEST;
        p[24..32].copy_from_slice(&[0, 1, 0, 2, b'p', b'i', b'n', b'g']);
        icmp::fill_checksum(&mut p[20..]);
        echo_reply(&mut p, 0, 20, 32);
        assert_eq!(&p[12..16], &[192, 0, 2, 10]);
        assert_eq!(&p[16..20], &[203, 0, 113, 7]);
        assert_eq!(p[20], icmp::TYPE_ECHO_REPLY);
        assert_eq!(checksum::checksum(&p[..20]), 0);
        assert_eq!(checksum::checksum(&p[20..]), 0);
    }
}
