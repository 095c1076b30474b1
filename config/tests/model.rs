//! The model carries each keyword's meaning with keepalived 2.2's defaults.

use ferrovs_config::*;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

fn corpus(name: &str) -> Config {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(name);
    let l = load_file(&p);
    assert!(!l.diagnostics.has_errors(), "{:?}", l.diagnostics.items);
    l.config
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn dr_master_vrrp_and_checkers() {
    let c = corpus("dr_master_tcp_check.conf");
    assert_eq!(c.global.router_id.as_deref(), Some("LVS_DEVEL"));
    assert_eq!(
        c.global.notification_email,
        ["admin@example.com", "noc@example.com"]
    );
    assert_eq!(
        c.global.smtp_server,
        Some(SmtpServer {
            host: "127.0.0.1".into(),
            port: 25
        })
    );
    let i = &c.vrrp_instances[0];
    assert_eq!(i.state, VrrpState::Master);
    assert_eq!(i.interface.as_deref(), Some("eth0"));
    assert_eq!((i.virtual_router_id, i.priority, i.version), (51, 150, 2));
    assert_eq!(i.advert_int, secs(1));
    assert_eq!(
        i.authentication,
        Some(Authentication {
            auth_type: AuthType::Pass,
            auth_pass: "1111".into()
        })
    );
    assert_eq!(
        i.virtual_ipaddress,
        [VirtualIp {
            addr: ip("198.18.0.100"),
            prefix_len: 24,
            brd: None,
            dev: Some("eth0".into()),
            scope: None,
            label: None
        }]
    );
    assert_eq!(i.garp.master_delay, secs(5));
    assert_eq!(i.garp.master_repeat, 5);
    let vs = &c.virtual_servers[0];
    assert_eq!(
        vs.address,
        VsAddress::Addr {
            addr: ip("198.18.0.100"),
            port: 80
        }
    );
    assert_eq!(vs.protocol, Protocol::Tcp);
    assert_eq!(vs.lb_kind, LbKind::Dr);
    assert_eq!(vs.scheduler.name, Scheduler::Rr);
    assert_eq!(vs.delay_loop, secs(6));
    assert_eq!(vs.quorum, 1);
    let r0 = &vs.real_servers[0];
    assert_eq!((r0.weight, r0.fwd, r0.port), (1, LbKind::Dr, 80));
    let ch = &r0.checkers[0];
    assert_eq!(ch.kind, CheckerKind::Tcp);
    assert_eq!(ch.common.connect_timeout, secs(3));
    assert_eq!(ch.common.retry, 3);
    assert_eq!(ch.common.delay_before_retry, secs(3));
    // delay_loop inherited from the virtual server, warmup defaults to it
    assert_eq!(ch.common.delay_loop, secs(6));
    assert_eq!(ch.common.warmup, secs(6));
    let ch1 = &vs.real_servers[1].checkers[0];
    assert_eq!(ch1.common.retry, 1, "TCP_CHECK retry default");
    assert_eq!(ch1.common.delay_before_retry, secs(1));
    assert_eq!(ch1.common.connect_port, Some(80));
}

#[test]
fn nat_sync_group_dns_defaults() {
    let c = corpus("nat_port_mapping.conf");
    assert_eq!(c.vrrp_sync_groups[0].group, ["VI_EXT", "VI_INT"]);
    let vs = &c.virtual_servers[1];
    assert_eq!(vs.real_servers[0].weight, 1, "weight default 1");
    assert_eq!(vs.real_servers[0].port, 8443, "NAT keeps the mapped port");
    let dns = &c.virtual_servers[2].real_servers[0].checkers[0];
    assert_eq!(
        dns.kind,
        CheckerKind::Dns(DnsCheck {
            qtype: "A".into(),
            name: "www.example.com".into()
        })
    );
    assert_eq!(dns.common.retry, 3, "DNS_CHECK retry default 3");
    assert_eq!(dns.common.delay_before_retry, secs(15), "DNS: delay_loop");
    assert_eq!(
        dns.common.connect_timeout,
        secs(5),
        "connect_timeout default 5"
    );
    assert_eq!(c.virtual_servers[2].protocol, Protocol::Udp);
}

#[test]
fn http_get_urls_status_and_virtualhost() {
    let c = corpus("http_get_status.conf");
    assert_eq!(
        c.vrrp_instances[0].virtual_ipaddress[0],
        VirtualIp {
            addr: ip("198.18.0.120"),
            prefix_len: 24,
            brd: Some(ip("198.18.0.255")),
            dev: Some("eth0".into()),
            scope: None,
            label: Some("eth0:vip".into()),
        }
    );
    let rs = &c.virtual_servers[0].real_servers[0];
    let CheckerKind::Http(h) = &rs.checkers[0].kind else {
        panic!()
    };
    assert!(!h.tls);
    assert_eq!(
        h.virtualhost.as_deref(),
        Some("www.example.com"),
        "inherited"
    );
    assert_eq!(h.urls[0].path, "/healthz");
    assert_eq!(h.urls[0].status_code, [StatusRange { min: 200, max: 200 }]);
    assert_eq!(
        h.urls[1].status_code,
        [StatusRange { min: 200, max: 299 }],
        "default"
    );
    assert_eq!(
        h.urls[1].digest.as_deref(),
        Some("9b3a0c85a887a256d6939da88aabd8cd")
    );
    assert_eq!(
        rs.checkers[0].common.retry, 3,
        "nb_get_retry taken as retry"
    );
    assert_eq!(rs.checkers[0].common.delay_before_retry, secs(2));
    let rs2 = &c.virtual_servers[0].real_servers[1];
    let CheckerKind::Http(h2) = &rs2.checkers[0].kind else {
        panic!()
    };
    assert_eq!(
        h2.urls[0].status_code,
        [
            StatusRange { min: 200, max: 204 },
            StatusRange { min: 301, max: 301 }
        ]
    );
    assert_eq!(
        rs2.checkers[0].common.delay_before_retry,
        secs(3),
        "HTTP default 3 s"
    );
    let ssl = &c.virtual_servers[1].real_servers[0].checkers[0];
    assert_eq!(ssl.kind.keyword(), "SSL_GET");
}

#[test]
fn vrrp_script_tracking_unicast_misc() {
    let c = corpus("vrrp_script_weight.conf");
    assert!(c.global.enable_script_security);
    assert_eq!(
        c.global.script_user,
        Some(ScriptUser {
            user: "root".into(),
            group: None
        })
    );
    let s = c.vrrp_script("chk_haproxy").unwrap();
    assert_eq!(s.script.argv, ["/usr/bin/killall", "-0", "haproxy"]);
    assert_eq!((s.weight, s.fall, s.rise), (-20, 3, 2));
    assert_eq!((s.interval, s.timeout), (secs(2), secs(1)));
    let f = c.vrrp_script("chk_file").unwrap();
    assert_eq!(
        (f.fall, f.rise, f.timeout),
        (1, 1, secs(5)),
        "defaults; timeout = interval"
    );
    let i = &c.vrrp_instances[0];
    assert!(i.nopreempt);
    assert_eq!(i.preempt_delay, secs(30));
    assert_eq!(i.unicast_src_ip, Some(ip("198.18.0.2")));
    assert_eq!(i.unicast_peer.len(), 1);
    assert_eq!(i.unicast_peer[0].address, ip("198.18.0.3"));
    assert_eq!(
        (i.unicast_peer[0].min_ttl, i.unicast_peer[0].max_ttl),
        (None, None)
    );
    assert_eq!(
        i.authentication.as_ref().unwrap().auth_pass,
        "01234567",
        "cut to 8"
    );
    assert_eq!(
        i.track_interface,
        [
            TrackInterface {
                name: "eth0".into(),
                weight: None
            },
            TrackInterface {
                name: "eth1".into(),
                weight: Some(-10)
            }
        ]
    );
    assert_eq!(i.track_script[1].weight, Some(5));
    let rs = &c.virtual_servers[0].real_servers[0];
    assert!(rs.inhibit_on_failure);
    let CheckerKind::Misc(m) = &rs.checkers[0].kind else {
        panic!()
    };
    assert_eq!(
        m.path.argv,
        ["/usr/local/bin/check_app.sh", "198.18.1.31", "8080"]
    );
    assert!(m.dynamic);
    assert_eq!(m.timeout, Some(secs(5)));
    assert_eq!(rs.checkers[0].common.retry, 0, "MISC_CHECK retry default 0");
}

#[test]
fn notify_scripts_quorum_sorry() {
    let c = corpus("notify_scripts.conf");
    let g = &c.vrrp_sync_groups[0];
    assert_eq!(
        g.notify.master.as_ref().unwrap().argv,
        ["/etc/keepalived/notify.sh", "master"]
    );
    let i = &c.vrrp_instances[0];
    assert_eq!(
        i.notify.master.as_ref().unwrap().argv,
        ["/etc/keepalived/to_master.sh"]
    );
    assert_eq!(
        i.notify.fault.as_ref().unwrap().argv,
        ["/etc/keepalived/to_fault.sh", "VI_A"]
    );
    assert_eq!(
        i.notify.stop.as_ref().unwrap().argv,
        ["/etc/keepalived/stop.sh"]
    );
    assert_eq!(
        i.notify.any.as_ref().unwrap().argv,
        ["/etc/keepalived/any_state.sh"]
    );
    assert_eq!((i.garp.master_delay, i.garp.master_repeat), (secs(1), 5));
    let i2 = &c.vrrp_instances[1];
    assert_eq!(
        (i2.garp.master_delay, i2.garp.master_repeat),
        (secs(10), 3),
        "global"
    );
    let vs = &c.virtual_servers[0];
    assert_eq!((vs.quorum, vs.hysteresis), (2, 1));
    assert_eq!(
        vs.quorum_up.as_ref().unwrap().argv,
        ["/etc/keepalived/quorum.sh", "up"]
    );
    let ss = vs.sorry_server.as_ref().unwrap();
    assert_eq!(
        (ss.addr, ss.port, ss.fwd),
        (ip("198.19.0.99"), 2525, LbKind::Nat)
    );
    assert_eq!(
        vs.real_servers[0].notify_up.as_ref().unwrap().argv,
        ["/etc/keepalived/rs.sh", "up", "198.19.0.41"]
    );
}

#[test]
fn persistence_thresholds_flags() {
    let c = corpus("wrr_wlc_persistence.conf");
    let p = c.virtual_servers[0].persistence.unwrap();
    assert_eq!(p.timeout, 600);
    assert_eq!(p.granularity, Netmask::V4("255.255.255.0".parse().unwrap()));
    assert_eq!(
        c.virtual_servers[1].persistence.unwrap().timeout,
        360,
        "bare keyword"
    );
    let r = &c.virtual_servers[0].real_servers[1];
    assert_eq!((r.uthreshold, r.lthreshold), (1000, 800));
    let f = c.virtual_servers[2].scheduler.flags;
    assert!(f.sh_port && f.sh_fallback && !f.mh_port);
}

#[test]
fn fnat_ferrovs_block_and_laddr() {
    let c = corpus("fnat_local_address.conf");
    let f = &c.ferrovs;
    assert_eq!(f.backend, Backend::Dpdk);
    assert_eq!(f.workers, Some(4));
    assert_eq!(f.interfaces, ["dpdk0"]);
    assert_eq!(
        f.dpdk.eal_args,
        ["-l", "0-4", "-n", "4", "--file-prefix=ferrovs"]
    );
    assert_eq!(f.conn_table_size, 2097152);
    let g = c.local_address_group("laddr_g1").unwrap();
    assert_eq!(g.addresses().len(), 12);
    assert_eq!(g.ranges[0].interface.as_deref(), Some("dpdk0"));
    let vs = &c.virtual_servers[0];
    assert_eq!(vs.lb_kind, LbKind::FullNat);
    assert_eq!(vs.laddr_group_name.as_deref(), Some("laddr_g1"));
    assert!(vs.alpha && vs.omega);
    assert!(vs.real_servers.iter().all(|r| !r.initially_alive()));
    assert_eq!(
        c.virtual_servers[1].lb_kind,
        LbKind::FullNat,
        "FULLNAT alias"
    );
    assert_eq!(c.virtual_servers[1].real_servers[0].port, 8443);
}

#[test]
fn ipv6_services_groups_and_nat64() {
    let c = corpus("ipv6_services.conf");
    let g = c.local_address_group("laddr6").unwrap();
    assert_eq!(g.addresses().len(), 4);
    assert_eq!(
        g.ranges[0].interface.as_deref(),
        Some("eth-lan"),
        "an interface name with '-' is not a range"
    );
    assert_eq!(
        c.local_address_group("laddr4").unwrap().addresses().len(),
        4
    );
    let nat64 = &c.virtual_servers[3];
    assert!(nat64.real_servers.iter().all(|r| r.addr.is_ipv4()));
    assert_eq!(nat64.lb_kind, LbKind::FullNat);
}

#[test]
fn vips_v3_groups_fwmark() {
    let c = corpus("several_vips.conf");
    let i = &c.vrrp_instances[0];
    assert_eq!(i.version, 3);
    assert_eq!(i.virtual_ipaddress.len(), 4);
    assert_eq!(i.virtual_ipaddress[3].prefix_len, 64);
    assert_eq!(i.virtual_ipaddress_excluded.len(), 1);
    assert!(c.virtual_servers[3].ops);
    assert_eq!(c.virtual_servers[5].address, VsAddress::Fwmark(5));
    assert_eq!(c.virtual_servers[5].real_servers[0].port, 0);
    let g = c.virtual_server_group("WEB_VIPS").unwrap();
    assert_eq!(
        g.entries,
        [
            VsgEntry::Range {
                first: ip("198.18.0.170"),
                last: ip("198.18.0.172"),
                port: 8080
            },
            VsgEntry::Fwmark(7)
        ]
    );
    assert_eq!(
        c.ferrovs.effective_interfaces(&c),
        ["eth0"],
        "dataplane ports default to the vrrp interfaces"
    );
}

#[test]
fn includes_definitions_and_conditionals() {
    let c = corpus("include/main.conf");
    assert_eq!(c.global.router_id.as_deref(), Some("lb_inc"));
    assert_eq!(
        c.vrrp_instances[0].priority, 100,
        "@^lb1 line kept without config id"
    );
    assert_eq!(
        c.vrrp_instances[0].virtual_ipaddress[0].addr,
        ip("198.18.0.180")
    );
    assert_eq!(c.virtual_servers[0].lb_kind, LbKind::Dr);
    assert_eq!(c.virtual_servers[0].real_servers.len(), 2);
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/include/main.conf");
    let l = load_with(
        &RealFs,
        &p,
        &LexOptions {
            config_id: Some("lb1".into()),
        },
    );
    assert_eq!(
        l.config.vrrp_instances[0].priority, 150,
        "@lb1 line with -i lb1"
    );
}

#[test]
fn keepalived_defaults_for_a_minimal_service() {
    let l = load_str(
        "m.conf",
        "virtual_server 198.18.0.1 80 {\n real_server 198.18.1.1 80 {\n  TCP_CHECK {\n  }\n }\n}\n",
    );
    let msgs: Vec<String> = l.diagnostics.items.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        msgs,
        [
            "m.conf:1:1: warning: Virtual server 198.18.0.1:80: no protocol set - defaulting to UDP",
            "m.conf:1:1: warning: Virtual server 198.18.0.1:80: no scheduler set, setting default 'wlc'",
            "m.conf:1:1: warning: Virtual server 198.18.0.1:80: no forwarding method set, setting default NAT",
        ]
    );
    let vs = &l.config.virtual_servers[0];
    assert_eq!(vs.protocol, Protocol::Udp);
    assert_eq!(vs.lb_kind, LbKind::Nat);
    assert_eq!(vs.scheduler.name, Scheduler::Wlc);
    assert_eq!(vs.delay_loop, secs(60));
    let ch = &vs.real_servers[0].checkers[0].common;
    assert_eq!(
        (
            ch.connect_timeout,
            ch.retry,
            ch.delay_before_retry,
            ch.delay_loop
        ),
        (secs(5), 1, secs(1), secs(60))
    );
}

