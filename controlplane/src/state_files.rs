//! The state directory (`ferrovs { state_dir }`, default /run/ferrovs/state):
//! the workers' connection tables as files (`ferrovs_dataplane::persist`),
//! and what this process found there when it started.
//!
//! At start, the files a previous process left are moved to `previous/`
//! (so that this process's new files take their names), read, and removed
//! once their connections are in the new tables. A file that cannot be
//! read (another layout, another boot, truncated) is reported and left
//! out; the process starts with what the others held.
//!
//! A directory serves one director: a process holds `lock` for its life
//! (a second ferrovs on the same host, in another network namespace, runs
//! without one rather than take the first one's tables), and `owner` names
//! the network namespace and interfaces its files were for, so that files
//! another director left (a lab torn down and made again) are discarded,
//! never restored into this one.

use ferrovs_dataplane::persist::{self, Kind, ReadStats, Saved, TableFiles};
use std::io;
use std::path::{Path, PathBuf};

/// What a previous process left.
#[derive(Debug, Default)]
pub struct Previous {
    /// By the worker that held them.
    pub per_worker: Vec<(usize, Vec<Saved>)>,
    pub stats: ReadStats,
    /// Every table file carried a clean-stop stamp (an upgrade or a
    /// stop), rather than being left by a crash.
    pub clean: bool,
    /// The worker count it ran with (0: no files).
    pub workers: usize,
    /// Files that were not read, and why.
    pub errors: Vec<String>,
    /// The neighbours its workers had resolved (left by a clean stop).
    pub neighbours: Vec<(std::net::IpAddr, ferrovs_dataplane::wire::Mac, u16)>,
}

impl Previous {
    pub fn is_empty(&self) -> bool {
        self.per_worker.is_empty() && self.errors.is_empty()
    }
}

fn previous_dir(dir: &Path) -> PathBuf {
    dir.join("previous")
}

/// Where a process taking over (`crate::handover`) makes its tables while
/// the previous one still forwards.
pub fn incoming_dir(dir: &Path) -> PathBuf {
    dir.join("incoming")
}

/// Moves the tables made in [`incoming_dir`] into `dir` (after
/// [`prepare`] moved the previous process's aside) and removes it.
pub fn move_in(dir: &Path) -> io::Result<()> {
    let incoming = incoming_dir(dir);
    for e in std::fs::read_dir(&incoming)? {
        let p = e?.path();
        if let Some(name) = p.file_name() {
            std::fs::rename(&p, dir.join(name))?;
        }
    }
    std::fs::remove_dir(&incoming)
}

/// Why the state directory is not used.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("held by {}", crate::pid_lock::holder(.0))]
    Held(Option<u32>),
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Lock(crate::pid_lock::LockError),
    /// Its pages would be written back to disk while the workers write
    /// them (latency in the fast path, and disk traffic without end).
    #[error("not on a tmpfs; point state_dir at one (/dev/shm, or /run where it is a tmpfs)")]
    NotMemory,
}

/// Whether `need` bytes fit in `dir`'s filesystem leaving a quarter of it
/// free: /run is a tenth of the memory on Debian, and the tables must not
/// take the room other services keep their runtime files in.
pub fn room_for(dir: &Path, need: u64) -> io::Result<Result<(), String>> {
    let s = nix::sys::statvfs::statvfs(dir).map_err(io::Error::from)?;
    let unit = s.fragment_size() as u64;
    let total = s.blocks() as u64 * unit;
    let avail = s.blocks_available() as u64 * unit;
    if need.saturating_add(total / 4) > avail {
        return Ok(Err(format!(
            "the tables need {} MiB and {} MiB of its {} MiB are free (a quarter is kept for others)",
            need >> 20,
            avail >> 20,
            total >> 20
        )));
    }
    Ok(Ok(()))
}

/// Whether `dir` is on a filesystem that lives in memory.
fn in_memory(dir: &Path) -> io::Result<bool> {
    use nix::sys::statfs::{statfs, HUGETLBFS_MAGIC, TMPFS_MAGIC};
    let t = statfs(dir).map_err(io::Error::from)?.filesystem_type();
    Ok(t == TMPFS_MAGIC || t == HUGETLBFS_MAGIC)
}

/// This director, as the `owner` file names it: its network namespace and
/// its interfaces.
pub fn identity(ifaces: &[String]) -> String {
    use std::os::unix::fs::MetadataExt;
    let ns = std::fs::metadata("/proc/self/ns/net")
        .map(|m| m.ino())
        .unwrap_or(0);
    format!("netns {ns} interfaces {}\n", ifaces.join(" "))
}

