//! rtnetlink I/O for [`NetState`]: one dump at start, then the kernel's
//! multicast notifications (links, IPv4 and IPv6 addresses and routes) as
//! they happen, published to the rest of the control plane through a
//! `watch` channel. A full dump every [`RESYNC`] catches what a receive
//! buffer overrun may have lost. The links' counters (IFLA_STATS64), which
//! the kernel does not announce, are read by a link dump every
//! [`STATS_REFRESH`] into a second channel, for `/metrics`: nobody waits
//! for it.

use super::net_state::{
    Addr, KernelRoute, Link, LinkStats, LinkStatsMap, NetError, NetEvent, NetState,
};
use futures_util::stream::{StreamExt, TryStreamExt};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkLayerType, LinkMessage, State};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType,
};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_REPLACE};
use rtnetlink::sys::AsyncSocket;
use rtnetlink::{Handle, LinkUnspec, MulticastGroup, RouteMessageBuilder};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// How often the whole state is read again.
pub const RESYNC: Duration = Duration::from_secs(30);

/// How often the links' counters are read (the daemon's tick, and IPVS's
/// rate estimator's period).
pub const STATS_REFRESH: Duration = Duration::from_secs(2);

const GROUPS: [MulticastGroup; 5] = [
    MulticastGroup::Link,
    MulticastGroup::Ipv4Ifaddr,
    MulticastGroup::Ipv6Ifaddr,
    MulticastGroup::Ipv4Route,
    MulticastGroup::Ipv6Route,
];

/// Room for bursts of notifications (a link with many addresses going
/// away) before the kernel drops them (ENOBUFS).
const RCVBUF: usize = 4 << 20;

fn nl_err(e: impl std::fmt::Display) -> NetError {
    NetError::Netlink(e.to_string())
}

// ------------------------------------------------------------ translation

/// The link a message describes.
pub fn link_of(m: &LinkMessage) -> Option<Link> {
    let mut name = None;
    let mut mac = None;
    // A link message without IFLA_MTU (none the kernel sends for an
    // Ethernet link): Ethernet's.
    let mut mtu = 1500;
    let mut oper = State::Unknown;
    let mut iflink = None;
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::Address(b) => mac = <[u8; 6]>::try_from(b.as_slice()).ok(),
            LinkAttribute::Mtu(v) => mtu = *v,
            LinkAttribute::OperState(s) => oper = *s,
            LinkAttribute::Link(i) if *i != m.header.index && *i != 0 => iflink = Some(*i),
            _ => {}
        }
    }
    Some(Link {
        index: m.header.index,
        name: name?,
        mac,
        mtu,
        admin_up: m.header.flags.contains(LinkFlags::Up),
        oper_up: matches!(oper, State::Up | State::Unknown)
            && m.header.flags.contains(LinkFlags::Up),
        ether: m.header.link_layer_type == LinkLayerType::Ether,
        iflink,
    })
}

/// The counters a link message carries (IFLA_STATS64), by the link's name.
pub fn stats_of(m: &LinkMessage) -> Option<(String, LinkStats)> {
    let mut name = None;
    let mut stats = None;
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::Stats64(s) => {
                stats = Some(LinkStats {
                    rx_packets: s.rx_packets,
                    tx_packets: s.tx_packets,
                    rx_dropped: s.rx_dropped,
                    tx_dropped: s.tx_dropped,
                    rx_errors: s.rx_errors,
                })
            }
            _ => {}
        }
    }
    Some((name?, stats?))
}

/// The address a message describes: IFA_LOCAL when present (on a
/// point-to-point link IFA_ADDRESS is the peer's), else IFA_ADDRESS.
pub fn addr_of(m: &AddressMessage) -> Option<Addr> {
    let mut local = None;
    let mut address = None;
    for a in &m.attributes {
        match a {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            _ => {}
        }
    }
    Some(Addr {
        index: m.header.index,
        ip: local.or(address)?,
        prefix: m.header.prefix_len,
    })
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

/// A unicast route of the main table, or None for anything else (local,
/// broadcast, other tables, cached clones).
pub fn route_of(m: &RouteMessage) -> Option<KernelRoute> {
    let mut table = m.header.table as u32;
    let mut dst = None;
    let mut gateway = None;
    let mut oif = None;
    let mut priority = 0;
    for a in &m.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(d) => dst = ip_of(d),
            RouteAttribute::Gateway(g) => gateway = ip_of(g),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Priority(p) => priority = *p,
            _ => {}
        }
    }
    if table != RouteHeader::RT_TABLE_MAIN as u32 || m.header.kind != RouteType::Unicast {
        return None;
    }
    let unspecified = match m.header.address_family {
        netlink_packet_route::AddressFamily::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        netlink_packet_route::AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    Some(KernelRoute {
        dst: dst.unwrap_or(unspecified),
        len: m.header.destination_prefix_length,
        tos: m.header.tos,
        priority,
        gateway,
        oif,
    })
}

