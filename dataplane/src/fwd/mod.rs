//! The four LVS forwarding modes as pure rewrites of a frame in place, plus
//! the translation of ICMP errors that quote a flow.

pub mod alloc;
pub mod dr;
pub mod fullnat;
pub mod icmp;
pub mod nat;
pub mod tun;

use crate::wire::checksum::Delta;
use crate::wire::{ipv4, l4};

/// Offsets of a parsed IPv4 TCP/UDP packet inside its frame.
#[derive(Clone, Copy, Debug)]
pub struct L34 {
    pub l3: usize,
    pub l4: usize,
    pub proto: u8,
}

/// Rewrites source and/or destination address and port of a TCP/UDP packet,
/// updating the IP header checksum and the transport checksum (whose
/// pseudo-header covers the addresses) incrementally, RFC 1624.
#[inline]
pub fn rewrite_tuple(
    frame: &mut [u8],
    o: L34,
    src: Option<([u8; 4], u16)>,
    dst: Option<([u8; 4], u16)>,
) {
    let mut d = Delta::new();
    if let Some((a, p)) = src {
        let old_a: [u8; 4] = frame[o.l3 + 12..o.l3 + 16].try_into().unwrap();
        let old_p = l4::src_port(&frame[o.l4..]);
        ipv4::set_src(&mut frame[o.l3..], a);
        l4::set_src_port_raw(&mut frame[o.l4..], p);
        d.addr(old_a, a).u16(old_p, p);
    }
    if let Some((a, p)) = dst {
        let old_a: [u8; 4] = frame[o.l3 + 16..o.l3 + 20].try_into().unwrap();
        let old_p = l4::dst_port(&frame[o.l4..]);
        ipv4::set_dst(&mut frame[o.l3..], a);
        l4::set_dst_port_raw(&mut frame[o.l4..], p);
        d.addr(old_a, a).u16(old_p, p);
    }
    l4::apply_delta(o.proto, &mut frame[o.l4..], &d);
}