#[test]
fn lvs_globals() {
    let l = load_str(
        "g.conf",
        "global_defs {\n lvs_timeouts tcp 7200 tcpfin 120 udp 300\n lvs_flush\n lvs_sync_daemon eth1 VI_1 id 7 port 8849\n}\nvrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  198.18.0.1\n }\n}\n",
    );
    assert!(l.diagnostics.items.is_empty(), "{:?}", l.diagnostics.items);
    let g = &l.config.global;
    assert_eq!(
        g.lvs_timeouts,
        Some(LvsTimeouts {
            tcp: 7200,
            tcpfin: 120,
            udp: 300
        })
    );
    assert!(g.lvs_flush && !g.lvs_flush_onstop);
    let sd = g.lvs_sync_daemon.as_ref().unwrap();
    assert_eq!(
        (sd.options.interface.as_str(), sd.vrrp_instance.as_str()),
        ("eth1", "VI_1")
    );
    let o = &sd.options;
    assert_eq!((o.sync_id, o.port, o.ttl), (Some(7), 8849, 1));
}

#[test]
fn dpdk_block_ports_pool_and_steering() {
    let l = ferrovs_config::load_str(
        "k.conf",
        "ferrovs {\n backend dpdk\n interface fvs0 fvs1\n dpdk {\n  eal_args \"--no-huge -m 256\" \"--no-pci\"\n  port fvs0 net_af_packet0\n  port fvs1 0000:03:00.0\n  mbufs 8192\n  rx_desc 512\n  tx_desc 2048\n  flow_steering software\n }\n}\n",
    );
    assert!(!l.diagnostics.has_errors(), "{:?}", l.diagnostics.items);
    let d = &l.config.ferrovs.dpdk;
    assert_eq!(d.eal_args, ["--no-huge", "-m", "256", "--no-pci"]);
    assert_eq!(
        d.ports,
        [
            ("fvs0".to_string(), "net_af_packet0".to_string()),
            ("fvs1".to_string(), "0000:03:00.0".to_string())
        ]
    );
    assert_eq!((d.mbufs, d.rx_desc, d.tx_desc), (8192, 512, 2048));
    assert!(!d.flow_steering);
    let defaults = ferrovs_config::load_str("k.conf", "ferrovs {\n dpdk {\n }\n}\n");
    let d = &defaults.config.ferrovs.dpdk;
    assert_eq!(
        (d.mbufs, d.rx_desc, d.tx_desc, d.flow_steering),
        (0, 1024, 1024, true)
    );
    for bad in ["port fvs0", "rx_desc 10", "flow_steering sometimes"] {
        let l = ferrovs_config::load_str(
            "k.conf",
            &format!("ferrovs {{\n dpdk {{\n  {bad}\n }}\n}}\n"),
        );
        assert!(l.diagnostics.has_errors(), "{bad} should be refused");
    }
}

