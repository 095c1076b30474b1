//! The decision logic replayed on event sequences, without sockets.

use super::*;
use crate::core::TableChange;

fn load(text: &str) -> Config {
    let l = ferrovs_config::load_str("t.conf", text);
    assert!(!l.diagnostics.has_errors(), "{:?}", l.diagnostics);
    l.config
}

fn alerts(on: bool) -> Alerts {
    Alerts {
        enabled: on,
        router_id: "lb1".into(),
    }
}

/// A virtual server with `rs` real servers (text inside their blocks) and
/// `extra` lines inside the virtual_server block.
fn vs_conf(extra: &str, rs: &[(&str, &str)]) -> String {
    let mut s = String::from(
        "virtual_server 198.18.0.100 80 {\n delay_loop 10\n lb_kind NAT\n protocol TCP\n",
    );
    s.push_str(extra);
    s.push('\n');
    for (addr, body) in rs {
        s.push_str(&format!(" real_server {addr} 80 {{\n{body}\n }}\n"));
    }
    s.push_str("}\n");
    s
}

const TCP: &str = "  TCP_CHECK {\n   connect_timeout 2\n  }";

struct Bench {
    core: HealthCore,
    now: SystemTime,
}

impl Bench {
    fn new(text: &str) -> (Bench, Effects) {
        Self::with_alerts(text, false)
    }
    fn with_alerts(text: &str, mail: bool) -> (Bench, Effects) {
        let cfg = load(text);
        let (core, fx) = HealthCore::new(&cfg, alerts(mail));
        assert_eq!(
            core.table(),
            initial_table(&cfg),
            "start state must match initial_table"
        );
        (
            Bench {
                core,
                now: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            },
            fx,
        )
    }
    fn id(rs: usize, checker: usize) -> CheckerId {
        CheckerId { vs: 0, rs, checker }
    }
    fn report(
        &mut self,
        rs: usize,
        checker: usize,
        p: Probe,
    ) -> (Vec<TableChange>, Effects, Duration) {
        self.now += Duration::from_secs(1);
        let out = self
            .core
            .report(
                Self::id(rs, checker),
                &p,
                self.now,
                Duration::from_millis(3),
            )
            .expect("known checker");
        // The view and the changes never disagree.
        out
    }
    fn up(&mut self, rs: usize) -> (Vec<TableChange>, Effects, Duration) {
        self.report(rs, 0, Probe::up())
    }
    fn down(&mut self, rs: usize) -> (Vec<TableChange>, Effects, Duration) {
        self.report(rs, 0, Probe::down("failed"))
    }
    fn weights(&self) -> Vec<(String, i32)> {
        self.core.table().services[0]
            .dests
            .iter()
            .map(|d| (d.addr.to_string(), d.weight))
            .collect()
    }
}

fn key() -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: "198.18.0.100".parse().unwrap(),
        port: 80,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn scripts(fx: &Effects) -> Vec<(&'static str, String)> {
    fx.notifications
        .iter()
        .filter_map(|n| match n {
            Notification::Script { script, what } => Some((*what, script.command_line())),
            _ => None,
        })
        .collect()
}

