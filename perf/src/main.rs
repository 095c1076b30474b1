//! `ferrovs-perf`: drives the real worker code over in-memory ports with
//! pre-built traffic and reports packets per second per core.

mod genport;
mod lab;
mod traffic;

use clap::{Parser, ValueEnum};
use ferrovs_dataplane::conn::{TcpState, Timeouts};
use ferrovs_dataplane::port::memory::MemPacket;
use ferrovs_dataplane::service::FwdMethod;
use ferrovs_dataplane::wire::l4::{TCP_ACK, TCP_SYN};
use ferrovs_dataplane::worker::{Shared, Worker};
use genport::{GenPort, Pool, Source};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};
use traffic::{Trace, FRAME_LEN};

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Mode {
    Dr,
    Nat,
    Fullnat,
    Tun,
}

#[derive(Parser, Debug)]
#[command(about = "Benchmark the ferrovs dataplane over in-memory ports")]
struct Args {
    #[arg(long, value_enum, default_value = "dr")]
    mode: Mode,
    /// Established flows to spread the traffic over.
    #[arg(long, default_value_t = 1000)]
    flows: u64,
    #[arg(long, default_value_t = 1)]
    workers: usize,
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Every packet opens a new connection (SYNs from ever new clients).
    #[arg(long)]
    new_conns: bool,
    /// SYNs from random source addresses and ports (a SYN flood).
    #[arg(long)]
    syn_flood: bool,
    #[arg(long)]
    json: bool,
    /// Do not pin worker threads to cores.
    #[arg(long)]
    no_pin: bool,
}

#[derive(Serialize)]
struct Report {
    mode: Mode,
    flows: u64,
    workers: usize,
    seconds: f64,
    packets: u64,
    mpps: f64,
    mpps_per_core: f64,
    ns_per_packet: f64,
    new_conns_per_sec: f64,
    bytes_per_conn: f64,
    drops: u64,
    handovers: u64,
    /// Time to handle one burst (a busy poll), percentiles in ns.
    burst_p50_ns: f64,
    burst_p99_ns: f64,
    burst_p999_ns: f64,
}

struct WorkerResult {
    packets: u64,
    /// Busy-poll durations, a histogram in 2^(1/8) steps of nanoseconds.
    burst_hist: Vec<u64>,
    created: u64,
    elapsed: Duration,
    table_bytes: usize,
    table_len: usize,
    table_capacity: usize,
}

const HIST_BUCKETS: usize = 8 * 40;

/// Histogram bucket of a duration in ns: 8 buckets per power of two.
fn bucket(ns: f64) -> usize {
    ((ns.max(1.0).log2() * 8.0) as usize).min(HIST_BUCKETS - 1)
}

