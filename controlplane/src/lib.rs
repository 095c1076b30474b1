//! ferrovs control plane.
pub mod check;
pub mod ctl;
pub mod daemon;
pub mod health;
pub mod ipvs_state;
pub mod netinfo;
pub mod rate;
pub mod vrrp_io;
