//! A generator port: replays a trace (or synthesises SYNs from new
//! clients) into recycled buffers, and recycles what the worker sends.

use crate::mix::NewConnTuples;
use crate::traffic::{Flow, Trace, RENEW};
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
    /// A mixed trace (frames of their own length); the new connections'
    /// frames get a fresh client on every lap.
    Mix {
        trace: Arc<Trace>,
        next: usize,
        lap: u64,
        renew: Option<Arc<Renew>>,
        renew_next: usize,
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

/// How the generator renews new connections' clients: the `RENEW` frames
/// of a lap, in trace order, belong to connections `conns[k]`; on lap `l`
/// connection `j` comes from `tuples.at(l, j)` (lap 0's tuple is the one in
/// the frame).
pub struct Renew {
    pub conns: Vec<u32>,
    pub tuples: NewConnTuples,
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

/// Rewrites a TCP frame (a SYN template, a new connection's segment) to come
/// from flow `f`, keeping checksums right.
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
                Source::Mix {
                    trace,
                    next,
                    lap,
                    renew,
                    renew_next,
                } => {
                    let (frame, flags) = trace.frame_meta(*next);
                    p.load(frame);
                    if flags & RENEW != 0 {
                        if let Some(r) = renew {
                            let conn = r.conns[*renew_next];
                            *renew_next += 1;
                            if *lap % r.tuples.laps as u64 != 0 {
                                set_client(p.data_mut(), r.tuples.at(*lap, conn));
                            }
                        }
                    }
                    *next += 1;
                    if *next == trace.frames {
                        *next = 0;
                        *lap += 1;
                        *renew_next = 0;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::{self, FRAME_LEN};
    use ferrovs_dataplane::wire::{checksum, ipv4, l4};

    fn client(p: &MemPacket) -> Flow {
        let d = p.data();
        Flow {
            caddr: d[26..30].try_into().unwrap(),
            cport: u16::from_be_bytes([d[34], d[35]]),
        }
    }

    fn tcp_ok(p: &MemPacket) -> bool {
        let d = p.data();
        let Ok(ip) = ipv4::parse(&d[14..]) else {
            return false;
        };
        let seg = &d[34..14 + ip.total_len];
        let ph = checksum::pseudo_header_v4(ip.src, ip.dst, ipv4::PROTO_TCP, seg.len() as u16);
        checksum::fold(checksum::add(ph, checksum::sum(seg))) == 0xffff
    }

    #[test]
    fn mixed_source_renews_new_connections_every_lap() {
        let tuples = NewConnTuples {
            tuples: (0..6).map(traffic::new_conn_flow).collect(),
            per_lap: 2,
            laps: 3,
        };
        let mut t = Trace::new();
        // conn 0 SYN, an established segment, conn 1 SYN, a short frame.
        t.push_meta(0, FRAME_LEN, RENEW, |b| {
            traffic::inbound(b, tuples.at(0, 0), l4::TCP_SYN)
        });
        t.push_meta(0, FRAME_LEN, 0, |b| {
            traffic::inbound(b, traffic::flow(9), l4::TCP_ACK)
        });
        t.push_meta(0, FRAME_LEN, RENEW, |b| {
            traffic::inbound(b, tuples.at(0, 1), l4::TCP_SYN)
        });
        t.push_meta(0, 30, 0, |b| {
            traffic::inbound(b, traffic::flow(9), l4::TCP_ACK)
        });
        let laps = tuples.laps as u64;
        let at = |l: u64, c: u32| tuples.at(l, c);
        let (want0, want1) = (
            (0..=laps).map(|l| at(l, 0)).collect::<Vec<_>>(),
            (0..=laps).map(|l| at(l, 1)).collect::<Vec<_>>(),
        );
        let renew = Arc::new(Renew {
            conns: vec![0, 1],
            tuples,
        });
        let pool: Pool = Arc::new(Mutex::new(vec![]));
        let mut port = GenPort::new([2, 0, 0, 0, 0, 1], pool);
        port.source = Source::Mix {
            trace: Arc::new(t),
            next: 0,
            lap: 0,
            renew: Some(renew),
            renew_next: 0,
        };
        let mut got = vec![];
        // Bursts of 32 over 4-frame laps: lap 0..=laps and a bit more.
        while got.len() < 4 * (laps as usize + 1) {
            port.rx_burst(&mut got);
        }
        for (l, lap) in got.chunks(4).take(laps as usize + 1).enumerate() {
            assert_eq!(client(&lap[0]), want0[l], "lap {l}");
            assert_eq!(client(&lap[2]), want1[l], "lap {l}");
            assert_eq!(client(&lap[1]), traffic::flow(9));
            assert!(
                tcp_ok(&lap[0]) && tcp_ok(&lap[1]) && tcp_ok(&lap[2]),
                "lap {l}"
            );
            assert_eq!(lap[3].data().len(), 30);
        }
        // A new tuple on every lap, back to the first after `laps`.
        assert_ne!(want0[0], want0[1]);
        assert_eq!(want0[0], want0[laps as usize]);
    }
}
