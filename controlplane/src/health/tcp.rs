//! TCP_CHECK: the server is up when a TCP connection to it completes
//! within connect_timeout (check_tcp.c). The connection is closed at once.

use super::checker::Probe;
use super::net::{tcp_connect, ConnOpts, ConnectError};
use tracing::warn;

pub async fn probe(o: &ConnOpts) -> Probe {
    match tcp_connect(o).await {
        Ok(_stream) => Probe::up(),
        Err(ConnectError::Timeout) => Probe::down("timeout"),
        Err(ConnectError::Setup(e)) => {
            // keepalived reschedules without a verdict here; a checker that
            // cannot bind can verify nothing, so it counts as a failure.
            warn!("TCP socket bind failed ({e}).");
            Probe::down("failed")
        }
        Err(ConnectError::Failed(_)) => Probe::down("failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn opts(dst: std::net::SocketAddr) -> ConnOpts {
        ConnOpts::to(dst, Duration::from_secs(2))
    }

    #[tokio::test]
    async fn open_port_is_up_closed_port_is_down() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = l.local_addr().unwrap();
        assert_eq!(probe(&opts(open)).await, Probe::up());
        // A port nobody listens on: take one and close it again.
        let closed = {
            let l2 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l2.local_addr().unwrap()
        };
        assert_eq!(probe(&opts(closed)).await, Probe::down("failed"));
    }

    #[tokio::test]
    async fn a_bind_to_a_foreign_address_fails() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut o = opts(l.local_addr().unwrap());
        // An IPv6 source for an IPv4 destination: the bind itself fails,
        // nothing is sent.
        o.bindto = Some("::1".parse().unwrap());
        assert_eq!(probe(&o).await, Probe::down("failed"));
    }
}
