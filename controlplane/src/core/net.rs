//! The kernel's network, as the southbound announces it: the ports'
//! addresses and MTU, and the routes. With DPDK the director's addresses
//! live on the exception interfaces, where the operator (or ifupdown) puts
//! them after ferrovs has created them, so they are followed, not read
//! once.

use super::{Core, Level};
use crate::ipvs_state::Net;
use crate::southbound::NetState;
use std::sync::Arc;

impl Core {
    pub(super) fn net_change(&mut self, ns: Arc<NetState>) {
        if let Some(net) = follow(&self.net, &ns) {
            let moved: Vec<String> = net
                .ports
                .iter()
                .zip(&self.net.ports)
                .filter(|(a, b)| a.addrs != b.addrs)
                .map(|(a, _)| format!("{}: addresses now {:?}", a.name, a.addrs))
                .collect();
            for m in moved {
                self.log(Level::Info, m);
            }
            self.net = net;
            self.publish_or_log("publishing after a network change");
        }
        self.kernel = Some(ns);
        // VRRP waiting for its interfaces' addresses starts once they have.
        self.maybe_start_vrrp();
    }
}

/// The ports and routes `ns` gives the running ports, or None when
/// nothing the dataplane uses changed.
pub fn follow(cur: &Net, ns: &NetState) -> Option<Net> {
    let mut ports = Vec::with_capacity(cur.ports.len());
    for p in &cur.ports {
        match ns.port(&p.name) {
            Ok(mut n) => {
                // The MAC is the data port's, whatever the kernel says.
                n.mac = p.mac;
                ports.push(n)
            }
            // Gone for now: the port keeps its last addresses until the
            // interface is back.
            Err(_) => ports.push(p.clone()),
        }
    }
    let routes = ns.routes(&ports);
    let addrs6: Vec<_> = ports.iter().map(|p| ns.port_addrs6(&p.name)).collect();
    let routes6 = ns.routes6(&ports);
    let same_ports = ports
        .iter()
        .zip(&cur.ports)
        .all(|(a, b)| a.addrs == b.addrs && a.mtu == b.mtu);
    if same_ports && routes == cur.routes && addrs6 == cur.addrs6 && routes6 == cur.routes6 {
        return None;
    }
    Some(Net {
        ports,
        routes,
        addrs6,
        routes6,
    })
}
