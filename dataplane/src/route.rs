//! Routing for the director's own transmissions, IPv4 and IPv6: connected
//! subnets per port, static routes and a default gateway, longest prefix
//! first.

use std::net::{Ipv4Addr, Ipv6Addr};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub prefix: Ipv4Addr,
    pub len: u8,
    pub port: u16,
    /// None: directly connected, the destination is the next hop.
    pub via: Option<Ipv4Addr>,
}

/// Where to send a packet for some destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHop {
    pub port: u16,
    pub ip: Ipv4Addr,
}

#[inline(always)]
fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len.min(32))
    }
}

/// Routes sorted by prefix length, longest first. Directors carry a handful
/// of routes, so a linear scan over a few cache lines beats a trie.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    pub fn new(mut routes: Vec<Route>) -> RouteTable {
        for r in &mut routes {
            r.prefix = Ipv4Addr::from(u32::from(r.prefix) & mask(r.len));
        }
        routes.sort_by_key(|r| std::cmp::Reverse(r.len));
        RouteTable { routes }
    }

    #[inline]
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<NextHop> {
        let d = u32::from(dst);
        self.routes
            .iter()
            .find(|r| d & mask(r.len) == u32::from(r.prefix))
            .map(|r| NextHop {
                port: r.port,
                ip: r.via.unwrap_or(dst),
            })
    }

    /// Whether `ip` sits on a subnet directly connected to `port`.
    pub fn is_connected(&self, port: u16, ip: Ipv4Addr) -> bool {
        let d = u32::from(ip);
        self.routes
            .iter()
            .any(|r| r.port == port && r.via.is_none() && d & mask(r.len) == u32::from(r.prefix))
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

/// An IPv6 route: connected prefixes of the ports' IPv6 addresses, static
/// routes and a default gateway (often a router's link-local address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route6 {
    pub prefix: Ipv6Addr,
    pub len: u8,
    pub port: u16,
    pub via: Option<Ipv6Addr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHop6 {
    pub port: u16,
    pub ip: Ipv6Addr,
}

#[inline(always)]
fn mask6(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len.min(128) as u32)
    }
}

/// IPv6 routes, longest prefix first, as [`RouteTable`].
#[derive(Clone, Debug, Default)]
pub struct RouteTable6 {
    routes: Vec<Route6>,
    /// Per route, in the same order: (prefix, mask) as integers, so that a
    /// lookup (one per IPv6 packet) neither converts nor shifts.
    keys: Vec<(u128, u128)>,
}

impl RouteTable6 {
    pub fn new(mut routes: Vec<Route6>) -> RouteTable6 {
        for r in &mut routes {
            r.prefix = Ipv6Addr::from(u128::from(r.prefix) & mask6(r.len));
        }
        routes.sort_by_key(|r| std::cmp::Reverse(r.len));
        let keys = routes
            .iter()
            .map(|r| (u128::from(r.prefix), mask6(r.len)))
            .collect();
        RouteTable6 { routes, keys }
    }

    #[inline]
    pub fn lookup(&self, dst: Ipv6Addr) -> Option<NextHop6> {
        let d = u128::from(dst);
        let i = self.keys.iter().position(|&(p, m)| d & m == p)?;
        let r = &self.routes[i];
        Some(NextHop6 {
            port: r.port,
            ip: r.via.unwrap_or(dst),
        })
    }

    /// Whether `ip` is on a prefix connected to `port`; link-local
    /// addresses (fe80::/10) are on every link (RFC 4291 §2.5.6).
    pub fn is_connected(&self, port: u16, ip: Ipv6Addr) -> bool {
        let d = u128::from(ip);
        crate::wire::ipv6::is_link_local(&ip.octets())
            || self.routes.iter().any(|r| {
                r.port == port && r.via.is_none() && d & mask6(r.len) == u128::from(r.prefix)
            })
    }

    pub fn routes(&self) -> &[Route6] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let t = RouteTable::new(vec![
            Route {
                prefix: ip("0.0.0.0"),
                len: 0,
                port: 0,
                via: Some(ip("198.18.0.1")),
            },
            Route {
                prefix: ip("198.18.0.0"),
                len: 24,
                port: 0,
                via: None,
            },
            Route {
                prefix: ip("198.18.1.7"),
                len: 24,
                port: 1,
                via: None,
            },
            Route {
                prefix: ip("198.19.0.0"),
                len: 16,
                port: 1,
                via: Some(ip("198.18.1.254")),
            },
        ]);
        assert_eq!(
            t.lookup(ip("198.18.0.9")),
            Some(NextHop {
                port: 0,
                ip: ip("198.18.0.9")
            })
        );
        assert_eq!(
            t.lookup(ip("198.18.1.11")),
            Some(NextHop {
                port: 1,
                ip: ip("198.18.1.11")
            })
        );
        assert_eq!(
            t.lookup(ip("198.19.4.4")),
            Some(NextHop {
                port: 1,
                ip: ip("198.18.1.254")
            })
        );
        assert_eq!(
            t.lookup(ip("198.20.0.1")),
            Some(NextHop {
                port: 0,
                ip: ip("198.18.0.1")
            })
        );
        assert!(t.is_connected(1, ip("198.18.1.200")));
        assert!(!t.is_connected(0, ip("198.18.1.200")));
        let t = RouteTable::new(vec![]);
        assert_eq!(t.lookup(ip("198.18.0.1")), None);
    }
}
