//! The ipvsadm command language: parse a command line (or what
//! `ipvsadm -S` wrote), apply it to a [`Table`], and print `-S -n`.

use super::list::{cmp_dests, cmp_services, ipvs_sort, sched_bits, sched_flags_text, ListOptions};
use crate::ipvs::{addr_port, Dest, Fwd, Service, ServiceKey, Table};
use crate::model::{Netmask, Persistence, Protocol, SchedFlags, Scheduler};
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// ipvsadm's MAX_TIMEOUT (31 days).
pub const MAX_TIMEOUT: u32 = 86400 * 31;
/// Persistence timeout of a bare `-p`.
pub const DEFAULT_PERSISTENCE: u32 = 360;

/// One ipvsadm command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    AddService(Service),
    EditService(Service),
    DelService(ServiceKey),
    Clear,
    AddDest(ServiceKey, Dest),
    EditDest(ServiceKey, Dest),
    DelDest(ServiceKey, IpAddr, u16),
    /// `-L`/`-l`: a service (or all), what to show.
    List {
        service: Option<ServiceKey>,
        options: ListOptions,
        connections: bool,
        timeout: bool,
        daemon: bool,
    },
    /// `-S` (always numeric here).
    Save {
        nosort: bool,
    },
    /// `-Z [SERVICE]`
    Zero(Option<ServiceKey>),
    /// `--set tcp tcpfin udp` (0 leaves a value unchanged).
    SetTimeout {
        tcp: u32,
        tcpfin: u32,
        udp: u32,
    },
    /// `-R`: rules follow on standard input.
    Restore,
    /// `--start-daemon master|backup` with its options.
    StartDaemon(DaemonOptions),
    /// `--stop-daemon master|backup`: true for master.
    StopDaemon {
        master: bool,
    },
}

/// `--start-daemon`'s state and options (ipvsadm 1.31: `--mcast-interface`,
/// `--syncid`, `--sync-maxlen`, `--mcast-group`, `--mcast-port`,
/// `--mcast-ttl`); None where not given.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DaemonOptions {
    pub master: bool,
    pub mcast_ifn: Option<String>,
    pub syncid: Option<u8>,
    pub maxlen: Option<u16>,
    pub group: Option<IpAddr>,
    pub port: Option<u16>,
    pub ttl: Option<u8>,
}

/// The sync daemon's options, which only `--start-daemon` takes.
const DAEMON_OPTIONS: [&str; 6] = [
    "mcast-interface",
    "syncid",
    "sync-maxlen",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
];

