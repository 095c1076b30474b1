//! What the control core refuses, and why.

/// A refused input. The messages are the ones operators already know:
/// libipvs's for table changes, `file:line:col` for a configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// A table change ipvsadm's rules refuse ("Service already exists",
    /// "No such destination", ...).
    #[error("{0}")]
    Table(String),
    /// Something the dataplane cannot forward by (see
    /// [`crate::ipvs_state`]'s `check_service`).
    #[error("{0}")]
    Unforwardable(String),
    /// `-R`'s rules do not parse.
    #[error("line {line}: {message}")]
    Rules { line: usize, message: String },
    /// A configuration file with errors; the first one, with its location.
    #[error("configuration {path} has errors{first}; keeping the running configuration")]
    ConfigErrors { path: String, first: String },
    /// A configuration whose snapshot or VRRP part cannot stand.
    #[error("reload rejected: {0}; keeping the running configuration")]
    ReloadRejected(String),
}
