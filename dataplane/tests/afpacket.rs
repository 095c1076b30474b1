//! The AF_PACKET backend against a real kernel: a veth pair whose peer end
//! lives in a network namespace the test creates, the port opened on the
//! end left in the root namespace (with no address and forwarding off, so
//! the root kernel ignores the traffic), real frames sent from the namespace
//! with ping and python3. Needs root; fails (does not skip) without it.
//! Addresses: 198.18.0.0/15 only, inside the test's namespace.

use ferrovs_dataplane::port::afpacket::{
    if_gro, set_if_gro, thread_pool_stats, AfPacket, AfPacketOptions, AfPacketPort,
};
use ferrovs_dataplane::port::{Iface, Packet, Port};
use ferrovs_dataplane::wire::arp::{self, Arp};
use ferrovs_dataplane::wire::Mac;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;

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

const HOST_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let euid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or("?")
        .to_string();
    assert!(
        euid == "0",
        "the AF_PACKET tests need root (network namespaces, veth, AF_PACKET sockets); \
         effective uid is {euid}. Run them as root: sudo -E cargo test -p ferrovs-dataplane --test afpacket"
    );
}

// ---------------------------------------------------------------------------
// Commands with timeouts

/// Runs a command to completion within `timeout`; panics on failure.
fn run(args: &[&str], timeout: Duration) -> String {
    try_run(args, timeout).unwrap_or_else(|e| panic!("{e}"))
}

fn try_run(args: &[&str], timeout: Duration) -> Result<String, String> {
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {args:?}: {e}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{args:?} did not finish within {timeout:?}"));
            }
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "{args:?} failed ({}): {}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(stdout)
}

const T: Duration = Duration::from_secs(10);

/// A background process whose stdout lines arrive on a channel.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(args: &[&str]) -> Proc {
        let mut child = Command::new(args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines: rx }
    }

    fn line(&self, timeout: Duration) -> String {
        self.lines.recv_timeout(timeout).unwrap_or_else(|e| {
            panic!("no output from the background process within {timeout:?}: {e}")
        })
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// The lab: one namespace, one veth pair

static SEQ: AtomicU32 = AtomicU32::new(0);

fn unique() -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{:05x}{:x}{:x}",
        std::process::id() & 0xfffff,
        n & 0xf,
        (t >> 10) & 0xff
    )
}

struct Lab {
    ns: String,
    /// The root-namespace end, where the port is opened.
    host: String,
    /// The namespace end.
    peer: String,
    peer_mac: Mac,
    host_mac: Mac,
}

impl Lab {
    fn new() -> Lab {
        require_root();
        let u = unique();
        let lab = Lab {
            ns: format!("ferrovs-afp-{u}"),
            host: format!("fvh{u}"),
            peer: format!("fvp{u}"),
            peer_mac: [0; 6],
            host_mac: [0; 6],
        };
        // From here on, Drop cleans up whatever was created.
        let mut lab = lab;
        run(&["ip", "netns", "add", &lab.ns], T);
        run(
            &[
                "ip", "link", "add", &lab.host, "type", "veth", "peer", "name", &lab.peer, "netns",
                &lab.ns,
            ],
            T,
        );
        // The root kernel must neither forward what arrives here nor chatter
        // on the link (IPv6 autoconfiguration), see the module doc.
        write_sysctl(
            &format!("/proc/sys/net/ipv4/conf/{}/forwarding", lab.host),
            "0",
        );
        write_sysctl(
            &format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", lab.host),
            "1",
        );
        run(&["ip", "link", "set", &lab.host, "up"], T);
        lab.ns_run(&[
            "sh",
            "-c",
            &format!("echo 1 > /proc/sys/net/ipv6/conf/{}/disable_ipv6", lab.peer),
        ]);
        lab.ns_run(&["ip", "link", "set", "lo", "up"]);
        lab.ns_run(&[
            "ip",
            "addr",
            "add",
            &format!("{PEER_IP}/24"),
            "dev",
            &lab.peer,
        ]);
        lab.ns_run(&["ip", "link", "set", &lab.peer, "up"]);
        lab.host_mac = parse_mac(
            &std::fs::read_to_string(format!("/sys/class/net/{}/address", lab.host)).unwrap(),
        );
        lab.peer_mac =
            parse_mac(&lab.ns_run(&["cat", &format!("/sys/class/net/{}/address", lab.peer)]));
        lab
    }

