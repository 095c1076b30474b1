//! Runs the VRRP instances of the configuration: the I/O glue around the
//! sans-IO state machines in [`crate::vrrp`]. It owns the sockets and the
//! clock, feeds adverts and timer expiries in, and carries the actions out:
//! adverts on the raw socket, the VIPs into or out of the dataplane (a
//! backup neither answers ARP for them nor forwards their traffic),
//! gratuitous ARP through the dataplane's own port, notify scripts.

use crate::ipvs_state::Net;
use crate::mailbox::{DaemonLink, ToDaemon};
use crate::southbound::NetState;
use crate::vrrp::config::LocalAddrs;
use crate::vrrp::garp::{Announce, GarpPacer, GroupPacing};
use crate::vrrp::instance::{same_settings, vip_changes};
use crate::vrrp::io::{Received, VrrpSocket};
use crate::vrrp::last_words::{self, Farewell};
use crate::vrrp::notify::{Notifier, NotifyKind};
use crate::vrrp::script::{self, ScriptChange, ScriptTracker};
use crate::vrrp::{
    Action, Advert, AdvertTarget, ConfigError, Event, Instance, InstanceConfig, RxInfo, State,
    SyncAction, SyncGroup, TrackKind, TrackSpec, TrackStatus,
};
use ferrovs_config::Config;
use ferrovs_dataplane::wire::arp;
use ferrovs_dataplane::worker::Request;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info, warn};

/// What one instance needs for I/O.
struct Io {
    ifname: String,
    port: u16,
    mac: [u8; 6],
    sock: VrrpSocket,
    notifier: Notifier,
    transitions: u64,
    /// Ends the socket's receiving thread.
    stop: Arc<AtomicBool>,
    /// The instance left with a reload: its slot stays (indices are
    /// stable), its socket is closed and what it received is dropped.
    retired: bool,
    /// Gratuitous ARPs and unsolicited neighbour advertisements the
    /// instance asked for, for the driver's pacer.
    garps: Vec<(Announce, Vec<u8>)>,
    /// Packets received on the instance's socket that were not adverts
    /// (malformed: too short, bad length, version, type or checksum).
    malformed: u64,
}

/// A standalone instance, or a sync group driving its members.
enum Unit {
    Single {
        // Boxed: an instance is several times the size of a group's handle.
        inst: Box<Instance>,
        io: usize,
    },
    Group {
        group: SyncGroup,
        ios: Vec<usize>,
        notifier: Notifier,
    },
}

impl Unit {
    fn deadline(&self) -> Option<Instant> {
        match self {
            Unit::Single { inst, .. } => inst.next_deadline(),
            Unit::Group { group, .. } => group.next_deadline(),
        }
    }

    /// Feeds an event; carries the resulting actions out.
    fn feed(&mut self, ev: Event, now: Instant, ios: &mut [Io], daemon: &DaemonLink) {
        match self {
            Unit::Single { inst, io } => {
                let acts = inst.handle(ev, now);
                carry_out(inst, &mut ios[*io], acts, daemon);
            }
            Unit::Group {
                group,
                ios: members,
                notifier,
            } => {
                for sa in group.handle(ev, now) {
                    match sa {
                        SyncAction::Member { index, action } => {
                            let io = members[index];
                            carry_out(group.member(index), &mut ios[io], vec![action], daemon);
                        }
                        SyncAction::Notify { state } => {
                            let _ = notifier.notify(state, 0);
                        }
                    }
                }
            }
        }
    }

    /// Gives every member its new configuration (see
    /// [`Instance::reconfigure`]); a MASTER releases the VIPs it no longer
    /// lists and takes (with gratuitous ARPs) the new ones.
    fn reconfigure(
        &mut self,
        new: impl Fn(&str) -> Option<InstanceConfig>,
        now: Instant,
        ios: &mut [Io],
        daemon: &DaemonLink,
    ) {
        let mut members: Vec<(&mut Instance, usize)> = match self {
            Unit::Single { inst, io } => vec![(inst, *io)],
            Unit::Group { group, ios, .. } => group
                .members_mut()
                .iter_mut()
                .zip(ios.iter().copied())
                .collect(),
        };
        for (inst, io) in members.iter_mut() {
            let Some(c) = new(inst.name()) else { continue };
            if same_settings(inst.config(), &c) {
                continue;
            }
            let (gone, came) = vip_changes(&inst.config().held(), &c.held());
            let acts = inst.reconfigure(c, now);
            if inst.vips_set() {
                if !gone.is_empty() {
                    set_vips(daemon, &gone, false);
                }
                if !came.is_empty() {
                    set_vips(daemon, &came, true);
                    let count = inst.config().garp.master_repeat.max(1);
                    send_garps_for(&mut ios[*io], &came, count);
                }
            }
            carry_out(inst, &mut ios[*io], acts, daemon);
        }
    }

