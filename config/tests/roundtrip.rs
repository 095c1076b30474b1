//! The ipvsadm rule language: rules → table → `-Sn` → parse → identical
//! table, for hand-written rules (short and long options, IPv6, fwmark,
//! edits and deletes) and for every corpus configuration.

use ferrovs_config::ipvs::{initial_table, Fwd, ServiceKey, Table};
use ferrovs_config::ipvsadm::list::sort_table;
use ferrovs_config::ipvsadm::*;
use ferrovs_config::{load_file, Netmask, Protocol};
use pretty_assertions::assert_eq;
use std::path::Path;

const RULES: &str = "\
# a mix of what people type and what ipvsadm -S writes
ipvsadm -A -t 198.18.0.1:80 -s wrr
-a -t 198.18.0.1:80 -r 198.18.1.1:80 -g -w 3
-a -t 198.18.0.1:80 -r 198.18.1.2 -g -w 0
--add-server --tcp-service 198.18.0.1:80 --real-server 198.18.1.3:80 --gatewaying --weight=2
-A -t 198.18.0.1:443 -s wlc -p -M 255.255.255.0
-a -t 198.18.0.1:443 -r 198.18.1.1:8443 -m -w 1 -x 100 -y 50
-a -t 198.18.0.1:443 -r 198.18.1.2:8443 -m
--add-service --udp-service 198.18.0.2:53 --scheduler rr --ops
-a -u 198.18.0.2:53 -r 198.18.1.1:5353 -m -w 4
-A -u 198.18.0.2:1812 -s sh -b sh-port,sh-fallback -p 60
-a -u 198.18.0.2:1812 -r 198.18.1.9 -i -w 1
-A -f 42 -s lc -p 1800
-a -f 42 -r 198.18.1.4:0 -g -w 1
-A -f 43 -6 -s rr
-a -f 43 -6 -r [2001:db8::4]:0 -g -w 1
-A -t [2001:db8::1]:80 -s mh -b mh-port -p 300 -M 64
-a -t [2001:db8::1]:80 -r [2001:db8::11]:80 -g -w 2
-a -t [2001:db8::1]:80 -r [2001:db8::12]:8080 -m -w 2
-A -t 198.18.0.3:80 -s sed
-a -t 198.18.0.3:80 -r 198.18.1.5:80 --fullnat -w 7
-A -t 198.18.0.9:80 -s rr
-a -t 198.18.0.9:80 -r 198.18.1.5:80 -g
-E -t 198.18.0.3:80 -s nq
-e -t 198.18.0.1:80 -r 198.18.1.2:80 -g -w 5
-d -t 198.18.0.1:80 -r 198.18.1.3:80
-D -t 198.18.0.9:80
-A -t 198.18.0.10:0 -s rr -p 7200
-a -t 198.18.0.10:0 -r 198.18.1.6 -g -w 1
";

/// -Sn does not carry thresholds (ipvsadm drops them too).
fn without_thresholds(mut t: Table) -> Table {
    for s in &mut t.services {
        for d in &mut s.dests {
            d.u_threshold = 0;
            d.l_threshold = 0;
        }
    }
    t
}

