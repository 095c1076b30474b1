//! Runs the VRRP instances of the configuration: the I/O glue around the
//! sans-IO state machines in [`crate::vrrp`]. It owns the sockets and the
//! clock, feeds adverts and timer expiries in, and carries the actions out:
//! adverts on the raw socket, the VIPs into or out of the dataplane (a
//! backup neither answers ARP for them nor forwards their traffic),
//! gratuitous ARP through the dataplane's own port, notify scripts.

use crate::daemon::Daemon;
use crate::vrrp::notify::{Notifier, NotifyKind};
use crate::vrrp::{Action, Advert, Event, Instance, InstanceConfig, RxInfo, State};
use crate::vrrp_io::{Received, VrrpSocket};
use ferrovs_config::Config;
use ferrovs_dataplane::wire::arp;
use ferrovs_dataplane::worker::Request;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

/// One running instance and what it needs for I/O.
struct Running {
    inst: Instance,
    port: u16,
    mac: [u8; 6],
    sock: VrrpSocket,
    notifier: Notifier,
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

/// Builds the instances; errors name the instance.
fn build(
    cfg: &Config,
    daemon: &Daemon,
) -> Result<Vec<(Running, mpsc::Receiver<Received>)>, String> {
    let mut out = Vec::new();
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
        let sock =
            VrrpSocket::open(&ifname, icfg.primary_ip, &groups).map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::channel(256);
        sock.spawn_receiver(tx, Arc::new(AtomicBool::new(false)))
            .map_err(|e| e.to_string())?;
        let notifier = Notifier::new(NotifyKind::Instance, &vi.name, &vi.notify, &cfg.global);
        out.push((
            Running {
                inst: Instance::new(icfg),
                port: port as u16,
                mac: pc.mac,
                sock,
                notifier,
            },
            rx,
        ));
    }
    Ok(out)
}

/// Starts the instances. Returns a status handle and a stop channel; the
/// driver runs on the current tokio runtime.
pub fn start(
    cfg: &Config,
    daemon: Arc<Mutex<Daemon>>,
) -> Result<(StatusHandle, mpsc::Sender<StopRequest>), String> {
    let built = {
        let d = daemon.lock().map_err(|_| "state lock poisoned")?;
        build(cfg, &d)?
    };
    let status = Arc::new(Mutex::new(Vec::new()));
    let (stop_tx, stop_rx) = mpsc::channel(1);
    let (running, receivers): (Vec<Running>, Vec<mpsc::Receiver<Received>>) =
        built.into_iter().unzip();
    let names: Vec<String> = cfg
        .vrrp_instances
        .iter()
        .map(|v| v.interface.clone().unwrap_or_default())
        .collect();
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
    let st = status.clone();
    tokio::spawn(async move { drive(running, names, daemon, st, merged_rx, stop_rx).await });
    Ok((status, stop_tx))
}

async fn drive(
    mut insts: Vec<Running>,
    ifnames: Vec<String>,
    daemon: Arc<Mutex<Daemon>>,
    status: Arc<Mutex<Vec<InstanceStatus>>>,
    mut rx: mpsc::Receiver<(usize, Received)>,
    mut stop_rx: mpsc::Receiver<StopRequest>,
) {
    let mut transitions = vec![0u64; insts.len()];
    let now = Instant::now();
    for i in 0..insts.len() {
        let acts = insts[i].inst.handle(Event::Start, now);
        carry_out(&mut insts[i], acts, &daemon, &mut transitions[i]);
    }
    publish_status(&insts, &ifnames, &transitions, &status);
    loop {
        let deadline = insts.iter().filter_map(|r| r.inst.next_deadline()).min();
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
                        if advert.vrid != insts[i].inst.config().vrid {
                            continue;
                        }
                        let ev = Event::AdvertReceived { rx: RxInfo { src: r.src, dst: r.dst, ttl: r.ttl }, advert };
                        let acts = insts[i].inst.handle(ev, now);
                        carry_out(&mut insts[i], acts, &daemon, &mut transitions[i]);
                    }
                    Err(e) => warn!("({}) bad VRRP packet from {}: {e}", insts[i].inst.name(), r.src),
                }
            }
            _ = sleep => {
                let now = Instant::now();
                for i in 0..insts.len() {
                    if insts[i].inst.next_deadline().is_some_and(|d| d <= now) {
                        let acts = insts[i].inst.handle(Event::TimerFired, now);
                        carry_out(&mut insts[i], acts, &daemon, &mut transitions[i]);
                    }
                }
            }
            req = stop_rx.recv() => {
                let now = Instant::now();
                for i in 0..insts.len() {
                    let acts = insts[i].inst.handle(Event::Stop, now);
                    carry_out(&mut insts[i], acts, &daemon, &mut transitions[i]);
                }
                publish_status(&insts, &ifnames, &transitions, &status);
                if let Some(done) = req {
                    let _ = done.send(());
                }
                return;
            }
        }
        publish_status(&insts, &ifnames, &transitions, &status);
    }
}

fn publish_status(
    insts: &[Running],
    ifnames: &[String],
    transitions: &[u64],
    status: &Arc<Mutex<Vec<InstanceStatus>>>,
) {
    let v = insts
        .iter()
        .enumerate()
        .map(|(i, r)| InstanceStatus {
            name: r.inst.name().to_string(),
            interface: ifnames.get(i).cloned().unwrap_or_default(),
            vrid: r.inst.config().vrid,
            state: r.inst.state().as_str().to_string(),
            priority: r.inst.config().priority,
            effective_priority: r.inst.effective_priority(),
            transitions: transitions[i],
            vips: r.inst.config().vips.clone(),
        })
        .collect();
    if let Ok(mut s) = status.lock() {
        *s = v;
    }
}

fn carry_out(
    r: &mut Running,
    actions: Vec<Action>,
    daemon: &Arc<Mutex<Daemon>>,
    transitions: &mut u64,
) {
    let name = r.inst.name().to_string();
    for a in actions {
        match a {
            Action::SendAdvert { priority, to } => {
                for (dst, msg) in r.inst.encode_adverts(priority, &to) {
                    if let Err(e) = r.sock.send(&msg, dst) {
                        warn!("({name}) sending advert to {dst}: {e}");
                    }
                }
            }
            Action::BecomeMaster => {
                *transitions += 1;
                set_vips(daemon, &r.inst.config().vips, true);
            }
            Action::ReleaseVips => set_vips(daemon, &r.inst.config().vips, false),
            Action::BecomeBackup | Action::BecomeFault => *transitions += 1,
            Action::SendGarp { count } => send_garps(r, daemon, count),
            Action::Notify { state, priority } => {
                let _ = r.notifier.notify(state, priority);
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
fn send_garps(r: &Running, daemon: &Arc<Mutex<Daemon>>, count: u32) {
    let Ok(d) = daemon.lock() else { return };
    for _ in 0..count.max(1) {
        for v in &r.inst.config().vips {
            let mut f = vec![0u8; 64];
            let n = arp::build_gratuitous(&mut f, &r.mac, *v, None);
            f.truncate(n);
            if !d.dataplane.request(
                0,
                Request::Transmit {
                    port: r.port,
                    frame: f,
                },
            ) {
                warn!(
                    "({}) gratuitous ARP for {v}: worker queue full",
                    r.inst.name()
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
