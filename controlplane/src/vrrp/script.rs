//! `vrrp_script`: the tracker's state (keepalived's rise/fall counter and
//! the weight it contributes) as sans-IO state, and the tokio runner that
//! executes scripts as keepalived does: with a timeout (killed on expiry,
//! counted as a failure), in their own process group, never blocking the
//! runtime, as `user` / `script_user` / `keepalived_script`, and refused
//! when `enable_script_security` finds a root-run script writable by
//! others.

use super::config::TrackStatus;
use ferrovs_config::model::{GlobalDefs, Script, ScriptUser, VrrpScript};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::{Gid, Group, Pid, Uid, User};
use std::fmt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// The priority change a tracked object brings (keepalived's
/// process_script_update_priority / initialise_track_script_state): a
/// positive weight counts while the object is OK, a negative one while it
/// has failed; `reverse` inverts the sign; nothing before the first result
/// and nothing for weight 0 (which means FAULT instead).
pub fn weight_contribution(weight: i32, reverse: bool, status: TrackStatus) -> i32 {
    let ok = match status {
        TrackStatus::Init => return 0,
        TrackStatus::Up => true,
        TrackStatus::Down => false,
    };
    if weight == 0 || ok != (weight > 0) {
        0
    } else if reverse {
        -weight
    } else {
        weight
    }
}

/// How one run of a script ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScriptResult {
    /// Exit status 0.
    Success,
    /// Non-zero exit status.
    Failed(i32),
    /// Killed by a signal we did not send.
    Signalled(i32),
    /// Ran past its timeout and was killed.
    TimedOut,
    /// Could not be started.
    SpawnFailed(String),
}

impl ScriptResult {
    pub fn success(&self) -> bool {
        *self == ScriptResult::Success
    }
}

impl fmt::Display for ScriptResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScriptResult::Success => write!(f, "succeeded"),
            ScriptResult::Failed(c) => write!(f, "failed (exited with status {c})"),
            ScriptResult::Signalled(s) => write!(f, "failed (due to signal {s})"),
            ScriptResult::TimedOut => write!(f, "timed_out"),
            ScriptResult::SpawnFailed(e) => write!(f, "failed to start ({e})"),
        }
    }
}

/// One `vrrp_script`'s state (keepalived's `vrrp_script_t` result
/// counter). `result` runs from 0 to rise + fall − 1 and the script is OK
/// from `rise` up: `fall` consecutive failures take an OK script to KO,
/// `rise` consecutive successes a KO one to OK. The first result of a
/// script not marked `init_fail` decides at once.
#[derive(Clone, Debug)]
pub struct ScriptTracker {
    name: String,
    interval: Duration,
    timeout: Duration,
    rise: u32,
    fall: u32,
    weight: i32,
    reverse: bool,
    result: u32,
    /// No result yet (keepalived's SCRIPT_INIT_STATE_INIT).
    init: bool,
    status: TrackStatus,
    running: bool,
    next_run: Option<Instant>,
}

