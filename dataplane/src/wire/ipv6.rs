//! IPv6 headers (RFC 8200), read and rewritten in place, and the bounded walk
//! over extension headers that a load balancer needs to find the transport
//! header.
//!
//! Functions take the slice that starts at the IPv6 header. IPv6 has no
//! header checksum: an address rewrite changes only the upper layer's
//! pseudo-header sum ([`super::checksum::Delta::addr6`]).

use std::net::Ipv6Addr;

pub const HEADER_LEN: usize = 40;
pub const NH_HOP_BY_HOP: u8 = 0;
pub const NH_TCP: u8 = 6;
pub const NH_UDP: u8 = 17;
pub const NH_IPV6: u8 = 41;
pub const NH_ROUTING: u8 = 43;
pub const NH_FRAGMENT: u8 = 44;
pub const NH_ESP: u8 = 50;
pub const NH_AH: u8 = 51;
pub const NH_ICMPV6: u8 = 58;
pub const NH_NONE: u8 = 59;
pub const NH_DEST_OPTS: u8 = 60;
pub const NH_MOBILITY: u8 = 135;
pub const NH_HIP: u8 = 139;
pub const NH_SHIM6: u8 = 140;
pub const FRAGMENT_HEADER_LEN: usize = 8;

/// The most extension headers walked before the packet is refused. RFC 8200
/// §4.1 lets each header appear once (Destination Options twice), so an
/// honest packet carries at most eight; a longer chain only costs the
/// director time (RFC 7112 and RFC 9098 discuss such chains).
pub const MAX_EXT_HEADERS: usize = 8;

/// Why an IPv6 packet was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ipv6Error {
    Truncated,
    BadVersion,
    /// Payload length longer than the frame, or 0 (a jumbogram, RFC 2675,
    /// which no Ethernet link carries).
    BadPayloadLen,
    /// Hop-by-Hop Options anywhere but right after the IPv6 header
    /// (RFC 8200 §4.3).
    HopByHopNotFirst,
    TooManyExtHeaders,
    /// An extension header runs past the payload.
    BadExtHeader,
}

/// The Fragment header's fields (RFC 8200 §4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// Offset of this fragment's data in 8-byte units.
    pub offset: u16,
    pub more: bool,
    pub id: u32,
}

/// The fields of a validated IPv6 packet that forwarding needs.
///
/// The addresses come first, on 16-byte boundaries: the struct is built
/// from the header and then moved by 16-byte copies, which then read back
/// exactly what was stored (a copy straddling two stores stalls on store
/// forwarding, measurably at 1M flows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(16))]
pub struct Ipv6Info {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// 40 plus the payload length: the packet ends there (Ethernet padding
    /// may follow).
    pub total_len: usize,
    pub hop_limit: u8,
    /// The protocol after the extension headers: TCP, UDP, ICMPv6, or what
    /// the walk stopped at (ESP, No Next Header, an unknown value, or the
    /// header after a non-first fragment, which cannot be read).
    pub proto: u8,
    /// Offset of that protocol's header from the start of the IPv6 header.
    pub l4_offset: usize,
    pub frag: Option<Fragment>,
    /// Segments Left of a Routing header: not 0 means the packet is on its
    /// way through us to another address (RFC 8200 §4.4).
    pub segments_left: u8,
    /// The type of the Routing header, if there is one (type 0 is refused
    /// whatever its segments left, RFC 5095 §3).
    pub routing_type: Option<u8>,
    /// How many extension headers were walked.
    pub ext_headers: u8,
}

impl Ipv6Info {
    /// Part of a fragmented packet (an atomic fragment, offset 0 and no
    /// more, is whole: RFC 6946).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        matches!(self.frag, Some(f) if f.offset != 0 || f.more)
    }
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.src)
    }
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.dst)
    }
    /// The upper-layer payload length for the pseudo-header (RFC 8200 §8.1).
    #[inline]
    pub fn l4_len(&self) -> usize {
        self.total_len - self.l4_offset
    }
}

