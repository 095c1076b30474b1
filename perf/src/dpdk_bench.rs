//! `ferrovs-perf --backend dpdk`: one real `Worker<DpdkPort>` forwarding
//! through DPDK ethdevs of the ring PMD (`net_ring`), measured against
//! `dpdk-testpmd` io forwarding on the same kind of device.
//!
//! # The rig
//!
//! - The EAL starts once per process (no hugepages, no PCI, a file prefix
//!   of its own) with two lcores: lcore 0 (the main lcore, where the
//!   generator runs) on the second CPU, lcore 1 (the worker's) on the first
//!   (both on the one CPU of a 1-CPU machine).
//! - Two ring devices, the client side (port 0) and the server side
//!   (port 1), one queue pair each: SP/SC `rte_ring`s of 1024 entries
//!   (what `--vdev=net_ring0` gives testpmd), made into ethdevs with
//!   `rte_eth_from_rings` and opened with [`Device::open`], so the worker
//!   reads and writes them through `rte_eth_rx_burst`/`rte_eth_tx_burst`
//!   like a NIC queue.
//! - The director is the memory benchmark's (`lab::snapshot`: VIP:80 over
//!   three real servers in the mode under test, neighbours taught by ARP
//!   replies), and the flows are established the same way: one SYN per
//!   flow through the worker before timing (learning, for NAT and FULLNAT,
//!   where each flow went so that the servers' replies can be built).
//! - The worker runs on EAL lcore 1. A generator thread on the other CPU
//!   (registered with the EAL for a mempool cache) stands for the NIC: it
//!   allocates mbufs in bulk from a pool of its own, copies the pre-built
//!   60-byte frames (N flows in random flow order, both directions for NAT
//!   and FULLNAT) into them, enqueues them on the RX rings in bursts, and
//!   takes what the worker transmitted off the TX rings and frees it.
//!
//! # What is measured
//!
//! Packets the worker received per second of the worker's own wall time
//! (`mpps`; `ns_per_packet` is its inverse for one core): DPDK rx/tx burst
//! through the ring PMD plus all of the worker's processing. Not on the
//! worker's core, so not in the figure: mbuf allocation, the frame copy and
//! freeing sent mbufs (the generator does them, as a NIC's DMA and a PMD's
//! descriptor refill would partly do). What the worker reads was written
//! by the generator on the other core, so the cache-line transfers between
//! the cores are in the figure (as a NIC's DMA into the cache would be).
//!
//! The generator can still limit the figure. `worker_busy_share` (the
//! share of the time the worker spent in polls that found packets, timed
//! with the TSC) and `packets_per_busy_poll` say whether it did: busy near
//! 1 with full bursts, `mpps` is the worker's rate; otherwise it is partly
//! the generator's. With `testpmd`, the run also measures the rig's own
//! ceiling (`rig_io_mpps`: the same generator and traffic with a plain io
//! forwarder in place of the worker).
//!
//! The dataplane's own [`RingHandle`] (per-frame `inject`, `take` copying
//! every frame into a `Vec`) is too slow to feed a worker (see
//! `FERROVS_DPDK_GENERATOR` below), hence the bulk generator written here
//! over `ferrovs_ffi`. Set `FERROVS_DPDK_GENERATOR=ring-handle` to feed
//! through `Device::from_rings` and its `RingHandle` instead.
//!
//! # testpmd
//!
//! With `testpmd`, after the worker's run (never at the same time),
//! `dpdk-testpmd` (or `$FERROVS_TESTPMD`) runs io forwarding with one
//! forwarding core on the same CPUs between two `net_ring` vdevs
//! (loopback rings that circulate the first burst, `--tx-first`), and its
//! per-second `Rx-pps`, summed over both ports, gives `testpmd_mpps` (the
//! median second). io forwarding never touches a packet, and the loopback
//! keeps the same few mbufs in cache, so this is the ceiling of moving mbuf
//! pointers through the ring PMD on one core, not a NIC's.
#![cfg(feature = "dpdk")]

use crate::lab;
use crate::traffic::{self, Flow, Trace, FRAME_LEN};
use ferrovs_dataplane::conn::Timeouts;
use ferrovs_dataplane::counters::DropReason;
use ferrovs_dataplane::port::dpdk::{
    register_thread, Device, DeviceConfig, DpdkPacket, DpdkPort, Eal, RingHandle,
};
use ferrovs_dataplane::port::{Port, BURST};
use ferrovs_dataplane::service::FwdMethod;
use ferrovs_dataplane::wire::l4::{TCP_ACK, TCP_SYN};
use ferrovs_dataplane::worker::{Shared, Worker};
use ferrovs_ffi as ffi;
use serde::Serialize;
use std::collections::BTreeMap;
use std::ffi::{c_void, CString};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Clone, Debug)]
pub struct DpdkBenchArgs {
    /// "dr", "nat", "fullnat" or "tun".
    pub mode: &'static str,
    /// Established flows the traffic is spread over.
    pub flows: u64,
    /// How long the worker is measured (and testpmd, after it).
    pub seconds: f64,
    /// Also measure dpdk-testpmd io forwarding and report the ratio.
    pub testpmd: bool,
}

/// What a run measured.
#[derive(Clone, Debug, Serialize)]
pub struct DpdkBenchReport {
    pub backend: &'static str,
    pub mode: &'static str,
    pub flows: u64,
    pub workers: usize,
    /// The worker's measured time.
    pub seconds: f64,
    /// Packets the worker received (both directions for NAT and FULLNAT).
    pub packets: u64,
    /// Packets the worker transmitted.
    pub forwarded: u64,
    pub mpps: f64,
    pub ns_per_packet: f64,
    /// Packets the worker dropped while measured, by reason.
    pub drops: u64,
    pub drops_by_reason: BTreeMap<&'static str, u64>,
    /// The share of the measured time the worker spent in polls that found
    /// packets (timed with the TSC around every poll). Well below 1, the
    /// generator could not keep the worker busy. Near 1 with full bursts
    /// (`packets_per_busy_poll` near 32 per port with traffic), the worker
    /// was the bottleneck and `mpps` is its rate; a slow generator can
    /// also keep it "busy" with small bursts, which cost more per packet.
    pub worker_busy_share: f64,
    /// Packets per poll that found any (the RX bursts of all ports of one
    /// poll together: at most 32 for DR and TUN, 64 for NAT and FULLNAT).
    pub packets_per_busy_poll: f64,
    /// The worker's time per packet while busy: `ns_per_packet` times
    /// `worker_busy_share`, what a generator that never kept it waiting
    /// would see.
    pub busy_ns_per_packet: f64,
    /// Polls that found no packet, out of all the worker's polls (empty
    /// polls are cheap, so this is high as soon as the worker waits at all).
    pub idle_poll_share: f64,
    /// "bulk" (the generator of this module) or "ring-handle".
    pub generator: &'static str,
    /// mbufs not back in their pools once the rig was drained (must be 0).
    pub leaked_mbufs: u64,
    /// Time to build the rig, the traffic and the flows.
    pub setup_seconds: f64,
    /// The rig's own ceiling: the same generator and traffic with a plain
    /// io forwarder (rx burst on one port, tx burst on the other, packets
    /// untouched) on the worker's lcore instead of the worker; Mpps
    /// received. Measured with `testpmd`.
    pub rig_io_mpps: Option<f64>,
    /// `mpps / rig_io_mpps`.
    pub ratio_vs_rig_io: Option<f64>,
    /// testpmd io forwarding, packets per second over both ports, in
    /// millions: the median of `testpmd_samples`.
    pub testpmd_mpps: Option<f64>,
    /// testpmd's figure for each full second it ran.
    pub testpmd_samples: Vec<f64>,
    /// `mpps / testpmd_mpps`.
    pub ratio_vs_testpmd: Option<f64>,
    pub testpmd_cmd: Option<String>,
}

