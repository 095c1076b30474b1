//! Lock files that name their holder: a `flock` held for the life of the
//! process (the kernel drops it when the process dies, SIGKILL included,
//! so a crash never leaves a stale lock), with the holder's pid inside for
//! the message the next process prints.

use nix::fcntl::{Flock, FlockArg};
use std::fs::{self, File};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// A held lock; dropping it releases it.
pub type PidLock = Flock<File>;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live process holds it; its pid, if it wrote one.
    #[error("held by {}", holder(.0))]
    Held(Option<u32>),
    #[error("lock file {path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error("locking {path}: {err}")]
    Lock {
        path: String,
        err: nix::errno::Errno,
    },
}

/// "another ferrovs (pid N)", or without the pid when it wrote none.
pub fn holder(pid: &Option<u32>) -> String {
    match pid {
        Some(p) => format!("another ferrovs (pid {p})"),
        None => "another ferrovs".to_string(),
    }
}

/// Takes the lock at `path` (created 0600, never through a symlink) and
/// writes our pid into it, or says who holds it.
pub fn acquire(path: &Path) -> Result<PidLock, LockError> {
    let shown = || path.display().to_string();
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(|err| LockError::Io { path: shown(), err })?;
    let mut lock = match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((mut f, nix::errno::Errno::EWOULDBLOCK)) => {
            let mut pid = String::new();
            let _ = f.read_to_string(&mut pid);
            return Err(LockError::Held(pid.trim().parse().ok()));
        }
        Err((_, err)) => return Err(LockError::Lock { path: shown(), err }),
    };
    lock.set_len(0)
        .and_then(|_| lock.rewind())
        .and_then(|_| writeln!(lock, "{}", std::process::id()))
        .map_err(|err| LockError::Io { path: shown(), err })?;
    Ok(lock)
}

/// Where the per-interface locks live.
pub const PORT_LOCK_DIR: &str = "/run/ferrovs/ports";

/// Why the ports could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum PortLockError {
    #[error("{} already serves interface {iface} in this network namespace: stop it first", holder(.pid))]
    Held { pid: Option<u32>, iface: String },
    #[error("{path}: {err}")]
    Dir { path: String, err: std::io::Error },
    #[error("/proc/self/ns/net: {0}")]
    Netns(std::io::Error),
    #[error(transparent)]
    Lock(LockError),
}

/// One ferrovs per interface of a network namespace: a second `ferrovs
/// run` with another control socket would take the same ports, and both
/// would answer ARP for the VIPs and forward. The lock is named by the
/// namespace (its inode, so that directors in separate namespaces with
/// like-named interfaces do not collide) and the interface.
pub fn lock_ports(dir: &Path, ifaces: &[String]) -> Result<Vec<PidLock>, PortLockError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|err| PortLockError::Dir {
            path: dir.display().to_string(),
            err,
        })?;
    let ns = fs::metadata("/proc/self/ns/net")
        .map(|m| m.ino())
        .map_err(PortLockError::Netns)?;
    ifaces
        .iter()
        .map(|i| {
            let file = format!("{ns}-{}.lock", i.replace('/', "_"));
            acquire(&dir.join(file)).map_err(|e| match e {
                LockError::Held(pid) => PortLockError::Held {
                    pid,
                    iface: i.clone(),
                },
                e => PortLockError::Lock(e),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_told_the_first_ones_pid() {
        let dir = std::env::temp_dir().join(format!("ferrovs-pidlock-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.lock");
        let first = acquire(&p).unwrap();
        match acquire(&p) {
            Err(LockError::Held(Some(pid))) => assert_eq!(pid, std::process::id()),
            other => panic!("{other:?}"),
        }
        drop(first);
        assert!(acquire(&p).is_ok());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ports_are_locked_one_by_one() {
        let dir = std::env::temp_dir().join(format!("ferrovs-portlock-{}", std::process::id()));
        let a = vec!["eth0".to_string(), "eth1".to_string()];
        let held = lock_ports(&dir, &a).unwrap();
        let e = lock_ports(&dir, &["eth1".to_string()])
            .unwrap_err()
            .to_string();
        let me = std::process::id();
        assert_eq!(
            e,
            format!("another ferrovs (pid {me}) already serves interface eth1 in this network namespace: stop it first")
        );
        assert!(lock_ports(&dir, &["eth2".to_string()]).is_ok());
        drop(held);
        assert!(lock_ports(&dir, &a).is_ok());
        fs::remove_dir_all(&dir).unwrap();
    }
}
