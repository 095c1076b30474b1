//! TCP (RFC 9293) sequence fields and options (RFC 9293 §3.2, RFC 7323,
//! RFC 2018): a bounded walker that reads the options a SYN proxy cares
//! about, an emitter for the options of the segments it builds, and a
//! writer for whole option-carrying TCP segments over IPv4 or IPv6.
//!
//! Functions take the slice that starts at the TCP header.

use super::checksum;
use super::ipv4;
use super::ipv6;

pub const OPT_EOL: u8 = 0;
pub const OPT_NOP: u8 = 1;
pub const OPT_MSS: u8 = 2;
pub const OPT_WSCALE: u8 = 3;
pub const OPT_SACK_PERM: u8 = 4;
pub const OPT_SACK: u8 = 5;
pub const OPT_TIMESTAMP: u8 = 8;
/// RFC 7323 §2.3: a shift above 14 is treated as 14.
pub const MAX_WSCALE: u8 = 14;
/// The most option bytes a TCP header holds (data offset 15 words).
pub const MAX_OPTIONS_LEN: usize = 40;

#[inline(always)]
pub fn seq(p: &[u8]) -> u32 {
    u32::from_be_bytes([p[4], p[5], p[6], p[7]])
}
#[inline(always)]
pub fn ack(p: &[u8]) -> u32 {
    u32::from_be_bytes([p[8], p[9], p[10], p[11]])
}
#[inline(always)]
pub fn window(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[14], p[15]])
}
/// Header length in bytes (the data offset).
#[inline(always)]
pub fn header_len(p: &[u8]) -> usize {
    (p[12] >> 4) as usize * 4
}
#[inline(always)]
pub fn checksum_field(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[16], p[17]])
}

/// A view of a TCP header at the start of a buffer, with its fields by name
/// (smoltcp's `wire::TcpPacket`): [`TcpPacket::new_checked`] makes sure the
/// header, options included, is there.
#[derive(Clone, Copy, Debug)]
pub struct TcpPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    #[inline(always)]
    pub fn new_checked(buf: T) -> Option<TcpPacket<T>> {
        super::l4::header_ok(ipv4::PROTO_TCP, buf.as_ref()).then_some(TcpPacket { buf })
    }
    #[inline(always)]
    pub fn src_port(&self) -> u16 {
        super::l4::src_port(self.buf.as_ref())
    }
    #[inline(always)]
    pub fn dst_port(&self) -> u16 {
        super::l4::dst_port(self.buf.as_ref())
    }
    #[inline(always)]
    pub fn seq(&self) -> u32 {
        seq(self.buf.as_ref())
    }
    #[inline(always)]
    pub fn ack(&self) -> u32 {
        ack(self.buf.as_ref())
    }
    #[inline(always)]
    pub fn flags(&self) -> u8 {
        super::l4::tcp_flags(self.buf.as_ref())
    }
    #[inline(always)]
    pub fn window(&self) -> u16 {
        window(self.buf.as_ref())
    }
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        header_len(self.buf.as_ref())
    }
    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        checksum_field(self.buf.as_ref())
    }
    /// The options a SYN proxy reads.
    #[inline]
    pub fn syn_options(&self) -> SynOptions {
        parse_syn_options(self.buf.as_ref())
    }
    /// The data after the header.
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[self.header_len()..]
    }
}

/// The options of a SYN or SYN-ACK that matter to a SYN proxy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SynOptions {
    pub mss: Option<u16>,
    /// The shift, already capped at [`MAX_WSCALE`].
    pub wscale: Option<u8>,
    pub sack_perm: bool,
    /// (TSval, TSecr).
    pub timestamp: Option<(u32, u32)>,
}

