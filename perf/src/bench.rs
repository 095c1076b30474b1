//! One benchmark run: a director snapshot, worker threads over generator
//! ports with pre-built traffic, and the figures they produce.

use crate::genport::{GenPort, Pool, Renew, Source};
use crate::lab::{self, Family};
use crate::mix::{self, Item, NewConnTuples, Side};
use crate::traffic::{self, Flow, Trace, FRAME_LEN, FRAME_LEN6, RENEW};
use clap::ValueEnum;
use ferrovs_dataplane::conn::{TcpState, Timeouts};
use ferrovs_dataplane::counters::DropReason;
use ferrovs_dataplane::port::memory::MemPacket;
use ferrovs_dataplane::service::FwdMethod;
use ferrovs_dataplane::wire::l4::{TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
use ferrovs_dataplane::worker::{Shared, Worker};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Dr,
    Nat,
    Fullnat,
    Tun,
}

impl Mode {
    pub const ALL: [Mode; 4] = [Mode::Dr, Mode::Nat, Mode::Fullnat, Mode::Tun];
    pub fn fwd(self) -> FwdMethod {
        match self {
            Mode::Dr => FwdMethod::Dr,
            Mode::Nat => FwdMethod::Nat,
            Mode::Fullnat => FwdMethod::FullNat,
            Mode::Tun => FwdMethod::Tun,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Mode::Dr => "dr",
            Mode::Nat => "nat",
            Mode::Fullnat => "fullnat",
            Mode::Tun => "tun",
        }
    }
    /// Whether the director sees the servers' replies.
    pub fn sees_replies(self) -> bool {
        matches!(self, Mode::Nat | Mode::Fullnat)
    }
}

/// What traffic a run offers.
#[derive(Clone, Copy, Debug, ValueEnum, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Segments of established flows in random flow order (both directions
    /// for NAT and FULLNAT).
    Established,
    /// Every packet a SYN from a new client.
    NewConns,
    /// SYNs from random source addresses and ports.
    SynFlood,
    /// The blend of `mix.rs`.
    Mixed,
    /// Established flows sprayed over the workers regardless of owner.
    Handover,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Established,
        Kind::NewConns,
        Kind::SynFlood,
        Kind::Mixed,
        Kind::Handover,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Kind::Established => "established",
            Kind::NewConns => "new-conns",
            Kind::SynFlood => "syn-flood",
            Kind::Mixed => "mixed",
            Kind::Handover => "handover",
        }
    }
}

/// One benchmark configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scenario {
    pub mode: Mode,
    pub kind: Kind,
    pub flows: u64,
    pub workers: usize,
    pub family: Family,
}

impl Scenario {
    /// Why the scenario cannot run, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.family == Family::Nat64 && self.mode != Mode::Fullnat {
            return Err(format!(
                "NAT64 needs FULLNAT (an IPv6 client cannot be answered by an IPv4 server in {} mode: only FULLNAT owns both sides of the connection)",
                self.mode.name()
            ));
        }
        if self.family != Family::V4 && self.kind != Kind::Established {
            return Err(format!(
                "{} runs established flows only (not {}): the new-connection, mixed and hand-over traffic is IPv4",
                self.family.name(),
                self.kind.name()
            ));
        }
        if self.kind == Kind::Handover {
            if !self.mode.sees_replies() {
                return Err(format!(
                    "hand-over needs NAT or FULLNAT ({} flows have no owner but the worker that saw them)",
                    self.mode.name()
                ));
            }
            if self.workers < 2 {
                return Err("hand-over needs at least 2 workers".into());
            }
        }
        if self.flows == 0 && matches!(self.kind, Kind::Established | Kind::Mixed | Kind::Handover)
        {
            return Err("needs at least one flow".into());
        }
        Ok(())
    }
}

#[derive(Serialize, Clone, Debug)]
pub struct Report {
    pub mode: Mode,
    pub family: Family,
    pub scenario: Kind,
    pub flows: u64,
    pub workers: usize,
    pub seconds: f64,
    /// Packets received from the ports (a handed-over packet counts once).
    pub packets: u64,
    /// Packets sent out of the ports (ICMP echo replies included).
    pub forwarded: u64,
    pub mpps: f64,
    pub mpps_per_core: f64,
    pub ns_per_packet: f64,
    pub new_conns_per_sec: f64,
    pub bytes_per_conn: f64,
    /// Packets dropped during the measurement (frames for the director
    /// itself, left to the kernel, are not drops).
    pub drops: u64,
    pub handovers: u64,
    /// Time to handle one burst (a busy poll), percentiles in ns.
    pub burst_p50_ns: f64,
    pub burst_p99_ns: f64,
    pub burst_p999_ns: f64,
    pub handovers_per_sec: f64,
    /// Hand-overs per packet received.
    pub handover_share: f64,
    pub drops_by_reason: BTreeMap<&'static str, u64>,
    /// Time to build the traffic and warm the tables, before measuring.
    pub setup_seconds: f64,
    /// With the workers as sync masters (`--sync`): records they put in
    /// their rings per second, and records a full ring refused.
    pub sync_records_per_sec: f64,
    pub sync_ring_full: u64,
}

