//! Notify scripts as keepalived runs them (vrrp_notify.c): on each state
//! change the state's own script (notify_master / notify_backup /
//! notify_fault / notify_stop) without arguments, then `notify` with
//! `INSTANCE|GROUP NAME STATE PRIORITY` appended (priority 0 for a group).
//! Fire and forget on the tokio runtime, each with a timeout; notify_stop
//! gets 1 s, as keepalived gives it.

use super::script::{prepare, run, PreparedScript, ScriptResult};
use ferrovs_config::model::{GlobalDefs, Notify, Script};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// The state a notify reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotifyState {
    Master,
    Backup,
    Fault,
    Stop,
}

impl NotifyState {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyState::Master => "MASTER",
            NotifyState::Backup => "BACKUP",
            NotifyState::Fault => "FAULT",
            NotifyState::Stop => "STOP",
        }
    }
}

impl fmt::Display for NotifyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whose scripts these are: the first argument of `notify`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyKind {
    Instance,
    Group,
}

impl NotifyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyKind::Instance => "INSTANCE",
            NotifyKind::Group => "GROUP",
        }
    }
}

/// Timeout for notify scripts other than notify_stop (keepalived sets none;
/// we do not leave processes behind for ever).
pub const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);
/// keepalived gives notify_stop one second.
pub const STOP_NOTIFY_TIMEOUT: Duration = Duration::from_secs(1);

/// The notify scripts of one instance or sync group, checked and resolved
/// once (user, path, script security).
#[derive(Clone, Debug)]
pub struct Notifier {
    kind: NotifyKind,
    name: String,
    master: Option<Arc<PreparedScript>>,
    backup: Option<Arc<PreparedScript>>,
    fault: Option<Arc<PreparedScript>>,
    stop: Option<Arc<PreparedScript>>,
    any: Option<Arc<PreparedScript>>,
    timeout: Duration,
}

impl Notifier {
    /// Prepares every configured script; one that cannot run (unknown user,
    /// missing, insecure with enable_script_security) is logged and left
    /// out, as keepalived drops it.
    pub fn new(kind: NotifyKind, name: &str, notify: &Notify, global: &GlobalDefs) -> Notifier {
        let prep = |what: &str, s: &Option<Script>| -> Option<Arc<PreparedScript>> {
            let s = s.as_ref()?;
            match prepare(s, global) {
                Ok(p) => Some(Arc::new(p)),
                Err(e) => {
                    warn!(
                        "({name}) {what} script {}: {e} - ignoring",
                        s.command_line()
                    );
                    None
                }
            }
        };
        Notifier {
            kind,
            name: name.to_string(),
            master: prep("notify_master", &notify.master),
            backup: prep("notify_backup", &notify.backup),
            fault: prep("notify_fault", &notify.fault),
            stop: prep("notify_stop", &notify.stop),
            any: prep("notify", &notify.any),
            timeout: DEFAULT_NOTIFY_TIMEOUT,
        }
    }

