//! Sockets for checkers, with keepalived's connection options
//! (`conn_opts_t`): the address to check, the source address and port
//! (`bindto`, `bind_port`), the interface (`bind_if`), the firewall mark
//! (`fwmark`) and `connect_timeout`.

use ferrovs_config::ipvs::ntop6;
use ferrovs_config::model::Checker;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

/// Where and how a checker connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnOpts {
    pub dst: SocketAddr,
    pub bindto: Option<IpAddr>,
    pub bind_port: Option<u16>,
    pub bind_if: Option<String>,
    pub fwmark: Option<u32>,
    pub timeout: Duration,
}

impl ConnOpts {
    /// The checker's target: `connect_ip` / `connect_port`, else the real
    /// server's address and port.
    pub fn for_checker(c: &Checker, rs_addr: IpAddr, rs_port: u16) -> ConnOpts {
        ConnOpts {
            dst: SocketAddr::new(
                c.common.connect_ip.unwrap_or(rs_addr),
                c.common.connect_port.unwrap_or(rs_port),
            ),
            bindto: c.common.bindto,
            bind_port: c.common.bind_port,
            bind_if: c.common.bind_if.clone(),
            fwmark: c.common.fwmark,
            timeout: c.common.connect_timeout,
        }
    }
}

#[cfg(test)]
impl ConnOpts {
    /// Straight to `dst`: no source address, interface or mark.
    pub fn to(dst: SocketAddr, timeout: Duration) -> ConnOpts {
        ConnOpts {
            dst,
            bindto: None,
            bind_port: None,
            bind_if: None,
            fwmark: None,
            timeout,
        }
    }
}

/// `[addr]:port` (keepalived's inet_sockaddrtopair).
pub fn pair(a: SocketAddr) -> String {
    match a.ip() {
        IpAddr::V4(v) => format!("[{v}]:{}", a.port()),
        IpAddr::V6(v) => format!("[{}]:{}", ntop6(&v), a.port()),
    }
}

/// Why a connection was not made.
#[derive(Debug)]
pub enum ConnectError {
    /// The socket could not be set up (bind, interface, mark).
    Setup(io::Error),
    Timeout,
    Failed(io::Error),
}

fn socket(o: &ConnOpts, ty: Type, proto: Protocol) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(o.dst), ty, Some(proto))?;
    s.set_nonblocking(true)?;
    if let Some(m) = o.fwmark {
        s.set_mark(m)?;
    }
    if let Some(i) = &o.bind_if {
        s.bind_device(Some(i.as_bytes()))?;
    }
    if o.bindto.is_some() || o.bind_port.is_some() {
        let unspec = if o.dst.is_ipv4() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        };
        let src = SocketAddr::new(o.bindto.unwrap_or(unspec), o.bind_port.unwrap_or(0));
        s.bind(&SockAddr::from(src))?;
    }
    Ok(s)
}

/// A TCP connection to `o.dst` within `o.timeout`.
pub async fn tcp_connect(o: &ConnOpts) -> Result<TcpStream, ConnectError> {
    let s = socket(o, Type::STREAM, Protocol::TCP).map_err(ConnectError::Setup)?;
    let std: std::net::TcpStream = s.into();
    let ts = TcpSocket::from_std_stream(std);
    match tokio::time::timeout(o.timeout, ts.connect(o.dst)).await {
        Ok(Ok(st)) => Ok(st),
        Ok(Err(e)) => Err(ConnectError::Failed(e)),
        Err(_) => Err(ConnectError::Timeout),
    }
}

/// A UDP socket connected to `o.dst`.
pub async fn udp_connect(o: &ConnOpts) -> io::Result<UdpSocket> {
    let s = socket(o, Type::DGRAM, Protocol::UDP)?;
    let std: std::net::UdpSocket = s.into();
    let u = UdpSocket::from_std(std)?;
    u.connect(o.dst).await?;
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(dst: SocketAddr) -> ConnOpts {
        ConnOpts::to(dst, Duration::from_secs(2))
    }

    #[tokio::test]
    async fn binds_the_source_address_and_port() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut o = opts(l.local_addr().unwrap());
        o.bindto = Some("127.0.0.2".parse().unwrap());
        let c = tokio::spawn(async move { tcp_connect(&o).await.map(|s| s.local_addr().unwrap()) });
        let (_s, peer) = tokio::time::timeout(Duration::from_secs(5), l.accept())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(peer.ip(), "127.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(c.await.unwrap().unwrap().ip(), peer.ip());
    }

    #[test]
    fn pair_format() {
        assert_eq!(pair("127.0.0.1:53".parse().unwrap()), "[127.0.0.1]:53");
        assert_eq!(pair("[::1]:53".parse().unwrap()), "[::1]:53");
    }
}
