//! Error and warning cases with their exact messages and locations.

use ferrovs_config::{load_with, LexOptions, MemFs, Severity};
use std::path::Path;

/// Diagnostics of `text` loaded as /etc/keepalived/keepalived.conf (with
/// extra files), as the check command prints them.
fn diags_with(text: &str, extra: &[(&str, &str)]) -> Vec<String> {
    let mut fs = MemFs::new().with("/etc/keepalived/keepalived.conf", text);
    for (p, t) in extra {
        fs = fs.with(p, t);
    }
    let l = load_with(
        &fs,
        Path::new("/etc/keepalived/keepalived.conf"),
        &LexOptions::default(),
    );
    l.diagnostics
        .items
        .iter()
        .filter(|d| !d.message.contains("No VIP specified"))
        .map(|d| {
            d.to_string()
                .replace("/etc/keepalived/keepalived.conf", "k.conf")
        })
        .collect()
}

fn diags(text: &str) -> Vec<String> {
    diags_with(text, &[])
}

const VS_OK: &str =
    "    lb_algo rr\n    lb_kind DR\n    protocol TCP\n    real_server 198.18.1.1 80\n";

fn vrrp(body: &str) -> String {
    format!("vrrp_instance VI_1 {{\n    interface eth0\n{body}}}\n")
}

#[test]
fn vrid_out_of_range() {
    assert_eq!(
        diags(&vrrp("    virtual_router_id 256\n")),
        ["k.conf:3:23: virtual_router_id: VRID '256' not valid - must be between 1 & 255"]
    );
    assert_eq!(
        diags(&vrrp("    virtual_router_id 0\n")),
        ["k.conf:3:23: virtual_router_id: VRID '0' not valid - must be between 1 & 255"]
    );
}

#[test]
fn missing_vrid() {
    assert_eq!(
        diags(&vrrp("    priority 100\n")),
        ["k.conf:1:1: vrrp_instance VI_1: no virtual_router_id given"]
    );
}

#[test]
fn priority_out_of_range() {
    assert_eq!(
        diags(&vrrp("    virtual_router_id 5\n    priority 256\n")),
        ["k.conf:4:14: priority: '256' not valid - must be between 1 & 255"]
    );
    assert_eq!(
        diags(&vrrp("    virtual_router_id 5\n    priority 0\n")),
        ["k.conf:4:14: priority: '0' not valid - must be between 1 & 255"]
    );
}

#[test]
fn duplicate_vrid_on_one_interface() {
    let t = "vrrp_instance A {\n interface eth0\n virtual_router_id 7\n}\nvrrp_instance B {\n interface eth0\n virtual_router_id 7\n}\nvrrp_instance C {\n interface eth1\n virtual_router_id 7\n}\n";
    assert_eq!(
        diags(t),
        ["k.conf:7:20: VRID 7 is already used by vrrp_instance A on interface eth0 (at k.conf:3:20)"]
    );
}

#[test]
fn duplicate_services() {
    let t = format!(
        "virtual_server 198.18.0.1 80 {{\n{VS_OK}}}\nvirtual_server 198.18.0.1 80 {{\n{VS_OK}}}\nvirtual_server 198.18.0.1 80 {{\n    protocol UDP\n    lb_algo rr\n    lb_kind DR\n    real_server 198.18.1.1 80\n}}\n"
    );
    assert_eq!(
        diags(&t),
        ["k.conf:7:1: duplicate virtual server TCP 198.18.0.1:80 (first defined at k.conf:1:1)"]
    );
}

#[test]
fn duplicate_service_through_a_group() {
    let t = format!(
        "virtual_server_group G {{\n  198.18.0.1-3 80\n}}\nvirtual_server group G {{\n{VS_OK}}}\nvirtual_server 198.18.0.2 80 {{\n{VS_OK}}}\n"
    );
    assert_eq!(
        diags(&t),
        ["k.conf:10:1: duplicate virtual server TCP 198.18.0.2:80 (first defined at k.conf:4:1)"]
    );
}