#[test]
fn start_state_matches_initial_table_for_many_configurations() {
    let confs = [
        vs_conf("", &[("198.18.1.11", TCP), ("198.18.1.12", TCP)]),
        vs_conf(" alpha", &[("198.18.1.11", TCP), ("198.18.1.12", TCP)]),
        vs_conf(" alpha\n inhibit_on_failure", &[("198.18.1.11", TCP), ("198.18.1.12", "")]),
        vs_conf(" alpha\n sorry_server 198.18.1.99 80", &[("198.18.1.11", TCP)]),
        vs_conf(
            " alpha\n inhibit_on_failure\n sorry_server 198.18.1.99 80\n sorry_server_inhibit",
            &[("198.18.1.11", TCP), ("198.18.1.12", TCP)],
        ),
        vs_conf(" sorry_server 198.18.1.99 80\n sorry_server_inhibit", &[("198.18.1.11", TCP)]),
        vs_conf(" quorum 3\n sorry_server 198.18.1.99 80", &[("198.18.1.11", TCP), ("198.18.1.12", TCP)]),
        vs_conf(" quorum 2\n hysteresis 1", &[("198.18.1.11", TCP), ("198.18.1.12", TCP)]),
        // the sorry server is one of the real servers
        vs_conf(
            " alpha\n inhibit_on_failure\n sorry_server 198.18.1.11 80",
            &[("198.18.1.11", TCP), ("198.18.1.12", TCP)],
        ),
        "virtual_server_group G {\n 198.18.0.100-101 80\n fwmark 7\n}\nvirtual_server group G {\n lb_kind DR\n protocol TCP\n real_server 198.18.1.11 80 {\n TCP_CHECK {\n }\n }\n real_server 198.18.1.12 80 {\n }\n}\n".to_string(),
        "virtual_server fwmark 9 {\n lb_kind DR\n alpha\n inhibit_on_failure\n real_server 198.18.1.11 80 {\n TCP_CHECK {\n connect_port 80\n }\n }\n}\n".to_string(),
    ];
    for c in confs {
        Bench::new(&c);
    }
}

#[test]
fn failed_server_is_removed_after_its_retries_and_added_back() {
    let conf = vs_conf(
        "",
        &[
            (
                "198.18.1.11",
                "  TCP_CHECK {\n   retry 2\n   delay_before_retry 1\n  }",
            ),
            ("198.18.1.12", TCP),
        ],
    );
    let (mut b, _) = Bench::new(&conf);
    // First result: the server was never checked, so it is reported.
    let (cmds, fx, d) = b.up(0);
    assert!(cmds.is_empty());
    assert_eq!(
        fx.logs,
        vec!["TCP connection to [198.18.1.11]:tcp:80 success."]
    );
    assert_eq!(d, Duration::from_secs(10));
    // Two failures are retried after delay_before_retry...
    for _ in 0..2 {
        let (cmds, fx, d) = b.down(0);
        assert!(cmds.is_empty());
        assert_eq!(
            fx.logs,
            vec!["TCP connection to [198.18.1.11]:tcp:80 failed."]
        );
        assert_eq!(d, Duration::from_secs(1));
    }
    // ...the third removes it.
    let (cmds, fx, d) = b.down(0);
    assert_eq!(
        cmds,
        vec![TableChange::DelDest(key(), ip("198.18.1.11"), 80)]
    );
    assert_eq!(
        fx.logs,
        vec![
            "TCP connection to [198.18.1.11]:tcp:80 failed.",
            "TCP_CHECK on service [198.18.1.11]:tcp:80 failed after 2 retries.",
            "Removing service [198.18.1.11]:tcp:80 from VS [198.18.0.100]:tcp:80",
        ]
    );
    assert_eq!(
        fx.changes,
        vec![Change::RealServer {
            vs: "[198.18.0.100]:tcp:80".into(),
            rs: "[198.18.1.11]:tcp:80".into(),
            alive: false
        }]
    );
    assert_eq!(d, Duration::from_secs(10));
    // Down: further failures are not retried and change nothing.
    let (cmds, fx, d) = b.down(0);
    assert!(cmds.is_empty() && fx.logs.is_empty());
    assert_eq!(d, Duration::from_secs(10));
    // One success brings it back with its weight.
    let (cmds, fx, _) = b.up(0);
    assert_eq!(cmds.len(), 1);
    assert!(
        matches!(&cmds[0], TableChange::AddDest(k, d) if *k == key() && d.addr == ip("198.18.1.11") && d.weight == 1)
    );
    assert_eq!(
        fx.logs,
        vec![
            "TCP connection to [198.18.1.11]:tcp:80 success.",
            "Adding service [198.18.1.11]:tcp:80 to VS [198.18.0.100]:tcp:80",
        ]
    );
    let st = &b.core.status()[0].real_servers[0];
    assert!(st.alive);
    assert_eq!(st.last.as_ref().unwrap().latency_us, 3000);
}