impl DpdkBenchReport {
    /// The one-line summary `ferrovs-perf --backend dpdk` prints.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "backend dpdk (net_ring, {} generator) mode {} flows {} workers 1: {:.2} Mpps ({:.1} ns/packet), worker busy {:.1} % ({:.1} ns/packet busy, {:.1} packets per busy poll), forwarded {}, drops {}",
            self.generator,
            self.mode,
            self.flows,
            self.mpps,
            self.ns_per_packet,
            self.worker_busy_share * 100.0,
            self.busy_ns_per_packet,
            self.packets_per_busy_poll,
            self.forwarded,
            self.drops,
        );
        if let (Some(t), Some(r)) = (self.rig_io_mpps, self.ratio_vs_rig_io) {
            s += &format!("; io forwarding on this rig {t:.2} Mpps, ratio {r:.3}");
        }
        if let (Some(t), Some(r)) = (self.testpmd_mpps, self.ratio_vs_testpmd) {
            s += &format!("; testpmd io {t:.1} Mpps, ratio {r:.4}");
        }
        s
    }
}

/// Runs the worker over ring devices for `a.seconds`, then, if asked,
/// testpmd for as long.
pub fn run(a: &DpdkBenchArgs) -> Result<DpdkBenchReport, String> {
    let fwd = match a.mode {
        "dr" => FwdMethod::Dr,
        "nat" => FwdMethod::Nat,
        "fullnat" => FwdMethod::FullNat,
        "tun" => FwdMethod::Tun,
        m => return Err(format!("unknown mode {m:?} (dr, nat, fullnat, tun)")),
    };
    if !(a.seconds > 0.0 && a.seconds < 86_400.0) {
        return Err(format!("seconds must be positive, not {}", a.seconds));
    }
    if a.flows == 0 {
        return Err("needs at least one flow".into());
    }
    let generator = match std::env::var("FERROVS_DPDK_GENERATOR").as_deref() {
        Err(_) | Ok("") | Ok("bulk") => Generator::Bulk,
        Ok("ring-handle") => Generator::RingHandle,
        Ok(g) => {
            return Err(format!(
                "FERROVS_DPDK_GENERATOR={g:?}: expected bulk or ring-handle"
            ))
        }
    };
    let _one = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
    let (eal, cpus) = eal()?;
    let (mut report, traces) = bench(&eal, cpus, a, fwd, generator)?;
    if a.testpmd {
        let io = rig_io(&eal, cpus, &traces, a.seconds, generator)?;
        drop(traces);
        report.rig_io_mpps = Some(io);
        report.ratio_vs_rig_io = Some(report.mpps / io);
        let t = run_testpmd("io", a.seconds)?;
        report.ratio_vs_testpmd = Some(report.mpps / t.mpps);
        report.testpmd_mpps = Some(t.mpps);
        report.testpmd_samples = t.samples;
        report.testpmd_cmd = Some(t.cmd);
    }
    Ok(report)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Generator {
    Bulk,
    RingHandle,
}

/// The CPUs of the generator (and EAL main lcore) and of the worker; for
/// testpmd, of its main lcore and of its forwarding lcore.
#[derive(Clone, Copy, Debug)]
struct Cpus {
    gen: usize,
    worker: usize,
}

/// The first two CPUs the process may use (one twice on a 1-CPU machine):
/// the worker (and testpmd's forwarding lcore) on the first, where the
/// memory benchmark pins its first worker too, the generator on the second.
/// Chosen once: the EAL pins the thread that starts it, after which that
/// thread's affinity names one CPU only.
fn cpus() -> Cpus {
    static CPUS: OnceLock<Cpus> = OnceLock::new();
    *CPUS.get_or_init(|| {
        let ids: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect();
        let worker = ids.first().copied().unwrap_or(0);
        Cpus {
            gen: ids.get(1).copied().unwrap_or(worker),
            worker,
        }
    })
}

/// The EAL lcore the worker runs on.
const WORKER_LCORE: u32 = 1;
/// Entries per RX ring (usable: one less), a NIC queue's usual descriptors.
const RX_RING: u32 = 1024;
/// Entries per TX ring: room for a full RX ring and the bursts in flight
/// on top of what is waiting, so that the worker never finds its TX ring
/// full when the generator thread is descheduled for a while (a wire would
/// keep draining).
const TX_RING: u32 = 4 * RX_RING;
/// mbufs in the generator's pool: every ring full, plus bursts and caches.
const GEN_POOL: u32 = 2 * (RX_RING + TX_RING) + 8 * 1024 - 1;
/// mbufs the generator takes off a TX ring at a time.
const DRAIN: usize = 2 * BURST;

static EAL: OnceLock<Result<(Arc<Eal>, Cpus), String>> = OnceLock::new();
/// Held by a run: there is one worker lcore.
static RUNNING: Mutex<()> = Mutex::new(());

/// The process's EAL, started on first use and kept to the end (it cannot
/// start twice).
fn eal() -> Result<(Arc<Eal>, Cpus), String> {
    EAL.get_or_init(|| {
        let Cpus { gen, worker } = cpus();
        let args: Vec<String> = [
            "--no-huge",
            "-m",
            "1024",
            "--no-pci",
            "--no-shconf",
            &format!("--file-prefix=fvs-perf-{}", std::process::id()),
            &format!("--lcores=0@{gen},{WORKER_LCORE}@{worker}"),
            "--log-level=warning",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let eal = Eal::init(&args).map_err(|e| format!("EAL ({}): {e}", args.join(" ")))?;
        if !eal.worker_lcores().contains(&WORKER_LCORE) {
            return Err(format!(
                "EAL lcore {WORKER_LCORE} missing (worker lcores {:?})",
                eal.worker_lcores()
            ));
        }
        Ok((eal, Cpus { gen, worker }))
    })
    .clone()
}

/// A ring pointer shared by the generator and one ethdev queue: SP/SC
/// rings, each side used by one thread at a time (the warm-up on the
/// calling thread, then the generator; the PMD on the worker's lcore).
#[derive(Clone, Copy)]
struct Ring(NonNull<ffi::rte_ring>);
// SAFETY: see above; rte_ring is made to be shared between threads, one
// producer and one consumer at a time for SP/SC rings.
unsafe impl Send for Ring {}
// SAFETY: as for Send.
unsafe impl Sync for Ring {}

/// The generator's mbuf pool.
struct Pool(NonNull<ffi::rte_mempool>);
// SAFETY: mempools are thread-safe (MP/MC).
unsafe impl Send for Pool {}
// SAFETY: as for Send.
unsafe impl Sync for Pool {}

impl Pool {
    fn in_use(&self) -> u32 {
        // SAFETY: a valid pool; only reads its counts.
        unsafe { ffi::rte_mempool_in_use_count(self.0.as_ptr()) }
    }
}

/// One ring device as the generator sees it.
enum Side {
    /// Our rings under an ethdev opened with `Device::open`.
    Own { rx: Ring, tx: Ring, vdev: CString },
    /// `Device::from_rings`.
    Handle(RingHandle),
}

/// Makes ring and device names unique in the process.
static SEQ: AtomicU32 = AtomicU32::new(0);

fn dpdk_err(what: &str) -> String {
    let e = ffi::rte_errno();
    format!("{what}: {} (errno {e})", ffi::strerror(e))
}

/// The two devices, the generator's pool and the rings. Dropped only
/// after every `DpdkPort` of the devices (the worker) is gone.
struct Rig {
    devs: Vec<Arc<Device>>,
    sides: Vec<Side>,
    pool: Option<Pool>,
    /// Rings created so far (freed on drop, after the devices).
    rings: Vec<Ring>,
}

impl Rig {
    fn new(eal: &Arc<Eal>, generator: Generator) -> Result<(Rig, Vec<DpdkPort>), String> {
        let mut rig = Rig {
            devs: vec![],
            sides: vec![],
            pool: None,
            rings: vec![],
        };
        let cfg = DeviceConfig {
            queues: 1,
            rx_desc: RX_RING as u16,
            tx_desc: TX_RING as u16,
            mbufs: 0,
            promiscuous: false,
        };
        let mut ports = vec![];
        match generator {
            Generator::Bulk => {
                let name =
                    CString::new(format!("fvspb_gen{}", SEQ.fetch_add(1, Ordering::Relaxed)))
                        .unwrap();
                // SAFETY: a valid name; sizes in range (cache 256 <= the
                // maximum, 1.5 x 256 < the pool).
                let mp = unsafe {
                    ffi::rte_pktmbuf_pool_create(
                        name.as_ptr(),
                        GEN_POOL,
                        256,
                        0,
                        ffi::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
                        ffi::SOCKET_ID_ANY,
                    )
                };
                rig.pool = Some(Pool(
                    NonNull::new(mp).ok_or_else(|| dpdk_err("rte_pktmbuf_pool_create"))?,
                ));
                for _ in 0..2 {
                    let n = SEQ.fetch_add(1, Ordering::Relaxed);
                    let mut mk = |dir: &str, size: u32| -> Result<Ring, String> {
                        let rname = CString::new(format!("fvspb{n}{dir}")).unwrap();
                        let flags = ffi::RING_F_SP_ENQ | ffi::RING_F_SC_DEQ;
                        // SAFETY: a valid name, a power-of-two size.
                        let r = unsafe {
                            ffi::rte_ring_create(rname.as_ptr(), size, ffi::SOCKET_ID_ANY, flags)
                        };
                        let r = Ring(NonNull::new(r).ok_or_else(|| dpdk_err("rte_ring_create"))?);
                        rig.rings.push(r);
                        Ok(r)
                    };
                    let (rx, tx) = (mk("rx", RX_RING)?, mk("tx", TX_RING)?);
                    let dname = CString::new(format!("fvspb{n}")).unwrap();
                    // SAFETY: one valid ring each way, alive until the rig
                    // drops (after the device); a valid name.
                    let port = unsafe {
                        ffi::rte_eth_from_rings(
                            dname.as_ptr(),
                            &rx.0.as_ptr(),
                            1,
                            &tx.0.as_ptr(),
                            1,
                            ffi::rte_socket_id(),
                        )
                    };
                    if port < 0 {
                        return Err(dpdk_err("rte_eth_from_rings"));
                    }
                    let vdev = CString::new(format!("net_ring_fvspb{n}")).unwrap();
                    let ethname = vdev.to_str().unwrap().to_owned();
                    rig.sides.push(Side::Own { rx, tx, vdev });
                    let (dev, mut p) = Device::open(eal, &ethname, &cfg)
                        .map_err(|e| format!("open {ethname}: {e}"))?;
                    rig.devs.push(dev);
                    ports.push(p.remove(0));
                }
            }
            Generator::RingHandle => {
                for side in ["client", "server"] {
                    let name = format!("fvspb_{side}{}", SEQ.fetch_add(1, Ordering::Relaxed));
                    let (dev, mut p, h) = Device::from_rings(eal, &name, &cfg)
                        .map_err(|e| format!("from_rings {name}: {e}"))?;
                    rig.devs.push(dev);
                    rig.sides.push(Side::Handle(h));
                    ports.push(p.remove(0));
                }
            }
        }
        Ok((rig, ports))
    }

    /// Puts a copy of `frame` on port `p`'s RX ring.
    fn inject(&self, p: usize, frame: &[u8]) -> bool {
        match &self.sides[p] {
            Side::Handle(h) => h.inject(0, frame),
            Side::Own { rx, .. } => {
                let mut m = [std::ptr::null_mut(); 1];
                let pool = self.pool.as_ref().expect("bulk rig has a pool");
                // SAFETY: `m` has room for one mbuf.
                if unsafe { ffi::rte_pktmbuf_alloc_bulk(pool.0.as_ptr(), m.as_mut_ptr(), 1) } != 0 {
                    return false;
                }
                // SAFETY: a fresh mbuf of ours; the frame fits its data room.
                unsafe { fill(m[0], frame) };
                // SAFETY: one valid object; this thread is the ring's only
                // producer now.
                let n = unsafe {
                    ffi::rte_ring_enqueue_burst(
                        rx.0.as_ptr(),
                        m.as_ptr().cast(),
                        1,
                        std::ptr::null_mut(),
                    )
                };
                if n == 0 {
                    // SAFETY: not enqueued, still ours.
                    unsafe { ffi::rte_pktmbuf_free_bulk(m.as_mut_ptr(), 1) };
                }
                n == 1
            }
        }
    }

    /// Takes what port `p` transmitted.
    fn take(&self, p: usize) -> Vec<Vec<u8>> {
        match &self.sides[p] {
            Side::Handle(h) => h.take(0),
            Side::Own { tx, .. } => {
                let mut out = vec![];
                let mut objs = [std::ptr::null_mut::<ffi::rte_mbuf>(); DRAIN];
                loop {
                    let n = drain(*tx, &mut objs, |m| {
                        // SAFETY: a single-segment mbuf the PMD put on the
                        // ring, ours until freed by `drain`.
                        out.push(unsafe {
                            std::slice::from_raw_parts(ffi::pktmbuf_mtod(m), (*m).data_len as usize)
                                .to_vec()
                        })
                    });
                    if n == 0 {
                        return out;
                    }
                }
            }
        }
    }

    /// Frees everything left on the rings and counts the mbufs not back in
    /// their pools. Call once no DpdkPort is left.
    fn drain_and_count(&self) -> u64 {
        let mut objs = [std::ptr::null_mut::<ffi::rte_mbuf>(); DRAIN];
        for s in &self.sides {
            match s {
                Side::Own { rx, tx, .. } => {
                    while drain(*rx, &mut objs, |_| ()) > 0 {}
                    while drain(*tx, &mut objs, |_| ()) > 0 {}
                }
                Side::Handle(h) => {
                    h.take(0);
                }
            }
        }
        let devs: u64 = self
            .devs
            .iter()
            .map(|d| u64::from(d.mempool_usage().0))
            .sum();
        devs + self.pool.as_ref().map_or(0, |p| u64::from(p.in_use()))
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        // Handles and devices first: a device closes its port when its
        // last handle goes.
        let mut vdevs = vec![];
        for s in self.sides.drain(..) {
            if let Side::Own { vdev, .. } = s {
                vdevs.push(vdev);
            }
        }
        let shared = self.devs.iter().any(|d| Arc::strong_count(d) > 1);
        self.devs.clear();
        if shared {
            // A port of ours is still alive somewhere: its rings and the
            // pool must stay.
            return;
        }
        for v in vdevs {
            // SAFETY: the ethdev over it is closed; removing the vdev only
            // unregisters it.
            unsafe { ffi::rte_vdev_uninit(v.as_ptr()) };
        }
        let mut objs = [std::ptr::null_mut::<ffi::rte_mbuf>(); DRAIN];
        for r in self.rings.drain(..) {
            while drain(r, &mut objs, |_| ()) > 0 {}
            // SAFETY: empty, and no ethdev uses it any more.
            unsafe { ffi::rte_ring_free(r.0.as_ptr()) };
        }
        if let Some(p) = self.pool.take() {
            if p.in_use() == 0 {
                // SAFETY: no mbuf of the pool is in use or on a ring.
                unsafe { ffi::rte_mempool_free(p.0.as_ptr()) };
            }
        }
    }
}

/// Copies `frame` into a fresh mbuf.
///
/// # Safety
///
/// `m` is a freshly allocated (reset) mbuf owned by the caller, with room
/// for the frame.
#[inline(always)]
unsafe fn fill(m: *mut ffi::rte_mbuf, frame: &[u8]) {
    // SAFETY: per the contract.
    unsafe {
        std::ptr::copy_nonoverlapping(frame.as_ptr(), ffi::pktmbuf_mtod(m), frame.len());
        (*m).data_len = frame.len() as u16;
        (*m).pkt_len = frame.len() as u32;
    }
}

/// Dequeues up to `objs.len()` mbufs from `r`, shows each to `f`, frees
/// them; returns how many.
#[inline]
fn drain(r: Ring, objs: &mut [*mut ffi::rte_mbuf], mut f: impl FnMut(*mut ffi::rte_mbuf)) -> usize {
    // SAFETY: `objs` has room for its length; the caller is the ring's only
    // consumer.
    let n = unsafe {
        ffi::rte_ring_dequeue_burst(
            r.0.as_ptr(),
            objs.as_mut_ptr().cast::<*mut c_void>(),
            objs.len() as u32,
            std::ptr::null_mut(),
        )
    } as usize;
    for &m in &objs[..n] {
        f(m);
    }
    if n > 0 {
        // SAFETY: the ring held only mbufs, now ours, freed once.
        unsafe { ffi::rte_pktmbuf_free_bulk(objs.as_mut_ptr(), n as u32) };
    }
    n
}

/// A cheap clock for timing single polls: the TSC (constant and
/// non-stop on the machines we measure on), else nanoseconds since the
/// first call.
#[inline(always)]
fn cycles() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC has no preconditions (SSE2-era x86_64 baseline).
        #[allow(unused_unsafe)]
        unsafe {
            std::arch::x86_64::_rdtsc()
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        static T0: OnceLock<Instant> = OnceLock::new();
        T0.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
}

/// Milliseconds on the worker's clock.
fn now(epoch: &Instant) -> u64 {
    epoch.elapsed().as_millis() as u64 + 1_000_000
}

/// Fisher-Yates with splitmix64.
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        v.swap(i, (z % (i as u64 + 1)) as usize);
    }
}

