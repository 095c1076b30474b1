//! `ferrovs run`: load the configuration, build the dataplane snapshot,
//! start pinned workers on the ports, and serve the control socket, reloads
//! (SIGHUP) and a clean stop (SIGTERM) from a small tokio runtime. The
//! decisions are the control core's ([`crate::core`]); this is its I/O:
//! one task (the [`Owner`]) feeds it and carries out what it says.

use crate::core::reload::laddrs_from_config;
use crate::core::{AdminCommand, Core, CoreError, Input, Level, Output, Reload, TableChange};
use crate::heartbeat::{worker_clock_ms, Heartbeats};
use crate::ipvs_state::Unforwardable;
use crate::ipvs_state::{IpvsState, Net};
use crate::mailbox::{ConnsQuery, DaemonLink, Pending, ToDaemon};
use crate::northbound::ctl::{self, CtlRequest, CtlResponse};
use crate::northbound::ctl_server::CtlSocketError;
use crate::port_device::{KernelDevice, PortDevice};
pub use crate::southbound::Dataplane;
use crate::southbound::NetError;
use crate::southbound::{NetState, Southbound};
use crate::view::{View, ViewCell};
use crate::vrrp::driver::StatusHandle;
use ferrovs_config::ipvs::ServiceKey;
use ferrovs_config::ipvsadm::list::{format_list, format_timeout, ConnEntry, ConnProto};
use ferrovs_config::ipvsadm::rules::{format_rules, parse_command, Command};
use ferrovs_config::ipvsadm::TableError;
use ferrovs_config::{Config, Loaded};
use ferrovs_dataplane::conn::template::TemplateTable;
use ferrovs_dataplane::port::Port;
use ferrovs_dataplane::snapshot::Snapshot;
use ferrovs_dataplane::worker::{Request, Shared, Worker};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, error, info, warn};