/// `--start-daemon` / `--stop-daemon` and the daemon's options, with
/// ipvsadm's checks and words (ipvsadm.c `parse_options`).
fn parse_daemon(opts: &[(&'static str, Option<String>)]) -> Result<Command, ParseError> {
    let mut cmd: Option<Command> = None;
    let mut o = DaemonOptions::default();
    let mut seen: Vec<&str> = Vec::new();
    for (name, val) in opts {
        let v = val.clone().unwrap_or_default();
        if DAEMON_OPTIONS.contains(name) {
            if seen.contains(name) {
                return Err(ParseError::MultipleOptions(name));
            }
            seen.push(name);
        }
        match *name {
            "start-daemon" | "stop-daemon" => {
                if cmd.is_some() {
                    return Err(ParseError::MultipleCommands);
                }
                let master = match v.as_str() {
                    "master" => true,
                    "backup" => false,
                    _ if *name == "start-daemon" => {
                        return Err(ParseError::Daemon(
                            "illegal start-daemon parameter specified",
                        ))
                    }
                    _ => {
                        return Err(ParseError::Daemon(
                            "illegal stop_daemon parameter specified",
                        ))
                    }
                };
                cmd = Some(if *name == "start-daemon" {
                    Command::StartDaemon(DaemonOptions::default())
                } else {
                    Command::StopDaemon { master }
                });
                o.master = master;
            }
            "mcast-interface" => {
                // IP_VS_IFNAME_MAXLEN: 16 with its NUL.
                if v.is_empty() || v.len() >= 16 {
                    return Err(ParseError::Daemon("illegal mcast-interface specified"));
                }
                o.mcast_ifn = Some(v);
            }
            "syncid" => {
                o.syncid = Some(
                    number(&v, 0, 255).ok_or(ParseError::Daemon("illegal syncid specified"))? as u8,
                );
            }
            "sync-maxlen" => {
                o.maxlen = Some(
                    number(&v, 1, 65535 - 20 - 8)
                        .ok_or(ParseError::Daemon("illegal sync-maxlen specified"))?
                        as u16,
                );
            }
            "mcast-group" => {
                let a: IpAddr = v
                    .parse()
                    .map_err(|_| ParseError::Daemon("illegal mcast-group specified"))?;
                if !a.is_multicast() {
                    return Err(ParseError::Daemon("illegal mcast-group specified"));
                }
                o.group = Some(a);
            }
            "mcast-port" => {
                o.port = Some(
                    number(&v, 1, 65535)
                        .ok_or(ParseError::Daemon("illegal mcast-port specified"))?
                        as u16,
                );
            }
            "mcast-ttl" => {
                o.ttl = Some(
                    number(&v, 1, 255).ok_or(ParseError::Daemon("illegal mcast-ttl specified"))?
                        as u8,
                );
            }
            "" => return Err(ParseError::UnexpectedArgument(v)),
            other => {
                return Err(ParseError::IllegalOption {
                    option: OPTIONS
                        .iter()
                        .find(|x| x.0 == other)
                        .map_or("option", |x| x.0),
                    command: "start-daemon",
                })
            }
        }
    }
    match cmd {
        Some(Command::StartDaemon(_)) => Ok(Command::StartDaemon(o)),
        Some(Command::StopDaemon { master }) => {
            if let Some(n) = seen.first() {
                return Err(ParseError::IllegalOption {
                    option: OPTIONS.iter().find(|x| x.0 == *n).map_or("option", |x| x.0),
                    command: "stop-daemon",
                });
            }
            Ok(Command::StopDaemon { master })
        }
        _ => Err(ParseError::NoCommand),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddSrv,
    DelSrv,
    EditSrv,
    Timeout,
    Restore,
    Save,
    Zero,
}

impl Cmd {
    fn name(self) -> &'static str {
        match self {
            Cmd::Add => "add-service",
            Cmd::Edit => "edit-service",
            Cmd::Del => "delete-service",
            Cmd::Flush => "flush",
            Cmd::List => "list",
            Cmd::AddSrv => "add-server",
            Cmd::DelSrv => "delete-server",
            Cmd::EditSrv => "edit-server",
            Cmd::Timeout => "set",
            Cmd::Restore => "restore",
            Cmd::Save => "save",
            Cmd::Zero => "zero",
        }
    }
}

/// Options as ipvsadm's `optnames` name them (for its error messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opt {
    Numeric,
    Connection,
    Service,
    Scheduler,
    Persistent,
    Netmask,
    Server,
    Forward,
    Weight,
    UThreshold,
    LThreshold,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Exact,
    Ops,
    Pe,
    SchedFlags,
    TunType,
    Synproxy,
}

impl Opt {
    fn name(self) -> &'static str {
        match self {
            Opt::Numeric => "numeric",
            Opt::Connection => "connection",
            Opt::Service => "service-address",
            Opt::Scheduler => "scheduler",
            Opt::Persistent => "persistent",
            Opt::Netmask => "netmask",
            Opt::Server => "real-server",
            Opt::Forward => "forwarding-method",
            Opt::Weight => "weight",
            Opt::UThreshold => "u-threshold",
            Opt::LThreshold => "l-threshold",
            Opt::Timeout => "timeout",
            Opt::Daemon => "daemon",
            Opt::Stats => "stats",
            Opt::Rate => "rate",
            Opt::Thresholds => "thresholds",
            Opt::PersistentConn => "persistent-conn",
            Opt::NoSort => "nosort",
            Opt::Exact => "exact",
            Opt::Ops => "ops",
            Opt::Pe => "pe",
            Opt::SchedFlags => "sched-flags",
            Opt::TunType => "tun-type",
            Opt::Synproxy => "synproxy",
        }
    }
}

/// 'o' optional, '+' compulsory; anything else is illegal (ipvsadm's
/// commands_v_options table, restricted to the options handled here).
fn allowed(cmd: Cmd, opt: Opt) -> char {
    use Opt::*;
    match cmd {
        Cmd::Add | Cmd::Edit => match opt {
            Service => '+',
            Scheduler | Persistent | Netmask | Ops | Pe | SchedFlags | Synproxy => 'o',
            _ => 'x',
        },
        Cmd::Del => match opt {
            Service => '+',
            _ => 'x',
        },
        Cmd::AddSrv | Cmd::EditSrv => match opt {
            Service | Server => '+',
            Forward | Weight | UThreshold | LThreshold | TunType => 'o',
            _ => 'x',
        },
        Cmd::DelSrv => match opt {
            Service | Server => '+',
            _ => 'x',
        },
        Cmd::List => match opt {
            Numeric | Connection | Service | Timeout | Daemon | Stats | Rate | Thresholds
            | PersistentConn | NoSort | Exact => 'o',
            _ => 'x',
        },
        Cmd::Save => match opt {
            Numeric | NoSort => 'o',
            _ => 'x',
        },
        Cmd::Zero => match opt {
            Service => 'o',
            _ => 'x',
        },
        Cmd::Flush | Cmd::Timeout | Cmd::Restore => 'x',
    }
}

/// A small services table for `ADDR:NAME` ports (no /etc/services lookup).
fn service_port(name: &str) -> Option<u16> {
    Some(match name {
        "ftp" => 21,
        "ssh" => 22,
        "telnet" => 23,
        "smtp" => 25,
        "domain" => 53,
        "http" | "www" => 80,
        "pop3" => 110,
        "imap" | "imap2" => 143,
        "https" => 443,
        "submission" => 587,
        "imaps" => 993,
        "pop3s" => 995,
        "mysql" => 3306,
        "postgresql" => 5432,
        _ => return None,
    })
}

