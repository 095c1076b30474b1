//! `ferrovs-pktgen`: the packet generator of `perf/veth_pps.sh`. It sends
//! 60-byte Ethernet frames (64 on a wire, with the FCS) of UDP datagrams
//! from `--flows` client tuples (source address in `--src-net`/16, source
//! port) to one destination, through the dataplane's own AF_XDP port in TX
//! mode (or its AF_PACKET port, `--io afpacket`), for a fixed time or
//! exactly once per flow (`--once`, to warm a connection table), and
//! prints what it sent as `sent=N seconds=S mpps=M ...`.
//!
//! Frames are built from one template: flow `i` patches its source
//! address, port and IPv4 header checksum in (UDP checksum 0) as it is
//! copied into the port's buffer, so any flow count costs the same.
//!
//! For flood tests: `--tcp-syn` sends TCP SYNs (valid TCP checksum, random
//! initial sequence number) instead of UDP datagrams, and `--random-src`
//! gives every frame a random source address in `--src-net`/16 and a
//! random source port, as a spoofed flood does (then `--flows` only counts
//! the frames `--once` sends).
//!
//! Opening the AF_XDP port attaches ferrovs's steering XDP program to the
//! interface with an empty address map, which passes everything that
//! arrives to the kernel; `--absorb` steers frames to `--dst` coming back
//! (an XDP bounce) to the generator's socket instead, which frees them.
//! A native XDP program on the veth also gives it the NAPI context that a
//! peer's `XDP_TX` needs.

use clap::Parser;
use ferrovs_dataplane::port::afpacket::{AfPacketOptions, AfPacketPort};
use ferrovs_dataplane::port::afxdp::{steer, AfXdpOptions, AfXdpPort};
use ferrovs_dataplane::port::{Iface, Packet, Port, BURST};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// Frame length without the FCS: the minimum Ethernet frame.
const FRAME_LEN: usize = 60;
/// Distinct source addresses before the source port moves on.
const HOSTS: u32 = 65_000;
const FIRST_SPORT: u32 = 10_000;

