//! keepalived.conf statements → typed model, with keepalived 2.2's defaults
//! and its inheritance rules (virtual_server → real_server → checker).
//!
//! Every block is read by a keyword table (`Keywords`): one line per
//! keyword, saying how its statement is read into the block's state. One
//! walker (`Conv::read`) goes through a block's statements with its table,
//! so a keyword no table knows is reported the same way everywhere. The
//! keywords several blocks share are tables of their own, read under a
//! prefix: the timing keywords of virtual_server, real_server and the
//! checkers (`TIMING`), the notify scripts of vrrp_sync_group and
//! vrrp_instance (`NOTIFY`), and the GARP settings of global_defs
//! (`vrrp_garp_*`) and vrrp_instance (`garp_*`) (`GARP`).

mod checker;
mod global;
mod lvs;
mod vrrp;

use checker::RawChecker;
pub use lvs::{fmt_addr_port, vs_display};

use crate::ast::Node;
use crate::diag::{Diagnostics, Location};
use crate::model::*;
use crate::values::{loc_of, parse_duration, parse_ip, Vals};
use std::net::IpAddr;
use std::time::Duration;

/// Where things were defined, for the cross-reference checks.
#[derive(Default, Debug, Clone)]
pub struct Locations {
    pub vrrp_scripts: Vec<Location>,
    pub vrrp_instances: Vec<Location>,
    /// Location of `virtual_router_id` (or the instance name).
    pub vrids: Vec<Location>,
    pub sync_groups: Vec<Location>,
    /// Per sync group, per member.
    pub sync_group_members: Vec<Vec<Location>>,
    /// Per instance, per track_script entry.
    pub track_scripts: Vec<Vec<Location>>,
    pub vs_groups: Vec<Location>,
    pub laddr_groups: Vec<Location>,
    pub virtual_servers: Vec<Location>,
    /// Location of laddr_group_name's argument per virtual server.
    pub laddr_refs: Vec<Option<Location>>,
    pub lvs_sync_daemon: Option<Location>,
}

