//! The DPDK backend over the ring PMD (`rte_eth_from_rings`): a real
//! `Worker<DpdkPort>` forwards DR, NAT, FULLNAT and TUN traffic through real
//! ethdev rx/tx bursts and mbufs, byte-exact against frames built
//! independently by etherparse (the lab of `common/mod.rs`). Also: mbuf
//! operations, bulk free, counters, mempool accounting (no leak), EAL lcores,
//! errors, rte_flow on net_ring (unsupported), and a TAP exception interface
//! in a network namespace of its own (root only).
//!
//! The EAL starts once per test binary, without hugepages. The tests share
//! it and run one at a time (a mutex): DPDK's control path is not meant for
//! concurrent reconfiguration. Each test thread registers itself with the
//! EAL for an lcore id. Run as root:
//! `cargo test -p ferrovs-dataplane --features dpdk --test dpdk_ring`.
#![cfg(feature = "dpdk")]

mod common;
use common::scenarios::{self, ForwardLab, PAYLOAD};
use common::*;
use ferrovs_dataplane::conn::template::TemplateTable;
use ferrovs_dataplane::port::dpdk::{
    register_thread, remove_runtime_dir, Device, DeviceConfig, DpdkPacket, DpdkPort, Eal,
    RingHandle,
};
use ferrovs_dataplane::port::{Packet, Port, HEADROOM};
use ferrovs_dataplane::service::{DestShared, FwdMethod, ServiceShared};
use ferrovs_dataplane::worker::{Shared, Worker};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

static EAL: OnceLock<Arc<Eal>> = OnceLock::new();
static SERIAL: Mutex<()> = Mutex::new(());
static SEQ: AtomicU32 = AtomicU32::new(0);

