//! IP tunnelling (`-i`, `lb_kind TUN`): the packet is wrapped in an outer
//! IPv4 header to the real server (IPIP, RFC 2003), which unwraps it and
//! answers the client directly.
//!
//! As IPVS does (`ip_vs_tunnel_xmit`), the outer header copies the inner DF
//! bit. A packet with DF that no longer fits the MTU is answered with ICMP
//! fragmentation-needed quoting the tunnel overhead; one without DF is sent
//! as outer fragments.

use super::Egress;
use crate::counters::DropReason;
use crate::port::Packet;
use crate::snapshot::Snapshot;
use crate::wire::{ethernet, icmp, ipv4};
use std::net::Ipv4Addr;

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
    // The outer TTL is the inner one, already lowered
    // (`ip_vs_prepare_tunneled_skb` copies `old_iph->ttl`).
    let ttl = frame[inner + 8];
    ipv4::write_header(
        &mut frame[l2_len..],
        (inner_len + OVERHEAD) as u16,
        id,
        df,
        ttl,
        ipv4::PROTO_IPIP,
        src,
        dst,
    );
}

/// IPv6 in IPv4 (protocol 41, RFC 4213 §3.5), for an IPv6 service's IPv4
/// tunnel server, as IPVS's `ip_vs_tunnel_xmit` sends it to a server of
/// the other family. `frame` has grown by [`OVERHEAD`] bytes at the front;
/// the old layer-2 header (`l2_len` bytes, ethertype IPv6) sits after that
/// gap and is moved to the front with the ethertype IPv4. The outer TTL is
/// the inner hop limit, already lowered, and DF is clear as IPVS leaves it
/// for an IPv6 inner packet (`ip_vs_prepare_tunneled_skb`); the caller
/// never sends one that needs fragments (IPv6 is not fragmented on the
/// way, RFC 8200 §5: it answers Packet Too Big instead).
pub fn encap_6in4_in_place(frame: &mut [u8], l2_len: usize, id: u16, src: [u8; 4], dst: [u8; 4]) {
    frame.copy_within(OVERHEAD..OVERHEAD + l2_len, 0);
    frame[l2_len - 2..l2_len].copy_from_slice(&ethernet::ETHERTYPE_IPV4.to_be_bytes());
    let inner = l2_len + OVERHEAD;
    let inner_len = frame.len() - inner;
    let hop_limit = frame[inner + 7];
    ipv4::write_header(
        &mut frame[l2_len..],
        (inner_len + OVERHEAD) as u16,
        id,
        0,
        hop_limit,
        PROTO_IPV6,
        src,
        dst,
    );
}

/// IPv6 encapsulated in IPv4 (RFC 4213).
pub const PROTO_IPV6: u8 = 41;

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
    // The inner TTL, as `ip_vs_prepare_tunneled_skb` copies it.
    let ttl = inner.get(8).copied().unwrap_or(64);
    ipv4::write_header(
        &mut out[n..],
        (OVERHEAD + len) as u16,
        id,
        frag,
        ttl,
        ipv4::PROTO_IPIP,
        src,
        dst,
    );
    out[n + OVERHEAD..n + OVERHEAD + len].copy_from_slice(&inner[off..off + len]);
    n + OVERHEAD + len
}

/// Turns a packet whose later fragments have been sent into the first
/// outer fragment, in place. `frame` has grown by `OVERHEAD` bytes at the
/// front; its layer-2 header (`l2_len` bytes) is moved to the front and the
/// outer header written for the first `chunk` bytes of the inner packet,
/// which are already in place behind it. The caller trims the frame to
/// `l2_len + OVERHEAD + chunk`.
pub fn first_fragment_in_place(
    frame: &mut [u8],
    l2_len: usize,
    chunk: usize,
    id: u16,
    src: [u8; 4],
    dst: [u8; 4],
) {
    frame.copy_within(OVERHEAD..OVERHEAD + l2_len, 0);
    // The inner header sits right behind the outer one's place.
    let ttl = frame[l2_len + OVERHEAD + 8];
    ipv4::write_header(
        &mut frame[l2_len..],
        (OVERHEAD + chunk) as u16,
        id,
        ipv4::FLAG_MF,
        ttl,
        ipv4::PROTO_IPIP,
        src,
        dst,
    );
}

