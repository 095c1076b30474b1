//! The kernel's view of the director's network, as the control plane keeps
//! it: links, addresses and gateway routes of the main table. Sans-IO: it
//! changes only by [`NetEvent`]s (translated from rtnetlink messages by
//! `netlink.rs`), so it is tested without a kernel.

use ferrovs_dataplane::port::Iface;
use ferrovs_dataplane::route::{Route, Route6};
use ferrovs_dataplane::snapshot::PortConf;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// None for links without an Ethernet address (lo has all zeroes, a
    /// tunnel none).
    pub mac: Option<[u8; 6]>,
    pub mtu: u32,
    /// IFF_UP: the administrator brought it up.
    pub admin_up: bool,
    /// RFC 2863 operational state up, or unknown (a driver that does not
    /// report one, like lo or a TAP): what keepalived treats as running.
    pub oper_up: bool,
    /// An Ethernet link (ARPHRD_ETHER): what the ports can run on.
    pub ether: bool,
    /// IFLA_LINK when it names another interface: a veth's peer (maybe
    /// in another namespace), a VLAN's parent.
    pub iflink: Option<u32>,
}

/// A link's counters (IFLA_STATS64), named as Linux names them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    pub rx_errors: u64,
}

impl LinkStats {
    /// One counter by its Linux name (see `port_device::STATS`).
    pub fn get(&self, name: &str) -> Option<u64> {
        Some(match name {
            "rx_packets" => self.rx_packets,
            "tx_packets" => self.tx_packets,
            "rx_dropped" => self.rx_dropped,
            "tx_dropped" => self.tx_dropped,
            "rx_errors" => self.rx_errors,
            _ => return None,
        })
    }
}

/// Every link's counters by name, as the last link dump read them (the
/// kernel announces no counter change: they are read, not followed).
pub type LinkStatsMap = BTreeMap<String, LinkStats>;

/// One address of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Addr {
    pub index: u32,
    pub ip: IpAddr,
    pub prefix: u8,
}

/// A unicast route of the main table. The kernel's key of an IPv4 route is
/// (destination, length, TOS, priority); several next hops may share it
/// (`ip route append`), so the gateway and device are part of ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KernelRoute {
    pub dst: IpAddr,
    pub len: u8,
    pub tos: u8,
    pub priority: u32,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
}

impl KernelRoute {
    fn same_key(&self, o: &KernelRoute) -> bool {
        (self.dst, self.len, self.tos, self.priority) == (o.dst, o.len, o.tos, o.priority)
    }
}

