//! `/metrics` content for a running state: names, labels and values.

mod common;
use common::{daemon, run};
use std::sync::{Arc, Mutex};

#[test]
fn metrics_carry_services_servers_workers() {
    let (mut d, shared) = daemon();
    run(&mut d, "-A -t 198.18.0.100:80 -s wrr");
    run(&mut d, "-a -t 198.18.0.100:80 -r 198.18.1.11:80 -g -w 3");
    // Pretend the workers counted something.
    shared.counters.cell(0).rx_packets.add(42);
    shared
        .counters
        .cell(0)
        .drop(ferrovs_dataplane::counters::DropReason::NotOurs);
    let d = Arc::new(Mutex::new(d));
    let text =
        ferrovs_controlplane::metrics::render(&ferrovs_controlplane::metrics::registry(d.clone()));
    let has = |line: &str| text.lines().any(|l| l == line);
    assert!(has("# TYPE ferrovs_service_connections counter"), "{text}");
    assert!(
        has(r#"ferrovs_service_connections_total{protocol="TCP",vip="198.18.0.100",port="80"} 0"#),
        "{text}"
    );
    assert!(has(
        r#"ferrovs_real_server_weight{protocol="TCP",vip="198.18.0.100",port="80",real_server="198.18.1.11",real_port="80"} 3"#
    ));
    assert!(has(
        r#"ferrovs_real_server_packets_total{protocol="TCP",vip="198.18.0.100",port="80",real_server="198.18.1.11",real_port="80",direction="in"} 0"#
    ));
    assert!(has(r#"ferrovs_worker_rx_packets_total{worker="0"} 42"#));
    assert!(has(
        r#"ferrovs_worker_drops_total{worker="0",reason="not_ours"} 1"#
    ));
    assert!(has(r#"ferrovs_build_info{version="0.1.0"} 1"#));
    assert!(has("# EOF"));
    // Every sample name carries the ferrovs_ prefix.
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(l.starts_with("ferrovs_"), "{l}");
    }
}
