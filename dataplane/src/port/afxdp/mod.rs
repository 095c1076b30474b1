//! The AF_XDP port backend, the appliance's default where the kernel has
//! AF_XDP (Linux 5.10 or later; bound sockets, BPF links).
//!
//! Per interface, ferrovs attaches its own XDP program ([`steer`],
//! dataplane/bpf/xdp_steer.c), which redirects to the workers' XDP sockets
//! only what the balancer owns (frames to active VIPs and local addresses,
//! NAT replies, ARP for those addresses) and passes everything else to the
//! kernel untouched: the director's own SSH, health checks, VRRP and routing
//! protocols need no exception path, and the worker never sees them.
//!
//! Per worker, one XDP socket ([`xsk`]) per interface, bound to the queue
//! with the worker's index: queues must be at least as many as workers (RSS
//! on a NIC: `ethtool -L IF combined N`; a veth gets them at creation,
//! `numrxqueues N numtxqueues N`, and [`AfXdpPort::open_all`] raises the
//! active count with `ethtool -L` itself where the device allows).
//!
//! Packets live in place in the process's UMEM ([`umem`]) from reception to
//! transmission, as mbufs do in DPDK: a received frame is forwarded on any
//! interface by handing its offset to that interface's TX ring. Zero-copy
//! where the driver supports it, copy mode otherwise (veth); native XDP
//! where the driver has it, generic XDP otherwise (then GRO is turned off,
//! since generic XDP runs after GRO).
//!
//! Two things the kernel does on virtual interfaces are handled here:
//! - GSO: a native XDP program on a veth makes the kernel drop the GSO
//!   features of its peer (drivers/net/veth.c, `veth_fix_features`), so
//!   senders with TSO/GSO on segment before the frames reach us.
//! - Checksum offload: a frame from a local stack (veth, container) may carry
//!   only the pseudo-header sum in its TCP/UDP checksum (CHECKSUM_PARTIAL),
//!   which XDP cannot see. A field equal to the folded pseudo-header sum is
//!   that pattern (a complete checksum equals it once in 65,536 frames); the
//!   checksum is then computed in full, which gives the right value either
//!   way.
//!
//! ARP replies to the director's own address (the answers to the workers'
//! neighbour probes) must reach both the kernel and the workers; XDP cannot
//! clone, so the program passes them and the first worker's port reads a
//! copy from an AF_PACKET socket bound to ARP only (a few frames a second).

pub mod flows;
pub mod steer;
pub mod umem;
pub mod xsk;

use super::afpacket::{complete_l4_checksum, l4_span, set_if_gro, set_if_rx_vlan_offload};
use super::Iface;
use super::{sys, Packet, Port, Window, BURST, HEADROOM};
use crate::wire::{checksum, ethernet, l4, Mac};
use std::ffi::c_void;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
pub use steer::{AttachMode, SteerStats, Steering, SteeringFds};
use umem::{Umem, FRAME_SIZE};
use xsk::Xsk;
pub use xsk::{BindMode, RingSizes};

/// Bytes the kernel leaves in front of a received frame
/// (`XDP_PACKET_HEADROOM`); fresh packets get the same.
pub const XDP_HEADROOM: usize = 256;
/// The largest frame a UMEM frame holds after the headroom.
pub const MAX_FRAME: usize = FRAME_SIZE - XDP_HEADROOM;
/// The largest MTU the backend accepts (an Ethernet header and two VLAN
/// tags around it fill [`MAX_FRAME`]).
pub const MAX_MTU: u32 = (MAX_FRAME - ethernet::HEADER_LEN - 2 * ethernet::VLAN_TAG_LEN) as u32;

const _: () = assert!(XDP_HEADROOM >= HEADROOM);

/// Whether this machine can run the backend: a kernel with AF_XDP sockets
/// and a build that carries the XDP program. The error says why not.
pub fn available() -> Result<(), String> {
    sys::socket(libc::AF_XDP, libc::SOCK_RAW, 0, "socket(AF_XDP)")
        .map_err(|e| format!("{e} (the kernel needs CONFIG_XDP_SOCKETS, Linux 5.10 or later)"))?;
    Steering::available()
}

// ---------------------------------------------------------------------------
// Packet

/// A packet in a UMEM frame. Dropping it returns the frame.
pub struct XdpPacket {
    frame: u32,
    w: Window,
}