#[test]
fn hand_written_rules_round_trip() {
    let t1 = table_from_rules(RULES).unwrap();
    // What the commands did.
    assert_eq!(t1.services.len(), 9);
    let s = t1
        .find(&ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "198.18.0.1".parse().unwrap(),
            port: 80,
        })
        .unwrap();
    assert_eq!(s.dests.len(), 2);
    assert_eq!(
        (s.dests[1].port, s.dests[1].weight),
        (80, 5),
        "-r without port takes the service port; -e changed weight"
    );
    let s443 = t1
        .find(&ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "198.18.0.1".parse().unwrap(),
            port: 443,
        })
        .unwrap();
    let p = s443.persistence.unwrap();
    assert_eq!(p.timeout, 360, "bare -p");
    assert_eq!(p.granularity, Netmask::V4("255.255.255.0".parse().unwrap()));
    assert_eq!(
        (s443.dests[0].u_threshold, s443.dests[0].l_threshold),
        (100, 50)
    );
    assert_eq!(s443.dests[1].weight, 1, "default weight");
    let radius = t1
        .find(&ServiceKey::Addr {
            proto: Protocol::Udp,
            addr: "198.18.0.2".parse().unwrap(),
            port: 1812,
        })
        .unwrap();
    assert_eq!(radius.dests[0].port, 1812, "TUN forces the service port");
    assert!(radius.sched_flags.sh_port && radius.sched_flags.sh_fallback);
    let full = t1
        .find(&ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "198.18.0.3".parse().unwrap(),
            port: 80,
        })
        .unwrap();
    assert_eq!(
        (full.scheduler.as_str(), full.dests[0].fwd),
        ("nq", Fwd::FullNat)
    );

    let saved = format_rules(&t1, false);
    let t2 = table_from_rules(&saved).unwrap();
    let mut expect = without_thresholds(t1);
    sort_table(&mut expect);
    assert_eq!(t2, expect);
    assert_eq!(format_rules(&t2, false), saved, "-Sn is a fixpoint");
    assert_eq!(
        saved,
        "-A -t 198.18.0.1:80 -s wrr\n\
         -a -t 198.18.0.1:80 -r 198.18.1.1:80 -g -w 3\n\
         -a -t 198.18.0.1:80 -r 198.18.1.2:80 -g -w 5\n\
         -A -t 198.18.0.1:443 -s wlc -p 360 -M 255.255.255.0\n\
         -a -t 198.18.0.1:443 -r 198.18.1.1:8443 -m -w 1\n\
         -a -t 198.18.0.1:443 -r 198.18.1.2:8443 -m -w 1\n\
         -A -t 198.18.0.3:80 -s nq\n\
         -a -t 198.18.0.3:80 -r 198.18.1.5:80 --fullnat -w 7\n\
         -A -t 198.18.0.10:0 -s rr -p 7200\n\
         -a -t 198.18.0.10:0 -r 198.18.1.6:0 -g -w 1\n\
         -A -u 198.18.0.2:53 -s rr -o\n\
         -a -u 198.18.0.2:53 -r 198.18.1.1:5353 -m -w 4\n\
         -A -u 198.18.0.2:1812 -s sh -p 60 -b sh-fallback,sh-port\n\
         -a -u 198.18.0.2:1812 -r 198.18.1.9:1812 -i -w 1 --tun-type ipip\n\
         -A -t [2001:db8::1]:80 -s mh -p 300 -M 64 -b mh-port\n\
         -a -t [2001:db8::1]:80 -r [2001:db8::11]:80 -g -w 2\n\
         -a -t [2001:db8::1]:80 -r [2001:db8::12]:8080 -m -w 2\n\
         -A -f 42 -s lc -p 1800\n\
         -a -f 42 -r 198.18.1.4:0 -g -w 1\n\
         -A -f 43 -6 -s rr\n\
         -a -f 43 -6 -r [2001:db8::4]:0 -g -w 1\n"
    );
}

#[test]
fn corpus_tables_round_trip() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "conf") {
            continue;
        }
        let t = initial_table(&load_file(&p).config);
        let back = table_from_rules(&format_rules(&t, false)).unwrap();
        let mut expect = without_thresholds(t);
        sort_table(&mut expect);
        assert_eq!(back, expect, "{}", p.display());
        n += 1;
    }
    assert!(n >= 10);
}

fn err(rules: &str) -> String {
    table_from_rules(rules).unwrap_err().to_string()
}