    fn ns_run(&self, args: &[&str]) -> String {
        let mut a = vec!["ip", "netns", "exec", &self.ns];
        a.extend_from_slice(args);
        run(&a, T)
    }

    fn ns_spawn(&self, args: &[&str]) -> Proc {
        let mut a = vec!["ip", "netns", "exec", &self.ns];
        a.extend_from_slice(args);
        Proc::spawn(&a)
    }

    /// The peer reaches `ip` at the host end's MAC without ARP.
    fn static_neigh(&self, ip: Ipv4Addr, dev: &str) {
        let mac = fmt_mac(&self.host_mac);
        self.ns_run(&[
            "ip",
            "neigh",
            "replace",
            &ip.to_string(),
            "lladdr",
            &mac,
            "dev",
            dev,
            "nud",
            "permanent",
        ]);
    }

    /// Sends `per` rounds of one UDP datagram per flow from the namespace to
    /// `dst:9999`; flow f has source port 41000+f, payload "TAG f k " plus
    /// filler of varying (also odd) length.
    fn send_udp(&self, dst: Ipv4Addr, tag: &str, flows: usize, per: usize) {
        const PY: &str = r#"
import socket, sys
dst, tag, flows, per = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
socks = []
for f in range(flows):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 41000 + f))
    socks.append(s)
for k in range(per):
    for f, s in enumerate(socks):
        s.sendto(("%s %d %d " % (tag, f, k)).encode() + b"x" * ((f * 7 + k * 13) % 301), (dst, 9999))
"#;
        self.ns_run(&[
            "python3",
            "-c",
            PY,
            &dst.to_string(),
            tag,
            &flows.to_string(),
            &per.to_string(),
        ]);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting the namespace deletes the peer end and with it the pair;
        // the explicit link delete covers a failure half-way through setup.
        let _ = try_run(&["ip", "netns", "del", &self.ns], T);
        let _ = try_run(&["ip", "link", "del", &self.host], T);
    }
}

fn write_sysctl(path: &str, v: &str) {
    std::fs::write(path, v).unwrap_or_else(|e| panic!("write {path}: {e}"));
}

fn parse_mac(s: &str) -> Mac {
    let v: Vec<u8> = s
        .trim()
        .split(':')
        .map(|x| u8::from_str_radix(x, 16).unwrap_or_else(|_| panic!("bad MAC {s:?}")))
        .collect();
    v.try_into().unwrap_or_else(|_| panic!("bad MAC {s:?}"))
}

