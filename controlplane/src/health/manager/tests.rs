//! The manager against real checkers on 127.0.0.1: listeners, scripts.

use super::*;
use ferrovs_config::ipvs::{initial_table, ServiceKey};
use std::path::PathBuf;
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(10);

fn load(text: &str) -> Config {
    let l = ferrovs_config::load_str("t.conf", text);
    assert!(!l.diagnostics.has_errors(), "{:?}", l.diagnostics);
    l.config
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ferrovs-health-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    // Root-run scripts must not sit in a directory others may write.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

fn script(dir: &std::path::Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn key() -> ServiceKey {
    ServiceKey::Addr {
        proto: ferrovs_config::model::Protocol::Tcp,
        addr: "127.0.0.1".parse().unwrap(),
        port: 80,
    }
}

/// The daemon's side: a table with the events applied.
struct Daemon {
    table: Table,
    rx: mpsc::Receiver<HealthEvent>,
}

impl Daemon {
    async fn next(&mut self) -> HealthEvent {
        let ev = tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("an event in time")
            .expect("channel open");
        for c in &ev.table {
            c.apply(&mut self.table)
                .unwrap_or_else(|e| panic!("{c:?}: {e}"));
        }
        ev
    }
    /// Waits for the next event that changes the table.
    async fn next_changes(&mut self) -> Vec<TableChange> {
        loop {
            let ev = self.next().await;
            if !ev.table.is_empty() {
                return ev.table;
            }
        }
    }
    fn weight(&self, port: u16) -> Option<i32> {
        self.table.services[0]
            .dests
            .iter()
            .find(|d| d.port == port)
            .map(|d| d.weight)
    }
}

fn start(cfg: &Config) -> (HealthHandle, Daemon) {
    start_with(cfg, 16)
}

fn start_with(cfg: &Config, capacity: usize) -> (HealthHandle, Daemon) {
    let mut hm = HealthManager::new(cfg);
    assert_eq!(hm.table(), initial_table(cfg));
    hm.set_bootstrap_delay(Duration::ZERO);
    let table = hm.table();
    let (tx, rx) = mpsc::channel(capacity);
    (hm.spawn(tx), Daemon { table, rx })
}

/// A minimal HTTP server answering `status` from a shared cell.
async fn http_server(status: Arc<Mutex<u16>>) -> (u16, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let h = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let code = *status.lock().unwrap();
            tokio::spawn(async move {
                let mut b = [0u8; 1024];
                let _ = tokio::time::timeout(Duration::from_secs(2), s.read(&mut b)).await;
                let a = format!("HTTP/1.0 {code} X\r\nContent-Length: 2\r\n\r\nok");
                let _ = s.write_all(a.as_bytes()).await;
            });
        }
    });
    (port, h)
}

#[tokio::test]
async fn tcp_and_http_failures_take_servers_out_and_back() {
    let tcp_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp_port = tcp_l.local_addr().unwrap().port();
    let status = Arc::new(Mutex::new(200u16));
    let (http_port, _srv) = http_server(status.clone()).await;
    let cfg = load(&format!(
        "virtual_server 127.0.0.1 80 {{\n delay_loop 0.1\n lb_kind NAT\n protocol TCP\n\
         real_server 127.0.0.1 {tcp_port} {{\n  TCP_CHECK {{\n   connect_timeout 1\n   retry 1\n   delay_before_retry 0.1\n   warmup 0\n  }}\n }}\n\
         real_server 127.0.0.1 {http_port} {{\n  HTTP_GET {{\n   url {{\n    path /health\n   }}\n   connect_timeout 1\n   retry 0\n   warmup 0\n  }}\n }}\n}}\n"
    ));
    let (h, mut d) = start(&cfg);
    assert_eq!(d.weight(tcp_port), Some(1));
    assert_eq!(d.weight(http_port), Some(1));

    // The TCP server goes away: after one retry it is removed.
    drop(tcp_l);
    let cmds = d.next_changes().await;
    assert_eq!(
        cmds,
        vec![TableChange::DelDest(
            key(),
            "127.0.0.1".parse().unwrap(),
            tcp_port
        )]
    );
    let st = h.status();
    let rs = &st[0].real_servers[0];
    assert!(!rs.alive);
    assert!(rs
        .last
        .as_ref()
        .is_some_and(|l| !l.ok && l.detail == "failed"));

    // It comes back.
    let tcp_l = TcpListener::bind(("127.0.0.1", tcp_port)).await.unwrap();
    d.next_changes().await;
    assert_eq!(d.weight(tcp_port), Some(1));
    assert!(h.status()[0].real_servers[0].alive);

    // The HTTP server answers 500: removed; 200 again: back.
    *status.lock().unwrap() = 500;
    let cmds = d.next_changes().await;
    assert_eq!(
        cmds,
        vec![TableChange::DelDest(
            key(),
            "127.0.0.1".parse().unwrap(),
            http_port
        )]
    );
    *status.lock().unwrap() = 200;
    d.next_changes().await;
    assert_eq!(d.weight(http_port), Some(1));
    assert_eq!(d.table, h.table());
    drop(tcp_l);
    h.shutdown().await;
}

