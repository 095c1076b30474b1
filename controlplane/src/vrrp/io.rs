//! The VRRP socket: a raw IPv4 or IPv6 socket for protocol 112 on one
//! interface, as keepalived opens it. The kernel keeps the director's own
//! address, so adverts go through it (with the AF_PACKET backend the kernel
//! sees every frame anyway; with DPDK they go through the exception path).
//!
//! A raw IPv6 socket hands over the payload only (RFC 3542 §3): the source
//! comes from `recvmsg`'s address, the hop limit from IPV6_HOPLIMIT and the
//! destination (multicast or not) from IPV6_PKTINFO ancillary data, as
//! keepalived asks for them (IPV6_RECVHOPLIMIT, IPV6_RECVPKTINFO).

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrIn6};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, SockFilter, Socket, Type};
use std::io::{self, IoSliceMut, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const IPPROTO_VRRP: i32 = 112;
pub const VRRP_MCAST: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// RFC 5798 §5.1.2.2.
pub const VRRP_MCAST6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

/// A received VRRP packet with what the IP header said about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TTL, or hop limit over IPv6.
    pub ttl: u8,
    /// The VRRP message (after the IP header).
    pub payload: Vec<u8>,
}

/// Two raw sockets: one receives every VRRP packet on the interface, the
/// other sends. They must differ: a raw socket bound to an address gets only
/// datagrams addressed to it, which would filter out multicast adverts, and
/// binding is how the source of what we send is fixed (unicast_src_ip).
/// A small thread blocks in `recv` and hands packets to the VRRP task: VRRP
/// carries a packet a second per router, so a thread is cheaper than unsafe
/// fd registration.
#[derive(Clone)]
pub struct VrrpSocket {
    rx: Arc<Socket>,
    tx: Arc<Socket>,
    /// IPv6: the interface index, the scope of link-local destinations.
    scope: Option<u32>,
}

impl VrrpSocket {
    /// Opens the sockets on `ifname` (interface index `idx`), sending from
    /// `src`, member of the multicast `groups` (none for unicast-only
    /// instances). The family is `src`'s.
    pub fn open(ifname: &str, idx: u32, src: IpAddr, groups: &[IpAddr]) -> io::Result<VrrpSocket> {
        match src {
            IpAddr::V4(src) => {
                let groups: Vec<Ipv4Addr> = groups
                    .iter()
                    .filter_map(|g| match g {
                        IpAddr::V4(g) => Some(*g),
                        IpAddr::V6(_) => None,
                    })
                    .collect();
                Self::open_v4(ifname, idx, src, &groups)
            }
            IpAddr::V6(src) => {
                let groups: Vec<Ipv6Addr> = groups
                    .iter()
                    .filter_map(|g| match g {
                        IpAddr::V6(g) => Some(*g),
                        IpAddr::V4(_) => None,
                    })
                    .collect();
                Self::open_v6(ifname, idx, src, &groups)
            }
        }
    }

