//! Writes a metrics sample to $FERROVS_METRICS_DUMP when set (used to run
//! promtool on it); a no-op otherwise.
mod common;
use common::{daemon, run};

#[test]
fn dump_metrics_sample() {
    let Some(path) = std::env::var_os("FERROVS_METRICS_DUMP") else {
        return;
    };
    let (mut d, shared) = daemon();
    run(&mut d, "-A -t 198.18.0.100:80 -s rr");
    run(&mut d, "-a -t 198.18.0.100:80 -r 198.18.1.11:80 -g");
    shared.counters.cell(0).rx_packets.add(5);
    let d = d.view();
    std::fs::write(
        path,
        ferrovs_controlplane::northbound::metrics::render_prometheus_text(
            &ferrovs_controlplane::northbound::metrics::registry(d),
        ),
    )
    .unwrap();
}
