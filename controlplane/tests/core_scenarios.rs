//! Recorded scenarios for the control core ([`ferrovs_controlplane::core`]).
//!
//! Every file of `tests/scenarios/` is a transcript: comments (`#`),
//! configuration files (`file NAME <<END` ... `END`), inputs (`> ...`) and,
//! after each input, the outputs the core gave for it (`< ...`) or what a
//! `> show` printed (`= ...`). The test replays the inputs through a
//! [`Harness`] (the core, a fake clock, a fake dataplane that keeps the
//! snapshots, a fake VRRP driver) and compares the transcript it writes
//! with the file. `FERROVS_RECORD=1` rewrites the files instead (review
//! the diff).
//!
//! Inputs:
//! - `> reload NAME`: the file NAME as SIGHUP reads it (no health checks:
//!   the files' own difference).
//! - `> health IPVSADM-COMMAND`: the health checks want the table so
//!   (`-a`/`-e` a server in with its weight, `-d` it out, ...).
//! - `> admin IPVSADM-COMMAND`: `ferrovsadm` (`-R` takes `file NAME`'s
//!   text: `> admin -R < NAME`).
//! - `> vips held|released|listed ADDR...`: VRRP's VIPs.
//! - `> addr add|del PORT ADDR/LEN`, `> link del PORT`: the kernel's
//!   network changes (the southbound's events).
//! - `> beat WORKER`: a worker polls now; `> heartbeats`: the stamps reach
//!   the core; `> advance MS`: the clock moves on.
//! - `> vrrp-fails`: the next VRRP start fails.
//! - `> tick`; `> show rules|timeouts|vips|counters`.

use ferrovs_config::ipvsadm::rules::{format_rules, parse_command};
use ferrovs_controlplane::core::{AdminCommand, Core, Input, Level, Output, Reload, TableChange};
use ferrovs_controlplane::ipvs_state::{IpvsState, Net};
use ferrovs_controlplane::southbound::net_state::{Addr, Link, NetEvent};
use ferrovs_controlplane::southbound::NetState;
use ferrovs_dataplane::conn::template::TemplateTable;
use ferrovs_dataplane::snapshot::{AddrKind, PortConf, Snapshot};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The workers' side: what they were handed.
#[derive(Default)]
struct FakeDataplane {
    published: Vec<Snapshot>,
}

/// The core with everything around it faked, time included.
struct Harness {
    core: Core,
    now: Instant,
    epoch: Instant,
    dataplane: FakeDataplane,
    /// The fake VRRP driver: whether it runs, whether its next start fails.
    vrrp_running: bool,
    vrrp_fails: bool,
    kernel: NetState,
    ifindex: BTreeMap<String, u32>,
    stamps: Vec<u64>,
    files: BTreeMap<String, String>,
    next_id: u64,
}

const WORKERS: usize = 2;

impl Harness {
    fn new() -> Harness {
        let ports = vec![
            PortConf {
                name: "p0".into(),
                mac: [2, 0, 0, 0, 0, 1],
                addrs: vec![(Ipv4Addr::new(198, 18, 0, 1), 24)],
                mtu: 1500,
            },
            PortConf {
                name: "p1".into(),
                mac: [2, 0, 0, 0, 1, 1],
                addrs: vec![(Ipv4Addr::new(198, 18, 1, 1), 24)],
                mtu: 1500,
            },
        ];
        let mut kernel = NetState::new();
        let mut ifindex = BTreeMap::new();
        for (i, p) in ports.iter().enumerate() {
            let index = i as u32 + 2;
            ifindex.insert(p.name.clone(), index);
            kernel.apply(NetEvent::Link(Link {
                index,
                name: p.name.clone(),
                mac: Some(p.mac),
                mtu: p.mtu as u32,
                admin_up: true,
                oper_up: true,
                ether: true,
                iflink: None,
            }));
            for (a, len) in &p.addrs {
                kernel.apply(NetEvent::AddrAdded(Addr {
                    index,
                    ip: IpAddr::V4(*a),
                    prefix: *len,
                }));
            }
        }
        let net = Net {
            ports,
            ..Default::default()
        };
        let state = IpvsState::new(WORKERS, Arc::new(TemplateTable::new(1024)), 4096);
        let epoch = Instant::now();
        let first = state.build(1, &net, &[]).unwrap();
        Harness {
            core: Core::new(state, net, Default::default(), epoch),
            now: epoch,
            epoch,
            dataplane: FakeDataplane {
                published: vec![first],
            },
            vrrp_running: false,
            vrrp_fails: false,
            kernel,
            ifindex,
            stamps: vec![1_000_000; WORKERS],
            files: BTreeMap::new(),
            next_id: 0,
        }
    }

