//! The health state of every virtual and real server, without I/O: fed
//! check results (and reloads), it returns the IPVS changes to make, the
//! lines to log, the scripts to run and the mails to send.
//!
//! The logic follows keepalived 2.2's ipwrapper.c: a real server goes down
//! when the first of its checkers fails and comes back when the last failed
//! one passes (`num_failed_checkers`); a failed server is deleted, or kept
//! with weight 0 under `inhibit_on_failure`; the quorum (live weight against
//! `quorum` ± `hysteresis`) decides whether the sorry server replaces the
//! pool. IPVS changes are not issued one by one as keepalived does: this
//! module keeps, for every destination, the weight keepalived would have set
//! (or none), and the table changes are the difference of that view before and
//! after an event. The result is the same table, and a view that cannot
//! drift from what was emitted.

use super::checker::{misc_retry_text, next_delay, CheckerState, Probe, Step};
use super::names::{fmt_rs, fmt_vs};
use crate::core::TableChange;
use ferrovs_config::ipvs::dest_port;
use ferrovs_config::ipvs::{initial_table, service_keys, Dest, Fwd, Service, ServiceKey, Table};
use ferrovs_config::model::*;
use serde::Serialize;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// IPVS_WEIGHT_LIMIT: the largest weight keepalived gives IPVS.
const WEIGHT_LIMIT: i64 = 65535;

/// keepalived's `real_weight()`: the effective weight clamped to what IPVS
/// accepts.
fn real_weight(w: i64) -> i32 {
    w.clamp(0, WEIGHT_LIMIT) as i32
}

/// Something for the I/O side to do besides changing the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notification {
    /// Run a notify_up / notify_down / quorum_up / quorum_down script, as
    /// configured (keepalived passes these no arguments of its own).
    Script { script: Script, what: &'static str },
    /// An smtp_alert mail.
    Mail { subject: String, body: String },
}

/// A state change, for the API, metrics and the daemon's own logs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Change {
    RealServer {
        vs: String,
        rs: String,
        alive: bool,
    },
    Weight {
        vs: String,
        rs: String,
        from: i32,
        to: i32,
    },
    Quorum {
        vs: String,
        up: bool,
    },
    SorryServer {
        vs: String,
        rs: String,
        active: bool,
    },
}

/// What one event produced besides table changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// keepalived's log lines, in order.
    pub logs: Vec<String>,
    pub notifications: Vec<Notification>,
    pub changes: Vec<Change>,
}

/// Mail settings the decisions need: whether to write mails at all, and
/// the router_id that starts every subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alerts {
    pub enabled: bool,
    pub router_id: String,
}

struct Fx<'a> {
    e: &'a mut Effects,
    alerts: &'a Alerts,
}

impl Fx<'_> {
    fn log(&mut self, s: String) {
        self.e.logs.push(s);
    }
    fn script(&mut self, s: &Option<Script>, what: &'static str) {
        if let Some(s) = s {
            self.e.notifications.push(Notification::Script {
                script: s.clone(),
                what,
            });
        }
    }
    fn mail(&mut self, subject: String, body: String) {
        if self.alerts.enabled {
            self.e
                .notifications
                .push(Notification::Mail { subject, body });
        }
    }
}

/// Identifies one checker of the current configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct CheckerId {
    pub vs: usize,
    pub rs: usize,
    pub checker: usize,
}

/// The last result of a checker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LastCheck {
    pub ok: bool,
    /// When the result arrived, in milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// How long the probe took, in microseconds.
    pub latency_us: u64,
    /// What failed (keepalived's words), empty on success.
    pub detail: String,
}

#[derive(Clone, Debug)]
pub(crate) struct CheckerSlot {
    pub(crate) cfg: Checker,
    pub(crate) st: CheckerState,
    last: Option<LastCheck>,
    /// MISC_CHECK misc_dynamic: this checker's share of the effective
    /// weight (`cur_weight`: exit status − 2 − configured weight).
    cur_weight: i64,
    /// MISC_CHECK: the last exit status acted on.
    last_exit: Option<i32>,
}

#[derive(Clone, Debug)]
pub(crate) struct RsState {
    pub(crate) cfg: RealServer,
    pub(crate) name: String,
    alive: bool,
    /// The weight this destination has in IPVS, or None when it is not there
    /// (keepalived's `set` flag plus the weight it last gave).
    ipvs: Option<i32>,
    effective: i64,
    peffective: i64,
    reloaded: bool,
    num_failed: u32,
    pub(crate) checkers: Vec<CheckerSlot>,
    /// Per service of the virtual server: this server's destination port,
    /// None when an earlier server already is that destination.
    ports: Vec<Option<u16>>,
}

#[derive(Clone, Debug)]
struct SorryState {
    cfg: SorryServer,
    name: String,
    alive: bool,
    ipvs: Option<i32>,
    ports: Vec<u16>,
}

#[derive(Clone, Debug)]
pub(crate) struct VsState {
    pub(crate) cfg: VirtualServer,
    pub(crate) name: String,
    /// What keepalived compares to match a virtual server across a reload.
    ident: String,
    /// The services this virtual server installs (without destinations).
    services: Vec<Service>,
    pub(crate) rs: Vec<RsState>,
    sorry: Option<SorryState>,
    quorum_up: bool,
}

/// Whether two checkers are "the same" across a reload: keepalived's
/// compare functions look at the check's parameters and the connection
/// options, not at the timing.
fn same_checker(a: &Checker, b: &Checker) -> bool {
    a.kind == b.kind
        && a.common.connect_ip == b.common.connect_ip
        && a.common.connect_port == b.common.connect_port
        && a.common.bindto == b.common.bindto
        && a.common.bind_port == b.common.bind_port
        && a.common.bind_if == b.common.bind_if
        && a.common.connect_timeout == b.common.connect_timeout
        && a.common.fwmark == b.common.fwmark
}

