//! NAT64 in FULLNAT, as DPVS does it: an IPv6 VIP in front of IPv4 real
//! servers. The director is a stateful translator: the addresses come from
//! the connection (the client's packets leave from an IPv4 local address to
//! the real server, the replies leave from the VIP to the client), not from
//! an embedded prefix, and the headers are translated as RFC 7915 (SIIT)
//! asks: traffic class and TOS copied, DF set towards IPv4 and fragments
//! never made, IPv4 options ignored, extension headers dropped.
//!
//! TCP and UDP are translated in place; their checksums are updated
//! incrementally for the new pseudo-header (the lengths and protocol are
//! the same on both sides, so only the addresses change the sum). ICMP
//! errors about a flow are rebuilt in a scratch buffer (a slow path): the
//! type and code are mapped (RFC 7915 §4.2 and §5.2), Packet Too Big and
//! Fragmentation Needed carry the MTU adjusted for the 20 bytes between the
//! headers, and the quoted packet is translated like its flow. The quoted
//! transport checksum is left alone, as IPVS leaves it for IPv4 (only part
//! of the payload is quoted). Echo requests to an IPv6 VIP are answered by
//! the director itself, never translated.

use crate::wire::checksum::{self, Delta};
use crate::wire::ipv4::{self, Ipv4Info};
use crate::wire::ipv6::{self, Ipv6Info};
use crate::wire::{ethernet, icmp, icmpv6, l4};

/// How much a packet grows from IPv4 (without options) to IPv6 (without
/// extension headers).
pub const GROWTH: usize = ipv6::HEADER_LEN - ipv4::MIN_HEADER_LEN;

/// A scratch buffer that holds any translated ICMP error: IPv6 errors are
/// at most 1280 bytes, IPv4 ones are shorter than what they came from.
pub const ERROR_BUF: usize = 1536;

/// Why a packet was not translated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Untranslatable {
    /// Not TCP or UDP (or, for ICMP, not an error RFC 7915 translates).
    Protocol,
    /// A fragment: the director does not reassemble.
    Fragment,
    /// The quoted packet of an ICMP error is not one of our flows' packets.
    BadQuote,
}

/// Translates the TCP or UDP packet `info` describes, at `l2_len` in
/// `frame`, to IPv4 from `src` to `dst` with `ttl`, in place: the IPv4
/// header is written right before the transport header and the layer-2
/// header is moved up to it (ethertype IPv4). Returns how many bytes the
/// caller removes from the front of the packet.
pub fn tcp_udp_to_v4(
    frame: &mut [u8],
    l2_len: usize,
    info: &Ipv6Info,
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
) -> Result<usize, Untranslatable> {
    if info.frag.is_some() {
        return Err(Untranslatable::Fragment);
    }
    let h = Headers6 {
        src: info.src,
        dst: info.dst,
        l4_offset: info.l4_offset,
        total_len: info.total_len,
        proto: info.proto,
    };
    tcp_udp_headers_to_v4(frame, l2_len, &h, src, dst, ttl)
}

/// What [`tcp_udp_headers_to_v4`] needs of a packet that carries no
/// Fragment header: its addresses and where its transport header starts
/// and its packet ends (from the start of the IPv6 header).
#[derive(Clone, Copy, Debug)]
pub struct Headers6 {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub l4_offset: usize,
    pub total_len: usize,
    pub proto: u8,
}

impl Headers6 {
    /// A packet whose transport header follows its fixed header (no
    /// extension header at all), `total_len` bytes long from `p`.
    #[inline(always)]
    pub fn fixed(p: &[u8], total_len: usize, proto: u8) -> Headers6 {
        Headers6 {
            src: ipv6::src(p),
            dst: ipv6::dst(p),
            l4_offset: ipv6::HEADER_LEN,
            total_len,
            proto,
        }
    }
}