impl XdpPacket {
    /// An empty packet with [`XDP_HEADROOM`] in front, if a frame is free.
    #[inline]
    pub fn new(umem: &Umem) -> Option<XdpPacket> {
        umem.alloc().map(|frame| XdpPacket {
            frame,
            w: Window::empty(XDP_HEADROOM),
        })
    }

    /// The UMEM address of the first byte (for a TX descriptor).
    #[inline(always)]
    fn addr(&self) -> u64 {
        self.frame as u64 + self.w.off as u64
    }

    #[inline(always)]
    fn ptr(&self) -> *mut u8 {
        // SAFETY: `frame + off` is inside the region (frames are FRAME_SIZE
        // apart inside it and off < FRAME_SIZE).
        unsafe { umem::base().add(self.frame as usize + self.w.off as usize) }
    }
}

impl Drop for XdpPacket {
    #[inline]
    fn drop(&mut self) {
        if let Some(u) = Umem::existing() {
            u.free(self.frame);
        }
    }
}

impl Packet for XdpPacket {
    #[inline(always)]
    fn data(&self) -> &[u8] {
        // SAFETY: the frame is owned by this packet alone (the allocator
        // hands an offset to one owner at a time) and `off + len <=
        // FRAME_SIZE`; the region is never unmapped.
        unsafe { std::slice::from_raw_parts(self.ptr(), self.w.len as usize) }
    }
    #[inline(always)]
    fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`, and `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr(), self.w.len as usize) }
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
        self.w.set_len(len, FRAME_SIZE)
    }
}

// ---------------------------------------------------------------------------
// Options and counters

/// How the ports are set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AfXdpOptions {
    pub rings: RingSizes,
    /// Refuse generic XDP (fail instead of falling back).
    pub native_only: bool,
    /// Try zero-copy first (falls back to copy mode when refused).
    pub zero_copy: bool,
    /// The XDP fast path (`fastpath`): room for this many offloaded flows
    /// per interface; 0 turns it off.
    pub flow_entries: u32,
}

impl Default for AfXdpOptions {
    fn default() -> Self {
        AfXdpOptions {
            rings: RingSizes::default(),
            native_only: false,
            zero_copy: true,
            flow_entries: 0,
        }
    }
}

/// One socket's counters: the data path's (added once per burst), gauges
/// the worker refreshes, and the kernel's `XDP_STATISTICS` as last read.
#[derive(Debug, Default)]
pub struct XdpCounters {
    /// Descriptors longer than a frame holds (never expected); dropped.
    pub rx_invalid: AtomicU64,
    /// Frames whose CHECKSUM_PARTIAL TCP/UDP checksum was completed.
    pub rx_csum_completed: AtomicU64,
    /// ARP frames read from the kernel's copy (see the module doc).
    pub rx_arp_copies: AtomicU64,
    /// Times the fill ring could not be topped up: no free frame.
    pub fill_no_frame: AtomicU64,
    /// Packets the TX ring had no room for (left to the caller).
    pub tx_ring_full: AtomicU64,
    /// TX kicks the kernel refused.
    pub tx_errors: AtomicU64,
    /// Gauges: frames lent to the kernel in the fill ring; TX descriptors
    /// not completed yet.
    pub fill_level: AtomicU64,
    pub tx_outstanding: AtomicU64,
    /// Kernel `XDP_STATISTICS` (absolute).
    pub k_rx_dropped: AtomicU64,
    pub k_rx_invalid_descs: AtomicU64,
    pub k_tx_invalid_descs: AtomicU64,
    pub k_rx_ring_full: AtomicU64,
    pub k_rx_fill_ring_empty: AtomicU64,
    pub k_tx_ring_empty: AtomicU64,
}

/// What the control plane keeps of a socket: its counters and its fd for
/// `XDP_STATISTICS` (a getsockopt works from any thread).
#[derive(Clone, Debug)]
pub struct XdpPortInfo {
    pub ifname: String,
    pub queue: u32,
    pub mode: BindMode,
    pub rings: RingSizes,
    pub counters: Arc<XdpCounters>,
    fd: Arc<OwnedFd>,
}

impl XdpPortInfo {
    /// A duplicate of the socket's descriptor, for the next process.
    pub fn dup_fd(&self) -> io::Result<OwnedFd> {
        self.fd.try_clone()
    }