/// Why a request to the daemon (a reload, an administrator's command, a
/// listing) failed; the text is what `ferrovsadm` and the log show.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The core refused it.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// A listing of a service that does not exist.
    #[error(transparent)]
    Table(#[from] TableError),
    /// The core gave no answer to what it was asked (a bug).
    #[error("internal: the {0} was not answered")]
    Unanswered(&'static str),
    /// A changing command reached the read path (a bug).
    #[error("internal: {0} is not a read")]
    NotARead(String),
}

/// Why `ferrovs run` could not start serving (or stopped serving).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{}: configuration has errors", .0.display())]
    ConfigErrors(PathBuf),
    #[error(
        "no interface to serve: name one in ferrovs {{ interface ... }} or in a vrrp_instance"
    )]
    NoInterface,
    #[error(transparent)]
    CtlSocket(#[from] CtlSocketError),
    #[error(transparent)]
    PortLock(#[from] crate::pid_lock::PortLockError),
    #[error("tokio runtime: {0}")]
    Runtime(std::io::Error),
    #[error("following the kernel's interfaces: {0}")]
    Southbound(NetError),
    /// The kernel's view of the ports, read after they opened.
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("opening ports: {0}")]
    Ports(#[from] PortError),
    #[error(transparent)]
    Snapshot(#[from] Unforwardable),
    #[error("starting worker {worker}: {error}")]
    Worker { worker: usize, error: SpawnError },
    #[error("{0}")]
    Signal(std::io::Error),
    /// A backend this binary was built without.
    #[error("{0}")]
    Unsupported(&'static str),
    /// Taking over from a running process (`crate::handover`).
    #[error("taking the ports over: {0}")]
    Handover(String),
}

/// Why a worker could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error(transparent)]
    Thread(#[from] std::io::Error),
    /// A DPDK worker lcore refused it.
    #[cfg(feature = "dpdk")]
    #[error("lcore {lcore}: {error}")]
    Lcore {
        lcore: u32,
        error: ferrovs_dataplane::port::dpdk::DpdkError,
    },
}

/// Why a backend could not open its ports.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The interface as the southbound sees it: missing, not Ethernet.
    #[error(transparent)]
    Iface(#[from] NetError),
    /// The backend's sockets or XDP program on the interface.
    #[error("{iface}: {error}")]
    Open {
        iface: String,
        error: std::io::Error,
    },
    /// A DPDK call, with what it was for (`context`).
    #[cfg(feature = "dpdk")]
    #[error("{context}: {error}")]
    Dpdk {
        context: String,
        error: ferrovs_dataplane::port::dpdk::DpdkError,
    },
    /// No probed DPDK device is left for an interface.
    #[cfg(feature = "dpdk")]
    #[error("interface {iface}: no DPDK device left for it (probed: {probed}); name one with dpdk {{ port {iface} DEVICE }}")]
    NoDevice { iface: String, probed: String },
    #[cfg(feature = "dpdk")]
    #[error("too many workers for DPDK queues")]
    TooManyWorkers,
}

/// The daemon's edges around its control core ([`crate::core`]): the
/// dataplane it publishes to, the health checks and the VRRP driver it
/// carries the core's decisions to, and the view the northbound readers
/// see. One task owns it (see [`Owner`]); nothing else touches it.
pub struct Daemon {
    core: Core,
    pub dataplane: Arc<dyn Dataplane>,
    pub config_path: PathBuf,
    epoch: Instant,
    /// The VRRP instances' states, kept by the VRRP driver.
    pub vrrp_status: StatusHandle,
    /// Hands a reloaded configuration to the running VRRP driver.
    pub vrrp_reload: Option<tokio::sync::mpsc::UnboundedSender<Config>>,
    /// Tells the running VRRP driver about tracked objects (the workers).
    pub vrrp_track: Option<crate::vrrp::driver::TrackSender>,
    /// Stops the running VRRP driver.
    vrrp_stop: Option<tokio::sync::mpsc::Sender<crate::vrrp::driver::StopRequest>>,
    /// What a VRRP driver started by the daemon holds of it.
    pub vrrp_link: Option<DaemonLink>,
    /// The kernel's network as the southbound last announced it.
    pub net_view: Option<tokio::sync::watch::Receiver<Arc<NetState>>>,
    /// The running health checks (the real servers' checkers).
    pub health: Option<crate::health::HealthHandle>,
    /// The connection sync daemon's task (`crate::sync::io`).
    pub sync: Option<crate::sync::io::SyncHandle>,
    /// The devices behind the ports, in port order (for `/metrics`).
    pub devices: Vec<Arc<dyn PortDevice>>,
    /// See [`Opened::on_publish`].
    pub on_publish: Option<PublishHook>,
    /// What the northbound readers see (see [`crate::view`]).
    view: ViewCell,
    /// Ids of the administrators' requests to the core.
    next_request: u64,
    /// The BGP announcer's task, when `ferrovs { bgp { } }` is configured.
    pub bgp: Option<crate::bgp::driver::BgpHandle>,
    /// The VRRP instances the process that handed over to this one was
    /// MASTER of: they start in MASTER (taken by the first start).
    pub vrrp_resume: Vec<String>,
    /// `ferrovs upgrade` asked for this binary: the owner stops and the
    /// process executes it.
    pub upgrade: Option<crate::upgrade::Plan>,
    /// The new process of a hand-over, ready to take the ports.
    pub handover: Option<crate::handover::Parent>,
    /// A new process was started and is not ready yet.
    upgrade_starting: bool,
    /// The backend can hand its ports to a new process (AF_XDP).
    pub can_hand_over: bool,
    /// What this process restored at its start.
    pub restored: crate::state_files::Report,
    /// The state directory the workers' tables live in, if they do.
    pub state_dir: Option<PathBuf>,
}

/// What carrying out the core's outputs answered.
#[derive(Default)]
struct Answers {
    reply: Option<Result<(), CoreError>>,
    reload: Option<Result<usize, CoreError>>,
}

impl Daemon {
    pub fn new(
        state: IpvsState,
        net: Net,
        dataplane: Arc<dyn Dataplane>,
        path: PathBuf,
        config: Config,
    ) -> Daemon {
        Daemon::with_epoch(state, net, dataplane, path, config, Instant::now())
    }

    /// A daemon whose workers' clock starts at `epoch`.
    pub fn with_epoch(
        state: IpvsState,
        net: Net,
        dataplane: Arc<dyn Dataplane>,
        path: PathBuf,
        config: Config,
        epoch: Instant,
    ) -> Daemon {
        let devices: Vec<Arc<dyn PortDevice>> = net
            .ports
            .iter()
            .map(|p| Arc::new(KernelDevice::new(p.name.clone(), None, None)) as Arc<dyn PortDevice>)
            .collect();
        let core = Core::new(state, net, config, epoch);
        let d = Daemon {
            core,
            dataplane: dataplane.clone(),
            config_path: path,
            epoch,
            vrrp_status: Default::default(),
            vrrp_reload: None,
            vrrp_track: None,
            vrrp_stop: None,
            vrrp_resume: Vec::new(),
            upgrade: None,
            handover: None,
            upgrade_starting: false,
            can_hand_over: false,
            restored: Default::default(),
            state_dir: None,
            vrrp_link: None,
            net_view: None,
            sync: None,
            health: None,
            on_publish: None,
            devices,
            view: Arc::new(arc_swap::ArcSwap::from_pointee(View {
                state: IpvsState::new(1, Arc::new(TemplateTable::new(1)), 0),
                net: Net::default(),
                dataplane,
                devices: Vec::new(),
                health: None,
                vrrp_status: Default::default(),
                vrrp_vips: Default::default(),
                reloads_ok: 0,
                reloads_failed: 0,
                last_reload_ok: true,
                workers_running: true,
                worker_stalls: 0,
                epoch,
                sync: None,
                bgp: None,
            })),
            next_request: 0,
            bgp: None,
        };
        d.refresh_view();
        d
    }

    /// The control core (read only: changes go through [`Daemon::feed`]).
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// The daemon's state as the northbound readers see it now.
    fn snapshot_view(&self) -> View {
        let c = &self.core;
        let r = c.reloads();
        View {
            state: c.state().clone(),
            net: c.net().clone(),
            dataplane: self.dataplane.clone(),
            devices: self.devices.clone(),
            health: self.health.clone(),
            vrrp_status: self.vrrp_status.clone(),
            vrrp_vips: c.vrrp_vips().clone(),
            reloads_ok: r.ok,
            reloads_failed: r.failed,
            last_reload_ok: r.last_ok,
            workers_running: c.workers_running(),
            worker_stalls: c.worker_stalls(),
            epoch: self.epoch,
            sync: self.sync.clone(),
            bgp: self.bgp.as_ref().map(|b| b.status.clone()),
        }
    }

    /// Publishes the current state to the northbound readers; every change
    /// ends with it.
    pub fn refresh_view(&self) {
        self.view.store(Arc::new(self.snapshot_view()));
    }

    /// Where the northbound readers find the daemon's state.
    pub fn view(&self) -> ViewCell {
        self.view.clone()
    }

    /// Hands one input to the core and carries out what it says.
    pub fn feed(&mut self, input: Input) {
        let outs = self.core.handle(input, Instant::now());
        self.carry_out(outs, None);
    }

    /// Carries out the core's outputs in order; `plan` is the health
    /// checks' reload plan, committed if the core says so and dropped
    /// (the checkers as they were) otherwise.
    fn carry_out(
        &mut self,
        outs: Vec<Output>,
        mut plan: Option<crate::health::manager::HealthReload<'_>>,
    ) -> Answers {
        let mut answers = Answers::default();
        let mut view = false;
        for o in outs {
            match o {
                Output::Publish(snap) => {
                    if let Some(h) = &self.on_publish {
                        h(&snap);
                    }
                    self.dataplane.publish(*snap);
                }
                Output::CommitHealthPlan => {
                    if let Some(p) = plan.take() {
                        p.commit();
                    }
                }
                Output::StartVrrp(cfg) => {
                    // The driver reads the ports from the view.
                    self.refresh_view();
                    let ok = self.start_vrrp(&cfg);
                    if ok {
                        self.follow_sync(&cfg);
                    }
                    let more = self.core.handle(Input::VrrpStarted(ok), Instant::now());
                    let a = self.carry_out(more, None);
                    answers.reply = answers.reply.or(a.reply);
                }
                Output::ReloadVrrp(cfg) => {
                    if let Some(tx) = &self.vrrp_reload {
                        if tx.send(*cfg).is_err() {
                            warn!("VRRP has stopped; its configuration was not reloaded");
                        }
                    }
                }
                Output::TrackWorkers(running) => {
                    if let Some(tx) = &self.vrrp_track {
                        let _ = tx.send((
                            crate::vrrp::TrackKind::Dataplane,
                            crate::vrrp::driver::WORKERS_TRACK.to_string(),
                            running,
                        ));
                    }
                }
                Output::Reply { result, .. } => answers.reply = Some(result),
                Output::Reloaded(r) => {
                    // The sync daemons as the new file says
                    // (`lvs_sync_daemon` or `sync_active_active`).
                    if r.is_ok() {
                        self.follow_sync(self.core.config());
                    }
                    answers.reload = Some(r)
                }
                Output::ViewChanged => view = true,
                Output::Log(Level::Info, m) => info!("{m}"),
                Output::Log(Level::Warn, m) => warn!("{m}"),
                Output::Log(Level::Error, m) => error!("{m}"),
            }
        }
        if view {
            self.refresh_view();
        }
        answers
    }

    /// Tells the sync daemon which VRRP instance to follow, as
    /// `lvs_sync_daemon` says (or none).
    fn follow_sync(&self, cfg: &Config) {
        let Some(h) = &self.sync else {
            return;
        };
        let follow = cfg.global.lvs_sync_daemon.as_ref().and_then(|sd| {
            let vrid = cfg.vrrp_instance(&sd.vrrp_instance)?.virtual_router_id;
            match crate::sync::settings::Settings::from_config(&sd.options, vrid) {
                Ok(settings) => Some(crate::sync::io::Follow {
                    instance: sd.vrrp_instance.clone(),
                    settings,
                    vrrp: self.vrrp_status.clone(),
                }),
                Err(e) => {
                    error!("lvs_sync_daemon: {e}");
                    None
                }
            }
        });
        let always = cfg.ferrovs.sync_active_active.as_ref().and_then(|a| {
            crate::sync::settings::Settings::from_config(a, 0)
                .map_err(|e| error!("sync_active_active: {e}"))
                .ok()
        });
        // The one being left stops first (the configuration allows only
        // one of the two).
        use crate::sync::io::SyncCtl;
        if always.is_some() {
            let _ = h.tx.send(SyncCtl::Follow(None));
            let _ = h.tx.send(SyncCtl::Always(always));
        } else {
            let _ = h.tx.send(SyncCtl::Always(None));
            let _ = h.tx.send(SyncCtl::Follow(follow));
        }
    }

    /// `--start-daemon` / `--stop-daemon`.
    fn sync_command(&self, cmd: &Command) -> Result<String, String> {
        use crate::sync::io::SyncCtl;
        let h = self.sync.as_ref().ok_or("the sync daemon is not running")?;
        let name = |m: bool| if m { "master" } else { "backup" };
        let ctl = match cmd {
            Command::StartDaemon(o) => {
                let settings = crate::sync::settings::Settings::from_ipvsadm(o)?;
                if let Some(net) = &self.net_view {
                    net.borrow()
                        .iface(&settings.ifname)
                        .map_err(|e| format!("--mcast-interface: {e}"))?;
                }
                if h.running(o.master) {
                    return Err(format!(
                        "a {} sync daemon is already running",
                        name(o.master)
                    ));
                }
                SyncCtl::Start {
                    master: o.master,
                    settings,
                }
            }
            Command::StopDaemon { master } => {
                if !h.running(*master) {
                    return Err(format!("no {} sync daemon is running", name(*master)));
                }
                SyncCtl::Stop { master: *master }
            }
            _ => return Err("not a sync daemon command".into()),
        };
        h.tx.send(ctl).map_err(|_| "the sync daemon has stopped")?;
        Ok(String::new())
    }

    /// Starts the VRRP driver; true when it runs.
    fn start_vrrp(&mut self, cfg: &Config) -> bool {
        let (Some(link), Some(net)) = (self.vrrp_link.clone(), self.net_view.clone()) else {
            return false;
        };
        let resume = std::mem::take(&mut self.vrrp_resume);
        match crate::vrrp::driver::start(cfg, link, net, &resume) {
            Ok(h) => {
                info!("VRRP starting");
                self.vrrp_status = h.status;
                self.vrrp_reload = Some(h.reload);
                self.vrrp_track = Some(h.track);
                self.vrrp_stop = Some(h.stop);
                true
            }
            Err(e) => {
                error!("VRRP: {e}");
                false
            }
        }
    }

    /// `ferrovs upgrade [--force] BINARY`: checked off the owner (the checks
    /// run the binary), then handed over (`crate::upgrade`).
    fn upgrade_request(&mut self, argv: &[String]) -> Pending {
        let force = argv.iter().any(|a| a == "--force");
        let bins: Vec<&String> = argv.iter().filter(|a| !a.starts_with("--")).collect();
        let [binary] = bins[..] else {
            return Pending::Done(CtlResponse::err(2, "upgrade: one binary path expected"));
        };
        if self.upgrade.is_some() {
            return Pending::Done(CtlResponse::err(1, "an upgrade is already under way"));
        }
        let Some(link) = &self.vrrp_link else {
            return Pending::Done(CtlResponse::err(1, "ferrovs is starting"));
        };
        Pending::Upgrade(crate::mailbox::UpgradeCheck {
            binary: binary.into(),
            config: self.config_path.clone(),
            state_dir: self.state_dir.clone(),
            force,
            tx: link.tx.clone(),
        })
    }

    /// ferrovs's own commands beside ipvsadm's, for BGP (`--drain
    /// [--stop-after SECONDS]`, `--undrain`, `-L --bgp`); None for anything
    /// else.
    fn bgp_command(&mut self, args: &[&str]) -> Option<CtlResponse> {
        use crate::bgp::driver::Command as Bgp;
        let list = args
            .iter()
            .any(|a| matches!(*a, "-L" | "-l" | "--list" | "-Ln" | "-nL"));
        let what = match args {
            ["--undrain"] => Some(Bgp::Undrain),
            _ if args.contains(&"--drain") => match parse_drain(args) {
                Ok(stop_after) => Some(Bgp::Drain { stop_after }),
                Err(e) => return Some(CtlResponse::err(2, e)),
            },
            _ if list && args.contains(&"--bgp") => None,
            _ => return None,
        };
        let Some(h) = &self.bgp else {
            return Some(CtlResponse::err(
                2,
                "BGP is not configured (ferrovs { bgp { ... } } in the configuration)",
            ));
        };
        match what {
            Some(cmd) => {
                if h.status.load().drain.stopping {
                    return Some(CtlResponse::err(1, "ferrovs is stopping"));
                }
                let text = match &cmd {
                    Bgp::Drain { stop_after: None } => "Draining: every VIP is withdrawn; established flows go on being forwarded\n".to_string(),
                    Bgp::Drain { stop_after: Some(s) } => format!("Draining: every VIP is withdrawn; established flows go on being forwarded; ferrovs stops when none is left or in {s} s\n"),
                    _ => "Drain ended: the VIPs are announced again where they should be\n".to_string(),
                };
                if h.tx.send(cmd).is_err() {
                    return Some(CtlResponse::err(1, "the BGP task has stopped"));
                }
                Some(CtlResponse::ok(text))
            }
            None => Some(CtlResponse::ok(h.status.load().render())),
        }
    }

    /// `SIGTERM`'s graceful drain (`drain_timeout` of the bgp block), 0
    /// when there is none.
    fn drain_timeout(&self) -> u64 {
        self.core
            .config()
            .ferrovs
            .bgp
            .as_ref()
            .map_or(0, |b| b.drain_timeout)
    }

    /// Takes one message of the tasks around the daemon.
    pub fn handle(&mut self, msg: ToDaemon) {
        match msg {
            ToDaemon::Ctl(req, reply) => {
                let _ = reply.send(self.start(&req));
                // -Z, for one, changes what the readers see without a
                // snapshot.
                self.refresh_view();
            }
            ToDaemon::SetVips(vips, held) => self.feed(Input::VipsHeld(vips, held)),
            ToDaemon::SyncVips(vips) => self.feed(Input::VipsListed(vips)),
            ToDaemon::Upgrade(plan, reply) => self.start_upgrade(plan, reply),
            ToDaemon::HandoverReady(parent, plan, ready, reply) => {
                self.upgrade_starting = false;
                match ready {
                    Ok(()) => {
                        info!(
                            "upgrade: {} (pid {}) is ready: handing the ports over",
                            plan.binary.display(),
                            parent.pid()
                        );
                        let _ = reply.send(Ok(format!(
                            "handing over to {} (pid {})\n",
                            plan.binary.display(),
                            parent.pid()
                        )));
                        self.upgrade = Some(plan);
                        self.handover = Some(*parent);
                    }
                    Err(e) => {
                        error!("upgrade: {e}; this process goes on forwarding");
                        parent.abort();
                        let _ = reply.send(Err(format!("{e}; the running process goes on")));
                    }
                }
            }
        }
    }

    /// Hands over to `plan`: on AF_XDP, a new process is started beside
    /// this one and takes the ports once ready (`crate::handover`); on the
    /// other backends this one stops and executes it (`crate::upgrade`).
    fn start_upgrade(&mut self, plan: crate::upgrade::Plan, reply: crate::mailbox::UpgradeReply) {
        if self.upgrade.is_some() || self.upgrade_starting {
            let _ = reply.send(Err("an upgrade is already under way".into()));
            return;
        }
        if !self.can_hand_over {
            info!("upgrade: handing over to {}", plan.binary.display());
            let _ = reply.send(Ok(format!(
                "handing over to {} (pid {})\n",
                plan.binary.display(),
                std::process::id()
            )));
            self.upgrade = Some(plan);
            return;
        }
        let Some(link) = &self.vrrp_link else {
            let _ = reply.send(Err("ferrovs is starting".into()));
            return;
        };
        let mut parent = match crate::handover::Parent::spawn(&plan) {
            Ok(p) => p,
            Err(e) => {
                let _ = reply.send(Err(format!("starting {}: {e}", plan.binary.display())));
                return;
            }
        };
        info!(
            "upgrade: started {} (pid {}); forwarding until it is ready",
            plan.binary.display(),
            parent.pid()
        );
        self.upgrade_starting = true;
        let tx = link.tx.clone();
        std::thread::spawn(move || {
            let ready = parent.wait_ready();
            let _ = tx.send(ToDaemon::HandoverReady(
                Box::new(parent),
                plan,
                ready,
                reply,
            ));
        });
    }

    /// Applies table changes decided by the health checks and publishes.
    pub fn apply_health(&mut self, changes: &[TableChange]) {
        if changes.is_empty() {
            return;
        }
        self.feed(Input::Health(changes.to_vec()));
    }

    /// SIGHUP: re-read the file and hand it, with the health checks' plan
    /// for it, to the core (see [`crate::core::reload`]): all of it is
    /// committed or none.
    pub fn reload(&mut self) -> Result<(), RequestError> {
        let loaded = ferrovs_config::load_file(&self.config_path);
        // The BGP speaker follows once the rest is committed.
        let bgp = (!loaded.diagnostics.has_errors()
            && loaded.config.ferrovs.bgp != self.core.config().ferrovs.bgp)
            .then(|| loaded.config.ferrovs.bgp.clone());
        if !loaded.diagnostics.has_errors()
            && loaded.config.ferrovs.state_dir != self.core.config().ferrovs.state_dir
        {
            warn!("reload: state_dir changed; it takes effect at the next start of ferrovs");
        }
        let health = self.health.clone();
        let plan = match &health {
            Some(h) if !loaded.diagnostics.has_errors() => Some(h.plan_reload(&loaded.config)),
            _ => None,
        };
        let input = Input::Reload(Box::new(Reload {
            path: self.config_path.display().to_string(),
            health: plan.as_ref().map(|p| p.table_changes().to_vec()),
            loaded,
        }));
        let outs = self.core.handle(input, Instant::now());
        match self.carry_out(outs, plan).reload {
            Some(Ok(_)) => {
                if let Some(b) = bgp {
                    self.reload_bgp(b);
                }
                Ok(())
            }
            Some(Err(e)) => Err(e.into()),
            None => Err(RequestError::Unanswered("reload")),
        }
    }

    /// A reload changed the `bgp` block: the running task takes the new
    /// one, or one starts, or it stops (withdrawing everything) when the
    /// block is gone.
    fn reload_bgp(&mut self, new: Option<ferrovs_config::model::BgpSettings>) {
        use crate::bgp::driver::Command;
        match (self.bgp.take(), new) {
            (Some(h), Some(b)) => {
                let _ = h.tx.send(Command::Reload(Box::new(b)));
                self.bgp = Some(h);
            }
            (None, Some(b)) => {
                let dir = ctl_dir(&self.core.config().ferrovs);
                match crate::bgp::driver::spawn(&b, self.view(), &dir, None) {
                    Ok(h) => {
                        info!("reload: BGP configured: starting ExaBGP");
                        self.bgp = Some(h);
                    }
                    Err(e) => error!("reload: BGP: cannot start: {e}"),
                }
            }
            (Some(h), None) => {
                info!("reload: the bgp block is gone: withdrawing every VIP and stopping ExaBGP");
                let (done, _) = tokio::sync::oneshot::channel();
                let _ = h.tx.send(Command::Shutdown(done));
            }
            (None, None) => {}
        }
        self.refresh_view();
    }

    /// Runs one ipvsadm command line.
    pub fn execute(&mut self, req: &CtlRequest) -> CtlResponse {
        self.start(req).finish()
    }

    /// Runs one ipvsadm command line as far as the daemon's state goes: a
    /// connection listing comes back as a [`Pending`] that waits for the
    /// workers' answers without the caller holding the daemon (VRRP, health
    /// checks and other clients go on meanwhile).
    pub fn start(&mut self, req: &CtlRequest) -> Pending {
        match req.op.as_deref() {
            None => {}
            Some("status") => return Pending::Done(CtlResponse::ok(self.status_json())),
            Some("restored") => {
                return Pending::Done(CtlResponse::ok(
                    serde_json::to_string(&self.restored).unwrap_or_default(),
                ))
            }
            Some("upgrade") => return self.upgrade_request(&req.argv),
            Some(other) => {
                return Pending::Done(CtlResponse::err(2, format!("unknown operation {other}")))
            }
        }
        let args: Vec<&str> = req.argv.iter().map(String::as_str).collect();
        if let Some(r) = self.bgp_command(&args) {
            return Pending::Done(r);
        }
        let cmd = match parse_command(&args) {
            Ok(c) => c,
            Err(e) => return Pending::Done(CtlResponse::err(2, e.to_string())),
        };
        if let Command::List {
            service,
            options,
            connections: true,
            timeout: false,
            daemon: false,
        } = &cmd
        {
            return Pending::Conns(self.ask_connections(service.as_ref(), options.persistent_conn));
        }
        if matches!(cmd, Command::StartDaemon(_) | Command::StopDaemon { .. }) {
            return Pending::Done(match self.sync_command(&cmd) {
                Ok(out) => CtlResponse::ok(out),
                Err(e) => CtlResponse::err(1, e),
            });
        }
        let out = match AdminCommand::from_command(&cmd, req.stdin.as_deref()) {
            Some(Ok(a)) => self.admin(a).map(|()| String::new()),
            Some(Err(e)) => Err(e.into()),
            None => self.read(&cmd),
        };
        Pending::Done(match out {
            Ok(out) => CtlResponse::ok(out),
            Err(e) => CtlResponse::err(1, e.to_string()),
        })
    }

    /// An administrator's change, through the core.
    fn admin(&mut self, cmd: AdminCommand) -> Result<(), RequestError> {
        self.next_request += 1;
        let id = self.next_request;
        let outs = self.core.handle(Input::Admin { id, cmd }, Instant::now());
        match self.carry_out(outs, None).reply {
            Some(r) => Ok(r?),
            None => Err(RequestError::Unanswered("command")),
        }
    }

    /// The commands that only read: listings, rules, timeouts.
    fn read(&self, cmd: &Command) -> Result<String, RequestError> {
        let state = self.core.state();
        match cmd {
            Command::List {
                service,
                options,
                connections,
                timeout,
                daemon,
            } => {
                if *timeout {
                    let (a, b, c) = state.timeouts.get();
                    return Ok(format_timeout(a, b, c));
                }
                if *daemon {
                    let l = self
                        .sync
                        .as_ref()
                        .and_then(|h| h.listing.lock().ok().map(|l| l.clone()))
                        .unwrap_or_default();
                    return Ok(ferrovs_config::ipvsadm::format_daemons(&l));
                }
                if *connections {
                    let q = self.ask_connections(service.as_ref(), options.persistent_conn);
                    return Ok(q.collect());
                }
                let l = state.listing(service.as_ref())?;
                Ok(format_list(&l, options))
            }
            Command::Save { nosort } => Ok(format_rules(&state.table, *nosort)),
            other => Err(RequestError::NotARead(format!("{other:?}"))),
        }
    }

    /// Asks every worker for its connections, and takes the persistence
    /// templates now; the answer is gathered by [`ConnsQuery::collect`].
    fn ask_connections(&self, service: Option<&ServiceKey>, persistent_conn: bool) -> ConnsQuery {
        let (tx, rx) = std::sync::mpsc::sync_channel(self.dataplane.workers());
        let (tx6, rx6) = std::sync::mpsc::sync_channel(self.dataplane.workers());
        let (mut asked, mut asked6) = (0, 0);
        let v6 = !self
            .core
            .state()
            .table
            .services
            .iter()
            .all(|s| !s.key.is_v6());
        for w in 0..self.dataplane.workers() {
            if self.dataplane.request(w, Request::ListConns(tx.clone())) {
                asked += 1;
            }
            // The IPv6 table only when there is an IPv6 service: a listing
            // of a big IPv4 table does not wait for a second pass.
            if v6 && self.dataplane.request(w, Request::ListConns6(tx6.clone())) {
                asked6 += 1;
            }
        }
        let filter = match service {
            Some(ServiceKey::Addr { proto, addr, port }) => Some((proto.number(), *addr, *port)),
            _ => None,
        };
        // Persistence templates: state NONE, client port 0 (IPVS shows them so).
        let now_s = self.now_s();
        let ids: std::collections::HashMap<u32, (IpAddr, u16, ServiceKey)> = self
            .core
            .state()
            .dests()
            .map(|((k, a, p), d)| (d.id, (*a, *p, k.clone())))
            .collect();
        let mut templates = Vec::new();
        let state = self.core.state();
        let all = state
            .templates
            .iter(now_s)
            .map(|t| (t.dest, t.expires_s, IpAddr::V4(Ipv4Addr::from(t.caddr))))
            .chain(
                state
                    .templates6
                    .iter6(now_s)
                    .map(|(t, a)| (t.dest, t.expires_s, IpAddr::V6(a.into()))),
            );
        for (dest, expires_s, caddr) in all {
            let Some((
                addr,
                port,
                ServiceKey::Addr {
                    proto,
                    addr: vaddr,
                    port: vport,
                },
            )) = ids.get(&dest)
            else {
                continue;
            };
            let p = proto.number();
            if filter.is_some_and(|f| f != (p, *vaddr, *vport)) {
                continue;
            }
            templates.push(ConnEntry {
                proto: if p == 6 {
                    ConnProto::Tcp
                } else {
                    ConnProto::Udp
                },
                expires: expires_s.saturating_sub(now_s),
                state: "NONE".into(),
                client: (caddr, 0),
                virt: (*vaddr, *vport),
                dest: (*addr, *port),
                pe: None,
            });
        }
        ConnsQuery {
            rx,
            rx6,
            asked,
            asked6,
            deadline: Instant::now() + Duration::from_secs(2),
            filter,
            templates,
            persistent_conn,
        }
    }

    /// What `ferrovs status` and `/api/v1/status` show: the published
    /// view, current since every change ends by refreshing it.
    pub fn status_json(&self) -> String {
        self.view.load().status_json()
    }

    /// Seconds on the workers' clock (they count from the same epoch).
    pub fn now_s(&self) -> u32 {
        (worker_clock_ms(self.epoch) / 1000) as u32
    }

    /// Periodic work: the devices' warnings, then the core's (rate
    /// estimation, forgetting drained servers).
    pub fn tick(&mut self) {
        for d in &self.devices {
            for w in d.warnings() {
                warn!("{w}");
            }
        }
        self.feed(Input::Tick);
    }
}

/// Logs a configuration's diagnostics; true when it is usable.
fn report(loaded: &Loaded) -> bool {
    for d in loaded.diagnostics.warnings() {
        warn!("{d}");
    }
    for d in loaded.diagnostics.errors() {
        error!("{d}");
    }
    !loaded.diagnostics.has_errors()
}

/// Polls per idle spell before a worker sleeps: some tens of microseconds
/// of spinning, so that back-to-back packets of a request/response flow
/// find the worker awake, then the worker blocks until a port has frames.
const IDLE_SPIN_POLLS: u32 = 256;
/// The longest sleep: timers, new snapshots and control-plane requests are
/// served at least this often.
const IDLE_SLEEP_MS: i32 = 1;

/// A worker thread: poll until told to stop. An idle worker sleeps in
/// poll(2) on its ports (and a doorbell its peers ring), so a packet wakes it
/// at once and an idle director does not burn its cores; backends without
/// pollable descriptors (DPDK) nap for 50 µs instead, as DPDK's power-aware
/// l3fwd does.
pub fn worker_loop<P: Port>(
    mut w: Worker<P>,
    epoch: Instant,
    stop: Arc<AtomicBool>,
    heartbeats: Heartbeats,
    index: usize,
    neigh_file: Option<PathBuf>,
) {
    let mut idle = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let now = worker_clock_ms(epoch);
        heartbeats.beat(index, now);
        let n = w.poll(now);
        if n == 0 {
            idle = idle.saturating_add(1);
            if idle > IDLE_SPIN_POLLS {
                w.wait(IDLE_SLEEP_MS);
            }
        } else {
            idle = 0;
        }
    }
    // Its tables are final: the next process reads them as a clean stop's,
    // and takes its neighbours.
    if let Some(f) = neigh_file {
        if let Err(e) = crate::state_files::write_neighbours(&f, &w.neighbours()) {
            warn!("{}: {e}", f.display());
        }
    }
    w.mark_clean(ferrovs_dataplane::port::shm::monotonic_ms());
    if ferrovs_dataplane::port::afxdp::handing_over() {
        w.leak_tables();
    }
    drop(w);
    debug!("worker {index}: stopped");
}

/// How `run` ended.
#[derive(Debug)]
pub enum Exit {
    /// SIGTERM or SIGINT.
    Stopped,
    /// `ferrovs upgrade` on AF_XDP: a new process took the ports over and
    /// forwards; this one exits.
    HandedOver,
    /// `ferrovs upgrade`: everything is stopped and closed; the caller
    /// executes the plan.
    Upgrade(crate::upgrade::Plan),
}

/// What a backend opened for `run`.
pub struct Opened<P> {
    /// Per worker, one queue per interface, in the order of the interfaces.
    pub ports: Vec<Vec<P>>,
    /// Per worker, the exception interfaces' queues (in the same order);
    /// empty when the kernel sees the ports itself (AF_PACKET).
    pub kernel: Vec<Vec<P>>,
    /// The MAC of each port, when the kernel's interface does not carry it.
    pub macs: Option<Vec<ferrovs_dataplane::wire::Mac>>,
    pub devices: Vec<Arc<dyn PortDevice>>,
    /// Starts worker `w` running `f`; returns what waits for it to end.
    /// None: plain threads, pinned when a core is left over.
    pub spawn: Option<Box<Spawner>>,
    /// Held until the workers have stopped (e.g. the DPDK EAL).
    pub keep: Vec<Box<dyn std::any::Any>>,
    /// Called with every snapshot before the workers get it (the AF_XDP
    /// backend's XDP program follows the active addresses).
    pub on_publish: Option<PublishHook>,
    /// The backend can hand its ports to a new process (AF_XDP).
    pub handover: Option<Arc<dyn HandOverPorts>>,
}

/// A backend that can hand its ports to a new process (`crate::handover`).
pub trait HandOverPorts: Send + Sync {
    /// Before the workers stop: they must leave their rings as they are.
    fn before_stop(&self);
    /// Once they have stopped: the ports, as descriptors.
    fn export(&self) -> std::io::Result<crate::handover::Ports>;
}

pub type PublishHook = Arc<dyn Fn(&Snapshot) + Send + Sync>;

pub type Spawner =
    dyn Fn(usize, Box<dyn FnOnce() + Send>) -> Result<Box<dyn FnOnce() + Send>, SpawnError>;

/// What a backend needs to know to open the ports.
pub struct OpenRequest<'a> {
    pub settings: &'a ferrovs_config::model::FerrovsSettings,
    pub ifaces: &'a [String],
    pub workers: usize,
    /// Every FULLNAT local address (for NIC reply steering).
    pub laddrs: Vec<Ipv4Addr>,
    /// Brings an interface up (the exception interfaces a DPDK backend
    /// creates), through the southbound.
    pub link_up: &'a dyn Fn(&str) -> Result<(), NetError>,
    /// The kernel's network as the southbound follows it: the ports'
    /// facts (index, MAC, MTU) to open them with, and their link state
    /// for `/metrics`.
    pub net: tokio::sync::watch::Receiver<Arc<NetState>>,
    /// The links' counters, as the southbound reads them (`/metrics`).
    pub stats: tokio::sync::watch::Receiver<Arc<crate::southbound::LinkStatsMap>>,
    /// The ports the previous process handed over, to be adopted instead
    /// of opened (`crate::handover`; AF_XDP only).
    pub takeover: std::cell::Cell<Option<crate::handover::Ports>>,
}

pub type PortOpener<P> = dyn Fn(&OpenRequest) -> Result<Opened<P>, PortError>;

/// Runs the appliance until SIGTERM/SIGINT, or until it hands over to a
/// new binary (`ferrovs upgrade`).
pub fn run<P: Port + 'static>(path: &Path, open: &PortOpener<P>) -> Result<Exit, RunError> {
    let t_run = Instant::now();
    debug!("starting");
    let loaded = ferrovs_config::load_file(path);
    if !report(&loaded) {
        return Err(RunError::ConfigErrors(path.to_path_buf()));
    }
    let cfg = loaded.config;
    crate::northbound::http::raise_nofile_limit();
    // A panic anywhere (a worker's too) sends the VIPs' priority 0 and ends
    // the process, so the peer takes over at once and systemd restarts us.
    crate::vrrp::last_words::install_panic_hook(true);
    let settings = cfg.ferrovs.clone();
    let ifaces = settings.effective_interfaces(&cfg);
    if ifaces.is_empty() {
        return Err(RunError::NoInterface);
    }
    let workers = settings
        .workers
        .map(|w| w.max(1) as usize)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get().saturating_sub(1).max(1))
                .unwrap_or(1)
        });
    // Started by `ferrovs upgrade` to take a running process's ports over
    // (`crate::handover`): its socket and locks are taken once it lets go.
    let takeover = match crate::handover::Child::from_env() {
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => return Err(RunError::Handover(e.to_string())),
        None => None,
    };
    let open_ctl = || {
        crate::northbound::ctl_server::CtlSocket::open(
            &ctl::socket_path(&settings.control_socket),
            settings.control_socket_group.as_deref(),
        )
    };
    let lock_ports =
        || crate::pid_lock::lock_ports(Path::new(crate::pid_lock::PORT_LOCK_DIR), &ifaces);
    // Before the ports: a second ferrovs on the same socket stops here.
    let (mut ctl_socket, mut port_locks) = match takeover {
        None => (Some(open_ctl()?), Some(lock_ports()?)),
        Some(_) => (None, None),
    };
    // The control plane's runtime, first: the southbound follows the
    // kernel's interfaces from now on.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    let southbound = rt
        .block_on(Southbound::start())
        .map_err(RunError::Southbound)?;
    let link_up = |name: &str| rt.block_on(southbound.set_link_up(name));
    let laddrs_by_service = laddrs_from_config(&cfg);
    // The IPv4 ones: what the ports steer (DPDK's flow rules, AF_XDP).
    let mut all_laddrs: Vec<Ipv4Addr> = laddrs_by_service
        .values()
        .flatten()
        .filter_map(|a| match a {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        })
        .collect();
    all_laddrs.sort();
    all_laddrs.dedup();
    let request = |takeover| OpenRequest {
        settings: &settings,
        ifaces: &ifaces,
        workers,
        laddrs: all_laddrs.clone(),
        link_up: &link_up,
        net: southbound.subscribe(),
        stats: southbound.subscribe_stats(),
        takeover: std::cell::Cell::new(takeover),
    };
    // Ports first: a DPDK backend creates the exception interfaces whose
    // addresses are read next. A hand-over takes them last, once this
    // process is ready.
    let mut opened = match takeover {
        None => Some(open(&request(None))?),
        Some(_) => None,
    };
    debug!("ports open");
    // Read again: a DPDK backend has just created its interfaces.
    let ns = rt.block_on(southbound.dump_now())?;
    let mut ports_conf = Vec::new();
    for (k, i) in ifaces.iter().enumerate() {
        let mut p = ns.port(i)?;
        if let Some(m) = opened
            .as_ref()
            .and_then(|o| o.macs.as_ref())
            .and_then(|m| m.get(k))
        {
            p.mac = *m;
        }
        ports_conf.push(p);
    }
    let routes = ns.routes(&ports_conf);
    let addrs6 = ports_conf.iter().map(|p| ns.port_addrs6(&p.name)).collect();
    let routes6 = ns.routes6(&ports_conf);
    let net = Net {
        ports: ports_conf,
        routes,
        addrs6,
        routes6,
    };
    let table_size = settings.conn_table_size.max(1024);
    // Templates are shared by every worker: one per connection at most,
    // so as many as all the workers' tables hold (a spoofed flood of
    // persistent clients makes one per connection), within 4M slots
    // (128 MiB); what does not fit is counted (templates_full) and the
    // connection is forwarded without persistence.
    let templates = Arc::new(TemplateTable::new(
        (table_size as usize).saturating_mul(workers).min(1 << 22),
    ));
    let mut state = IpvsState::new(workers, templates, table_size);
    // IPv6 clients' templates: as many, within 1M slots (48 MiB).
    state.templates6 = Arc::new(TemplateTable::new_v6(
        (table_size as usize).saturating_mul(workers).min(1 << 20),
    ));
    if let Some(t) = cfg.global.lvs_timeouts {
        state.timeouts.set(t.tcp, t.tcpfin, t.udp);
    }
    state.laddrs = laddrs_by_service;
    state.sloppy_tcp = cfg.ferrovs.sloppy_tcp;
    // The health manager's first table is keepalived's: alpha checkers
    // start failed, inhibited servers at weight 0, the sorry server if the
    // quorum is not met.
    let health_manager = crate::health::HealthManager::new(&cfg);
    state.replace_table(health_manager.table());
    // Addresses of vrrp_instances start released: an instance takes them
    // when it becomes MASTER.
    let vrrp_vips: Vec<(IpAddr, bool)> = crate::vrrp::driver::vrrp_vips(&cfg)
        .into_iter()
        .map(|a| (a, false))
        .collect();
    let snap = state.build(1, &net, &vrrp_vips)?;
    if let Some(h) = opened.as_ref().and_then(|o| o.on_publish.as_ref()) {
        h(&snap);
    }
    let shared = Shared::<P::Pkt>::new(snap);

    let epoch = Instant::now();
    let mono_now = ferrovs_dataplane::port::shm::monotonic_ms;
    // A worker's clock plus this is CLOCK_MONOTONIC (`persist::Header`).
    let epoch_mono = mono_now().saturating_sub(worker_clock_ms(epoch));
    // The connection tables the previous process left, and where this
    // one's go (issue 17).
    let need = ferrovs_dataplane::persist::bytes_per_worker(
        table_size as usize,
        ferrovs_dataplane::worker::default_capacity6(table_size as usize),
    ) * workers as u64;
    // A hand-over makes its tables before it takes anything: in a
    // directory of their own, moved in place once the previous process's
    // files are aside.
    let (mut store, mut previous, mut state_lock) = match takeover {
        None => open_state(
            settings.state_dir.as_deref(),
            &ifaces,
            workers,
            epoch_mono,
            need,
        ),
        Some(_) => (
            stage_state(settings.state_dir.as_deref(), workers, epoch_mono, need),
            Default::default(),
            None,
        ),
    };
    let mut tables: Vec<
        Option<(
            ferrovs_dataplane::conn::ConnTable,
            ferrovs_dataplane::conn::ConnTable,
        )>,
    > = (0..workers)
        .map(|w| {
            // Back to the heap when the files cannot be made (a full
            // tmpfs): the director forwards, its table will not outlive it.
            store.as_ref().and_then(|s| {
                Worker::<P>::stored_tables(s, w, table_size as usize, worker_clock_ms(epoch))
                    .map_err(|e| {
                        warn!("worker {w}: its connections will not survive a restart: {e}")
                    })
                    .ok()
            })
        })
        .collect();
    if let Some(child) = &takeover {
        debug!("ready to take over");
        let t0 = Instant::now();
        let ports = match child.take_over() {
            Ok(p) => p,
            Err(e) => {
                child.failed(&e);
                return Err(RunError::Handover(e));
            }
        };
        debug!("ports received");
        let took = (|| -> Result<Opened<P>, RunError> {
            ctl_socket = Some(open_ctl()?);
            port_locks = Some(lock_ports()?);
            let o = open(&request(Some(ports)))?;
            if let Some(h) = &o.on_publish {
                h(&shared.snapshot.load_full());
            }
            Ok(o)
        })();
        let o = match took {
            Ok(o) => o,
            Err(e) => {
                child.failed(&e.to_string());
                return Err(e);
            }
        };
        opened = Some(o);
        debug!("ports adopted");
        let (s, p, l) = take_state(
            settings.state_dir.as_deref(),
            &ifaces,
            store.take(),
            &mut tables,
        );
        (store, previous, state_lock) = (s, p, l);
        info!(
            "upgrade: took the ports over in {} ms",
            t0.elapsed().as_millis()
        );
    }
    let _state_lock = state_lock;
    let _port_locks = port_locks;
    let Some(opened) = opened else {
        return Err(RunError::Handover("no ports".into()));
    };
    let Some(mut ctl_socket) = ctl_socket else {
        return Err(RunError::Handover("no control socket".into()));
    };
    let mut routed: Vec<Vec<ferrovs_dataplane::persist::Saved>> = vec![Vec::new(); workers];
    {
        let snap = shared.snapshot.load_full();
        let owner = |s: &ferrovs_dataplane::persist::Saved, old: usize| {
            ferrovs_dataplane::worker::restore_owner(&snap, s, old).min(workers - 1)
        };
        for (old, saved) in std::mem::take(&mut previous.per_worker) {
            // The usual case (the same workers): the whole list stays with
            // its worker, not copied entry by entry.
            if old < workers && routed[old].is_empty() && saved.iter().all(|s| owner(s, old) == old)
            {
                routed[old] = saved;
                continue;
            }
            for s in saved {
                routed[owner(&s, old)].push(s);
            }
        }
    }
    let mut restored = ferrovs_dataplane::worker::RestoreStats::default();
    debug!("previous tables read");
    let heartbeats = Heartbeats::new(workers, worker_clock_ms(epoch));
    let stop = Arc::new(AtomicBool::new(false));
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let mut joins: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
    let Opened {
        ports: all_ports,
        kernel,
        devices,
        spawn,
        keep,
        on_publish,
        handover: hand_over_ports,
        ..
    } = opened;
    let mut kernel = kernel.into_iter();
    for (w, ports) in all_ports.into_iter().enumerate() {
        let now = worker_clock_ms(epoch);
        let mut worker = match tables[w].take() {
            Some((c4, c6)) => Worker::with_tables(w, shared.clone(), ports, c4, c6, now),
            None => Worker::new(w, shared.clone(), ports, table_size as usize, now),
        };
        if let Some(k) = kernel.next().filter(|k| !k.is_empty()) {
            worker.set_exception(k);
        }
        worker.seed_neighbours(&previous.neighbours, now);
        let neigh_file = store
            .as_ref()
            .map(|s| crate::state_files::neighbours_path(&s.dir, w));
        let mine = std::mem::take(&mut routed[w]);
        if !mine.is_empty() {
            restored.add(&worker.restore(&mine, worker_clock_ms(epoch)));
            debug!("worker {w}: {} connection(s) restored", mine.len());
        }
        let stop = stop.clone();
        let hb = heartbeats.clone();
        let body: Box<dyn FnOnce() + Send> =
            Box::new(move || worker_loop(worker, epoch, stop, hb, w, neigh_file));
        match &spawn {
            Some(spawn) => {
                joins.push(spawn(w, body).map_err(|error| RunError::Worker { worker: w, error })?)
            }
            None => {
                // Pin only when a core is left for the control plane.
                let core = if cores.len() > workers {
                    cores.get(w + 1).copied()
                } else {
                    None
                };
                let h = std::thread::Builder::new()
                    .name(format!("ferrovs-w{w}"))
                    .spawn(move || {
                        if let Some(c) = core {
                            core_affinity::set_for_current(c);
                        }
                        body()
                    })
                    .map_err(|e| RunError::Worker {
                        worker: w,
                        error: e.into(),
                    })?;
                joins.push(Box::new(move || {
                    let _ = h.join();
                }));
            }
        }
    }
    info!(
        "ferrovs running: {} worker(s) on {}",
        workers,
        ifaces.join(", ")
    );
    match &takeover {
        // The old process tells systemd this one's PID.
        Some(child) => child.forwarding(),
        None => crate::sd_notify::notify("READY=1"),
    }
    let report = crate::state_files::Report {
        started_mono_ms: epoch_mono,
        version: env!("CARGO_PKG_VERSION").to_string(),
        previous: if previous.workers == 0 {
            "none"
        } else if previous.clean {
            "clean stop"
        } else {
            "crash"
        }
        .into(),
        read: previous.stats.taken,
        restored: restored.restored,
        inconsistent: previous.stats.bad,
        expired: previous.stats.expired,
        refused: restored.refused(),
        errors: previous.errors.clone(),
        start_ms: t_run.elapsed().as_millis() as u64,
        neighbours: previous.neighbours.len(),
    };
    if previous.workers > 0 {
        info!("{}", report.summary());
        if restored.refused() > 0 {
            info!("restore refusals: {restored:?}");
        }
    }
    if let Some(s) = &store {
        crate::state_files::finish(&s.dir);
        if let Err(e) = report.write(&s.dir) {
            warn!("{}: {e}", s.dir.display());
        }
    }
    drop(previous);

    let mut daemon = Daemon::with_epoch(state, net, shared.clone(), path.to_path_buf(), cfg, epoch);
    daemon.devices = devices;
    daemon.on_publish = on_publish;
    daemon.restored = report;
    daemon.can_hand_over = hand_over_ports.is_some();
    daemon.state_dir = store.as_ref().map(|s| s.dir.clone());
    daemon.vrrp_resume = crate::upgrade::take_masters(&ctl_dir(&settings), mono_now());
    if !daemon.vrrp_resume.is_empty() {
        info!(
            "VRRP: resuming as MASTER of {} (handed over by the previous process)",
            daemon.vrrp_resume.join(", ")
        );
    }
    daemon.net_view = Some(southbound.subscribe());
    let view = daemon.view();
    let (to_daemon, from_tasks) = tokio::sync::mpsc::unbounded_channel();
    daemon.vrrp_link = Some(DaemonLink {
        tx: to_daemon.clone(),
        dataplane: shared.clone(),
        view: view.clone(),
    });
    let http_addr = settings.http_listen;
    let http_api = settings.http_api;
    let result = rt.block_on(async {
        tokio::spawn(async move {
            if let Err(e) = crate::northbound::http::serve(http_addr, view, http_api).await {
                error!("HTTP endpoint {http_addr}: {e}");
            }
        });
        daemon.sync = Some(crate::sync::io::spawn(
            daemon.dataplane.clone(),
            southbound.subscribe(),
        ));
        // `sync_active_active` starts now; `lvs_sync_daemon` is looked at
        // again once VRRP runs.
        daemon.follow_sync(daemon.core().config());
        let net = southbound.subscribe();
        // The kernel's network now: VRRP starts if its interfaces have
        // their addresses.
        let ns = net.borrow().clone();
        daemon.feed(Input::NetChange(ns));
        if !daemon.core().vrrp_running() && !daemon.core().config().vrrp_instances.is_empty() {
            warn!("VRRP waits for an IPv4 address on its interfaces");
        }
        let (htx, hrx) = tokio::sync::mpsc::channel(256);
        let health = health_manager.spawn(htx);
        daemon.health = Some(health.clone());
        daemon.refresh_view();
        if let Some(b) = &settings.bgp {
            // Beside the control socket: root's directory.
            let dir = ctl_dir(&settings);
            // ExaBGP a process that handed over to this one left running.
            let adopt = crate::bgp::adopt::take(&dir, mono_now());
            match crate::bgp::driver::spawn(b, daemon.view(), &dir, adopt) {
                Ok(h) => {
                    daemon.bgp = Some(h);
                    daemon.refresh_view();
                }
                Err(e) => error!("BGP: cannot start: {e}"),
            }
        }
        let owner = Owner {
            daemon: &mut daemon,
            from_tasks,
            health_rx: hrx,
            net,
            heartbeats,
        };
        let r = owner.serve(&mut ctl_socket, to_daemon).await;
        // omega: notify_down / quorum_down scripts, servers out; not when
        // handing over, where the servers stay in and their checks go on
        // in the next process.
        let last = health.shutdown().await;
        if daemon.upgrade.is_none() {
            daemon.apply_health(&last);
        }
        r
    });
    let parent = daemon.handover.take();
    if let (Some(_), Some(h)) = (&parent, &hand_over_ports) {
        h.before_stop();
    }
    debug!("stopping the workers");
    stop.store(true, Ordering::Relaxed);
    for j in joins {
        j();
    }
    debug!("workers stopped");
    shared.drop_queued_packets();
    // The daemon holds the devices: close them (the runtime's tasks hold
    // it too) before what `keep` holds.
    drop(rt);
    let upgrade = daemon.upgrade.take();
    drop(daemon);
    if let (Some(parent), Some(h)) = (parent, hand_over_ports) {
        // The new process takes the ports, then the socket and the locks.
        let ports = h.export();
        drop(ctl_socket);
        drop(_port_locks);
        drop(_state_lock);
        let sent = ports.and_then(|p| parent.send_ports(&p));
        debug!("ports sent");
        let outcome = match sent {
            Ok(()) => parent.wait_forwarding(),
            Err(e) => Err(format!("sending the ports: {e}")),
        };
        drop(keep);
        result?;
        return match outcome {
            Ok(()) => {
                crate::sd_notify::notify(&format!("MAINPID={}", parent.pid()));
                info!("ferrovs stopped: pid {} forwards now", parent.pid());
                Ok(Exit::HandedOver)
            }
            Err(e) => Err(RunError::Handover(format!(
                "the new process (pid {}) did not take over: {e}",
                parent.pid()
            ))),
        };
    }
    drop(keep);
    drop(ctl_socket);
    debug!("ports closed");
    result?;
    Ok(match upgrade {
        Some(plan) => {
            info!("ferrovs stopped: handing over to {}", plan.binary.display());
            Exit::Upgrade(plan)
        }
        None => {
            info!("ferrovs stopped");
            Exit::Stopped
        }
    })
}

