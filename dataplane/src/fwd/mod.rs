//! The four LVS forwarding modes as pure rewrites of a frame in place, plus
//! the translation of ICMP errors that quote a flow, TUN's encapsulation and
//! fragmentation, and the modes' per-worker allocators (`alloc.rs`).
//!
//! Data flows one way: port → worker → forwarding mode → port. The worker
//! receives, looks the connection up and calls the mode; a mode that makes
//! packets of its own (TUN's fragments, fragmentation-needed) hands them to
//! the worker's transmit side through [`Egress`], statically dispatched.

pub mod alloc;
pub mod dr;
pub mod fullnat;
pub mod icmp;
pub mod icmp6;
pub mod nat;
pub mod nat64;
pub mod nat66;
pub mod synproxy;
pub mod tun;
pub mod tun6;

use crate::counters::{DropReason, WorkerCounters};
use crate::port::Packet;
use crate::snapshot::Snapshot;
use crate::wire::checksum::Delta;
use crate::wire::{ipv4, l4};

/// The worker's transmit side, as a forwarding mode that makes packets of
/// its own sees it. Implemented by the worker; generic, never `dyn`.
pub trait Egress {
    type Pkt: Packet;
    /// A fresh buffer from the pool of port `port`.
    fn alloc(&mut self, port: u16) -> Option<Self::Pkt>;
    /// Routes `pkt` to `dst`, resolves the next hop and queues it.
    fn send(&mut self, snap: &Snapshot, pkt: Self::Pkt, dst: [u8; 4], now: u64);
    /// Drops `pkt`, counted under `r`.
    fn drop_pkt(&mut self, r: DropReason, pkt: Self::Pkt);
    /// The worker's counters.
    fn counters(&self) -> &WorkerCounters;
    /// The IP identification for the next outer header
    /// ([`alloc::IpIds`]).
    fn ip_id(&mut self) -> u16;
}

/// Offsets of a parsed IPv4 TCP/UDP packet inside its frame.
#[derive(Clone, Copy, Debug)]
pub struct L34 {
    pub l3: usize,
    pub l4: usize,
    pub proto: u8,
}

/// Rewrites source and/or destination address and port of a TCP/UDP packet,
/// updating the IP header checksum and the transport checksum (whose
/// pseudo-header covers the addresses) incrementally, RFC 1624.
#[inline]
pub fn rewrite_tuple(
    frame: &mut [u8],
    o: L34,
    src: Option<([u8; 4], u16)>,
    dst: Option<([u8; 4], u16)>,
) {
    let mut d = Delta::new();
    if let Some((a, p)) = src {
        let old_a: [u8; 4] = frame[o.l3 + 12..o.l3 + 16].try_into().unwrap();
        let old_p = l4::src_port(&frame[o.l4..]);
        ipv4::set_src(&mut frame[o.l3..], a);
        l4::set_src_port_raw(&mut frame[o.l4..], p);
        d.addr(old_a, a).u16(old_p, p);
    }
    if let Some((a, p)) = dst {
        let old_a: [u8; 4] = frame[o.l3 + 16..o.l3 + 20].try_into().unwrap();
        let old_p = l4::dst_port(&frame[o.l4..]);
        ipv4::set_dst(&mut frame[o.l3..], a);
        l4::set_dst_port_raw(&mut frame[o.l4..], p);
        d.addr(old_a, a).u16(old_p, p);
    }
    l4::apply_delta(o.proto, &mut frame[o.l4..], &d);
}
