//! `ferrovs-perf`: drives the real worker code over in-memory ports with
//! pre-built traffic and reports packets per second per core.

mod bench;
#[cfg(feature = "dpdk")]
mod dpdk_bench;
mod genport;
mod lab;
mod mix;
mod table;
mod traffic;

use bench::{Kind, Mode, Report, Scenario};
use clap::Parser;
use lab::Family;
use std::collections::BTreeMap;

const MIX_HELP: &str = "Mixed traffic in one run. Client side (port 0), by packet count:
  80 % segments of established TCP flows
  10 % new TCP connections: SYN, ACK, PSH-ACK, then FIN-ACK (RST for one
       connection in four), with a fresh client tuple on every lap
   5 % UDP datagrams to VIP:53 on established UDP flows
   2 % ICMP echo requests to the VIP
   3 % junk that must be dropped: 1 % bad IP header checksum, 1 % not ours
       (TCP to an address the director does not have), 1 % truncated inside
       the IP header
With NAT and FULLNAT the server side (port 1) carries as many packets:
  92 % replies on the established TCP flows, 5 % UDP replies, 3 % junk.
Closing states and SYN_RECV time out after 2 s.";

const HANDOVER_HELP: &str =
    "Hand-over-heavy traffic (NAT or FULLNAT, 2 or more workers): established
flows whose packets reach the workers round robin, whatever worker owns the
flow (NAT: both directions; FULLNAT: the replies). With W workers, (W-1)/W
of those packets reach a worker that hands them to the owner over the
hand-over rings. Reports hand-overs per second and per packet received.";

/// Where the worker's packets come from and go to.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    /// In-memory ports with pre-built traffic (every scenario).
    Memory,
    /// DPDK ethdevs (build with --features dpdk): one worker on an EAL
    /// lcore, established flows, against dpdk-testpmd io forwarding.
    Dpdk,
}

#[derive(Parser, Debug)]
#[command(about = "Benchmark the ferrovs dataplane over in-memory ports or DPDK devices")]
struct Args {
    #[arg(long, value_enum, default_value = "memory")]
    backend: Backend,
    /// With --backend dpdk: the devices between the generator and the
    /// worker, memif (copying, like a NIC) or ring (mbuf pointers only).
    #[arg(long, default_value = "memif", value_parser = ["memif", "ring"])]
    dpdk_device: String,
    /// With --backend dpdk: do not measure the io forwarding ceilings
    /// (the rig's own and dpdk-testpmd's).
    #[arg(long)]
    no_testpmd: bool,
    #[arg(long, value_enum, default_value = "dr")]
    mode: Mode,
    /// Established flows to spread the traffic over (1000, 1k, 10M).
    #[arg(long, default_value = "1000", value_parser = table::parse_count)]
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
    /// Mixed traffic (established, new connections, UDP, ICMP, junk).
    #[arg(long, long_help = MIX_HELP, conflicts_with_all = ["new_conns", "syn_flood", "handover"])]
    mix: bool,
    /// Packets reach the wrong worker and are handed to the flow's owner.
    #[arg(long, long_help = HANDOVER_HELP, conflicts_with_all = ["new_conns", "syn_flood"])]
    handover: bool,
    /// Run every mode × every count of --matrix-flows, with the traffic the
    /// other options choose, and print a table.
    #[arg(long)]
    matrix: bool,
    /// Flow counts for --matrix.
    #[arg(long, default_value = "1k,1M")]
    matrix_flows: String,
    /// A run to add to the table: MODE:KIND[:FLOWS[:WORKERS]] with KIND
    /// one of established, new-conns, syn-flood, mixed, handover (e.g.
    /// nat:mixed:1M:2). Repeat for more; missing parts come from --flows
    /// and --workers.
    #[arg(long = "scenario", value_name = "SPEC")]
    scenarios: Vec<String>,
    /// IPv6 clients, VIP and real servers (FULLNAT66 with IPv6 local
    /// addresses, TUN as IPv6-in-IPv6); established flows only.
    #[arg(long, conflicts_with = "nat64")]
    ipv6: bool,
    /// NAT64 (FULLNAT only): IPv6 clients and VIP, IPv4 real servers and
    /// local addresses; established flows only.
    #[arg(long)]
    nat64: bool,
    /// Run every mode in IPv4 and in IPv6, and NAT64 against IPv4 FULLNAT,
    /// at --flows: each pair back to back, all of them --rounds times, and
    /// print the ratios against issue 15's goals (DR and NAT ≥ 0.8, NAT64
    /// ≥ 0.6 of IPv4 FULLNAT).
    #[arg(long, conflicts_with_all = ["matrix", "scenarios", "ipv6", "nat64", "mix", "handover", "new_conns", "syn_flood"])]
    compare_ipv6: bool,
    /// Rounds of --compare-ipv6.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// JSON: one object, or an array of them in table mode.
    #[arg(long)]
    json: bool,
    /// Do not pin worker threads to cores.
    #[arg(long)]
    no_pin: bool,
    /// The workers are connection sync masters: they record connections
    /// for the sync daemon (IPVS's rules) and a thread drains their rings
    /// every 10 ms. Single runs only.
    #[arg(long, conflicts_with_all = ["matrix", "scenarios", "compare_ipv6"])]
    sync: bool,
    /// The workers' connection tables live in files in DIR (a tmpfs), as
    /// the appliance keeps them by default (`state_dir`), instead of on the
    /// heap. Single runs only.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["matrix", "scenarios", "compare_ipv6"])]
    state_dir: Option<std::path::PathBuf>,
}

