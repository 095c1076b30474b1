//! The AF_XDP backend against a real kernel: a veth pair whose peer end
//! lives in a network namespace the test creates; the XDP program and the
//! socket go on the end left in the root namespace (no address, forwarding
//! off). Real datagrams come from python3 in the namespace, with the veth's
//! checksum offload on, so they arrive CHECKSUM_PARTIAL. Needs root; fails
//! (does not skip) without it. Addresses: 198.18.0.0/15 only.

use ferrovs_dataplane::port::afxdp::steer::{ADDR_OWN, ADDR_STEER};
use ferrovs_dataplane::port::afxdp::{AfXdpOptions, AfXdpPort, AttachMode, XdpPacket};
use ferrovs_dataplane::port::{Iface, Packet, Port};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The interface's facts as the control plane passes them (it learns them
/// by rtnetlink; this test reads them from sysfs, as it reads the peer's).
fn iface(name: &str) -> Iface {
    let read = |f: &str| {
        std::fs::read_to_string(format!("/sys/class/net/{name}/{f}"))
            .unwrap_or_else(|e| panic!("{name}/{f}: {e}"))
            .trim()
            .to_string()
    };
    let mut mac = [0u8; 6];
    for (d, x) in mac.iter_mut().zip(read("address").split(':')) {
        *d = u8::from_str_radix(x, 16).expect("a MAC address");
    }
    Iface {
        name: name.to_string(),
        index: read("ifindex").parse().expect("an ifindex"),
        mac,
        mtu: read("mtu").parse().expect("an MTU"),
    }
}
use std::time::{Duration, Instant};

const PEER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const OWN_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);

fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

static SEQ: AtomicU32 = AtomicU32::new(0);

struct Lab {
    ns: String,
    host: String,
    peer: String,
    host_mac: String,
}

impl Lab {
    fn new() -> Lab {
        Lab::with_queues(1)
    }

    /// A lab whose veth ends have `q` queue pairs each.
    fn with_queues(q: u32) -> Lab {
        let uid = run(&["id", "-u"]);
        assert_eq!(uid.trim(), "0", "the AF_XDP tests need root");
        let u = format!(
            "{:05x}{:x}",
            std::process::id() & 0xfffff,
            SEQ.fetch_add(1, Ordering::Relaxed) & 0xf
        );
        let mut lab = Lab {
            ns: format!("ferrovs-ax-{u}"),
            host: format!("fxh{u}"),
            peer: format!("fxp{u}"),
            host_mac: String::new(),
        };
        run(&["ip", "netns", "add", &lab.ns]);
        let q = q.to_string();
        run(&[
            "ip",
            "link",
            "add",
            &lab.host,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            &lab.peer,
            "netns",
            &lab.ns,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
        ]);
        std::fs::write(
            format!("/proc/sys/net/ipv4/conf/{}/forwarding", lab.host),
            "0",
        )
        .unwrap();
        std::fs::write(
            format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", lab.host),
            "1",
        )
        .unwrap();
        run(&["ip", "link", "set", &lab.host, "up"]);
        lab.ns(&["ip", "link", "set", "lo", "up"]);
        lab.ns(&[
            "ip",
            "addr",
            "add",
            &format!("{PEER_IP}/24"),
            "dev",
            &lab.peer,
        ]);
        lab.ns(&["ip", "link", "set", &lab.peer, "up"]);
        lab.host_mac = std::fs::read_to_string(format!("/sys/class/net/{}/address", lab.host))
            .unwrap()
            .trim()
            .to_string();
        for ip in [VIP, OWN_IP] {
            lab.ns(&[
                "ip",
                "neigh",
                "replace",
                &ip.to_string(),
                "lladdr",
                &lab.host_mac,
                "dev",
                &lab.peer,
                "nud",
                "permanent",
            ]);
        }
        lab
    }

