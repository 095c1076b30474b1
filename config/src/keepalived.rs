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
    ("garp_group", Unsupported),
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

/// A checker before the inherited values are known.
struct RawChecker {
    kind: CheckerKind,
    common: CheckerCommon,
    timing: Timing,
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

    // ------------------------------------------------------------ global_defs

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

// ------------------------------------------------------------ global_defs

/// global_defs as it is read.
struct GlobalDraft {
    g: GlobalDefs,
    lvs_sync_daemon: Option<Location>,
}

const GLOBAL_DEFS: &Keywords<GlobalDraft> = &[
    ("router_id", With(|c, s, b| c.router_id(s, b))),
    ("lvs_id", With(|c, s, b| c.router_id(s, b))),
    (
        "notification_email",
        With(|_, s, b| {
            if let Some(block) = &s.block {
                for e in block {
                    b.g.notification_email
                        .extend(e.words().map(|(w, _)| w.to_string()));
                }
            } else {
                b.g.notification_email
                    .extend(s.args.iter().map(|a| a.text.clone()));
            }
        }),
    ),
    (
        "notification_email_from",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "address") {
                b.g.notification_email_from = Some(a.text.clone());
            }
        }),
    ),
    (
        "smtp_server",
        With(|c, s, b| {
            if let Some(a) = c.v.arg(s, 0, "server") {
                let host = a.text.clone();
                let port = match s.args.get(1) {
                    Some(p) => c.v.port(p, &s.key).unwrap_or(25),
                    None => 25,
                };
                b.g.smtp_server = Some(SmtpServer { host, port });
            }
        }),
    ),
    (
        "smtp_connect_timeout",
        With(|c, s, b| {
            if let Some(v) = c.v.one_uint(s, 1, u32::MAX as u64) {
                b.g.smtp_connect_timeout = Duration::from_secs(v);
            }
        }),
    ),
    ("smtp_helo_name", Silent),
    ("smtp_alert", Silent),
    ("smtp_alert_vrrp", Silent),
    ("smtp_alert_checker", Silent),
    (
        "vrrp_mcast_group4",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "address") {
                if let Some(ip) = c.v.ipv4(a, &s.key) {
                    if !ip.is_multicast() {
                        c.d().error(
                            &a.loc,
                            format!("{}: {ip} is not a multicast address", s.key),
                        );
                    }
                    b.g.vrrp_mcast_group4 = ip;
                }
            }
        }),
    ),
    (
        "vrrp_mcast_group6",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "address") {
                if let Some(ip) = c.v.ip(a, &s.key) {
                    b.g.vrrp_mcast_group6 = ip;
                }
            }
        }),
    ),
    (
        "vrrp_version",
        With(|c, s, b| {
            if let Some(v) = c.v.one_uint(s, 2, 3) {
                b.g.vrrp_version = v as u8;
            }
        }),
    ),
    ("vrrp_garp_", Garp(|b| &mut b.g.vrrp_garp)),
    (
        "vrrp_garp_interval",
        With(|c, s, b| {
            if let Some(v) = c.v.one_duration(s) {
                b.g.vrrp_garp_interval = v;
            }
        }),
    ),
    (
        "vrrp_gna_interval",
        With(|c, s, b| {
            if let Some(v) = c.v.one_duration(s) {
                b.g.vrrp_gna_interval = v;
            }
        }),
    ),
    (
        "vrrp_skip_check_adv_addr",
        With(|c, s, b| b.g.vrrp_skip_check_adv_addr = c.v.flag(s)),
    ),
    ("vrrp_strict", With(|c, s, b| b.g.vrrp_strict = c.v.flag(s))),
    (
        "script_user",
        With(|c, s, b| b.g.script_user = c.v.script_user(s)),
    ),
    (
        "enable_script_security",
        With(|c, s, b| b.g.enable_script_security = c.v.flag(s)),
    ),
    (
        "lvs_timeouts",
        With(|c, s, b| b.g.lvs_timeouts = Some(c.lvs_timeouts(s))),
    ),
    ("lvs_flush", With(|c, s, b| b.g.lvs_flush = c.v.flag(s))),
    (
        "lvs_flush_onstop",
        With(|c, s, b| b.g.lvs_flush_onstop = c.v.flag(s)),
    ),
    (
        "lvs_sync_daemon",
        With(|c, s, b| {
            b.lvs_sync_daemon = Some(s.loc.clone());
            b.g.lvs_sync_daemon = c.lvs_sync_daemon(s);
        }),
    ),
    ("vrrp_iptables", NoEffect),
    ("vrrp_ipsets", NoEffect),
    ("vrrp_check_unicast_src", NoEffect),
    ("vrrp_priority", NoEffect),
    ("checker_priority", NoEffect),
    ("vrrp_no_swap", NoEffect),
    ("checker_no_swap", NoEffect),
    ("enable_traps", NoEffect),
    ("max_auto_priority", NoEffect),
    ("dynamic_interfaces", NoEffect),
    ("no_email_faults", NoEffect),
    ("vrrp_lower_prio_no_advert", NoEffect),
    ("vrrp_higher_prio_send_advert", NoEffect),
];

impl Conv<'_> {
    fn global_defs(&mut self, n: &Node, r: &mut Root) {
        let mut b = GlobalDraft {
            g: std::mem::take(&mut r.cfg.global),
            lvs_sync_daemon: r.locs.lvs_sync_daemon.take(),
        };
        let block = self.block(n);
        self.read(block, GLOBAL_DEFS, &mut b);
        r.cfg.global = b.g;
        r.locs.lvs_sync_daemon = b.lvs_sync_daemon;
    }

    fn router_id(&mut self, s: &Node, b: &mut GlobalDraft) {
        if let Some(a) = self.v.one(s, "router id") {
            b.g.router_id = Some(a.text.clone());
        }
    }

    fn lvs_timeouts(&mut self, s: &Node) -> LvsTimeouts {
        let mut t = LvsTimeouts::default();
        let mut i = 0;
        while i < s.args.len() {
            let opt = &s.args[i];
            let Some(val) = s.args.get(i + 1) else {
                self.d().error(
                    &opt.loc,
                    format!("lvs_timeouts: missing value for '{}'", opt.text),
                );
                break;
            };
            let v = self.v.uint(val, "lvs_timeouts", 0, 86400 * 31).unwrap_or(0) as u32;
            match opt.text.as_str() {
                "tcp" => t.tcp = v,
                "tcpfin" => t.tcpfin = v,
                "udp" => t.udp = v,
                o => self.d().error(
                    &opt.loc,
                    format!("lvs_timeouts: unknown protocol '{o}' (tcp, tcpfin, udp)"),
                ),
            }
            i += 2;
        }
        t
    }

    fn lvs_sync_daemon(&mut self, s: &Node) -> Option<LvsSyncDaemon> {
        let interface = self.v.arg(s, 0, "interface")?.text.clone();
        let vrrp_instance = self.v.arg(s, 1, "VRRP instance")?.text.clone();
        let mut out = LvsSyncDaemon {
            interface,
            vrrp_instance,
            sync_id: None,
            maxlen: None,
            port: 8848,
            ttl: 1,
            group: IpAddr::V4([224, 0, 0, 81].into()),
        };
        let mut i = 2;
        while i < s.args.len() {
            let opt = &s.args[i];
            let val = match s.args.get(i + 1) {
                Some(v) => v,
                None => {
                    self.d().error(
                        &opt.loc,
                        format!("lvs_sync_daemon: missing value for '{}'", opt.text),
                    );
                    break;
                }
            };
            match opt.text.as_str() {
                "id" => {
                    out.sync_id = self
                        .v
                        .uint(val, "lvs_sync_daemon id", 0, 255)
                        .map(|v| v as u8)
                }
                "maxlen" => {
                    out.maxlen = self
                        .v
                        .uint(val, "lvs_sync_daemon maxlen", 1, 65535 - 20 - 8)
                        .map(|v| v as u16)
                }
                "port" => {
                    if let Some(p) = self.v.uint(val, "lvs_sync_daemon port", 1, 65535) {
                        out.port = p as u16;
                    }
                }
                "ttl" => {
                    if let Some(t) = self.v.uint(val, "lvs_sync_daemon ttl", 1, 255) {
                        out.ttl = t as u8;
                    }
                }
                "group" => {
                    if let Some(ip) = self.v.ip(val, "lvs_sync_daemon group") {
                        out.group = ip;
                    }
                }
                o => self.d().warn(
                    &opt.loc,
                    format!("lvs_sync_daemon: unknown option '{o}' - ignoring"),
                ),
            }
            i += 2;
        }
        Some(out)
    }

    // ------------------------------------------------------------ ferrovs

    fn ferrovs(&mut self, n: &Node, f: &mut FerrovsSettings) {
        let block = self.block(n);
        self.read(block, FERROVS, f);
    }
}