/// The change one notification announces, if it is one we follow.
pub fn event_of(msg: &NetlinkMessage<RouteNetlinkMessage>) -> Option<NetEvent> {
    let NetlinkPayload::InnerMessage(m) = &msg.payload else {
        return None;
    };
    Some(match m {
        RouteNetlinkMessage::NewLink(l) => NetEvent::Link(link_of(l)?),
        RouteNetlinkMessage::DelLink(l) => NetEvent::LinkGone(l.header.index),
        RouteNetlinkMessage::NewAddress(a) => NetEvent::AddrAdded(addr_of(a)?),
        RouteNetlinkMessage::DelAddress(a) => NetEvent::AddrRemoved(addr_of(a)?),
        RouteNetlinkMessage::NewRoute(r) => NetEvent::Route {
            route: route_of(r)?,
            replace: msg.header.flags & NLM_F_REPLACE != 0,
        },
        RouteNetlinkMessage::DelRoute(r) => NetEvent::RouteGone(route_of(r)?),
        _ => return None,
    })
}

// ------------------------------------------------------------ I/O

/// Reads the whole state: links, addresses, IPv4 and IPv6 routes.
pub async fn dump(handle: &Handle) -> Result<NetState, NetError> {
    let mut s = NetState::new();
    let mut links = handle.link().get().execute();
    while let Some(m) = links.try_next().await.map_err(nl_err)? {
        if let Some(l) = link_of(&m) {
            s.apply(NetEvent::Link(l));
        }
    }
    let mut addrs = handle.address().get().execute();
    while let Some(m) = addrs.try_next().await.map_err(nl_err)? {
        if let Some(a) = addr_of(&m) {
            s.apply(NetEvent::AddrAdded(a));
        }
    }
    for req in [
        RouteMessageBuilder::<Ipv4Addr>::new().build(),
        RouteMessageBuilder::<Ipv6Addr>::new().build(),
    ] {
        let mut routes = handle.route().get(req).execute();
        while let Some(m) = routes.try_next().await.map_err(nl_err)? {
            if let Some(r) = route_of(&m) {
                s.apply(NetEvent::Route {
                    route: r,
                    replace: false,
                });
            }
        }
    }
    Ok(s)
}

/// Every link's counters, by one link dump.
pub async fn dump_stats(handle: &Handle) -> Result<LinkStatsMap, NetError> {
    let mut out = LinkStatsMap::new();
    let mut links = handle.link().get().execute();
    while let Some(m) = links.try_next().await.map_err(nl_err)? {
        if let Some((name, st)) = stats_of(&m) {
            out.insert(name, st);
        }
    }
    Ok(out)
}

/// What an operator wants to read in the log of a change: links that
/// appear and go (a port's addresses are the core's to report).
fn describe(before: &NetState, ev: &NetEvent) -> Option<String> {
    match ev {
        NetEvent::Link(l) if before.link(l.index).is_none() => Some(format!(
            "netlink: link {} (index {}) added",
            l.name, l.index
        )),
        NetEvent::LinkGone(i) => before
            .link(*i)
            .map(|l| format!("netlink: link {} (index {i}) removed", l.name)),
        _ => None,
    }
}

/// Applies one notification, logging what [`describe`] says of it; true
/// when the state changed.
fn apply_logged(state: &mut NetState, ev: NetEvent) -> bool {
    if let Some(m) = describe(state, &ev) {
        info!("{m}");
    }
    state.apply(ev)
}

/// The running southbound: the current state, the links' counters, and a
/// handle for requests.
#[derive(Clone)]
pub struct Southbound {
    state: watch::Receiver<Arc<NetState>>,
    stats: watch::Receiver<Arc<LinkStatsMap>>,
    handle: Handle,
}

