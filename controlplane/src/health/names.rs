//! How keepalived names virtual and real servers in its log lines, mails
//! and notify FIFOs, so that ferrovs's messages read (and grep) the same.

use ferrovs_config::ipvs::ntop6;
use ferrovs_config::model::{Config, Protocol, VirtualServer, VsAddress};
use std::net::IpAddr;

/// `[addr]:proto:port`, keepalived's `inet_sockaddrtotrio()`: IPv6 inside
/// the brackets as inet_ntop writes it, the protocol in lower case.
pub fn trio(addr: IpAddr, proto: Protocol, port: u16) -> String {
    let a = match addr {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => ntop6(&a),
    };
    let p = match proto {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    };
    format!("[{a}]:{p}:{port}")
}

/// keepalived's `FMT_VS()`: `[198.18.0.100]:tcp:80`, `FWM 7`, or for a
/// group `[NAME]:N` where N is the position of this virtual_server among
/// those naming the same group (keepalived stores that sequence number in
/// the port field of a group service).
pub fn fmt_vs(cfg: &Config, vs: &VirtualServer) -> String {
    match &vs.address {
        VsAddress::Addr { addr, port } => trio(*addr, vs.protocol, *port),
        VsAddress::Fwmark(m) => format!("FWM {m}"),
        VsAddress::Group(name) => {
            let n = cfg
                .virtual_servers
                .iter()
                .take_while(|v| !std::ptr::eq(*v, vs))
                .filter(|v| matches!(&v.address, VsAddress::Group(g) if g == name))
                .count();
            format!("[{name}]:{n}")
        }
    }
}

/// keepalived's `FMT_RS()`: the real server's address and port with the
/// virtual server's protocol.
pub fn fmt_rs(vs: &VirtualServer, addr: IpAddr, port: u16) -> String {
    trio(addr, vs.protocol, port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vs(address: VsAddress) -> VirtualServer {
        let cfg = ferrovs_config::load_str(
            "t.conf",
            "virtual_server 198.18.0.100 80 {\n protocol TCP\n real_server 198.18.1.12 80 {\n }\n}\n",
        )
        .config;
        let mut v = cfg.virtual_servers[0].clone();
        v.address = address;
        v
    }

    #[test]
    fn names_as_keepalived_prints_them() {
        let cfg = Config::default();
        let v = vs(VsAddress::Addr {
            addr: "198.18.0.100".parse().unwrap(),
            port: 80,
        });
        assert_eq!(fmt_vs(&cfg, &v), "[198.18.0.100]:tcp:80");
        assert_eq!(
            fmt_rs(&v, "198.18.1.12".parse().unwrap(), 80),
            "[198.18.1.12]:tcp:80"
        );
        assert_eq!(
            trio("2001:db8::1".parse().unwrap(), Protocol::Udp, 53),
            "[2001:db8::1]:udp:53"
        );
        assert_eq!(fmt_vs(&cfg, &vs(VsAddress::Fwmark(7))), "FWM 7");
    }

    #[test]
    fn group_names_carry_their_sequence_number() {
        let mut cfg = Config::default();
        let a = vs(VsAddress::Group("G".into()));
        let b = vs(VsAddress::Group("G".into()));
        cfg.virtual_servers = vec![a, b];
        assert_eq!(fmt_vs(&cfg, &cfg.virtual_servers[0]), "[G]:0");
        assert_eq!(fmt_vs(&cfg, &cfg.virtual_servers[1]), "[G]:1");
    }
}