const FERROVS: &Keywords<FerrovsSettings> = &[
    (
        "backend",
        With(|c, s, f| {
            if let Some(a) = c.v.one(s, "backend") {
                match a.text.as_str() {
                    "afxdp" => f.backend = Backend::Afxdp,
                    "afpacket" => f.backend = Backend::Afpacket,
                    "dpdk" => f.backend = Backend::Dpdk,
                    o => c.d().error(
                        &a.loc,
                        format!("backend: unknown backend '{o}' (afxdp, afpacket or dpdk)"),
                    ),
                }
            }
        }),
    ),
    (
        "workers",
        With(|c, s, f| {
            if let Some(v) = c.v.one_uint(s, 1, 1024) {
                f.workers = Some(v as u32);
            }
        }),
    ),
    (
        "interface",
        With(|c, s, f| {
            if s.args.is_empty() {
                c.d().error(&s.loc, "interface: missing interface name");
            }
            for a in &s.args {
                if !f.interfaces.contains(&a.text) {
                    f.interfaces.push(a.text.clone());
                }
            }
        }),
    ),
    (
        "dpdk",
        With(|c, s, f| {
            let block = c.block(s);
            c.read(block, DPDK, &mut f.dpdk)
        }),
    ),
    (
        "http_listen",
        With(|c, s, f| {
            if let Some(a) = c.v.one(s, "address:port") {
                match a.text.parse() {
                    Ok(sa) => f.http_listen = sa,
                    Err(_) => c.d().error(
                        &a.loc,
                        format!("http_listen: invalid address:port '{}'", a.text),
                    ),
                }
            }
        }),
    ),
    (
        "control_socket",
        With(|c, s, f| {
            if let Some(a) = c.v.one(s, "path") {
                f.control_socket = a.text.clone().into();
            }
        }),
    ),
    (
        "control_socket_group",
        With(|c, s, f| {
            if let Some(a) = c.v.one(s, "group name or gid") {
                if a.text.is_empty() || a.text.contains(['/', ':']) {
                    c.d().error(
                        &a.loc,
                        format!("control_socket_group: invalid group '{}'", a.text),
                    );
                } else {
                    f.control_socket_group = Some(a.text.clone());
                }
            }
        }),
    ),
    (
        "conn_table_size",
        With(|c, s, f| {
            if let Some(v) = c.v.one_uint(s, 1, u32::MAX as u64) {
                f.conn_table_size = v as u32;
            }
        }),
    ),
];

const DPDK: &Keywords<DpdkSettings> = &[
    (
        "eal_args",
        With(|_, e, d| {
            for a in &e.args {
                d.eal_args
                    .extend(a.text.split_whitespace().map(str::to_string));
            }
        }),
    ),
    (
        "port",
        With(|c, e, d| {
            if e.args.len() != 2 {
                c.d().error(
                    &e.loc,
                    "port: expected an interface name and a DPDK device (port IFNAME DEVICE)",
                );
            } else {
                let ifname = e.args[0].text.clone();
                d.ports.retain(|(i, _)| *i != ifname);
                d.ports.push((ifname, e.args[1].text.clone()));
            }
        }),
    ),
    (
        "mbufs",
        With(|c, e, d| {
            if let Some(v) = c.v.one_uint(e, 0, 1 << 24) {
                d.mbufs = v as u32;
            }
        }),
    ),
    (
        "rx_desc",
        With(|c, e, d| {
            if let Some(v) = c.v.one_uint(e, 64, 32768) {
                d.rx_desc = v as u16;
            }
        }),
    ),
    (
        "tx_desc",
        With(|c, e, d| {
            if let Some(v) = c.v.one_uint(e, 64, 32768) {
                d.tx_desc = v as u16;
            }
        }),
    ),
    (
        "flow_steering",
        With(|c, e, d| {
            if let Some(a) = c.v.one(e, "flow_steering") {
                match a.text.as_str() {
                    "auto" => d.flow_steering = true,
                    "software" => d.flow_steering = false,
                    o => c.d().error(
                        &a.loc,
                        format!("flow_steering: unknown value '{o}' (auto or software)"),
                    ),
                }
            }
        }),
    ),
];

// ------------------------------------------------------------ VRRP

/// A vrrp_script as it is read.
struct ScriptDraft {
    out: VrrpScript,
    script: Option<Script>,
    timeout: Option<Duration>,
    user: Option<ScriptUser>,
}

const VRRP_SCRIPT: &Keywords<ScriptDraft> = &[
    ("script", With(|c, s, b| b.script = c.v.script(s, &s.args))),
    (
        "interval",
        With(|c, s, b| {
            if let Some(v) = c.v.one_duration(s) {
                if v.is_zero() {
                    c.d().error(loc_of(s, 0), "interval: must be positive");
                } else {
                    b.out.interval = v;
                }
            }
        }),
    ),
    ("timeout", With(|c, s, b| b.timeout = c.v.one_duration(s))),
    (
        "weight",
        With(|c, s, b| {
            if let Some(a) = c.v.arg(s, 0, "weight") {
                if let Some(w) = c.v.int(a, &s.key, -253, 253) {
                    b.out.weight = w as i32;
                }
            }
            if let Some(r) = s.args.get(1) {
                if r.text == "reverse" {
                    b.out.weight_reverse = true;
                } else {
                    c.d().warn(
                        &r.loc,
                        format!("weight: unknown option '{}' - ignoring", r.text),
                    );
                }
            }
        }),
    ),
    (
        "fall",
        With(|c, s, b| {
            if let Some(v) = c.v.one_uint(s, 1, u32::MAX as u64) {
                b.out.fall = v as u32;
            }
        }),
    ),
    (
        "rise",
        With(|c, s, b| {
            if let Some(v) = c.v.one_uint(s, 1, u32::MAX as u64) {
                b.out.rise = v as u32;
            }
        }),
    ),
    ("user", With(|c, s, b| b.user = c.v.script_user(s))),
    ("init_fail", With(|c, s, b| b.out.init_fail = c.v.flag(s))),
];

/// A vrrp_sync_group as it is read.
struct SyncGroupDraft {
    g: SyncGroup,
    members: Vec<Location>,
}

const SYNC_GROUP: &Keywords<SyncGroupDraft> = &[
    ("", Read::Notify(|b| &mut b.g.notify)),
    (
        "group",
        With(|c, s, b| {
            for e in c.block(s) {
                for (w, l) in e.words() {
                    b.g.group.push(w.to_string());
                    b.members.push(l.clone());
                }
            }
        }),
    ),
    (
        "track_interface",
        With(|c, s, b| c.track_interfaces(s, &mut b.g.track_interface)),
    ),
    (
        "track_script",
        With(|c, s, b| c.track_scripts(s, &mut b.g.track_script, &mut Vec::new())),
    ),
    ("smtp_alert", With(|c, s, b| b.g.smtp_alert = c.v.flag(s))),
    ("global_tracking", NoEffect),
    ("sync_group_tracking_weight", NoEffect),
    ("notify_priority_changes", NoEffect),
];

