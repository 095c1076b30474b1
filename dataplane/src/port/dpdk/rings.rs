//! A device over `rte_ring`s (the ring PMD) for tests and benchmarks: the
//! same ethdev path as a NIC (rx/tx burst through the driver, mbufs from the
//! device's pool), with frames injected and collected in memory.

use super::device::next_seq;
use super::packet::alloc_bulk;
use super::{Device, DeviceConfig, DpdkError, DpdkPacket, DpdkPort, Eal};
use crate::port::{Packet, BURST};
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
    /// The ethdev is named `net_ring_<name>`. An RX ring holds `rx_desc`
    /// and a TX ring `tx_desc` entries, rounded up to a power of two (1024
    /// for 0; one entry of a ring stays unused); the mempool is sized as for
    /// a device with those descriptors.
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
        let ring_size = |desc: u16| match u32::from(desc) {
            0 => DEFAULT_RING,
            n => n.next_power_of_two(),
        };
        let (rx_size, tx_size) = (ring_size(cfg.rx_desc), ring_size(cfg.tx_desc));

        let seq = next_seq();
        let mut rings = Rings(Vec::with_capacity(2 * q as usize));
        for (dir, size) in [("rx", rx_size), ("tx", tx_size)] {
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
        // Sizes up to 2^15 fit the u16 descriptor counts they came from.
        let cfg = DeviceConfig {
            rx_desc: rx_size.min(u32::from(u16::MAX)) as u16,
            tx_desc: tx_size.min(u32::from(u16::MAX)) as u16,
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

    /// Appends `n` fresh mbufs from the device's pool to `out`, all or none
    /// (false when the pool has fewer free), for [`RingHandle::enqueue`].
    pub fn alloc_bulk(&self, n: usize, out: &mut Vec<DpdkPacket>) -> bool {
        alloc_bulk(self.dev.pool.ptr, n, out)
    }

    /// Puts as many packets of `pkts` as RX queue `queue` has room for on
    /// it, in order, and removes them from `pkts`; returns how many (0 when
    /// there is no such queue). The device receives them as if from a wire.
    pub fn enqueue(&self, queue: usize, pkts: &mut Vec<DpdkPacket>) -> usize {
        let Some(ring) = self.ring(true, queue) else {
            return 0;
        };
        if pkts.is_empty() {
            return 0;
        }
        // SAFETY: a multi-producer ring (safe from any thread); pkts is an
        // array of pkts.len() owned mbuf pointers (DpdkPacket is
        // transparent). The ring owns the first n afterwards.
        let n = unsafe {
            ffi::rte_ring_enqueue_burst(
                ring.as_ptr(),
                pkts.as_ptr().cast::<*mut c_void>(),
                pkts.len() as u32,
                std::ptr::null_mut(),
            )
        } as usize;
        // The ring owns those now: forget them without freeing.
        for p in pkts.drain(..n) {
            std::mem::forget(p);
        }
        n
    }

    /// Appends up to `max` packets the device transmitted on TX queue
    /// `queue` to `out`, in order; returns how many.
    pub fn dequeue(&self, queue: usize, out: &mut Vec<DpdkPacket>, max: usize) -> usize {
        let Some(ring) = self.ring(false, queue) else {
            return 0;
        };
        out.reserve(max);
        let len = out.len();
        // SAFETY: a multi-consumer ring; the spare capacity holds `max`
        // pointers.
        let n = unsafe {
            ffi::rte_ring_dequeue_burst(
                ring.as_ptr(),
                out.as_mut_ptr().add(len).cast::<*mut c_void>(),
                max as u32,
                std::ptr::null_mut(),
            )
        } as usize;
        // SAFETY: the TX ring holds only mbufs the ring PMD put there from
        // tx_burst: valid, single-segment, now ours.
        unsafe { out.set_len(len + n) };
        n
    }

    /// Puts a copy of `frame` on RX queue `queue`. False when there is no
    /// such queue, the frame does not fit an mbuf, the pool is empty or the
    /// ring is full.
    pub fn inject(&self, queue: usize, frame: &[u8]) -> bool {
        let mut one = Vec::with_capacity(1);
        if !self.alloc_bulk(1, &mut one) || !one[0].copy_from(frame) {
            return false;
        }
        // What the ring does not take is freed with `one`.
        self.enqueue(queue, &mut one) == 1
    }

    /// Takes every frame transmitted on TX queue `queue` so far, in order,
    /// and returns their mbufs to their pools.
    pub fn take(&self, queue: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut pkts = Vec::with_capacity(BURST);
        while self.dequeue(queue, &mut pkts, BURST) > 0 {
            out.extend(pkts.iter().map(|p| p.data().to_vec()));
            DpdkPacket::free_bulk(&mut pkts);
        }
        out
    }
}