    /// Reads the kernel's statistics into the counters (a syscall: from
    /// housekeeping, not per burst).
    pub fn refresh_kernel_stats(&self) -> io::Result<()> {
        let st = xsk_statistics(self.fd.as_raw_fd())?;
        let c = &self.counters;
        c.k_rx_dropped.store(st.rx_dropped, Ordering::Relaxed);
        c.k_rx_invalid_descs
            .store(st.rx_invalid_descs, Ordering::Relaxed);
        c.k_tx_invalid_descs
            .store(st.tx_invalid_descs, Ordering::Relaxed);
        c.k_rx_ring_full.store(st.rx_ring_full, Ordering::Relaxed);
        c.k_rx_fill_ring_empty
            .store(st.rx_fill_ring_empty_descs, Ordering::Relaxed);
        c.k_tx_ring_empty
            .store(st.tx_ring_empty_descs, Ordering::Relaxed);
        Ok(())
    }
}

fn xsk_statistics(fd: RawFd) -> io::Result<libc::xdp_statistics> {
    // SAFETY: all-zero is a valid xdp_statistics (integers only).
    let mut st: libc::xdp_statistics = unsafe { mem::zeroed() };
    sys::getsockopt_into(fd, libc::SOL_XDP, libc::XDP_STATISTICS, &mut st)?;
    Ok(st)
}

#[derive(Default)]
struct BurstCounts {
    invalid: u64,
    csum: u64,
}

// ---------------------------------------------------------------------------
// Hand-over

/// One socket handed to the next process.
#[derive(Debug)]
pub struct SocketHandover {
    pub queue: u32,
    pub mode: BindMode,
    pub rings: RingSizes,
    pub fd: OwnedFd,
}

/// One interface's program and sockets handed to the next process.
#[derive(Debug)]
pub struct IfaceHandover {
    pub ifname: String,
    pub ifindex: u32,
    pub mode: AttachMode,
    pub steering: SteeringFds,
    pub sockets: Vec<SocketHandover>,
}

impl IfaceHandover {
    /// What `steering` and its `sockets` (as the control plane keeps them)
    /// hand over.
    pub fn of(steering: &Steering, sockets: &[XdpPortInfo]) -> io::Result<IfaceHandover> {
        Ok(IfaceHandover {
            ifname: steering.ifname.clone(),
            ifindex: steering.ifindex,
            mode: steering.mode,
            steering: steering.hand_over()?,
            sockets: sockets
                .iter()
                .map(|i| {
                    Ok(SocketHandover {
                        queue: i.queue,
                        mode: i.mode,
                        rings: i.rings,
                        fd: i.dup_fd()?,
                    })
                })
                .collect::<io::Result<_>>()?,
        })
    }
}

// ---------------------------------------------------------------------------
// Port

/// One socket of a port: the XDP socket on one queue, and what the control
/// plane reads of it.
struct Queue {
    xsk: Xsk,
    info: XdpPortInfo,
}

impl Queue {
    /// A socket with what the control plane is told of it (its own copy of
    /// the descriptor, for statistics and for handing it over).
    fn new(xsk: Xsk, ifname: &str, queue: u32, rings: RingSizes) -> io::Result<Queue> {
        let info = XdpPortInfo {
            ifname: ifname.to_string(),
            queue,
            mode: xsk.mode,
            rings,
            counters: Arc::new(XdpCounters::default()),
            fd: Arc::new(xsk.dup_fd()?),
        };
        Ok(Queue { xsk, info })
    }
}

/// One worker's XDP sockets on one interface: one per queue the worker owns
/// (queue `q` belongs to worker `q % workers`; usually one queue each).
pub struct AfXdpPort {
    /// The first is the worker's own queue, the one it transmits on.
    queues: Vec<Queue>,
    /// The queue the next receive starts at (fairness across queues).
    next_rx: usize,
    /// AF_PACKET sockets receiving copies of the ARP frames and IPv6
    /// neighbour advertisements the kernel gets (first worker only): the
    /// answers to the workers' requests come to the director's own
    /// addresses, which the kernel must see too.
    copies: Vec<OwnedFd>,
    umem: &'static Umem,
    ifname: String,
    ifindex: u32,
    mac: Mac,
    mtu: u32,
    polls: u32,
    empty_polls: u32,
    /// This interface's fast-path flow map, when the fast path is on.
    flows: Option<flows::XdpFlowMap>,
}