#[test]
fn one_failure_is_enough_before_the_first_success() {
    let conf = vs_conf("", &[("198.18.1.11", "  TCP_CHECK {\n   retry 3\n  }")]);
    let (mut b, _) = Bench::new(&conf);
    let (cmds, fx, _) = b.down(0);
    assert_eq!(
        cmds,
        vec![TableChange::DelDest(key(), ip("198.18.1.11"), 80)]
    );
    assert!(fx
        .logs
        .contains(&"TCP_CHECK on service [198.18.1.11]:tcp:80 failed.".to_string()));
}

#[test]
fn a_server_is_down_when_any_checker_fails_and_up_when_all_pass() {
    let two = "  TCP_CHECK {\n   retry 0\n  }\n  TCP_CHECK {\n   connect_port 81\n   retry 0\n  }";
    let (mut b, _) = Bench::new(&vs_conf("", &[("198.18.1.11", two), ("198.18.1.12", TCP)]));
    b.report(0, 0, Probe::up());
    b.report(0, 1, Probe::up());
    let (cmds, _, _) = b.report(0, 1, Probe::down("failed"));
    assert_eq!(
        cmds,
        vec![TableChange::DelDest(key(), ip("198.18.1.11"), 80)]
    );
    // The second failure changes nothing.
    let (cmds, fx, _) = b.report(0, 0, Probe::down("failed"));
    assert!(cmds.is_empty());
    assert!(fx.changes.is_empty());
    // One of two passing again is not enough.
    let (cmds, _, _) = b.report(0, 1, Probe::up());
    assert!(cmds.is_empty());
    assert!(!b.core.status()[0].real_servers[0].alive);
    let (cmds, _, _) = b.report(0, 0, Probe::up());
    assert_eq!(cmds.len(), 1);
    assert!(matches!(&cmds[0], TableChange::AddDest(_, d) if d.addr == ip("198.18.1.11")));
}

#[test]
fn inhibit_on_failure_sets_weight_zero_instead_of_removing() {
    let rs = "  weight 5\n  inhibit_on_failure\n  TCP_CHECK {\n   retry 0\n  }";
    let (mut b, _) = Bench::new(&vs_conf("", &[("198.18.1.11", rs), ("198.18.1.12", TCP)]));
    b.up(0);
    let (cmds, fx, _) = b.down(0);
    assert_eq!(cmds.len(), 1);
    assert!(
        matches!(&cmds[0], TableChange::EditDest(_, d) if d.addr == ip("198.18.1.11") && d.weight == 0)
    );
    assert!(fx.logs.contains(
        &"Disabling service [198.18.1.11]:tcp:80 of VS [198.18.0.100]:tcp:80".to_string()
    ));
    assert_eq!(
        b.weights(),
        vec![("198.18.1.11".into(), 0), ("198.18.1.12".into(), 1)]
    );
    let (cmds, fx, _) = b.up(0);
    assert!(matches!(&cmds[..], [TableChange::EditDest(_, d)] if d.weight == 5));
    assert!(fx.logs.contains(
        &"Enabling service [198.18.1.11]:tcp:80 of VS [198.18.0.100]:tcp:80".to_string()
    ));
}