/// Sends the IPv4 packet at `l3` (`info`: its parsed header) through the
/// tunnel to the real server `rip`: encapsulated, or as outer fragments, or
/// answered with fragmentation-needed (see the module's notes).
#[inline]
#[allow(clippy::too_many_arguments)]
pub fn transmit<E: Egress>(
    out: &mut E,
    snap: &Snapshot,
    mut pkt: E::Pkt,
    l3: usize,
    info: &ipv4::Ipv4Info,
    rip: [u8; 4],
    now: u64,
) {
    let Some(nh) = snap.routes.lookup(Ipv4Addr::from(rip)) else {
        return out.drop_pkt(DropReason::NoRoute, pkt);
    };
    let mtu = snap.ports.get(nh.port as usize).map_or(1500, |p| p.mtu);
    let src = snap.port_addr(nh.port).map_or([0; 4], |a| a.octets());
    // Drop Ethernet padding: the tunnel carries the IP packet only.
    pkt.set_len(l3 + info.total_len);
    let id = out.ip_id();
    match fit(info.total_len, mtu, info.df()) {
        Fit::Fits => {
            if !pkt.prepend(OVERHEAD) {
                return out.drop_pkt(DropReason::NoBuffer, pkt);
            }
            encap_in_place(pkt.data_mut(), l3, id, src, rip);
            out.send(snap, pkt, rip, now);
        }
        Fit::TooBig(m) => too_big(out, snap, pkt, l3, info, nh.port, m, now),
        Fit::Fragment => fragment(
            out,
            snap,
            pkt,
            l3,
            info.total_len,
            mtu,
            nh.port,
            id,
            src,
            rip,
            now,
        ),
    }
}

/// DF set and too big: the client is told the tunnel's MTU, from the VIP
/// (the address it used, as IPVS answers), and the packet is dropped.
#[allow(clippy::too_many_arguments)]
pub(crate) fn too_big<E: Egress>(
    out: &mut E,
    snap: &Snapshot,
    pkt: E::Pkt,
    l3: usize,
    info: &ipv4::Ipv4Info,
    port: u16,
    mtu: u16,
    now: u64,
) {
    let vip = info.dst;
    if let Some(mut reply) = out.alloc(port) {
        let frame = pkt.data();
        let n = ethernet::HEADER_LEN + icmp::frag_needed_len(info.header_len, info.total_len);
        if reply.set_len(n) {
            let o = reply.data_mut();
            ethernet::write_header(o, &[0; 6], &[0; 6], None, ethernet::ETHERTYPE_IPV4);
            icmp::build_frag_needed(
                &mut o[ethernet::HEADER_LEN..],
                &frame[l3..],
                info.header_len,
                vip,
                mtu,
            );
            out.send(snap, reply, info.src, now);
        } else {
            out.counters().drop(DropReason::NoBuffer);
        }
    } else {
        out.counters().drop(DropReason::NoBuffer);
    }
    out.drop_pkt(DropReason::TooBig, pkt);
}

