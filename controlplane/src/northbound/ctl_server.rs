//! The control socket's server side, locked down for root: the directory
//! and the socket get explicit modes (0700 / 0600, or 0750 / 0660 and a
//! group with `control_socket_group`), whatever the process's umask; a
//! lock file keeps a second ferrovs off a socket that one serves; every
//! client's credentials are checked (`SO_PEERCRED`: root, the daemon's own
//! user, a process with CAP_NET_ADMIN, or a member of the configured
//! group); a request line is bounded ([`MAX_REQUEST`]), so are the open
//! connections and the time a client may take to send a line. A refused
//! client gets a [`CtlResponse::refused`] that says why.

use crate::northbound::ctl::{
    too_large, CtlRequest, CtlResponse, EXIT_PERMISSION, MAX_REQUEST, PERMISSION_DENIED,
};
use crate::pid_lock::{holder, LockError, PidLock};
use std::fs;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tracing::{error, info, warn};

/// Why the control socket cannot be set up, or a client may not use it.
/// The text says which path and which step, as the operator needs it.
#[derive(Debug, thiserror::Error)]
pub enum CtlSocketError {
    /// A client without the right to use the socket (`uid N, pid P`).
    #[error("{} ({who})", PERMISSION_DENIED)]
    Denied { who: String },
    #[error("control_socket_group: no group named '{0}'")]
    NoGroup(String),
    #[error("control_socket_group {name}: {source}")]
    Group {
        name: String,
        source: nix::errno::Errno,
    },
    /// A file system or socket step (`context` names it and the path).
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// The same, for a step made through `nix`.
    #[error("{context}: {source}")]
    Sys {
        context: String,
        source: nix::errno::Errno,
    },
    #[error("control socket directory {} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// The lock is held: `who` is another ferrovs, with its pid if known.
    #[error("{who} serves the control socket {}: stop it first, or give this one another control_socket", .path.display())]
    Locked { who: String, path: PathBuf },
    #[error("control socket {}: the path exists and is not a socket; not replacing it", .0.display())]
    NotASocket(PathBuf),
    #[error("control socket {}: a running ferrovs answers on it; stop it first, or give this one another control_socket", .0.display())]
    Answered(PathBuf),
    #[error("the control socket is served already")]
    AlreadyServed,
}

/// `context: source` for an I/O step.
fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CtlSocketError {
    let context = context.into();
    move |source| CtlSocketError::Io { context, source }
}

/// `context: source` for a step made through `nix`.
fn sys_err(context: impl Into<String>) -> impl FnOnce(nix::errno::Errno) -> CtlSocketError {
    let context = context.into();
    move |source| CtlSocketError::Sys { context, source }
}

/// Runs one request (on a blocking thread: it may wait for the workers).
pub type Handler = Arc<dyn Fn(CtlRequest) -> CtlResponse + Send + Sync>;

/// CAP_NET_ADMIN's bit in a capability set (linux/capability.h), the
/// capability ipvsadm needs to change IPVS.
const CAP_NET_ADMIN: u32 = 12;

/// What a client may do before it is closed.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Bytes in one request line, newline included.
    pub max_request: usize,
    /// Control connections open at once (each may hold a request of
    /// `max_request` bytes): a client beyond it is refused at once.
    pub max_conns: usize,
    /// Time a client has to send a complete request line (and to take
    /// its answer); then it is closed.
    pub idle: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_request: MAX_REQUEST,
            max_conns: 64,
            idle: Duration::from_secs(10),
        }
    }
}

/// Who may use the socket besides root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// The daemon's own user (root, or the user a unit runs it as).
    pub own_uid: u32,
    /// `control_socket_group`.
    pub group: Option<u32>,
}

impl Access {
    /// The socket's mode and its directory's.
    pub fn modes(&self) -> (u32, u32) {
        match self.group {
            Some(_) => (0o660, 0o750),
            None => (0o600, 0o700),
        }
    }
}

/// A client's credentials from `SO_PEERCRED` (taken when it connected).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