impl std::fmt::Debug for AfXdpPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfXdpPort")
            .field("ifname", &self.ifname)
            .field(
                "queues",
                &self.queues.iter().map(|q| q.info.queue).collect::<Vec<_>>(),
            )
            .field("mode", &self.mode())
            .finish()
    }
}

/// What [`AfXdpPort::open_all`] opened on one interface.
pub struct Opened {
    /// One port per worker, worker `w` on queue `w`.
    pub ports: Vec<AfXdpPort>,
    /// The XDP program; keep it while the ports run (dropping it detaches).
    pub steering: Steering,
    /// Puts the interface's queue count back when dropped, if ferrovs
    /// raised it; keep it as long as the steering.
    pub channels: ChannelsGuard,
}

impl AfXdpPort {
    /// Attaches the XDP program to `ifname` and opens one socket per worker
    /// on queues `0..workers`.
    pub fn open_all(iface: &Iface, workers: usize, opts: &AfXdpOptions) -> io::Result<Opened> {
        let ifname = iface.name.as_str();
        let ctx = |what: &str, e: io::Error| {
            io::Error::new(e.kind(), format!("AF_XDP port {ifname}: {what}: {e}"))
        };
        let (ifindex, mtu) = (iface.index, iface.mtu);
        if mtu > MAX_MTU {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("AF_XDP port {ifname}: MTU {mtu} is larger than the backend's frames allow ({MAX_MTU}); lower it (ip link set dev {ifname} mtu 1500)"),
            ));
        }
        let channels = ensure_queues(ifname, workers as u32).map_err(|e| ctx("queues", e))?;
        let nq = channels.count.max(workers as u32);
        // A worker that owns several queues (a NIC with more queues than
        // workers) gets smaller rings on each, so that the frames lent to
        // the kernel stay about the same per worker.
        let per_worker = nq.div_ceil(workers as u32).next_power_of_two();
        let shrink = |n: u32| (n / per_worker).max(256);
        let rings = RingSizes {
            fill: shrink(opts.rings.fill),
            comp: shrink(opts.rings.comp),
            rx: shrink(opts.rings.rx),
            tx: shrink(opts.rings.tx),
        };
        // The region is sized by the first interface opened: room for this
        // many sockets on a few interfaces.
        let need = nq * 4 * (rings.fill + rings.tx);
        let umem = Umem::get(need)?;
        // Tags in the frame, not in metadata an XDP frame lacks: the
        // workers must see a frame of another VLAN as tagged (and drop it).
        set_if_rx_vlan_offload(ifname, false)?;
        let mut steering = Steering::attach(ifname, ifindex, opts.native_only, opts.flow_entries)?;
        if steering.mode == AttachMode::Skb {
            // Generic XDP runs after GRO: merged frames would not fit.
            set_if_gro(ifname, false)?;
        }
        let first = if opts.zero_copy {
            BindMode::ZeroCopy
        } else {
            BindMode::Copy
        };
        let mut ports = Vec::with_capacity(workers);
        for w in 0..workers as u32 {
            let mut queues = Vec::new();
            // Every queue has an owner: a frame on a queue without a socket
            // would be lost (the kernel does not own the VIPs).
            for q in (w..nq).step_by(workers) {
                let xsk = match Xsk::open(umem, ifindex, q, first, rings) {
                    Ok(x) => x,
                    Err(_) if first == BindMode::ZeroCopy => {
                        Xsk::open(umem, ifindex, q, BindMode::Copy, rings)
                            .map_err(|e| ctx("XDP socket", e))?
                    }
                    Err(e) => return Err(ctx("XDP socket", e)),
                };
                // Lend frames before the socket is steered to: a frame that
                // finds the fill ring empty is dropped.
                let mut xsk = xsk;
                xsk.fill(rings.fill, || umem.alloc());
                steering.set_socket(q, xsk.as_raw_fd())?;
                queues.push(Queue::new(xsk, ifname, q, rings).map_err(|e| ctx("dup", e))?);
            }
            ports.push(AfXdpPort::for_worker(
                w as usize, queues, umem, iface, &steering,
            )?);
        }
        Ok(Opened {
            ports,
            steering,
            channels,
        })
    }

    /// The ports another process handed over on one interface: its XDP
    /// program (kept attached) and its sockets, worker `w` taking queues
    /// `w, w + workers, ...` as [`AfXdpPort::open_all`] gives them. The
    /// packet memory must have been adopted first ([`Umem::adopt`]).
    pub fn adopt_all(iface: &Iface, workers: usize, h: IfaceHandover) -> io::Result<Opened> {
        let ifname = iface.name.as_str();
        let ctx = |what: &str, e: io::Error| {
            io::Error::new(e.kind(), format!("AF_XDP port {ifname}: {what}: {e}"))
        };
        let umem = Umem::existing().ok_or_else(|| {
            io::Error::other(format!(
                "AF_XDP port {ifname}: no packet memory handed over"
            ))
        })?;
        let ifindex = iface.index;
        if h.ifindex != ifindex {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "AF_XDP port {ifname}: handed over as interface {}, it is {ifindex} now",
                    h.ifindex
                ),
            ));
        }
        let channels = ensure_queues(ifname, workers as u32).map_err(|e| ctx("queues", e))?;
        let steering = Steering::adopt(ifname, ifindex, h.mode, h.steering)?;
        let mut by_worker: Vec<Vec<Queue>> = (0..workers).map(|_| Vec::new()).collect();
        for s in h.sockets {
            let w = s.queue as usize % workers;
            let xsk = Xsk::adopt(s.fd, s.mode, s.rings)
                .map_err(|e| ctx(&format!("socket of queue {}", s.queue), e))?;
            by_worker[w]
                .push(Queue::new(xsk, ifname, s.queue, s.rings).map_err(|e| ctx("dup", e))?);
        }
        let mut ports = Vec::with_capacity(workers);
        for (w, mut queues) in by_worker.into_iter().enumerate() {
            if queues.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("AF_XDP port {ifname}: no socket handed over for worker {w} (the number of workers changed?)"),
                ));
            }
            // The worker's own queue first: the one it transmits on.
            queues.sort_by_key(|q| q.info.queue);
            ports.push(AfXdpPort::for_worker(w, queues, umem, iface, &steering)?);
        }
        Ok(Opened {
            ports,
            steering,
            channels,
        })
    }

    /// Worker `w`'s port on `iface` from its sockets (the first one its own
    /// queue); worker 0 also gets the sockets that copy ARP and neighbour
    /// advertisements.
    fn for_worker(
        w: usize,
        queues: Vec<Queue>,
        umem: &'static Umem,
        iface: &Iface,
        steering: &Steering,
    ) -> io::Result<AfXdpPort> {
        let (ifname, ifindex) = (iface.name.as_str(), iface.index);
        let ctx = |what: &str, e: io::Error| {
            io::Error::new(e.kind(), format!("AF_XDP port {ifname}: {what}: {e}"))
        };
        let copies = if w == 0 {
            vec![
                copy_socket(ifindex, libc::ETH_P_ARP as u16, &[])
                    .map_err(|e| ctx("ARP copy socket", e))?,
                copy_socket(ifindex, libc::ETH_P_IPV6 as u16, &NA_FILTER)
                    .map_err(|e| ctx("neighbour advertisement copy socket", e))?,
            ]
        } else {
            Vec::new()
        };
        Ok(AfXdpPort {
            queues,
            next_rx: 0,
            copies,
            umem,
            ifname: ifname.to_string(),
            ifindex,
            mac: iface.mac,
            mtu: iface.mtu,
            polls: 0,
            empty_polls: 0,
            flows: steering.flow_fds().map(flows::XdpFlowMap::new),
        })
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
    pub fn mtu(&self) -> u32 {
        self.mtu
    }
    /// Copy or zero-copy (the same for all of a port's sockets in practice:
    /// one device).
    pub fn mode(&self) -> BindMode {
        self.queues[0].info.mode
    }
    /// Counters and statistics access for the control plane, per socket.
    pub fn infos(&self) -> Vec<XdpPortInfo> {
        self.queues.iter().map(|q| q.info.clone()).collect()
    }
    /// Received frames are waiting (no syscall).
    pub fn rx_ready(&self) -> bool {
        self.queues.iter().any(|q| q.xsk.rx_ready())
    }

    /// Reads waiting ARP and neighbour advertisement copies (non-blocking)
    /// into `out`.
    fn read_copies(&mut self, out: &mut Vec<XdpPacket>, room: usize) -> usize {
        let mut n = 0;
        for fd in &self.copies {
            n += Self::read_copy(fd, self.umem, out, room - n);
        }
        if n > 0 {
            self.queues[0]
                .info
                .counters
                .rx_arp_copies
                .fetch_add(n as u64, Ordering::Relaxed);
        }
        n
    }

    fn read_copy(
        fd: &OwnedFd,
        umem: &'static Umem,
        out: &mut Vec<XdpPacket>,
        room: usize,
    ) -> usize {
        let mut n = 0;
        while n < room {
            let Some(mut p) = XdpPacket::new(umem) else {
                break;
            };
            p.w.len = MAX_FRAME as u16;
            let buf = p.data_mut();
            // SAFETY: `buf` is a writable buffer of its length for the call.
            let r = unsafe {
                libc::recv(
                    fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut c_void,
                    buf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                )
            };
            if r <= 0 || r as usize > MAX_FRAME {
                if r <= 0 {
                    break;
                }
                continue; // truncated: not a frame we can use
            }
            p.w.len = r as u16;
            out.push(p);
            n += 1;
        }
        n
    }
}

