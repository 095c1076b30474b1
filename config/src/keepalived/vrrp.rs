//! vrrp_script, vrrp_sync_group and vrrp_instance.

use super::*;

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

/// `garp_group { garp_interval S  gna_interval S  interface NAME
/// interfaces { NAME... } }` (keepalived 2.2's vrrp_parser.c).
const GARP_GROUP: &Keywords<GarpGroup> = &[
    (
        "garp_interval",
        With(|c, s, g| g.garp_interval = c.v.one_duration(s)),
    ),
    (
        "gna_interval",
        With(|c, s, g| g.gna_interval = c.v.one_duration(s)),
    ),
    (
        "interface",
        With(|c, s, g| {
            if let Some(a) = c.v.one(s, "interface") {
                g.interfaces.push(a.text.clone());
            }
        }),
    ),
    (
        "interfaces",
        With(|c, s, g| {
            let block = c.block(s);
            if block.is_empty() {
                c.d().warn(
                    &s.loc,
                    "Warning - empty garp_group interfaces block".to_string(),
                );
            }
            for e in block {
                g.interfaces.extend(e.words().map(|(w, _)| w.to_string()));
            }
        }),
    ),
];

impl Conv<'_> {
    /// A garp_group; `None` (with keepalived's warning) when it sets no
    /// interval. An interface already in an earlier group stays there.
    pub(super) fn garp_group(&mut self, n: &Node, earlier: &[GarpGroup]) -> Option<GarpGroup> {
        let mut g = GarpGroup {
            garp_interval: None,
            gna_interval: None,
            interfaces: Vec::new(),
        };
        let block = self.block(n);
        self.read(block, GARP_GROUP, &mut g);
        if g.garp_interval.is_none() && g.gna_interval.is_none() {
            self.d().warn(
                &n.loc,
                format!(
                    "garp group {} does not have any delay set - removing",
                    earlier.len() + 1
                ),
            );
            return None;
        }
        let mut seen: Vec<String> = Vec::new();
        g.interfaces.retain(|i| {
            let dup = seen.contains(i) || earlier.iter().any(|e| e.interfaces.contains(i));
            seen.push(i.clone());
            !dup
        });
        for i in seen.iter().filter(|i| !g.interfaces.contains(i)) {
            self.d().warn(
                &n.loc,
                format!("garp_group already specified for {i} - ignoring"),
            );
        }
        Some(g)
    }

    pub(super) fn vrrp_script(&mut self, n: &Node) -> Option<VrrpScript> {
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

    pub(super) fn sync_group(&mut self, n: &Node) -> Option<(SyncGroup, Vec<Location>)> {
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

    pub(super) fn vrrp_instance(
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
            version_loc: None,
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
            version_loc,
        } = b;
        // keepalived: an instance whose first address is IPv6 runs over
        // IPv6, as VRRPv3 (the global vrrp_version is for IPv4 instances).
        // VRRPv2 is IPv4 only (RFC 3768): `version 2` in an IPv6 instance
        // gets keepalived's strict-mode answer.
        if i.virtual_ipaddress
            .first()
            .is_some_and(|v| v.addr.is_ipv6())
        {
            if let (Some(loc), 2) = (&version_loc, i.version) {
                self.d().warn(
                    loc,
                    format!(
                        "({}) cannot use IPv6 with VRRP version 2; setting version 3",
                        i.name
                    ),
                );
            }
            i.version = 3;
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
    /// Where the instance's own `version` was given.
    version_loc: Option<Location>,
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
                b.version_loc = Some(s.loc.clone());
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
                let Some(address) = parse_ip(&e.key) else {
                    c.d().error(
                        &e.loc,
                        format!("unicast_peer: invalid IP address '{}'", e.key),
                    );
                    continue;
                };
                // keepalived 2.2: `ADDRESS [min_ttl N] [max_ttl N]`.
                let mut peer = UnicastPeer {
                    address,
                    min_ttl: None,
                    max_ttl: None,
                };
                let mut args = e.args.iter();
                while let Some(opt) = args.next() {
                    let slot = match opt.text.as_str() {
                        "min_ttl" => &mut peer.min_ttl,
                        "max_ttl" => &mut peer.max_ttl,
                        _ => {
                            c.d().warn(
                                &opt.loc,
                                format!(
                                    "unicast_peer: option '{}' is not supported - ignoring",
                                    opt.text
                                ),
                            );
                            continue;
                        }
                    };
                    match args.next().map(|v| (v, v.text.parse::<u8>())) {
                        Some((_, Ok(n))) => *slot = Some(n),
                        Some((v, Err(_))) => c.d().error(
                            &v.loc,
                            format!("unicast_peer: {} '{}' must be 0-255", opt.text, v.text),
                        ),
                        None => c.d().error(
                            &opt.loc,
                            format!("unicast_peer: {} needs a value", opt.text),
                        ),
                    }
                }
                if let (Some(lo), Some(hi)) = (peer.min_ttl, peer.max_ttl) {
                    if lo > hi {
                        c.d().error(
                            &e.loc,
                            format!("unicast_peer: min_ttl {lo} is above max_ttl {hi}"),
                        );
                    }
                }
                b.i.unicast_peer.push(peer);
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
    // ferrovs always checks a unicast advert's source against unicast_peer.
    ("check_unicast_src", Silent),
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