    fn instances(&self) -> Vec<(&Instance, usize)> {
        match self {
            Unit::Single { inst, io } => vec![(inst, *io)],
            Unit::Group { group, ios, .. } => {
                group.members().iter().zip(ios.iter().copied()).collect()
            }
        }
    }

    fn owns_io(&self, io: usize) -> bool {
        match self {
            Unit::Single { io: i, .. } => *i == io,
            Unit::Group { ios, .. } => ios.contains(&io),
        }
    }
}

/// A VRRP instance as the API and metrics show it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct InstanceStatus {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub state: String,
    pub priority: u8,
    pub effective_priority: u8,
    pub transitions: u64,
    pub vips: Vec<IpAddr>,
    /// Received VRRP packets dropped: malformed ones and adverts the
    /// instance's checks refused (TTL / hop limit, source, auth, VIPs...),
    /// of either family.
    pub dropped_adverts: u64,
}

/// The instances' states as the driver keeps them.
pub type StatusHandle = Arc<Mutex<Vec<InstanceStatus>>>;

/// Asks the driver to stop, then answers on `done`: as keepalived stops
/// (priority-0 adverts, the VIPs released, notify_stop), or, for a hand-over
/// to the next ferrovs (`ferrovs upgrade`), silently: no priority 0, no
/// notify, so that the peer keeps its role while the new process starts in
/// the states this one had (`InstanceConfig::resume_master`).
pub struct StopRequest {
    pub done: oneshot::Sender<()>,
    pub hand_over: bool,
}

/// The addresses every vrrp_instance lists (`virtual_ipaddress` and
/// `virtual_ipaddress_excluded`, both families), for the daemon's first
/// snapshot: they start released and are taken by instances that become
/// MASTER (IPv4 and IPv6 instances alike).
pub fn vrrp_vips(cfg: &Config) -> Vec<IpAddr> {
    cfg.vrrp_instances
        .iter()
        .flat_map(|i| {
            i.virtual_ipaddress
                .iter()
                .chain(&i.virtual_ipaddress_excluded)
        })
        .map(|v| v.addr)
        .collect()
}

/// One vrrp_instance of a configuration, ready to run.
struct Prepared {
    icfg: InstanceConfig,
    ifname: String,
    port: u16,
    mac: [u8; 6],
    ifindex: u32,
}

impl Prepared {
    /// Whether a running instance can take this configuration in place: the
    /// same socket (interface, address, multicast group), VRID and version.
    fn fits(&self, inst: &Instance, io: &Io) -> bool {
        let (a, b) = (inst.config(), &self.icfg);
        io.ifname == self.ifname
            && a.vrid == b.vrid
            && a.version == b.version
            && a.primary_ip == b.primary_ip
            && match (&a.target, &b.target) {
                (AdvertTarget::Multicast(x), AdvertTarget::Multicast(y)) => x == y,
                (AdvertTarget::Unicast(_), AdvertTarget::Unicast(_)) => true,
                _ => false,
            }
    }
}

/// Why the VRRP part of a configuration cannot run here (found before
/// anything opens; a reload refused for it changes nothing).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrepareError {
    #[error("vrrp_instance {0}: no interface")]
    NoInterface(String),
    #[error("vrrp_instance {instance}: interface {ifname} is not a dataplane port")]
    NotAPort { instance: String, ifname: String },
    /// The kernel does not know the interface (by netlink).
    #[error("no interface {0}")]
    UnknownInterface(String),
    #[error(transparent)]
    Instance(#[from] ConfigError),
    #[error("vrrp_sync_group {group}: no vrrp_instance {instance}")]
    NoGroupMember { group: String, instance: String },
    #[error("vrrp_instance {0} is in two sync groups")]
    InTwoGroups(String),
    #[error("a vrrp_instance is in two sync groups")]
    SomeInTwoGroups,
    #[error("no vrrp_instance {0}")]
    NoInstance(String),
}

/// Why the VRRP driver (or one of its units) did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    /// The instance's socket (the message names the step that failed).
    #[error(transparent)]
    Socket(#[from] std::io::Error),
}