/// ipvsadm's `parse_service`: `ADDR`, `ADDR:PORT`, `[V6]:PORT`, bare `V6`.
/// Returns the address and the port if one was given.
pub fn parse_addr_port(s: &str) -> Option<(IpAddr, Option<u16>)> {
    if s.is_empty() || s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port_of = |p: &str| -> Option<u16> {
        if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
            p.parse::<u16>().ok()
        } else {
            service_port(p)
        }
    };
    if let Some(rest) = s.strip_prefix('[') {
        let (a, after) = rest.split_once(']')?;
        let p = after.strip_prefix(':')?;
        let a: Ipv6Addr = a.parse().ok()?;
        return Some((IpAddr::V6(a), Some(port_of(p)?)));
    }
    if let Ok(a) = s.parse::<Ipv6Addr>() {
        return Some((IpAddr::V6(a), None));
    }
    match s.rsplit_once(':') {
        Some((a, p)) => Some((IpAddr::V4(a.parse().ok()?), Some(port_of(p)?))),
        None => Some((IpAddr::V4(s.parse().ok()?), None)),
    }
}

fn number(s: &str, min: i64, max: i64) -> Option<i64> {
    let v: i64 = s.parse().ok()?;
    (min..=max).contains(&v).then_some(v)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ArgKind {
    None,
    Required,
    Optional,
}

/// (long name, short letter, argument)
const OPTIONS: &[(&str, char, ArgKind)] = &[
    ("add-service", 'A', ArgKind::None),
    ("edit-service", 'E', ArgKind::None),
    ("delete-service", 'D', ArgKind::None),
    ("clear", 'C', ArgKind::None),
    ("list", 'L', ArgKind::None),
    ("list", 'l', ArgKind::None),
    ("zero", 'Z', ArgKind::None),
    ("add-server", 'a', ArgKind::None),
    ("edit-server", 'e', ArgKind::None),
    ("delete-server", 'd', ArgKind::None),
    ("set", '\0', ArgKind::None),
    ("restore", 'R', ArgKind::None),
    ("save", 'S', ArgKind::None),
    ("tcp-service", 't', ArgKind::Required),
    ("udp-service", 'u', ArgKind::Required),
    ("sctp-service", '\0', ArgKind::Required),
    ("fwmark-service", 'f', ArgKind::Required),
    ("scheduler", 's', ArgKind::Required),
    ("persistent", 'p', ArgKind::Optional),
    ("netmask", 'M', ArgKind::Required),
    ("real-server", 'r', ArgKind::Required),
    ("masquerading", 'm', ArgKind::None),
    ("ipip", 'i', ArgKind::None),
    ("gatewaying", 'g', ArgKind::None),
    ("fullnat", '\0', ArgKind::None),
    ("weight", 'w', ArgKind::Required),
    ("u-threshold", 'x', ArgKind::Required),
    ("l-threshold", 'y', ArgKind::Required),
    ("numeric", 'n', ArgKind::None),
    ("connection", 'c', ArgKind::None),
    ("timeout", '\0', ArgKind::None),
    ("daemon", '\0', ArgKind::None),
    ("start-daemon", '\0', ArgKind::Required),
    ("stop-daemon", '\0', ArgKind::Required),
    ("mcast-interface", '\0', ArgKind::Required),
    ("syncid", '\0', ArgKind::Required),
    ("sync-maxlen", '\0', ArgKind::Required),
    ("mcast-group", '\0', ArgKind::Required),
    ("mcast-port", '\0', ArgKind::Required),
    ("mcast-ttl", '\0', ArgKind::Required),
    ("stats", '\0', ArgKind::None),
    ("rate", '\0', ArgKind::None),
    ("thresholds", '\0', ArgKind::None),
    ("persistent-conn", '\0', ArgKind::None),
    ("nosort", '\0', ArgKind::None),
    ("sort", '\0', ArgKind::None),
    ("exact", 'X', ArgKind::None),
    ("ipv6", '6', ArgKind::None),
    ("ops", 'o', ArgKind::None),
    ("pe", '\0', ArgKind::Required),
    ("sched-flags", 'b', ArgKind::Required),
    ("tun-type", '\0', ArgKind::Required),
    // DPVS's ipvsadm: `-j enable|disable`.
    ("synproxy", 'j', ArgKind::Required),
];

/// Splits argv into (long option name, value) pairs; non-options are kept
/// with an empty name.
fn getopt(args: &[&str]) -> Result<Vec<(&'static str, Option<String>)>, ParseError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        i += 1;
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let Some(&(lname, _, kind)) = OPTIONS.iter().find(|o| o.0 == name) else {
                return Err(ParseError::UnknownOption(a.to_string()));
            };
            let val = match (kind, inline) {
                (ArgKind::None, Some(_)) => return Err(ParseError::NoArgumentTaken(a.to_string())),
                (ArgKind::None, None) => None,
                (_, Some(v)) => Some(v),
                (ArgKind::Required, None) => {
                    let v = args
                        .get(i)
                        .ok_or_else(|| ParseError::MissingArgument(format!("--{name}")))?;
                    i += 1;
                    Some(v.to_string())
                }
                (ArgKind::Optional, None) => match args.get(i) {
                    Some(v) if !v.starts_with('-') => {
                        i += 1;
                        Some(v.to_string())
                    }
                    _ => None,
                },
            };
            out.push((lname, val));
        } else if a.len() > 1 && a.starts_with('-') {
            let chars: Vec<char> = a[1..].chars().collect();
            let mut j = 0;
            while j < chars.len() {
                let c = chars[j];
                j += 1;
                let Some(&(lname, _, kind)) = OPTIONS.iter().find(|o| o.1 == c) else {
                    return Err(ParseError::UnknownOption(format!("-{c}")));
                };
                let rest: String = chars[j..].iter().collect();
                let val = match kind {
                    ArgKind::None => None,
                    _ if !rest.is_empty() => {
                        j = chars.len();
                        Some(rest)
                    }
                    ArgKind::Required => {
                        let v = args
                            .get(i)
                            .ok_or_else(|| ParseError::MissingArgument(format!("-{c}")))?;
                        i += 1;
                        Some(v.to_string())
                    }
                    ArgKind::Optional => match args.get(i) {
                        Some(v) if !v.starts_with('-') => {
                            i += 1;
                            Some(v.to_string())
                        }
                        _ => None,
                    },
                };
                out.push((lname, val));
            }
        } else {
            out.push(("", Some(a.to_string())));
        }
    }
    Ok(out)
}