/// The directory of the control socket: root's, where the VRRP hand-over
/// is written.
fn ctl_dir(settings: &ferrovs_config::model::FerrovsSettings) -> PathBuf {
    ctl::socket_path(&settings.control_socket)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/run/ferrovs"))
}

/// What opening `state_dir` gives: the store the workers' tables live in,
/// the previous process's tables read back, and the directory's lock.
type StateOpened = (
    Option<ferrovs_dataplane::persist::Store>,
    crate::state_files::Previous,
    Option<crate::pid_lock::PidLock>,
);

/// Prepares the state directory: moves the previous process's tables
/// aside and reads them. Without a directory (or when it cannot be made),
/// the tables live on the heap and die with the process.
fn open_state(
    dir: Option<&Path>,
    ifaces: &[String],
    workers: usize,
    epoch_mono_ms: u64,
    need_bytes: u64,
) -> StateOpened {
    let Some(dir) = dir else {
        return (None, Default::default(), None);
    };
    let identity = crate::state_files::identity(ifaces);
    let lock = match crate::state_files::prepare(dir, &identity) {
        Ok(l) => l,
        Err(e) => {
            warn!(
                "state_dir {}: {e}; the connection table will not survive a restart",
                dir.display()
            );
            return (None, Default::default(), None);
        }
    };
    let previous =
        crate::state_files::read_previous(dir, ferrovs_dataplane::port::shm::monotonic_ms());
    match crate::state_files::room_for(dir, need_bytes) {
        Ok(Ok(())) => {}
        Ok(Err(why)) => {
            warn!(
                "state_dir {}: {why}; the connection table stays on the heap and will not survive a restart",
                dir.display()
            );
            // What was read is restored all the same, from memory.
            crate::state_files::finish(dir);
            return (None, previous, Some(lock));
        }
        Err(e) => warn!("state_dir {}: {e}", dir.display()),
    }
    for e in &previous.errors {
        warn!("previous connection table: {e}");
    }
    let store = ferrovs_dataplane::persist::Store {
        dir: dir.to_path_buf(),
        worker: 0,
        workers,
        epoch_mono_ms,
        boot_id: ferrovs_dataplane::persist::boot_id(),
    };
    (Some(store), previous, Some(lock))
}