#[test]
fn fnat_without_local_addresses() {
    let t = "virtual_server 198.18.0.1 80 {\n    lb_algo rr\n    lb_kind FNAT\n    protocol TCP\n    real_server 198.18.1.1 80\n}\n";
    assert_eq!(
        diags(t),
        ["k.conf:1:1: FNAT (FULLNAT) virtual server needs local addresses: add laddr_group_name"]
    );
    let t2 = t.replace("protocol TCP", "protocol TCP\n    laddr_group_name LAG9");
    assert_eq!(
        diags(&t2),
        ["k.conf:5:22: local_address_group LAG9 does not exist"]
    );
}

#[test]
fn fnat_servers_need_local_addresses_of_their_family() {
    // NAT64: an IPv6 VIP, an IPv4 server, and only IPv6 local addresses.
    let t = "local_address_group L6 {\n    2001:db8:1::100\n}\nvirtual_server 2001:db8::1 80 {\n    lb_algo rr\n    lb_kind FNAT\n    protocol TCP\n    laddr_group_name L6\n    real_server 198.18.1.1 80\n}\n";
    assert_eq!(
        diags(t),
        ["k.conf:8:22: FNAT real server 198.18.1.1 needs IPv4 local addresses, and local_address_group L6 has none"]
    );
    // With an IPv4 one beside it: usable.
    let ok = t.replace(
        "    2001:db8:1::100\n",
        "    2001:db8:1::100\n    198.18.1.100\n",
    );
    assert!(diags(&ok).is_empty(), "{:?}", diags(&ok));
}

#[test]
fn malformed_addresses() {
    assert_eq!(
        diags(&vrrp("    virtual_router_id 5\n    virtual_ipaddress {\n        198.18.0.300/24 dev eth0\n    }\n")),
        ["k.conf:5:9: virtual_ipaddress: invalid IP address '198.18.0.300/24'"]
    );
    assert_eq!(
        diags(&vrrp(
            "    virtual_router_id 5\n    virtual_ipaddress {\n        198.18.0.3/33\n    }\n"
        )),
        ["k.conf:5:9: virtual_ipaddress: invalid prefix length '/33' for 198.18.0.3"]
    );
    assert_eq!(
        diags("virtual_server 198.18.0.1 80 {\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n    real_server 198.18.1 80\n}\n"),
        [
            "k.conf:5:17: real_server: invalid IP address '198.18.1'",
            "k.conf:1:1: warning: quorum 1 for 198.18.0.1:80 exceeds total weight of real servers 0, reducing quorum to 0",
        ]
    );
    assert_eq!(
        diags("virtual_server 198.18.0.1 70000 {\n}\n"),
        ["k.conf:1:27: virtual_server: '70000' is not a number in 0-65535"]
    );
    assert_eq!(
        diags("virtual_server 198.18.0.1:80 {\n}\n"),
        ["k.conf:1:16: virtual_server: invalid IP address '198.18.0.1:80'"]
    );
    assert_eq!(
        diags(&vrrp(
            "    virtual_router_id 5\n    unicast_peer {\n        198.18.0.x\n    }\n"
        )),
        ["k.conf:5:9: unicast_peer: invalid IP address '198.18.0.x'"]
    );
    assert_eq!(
        diags(&vrrp(
            "    virtual_router_id 5\n    unicast_peer {\n        198.18.0.3 min_ttl 300\n    }\n"
        )),
        ["k.conf:5:28: unicast_peer: min_ttl '300' must be 0-255"]
    );
    assert_eq!(
        diags(&vrrp(
            "    virtual_router_id 5\n    unicast_peer {\n        198.18.0.3 min_ttl 200 max_ttl 100\n    }\n"
        )),
        ["k.conf:5:9: unicast_peer: min_ttl 200 is above max_ttl 100"]
    );
}

#[test]
fn include_matching_nothing() {
    assert_eq!(
        diags("include conf.d/*.conf\n"),
        ["k.conf:1:9: warning: include 'conf.d/*.conf' matches no file - ignoring"]
    );
}