#[test]
fn rule_errors_use_ipvsadm_messages() {
    assert_eq!(
        err("-a -t 198.18.0.1:80 -r 198.18.1.1:80"),
        "line 1: Service not defined"
    );
    assert_eq!(
        err("-A -t 198.18.0.1:80\n-A -t 198.18.0.1:80 -s rr"),
        "line 2: Service already exists"
    );
    assert_eq!(
        err("-A -t 198.18.0.1:80\n-a -t 198.18.0.1:80 -r 198.18.1.1\n-a -t 198.18.0.1:80 -r 198.18.1.1:80"),
        "line 3: Destination already exists"
    );
    assert_eq!(err("-D -t 198.18.0.1:80"), "line 1: No such service");
    assert_eq!(
        err("-A -t 198.18.0.1:80\n\n-d -t 198.18.0.1:80 -r 198.18.1.1"),
        "line 3: No such destination"
    );
    assert_eq!(
        err("-A -t 198.18.0.1"),
        "line 1: Zero port specified for non-persistent service"
    );
    assert_eq!(
        err("-A -t 198.18.0.1:80 -o"),
        "line 1: One-Packet Scheduling is only for UDP virtual services"
    );
    assert_eq!(
        err("-A -t 198.18.0.1:80 -s rr -b sh-port"),
        "line 1: incompatible scheduler flag `sh-port'"
    );
    assert_eq!(
        err("-A -t 198.18.0.1:80 -b nope"),
        "line 1: invalid scheduler flag `nope'"
    );
    assert_eq!(
        err("-A -t 198.18.0.1:80 -s xyz"),
        "line 1: Scheduler or persistence engine not found"
    );
    assert_eq!(
        err("-A -t 198.18.0.1:80 -p 0"),
        "line 1: invalid timeout value `0' specified"
    );
    assert_eq!(
        err("-A -t 198.18.0.1:80 -M 255.255.0.0.1 -p"),
        "line 1: illegal virtual server persistent mask specified"
    );
    assert_eq!(
        err("-A -t 80"),
        "line 1: illegal virtual server address[:port] specified"
    );
    assert_eq!(
        err("-A -t 198.18.0.1:80\n-a -t 198.18.0.1:80 -r x:80"),
        "line 2: illegal real server address[:port] specified"
    );
    assert_eq!(
        err("-A -t 198.18.0.1:80\n-a -t 198.18.0.1:80 -r 198.18.1.1 -w 65536"),
        "line 2: illegal weight specified"
    );
    assert_eq!(
        err("-A -t 198.18.0.1:80 -r 198.18.1.1"),
        "line 1: Illegal 'real-server' option with the 'add-service' command"
    );
    assert_eq!(
        err("-a -t 198.18.0.1:80"),
        "line 1: You need to supply the 'real-server' option for the 'add-server' command"
    );
    assert_eq!(
        err("-A -s rr"),
        "line 1: You need to supply the 'service-address' option for the 'add-service' command"
    );
    assert_eq!(
        err("-A -E -t 198.18.0.1:80"),
        "line 1: multiple commands specified"
    );
    assert_eq!(err("-A -t 198.18.0.1:80 -q"), "line 1: -q: unknown option");
    assert_eq!(
        err("-A -t [2001:db8::1]:80\n-a -t [2001:db8::1]:80 -r 198.18.1.1 -g"),
        "line 2: Different address family is allowed only for tunneling servers"
    );
    assert_eq!(err("-A -t 198.18.0.1:80 -6"), "line 1: -6 used before -f");
    // The rest of the typed errors print what the string errors printed.
    for (rules, text) in [
        (
            "-A -t 198.18.0.1:80 -s rr -s wrr",
            "multiple 'scheduler' options specified",
        ),
        ("-A -t 198.18.0.1:80 --weight", "--weight: missing argument"),
        ("-A -t 198.18.0.1:80 -s", "-s: missing argument"),
        (
            "-A -t 198.18.0.1:80 --numeric=1",
            "--numeric=1: option does not take an argument",
        ),
        ("-A -t 198.18.0.1:80 --bogus", "--bogus: unknown option"),
        ("-t 198.18.0.1:80", "no command specified"),
        ("-A -t 198.18.0.1:80 extra", "unexpected argument extra"),
        ("-A -f 0", "invalid fwmark value `0' specified"),
        (
            "-A -t [2001:db8::1]:80 -p -M 129",
            "illegal ipv6 netmask specified",
        ),
        (
            "-A -t 198.18.0.1:80\n-a -t 198.18.0.1:80 -r 198.18.1.1 -x -1",
            "illegal u_threshold specified",
        ),
        (
            "-A -t 198.18.0.1:80\n-a -t 198.18.0.1:80 -r 198.18.1.1 -y -1",
            "illegal l_threshold specified",
        ),
        (
            "-A -t 198.18.0.1:80\n-a -t 198.18.0.1:80 -r 198.18.1.1 -m --tun-type ipip",
            "Tunnel options conflict with forward method",
        ),
        (
            "-A -t 198.18.0.1:80\n-a -t 198.18.0.1:80 -r 198.18.1.1 -i --tun-type gre",
            "tunnel type `gre' is not supported (only ipip)",
        ),
        (
            "-A -u 198.18.0.1:53 -j enable",
            "SYN proxy is only for TCP virtual services",
        ),
    ] {
        let e = err(rules);
        assert_eq!(e.split_once(": ").map(|x| x.1), Some(text), "{rules}");
    }
    // And they are typed: a caller matches on what went wrong.
    assert_eq!(
        table_from_rules("-D -t 198.18.0.1:80").unwrap_err().problem,
        RuleProblem::Table(TableError::NoSuchService)
    );
    assert_eq!(
        parse_command(&["-A", "-t", "198.18.0.1:80", "-o"]).unwrap_err(),
        ParseError::OpsNotUdp
    );
}