    /// The workers' clock.
    fn worker_ms(&self) -> u64 {
        ferrovs_controlplane::heartbeat::clock_ms(self.epoch, self.now)
    }

    /// Feeds one input and carries out the outputs as the daemon does,
    /// writing them to `out`.
    fn feed(&mut self, input: Input, out: &mut String) {
        let outs = self.core.handle(input, self.now);
        for o in outs {
            self.carry_out(o, out);
        }
    }

    fn carry_out(&mut self, o: Output, out: &mut String) {
        match o {
            Output::Publish(s) => {
                render_snapshot(&s, out);
                self.dataplane.published.push(*s);
            }
            Output::CommitHealthPlan => out.push_str("< commit health plan\n"),
            Output::StartVrrp(cfg) => {
                let ok = !std::mem::take(&mut self.vrrp_fails);
                let _ = writeln!(
                    out,
                    "< start vrrp ({} instance(s)){}",
                    cfg.vrrp_instances.len(),
                    if ok { "" } else { ": fails" }
                );
                self.vrrp_running = ok;
                self.feed(Input::VrrpStarted(ok), out);
            }
            Output::ReloadVrrp(cfg) => {
                assert!(
                    self.vrrp_running,
                    "a reload for a VRRP driver that does not run"
                );
                let _ = writeln!(
                    out,
                    "< reload vrrp ({} instance(s))",
                    cfg.vrrp_instances.len()
                );
            }
            Output::TrackWorkers(up) => {
                let _ = writeln!(out, "< track workers {}", if up { "up" } else { "down" });
            }
            Output::Reply { id, result } => match result {
                Ok(()) => {
                    let _ = writeln!(out, "< reply {id} ok");
                }
                Err(e) => {
                    let _ = writeln!(out, "< reply {id} error: {e}");
                }
            },
            Output::Reloaded(r) => match r {
                Ok(n) => {
                    let _ = writeln!(out, "< reloaded: {n} change(s)");
                }
                Err(e) => {
                    let _ = writeln!(out, "< reload refused: {e}");
                }
            },
            Output::ViewChanged => out.push_str("< view\n"),
            Output::Log(l, m) => {
                let l = match l {
                    Level::Info => "info",
                    Level::Warn => "warn",
                    Level::Error => "error",
                };
                // Paths of temporary files would differ from run to run.
                let _ = writeln!(out, "< log {l}: {m}");
            }
        }
    }

