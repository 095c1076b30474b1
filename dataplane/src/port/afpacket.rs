//! The AF_PACKET port backend, the appliance's default: Linux packet sockets
//! with a TPACKET_V3 memory-mapped receive ring, `sendmmsg` transmit, and
//! `PACKET_FANOUT` so that several workers share one interface. It needs no
//! system library, only a Linux kernel of 4.20 or later
//! (`PACKET_IGNORE_OUTGOING`) and `CAP_NET_RAW` (plus `CAP_NET_ADMIN` to turn
//! GRO off). References below are to the kernel's
//! `Documentation/networking/packet_mmap.rst` unless stated otherwise.
//!
//! # One socket per (worker, interface)
//!
//! [`AfPacketPort::open`] opens one socket bound to one interface and joins
//! it to a fanout group; every worker opens its own socket on the interface
//! with the *same* group id, and the kernel hands each received frame to
//! exactly one socket of the group. [`AfPacketPort::open_fanout`] opens all
//! of them at once and lets the kernel pick an unused group id
//! (`PACKET_FANOUT_FLAG_UNIQUEID`), which avoids clashes with other programs:
//! group ids are shared by every process in the network namespace, and a
//! socket that names a busy id with the same settings silently joins that
//! other program's group.
//!
//! The group uses `PACKET_FANOUT_HASH`: the kernel's flow hash (the NIC's RSS
//! hash when the driver supplies one, else a software hash of addresses and
//! ports that is the same for both directions of a flow) picks the socket, so
//! all packets of a flow reach the same worker, like RSS queues on a DPVS or
//! Katran box. Not chosen, on purpose:
//! - `PACKET_FANOUT_FLAG_DEFRAG`: the kernel would reassemble IP fragments
//!   before fanout. A load balancer forwards frames, not datagrams: a
//!   reassembled datagram can exceed the interface MTU and the buffer size
//!   (and would need refragmenting), and it makes the director's kernel hold
//!   fragment queues for traffic it does not terminate, an easy target for
//!   fragment floods. Without it, fragments of one datagram still stay
//!   together: the hash of a fragment covers addresses and protocol only
//!   (the ports are not in every fragment). The dataplane hands any packet
//!   that reached the wrong worker to its owner.
//! - `PACKET_FANOUT_FLAG_ROLLOVER`: moving frames to another socket when one
//!   ring is full would break flow affinity exactly under load.
//! - `PACKET_FANOUT_LB`/`CPU`/`RND`: no flow affinity.
//!
//! # Receive: TPACKET_V3 ring
//!
//! The kernel fills blocks of frames (section "TPACKET_V3") and hands a block
//! over when it is full or when the retire timeout expires; the worker copies
//! each frame into a pooled buffer (frames are small: one copy of at most
//! 1.5 kB beats keeping the block pinned until the last packet leaves the
//! worker) and gives the block back as soon as its last frame is copied. At
//! low packet rates a frame waits up to the retire timeout (1 ms by default)
//! in a partly filled block; that is the price of V3's batching.
//!
//! Two things the kernel does to received frames are undone here, so that the
//! dataplane sees frames as they were on the wire:
//! - VLAN offload: the kernel strips the 802.1Q tag into `tp_vlan_tci`
//!   (`TP_STATUS_VLAN_VALID`); the tag is put back into the frame.
//! - Checksum offload: a frame from a local stack over veth (or from a
//!   virtio device) may be `CHECKSUM_PARTIAL` (`TP_STATUS_CSUMNOTREADY`): its
//!   TCP/UDP checksum field holds only the pseudo-header sum. The dataplane
//!   updates checksums incrementally, which needs a complete checksum to
//!   start from, so the backend completes it in software (IPv4 only).
//!
//! # Transmit: `sendmmsg`
//!
//! A burst leaves in one `sendmmsg(2)` call straight from the packet buffers,
//! bypassing the qdisc (`PACKET_QDISC_BYPASS`, section "PACKET_QDISC_BYPASS")
//! as DPDK would. Such frames also skip the packet taps (the kernel calls
//! `dev_queue_xmit_nit` on the qdisc path only): `tcpdump` on the director
//! does not show what the dataplane sends; capture on the peer or switch
//! instead. A `PACKET_TX_RING` was considered and not taken: it costs
//! the same one copy per frame (into the ring instead of the kernel's copy
//! into the skb), but its slots come back asynchronously, when the driver or,
//! on veth, the peer's stack frees the skb that references the ring pages
//! (`tpacket_destruct_skb`), so the backend would need slot bookkeeping and a
//! "ring full" state, while `sendmmsg` returns with every buffer reusable.
//!
//! `PACKET_IGNORE_OUTGOING` (and `PACKET_FANOUT_FLAG_IGNORE_OUTGOING`, since a
//! fanout group receives through the group's hook, not the socket's) keeps a
//! worker from receiving the frames any worker, or the kernel, transmits.
//!
//! # Buffers
//!
//! Every [`AfPacket`] owns a boxed 2 kB buffer. Buffers are recycled through a
//! free list per *thread*: dropping a packet (after it was sent, or when the
//! worker drops it) pushes its buffer on the free list of the thread that
//! drops it, and receiving or [`Port::alloc`] pops from it. A worker runs on
//! one thread, so its ports share one free list, which is what they need:
//! a packet received on one port and sent on another leaves its buffer where
//! the next receive finds it. The free list is a thread-local `Vec`, so the
//! per-packet path has no lock and no atomic; once a worker's free list holds
//! as many buffers as it ever has in flight, it no longer allocates. Packets
//! handed to another worker end up in that worker's list; each list is
//! capped ([`POOL_CAP`]), beyond which buffers are freed.
//!
//! # What the director's kernel must be told
//!
//! AF_PACKET receives *copies*: the kernel still processes every frame. That
//! is what keeps the director's own address working (SSH, health-check
//! replies, VRRP and everything the control plane does through ordinary
//! sockets), and it is also why the kernel must be kept out of the way of
//! load-balanced traffic:
//! - `net.ipv4.ip_forward=0` (and `net.ipv4.conf.<if>.forwarding=0`): the
//!   kernel must not route what the dataplane forwards, for example NAT
//!   replies from real servers on their way to clients, or it sends them a
//!   second time, untranslated. With forwarding off the kernel drops frames
//!   not addressed to it, silently (no ICMP).
//! - Virtual IPs and FULLNAT local addresses must NOT be configured on the
//!   kernel's interfaces: the dataplane answers ARP for them. If the kernel
//!   owned them it would answer ARP too, and answer the traffic itself (a TCP
//!   reset for a SYN to a port nobody listens on, ICMP port unreachable for
//!   UDP), racing the dataplane.
//! - The director's own address stays on the interface, owned by the kernel.
//! - `rp_filter` does not affect the dataplane (the copy is taken before IP
//!   input); only the kernel's own traffic is subject to it.
//! - GRO and LRO must be off: the copy is taken after GRO, so merged frames
//!   would exceed the buffers and be dropped (counted as `rx_oversize`).
//!   [`AfPacketOptions::disable_gro`] (default on) turns them off at open;
//!   they stay off after ferrovs exits.
//!   On veth, frames from the peer's stack arrive unsegmented when TSO/GSO
//!   is on *at the sender*: turn those off on the peers
//!   (`ethtool -K <if> tso off gso off`) in veth labs.
//! - The MTU must fit the 2 kB buffers (at most 1898 bytes, with room for two
//!   VLAN tags): [`AfPacketPort::open`] refuses larger MTUs.
//! - Optional: a `NOTRACK` rule in the raw table for VIP traffic saves the
//!   kernel conntrack work on copies it will drop anyway.

