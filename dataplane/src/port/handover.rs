//! The channel over which a running ferrovs hands its ports to the next
//! one (`ferrovs upgrade`): a Unix SOCK_SEQPACKET pair, one end inherited
//! by the new process, carrying whole messages with descriptors attached
//! (`SCM_RIGHTS`, unix(7)). What the messages say is the control plane's
//! business (controlplane/src/handover.rs); this is only the transport.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// The kernel's limit of descriptors per message (`SCM_MAX_FD`).
pub const MAX_FDS: usize = 253;
/// The largest message read.
const MAX_MESSAGE: usize = 1 << 20;

/// One end of the hand-over channel.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

impl Channel {
    /// A connected pair: ours (closed on exec) and the end for the new
    /// process, which its exec keeps (its number goes in its environment).
    pub fn pair() -> io::Result<(Channel, OwnedFd)> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: socketpair(2) writes two descriptors into `fds`.
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: two fresh descriptors nothing else owns.
        let (ours, theirs) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fcntl on our own descriptor: the child's end survives exec.
        if unsafe { libc::fcntl(theirs.as_raw_fd(), libc::F_SETFD, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((Channel { fd: ours }, theirs))
    }

    /// The end a parent left to this process, named by the descriptor
    /// number in environment variable `var`; None when it is not set.
    pub fn inherited(var: &str) -> Option<io::Result<Channel>> {
        let v = std::env::var(var).ok()?;
        // Not for our children (health check scripts, the BGP speaker).
        std::env::remove_var(var);
        let fd: RawFd = match v.parse() {
            Ok(n) if n > 2 => n,
            _ => {
                return Some(Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{var}={v}: not a descriptor number"),
                )))
            }
        };
        // SAFETY: F_GETFD only asks whether the number is an open descriptor.
        let open = unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0;
        // SAFETY: all-zero is a valid stat (integers only).
        let mut st: libc::stat = unsafe { mem::zeroed() };
        // SAFETY: fstat into a local, on a descriptor checked open.
        let is_socket = open
            && unsafe { libc::fstat(fd, &mut st) } == 0
            && st.st_mode & libc::S_IFMT == libc::S_IFSOCK;
        if !is_socket {
            return Some(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{var}={v}: not an open socket"),
            )));
        }
        // SAFETY: the descriptor was left to this process by its parent for
        // this purpose (the variable names it), and is taken once: the
        // variable is removed above.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: fcntl on our own descriptor: not inherited further.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
        Some(Ok(Channel { fd }))
    }

    /// Sends one message with `fds` attached (at most [`MAX_FDS`]).
    pub fn send(&self, bytes: &[u8], fds: &[BorrowedFd]) -> io::Result<()> {
        if fds.len() > MAX_FDS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} descriptors in one message, at most {MAX_FDS}",
                    fds.len()
                ),
            ));
        }
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let data_len = mem::size_of_val(raw.as_slice());
        // SAFETY: CMSG_SPACE is a pure computation.
        let space = unsafe { libc::CMSG_SPACE(data_len as u32) } as usize;
        let mut control = vec![0u64; space.div_ceil(8).max(1)];
        let mut iov = libc::iovec {
            iov_base: bytes.as_ptr() as *mut libc::c_void,
            iov_len: bytes.len(),
        };
        // SAFETY: all-zero is a valid msghdr; fields set below.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if !raw.is_empty() {
            msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
            msg.msg_controllen = space as _;
            // SAFETY: the control buffer holds CMSG_SPACE(data_len) bytes,
            // so the first header and its data fit in it.
            unsafe {
                let c = libc::CMSG_FIRSTHDR(&msg);
                (*c).cmsg_level = libc::SOL_SOCKET;
                (*c).cmsg_type = libc::SCM_RIGHTS;
                (*c).cmsg_len = libc::CMSG_LEN(data_len as u32) as _;
                std::ptr::copy_nonoverlapping(
                    raw.as_ptr() as *const u8,
                    libc::CMSG_DATA(c),
                    data_len,
                );
            }
        }
        // SAFETY: `msg` points to live buffers for the call.
        let r = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        if r as usize != bytes.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short hand-over message",
            ));
        }
        Ok(())
    }

    /// Receives one message and the descriptors attached, waiting at most
    /// `timeout`. An empty message with no descriptor: the other side is
    /// gone.
    pub fn recv(&self, timeout: Duration) -> io::Result<(Vec<u8>, Vec<OwnedFd>)> {
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        // SAFETY: setsockopt with a timeval of the size given.
        let r = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; MAX_MESSAGE];
        // SAFETY: CMSG_SPACE is a pure computation.
        let space =
            unsafe { libc::CMSG_SPACE((MAX_FDS * mem::size_of::<RawFd>()) as u32) } as usize;
        let mut control = vec![0u64; space.div_ceil(8)];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: all-zero is a valid msghdr; fields set below.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = space as _;
        // SAFETY: `msg` points to live buffers of the sizes given.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EAGAIN) => io::Error::new(io::ErrorKind::TimedOut, "no answer in time"),
                _ => e,
            });
        }
        let mut fds = Vec::new();
        // SAFETY: walking the control messages the kernel wrote into
        // `control`, within msg_controllen, with the libc macros.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let len = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                    let p = libc::CMSG_DATA(c) as *const RawFd;
                    for i in 0..len / mem::size_of::<RawFd>() {
                        // Each descriptor the kernel installed for us is
                        // ours alone.
                        fds.push(OwnedFd::from_raw_fd(p.add(i).read_unaligned()));
                    }
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        if msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "hand-over message truncated",
            ));
        }
        buf.truncate(n as usize);
        Ok((buf, fds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsFd;

    #[test]
    fn a_message_carries_its_descriptors() {
        let (a, b) = Channel::pair().unwrap();
        let b = Channel { fd: b };
        let mut f = tempfile();
        f.write_all(b"hello").unwrap();
        a.send(b"ports", &[f.as_fd()]).unwrap();
        let (msg, fds) = b.recv(Duration::from_secs(1)).unwrap();
        assert_eq!(msg, b"ports");
        assert_eq!(fds.len(), 1);
        let mut g = std::fs::File::from(fds.into_iter().next().unwrap());
        g.rewind().unwrap();
        let mut s = String::new();
        g.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
        drop(a);
        let (msg, fds) = b.recv(Duration::from_secs(1)).unwrap();
        assert!(
            msg.is_empty() && fds.is_empty(),
            "the peer's close reads as empty"
        );
    }

    #[test]
    fn a_silent_peer_times_out() {
        let (_a, b) = Channel::pair().unwrap();
        let b = Channel { fd: b };
        let e = b.recv(Duration::from_millis(20)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }

    fn tempfile() -> std::fs::File {
        let p = std::env::temp_dir().join(format!("ferrovs-handover-{}", std::process::id()));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        let _ = std::fs::remove_file(&p);
        f
    }
}