#[test]
fn alpha_servers_join_after_their_first_success() {
    let rs = "  notify_down \"/bin/down.sh a\"\n  TCP_CHECK {\n  }";
    let (mut b, fx) = Bench::new(&vs_conf(
        " alpha",
        &[("198.18.1.11", rs), ("198.18.1.12", TCP)],
    ));
    assert!(b.weights().is_empty());
    // Quorum is down at start (no sorry server: nothing to log or run).
    assert!(fx.logs.is_empty());
    // A first failure confirms the down state: only the notify script runs.
    let (cmds, fx, _) = b.down(0);
    assert!(cmds.is_empty());
    assert_eq!(
        scripts(&fx),
        vec![("notify_down", "/bin/down.sh a".to_string())]
    );
    let (cmds, fx, _) = b.up(0);
    assert!(matches!(&cmds[..], [TableChange::AddDest(_, d)] if d.addr == ip("198.18.1.11")));
    assert!(fx
        .logs
        .contains(&"Gained quorum 1+0=1 <= 1 for VS [198.18.0.100]:tcp:80".to_string()));
}

#[test]
fn quorum_and_hysteresis_bring_in_and_take_out_the_sorry_server() {
    let rs = "  TCP_CHECK {\n   retry 0\n  }";
    let conf = vs_conf(
        " quorum 2\n hysteresis 1\n sorry_server 198.18.1.99 80\n quorum_up /bin/qup\n quorum_down /bin/qdown",
        &[("198.18.1.11", rs), ("198.18.1.12", rs), ("198.18.1.13", rs)],
    );
    let (mut b, fx) = Bench::new(&conf);
    // Starts with 3 >= 2+1: quorum up, its script runs.
    assert_eq!(
        fx.logs,
        vec!["Gained quorum 2+1=3 <= 3 for VS [198.18.0.100]:tcp:80"]
    );
    assert_eq!(scripts(&fx), vec![("quorum_up", "/bin/qup".to_string())]);
    for r in 0..3 {
        b.up(r);
    }
    // Down to 1: still at the lower threshold 2-1.
    b.down(0);
    let (_, fx, _) = b.down(1);
    assert!(fx
        .changes
        .iter()
        .all(|c| !matches!(c, Change::Quorum { .. })));
    assert_eq!(b.weights(), vec![("198.18.1.13".into(), 1)]);
    // Down to 0: quorum lost, the sorry server takes over.
    let (cmds, fx, _) = b.down(2);
    assert!(fx
        .logs
        .contains(&"Lost quorum 2-1=1 > 0 for VS [198.18.0.100]:tcp:80".to_string()));
    assert!(fx.logs.contains(
        &"Adding sorry server [198.18.1.99]:tcp:80 to VS [198.18.0.100]:tcp:80".to_string()
    ));
    assert_eq!(
        scripts(&fx),
        vec![("quorum_down", "/bin/qdown".to_string())]
    );
    assert!(cmds.contains(&TableChange::DelDest(key(), ip("198.18.1.13"), 80)));
    assert_eq!(b.weights(), vec![("198.18.1.99".into(), 1)]);
    // Back to 2 (< 2+1): the sorry server stays, servers stay out.
    let (cmds, _, _) = b.up(0);
    assert!(cmds.is_empty());
    let (cmds, _, _) = b.up(1);
    assert!(cmds.is_empty());
    assert_eq!(b.weights(), vec![("198.18.1.99".into(), 1)]);
    // 3: quorum regained, the sorry server leaves and the live servers return.
    let (cmds, fx, _) = b.up(2);
    assert!(fx
        .logs
        .contains(&"Gained quorum 2+1=3 <= 3 for VS [198.18.0.100]:tcp:80".to_string()));
    assert!(fx.logs.contains(
        &"Removing sorry server [198.18.1.99]:tcp:80 from VS [198.18.0.100]:tcp:80".to_string()
    ));
    assert!(cmds.contains(&TableChange::DelDest(key(), ip("198.18.1.99"), 80)));
    assert_eq!(
        b.weights(),
        vec![
            ("198.18.1.11".into(), 1),
            ("198.18.1.12".into(), 1),
            ("198.18.1.13".into(), 1)
        ]
    );
    assert!(b.core.status()[0].quorum_up);
}