impl ScriptTracker {
    pub fn new(s: &VrrpScript) -> ScriptTracker {
        let rise = s.rise.max(1);
        let fall = s.fall.max(1);
        ScriptTracker {
            name: s.name.clone(),
            interval: if s.interval.is_zero() {
                Duration::from_secs(1)
            } else {
                s.interval
            },
            // keepalived: `timeout ? timeout : interval`.
            timeout: if s.timeout.is_zero() {
                s.interval.max(Duration::from_secs(1))
            } else {
                s.timeout
            },
            rise,
            fall,
            weight: s.weight,
            reverse: s.weight_reverse,
            // "one success is enough" at start; init_fail: assume failed.
            result: if s.init_fail { 0 } else { rise - 1 },
            init: !s.init_fail,
            status: if s.init_fail {
                TrackStatus::Down
            } else {
                TrackStatus::Init
            },
            running: false,
            next_run: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn interval(&self) -> Duration {
        self.interval
    }
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
    pub fn status(&self) -> TrackStatus {
        self.status
    }
    /// The script's own weight's contribution now (track_script lines may
    /// override weight and reverse: see [`weight_contribution`]).
    pub fn contribution(&self) -> i32 {
        weight_contribution(self.weight, self.reverse, self.status)
    }

    /// Schedules the first run at `now` (keepalived runs scripts at start).
    pub fn start(&mut self, now: Instant) {
        self.next_run = Some(now);
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.next_run
    }

    /// At or after [`Self::next_deadline`]: whether to start a run now. The
    /// next run is due one interval later whatever this one does; a run
    /// still going is not doubled ("already running - skipping run").
    pub fn poll(&mut self, now: Instant) -> bool {
        match self.next_run {
            Some(t) if t <= now => {
                let mut next = t + self.interval;
                while next <= now {
                    next += self.interval;
                }
                self.next_run = Some(next);
                if self.running {
                    info!(
                        "Track script {} is already running, expect idle - skipping run",
                        self.name
                    );
                    return false;
                }
                self.running = true;
                true
            }
            _ => false,
        }
    }

    /// Records a run's result. Some(new status) when the script changed
    /// between OK (`Up`) and KO (`Down`).
    pub fn finished(&mut self, r: &ScriptResult) -> Option<TrackStatus> {
        self.running = false;
        let (rise, fall) = (self.rise, self.fall);
        let full = rise + fall - 1;
        let mut change = None;
        if r.success() {
            if self.result + 1 < rise {
                self.result += 1;
            } else if self.result != full {
                if self.result < rise {
                    change = Some(TrackStatus::Up);
                }
                self.result = full;
            }
        } else if self.result > rise {
            self.result -= 1;
        } else {
            if self.result == rise || self.init {
                change = Some(TrackStatus::Down);
            }
            self.result = 0;
        }
        self.init = false;
        let change = change.filter(|s| *s != self.status);
        if let Some(s) = change {
            info!(
                "VRRP_Script({}) {}",
                self.name,
                if s == TrackStatus::Up {
                    "succeeded"
                } else {
                    "failed"
                }
            );
            self.status = s;
        }
        change
    }
}

/// Why a script will not be run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScriptError {
    Empty,
    UnknownUser(String),
    UnknownGroup(String),
    /// enable_script_security without script_user and without a
    /// keepalived_script user.
    NoDefaultUser,
    NotFound(String),
    NotExecutable(String),
    /// Run as root but writable by others, with enable_script_security.
    Insecure(String),
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScriptError::Empty => write!(f, "empty command"),
            ScriptError::UnknownUser(u) => write!(f, "Script user '{u}' does not exist"),
            ScriptError::UnknownGroup(g) => write!(f, "Script group '{g}' does not exist"),
            ScriptError::NoDefaultUser => {
                write!(f, "Unable to set default user keepalived_script for script")
            }
            ScriptError::NotFound(p) => write!(f, "Cannot find script {p} in path - disabling"),
            ScriptError::NotExecutable(p) => {
                write!(f, "script '{p}' is not executable - disabling")
            }
            ScriptError::Insecure(p) => {
                write!(f, "Unsafe permissions found for script '{p}' - disabling")
            }
        }
    }
}

impl std::error::Error for ScriptError {}

/// A command ready to run: its words and the identity to run it as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedScript {
    pub argv: Vec<String>,
    /// None: our own identity.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl PreparedScript {
    /// Runs as ourselves, no checks (tests, internal helpers).
    pub fn unchecked(argv: Vec<String>) -> PreparedScript {
        PreparedScript {
            argv,
            uid: None,
            gid: None,
        }
    }

    pub fn command_line(&self) -> String {
        self.argv.join(" ")
    }
}

fn resolve_user(u: &ScriptUser) -> Result<(u32, u32), ScriptError> {
    let user = User::from_name(&u.user)
        .ok()
        .flatten()
        .ok_or_else(|| ScriptError::UnknownUser(u.user.clone()))?;
    let gid = match &u.group {
        Some(g) => Group::from_name(g)
            .ok()
            .flatten()
            .ok_or_else(|| ScriptError::UnknownGroup(g.clone()))?
            .gid
            .as_raw(),
        None => user.gid.as_raw(),
    };
    Ok((user.uid.as_raw(), gid))
}

