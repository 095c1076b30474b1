//! Masquerading (`-m`, `lb_kind NAT`): DNAT to the real server on the way
//! in (with port mapping), SNAT back to the VIP on the reply. Replies are
//! routed through the director, which treats them as a router does
//! (RFC 1812 §5.3.1): a reply whose TTL would reach 0 is dropped, the
//! others leave with the TTL one lower.

use super::{rewrite_tuple, L34};
use crate::wire::ipv4;

/// Client → real server: destination VIP:vport becomes RIP:rport.
#[inline(always)]
pub fn inbound(frame: &mut [u8], o: L34, daddr: [u8; 4], dport: u16) {
    rewrite_tuple(frame, o, None, Some((daddr, dport)));
}

/// [`inbound`] for a later IPv4 fragment (`frag.rs`): the address only;
/// its datagram's ports and transport checksum are in the first fragment.
pub fn inbound_fragment(frame: &mut [u8], o: L34, daddr: [u8; 4]) {
    ipv4::set_dst(&mut frame[o.l3..], daddr);
}

/// [`outbound`] for a later IPv4 fragment.
pub fn outbound_fragment(frame: &mut [u8], o: L34, vaddr: [u8; 4]) {
    ipv4::set_src(&mut frame[o.l3..], vaddr);
    ipv4::dec_ttl(&mut frame[o.l3..]);
}

/// Whether a reply with this TTL must be dropped rather than routed on.
#[inline(always)]
pub fn reply_ttl_expired(ttl: u8) -> bool {
    ttl <= 1
}

/// Real server → client: source RIP:rport becomes VIP:vport, and the TTL
/// drops by one. The caller has checked [`reply_ttl_expired`].
#[inline(always)]
pub fn outbound(frame: &mut [u8], o: L34, vaddr: [u8; 4], vport: u16) {
    rewrite_tuple(frame, o, Some((vaddr, vport)), None);
    ipv4::dec_ttl(&mut frame[o.l3..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_routed_on_only_with_a_ttl_above_one() {
        assert!(reply_ttl_expired(0));
        assert!(reply_ttl_expired(1));
        assert!(!reply_ttl_expired(2));
    }
}
