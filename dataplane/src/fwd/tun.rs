//! IP tunnelling (`-i`, `lb_kind TUN`): the packet is wrapped in an outer
//! IPv4 header to the real server (IPIP, RFC 2003), which unwraps it and
//! answers the client directly.
//!
//! As IPVS does (`ip_vs_tunnel_xmit`), the outer header copies the inner DF
//! bit. A packet with DF that no longer fits the MTU is answered with ICMP
//! fragmentation-needed quoting the tunnel overhead; one without DF is sent
//! as outer fragments.

use crate::wire::ipv4;

pub const OVERHEAD: usize = ipv4::MIN_HEADER_LEN;

/// Whether an inner packet of `inner_len` bytes fits the tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    Fits,
    /// Too big, DF clear: fragment the outer packet.
    Fragment,
    /// Too big, DF set: send fragmentation-needed with this MTU.
    TooBig(u16),
}

#[inline]
pub fn fit(inner_len: usize, mtu: u16, df: bool) -> Fit {
    if inner_len + OVERHEAD <= mtu as usize {
        Fit::Fits
    } else if df {
        Fit::TooBig(mtu.saturating_sub(OVERHEAD as u16))
    } else {
        Fit::Fragment
    }
}

/// Encapsulates in place. `frame` has already grown by `OVERHEAD` bytes at
/// the front; the old layer-2 header (`l2_len` bytes) sits right after that
/// gap and is moved to the front, then the outer header is written.
pub fn encap_in_place(frame: &mut [u8], l2_len: usize, id: u16, src: [u8; 4], dst: [u8; 4]) {
    frame.copy_within(OVERHEAD..OVERHEAD + l2_len, 0);
    let inner = l2_len + OVERHEAD;
    let inner_len = frame.len() - inner;
    let df = u16::from_be_bytes([frame[inner + 6], frame[inner + 7]]) & ipv4::FLAG_DF;
    ipv4::write_header(
        &mut frame[l2_len..],
        (inner_len + OVERHEAD) as u16,
        id,
        df,
        64,
        ipv4::PROTO_IPIP,
        src,
        dst,
    );
}

/// Payload bytes per outer fragment: what fits the MTU, in 8-byte units.
#[inline]
pub fn fragment_payload(mtu: u16) -> usize {
    (mtu as usize - OVERHEAD) & !7
}

/// Writes one outer fragment (layer 2 header copied from `l2`) carrying
/// `inner[off..off + len]` into `out`; returns the frame length.
#[allow(clippy::too_many_arguments)]
pub fn write_fragment(
    out: &mut [u8],
    l2: &[u8],
    inner: &[u8],
    off: usize,
    len: usize,
    more: bool,
    id: u16,
    src: [u8; 4],
    dst: [u8; 4],
) -> usize {
    let n = l2.len();
    out[..n].copy_from_slice(l2);
    let frag = ((off / 8) as u16) | if more { ipv4::FLAG_MF } else { 0 };
    ipv4::write_header(
        &mut out[n..],
        (OVERHEAD + len) as u16,
        id,
        frag,
        64,
        ipv4::PROTO_IPIP,
        src,
        dst,
    );
    out[n + OVERHEAD..n + OVERHEAD + len].copy_from_slice(&inner[off..off + len]);
    n + OVERHEAD + len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_rules() {
        assert_eq!(fit(1480, 1500, true), Fit::Fits);
        assert_eq!(fit(1481, 1500, true), Fit::TooBig(1480));
        assert_eq!(fit(1481, 1500, false), Fit::Fragment);
        assert_eq!(fragment_payload(1500), 1480);
        assert_eq!(fragment_payload(1000), 976);
    }
}