/// Parses one ipvsadm command line (without the program name).
pub fn parse_command(args: &[&str]) -> Result<Command, ParseError> {
    let opts = getopt(args)?;
    if opts
        .iter()
        .any(|(n, _)| *n == "start-daemon" || *n == "stop-daemon")
    {
        return parse_daemon(&opts);
    }
    if let Some((n, _)) = opts.iter().find(|(n, _)| DAEMON_OPTIONS.contains(n)) {
        return Err(ParseError::DaemonOptionAlone(n));
    }
    let mut cmd: Option<Cmd> = None;
    let mut used: Vec<Opt> = Vec::new();
    let mut key: Option<ServiceKey> = None;
    let mut svc_port_given = false;
    let mut sched: Option<String> = None;
    let mut persistent: Option<u32> = None;
    let mut netmask: Option<String> = None;
    let mut dest: Option<(IpAddr, Option<u16>)> = None;
    let mut fwd = Fwd::Route;
    let mut weight: i32 = 1;
    let (mut uth, mut lth) = (0u32, 0u32);
    let mut list = ListOptions::default();
    let (mut conns, mut timeout, mut daemon) = (false, false, false);
    let mut ops = false;
    let mut synproxy = false;
    let mut pe: Option<String> = None;
    let mut sched_flags_arg: Option<String> = None;
    let mut positional: Vec<String> = Vec::new();
    let mut v6_flag = false;

    let set_cmd = |cmd: &mut Option<Cmd>, c: Cmd| -> Result<(), ParseError> {
        if cmd.is_some() {
            return Err(ParseError::MultipleCommands);
        }
        *cmd = Some(c);
        Ok(())
    };
    let mut set_opt = |o: Opt| -> Result<(), ParseError> {
        if used.contains(&o) {
            return Err(ParseError::MultipleOptions(o.name()));
        }
        used.push(o);
        Ok(())
    };

    for (name, val) in opts {
        let v = val.clone().unwrap_or_default();
        match name {
            "" => positional.push(v),
            "add-service" => set_cmd(&mut cmd, Cmd::Add)?,
            "edit-service" => set_cmd(&mut cmd, Cmd::Edit)?,
            "delete-service" => set_cmd(&mut cmd, Cmd::Del)?,
            "clear" => set_cmd(&mut cmd, Cmd::Flush)?,
            "list" => set_cmd(&mut cmd, Cmd::List)?,
            "zero" => set_cmd(&mut cmd, Cmd::Zero)?,
            "add-server" => set_cmd(&mut cmd, Cmd::AddSrv)?,
            "edit-server" => set_cmd(&mut cmd, Cmd::EditSrv)?,
            "delete-server" => set_cmd(&mut cmd, Cmd::DelSrv)?,
            "set" => set_cmd(&mut cmd, Cmd::Timeout)?,
            "restore" => set_cmd(&mut cmd, Cmd::Restore)?,
            "save" => set_cmd(&mut cmd, Cmd::Save)?,
            "tcp-service" | "udp-service" | "sctp-service" => {
                set_opt(Opt::Service)?;
                let proto = match name {
                    "tcp-service" => Protocol::Tcp,
                    "udp-service" => Protocol::Udp,
                    _ => Protocol::Sctp,
                };
                let (addr, port) = parse_addr_port(&v).ok_or(ParseError::IllegalServiceAddress)?;
                svc_port_given = port.is_some();
                key = Some(ServiceKey::Addr {
                    proto,
                    addr,
                    port: port.unwrap_or(0),
                });
            }
            "fwmark-service" => {
                set_opt(Opt::Service)?;
                let m = number(&v, 1, u32::MAX as i64)
                    .ok_or_else(|| ParseError::InvalidFwmark(v.clone()))?;
                key = Some(ServiceKey::Fwmark {
                    mark: m as u32,
                    v6: false,
                });
            }
            "ipv6" => match &mut key {
                Some(ServiceKey::Fwmark { v6, .. }) => {
                    *v6 = true;
                    v6_flag = true;
                }
                _ => return Err(ParseError::Ipv6BeforeFwmark),
            },
            "scheduler" => {
                set_opt(Opt::Scheduler)?;
                sched = Some(v);
            }
            "persistent" => {
                set_opt(Opt::Persistent)?;
                persistent = Some(match &val {
                    None => DEFAULT_PERSISTENCE,
                    Some(t) => number(t, 1, MAX_TIMEOUT as i64)
                        .ok_or_else(|| ParseError::InvalidTimeout(t.clone()))?
                        as u32,
                });
            }
            "netmask" => {
                set_opt(Opt::Netmask)?;
                netmask = Some(v);
            }
            "real-server" => {
                set_opt(Opt::Server)?;
                dest = Some(parse_addr_port(&v).ok_or(ParseError::IllegalServerAddress)?);
            }
            "masquerading" | "ipip" | "gatewaying" | "fullnat" => {
                set_opt(Opt::Forward)?;
                fwd = match name {
                    "masquerading" => Fwd::Masq,
                    "ipip" => Fwd::Tunnel,
                    "gatewaying" => Fwd::Route,
                    _ => Fwd::FullNat,
                };
            }
            "weight" => {
                set_opt(Opt::Weight)?;
                weight = number(&v, 0, 65535).ok_or(ParseError::IllegalWeight)? as i32;
            }
            "u-threshold" => {
                set_opt(Opt::UThreshold)?;
                uth = number(&v, 0, i32::MAX as i64).ok_or(ParseError::IllegalUThreshold)? as u32;
            }
            "l-threshold" => {
                set_opt(Opt::LThreshold)?;
                lth = number(&v, 0, i32::MAX as i64).ok_or(ParseError::IllegalLThreshold)? as u32;
            }
            "numeric" => set_opt(Opt::Numeric)?,
            "connection" => {
                set_opt(Opt::Connection)?;
                conns = true;
            }
            "timeout" => {
                set_opt(Opt::Timeout)?;
                timeout = true;
            }
            "daemon" => {
                set_opt(Opt::Daemon)?;
                daemon = true;
            }
            "stats" => {
                set_opt(Opt::Stats)?;
                list.stats = true;
            }
            "rate" => {
                set_opt(Opt::Rate)?;
                list.rate = true;
            }
            "thresholds" => {
                set_opt(Opt::Thresholds)?;
                list.thresholds = true;
            }
            "persistent-conn" => {
                set_opt(Opt::PersistentConn)?;
                list.persistent_conn = true;
            }
            "nosort" => {
                set_opt(Opt::NoSort)?;
                list.nosort = true;
            }
            "sort" => {}
            "exact" => {
                set_opt(Opt::Exact)?;
                list.exact = true;
            }
            "ops" => {
                set_opt(Opt::Ops)?;
                ops = true;
            }
            "synproxy" => {
                set_opt(Opt::Synproxy)?;
                // DPVS's words for anything else.
                synproxy = match v.as_str() {
                    "enable" => true,
                    "disable" => false,
                    _ => return Err(ParseError::SynproxySwitch),
                };
            }
            "pe" => {
                set_opt(Opt::Pe)?;
                pe = Some(v);
            }
            "sched-flags" => {
                set_opt(Opt::SchedFlags)?;
                sched_flags_arg = Some(v);
            }
            "tun-type" => {
                set_opt(Opt::TunType)?;
                if v != "ipip" {
                    return Err(ParseError::TunType(v));
                }
            }
            other => return Err(ParseError::UnknownOption(format!("--{other}"))),
        }
    }
    let _ = v6_flag;
    let cmd = cmd.ok_or(ParseError::NoCommand)?;

    // ipvsadm's generic_opt_check.
    for o in &used {
        if allowed(cmd, *o) == 'x' {
            return Err(ParseError::IllegalOption {
                option: o.name(),
                command: cmd.name(),
            });
        }
    }
    for o in [Opt::Service, Opt::Server] {
        if allowed(cmd, o) == '+' && !used.contains(&o) {
            return Err(ParseError::MissingOption {
                option: o.name(),
                command: cmd.name(),
            });
        }
    }
    if cmd == Cmd::Timeout {
        if positional.len() != 3 {
            return Err(ParseError::SetNeedsThreeValues);
        }
        let t = |s: &str| {
            number(s, 0, MAX_TIMEOUT as i64)
                .map(|v| v as u32)
                .ok_or_else(|| ParseError::InvalidTimeout(s.to_string()))
        };
        return Ok(Command::SetTimeout {
            tcp: t(&positional[0])?,
            tcpfin: t(&positional[1])?,
            udp: t(&positional[2])?,
        });
    }
    if let Some(p) = positional.first() {
        return Err(ParseError::UnexpectedArgument(p.clone()));
    }

    match cmd {
        Cmd::Flush => Ok(Command::Clear),
        Cmd::Restore => Ok(Command::Restore),
        Cmd::Save => Ok(Command::Save {
            nosort: list.nosort,
        }),
        Cmd::Zero => Ok(Command::Zero(key)),
        Cmd::List => {
            if (conns || timeout || daemon) && (list.stats || list.rate || list.thresholds)
                || (timeout || daemon) && list.persistent_conn
            {
                return Err(ParseError::ListConflict);
            }
            Ok(Command::List {
                service: key,
                options: list,
                connections: conns,
                timeout,
                daemon,
            })
        }
        Cmd::Del => Ok(Command::DelService(key.expect("checked"))),
        Cmd::Add | Cmd::Edit => {
            let key = key.expect("checked");
            if let ServiceKey::Addr { port: 0, .. } = key {
                if persistent.is_none() {
                    let _ = svc_port_given;
                    return Err(ParseError::ZeroPort);
                }
            }
            let is_udp_or_fwmark = matches!(
                key,
                ServiceKey::Fwmark { .. }
                    | ServiceKey::Addr {
                        proto: Protocol::Udp,
                        ..
                    }
            );
            if ops && !is_udp_or_fwmark {
                return Err(ParseError::OpsNotUdp);
            }
            if synproxy && is_udp_or_fwmark {
                return Err(ParseError::SynproxyNotTcp);
            }
            // Where the kernel would refuse the name, with ipvsadm's words.
            let scheduler = match sched.as_deref() {
                None => Some(Scheduler::Wlc),
                Some(name) => name.parse::<Scheduler>().ok(),
            };
            let pe_known = matches!(pe.as_deref(), None | Some("sip"));
            let Some(scheduler) = scheduler.filter(|_| pe_known) else {
                return Err(ParseError::SchedulerNotFound);
            };
            let sched_flags = match &sched_flags_arg {
                Some(a) => parse_sched_flags(scheduler, a)?,
                None => SchedFlags::default(),
            };
            let v6 = key.is_v6();
            let granularity = match &netmask {
                None if v6 => Netmask::V6(128),
                None => Netmask::V4(Ipv4Addr::BROADCAST),
                Some(m) if v6 => {
                    Netmask::V6(number(m, 1, 128).ok_or(ParseError::IllegalV6Netmask)? as u8)
                }
                Some(m) => Netmask::V4(m.parse().map_err(|_| ParseError::IllegalNetmask)?),
            };
            let svc = Service {
                key,
                scheduler,
                sched_flags,
                persistence: persistent.map(|timeout| Persistence {
                    timeout,
                    granularity,
                }),
                pe_name: pe,
                ops,
                synproxy,
                dests: Vec::new(),
            };
            Ok(if cmd == Cmd::Add {
                Command::AddService(svc)
            } else {
                Command::EditService(svc)
            })
        }
        Cmd::AddSrv | Cmd::EditSrv | Cmd::DelSrv => {
            let key = key.expect("checked");
            let (daddr, dport) = dest.expect("checked");
            let svc_port = match key {
                ServiceKey::Addr { port, .. } => port,
                ServiceKey::Fwmark { .. } => 0,
            };
            // "copy vport to dport if not specified"
            let mut port = dport.unwrap_or(svc_port);
            if cmd == Cmd::DelSrv {
                return Ok(Command::DelDest(key, daddr, port));
            }
            if !matches!(key, ServiceKey::Fwmark { .. }) && matches!(fwd, Fwd::Tunnel | Fwd::Route)
            {
                port = svc_port;
            }
            // IPVS's rule, and DPVS's NAT64: an IPv4 FULLNAT server behind
            // an IPv6 service.
            let nat64 = fwd == Fwd::FullNat && key.is_v6() && daddr.is_ipv4();
            if daddr.is_ipv6() != key.is_v6() && fwd != Fwd::Tunnel && !nat64 {
                return Err(ParseError::MixedFamily);
            }
            if used.contains(&Opt::TunType) && fwd != Fwd::Tunnel {
                return Err(ParseError::TunnelConflict);
            }
            let d = Dest {
                addr: daddr,
                port,
                fwd,
                weight,
                u_threshold: uth,
                l_threshold: lth,
            };
            Ok(if cmd == Cmd::AddSrv {
                Command::AddDest(key, d)
            } else {
                Command::EditDest(key, d)
            })
        }
        Cmd::Timeout => unreachable!("handled above"),
    }
}

