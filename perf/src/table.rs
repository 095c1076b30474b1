//! Several scenarios in one invocation: parsing their descriptions and
//! printing their results as a Markdown table.

use crate::bench::{Kind, Mode, Report, Scenario};
use crate::lab::Family;
use std::fmt::Write;

/// A flow count: digits with an optional `k` (×1000) or `M` (×1 000 000)
/// suffix: `1000`, `1k`, `10M`.
pub fn parse_count(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, mult) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 1_000),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 1_000_000),
        _ => (s, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("not a count: {s:?} (write 1000, 1k or 1M)"))
}

/// A comma-separated list of counts.
pub fn parse_counts(s: &str) -> Result<Vec<u64>, String> {
    s.split(',').map(parse_count).collect()
}

/// A count as `parse_count` reads it, shortest form.
pub fn count_name(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 && n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    Mode::ALL
        .into_iter()
        .find(|m| m.name() == s.to_ascii_lowercase())
        .ok_or_else(|| format!("unknown mode {s:?} (dr, nat, fullnat, tun)"))
}

fn parse_kind(s: &str) -> Result<Kind, String> {
    let s = s.to_ascii_lowercase();
    let s = match s.as_str() {
        "est" => "established",
        "mix" => "mixed",
        "new" => "new-conns",
        "flood" => "syn-flood",
        other => other,
    };
    Kind::ALL
        .into_iter()
        .find(|k| k.name() == s)
        .ok_or_else(|| {
            format!("unknown scenario {s:?} (established, new-conns, syn-flood, mixed, handover)")
        })
}

/// `MODE:KIND[:FLOWS[:WORKERS]]`, e.g. `nat:mixed:1M:2`; what is left out
/// comes from `flows` and `workers`; the address family is the run's.
pub fn parse_scenario(
    s: &str,
    flows: u64,
    workers: usize,
    family: Family,
) -> Result<Scenario, String> {
    let parts: Vec<&str> = s.split(':').collect();
    if !(2..=4).contains(&parts.len()) {
        return Err(format!(
            "scenario {s:?}: write MODE:KIND[:FLOWS[:WORKERS]], e.g. nat:mixed:1M:2"
        ));
    }
    let sc = Scenario {
        mode: parse_mode(parts[0])?,
        kind: parse_kind(parts[1])?,
        flows: match parts.get(2) {
            Some(f) => parse_count(f)?,
            None => flows,
        },
        workers: match parts.get(3) {
            Some(w) => w
                .parse()
                .ok()
                .filter(|&w: &usize| w > 0)
                .ok_or_else(|| format!("scenario {s:?}: bad worker count {w:?}"))?,
            None => workers,
        },
        family,
    };
    sc.check().map_err(|e| format!("scenario {s:?}: {e}"))?;
    Ok(sc)
}

/// Every mode × every flow count, for one kind of traffic and address
/// family; combinations that cannot run (hand-over with DR or TUN, NAT64
/// outside FULLNAT, IPv6 beyond established flows) are left out.
pub fn matrix(kind: Kind, flows: &[u64], workers: usize, family: Family) -> Vec<Scenario> {
    let mut out = vec![];
    for mode in Mode::ALL {
        for &f in flows {
            let sc = Scenario {
                mode,
                kind,
                flows: f,
                workers,
                family,
            };
            if sc.check().is_ok() {
                out.push(sc);
            }
        }
    }
    out
}

/// A rate with an SI suffix: `2.41 M`, `310 k`, `–` for none.
pub fn rate(x: f64) -> String {
    if x <= 0.0 {
        "–".into()
    } else if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.0} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn us(ns: f64) -> String {
    format!("{:.1}", ns / 1e3)
}

pub const HEADER: &str = "| mode | scenario | flows | workers | Mpps | Mpps/core | ns/pkt | new conns/s | drops | hand-overs/s | burst p50 µs | p99 µs | p99.9 µs |";

/// A mode with its address family when not IPv4: `dr`, `nat ipv6`,
/// `fullnat nat64`.
pub fn mode_label(mode: Mode, family: Family) -> String {
    match family {
        Family::V4 => mode.name().to_string(),
        f => format!("{} {}", mode.name(), f.name()),
    }
}

/// One line of the IPv6 comparison: a mode's IPv4 runs and the IPv6 (or
/// NAT64) runs interleaved with them, and the goal the ratio is held to.
pub struct Comparison {
    pub mode: Mode,
    pub family: Family,
    pub v4: Vec<Report>,
    pub v6: Vec<Report>,
    pub goal: Option<f64>,
}

