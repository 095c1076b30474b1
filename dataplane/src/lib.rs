//! ferrovs dataplane: the sans-IO packet core. See DESIGN.md for the layout.

pub mod conn;
pub mod sched;
pub mod service;
pub mod stats;
pub mod wire;
