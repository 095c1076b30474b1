//! The health manager: one tokio task per checker, the decision core behind
//! a mutex, and an ordered stream of [`HealthEvent`]s (exact table changes,
//! the control core's [`TableChange`]) for the daemon, which owns the
//! table.
//!
//! How the daemon drives it:
//!
//! 1. `let hm = HealthManager::new(&cfg);` then install `hm.table()` (it
//!    is `ferrovs_config::ipvs::initial_table(&cfg)`, except for servers
//!    whose MISC_CHECK script was refused, whose checker is dropped as
//!    keepalived drops it).
//! 2. `let health = hm.spawn(tx);` inside the tokio runtime. Each
//!    [`HealthEvent`] received on the other end of `tx` is applied to the
//!    table in order (by the control core, which applies each as the state
//!    it leads to: an administrator may have edited the table), then
//!    published.
//! 3. On reload: first apply every event already received
//!    (`while let Ok(ev) = rx.try_recv()`), then apply the changes
//!    `health.reload(&new_cfg)` returns, instead of diffing initial tables:
//!    they take the live state into account (a failed server stays out) and
//!    include anything not yet delivered, so later events follow them.
//! 4. At exit, `health.shutdown().await` runs the omega scripts and returns
//!    the changes that empty the table.
//!
//! `health.status()` is the view for the API and metrics.

use super::checker::Probe;
use super::net::ConnOpts;
use super::service::{
    Alerts, Change, CheckerId, Effects, HealthCore, Notification, VirtualServerStatus,
};
use super::smtp::{router_id, Mailer};
use super::{dns, http, misc, tcp};
use crate::core::TableChange;
use crate::vrrp::script::{prepare, PreparedScript, ScriptError};
use ferrovs_config::ipvs::Table;
use ferrovs_config::model::{CheckerKind, Config, DnsCheck, GlobalDefs, HttpCheck, Script};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, Notify};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;
use tracing::{info, warn};

/// keepalived's BOOTSTRAP_DELAY: checkers start a second after the
/// daemon, plus their random warmup.
pub const BOOTSTRAP_DELAY: Duration = Duration::from_secs(1);

/// How long notify scripts may run at shutdown (keepalived: one second).
const SHUTDOWN_SCRIPT_LIMIT: Duration = Duration::from_secs(1);

/// Table changes for the daemon, with the state changes behind them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HealthEvent {
    /// Increases by one per event.
    pub seq: u64,
    /// To apply in order to the running table.
    pub table: Vec<TableChange>,
    pub changes: Vec<Change>,
}

/// A configuration with the scripts that may run, as keepalived keeps it
/// after its script checks: refused MISC_CHECKs and notify scripts are
/// gone.
struct Prepared {
    cfg: Config,
    scripts: HashMap<Script, PreparedScript>,
}

/// Prepares a script once (identity, existence, keepalived's security
/// check); the result is shared by every use of the same command.
fn admit(
    s: &Script,
    global: &GlobalDefs,
    scripts: &mut HashMap<Script, PreparedScript>,
) -> Result<(), ScriptError> {
    if !scripts.contains_key(s) {
        scripts.insert(s.clone(), prepare(s, global)?);
    }
    Ok(())
}

fn prepare_config(cfg: &Config) -> Prepared {
    let mut cfg = cfg.clone();
    let global = cfg.global.clone();
    let mut scripts = HashMap::new();
    let keep = |slot: &mut Option<Script>, scripts: &mut HashMap<Script, PreparedScript>| {
        if let Some(s) = slot {
            if let Err(e) = admit(s, &global, scripts) {
                warn!("{e} - not running notify script {}", s.command_line());
                *slot = None;
            }
        }
    };
    for vs in &mut cfg.virtual_servers {
        keep(&mut vs.quorum_up, &mut scripts);
        keep(&mut vs.quorum_down, &mut scripts);
        for rs in &mut vs.real_servers {
            keep(&mut rs.notify_up, &mut scripts);
            keep(&mut rs.notify_down, &mut scripts);
            // keepalived drops a MISC_CHECK whose script may not run, as if
            // it had not been configured.
            rs.checkers.retain(|c| {
                let CheckerKind::Misc(m) = &c.kind else {
                    return true;
                };
                let Err(e) = admit(&m.path, &global, &mut scripts) else {
                    return true;
                };
                let cmd = m.path.command_line();
                match e {
                    ScriptError::Insecure(_) => {
                        warn!("Disabling misc script {cmd} due to insecure")
                    }
                    ScriptError::NotFound(_) | ScriptError::NotExecutable(_) => {
                        warn!("Disabling misc script {cmd} since not found/accessible")
                    }
                    ScriptError::NoDefaultUser => {
                        warn!("Unable to set default user for misc script {cmd} - removing")
                    }
                    other => warn!("{other} - removing misc script {cmd}"),
                }
                false
            });
        }
    }
    if !global.enable_script_security && !scripts.is_empty() {
        warn!("SECURITY VIOLATION - check scripts are being executed but script_security not enabled.");
    }
    Prepared { cfg, scripts }
}

