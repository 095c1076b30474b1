//! `ferrovs-perf --backend dpdk`: one real `Worker<DpdkPort>` forwarding
//! between DPDK ethdevs, measured against `dpdk-testpmd` io forwarding on
//! the same devices with the same traffic.
//!
//! # The rig
//!
//! - The EAL starts once per process (no hugepages, no PCI, a file prefix
//!   of its own) with two lcores: lcore 0 (the main lcore, where the
//!   generator runs) on the second CPU, lcore 1 (the worker's) on the first
//!   (both on the one CPU of a 1-CPU machine).
//! - Two sides, the client side (port 0) and the server side (port 1), one
//!   queue pair each, over one of two kinds of device ([`Wire`]):
//!   - **memif** (the default): a `net_memif` pair per side, the generator
//!     holding the server end and the worker the client end, both in this
//!     process. memif copies every frame into its shared memory on
//!     transmit and out of it into a fresh mbuf on receive, so both ends
//!     pay per packet roughly what a NIC's DMA and descriptor handling
//!     cost a PMD. testpmd, in its own process, can take the worker's
//!     place as the client ends, which makes its figure a ceiling measured
//!     on the same devices with the same generator.
//!   - **ring**: a `net_ring` device per side (`Device::from_rings`): the
//!     generator puts mbufs on its RX ring and takes them off its TX ring
//!     through the device's `RingHandle`. No copy, so the cheapest I/O
//!     there is; testpmd can only be measured on loopback rings then.
//! - The director is the memory benchmark's (`lab::snapshot`: VIP:80 over
//!   three real servers in the mode under test, neighbours taught by ARP
//!   replies), and the flows are established the same way: one SYN per
//!   flow through the worker before timing (learning, for NAT and FULLNAT,
//!   where each flow went so that the servers' replies can be built).
//! - The worker runs on EAL lcore 1. A generator thread on the other CPU
//!   (registered with the EAL for a mempool cache) stands for the wire: it
//!   allocates mbufs in bulk, copies the pre-built 60-byte frames (N flows
//!   in random flow order, both directions for NAT and FULLNAT) into them,
//!   sends them in bursts, and takes in and frees what the worker
//!   transmitted, counting it.
//!
//! # What is measured
//!
//! - `mpps`: packets the worker received per second of the worker's own
//!   wall time (`ns_per_packet` is its inverse for one core): rx/tx burst
//!   through the PMD plus all of the worker's processing.
//! - `returned_mpps`: packets that came back to the generator per second
//!   while the worker was measured, its forwarding rate as the wire sees
//!   it.
//!
//! The generator can limit the figures. `worker_busy_share` (the share of
//! the time the worker spent in polls that found packets, timed with the
//! TSC) and `packets_per_busy_poll` say whether it did: busy near 1 with
//! full bursts, `mpps` is the worker's rate; otherwise it is partly the
//! generator's. With `testpmd`, the run also measures two ceilings:
//!
//! - `rig_io_mpps`: the same rig, generator and traffic with a plain io
//!   forwarder (rx burst on one port, tx burst on the other) in place of
//!   the worker, on its lcore.
//! - `testpmd_mpps`: `dpdk-testpmd` (or `$FERROVS_TESTPMD`) io forwarding
//!   with one forwarding core on the worker's CPU, after the worker's run
//!   (never at the same time). On memif it is the client ends of a fresh
//!   rig, fed by the same generator with the same traffic, and its figure
//!   is what came back to the generator, so `ratio_vs_testpmd` compares
//!   `returned_mpps` with it: like with like. On ring it forwards between
//!   two loopback `net_ring` vdevs that circulate its first burst
//!   (`--tx-first`), and its figure is the median of its own per-second
//!   `Rx-pps` over both ports: the ceiling of moving mbuf pointers through
//!   the ring PMD on one core without ever reading a packet, hundreds of
//!   times any forwarder's rate.
#![cfg(feature = "dpdk")]