use super::{Packet, Port, BURST, HEADROOM};
use crate::wire::{checksum, ethernet, ipv4, l4, Mac};
use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::io;
use std::mem::{self, ManuallyDrop};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// Size of one packet buffer, headroom included.
pub const BUF_SIZE: usize = 2048;
/// The largest frame a buffer holds after the headroom.
pub const MAX_FRAME: usize = BUF_SIZE - HEADROOM;
/// The largest interface MTU the backend accepts: a frame of this MTU with
/// an Ethernet header and two VLAN tags fills [`MAX_FRAME`].
pub const MAX_MTU: u32 = (MAX_FRAME - ethernet::HEADER_LEN - 2 * ethernet::VLAN_TAG_LEN) as u32;
/// Buffers kept on one thread's free list at most (16 MiB).
pub const POOL_CAP: usize = 8192;

/// Frames per `sendmmsg` call; a worker's bursts are `BURST`, a flush may
/// carry a few more (ARP probes, ICMP).
const TX_BATCH: usize = 2 * BURST;

/// `TPACKET_V3` from `enum tpacket_versions` (if_packet.h).
const TPACKET_V3: libc::c_int = 2;
/// `ETHTOOL_GGRO`, `ETHTOOL_SGRO`, `ETHTOOL_GFLAGS`, `ETHTOOL_SFLAGS` and
/// `ETH_FLAG_LRO` from linux/ethtool.h.
const ETHTOOL_GGRO: u32 = 0x2b;
const ETHTOOL_SGRO: u32 = 0x2c;
const ETHTOOL_GFLAGS: u32 = 0x25;
const ETHTOOL_SFLAGS: u32 = 0x26;
const ETH_FLAG_LRO: u32 = 1 << 15;

type Buf = [u8; BUF_SIZE];

// ---------------------------------------------------------------------------
// Buffer pool

thread_local! {
    /// This thread's free buffers (see "Buffers" in the module doc). Boxed
    /// on purpose: packets own a `Box`, which moves in and out for free.
    #[allow(clippy::vec_box)]
    static POOL: RefCell<Vec<Box<Buf>>> = const { RefCell::new(Vec::new()) };
    /// Buffers this thread allocated because its free list was empty.
    static POOL_ALLOCS: Cell<u64> = const { Cell::new(0) };
}

#[inline]
fn buf_get() -> Box<Buf> {
    let b = POOL
        .try_with(|p| p.try_borrow_mut().ok().and_then(|mut v| v.pop()))
        .ok()
        .flatten();
    match b {
        Some(b) => b,
        None => {
            let _ = POOL_ALLOCS.try_with(|c| c.set(c.get() + 1));
            Box::new([0; BUF_SIZE])
        }
    }
}

#[inline]
fn buf_put(b: Box<Buf>) {
    // When the thread is exiting (TLS gone) or the list is full, the buffer
    // is simply freed.
    let _ = POOL.try_with(move |p| {
        if let Ok(mut v) = p.try_borrow_mut() {
            if v.len() < POOL_CAP {
                if v.capacity() == 0 {
                    v.reserve(4 * BURST);
                }
                v.push(b);
            }
        }
    });
}

/// The calling thread's buffer pool: free buffers, and buffers allocated so
/// far because the free list was empty (constant once warm).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStats {
    pub free: usize,
    pub allocated: u64,
}

/// The calling thread's [`PoolStats`].
pub fn thread_pool_stats() -> PoolStats {
    PoolStats {
        free: POOL.with(|p| p.borrow().len()),
        allocated: POOL_ALLOCS.with(|c| c.get()),
    }
}

// ---------------------------------------------------------------------------
// Packet

/// A packet of the AF_PACKET backend: an owned buffer with [`HEADROOM`] in
/// front of the frame. Dropping it returns the buffer to the dropping
/// thread's free list.
pub struct AfPacket {
    buf: ManuallyDrop<Box<Buf>>,
    off: u16,
    len: u16,
}

impl AfPacket {
    /// An empty packet with full headroom, from this thread's free list.
    #[inline]
    pub fn new() -> AfPacket {
        AfPacket {
            buf: ManuallyDrop::new(buf_get()),
            off: HEADROOM as u16,
            len: 0,
        }
    }
}

