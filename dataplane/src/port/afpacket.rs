//! The AF_PACKET port backend, the appliance's default: Linux packet sockets
//! with a TPACKET_V2 memory-mapped receive ring, `sendmmsg` transmit, and
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
//! # Receive: TPACKET_V2 ring
//!
//! The receive ring is a TPACKET_V2 ring (sections "Mapping and use of the
//! circular buffer (ring)" and "What TPACKET versions are available and
//! when to use them?"), the per-frame ring DPDK's af_packet PMD also uses:
//! a ring of fixed-size slots, each starting with a `tpacket2_hdr` whose `tp_status`
//! word says who owns it. The kernel writes a frame into the next slot and
//! sets `TP_STATUS_USER`; the worker takes it as soon as it sees that, copies
//! the frame into a pooled buffer (frames are small: one copy of at most
//! 1.9 kB beats keeping the slot until the packet leaves the worker) and
//! gives the slot back (`TP_STATUS_KERNEL`) at once.
//!
//! TPACKET_V3 was used before and was dropped for latency: V3 hands over
//! whole blocks of frames, only when a block is full or its retire timer
//! (1 ms at least) expires, so at low rates every frame waited up to 1 ms in
//! a partly filled block (one TCP connection through the director ran 15
//! times slower than through HAProxy). V2 has no timer: a frame is visible
//! the moment the kernel has written it, and `poll(2)` on the socket reports
//! `POLLIN` for it, so an idle worker can sleep and still wake per frame.
//! The costs: one shared status word per frame (an atomic load and a store
//! per packet instead of per block), and fixed-size slots: every frame takes
//! a whole slot ([`AfPacketOptions::frame_size`]), so a ring holds fewer
//! small frames per megabyte than V3's packed blocks did, and a frame larger
//! than a slot is truncated by the kernel (`tp_snaplen < tp_len`), which for
//! GSO/GRO super-frames is counted as [`PortCounters::rx_gso`].
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
//!   would exceed the buffers and be dropped (counted as `rx_gso`).
//!   [`AfPacketOptions::disable_gro`] (default on) turns them off at open;
//!   they stay off after ferrovs exits.
//!   On veth, frames from the peer's stack arrive unsegmented when TSO/GSO
//!   is on *at the sender*: turn those off on the peers
//!   (`ethtool -K <if> tso off gso off`) in veth labs.
//! - The MTU must fit the 2 kB buffers (at most 1898 bytes, with room for two
//!   VLAN tags): [`AfPacketPort::open`] refuses larger MTUs.
//! - Optional: a `NOTRACK` rule in the raw table for VIP traffic saves the
//!   kernel conntrack work on copies it will drop anyway.

use super::sys::{self, getsockopt, ioctl_socket, setsockopt};
use super::{Iface, Packet, Port, Window, BURST, HEADROOM};
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

/// `TPACKET_V2` from `enum tpacket_versions` (if_packet.h).
const TPACKET_V2: libc::c_int = 1;
/// `TPACKET_ALIGNMENT` (if_packet.h): slot sizes and the frame offset in a
/// slot are multiples of it.
const TPACKET_ALIGNMENT: usize = 16;

const fn tpacket_align(x: usize) -> usize {
    (x + TPACKET_ALIGNMENT - 1) & !(TPACKET_ALIGNMENT - 1)
}

/// The smallest RX slot that holds a frame of [`MAX_FRAME`] bytes without
/// truncation. The kernel (af_packet.c, `tpacket_rcv`) puts the network
/// header at `TPACKET_ALIGN(TPACKET2_HDRLEN + max(maclen, 16))` and the frame
/// `maclen` bytes before it, and truncates what would run past the slot, so
/// a frame ends at most `TPACKET_ALIGN(TPACKET2_HDRLEN + 16) + len` bytes
/// into its slot (for `maclen` over 16 the alignment padding is under 16
/// bytes, less than that bound).
pub const MIN_FRAME_SIZE: usize =
    tpacket_align(tpacket_align(libc::TPACKET2_HDRLEN + 16) + MAX_FRAME);