#[test]
fn errors_inside_included_files_name_that_file() {
    let d = diags_with(
        "include conf.d/vs.conf\n",
        &[(
            "/etc/keepalived/conf.d/vs.conf",
            "virtual_server 198.18.0.1 80 {\n    lb_algo nope\n}\n",
        )],
    );
    assert_eq!(
        d,
        [
            "/etc/keepalived/conf.d/vs.conf:2:13: lb_algo: unknown scheduler 'nope'",
            "/etc/keepalived/conf.d/vs.conf:1:1: warning: Virtual server 198.18.0.1:80: no protocol set - defaulting to UDP",
            "/etc/keepalived/conf.d/vs.conf:1:1: warning: Virtual server 198.18.0.1:80: no scheduler set, setting default 'wlc'",
            "/etc/keepalived/conf.d/vs.conf:1:1: warning: quorum 1 for 198.18.0.1:80 exceeds total weight of real servers 0, reducing quorum to 0",
        ]
    );
}

#[test]
fn unbalanced_braces() {
    assert_eq!(
        diags("global_defs {\n    router_id x\n"),
        ["k.conf:1:13: missing '}' for the block opened here"]
    );
    assert_eq!(
        diags("global_defs {\n    router_id x\n}\n}\n"),
        ["k.conf:4:1: unexpected '}'"]
    );
}

#[test]
fn unknown_keywords_are_located_warnings() {
    let d =
        diags("global_defs {\n    router_id x\n    frobnicate 3\n}\nmystery_block {\n  a b\n}\n");
    assert_eq!(
        d,
        [
            "k.conf:3:5: warning: unknown keyword 'frobnicate' - ignoring",
            "k.conf:5:1: warning: unknown keyword 'mystery_block' - ignoring",
        ]
    );
}

/// On a pair, a service address no vrrp_instance holds is served by both
/// directors: `check` says so (issue 18 item 4).
#[test]
fn a_service_vip_in_no_instance_warns() {
    let body = "    virtual_router_id 5\n    virtual_ipaddress {\n        198.18.0.1/32\n    }\n";
    let vs = |a: &str| format!("virtual_server {a} 80 {{\n{VS_OK}}}\n");
    let held = format!("{}{}", vrrp(body), vs("198.18.0.1"));
    assert!(diags(&held).is_empty(), "{:?}", diags(&held));
    let stray = format!("{}{}", vrrp(body), vs("198.18.0.2"));
    assert_eq!(
        diags(&stray),
        ["k.conf:8:1: warning: virtual_server address 198.18.0.2 is in no vrrp_instance: every director that loads this file answers ARP for it and forwards its traffic"]
    );
    // Without VRRP the director serves its VIPs alone: no warning.
    assert!(diags(&vs("198.18.0.2")).is_empty());
}

#[test]
fn deprecated_spellings_warn() {
    let t = format!(
        "{}virtual_server 198.18.0.1 80 {{\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n    real_server 198.18.1.1 80 {{\n        TCP_CHECK {{\n            nb_get_retry 4\n        }}\n    }}\n}}\n",
        vrrp("    virtual_router_id 5\n    lvs_sync_daemon_interface eth1\n")
    );
    let l = ferrovs_config::load_str("k.conf", &t);
    let d: Vec<String> = l
        .diagnostics
        .items
        .iter()
        .filter(|d| !d.message.contains("No VIP specified"))
        .filter(|d| !d.message.contains("is in no vrrp_instance"))
        .map(|d| d.to_string())
        .collect();
    assert_eq!(
        d,
        [
            "k.conf:4:5: warning: lvs_sync_daemon_interface is deprecated - use global_defs lvs_sync_daemon",
            "k.conf:12:13: warning: nb_get_retry is deprecated (keepalived 2.2 ignores it in TCP_CHECK) - taken as retry",
        ]
    );
    assert!(l
        .diagnostics
        .items
        .iter()
        .all(|d| d.severity == Severity::Warning));
    assert_eq!(
        l.config.vrrp_instances[0]
            .lvs_sync_daemon_interface
            .as_deref(),
        Some("eth1")
    );
    assert_eq!(
        l.config.virtual_servers[0].real_servers[0].checkers[0]
            .common
            .retry,
        4
    );
}

#[test]
fn references_to_missing_names() {
    let t = format!(
        "vrrp_sync_group G {{\n    group {{\n        VI_1\n        VI_X\n    }}\n}}\n{}virtual_server group NOPE {{\n{VS_OK}}}\n",
        vrrp("    virtual_router_id 5\n    track_script {\n        chk_missing\n    }\n")
    );
    assert_eq!(
        diags(&t),
        [
            "k.conf:11:9: warning: (VI_1) track_script chk_missing not found - ignoring",
            "k.conf:4:9: vrrp_instance VI_X named in vrrp_sync_group G does not exist",
            "k.conf:14:1: virtual_server_group NOPE does not exist",
        ]
    );
}