impl Default for AfPacket {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for AfPacket {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `buf` is taken exactly once, here, and `self` is not used
        // afterwards (this is its destructor).
        let b = unsafe { ManuallyDrop::take(&mut self.buf) };
        buf_put(b);
    }
}

impl Packet for AfPacket {
    #[inline(always)]
    fn data(&self) -> &[u8] {
        &self.buf[self.off as usize..(self.off + self.len) as usize]
    }
    #[inline(always)]
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.off as usize..(self.off + self.len) as usize]
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.off as usize {
            return false;
        }
        self.off -= n as u16;
        self.len += n as u16;
        true
    }
    #[inline]
    fn adj(&mut self, n: usize) {
        let n = n.min(self.len as usize) as u16;
        self.off += n;
        self.len -= n;
    }
    #[inline]
    fn set_len(&mut self, len: usize) -> bool {
        if self.off as usize + len > BUF_SIZE {
            return false;
        }
        self.len = len as u16;
        true
    }
}

// ---------------------------------------------------------------------------
// Options and counters

/// How a port is set up. The defaults suit a poll-mode worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AfPacketOptions {
    /// Bytes per RX ring block: a multiple of the page size, best a power of
    /// two (the kernel allocates each block as 2^n pages). Default 256 KiB,
    /// some 1,800 small frames.
    pub block_size: u32,
    /// Blocks in the RX ring. Default 32: 8 MiB per socket, enough to ride
    /// out a few milliseconds of a stalled worker at a million packets/s.
    pub block_count: u32,
    /// Milliseconds after which the kernel hands over a block that is not
    /// full (`tp_retire_blk_tov`): the worst added latency at low rates.
    /// Default 1, the smallest the kernel takes (0 lets the kernel derive it
    /// from link speed and block size).
    pub retire_timeout_ms: u32,
    /// `PACKET_IGNORE_OUTGOING`: do not receive frames sent on the interface
    /// (by us, other workers or the kernel). Keep it on; off is for taps.
    pub ignore_outgoing: bool,
    /// `PACKET_QDISC_BYPASS`: transmit straight to the driver. Off sends
    /// through the interface's qdisc (for `tc` shaping, or to let packet
    /// taps see the frames).
    pub qdisc_bypass: bool,
    /// Turn GRO and LRO off on the interface at open (needs
    /// `CAP_NET_ADMIN`); see the module doc.
    pub disable_gro: bool,
    /// Socket send buffer (`SO_SNDBUFFORCE`, falling back to `SO_SNDBUF`).
    pub sndbuf: u32,
}

impl Default for AfPacketOptions {
    fn default() -> Self {
        AfPacketOptions {
            block_size: 1 << 18,
            block_count: 32,
            retire_timeout_ms: 1,
            ignore_outgoing: true,
            qdisc_bypass: true,
            disable_gro: true,
            sndbuf: 4 << 20,
        }
    }
}

/// Port counters the data path keeps beside the worker's own (relaxed
/// atomics, added once per burst), and the kernel's ring statistics as last
/// read by [`AfPacketPort::refresh_kernel_stats`].
#[derive(Debug, Default)]
pub struct PortCounters {
    /// Frames dropped because they do not fit a buffer (GRO, jumbo).
    pub rx_oversize: AtomicU64,
    /// Frames the kernel truncated (`tp_snaplen < tp_len`) or that were
    /// malformed in the ring; dropped.
    pub rx_truncated: AtomicU64,
    /// Frames whose TCP/UDP checksum was completed (`CHECKSUM_PARTIAL`).
    pub rx_csum_completed: AtomicU64,
    /// Frames whose VLAN tag was put back.
    pub rx_vlan_restored: AtomicU64,
    /// Frames the kernel refused to send (each left to the caller).
    pub tx_errors: AtomicU64,
    /// Bursts cut short because the socket or device queue was full.
    pub tx_busy: AtomicU64,
    /// Kernel `PACKET_STATISTICS`: frames received by the socket.
    pub kernel_packets: AtomicU64,
    /// Kernel `PACKET_STATISTICS`: frames dropped because the ring was full.
    pub kernel_drops: AtomicU64,
    /// Kernel `PACKET_STATISTICS`: times the ring was frozen (all blocks
    /// with the user).
    pub kernel_freezes: AtomicU64,
}

#[derive(Default)]
struct BurstCounts {
    oversize: u64,
    truncated: u64,
    csum: u64,
    vlan: u64,
}

// ---------------------------------------------------------------------------
// Small syscall helpers

/// The last OS error, with what we were doing in front of it.
fn os_err(what: impl std::fmt::Display) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, val: &T) -> io::Result<()> {
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

fn getsockopt<T: Copy + Default>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<T> {
    let mut val = T::default();
    let mut len = mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `val` is a writable `T` and `len` its size; the kernel writes at
    // most `len` bytes and updates `len`.
    let r =
        unsafe { libc::getsockopt(fd, level, name, &mut val as *mut T as *mut c_void, &mut len) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(val)
    }
}

/// A socket for interface ioctls (any socket family works; a UDP socket
/// needs no privilege).
fn ioctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(os_err("socket(AF_INET) for interface ioctls"));
    }
    // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
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

fn ifname_err(ifname: &str, what: &str, e: io::Error) -> io::Error {
    let hint = if e.raw_os_error() == Some(libc::ENODEV) {
        " (no such interface)"
    } else {
        ""
    };
    io::Error::new(e.kind(), format!("{what} of {ifname}: {e}{hint}"))
}

/// The interface index of `ifname` (`SIOCGIFINDEX`).
pub fn if_index(ifname: &str) -> io::Result<u32> {
    let s = ioctl_socket()?;
    let mut ifr = ifreq_for(ifname)?;
    ioctl_ifreq(s.as_raw_fd(), libc::SIOCGIFINDEX, &mut ifr)
        .map_err(|e| ifname_err(ifname, "interface index", e))?;
    // SAFETY: SIOCGIFINDEX succeeded, so the union holds `ifru_ifindex`.
    Ok(unsafe { ifr.ifr_ifru.ifru_ifindex } as u32)
}