/// Creates the directory (root's alone: the files hold every client
/// address), takes its lock (held as long as the returned value lives),
/// and moves what a previous process of this director left into
/// `previous/`; what another director left is removed.
pub fn prepare(dir: &Path, identity: &str) -> Result<crate::pid_lock::PidLock, PrepareError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    if !in_memory(dir)? {
        return Err(PrepareError::NotMemory);
    }
    let lock = crate::pid_lock::acquire(&dir.join("lock")).map_err(|e| match e {
        crate::pid_lock::LockError::Held(pid) => PrepareError::Held(pid),
        e => PrepareError::Lock(e),
    })?;
    let prev = previous_dir(dir);
    let moving: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| is_table_file(p))
        .collect();
    let owner = dir.join("owner");
    let ours = std::fs::read_to_string(&owner).is_ok_and(|o| o == identity);
    std::fs::write(&owner, identity)?;
    if !ours {
        // Another director's (or none's): never restored here.
        for p in &moving {
            let _ = std::fs::remove_file(p);
        }
        let _ = std::fs::remove_dir_all(&prev);
        return Ok(lock);
    }
    if moving.is_empty() {
        return Ok(lock);
    }
    // A `previous/` still there: the process before died while restoring
    // it, and its own files are newer. They win.
    let _ = std::fs::remove_dir_all(&prev);
    std::fs::create_dir(&prev)?;
    for p in moving {
        if let Some(name) = p.file_name() {
            std::fs::rename(&p, prev.join(name))?;
        }
    }
    Ok(lock)
}

fn is_table_file(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.starts_with('w')
        && [".conn4", ".conn6", ".slots6", ".pool6", ".neigh"]
            .iter()
            .any(|e| name.ends_with(e))
}

/// Reads what [`prepare`] moved aside; `now_mono_ms` is CLOCK_MONOTONIC.
pub fn read_previous(dir: &Path, now_mono_ms: u64) -> Previous {
    let prev = previous_dir(dir);
    let boot = persist::boot_id();
    let mut out = Previous {
        clean: true,
        ..Previous::default()
    };
    let mut w = 0;
    let mut any = false;
    loop {
        let file = |k: Kind| prev.join(k.file_name(w));
        let read = |k| ferrovs_dataplane::port::shm::MappedFile::open(&file(k));
        let c4 = read(Kind::Conn4);
        let c6 = read(Kind::Conn6);
        if c4.is_err() && c6.is_err() {
            break;
        }
        any = true;
        let mut saved = Vec::new();
        if let Ok(b) = &c4 {
            read_one(
                &mut out,
                &mut saved,
                b,
                None,
                &file(Kind::Conn4),
                &boot,
                now_mono_ms,
            );
        }
        if let Ok(b) = &c6 {
            match (read(Kind::Slots6), read(Kind::Pool6)) {
                (Ok(s), Ok(p)) => read_one(
                    &mut out,
                    &mut saved,
                    b,
                    Some((&s[..], &p[..])),
                    &file(Kind::Conn6),
                    &boot,
                    now_mono_ms,
                ),
                _ => out.errors.push(format!(
                    "{}: its slots or pool file is missing",
                    file(Kind::Conn6).display()
                )),
            }
        }
        out.per_worker.push((w, saved));
        w += 1;
    }
    out.workers = w;
    if !any {
        out.clean = false;
    }
    for w in 0..out.workers {
        if let Ok(s) = std::fs::read_to_string(prev.join(format!("w{w}.neigh"))) {
            for n in parse_neighbours(&s) {
                if !out.neighbours.iter().any(|(ip, _, _)| *ip == n.0) {
                    out.neighbours.push(n);
                }
            }
        }
    }
    out
}

/// Where worker `w` leaves its neighbours at a clean stop.
pub fn neighbours_path(dir: &Path, w: usize) -> PathBuf {
    dir.join(format!("w{w}.neigh"))
}

/// Writes neighbours one per line: address, MAC, port.
pub fn write_neighbours(
    path: &Path,
    n: &[(std::net::IpAddr, ferrovs_dataplane::wire::Mac, u16)],
) -> io::Result<()> {
    let mut s = String::new();
    for (ip, m, port) in n {
        s.push_str(&format!(
            "{ip} {} {port}\n",
            ferrovs_dataplane::wire::ethernet::fmt_mac(m)
        ));
    }
    std::fs::write(path, s)
}

/// Reads what [`write_neighbours`] wrote; a line that does not parse is
/// skipped.
pub fn parse_neighbours(s: &str) -> Vec<(std::net::IpAddr, ferrovs_dataplane::wire::Mac, u16)> {
    s.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let ip = f.next()?.parse().ok()?;
            let mut mac = [0u8; 6];
            let mut parts = f.next()?.split(':');
            for b in &mut mac {
                *b = u8::from_str_radix(parts.next()?, 16).ok()?;
            }
            let port = f.next()?.parse().ok()?;
            Some((ip, mac, port))
        })
        .collect()
}