fn fmt_mac(m: &Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

// ---------------------------------------------------------------------------
// Frames, checked independently of the dataplane's wire module

/// RFC 1071 one's complement sum, folded.
fn inet_sum(chunks: &[&[u8]]) -> u16 {
    let mut s: u64 = 0;
    for c in chunks {
        let mut it = c.chunks_exact(2);
        for w in &mut it {
            s += u16::from_be_bytes([w[0], w[1]]) as u64;
        }
        if let [b] = it.remainder() {
            s += (*b as u64) << 8;
        }
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// A received IPv4/UDP datagram.
#[derive(Debug)]
struct Udp {
    vlan: Option<u16>,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    payload: Vec<u8>,
    /// The UDP checksum verifies (or is 0, "none").
    csum_ok: bool,
    ip_csum_ok: bool,
}

fn parse_udp(f: &[u8]) -> Option<Udp> {
    if f.len() < 14 {
        return None;
    }
    let mut et = u16::from_be_bytes([f[12], f[13]]);
    let mut off = 14;
    let mut vlan = None;
    if et == 0x8100 {
        vlan = Some(u16::from_be_bytes([f[14], f[15]]) & 0xfff);
        et = u16::from_be_bytes([f[16], f[17]]);
        off = 18;
    }
    if et != 0x0800 || f.len() < off + 20 {
        return None;
    }
    let ip = &f[off..];
    let ihl = (ip[0] & 0xf) as usize * 4;
    let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    if ip[9] != 17 || total > ip.len() || total < ihl + 8 {
        return None;
    }
    let u = &ip[ihl..total];
    let ulen = u.len() as u16;
    let pseudo = [&ip[12..20], &[0, 17], &ulen.to_be_bytes()[..]].concat();
    let csum = u16::from_be_bytes([u[6], u[7]]);
    Some(Udp {
        vlan,
        src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
        dst: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
        sport: u16::from_be_bytes([u[0], u[1]]),
        dport: u16::from_be_bytes([u[2], u[3]]),
        payload: u[8..].to_vec(),
        csum_ok: csum == 0 || inet_sum(&[&pseudo, u]) == 0xffff,
        ip_csum_ok: inet_sum(&[&ip[..ihl]]) == 0xffff,
    })
}

/// Builds an Ethernet/IPv4/UDP frame into a packet from `port.alloc()`.
fn build_udp(
    port: &mut AfPacketPort,
    dst_mac: &Mac,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> AfPacket {
    let mut p = port.alloc().expect("alloc");
    let ulen = 8 + payload.len();
    assert!(p.set_len(14 + 20 + ulen));
    let src_mac = port.mac();
    let f = p.data_mut();
    f[0..6].copy_from_slice(dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..];
    ip[..20].fill(0);
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + ulen) as u16).to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let c = !inet_sum(&[&ip[..20]]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let pseudo = [&ip[12..20], &[0, 17], &(ulen as u16).to_be_bytes()[..]].concat();
    let u = &mut ip[20..20 + ulen];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&(ulen as u16).to_be_bytes());
    u[6..8].fill(0);
    u[8..].copy_from_slice(payload);
    let c = match !inet_sum(&[&pseudo, u]) {
        0 => 0xffff,
        c => c,
    };
    u[6..8].copy_from_slice(&c.to_be_bytes());
    p
}

/// Receives on `ports` until `done` says so or `timeout` passes; returns
/// every frame with the index of the port it came from.
fn collect(
    ports: &mut [&mut AfPacketPort],
    timeout: Duration,
    mut done: impl FnMut(&[(usize, Vec<u8>)]) -> bool,
) -> Vec<(usize, Vec<u8>)> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut burst = Vec::new();
    loop {
        let mut any = false;
        for (i, p) in ports.iter_mut().enumerate() {
            if p.rx_burst(&mut burst) > 0 {
                any = true;
            }
            got.extend(burst.drain(..).map(|pk| (i, pk.data().to_vec())));
        }
        if done(&got) || Instant::now() >= deadline {
            return got;
        }
        if !any {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// The datagrams with payloads starting with `tag`, as (port, "f k", Udp).
fn tagged(frames: &[(usize, Vec<u8>)], tag: &str) -> Vec<(usize, String, Udp)> {
    frames
        .iter()
        .filter_map(|(i, f)| {
            let u = parse_udp(f)?;
            let s = String::from_utf8_lossy(&u.payload).into_owned();
            let rest = s.strip_prefix(tag)?.strip_prefix(' ')?;
            let mut w = rest.split(' ');
            let key = format!("{} {}", w.next()?, w.next()?);
            Some((*i, key, u))
        })
        .collect()
}

fn count_tagged(frames: &[(usize, Vec<u8>)], tag: &str) -> usize {
    tagged(frames, tag).len()
}

fn group_id() -> u16 {
    // Explicit ids for `open`: distinct per process and test; ids are per
    // network namespace and these sockets live in the root one.
    0x4000
        | ((std::process::id() as u16).wrapping_mul(8) & 0x3ff8)
        | (SEQ.fetch_add(1, Ordering::Relaxed) as u16 & 7)
}

// ---------------------------------------------------------------------------
// Tests

/// UDP sent by the namespace's kernel with checksum offload (veth's
/// default: CHECKSUM_PARTIAL) arrives with a complete, correct checksum; the
/// port reports the interface as the kernel knows it; a warm port does not
/// allocate.
#[test]
fn receives_udp_with_completed_checksums() {
    let lab = Lab::new();
    let mut port = AfPacketPort::open(&iface(&lab.host), group_id(), &AfPacketOptions::default())
        .expect("open");
    assert_eq!(port.mac(), lab.host_mac);
    assert_eq!(port.mtu(), 1500);
    let idx: u32 = std::fs::read_to_string(format!("/sys/class/net/{}/ifindex", lab.host))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(port.ifindex(), idx);
    lab.static_neigh(HOST_IP, &lab.peer);

    let n = 40;
    let mut allocated = 0;
    for round in 0..2 {
        let tag = format!("rx{round}");
        lab.send_udp(HOST_IP, &tag, 4, n / 4);
        let frames = collect(&mut [&mut port], Duration::from_secs(5), |g| {
            count_tagged(g, &tag) >= n
        });
        let got = tagged(&frames, &tag);
        assert_eq!(got.len(), n, "datagrams received in round {round}");
        let keys: HashSet<_> = got.iter().map(|(_, k, _)| k.clone()).collect();
        assert_eq!(keys.len(), n, "each datagram once");
        for (_, k, u) in &got {
            assert!(u.ip_csum_ok, "{k}: IPv4 header checksum");
            assert!(u.csum_ok, "{k}: UDP checksum not completed: {u:?}");
            assert_eq!(
                (u.src, u.dst, u.dport, u.vlan),
                (PEER_IP, HOST_IP, 9999, None)
            );
            let f: usize = k.split(' ').next().unwrap().parse().unwrap();
            assert_eq!(u.sport, 41000 + f as u16);
        }
        if round == 0 {
            allocated = thread_pool_stats().allocated;
        } else {
            assert_eq!(
                thread_pool_stats().allocated,
                allocated,
                "a warm port allocated buffers"
            );
        }
    }
    let c = port.counters();
    assert!(
        c.rx_csum_completed.load(Ordering::Relaxed) >= 2 * n as u64,
        "the veth frames should have been CHECKSUM_PARTIAL (TP_STATUS_CSUMNOTREADY); completed {}",
        c.rx_csum_completed.load(Ordering::Relaxed)
    );
    port.refresh_kernel_stats().unwrap();
    assert!(c.kernel_packets.load(Ordering::Relaxed) >= 2 * n as u64);
    assert_eq!(c.kernel_drops.load(Ordering::Relaxed), 0);
}

/// A VLAN-tagged frame arrives with its 802.1Q tag (priority bits
/// included) back in place: the receive path had moved it to tp_vlan_tci.
/// The frames are written raw by a packet socket in the namespace, so the
/// test needs no 8021q module.
#[test]
fn restores_vlan_tags() {
    let lab = Lab::new();
    let mut port = AfPacketPort::open(&iface(&lab.host), group_id(), &AfPacketOptions::default())
        .expect("open");
    const PY: &str = r#"
import socket, struct, sys
ifname, dst, src, n = sys.argv[1], bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3]), int(sys.argv[4])
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s > 0xffff: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
sip, dip = socket.inet_aton("198.18.1.2"), socket.inet_aton("198.18.1.1")
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
for i in range(n):
    payload = ("vlan %d 0 " % i).encode() + b"y" * (i * 5)
    ulen = 8 + len(payload)
    udp = struct.pack("!HHHH", 42000 + i, 9999, ulen, 0) + payload
    c = csum(sip + dip + struct.pack("!BBH", 0, 17, ulen) + udp) or 0xffff
    udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, i, 0, 64, 17, 0, sip, dip)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    tci = (5 << 13) | 100
    s.send(dst + src + struct.pack("!HHH", 0x8100, tci, 0x0800) + ip + udp)
"#;
    let hex = |m: &Mac| m.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let n = 10;
    lab.ns_run(&[
        "python3",
        "-c",
        PY,
        &lab.peer,
        &hex(&lab.host_mac),
        &hex(&lab.peer_mac),
        &n.to_string(),
    ]);
    let frames = collect(&mut [&mut port], Duration::from_secs(5), |g| {
        count_tagged(g, "vlan") >= n
    });
    let got = tagged(&frames, "vlan");
    assert_eq!(got.len(), n);
    for (_, k, u) in &got {
        assert_eq!(u.vlan, Some(100), "{k}: tag not restored");
        assert!(u.csum_ok && u.ip_csum_ok, "{k}: checksums {u:?}");
        assert_eq!(
            (u.src, u.dst),
            (Ipv4Addr::new(198, 18, 1, 2), Ipv4Addr::new(198, 18, 1, 1))
        );
    }
    for (_, f) in frames
        .iter()
        .filter(|(_, f)| f.len() > 18 && f[12..14] == [0x81, 0x00])
    {
        assert_eq!(
            f[14..16],
            ((5u16 << 13) | 100).to_be_bytes(),
            "TCI (priority and id)"
        );
    }
    assert!(port.counters().rx_vlan_restored.load(Ordering::Relaxed) >= n as u64);
}

/// Sends one raw Ethernet frame (given in hex) from the namespace's end of
/// the pair through a plain AF_PACKET socket.
fn send_raw(lab: &Lab, frame: &[u8]) {
    let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
    lab.ns_run(&[
        "python3",
        "-c",
        "import socket, sys\n\
         s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n\
         s.bind((sys.argv[1], 0))\n\
         s.send(bytes.fromhex(sys.argv[2]))",
        &lab.peer,
        &hex,
    ]);
}

/// Polls the port's socket for POLLIN for up to `ms` milliseconds.
fn poll_in(port: &AfPacketPort, ms: i32) -> bool {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: port.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let r = unsafe { libc::poll(&mut p, 1, ms) };
    r == 1 && p.revents & libc::POLLIN != 0
}

/// The TPACKET_V2 ring hands over each frame by itself, with no block to
/// fill or timer to wait for: one frame sent is one frame ready (rx_ready,
/// POLLIN) and received, byte for byte, before the next is sent. Covers an
/// untagged frame, a VLAN-tagged one (tag restored from the slot header)
/// and the largest tagged frame the MTU allows at the backend's largest
/// MTU (it must fit a ring slot whole).
#[test]
fn delivers_each_frame_on_its_own() {
    let lab = Lab::new();
    let mtu = ferrovs_dataplane::port::afpacket::MAX_MTU.to_string();
    run(&["ip", "link", "set", &lab.host, "mtu", &mtu], T);
    lab.ns_run(&["ip", "link", "set", &lab.peer, "mtu", &mtu]);
    let mut port = AfPacketPort::open(&iface(&lab.host), group_id(), &AfPacketOptions::default())
        .expect("open");
    // An ethertype for local experiments (IEEE 802): nothing else sends it.
    const ETHERTYPE: [u8; 2] = [0x88, 0xb5];
    let frame = |seq: u8, vlan: Option<u16>, len: usize| {
        let mut f = Vec::with_capacity(len);
        f.extend_from_slice(&lab.host_mac);
        f.extend_from_slice(&lab.peer_mac);
        if let Some(tci) = vlan {
            f.extend_from_slice(&[0x81, 0x00]);
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&ETHERTYPE);
        let body = len - f.len();
        f.extend((0..body).map(|i| seq.wrapping_mul(31).wrapping_add(i as u8)));
        f
    };
    let is_ours = |f: &[u8]| {
        f.len() > 18
            && (f[12..14] == ETHERTYPE || (f[12..14] == [0x81, 0x00] && f[16..18] == ETHERTYPE))
    };
    let full = 14 + 4 + ferrovs_dataplane::port::afpacket::MAX_MTU as usize;
    let frames = [
        frame(1, None, 60),
        frame(2, Some((3 << 13) | 100), 64),
        frame(3, Some(200), full),
    ];
    assert!(!port.rx_ready());
    let mut burst = Vec::new();
    for (i, want) in frames.iter().enumerate() {
        send_raw(&lab, want);
        let deadline = Instant::now() + Duration::from_secs(2);
        while !port.rx_ready() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(100));
        }
        assert!(port.rx_ready(), "frame {i}: rx_ready never became true");
        assert!(poll_in(&port, 0), "frame {i}: no POLLIN with a frame ready");
        let mut got: Vec<Vec<u8>> = Vec::new();
        while got.is_empty() && Instant::now() < deadline {
            port.rx_burst(&mut burst);
            got.extend(
                burst
                    .drain(..)
                    .map(|p| p.data().to_vec())
                    .filter(|f| is_ours(f)),
            );
        }
        assert_eq!(got.len(), 1, "frame {i}: expected exactly one frame");
        assert!(
            got[0] == *want,
            "frame {i} differs:\n got  {:02x?}\n want {want:02x?}",
            got[0]
        );
    }
    assert!(!port.rx_ready(), "the ring should be empty");
    let c = port.counters();
    assert_eq!(c.rx_vlan_restored.load(Ordering::Relaxed), 2);
    for (name, v) in [
        ("rx_truncated", &c.rx_truncated),
        ("rx_oversize", &c.rx_oversize),
        ("rx_gso", &c.rx_gso),
    ] {
        assert_eq!(v.load(Ordering::Relaxed), 0, "{name}");
    }
}

