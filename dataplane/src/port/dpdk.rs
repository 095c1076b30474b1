//! The DPDK port backend (feature `dpdk`): poll-mode ethdevs through the
//! system libdpdk (Debian's 22.11), bound by the `ferrovs-ffi` crate. All of
//! ferrovs' DPDK `unsafe` lives in `ferrovs-ffi` and in this module.
//!
//! # Pieces
//!
//! - [`Eal`]: the Environment Abstraction Layer, initialised once per
//!   process ([`Eal::init`]); lists the probed devices, the worker lcores, and
//!   runs closures on them ([`Eal::launch`]). Threads that the EAL did not
//!   create call [`register_thread`] to get an lcore id, so the per-lcore
//!   mempool caches serve them.
//! - [`Device`]: one opened ethdev with `queues` RX/TX queue pairs and its
//!   own mbuf pool; the control plane shares it (`Arc`) for link state,
//!   counters and flow rules. [`Device::open`] takes any ethdev (a PCI
//!   address, a `--vdev` name, or `"net_xxx0,args"` to create a virtual
//!   device), [`Device::create_tap`] makes the kernel exception interface,
//!   and [`Device::from_rings`] a port over `rte_ring`s for tests and
//!   benchmarks (with a [`RingHandle`] to inject and collect frames).
//! - [`DpdkPort`]: one queue pair, owned by one worker; implements
//!   [`Port`](crate::port::Port). [`DpdkPacket`]: one mbuf, zero-copy
//!   [`Packet`](crate::port::Packet).
//!
//! # Invariants the backend keeps
//!
//! - Packets are single-segment mbufs. RX scatter is not enabled, so a PMD
//!   hands over a chain only for frames larger than an mbuf's 2048-byte data
//!   room (jumbo frames on a device configured for them elsewhere); such
//!   chains are dropped and counted ([`DpdkPort::rx_multiseg_dropped`])
//!   rather than linearised, which would need a second buffer per frame and
//!   could not fit most of them anyway.
//! - `RTE_PKTMBUF_HEADROOM` equals [`HEADROOM`](crate::port::HEADROOM)
//!   (128, checked at compile time), so a received frame can take an IPIP
//!   header in front without copying.
//! - Memory safety at teardown: a [`Device`] frees its mempool only when no
//!   mbuf of it is in use any more; otherwise (packets still held, e.g. in a
//!   neighbour queue of a dropped worker) the pool is left allocated, and the
//!   EAL is then not cleaned up either, so a late [`DpdkPacket`] drop still
//!   returns its mbuf to valid memory.
//!
//! # Offloads, on purpose
//!
//! - RSS over IPv4/IPv6 with TCP and UDP ports across the queues when there
//!   is more than one queue and the device offers it; the device's default
//!   key (not symmetric: the dataplane hands a packet that reached the wrong
//!   worker to its owner anyway, see DESIGN.md).
//! - No checksum offloads: the dataplane updates checksums incrementally.
//! - No `MBUF_FAST_FREE`. That TX offload lets the driver return sent mbufs
//!   in bulk to the pool of the *first* one, which is only correct when every
//!   mbuf sent on the queue comes from one pool. Each device has its own pool
//!   and the worker forwards between devices (client side to server side,
//!   wire to TAP), so a TX queue sees mbufs from several pools: with the
//!   offload on, mbufs would be returned to the wrong pool.

mod device;
mod eal;
mod flow;
mod packet;
mod rings;

pub use device::{DevInfo, DevStats, Device, DeviceConfig, Link};
pub use eal::{register_thread, remove_runtime_dir, tsc, Eal};
pub use packet::{DpdkPacket, DpdkPort};
pub use rings::RingHandle;

use ferrovs_ffi as ffi;
use std::fmt;

/// A failed DPDK call: what was attempted and the errno DPDK reported
/// (`rte_errno`, or the negated return value), with DPDK's text for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkError {
    what: String,
    errno: i32,
}

impl DpdkError {
    /// `what` failed with the calling thread's `rte_errno`.
    fn rte_errno(what: impl Into<String>) -> DpdkError {
        DpdkError::code(what, ffi::rte_errno())
    }

    /// `what` failed with errno `errno` (positive).
    fn code(what: impl Into<String>, errno: i32) -> DpdkError {
        DpdkError {
            what: what.into(),
            errno,
        }
    }

    /// `what` returned `ret`, a negative errno, as ethdev functions do.
    fn ret(what: impl Into<String>, ret: i32) -> DpdkError {
        DpdkError::code(what, ret.saturating_neg())
    }

    /// The errno value (0 when the failure has none).
    pub fn errno(&self) -> i32 {
        self.errno
    }

    /// What was attempted.
    pub fn what(&self) -> &str {
        &self.what
    }
}

impl fmt::Display for DpdkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.errno == 0 {
            f.write_str(&self.what)
        } else {
            write!(
                f,
                "{}: {} (errno {})",
                self.what,
                ffi::strerror(self.errno),
                self.errno
            )
        }
    }
}

impl std::error::Error for DpdkError {}

const _: () = assert!(ffi::RTE_PKTMBUF_HEADROOM as usize == super::HEADROOM);