/// Polls until `want` frames left through port `out`, or gives up.
fn forward(
    worker: &mut Worker<DpdkPort>,
    rig: &Rig,
    epoch: &Instant,
    out: usize,
    want: usize,
) -> Vec<Vec<u8>> {
    let mut got = vec![];
    for _ in 0..8 {
        worker.poll(now(epoch));
        got.extend(rig.take(out));
        if got.len() >= want {
            break;
        }
    }
    got
}

/// Where the warm-up saw a flow go.
#[derive(Clone, Copy)]
struct Learned {
    rs: u8,
    laddr: [u8; 4],
    lport: u16,
}

/// Teaches the worker its neighbours, establishes the flows (one SYN each,
/// in random order) and builds the traffic: ACKs of every flow in that
/// order on port 0, and for NAT and FULLNAT the servers' replies on port 1.
fn warm_up(
    worker: &mut Worker<DpdkPort>,
    rig: &Rig,
    epoch: &Instant,
    fwd: FwdMethod,
    flows: u64,
) -> Result<[Trace; 2], String> {
    for (port, f) in lab::neighbour_frames() {
        if !rig.inject(port, &f) {
            return Err("warm-up: could not inject an ARP reply".into());
        }
        worker.poll(now(epoch));
        for p in 0..2 {
            rig.take(p);
        }
    }
    let mut order: Vec<u64> = (0..flows).collect();
    shuffle(&mut order, 0x9e37_79b9_7f4a_7c15);
    let replies = matches!(fwd, FwdMethod::Nat | FwdMethod::FullNat);
    let mut inbound = Trace::with_capacity(order.len());
    let mut back = Trace::with_capacity(if replies { order.len() } else { 0 });
    let mut b = vec![0u8; traffic::STRIDE];
    for chunk in order.chunks(BURST) {
        for &i in chunk {
            traffic::inbound(&mut b, traffic::flow(i), TCP_SYN);
            if !rig.inject(0, &b[..FRAME_LEN]) {
                return Err("warm-up: could not inject a SYN".into());
            }
        }
        let sent: Vec<_> = forward(worker, rig, epoch, 1, chunk.len())
            .into_iter()
            .filter(|f| f.len() >= 36 && f[12..14] == [0x08, 0x00])
            .collect();
        if sent.len() != chunk.len() {
            return Err(format!(
                "warm-up: {} SYNs sent, {} forwarded",
                chunk.len(),
                sent.len()
            ));
        }
        for (&i, f) in chunk.iter().zip(&sent) {
            let flow = traffic::flow(i);
            inbound.push(0, |b| traffic::inbound(b, flow, TCP_ACK));
            if replies {
                let l = Learned {
                    rs: f[5].wrapping_sub(lab::RS_MAC[5]),
                    laddr: f[26..30].try_into().unwrap(),
                    lport: u16::from_be_bytes([f[34], f[35]]),
                };
                let (a, p) = reply_to(fwd, flow, &l);
                back.push(1, |b| traffic::reply(b, l.rs as usize, a, p, TCP_ACK));
            }
        }
    }
    Ok([inbound, back])
}