/// A UDP GSO super-frame from the namespace's stack (UDP_SEGMENT; veth
/// passes it on unsegmented) is far longer than the MTU and larger than a
/// ring slot: the kernel truncates it, and the port counts it as rx_gso
/// with its length, not as a truncated frame, and delivers nothing of it.
#[test]
fn counts_gso_super_frames() {
    let lab = Lab::new();
    let mut port = AfPacketPort::open(&iface(&lab.host), group_id(), &AfPacketOptions::default())
        .expect("open");
    lab.static_neigh(HOST_IP, &lab.peer);
    lab.ns_run(&["ethtool", "-K", &lab.peer, "tx-udp-segmentation", "on"]);
    const PY: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_UDP, 103, 1400)  # UDP_SEGMENT
s.sendto(b"g" * 14000, (sys.argv[1], 9999))
"#;
    lab.ns_run(&["python3", "-c", PY, &HOST_IP.to_string()]);
    let c = port.counters();
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut burst = Vec::new();
    let mut delivered = 0;
    while c.rx_gso.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
        port.rx_burst(&mut burst);
        delivered += burst
            .drain(..)
            .filter(|p| parse_udp(p.data()).is_some_and(|u| u.dport == 9999))
            .count();
        std::thread::sleep(Duration::from_micros(200));
    }
    assert_eq!(c.rx_gso.load(Ordering::Relaxed), 1, "GSO frames counted");
    // 14000 bytes of payload, UDP, IPv4 and Ethernet headers.
    assert_eq!(
        c.rx_gso_max_len.load(Ordering::Relaxed),
        14000 + 8 + 20 + 14
    );
    assert_eq!(c.rx_truncated.load(Ordering::Relaxed), 0);
    assert_eq!(delivered, 0, "no segment of the super-frame delivered");
}

