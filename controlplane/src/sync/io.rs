//! The sync daemon's I/O: one task that drains the workers' rings into
//! messages and sends them as a master, and receives and installs them as
//! a backup, over kernel UDP sockets bound to the sync interface, as the
//! VRRP adverts go (the kernel owns the director's own address: with
//! AF_PACKET it sees the frames anyway, AF_XDP's program passes what the
//! balancer does not own, DPDK's exception path carries it).
//!
//! The role follows the VRRP instance `lvs_sync_daemon` names, as
//! keepalived ties them (`ipvs_syncd_master`/`ipvs_syncd_backup` on its
//! transitions): MASTER sends, BACKUP and FAULT receive. `ferrovsadm
//! --start-daemon`/`--stop-daemon` start and stop either daemon by hand;
//! a later VRRP transition sets the followed role again. The ferrovs
//! block's `sync_active_active` runs both daemons always instead (every
//! director active behind ECMP sends its connections and installs the
//! others'), starting them again until the interface is there.

use super::batch::Batcher;
use super::receive::route;
use super::settings::Settings;
use super::stats::SyncStats;
use crate::southbound::net_state::NetState;
use crate::southbound::Dataplane;
use crate::vrrp::driver::StatusHandle;
use ferrovs_config::ipvsadm::SyncDaemon;
use ferrovs_dataplane::worker::Request;
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

/// How often the master drains the workers' rings: records wait at most
/// this long before batching (a ring holds `RING_SIZE`, 32,768; at 100k
/// new connections a second per worker about 2,500 records come in a
/// tick).
const TICK: Duration = Duration::from_millis(10);

/// The followed VRRP instance.
#[derive(Clone)]
pub struct Follow {
    pub instance: String,
    pub settings: Settings,
    pub vrrp: StatusHandle,
}

pub enum SyncCtl {
    Start {
        master: bool,
        settings: Settings,
    },
    Stop {
        master: bool,
    },
    /// `lvs_sync_daemon` (again after a reload or a VRRP restart), or None
    /// when the configuration has none.
    Follow(Option<Follow>),
    /// `sync_active_active` (again after a reload), or None when the
    /// configuration has none.
    Always(Option<Settings>),
}

#[derive(Clone)]
pub struct SyncHandle {
    pub tx: mpsc::UnboundedSender<SyncCtl>,
    /// What `ipvsadm -L --daemon` lists: the master first, then the backup.
    pub listing: Arc<Mutex<Vec<SyncDaemon>>>,
    pub stats: Arc<SyncStats>,
}

impl SyncHandle {
    pub fn running(&self, master: bool) -> bool {
        self.listing
            .lock()
            .map(|l| l.iter().any(|d| d.master == master))
            .unwrap_or(false)
    }
}

struct Master {
    settings: Settings,
    sock: UdpSocket,
    dst: SocketAddr,
    batcher: Batcher,
    mtu: Option<u32>,
}

struct Backup {
    settings: Settings,
    mtu: Option<u32>,
    task: tokio::task::JoinHandle<()>,
}

struct Task {
    dp: Arc<dyn Dataplane>,
    net: watch::Receiver<Arc<NetState>>,
    stats: Arc<SyncStats>,
    listing: Arc<Mutex<Vec<SyncDaemon>>>,
    master: Option<Master>,
    backup: Option<Backup>,
    follow: Option<Follow>,
    /// The followed instance's role last acted on (true: MASTER).
    followed_role: Option<bool>,
    /// `sync_active_active`'s settings, and when its daemons were last
    /// (re)started.
    always: Option<(Settings, Instant)>,
    epoch: Instant,
}

/// How often `sync_active_active` tries again a daemon that could not
/// start (its interface not there yet).
const ALWAYS_RETRY: Duration = Duration::from_secs(1);