/// The identity a script runs as (keepalived's get_default_script_user):
/// the script's `user`, else global `script_user`, else the
/// `keepalived_script` user if it exists, else ourselves, except that
/// with enable_script_security a missing default user disables the script.
pub fn script_identity(script: &Script, global: &GlobalDefs) -> Result<(u32, u32), ScriptError> {
    if let Some(u) = script.user.as_ref().or(global.script_user.as_ref()) {
        return resolve_user(u);
    }
    match User::from_name("keepalived_script").ok().flatten() {
        Some(u) => Ok((u.uid.as_raw(), u.gid.as_raw())),
        None if global.enable_script_security => Err(ScriptError::NoDefaultUser),
        None => Ok((Uid::effective().as_raw(), Gid::effective().as_raw())),
    }
}

/// Finds a bare command name on PATH, as keepalived's find_path does.
fn find_in_path(cmd: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(cmd))
        .find(|p| p.metadata().is_ok_and(|m| m.is_file()))
}

fn executable_by(meta: &std::fs::Metadata, uid: u32, gid: u32) -> bool {
    let mode = meta.permissions().mode();
    if uid == 0 {
        return mode & 0o111 != 0;
    }
    if meta.uid() == uid {
        mode & 0o100 != 0
    } else if meta.gid() == gid {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

/// keepalived's check_security: every component of `path`, from `/` down,
/// must be owned by root, and neither group-writable (by a non-root group)
/// nor world-writable, directories with the sticky bit excepted. Returns
/// the first offending component.
pub fn insecure_component(path: &Path) -> Option<PathBuf> {
    let mut cur = PathBuf::new();
    for c in path.components() {
        cur.push(c);
        let Ok(m) = std::fs::symlink_metadata(&cur) else {
            return Some(cur);
        };
        let mode = m.permissions().mode();
        let sticky_dir = m.is_dir() && mode & 0o1000 != 0;
        let writable = (m.gid() != 0 && mode & 0o020 != 0) || mode & 0o002 != 0;
        if m.uid() != 0 || (!sticky_dir && (m.is_dir() || m.is_file()) && writable) {
            return Some(cur);
        }
    }
    None
}

/// Resolves a script's identity and applies keepalived's checks
/// (check_script_secure): it must exist and be executable for that
/// identity; if it runs as root (or is setuid/setgid root) no part of its
/// path may be writable by non-root. An insecure script is refused with
/// enable_script_security and only logged without it.
pub fn prepare(script: &Script, global: &GlobalDefs) -> Result<PreparedScript, ScriptError> {
    let argv0 = script.argv.first().ok_or(ScriptError::Empty)?;
    let (uid, gid) = script_identity(script, global)?;
    let path = if argv0.contains('/') {
        PathBuf::from(argv0)
    } else {
        find_in_path(argv0).ok_or_else(|| ScriptError::NotFound(argv0.clone()))?
    };
    let meta = std::fs::metadata(&path).map_err(|_| ScriptError::NotFound(argv0.clone()))?;
    if !executable_by(&meta, uid, gid) {
        return Err(ScriptError::NotExecutable(argv0.clone()));
    }
    let mode = meta.permissions().mode();
    let needs_protection = uid == 0
        || gid == 0
        || (meta.uid() == 0 && mode & 0o4100 == 0o4100)
        || (meta.gid() == 0 && mode & 0o2010 == 0o2010);
    if needs_protection {
        let real = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        let bad = insecure_component(&path).or_else(|| insecure_component(&real));
        if let Some(bad) = bad {
            if global.enable_script_security {
                warn!(
                    "Unsafe permissions found for script '{}' ({}) - disabling.",
                    argv0,
                    bad.display()
                );
                return Err(ScriptError::Insecure(argv0.clone()));
            }
            warn!(
                "Unsafe permissions found for script '{}' ({}).",
                argv0,
                bad.display()
            );
        }
    }
    let (euid, egid) = (Uid::effective().as_raw(), Gid::effective().as_raw());
    Ok(PreparedScript {
        argv: script.argv.clone(),
        uid: (uid != euid).then_some(uid),
        gid: (gid != egid || uid != euid).then_some(gid),
    })
}

/// Runs a script (with `extra` arguments appended) to its end or its
/// timeout. The child gets its own process group, which is killed whole
/// on timeout (keepalived kills `-pid`), and is killed if the future is
/// dropped. Never blocks the runtime.
pub async fn run(script: &PreparedScript, extra: &[String], timeout: Duration) -> ScriptResult {
    let Some(argv0) = script.argv.first() else {
        return ScriptResult::SpawnFailed("empty command".into());
    };
    let mut cmd = tokio::process::Command::new(argv0);
    cmd.args(&script.argv[1..])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .process_group(0);
    // std drops supplementary groups when it changes the uid as root.
    if let Some(g) = script.gid {
        cmd.gid(g);
    }
    if let Some(u) = script.uid {
        cmd.uid(u);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return ScriptResult::SpawnFailed(e.to_string()),
    };
    let pid = child.id();
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(st)) => {
            use std::os::unix::process::ExitStatusExt;
            match (st.code(), st.signal()) {
                (Some(0), _) => ScriptResult::Success,
                (Some(c), _) => ScriptResult::Failed(c),
                (None, Some(s)) => ScriptResult::Signalled(s),
                (None, None) => ScriptResult::Failed(-1),
            }
        }
        Ok(Err(e)) => ScriptResult::SpawnFailed(e.to_string()),
        Err(_) => {
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                // The whole group: a shell's children too.
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = child.kill().await;
            ScriptResult::TimedOut
        }
    }
}