fn median(mut x: Vec<f64>) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    x.sort_by(|a, b| a.total_cmp(b));
    let n = x.len();
    if n % 2 == 1 {
        x[n / 2]
    } else {
        (x[n / 2 - 1] + x[n / 2]) / 2.0
    }
}

pub const COMPARE_HEADER: &str = "| mode | IPv4 Mpps/core | IPv6 Mpps/core | ratio (median) | ratios per round | goal | IPv4 B/conn | IPv6 B/conn |";

/// The comparison as a Markdown table: medians of the rounds, the ratio of
/// each round (IPv6 over the IPv4 run next to it) and whether the median
/// ratio meets the goal.
pub fn compare_markdown(rows: &[Comparison]) -> String {
    let mut s = String::new();
    s.push_str(COMPARE_HEADER);
    s.push('\n');
    s.push_str("|---|---:|---:|---:|---|---|---:|---:|\n");
    for c in rows {
        let per = |rs: &[Report]| median(rs.iter().map(|r| r.mpps_per_core).collect());
        let bytes = |rs: &[Report]| median(rs.iter().map(|r| r.bytes_per_conn).collect());
        let ratios: Vec<f64> =
            c.v4.iter()
                .zip(&c.v6)
                .map(|(a, b)| b.mpps_per_core / a.mpps_per_core.max(1e-9))
                .collect();
        let ratio = median(ratios.clone());
        let goal = match c.goal {
            Some(g) if ratio >= g => format!("≥ {g:.1}: met"),
            Some(g) => format!("≥ {g:.1}: **missed**"),
            None => "–".into(),
        };
        let _ = writeln!(
            s,
            "| {} vs {} | {:.2} | {:.2} | {:.2} | {} | {} | {:.0} | {:.0} |",
            mode_label(c.mode, c.family),
            c.mode.name(),
            per(&c.v4),
            per(&c.v6),
            ratio,
            ratios
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(", "),
            goal,
            bytes(&c.v4),
            bytes(&c.v6),
        );
    }
    s
}