impl Conv<'_> {
    fn vrrp_script(&mut self, n: &Node) -> Option<VrrpScript> {
        let name = self.name(n)?;
        let mut b = ScriptDraft {
            out: VrrpScript {
                name,
                script: Script {
                    argv: Vec::new(),
                    user: None,
                },
                interval: Duration::from_secs(1),
                timeout: Duration::ZERO,
                weight: 0,
                weight_reverse: false,
                fall: 1,
                rise: 1,
                init_fail: false,
            },
            script: None,
            timeout: None,
            user: None,
        };
        let block = self.block(n);
        self.read(block, VRRP_SCRIPT, &mut b);
        let ScriptDraft {
            mut out,
            script,
            timeout,
            user,
        } = b;
        out.timeout = timeout.unwrap_or(out.interval);
        match script {
            Some(mut sc) => {
                sc.user = user;
                out.script = sc;
                Some(out)
            }
            None => {
                self.d().error(
                    &n.loc,
                    format!("vrrp_script {}: no 'script' given", out.name),
                );
                None
            }
        }
    }

    fn track_interfaces(&mut self, s: &Node, out: &mut Vec<TrackInterface>) {
        for e in s.block.iter().flatten() {
            let mut weight = None;
            if let Some(opt) = e.args.first() {
                if opt.text == "weight" {
                    if let Some(w) = self.v.arg(e, 1, "weight") {
                        weight = self
                            .v
                            .int(w, "track_interface weight", -253, 253)
                            .map(|w| w as i32);
                    }
                } else {
                    self.d().warn(
                        &opt.loc,
                        format!("track_interface: unknown option '{}' - ignoring", opt.text),
                    );
                }
            }
            out.push(TrackInterface {
                name: e.key.clone(),
                weight,
            });
        }
        if s.block.is_none() {
            self.d().error(&s.loc, "track_interface: missing '{' block");
        }
    }

    fn track_scripts(&mut self, s: &Node, out: &mut Vec<TrackScript>, locs: &mut Vec<Location>) {
        for e in s.block.iter().flatten() {
            let mut t = TrackScript {
                name: e.key.clone(),
                weight: None,
                weight_reverse: false,
            };
            let mut i = 0;
            while i < e.args.len() {
                let opt = &e.args[i];
                match opt.text.as_str() {
                    "weight" => {
                        if let Some(w) = self.v.arg(e, i + 1, "weight") {
                            t.weight = self
                                .v
                                .int(w, "track_script weight", -253, 253)
                                .map(|w| w as i32);
                        }
                        i += 2;
                    }
                    "reverse" => {
                        t.weight_reverse = true;
                        i += 1;
                    }
                    o => {
                        self.v.d.warn(
                            &opt.loc,
                            format!("track_script: unknown option '{o}' - ignoring"),
                        );
                        i += 1;
                    }
                }
            }
            out.push(t);
            locs.push(e.loc.clone());
        }
        if s.block.is_none() {
            self.d().error(&s.loc, "track_script: missing '{' block");
        }
    }

    fn sync_group(&mut self, n: &Node) -> Option<(SyncGroup, Vec<Location>)> {
        let name = self.name(n)?;
        let mut b = SyncGroupDraft {
            g: SyncGroup {
                name,
                ..SyncGroup::default()
            },
            members: Vec::new(),
        };
        let block = self.block(n);
        self.read(block, SYNC_GROUP, &mut b);
        Some((b.g, b.members))
    }

    fn vip(&mut self, e: &Node) -> Option<VirtualIp> {
        let (addr_s, len_s) = match e.key.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (e.key.as_str(), None),
        };
        let addr = match parse_ip(addr_s) {
            Some(a) => a,
            None => {
                self.d().error(
                    &e.loc,
                    format!("virtual_ipaddress: invalid IP address '{}'", e.key),
                );
                return None;
            }
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match len_s {
            None => max,
            Some(l) => match l.parse::<u8>() {
                Ok(v) if v <= max => v,
                _ => {
                    self.d().error(
                        &e.loc,
                        format!("virtual_ipaddress: invalid prefix length '/{l}' for {addr}"),
                    );
                    return None;
                }
            },
        };
        let mut vip = VirtualIp {
            addr,
            prefix_len,
            brd: None,
            dev: None,
            scope: None,
            label: None,
        };
        let mut i = 0;
        while i < e.args.len() {
            let opt = &e.args[i];
            let takes_value = matches!(
                opt.text.as_str(),
                "brd"
                    | "broadcast"
                    | "dev"
                    | "scope"
                    | "label"
                    | "preferred_lft"
                    | "peer"
                    | "track_group"
            );
            if !takes_value {
                match opt.text.as_str() {
                    "home" | "-nodad" | "nodad" | "noprefixroute" | "autojoin" | "no_track"
                    | "mngtmpaddr" => {}
                    o => self.d().warn(
                        &opt.loc,
                        format!("virtual_ipaddress: unknown option '{o}' - ignoring"),
                    ),
                }
                i += 1;
                continue;
            }
            let val = match e.args.get(i + 1) {
                Some(v) => v,
                None => {
                    self.d().error(
                        &opt.loc,
                        format!("virtual_ipaddress: missing value for '{}'", opt.text),
                    );
                    break;
                }
            };
            match opt.text.as_str() {
                "brd" | "broadcast" => vip.brd = self.v.ip(val, "virtual_ipaddress brd"),
                "dev" => vip.dev = Some(val.text.clone()),
                "scope" => vip.scope = Some(val.text.clone()),
                "label" => vip.label = Some(val.text.clone()),
                _ => {}
            }
            i += 2;
        }
        Some(vip)
    }

    fn vips(&mut self, s: &Node) -> Vec<VirtualIp> {
        let mut out = Vec::new();
        for e in self.block(s) {
            if let Some(v) = self.vip(e) {
                out.push(v);
            }
        }
        out
    }

    fn vrrp_instance(
        &mut self,
        n: &Node,
        g: &GlobalDefs,
    ) -> Option<(VrrpInstance, Location, Vec<Location>)> {
        let name = self.name(n)?;
        let mut b = InstanceDraft {
            i: VrrpInstance {
                name,
                state: VrrpState::Backup,
                interface: None,
                virtual_router_id: 0,
                priority: 100,
                advert_int: Duration::from_secs(1),
                version: g.vrrp_version,
                nopreempt: false,
                preempt_delay: Duration::ZERO,
                authentication: None,
                virtual_ipaddress: Vec::new(),
                virtual_ipaddress_excluded: Vec::new(),
                track_interface: Vec::new(),
                track_script: Vec::new(),
                unicast_src_ip: None,
                unicast_peer: Vec::new(),
                mcast_src_ip: None,
                notify: Notify::default(),
                smtp_alert: false,
                garp: g.vrrp_garp,
                lvs_sync_daemon_interface: None,
                dont_track_primary: false,
                accept: None,
                use_vmac: None,
            },
            vrid_loc: None,
            state: None,
            priority: None,
            strict: g.vrrp_strict,
            ts_locs: Vec::new(),
            state_loc: None,
            nopreempt_loc: None,
            auth_type: None,
            auth_pass: None,
        };
        let block = self.block(n);
        self.read(block, VRRP_INSTANCE, &mut b);
        let InstanceDraft {
            mut i,
            vrid_loc,
            state,
            priority,
            strict,
            ts_locs,
            state_loc,
            nopreempt_loc,
            auth_type,
            auth_pass,
        } = b;
        match (auth_type, auth_pass) {
            (Some(t), p) => {
                i.authentication = Some(Authentication {
                    auth_type: t,
                    auth_pass: p.unwrap_or_default(),
                })
            }
            (None, Some(p)) => {
                self.d().warn(
                    &n.loc,
                    format!(
                        "({}) auth_pass given without auth_type - assuming PASS",
                        i.name
                    ),
                );
                i.authentication = Some(Authentication {
                    auth_type: AuthType::Pass,
                    auth_pass: p,
                })
            }
            (None, None) => {}
        }
        // keepalived: an unset priority follows the state (MASTER = owner,
        // 255) and an unset state follows the priority.
        i.priority = priority.unwrap_or(if state == Some(VrrpState::Master) {
            255
        } else {
            100
        });
        i.state = state.unwrap_or(if i.priority == 255 {
            VrrpState::Master
        } else {
            VrrpState::Backup
        });
        if i.virtual_ipaddress.is_empty() {
            self.d().warn(
                &n.loc,
                format!("({}) No VIP specified; at least one is sensible", i.name),
            );
        }
        if let Some(a) = &i.authentication {
            let why = if strict {
                Some("Strict mode does not support authentication")
            } else if a.auth_pass.is_empty() {
                Some("Authentication specified but no password given")
            } else {
                None
            };
            if let Some(why) = why {
                self.d()
                    .warn(&n.loc, format!("({}) {why}. Ignoring", i.name));
                i.authentication = None;
            }
        }
        if i.version == 3 {
            if let Some(a) = &i.authentication {
                self.d().warn(
                    &n.loc,
                    format!(
                        "({}) authentication is not supported with VRRPv3 - ignoring auth_type {:?}",
                        i.name, a.auth_type
                    ),
                );
                i.authentication = None;
            }
        }
        if i.nopreempt && i.state == VrrpState::Master {
            let loc = nopreempt_loc.or(state_loc).unwrap_or_else(|| n.loc.clone());
            self.d().warn(
                &loc,
                format!(
                    "({}) nopreempt requires state BACKUP - ignoring nopreempt",
                    i.name
                ),
            );
            i.nopreempt = false;
        }
        let vrid_loc = match vrid_loc {
            Some(l) => l,
            None => {
                self.d().error(
                    &n.loc,
                    format!("vrrp_instance {}: no virtual_router_id given", i.name),
                );
                n.loc.clone()
            }
        };
        if i.interface.is_none() {
            self.d().warn(
                &n.loc,
                format!("vrrp_instance {}: no interface given", i.name),
            );
        }
        Some((i, vrid_loc, ts_locs))
    }
}

/// A vrrp_instance as it is read: the instance, and what is settled once
/// the whole block is read.
struct InstanceDraft {
    i: VrrpInstance,
    vrid_loc: Option<Location>,
    state: Option<VrrpState>,
    priority: Option<u8>,
    strict: bool,
    ts_locs: Vec<Location>,
    state_loc: Option<Location>,
    nopreempt_loc: Option<Location>,
    auth_type: Option<AuthType>,
    auth_pass: Option<String>,
}

