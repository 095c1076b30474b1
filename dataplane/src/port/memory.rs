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
}

impl MemPort {
    pub fn new(mac: Mac) -> MemPort {
        MemPort {
            mac,
            rx: VecDeque::new(),
            tx: Vec::new(),
            spare: Vec::new(),
            tx_limit: None,
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
}