fn now_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl VsState {
    fn build(
        cfg: &Config,
        vs: &VirtualServer,
        claimed: &mut Vec<ServiceKey>,
        skel: &Table,
        reload: bool,
    ) -> VsState {
        let name = fmt_vs(cfg, vs);
        let mut services = Vec::new();
        for key in service_keys(cfg, vs) {
            if claimed.contains(&key) {
                continue; // a duplicate service: initial_table keeps the first
            }
            claimed.push(key.clone());
            if let Some(s) = skel.find(&key) {
                services.push(Service {
                    dests: Vec::new(),
                    ..s.clone()
                });
            }
        }
        let mut rs: Vec<RsState> = Vec::new();
        for r in &vs.real_servers {
            let ports = services
                .iter()
                .enumerate()
                .map(|(si, s)| {
                    let p = dest_port(&s.key, r.port, r.fwd);
                    let taken = rs
                        .iter()
                        .any(|o| o.cfg.addr == r.addr && o.ports[si] == Some(p));
                    (!taken).then_some(p)
                })
                .collect();
            let checkers = r
                .checkers
                .iter()
                .map(|c| CheckerSlot {
                    cfg: c.clone(),
                    st: if reload {
                        CheckerState::at_reload()
                    } else {
                        CheckerState::at_start(c)
                    },
                    last: None,
                    cur_weight: 0,
                    last_exit: None,
                })
                .collect();
            rs.push(RsState {
                cfg: r.clone(),
                name: fmt_rs(vs, r.addr, r.port),
                alive: false,
                ipvs: None,
                effective: r.weight as i64,
                peffective: r.weight as i64,
                reloaded: false,
                num_failed: 0,
                checkers,
                ports,
            });
        }
        let sorry = vs.sorry_server.as_ref().map(|s| SorryState {
            cfg: s.clone(),
            name: fmt_rs(vs, s.addr, s.port),
            alive: false,
            ipvs: None,
            ports: services
                .iter()
                .map(|sv| dest_port(&sv.key, s.port, s.fwd))
                .collect(),
        });
        let ident = match &vs.address {
            VsAddress::Fwmark(_) => format!(
                "{name} {}",
                if ferrovs_config::ipvs::service_family_v6(vs).unwrap_or(false) {
                    "v6"
                } else {
                    "v4"
                }
            ),
            _ => name.clone(),
        };
        VsState {
            cfg: vs.clone(),
            name,
            ident,
            services,
            rs,
            sorry,
            quorum_up: false,
        }
    }

    /// The services as this state has them in IPVS.
    fn view(&self) -> Vec<Service> {
        let mut out = Vec::with_capacity(self.services.len());
        for (si, s) in self.services.iter().enumerate() {
            let mut svc = s.clone();
            for r in &self.rs {
                if let (Some(w), Some(port)) = (r.ipvs, r.ports[si]) {
                    svc.dests.push(Dest {
                        addr: r.cfg.addr,
                        port,
                        fwd: Fwd::from_lb_kind(r.cfg.fwd),
                        weight: w,
                        u_threshold: r.cfg.uthreshold,
                        l_threshold: r.cfg.lthreshold,
                    });
                }
            }
            if let Some(ss) = &self.sorry {
                if let Some(w) = ss.ipvs {
                    let port = ss.ports[si];
                    match svc
                        .dests
                        .iter_mut()
                        .find(|d| d.addr == ss.cfg.addr && d.port == port)
                    {
                        // The sorry server is one of the real servers: in
                        // service it takes the destination over (as
                        // initial_table does); disabled it leaves it alone.
                        Some(d) => {
                            if ss.alive {
                                d.weight = w;
                            }
                        }
                        None => svc.dests.push(Dest {
                            addr: ss.cfg.addr,
                            port,
                            fwd: Fwd::from_lb_kind(ss.cfg.fwd),
                            weight: w,
                            u_threshold: 0,
                            l_threshold: 0,
                        }),
                    }
                }
            }
            out.push(svc);
        }
        out
    }

    /// `weigh_live_realservers()`.
    fn live_weight(&self) -> i64 {
        self.rs
            .iter()
            .filter(|r| r.alive)
            .map(|r| real_weight(r.effective) as i64)
            .sum()
    }

    fn sorry_alive(&self) -> bool {
        self.sorry.as_ref().is_some_and(|s| s.alive)
    }

    // ---- ipvs_cmd() as keepalived applies it to one destination

    fn ipvs_add(&mut self, ri: usize) {
        let r = &mut self.rs[ri];
        let w = real_weight(r.effective);
        if r.cfg.inhibit_on_failure && r.ipvs.is_some() {
            r.ipvs = Some(w);
        } else if r.ipvs.is_none() {
            r.ipvs = Some(if r.cfg.inhibit_on_failure && r.num_failed > 0 {
                0
            } else {
                w
            });
        }
    }

    fn ipvs_del(&mut self, ri: usize) {
        let r = &mut self.rs[ri];
        if r.cfg.inhibit_on_failure {
            if r.ipvs.is_some() {
                r.ipvs = Some(0);
            }
        } else {
            r.ipvs = None;
        }
    }

    fn ipvs_edit(&mut self, ri: usize) {
        let r = &mut self.rs[ri];
        if r.ipvs.is_some() {
            r.ipvs = Some(real_weight(r.effective));
        }
    }

    fn sorry_add(&mut self) {
        if let Some(s) = &mut self.sorry {
            // A sorry server has keepalived's default weight of 1.
            s.ipvs = Some(1);
        }
    }

    fn sorry_del(&mut self) {
        if let Some(s) = &mut self.sorry {
            s.ipvs = if s.cfg.inhibit {
                s.ipvs.map(|_| 0)
            } else {
                None
            };
        }
    }

    // ---- notifications

    fn do_rs_notifies(&self, ri: usize, fx: &mut Fx) {
        let r = &self.rs[ri];
        if r.alive {
            fx.script(&r.cfg.notify_up, "notify_up");
        } else {
            fx.script(&r.cfg.notify_down, "notify_down");
        }
    }

    fn do_vs_notifies(&self, init: bool, threshold: i64, weight: i64, stopping: bool, fx: &mut Fx) {
        // Only with omega are the notifiers run on the way down.
        if stopping && !self.cfg.omega {
            return;
        }
        if self.quorum_up {
            fx.script(&self.cfg.quorum_up, "quorum_up");
        } else {
            fx.script(&self.cfg.quorum_down, "quorum_down");
        }
        let body = if stopping {
            "=> Shutting down <=".to_string()
        } else {
            let what = match (self.quorum_up, init) {
                (true, true) => "Starting with quorum up",
                (true, false) => "Gained quorum",
                (false, true) => "Starting with quorum down",
                (false, false) => "Lost quorum",
            };
            format!(
                "=> {what} {}+{}={threshold} <= {weight} <=",
                self.cfg.quorum, self.cfg.hysteresis
            )
        };
        let subject = format!(
            "[{}] Virtualserver {} - {}",
            fx.alerts.router_id,
            self.name,
            if self.quorum_up { "UP" } else { "DOWN" }
        );
        fx.mail(subject, body);
    }

    fn rs_mail(&self, ri: usize, body: &str, fx: &mut Fx) {
        let r = &self.rs[ri];
        let subject = format!(
            "[{}] Realserver {} of virtual server {} - {}",
            fx.alerts.router_id,
            r.name,
            self.name,
            if r.alive { "UP" } else { "DOWN" }
        );
        fx.mail(subject, body.to_string());
    }

    // ---- ipwrapper.c

    /// `perform_quorum_state()`: add or remove the live servers.
    fn perform_quorum_state(&mut self, add: bool, fx: &mut Fx) {
        fx.log(format!(
            "{} the pool for VS {}",
            if add {
                "Adding alive servers to"
            } else {
                "Removing alive servers from"
            },
            self.name
        ));
        for ri in 0..self.rs.len() {
            if !self.rs[ri].alive {
                continue;
            }
            if add {
                self.ipvs_add(ri);
            } else {
                self.ipvs_del(ri);
            }
        }
    }

    /// `update_quorum_state()`.
    fn update_quorum_state(&mut self, init: bool, fx: &mut Fx) {
        let w = self.live_weight();
        let q = self.cfg.quorum as i64;
        let h = self.cfg.hysteresis as i64;
        let threshold = q + if self.quorum_up { -h } else { h };
        if !self.quorum_up && w >= threshold {
            self.quorum_up = true;
            fx.log(format!(
                "Gained quorum {q}+{h}={threshold} <= {w} for VS {}",
                self.name
            ));
            fx.e.changes.push(Change::Quorum {
                vs: self.name.clone(),
                up: true,
            });
            if self.sorry_alive() {
                let s = self.sorry.as_ref().expect("sorry_alive");
                fx.log(format!(
                    "{} sorry server {} from VS {}",
                    if s.cfg.inhibit {
                        "Disabling"
                    } else {
                        "Removing"
                    },
                    s.name,
                    self.name
                ));
                fx.e.changes.push(Change::SorryServer {
                    vs: self.name.clone(),
                    rs: s.name.clone(),
                    active: false,
                });
                self.sorry_del();
                if let Some(s) = &mut self.sorry {
                    s.alive = false;
                }
                self.perform_quorum_state(true, fx);
            }
            self.do_vs_notifies(init, threshold, w, false, fx);
        } else if (self.quorum_up && (w == 0 || w < threshold))
            || (init && !self.quorum_up && self.sorry.is_some() && !self.sorry_alive())
        {
            self.quorum_up = false;
            fx.log(format!(
                "{} {q}-{h}={threshold} > {w} for VS {}",
                if init {
                    "Starting with quorum down"
                } else {
                    "Lost quorum"
                },
                self.name
            ));
            fx.e.changes.push(Change::Quorum {
                vs: self.name.clone(),
                up: false,
            });
            if self.sorry.is_some() && !self.sorry_alive() {
                let s = self.sorry.as_ref().expect("checked");
                fx.log(format!(
                    "{} sorry server {} to VS {}",
                    if s.cfg.inhibit { "Enabling" } else { "Adding" },
                    s.name,
                    self.name
                ));
                fx.e.changes.push(Change::SorryServer {
                    vs: self.name.clone(),
                    rs: s.name.clone(),
                    active: true,
                });
                self.perform_quorum_state(false, fx);
                self.sorry_add();
                if let Some(s) = &mut self.sorry {
                    s.alive = true;
                }
            }
            self.do_vs_notifies(init, threshold, w, false, fx);
        }
    }

    /// `perform_svr_state()`: a real server enters or leaves the pool.
    fn perform_svr_state(&mut self, alive: bool, ri: usize, fx: &mut Fx) {
        if self.rs[ri].alive == alive {
            return;
        }
        let inhibit = self.rs[ri].cfg.inhibit_on_failure;
        fx.log(format!(
            "{}ing service {} {} VS {}",
            match (alive, inhibit) {
                (true, true) => "Enabl",
                (true, false) => "Add",
                (false, true) => "Disabl",
                (false, false) => "Remov",
            },
            self.rs[ri].name,
            if inhibit {
                "of"
            } else if alive {
                "to"
            } else {
                "from"
            },
            self.name
        ));
        // While the sorry server stands in, the pool is left alone: the
        // server is added with the others when the quorum returns.
        if self.quorum_up || !self.sorry_alive() {
            if alive {
                self.ipvs_add(ri);
            } else {
                self.ipvs_del(ri);
            }
        }
        self.rs[ri].alive = alive;
        fx.e.changes.push(Change::RealServer {
            vs: self.name.clone(),
            rs: self.rs[ri].name.clone(),
            alive,
        });
        self.do_rs_notifies(ri, fx);
        self.update_quorum_state(false, fx);
    }

    /// `update_svr_wgt()`.
    fn update_svr_wgt(&mut self, weight: i64, ri: usize, update_quorum: bool, fx: &mut Fx) {
        let new = real_weight(weight);
        let old = real_weight(self.rs[ri].effective);
        self.rs[ri].effective = weight;
        if new == old {
            return;
        }
        let r = &self.rs[ri];
        fx.log(format!(
            "Changing weight from {old} to {new} for {}active service {} of VS {}",
            if r.alive { "" } else { "in" },
            r.name,
            self.name
        ));
        fx.e.changes.push(Change::Weight {
            vs: self.name.clone(),
            rs: r.name.clone(),
            from: old,
            to: new,
        });
        if r.ipvs.is_some() && r.alive && (self.quorum_up || !self.sorry_alive()) {
            self.ipvs_edit(ri);
        }
        if update_quorum {
            self.update_quorum_state(false, fx);
        }
    }

    /// `set_checker_state()`.
    fn set_checker_state(&mut self, ri: usize, ci: usize, up: bool) {
        let r = &mut self.rs[ri];
        let c = &mut r.checkers[ci];
        if c.st.is_up == up {
            return;
        }
        c.st.is_up = up;
        if !up {
            r.num_failed += 1;
        } else if r.num_failed > 0 {
            r.num_failed -= 1;
        }
    }

    /// `update_svr_checker_state()`: a checker reports up or down.
    fn update_svr_checker_state(&mut self, alive: bool, ri: usize, ci: usize, fx: &mut Fx) {
        let c = &mut self.rs[ri].checkers[ci];
        if c.st.is_up == alive {
            // The first result confirms the state the checker started in;
            // an alpha checker (or a failure) still tells the scripts.
            if !c.st.has_run {
                let notify = c.cfg.common.alpha || !alive;
                c.st.has_run = true;
                if notify {
                    self.do_rs_notifies(ri, fx);
                }
            }
            return;
        }
        c.st.has_run = true;
        let failed = self.rs[ri].num_failed;
        if alive {
            // Up only when this was the last failed checker.
            if failed <= 1 {
                self.perform_svr_state(true, ri, fx);
            }
        } else if failed == 0 {
            // Down with the first failed checker.
            self.perform_svr_state(false, ri, fx);
        }
        self.set_checker_state(ri, ci, alive);
    }

    /// One probe result of checker `ci` of real server `ri`; returns when
    /// the next check starts.
    fn on_probe(&mut self, ri: usize, ci: usize, probe: &Probe, fx: &mut Fx) -> Duration {
        match &self.rs[ri].checkers[ci].cfg.kind {
            CheckerKind::Misc(m) => {
                let dynamic = m.dynamic;
                let argv0 = m.path.argv.first().cloned().unwrap_or_default();
                self.on_misc(ri, ci, probe, dynamic, &argv0, fx)
            }
            _ => self.on_generic(ri, ci, probe, fx),
        }
    }

    /// TCP_CHECK, HTTP_GET / SSL_GET and DNS_CHECK (check_tcp.c tcp_epilog,
    /// check_http.c epilog/timeout_epilog, check_dns.c dns_final).
    fn on_generic(&mut self, ri: usize, ci: usize, probe: &Probe, fx: &mut Fx) -> Duration {
        #[derive(PartialEq)]
        enum K {
            Tcp,
            Http,
            Dns,
        }
        let slot = &self.rs[ri].checkers[ci];
        let kind = match slot.cfg.kind {
            CheckerKind::Tcp => K::Tcp,
            CheckerKind::Http(_) => K::Http,
            _ => K::Dns,
        };
        let retry = slot.cfg.common.retry;
        let was_up = slot.st.is_up;
        let had_run = slot.st.has_run;
        let rs_name = self.rs[ri].name.clone();
        let (ok, reason) = match probe {
            Probe::Up { .. } => (true, String::new()),
            Probe::Down(r) => (false, r.clone()),
            other => (false, format!("{other:?}")),
        };
        // Each failed attempt is logged as keepalived does with
        // log_all_failures (the model has no switch for it).
        if !ok {
            match kind {
                K::Tcp if was_up => fx.log(format!("TCP connection to {rs_name} {reason}.")),
                K::Http if was_up || !had_run => fx.log(format!("{reason} server {rs_name}.")),
                _ => {}
            }
        }
        let step = self.rs[ri].checkers[ci].st.step(ok, retry);
        match step {
            Step::Up => {
                if kind == K::Http && !was_up {
                    if let Probe::Up { urls } = probe {
                        for (what, path) in urls {
                            fx.log(format!("{what} success to {rs_name} url({path})"));
                        }
                    }
                }
                match kind {
                    K::Tcp => fx.log(format!("TCP connection to {rs_name} success.")),
                    K::Http => fx.log(format!("Remote Web server {rs_name} succeed on service.")),
                    K::Dns => {}
                }
                self.update_svr_checker_state(true, ri, ci, fx);
                // keepalived mails every change of a checker (its
                // no_checker_emails is off by default).
                if !was_up {
                    let body = match kind {
                        K::Tcp => "=> TCP CHECK succeed on service <=",
                        K::Http => "=> CHECK succeed on service <=",
                        K::Dns => "=> DNS_CHECK: succeed on service <=",
                    };
                    self.rs_mail(ri, body, fx);
                }
            }
            Step::Down => {
                match kind {
                    K::Tcp | K::Http => {
                        let what = if kind == K::Tcp {
                            "TCP_CHECK"
                        } else {
                            "HTTP_CHECK"
                        };
                        if retry > 0 && had_run {
                            fx.log(format!(
                                "{what} on service {rs_name} failed after {retry} retries."
                            ));
                        } else {
                            fx.log(format!("{what} on service {rs_name} failed."));
                        }
                    }
                    K::Dns => {
                        let after = if had_run {
                            format!(" after {retry} retries")
                        } else {
                            String::new()
                        };
                        fx.log(format!("DNS_CHECK ({rs_name}) {reason}{after}"));
                    }
                }
                self.update_svr_checker_state(false, ri, ci, fx);
                if was_up {
                    let body = match kind {
                        K::Tcp => "=> TCP CHECK failed on service <=",
                        K::Http => "=> CHECK failed on service : HTTP request failed <=",
                        K::Dns => "=> DNS_CHECK: failed on service <=",
                    };
                    self.rs_mail(ri, body, fx);
                }
            }
            Step::Retry { .. } if kind == K::Dns => {
                fx.log(format!("DNS_CHECK ({rs_name}) {reason}"));
            }
            _ => {}
        }
        self.rs[ri].checkers[ci].st.finish();
        next_delay(&self.rs[ri].checkers[ci].cfg, step)
    }

    /// MISC_CHECK (check_misc.c misc_check_child_thread).
    fn on_misc(
        &mut self,
        ri: usize,
        ci: usize,
        probe: &Probe,
        dynamic: bool,
        argv0: &str,
        fx: &mut Fx,
    ) -> Duration {
        let slot = &self.rs[ri].checkers[ci];
        let retry = slot.cfg.common.retry;
        let was_up = slot.st.is_up;
        let had_run = slot.st.has_run;
        let (success, code, exit_type, reason) = match probe {
            Probe::Up { .. } => (true, 0, "succeeded", None),
            Probe::Exit(0) => (true, 0, "succeeded", None),
            Probe::Exit(c) if dynamic && (2..=255).contains(c) => (true, *c, "succeeded", None),
            Probe::Exit(c) => (false, *c, "failed", Some(format!("exited with status {c}"))),
            Probe::Signal(n) => (false, -1, "failed", Some(format!("due to signal {n}"))),
            Probe::TimedOut => (false, -1, "timed out", None),
            Probe::Down(r) => (false, -1, "failed", Some(r.clone())),
        };
        let mut report: Option<&'static str> = None;
        let mut message_only = false;
        if success {
            if self.rs[ri].checkers[ci].last_exit != Some(code) {
                // misc_dynamic: exit status 2..255 sets the weight to
                // status − 2; 0 restores the configured weight.
                let r = &mut self.rs[ri];
                let iweight = r.cfg.weight as i64;
                let c = &mut r.checkers[ci];
                let cur = if code != 0 {
                    code as i64 - 2 - iweight
                } else {
                    0
                };
                let eff = r.effective - c.cur_weight + cur;
                c.cur_weight = cur;
                c.last_exit = Some(code);
                self.update_svr_wgt(eff, ri, true, fx);
            }
            if self.rs[ri].checkers[ci].st.step(true, retry) == Step::Up {
                report = Some(exit_type);
            }
        } else if was_up || !had_run {
            report = Some(exit_type);
            match self.rs[ri].checkers[ci].st.step(false, retry) {
                Step::Retry { .. } => message_only = true,
                _ => {
                    let c = &mut self.rs[ri].checkers[ci];
                    let cw = c.cur_weight;
                    c.cur_weight = 0;
                    c.last_exit = Some(code);
                    self.rs[ri].effective -= cw;
                }
            }
        }
        if let Some(exit_type) = report {
            let rs_name = &self.rs[ri].name;
            let msg = if success {
                String::new()
            } else {
                misc_retry_text(retry, self.rs[ri].checkers[ci].st.retry_it)
            };
            let why = reason.map(|r| format!(" ({r})")).unwrap_or_default();
            fx.log(format!(
                "Misc check for [{rs_name} VS {}] by [{argv0}] {exit_type}{msg}{why}.",
                self.name
            ));
            if !message_only {
                self.update_svr_checker_state(success, ri, ci, fx);
                if !success {
                    self.rs[ri].checkers[ci].cur_weight = 0;
                }
                let body = format!("=> MISC CHECK {exit_type} on service <=");
                self.rs_mail(ri, &body, fx);
            }
        }
        self.rs[ri].checkers[ci].st.finish();
        let c = &self.rs[ri].checkers[ci];
        if c.st.retry_it > 0 {
            c.cfg.common.delay_before_retry
        } else {
            c.cfg.common.delay_loop
        }
    }

    /// `clear_service_rs()`: a server leaves with its virtual server or
    /// its configuration, or at shutdown.
    fn clear_service_rs(&mut self, ri: usize, stopping: bool, fx: &mut Fx) {
        let r = &self.rs[ri];
        if r.ipvs.is_some() || stopping {
            fx.log(format!(
                "{} {}service {} from VS {}",
                if stopping {
                    "Shutting down"
                } else {
                    "Removing"
                },
                if r.cfg.inhibit_on_failure && !r.alive {
                    "(inhibited) "
                } else {
                    ""
                },
                r.name,
                self.name
            ));
        }
        if r.ipvs.is_none() {
            return;
        }
        // Removed even with inhibit_on_failure.
        self.rs[ri].ipvs = None;
        if !self.rs[ri].alive {
            return;
        }
        self.rs[ri].alive = false;
        if !self.cfg.omega && stopping {
            return;
        }
        fx.e.changes.push(Change::RealServer {
            vs: self.name.clone(),
            rs: self.rs[ri].name.clone(),
            alive: false,
        });
        self.do_rs_notifies(ri, fx);
        let body = if stopping {
            "=> Shutting down <="
        } else {
            "=> Removing <="
        };
        self.rs_mail(ri, body, fx);
    }

    /// `update_vs_notifies()`.
    fn update_vs_notifies(&mut self, stopping: bool, fx: &mut Fx) {
        let threshold = self.cfg.quorum as i64 - self.cfg.hysteresis as i64;
        let w = self.live_weight();
        if stopping || (self.quorum_up && (w == 0 || w < threshold)) {
            self.quorum_up = false;
            self.do_vs_notifies(false, threshold, w, stopping, fx);
        }
    }

    /// `clear_service_vs()` (without lvs_flush_onstop).
    fn clear_service_vs(&mut self, stopping: bool, fx: &mut Fx) {
        if let Some(s) = &mut self.sorry {
            s.ipvs = None;
            s.alive = false;
        }
        for ri in 0..self.rs.len() {
            self.clear_service_rs(ri, stopping, fx);
        }
        self.update_vs_notifies(stopping, fx);
    }

    /// `init_service_rs()` + the rest of `init_service_vs()`.
    fn init_service(&mut self, fx: &mut Fx) {
        for ri in 0..self.rs.len() {
            let r = &self.rs[ri];
            if r.reloaded {
                if r.effective != r.peffective {
                    let new = r.effective;
                    self.rs[ri].effective = self.rs[ri].peffective;
                    self.update_svr_wgt(new, ri, false, fx);
                }
                // A failed server is not added back by a reload.
                continue;
            }
            // With alpha, servers wait for their checks before joining;
            // inhibited ones are there from the start with weight 0.
            if (r.num_failed == 0 && !r.alive) || (r.cfg.inhibit_on_failure && r.ipvs.is_none()) {
                self.ipvs_add(ri);
                if self.rs[ri].num_failed == 0 {
                    self.rs[ri].alive = true;
                }
            }
        }
        self.update_quorum_state(true, fx);
        if let Some(s) = &mut self.sorry {
            if s.cfg.inhibit && s.ipvs.is_none() {
                s.ipvs = Some(0);
            }
        }
    }

    /// `migrate_checkers()`: carry a real server's checker states over a
    /// reload.
    fn migrate(&mut self, ri: usize, old: &RsState, fx: &mut Fx) {
        let mut used = vec![false; old.checkers.len()];
        for ci in 0..self.rs[ri].checkers.len() {
            let found = old.checkers.iter().enumerate().find(|(oi, oc)| {
                !used[*oi] && same_checker(&oc.cfg, &self.rs[ri].checkers[ci].cfg)
            });
            let Some((oi, oc)) = found else { continue };
            used[oi] = true;
            if oc.st.has_run && oc.st.is_up != self.rs[ri].checkers[ci].st.is_up {
                self.set_checker_state(ri, ci, oc.st.is_up);
            }
            let iweight = self.rs[ri].cfg.weight as i64;
            let nc = &mut self.rs[ri].checkers[ci];
            nc.st.has_run = oc.st.has_run;
            nc.last = oc.last.clone();
            let retry = nc.cfg.common.retry;
            // Failures already counted carry over; when they reach the new
            // retry, the next failure is the last. (keepalived means this
            // but sets retry - 1, which asks for one failure more.)
            if oc.st.retry_it > 0 && retry > 0 {
                nc.st.retry_it = oc.st.retry_it.min(retry);
            }
            if let CheckerKind::Misc(m) = &nc.cfg.kind {
                nc.last_exit = oc.last_exit;
                if m.dynamic && oc.last_exit != Some(1) {
                    nc.cur_weight = match oc.last_exit {
                        Some(c) if c >= 2 => c as i64 - 2 - iweight,
                        _ => 0,
                    };
                }
            }
        }
        let r = &mut self.rs[ri];
        r.num_failed = r
            .checkers
            .iter()
            .filter(|c| c.st.has_run && !c.st.is_up)
            .count() as u32;
        let any_run = r.checkers.iter().any(|c| c.st.has_run);
        if r.num_failed > 0 || (!r.alive && !any_run) {
            for ci in 0..self.rs[ri].checkers.len() {
                if !self.rs[ri].checkers[ci].st.has_run {
                    if self.rs[ri].checkers[ci].cfg.common.alpha {
                        self.set_checker_state(ri, ci, false);
                    }
                    let c = &mut self.rs[ri].checkers[ci];
                    c.st.retry_it = c.cfg.common.retry;
                }
            }
        }
        let r = &self.rs[ri];
        if r.num_failed == 0 && !r.alive {
            self.perform_svr_state(true, ri, fx);
        } else if r.num_failed > 0 {
            if r.alive {
                // keepalived leaves such a server flagged alive while it
                // deletes it, and then never adds it back; take it down
                // properly instead.
                self.perform_svr_state(false, ri, fx);
            } else if r.ipvs.is_some() != r.cfg.inhibit_on_failure {
                if r.cfg.inhibit_on_failure {
                    self.ipvs_add(ri);
                } else {
                    self.rs[ri].ipvs = None;
                }
            }
        }
    }
}