#[test]
fn bad_values() {
    let t = "virtual_server 198.18.0.1 80 {\n    lb_algo rr\n    lb_kind XX\n    protocol ICMP\n    delay_loop abc\n    real_server 198.18.1.1 80 {\n        weight 70000\n        HTTP_GET {\n            url {\n                status_code 200\n            }\n        }\n    }\n}\n";
    assert_eq!(
        diags(t),
        [
            "k.conf:3:13: lb_kind: unknown forwarding method 'XX' (DR, NAT, TUN, FNAT)",
            "k.conf:4:14: protocol: unknown protocol 'ICMP' (TCP, UDP, SCTP)",
            "k.conf:5:16: delay_loop: 'abc' is not a duration in seconds",
            "k.conf:7:16: weight: '70000' is not a number in 0-65535",
            "k.conf:9:13: url: no path given",
            "k.conf:8:9: HTTP_GET: no url given",
            "k.conf:1:1: warning: Virtual server 198.18.0.1:80: no protocol set - defaulting to UDP",
            "k.conf:1:1: warning: Virtual server 198.18.0.1:80: no forwarding method set, setting default NAT",
        ]
    );
}

#[test]
fn auth_pass_truncated_with_warning() {
    let l = ferrovs_config::load_str(
        "k.conf",
        &vrrp("    virtual_router_id 5\n    authentication {\n        auth_type PASS\n        auth_pass \"longer than eight\"\n    }\n"),
    );
    let d: Vec<String> = l.diagnostics.items.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        d,
        [
            "k.conf:6:19: warning: Truncating auth_pass to 8 characters",
            "k.conf:1:1: warning: (VI_1) No VIP specified; at least one is sensible",
        ]
    );
    assert_eq!(
        l.config.vrrp_instances[0]
            .authentication
            .as_ref()
            .unwrap()
            .auth_pass,
        "longer t"
    );
}

#[test]
fn vrrp_state_and_priority_defaults_follow_keepalived() {
    let l = ferrovs_config::load_str(
        "k.conf",
        "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n state MASTER\n virtual_ipaddress {\n  198.18.0.1\n }\n}\n\
         vrrp_instance B {\n interface eth0\n virtual_router_id 2\n priority 255\n virtual_ipaddress {\n  198.18.0.2\n }\n}\n\
         vrrp_instance C {\n interface eth0\n virtual_router_id 3\n virtual_ipaddress {\n  198.18.0.3\n }\n}\n",
    );
    assert!(l.diagnostics.items.is_empty(), "{:?}", l.diagnostics.items);
    let i = &l.config.vrrp_instances;
    use ferrovs_config::VrrpState::*;
    assert_eq!(
        (i[0].state, i[0].priority),
        (Master, 255),
        "MASTER without priority is the owner"
    );
    assert_eq!(
        (i[1].state, i[1].priority),
        (Master, 255),
        "priority 255 without state is MASTER"
    );
    assert_eq!((i[2].state, i[2].priority), (Backup, 100));
}

#[test]
fn strict_mode_and_v3_drop_authentication() {
    let t = "global_defs {\n vrrp_strict\n}\nvrrp_instance A {\n interface eth0\n virtual_router_id 1\n authentication {\n  auth_type PASS\n  auth_pass x\n }\n}\n";
    assert_eq!(
        diags(t),
        ["k.conf:4:1: warning: (A) Strict mode does not support authentication. Ignoring"]
    );
}

#[test]
fn group_entry_without_port_makes_the_service_persistent() {
    // Found by the fuzz target: a zero-port group entry used to yield a
    // non-persistent port-0 service that ipvsadm -R would refuse.
    let t = "virtual_server_group G {\n    198.18.0.1\n}\nvirtual_server group G {\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n    real_server 198.18.1.1 80\n}\n";
    assert_eq!(
        diags(t),
        ["k.conf:4:1: warning: Virtual server group G: zero port only valid for persistent services - setting"]
    );
    let l = ferrovs_config::load_str("k.conf", t);
    let table = ferrovs_config::ipvs::initial_table(&l.config);
    let rules = ferrovs_config::ipvsadm::format_rules(&table, false);
    assert_eq!(
        rules,
        "-A -t 198.18.0.1:0 -s rr -p 360\n-a -t 198.18.0.1:0 -r 198.18.1.1:0 -g -w 1\n"
    );
    assert!(ferrovs_config::ipvsadm::table_from_rules(&rules).is_ok());
}