/// [`tcp_udp_to_v4`] for a packet `h` describes, known to carry no
/// Fragment header: the forwarding fast path's, without a whole
/// [`Ipv6Info`].
#[inline]
pub fn tcp_udp_headers_to_v4(
    frame: &mut [u8],
    l2_len: usize,
    h: &Headers6,
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
) -> Result<usize, Untranslatable> {
    if h.proto != ipv4::PROTO_TCP && h.proto != ipv4::PROTO_UDP {
        return Err(Untranslatable::Protocol);
    }
    let l3 = l2_len;
    let l4 = l3 + h.l4_offset;
    let tos = (ipv6::tc_flow(&frame[l3..]) >> 20) as u8;
    let mut d = Delta::new();
    d.addr6(&h.src, &[0; 16]).addr6(&h.dst, &[0; 16]);
    d.addr([0; 4], src).addr([0; 4], dst);
    l4::apply_delta(h.proto, &mut frame[l4..l3 + h.total_len], &d);
    let new_l3 = l4 - ipv4::MIN_HEADER_LEN;
    let total = (h.total_len - h.l4_offset + ipv4::MIN_HEADER_LEN) as u16;
    ipv4::write_header_tos(
        &mut frame[new_l3..],
        tos,
        total,
        0,
        ipv4::FLAG_DF,
        ttl,
        h.proto,
        src,
        dst,
    );
    let shift = new_l3 - l3;
    move_l2(frame, 0, shift, l2_len, ethernet::ETHERTYPE_IPV4);
    Ok(shift)
}

/// Translates the TCP or UDP packet `info` describes to IPv6 from `src` to
/// `dst` with `hop_limit`, in place. The packet has already grown by
/// [`GROWTH`] bytes at the front: the old layer-2 header (`l2_len` bytes)
/// sits right after that gap, then the IPv4 header. Returns how many bytes
/// the caller removes from the front again (the length of the IPv4
/// options, which are dropped).
pub fn tcp_udp_to_v6(
    frame: &mut [u8],
    l2_len: usize,
    info: &Ipv4Info,
    src: [u8; 16],
    dst: [u8; 16],
    hop_limit: u8,
) -> Result<usize, Untranslatable> {
    if info.is_fragment() {
        return Err(Untranslatable::Fragment);
    }
    if info.proto != ipv4::PROTO_TCP && info.proto != ipv4::PROTO_UDP {
        return Err(Untranslatable::Protocol);
    }
    let old_l3 = GROWTH + l2_len;
    let l4 = old_l3 + info.header_len;
    let end = old_l3 + info.total_len;
    let tos = frame[old_l3 + 1];
    let l4_len = info.total_len - info.header_len;
    let cs = l4::checksum_offset(info.proto);
    if info.proto == ipv4::PROTO_UDP && frame[l4 + cs] == 0 && frame[l4 + cs + 1] == 0 {
        // IPv6 forbids UDP without a checksum (RFC 8200 §8.1): compute it.
        let s = checksum::add(
            checksum::pseudo_header_v6(&src, &dst, info.proto, l4_len as u32),
            checksum::sum(&frame[l4..end]),
        );
        let c = match !checksum::fold(s) {
            0 => 0xffff,
            c => c,
        };
        frame[l4 + cs..l4 + cs + 2].copy_from_slice(&c.to_be_bytes());
    } else {
        let mut d = Delta::new();
        d.addr(info.src, [0; 4]).addr(info.dst, [0; 4]);
        d.addr6(&[0; 16], &src).addr6(&[0; 16], &dst);
        l4::apply_delta(info.proto, &mut frame[l4..end], &d);
    }
    let new_l3 = l4 - ipv6::HEADER_LEN;
    ipv6::write_header_flow(
        &mut frame[new_l3..],
        (tos as u32) << 20,
        l4_len as u16,
        info.proto,
        hop_limit,
        src,
        dst,
    );
    let shift = new_l3 - l2_len;
    move_l2(frame, GROWTH, shift, l2_len, ethernet::ETHERTYPE_IPV6);
    Ok(shift)
}

/// Moves the layer-2 header at `from` to `to` and sets its ethertype.
#[inline]
fn move_l2(frame: &mut [u8], from: usize, to: usize, l2_len: usize, ethertype: u16) {
    frame.copy_within(from..from + l2_len, to);
    frame[to + l2_len - 2..to + l2_len].copy_from_slice(&ethertype.to_be_bytes());
}

