//! TUN for IPv6 services: the packet is carried in an outer IPv6 header to
//! the real server (IPv6-in-IPv6, RFC 2473; next header 41), as IPVS's
//! `ip_vs_tunnel_xmit_v6` does. The outer header copies the inner traffic
//! class and flow label. IPv6 is never fragmented by the director
//! (RFC 8200 §5): a packet that no longer fits the egress MTU once wrapped
//! is answered with Packet Too Big for the MTU the tunnel leaves.

use crate::wire::ipv6;

pub const OVERHEAD: usize = ipv6::HEADER_LEN;

/// The MTU the tunnel leaves an inner packet on a link of `mtu`, or None
/// when the `inner_len` bytes fit.
#[inline]
pub fn too_big(inner_len: usize, mtu: u16) -> Option<u32> {
    (inner_len + OVERHEAD > mtu as usize).then(|| (mtu as u32).saturating_sub(OVERHEAD as u32))
}

/// Encapsulates in place. `frame` has grown by [`OVERHEAD`] bytes at the
/// front; the old layer-2 header (`l2_len` bytes) sits right after that gap
/// and is moved to the front (its ethertype is IPv6 already), then the
/// outer header is written in front of the inner packet.
pub fn encap_in_place(frame: &mut [u8], l2_len: usize, src: [u8; 16], dst: [u8; 16]) {
    frame.copy_within(OVERHEAD..OVERHEAD + l2_len, 0);
    let inner = l2_len + OVERHEAD;
    let inner_len = frame.len() - inner;
    let tc_flow = ipv6::tc_flow(&frame[inner..]);
    // The outer hop limit is the inner one, already lowered
    // (`ip_vs_prepare_tunneled_skb` copies `old_ipv6h->hop_limit`).
    let hop_limit = frame[inner + 7];
    ipv6::write_header_flow(
        &mut frame[l2_len..],
        tc_flow,
        inner_len as u16,
        ipv6::NH_IPV6,
        hop_limit,
        src,
        dst,
    );
}

/// IPv4 in IPv6 (next header 4, RFC 2473), for an IPv4 service's IPv6 TUN
/// server, as IPVS's `ip_vs_tunnel_xmit_v6` sends it to a server of the
/// other family. `frame` has grown by [`OVERHEAD`] bytes at the front; the
/// old layer-2 header (`l2_len` bytes, ethertype IPv4) sits after that gap
/// and is moved to the front with the ethertype IPv6. The outer hop limit
/// is the inner TTL, already lowered, and the traffic class the inner TOS
/// (`ip_vs_prepare_tunneled_skb`).
pub fn encap_4in6_in_place(frame: &mut [u8], l2_len: usize, src: [u8; 16], dst: [u8; 16]) {
    frame.copy_within(OVERHEAD..OVERHEAD + l2_len, 0);
    frame[l2_len - 2..l2_len].copy_from_slice(&crate::wire::ethernet::ETHERTYPE_IPV6.to_be_bytes());
    let inner = l2_len + OVERHEAD;
    let inner_len = frame.len() - inner;
    let (tos, ttl) = (frame[inner + 1], frame[inner + 8]);
    ipv6::write_header_flow(
        &mut frame[l2_len..],
        (tos as u32) << 20,
        inner_len as u16,
        PROTO_IPIP,
        ttl,
        src,
        dst,
    );
}

/// IPv4 encapsulated in IPv6.
pub const PROTO_IPIP: u8 = 4;

/// An outer IPv6 fragment's headers: the IPv6 header and a Fragment header
/// (RFC 8200 §4.5).
pub const FRAG_OVERHEAD: usize = OVERHEAD + 8;

/// Inner bytes per outer fragment: what fits the MTU, in 8-byte units.
#[inline]
pub fn fragment_payload(mtu: u16) -> usize {
    (mtu as usize).saturating_sub(FRAG_OVERHEAD) & !7
}

