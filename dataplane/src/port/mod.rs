//! Port backends: where packets come from and go to. A worker owns one RX
//! and one TX queue on every port and moves packets in bursts.

pub mod afpacket;
pub mod afxdp;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod handover;
pub mod memory;
pub mod shm;
mod sys;
pub use sys::close_on_exec_from;

use crate::wire::Mac;

/// What a kernel-backed port (AF_PACKET, AF_XDP) needs to know of its
/// interface. The control plane learns it from the kernel (rtnetlink) and
/// passes it in: the dataplane asks the kernel nothing about interfaces,
/// so there is one view of them, and a missing or non-Ethernet interface
/// is refused there, before a port opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub index: u32,
    /// An Ethernet address (the backends forward Ethernet frames).
    pub mac: Mac,
    pub mtu: u32,
}

/// Packets per burst, as DESIGN.md fixes it.
pub const BURST: usize = 32;
/// Bytes kept free in front of a received frame so that encapsulation
/// (IPIP) or a VLAN tag can be prepended without copying the packet.
pub const HEADROOM: usize = 128;

/// A packet buffer with headroom, like a DPDK mbuf.
pub trait Packet: Send + 'static {
    fn data(&self) -> &[u8];
    fn data_mut(&mut self) -> &mut [u8];
    #[inline(always)]
    fn len(&self) -> usize {
        self.data().len()
    }
    #[inline(always)]
    fn is_empty(&self) -> bool {
        self.data().is_empty()
    }
    /// Grows the packet at the front by `n` bytes (uninitialised contents);
    /// false when the headroom is too small.
    fn prepend(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the front.
    fn adj(&mut self, n: usize);
    /// Sets the length, shrinking or growing into the tailroom; false when
    /// the buffer is too small.
    fn set_len(&mut self, len: usize) -> bool;
    /// Makes the packet a copy of `frame`; false (packet unchanged) when the
    /// buffer is too small.
    #[inline]
    fn copy_from(&mut self, frame: &[u8]) -> bool {
        if !self.set_len(frame.len()) {
            return false;
        }
        self.data_mut().copy_from_slice(frame);
        true
    }
}

/// Where a packet's bytes sit in its buffer: the offset of the first byte
/// and the length. The headroom and tailroom rules every buffer-backed
/// packet (memory, AF_PACKET, AF_XDP) follows, in one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub off: u16,
    pub len: u16,
}

impl Window {
    /// An empty window after `headroom` bytes.
    #[inline(always)]
    pub const fn empty(headroom: usize) -> Window {
        Window {
            off: headroom as u16,
            len: 0,
        }
    }
    /// The bytes' range in the buffer.
    #[inline(always)]
    pub fn range(&self) -> std::ops::Range<usize> {
        self.off as usize..self.off as usize + self.len as usize
    }
    /// [`Packet::prepend`].
    #[inline]
    pub fn prepend(&mut self, n: usize) -> bool {
        if n > self.off as usize {
            return false;
        }
        self.off -= n as u16;
        self.len += n as u16;
        true
    }
    /// [`Packet::adj`].
    #[inline]
    pub fn adj(&mut self, n: usize) {
        let n = n.min(self.len as usize) as u16;
        self.off += n;
        self.len -= n;
    }
    /// [`Packet::set_len`] in a buffer of `cap` bytes.
    #[inline]
    pub fn set_len(&mut self, len: usize, cap: usize) -> bool {
        if self.off as usize + len > cap {
            return false;
        }
        self.len = len as u16;
        true
    }
}

/// One worker's queues on one port.
pub trait Port: Send {
    type Pkt: Packet;
    /// Appends up to `BURST` received packets to `out`; returns how many.
    fn rx_burst(&mut self, out: &mut Vec<Self::Pkt>) -> usize;
    /// Sends the packets in `pkts`, removing those sent. Packets left in the
    /// vector could not be sent; the caller drops and counts them.
    fn tx_burst(&mut self, pkts: &mut Vec<Self::Pkt>);
    /// A fresh, empty packet with headroom (ARP replies, ICMP, fragments).
    fn alloc(&mut self) -> Option<Self::Pkt>;
    /// The port's MAC address.
    fn mac(&self) -> Mac;
    /// Descriptors that become readable when frames arrive, for an idle
    /// worker to sleep on (poll(2)) instead of spinning. Backends that
    /// cannot wake a sleeper add none, and their workers keep polling.
    fn poll_fds(&self, _out: &mut Vec<std::os::fd::RawFd>) {}
    /// The interface's index, for a fast-path entry that leaves through
    /// it (0: unknown).
    fn ifindex(&self) -> u32 {
        0
    }
    /// The XDP flow map of the port's interface (`fastpath`), when the
    /// backend has one and it is enabled.
    fn flow_map(&mut self) -> Option<&mut dyn crate::fastpath::FlowMap> {
        None
    }
}

/// Asks the CPU to bring the cache line holding `*p` closer, so a lookup
/// later in the burst does not stall on memory.
#[inline(always)]
pub fn prefetch<T>(p: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint: it cannot fault, and changes no memory or
    // register; `p` is a valid reference anyway. SSE is baseline on x86_64.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            p as *const T as *const i8,
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A worker's doorbell: an eventfd its peers ring when they hand it packets
/// while it sleeps, so that an idle worker blocked in [`wait_readable`]
/// wakes at once instead of at its timeout.
pub struct Doorbell {
    fd: std::os::fd::OwnedFd,
    /// Set while the worker sleeps or is about to (peers ring only then).
    pub sleeping: std::sync::atomic::AtomicBool,
}

impl Doorbell {
    pub fn new() -> std::io::Result<Doorbell> {
        use std::os::fd::FromRawFd;
        // SAFETY: eventfd(2) with no memory arguments; checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Doorbell {
            // SAFETY: a fresh descriptor nothing else owns.
            fd: unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) },
            sleeping: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Wakes the worker if it sleeps (a syscall only then).
    #[inline]
    pub fn ring(&self) {
        use std::os::fd::AsRawFd;
        if self.sleeping.load(std::sync::atomic::Ordering::Relaxed) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to our eventfd.
            unsafe { libc::write(self.fd.as_raw_fd(), &one as *const u64 as *const _, 8) };
        }
    }

    /// Clears the count after a wake-up.
    pub fn clear(&self) {
        use std::os::fd::AsRawFd;
        let mut v: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64 (non-blocking).
        unsafe { libc::read(self.fd.as_raw_fd(), &mut v as *mut u64 as *mut _, 8) };
    }

    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.fd.as_raw_fd()
    }
}

/// Blocks until one of `fds` is readable or `timeout_ms` passes; true when
/// one is readable. Interrupted or failed waits return false (the caller
/// polls again either way).
pub fn wait_readable(fds: &[std::os::fd::RawFd], timeout_ms: i32) -> bool {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `p` is a valid array of `p.len()` pollfds for the call.
    let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
    r > 0
}