/// Starts the sync daemon's task (idle until told to start or follow).
pub fn spawn(dp: Arc<dyn Dataplane>, net: watch::Receiver<Arc<NetState>>) -> SyncHandle {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stats = Arc::new(SyncStats::default());
    let listing = Arc::new(Mutex::new(Vec::new()));
    let mut t = Task {
        dp,
        net,
        stats: stats.clone(),
        listing: listing.clone(),
        master: None,
        backup: None,
        follow: None,
        followed_role: None,
        always: None,
        epoch: Instant::now(),
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                c = rx.recv() => match c {
                    Some(c) => t.control(c),
                    None => break,
                },
                _ = tick.tick() => t.tick(),
            }
        }
        t.stop_master();
        t.stop_backup();
    });
    SyncHandle { tx, listing, stats }
}

impl Task {
    fn control(&mut self, c: SyncCtl) {
        match c {
            SyncCtl::Start { master, settings } => {
                if master {
                    self.start_master(settings)
                } else {
                    self.start_backup(settings)
                }
            }
            SyncCtl::Stop { master } => {
                if master {
                    self.stop_master()
                } else {
                    self.stop_backup()
                }
            }
            SyncCtl::Follow(f) => {
                let same = match (&self.follow, &f) {
                    (Some(a), Some(b)) => a.instance == b.instance && a.settings == b.settings,
                    (None, None) => true,
                    _ => false,
                };
                if !same {
                    // New settings: the daemons restart with them at the
                    // next look at the instance.
                    self.stop_master();
                    self.stop_backup();
                    self.followed_role = None;
                }
                self.follow = f;
            }
            SyncCtl::Always(a) => {
                if self.always.as_ref().map(|(s, _)| s) != a.as_ref() {
                    if self.always.is_some() {
                        self.stop_master();
                        self.stop_backup();
                    }
                    self.always = a.map(|s| (s, Instant::now()));
                    self.start_always();
                }
            }
        }
        self.publish();
    }

    /// Starts whichever of `sync_active_active`'s daemons is not running.
    fn start_always(&mut self) {
        let Some((s, at)) = &mut self.always else {
            return;
        };
        *at = Instant::now();
        let s = s.clone();
        if self.master.is_none() {
            self.start_master(s.clone());
        }
        if self.backup.is_none() {
            self.start_backup(s);
        }
    }

