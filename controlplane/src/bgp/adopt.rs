//! What a daemon that hands over (`ferrovs upgrade`) leaves the next one of
//! its BGP speaker: ExaBGP goes on running, so its sessions stay up and the
//! routers never hear the director leave; the next daemon adopts it. The
//! record is a small file beside the control socket, as VRRP's
//! (`upgrade::write_masters`), written by the old process before it hands
//! its ports over and consumed by the new one.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// How old a record may be and still be taken: the new process reads it
/// within a second of the old one writing it; an older one is from a
/// process that stopped without a successor, and its ExaBGP is gone.
const FRESH_MS: u64 = 30_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpeakerHandover {
    /// When it was written (CLOCK_MONOTONIC ms).
    pub at_mono_ms: u64,
    /// ExaBGP's process.
    pub pid: u32,
    /// What ExaBGP announces now, as the old daemon told it.
    pub announced: Vec<IpAddr>,
    /// Each neighbor and whether its session is up.
    pub neighbors: BTreeMap<IpAddr, bool>,
    pub speaker_restarts: u64,
}

fn path(dir: &Path) -> PathBuf {
    dir.join("bgp-speaker")
}

pub fn write(dir: &Path, h: &SpeakerHandover) -> std::io::Result<()> {
    let s = serde_json::to_vec(h).map_err(std::io::Error::other)?;
    std::fs::write(path(dir), s)
}

/// The speaker a process that handed over to this one left running, when
/// it did so a moment ago; the record is consumed.
pub fn take(dir: &Path, now_mono_ms: u64) -> Option<SpeakerHandover> {
    let p = path(dir);
    let s = std::fs::read(&p).ok()?;
    let _ = std::fs::remove_file(&p);
    parse(&s, now_mono_ms)
}

fn parse(s: &[u8], now_mono_ms: u64) -> Option<SpeakerHandover> {
    let h: SpeakerHandover = serde_json::from_slice(s).ok()?;
    let fresh = now_mono_ms >= h.at_mono_ms && now_mono_ms - h.at_mono_ms <= FRESH_MS;
    // Never pid 0 or 1: a signal to them is not a signal to ExaBGP.
    (fresh && h.pid > 1).then_some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(at: u64, pid: u32) -> SpeakerHandover {
        SpeakerHandover {
            at_mono_ms: at,
            pid,
            announced: vec!["198.18.0.100".parse().unwrap()],
            neighbors: [("198.18.2.1".parse().unwrap(), true)].into(),
            speaker_restarts: 2,
        }
    }

    #[test]
    fn a_fresh_record_is_taken_once() {
        let d = std::env::temp_dir().join(format!("ferrovs-bgp-adopt-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        write(&d, &record(1000, 4242)).unwrap();
        assert_eq!(take(&d, 1500), Some(record(1000, 4242)));
        assert_eq!(take(&d, 1500), None, "consumed");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_stale_future_or_bad_record_is_not() {
        let ok = serde_json::to_vec(&record(1000, 4242)).unwrap();
        assert!(parse(&ok, 1000 + FRESH_MS).is_some());
        assert!(parse(&ok, 1000 + FRESH_MS + 1).is_none(), "stale");
        assert!(parse(&ok, 999).is_none(), "from the future");
        let init = serde_json::to_vec(&record(1000, 1)).unwrap();
        assert!(parse(&init, 1000).is_none(), "pid 1");
        assert!(parse(b"{\"pid\": 7", 1000).is_none(), "truncated");
    }
}