impl Args {
    fn family(&self) -> Family {
        if self.nat64 {
            Family::Nat64
        } else if self.ipv6 {
            Family::V6
        } else {
            Family::V4
        }
    }
    fn kind(&self) -> Kind {
        if self.syn_flood {
            Kind::SynFlood
        } else if self.new_conns {
            Kind::NewConns
        } else if self.mix {
            Kind::Mixed
        } else if self.handover {
            Kind::Handover
        } else {
            Kind::Established
        }
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("ferrovs-perf: {msg}");
    std::process::exit(2)
}

fn main() {
    let args = Args::parse();
    if args.backend == Backend::Dpdk {
        return run_dpdk(&args);
    }
    let workers = args.workers.max(1);
    if args.compare_ipv6 {
        return compare_ipv6(&args, workers);
    }
    let table_mode = args.matrix || !args.scenarios.is_empty();
    if !table_mode {
        let sc = Scenario {
            mode: args.mode,
            kind: args.kind(),
            flows: args.flows,
            workers,
            family: args.family(),
        };
        let report = bench::run_with(
            &sc,
            args.seconds,
            !args.no_pin,
            args.sync,
            args.state_dir.as_deref(),
        )
        .unwrap_or_else(|e| fail(&e));
        if args.json {
            println!(
                "{}",
                serde_json::to_string(&report).expect("serialisable report")
            );
        } else {
            print_drop_reasons(&report.drops_by_reason, "");
            warn_unforwarded(&report, "");
            println!("{}", line(&report));
        }
        return;
    }

    let mut runs = vec![];
    if args.matrix {
        runs.extend(table::matrix(
            args.kind(),
            &table::parse_counts(&args.matrix_flows).unwrap_or_else(|e| fail(&e)),
            workers,
            args.family(),
        ));
        if args.kind() == Kind::Handover {
            eprintln!("ferrovs-perf: hand-over runs only NAT and FULLNAT");
        }
    }
    for s in &args.scenarios {
        runs.push(
            table::parse_scenario(s, args.flows, workers, args.family())
                .unwrap_or_else(|e| fail(&e)),
        );
    }
    if runs.is_empty() {
        fail("nothing to run");
    }
    let mut reports: Vec<Report> = vec![];
    for sc in &runs {
        let label = format!(
            "{} {} {} flows, {} worker(s)",
            table::mode_label(sc.mode, sc.family),
            sc.kind.name(),
            table::count_name(sc.flows),
            sc.workers
        );
        eprintln!("ferrovs-perf: running {label}");
        let r = bench::run(sc, args.seconds, !args.no_pin).unwrap_or_else(|e| fail(&e));
        print_drop_reasons(&r.drops_by_reason, &format!("[{label}] "));
        warn_unforwarded(&r, &format!("[{label}] "));
        reports.push(r);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&reports).expect("serialisable reports")
        );
    } else {
        print!("{}", table::markdown(&reports));
    }
}

#[cfg(not(feature = "dpdk"))]
fn run_dpdk(_: &Args) {
    fail("--backend dpdk: this ferrovs-perf was built without DPDK (cargo build --release -p ferrovs-perf --features dpdk)")
}

/// `--backend dpdk`: one worker, established flows, one run.
#[cfg(feature = "dpdk")]
fn run_dpdk(args: &Args) {
    if args.matrix || !args.scenarios.is_empty() {
        fail("--backend dpdk runs one scenario: no --matrix or --scenario");
    }
    if args.workers > 1 {
        fail("--backend dpdk runs one worker");
    }
    if args.kind() != Kind::Established {
        fail("--backend dpdk runs established flows only");
    }
    let wire = dpdk_bench::Wire::parse(&args.dpdk_device).unwrap_or_else(|e| fail(&e));
    let r = dpdk_bench::run(&dpdk_bench::DpdkBenchArgs {
        mode: args.mode.name(),
        flows: args.flows,
        seconds: args.seconds,
        testpmd: !args.no_testpmd,
        wire,
    })
    .unwrap_or_else(|e| fail(&e));
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&r).expect("serialisable report")
        );
    } else {
        print_drop_reasons(&r.drops_by_reason, "");
        println!("{}", r.summary());
    }
}