use crate::lab;
use crate::traffic::{self, Flow, Trace, FRAME_LEN};
use ferrovs_dataplane::conn::Timeouts;
use ferrovs_dataplane::counters::DropReason;
use ferrovs_dataplane::port::dpdk::{
    register_thread, remove_runtime_dir, tsc, Device, DeviceConfig, DpdkPacket, DpdkPort, Eal,
    RingHandle,
};
use ferrovs_dataplane::port::{Packet, Port, BURST};
use ferrovs_dataplane::service::FwdMethod;
use ferrovs_dataplane::wire::l4::{TCP_ACK, TCP_SYN};
use ferrovs_dataplane::worker::{Shared, Worker};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
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
    /// The devices between the generator and the forwarder.
    pub wire: Wire,
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
    /// The devices between the generator and the forwarder: "memif" or
    /// "ring".
    pub device: Wire,
    /// Packets per second that came back to the generator while the
    /// worker was measured, in millions: its forwarding rate as the wire
    /// sees it (what the memif ratio compares with testpmd's).
    pub returned_mpps: f64,
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
    /// testpmd io forwarding with one forwarding core, packets per second
    /// in millions. memif: in place of the worker, fed by the same
    /// generator with the same traffic, what came back to the generator.
    /// ring: between two loopback rings (`--tx-first`), the median second
    /// of testpmd's own figures over both ports.
    pub testpmd_mpps: Option<f64>,
    /// testpmd's own figure for each full second it forwarded.
    pub testpmd_samples: Vec<f64>,
    /// memif: `returned_mpps / testpmd_mpps`; ring: `mpps / testpmd_mpps`.
    pub ratio_vs_testpmd: Option<f64>,
    pub testpmd_cmd: Option<String>,
}

impl DpdkBenchReport {
    /// The one-line summary `ferrovs-perf --backend dpdk` prints.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "backend dpdk (net_{}) mode {} flows {} workers 1: {:.2} Mpps ({:.1} ns/packet, {:.2} Mpps back at the generator), worker busy {:.1} % ({:.1} ns/packet busy, {:.1} packets per busy poll), forwarded {}, drops {}",
            self.device.name(),
            self.mode,
            self.flows,
            self.mpps,
            self.ns_per_packet,
            self.returned_mpps,
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
            s += &format!("; testpmd io {t:.2} Mpps, ratio {r:.3}");
        }
        s
    }
}

/// Runs the worker for `a.seconds`, then, if asked, the rig's io
/// forwarder and testpmd for as long each.
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
    let _one = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
    let (eal, cpus) = eal()?;
    let (mut report, traces) = bench(&eal, cpus, a, fwd)?;
    if a.testpmd {
        let io = rig_io(&eal, cpus, &traces, a.seconds, a.wire)?;
        report.rig_io_mpps = Some(io);
        report.ratio_vs_rig_io = Some(report.mpps / io);
        let t = match a.wire {
            Wire::Memif => testpmd_over_memif(
                &eal,
                cpus,
                &traces,
                a.seconds,
                &testpmd_bin(),
                TESTPMD_STARTUP,
            )?,
            Wire::Ring => run_testpmd("io", a.seconds)?,
        };
        drop(traces);
        let ours = match a.wire {
            Wire::Memif => report.returned_mpps,
            Wire::Ring => report.mpps,
        };
        report.ratio_vs_testpmd = Some(ours / t.mpps);
        report.testpmd_mpps = Some(t.mpps);
        report.testpmd_samples = t.samples;
        report.testpmd_cmd = Some(t.cmd);
    }
    Ok(report)
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
static EAL: OnceLock<Result<(Arc<Eal>, Cpus), String>> = OnceLock::new();
/// Held by a run: there is one worker lcore.
static RUNNING: Mutex<()> = Mutex::new(());