/// The MAC address of the Ethernet interface `ifname` (`SIOCGIFHWADDR`);
/// an error for interfaces that are not Ethernet (loopback, tun, ipip).
pub fn if_mac(ifname: &str) -> io::Result<Mac> {
    let s = ioctl_socket()?;
    let mut ifr = ifreq_for(ifname)?;
    ioctl_ifreq(s.as_raw_fd(), libc::SIOCGIFHWADDR, &mut ifr)
        .map_err(|e| ifname_err(ifname, "hardware address", e))?;
    // SAFETY: SIOCGIFHWADDR succeeded, so the union holds `ifru_hwaddr`.
    let sa = unsafe { ifr.ifr_ifru.ifru_hwaddr };
    if sa.sa_family != libc::ARPHRD_ETHER {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "{ifname} is not an Ethernet interface (ARPHRD type {}); the AF_PACKET backend needs Ethernet",
                sa.sa_family
            ),
        ));
    }
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    Ok(mac)
}

/// The MTU of `ifname` (`SIOCGIFMTU`).
pub fn if_mtu(ifname: &str) -> io::Result<u32> {
    let s = ioctl_socket()?;
    let mut ifr = ifreq_for(ifname)?;
    ioctl_ifreq(s.as_raw_fd(), libc::SIOCGIFMTU, &mut ifr)
        .map_err(|e| ifname_err(ifname, "MTU", e))?;
    // SAFETY: SIOCGIFMTU succeeded, so the union holds `ifru_mtu`.
    Ok(unsafe { ifr.ifr_ifru.ifru_mtu } as u32)
}

/// `struct ethtool_value` (linux/ethtool.h).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

fn ethtool(fd: RawFd, ifname: &str, cmd: u32, data: u32) -> io::Result<u32> {
    let mut ev = EthtoolValue { cmd, data };
    let mut ifr = ifreq_for(ifname)?;
    ifr.ifr_ifru.ifru_data = &mut ev as *mut EthtoolValue as *mut libc::c_char;
    ioctl_ifreq(fd, libc::SIOCETHTOOL, &mut ifr)?;
    Ok(ev.data)
}

/// Whether GRO or LRO is on for `ifname` (drivers that do not implement
/// the query count as off).
pub fn if_gro(ifname: &str) -> io::Result<bool> {
    let s = ioctl_socket()?;
    let fd = s.as_raw_fd();
    let unsupported = |e: &io::Error| e.raw_os_error() == Some(libc::EOPNOTSUPP);
    let gro = match ethtool(fd, ifname, ETHTOOL_GGRO, 0) {
        Ok(v) => v != 0,
        Err(e) if unsupported(&e) => false,
        Err(e) => return Err(ifname_err(ifname, "GRO state", e)),
    };
    let lro = match ethtool(fd, ifname, ETHTOOL_GFLAGS, 0) {
        Ok(v) => v & ETH_FLAG_LRO != 0,
        Err(e) if unsupported(&e) => false,
        Err(e) => return Err(ifname_err(ifname, "offload flags", e)),
    };
    Ok(gro || lro)
}

