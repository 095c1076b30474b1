//! virtual_server_group, local_address_group, virtual_server and
//! real_server.

use super::*;

impl Conv<'_> {
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

    pub(super) fn vs_group(&mut self, n: &Node) -> Option<VirtualServerGroup> {
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

    pub(super) fn laddr_group(&mut self, n: &Node) -> Option<LocalAddressGroup> {
        let name = self.name(n)?;
        let mut g = LocalAddressGroup {
            name,
            ranges: Vec::new(),
        };
        for e in self.block(n) {
            // DPVS writes "ADDR[-LAST] IFNAME"; several addresses may share a line.
            for (w, l) in e.words() {
                // A range starts with an address; an interface name may
                // have '-' in it too ("eth-lan").
                let addr_like = parse_ip(w).is_some()
                    || w.rsplit_once('-')
                        .is_some_and(|(f, _)| parse_ip(f).is_some());
                if !addr_like && !g.ranges.is_empty() {
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

    pub(super) fn virtual_server(&mut self, n: &Node) -> Option<(VirtualServer, Option<Location>)> {
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
                syn_proxy: false,
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
            syn_proxy: None,
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
            syn_proxy,
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
            // Only tunnelled servers may differ in family from the service,
            // and FULLNAT's IPv4 servers behind an IPv6 VIP (NAT64, as
            // DPVS does it); fwmark and group services take theirs from the
            // first server.
            let nat64 = fwd == LbKind::FullNat && family == Some(true) && r.addr.is_ipv4();
            if fwd != LbKind::Tun && !nat64 {
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
        if let Some(loc) = syn_proxy {
            // DPVS's SYN proxy answers the handshake itself and translates
            // sequence numbers both ways: it needs the replies, which DR
            // and TUN servers send to the client directly.
            let bypass = std::iter::once(vs.lb_kind)
                .chain(vs.real_servers.iter().map(|r| r.fwd))
                .chain(sorry_fwd)
                .find(|k| matches!(k, LbKind::Dr | LbKind::Tun));
            if let Some(k) = bypass {
                self.d().error(
                    &loc,
                    format!(
                        "Virtual server {vs_name}: syn_proxy needs lb_kind NAT or FNAT ({} replies bypass the director)",
                        k.keyword()
                    ),
                );
            } else if vs.protocol != Protocol::Tcp {
                self.d().warn(
                    &loc,
                    format!("Virtual server {vs_name}: syn_proxy only applies to TCP - ignoring"),
                );
            } else {
                vs.syn_proxy = true;
            }
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
    /// Where `syn_proxy` was given.
    syn_proxy: Option<Location>,
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
        "syn_proxy",
        With(|_, s, b| b.syn_proxy = Some(s.loc.clone())),
    ),
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
