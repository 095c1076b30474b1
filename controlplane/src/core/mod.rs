//! The control core, sans-IO: it owns the IPVS state, the network the
//! dataplane forwards on, VIP ownership, the timeouts, the snapshot
//! generations and the reload counters, and decides everything about them.
//! It does no I/O, reads no clock (time comes with each input), takes no
//! lock and knows nothing of tokio; like `vrrp/instance.rs` (and
//! quinn-proto), it is driven by one entry point, [`Core::handle`], which
//! takes an [`Input`] and returns the [`Output`]s the caller carries out.
//! The daemon's owner task (`daemon.rs`) is that caller: it feeds the core
//! with what its sockets, signals and drivers bring, and publishes,
//! commits, replies and logs as told.
//!
//! One concept a file: [`change`] (the table changes), [`reload`] (a new
//! configuration, in two phases), [`net`] (the kernel's network), [`vips`]
//! (VRRP's addresses), [`workers`] (the workers' liveness), [`admin`]
//! (`ferrovsadm`'s changes), [`error`].

pub mod admin;
pub mod change;
pub mod error;
pub mod net;
pub mod reload;
pub mod vips;
pub mod workers;

#[cfg(test)]
mod tests;

pub use admin::AdminCommand;
pub use change::{Desired, TableChange};
pub use error::{CoreError, Rejected};
pub use reload::Reload;

use crate::heartbeat::StallDetector;
use crate::ipvs_state::{IpvsState, Net};
use crate::southbound::NetState;
use ferrovs_config::Config;
use ferrovs_dataplane::snapshot::Snapshot;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// What reaches the core.
pub enum Input {
    /// SIGHUP: the file as read, and what the health checks' plan makes
    /// of the table (None without health checks: the file's own diff).
    Reload(Box<Reload>),
    /// The health checks changed servers (weights, servers in or out),
    /// exactly as against their own view of the table; the core applies
    /// each as the state it leads to (see [`Desired::of`]).
    Health(Vec<TableChange>),
    /// VRRP took (true) or released (false) these VIPs.
    VipsHeld(Vec<IpAddr>, bool),
    /// After a VRRP reload: the VIPs the instances now list.
    VipsListed(Vec<IpAddr>),
    /// A `ferrovsadm` command that changes something; answered by an
    /// [`Output::Reply`] with the same id.
    Admin { id: u64, cmd: AdminCommand },
    /// The kernel's links, addresses and routes, as the southbound sees
    /// them now.
    NetChange(Arc<NetState>),
    /// The workers' latest heartbeat stamps (on the workers' clock).
    Heartbeats(Vec<u64>),
    /// The VRRP driver started (true) or could not (false).
    VrrpStarted(bool),
    /// Periodic work (every 2 s): rate estimation, drained servers.
    Tick,
}

/// A log line's weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// What the core asks its caller to do, in order.
pub enum Output {
    /// Hand this snapshot to the workers (and the publish hook).
    Publish(Box<Snapshot>),
    /// Commit the health checks' reload plan given with the reload (its
    /// absence means: drop it, the checkers stay as they were).
    CommitHealthPlan,
    /// Start the VRRP driver with this configuration; answer with
    /// [`Input::VrrpStarted`].
    StartVrrp(Box<Config>),
    /// Hand this configuration to the running VRRP driver.
    ReloadVrrp(Box<Config>),
    /// Tell VRRP whether every worker runs (its `workers` track).
    TrackWorkers(bool),
    /// The answer to [`Input::Admin`] `id`.
    Reply {
        id: u64,
        result: Result<(), CoreError>,
    },
    /// The outcome of [`Input::Reload`].
    Reloaded(Result<usize, CoreError>),
    /// What the northbound readers see changed: publish a new view.
    ViewChanged,
    Log(Level, String),
}

/// Counters of reloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reloads {
    pub ok: u64,
    pub failed: u64,
    pub last_ok: bool,
}

/// The control core (see the module documentation).
pub struct Core {
    state: IpvsState,
    net: Net,
    config: Config,
    /// Addresses the vrrp_instances carry, and whether we hold them.
    vrrp_vips: BTreeMap<IpAddr, bool>,
    generation: u64,
    reloads: Reloads,
    workers: StallDetector,
    workers_running: bool,
    /// The kernel's network as last announced.
    kernel: Option<Arc<NetState>>,
    /// Whether a VRRP driver runs.
    vrrp_running: bool,
    /// Whether a start of the VRRP driver was asked and not yet answered.
    vrrp_starting: bool,
    /// Where the workers' clock starts (see [`crate::heartbeat::clock_ms`]).
    epoch: Instant,
    out: Vec<Output>,
}

impl Core {
    /// A core over a state already published as generation 1 (the
    /// workers start with it).
    pub fn new(state: IpvsState, net: Net, config: Config, epoch: Instant) -> Core {
        let workers = state.workers();
        let vrrp_vips = crate::vrrp::driver::vrrp_vips(&config)
            .into_iter()
            .map(|a| (a, false))
            .collect();
        Core {
            state,
            net,
            config,
            vrrp_vips,
            generation: 1,
            reloads: Reloads {
                ok: 0,
                failed: 0,
                last_ok: true,
            },
            workers: StallDetector::new(workers),
            workers_running: true,
            kernel: None,
            vrrp_running: false,
            vrrp_starting: false,
            epoch,
            out: Vec::new(),
        }
    }

