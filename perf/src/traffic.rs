//! Pre-built traffic: frames laid out in the order they will be sent, at a
//! fixed stride, so feeding them costs a sequential copy (like a NIC's DMA
//! into a ring) and the flow order seen by the worker is random.

use crate::lab::{CLIENT_MAC, DIR0_MAC, DIR1_MAC, RS_MAC, RS_NET, VIP};
use ferrovs_dataplane::wire::{checksum, ipv4};

pub const STRIDE: usize = 64;
pub const FRAME_LEN: usize = 60;

/// A client flow: its address and port.
#[derive(Clone, Copy, Debug)]
pub struct Flow {
    pub caddr: [u8; 4],
    pub cport: u16,
}

/// The n-th client flow: addresses in 198.18.128.0/17 and 198.19.0.0/16.
pub fn flow(n: u64) -> Flow {
    let host = (n / 50_000) as u32;
    let cport = 10_000 + (n % 50_000) as u16;
    let a = (198u32 << 24 | 18 << 16 | 128 << 8) + host;
    Flow {
        caddr: a.to_be_bytes(),
        cport,
    }
}

/// A minimal TCP segment (no options, no payload) with valid checksums.
#[allow(clippy::too_many_arguments)]
pub fn tcp_frame(
    out: &mut [u8],
    smac: [u8; 6],
    dmac: [u8; 6],
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    flags: u8,
) {
    out[..FRAME_LEN].fill(0);
    out[0..6].copy_from_slice(&dmac);
    out[6..12].copy_from_slice(&smac);
    out[12..14].copy_from_slice(&[0x08, 0x00]);
    ipv4::write_header(
        &mut out[14..],
        40,
        0,
        ipv4::FLAG_DF,
        64,
        ipv4::PROTO_TCP,
        src,
        dst,
    );
    let t = &mut out[34..54];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&1u32.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    let ph = checksum::pseudo_header_v4(src, dst, ipv4::PROTO_TCP, 20);
    let c = !checksum::fold(ph + checksum::sum(t));
    t[16..18].copy_from_slice(&c.to_be_bytes());
}

/// Frames for one worker, sent round and round.
pub struct Trace {
    pub bytes: Vec<u8>,
    pub frames: usize,
    /// Port each frame arrives on.
    pub ports: Vec<u8>,
}

impl Trace {
    pub fn new() -> Trace {
        Trace {
            bytes: vec![],
            frames: 0,
            ports: vec![],
        }
    }
    pub fn push(&mut self, port: u8, f: impl FnOnce(&mut [u8])) {
        let start = self.bytes.len();
        self.bytes.resize(start + STRIDE, 0);
        f(&mut self.bytes[start..start + STRIDE]);
        self.ports.push(port);
        self.frames += 1;
    }
    #[inline(always)]
    pub fn frame(&self, i: usize) -> &[u8] {
        &self.bytes[i * STRIDE..i * STRIDE + FRAME_LEN]
    }
}

/// Client → VIP segment for a flow.
pub fn inbound(out: &mut [u8], f: Flow, flags: u8) {
    tcp_frame(out, CLIENT_MAC, DIR0_MAC, f.caddr, f.cport, VIP, 80, flags);
}

/// Real server → client (NAT) or → local address (FULLNAT) segment.
pub fn reply(out: &mut [u8], rs: usize, dst: [u8; 4], dport: u16, flags: u8) {
    let mut rip = RS_NET;
    rip[3] = 11 + rs as u8;
    let mut mac = RS_MAC;
    mac[5] += rs as u8;
    tcp_frame(out, mac, DIR1_MAC, rip, 80, dst, dport, flags);
}