/// The process's EAL, started on first use and kept to the end (it cannot
/// start twice).
fn eal() -> Result<(Arc<Eal>, Cpus), String> {
    EAL.get_or_init(|| {
        let Cpus { gen, worker } = cpus();
        let prefix = format!("fvs-perf-{}", std::process::id());
        let args: Vec<String> = [
            "--no-huge",
            "-m",
            "1024",
            "--no-pci",
            "--no-telemetry",
            // Not --no-shconf: memif registers a multi-process action.
            &format!("--file-prefix={prefix}"),
            &format!("--lcores=0@{gen},{WORKER_LCORE}@{worker}"),
            "--log-level=warning",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let eal = Eal::init(&args).map_err(|e| format!("EAL ({}): {e}", args.join(" ")));
        // Nothing attaches to this EAL as a secondary process: its runtime
        // files can go now (what is open stays usable) rather than be left
        // behind at exit.
        remove_runtime_dir(&prefix);
        let eal = eal?;
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

/// The devices the worker (or testpmd) and the generator talk through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Wire {
    /// A `net_memif` pair per side in this process: the generator holds the
    /// server end, the worker the client end (testpmd, in its own process,
    /// connects to the same server ends). Every packet is copied into the
    /// shared memory on transmit and out of it on receive, as a NIC's DMA
    /// would move it.
    Memif,
    /// A `net_ring` device per side: the generator puts mbufs on its RX
    /// rings and takes them off its TX rings; nothing is copied.
    Ring,
}

impl Wire {
    pub fn name(self) -> &'static str {
        match self {
            Wire::Memif => "memif",
            Wire::Ring => "ring",
        }
    }

    pub fn parse(s: &str) -> Result<Wire, String> {
        match s {
            "memif" => Ok(Wire::Memif),
            "ring" => Ok(Wire::Ring),
            _ => Err(format!("unknown device {s:?} (memif, ring)")),
        }
    }
}

/// The generator's end of one side.
enum Side {
    /// The test side of a `net_ring` device.
    Ring(RingHandle),
    /// The server end of a memif pair.
    Wire(DpdkPort),
}

impl Side {
    /// Appends `n` fresh mbufs to `out` (all or none).
    fn alloc(&mut self, n: usize, out: &mut Vec<DpdkPacket>) -> bool {
        match self {
            Side::Ring(h) => h.alloc_bulk(n, out),
            Side::Wire(p) => p.alloc_bulk(n, out),
        }
    }

    /// Sends what the far end has room for, removing it from `pkts`.
    fn send(&mut self, pkts: &mut Vec<DpdkPacket>) -> usize {
        match self {
            Side::Ring(h) => h.enqueue(0, pkts),
            Side::Wire(p) => {
                let before = pkts.len();
                p.tx_burst(pkts);
                before - pkts.len()
            }
        }
    }

    /// Appends up to a burst of what the far end transmitted to `out`.
    fn recv(&mut self, out: &mut Vec<DpdkPacket>) -> usize {
        match self {
            Side::Ring(h) => h.dequeue(0, out, BURST),
            Side::Wire(p) => p.rx_burst(out),
        }
    }
}

/// Makes device and socket names unique in the process.
static SEQ: AtomicU32 = AtomicU32::new(0);

/// The two sides' devices and the generator's ends. Dropped only after
/// every `DpdkPort` of the worker's ends is gone.
struct Rig {
    sides: Vec<Side>,
    devs: Vec<Arc<Device>>,
    wire: Wire,
    /// The memif control socket's name.
    socket: Option<String>,
}

/// log2 of the entries of each memif ring (both directions): 2048, twice a
/// NIC queue's usual descriptors, so that the forwarder's transmit ring
/// does not overflow while the generator thread is briefly descheduled
/// (a wire would keep draining).
const MEMIF_RSIZE: u32 = 11;

/// How long a memif pair may take to connect (the EAL's interrupt thread
/// does it, within milliseconds here).
const LINK_WAIT: Duration = Duration::from_secs(10);

impl Rig {
    /// The rig with the worker's ends (returned), or, with `worker_ends`
    /// false, only the generator's (memif: for testpmd to connect to).
    fn new(eal: &Arc<Eal>, wire: Wire, worker_ends: bool) -> Result<(Rig, Vec<DpdkPort>), String> {
        let mut rig = Rig {
            sides: vec![],
            devs: vec![],
            wire,
            socket: None,
        };
        let cfg = DeviceConfig {
            queues: 1,
            rx_desc: RX_RING as u16,
            tx_desc: TX_RING as u16,
            mbufs: 0,
            promiscuous: false,
        };
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let mut ports = vec![];
        match wire {
            Wire::Ring => {
                for side in 0..2 {
                    let name = format!("fvspb{n}s{side}");
                    let (dev, mut p, h) = Device::from_rings(eal, &name, &cfg)
                        .map_err(|e| format!("from_rings {name}: {e}"))?;
                    rig.devs.push(dev);
                    rig.sides.push(Side::Ring(h));
                    ports.push(p.remove(0));
                }
            }
            Wire::Memif => {
                let socket = memif_socket(n);
                rig.socket = Some(socket.clone());
                // Servers first: a client connects at start to a listener.
                for side in 0..2 {
                    let name =
                        format!("net_memiffvs{n}g{side},role=server,socket={socket},id={side},rsize={MEMIF_RSIZE}");
                    let (dev, mut p) =
                        Device::open(eal, &name, &cfg).map_err(|e| format!("open {name}: {e}"))?;
                    rig.devs.push(dev);
                    rig.sides.push(Side::Wire(p.remove(0)));
                }
                if worker_ends {
                    for side in 0..2 {
                        let name =
                            format!("net_memiffvs{n}w{side},role=client,socket={socket},id={side},rsize={MEMIF_RSIZE}");
                        let (dev, mut p) = Device::open(eal, &name, &cfg)
                            .map_err(|e| format!("open {name}: {e}"))?;
                        rig.devs.push(dev);
                        ports.push(p.remove(0));
                    }
                    rig.wait_for_links(LINK_WAIT, || Ok(()))?;
                    // A memif client hands the server its receive buffers
                    // in rx_burst: until it has polled once, the server
                    // cannot send it anything.
                    let mut none = Vec::new();
                    for p in &mut ports {
                        p.rx_burst(&mut none);
                    }
                }
            }
        }
        Ok((rig, ports))
    }

    /// Waits until every device's link is up (memif: connected), calling
    /// `alive` between looks (it fails when the peer is gone).
    fn wait_for_links(
        &self,
        within: Duration,
        mut alive: impl FnMut() -> Result<(), String>,
    ) -> Result<(), String> {
        let until = Instant::now() + within;
        loop {
            let down: Vec<&str> = self
                .devs
                .iter()
                .filter(|d| !d.link().up)
                .map(|d| d.name())
                .collect();
            if down.is_empty() {
                return Ok(());
            }
            alive()?;
            if Instant::now() > until {
                return Err(format!(
                    "{} link(s) still down after {within:?}: {}",
                    self.wire.name(),
                    down.join(", ")
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends a copy of `frame` into side `p`.
    fn inject(&mut self, p: usize, frame: &[u8]) -> bool {
        let mut one = Vec::with_capacity(1);
        let side = &mut self.sides[p];
        if !side.alloc(1, &mut one) || !one[0].copy_from(frame) {
            return false;
        }
        side.send(&mut one) == 1
    }

    /// Takes what side `p` received so far.
    fn take(&mut self, p: usize) -> Vec<Vec<u8>> {
        let mut out = vec![];
        let mut buf = Vec::with_capacity(BURST);
        while self.sides[p].recv(&mut buf) > 0 {
            out.extend(buf.iter().map(|f| f.data().to_vec()));
            DpdkPacket::free_bulk(&mut buf);
        }
        out
    }

    /// Frees everything still in flight towards the generator and counts
    /// the mbufs not back in their pools. Call once no port of the worker's
    /// ends is left.
    fn drain_and_count(&mut self) -> u64 {
        for p in 0..self.sides.len() {
            self.take(p);
        }
        self.devs
            .iter()
            .map(|d| u64::from(d.mempool_usage().0))
            .sum()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        // The generator's ends and the devices; a device closes (and its
        // vdev goes) with its last port.
        self.sides.clear();
        if self.wire == Wire::Memif {
            // The client ends (the worker's; testpmd's are gone with it)
            // first, and the servers only once the EAL's interrupt thread
            // is done with the clients' disconnection (see `wait_for_down`).
            let servers: Vec<Arc<Device>> = self.devs.drain(..2.min(self.devs.len())).collect();
            self.devs.clear();
            wait_for_down(&servers);
        }
        self.devs.clear();
        if let Some(s) = &self.socket {
            // memif's socket is a file unless abstract; gone either way.
            let _ = std::fs::remove_file(s);
        }
    }
}

/// Waits until every memif server of `devs` has taken in its client's
/// disconnection, so that it can be closed. The EAL's interrupt thread
/// handles the client's disconnect message: it marks the link down and
/// defers freeing the control channel until its callback has returned.
/// Closing the server before that deferred free has run frees the channel
/// twice, and DPDK 22.11 crashes in the interrupt thread (seen here, in
/// `rte_free` under the memif PMD). Hence the link must be down and then
/// the thread given a moment.
fn wait_for_down(devs: &[Arc<Device>]) {
    let until = Instant::now() + Duration::from_secs(2);
    while devs.iter().any(|d| d.link().up) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
}

/// A memif control socket for rig `n`: a path in the temporary directory
/// (DPDK 22.11 makes it an abstract socket of that name by default, so
/// usually no file appears).
fn memif_socket(n: u32) -> String {
    std::env::temp_dir()
        .join(format!("fvs-perf-{}-{n}.sock", std::process::id()))
        .display()
        .to_string()
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
    rig: &mut Rig,
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
    rig: &mut Rig,
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
) -> Result<(DpdkBenchReport, [Trace; 2]), String> {
    let setup = Instant::now();
    register_thread().map_err(|e| format!("register_thread: {e}"))?;
    let (mut rig, ports) = Rig::new(eal, a.wire, true)?;
    let snap = lab::snapshot(fwd, 1, Timeouts::default(), false, lab::laddrs_for(a.flows));
    let shared: Arc<Shared<DpdkPacket>> = Shared::new(snap);
    let epoch = Instant::now();
    let capacity = ((a.flows as usize) * 9 / 8).max(1024);
    let mut worker = Worker::new(0, shared.clone(), ports, capacity, now(&epoch));
    let traces = match warm_up(&mut worker, &mut rig, &epoch, fwd, a.flows) {
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
    let w = drive(eal, cpus, &mut rig.sides, &traces, a.seconds, job);
    let leaked_mbufs = rig.drain_and_count();
    drop(rig);
    let (w, back) = w?;

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
        device: a.wire,
        returned_mpps: back.mpps(),
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
    wire: Wire,
) -> Result<f64, String> {
    let (mut rig, mut ports) = Rig::new(eal, wire, true)?;
    let job = move |flags: Arc<Flags>| {
        let r = io_loop(&mut ports, &flags);
        drop(ports);
        r
    };
    let w = drive(eal, cpus, &mut rig.sides, traces, seconds, job);
    let leaked = rig.drain_and_count();
    drop(rig);
    let (w, _) = w?;
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
    sides: &mut [Side],
    traces: &[Trace; 2],
    seconds: f64,
    job: impl FnOnce(Arc<Flags>) -> WorkerResult + Send + 'static,
) -> Result<(WorkerResult, Returned), String> {
    let flags = Arc::new(Flags::default());
    let (tx, rx) = mpsc::channel();
    let lcore_job = {
        let flags = flags.clone();
        move || {
            let _ = tx.send(job(flags));
        }
    };
    let result = std::thread::scope(|s| -> Result<(WorkerResult, Returned), String> {
        let gen = s.spawn(|| {
            core_affinity::set_for_current(core_affinity::CoreId { id: cpus.gen });
            let r = register_thread()
                .map(|_| generate(sides, traces, &flags))
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
        let back = gen
            .join()
            .map_err(|_| "the generator panicked".to_string())??;
        let w = w.map_err(|_| "the worker did not report (it failed)".to_string())?;
        Ok((w, back))
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
    let c0 = tsc();
    while !flags.stop_worker.load(Ordering::Relaxed) {
        for _ in 0..64 {
            let c = tsc();
            let n = fwd(ports, &mut tx, &mut dropped);
            if n > 0 {
                busy_cycles += tsc().wrapping_sub(c);
                rx += n as u64;
                busy += 1;
            } else {
                idle += 1;
            }
        }
    }
    let elapsed = t0.elapsed();
    let all_cycles = tsc().wrapping_sub(c0).max(1);
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
    let c0 = tsc();
    let mut ms = now(epoch);
    let mut i = 0u32;
    // Cycles spent in polls that found packets.
    let mut busy_cycles = 0u64;
    while !flags.stop_worker.load(Ordering::Relaxed) {
        for _ in 0..64 {
            let c = tsc();
            if worker.poll(ms) > 0 {
                busy_cycles += tsc().wrapping_sub(c);
            }
        }
        i = i.wrapping_add(1);
        if i.is_multiple_of(16) {
            ms = now(epoch);
        }
    }
    let elapsed = t0.elapsed();
    let all_cycles = tsc().wrapping_sub(c0).max(1);
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

/// One side's traffic: the trace, where it is, and a burst allocated and
/// filled but not yet all taken by the far end.
struct Feed<'a> {
    port: usize,
    trace: &'a Trace,
    next: usize,
    pending: Vec<DpdkPacket>,
}

impl Feed<'_> {
    /// Sends what is left of the burst, allocating and filling a new one
    /// first if none is left; returns how many went.
    #[inline]
    fn push(&mut self, side: &mut Side) -> usize {
        if self.pending.is_empty() {
            if !side.alloc(BURST, &mut self.pending) {
                return 0; // pool empty for now: the far end holds them
            }
            for m in &mut self.pending {
                // A fresh mbuf has room for a 60-byte frame.
                let fits = m.copy_from(self.trace.frame(self.next));
                debug_assert!(fits);
                self.next += 1;
                if self.next == self.trace.frames {
                    self.next = 0;
                }
            }
        }
        side.send(&mut self.pending)
    }
}

/// What came back to the generator while the forwarder was measured.
#[derive(Clone, Copy, Debug, Default)]
struct Returned {
    packets: u64,
    elapsed: Duration,
}

impl Returned {
    fn mpps(&self) -> f64 {
        self.packets as f64 / self.elapsed.as_secs_f64().max(1e-9) / 1e6
    }
}

/// The generator: fills the far end's RX queues, says so, and keeps them
/// full while taking in what the far end transmits, until told to stop.
/// Counts what came back between `go` and `stop_worker`.
fn generate(sides: &mut [Side], traces: &[Trace; 2], flags: &Flags) -> Returned {
    let mut feeds: Vec<Feed> = traces
        .iter()
        .enumerate()
        .filter(|(_, t)| t.frames > 0)
        .map(|(port, trace)| Feed {
            port,
            trace,
            next: 0,
            pending: Vec::with_capacity(BURST),
        })
        .collect();
    let mut buf: Vec<DpdkPacket> = Vec::with_capacity(BURST);
    let mut primed = false;
    let mut idle_rounds = 0u32;
    let (mut back, mut t0) = (0u64, Instant::now());
    let mut result = None;
    loop {
        let mut pushed = 0;
        for f in &mut feeds {
            pushed += f.push(&mut sides[f.port]);
        }
        if primed {
            // Take in everything every round, as a wire would keep up.
            for s in sides.iter_mut() {
                loop {
                    let n = s.recv(&mut buf);
                    DpdkPacket::free_bulk(&mut buf);
                    back += n as u64;
                    if n < BURST {
                        break;
                    }
                }
            }
            if result.is_none() && flags.stop_worker.load(Ordering::Relaxed) {
                result = Some(Returned {
                    packets: back,
                    elapsed: t0.elapsed(),
                });
            }
            if flags.stop_generator.load(Ordering::Relaxed) {
                break;
            }
        } else if pushed == 0 {
            // Full (or the pool is dry): let the forwarder go.
            idle_rounds += 1;
            if idle_rounds > 2 {
                primed = true;
                flags.primed.store(true, Ordering::Release);
                while !flags.go.load(Ordering::Acquire) {
                    if flags.stop_generator.load(Ordering::Acquire) {
                        return Returned::default();
                    }
                    std::hint::spin_loop();
                }
                t0 = Instant::now();
            }
        }
    }
    result.unwrap_or_default()
}

/// The job on the worker's lcore while testpmd forwards: waits out the
/// measurement without taking the CPU testpmd runs on.
fn idle_job(flags: Arc<Flags>) -> WorkerResult {
    let nap = Duration::from_millis(1);
    while !flags.go.load(Ordering::Acquire) && !flags.stop_worker.load(Ordering::Acquire) {
        std::thread::sleep(nap);
    }
    let t0 = Instant::now();
    while !flags.stop_worker.load(Ordering::Acquire) {
        std::thread::sleep(nap);
    }
    flags.measured.store(true, Ordering::Release);
    WorkerResult {
        elapsed: t0.elapsed(),
        busy_share: 0.0,
        rx: 0,
        tx: 0,
        busy: 0,
        idle: 0,
        drops: vec![0; DropReason::ALL.len()],
    }
}

/// A testpmd measurement.
#[derive(Clone, Debug)]
pub struct TestpmdRun {
    /// Packets forwarded per second, in millions. Ring loopback: the median
    /// second of testpmd's own figures (both ports). memif: what the
    /// generator got back while measured.
    pub mpps: f64,
    /// testpmd's own figure for each full second it forwarded.
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

/// A running testpmd and what it printed so far.
struct Testpmd {
    child: ChildGuard,
    lines: mpsc::Receiver<String>,
    errs: std::thread::JoinHandle<String>,
    text: String,
    cmd: String,
    prefix: String,
}

impl Testpmd {
    /// Starts `bin` with EAL arguments `eal` (a unique `--file-prefix` is
    /// added) and testpmd arguments `app`.
    fn spawn(bin: &str, eal: Vec<String>, app: Vec<String>) -> Result<Testpmd, String> {
        static RUNS: AtomicU32 = AtomicU32::new(0);
        let prefix = format!(
            "fvs-tpmd-{}-{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        );
        let mut args = eal;
        args.push(format!("--file-prefix={prefix}"));
        args.push("--log-level=warning".into());
        args.push("--".into());
        args.extend(app);
        let cmd = format!("{bin} {}", args.join(" "));
        let child = Command::new(bin)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                format!("cannot run {bin} (package dpdk-dev; or set FERROVS_TESTPMD): {e}")
            })?;
        let mut child = ChildGuard(child);
        let (tx, lines) = mpsc::channel::<String>();
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
        Ok(Testpmd {
            child,
            lines,
            errs,
            text: String::new(),
            cmd,
            prefix,
        })
    }

    /// Collects output until `done(all output so far)` or `deadline`;
    /// false when testpmd closed its output (exited) first.
    fn read_until(&mut self, deadline: Instant, mut done: impl FnMut(&str) -> bool) -> bool {
        loop {
            if done(&self.text) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(l) => {
                    self.text.push_str(&l);
                    self.text.push('\n');
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    /// Whether the process has exited.
    fn exited(&mut self) -> bool {
        !matches!(self.child.0.try_wait(), Ok(None))
    }

    /// Stops it with SIGINT (testpmd then stops forwarding, prints its
    /// totals and exits; killed if it does not within 10 s). Returns all
    /// it printed, its exit status and its stderr.
    fn stop(mut self) -> (String, Option<std::process::ExitStatus>, String) {
        let pid = self.child.0.id().to_string();
        let _ = Command::new("kill")
            .args(["-INT", &pid])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let stop_by = Instant::now() + Duration::from_secs(10);
        let status = loop {
            match self.child.0.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < stop_by => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => break None,
            }
        };
        drop(self.child); // kills it if SIGINT did not
        while let Ok(l) = self.lines.try_recv() {
            self.text.push_str(&l);
            self.text.push('\n');
        }
        remove_runtime_dir(&self.prefix);
        (self.text, status, self.errs.join().unwrap_or_default())
    }
}

/// The last lines of testpmd's output and errors, for an error message.
fn tail(text: &str, stderr: &str) -> String {
    let all: Vec<&str> = text.lines().chain(stderr.lines()).collect();
    all[all.len().saturating_sub(15)..].join("\n")
}

/// The testpmd to run: `$FERROVS_TESTPMD` or `dpdk-testpmd`.
fn testpmd_bin() -> String {
    std::env::var("FERROVS_TESTPMD").unwrap_or_else(|_| "dpdk-testpmd".into())
}

/// EAL start-up without hugepages takes a few seconds here.
const TESTPMD_STARTUP: Duration = Duration::from_secs(30);

/// Runs testpmd in forwarding mode `fwd` ("io", "mac", ...) between two
/// loopback `net_ring` vdevs with one forwarding core until it has printed
/// `seconds` (rounded up) full seconds of throughput, then stops it with
/// SIGINT. Fails, without hanging, when testpmd cannot be run, exits early
/// or prints no throughput in time.
pub fn run_testpmd(fwd: &str, seconds: f64) -> Result<TestpmdRun, String> {
    run_testpmd_with(&testpmd_bin(), fwd, seconds, TESTPMD_STARTUP)
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
    let eal = vec![
        "--no-huge".into(),
        "-m".into(),
        "1024".into(),
        "--no-pci".into(),
        "--no-shconf".into(),
        format!("--lcores=0@{},1@{}", cpus.gen, cpus.worker),
        "--vdev=net_ring0".into(),
        "--vdev=net_ring1".into(),
    ];
    let app = vec![
        format!("--forward-mode={fwd}"),
        "--nb-cores=1".into(),
        "--total-num-mbufs=8192".into(),
        "--tx-first".into(),
        "--auto-start".into(),
        "--stats-period=1".into(),
    ];
    let mut t = Testpmd::spawn(bin, eal, app)?;
    let want = (seconds.ceil() as usize).max(1);
    let deadline = Instant::now() + startup + Duration::from_secs_f64(seconds);
    let running = t.read_until(deadline, |text| parse_testpmd_rates(text).len() >= want);
    let cmd = t.cmd.clone();
    let (text, status, stderr) = t.stop();
    let samples = parse_testpmd_rates(&text);
    if samples.is_empty() {
        return Err(format!(
            "{cmd}: no throughput figure{} (exit: {}); last output:\n{}",
            if running {
                " in time"
            } else {
                ", it exited early"
            },
            status.map_or("killed".into(), |s| s.to_string()),
            tail(&text, &stderr),
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

/// testpmd io forwarding as the forwarder of a memif rig: the generator's
/// server ends in this process, testpmd's one forwarding lcore (and its
/// main lcore) on the worker's CPU as the two client ends, the same
/// traffic as the worker's run for `seconds`. The rate is what came back
/// to the generator, measured as for the worker.
fn testpmd_over_memif(
    eal: &Arc<Eal>,
    cpus: Cpus,
    traces: &[Trace; 2],
    seconds: f64,
    bin: &str,
    startup: Duration,
) -> Result<TestpmdRun, String> {
    let (mut rig, _) = Rig::new(eal, Wire::Memif, false)?;
    let socket = rig.socket.clone().expect("a memif rig has a socket");
    let eal_args = vec![
        "--no-huge".into(),
        "-m".into(),
        "1024".into(),
        "--no-pci".into(),
        "--no-telemetry".into(),
        format!("--lcores=0@{w},1@{w}", w = cpus.worker),
        format!("--vdev=net_memif0,role=client,socket={socket},id=0,rsize={MEMIF_RSIZE}"),
        format!("--vdev=net_memif1,role=client,socket={socket},id=1,rsize={MEMIF_RSIZE}"),
    ];
    let app = vec![
        "--forward-mode=io".into(),
        "--nb-cores=1".into(),
        "--total-num-mbufs=16384".into(),
        "--auto-start".into(),
        "--stats-period=1".into(),
    ];
    let mut t = Testpmd::spawn(bin, eal_args, app)?;
    let cmd = t.cmd.clone();
    let linked = rig.wait_for_links(startup, || {
        // Keep its output, and give up as soon as it is gone.
        t.read_until(Instant::now(), |_| false);
        if t.exited() {
            Err("it exited".into())
        } else {
            Ok(())
        }
    });
    let measured =
        linked.and_then(|()| drive(eal, cpus, &mut rig.sides, traces, seconds, idle_job));
    let (text, status, stderr) = t.stop();
    // Dropping the rig waits for the servers to take in testpmd's
    // disconnection before closing them.
    let leaked = rig.drain_and_count();
    let (_, back) = measured.map_err(|e| {
        format!(
            "{cmd}: {e} (exit: {}); last output:\n{}",
            status.map_or("killed".into(), |s| s.to_string()),
            tail(&text, &stderr)
        )
    })?;
    if leaked != 0 {
        return Err(format!("testpmd over memif: {leaked} mbufs not returned"));
    }
    if back.packets == 0 {
        return Err(format!(
            "{cmd}: forwarded nothing; last output:\n{}",
            tail(&text, &stderr)
        ));
    }
    Ok(TestpmdRun {
        mpps: back.mpps(),
        samples: parse_testpmd_rates(&text)
            .into_iter()
            .filter(|&r| r > 0.0)
            .collect(),
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
    fn worker_io_forwarder_and_testpmd_forward_without_leaking() {
        assert!(run(&DpdkBenchArgs {
            mode: "lvs",
            flows: 1,
            seconds: 1.0,
            testpmd: false,
            wire: Wire::Memif,
        })
        .is_err());
        for wire in [Wire::Memif, Wire::Ring] {
            for mode in ["dr", "nat"] {
                let r = run(&DpdkBenchArgs {
                    mode,
                    flows: 1000,
                    seconds: 0.3,
                    testpmd: false,
                    wire,
                })
                .unwrap_or_else(|e| panic!("{mode} over {wire:?}: {e}"));
                assert!(r.packets > 10_000, "{r:?}");
                assert!(r.forwarded > 0 && r.forwarded <= r.packets, "{r:?}");
                assert!(r.returned_mpps > 0.0, "{r:?}");
                // A memif ring holds 2048 frames, a ring device's TX ring
                // 4096: a generator descheduled by the tests running beside
                // this one (or by a build on the same two vCPUs) can leave
                // the worker a full transmit ring now and then, which it
                // counts. Nothing else may drop; the bound on tx_full only
                // catches a worker that stops draining.
                let tx_full = r.drops_by_reason.get("tx_full").copied().unwrap_or(0);
                assert_eq!(r.drops, tx_full, "{r:?}");
                assert!(tx_full * 50 <= r.packets, "{r:?}");
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
                assert_eq!(r.device, wire);
            }
        }
        // NAT traffic runs both ways: the io forwarder sends each side's
        // frames out of the other, and every mbuf comes back.
        let _one = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
        let (eal, cpus) = eal().unwrap();
        let args = DpdkBenchArgs {
            mode: "nat",
            flows: 100,
            seconds: 0.1,
            testpmd: false,
            wire: Wire::Memif,
        };
        let (_, traces) = bench(&eal, cpus, &args, FwdMethod::Nat).unwrap();
        assert!(traces[0].frames == 100 && traces[1].frames == 100);
        for wire in [Wire::Memif, Wire::Ring] {
            let io = rig_io(&eal, cpus, &traces, 0.3, wire).unwrap();
            assert!(io > 0.1, "{wire:?}: {io} Mpps");
        }

        // testpmd in the worker's place on the memif rig: a missing or
        // failing program is an error, not a hang, and leaves the rig
        // reusable.
        let _g = SCRIPTS.lock().unwrap_or_else(PoisonError::into_inner);
        let dir = Scratch::new();
        let e = testpmd_over_memif(
            &eal,
            cpus,
            &traces,
            0.2,
            "/nonexistent/dpdk-testpmd",
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(e.contains("cannot run"), "{e}");
        let bin = fake_testpmd(&dir, "fails", "echo 'EAL: Cannot init memory' >&2; exit 1");
        let e = testpmd_over_memif(&eal, cpus, &traces, 0.2, &bin, Duration::from_secs(20))
            .unwrap_err();
        assert!(
            e.contains("it exited") && e.contains("Cannot init memory"),
            "{e}"
        );
        // The real one, where installed (the test command installs it).
        let real = testpmd_bin();
        if Command::new(&real).arg("--version").output().is_ok() {
            let t = testpmd_over_memif(&eal, cpus, &traces, 1.0, &real, TESTPMD_STARTUP)
                .unwrap_or_else(|e| panic!("testpmd over memif: {e}"));
            assert!(t.mpps > 0.1, "{t:?}");
            assert!(t.cmd.contains("role=client"), "{t:?}");
        } else {
            eprintln!("{real} not installed: testpmd over memif not run");
        }
    }
}