/// Set once the ports are being handed to the next process: a port that
/// stops then leaves its rings exactly as they are (their indices are
/// shared with the kernel and the next process reads them back), where it
/// otherwise takes back the frames it lent.
static HANDING_OVER: AtomicBool = AtomicBool::new(false);

/// Makes every port dropped from now on leave its rings untouched (see
/// [`HANDING_OVER`]); called before the workers stop for `ferrovs upgrade`.
pub fn hand_over_on_stop() {
    HANDING_OVER.store(true, Ordering::SeqCst);
}

/// Whether the ports are being handed over (see [`HANDING_OVER`]).
pub fn handing_over() -> bool {
    HANDING_OVER.load(Ordering::SeqCst)
}

impl Drop for AfXdpPort {
    fn drop(&mut self) {
        if HANDING_OVER.load(Ordering::SeqCst) {
            // Closing an AF_PACKET socket waits for an RCU grace period
            // (packet_release), tens of milliseconds while no process
            // forwards: the process's exit closes them.
            for c in self.copies.drain(..) {
                std::mem::forget(c);
            }
            return;
        }
        let umem = self.umem;
        for q in &mut self.queues {
            q.xsk.drain(|a| umem.free(frame_of(a)));
        }
    }
}

#[inline(always)]
fn frame_of(addr: u64) -> u32 {
    (addr & !(FRAME_SIZE as u64 - 1)) as u32
}