/// Turns GRO and LRO on or off for `ifname` (`CAP_NET_ADMIN`). Turning
/// them on is for tests.
pub fn set_if_gro(ifname: &str, on: bool) -> io::Result<()> {
    let s = ioctl_socket()?;
    let fd = s.as_raw_fd();
    ethtool(fd, ifname, ETHTOOL_SGRO, on as u32)
        .map_err(|e| ifname_err(ifname, "setting GRO", e))?;
    if !on {
        // Read-modify-write: ETHTOOL_SFLAGS sets all the legacy flags.
        match ethtool(fd, ifname, ETHTOOL_GFLAGS, 0) {
            Ok(f) if f & ETH_FLAG_LRO != 0 => {
                ethtool(fd, ifname, ETHTOOL_SFLAGS, f & !ETH_FLAG_LRO)
                    .map_err(|e| ifname_err(ifname, "turning LRO off", e))?;
            }
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {}
            Err(e) => return Err(ifname_err(ifname, "offload flags", e)),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// RX ring

/// The memory-mapped TPACKET_V3 receive ring and where the worker is in it.
struct RxRing {
    base: *mut u8,
    size: usize,
    block_size: usize,
    block_count: usize,
    /// The block to read next (the kernel fills blocks in order).
    cur: usize,
    /// Frames left in block `cur` while the worker holds it; 0 means the
    /// worker holds no block.
    remaining: u32,
    /// Offset in block `cur` of the next frame's `tpacket3_hdr`.
    next_off: usize,
}

// SAFETY: the mapping belongs to this ring alone (one socket, one port);
// moving the port to another thread moves sole access with it.
unsafe impl Send for RxRing {}

impl RxRing {
    #[inline(always)]
    fn desc(&self) -> *mut libc::tpacket_block_desc {
        // SAFETY: `cur < block_count`, so the offset stays inside the mapping.
        unsafe { self.base.add(self.cur * self.block_size) as *mut libc::tpacket_block_desc }
    }

    /// The block's status word, shared with the kernel.
    #[inline(always)]
    fn status(&self) -> &AtomicU32 {
        // SAFETY: `desc()` points into the mapping at a block descriptor,
        // which the kernel initialised for TPACKET_V3 (addr_of_mut! creates no
        // reference); the word is 4-aligned (blocks are page-aligned), lives
        // as long as the mapping, i.e. as `self`, and is only ever accessed
        // atomically from user space.
        unsafe { AtomicU32::from_ptr(ptr::addr_of_mut!((*self.desc()).hdr.bh1.block_status)) }
    }

    /// Takes block `cur` if the kernel has handed it to user space.
    #[inline]
    fn acquire(&mut self) -> bool {
        // Acquire pairs with the kernel's smp_wmb() before it publishes the
        // block: the frames and the header are complete once we see USER.
        if self.status().load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
            return false;
        }
        let d = self.desc();
        // SAFETY: the block is ours now (TP_STATUS_USER); the header fields
        // are in the mapping.
        let (num, first) = unsafe {
            (
                ptr::read_volatile(ptr::addr_of!((*d).hdr.bh1.num_pkts)),
                ptr::read_volatile(ptr::addr_of!((*d).hdr.bh1.offset_to_first_pkt)),
            )
        };
        self.remaining = num;
        self.next_off = first as usize;
        if num == 0 {
            self.release();
        }
        true
    }

    /// Gives block `cur` back to the kernel and moves on.
    #[inline]
    fn release(&mut self) {
        // Writing TP_STATUS_KERNEL hands the block back (packet_mmap.rst);
        // Release: our reads of it are done before the kernel may refill it.
        self.status()
            .store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.remaining = 0;
        self.cur = (self.cur + 1) % self.block_count;
    }

    /// The next frame of the held block: its header and bytes as stored
    /// (possibly truncated to `tp_snaplen`). None when the block's layout is
    /// not sane, in which case the block is released.
    #[inline]
    fn next(&mut self) -> Option<(libc::tpacket3_hdr, &[u8])> {
        debug_assert!(self.remaining > 0);
        let hdr_len = mem::size_of::<libc::tpacket3_hdr>();
        if self.next_off + hdr_len > self.block_size {
            self.release();
            return None;
        }
        // SAFETY: `next_off + hdr_len <= block_size`, so the header lies in
        // block `cur` of the mapping, which we hold; the kernel aligns frame
        // headers to TPACKET_ALIGNMENT (16), more than the struct needs.
        let h: libc::tpacket3_hdr = unsafe {
            ptr::read((self.desc() as *const u8).add(self.next_off) as *const libc::tpacket3_hdr)
        };
        let start = self.next_off + h.tp_mac as usize;
        let len = h.tp_snaplen as usize;
        if start + len > self.block_size {
            self.release();
            return None;
        }
        self.remaining -= 1;
        self.next_off += h.tp_next_offset as usize;
        // SAFETY: `start + len <= block_size`: the bytes lie in the held block,
        // which the kernel does not touch until we release it (after the
        // caller has copied them: the slice borrows `self`).
        let frame =
            unsafe { std::slice::from_raw_parts((self.desc() as *const u8).add(start), len) };
        Some((h, frame))
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: `base`/`size` are exactly what mmap returned; nothing
        // refers into the mapping any more (frames were copied out).
        unsafe { libc::munmap(self.base as *mut c_void, self.size) };
    }
}

// ---------------------------------------------------------------------------
// Port

/// One worker's socket on one interface.
pub struct AfPacketPort {
    // Field order matters on drop: unmap the ring, then close the socket.
    ring: RxRing,
    fd: OwnedFd,
    ifname: String,
    ifindex: u32,
    mac: Mac,
    mtu: u32,
    fanout_group: u16,
    counters: Arc<PortCounters>,
}

impl std::fmt::Debug for AfPacketPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfPacketPort")
            .field("ifname", &self.ifname)
            .field("ifindex", &self.ifindex)
            .field("mac", &ethernet::fmt_mac(&self.mac))
            .field("mtu", &self.mtu)
            .field("fanout_group", &self.fanout_group)
            .finish()
    }
}

/// How to join the fanout group.
#[derive(Clone, Copy)]
enum Group {
    Id(u16),
    /// Let the kernel pick an unused id (the first socket of a group).
    Unique,
}

impl AfPacketPort {
    /// Opens a socket on `ifname` and joins fanout group `fanout_group`;
    /// every worker's socket on the interface must use the same group id,
    /// and each interface its own (ids are per network namespace, see the
    /// module doc; [`open_fanout`](Self::open_fanout) picks one for you).
    pub fn open(
        ifname: &str,
        fanout_group: u16,
        opts: &AfPacketOptions,
    ) -> io::Result<AfPacketPort> {
        Self::open_inner(ifname, Group::Id(fanout_group), opts)
    }

    /// Opens `n` sockets on `ifname`, one per worker, in a fanout group
    /// whose id the kernel picks so that it cannot clash.
    pub fn open_fanout(
        ifname: &str,
        n: usize,
        opts: &AfPacketOptions,
    ) -> io::Result<Vec<AfPacketPort>> {
        let mut ports = Vec::with_capacity(n);
        if n == 0 {
            return Ok(ports);
        }
        let first = Self::open_inner(ifname, Group::Unique, opts)?;
        let id = first.fanout_group;
        ports.push(first);
        for _ in 1..n {
            ports.push(Self::open_inner(ifname, Group::Id(id), opts)?);
        }
        Ok(ports)
    }