    fn ns(&self, args: &[&str]) -> String {
        let mut a = vec!["ip", "netns", "exec", &self.ns];
        a.extend_from_slice(args);
        run(&a)
    }

    fn send_udp(&self, dst: Ipv4Addr, payload: &str) {
        self.send_flows(dst, payload, 1);
    }

    /// One datagram from each of `flows` source ports (41000 + i).
    fn send_flows(&self, dst: Ipv4Addr, payload: &str, flows: u32) {
        self.ns(&[
            "python3",
            "-c",
            "import socket,sys\nfor i in range(int(sys.argv[3])):\n s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('0.0.0.0',41000+i)); s.sendto(sys.argv[2].encode(),(sys.argv[1],9999))",
            &dst.to_string(),
            payload,
            &flows.to_string(),
        ]);
    }

    fn xdp_attached(&self) -> bool {
        run(&["ip", "link", "show", "dev", &self.host]).contains("prog/xdp")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host])
            .stderr(Stdio::null())
            .status();
    }
}

/// Receives until `want` packets came or `t` passed.
fn recv(port: &mut AfXdpPort, want: usize, t: Duration) -> Vec<XdpPacket> {
    let mut out = Vec::new();
    let end = Instant::now() + t;
    while out.len() < want && Instant::now() < end {
        if port.rx_burst(&mut out) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    out
}

/// The UDP payload of an untagged IPv4 frame, after checking the IPv4 and
/// UDP checksums with etherparse's independent parser.
fn udp_payload(f: &[u8]) -> (Ipv4Addr, Vec<u8>) {
    let p = etherparse::SlicedPacket::from_ethernet(f).expect("parse");
    let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
        panic!("not IPv4")
    };
    let Some(etherparse::TransportSlice::Udp(u)) = &p.transport else {
        panic!("not UDP")
    };
    let h = ip.header().to_header();
    let want = u
        .to_header()
        .calc_checksum_ipv4(&h, u.payload())
        .expect("checksum");
    assert_eq!(
        u.checksum(),
        want,
        "UDP checksum must be complete and right"
    );
    (
        Ipv4Addr::from(ip.header().destination()),
        u.payload().to_vec(),
    )
}

#[test]
fn steers_only_what_is_ours_and_transmits_in_place() {
    let lab = Lab::new();
    let mut opened = AfXdpPort::open_all(&iface(&lab.host), 1, &AfXdpOptions::default())
        .unwrap_or_else(|e| panic!("open: {e}"));
    // veth has native XDP.
    assert_eq!(opened.steering.mode, AttachMode::Driver);
    assert!(lab.xdp_attached());
    let mut addrs = HashMap::new();
    addrs.insert(VIP, ADDR_STEER);
    addrs.insert(OWN_IP, ADDR_OWN);
    opened.steering.set_addrs(&addrs).unwrap();
    let mut port = opened.ports.pop().unwrap();

    // Not ours: passed to the kernel, never seen by the port.
    lab.send_udp(OWN_IP, "for the kernel");
    assert!(recv(&mut port, 1, Duration::from_millis(300))
        .iter()
        .all(|p| p.data()[12..14] != [8, 0]));
    assert!(opened.steering.stats().passed >= 1);

    // Ours: steered, with the sender's partial checksum completed.
    for i in 0..3 {
        let msg = format!("to the vip {i}");
        lab.send_udp(VIP, &msg);
        let got = recv(&mut port, 1, Duration::from_secs(5));
        let p = got
            .into_iter()
            .find(|p| p.data()[12..14] == [8, 0])
            .expect("the datagram to the VIP reaches the port");
        let (dst, payload) = udp_payload(p.data());
        assert_eq!(dst, VIP);
        assert_eq!(payload, msg.as_bytes());
        if i == 2 {
            // Send it back to the peer, in place: swap the MACs, rewrite the
            // destination (and fix the checksums the simple way).
            let mut p = p;
            let d = p.data_mut();
            let (a, b) = d.split_at_mut(6);
            a.swap_with_slice(&mut b[..6]);
            let listener = std::process::Command::new("ip")
                .args(["netns", "exec", &lab.ns, "python3", "-c",
                    "import socket; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('198.18.0.2',9999)); s.settimeout(5); print(s.recvfrom(100)[0].decode(), flush=True)"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(300));
            let ip = &mut d[14..34];
            // From the VIP (a datagram from the peer's own address would be
            // a martian there).
            ip[12..16].copy_from_slice(&VIP.octets());
            ip[16..20].copy_from_slice(&PEER_IP.octets());
            ip[10..12].fill(0);
            let c = etherparse::Ipv4HeaderSlice::from_slice(ip)
                .unwrap()
                .to_header()
                .calc_header_checksum();
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            d[40..42].fill(0); // UDP checksum 0: none
            let mut v = vec![p];
            port.tx_burst(&mut v);
            assert!(v.is_empty(), "the TX ring took the packet");
            let out = listener.wait_with_output().unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "to the vip 2");
        }
    }
    assert!(opened.steering.stats().steered >= 3);
    assert!(
        port.infos()[0]
            .counters
            .rx_csum_completed
            .load(Ordering::Relaxed)
            >= 3
    );
    port.infos()[0].refresh_kernel_stats().unwrap();

    // Stopping detaches the program and leaves the interface as it was.
    drop(port);
    drop(opened);
    // (The kernel releases a closed link asynchronously.)
    let end = Instant::now() + Duration::from_secs(5);
    while lab.xdp_attached() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !lab.xdp_attached(),
        "{}",
        run(&["ip", "link", "show", "dev", &lab.host])
    );
}