/// Per real server, for the API and metrics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RealServerStatus {
    /// keepalived's name, `[addr]:proto:port`.
    pub name: String,
    pub addr: IpAddr,
    pub port: u16,
    pub alive: bool,
    /// Configured weight.
    pub weight: u32,
    /// Weight with MISC_CHECK misc_dynamic applied.
    pub effective_weight: i64,
    /// The weight it has in IPVS, None when it is not in the table.
    pub ipvs_weight: Option<i32>,
    /// The most recent result of any of its checkers.
    pub last: Option<LastCheck>,
    pub checkers: Vec<CheckerStatus>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckerStatus {
    /// TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK or DNS_CHECK.
    pub kind: &'static str,
    pub up: bool,
    pub has_run: bool,
    /// Failures counted towards `retry`.
    pub failures: u32,
    pub last: Option<LastCheck>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SorryServerStatus {
    pub name: String,
    /// In the pool in place of the real servers.
    pub active: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VirtualServerStatus {
    /// keepalived's name, e.g. `[198.18.0.100]:tcp:80`.
    pub name: String,
    pub services: Vec<ServiceKey>,
    pub quorum: u32,
    pub hysteresis: u32,
    pub quorum_up: bool,
    /// Summed weight of the live real servers.
    pub live_weight: i64,
    pub sorry_server: Option<SorryServerStatus>,
    pub real_servers: Vec<RealServerStatus>,
}

/// Every virtual server's health state, fed with results.
#[derive(Clone, Debug)]
pub struct HealthCore {
    pub(crate) vss: Vec<VsState>,
    alerts: Alerts,
}

impl HealthCore {
    /// The state keepalived starts with for `cfg`, and what starting does
    /// (log lines, quorum_up scripts of the services that start with their
    /// quorum, mails). Its [`HealthCore::table`] is
    /// `ferrovs_config::ipvs::initial_table(cfg)`.
    pub fn new(cfg: &Config, alerts: Alerts) -> (HealthCore, Effects) {
        let mut e = Effects::default();
        let core = Self::init(cfg, None, alerts, &mut e);
        (core, e)
    }

    fn init(cfg: &Config, old: Option<&HealthCore>, alerts: Alerts, e: &mut Effects) -> HealthCore {
        let reload = old.is_some();
        let skel = initial_table(cfg);
        let mut claimed = Vec::new();
        let mut vss: Vec<VsState> = cfg
            .virtual_servers
            .iter()
            .map(|vs| VsState::build(cfg, vs, &mut claimed, &skel, reload))
            .collect();
        let mut fx = Fx { e, alerts: &alerts };
        if !reload {
            // Alpha checkers start failed, their servers outside the pool.
            for vs in &mut vss {
                for r in &mut vs.rs {
                    r.num_failed = r.checkers.iter().filter(|c| !c.st.is_up).count() as u32;
                }
            }
        }
        // set_quorum_states(): nothing is alive yet.
        for vs in &mut vss {
            vs.quorum_up = vs.live_weight() >= vs.cfg.quorum as i64 + vs.cfg.hysteresis as i64;
        }
        if let Some(old) = old {
            Self::clear_diff(old, &mut vss, &mut fx);
            // check_new_rs_state(): alpha checkers of new servers start failed.
            for vs in &mut vss {
                for ri in 0..vs.rs.len() {
                    if vs.rs[ri].reloaded {
                        continue;
                    }
                    for ci in 0..vs.rs[ri].checkers.len() {
                        if vs.rs[ri].checkers[ci].cfg.common.alpha {
                            vs.set_checker_state(ri, ci, false);
                            vs.rs[ri].alive = false;
                        }
                    }
                }
            }
        }
        // set_effective_weights(): configured weight plus misc_dynamic shares.
        for vs in &mut vss {
            for r in &mut vs.rs {
                r.effective =
                    r.cfg.weight as i64 + r.checkers.iter().map(|c| c.cur_weight).sum::<i64>();
            }
        }
        for vs in &mut vss {
            vs.init_service(&mut fx);
        }
        HealthCore { vss, alerts }
    }

    /// `clear_diff_services()`: what goes away with a reload, and the state
    /// carried into the new configuration.
    fn clear_diff(old: &HealthCore, vss: &mut [VsState], fx: &mut Fx) {
        for ovs in &old.vss {
            let mut ovs = ovs.clone();
            let Some(nvs) = vss.iter_mut().find(|v| v.ident == ovs.ident) else {
                match &ovs.cfg.address {
                    VsAddress::Group(g) => fx.log(format!("Removing Virtual Server Group [{g}]")),
                    _ => fx.log(format!("Removing Virtual Server {}", ovs.name)),
                }
                ovs.clear_service_vs(false, fx);
                continue;
            };
            nvs.quorum_up = ovs.quorum_up;
            // The notifiers run for servers that leave a virtual server
            // that stays, whatever omega says.
            ovs.cfg.omega = true;
            for ori in 0..ovs.rs.len() {
                let (addr, port) = (ovs.rs[ori].cfg.addr, ovs.rs[ori].cfg.port);
                match nvs
                    .rs
                    .iter()
                    .position(|r| r.cfg.addr == addr && r.cfg.port == port)
                {
                    None => {
                        fx.log(format!("service {} no longer exist", ovs.rs[ori].name));
                        ovs.clear_service_rs(ori, false, fx);
                    }
                    Some(nri) => {
                        let o = &ovs.rs[ori];
                        let n = &mut nvs.rs[nri];
                        n.alive = o.alive;
                        n.ipvs = o.ipvs;
                        n.effective = o.effective;
                        n.peffective = o.effective;
                        n.reloaded = true;
                        let o = o.clone();
                        nvs.migrate(nri, &o, fx);
                    }
                }
            }
            ovs.update_vs_notifies(false, fx);
            // clear_diff_s_srv()
            match (&ovs.sorry, &mut nvs.sorry) {
                (Some(os), Some(ns))
                    if os.cfg.addr == ns.cfg.addr && os.cfg.port == ns.cfg.port =>
                {
                    ns.alive = os.alive;
                    ns.ipvs = os.ipvs;
                }
                (Some(os), _) if os.alive || os.ipvs.is_some() => {
                    fx.log(format!(
                        "Removing sorry server {} from VS {}",
                        os.name, ovs.name
                    ));
                }
                _ => {}
            }
        }
    }

    /// The table this state stands for.
    pub fn table(&self) -> Table {
        Table {
            services: self.vss.iter().flat_map(|v| v.view()).collect(),
        }
    }

    /// One checker's result. Returns the table changes to apply, what else
    /// to do, and when that checker runs next. None for an unknown id.
    pub fn report(
        &mut self,
        id: CheckerId,
        probe: &Probe,
        at: SystemTime,
        latency: Duration,
    ) -> Option<(Vec<TableChange>, Effects, Duration)> {
        let vs = self.vss.get_mut(id.vs)?;
        vs.rs.get(id.rs)?.checkers.get(id.checker)?;
        let before = Table {
            services: vs.view(),
        };
        let mut e = Effects::default();
        let mut fx = Fx {
            e: &mut e,
            alerts: &self.alerts,
        };
        let delay = vs.on_probe(id.rs, id.checker, probe, &mut fx);
        let ok = match probe {
            Probe::Up { .. } => true,
            Probe::Exit(c) => {
                *c == 0
                    || (matches!(&vs.rs[id.rs].checkers[id.checker].cfg.kind, CheckerKind::Misc(m) if m.dynamic)
                        && (2..=255).contains(c))
            }
            _ => false,
        };
        let detail = match probe {
            Probe::Up { .. } => String::new(),
            Probe::Down(r) => r.clone(),
            Probe::Exit(c) => format!("exited with status {c}"),
            Probe::Signal(n) => format!("due to signal {n}"),
            Probe::TimedOut => "timed out".into(),
        };
        vs.rs[id.rs].checkers[id.checker].last = Some(LastCheck {
            ok,
            unix_ms: now_ms(at),
            latency_us: latency.as_micros() as u64,
            detail,
        });
        let after = Table {
            services: vs.view(),
        };
        Some((TableChange::diff(&before, &after), e, delay))
    }

    /// keepalived's reload: virtual and real servers present in both
    /// configurations keep their state (alive, weight, checker results);
    /// the rest starts as at startup. Returns the changes that turn this
    /// state's table into the new one.
    pub fn reload(&mut self, cfg: &Config) -> (Vec<TableChange>, Effects) {
        let before = self.table();
        let mut e = Effects::default();
        let new = Self::init(cfg, Some(self), self.alerts.clone(), &mut e);
        *self = new;
        (TableChange::diff(&before, &self.table()), e)
    }

    /// Changes the mail settings (a reload may change them).
    pub fn set_alerts(&mut self, alerts: Alerts) {
        self.alerts = alerts;
    }

    /// keepalived's shutdown (`clear_services()`): every server leaves; with
    /// omega the notify_down and quorum_down scripts run.
    pub fn shutdown(&mut self) -> (Vec<TableChange>, Effects) {
        let before = self.table();
        let mut e = Effects::default();
        let mut fx = Fx {
            e: &mut e,
            alerts: &self.alerts,
        };
        for vs in &mut self.vss {
            vs.clear_service_vs(true, &mut fx);
            vs.services.clear();
        }
        (TableChange::diff(&before, &self.table()), e)
    }

    pub fn status(&self) -> Vec<VirtualServerStatus> {
        self.vss
            .iter()
            .map(|vs| VirtualServerStatus {
                name: vs.name.clone(),
                services: vs.services.iter().map(|s| s.key.clone()).collect(),
                quorum: vs.cfg.quorum,
                hysteresis: vs.cfg.hysteresis,
                quorum_up: vs.quorum_up,
                live_weight: vs.live_weight(),
                sorry_server: vs.sorry.as_ref().map(|s| SorryServerStatus {
                    name: s.name.clone(),
                    active: s.alive,
                }),
                real_servers: vs
                    .rs
                    .iter()
                    .map(|r| RealServerStatus {
                        name: r.name.clone(),
                        addr: r.cfg.addr,
                        port: r.cfg.port,
                        alive: r.alive,
                        weight: r.cfg.weight,
                        effective_weight: r.effective,
                        ipvs_weight: r.ipvs,
                        last: r
                            .checkers
                            .iter()
                            .filter_map(|c| c.last.clone())
                            .max_by_key(|l| l.unix_ms),
                        checkers: r
                            .checkers
                            .iter()
                            .map(|c| CheckerStatus {
                                kind: c.cfg.kind.keyword(),
                                up: c.st.is_up,
                                has_run: c.st.has_run,
                                // retry_it is preset before the first run.
                                failures: if c.st.has_run { c.st.retry_it } else { 0 },
                                last: c.last.clone(),
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect()
    }

    /// Every checker with its id.
    pub fn checkers(
        &self,
    ) -> impl Iterator<Item = (CheckerId, &VirtualServer, &RealServer, &Checker)> {
        self.vss.iter().enumerate().flat_map(|(vi, vs)| {
            vs.rs.iter().enumerate().flat_map(move |(ri, r)| {
                r.checkers.iter().enumerate().map(move |(ci, c)| {
                    (
                        CheckerId {
                            vs: vi,
                            rs: ri,
                            checker: ci,
                        },
                        &vs.cfg,
                        &r.cfg,
                        &c.cfg,
                    )
                })
            })
        })
    }

    /// keepalived's names of a checker's virtual and real server.
    pub fn names(&self, id: CheckerId) -> Option<(&str, &str)> {
        let vs = self.vss.get(id.vs)?;
        Some((&vs.name, &vs.rs.get(id.rs)?.name))
    }
}

#[cfg(test)]
mod tests;