/// How a block reads one keyword into its state `B`.
enum Read<B: 'static> {
    /// The statement sets part of the block.
    With(fn(&mut Conv<'_>, &Node, &mut B)),
    /// keepalived knows it; ferrovs accepts it, and warns that it has no effect.
    NoEffect,
    /// keepalived knows it; ferrovs does not implement it, warns and ignores it.
    Unsupported,
    /// Accepted without a word (keepalived's mail settings: ferrovs sends no mail).
    Silent,
    /// The keywords of another table of the same block, under this entry's
    /// prefix (the keywords several checkers share).
    Table(&'static Keywords<B>),
    /// The [`TIMING`] keywords, under this entry's prefix.
    Timing(fn(&mut B) -> &mut Timing),
    /// The [`NOTIFY`] keywords, under this entry's prefix.
    Notify(fn(&mut B) -> &mut Notify),
    /// The [`GARP`] keywords, under this entry's prefix.
    Garp(fn(&mut B) -> &mut GarpSettings),
}

/// A block's keyword table: the first entry that knows a keyword reads it.
type Keywords<B> = [(&'static str, Read<B>)];

use Read::{Garp, NoEffect, Silent, Table, Unsupported, With};

/// The top level of a keepalived.conf.
#[derive(Default)]
struct Root {
    cfg: Config,
    locs: Locations,
}

const ROOT: &Keywords<Root> = &[
    // Read before everything else: instances take their defaults from it.
    ("global_defs", Silent),
    ("ferrovs", With(|c, n, r| c.ferrovs(n, &mut r.cfg.ferrovs))),
    (
        "vrrp_script",
        With(|c, n, r| {
            if let Some(s) = c.vrrp_script(n) {
                r.cfg.vrrp_scripts.push(s);
                r.locs.vrrp_scripts.push(n.loc.clone());
            }
        }),
    ),
    (
        "vrrp_sync_group",
        With(|c, n, r| {
            if let Some((g, members)) = c.sync_group(n) {
                r.cfg.vrrp_sync_groups.push(g);
                r.locs.sync_groups.push(n.loc.clone());
                r.locs.sync_group_members.push(members);
            }
        }),
    ),
    (
        "vrrp_instance",
        With(|c, n, r| {
            if let Some((i, vrid_loc, ts)) = c.vrrp_instance(n, &r.cfg.global) {
                r.cfg.vrrp_instances.push(i);
                r.locs.vrrp_instances.push(n.loc.clone());
                r.locs.vrids.push(vrid_loc);
                r.locs.track_scripts.push(ts);
            }
        }),
    ),
    (
        "virtual_server_group",
        With(|c, n, r| {
            if let Some(g) = c.vs_group(n) {
                r.cfg.virtual_server_groups.push(g);
                r.locs.vs_groups.push(n.loc.clone());
            }
        }),
    ),
    (
        "local_address_group",
        With(|c, n, r| {
            if let Some(g) = c.laddr_group(n) {
                r.cfg.local_address_groups.push(g);
                r.locs.laddr_groups.push(n.loc.clone());
            }
        }),
    ),
    (
        "virtual_server",
        With(|c, n, r| {
            if let Some((vs, laddr_loc)) = c.virtual_server(n) {
                r.cfg.virtual_servers.push(vs);
                r.locs.virtual_servers.push(n.loc.clone());
                r.locs.laddr_refs.push(laddr_loc);
            }
        }),
    ),
    ("static_ipaddress", Unsupported),
    ("static_routes", Unsupported),
    ("static_rules", Unsupported),
    ("track_group", Unsupported),
    (
        "garp_group",
        With(|c, n, r| {
            if let Some(g) = c.garp_group(n, &r.cfg.garp_groups) {
                r.cfg.garp_groups.push(g);
            }
        }),
    ),
    ("linkbeat_interfaces", Unsupported),
    ("vrrp_track_process", Unsupported),
    ("vrrp_track_file", Unsupported),
    ("track_file", Unsupported),
    ("bfd_instance", Unsupported),
    ("SSL", Unsupported),
    ("interface_up_down_delays", Unsupported),
    ("net_namespace", Unsupported),
    ("namespace_with_ipsets", Unsupported),
    ("instance", Unsupported),
    ("use_pid_dir", Unsupported),
];

/// Converts the statement tree into a [`Config`].
pub fn convert(nodes: &[Node], d: &mut Diagnostics) -> (Config, Locations) {
    let mut root = Root::default();
    let mut c = Conv { v: Vals { d } };
    // global_defs first: instances take their defaults from it wherever it is.
    for n in nodes.iter().filter(|n| n.key == "global_defs") {
        c.global_defs(n, &mut root);
    }
    c.read(nodes, ROOT, &mut root);
    let Root { mut cfg, locs } = root;
    group_zero_ports(&mut cfg, &locs, c.v.d);
    (cfg, locs)
}

/// keepalived: a virtual server on a group with a zero-port address entry
/// must be persistent; persistence is switched on (with a warning).
fn group_zero_ports(cfg: &mut Config, locs: &Locations, d: &mut Diagnostics) {
    let groups = cfg.virtual_server_groups.clone();
    for (i, vs) in cfg.virtual_servers.iter_mut().enumerate() {
        let VsAddress::Group(name) = &vs.address else {
            continue;
        };
        let Some(g) = groups.iter().find(|g| &g.name == name) else {
            continue;
        };
        let zero = g
            .entries
            .iter()
            .any(|e| matches!(e, VsgEntry::Range { port: 0, .. }));
        if zero && vs.persistence.is_none() {
            d.warn(
                &locs.virtual_servers[i],
                format!(
                    "Virtual server group {name}: zero port only valid for persistent services - setting"
                ),
            );
            vs.persistence = Some(Persistence {
                timeout: 360,
                granularity: Netmask::V4([255, 255, 255, 255].into()),
            });
        }
    }
}

struct Conv<'d> {
    v: Vals<'d>,
}

/// Timing options settable at virtual_server, real_server and checker level.
#[derive(Default, Clone, Debug)]
struct Timing {
    connect_timeout: Option<Duration>,
    retry: Option<u32>,
    delay_before_retry: Option<Duration>,
    warmup: Option<Duration>,
    delay_loop: Option<Duration>,
    alpha: Option<bool>,
}

impl Timing {
    fn or(&self, parent: &Timing) -> Timing {
        Timing {
            connect_timeout: self.connect_timeout.or(parent.connect_timeout),
            retry: self.retry.or(parent.retry),
            delay_before_retry: self.delay_before_retry.or(parent.delay_before_retry),
            warmup: self.warmup.or(parent.warmup),
            delay_loop: self.delay_loop.or(parent.delay_loop),
            alpha: self.alpha.or(parent.alpha),
        }
    }
}

/// The timing keywords of virtual_server, real_server and the checkers.
const TIMING: &Keywords<Timing> = &[
    (
        "connect_timeout",
        With(|c, s, t| t.connect_timeout = c.v.one_duration(s).or(t.connect_timeout)),
    ),
    (
        "delay_loop",
        With(|c, s, t| {
            if let Some(d) = c.v.one_duration(s) {
                if d.is_zero() {
                    c.d().error(loc_of(s, 0), "delay_loop: must be positive");
                } else {
                    t.delay_loop = Some(d);
                }
            }
        }),
    ),
    (
        "delay_before_retry",
        With(|c, s, t| t.delay_before_retry = c.v.one_duration(s).or(t.delay_before_retry)),
    ),
    (
        "warmup",
        With(|c, s, t| t.warmup = c.v.one_duration(s).or(t.warmup)),
    ),
    ("retry", With(|c, s, t| c.retry(s, t))),
    (
        "nb_get_retry",
        With(|c, s, t| {
            c.d().warn(
                &s.loc,
                "nb_get_retry is deprecated - use retry (taken as retry)",
            );
            c.retry(s, t);
        }),
    ),
    ("alpha", With(|c, s, t| t.alpha = Some(c.v.flag(s)))),
];

/// The notify scripts of vrrp_sync_group and vrrp_instance.
const NOTIFY: &Keywords<Notify> = &[
    ("notify_master", With(|c, s, n| c.notify(s, &mut n.master))),
    ("notify_backup", With(|c, s, n| c.notify(s, &mut n.backup))),
    ("notify_fault", With(|c, s, n| c.notify(s, &mut n.fault))),
    ("notify_stop", With(|c, s, n| c.notify(s, &mut n.stop))),
    ("notify", With(|c, s, n| c.notify(s, &mut n.any))),
];

/// The GARP settings, without their prefix: global_defs reads them as
/// `vrrp_garp_master_delay` ..., vrrp_instance as `garp_master_delay` ....
const GARP: &Keywords<GarpSettings> = &[
    (
        "master_delay",
        With(|c, s, g| {
            if let Some(v) = c.v.one_uint(s, 0, 255) {
                g.master_delay = Duration::from_secs(v);
            }
        }),
    ),
    (
        "master_repeat",
        With(|c, s, g| {
            if let Some(v) = c.v.one_uint(s, 1, 255) {
                g.master_repeat = v as u32;
            }
        }),
    ),
    (
        "master_refresh",
        With(|c, s, g| {
            if let Some(v) = c.v.one_uint(s, 0, u32::MAX as u64) {
                g.master_refresh = Duration::from_secs(v);
            }
        }),
    ),
    (
        "master_refresh_repeat",
        With(|c, s, g| {
            if let Some(v) = c.v.one_uint(s, 1, 255) {
                g.master_refresh_repeat = v as u32;
            }
        }),
    ),
    (
        "lower_prio_delay",
        With(|c, s, g| {
            if let Some(v) = c.v.one_uint(s, 0, 255) {
                g.lower_prio_delay = Some(Duration::from_secs(v));
            }
        }),
    ),
    (
        "lower_prio_repeat",
        With(|c, s, g| {
            if let Some(v) = c.v.one_uint(s, 0, 255) {
                g.lower_prio_repeat = Some(v as u32);
            }
        }),
    ),
];

impl Conv<'_> {
    fn d(&mut self) -> &mut Diagnostics {
        self.v.d
    }

    fn unknown(&mut self, n: &Node, k: &str) {
        self.v
            .d
            .warn(&n.loc, format!("unknown keyword '{k}' - ignoring"));
    }

    fn no_effect(&mut self, n: &Node) {
        self.v.d.warn(
            &n.loc,
            format!("'{}' is accepted but has no effect in ferrovs", n.key),
        );
    }

    fn block<'n>(&mut self, n: &'n Node) -> &'n [Node] {
        match &n.block {
            Some(b) => b,
            None => {
                self.v
                    .d
                    .error(&n.loc, format!("{}: missing '{{' block", n.key));
                &[]
            }
        }
    }

    fn name(&mut self, n: &Node) -> Option<String> {
        self.v.arg(n, 0, "name").map(|a| a.text.clone())
    }

    /// Reads a block's statements with its keyword table; a keyword the
    /// table does not know is warned about and ignored.
    fn read<B>(&mut self, stmts: &[Node], table: &'static Keywords<B>, b: &mut B) {
        for s in stmts {
            if !self.read_kw(s, &s.key, table, b) {
                self.unknown(s, &s.key);
            }
        }
    }

    /// Reads statement `s` if `table` knows `key` (its keyword, less the
    /// prefixes of the tables it was looked up through); false if not.
    fn read_kw<B>(&mut self, s: &Node, key: &str, table: &'static Keywords<B>, b: &mut B) -> bool {
        for (name, read) in table {
            let known = match read {
                Table(t) => key
                    .strip_prefix(name)
                    .is_some_and(|k| self.read_kw(s, k, t, b)),
                Read::Timing(part) => key
                    .strip_prefix(name)
                    .is_some_and(|k| self.read_kw(s, k, TIMING, part(b))),
                Read::Notify(part) => key
                    .strip_prefix(name)
                    .is_some_and(|k| self.read_kw(s, k, NOTIFY, part(b))),
                Garp(part) => key
                    .strip_prefix(name)
                    .is_some_and(|k| self.read_kw(s, k, GARP, part(b))),
                _ if *name != key => false,
                With(f) => {
                    f(self, s, b);
                    true
                }
                NoEffect => {
                    self.no_effect(s);
                    true
                }
                Unsupported => {
                    self.d().warn(
                        &s.loc,
                        format!("'{}' is not supported by ferrovs - ignoring", s.key),
                    );
                    true
                }
                Silent => true,
            };
            if known {
                return true;
            }
        }
        false
    }

    fn retry(&mut self, s: &Node, t: &mut Timing) {
        if let Some(v) = self.v.one_uint(s, 0, u32::MAX as u64) {
            t.retry = Some(v as u32);
        }
    }

    fn notify(&mut self, s: &Node, slot: &mut Option<Script>) {
        if slot.is_some() {
            self.d().warn(
                &s.loc,
                format!("{} script already specified - ignoring", s.key),
            );
            return;
        }
        *slot = self.v.script(s, &s.args);
    }
}

#[cfg(test)]
mod tests {
    use crate::load_str;

    fn instance_garp(global: &str, instance: &str) -> crate::GarpSettings {
        let text = format!(
            "global_defs {{\n{global}\n}}\nvrrp_instance VI_1 {{\ninterface eth0\nvirtual_router_id 1\n{instance}\nvirtual_ipaddress {{\n198.18.0.1\n}}\n}}\n"
        );
        let l = load_str("garp.conf", &text);
        assert!(!l.diagnostics.has_errors(), "{:?}", l.diagnostics);
        l.config.vrrp_instances[0].garp
    }

    #[test]
    fn garp_settings_read_the_same_in_global_defs_and_per_instance() {
        let default = instance_garp("", "");
        for (k, v) in [
            ("master_delay", "7"),
            ("master_repeat", "3"),
            ("master_refresh", "60"),
            ("master_refresh_repeat", "2"),
            ("lower_prio_delay", "4"),
            ("lower_prio_repeat", "6"),
        ] {
            let global = instance_garp(&format!("vrrp_garp_{k} {v}"), "");
            let own = instance_garp("", &format!("garp_{k} {v}"));
            assert_ne!(global, default, "{k}");
            assert_eq!(global, own, "{k}");
        }
    }
}
