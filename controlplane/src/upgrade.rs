//! `ferrovs upgrade`: the running process hands over to a new binary
//! without losing a flow (issue 17).
//!
//! How: the process checks the new binary (it must read this process's
//! state layout and accept the configuration), then hands over without a
//! word to the VRRP peer (no priority 0: the new process starts MASTER of
//! what this one was, `vrrp::config::InstanceConfig::resume_master`), its
//! workers leaving their tables in the state directory stamped clean, which
//! the new process reads back (`crate::state_files`) before its workers
//! start. Two ways:
//!
//! - AF_XDP: the new binary is started beside this process and takes the
//!   sockets, the packet memory and the XDP program over once it is ready
//!   (`crate::handover`): the pause is the hand-over alone, and a new
//!   binary that fails to start costs nothing.
//! - AF_PACKET and DPDK: the process stops and executes the new binary in
//!   its own place ([`exec`]), the same PID; the new process opens the
//!   ports again. A DPDK port cannot be shared by two processes. If the
//!   exec fails, the process exits and its supervisor's restart finds the
//!   same files.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What the old process runs once it has stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub binary: PathBuf,
    pub args: Vec<OsString>,
}

/// The line `ferrovs state-layout` prints: what a binary can read.
pub fn layout_line() -> String {
    format!(
        "ferrovs-state-layout {}",
        ferrovs_dataplane::persist::LAYOUT
    )
}

/// The checks before a hand-over: Ok with the plan and what the operator
/// should know, or Err with why it would lose connections or fail (unless
/// `force`, for what only loses connections).
pub fn check(
    binary: &Path,
    config: &Path,
    state_dir: Option<&Path>,
    force: bool,
) -> Result<(Plan, Vec<String>), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(binary).map_err(|e| format!("{}: {e}", binary.display()))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("{}: not an executable file", binary.display()));
    }
    let binary = binary
        .canonicalize()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    let mut notes = Vec::new();
    let mut losses = Vec::new();
    // The new binary must start on this configuration, or the director
    // would be left without a process.
    let out = Command::new(&binary)
        .arg("check")
        .arg("-f")
        .arg(config)
        .output()
        .map_err(|e| format!("running {} check: {e}", binary.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} refuses the configuration {}:\n{}",
            binary.display(),
            config.display(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        ));
    }
    match state_dir {
        None => losses.push(
            "the connection table is not kept across a restart (state_dir off, or not usable: see the log)".to_string(),
        ),
        Some(_) => {
            let out = Command::new(&binary).arg("state-layout").output();
            let theirs = out
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
            match theirs {
                Some(l) if l == layout_line() => {}
                Some(l) if l.starts_with("ferrovs-state-layout ") => losses.push(format!(
                    "the new binary reads state layout {}, this one writes {}: the connection table would be lost",
                    l.trim_start_matches("ferrovs-state-layout "),
                    ferrovs_dataplane::persist::LAYOUT
                )),
                _ => losses.push(
                    "the new binary does not say which state layout it reads (older than this one?): the connection table would be lost".to_string(),
                ),
            }
        }
    }
    if !losses.is_empty() {
        if !force {
            return Err(format!("{}; --force upgrades anyway", losses.join("; ")));
        }
        notes.extend(losses.into_iter().map(|l| format!("forced: {l}")));
    }
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    Ok((Plan { binary, args }, notes))
}

/// Replaces this process's image with the plan's; returns only on failure.
pub fn exec(plan: &Plan) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    // Nothing of this image goes on into the next but stdin, stdout and
    // stderr (the journal's stream).
    if let Err(e) = ferrovs_dataplane::port::close_on_exec_from(3) {
        return e;
    }
    Command::new(&plan.binary).args(&plan.args).exec()
}

/// Where the VRRP hand-over is written: beside the control socket.
fn masters_path(dir: &Path) -> PathBuf {
    dir.join("vrrp-masters")
}

/// Records the instances this process is MASTER of, for the next one,
/// with the moment (CLOCK_MONOTONIC ms).
pub fn write_masters(dir: &Path, names: &[String], now_mono_ms: u64) -> std::io::Result<()> {
    let mut s = format!("{now_mono_ms}\n");
    for n in names {
        s.push_str(n);
        s.push('\n');
    }
    std::fs::write(masters_path(dir), s)
}

/// How old a hand-over may be and still be taken: beyond it the peer has
/// taken over (three adverts of the usual second, and some).
const MASTERS_FRESH_MS: u64 = 3000;

/// The instances a process that handed over to this one was MASTER of,
/// when it did so a moment ago; the record is consumed.
pub fn take_masters(dir: &Path, now_mono_ms: u64) -> Vec<String> {
    let p = masters_path(dir);
    let Ok(s) = std::fs::read_to_string(&p) else {
        return Vec::new();
    };
    let _ = std::fs::remove_file(&p);
    parse_masters(&s, now_mono_ms)
}

fn parse_masters(s: &str, now_mono_ms: u64) -> Vec<String> {
    let mut lines = s.lines();
    let Some(at) = lines.next().and_then(|l| l.trim().parse::<u64>().ok()) else {
        return Vec::new();
    };
    if now_mono_ms < at || now_mono_ms - at > MASTERS_FRESH_MS {
        return Vec::new();
    }
    lines
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_hand_over_names_the_masters_a_stale_one_nothing() {
        let s = "1000\nVI_1\nVI_2\n";
        assert_eq!(parse_masters(s, 1500), ["VI_1", "VI_2"]);
        assert!(parse_masters(s, 1000 + MASTERS_FRESH_MS + 1).is_empty());
        assert!(parse_masters(s, 999).is_empty(), "from the future");
        assert!(parse_masters("garbage\nVI_1\n", 1500).is_empty());
    }

    #[test]
    fn the_masters_file_is_consumed() {
        let d = std::env::temp_dir().join(format!("ferrovs-up-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        write_masters(&d, &["VI_1".into()], 5000).unwrap();
        assert_eq!(take_masters(&d, 5100), ["VI_1"]);
        assert!(take_masters(&d, 5100).is_empty());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_binary_that_is_not_there_or_not_executable_is_refused() {
        let e = check(
            Path::new("/nonexistent/ferrovs"),
            Path::new("/etc/x"),
            None,
            false,
        );
        assert!(e.unwrap_err().contains("/nonexistent/ferrovs"));
        let f = std::env::temp_dir().join(format!("ferrovs-up-noexec-{}", std::process::id()));
        std::fs::write(&f, b"#!/bin/sh\n").unwrap();
        let e = check(&f, Path::new("/etc/x"), None, false);
        std::fs::remove_file(&f).unwrap();
        assert!(e.unwrap_err().contains("not an executable"));
    }
}