const VRRP_INSTANCE: &Keywords<InstanceDraft> = &[
    ("", Read::Notify(|b| &mut b.i.notify)),
    ("garp_", Garp(|b| &mut b.i.garp)),
    (
        "state",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "state") {
                b.state_loc = Some(a.loc.clone());
                match a.text.as_str() {
                    "MASTER" => b.state = Some(VrrpState::Master),
                    "BACKUP" => b.state = Some(VrrpState::Backup),
                    o => c.d().error(
                        &a.loc,
                        format!("state: unknown state '{o}' (MASTER or BACKUP)"),
                    ),
                }
            }
        }),
    ),
    (
        "interface",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "interface name") {
                if a.text.len() >= 16 {
                    c.d()
                        .error(&a.loc, format!("interface: name '{}' is too long", a.text));
                }
                b.i.interface = Some(a.text.clone());
            }
        }),
    ),
    (
        "virtual_router_id",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "VRID") {
                b.vrid_loc = Some(a.loc.clone());
                match a.text.parse::<u32>() {
                    Ok(v) if (1..=255).contains(&v) => b.i.virtual_router_id = v as u8,
                    _ => c.d().error(
                        &a.loc,
                        format!(
                            "virtual_router_id: VRID '{}' not valid - must be between 1 & 255",
                            a.text
                        ),
                    ),
                }
            }
        }),
    ),
    (
        "priority",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "priority") {
                match a.text.parse::<u32>() {
                    Ok(v) if (1..=255).contains(&v) => b.priority = Some(v as u8),
                    _ => c.d().error(
                        &a.loc,
                        format!("priority: '{}' not valid - must be between 1 & 255", a.text),
                    ),
                }
            }
        }),
    ),
    (
        "advert_int",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "interval") {
                match parse_duration(&a.text) {
                    Some(d) if d >= Duration::from_millis(10) && d <= Duration::from_secs(255) => {
                        b.i.advert_int = d
                    }
                    _ => c.d().error(
                        &a.loc,
                        format!(
                            "advert_int: '{}' not valid - must be 0.01 to 255 seconds",
                            a.text
                        ),
                    ),
                }
            }
        }),
    ),
    (
        "version",
        With(|c, s, b| {
            if let Some(v) = c.v.one_uint(s, 2, 3) {
                b.i.version = v as u8;
            }
        }),
    ),
    (
        "nopreempt",
        With(|_, s, b| {
            b.i.nopreempt = true;
            b.nopreempt_loc = Some(s.loc.clone());
        }),
    ),
    ("preempt", With(|_, _, b| b.i.nopreempt = false)),
    (
        "preempt_delay",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "delay") {
                match parse_duration(&a.text) {
                    Some(d) if d <= Duration::from_secs(1000) => b.i.preempt_delay = d,
                    _ => c.d().error(
                        &a.loc,
                        format!(
                            "preempt_delay: '{}' not valid - must be 0-1000 seconds",
                            a.text
                        ),
                    ),
                }
            }
        }),
    ),
    (
        "authentication",
        With(|c, s, b| {
            let block = c.block(s);
            c.read(block, AUTHENTICATION, b)
        }),
    ),
    (
        "virtual_ipaddress",
        With(|c, s, b| {
            let v = c.vips(s);
            b.i.virtual_ipaddress.extend(v);
        }),
    ),
    (
        "virtual_ipaddress_excluded",
        With(|c, s, b| {
            let v = c.vips(s);
            b.i.virtual_ipaddress_excluded.extend(v);
        }),
    ),
    (
        "track_interface",
        With(|c, s, b| c.track_interfaces(s, &mut b.i.track_interface)),
    ),
    (
        "track_script",
        With(|c, s, b| c.track_scripts(s, &mut b.i.track_script, &mut b.ts_locs)),
    ),
    (
        "unicast_src_ip",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "address") {
                b.i.unicast_src_ip = c.v.ip(a, &s.key);
            }
        }),
    ),
    (
        "mcast_src_ip",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "address") {
                b.i.mcast_src_ip = c.v.ip(a, &s.key);
            }
        }),
    ),
    (
        "unicast_peer",
        With(|c, s, b| {
            for e in c.block(s) {
                match parse_ip(&e.key) {
                    Some(ip) => b.i.unicast_peer.push(ip),
                    None => c.d().error(
                        &e.loc,
                        format!("unicast_peer: invalid IP address '{}'", e.key),
                    ),
                }
                if let Some(opt) = e.args.first() {
                    c.d().warn(
                        &opt.loc,
                        format!(
                            "unicast_peer: option '{}' is not supported - ignoring",
                            opt.text
                        ),
                    );
                }
            }
        }),
    ),
    ("smtp_alert", With(|c, s, b| b.i.smtp_alert = c.v.flag(s))),
    (
        "lvs_sync_daemon_interface",
        With(|c, s, b| {
            c.d().warn(
                &s.loc,
                "lvs_sync_daemon_interface is deprecated - use global_defs lvs_sync_daemon",
            );
            if let Some(a) = c.v.one(s, "interface") {
                b.i.lvs_sync_daemon_interface = Some(a.text.clone());
            }
        }),
    ),
    (
        "dont_track_primary",
        With(|c, s, b| b.i.dont_track_primary = c.v.flag(s)),
    ),
    ("strict_mode", With(|c, s, b| b.strict = c.v.flag(s))),
    ("accept", With(|_, _, b| b.i.accept = Some(true))),
    ("no_accept", With(|_, _, b| b.i.accept = Some(false))),
    (
        "use_vmac",
        With(|_, s, b| {
            b.i.use_vmac = Some(
                s.args
                    .first()
                    .map(|a| a.text.clone())
                    .unwrap_or_else(|| format!("vrrp.{}", b.i.virtual_router_id)),
            )
        }),
    ),
    ("debug", NoEffect),
    ("skip_check_adv_addr", NoEffect),
    ("promote_secondaries", NoEffect),
    ("notify_priority_changes", NoEffect),
    ("unicast_ttl", NoEffect),
    ("check_unicast_src", NoEffect),
    ("native_ipv6", NoEffect),
    ("lower_prio_no_advert", NoEffect),
    ("higher_prio_send_advert", NoEffect),
    ("down_timer_adverts", NoEffect),
    ("vmac_xmit_base", NoEffect),
    ("kernel_rx_buf_size", NoEffect),
    ("virtual_routes", Unsupported),
    ("virtual_rules", Unsupported),
    ("track_file", Unsupported),
    ("track_process", Unsupported),
    ("track_bfd", Unsupported),
    ("use_vmac_addr", Unsupported),
    ("use_ipvlan", Unsupported),
    ("vmac_garp_intvl", Unsupported),
    ("garp_extra_if", Unsupported),
    ("notify_deleted", Unsupported),
    ("notify_master_rx_lower_pri", Unsupported),
    ("mcast_dst_ip", Unsupported),
    ("track_src_ip", Unsupported),
    ("vrf", Unsupported),
    ("linkbeat_use_polling", Unsupported),
    ("unicast_fault_no_peer", Unsupported),
    ("old_unicast_checksum", Unsupported),
];

const AUTHENTICATION: &Keywords<InstanceDraft> = &[
    (
        "auth_type",
        With(|c, e, b| {
            if let Some(a) = c.v.one(e, "auth type") {
                match a.text.as_str() {
                    "PASS" => b.auth_type = Some(AuthType::Pass),
                    "AH" => b.auth_type = Some(AuthType::Ah),
                    o => c.d().error(
                        &a.loc,
                        format!("auth_type: unknown type '{o}' (PASS or AH)"),
                    ),
                }
            }
        }),
    ),
    (
        "auth_pass",
        With(|c, e, b| {
            if let Some(a) = c.v.one(e, "password") {
                let mut p = a.text.clone();
                if p.len() > 8 {
                    c.d().warn(&a.loc, "Truncating auth_pass to 8 characters");
                    let mut cut = 8;
                    while !p.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    p.truncate(cut);
                }
                b.auth_pass = Some(p);
            }
        }),
    ),
];

