//! FULLNAT (DPVS `lb_kind FNAT`): both addresses change, so real servers
//! need no route back through the director. The rewrites here are pure;
//! the local address and port come from the worker's
//! [`PortAllocator`](super::alloc::PortAllocator) (`fwd/alloc.rs`), which
//! hands out only ports of the worker's own slice (port % workers ==
//! worker), so a reply's destination port names the worker that owns the
//! connection.

use super::{rewrite_tuple, L34};
use crate::wire::ipv4;

pub use super::alloc::ports_per_worker;

/// Client → real server: CIP:cport → VIP:vport becomes LIP:lport → RIP:rport.
#[inline(always)]
pub fn inbound(frame: &mut [u8], o: L34, laddr: [u8; 4], lport: u16, daddr: [u8; 4], dport: u16) {
    rewrite_tuple(frame, o, Some((laddr, lport)), Some((daddr, dport)));
}

/// Real server → client: RIP:rport → LIP:lport becomes VIP:vport → CIP:cport.
#[inline(always)]
pub fn outbound(frame: &mut [u8], o: L34, vaddr: [u8; 4], vport: u16, caddr: [u8; 4], cport: u16) {
    rewrite_tuple(frame, o, Some((vaddr, vport)), Some((caddr, cport)));
}

/// [`inbound`] for a later IPv4 fragment (`frag.rs`): addresses only; its
/// datagram's ports and transport checksum are in the first fragment.
pub fn inbound_fragment(frame: &mut [u8], o: L34, laddr: [u8; 4], daddr: [u8; 4]) {
    ipv4::set_src(&mut frame[o.l3..], laddr);
    ipv4::set_dst(&mut frame[o.l3..], daddr);
}

/// [`outbound`] for a later IPv4 fragment.
pub fn outbound_fragment(frame: &mut [u8], o: L34, vaddr: [u8; 4], caddr: [u8; 4]) {
    ipv4::set_src(&mut frame[o.l3..], vaddr);
    ipv4::set_dst(&mut frame[o.l3..], caddr);
}
