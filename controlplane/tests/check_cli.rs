//! `ferrovs check` as a user runs it: exit codes, stderr diagnostics and the
//! --dump / --dump-rules / --json outputs.

use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/tests/corpus")
        .join(name)
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrovs"))
        .args(args)
        .output()
        .expect("run ferrovs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn tmp_conf(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferrovs-check-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("keepalived.conf");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn dump_matches_golden_for_every_corpus_file() {
    for name in [
        "dr_master_tcp_check",
        "nat_port_mapping",
        "tun",
        "http_get_status",
        "vrrp_script_weight",
        "notify_scripts",
        "wrr_wlc_persistence",
        "several_vips",
        "fnat_local_address",
        "include/main",
    ] {
        let conf = corpus(&format!("{name}.conf"));
        let (code, out, _) = run(&["check", "-f", conf.to_str().unwrap(), "--dump"]);
        assert_eq!(code, 0, "{name}");
        let golden = std::fs::read_to_string(corpus(&format!("{name}.dump"))).unwrap();
        assert_eq!(out, golden, "{name}");
        let (code, out, _) = run(&["check", "-f", conf.to_str().unwrap(), "--dump-rules"]);
        assert_eq!(code, 0);
        let golden = std::fs::read_to_string(corpus(&format!("{name}.rules"))).unwrap();
        assert_eq!(out, golden, "{name}");
    }
}

#[test]
fn warnings_go_to_stderr_and_exit_zero() {
    let conf = corpus("vrrp_script_weight.conf");
    let (code, out, err) = run(&["check", "-f", conf.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(out, "");
    assert_eq!(
        err,
        format!(
            "{}:38:19: warning: Truncating auth_pass to 8 characters\n",
            conf.display()
        )
    );
}

#[test]
fn errors_exit_non_zero_with_location() {
    let p = tmp_conf(
        "err",
        "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 300\n    bogus_keyword 1\n}\n",
    );
    let (code, out, err) = run(&["check", "-f", p.to_str().unwrap(), "--dump"]);
    assert_eq!(code, 1);
    assert_eq!(out, "", "no dump for an unusable file");
    let f = p.display();
    assert_eq!(
        err,
        format!(
            "{f}:3:23: virtual_router_id: VRID '300' not valid - must be between 1 & 255\n\
             {f}:4:5: warning: unknown keyword 'bogus_keyword' - ignoring\n\
             {f}:1:1: warning: (VI_1) No VIP specified; at least one is sensible\n\
             {f}: 1 error, configuration not usable\n"
        )
    );
    std::fs::remove_dir_all(p.parent().unwrap()).unwrap();
}

#[test]
fn missing_file_is_an_error() {
    let (code, _, err) = run(&["check", "-f", "/nonexistent/ferrovs.conf"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("/nonexistent/ferrovs.conf: cannot read:"),
        "{err}"
    );
}

#[test]
fn json_is_the_model() {
    let conf = corpus("fnat_local_address.conf");
    let (code, out, _) = run(&["check", "-f", conf.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ferrovs"]["backend"], "dpdk");
    assert_eq!(v["virtual_servers"][0]["lb_kind"], "FullNat");
    assert_eq!(v["virtual_servers"][0]["laddr_group_name"], "laddr_g1");
    let back: ferrovs_config::Config = serde_json::from_str(&out).unwrap();
    assert_eq!(
        back,
        ferrovs_config::load_file(&conf).config,
        "JSON round-trips"
    );
}

#[test]
fn config_id_selects_conditional_lines() {
    let conf = corpus("include/main.conf");
    let (code, out, _) = run(&["check", "-f", conf.to_str().unwrap(), "-i", "lb1", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["vrrp_instances"][0]["priority"], 150);
}