struct WorkerResult {
    /// What `poll` returned, summed: packets from the ports plus packets
    /// handed over by other workers.
    handled: u64,
    /// Busy-poll durations, a histogram in 2^(1/8) steps of nanoseconds.
    burst_hist: Vec<u64>,
    created: u64,
    handover_in: u64,
    handover_out: u64,
    tx: u64,
    drops: Vec<u64>,
    elapsed: Duration,
    table_bytes: usize,
    table_len: usize,
    table_capacity: usize,
}

pub const HIST_BUCKETS: usize = 8 * 40;

/// Histogram bucket of a duration in ns: 8 buckets per power of two.
pub fn bucket(ns: f64) -> usize {
    ((ns.max(1.0).log2() * 8.0) as usize).min(HIST_BUCKETS - 1)
}

/// The value at quantile `q` of a histogram (bucket midpoint).
pub fn quantile(hist: &[u64], q: f64) -> f64 {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let want = (total as f64 * q).ceil() as u64;
    let mut seen = 0;
    for (i, &c) in hist.iter().enumerate() {
        seen += c;
        if seen >= want {
            return 2f64.powf((i as f64 + 0.5) / 8.0);
        }
    }
    0.0
}

/// Mixed traffic: closing states and SYN_RECV time out after this many
/// seconds, so that the table reaches a steady state where the
/// connections the mix opens and those that expire balance.
pub const MIX_SHORT_TIMEOUT: u32 = 2;
/// Room for those connections, beyond the established flows.
pub const MIX_NEW_CONN_ROOM: usize = 2 << 20;
/// The address the "not ours" junk goes to (no address of the director).
pub const NOT_OURS_CLIENT_SIDE: [u8; 4] = [198, 18, 0, 200];
pub const NOT_OURS_SERVER_SIDE: [u8; 4] = [198, 18, 2, 250];
/// Junk frames cut inside the IP header are this long.
pub const TRUNCATED_LEN: usize = 30;

/// Runs one scenario for `seconds` and reports.
pub fn run(sc: &Scenario, seconds: f64, pin: bool) -> Result<Report, String> {
    run_with(sc, seconds, pin, false, None)
}

/// [`run`], with the workers as connection sync masters when `sync`: they
/// record connections by IPVS's rules (`ferrovs_dataplane::sync`) and a
/// thread drains their rings every 10 ms, as the sync daemon does (it
/// only counts them: batching and sending are the control plane's, on
/// another core).
///
/// With `state_dir`, the workers' connection tables live in files there, as
/// the appliance keeps them (`state_dir`, issue 17), instead of the heap.
pub fn run_with(
    sc: &Scenario,
    seconds: f64,
    pin: bool,
    sync: bool,
    state_dir: Option<&std::path::Path>,
) -> Result<Report, String> {
    sc.check()?;
    let setup = Instant::now();
    let workers = sc.workers.max(1);
    let mut timeouts = Timeouts::default();
    match sc.kind {
        Kind::NewConns | Kind::SynFlood => {
            // SYNs never complete here; expire them quickly so the table
            // reaches a steady state where creation and expiry balance.
            timeouts.tcp[TcpState::SynRecv as usize] = 1;
            timeouts.tcp[TcpState::None as usize] = 1;
        }
        Kind::Mixed => {
            for s in [
                TcpState::None,
                TcpState::SynRecv,
                TcpState::FinWait,
                TcpState::TimeWait,
                TcpState::Close,
                TcpState::CloseWait,
                TcpState::LastAck,
            ] {
                timeouts.tcp[s as usize] = MIX_SHORT_TIMEOUT;
            }
        }
        Kind::Established | Kind::Handover => {}
    }
    let snap = if sc.family == Family::V4 {
        lab::snapshot(
            sc.mode.fwd(),
            workers,
            timeouts,
            sc.kind == Kind::Mixed,
            lab::laddrs_for(sc.flows),
        )
    } else {
        lab::snapshot6(
            sc.mode.fwd(),
            workers,
            timeouts,
            lab::laddrs_for(sc.flows),
            sc.family == Family::Nat64,
        )
    };
    let shared: Arc<Shared<MemPacket>> = Shared::new(snap);
    shared.sync.set_master(sync);
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let start = Arc::new(Barrier::new(workers + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let exchange = (sc.kind == Kind::Handover).then(|| {
        Arc::new(Exchange {
            slots: Mutex::new(vec![None; workers]),
            barrier: Barrier::new(workers),
        })
    });
    // Few buffers, so the ones in flight stay in cache as a NIC's would.
    // Hand-overs move buffers between workers: one pool for all then.
    let shared_pool = exchange.as_ref().map(|_| new_pool(4096 * workers));

    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let cx = Ctx {
                state_dir: state_dir.map(std::path::Path::to_path_buf),
                w,
                shared: shared.clone(),
                sc: *sc,
                pool: shared_pool.clone().unwrap_or_else(|| new_pool(1024)),
                start: start.clone(),
                stop: stop.clone(),
                exchange: exchange.clone(),
            };
            let core = if pin {
                cores.get(w % cores.len().max(1)).copied()
            } else {
                None
            };
            std::thread::spawn(move || {
                if let Some(c) = core {
                    core_affinity::set_for_current(c);
                }
                run_worker(cx)
            })
        })
        .collect();

    start.wait();
    let setup_seconds = setup.elapsed().as_secs_f64();
    let drainer = sync.then(|| {
        let (shared, stop) = (shared.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for w in 0..shared.sync.workers() {
                    n += shared.sync.drain(w, usize::MAX, |_| ()) as u64;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            n
        })
    });
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let results: Vec<WorkerResult> = handles
        .into_iter()
        .map(|h| h.join().map_err(|_| "a worker thread failed".to_string()))
        .collect::<Result<_, _>>()?;
    let mut r = summarise(sc, workers, &results, setup_seconds);
    if let Some(d) = drainer {
        let n = d
            .join()
            .map_err(|_| "the sync drainer failed".to_string())?;
        r.sync_records_per_sec = n as f64 / r.seconds.max(1e-9);
        r.sync_ring_full = shared.counters.iter().map(|c| c.sync_ring_full.get()).sum();
    }
    Ok(r)
}