/// Where a process that takes over makes its tables before the previous
/// one stops: `state_dir/incoming`, emptied first.
fn stage_state(
    dir: Option<&Path>,
    workers: usize,
    epoch_mono_ms: u64,
    need_bytes: u64,
) -> Option<ferrovs_dataplane::persist::Store> {
    let dir = dir?;
    let incoming = crate::state_files::incoming_dir(dir);
    let _ = std::fs::remove_dir_all(&incoming);
    let made = std::fs::create_dir_all(&incoming).and_then(|()| {
        crate::state_files::room_for(dir, need_bytes)
            .map(|r| r.map_err(|why| std::io::Error::other(why.to_string())))?
    });
    if let Err(e) = made {
        warn!(
            "state_dir {}: {e}; the connection table stays on the heap and will not survive a restart",
            dir.display()
        );
        return None;
    }
    Some(ferrovs_dataplane::persist::Store {
        dir: incoming,
        worker: 0,
        workers,
        epoch_mono_ms,
        boot_id: ferrovs_dataplane::persist::boot_id(),
    })
}

/// Once the previous process has stopped: its tables are moved aside and
/// read ([`open_state`]), and the tables made in `incoming` take their
/// place. Tables that cannot be moved in stay on the heap.
fn take_state(
    dir: Option<&Path>,
    ifaces: &[String],
    staged: Option<ferrovs_dataplane::persist::Store>,
    tables: &mut [Option<(
        ferrovs_dataplane::conn::ConnTable,
        ferrovs_dataplane::conn::ConnTable,
    )>],
) -> StateOpened {
    let Some(dir) = dir else {
        return (None, Default::default(), None);
    };
    let (_, previous, lock) = open_state(Some(dir), ifaces, 0, 0, 0);
    let Some(mut store) = staged else {
        return (None, previous, lock);
    };
    match crate::state_files::move_in(dir) {
        Ok(()) => {
            store.dir = dir.to_path_buf();
            (Some(store), previous, lock)
        }
        Err(e) => {
            warn!(
                "state_dir {}: moving the new tables in: {e}; they will not survive a restart",
                dir.display()
            );
            for t in tables.iter_mut() {
                *t = None;
            }
            (None, previous, lock)
        }
    }
}

