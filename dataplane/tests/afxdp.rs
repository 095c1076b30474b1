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
            // The listener says when it is bound (a fixed sleep was too
            // short on a loaded machine, and the datagram was lost).
            let mut listener = std::process::Command::new("ip")
                .args(["netns", "exec", &lab.ns, "python3", "-c",
                    "import socket; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('198.18.0.2',9999)); s.settimeout(10); print('ready', flush=True); print(s.recvfrom(100)[0].decode(), flush=True)"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut lines =
                std::io::BufRead::lines(std::io::BufReader::new(listener.stdout.take().unwrap()));
            assert_eq!(lines.next().unwrap().unwrap(), "ready");
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
            let got = lines.next().and_then(|l| l.ok()).unwrap_or_default();
            listener.wait().unwrap();
            assert_eq!(got.trim(), "to the vip 2");
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

/// A frame put on the peer's wire as it is (AF_PACKET in the namespace):
/// checksums as built, no offload.
fn send_frames(lab: &Lab, frames: &[Vec<u8>]) {
    let hex: Vec<String> = frames
        .iter()
        .map(|f| f.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    let mut args = vec![
        "python3",
        "-c",
        "import socket,sys\ns=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\ns.bind((sys.argv[1],0))\nfor h in sys.argv[2:]: s.send(bytes.fromhex(h))",
        &lab.peer,
    ];
    args.extend(hex.iter().map(String::as_str));
    lab.ns(&args);
}

/// Captures, on the peer, the IPv4 frames that arrive for `secs` seconds
/// (started before the frames are sent), as hex lines.
fn capture(lab: &Lab, secs: f32) -> std::process::Child {
    let c = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.ns,
            "python3",
            "-c",
            "import socket,sys,time\ns=socket.socket(socket.AF_PACKET,socket.SOCK_RAW,socket.htons(0x0800))\ns.bind((sys.argv[1],0))\ns.settimeout(0.1)\nend=time.time()+float(sys.argv[2])\nprint('ready',flush=True)\nwhile time.time()<end:\n try:\n  d,a=s.recvfrom(2048)\n except socket.timeout:\n  continue\n if a[2]!=4: print(d.hex(),flush=True)",
            &lab.peer,
            &secs.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c
}

fn captured(c: std::process::Child) -> Vec<Vec<u8>> {
    let out = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| *l != "ready")
        .map(|l| {
            (0..l.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&l[i..i + 2], 16).unwrap())
                .collect()
        })
        .collect()
}

fn wait_ready(c: &mut std::process::Child) {
    use std::io::BufRead;
    let out = c.stdout.take().unwrap();
    let mut r = std::io::BufReader::new(out);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    c.stdout = Some(r.into_inner());
}

fn mac_of(s: &str) -> [u8; 6] {
    let mut m = [0u8; 6];
    for (d, x) in m.iter_mut().zip(s.split(':')) {
        *d = u8::from_str_radix(x, 16).unwrap();
    }
    m
}

fn frame_udp(src: [u8; 6], dst: [u8; 6], sport: u16, ttl: u8) -> Vec<u8> {
    let mut v = Vec::new();
    etherparse::PacketBuilder::ethernet2(src, dst)
        .ipv4(PEER_IP.octets(), VIP.octets(), ttl)
        .udp(sport, 9999)
        .write(&mut v, b"fast path")
        .unwrap();
    v
}

fn frame_tcp(src: [u8; 6], dst: [u8; 6], sport: u16, fin: bool) -> Vec<u8> {
    let mut v = Vec::new();
    let mut b = etherparse::PacketBuilder::ethernet2(src, dst)
        .ipv4(PEER_IP.octets(), VIP.octets(), 64)
        .tcp(sport, 80, 1000, 64000)
        .ack(2000);
    if fin {
        b = b.fin();
    }
    b.write(&mut v, b"").unwrap();
    v
}

#[test]
fn fast_path_forwards_offloaded_flows_in_xdp_and_leaves_the_rest_to_the_worker() {
    use ferrovs_dataplane::conn::Tuple;
    use ferrovs_dataplane::fastpath::{FlowKey, FlowValue, Op};
    let lab = Lab::new();
    // What an XDP program transmits on a veth reaches the peer only if the
    // peer runs an XDP program too (else the kernel drops it silently; GRO
    // on the peer did not help on Linux 6.18): give it one that passes all.
    let obj = std::env::temp_dir().join(format!("ferrovs-xdp-pass-{}.o", std::process::id()));
    let src = obj.with_extension("c");
    std::fs::write(
        &src,
        "#include <linux/bpf.h>\n#define SEC(n) __attribute__((section(n), used))\nSEC(\"xdp\") int pass(struct xdp_md *c) { return XDP_PASS; }\nchar LICENSE[] SEC(\"license\") = \"GPL\";\n",
    )
    .unwrap();
    run(&[
        "clang",
        "-O2",
        "-target",
        "bpf",
        "-idirafter/usr/include/x86_64-linux-gnu",
        "-c",
        src.to_str().unwrap(),
        "-o",
        obj.to_str().unwrap(),
    ]);
    lab.ns(&[
        "ip",
        "link",
        "set",
        "dev",
        &lab.peer,
        "xdpdrv",
        "obj",
        obj.to_str().unwrap(),
        "sec",
        "xdp",
    ]);
    let _ = std::fs::remove_file(&src);
    let _ = std::fs::remove_file(&obj);
    let opts = AfXdpOptions {
        flow_entries: 1024,
        ..AfXdpOptions::default()
    };
    let host = iface(&lab.host);
    let mut opened = AfXdpPort::open_all(&host, 1, &opts).unwrap_or_else(|e| panic!("open: {e}"));
    let mut addrs = HashMap::new();
    addrs.insert(VIP, ADDR_STEER);
    opened.steering.set_addrs(&addrs).unwrap();
    let mut port = opened.ports.pop().unwrap();
    let peer_mac = mac_of(
        lab.ns(&["cat", &format!("/sys/class/net/{}/address", lab.peer)])
            .trim(),
    );
    let key = |proto: u8, sport: u16, dport: u16| {
        FlowKey::of(&Tuple {
            proto,
            saddr: PEER_IP.octets(),
            sport,
            daddr: VIP.octets(),
            dport,
        })
    };
    // The "real server" is the peer itself (back out of the same
    // interface: XDP_TX), reached at its own MAC.
    let value = FlowValue {
        dmac: peer_mac,
        smac: host.mac,
        ifindex: host.index,
        dest_id: 3,
        flags: 0,
        last_seen: 0,
    };
    let (udp_k, tcp_k, idle_k) = (
        key(17, 41000, 9999),
        key(6, 41001, 80),
        key(17, 41002, 9999),
    );
    let map = port.flow_map().expect("the fast path is on");
    assert_eq!(
        map.apply(&[
            Op::Add(udp_k, value),
            Op::Add(tcp_k, value),
            Op::Add(idle_k, value)
        ]),
        0
    );

    // Five datagrams of the offloaded UDP flow and one TCP segment without
    // flags of note: forwarded by the program, back to the peer, TTL one
    // lower, checksums right; the worker's socket sees none of them.
    let mut cap = capture(&lab, 1.5);
    wait_ready(&mut cap);
    let mut frames: Vec<Vec<u8>> = (0..5)
        .map(|_| frame_udp(peer_mac, host.mac, 41000, 64))
        .collect();
    frames.push(frame_tcp(peer_mac, host.mac, 41001, false));
    send_frames(&lab, &frames);
    let got = recv(&mut port, 1, Duration::from_millis(300));
    assert!(
        got.iter().all(|p| p.data()[12..14] != [8, 0]),
        "offloaded frames reached the worker's socket"
    );
    let back: Vec<Vec<u8>> = captured(cap)
        .into_iter()
        .filter(|f| f[14 + 16..14 + 20] == VIP.octets())
        .collect();
    assert_eq!(back.len(), 6, "{:?}", opened.steering.stats());
    for f in &back {
        assert_eq!(f[0..6], peer_mac);
        assert_eq!(f[6..12], host.mac);
        assert_eq!(f[14 + 8], 63, "TTL lowered");
        let h = etherparse::Ipv4HeaderSlice::from_slice(&f[14..]).unwrap();
        assert_eq!(
            h.header_checksum(),
            h.to_header().calc_header_checksum(),
            "header checksum updated"
        );
    }
    let s = opened.steering.stats();
    assert_eq!(s.fast, 6, "{s:?}");
    assert_eq!(s.steered, 0, "{s:?}");

    // The program stamped the flows it forwarded, not the idle one, and
    // counted the server's packets and bytes (IP lengths: 37 and 40).
    let map = port.flow_map().unwrap();
    assert!(map.idle_ms(&udp_k).is_some_and(|ms| ms < 5_000));
    assert_eq!(map.idle_ms(&idle_k), None);
    assert_eq!(map.dest_totals(3), Some((6, 5 * 37 + 40)));

    // What the worker must see still reaches it: a FIN of the offloaded TCP
    // flow, TTL 1, a datagram with only the pseudo-header checksum
    // (CHECKSUM_PARTIAL from the peer's own stack), and a flow not in the
    // map.
    let mut worker_bound = vec![
        frame_tcp(peer_mac, host.mac, 41001, true),
        frame_udp(peer_mac, host.mac, 41000, 1),
        frame_udp(peer_mac, host.mac, 41003, 64),
    ];
    let mut partial = frame_udp(peer_mac, host.mac, 41000, 64);
    let l4len = (partial.len() - 34) as u32;
    let ip = &partial[14..34];
    let mut sum = 17 + l4len;
    for i in (12..20).step_by(2) {
        sum += u16::from_be_bytes([ip[i], ip[i + 1]]) as u32;
    }
    let folded = ((sum & 0xffff) + (sum >> 16)) as u16;
    partial[40..42].copy_from_slice(&folded.to_be_bytes());
    worker_bound.push(partial);
    send_frames(&lab, &worker_bound);
    let got = recv(&mut port, 4, Duration::from_secs(5));
    let ipv4 = got.iter().filter(|p| p.data()[12..14] == [8, 0]).count();
    assert_eq!(ipv4, 4, "{:?}", opened.steering.stats());
    assert_eq!(opened.steering.stats().fast, 6);

    // Taken back: the flow's datagrams go to the worker again.
    let map = port.flow_map().unwrap();
    assert_eq!(map.apply(&[Op::Del(udp_k), Op::Del(udp_k)]), 0);
    assert_eq!(map.idle_ms(&udp_k), None);
    send_frames(&lab, &[frame_udp(peer_mac, host.mac, 41000, 64)]);
    let got = recv(&mut port, 1, Duration::from_secs(5));
    assert_eq!(got.iter().filter(|p| p.data()[12..14] == [8, 0]).count(), 1);
    assert_eq!(opened.steering.stats().fast, 6);
}

#[test]
fn fast_path_off_leaves_every_frame_to_the_worker() {
    let lab = Lab::new();
    let mut opened = AfXdpPort::open_all(&iface(&lab.host), 1, &AfXdpOptions::default())
        .unwrap_or_else(|e| panic!("open: {e}"));
    assert!(opened.steering.flow_fds().is_none());
    let port = opened.ports.pop().unwrap();
    let mut port = port;
    assert!(port.flow_map().is_none());
}
