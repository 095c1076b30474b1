//! Small syscall helpers the kernel-socket backends (AF_PACKET, AF_XDP)
//! share: socket options, interface ioctls, ethtool commands.

use std::ffi::c_void;
use std::io;
use std::mem;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// The last OS error, with what we were doing in front of it.
pub(crate) fn os_err(what: impl std::fmt::Display) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Creates a socket (close-on-exec); the error starts with `what`.
pub(crate) fn socket(
    family: libc::c_int,
    ty: libc::c_int,
    proto: libc::c_int,
    what: &str,
) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(family, ty | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(os_err(what));
    }
    // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(crate) fn setsockopt<T>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    val: &T,
) -> io::Result<()> {
    // SAFETY: `val` points to a live, initialised `T` of the given length
    // for the duration of the call; the kernel only reads it.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            val as *const T as *const c_void,
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Reads a socket option into `val`, which the caller initialised (the
/// kernel writes at most its size).
pub(crate) fn getsockopt_into<T>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    val: &mut T,
) -> io::Result<()> {
    let mut len = mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `val` is a writable `T` and `len` its size; the kernel writes
    // at most `len` bytes and updates `len`.
    let r = unsafe { libc::getsockopt(fd, level, name, val as *mut T as *mut c_void, &mut len) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

pub(crate) fn getsockopt<T: Copy + Default>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<T> {
    let mut val = T::default();
    getsockopt_into(fd, level, name, &mut val)?;
    Ok(val)
}

/// A socket for interface ioctls (any socket family works; a UDP socket
/// needs no privilege).
pub(crate) fn ioctl_socket() -> io::Result<OwnedFd> {
    socket(
        libc::AF_INET,
        libc::SOCK_DGRAM,
        0,
        "socket(AF_INET) for interface ioctls",
    )
}

fn ifreq_for(ifname: &str) -> io::Result<libc::ifreq> {
    let b = ifname.as_bytes();
    if b.is_empty() || b.len() >= libc::IFNAMSIZ || b.contains(&0) || b.contains(&b'/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid interface name {ifname:?}"),
        ));
    }
    // SAFETY: `ifreq` is a C struct of integers, arrays and a union of such
    // and a pointer, for all of which all-zero bytes are a valid value.
    let mut ifr: libc::ifreq = unsafe { mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b) {
        *d = *s as libc::c_char;
    }
    Ok(ifr)
}

fn ioctl_ifreq(fd: RawFd, req: libc::c_ulong, ifr: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: `ifr` is a valid, writable `ifreq` for the whole call; the
    // interface ioctls used here read and write only within it (and, for
    // SIOCETHTOOL, within the buffer `ifru_data` points to, which the
    // caller keeps alive).
    let r = unsafe { libc::ioctl(fd, req as _, ifr as *mut libc::ifreq) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Runs the ethtool command in `cmd` (a `struct ethtool_*` whose first
/// field is the command number) on `ifname`; the kernel reads and writes
/// `cmd` in place.
pub(crate) fn ethtool<T>(fd: RawFd, ifname: &str, cmd: &mut T) -> io::Result<()> {
    let mut ifr = ifreq_for(ifname)?;
    ifr.ifr_ifru.ifru_data = cmd as *mut T as *mut libc::c_char;
    ioctl_ifreq(fd, libc::SIOCETHTOOL, &mut ifr)
}

/// CLOCK_MONOTONIC in nanoseconds.
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass and nothing else.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Marks every descriptor from `first` up close-on-exec, so that an
/// `exec` in place (the upgrade of the AF_PACKET and DPDK backends) leaves
/// nothing open behind it. Libraries open descriptors without the flag:
/// DPDK's telemetry socket, left listening with nobody to accept, makes the
/// next image's EAL block in `connect` once its backlog is full.
pub fn close_on_exec_from(first: RawFd) -> io::Result<()> {
    // SAFETY: close_range(2) with CLOSE_RANGE_CLOEXEC only sets a flag on
    // descriptors of this process; it touches no memory.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
        )
    };
    if r == 0 {
        return Ok(());
    }
    // Before Linux 5.11: one by one, from the list of open descriptors.
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let Some(fd) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        if fd >= first {
            // SAFETY: F_SETFD on a descriptor number; a closed one (the
            // directory's own, gone by now) gives EBADF, ignored.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
    Ok(())
}

#[cfg(test)]
mod cloexec_tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn every_descriptor_from_the_first_is_marked_close_on_exec() {
        // A descriptor without the flag, as a C library would open it.
        // SAFETY: dup(2) of stderr; the new descriptor is owned below.
        let raw = unsafe { libc::dup(2) };
        assert!(raw > 2);
        // SAFETY: `raw` was just created and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: F_GETFD reads the flags of our own descriptor.
        let flags = || unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
        assert_eq!(flags() & libc::FD_CLOEXEC, 0);
        close_on_exec_from(3).unwrap();
        assert_eq!(flags() & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    }
}