    /// Takes one input at `now`; returns what to do about it, in order.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Output> {
        match input {
            Input::Reload(r) => self.reload(*r),
            Input::Health(changes) => self.health(&Desired::of_all(&changes)),
            Input::VipsHeld(vips, held) => self.vips_held(&vips, held),
            Input::VipsListed(vips) => self.vips_listed(&vips),
            Input::Admin { id, cmd } => {
                let result = self.admin(cmd);
                self.out.push(Output::Reply { id, result });
                self.out.push(Output::ViewChanged);
            }
            Input::NetChange(ns) => self.net_change(ns),
            Input::Heartbeats(stamps) => self.heartbeats(&stamps, now),
            Input::VrrpStarted(ok) => {
                self.vrrp_starting = false;
                self.vrrp_running = ok;
                self.out.push(Output::ViewChanged);
            }
            Input::Tick => self.tick(),
        }
        // One new view at the end is enough, however many parts changed.
        let mut out = std::mem::take(&mut self.out);
        let n = out.len();
        out.retain(|o| !matches!(o, Output::ViewChanged));
        if out.len() != n {
            out.push(Output::ViewChanged);
        }
        out
    }

    /// The IPVS state (the reads of `ferrovsadm`: listings, rules,
    /// timeouts, connections).
    pub fn state(&self) -> &IpvsState {
        &self.state
    }

    pub fn net(&self) -> &Net {
        &self.net
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn vrrp_vips(&self) -> &BTreeMap<IpAddr, bool> {
        &self.vrrp_vips
    }

    pub fn reloads(&self) -> Reloads {
        self.reloads
    }

    pub fn workers_running(&self) -> bool {
        self.workers_running
    }

    pub fn worker_stalls(&self) -> u64 {
        self.workers.stalls
    }

    /// The generation of the last snapshot published.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn vrrp_running(&self) -> bool {
        self.vrrp_running
    }

    fn log(&mut self, level: Level, msg: impl Into<String>) {
        self.out.push(Output::Log(level, msg.into()));
    }

    fn vrrp_list(&self) -> Vec<(IpAddr, bool)> {
        self.vrrp_vips.iter().map(|(a, b)| (*a, *b)).collect()
    }

    /// Builds the snapshot of the current state as the next generation and
    /// asks for it to be published.
    fn publish(&mut self) -> Result<(), CoreError> {
        let snap = self
            .state
            .build(self.generation + 1, &self.net, &self.vrrp_list())
            .map_err(CoreError::Unforwardable)?;
        self.generation += 1;
        self.out.push(Output::Publish(Box::new(snap)));
        self.out.push(Output::ViewChanged);
        Ok(())
    }

    /// Publishes, logging a refusal with `what` was being published.
    fn publish_or_log(&mut self, what: &str) {
        if let Err(e) = self.publish() {
            self.log(Level::Error, format!("{what}: {e}"));
        }
    }

    /// Applies what the health checks decided and publishes; a table the
    /// dataplane cannot take leaves the running one.
    fn health(&mut self, changes: &[Desired]) {
        if changes.is_empty() {
            return;
        }
        let mut t = self.state.table.clone();
        self.reconcile(&mut t, changes, "health check");
        if t == self.state.table {
            return; // already so: nothing to publish
        }
        let before = std::mem::take(&mut self.state.table);
        self.state.replace_table(t);
        if let Err(e) = self.publish() {
            self.log(Level::Error, format!("applying health check changes: {e}"));
            self.state.replace_table(before);
        }
    }

    /// Makes `t` what `changes` say, one exact change each; a change the
    /// table refuses (a server of a service deleted by hand) is logged.
    fn reconcile(&mut self, t: &mut ferrovs_config::ipvs::Table, changes: &[Desired], who: &str) {
        for d in changes {
            if let Some(c) = d.resolve(t) {
                if let Err(e) = c.apply(t) {
                    self.log(Level::Warn, format!("{who}: {e} applying {c:?}"));
                }
            }
        }
    }

    /// Starts VRRP when the configuration has instances, none runs, and
    /// their interfaces have an IPv4 address (with DPDK the addresses
    /// arrive on the exception interfaces after ferrovs created them;
    /// until then the instances hold nothing, as keepalived's do in FAULT
    /// on an interface without an address).
    fn maybe_start_vrrp(&mut self) {
        if self.vrrp_running
            || self.vrrp_starting
            || self.config.vrrp_instances.is_empty()
            || !self.vrrp_interfaces_ready()
        {
            return;
        }
        self.vrrp_starting = true;
        self.out
            .push(Output::StartVrrp(Box::new(self.config.clone())));
    }

    /// Whether every vrrp_instance's interface has an IPv4 address (VRRP
    /// sends its adverts from it).
    pub fn vrrp_interfaces_ready(&self) -> bool {
        self.config.vrrp_instances.iter().all(|vi| {
            let Some(ifname) = &vi.interface else {
                return true; // refused with its error by the driver
            };
            self.net
                .ports
                .iter()
                .find(|p| &p.name == ifname)
                .is_none_or(|p| !p.addrs.is_empty())
        })
    }

    /// Periodic work: rate estimation, forgetting drained servers.
    fn tick(&mut self) {
        self.state.estimate();
        if self.state.reap_draining() > 0 {
            self.publish_or_log("publishing after a change");
        }
        // The new rate estimates.
        self.out.push(Output::ViewChanged);
    }
}