impl Conv<'_> {
    // ------------------------------------------------------------ LVS

    fn addr_range(&mut self, s: &str, loc: &Location, what: &str) -> Option<(IpAddr, IpAddr)> {
        if let Some(ip) = parse_ip(s) {
            return Some((ip, ip));
        }
        // ADDR-LAST: LAST replaces the last octet (IPv4) or group (IPv6).
        let (first_s, last_s) = match s.rsplit_once('-') {
            Some(x) => x,
            None => {
                self.d()
                    .error(loc, format!("{what}: invalid IP address '{s}'"));
                return None;
            }
        };
        let first = match parse_ip(first_s) {
            Some(ip) => ip,
            None => {
                self.d()
                    .error(loc, format!("{what}: invalid IP address '{first_s}'"));
                return None;
            }
        };
        let last = match first {
            IpAddr::V4(a) => last_s.parse::<u8>().ok().map(|l| {
                let o = a.octets();
                IpAddr::V4([o[0], o[1], o[2], l].into())
            }),
            IpAddr::V6(a) => u16::from_str_radix(last_s, 16).ok().map(|l| {
                let mut seg = a.segments();
                seg[7] = l;
                IpAddr::V6(seg.into())
            }),
        };
        match last {
            Some(l) if l >= first => Some((first, l)),
            _ => {
                self.d()
                    .error(loc, format!("{what}: invalid address range '{s}'"));
                None
            }
        }
    }

    fn vs_group(&mut self, n: &Node) -> Option<VirtualServerGroup> {
        let name = self.name(n)?;
        let mut g = VirtualServerGroup {
            name,
            entries: Vec::new(),
        };
        for e in self.block(n) {
            if e.key == "fwmark" {
                if let Some(a) = self.v.one(e, "mark") {
                    if let Some(m) = self.v.uint(a, "fwmark", 1, u32::MAX as u64) {
                        g.entries.push(VsgEntry::Fwmark(m as u32));
                    }
                }
                continue;
            }
            let Some((first, last)) = self.addr_range(&e.key, &e.loc, "virtual_server_group")
            else {
                continue;
            };
            let port = match e.args.first() {
                Some(p) => match self.v.port(p, "virtual_server_group") {
                    Some(p) => p,
                    None => continue,
                },
                None => 0,
            };
            g.entries.push(VsgEntry::Range { first, last, port });
        }
        if g.entries.is_empty() {
            self.d().warn(
                &n.loc,
                format!("virtual server group {} has no entries", g.name),
            );
        }
        Some(g)
    }

    fn laddr_group(&mut self, n: &Node) -> Option<LocalAddressGroup> {
        let name = self.name(n)?;
        let mut g = LocalAddressGroup {
            name,
            ranges: Vec::new(),
        };
        for e in self.block(n) {
            // DPVS writes "ADDR[-LAST] IFNAME"; several addresses may share a line.
            for (w, l) in e.words() {
                if parse_ip(w).is_none() && !w.contains('-') && !g.ranges.is_empty() {
                    // An interface name following an address.
                    if let Some(r) = g.ranges.last_mut() {
                        r.interface = Some(w.to_string());
                    }
                    continue;
                }
                if let Some((first, last)) = self.addr_range(w, l, "local_address_group") {
                    g.ranges.push(LocalAddressRange {
                        first,
                        last,
                        interface: None,
                    });
                }
            }
        }
        if g.ranges.is_empty() {
            self.d().error(
                &n.loc,
                format!("local_address_group {} has no addresses", g.name),
            );
        }
        Some(g)
    }

    fn lb_kind(&mut self, s: &Node) -> Option<LbKind> {
        let a = self.v.arg(s, 0, "forwarding method")?;
        let k = match a.text.as_str() {
            "DR" => LbKind::Dr,
            "NAT" => LbKind::Nat,
            "TUN" => LbKind::Tun,
            "FNAT" | "FULLNAT" => LbKind::FullNat,
            o => {
                self.d().error(
                    &a.loc,
                    format!(
                        "{}: unknown forwarding method '{o}' (DR, NAT, TUN, FNAT)",
                        s.key
                    ),
                );
                return None;
            }
        };
        for extra in &s.args[1..] {
            if k == LbKind::Tun && (extra.text == "type" || extra.text == "ipip") {
                continue;
            }
            self.d().warn(
                &extra.loc,
                format!(
                    "{}: option '{}' is not supported - ignoring",
                    s.key, extra.text
                ),
            );
        }
        Some(k)
    }

    fn virtual_server(&mut self, n: &Node) -> Option<(VirtualServer, Option<Location>)> {
        let first = self.v.arg(n, 0, "address")?;
        let address = match first.text.as_str() {
            "fwmark" => {
                let a = self.v.arg(n, 1, "mark")?;
                VsAddress::Fwmark(
                    self.v
                        .uint(a, "virtual_server fwmark", 1, u32::MAX as u64)?
                        as u32,
                )
            }
            "group" => VsAddress::Group(self.v.arg(n, 1, "group name")?.text.clone()),
            s => {
                let addr = match parse_ip(s) {
                    Some(a) => a,
                    None => {
                        self.d().error(
                            &first.loc,
                            format!("virtual_server: invalid IP address '{s}'"),
                        );
                        return None;
                    }
                };
                let port = match n.args.get(1) {
                    Some(p) => self.v.port(p, "virtual_server")?,
                    None => 0,
                };
                VsAddress::Addr { addr, port }
            }
        };
        let is_fwmark_only = matches!(address, VsAddress::Fwmark(_));
        let mut b = VsDraft {
            vs: VirtualServer {
                address,
                protocol: Protocol::Tcp,
                delay_loop: Duration::from_secs(60),
                scheduler: SchedulerSettings::default(),
                ops: false,
                lb_kind: LbKind::Nat,
                persistence: None,
                persistence_engine: None,
                sorry_server: None,
                inhibit_on_failure: false,
                quorum: 1,
                hysteresis: 0,
                quorum_up: None,
                quorum_down: None,
                alpha: false,
                omega: false,
                ha_suspend: false,
                virtualhost: None,
                laddr_group_name: None,
                real_servers: Vec::new(),
            },
            protocol: None,
            lb_kind: None,
            sched: None,
            flag_nodes: Vec::new(),
            timing: Timing::default(),
            weight: 1,
            p_timeout: None,
            p_gran: None,
            sorry: None,
            sorry_inhibit: false,
            sorry_fwd: None,
            raw_rs: Vec::new(),
            laddr_loc: None,
        };
        let vs_name = vs_display(&b.vs.address);
        let block = self.block(n);
        self.read(block, VIRTUAL_SERVER, &mut b);
        let VsDraft {
            mut vs,
            protocol,
            lb_kind,
            sched,
            flag_nodes,
            timing,
            weight: vs_weight,
            mut p_timeout,
            p_gran,
            sorry,
            sorry_inhibit,
            sorry_fwd,
            raw_rs,
            laddr_loc,
        } = b;
        if let Some(t) = timing.delay_loop {
            vs.delay_loop = t;
        }
        vs.alpha = timing.alpha.unwrap_or(false);
        // Protocol: keepalived 2.2 falls back to UDP (the kernel's default) for
        // an address service without `protocol`.
        vs.protocol = match protocol {
            Some(p) => p,
            None if !is_fwmark_only => {
                self.d().warn(
                    &n.loc,
                    format!("Virtual server {vs_name}: no protocol set - defaulting to UDP"),
                );
                Protocol::Udp
            }
            None => Protocol::Tcp,
        };
        match sched {
            Some(s) => vs.scheduler.name = s,
            None => self.d().warn(
                &n.loc,
                format!("Virtual server {vs_name}: no scheduler set, setting default 'wlc'"),
            ),
        }
        for f in &flag_nodes {
            let fl = &mut vs.scheduler.flags;
            match (f.key.as_str(), vs.scheduler.name) {
                ("flag-1", _) => fl.flag1 = true,
                ("flag-2", _) => fl.flag2 = true,
                ("flag-3", _) => fl.flag3 = true,
                ("sh-port", Scheduler::Sh) => fl.sh_port = true,
                ("sh-fallback", Scheduler::Sh) => fl.sh_fallback = true,
                ("mh-port", Scheduler::Mh) => fl.mh_port = true,
                ("mh-fallback", Scheduler::Mh) => fl.mh_fallback = true,
                ("hashed", Scheduler::Sh | Scheduler::Mh) => {}
                ("hashed", _) => self.v.d.warn(
                    &f.loc,
                    "hashed only applies to the sh and mh schedulers - ignoring",
                ),
                (k, _) => self.v.d.warn(
                    &f.loc,
                    format!("{k} only applies to the {} scheduler - ignoring", &k[..2]),
                ),
            }
        }
        // IPVS keeps three flag bits whose names depend on the scheduler
        // (flag-1 on sh is sh-fallback): keep the canonical names.
        vs.scheduler.flags = crate::ipvsadm::list::sched_flags_from_bits(
            vs.scheduler.name,
            crate::ipvsadm::list::sched_bits(&vs.scheduler.flags),
        );
        if vs.ops && vs.protocol != Protocol::Udp && !is_fwmark_only {
            self.d().warn(
                &n.loc,
                format!("Virtual server {vs_name}: one packet scheduling requires UDP - resetting"),
            );
            vs.ops = false;
        }
        if let (None, Some(_)) = (p_timeout, &p_gran) {
            p_timeout = Some(360);
        }
        if let VsAddress::Addr { port: 0, .. } = vs.address {
            if p_timeout.is_none() {
                self.d().warn(
                    &n.loc,
                    format!("Virtual server {vs_name}: zero port only valid for persistent services - setting"),
                );
                p_timeout = Some(360);
            }
        }
        let v6 = matches!(
            vs.address,
            VsAddress::Addr {
                addr: IpAddr::V6(_),
                ..
            }
        );
        if let Some(timeout) = p_timeout {
            let granularity = match p_gran {
                Some((Netmask::V4(_), loc)) if v6 => {
                    self.d().error(
                        &loc,
                        "persistence_granularity: an IPv6 service needs a prefix length",
                    );
                    Netmask::V6(128)
                }
                Some((Netmask::V6(_), loc)) if !v6 => {
                    self.d().error(
                        &loc,
                        "persistence_granularity: an IPv4 service needs a netmask",
                    );
                    Netmask::V4([255, 255, 255, 255].into())
                }
                Some((m, _)) => m,
                None if v6 => Netmask::V6(128),
                None => Netmask::V4([255, 255, 255, 255].into()),
            };
            vs.persistence = Some(Persistence {
                timeout,
                granularity,
            });
        }
        vs.lb_kind = match lb_kind {
            Some(k) => k,
            None => {
                if !raw_rs.iter().all(|(r, _)| r.fwd.is_some()) || sorry.is_some() {
                    self.d().warn(
                        &n.loc,
                        format!("Virtual server {vs_name}: no forwarding method set, setting default NAT"),
                    );
                }
                LbKind::Nat
            }
        };
        let vs_timing = timing;
        let vs_port = match vs.address {
            VsAddress::Addr { port, .. } => Some(port),
            _ => None,
        };
        let fwmark = matches!(vs.address, VsAddress::Fwmark(_));
        let mut seen: Vec<(IpAddr, u16)> = Vec::new();
        let mut family: Option<bool> = match vs.address {
            VsAddress::Addr { addr, .. } => Some(addr.is_ipv6()),
            _ => None,
        };
        for (r, node_loc) in raw_rs {
            let fwd = r.fwd.unwrap_or(vs.lb_kind);
            let port = resolve_rs_port(
                self.v.d,
                &vs_name,
                vs_port,
                fwmark,
                fwd,
                r.port,
                &node_loc,
                "real server",
            );
            // Only tunnelled servers may differ in family from the service;
            // fwmark and group services take theirs from the first server.
            if fwd != LbKind::Tun {
                match family {
                    None => family = Some(r.addr.is_ipv6()),
                    Some(f) if f != r.addr.is_ipv6() => {
                        self.d().error(
                            &node_loc,
                            format!(
                                "Address family of virtual server {vs_name} and real server {} don't match",
                                r.addr
                            ),
                        );
                        continue;
                    }
                    Some(_) => {}
                }
            }
            if seen.contains(&(r.addr, port)) {
                self.d().warn(
                    &node_loc,
                    format!(
                        "VS {vs_name}: real server {} is duplicated - removing second rs",
                        fmt_addr_port(r.addr, port)
                    ),
                );
                continue;
            }
            seen.push((r.addr, port));
            let rs_timing = r.timing.or(&vs_timing);
            let mut checkers = Vec::new();
            for c in r.checkers {
                let t = c.timing.or(&rs_timing);
                let delay_loop = t.delay_loop.unwrap_or(Duration::from_secs(60));
                let (default_retry, default_dbr) = match &c.kind {
                    CheckerKind::Misc(_) => (0, Some(Duration::from_secs(1))),
                    CheckerKind::Dns(_) => (3, None),
                    CheckerKind::Http(_) => (1, Some(Duration::from_secs(3))),
                    CheckerKind::Tcp => (1, Some(Duration::from_secs(1))),
                };
                let mut common = c.common;
                common.connect_timeout = t.connect_timeout.unwrap_or(Duration::from_secs(5));
                common.retry = t.retry.unwrap_or(default_retry);
                common.delay_loop = delay_loop;
                common.delay_before_retry = t
                    .delay_before_retry
                    .unwrap_or(default_dbr.unwrap_or(delay_loop));
                common.warmup = t.warmup.unwrap_or(delay_loop);
                common.alpha = t.alpha.unwrap_or(false);
                let mut kind = c.kind;
                if let CheckerKind::Http(h) = &mut kind {
                    if h.virtualhost.is_none() {
                        h.virtualhost = r.virtualhost.clone().or_else(|| vs.virtualhost.clone());
                    }
                }
                checkers.push(Checker { kind, common });
            }
            vs.real_servers.push(RealServer {
                addr: r.addr,
                port,
                weight: r.weight.unwrap_or(vs_weight),
                fwd,
                inhibit_on_failure: r.inhibit.unwrap_or(vs.inhibit_on_failure),
                notify_up: r.notify_up,
                notify_down: r.notify_down,
                uthreshold: r.uthreshold,
                lthreshold: r.lthreshold,
                alpha: rs_timing.alpha.unwrap_or(false),
                checkers,
            });
        }
        if let Some((addr, port, loc)) = sorry {
            let fwd = sorry_fwd.unwrap_or(vs.lb_kind);
            if fwd != LbKind::Tun && family.is_some_and(|f| f != addr.is_ipv6()) {
                self.d().error(
                    &loc,
                    format!("Address family of virtual server {vs_name} and sorry server {addr} don't match"),
                );
            }
            let port = resolve_rs_port(
                self.v.d,
                &vs_name,
                vs_port,
                fwmark,
                fwd,
                port,
                &loc,
                "sorry server",
            );
            vs.sorry_server = Some(SorryServer {
                addr,
                port,
                fwd,
                inhibit: sorry_inhibit,
            });
        } else if sorry_inhibit || sorry_fwd.is_some() {
            self.d().warn(
                &n.loc,
                "sorry_server options given without sorry_server - ignoring",
            );
        }
        let weight_sum: u64 = vs.real_servers.iter().map(|r| r.weight as u64).sum();
        if (vs.quorum as u64) > weight_sum {
            self.d().warn(
                &n.loc,
                format!(
                    "quorum {} for {vs_name} exceeds total weight of real servers {weight_sum}, reducing quorum to {weight_sum}",
                    vs.quorum
                ),
            );
            vs.quorum = weight_sum as u32;
        }
        if vs.hysteresis >= vs.quorum && vs.hysteresis > 0 {
            let h = vs.quorum.saturating_sub(1);
            self.d().warn(
                &n.loc,
                format!(
                    "Virtual server {vs_name}: hysteresis {} >= quorum {}; setting hysteresis to {h}",
                    vs.hysteresis, vs.quorum
                ),
            );
            vs.hysteresis = h;
        }
        Some((vs, laddr_loc))
    }

    fn real_server(&mut self, n: &Node) -> Option<RawRs> {
        let a = self.v.arg(n, 0, "address")?;
        let addr = self.v.ip(a, "real_server")?;
        let port = match n.args.get(1) {
            Some(p) => Some(self.v.port(p, "real_server")?).filter(|p| *p != 0),
            None => None,
        };
        let mut r = RawRs {
            addr,
            port,
            weight: None,
            fwd: None,
            inhibit: None,
            notify_up: None,
            notify_down: None,
            uthreshold: 0,
            lthreshold: 0,
            virtualhost: None,
            timing: Timing::default(),
            checkers: Vec::new(),
        };
        let Some(block) = &n.block else {
            return Some(r);
        };
        self.read(block, REAL_SERVER, &mut r);
        if r.lthreshold > 0 && r.uthreshold > 0 && r.lthreshold > r.uthreshold {
            self.d().warn(
                &n.loc,
                format!(
                    "real_server {}: lthreshold {} is above uthreshold {}",
                    addr, r.lthreshold, r.uthreshold
                ),
            );
        }
        Some(r)
    }

    fn checker(&mut self, n: &Node) -> Option<RawChecker> {
        let mut b = CheckerDraft {
            common: CheckerCommon {
                connect_ip: None,
                connect_port: None,
                bindto: None,
                bind_port: None,
                bind_if: None,
                connect_timeout: Duration::ZERO,
                retry: 0,
                delay_before_retry: Duration::ZERO,
                warmup: Duration::ZERO,
                delay_loop: Duration::ZERO,
                alpha: false,
                fwmark: None,
            },
            timing: Timing::default(),
            http: HttpCheck {
                tls: n.key == "SSL_GET",
                urls: Vec::new(),
                virtualhost: None,
                http_protocol: None,
                enable_sni: false,
            },
            misc: MiscCheck {
                path: Script {
                    argv: Vec::new(),
                    user: None,
                },
                timeout: None,
                dynamic: false,
            },
            misc_path: None,
            misc_user: None,
            dns: DnsCheck {
                qtype: "SOA".into(),
                name: ".".into(),
            },
        };
        let table = match n.key.as_str() {
            "TCP_CHECK" => TCP_CHECK,
            "HTTP_GET" | "SSL_GET" => HTTP_GET,
            "MISC_CHECK" => MISC_CHECK,
            _ => DNS_CHECK,
        };
        let misc = n.key == "MISC_CHECK";
        let Some(block) = &n.block else {
            if misc {
                self.d().error(&n.loc, "MISC_CHECK: no misc_path given");
                return None;
            }
            return Some(b.finish(&n.key));
        };
        self.read(block, table, &mut b);
        if misc {
            match b.misc_path.take() {
                Some(mut p) => {
                    p.user = b.misc_user.take();
                    b.misc.path = p;
                }
                None => {
                    self.d().error(&n.loc, "MISC_CHECK: no misc_path given");
                    return None;
                }
            }
        }
        if matches!(n.key.as_str(), "HTTP_GET" | "SSL_GET") && b.http.urls.is_empty() {
            self.d().error(&n.loc, format!("{}: no url given", n.key));
            return None;
        }
        Some(b.finish(&n.key))
    }

    fn url(&mut self, n: &Node) -> Option<HttpUrl> {
        let mut b = UrlDraft {
            u: HttpUrl {
                path: String::new(),
                digest: None,
                status_code: Vec::new(),
                virtualhost: None,
            },
            have_path: false,
        };
        let block = self.block(n);
        self.read(block, URL, &mut b);
        let UrlDraft { mut u, have_path } = b;
        if !have_path {
            self.d().error(&n.loc, "url: no path given");
            return None;
        }
        if u.status_code.is_empty() {
            u.status_code.push(StatusRange { min: 200, max: 299 });
        }
        Some(u)
    }
}