    fn tick(&mut self) {
        if let Some((_, at)) = &self.always {
            if (self.master.is_none() || self.backup.is_none()) && at.elapsed() >= ALWAYS_RETRY {
                self.start_always();
                self.publish();
            }
        }
        if let Some(f) = &self.follow {
            let state = f.vrrp.lock().ok().and_then(|v| {
                v.iter()
                    .find(|s| s.name == f.instance)
                    .map(|s| s.state.clone())
            });
            let role = match state.as_deref() {
                Some("MASTER") => Some(true),
                Some("BACKUP") | Some("FAULT") | Some("INIT") => Some(false),
                _ => None,
            };
            if let Some(r) = role.filter(|r| Some(*r) != self.followed_role) {
                let s = f.settings.clone();
                info!(
                    "sync daemon: VRRP instance {} is {}: {} sync daemon",
                    f.instance,
                    state.as_deref().unwrap_or(""),
                    if r { "master" } else { "backup" }
                );
                self.followed_role = Some(r);
                if r {
                    self.stop_backup();
                    self.start_master(s);
                } else {
                    self.stop_master();
                    self.start_backup(s);
                }
                self.publish();
            }
        }
        self.drain();
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The master: the workers' records into messages, sent when full or
    /// due.
    fn drain(&mut self) {
        let now = self.now_ms();
        let Some(m) = &mut self.master else {
            return;
        };
        let sync = self.dp.sync();
        let stats = &self.stats;
        let (sock, dst) = (&m.sock, m.dst);
        let mut send = |msg: &[u8], n: usize| match sock.send_to(msg, dst) {
            Ok(_) => {
                SyncStats::add(&stats.messages_sent, 1);
                SyncStats::add(&stats.entries_sent, n as u64);
            }
            Err(_) => SyncStats::add(&stats.send_errors, 1),
        };
        for w in 0..sync.workers() {
            // Bounded per tick: a ring holds at most RING_SIZE.
            sync.drain(w, ferrovs_dataplane::sync::RING_SIZE, |r| {
                m.batcher.push(&r, now, &mut send)
            });
        }
        m.batcher.flush(now, false, &mut send);
    }

    fn iface(&self, name: &str) -> Option<ferrovs_dataplane::port::Iface> {
        self.net.borrow().iface(name).ok()
    }

    fn start_master(&mut self, s: Settings) {
        self.stop_master();
        let iface = self.iface(&s.ifname);
        let mtu = iface.as_ref().map(|i| i.mtu);
        let ifindex = iface.as_ref().map(|i| i.index);
        match open_master(&s, ifindex) {
            Ok(sock) => {
                info!(
                    "sync daemon: master on {} (syncid {}, group {}:{}, ttl {})",
                    s.ifname, s.syncid, s.group, s.port, s.ttl
                );
                // Records made while no master ran are stale.
                let sync = self.dp.sync();
                for w in 0..sync.workers() {
                    sync.drain(w, usize::MAX, |_| ());
                }
                sync.set_master(true);
                self.master = Some(Master {
                    batcher: Batcher::new(s.syncid, s.effective_maxlen(mtu)),
                    dst: group_addr(&s, ifindex.unwrap_or(0)),
                    settings: s,
                    sock,
                    mtu,
                });
            }
            Err(e) => warn!("sync daemon: master on {}: {e}", s.ifname),
        }
    }

    fn stop_master(&mut self) {
        self.dp.sync().set_master(false);
        if self.master.is_some() {
            // What the workers recorded last goes out first.
            self.drain();
            let stats = &self.stats;
            if let Some(m) = &mut self.master {
                let (sock, dst) = (&m.sock, m.dst);
                m.batcher.flush(0, true, |msg, n| {
                    if sock.send_to(msg, dst).is_ok() {
                        SyncStats::add(&stats.messages_sent, 1);
                        SyncStats::add(&stats.entries_sent, n as u64);
                    }
                });
                info!("sync daemon: master on {} stopped", m.settings.ifname);
            }
            self.master = None;
        }
    }

    fn start_backup(&mut self, s: Settings) {
        self.stop_backup();
        let Some(iface) = self.iface(&s.ifname) else {
            warn!("sync daemon: backup: no interface {}", s.ifname);
            return;
        };
        match open_backup(&s, iface.index) {
            Ok(sock) => {
                info!(
                    "sync daemon: backup on {} (syncid {}, group {}:{})",
                    s.ifname, s.syncid, s.group, s.port
                );
                let task = tokio::spawn(receive(
                    sock,
                    s.syncid,
                    s.effective_maxlen(Some(iface.mtu)),
                    self.dp.clone(),
                    self.stats.clone(),
                ));
                self.backup = Some(Backup {
                    settings: s,
                    mtu: Some(iface.mtu),
                    task,
                });
            }
            Err(e) => warn!("sync daemon: backup on {}: {e}", s.ifname),
        }
    }

    fn stop_backup(&mut self) {
        if let Some(b) = self.backup.take() {
            b.task.abort();
            info!("sync daemon: backup on {} stopped", b.settings.ifname);
        }
    }

    fn publish(&self) {
        let mut v = Vec::new();
        if let Some(m) = &self.master {
            v.push(m.settings.listing(true, m.mtu));
        }
        if let Some(b) = &self.backup {
            v.push(b.settings.listing(false, b.mtu));
        }
        if let Ok(mut l) = self.listing.lock() {
            *l = v;
        }
    }
}

/// The group and port, with the interface as an IPv6 group's scope (a
/// link-local group, `ff02::`, means nothing without it).
fn group_addr(s: &Settings, ifindex: u32) -> SocketAddr {
    match s.group {
        IpAddr::V4(g) => SocketAddr::V4(SocketAddrV4::new(g, s.port)),
        IpAddr::V6(g) => SocketAddr::V6(SocketAddrV6::new(g, s.port, 0, ifindex)),
    }
}

/// The master's socket: sends to the group out of the sync interface at the
/// configured TTL (IPv6: hop limit), without looping back to ourselves.
fn open_master(s: &Settings, ifindex: Option<u32>) -> std::io::Result<UdpSocket> {
    let sock = match s.group {
        IpAddr::V4(_) => {
            let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
            sock.bind_device(Some(s.ifname.as_bytes()))?;
            sock.set_multicast_ttl_v4(s.ttl as u32)?;
            sock.set_multicast_loop_v4(false)?;
            sock
        }
        IpAddr::V6(_) => {
            let ifindex = ifindex.ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no interface {}", s.ifname),
                )
            })?;
            let sock = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
            sock.bind_device(Some(s.ifname.as_bytes()))?;
            sock.set_multicast_if_v6(ifindex)?;
            sock.set_multicast_hops_v6(s.ttl as u32)?;
            sock.set_multicast_loop_v6(false)?;
            sock
        }
    };
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

