//! Cross-reference checks over the whole model: names that must exist,
//! duplicates, VRIDs, FULLNAT local addresses.

use crate::diag::{Diagnostics, Location};
use crate::ipvs::{check_local_addresses, service_family_v6, service_keys};
use crate::keepalived::Locations;
use crate::model::*;
use std::collections::HashMap;

pub fn validate(cfg: &Config, locs: &Locations, d: &mut Diagnostics) {
    dup_names(
        cfg.vrrp_scripts.iter().map(|s| s.name.as_str()),
        &locs.vrrp_scripts,
        "vrrp_script",
        d,
    );
    dup_names(
        cfg.vrrp_instances.iter().map(|s| s.name.as_str()),
        &locs.vrrp_instances,
        "vrrp_instance",
        d,
    );
    dup_names(
        cfg.vrrp_sync_groups.iter().map(|s| s.name.as_str()),
        &locs.sync_groups,
        "vrrp_sync_group",
        d,
    );
    dup_names(
        cfg.virtual_server_groups.iter().map(|s| s.name.as_str()),
        &locs.vs_groups,
        "virtual_server_group",
        d,
    );
    dup_names(
        cfg.local_address_groups.iter().map(|s| s.name.as_str()),
        &locs.laddr_groups,
        "local_address_group",
        d,
    );

    // VRIDs: unique per interface and address family.
    let mut vrids: HashMap<(Option<&str>, bool, u8), usize> = HashMap::new();
    for (i, inst) in cfg.vrrp_instances.iter().enumerate() {
        if inst.virtual_router_id == 0 {
            continue;
        }
        let v6 = inst
            .virtual_ipaddress
            .first()
            .map(|v| v.addr.is_ipv6())
            .unwrap_or(false);
        let key = (inst.interface.as_deref(), v6, inst.virtual_router_id);
        if let Some(&first) = vrids.get(&key) {
            d.error(
                &locs.vrids[i],
                format!(
                    "VRID {} is already used by vrrp_instance {} on interface {} (at {})",
                    inst.virtual_router_id,
                    cfg.vrrp_instances[first].name,
                    inst.interface.as_deref().unwrap_or("(default)"),
                    locs.vrids[first]
                ),
            );
        } else {
            vrids.insert(key, i);
        }
        for (j, ts) in inst.track_script.iter().enumerate() {
            if cfg.vrrp_script(&ts.name).is_none() {
                if let Some(l) = locs.track_scripts.get(i).and_then(|v| v.get(j)) {
                    d.warn(
                        l,
                        format!(
                            "({}) track_script {} not found - ignoring",
                            inst.name, ts.name
                        ),
                    );
                }
            }
        }
    }

    // Sync groups name existing instances, each instance in one group only.
    let mut member_of: HashMap<&str, &str> = HashMap::new();
    for (gi, g) in cfg.vrrp_sync_groups.iter().enumerate() {
        for (mi, m) in g.group.iter().enumerate() {
            let loc = &locs.sync_group_members[gi][mi];
            if cfg.vrrp_instance(m).is_none() {
                d.error(
                    loc,
                    format!(
                        "vrrp_instance {m} named in vrrp_sync_group {} does not exist",
                        g.name
                    ),
                );
            } else if let Some(other) = member_of.insert(m, &g.name) {
                d.error(
                    loc,
                    format!("vrrp_instance {m} is already in vrrp_sync_group {other}"),
                );
            }
        }
        if g.group.len() == 1 {
            d.warn(
                &locs.sync_groups[gi],
                format!(
                    "vrrp_sync_group {} has only 1 virtual router - this probably isn't what you want",
                    g.name
                ),
            );
        }
    }

    if let (Some(sd), Some(loc)) = (&cfg.global.lvs_sync_daemon, &locs.lvs_sync_daemon) {
        if cfg.ferrovs.sync_active_active.is_some() {
            d.error(
                loc,
                "lvs_sync_daemon and the ferrovs block's sync_active_active: one or the other (sync_active_active runs both roles always)",
            );
        }
        // Any multicast group, IPv4 or IPv6, as the kernel takes.
        if !sd.options.group.is_multicast() {
            d.error(
                loc,
                format!(
                    "lvs_sync_daemon: group {} is not a multicast address",
                    sd.options.group
                ),
            );
        }
        if cfg.vrrp_instance(&sd.vrrp_instance).is_none() {
            d.error(
                loc,
                format!(
                    "lvs_sync_daemon: vrrp_instance {} does not exist",
                    sd.vrrp_instance
                ),
            );
        }
    }

    unowned_vips(cfg, locs, d);

    // Bound what groups expand to before expanding them.
    let mut total: u128 = 0;
    for (i, vs) in cfg.virtual_servers.iter().enumerate() {
        let n = match &vs.address {
            VsAddress::Group(g) => cfg
                .virtual_server_group(g)
                .map(|g| g.entries.iter().map(entry_size).sum::<u128>())
                .unwrap_or(0),
            _ => 1,
        };
        total += n;
        if total > MAX_SERVICES {
            d.error(
                &locs.virtual_servers[i],
                format!("more than {MAX_SERVICES} virtual services"),
            );
            return;
        }
    }

    // Virtual servers: groups exist, FULLNAT has local addresses, no duplicates.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, vs) in cfg.virtual_servers.iter().enumerate() {
        let loc = &locs.virtual_servers[i];
        if let VsAddress::Group(g) = &vs.address {
            if cfg.virtual_server_group(g).is_none() {
                d.error(loc, format!("virtual_server_group {g} does not exist"));
                continue;
            }
        }
        // FULLNAT's rule is `ipvs::check_local_addresses`; here it is said
        // in the configuration's terms, at the virtual_server (a group
        // without addresses is refused where groups are checked).
        let fnat = vs.forwards_by_fullnat();
        match &vs.laddr_group_name {
            None => {
                if check_local_addresses(fnat, 0).is_err() {
                    d.error(
                        loc,
                        "FNAT (FULLNAT) virtual server needs local addresses: add laddr_group_name",
                    )
                }
            }
            Some(name) => {
                let l = locs.laddr_refs[i].as_ref().unwrap_or(loc);
                match cfg.local_address_group(name) {
                    None => d.error(l, format!("local_address_group {name} does not exist")),
                    Some(_) if !fnat => {
                        d.warn(l, "laddr_group_name only matters for FNAT - ignoring")
                    }
                    Some(g) => {
                        // A FULLNAT server is reached from a local address
                        // of its own family: IPv4 ones for NAT64.
                        let addrs = g.addresses();
                        for r in vs.real_servers.iter().filter(|r| r.fwd == LbKind::FullNat) {
                            if !addrs.iter().any(|a| a.is_ipv6() == r.addr.is_ipv6()) {
                                let fam = if r.addr.is_ipv6() { "IPv6" } else { "IPv4" };
                                d.error(
                                    l,
                                    format!(
                                        "FNAT real server {} needs {fam} local addresses, and local_address_group {name} has none",
                                        r.addr
                                    ),
                                );
                                break;
                            }
                        }
                    }
                }
            }
        }
        if let (VsAddress::Group(g), Some(v6)) = (&vs.address, service_family_v6(vs)) {
            let g = cfg.virtual_server_group(g).expect("checked above");
            for e in &g.entries {
                if let VsgEntry::Range { first, .. } = e {
                    // NAT64: IPv6 entries, FULLNAT to IPv4 servers.
                    let nat64 = first.is_ipv6() && !v6 && vs.forwards_by_fullnat();
                    if first.is_ipv6() != v6 && !nat64 {
                        d.error(
                            loc,
                            format!(
                                "virtual_server_group {} entry {first} and the real servers differ in address family",
                                g.name
                            ),
                        );
                    }
                }
            }
        }
        for key in service_keys(cfg, vs) {
            let text = key.to_string();
            if let Some(&first) = seen.get(&text) {
                d.error(
                    loc,
                    format!(
                        "duplicate virtual server {text} (first defined at {})",
                        locs.virtual_servers[first]
                    ),
                );
            } else {
                seen.insert(text, i);
            }
        }
    }
}