fn eal_args() -> Vec<String> {
    [
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-shconf",
        &format!("--file-prefix=fvs-test-{}", std::process::id()),
        "--log-level=warning",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Serialises the test, starts the EAL once, registers this thread.
fn setup() -> (MutexGuard<'static, ()>, Arc<Eal>) {
    let guard = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let eal = EAL
        .get_or_init(|| {
            let eal = Eal::init(&eal_args()).unwrap_or_else(|e| panic!("EAL init: {e}"));
            // Nothing attaches to this EAL: leave no runtime directory.
            remove_runtime_dir(&format!("fvs-test-{}", std::process::id()));
            eal
        })
        .clone();
    register_thread().unwrap_or_else(|e| panic!("register_thread: {e}"));
    (guard, eal)
}

fn cfg(queues: u16) -> DeviceConfig {
    DeviceConfig {
        queues,
        rx_desc: 256,
        tx_desc: 256,
        mbufs: 0,
        promiscuous: false,
    }
}

fn ring_device(
    eal: &Arc<Eal>,
    what: &str,
    queues: u16,
) -> (Arc<Device>, Vec<DpdkPort>, RingHandle) {
    let name = format!("{what}{}", SEQ.fetch_add(1, Ordering::Relaxed));
    Device::from_rings(eal, &name, &cfg(queues))
        .unwrap_or_else(|e| panic!("from_rings {name}: {e}"))
}

/// The lab of `common` on DPDK ring devices: port 0 (client side) and port 1
/// (server side), one RX/TX queue pair per worker on each.
struct DLab {
    workers: Vec<Worker<DpdkPort>>,
    rings: Vec<RingHandle>,
    devs: Vec<Arc<Device>>,
    shared: Arc<Shared<DpdkPacket>>,
    now: u64,
    /// mbufs in use per device once the lab was built (0 on rings: the ring
    /// PMD keeps no mbufs in descriptors).
    start_usage: Vec<u32>,
}

impl DLab {
    fn new(eal: &Arc<Eal>, svc: Svc, nworkers: usize) -> DLab {
        let (d0, p0, h0) = ring_device(eal, "client", nworkers as u16);
        let (d1, p1, h1) = ring_device(eal, "server", nworkers as u16);
        // The ring PMD cannot change its address; label the ports instead.
        assert_eq!(d0.set_mac(DIR0_MAC).unwrap_err().errno(), libc::ENOTSUP);
        h0.set_mac(DIR0_MAC);
        h1.set_mac(DIR1_MAC);
        let dests: Vec<_> = (0..3)
            .map(|i| DestShared::new(i as u32 + 1, nworkers))
            .collect();
        let svc_shared = ServiceShared::new(1, nworkers);
        let templates = Arc::new(TemplateTable::new(1024));
        let snap = build_snapshot(1, nworkers, &svc, &dests, &svc_shared, &templates, 1500);
        let shared = Shared::new(snap);
        let now = 1_000_000;
        let workers = p0
            .into_iter()
            .zip(p1)
            .enumerate()
            .map(|(i, (a, b))| Worker::new(i, shared.clone(), vec![a, b], 1024, now))
            .collect();
        let mut lab = DLab {
            workers,
            rings: vec![h0, h1],
            devs: vec![d0, d1],
            shared,
            now,
            start_usage: vec![],
        };
        lab.start_usage = lab.usage();
        // Teach the workers the neighbours' MACs, as common's Lab does.
        lab.inject(0, 0, &arp_reply(CLIENT_MAC, CLIENT, DIR0_MAC, DIR0_IP));
        for (i, rs) in RS.iter().enumerate() {
            lab.inject(0, 1, &arp_reply(rs_mac(i), *rs, DIR1_MAC, DIR1_IP));
        }
        lab.poll_all();
        for w in 0..nworkers {
            lab.take(w, 0);
            lab.take(w, 1);
        }
        lab
    }

    fn inject(&self, w: usize, port: usize, frame: &[u8]) {
        assert!(
            self.rings[port].inject(w, frame),
            "inject on port {port} queue {w}"
        );
    }

    fn poll_all(&mut self) {
        // Two rounds so that handed-over packets are processed too.
        for _ in 0..2 {
            for w in &mut self.workers {
                w.poll(self.now);
            }
        }
    }

    fn take(&self, w: usize, port: usize) -> Vec<Vec<u8>> {
        self.rings[port].take(w)
    }

    /// One frame in on (worker queue, port); what left every queue of
    /// `out_port`.
    fn send(&mut self, w: usize, port: usize, frame: &[u8], out_port: usize) -> Vec<Vec<u8>> {
        self.inject(w, port, frame);
        self.poll_all();
        (0..self.workers.len())
            .flat_map(|i| self.take(i, out_port))
            .collect()
    }

    fn usage(&self) -> Vec<u32> {
        self.devs.iter().map(|d| d.mempool_usage().0).collect()
    }

    /// Every mbuf went back to its pool.
    fn assert_no_leak(&self) {
        assert_eq!(
            self.usage(),
            self.start_usage,
            "mbufs in use after the traffic"
        );
    }

    fn dropped(&self, r: ferrovs_dataplane::counters::DropReason) -> u64 {
        self.shared.counters.iter().map(|c| c.dropped(r)).sum()
    }
}

impl ForwardLab for DLab {
    fn send(&mut self, w: usize, port: usize, frame: &[u8], out_port: usize) -> Vec<Vec<u8>> {
        DLab::send(self, w, port, frame, out_port)
    }

    fn dropped(&self, r: ferrovs_dataplane::counters::DropReason) -> u64 {
        DLab::dropped(self, r)
    }
}

// The scenarios of `common/scenarios.rs`, as forwarding.rs runs them on
// memory ports, here through ethdev bursts and mbufs, each followed by the
// check that every mbuf went back to its pool.

#[test]
fn dr_rewrites_only_macs() {
    let (_g, eal) = setup();
    scenarios::dr(|svc| DLab::new(&eal, svc, 1)).assert_no_leak();
}

#[test]
fn nat_dnat_and_snat_back() {
    let (_g, eal) = setup();
    scenarios::nat_tcp(|svc| DLab::new(&eal, svc, 1)).assert_no_leak();
    scenarios::nat_udp(|svc| DLab::new(&eal, svc, 1)).assert_no_leak();
}

#[test]
fn fullnat_rewrites_both_ends() {
    let (_g, eal) = setup();
    scenarios::fullnat(|svc| DLab::new(&eal, svc, 1)).assert_no_leak();
}

/// TUN prepends the outer IP header into the mbuf's headroom.
#[test]
fn tun_encapsulates_in_headroom() {
    let (_g, eal) = setup();
    scenarios::tun(|svc| DLab::new(&eal, svc, 1)).assert_no_leak();
}

/// Two workers, two queues per device: the reply may arrive on either
/// queue; the owner (by local port) sends it, byte-exact.
#[test]
fn fullnat_two_workers_reply_reaches_owner() {
    let (_g, eal) = setup();
    let mut svc = Svc::new(FwdMethod::FullNat);
    svc.rport = 8080;
    let mut lab = DLab::new(&eal, svc, 2);
    for (q, sport) in [(0usize, 40000u16), (1, 40001)] {
        let input = tcp(
            CLIENT_MAC, DIR0_MAC, CLIENT, sport, VIP, 80, 64, "S", PAYLOAD,
        );
        let out = lab.send(q, 0, &input, 1);
        assert_eq!(out.len(), 1);
        let lport = src_port_of(&out[0]);
        let rs = dst_ip_of(&out[0]);
        let i = RS.iter().position(|r| *r == rs).unwrap();
        assert_eq!(
            out[0],
            tcp(
                DIR1_MAC,
                rs_mac(i),
                LADDR,
                lport,
                rs,
                8080,
                // One hop lower towards the real server, as IPVS does.
                63,
                "S",
                PAYLOAD
            )
        );
        // The reply comes in on the other queue than the owner's.
        let owner = lport as usize % 2;
        let reply = tcp(rs_mac(i), DIR1_MAC, rs, 8080, LADDR, lport, 64, "SA", b"");
        lab.inject(1 - owner, 1, &reply);
        lab.poll_all();
        assert!(
            lab.take(1 - owner, 0).is_empty(),
            "only the owner sends the reply"
        );
        assert_eq!(
            lab.take(owner, 0),
            vec![tcp(
                DIR0_MAC, CLIENT_MAC, VIP, 80, CLIENT, sport, 64, "SA", b""
            )]
        );
    }
    lab.assert_no_leak();
}

#[test]
fn packet_alloc_prepend_adj_set_len() {
    let (_g, eal) = setup();
    let (dev, mut ports, _h) = ring_device(&eal, "pkt", 1);
    let port = &mut ports[0];
    let (used0, size) = dev.mempool_usage();
    assert!(size > 0);
    let mut p = port.alloc().expect("alloc");
    assert_eq!(dev.mempool_usage().0, used0 + 1);
    assert_eq!(p.len(), 0);
    assert_eq!(p.headroom(), HEADROOM);
    assert!(p.set_len(60));
    p.data_mut().copy_from_slice(&[0xab; 60]);
    assert!(p.prepend(20));
    assert_eq!(p.len(), 80);
    p.data_mut()[..20].copy_from_slice(&[1; 20]);
    assert_eq!(&p.data()[..20], &[1; 20]);
    assert_eq!(&p.data()[20..], &[0xab; 60]);
    // The rest of the headroom, then no more.
    assert!(p.prepend(HEADROOM - 20));
    assert_eq!(p.headroom(), 0);
    assert!(!p.prepend(1));
    p.adj(HEADROOM - 20);
    assert_eq!(p.len(), 80);
    assert_eq!(&p.data()[..20], &[1; 20]);
    // The buffer ends 2048 bytes after the default headroom, not one more.
    let room = HEADROOM + 2048 - p.headroom();
    assert!(p.set_len(room));
    assert!(!p.set_len(room + 1));
    assert!(p.set_len(10));
    p.adj(100); // more than the length: empties it
    assert!(p.is_empty());
    drop(p);
    assert_eq!(dev.mempool_usage().0, used0);
    let mut p = port.alloc().unwrap();
    assert!(p.set_len(2048));
    assert!(!p.set_len(2049));
}

#[test]
fn free_bulk_and_tx_return_mbufs() {
    let (_g, eal) = setup();
    let (dev, mut ports, h) = ring_device(&eal, "bulk", 1);
    let port = &mut ports[0];
    let used0 = dev.mempool_usage().0;
    let mut v: Vec<DpdkPacket> = (0..100).map(|_| port.alloc().expect("alloc")).collect();
    assert_eq!(dev.mempool_usage().0, used0 + 100);
    port.free_bulk(&mut v);
    assert!(v.is_empty());
    assert_eq!(dev.mempool_usage().0, used0);

    // tx_burst hands mbufs to the driver and removes them from the vector;
    // they come back when the TX ring is drained.
    let mut v: Vec<DpdkPacket> = (0..40u8)
        .map(|i| {
            let mut p = port.alloc().unwrap();
            assert!(p.set_len(60));
            p.data_mut().fill(i);
            p
        })
        .collect();
    port.tx_burst(&mut v);
    assert!(v.is_empty());
    assert_eq!(dev.mempool_usage().0, used0 + 40);
    let out = h.take(0);
    assert_eq!(out.len(), 40);
    assert!(out.iter().enumerate().all(|(i, f)| f == &vec![i as u8; 60]));
    assert_eq!(dev.mempool_usage().0, used0);

    // rx_burst: at most BURST per call, in order.
    for i in 0..40u8 {
        assert!(h.inject(0, &[i; 64]));
    }
    let mut rx = Vec::new();
    assert_eq!(port.rx_burst(&mut rx), 32);
    assert_eq!(port.rx_burst(&mut rx), 8);
    assert!(rx
        .iter()
        .enumerate()
        .all(|(i, p)| p.data() == [i as u8; 64]));
    port.free_bulk(&mut rx);
    assert_eq!(dev.mempool_usage().0, used0);
    // A frame larger than an mbuf's data room is refused by inject.
    assert!(!h.inject(0, &[0; 2049]));
    assert!(!h.inject(5, &[0; 60]), "no such queue");
}

/// The generator's side of a ring device: bulk allocation, partial enqueue
/// onto a full RX ring, dequeue of what was sent, all mbufs back at the end.
#[test]
fn ring_handle_bulk_enqueue_dequeue() {
    let (_g, eal) = setup();
    let name = format!("gen{}", SEQ.fetch_add(1, Ordering::Relaxed));
    let small = DeviceConfig {
        rx_desc: 16, // an RX ring of 16 entries: 15 usable
        tx_desc: 64,
        ..cfg(1)
    };
    let (dev, mut ports, h) = Device::from_rings(&eal, &name, &small).unwrap();
    let used0 = dev.mempool_usage().0;
    let mut v = Vec::new();
    assert!(h.alloc_bulk(40, &mut v));
    assert_eq!(v.len(), 40);
    for (i, p) in v.iter_mut().enumerate() {
        assert!(p.set_len(60));
        p.data_mut().fill(i as u8);
    }
    assert_eq!(h.enqueue(0, &mut v), 15, "the ring takes what fits");
    assert_eq!(v.len(), 25);
    assert_eq!(v[0].data()[0], 15, "the rest stays, in order");
    assert_eq!(h.enqueue(0, &mut v), 0);
    assert_eq!(h.enqueue(1, &mut v), 0, "no such queue");

    // What the port receives it sends back out; dequeue gets it in order.
    let port = &mut ports[0];
    let mut rx = Vec::new();
    while port.rx_burst(&mut rx) > 0 {}
    assert_eq!(rx.len(), 15);
    port.tx_burst(&mut rx);
    assert!(rx.is_empty());
    let mut out = Vec::new();
    assert_eq!(h.dequeue(0, &mut out, 10), 10);
    assert_eq!(h.dequeue(0, &mut out, 10), 5);
    assert_eq!(h.dequeue(0, &mut out, 10), 0);
    assert!(out
        .iter()
        .enumerate()
        .all(|(i, p)| p.data() == [i as u8; 60]));
    DpdkPacket::free_bulk(&mut out);
    drop(v);
    assert_eq!(dev.mempool_usage().0, used0);

    // DpdkPort::alloc_bulk: all or none.
    let (_, total) = dev.mempool_usage();
    let mut all = Vec::new();
    assert!(!port.alloc_bulk(total as usize + 1, &mut all));
    assert!(all.is_empty());
    assert!(port.alloc_bulk(8, &mut all));
    assert_eq!(dev.mempool_usage().0, used0 + 8);
    port.free_bulk(&mut all);
    assert_eq!(dev.mempool_usage().0, used0);
}

#[test]
fn stats_link_xstats_on_ring_port() {
    let (_g, eal) = setup();
    let mut lab = DLab::new(&eal, Svc::new(FwdMethod::Dr), 1);
    let before0 = lab.devs[0].stats();
    let before1 = lab.devs[1].stats();
    for sport in 0..10u16 {
        let f = tcp(
            CLIENT_MAC,
            DIR0_MAC,
            CLIENT,
            40000 + sport,
            VIP,
            80,
            64,
            "S",
            PAYLOAD,
        );
        lab.inject(0, 0, &f);
    }
    lab.poll_all();
    assert_eq!(lab.take(0, 1).len(), 10);
    let s0 = lab.devs[0].stats();
    let s1 = lab.devs[1].stats();
    assert_eq!(s0.ipackets - before0.ipackets, 10);
    assert_eq!(s1.opackets - before1.opackets, 10);
    assert_eq!(s0.ierrors, 0);
    let link = lab.devs[0].link();
    assert!(link.up, "a started ring port reports link up: {link:?}");
    let xs = lab.devs[0].xstats();
    let good = xs
        .iter()
        .find(|(n, _)| n == "rx_good_packets")
        .unwrap_or_else(|| panic!("rx_good_packets in {xs:?}"));
    assert_eq!(good.1, s0.ipackets);
    assert_eq!(lab.devs[0].driver(), "net_ring");
    assert_eq!(lab.devs[0].mac(), DIR0_MAC);
    assert_eq!(lab.workers[0].ports_mut()[0].mac(), DIR0_MAC);
    lab.assert_no_leak();
}

#[test]
fn steer_fullnat_unsupported_on_ring_changes_nothing() {
    let (_g, eal) = setup();
    let mut svc = Svc::new(FwdMethod::FullNat);
    svc.rport = 8080;
    let mut lab = DLab::new(&eal, svc, 2);
    let usage = lab.usage();
    let err = lab.devs[1]
        .steer_fullnat(&[Ipv4Addr::from(LADDR)])
        .expect_err("net_ring has no rte_flow");
    assert!(err.contains("rte_flow_validate"), "{err}");
    // Traffic still flows, the pools are as they were.
    assert_eq!(lab.usage(), usage);
    let input = tcp(
        CLIENT_MAC, DIR0_MAC, CLIENT, 40000, VIP, 80, 64, "S", PAYLOAD,
    );
    assert_eq!(lab.send(0, 0, &input, 1).len(), 1);
    lab.assert_no_leak();

    // Three queues cannot be steered by a port mask.
    let (dev3, _p, _h) = ring_device(&eal, "three", 3);
    let err = dev3.steer_fullnat(&[Ipv4Addr::from(LADDR)]).unwrap_err();
    assert!(err.contains("power of two"), "{err}");
    // One queue needs no rules.
    let (dev1, _p, _h) = ring_device(&eal, "one", 1);
    assert_eq!(dev1.steer_fullnat(&[Ipv4Addr::from(LADDR)]), Ok(0));
}

#[test]
fn eal_devices_lcores_launch_and_errors() {
    let (_g, eal) = setup();
    // A second init returns the same EAL.
    let again = Eal::init(&[]).expect("second init");
    assert!(Arc::ptr_eq(&eal, &again));

    let (dev, _ports, _h) = ring_device(&eal, "list", 1);
    let listed = eal.devices();
    let me = listed
        .iter()
        .find(|d| d.port_id == dev.port_id())
        .unwrap_or_else(|| panic!("{} in {listed:?}", dev.name()));
    assert_eq!(me.name, dev.name());
    assert_eq!(me.driver, "net_ring");
    assert_eq!(me.mac, dev.mac());
    _h.set_mac([2, 0, 0, 0, 9, 9]);
    assert_eq!(dev.mac(), [2, 0, 0, 0, 9, 9]);

    // Opening it again, or something that does not exist, fails cleanly.
    let e = Device::open(&eal, dev.name(), &cfg(1))
        .err()
        .expect("open twice");
    assert_eq!(e.errno(), libc::EBUSY, "{e}");
    let e = Device::open(&eal, "no_such_device", &cfg(1))
        .err()
        .expect("ENODEV");
    assert_eq!(e.errno(), libc::ENODEV, "{e}");
    assert!(e.to_string().contains("no_such_device"), "{e}");
    let e = Device::open(&eal, "net_nosuchdriver0", &cfg(1))
        .err()
        .expect("no driver");
    assert!(e.to_string().contains("rte_vdev_init"), "{e}");
    let e = Device::from_rings(&eal, "zero", &cfg(0))
        .err()
        .expect("0 queues");
    assert_eq!(e.errno(), libc::EINVAL, "{e}");

    // Worker lcores run closures; each has its own lcore id.
    let workers = eal.worker_lcores();
    assert!(!workers.contains(&eal.main_lcore()));
    if let Some(&lc) = workers.first() {
        let ran = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(AtomicU32::new(u32::MAX));
        let (r, s) = (ran.clone(), seen.clone());
        eal.launch(
            lc,
            Box::new(move || {
                s.store(register_thread().unwrap(), Ordering::SeqCst);
                r.store(true, Ordering::SeqCst);
            }),
        )
        .expect("launch");
        eal.wait_all();
        assert!(ran.load(Ordering::SeqCst));
        assert_eq!(seen.load(Ordering::SeqCst), lc);
    } else {
        println!("one-core machine: no EAL worker lcore to launch on");
    }
    let e = eal
        .launch(eal.main_lcore(), Box::new(|| {}))
        .expect_err("not a worker");
    assert_eq!(e.errno(), libc::EINVAL);
    // A plain thread gets an lcore id of its own.
    let mine = register_thread().unwrap();
    let other = std::thread::spawn(|| register_thread().unwrap())
        .join()
        .unwrap();
    assert_ne!(mine, other);
}

/// `Device::open` with a vdev spec creates the device (here the null PMD,
/// which makes up frames on RX and discards TX), and removes it on drop, so
/// the same name can be opened again.
#[test]
fn open_creates_and_removes_a_vdev() {
    let (_g, eal) = setup();
    for round in 0..2 {
        let (dev, mut ports) = Device::open(&eal, "net_null_fvs0,size=60", &cfg(2))
            .unwrap_or_else(|e| panic!("open net_null round {round}: {e}"));
        assert_eq!(ports.len(), 2);
        assert_eq!(dev.queues(), 2);
        assert_eq!(dev.driver(), "net_null");
        let used0 = dev.mempool_usage().0;
        for port in ports.iter_mut() {
            let mut rx = Vec::new();
            assert_eq!(port.rx_burst(&mut rx), 32);
            assert!(rx.iter().all(|p| p.len() == 60));
            port.tx_burst(&mut rx);
            assert!(rx.is_empty(), "the null PMD takes everything");
        }
        assert_eq!(dev.mempool_usage().0, used0);
        assert!(dev.stats().opackets >= 64);
        let again = Device::open(&eal, "net_null_fvs0", &cfg(1));
        assert_eq!(again.err().map(|e| e.errno()), Some(libc::EBUSY));
    }
}

/// A packet may outlive its device: the device then leaves its pool
/// allocated instead of freeing memory still in use.
#[test]
fn packet_outliving_its_device_stays_valid() {
    let (_g, eal) = setup();
    let (dev, mut ports, h) = ring_device(&eal, "outlive", 1);
    let mut p = ports[0].alloc().unwrap();
    assert!(p.set_len(64));
    p.data_mut().fill(0x42);
    drop((dev, ports, h));
    assert_eq!(p.data(), &[0x42; 64]);
    drop(p);
}

// ---------------------------------------------------------------------------
// TAP

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn sh(args: &[&str]) {
    let out = std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ip link show dev IFNAME` in the calling thread's network namespace.
fn ip_link(ifname: &str) -> Option<String> {
    let out = std::process::Command::new("ip")
        .args(["link", "show", "dev", ifname])
        .output()
        .expect("run ip");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A TAP exception interface in a network namespace of the test's own (the
/// thread unshares its namespace, so the interface, the addresses and the
/// `ip` commands it runs all live there): DPDK sends an ARP request to the
/// kernel through it and receives the kernel's ARP reply.
#[test]
fn tap_exception_interface_talks_to_the_kernel() {
    if !is_root() {
        println!("SKIPPED tap_exception_interface_talks_to_the_kernel: needs root");
        return;
    }
    let (_g, eal) = setup();
    std::thread::spawn(move || {
        // SAFETY: unshare(CLONE_NEWNET) affects the calling thread only.
        let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            r,
            0,
            "unshare(CLONE_NEWNET): {}",
            std::io::Error::last_os_error()
        );
        register_thread().unwrap();
        let ifname = format!("fvstap{}", std::process::id() % 100_000);
        let tap_mac: [u8; 6] = [0x02, 0, 0, 0, 3, 1];
        let peer_mac: [u8; 6] = [0x02, 0, 0, 0, 3, 2];
        let (dev, mut ports) = Device::create_tap(&eal, &ifname, tap_mac, &cfg(2))
            .unwrap_or_else(|e| panic!("create_tap: {e}"));
        // (/sys shows the process's original namespace; ask `ip`, which
        // runs in this thread's.)
        let link = ip_link(&ifname).expect("the kernel sees the TAP interface");
        assert!(
            link.contains("02:00:00:00:03:01"),
            "kernel-side MAC: {link}"
        );
        assert_eq!(dev.mac(), tap_mac);
        sh(&["ip", "link", "set", "dev", &ifname, "up"]);
        sh(&["ip", "addr", "add", "198.18.3.1/24", "dev", &ifname]);

        // DPDK -> kernel: who has 198.18.3.1? The kernel answers through the
        // TAP, so the reply is received on one of the DPDK queues.
        let req = arp_request(peer_mac, [198, 18, 3, 2], [198, 18, 3, 1]);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut reply = None;
        let mut next_send = Instant::now();
        while reply.is_none() && Instant::now() < deadline {
            if Instant::now() >= next_send {
                let mut p = ports[0].alloc().unwrap();
                assert!(p.set_len(req.len()));
                p.data_mut().copy_from_slice(&req);
                let mut v = vec![p];
                ports[0].tx_burst(&mut v);
                assert!(v.is_empty(), "TAP TX");
                next_send = Instant::now() + Duration::from_millis(500);
            }
            for port in ports.iter_mut() {
                let mut rx = Vec::new();
                port.rx_burst(&mut rx);
                for p in rx {
                    let f = p.data();
                    // An ARP reply (opcode 2) to us.
                    if f.len() >= 42
                        && f[12..14] == [8, 6]
                        && f[20..22] == [0, 2]
                        && f[32..38] == peer_mac
                    {
                        reply = Some(f.to_vec());
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let reply = reply.expect("the kernel's ARP reply through the TAP");
        assert_eq!(&reply[0..6], &peer_mac);
        assert_eq!(&reply[6..12], &tap_mac);
        assert_eq!(&reply[22..28], &tap_mac, "sender MAC");
        assert_eq!(&reply[28..32], &[198, 18, 3, 1], "sender IP");
        let s = dev.stats();
        assert!(s.opackets >= 1 && s.ipackets >= 1, "{s:?}");

        // rte_flow steering on net_tap needs TC flower in this kernel;
        // report what happened, do not fail on it.
        match dev.steer_fullnat(&[Ipv4Addr::new(198, 18, 3, 100)]) {
            Ok(n) => println!("steer_fullnat on net_tap: {n} rules created"),
            Err(e) => println!("steer_fullnat on net_tap not available: {e}"),
        }
        drop(ports);
        drop(dev);
        assert!(
            ip_link(&ifname).is_none(),
            "{ifname} is removed with the device"
        );
    })
    .join()
    .expect("TAP test thread");
}
