//! ipvsadm 1.31 output formats, character for character (expected strings
//! written out from ipvsadm.c's printf formats).

use ferrovs_config::ipvs::{Dest, Fwd, Service, ServiceKey, Table};
use ferrovs_config::ipvsadm::list::largenum;
use ferrovs_config::ipvsadm::*;
use ferrovs_config::{Netmask, Persistence, Protocol, SchedFlags, Scheduler};
use pretty_assertions::assert_eq;
use std::net::IpAddr;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn dest(a: &str, port: u16, fwd: Fwd, weight: i32) -> Dest {
    Dest {
        addr: ip(a),
        port,
        fwd,
        weight,
        u_threshold: 0,
        l_threshold: 0,
    }
}

fn tcp(a: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: ip(a),
        port,
    }
}

fn reference_listing() -> Listing {
    let mut svc = Service::new(tcp("10.0.0.1", 80));
    svc.persistence = Some(Persistence {
        timeout: 360,
        granularity: Netmask::V4("255.255.255.0".parse().unwrap()),
    });
    svc.dests = vec![dest("192.168.1.11", 80, Fwd::Route, 1)];
    let mut l = Listing::from_table(
        &Table {
            services: vec![svc],
        },
        4096,
    );
    l.services[0].dests[0].active_conns = 3;
    l.services[0].dests[0].inact_conns = 17;
    l
}

#[test]
fn list_numeric_matches_reference_example() {
    assert_eq!(
        format_list(&reference_listing(), &ListOptions::default()),
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  10.0.0.1:80 wlc persistent 360 mask 255.255.255.0\n  \
         -> 192.168.1.11:80              Route   1      3          17        \n"
    );
}

#[test]
fn largenum_scaling_and_exact() {
    assert_eq!(largenum(0, false), "        0");
    assert_eq!(largenum(99_999_999, false), " 99999999");
    assert_eq!(largenum(100_000_000, false), "  100000K");
    assert_eq!(largenum(999_999_999, false), "  999999K");
    assert_eq!(largenum(1_000_000_000, false), "    1000M");
    assert_eq!(largenum(99_999_999_999, false), "   99999M");
    assert_eq!(largenum(100_000_000_000, false), "     100G");
    assert_eq!(largenum(99_999_999_999_999, false), "   99999G");
    assert_eq!(largenum(100_000_000_000_000, false), "     100T");
    assert_eq!(largenum(12_345_678, true), " 12345678");
    assert_eq!(largenum(123_456_789_012, true), " 123456789012");
}

fn stats_listing() -> Listing {
    let mut l = reference_listing();
    let s = &mut l.services[0];
    s.stats = Stats {
        conns: 1234,
        inpkts: 123_456_789,
        outpkts: 1_500_000_000,
        inbytes: 250_000_000_000,
        outbytes: 7,
        cps: 12,
        inpps: 3400,
        outpps: 3000,
        inbps: 150_000_000,
        outbps: 99,
    };
    s.dests[0].stats = Stats {
        conns: 1,
        inpkts: 2,
        outpkts: 3,
        inbytes: 4,
        outbytes: 5,
        cps: 123_456_789,
        inpps: 7,
        outpps: 8,
        inbps: 100_000_000,
        outbps: 10,
    };
    l
}

#[test]
fn list_stats() {
    let o = ListOptions {
        stats: true,
        ..Default::default()
    };
    assert_eq!(
        format_list(&stats_listing(), &o),
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n  \
         -> RemoteAddress:Port\n\
         TCP  10.0.0.1:80                      1234  123456K    1500M     250G        7\n  \
         -> 192.168.1.11:80                     1        2        3        4        5\n"
    );
    let o = ListOptions {
        stats: true,
        exact: true,
        ..Default::default()
    };
    let out = format_list(&stats_listing(), &o);
    assert!(out.contains(
        "TCP  10.0.0.1:80                      1234 123456789 1500000000 250000000000        7\n"
    ), "{out}");
}

#[test]
fn list_rate() {
    let o = ListOptions {
        rate: true,
        ..Default::default()
    };
    assert_eq!(
        format_list(&stats_listing(), &o),
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n  \
         -> RemoteAddress:Port\n\
         TCP  10.0.0.1:80                        12     3400     3000  150000K       99\n  \
         -> 192.168.1.11:80              123456789        7        8  100000K       10\n"
    );
}