    /// Runs one `>` line.
    fn input(&mut self, line: &str, out: &mut String) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["reload", name] => {
                let text = self.file(name);
                let loaded = ferrovs_config::load_str(name, &text);
                self.feed(
                    Input::Reload(Box::new(Reload {
                        path: name.to_string(),
                        loaded,
                        health: None,
                    })),
                    out,
                );
            }
            ["health", cmd @ ..] => {
                let c = parse_command(cmd).unwrap_or_else(|e| panic!("{line}: {e}"));
                // The scenario files spell a health check's change as an
                // ipvsadm line; the health manager emits the change itself.
                let d =
                    TableChange::from_command(&c).unwrap_or_else(|| panic!("{line}: no change"));
                self.feed(Input::Health(vec![d]), out);
            }
            ["admin", "-R", "<", name] => {
                let text = self.file(name);
                let c = parse_command(&["-R"]).unwrap();
                let a = AdminCommand::from_command(&c, Some(&text))
                    .unwrap()
                    .unwrap();
                self.admin(a, out);
            }
            ["admin", cmd @ ..] => {
                let c = parse_command(cmd).unwrap_or_else(|e| panic!("{line}: {e}"));
                let a = AdminCommand::from_command(&c, None)
                    .unwrap_or_else(|| panic!("{line}: not a change"))
                    .unwrap_or_else(|e| panic!("{line}: {e}"));
                self.admin(a, out);
            }
            ["vips", how, addrs @ ..] => {
                let addrs: Vec<std::net::IpAddr> =
                    addrs.iter().map(|a| a.parse().unwrap()).collect();
                let input = match *how {
                    "held" => Input::VipsHeld(addrs, true),
                    "released" => Input::VipsHeld(addrs, false),
                    "listed" => Input::VipsListed(addrs),
                    _ => panic!("{line}"),
                };
                self.feed(input, out);
            }
            ["addr", how, port, cidr] => {
                let (a, len) = cidr.split_once('/').unwrap();
                let addr = Addr {
                    index: self.ifindex[*port],
                    ip: a.parse().unwrap(),
                    prefix: len.parse().unwrap(),
                };
                self.kernel.apply(match *how {
                    "add" => NetEvent::AddrAdded(addr),
                    "del" => NetEvent::AddrRemoved(addr),
                    _ => panic!("{line}"),
                });
                self.feed(Input::NetChange(Arc::new(self.kernel.clone())), out);
            }
            ["link", "del", port] => {
                self.kernel.apply(NetEvent::LinkGone(self.ifindex[*port]));
                self.feed(Input::NetChange(Arc::new(self.kernel.clone())), out);
            }
            ["beat", w] => {
                let now = self.worker_ms();
                self.stamps[w.parse::<usize>().unwrap()] = now;
            }
            ["heartbeats"] => self.feed(Input::Heartbeats(self.stamps.clone()), out),
            ["advance", ms] => self.now += Duration::from_millis(ms.parse().unwrap()),
            ["vrrp-fails"] => self.vrrp_fails = true,
            ["tick"] => self.feed(Input::Tick, out),
            ["show", what] => self.show(what, out),
            _ => panic!("unknown input: {line}"),
        }
    }

    fn admin(&mut self, cmd: AdminCommand, out: &mut String) {
        self.next_id += 1;
        let id = self.next_id;
        self.feed(Input::Admin { id, cmd }, out);
    }

    fn file(&self, name: &str) -> String {
        self.files
            .get(name)
            .unwrap_or_else(|| panic!("no file {name}"))
            .clone()
    }

    fn show(&self, what: &str, out: &mut String) {
        match what {
            "rules" => {
                for l in format_rules(&self.core.state().table, false).lines() {
                    let _ = writeln!(out, "= {l}");
                }
            }
            "timeouts" => {
                let (a, b, c) = self.core.state().timeouts.get();
                let _ = writeln!(out, "= tcp {a} tcpfin {b} udp {c}");
            }
            "vips" => {
                for (a, held) in self.core.vrrp_vips() {
                    let _ = writeln!(out, "= {a} {}", if *held { "held" } else { "released" });
                }
            }
            "counters" => {
                let r = self.core.reloads();
                let _ = writeln!(
                    out,
                    "= generation {} (dataplane has {}) reloads ok {} failed {} last {} workers {} stalls {} vrrp {}",
                    self.core.generation(),
                    self.dataplane.published.last().map_or(0, |s| s.generation),
                    r.ok,
                    r.failed,
                    if r.last_ok { "ok" } else { "failed" },
                    if self.core.workers_running() { "running" } else { "stalled" },
                    self.core.worker_stalls(),
                    if self.core.vrrp_running() { "running" } else { "stopped" },
                );
            }
            _ => panic!("show {what}?"),
        }
    }
}