    fn open_v4(
        ifname: &str,
        idx: u32,
        src: Ipv4Addr,
        groups: &[Ipv4Addr],
    ) -> io::Result<VrrpSocket> {
        let ctx = |what: &str, e: io::Error| {
            io::Error::new(e.kind(), format!("VRRP socket on {ifname}: {what}: {e}"))
        };
        let raw = || Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_VRRP)));

        let rx = raw().map_err(|e| ctx("socket", e))?;
        rx.bind_device(Some(ifname.as_bytes()))
            .map_err(|e| ctx("bind to device", e))?;
        for g in groups {
            rx.join_multicast_v4_n(g, &InterfaceIndexOrAddress::Index(idx))
                .map_err(|e| ctx("join group", e))?;
        }
        rx.set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| ctx("read timeout", e))?;

        let tx = raw().map_err(|e| ctx("socket", e))?;
        tx.bind_device(Some(ifname.as_bytes()))
            .map_err(|e| ctx("bind to device", e))?;
        // RFC 5798 §5.1.1.3: TTL 255, so receivers can tell the advert was
        // not routed.
        tx.set_multicast_ttl_v4(255)
            .map_err(|e| ctx("multicast TTL", e))?;
        tx.set_ttl_v4(255).map_err(|e| ctx("TTL", e))?;
        tx.set_multicast_loop_v4(false)
            .map_err(|e| ctx("multicast loop", e))?;
        tx.set_multicast_if_v4(&src)
            .map_err(|e| ctx("multicast interface", e))?;
        tx.bind(&SockAddr::from(SocketAddrV4::new(src, 0)))
            .map_err(|e| ctx("bind", e))?;
        // The sending socket reads nothing: a one-instruction filter
        // ("return 0") keeps unicast adverts from queueing on it unread.
        tx.attach_filter(&[SockFilter::new(0x06, 0, 0, 0)])
            .map_err(|e| ctx("filter", e))?;
        Ok(VrrpSocket {
            rx: Arc::new(rx),
            tx: Arc::new(tx),
            scope: None,
        })
    }

    /// The IPv6 sockets: the same pair, with what RFC 5798 §5.1.2 and
    /// keepalived ask of IPv6 (hop limit 255 on both multicast and unicast,
    /// the source bound to `src`, usually the link-local address, scoped
    /// to the interface).
    fn open_v6(
        ifname: &str,
        idx: u32,
        src: Ipv6Addr,
        groups: &[Ipv6Addr],
    ) -> io::Result<VrrpSocket> {
        let ctx = |what: &str, e: io::Error| {
            io::Error::new(e.kind(), format!("VRRP socket on {ifname}: {what}: {e}"))
        };
        let nix_ctx = |what: &str, e: nix::Error| ctx(what, io::Error::from(e));
        let raw = || Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(IPPROTO_VRRP)));

        let rx = raw().map_err(|e| ctx("socket", e))?;
        rx.bind_device(Some(ifname.as_bytes()))
            .map_err(|e| ctx("bind to device", e))?;
        for g in groups {
            rx.join_multicast_v6(g, idx)
                .map_err(|e| ctx("join group", e))?;
        }
        // The header facts a raw IPv6 socket does not hand over.
        setsockopt(&rx, sockopt::Ipv6RecvHopLimit, &true)
            .map_err(|e| nix_ctx("IPV6_RECVHOPLIMIT", e))?;
        setsockopt(&rx, sockopt::Ipv6RecvPacketInfo, &true)
            .map_err(|e| nix_ctx("IPV6_RECVPKTINFO", e))?;
        rx.set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| ctx("read timeout", e))?;

        let tx = raw().map_err(|e| ctx("socket", e))?;
        tx.bind_device(Some(ifname.as_bytes()))
            .map_err(|e| ctx("bind to device", e))?;
        // RFC 5798 §5.1.2.3: hop limit 255, so receivers can tell the
        // advert was not routed.
        tx.set_multicast_hops_v6(255)
            .map_err(|e| ctx("multicast hops", e))?;
        tx.set_unicast_hops_v6(255)
            .map_err(|e| ctx("unicast hops", e))?;
        tx.set_multicast_loop_v6(false)
            .map_err(|e| ctx("multicast loop", e))?;
        tx.set_multicast_if_v6(idx)
            .map_err(|e| ctx("multicast interface", e))?;
        // The checksum is the codec's (RFC 5798 §5.2.8): no IPV6_CHECKSUM,
        // so the kernel sends the message as built. The bound source is
        // the one the pseudo-header covers.
        let scope = if super::packet::is_link_local(&src) {
            idx
        } else {
            0
        };
        tx.bind(&SockAddr::from(SocketAddrV6::new(src, 0, 0, scope)))
            .map_err(|e| ctx("bind", e))?;
        tx.attach_filter(&[SockFilter::new(0x06, 0, 0, 0)])
            .map_err(|e| ctx("filter", e))?;
        Ok(VrrpSocket {
            rx: Arc::new(rx),
            tx: Arc::new(tx),
            scope: Some(idx),
        })
    }

    /// Sends a VRRP message to `dst` (the group or a unicast peer). Raw
    /// sends do not wait on anything.
    pub fn send(&self, payload: &[u8], dst: IpAddr) -> io::Result<()> {
        let to = match dst {
            IpAddr::V4(d) => SockAddr::from(SocketAddrV4::new(d, 0)),
            IpAddr::V6(d) => {
                // ff02::12 and link-local peers need the interface as scope.
                let link_scope = d.is_multicast() || super::packet::is_link_local(&d);
                let scope = if link_scope {
                    self.scope.unwrap_or(0)
                } else {
                    0
                };
                SockAddr::from(SocketAddrV6::new(d, 0, 0, scope))
            }
        };
        self.tx.send_to(payload, &to).map(|_| ())
    }

    /// Starts the receiving thread: every VRRP packet goes to `tx` until
    /// `stop` is set or the receiver is gone.
    pub fn spawn_receiver(
        &self,
        tx: tokio::sync::mpsc::Sender<Received>,
        stop: Arc<AtomicBool>,
    ) -> io::Result<()> {
        let sock = self.rx.clone();
        let v6 = self.scope.is_some();
        std::thread::Builder::new()
            .name("ferrovs-vrrp-rx".into())
            .spawn(move || {
                // The longest advert: 255 IPv6 addresses, 4,088 bytes
                // (RFC 5798 §5.2.5); a jumbo frame's worth.
                let mut buf = [0u8; 9216];
                while !stop.load(Ordering::Relaxed) {
                    let got = if v6 {
                        recv_v6(&sock, &mut buf)
                    } else {
                        (&mut &*sock).read(&mut buf).map(|n| parse_ip(&buf[..n]))
                    };
                    match got {
                        Ok(r) => {
                            if let Some(r) = r {
                                if tx.blocking_send(r).is_err() {
                                    return;
                                }
                            }
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock
                                    | io::ErrorKind::TimedOut
                                    | io::ErrorKind::Interrupted
                            ) => {}
                        Err(e) => {
                            tracing::error!("VRRP receive: {e}");
                            std::thread::sleep(Duration::from_millis(200));
                        }
                    }
                }
            })?;
        Ok(())
    }
}