/// `--drain [--stop-after SECONDS]` (the options in any order, also
/// `--stop-after=SECONDS`): the seconds, or None for a drain that does not
/// stop the process.
fn parse_drain(args: &[&str]) -> Result<Option<u64>, String> {
    let mut stop_after = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let value = match *a {
            "--drain" => continue,
            "--stop-after" => match it.next() {
                Some(v) => *v,
                None => return Err("--stop-after needs a number of seconds".into()),
            },
            _ => match a.strip_prefix("--stop-after=") {
                Some(v) => v,
                None => return Err(format!("--drain: unexpected argument '{a}'")),
            },
        };
        if stop_after.is_some() {
            return Err("--stop-after given twice".into());
        }
        match value.parse::<u64>() {
            Ok(s) if s <= 86_400 => stop_after = Some(s),
            _ => {
                return Err(format!(
                    "--stop-after: '{value}' is not a number of seconds in 0-86400"
                ))
            }
        }
    }
    Ok(stop_after)
}

/// The one task that owns the daemon: signals, the 2 s tick, health
/// events, network changes, worker heartbeats and the other tasks'
/// messages (control requests, VRRP's VIPs) are taken here, one at a time,
/// and handed to the core.
struct Owner<'a> {
    daemon: &'a mut Daemon,
    from_tasks: tokio::sync::mpsc::UnboundedReceiver<ToDaemon>,
    health_rx: tokio::sync::mpsc::Receiver<crate::health::HealthEvent>,
    net: tokio::sync::watch::Receiver<Arc<NetState>>,
    heartbeats: Heartbeats,
}