#[test]
fn group_expansion_is_bounded() {
    let t = "virtual_server_group G {\n    2001:db8::1-ffff 80\n    2001:db8:1::1-ffff 80\n}\nvirtual_server group G {\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n}\n";
    assert_eq!(
        diags(t),
        [
            "k.conf:5:1: warning: quorum 1 for [G] exceeds total weight of real servers 0, reducing quorum to 0",
            "k.conf:5:1: more than 65536 virtual services",
        ]
    );
}

#[test]
fn address_families_must_agree_unless_tunnelled() {
    let t = "virtual_server fwmark 5 {\n    lb_algo rr\n    lb_kind DR\n    real_server 198.18.1.1 0\n    real_server 2001:db8::1 0\n    real_server 2001:db8::2 0 {\n        lvs_method TUN\n    }\n}\n";
    assert_eq!(
        diags(t),
        ["k.conf:5:5: Address family of virtual server FWM 5 and real server 2001:db8::1 don't match"]
    );
    let g = "virtual_server_group G {\n    2001:db8::10 80\n}\nvirtual_server group G {\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n    real_server 198.18.1.1 80\n}\n";
    assert_eq!(
        diags(g),
        ["k.conf:4:1: virtual_server_group G entry 2001:db8::10 and the real servers differ in address family"]
    );
    let s = "virtual_server 198.18.0.1 80 {\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n    sorry_server 2001:db8::9 80\n    real_server 198.18.1.1 80\n}\n";
    assert_eq!(
        diags(s),
        ["k.conf:5:5: Address family of virtual server 198.18.0.1:80 and sorry server 2001:db8::9 don't match"]
    );
}

#[test]
fn syn_proxy_needs_nat_or_fnat() {
    let vs = |kind: &str, rs_kind: &str| {
        format!(
            "virtual_server 198.18.0.100 80 {{\n    lb_algo rr\n    lb_kind {kind}\n    protocol TCP\n    syn_proxy\n    real_server 198.18.1.1 80 {{\n{rs_kind}    }}\n}}\n"
        )
    };
    assert_eq!(diags(&vs("NAT", "")), Vec::<String>::new());
    assert_eq!(
        diags(&vs("DR", "")),
        ["k.conf:5:5: Virtual server 198.18.0.100:80: syn_proxy needs lb_kind NAT or FNAT (DR replies bypass the director)"]
    );
    assert_eq!(
        diags(&vs("NAT", "        lb_kind TUN\n")),
        ["k.conf:5:5: Virtual server 198.18.0.100:80: syn_proxy needs lb_kind NAT or FNAT (TUN replies bypass the director)"]
    );
    let l = ferrovs_config::load_str("k.conf", &vs("NAT", ""));
    assert!(l.config.virtual_servers[0].syn_proxy);
}

/// IPv6 services take syn_proxy as IPv4 ones do (NAT66, FULLNAT66, NAT64),
/// with the same refusal where replies bypass the director.
#[test]
fn syn_proxy_for_ipv6_services() {
    let vs = |kind: &str, rs: &str, extra: &str| {
        format!(
            "local_address_group L6 {{\n    2001:db8:1::100\n}}\nlocal_address_group L4 {{\n    198.18.1.100\n}}\nvirtual_server 2001:db8::100 80 {{\n    lb_algo rr\n    lb_kind {kind}\n{extra}    protocol TCP\n    syn_proxy\n    real_server {rs} 80 {{\n    }}\n}}\n"
        )
    };
    for (kind, rs, extra) in [
        ("NAT", "2001:db8:1::5", ""),
        ("FNAT", "2001:db8:1::5", "    laddr_group_name L6\n"),
        ("FNAT", "198.18.1.5", "    laddr_group_name L4\n"),
    ] {
        let conf = vs(kind, rs, extra);
        assert_eq!(diags(&conf), Vec::<String>::new(), "{kind} {rs}");
        let l = ferrovs_config::load_str("k.conf", &conf);
        assert!(l.config.virtual_servers[0].syn_proxy, "{kind} {rs}");
    }
    assert_eq!(
        diags(&vs("DR", "2001:db8:1::5", "")),
        ["k.conf:11:5: Virtual server [2001:db8::100]:80: syn_proxy needs lb_kind NAT or FNAT (DR replies bypass the director)"]
    );
    assert_eq!(
        diags(&vs("TUN", "198.18.1.5", "")),
        ["k.conf:11:5: Virtual server [2001:db8::100]:80: syn_proxy needs lb_kind NAT or FNAT (TUN replies bypass the director)"]
    );
}

