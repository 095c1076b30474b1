//! An in-memory port for tests and benchmarks: frames are injected into an
//! RX queue and collected from a TX queue; buffers are recycled through a
//! free list, so a warmed-up port never allocates.

use super::{Packet, Port, Window, BURST, HEADROOM};
use crate::wire::Mac;
use std::collections::VecDeque;

/// Data room of one buffer: headroom plus a standard 1500-byte frame with
/// two VLAN tags, rounded up.
pub const BUF_SIZE: usize = 2048;

pub struct MemPacket {
    buf: Box<[u8; BUF_SIZE]>,
    w: Window,
}

impl MemPacket {
    pub fn new() -> MemPacket {
        MemPacket {
            buf: Box::new([0; BUF_SIZE]),
            w: Window::empty(HEADROOM),
        }
    }
    /// A packet holding a copy of `frame` (truncated to the buffer size).
    pub fn from_frame(frame: &[u8]) -> MemPacket {
        let mut p = MemPacket::new();
        p.load(frame);
        p
    }
    /// Replaces the contents with `frame`, resetting the headroom.
    #[inline]
    pub fn load(&mut self, frame: &[u8]) {
        let n = frame.len().min(BUF_SIZE - HEADROOM);
        self.w = Window {
            off: HEADROOM as u16,
            len: n as u16,
        };
        self.buf[HEADROOM..HEADROOM + n].copy_from_slice(&frame[..n]);
    }
}

impl Default for MemPacket {
    fn default() -> Self {
        Self::new()
    }
}

impl Packet for MemPacket {
    #[inline(always)]
    fn data(&self) -> &[u8] {
        &self.buf[self.w.range()]
    }
    #[inline(always)]
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.w.range()]
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        self.w.prepend(n)
    }
    #[inline]
    fn adj(&mut self, n: usize) {
        self.w.adj(n)
    }
    #[inline]
    fn set_len(&mut self, len: usize) -> bool {
        self.w.set_len(len, BUF_SIZE)
    }
}

/// An in-memory port.
pub struct MemPort {
    mac: Mac,
    pub rx: VecDeque<MemPacket>,
    pub tx: Vec<MemPacket>,
    pub spare: Vec<MemPacket>,
    /// When set, at most this many packets are accepted per TX burst (to
    /// test TX-full handling).
    pub tx_limit: Option<usize>,
    /// A stand-in for the XDP flow map (`fastpath`), for tests of the
    /// worker's offload logic; `None`: the port has no fast path.
    pub flows: Option<MemFlowMap>,
}

/// The flow map of a memory port: what the worker put in it, and what the
/// test says the "program" did (idle times, per-server counts).
#[derive(Debug, Default)]
pub struct MemFlowMap {
    pub entries: std::collections::HashMap<crate::fastpath::FlowKey, crate::fastpath::FlowValue>,
    /// Inserts beyond this many are refused.
    pub capacity: usize,
    /// ms since the "program" last forwarded the flow (absent: never).
    pub idle: std::collections::HashMap<crate::fastpath::FlowKey, u64>,
    pub dest_totals: std::collections::HashMap<u32, (u64, u64)>,
    /// Batches applied.
    pub batches: usize,
}

impl MemFlowMap {
    pub fn new(capacity: usize) -> MemFlowMap {
        MemFlowMap {
            capacity,
            ..Default::default()
        }
    }
}

impl crate::fastpath::FlowMap for MemFlowMap {
    fn apply(&mut self, ops: &[crate::fastpath::Op]) -> usize {
        use crate::fastpath::Op;
        self.batches += 1;
        let mut refused = 0;
        for op in ops {
            match *op {
                Op::Add(k, v) => {
                    if self.entries.len() >= self.capacity && !self.entries.contains_key(&k) {
                        refused += 1;
                    } else {
                        self.entries.insert(k, v);
                    }
                }
                Op::Del(k) => {
                    self.entries.remove(&k);
                    self.idle.remove(&k);
                }
            }
        }
        refused
    }
    fn idle_ms(&mut self, key: &crate::fastpath::FlowKey) -> Option<u64> {
        if !self.entries.contains_key(key) {
            return None;
        }
        self.idle.get(key).copied()
    }
    fn dest_totals(&mut self, dest: u32) -> Option<(u64, u64)> {
        self.dest_totals.get(&dest).copied()
    }
}

impl MemPort {
    pub fn new(mac: Mac) -> MemPort {
        MemPort {
            mac,
            rx: VecDeque::new(),
            tx: Vec::new(),
            spare: Vec::new(),
            tx_limit: None,
            flows: None,
        }
    }
    pub fn inject(&mut self, frame: &[u8]) {
        let mut p = self.spare.pop().unwrap_or_default();
        p.load(frame);
        self.rx.push_back(p);
    }
    /// Takes the transmitted frames as byte vectors.
    pub fn take_tx(&mut self) -> Vec<Vec<u8>> {
        let out = self.tx.iter().map(|p| p.data().to_vec()).collect();
        self.spare.append(&mut self.tx);
        out
    }
}

impl Port for MemPort {
    type Pkt = MemPacket;

    fn rx_burst(&mut self, out: &mut Vec<MemPacket>) -> usize {
        let n = self.rx.len().min(BURST);
        out.extend(self.rx.drain(..n));
        n
    }

    fn tx_burst(&mut self, pkts: &mut Vec<MemPacket>) {
        let n = self.tx_limit.map_or(pkts.len(), |l| l.min(pkts.len()));
        self.tx.extend(pkts.drain(..n));
    }

    fn alloc(&mut self) -> Option<MemPacket> {
        let mut p = self.spare.pop().unwrap_or_default();
        p.w = Window::empty(HEADROOM);
        Some(p)
    }

    fn mac(&self) -> Mac {
        self.mac
    }

    fn ifindex(&self) -> u32 {
        // Distinct per MAC, never 0 (0 means unknown).
        u32::from_be_bytes([self.mac[2], self.mac[3], self.mac[4], self.mac[5]]) | 1 << 31
    }

    fn flow_map(&mut self) -> Option<&mut dyn crate::fastpath::FlowMap> {
        self.flows
            .as_mut()
            .map(|m| m as &mut dyn crate::fastpath::FlowMap)
    }
}
