//! The I/O around the announcer: runs ExaBGP as a child process, talks to
//! its API through `ferrovs bgp-relay` over a Unix socket, and feeds the
//! announcer from the daemon's published view (services, quorum, worker
//! liveness, VRRP ownership) and from the control socket (drain). The
//! decisions are the announcer's (`announcer.rs`, sans-IO); this task only
//! carries them out.
//!
//! ExaBGP keeps what the API announced through a session flap and gives it
//! to the peer again; when ExaBGP itself restarts (it died, or was killed)
//! the relay connects again and everything wanted is announced anew. On
//! SIGTERM every VIP is withdrawn before the process goes, so that routers
//! move the traffic before the dataplane stops. On `ferrovs upgrade`
//! nothing is withdrawn: ExaBGP goes on running with its sessions, its
//! relay connects to the next daemon, which adopts it (`adopt.rs`).

use super::adopt::SpeakerHandover;
use super::announcer::{Announcer, Input, Output};
use super::drain::{self, Drain, DrainStatus};
use super::exabgp::{self, Attributes, Neighbor, Reply, Speaker};
use crate::view::ViewCell;
use arc_swap::ArcSwap;
use ferrovs_config::ipvs::ServiceKey;
use ferrovs_config::model::BgpSettings;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

/// How often the view is read for changes of quorum, workers and VIPs.
const POLL: Duration = Duration::from_millis(200);
/// How long a stopping director waits for ExaBGP to take its withdrawals.
const WITHDRAW_WAIT: Duration = Duration::from_secs(3);

/// What the control socket and the owner ask of the BGP task.
pub enum Command {
    /// Withdraw every VIP and keep forwarding (`ferrovsadm --drain`); with
    /// `stop_after` seconds (`--stop-after`), stop the process once no
    /// connection is left or then (see [`drain`]).
    Drain { stop_after: Option<u64> },
    /// Announce again what should be (`ferrovsadm --undrain`); a pending
    /// stop is cancelled.
    Undrain,
    /// SIGTERM: drain for `drain_timeout` seconds first if that is not 0
    /// and no drain runs; else (or at the end of that drain) the task
    /// notifies [`BgpHandle::stop`].
    Terminate { drain_timeout: u64 },
    /// SIGTERM: withdraw everything, stop ExaBGP, then answer.
    Shutdown(oneshot::Sender<()>),
    /// SIGHUP with a changed `bgp` block: new route attributes are
    /// announced again over the same sessions; a changed speaker (AS,
    /// router id, neighbors, ExaBGP's path) restarts ExaBGP.
    Reload(Box<BgpSettings>),
    /// `ferrovs upgrade`: leave ExaBGP running for the next daemon and
    /// answer what it needs to adopt it; None when there is nothing to
    /// adopt (no speaker, or its API not connected), and then this is a
    /// shutdown.
    HandOver(oneshot::Sender<Option<SpeakerHandover>>),
}

/// How long an adopted ExaBGP's relay has to connect to this daemon before
/// the speaker is taken for lost and started anew.
const ADOPT_WAIT: Duration = Duration::from_secs(10);

/// What `ferrovsadm -L --bgp` and the JSON status show.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BgpStatus {
    /// "starting", "running", "restarting" or "stopped".
    pub speaker: String,
    pub speaker_restarts: u64,
    /// Each neighbor and whether its session is up (as ExaBGP says).
    pub neighbors: BTreeMap<IpAddr, bool>,
    /// VIPs announced now.
    pub announced: Vec<IpAddr>,
    /// VIPs this director may announce, with whether one of their
    /// services has quorum (for FULLNAT: and a local address held).
    pub vips: BTreeMap<IpAddr, bool>,
    pub draining: bool,
    pub workers_alive: bool,
    /// Whether and when a drain stops the process.
    pub drain: DrainStatus,
}

