//! keepalived.conf statements → typed model, with keepalived 2.2's defaults
//! and its inheritance rules (virtual_server → real_server → checker).

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

const UNSUPPORTED_ROOT: &[&str] = &[
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "track_group",
    "garp_group",
    "linkbeat_interfaces",
    "vrrp_track_process",
    "vrrp_track_file",
    "track_file",
    "bfd_instance",
    "SSL",
    "interface_up_down_delays",
    "net_namespace",
    "namespace_with_ipsets",
    "instance",
    "use_pid_dir",
];

/// vrrp_instance keywords keepalived knows that ferrovs does not implement.
const UNSUPPORTED_INSTANCE: &[&str] = &[
    "virtual_routes",
    "virtual_rules",
    "track_file",
    "track_process",
    "track_bfd",
    "use_vmac_addr",
    "use_ipvlan",
    "vmac_garp_intvl",
    "garp_extra_if",
    "notify_deleted",
    "notify_master_rx_lower_pri",
    "mcast_dst_ip",
    "track_src_ip",
    "vrf",
    "linkbeat_use_polling",
    "unicast_fault_no_peer",
    "old_unicast_checksum",
];

/// Converts the statement tree into a [`Config`].
pub fn convert(nodes: &[Node], d: &mut Diagnostics) -> (Config, Locations) {
    let mut cfg = Config::default();
    let mut locs = Locations::default();
    let mut c = Conv { v: Vals { d } };
    // global_defs first: instances take their defaults from it wherever it is.
    for n in nodes.iter().filter(|n| n.key == "global_defs") {
        c.global_defs(n, &mut cfg.global, &mut locs);
    }
    for n in nodes {
        match n.key.as_str() {
            "global_defs" => {}
            "ferrovs" => c.ferrovs(n, &mut cfg.ferrovs),
            "vrrp_script" => {
                if let Some(s) = c.vrrp_script(n) {
                    cfg.vrrp_scripts.push(s);
                    locs.vrrp_scripts.push(n.loc.clone());
                }
            }
            "vrrp_sync_group" => {
                if let Some((g, members)) = c.sync_group(n) {
                    cfg.vrrp_sync_groups.push(g);
                    locs.sync_groups.push(n.loc.clone());
                    locs.sync_group_members.push(members);
                }
            }
            "vrrp_instance" => {
                if let Some((i, vrid_loc, ts)) = c.vrrp_instance(n, &cfg.global) {
                    cfg.vrrp_instances.push(i);
                    locs.vrrp_instances.push(n.loc.clone());
                    locs.vrids.push(vrid_loc);
                    locs.track_scripts.push(ts);
                }
            }
            "virtual_server_group" => {
                if let Some(g) = c.vs_group(n) {
                    cfg.virtual_server_groups.push(g);
                    locs.vs_groups.push(n.loc.clone());
                }
            }
            "local_address_group" => {
                if let Some(g) = c.laddr_group(n) {
                    cfg.local_address_groups.push(g);
                    locs.laddr_groups.push(n.loc.clone());
                }
            }
            "virtual_server" => {
                if let Some((vs, laddr_loc)) = c.virtual_server(n) {
                    cfg.virtual_servers.push(vs);
                    locs.virtual_servers.push(n.loc.clone());
                    locs.laddr_refs.push(laddr_loc);
                }
            }
            k if UNSUPPORTED_ROOT.contains(&k) => c.v.d.warn(
                &n.loc,
                format!("'{k}' is not supported by ferrovs - ignoring"),
            ),
            k => c.unknown(n, k),
        }
    }
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

    fn global_defs(&mut self, n: &Node, g: &mut GlobalDefs, locs: &mut Locations) {
        for s in self.block(n) {
            let k = s.key.as_str();
            match k {
                "router_id" | "lvs_id" => {
                    if let Some(a) = self.v.one(s, "router id") {
                        g.router_id = Some(a.text.clone());
                    }
                }
                "notification_email" => {
                    if let Some(b) = &s.block {
                        for e in b {
                            g.notification_email
                                .extend(e.words().map(|(w, _)| w.to_string()));
                        }
                    } else {
                        g.notification_email
                            .extend(s.args.iter().map(|a| a.text.clone()));
                    }
                }
                "notification_email_from" => {
                    if let Some(a) = self.v.one(s, "address") {
                        g.notification_email_from = Some(a.text.clone());
                    }
                }
                "smtp_server" => {
                    if let Some(a) = self.v.arg(s, 0, "server") {
                        let host = a.text.clone();
                        let port = match s.args.get(1) {
                            Some(p) => self.v.port(p, k).unwrap_or(25),
                            None => 25,
                        };
                        g.smtp_server = Some(SmtpServer { host, port });
                    }
                }
                "smtp_connect_timeout" => {
                    if let Some(v) = self.v.one_uint(s, 1, u32::MAX as u64) {
                        g.smtp_connect_timeout = Duration::from_secs(v);
                    }
                }
                "smtp_helo_name" | "smtp_alert" | "smtp_alert_vrrp" | "smtp_alert_checker" => {}
                "vrrp_mcast_group4" => {
                    if let Some(a) = self.v.one(s, "address") {
                        if let Some(ip) = self.v.ipv4(a, k) {
                            if !ip.is_multicast() {
                                self.d()
                                    .error(&a.loc, format!("{k}: {ip} is not a multicast address"));
                            }
                            g.vrrp_mcast_group4 = ip;
                        }
                    }
                }
                "vrrp_mcast_group6" => {
                    if let Some(a) = self.v.one(s, "address") {
                        if let Some(ip) = self.v.ip(a, k) {
                            g.vrrp_mcast_group6 = ip;
                        }
                    }
                }
                "vrrp_version" => {
                    if let Some(v) = self.v.one_uint(s, 2, 3) {
                        g.vrrp_version = v as u8;
                    }
                }
                "vrrp_garp_master_delay" => {
                    if let Some(v) = self.v.one_uint(s, 0, 255) {
                        g.vrrp_garp.master_delay = Duration::from_secs(v);
                    }
                }
                "vrrp_garp_master_repeat" => {
                    if let Some(v) = self.v.one_uint(s, 1, 255) {
                        g.vrrp_garp.master_repeat = v as u32;
                    }
                }
                "vrrp_garp_master_refresh" => {
                    if let Some(v) = self.v.one_uint(s, 0, u32::MAX as u64) {
                        g.vrrp_garp.master_refresh = Duration::from_secs(v);
                    }
                }
                "vrrp_garp_master_refresh_repeat" => {
                    if let Some(v) = self.v.one_uint(s, 1, 255) {
                        g.vrrp_garp.master_refresh_repeat = v as u32;
                    }
                }
                "vrrp_garp_lower_prio_delay" => {
                    if let Some(v) = self.v.one_uint(s, 0, 255) {
                        g.vrrp_garp.lower_prio_delay = Some(Duration::from_secs(v));
                    }
                }
                "vrrp_garp_lower_prio_repeat" => {
                    if let Some(v) = self.v.one_uint(s, 0, 255) {
                        g.vrrp_garp.lower_prio_repeat = Some(v as u32);
                    }
                }
                "vrrp_garp_interval" => {
                    if let Some(v) = self.v.one_duration(s) {
                        g.vrrp_garp_interval = v;
                    }
                }
                "vrrp_gna_interval" => {
                    if let Some(v) = self.v.one_duration(s) {
                        g.vrrp_gna_interval = v;
                    }
                }
                "vrrp_skip_check_adv_addr" => g.vrrp_skip_check_adv_addr = self.v.flag(s),
                "vrrp_strict" => g.vrrp_strict = self.v.flag(s),
                "script_user" => g.script_user = self.v.script_user(s),
                "enable_script_security" => g.enable_script_security = self.v.flag(s),
                "lvs_timeouts" => {
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
                    g.lvs_timeouts = Some(t);
                }
                "lvs_flush" => g.lvs_flush = self.v.flag(s),
                "lvs_flush_onstop" => g.lvs_flush_onstop = self.v.flag(s),
                "lvs_sync_daemon" => {
                    locs.lvs_sync_daemon = Some(s.loc.clone());
                    g.lvs_sync_daemon = self.lvs_sync_daemon(s);
                }
                "vrrp_iptables"
                | "vrrp_ipsets"
                | "vrrp_check_unicast_src"
                | "vrrp_priority"
                | "checker_priority"
                | "vrrp_no_swap"
                | "checker_no_swap"
                | "enable_traps"
                | "max_auto_priority"
                | "dynamic_interfaces"
                | "no_email_faults"
                | "vrrp_lower_prio_no_advert"
                | "vrrp_higher_prio_send_advert" => self.no_effect(s),
                _ => self.unknown(s, k),
            }
        }
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
        for s in self.block(n) {
            let k = s.key.as_str();
            match k {
                "backend" => {
                    if let Some(a) = self.v.one(s, "backend") {
                        match a.text.as_str() {
                            "afxdp" => f.backend = Backend::Afxdp,
                            "afpacket" => f.backend = Backend::Afpacket,
                            "dpdk" => f.backend = Backend::Dpdk,
                            o => self.d().error(
                                &a.loc,
                                format!("backend: unknown backend '{o}' (afxdp, afpacket or dpdk)"),
                            ),
                        }
                    }
                }
                "workers" => {
                    if let Some(v) = self.v.one_uint(s, 1, 1024) {
                        f.workers = Some(v as u32);
                    }
                }
                "interface" => {
                    if s.args.is_empty() {
                        self.d().error(&s.loc, "interface: missing interface name");
                    }
                    for a in &s.args {
                        if !f.interfaces.contains(&a.text) {
                            f.interfaces.push(a.text.clone());
                        }
                    }
                }
                "dpdk" => {
                    for e in self.block(s) {
                        match e.key.as_str() {
                            "eal_args" => {
                                for a in &e.args {
                                    f.dpdk
                                        .eal_args
                                        .extend(a.text.split_whitespace().map(str::to_string));
                                }
                            }
                            "port" => {
                                if e.args.len() != 2 {
                                    self.d().error(
                                        &e.loc,
                                        "port: expected an interface name and a DPDK device (port IFNAME DEVICE)",
                                    );
                                } else {
                                    let ifname = e.args[0].text.clone();
                                    f.dpdk.ports.retain(|(i, _)| *i != ifname);
                                    f.dpdk.ports.push((ifname, e.args[1].text.clone()));
                                }
                            }
                            "mbufs" => {
                                if let Some(v) = self.v.one_uint(e, 0, 1 << 24) {
                                    f.dpdk.mbufs = v as u32;
                                }
                            }
                            "rx_desc" => {
                                if let Some(v) = self.v.one_uint(e, 64, 32768) {
                                    f.dpdk.rx_desc = v as u16;
                                }
                            }
                            "tx_desc" => {
                                if let Some(v) = self.v.one_uint(e, 64, 32768) {
                                    f.dpdk.tx_desc = v as u16;
                                }
                            }
                            "flow_steering" => {
                                if let Some(a) = self.v.one(e, "flow_steering") {
                                    match a.text.as_str() {
                                        "auto" => f.dpdk.flow_steering = true,
                                        "software" => f.dpdk.flow_steering = false,
                                        o => self.d().error(
                                            &a.loc,
                                            format!("flow_steering: unknown value '{o}' (auto or software)"),
                                        ),
                                    }
                                }
                            }
                            k2 => self.unknown(e, k2),
                        }
                    }
                }
                "http_listen" => {
                    if let Some(a) = self.v.one(s, "address:port") {
                        match a.text.parse() {
                            Ok(sa) => f.http_listen = sa,
                            Err(_) => self.d().error(
                                &a.loc,
                                format!("http_listen: invalid address:port '{}'", a.text),
                            ),
                        }
                    }
                }
                "control_socket" => {
                    if let Some(a) = self.v.one(s, "path") {
                        f.control_socket = a.text.clone().into();
                    }
                }
                "control_socket_group" => {
                    if let Some(a) = self.v.one(s, "group name or gid") {
                        if a.text.is_empty() || a.text.contains(['/', ':']) {
                            self.d().error(
                                &a.loc,
                                format!("control_socket_group: invalid group '{}'", a.text),
                            );
                        } else {
                            f.control_socket_group = Some(a.text.clone());
                        }
                    }
                }
                "conn_table_size" => {
                    if let Some(v) = self.v.one_uint(s, 1, u32::MAX as u64) {
                        f.conn_table_size = v as u32;
                    }
                }
                _ => self.unknown(s, k),
            }
        }
    }

    // ------------------------------------------------------------ VRRP

    fn vrrp_script(&mut self, n: &Node) -> Option<VrrpScript> {
        let name = self.name(n)?;
        let mut script: Option<Script> = None;
        let mut out = VrrpScript {
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
        };
        let mut timeout = None;
        let mut user = None;
        for s in self.block(n) {
            let k = s.key.as_str();
            match k {
                "script" => script = self.v.script(s, &s.args),
                "interval" => {
                    if let Some(v) = self.v.one_duration(s) {
                        if v.is_zero() {
                            self.d().error(loc_of(s, 0), "interval: must be positive");
                        } else {
                            out.interval = v;
                        }
                    }
                }
                "timeout" => timeout = self.v.one_duration(s),
                "weight" => {
                    if let Some(a) = self.v.arg(s, 0, "weight") {
                        if let Some(w) = self.v.int(a, k, -253, 253) {
                            out.weight = w as i32;
                        }
                    }
                    if let Some(r) = s.args.get(1) {
                        if r.text == "reverse" {
                            out.weight_reverse = true;
                        } else {
                            self.d().warn(
                                &r.loc,
                                format!("weight: unknown option '{}' - ignoring", r.text),
                            );
                        }
                    }
                }
                "fall" => {
                    if let Some(v) = self.v.one_uint(s, 1, u32::MAX as u64) {
                        out.fall = v as u32;
                    }
                }
                "rise" => {
                    if let Some(v) = self.v.one_uint(s, 1, u32::MAX as u64) {
                        out.rise = v as u32;
                    }
                }
                "user" => user = self.v.script_user(s),
                "init_fail" => out.init_fail = self.v.flag(s),
                _ => self.unknown(s, k),
            }
        }
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

    fn notify_kw(&mut self, s: &Node, notify: &mut Notify) -> bool {
        let slot = match s.key.as_str() {
            "notify_master" => &mut notify.master,
            "notify_backup" => &mut notify.backup,
            "notify_fault" => &mut notify.fault,
            "notify_stop" => &mut notify.stop,
            "notify" => &mut notify.any,
            _ => return false,
        };
        if slot.is_some() {
            self.v.d.warn(
                &s.loc,
                format!("{} script already specified - ignoring", s.key),
            );
            return true;
        }
        *slot = self.v.script(s, &s.args);
        true
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
        let mut g = SyncGroup {
            name,
            ..SyncGroup::default()
        };
        let mut members = Vec::new();
        let mut _ts = Vec::new();
        for s in self.block(n) {
            let k = s.key.as_str();
            if self.notify_kw(s, &mut g.notify) {
                continue;
            }
            match k {
                "group" => {
                    for e in self.block(s) {
                        for (w, l) in e.words() {
                            g.group.push(w.to_string());
                            members.push(l.clone());
                        }
                    }
                }
                "track_interface" => self.track_interfaces(s, &mut g.track_interface),
                "track_script" => self.track_scripts(s, &mut g.track_script, &mut _ts),
                "smtp_alert" => g.smtp_alert = self.v.flag(s),
                "global_tracking" | "sync_group_tracking_weight" | "notify_priority_changes" => {
                    self.no_effect(s)
                }
                _ => self.unknown(s, k),
            }
        }
        Some((g, members))
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
        let mut i = VrrpInstance {
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
        };
        let mut vrid_loc = None;
        let mut state: Option<VrrpState> = None;
        let mut priority: Option<u8> = None;
        let mut strict = g.vrrp_strict;
        let mut ts_locs = Vec::new();
        let mut state_loc = None;
        let mut nopreempt_loc = None;
        let mut auth_type = None;
        let mut auth_pass = None;
        for s in self.block(n) {
            if self.notify_kw(s, &mut i.notify) {
                continue;
            }
            let k = s.key.as_str();
            match k {
                "state" => {
                    if let Some(a) = self.v.one(s, "state") {
                        state_loc = Some(a.loc.clone());
                        match a.text.as_str() {
                            "MASTER" => state = Some(VrrpState::Master),
                            "BACKUP" => state = Some(VrrpState::Backup),
                            o => self.d().error(
                                &a.loc,
                                format!("state: unknown state '{o}' (MASTER or BACKUP)"),
                            ),
                        }
                    }
                }
                "interface" => {
                    if let Some(a) = self.v.one(s, "interface name") {
                        if a.text.len() >= 16 {
                            self.d()
                                .error(&a.loc, format!("interface: name '{}' is too long", a.text));
                        }
                        i.interface = Some(a.text.clone());
                    }
                }
                "virtual_router_id" => {
                    if let Some(a) = self.v.one(s, "VRID") {
                        vrid_loc = Some(a.loc.clone());
                        match a.text.parse::<u32>() {
                            Ok(v) if (1..=255).contains(&v) => i.virtual_router_id = v as u8,
                            _ => self.d().error(
                                &a.loc,
                                format!(
                                    "virtual_router_id: VRID '{}' not valid - must be between 1 & 255",
                                    a.text
                                ),
                            ),
                        }
                    }
                }
                "priority" => {
                    if let Some(a) = self.v.one(s, "priority") {
                        match a.text.parse::<u32>() {
                            Ok(v) if (1..=255).contains(&v) => priority = Some(v as u8),
                            _ => self.d().error(
                                &a.loc,
                                format!(
                                    "priority: '{}' not valid - must be between 1 & 255",
                                    a.text
                                ),
                            ),
                        }
                    }
                }
                "advert_int" => {
                    if let Some(a) = self.v.one(s, "interval") {
                        match parse_duration(&a.text) {
                            Some(d)
                                if d >= Duration::from_millis(10)
                                    && d <= Duration::from_secs(255) =>
                            {
                                i.advert_int = d
                            }
                            _ => self.d().error(
                                &a.loc,
                                format!(
                                    "advert_int: '{}' not valid - must be 0.01 to 255 seconds",
                                    a.text
                                ),
                            ),
                        }
                    }
                }
                "version" => {
                    if let Some(v) = self.v.one_uint(s, 2, 3) {
                        i.version = v as u8;
                    }
                }
                "nopreempt" => {
                    i.nopreempt = true;
                    nopreempt_loc = Some(s.loc.clone());
                }
                "preempt" => i.nopreempt = false,
                "preempt_delay" => {
                    if let Some(a) = self.v.one(s, "delay") {
                        match parse_duration(&a.text) {
                            Some(d) if d <= Duration::from_secs(1000) => i.preempt_delay = d,
                            _ => self.d().error(
                                &a.loc,
                                format!(
                                    "preempt_delay: '{}' not valid - must be 0-1000 seconds",
                                    a.text
                                ),
                            ),
                        }
                    }
                }
                "authentication" => {
                    for e in self.block(s) {
                        match e.key.as_str() {
                            "auth_type" => {
                                if let Some(a) = self.v.one(e, "auth type") {
                                    match a.text.as_str() {
                                        "PASS" => auth_type = Some(AuthType::Pass),
                                        "AH" => auth_type = Some(AuthType::Ah),
                                        o => self.d().error(
                                            &a.loc,
                                            format!("auth_type: unknown type '{o}' (PASS or AH)"),
                                        ),
                                    }
                                }
                            }
                            "auth_pass" => {
                                if let Some(a) = self.v.one(e, "password") {
                                    let mut p = a.text.clone();
                                    if p.len() > 8 {
                                        self.d()
                                            .warn(&a.loc, "Truncating auth_pass to 8 characters");
                                        let mut cut = 8;
                                        while !p.is_char_boundary(cut) {
                                            cut -= 1;
                                        }
                                        p.truncate(cut);
                                    }
                                    auth_pass = Some(p);
                                }
                            }
                            k2 => self.unknown(e, k2),
                        }
                    }
                }
                "virtual_ipaddress" => {
                    let v = self.vips(s);
                    i.virtual_ipaddress.extend(v);
                }
                "virtual_ipaddress_excluded" => {
                    let v = self.vips(s);
                    i.virtual_ipaddress_excluded.extend(v);
                }
                "track_interface" => self.track_interfaces(s, &mut i.track_interface),
                "track_script" => self.track_scripts(s, &mut i.track_script, &mut ts_locs),
                "unicast_src_ip" => {
                    if let Some(a) = self.v.one(s, "address") {
                        i.unicast_src_ip = self.v.ip(a, k);
                    }
                }
                "mcast_src_ip" => {
                    if let Some(a) = self.v.one(s, "address") {
                        i.mcast_src_ip = self.v.ip(a, k);
                    }
                }
                "unicast_peer" => {
                    for e in self.block(s) {
                        match parse_ip(&e.key) {
                            Some(ip) => i.unicast_peer.push(ip),
                            None => self.d().error(
                                &e.loc,
                                format!("unicast_peer: invalid IP address '{}'", e.key),
                            ),
                        }
                        if let Some(opt) = e.args.first() {
                            self.d().warn(
                                &opt.loc,
                                format!(
                                    "unicast_peer: option '{}' is not supported - ignoring",
                                    opt.text
                                ),
                            );
                        }
                    }
                }
                "smtp_alert" => i.smtp_alert = self.v.flag(s),
                "garp_master_delay" => {
                    if let Some(v) = self.v.one_uint(s, 0, 255) {
                        i.garp.master_delay = Duration::from_secs(v);
                    }
                }
                "garp_master_repeat" => {
                    if let Some(v) = self.v.one_uint(s, 1, 255) {
                        i.garp.master_repeat = v as u32;
                    }
                }
                "garp_master_refresh" => {
                    if let Some(v) = self.v.one_uint(s, 0, u32::MAX as u64) {
                        i.garp.master_refresh = Duration::from_secs(v);
                    }
                }
                "garp_master_refresh_repeat" => {
                    if let Some(v) = self.v.one_uint(s, 1, 255) {
                        i.garp.master_refresh_repeat = v as u32;
                    }
                }
                "garp_lower_prio_delay" => {
                    if let Some(v) = self.v.one_uint(s, 0, 255) {
                        i.garp.lower_prio_delay = Some(Duration::from_secs(v));
                    }
                }
                "garp_lower_prio_repeat" => {
                    if let Some(v) = self.v.one_uint(s, 0, 255) {
                        i.garp.lower_prio_repeat = Some(v as u32);
                    }
                }
                "lvs_sync_daemon_interface" => {
                    self.d().warn(
                        &s.loc,
                        "lvs_sync_daemon_interface is deprecated - use global_defs lvs_sync_daemon",
                    );
                    if let Some(a) = self.v.one(s, "interface") {
                        i.lvs_sync_daemon_interface = Some(a.text.clone());
                    }
                }
                "dont_track_primary" => i.dont_track_primary = self.v.flag(s),
                "strict_mode" => strict = self.v.flag(s),
                "accept" => i.accept = Some(true),
                "no_accept" => i.accept = Some(false),
                "use_vmac" => {
                    i.use_vmac = Some(
                        s.args
                            .first()
                            .map(|a| a.text.clone())
                            .unwrap_or_else(|| format!("vrrp.{}", i.virtual_router_id)),
                    )
                }
                "debug"
                | "skip_check_adv_addr"
                | "promote_secondaries"
                | "notify_priority_changes"
                | "unicast_ttl"
                | "check_unicast_src"
                | "native_ipv6"
                | "lower_prio_no_advert"
                | "higher_prio_send_advert"
                | "down_timer_adverts"
                | "vmac_xmit_base"
                | "kernel_rx_buf_size" => self.no_effect(s),
                k if UNSUPPORTED_INSTANCE.contains(&k) => self.d().warn(
                    &s.loc,
                    format!("'{k}' is not supported by ferrovs - ignoring"),
                ),
                _ => self.unknown(s, k),
            }
        }
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

    /// Timing keywords shared by virtual_server, real_server and checkers.
    fn timing_kw(&mut self, s: &Node, t: &mut Timing) -> bool {
        match s.key.as_str() {
            "connect_timeout" => t.connect_timeout = self.v.one_duration(s).or(t.connect_timeout),
            "delay_loop" => {
                if let Some(d) = self.v.one_duration(s) {
                    if d.is_zero() {
                        self.d().error(loc_of(s, 0), "delay_loop: must be positive");
                    } else {
                        t.delay_loop = Some(d);
                    }
                }
            }
            "delay_before_retry" => {
                t.delay_before_retry = self.v.one_duration(s).or(t.delay_before_retry)
            }
            "warmup" => t.warmup = self.v.one_duration(s).or(t.warmup),
            "retry" => {
                if let Some(v) = self.v.one_uint(s, 0, u32::MAX as u64) {
                    t.retry = Some(v as u32);
                }
            }
            "nb_get_retry" => {
                self.v.d.warn(
                    &s.loc,
                    "nb_get_retry is deprecated - use retry (taken as retry)",
                );
                if let Some(v) = self.v.one_uint(s, 0, u32::MAX as u64) {
                    t.retry = Some(v as u32);
                }
            }
            "alpha" => t.alpha = Some(self.v.flag(s)),
            _ => return false,
        }
        true
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
        let mut vs = VirtualServer {
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
        };
        let vs_name = vs_display(&vs.address);
        let mut protocol: Option<Protocol> = None;
        let mut lb_kind: Option<LbKind> = None;
        let mut sched: Option<Scheduler> = None;
        let mut flag_nodes: Vec<&Node> = Vec::new();
        let mut timing = Timing::default();
        let mut vs_weight: u32 = 1;
        let mut p_timeout: Option<u32> = None;
        let mut p_gran: Option<(Netmask, Location)> = None;
        let mut sorry: Option<(IpAddr, Option<u16>, Location)> = None;
        let mut sorry_inhibit = false;
        let mut sorry_fwd: Option<LbKind> = None;
        let mut raw_rs: Vec<(RawRs, &Node)> = Vec::new();
        let mut laddr_loc = None;
        for s in self.block(n) {
            if self.timing_kw(s, &mut timing) {
                continue;
            }
            let k = s.key.as_str();
            match k {
                "lb_algo" | "lvs_sched" => {
                    if let Some(a) = self.v.one(s, "scheduler") {
                        match a.text.parse::<Scheduler>() {
                            Ok(v) => sched = Some(v),
                            Err(e) => self.d().error(&a.loc, format!("{k}: {e}")),
                        }
                    }
                }
                "hashed" | "flag-1" | "flag-2" | "flag-3" | "sh-port" | "sh-fallback"
                | "mh-port" | "mh-fallback" => flag_nodes.push(s),
                "ops" => vs.ops = true,
                "lb_kind" | "lvs_method" => lb_kind = self.lb_kind(s).or(lb_kind),
                "persistence_timeout" => {
                    p_timeout = match s.args.first() {
                        None => Some(360),
                        Some(a) => self.v.uint(a, k, 1, 86400 * 31).map(|v| v as u32),
                    }
                }
                "persistence_granularity" => {
                    if let Some(a) = self.v.one(s, "netmask") {
                        if a.text.contains('.') {
                            if let Some(m) = self.v.ipv4(a, k) {
                                p_gran = Some((Netmask::V4(m), a.loc.clone()));
                            }
                        } else if let Some(l) = self.v.uint(a, k, 1, 128) {
                            p_gran = Some((Netmask::V6(l as u8), a.loc.clone()));
                        }
                    }
                }
                "persistence_engine" => {
                    if let Some(a) = self.v.one(s, "engine") {
                        if a.text == "sip" {
                            vs.persistence_engine = Some(a.text.clone());
                        } else {
                            self.d().error(
                                &a.loc,
                                format!(
                                    "persistence_engine: unknown engine '{}' (IPVS has sip)",
                                    a.text
                                ),
                            );
                        }
                    }
                }
                "protocol" => {
                    if let Some(a) = self.v.one(s, "protocol") {
                        match a.text.to_ascii_uppercase().as_str() {
                            "TCP" => protocol = Some(Protocol::Tcp),
                            "UDP" => protocol = Some(Protocol::Udp),
                            "SCTP" => protocol = Some(Protocol::Sctp),
                            _ => self.d().error(
                                &a.loc,
                                format!("protocol: unknown protocol '{}' (TCP, UDP, SCTP)", a.text),
                            ),
                        }
                    }
                }
                "sorry_server" => {
                    if let Some(a) = self.v.arg(s, 0, "address") {
                        if let Some(ip) = self.v.ip(a, k) {
                            let port = match s.args.get(1) {
                                Some(p) => self.v.port(p, k),
                                None => None,
                            };
                            sorry = Some((ip, port.filter(|p| *p != 0), s.loc.clone()));
                        }
                    }
                }
                "sorry_server_inhibit" => sorry_inhibit = self.v.flag(s),
                "sorry_server_lvs_method" => sorry_fwd = self.lb_kind(s),
                "inhibit_on_failure" => vs.inhibit_on_failure = self.v.flag(s),
                "quorum" => {
                    if let Some(v) = self.v.one_uint(s, 1, u32::MAX as u64) {
                        vs.quorum = v as u32;
                    }
                }
                "hysteresis" => {
                    if let Some(v) = self.v.one_uint(s, 0, u32::MAX as u64) {
                        vs.hysteresis = v as u32;
                    }
                }
                "quorum_up" => vs.quorum_up = self.v.script(s, &s.args),
                "quorum_down" => vs.quorum_down = self.v.script(s, &s.args),
                "omega" => vs.omega = self.v.flag(s),
                "ha_suspend" => vs.ha_suspend = self.v.flag(s),
                "virtualhost" => {
                    if let Some(a) = self.v.one(s, "host name") {
                        vs.virtualhost = Some(a.text.clone());
                    }
                }
                "weight" => {
                    if let Some(v) = self.v.one_uint(s, 0, 65535) {
                        vs_weight = v as u32;
                    }
                }
                "laddr_group_name" => {
                    if let Some(a) = self.v.one(s, "group name") {
                        vs.laddr_group_name = Some(a.text.clone());
                        laddr_loc = Some(a.loc.clone());
                    }
                }
                "real_server" => {
                    if let Some(r) = self.real_server(s) {
                        raw_rs.push((r, s));
                    }
                }
                "ip_family" => {
                    if let Some(a) = self.v.one(s, "family") {
                        if a.text != "inet" && a.text != "inet6" {
                            self.d().error(
                                &a.loc,
                                format!("ip_family: unknown family '{}' (inet, inet6)", a.text),
                            );
                        }
                    }
                }
                "smtp_alert" | "snmp_name" => self.no_effect(s),
                _ => self.unknown(s, k),
            }
        }
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
        for f in flag_nodes {
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
        for (r, node) in raw_rs {
            let fwd = r.fwd.unwrap_or(vs.lb_kind);
            let port = resolve_rs_port(
                self.v.d,
                &vs_name,
                vs_port,
                fwmark,
                fwd,
                r.port,
                &node.loc,
                "real server",
            );
            // Only tunnelled servers may differ in family from the service;
            // fwmark and group services take theirs from the first server.
            if fwd != LbKind::Tun {
                match family {
                    None => family = Some(r.addr.is_ipv6()),
                    Some(f) if f != r.addr.is_ipv6() => {
                        self.d().error(
                            &node.loc,
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
                    &node.loc,
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
        for s in block {
            if self.timing_kw(s, &mut r.timing) {
                continue;
            }
            let k = s.key.as_str();
            match k {
                "weight" => {
                    if let Some(v) = self.v.one_uint(s, 0, 65535) {
                        r.weight = Some(v as u32);
                    }
                }
                "lvs_method" | "lb_kind" => r.fwd = self.lb_kind(s),
                "inhibit_on_failure" => r.inhibit = Some(self.v.flag(s)),
                "notify_up" => r.notify_up = self.v.script(s, &s.args),
                "notify_down" => r.notify_down = self.v.script(s, &s.args),
                "uthreshold" => {
                    if let Some(v) = self.v.one_uint(s, 0, u32::MAX as u64) {
                        r.uthreshold = v as u32;
                    }
                }
                "lthreshold" => {
                    if let Some(v) = self.v.one_uint(s, 0, u32::MAX as u64) {
                        r.lthreshold = v as u32;
                    }
                }
                "virtualhost" => {
                    if let Some(a) = self.v.one(s, "host name") {
                        r.virtualhost = Some(a.text.clone());
                    }
                }
                "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK" | "DNS_CHECK" => {
                    if let Some(c) = self.checker(s) {
                        r.checkers.push(c);
                    }
                }
                "SMTP_CHECK" | "UDP_CHECK" | "PING_CHECK" | "FILE_CHECK" | "BFD_CHECK" => {
                    self.d().warn(
                        &s.loc,
                        format!("{k} is not supported by ferrovs - ignoring (the real server is not checked by it)"),
                    )
                }
                "smtp_alert" | "snmp_name" => self.no_effect(s),
                _ => self.unknown(s, k),
            }
        }
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
        let mut kind = match n.key.as_str() {
            "TCP_CHECK" => CheckerKind::Tcp,
            "HTTP_GET" | "SSL_GET" => CheckerKind::Http(HttpCheck {
                tls: n.key == "SSL_GET",
                urls: Vec::new(),
                virtualhost: None,
                http_protocol: None,
                enable_sni: false,
            }),
            "MISC_CHECK" => CheckerKind::Misc(MiscCheck {
                path: Script {
                    argv: Vec::new(),
                    user: None,
                },
                timeout: None,
                dynamic: false,
            }),
            _ => CheckerKind::Dns(DnsCheck {
                qtype: "SOA".into(),
                name: ".".into(),
            }),
        };
        let mut common = CheckerCommon {
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
        };
        let mut timing = Timing::default();
        let mut misc_path: Option<Script> = None;
        let mut misc_user = None;
        let Some(block) = &n.block else {
            if matches!(kind, CheckerKind::Misc(_)) {
                self.d().error(&n.loc, "MISC_CHECK: no misc_path given");
                return None;
            }
            return Some(RawChecker {
                kind,
                common,
                timing,
            });
        };
        for s in block {
            let k = s.key.as_str();
            if k == "nb_get_retry" && matches!(kind, CheckerKind::Tcp) {
                // keepalived 2.2.7 no longer knows it here; older configs use it.
                self.d().warn(
                    &s.loc,
                    "nb_get_retry is deprecated (keepalived 2.2 ignores it in TCP_CHECK) - taken as retry",
                );
                if let Some(v) = self.v.one_uint(s, 0, u32::MAX as u64) {
                    timing.retry = Some(v as u32);
                }
                continue;
            }
            if self.timing_kw(s, &mut timing) {
                continue;
            }
            match (k, &mut kind) {
                ("connect_ip", _) => {
                    if let Some(a) = self.v.one(s, "address") {
                        common.connect_ip = self.v.ip(a, k);
                    }
                }
                ("connect_port", _) => {
                    if let Some(v) = self.v.one_uint(s, 1, 65535) {
                        common.connect_port = Some(v as u16);
                    }
                }
                ("bindto", _) => {
                    if let Some(a) = self.v.one(s, "address") {
                        common.bindto = self.v.ip(a, k);
                    }
                }
                ("bind_port", _) => {
                    if let Some(v) = self.v.one_uint(s, 1, 65535) {
                        common.bind_port = Some(v as u16);
                    }
                }
                ("bind_if", _) => {
                    if let Some(a) = self.v.one(s, "interface") {
                        common.bind_if = Some(a.text.clone());
                    }
                }
                ("fwmark", _) => {
                    if let Some(v) = self.v.one_uint(s, 1, u32::MAX as u64) {
                        common.fwmark = Some(v as u32);
                    }
                }
                ("log_all_failures", _) => self.no_effect(s),
                ("url", CheckerKind::Http(h)) => {
                    if let Some(u) = self.url(s) {
                        h.urls.push(u);
                    }
                }
                ("virtualhost", CheckerKind::Http(h)) => {
                    if let Some(a) = self.v.one(s, "host name") {
                        h.virtualhost = Some(a.text.clone());
                    }
                }
                ("http_protocol", CheckerKind::Http(h)) => {
                    if let Some(a) = self.v.one(s, "protocol") {
                        match a.text.as_str() {
                            "1.0" | "1.1" | "1.0C" | "1.0c" => {
                                h.http_protocol = Some(a.text.clone())
                            }
                            o => self.v.d.error(
                                &a.loc,
                                format!("http_protocol: unknown version '{o}' (1.0, 1.0C, 1.1)"),
                            ),
                        }
                    }
                }
                ("enable_sni", CheckerKind::Http(h)) => h.enable_sni = self.v.flag(s),
                ("fast_recovery", CheckerKind::Http(_)) => self.no_effect(s),
                ("misc_path", CheckerKind::Misc(_)) => misc_path = self.v.script(s, &s.args),
                ("misc_timeout", CheckerKind::Misc(m)) => m.timeout = self.v.one_duration(s),
                ("misc_dynamic", CheckerKind::Misc(m)) => m.dynamic = self.v.flag(s),
                ("user", CheckerKind::Misc(_)) => misc_user = self.v.script_user(s),
                ("type", CheckerKind::Dns(d)) => {
                    if let Some(a) = self.v.one(s, "query type") {
                        let t = a.text.to_ascii_uppercase();
                        if ["A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA"].contains(&t.as_str()) {
                            d.qtype = t;
                        } else {
                            self.v.d.error(
                                &a.loc,
                                format!("type: unknown DNS query type '{}'", a.text),
                            );
                        }
                    }
                }
                ("name", CheckerKind::Dns(d)) => {
                    if let Some(a) = self.v.one(s, "query name") {
                        d.name = a.text.clone();
                    }
                }
                _ => self.unknown(s, k),
            }
        }
        if let CheckerKind::Misc(m) = &mut kind {
            match misc_path {
                Some(mut p) => {
                    p.user = misc_user;
                    m.path = p;
                }
                None => {
                    self.d().error(&n.loc, "MISC_CHECK: no misc_path given");
                    return None;
                }
            }
        }
        if let CheckerKind::Http(h) = &kind {
            if h.urls.is_empty() {
                self.d().error(&n.loc, format!("{}: no url given", n.key));
                return None;
            }
        }
        Some(RawChecker {
            kind,
            common,
            timing,
        })
    }

    fn url(&mut self, n: &Node) -> Option<HttpUrl> {
        let mut u = HttpUrl {
            path: String::new(),
            digest: None,
            status_code: Vec::new(),
            virtualhost: None,
        };
        let mut have_path = false;
        for s in self.block(n) {
            let k = s.key.as_str();
            match k {
                "path" => {
                    if let Some(a) = self.v.one(s, "path") {
                        u.path = a.text.clone();
                        have_path = true;
                    }
                }
                "digest" => {
                    if let Some(a) = self.v.one(s, "digest") {
                        if a.text.len() == 32 && a.text.bytes().all(|b| b.is_ascii_hexdigit()) {
                            u.digest = Some(a.text.to_ascii_lowercase());
                        } else {
                            self.d().error(
                                &a.loc,
                                format!(
                                    "digest: '{}' is not an MD5 hex digest (32 hex digits)",
                                    a.text
                                ),
                            );
                        }
                    }
                }
                "status_code" => {
                    if s.args.is_empty() {
                        self.d().error(&s.loc, "status_code: missing value");
                    }
                    for a in &s.args {
                        let (lo, hi) = match a.text.split_once('-') {
                            Some((l, h)) => (l, h),
                            None => (a.text.as_str(), a.text.as_str()),
                        };
                        match (lo.parse::<u16>(), hi.parse::<u16>()) {
                            (Ok(l), Ok(h))
                                if (100..=599).contains(&l) && (l..=599).contains(&h) =>
                            {
                                u.status_code.push(StatusRange { min: l, max: h })
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
                "virtualhost" => {
                    if let Some(a) = self.v.one(s, "host name") {
                        u.virtualhost = Some(a.text.clone());
                    }
                }
                "regex" | "regex_no_match" | "regex_options" | "regex_min_offset"
                | "regex_max_offset" | "regex_stack" => self.d().warn(
                    &s.loc,
                    format!("'{k}' is not supported by ferrovs - ignoring"),
                ),
                _ => self.unknown(s, k),
            }
        }
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
