//! IPv4 headers (RFC 791), read and rewritten in place.
//!
//! Functions take the slice that starts at the IPv4 header. Rewrites keep the
//! header checksum valid by incremental update (RFC 1624).

use super::checksum;
use std::net::Ipv4Addr;

pub const MIN_HEADER_LEN: usize = 20;
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_IPIP: u8 = 4;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_VRRP: u8 = 112;
pub const FLAG_DF: u16 = 0x4000;
pub const FLAG_MF: u16 = 0x2000;
pub const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// Why an IPv4 header was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ipv4Error {
    Truncated,
    BadVersion,
    BadIhl,
    BadTotalLen,
    BadChecksum,
}

/// The fields of a validated IPv4 header that forwarding needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Info {
    pub header_len: usize,
    pub total_len: usize,
    pub proto: u8,
    pub ttl: u8,
    /// Flags and fragment offset as on the wire.
    pub frag: u16,
    pub src: [u8; 4],
    pub dst: [u8; 4],
}

impl Ipv4Info {
    /// More fragments follow, or this is not the first fragment.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.frag & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }
    #[inline]
    pub fn df(&self) -> bool {
        self.frag & FLAG_DF != 0
    }
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.src)
    }
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.dst)
    }
}

/// A view of the IPv4 header at the start of a buffer, with its fields by
/// name (smoltcp's `wire::Ipv4Packet`). [`Ipv4Packet::new_checked`] makes
/// sure the fixed header and the options are there, which is all the
/// accessors need; [`parse`] validates the rest (total length, checksum)
/// into an [`Ipv4Info`]. The worker's prefetch pass and the full parse read
/// the header through this one view.
#[derive(Clone, Copy, Debug)]
pub struct Ipv4Packet<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// A view without checks: the accessors panic on a short buffer.
    #[inline(always)]
    pub fn new_unchecked(buf: T) -> Ipv4Packet<T> {
        Ipv4Packet { buf }
    }

    /// A view of a buffer that holds an IPv4 header of at least 20 bytes
    /// and all of its options.
    #[inline(always)]
    pub fn new_checked(buf: T) -> Result<Ipv4Packet<T>, Ipv4Error> {
        let p = buf.as_ref();
        if p.len() < MIN_HEADER_LEN {
            return Err(Ipv4Error::Truncated);
        }
        if p[0] >> 4 != 4 {
            return Err(Ipv4Error::BadVersion);
        }
        let hl = ((p[0] & 0x0f) as usize) * 4;
        if hl < MIN_HEADER_LEN {
            return Err(Ipv4Error::BadIhl);
        }
        if p.len() < hl {
            return Err(Ipv4Error::Truncated);
        }
        Ok(Ipv4Packet { buf })
    }

    #[inline(always)]
    pub fn header_len(&self) -> usize {
        ((self.buf.as_ref()[0] & 0x0f) as usize) * 4
    }
    #[inline(always)]
    pub fn tos(&self) -> u8 {
        self.buf.as_ref()[1]
    }
    #[inline(always)]
    pub fn total_len(&self) -> usize {
        let p = self.buf.as_ref();
        u16::from_be_bytes([p[2], p[3]]) as usize
    }
    #[inline(always)]
    pub fn ident(&self) -> u16 {
        let p = self.buf.as_ref();
        u16::from_be_bytes([p[4], p[5]])
    }
    /// Flags and fragment offset as on the wire.
    #[inline(always)]
    pub fn frag(&self) -> u16 {
        let p = self.buf.as_ref();
        u16::from_be_bytes([p[6], p[7]])
    }
    /// More fragments follow, or this is not the first fragment.
    #[inline(always)]
    pub fn is_fragment(&self) -> bool {
        self.frag() & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }
    #[inline(always)]
    pub fn ttl(&self) -> u8 {
        self.buf.as_ref()[8]
    }
    #[inline(always)]
    pub fn protocol(&self) -> u8 {
        self.buf.as_ref()[9]
    }
    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        let p = self.buf.as_ref();
        u16::from_be_bytes([p[10], p[11]])
    }
    #[inline(always)]
    pub fn src_addr(&self) -> [u8; 4] {
        self.buf.as_ref()[12..16].try_into().unwrap()
    }
    #[inline(always)]
    pub fn dst_addr(&self) -> [u8; 4] {
        self.buf.as_ref()[16..20].try_into().unwrap()
    }
    /// Whether the header checksum is right.
    #[inline]
    pub fn checksum_ok(&self) -> bool {
        checksum::fold(checksum::sum(&self.buf.as_ref()[..self.header_len()])) == 0xffff
    }
    /// What follows the header (options included in the header), up to the
    /// end of the buffer.
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[self.header_len()..]
    }
    pub fn into_inner(self) -> T {
        self.buf
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// What follows the header, writable.
    #[inline(always)]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buf.as_mut()[hl..]
    }
}