/// Frames we transmit reach the namespace's kernel: it learns our ARP reply
/// and a UDP socket there receives our datagram.
#[test]
fn transmits_arp_reply_and_udp() {
    let lab = Lab::new();
    let mut port = AfPacketPort::open(&iface(&lab.host), group_id(), &AfPacketOptions::default())
        .expect("open");
    let listener = lab.ns_spawn(&[
        "python3",
        "-c",
        r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 7777))
s.settimeout(8)
print("ready", flush=True)
try:
    d, a = s.recvfrom(4096)
    print(a[0], a[1], d.decode(), flush=True)
except socket.timeout:
    print("timeout", flush=True)
"#,
        &PEER_IP.to_string(),
    ]);
    assert_eq!(listener.line(T), "ready");

    // The namespace asks who has HOST_IP (a datagram to it makes its kernel
    // ARP); we answer.
    let _sender = lab.ns_spawn(&[
        "python3",
        "-c",
        "import socket, sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'arp', (sys.argv[1], 9))",
        &HOST_IP.to_string(),
    ]);
    let is_request = |f: &[u8]| {
        f.len() >= 42
            && f[12..14] == [0x08, 0x06]
            && Arp::parse(&f[14..]).is_ok_and(|a| a.op == arp::OP_REQUEST && a.tpa == HOST_IP)
    };
    let frames = collect(&mut [&mut port], Duration::from_secs(5), |g| {
        g.iter().any(|(_, f)| is_request(f))
    });
    let (_, req) = frames
        .iter()
        .find(|(_, f)| is_request(f))
        .expect("no ARP request for the host address from the namespace");
    let req = Arp::parse(&req[14..]).unwrap();
    assert_eq!(req.sha, lab.peer_mac);
    let mut reply = port.alloc().expect("alloc");
    assert!(reply.set_len(arp::MIN_FRAME));
    let mac = port.mac();
    arp::build_reply(reply.data_mut(), &req, &mac, None);
    let mut q = vec![reply];
    port.tx_burst(&mut q);
    assert!(q.is_empty(), "ARP reply not sent");

    let want = fmt_mac(&lab.host_mac);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = lab.ns_run(&[
            "ip",
            "neigh",
            "show",
            &HOST_IP.to_string(),
            "dev",
            &lab.peer,
        ]);
        if n.contains(&want) && !n.contains("FAILED") && !n.contains("INCOMPLETE") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the namespace did not learn our ARP reply: {n:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // A UDP datagram to the listener; its kernel checks both checksums.
    let msg = "hello from the afpacket port";
    let p = build_udp(
        &mut port,
        &lab.peer_mac,
        HOST_IP,
        PEER_IP,
        5555,
        7777,
        msg.as_bytes(),
    );
    let mut q = vec![p];
    port.tx_burst(&mut q);
    assert!(q.is_empty(), "UDP frame not sent");
    assert_eq!(listener.line(T), format!("{HOST_IP} 5555 {msg}"));
    assert_eq!(port.counters().tx_errors.load(Ordering::Relaxed), 0);
}

