//! Runs the VRRP instances of the configuration: the I/O glue around the
//! sans-IO state machines in [`crate::vrrp`]. It owns the sockets and the
//! clock, feeds adverts and timer expiries in, and carries the actions out:
//! adverts on the raw socket, the VIPs into or out of the dataplane (a
//! backup neither answers ARP for them nor forwards their traffic),
//! gratuitous ARP through the dataplane's own port, notify scripts.

use crate::daemon::Daemon;
use crate::southbound::NetState;
use crate::vrrp::notify::{Notifier, NotifyKind};
use crate::vrrp::script::{self, ScriptChange, ScriptTracker};
use crate::vrrp::{
    Action, Advert, Event, Instance, InstanceConfig, RxInfo, State, SyncAction, SyncGroup,
    TrackKind, TrackStatus,
};
use crate::vrrp_io::{Received, VrrpSocket};
use ferrovs_config::Config;
use ferrovs_dataplane::wire::arp;
use ferrovs_dataplane::worker::Request;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::warn;

/// What one instance needs for I/O.
struct Io {
    ifname: String,
    port: u16,
    mac: [u8; 6],
    sock: VrrpSocket,
    notifier: Notifier,
    transitions: u64,
}

/// A standalone instance, or a sync group driving its members.
enum Unit {
    Single {
        inst: Instance,
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
    fn feed(&mut self, ev: Event, now: Instant, ios: &mut [Io], daemon: &Arc<Mutex<Daemon>>) {
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
    pub vips: Vec<Ipv4Addr>,
}

/// The instances' states as the driver keeps them.
pub type StatusHandle = Arc<Mutex<Vec<InstanceStatus>>>;

/// Asks the driver to stop: it sends priority-0 adverts, releases the VIPs,
/// runs notify_stop, then answers.
pub type StopRequest = oneshot::Sender<()>;

/// The VIPs every vrrp_instance lists, for the daemon's first snapshot:
/// they start released and are taken by instances that become MASTER.
pub fn vrrp_vips(cfg: &Config) -> Vec<Ipv4Addr> {
    cfg.vrrp_instances
        .iter()
        .flat_map(|i| i.virtual_ipaddress.iter())
        .filter_map(|v| match v.addr {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        })
        .collect()
}

type Built = (Vec<Unit>, Vec<Io>, Vec<mpsc::Receiver<Received>>);

/// Builds the instances and sync groups; errors name the instance.
fn build(cfg: &Config, daemon: &Daemon, net: &NetState) -> Result<Built, String> {
    let mut insts = Vec::new();
    let mut ios = Vec::new();
    let mut rxs = Vec::new();
    for vi in &cfg.vrrp_instances {
        let ifname = vi
            .interface
            .clone()
            .ok_or_else(|| format!("vrrp_instance {}: no interface", vi.name))?;
        let port = daemon
            .net
            .ports
            .iter()
            .position(|p| p.name == ifname)
            .ok_or_else(|| {
                format!(
                    "vrrp_instance {}: interface {ifname} is not a dataplane port",
                    vi.name
                )
            })?;
        let pc = &daemon.net.ports[port];
        let ifip = pc
            .addrs
            .first()
            .map(|a| a.0)
            .ok_or_else(|| format!("{ifname} has no IPv4 address"))?;
        let icfg = InstanceConfig::from_config(cfg, vi, ifip).map_err(|e| e.to_string())?;
        let groups = match &icfg.target {
            crate::vrrp::AdvertTarget::Multicast(g) => vec![*g],
            crate::vrrp::AdvertTarget::Unicast(_) => vec![],
        };
        let idx = net
            .link_by_name(&ifname)
            .map(|l| l.index)
            .ok_or_else(|| format!("no interface {ifname}"))?;
        let sock =
            VrrpSocket::open(&ifname, idx, icfg.primary_ip, &groups).map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::channel(256);
        sock.spawn_receiver(tx, Arc::new(AtomicBool::new(false)))
            .map_err(|e| e.to_string())?;
        let notifier = Notifier::new(NotifyKind::Instance, &vi.name, &vi.notify, &cfg.global);
        insts.push(Some(Instance::new(icfg)));
        ios.push(Io {
            ifname,
            port: port as u16,
            mac: pc.mac,
            sock,
            notifier,
            transitions: 0,
        });
        rxs.push(rx);
    }
    let mut units = Vec::new();
    for sg in &cfg.vrrp_sync_groups {
        let mut members = Vec::new();
        let mut member_ios = Vec::new();
        for name in &sg.group {
            let Some(i) = cfg.vrrp_instances.iter().position(|v| &v.name == name) else {
                return Err(format!(
                    "vrrp_sync_group {}: no vrrp_instance {name}",
                    sg.name
                ));
            };
            let inst = insts[i]
                .take()
                .ok_or_else(|| format!("vrrp_instance {name} is in two sync groups"))?;
            members.push(inst);
            member_ios.push(i);
        }
        let notifier = Notifier::new(NotifyKind::Group, &sg.name, &sg.notify, &cfg.global);
        units.push(Unit::Group {
            group: SyncGroup::new(&sg.name, members),
            ios: member_ios,
            notifier,
        });
    }
    for (i, inst) in insts.into_iter().enumerate() {
        if let Some(inst) = inst {
            units.push(Unit::Single { inst, io: i });
        }
    }
    Ok((units, ios, rxs))
}

/// Starts the instances, their script trackers and interface watchers.
/// Returns a status handle and a stop channel; everything runs on the
/// current tokio runtime.
pub fn start(
    cfg: &Config,
    daemon: Arc<Mutex<Daemon>>,
    net: watch::Receiver<Arc<NetState>>,
) -> Result<(StatusHandle, mpsc::Sender<StopRequest>), String> {
    let (units, ios, receivers) = {
        let d = daemon.lock().map_err(|_| "state lock poisoned")?;
        build(cfg, &d, &net.borrow())?
    };
    let status = Arc::new(Mutex::new(Vec::new()));
    let (stop_tx, stop_rx) = mpsc::channel(1);
    let (merged_tx, merged_rx) = mpsc::channel::<(usize, Received)>(1024);
    for (i, mut rx) in receivers.into_iter().enumerate() {
        let tx = merged_tx.clone();
        tokio::spawn(async move {
            while let Some(r) = rx.recv().await {
                if tx.send((i, r)).await.is_err() {
                    return;
                }
            }
        });
    }

    // vrrp_script trackers, one per script that something tracks.
    let (track_tx, track_rx) = mpsc::unbounded_channel::<(TrackKind, String, bool)>();
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
                script::spawn_tracker(ScriptTracker::new(vs), Arc::new(p), tx);
                let fwd = track_tx.clone();
                tokio::spawn(async move {
                    while let Some(c) = rx.recv().await {
                        let up = c.status == TrackStatus::Up;
                        if fwd.send((TrackKind::Script, c.name, up)).is_err() {
                            return;
                        }
                    }
                });
            }
            Err(e) => warn!("VRRP_Script({name}): {e} - disabling"),
        }
    }
    // Interfaces: the instances' own and track_interface ones.
    let mut ifaces: Vec<String> = ios.iter().map(|i| i.ifname.clone()).collect();
    for vi in &cfg.vrrp_instances {
        ifaces.extend(vi.track_interface.iter().map(|t| t.name.clone()));
    }
    for sg in &cfg.vrrp_sync_groups {
        ifaces.extend(sg.track_interface.iter().map(|t| t.name.clone()));
    }
    ifaces.sort();
    ifaces.dedup();
    let fwd = track_tx.clone();
    tokio::spawn(async move { watch_interfaces(ifaces, net, fwd).await });

    let st = status.clone();
    tokio::spawn(async move { drive(units, ios, daemon, st, merged_rx, track_rx, stop_rx).await });
    Ok((status, stop_tx))
}

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
    mut units: Vec<Unit>,
    mut ios: Vec<Io>,
    daemon: Arc<Mutex<Daemon>>,
    status: StatusHandle,
    mut rx: mpsc::Receiver<(usize, Received)>,
    mut track_rx: mpsc::UnboundedReceiver<(TrackKind, String, bool)>,
    mut stop_rx: mpsc::Receiver<StopRequest>,
) {
    let now = Instant::now();
    for u in units.iter_mut() {
        u.feed(Event::Start, now, &mut ios, &daemon);
    }
    publish_status(&units, &ios, &status);
    loop {
        let deadline = units.iter().filter_map(Unit::deadline).min();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            got = rx.recv() => {
                let Some((i, r)) = got else { return };
                let now = Instant::now();
                match Advert::parse(&r.payload, r.src, r.dst) {
                    Ok(advert) => {
                        let rx = RxInfo { src: r.src, dst: r.dst, ttl: r.ttl };
                        if let Some(u) = units.iter_mut().find(|u| u.owns_io(i)) {
                            // The group routes adverts to its member by VRID.
                            let ours = u.instances().iter().any(|(inst, io)| *io == i && inst.config().vrid == advert.vrid);
                            if ours {
                                u.feed(Event::AdvertReceived { rx, advert }, now, &mut ios, &daemon);
                            }
                        }
                    }
                    Err(e) => warn!("bad VRRP packet on {} from {}: {e}", ios[i].ifname, r.src),
                }
            }
            t = track_rx.recv() => {
                let Some((kind, name, up)) = t else { continue };
                let now = Instant::now();
                let ev = if up { Event::TrackUp { kind, name } } else { Event::TrackDown { kind, name } };
                for u in units.iter_mut() {
                    u.feed(ev.clone(), now, &mut ios, &daemon);
                }
            }
            _ = sleep => {
                let now = Instant::now();
                for u in units.iter_mut() {
                    if u.deadline().is_some_and(|d| d <= now) {
                        u.feed(Event::TimerFired, now, &mut ios, &daemon);
                    }
                }
            }
            req = stop_rx.recv() => {
                let now = Instant::now();
                for u in units.iter_mut() {
                    u.feed(Event::Stop, now, &mut ios, &daemon);
                }
                publish_status(&units, &ios, &status);
                if let Some(done) = req {
                    let _ = done.send(());
                }
                return;
            }
        }
        publish_status(&units, &ios, &status);
    }
}