/// `--compare-ipv6`: every mode IPv4 then IPv6, and IPv4 FULLNAT then
/// NAT64, back to back so that both runs of a pair see the same machine;
/// the pairs in turn, `--rounds` times, so that a noisy moment spoils one
/// round's ratio rather than one side of every ratio.
fn compare_ipv6(args: &Args, workers: usize) {
    let mut rows: Vec<table::Comparison> = [
        (Mode::Dr, Family::V6, Some(0.8)),
        (Mode::Nat, Family::V6, Some(0.8)),
        (Mode::Fullnat, Family::V6, None),
        (Mode::Tun, Family::V6, None),
        (Mode::Fullnat, Family::Nat64, Some(0.6)),
    ]
    .into_iter()
    .map(|(mode, family, goal)| table::Comparison {
        mode,
        family,
        v4: vec![],
        v6: vec![],
        goal,
    })
    .collect();
    for round in 1..=args.rounds.max(1) {
        for c in &mut rows {
            for family in [Family::V4, c.family] {
                let sc = Scenario {
                    mode: c.mode,
                    kind: Kind::Established,
                    flows: args.flows,
                    workers,
                    family,
                };
                let label = format!(
                    "round {round}: {} {} flows",
                    table::mode_label(sc.mode, family),
                    table::count_name(sc.flows)
                );
                eprintln!("ferrovs-perf: running {label}");
                let r = bench::run(&sc, args.seconds, !args.no_pin).unwrap_or_else(|e| fail(&e));
                print_drop_reasons(&r.drops_by_reason, &format!("[{label}] "));
                warn_unforwarded(&r, &format!("[{label}] "));
                eprintln!("  {}", line(&r));
                if family == Family::V4 {
                    c.v4.push(r);
                } else {
                    c.v6.push(r);
                }
            }
        }
    }
    if args.json {
        let all: Vec<&Report> = rows.iter().flat_map(|c| c.v4.iter().chain(&c.v6)).collect();
        println!(
            "{}",
            serde_json::to_string(&all).expect("serialisable reports")
        );
    } else {
        print!("{}", table::compare_markdown(&rows));
    }
}

/// Established flows must all be forwarded: every packet in is one out.
/// Other traffic has junk to drop and echo replies to add.
fn warn_unforwarded(r: &Report, prefix: &str) {
    if r.scenario != Kind::Established || r.packets == 0 {
        return;
    }
    let share = r.forwarded as f64 / r.packets as f64;
    if !(0.99..=1.01).contains(&share) {
        eprintln!(
            "  {prefix}warning: {} packets in, {} forwarded ({:.1} %)",
            r.packets,
            r.forwarded,
            share * 100.0
        );
    }
}

fn print_drop_reasons(drops: &BTreeMap<&str, u64>, prefix: &str) {
    for (name, n) in drops {
        eprintln!("  {prefix}dropped {name}: {n}");
    }
}

/// The one-line summary of a single run.
fn line(r: &Report) -> String {
    let scenario = match r.scenario {
        Kind::Mixed | Kind::Handover => format!(" scenario {}", r.scenario.name()),
        _ => String::new(),
    };
    let mut s = format!(
        "mode {} flows {} workers {}{}: {:.2} Mpps ({:.2} Mpps/core, {:.1} ns/packet), new conns {:.0}/s, {:.1} B/conn, drops {}, hand-overs {}, burst p50/p99/p99.9 {:.0}/{:.0}/{:.0} ns",
        match r.family {
            // As before IPv6 existed (scripts may read it).
            Family::V4 => format!("{:?}", r.mode),
            f => format!("{:?} {}", r.mode, f.name()),
        },
        r.flows,
        r.workers,
        scenario,
        r.mpps,
        r.mpps_per_core,
        r.ns_per_packet,
        r.new_conns_per_sec,
        r.bytes_per_conn,
        r.drops,
        r.handovers,
        r.burst_p50_ns,
        r.burst_p99_ns,
        r.burst_p999_ns
    );
    if r.scenario == Kind::Handover {
        s += &format!(
            ", hand-overs {:.2} M/s ({:.0} % of packets)",
            r.handovers_per_sec / 1e6,
            r.handover_share * 100.0
        );
    }
    if r.sync_records_per_sec > 0.0 || r.sync_ring_full > 0 {
        s += &format!(
            ", sync records {:.0}/s (ring full {})",
            r.sync_records_per_sec, r.sync_ring_full
        );
    }
    s
}