/// Validates version, IHL, total length and header checksum, as the Linux
/// receive path (`ip_rcv_core`) does before IPVS sees a packet. Trailing bytes
/// past the total length (Ethernet padding) are allowed.
#[inline]
pub fn parse(p: &[u8]) -> Result<Ipv4Info, Ipv4Error> {
    let v = Ipv4Packet::new_checked(p)?;
    let header_len = v.header_len();
    let total_len = v.total_len();
    if total_len < header_len || total_len > p.len() {
        return Err(Ipv4Error::BadTotalLen);
    }
    if !v.checksum_ok() {
        return Err(Ipv4Error::BadChecksum);
    }
    Ok(Ipv4Info {
        header_len,
        total_len,
        proto: v.protocol(),
        ttl: v.ttl(),
        frag: v.frag(),
        src: v.src_addr(),
        dst: v.dst_addr(),
    })
}

impl Ipv4Info {
    /// Writes this header (without options, with a fresh checksum) at the
    /// start of `p`, with `ident` and `tos`: the emit side of [`parse`].
    pub fn emit(&self, p: &mut [u8], ident: u16, tos: u8) {
        write_header(
            p,
            self.total_len as u16,
            ident,
            self.frag,
            self.ttl,
            self.proto,
            self.src,
            self.dst,
        );
        if tos != 0 {
            p[1] = tos;
            fill_checksum(p);
        }
    }
}

#[inline(always)]
pub fn header_checksum(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[10], p[11]])
}

#[inline(always)]
fn set_header_checksum(p: &mut [u8], c: u16) {
    p[10..12].copy_from_slice(&c.to_be_bytes());
}

/// Rewrites the source address, updating the header checksum.
#[inline]
pub fn set_src(p: &mut [u8], new: [u8; 4]) {
    let old: [u8; 4] = p[12..16].try_into().unwrap();
    p[12..16].copy_from_slice(&new);
    set_header_checksum(p, checksum::update32(header_checksum(p), old, new));
}

/// Rewrites the destination address, updating the header checksum.
#[inline]
pub fn set_dst(p: &mut [u8], new: [u8; 4]) {
    let old: [u8; 4] = p[16..20].try_into().unwrap();
    p[16..20].copy_from_slice(&new);
    set_header_checksum(p, checksum::update32(header_checksum(p), old, new));
}

/// Decrements the TTL as a router does (RFC 1812 §5.3.1); the caller has
/// already checked it is above 1.
#[inline]
pub fn dec_ttl(p: &mut [u8]) {
    let old = u16::from_be_bytes([p[8], p[9]]);
    p[8] -= 1;
    let new = u16::from_be_bytes([p[8], p[9]]);
    set_header_checksum(p, checksum::update16(header_checksum(p), old, new));
}

/// Recomputes the header checksum from scratch.
pub fn fill_checksum(p: &mut [u8]) {
    let hl = ((p[0] & 0x0f) as usize) * 4;
    p[10] = 0;
    p[11] = 0;
    let c = checksum::checksum(&p[..hl]);
    set_header_checksum(p, c);
}

/// Writes an option-less IPv4 header with a fresh checksum.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn write_header(
    p: &mut [u8],
    total_len: u16,
    id: u16,
    frag: u16,
    ttl: u8,
    proto: u8,
    src: [u8; 4],
    dst: [u8; 4],
) {
    write_header_tos(p, 0, total_len, id, frag, ttl, proto, src, dst)
}