/// What `/proc/PID/status` says of a client process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcStatus {
    pub euid: Option<u32>,
    pub groups: Vec<u32>,
    pub cap_eff: Option<u64>,
}

impl ProcStatus {
    pub fn parse(text: &str) -> ProcStatus {
        let mut out = ProcStatus::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let mut fields = value.split_whitespace();
            match key {
                // real, effective, saved, filesystem
                "Uid" => out.euid = fields.nth(1).and_then(|v| v.parse().ok()),
                "Groups" => out.groups = fields.filter_map(|v| v.parse().ok()).collect(),
                "CapEff" => {
                    out.cap_eff = fields.next().and_then(|v| u64::from_str_radix(v, 16).ok())
                }
                _ => {}
            }
        }
        out
    }

    fn read(pid: i32) -> Option<ProcStatus> {
        fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .map(|t| ProcStatus::parse(&t))
    }
}

/// Whether `peer` may use the control socket. Root and the daemon's own
/// user always may. Anyone else needs CAP_NET_ADMIN in its effective set
/// or membership of the configured group, read from `/proc/PID/status`,
/// which must still show the user that connected (a process that exited
/// and whose pid went to another user's process proves nothing).
pub fn authorize(
    access: &Access,
    peer: &Peer,
    status: Option<&ProcStatus>,
) -> Result<(), CtlSocketError> {
    if peer.uid == 0 || peer.uid == access.own_uid {
        return Ok(());
    }
    if access.group == Some(peer.gid) {
        return Ok(());
    }
    let who = match peer.pid {
        Some(pid) => format!("uid {}, pid {pid}", peer.uid),
        None => format!("uid {}", peer.uid),
    };
    let Some(st) = status.filter(|s| s.euid == Some(peer.uid)) else {
        return Err(CtlSocketError::Denied { who });
    };
    if st.cap_eff.is_some_and(|c| c & (1 << CAP_NET_ADMIN) != 0) {
        return Ok(());
    }
    if access.group.is_some_and(|g| st.groups.contains(&g)) {
        return Ok(());
    }
    Err(CtlSocketError::Denied { who })
}

/// `control_socket_group`: a group name or a numeric gid.
pub fn resolve_group(name: &str) -> Result<u32, CtlSocketError> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(CtlSocketError::NoGroup(name.to_string())),
        Err(source) => Err(CtlSocketError::Group {
            name: name.to_string(),
            source,
        }),
    }
}

/// The bound control socket: the listening socket until [`serve`] takes
/// it, and the lock that says this process serves it. Dropping it removes
/// the socket (if it is still the one this process bound) and releases
/// the lock.
///
/// [`serve`]: CtlSocket::serve
pub struct CtlSocket {
    path: PathBuf,
    access: Access,
    listener: Option<std::os::unix::net::UnixListener>,
    /// The socket file's (device, inode), to remove only our own.
    ino: (u64, u64),
    _lock: PidLock,
}

impl CtlSocket {
    /// Binds the control socket at `path` for root and, with `group`, that
    /// group. Refuses when another ferrovs serves it.
    pub fn open(path: &Path, group: Option<&str>) -> Result<CtlSocket, CtlSocketError> {
        let access = Access {
            own_uid: nix::unistd::geteuid().as_raw(),
            group: group.map(resolve_group).transpose()?,
        };
        Self::open_with(path, access)
    }

