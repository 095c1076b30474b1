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
pub const CODE_TTL_EXCEEDED: u8 = 0;

/// The most of the offending packet Linux's `icmp_send` quotes: the error
/// fits 576 bytes (RFC 1812 §4.3.2.3), less its own IP and ICMP headers.
pub const MAX_QUOTE: usize = 576 - ipv4::MIN_HEADER_LEN - HEADER_LEN;

/// Length of the IP packet [`build_time_exceeded`] writes about an
/// `orig_len`-byte packet.
pub fn time_exceeded_len(orig_len: usize) -> usize {
    ipv4::MIN_HEADER_LEN + HEADER_LEN + orig_len.min(MAX_QUOTE)
}

/// Builds a time-exceeded / TTL-exceeded-in-transit message (type 11 code
/// 0) in `out` (starting at the IP header) about `orig` (its IP packet, no
/// padding), from `src` to the original sender. Like Linux's `icmp_send` it
/// quotes as much of the packet as fits 576 bytes. Returns the IP packet
/// length, or 0 when `orig` is shorter than an IP header or `out` too short.
pub fn build_time_exceeded(out: &mut [u8], orig: &[u8], src: [u8; 4]) -> usize {
    if orig.len() < ipv4::MIN_HEADER_LEN {
        return 0;
    }
    let quote = orig.len().min(MAX_QUOTE);
    let total = ipv4::MIN_HEADER_LEN + HEADER_LEN + quote;
    if out.len() < total {
        return 0;
    }
    let dst = [orig[12], orig[13], orig[14], orig[15]];
    ipv4::write_header(out, total as u16, 0, 0, 64, ipv4::PROTO_ICMP, src, dst);
    let m = &mut out[ipv4::MIN_HEADER_LEN..total];
    m[0] = TYPE_TIME_EXCEEDED;
    m[1] = CODE_TTL_EXCEEDED;
    m[4..8].fill(0);
    m[HEADER_LEN..].copy_from_slice(&orig[..quote]);
    fill_checksum(m);
    total
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(payload: usize) -> Vec<u8> {
        let mut v = vec![];
        etherparse::PacketBuilder::ipv4([198, 18, 0, 2], [198, 18, 0, 100], 1)
            .udp(5000, 53)
            .write(&mut v, &vec![7u8; payload])
            .unwrap();
        v
    }

    #[test]
    fn time_exceeded_quotes_up_to_576_bytes() {
        for (payload, quote) in [(10, 20 + 8 + 10), (2000, MAX_QUOTE)] {
            let orig = packet(payload);
            let mut out = vec![0u8; 600];
            let n = build_time_exceeded(&mut out, &orig, [198, 18, 0, 100]);
            assert_eq!(n, time_exceeded_len(orig.len()));
            assert_eq!(n, 20 + 8 + quote);
            assert!(n <= 576);
            let (h, rest) = etherparse::Ipv4Header::from_slice(&out[..n]).unwrap();
            assert_eq!(h.header_checksum, h.calc_header_checksum());
            assert_eq!(h.source, [198, 18, 0, 100]);
            assert_eq!(h.destination, [198, 18, 0, 2]);
            assert_eq!(h.protocol, etherparse::IpNumber::ICMP);
            assert_eq!((rest[0], rest[1]), (TYPE_TIME_EXCEEDED, 0));
            assert_eq!(checksum::checksum(rest), 0);
            assert_eq!(&rest[8..], &orig[..quote]);
        }
    }

    #[test]
    fn time_exceeded_refuses_what_it_cannot_build() {
        let mut out = [0u8; 40];
        assert_eq!(build_time_exceeded(&mut out, &[0u8; 12], [1, 2, 3, 4]), 0);
        assert_eq!(build_time_exceeded(&mut out, &packet(100), [1, 2, 3, 4]), 0);
    }
}