/// Translates every vrrp_instance of `cfg` for the ports it runs on; errors
/// name the instance. No I/O: a reload checks with it before it commits.
fn prepare(
    cfg: &Config,
    ports: &Net,
    workers_running: bool,
    net: &NetState,
) -> Result<Vec<(String, Prepared)>, PrepareError> {
    let mut out = Vec::new();
    for vi in &cfg.vrrp_instances {
        let ifname = vi
            .interface
            .clone()
            .ok_or_else(|| PrepareError::NoInterface(vi.name.clone()))?;
        let port = ports
            .ports
            .iter()
            .position(|p| p.name == ifname)
            .ok_or_else(|| PrepareError::NotAPort {
                instance: vi.name.clone(),
                ifname: ifname.clone(),
            })?;
        let pc = &ports.ports[port];
        let ifindex = net
            .link_by_name(&ifname)
            .map(|l| l.index)
            .ok_or_else(|| PrepareError::UnknownInterface(ifname.clone()))?;
        // The kernel's view of the link (netlink): an IPv6 instance sends
        // from the link-local address (RFC 5798 §5.1.2.1).
        let local = LocalAddrs {
            v4: pc.addrs.first().map(|a| a.0),
            link_local: net
                .ipv6_addrs(ifindex)
                .into_iter()
                .map(|(a, _)| a)
                .find(crate::vrrp::packet::is_link_local),
        };
        let mut icfg = InstanceConfig::from_config(cfg, vi, local)?;
        // Every instance tracks the workers, unweighted.
        icfg.tracks.push(TrackSpec {
            kind: TrackKind::Dataplane,
            name: WORKERS_TRACK.into(),
            weight: 0,
            reverse: false,
            status: if workers_running {
                TrackStatus::Up
            } else {
                TrackStatus::Down
            },
        });
        out.push((
            vi.name.clone(),
            Prepared {
                icfg,
                ifname,
                port: port as u16,
                mac: pc.mac,
                ifindex,
            },
        ));
    }
    for sg in &cfg.vrrp_sync_groups {
        let mut seen = Vec::new();
        for name in &sg.group {
            if !cfg.vrrp_instances.iter().any(|v| &v.name == name) {
                return Err(PrepareError::NoGroupMember {
                    group: sg.name.clone(),
                    instance: name.clone(),
                });
            }
            if seen.contains(&name) {
                return Err(PrepareError::InTwoGroups(name.clone()));
            }
            seen.push(name);
        }
    }
    let mut grouped: Vec<&String> = cfg.vrrp_sync_groups.iter().flat_map(|g| &g.group).collect();
    grouped.sort();
    if grouped.windows(2).any(|w| w[0] == w[1]) {
        return Err(PrepareError::SomeInTwoGroups);
    }
    Ok(out)
}

/// Checks that the VRRP part of `cfg` can run, as the first phase of a
/// reload does before anything changes.
pub fn check(
    cfg: &Config,
    ports: &Net,
    workers_running: bool,
    net: &NetState,
) -> Result<(), PrepareError> {
    prepare(cfg, ports, workers_running, net).map(|_| ())
}

/// What a unit is, to match the units of two configurations.
#[derive(Clone, Debug, PartialEq, Eq)]
enum UnitId {
    Single(String),
    Group(String, Vec<String>),
}

fn unit_ids(cfg: &Config) -> Vec<UnitId> {
    let mut ids: Vec<UnitId> = cfg
        .vrrp_sync_groups
        .iter()
        .map(|g| UnitId::Group(g.name.clone(), g.group.clone()))
        .collect();
    for vi in &cfg.vrrp_instances {
        if !cfg
            .vrrp_sync_groups
            .iter()
            .any(|g| g.group.contains(&vi.name))
        {
            ids.push(UnitId::Single(vi.name.clone()));
        }
    }
    ids
}

/// The instances, their sockets and trackers, driven by one task.
struct Driver {
    units: Vec<(UnitId, Unit)>,
    ios: Vec<Io>,
    daemon: DaemonLink,
    net: watch::Receiver<Arc<NetState>>,
    merged_tx: mpsc::Sender<(usize, Received)>,
    track_tx: mpsc::UnboundedSender<(TrackKind, String, bool)>,
    trackers: Vec<tokio::task::AbortHandle>,
    garps: GarpPacer,
    /// The sockets (by io) whose instances' last words are set; None after
    /// a reload, whose settings may change the adverts.
    last_words_for: Option<Vec<usize>>,
}

impl Driver {
    /// Keeps the priority-0 adverts of every instance holding its VIPs
    /// ready for a dying process (see [`last_words`]); encoded again only
    /// when who holds VIPs changed or a reload came.
    fn prepare_last_words(&mut self) {
        let holders: Vec<(&Instance, usize)> = self
            .units
            .iter()
            .flat_map(|(_, u)| u.instances())
            .filter(|(inst, io)| inst.vips_set() && !self.ios[*io].retired)
            .collect();
        let ios: Vec<usize> = holders.iter().map(|(_, io)| *io).collect();
        if self.last_words_for.as_ref() == Some(&ios) {
            return;
        }
        let mut words = Vec::new();
        for (inst, io) in holders {
            for (dst, msg) in inst.encode_adverts(0, &inst.config().target) {
                words.push(Farewell {
                    sock: self.ios[io].sock.clone(),
                    dst,
                    msg,
                });
            }
        }
        last_words::set(words);
        self.last_words_for = Some(ios);
    }