impl Southbound {
    /// Subscribes, reads the state, and follows it on the current tokio
    /// runtime until every receiver is gone.
    pub async fn start() -> Result<Southbound, NetError> {
        // Subscribe before the dump, so no change falls between them: the
        // notifications queued meanwhile are applied after it (a replay of
        // a change the dump already shows is a no-op).
        let (mut mconn, _mhandle, mut events) =
            rtnetlink::new_multicast_connection(&GROUPS).map_err(nl_err)?;
        if let Err(e) = mconn.socket_mut().socket_ref().set_rx_buf_sz(RCVBUF) {
            debug!("netlink receive buffer: {e}");
        }
        tokio::spawn(mconn);
        let (conn, handle, _) = rtnetlink::new_connection().map_err(nl_err)?;
        tokio::spawn(conn);
        let mut state = dump(&handle).await?;
        let (tx, rx) = watch::channel(Arc::new(state.clone()));
        let dumper = handle.clone();
        tokio::spawn(async move {
            let mut resync = tokio::time::interval(RESYNC);
            resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            resync.tick().await;
            loop {
                tokio::select! {
                    m = events.next() => {
                        let Some((m, _)) = m else {
                            warn!("netlink: the notification socket closed; following by dumps every {}s", RESYNC.as_secs());
                            break;
                        };
                        let mut changed = event_of(&m).is_some_and(|e| apply_logged(&mut state, e));
                        // A burst (a link going away with its addresses and
                        // routes) is published once.
                        while let Ok((m, _)) = events.try_recv() {
                            changed |= event_of(&m).is_some_and(|e| apply_logged(&mut state, e));
                        }
                        if changed {
                            tx.send_replace(Arc::new(state.clone()));
                        }
                    }
                    _ = resync.tick() => {
                        resync_once(&dumper, &mut state, &tx).await;
                    }
                    _ = tx.closed() => return,
                }
            }
            loop {
                tokio::select! {
                    _ = resync.tick() => resync_once(&dumper, &mut state, &tx).await,
                    _ = tx.closed() => return,
                }
            }
        });
        let first = dump_stats(&handle).await.unwrap_or_else(|e| {
            warn!("netlink: link counters: {e}");
            LinkStatsMap::new()
        });
        let (stats_tx, stats_rx) = watch::channel(Arc::new(first));
        let reader = handle.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(STATS_REFRESH);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                tokio::select! {
                    _ = every.tick() => match dump_stats(&reader).await {
                        Ok(m) => { stats_tx.send_replace(Arc::new(m)); }
                        Err(e) => debug!("netlink: link counters: {e}"),
                    },
                    _ = stats_tx.closed() => return,
                }
            }
        });
        Ok(Southbound {
            state: rx,
            stats: stats_rx,
            handle,
        })
    }

    /// The links' counters, read every [`STATS_REFRESH`].
    pub fn subscribe_stats(&self) -> watch::Receiver<Arc<LinkStatsMap>> {
        self.stats.clone()
    }

    /// The state now.
    pub fn current(&self) -> Arc<NetState> {
        self.state.borrow().clone()
    }

    /// Reads the kernel's state now, past notifications still in flight
    /// (after creating interfaces, before describing them).
    pub async fn dump_now(&self) -> Result<NetState, NetError> {
        dump(&self.handle).await
    }

    /// A receiver that wakes on every change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<NetState>> {
        self.state.clone()
    }

    /// Brings a link up (`ip link set NAME up`).
    pub async fn set_link_up(&self, name: &str) -> Result<(), NetError> {
        let index = match self.current().link_by_name(name) {
            Some(l) => l.index,
            None => {
                let mut links = self
                    .handle
                    .link()
                    .get()
                    .match_name(name.to_string())
                    .execute();
                links
                    .try_next()
                    .await
                    .map_err(nl_err)?
                    .ok_or_else(|| NetError::NoSuchLink(name.to_string()))?
                    .header
                    .index
            }
        };
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(nl_err)
    }
}