/// Where a server's reply goes: the client (NAT) or the local address the
/// director chose (FULLNAT).
fn reply_to(fwd: FwdMethod, f: Flow, l: &Learned) -> ([u8; 4], u16) {
    if fwd == FwdMethod::FullNat {
        (l.laddr, l.lport)
    } else {
        (f.caddr, f.cport)
    }
}

/// What the worker's lcore reports.
struct WorkerResult {
    elapsed: Duration,
    /// The share of `elapsed` spent in polls that found packets.
    busy_share: f64,
    rx: u64,
    tx: u64,
    busy: u64,
    idle: u64,
    drops: Vec<u64>,
}

/// Flags shared by the calling thread, the generator and the worker.
#[derive(Default)]
struct Flags {
    /// The generator has filled the RX rings.
    primed: AtomicBool,
    /// Start measuring.
    go: AtomicBool,
    stop_worker: AtomicBool,
    /// The worker has read its counters: the measurement is over.
    measured: AtomicBool,
    stop_generator: AtomicBool,
    /// The generator has returned: nothing more comes in.
    generator_done: AtomicBool,
}

/// The worker's run: builds the rig and the director, establishes the
/// flows, measures. Returns the traffic too, for the rig's io run.
fn bench(
    eal: &Arc<Eal>,
    cpus: Cpus,
    a: &DpdkBenchArgs,
    fwd: FwdMethod,
    generator: Generator,
) -> Result<(DpdkBenchReport, [Trace; 2]), String> {
    let setup = Instant::now();
    register_thread().map_err(|e| format!("register_thread: {e}"))?;
    let (rig, ports) = Rig::new(eal, generator)?;
    let snap = lab::snapshot(fwd, 1, Timeouts::default(), false, lab::laddrs_for(a.flows));
    let shared: Arc<Shared<DpdkPacket>> = Shared::new(snap);
    let epoch = Instant::now();
    let capacity = ((a.flows as usize) * 9 / 8).max(1024);
    let mut worker = Worker::new(0, shared.clone(), ports, capacity, now(&epoch));
    let traces = match warm_up(&mut worker, &rig, &epoch, fwd, a.flows) {
        Ok(t) => t,
        Err(e) => {
            drop(worker);
            return Err(e);
        }
    };
    for p in 0..2 {
        rig.take(p);
    }
    let setup_seconds = setup.elapsed().as_secs_f64();

    let job = move |flags: Arc<Flags>| {
        let r = worker_loop(&mut worker, &shared, &flags, &epoch);
        drop(worker);
        r
    };
    let w = drive(eal, cpus, &rig, &traces, a.seconds, job);
    let leaked_mbufs = rig.drain_and_count();
    drop(rig);
    let w = w?;

    let secs = w.elapsed.as_secs_f64().max(1e-9);
    let mpps = w.rx as f64 / secs / 1e6;
    let mut drops_by_reason = BTreeMap::new();
    for r in DropReason::ALL {
        let n = w.drops[*r as usize];
        if n > 0 && *r != DropReason::ToKernel {
            drops_by_reason.insert(r.name(), n);
        }
    }
    let report = DpdkBenchReport {
        backend: "dpdk",
        mode: a.mode,
        flows: a.flows,
        workers: 1,
        seconds: secs,
        packets: w.rx,
        forwarded: w.tx,
        mpps,
        ns_per_packet: if mpps > 0.0 { 1e3 / mpps } else { 0.0 },
        worker_busy_share: w.busy_share,
        packets_per_busy_poll: w.rx as f64 / w.busy.max(1) as f64,
        busy_ns_per_packet: if w.rx > 0 {
            secs * w.busy_share * 1e9 / w.rx as f64
        } else {
            0.0
        },
        drops: drops_by_reason.values().sum(),
        drops_by_reason,
        idle_poll_share: w.idle as f64 / (w.busy + w.idle).max(1) as f64,
        generator: match generator {
            Generator::Bulk => "bulk",
            Generator::RingHandle => "ring-handle",
        },
        leaked_mbufs,
        setup_seconds,
        rig_io_mpps: None,
        ratio_vs_rig_io: None,
        testpmd_mpps: None,
        testpmd_samples: vec![],
        ratio_vs_testpmd: None,
        testpmd_cmd: None,
    };
    Ok((report, traces))
}

