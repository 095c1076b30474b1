//! A device over `rte_ring`s (the ring PMD) for tests and benchmarks: the
//! same ethdev path as a NIC (rx/tx burst through the driver, mbufs from the
//! device's pool), with frames injected and collected in memory.

use super::device::next_seq;
use super::{Device, DeviceConfig, DpdkError, DpdkPort, Eal};
use crate::port::BURST;
use ferrovs_ffi as ffi;
use std::ffi::{c_void, CString};
use std::ptr::NonNull;
use std::sync::Arc;

/// The test side of a [`Device::from_rings`] device: frames injected here are
/// received on the device's RX queues; frames the device transmits are taken
/// from here.
pub struct RingHandle {
    dev: Arc<Device>,
}

/// Ring size when the config gives no descriptor count.
const DEFAULT_RING: u32 = 1024;

impl Device {
    /// A port over `cfg.queues` pairs of rings (`rte_eth_from_rings`), plus
    /// the [`RingHandle`] that feeds its RX rings and drains its TX rings.
    /// The ethdev is named `net_ring_<name>`. Each ring holds `max(rx_desc, tx_desc)` rounded up
    /// to a power of two (1024 when both are 0); the mempool is sized as for
    /// a device with that many RX and TX descriptors.
    pub fn from_rings(
        eal: &Arc<Eal>,
        name: &str,
        cfg: &DeviceConfig,
    ) -> Result<(Arc<Device>, Vec<DpdkPort>, RingHandle), DpdkError> {
        let q = cfg.queues;
        if q == 0 {
            return Err(DpdkError::code("from_rings: 0 queues", ffi::EINVAL as i32));
        }
        // rte_eth_from_rings creates the vdev "net_ring_<name>" (the ring
        // driver's prefix, which the vdev bus matches on).
        let ethname = format!("net_ring_{name}");
        let bad = |_| {
            DpdkError::code(
                format!("ring device name {name:?} contains NUL"),
                ffi::EINVAL as i32,
            )
        };
        let cname = CString::new(name).map_err(bad)?;
        let cethname = CString::new(ethname.clone()).map_err(bad)?;
        let size = match u32::from(cfg.rx_desc.max(cfg.tx_desc)) {
            0 => DEFAULT_RING,
            n => n.next_power_of_two(),
        };

        let seq = next_seq();
        let mut rings = Rings(Vec::with_capacity(2 * q as usize));
        for dir in ["rx", "tx"] {
            for i in 0..q {
                // Ring names are process-wide memzone names (<= 29 bytes).
                let rname = CString::new(format!("fvs{seq}{dir}{i}")).unwrap();
                // SAFETY: the name is a valid C string; flags 0 makes a
                // multi-producer/multi-consumer ring, so the handle and the
                // PMD may use it from different threads.
                let r =
                    unsafe { ffi::rte_ring_create(rname.as_ptr(), size, ffi::SOCKET_ID_ANY, 0) };
                match NonNull::new(r) {
                    Some(r) => rings.0.push(r),
                    None => {
                        return Err(DpdkError::rte_errno(format!(
                            "rte_ring_create({size} entries for {ethname})"
                        )))
                    }
                }
            }
        }
        let ptrs: Vec<*mut ffi::rte_ring> = rings.0.iter().map(|r| r.as_ptr()).collect();
        let (rx, tx) = ptrs.split_at(q as usize);
        // SAFETY: rx and tx are arrays of q valid rings each, which outlive
        // the port (the Device frees them after closing it); the name is a
        // valid C string.
        let port = unsafe {
            ffi::rte_eth_from_rings(
                cname.as_ptr(),
                rx.as_ptr(),
                q.into(),
                tx.as_ptr(),
                q.into(),
                ffi::rte_socket_id(),
            )
        };
        if port < 0 {
            return Err(DpdkError::rte_errno(format!(
                "rte_eth_from_rings({ethname})"
            )));
        }
        let port = port as u16;
        let cfg = DeviceConfig {
            rx_desc: size as u16,
            tx_desc: size as u16,
            ..cfg.clone()
        };
        let owned = std::mem::take(&mut rings.0);
        // On failure, setup removes the vdev and frees the rings.
        let (dev, ports) = Device::setup(eal, port, ethname, Some(cethname), owned, &cfg)?;
        let handle = RingHandle { dev: dev.clone() };
        Ok((dev, ports, handle))
    }
}