/// Whether `nh` is an extension header that [`parse`] walks past.
#[inline]
pub fn is_extension(nh: u8) -> bool {
    matches!(
        nh,
        NH_HOP_BY_HOP
            | NH_ROUTING
            | NH_FRAGMENT
            | NH_AH
            | NH_DEST_OPTS
            | NH_MOBILITY
            | NH_HIP
            | NH_SHIM6
    )
}

/// Validates version and payload length and walks the extension headers, at
/// most [`MAX_EXT_HEADERS`] of them and never past the payload. The walk
/// stops at the first non-extension header, at ESP (encrypted from there),
/// and after a Fragment header whose offset is not 0.
#[inline(always)]
pub fn parse(p: &[u8]) -> Result<Ipv6Info, Ipv6Error> {
    let info = base(p, parse_fixed(p)?.total_len);
    // Most packets carry their transport header right after the fixed one:
    // no walk, and no call that returns the whole `Ipv6Info` through memory.
    if !is_extension(info.proto) {
        return Ok(info);
    }
    walk(p, info)
}

/// The fixed header's own fields, validated as [`parse`] validates them,
/// with nothing walked and the addresses left in the packet: what a packet
/// whose transport header follows the fixed header needs (the forwarding
/// fast path reads its addresses in place).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fixed {
    /// 40 plus the payload length.
    pub total_len: usize,
    /// The fixed header's Next Header.
    pub next_header: u8,
    pub hop_limit: u8,
}

/// Validates version and payload length, as [`parse`] does, without
/// walking the extension headers.
#[inline(always)]
pub fn parse_fixed(p: &[u8]) -> Result<Fixed, Ipv6Error> {
    let payload_len = fixed(p)?;
    if payload_len == 0 || HEADER_LEN + payload_len > p.len() {
        return Err(Ipv6Error::BadPayloadLen);
    }
    Ok(Fixed {
        total_len: HEADER_LEN + payload_len,
        next_header: next_header(p),
        hop_limit: p[7],
    })
}

/// The packet an ICMPv6 error quotes, cut short wherever the error ended:
/// the walk goes as far as the quoted bytes, and `total_len` is what was
/// quoted (the payload length field still says what the original carried).
pub fn parse_quoted(p: &[u8]) -> Result<Ipv6Info, Ipv6Error> {
    let payload_len = fixed(p)?;
    walk(p, base(p, (HEADER_LEN + payload_len).min(p.len())))
}

/// Checks the fixed header; returns the payload length field.
#[inline(always)]
fn fixed(p: &[u8]) -> Result<usize, Ipv6Error> {
    if p.len() < HEADER_LEN {
        return Err(Ipv6Error::Truncated);
    }
    if version(p) != 6 {
        return Err(Ipv6Error::BadVersion);
    }
    Ok(u16::from_be_bytes([p[4], p[5]]) as usize)
}

/// The fixed header's fields, before any extension header is walked.
#[inline(always)]
fn base(p: &[u8], total_len: usize) -> Ipv6Info {
    Ipv6Info {
        total_len,
        hop_limit: p[7],
        src: src(p),
        dst: dst(p),
        proto: next_header(p),
        l4_offset: HEADER_LEN,
        frag: None,
        segments_left: 0,
        routing_type: None,
        ext_headers: 0,
    }
}