/// The rig's own ceiling: a fresh rig, the same generator and traffic, and
/// on the worker's lcore a plain io forwarder (what arrives on one port
/// leaves by the other, untouched) instead of the worker. Mpps received.
fn rig_io(
    eal: &Arc<Eal>,
    cpus: Cpus,
    traces: &[Trace; 2],
    seconds: f64,
    generator: Generator,
) -> Result<f64, String> {
    let (rig, mut ports) = Rig::new(eal, generator)?;
    let job = move |flags: Arc<Flags>| {
        let r = io_loop(&mut ports, &flags);
        drop(ports);
        r
    };
    let w = drive(eal, cpus, &rig, traces, seconds, job);
    let leaked = rig.drain_and_count();
    drop(rig);
    let w = w?;
    if leaked != 0 {
        return Err(format!("io forwarding: {leaked} mbufs not returned"));
    }
    Ok(w.rx as f64 / w.elapsed.as_secs_f64().max(1e-9) / 1e6)
}

/// Runs `job` on the worker's lcore against the generator (on the other
/// CPU) for `seconds` once the RX rings are full. The job waits for
/// `go`, measures until `stop_worker`, sets `measured`, takes in what is
/// left until the generator is done, drops its ports and reports. Returns
/// with the lcore free again.
fn drive(
    eal: &Arc<Eal>,
    cpus: Cpus,
    rig: &Rig,
    traces: &[Trace; 2],
    seconds: f64,
    job: impl FnOnce(Arc<Flags>) -> WorkerResult + Send + 'static,
) -> Result<WorkerResult, String> {
    let flags = Arc::new(Flags::default());
    let (tx, rx) = mpsc::channel();
    let lcore_job = {
        let flags = flags.clone();
        move || {
            let _ = tx.send(job(flags));
        }
    };
    let result = std::thread::scope(|s| -> Result<WorkerResult, String> {
        let gen = s.spawn(|| {
            core_affinity::set_for_current(core_affinity::CoreId { id: cpus.gen });
            let r = register_thread()
                .map(|_| generate(rig, traces, &flags))
                .map_err(|e| format!("generator: register_thread: {e}"));
            flags.generator_done.store(true, Ordering::Release);
            r
        });
        let stop_all = |why: String| {
            flags.stop_worker.store(true, Ordering::Release);
            flags.stop_generator.store(true, Ordering::Release);
            why
        };
        if let Err(e) = eal.launch(WORKER_LCORE, Box::new(lcore_job)) {
            let e = stop_all(format!("launch the worker on lcore {WORKER_LCORE}: {e}"));
            let _ = gen.join();
            return Err(e);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !flags.primed.load(Ordering::Acquire) {
            if gen.is_finished() || Instant::now() > deadline {
                let e = stop_all("the generator did not fill the rings".into());
                let _ = rx.recv_timeout(Duration::from_secs(10));
                let g = gen.join();
                return Err(match g {
                    Ok(Err(ge)) => ge,
                    _ => e,
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        flags.go.store(true, Ordering::Release);
        std::thread::sleep(Duration::from_secs_f64(seconds));
        flags.stop_worker.store(true, Ordering::Release);
        let until = Instant::now() + Duration::from_secs(10);
        while !flags.measured.load(Ordering::Acquire) && Instant::now() < until {
            std::thread::sleep(Duration::from_micros(100));
        }
        flags.stop_generator.store(true, Ordering::Release);
        let w = rx.recv_timeout(Duration::from_secs(30));
        gen.join()
            .map_err(|_| "the generator panicked".to_string())??;
        w.map_err(|_| "the worker did not report (it failed)".to_string())
    });
    // The lcore is free again, and the job's ports dropped.
    eal.wait_all();
    result
}

/// Waits for `go` (or an early stop).
fn wait_for_go(flags: &Flags) {
    while !flags.go.load(Ordering::Acquire) {
        if flags.stop_worker.load(Ordering::Acquire) {
            break;
        }
        std::hint::spin_loop();
    }
}

/// Polls with `poll` after the measurement until the generator is done
/// and nothing has come for a while, so that every mbuf is back in its
/// pool at the end.
fn take_in_the_rest(flags: &Flags, mut poll: impl FnMut() -> usize) {
    let until = Instant::now() + Duration::from_secs(5);
    let mut quiet = 0;
    while quiet < 16 && Instant::now() < until {
        if poll() > 0 || !flags.generator_done.load(Ordering::Acquire) {
            quiet = 0;
        } else {
            quiet += 1;
        }
    }
}

/// The io forwarder of `rig_io`: port 0 to port 1 and back, one burst at
/// a time, packets untouched.
fn io_loop(ports: &mut [DpdkPort], flags: &Flags) -> WorkerResult {
    let mut buf: Vec<DpdkPacket> = Vec::with_capacity(BURST);
    let mut fwd = |ports: &mut [DpdkPort], tx: &mut u64, dropped: &mut u64| {
        let mut n = 0;
        for p in 0..2 {
            let got = ports[p].rx_burst(&mut buf);
            if got > 0 {
                ports[1 - p].tx_burst(&mut buf);
                *tx += (got - buf.len()) as u64;
                *dropped += buf.len() as u64;
                buf.clear(); // frees what did not fit
                n += got;
            }
        }
        n
    };
    wait_for_go(flags);
    let (mut rx, mut tx, mut dropped, mut busy_cycles) = (0u64, 0u64, 0u64, 0u64);
    let (mut busy, mut idle) = (0u64, 0u64);
    let t0 = Instant::now();
    let c0 = cycles();
    while !flags.stop_worker.load(Ordering::Relaxed) {
        for _ in 0..64 {
            let c = cycles();
            let n = fwd(ports, &mut tx, &mut dropped);
            if n > 0 {
                busy_cycles += cycles().wrapping_sub(c);
                rx += n as u64;
                busy += 1;
            } else {
                idle += 1;
            }
        }
    }
    let elapsed = t0.elapsed();
    let all_cycles = cycles().wrapping_sub(c0).max(1);
    flags.measured.store(true, Ordering::Release);
    let (mut t, mut d) = (0, 0);
    take_in_the_rest(flags, || fwd(ports, &mut t, &mut d));
    let mut drops = vec![0; DropReason::ALL.len()];
    drops[DropReason::TxFull as usize] = dropped;
    WorkerResult {
        elapsed,
        busy_share: (busy_cycles as f64 / all_cycles as f64).min(1.0),
        rx,
        tx,
        busy,
        idle,
        drops,
    }
}

/// The worker's measured loop, as the memory benchmark runs it.
fn worker_loop(
    worker: &mut Worker<DpdkPort>,
    shared: &Shared<DpdkPacket>,
    flags: &Flags,
    epoch: &Instant,
) -> WorkerResult {
    wait_for_go(flags);
    let ctr = shared.counters.cell(0);
    let snap = |c: &ferrovs_dataplane::counters::WorkerCounters| {
        (
            c.rx_packets.get(),
            c.tx_packets.get(),
            c.busy_polls.get(),
            c.idle_polls.get(),
            c.drops.iter().map(|d| d.get()).collect::<Vec<_>>(),
        )
    };
    let before = snap(ctr);
    let t0 = Instant::now();
    let c0 = cycles();
    let mut ms = now(epoch);
    let mut i = 0u32;
    // Cycles spent in polls that found packets.
    let mut busy_cycles = 0u64;
    while !flags.stop_worker.load(Ordering::Relaxed) {
        for _ in 0..64 {
            let c = cycles();
            if worker.poll(ms) > 0 {
                busy_cycles += cycles().wrapping_sub(c);
            }
        }
        i = i.wrapping_add(1);
        if i.is_multiple_of(16) {
            ms = now(epoch);
        }
    }
    let elapsed = t0.elapsed();
    let all_cycles = cycles().wrapping_sub(c0).max(1);
    let after = snap(ctr);
    flags.measured.store(true, Ordering::Release);
    // Take in what the generator left on the RX rings (it stops after the
    // worker).
    take_in_the_rest(flags, || worker.poll(now(epoch)));
    WorkerResult {
        elapsed,
        busy_share: (busy_cycles as f64 / all_cycles as f64).min(1.0),
        rx: after.0 - before.0,
        tx: after.1 - before.1,
        busy: after.2 - before.2,
        idle: after.3 - before.3,
        drops: after.4.iter().zip(&before.4).map(|(a, b)| a - b).collect(),
    }
}

/// One port's traffic: the trace, where it is, and a burst allocated but
/// not yet taken by the ring.
struct Feed<'a> {
    port: usize,
    trace: &'a Trace,
    next: usize,
    burst: [*mut ffi::rte_mbuf; BURST],
    at: usize,
    len: usize,
}

impl Feed<'_> {
    /// Enqueues what is left of the burst, allocating and filling a new one
    /// first if none is left; returns how many went in.
    #[inline]
    fn push(&mut self, ring: Ring, pool: &Pool) -> usize {
        if self.at == self.len {
            // SAFETY: `burst` has room for BURST mbufs.
            let r = unsafe {
                ffi::rte_pktmbuf_alloc_bulk(pool.0.as_ptr(), self.burst.as_mut_ptr(), BURST as u32)
            };
            if r != 0 {
                return 0; // pool empty for now: the worker holds them
            }
            for &m in &self.burst {
                // SAFETY: fresh mbufs, 60-byte frames.
                unsafe { fill(m, self.trace.frame(self.next)) };
                self.next += 1;
                if self.next == self.trace.frames {
                    self.next = 0;
                }
            }
            (self.at, self.len) = (0, BURST);
        }
        // SAFETY: burst[at..len] are mbufs of ours; the generator is the
        // ring's only producer.
        let n = unsafe {
            ffi::rte_ring_enqueue_burst(
                ring.0.as_ptr(),
                self.burst.as_ptr().add(self.at).cast(),
                (self.len - self.at) as u32,
                std::ptr::null_mut(),
            )
        } as usize;
        self.at += n;
        n
    }
}

impl Drop for Feed<'_> {
    fn drop(&mut self) {
        if self.at < self.len {
            // SAFETY: the mbufs the ring did not take are still ours.
            unsafe {
                ffi::rte_pktmbuf_free_bulk(
                    self.burst.as_mut_ptr().add(self.at),
                    (self.len - self.at) as u32,
                )
            };
        }
    }
}

/// The generator: fills the RX rings, says so, and keeps them full while
/// emptying the TX rings, until told to stop.
fn generate(rig: &Rig, traces: &[Trace; 2], flags: &Flags) {
    let mut feeds: Vec<Feed> = traces
        .iter()
        .enumerate()
        .filter(|(_, t)| t.frames > 0)
        .map(|(port, trace)| Feed {
            port,
            trace,
            next: 0,
            burst: [std::ptr::null_mut(); BURST],
            at: 0,
            len: 0,
        })
        .collect();
    let mut objs = [std::ptr::null_mut::<ffi::rte_mbuf>(); DRAIN];
    let mut primed = false;
    let mut idle_rounds = 0u32;
    loop {
        let mut pushed = 0;
        for f in &mut feeds {
            let n = match (&rig.sides[f.port], &rig.pool) {
                (Side::Own { rx, .. }, Some(pool)) => f.push(*rx, pool),
                (Side::Handle(h), _) => {
                    let mut n = 0;
                    while n < BURST && h.inject(0, f.trace.frame(f.next)) {
                        f.next = (f.next + 1) % f.trace.frames;
                        n += 1;
                    }
                    n
                }
                (Side::Own { .. }, None) => unreachable!("bulk rig has a pool"),
            };
            pushed += n;
        }
        if primed {
            // Empty the TX rings every round, as a wire would keep up.
            for s in &rig.sides {
                match s {
                    Side::Own { tx, .. } => while drain(*tx, &mut objs, |_| ()) == DRAIN {},
                    Side::Handle(h) => {
                        h.take(0);
                    }
                }
            }
            if flags.stop_generator.load(Ordering::Relaxed) {
                break;
            }
        } else if pushed == 0 {
            // Full (or the pool is dry): let the worker go.
            idle_rounds += 1;
            if idle_rounds > 2 {
                primed = true;
                flags.primed.store(true, Ordering::Release);
                while !flags.go.load(Ordering::Acquire) {
                    if flags.stop_generator.load(Ordering::Acquire) {
                        return;
                    }
                    std::hint::spin_loop();
                }
            }
        }
    }
}

/// A testpmd measurement.
#[derive(Clone, Debug)]
pub struct TestpmdRun {
    /// The median second's packets forwarded per second (both ports), in
    /// millions.
    pub mpps: f64,
    /// Every full second's figure.
    pub samples: Vec<f64>,
    pub cmd: String,
}

/// Kills the child on every way out.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs testpmd in forwarding mode `fwd` ("io", "mac", ...) between two
/// loopback `net_ring` vdevs with one forwarding core until it has printed
/// `seconds` (rounded up) full seconds of throughput, then stops it with
/// SIGINT. Fails, without hanging, when testpmd cannot be run, exits early
/// or prints no throughput in time.
pub fn run_testpmd(fwd: &str, seconds: f64) -> Result<TestpmdRun, String> {
    let bin = std::env::var("FERROVS_TESTPMD").unwrap_or_else(|_| "dpdk-testpmd".into());
    // EAL start-up without hugepages takes a few seconds here.
    run_testpmd_with(&bin, fwd, seconds, Duration::from_secs(30))
}

/// `run_testpmd` with the program to run and how long it may take to print
/// its first figures.
fn run_testpmd_with(
    bin: &str,
    fwd: &str,
    seconds: f64,
    startup: Duration,
) -> Result<TestpmdRun, String> {
    let cpus = cpus();
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let args: Vec<String> = vec![
        "--no-huge".into(),
        "-m".into(),
        "1024".into(),
        "--no-pci".into(),
        "--no-shconf".into(),
        format!(
            "--file-prefix=fvs-tpmd-{}-{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        ),
        format!("--lcores=0@{},1@{}", cpus.gen, cpus.worker),
        "--vdev=net_ring0".into(),
        "--vdev=net_ring1".into(),
        "--log-level=warning".into(),
        "--".into(),
        format!("--forward-mode={fwd}"),
        "--nb-cores=1".into(),
        "--total-num-mbufs=8192".into(),
        "--tx-first".into(),
        "--auto-start".into(),
        "--stats-period=1".into(),
    ];
    let cmd = format!("{bin} {}", args.join(" "));
    let child = Command::new(bin)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {bin} (package dpdk-dev; or set FERROVS_TESTPMD): {e}"))?;
    let mut child = ChildGuard(child);
    let (tx, rx) = mpsc::channel::<String>();
    let out = child.0.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut err = child.0.stderr.take().expect("piped stderr");
    let errs = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });

    let want = (seconds.ceil() as usize).max(1);
    let deadline = Instant::now() + startup + Duration::from_secs_f64(seconds);
    let mut text = String::new();
    let mut exited_early = false;
    loop {
        if parse_testpmd_rates(&text).len() >= want {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match rx.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(l) => {
                text.push_str(&l);
                text.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                exited_early = true;
                break;
            }
        }
    }
    // SIGINT: testpmd stops forwarding, prints its totals and exits.
    let pid = child.0.id().to_string();
    let _ = Command::new("kill")
        .args(["-INT", &pid])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let stop_by = Instant::now() + Duration::from_secs(10);
    let status = loop {
        match child.0.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < stop_by => std::thread::sleep(Duration::from_millis(50)),
            _ => break None,
        }
    };
    drop(child); // kills it if SIGINT did not
    while let Ok(l) = rx.try_recv() {
        text.push_str(&l);
        text.push('\n');
    }
    let samples = parse_testpmd_rates(&text);
    if samples.is_empty() {
        let stderr = errs.join().unwrap_or_default();
        let tail: Vec<&str> = text.lines().chain(stderr.lines()).collect();
        let tail = tail[tail.len().saturating_sub(15)..].join("\n");
        return Err(format!(
            "{cmd}: no throughput figure{} (exit: {}); last output:\n{tail}",
            if exited_early {
                ", it exited early"
            } else {
                " in time"
            },
            status.map_or("killed".into(), |s| s.to_string()),
        ));
    }
    let mut sorted = samples.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(TestpmdRun {
        mpps: sorted[sorted.len() / 2],
        samples,
        cmd,
    })
}