#[test]
fn list_thresholds_and_persistent_conn() {
    let mut l = reference_listing();
    l.services[0].dests[0].dest.u_threshold = 100;
    l.services[0].dests[0].dest.l_threshold = 75;
    l.services[0].dests[0].persist_conns = 4;
    let o = ListOptions {
        thresholds: true,
        ..Default::default()
    };
    assert_eq!(
        format_list(&l, &o),
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n  \
         -> RemoteAddress:Port\n\
         TCP  10.0.0.1:80 wlc persistent 360 mask 255.255.255.0\n  \
         -> 192.168.1.11:80              100        75         3          17        \n"
    );
    let o = ListOptions {
        persistent_conn: true,
        ..Default::default()
    };
    assert_eq!(
        format_list(&l, &o),
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn \n  \
         -> RemoteAddress:Port\n\
         TCP  10.0.0.1:80 wlc persistent 360 mask 255.255.255.0\n  \
         -> 192.168.1.11:80              1         4           3          17        \n"
    );
}

#[test]
fn sorting_follows_libipvs_including_its_wraparound() {
    // ipvs_cmp_services subtracts addresses as 32-bit words into an int:
    // 10.0.0.1 - 192.168.0.1 wraps positive, so 192.168.0.1 lists first.
    let mk = |a: &str, p: u16| {
        let mut s = Service::new(tcp(a, p));
        s.scheduler = Scheduler::Rr;
        s
    };
    let mut fw = Service::new(ServiceKey::Fwmark { mark: 1, v6: false });
    fw.persistence = Some(Persistence {
        timeout: 60,
        granularity: Netmask::V4("255.255.255.255".parse().unwrap()),
    });
    let mut udp = Service::new(ServiceKey::Addr {
        proto: Protocol::Udp,
        addr: ip("10.0.0.1"),
        port: 53,
    });
    udp.scheduler = Scheduler::Rr;
    let mut s1 = mk("10.0.0.1", 80);
    s1.dests = vec![
        dest("10.1.0.2", 80, Fwd::Route, 1),
        dest("10.1.0.1", 81, Fwd::Masq, 1),
        dest("10.1.0.1", 80, Fwd::Masq, 1),
    ];
    let t = Table {
        services: vec![
            fw,
            udp,
            mk("10.0.0.1", 443),
            s1,
            mk("192.168.0.1", 80),
            mk("10.0.0.2", 80),
        ],
    };
    assert_eq!(
        format_rules(&t, false),
        "-A -t 192.168.0.1:80 -s rr\n\
         -A -t 10.0.0.1:80 -s rr\n\
         -a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 1\n\
         -a -t 10.0.0.1:80 -r 10.1.0.1:81 -m -w 1\n\
         -a -t 10.0.0.1:80 -r 10.1.0.2:80 -g -w 1\n\
         -A -t 10.0.0.1:443 -s rr\n\
         -A -t 10.0.0.2:80 -s rr\n\
         -A -u 10.0.0.1:53 -s rr\n\
         -A -f 1 -s wlc -p 60\n"
    );
    // --nosort keeps the order as given
    assert!(format_rules(&t, true).starts_with("-A -f 1 -s wlc -p 60\n-A -u 10.0.0.1:53"));
}

#[test]
fn service_names_flags_fwmark_v6_fullnat() {
    let mut sh = Service::new(tcp("198.18.0.1", 0));
    sh.scheduler = Scheduler::Sh;
    sh.sched_flags = SchedFlags {
        sh_port: true,
        sh_fallback: true,
        ..Default::default()
    };
    sh.persistence = Some(Persistence {
        timeout: 360,
        granularity: Netmask::V4("255.255.255.255".parse().unwrap()),
    });
    sh.dests = vec![dest("198.18.1.1", 0, Fwd::FullNat, 5)];
    let mut v6 = Service::new(tcp("2001:db8::1", 443));
    v6.persistence = Some(Persistence {
        timeout: 100,
        granularity: Netmask::V6(64),
    });
    v6.pe_name = Some("sip".into());
    v6.dests = vec![dest("2001:db8::2", 443, Fwd::Tunnel, 2)];
    let mut fw6 = Service::new(ServiceKey::Fwmark { mark: 9, v6: true });
    fw6.scheduler = Scheduler::Mh;
    fw6.sched_flags = SchedFlags {
        mh_port: true,
        ..Default::default()
    };
    let t = Table {
        services: vec![sh, v6, fw6],
    };
    assert_eq!(
        format_list(&Listing::from_table(&t, 4096), &ListOptions::default()),
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  198.18.0.1:0 sh (sh-fallback,sh-port) persistent 360\n  \
         -> 198.18.1.1:0                 FullNat 5      0          0         \n\
         TCP  [2001:db8::1]:443 wlc persistent 100 mask 64 pe sip\n  \
         -> [2001:db8::2]:443            Tunnel  2      0          0         \n\
         FWM  9 IPv6 mh (mh-port)\n"
    );
    assert_eq!(
        format_rules(&t, false),
        "-A -t 198.18.0.1:0 -s sh -p 360 -b sh-fallback,sh-port\n\
         -a -t 198.18.0.1:0 -r 198.18.1.1:0 --fullnat -w 5\n\
         -A -t [2001:db8::1]:443 -s wlc -p 100 -M 64 --pe sip\n\
         -a -t [2001:db8::1]:443 -r [2001:db8::2]:443 -i -w 2 --tun-type ipip\n\
         -A -f 9 -6 -s mh -b mh-port\n"
    );
}