/// Whether the frame's TCP/UDP checksum field holds only the folded
/// pseudo-header sum (CHECKSUM_PARTIAL); see the module doc.
#[inline]
pub fn looks_partial(frame: &[u8]) -> bool {
    let Some(sp) = l4_span(frame) else {
        return false;
    };
    let off = sp.start + l4::checksum_offset(sp.proto);
    let field = u16::from_be_bytes([frame[off], frame[off + 1]]);
    field
        == checksum::fold(checksum::pseudo_header_v4(
            sp.src,
            sp.dst,
            sp.proto,
            (sp.end - sp.start) as u16,
        ))
}

impl Port for AfXdpPort {
    type Pkt = XdpPacket;

    fn ifindex(&self) -> u32 {
        self.ifindex
    }

    fn flow_map(&mut self) -> Option<&mut dyn crate::fastpath::FlowMap> {
        self.flows
            .as_mut()
            .map(|m| m as &mut dyn crate::fastpath::FlowMap)
    }

    fn rx_burst(&mut self, out: &mut Vec<XdpPacket>) -> usize {
        self.polls = self.polls.wrapping_add(1);
        let umem = self.umem;
        let nq = self.queues.len();
        let mut got = 0;
        let mut n_all = 0;
        for k in 0..nq {
            let q = &mut self.queues[(self.next_rx + k) % nq];
            q.xsk.complete(|a| umem.free(frame_of(a)));
            // Keep the fill ring topped up: the kernel drops what it cannot
            // place (counted as rx_fill_ring_empty_descs).
            let mut short = false;
            q.xsk.fill(2 * BURST as u32, || {
                let f = umem.alloc();
                short |= f.is_none();
                f
            });
            let mut cnt = BurstCounts::default();
            let n = q.xsk.recv((BURST - got) as u32, |addr, len| {
                let frame = frame_of(addr);
                let off = (addr - frame as u64) as usize;
                if off + len as usize > FRAME_SIZE || len == 0 {
                    cnt.invalid += 1;
                    umem.free(frame);
                    return;
                }
                let mut p = XdpPacket {
                    frame,
                    w: Window {
                        off: off as u16,
                        len: len as u16,
                    },
                };
                if looks_partial(p.data()) && complete_l4_checksum(p.data_mut()) {
                    cnt.csum += 1;
                }
                out.push(p);
            }) as usize;
            if q.xsk.tx_queued() > 0 {
                let _ = q.xsk.kick_tx();
            }
            if n == 0 {
                q.xsk.kick_fill();
            }
            n_all += n;
            got += n - cnt.invalid as usize;
            let c = &q.info.counters;
            if self.polls & 63 == 0 {
                c.fill_level
                    .store(q.xsk.fill_level() as u64, Ordering::Relaxed);
                c.tx_outstanding
                    .store(q.xsk.tx_outstanding as u64, Ordering::Relaxed);
            }
            if short {
                c.fill_no_frame.fetch_add(1, Ordering::Relaxed);
            }
            if cnt.invalid | cnt.csum != 0 {
                c.rx_invalid.fetch_add(cnt.invalid, Ordering::Relaxed);
                c.rx_csum_completed.fetch_add(cnt.csum, Ordering::Relaxed);
            }
            if got >= BURST {
                break;
            }
        }
        self.next_rx = (self.next_rx + 1) % nq;
        // ARP copies (a syscall): on the first empty poll of an idle spell
        // and every 64th after, and every 64th poll under load.
        if n_all == 0 {
            self.empty_polls = self.empty_polls.wrapping_add(1);
        } else {
            self.empty_polls = 0;
        }
        if !self.copies.is_empty()
            && (self.empty_polls & 63 == 1 || self.polls & 63 == 0)
            && got < BURST
        {
            got += self.read_copies(out, BURST - got);
        }
        got
    }