    fn open_inner(ifname: &str, group: Group, opts: &AfPacketOptions) -> io::Result<AfPacketPort> {
        let ctx = |what: &str, e: io::Error| {
            io::Error::new(e.kind(), format!("AF_PACKET port {ifname}: {what}: {e}"))
        };
        let page = page_size();
        if opts.block_size == 0
            || opts.block_size as usize & (page - 1) != 0
            || opts.block_count == 0
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "AF_PACKET port {ifname}: block size {} must be a non-zero multiple of the page size ({page}) and block count {} non-zero",
                    opts.block_size, opts.block_count
                ),
            ));
        }
        let ifindex = if_index(ifname)?;
        let mac = if_mac(ifname)?;
        let mtu = if_mtu(ifname)?;
        if mtu > MAX_MTU {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "AF_PACKET port {ifname}: MTU {mtu} is larger than the backend's buffers allow ({MAX_MTU}); lower it (ip link set dev {ifname} mtu 1500)"
                ),
            ));
        }
        if opts.disable_gro && if_gro(ifname)? {
            set_if_gro(ifname, false)?;
        }

        // Protocol 0: the socket receives nothing until bind() below, after
        // the ring is in place.
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            let e = io::Error::last_os_error();
            let hint = if e.raw_os_error() == Some(libc::EPERM) {
                " (needs CAP_NET_RAW: run as root)"
            } else {
                ""
            };
            return Err(io::Error::new(
                e.kind(),
                format!("AF_PACKET port {ifname}: socket(AF_PACKET): {e}{hint}"),
            ));
        }
        // SAFETY: `raw` is a freshly created descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let s = fd.as_raw_fd();

        setsockopt(s, libc::SOL_PACKET, libc::PACKET_VERSION, &TPACKET_V3)
            .map_err(|e| ctx("PACKET_VERSION TPACKET_V3", e))?;
        // tp_frame_size/tp_frame_nr are only checked for consistency in V3
        // (frames are packed in blocks); 2048 is a TPACKET_ALIGNMENT multiple.
        let frame_size = 2048u32;
        let req = libc::tpacket_req3 {
            tp_block_size: opts.block_size,
            tp_block_nr: opts.block_count,
            tp_frame_size: frame_size,
            tp_frame_nr: opts.block_size / frame_size * opts.block_count,
            tp_retire_blk_tov: opts.retire_timeout_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(s, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)
            .map_err(|e| ctx("PACKET_RX_RING", e))?;
        let size = opts.block_size as usize * opts.block_count as usize;
        // SAFETY: maps the ring the kernel just allocated for this socket;
        // length and flags as packet_mmap.rst describes. Checked below.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                s,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(ctx("mmap RX ring", io::Error::last_os_error()));
        }
        let ring = RxRing {
            base: base as *mut u8,
            size,
            block_size: opts.block_size as usize,
            block_count: opts.block_count as usize,
            cur: 0,
            remaining: 0,
            next_off: 0,
        };

        let one: libc::c_int = 1;
        if opts.qdisc_bypass {
            setsockopt(s, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, &one)
                .map_err(|e| ctx("PACKET_QDISC_BYPASS", e))?;
        }
        if opts.ignore_outgoing {
            setsockopt(s, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &one)
                .map_err(|e| ctx("PACKET_IGNORE_OUTGOING (Linux 4.20 or later)", e))?;
        }
        let sndbuf = opts.sndbuf.min(i32::MAX as u32) as libc::c_int;
        if setsockopt(s, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &sndbuf).is_err() {
            setsockopt(s, libc::SOL_SOCKET, libc::SO_SNDBUF, &sndbuf)
                .map_err(|e| ctx("SO_SNDBUF", e))?;
        }

        // SAFETY: all-zero is a valid `sockaddr_ll`; the fields are set below.
        let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as libc::c_int;
        // SAFETY: `sll` is a valid sockaddr_ll and the length is its size.
        let r = unsafe {
            libc::bind(
                s,
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(ctx("bind", io::Error::last_os_error()));
        }

        // Fanout (packet_mmap.rst, "AF_PACKET fanout mode"): only a bound
        // socket may join. The option value is id | (type | flags) << 16.
        let mut type_flags = libc::PACKET_FANOUT_HASH;
        if opts.ignore_outgoing {
            type_flags |= libc::PACKET_FANOUT_FLAG_IGNORE_OUTGOING;
        }
        let (id, what) = match group {
            Group::Id(id) => (id, format!("join fanout group {id}")),
            Group::Unique => {
                type_flags |= libc::PACKET_FANOUT_FLAG_UNIQUEID;
                (0, "create a fanout group".to_string())
            }
        };
        let arg: u32 = id as u32 | (type_flags << 16);
        setsockopt(s, libc::SOL_PACKET, libc::PACKET_FANOUT, &arg).map_err(|e| {
            let hint = if e.raw_os_error() == Some(libc::EINVAL) {
                " (is the id used by another interface or program with other settings? ids are shared in the network namespace)"
            } else {
                ""
            };
            io::Error::new(
                e.kind(),
                format!("AF_PACKET port {ifname}: {what}: {e}{hint}"),
            )
        })?;
        let fanout_group = match group {
            Group::Id(id) => id,
            Group::Unique => {
                let v: u32 = getsockopt(s, libc::SOL_PACKET, libc::PACKET_FANOUT)
                    .map_err(|e| ctx("read fanout group id", e))?;
                (v & 0xffff) as u16
            }
        };

        Ok(AfPacketPort {
            ring,
            fd,
            ifname: ifname.to_string(),
            ifindex,
            mac,
            mtu,
            fanout_group,
            counters: Arc::new(PortCounters::default()),
        })
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
    /// The MTU read at open.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }
    /// The fanout group id (the kernel's pick after [`open_fanout`](Self::open_fanout)).
    pub fn fanout_group(&self) -> u16 {
        self.fanout_group
    }
    /// The port's counters, shareable with the control plane.
    pub fn counters(&self) -> Arc<PortCounters> {
        self.counters.clone()
    }

    /// Adds the kernel's `PACKET_STATISTICS` since the last call (reading
    /// resets them) to [`PortCounters`]. A syscall: call it from
    /// housekeeping, not per burst.
    pub fn refresh_kernel_stats(&self) -> io::Result<()> {
        #[derive(Clone, Copy, Default)]
        #[repr(C)]
        struct StatsV3 {
            packets: u32,
            drops: u32,
            freeze_q_cnt: u32,
        }
        let st: StatsV3 = getsockopt(
            self.fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
        )
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("AF_PACKET port {}: PACKET_STATISTICS: {e}", self.ifname),
            )
        })?;
        let c = &self.counters;
        // tp_packets counts dropped frames too (af_packet.c adds drops in).
        c.kernel_packets.fetch_add(
            st.packets.saturating_sub(st.drops) as u64,
            Ordering::Relaxed,
        );
        c.kernel_drops.fetch_add(st.drops as u64, Ordering::Relaxed);
        c.kernel_freezes
            .fetch_add(st.freeze_q_cnt as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Copies one ring frame into a packet, restoring the VLAN tag and
    /// completing a partial checksum; None (counted) when it does not fit.
    #[inline]
    fn take_frame(h: &libc::tpacket3_hdr, frame: &[u8], cnt: &mut BurstCounts) -> Option<AfPacket> {
        if h.tp_snaplen < h.tp_len || frame.len() < ethernet::HEADER_LEN {
            cnt.truncated += 1;
            return None;
        }
        let st = h.tp_status;
        let vlan = st & libc::TP_STATUS_VLAN_VALID != 0;
        let total = frame.len() + if vlan { ethernet::VLAN_TAG_LEN } else { 0 };
        if total > MAX_FRAME {
            cnt.oversize += 1;
            return None;
        }
        let mut p = AfPacket::new();
        p.len = total as u16;
        let d = p.data_mut();
        if vlan {
            let tpid = if st & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                h.hv1.tp_vlan_tpid
            } else {
                ethernet::ETHERTYPE_VLAN
            };
            d[..12].copy_from_slice(&frame[..12]);
            d[12..14].copy_from_slice(&tpid.to_be_bytes());
            d[14..16].copy_from_slice(&(h.hv1.tp_vlan_tci as u16).to_be_bytes());
            d[16..].copy_from_slice(&frame[12..]);
            cnt.vlan += 1;
        } else {
            d.copy_from_slice(frame);
        }
        if st & libc::TP_STATUS_CSUMNOTREADY != 0 && complete_l4_checksum(d) {
            cnt.csum += 1;
        }
        Some(p)
    }
}