#[test]
fn control_socket_group() {
    let l = ferrovs_config::load_str(
        "k.conf",
        "ferrovs {\n control_socket /run/x/ctl.sock\n control_socket_group lbadmin\n}\n",
    );
    assert!(!l.diagnostics.has_errors(), "{:?}", l.diagnostics.items);
    let f = &l.config.ferrovs;
    assert_eq!(f.control_socket, Path::new("/run/x/ctl.sock"));
    assert_eq!(f.control_socket_group.as_deref(), Some("lbadmin"));
    let numeric = ferrovs_config::load_str("k.conf", "ferrovs {\n control_socket_group 990\n}\n");
    assert_eq!(
        numeric.config.ferrovs.control_socket_group.as_deref(),
        Some("990")
    );
    let none = ferrovs_config::load_str("k.conf", "ferrovs {\n workers 1\n}\n");
    assert_eq!(
        none.config.ferrovs.control_socket_group, None,
        "root alone by default"
    );
    for bad in ["control_socket_group", "control_socket_group a:b"] {
        let l = ferrovs_config::load_str("k.conf", &format!("ferrovs {{\n {bad}\n}}\n"));
        assert!(l.diagnostics.has_errors(), "{bad} should be refused");
    }
}

#[test]
fn xdp_fast_path_is_auto_unless_set() {
    let f = |text: &str| {
        let l = ferrovs_config::load_str("k.conf", text);
        assert!(!l.diagnostics.has_errors(), "{:?}", l.diagnostics.items);
        l.config.ferrovs.xdp_fast_path
    };
    assert_eq!(f("ferrovs {\n    workers 1\n}\n"), None);
    assert_eq!(f("ferrovs {\n    xdp_fast_path on\n}\n"), Some(true));
    assert_eq!(f("ferrovs {\n    xdp_fast_path off\n}\n"), Some(false));
    assert_eq!(f("ferrovs {\n    xdp_fast_path auto\n}\n"), None);
    let l = ferrovs_config::load_str("k.conf", "ferrovs {\n    xdp_fast_path maybe\n}\n");
    assert!(l.diagnostics.has_errors());
}

