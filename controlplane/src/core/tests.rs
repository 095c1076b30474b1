//! The core alone: inputs in, outputs out, time given.

use super::*;
use ferrovs_config::ipvs::Table;
use ferrovs_config::ipvsadm::rules::parse_command;
use ferrovs_config::ipvsadm::TableError;
use ferrovs_dataplane::conn::template::TemplateTable;
use ferrovs_dataplane::snapshot::PortConf;
use std::net::Ipv4Addr;
use std::time::Duration;

fn core(workers: usize) -> (Core, Instant) {
    let net = Net {
        ports: vec![PortConf {
            name: "p0".into(),
            mac: [2, 0, 0, 0, 0, 1],
            addrs: vec![(Ipv4Addr::new(198, 18, 0, 1), 24)],
            mtu: 1500,
        }],
        ..Default::default()
    };
    let state = IpvsState::new(workers, Arc::new(TemplateTable::new(64)), 64);
    let epoch = Instant::now();
    (Core::new(state, net, Config::default(), epoch), epoch)
}

fn change(args: &str) -> TableChange {
    let a: Vec<&str> = args.split_whitespace().collect();
    TableChange::from_command(&parse_command(&a).unwrap()).unwrap()
}

fn desired(args: &str) -> Desired {
    Desired::of(&change(args)).unwrap()
}

fn table(rules: &str) -> Table {
    ferrovs_config::ipvsadm::rules::table_from_rules(rules).unwrap()
}

fn reload(text: &str, health: Option<Vec<TableChange>>) -> Input {
    Input::Reload(Box::new(Reload {
        path: "k.conf".into(),
        loaded: ferrovs_config::load_str("k.conf", text),
        health,
    }))
}

const SVC: &str = "virtual_server 198.18.0.100 80 {\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n    real_server 198.18.1.11 80 {\n    }\n}\n";

#[test]
fn a_desired_change_resolves_to_the_exact_change_for_the_table() {
    let t = table("-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.1.11:80 -g -w 1\n");
    let add = desired("-a -t 198.18.0.100:80 -r 198.18.1.12:80 -g -w 1");
    assert!(matches!(add.resolve(&t), Some(TableChange::AddDest(..))));
    // Present already: an edit, not an add that fails and is retried.
    let again = desired("-a -t 198.18.0.100:80 -r 198.18.1.11:80 -g -w 4");
    assert!(matches!(again.resolve(&t), Some(TableChange::EditDest(..))));
    let edit_gone = desired("-e -t 198.18.0.100:80 -r 198.18.1.13:80 -g -w 4");
    assert!(matches!(
        edit_gone.resolve(&t),
        Some(TableChange::AddDest(..))
    ));
    assert_eq!(
        desired("-d -t 198.18.0.100:80 -r 198.18.1.13:80").resolve(&t),
        None
    );
    assert_eq!(desired("-D -t 198.18.0.101:80").resolve(&t), None);
    assert!(matches!(
        desired("-A -t 198.18.0.100:80 -s wrr").resolve(&t),
        Some(TableChange::EditService(_))
    ));
    assert!(matches!(
        desired("-D -t 198.18.0.100:80").resolve(&t),
        Some(TableChange::DelService(_))
    ));
}

#[test]
fn an_exact_change_is_refused_with_libipvs_words() {
    let mut t = table("-A -t 198.18.0.100:80 -s rr\n");
    let c = |s: &str| {
        let a: Vec<&str> = s.split_whitespace().collect();
        TableChange::from_command(&parse_command(&a).unwrap()).unwrap()
    };
    assert_eq!(
        c("-A -t 198.18.0.100:80 -s rr").apply(&mut t),
        Err(CoreError::Table(TableError::ServiceExists))
    );
    assert_eq!(
        c("-e -t 198.18.0.100:80 -r 198.18.1.1:80 -g").apply(&mut t),
        Err(CoreError::Table(TableError::NoSuchDest))
    );
    assert_eq!(
        c("-a -t 198.18.0.101:80 -r 198.18.1.1:80 -g").apply(&mut t),
        Err(CoreError::Table(TableError::ServiceNotDefined))
    );
    assert_eq!(
        c("-D -t 198.18.0.101:80").apply(&mut t),
        Err(CoreError::Table(TableError::NoSuchService))
    );
    assert_eq!(t, table("-A -t 198.18.0.100:80 -s rr\n"));
}

#[test]
fn a_reload_takes_the_health_plan_and_commits_it_with_the_snapshot() {
    let (mut c, now) = core(1);
    // The plan says the server is out (its check failed): the table
    // follows the plan, not the file.
    let plan = vec![
        change("-A -t 198.18.0.100:80 -s rr"),
        change("-d -t 198.18.0.100:80 -r 198.18.1.11:80"),
    ];
    let outs = c.handle(reload(SVC, Some(plan)), now);
    let publish = outs.iter().position(|o| matches!(o, Output::Publish(_)));
    let commit = outs
        .iter()
        .position(|o| matches!(o, Output::CommitHealthPlan));
    assert!(publish.is_some() && commit.is_some() && publish < commit);
    assert!(c.state().table.services[0].dests.is_empty());
    assert_eq!(c.reloads().ok, 1);
}