/// testpmd's per-second throughput, from its `--stats-period` output: for
/// each "Port statistics" block after the first (which has no previous
/// show to compare with and says 0), the sum of the ports' `Rx-pps`, in
/// Mpps. Blocks with fewer ports than the others (cut short by the exit)
/// are left out.
pub fn parse_testpmd_rates(out: &str) -> Vec<f64> {
    let mut blocks: Vec<Vec<u64>> = vec![];
    for line in out.lines() {
        if line.contains("Port statistics") {
            blocks.push(vec![]);
        } else if let Some((_, rest)) = line.split_once("Rx-pps:") {
            let Some(block) = blocks.last_mut() else {
                continue;
            };
            if let Some(v) = rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
            {
                block.push(v);
            }
        }
    }
    let ports = blocks.iter().map(Vec::len).max().unwrap_or(0);
    if ports == 0 {
        return vec![];
    }
    blocks
        .iter()
        .skip(1)
        .filter(|b| b.len() == ports)
        .map(|b| b.iter().sum::<u64>() as f64 / 1e6)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from `dpdk-testpmd ... --forward-mode=io --stats-period=1`
    /// (DPDK 22.11, two net_ring vdevs), screen-clearing escapes included;
    /// the last block was cut short by SIGINT.
    const SAMPLE: &str = "\
Set io packet forwarding mode
Port 0: 00:00:00:00:00:00
Port 1: 00:00:00:00:00:00
\x1b[2J\x1b[1;1H
Port statistics ====================================
  ######################## NIC statistics for port 0  ########################
  RX-packets: 4288       RX-missed: 0          RX-bytes:  0
  Throughput (since last show)
  Rx-pps:            0          Rx-bps:            0
  Tx-pps:            0          Tx-bps:            0
  ######################## NIC statistics for port 1  ########################
  RX-packets: 7040       RX-missed: 0          RX-bytes:  0
  Throughput (since last show)
  Rx-pps:            0          Rx-bps:            0
  Tx-pps:            0          Tx-bps:            0
\x1b[2J\x1b[1;1H
Port statistics ====================================
  ######################## NIC statistics for port 0  ########################
  RX-packets: 423523200  RX-missed: 0          RX-bytes:  0
  Throughput (since last show)
  Rx-pps:    421872812          Rx-bps:            0
  Tx-pps:    421872844          Tx-bps:            0
  ######################## NIC statistics for port 1  ########################
  RX-packets: 423523200  RX-missed: 0          RX-bytes:  0
  Throughput (since last show)
  Rx-pps:    421869465          Rx-bps:            0
  Tx-pps:    421869465          Tx-bps:            0
\x1b[2J\x1b[1;1H
Port statistics ====================================
  ######################## NIC statistics for port 0  ########################
  RX-packets: 872999936  RX-missed: 0          RX-bytes:  0
  Throughput (since last show)
  Rx-pps:    447703942          Rx-bps:            0
  Tx-pps:    447703911          Tx-bps:            0
  ######################## NIC statistics for port 1  ########################
  RX-packets: 872999904  RX-missed: 0          RX-bytes:  0
  Throughput (since last show)
  Rx-pps:    447704250          Rx-bps:            0
  Tx-pps:    447704281          Tx-bps:            0
\x1b[2J\x1b[1;1H
Port statistics ====================================
  ######################## NIC statistics for port 0  ########################
  RX-packets: 1324715680 RX-missed: 0          RX-bytes:  0
  Throughput (since last show)
  Rx-pps:    451642564          Rx-bps:            0
Telling cores to stop...
  +++++++++++++++ Accumulated forward statistics for all ports+++++++++++++++
  RX-packets: 3554915456     RX-dropped: 0             RX-total: 3554915456
";

    #[test]
    fn testpmd_rates_are_per_second_sums_over_the_ports() {
        let r = parse_testpmd_rates(SAMPLE);
        assert_eq!(r.len(), 2, "{r:?}");
        assert!((r[0] - 843.742277).abs() < 1e-6, "{r:?}");
        assert!((r[1] - 895.408192).abs() < 1e-6, "{r:?}");
        assert!(parse_testpmd_rates("").is_empty());
        assert!(parse_testpmd_rates("EAL: Error - exiting with code: 1\n").is_empty());
        // Only the first block so far: nothing to compare with yet.
        let first = SAMPLE.split("\x1b[2J").take(2).collect::<Vec<_>>().join("");
        assert!(parse_testpmd_rates(&first).is_empty());
    }

    /// Held by the tests that write and run scripts: a script written while
    /// another test forks is briefly open in the child, and running it then
    /// fails with ETXTBSY.
    static SCRIPTS: Mutex<()> = Mutex::new(());

    /// This test process's scratch directory, removed when dropped.
    struct Scratch(std::path::PathBuf);

    impl Scratch {
        fn new() -> Scratch {
            let dir = std::env::temp_dir().join(format!("fvs-fake-tpmd-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A stand-in for testpmd: a shell script that ignores its arguments.
    fn fake_testpmd(dir: &Scratch, name: &str, body: &str) -> String {
        let dir = &dir.0;
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.to_str().unwrap().to_owned()
    }

    #[test]
    fn testpmd_runner_reads_live_output_and_stops_the_program() {
        let _g = SCRIPTS.lock().unwrap_or_else(PoisonError::into_inner);
        let dir = Scratch::new();
        let sample = dir.0.join("sample");
        std::fs::write(&sample, SAMPLE).unwrap();
        // Prints two full seconds, then would run on: stopped by SIGINT.
        let bin = fake_testpmd(
            &dir,
            "prints",
            &format!("cat {}; exec sleep 60", sample.display()),
        );
        let t0 = Instant::now();
        let r = run_testpmd_with(&bin, "io", 2.0, Duration::from_secs(20)).unwrap();
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
        assert_eq!(r.samples.len(), 2);
        assert!((r.mpps - 895.408192).abs() < 1e-6, "{r:?}");
        assert!(r.cmd.contains("--forward-mode=io") && r.cmd.contains("--nb-cores=1"));
    }

    #[test]
    fn testpmd_failures_are_errors_not_hangs() {
        let _g = SCRIPTS.lock().unwrap_or_else(PoisonError::into_inner);
        let dir = Scratch::new();
        let t0 = Instant::now();
        let e = run_testpmd_with(
            "/nonexistent/dpdk-testpmd",
            "io",
            1.0,
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(e.contains("cannot run"), "{e}");
        let bin = fake_testpmd(&dir, "fails", "echo 'EAL: Cannot init memory' >&2; exit 1");
        let e = run_testpmd_with(&bin, "io", 1.0, Duration::from_secs(20)).unwrap_err();
        assert!(
            e.contains("exited early") && e.contains("Cannot init memory"),
            "{e}"
        );
        // Silent and never done: given up after the start-up allowance.
        let bin = fake_testpmd(&dir, "silent", "exec sleep 60");
        let e = run_testpmd_with(&bin, "io", 0.5, Duration::from_secs(1)).unwrap_err();
        assert!(e.contains("in time"), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    }

    /// The EAL starts once per process and the rig has one worker lcore,
    /// so every EAL run is in this one test (`run` serialises anyway).
    #[test]
    fn worker_and_io_forwarder_over_net_ring_forward_without_leaking() {
        assert!(run(&DpdkBenchArgs {
            mode: "lvs",
            flows: 1,
            seconds: 1.0,
            testpmd: false
        })
        .is_err());
        for mode in ["dr", "nat"] {
            let r = run(&DpdkBenchArgs {
                mode,
                flows: 1000,
                seconds: 0.3,
                testpmd: false,
            })
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
            assert!(r.packets > 10_000, "{r:?}");
            assert!(r.forwarded > 0 && r.forwarded <= r.packets, "{r:?}");
            assert_eq!(r.drops, 0, "{r:?}");
            assert_eq!(r.leaked_mbufs, 0, "{r:?}");
            assert!(r.mpps > 0.0 && r.ns_per_packet > 0.0, "{r:?}");
            assert!(
                r.worker_busy_share > 0.0 && r.worker_busy_share <= 1.0,
                "{r:?}"
            );
            assert!(r.busy_ns_per_packet <= r.ns_per_packet, "{r:?}");
            assert!(r.packets_per_busy_poll >= 1.0, "{r:?}");
            assert!(r.packets_per_busy_poll <= if mode == "nat" { 64.0 } else { 32.0 });
            assert!(r.testpmd_mpps.is_none() && r.rig_io_mpps.is_none());
        }
        // NAT traffic runs both ways: the io forwarder sends each side's
        // frames out of the other, and every mbuf comes back.
        let _one = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
        let (eal, cpus) = eal().unwrap();
        let (_, traces) = bench(
            &eal,
            cpus,
            &DpdkBenchArgs {
                mode: "nat",
                flows: 100,
                seconds: 0.1,
                testpmd: false,
            },
            FwdMethod::Nat,
            Generator::Bulk,
        )
        .unwrap();
        assert!(traces[0].frames == 100 && traces[1].frames == 100);
        let io = rig_io(&eal, cpus, &traces, 0.3, Generator::Bulk).unwrap();
        assert!(io > 0.1, "{io} Mpps");
    }
}