/// The results as a Markdown table, one row per run.
pub fn markdown(reports: &[Report]) -> String {
    let mut s = String::new();
    s.push_str(HEADER);
    s.push('\n');
    s.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in reports {
        let drops = if r.drops == 0 {
            "0".to_string()
        } else {
            format!(
                "{} ({:.2} %)",
                r.drops,
                r.drops as f64 * 100.0 / r.packets.max(1) as f64
            )
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.1} | {} | {} | {} | {} | {} | {} |",
            mode_label(r.mode, r.family),
            r.scenario.name(),
            count_name(r.flows),
            r.workers,
            r.mpps,
            r.mpps_per_core,
            r.ns_per_packet,
            rate(r.new_conns_per_sec),
            drops,
            rate(r.handovers_per_sec),
            us(r.burst_p50_ns),
            us(r.burst_p99_ns),
            us(r.burst_p999_ns),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn counts() {
        assert_eq!(parse_count("1000"), Ok(1000));
        assert_eq!(parse_count("1k"), Ok(1000));
        assert_eq!(parse_count("10M"), Ok(10_000_000));
        assert!(parse_count("ten").is_err());
        assert!(parse_count("").is_err());
        assert!(parse_count("99999999999999999M").is_err());
        assert_eq!(
            parse_counts("1k,1M,10M"),
            Ok(vec![1000, 1_000_000, 10_000_000])
        );
        for n in [1, 999, 1000, 1500, 1_000_000, 10_000_000, 2_500_000] {
            assert_eq!(parse_count(&count_name(n)), Ok(n));
        }
        assert_eq!(count_name(10_000_000), "10M");
        assert_eq!(count_name(1500), "1500");
    }

    fn parse_scenario_v4(s: &str, flows: u64, workers: usize) -> Result<Scenario, String> {
        parse_scenario(s, flows, workers, Family::V4)
    }

    #[test]
    fn ipv6_scenarios() {
        let sc = parse_scenario("tun:est:1M", 5, 1, Family::V6).unwrap();
        assert_eq!((sc.mode, sc.family), (Mode::Tun, Family::V6));
        assert!(parse_scenario("nat:est", 5, 1, Family::Nat64).is_err());
        assert!(parse_scenario("nat:mixed", 5, 1, Family::V6).is_err());
        let m = matrix(Kind::Established, &[1000], 1, Family::Nat64);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].mode, Mode::Fullnat);
        assert_eq!(matrix(Kind::Established, &[1000], 1, Family::V6).len(), 4);
        assert!(matrix(Kind::Mixed, &[1000], 1, Family::V6).is_empty());
    }

    #[test]
    fn comparison_rows() {
        let r = |mpps: f64, bytes: f64| Report {
            mpps_per_core: mpps,
            bytes_per_conn: bytes,
            ..report(0, 0.0)
        };
        let t = compare_markdown(&[Comparison {
            mode: Mode::Nat,
            family: Family::V6,
            v4: vec![r(10.0, 70.0), r(12.0, 70.0), r(11.0, 70.0)],
            v6: vec![r(7.0, 140.0), r(9.0, 140.0), r(8.5, 140.0)],
            goal: Some(0.8),
        }]);
        let row = t.lines().nth(2).unwrap();
        assert!(
            row.starts_with("| nat ipv6 vs nat | 11.00 | 8.50 | 0.75 | 0.70, 0.75, 0.77 |"),
            "{row}"
        );
        assert!(
            row.contains("**missed**") && row.ends_with("| 70 | 140 |"),
            "{row}"
        );
    }

    #[test]
    fn scenarios() {
        let sc = parse_scenario_v4("nat:mixed:1M:2", 5, 1).unwrap();
        assert_eq!(
            sc,
            Scenario {
                mode: Mode::Nat,
                kind: Kind::Mixed,
                flows: 1_000_000,
                workers: 2,
                family: Family::V4,
            }
        );
        let sc = parse_scenario_v4("DR:est", 5, 3).unwrap();
        assert_eq!((sc.kind, sc.flows, sc.workers), (Kind::Established, 5, 3));
        assert!(parse_scenario_v4("dr:handover:1k:2", 5, 1).is_err());
        assert!(parse_scenario_v4("nat:handover:1k:1", 5, 1).is_err());
        assert!(parse_scenario_v4("nat:handover:1k:2", 5, 1).is_ok());
        assert!(parse_scenario_v4("nat", 5, 1).is_err());
        assert!(parse_scenario_v4("foo:mixed", 5, 1).is_err());
        assert!(parse_scenario_v4("nat:bar", 5, 1).is_err());
        assert!(parse_scenario_v4("nat:mixed:1k:0", 5, 1).is_err());
    }

    #[test]
    fn matrix_leaves_out_what_cannot_run() {
        let m = matrix(Kind::Established, &[1000, 1_000_000], 1, Family::V4);
        assert_eq!(m.len(), 8);
        assert_eq!((m[0].mode, m[0].flows), (Mode::Dr, 1000));
        assert_eq!((m[1].mode, m[1].flows), (Mode::Dr, 1_000_000));
        let h = matrix(Kind::Handover, &[1000], 2, Family::V4);
        assert_eq!(
            h.iter().map(|s| s.mode).collect::<Vec<_>>(),
            vec![Mode::Nat, Mode::Fullnat]
        );
        assert!(matrix(Kind::Handover, &[1000], 1, Family::V4).is_empty());
    }

    fn report(drops: u64, handovers_per_sec: f64) -> Report {
        Report {
            mode: Mode::Fullnat,
            family: Family::V4,
            scenario: Kind::Handover,
            flows: 1_000_000,
            workers: 2,
            seconds: 5.0,
            packets: 10_000,
            forwarded: 9_000,
            mpps: 12.345,
            mpps_per_core: 6.1725,
            ns_per_packet: 162.0,
            new_conns_per_sec: 0.0,
            bytes_per_conn: 100.0,
            drops,
            handovers: 5,
            burst_p50_ns: 2_180.0,
            burst_p99_ns: 5_000.0,
            burst_p999_ns: 41_000.0,
            handovers_per_sec,
            handover_share: 0.25,
            drops_by_reason: BTreeMap::new(),
            setup_seconds: 1.0,
            sync_records_per_sec: 0.0,
            sync_ring_full: 0,
        }
    }

    #[test]
    fn table_rows() {
        let t = markdown(&[report(0, 3_100_000.0), report(150, 0.0)]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], HEADER);
        let cols = |l: &str| l.matches('|').count();
        assert!(lines.iter().all(|l| cols(l) == cols(HEADER)));
        assert_eq!(
            lines[2],
            "| fullnat | handover | 1M | 2 | 12.35 | 6.17 | 162.0 | – | 0 | 3.10 M | 2.2 | 5.0 | 41.0 |"
        );
        assert!(lines[3].contains("| 150 (1.50 %) | – |"), "{}", lines[3]);
    }

    #[test]
    fn rates() {
        assert_eq!(rate(0.0), "–");
        assert_eq!(rate(512.0), "512");
        assert_eq!(rate(310_400.0), "310 k");
        assert_eq!(rate(2_414_000.0), "2.41 M");
    }
}