/// A script's OK/KO change, sent by [`spawn_tracker`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptChange {
    pub name: String,
    pub status: TrackStatus,
}

/// Runs a tracker on the tokio runtime: a run every interval (the first
/// at once), each with its timeout, reporting OK/KO changes on `tx`. Ends
/// when `tx`'s receiver is gone.
pub fn spawn_tracker(
    mut tracker: ScriptTracker,
    script: Arc<PreparedScript>,
    tx: mpsc::UnboundedSender<ScriptChange>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        tracker.start(Instant::now());
        loop {
            let now = Instant::now();
            let due = tracker.next_deadline().unwrap_or(now);
            if due > now {
                tokio::select! {
                    _ = tokio::time::sleep(due - now) => {}
                    _ = tx.closed() => return,
                }
            }
            if !tracker.poll(Instant::now()) {
                continue;
            }
            let r = run(&script, &[], tracker.timeout()).await;
            if !r.success() {
                info!("Script `{}` {r}", tracker.name());
            }
            if let Some(status) = tracker.finished(&r) {
                let change = ScriptChange {
                    name: tracker.name().to_string(),
                    status,
                };
                if tx.send(change).is_err() {
                    return;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vs(rise: u32, fall: u32, init_fail: bool) -> VrrpScript {
        VrrpScript {
            name: "chk".into(),
            script: Script {
                argv: vec!["/bin/true".into()],
                user: None,
            },
            interval: Duration::from_secs(2),
            timeout: Duration::ZERO,
            weight: -20,
            weight_reverse: false,
            fall,
            rise,
            init_fail,
        }
    }

    const OK: ScriptResult = ScriptResult::Success;
    const KO: ScriptResult = ScriptResult::Failed(1);

    #[test]
    fn contributions() {
        use TrackStatus::*;
        assert_eq!(weight_contribution(-20, false, Init), 0);
        assert_eq!(weight_contribution(-20, false, Up), 0);
        assert_eq!(weight_contribution(-20, false, Down), -20);
        assert_eq!(weight_contribution(20, false, Up), 20);
        assert_eq!(weight_contribution(20, false, Down), 0);
        assert_eq!(weight_contribution(20, true, Up), -20);
        assert_eq!(weight_contribution(-20, true, Down), 20);
        assert_eq!(weight_contribution(0, false, Down), 0);
    }

    #[test]
    fn first_result_decides() {
        let mut t = ScriptTracker::new(&vs(3, 2, false));
        assert_eq!(t.status(), TrackStatus::Init);
        assert_eq!(t.finished(&OK), Some(TrackStatus::Up));
        let mut t = ScriptTracker::new(&vs(3, 2, false));
        assert_eq!(t.finished(&ScriptResult::TimedOut), Some(TrackStatus::Down));
        assert_eq!(t.contribution(), -20);
    }

    #[test]
    fn fall_and_rise() {
        let mut t = ScriptTracker::new(&vs(3, 2, false));
        assert_eq!(t.finished(&OK), Some(TrackStatus::Up));
        // fall 2: one failure is not enough, a success resets the count.
        assert_eq!(t.finished(&KO), None);
        assert_eq!(t.finished(&OK), None);
        assert_eq!(t.finished(&KO), None);
        assert_eq!(t.finished(&KO), Some(TrackStatus::Down));
        assert_eq!(t.finished(&KO), None);
        // rise 3: two successes are not enough, a failure resets the count.
        assert_eq!(t.finished(&OK), None);
        assert_eq!(t.finished(&OK), None);
        assert_eq!(t.finished(&KO), None);
        assert_eq!(t.finished(&OK), None);
        assert_eq!(t.finished(&OK), None);
        assert_eq!(t.finished(&OK), Some(TrackStatus::Up));
        assert_eq!(t.status(), TrackStatus::Up);
        assert_eq!(t.contribution(), 0);
    }

    #[test]
    fn init_fail_needs_rise_successes() {
        let mut t = ScriptTracker::new(&vs(2, 1, true));
        assert_eq!(t.status(), TrackStatus::Down);
        assert_eq!(t.contribution(), -20);
        assert_eq!(t.finished(&KO), None);
        assert_eq!(t.finished(&OK), None);
        assert_eq!(t.finished(&OK), Some(TrackStatus::Up));
        // fall 1: one failure.
        assert_eq!(t.finished(&KO), Some(TrackStatus::Down));
    }

    #[test]
    fn schedule_skips_while_running() {
        let mut t = ScriptTracker::new(&vs(1, 1, false));
        let t0 = Instant::now();
        assert_eq!(t.next_deadline(), None);
        t.start(t0);
        assert!(t.poll(t0));
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_secs(2)));
        // Not due yet.
        assert!(!t.poll(t0 + Duration::from_secs(1)));
        // Due, but the first run has not finished.
        assert!(!t.poll(t0 + Duration::from_secs(2)));
        t.finished(&OK);
        // Late poll: the schedule skips missed ticks.
        assert!(t.poll(t0 + Duration::from_secs(7)));
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_secs(8)));
        assert_eq!(t.timeout(), Duration::from_secs(2));
    }

    fn sh(cmd: &str) -> PreparedScript {
        PreparedScript::unchecked(vec!["/bin/sh".into(), "-c".into(), cmd.into()])
    }

    #[tokio::test]
    async fn runs_real_scripts() {
        let to = Duration::from_secs(5);
        assert_eq!(run(&sh("exit 0"), &[], to).await, ScriptResult::Success);
        assert_eq!(run(&sh("exit 3"), &[], to).await, ScriptResult::Failed(3));
        assert_eq!(
            run(&sh("kill -9 $$"), &[], to).await,
            ScriptResult::Signalled(9)
        );
        // Extra arguments land in $1.. for `sh -c CMD NAME ARGS`.
        let p = PreparedScript::unchecked(vec![
            "/bin/sh".into(),
            "-c".into(),
            "test \"$1\" = MASTER".into(),
            "sh".into(),
        ]);
        assert_eq!(run(&p, &["MASTER".into()], to).await, ScriptResult::Success);
        assert_eq!(
            run(&p, &["BACKUP".into()], to).await,
            ScriptResult::Failed(1)
        );
        assert!(matches!(
            run(
                &PreparedScript::unchecked(vec!["/nonexistent/x".into()]),
                &[],
                to
            )
            .await,
            ScriptResult::SpawnFailed(_)
        ));
    }

    #[tokio::test]
    async fn timeout_kills_the_process_group() {
        let dir = std::env::temp_dir().join(format!("ferrovs-vrrp-script-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let marker = dir.join("late");
        let _ = std::fs::remove_file(&marker);
        // A child of the shell would write the marker after 1 s if it
        // survived the kill.
        let cmd = format!("(sleep 1; touch {}) & sleep 5", marker.display());
        let started = Instant::now();
        let r = run(&sh(&cmd), &[], Duration::from_millis(200)).await;
        assert_eq!(r, ScriptResult::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!marker.exists(), "the background child survived");
        let _ = std::fs::remove_dir_all(&dir);
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<ScriptChange>) -> ScriptChange {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn tracker_reports_changes() {
        let dir = std::env::temp_dir().join(format!("ferrovs-vrrp-trk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let flag = dir.join("fail");
        let _ = std::fs::remove_file(&flag);
        let mut s = vs(1, 2, false);
        s.interval = Duration::from_millis(50);
        s.timeout = Duration::from_secs(2);
        let t = ScriptTracker::new(&s);
        let script = Arc::new(sh(&format!("test ! -e {}", flag.display())));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let h = spawn_tracker(t, script, tx);
        let c = next(&mut rx).await;
        assert_eq!(
            c,
            ScriptChange {
                name: "chk".into(),
                status: TrackStatus::Up
            }
        );
        std::fs::write(&flag, b"").unwrap();
        assert_eq!(next(&mut rx).await.status, TrackStatus::Down);
        std::fs::remove_file(&flag).unwrap();
        assert_eq!(next(&mut rx).await.status, TrackStatus::Up);
        drop(rx);
        tokio::time::timeout(Duration::from_secs(5), h)
            .await
            .unwrap()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn prepare_checks_users_and_paths() {
        let g = GlobalDefs::default();
        let s = |argv: &[&str], user: Option<(&str, Option<&str>)>| Script {
            argv: argv.iter().map(|a| a.to_string()).collect(),
            user: user.map(|(u, g)| ScriptUser {
                user: u.into(),
                group: g.map(Into::into),
            }),
        };
        // Bare names are searched on PATH; argv stays as given.
        let p = prepare(&s(&["sh", "-c", "true"], None), &g).unwrap();
        assert_eq!(p.argv, vec!["sh", "-c", "true"]);
        assert_eq!(
            prepare(&s(&["no-such-command-here"], None), &g),
            Err(ScriptError::NotFound("no-such-command-here".into()))
        );
        assert_eq!(
            prepare(&s(&["/bin/sh"], Some(("no-such-user-x", None))), &g),
            Err(ScriptError::UnknownUser("no-such-user-x".into()))
        );
        assert_eq!(
            prepare(
                &s(&["/bin/sh"], Some(("root", Some("no-such-group-x")))),
                &g
            ),
            Err(ScriptError::UnknownGroup("no-such-group-x".into()))
        );
        // `nobody` resolves to its uid.
        if let Ok(Some(nobody)) = User::from_name("nobody") {
            let p = prepare(&s(&["/bin/sh"], Some(("nobody", None))), &g).unwrap();
            if Uid::effective() != nobody.uid {
                assert_eq!(p.uid, Some(nobody.uid.as_raw()));
            }
        }
        // A non-executable file.
        let dir = std::env::temp_dir().join(format!("ferrovs-vrrp-prep-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("noexec.sh");
        std::fs::write(&f, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let fs = f.display().to_string();
        assert_eq!(
            prepare(&s(&[&fs], None), &g),
            Err(ScriptError::NotExecutable(fs.clone()))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn script_security_refuses_writable_root_scripts() {
        // /tmp is sticky, so a script in a world-writable file under it is
        // what makes it insecure.
        let dir = std::env::temp_dir().join(format!("ferrovs-vrrp-sec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("chk.sh");
        std::fs::write(&f, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(insecure_component(&f).is_some());
        // System binaries are root-owned all the way down.
        assert_eq!(insecure_component(Path::new("/bin/sh")), None);
        let script = Script {
            argv: vec![f.display().to_string()],
            user: Some(ScriptUser {
                user: "root".into(),
                group: None,
            }),
        };
        let secure = GlobalDefs {
            enable_script_security: true,
            ..GlobalDefs::default()
        };
        assert_eq!(
            prepare(&script, &secure),
            Err(ScriptError::Insecure(f.display().to_string()))
        );
        // Without enable_script_security it is only logged.
        assert!(prepare(&script, &GlobalDefs::default()).is_ok());
        // Running as an unprivileged user needs no such check.
        if User::from_name("nobody").ok().flatten().is_some() {
            let as_nobody = Script {
                user: Some(ScriptUser {
                    user: "nobody".into(),
                    group: None,
                }),
                ..script.clone()
            };
            assert!(prepare(&as_nobody, &secure).is_ok());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
