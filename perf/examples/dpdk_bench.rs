//! The README's "DPDK against testpmd" table: every mode at each flow
//! count through the same `run` as `ferrovs-perf --backend dpdk` (worker,
//! io forwarding on the rig, testpmd io) over `--device` (memif or ring),
//! `--repeats` times each; each of the three figures is the best of its
//! repeats, and the ratios are those of the bests. Then testpmd on
//! loopback rings in each of `--testpmd-modes`, for reference.
//!
//! ```sh
//! cargo run --release -p ferrovs-perf --features dpdk --example dpdk_bench -- \
//!     --seconds 3 --repeats 2 --modes dr,nat,fullnat,tun --flows 1000,1000000
//! ```
//!
//! Prints one JSON report per run on stderr and a markdown table on stdout.
// The perf modules below are shared with the binary, which uses more of
// them than this table does.
#![allow(dead_code)]

#[cfg(feature = "dpdk")]
#[path = "../src/dpdk_bench.rs"]
mod dpdk_bench;
#[cfg(feature = "dpdk")]
#[path = "../src/lab.rs"]
mod lab;
#[cfg(feature = "dpdk")]
#[path = "../src/traffic.rs"]
mod traffic;

#[cfg(not(feature = "dpdk"))]
fn main() {
    eprintln!("dpdk_bench: build with --features dpdk");
    std::process::exit(2);
}

#[cfg(feature = "dpdk")]
fn main() {
    use clap::Parser;
    use dpdk_bench::{run, run_testpmd, DpdkBenchArgs};

    #[derive(Parser)]
    struct Args {
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        #[arg(long, default_value_t = 2)]
        repeats: usize,
        #[arg(long, default_value = "dr,nat,fullnat,tun")]
        modes: String,
        #[arg(long, default_value = "1000,1000000")]
        flows: String,
        /// memif or ring.
        #[arg(long, default_value = "memif")]
        device: String,
        /// testpmd forwarding modes to measure on loopback rings, for
        /// reference ("" for none).
        #[arg(long, default_value = "")]
        testpmd_modes: String,
    }
    let args = Args::parse();
    let fail = |e: String| -> ! {
        eprintln!("dpdk_bench: {e}");
        std::process::exit(1)
    };
    let wire = dpdk_bench::Wire::parse(&args.device).unwrap_or_else(|e| fail(e));
    // What the testpmd ratio compares (see DpdkBenchReport::ratio_vs_testpmd).
    let ours = |r: &dpdk_bench::DpdkBenchReport| match wire {
        dpdk_bench::Wire::Memif => r.returned_mpps,
        dpdk_bench::Wire::Ring => r.mpps,
    };
    let mut rows = vec![];
    for mode in args.modes.split(',').filter(|m| !m.is_empty()) {
        let mode: &'static str = match mode {
            "dr" => "dr",
            "nat" => "nat",
            "fullnat" => "fullnat",
            "tun" => "tun",
            m => fail(format!("unknown mode {m}")),
        };
        for flows in args.flows.split(',').filter(|f| !f.is_empty()) {
            let flows: u64 = flows
                .parse()
                .unwrap_or_else(|_| fail(format!("bad flow count {flows}")));
            let mut best: Option<dpdk_bench::DpdkBenchReport> = None;
            for _ in 0..args.repeats.max(1) {
                let r = run(&DpdkBenchArgs {
                    mode,
                    flows,
                    seconds: args.seconds,
                    testpmd: true,
                    wire,
                })
                .unwrap_or_else(|e| fail(e));
                eprintln!("{}", r.summary());
                eprintln!("{}", serde_json::to_string(&r).unwrap());
                let max = |a: Option<f64>, b: Option<f64>| match (a, b) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                best = Some(match best {
                    None => r,
                    Some(b) => {
                        let (rig, tpmd) = (
                            max(b.rig_io_mpps, r.rig_io_mpps),
                            max(b.testpmd_mpps, r.testpmd_mpps),
                        );
                        let mut w = if ours(&r) > ours(&b) { r } else { b };
                        w.rig_io_mpps = rig;
                        w.testpmd_mpps = tpmd;
                        w.ratio_vs_rig_io = rig.map(|x| w.mpps / x);
                        w.ratio_vs_testpmd = tpmd.map(|x| ours(&w) / x);
                        w
                    }
                });
            }
            rows.push(best.expect("at least one run"));
        }
    }
    let mut testpmd = vec![];
    for m in args.testpmd_modes.split(',').filter(|m| !m.is_empty()) {
        let mut best: Option<dpdk_bench::TestpmdRun> = None;
        for _ in 0..args.repeats.max(1) {
            let t = run_testpmd(m, args.seconds).unwrap_or_else(|e| fail(e));
            eprintln!(
                "testpmd {m}: {:.1} Mpps {:?} ({})",
                t.mpps, t.samples, t.cmd
            );
            if best.as_ref().is_none_or(|b| t.mpps > b.mpps) {
                best = Some(t);
            }
        }
        testpmd.push((m.to_string(), best.expect("at least one run")));
    }
    println!(
        "| mode | flows | Mpps | ns/packet | back at the generator, Mpps | worker busy | io fwd on the rig, Mpps | ratio to it | testpmd io, Mpps | ratio to it |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let f = |x: Option<f64>, p: usize| x.map_or("-".into(), |x| format!("{x:.p$}"));
    for r in &rows {
        println!(
            "| {} | {} | {:.2} | {:.1} | {:.2} | {:.0} % | {} | {} | {} | {} |",
            r.mode.to_uppercase(),
            r.flows,
            r.mpps,
            r.ns_per_packet,
            r.returned_mpps,
            r.worker_busy_share * 100.0,
            f(r.rig_io_mpps, 2),
            f(r.ratio_vs_rig_io, 2),
            f(r.testpmd_mpps, 2),
            f(r.ratio_vs_testpmd, 3),
        );
    }
    for (m, t) in &testpmd {
        println!("\ntestpmd {m}: {:.1} Mpps ({})", t.mpps, t.cmd);
    }
}