/// The IPv6 header and Fragment header of an outer fragment of an IPv4
/// packet (`tos`, `ttl`: the inner header's) into `h` (48 bytes): the
/// tunnel's entry point is the outer packet's source, which IPv6 lets
/// fragment (RFC 2473 §7.1), as Linux's `ip6_fragment` does under IPVS.
#[allow(clippy::too_many_arguments)]
fn fragment_headers(
    h: &mut [u8],
    tos: u8,
    ttl: u8,
    len: usize,
    off: usize,
    more: bool,
    id: u32,
    src: [u8; 16],
    dst: [u8; 16],
) {
    ipv6::write_header_flow(
        h,
        (tos as u32) << 20,
        (8 + len) as u16,
        ipv6::NH_FRAGMENT,
        ttl,
        src,
        dst,
    );
    h[40] = PROTO_IPIP;
    h[41] = 0;
    let word = (off as u16) | more as u16;
    h[42..44].copy_from_slice(&word.to_be_bytes());
    h[44..48].copy_from_slice(&id.to_be_bytes());
}

/// Writes one outer fragment (layer-2 header from `l2`, its ethertype made
/// IPv6) carrying `inner[off..off + len]` into `out`; returns its length.
#[allow(clippy::too_many_arguments)]
pub fn write_fragment(
    out: &mut [u8],
    l2: &[u8],
    inner: &[u8],
    off: usize,
    len: usize,
    more: bool,
    id: u32,
    src: [u8; 16],
    dst: [u8; 16],
) -> usize {
    let n = l2.len();
    out[..n].copy_from_slice(l2);
    out[n - 2..n].copy_from_slice(&crate::wire::ethernet::ETHERTYPE_IPV6.to_be_bytes());
    let (tos, ttl) = (inner[1], inner[8]);
    fragment_headers(
        &mut out[n..n + FRAG_OVERHEAD],
        tos,
        ttl,
        len,
        off,
        more,
        id,
        src,
        dst,
    );
    out[n + FRAG_OVERHEAD..n + FRAG_OVERHEAD + len].copy_from_slice(&inner[off..off + len]);
    n + FRAG_OVERHEAD + len
}

/// Turns a packet whose later fragments were sent into the first outer
/// fragment, in place: `frame` has grown by [`FRAG_OVERHEAD`] bytes at the
/// front, its layer-2 header (`l2_len` bytes) moves there, the headers for
/// the first `chunk` inner bytes follow. The caller trims the frame to
/// `l2_len + FRAG_OVERHEAD + chunk`.
pub fn first_fragment_in_place(
    frame: &mut [u8],
    l2_len: usize,
    chunk: usize,
    id: u32,
    src: [u8; 16],
    dst: [u8; 16],
) {
    frame.copy_within(FRAG_OVERHEAD..FRAG_OVERHEAD + l2_len, 0);
    frame[l2_len - 2..l2_len].copy_from_slice(&crate::wire::ethernet::ETHERTYPE_IPV6.to_be_bytes());
    let inner = l2_len + FRAG_OVERHEAD;
    let (tos, ttl) = (frame[inner + 1], frame[inner + 8]);
    fragment_headers(
        &mut frame[l2_len..inner],
        tos,
        ttl,
        chunk,
        0,
        true,
        id,
        src,
        dst,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, PacketBuilder, SlicedPacket};

    #[test]
    fn ipv6_in_ipv6_parses_as_two_headers() {
        let c = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        let v = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64];
        let s = [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let r = [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11];
        let mut inner = vec![];
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv6(c, v, 64)
            .tcp(40000, 80, 1, 100)
            .syn()
            .write(&mut inner, b"x")
            .unwrap();
        inner[15] = 0x0a; // traffic class / flow label bits to copy
        let mut f = vec![0u8; OVERHEAD];
        f.extend_from_slice(&inner);
        encap_in_place(&mut f, 14, s, r);
        assert_eq!(&f[..14], &inner[..14]);
        assert_eq!(&f[14 + OVERHEAD..], &inner[14..]);
        let p = SlicedPacket::from_ethernet(&f).unwrap();
        let Some(NetSlice::Ipv6(outer)) = p.net else {
            panic!()
        };
        let h = outer.header();
        assert_eq!(h.next_header().0, 41);
        assert_eq!(h.source(), s);
        assert_eq!(h.destination(), r);
        assert_eq!(h.payload_length() as usize, inner.len() - 14);
        assert_eq!(ipv6::tc_flow(&f[14..]), ipv6::tc_flow(&inner[14..]));
        // 1460 + 40 fills a 1500-byte link exactly; one byte more does not.
        assert_eq!(too_big(1460, 1500), None);
        assert_eq!(too_big(1461, 1500), Some(1460));
    }
}
