//! NAT66 and FULLNAT66: the IPv4 rewrites of `nat.rs` and `fullnat.rs` for
//! IPv6 packets. IPv6 has no header checksum; the transport checksum covers
//! the addresses through the IPv6 pseudo-header (RFC 8200 §8.1) and is
//! updated incrementally (RFC 1624) for the address and port changes.
//! Extension headers stay where they are: the rewrite touches the fixed
//! header and the transport header at `l4`, past them. (A Routing header
//! with segments left never gets here: the worker refuses it, so the
//! destination in the fixed header is the one the pseudo-header uses.)

use crate::wire::checksum::Delta;
use crate::wire::{ipv6, l4};

/// Offsets of a parsed IPv6 TCP/UDP packet inside its frame.
#[derive(Clone, Copy, Debug)]
pub struct L36 {
    pub l3: usize,
    pub l4: usize,
    /// Where the IPv6 packet ends (Ethernet padding may follow).
    pub end: usize,
    pub proto: u8,
}

/// Rewrites the source and/or destination address and port of an IPv6
/// TCP/UDP packet, with the transport checksum updated.
#[inline]
pub fn rewrite_tuple6(
    frame: &mut [u8],
    o: L36,
    src: Option<(&[u8; 16], u16)>,
    dst: Option<(&[u8; 16], u16)>,
) {
    let mut d = Delta::new();
    if let Some((a, p)) = src {
        let old_a = ipv6::src(&frame[o.l3..]);
        let old_p = l4::src_port(&frame[o.l4..]);
        ipv6::set_src(&mut frame[o.l3..], *a);
        l4::set_src_port_raw(&mut frame[o.l4..], p);
        d.addr6(&old_a, a).u16(old_p, p);
    }
    if let Some((a, p)) = dst {
        let old_a = ipv6::dst(&frame[o.l3..]);
        let old_p = l4::dst_port(&frame[o.l4..]);
        ipv6::set_dst(&mut frame[o.l3..], *a);
        l4::set_dst_port_raw(&mut frame[o.l4..], p);
        d.addr6(&old_a, a).u16(old_p, p);
    }
    l4::apply_delta(o.proto, &mut frame[o.l4..o.end], &d);
}

/// A later fragment (no transport header: its first fragment's checksum
/// update covers the datagram): the addresses alone; the hop limit drops
/// by one when `hop`, as [`outbound`] lowers it.
#[inline]
pub fn fragment(
    frame: &mut [u8],
    l3: usize,
    src: Option<&[u8; 16]>,
    dst: Option<&[u8; 16]>,
    hop: bool,
) {
    if let Some(a) = src {
        ipv6::set_src(&mut frame[l3..], *a);
    }
    if let Some(a) = dst {
        ipv6::set_dst(&mut frame[l3..], *a);
    }
    if hop {
        ipv6::dec_hop_limit(&mut frame[l3..]);
    }
}

/// NAT66, client → real server: VIP:vport becomes RIP:rport.
#[inline(always)]
pub fn inbound(frame: &mut [u8], o: L36, daddr: &[u8; 16], dport: u16) {
    rewrite_tuple6(frame, o, None, Some((daddr, dport)));
}

/// Whether a reply with this hop limit must be dropped rather than routed
/// on (RFC 8200 §3: a router never forwards with hop limit 0).
#[inline(always)]
pub fn reply_hop_limit_expired(hop_limit: u8) -> bool {
    hop_limit <= 1
}

/// NAT66, real server → client: RIP:rport becomes VIP:vport, and the hop
/// limit drops by one (the director routes replies). The caller has
/// checked [`reply_hop_limit_expired`].
#[inline(always)]
pub fn outbound(frame: &mut [u8], o: L36, vaddr: &[u8; 16], vport: u16) {
    rewrite_tuple6(frame, o, Some((vaddr, vport)), None);
    ipv6::dec_hop_limit(&mut frame[o.l3..]);
}

/// FULLNAT66, client → real server: CIP:cport → VIP:vport becomes
/// LIP:lport → RIP:rport.
#[inline(always)]
pub fn fullnat_inbound(
    frame: &mut [u8],
    o: L36,
    laddr: &[u8; 16],
    lport: u16,
    daddr: &[u8; 16],
    dport: u16,
) {
    rewrite_tuple6(frame, o, Some((laddr, lport)), Some((daddr, dport)));
}

/// FULLNAT66, real server → client: RIP:rport → LIP:lport becomes
/// VIP:vport → CIP:cport.
#[inline(always)]
pub fn fullnat_outbound(
    frame: &mut [u8],
    o: L36,
    vaddr: &[u8; 16],
    vport: u16,
    caddr: &[u8; 16],
    cport: u16,
) {
    rewrite_tuple6(frame, o, Some((vaddr, vport)), Some((caddr, cport)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

    const C: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    const V: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64];
    const R: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11];
    const L: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];

    fn tcp(src: [u8; 16], sp: u16, dst: [u8; 16], dp: u16, hl: u8) -> Vec<u8> {
        let mut v = vec![];
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv6(src, dst, hl)
            .tcp(sp, dp, 7, 1000)
            .syn()
            .write(&mut v, b"hello")
            .unwrap();
        v
    }

    fn udp(src: [u8; 16], sp: u16, dst: [u8; 16], dp: u16) -> Vec<u8> {
        let mut v = vec![];
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv6(src, dst, 64)
            .udp(sp, dp)
            .write(&mut v, b"query")
            .unwrap();
        v
    }

    fn o(f: &[u8], proto: u8) -> L36 {
        L36 {
            l3: 14,
            l4: 54,
            end: f.len(),
            proto,
        }
    }

    #[test]
    fn every_rewrite_equals_a_packet_built_from_scratch() {
        let mut f = tcp(C, 40000, V, 80, 64);
        let x = o(&f, 6);
        inbound(&mut f, x, &R, 8080);
        assert_eq!(f, tcp(C, 40000, R, 8080, 64));

        let mut f = tcp(R, 8080, C, 40000, 64);
        let x = o(&f, 6);
        outbound(&mut f, x, &V, 80);
        assert_eq!(f, tcp(V, 80, C, 40000, 63));

        let mut f = tcp(C, 40000, V, 80, 64);
        let x = o(&f, 6);
        fullnat_inbound(&mut f, x, &L, 5000, &R, 8080);
        assert_eq!(f, tcp(L, 5000, R, 8080, 64));

        let mut f = tcp(R, 8080, L, 5000, 64);
        let x = o(&f, 6);
        fullnat_outbound(&mut f, x, &V, 80, &C, 40000);
        assert_eq!(f, tcp(V, 80, C, 40000, 64));

        let mut f = udp(C, 5353, V, 53);
        let x = o(&f, 17);
        fullnat_inbound(&mut f, x, &L, 5001, &R, 53);
        assert_eq!(f, udp(L, 5001, R, 53));
        let p = SlicedPacket::from_ethernet(&f).unwrap();
        let Some(TransportSlice::Udp(u)) = p.transport else {
            panic!()
        };
        let Some(etherparse::NetSlice::Ipv6(ip)) = p.net else {
            panic!()
        };
        let calc = u
            .to_header()
            .calc_checksum_ipv6(&ip.header().to_header(), u.payload())
            .unwrap();
        assert_eq!(u.checksum(), calc);
    }

    #[test]
    fn hop_limit_of_replies() {
        assert!(reply_hop_limit_expired(0));
        assert!(reply_hop_limit_expired(1));
        assert!(!reply_hop_limit_expired(2));
    }
}