    pub fn open_with(path: &Path, access: Access) -> Result<CtlSocket, CtlSocketError> {
        let (sock_mode, dir_mode) = access.modes();
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        prepare_dir(dir, dir_mode, access.group)?;
        let lock = take_lock(path)?;
        remove_stale(path)?;
        let sock = bind(path, sock_mode, access.group)?;
        let m = fs::symlink_metadata(path).map_err(io_err(path.display().to_string()))?;
        Ok(CtlSocket {
            path: path.to_path_buf(),
            access,
            listener: Some(sock),
            ino: (m.dev(), m.ino()),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts serving clients on the current tokio runtime.
    pub fn serve(&mut self, handler: Handler) -> Result<(), CtlSocketError> {
        self.serve_with(handler, Limits::default())
    }

    pub fn serve_with(&mut self, handler: Handler, limits: Limits) -> Result<(), CtlSocketError> {
        let listener = self.listener.take().ok_or(CtlSocketError::AlreadyServed)?;
        let listener = UnixListener::from_std(listener)
            .map_err(io_err(format!("control socket {}", self.path.display())))?;
        tokio::spawn(accept_loop(listener, self.access, limits, handler));
        Ok(())
    }
}

impl Drop for CtlSocket {
    fn drop(&mut self) {
        let ours = fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.ino);
        if ours {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Creates the socket's directory with `mode` (and `group`) when it is
/// missing. An existing one keeps its owner and mode, except that write
/// access for others without the sticky bit is taken away when it is
/// ours (anyone could replace the socket in it).
fn prepare_dir(dir: &Path, mode: u32, group: Option<u32>) -> Result<(), CtlSocketError> {
    let shown = dir.display();
    match fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(parent)
                    .map_err(io_err(format!("creating {}", parent.display())))?;
            }
            // Created with at most `mode` (the umask only takes bits
            // away), then given exactly `mode`: never more open than meant.
            match fs::DirBuilder::new().mode(mode & 0o700).create(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return prepare_dir(dir, mode, group)
                }
                Err(e) => return Err(io_err(format!("creating {shown}"))(e)),
            }
            if let Some(g) = group {
                nix::unistd::chown(dir, None, Some(nix::unistd::Gid::from_raw(g)))
                    .map_err(sys_err(format!("chgrp {g} {shown}")))?;
            }
            set_mode(dir, mode)
        }
        Err(e) => Err(io_err(format!("control socket directory {shown}"))(e)),
        Ok(m) if !m.is_dir() => Err(CtlSocketError::NotADirectory(dir.to_path_buf())),
        Ok(m) => {
            let cur = m.mode() & 0o7777;
            if cur & 0o022 != 0 && cur & 0o1000 == 0 {
                if m.uid() == nix::unistd::geteuid().as_raw() {
                    warn!(
                        "control socket directory {shown} was writable by other users (mode {cur:04o}): now {:04o}",
                        cur & !0o022
                    );
                    set_mode(dir, cur & !0o022)?;
                } else {
                    warn!(
                        "control socket directory {shown} (mode {cur:04o}) is writable by users other than its owner {}",
                        m.uid()
                    );
                }
            }
            if let Some(g) = group {
                let reach = (m.gid() == g && cur & 0o010 != 0) || cur & 0o001 != 0;
                if !reach {
                    warn!(
                        "members of group {g} cannot reach the control socket through {shown} (mode {cur:04o}, group {})",
                        m.gid()
                    );
                }
            }
            Ok(())
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), CtlSocketError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(io_err(format!("chmod {mode:04o} {}", path.display())))
}

/// The lock file beside the socket (`ctl.sock.lock`), held for the life of
/// the process: a second ferrovs for the same socket stops here, before
/// it touches the ports, and names the first one's pid.
fn take_lock(path: &Path) -> Result<PidLock, CtlSocketError> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    crate::pid_lock::acquire(Path::new(&name)).map_err(|e| match e {
        LockError::Held(pid) => CtlSocketError::Locked {
            who: holder(&pid),
            path: path.to_path_buf(),
        },
        LockError::Io { path, err } => CtlSocketError::Io {
            context: format!("lock file {path}"),
            source: err,
        },
        LockError::Lock { path, err } => CtlSocketError::Sys {
            context: format!("locking {path}"),
            source: err,
        },
    })
}

/// A socket left by a process that was killed is removed; one that a live
/// process answers on is not, nor is anything that is not a socket.
fn remove_stale(path: &Path) -> Result<(), CtlSocketError> {
    let shown = path.display();
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(format!("control socket {shown}"))(e)),
        Ok(m) if !m.file_type().is_socket() => Err(CtlSocketError::NotASocket(path.to_path_buf())),
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => Err(CtlSocketError::Answered(path.to_path_buf())),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                info!("removing the stale control socket {shown}");
                fs::remove_file(path).map_err(io_err(format!("removing {shown}")))
            }
            Err(e) => Err(io_err(format!("control socket {shown}"))(e)),
        },
    }
}

