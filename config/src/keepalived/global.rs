//! global_defs and ferrovs' own block.

use super::*;
use std::net::Ipv4Addr;
use std::path::PathBuf;

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
    // ferrovs always checks a unicast advert's source against unicast_peer.
    ("vrrp_check_unicast_src", Silent),
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
    pub(super) fn global_defs(&mut self, n: &Node, r: &mut Root) {
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
        let options = self.sync_options(s, 2, "lvs_sync_daemon", interface);
        Some(LvsSyncDaemon {
            vrrp_instance,
            options,
        })
    }

    /// `sync_active_active INTERFACE [id N] [maxlen N] [port N] [ttl N]
    /// [group ADDR]` in the ferrovs block: both sync daemons from the
    /// start, whatever VRRP says (`lvs_sync_daemon`'s options; no
    /// instance to follow). A multicast group is checked here, where its
    /// location is known.
    fn sync_active_active(&mut self, s: &Node) -> Option<SyncOptions> {
        let interface = self.v.arg(s, 0, "interface")?.text.clone();
        let out = self.sync_options(s, 1, "sync_active_active", interface);
        if !out.group.is_multicast() {
            self.d().error(
                &s.loc,
                format!(
                    "sync_active_active: group {} is not a multicast address",
                    out.group
                ),
            );
            return None;
        }
        Some(out)
    }

    /// The `OPTION VALUE` pairs of a sync daemon line from argument `i`.
    fn sync_options(&mut self, s: &Node, mut i: usize, kw: &str, interface: String) -> SyncOptions {
        let mut out = SyncOptions::on(interface);
        while i < s.args.len() {
            let opt = &s.args[i];
            let val = match s.args.get(i + 1) {
                Some(v) => v,
                None => {
                    self.d()
                        .error(&opt.loc, format!("{kw}: missing value for '{}'", opt.text));
                    break;
                }
            };
            match opt.text.as_str() {
                "id" => {
                    out.sync_id = self
                        .v
                        .uint(val, &format!("{kw} id"), 0, 255)
                        .map(|v| v as u8)
                }
                "maxlen" => {
                    out.maxlen = self
                        .v
                        .uint(val, &format!("{kw} maxlen"), 1, 65535 - 20 - 8)
                        .map(|v| v as u16)
                }
                "port" => {
                    if let Some(p) = self.v.uint(val, &format!("{kw} port"), 1, 65535) {
                        out.port = p as u16;
                    }
                }
                "ttl" => {
                    if let Some(t) = self.v.uint(val, &format!("{kw} ttl"), 1, 255) {
                        out.ttl = t as u8;
                    }
                }
                "group" => {
                    if let Some(ip) = self.v.ip(val, &format!("{kw} group")) {
                        out.group = ip;
                    }
                }
                o => self
                    .d()
                    .warn(&opt.loc, format!("{kw}: unknown option '{o}' - ignoring")),
            }
            i += 2;
        }
        out
    }

    pub(super) fn ferrovs(&mut self, n: &Node, f: &mut FerrovsSettings) {
        let block = self.block(n);
        self.read(block, FERROVS, f);
    }

    /// `bgp { }`: what is missing is an error at the block, so that a
    /// director never starts announcing with half a configuration.
    fn bgp(&mut self, n: &Node) -> Option<BgpSettings> {
        let block = self.block(n);
        let mut d = BgpDraft::default();
        self.read(block, BGP, &mut d);
        let mut ok = true;
        if d.local_as.is_none() {
            self.d().error(&n.loc, "bgp: missing local_as");
            ok = false;
        }
        if d.neighbors.is_empty() {
            self.d().error(
                &n.loc,
                "bgp: no neighbor (neighbor ADDR { peer_as N; local_address ADDR })",
            );
            ok = false;
        }
        // ExaBGP needs a router id; the first IPv4 local address serves, as
        // BGP speakers usually take one of their addresses.
        let router_id = d.router_id.or_else(|| {
            d.neighbors.iter().find_map(|nb| match nb.local_address {
                IpAddr::V4(a) => Some(a),
                IpAddr::V6(_) => None,
            })
        });
        if router_id.is_none() && ok {
            self.d().error(
                &n.loc,
                "bgp: missing router_id (no IPv4 local_address to take it from)",
            );
            ok = false;
        }
        if !ok || d.failed {
            return None;
        }
        Some(BgpSettings {
            router_id: router_id?,
            local_as: d.local_as?,
            neighbors: d.neighbors,
            next_hop: d.next_hop,
            med: d.med,
            communities: d.communities,
            exabgp: d
                .exabgp
                .unwrap_or_else(|| PathBuf::from("/usr/sbin/exabgp")),
            drain_timeout: d.drain_timeout.unwrap_or(0),
        })
    }

    fn bgp_neighbor(&mut self, n: &Node, d: &mut BgpDraft) {
        let Some(a) = self.v.arg(n, 0, "neighbor address") else {
            d.failed = true;
            return;
        };
        let Some(address) = self.v.ip(a, "neighbor") else {
            d.failed = true;
            return;
        };
        let block = self.block(n);
        let mut nb = NeighborDraft::default();
        self.read(block, BGP_NEIGHBOR, &mut nb);
        let (Some(peer_as), Some(local_address)) = (nb.peer_as, nb.local_address) else {
            self.d().error(
                &n.loc,
                format!("neighbor {address}: needs peer_as and local_address"),
            );
            d.failed = true;
            return;
        };
        if local_address.is_ipv4() != address.is_ipv4() {
            self.d().error(
                &n.loc,
                format!("neighbor {address}: local_address {local_address} is of the other family"),
            );
            d.failed = true;
            return;
        }
        if d.neighbors.iter().any(|x| x.address == address) {
            self.d()
                .error(&n.loc, format!("neighbor {address}: given twice"));
            d.failed = true;
            return;
        }
        d.neighbors.push(BgpNeighbor {
            address,
            peer_as,
            local_address,
            hold_time: nb.hold_time.unwrap_or(90),
            md5_password: nb.md5_password,
        });
    }
}

