//! The service manager's readiness protocol (sd_notify(3)): one datagram
//! to the socket named in `NOTIFY_SOCKET`, when there is one. `READY=1`
//! once the workers forward (the unit is `Type=notify`), and `MAINPID=`
//! when `ferrovs upgrade` leaves the service to a new process, so that
//! systemd follows it instead of taking the old one's exit for the end of
//! the service.

use std::os::unix::net::UnixDatagram;

/// Sends `state` (`KEY=value` lines); does nothing outside a service.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        // An abstract socket: '@' stands for the leading NUL.
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    if let Err(e) = sent {
        tracing::debug!("sd_notify {state}: {e}");
    }
}