/// Walks the extension headers after the fixed header `info` describes.
#[inline(never)]
fn walk(p: &[u8], mut info: Ipv6Info) -> Result<Ipv6Info, Ipv6Error> {
    let total_len = info.total_len;
    let mut nh = p[6];
    let mut off = HEADER_LEN;
    while is_extension(nh) {
        if info.ext_headers as usize == MAX_EXT_HEADERS {
            return Err(Ipv6Error::TooManyExtHeaders);
        }
        if nh == NH_HOP_BY_HOP && off != HEADER_LEN {
            return Err(Ipv6Error::HopByHopNotFirst);
        }
        if off + 8 > total_len {
            return Err(Ipv6Error::BadExtHeader);
        }
        let h = &p[off..total_len];
        let len = match nh {
            NH_FRAGMENT => FRAGMENT_HEADER_LEN,
            // RFC 4302 §2.2: AH counts its length in 4-byte units, minus 2.
            NH_AH => (h[1] as usize + 2) * 4,
            _ => (h[1] as usize + 1) * 8,
        };
        if off + len > total_len {
            return Err(Ipv6Error::BadExtHeader);
        }
        info.ext_headers += 1;
        match nh {
            NH_ROUTING => {
                info.segments_left = h[3];
                info.routing_type = Some(h[2]);
            }
            NH_FRAGMENT => {
                let fo = u16::from_be_bytes([h[2], h[3]]);
                let f = Fragment {
                    offset: fo >> 3,
                    more: fo & 1 != 0,
                    id: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                };
                info.frag = Some(f);
                if f.offset != 0 {
                    // What follows is the middle of someone's payload.
                    info.proto = h[0];
                    info.l4_offset = off + len;
                    return Ok(info);
                }
            }
            _ => {}
        }
        nh = h[0];
        off += len;
    }
    info.proto = nh;
    info.l4_offset = off;
    Ok(info)
}

/// The version field of a fixed header (`p` holds at least 40 bytes).
#[inline(always)]
pub fn version(p: &[u8]) -> u8 {
    p[0] >> 4
}
/// The first Next Header field (the fixed header's).
#[inline(always)]
pub fn next_header(p: &[u8]) -> u8 {
    p[6]
}
#[inline(always)]
pub fn src(p: &[u8]) -> [u8; 16] {
    p[8..24].try_into().unwrap()
}
#[inline(always)]
pub fn dst(p: &[u8]) -> [u8; 16] {
    p[24..40].try_into().unwrap()
}
/// The source address where it lies in the header.
#[inline(always)]
pub fn src_ref(p: &[u8]) -> &[u8; 16] {
    p[8..24].try_into().unwrap()
}
/// The destination address where it lies in the header.
#[inline(always)]
pub fn dst_ref(p: &[u8]) -> &[u8; 16] {
    p[24..40].try_into().unwrap()
}
/// Rewrites the source address; the caller updates the upper layer's
/// checksum (IPv6 has no header checksum).
#[inline(always)]
pub fn set_src(p: &mut [u8], a: [u8; 16]) {
    p[8..24].copy_from_slice(&a);
}
#[inline(always)]
pub fn set_dst(p: &mut [u8], a: [u8; 16]) {
    p[24..40].copy_from_slice(&a);
}

/// Decrements the hop limit as a router does; the caller has already
/// checked that it is above 1 (RFC 8200 §3).
#[inline(always)]
pub fn dec_hop_limit(p: &mut [u8]) {
    p[7] -= 1;
}

/// Writes a fixed IPv6 header (traffic class and flow label 0).
pub fn write_header(
    p: &mut [u8],
    payload_len: u16,
    next_header: u8,
    hop_limit: u8,
    src: [u8; 16],
    dst: [u8; 16],
) {
    write_header_flow(p, 0, payload_len, next_header, hop_limit, src, dst)
}

/// Writes a fixed IPv6 header with the given first word's traffic class and
/// flow label (the low 28 bits of `tc_flow`), as a translator or tunnel
/// copies them from the packet it carries.
pub fn write_header_flow(
    p: &mut [u8],
    tc_flow: u32,
    payload_len: u16,
    next_header: u8,
    hop_limit: u8,
    src: [u8; 16],
    dst: [u8; 16],
) {
    p[0..4].copy_from_slice(&((6u32 << 28) | (tc_flow & 0x0fff_ffff)).to_be_bytes());
    p[4..6].copy_from_slice(&payload_len.to_be_bytes());
    p[6] = next_header;
    p[7] = hop_limit;
    p[8..24].copy_from_slice(&src);
    p[24..40].copy_from_slice(&dst);
}

/// Traffic class and flow label, the low 28 bits of the first word.
#[inline(always)]
pub fn tc_flow(p: &[u8]) -> u32 {
    u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x0fff_ffff
}

