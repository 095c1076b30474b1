//! ICMPv6 (RFC 4443): the errors that quote a packet, Packet Too Big built
//! by the director, echo replies, and the checksum over the IPv6
//! pseudo-header. Neighbour Discovery messages are in [`super::ndp`].

use super::checksum;
use super::ipv6::{self, Ipv6Info};

pub const HEADER_LEN: usize = 8;
pub const TYPE_DEST_UNREACH: u8 = 1;
pub const TYPE_PACKET_TOO_BIG: u8 = 2;
pub const TYPE_TIME_EXCEEDED: u8 = 3;
pub const TYPE_PARAM_PROBLEM: u8 = 4;
pub const TYPE_ECHO_REQUEST: u8 = 128;
pub const TYPE_ECHO_REPLY: u8 = 129;
pub const TYPE_ROUTER_SOLICIT: u8 = 133;
pub const TYPE_ROUTER_ADVERT: u8 = 134;
pub const TYPE_NEIGHBOR_SOLICIT: u8 = 135;
pub const TYPE_NEIGHBOR_ADVERT: u8 = 136;
pub const TYPE_REDIRECT: u8 = 137;

/// The IPv6 minimum link MTU (RFC 8200 §5): an error must fit in it.
pub const MIN_MTU: usize = 1280;

/// Error messages have the high bit of the type clear (RFC 4443 §2.1).
#[inline]
pub fn is_error(ty: u8) -> bool {
    ty < 128
}

/// The checksum field value for `msg` (its checksum field zeroed or not:
/// it is skipped) sent from `src` to `dst`.
pub fn compute(msg: &[u8], src: &[u8; 16], dst: &[u8; 16]) -> u16 {
    let ph = checksum::pseudo_header_v6(src, dst, ipv6::NH_ICMPV6, msg.len() as u32);
    let s = checksum::add(ph, checksum::sum(&msg[..2]));
    let s = checksum::add(s, checksum::sum(&msg[4..]));
    !checksum::fold(s)
}

/// Recomputes the checksum of the message `msg`.
pub fn fill_checksum(msg: &mut [u8], src: &[u8; 16], dst: &[u8; 16]) {
    let c = compute(msg, src, dst);
    msg[2..4].copy_from_slice(&c.to_be_bytes());
}

/// Whether the checksum of `msg` is right.
pub fn checksum_ok(msg: &[u8], src: &[u8; 16], dst: &[u8; 16]) -> bool {
    msg.len() >= 4 && compute(msg, src, dst) == u16::from_be_bytes([msg[2], msg[3]])
}

/// Whether RFC 4443 §2.4(e) lets us answer the packet `orig` with an error:
/// never about an ICMPv6 error, nor about a packet from an address that does
/// not name one node; about a packet sent to multicast only with Packet Too
/// Big (or a Parameter Problem about an option, which we never send).
pub fn may_answer(orig: &[u8], info: &Ipv6Info, ty: u8) -> bool {
    if ipv6::is_multicast(&info.src) || ipv6::is_unspecified(&info.src) {
        return false;
    }
    if ipv6::is_multicast(&info.dst) && ty != TYPE_PACKET_TOO_BIG {
        return false;
    }
    if info.proto == ipv6::NH_ICMPV6 && !info.is_fragment() {
        match orig.get(info.l4_offset) {
            Some(&t) if is_error(t) => return false,
            None => return false,
            _ => {}
        }
    }
    true
}

/// Length of the IPv6 packet [`build_error`] writes about a packet of
/// `orig_len` bytes: as much of it as fits in the minimum MTU.
pub fn error_len(orig_len: usize) -> usize {
    (ipv6::HEADER_LEN + HEADER_LEN + orig_len).min(MIN_MTU)
}

/// Builds an error of type `ty`, `code` and 32-bit `param` (the MTU of a
/// Packet Too Big, the pointer of a Parameter Problem) in `out`, starting at
/// its IPv6 header, from `src` to the source of `orig` (which starts at its
/// IPv6 header), quoting as much of `orig` as fits in 1280 bytes
/// (RFC 4443 §2.4(c)). Returns the IPv6 packet's length.
pub fn build_error(
    out: &mut [u8],
    orig: &[u8],
    src: [u8; 16],
    ty: u8,
    code: u8,
    param: u32,
) -> usize {
    let total = error_len(orig.len());
    let quote = total - ipv6::HEADER_LEN - HEADER_LEN;
    let dst = ipv6::src(orig);
    // RFC 4861 §6.3.2's default hop limit, which Linux uses for errors too.
    ipv6::write_header(
        out,
        (total - ipv6::HEADER_LEN) as u16,
        ipv6::NH_ICMPV6,
        64,
        src,
        dst,
    );
    let m = &mut out[ipv6::HEADER_LEN..total];
    m[0] = ty;
    m[1] = code;
    m[2] = 0;
    m[3] = 0;
    m[4..8].copy_from_slice(&param.to_be_bytes());
    m[HEADER_LEN..].copy_from_slice(&orig[..quote]);
    fill_checksum(m, &src, &dst);
    total
}