/// [`write_header`] with a type of service. The checksum is summed from
/// the values, not read back from the bytes just written (which would
/// stall on store forwarding).
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn write_header_tos(
    p: &mut [u8],
    tos: u8,
    total_len: u16,
    id: u16,
    frag: u16,
    ttl: u8,
    proto: u8,
    src: [u8; 4],
    dst: [u8; 4],
) {
    let w = |a: [u8; 4]| u32::from_be_bytes(a) as u64;
    let s = (0x4500 | tos as u64)
        + total_len as u64
        + id as u64
        + frag as u64
        + ((ttl as u64) << 8 | proto as u64)
        + w(src)
        + w(dst);
    let s = (s & 0xffff) + ((s >> 16) & 0xffff) + (s >> 32);
    let c = checksum::checksum_of_sum(s as u32);
    p[0] = 0x45;
    p[1] = tos;
    p[2..4].copy_from_slice(&total_len.to_be_bytes());
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6..8].copy_from_slice(&frag.to_be_bytes());
    p[8] = ttl;
    p[9] = proto;
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr() -> [u8; 24] {
        let mut p = [0u8; 24];
        write_header(
            &mut p,
            24,
            7,
            FLAG_DF,
            64,
            PROTO_TCP,
            [198, 18, 0, 1],
            [198, 18, 0, 100],
        );
        p
    }

    /// The checksum summed from the values is the one summed from the
    /// bytes, and an independent parser takes the header.
    #[test]
    fn written_header_checksum_is_valid() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_be_bytes();
            let mut p = [0u8; 20];
            let total = 20 + (x >> 48) as u16 % 1400;
            write_header_tos(
                &mut p,
                b[0],
                total,
                u16::from_be_bytes([b[1], b[2]]),
                u16::from_be_bytes([b[3], b[4]]) & 0x5fff,
                b[5],
                b[6],
                [b[7], b[0], b[1], b[2]],
                [b[3], b[4], b[5], b[6]],
            );
            assert_eq!(checksum::fold(checksum::sum(&p)), 0xffff, "{p:?}");
            let h = etherparse::Ipv4HeaderSlice::from_slice(&p).unwrap();
            assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
            assert_eq!(h.total_len(), total);
        }
    }

    #[test]
    fn parse_and_rewrite() {
        let mut p = hdr();
        let i = parse(&p).unwrap();
        assert_eq!(i.header_len, 20);
        assert!(i.df() && !i.is_fragment());
        set_dst(&mut p, [198, 18, 1, 11]);
        set_src(&mut p, [198, 18, 2, 10]);
        dec_ttl(&mut p);
        let i = parse(&p).unwrap();
        assert_eq!(i.dst, [198, 18, 1, 11]);
        assert_eq!(i.ttl, 63);
        let e = etherparse::Ipv4HeaderSlice::from_slice(&p)
            .unwrap()
            .to_header();
        assert_eq!(e.header_checksum, e.calc_header_checksum());
    }

    #[test]
    fn view_and_emit_agree_with_parse() {
        let p = hdr();
        let v = Ipv4Packet::new_checked(&p[..]).unwrap();
        assert_eq!(
            (
                v.header_len(),
                v.total_len(),
                v.ident(),
                v.ttl(),
                v.protocol()
            ),
            (20, 24, 7, 64, PROTO_TCP)
        );
        assert_eq!(
            (v.src_addr(), v.dst_addr()),
            ([198, 18, 0, 1], [198, 18, 0, 100])
        );
        assert!(v.checksum_ok() && !v.is_fragment());
        assert_eq!(v.payload().len(), 4);
        let i = parse(&p).unwrap();
        let mut q = [0u8; 24];
        i.emit(&mut q, 7, 0);
        assert_eq!(q[..20], p[..20]);
        i.emit(&mut q, 9, 0xb8);
        let e = etherparse::Ipv4HeaderSlice::from_slice(&q)
            .unwrap()
            .to_header();
        assert_eq!(
            (e.identification, e.header_checksum),
            (9, e.calc_header_checksum())
        );
        assert_eq!(
            Ipv4Packet::new_checked(&p[..19]).err(),
            Some(Ipv4Error::Truncated)
        );
    }

    #[test]
    fn rejects_garbage() {
        let p = hdr();
        assert_eq!(parse(&p[..19]), Err(Ipv4Error::Truncated));
        let mut q = p;
        q[0] = 0x65;
        assert_eq!(parse(&q), Err(Ipv4Error::BadVersion));
        let mut q = p;
        q[0] = 0x44;
        assert_eq!(parse(&q), Err(Ipv4Error::BadIhl));
        let mut q = p;
        q[0] = 0x4f;
        assert_eq!(parse(&q), Err(Ipv4Error::Truncated));
        let mut q = p;
        q[3] = 200;
        assert_eq!(parse(&q), Err(Ipv4Error::BadTotalLen));
        let mut q = p;
        q[8] = 1;
        assert_eq!(parse(&q), Err(Ipv4Error::BadChecksum));
    }
}