impl AsRawFd for AfPacketPort {
    /// The socket, for poll(2) when a worker idles (POLLIN: a block is ready).
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Completes the TCP or UDP checksum of an IPv4 frame whose checksum field
/// holds only the pseudo-header sum (`CHECKSUM_PARTIAL`): the whole checksum
/// is computed afresh. Returns false, leaving the frame alone, for anything
/// else (not IPv4, not TCP/UDP, a fragment, malformed).
pub fn complete_l4_checksum(frame: &mut [u8]) -> bool {
    let Some(l2) = ethernet::parse(frame) else {
        return false;
    };
    if l2.ethertype != ethernet::ETHERTYPE_IPV4 {
        return false;
    }
    let ip = &mut frame[l2.l3_offset..];
    if ip.len() < ipv4::MIN_HEADER_LEN || ip[0] >> 4 != 4 {
        return false;
    }
    let ihl = (ip[0] & 0x0f) as usize * 4;
    let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    if ihl < ipv4::MIN_HEADER_LEN || total < ihl || total > ip.len() {
        return false;
    }
    let frag = u16::from_be_bytes([ip[6], ip[7]]);
    if frag & (ipv4::FLAG_MF | ipv4::FRAG_OFFSET_MASK) != 0 {
        return false;
    }
    let proto = ip[9];
    if proto != ipv4::PROTO_TCP && proto != ipv4::PROTO_UDP {
        return false;
    }
    let src: [u8; 4] = ip[12..16].try_into().unwrap();
    let dst: [u8; 4] = ip[16..20].try_into().unwrap();
    let seg = &mut ip[ihl..total];
    let off = l4::checksum_offset(proto);
    if seg.len() < off + 2 {
        return false;
    }
    seg[off..off + 2].fill(0);
    let s = checksum::pseudo_header_v4(src, dst, proto, seg.len() as u16)
        + checksum::fold(checksum::sum(seg)) as u32;
    let mut c = !checksum::fold(s);
    if proto == ipv4::PROTO_UDP && c == 0 {
        // RFC 768: a computed zero is sent as all ones (0 means "none").
        c = 0xffff;
    }
    seg[off..off + 2].copy_from_slice(&c.to_be_bytes());
    true
}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

impl Port for AfPacketPort {
    type Pkt = AfPacket;

    fn rx_burst(&mut self, out: &mut Vec<AfPacket>) -> usize {
        let mut n = 0;
        let mut cnt = BurstCounts::default();
        while n < BURST {
            if self.ring.remaining == 0 && !self.ring.acquire() {
                break;
            }
            if self.ring.remaining == 0 {
                continue; // an empty block, already given back
            }
            let Some((h, frame)) = self.ring.next() else {
                cnt.truncated += 1;
                continue;
            };
            if let Some(p) = Self::take_frame(&h, frame, &mut cnt) {
                out.push(p);
                n += 1;
            }
            if self.ring.remaining == 0 {
                self.ring.release();
            }
        }
        if cnt.oversize | cnt.truncated | cnt.csum | cnt.vlan != 0 {
            let c = &self.counters;
            c.rx_oversize.fetch_add(cnt.oversize, Ordering::Relaxed);
            c.rx_truncated.fetch_add(cnt.truncated, Ordering::Relaxed);
            c.rx_csum_completed.fetch_add(cnt.csum, Ordering::Relaxed);
            c.rx_vlan_restored.fetch_add(cnt.vlan, Ordering::Relaxed);
        }
        n
    }