fn read_one(
    out: &mut Previous,
    saved: &mut Vec<Saved>,
    conns: &[u8],
    v6: Option<(&[u8], &[u8])>,
    path: &Path,
    boot: &[u8; 36],
    now_mono_ms: u64,
) {
    // A clean stop says how many entries at most: room for them at once
    // (this runs while no process forwards, during a hand-over).
    if let Ok(h) = persist::Header::decode(conns, boot) {
        if h.clean_at_mono_ms != 0 {
            saved.reserve(h.used_below.unwrap_or(0).min(h.capacity) as usize);
        }
    }
    match persist::read_table(&TableFiles { conns, v6 }, boot, now_mono_ms, |s| {
        saved.push(s)
    }) {
        Ok((h, st)) => {
            out.clean &= h.clean_at_mono_ms != 0;
            out.stats.taken += st.taken;
            out.stats.bad += st.bad;
            out.stats.expired += st.expired;
        }
        Err(e) => {
            out.clean = false;
            out.errors.push(format!("{}: {e}", path.display()));
        }
    }
}

/// Removes what was restored.
pub fn finish(dir: &Path) {
    let _ = std::fs::remove_dir_all(previous_dir(dir));
}

/// The line `ferrovs upgrade` and the log print, and what
/// `{state_dir}/restored.json` holds for the next `ferrovs upgrade` to read.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Report {
    /// CLOCK_MONOTONIC (ms) when this process started.
    pub started_mono_ms: u64,
    pub version: String,
    /// "clean stop", "crash" or "none".
    pub previous: String,
    pub read: usize,
    pub restored: usize,
    /// Entries a crash left half-written or foreign (never restored).
    pub inconsistent: usize,
    pub expired: usize,
    /// Refused against this configuration (service or server gone...).
    pub refused: usize,
    pub errors: Vec<String>,
    /// Milliseconds from the start of the process to its workers running.
    pub start_ms: u64,
    /// Neighbours taken from the previous process (after a clean stop).
    #[serde(default)]
    pub neighbours: usize,
}

impl Report {
    pub fn summary(&self) -> String {
        if self.previous == "none" {
            return "no connections to restore".into();
        }
        let mut s = format!(
            "restored {} connection(s) and {} neighbour(s) after a {} ({} read, {} refused by this configuration, {} inconsistent, {} expired)",
            self.restored, self.neighbours, self.previous, self.read, self.refused, self.inconsistent, self.expired
        );
        for e in &self.errors {
            s.push_str(&format!("; {e}"));
        }
        s
    }
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("restored.json")
    }
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        let tmp = dir.join("restored.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(self).map_err(io::Error::other)?)?;
        std::fs::rename(tmp, Self::path(dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_that_would_crowd_the_filesystem_are_refused() {
        assert!(room_for(Path::new("/dev/shm"), 1 << 20).unwrap().is_ok());
        let why = room_for(Path::new("/dev/shm"), u64::MAX / 2)
            .unwrap()
            .unwrap_err();
        assert!(why.contains("a quarter is kept"), "{why}");
    }

    #[test]
    fn neighbours_round_trip_and_bad_lines_are_skipped() {
        let n = vec![
            ("198.18.1.11".parse().unwrap(), [2, 0, 0, 0, 1, 11], 1),
            ("2001:db8:1::11".parse().unwrap(), [2, 0, 0, 0, 1, 0xab], 0),
        ];
        let p = std::env::temp_dir().join(format!("ferrovs-neigh-{}", std::process::id()));
        write_neighbours(&p, &n).unwrap();
        let mut s = std::fs::read_to_string(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
        assert_eq!(parse_neighbours(&s), n);
        s.push_str("198.18.1.12 zz:00:00:00:00:00 1\nnonsense\n");
        assert_eq!(parse_neighbours(&s), n);
    }

    #[test]
    fn prepare_moves_only_table_files_aside() {
        // A tmpfs, as prepare requires.
        let d = std::path::PathBuf::from(format!("/dev/shm/ferrovs-sf-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let files = [
            "w0.conn4",
            "w0.conn6",
            "w0.slots6",
            "w0.pool6",
            "restored.json",
            "other",
        ];
        for f in files {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        // Files another director left: removed, never read.
        let me = "netns 1 interfaces a b\n";
        let lock = prepare(&d, me).unwrap();
        assert!(!d.join("w0.conn4").exists());
        assert!(read_previous(&d, 0).is_empty());
        // A second process while the first holds the directory.
        assert!(matches!(prepare(&d, me), Err(PrepareError::Held(Some(_)))));
        drop(lock);
        // Our own files: moved aside for reading.
        for f in files {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        let _lock = prepare(&d, me).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["lock", "other", "owner", "previous", "restored.json"]
        );
        // Not ferrovs files: reported, nothing taken.
        let p = read_previous(&d, 0);
        assert_eq!(p.workers, 1);
        assert_eq!(p.stats, ReadStats::default());
        assert_eq!(p.errors.len(), 2, "{:?}", p.errors);
        assert!(!p.clean);
        finish(&d);
        assert!(!d.join("previous").exists());
        // Nothing left: nothing to read.
        assert!(read_previous(&d, 0).is_empty());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