#[test]
fn sorry_server_inhibit_stays_with_weight_zero() {
    let rs = "  TCP_CHECK {\n   retry 0\n  }";
    let conf = vs_conf(
        " sorry_server 198.18.1.99 80\n sorry_server_inhibit",
        &[("198.18.1.11", rs)],
    );
    let (mut b, _) = Bench::new(&conf);
    assert_eq!(
        b.weights(),
        vec![("198.18.1.11".into(), 1), ("198.18.1.99".into(), 0)]
    );
    let (_, fx, _) = b.down(0);
    assert!(fx.logs.contains(
        &"Enabling sorry server [198.18.1.99]:tcp:80 to VS [198.18.0.100]:tcp:80".to_string()
    ));
    assert_eq!(b.weights(), vec![("198.18.1.99".into(), 1)]);
    let (_, fx, _) = b.up(0);
    assert!(fx.logs.contains(
        &"Disabling sorry server [198.18.1.99]:tcp:80 from VS [198.18.0.100]:tcp:80".to_string()
    ));
    assert_eq!(
        b.weights(),
        vec![("198.18.1.11".into(), 1), ("198.18.1.99".into(), 0)]
    );
}

#[test]
fn misc_dynamic_exit_codes_set_the_weight() {
    let rs = "  weight 4\n  MISC_CHECK {\n   misc_path \"/bin/check.sh\"\n   misc_dynamic\n  }";
    let (mut b, _) = Bench::new(&vs_conf("", &[("198.18.1.11", rs), ("198.18.1.12", TCP)]));
    let (cmds, fx, d) = b.report(0, 0, Probe::Exit(12));
    assert!(
        matches!(&cmds[..], [TableChange::EditDest(_, d)] if d.addr == ip("198.18.1.11") && d.weight == 10)
    );
    assert_eq!(
        fx.logs,
        vec![
            "Changing weight from 4 to 10 for active service [198.18.1.11]:tcp:80 of VS [198.18.0.100]:tcp:80",
            "Misc check for [[198.18.1.11]:tcp:80 VS [198.18.0.100]:tcp:80] by [/bin/check.sh] succeeded.",
        ]
    );
    assert_eq!(d, Duration::from_secs(10));
    // Same code again: nothing to change.
    let (cmds, fx, _) = b.report(0, 0, Probe::Exit(12));
    assert!(cmds.is_empty() && fx.logs.is_empty());
    // 2 means weight 0 (still up).
    let (cmds, _, _) = b.report(0, 0, Probe::Exit(2));
    assert!(matches!(&cmds[..], [TableChange::EditDest(_, d)] if d.weight == 0));
    // 0 restores the configured weight.
    let (cmds, _, _) = b.report(0, 0, Probe::Exit(0));
    assert!(matches!(&cmds[..], [TableChange::EditDest(_, d)] if d.weight == 4));
    // 1 is down at once: MISC_CHECK's retry defaults to 0.
    b.report(0, 0, Probe::Exit(30));
    let (cmds, fx, _) = b.report(0, 0, Probe::Exit(1));
    assert_eq!(
        cmds,
        vec![TableChange::DelDest(key(), ip("198.18.1.11"), 80)]
    );
    assert_eq!(
        fx.logs[0],
        "Misc check for [[198.18.1.11]:tcp:80 VS [198.18.0.100]:tcp:80] by [/bin/check.sh] failed with retry disabled (exited with status 1)."
    );
    // Back up with 0: the configured weight, not the last dynamic one.
    let (cmds, _, _) = b.report(0, 0, Probe::Exit(0));
    assert!(matches!(&cmds[..], [TableChange::AddDest(_, d)] if d.weight == 4));
}