    /// Hands the instances' gratuitous ARPs to the pacer and sends what is
    /// due.
    fn flush_garps(&mut self, now: Instant) {
        for io in self.ios.iter_mut() {
            for (kind, f) in io.garps.drain(..) {
                if !self.garps.push(io.port, kind, f) {
                    warn!(
                        "({}) gratuitous ARP dropped: {} queued",
                        io.ifname,
                        self.garps.queued()
                    );
                }
            }
        }
        let dp = &self.daemon.dataplane;
        self.garps.poll(now, |port, frame| {
            dp.request(
                0,
                Request::Transmit {
                    port,
                    frame: frame.to_vec(),
                },
            )
        });
    }

    /// Opens the instance's socket; its packets reach the driver tagged
    /// with the new slot's index.
    fn open_io(&mut self, cfg: &Config, name: &str, p: &Prepared) -> Result<usize, StartError> {
        let groups: Vec<IpAddr> = match &p.icfg.target {
            AdvertTarget::Multicast(g) => vec![*g],
            AdvertTarget::Unicast(_) => vec![],
        };
        let sock = VrrpSocket::open(&p.ifname, p.ifindex, p.icfg.primary_ip, &groups)?;
        let (tx, mut rx) = mpsc::channel(256);
        let stop = Arc::new(AtomicBool::new(false));
        sock.spawn_receiver(tx, stop.clone())?;
        let i = self.ios.len();
        let merged = self.merged_tx.clone();
        tokio::spawn(async move {
            while let Some(r) = rx.recv().await {
                if merged.send((i, r)).await.is_err() {
                    return;
                }
            }
        });
        let notify = cfg
            .vrrp_instances
            .iter()
            .find(|v| v.name == name)
            .map(|v| v.notify.clone())
            .unwrap_or_default();
        self.ios.push(Io {
            ifname: p.ifname.clone(),
            port: p.port,
            mac: p.mac,
            sock,
            notifier: Notifier::new(NotifyKind::Instance, name, &notify, &cfg.global),
            transitions: 0,
            stop,
            retired: false,
            garps: Vec::new(),
            malformed: 0,
        });
        Ok(i)
    }