/// Walks the options of the TCP header `p` (whose data offset the caller
/// has checked against the slice), calling `f(kind, offset_of_kind, len)`
/// for each well-formed option; stops at EOL or at the first malformed
/// length. At most 40 bytes are examined.
#[inline]
pub fn walk_options(p: &[u8], mut f: impl FnMut(u8, usize, usize)) {
    let end = header_len(p).min(p.len());
    let mut i = 20;
    while i < end {
        let kind = p[i];
        match kind {
            OPT_EOL => return,
            OPT_NOP => i += 1,
            _ => {
                if i + 1 >= end {
                    return;
                }
                let len = p[i + 1] as usize;
                if len < 2 || i + len > end {
                    return;
                }
                f(kind, i, len);
                i += len;
            }
        }
    }
}

/// Reads MSS, window scale, SACK-permitted and timestamps.
pub fn parse_syn_options(p: &[u8]) -> SynOptions {
    let mut o = SynOptions::default();
    walk_options(p, |kind, at, len| match (kind, len) {
        (OPT_MSS, 4) => o.mss = Some(u16::from_be_bytes([p[at + 2], p[at + 3]])),
        (OPT_WSCALE, 3) => o.wscale = Some(p[at + 2].min(MAX_WSCALE)),
        (OPT_SACK_PERM, 2) => o.sack_perm = true,
        (OPT_TIMESTAMP, 10) => {
            o.timestamp = Some((
                u32::from_be_bytes([p[at + 2], p[at + 3], p[at + 4], p[at + 5]]),
                u32::from_be_bytes([p[at + 6], p[at + 7], p[at + 8], p[at + 9]]),
            ))
        }
        _ => {}
    });
    o
}

/// Writes `o` (timestamps excepted) as options at the start of `out`,
/// padded with NOPs to a multiple of 4; returns the length (at most 12).
/// Layout: MSS, NOP NOP SACK-permitted, NOP window scale (the order Linux
/// uses when timestamps are off).
pub fn emit_syn_options(out: &mut [u8], o: &SynOptions) -> usize {
    let mut n = 0;
    if let Some(mss) = o.mss {
        out[n..n + 4].copy_from_slice(&[OPT_MSS, 4, (mss >> 8) as u8, mss as u8]);
        n += 4;
    }
    if o.sack_perm {
        out[n..n + 4].copy_from_slice(&[OPT_NOP, OPT_NOP, OPT_SACK_PERM, 2]);
        n += 4;
    }
    if let Some(ws) = o.wscale {
        out[n..n + 4].copy_from_slice(&[OPT_NOP, OPT_WSCALE, 3, ws.min(MAX_WSCALE)]);
        n += 4;
    }
    n
}

/// A TCP segment to write whole, with an option-less IPv4 header
/// (`A = [u8; 4]`, [`write_segment`]) or a fixed IPv6 header without
/// extension headers (`A = [u8; 16]`, [`write_segment6`]).
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a, A = [u8; 4]> {
    pub src: A,
    pub dst: A,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// TTL, or the IPv6 hop limit.
    pub ttl: u8,
    /// IPv4 identification; IPv6 has none in its fixed header (ignored).
    pub ip_id: u16,
    /// Already encoded options, a multiple of 4 bytes long, at most 40.
    pub options: &'a [u8],
}

/// Bytes [`write_segment`] writes for `s` (IPv4 + TCP headers).
#[inline]
pub fn segment_len(s: &Segment) -> usize {
    ipv4::MIN_HEADER_LEN + 20 + s.options.len()
}

/// Writes the TCP header of `s` (any family) into `t`, exactly its length,
/// with the checksum over `pseudo` (the family's pseudo-header sum).
fn write_tcp<A>(t: &mut [u8], s: &Segment<A>, pseudo: u32) {
    debug_assert!(s.options.len().is_multiple_of(4) && s.options.len() <= MAX_OPTIONS_LEN);
    t[0..2].copy_from_slice(&s.sport.to_be_bytes());
    t[2..4].copy_from_slice(&s.dport.to_be_bytes());
    t[4..8].copy_from_slice(&s.seq.to_be_bytes());
    t[8..12].copy_from_slice(&s.ack.to_be_bytes());
    t[12] = ((t.len() / 4) as u8) << 4;
    t[13] = s.flags;
    t[14..16].copy_from_slice(&s.window.to_be_bytes());
    t[16..20].fill(0);
    t[20..].copy_from_slice(s.options);
    let c = !checksum::fold(checksum::add(pseudo, checksum::sum(t)));
    t[16..18].copy_from_slice(&c.to_be_bytes());
}

