//! ICMPv4 (RFC 792): the error messages that quote a packet, and building
//! fragmentation-needed (RFC 1191).

use super::{checksum, ipv4};

pub const HEADER_LEN: usize = 8;
pub const TYPE_ECHO_REPLY: u8 = 0;
pub const TYPE_DEST_UNREACH: u8 = 3;
pub const TYPE_ECHO_REQUEST: u8 = 8;
pub const TYPE_TIME_EXCEEDED: u8 = 11;
pub const TYPE_PARAM_PROBLEM: u8 = 12;
pub const CODE_FRAG_NEEDED: u8 = 4;

/// Error messages carry the offending packet's IP header and at least its
/// first 8 payload bytes.
#[inline]
pub fn is_error(ty: u8) -> bool {
    matches!(
        ty,
        TYPE_DEST_UNREACH | TYPE_TIME_EXCEEDED | TYPE_PARAM_PROBLEM
    )
}

/// Recomputes the ICMP checksum over the whole message.
pub fn fill_checksum(p: &mut [u8]) {
    p[2] = 0;
    p[3] = 0;
    let c = checksum::checksum(p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
}

/// Length of the IP packet [`build_frag_needed`] writes.
pub fn frag_needed_len(orig_hlen: usize, orig_len: usize) -> usize {
    ipv4::MIN_HEADER_LEN + HEADER_LEN + (orig_hlen + 8).min(orig_len)
}

/// Builds a destination-unreachable / fragmentation-needed message in `out`
/// (starting at the IP header) about `orig` (starting at its IP header), from
/// `src` to the original sender, quoting the original header and 8 bytes as
/// RFC 792 asks. Returns the IP packet length.
pub fn build_frag_needed(
    out: &mut [u8],
    orig: &[u8],
    orig_hlen: usize,
    src: [u8; 4],
    mtu: u16,
) -> usize {
    let quote = (orig_hlen + 8).min(orig.len());
    let icmp_len = HEADER_LEN + quote;
    let total = ipv4::MIN_HEADER_LEN + icmp_len;
    let dst: [u8; 4] = orig[12..16].try_into().unwrap();
    ipv4::write_header(
        out,
        total as u16,
        0,
        ipv4::FLAG_DF,
        64,
        ipv4::PROTO_ICMP,
        src,
        dst,
    );
    let m = &mut out[ipv4::MIN_HEADER_LEN..total];
    m[0] = TYPE_DEST_UNREACH;
    m[1] = CODE_FRAG_NEEDED;
    m[4..6].fill(0);
    m[6..8].copy_from_slice(&mtu.to_be_bytes());
    m[HEADER_LEN..].copy_from_slice(&orig[..quote]);
    fill_checksum(m);
    total
}