/// Receives one IPv6 VRRP message with its header facts; `None` for one
/// whose hop limit or destination the kernel did not report (then the
/// checks could not be made: it is dropped, and logged). A message longer
/// than the buffer comes cut, and the codec refuses it for its length.
fn recv_v6(sock: &Socket, buf: &mut [u8]) -> io::Result<Option<Received>> {
    let mut cmsg = nix::cmsg_space!(nix::libc::in6_pktinfo, nix::libc::c_int);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrIn6>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    let n = msg.bytes;
    let src = msg.address.map(|a| a.ip());
    let (mut ttl, mut dst) = (None, None);
    for c in msg.cmsgs().map_err(io::Error::from)? {
        match c {
            ControlMessageOwned::Ipv6HopLimit(h) => ttl = u8::try_from(h).ok(),
            ControlMessageOwned::Ipv6PacketInfo(p) => {
                dst = Some(Ipv6Addr::from(p.ipi6_addr.s6_addr))
            }
            _ => {}
        }
    }
    let (Some(src), Some(dst), Some(ttl)) = (src, dst, ttl) else {
        tracing::warn!(
            "VRRP: an IPv6 packet without its source, destination or hop limit: dropped"
        );
        return Ok(None);
    };
    Ok(Some(Received {
        src: src.into(),
        dst: dst.into(),
        ttl,
        payload: iov[0][..n].to_vec(),
    }))
}

/// Splits a received IPv4 datagram into header facts and payload.
pub fn parse_ip(b: &[u8]) -> Option<Received> {
    if b.len() < 20 || b[0] >> 4 != 4 {
        return None;
    }
    let hl = (b[0] & 0x0f) as usize * 4;
    let total = (u16::from_be_bytes([b[2], b[3]]) as usize).min(b.len());
    if hl < 20 || total < hl {
        return None;
    }
    Some(Received {
        src: Ipv4Addr::new(b[12], b[13], b[14], b[15]).into(),
        dst: Ipv4Addr::new(b[16], b[17], b[18], b[19]).into(),
        ttl: b[8],
        payload: b[hl..total].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_header_facts() {
        let mut b = vec![
            0x45, 0, 0, 28, 0, 0, 0, 0, 255, 112, 0, 0, 198, 18, 0, 2, 224, 0, 0, 18,
        ];
        b.extend_from_slice(&[0x21, 1, 100, 0, 0, 1, 0, 0]);
        let r = parse_ip(&b).unwrap();
        assert_eq!(
            (r.src, r.dst, r.ttl),
            (IpAddr::from([198, 18, 0, 2]), IpAddr::V4(VRRP_MCAST), 255)
        );
        assert_eq!(r.payload.len(), 8);
        assert!(parse_ip(&b[..10]).is_none());
    }
}