/// The addresses an ICMP error takes in the other family: the outer header's,
/// and the quoted packet's addresses and ports (the quoted packet is one of
/// the flow's, seen from the side the error goes to).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorAddrs<A> {
    pub src: A,
    pub dst: A,
    pub quoted_src: (A, u16),
    pub quoted_dst: (A, u16),
}

/// ICMPv6 error type, code and parameter to ICMPv4's (RFC 7915 §5.2).
/// None for what is dropped (informational messages, unrecognised options,
/// unknown codes).
pub fn map_error_to_v4(ty: u8, code: u8, param: u32) -> Option<(u8, u8, u32)> {
    match (ty, code) {
        (icmpv6::TYPE_DEST_UNREACH, 0 | 2 | 3) => Some((icmp::TYPE_DEST_UNREACH, 1, 0)),
        (icmpv6::TYPE_DEST_UNREACH, 1) => Some((icmp::TYPE_DEST_UNREACH, 10, 0)),
        (icmpv6::TYPE_DEST_UNREACH, 4) => Some((icmp::TYPE_DEST_UNREACH, 3, 0)),
        (icmpv6::TYPE_PACKET_TOO_BIG, 0) => {
            // The IPv4 MTU field is 16 bits; 68 is IPv4's minimum (RFC 791).
            let mtu = param.saturating_sub(GROWTH as u32).clamp(68, 0xffff);
            Some((icmp::TYPE_DEST_UNREACH, icmp::CODE_FRAG_NEEDED, mtu))
        }
        (icmpv6::TYPE_TIME_EXCEEDED, 0 | 1) => Some((icmp::TYPE_TIME_EXCEEDED, code, 0)),
        (icmpv6::TYPE_PARAM_PROBLEM, 0) => {
            // RFC 7915 Figure 6: where the IPv6 field lies in IPv4.
            let p = match param {
                0 | 1 => param,
                4 | 5 => 2,
                6 => 9,
                7 => 8,
                8..=23 => 12,
                24..=39 => 16,
                _ => return None,
            };
            Some((icmp::TYPE_PARAM_PROBLEM, 0, p << 24))
        }
        (icmpv6::TYPE_PARAM_PROBLEM, 1) => Some((icmp::TYPE_DEST_UNREACH, 2, 0)),
        _ => None,
    }
}

/// ICMPv4 error type, code and parameter (the second word of the header) to
/// ICMPv6's (RFC 7915 §4.2). `quoted_total_len` is the total length of the
/// quoted IPv4 packet, for a Fragmentation Needed from a router that did not
/// say its MTU (RFC 1191 plateaus).
pub fn map_error_to_v6(
    ty: u8,
    code: u8,
    param: u32,
    quoted_total_len: u16,
) -> Option<(u8, u8, u32)> {
    let unreach = |c| Some((icmpv6::TYPE_DEST_UNREACH, c, 0));
    match (ty, code) {
        (icmp::TYPE_DEST_UNREACH, 0 | 1 | 5 | 6 | 7 | 8 | 11 | 12) => unreach(0),
        (icmp::TYPE_DEST_UNREACH, 9 | 10 | 13 | 15) => unreach(1),
        (icmp::TYPE_DEST_UNREACH, 3) => unreach(4),
        // Protocol unreachable: a parameter problem pointing at Next Header.
        (icmp::TYPE_DEST_UNREACH, 2) => Some((icmpv6::TYPE_PARAM_PROBLEM, 1, 6)),
        (icmp::TYPE_DEST_UNREACH, icmp::CODE_FRAG_NEEDED) => {
            let mtu = match param & 0xffff {
                0 => plateau(quoted_total_len) as u32,
                m => m,
            };
            let mtu = (mtu + GROWTH as u32).max(icmpv6::MIN_MTU as u32);
            Some((icmpv6::TYPE_PACKET_TOO_BIG, 0, mtu))
        }
        (icmp::TYPE_TIME_EXCEEDED, 0 | 1) => Some((icmpv6::TYPE_TIME_EXCEEDED, code, 0)),
        (icmp::TYPE_PARAM_PROBLEM, 0 | 2) => {
            // RFC 7915 Figure 3: where the IPv4 field lies in IPv6.
            let p = match param >> 24 {
                0 => 0,
                1 => 1,
                2 | 3 => 4,
                8 => 7,
                9 => 6,
                12..=15 => 8,
                16..=19 => 24,
                _ => return None,
            };
            Some((icmpv6::TYPE_PARAM_PROBLEM, 0, p))
        }
        _ => None,
    }
}