#[test]
fn a_refused_reload_publishes_nothing_and_commits_no_plan() {
    let (mut c, now) = core(1);
    // A table the dataplane cannot forward by: a port-0 service without
    // persistence (IPVS refuses it too), which a file never yields (the
    // configuration checks refuse it first), made by hand.
    let mut table =
        ferrovs_config::ipvs::initial_table(&ferrovs_config::load_str("k.conf", SVC).config);
    let mut extra = table.services[0].clone();
    extra.key = ferrovs_config::ipvs::ServiceKey::Addr {
        proto: ferrovs_config::model::Protocol::Tcp,
        addr: "198.18.0.101".parse().unwrap(),
        port: 0,
    };
    extra.persistence = None;
    table.services.push(extra);
    let bad = SVC;
    let plan = TableChange::diff(&Table::default(), &table);
    let outs = c.handle(reload(bad, Some(plan)), now);
    assert!(!outs
        .iter()
        .any(|o| matches!(o, Output::Publish(_) | Output::CommitHealthPlan)));
    assert!(outs
        .iter()
        .any(|o| matches!(o, Output::Reloaded(Err(CoreError::ReloadRejected(_))))));
    assert!(c.state().table.services.is_empty());
    assert_eq!(c.generation(), 1);
    let r = c.reloads();
    assert_eq!((r.ok, r.failed, r.last_ok), (0, 1, false));
}

#[test]
fn stalls_are_judged_on_the_time_given() {
    let (mut c, epoch) = core(1);
    let stamp = vec![1_000_000];
    // 1.5 s of silence is not a stall yet; the core reads no clock.
    assert!(c
        .handle(
            Input::Heartbeats(stamp.clone()),
            epoch + Duration::from_millis(1500)
        )
        .is_empty());
    let outs = c.handle(
        Input::Heartbeats(stamp),
        epoch + Duration::from_millis(1501),
    );
    assert!(outs
        .iter()
        .any(|o| matches!(o, Output::Log(Level::Error, _))));
    assert!(!c.workers_running());
    assert_eq!(c.worker_stalls(), 1);
}

#[test]
fn an_admin_command_is_answered_with_its_id() {
    let (mut c, now) = core(1);
    let outs = c.handle(
        Input::Admin {
            id: 7,
            cmd: AdminCommand::Change(TableChange::DelService(
                table("-A -t 198.18.0.100:80 -s rr\n").services[0]
                    .key
                    .clone(),
            )),
        },
        now,
    );
    assert!(outs.iter().any(|o| matches!(
        o,
        Output::Reply {
            id: 7,
            result: Err(CoreError::Table(TableError::NoSuchService))
        }
    )));
}

/// Two configurations' tables, as a reload without health checks diffs
/// them.
fn tables(old: &str, new: &str) -> (Table, Table) {
    let t = |text: &str| {
        let l = ferrovs_config::load_str("k.conf", text);
        assert!(!l.diagnostics.has_errors(), "{:?}", l.diagnostics.items);
        ferrovs_config::ipvs::initial_table(&l.config)
    };
    (t(old), t(new))
}

const TWO: &str = "virtual_server 198.18.0.100 80 {\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n    real_server 198.18.1.1 80 {\n        weight 1\n    }\n    real_server 198.18.1.2 80 {\n    }\n}\nvirtual_server 198.18.0.100 443 {\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n    real_server 198.18.1.1 443 {\n    }\n}\n";

#[test]
fn the_diff_of_equal_tables_is_empty() {
    let (a, b) = tables(TWO, TWO);
    assert!(TableChange::diff(&a, &b).is_empty());
}

#[test]
fn a_weight_change_is_an_edit_of_one_server() {
    let (a, b) = tables(TWO, &TWO.replacen("weight 1\n", "weight 5\n", 1));
    let d = TableChange::diff(&a, &b);
    assert!(
        matches!(&d[..], [TableChange::EditDest(_, x)] if x.weight == 5),
        "{d:?}"
    );
}

#[test]
fn a_scheduler_change_is_a_service_edit() {
    let (a, b) = tables(TWO, &TWO.replacen("lb_algo rr", "lb_algo wlc", 1));
    let d = TableChange::diff(&a, &b);
    assert!(
        matches!(&d[..], [TableChange::EditService(s)] if s.scheduler == ferrovs_config::Scheduler::Wlc && s.dests.is_empty()),
        "{d:?}"
    );
}

#[test]
fn the_diff_applied_to_the_old_table_gives_the_new_one() {
    let new = TWO
        .replace(
            "    real_server 198.18.1.2 80 {",
            "    real_server 198.18.1.3 80\n    real_server 198.18.1.2 80 {",
        )
        .replace(
            "virtual_server 198.18.0.100 443",
            "virtual_server 198.18.0.101 443",
        )
        .replacen("weight 1\n", "weight 7\n", 1);
    let (mut t, mut want) = tables(TWO, &new);
    let d = TableChange::diff(&t, &want);
    // Removed service first, then each new entry exactly once.
    assert!(matches!(&d[0], TableChange::DelService(_)), "{d:?}");
    assert_eq!(
        d.iter()
            .filter(|c| matches!(c, TableChange::AddService(_)))
            .count(),
        1
    );
    for c in &d {
        c.apply(&mut t).unwrap_or_else(|e| panic!("{c:?}: {e}"));
    }
    ferrovs_config::ipvsadm::list::sort_table(&mut t);
    ferrovs_config::ipvsadm::list::sort_table(&mut want);
    assert_eq!(t, want);
}
