//! `ferrovs bgp-relay`: the process ExaBGP runs for its API. ExaBGP reads
//! API commands from a process it starts and writes its messages to that
//! process's standard input; the daemon, which decides the announcements,
//! is not a process ExaBGP can start. The relay joins the two: it connects
//! to the daemon's BGP socket and copies lines both ways until either side
//! closes (ExaBGP stopping closes its stdin; the daemon stopping closes the
//! socket, and ExaBGP then sees its process exit).
//!
//! An upgrade keeps ExaBGP, and so the BGP sessions: the daemon that hands
//! over says [`RECONNECT`] first, and the relay then connects to the same
//! socket path again, where the next daemon listens, keeping what ExaBGP
//! says meanwhile for it.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The line a daemon handing over sends the relay (never ExaBGP: API
/// commands do not start with `#`): connect again once this connection
/// closes.
pub const RECONNECT: &str = "#ferrovs-relay reconnect";
/// How long the relay waits for the next daemon: as long as `ferrovs
/// upgrade` waits for the new process, and some.
const RECONNECT_WAIT: Duration = Duration::from_secs(90);
/// ExaBGP's lines kept while no daemon listens (the oldest go first).
const PENDING_MAX: usize = 1024;

/// Where ExaBGP's lines go: the daemon's socket, or a queue between two.
struct Upstream {
    sock: Option<UnixStream>,
    pending: VecDeque<String>,
}

/// Runs the relay; returns when either side closes for good.
pub fn run(socket: &Path) -> std::io::Result<()> {
    let mut sock = UnixStream::connect(socket)?;
    let up = Arc::new(Mutex::new(Upstream {
        sock: Some(sock.try_clone()?),
        pending: VecDeque::new(),
    }));
    let exabgp_gone = Arc::new(AtomicBool::new(false));
    // ExaBGP's messages to the daemon, on a thread of their own.
    {
        let up = up.clone();
        let gone = exabgp_gone.clone();
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                let Ok(line) = line else { break };
                let mut u = up.lock().unwrap_or_else(|p| p.into_inner());
                let sent = match u.sock.as_mut() {
                    Some(s) => writeln!(s, "{line}").is_ok(),
                    None => false,
                };
                if !sent {
                    if u.pending.len() == PENDING_MAX {
                        u.pending.pop_front();
                    }
                    u.pending.push_back(line);
                }
            }
            gone.store(true, Ordering::SeqCst);
            let u = up.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(s) = &u.sock {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        });
    }
    // The daemon's commands to ExaBGP, flushed line by line: ExaBGP acts
    // on a command as soon as its line is complete.
    let mut out = std::io::stdout().lock();
    loop {
        let mut reconnect = false;
        for line in BufReader::new(&sock).lines() {
            let Ok(line) = line else { break };
            if line == RECONNECT {
                reconnect = true;
                continue;
            }
            writeln!(out, "{line}")?;
            out.flush()?;
        }
        if !reconnect || exabgp_gone.load(Ordering::SeqCst) {
            return Ok(());
        }
        up.lock().unwrap_or_else(|p| p.into_inner()).sock = None;
        sock = connect_again(socket, &exabgp_gone)?;
        let mut u = up.lock().unwrap_or_else(|p| p.into_inner());
        let mut s = sock.try_clone()?;
        while let Some(l) = u.pending.pop_front() {
            writeln!(s, "{l}")?;
        }
        u.sock = Some(s);
    }
}

/// Connects to `socket` once the next daemon listens there (not if
/// ExaBGP went meanwhile: nothing would be left to relay).
fn connect_again(socket: &Path, exabgp_gone: &AtomicBool) -> std::io::Result<UnixStream> {
    let deadline = Instant::now() + RECONNECT_WAIT;
    loop {
        match UnixStream::connect(socket) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= deadline || exabgp_gone.load(Ordering::SeqCst) => {
                return Err(e)
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