// The default slot size holds a full buffer's worth of frame.
const _: () = assert!(MIN_FRAME_SIZE <= 2048);
/// `ETHTOOL_GGRO`, `ETHTOOL_SGRO`, `ETHTOOL_GFLAGS`, `ETHTOOL_SFLAGS` and
/// `ETH_FLAG_LRO` from linux/ethtool.h.
const ETHTOOL_GGRO: u32 = 0x2b;
const ETHTOOL_SGRO: u32 = 0x2c;
const ETHTOOL_GFLAGS: u32 = 0x25;
const ETHTOOL_SFLAGS: u32 = 0x26;
const ETH_FLAG_LRO: u32 = 1 << 15;
const ETH_FLAG_RXVLAN: u32 = 1 << 8;

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
    w: Window,
}

impl AfPacket {
    /// An empty packet with full headroom, from this thread's free list.
    #[inline]
    pub fn new() -> AfPacket {
        AfPacket {
            buf: ManuallyDrop::new(buf_get()),
            w: Window::empty(HEADROOM),
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
        &self.buf[self.w.range()]
    }
    #[inline(always)]
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.w.range()]
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        self.w.prepend(n)
    }
    #[inline]
    fn adj(&mut self, n: usize) {
        self.w.adj(n)
    }
    #[inline]
    fn set_len(&mut self, len: usize) -> bool {
        self.w.set_len(len, BUF_SIZE)
    }
}

// ---------------------------------------------------------------------------
// Options and counters

/// How a port is set up. The defaults suit a poll-mode worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AfPacketOptions {
    /// Bytes per RX ring slot (`tp_frame_size`): a multiple of 16
    /// (`TPACKET_ALIGNMENT`) and at least [`MIN_FRAME_SIZE`], so that every
    /// frame a buffer can hold arrives whole. Default 2048, the smallest
    /// power of two that fits (two slots per 4 KiB page, none straddling a
    /// page); larger slots only waste memory, since a frame that does not
    /// fit 2048 does not fit a buffer either.
    pub frame_size: u32,
    /// Slots in the RX ring (rounded up to fill the last page-sized block).
    /// Default 8192: 16 MiB per socket at 2 KiB slots. Every frame takes a
    /// slot whatever its size, so this is the number of frames the kernel
    /// can queue while the worker is busy elsewhere: 8 ms of a stalled
    /// worker at a million packets/s. (The former V3 ring, 8 MiB of packed
    /// blocks, held some 58,000 minimum-size frames but only about 5,000
    /// full-size ones.)
    pub frame_count: u32,
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
            frame_size: 2048,
            frame_count: 8192,
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
    /// Frames dropped because they do not fit a buffer although they are
    /// no longer than the MTU allows (a tag restored onto a full frame);
    /// frames too long for the MTU count as [`rx_gso`](Self::rx_gso) instead.
    pub rx_oversize: AtomicU64,
    /// Frames dropped because the kernel truncated them (`tp_snaplen <
    /// tp_len`) although they are no longer than the MTU allows, or because
    /// their slot header was not sane (frame outside the slot).
    pub rx_truncated: AtomicU64,
    /// Frames dropped because `tp_len` exceeds the interface MTU (read at
    /// open) plus an Ethernet header and two VLAN tags: GSO/GRO super-frames,
    /// typically from a veth peer whose stack sends with TSO/GSO on, or
    /// from GRO/LRO left on. The fix is on the sender or the interface
    /// (`ethtool -K <if> tso off gso off gro off`); counted only here.
    pub rx_gso: AtomicU64,
    /// The largest `tp_len` among the [`rx_gso`](Self::rx_gso) frames.
    pub rx_gso_max_len: AtomicU64,
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
}

#[derive(Default)]
struct BurstCounts {
    oversize: u64,
    truncated: u64,
    gso: u64,
    gso_max: u64,
    csum: u64,
    vlan: u64,
}