/// ipvsadm's `parse_sched_flags`.
pub fn parse_sched_flags(sched: Scheduler, arg: &str) -> Result<SchedFlags, ParseError> {
    let mut f = SchedFlags::default();
    for flag in arg.split(',').filter(|s| !s.is_empty()) {
        let need = |s: Scheduler| -> Result<(), ParseError> {
            if sched != s {
                Err(ParseError::IncompatibleSchedFlag(flag.to_string()))
            } else {
                Ok(())
            }
        };
        match flag {
            "flag-1" => f.flag1 = true,
            "flag-2" => f.flag2 = true,
            "flag-3" => f.flag3 = true,
            "sh-fallback" => {
                need(Scheduler::Sh)?;
                f.sh_fallback = true
            }
            "sh-port" => {
                need(Scheduler::Sh)?;
                f.sh_port = true
            }
            "mh-fallback" => {
                need(Scheduler::Mh)?;
                f.mh_fallback = true
            }
            "mh-port" => {
                need(Scheduler::Mh)?;
                f.mh_port = true
            }
            _ => return Err(ParseError::InvalidSchedFlag(flag.to_string())),
        }
    }
    // Normalise flag-N to the scheduler's names (IPVS keeps bits only).
    Ok(super::list::sched_flags_from_bits(sched, sched_bits(&f)))
}