/// A change the kernel announced (or a dump reported).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetEvent {
    /// A link appeared or changed.
    Link(Link),
    /// A link went away, and with it its addresses and routes.
    LinkGone(u32),
    AddrAdded(Addr),
    AddrRemoved(Addr),
    /// A route appeared; `replace` (NLM_F_REPLACE) drops the routes of the
    /// same key first.
    Route {
        route: KernelRoute,
        replace: bool,
    },
    /// A route went away. Without a gateway or device in the message, every
    /// route of the key goes.
    RouteGone(KernelRoute),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NetError {
    #[error("no interface {0}")]
    NoSuchLink(String),
    #[error("{0} has no MAC address")]
    NoMac(String),
    #[error("{0} is not an Ethernet interface; the dataplane's ports need Ethernet")]
    NotEthernet(String),
    #[error("netlink: {0}")]
    Netlink(String),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetState {
    links: BTreeMap<u32, Link>,
    addrs: BTreeSet<Addr>,
    routes: BTreeSet<KernelRoute>,
}

impl NetState {
    pub fn new() -> NetState {
        NetState::default()
    }

    /// Applies one change; true when the state changed.
    pub fn apply(&mut self, ev: NetEvent) -> bool {
        match ev {
            NetEvent::Link(l) => {
                if self.links.get(&l.index) == Some(&l) {
                    return false;
                }
                self.links.insert(l.index, l);
                true
            }
            NetEvent::LinkGone(index) => {
                let had = self.links.remove(&index).is_some();
                let (na, nr) = (self.addrs.len(), self.routes.len());
                self.addrs.retain(|a| a.index != index);
                self.routes.retain(|r| r.oif != Some(index));
                had || na != self.addrs.len() || nr != self.routes.len()
            }
            NetEvent::AddrAdded(a) => self.addrs.insert(a),
            NetEvent::AddrRemoved(a) => self.addrs.remove(&a),
            NetEvent::Route { route, replace } => {
                let mut changed = false;
                if replace {
                    let n = self.routes.len();
                    self.routes.retain(|r| !r.same_key(&route) || *r == route);
                    changed = n != self.routes.len();
                }
                self.routes.insert(route) || changed
            }
            NetEvent::RouteGone(route) => {
                let n = self.routes.len();
                self.routes.retain(|r| {
                    !(r.same_key(&route)
                        && (route.gateway.is_none() || r.gateway == route.gateway)
                        && (route.oif.is_none() || r.oif == route.oif))
                });
                n != self.routes.len()
            }
        }
    }

    pub fn link(&self, index: u32) -> Option<&Link> {
        self.links.get(&index)
    }

    pub fn link_by_name(&self, name: &str) -> Option<&Link> {
        self.links.values().find(|l| l.name == name)
    }

    pub fn links(&self) -> impl Iterator<Item = &Link> {
        self.links.values()
    }

    /// The IPv4 addresses of a link, in address order.
    pub fn ipv4_addrs(&self, index: u32) -> Vec<(Ipv4Addr, u8)> {
        self.addrs
            .iter()
            .filter(|a| a.index == index)
            .filter_map(|a| match a.ip {
                IpAddr::V4(ip) => Some((ip, a.prefix)),
                IpAddr::V6(_) => None,
            })
            .collect()
    }

    /// The IPv6 addresses of a link, in address order: global ones and its
    /// link-local one (the source of its neighbour discovery, RFC 4861
    /// §4.3, and the next hop routers advertise).
    pub fn ipv6_addrs(&self, index: u32) -> Vec<(Ipv6Addr, u8)> {
        self.addrs
            .iter()
            .filter(|a| a.index == index)
            .filter_map(|a| match a.ip {
                IpAddr::V6(ip) => Some((ip, a.prefix)),
                IpAddr::V4(_) => None,
            })
            .collect()
    }

    /// The IPv6 addresses of the interface a port is named after; none when
    /// it is gone.
    pub fn port_addrs6(&self, name: &str) -> Vec<(Ipv6Addr, u8)> {
        self.link_by_name(name)
            .map(|l| self.ipv6_addrs(l.index))
            .unwrap_or_default()
    }

    /// The dataplane's description of one interface.
    pub fn port(&self, name: &str) -> Result<PortConf, NetError> {
        let l = self
            .link_by_name(name)
            .ok_or_else(|| NetError::NoSuchLink(name.to_string()))?;
        let mac = l.mac.ok_or_else(|| NetError::NoMac(name.to_string()))?;
        Ok(PortConf {
            name: name.to_string(),
            mac,
            addrs: self.ipv4_addrs(l.index),
            mtu: l.mtu.min(65535) as u16,
        })
    }

    /// What a kernel-backed port (AF_PACKET, AF_XDP) is opened with:
    /// refused for a missing or non-Ethernet interface, with its name.
    pub fn iface(&self, name: &str) -> Result<Iface, NetError> {
        let l = self
            .link_by_name(name)
            .ok_or_else(|| NetError::NoSuchLink(name.to_string()))?;
        if !l.ether {
            return Err(NetError::NotEthernet(name.to_string()));
        }
        let mac = l.mac.ok_or_else(|| NetError::NoMac(name.to_string()))?;
        Ok(Iface {
            name: name.to_string(),
            index: l.index,
            mac,
            mtu: l.mtu,
        })
    }

    /// IPv4 gateway routes through the given ports, most specific first and,
    /// for one prefix, lowest metric first (the kernel's choice). Connected
    /// routes come from the ports' own addresses.
    pub fn routes(&self, ports: &[PortConf]) -> Vec<Route> {
        self.gateway_routes(ports, |r, port| match (r.dst, r.gateway) {
            (IpAddr::V4(prefix), Some(IpAddr::V4(via))) => Some(Route {
                prefix,
                len: r.len,
                port,
                via: Some(via),
            }),
            _ => None,
        })
    }

    /// IPv6 gateway routes through the given ports, in the order of
    /// [`NetState::routes`]. The gateway is often a router's link-local
    /// address (what router advertisements give); connected prefixes come
    /// from the ports' own addresses, as for IPv4.
    pub fn routes6(&self, ports: &[PortConf]) -> Vec<Route6> {
        self.gateway_routes(ports, |r, port| match (r.dst, r.gateway) {
            (IpAddr::V6(prefix), Some(IpAddr::V6(via))) => Some(Route6 {
                prefix,
                len: r.len,
                port,
                via: Some(via),
            }),
            _ => None,
        })
    }

    /// The routes through one of `ports` that `make` takes (given the
    /// route and the port's index), most specific first and, for one
    /// prefix, lowest metric first.
    fn gateway_routes<R>(
        &self,
        ports: &[PortConf],
        make: impl Fn(&KernelRoute, u16) -> Option<R>,
    ) -> Vec<R> {
        let mut v: Vec<(&KernelRoute, R)> = Vec::new();
        for r in &self.routes {
            let Some(link) = r.oif.and_then(|oif| self.links.get(&oif)) else {
                continue;
            };
            let Some(port) = ports.iter().position(|p| p.name == link.name) else {
                continue;
            };
            if let Some(route) = make(r, port as u16) {
                v.push((r, route));
            }
        }
        v.sort_by(|(a, _), (b, _)| b.len.cmp(&a.len).then(a.priority.cmp(&b.priority)));
        v.into_iter().map(|(_, r)| r).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, name: &str, up: bool) -> Link {
        Link {
            index,
            name: name.into(),
            mac: Some([2, 0, 0, 0, 0, index as u8]),
            mtu: 1500,
            admin_up: up,
            oper_up: up,
            ether: true,
            iflink: None,
        }
    }

    fn v4(a: [u8; 4]) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(a))
    }

    fn route(dst: [u8; 4], len: u8, gw: [u8; 4], oif: u32, priority: u32) -> KernelRoute {
        KernelRoute {
            dst: v4(dst),
            len,
            tos: 0,
            priority,
            gateway: Some(v4(gw)),
            oif: Some(oif),
        }
    }

    #[test]
    fn builds_ports_and_routes_from_events() {
        let mut s = NetState::new();
        assert!(s.apply(NetEvent::Link(link(5, "veth0", true))));
        assert!(
            !s.apply(NetEvent::Link(link(5, "veth0", true))),
            "unchanged"
        );
        assert!(s.apply(NetEvent::AddrAdded(Addr {
            index: 5,
            ip: v4([198, 18, 0, 1]),
            prefix: 24
        })));
        assert!(s.apply(NetEvent::AddrAdded(Addr {
            index: 5,
            ip: "2001:db8::1".parse().unwrap(),
            prefix: 64
        })));
        let p = s.port("veth0").unwrap();
        assert_eq!(p.mac, [2, 0, 0, 0, 0, 5]);
        assert_eq!(p.addrs, vec![(Ipv4Addr::new(198, 18, 0, 1), 24)]);
        assert_eq!(p.mtu, 1500);
        assert_eq!(
            s.port("nope").err(),
            Some(NetError::NoSuchLink("nope".into()))
        );

        s.apply(NetEvent::Link(link(9, "other", true)));
        for r in [
            route([0, 0, 0, 0], 0, [198, 18, 0, 254], 5, 100),
            route([0, 0, 0, 0], 0, [198, 18, 0, 250], 5, 50),
            route([198, 19, 0, 0], 16, [198, 18, 0, 253], 5, 0),
            route([0, 0, 0, 0], 0, [198, 18, 9, 1], 9, 0),
        ] {
            s.apply(NetEvent::Route {
                route: r,
                replace: false,
            });
        }
        let rs = s.routes(std::slice::from_ref(&p));
        assert_eq!(rs.len(), 3, "the route through another link is not ours");
        assert_eq!(
            (rs[0].prefix, rs[0].len),
            (Ipv4Addr::new(198, 19, 0, 0), 16)
        );
        assert_eq!(
            rs[1].via,
            Some(Ipv4Addr::new(198, 18, 0, 250)),
            "lower metric first"
        );
        assert_eq!(rs[2].via, Some(Ipv4Addr::new(198, 18, 0, 254)));
        assert!(s.routes6(std::slice::from_ref(&p)).is_empty());
    }

    #[test]
    fn ipv6_addresses_and_gateway_routes() {
        let mut s = NetState::new();
        s.apply(NetEvent::Link(link(5, "veth0", true)));
        for (ip, prefix) in [("2001:2::1", 64), ("fe80::1", 64)] {
            s.apply(NetEvent::AddrAdded(Addr {
                index: 5,
                ip: ip.parse().unwrap(),
                prefix,
            }));
        }
        s.apply(NetEvent::AddrAdded(Addr {
            index: 5,
            ip: v4([198, 18, 0, 1]),
            prefix: 24,
        }));
        assert_eq!(
            s.port_addrs6("veth0"),
            vec![
                ("2001:2::1".parse().unwrap(), 64),
                ("fe80::1".parse().unwrap(), 64)
            ]
        );
        assert!(s.port_addrs6("gone").is_empty());
        let gw6 = |dst: &str, len, gw: &str, priority| KernelRoute {
            dst: dst.parse().unwrap(),
            len,
            tos: 0,
            priority,
            gateway: Some(gw.parse().unwrap()),
            oif: Some(5),
        };
        for r in [
            gw6("::", 0, "fe80::fe", 1024),
            gw6("2001:2:0:9::", 64, "2001:2::fd", 1024),
            route([0, 0, 0, 0], 0, [198, 18, 0, 254], 5, 100),
        ] {
            s.apply(NetEvent::Route {
                route: r,
                replace: false,
            });
        }
        let p = s.port("veth0").unwrap();
        let rs = s.routes6(std::slice::from_ref(&p));
        assert_eq!(rs.len(), 2, "IPv4 routes are not IPv6 ones");
        assert_eq!(rs[0].len, 64, "most specific first");
        assert_eq!(rs[1].via, Some("fe80::fe".parse().unwrap()));
        assert_eq!(s.routes(std::slice::from_ref(&p)).len(), 1);
    }

    #[test]
    fn removals_and_replacement() {
        let mut s = NetState::new();
        s.apply(NetEvent::Link(link(5, "veth0", true)));
        let a = Addr {
            index: 5,
            ip: v4([198, 18, 0, 1]),
            prefix: 24,
        };
        s.apply(NetEvent::AddrAdded(a));
        let r1 = route([0, 0, 0, 0], 0, [198, 18, 0, 254], 5, 0);
        let r2 = route([0, 0, 0, 0], 0, [198, 18, 0, 253], 5, 0);
        s.apply(NetEvent::Route {
            route: r1,
            replace: false,
        });
        // `ip route replace`: the new next hop takes the key's place.
        assert!(s.apply(NetEvent::Route {
            route: r2,
            replace: true
        }));
        let p = s.port("veth0").unwrap();
        assert_eq!(
            s.routes(std::slice::from_ref(&p))[0].via,
            Some(Ipv4Addr::new(198, 18, 0, 253))
        );
        assert!(s.apply(NetEvent::RouteGone(r2)));
        assert!(!s.apply(NetEvent::RouteGone(r2)));
        assert!(s.routes(std::slice::from_ref(&p)).is_empty());

        assert!(s.apply(NetEvent::AddrRemoved(a)));
        assert!(s.port("veth0").unwrap().addrs.is_empty());

        // A link that goes takes its addresses and routes with it.
        s.apply(NetEvent::AddrAdded(a));
        s.apply(NetEvent::Route {
            route: r1,
            replace: false,
        });
        assert!(s.apply(NetEvent::LinkGone(5)));
        assert_eq!(s, NetState::new());
        assert!(!s.apply(NetEvent::LinkGone(5)));
    }

    #[test]
    fn a_route_gone_without_next_hop_takes_the_whole_key() {
        let mut s = NetState::new();
        s.apply(NetEvent::Link(link(5, "veth0", true)));
        for gw in [[198, 18, 0, 254], [198, 18, 0, 253]] {
            s.apply(NetEvent::Route {
                route: route([0, 0, 0, 0], 0, gw, 5, 0),
                replace: false,
            });
        }
        let mut key = route([0, 0, 0, 0], 0, [0; 4], 5, 0);
        key.gateway = None;
        key.oif = None;
        assert!(s.apply(NetEvent::RouteGone(key)));
        let p = s.port("veth0").unwrap();
        assert!(s.routes(&[p]).is_empty());
    }

    #[test]
    fn a_link_without_mac_is_refused_as_a_port() {
        let mut s = NetState::new();
        let mut l = link(3, "tun0", true);
        l.mac = None;
        s.apply(NetEvent::Link(l));
        assert_eq!(s.port("tun0").err(), Some(NetError::NoMac("tun0".into())));
    }

    #[test]
    fn a_port_opens_with_the_facts_netlink_gave_and_only_on_ethernet() {
        let mut s = NetState::new();
        let mut l = link(5, "veth0", true);
        l.mtu = 9000;
        s.apply(NetEvent::Link(l));
        assert_eq!(
            s.iface("veth0"),
            Ok(Iface {
                name: "veth0".into(),
                index: 5,
                mac: [2, 0, 0, 0, 0, 5],
                mtu: 9000
            })
        );
        let e = s.iface("fvnone0").unwrap_err();
        assert_eq!(e.to_string(), "no interface fvnone0");
        // lo has an all-zero address, but it is not Ethernet.
        let mut lo = link(1, "lo", true);
        lo.ether = false;
        lo.mac = Some([0; 6]);
        s.apply(NetEvent::Link(lo));
        assert_eq!(
            s.iface("lo").unwrap_err().to_string(),
            "lo is not an Ethernet interface; the dataplane's ports need Ethernet"
        );
    }
}