/// A virtual_server as it is read: the service, and what is settled once
/// the whole block is read (defaults, inheritance, checks).
struct VsDraft {
    vs: VirtualServer,
    protocol: Option<Protocol>,
    lb_kind: Option<LbKind>,
    sched: Option<Scheduler>,
    /// Scheduler flag keywords, applied once the scheduler is known.
    flag_nodes: Vec<Node>,
    timing: Timing,
    /// The real servers' default weight.
    weight: u32,
    p_timeout: Option<u32>,
    p_gran: Option<(Netmask, Location)>,
    sorry: Option<(IpAddr, Option<u16>, Location)>,
    sorry_inhibit: bool,
    sorry_fwd: Option<LbKind>,
    raw_rs: Vec<(RawRs, Location)>,
    laddr_loc: Option<Location>,
}

const VIRTUAL_SERVER: &Keywords<VsDraft> = &[
    ("", Read::Timing(|b| &mut b.timing)),
    ("lb_algo", With(|c, s, b| c.lb_algo(s, b))),
    ("lvs_sched", With(|c, s, b| c.lb_algo(s, b))),
    ("hashed", With(|_, s, b| b.flag_nodes.push(s.clone()))),
    ("flag-1", With(|_, s, b| b.flag_nodes.push(s.clone()))),
    ("flag-2", With(|_, s, b| b.flag_nodes.push(s.clone()))),
    ("flag-3", With(|_, s, b| b.flag_nodes.push(s.clone()))),
    ("sh-port", With(|_, s, b| b.flag_nodes.push(s.clone()))),
    ("sh-fallback", With(|_, s, b| b.flag_nodes.push(s.clone()))),
    ("mh-port", With(|_, s, b| b.flag_nodes.push(s.clone()))),
    ("mh-fallback", With(|_, s, b| b.flag_nodes.push(s.clone()))),
    ("ops", With(|_, _, b| b.vs.ops = true)),
    (
        "lb_kind",
        With(|c, s, b| b.lb_kind = c.lb_kind(s).or(b.lb_kind)),
    ),
    (
        "lvs_method",
        With(|c, s, b| b.lb_kind = c.lb_kind(s).or(b.lb_kind)),
    ),
    (
        "persistence_timeout",
        With(|c, s, b| {
            b.p_timeout = match s.args.first() {
                None => Some(360),
                Some(a) => c.v.uint(a, &s.key, 1, 86400 * 31).map(|v| v as u32),
            }
        }),
    ),
    (
        "persistence_granularity",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "netmask") {
                if a.text.contains('.') {
                    if let Some(m) = c.v.ipv4(a, &s.key) {
                        b.p_gran = Some((Netmask::V4(m), a.loc.clone()));
                    }
                } else if let Some(l) = c.v.uint(a, &s.key, 1, 128) {
                    b.p_gran = Some((Netmask::V6(l as u8), a.loc.clone()));
                }
            }
        }),
    ),
    (
        "persistence_engine",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "engine") {
                if a.text == "sip" {
                    b.vs.persistence_engine = Some(a.text.clone());
                } else {
                    c.d().error(
                        &a.loc,
                        format!(
                            "persistence_engine: unknown engine '{}' (IPVS has sip)",
                            a.text
                        ),
                    );
                }
            }
        }),
    ),
    (
        "protocol",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "protocol") {
                match a.text.to_ascii_uppercase().as_str() {
                    "TCP" => b.protocol = Some(Protocol::Tcp),
                    "UDP" => b.protocol = Some(Protocol::Udp),
                    "SCTP" => b.protocol = Some(Protocol::Sctp),
                    _ => c.d().error(
                        &a.loc,
                        format!("protocol: unknown protocol '{}' (TCP, UDP, SCTP)", a.text),
                    ),
                }
            }
        }),
    ),
    (
        "sorry_server",
        With(|c, s, b| {
            if let Some(a) = c.v.arg(s, 0, "address") {
                if let Some(ip) = c.v.ip(a, &s.key) {
                    let port = match s.args.get(1) {
                        Some(p) => c.v.port(p, &s.key),
                        None => None,
                    };
                    b.sorry = Some((ip, port.filter(|p| *p != 0), s.loc.clone()));
                }
            }
        }),
    ),
    (
        "sorry_server_inhibit",
        With(|c, s, b| b.sorry_inhibit = c.v.flag(s)),
    ),
    (
        "sorry_server_lvs_method",
        With(|c, s, b| b.sorry_fwd = c.lb_kind(s)),
    ),
    (
        "inhibit_on_failure",
        With(|c, s, b| b.vs.inhibit_on_failure = c.v.flag(s)),
    ),
    (
        "quorum",
        With(|c, s, b| {
            if let Some(v) = c.v.one_uint(s, 1, u32::MAX as u64) {
                b.vs.quorum = v as u32;
            }
        }),
    ),
    (
        "hysteresis",
        With(|c, s, b| {
            if let Some(v) = c.v.one_uint(s, 0, u32::MAX as u64) {
                b.vs.hysteresis = v as u32;
            }
        }),
    ),
    (
        "quorum_up",
        With(|c, s, b| b.vs.quorum_up = c.v.script(s, &s.args)),
    ),
    (
        "quorum_down",
        With(|c, s, b| b.vs.quorum_down = c.v.script(s, &s.args)),
    ),
    ("omega", With(|c, s, b| b.vs.omega = c.v.flag(s))),
    ("ha_suspend", With(|c, s, b| b.vs.ha_suspend = c.v.flag(s))),
    (
        "virtualhost",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "host name") {
                b.vs.virtualhost = Some(a.text.clone());
            }
        }),
    ),
    (
        "weight",
        With(|c, s, b| {
            if let Some(v) = c.v.one_uint(s, 0, 65535) {
                b.weight = v as u32;
            }
        }),
    ),
    (
        "laddr_group_name",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "group name") {
                b.vs.laddr_group_name = Some(a.text.clone());
                b.laddr_loc = Some(a.loc.clone());
            }
        }),
    ),
    (
        "real_server",
        With(|c, s, b| {
            if let Some(r) = c.real_server(s) {
                b.raw_rs.push((r, s.loc.clone()));
            }
        }),
    ),
    (
        "ip_family",
        With(|c, s, _| {
            if let Some(a) = c.v.one(s, "family") {
                if a.text != "inet" && a.text != "inet6" {
                    c.d().error(
                        &a.loc,
                        format!("ip_family: unknown family '{}' (inet, inet6)", a.text),
                    );
                }
            }
        }),
    ),
    ("smtp_alert", NoEffect),
    ("snmp_name", NoEffect),
];

