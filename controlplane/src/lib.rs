//! ferrovs control plane.
pub mod check;