    fn tx_burst(&mut self, pkts: &mut Vec<XdpPacket>) {
        if pkts.is_empty() {
            return;
        }
        let umem = self.umem;
        let q = &mut self.queues[0];
        q.xsk.complete(|a| umem.free(frame_of(a)));
        let n = (pkts.len() as u32).min(q.xsk.tx_free(pkts.len() as u32));
        for (i, p) in pkts[..n as usize].iter().enumerate() {
            q.xsk.tx_push(i as u32, p.addr(), p.w.len as u32);
        }
        // The frames are the kernel's now, until the completion ring hands
        // them back.
        for p in pkts.drain(..n as usize) {
            mem::forget(p);
        }
        let c = &q.info.counters;
        if let Err(_e) = q.xsk.tx_submit(n) {
            c.tx_errors.fetch_add(1, Ordering::Relaxed);
        }
        if !pkts.is_empty() {
            c.tx_ring_full
                .fetch_add(pkts.len() as u64, Ordering::Relaxed);
        }
    }

    fn alloc(&mut self) -> Option<XdpPacket> {
        XdpPacket::new(self.umem)
    }

    fn mac(&self) -> Mac {
        self.mac
    }

    fn poll_fds(&self, out: &mut Vec<RawFd>) {
        for q in &self.queues {
            out.push(q.xsk.as_raw_fd());
        }
        for c in &self.copies {
            out.push(c.as_raw_fd());
        }
    }
}

/// Only ICMPv6 neighbour advertisements (classic BPF over the Ethernet
/// frame): next header 58 at 14 + 6, ICMPv6 type 136 at 14 + 40. An
/// advertisement behind an extension header is not one NDP sends.
const NA_FILTER: [libc::sock_filter; 6] = [
    bpf_stmt(0x30, 20),        // ldb [20]
    bpf_jump(0x15, 58, 0, 3),  // jeq #58, next, drop
    bpf_stmt(0x30, 54),        // ldb [54]
    bpf_jump(0x15, 136, 0, 1), // jeq #136, accept, drop
    bpf_stmt(0x06, 0xffff),    // accept
    bpf_stmt(0x06, 0),         // drop
];