/// Writes `s` at the start of `buf` (which starts at the IPv4 header) with
/// both checksums, DF set and no payload; returns its length.
pub fn write_segment(buf: &mut [u8], s: &Segment) -> usize {
    let tcp_len = 20 + s.options.len();
    let total = ipv4::MIN_HEADER_LEN + tcp_len;
    ipv4::write_header(
        buf,
        total as u16,
        s.ip_id,
        ipv4::FLAG_DF,
        s.ttl,
        ipv4::PROTO_TCP,
        s.src,
        s.dst,
    );
    let ph = checksum::pseudo_header_v4(s.src, s.dst, ipv4::PROTO_TCP, tcp_len as u16);
    write_tcp(&mut buf[ipv4::MIN_HEADER_LEN..total], s, ph);
    total
}

/// Writes `s` at the start of `buf` (which starts at the IPv6 header):
/// a fixed header (traffic class and flow label 0, next header TCP, hop
/// limit `s.ttl`), then TCP with its checksum over the IPv6 pseudo-header
/// (RFC 8200 §8.1); no payload. Returns its length.
pub fn write_segment6(buf: &mut [u8], s: &Segment<[u8; 16]>) -> usize {
    let tcp_len = 20 + s.options.len();
    let total = ipv6::HEADER_LEN + tcp_len;
    ipv6::write_header(buf, tcp_len as u16, ipv6::NH_TCP, s.ttl, s.src, s.dst);
    let ph = checksum::pseudo_header_v6(&s.src, &s.dst, ipv6::NH_TCP, tcp_len as u32);
    write_tcp(&mut buf[ipv6::HEADER_LEN..total], s, ph);
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(opts: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 20];
        p.extend_from_slice(opts);
        while !p.len().is_multiple_of(4) {
            p.push(0);
        }
        p[12] = ((p.len() / 4) as u8) << 4;
        p
    }

    #[test]
    fn parses_linux_syn_options() {
        // MSS 1460, SACK-permitted, timestamps, NOP, window scale 7.
        let p = hdr(&[
            2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ]);
        let o = parse_syn_options(&p);
        assert_eq!(
            o,
            SynOptions {
                mss: Some(1460),
                wscale: Some(7),
                sack_perm: true,
                timestamp: Some((1, 0)),
            }
        );
    }

    #[test]
    fn malformed_options_stop_the_walk() {
        // A zero length would loop forever; a length past the header is cut.
        assert_eq!(
            parse_syn_options(&hdr(&[2, 0, 5, 0xb4])),
            SynOptions::default()
        );
        assert_eq!(
            parse_syn_options(&hdr(&[1, 1, 2, 9])),
            SynOptions::default()
        );
        // EOL ends the list.
        assert_eq!(parse_syn_options(&hdr(&[0, 2, 4, 5, 0xb4])).mss, None);
        // A shift above 14 is 14.
        assert_eq!(parse_syn_options(&hdr(&[3, 3, 20])).wscale, Some(14));
    }

    #[test]
    fn emitted_options_parse_back() {
        for mss in [None, Some(1460)] {
            for ws in [None, Some(0), Some(7)] {
                for sack in [false, true] {
                    let o = SynOptions {
                        mss,
                        wscale: ws,
                        sack_perm: sack,
                        timestamp: None,
                    };
                    let mut b = [0u8; 40];
                    let n = emit_syn_options(&mut b, &o);
                    assert_eq!(n % 4, 0);
                    assert_eq!(parse_syn_options(&hdr(&b[..n])), o);
                }
            }
        }
    }
}