/// Packet Too Big (RFC 4443 §3.2) about `orig`, for a link of `mtu`. The
/// director never fragments IPv6 (RFC 8200 §5): it sends this instead.
pub fn build_packet_too_big(out: &mut [u8], orig: &[u8], src: [u8; 16], mtu: u32) -> usize {
    build_error(out, orig, src, TYPE_PACKET_TOO_BIG, 0, mtu)
}

/// Turns the echo request at `l4` in the IPv6 packet `p` into its reply in
/// place: addresses swapped, type changed, checksum updated incrementally
/// (swapping the addresses leaves the pseudo-header's sum as it was).
pub fn echo_reply(p: &mut [u8], l4: usize) {
    let (src, dst) = (ipv6::src(p), ipv6::dst(p));
    ipv6::set_src(p, dst);
    ipv6::set_dst(p, src);
    let m = &mut p[l4..];
    let old = u16::from_be_bytes([m[0], m[1]]);
    m[0] = TYPE_ECHO_REPLY;
    let new = u16::from_be_bytes([m[0], m[1]]);
    let c = checksum::update16(u16::from_be_bytes([m[2], m[3]]), old, new);
    m[2..4].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Icmpv6Slice, Icmpv6Type, Ipv6Header, PacketBuilder};

    const C: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];
    const V: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64];

    fn tcp_packet(len: usize) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ipv6(C, V, 64)
            .tcp(40000, 80, 1, 64240)
            .ack(9)
            .write(&mut v, &vec![0x41; len])
            .unwrap();
        v
    }

    /// etherparse's own checksum of the ICMPv6 message in an IPv6 packet.
    fn etherparse_ok(p: &[u8]) -> bool {
        let (h, rest) = Ipv6Header::from_slice(p).unwrap();
        let m = Icmpv6Slice::from_slice(&rest[..h.payload_length as usize]).unwrap();
        let calc = m
            .header()
            .icmp_type
            .calc_checksum(h.source, h.destination, m.payload())
            .unwrap();
        calc == m.checksum()
    }

    #[test]
    fn packet_too_big_byte_for_byte() {
        let orig = tcp_packet(1400);
        let mut out = vec![0u8; 1500];
        let n = build_packet_too_big(&mut out, &orig, V, 1400);
        assert_eq!(n, 1280);
        assert!(etherparse_ok(&out[..n]));
        assert!(checksum_ok(&out[40..n], &V, &C));
        let (h, rest) = Ipv6Header::from_slice(&out[..n]).unwrap();
        assert_eq!((h.source, h.destination, h.hop_limit), (V, C, 64));
        let m = Icmpv6Slice::from_slice(&rest[..h.payload_length as usize]).unwrap();
        assert_eq!(m.icmp_type(), Icmpv6Type::PacketTooBig { mtu: 1400 });
        assert_eq!(m.payload(), &orig[..1280 - 48]);
        // A short packet is quoted whole.
        let orig = tcp_packet(10);
        let n = build_packet_too_big(&mut out, &orig, V, 1300);
        assert_eq!(n, 48 + orig.len());
        assert!(etherparse_ok(&out[..n]));
    }

    #[test]
    fn echo_reply_in_place() {
        let mut v = Vec::new();
        PacketBuilder::ipv6(C, V, 64)
            .icmpv6_echo_request(7, 1)
            .write(&mut v, b"ping")
            .unwrap();
        echo_reply(&mut v, 40);
        assert!(etherparse_ok(&v));
        let (h, rest) = Ipv6Header::from_slice(&v).unwrap();
        assert_eq!((h.source, h.destination), (V, C));
        assert!(matches!(
            Icmpv6Slice::from_slice(rest).unwrap().icmp_type(),
            Icmpv6Type::EchoReply(_)
        ));
    }

    #[test]
    fn never_answers_errors_or_multicast() {
        let orig = tcp_packet(10);
        let info = ipv6::parse(&orig).unwrap();
        assert!(may_answer(&orig, &info, TYPE_DEST_UNREACH));
        let mut mc = orig.clone();
        mc[24] = 0xff;
        let i = ipv6::parse(&mc).unwrap();
        assert!(!may_answer(&mc, &i, TYPE_DEST_UNREACH));
        assert!(may_answer(&mc, &i, TYPE_PACKET_TOO_BIG));
        let mut out = vec![0u8; 1500];
        let n = build_packet_too_big(&mut out, &orig, V, 1280);
        let e = &out[..n];
        assert!(!may_answer(
            e,
            &ipv6::parse(e).unwrap(),
            TYPE_PACKET_TOO_BIG
        ));
        let mut unspec = orig.clone();
        unspec[8..24].fill(0);
        assert!(!may_answer(
            &unspec,
            &ipv6::parse(&unspec).unwrap(),
            TYPE_PACKET_TOO_BIG
        ));
    }
}
