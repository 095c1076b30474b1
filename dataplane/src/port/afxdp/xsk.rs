//! An XDP socket and its four rings (Documentation/networking/af_xdp.rst):
//! fill and completion (frames lent to and returned by the kernel), RX and
//! TX (descriptors of received and to-be-sent frames). Each ring is a
//! single-producer single-consumer queue in memory shared with the kernel:
//! the producer writes entries then publishes its index with a release
//! store, the consumer reads the index with an acquire load, reads the
//! entries, then publishes its own index.

use super::umem::{Umem, FRAME_SIZE};
use crate::port::sys;
use std::ffi::c_void;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};

/// Ring sizes (entries, powers of two).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingSizes {
    pub fill: u32,
    pub comp: u32,
    pub rx: u32,
    pub tx: u32,
}

impl Default for RingSizes {
    fn default() -> Self {
        // 2048 each: a few milliseconds of a worker's stall at a million
        // packets per second, and 4 MiB of frames lent to the kernel per
        // socket through the fill ring.
        RingSizes {
            fill: 2048,
            comp: 2048,
            rx: 2048,
            tx: 2048,
        }
    }
}

/// How the socket is bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindMode {
    /// The driver DMAs into the UMEM (`XDP_ZEROCOPY`).
    ZeroCopy,
    /// The kernel copies (`XDP_COPY`): veth, generic XDP, drivers without
    /// AF_XDP support.
    Copy,
}

/// One mapped ring.
struct Ring {
    map: *mut u8,
    map_len: usize,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    descs: *mut u8,
    mask: u32,
    size: u32,
    /// Our copy of our own index, and the last seen index of the other side.
    local: u32,
    remote: u32,
}