fn new_pool(n: usize) -> Pool {
    Arc::new(Mutex::new((0..n).map(|_| MemPacket::new()).collect()))
}

fn summarise(
    sc: &Scenario,
    workers: usize,
    results: &[WorkerResult],
    setup_seconds: f64,
) -> Report {
    let handled: u64 = results.iter().map(|r| r.handled).sum();
    let handover_in: u64 = results.iter().map(|r| r.handover_in).sum();
    let handovers: u64 = results.iter().map(|r| r.handover_out).sum();
    let packets = handled.saturating_sub(handover_in);
    let created: u64 = results.iter().map(|r| r.created).sum();
    let forwarded: u64 = results.iter().map(|r| r.tx).sum();
    let secs = results
        .iter()
        .map(|r| r.elapsed.as_secs_f64())
        .fold(0.0, f64::max)
        .max(1e-9);
    let mpps = packets as f64 / secs / 1e6;
    let per_core = mpps / workers as f64;
    let table_bytes: usize = results.iter().map(|r| r.table_bytes).sum();
    let table_len: usize = results.iter().map(|r| r.table_len).sum();
    let table_capacity: usize = results.iter().map(|r| r.table_capacity).sum();
    let mut drops_by_reason = BTreeMap::new();
    let mut drops = 0;
    for r in DropReason::ALL {
        // Frames for the director itself (the warm-up's ARP replies) are
        // the kernel's, not drops.
        if *r == DropReason::ToKernel {
            continue;
        }
        let n: u64 = results.iter().map(|x| x.drops[*r as usize]).sum();
        if n > 0 {
            drops_by_reason.insert(r.name(), n);
            drops += n;
        }
    }
    let mut hist = vec![0u64; HIST_BUCKETS];
    for r in results {
        for (h, c) in hist.iter_mut().zip(&r.burst_hist) {
            *h += c;
        }
    }
    let opens = matches!(sc.kind, Kind::NewConns | Kind::SynFlood | Kind::Mixed);
    Report {
        mode: sc.mode,
        family: sc.family,
        scenario: sc.kind,
        flows: sc.flows,
        workers,
        seconds: secs,
        packets,
        forwarded,
        mpps,
        mpps_per_core: per_core,
        ns_per_packet: if per_core > 0.0 { 1e3 / per_core } else { 0.0 },
        new_conns_per_sec: if opens { created as f64 / secs } else { 0.0 },
        // Established runs size the table to the flows and divide by them;
        // runs that open connections oversize it, so give the full-table
        // figure.
        bytes_per_conn: if opens {
            table_bytes as f64 / table_capacity.max(1) as f64
        } else if table_len > 0 {
            table_bytes as f64 / table_len as f64
        } else {
            0.0
        },
        drops,
        handovers,
        burst_p50_ns: quantile(&hist, 0.5),
        burst_p99_ns: quantile(&hist, 0.99),
        burst_p999_ns: quantile(&hist, 0.999),
        handovers_per_sec: handovers as f64 / secs,
        handover_share: if packets > 0 {
            handovers as f64 / packets as f64
        } else {
            0.0
        },
        drops_by_reason,
        setup_seconds,
        sync_records_per_sec: 0.0,
        sync_ring_full: 0,
    }
}

/// A worker's client-side and server-side traffic.
type TracePair = (Arc<Trace>, Arc<Trace>);

/// Where the workers of a hand-over run swap their traffic.
struct Exchange {
    slots: Mutex<Vec<Option<TracePair>>>,
    barrier: Barrier,
}

struct Ctx {
    w: usize,
    state_dir: Option<std::path::PathBuf>,
    shared: Arc<Shared<MemPacket>>,
    sc: Scenario,
    pool: Pool,
    start: Arc<Barrier>,
    stop: Arc<AtomicBool>,
    exchange: Option<Arc<Exchange>>,
}

/// What the warm-up learnt of a flow from the frame the worker sent on.
#[derive(Clone, Copy, Default, Debug)]
struct Learned {
    rs: u8,
    /// The source address the director gave the forwarded frame (FULLNAT:
    /// the local address); an IPv4 one in the first 4 bytes.
    laddr: [u8; 16],
    lport: u16,
}

impl Learned {
    fn laddr4(&self) -> [u8; 4] {
        self.laddr[..4].try_into().unwrap()
    }

