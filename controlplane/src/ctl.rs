//! The control socket: `ferrovsadm` sends its command line (and, for `-R`,
//! its standard input) as one JSON line; the daemon runs it as ipvsadm
//! would and answers with the output and exit code.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where the control socket lives: `FERROVS_CTL`, else the given default.
pub fn socket_path(default: &std::path::Path) -> PathBuf {
    std::env::var_os("FERROVS_CTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| default.to_path_buf())
}

pub const DEFAULT_SOCKET: &str = "/run/ferrovs/ctl.sock";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CtlRequest {
    pub argv: Vec<String>,
    #[serde(default)]
    pub stdin: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CtlResponse {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CtlResponse {
    pub fn ok(stdout: String) -> CtlResponse {
        CtlResponse {
            code: 0,
            stdout,
            stderr: String::new(),
        }
    }
    pub fn err(code: i32, msg: impl Into<String>) -> CtlResponse {
        let mut m = msg.into();
        if !m.ends_with('\n') {
            m.push('\n');
        }
        CtlResponse {
            code,
            stdout: String::new(),
            stderr: m,
        }
    }
}
