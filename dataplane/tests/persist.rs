//! Connection tables that outlive the process (issue 17): a worker keeps
//! its entries in files, the process goes away as `kill -9` would take it
//! (nothing stamped, nothing flushed), and a new worker with its own hash
//! keys reads the files back and forwards the same flows to the same real
//! servers, with the same FULLNAT local ports, byte for byte.

mod common;
use common::*;
use ferrovs_dataplane::persist::{self, ReadStats, Saved, Store, TableFiles};
use ferrovs_dataplane::service::FwdMethod;
use std::path::{Path, PathBuf};

/// CLOCK_MONOTONIC at the labs' clock epoch, as the control plane passes it.
const EPOCH_MONO: u64 = 50_000_000;
const BOOT: [u8; 36] = *b"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("ferrovs-persist-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn store(dir: &Path, workers: usize) -> Store {
    Store {
        dir: dir.to_path_buf(),
        worker: 0,
        workers,
        epoch_mono_ms: EPOCH_MONO,
        boot_id: BOOT,
    }
}

fn stored_lab(fwd: FwdMethod, dir: &Path) -> Lab {
    let mut svc = Svc::new(fwd);
    svc.weights = vec![1, 1, 1];
    let mut lab = Lab::new(svc, 1);
    let st = store(dir, 1);
    for w in &mut lab.workers {
        w.use_store(&st, lab.now).unwrap();
    }
    lab
}

/// What a new process reads: every entry of worker 0's files.
fn read_back(dir: &Path, now_mono: u64) -> (Vec<Saved>, ReadStats) {
    let conns = std::fs::read(dir.join("w0.conn4")).unwrap();
    let mut got = Vec::new();
    let (_, st) = persist::read_table(
        &TableFiles {
            conns: &conns,
            v6: None,
        },
        &BOOT,
        now_mono,
        |s| got.push(s),
    )
    .unwrap();
    (got, st)
}

fn handshake(lab: &mut Lab, cport: u16) -> Vec<u8> {
    let out = lab.send(
        0,
        0,
        &tcp(CLIENT_MAC, DIR0_MAC, CLIENT, cport, VIP, 80, 64, "S", b""),
        1,
    );
    assert_eq!(out.len(), 1, "SYN forwarded");
    let syn = out[0].clone();
    if lab.svc.fwd.sees_replies() {
        let (s, sp, d, dp) = (
            src_ip_of(&syn),
            src_port_of(&syn),
            dst_ip_of(&syn),
            dst_port_of(&syn),
        );
        let back = lab.send(
            0,
            1,
            &tcp(rs_mac(0), DIR1_MAC, d, dp, s, sp, 64, "SA", b""),
            0,
        );
        assert_eq!(back.len(), 1, "SYN-ACK forwarded");
    }
    lab.send(
        0,
        0,
        &tcp(CLIENT_MAC, DIR0_MAC, CLIENT, cport, VIP, 80, 64, "A", b""),
        1,
    );
    syn
}

fn data(cport: u16) -> Vec<u8> {
    tcp(
        CLIENT_MAC, DIR0_MAC, CLIENT, cport, VIP, 80, 64, "A", b"payload",
    )
}