impl Ring {
    /// Maps ring `pgoff` of socket `fd` with `n` entries of `T`.
    fn map<T>(fd: RawFd, off: &libc::xdp_ring_offset, n: u32, pgoff: u64) -> io::Result<Ring> {
        let map_len = off.desc as usize + n as usize * mem::size_of::<T>();
        // SAFETY: maps the ring the kernel allocated for this socket at the
        // documented page offset; checked below.
        let map = unsafe {
            libc::mmap(
                ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                pgoff as libc::off_t,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let m = map as *mut u8;
        // SAFETY: the offsets come from XDP_MMAP_OFFSETS for this mapping;
        // producer, consumer and flags are u32 words inside it.
        unsafe {
            Ok(Ring {
                map: m,
                map_len,
                producer: m.add(off.producer as usize) as *const AtomicU32,
                consumer: m.add(off.consumer as usize) as *const AtomicU32,
                flags: m.add(off.flags as usize) as *const AtomicU32,
                descs: m.add(off.desc as usize),
                mask: n - 1,
                size: n,
                local: 0,
                remote: 0,
            })
        }
    }

    #[inline(always)]
    fn prod(&self) -> &AtomicU32 {
        // SAFETY: points into the mapping, which lives as long as `self`;
        // the kernel and we access it only atomically.
        unsafe { &*self.producer }
    }
    #[inline(always)]
    fn cons(&self) -> &AtomicU32 {
        // SAFETY: as `prod`.
        unsafe { &*self.consumer }
    }
    #[inline(always)]
    fn needs_wakeup(&self) -> bool {
        // SAFETY: as `prod`.
        unsafe { &*self.flags }.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    /// Producer side: free entries (refreshing the consumer index when
    /// fewer than `want` look free).
    #[inline]
    fn free(&mut self, want: u32) -> u32 {
        let f = self.size - self.local.wrapping_sub(self.remote);
        if f >= want {
            return f;
        }
        self.remote = self.cons().load(Ordering::Acquire);
        self.size - self.local.wrapping_sub(self.remote)
    }

    /// Consumer side: entries ready (refreshing the producer index when none
    /// are known).
    #[inline]
    fn ready(&mut self) -> u32 {
        let r = self.remote.wrapping_sub(self.local);
        if r > 0 {
            return r;
        }
        self.remote = self.prod().load(Ordering::Acquire);
        self.remote.wrapping_sub(self.local)
    }

    #[inline(always)]
    fn entry<T>(&self, idx: u32) -> *mut T {
        // SAFETY: `idx & mask < size`, inside the descriptor array.
        unsafe { (self.descs as *mut T).add((idx & self.mask) as usize) }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping made in `map`.
        unsafe { libc::munmap(self.map as *mut c_void, self.map_len) };
    }
}

/// A socket's four rings, mapped.
struct Rings {
    fill: Ring,
    comp: Ring,
    rx: Ring,
    tx: Ring,
}

impl Rings {
    /// Maps the rings of socket `s` (sizes set already). The producer
    /// rings (fill, TX) start at the kernel's current indices.
    fn map(s: RawFd, sizes: RingSizes) -> io::Result<Rings> {
        let ctx = |what: &str, e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
        // SAFETY: all-zero is a valid xdp_mmap_offsets (integers only).
        let mut off: libc::xdp_mmap_offsets = unsafe { mem::zeroed() };
        sys::getsockopt_into(s, libc::SOL_XDP, libc::XDP_MMAP_OFFSETS, &mut off)
            .map_err(|e| ctx("XDP_MMAP_OFFSETS", e))?;
        let fill = Ring::map::<u64>(s, &off.fr, sizes.fill, libc::XDP_UMEM_PGOFF_FILL_RING)
            .map_err(|e| ctx("mmap fill ring", e))?;
        let comp = Ring::map::<u64>(s, &off.cr, sizes.comp, libc::XDP_UMEM_PGOFF_COMPLETION_RING)
            .map_err(|e| ctx("mmap completion ring", e))?;
        let rx = Ring::map::<libc::xdp_desc>(s, &off.rx, sizes.rx, libc::XDP_PGOFF_RX_RING as u64)
            .map_err(|e| ctx("mmap RX ring", e))?;
        let mut tx =
            Ring::map::<libc::xdp_desc>(s, &off.tx, sizes.tx, libc::XDP_PGOFF_TX_RING as u64)
                .map_err(|e| ctx("mmap TX ring", e))?;
        // The TX ring starts empty: all of it is ours to fill.
        tx.remote = tx.cons().load(Ordering::Acquire);
        tx.local = tx.prod().load(Ordering::Relaxed);
        let mut fillr = fill;
        fillr.local = fillr.prod().load(Ordering::Relaxed);
        fillr.remote = fillr.cons().load(Ordering::Acquire);

        Ok(Rings {
            fill: fillr,
            comp,
            rx,
            tx,
        })
    }
}

/// An XDP socket bound to one queue of one interface, with the process's
/// UMEM registered.
pub struct Xsk {
    // Rings before the socket: unmapped before it closes.
    fill: Ring,
    comp: Ring,
    rx: Ring,
    tx: Ring,
    fd: OwnedFd,
    pub mode: BindMode,
    pub sizes: RingSizes,
    /// TX descriptors submitted and not yet completed.
    pub tx_outstanding: u32,
}

// SAFETY: the rings are this socket's alone; moving the socket moves sole
// access to them.
unsafe impl Send for Xsk {}

fn setsockopt<T>(fd: RawFd, name: libc::c_int, v: &T) -> io::Result<()> {
    sys::setsockopt(fd, libc::SOL_XDP, name, v)
}

impl Xsk {
    /// Opens a socket on (`ifindex`, `queue`) in `mode`.
    pub fn open(
        umem: &Umem,
        ifindex: u32,
        queue: u32,
        mode: BindMode,
        sizes: RingSizes,
    ) -> io::Result<Xsk> {
        let ctx = |what: &str, e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
        let fd = sys::socket(libc::AF_XDP, libc::SOCK_RAW, 0, "socket(AF_XDP)")?;
        let s = fd.as_raw_fd();
        let reg = libc::xdp_umem_reg {
            addr: umem.base() as u64,
            len: umem.len() as u64,
            chunk_size: FRAME_SIZE as u32,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(s, libc::XDP_UMEM_REG, &reg).map_err(|e| ctx("XDP_UMEM_REG", e))?;
        setsockopt(s, libc::XDP_UMEM_FILL_RING, &sizes.fill)
            .map_err(|e| ctx("XDP_UMEM_FILL_RING", e))?;
        setsockopt(s, libc::XDP_UMEM_COMPLETION_RING, &sizes.comp)
            .map_err(|e| ctx("XDP_UMEM_COMPLETION_RING", e))?;
        setsockopt(s, libc::XDP_RX_RING, &sizes.rx).map_err(|e| ctx("XDP_RX_RING", e))?;
        setsockopt(s, libc::XDP_TX_RING, &sizes.tx).map_err(|e| ctx("XDP_TX_RING", e))?;
        let rings = Rings::map(s, sizes).map_err(|e| ctx("rings", e))?;
        let flags = libc::XDP_USE_NEED_WAKEUP
            | match mode {
                BindMode::ZeroCopy => libc::XDP_ZEROCOPY,
                BindMode::Copy => libc::XDP_COPY,
            };
        let sa = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: flags,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        // SAFETY: `sa` is a valid sockaddr_xdp and the length its size.
        let r = unsafe {
            libc::bind(
                s,
                &sa as *const libc::sockaddr_xdp as *const libc::sockaddr,
                mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return Err(ctx(&format!("bind to queue {queue} ({mode:?})"), e));
        }
        Ok(Xsk {
            fill: rings.fill,
            comp: rings.comp,
            rx: rings.rx,
            tx: rings.tx,
            fd,
            mode,
            sizes,
            tx_outstanding: 0,
        })
    }

    /// A bound socket another process handed over (`ferrovs upgrade`), its
    /// rings as that process left them: every index is read back from the
    /// rings themselves, so what the kernel received meanwhile is taken,
    /// what it completed is freed, and what it still holds (fill ring, TX
    /// in flight) comes back through the rings as before.
    pub fn adopt(fd: OwnedFd, mode: BindMode, sizes: RingSizes) -> io::Result<Xsk> {
        let mut r = Rings::map(fd.as_raw_fd(), sizes)?;
        for ring in [&mut r.comp, &mut r.rx] {
            ring.local = ring.cons().load(Ordering::Acquire);
            ring.remote = ring.local;
        }
        let tx_outstanding = r.tx.local.wrapping_sub(r.comp.local);
        Ok(Xsk {
            fill: r.fill,
            comp: r.comp,
            rx: r.rx,
            tx: r.tx,
            fd,
            mode,
            sizes,
            tx_outstanding,
        })
    }

    /// A duplicate of the socket, for the next process.
    pub fn dup_fd(&self) -> io::Result<OwnedFd> {
        self.fd.try_clone()
    }

    /// Lends frames to the kernel: up to `max`, taken from `next` until it
    /// returns None. Returns how many.
    #[inline]
    pub fn fill(&mut self, max: u32, mut next: impl FnMut() -> Option<u32>) -> u32 {
        let n = self.fill.free(max).min(max);
        let mut i = 0;
        while i < n {
            let Some(f) = next() else { break };
            // SAFETY: entry `local + i` is free (counted by `free`) and ours
            // to write until we publish it.
            unsafe { *self.fill.entry::<u64>(self.fill.local.wrapping_add(i)) = f as u64 };
            i += 1;
        }
        if i > 0 {
            self.fill.local = self.fill.local.wrapping_add(i);
            self.fill.prod().store(self.fill.local, Ordering::Release);
        }
        i
    }

    /// Frames the kernel holds in the fill ring (approximate: the last
    /// consumer index we saw).
    pub fn fill_level(&self) -> u32 {
        self.fill
            .local
            .wrapping_sub(self.fill.cons().load(Ordering::Relaxed))
    }

    /// Takes up to `max` received descriptors, calling `f(addr, len)` for
    /// each. Returns how many.
    #[inline]
    pub fn recv(&mut self, max: u32, mut f: impl FnMut(u64, u32)) -> u32 {
        let n = self.rx.ready().min(max);
        for i in 0..n {
            // SAFETY: entry `local + i` was published by the kernel
            // (acquire in `ready`) and not yet released.
            let d = unsafe {
                ptr::read(
                    self.rx
                        .entry::<libc::xdp_desc>(self.rx.local.wrapping_add(i)),
                )
            };
            f(d.addr, d.len);
        }
        if n > 0 {
            self.rx.local = self.rx.local.wrapping_add(n);
            self.rx.cons().store(self.rx.local, Ordering::Release);
        }
        n
    }

    /// Whether received descriptors are waiting (no syscall).
    #[inline]
    pub fn rx_ready(&self) -> bool {
        self.rx.prod().load(Ordering::Acquire) != self.rx.local
    }

    /// Takes completed TX frames, calling `f(addr)` for each.
    #[inline]
    pub fn complete(&mut self, mut f: impl FnMut(u64)) -> u32 {
        let n = self.comp.ready();
        for i in 0..n {
            // SAFETY: as in `recv`, for the completion ring.
            let a = unsafe { *self.comp.entry::<u64>(self.comp.local.wrapping_add(i)) };
            f(a);
        }
        if n > 0 {
            self.comp.local = self.comp.local.wrapping_add(n);
            self.comp.cons().store(self.comp.local, Ordering::Release);
            self.tx_outstanding = self.tx_outstanding.saturating_sub(n);
        }
        n
    }

    /// Free TX descriptors.
    #[inline]
    pub fn tx_free(&mut self, want: u32) -> u32 {
        self.tx.free(want)
    }

    /// Queues one TX descriptor; call [`tx_submit`](Self::tx_submit) after a
    /// batch. The caller checked [`tx_free`](Self::tx_free).
    #[inline]
    pub fn tx_push(&mut self, i: u32, addr: u64, len: u32) {
        let d = libc::xdp_desc {
            addr,
            len,
            options: 0,
        };
        // SAFETY: entry `local + i` is free (the caller checked tx_free)
        // and ours until published.
        unsafe {
            ptr::write(
                self.tx
                    .entry::<libc::xdp_desc>(self.tx.local.wrapping_add(i)),
                d,
            )
        };
    }

    /// Publishes `n` queued TX descriptors and kicks the kernel when it
    /// asks for it (always, in copy mode).
    #[inline]
    pub fn tx_submit(&mut self, n: u32) -> io::Result<()> {
        if n > 0 {
            self.tx.local = self.tx.local.wrapping_add(n);
            self.tx.prod().store(self.tx.local, Ordering::Release);
            self.tx_outstanding += n;
        }
        self.kick_tx()
    }

    /// TX descriptors the kernel has not consumed yet.
    #[inline]
    pub fn tx_queued(&self) -> u32 {
        self.tx
            .local
            .wrapping_sub(self.tx.cons().load(Ordering::Acquire))
    }

    /// Asks the kernel to process the TX ring (`sendto` with no data,
    /// af_xdp.rst "XDP_USE_NEED_WAKEUP") when the ring says it must.
    #[inline]
    pub fn kick_tx(&mut self) -> io::Result<()> {
        if self.tx_queued() == 0 || !self.tx.needs_wakeup() {
            return Ok(());
        }
        // SAFETY: sendto with no buffer and no address on our socket.
        let r = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                ptr::null(),
                0,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                // Busy or out of buffers: the descriptors stay queued and
                // the next kick sends them.
                Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ENOBUFS) => Ok(()),
                _ => Err(e),
            }
        } else {
            Ok(())
        }
    }

    /// Wakes the driver to refill from the fill ring when it asks (zero-copy
    /// drivers set the flag when they ran out of frames).
    #[inline]
    pub fn kick_fill(&mut self) {
        if self.fill.needs_wakeup() {
            // SAFETY: recvfrom with no buffer on our socket, non-blocking.
            unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    ptr::null_mut(),
                    0,
                    libc::MSG_DONTWAIT,
                    ptr::null_mut(),
                    ptr::null_mut(),
                )
            };
        }
    }

    /// Frames still lent to the kernel or in flight, handed back to `f` when
    /// the socket is torn down: what sits in the fill ring unconsumed, what
    /// was received and not taken, and completed TX frames. (Frames in the
    /// kernel's hands are lost to the region until the socket closes; the
    /// region is sized for that.)
    pub fn drain(&mut self, mut f: impl FnMut(u64)) {
        let from = self.fill.cons().load(Ordering::Acquire);
        let mut i = from;
        while i != self.fill.local {
            // SAFETY: entries between the kernel's consumer index and ours
            // were written by us and not taken by the kernel.
            f(unsafe { *self.fill.entry::<u64>(i) });
            i = i.wrapping_add(1);
        }
        self.fill.cons().store(self.fill.local, Ordering::Release);
        self.complete(&mut f);
        self.recv(u32::MAX, |a, _| f(a));
    }
}

impl AsRawFd for Xsk {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