    /// Parses a frame forwarded to a real server: IPv4 (DR, NAT, FULLNAT,
    /// NAT64's translated frames, IPIP) or IPv6 (TCP, or IPv6-in-IPv6 whose
    /// "port" is then meaningless and unused: TUN sees no replies). Other
    /// frames (none expected) are not the flow's.
    fn from_frame(f: &[u8]) -> Option<Learned> {
        let rs = f[5].wrapping_sub(lab::RS_MAC[5]);
        let mut laddr = [0u8; 16];
        match f.get(12..14)? {
            [0x08, 0x00] if f.len() >= 36 => {
                laddr[..4].copy_from_slice(&f[26..30]);
                Some(Learned {
                    rs,
                    laddr,
                    lport: u16::from_be_bytes([f[34], f[35]]),
                })
            }
            [0x86, 0xdd] if f.len() >= 56 && matches!(f[20], 6 | 41) => {
                laddr.copy_from_slice(&f[22..38]);
                Some(Learned {
                    rs,
                    laddr,
                    lport: u16::from_be_bytes([f[54], f[55]]),
                })
            }
            _ => None,
        }
    }
}

/// Writes frame `i` of a sequence into a buffer.
type FrameFn<'a> = dyn Fn(usize, &mut [u8]) + 'a;

/// Milliseconds on the worker's clock.
fn now(epoch: &Instant) -> u64 {
    epoch.elapsed().as_millis() as u64 + 1_000_000
}

/// Sends `n` frames (`first(i)`, `len` bytes long) through the worker in
/// bursts and learns from each forwarded frame where its flow went; then,
/// if given, sends `then(i)` for the same flows (to take them past
/// SYN_RECV).
fn learn(
    worker: &mut Worker<GenPort>,
    epoch: &Instant,
    n: usize,
    len: usize,
    first: &FrameFn<'_>,
    then: Option<&FrameFn<'_>>,
) -> Vec<Learned> {
    let mut out = Vec::with_capacity(n);
    let frames = |r: std::ops::Range<usize>, f: &dyn Fn(usize, &mut [u8])| {
        r.map(|i| {
            let mut b = vec![0u8; traffic::STRIDE6];
            f(i, &mut b);
            b.truncate(len);
            b
        })
        .collect::<VecDeque<_>>()
    };
    for lo in (0..n).step_by(32) {
        let hi = (lo + 32).min(n);
        worker.ports_mut()[0].source = Source::Queue(frames(lo..hi, first));
        worker.poll(now(epoch));
        let sent = std::mem::take(&mut worker.ports_mut()[1].captured);
        let sent: Vec<_> = sent.iter().filter_map(|f| Learned::from_frame(f)).collect();
        assert_eq!(
            sent.len(),
            hi - lo,
            "warm-up: {} frames sent, {} forwarded",
            hi - lo,
            sent.len()
        );
        out.extend(sent);
        if let Some(then) = then {
            worker.ports_mut()[0].source = Source::Queue(frames(lo..hi, then));
            worker.poll(now(epoch));
            worker.ports_mut()[1].captured.clear();
        }
    }
    worker.ports_mut()[0].source = Source::Queue(VecDeque::new());
    out
}

/// The reply destination of a flow: the client for NAT, the local address
/// the director chose for FULLNAT.
fn reply_to(mode: Mode, f: Flow, l: &Learned) -> ([u8; 4], u16) {
    if mode == Mode::Fullnat {
        (l.laddr4(), l.lport)
    } else {
        (f.caddr, f.cport)
    }
}

/// An IPv6-client worker's established traffic: the warm-up opens its
/// flows with SYNs and learns where they went, then the client side sends
/// ACKs in random flow order and, for NAT and FULLNAT, the servers answer:
/// IPv6 replies (NAT66 to the client, FULLNAT66 to the local address and
/// port), or with NAT64 IPv4 replies to the IPv4 local address.
fn traces6(
    worker: &mut Worker<GenPort>,
    epoch: &Instant,
    sc: Scenario,
    mut order: Vec<u64>,
    w: usize,
) -> (Trace, Trace) {
    mix::shuffle(&mut order, 0x9e37_79b9_7f4a_7c15 ^ w as u64);
    let learned = learn(
        worker,
        epoch,
        order.len(),
        FRAME_LEN6,
        &|k, b| traffic::inbound6(b, traffic::flow6(order[k]), TCP_SYN),
        None,
    );
    let mut inbound = Trace::with_capacity6(order.len());
    let n = if sc.mode.sees_replies() {
        order.len()
    } else {
        0
    };
    let mut replies = if sc.family == Family::Nat64 {
        Trace::with_capacity(n)
    } else {
        Trace::with_capacity6(n)
    };
    for (&i, l) in order.iter().zip(&learned) {
        let f = traffic::flow6(i);
        let rs = l.rs as usize;
        inbound.push(0, |b| traffic::inbound6(b, f, TCP_ACK));
        match (sc.mode, sc.family) {
            (Mode::Nat, _) => {
                replies.push(1, |b| traffic::reply6(b, rs, f.caddr, f.cport, TCP_ACK))
            }
            (Mode::Fullnat, Family::Nat64) => {
                replies.push(1, |b| traffic::reply(b, rs, l.laddr4(), l.lport, TCP_ACK))
            }
            (Mode::Fullnat, _) => {
                replies.push(1, |b| traffic::reply6(b, rs, l.laddr, l.lport, TCP_ACK))
            }
            (Mode::Dr | Mode::Tun, _) => {}
        }
    }
    (inbound, replies)
}

fn trace_source(t: Arc<Trace>) -> Source {
    if t.frames > 0 {
        Source::Trace { trace: t, next: 0 }
    } else {
        Source::Idle
    }
}