const fn bpf_stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn bpf_jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// An AF_PACKET socket that receives the frames of ethertype `ethertype`
/// reaching the kernel on `ifindex` (not the ones the host sends), only
/// those `filter` accepts when it is not empty. It is opened for no
/// protocol, filtered, then bound, so that nothing unfiltered or from
/// another interface is ever queued on it.
fn copy_socket(ifindex: u32, ethertype: u16, filter: &[libc::sock_filter]) -> io::Result<OwnedFd> {
    let proto = ethertype.to_be();
    let fd = sys::socket(
        libc::AF_PACKET,
        libc::SOCK_RAW | libc::SOCK_NONBLOCK,
        0,
        "socket(AF_PACKET)",
    )?;
    let one: libc::c_int = 1;
    sys::setsockopt(
        fd.as_raw_fd(),
        libc::SOL_PACKET,
        libc::PACKET_IGNORE_OUTGOING,
        &one,
    )?;
    if !filter.is_empty() {
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr() as *mut libc::sock_filter,
        };
        sys::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &prog,
        )?;
    }
    // SAFETY: all-zero is a valid sockaddr_ll; fields set below.
    let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = ifindex as libc::c_int;
    // SAFETY: `sll` is a valid sockaddr_ll of the given size.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// `struct ethtool_channels` (linux/ethtool.h).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}
const ETHTOOL_GCHANNELS: u32 = 0x3c;
const ETHTOOL_SCHANNELS: u32 = 0x3d;

/// The queue count [`ensure_queues`] found or set; dropping it puts back
/// the count the interface had, if it was raised, so that ferrovs leaves
/// the interface as it found it.
#[derive(Debug)]
pub struct ChannelsGuard {
    /// Receive queues in use now.
    pub count: u32,
    restore: Option<(String, EthtoolChannels)>,
}

impl ChannelsGuard {
    /// Leaves the queue count as it is when dropped (the next process of
    /// a hand-over runs on it).
    pub fn keep_on_drop(&mut self) {
        self.restore = None;
    }
}

impl Drop for ChannelsGuard {
    fn drop(&mut self) {
        if let Some((ifname, mut old)) = self.restore.take() {
            old.cmd = ETHTOOL_SCHANNELS;
            let Ok(s) = sys::ioctl_socket() else { return };
            // The kernel releases the sockets and the program
            // asynchronously; until it has, a device may refuse (a veth
            // with XDP attached rejects fewer queues than its peer sends on
            // with EINVAL).
            for _ in 0..50 {
                let mut c = old;
                match sys::ethtool(s.as_raw_fd(), &ifname, &mut c) {
                    Ok(()) => return,
                    Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EINVAL)) => {
                        std::thread::sleep(std::time::Duration::from_millis(20))
                    }
                    Err(_) => return,
                }
            }
        }
    }
}

/// Makes sure `ifname` has at least `n` receive queues, raising the active
/// count (`ethtool -L`) when the device allows. A device with more queues
/// than workers is left alone (workers then own several queues each).
pub fn ensure_queues(ifname: &str, n: u32) -> io::Result<ChannelsGuard> {
    let s = sys::ioctl_socket()?;
    let mut ch = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    let kept = |count| ChannelsGuard {
        count,
        restore: None,
    };
    if let Err(e) = sys::ethtool(s.as_raw_fd(), ifname, &mut ch) {
        if e.raw_os_error() == Some(libc::EOPNOTSUPP) {
            // A single-queue device without channel support.
            return if n <= 1 {
                Ok(kept(1))
            } else {
                Err(io::Error::new(io::ErrorKind::Unsupported, format!("{ifname} has one queue and {n} workers need {n}: use `workers 1` or a multi-queue device")))
            };
        }
        return Err(e);
    }
    let have = ch.rx_count + ch.combined_count;
    if have >= n {
        return Ok(kept(have));
    }
    let mut set = ch;
    set.cmd = ETHTOOL_SCHANNELS;
    if ch.max_combined >= n {
        set.combined_count = n;
    } else if ch.max_rx >= n && ch.max_tx >= n {
        set.rx_count = n;
        set.tx_count = n;
    } else {
        let max = ch.max_combined.max(ch.max_rx);
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{ifname} has {have} receive queues (at most {max}) and {n} workers need one each: `ethtool -L {ifname} combined {n}` on a NIC; a veth needs `numrxqueues {n} numtxqueues {n}` at creation; or fewer workers"),
        ));
    }
    sys::ethtool(s.as_raw_fd(), ifname, &mut set).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("{ifname}: raising the queues to {n} (ethtool -L): {e}"),
        )
    })?;
    Ok(ChannelsGuard {
        count: n,
        restore: Some((ifname.to_string(), ch)),
    })
}