impl BgpStatus {
    /// The listing `ferrovsadm -L --bgp` prints.
    pub fn render(&self) -> String {
        let mut s = format!(
            "BGP speaker ExaBGP: {} (restarts {}){}\n",
            self.speaker,
            self.speaker_restarts,
            if self.draining { ", draining" } else { "" }
        );
        if let Some(l) = self.drain.render() {
            s.push_str(&format!("  {l}\n"));
        }
        for (a, up) in &self.neighbors {
            s.push_str(&format!(
                "  neighbor {a} {}\n",
                if *up { "up" } else { "down" }
            ));
        }
        for (vip, quorum) in &self.vips {
            let state = if self.announced.contains(vip) {
                "announced"
            } else {
                "withdrawn"
            };
            let why = if !quorum {
                " (no quorum)"
            } else if !self.workers_alive {
                " (a worker stalled)"
            } else if self.draining {
                " (draining)"
            } else {
                ""
            };
            s.push_str(&format!("  {vip} {state}{why}\n"));
        }
        s
    }
}

#[derive(Clone)]
pub struct BgpHandle {
    pub tx: mpsc::UnboundedSender<Command>,
    pub status: Arc<ArcSwap<BgpStatus>>,
    /// Notified once, when a drain decided that the process stops: the
    /// owner then stops as on SIGTERM (the VIPs are withdrawn already).
    pub stop: Arc<tokio::sync::Notify>,
}

/// The VIPs the view says this director may announce, each with whether a
/// service of it has quorum: every TCP/UDP service's address; quorum as
/// the health checks decide it (a service no virtual_server checks, one an
/// administrator added, has quorum while a server has weight); a VIP that
/// VRRP manages only while this director holds it.
pub fn wanted(view: &crate::view::View) -> (Vec<(IpAddr, bool)>, bool) {
    let health = view.health.as_ref().map(|h| h.status()).unwrap_or_default();
    let mut vips: BTreeMap<IpAddr, bool> = BTreeMap::new();
    for s in &view.state.table.services {
        let ServiceKey::Addr { addr, .. } = s.key else {
            continue;
        };
        if view.vrrp_vips.get(&addr) == Some(&false) {
            continue;
        }
        let quorum = match health.iter().find(|v| v.services.contains(&s.key)) {
            Some(v) => v.quorum_up,
            None => s.dests.iter().any(|d| d.weight > 0),
        };
        *vips.entry(addr).or_insert(false) |= quorum && holds_a_laddr(view, s);
    }
    (vips.into_iter().collect(), view.workers_running)
}

/// Whether this director can make the service's connections: a FULLNAT
/// service needs a local address it holds (one no VRRP instance in BACKUP
/// keeps). Behind ECMP each director holds its own local addresses in a
/// server-side instance that the others back up (README, "FULLNAT behind
/// ECMP"); one that starts or comes back waits as BACKUP for its
/// instance's `preempt_delay` while the sync daemons teach it the flows it
/// will see, and announces only once it holds its address: flows the
/// router moves to it then find their connections.
fn holds_a_laddr(view: &crate::view::View, s: &ferrovs_config::ipvs::Service) -> bool {
    if !s.forwards_by_fullnat() {
        return true;
    }
    let laddrs = view.state.laddrs.get(&s.key).map_or(&[][..], Vec::as_slice);
    laddrs.iter().any(|l| view.vrrp_vips.get(l) != Some(&false))
}