/// Binds and listens. The socket's mode is set on it before `bind` (Linux
/// gives the new file the socket's mode, less the umask), so the file is
/// never more open than `mode`, and set again on the file after, so that
/// the umask cannot leave it less open either.
fn bind(
    path: &Path,
    mode: u32,
    group: Option<u32>,
) -> Result<std::os::unix::net::UnixListener, CtlSocketError> {
    use nix::sys::stat::{fchmod, Mode};
    use socket2::{Domain, SockAddr, Socket, Type};
    let step = |what: &str| format!("control socket {}: {what}", path.display());
    let sock = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(io_err(step("socket")))?;
    fchmod(&sock, Mode::from_bits_truncate(mode & 0o600)).map_err(sys_err(step("fchmod")))?;
    let addr = SockAddr::unix(path).map_err(io_err(step("address")))?;
    sock.bind(&addr).map_err(io_err(step("bind")))?;
    if let Some(g) = group {
        std::os::unix::fs::lchown(path, None, Some(g)).map_err(io_err(step("chgrp")))?;
    }
    set_mode(path, mode)?;
    sock.listen(128).map_err(io_err(step("listen")))?;
    sock.set_nonblocking(true)
        .map_err(io_err(step("non-blocking")))?;
    Ok(std::os::unix::net::UnixListener::from(OwnedFd::from(sock)))
}

async fn accept_loop(listener: UnixListener, access: Access, limits: Limits, handler: Handler) {
    let permits = Arc::new(Semaphore::new(limits.max_conns));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors, most likely: let some close.
                error!("control socket accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Credentials first: whoever may not use the socket holds no
        // connection slot.
        let peer = match stream.peer_cred() {
            Ok(c) => Peer {
                uid: c.uid(),
                gid: c.gid(),
                pid: c.pid(),
            },
            Err(e) => {
                warn!("control socket: peer credentials: {e}");
                continue;
            }
        };
        let status = peer.pid.and_then(ProcStatus::read);
        if let Err(why) = authorize(&access, &peer, status.as_ref()) {
            warn!("control socket: refused a client: {why}");
            refuse(
                stream,
                CtlResponse::refused(EXIT_PERMISSION, why.to_string()),
            );
            continue;
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            warn!(
                "control socket: refused a client (uid {}): {} connections open",
                peer.uid, limits.max_conns
            );
            refuse(
                stream,
                CtlResponse::refused(
                    1,
                    format!(
                        "too many control connections ({} open); try again later",
                        limits.max_conns
                    ),
                ),
            );
            continue;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            if let Err(e) = handle_client(stream, handler, limits).await {
                warn!("control client: {e}");
            }
            drop(permit);
        });
    }
}

