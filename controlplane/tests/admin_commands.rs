//! `ferrovsadm` commands against the daemon's state, in-process over a
//! memory dataplane: ipvsadm's output formats and error messages.

mod common;
use common::{daemon, run};
use ferrovs_controlplane::northbound::ctl::CtlRequest;
use ferrovs_dataplane::port::memory::MemPort;
use ferrovs_dataplane::worker::Worker;
use std::sync::Arc;

/// Runs `cmds` while `w` polls on a thread of its own (the worker answers
/// connection listings between bursts); their standard output.
fn run_polling(
    d: &mut ferrovs_controlplane::daemon::Daemon,
    mut w: Worker<MemPort>,
    cmds: &[&str],
) -> Vec<String> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let h = std::thread::spawn(move || {
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            w.poll(1_000_000);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    });
    let out = cmds.iter().map(|c| run(d, c).1).collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    h.join().unwrap();
    out
}

#[test]
fn add_list_edit_delete() {
    let (mut d, _) = daemon();
    assert_eq!(run(&mut d, "-A -t 198.18.0.100:80 -s wrr -p 300").0, 0);
    assert_eq!(
        run(&mut d, "-a -t 198.18.0.100:80 -r 198.18.1.11:8080 -m -w 3").0,
        0
    );
    assert_eq!(
        run(&mut d, "-a -t 198.18.0.100:80 -r 198.18.1.12:8080 -m -w 1").0,
        0
    );
    let (code, out, _) = run(&mut d, "-Ln");
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  198.18.0.100:80 wrr persistent 300\n  \
         -> 198.18.1.11:8080             Masq    3      0          0         \n  \
         -> 198.18.1.12:8080             Masq    1      0          0         \n"
    );
    assert_eq!(
        run(&mut d, "-e -t 198.18.0.100:80 -r 198.18.1.12:8080 -m -w 0").0,
        0
    );
    assert!(run(&mut d, "-Ln")
        .1
        .contains("198.18.1.12:8080             Masq    0"));
    assert_eq!(
        run(&mut d, "-Sn").1,
        "-A -t 198.18.0.100:80 -s wrr -p 300\n\
         -a -t 198.18.0.100:80 -r 198.18.1.11:8080 -m -w 3\n\
         -a -t 198.18.0.100:80 -r 198.18.1.12:8080 -m -w 0\n"
    );
    assert_eq!(
        run(&mut d, "-d -t 198.18.0.100:80 -r 198.18.1.12:8080").0,
        0
    );
    assert!(!run(&mut d, "-Ln").1.contains("198.18.1.12"));
    assert_eq!(run(&mut d, "-D -t 198.18.0.100:80").0, 0);
    assert_eq!(run(&mut d, "-Ln").1.lines().count(), 3);
}

#[test]
fn errors_read_like_ipvsadm() {
    let (mut d, _) = daemon();
    let (code, _, err) = run(&mut d, "-a -t 198.18.0.100:80 -r 198.18.1.11:80");
    assert_eq!((code, err.as_str()), (1, "Service not defined\n"));
    run(&mut d, "-A -t 198.18.0.100:80");
    let (code, _, err) = run(&mut d, "-A -t 198.18.0.100:80");
    assert_eq!((code, err.as_str()), (1, "Service already exists\n"));
    let (code, _, err) = run(&mut d, "-d -t 198.18.0.100:80 -r 198.18.1.99:80");
    assert_eq!((code, err.as_str()), (1, "No such destination\n"));
    let (code, _, _) = run(&mut d, "-A -t nonsense");
    assert_eq!(code, 2);
    let (code, _, err) = run(&mut d, "-a -t 198.18.0.100:80 -r 198.18.1.11:80 --fullnat");
    assert_eq!(code, 1, "FULLNAT without local addresses is refused: {err}");
    assert!(!run(&mut d, "-Ln").1.contains("198.18.1.11"));
}

