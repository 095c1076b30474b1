//! `/metrics` content for a running state: names, labels and values.

mod common;
use common::{daemon, run};

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
    shared.counters.cell(0).evicted_tcp_half_open.add(5);
    shared.counters.cell(0).conn_pressure.set(1);
    shared.counters.cell(0).conns_unconfirmed.set(7);
    let d = d.view();
    let text = ferrovs_controlplane::northbound::metrics::render(
        &ferrovs_controlplane::northbound::metrics::registry(d.clone()),
    );
    let has = |line: &str| text.lines().any(|l| l == line);
    assert!(has("# TYPE ferrovs_service_connections counter"), "{text}");
    // Flood defence: evictions by reason, pressure, eviction candidates.
    assert!(
        has(r#"ferrovs_worker_connections_evicted_total{worker="0",reason="tcp_half_open"} 5"#),
        "{text}"
    );
    assert!(has(
        r#"ferrovs_worker_connections_evicted_total{worker="0",reason="udp_unconfirmed"} 0"#
    ));
    assert!(has(r#"ferrovs_worker_conn_table_pressure{worker="0"} 1"#));
    assert!(has(
        r#"ferrovs_worker_connections_unconfirmed{worker="0"} 7"#
    ));
    assert!(has(r#"ferrovs_worker_secure_tcp_held_total{worker="0"} 0"#));
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
    // The FULLNAT local-port pool: in use per worker, capacity per worker.
    assert!(has(r#"ferrovs_laddr_ports_in_use{worker="0"} 0"#), "{text}");
    assert!(
        has(r#"ferrovs_laddr_ports_capacity{worker="0"} 0"#),
        "{text}"
    );
    assert!(has(
        r#"ferrovs_worker_kernel_out_packets_total{worker="0"} 0"#
    ));
    assert!(has(r#"ferrovs_build_info{version="0.1.0"} 1"#));
    assert!(has("# EOF"));
    // Every sample name carries the ferrovs_ prefix.
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(l.starts_with("ferrovs_"), "{l}");
    }
}

/// The metric names a PromQL expression reads.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if expr[i..].starts_with("ferrovs_")
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
        {
            let end = expr[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(b.len(), |n| i + n);
            out.push(expr[i..end].to_string());
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

fn exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => exprs(x, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| exprs(x, out)),
        _ => {}
    }
}

#[test]
fn grafana_dashboard_queries_only_metrics_we_export() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../grafana/ferrovs-dashboard.json"
    ))
    .unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is valid JSON");
    let mut all = Vec::new();
    exprs(&dash, &mut all);
    assert!(all.len() >= 15, "{} queries", all.len());

    let (mut d, _) = daemon();
    run(&mut d, "-A -t 198.18.0.100:80 -s rr");
    run(&mut d, "-a -t 198.18.0.100:80 -r 198.18.1.11:80 -g");
    let d = d.view();
    let metrics = ferrovs_controlplane::northbound::metrics::render(
        &ferrovs_controlplane::northbound::metrics::registry(d),
    );
    // Every family is described, samples or not; counters' samples end in
    // _total while their TYPE line names the family.
    let families: Vec<(&str, &str)> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    let mut seen: Vec<String> = all.iter().flat_map(|e| metric_names(e)).collect();
    seen.sort();
    seen.dedup();
    assert!(seen.len() >= 15, "only {seen:?}");
    assert_eq!(
        metric_names("rate(ferrovs_a_total[1m]) / ferrovs_b"),
        vec!["ferrovs_a_total", "ferrovs_b"]
    );
    for e in &all {
        for name in metric_names(e) {
            let ok = families.iter().any(|(f, t)| {
                *f == name || (*t == "counter" && name.strip_suffix("_total") == Some(f))
            });
            assert!(
                ok,
                "the dashboard queries {name}, which /metrics does not export"
            );
        }
    }
}