#[test]
fn misc_without_dynamic_treats_other_codes_as_failure_and_counts_retries() {
    let rs = "  MISC_CHECK {\n   misc_path /bin/check.sh\n   retry 1\n   delay_before_retry 2\n  }";
    let (mut b, _) = Bench::new(&vs_conf("", &[("198.18.1.11", rs)]));
    b.report(0, 0, Probe::Exit(0));
    let (cmds, fx, d) = b.report(0, 0, Probe::Exit(5));
    assert!(cmds.is_empty());
    assert_eq!(d, Duration::from_secs(2));
    assert_eq!(
        fx.logs,
        vec!["Misc check for [[198.18.1.11]:tcp:80 VS [198.18.0.100]:tcp:80] by [/bin/check.sh] failed, will do 1 retry (exited with status 5)."]
    );
    let (cmds, fx, _) = b.report(0, 0, Probe::TimedOut);
    assert_eq!(cmds.len(), 1);
    assert_eq!(
        fx.logs[0],
        "Misc check for [[198.18.1.11]:tcp:80 VS [198.18.0.100]:tcp:80] by [/bin/check.sh] timed out after 1 retry."
    );
}

#[test]
fn http_and_dns_messages() {
    let http = "  HTTP_GET {\n   url {\n    path /health\n   }\n   retry 1\n  }";
    let dns = "  DNS_CHECK {\n   name example.com\n  }";
    let (mut b, _) = Bench::new(&vs_conf("", &[("198.18.1.11", http), ("198.18.1.12", dns)]));
    b.report(0, 0, Probe::up());
    let (_, fx, d) = b.report(0, 0, Probe::down("HTTP status code error to"));
    assert_eq!(
        fx.logs,
        vec!["HTTP status code error to server [198.18.1.11]:tcp:80."]
    );
    assert_eq!(
        d,
        Duration::from_secs(3),
        "HTTP_GET's delay_before_retry defaults to 3 s"
    );
    let (_, fx, _) = b.report(0, 0, Probe::down("MD5 digest error to"));
    assert_eq!(
        fx.logs,
        vec![
            "MD5 digest error to server [198.18.1.11]:tcp:80.",
            "HTTP_CHECK on service [198.18.1.11]:tcp:80 failed after 1 retries.",
            "Removing service [198.18.1.11]:tcp:80 from VS [198.18.0.100]:tcp:80",
        ]
    );
    let (_, fx, _) = b.report(
        0,
        0,
        Probe::Up {
            urls: vec![("HTTP status code", "/health".into())],
        },
    );
    assert_eq!(
        fx.logs,
        vec![
            "HTTP status code success to [198.18.1.11]:tcp:80 url(/health)",
            "Remote Web server [198.18.1.11]:tcp:80 succeed on service.",
            "Adding service [198.18.1.11]:tcp:80 to VS [198.18.0.100]:tcp:80",
        ]
    );
    // DNS_CHECK: retry 3 by default, delay_before_retry = delay_loop.
    b.report(1, 0, Probe::up());
    for _ in 0..3 {
        let (cmds, _, d) = b.report(1, 0, Probe::down("read timeout from socket"));
        assert!(cmds.is_empty());
        assert_eq!(d, Duration::from_secs(10));
    }
    let (cmds, fx, _) = b.report(1, 0, Probe::down("read timeout from socket"));
    assert_eq!(cmds.len(), 1);
    assert_eq!(
        fx.logs[0],
        "DNS_CHECK ([198.18.1.12]:tcp:80) read timeout from socket after 3 retries"
    );
}