fn publish_status(units: &[Unit], ios: &[Io], status: &StatusHandle) {
    let mut v: Vec<InstanceStatus> = units
        .iter()
        .flat_map(|u| u.instances())
        .map(|(inst, io)| InstanceStatus {
            name: inst.name().to_string(),
            interface: ios[io].ifname.clone(),
            vrid: inst.config().vrid,
            state: inst.state().as_str().to_string(),
            priority: inst.config().priority,
            effective_priority: inst.effective_priority(),
            transitions: ios[io].transitions,
            vips: inst.config().vips.clone(),
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    if let Ok(mut s) = status.lock() {
        *s = v;
    }
}

fn carry_out(inst: &Instance, io: &mut Io, actions: Vec<Action>, daemon: &Arc<Mutex<Daemon>>) {
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
                set_vips(daemon, &inst.config().vips, true);
            }
            Action::ReleaseVips => set_vips(daemon, &inst.config().vips, false),
            Action::BecomeBackup | Action::BecomeFault => io.transitions += 1,
            Action::SendGarp { count } => send_garps(inst, io, daemon, count),
            Action::Notify { state, priority } => {
                let _ = io.notifier.notify(state, priority);
            }
            // The instance logs it, in keepalived's words.
            Action::PriorityChanged { .. } => {}
        }
    }
}

/// Takes the VIPs into the dataplane, or out of it, and publishes.
fn set_vips(daemon: &Arc<Mutex<Daemon>>, vips: &[Ipv4Addr], active: bool) {
    let Ok(mut d) = daemon.lock() else { return };
    for v in vips {
        d.vrrp_vips.insert(*v, active);
    }
    if let Err(e) = d.publish() {
        warn!("publishing VIP ownership: {e}");
    }
}

/// Gratuitous ARPs for every VIP, out of the instance's port through the
/// first worker (the dataplane owns the port).
fn send_garps(inst: &Instance, io: &Io, daemon: &Arc<Mutex<Daemon>>, count: u32) {
    let Ok(d) = daemon.lock() else { return };
    for _ in 0..count.max(1) {
        for v in &inst.config().vips {
            let mut f = vec![0u8; 64];
            let n = arp::build_gratuitous(&mut f, &io.mac, *v, None);
            f.truncate(n);
            if !d.dataplane.request(
                0,
                Request::Transmit {
                    port: io.port,
                    frame: f,
                },
            ) {
                warn!(
                    "({}) gratuitous ARP for {v}: worker queue full",
                    inst.name()
                );
            }
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