#[test]
fn connections_and_timeouts() {
    let conns = vec![
        ConnEntry {
            proto: ConnProto::Tcp,
            expires: 899,
            state: "ESTABLISHED".into(),
            client: (ip("198.18.9.1"), 40001),
            virt: (ip("198.18.0.100"), 80),
            dest: (ip("198.18.1.11"), 80),
            pe: None,
        },
        ConnEntry {
            proto: ConnProto::Tcp,
            expires: 3600,
            state: "NONE".into(),
            client: (ip("198.18.9.0"), 0),
            virt: (ip("198.18.0.100"), 80),
            dest: (ip("198.18.1.11"), 80),
            pe: None,
        },
        ConnEntry {
            proto: ConnProto::Udp,
            expires: 5,
            state: "UDP".into(),
            client: (ip("198.18.9.1"), 5353),
            virt: (ip("198.18.0.100"), 53),
            dest: (ip("198.18.1.11"), 53),
            pe: None,
        },
    ];
    assert_eq!(
        format_conns(&conns, false),
        "IPVS connection entries\n\
         pro expire state       source             virtual            destination\n\
         TCP 14:59  ESTABLISHED 198.18.9.1:40001   198.18.0.100:80    198.18.1.11:80\n\
         TCP 60:00  NONE        198.18.9.0:0       198.18.0.100:80    198.18.1.11:80\n\
         UDP 00:05  UDP         198.18.9.1:5353    198.18.0.100:53    198.18.1.11:53\n"
    );
    assert_eq!(
        format_timeout(900, 120, 300),
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
}

#[test]
fn daemons() {
    let d = vec![
        SyncDaemon {
            master: true,
            mcast_ifn: "eth1".into(),
            syncid: 7,
            maxlen: 0,
            group: Some(ip("224.0.0.81")),
            port: 8848,
            ttl: 1,
        },
        SyncDaemon {
            master: false,
            mcast_ifn: "eth1".into(),
            syncid: 7,
            maxlen: 1472,
            group: None,
            port: 0,
            ttl: 0,
        },
    ];
    assert_eq!(
        format_daemons(&d),
        "master sync daemon (mcast=eth1, syncid=7, group=224.0.0.81, port=8848, ttl=1)\n\
         backup sync daemon (mcast=eth1, syncid=7, maxlen=1472)\n"
    );
}

#[test]
fn wrapping_comparison_makes_order_depend_on_input_as_in_ipvsadm() {
    // 198.17.1.60 < 8.8.1.60 < 99.18.0.12 < 198.17.1.60 under libipvs's
    // comparison; glibc's merge sort then keeps an input-dependent order.
    let t = |addrs: &[&str]| {
        let services = addrs.iter().map(|a| Service::new(tcp(a, 80))).collect();
        format_rules(&Table { services }, false)
    };
    assert_eq!(
        t(&["198.17.1.60", "8.8.1.60", "99.18.0.12"]),
        "-A -t 198.17.1.60:80 -s wlc\n-A -t 8.8.1.60:80 -s wlc\n-A -t 99.18.0.12:80 -s wlc\n"
    );
    assert_eq!(
        t(&["99.18.0.12", "198.17.1.60", "8.8.1.60"]),
        "-A -t 99.18.0.12:80 -s wlc\n-A -t 198.17.1.60:80 -s wlc\n-A -t 8.8.1.60:80 -s wlc\n"
    );
}

#[test]
fn synproxy_flag_parsed_and_printed_as_dpvs_does() {
    let Command::AddService(svc) =
        parse_command(&["-A", "-t", "198.18.0.100:80", "-s", "rr", "-j", "enable"]).unwrap()
    else {
        panic!("not an add")
    };
    assert!(svc.synproxy);
    let Command::AddService(off) =
        parse_command(&["-A", "-t", "198.18.0.100:80", "--synproxy", "disable"]).unwrap()
    else {
        panic!("not an add")
    };
    assert!(!off.synproxy);
    assert_eq!(
        parse_command(&["-A", "-t", "198.18.0.100:80", "-j", "on"])
            .unwrap_err()
            .to_string(),
        "synproxy switch must be enable or disable"
    );
    assert_eq!(
        parse_command(&["-A", "-u", "198.18.0.100:53", "-j", "enable"])
            .unwrap_err()
            .to_string(),
        "SYN proxy is only for TCP virtual services"
    );
    assert!(parse_command(&[
        "-a",
        "-t",
        "198.18.0.100:80",
        "-r",
        "198.18.1.1",
        "-j",
        "enable"
    ])
    .is_err());
    let mut s = svc;
    s.dests = vec![dest("198.18.1.1", 80, Fwd::Masq, 1)];
    let t = Table { services: vec![s] };
    assert_eq!(
        format_list(&Listing::from_table(&t, 4096), &ListOptions::default()),
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  198.18.0.100:80 rr synproxy\n  \
         -> 198.18.1.1:80                Masq    1      0          0         \n"
    );
    let rules = format_rules(&t, false);
    assert_eq!(
        rules,
        "-A -t 198.18.0.100:80 -s rr -j enable\n\
         -a -t 198.18.0.100:80 -r 198.18.1.1:80 -m -w 1\n"
    );
    // -S | -R keeps it.
    let back = parse_rules(&rules).unwrap();
    assert!(matches!(&back[0], Command::AddService(s) if s.synproxy));
}

#[test]
fn sync_daemon_commands_parse_with_ipvsadm_checks() {
    use ferrovs_config::ipvsadm::{parse_command, Command, DaemonOptions};
    let c = parse_command(&[
        "--start-daemon",
        "master",
        "--mcast-interface",
        "eth0",
        "--syncid",
        "7",
        "--sync-maxlen",
        "1200",
        "--mcast-group",
        "239.1.1.1",
        "--mcast-port",
        "9000",
        "--mcast-ttl",
        "2",
    ])
    .unwrap();
    assert_eq!(
        c,
        Command::StartDaemon(DaemonOptions {
            master: true,
            mcast_ifn: Some("eth0".into()),
            syncid: Some(7),
            maxlen: Some(1200),
            group: Some("239.1.1.1".parse().unwrap()),
            port: Some(9000),
            ttl: Some(2),
        })
    );
    assert_eq!(
        parse_command(&["--stop-daemon", "backup"]).unwrap(),
        Command::StopDaemon { master: false }
    );
    let err = |a: &[&str]| parse_command(a).unwrap_err().to_string();
    assert_eq!(
        err(&["--start-daemon", "boss"]),
        "illegal start-daemon parameter specified"
    );
    assert_eq!(
        err(&["--stop-daemon", "x"]),
        "illegal stop_daemon parameter specified"
    );
    assert_eq!(
        err(&["--start-daemon", "master", "--syncid", "256"]),
        "illegal syncid specified"
    );
    assert_eq!(
        err(&["--start-daemon", "master", "--mcast-group", "198.18.0.1"]),
        "illegal mcast-group specified"
    );
    assert_eq!(
        err(&["--start-daemon", "master", "--mcast-port", "0"]),
        "illegal mcast-port specified"
    );
    assert_eq!(
        err(&["--start-daemon", "master", "--mcast-ttl", "300"]),
        "illegal mcast-ttl specified"
    );
    assert_eq!(
        err(&["--start-daemon", "master", "--sync-maxlen", "65508"]),
        "illegal sync-maxlen specified"
    );
    assert_eq!(
        err(&[
            "--start-daemon",
            "master",
            "--mcast-interface",
            "a-name-far-too-long"
        ]),
        "illegal mcast-interface specified"
    );
    assert_eq!(
        err(&["-L", "--syncid", "3"]),
        "Illegal 'syncid' option without --start-daemon"
    );
    assert_eq!(
        err(&["--stop-daemon", "master", "--syncid", "3"]),
        "Illegal 'syncid' option with the 'stop-daemon' command"
    );
}
