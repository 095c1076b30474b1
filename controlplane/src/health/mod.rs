//! Real-server health checking with keepalived 2.2's semantics and
//! defaults: TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK and DNS_CHECK, with
//! retries, inhibit_on_failure, quorum / hysteresis / sorry_server, alpha
//! and omega, notify scripts and smtp_alert mails.
//!
//! - [`service`]: the decisions, without I/O (keepalived's ipwrapper.c):
//!   results in, table changes (the core's `TableChange`), log lines, scripts and mails out.
//! - [`checker`]: one checker's retry counting (the checkers' epilogs).
//! - [`manager`]: the tokio glue and the API the daemon drives.
//! - [`tcp`], [`http`] (also SSL_GET), [`dns`], [`misc`]: the probes.
//! - [`smtp`]: alert mails; [`net`]: checker sockets; [`names`]:
//!   keepalived's way of naming servers in messages.
pub mod checker;
pub mod dns;
pub mod http;
pub mod manager;
pub mod misc;
pub mod names;
pub mod net;
pub mod service;
pub mod smtp;
pub mod tcp;

pub use manager::{HealthEvent, HealthHandle, HealthManager};
pub use service::{Change, RealServerStatus, VirtualServerStatus};
