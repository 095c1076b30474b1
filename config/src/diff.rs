//! What changed between two configurations, for reload: everything not
//! listed here is unchanged and keeps its state (VRRP state, real-server
//! health, IPVS entries), as keepalived's reload does.

use crate::model::*;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Change<T> {
    Added(T),
    Removed(T),
    Changed { old: T, new: T },
}

impl<T> Change<T> {
    pub fn new_value(&self) -> Option<&T> {
        match self {
            Change::Added(t) | Change::Changed { new: t, .. } => Some(t),
            Change::Removed(_) => None,
        }
    }
    pub fn old_value(&self) -> Option<&T> {
        match self {
            Change::Removed(t) | Change::Changed { old: t, .. } => Some(t),
            Change::Added(_) => None,
        }
    }
}

/// A real server that changed; `checkers` lists the checker changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RealServerDiff {
    pub addr: IpAddr,
    pub port: u16,
    pub change: Change<RealServer>,
    /// Weight, forwarding method or thresholds differ (an IPVS edit).
    pub ipvs_changed: bool,
    pub checkers: Vec<Change<Checker>>,
}

/// A virtual server present in both configurations that differs, or one
/// added or removed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VirtualServerDiff {
    pub address: VsAddress,
    pub protocol: Protocol,
    pub change: Change<VirtualServer>,
    /// Scheduler, flags, persistence or engine differ (an IPVS service edit).
    pub service_changed: bool,
    pub real_servers: Vec<RealServerDiff>,
}

/// VRRP instances are matched as keepalived matches them on reload: by
/// VRID, address family and interface.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VrrpInstanceDiff {
    pub virtual_router_id: u8,
    pub interface: Option<String>,
    pub change: Change<VrrpInstance>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigDiff {
    pub global_changed: bool,
    pub ferrovs_changed: bool,
    pub vrrp_scripts: Vec<Change<VrrpScript>>,
    pub vrrp_sync_groups: Vec<Change<SyncGroup>>,
    pub vrrp_instances: Vec<VrrpInstanceDiff>,
    pub local_address_groups: Vec<Change<LocalAddressGroup>>,
    pub virtual_server_groups: Vec<Change<VirtualServerGroup>>,
    pub virtual_servers: Vec<VirtualServerDiff>,
}

impl ConfigDiff {
    pub fn is_empty(&self) -> bool {
        *self == ConfigDiff::default()
    }
}

/// Pairs items of two lists by key: (old, new) for every key in either.
fn pair<'a, T, K: PartialEq>(
    old: &'a [T],
    new: &'a [T],
    key: impl Fn(&T) -> K,
) -> Vec<(Option<&'a T>, Option<&'a T>)> {
    let mut out: Vec<(Option<&T>, Option<&T>)> = Vec::new();
    for o in old {
        let k = key(o);
        out.push((Some(o), new.iter().find(|n| key(n) == k)));
    }
    for n in new {
        let k = key(n);
        if !old.iter().any(|o| key(o) == k) {
            out.push((None, Some(n)));
        }
    }
    out
}

fn named<T: Clone + PartialEq>(
    old: &[T],
    new: &[T],
    name: impl Fn(&T) -> String,
) -> Vec<Change<T>> {
    let mut out = Vec::new();
    for (o, n) in pair(old, new, name) {
        match (o, n) {
            (Some(o), None) => out.push(Change::Removed(o.clone())),
            (None, Some(n)) => out.push(Change::Added(n.clone())),
            (Some(o), Some(n)) if o != n => out.push(Change::Changed {
                old: o.clone(),
                new: n.clone(),
            }),
            _ => {}
        }
    }
    out
}

/// A checker's identity for reload: its type and where it connects.
fn checker_key(c: &Checker) -> (String, Option<IpAddr>, Option<u16>) {
    (
        c.kind.keyword().to_string(),
        c.common.connect_ip,
        c.common.connect_port,
    )
}