fn alerts(g: &GlobalDefs) -> Alerts {
    Alerts {
        enabled: Mailer::from_global(g).is_some(),
        router_id: router_id(g),
    }
}

/// The health state of a configuration, before its checkers run.
pub struct HealthManager {
    core: HealthCore,
    prepared: Prepared,
    start: Effects,
    bootstrap: Duration,
}

impl HealthManager {
    pub fn new(cfg: &Config) -> HealthManager {
        let prepared = prepare_config(cfg);
        let (core, start) = HealthCore::new(&prepared.cfg, alerts(&cfg.global));
        HealthManager {
            core,
            prepared,
            start,
            bootstrap: BOOTSTRAP_DELAY,
        }
    }

    /// The table to install before the checkers run.
    pub fn table(&self) -> Table {
        self.core.table()
    }

    pub fn status(&self) -> Vec<VirtualServerStatus> {
        self.core.status()
    }

    /// Replaces keepalived's one-second start delay (tests use zero).
    pub fn set_bootstrap_delay(&mut self, d: Duration) {
        self.bootstrap = d;
    }

    /// Starts the checkers on the current tokio runtime. Events go to
    /// `tx` in order; when its receiver is gone the checkers keep running
    /// but nothing more is delivered.
    pub fn spawn(self, tx: mpsc::Sender<HealthEvent>) -> HealthHandle {
        let rt = Handle::current();
        let wake = Arc::new(Notify::new());
        let mailer = Mailer::from_global(&self.prepared.cfg.global);
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                core: self.core,
                prepared: Arc::new(self.prepared),
                mailer,
                generation: 0,
                seq: 0,
                pending: VecDeque::new(),
                tasks: Vec::new(),
                forwarder: None,
                stopped: false,
                closed: false,
                bootstrap: self.bootstrap,
            }),
            wake: wake.clone(),
            rt: rt.clone(),
        });
        {
            let mut st = inner.lock();
            let fwd = rt.spawn(forward(Arc::downgrade(&inner), wake, tx));
            st.forwarder = Some(fwd.abort_handle());
            st.emit(Vec::new(), self.start, &inner.rt);
            inner.spawn_checkers(&mut st);
        }
        inner.wake.notify_one();
        HealthHandle { inner }
    }
}

struct State {
    core: HealthCore,
    prepared: Arc<Prepared>,
    mailer: Option<Mailer>,
    /// Bumped by each reload; results of older checker tasks are dropped.
    generation: u64,
    seq: u64,
    /// Events not yet handed to the daemon's channel.
    pending: VecDeque<HealthEvent>,
    tasks: Vec<AbortHandle>,
    forwarder: Option<AbortHandle>,
    stopped: bool,
    /// The daemon's receiver is gone: nothing is queued any more.
    closed: bool,
    bootstrap: Duration,
}

impl State {
    /// Logs, queues the table changes and starts the scripts and mails.
    fn emit(&mut self, table: Vec<TableChange>, fx: Effects, rt: &Handle) {
        for l in &fx.logs {
            info!("{l}");
        }
        if !self.closed && (!table.is_empty() || !fx.changes.is_empty()) {
            self.seq += 1;
            self.pending.push_back(HealthEvent {
                seq: self.seq,
                table,
                changes: fx.changes,
            });
        }
        for n in fx.notifications {
            match n {
                Notification::Script { script, .. } => {
                    if let Some(p) = self.prepared.scripts.get(&script).cloned() {
                        rt.spawn(async move { misc::notify(&p, None).await });
                    }
                }
                Notification::Mail { subject, body } => {
                    if let Some(m) = self.mailer.clone() {
                        rt.spawn(async move {
                            if let Err(e) = m.send(&subject, &body).await {
                                warn!("Error sending smtp alert \"{subject}\": {e}");
                            }
                        });
                    }
                }
            }
        }
    }
}

struct Inner {
    state: Mutex<State>,
    wake: Arc<Notify>,
    rt: Handle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        for t in st.tasks.drain(..) {
            t.abort();
        }
        if let Some(f) = st.forwarder.take() {
            f.abort();
        }
    }
}