#[test]
fn timeouts_restore_zero_clear() {
    let (mut d, shared) = daemon();
    assert_eq!(
        run(&mut d, "-L --timeout").1,
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
    assert_eq!(run(&mut d, "--set 600 0 60").0, 0);
    assert_eq!(
        run(&mut d, "-L --timeout").1,
        "Timeout (tcp tcpfin udp): 600 120 60\n"
    );
    assert_eq!(
        shared.snapshot.load().timeouts.get(),
        (600, 120, 60),
        "published to the workers"
    );

    let rules = "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.1.11:80 -g -w 1\n-A -u 198.18.0.100:53 -s wlc\n";
    let r = d.execute(&CtlRequest {
        argv: vec!["-R".into()],
        stdin: Some(rules.into()),
        op: None,
    });
    assert_eq!(r.code, 0, "{}", r.stderr);
    let saved = run(&mut d, "-Sn").1;
    assert!(saved.contains(
        "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.1.11:80 -g -w 1\n"
    ));
    assert!(saved.contains("-A -u 198.18.0.100:53 -s wlc\n"));
    assert_eq!(run(&mut d, "-Z").0, 0);
    assert_eq!(run(&mut d, "-Z -t 198.18.0.200:80").2, "No such service\n");
    let stats = run(&mut d, "-Ln --stats").1;
    assert!(
        stats.starts_with("IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port")
    );
    assert!(run(&mut d, "-Ln --rate").1.contains("CPS"));
    assert_eq!(run(&mut d, "-C").0, 0);
    assert_eq!(run(&mut d, "-Sn").1, "");
    assert!(shared.snapshot.load().services.is_empty());
}

#[test]
fn connections_are_listed_from_the_workers() {
    let (mut d, shared) = daemon();
    run(&mut d, "-A -t 198.18.0.100:80 -s rr -p 60");
    run(&mut d, "-a -t 198.18.0.100:80 -r 198.18.1.11:80 -g");
    let mut w = Worker::new(
        0,
        shared.clone(),
        vec![
            MemPort::new([2, 0, 0, 0, 0, 1]),
            MemPort::new([2, 0, 0, 0, 1, 1]),
        ],
        64,
        1_000_000,
    );
    // A SYN from the client (the next hop ARP is left pending: the
    // connection exists all the same).
    let mut f = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
        .ipv4([198, 18, 0, 2], [198, 18, 0, 100], 64)
        .tcp(40000, 80, 1, 1000)
        .syn()
        .write(&mut f, &[])
        .unwrap();
    w.ports_mut()[0].inject(&f);
    w.poll(1_000_000);
    // The worker answers requests between bursts: run it while listing.
    let out = run_polling(&mut d, w, &["-Lnc"]).remove(0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "IPVS connection entries");
    assert_eq!(
        lines[1],
        "pro expire state       source             virtual            destination"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(
            "TCP 01:00  SYN_RECV    198.18.0.2:40000   198.18.0.100:80    198.18.1.11:80"
        )),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("NONE") && l.contains("198.18.0.2:0")),
        "template listed: {out}"
    );
}

#[test]
fn ipv6_services_are_listed_as_ipvsadm_lists_them_and_forwarded() {
    let (mut d, shared) = daemon();
    let r = run(&mut d, "-A -t [2001:2::100]:80 -s rr");
    assert_eq!(r.0, 0, "{r:?}");
    assert_eq!(
        run(
            &mut d,
            "-a -t [2001:2::100]:80 -r [2001:2:0:1::11]:8080 -m -w 2"
        )
        .0,
        0
    );
    let (code, out, _) = run(&mut d, "-Ln");
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  [2001:2::100]:80 rr\n  \
         -> [2001:2:0:1::11]:8080        Masq    2      0          0         \n"
    );
    assert_eq!(shared.snapshot.load().services6.len(), 1);
    // An IPv4 server behind an IPv6 VIP is NAT64, FULLNAT's alone.
    let (code, _, err) = run(&mut d, "-a -t [2001:2::100]:80 -r 198.18.1.12:80 -m");
    assert_eq!(
        (code, err.as_str()),
        (
            2,
            "Different address family is allowed only for tunneling servers\n"
        )
    );
    // NAT64 takes IPv4 local addresses (laddr_group_name), none here.
    let (code, _, err) = run(&mut d, "-a -t [2001:2::100]:80 -r 198.18.1.12:80 --fullnat");
    assert_eq!(code, 1);
    assert!(err.contains("local address"), "{err}");

    // A SYN from an IPv6 client is scheduled: the connection is listed.
    let mut w = Worker::new(
        0,
        shared.clone(),
        vec![
            MemPort::new([2, 0, 0, 0, 0, 1]),
            MemPort::new([2, 0, 0, 0, 1, 1]),
        ],
        64,
        1_000_000,
    );
    let mut f = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
        .ipv6(
            "2001:2::2".parse::<std::net::Ipv6Addr>().unwrap().octets(),
            "2001:2::100"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
            64,
        )
        .tcp(40000, 80, 1, 1000)
        .syn()
        .write(&mut f, &[])
        .unwrap();
    w.ports_mut()[0].inject(&f);
    w.poll(1_000_000);
    let st = &shared.snapshot.load().services6[0];
    assert_eq!(
        st.shared.stats.totals().conns,
        1,
        "one connection scheduled"
    );
    // Listed as ipvsadm -Lnc lists IPv6 connections.
    let [out, one, other]: [String; 3] = run_polling(
        &mut d,
        w,
        &[
            "-Lnc",
            "-Lnc -t [2001:2::100]:80",
            "-Lnc -t [2001:2::100]:81",
        ],
    )
    .try_into()
    .unwrap();
    assert!(
        out.lines().any(|l| l.starts_with("TCP ")
            && l.contains("SYN_RECV")
            && l.contains("[2001:2::2]:40000")
            && l.contains("[2001:2::100]:80")
            && l.contains("[2001:2:0:1::11]:8080")),
        "{out}"
    );
    assert_eq!(one, out, "the service's own");
    assert_eq!(other.lines().count(), 2, "another service's: none\n{other}");
}