/// A service address that no vrrp_instance holds is served by every
/// director that loads the file: on a VRRP pair both answer ARP for it and
/// forward its traffic. Only a warning: a file without VRRP, or a VIP
/// routed to the director, is a setup of its own.
fn unowned_vips(cfg: &Config, locs: &Locations, d: &mut Diagnostics) {
    if cfg.vrrp_instances.is_empty() {
        return;
    }
    // An instance's family is its first address's, as keepalived takes
    // it (an IPv6 instance runs VRRPv3 over IPv6); keepalived ignores
    // addresses of the other family in virtual_ipaddress
    // (virtual_ipaddress_excluded takes both), and skips a unicast_src_ip
    // or unicast_peer of the other family.
    for (i, inst) in cfg.vrrp_instances.iter().enumerate() {
        let Some(first) = inst.virtual_ipaddress.first() else {
            continue;
        };
        let v6 = first.addr.is_ipv6();
        let loc = &locs.vrrp_instances[i];
        for v in inst
            .virtual_ipaddress
            .iter()
            .filter(|v| v.addr.is_ipv6() != v6)
        {
            d.warn(
                loc,
                format!(
                    "({}) address family must match VRRP instance [{}] - ignoring",
                    inst.name, v.addr
                ),
            );
        }
        // keepalived's words (vrrp_parser.c, vrrp_data.c).
        for a in [inst.unicast_src_ip, inst.mcast_src_ip]
            .into_iter()
            .flatten()
            .filter(|a| a.is_ipv6() != v6)
        {
            d.warn(
                loc,
                format!(
                    "Configuration error: VRRP instance[{}] and src address[{a}] MUST be of the same family !!! Skipping...",
                    inst.name
                ),
            );
        }
        for p in inst
            .unicast_peer
            .iter()
            .filter(|p| p.address.is_ipv6() != v6)
        {
            d.warn(
                loc,
                format!(
                    "Configuration error: VRRP instance[{}] and unicast peer address[{}] MUST be of the same family !!! Skipping...",
                    inst.name, p.address
                ),
            );
        }
    }
    let held: Vec<std::net::IpAddr> = cfg
        .vrrp_instances
        .iter()
        .flat_map(|i| {
            i.virtual_ipaddress
                .iter()
                .chain(&i.virtual_ipaddress_excluded)
        })
        .map(|v| v.addr)
        .collect();
    for (i, vs) in cfg.virtual_servers.iter().enumerate() {
        let addrs: Vec<std::net::IpAddr> = match &vs.address {
            VsAddress::Addr { addr, .. } => vec![*addr],
            // A range is checked at its ends: the usual mistake is a whole
            // group left out, not one address in its middle.
            VsAddress::Group(g) => cfg
                .virtual_server_group(g)
                .map(|g| {
                    g.entries
                        .iter()
                        .flat_map(|e| match e {
                            VsgEntry::Range { first, last, .. } => vec![*first, *last],
                            VsgEntry::Fwmark(_) => vec![],
                        })
                        .collect()
                })
                .unwrap_or_default(),
            VsAddress::Fwmark(_) => vec![],
        };
        if let Some(a) = addrs.iter().find(|a| !held.contains(a)) {
            d.warn(
                &locs.virtual_servers[i],
                format!(
                    "virtual_server address {a} is in no vrrp_instance: every director that loads this file answers ARP for it and forwards its traffic"
                ),
            );
        }
    }
}

/// Upper bound on the IPVS services a configuration may expand to.
pub const MAX_SERVICES: u128 = 65536;

fn entry_size(e: &VsgEntry) -> u128 {
    match e {
        VsgEntry::Fwmark(_) => 1,
        VsgEntry::Range { first, last, .. } => match (first, last) {
            (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => {
                (u32::from(*b) as u128).saturating_sub(u32::from(*a) as u128) + 1
            }
            (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) => {
                u128::from(*b).saturating_sub(u128::from(*a)) + 1
            }
            _ => 0,
        },
    }
}

fn dup_names<'a>(
    names: impl Iterator<Item = &'a str>,
    locs: &[Location],
    what: &str,
    d: &mut Diagnostics,
) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, n) in names.enumerate() {
        if let Some(&first) = seen.get(n) {
            d.error(
                &locs[i],
                format!("{what} {n} is already defined at {}", locs[first]),
            );
        } else {
            seen.insert(n, i);
        }
    }
}