#[tokio::test]
async fn misc_check_exit_codes_drive_weight_and_membership() {
    let dir = tmpdir("misc");
    let code = dir.join("code");
    std::fs::write(&code, "0").unwrap();
    let chk = script(&dir, "check.sh", &format!("exit $(cat {})", code.display()));
    let cfg = load(&format!(
        "virtual_server 127.0.0.1 80 {{\n delay_loop 0.1\n lb_kind NAT\n protocol TCP\n\
         real_server 127.0.0.1 8080 {{\n  weight 3\n  MISC_CHECK {{\n   misc_path {}\n   misc_dynamic\n   misc_timeout 2\n   warmup 0\n  }}\n }}\n}}\n",
        chk.display()
    ));
    let (h, mut d) = start(&cfg);
    std::fs::write(&code, "9").unwrap();
    d.next_changes().await;
    assert_eq!(d.weight(8080), Some(7));
    std::fs::write(&code, "1").unwrap();
    d.next_changes().await;
    assert_eq!(d.weight(8080), None);
    std::fs::write(&code, "0").unwrap();
    d.next_changes().await;
    assert_eq!(d.weight(8080), Some(3));
    h.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn reload_keeps_a_failed_server_out_and_delivers_pending_commands_first() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let open_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open = open_l.local_addr().unwrap().port();
    let conf = |w: u32| {
        format!(
            "virtual_server 127.0.0.1 80 {{\n delay_loop 0.1\n lb_kind NAT\n protocol TCP\n\
             real_server 127.0.0.1 {closed} {{\n  TCP_CHECK {{\n   connect_timeout 1\n   warmup 0\n  }}\n }}\n\
             real_server 127.0.0.1 {open} {{\n  weight {w}\n  TCP_CHECK {{\n   connect_timeout 1\n   warmup 0\n  }}\n }}\n}}\n"
        )
    };
    let cfg = load(&conf(1));
    // Room for one event: the start's (quorum gained) fills the channel, so
    // the failure below stays queued and reload must hand it over.
    let (h, mut d) = start_with(&cfg, 1);
    tokio::time::timeout(WAIT, async {
        while h.status()[0].real_servers[0].alive {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    let cmds = h.reload(&load(&conf(5)));
    for c in &cmds {
        c.apply(&mut d.table).unwrap();
    }
    assert!(cmds.contains(&TableChange::DelDest(
        key(),
        "127.0.0.1".parse().unwrap(),
        closed
    )));
    assert_eq!(
        d.weight(closed),
        None,
        "a failed server stays out over a reload"
    );
    assert_eq!(d.weight(open), Some(5));
    // Events after the reload still apply cleanly on top.
    let mut extra = Vec::new();
    while let Ok(ev) = d.rx.try_recv() {
        extra.extend(ev.table);
    }
    for c in &extra {
        c.apply(&mut d.table).unwrap();
    }
    assert_eq!(d.table, h.table());
    drop(open_l);
    h.shutdown().await;
}

#[tokio::test]
async fn a_dropped_reload_plan_changes_nothing_and_a_committed_one_applies() {
    let open_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open = open_l.local_addr().unwrap().port();
    let conf = |w: u32| {
        format!(
            "virtual_server 127.0.0.1 80 {{\n delay_loop 0.1\n lb_kind NAT\n protocol TCP\n\
             real_server 127.0.0.1 {open} {{\n  weight {w}\n  TCP_CHECK {{\n   connect_timeout 1\n   warmup 0\n  }}\n }}\n}}\n"
        )
    };
    let (h, mut d) = start(&load(&conf(1)));
    let before = h.table();
    {
        let plan = h.plan_reload(&load(&conf(5)));
        assert!(
            !plan.table_changes().is_empty(),
            "the plan says what would change"
        );
        // Refused (the snapshot could not be built, say): dropped.
    }
    assert_eq!(h.table(), before, "a dropped plan leaves the health state");
    let plan = h.plan_reload(&load(&conf(5)));
    let cmds = plan.table_changes().to_vec();
    plan.commit();
    while let Ok(ev) = d.rx.try_recv() {
        for c in &ev.table {
            c.apply(&mut d.table).unwrap();
        }
    }
    for c in &cmds {
        c.apply(&mut d.table).unwrap();
    }
    assert_eq!(d.weight(open), Some(5));
    assert_eq!(d.table, h.table());
    drop(open_l);
    h.shutdown().await;
}

#[tokio::test]
async fn shutdown_with_omega_runs_the_down_scripts() {
    let dir = tmpdir("omega");
    let mark = dir.join("down-ran");
    let down = script(
        &dir,
        "down.sh",
        &format!("echo \"$@\" > {}", mark.display()),
    );
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let cfg = load(&format!(
        "virtual_server 127.0.0.1 80 {{\n delay_loop 0.1\n omega\n lb_kind NAT\n protocol TCP\n\
         real_server 127.0.0.1 {port} {{\n  notify_down \"{} rs-down\"\n  TCP_CHECK {{\n   warmup 0\n  }}\n }}\n}}\n",
        down.display()
    ));
    let (h, _d) = start(&cfg);
    let cmds = h.shutdown().await;
    assert_eq!(cmds, vec![TableChange::DelService(key())]);
    assert_eq!(std::fs::read_to_string(&mark).unwrap().trim(), "rs-down");
    drop(l);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn insecure_misc_script_is_dropped_with_script_security() {
    if !nix::unistd::Uid::effective().is_root() {
        // Scripts run as ourselves need no protection: nothing to refuse.
        return;
    }
    let dir = tmpdir("insecure");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let chk = script(&dir, "check.sh", "exit 1");
    let text = format!(
        "global_defs {{\n enable_script_security\n script_user root\n}}\n\
         virtual_server 127.0.0.1 80 {{\n lb_kind NAT\n protocol TCP\n\
         real_server 127.0.0.1 8080 {{\n  MISC_CHECK {{\n   misc_path {}\n   warmup 0\n  }}\n }}\n}}\n",
        chk.display()
    );
    let hm = HealthManager::new(&load(&text));
    // The checker is gone: the server has no checker left.
    assert!(hm.status()[0].real_servers[0].checkers.is_empty());
    // Without script security it would run (with a warning).
    let hm = HealthManager::new(&load(&text.replace(" enable_script_security\n", "")));
    assert_eq!(hm.status()[0].real_servers[0].checkers.len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