/// The backup's socket: bound to the group and port (as the kernel's
/// backup binds), member of the group on the sync interface.
fn open_backup(s: &Settings, ifindex: u32) -> std::io::Result<tokio::net::UdpSocket> {
    let sock = match s.group {
        IpAddr::V4(g) => {
            let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
            sock.set_reuse_address(true)?;
            sock.bind_device(Some(s.ifname.as_bytes()))?;
            sock.bind(&SocketAddrV4::new(g, s.port).into())?;
            sock.join_multicast_v4_n(&g, &InterfaceIndexOrAddress::Index(ifindex))?;
            sock
        }
        IpAddr::V6(g) => {
            let sock = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
            sock.set_only_v6(true)?;
            sock.set_reuse_address(true)?;
            sock.bind_device(Some(s.ifname.as_bytes()))?;
            sock.bind(&group_addr(s, ifindex).into())?;
            sock.join_multicast_v6(&g, ifindex)?;
            sock
        }
    };
    sock.set_nonblocking(true)?;
    tokio::net::UdpSocket::from_std(sock.into())
}

/// How long the backup waits for a worker's full request queue before it
/// drops a message's records (counted), and how often it looks.
const QUEUE_WAIT: Duration = Duration::from_millis(200);
const QUEUE_RETRY: Duration = Duration::from_millis(1);

/// The backup: every message decoded, its entries queued to their workers
/// (one request per worker per message; a queue full for `QUEUE_WAIT` is
/// counted).
async fn receive(
    sock: tokio::net::UdpSocket,
    syncid: u8,
    maxlen: usize,
    dp: Arc<dyn Dataplane>,
    stats: Arc<SyncStats>,
) {
    // A message longer than maxlen is cut, then refused for its size.
    let mut buf = vec![0u8; maxlen.max(1500) + 1];
    loop {
        let n = match sock.recv(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                warn!("sync daemon: receiving: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        SyncStats::add(&stats.messages_received, 1);
        let snap = dp.snapshot();
        match route(&buf[..n], syncid, &snap) {
            Ok(r) => {
                SyncStats::add(&stats.entries_received, r.entries as u64);
                SyncStats::add(&stats.unusable_entries, r.unusable as u64);
                for (w, recs) in r.per_worker.into_iter().enumerate() {
                    if recs.is_empty() {
                        continue;
                    }
                    // A worker busy forwarding may leave its queue full
                    // for a moment (a burst of messages from several
                    // masters behind ECMP): wait for it rather than lose
                    // the records; the socket's buffer holds what comes
                    // meanwhile.
                    let k = recs.len() as u64;
                    let mut req = Request::SyncInstall(recs);
                    let mut waited = Duration::ZERO;
                    while let Err(back) = dp.request_now(w, req) {
                        if waited >= QUEUE_WAIT {
                            SyncStats::add(&stats.queue_full_entries, k);
                            break;
                        }
                        req = back;
                        tokio::time::sleep(QUEUE_RETRY).await;
                        waited += QUEUE_RETRY;
                    }
                }
            }
            Err(super::message::MessageError::OtherSyncId { .. }) => {
                SyncStats::add(&stats.wrong_syncid, 1)
            }
            Err(_) => SyncStats::add(&stats.bad_messages, 1),
        }
    }
}