#[test]
fn ferrovs_bgp_block_and_sloppy_tcp() {
    let text = "ferrovs {\n  sloppy_tcp on\n  bgp {\n    local_as 65011\n    neighbor 198.18.2.1 {\n      peer_as 65000\n      local_address 198.18.2.11\n      hold_time 9\n    }\n    neighbor 2001:db8:2::1 {\n      peer_as 65000\n      local_address 2001:db8:2::11\n      md5_password \"s3cret\"\n    }\n    med 10\n    community 65000:1 65000:2\n    drain_timeout 120\n  }\n}\n";
    let fs = ferrovs_config::MemFs::new().with("/etc/keepalived/keepalived.conf", text);
    let l = ferrovs_config::load_with(
        &fs,
        std::path::Path::new("/etc/keepalived/keepalived.conf"),
        &ferrovs_config::LexOptions::default(),
    );
    assert!(!l.diagnostics.has_errors(), "{:?}", l.diagnostics.items);
    let f = &l.config.ferrovs;
    assert!(f.sloppy_tcp);
    let b = f.bgp.as_ref().unwrap();
    // The router id is the first IPv4 local address when not given.
    assert_eq!(
        b.router_id,
        "198.18.2.11".parse::<std::net::Ipv4Addr>().unwrap()
    );
    assert_eq!(b.local_as, 65011);
    assert_eq!(b.neighbors.len(), 2);
    assert_eq!(b.neighbors[0].hold_time, 9);
    assert_eq!(b.neighbors[1].hold_time, 90);
    assert_eq!(b.neighbors[1].md5_password.as_deref(), Some("s3cret"));
    assert_eq!(b.med, Some(10));
    assert_eq!(b.communities, [(65000, 1), (65000, 2)]);
    assert_eq!(b.next_hop, None);
    assert_eq!(b.exabgp, std::path::PathBuf::from("/usr/sbin/exabgp"));
    assert_eq!(b.drain_timeout, 120);
    // Not given: SIGTERM stops at once, as before.
    let l = ferrovs_config::load_str(
        "k.conf",
        "ferrovs {\n  bgp {\n    local_as 65011\n    neighbor 198.18.2.1 {\n      peer_as 65000\n      local_address 198.18.2.11\n    }\n  }\n}\n",
    );
    assert!(!l.diagnostics.has_errors(), "{:?}", l.diagnostics.items);
    assert_eq!(l.config.ferrovs.bgp.unwrap().drain_timeout, 0);
}