#[test]
fn one_worker_owns_every_queue() {
    // Two queues, one worker: the worker's port takes both, so no flow is
    // lost on a queue without a socket.
    let lab = Lab::with_queues(2);
    let mut opened = AfXdpPort::open_all(&iface(&lab.host), 1, &AfXdpOptions::default())
        .unwrap_or_else(|e| panic!("open: {e}"));
    let mut addrs = HashMap::new();
    addrs.insert(VIP, ADDR_STEER);
    opened.steering.set_addrs(&addrs).unwrap();
    let mut port = opened.ports.pop().unwrap();
    assert_eq!(port.infos().len(), 2);
    lab.send_flows(VIP, "flow", 16);
    let got = recv(&mut port, 16, Duration::from_secs(5));
    let udp = got.iter().filter(|p| p.data()[12..14] == [8, 0]).count();
    assert_eq!(
        udp,
        16,
        "every flow reaches the one worker: {:?}",
        opened.steering.stats()
    );
    assert_eq!(opened.steering.stats().no_socket, 0);
}

/// The receive queues `ethtool -l` reports as in use on `dev`.
fn rx_queues(dev: &str) -> u32 {
    let out = run(&["ethtool", "-l", dev]);
    // The second "RX:" line is the current setting.
    out.lines()
        .filter(|l| l.starts_with("RX:"))
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no current RX count in {out}"))
}

#[test]
fn queues_raised_for_the_workers_are_put_back() {
    // Room for four queues, one in use: two workers need two, and the
    // interface gets its one back when the ports close.
    let lab = Lab::with_queues(4);
    run(&["ethtool", "-L", &lab.host, "rx", "1", "tx", "1"]);
    assert_eq!(rx_queues(&lab.host), 1);
    let opened = AfXdpPort::open_all(&iface(&lab.host), 2, &AfXdpOptions::default())
        .unwrap_or_else(|e| panic!("open: {e}"));
    assert_eq!(opened.channels.count, 2);
    assert_eq!(rx_queues(&lab.host), 2);
    assert!(opened.ports.iter().all(|p| p.infos().len() == 1));
    drop(opened);
    assert_eq!(rx_queues(&lab.host), 1);
}
