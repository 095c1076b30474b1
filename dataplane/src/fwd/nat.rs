//! Masquerading (`-m`, `lb_kind NAT`): DNAT to the real server on the way
//! in (with port mapping), SNAT back to the VIP on the reply.

use super::{rewrite_tuple, L34};

/// Client → real server: destination VIP:vport becomes RIP:rport.
#[inline(always)]
pub fn inbound(frame: &mut [u8], o: L34, daddr: [u8; 4], dport: u16) {
    rewrite_tuple(frame, o, None, Some((daddr, dport)));
}

/// Real server → client: source RIP:rport becomes VIP:vport.
#[inline(always)]
pub fn outbound(frame: &mut [u8], o: L34, vaddr: [u8; 4], vport: u16) {
    rewrite_tuple(frame, o, Some((vaddr, vport)), None);
}