/// Two ports in one fanout group: every frame reaches exactly one of them,
/// all frames of a flow the same one, and both get flows. A port in another
/// group (a tap) sees every frame too. Frames either port transmits are
/// received by neither (though the tap, which does not ignore outgoing
/// frames, sees them leave).
#[test]
fn fanout_splits_flows_and_ignores_own_tx() {
    let lab = Lab::new();
    let opts = AfPacketOptions::default();
    let mut ports = AfPacketPort::open_fanout(&iface(&lab.host), 2, &opts).expect("open fanout");
    assert_eq!(ports[0].fanout_group(), ports[1].fanout_group());
    let tap_opts = AfPacketOptions {
        ignore_outgoing: false,
        ..opts
    };
    let mut tap = AfPacketPort::open_fanout(&iface(&lab.host), 1, &tap_opts)
        .expect("open tap")
        .pop()
        .unwrap();
    assert_ne!(tap.fanout_group(), ports[0].fanout_group());
    lab.static_neigh(HOST_IP, &lab.peer);

    let (flows, per) = (64, 3);
    let total = flows * per;
    lab.send_udp(HOST_IP, "fan", flows, per);
    let (a, b) = ports.split_at_mut(1);
    let frames = collect(
        &mut [&mut a[0], &mut b[0], &mut tap],
        Duration::from_secs(5),
        |g| count_tagged(g, "fan") >= 2 * total,
    );
    let got = tagged(&frames, "fan");
    let mut seen: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, k, u) in &got {
        assert!(u.csum_ok);
        seen.entry(k.clone()).or_default().push(*i);
    }
    assert_eq!(seen.len(), total, "distinct datagrams seen");
    let mut flow_port: HashMap<String, usize> = HashMap::new();
    let mut per_port = [0usize; 2];
    for (k, on) in &seen {
        let mut on = on.clone();
        on.sort();
        assert_eq!(
            on.len(),
            2,
            "{k}: expected one fanout port and the tap, got {on:?}"
        );
        assert_eq!(on[1], 2, "{k}: not seen by the tap: {on:?}");
        let p = on[0];
        per_port[p] += 1;
        let flow = k.split(' ').next().unwrap().to_string();
        let prev = *flow_port.entry(flow.clone()).or_insert(p);
        assert_eq!(prev, p, "flow {flow} was split across ports");
    }
    assert!(
        per_port[0] > 0 && per_port[1] > 0,
        "fanout used one port only: {per_port:?}"
    );

    // Both workers transmit; neither may receive what either sent. Their
    // frames bypass the qdisc, which also hides them from taps, so a third
    // sender goes through the qdisc: the tap sees its frames leave (the
    // control), the workers, ignoring outgoing frames, must not.
    let own = |port: &mut AfPacketPort, w: usize| {
        let mut q: Vec<AfPacket> = (0..4)
            .map(|k| {
                let msg = format!("own {w} {k} ");
                build_udp(
                    port,
                    &lab.peer_mac,
                    HOST_IP,
                    PEER_IP,
                    5555,
                    9,
                    msg.as_bytes(),
                )
            })
            .collect();
        port.tx_burst(&mut q);
        assert!(q.is_empty(), "frames not sent");
    };
    for (w, port) in ports.iter_mut().enumerate() {
        own(port, w);
    }
    let via_qdisc = AfPacketOptions {
        qdisc_bypass: false,
        ..opts
    };
    let mut sender = AfPacketPort::open_fanout(&iface(&lab.host), 1, &via_qdisc)
        .expect("open sender")
        .pop()
        .unwrap();
    own(&mut sender, 9);
    let (a, b) = ports.split_at_mut(1);
    let frames = collect(
        &mut [&mut a[0], &mut b[0], &mut tap],
        Duration::from_millis(500),
        |_| false,
    );
    let own = tagged(&frames, "own");
    let at_tap: HashSet<_> = own
        .iter()
        .filter(|(i, _, _)| *i == 2)
        .map(|(_, k, _)| k.clone())
        .collect();
    let want: HashSet<_> = (0..4).map(|k| format!("9 {k}")).collect();
    assert_eq!(
        at_tap, want,
        "the tap should see the qdisc sender's frames leave"
    );
    let back: Vec<_> = own.iter().filter(|(i, _, _)| *i != 2).collect();
    assert!(
        back.is_empty(),
        "workers received outgoing frames: {back:?}"
    );
    for f in frames.iter().filter(|(i, _)| *i != 2) {
        assert_ne!(
            f.1[6..12],
            lab.host_mac,
            "a worker received a frame sent from its interface"
        );
    }
}

/// GRO is turned off at open (merged frames would not fit the buffers);
/// bad settings are refused with errors that name them.
#[test]
fn open_turns_gro_off_and_rejects_bad_interfaces() {
    let lab = Lab::new();
    set_if_gro(&lab.host, true).expect("turn GRO on for the test");
    assert!(if_gro(&lab.host).unwrap(), "veth should take GRO on");
    let _port = AfPacketPort::open(&iface(&lab.host), group_id(), &AfPacketOptions::default())
        .expect("open");
    assert!(!if_gro(&lab.host).unwrap(), "open left GRO on");

    // A missing or non-Ethernet interface is the control plane's to refuse
    // (southbound::NetState::iface): the port gets the facts it learned.
    let bad = AfPacketOptions {
        frame_size: 1000,
        ..Default::default()
    };
    let e = AfPacketPort::open(&iface(&lab.host), group_id(), &bad).unwrap_err();
    assert!(e.to_string().contains("frame size 1000"), "{e}");
    run(&["ip", "link", "set", &lab.host, "mtu", "9000"], T);
    let e =
        AfPacketPort::open(&iface(&lab.host), group_id(), &AfPacketOptions::default()).unwrap_err();
    assert!(e.to_string().contains("MTU 9000"), "{e}");
}