    fn tx_burst(&mut self, pkts: &mut Vec<AfPacket>) {
        // pkts[..kept]: refused by the kernel; [kept..i]: sent; [i..]: not
        // tried yet.
        let mut kept = 0;
        let mut i = 0;
        let mut errors = 0u64;
        let mut busy = false;
        let mut retries = 0;
        while i < pkts.len() {
            let k = (pkts.len() - i).min(TX_BATCH);
            // SAFETY: iovec and mmsghdr are C structs of pointers and
            // integers, for which all-zero bytes are valid values.
            let mut iov: [libc::iovec; TX_BATCH] = unsafe { mem::zeroed() };
            // SAFETY: as above.
            let mut msgs: [libc::mmsghdr; TX_BATCH] = unsafe { mem::zeroed() };
            for j in 0..k {
                let d = pkts[i + j].data();
                iov[j].iov_base = d.as_ptr() as *mut c_void;
                iov[j].iov_len = d.len();
                // No address: the socket sends on the interface it is bound to.
                msgs[j].msg_hdr.msg_iov = &mut iov[j];
                msgs[j].msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: `msgs[..k]` are initialised message headers whose
            // iovecs point into packets in `pkts`, which are neither moved
            // nor dropped during the call; the kernel only reads them (and
            // writes msg_len).
            let r = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    k as _,
                    libc::MSG_DONTWAIT as _,
                )
            };
            if r > 0 {
                i += r as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) if retries < 4 => retries += 1,
                Some(libc::EAGAIN) | Some(libc::ENOBUFS) => {
                    busy = true;
                    break;
                }
                // The device is down or gone: nothing will go out.
                Some(libc::ENETDOWN) | Some(libc::ENXIO) | Some(libc::ENODEV) => {
                    errors += (pkts.len() - i) as u64;
                    break;
                }
                // This frame was refused (too big, malformed): keep it for the
                // caller and go on with the rest.
                _ => {
                    errors += 1;
                    pkts.swap(kept, i);
                    kept += 1;
                    i += 1;
                }
            }
        }
        // Sent packets go back to this thread's free list as they drop.
        pkts.drain(kept..i);
        if errors > 0 {
            self.counters.tx_errors.fetch_add(errors, Ordering::Relaxed);
        }
        if busy {
            self.counters.tx_busy.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn alloc(&mut self) -> Option<AfPacket> {
        Some(AfPacket::new())
    }

    fn mac(&self) -> Mac {
        self.mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4/UDP frame with a correct checksum, and the same frame as a
    /// CHECKSUM_PARTIAL sender leaves it (pseudo-header sum in the field).
    fn udp_frame(payload: &[u8], vlan: Option<u16>) -> (Vec<u8>, Vec<u8>) {
        let mut f = vec![0u8; 64 + payload.len()];
        let l3 = ethernet::write_header(
            &mut f,
            &[2, 0, 0, 0, 0, 2],
            &[2, 0, 0, 0, 0, 1],
            vlan,
            ethernet::ETHERTYPE_IPV4,
        );
        let udp_len = 8 + payload.len();
        let ip = &mut f[l3..];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = ipv4::PROTO_UDP;
        ip[12..16].copy_from_slice(&[198, 18, 0, 2]);
        ip[16..20].copy_from_slice(&[198, 18, 0, 1]);
        ipv4::fill_checksum(ip);
        let u = &mut ip[20..20 + udp_len];
        u[0..2].copy_from_slice(&40000u16.to_be_bytes());
        u[2..4].copy_from_slice(&9999u16.to_be_bytes());
        u[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
        u[8..].copy_from_slice(payload);
        let pseudo =
            checksum::pseudo_header_v4([198, 18, 0, 2], [198, 18, 0, 1], 17, udp_len as u16);
        let full = !checksum::fold(pseudo + checksum::fold(checksum::sum(u)) as u32);
        let mut good = f.clone();
        let gl3 = l3 + 20 + 6;
        good[gl3..gl3 + 2].copy_from_slice(&full.to_be_bytes());
        let mut partial = f;
        partial[gl3..gl3 + 2].copy_from_slice(&checksum::fold(pseudo).to_be_bytes());
        let end = l3 + 20 + udp_len;
        good.truncate(end);
        partial.truncate(end);
        (good, partial)
    }

    #[test]
    fn completes_partial_udp_checksum_untagged_and_tagged() {
        for vlan in [None, Some(7)] {
            for len in [0usize, 1, 17, 1000] {
                let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let (good, mut partial) = udp_frame(&payload, vlan);
                assert_ne!(good, partial);
                assert!(complete_l4_checksum(&mut partial));
                assert_eq!(good, partial, "vlan {vlan:?} len {len}");
            }
        }
    }

    #[test]
    fn leaves_non_ip_and_fragments_alone() {
        let (_, mut partial) = udp_frame(b"abc", None);
        partial[14 + 6] = 0x20; // MF
        let before = partial.clone();
        assert!(!complete_l4_checksum(&mut partial));
        assert_eq!(before, partial);
        let mut arp = [0u8; 60];
        arp[12..14].copy_from_slice(&ethernet::ETHERTYPE_ARP.to_be_bytes());
        assert!(!complete_l4_checksum(&mut arp));
        assert!(!complete_l4_checksum(&mut [0u8; 10]));
    }

    #[test]
    fn packets_recycle_through_the_thread_pool() {
        let a = thread_pool_stats();
        let p: Vec<AfPacket> = (0..10).map(|_| AfPacket::new()).collect();
        drop(p);
        let b = thread_pool_stats();
        assert!(b.free >= 10);
        let p: Vec<AfPacket> = (0..10).map(|_| AfPacket::new()).collect();
        assert_eq!(thread_pool_stats().allocated, b.allocated);
        assert!(b.allocated >= a.allocated);
        drop(p);
    }

    #[test]
    fn packet_headroom_and_len() {
        let mut p = AfPacket::new();
        assert!(p.is_empty());
        assert!(p.set_len(MAX_FRAME));
        assert!(!p.set_len(MAX_FRAME + 1));
        assert!(p.prepend(HEADROOM));
        assert!(!p.prepend(1));
        p.adj(HEADROOM);
        assert_eq!(p.len(), MAX_FRAME);
    }

    #[test]
    fn rejects_bad_interface_names() {
        assert!(if_index("").is_err());
        assert!(if_index("a-name-that-is-too-long").is_err());
        let e = if_index("ferrovs-nope0").unwrap_err();
        assert!(e.to_string().contains("ferrovs-nope0"), "{e}");
    }
}
