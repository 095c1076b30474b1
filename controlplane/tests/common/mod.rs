//! A daemon over a memory dataplane, for in-process tests.
#![allow(dead_code)]

use ferrovs_config::Config;
use ferrovs_controlplane::daemon::Daemon;
use ferrovs_controlplane::ipvs_state::{IpvsState, Net};
use ferrovs_controlplane::northbound::ctl::CtlRequest;
use ferrovs_dataplane::conn::template::TemplateTable;
use ferrovs_dataplane::port::memory::MemPacket;
use ferrovs_dataplane::snapshot::PortConf;
use ferrovs_dataplane::worker::Shared;
use std::net::Ipv4Addr;
use std::sync::Arc;

pub fn daemon() -> (Daemon, Arc<Shared<MemPacket>>) {
    let net = Net {
        ports: vec![
            PortConf {
                name: "p0".into(),
                mac: [2, 0, 0, 0, 0, 1],
                addrs: vec![(Ipv4Addr::new(198, 18, 0, 1), 24)],
                mtu: 1500,
            },
            PortConf {
                name: "p1".into(),
                mac: [2, 0, 0, 0, 1, 1],
                addrs: vec![(Ipv4Addr::new(198, 18, 1, 1), 24)],
                mtu: 1500,
            },
        ],
        addrs6: vec![
            vec![("2001:2::1".parse().unwrap(), 64)],
            vec![("2001:2:0:1::1".parse().unwrap(), 64)],
        ],
        ..Default::default()
    };
    let state = IpvsState::new(1, Arc::new(TemplateTable::new(1024)), 4096);
    let snap = state.build(1, &net, &[]).unwrap();
    let shared: Arc<Shared<MemPacket>> = Shared::new(snap);
    let d = Daemon::new(
        state,
        net,
        shared.clone(),
        "/nonexistent.conf".into(),
        Config::default(),
    );
    (d, shared)
}

pub fn run(d: &mut Daemon, args: &str) -> (i32, String, String) {
    let r = d.execute(&CtlRequest {
        argv: args.split_whitespace().map(String::from).collect(),
        stdin: None,
        op: None,
    });
    (r.code, r.stdout, r.stderr)
}
