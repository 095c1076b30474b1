//! The fast path: one queue pair ([`DpdkPort`]) and one mbuf ([`DpdkPacket`]).

use super::Device;
use crate::port::{Packet, Port, BURST};
use crate::wire::Mac;
use ferrovs_ffi as ffi;
use std::ptr::NonNull;
use std::sync::Arc;

/// One received or allocated frame: owns one single-segment mbuf and frees
/// it on drop. The data is the mbuf's own buffer (no copy).
///
/// `repr(transparent)` over the mbuf pointer, so that a `Vec<DpdkPacket>`
/// is an array of `rte_mbuf *` that `rte_eth_tx_burst` and
/// `rte_pktmbuf_free_bulk` take as is.
#[repr(transparent)]
pub struct DpdkPacket {
    m: NonNull<ffi::rte_mbuf>,
}

// SAFETY: the packet owns its mbuf exclusively; mbufs may be used and freed
// from any thread (the pool is multi-producer/multi-consumer; a thread without
// an lcore id just bypasses the per-lcore cache).
unsafe impl Send for DpdkPacket {}

impl DpdkPacket {
    #[inline(always)]
    fn mbuf(&self) -> &ffi::rte_mbuf {
        // SAFETY: `m` points to a valid mbuf that this packet owns.
        unsafe { self.m.as_ref() }
    }

    #[inline(always)]
    fn mbuf_mut(&mut self) -> &mut ffi::rte_mbuf {
        // SAFETY: as above, and `&mut self` makes the access exclusive.
        unsafe { self.m.as_mut() }
    }

    /// Bytes free in front of the data.
    pub fn headroom(&self) -> usize {
        self.mbuf().data_off as usize
    }

    /// Frees all packets of `pkts` at once (`rte_pktmbuf_free_bulk`, which
    /// returns runs of mbufs of one pool together), leaving it empty.
    pub fn free_bulk(pkts: &mut Vec<DpdkPacket>) {
        if pkts.is_empty() {
            return;
        }
        // SAFETY: DpdkPacket is a transparent mbuf pointer, so the vector is
        // an array of pkts.len() owned mbufs; after the call they are freed,
        // and set_len(0) forgets them without running their Drop.
        unsafe {
            ffi::rte_pktmbuf_free_bulk(pkts.as_mut_ptr().cast(), pkts.len() as u32);
            pkts.set_len(0);
        }
    }
}

/// Appends `n` fresh mbufs of `pool` to `out` (`rte_pktmbuf_alloc_bulk`: all
/// or none). False when the pool has fewer than `n` free.
pub(super) fn alloc_bulk(
    pool: NonNull<ffi::rte_mempool>,
    n: usize,
    out: &mut Vec<DpdkPacket>,
) -> bool {
    out.reserve(n);
    let len = out.len();
    // SAFETY: the spare capacity holds n pointers (DpdkPacket is a
    // transparent mbuf pointer); the pool outlives the call (the caller holds
    // its device).
    let r = unsafe {
        ffi::rte_pktmbuf_alloc_bulk(pool.as_ptr(), out.as_mut_ptr().add(len).cast(), n as u32)
    };
    if r != 0 {
        return false;
    }
    // SAFETY: on success all n entries are reset, non-null mbufs we now own.
    unsafe { out.set_len(len + n) };
    true
}

impl Packet for DpdkPacket {
    #[inline(always)]
    fn data(&self) -> &[u8] {
        let m = self.mbuf();
        // SAFETY: single segment: the data_len bytes from buf_addr + data_off
        // lie inside the mbuf's buffer, which the packet owns.
        unsafe { std::slice::from_raw_parts(ffi::pktmbuf_mtod(m), m.data_len as usize) }
    }

    #[inline(always)]
    fn data_mut(&mut self) -> &mut [u8] {
        let m = self.mbuf_mut();
        let len = m.data_len as usize;
        // SAFETY: as for data(), and &mut self makes it exclusive.
        unsafe { std::slice::from_raw_parts_mut(ffi::pktmbuf_mtod(m), len) }
    }

    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        // What rte_pktmbuf_prepend does, for one segment, without the call.
        let m = self.mbuf_mut();
        if n > m.data_off as usize {
            return false;
        }
        m.data_off -= n as u16;
        m.data_len += n as u16;
        m.pkt_len += n as u32;
        true
    }

    #[inline]
    fn adj(&mut self, n: usize) {
        let m = self.mbuf_mut();
        let n = n.min(m.data_len as usize) as u16;
        m.data_off += n;
        m.data_len -= n;
        m.pkt_len -= u32::from(n);
    }

    #[inline]
    fn set_len(&mut self, len: usize) -> bool {
        let m = self.mbuf_mut();
        if m.data_off as usize + len > m.buf_len as usize {
            return false;
        }
        m.data_len = len as u16;
        m.pkt_len = len as u32;
        true
    }
}

