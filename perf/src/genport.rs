//! A generator port: replays a trace (or synthesises SYNs from new
//! clients) into recycled buffers, and recycles what the worker sends.

use crate::traffic::{Flow, Trace};
use ferrovs_dataplane::port::memory::MemPacket;
use ferrovs_dataplane::port::{Packet, Port, BURST};
use ferrovs_dataplane::wire::checksum::Delta;
use ferrovs_dataplane::wire::Mac;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Buffers shared by a worker's ports: received on one, sent on another.
pub type Pool = Arc<Mutex<Vec<MemPacket>>>;

pub enum Source {
    /// Explicit frames (warm-up); transmitted frames are captured.
    Queue(VecDeque<Vec<u8>>),
    Trace {
        trace: Arc<Trace>,
        next: usize,
    },
    /// SYNs from ever new clients, from a template frame; with `random`,
    /// from random addresses and ports (a SYN flood: some repeat).
    NewConns {
        template: Vec<u8>,
        n: u64,
        random: bool,
    },
    Idle,
}

pub struct GenPort {
    mac: Mac,
    pub source: Source,
    local: Vec<MemPacket>,
    pool: Pool,
    pub captured: Vec<Vec<u8>>,
    pub sent: u64,
}

impl GenPort {
    pub fn new(mac: Mac, pool: Pool) -> GenPort {
        GenPort {
            mac,
            source: Source::Idle,
            local: Vec::with_capacity(8192),
            pool,
            captured: vec![],
            sent: 0,
        }
    }

    fn buffer(&mut self) -> MemPacket {
        if self.local.is_empty() {
            let mut p = self.pool.lock().unwrap();
            let n = p.len().min(128);
            let at = p.len() - n;
            self.local.extend(p.drain(at..));
        }
        self.local.pop().unwrap_or_default()
    }
}

/// Rewrites a SYN template to come from flow `f`, keeping checksums right.
fn set_client(frame: &mut [u8], f: Flow) {
    let old_a: [u8; 4] = frame[26..30].try_into().unwrap();
    let old_p = u16::from_be_bytes([frame[34], frame[35]]);
    ferrovs_dataplane::wire::ipv4::set_src(&mut frame[14..], f.caddr);
    frame[34..36].copy_from_slice(&f.cport.to_be_bytes());
    let mut d = Delta::new();
    d.addr(old_a, f.caddr).u16(old_p, f.cport);
    let c = u16::from_be_bytes([frame[50], frame[51]]);
    frame[50..52].copy_from_slice(&d.apply(c).to_be_bytes());
}

impl Port for GenPort {
    type Pkt = MemPacket;

    fn rx_burst(&mut self, out: &mut Vec<MemPacket>) -> usize {
        let mut n = 0;
        while n < BURST {
            let mut p = match &self.source {
                Source::Idle => break,
                Source::Queue(q) if q.is_empty() => break,
                _ => self.buffer(),
            };
            match &mut self.source {
                Source::Queue(q) => p.load(&q.pop_front().unwrap()),
                Source::Trace { trace, next } => {
                    p.load(trace.frame(*next));
                    *next += 1;
                    if *next == trace.frames {
                        *next = 0;
                    }
                }
                Source::NewConns {
                    template,
                    n: k,
                    random,
                } => {
                    p.load(template);
                    *k += 1;
                    let f = if *random {
                        // splitmix64 of the counter: addresses in
                        // 198.18.128.0/17 and 198.19.0.0/16, any port.
                        let mut z = k.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                        z ^= z >> 31;
                        let host = (z as u32) % (3 << 15);
                        let a = (198u32 << 24 | 18 << 16 | 128 << 8) + host;
                        crate::traffic::Flow {
                            caddr: a.to_be_bytes(),
                            cport: 1024 + ((z >> 32) as u16 % 64512),
                        }
                    } else {
                        crate::traffic::flow(*k)
                    };
                    set_client(p.data_mut(), f);
                }
                Source::Idle => unreachable!("checked above"),
            }
            out.push(p);
            n += 1;
        }
        n
    }

    fn tx_burst(&mut self, pkts: &mut Vec<MemPacket>) {
        self.sent += pkts.len() as u64;
        if matches!(self.source, Source::Queue(_)) {
            self.captured.extend(pkts.iter().map(|p| p.data().to_vec()));
        }
        self.local.append(pkts);
        if self.local.len() > 256 {
            let mut p = self.pool.lock().unwrap();
            let at = self.local.len() - 128;
            p.extend(self.local.drain(at..));
        }
    }

    fn alloc(&mut self) -> Option<MemPacket> {
        let mut p = self.buffer();
        p.load(&[]);
        Some(p)
    }

    fn mac(&self) -> Mac {
        self.mac
    }
}