fn ifname_err(ifname: &str, what: &str, e: io::Error) -> io::Error {
    let hint = if e.raw_os_error() == Some(libc::ENODEV) {
        " (no such interface)"
    } else {
        ""
    };
    io::Error::new(e.kind(), format!("{what} of {ifname}: {e}{hint}"))
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
    sys::ethtool(fd, ifname, &mut ev)?;
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

/// Turns the receive VLAN offload off (`ethtool -K IF rxvlan off`), so that
/// a tagged frame keeps its tag in the frame where an XDP program and the
/// workers see it: with the offload on, the NIC strips it into metadata
/// that an AF_XDP frame does not carry, and a frame of another VLAN would
/// look untagged. Devices without the flag are left as they are.
pub fn set_if_rx_vlan_offload(ifname: &str, on: bool) -> io::Result<()> {
    let s = ioctl_socket()?;
    let fd = s.as_raw_fd();
    match ethtool(fd, ifname, ETHTOOL_GFLAGS, 0) {
        Ok(f) if (f & ETH_FLAG_RXVLAN != 0) != on => {
            let f = if on {
                f | ETH_FLAG_RXVLAN
            } else {
                f & !ETH_FLAG_RXVLAN
            };
            match ethtool(fd, ifname, ETHTOOL_SFLAGS, f) {
                Ok(_) => Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(()),
                Err(e) => Err(ifname_err(ifname, "setting rx VLAN offload", e)),
            }
        }
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(()),
        Err(e) => Err(ifname_err(ifname, "offload flags", e)),
    }
}

// ---------------------------------------------------------------------------
// RX ring

/// The geometry of a V2 ring for [`AfPacketOptions`]: blocks of one page
/// (or of as many pages as one slot needs), which the kernel can always
/// allocate without looking for contiguous memory, filled with whole slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RingLayout {
    block_size: usize,
    block_count: usize,
    frame_size: usize,
    /// `frame_count` of the options rounded up to whole blocks.
    frame_count: usize,
}

impl RingLayout {
    /// None for options the kernel would refuse or that would truncate
    /// frames a buffer can hold.
    fn new(opts: &AfPacketOptions, page: usize) -> Option<RingLayout> {
        let frame_size = opts.frame_size as usize;
        let frames = opts.frame_count as usize;
        if frame_size < MIN_FRAME_SIZE
            || !frame_size.is_multiple_of(TPACKET_ALIGNMENT)
            || frame_size > 1 << 20
            || frames == 0
            || frames > 1 << 20
        {
            return None;
        }
        let block_size = frame_size.div_ceil(page) * page;
        let per_block = block_size / frame_size;
        let block_count = frames.div_ceil(per_block);
        Some(RingLayout {
            block_size,
            block_count,
            frame_size,
            frame_count: block_count * per_block,
        })
    }
}

/// The memory-mapped TPACKET_V2 receive ring and where the worker is in it.
///
/// The kernel lays slots out block by block: `frames_per_block` slots of
/// `frame_size` bytes at the start of each `block_size` block, the rest of
/// the block unused; frames never straddle blocks (packet_mmap.rst,
/// "Mapping and use of the circular buffer (ring)").
struct RxRing {
    base: *mut u8,
    size: usize,
    block_size: usize,
    frame_size: usize,
    frames_per_block: usize,
    frame_count: usize,
    /// The slot to read next (the kernel fills slots in order).
    cur: usize,
}

// SAFETY: the mapping belongs to this ring alone (one socket, one port);
// moving the port to another thread moves sole access with it.
unsafe impl Send for RxRing {}

impl RxRing {
    /// The start of slot `cur`, where its `tpacket2_hdr` is.
    #[inline(always)]
    fn slot(&self) -> *mut u8 {
        let off = self.cur / self.frames_per_block * self.block_size
            + self.cur % self.frames_per_block * self.frame_size;
        // SAFETY: `cur < frame_count` and the mapping holds
        // `frame_count / frames_per_block` whole blocks, so the slot lies in it.
        unsafe { self.base.add(off) }
    }

    /// The slot's status word (`tp_status`, the header's first field),
    /// shared with the kernel.
    #[inline(always)]
    fn status(&self) -> &AtomicU32 {
        // SAFETY: the slot starts with a `tpacket2_hdr` whose first field is
        // the u32 `tp_status`; slots are TPACKET_ALIGNMENT (16) aligned in a
        // page-aligned mapping, so the word is 4-aligned; it lives as long as
        // the mapping, i.e. as `self`. The one non-atomic access, the header
        // copy in `frame()`, happens on this thread between the Acquire load
        // that saw TP_STATUS_USER and the Release store in `release()`, while
        // the kernel leaves the slot alone, so it never races.
        unsafe { AtomicU32::from_ptr(self.slot() as *mut u32) }
    }

    /// Whether slot `cur` holds a frame for us. Acquire pairs with the
    /// kernel's smp_wmb() before it sets TP_STATUS_USER: once we see USER,
    /// the header and the frame are complete.
    #[inline(always)]
    fn ready(&self) -> bool {
        self.status().load(Ordering::Acquire) & libc::TP_STATUS_USER != 0
    }