/// Worker `w`'s share of other workers' traffic: frame `i` of worker `v`'s
/// trace goes to worker `(i + v) % W`, as a NIC spreading packets round
/// robin regardless of their flow would.
fn spray(traces: &[&Trace], w: usize) -> Trace {
    let nw = traces.len();
    let total: usize = traces.iter().map(|t| t.frames).sum();
    let (stride, len) = traces.first().map_or((traffic::STRIDE, FRAME_LEN), |t| {
        (t.stride(), t.frame_len())
    });
    let mut out = Trace::with_layout(total / nw + nw, stride, len);
    let longest = traces.iter().map(|t| t.frames).max().unwrap_or(0);
    for i in 0..longest {
        for (v, t) in traces.iter().enumerate() {
            if i < t.frames && (i + v) % nw == w {
                out.push_slot(t, i);
            }
        }
    }
    out
}

fn run_worker(cx: Ctx) -> WorkerResult {
    let Ctx {
        w,
        state_dir,
        shared,
        sc,
        pool,
        start,
        stop,
        exchange,
    } = cx;
    let nworkers = shared.workers;
    let mode = sc.mode;
    let ports = vec![
        GenPort::new(lab::DIR0_MAC, pool.clone()),
        GenPort::new(lab::DIR1_MAC, pool),
    ];
    let snap = shared.snapshot.load_full();
    let v6 = sc.family.v6_clients();
    let owns = |i: u64| match mode {
        // NAT flows belong to a hash of the client; feed each worker its
        // own, as symmetric RSS would.
        Mode::Nat if v6 => {
            let f = traffic::flow6(i);
            snap.nat_owner6(&f.caddr, f.cport) == w
        }
        Mode::Nat => {
            let f = traffic::flow(i);
            snap.nat_owner(f.caddr, f.cport) == w
        }
        _ => i as usize % nworkers == w,
    };
    let opens = matches!(sc.kind, Kind::NewConns | Kind::SynFlood);
    let my_flows: Vec<u64> = if opens {
        vec![]
    } else {
        (0..sc.flows).filter(|&i| owns(i)).collect()
    };
    let client_plan = (sc.kind == Kind::Mixed)
        .then(|| mix::plan(Side::Client, my_flows.len(), 0, 0x51ed_270b ^ w as u64));
    let capacity = match &client_plan {
        _ if opens => 8 << 20,
        Some(p) => my_flows.len() * 9 / 8 + p.udp_flows as usize + MIX_NEW_CONN_ROOM,
        None => (my_flows.len() * 9 / 8).max(1024),
    };
    let epoch = Instant::now();
    // IPv6 runs size the IPv6 table to the flows and leave the IPv4 one
    // small (it is not used, and its memory is not counted).
    let mut worker = match &state_dir {
        None => {
            let mut worker = Worker::new(
                w,
                shared.clone(),
                ports,
                if v6 { 1024 } else { capacity },
                now(&epoch),
            );
            if v6 {
                worker.set_conn_capacity6(capacity, now(&epoch));
            }
            worker
        }
        Some(dir) => {
            use ferrovs_dataplane::conn::ConnTable;
            let store = ferrovs_dataplane::persist::Store {
                dir: dir.clone(),
                worker: w,
                workers: sc.workers,
                epoch_mono_ms: 0,
                boot_id: ferrovs_dataplane::persist::boot_id(),
            };
            let t = now(&epoch);
            let (c4, c6) = if v6 {
                (1024, capacity)
            } else {
                (capacity, 1024)
            };
            let tables = ConnTable::new_stored(c4, t, &store)
                .and_then(|a| Ok((a, ConnTable::new_v6_stored(c6, t, &store)?)));
            let (a, b) = tables.unwrap_or_else(|e| panic!("state dir {}: {e}", dir.display()));
            Worker::with_tables(w, shared.clone(), ports, a, b, t)
        }
    };

    // Warm-up: neighbours first.
    let neighbours = if v6 {
        lab::neighbour_frames6(sc.family == Family::Nat64)
    } else {
        lab::neighbour_frames()
    };
    for (port, f) in neighbours {
        worker.ports_mut()[port].source = Source::Queue(VecDeque::from(vec![f]));
        worker.poll(now(&epoch));
    }
    // From here on port 1's transmissions are captured.
    for p in worker.ports_mut() {
        p.source = Source::Queue(VecDeque::new());
        p.captured.clear();
    }
    match sc.kind {
        Kind::NewConns | Kind::SynFlood => {
            let mut t = vec![0u8; 64];
            traffic::inbound(&mut t, traffic::flow(w as u64 * (1 << 40)), TCP_SYN);
            t.truncate(FRAME_LEN);
            worker.ports_mut()[0].source = Source::NewConns {
                template: t,
                n: (w as u64) << 40,
                random: sc.kind == Kind::SynFlood,
            };
            worker.ports_mut()[1].source = Source::Idle;
        }
        // `Scenario::check` lets IPv6 clients through for established
        // flows only (no hand-over).
        Kind::Established if v6 => {
            let (inbound, replies) = traces6(&mut worker, &epoch, sc, my_flows, w);
            worker.ports_mut()[0].source = trace_source(Arc::new(inbound));
            worker.ports_mut()[1].source = trace_source(Arc::new(replies));
        }
        Kind::Established | Kind::Handover => {
            let mut order = my_flows;
            mix::shuffle(&mut order, 0x9e37_79b9_7f4a_7c15 ^ w as u64);
            let learned = learn(
                &mut worker,
                &epoch,
                order.len(),
                FRAME_LEN,
                &|k, b| traffic::inbound(b, traffic::flow(order[k]), TCP_SYN),
                None,
            );
            let mut inbound = Trace::with_capacity(order.len());
            let mut replies =
                Trace::with_capacity(if mode.sees_replies() { order.len() } else { 0 });
            for (&i, l) in order.iter().zip(&learned) {
                let f = traffic::flow(i);
                inbound.push(0, |b| traffic::inbound(b, f, TCP_ACK));
                if mode.sees_replies() {
                    let (a, p) = reply_to(mode, f, l);
                    replies.push(1, |b| traffic::reply(b, l.rs as usize, a, p, TCP_ACK));
                }
            }
            drop(learned);
            drop(order);
            let (mut inbound, mut replies) = (Arc::new(inbound), Arc::new(replies));
            if let Some(ex) = exchange {
                ex.slots.lock().unwrap()[w] = Some((inbound.clone(), replies.clone()));
                ex.barrier.wait();
                let all: Vec<TracePair> = ex
                    .slots
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|s| s.clone().expect("every worker's traffic"))
                    .collect();
                // FULLNAT: the client side reaches the worker that created
                // the flow; only replies are sprayed. NAT: both directions.
                if mode == Mode::Nat {
                    inbound = Arc::new(spray(&all.iter().map(|t| &*t.0).collect::<Vec<_>>(), w));
                }
                replies = Arc::new(spray(&all.iter().map(|t| &*t.1).collect::<Vec<_>>(), w));
                drop(all);
                ex.barrier.wait();
                ex.slots.lock().unwrap()[w] = None;
            }
            worker.ports_mut()[0].source = trace_source(inbound);
            worker.ports_mut()[1].source = trace_source(replies);
        }
        Kind::Mixed => {
            let plan = client_plan.expect("planned above");
            let flow_of = |n: u32| traffic::flow(my_flows[n as usize % my_flows.len()]);
            // Established flows: SYN, then ACK, so they are ESTABLISHED
            // before the short SYN_RECV timeout could take them.
            let learned = learn(
                &mut worker,
                &epoch,
                my_flows.len(),
                FRAME_LEN,
                &|k, b| traffic::inbound(b, traffic::flow(my_flows[k]), TCP_SYN),
                Some(&|k, b| traffic::inbound(b, traffic::flow(my_flows[k]), TCP_ACK)),
            );
            let udp = learn(
                &mut worker,
                &epoch,
                plan.udp_flows as usize,
                FRAME_LEN,
                &|k, b| traffic::udp_inbound(b, flow_of(k as u32)),
                None,
            );
            let tuples = NewConnTuples::new(plan.conns as usize, |f| {
                if mode == Mode::Nat && nworkers > 1 {
                    snap.nat_owner(f.caddr, f.cport) == w
                } else {
                    let x = (u32::from_be_bytes(f.caddr) as u64) << 16 | f.cport as u64;
                    (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize % nworkers == w
                }
            });
            let mut client = Trace::with_capacity(plan.items.len());
            let mut conns = Vec::with_capacity(plan.conns as usize * mix::CONN_STEPS as usize);
            const PSH: u8 = 0x08;
            for it in &plan.items {
                let full = FRAME_LEN;
                match *it {
                    Item::Est(n) => client.push_meta(0, full, 0, |b| {
                        traffic::inbound(b, flow_of(n), TCP_ACK | PSH)
                    }),
                    Item::New { conn, step } => {
                        let flags = match step {
                            0 => TCP_SYN,
                            1 => TCP_ACK,
                            2 => TCP_ACK | PSH,
                            _ if mix::closes_with_rst(conn) => TCP_RST | TCP_ACK,
                            _ => TCP_FIN | TCP_ACK,
                        };
                        conns.push(conn);
                        client.push_meta(0, full, RENEW, |b| {
                            traffic::inbound(b, tuples.at(0, conn), flags)
                        });
                    }
                    Item::Udp(n) => {
                        client.push_meta(0, full, 0, |b| traffic::udp_inbound(b, flow_of(n)))
                    }
                    Item::Icmp(n) => client.push_meta(0, full, 0, |b| {
                        traffic::icmp_echo(b, flow_of(n).caddr, n as u16, 1)
                    }),
                    Item::BadChecksum(n) => client.push_meta(0, full, 0, |b| {
                        traffic::inbound(b, flow_of(n), TCP_ACK | PSH);
                        b[24] ^= 0xff;
                    }),
                    Item::NotOurs(n) => client.push_meta(0, full, 0, |b| {
                        let f = flow_of(n);
                        traffic::tcp_frame(
                            b,
                            lab::CLIENT_MAC,
                            lab::DIR0_MAC,
                            f.caddr,
                            f.cport,
                            NOT_OURS_CLIENT_SIDE,
                            80,
                            TCP_ACK | PSH,
                        )
                    }),
                    Item::Truncated(n) => client.push_meta(0, TRUNCATED_LEN, 0, |b| {
                        traffic::inbound(b, flow_of(n), TCP_ACK | PSH)
                    }),
                }
            }
            let renew = Arc::new(Renew { conns, tuples });
            let server = mode.sees_replies().then(|| {
                let sp = mix::plan(
                    Side::Server,
                    my_flows.len(),
                    plan.udp_flows,
                    0x7f4a_7c15 ^ w as u64,
                );
                let mut t = Trace::with_capacity(sp.items.len());
                let est = |n: u32| {
                    let k = n as usize % my_flows.len();
                    (traffic::flow(my_flows[k]), learned[k])
                };
                let full = FRAME_LEN;
                for it in &sp.items {
                    match *it {
                        Item::Est(n) => t.push_meta(1, full, 0, |b| {
                            let (f, l) = est(n);
                            let (a, p) = reply_to(mode, f, &l);
                            traffic::reply(b, l.rs as usize, a, p, TCP_ACK | PSH)
                        }),
                        Item::Udp(n) => t.push_meta(1, full, 0, |b| {
                            let l = udp[n as usize % udp.len()];
                            let (a, p) = reply_to(mode, flow_of(n), &l);
                            traffic::udp_reply(b, l.rs as usize, a, p)
                        }),
                        Item::BadChecksum(n) => t.push_meta(1, full, 0, |b| {
                            let (f, l) = est(n);
                            let (a, p) = reply_to(mode, f, &l);
                            traffic::reply(b, l.rs as usize, a, p, TCP_ACK | PSH);
                            b[24] ^= 0xff;
                        }),
                        Item::NotOurs(n) => t.push_meta(1, full, 0, |b| {
                            let (_, l) = est(n);
                            traffic::reply(
                                b,
                                l.rs as usize,
                                NOT_OURS_SERVER_SIDE,
                                80,
                                TCP_ACK | PSH,
                            )
                        }),
                        Item::Truncated(n) => t.push_meta(1, TRUNCATED_LEN, 0, |b| {
                            let (f, l) = est(n);
                            let (a, p) = reply_to(mode, f, &l);
                            traffic::reply(b, l.rs as usize, a, p, TCP_ACK | PSH)
                        }),
                        Item::New { .. } | Item::Icmp(_) => unreachable!("client side only"),
                    }
                }
                t
            });
            worker.ports_mut()[0].source = Source::Mix {
                trace: Arc::new(client),
                next: 0,
                lap: 0,
                renew: Some(renew),
                renew_next: 0,
            };
            worker.ports_mut()[1].source = match server {
                Some(t) if t.frames > 0 => Source::Mix {
                    trace: Arc::new(t),
                    next: 0,
                    lap: 0,
                    renew: None,
                    renew_next: 0,
                },
                _ => Source::Idle,
            };
        }
    }
    for p in worker.ports_mut() {
        p.captured = Vec::new();
    }

    let ctr = shared.counters.cell(w);
    let drops_before: Vec<u64> = ctr.drops.iter().map(|d| d.get()).collect();
    let created_before = ctr.conns_created.get();
    let (in_before, out_before) = (ctr.handover_in.get(), ctr.handover_out.get());
    let tx_before = ctr.tx_packets.get();

    start.wait();
    let t0 = Instant::now();
    let mut handled = 0u64;
    let mut ms = now(&epoch);
    let mut i = 0u32;
    // Busy polls are timed one in 16 (timing every poll would cost a clock
    // read per burst).
    let mut hist = vec![0u64; HIST_BUCKETS];
    while !stop.load(Ordering::Relaxed) {
        for k in 0..64 {
            if k == 0 {
                let t = Instant::now();
                let n = worker.poll(ms);
                if n > 0 {
                    hist[bucket(t.elapsed().as_nanos() as f64)] += 1;
                }
                handled += n as u64;
            } else {
                handled += worker.poll(ms) as u64;
            }
        }
        i = i.wrapping_add(1);
        if i.is_multiple_of(16) {
            ms = now(&epoch);
        }
    }
    let elapsed = t0.elapsed();
    let table = if v6 { worker.conns6() } else { worker.conns() };
    WorkerResult {
        handled,
        burst_hist: hist,
        created: ctr.conns_created.get() - created_before,
        handover_in: ctr.handover_in.get() - in_before,
        handover_out: ctr.handover_out.get() - out_before,
        tx: ctr.tx_packets.get() - tx_before,
        drops: ctr
            .drops
            .iter()
            .zip(&drops_before)
            .map(|(d, b)| d.get() - b)
            .collect(),
        elapsed,
        table_bytes: table.memory_bytes(),
        table_len: table.len().max(1),
        table_capacity: table.capacity(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick(mode: Mode, kind: Kind, workers: usize) -> Report {
        let sc = Scenario {
            mode,
            kind,
            flows: 500,
            workers,
            family: Family::V4,
        };
        run(&sc, 0.2, false).expect("runs")
    }

    const JUNK: [&str; 3] = ["bad_ip_checksum", "not_ours", "truncated"];

    #[test]
    fn mixed_traffic_forwards_and_drops_only_the_junk() {
        for mode in Mode::ALL {
            let r = quick(mode, Kind::Mixed, 1);
            assert!(r.packets > 0 && r.forwarded > 0, "{mode:?}: {r:?}");
            assert!(r.new_conns_per_sec > 0.0, "{mode:?}: no new connections");
            for j in JUNK {
                assert!(
                    r.drops_by_reason.get(j).copied().unwrap_or(0) > 0,
                    "{mode:?}: no {j} drops: {r:?}"
                );
            }
            let other: Vec<_> = r
                .drops_by_reason
                .keys()
                .filter(|k| !JUNK.contains(k))
                .collect();
            assert!(other.is_empty(), "{mode:?}: unexpected drops {other:?}");
            // About 3 % of the packets are junk.
            let share = r.drops as f64 / r.packets as f64;
            assert!(share > 0.01 && share < 0.06, "{mode:?}: junk share {share}");
        }
    }

    #[test]
    fn mixed_traffic_with_two_workers() {
        let r = quick(Mode::Nat, Kind::Mixed, 2);
        assert!(r.forwarded > 0 && r.new_conns_per_sec > 0.0, "{r:?}");
        for j in JUNK {
            assert!(r.drops_by_reason.contains_key(j), "no {j} drops: {r:?}");
        }
    }

    #[test]
    fn handover_traffic_is_handed_to_the_owner() {
        for mode in [Mode::Nat, Mode::Fullnat] {
            let r = quick(mode, Kind::Handover, 2);
            assert!(r.forwarded > 0, "{mode:?}: {r:?}");
            assert!(
                r.handovers > 0 && r.handovers_per_sec > 0.0,
                "{mode:?}: {r:?}"
            );
            assert!(
                r.handover_share > 0.0 && r.handover_share <= 1.0,
                "{mode:?}: {r:?}"
            );
        }
    }

    #[test]
    fn handover_needs_a_mode_with_owners_and_two_workers() {
        let sc = |mode, workers| Scenario {
            mode,
            kind: Kind::Handover,
            flows: 10,
            workers,
            family: Family::V4,
        };
        assert!(run(&sc(Mode::Dr, 2), 0.01, false).is_err());
        assert!(run(&sc(Mode::Nat, 1), 0.01, false).is_err());
    }

    #[test]
    fn established_traffic_still_runs() {
        let r = quick(Mode::Fullnat, Kind::Established, 1);
        assert!(r.forwarded > 0 && r.drops == 0 && r.handovers == 0, "{r:?}");
    }

    fn quick6(mode: Mode, family: Family) -> Report {
        let sc = Scenario {
            mode,
            kind: Kind::Established,
            flows: 500,
            workers: 1,
            family,
        };
        run(&sc, 0.2, false).expect("runs")
    }

    /// Every packet offered is forwarded: nothing dropped, and the replies
    /// (NAT, FULLNAT) go through too, so the table holds every flow.
    #[test]
    fn ipv6_established_traffic_is_forwarded_in_every_mode() {
        let runs = Mode::ALL
            .into_iter()
            .map(|m| (m, Family::V6))
            .chain([(Mode::Fullnat, Family::Nat64)]);
        for (mode, family) in runs {
            let r = quick6(mode, family);
            assert!(r.packets > 0, "{mode:?} {family:?}: {r:?}");
            assert_eq!(r.drops, 0, "{mode:?} {family:?}: {r:?}");
            assert!(
                r.forwarded as f64 >= r.packets as f64 * 0.99,
                "{mode:?} {family:?}: {r:?}"
            );
            assert!(r.bytes_per_conn > 0.0, "{mode:?} {family:?}: {r:?}");
        }
    }

    #[test]
    fn ipv6_refuses_what_it_cannot_run() {
        let sc = |mode, kind, family| Scenario {
            mode,
            kind,
            flows: 10,
            workers: 1,
            family,
        };
        assert!(sc(Mode::Nat, Kind::Established, Family::Nat64)
            .check()
            .unwrap_err()
            .contains("FULLNAT"));
        assert!(sc(Mode::Dr, Kind::Mixed, Family::V6).check().is_err());
        assert!(sc(Mode::Nat, Kind::Handover, Family::V6).check().is_err());
        assert!(sc(Mode::Fullnat, Kind::Established, Family::Nat64)
            .check()
            .is_ok());
    }

    #[test]
    fn spray_deals_every_frame_once() {
        let mk = |tag: u8, n: usize| {
            let mut t = Trace::new();
            for i in 0..n {
                t.push(tag, |b| {
                    b[0] = tag;
                    b[1] = i as u8;
                });
            }
            t
        };
        let (a, b, c) = (mk(0, 7), mk(1, 5), mk(2, 6));
        let all = [&a, &b, &c];
        let mut seen = vec![];
        for w in 0..3 {
            let t = spray(&all, w);
            for i in 0..t.frames {
                let f = t.frame(i);
                let (v, k) = (f[0] as usize, f[1] as usize);
                assert_eq!((k + v) % 3, w, "frame {k} of worker {v} at worker {w}");
                seen.push((v, k));
            }
        }
        seen.sort();
        let want: Vec<_> = (0..7)
            .map(|k| (0, k))
            .chain((0..5).map(|k| (1, k)))
            .chain((0..6).map(|k| (2, k)))
            .collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn quantiles_of_a_histogram() {
        let mut h = vec![0u64; HIST_BUCKETS];
        for _ in 0..990 {
            h[bucket(1000.0)] += 1;
        }
        for _ in 0..10 {
            h[bucket(100_000.0)] += 1;
        }
        let p50 = quantile(&h, 0.5);
        assert!((900.0..1100.0).contains(&p50), "{p50}");
        assert!(quantile(&h, 0.999) > 90_000.0);
        assert_eq!(quantile(&[0; 4], 0.5), 0.0);
    }
}