/// An instance whose first address is IPv6 runs VRRPv3 over IPv6, as
/// keepalived runs it: the global vrrp_version does not apply, `version 2`
/// gets keepalived's strict-mode warning and version 3, and addresses,
/// sources and peers of the other family are ignored with a warning.
#[test]
fn ipv6_instances_are_vrrpv3() {
    let text = "global_defs {\n    vrrp_version 2\n}\n".to_string()
        + &vrrp(
            "    virtual_router_id 61\n    version 2\n    unicast_src_ip 198.18.0.1\n    unicast_peer {\n        2001:2::2\n        198.18.0.2\n    }\n    virtual_ipaddress {\n        2001:2::100/64\n        198.18.0.100\n    }\n",
        );
    assert_eq!(
        diags(&text),
        [
            "k.conf:7:5: warning: (VI_1) cannot use IPv6 with VRRP version 2; setting version 3",
            "k.conf:4:1: warning: (VI_1) address family must match VRRP instance [198.18.0.100] - ignoring",
            "k.conf:4:1: warning: Configuration error: VRRP instance[VI_1] and src address[198.18.0.1] MUST be of the same family !!! Skipping...",
            "k.conf:4:1: warning: Configuration error: VRRP instance[VI_1] and unicast peer address[198.18.0.2] MUST be of the same family !!! Skipping...",
        ]
    );
    let fs = MemFs::new().with("/k.conf", &text);
    let l = load_with(&fs, Path::new("/k.conf"), &LexOptions::default());
    assert!(!l.diagnostics.has_errors());
    assert_eq!(l.config.vrrp_instances[0].version, 3);
    // Without `version`, the global vrrp_version 2 is for IPv4 instances.
    let text = "global_defs {\n    vrrp_version 2\n}\n".to_string()
        + &vrrp("    virtual_router_id 61\n    virtual_ipaddress {\n        2001:2::100\n    }\n");
    assert!(diags(&text).is_empty(), "{:?}", diags(&text));
    let fs = MemFs::new().with("/k.conf", &text);
    let l = load_with(&fs, Path::new("/k.conf"), &LexOptions::default());
    assert_eq!(l.config.vrrp_instances[0].version, 3);
}

/// keepalived's garp_group: per-interface GARP / NA intervals; a group
/// without any is removed, an interface already in a group stays there.
#[test]
fn garp_groups() {
    let text = "garp_group {\n    garp_interval 0.01\n    gna_interval 0.02\n    interface eth0\n}\ngarp_group {\n    gna_interval 0.005\n    interfaces {\n        eth0\n        eth1 eth2\n    }\n}\ngarp_group {\n    interface eth3\n}\n";
    assert_eq!(
        diags(text),
        [
            "k.conf:6:1: warning: garp_group already specified for eth0 - ignoring",
            "k.conf:13:1: warning: garp group 3 does not have any delay set - removing",
        ]
    );
    let fs = MemFs::new().with("/k.conf", text);
    let l = load_with(&fs, Path::new("/k.conf"), &LexOptions::default());
    let g = &l.config.garp_groups;
    assert_eq!(g.len(), 2);
    assert_eq!(
        g[0].garp_interval,
        Some(std::time::Duration::from_millis(10))
    );
    assert_eq!(
        g[0].gna_interval,
        Some(std::time::Duration::from_millis(20))
    );
    assert_eq!(g[0].interfaces, ["eth0"]);
    assert_eq!(g[1].garp_interval, None);
    assert_eq!(g[1].gna_interval, Some(std::time::Duration::from_millis(5)));
    assert_eq!(g[1].interfaces, ["eth1", "eth2"]);
}

