//! Arbitrary control-socket requests, one JSON line each, against a daemon
//! over memory ports: the request decoder, the ipvsadm command-line and
//! `-R` parsers, and every table change with its checks, in sequence so
//! that later requests meet the state earlier ones built. Connection
//! listings are left out (they wait for workers this daemon does not run).
#![no_main]

use ferrovs_config::ipvsadm::rules::{parse_command, Command};
use ferrovs_config::Config;
use ferrovs_controlplane::northbound::ctl::CtlRequest;
use ferrovs_controlplane::daemon::Daemon;
use ferrovs_controlplane::ipvs_state::{IpvsState, Net};
use ferrovs_dataplane::conn::template::TemplateTable;
use ferrovs_dataplane::port::memory::MemPacket;
use ferrovs_dataplane::snapshot::PortConf;
use ferrovs_dataplane::worker::Shared;
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use std::sync::Arc;

fn daemon() -> Daemon {
    let net = Net {
        ports: vec![PortConf {
            name: "p0".into(),
            mac: [2, 0, 0, 0, 0, 1],
            addrs: vec![(Ipv4Addr::new(198, 18, 0, 1), 24)],
            mtu: 1500,
        }],
        routes: vec![],
        addrs6: vec![vec![]],
        routes6: vec![],
    };
    let state = IpvsState::new(1, Arc::new(TemplateTable::new(64)), 4096);
    let snap = state.build(1, &net, &[]).expect("empty snapshot");
    let shared: Arc<Shared<MemPacket>> = Shared::new(snap);
    Daemon::new(state, net, shared, "/nonexistent.conf".into(), Config::default())
}

fn lists_connections(req: &CtlRequest) -> bool {
    let args: Vec<&str> = req.argv.iter().map(String::as_str).collect();
    matches!(
        parse_command(&args),
        Ok(Command::List {
            connections: true,
            ..
        })
    )
}

fuzz_target!(|data: &[u8]| {
    let mut d = daemon();
    for line in data.split(|b| *b == b'\n').take(64) {
        let Ok(req) = serde_json::from_slice::<CtlRequest>(line) else {
            continue;
        };
        if lists_connections(&req) {
            continue;
        }
        let _ = d.execute(&req);
    }
});