    fn retire(&mut self, io: usize) {
        let io = &mut self.ios[io];
        io.retired = true;
        io.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Builds a unit of `cfg` and opens its sockets (not started).
    fn build_unit(
        &mut self,
        cfg: &Config,
        id: &UnitId,
        prepared: &[(String, Prepared)],
    ) -> Result<Unit, StartError> {
        let get = |n: &str| {
            prepared
                .iter()
                .find(|(name, _)| name == n)
                .map(|(_, p)| p)
                .ok_or_else(|| PrepareError::NoInstance(n.to_string()))
        };
        match id {
            UnitId::Single(name) => {
                let p = get(name)?;
                let io = self.open_io(cfg, name, p)?;
                Ok(Unit::Single {
                    inst: Box::new(Instance::new(p.icfg.clone())),
                    io,
                })
            }
            UnitId::Group(gname, members) => {
                let mut insts = Vec::new();
                let mut ios = Vec::new();
                for m in members {
                    let p = get(m)?;
                    match self.open_io(cfg, m, p) {
                        Ok(io) => ios.push(io),
                        Err(e) => {
                            for io in ios {
                                self.retire(io);
                            }
                            return Err(e);
                        }
                    }
                    insts.push(Instance::new(p.icfg.clone()));
                }
                let sg = cfg.vrrp_sync_groups.iter().find(|g| &g.name == gname);
                let notify = sg.map(|g| g.notify.clone()).unwrap_or_default();
                Ok(Unit::Group {
                    group: SyncGroup::new(gname, insts),
                    ios,
                    notifier: Notifier::new(NotifyKind::Group, gname, &notify, &cfg.global),
                })
            }
        }
    }

    /// Starts the units of `cfg` that are not running; errors name the
    /// unit and leave the others running.
    fn start_units(&mut self, cfg: &Config, ids: &[UnitId], prepared: &[(String, Prepared)]) {
        let now = Instant::now();
        for id in ids {
            match self.build_unit(cfg, id, prepared) {
                Ok(mut u) => {
                    u.feed(Event::Start, now, &mut self.ios, &self.daemon);
                    self.units.push((id.clone(), u));
                }
                Err(e) => error!("VRRP: {id:?}: {e}"),
            }
        }
    }

    /// (Re)starts the script trackers and the interface watcher for `cfg`.
    fn spawn_trackers(&mut self, cfg: &Config) {
        for t in self.trackers.drain(..) {
            t.abort();
        }
        let mut tracked_scripts: Vec<String> = Vec::new();
        for vi in &cfg.vrrp_instances {
            tracked_scripts.extend(vi.track_script.iter().map(|t| t.name.clone()));
        }
        for sg in &cfg.vrrp_sync_groups {
            tracked_scripts.extend(sg.track_script.iter().map(|t| t.name.clone()));
        }
        tracked_scripts.sort();
        tracked_scripts.dedup();
        for name in tracked_scripts {
            let Some(vs) = cfg.vrrp_script(&name) else {
                continue;
            };
            match script::prepare(&vs.script, &cfg.global) {
                Ok(p) => {
                    let (tx, mut rx) = mpsc::unbounded_channel::<ScriptChange>();
                    let tracker = script::spawn_tracker(ScriptTracker::new(vs), Arc::new(p), tx);
                    self.trackers.push(tracker.abort_handle());
                    let fwd = self.track_tx.clone();
                    let h = tokio::spawn(async move {
                        while let Some(c) = rx.recv().await {
                            let up = c.status == TrackStatus::Up;
                            if fwd.send((TrackKind::Script, c.name, up)).is_err() {
                                return;
                            }
                        }
                    });
                    self.trackers.push(h.abort_handle());
                }
                Err(e) => warn!("VRRP_Script({name}): {e} - disabling"),
            }
        }
        // Interfaces: the instances' own and track_interface ones.
        let mut ifaces: Vec<String> = self
            .ios
            .iter()
            .filter(|i| !i.retired)
            .map(|i| i.ifname.clone())
            .collect();
        for vi in &cfg.vrrp_instances {
            ifaces.extend(vi.track_interface.iter().map(|t| t.name.clone()));
        }
        for sg in &cfg.vrrp_sync_groups {
            ifaces.extend(sg.track_interface.iter().map(|t| t.name.clone()));
        }
        ifaces.sort();
        ifaces.dedup();
        let fwd = self.track_tx.clone();
        let net = self.net.clone();
        let h = tokio::spawn(async move { watch_interfaces(ifaces, net, fwd).await });
        self.trackers.push(h.abort_handle());
    }

    /// keepalived's reload of its VRRP part: an instance (or sync group)
    /// whose settings did not change keeps running untouched; a changed one
    /// keeps its state and takes the new settings (priority, VIPs, tracking,
    /// interval, peers), unless its socket changes (interface, address,
    /// group, VRID, version: then it stops and starts again); a removed one
    /// stops as at shutdown (priority-0 advert, VIPs released, notify); a
    /// new one starts.
    fn reload(&mut self, cfg: &Config) {
        self.garps
            .set_intervals(cfg.global.vrrp_garp_interval, cfg.global.vrrp_gna_interval);
        self.last_words_for = None;
        let prepared = {
            let v = self.daemon.view.load();
            match prepare(cfg, &v.net, v.workers_running, &self.net.borrow()) {
                Ok(p) => {
                    self.garps.set_groups(garp_groups(cfg, &v.net));
                    p
                }
                Err(e) => {
                    error!("VRRP reload: {e}; the instances keep running as they were");
                    return;
                }
            }
        };
        let get = |n: &str| prepared.iter().find(|(name, _)| name == n).map(|(_, p)| p);
        let now = Instant::now();
        let new_ids = unit_ids(cfg);
        let mut to_start: Vec<UnitId> = Vec::new();
        let (mut kept, mut changed, mut stopped) = (0, 0, 0);
        for (id, mut u) in std::mem::take(&mut self.units) {
            let fits = new_ids.contains(&id)
                && u.instances().iter().all(|(inst, io)| {
                    get(inst.name()).is_some_and(|p| p.fits(inst, &self.ios[*io]))
                });
            if !fits {
                u.feed(Event::Stop, now, &mut self.ios, &self.daemon);
                for (_, io) in u.instances() {
                    self.retire(io);
                }
                if new_ids.contains(&id) {
                    to_start.push(id);
                } else {
                    stopped += 1;
                }
                continue;
            }
            let same = u.instances().iter().all(|(inst, _)| {
                get(inst.name()).is_some_and(|p| same_settings(inst.config(), &p.icfg))
            });
            if same {
                kept += 1;
            } else {
                changed += 1;
                u.reconfigure(
                    |name| get(name).map(|p| p.icfg.clone()),
                    now,
                    &mut self.ios,
                    &self.daemon,
                );
            }
            // Notify settings may have changed without the state machine's.
            match &mut u {
                Unit::Single { inst, io } => {
                    if let Some(vi) = cfg.vrrp_instances.iter().find(|v| v.name == inst.name()) {
                        self.ios[*io].notifier =
                            Notifier::new(NotifyKind::Instance, &vi.name, &vi.notify, &cfg.global);
                    }
                }
                Unit::Group {
                    group, notifier, ..
                } => {
                    if let Some(sg) = cfg.vrrp_sync_groups.iter().find(|g| g.name == group.name()) {
                        *notifier =
                            Notifier::new(NotifyKind::Group, &sg.name, &sg.notify, &cfg.global);
                    }
                }
            }
            self.units.push((id, u));
        }
        for id in &new_ids {
            if !self.units.iter().any(|(i, _)| i == id) && !to_start.contains(id) {
                to_start.push(id.clone());
            }
        }
        let started = to_start.len();
        self.start_units(cfg, &to_start, &prepared);
        sync_vip_set(&self.daemon, cfg);
        self.spawn_trackers(cfg);
        info!("VRRP reload: {kept} unchanged, {changed} reconfigured, {stopped} stopped, {started} (re)started");
    }
}

/// The daemon's set of VRRP-managed VIPs follows the configuration: new
/// ones start released (an instance that is MASTER takes them), those no
/// instance lists any more are no longer VRRP's.
fn sync_vip_set(daemon: &DaemonLink, cfg: &Config) {
    let _ = daemon.tx.send(ToDaemon::SyncVips(vrrp_vips(cfg)));
}

/// The dataplane ports in `garp_group`s, for the pacer (an interface
/// that is not a port sends no GARPs of ours).
fn garp_groups(cfg: &Config, ports: &Net) -> HashMap<u16, GroupPacing> {
    let mut out = HashMap::new();
    for (i, g) in cfg.garp_groups.iter().enumerate() {
        for name in &g.interfaces {
            if let Some(port) = ports.ports.iter().position(|p| &p.name == name) {
                out.entry(port as u16).or_insert(GroupPacing {
                    group: i as u32,
                    garp_interval: g.garp_interval.unwrap_or_default(),
                    gna_interval: g.gna_interval.unwrap_or_default(),
                });
            }
        }
    }
    out
}

/// Starts the instances, their script trackers and interface watchers.
/// Returns a status handle, a stop channel and a reload channel (see
/// [`Driver::reload`]); everything runs on the current tokio runtime.
/// `resume`: the instances a ferrovs that handed over to this one was
/// MASTER of (they start in MASTER).
pub fn start(
    cfg: &Config,
    daemon: DaemonLink,
    net: watch::Receiver<Arc<NetState>>,
    resume: &[String],
) -> Result<Handles, StartError> {
    let (mut prepared, groups) = {
        let v = daemon.view.load();
        (
            prepare(cfg, &v.net, v.workers_running, &net.borrow())?,
            garp_groups(cfg, &v.net),
        )
    };
    for (name, p) in &mut prepared {
        p.icfg.resume_master = resume.contains(name);
    }
    let status = Arc::new(Mutex::new(Vec::new()));
    let (stop_tx, stop_rx) = mpsc::channel(1);
    let (reload_tx, reload_rx) = mpsc::unbounded_channel();
    let (merged_tx, merged_rx) = mpsc::channel::<(usize, Received)>(1024);
    let (track_tx, track_rx) = mpsc::unbounded_channel::<(TrackKind, String, bool)>();
    let track_tx_out = track_tx.clone();
    let mut driver = Driver {
        units: Vec::new(),
        ios: Vec::new(),
        daemon,
        net,
        merged_tx,
        track_tx,
        trackers: Vec::new(),
        garps: GarpPacer::new(cfg.global.vrrp_garp_interval, cfg.global.vrrp_gna_interval),
        last_words_for: None,
    };
    driver.garps.set_groups(groups);
    // Sockets first, so that a failure to open one refuses the start.
    let ids = unit_ids(cfg);
    let mut units = Vec::new();
    for id in &ids {
        units.push((id.clone(), driver.build_unit(cfg, id, &prepared)?));
    }
    driver.units = units;
    driver.spawn_trackers(cfg);
    let st = status.clone();
    tokio::spawn(async move { drive(driver, st, merged_rx, track_rx, stop_rx, reload_rx).await });
    Ok(Handles {
        status,
        stop: stop_tx,
        reload: reload_tx,
        track: track_tx_out,
    })
}

/// What the daemon keeps of a running VRRP driver.
pub struct Handles {
    pub status: StatusHandle,
    pub stop: mpsc::Sender<StopRequest>,
    /// A new configuration, after the reload's first phase accepted it.
    pub reload: mpsc::UnboundedSender<Config>,
    /// Tracked objects' changes from outside the driver (the workers).
    pub track: TrackSender,
}

/// A tracked object's change: kind, name, up.
pub type TrackSender = mpsc::UnboundedSender<(TrackKind, String, bool)>;

/// The name of the workers' implicit track (see [`TrackKind::Dataplane`]).
pub const WORKERS_TRACK: &str = "workers";

/// Interface state as the kernel announces it over rtnetlink (the
/// southbound), as keepalived follows it: every change is reported at once.
async fn watch_interfaces(
    ifaces: Vec<String>,
    mut net: watch::Receiver<Arc<NetState>>,
    tx: mpsc::UnboundedSender<(TrackKind, String, bool)>,
) {
    let mut last: Vec<Option<bool>> = vec![None; ifaces.len()];
    loop {
        let changes = {
            let s = net.borrow_and_update();
            interface_changes(&ifaces, &s, &mut last)
        };
        for (name, up) in changes {
            if tx.send((TrackKind::Interface, name, up)).is_err() {
                return;
            }
        }
        if net.changed().await.is_err() {
            return;
        }
    }
}

/// The interfaces whose state differs from `last`, updating it. The first
/// reading reports only a failure: instances assume their interfaces up.
/// A link that is gone is down.
fn interface_changes(
    ifaces: &[String],
    net: &NetState,
    last: &mut [Option<bool>],
) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for (i, name) in ifaces.iter().enumerate() {
        let up = net.link_by_name(name).is_some_and(|l| l.oper_up);
        if last[i] != Some(up) {
            if last[i].is_some() || !up {
                out.push((name.clone(), up));
            }
            last[i] = Some(up);
        }
    }
    out
}