/// Multicast (ff00::/8, RFC 4291 §2.7).
#[inline(always)]
pub fn is_multicast(a: &[u8; 16]) -> bool {
    a[0] == 0xff
}
/// The unspecified address `::`.
#[inline(always)]
pub fn is_unspecified(a: &[u8; 16]) -> bool {
    *a == [0; 16]
}
/// Link-local unicast (fe80::/10).
#[inline(always)]
pub fn is_link_local(a: &[u8; 16]) -> bool {
    a[0] == 0xfe && a[1] & 0xc0 == 0x80
}

/// All-nodes multicast `ff02::1`.
pub const ALL_NODES: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// The solicited-node multicast address of `a`, `ff02::1:ffXX:XXXX`
/// (RFC 4291 §2.7.1).
#[inline]
pub fn solicited_node(a: &[u8; 16]) -> [u8; 16] {
    [
        0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, a[13], a[14], a[15],
    ]
}

/// The Ethernet address IPv6 multicast `a` is sent to, `33:33` followed by
/// its last four bytes (RFC 2464 §7).
#[inline]
pub fn multicast_mac(a: &[u8; 16]) -> [u8; 6] {
    [0x33, 0x33, a[12], a[13], a[14], a[15]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{IpNumber, Ipv6Header};

    const A: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const B: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    /// An IPv6 packet with `exts` (next header, bytes) chained before an
    /// 8-byte UDP header.
    fn packet(exts: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (i, (_, bytes)) in exts.iter().enumerate() {
            let mut b = bytes.clone();
            b[0] = exts.get(i + 1).map_or(NH_UDP, |e| e.0);
            body.extend_from_slice(&b);
        }
        body.extend_from_slice(&[0x30, 0x39, 0, 53, 0, 8, 0, 0]);
        let mut p = vec![0u8; HEADER_LEN];
        write_header(
            &mut p,
            body.len() as u16,
            exts.first().map_or(NH_UDP, |e| e.0),
            64,
            A,
            B,
        );
        p.extend_from_slice(&body);
        p
    }

    fn opts(len8: usize) -> Vec<u8> {
        let mut v = vec![0u8; len8 * 8];
        v[1] = (len8 - 1) as u8;
        v
    }

    #[test]
    fn header_matches_etherparse() {
        let mut p = vec![0u8; HEADER_LEN + 8];
        write_header_flow(&mut p, 0x0abc_def0, 8, NH_UDP, 64, A, B);
        let (h, _) = Ipv6Header::from_slice(&p).unwrap();
        assert_eq!(h.payload_length, 8);
        assert_eq!(h.next_header, IpNumber::UDP);
        assert_eq!(h.hop_limit, 64);
        assert_eq!(h.traffic_class, 0xab);
        assert_eq!(u32::from(h.flow_label), 0xcdef0);
        assert_eq!((h.source, h.destination), (A, B));
        let i = parse(&p).unwrap();
        assert_eq!(
            (i.proto, i.l4_offset, i.total_len, i.l4_len()),
            (NH_UDP, 40, 48, 8)
        );
        assert_eq!(tc_flow(&p), 0x0abc_def0);
    }

    #[test]
    fn walks_extension_headers() {
        let mut frag = vec![0u8; 8];
        frag[4..8].copy_from_slice(&7u32.to_be_bytes());
        let mut routing = opts(3);
        routing[2] = 4; // type: segment routing
        let mut ah = vec![0u8; 16];
        ah[1] = 2; // (2 + 2) * 4 = 16 bytes
        let p = packet(&[
            (NH_HOP_BY_HOP, opts(1)),
            (NH_DEST_OPTS, opts(2)),
            (NH_ROUTING, routing),
            (NH_FRAGMENT, frag),
            (NH_AH, ah),
        ]);
        let i = parse(&p).unwrap();
        assert_eq!(i.proto, NH_UDP);
        assert_eq!(i.l4_offset, 40 + 8 + 16 + 24 + 8 + 16);
        assert_eq!(i.ext_headers, 5);
        assert_eq!(
            i.frag,
            Some(Fragment {
                offset: 0,
                more: false,
                id: 7
            })
        );
        assert!(!i.is_fragment(), "an atomic fragment is whole (RFC 6946)");
        // etherparse agrees on where the transport header is.
        let s = etherparse::SlicedPacket::from_ip(&p).unwrap();
        assert!(matches!(
            s.transport,
            Some(etherparse::TransportSlice::Udp(_))
        ));
    }

    #[test]
    fn non_first_fragment_stops_the_walk() {
        let mut frag = vec![0u8; 8];
        frag[2..4].copy_from_slice(&((185u16 << 3) | 1).to_be_bytes());
        let p = packet(&[(NH_FRAGMENT, frag)]);
        let i = parse(&p).unwrap();
        assert!(i.is_fragment());
        assert_eq!(i.frag.unwrap().offset, 185);
        assert_eq!(i.l4_offset, 48);
    }

    #[test]
    fn segments_left_is_reported() {
        let mut r = opts(1);
        r[3] = 2;
        assert_eq!(parse(&packet(&[(NH_ROUTING, r)])).unwrap().segments_left, 2);
    }

    #[test]
    fn rejects_garbage() {
        let p = packet(&[]);
        assert_eq!(parse(&p[..39]), Err(Ipv6Error::Truncated));
        let mut q = p.clone();
        q[0] = 0x45;
        assert_eq!(parse(&q), Err(Ipv6Error::BadVersion));
        let mut q = p.clone();
        q[5] = 9;
        assert_eq!(parse(&q), Err(Ipv6Error::BadPayloadLen));
        let mut q = p.clone();
        q[4] = 0;
        q[5] = 0;
        assert_eq!(parse(&q), Err(Ipv6Error::BadPayloadLen), "jumbogram");
        // Hop-by-hop after another header.
        let q = packet(&[(NH_DEST_OPTS, opts(1)), (NH_HOP_BY_HOP, opts(1))]);
        assert_eq!(parse(&q), Err(Ipv6Error::HopByHopNotFirst));
        // A header that claims more than the payload.
        let mut q = packet(&[(NH_DEST_OPTS, opts(1))]);
        q[41] = 9;
        assert_eq!(parse(&q), Err(Ipv6Error::BadExtHeader));
        // Nine destination-options headers.
        let chain: Vec<_> = (0..9).map(|_| (NH_DEST_OPTS, opts(1))).collect();
        assert_eq!(parse(&packet(&chain)), Err(Ipv6Error::TooManyExtHeaders));
        let chain: Vec<_> = (0..8).map(|_| (NH_DEST_OPTS, opts(1))).collect();
        assert_eq!(parse(&packet(&chain)).unwrap().proto, NH_UDP);
        // Padding after the packet is allowed.
        let mut q = p.clone();
        q.extend_from_slice(&[0; 6]);
        assert_eq!(parse(&q).unwrap().total_len, p.len());
    }

    #[test]
    fn quoted_packets_may_be_cut_short() {
        let mut frag = vec![0u8; 8];
        frag[4] = 1;
        let p = packet(&[(NH_DEST_OPTS, opts(1)), (NH_FRAGMENT, frag)]);
        let cut = &p[..p.len() - 4];
        assert_eq!(parse(cut), Err(Ipv6Error::BadPayloadLen));
        let i = parse_quoted(cut).unwrap();
        assert_eq!((i.proto, i.l4_offset, i.total_len), (NH_UDP, 56, cut.len()));
        // Cut inside an extension header: refused.
        assert_eq!(parse_quoted(&p[..50]), Err(Ipv6Error::BadExtHeader));
    }

    #[test]
    fn multicast_helpers() {
        let a: [u8; 16] = "2001:db8::12:3456".parse::<Ipv6Addr>().unwrap().octets();
        assert_eq!(
            Ipv6Addr::from(solicited_node(&a)),
            "ff02::1:ff12:3456".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            multicast_mac(&solicited_node(&a)),
            [0x33, 0x33, 0xff, 0x12, 0x34, 0x56]
        );
        assert!(is_multicast(&ALL_NODES) && !is_multicast(&a));
        assert!(is_link_local(
            &"fe80::1".parse::<Ipv6Addr>().unwrap().octets()
        ));
        assert!(is_unspecified(&[0; 16]));
    }
}