fn line_of(resp: &CtlResponse) -> Vec<u8> {
    let mut out = serde_json::to_vec(resp).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Answers without waiting and closes: the answer is small and the
/// socket's buffer new, so it goes at once or not at all.
fn refuse(stream: UnixStream, resp: CtlResponse) {
    if let Ok(s) = stream.into_std() {
        let _ = (&s).write_all(&line_of(&resp));
    }
}

async fn handle_client(
    stream: UnixStream,
    handler: Handler,
    limits: Limits,
) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = Vec::new();
    loop {
        line.clear();
        // At most one byte past the limit is buffered: enough to know it
        // was passed.
        let mut bounded = (&mut r).take(limits.max_request as u64 + 1);
        let read = bounded.read_until(b'\n', &mut line);
        let n = match tokio::time::timeout(limits.idle, read).await {
            Ok(n) => n?,
            Err(_) => {
                if !line.is_empty() {
                    let resp = CtlResponse::refused(
                        1,
                        format!(
                            "no complete request in {} s; closing the connection",
                            limits.idle.as_secs_f32()
                        ),
                    );
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), w.write_all(&line_of(&resp)))
                            .await;
                }
                return Ok(());
            }
        };
        if n == 0 {
            return Ok(());
        }
        if line.len() > limits.max_request {
            let resp = CtlResponse::refused(1, too_large(line.len(), limits.max_request));
            warn!(
                "control socket: refused a request of more than {} bytes",
                limits.max_request
            );
            let _ =
                tokio::time::timeout(Duration::from_secs(1), w.write_all(&line_of(&resp))).await;
            return Ok(());
        }
        // Parsing a large request, running it and encoding a large answer
        // (`-Lnc` of a million connections is ~100 MB) happen off the
        // runtime's thread, which VRRP shares.
        let h = handler.clone();
        let line = std::mem::take(&mut line);
        let out = tokio::task::spawn_blocking(move || {
            let resp = match serde_json::from_slice::<CtlRequest>(&line) {
                Ok(req) => h(req),
                Err(e) => CtlResponse::err(2, format!("bad request: {e}")),
            };
            line_of(&resp)
        })
        .await
        .unwrap_or_else(|e| line_of(&CtlResponse::err(1, format!("internal error: {e}"))));
        match tokio::time::timeout(limits.idle, w.write_all(&out)).await {
            Ok(r) => r?,
            Err(_) => return Ok(()), // a client that does not read its answer
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader as StdBufReader, Read};
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixStream as StdUnixStream;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const STATUS: &str = "Name:\tx\nUid:\t1000\t1000\t1000\t1000\nGid:\t100\t100\t100\t100\nGroups:\t24 27 990 \nCapInh:\t0000000000000000\nCapEff:\t0000000000001000\n";

    fn access(group: Option<u32>) -> Access {
        Access {
            own_uid: 4242,
            group,
        }
    }

    fn peer(uid: u32, gid: u32) -> Peer {
        Peer {
            uid,
            gid,
            pid: Some(77),
        }
    }

    #[test]
    fn parses_proc_status() {
        let st = ProcStatus::parse(STATUS);
        assert_eq!(st.euid, Some(1000));
        assert_eq!(st.groups, [24, 27, 990]);
        assert_eq!(st.cap_eff, Some(1 << CAP_NET_ADMIN));
        assert_eq!(ProcStatus::parse("Groups:\n"), ProcStatus::default());
    }

    #[test]
    fn root_and_own_user_pass_without_proc() {
        assert!(authorize(&access(None), &peer(0, 0), None).is_ok());
        assert!(authorize(&access(None), &peer(4242, 5), None).is_ok());
    }

    #[test]
    fn others_need_cap_net_admin_or_the_group() {
        let nobody = Peer {
            uid: 65534,
            gid: 65534,
            pid: Some(9),
        };
        let plain = ProcStatus {
            euid: Some(65534),
            groups: vec![],
            cap_eff: Some(0),
        };
        let e = authorize(&access(None), &nobody, Some(&plain))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(PERMISSION_DENIED), "{e}");
        assert!(e.contains("uid 65534, pid 9"), "{e}");
        assert!(
            authorize(&access(None), &nobody, None).is_err(),
            "no /proc entry"
        );
        // CAP_NET_ADMIN alone: yes; the other capabilities: no.
        let admin = ProcStatus {
            cap_eff: Some(1 << CAP_NET_ADMIN),
            ..plain.clone()
        };
        assert!(authorize(&access(None), &nobody, Some(&admin)).is_ok());
        let others = ProcStatus {
            cap_eff: Some(!(1 << CAP_NET_ADMIN)),
            ..plain.clone()
        };
        assert!(authorize(&access(None), &nobody, Some(&others)).is_err());
        // The group: as primary group (from SO_PEERCRED) or supplementary.
        assert!(authorize(&access(Some(65534)), &nobody, None).is_ok());
        let member = ProcStatus {
            groups: vec![3, 990],
            ..plain.clone()
        };
        assert!(authorize(&access(Some(990)), &nobody, Some(&member)).is_ok());
        assert!(authorize(&access(Some(991)), &nobody, Some(&member)).is_err());
        assert!(authorize(&access(None), &nobody, Some(&member)).is_err());
    }

    #[test]
    fn proc_of_another_user_proves_nothing() {
        // The pid now belongs to a root process with every capability.
        let reused = ProcStatus {
            euid: Some(0),
            groups: vec![990],
            cap_eff: Some(u64::MAX),
        };
        assert!(authorize(&access(Some(990)), &peer(1000, 100), Some(&reused)).is_err());
    }

    #[test]
    fn modes_follow_the_group() {
        assert_eq!(access(None).modes(), (0o600, 0o700));
        assert_eq!(access(Some(5)).modes(), (0o660, 0o750));
    }

    #[test]
    fn numeric_and_named_groups() {
        assert_eq!(resolve_group("990").ok(), Some(990));
        assert_eq!(resolve_group("root").ok(), Some(0));
        assert_eq!(
            resolve_group("no-such-group-fvs").unwrap_err().to_string(),
            "control_socket_group: no group named 'no-such-group-fvs'"
        );
    }

    fn scratch() -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "ferrovs-ctl-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        p
    }

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    fn me() -> Access {
        Access {
            own_uid: nix::unistd::geteuid().as_raw(),
            group: None,
        }
    }

    #[test]
    fn creates_dir_and_socket_with_their_modes_and_cleans_up() {
        let base = scratch();
        let path = base.join("run/ferrovs/ctl.sock");
        let s = CtlSocket::open_with(&path, me()).unwrap();
        assert_eq!(mode(&base.join("run/ferrovs")), 0o700);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&base.join("run/ferrovs/ctl.sock.lock")), 0o600);
        let pid = fs::read_to_string(base.join("run/ferrovs/ctl.sock.lock")).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
        drop(s);
        assert!(!path.exists(), "socket removed at the end");
        // With a group: 0660 and 0750, and the group on both.
        let gid = nix::unistd::getegid().as_raw();
        let path = base.join("grp/ctl.sock");
        let s = CtlSocket::open_with(
            &path,
            Access {
                group: Some(gid),
                ..me()
            },
        )
        .unwrap();
        assert_eq!(mode(&base.join("grp")), 0o750);
        assert_eq!(mode(&path), 0o660);
        assert_eq!(fs::metadata(&path).unwrap().gid(), gid);
        drop(s);
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn an_open_directory_of_ours_is_tightened() {
        let base = scratch();
        fs::create_dir_all(&base).unwrap();
        set_mode(&base, 0o777).unwrap();
        let s = CtlSocket::open_with(&base.join("ctl.sock"), me()).unwrap();
        assert_eq!(mode(&base), 0o755);
        drop(s);
        // Sticky (as /tmp): left alone.
        set_mode(&base, 0o1777).unwrap();
        let s = CtlSocket::open_with(&base.join("ctl.sock"), me()).unwrap();
        assert_eq!(mode(&base), 0o1777);
        drop(s);
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_second_instance_is_refused_and_a_stale_socket_replaced() {
        let base = scratch();
        let path = base.join("ctl.sock");
        let first = CtlSocket::open_with(&path, me()).unwrap();
        let e = CtlSocket::open_with(&path, me()).err().unwrap().to_string();
        assert!(
            e.contains(&format!("another ferrovs (pid {})", std::process::id())),
            "{e}"
        );
        assert!(path.exists(), "the first one's socket is left alone");
        drop(first);
        // A live listener without the lock (an older ferrovs): refused too.
        let live = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let e = CtlSocket::open_with(&path, me()).err().unwrap().to_string();
        assert!(e.contains("a running ferrovs answers on it"), "{e}");
        assert!(path.exists());
        // The same file once nobody listens (a killed process): replaced.
        drop(live);
        let s = CtlSocket::open_with(&path, me()).unwrap();
        assert!(StdUnixStream::connect(&path).is_ok());
        drop(s);
        // Not a socket: never removed.
        fs::write(&path, "precious").unwrap();
        let e = CtlSocket::open_with(&path, me()).err().unwrap().to_string();
        assert!(e.contains("not a socket"), "{e}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "precious");
        fs::remove_dir_all(&base).unwrap();
    }

    /// Serves `path` on a runtime of its own thread, with a handler that
    /// counts its calls and echoes argv.
    fn start(path: &Path, limits: Limits) -> (Arc<AtomicUsize>, CtlSocket) {
        let mut s = CtlSocket::open_with(path, me()).unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let handler: Handler = Arc::new(move |req: CtlRequest| {
            c.fetch_add(1, Ordering::SeqCst);
            CtlResponse::ok(req.argv.join(" "))
        });
        let listener = s.listener.take().unwrap();
        let access = s.access;
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = UnixListener::from_std(listener).unwrap();
                accept_loop(l, access, limits, handler).await
            })
        });
        (calls, s)
    }

    fn answer(s: &StdUnixStream) -> CtlResponse {
        let mut line = String::new();
        StdBufReader::new(s).read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }

    fn request(argv: &[&str]) -> Vec<u8> {
        let mut v = serde_json::to_vec(&CtlRequest {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            stdin: None,
            op: None,
        })
        .unwrap();
        v.push(b'\n');
        v
    }

    #[test]
    fn serves_requests_and_refuses_a_line_too_large() {
        let base = scratch();
        let path = base.join("ctl.sock");
        let limits = Limits {
            max_request: 4096,
            ..Limits::default()
        };
        let (calls, _s) = start(&path, limits);
        let r = crate::northbound::ctl::call(
            &path,
            &CtlRequest {
                argv: vec!["-L".into(), "-n".into()],
                stdin: None,
                op: None,
            },
        )
        .unwrap();
        assert_eq!((r.code, r.stdout.as_str(), r.refused), (0, "-L -n", None));
        // Two requests on one connection.
        let mut c = StdUnixStream::connect(&path).unwrap();
        c.write_all(&request(&["a"])).unwrap();
        assert_eq!(answer(&c).stdout, "a");
        c.write_all(&request(&["b"])).unwrap();
        assert_eq!(answer(&c).stdout, "b");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        // A line of 10,000 bytes: refused after 4,097, never parsed.
        let mut c = StdUnixStream::connect(&path).unwrap();
        let big = format!("{{\"argv\":[\"{}\"]}}\n", "x".repeat(10_000));
        let _ = c.write_all(big.as_bytes());
        let r = answer(&c);
        assert_eq!(r.code, 1);
        let why = r.refused.unwrap();
        assert!(why.starts_with("request too large"), "{why}");
        assert!(why.contains("4096 bytes"), "{why}");
        assert_eq!(calls.load(Ordering::SeqCst), 3, "not run");
        // Exactly at the limit: served.
        let argv = "y".repeat(4096 - request(&[""]).len());
        let line = request(&[&argv]);
        assert_eq!(line.len(), 4096);
        let mut c = StdUnixStream::connect(&path).unwrap();
        c.write_all(&line).unwrap();
        assert_eq!(answer(&c).stdout, argv);
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn caps_connections_and_closes_idle_clients() {
        let base = scratch();
        let path = base.join("ctl.sock");
        let limits = Limits {
            max_conns: 2,
            idle: Duration::from_millis(600),
            ..Limits::default()
        };
        let (calls, _s) = start(&path, limits);
        let a = StdUnixStream::connect(&path).unwrap();
        let mut b = StdUnixStream::connect(&path).unwrap();
        b.write_all(b"{\"argv\":").unwrap(); // half a request
        let mut c = StdUnixStream::connect(&path).unwrap();
        let _ = c.write_all(&request(&["c"]));
        let r = answer(&c);
        let why = r.refused.unwrap();
        assert!(
            why.contains("too many control connections (2 open)"),
            "{why}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        // The idle ones are closed, the half-sent one with a word why,
        // and their slots come back.
        let t = std::time::Instant::now();
        let why = answer(&b).refused.unwrap();
        assert!(why.starts_with("no complete request in"), "{why}");
        let mut rest = Vec::new();
        (&a).read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "closed without a word: nothing was asked");
        assert!(t.elapsed() < Duration::from_secs(3));
        let mut d = StdUnixStream::connect(&path).unwrap();
        d.write_all(&request(&["d"])).unwrap();
        assert_eq!(answer(&d).stdout, "d");
        fs::remove_dir_all(&base).unwrap();
    }
}