#[derive(Default)]
struct BgpDraft {
    router_id: Option<Ipv4Addr>,
    local_as: Option<u32>,
    neighbors: Vec<BgpNeighbor>,
    next_hop: Option<IpAddr>,
    med: Option<u32>,
    communities: Vec<(u16, u16)>,
    exabgp: Option<PathBuf>,
    drain_timeout: Option<u64>,
    failed: bool,
}

#[derive(Default)]
struct NeighborDraft {
    peer_as: Option<u32>,
    local_address: Option<IpAddr>,
    hold_time: Option<u16>,
    md5_password: Option<String>,
}

/// An AS number: 1 to 2^32 - 1 (RFC 6793), 0 being reserved (RFC 7607).
fn asn(c: &mut Conv<'_>, s: &Node) -> Option<u32> {
    c.v.one_uint(s, 1, u32::MAX as u64).map(|v| v as u32)
}

const BGP: &Keywords<BgpDraft> = &[
    (
        "router_id",
        With(|c, s, d| {
            if let Some(a) = c.v.one(s, "IPv4 address") {
                d.router_id = c.v.ipv4(a, "router_id");
            }
        }),
    ),
    ("local_as", With(|c, s, d| d.local_as = asn(c, s))),
    ("neighbor", With(|c, s, d| c.bgp_neighbor(s, d))),
    (
        "next_hop",
        With(|c, s, d| {
            if let Some(a) = c.v.one(s, "address or self") {
                if a.text != "self" {
                    d.next_hop = c.v.ip(a, "next_hop");
                }
            }
        }),
    ),
    (
        "med",
        With(|c, s, d| d.med = c.v.one_uint(s, 0, u32::MAX as u64).map(|v| v as u32)),
    ),
    (
        "community",
        With(|c, s, d| {
            for a in &s.args {
                let parsed = a
                    .text
                    .split_once(':')
                    .and_then(|(x, y)| Some((x.parse::<u16>().ok()?, y.parse::<u16>().ok()?)));
                match parsed {
                    Some(p) => d.communities.push(p),
                    None => c.d().error(
                        &a.loc,
                        format!(
                            "community: '{}' is not ASN:VALUE (two numbers 0-65535)",
                            a.text
                        ),
                    ),
                }
            }
        }),
    ),
    (
        "exabgp",
        With(|c, s, d| {
            if let Some(a) = c.v.one(s, "path") {
                d.exabgp = Some(a.text.clone().into());
            }
        }),
    ),
    (
        "drain_timeout",
        // Seconds; a day at most: a longer drain is a plain `--drain`.
        With(|c, s, d| d.drain_timeout = c.v.one_uint(s, 0, 86_400)),
    ),
];

const BGP_NEIGHBOR: &Keywords<NeighborDraft> = &[
    ("peer_as", With(|c, s, n| n.peer_as = asn(c, s))),
    (
        "local_address",
        With(|c, s, n| {
            if let Some(a) = c.v.one(s, "address") {
                n.local_address = c.v.ip(a, "local_address");
            }
        }),
    ),
    (
        "hold_time",
        With(|c, s, n| {
            // RFC 4271 §4.2: 0 (no keepalives) or at least 3 seconds.
            if let Some(v) = c.v.one_uint(s, 0, 65535) {
                if v == 1 || v == 2 {
                    c.d()
                        .error(&s.loc, "hold_time: 0 or at least 3 seconds (RFC 4271)");
                } else {
                    n.hold_time = Some(v as u16);
                }
            }
        }),
    ),
    (
        "md5_password",
        With(|c, s, n| {
            if let Some(a) = c.v.one(s, "password") {
                n.md5_password = Some(a.text.clone());
            }
        }),
    ),
];

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
        "http_api",
        With(|c, s, f| {
            if let Some(a) = c.v.one(s, "local, on or off") {
                match a.text.as_str() {
                    "local" => f.http_api = HttpApi::Local,
                    "on" => f.http_api = HttpApi::On,
                    "off" => f.http_api = HttpApi::Off,
                    _ => c.d().error(
                        &a.loc,
                        format!("http_api: '{}' is not local, on or off", a.text),
                    ),
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
    ("sloppy_tcp", With(|c, s, f| f.sloppy_tcp = c.v.flag(s))),
    (
        "state_dir",
        With(|c, s, f| {
            if let Some(a) = c.v.one(s, "path or off") {
                if a.text == "off" {
                    f.state_dir = None;
                } else if !a.text.starts_with('/') {
                    c.d().error(
                        &a.loc,
                        format!("state_dir: '{}' is not an absolute path (or off)", a.text),
                    );
                } else {
                    f.state_dir = Some(a.text.clone().into());
                }
            }
        }),
    ),
    ("bgp", With(|c, s, f| f.bgp = c.bgp(s))),
    (
        "sync_active_active",
        With(|c, s, f| f.sync_active_active = c.sync_active_active(s)),
    ),
    (
        "xdp_fast_path",
        With(|c, s, f| {
            if s.args.first().is_some_and(|a| a.text == "auto") {
                f.xdp_fast_path = None;
            } else {
                f.xdp_fast_path = Some(c.v.flag(s));
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