fn survives(fwd: FwdMethod) {
    let dir = TempDir::new(&format!("{fwd:?}"));
    let mut a = stored_lab(fwd, &dir.0);
    let ports: Vec<u16> = (41000..41012).collect();
    let mut before = Vec::new();
    for &p in &ports {
        handshake(&mut a, p);
        let out = a.send(0, 0, &data(p), 1);
        assert_eq!(out.len(), 1);
        before.push(out[0].clone());
    }
    let now_mono = EPOCH_MONO + a.now;
    // Gone without a word, as a crash leaves it.
    drop(a);

    let (saved, st) = read_back(&dir.0, now_mono + 2000);
    assert_eq!(
        st,
        ReadStats {
            taken: ports.len(),
            bad: 0,
            expired: 0
        }
    );
    // The next process: new hash keys, new tables, the same configuration.
    let dir2 = TempDir::new(&format!("{fwd:?}-next"));
    let mut b = stored_lab(fwd, &dir2.0);
    let r = b.workers[0].restore(&saved, b.now);
    assert_eq!(r.restored, ports.len(), "{r:?}");
    assert_eq!(b.workers[0].conns().len(), ports.len());
    for (k, &p) in ports.iter().enumerate() {
        // A mid-flow segment, which a table without the flow would drop
        // (or, in NAT and FULLNAT, could schedule elsewhere): the same
        // bytes to the same server as before the restart.
        let out = b.send(0, 0, &data(p), 1);
        assert_eq!(out.len(), 1, "{fwd:?} port {p} forwarded after the restart");
        // TUN's outer header carries the process's own IP ID counter (and
        // so its own checksum): all else is the same.
        let strip = |f: &[u8]| -> Vec<u8> {
            let mut f = f.to_vec();
            if fwd == FwdMethod::Tun {
                f[18..20].fill(0);
                f[24..26].fill(0);
            }
            f
        };
        assert_eq!(
            strip(&out[0]),
            strip(&before[k]),
            "{fwd:?} port {p}: the same frame as before"
        );
        if fwd.sees_replies() {
            let f = &out[0];
            let (s, sp, d, dp) = (src_ip_of(f), src_port_of(f), dst_ip_of(f), dst_port_of(f));
            let dst = RS.iter().position(|r| *r == d).expect("a real server");
            let back = b.send(
                0,
                1,
                &tcp(rs_mac(dst), DIR1_MAC, d, dp, s, sp, 64, "A", b"reply"),
                0,
            );
            assert_eq!(back.len(), 1, "{fwd:?}: the reply finds the restored flow");
            assert_eq!(dst_ip_of(&back[0]), CLIENT);
            assert_eq!(dst_port_of(&back[0]), p);
        }
    }
    // The servers count the restored connections as active again.
    let active: u32 = b
        .dests
        .iter()
        .map(|d| d.activeconns.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    assert_eq!(active as usize, ports.len());
}

#[test]
fn dr_flows_survive_a_restart() {
    survives(FwdMethod::Dr);
}

#[test]
fn nat_flows_survive_a_restart() {
    survives(FwdMethod::Nat);
}

#[test]
fn fullnat_flows_survive_a_restart_with_their_local_ports() {
    survives(FwdMethod::FullNat);
}

#[test]
fn tun_flows_survive_a_restart() {
    survives(FwdMethod::Tun);
}

#[test]
fn a_half_written_entry_is_never_restored() {
    let dir = TempDir::new("torn");
    let mut a = stored_lab(FwdMethod::Nat, &dir.0);
    for p in 42000..42004 {
        handshake(&mut a, p);
    }
    let now_mono = EPOCH_MONO + a.now;
    drop(a);
    // A crash in the middle of a new entry leaves its "used" flag clear
    // (it is set last); one in the middle of a field leaves a value none
    // of ours has: both are skipped, and the second is counted.
    let path = dir.0.join("w0.conn4");
    let mut b = std::fs::read(&path).unwrap();
    let (saved, _) = read_back(&dir.0, now_mono);
    assert_eq!(saved.len(), 4);
    let entry = |i: usize| persist::HEADER_BYTES + i * 64;
    let used: Vec<usize> = (0..1024)
        .filter(|&i| b[entry(i) + 27] & 0x80 != 0)
        .collect();
    b[entry(used[0]) + 27] &= !0x80;
    b[entry(used[1]) + 26] = 0xee;
    std::fs::write(&path, &b).unwrap();
    let (saved, st) = read_back(&dir.0, now_mono);
    assert_eq!(
        st,
        ReadStats {
            taken: 2,
            bad: 1,
            expired: 0
        }
    );
    assert_eq!(saved.len(), 2);
}

#[test]
fn a_flow_whose_server_left_the_configuration_is_refused() {
    let dir = TempDir::new("gone");
    let mut a = stored_lab(FwdMethod::Dr, &dir.0);
    for p in 43000..43009 {
        handshake(&mut a, p);
    }
    let now_mono = EPOCH_MONO + a.now;
    drop(a);
    let (saved, _) = read_back(&dir.0, now_mono);
    let dir2 = TempDir::new("gone-next");
    let mut svc = Svc::new(FwdMethod::Dr);
    // The third server is gone from the new configuration.
    svc.weights = vec![1, 1];
    let mut b = Lab::new(svc, 1);
    b.workers[0].use_store(&store(&dir2.0, 1), b.now).unwrap();
    let r = b.workers[0].restore(&saved, b.now);
    let to_third = saved.iter().filter(|s| s.conn.daddr == RS[2]).count();
    assert!(to_third > 0, "rr gave the third server some");
    assert_eq!(r.no_dest, to_third);
    assert_eq!(r.restored, saved.len() - to_third);
}

#[test]
fn expired_entries_stay_behind() {
    let dir = TempDir::new("expired");
    let mut a = stored_lab(FwdMethod::Dr, &dir.0);
    handshake(&mut a, 44000);
    let now_mono = EPOCH_MONO + a.now;
    drop(a);
    // ESTABLISHED lives 900 s: read 901 s later, it is gone.
    let (saved, st) = read_back(&dir.0, now_mono + 901_000);
    assert!(saved.is_empty());
    assert_eq!(st.expired, 1);
}

#[test]
fn a_restored_connection_brings_its_persistence_template_back() {
    use ferrovs_dataplane::service::Persistence;
    let persistent = || {
        let mut svc = Svc::new(FwdMethod::Dr);
        svc.weights = vec![1, 1, 1];
        svc.persistence = Some(Persistence {
            timeout_s: 300,
            netmask: std::net::Ipv4Addr::new(255, 255, 255, 255),
        });
        svc
    };
    let dir = TempDir::new("tmpl");
    let mut a = Lab::new(persistent(), 1);
    a.workers[0].use_store(&store(&dir.0, 1), a.now).unwrap();
    let first = handshake(&mut a, 45000);
    let server = dst_mac_of(&first);
    let now_mono = EPOCH_MONO + a.now;
    drop(a);
    let (saved, _) = read_back(&dir.0, now_mono);
    let dir2 = TempDir::new("tmpl-next");
    // rr would give the next new connection the next server; the template
    // made again from the restored connection keeps the client on its own.
    let mut b = Lab::new(persistent(), 1);
    b.workers[0].use_store(&store(&dir2.0, 1), b.now).unwrap();
    assert_eq!(b.workers[0].restore(&saved, b.now).restored, 1);
    for p in 45001..45004 {
        let syn = b.send(
            0,
            0,
            &tcp(CLIENT_MAC, DIR0_MAC, CLIENT, p, VIP, 80, 64, "S", b""),
            1,
        );
        assert_eq!(syn.len(), 1);
        assert_eq!(dst_mac_of(&syn[0]), server, "port {p}: the same server");
    }
}

fn dst_mac_of(f: &[u8]) -> [u8; 6] {
    f[0..6].try_into().unwrap()
}