/// The largest RFC 1191 plateau below `len` (used when a router sent
/// Fragmentation Needed with an MTU of 0).
fn plateau(len: u16) -> u16 {
    const PLATEAUS: [u16; 10] = [65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296];
    PLATEAUS.into_iter().find(|&p| p < len).unwrap_or(68)
}

/// Rebuilds the ICMPv6 error in the IPv6 packet `p` (described by `info`)
/// as an IPv4 packet in `out` ([`ERROR_BUF`] bytes), with `ttl` and the
/// addresses of `a`. Returns the IPv4 packet's length.
pub fn error_to_v4(
    p: &[u8],
    info: &Ipv6Info,
    a: &ErrorAddrs<[u8; 4]>,
    ttl: u8,
    out: &mut [u8],
) -> Result<usize, Untranslatable> {
    if info.frag.is_some() {
        return Err(Untranslatable::Fragment);
    }
    let m = &p[info.l4_offset..info.total_len];
    if info.proto != ipv6::NH_ICMPV6 || m.len() < icmpv6::HEADER_LEN + ipv6::HEADER_LEN + 8 {
        return Err(Untranslatable::Protocol);
    }
    let param = u32::from_be_bytes([m[4], m[5], m[6], m[7]]);
    let (ty, code, param) = map_error_to_v4(m[0], m[1], param).ok_or(Untranslatable::Protocol)?;
    let q = &m[icmpv6::HEADER_LEN..];
    let qi = ipv6::parse_quoted(q).map_err(|_| Untranslatable::BadQuote)?;
    if qi.frag.is_some_and(|f| f.offset != 0)
        || (qi.proto != ipv4::PROTO_TCP && qi.proto != ipv4::PROTO_UDP)
        || qi.total_len < qi.l4_offset + 8
    {
        return Err(Untranslatable::BadQuote);
    }
    let payload = &q[qi.l4_offset..qi.total_len];
    let inner_total = u16::from_be_bytes([q[4], q[5]]) as usize + ipv6::HEADER_LEN - qi.l4_offset
        + ipv4::MIN_HEADER_LEN;
    // An IPv4 error quotes what fits in 576 bytes, as Linux does (RFC 1812 §4.3.2.3).
    let quote = payload
        .len()
        .min(576 - 2 * ipv4::MIN_HEADER_LEN - icmp::HEADER_LEN);
    let icmp_off = ipv4::MIN_HEADER_LEN;
    let inner = icmp_off + icmp::HEADER_LEN;
    let total = inner + ipv4::MIN_HEADER_LEN + quote;
    let out = &mut out[..total];
    ipv4::write_header(
        &mut out[inner..],
        inner_total as u16,
        0,
        ipv4::FLAG_DF,
        qi.hop_limit,
        qi.proto,
        a.quoted_src.0,
        a.quoted_dst.0,
    );
    let ql4 = inner + ipv4::MIN_HEADER_LEN;
    out[ql4..].copy_from_slice(&payload[..quote]);
    l4::set_src_port_raw(&mut out[ql4..], a.quoted_src.1);
    l4::set_dst_port_raw(&mut out[ql4..], a.quoted_dst.1);
    let msg = &mut out[icmp_off..];
    msg[0] = ty;
    msg[1] = code;
    msg[4..8].copy_from_slice(&param.to_be_bytes());
    icmp::fill_checksum(msg);
    ipv4::write_header(out, total as u16, 0, 0, ttl, ipv4::PROTO_ICMP, a.src, a.dst);
    Ok(total)
}