async fn resync_once(handle: &Handle, state: &mut NetState, tx: &watch::Sender<Arc<NetState>>) {
    match dump(handle).await {
        Ok(s) if s != *state => {
            warn!(
                "netlink: a dump found changes no notification announced (receive buffer overrun?)"
            );
            *state = s;
            tx.send_replace(Arc::new(state.clone()));
        }
        Ok(_) => {}
        Err(e) => warn!("netlink dump: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::address::AddressHeader;
    use netlink_packet_route::link::LinkHeader;
    use netlink_packet_route::AddressFamily;

    #[test]
    fn translates_link_messages() {
        let mut m = LinkMessage::default();
        m.header = LinkHeader {
            index: 7,
            flags: LinkFlags::Up | LinkFlags::Running | LinkFlags::LowerUp,
            ..Default::default()
        };
        m.attributes = vec![
            LinkAttribute::IfName("veth0".into()),
            LinkAttribute::Address(vec![2, 0, 0, 0, 0, 7]),
            LinkAttribute::Mtu(9000),
            LinkAttribute::OperState(State::Up),
        ];
        let l = link_of(&m).unwrap();
        assert_eq!(l.name, "veth0");
        assert_eq!(l.mac, Some([2, 0, 0, 0, 0, 7]));
        assert_eq!(l.mtu, 9000);
        assert!(l.admin_up && l.oper_up);
        // Carrier lost: down, whatever IFF_UP says.
        m.attributes[3] = LinkAttribute::OperState(State::LowerLayerDown);
        assert!(!link_of(&m).unwrap().oper_up);
        // lo and TAPs report "unknown": up when IFF_UP is.
        m.attributes[3] = LinkAttribute::OperState(State::Unknown);
        assert!(link_of(&m).unwrap().oper_up);
        m.header.flags = LinkFlags::empty();
        assert!(!link_of(&m).unwrap().oper_up);
        m.attributes.remove(0);
        assert_eq!(link_of(&m), None, "a link without a name is not followed");
    }

    #[test]
    fn translates_link_type_peer_and_counters() {
        let mut m = LinkMessage::default();
        m.header = LinkHeader {
            index: 7,
            link_layer_type: LinkLayerType::Ether,
            ..Default::default()
        };
        // Stats64 is non-exhaustive: built from a default.
        let mut st64 = netlink_packet_route::link::Stats64::default();
        (st64.rx_packets, st64.tx_packets) = (5, 6);
        (st64.rx_dropped, st64.rx_errors) = (1, 2);
        m.attributes = vec![
            LinkAttribute::IfName("veth0".into()),
            LinkAttribute::Link(12),
            LinkAttribute::Stats64(st64),
        ];
        let l = link_of(&m).unwrap();
        assert!(l.ether);
        assert_eq!(l.iflink, Some(12), "a veth names its peer");
        let (name, st) = stats_of(&m).unwrap();
        assert_eq!(name, "veth0");
        assert_eq!(
            (
                st.get("rx_packets"),
                st.get("tx_packets"),
                st.get("rx_dropped")
            ),
            (Some(5), Some(6), Some(1))
        );
        assert_eq!(
            (st.get("rx_errors"), st.get("tx_dropped")),
            (Some(2), Some(0))
        );
        // Its own index as IFLA_LINK (most links): no peer.
        m.attributes[1] = LinkAttribute::Link(7);
        assert_eq!(link_of(&m).unwrap().iflink, None);
        m.header.link_layer_type = LinkLayerType::Loopback;
        assert!(!link_of(&m).unwrap().ether);
    }

    #[test]
    fn links_that_come_and_go_are_described_for_the_log() {
        let mut s = NetState::new();
        let mut m = LinkMessage::default();
        m.header.index = 9;
        m.attributes = vec![LinkAttribute::IfName("fvsx0".into())];
        let l = link_of(&m).unwrap();
        assert_eq!(
            describe(&s, &NetEvent::Link(l.clone())).as_deref(),
            Some("netlink: link fvsx0 (index 9) added")
        );
        s.apply(NetEvent::Link(l.clone()));
        assert_eq!(
            describe(&s, &NetEvent::Link(l)),
            None,
            "a change is not an add"
        );
        assert_eq!(
            describe(&s, &NetEvent::LinkGone(9)).as_deref(),
            Some("netlink: link fvsx0 (index 9) removed")
        );
    }

    #[test]
    fn translates_address_messages() {
        let mut m = AddressMessage::default();
        m.header = AddressHeader {
            family: AddressFamily::Inet,
            prefix_len: 24,
            index: 7,
            ..Default::default()
        };
        m.attributes = vec![
            AddressAttribute::Address(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 9))),
            AddressAttribute::Local(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1))),
        ];
        let a = addr_of(&m).unwrap();
        assert_eq!(
            a.ip,
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
            "IFA_LOCAL wins"
        );
        assert_eq!((a.index, a.prefix), (7, 24));
        m.attributes.remove(1);
        assert_eq!(
            addr_of(&m).unwrap().ip,
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 9))
        );
    }

    #[test]
    fn translates_route_messages() {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.header.kind = RouteType::Unicast;
        m.header.destination_prefix_length = 0;
        m.attributes = vec![
            RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(198, 18, 0, 254))),
            RouteAttribute::Oif(7),
            RouteAttribute::Priority(100),
        ];
        let r = route_of(&m).unwrap();
        assert_eq!(r.dst, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(r.gateway, Some(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 254))));
        assert_eq!((r.oif, r.priority), (Some(7), 100));

        let mut msg = NetlinkMessage::from(RouteNetlinkMessage::NewRoute(m.clone()));
        msg.header.flags = NLM_F_REPLACE;
        assert_eq!(
            event_of(&msg),
            Some(NetEvent::Route {
                route: r,
                replace: true
            })
        );
        let del = NetlinkMessage::from(RouteNetlinkMessage::DelRoute(m.clone()));
        assert_eq!(event_of(&del), Some(NetEvent::RouteGone(r)));

        // Local routes and other tables are not followed.
        m.header.kind = RouteType::Local;
        assert_eq!(route_of(&m), None);
        m.header.kind = RouteType::Unicast;
        m.attributes.push(RouteAttribute::Table(100));
        assert_eq!(route_of(&m), None);
    }
}