/// Starts the BGP task on the current runtime: writes ExaBGP's
/// configuration into `dir`, listens for the relay there, and runs ExaBGP,
/// or adopts the one a process that handed over to this one left running.
pub fn spawn(
    settings: &BgpSettings,
    view: ViewCell,
    dir: &Path,
    adopt: Option<SpeakerHandover>,
) -> std::io::Result<BgpHandle> {
    std::fs::create_dir_all(dir)?;
    let sock_path = dir.join("bgp.sock");
    let _ = std::fs::remove_file(&sock_path);
    let listener = UnixListener::bind(&sock_path)?;
    // The relay runs as root (ExaBGP is told not to drop privileges).
    std::fs::set_permissions(&sock_path, std::fs::Permissions::from_mode(0o600))?;
    let conf = dir.join("exabgp.conf");
    let speaker_conf = speaker_conf(settings, &sock_path)?;
    std::fs::write(&conf, &speaker_conf)?;
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600))?;
    let attrs = attributes(settings);
    let mut st = BgpStatus {
        speaker: "starting".into(),
        workers_alive: true,
        ..BgpStatus::default()
    };
    let adopted = adopt.and_then(|h| {
        let pid = nix::unistd::Pid::from_raw(h.pid as i32);
        if !is_exabgp(pid) {
            warn!(
                "BGP: the ExaBGP handed over (pid {}) is gone; starting one",
                h.pid
            );
            return None;
        }
        info!("BGP: adopting ExaBGP (pid {}) and its sessions", h.pid);
        st.neighbors = h.neighbors;
        st.speaker_restarts = h.speaker_restarts;
        Some((pid, h.announced))
    });
    let status = Arc::new(ArcSwap::from_pointee(st.clone()));
    let (tx, rx) = mpsc::unbounded_channel();
    let stop = Arc::new(tokio::sync::Notify::new());
    let task = Task {
        exabgp: settings.exabgp.clone(),
        conf,
        sock_path,
        speaker_conf,
        attrs,
        listener,
        view,
        status: status.clone(),
        announcer: Announcer::new(),
        st,
        relay: None,
        adopted_announced: adopted.as_ref().map(|(_, a)| a.clone()),
        drain: Drain::new(),
        epoch: tokio::time::Instant::now(),
        stop: stop.clone(),
        stop_sent: false,
    };
    tokio::spawn(task.run(rx, adopted.map(|(pid, _)| pid)));
    Ok(BgpHandle { tx, status, stop })
}

/// ExaBGP's configuration for `settings`, its API process the relay to
/// `sock_path`.
fn speaker_conf(settings: &BgpSettings, sock_path: &Path) -> std::io::Result<String> {
    let exe = std::env::current_exe()?;
    let speaker = Speaker {
        router_id: settings.router_id,
        local_as: settings.local_as,
        neighbors: settings
            .neighbors
            .iter()
            .map(|n| Neighbor {
                address: n.address,
                peer_as: n.peer_as,
                local_address: n.local_address,
                hold_time: n.hold_time,
                md5_password: n.md5_password.clone(),
            })
            .collect(),
        relay: vec![
            exe.display().to_string(),
            "bgp-relay".into(),
            "--socket".into(),
            sock_path.display().to_string(),
        ],
    };
    Ok(speaker.render())
}

fn attributes(settings: &BgpSettings) -> Attributes {
    Attributes {
        next_hop: settings.next_hop,
        med: settings.med,
        communities: settings.communities.clone(),
    }
}

struct Task {
    exabgp: PathBuf,
    conf: PathBuf,
    sock_path: PathBuf,
    /// What `conf` holds.
    speaker_conf: String,
    attrs: Attributes,
    listener: UnixListener,
    view: ViewCell,
    status: Arc<ArcSwap<BgpStatus>>,
    announcer: Announcer,
    st: BgpStatus,
    relay: Option<tokio::net::unix::OwnedWriteHalf>,
    /// What an adopted ExaBGP announces, until its relay connects.
    adopted_announced: Option<Vec<IpAddr>>,
    /// When a drain stops the process.
    drain: Drain,
    /// The drain's clock starts here (milliseconds since).
    epoch: tokio::time::Instant,
    stop: Arc<tokio::sync::Notify>,
    stop_sent: bool,
}

type RelayLines = tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>;

/// Whether `pid` is a running ExaBGP (a pid can be reused once it ended).
fn is_exabgp(pid: nix::unistd::Pid) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("exabgp"))
        && alive(pid)
}

/// Whether the adopted speaker `pid` still runs. After an upgrade in place
/// (exec) it is still this process's child, and is reaped here; after a
/// hand-over to a new process it is not, and signal 0 tells.
fn alive(pid: nix::unistd::Pid) -> bool {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) => true,
        Ok(_) => false,
        Err(nix::errno::Errno::ECHILD) => nix::sys::signal::kill(pid, None).is_ok(),
        Err(_) => true,
    }
}