async fn drive(
    mut d: Driver,
    status: StatusHandle,
    mut rx: mpsc::Receiver<(usize, Received)>,
    mut track_rx: mpsc::UnboundedReceiver<(TrackKind, String, bool)>,
    mut stop_rx: mpsc::Receiver<StopRequest>,
    mut reload_rx: mpsc::UnboundedReceiver<Config>,
) {
    let now = Instant::now();
    for (_, u) in d.units.iter_mut() {
        u.feed(Event::Start, now, &mut d.ios, &d.daemon);
    }
    d.flush_garps(now);
    d.prepare_last_words();
    publish_status(&d.units, &d.ios, &status);
    loop {
        let deadline = d
            .units
            .iter()
            .filter_map(|(_, u)| u.deadline())
            .chain(d.garps.deadline(Instant::now()))
            .min();
        let sleep = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            got = rx.recv() => {
                let Some((i, r)) = got else { return };
                if d.ios[i].retired {
                    continue;
                }
                let now = Instant::now();
                match Advert::parse(&r.payload, r.src, r.dst) {
                    Ok(advert) => {
                        let rx = RxInfo { src: r.src, dst: r.dst, ttl: r.ttl };
                        if let Some((_, u)) = d.units.iter_mut().find(|(_, u)| u.owns_io(i)) {
                            // The group routes adverts to its member by VRID.
                            let ours = u.instances().iter().any(|(inst, io)| *io == i && inst.config().vrid == advert.vrid);
                            if ours {
                                u.feed(Event::AdvertReceived { rx, advert }, now, &mut d.ios, &d.daemon);
                            }
                        }
                    }
                    Err(e) => {
                        // Counted with the instance's refused adverts.
                        d.ios[i].malformed += 1;
                        warn!("bad VRRP packet on {} from {}: {e}", d.ios[i].ifname, r.src)
                    }
                }
            }
            t = track_rx.recv() => {
                let Some((kind, name, up)) = t else { continue };
                let now = Instant::now();
                let ev = if up { Event::TrackUp { kind, name } } else { Event::TrackDown { kind, name } };
                for (_, u) in d.units.iter_mut() {
                    u.feed(ev.clone(), now, &mut d.ios, &d.daemon);
                }
            }
            _ = sleep => {
                let now = Instant::now();
                for (_, u) in d.units.iter_mut() {
                    if u.deadline().is_some_and(|t| t <= now) {
                        u.feed(Event::TimerFired, now, &mut d.ios, &d.daemon);
                    }
                }
            }
            Some(cfg) = reload_rx.recv() => d.reload(&cfg),
            req = stop_rx.recv() => {
                let now = Instant::now();
                let hand_over = req.as_ref().is_some_and(|r| r.hand_over);
                if !hand_over {
                    for (_, u) in d.units.iter_mut() {
                        u.feed(Event::Stop, now, &mut d.ios, &d.daemon);
                    }
                }
                // Priority 0 went with the stop: nothing more to say.
                last_words::set(Vec::new());
                publish_status(&d.units, &d.ios, &status);
                for t in d.trackers.drain(..) {
                    t.abort();
                }
                if let Some(r) = req {
                    let _ = r.done.send(());
                }
                return;
            }
        }
        d.flush_garps(Instant::now());
        d.prepare_last_words();
        publish_status(&d.units, &d.ios, &status);
    }
}

