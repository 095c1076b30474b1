//! `ferrovs bgp-relay`: the process ExaBGP runs for its API. ExaBGP reads
//! API commands from a process it starts and writes its messages to that
//! process's standard input; the daemon, which decides the announcements,
//! is not a process ExaBGP can start. The relay joins the two: it connects
//! to the daemon's BGP socket and copies lines both ways until either side
//! closes (ExaBGP stopping closes its stdin; the daemon stopping closes the
//! socket, and ExaBGP then sees its process exit).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// Runs the relay; returns when either side closes.
pub fn run(socket: &Path) -> std::io::Result<()> {
    let sock = UnixStream::connect(socket)?;
    let mut to_daemon = sock.try_clone()?;
    // ExaBGP's messages to the daemon, on a thread of their own.
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            if writeln!(to_daemon, "{line}").is_err() {
                break;
            }
        }
        let _ = to_daemon.shutdown(std::net::Shutdown::Both);
    });
    // The daemon's commands to ExaBGP, flushed line by line: ExaBGP acts
    // on a command as soon as its line is complete.
    let mut out = std::io::stdout().lock();
    for line in BufReader::new(sock).lines() {
        writeln!(out, "{}", line?)?;
        out.flush()?;
    }
    Ok(())
}