/// Why an ipvsadm command line is refused. The text is ipvsadm's own
/// (scripts and the end-to-end suites compare it), so each variant's
/// message must stay as ipvsadm prints it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The option as given (`--foo`, `-Q`).
    #[error("{0}: unknown option")]
    UnknownOption(String),
    #[error("{0}: option does not take an argument")]
    NoArgumentTaken(String),
    #[error("{0}: missing argument")]
    MissingArgument(String),
    #[error("multiple commands specified")]
    MultipleCommands,
    #[error("multiple '{0}' options specified")]
    MultipleOptions(&'static str),
    #[error("illegal virtual server address[:port] specified")]
    IllegalServiceAddress,
    #[error("invalid fwmark value `{0}' specified")]
    InvalidFwmark(String),
    #[error("-6 used before -f")]
    Ipv6BeforeFwmark,
    #[error("invalid timeout value `{0}' specified")]
    InvalidTimeout(String),
    #[error("illegal real server address[:port] specified")]
    IllegalServerAddress,
    #[error("illegal weight specified")]
    IllegalWeight,
    #[error("illegal u_threshold specified")]
    IllegalUThreshold,
    #[error("illegal l_threshold specified")]
    IllegalLThreshold,
    #[error("synproxy switch must be enable or disable")]
    SynproxySwitch,
    #[error("tunnel type `{0}' is not supported (only ipip)")]
    TunType(String),
    #[error("no command specified")]
    NoCommand,
    #[error("Illegal '{option}' option with the '{command}' command")]
    IllegalOption {
        option: &'static str,
        command: &'static str,
    },
    #[error("You need to supply the '{option}' option for the '{command}' command")]
    MissingOption {
        option: &'static str,
        command: &'static str,
    },
    #[error("--set option requires 3 timeout values")]
    SetNeedsThreeValues,
    #[error("unexpected argument {0}")]
    UnexpectedArgument(String),
    #[error("options conflicts in the list command")]
    ListConflict,
    #[error("Zero port specified for non-persistent service")]
    ZeroPort,
    #[error("One-Packet Scheduling is only for UDP virtual services")]
    OpsNotUdp,
    #[error("SYN proxy is only for TCP virtual services")]
    SynproxyNotTcp,
    #[error("Scheduler or persistence engine not found")]
    SchedulerNotFound,
    #[error("incompatible scheduler flag `{0}'")]
    IncompatibleSchedFlag(String),
    #[error("invalid scheduler flag `{0}'")]
    InvalidSchedFlag(String),
    #[error("illegal ipv6 netmask specified")]
    IllegalV6Netmask,
    #[error("illegal virtual server persistent mask specified")]
    IllegalNetmask,
    #[error("Different address family is allowed only for tunneling servers")]
    MixedFamily,
    #[error("Tunnel options conflict with forward method")]
    TunnelConflict,
    /// A sync daemon option's value, in ipvsadm's words.
    #[error("{0}")]
    Daemon(&'static str),
    #[error("Illegal '{0}' option without --start-daemon")]
    DaemonOptionAlone(&'static str),
}

/// A table change libipvs refuses, in libipvs's words (`ipvsadm` prints
/// them, and so does `ferrovsadm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("Service already exists")]
    ServiceExists,
    /// An edit or a delete of a service that is not there.
    #[error("No such service")]
    NoSuchService,
    /// A server change in a service that is not there.
    #[error("Service not defined")]
    ServiceNotDefined,
    #[error("Destination already exists")]
    DestExists,
    #[error("No such destination")]
    NoSuchDest,
}

/// What is wrong with one line of a rules file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleProblem {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Table(#[from] TableError),
}

