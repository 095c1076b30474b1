//! The northbound edge: what operators and their tools talk to. The
//! control socket (`ferrovsadm`'s protocol and its server), the HTTP
//! endpoint and its Prometheus metrics. The servers reach the daemon's
//! owner only by messages and read the published view; nothing here
//! depends on the daemon.
pub mod ctl;
pub mod ctl_server;
pub mod http;
pub mod metrics;
