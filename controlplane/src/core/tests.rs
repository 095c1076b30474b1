//! The core alone: inputs in, outputs out, time given.

use super::*;
use ferrovs_config::ipvs::Table;
use ferrovs_config::ipvsadm::rules::parse_command;
use ferrovs_config::ipvsadm::TableError;
use ferrovs_dataplane::conn::template::TemplateTable;
use ferrovs_dataplane::snapshot::PortConf;
use std::time::Duration;

fn core(workers: usize) -> (Core, Instant) {
    let net = Net {
        ports: vec![PortConf {
            name: "p0".into(),
            mac: [2, 0, 0, 0, 0, 1],
            addrs: vec![(Ipv4Addr::new(198, 18, 0, 1), 24)],
            mtu: 1500,
        }],
        routes: vec![],
    };
    let state = IpvsState::new(workers, Arc::new(TemplateTable::new(64)), 64);
    let epoch = Instant::now();
    (Core::new(state, net, Config::default(), epoch), epoch)
}

fn desired(args: &str) -> Desired {
    let a: Vec<&str> = args.split_whitespace().collect();
    Desired::from_command(&parse_command(&a).unwrap()).unwrap()
}

fn table(rules: &str) -> Table {
    ferrovs_config::ipvsadm::rules::table_from_rules(rules).unwrap()
}

fn reload(text: &str, health: Option<Vec<Desired>>) -> Input {
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
        desired("-A -t 198.18.0.100:80 -s rr"),
        desired("-d -t 198.18.0.100:80 -r 198.18.1.11:80"),
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
    let bad = SVC.to_string()
        + "virtual_server 198.18.0.101 80 {\n    lb_algo rr\n    lb_kind TUN\n    protocol TCP\n    real_server 2001:db8::5 80 {\n    }\n}\n";
    let plan = Desired::from_commands(&ferrovs_config::diff::table_diff(
        &Table::default(),
        &ferrovs_config::ipvs::initial_table(&ferrovs_config::load_str("k.conf", &bad).config),
    ));
    let outs = c.handle(reload(&bad, Some(plan)), now);
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