/// The value at quantile `q` of a histogram (bucket midpoint).
fn quantile(hist: &[u64], q: f64) -> f64 {
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

fn fwd(m: Mode) -> FwdMethod {
    match m {
        Mode::Dr => FwdMethod::Dr,
        Mode::Nat => FwdMethod::Nat,
        Mode::Fullnat => FwdMethod::FullNat,
        Mode::Tun => FwdMethod::Tun,
    }
}

/// A small xorshift for shuffling the trace.
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

fn main() {
    let args = Args::parse();
    let workers = args.workers.max(1);
    let mut timeouts = Timeouts::default();
    if args.new_conns || args.syn_flood {
        // SYNs never complete here; expire them quickly so the table
        // reaches a steady state where creation and expiry balance.
        timeouts.tcp[TcpState::SynRecv as usize] = 1;
        timeouts.tcp[TcpState::None as usize] = 1;
    }
    let snap = lab::snapshot(fwd(args.mode), workers, timeouts);
    let shared: Arc<Shared<MemPacket>> = Shared::new(snap);
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let start = Arc::new(Barrier::new(workers + 1));
    let stop = Arc::new(AtomicBool::new(false));

    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let shared = shared.clone();
            let start = start.clone();
            let stop = stop.clone();
            let core = if args.no_pin {
                None
            } else {
                cores.get(w % cores.len().max(1)).copied()
            };
            let mode = args.mode;
            let flows = args.flows;
            let new_conns = args.new_conns || args.syn_flood;
            let syn_flood = args.syn_flood;
            std::thread::spawn(move || {
                if let Some(c) = core {
                    core_affinity::set_for_current(c);
                }
                run_worker(w, shared, mode, flows, new_conns, syn_flood, start, stop)
            })
        })
        .collect();

    start.wait();
    std::thread::sleep(Duration::from_secs_f64(args.seconds));
    stop.store(true, Ordering::Relaxed);
    let results: Vec<WorkerResult> = handles
        .into_iter()
        .map(|h| h.join().expect("worker thread"))
        .collect();

    let packets: u64 = results.iter().map(|r| r.packets).sum();
    let created: u64 = results.iter().map(|r| r.created).sum();
    let secs = results
        .iter()
        .map(|r| r.elapsed.as_secs_f64())
        .fold(0.0, f64::max);
    let mpps = packets as f64 / secs / 1e6;
    let per_core = mpps / workers as f64;
    let table_bytes: usize = results.iter().map(|r| r.table_bytes).sum();
    let table_len: usize = results.iter().map(|r| r.table_len).sum();
    let table_capacity: usize = results.iter().map(|r| r.table_capacity).sum();
    // Frames for the director itself (the warm-up's ARP replies) are the
    // kernel's, not drops.
    let to_kernel = ferrovs_dataplane::counters::DropReason::ToKernel;
    let drops: u64 = shared
        .counters
        .iter()
        .map(|c| c.drops.iter().map(|d| d.get()).sum::<u64>() - c.dropped(to_kernel))
        .sum();
    let handovers: u64 = shared.counters.iter().map(|c| c.handover_out.get()).sum();
    let mut hist = vec![0u64; HIST_BUCKETS];
    for r in &results {
        for (h, c) in hist.iter_mut().zip(&r.burst_hist) {
            *h += c;
        }
    }
    let report = Report {
        mode: args.mode,
        flows: args.flows,
        workers,
        seconds: secs,
        packets,
        mpps,
        mpps_per_core: per_core,
        ns_per_packet: if per_core > 0.0 { 1e3 / per_core } else { 0.0 },
        new_conns_per_sec: if args.new_conns || args.syn_flood {
            created as f64 / secs
        } else {
            0.0
        },
        // Established runs size the table to the flows and divide by them;
        // new-connection runs oversize it, so give the full-table figure.
        bytes_per_conn: if args.new_conns || args.syn_flood {
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
    };
    if !args.json {
        for r in ferrovs_dataplane::counters::DropReason::ALL {
            let n: u64 = shared.counters.iter().map(|c| c.dropped(*r)).sum();
            if n > 0 {
                eprintln!("  dropped {}: {n}", r.name());
            }
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).expect("serialisable report")
        );
    } else {
        println!(
            "mode {:?} flows {} workers {}: {:.2} Mpps ({:.2} Mpps/core, {:.1} ns/packet), new conns {:.0}/s, {:.1} B/conn, drops {}, hand-overs {}, burst p50/p99/p99.9 {:.0}/{:.0}/{:.0} ns",
            report.mode,
            report.flows,
            report.workers,
            report.mpps,
            report.mpps_per_core,
            report.ns_per_packet,
            report.new_conns_per_sec,
            report.bytes_per_conn,
            report.drops,
            report.handovers,
            report.burst_p50_ns,
            report.burst_p99_ns,
            report.burst_p999_ns
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn run_worker(
    w: usize,
    shared: Arc<Shared<MemPacket>>,
    mode: Mode,
    flows: u64,
    new_conns: bool,
    syn_flood: bool,
    start: Arc<Barrier>,
    stop: Arc<AtomicBool>,
) -> WorkerResult {
    let nworkers = shared.workers;
    // Few buffers, so the ones in flight stay in cache as a NIC's would.
    let pool: Pool = Arc::new(Mutex::new((0..1024).map(|_| MemPacket::new()).collect()));
    let ports = vec![
        GenPort::new(lab::DIR0_MAC, pool.clone()),
        GenPort::new(lab::DIR1_MAC, pool.clone()),
    ];
    let snap = shared.snapshot.load_full();
    let my_flows: Vec<u64> = (0..flows)
        .filter(|&i| {
            let f = traffic::flow(i);
            match mode {
                // NAT flows belong to a hash of the client; feed each worker
                // its own, as symmetric RSS would.
                Mode::Nat => snap.nat_owner(f.caddr, f.cport) == w,
                _ => i as usize % nworkers == w,
            }
        })
        .collect();
    let capacity = if new_conns {
        8 << 20
    } else {
        (my_flows.len() * 9 / 8).max(1024)
    };
    let epoch = Instant::now();
    let now = |e: &Instant| e.elapsed().as_millis() as u64 + 1_000_000;
    let mut worker = Worker::new(w, shared.clone(), ports, capacity, now(&epoch));

    // Warm-up: neighbours, then one SYN per flow, learning where each went.
    for (port, f) in lab::neighbour_frames() {
        worker.ports_mut()[port].source = Source::Queue(VecDeque::from(vec![f]));
        worker.poll(now(&epoch));
    }
    let mut inbound = Trace::new();
    let mut replies = Trace::new();
    if !new_conns {
        let mut order = my_flows.clone();
        shuffle(&mut order, 0x9e37_79b9_7f4a_7c15 ^ w as u64);
        for chunk in order.chunks(32) {
            let q: VecDeque<Vec<u8>> = chunk
                .iter()
                .map(|&i| {
                    let mut b = vec![0u8; 64];
                    traffic::inbound(&mut b, traffic::flow(i), TCP_SYN);
                    b.truncate(FRAME_LEN);
                    b
                })
                .collect();
            worker.ports_mut()[0].source = Source::Queue(q);
            worker.poll(now(&epoch));
            let out = std::mem::take(&mut worker.ports_mut()[1].captured);
            for (k, f) in out.iter().enumerate() {
                let flow = traffic::flow(chunk[k.min(chunk.len() - 1)]);
                inbound.push(0, |b| traffic::inbound(b, flow, TCP_ACK));
                let rs = (f[5] - lab::RS_MAC[5]) as usize;
                match mode {
                    Mode::Nat => replies.push(1, |b| {
                        traffic::reply(b, rs, flow.caddr, flow.cport, TCP_ACK)
                    }),
                    Mode::Fullnat => {
                        let la: [u8; 4] = f[26..30].try_into().unwrap();
                        let lp = u16::from_be_bytes([f[34], f[35]]);
                        replies.push(1, |b| traffic::reply(b, rs, la, lp, TCP_ACK));
                    }
                    _ => {}
                }
            }
        }
        worker.ports_mut()[0].source = if inbound.frames > 0 {
            Source::Trace {
                trace: Arc::new(inbound),
                next: 0,
            }
        } else {
            Source::Idle
        };
        worker.ports_mut()[1].source = if replies.frames > 0 {
            Source::Trace {
                trace: Arc::new(replies),
                next: 0,
            }
        } else {
            Source::Idle
        };
    } else {
        let mut t = vec![0u8; 64];
        traffic::inbound(&mut t, traffic::flow(w as u64 * (1 << 40)), TCP_SYN);
        t.truncate(FRAME_LEN);
        worker.ports_mut()[0].source = Source::NewConns {
            template: t,
            n: (w as u64) << 40,
            random: syn_flood,
        };
        worker.ports_mut()[1].source = Source::Idle;
    }
    let created_before = shared.counters.cell(w).conns_created.get();

    start.wait();
    let t0 = Instant::now();
    let mut packets = 0u64;
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
                packets += n as u64;
            } else {
                packets += worker.poll(ms) as u64;
            }
        }
        i = i.wrapping_add(1);
        if i.is_multiple_of(16) {
            ms = now(&epoch);
        }
    }
    let elapsed = t0.elapsed();
    WorkerResult {
        packets,
        burst_hist: hist,
        created: shared.counters.cell(w).conns_created.get() - created_before,
        elapsed,
        table_bytes: worker.conns().memory_bytes(),
        table_len: worker.conns().len().max(1),
        table_capacity: worker.conns().capacity(),
    }
}