/// What a checker task runs.
#[derive(Clone)]
enum ProbeSpec {
    Tcp(ConnOpts),
    Http(ConnOpts, HttpCheck),
    Dns(ConnOpts, DnsCheck),
    Misc(PreparedScript, Duration),
}

impl ProbeSpec {
    async fn run(&self) -> Probe {
        match self {
            ProbeSpec::Tcp(o) => tcp::probe(o).await,
            ProbeSpec::Http(o, h) => http::probe(o, h).await,
            ProbeSpec::Dns(o, d) => dns::probe(o, d).await,
            ProbeSpec::Misc(s, t) => misc::probe(s, *t).await,
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn spawn_checkers(self: &Arc<Self>, st: &mut State) {
        let prepared = st.prepared.clone();
        let mut specs = Vec::new();
        for (id, vs, rs, c) in st.core.checkers() {
            let o = ConnOpts::for_checker(c, rs.addr, rs.port);
            let spec = match &c.kind {
                CheckerKind::Tcp => ProbeSpec::Tcp(o),
                CheckerKind::Http(h) => ProbeSpec::Http(o, h.clone()),
                CheckerKind::Dns(d) => ProbeSpec::Dns(o, d.clone()),
                CheckerKind::Misc(m) => {
                    let Some(p) = prepared.scripts.get(&m.path) else {
                        continue;
                    };
                    // misc_timeout defaults to the virtual server's delay_loop.
                    ProbeSpec::Misc(p.clone(), m.timeout.unwrap_or(vs.delay_loop))
                }
            };
            // Checks start at a random point of the warmup, so that the
            // checks of one server do not all hit it at once.
            let warmup = c.common.warmup.mul_f64(rand::random::<f64>());
            specs.push((id, spec, st.bootstrap + warmup));
        }
        for (id, spec, first) in specs {
            if let Some((vs, rs)) = st.core.names(id) {
                info!("Activating healthchecker for service {rs} for VS {vs}");
            }
            let t = self.rt.spawn(checker_task(
                Arc::downgrade(self),
                st.generation,
                id,
                spec,
                first,
            ));
            st.tasks.push(t.abort_handle());
        }
    }

    /// A checker's result; the delay to its next check, or None when the
    /// checker belongs to an older configuration.
    fn report(
        &self,
        generation: u64,
        id: CheckerId,
        probe: &Probe,
        latency: Duration,
    ) -> Option<Duration> {
        let mut st = self.lock();
        if st.stopped || st.generation != generation {
            return None;
        }
        let (cmds, fx, delay) = st.core.report(id, probe, SystemTime::now(), latency)?;
        st.emit(cmds, fx, &self.rt);
        drop(st);
        self.wake.notify_one();
        Some(delay)
    }
}

async fn checker_task(
    inner: Weak<Inner>,
    generation: u64,
    id: CheckerId,
    spec: ProbeSpec,
    first: Duration,
) {
    tokio::time::sleep(first).await;
    loop {
        let started = Instant::now();
        let probe = spec.run().await;
        let latency = started.elapsed();
        let Some(delay) = inner
            .upgrade()
            .and_then(|i| i.report(generation, id, &probe, latency))
        else {
            return;
        };
        // MISC_CHECK schedules from the start of the run (check_misc.c
        // last_ran), the others from the end of the check.
        let next = match spec {
            ProbeSpec::Misc(..) => started + delay,
            _ => Instant::now() + delay,
        };
        tokio::time::sleep_until(next).await;
    }
}

/// Moves events from the queue to the daemon's channel, one at a time and
/// under the lock, so that reload() sees every event either delivered or
/// still queued.
async fn forward(inner: Weak<Inner>, wake: Arc<Notify>, tx: mpsc::Sender<HealthEvent>) {
    loop {
        wake.notified().await;
        loop {
            let Ok(permit) = tx.reserve().await else {
                if let Some(inner) = inner.upgrade() {
                    let mut st = inner.lock();
                    st.closed = true;
                    st.pending.clear();
                }
                return;
            };
            let Some(inner) = inner.upgrade() else { return };
            let mut st = inner.lock();
            match st.pending.pop_front() {
                Some(ev) => permit.send(ev),
                None => break,
            }
        }
    }
}

/// The running health checks.
#[derive(Clone)]
pub struct HealthHandle {
    inner: Arc<Inner>,
}

impl HealthHandle {
    /// keepalived's reload: servers present in both configurations keep
    /// their state; checkers restart (after their warmup) with the new
    /// settings. Returns the changes to apply now: those of events not
    /// yet delivered, then the change to the new configuration. Apply the
    /// events already received first (see the module documentation).
    pub fn reload(&self, new: &Config) -> Vec<TableChange> {
        let plan = self.plan_reload(new);
        let out = plan.table_changes().to_vec();
        plan.commit();
        out
    }

    /// The first phase of a reload: what the table becomes, with nothing
    /// changed yet. The checkers keep running with the old settings and no
    /// result is taken in until the plan is committed or dropped (it holds
    /// the health state), so committing loses none; dropping it leaves the
    /// health checks exactly as they were.
    pub fn plan_reload(&self, new: &Config) -> HealthReload<'_> {
        let prepared = prepare_config(new);
        let st = self.inner.lock();
        let mut core = st.core.clone();
        core.set_alerts(alerts(&new.global));
        let (cmds, fx) = core.reload(&prepared.cfg);
        let mut table = Vec::new();
        if !st.stopped {
            table.extend(st.pending.iter().flat_map(|e| e.table.iter().cloned()));
            table.extend(cmds);
        }
        HealthReload {
            inner: &self.inner,
            st,
            core,
            fx,
            prepared,
            mailer: Mailer::from_global(&new.global),
            table,
        }
    }

    /// The table the health state stands for.
    pub fn table(&self) -> Table {
        self.inner.lock().core.table()
    }

    pub fn status(&self) -> Vec<VirtualServerStatus> {
        self.inner.lock().core.status()
    }

    /// Stops the checkers and takes every server out, running the
    /// notify_down and quorum_down scripts of `omega` virtual servers
    /// (each for at most a second) and sending the mails (bounded too).
    /// Returns the changes still undelivered and those that empty the
    /// table.
    pub async fn shutdown(self) -> Vec<TableChange> {
        let mut jobs = JoinSet::new();
        let out = {
            let mut st = self.inner.lock();
            st.stopped = true;
            for t in st.tasks.drain(..) {
                t.abort();
            }
            let mut out: Vec<TableChange> = st.pending.drain(..).flat_map(|e| e.table).collect();
            let (cmds, fx) = st.core.shutdown();
            out.extend(cmds);
            for l in &fx.logs {
                info!("{l}");
            }
            for n in fx.notifications {
                match n {
                    Notification::Script { script, .. } => {
                        if let Some(p) = st.prepared.scripts.get(&script).cloned() {
                            jobs.spawn_on(
                                async move { misc::notify(&p, Some(SHUTDOWN_SCRIPT_LIMIT)).await },
                                &self.inner.rt,
                            );
                        }
                    }
                    Notification::Mail { subject, body } => {
                        if let Some(m) = st.mailer.clone() {
                            jobs.spawn_on(
                                async move {
                                    let _ = tokio::time::timeout(
                                        Duration::from_secs(2),
                                        m.send(&subject, &body),
                                    )
                                    .await;
                                },
                                &self.inner.rt,
                            );
                        }
                    }
                }
            }
            out
        };
        let _ = tokio::time::timeout(Duration::from_secs(3), async {
            while jobs.join_next().await.is_some() {}
        })
        .await;
        out
    }
}

/// A planned health reload (see [`HealthHandle::plan_reload`]).
pub struct HealthReload<'a> {
    inner: &'a Arc<Inner>,
    st: MutexGuard<'a, State>,
    core: HealthCore,
    fx: Effects,
    prepared: Prepared,
    mailer: Option<Mailer>,
    table: Vec<TableChange>,
}

impl HealthReload<'_> {
    /// The table changes the reload brings, undelivered events first.
    pub fn table_changes(&self) -> &[TableChange] {
        &self.table
    }

    /// The second phase: the new settings take over and the checkers
    /// restart with them.
    pub fn commit(self) {
        let HealthReload {
            inner,
            mut st,
            core,
            fx,
            prepared,
            mailer,
            ..
        } = self;
        if st.stopped {
            return;
        }
        for ev in st.pending.iter_mut() {
            ev.table.clear();
        }
        st.pending.retain(|e| !e.changes.is_empty());
        for t in st.tasks.drain(..) {
            t.abort();
        }
        st.generation += 1;
        st.core = core;
        st.prepared = Arc::new(prepared);
        st.mailer = mailer;
        st.emit(Vec::new(), fx, &inner.rt);
        inner.spawn_checkers(&mut st);
        drop(st);
        inner.wake.notify_one();
    }
}

#[cfg(test)]
mod tests;
