//! The VRRP socket: a raw IPv4 socket for protocol 112 on one interface, as
//! keepalived opens it. The kernel keeps the director's own address, so
//! adverts go through it (with the AF_PACKET backend the kernel sees every
//! frame anyway; with DPDK they go through the exception path).

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, SockFilter, Socket, Type};
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const IPPROTO_VRRP: i32 = 112;
pub const VRRP_MCAST: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);

/// A received VRRP packet with what the IP header said about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
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
}

impl VrrpSocket {
    /// Opens the sockets on `ifname` (interface index `idx`), sending from
    /// `src`, member of the multicast `groups` (none for unicast-only
    /// instances).
    pub fn open(
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
        })
    }

    /// Sends a VRRP message to `dst` (the group or a unicast peer). Raw
    /// sends do not wait on anything.
    pub fn send(&self, payload: &[u8], dst: Ipv4Addr) -> io::Result<()> {
        self.tx
            .send_to(payload, &SockAddr::from(SocketAddrV4::new(dst, 0)))
            .map(|_| ())
    }

    /// Starts the receiving thread: every VRRP packet goes to `tx` until
    /// `stop` is set or the receiver is gone.
    pub fn spawn_receiver(
        &self,
        tx: tokio::sync::mpsc::Sender<Received>,
        stop: Arc<AtomicBool>,
    ) -> io::Result<()> {
        let sock = self.rx.clone();
        std::thread::Builder::new()
            .name("ferrovs-vrrp-rx".into())
            .spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    match (&mut &*sock).read(&mut buf) {
                        Ok(n) => {
                            if let Some(r) = parse_ip(&buf[..n]) {
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
        src: Ipv4Addr::new(b[12], b[13], b[14], b[15]),
        dst: Ipv4Addr::new(b[16], b[17], b[18], b[19]),
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
            (Ipv4Addr::new(198, 18, 0, 2), VRRP_MCAST, 255)
        );
        assert_eq!(r.payload.len(), 8);
        assert!(parse_ip(&b[..10]).is_none());
    }
}