/// An error in a rules file, with its 1-based line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct RuleError {
    pub line: usize,
    pub problem: RuleProblem,
}

/// Parses `ipvsadm -S` / `ipvsadm-restore` input: one command per line,
/// optionally starting with `ipvsadm`; blank lines and `#` comments skipped.
pub fn parse_rules(text: &str) -> Result<Vec<Command>, RuleError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"ipvsadm") {
            words.remove(0);
        }
        let c = parse_command(&words).map_err(|e| RuleError {
            line: i + 1,
            problem: e.into(),
        })?;
        out.push(c);
    }
    Ok(out)
}

/// Applies a change command to a table, with libipvs's error messages.
/// List/save/zero/timeout/restore commands are ignored (they change no rule).
pub fn apply(t: &mut Table, c: &Command) -> Result<(), TableError> {
    match c {
        Command::AddService(s) => {
            if t.find(&s.key).is_some() {
                return Err(TableError::ServiceExists);
            }
            t.services.push(s.clone());
        }
        Command::EditService(s) => {
            let cur = t.find_mut(&s.key).ok_or(TableError::NoSuchService)?;
            let dests = std::mem::take(&mut cur.dests);
            *cur = Service { dests, ..s.clone() };
        }
        Command::DelService(k) => {
            let before = t.services.len();
            t.services.retain(|s| &s.key != k);
            if t.services.len() == before {
                return Err(TableError::NoSuchService);
            }
        }
        Command::Clear => t.services.clear(),
        Command::AddDest(k, d) => {
            let s = t.find_mut(k).ok_or(TableError::ServiceNotDefined)?;
            if s.dests.iter().any(|x| x.addr == d.addr && x.port == d.port) {
                return Err(TableError::DestExists);
            }
            s.dests.push(d.clone());
        }
        Command::EditDest(k, d) => {
            let s = t.find_mut(k).ok_or(TableError::ServiceNotDefined)?;
            let x = s
                .dests
                .iter_mut()
                .find(|x| x.addr == d.addr && x.port == d.port)
                .ok_or(TableError::NoSuchDest)?;
            *x = d.clone();
        }
        Command::DelDest(k, a, p) => {
            let s = t.find_mut(k).ok_or(TableError::ServiceNotDefined)?;
            let before = s.dests.len();
            s.dests.retain(|x| !(x.addr == *a && x.port == *p));
            if s.dests.len() == before {
                return Err(TableError::NoSuchDest);
            }
        }
        Command::List { .. }
        | Command::Save { .. }
        | Command::Zero(_)
        | Command::SetTimeout { .. }
        | Command::Restore
        | Command::StartDaemon(_)
        | Command::StopDaemon { .. } => {}
    }
    Ok(())
}