/// `ferrovs { bgp { } }`: what a BGP configuration must have, with the
/// error at the place a reader fixes it.
#[test]
fn bgp_block_errors() {
    assert_eq!(
        diags("ferrovs {\n  bgp {\n    router_id 198.18.2.11\n  }\n}\n"),
        [
            "k.conf:2:3: bgp: missing local_as",
            "k.conf:2:3: bgp: no neighbor (neighbor ADDR { peer_as N; local_address ADDR })"
        ]
    );
    assert_eq!(
        diags("ferrovs {\n  bgp {\n    local_as 0\n    neighbor 198.18.2.1 {\n      peer_as 65000\n    }\n  }\n}\n"),
        [
            "k.conf:3:14: local_as: '0' is not a number in 1-4294967295",
            "k.conf:4:5: neighbor 198.18.2.1: needs peer_as and local_address",
            "k.conf:2:3: bgp: missing local_as",
            "k.conf:2:3: bgp: no neighbor (neighbor ADDR { peer_as N; local_address ADDR })"
        ]
    );
    assert_eq!(
        diags("ferrovs {\n  bgp {\n    local_as 65011\n    neighbor 198.18.2.1 {\n      peer_as 65000\n      local_address 2001:db8::1\n      hold_time 2\n    }\n    community 65000:1 x:2\n    drain_timeout -5\n  }\n}\n"),
        [
            "k.conf:7:7: hold_time: 0 or at least 3 seconds (RFC 4271)",
            "k.conf:4:5: neighbor 198.18.2.1: local_address 2001:db8::1 is of the other family",
            "k.conf:9:23: community: 'x:2' is not ASN:VALUE (two numbers 0-65535)",
            "k.conf:10:19: drain_timeout: '-5' is not a number in 0-86400",
            "k.conf:2:3: bgp: no neighbor (neighbor ADDR { peer_as N; local_address ADDR })"
        ]
    );
}

#[test]
fn lvs_sync_daemon_takes_a_multicast_group_of_either_family() {
    let t = |g: &str| {
        let text = format!(
            "global_defs {{\n    lvs_sync_daemon eth0 VI_1 group {g}\n}}\n{}",
            vrrp("    virtual_router_id 5\n    virtual_ipaddress {\n        198.18.0.100\n    }\n")
        );
        diags(&text)
            .into_iter()
            .filter(|d| d.contains("lvs_sync_daemon"))
            .collect::<Vec<_>>()
    };
    assert!(t("224.0.0.81").is_empty());
    assert_eq!(
        t("198.18.0.9"),
        ["k.conf:2:5: lvs_sync_daemon: group 198.18.0.9 is not a multicast address"]
    );
    assert!(t("ff02::8:81").is_empty());
    assert_eq!(
        t("2001:db8::1"),
        ["k.conf:2:5: lvs_sync_daemon: group 2001:db8::1 is not a multicast address"]
    );
}

#[test]
fn sync_active_active_needs_a_multicast_group_and_excludes_lvs_sync_daemon() {
    assert_eq!(
        diags("ferrovs {\n  sync_active_active eth1 group 198.18.0.9\n}\n"),
        ["k.conf:2:3: sync_active_active: group 198.18.0.9 is not a multicast address"]
    );
    assert_eq!(
        diags("ferrovs {\n  sync_active_active\n}\n")
            .iter()
            .filter(|d| d.contains("sync_active_active"))
            .count(),
        1,
        "the missing interface is said"
    );
    let text = format!(
        "global_defs {{\n    lvs_sync_daemon eth0 VI_1\n}}\nferrovs {{\n  sync_active_active eth1\n}}\n{}",
        vrrp("    virtual_router_id 5\n    virtual_ipaddress {\n        198.18.0.100\n    }\n")
    );
    assert_eq!(
        diags(&text)
            .into_iter()
            .filter(|d| d.contains("sync"))
            .collect::<Vec<_>>(),
        ["k.conf:2:5: lvs_sync_daemon and the ferrovs block's sync_active_active: one or the other (sync_active_active runs both roles always)"]
    );
}
