//! How the tasks around the daemon reach its owner: the messages
//! ([`ToDaemon`]), what the VRRP driver holds ([`DaemonLink`]) and a
//! control request's answer on its way ([`Pending`], the `-Lnc` query that
//! waits for the workers off the owner). The servers and drivers depend on
//! this, not on the daemon.

use crate::northbound::ctl::{CtlRequest, CtlResponse};
use crate::southbound::dataplane::Dataplane;
use crate::view::ViewCell;
use ferrovs_config::ipvsadm::list::{format_conns, ConnEntry, ConnProto};
use ferrovs_dataplane::worker::{ConnView, ConnView6};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// What the tasks around the daemon ask of it. One task owns the daemon
/// (see `daemon.rs`'s `Owner`) and takes these in turn; nothing else touches it.
pub enum ToDaemon {
    /// A control-socket request; the answer, as far as the daemon takes it.
    Ctl(CtlRequest, tokio::sync::oneshot::Sender<Pending>),
    /// VRRP took (true) or released (false) these VIPs.
    SetVips(Vec<IpAddr>, bool),
    /// After a VRRP reload: the VIPs the instances now list.
    SyncVips(Vec<IpAddr>),
    /// `ferrovs upgrade` checked the new binary: hand over to it, and say
    /// on the sender how it went (the line `ferrovs upgrade` prints).
    Upgrade(crate::upgrade::Plan, UpgradeReply),
    /// The new process of a hand-over got ready (Ok), or did not.
    HandoverReady(
        Box<crate::handover::Parent>,
        crate::upgrade::Plan,
        Result<(), String>,
        UpgradeReply,
    ),
}

/// Where the owner answers `ferrovs upgrade`: Ok with the line to print,
/// Err with why it was given up.
pub type UpgradeReply = std::sync::mpsc::Sender<Result<String, String>>;

/// What the VRRP driver holds of the daemon: a way to ask it, the
/// dataplane's request queues (gratuitous ARP) and the published view.
#[derive(Clone)]
pub struct DaemonLink {
    pub tx: tokio::sync::mpsc::UnboundedSender<ToDaemon>,
    pub dataplane: Arc<dyn Dataplane>,
    pub view: ViewCell,
}

/// A control request as far as the daemon took it (see `Daemon::start`).
pub enum Pending {
    Done(CtlResponse),
    Conns(ConnsQuery),
    Upgrade(UpgradeCheck),
}

impl Pending {
    /// The answer; a connection listing waits (up to 2 s) for the workers,
    /// an upgrade for the checks of the new binary (which run it).
    pub fn finish(self) -> CtlResponse {
        match self {
            Pending::Done(r) => r,
            Pending::Conns(q) => CtlResponse::ok(q.collect()),
            Pending::Upgrade(u) => u.run(),
        }
    }
}

/// `ferrovs upgrade` on its way: the new binary is checked on the request's
/// thread (it runs the binary), then the owner is told to hand over.
pub struct UpgradeCheck {
    pub(crate) binary: std::path::PathBuf,
    pub(crate) config: std::path::PathBuf,
    pub(crate) state_dir: Option<std::path::PathBuf>,
    pub(crate) force: bool,
    pub(crate) tx: tokio::sync::mpsc::UnboundedSender<ToDaemon>,
}

impl UpgradeCheck {
    fn run(self) -> CtlResponse {
        match crate::upgrade::check(
            &self.binary,
            &self.config,
            self.state_dir.as_deref(),
            self.force,
        ) {
            Ok((plan, notes)) => {
                let mut out = String::new();
                for n in notes {
                    out.push_str(&format!("{n}\n"));
                }
                let (tx, rx) = std::sync::mpsc::channel();
                if self.tx.send(ToDaemon::Upgrade(plan, tx)).is_err() {
                    return CtlResponse::err(1, "ferrovs is stopping");
                }
                // A hand-over answers once the new process is ready.
                match rx.recv_timeout(std::time::Duration::from_secs(90)) {
                    Ok(Ok(line)) => {
                        out.push_str(&line);
                        CtlResponse::ok(out)
                    }
                    Ok(Err(e)) => CtlResponse::err(1, format!("upgrade failed: {e}")),
                    Err(_) => CtlResponse::err(1, "upgrade: no answer from the daemon"),
                }
            }
            Err(e) => CtlResponse::err(1, format!("upgrade refused: {e}")),
        }
    }
}

/// `-Lnc` on its way: the workers answer on `rx` (IPv4) and `rx6`.
pub struct ConnsQuery {
    pub(crate) rx: std::sync::mpsc::Receiver<Vec<ConnView>>,
    pub(crate) rx6: std::sync::mpsc::Receiver<Vec<ConnView6>>,
    pub(crate) asked: usize,
    pub(crate) asked6: usize,
    pub(crate) deadline: Instant,
    /// One service's connections only: (protocol number, VIP, port).
    pub(crate) filter: Option<(u8, IpAddr, u16)>,
    pub(crate) templates: Vec<ConnEntry>,
    pub(crate) persistent_conn: bool,
}

impl ConnsQuery {
    /// Gathers the workers' connections (those that answer by the
    /// deadline) and formats them as `ipvsadm -Lnc` does.
    pub fn collect(self) -> String {
        let views = gather(&self.rx, self.asked, self.deadline);
        let views6 = gather(&self.rx6, self.asked6, self.deadline);
        let filter = self.filter;
        let wanted = |proto: u8, a: IpAddr, port: u16| {
            filter.is_none_or(|(p, fa, fp)| p == proto && fa == a && fp == port)
        };
        let proto = |p: u8| {
            if p == 6 {
                ConnProto::Tcp
            } else {
                ConnProto::Udp
            }
        };
        let mut out: Vec<ConnEntry> = views
            .iter()
            .filter(|c| wanted(c.proto, IpAddr::V4(c.virt.0), c.virt.1))
            .map(|c| ConnEntry {
                proto: proto(c.proto),
                expires: c.expires_s,
                state: c.state.to_string(),
                client: (IpAddr::V4(c.client.0), c.client.1),
                virt: (IpAddr::V4(c.virt.0), c.virt.1),
                dest: c.dest,
                pe: None,
            })
            .collect();
        out.extend(
            views6
                .iter()
                .filter(|c| wanted(c.proto, c.virt.0, c.virt.1))
                .map(|c| ConnEntry {
                    proto: proto(c.proto),
                    expires: c.expires_s,
                    state: c.state.to_string(),
                    client: c.client,
                    virt: c.virt,
                    dest: c.dest,
                    pe: None,
                }),
        );
        out.extend(self.templates);
        format_conns(&out, self.persistent_conn)
    }
}

/// The answers of the `asked` workers that come by `deadline`, together.
fn gather<T>(rx: &std::sync::mpsc::Receiver<Vec<T>>, asked: usize, deadline: Instant) -> Vec<T> {
    let mut all = Vec::new();
    for _ in 0..asked {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(v) => all.extend(v),
            Err(_) => break,
        }
    }
    all
}