/// Stops an adopted speaker: SIGTERM (ExaBGP ends its sessions with a
/// NOTIFICATION), SIGKILL if it is still there after two seconds.
async fn terminate(pid: nix::unistd::Pid) {
    use nix::sys::signal::{kill, Signal};
    let _ = kill(pid, Signal::SIGTERM);
    for _ in 0..20 {
        if !alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = kill(pid, Signal::SIGKILL);
    tokio::time::sleep(Duration::from_millis(50)).await;
    alive(pid);
}

impl Task {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Feeds the drain machine; tells the owner once when it says stop.
    fn drain_input(&mut self, input: drain::Input) {
        if self.drain.handle(input) && !self.stop_sent {
            self.stop_sent = true;
            info!("BGP: drain over: stopping the process");
            self.stop.notify_one();
        }
        self.st.drain = self.drain.status(self.now_ms());
    }

    fn start_speaker(&self) -> std::io::Result<tokio::process::Child> {
        let mut cmd = tokio::process::Command::new(&self.exabgp);
        cmd.arg(&self.conf)
            // ExaBGP would drop to `nobody`, and its relay could not reach
            // the daemon's root-only socket; no CLI pipes either (ferrovsadm
            // is the interface). Its warnings go to our stderr (the
            // journal) directly, not through a pipe of ours: it outlives
            // this process on an upgrade, and a pipe would break under it.
            .env("exabgp.daemon.user", "root")
            .env("exabgp.daemon.daemonize", "false")
            .env("exabgp.api.ack", "true")
            .env("exabgp.api.cli", "false")
            .env("exabgp.log.destination", "stderr")
            .env("exabgp.log.level", "WARNING")
            .env("exabgp.daemon.pid", "")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true);
        cmd.spawn()
    }

    async fn send(&mut self, outs: Vec<Output>) {
        for o in outs {
            let line = exabgp::command(&o, &self.attrs);
            // Without a relay the command is not said; the next relay's
            // `SpeakerUp` says what is wanted then.
            if self.relay.is_some() {
                match o {
                    Output::Announce(a) => info!("BGP: announcing {a}"),
                    Output::Withdraw(a) => info!("BGP: withdrawing {a}"),
                }
            }
            if let Some(w) = &mut self.relay {
                if w.write_all(format!("{line}\n").as_bytes()).await.is_err() {
                    // The relay is gone: its replacement announces anew.
                    self.relay = None;
                }
            }
        }
        self.publish();
    }

    fn publish(&mut self) {
        self.st.announced = self
            .st
            .vips
            .keys()
            .filter(|a| self.announcer.announced(a))
            .copied()
            .collect();
        self.st.draining = self.announcer.draining();
        self.st.drain = self.drain.status(self.now_ms());
        self.status.store(Arc::new(self.st.clone()));
    }

    /// Reads the view; feeds what changed.
    async fn poll_view(&mut self) {
        let view = self.view.load();
        let (vips, alive) = wanted(&view);
        let (active_conns, forwarded) = (view.state.drain_conns(), view.state.forwarded_packets());
        let now = self.now_ms();
        self.drain_input(drain::Input::Tick {
            now,
            active_conns,
            forwarded,
        });
        let map: BTreeMap<IpAddr, bool> = vips.iter().copied().collect();
        if map != self.st.vips {
            self.st.vips = map;
            let outs = self.announcer.handle(Input::SetVips(vips));
            self.send(outs).await;
        }
        if alive != self.st.workers_alive {
            self.st.workers_alive = alive;
            if !alive {
                warn!("BGP: a worker stalled: withdrawing");
            }
            let outs = self.announcer.handle(Input::Workers(alive));
            self.send(outs).await;
        }
        self.publish();
    }

    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Command>,
        mut adopted: Option<nix::unistd::Pid>,
    ) {
        let mut child = if adopted.is_some() {
            None
        } else {
            match self.start_speaker() {
                Ok(c) => Some(c),
                Err(e) => {
                    error!("BGP: cannot start {}: {e}", self.exabgp.display());
                    None
                }
            }
        };
        self.st.speaker = if child.is_some() || adopted.is_some() {
            "running"
        } else {
            "stopped"
        }
        .into();
        self.publish();
        let mut poll = tokio::time::interval(POLL);
        let mut retry_at: Option<tokio::time::Instant> = None;
        let mut adopt_until = adopted.map(|_| tokio::time::Instant::now() + ADOPT_WAIT);
        let mut backoff = Duration::from_secs(1);
        let mut lines: Option<RelayLines> = None;
        loop {
            let exited = async {
                match (child.as_mut(), adopted) {
                    (Some(c), _) => c.wait().await.ok(),
                    // Not a child tokio knows: looked at every POLL.
                    (None, Some(pid)) => loop {
                        tokio::time::sleep(POLL).await;
                        if !alive(pid) {
                            break None;
                        }
                    },
                    (None, None) => std::future::pending().await,
                }
            };
            let retry = async {
                match retry_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            let adopt_timeout = async {
                match adopt_until {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            let line = async {
                match lines.as_mut() {
                    Some(l) => l.next_line().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = poll.tick() => self.poll_view().await,
                Ok((stream, _)) = self.listener.accept() => {
                    adopt_until = None;
                    self.connected(stream, &mut lines).await;
                    backoff = Duration::from_secs(1);
                }
                l = line => match l {
                    Ok(Some(l)) => self.reply(&l),
                    _ => {
                        lines = None;
                        self.relay = None;
                    }
                },
                status = exited => {
                    warn!("BGP: ExaBGP exited ({status:?}); starting it again in {backoff:?}");
                    child = None;
                    adopted = None;
                    adopt_until = None;
                    self.adopted_announced = None;
                    self.relay = None;
                    lines = None;
                    self.st.neighbors.values_mut().for_each(|u| *u = false);
                    self.st.speaker = "restarting".into();
                    self.publish();
                    retry_at = Some(tokio::time::Instant::now() + backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
                _ = adopt_timeout => {
                    adopt_until = None;
                    if let Some(pid) = adopted.take() {
                        warn!("BGP: the adopted ExaBGP (pid {pid}) did not connect within {ADOPT_WAIT:?}; starting another");
                        terminate(pid).await;
                        self.adopted_announced = None;
                        self.st.neighbors.values_mut().for_each(|u| *u = false);
                        self.st.speaker = "restarting".into();
                        self.publish();
                        retry_at = Some(tokio::time::Instant::now());
                    }
                }
                _ = retry => {
                    retry_at = None;
                    match self.start_speaker() {
                        Ok(c) => {
                            child = Some(c);
                            self.st.speaker_restarts += 1;
                            self.st.speaker = "running".into();
                        }
                        Err(e) => {
                            error!("BGP: cannot start {}: {e}", self.exabgp.display());
                            retry_at = Some(tokio::time::Instant::now() + backoff);
                        }
                    }
                    self.publish();
                }
                cmd = rx.recv() => match cmd {
                    Some(Command::Drain { stop_after }) => {
                        match stop_after {
                            Some(s) => info!("BGP: draining: withdrawing every VIP, forwarding goes on; the process stops when no connection is left or in {s} s"),
                            None => info!("BGP: draining: withdrawing every VIP, forwarding goes on"),
                        }
                        let now = self.now_ms();
                        self.drain_input(drain::Input::Start { stop_after, now });
                        let outs = self.announcer.handle(Input::Drain);
                        self.send(outs).await;
                    }
                    Some(Command::Undrain) if self.stop_sent => {
                        // The owner is stopping: announcing now would draw
                        // flows to a director about to go.
                        warn!("BGP: undrain refused: the process is stopping");
                    }
                    Some(Command::Undrain) => {
                        info!("BGP: drain ended");
                        self.drain_input(drain::Input::Cancel);
                        let outs = self.announcer.handle(Input::Undrain);
                        self.send(outs).await;
                    }
                    Some(Command::Reload(b)) => {
                        if self.reload(&b).await {
                            // The exit is seen above and ExaBGP starts again
                            // with the new file.
                            if let Some(c) = child.as_mut() {
                                let _ = c.start_kill();
                            }
                            if let Some(pid) = adopted {
                                terminate(pid).await;
                            }
                            backoff = Duration::from_millis(100);
                        }
                    }
                    Some(Command::Terminate { drain_timeout }) => {
                        let now = self.now_ms();
                        self.drain_input(drain::Input::Terminate { now, drain_timeout });
                        if self.drain.draining() {
                            info!("SIGTERM: draining first: every VIP is withdrawn; the process stops when no connection is left or in {drain_timeout} s (SIGTERM again: at once)");
                            let outs = self.announcer.handle(Input::Drain);
                            self.send(outs).await;
                        }
                    }
                    Some(Command::Shutdown(done)) => {
                        let outs = self.announcer.handle(Input::Shutdown);
                        // After a drain nothing is left to withdraw, and
                        // no ack to wait for.
                        let pending = outs.len();
                        self.send(outs).await;
                        self.stop(child.take(), adopted.take(), lines.take(), pending).await;
                        let _ = done.send(());
                        return;
                    }
                    Some(Command::HandOver(reply)) => {
                        let pid = match (&child, adopted) {
                            (Some(c), _) => c.id().map(|p| nix::unistd::Pid::from_raw(p as i32)),
                            (None, a) => a,
                        };
                        match pid.filter(|_| self.relay.is_some()) {
                            Some(pid) => {
                                let h = self.hand_over(child.take(), lines.take(), pid).await;
                                let _ = reply.send(Some(h));
                            }
                            None => {
                                // Nothing the next daemon could adopt: as on SIGTERM.
                                let outs = self.announcer.handle(Input::Shutdown);
                                let pending = outs.len();
                                self.send(outs).await;
                                self.stop(child.take(), adopted.take(), lines.take(), pending).await;
                                let _ = reply.send(None);
                            }
                        }
                        return;
                    }
                    None => {
                        self.stop(child.take(), adopted.take(), lines.take(), 0).await;
                        return;
                    }
                },
            }
        }
    }

    /// Takes a reloaded `bgp` block; true when ExaBGP must start again with
    /// the new configuration file.
    async fn reload(&mut self, b: &BgpSettings) -> bool {
        let attrs = attributes(b);
        if attrs != self.attrs {
            info!("BGP: reload: new route attributes, announced again");
            self.attrs = attrs;
            // Announcing a route again with other attributes replaces it
            // at the peers (an implicit withdrawal, RFC 4271 3.1).
            let outs = self.announcer.handle(Input::SpeakerUp);
            self.send(outs).await;
        }
        let conf = match speaker_conf(b, &self.sock_path) {
            Ok(c) => c,
            Err(e) => {
                error!("BGP: reload: {e}");
                return false;
            }
        };
        if conf == self.speaker_conf && b.exabgp == self.exabgp {
            return false;
        }
        if let Err(e) = std::fs::write(&self.conf, &conf) {
            error!("BGP: reload: writing {}: {e}", self.conf.display());
            return false;
        }
        info!("BGP: reload: the speaker's settings changed; restarting ExaBGP");
        self.speaker_conf = conf;
        self.exabgp = b.exabgp.clone();
        true
    }

    /// A relay connected: ExaBGP (re)started and knows nothing we said, or
    /// the one adopted from the process before reconnected, and announces
    /// what that process told it.
    async fn connected(&mut self, stream: UnixStream, lines: &mut Option<RelayLines>) {
        let (r, w) = stream.into_split();
        self.relay = Some(w);
        *lines = Some(BufReader::new(r).lines());
        // The view first, so that the first announcements are right.
        self.poll_view().await;
        let input = match self.adopted_announced.take() {
            Some(list) => {
                info!("BGP: the adopted ExaBGP's API connected");
                Input::Adopted(list)
            }
            None => {
                info!("BGP: ExaBGP's API connected");
                Input::SpeakerUp
            }
        };
        let outs = self.announcer.handle(input);
        self.send(outs).await;
    }

    /// Leaves ExaBGP (`pid`) running for the next daemon: tells its relay
    /// to connect again, closes our end, and says what the next daemon
    /// needs to adopt it. Nothing is withdrawn: the sessions and the
    /// routes stay as they are.
    async fn hand_over(
        self,
        child: Option<tokio::process::Child>,
        lines: Option<RelayLines>,
        pid: nix::unistd::Pid,
    ) -> SpeakerHandover {
        let h = SpeakerHandover {
            at_mono_ms: ferrovs_dataplane::port::shm::monotonic_ms(),
            pid: pid.as_raw() as u32,
            // Kept current by `publish` after every change.
            announced: self.st.announced.clone(),
            neighbors: self.st.neighbors.clone(),
            speaker_restarts: self.st.speaker_restarts,
        };
        let Task {
            listener, relay, ..
        } = self;
        // No relay may connect to this process from now on: the socket's
        // path belongs to the next one.
        drop(listener);
        drop(lines);
        if let Some(mut w) = relay {
            let _ = w
                .write_all(format!("{}\n", super::relay::RECONNECT).as_bytes())
                .await;
            let _ = w.flush().await;
            // Dropping the write half shuts it down: the relay reads the
            // end, and connects again.
        }
        if let Some(c) = child {
            // Dropping it would kill ExaBGP (kill_on_drop).
            std::mem::forget(c);
        }
        info!(
            "BGP: ExaBGP (pid {pid}) left running for the next process, announcing {:?}",
            h.announced
        );
        h
    }

    fn reply(&mut self, line: &str) {
        match exabgp::parse_reply(line) {
            Reply::Done => {}
            Reply::Error => warn!("BGP: ExaBGP refused a command"),
            Reply::Neighbor { addr, up } => {
                // ExaBGP tells every connection attempt: log changes only.
                if self.st.neighbors.insert(addr, up) != Some(up) {
                    info!("BGP: neighbor {addr} {}", if up { "up" } else { "down" });
                    self.publish();
                }
            }
            Reply::Other(l) => debug!("exabgp: {l}"),
        }
    }

    /// Gives ExaBGP the time to send the `pending` withdrawals (their
    /// "done" acks, up to [`WITHDRAW_WAIT`]), then stops it.
    async fn stop(
        &mut self,
        child: Option<tokio::process::Child>,
        adopted: Option<nix::unistd::Pid>,
        mut lines: Option<RelayLines>,
        pending: usize,
    ) {
        if let (Some(l), true) = (lines.as_mut(), self.relay.is_some() && pending > 0) {
            let deadline = tokio::time::sleep(WITHDRAW_WAIT);
            tokio::pin!(deadline);
            let mut acks = 0;
            while acks < pending {
                tokio::select! {
                    _ = &mut deadline => break,
                    l = l.next_line() => match l {
                        Ok(Some(l)) => {
                            if exabgp::parse_reply(&l) == Reply::Done {
                                acks += 1;
                            }
                        }
                        _ => break,
                    },
                }
            }
            // The UPDATEs leave after the acks: a moment for them.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        self.relay = None;
        if let Some(mut c) = child {
            // The withdrawals have left. SIGTERM: ExaBGP ends its sessions
            // with a NOTIFICATION (cease); killed if it takes too long.
            if let Some(pid) = c.id() {
                let pid = nix::unistd::Pid::from_raw(pid as i32);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            }
            if tokio::time::timeout(Duration::from_secs(2), c.wait())
                .await
                .is_err()
            {
                let _ = c.kill().await;
            }
        }
        if let Some(pid) = adopted {
            terminate(pid).await;
        }
        self.st.speaker = "stopped".into();
        self.publish();
        info!("BGP: stopped");
    }
}