#[derive(Parser, Debug)]
#[command(about = "Send 60-byte UDP frames of many flows through an AF_XDP port")]
struct Args {
    /// Interface to send on.
    #[arg(long)]
    dev: String,
    /// Destination MAC (the next hop's: the director's).
    #[arg(long)]
    dst_mac: String,
    /// Destination IPv4 address.
    #[arg(long)]
    dst: Ipv4Addr,
    #[arg(long, default_value_t = 9)]
    dport: u16,
    /// Source network (a /16): flow i comes from its (i % 65000 + 1)-th
    /// address, port 10000 + i / 65000.
    #[arg(long, default_value = "198.19.0.0")]
    src_net: Ipv4Addr,
    #[arg(long, default_value_t = 1000)]
    flows: u32,
    /// How long to send (ignored with --once).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Keep sending past --seconds until at least this many frames have
    /// gone (a test that needs a flood of a given size on a loaded
    /// machine); at most four times --seconds in all.
    #[arg(long, default_value_t = 0)]
    min_count: u64,
    /// Send each flow's frame exactly once, then stop.
    #[arg(long)]
    once: bool,
    /// Packets per second at most (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Stop as soon as this file exists (looked at every 1024 bursts),
    /// even before --seconds: a test ends the flood when it has measured
    /// enough under it.
    #[arg(long)]
    stop_file: Option<std::path::PathBuf>,
    /// AF_XDP: steer frames addressed to --dst that come back to --dev to
    /// the generator's socket, and free them there (cheaper than passing
    /// them to the kernel: the XDP bounce's return leg).
    #[arg(long)]
    absorb: bool,
    /// The socket to send through.
    #[arg(long, value_enum, default_value = "afxdp")]
    io: Io,
    /// Send TCP SYNs (a SYN flood) instead of UDP datagrams.
    #[arg(long)]
    tcp_syn: bool,
    /// Every frame from a random address in --src-net/16 and a random port
    /// (1024-65535): a spoofed flood, whose flows never repeat.
    #[arg(long)]
    random_src: bool,
    /// Seed of --random-src (0: from the clock).
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut m = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut m {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(m)
}

/// One's complement sum of big-endian 16-bit words, folded and inverted.
fn ip_checksum(hdr: &[u8]) -> u16 {
    let mut s: u32 = hdr
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Frames of one traffic stream: a template and where the flow index goes.
struct Frames {
    template: [u8; FRAME_LEN],
    src_net: u32,
    tcp: bool,
}

/// IPv4 header (20 bytes), TCP header without options (20 bytes).
const TCP_OFF: usize = 34;
const TCP_LEN: usize = 20;

/// One's complement sum of big-endian 16-bit words, not folded.
fn sum16(b: &[u8]) -> u32 {
    b.chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .sum()
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// xorshift64*: the random sources of a spoofed flood (not cryptographic).
fn next_random(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

impl Frames {
    fn new(
        src_mac: [u8; 6],
        dst_mac: [u8; 6],
        src_net: Ipv4Addr,
        dst: Ipv4Addr,
        dport: u16,
        tcp: bool,
    ) -> Frames {
        let mut f = [0u8; FRAME_LEN];
        f[0..6].copy_from_slice(&dst_mac);
        f[6..12].copy_from_slice(&src_mac);
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        let ip_len = if tcp { 20 + TCP_LEN } else { FRAME_LEN - 14 };
        ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
        ip[6] = 0x40; // DF
        ip[8] = 64; // TTL
        ip[9] = if tcp { 6 } else { 17 };
        ip[16..20].copy_from_slice(&dst.octets());
        if tcp {
            // SYN, no options, window 64240; Ethernet padding after it.
            let t = &mut f[TCP_OFF..TCP_OFF + TCP_LEN];
            t[2..4].copy_from_slice(&dport.to_be_bytes());
            t[12] = 0x50;
            t[13] = 0x02;
            t[14..16].copy_from_slice(&64240u16.to_be_bytes());
        } else {
            let udp = &mut f[34..42];
            udp[2..4].copy_from_slice(&dport.to_be_bytes());
            udp[4..6].copy_from_slice(&((FRAME_LEN - 34) as u16).to_be_bytes());
            // UDP checksum 0: none (IPv4). Payload: a fixed pattern.
            for (i, b) in f[42..].iter_mut().enumerate() {
                *b = b'a' + i as u8;
            }
        }
        Frames {
            template: f,
            src_net: u32::from(src_net) & 0xffff_0000,
            tcp,
        }
    }

    /// Patches source address and port (and, for TCP, the sequence
    /// number) into `out`, a copy of the template, with valid checksums.
    #[inline]
    fn patch(&self, out: &mut [u8], src: u32, sport: u16, seq: u32) {
        out[26..30].copy_from_slice(&src.to_be_bytes());
        let c = ip_checksum(&out[14..34]);
        out[24..26].copy_from_slice(&c.to_be_bytes());
        out[34..36].copy_from_slice(&sport.to_be_bytes());
        if self.tcp {
            out[38..42].copy_from_slice(&seq.to_be_bytes());
            // Pseudo-header (addresses, protocol, length) and the header.
            let s =
                sum16(&out[26..34]) + 6 + TCP_LEN as u32 + sum16(&out[TCP_OFF..TCP_OFF + TCP_LEN]);
            out[50..52].copy_from_slice(&fold(s).to_be_bytes());
        }
    }

    /// A spoofed frame from the random word `r`: source host (never .0 of
    /// the /16), port from 1024, sequence number.
    #[inline]
    fn write_random(&self, r: u64, out: &mut [u8]) {
        out.copy_from_slice(&self.template);
        let host = ((r & 0xffff) as u32).max(1);
        let sport = 1024 + ((r >> 16) as u16 % (65535 - 1024));
        self.patch(out, self.src_net + host, sport, (r >> 32) as u32);
    }

    /// Flow `i`'s frame, written into `out` (FRAME_LEN bytes).
    #[inline]
    fn write(&self, i: u32, out: &mut [u8]) {
        out.copy_from_slice(&self.template);
        let src = self.src_net + i % HOSTS + 1;
        let sport = (FIRST_SPORT + i / HOSTS) as u16;
        self.patch(out, src, sport, i.wrapping_mul(0x9e37_79b9));
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("ferrovs-pktgen: {msg}");
    std::process::exit(2)
}

/// The socket the generator sends through.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Io {
    /// The dataplane's AF_XDP port (copy mode on a veth).
    Afxdp,
    /// The dataplane's AF_PACKET port (sendmmsg, qdisc bypass).
    Afpacket,
}

fn main() {
    let a = Args::parse();
    if a.flows == 0 || a.flows as u64 > HOSTS as u64 * (65_535 - FIRST_SPORT as u64) {
        fail("--flows out of range");
    }
    let dst_mac = parse_mac(&a.dst_mac).unwrap_or_else(|| fail("bad --dst-mac"));
    let out = match a.io {
        Io::Afxdp => {
            let mut opened = AfXdpPort::open_all(&iface(&a.dev), 1, &AfXdpOptions::default())
                .unwrap_or_else(|e| fail(&e.to_string()));
            let mut port = opened.ports.pop().unwrap_or_else(|| fail("no port"));
            if a.absorb {
                let addrs = HashMap::from([(a.dst, steer::ADDR_STEER)]);
                opened
                    .steering
                    .set_addrs(&addrs)
                    .unwrap_or_else(|e| fail(&e.to_string()));
            }
            let out = send(&a, dst_mac, &mut port);
            let st = opened.steering.stats();
            format!("{out} xdp_passed={}", st.passed)
        }
        Io::Afpacket => {
            let opts = AfPacketOptions {
                // Keep the interface's offloads; a small receive ring (the
                // generator reads nothing).
                disable_gro: false,
                frame_count: 1024,
                ..AfPacketOptions::default()
            };
            let mut ports = AfPacketPort::open_fanout(&iface(&a.dev), 1, &opts)
                .unwrap_or_else(|e| fail(&e.to_string()));
            let mut port = ports.pop().unwrap_or_else(|| fail("no port"));
            send(&a, dst_mac, &mut port)
        }
    };
    println!("{out}");
}

/// `--dev`'s facts for the port (the daemon learns them by rtnetlink; a
/// one-shot lab tool reads sysfs).
fn iface(name: &str) -> Iface {
    let read = |f: &str| {
        std::fs::read_to_string(format!("/sys/class/net/{name}/{f}"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|e| fail(&format!("--dev {name}: {f}: {e}")))
    };
    let mac =
        parse_mac(&read("address")).unwrap_or_else(|| fail(&format!("--dev {name}: not Ethernet")));
    let num = |f: &str| {
        read(f)
            .parse::<u32>()
            .unwrap_or_else(|e| fail(&format!("--dev {name}: {f}: {e}")))
    };
    Iface {
        name: name.to_string(),
        index: num("ifindex"),
        mac,
        mtu: num("mtu"),
    }
}

/// Sends for `--seconds` (or one pass with `--once`); returns the summary.
fn send<P: Port>(a: &Args, dst_mac: [u8; 6], port: &mut P) -> String {
    let frames = Frames::new(port.mac(), dst_mac, a.src_net, a.dst, a.dport, a.tcp_syn);
    let mut rng = if a.seed != 0 {
        a.seed
    } else {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1
    };
    let total = if a.once { a.flows as u64 } else { u64::MAX };
    let limit = Duration::from_secs_f64(if a.once { 3600.0 } else { a.seconds });

    let mut pkts = Vec::with_capacity(BURST);
    let mut rx = Vec::with_capacity(BURST);
    let mut flow = 0u32;
    let mut sent = 0u64;
    let mut no_room = 0u64;
    let mut bursts = 0u64;
    let mut received = 0u64;
    let start = Instant::now();
    let mut now = start;
    while sent < total {
        let want = (total - sent).min(BURST as u64) as usize;
        while pkts.len() < want {
            let Some(mut p) = port.alloc() else { break };
            if !p.set_len(FRAME_LEN) {
                fail("buffer too small");
            }
            if a.random_src {
                frames.write_random(next_random(&mut rng), p.data_mut());
            } else {
                frames.write(flow, p.data_mut());
            }
            pkts.push(p);
            flow += 1;
            if flow == a.flows {
                flow = 0;
            }
        }
        let n = pkts.len();
        port.tx_burst(&mut pkts);
        let left = pkts.len();
        sent += (n - left) as u64;
        if left > 0 {
            // No room: keep the frames for the next burst (they are the
            // next flows' already); reclaim completions meanwhile.
            no_room += 1;
            received += port.rx_burst(&mut rx) as u64;
            rx.clear();
        }
        bursts += 1;
        if a.absorb || bursts & 63 == 0 {
            received += port.rx_burst(&mut rx) as u64;
            rx.clear();
        }
        if bursts & 15 == 0 || a.rate > 0 {
            now = Instant::now();
            let t = now - start;
            if t >= limit && (sent >= a.min_count || t >= limit * 4) {
                break;
            }
            if bursts & 1023 == 0 && a.stop_file.as_ref().is_some_and(|f| f.exists()) {
                break;
            }
            if a.rate > 0 {
                let due = Duration::from_secs_f64(sent as f64 / a.rate as f64);
                while start.elapsed() < due {
                    std::hint::spin_loop();
                }
            }
        }
    }
    if a.once {
        now = Instant::now();
    }
    // Frames not sent go back to the pool.
    drop(pkts);
    let secs = (now - start).as_secs_f64();
    // Let the kernel finish what is in the TX ring before the port closes.
    let end = Instant::now() + Duration::from_millis(200);
    while Instant::now() < end {
        received += port.rx_burst(&mut rx) as u64;
        rx.clear();
        std::thread::sleep(Duration::from_millis(1));
    }
    format!(
        "sent={sent} seconds={secs:.6} mpps={:.4} tx_full_bursts={no_room} received={received}",
        sent as f64 / secs.max(1e-9) / 1e6
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    #[test]
    fn frames_are_byte_exact_with_valid_checksums() {
        let f = Frames::new(
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 2],
            "198.19.7.7".parse().unwrap(),
            "198.18.12.100".parse().unwrap(),
            9,
            false,
        );
        let mut out = [0u8; FRAME_LEN];
        f.write(0, &mut out);
        let want: [u8; FRAME_LEN] = [
            2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00, // Ethernet
            0x45, 0, 0, 46, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 19, 0, 1, 198, 18, 12,
            100, // IPv4, checksum below
            0x27, 0x10, 0, 9, 0, 26, 0, 0, // UDP 10000 -> 9, no checksum
            b'a', b'b', b'c', b'd', b'e', b'f', b'g', b'h', b'i', b'j', b'k', b'l', b'm', b'n',
            b'o', b'p', b'q', b'r',
        ];
        let mut want = want;
        let c = etherparse::Ipv4HeaderSlice::from_slice(&want[14..34])
            .unwrap()
            .to_header()
            .calc_header_checksum();
        want[24..26].copy_from_slice(&c.to_be_bytes());
        assert_eq!(out, want);

        for i in [0u32, 1, 999, 64_999, 65_000, 999_999] {
            f.write(i, &mut out);
            let p = SlicedPacket::from_ethernet(&out).unwrap();
            let Some(NetSlice::Ipv4(ip)) = p.net else {
                panic!("not IPv4")
            };
            let h = ip.header().to_header();
            assert_eq!(h.header_checksum, h.calc_header_checksum(), "flow {i}");
            let src = u32::from(Ipv4Addr::from(h.source));
            assert_eq!(src, 0xc613_0000 + i % HOSTS + 1, "flow {i}");
            let Some(TransportSlice::Udp(u)) = p.transport else {
                panic!("not UDP")
            };
            assert_eq!(u32::from(u.source_port()), FIRST_SPORT + i / HOSTS);
            assert_eq!(u.destination_port(), 9);
            assert_eq!(u.checksum(), 0);
            assert_eq!(u.payload().len(), 18);
        }
    }

    #[test]
    fn spoofed_syns_are_valid_and_random() {
        let f = Frames::new(
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 2],
            "198.19.0.0".parse().unwrap(),
            "198.18.0.100".parse().unwrap(),
            80,
            true,
        );
        let mut out = [0u8; FRAME_LEN];
        let mut rng = 42u64;
        let mut seen = std::collections::HashSet::new();
        for i in 0..2000u32 {
            if i % 2 == 0 {
                f.write_random(next_random(&mut rng), &mut out);
            } else {
                f.write(i, &mut out);
            }
            let p = SlicedPacket::from_ethernet(&out).unwrap();
            let Some(NetSlice::Ipv4(ip)) = p.net else {
                panic!("not IPv4")
            };
            let h = ip.header().to_header();
            assert_eq!(h.header_checksum, h.calc_header_checksum());
            assert_eq!(h.total_len, 40);
            let src = h.source;
            assert_eq!(src[..2], [198, 19]);
            assert!(src != [198, 19, 0, 0]);
            let Some(TransportSlice::Tcp(t)) = p.transport else {
                panic!("not TCP")
            };
            assert!(t.syn() && !t.ack() && !t.rst() && !t.fin());
            assert_eq!(t.destination_port(), 80);
            assert!(t.source_port() >= 1024);
            let want = t
                .to_header()
                .calc_checksum_ipv4_raw(h.source, h.destination, &[])
                .unwrap();
            assert_eq!(t.checksum(), want, "frame {i}");
            if i % 2 == 0 {
                seen.insert((src, t.source_port()));
            }
        }
        assert!(seen.len() >= 995, "random sources repeat: {}", seen.len());
    }

    #[test]
    fn macs_parse() {
        assert_eq!(parse_mac("02:0a:ff:00:01:10"), Some([2, 10, 255, 0, 1, 16]));
        assert_eq!(parse_mac("02:0a:ff:00:01"), None);
        assert_eq!(parse_mac("02:0a:ff:00:01:10:11"), None);
    }
}