    /// The header of slot `cur` and its frame as stored (possibly truncated
    /// to `tp_snaplen`). Call only when [`ready`](Self::ready); the frame is
    /// None when `tp_mac`/`tp_snaplen` point outside the slot.
    #[inline]
    fn frame(&self) -> (libc::tpacket2_hdr, Option<&[u8]>) {
        // SAFETY: the slot is ours (TP_STATUS_USER, seen with Acquire) and
        // starts with a `tpacket2_hdr` (32 bytes, within any valid slot:
        // frame_size >= MIN_FRAME_SIZE); slots are 16-aligned, more than the
        // struct needs.
        let h: libc::tpacket2_hdr = unsafe { ptr::read(self.slot() as *const libc::tpacket2_hdr) };
        let start = h.tp_mac as usize;
        let len = h.tp_snaplen as usize;
        if start < mem::size_of::<libc::tpacket2_hdr>() || start + len > self.frame_size {
            return (h, None);
        }
        // SAFETY: `start + len <= frame_size`: the bytes lie in slot `cur`,
        // which the kernel does not touch until we release it (after the
        // caller has copied them: the slice borrows `self`).
        let frame = unsafe { std::slice::from_raw_parts(self.slot().add(start), len) };
        (h, Some(frame))
    }

    /// Gives slot `cur` back to the kernel and moves on. Writing
    /// TP_STATUS_KERNEL hands the slot back (packet_mmap.rst); Release: our
    /// reads of it are done before the kernel may refill it.
    #[inline]
    fn release(&mut self) {
        self.status()
            .store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.cur += 1;
        if self.cur == self.frame_count {
            self.cur = 0;
        }
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
        iface: &Iface,
        fanout_group: u16,
        opts: &AfPacketOptions,
    ) -> io::Result<AfPacketPort> {
        Self::open_inner(iface, Group::Id(fanout_group), opts)
    }

    /// Opens `n` sockets on `ifname`, one per worker, in a fanout group
    /// whose id the kernel picks so that it cannot clash.
    pub fn open_fanout(
        iface: &Iface,
        n: usize,
        opts: &AfPacketOptions,
    ) -> io::Result<Vec<AfPacketPort>> {
        let mut ports = Vec::with_capacity(n);
        if n == 0 {
            return Ok(ports);
        }
        let first = Self::open_inner(iface, Group::Unique, opts)?;
        let id = first.fanout_group;
        ports.push(first);
        for _ in 1..n {
            ports.push(Self::open_inner(iface, Group::Id(id), opts)?);
        }
        Ok(ports)
    }