#[test]
fn notify_scripts_and_mails_follow_the_transitions() {
    let rs = "  notify_up /bin/up.sh\n  notify_down /bin/down.sh\n  TCP_CHECK {\n   retry 0\n  }";
    let (mut b, _) = Bench::with_alerts(
        &vs_conf("", &[("198.18.1.11", rs), ("198.18.1.12", TCP)]),
        true,
    );
    let (_, fx, _) = b.up(0);
    assert!(
        fx.notifications.is_empty(),
        "a first success of a server already up says nothing"
    );
    let (_, fx, _) = b.down(0);
    assert_eq!(
        fx.notifications,
        vec![
            Notification::Script {
                script: Script {
                    argv: vec!["/bin/down.sh".into()],
                    user: None
                },
                what: "notify_down"
            },
            Notification::Mail {
                subject: "[lb1] Realserver [198.18.1.11]:tcp:80 of virtual server [198.18.0.100]:tcp:80 - DOWN".into(),
                body: "=> TCP CHECK failed on service <=".into(),
            }
        ]
    );
    let (_, fx, _) = b.up(0);
    assert_eq!(scripts(&fx), vec![("notify_up", "/bin/up.sh".to_string())]);
    assert!(fx.notifications.contains(&Notification::Mail {
        subject:
            "[lb1] Realserver [198.18.1.11]:tcp:80 of virtual server [198.18.0.100]:tcp:80 - UP"
                .into(),
        body: "=> TCP CHECK succeed on service <=".into(),
    }));
}

#[test]
fn quorum_mail_wording() {
    let (_, fx) = Bench::with_alerts(&vs_conf(" quorum 1", &[("198.18.1.11", TCP)]), true);
    assert_eq!(
        fx.notifications,
        vec![Notification::Mail {
            subject: "[lb1] Virtualserver [198.18.0.100]:tcp:80 - UP".into(),
            body: "=> Starting with quorum up 1+0=1 <= 1 <=".into(),
        }]
    );
}

#[test]
fn reload_keeps_the_state_of_servers_in_both_configurations() {
    let rs = "  TCP_CHECK {\n   retry 1\n  }";
    let old = vs_conf(
        "",
        &[
            ("198.18.1.11", rs),
            ("198.18.1.12", rs),
            (
                "198.18.1.13",
                "  notify_down /bin/gone.sh\n  TCP_CHECK {\n  }",
            ),
        ],
    );
    let (mut b, _) = Bench::new(&old);
    for r in 0..3 {
        b.up(r);
    }
    b.down(0);
    b.down(0); // .11 down
    b.down(1); // .12 one failure counted
    let rs_w = "  weight 3\n  TCP_CHECK {\n   retry 1\n  }";
    let new = vs_conf(
        "",
        &[
            ("198.18.1.11", rs),
            ("198.18.1.12", rs_w),
            ("198.18.1.14", " alpha\n  TCP_CHECK {\n  }"),
        ],
    );
    let (cmds, fx) = b.core.reload(&load(&new));
    // .13 leaves (notify_down runs), .12's weight changes, .11 stays out,
    // .14 (alpha) waits for its first check.
    assert_eq!(
        cmds,
        vec![
            TableChange::DelDest(key(), ip("198.18.1.13"), 80),
            TableChange::EditDest(
                key(),
                Dest {
                    addr: ip("198.18.1.12"),
                    port: 80,
                    fwd: Fwd::Masq,
                    weight: 3,
                    u_threshold: 0,
                    l_threshold: 0
                }
            ),
        ]
    );
    assert!(fx
        .logs
        .contains(&"service [198.18.1.13]:tcp:80 no longer exist".to_string()));
    assert!(fx.logs.contains(
        &"Removing service [198.18.1.13]:tcp:80 from VS [198.18.0.100]:tcp:80".to_string()
    ));
    assert!(fx.logs.contains(
        &"Changing weight from 1 to 3 for active service [198.18.1.12]:tcp:80 of VS [198.18.0.100]:tcp:80".to_string()
    ));
    assert_eq!(
        scripts(&fx),
        vec![("notify_down", "/bin/gone.sh".to_string())]
    );
    let st = &b.core.status()[0];
    assert!(!st.real_servers[0].alive);
    assert!(!st.real_servers[2].alive);
    // .12 had one failure counted: the next one is its last.
    let (cmds, _, _) = b.down(1);
    assert_eq!(
        cmds,
        vec![TableChange::DelDest(key(), ip("198.18.1.12"), 80)]
    );
    // .11 comes back on success as before.
    let (cmds, _, _) = b.up(0);
    assert!(matches!(&cmds[..], [TableChange::AddDest(_, d)] if d.addr == ip("198.18.1.11")));
    let (cmds, _, _) = b.up(2);
    assert!(matches!(&cmds[..], [TableChange::AddDest(_, d)] if d.addr == ip("198.18.1.14")));
}

