//! ferrovs dataplane: the sans-IO packet core. See DESIGN.md for the layout.

pub mod conn;
pub mod counters;
pub mod fastpath;
pub mod frag;
pub mod fwd;
pub mod neigh;
pub mod persist;
pub mod port;
pub mod route;
pub mod sched;
pub mod service;
pub mod snapshot;
pub mod stats;
pub mod sync;
pub mod wire;
pub mod worker;