#[test]
fn list_and_other_commands_parse() {
    assert_eq!(
        parse_command(&["-Ln", "--stats", "--exact"]).unwrap(),
        Command::List {
            service: None,
            options: ListOptions {
                stats: true,
                exact: true,
                ..Default::default()
            },
            connections: false,
            timeout: false,
            daemon: false,
        }
    );
    assert!(matches!(
        parse_command(&["-Lnc"]).unwrap(),
        Command::List {
            connections: true,
            ..
        }
    ));
    assert!(matches!(
        parse_command(&["-L", "--timeout"]).unwrap(),
        Command::List { timeout: true, .. }
    ));
    assert_eq!(
        parse_command(&["-Sn"]).unwrap(),
        Command::Save { nosort: false }
    );
    assert_eq!(parse_command(&["-C"]).unwrap(), Command::Clear);
    assert_eq!(parse_command(&["-Z"]).unwrap(), Command::Zero(None));
    assert_eq!(
        parse_command(&["--set", "900", "120", "0"]).unwrap(),
        Command::SetTimeout {
            tcp: 900,
            tcpfin: 120,
            udp: 0
        }
    );
    assert_eq!(
        parse_command(&["--set", "900"]).unwrap_err().to_string(),
        "--set option requires 3 timeout values"
    );
    assert_eq!(
        parse_command(&["-Lnc", "--stats"]).unwrap_err().to_string(),
        "options conflicts in the list command"
    );
}

#[test]
fn flag3_on_sh_still_round_trips() {
    let t = table_from_rules("-A -t 198.18.0.1:80 -s sh -b flag-3,sh-port").unwrap();
    let saved = format_rules(&t, false);
    assert_eq!(saved, "-A -t 198.18.0.1:80 -s sh -b sh-port,flag-3\n");
    assert_eq!(table_from_rules(&saved).unwrap(), t);
}

#[test]
fn only_the_sip_persistence_engine_exists() {
    assert_eq!(
        err("-A -u 198.18.0.1:5060 -p 60 --pe nope"),
        "line 1: Scheduler or persistence engine not found"
    );
    let t = table_from_rules("-A -u 198.18.0.1:5060 -s rr -p 60 --pe sip").unwrap();
    assert_eq!(
        format_rules(&t, false),
        "-A -u 198.18.0.1:5060 -s rr -p 60 --pe sip\n"
    );
}

#[test]
fn group_servers_that_collapse_to_one_destination_are_listed_once() {
    let l = ferrovs_config::load_str(
        "k.conf",
        "virtual_server_group G {\n 198.18.0.1 80\n}\nvirtual_server group G {\n lb_algo rr\n lb_kind DR\n protocol TCP\n real_server 198.18.1.1 80\n real_server 198.18.1.1 0\n}\n",
    );
    assert!(!l.diagnostics.has_errors());
    let rules = format_rules(&initial_table(&l.config), false);
    assert_eq!(
        rules,
        "-A -t 198.18.0.1:80 -s rr\n-a -t 198.18.0.1:80 -r 198.18.1.1:80 -g -w 1\n"
    );
    assert!(table_from_rules(&rules).is_ok());
}