/// A snapshot as a scenario shows it: generation and timeouts, the ports'
/// addresses, the VIPs, the services and their servers.
fn render_snapshot(s: &Snapshot, out: &mut String) {
    let (tcp, fin, udp) = s.timeouts.get();
    let _ = writeln!(
        out,
        "< publish generation {} (timeouts {tcp} {fin} {udp})",
        s.generation
    );
    for p in &s.ports {
        let addrs: Vec<String> = p.addrs.iter().map(|(a, l)| format!("{a}/{l}")).collect();
        let _ = writeln!(out, "<   port {} {} mtu {}", p.name, addrs.join(" "), p.mtu);
    }
    let mut vips: Vec<(Ipv4Addr, bool)> = s
        .addresses()
        .filter_map(|(a, k)| match k {
            AddrKind::Vip { active } => Some((a, active)),
            _ => None,
        })
        .collect();
    vips.sort();
    for (a, active) in vips {
        let _ = writeln!(
            out,
            "<   vip {a} {}",
            if active { "active" } else { "inactive" }
        );
    }
    for svc in &s.services {
        let _ = writeln!(
            out,
            "<   {:?} {}:{} {}",
            svc.proto,
            svc.vaddr,
            svc.vport,
            svc.sched.kind().name()
        );
        for d in &svc.dests {
            let _ = writeln!(
                out,
                "<     -> {}:{} {:?} weight {}",
                d.addr, d.port, d.fwd, d.weight
            );
        }
    }
    let mut vips6: Vec<_> = s
        .addresses6()
        .filter_map(|(a, k)| match k {
            AddrKind::Vip { active } => Some((a, active)),
            _ => None,
        })
        .collect();
    vips6.sort();
    for (a, active) in vips6 {
        let _ = writeln!(
            out,
            "<   vip [{a}] {}",
            if active { "active" } else { "inactive" }
        );
    }
    for svc in &s.services6 {
        let _ = writeln!(
            out,
            "<   {:?} [{}]:{} {}",
            svc.proto,
            svc.vaddr,
            svc.vport,
            svc.sched.kind().name()
        );
        for (d, a) in svc.dests.iter().zip(&svc.addrs) {
            let _ = writeln!(
                out,
                "<     -> {} {:?} weight {}",
                ferrovs_config::ipvs::addr_port(*a, d.port),
                d.fwd,
                d.weight
            );
        }
    }
}

/// Replays one scenario; returns the transcript it makes.
fn replay(text: &str) -> String {
    let mut h = Harness::new();
    let mut out = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.starts_with('<') || line.starts_with('=') {
            continue; // recorded outputs: made again below
        }
        out.push_str(line);
        out.push('\n');
        if let Some(rest) = line.strip_prefix("file ") {
            let (name, end) = rest.split_once(" <<").expect("file NAME <<END");
            let mut body = String::new();
            for l in lines.by_ref() {
                out.push_str(l);
                out.push('\n');
                if l == end {
                    break;
                }
                body.push_str(l);
                body.push('\n');
            }
            h.files.insert(name.to_string(), body);
        } else if let Some(input) = line.strip_prefix("> ") {
            h.input(input, &mut out);
        }
    }
    out
}

#[test]
fn every_recorded_scenario_replays() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let record = std::env::var_os("FERROVS_RECORD").is_some();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "scenarios missing in {}", dir.display());
    let mut failed = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let got = replay(&text);
        if record {
            std::fs::write(f, &got).unwrap();
        } else if got != text {
            let first = got
                .lines()
                .zip(text.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(got.lines().count().min(text.lines().count()));
            failed.push(format!(
                "{}: differs from line {}:\n--- recorded\n{}\n--- now\n{}",
                f.display(),
                first + 1,
                text.lines()
                    .skip(first)
                    .take(8)
                    .collect::<Vec<_>>()
                    .join("\n"),
                got.lines()
                    .skip(first)
                    .take(8)
                    .collect::<Vec<_>>()
                    .join("\n"),
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

/// The harness itself: a scenario whose recorded output is wrong fails.
#[test]
fn a_wrong_recording_is_caught() {
    let text = "> admin -A -t 198.18.0.100:80 -s rr\n< reply 1 error: Service already exists\n";
    assert_ne!(replay(text), text);
}
