//! ferrovs control plane.