#[test]
fn ferrovs_state_dir() {
    let f = |t: &str| ferrovs_config::load_str("k.conf", t);
    let d = f("ferrovs {\n}\n");
    assert_eq!(
        d.config.ferrovs.state_dir.as_deref(),
        Some(std::path::Path::new("/run/ferrovs/state"))
    );
    let l = f("ferrovs {\n    state_dir /dev/shm/ferrovs\n}\n");
    assert_eq!(
        l.config.ferrovs.state_dir.as_deref(),
        Some(std::path::Path::new("/dev/shm/ferrovs"))
    );
    assert_eq!(
        f("ferrovs {\n    state_dir off\n}\n")
            .config
            .ferrovs
            .state_dir,
        None
    );
    let l = f("ferrovs {\n    state_dir relative/dir\n}\n");
    assert!(l.diagnostics.has_errors());
    assert!(format!("{:?}", l.diagnostics.items).contains("absolute path"));
}

#[test]
fn sync_active_active_runs_both_daemons_with_lvs_sync_daemon_options() {
    let l = load_str(
        "g.conf",
        "ferrovs {\n sync_active_active eth1 id 61 group ff02::8:81 port 8849 ttl 2 maxlen 1200\n}\n",
    );
    assert!(l.diagnostics.items.is_empty(), "{:?}", l.diagnostics.items);
    assert_eq!(
        l.config.ferrovs.sync_active_active,
        Some(SyncOptions {
            interface: "eth1".into(),
            sync_id: Some(61),
            maxlen: Some(1200),
            port: 8849,
            ttl: 2,
            group: "ff02::8:81".parse().unwrap(),
        })
    );
    // Defaults: IPVS's group and port; no sync id (the daemon takes
    // ipvsadm's 0, controlplane/src/sync/settings.rs).
    let l = load_str("g.conf", "ferrovs {\n sync_active_active eth1\n}\n");
    let s = l.config.ferrovs.sync_active_active.unwrap();
    assert_eq!(
        (s.sync_id, s.port, s.ttl, s.group),
        (None, 8848, 1, "224.0.0.81".parse().unwrap())
    );
}
