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

/// The largest request line the daemon reads (16 MiB). `ferrovsadm -R`
/// sends its whole rule set in one line: an ipvsadm rule is 40 to 80
/// bytes, so this holds some 200,000 rules, far beyond the largest IPVS
/// tables in use, while a runaway or hostile client cannot make the daemon
/// buffer and parse without end.
pub const MAX_REQUEST: usize = 16 << 20;

/// The exit code of a client the daemon refuses for its credentials:
/// ipvsadm's when it may not talk to the kernel (`fail(2, ...)`).
pub const EXIT_PERMISSION: i32 = 2;

/// Why a client without root or CAP_NET_ADMIN is turned away.
pub const PERMISSION_DENIED: &str =
    "permission denied: the control socket needs root or CAP_NET_ADMIN";

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
    /// Set when the daemon turned the client away without running its
    /// request (credentials, size, too many connections, idle): the
    /// reason, which the client prints after its own name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

impl CtlResponse {
    pub fn ok(stdout: String) -> CtlResponse {
        CtlResponse {
            code: 0,
            stdout,
            stderr: String::new(),
            refused: None,
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
            refused: None,
        }
    }
    /// The daemon refuses the client: `reason` says why, in words a user
    /// can act on (stderr carries it too, for older clients).
    pub fn refused(code: i32, reason: impl Into<String>) -> CtlResponse {
        let reason = reason.into();
        CtlResponse {
            refused: Some(reason.clone()),
            ..CtlResponse::err(code, format!("ferrovs: {reason}"))
        }
    }
}

/// Sends one request to the daemon and waits for its answer.
pub fn call(path: &std::path::Path, req: &CtlRequest) -> std::io::Result<CtlResponse> {
    use std::io::{BufRead, BufReader, Write};
    let mut line = serde_json::to_string(req).map_err(std::io::Error::other)?;
    line.push('\n');
    if line.len() > MAX_REQUEST {
        return Ok(CtlResponse::refused(1, too_large(line.len(), MAX_REQUEST)));
    }
    let mut s = std::os::unix::net::UnixStream::connect(path)?;
    // An upgrade answers once the new process is ready (its tables made).
    let wait = if req.op.as_deref() == Some("upgrade") {
        90
    } else {
        10
    };
    s.set_read_timeout(Some(std::time::Duration::from_secs(wait)))?;
    // A daemon that refuses us answers and closes without reading: its
    // answer is worth more than the broken pipe.
    let sent = s.write_all(line.as_bytes());
    let mut r = BufReader::new(s);
    let mut resp = String::new();
    match r.read_line(&mut resp) {
        Ok(n) if n > 0 => serde_json::from_str(&resp).map_err(std::io::Error::other),
        Ok(_) => Err(sent.err().unwrap_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the daemon closed the connection without an answer",
            )
        })),
        Err(e) => Err(sent.err().unwrap_or(e)),
    }
}

/// The refusal of a request line of `len` bytes when `limit` is the most.
pub fn too_large(len: usize, limit: usize) -> String {
    let limit = if limit >= 1 << 20 && limit.is_multiple_of(1 << 20) {
        format!("{} MiB", limit >> 20)
    } else {
        format!("{limit} bytes")
    };
    format!("request too large ({len} bytes or more; the limit is {limit})")
}

/// This program's name, for its error messages.
fn program() -> String {
    std::env::args_os()
        .next()
        .as_deref()
        .map(std::path::Path::new)
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "ferrovsadm".into())
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
            match &r.refused {
                Some(why) => eprintln!("{}: {why}", program()),
                None => {
                    let _ = std::io::stderr().write_all(r.stderr.as_bytes());
                }
            }
            std::process::exit(r.code);
        }
        // The socket's mode keeps out whoever is not root (or in the
        // configured group): say so as the daemon would.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            eprintln!("{}: {PERMISSION_DENIED} ({})", program(), path.display());
            std::process::exit(EXIT_PERMISSION);
        }
        Err(e) => {
            eprintln!("{}", unreachable(&path, e));
            std::process::exit(1);
        }
    }
}