/// DF clear and too big: outer fragments of the inner packet of
/// `inner_len` bytes. Later fragments are copies; the first reuses the
/// packet.
#[allow(clippy::too_many_arguments)]
fn fragment<E: Egress>(
    out: &mut E,
    snap: &Snapshot,
    mut pkt: E::Pkt,
    l3: usize,
    inner_len: usize,
    mtu: u16,
    port: u16,
    id: u16,
    src: [u8; 4],
    rip: [u8; 4],
    now: u64,
) {
    let chunk = fragment_payload(mtu);
    let mut off = chunk;
    while off < inner_len {
        let len = chunk.min(inner_len - off);
        let more = off + len < inner_len;
        let Some(mut f) = out.alloc(port) else {
            out.counters().drop(DropReason::NoBuffer);
            return out.drop_pkt(DropReason::NoBuffer, pkt);
        };
        if !f.set_len(l3 + OVERHEAD + len) {
            out.counters().drop(DropReason::NoBuffer);
            return out.drop_pkt(DropReason::NoBuffer, pkt);
        }
        let frame = pkt.data();
        write_fragment(
            f.data_mut(),
            &frame[..l3],
            &frame[l3..],
            off,
            len,
            more,
            id,
            src,
            rip,
        );
        out.counters().fragments_sent.inc();
        out.send(snap, f, rip, now);
        off += len;
    }
    if !pkt.prepend(OVERHEAD) {
        return out.drop_pkt(DropReason::NoBuffer, pkt);
    }
    first_fragment_in_place(pkt.data_mut(), l3, chunk, id, src, rip);
    pkt.set_len(l3 + OVERHEAD + chunk);
    out.counters().fragments_sent.inc();
    out.send(snap, pkt, rip, now);
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

    use crate::conn::template::TemplateTable;
    use crate::counters::WorkerCounters;
    use crate::port::memory::MemPacket;
    use crate::snapshot::{PortConf, SnapshotBuilder};
    use crate::wire::checksum;
    use std::sync::Arc;

    /// An egress that records what a mode sends and drops.
    #[derive(Default)]
    struct Recorder {
        sent: Vec<(Vec<u8>, [u8; 4])>,
        dropped: Vec<DropReason>,
        ctr: WorkerCounters,
        id: u16,
    }

    impl Egress for Recorder {
        type Pkt = MemPacket;
        fn alloc(&mut self, _port: u16) -> Option<MemPacket> {
            Some(MemPacket::new())
        }
        fn send(&mut self, _snap: &Snapshot, pkt: MemPacket, dst: [u8; 4], _now: u64) {
            self.sent.push((pkt.data().to_vec(), dst));
        }
        fn drop_pkt(&mut self, r: DropReason, _pkt: MemPacket) {
            self.dropped.push(r);
        }
        fn counters(&self) -> &WorkerCounters {
            &self.ctr
        }
        fn ip_id(&mut self) -> u16 {
            self.id += 1;
            self.id
        }
    }

    const RIP: [u8; 4] = [10, 0, 0, 2];
    const CLIENT: [u8; 4] = [203, 0, 113, 7];
    const VIP: [u8; 4] = [192, 0, 2, 10];

    fn snap(mtu: u16) -> Snapshot {
        let mut b = SnapshotBuilder::new(1, 1, Arc::new(TemplateTable::new(64)));
        b.port(PortConf {
            name: "eth0".into(),
            mac: [2, 0, 0, 0, 0, 1],
            addrs: vec![(Ipv4Addr::new(10, 0, 0, 1), 24)],
            mtu,
        });
        b.build().unwrap()
    }

    /// An Ethernet frame carrying a UDP-less IPv4 packet of `total` bytes
    /// (payload counting up), plus 4 bytes of Ethernet padding.
    fn frame(total: usize, df: bool) -> (MemPacket, ipv4::Ipv4Info) {
        let mut f = vec![0u8; ethernet::HEADER_LEN + total + 4];
        ethernet::write_header(&mut f, &[2; 6], &[4; 6], None, ethernet::ETHERTYPE_IPV4);
        let l3 = ethernet::HEADER_LEN;
        for (i, b) in f[l3 + 20..l3 + total].iter_mut().enumerate() {
            *b = i as u8;
        }
        let flags = if df { ipv4::FLAG_DF } else { 0 };
        ipv4::write_header(&mut f[l3..], total as u16, 9, flags, 63, 17, CLIENT, VIP);
        let info = ipv4::parse(&f[l3..]).unwrap();
        (MemPacket::from_frame(&f), info)
    }

    #[test]
    fn a_packet_that_fits_is_encapsulated() {
        let s = snap(1500);
        let (p, info) = frame(100, true);
        let inner = p.data()[14..114].to_vec();
        let mut e = Recorder::default();
        transmit(&mut e, &s, p, 14, &info, RIP, 0);
        assert!(e.dropped.is_empty());
        let [(f, dst)] = &e.sent[..] else {
            panic!("{:?}", e.sent.len())
        };
        assert_eq!(*dst, RIP);
        assert_eq!(f.len(), 14 + OVERHEAD + 100);
        let outer = ipv4::parse(&f[14..]).unwrap();
        assert_eq!(outer.proto, ipv4::PROTO_IPIP);
        assert_eq!((outer.src, outer.dst), ([10, 0, 0, 1], RIP));
        assert_eq!(outer.frag, ipv4::FLAG_DF);
        assert_eq!(&f[14 + OVERHEAD..], &inner[..]);
    }

    #[test]
    fn too_big_without_df_goes_as_outer_fragments() {
        let s = snap(1000);
        let (p, info) = frame(1200, false);
        let inner = p.data()[14..14 + 1200].to_vec();
        let mut e = Recorder::default();
        transmit(&mut e, &s, p, 14, &info, RIP, 0);
        assert!(e.dropped.is_empty());
        assert_eq!(e.ctr.fragments_sent.get(), 2);
        // Later fragments first; the packet itself becomes the first.
        let mut joined = vec![0u8; 1200];
        for (f, dst) in &e.sent {
            assert_eq!(*dst, RIP);
            assert_eq!(checksum::checksum(&f[14..34]), 0);
            let o = ipv4::parse(&f[14..]).unwrap();
            assert_eq!(o.total_len, f.len() - 14);
            let off = (o.frag & ipv4::FRAG_OFFSET_MASK) as usize * 8;
            let more = o.frag & ipv4::FLAG_MF != 0;
            assert_eq!(more, off == 0);
            joined[off..off + f.len() - 34].copy_from_slice(&f[34..]);
        }
        assert_eq!(e.sent.len(), 2);
        assert_eq!(e.sent[1].0.len(), 14 + 20 + 976);
        assert_eq!(joined, inner);
    }

    #[test]
    fn too_big_with_df_tells_the_client_from_the_vip() {
        let s = snap(1000);
        let (p, info) = frame(1200, true);
        let mut e = Recorder::default();
        transmit(&mut e, &s, p, 14, &info, RIP, 0);
        assert_eq!(e.dropped, [DropReason::TooBig]);
        let [(f, dst)] = &e.sent[..] else {
            panic!("{:?}", e.sent.len())
        };
        assert_eq!(*dst, CLIENT);
        let o = ipv4::parse(&f[14..]).unwrap();
        assert_eq!((o.proto, o.src, o.dst), (ipv4::PROTO_ICMP, VIP, CLIENT));
        let m = &f[14 + o.header_len..];
        assert_eq!(
            (m[0], m[1]),
            (icmp::TYPE_DEST_UNREACH, icmp::CODE_FRAG_NEEDED)
        );
        assert_eq!(u16::from_be_bytes([m[6], m[7]]), 980);
    }
}