    fn open_inner(iface: &Iface, group: Group, opts: &AfPacketOptions) -> io::Result<AfPacketPort> {
        let ifname = iface.name.as_str();
        let ctx = |what: &str, e: io::Error| {
            io::Error::new(e.kind(), format!("AF_PACKET port {ifname}: {what}: {e}"))
        };
        let layout = RingLayout::new(opts, page_size()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "AF_PACKET port {ifname}: frame size {} must be a multiple of {TPACKET_ALIGNMENT} between {MIN_FRAME_SIZE} and 1 MiB, and frame count {} non-zero and at most 1M",
                    opts.frame_size, opts.frame_count
                ),
            )
        })?;
        let (ifindex, mac, mtu) = (iface.index, iface.mac, iface.mtu);
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

        setsockopt(s, libc::SOL_PACKET, libc::PACKET_VERSION, &TPACKET_V2)
            .map_err(|e| ctx("PACKET_VERSION TPACKET_V2", e))?;
        let req = libc::tpacket_req {
            tp_block_size: layout.block_size as u32,
            tp_block_nr: layout.block_count as u32,
            tp_frame_size: layout.frame_size as u32,
            tp_frame_nr: layout.frame_count as u32,
        };
        setsockopt(s, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)
            .map_err(|e| ctx("PACKET_RX_RING", e))?;
        let size = layout.block_size * layout.block_count;
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
            block_size: layout.block_size,
            frame_size: layout.frame_size,
            frames_per_block: layout.block_size / layout.frame_size,
            frame_count: layout.frame_count,
            cur: 0,
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
        // V1/V2 sockets report `struct tpacket_stats` (no freeze count,
        // which only V3 has).
        #[derive(Clone, Copy, Default)]
        #[repr(C)]
        struct StatsV2 {
            packets: u32,
            drops: u32,
        }
        let st: StatsV2 = getsockopt(
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
        Ok(())
    }

    /// Whether a received frame is waiting in the ring (the next slot is
    /// `TP_STATUS_USER`): no syscall, so a worker can re-check after arming
    /// its wake-up (poll(2) on [`as_raw_fd`](AsRawFd::as_raw_fd)) and before
    /// sleeping, and not miss a frame that arrived in between.
    #[inline]
    pub fn rx_ready(&self) -> bool {
        self.ring.ready()
    }

    /// The `tp_len` above which a frame is a GSO/GRO super-frame rather
    /// than one the link can carry: the MTU plus an Ethernet header and two
    /// VLAN tags (the most a frame within the MTU can have).
    fn gso_limit(mtu: u32) -> usize {
        mtu as usize + ethernet::HEADER_LEN + 2 * ethernet::VLAN_TAG_LEN
    }

    /// Copies one ring frame into a packet, restoring the VLAN tag and
    /// completing a partial checksum; None (counted) when it does not fit.
    /// `frame` is None when the slot header was not sane.
    #[inline]
    fn take_frame(
        h: &libc::tpacket2_hdr,
        frame: Option<&[u8]>,
        gso_limit: usize,
        cnt: &mut BurstCounts,
    ) -> Option<AfPacket> {
        let Some(frame) = frame else {
            cnt.truncated += 1;
            return None;
        };
        // Before the truncation check: a 64 KiB GSO frame arrives truncated
        // to the slot, and is a sender setting to fix, not ring damage.
        if h.tp_len as usize > gso_limit {
            cnt.gso += 1;
            cnt.gso_max = cnt.gso_max.max(h.tp_len as u64);
            return None;
        }
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
        p.w.len = total as u16;
        let d = p.data_mut();
        if vlan {
            let tpid = if st & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                h.tp_vlan_tpid
            } else {
                ethernet::ETHERTYPE_VLAN
            };
            d[..12].copy_from_slice(&frame[..12]);
            d[12..14].copy_from_slice(&tpid.to_be_bytes());
            d[14..16].copy_from_slice(&h.tp_vlan_tci.to_be_bytes());
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
    /// The socket, for poll(2) when a worker idles (POLLIN: a frame is ready
    /// in the ring; see [`AfPacketPort::rx_ready`]).
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Where the TCP or UDP segment of an unfragmented IPv4 frame lies, and
/// its pseudo-header's fields: what checksum offload completion needs.
pub(crate) struct L4Span {
    /// Offsets of the segment's start and end in the frame.
    pub start: usize,
    pub end: usize,
    pub proto: u8,
    pub src: [u8; 4],
    pub dst: [u8; 4],
}

/// The segment of an IPv4 TCP/UDP frame that is whole (not a fragment,
/// its total length within the frame); None for anything else.
pub(crate) fn l4_span(frame: &[u8]) -> Option<L4Span> {
    let l2 = ethernet::parse(frame)?;
    if l2.ethertype != ethernet::ETHERTYPE_IPV4 {
        return None;
    }
    let ip = ipv4::Ipv4Packet::new_checked(&frame[l2.l3_offset..]).ok()?;
    let (ihl, total) = (ip.header_len(), ip.total_len());
    if total < ihl || total > frame.len() - l2.l3_offset || ip.is_fragment() {
        return None;
    }
    let proto = ip.protocol();
    if proto != ipv4::PROTO_TCP && proto != ipv4::PROTO_UDP {
        return None;
    }
    let span = L4Span {
        start: l2.l3_offset + ihl,
        end: l2.l3_offset + total,
        proto,
        src: ip.src_addr(),
        dst: ip.dst_addr(),
    };
    (span.end - span.start >= l4::checksum_offset(proto) + 2).then_some(span)
}

/// Completes the TCP or UDP checksum of an IPv4 frame whose checksum field
/// holds only the pseudo-header sum (`CHECKSUM_PARTIAL`): the whole checksum
/// is computed afresh. Returns false, leaving the frame alone, for anything
/// else (not IPv4, not TCP/UDP, a fragment, malformed).
pub fn complete_l4_checksum(frame: &mut [u8]) -> bool {
    let Some(sp) = l4_span(frame) else {
        return false;
    };
    let seg = &mut frame[sp.start..sp.end];
    let off = l4::checksum_offset(sp.proto);
    seg[off..off + 2].fill(0);
    let s = checksum::add(
        checksum::pseudo_header_v4(sp.src, sp.dst, sp.proto, seg.len() as u16),
        checksum::sum(seg),
    );
    let mut c = !checksum::fold(s);
    if sp.proto == ipv4::PROTO_UDP && c == 0 {
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
        let gso_limit = Self::gso_limit(self.mtu);
        // Each frame is copied out and its slot given back before the next
        // is looked at, so the kernel can refill it during the burst.
        while n < BURST && self.ring.ready() {
            let (h, frame) = self.ring.frame();
            if let Some(p) = Self::take_frame(&h, frame, gso_limit, &mut cnt) {
                out.push(p);
                n += 1;
            }
            self.ring.release();
        }
        if cnt.oversize | cnt.truncated | cnt.gso | cnt.csum | cnt.vlan != 0 {
            let c = &self.counters;
            c.rx_oversize.fetch_add(cnt.oversize, Ordering::Relaxed);
            c.rx_truncated.fetch_add(cnt.truncated, Ordering::Relaxed);
            if cnt.gso != 0 {
                c.rx_gso.fetch_add(cnt.gso, Ordering::Relaxed);
                c.rx_gso_max_len.fetch_max(cnt.gso_max, Ordering::Relaxed);
            }
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

    fn poll_fds(&self, out: &mut Vec<RawFd>) {
        out.push(self.fd.as_raw_fd());
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

    fn hdr(len: u32, snaplen: u32, status: u32) -> libc::tpacket2_hdr {
        libc::tpacket2_hdr {
            tp_status: status,
            tp_len: len,
            tp_snaplen: snaplen,
            tp_mac: 66,
            tp_net: 80,
            tp_sec: 0,
            tp_nsec: 0,
            tp_vlan_tci: 0,
            tp_vlan_tpid: 0,
            tp_padding: [0; 4],
        }
    }

    #[test]
    fn classifies_gso_truncated_and_oversize_frames() {
        let lim = AfPacketPort::gso_limit(1500);
        let buf = vec![0x5au8; 2048];
        // A 64 KiB GSO frame, truncated to its slot: rx_gso, not truncated.
        let mut c = BurstCounts::default();
        let h = hdr(65_000, 1982, libc::TP_STATUS_USER);
        assert!(AfPacketPort::take_frame(&h, Some(&buf[..1982]), lim, &mut c).is_none());
        let h = hdr(9_000, 1982, libc::TP_STATUS_USER);
        assert!(AfPacketPort::take_frame(&h, Some(&buf[..1982]), lim, &mut c).is_none());
        assert_eq!(
            (c.gso, c.gso_max, c.truncated, c.oversize),
            (2, 65_000, 0, 0)
        );
        // Truncated within the MTU, or a slot header pointing outside the
        // slot: rx_truncated.
        let mut c = BurstCounts::default();
        let h = hdr(1400, 1000, libc::TP_STATUS_USER);
        assert!(AfPacketPort::take_frame(&h, Some(&buf[..1000]), lim, &mut c).is_none());
        assert!(AfPacketPort::take_frame(&h, None, lim, &mut c).is_none());
        assert_eq!((c.gso, c.truncated, c.oversize), (0, 2, 0));
        // At the largest MTU, a full frame whose stripped tag is put back
        // (plus one tag still in the data) exceeds the buffer: rx_oversize.
        let lim = AfPacketPort::gso_limit(MAX_MTU);
        let mut c = BurstCounts::default();
        let st = libc::TP_STATUS_USER | libc::TP_STATUS_VLAN_VALID;
        let h = hdr(MAX_FRAME as u32, MAX_FRAME as u32, st);
        assert!(AfPacketPort::take_frame(&h, Some(&buf[..MAX_FRAME]), lim, &mut c).is_none());
        assert_eq!((c.gso, c.truncated, c.oversize), (0, 0, 1));
        // The largest frame that fits is taken whole.
        let h = hdr(MAX_FRAME as u32, MAX_FRAME as u32, libc::TP_STATUS_USER);
        let p = AfPacketPort::take_frame(&h, Some(&buf[..MAX_FRAME]), lim, &mut c).unwrap();
        assert_eq!(p.data(), &buf[..MAX_FRAME]);
    }

    #[test]
    fn restores_the_vlan_tag_from_the_slot_header() {
        let frame: Vec<u8> = (0..60u8).collect();
        let mut c = BurstCounts::default();
        let mut h = hdr(60, 60, libc::TP_STATUS_USER | libc::TP_STATUS_VLAN_VALID);
        h.tp_vlan_tci = 0xa064;
        h.tp_vlan_tpid = 0x88a8; // ignored without TP_STATUS_VLAN_TPID_VALID
        let lim = AfPacketPort::gso_limit(1500);
        let p = AfPacketPort::take_frame(&h, Some(&frame), lim, &mut c).unwrap();
        let d = p.data();
        assert_eq!(d.len(), 64);
        assert_eq!(d[..12], frame[..12]);
        assert_eq!(d[12..16], [0x81, 0x00, 0xa0, 0x64]);
        assert_eq!(d[16..], frame[12..]);
        h.tp_status |= libc::TP_STATUS_VLAN_TPID_VALID;
        let p = AfPacketPort::take_frame(&h, Some(&frame), lim, &mut c).unwrap();
        assert_eq!(p.data()[12..16], [0x88, 0xa8, 0xa0, 0x64]);
        assert_eq!(c.vlan, 2);
    }

    #[test]
    fn ring_layout_fills_page_sized_blocks_with_whole_slots() {
        let d = AfPacketOptions::default();
        assert_eq!(MIN_FRAME_SIZE, 2000);
        assert_eq!(
            RingLayout::new(&d, 4096),
            Some(RingLayout {
                block_size: 4096,
                block_count: 4096,
                frame_size: 2048,
                frame_count: 8192
            })
        );
        let o = |frame_size, frame_count| AfPacketOptions {
            frame_size,
            frame_count,
            ..d
        };
        let l = RingLayout::new(&o(2000, 3), 4096).unwrap();
        assert_eq!((l.block_size, l.block_count, l.frame_count), (4096, 2, 4));
        let l = RingLayout::new(&o(4096 + 16, 5), 4096).unwrap();
        assert_eq!((l.block_size, l.block_count, l.frame_count), (8192, 5, 5));
        for bad in [o(1000, 10), o(2008, 10), o(1 << 21, 10), o(2048, 0)] {
            assert_eq!(RingLayout::new(&bad, 4096), None, "{bad:?}");
        }
    }

    /// The slot walk over an anonymous mapping laid out as the kernel lays
    /// out a ring: frames are read in order across blocks and wrap around,
    /// and each slot is given back as soon as it is read.
    #[test]
    fn ring_walks_slots_across_blocks_and_wraps() {
        let opts = AfPacketOptions {
            frame_size: 2992, // one slot per page, 1104 bytes unused
            frame_count: 3,
            ..Default::default()
        };
        // 4096 whatever the machine's page: the mapping is ours, not the
        // kernel's, and mmap rounds its length up.
        let l = RingLayout::new(&opts, 4096).unwrap();
        let size = l.block_size * l.block_count;
        // SAFETY: an anonymous private mapping; RxRing's Drop unmaps it.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        let mut ring = RxRing {
            base: base as *mut u8,
            size,
            block_size: l.block_size,
            frame_size: l.frame_size,
            frames_per_block: l.block_size / l.frame_size,
            frame_count: l.frame_count,
            cur: 0,
        };
        let fill = |ring: &RxRing, slot: usize, byte: u8| {
            let off = slot * l.block_size; // one slot per block here
            let mut h = hdr(60, 60, libc::TP_STATUS_USER);
            h.tp_mac = 80;
            // SAFETY: the slot lies in the mapping, which outlives this
            // closure's uses; 80 + 60 < frame_size.
            unsafe {
                let s = ring.base.add(off);
                ptr::write(s as *mut libc::tpacket2_hdr, h);
                ptr::write_bytes(s.add(80), byte, 60);
            }
        };
        assert!(!ring.ready());
        for round in 0..2u8 {
            for slot in 0..3 {
                fill(&ring, slot, round * 10 + slot as u8);
            }
            for slot in 0..3 {
                assert!(ring.ready());
                let (h, f) = ring.frame();
                assert_eq!(h.tp_len, 60);
                assert_eq!(f.unwrap(), &[round * 10 + slot as u8; 60][..]);
                ring.release();
            }
            assert_eq!(ring.cur, 0);
            assert!(!ring.ready(), "every slot was given back");
        }
        // A header pointing past the slot yields no frame.
        fill(&ring, 0, 1);
        // SAFETY: slot 0's header is in the mapping.
        unsafe { (*(ring.base as *mut libc::tpacket2_hdr)).tp_snaplen = 2992 };
        assert!(ring.frame().1.is_none());
    }
}