impl Drop for DpdkPacket {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the packet owns the mbuf, which is given back exactly once.
        unsafe { ffi::rte_pktmbuf_free(self.m.as_ptr()) }
    }
}

/// One RX/TX queue pair of a [`Device`], owned by one worker.
pub struct DpdkPort {
    dev: Arc<Device>,
    port_id: u16,
    queue: u16,
    pool: NonNull<ffi::rte_mempool>,
    rx_multiseg: u64,
}

// SAFETY: the queue pair is used by whoever owns the DpdkPort (&mut self on
// every queue operation), one thread at a time, which is what DPDK requires
// of a queue; the pool pointer is to the Device's thread-safe mempool, kept
// alive by `dev`.
unsafe impl Send for DpdkPort {}

impl DpdkPort {
    pub(super) fn new(dev: Arc<Device>, queue: u16) -> DpdkPort {
        DpdkPort {
            port_id: dev.port_id(),
            pool: dev.pool.ptr,
            dev,
            queue,
            rx_multiseg: 0,
        }
    }

    pub fn device(&self) -> &Arc<Device> {
        &self.dev
    }

    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Multi-segment frames received and dropped (see the module docs).
    pub fn rx_multiseg_dropped(&self) -> u64 {
        self.rx_multiseg
    }

    /// Frees all packets of `pkts` at once ([`DpdkPacket::free_bulk`]).
    pub fn free_bulk(&mut self, pkts: &mut Vec<DpdkPacket>) {
        DpdkPacket::free_bulk(pkts);
    }

    /// Appends `n` fresh mbufs from the device's pool to `out`, all or none
    /// (false when the pool has fewer free): a traffic generator's bulk
    /// [`Port::alloc`].
    pub fn alloc_bulk(&mut self, n: usize, out: &mut Vec<DpdkPacket>) -> bool {
        alloc_bulk(self.pool, n, out)
    }
}

impl Port for DpdkPort {
    type Pkt = DpdkPacket;

    #[inline]
    fn rx_burst(&mut self, out: &mut Vec<DpdkPacket>) -> usize {
        let mut buf = [std::ptr::null_mut::<ffi::rte_mbuf>(); BURST];
        // SAFETY: the queue is this port's alone (&mut self); buf has room
        // for BURST mbuf pointers.
        let n = unsafe {
            ffi::rte_eth_rx_burst(self.port_id, self.queue, buf.as_mut_ptr(), BURST as u16)
        };
        let mut got = 0;
        for &m in &buf[..n as usize] {
            let Some(m) = NonNull::new(m) else { continue };
            let pkt = DpdkPacket { m };
            if pkt.mbuf().nb_segs != 1 {
                // Dropping `pkt` frees the whole chain.
                self.rx_multiseg += 1;
                continue;
            }
            out.push(pkt);
            got += 1;
        }
        got
    }

    #[inline]
    fn tx_burst(&mut self, pkts: &mut Vec<DpdkPacket>) {
        let mut sent = 0usize;
        while sent < pkts.len() {
            let want = (pkts.len() - sent).min(u16::MAX as usize) as u16;
            // SAFETY: pkts[sent..] is an array of `want` owned mbuf pointers
            // (DpdkPacket is transparent); the driver takes ownership of the
            // first `n` it reports, which are removed below without being
            // freed. The queue is this port's alone.
            let n = unsafe {
                ffi::rte_eth_tx_burst(
                    self.port_id,
                    self.queue,
                    pkts.as_mut_ptr().add(sent).cast(),
                    want,
                )
            };
            sent += n as usize;
            if n < want {
                break; // the TX ring is full
            }
        }
        // The driver owns the sent mbufs now.
        for p in pkts.drain(..sent) {
            std::mem::forget(p);
        }
    }

    #[inline]
    fn alloc(&mut self) -> Option<DpdkPacket> {
        // SAFETY: the pool is alive (held by `dev`); rte_pktmbuf_alloc
        // returns a reset single-segment mbuf (data_off = headroom, length
        // 0) or NULL.
        let m = unsafe { ffi::rte_pktmbuf_alloc(self.pool.as_ptr()) };
        NonNull::new(m).map(|m| DpdkPacket { m })
    }

    #[inline]
    fn mac(&self) -> Mac {
        self.dev.mac()
    }
}
