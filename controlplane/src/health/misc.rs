//! MISC_CHECK (check_misc.c) and the notify scripts: running a script as
//! its user, in its own process group, without blocking the runtime.
//!
//! Who a script runs as and whether it may run at all (keepalived's
//! check_script_secure / enable_script_security) is decided once per
//! configuration by [`crate::vrrp::script::prepare`], shared with the
//! vrrp_script runner. A MISC_CHECK that overruns misc_timeout is asked to
//! stop with SIGTERM to its process group and killed with SIGKILL two
//! seconds later, as keepalived does.

use super::checker::Probe;
use crate::vrrp::script::PreparedScript;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// Time a script gets between SIGTERM and SIGKILL (check_misc.c).
const TERM_GRACE: Duration = Duration::from_secs(2);

fn command(s: &PreparedScript) -> Option<Command> {
    let argv0 = s.argv.first()?;
    let mut c = Command::new(argv0);
    c.args(&s.argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    // std drops the supplementary groups when it changes the uid as root.
    if let Some(g) = s.gid {
        c.gid(g);
    }
    if let Some(u) = s.uid {
        c.uid(u);
    }
    Some(c)
}

fn signal_group(child: &Child, sig: Signal) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = killpg(Pid::from_raw(pid), sig);
    }
}

/// Runs a MISC_CHECK script to its end or misc_timeout.
pub async fn probe(s: &PreparedScript, timeout: Duration) -> Probe {
    let Some(mut cmd) = command(s) else {
        return Probe::down("empty command");
    };
    // If the check is abandoned (reload, shutdown) the script goes too.
    cmd.kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Probe::down(format!("cannot run {}: {e}", s.command_line())),
    };
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(st)) => match (st.code(), st.signal()) {
            (Some(c), _) => Probe::Exit(c),
            (None, Some(sig)) => Probe::Signal(sig),
            (None, None) => Probe::down("unknown exit status"),
        },
        Ok(Err(e)) => Probe::down(format!("wait failed: {e}")),
        Err(_) => {
            signal_group(&child, Signal::SIGTERM);
            if tokio::time::timeout(TERM_GRACE, child.wait())
                .await
                .is_err()
            {
                signal_group(&child, Signal::SIGKILL);
                let _ = tokio::time::timeout(TERM_GRACE, child.wait()).await;
            } else {
                // The script is gone; children it left behind are not.
                signal_group(&child, Signal::SIGKILL);
            }
            Probe::TimedOut
        }
    }
}

/// Runs a notify / quorum script. keepalived does not wait for these nor
/// limit them; `limit` bounds them only at shutdown (keepalived gives
/// them one second there).
pub async fn notify(s: &PreparedScript, limit: Option<Duration>) {
    let Some(mut cmd) = command(s) else { return };
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("Error exec-ing command '{}': {e}", s.command_line());
            return;
        }
    };
    match limit {
        None => {
            let _ = child.wait().await;
        }
        Some(l) => {
            if tokio::time::timeout(l, child.wait()).await.is_err() {
                signal_group(&child, Signal::SIGKILL);
                let _ = child.wait().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovs_config::model::{GlobalDefs, Script, ScriptUser};
    use std::time::Instant;

    fn sh(body: &str) -> PreparedScript {
        PreparedScript::unchecked(vec!["/bin/sh".into(), "-c".into(), body.into()])
    }

    #[tokio::test]
    async fn exit_codes_and_signals() {
        let t = Duration::from_secs(5);
        assert_eq!(probe(&sh("exit 0"), t).await, Probe::Exit(0));
        assert_eq!(probe(&sh("exit 1"), t).await, Probe::Exit(1));
        assert_eq!(probe(&sh("exit 42"), t).await, Probe::Exit(42));
        assert_eq!(probe(&sh("kill -USR1 $$"), t).await, Probe::Signal(10));
        let missing = PreparedScript::unchecked(vec!["/nonexistent/check".into()]);
        assert!(matches!(probe(&missing, t).await, Probe::Down(_)));
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = std::env::temp_dir().join(format!("ferrovs-misc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let marker = dir.join("child-survived");
        let _ = std::fs::remove_file(&marker);
        // A shell that ignores SIGTERM (so it takes the SIGKILL two seconds
        // later), with a child that would write the marker after four
        // seconds if it were left alive.
        let s = sh(&format!(
            "trap '' TERM; (sleep 4; touch {}) & sleep 30",
            marker.display()
        ));
        let start = Instant::now();
        assert_eq!(probe(&s, Duration::from_millis(300)).await, Probe::TimedOut);
        let took = start.elapsed();
        assert!(
            // SIGTERM at 0.3 s is ignored; SIGKILL follows two seconds later.
            took >= Duration::from_millis(2300) && took < Duration::from_secs(4),
            "{took:?}"
        );
        tokio::time::sleep(Duration::from_millis(4500) - took).await;
        assert!(
            !marker.exists(),
            "the script's child must be killed with it"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn runs_as_the_script_user() {
        let Ok(Some(nobody)) = nix::unistd::User::from_name("nobody") else {
            return;
        };
        let me = nix::unistd::Uid::effective();
        let script = Script {
            argv: vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("test \"$(id -u)\" = {}", nobody.uid),
            ],
            user: Some(ScriptUser {
                user: "nobody".into(),
                group: None,
            }),
        };
        let global = GlobalDefs::default();
        let p = crate::vrrp::script::prepare(&script, &global).expect("/bin/sh is fine");
        let got = probe(&p, Duration::from_secs(5)).await;
        if me.is_root() {
            assert_eq!(got, Probe::Exit(0), "runs as nobody");
        } else {
            // Without root the uid cannot change: the spawn is refused.
            assert!(matches!(got, Probe::Down(_)), "{got:?}");
        }
    }
}
