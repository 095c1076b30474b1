//! VRRP (RFC 3768 v2, RFC 5798 v3 over IPv4) as keepalived 2.2 runs it.
//!
//! Everything here is sans-IO except the script and notify runners and the
//! I/O glue (`driver`, `io`):
//!
//! - [`packet`]: the advertisement codec and keepalived's receive checks;
//! - [`config`]: a `vrrp_instance` of the configuration translated into
//!   what its state machine runs on;
//! - [`instance`]: one `vrrp_instance` state machine (events and time in,
//!   actions out);
//! - [`sync_group`]: a `vrrp_sync_group` driving its member instances;
//! - [`script`]: `vrrp_script` tracking (rise/fall state, weights) and its
//!   tokio runner;
//! - [`notify`]: notify_master/backup/fault/stop and `notify` scripts;
//! - [`driver`]: runs the configuration's instances on one task: sockets,
//!   clock, VIPs into the dataplane, reload reconciliation;
//! - [`garp`]: gratuitous ARPs paced per interface (`vrrp_garp_interval`)
//!   and held while the worker's queue is full;
//! - [`io`]: the raw VRRP sockets;
//! - [`last_words`]: priority 0 from a panic hook, for a process that dies
//!   while MASTER.
//!
//! The caller (the I/O glue) owns the sockets and the clock: it feeds
//! [`instance::Event`]s with `Instant::now()`, carries out the returned
//! [`instance::Action`]s in order, and calls `handle(Event::TimerFired, now)`
//! once `now >= next_deadline()`.

pub mod config;
pub mod driver;
pub mod garp;
pub mod instance;
pub mod io;
pub mod last_words;
pub mod notify;
pub mod packet;
pub mod script;
pub mod sync_group;

pub use config::{AdvertTarget, ConfigError, InstanceConfig, TrackKind, TrackSpec, TrackStatus};
pub use instance::{Action, Event, Instance, State};
pub use notify::NotifyState;
pub use packet::{Advert, PacketError, RxInfo, Version};
pub use sync_group::{GroupState, SyncAction, SyncGroup};