#[test]
fn reload_removes_a_virtual_server_and_adds_a_new_one() {
    let a = vs_conf("", &[("198.18.1.11", TCP)]);
    let (mut b, _) = Bench::new(&a);
    let bconf = "virtual_server 198.18.0.200 443 {\n lb_kind DR\n protocol TCP\n real_server 198.18.1.21 443 {\n TCP_CHECK {\n }\n }\n}\n";
    let cfg = load(bconf);
    let (cmds, fx) = b.core.reload(&cfg);
    assert!(fx
        .logs
        .contains(&"Removing Virtual Server [198.18.0.100]:tcp:80".to_string()));
    assert_eq!(cmds[0], TableChange::DelService(key()));
    assert!(matches!(&cmds[1], TableChange::AddService(_)));
    assert_eq!(b.core.table(), initial_table(&cfg));
}

#[test]
fn shutdown_runs_down_scripts_only_with_omega() {
    let rs = "  notify_down /bin/down.sh\n  TCP_CHECK {\n  }";
    let conf = vs_conf(" quorum_down /bin/qdown", &[("198.18.1.11", rs)]);
    let (mut b, _) = Bench::new(&conf);
    let (cmds, fx) = b.core.shutdown();
    assert_eq!(cmds, vec![TableChange::DelService(key())]);
    assert!(scripts(&fx).is_empty());
    assert!(fx.logs.contains(
        &"Shutting down service [198.18.1.11]:tcp:80 from VS [198.18.0.100]:tcp:80".to_string()
    ));

    let conf = vs_conf(" omega\n quorum_down /bin/qdown", &[("198.18.1.11", rs)]);
    let (mut b, _) = Bench::new(&conf);
    let (_, fx) = b.core.shutdown();
    assert_eq!(
        scripts(&fx),
        vec![
            ("notify_down", "/bin/down.sh".to_string()),
            ("quorum_down", "/bin/qdown".to_string())
        ]
    );
}

#[test]
fn group_services_get_one_command_per_entry() {
    let conf = "virtual_server_group G {\n 198.18.0.100-101 80\n}\nvirtual_server group G {\n lb_kind DR\n protocol TCP\n real_server 198.18.1.11 80 {\n TCP_CHECK {\n retry 0\n }\n }\n}\n";
    let (mut b, _) = Bench::new(conf);
    b.up(0);
    let (cmds, fx, _) = b.down(0);
    assert_eq!(cmds.len(), 2);
    assert!(fx
        .logs
        .contains(&"Removing service [198.18.1.11]:tcp:80 from VS [G]:0".to_string()));
}

#[test]
fn reloading_the_same_configuration_changes_nothing() {
    let rs = "  inhibit_on_failure\n  TCP_CHECK {\n   retry 0\n  }";
    let conf = vs_conf(
        " quorum 2\n sorry_server 198.18.1.99 80",
        &[("198.18.1.11", rs), ("198.18.1.12", TCP)],
    );
    let (mut b, _) = Bench::new(&conf);
    b.up(0);
    b.up(1);
    b.down(0); // quorum lost: the sorry server is in, .11 inhibited
    let before = b.core.table();
    let (cmds, fx) = b.core.reload(&load(&conf));
    assert!(cmds.is_empty(), "{cmds:?}");
    assert!(fx.notifications.is_empty());
    assert_eq!(b.core.table(), before);
    // And the state goes on from where it was.
    let (_, fx, _) = b.up(0);
    assert!(fx
        .logs
        .contains(&"Gained quorum 2+0=2 <= 2 for VS [198.18.0.100]:tcp:80".to_string()));
}