const REAL_SERVER: &Keywords<RawRs> = &[
    ("", Read::Timing(|r| &mut r.timing)),
    (
        "weight",
        With(|c, s, r| {
            if let Some(v) = c.v.one_uint(s, 0, 65535) {
                r.weight = Some(v as u32);
            }
        }),
    ),
    ("lvs_method", With(|c, s, r| r.fwd = c.lb_kind(s))),
    ("lb_kind", With(|c, s, r| r.fwd = c.lb_kind(s))),
    (
        "inhibit_on_failure",
        With(|c, s, r| r.inhibit = Some(c.v.flag(s))),
    ),
    (
        "notify_up",
        With(|c, s, r| r.notify_up = c.v.script(s, &s.args)),
    ),
    (
        "notify_down",
        With(|c, s, r| r.notify_down = c.v.script(s, &s.args)),
    ),
    (
        "uthreshold",
        With(|c, s, r| {
            if let Some(v) = c.v.one_uint(s, 0, u32::MAX as u64) {
                r.uthreshold = v as u32;
            }
        }),
    ),
    (
        "lthreshold",
        With(|c, s, r| {
            if let Some(v) = c.v.one_uint(s, 0, u32::MAX as u64) {
                r.lthreshold = v as u32;
            }
        }),
    ),
    (
        "virtualhost",
        With(|c, s, r| {
            if let Some(a) = c.v.one(s, "host name") {
                r.virtualhost = Some(a.text.clone());
            }
        }),
    ),
    ("TCP_CHECK", With(|c, s, b| c.add_checker(s, b))),
    ("HTTP_GET", With(|c, s, b| c.add_checker(s, b))),
    ("SSL_GET", With(|c, s, b| c.add_checker(s, b))),
    ("MISC_CHECK", With(|c, s, b| c.add_checker(s, b))),
    ("DNS_CHECK", With(|c, s, b| c.add_checker(s, b))),
    ("SMTP_CHECK", With(|c, s, b| c.unsupported_checker(s, b))),
    ("UDP_CHECK", With(|c, s, b| c.unsupported_checker(s, b))),
    ("PING_CHECK", With(|c, s, b| c.unsupported_checker(s, b))),
    ("FILE_CHECK", With(|c, s, b| c.unsupported_checker(s, b))),
    ("BFD_CHECK", With(|c, s, b| c.unsupported_checker(s, b))),
    ("smtp_alert", NoEffect),
    ("snmp_name", NoEffect),
];

/// A checker as it is read; the settings of every kind are at hand, the
/// checker's keyword table says which of them a block can set.
struct CheckerDraft {
    common: CheckerCommon,
    timing: Timing,
    http: HttpCheck,
    misc: MiscCheck,
    misc_path: Option<Script>,
    misc_user: Option<ScriptUser>,
    dns: DnsCheck,
}

