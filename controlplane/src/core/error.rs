//! What the control core refuses, and why.

use crate::ipvs_state::Unforwardable;
use crate::vrrp::driver::PrepareError;
use ferrovs_config::ipvsadm::{RuleError, TableError};

/// A refused input. The messages are the ones operators already know:
/// libipvs's for table changes, `file:line:col` for a configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// A table change ipvsadm's rules refuse ("Service already exists",
    /// "No such destination", ...).
    #[error(transparent)]
    Table(#[from] TableError),
    /// Something the dataplane cannot forward by (see
    /// [`crate::ipvs_state`]'s `check_service`).
    #[error(transparent)]
    Unforwardable(#[from] Unforwardable),
    /// `-R`'s rules do not parse (`line N: ...`).
    #[error(transparent)]
    Rules(#[from] RuleError),
    /// A configuration file with errors; the first one, with its location.
    #[error("configuration {path} has errors{first}; keeping the running configuration")]
    ConfigErrors { path: String, first: String },
    /// A configuration whose snapshot or VRRP part cannot stand.
    #[error("reload rejected: {0}; keeping the running configuration")]
    ReloadRejected(Rejected),
}

/// What a reload's first phase found that cannot stand.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// The new table's snapshot.
    #[error(transparent)]
    Table(#[from] Unforwardable),
    /// The new file's vrrp_instances.
    #[error(transparent)]
    Vrrp(#[from] PrepareError),
}
