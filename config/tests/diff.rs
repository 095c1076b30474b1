//! The reload diff: added, removed and changed services, real servers,
//! checkers and VRRP instances; unchanged ones are not mentioned. (What a
//! reload changes in the IPVS table is the control core's
//! `TableChange::diff`, tested there.)

use ferrovs_config::diff::{diff, Change};
use ferrovs_config::{load_str, Config, VsAddress};

const BASE: &str = r#"
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 100
    virtual_ipaddress {
        198.18.0.100/24
    }
}
virtual_server 198.18.0.100 80 {
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server 198.18.1.1 80 {
        weight 1
        TCP_CHECK {
            connect_timeout 3
        }
    }
    real_server 198.18.1.2 80 {
        weight 1
        TCP_CHECK {
            connect_timeout 3
        }
    }
}
virtual_server 198.18.0.100 443 {
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server 198.18.1.1 443
}
"#;

fn cfg(text: &str) -> Config {
    let l = load_str("k.conf", text);
    assert!(!l.diagnostics.has_errors(), "{:?}", l.diagnostics.items);
    l.config
}

#[test]
fn identical_configs_have_an_empty_diff() {
    assert!(diff(&cfg(BASE), &cfg(BASE)).is_empty());
}

#[test]
fn weight_change_is_an_ipvs_edit_of_one_server() {
    let new = BASE.replacen("weight 1\n", "weight 5\n", 1);
    let d = diff(&cfg(BASE), &cfg(&new));
    assert_eq!(d.virtual_servers.len(), 1);
    let v = &d.virtual_servers[0];
    assert!(matches!(v.change, Change::Changed { .. }));
    assert!(!v.service_changed);
    assert_eq!(v.real_servers.len(), 1);
    let r = &v.real_servers[0];
    assert_eq!(r.addr.to_string(), "198.18.1.1");
    assert!(r.ipvs_changed);
    assert!(r.checkers.is_empty());
    assert!(d.vrrp_instances.is_empty());
}

#[test]
fn checker_change_keeps_ipvs_untouched() {
    let new = BASE.replacen("connect_timeout 3", "connect_timeout 9", 1);
    let d = diff(&cfg(BASE), &cfg(&new));
    let r = &d.virtual_servers[0].real_servers[0];
    assert!(!r.ipvs_changed);
    assert_eq!(r.checkers.len(), 1);
    match &r.checkers[0] {
        Change::Changed { old, new } => {
            assert_eq!(old.common.connect_timeout.as_secs(), 3);
            assert_eq!(new.common.connect_timeout.as_secs(), 9);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn added_and_removed_servers_and_services() {
    let new = BASE
        .replace(
            "    real_server 198.18.1.2 80 {",
            "    real_server 198.18.1.3 80\n    real_server 198.18.1.2 80 {",
        )
        .replace(
            "virtual_server 198.18.0.100 443",
            "virtual_server 198.18.0.101 443",
        );
    let old_c = cfg(BASE);
    let new_c = cfg(&new);
    let d = diff(&old_c, &new_c);
    let kinds: Vec<(String, &str)> = d
        .virtual_servers
        .iter()
        .map(|v| {
            let a = match &v.address {
                VsAddress::Addr { addr, port } => format!("{addr}:{port}"),
                other => format!("{other:?}"),
            };
            let k = match v.change {
                Change::Added(_) => "added",
                Change::Removed(_) => "removed",
                Change::Changed { .. } => "changed",
            };
            (a, k)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("198.18.0.100:80".to_string(), "changed"),
            ("198.18.0.100:443".to_string(), "removed"),
            ("198.18.0.101:443".to_string(), "added"),
        ]
    );
    let rs = &d.virtual_servers[0].real_servers;
    assert_eq!(rs.len(), 1);
    assert!(matches!(rs[0].change, Change::Added(_)));
}

#[test]
fn vrrp_instances_match_by_vrid_and_interface() {
    let renamed = BASE
        .replace("VI_1", "VI_RENAMED")
        .replace("priority 100", "priority 120");
    let d = diff(&cfg(BASE), &cfg(&renamed));
    assert_eq!(d.vrrp_instances.len(), 1);
    assert_eq!(d.vrrp_instances[0].virtual_router_id, 51);
    match &d.vrrp_instances[0].change {
        Change::Changed { old, new } => {
            assert_eq!((old.priority, new.priority), (100, 120));
            assert_eq!(new.name, "VI_RENAMED");
        }
        other => panic!("{other:?}"),
    }
    let moved = BASE.replace("virtual_router_id 51", "virtual_router_id 52");
    let d = diff(&cfg(BASE), &cfg(&moved));
    let kinds: Vec<bool> = d
        .vrrp_instances
        .iter()
        .map(|i| matches!(i.change, Change::Added(_)))
        .collect();
    assert_eq!(kinds, [false, true], "old VRID removed, new VRID added");
}

#[test]
fn scheduler_change_is_a_service_edit() {
    let new = BASE.replacen("lb_algo rr", "lb_algo wlc", 1);
    let d = diff(&cfg(BASE), &cfg(&new));
    assert!(d.virtual_servers[0].service_changed);
    assert!(d.virtual_servers[0].real_servers.is_empty());
}
