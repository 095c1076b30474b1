//! SIGHUP's reload against the daemon's state, in-process over a memory
//! dataplane: all of a new file or none of it.

mod common;
use common::{daemon, run};

fn conf(timeouts: &str, body: &str) -> String {
    format!("global_defs {{\n    lvs_timeouts {timeouts}\n}}\n{body}")
}

const GOOD: &str = "virtual_server 198.18.0.100 80 {\n    lb_algo wrr\n    lb_kind NAT\n    protocol TCP\n    real_server 198.18.1.11 8080 {\n        weight 3\n    }\n}\n";

#[test]
fn a_reload_is_all_or_nothing() {
    let dir = std::env::temp_dir().join(format!("ferrovs-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keepalived.conf");
    let (mut d, _) = daemon();
    d.config_path = path.clone();

    std::fs::write(&path, conf("tcp 600 tcpfin 60 udp 30", GOOD)).unwrap();
    d.reload().unwrap();
    assert_eq!(
        run(&mut d, "-L --timeout").1,
        "Timeout (tcp tcpfin udp): 600 60 30\n"
    );
    let listing = run(&mut d, "-Ln").1;
    assert!(listing.contains("198.18.1.11:8080             Masq    3"));

    // NAT64 (an IPv4 server behind an IPv6 VIP) without IPv4 local
    // addresses: the whole file is refused, with it the new timeouts and
    // the new weight. (A table the dataplane cannot forward by, from a
    // file keepalived accepts, is refused whole the same way: the core's
    // `a_refused_reload_publishes_nothing_and_commits_no_plan`.)
    let bad = GOOD.replace("weight 3", "weight 9")
        + "local_address_group LAG6 {\n    2001:db8:1::100\n}\nvirtual_server 2001:db8::101 80 {\n    lb_algo rr\n    lb_kind FNAT\n    laddr_group_name LAG6\n    protocol TCP\n    real_server 198.18.1.12 80 {\n    }\n}\n";
    std::fs::write(&path, conf("tcp 100 tcpfin 10 udp 5", &bad)).unwrap();
    let e = d.reload().unwrap_err().to_string();
    assert!(e.contains("needs IPv4 local addresses"), "{e}");
    assert!(e.contains("keeping the running configuration"), "{e}");
    assert_eq!(
        run(&mut d, "-L --timeout").1,
        "Timeout (tcp tcpfin udp): 600 60 30\n",
        "the timeouts stay as they were"
    );
    assert_eq!(run(&mut d, "-Ln").1, listing, "the table stays as it was");

    // A file with errors is refused with its location.
    std::fs::write(
        &path,
        "virtual_server 198.18.0.100 80 {\n    lb_algo nosuchsched\n}\n",
    )
    .unwrap();
    let e = d.reload().unwrap_err().to_string();
    assert!(e.contains("keepalived.conf:2:"), "{e}");
    assert_eq!(run(&mut d, "-Ln").1, listing);
    let _ = std::fs::remove_dir_all(&dir);
}