/// Builds a table from rules text (parse + apply, in order).
pub fn table_from_rules(text: &str) -> Result<Table, RuleError> {
    let mut t = Table::default();
    for (i, c) in parse_rules(text)?.iter().enumerate() {
        apply(&mut t, c).map_err(|e| RuleError {
            line: text
                .lines()
                .enumerate()
                .filter(|(_, l)| {
                    let l = l.trim();
                    !l.is_empty() && !l.starts_with('#')
                })
                .nth(i)
                .map(|(n, _)| n + 1)
                .unwrap_or(0),
            problem: e.into(),
        })?;
    }
    Ok(t)
}

/// `-t ADDR:PORT`, `-u ...`, `--sctp-service ...`, `-f N [-6]`.
pub fn rule_service_name(k: &ServiceKey) -> String {
    match k {
        ServiceKey::Addr { proto, addr, port } => {
            let opt = match proto {
                Protocol::Tcp => "-t",
                Protocol::Udp => "-u",
                Protocol::Sctp => "--sctp-service",
            };
            format!("{opt} {}", addr_port(*addr, *port))
        }
        ServiceKey::Fwmark { mark, v6: false } => format!("-f {mark}"),
        ServiceKey::Fwmark { mark, v6: true } => format!("-f {mark} -6"),
    }
}

/// `ipvsadm -S -n` (`--nosort` keeps the table's order).
pub fn format_rules(t: &Table, nosort: bool) -> String {
    let mut services = t.services.clone();
    if !nosort {
        ipvs_sort(&mut services, &|a: &Service, b: &Service| {
            cmp_services(&a.key, &b.key)
        });
    }
    let mut out = String::new();
    for s in &mut services {
        let name = rule_service_name(&s.key);
        let _ = write!(out, "-A {name} -s {}", s.scheduler);
        if let Some(p) = &s.persistence {
            let _ = write!(out, " -p {}", p.timeout);
            match p.granularity {
                Netmask::V4(m) if !s.key.is_v6() && m != Ipv4Addr::BROADCAST => {
                    let _ = write!(out, " -M {m}");
                }
                Netmask::V6(l) if s.key.is_v6() && l != 128 => {
                    let _ = write!(out, " -M {l}");
                }
                _ => {}
            }
        }
        if let Some(pe) = &s.pe_name {
            let _ = write!(out, " --pe {pe}");
        }
        if s.ops {
            out.push_str(" -o");
        }
        // DPVS's ipvsadm leaves it out of -S, which then restores without
        // it: printed here so that -S | -R keeps the service as it was.
        if s.synproxy {
            out.push_str(" -j enable");
        }
        if sched_bits(&s.sched_flags) != 0 {
            let _ = write!(out, " -b {}", sched_flags_text(s.scheduler, &s.sched_flags));
        }
        out.push('\n');
        if !nosort {
            ipvs_sort(&mut s.dests, &cmp_dests);
        }
        for d in &s.dests {
            let _ = write!(
                out,
                "-a {name} -r {} {} -w {}",
                addr_port(d.addr, d.port),
                d.fwd.switch(),
                d.weight
            );
            if d.fwd == Fwd::Tunnel {
                // Kernels since 5.2 report the tunnel type; ipvsadm 1.31 prints it.
                out.push_str(" --tun-type ipip");
            }
            out.push('\n');
        }
    }
    out
}
