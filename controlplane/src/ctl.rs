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
    /// A ferrovs operation instead of an ipvsadm command line: "status"
    /// (VRRP instances and health, as JSON).
    #[serde(default)]
    pub op: Option<String>,
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

/// Sends one request to the daemon and waits for its answer.
pub fn call(path: &std::path::Path, req: &CtlRequest) -> std::io::Result<CtlResponse> {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::os::unix::net::UnixStream::connect(path)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let mut line = serde_json::to_string(req).map_err(std::io::Error::other)?;
    line.push('\n');
    s.write_all(line.as_bytes())?;
    let mut r = BufReader::new(s);
    let mut resp = String::new();
    r.read_line(&mut resp)?;
    serde_json::from_str(&resp).map_err(std::io::Error::other)
}

/// Runs one request against the daemon, prints its output and exits with
/// its code; `unreachable` words the error when there is no daemon.
pub fn call_and_exit(
    req: &CtlRequest,
    unreachable: impl FnOnce(&std::path::Path, std::io::Error) -> String,
) -> ! {
    use std::io::Write;
    let path = socket_path(std::path::Path::new(DEFAULT_SOCKET));
    match call(&path, req) {
        Ok(r) => {
            let _ = std::io::stdout().write_all(r.stdout.as_bytes());
            let _ = std::io::stderr().write_all(r.stderr.as_bytes());
            std::process::exit(r.code);
        }
        Err(e) => {
            eprintln!("{}", unreachable(&path, e));
            std::process::exit(1);
        }
    }
}