fn publish_status(units: &[(UnitId, Unit)], ios: &[Io], status: &StatusHandle) {
    let mut v: Vec<InstanceStatus> = units
        .iter()
        .flat_map(|(_, u)| u.instances())
        .map(|(inst, io)| InstanceStatus {
            name: inst.name().to_string(),
            interface: ios[io].ifname.clone(),
            vrid: inst.config().vrid,
            state: inst.state().as_str().to_string(),
            priority: inst.config().priority,
            effective_priority: inst.effective_priority(),
            transitions: ios[io].transitions,
            vips: inst.config().held(),
            dropped_adverts: ios[io].malformed + inst.refused_adverts(),
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    if let Ok(mut s) = status.lock() {
        *s = v;
    }
}

fn carry_out(inst: &Instance, io: &mut Io, actions: Vec<Action>, daemon: &DaemonLink) {
    for a in actions {
        match a {
            Action::SendAdvert { priority, to } => {
                for (dst, msg) in inst.encode_adverts(priority, &to) {
                    if let Err(e) = io.sock.send(&msg, dst) {
                        warn!("({}) sending advert to {dst}: {e}", inst.name());
                    }
                }
            }
            Action::BecomeMaster => {
                io.transitions += 1;
                set_vips(daemon, &inst.config().held(), true);
            }
            Action::ReleaseVips => set_vips(daemon, &inst.config().held(), false),
            Action::BecomeBackup | Action::BecomeFault => io.transitions += 1,
            Action::SendGarp { count } => send_garps_for(io, &inst.config().held(), count),
            Action::Notify { state, priority } => {
                let _ = io.notifier.notify(state, priority);
            }
            // The instance logs it, in keepalived's words.
            Action::PriorityChanged { .. } => {}
        }
    }
}

/// Takes the VIPs into the dataplane, or out of it: the daemon publishes.
fn set_vips(daemon: &DaemonLink, vips: &[IpAddr], active: bool) {
    let _ = daemon.tx.send(ToDaemon::SetVips(vips.to_vec(), active));
}

/// Gratuitous ARPs for `vips`, and unsolicited neighbour advertisements
/// for the IPv6 ones (as keepalived sends them, RFC 4861 §7.2.6), `count`
/// rounds (every VIP once a round), queued on the instance for the
/// driver's pacer (ARPs `vrrp_garp_interval` apart, NAs
/// `vrrp_gna_interval` apart, as keepalived paces them per interface);
/// they leave out of the instance's port through the first worker (the
/// dataplane owns the port).
fn send_garps_for(io: &mut Io, vips: &[IpAddr], count: u32) {
    for _ in 0..count.max(1) {
        for v in vips {
            let mut f = vec![0u8; 128];
            let (kind, n) = match v {
                IpAddr::V4(a) => (
                    Announce::Arp,
                    arp::build_gratuitous(&mut f, &io.mac, *a, None),
                ),
                IpAddr::V6(a) => (
                    Announce::Na,
                    ferrovs_dataplane::wire::ndp::build_unsolicited(
                        &mut f,
                        &io.mac,
                        None,
                        a.octets(),
                    ),
                ),
            };
            f.truncate(n);
            io.garps.push((kind, f));
        }
    }
}

/// How long a stop may take before the process exits anyway.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether a state means the instance holds its VIPs.
pub fn holds_vips(s: State) -> bool {
    s == State::Master
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::southbound::{Link, NetEvent};

    fn link(index: u32, name: &str, up: bool) -> NetEvent {
        NetEvent::Link(Link {
            index,
            name: name.into(),
            mac: Some([2, 0, 0, 0, 0, 1]),
            mtu: 1500,
            admin_up: up,
            oper_up: up,
            ether: true,
            iflink: None,
        })
    }

    #[test]
    fn interface_changes_follow_the_link_state() {
        let ifaces = vec!["eth0".to_string(), "eth1".to_string()];
        let mut last = vec![None; 2];
        let mut s = NetState::new();
        s.apply(link(2, "eth0", true));
        // eth1 does not exist: a failure, reported at once; eth0 up is not.
        assert_eq!(
            interface_changes(&ifaces, &s, &mut last),
            vec![("eth1".to_string(), false)]
        );
        assert!(interface_changes(&ifaces, &s, &mut last).is_empty());
        s.apply(link(2, "eth0", false));
        s.apply(link(3, "eth1", true));
        assert_eq!(
            interface_changes(&ifaces, &s, &mut last),
            vec![("eth0".to_string(), false), ("eth1".to_string(), true)]
        );
        s.apply(NetEvent::LinkGone(3));
        assert_eq!(
            interface_changes(&ifaces, &s, &mut last),
            vec![("eth1".to_string(), false)]
        );
    }
}