/// Rebuilds the ICMPv4 error in the IPv4 packet `p` (described by `info`)
/// as an IPv6 packet in `out` ([`ERROR_BUF`] bytes), with `hop_limit` and
/// the addresses of `a`, quoting what fits in 1280 bytes. Returns the IPv6
/// packet's length.
pub fn error_to_v6(
    p: &[u8],
    info: &Ipv4Info,
    a: &ErrorAddrs<[u8; 16]>,
    hop_limit: u8,
    out: &mut [u8],
) -> Result<usize, Untranslatable> {
    if info.is_fragment() {
        return Err(Untranslatable::Fragment);
    }
    let m = &p[info.header_len..info.total_len];
    if info.proto != ipv4::PROTO_ICMP || m.len() < icmp::HEADER_LEN + ipv4::MIN_HEADER_LEN + 8 {
        return Err(Untranslatable::Protocol);
    }
    let q = &m[icmp::HEADER_LEN..];
    let ihl = (q[0] & 0x0f) as usize * 4;
    let qproto = q[9];
    let qfrag = u16::from_be_bytes([q[6], q[7]]);
    if q[0] >> 4 != 4
        || ihl < ipv4::MIN_HEADER_LEN
        || q.len() < ihl + 8
        || (qproto != ipv4::PROTO_TCP && qproto != ipv4::PROTO_UDP)
        || qfrag & ipv4::FRAG_OFFSET_MASK != 0
    {
        return Err(Untranslatable::BadQuote);
    }
    let qtotal = u16::from_be_bytes([q[2], q[3]]);
    let param = u32::from_be_bytes([m[4], m[5], m[6], m[7]]);
    let (ty, code, param) =
        map_error_to_v6(m[0], m[1], param, qtotal).ok_or(Untranslatable::Protocol)?;
    let payload = &q[ihl..];
    let inner = ipv6::HEADER_LEN + icmpv6::HEADER_LEN;
    let quote = payload
        .len()
        .min(icmpv6::MIN_MTU - inner - ipv6::HEADER_LEN);
    let total = inner + ipv6::HEADER_LEN + quote;
    let out = &mut out[..total];
    let qpayload = (qtotal as usize).saturating_sub(ihl) as u16;
    ipv6::write_header_flow(
        &mut out[inner..],
        (q[1] as u32) << 20,
        qpayload,
        qproto,
        q[8],
        a.quoted_src.0,
        a.quoted_dst.0,
    );
    let ql4 = inner + ipv6::HEADER_LEN;
    out[ql4..].copy_from_slice(&payload[..quote]);
    l4::set_src_port_raw(&mut out[ql4..], a.quoted_src.1);
    l4::set_dst_port_raw(&mut out[ql4..], a.quoted_dst.1);
    ipv6::write_header(
        out,
        (total - ipv6::HEADER_LEN) as u16,
        ipv6::NH_ICMPV6,
        hop_limit,
        a.src,
        a.dst,
    );
    let msg = &mut out[ipv6::HEADER_LEN..];
    msg[0] = ty;
    msg[1] = code;
    msg[4..8].copy_from_slice(&param.to_be_bytes());
    icmpv6::fill_checksum(msg, &a.src, &a.dst);
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{
        Icmpv4Type, Icmpv6Type, NetSlice, PacketBuilder, SlicedPacket, TransportSlice,
    };

    const CLIENT6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];
    const VIP6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64];
    const LADDR: [u8; 4] = [198, 18, 1, 100];
    const RS: [u8; 4] = [198, 18, 1, 11];
    const ROUTER4: [u8; 4] = [198, 18, 1, 254];
    const ROUTER6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

    fn v6_tcp(payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv6(CLIENT6, VIP6, 64)
            .tcp(40000, 80, 0x1234_5678, 64240)
            .ack(7)
            .write(&mut v, payload)
            .unwrap();
        v
    }

    fn v4_udp(payload: &[u8], with_checksum: bool) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(MAC_B, MAC_A)
            .ipv4(RS, LADDR, 63)
            .udp(53, 5001)
            .write(&mut v, payload)
            .unwrap();
        if !with_checksum {
            v[40] = 0;
            v[41] = 0;
        }
        v
    }

    /// etherparse parses the frame and finds every checksum right.
    fn assert_valid(f: &[u8]) -> SlicedPacket<'_> {
        let s = SlicedPacket::from_ethernet(f).expect("etherparse parses it");
        match (&s.net, &s.transport) {
            (Some(NetSlice::Ipv4(v4)), Some(TransportSlice::Tcp(t))) => {
                let h = v4.header().to_header();
                assert_eq!(h.header_checksum, h.calc_header_checksum());
                assert_eq!(
                    t.checksum(),
                    t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap()
                );
            }
            (Some(NetSlice::Ipv6(v6)), Some(TransportSlice::Udp(u))) => {
                let h = v6.header().to_header();
                assert_eq!(
                    u.checksum(),
                    u.to_header().calc_checksum_ipv6(&h, u.payload()).unwrap()
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        s
    }

    #[test]
    fn tcp_to_v4_byte_for_byte() {
        let mut f = v6_tcp(b"GET / HTTP/1.1\r\n\r\n");
        f[15] = 0xb8; // traffic class 0x0b << 4 | flow label bits
        let info = ipv6::parse(&f[14..]).unwrap();
        let shift = tcp_udp_to_v4(&mut f, 14, &info, LADDR, RS, 63).unwrap();
        assert_eq!(shift, 20);
        let out = &f[shift..];
        let s = assert_valid(out);
        let Some(NetSlice::Ipv4(v4)) = &s.net else {
            unreachable!()
        };
        let h = v4.header();
        assert_eq!((h.source(), h.destination(), h.ttl()), (LADDR, RS, 63));
        assert!(h.dont_fragment() && !h.more_fragments());
        assert_eq!(h.dcp().value() << 2 | h.ecn().value(), 0x0b);
        assert_eq!(&out[0..14], &[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0]);
        let Some(TransportSlice::Tcp(t)) = &s.transport else {
            unreachable!()
        };
        assert_eq!(
            (t.source_port(), t.destination_port(), t.payload()),
            (40000, 80, &b"GET / HTTP/1.1\r\n\r\n"[..])
        );
    }

    #[test]
    fn extension_headers_are_dropped() {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv6(CLIENT6, VIP6, 64)
            .tcp(40000, 80, 1, 100)
            .write(&mut v, b"x")
            .unwrap();
        // Insert an 8-byte destination-options header.
        let mut f = v[..54].to_vec();
        f.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
        f.extend_from_slice(&v[54..]);
        f[14 + 6] = ipv6::NH_DEST_OPTS;
        let plen = u16::from_be_bytes([f[18], f[19]]) + 8;
        f[18..20].copy_from_slice(&plen.to_be_bytes());
        let info = ipv6::parse(&f[14..]).unwrap();
        let shift = tcp_udp_to_v4(&mut f, 14, &info, LADDR, RS, 64).unwrap();
        assert_eq!(shift, 28);
        assert_valid(&f[shift..]);
    }

    #[test]
    fn udp_to_v6_both_with_and_without_checksum() {
        for with in [true, false] {
            let orig = v4_udp(b"answer", with);
            let mut f = vec![0u8; GROWTH];
            f.extend_from_slice(&orig);
            let info = ipv4::parse(&orig[14..]).unwrap();
            let shift = tcp_udp_to_v6(&mut f, 14, &info, VIP6, CLIENT6, 63).unwrap();
            assert_eq!(shift, 0);
            let s = assert_valid(&f);
            let Some(NetSlice::Ipv6(v6)) = &s.net else {
                unreachable!()
            };
            assert_eq!(
                (
                    v6.header().source(),
                    v6.header().destination(),
                    v6.header().hop_limit()
                ),
                (VIP6, CLIENT6, 63)
            );
            assert_eq!(&f[12..14], &[0x86, 0xdd]);
        }
    }

    #[test]
    fn ipv4_options_are_dropped() {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(MAC_B, MAC_A)
            .ipv4(RS, LADDR, 63)
            .udp(53, 5001)
            .write(&mut v, b"abc")
            .unwrap();
        // Rebuild with 4 bytes of options (NOPs and an end).
        let mut f = v[..34].to_vec();
        f[14] = 0x46;
        f.extend_from_slice(&[1, 1, 1, 0]);
        f.extend_from_slice(&v[34..]);
        let tl = u16::from_be_bytes([f[16], f[17]]) + 4;
        f[16..18].copy_from_slice(&tl.to_be_bytes());
        ipv4::fill_checksum(&mut f[14..]);
        let info = ipv4::parse(&f[14..]).unwrap();
        let mut g = vec![0u8; GROWTH];
        g.extend_from_slice(&f);
        let shift = tcp_udp_to_v6(&mut g, 14, &info, VIP6, CLIENT6, 63).unwrap();
        assert_eq!(shift, 4);
        assert_valid(&g[shift..]);
    }

    #[test]
    fn refuses_fragments_and_other_protocols() {
        let mut f = v6_tcp(b"");
        let mut info = ipv6::parse(&f[14..]).unwrap();
        info.proto = ipv6::NH_ICMPV6;
        assert_eq!(
            tcp_udp_to_v4(&mut f, 14, &info, LADDR, RS, 64),
            Err(Untranslatable::Protocol)
        );
        info.frag = Some(ipv6::Fragment {
            offset: 0,
            more: true,
            id: 1,
        });
        assert_eq!(
            tcp_udp_to_v4(&mut f, 14, &info, LADDR, RS, 64),
            Err(Untranslatable::Fragment)
        );
    }

    /// A fragmentation-needed from a router between the director and the
    /// real server, about a packet LADDR -> RS, becomes a Packet Too Big to
    /// the client about its packet CLIENT6 -> VIP6.
    #[test]
    fn frag_needed_becomes_packet_too_big() {
        let mut sent = Vec::new();
        PacketBuilder::ipv4(LADDR, RS, 63)
            .tcp(5001, 80, 1, 100)
            .write(&mut sent, &[0x41; 1400])
            .unwrap();
        let mut err = vec![0u8; 1600];
        let n = icmp::build_frag_needed(&mut err, &sent, 20, ROUTER4, 1400);
        let info = ipv4::parse(&err[..n]).unwrap();
        let a = ErrorAddrs {
            src: VIP6,
            dst: CLIENT6,
            quoted_src: (CLIENT6, 40000),
            quoted_dst: (VIP6, 80),
        };
        let mut out = [0u8; ERROR_BUF];
        let len = error_to_v6(&err[..n], &info, &a, 64, &mut out).unwrap();
        let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd];
        frame.extend_from_slice(&out[..len]);
        let s = SlicedPacket::from_ethernet(&frame).unwrap();
        let Some(NetSlice::Ipv6(v6)) = &s.net else {
            panic!()
        };
        let Some(TransportSlice::Icmpv6(m)) = &s.transport else {
            panic!()
        };
        let h = v6.header();
        assert_eq!(
            m.header()
                .icmp_type
                .calc_checksum(h.source(), h.destination(), m.payload())
                .unwrap(),
            m.checksum()
        );
        assert_eq!(m.icmp_type(), Icmpv6Type::PacketTooBig { mtu: 1420 });
        // The quoted packet: the client's, as it sent it.
        let qi = ipv6::parse_quoted(m.payload()).unwrap();
        assert_eq!((qi.src, qi.dst, qi.proto), (CLIENT6, VIP6, ipv4::PROTO_TCP));
        assert_eq!(u16::from_be_bytes([m.payload()[4], m.payload()[5]]), 1420);
        assert_eq!(l4::src_port(&m.payload()[40..]), 40000);
        assert_eq!(l4::dst_port(&m.payload()[40..]), 80);
    }

    /// A Packet Too Big from a router on the client's side, about a reply
    /// VIP6 -> CLIENT6, becomes a fragmentation-needed to the real server
    /// about its reply RS -> LADDR.
    #[test]
    fn packet_too_big_becomes_frag_needed() {
        let mut reply = Vec::new();
        PacketBuilder::ipv6(VIP6, CLIENT6, 63)
            .tcp(80, 40000, 9, 100)
            .write(&mut reply, &[0x42; 1400])
            .unwrap();
        let mut err = vec![0u8; 1600];
        let n = icmpv6::build_packet_too_big(&mut err, &reply, ROUTER6, 1300);
        let info = ipv6::parse(&err[..n]).unwrap();
        let a = ErrorAddrs {
            src: LADDR,
            dst: RS,
            quoted_src: (RS, 80),
            quoted_dst: (LADDR, 5001),
        };
        let mut out = [0u8; ERROR_BUF];
        let len = error_to_v4(&err[..n], &info, &a, 64, &mut out).unwrap();
        assert_eq!(len, 576);
        let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0];
        frame.extend_from_slice(&out[..len]);
        let s = SlicedPacket::from_ethernet(&frame).unwrap();
        let Some(NetSlice::Ipv4(v4)) = &s.net else {
            panic!()
        };
        let h = v4.header().to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        assert_eq!((h.source, h.destination), (LADDR, RS));
        let Some(TransportSlice::Icmpv4(m)) = &s.transport else {
            panic!()
        };
        assert_eq!(
            checksum::fold(checksum::sum(m.slice())),
            0xffff,
            "ICMP checksum"
        );
        let Icmpv4Type::DestinationUnreachable(d) = m.icmp_type() else {
            panic!()
        };
        assert_eq!(
            d,
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1280 }
        );
        let q = m.payload();
        assert_eq!(
            checksum::fold(checksum::sum(&q[..20])),
            0xffff,
            "quoted header checksum"
        );
        assert_eq!((&q[12..16], &q[16..20]), (&RS[..], &LADDR[..]));
        assert_eq!(u16::from_be_bytes([q[2], q[3]]), 20 + 20 + 1400);
        assert_eq!((l4::src_port(&q[20..]), l4::dst_port(&q[20..])), (80, 5001));
    }

    #[test]
    fn error_maps_follow_rfc_7915() {
        assert_eq!(map_error_to_v4(1, 4, 0), Some((3, 3, 0)));
        assert_eq!(map_error_to_v4(1, 1, 0), Some((3, 10, 0)));
        assert_eq!(map_error_to_v4(1, 5, 0), None);
        assert_eq!(map_error_to_v4(4, 0, 7), Some((12, 0, 8 << 24)));
        assert_eq!(map_error_to_v4(4, 0, 2), None);
        assert_eq!(map_error_to_v4(4, 1, 40), Some((3, 2, 0)));
        assert_eq!(map_error_to_v4(4, 2, 40), None);
        assert_eq!(map_error_to_v4(128, 0, 0), None, "echo is not an error");
        assert_eq!(map_error_to_v6(3, 3, 0, 100), Some((1, 4, 0)));
        assert_eq!(map_error_to_v6(3, 2, 0, 100), Some((4, 1, 6)));
        assert_eq!(map_error_to_v6(3, 13, 0, 100), Some((1, 1, 0)));
        assert_eq!(map_error_to_v6(3, 14, 0, 100), None);
        // MTU 0 from an old router: the plateau below the packet, plus 20,
        // at least IPv6's minimum.
        assert_eq!(map_error_to_v6(3, 4, 0, 1500), Some((2, 0, 1512)));
        assert_eq!(map_error_to_v6(3, 4, 0, 1000), Some((2, 0, 1280)));
        assert_eq!(map_error_to_v6(12, 0, 9 << 24, 0), Some((4, 0, 6)));
        assert_eq!(map_error_to_v6(12, 0, 5 << 24, 0), None);
        assert_eq!(map_error_to_v6(11, 1, 0, 0), Some((3, 1, 0)));
        assert_eq!(map_error_to_v6(5, 0, 0, 0), None, "redirects are dropped");
    }

    #[test]
    fn bad_quotes_are_refused() {
        let mut sent = Vec::new();
        PacketBuilder::ipv4(LADDR, RS, 63)
            .icmpv4_echo_request(1, 1)
            .write(&mut sent, &[0; 8])
            .unwrap();
        let mut err = vec![0u8; 1600];
        let n = icmp::build_frag_needed(&mut err, &sent, 20, ROUTER4, 1400);
        let info = ipv4::parse(&err[..n]).unwrap();
        let a = ErrorAddrs {
            src: VIP6,
            dst: CLIENT6,
            quoted_src: (CLIENT6, 1),
            quoted_dst: (VIP6, 2),
        };
        let mut out = [0u8; ERROR_BUF];
        assert_eq!(
            error_to_v6(&err[..n], &info, &a, 64, &mut out),
            Err(Untranslatable::BadQuote)
        );
    }
}