impl Owner<'_> {
    async fn serve(
        mut self,
        ctl_socket: &mut crate::northbound::ctl_server::CtlSocket,
        to_daemon: tokio::sync::mpsc::UnboundedSender<ToDaemon>,
    ) -> Result<(), RunError> {
        use tokio::signal::unix::{signal, SignalKind};
        // A control request is taken by the owner; a connection listing
        // then waits for the workers on the request's thread, not here.
        ctl_socket.serve(Arc::new(move |req| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if to_daemon.send(ToDaemon::Ctl(req, tx)).is_err() {
                return CtlResponse::err(1, "ferrovs is stopping");
            }
            match rx.blocking_recv() {
                Ok(pending) => pending.finish(),
                Err(_) => CtlResponse::err(1, "ferrovs is stopping"),
            }
        }))?;
        let mut hup = signal(SignalKind::hangup()).map_err(RunError::Signal)?;
        let mut term = signal(SignalKind::terminate()).map_err(RunError::Signal)?;
        let mut int = signal(SignalKind::interrupt()).map_err(RunError::Signal)?;
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        let mut beats = tokio::time::interval(Duration::from_millis(250));
        let d = &mut *self.daemon;
        // A drain that ends the process (`--drain --stop-after`, SIGTERM
        // with `drain_timeout`) says so here.
        loop {
            // Looked up each time: a reload may start or stop BGP.
            let drain_stop = d.bgp.as_ref().map(|b| b.stop.clone());
            let drained = async {
                match &drain_stop {
                    Some(n) => n.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(msg) = self.from_tasks.recv() => {
                    d.handle(msg);
                    if d.upgrade.is_some() {
                        break;
                    }
                }
                Some(ev) = self.health_rx.recv() => d.apply_health(&ev.table),
                _ = hup.recv() => {
                    // Health changes already decided go in before the reload.
                    while let Ok(ev) = self.health_rx.try_recv() {
                        d.apply_health(&ev.table);
                    }
                    // The core logs a refusal and counts it.
                    let _ = d.reload();
                }
                _ = term.recv() => {
                    // With drain_timeout, the BGP task drains first and
                    // says when to stop (`drained`); a SIGTERM during a
                    // drain stops at once.
                    let timeout = d.drain_timeout();
                    let asked = timeout > 0
                        && d.bgp.as_ref().is_some_and(|b| {
                            b.tx.send(crate::bgp::driver::Command::Terminate {
                                drain_timeout: timeout,
                            })
                            .is_ok()
                        });
                    if !asked {
                        info!("SIGTERM: stopping");
                        break;
                    }
                }
                // Ctrl-C: someone at a terminal, who does not wait.
                _ = int.recv() => { info!("SIGINT: stopping"); break; }
                _ = drained => { info!("drain over: stopping"); break; }
                _ = tick.tick() => d.tick(),
                _ = beats.tick() => d.feed(Input::Heartbeats(self.heartbeats.read())),
                Ok(()) = self.net.changed() => {
                    let ns = self.net.borrow_and_update().clone();
                    d.feed(Input::NetChange(ns));
                }
            }
        }
        let hand_over = d.upgrade.is_some();
        // BGP first: the routers move the traffic to the other directors
        // while this one still forwards. On an upgrade nothing moves:
        // ExaBGP keeps its sessions and the next process adopts it.
        if let Some(b) = d.bgp.take() {
            use crate::bgp::driver::Command;
            if hand_over {
                let (tx, rx) = tokio::sync::oneshot::channel();
                if b.tx.send(Command::HandOver(tx)).is_ok() {
                    if let Ok(Ok(Some(h))) = tokio::time::timeout(Duration::from_secs(6), rx).await
                    {
                        let dir = ctl_dir(&d.core.config().ferrovs);
                        if let Err(e) = crate::bgp::adopt::write(&dir, &h) {
                            warn!(
                                "upgrade: recording the BGP speaker in {}: {e}",
                                dir.display()
                            );
                        }
                    }
                }
            } else {
                let (done_tx, done_rx) = tokio::sync::oneshot::channel();
                if b.tx.send(Command::Shutdown(done_tx)).is_ok() {
                    let _ = tokio::time::timeout(Duration::from_secs(6), done_rx).await;
                }
            }
        }
        // VRRP goes first: priority-0 adverts hand the VIPs over at once
        // while the dataplane still runs, and what it says while it stops
        // (its VIPs released) still reaches the dataplane: the owner keeps
        // taking messages until it has.
        if hand_over {
            // The answer to `ferrovs upgrade` is written by the control
            // socket's task, on this runtime: let it run before the runtime
            // goes (the workers forward meanwhile).
            tokio::time::sleep(Duration::from_millis(20)).await;
            // The instances this process is MASTER of: the next one starts
            // MASTER of them, and the peer hears no priority 0 meanwhile.
            let masters: Vec<String> = d
                .vrrp_status
                .lock()
                .map(|v| {
                    v.iter()
                        .filter(|i| i.state == "MASTER")
                        .map(|i| i.name.clone())
                        .collect()
                })
                .unwrap_or_default();
            let dir = ctl_dir(&d.core.config().ferrovs);
            if let Err(e) = crate::upgrade::write_masters(
                &dir,
                &masters,
                ferrovs_dataplane::port::shm::monotonic_ms(),
            ) {
                warn!(
                    "upgrade: recording the VRRP states in {}: {e}",
                    dir.display()
                );
            }
        }
        if let Some(stop) = d.vrrp_stop.take() {
            let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
            let req = crate::vrrp::driver::StopRequest {
                done: done_tx,
                hand_over,
            };
            if stop.send(req).await.is_ok() {
                let deadline = tokio::time::sleep(crate::vrrp::driver::STOP_TIMEOUT);
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        _ = &mut done_rx => break,
                        _ = &mut deadline => break,
                        Some(msg) = self.from_tasks.recv() => d.handle(msg),
                    }
                }
            }
            while let Ok(msg) = self.from_tasks.try_recv() {
                d.handle(msg);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_drain;

    #[test]
    fn drain_arguments() {
        assert_eq!(parse_drain(&["--drain"]), Ok(None));
        assert_eq!(
            parse_drain(&["--drain", "--stop-after", "60"]),
            Ok(Some(60))
        );
        assert_eq!(parse_drain(&["--stop-after", "5", "--drain"]), Ok(Some(5)));
        assert_eq!(parse_drain(&["--drain", "--stop-after=0"]), Ok(Some(0)));
        assert!(parse_drain(&["--drain", "--stop-after"]).is_err());
        assert!(parse_drain(&["--drain", "--stop-after", "-1"]).is_err());
        assert!(parse_drain(&["--drain", "--stop-after", "1e3"]).is_err());
        assert!(parse_drain(&["--drain", "--stop-after", "1", "--stop-after", "2"]).is_err());
        assert!(parse_drain(&["--drain", "-t", "x"]).is_err());
    }
}