    /// From already prepared scripts (no checks).
    pub fn from_prepared(
        kind: NotifyKind,
        name: &str,
        scripts: [Option<PreparedScript>; 5],
    ) -> Notifier {
        let [master, backup, fault, stop, any] = scripts.map(|s| s.map(Arc::new));
        Notifier {
            kind,
            name: name.to_string(),
            master,
            backup,
            fault,
            stop,
            any,
            timeout: DEFAULT_NOTIFY_TIMEOUT,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Notifier {
        self.timeout = timeout;
        self
    }

    /// The commands a notify for `state` runs, with their arguments, in
    /// keepalived's order.
    pub fn commands(
        &self,
        state: NotifyState,
        priority: u8,
    ) -> Vec<(Arc<PreparedScript>, Vec<String>)> {
        let own = match state {
            NotifyState::Master => &self.master,
            NotifyState::Backup => &self.backup,
            NotifyState::Fault => &self.fault,
            NotifyState::Stop => &self.stop,
        };
        let prio = match self.kind {
            NotifyKind::Instance => priority,
            NotifyKind::Group => 0,
        };
        let mut out = Vec::new();
        if let Some(s) = own {
            out.push((s.clone(), Vec::new()));
        }
        if let Some(s) = &self.any {
            out.push((
                s.clone(),
                vec![
                    self.kind.as_str().to_string(),
                    self.name.clone(),
                    state.as_str().to_string(),
                    prio.to_string(),
                ],
            ));
        }
        out
    }

    /// Starts the scripts for `state` on the current tokio runtime and
    /// returns at once. The handles may be dropped (the scripts go on and
    /// are reaped); tests await them.
    pub fn notify(&self, state: NotifyState, priority: u8) -> Vec<JoinHandle<ScriptResult>> {
        let timeout = if state == NotifyState::Stop {
            STOP_NOTIFY_TIMEOUT.min(self.timeout)
        } else {
            self.timeout
        };
        self.commands(state, priority)
            .into_iter()
            .map(|(script, args)| {
                let name = self.name.clone();
                tokio::spawn(async move {
                    let r = run(&script, &args, timeout).await;
                    if r.success() {
                        info!(
                            "({name}) notify {} {}: {r}",
                            script.command_line(),
                            args.join(" ")
                        );
                    } else {
                        warn!(
                            "({name}) notify {} {}: {r}",
                            script.command_line(),
                            args.join(" ")
                        );
                    }
                    r
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(cmd: &str) -> PreparedScript {
        PreparedScript::unchecked(vec![
            "/bin/sh".into(),
            "-c".into(),
            cmd.into(),
            "notify".into(),
        ])
    }

    fn tmpdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ferrovs-vrrp-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[tokio::test]
    async fn instance_notify_runs_state_script_then_notify_with_arguments() {
        let d = tmpdir("notify");
        let log = d.join("log");
        let append = |tag: &str| sh(&format!("echo {tag} \"$@\" >> {}", log.display()));
        let n = Notifier::from_prepared(
            NotifyKind::Instance,
            "VI_1",
            [
                Some(append("master")),
                Some(append("backup")),
                None,
                None,
                Some(append("any")),
            ],
        );
        for h in n.notify(NotifyState::Master, 150) {
            assert_eq!(h.await.unwrap(), ScriptResult::Success);
        }
        for h in n.notify(NotifyState::Fault, 150) {
            assert_eq!(h.await.unwrap(), ScriptResult::Success);
        }
        let mut lines: Vec<String> = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        lines.sort();
        assert_eq!(
            lines,
            vec![
                "any INSTANCE VI_1 FAULT 150",
                "any INSTANCE VI_1 MASTER 150",
                "master",
            ]
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[tokio::test]
    async fn group_notify_has_priority_zero() {
        let n = Notifier::from_prepared(
            NotifyKind::Group,
            "G1",
            [None, None, None, None, Some(sh("true"))],
        );
        let c = n.commands(NotifyState::Backup, 100);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].1, vec!["GROUP", "G1", "BACKUP", "0"]);
        for h in n.notify(NotifyState::Backup, 100) {
            assert_eq!(h.await.unwrap(), ScriptResult::Success);
        }
    }

    #[tokio::test]
    async fn notify_is_fire_and_forget_with_a_timeout() {
        let n = Notifier::from_prepared(
            NotifyKind::Instance,
            "VI_1",
            [Some(sh("sleep 10")), None, None, Some(sh("sleep 10")), None],
        )
        .with_timeout(Duration::from_millis(300));
        let t = std::time::Instant::now();
        let hs = n.notify(NotifyState::Master, 100);
        // Returned at once.
        assert!(t.elapsed() < Duration::from_millis(200));
        for h in hs {
            assert_eq!(h.await.unwrap(), ScriptResult::TimedOut);
        }
        assert!(t.elapsed() < Duration::from_secs(3));
        // notify_stop: keepalived's 1 s, capped by ours.
        let t = std::time::Instant::now();
        for h in n.notify(NotifyState::Stop, 100) {
            assert_eq!(h.await.unwrap(), ScriptResult::TimedOut);
        }
        assert!(t.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn new_drops_scripts_that_cannot_run() {
        let global = GlobalDefs::default();
        let notify = Notify {
            master: Some(Script {
                argv: vec!["/nonexistent/notify.sh".into()],
                user: None,
            }),
            backup: Some(Script {
                argv: vec!["/bin/sh".into(), "-c".into(), "exit 0".into()],
                user: None,
            }),
            ..Notify::default()
        };
        let n = Notifier::new(NotifyKind::Instance, "VI_1", &notify, &global);
        assert!(n.commands(NotifyState::Master, 100).is_empty());
        assert_eq!(n.commands(NotifyState::Backup, 100).len(), 1);
        for h in n.notify(NotifyState::Backup, 100) {
            assert_eq!(h.await.unwrap(), ScriptResult::Success);
        }
    }
}