fn rs_diff(o: Option<&RealServer>, n: Option<&RealServer>) -> Option<RealServerDiff> {
    let r = n.or(o)?;
    let (addr, port) = (r.addr, r.port);
    match (o, n) {
        (Some(o), None) => Some(RealServerDiff {
            addr,
            port,
            change: Change::Removed(o.clone()),
            ipvs_changed: true,
            checkers: o.checkers.iter().cloned().map(Change::Removed).collect(),
        }),
        (None, Some(n)) => Some(RealServerDiff {
            addr,
            port,
            change: Change::Added(n.clone()),
            ipvs_changed: true,
            checkers: n.checkers.iter().cloned().map(Change::Added).collect(),
        }),
        (Some(o), Some(n)) if o != n => {
            let mut checkers = Vec::new();
            for (co, cn) in pair(&o.checkers, &n.checkers, checker_key) {
                match (co, cn) {
                    (Some(a), None) => checkers.push(Change::Removed(a.clone())),
                    (None, Some(b)) => checkers.push(Change::Added(b.clone())),
                    (Some(a), Some(b)) if a != b => checkers.push(Change::Changed {
                        old: a.clone(),
                        new: b.clone(),
                    }),
                    _ => {}
                }
            }
            Some(RealServerDiff {
                addr,
                port,
                change: Change::Changed {
                    old: o.clone(),
                    new: n.clone(),
                },
                ipvs_changed: o.weight != n.weight
                    || o.fwd != n.fwd
                    || o.uthreshold != n.uthreshold
                    || o.lthreshold != n.lthreshold,
                checkers,
            })
        }
        _ => None,
    }
}

/// Compares two configurations.
pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    let mut d = ConfigDiff {
        global_changed: old.global != new.global,
        ferrovs_changed: old.ferrovs != new.ferrovs,
        vrrp_scripts: named(&old.vrrp_scripts, &new.vrrp_scripts, |s| s.name.clone()),
        vrrp_sync_groups: named(&old.vrrp_sync_groups, &new.vrrp_sync_groups, |s| {
            s.name.clone()
        }),
        local_address_groups: named(&old.local_address_groups, &new.local_address_groups, |s| {
            s.name.clone()
        }),
        virtual_server_groups: named(
            &old.virtual_server_groups,
            &new.virtual_server_groups,
            |s| s.name.clone(),
        ),
        ..ConfigDiff::default()
    };
    let inst_key = |i: &VrrpInstance| {
        let v6 = i
            .virtual_ipaddress
            .first()
            .map(|v| v.addr.is_ipv6())
            .unwrap_or(false);
        (i.virtual_router_id, v6, i.interface.clone())
    };
    for (o, n) in pair(&old.vrrp_instances, &new.vrrp_instances, inst_key) {
        let change = match (o, n) {
            (Some(o), None) => Change::Removed(o.clone()),
            (None, Some(n)) => Change::Added(n.clone()),
            (Some(o), Some(n)) if o != n => Change::Changed {
                old: o.clone(),
                new: n.clone(),
            },
            _ => continue,
        };
        let i = n.or(o).expect("one side");
        d.vrrp_instances.push(VrrpInstanceDiff {
            virtual_router_id: i.virtual_router_id,
            interface: i.interface.clone(),
            change,
        });
    }
    let vs_key = |v: &VirtualServer| (v.address.clone(), v.protocol);
    for (o, n) in pair(&old.virtual_servers, &new.virtual_servers, vs_key) {
        let v = n.or(o).expect("one side");
        let (address, protocol) = (v.address.clone(), v.protocol);
        match (o, n) {
            (Some(o), None) => d.virtual_servers.push(VirtualServerDiff {
                address,
                protocol,
                change: Change::Removed(o.clone()),
                service_changed: true,
                real_servers: o
                    .real_servers
                    .iter()
                    .filter_map(|r| rs_diff(Some(r), None))
                    .collect(),
            }),
            (None, Some(n)) => d.virtual_servers.push(VirtualServerDiff {
                address,
                protocol,
                change: Change::Added(n.clone()),
                service_changed: true,
                real_servers: n
                    .real_servers
                    .iter()
                    .filter_map(|r| rs_diff(None, Some(r)))
                    .collect(),
            }),
            (Some(o), Some(n)) if o != n => {
                let real_servers = pair(&o.real_servers, &n.real_servers, |r| (r.addr, r.port))
                    .into_iter()
                    .filter_map(|(a, b)| rs_diff(a, b))
                    .collect();
                d.virtual_servers.push(VirtualServerDiff {
                    address,
                    protocol,
                    change: Change::Changed {
                        old: o.clone(),
                        new: n.clone(),
                    },
                    service_changed: o.scheduler != n.scheduler
                        || o.persistence != n.persistence
                        || o.persistence_engine != n.persistence_engine
                        || o.ops != n.ops
                        || o.syn_proxy != n.syn_proxy,
                    real_servers,
                });
            }
            _ => {}
        }
    }
    d
}