/// Rings created so far, freed on an error return.
struct Rings(Vec<NonNull<ffi::rte_ring>>);

impl Drop for Rings {
    fn drop(&mut self) {
        for r in self.0.drain(..) {
            // SAFETY: the ring is ours, empty, and no port uses it.
            unsafe { ffi::rte_ring_free(r.as_ptr()) };
        }
    }
}

impl RingHandle {
    pub fn device(&self) -> &Arc<Device> {
        &self.dev
    }

    /// Sets the MAC address the device's ports use as source and report
    /// (`Device::mac`, `Port::mac`). The ring PMD cannot change its own
    /// address (`Device::set_mac` fails with ENOTSUP) and filters nothing by
    /// it, so for a ring device this label is all there is; the ethdev's
    /// `rte_eth_macaddr_get` keeps the driver's address.
    pub fn set_mac(&self, mac: crate::wire::Mac) {
        self.dev.set_port_mac(mac);
    }

    fn ring(&self, rx: bool, queue: usize) -> Option<NonNull<ffi::rte_ring>> {
        let q = self.dev.queues() as usize;
        if queue >= q {
            return None;
        }
        Some(self.dev.rings[if rx { queue } else { q + queue }])
    }

    /// Puts a copy of `frame` on RX queue `queue`. False when there is no
    /// such queue, the frame does not fit an mbuf, the pool is empty or the
    /// ring is full.
    pub fn inject(&self, queue: usize, frame: &[u8]) -> bool {
        let Some(ring) = self.ring(true, queue) else {
            return false;
        };
        // SAFETY: the pool lives as long as the device we hold.
        let m = unsafe { ffi::rte_pktmbuf_alloc(self.dev.pool.ptr.as_ptr()) };
        let Some(mut m) = NonNull::new(m) else {
            return false;
        };
        // SAFETY: a freshly allocated mbuf, owned here until enqueued or
        // freed.
        let mb = unsafe { m.as_mut() };
        if frame.len() > (mb.buf_len - mb.data_off) as usize {
            // SAFETY: owned, given back once.
            unsafe { ffi::rte_pktmbuf_free(mb) };
            return false;
        }
        // SAFETY: the frame fits behind data_off in the mbuf's buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(frame.as_ptr(), ffi::pktmbuf_mtod(mb), frame.len())
        };
        mb.data_len = frame.len() as u16;
        mb.pkt_len = frame.len() as u32;
        let obj = m.as_ptr().cast::<c_void>();
        // SAFETY: a multi-producer ring (safe from any thread) and one valid
        // object pointer.
        let n =
            unsafe { ffi::rte_ring_enqueue_burst(ring.as_ptr(), &obj, 1, std::ptr::null_mut()) };
        if n == 0 {
            // SAFETY: the ring did not take it; still ours.
            unsafe { ffi::rte_pktmbuf_free(m.as_ptr()) };
            return false;
        }
        true
    }

    /// Takes every frame transmitted on TX queue `queue` so far, in order,
    /// and returns their mbufs to their pools.
    pub fn take(&self, queue: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let Some(ring) = self.ring(false, queue) else {
            return out;
        };
        let mut objs = [std::ptr::null_mut::<c_void>(); BURST];
        loop {
            // SAFETY: a multi-consumer ring; objs has room for BURST.
            let n = unsafe {
                ffi::rte_ring_dequeue_burst(
                    ring.as_ptr(),
                    objs.as_mut_ptr(),
                    BURST as u32,
                    std::ptr::null_mut(),
                )
            };
            if n == 0 {
                return out;
            }
            for &o in &objs[..n as usize] {
                let m = o.cast::<ffi::rte_mbuf>();
                // SAFETY: the TX ring holds only mbufs the ring PMD put there
                // from our tx_burst: valid, single-segment, now ours.
                out.push(unsafe {
                    std::slice::from_raw_parts(ffi::pktmbuf_mtod(m), (*m).data_len as usize)
                        .to_vec()
                });
            }
            // SAFETY: the n dequeued mbufs are ours and freed once.
            unsafe { ffi::rte_pktmbuf_free_bulk(objs.as_mut_ptr().cast(), n) };
        }
    }
}
