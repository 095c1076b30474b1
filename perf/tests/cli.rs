//! `ferrovs-perf --backend dpdk` from the command line: argument checks,
//! and (built with the `dpdk` feature) one real run whose JSON carries the
//! fields the README documents.

use std::process::Command;

fn perf(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferrovs-perf"))
        .args(args)
        .output()
        .expect("run ferrovs-perf")
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn dpdk_backend_refuses_what_it_cannot_run() {
    for (args, why) in [
        (&["--backend", "dpdk", "--workers", "2"][..], "one worker"),
        (
            &["--backend", "dpdk", "--mix"][..],
            "established flows only",
        ),
        (&["--backend", "dpdk", "--matrix"][..], "one scenario"),
    ] {
        let o = perf(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let e = stderr(&o);
        if cfg!(feature = "dpdk") {
            assert!(e.contains(why), "{args:?}: {e}");
        } else {
            assert!(e.contains("built without DPDK"), "{args:?}: {e}");
        }
    }
    let o = perf(&["--backend", "dpdk", "--dpdk-device", "tap"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("invalid value"), "{}", stderr(&o));
}

/// One short run over memif with both ceilings (testpmd where installed:
/// the test command installs dpdk-dev).
#[cfg(feature = "dpdk")]
#[test]
fn dpdk_backend_reports_json_with_testpmd_ratio() {
    let testpmd = Command::new("dpdk-testpmd")
        .arg("--version")
        .output()
        .is_ok();
    let mut args = vec![
        "--backend",
        "dpdk",
        "--mode",
        "dr",
        "--flows",
        "1k",
        "--seconds",
        "0.5",
        "--json",
    ];
    if !testpmd {
        eprintln!("dpdk-testpmd not installed: run without the ceilings");
        args.push("--no-testpmd");
    }
    let o = perf(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(v["backend"], "dpdk");
    assert_eq!(v["device"], "memif");
    assert_eq!(v["mode"], "dr");
    assert_eq!(v["workers"], 1);
    assert_eq!(v["leaked_mbufs"], 0);
    assert!(v["mpps"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["ns_per_packet"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["returned_mpps"].as_f64().unwrap() > 0.0, "{v}");
    if testpmd {
        let t = v["testpmd_mpps"].as_f64().expect("testpmd_mpps");
        let r = v["ratio_vs_testpmd"].as_f64().expect("ratio_vs_testpmd");
        assert!(t > 0.0 && r > 0.0, "{v}");
        let ours = v["returned_mpps"].as_f64().unwrap();
        assert!((r - ours / t).abs() < 1e-9, "{v}");
        assert!(v["rig_io_mpps"].as_f64().unwrap() > 0.0, "{v}");
        assert!(v["testpmd_cmd"].as_str().unwrap().contains("role=client"));
    }
}