impl CheckerDraft {
    /// The checker a block of keyword `key` describes.
    fn finish(self, key: &str) -> RawChecker {
        let kind = match key {
            "TCP_CHECK" => CheckerKind::Tcp,
            "HTTP_GET" | "SSL_GET" => CheckerKind::Http(self.http),
            "MISC_CHECK" => CheckerKind::Misc(self.misc),
            _ => CheckerKind::Dns(self.dns),
        };
        RawChecker {
            kind,
            common: self.common,
            timing: self.timing,
        }
    }
}

/// What every checker knows.
const CHECKER: &Keywords<CheckerDraft> = &[
    ("", Read::Timing(|b| &mut b.timing)),
    (
        "connect_ip",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "address") {
                b.common.connect_ip = c.v.ip(a, &s.key);
            }
        }),
    ),
    (
        "connect_port",
        With(|c, s, b| {
            if let Some(v) = c.v.one_uint(s, 1, 65535) {
                b.common.connect_port = Some(v as u16);
            }
        }),
    ),
    (
        "bindto",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "address") {
                b.common.bindto = c.v.ip(a, &s.key);
            }
        }),
    ),
    (
        "bind_port",
        With(|c, s, b| {
            if let Some(v) = c.v.one_uint(s, 1, 65535) {
                b.common.bind_port = Some(v as u16);
            }
        }),
    ),
    (
        "bind_if",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "interface") {
                b.common.bind_if = Some(a.text.clone());
            }
        }),
    ),
    (
        "fwmark",
        With(|c, s, b| {
            if let Some(v) = c.v.one_uint(s, 1, u32::MAX as u64) {
                b.common.fwmark = Some(v as u32);
            }
        }),
    ),
    ("log_all_failures", NoEffect),
];

const TCP_CHECK: &Keywords<CheckerDraft> = &[
    (
        "nb_get_retry",
        With(|c, s, b| {
            // keepalived 2.2.7 no longer knows it here; older configs use it.
            c.d().warn(
                &s.loc,
                "nb_get_retry is deprecated (keepalived 2.2 ignores it in TCP_CHECK) - taken as retry",
            );
            c.retry(s, &mut b.timing);
        }),
    ),
    ("", Table(CHECKER)),
];

/// HTTP_GET and SSL_GET.
const HTTP_GET: &Keywords<CheckerDraft> = &[
    ("", Table(CHECKER)),
    (
        "url",
        With(|c, s, b| {
            if let Some(u) = c.url(s) {
                b.http.urls.push(u);
            }
        }),
    ),
    (
        "virtualhost",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "host name") {
                b.http.virtualhost = Some(a.text.clone());
            }
        }),
    ),
    (
        "http_protocol",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "protocol") {
                match a.text.as_str() {
                    "1.0" | "1.1" | "1.0C" | "1.0c" => b.http.http_protocol = Some(a.text.clone()),
                    o => c.d().error(
                        &a.loc,
                        format!("http_protocol: unknown version '{o}' (1.0, 1.0C, 1.1)"),
                    ),
                }
            }
        }),
    ),
    (
        "enable_sni",
        With(|c, s, b| b.http.enable_sni = c.v.flag(s)),
    ),
    ("fast_recovery", NoEffect),
];

const MISC_CHECK: &Keywords<CheckerDraft> = &[
    ("", Table(CHECKER)),
    (
        "misc_path",
        With(|c, s, b| b.misc_path = c.v.script(s, &s.args)),
    ),
    (
        "misc_timeout",
        With(|c, s, b| b.misc.timeout = c.v.one_duration(s)),
    ),
    ("misc_dynamic", With(|c, s, b| b.misc.dynamic = c.v.flag(s))),
    ("user", With(|c, s, b| b.misc_user = c.v.script_user(s))),
];

const DNS_CHECK: &Keywords<CheckerDraft> = &[
    ("", Table(CHECKER)),
    (
        "type",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "query type") {
                let t = a.text.to_ascii_uppercase();
                if ["A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA"].contains(&t.as_str()) {
                    b.dns.qtype = t;
                } else {
                    c.d()
                        .error(&a.loc, format!("type: unknown DNS query type '{}'", a.text));
                }
            }
        }),
    ),
    (
        "name",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "query name") {
                b.dns.name = a.text.clone();
            }
        }),
    ),
];

/// An HTTP checker's url block as it is read.
struct UrlDraft {
    u: HttpUrl,
    have_path: bool,
}

const URL: &Keywords<UrlDraft> = &[
    (
        "path",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "path") {
                b.u.path = a.text.clone();
                b.have_path = true;
            }
        }),
    ),
    (
        "digest",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "digest") {
                if a.text.len() == 32 && a.text.bytes().all(|b| b.is_ascii_hexdigit()) {
                    b.u.digest = Some(a.text.to_ascii_lowercase());
                } else {
                    c.d().error(
                        &a.loc,
                        format!(
                            "digest: '{}' is not an MD5 hex digest (32 hex digits)",
                            a.text
                        ),
                    );
                }
            }
        }),
    ),
    ("status_code", With(|c, s, b| c.status_code(s, b))),
    (
        "virtualhost",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "host name") {
                b.u.virtualhost = Some(a.text.clone());
            }
        }),
    ),
    ("regex", Unsupported),
    ("regex_no_match", Unsupported),
    ("regex_options", Unsupported),
    ("regex_min_offset", Unsupported),
    ("regex_max_offset", Unsupported),
    ("regex_stack", Unsupported),
];

impl Conv<'_> {
    fn lb_algo(&mut self, s: &Node, b: &mut VsDraft) {
        if let Some(a) = self.v.one(s, "scheduler") {
            match a.text.parse::<Scheduler>() {
                Ok(v) => b.sched = Some(v),
                Err(e) => self.d().error(&a.loc, format!("{}: {e}", s.key)),
            }
        }
    }

    fn add_checker(&mut self, s: &Node, r: &mut RawRs) {
        if let Some(c) = self.checker(s) {
            r.checkers.push(c);
        }
    }

    fn unsupported_checker(&mut self, s: &Node, _: &mut RawRs) {
        self.d().warn(
            &s.loc,
            format!(
                "{} is not supported by ferrovs - ignoring (the real server is not checked by it)",
                s.key
            ),
        )
    }

    fn status_code(&mut self, s: &Node, b: &mut UrlDraft) {
        if s.args.is_empty() {
            self.d().error(&s.loc, "status_code: missing value");
        }
        for a in &s.args {
            let (lo, hi) = match a.text.split_once('-') {
                Some((l, h)) => (l, h),
                None => (a.text.as_str(), a.text.as_str()),
            };
            match (lo.parse::<u16>(), hi.parse::<u16>()) {
                (Ok(l), Ok(h)) if (100..=599).contains(&l) && (l..=599).contains(&h) => {
                    b.u.status_code.push(StatusRange { min: l, max: h })
                }
                _ => self.d().error(
                    &a.loc,
                    format!(
                        "status_code: '{}' is not a status code or range in 100-599",
                        a.text
                    ),
                ),
            }
        }
    }
}

struct RawRs {
    addr: IpAddr,
    port: Option<u16>,
    weight: Option<u32>,
    fwd: Option<LbKind>,
    inhibit: Option<bool>,
    notify_up: Option<Script>,
    notify_down: Option<Script>,
    uthreshold: u32,
    lthreshold: u32,
    virtualhost: Option<String>,
    timing: Timing,
    checkers: Vec<RawChecker>,
}

/// keepalived's port rules: NAT keeps its port (missing → service port); DR
/// and TUN cannot change the port (reset, with a warning); fwmark services
/// use port 0 unless NAT.
#[allow(clippy::too_many_arguments)]
fn resolve_rs_port(
    d: &mut Diagnostics,
    vs_name: &str,
    vs_port: Option<u16>,
    fwmark: bool,
    fwd: LbKind,
    port: Option<u16>,
    loc: &Location,
    what: &str,
) -> u16 {
    let remaps = matches!(fwd, LbKind::Nat | LbKind::FullNat);
    match vs_port {
        Some(vp) => match port {
            None => vp,
            Some(p) if remaps || p == vp => p,
            Some(p) => {
                d.warn(
                    loc,
                    format!("virtual server {vs_name} and {what} port {p} don't match - resetting to {vp}"),
                );
                vp
            }
        },
        None if fwmark && !remaps => {
            if let Some(p) = port {
                d.warn(
                    loc,
                    format!(
                        "fwmark virtual server {vs_name}, {what} has port {p} specified - clearing"
                    ),
                );
            }
            0
        }
        // groups: the port goes with each group entry; keep what was given.
        None => port.unwrap_or(0),
    }
}

pub fn fmt_addr_port(a: IpAddr, port: u16) -> String {
    match a {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

pub fn vs_display(a: &VsAddress) -> String {
    match a {
        VsAddress::Addr { addr, port } => fmt_addr_port(*addr, *port),
        VsAddress::Fwmark(m) => format!("FWM {m}"),
        VsAddress::Group(g) => format!("[{g}]"),
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
