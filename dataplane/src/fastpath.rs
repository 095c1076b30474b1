//! The XDP fast path for established DR flows: the worker's side.
//!
//! On a veth (and on any NIC in copy mode) most of a packet's cost in the
//! AF_XDP backend is the kernel's: the copy into the socket and the skb it
//! builds for every transmitted frame. So, as Katran does, the packets of a
//! flow whose path is settled are forwarded by the XDP program itself
//! (dataplane/bpf/xdp_steer.c, "Fast path") and never reach a worker. The
//! worker keeps everything that decides: it schedules, follows the TCP
//! state machine (SYN, FIN and RST still come to it), answers TTL 1, and
//! owns the timers. It *offloads* a DR connection once it is established
//! (TCP) or confirmed (UDP, a second packet: a spoofed source sends once),
//! and takes it back when it leaves that state or the table.
//!
//! This module is sans-IO: the entry format shared with the BPF program,
//! the bounded queue of map changes with its flush policy, and the expiry
//! rule. The map itself is behind [`FlowMap`] (the AF_XDP port implements
//! it with bpf(2); the memory port with a hash map for tests).
//!
//! Map updates are syscalls, so the worker never makes one per packet: it
//! queues them ([`FastPath::add`], [`FastPath::del`]) and flushes the queue
//! in one batch ([`FastPath::due`]) when it holds [`FLUSH_BATCH`] changes,
//! when the oldest has waited [`FLUSH_MS`], or when a poll found nothing to
//! do. Until its entry is in the map a flow simply keeps going through the
//! worker, so the delay costs nothing but speed.

use crate::conn::entry::{Conn, F_CONFIRMED, F_SYNPROXY};
use crate::conn::{TcpState, Tuple};
use crate::service::FwdMethod;
use crate::wire::{ipv4, Mac};

/// Bit of `Conn::state`'s high nibble: the connection's entry is in (or on
/// its way to) the XDP flow map of the port whose index is in bits 4..7.
/// The high nibble is otherwise used only by SYN-proxied connections, which
/// are never offloaded.
pub const OFFLOADED: u8 = 0x80;
/// Ports whose index fits in those three bits may offload.
pub const MAX_PORTS: usize = 8;
/// Changes queued before a flush is due at once.
pub const FLUSH_BATCH: usize = 256;
/// The longest a queued change waits for its flush.
pub const FLUSH_MS: u64 = 1;
/// New offloads refused (the flow stays on the slow path, and is offered
/// again by its next packet) while this many changes wait. Removals are
/// always queued: a stale entry would keep forwarding a finished flow.
pub const QUEUE_CAP: usize = 8192;
/// How often worker 0 reads the program's per-server counters.
pub const HARVEST_MS: u64 = 1000;

/// The client→VIP tuple, as the BPF program's `struct flow_key`: addresses
/// and ports in network order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub saddr: [u8; 4],
    pub daddr: [u8; 4],
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    pub proto: u8,
    pub pad: [u8; 3],
}

const _: () = assert!(std::mem::size_of::<FlowKey>() == 16);

impl FlowKey {
    pub fn of(t: &Tuple) -> FlowKey {
        FlowKey {
            saddr: t.saddr,
            daddr: t.daddr,
            sport: t.sport.to_be_bytes(),
            dport: t.dport.to_be_bytes(),
            proto: t.proto,
            pad: [0; 3],
        }
    }
}

/// What the program needs to forward a flow, as `struct flow_value`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowValue {
    pub dmac: Mac,
    pub smac: Mac,
    /// Egress interface (XDP_TX when it is the one the frame came in on).
    pub ifindex: u32,
    /// The worker's DestId: the program counts per real server with it.
    pub dest_id: u32,
    /// 0: DR, the only mode offloaded so far.
    pub flags: u32,
    /// Written by the program (bpf_ktime_get_ns of the last packet it
    /// forwarded); 0 until then.
    pub last_seen: u64,
}

const _: () = assert!(std::mem::size_of::<FlowValue>() == 32);

/// A change to a port's flow map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Add(FlowKey, FlowValue),
    Del(FlowKey),
}

/// A port's XDP flow map.
pub trait FlowMap {
    /// Applies `ops` in order (a removal queued after an insert of the
    /// same key must win). Returns how many inserts the map refused (full):
    /// those flows stay on the slow path, which is always correct.
    fn apply(&mut self, ops: &[Op]) -> usize;
    /// How long ago (ms) the program last forwarded a packet of `key`;
    /// `None` when it has none (not in the map, or never used).
    fn idle_ms(&mut self, key: &FlowKey) -> Option<u64>;
    /// Packets and bytes the program forwarded to real server `dest` since
    /// the map was made (monotonic), if it counts that server.
    fn dest_totals(&mut self, dest: u32) -> Option<(u64, u64)>;
}

/// The port a connection is offloaded on, if it is.
#[inline(always)]
pub fn offloaded_port(c: &Conn) -> Option<usize> {
    (c.fwd == FwdMethod::Dr && c.state & OFFLOADED != 0 && !is_synproxied(c))
        .then_some(((c.state >> 4) & 0x7) as usize)
}

#[inline(always)]
fn is_synproxied(c: &Conn) -> bool {
    c.proto == ipv4::PROTO_TCP && c.flags & F_SYNPROXY != 0
}

/// Marks the connection offloaded on `port` (< [`MAX_PORTS`]).
#[inline]
pub fn mark(c: &mut Conn, port: usize) {
    debug_assert!(port < MAX_PORTS);
    c.state = (c.state & 0x0f) | OFFLOADED | ((port as u8) << 4);
}

#[inline]
pub fn unmark(c: &mut Conn) {
    c.state &= 0x0f;
}

/// Whether the XDP program may forward this connection's packets: DR, not
/// SYN-proxied (the proxy translates sequence numbers), and settled: TCP
/// ESTABLISHED, UDP confirmed.
#[inline(always)]
pub fn eligible(c: &Conn) -> bool {
    if c.fwd != FwdMethod::Dr || is_synproxied(c) {
        return false;
    }
    match c.proto {
        ipv4::PROTO_TCP => TcpState::from_u8(c.state) == TcpState::Established,
        ipv4::PROTO_UDP => c.flags & F_CONFIRMED != 0,
        _ => false,
    }
}

/// The timer of an offloaded connection fired after `timeout_s`: keep it
/// for as long as the program's last packet leaves of the timeout, else
/// let it expire. (The timer already counts the packets the worker saw.)
#[inline]
pub fn keep_ms(timeout_s: u32, idle_ms: Option<u64>) -> Option<u64> {
    let timeout = timeout_s as u64 * 1000;
    match idle_ms {
        Some(idle) if idle < timeout => Some(timeout - idle),
        _ => None,
    }
}

/// Counters of one worker's fast path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FastPathCounters {
    /// Connections offered to the map, and taken back.
    pub offloaded: u64,
    pub removed: u64,
    /// Offers the map refused (full), and offers not queued (queue full).
    pub refused: u64,
    pub queue_full: u64,
    /// Timer firings that found the program still forwarding the flow.
    pub kept: u64,
    /// Batches written (one or a few syscalls each).
    pub flushes: u64,
}

/// One worker's queue of map changes.
#[derive(Debug)]
pub struct FastPath {
    ops: Vec<(u16, Op)>,
    first_ms: u64,
    pub counters: FastPathCounters,
}

impl Default for FastPath {
    fn default() -> Self {
        FastPath::new()
    }
}

impl FastPath {
    pub fn new() -> FastPath {
        FastPath {
            ops: Vec::with_capacity(FLUSH_BATCH * 2),
            first_ms: 0,
            counters: FastPathCounters::default(),
        }
    }

    fn push(&mut self, port: u16, op: Op, now_ms: u64) {
        if self.ops.is_empty() {
            self.first_ms = now_ms;
        }
        self.ops.push((port, op));
    }

    /// Queues an insert; false (and nothing queued) when the queue is full.
    pub fn add(&mut self, port: u16, k: FlowKey, v: FlowValue, now_ms: u64) -> bool {
        if self.ops.len() >= QUEUE_CAP {
            self.counters.queue_full += 1;
            return false;
        }
        self.counters.offloaded += 1;
        self.push(port, Op::Add(k, v), now_ms);
        true
    }

    /// Queues a removal (always).
    pub fn del(&mut self, port: u16, k: FlowKey, now_ms: u64) {
        self.counters.removed += 1;
        self.push(port, Op::Del(k), now_ms);
    }

    pub fn pending(&self) -> usize {
        self.ops.len()
    }

    /// Whether the queue should be written now: a batch is full, the
    /// oldest change has waited long enough, or the worker is idle.
    pub fn due(&self, now_ms: u64, idle: bool) -> bool {
        !self.ops.is_empty()
            && (idle || self.ops.len() >= FLUSH_BATCH || now_ms >= self.first_ms + FLUSH_MS)
    }

    /// Hands each port's changes, in order, to `apply`, and empties the
    /// queue. `apply` returns how many inserts were refused.
    pub fn flush(&mut self, nports: usize, mut apply: impl FnMut(usize, &[Op]) -> usize) {
        if self.ops.is_empty() {
            return;
        }
        let mut batch = Vec::with_capacity(self.ops.len());
        for port in 0..nports {
            batch.clear();
            batch.extend(
                self.ops
                    .iter()
                    .filter(|(p, _)| *p as usize == port)
                    .map(|(_, op)| *op),
            );
            if !batch.is_empty() {
                self.counters.refused += apply(port, &batch) as u64;
                self.counters.flushes += 1;
            }
        }
        self.ops.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::entry::{F_CONFIRMED, F_SYNPROXY};

    fn key(n: u16) -> FlowKey {
        FlowKey::of(&Tuple {
            proto: ipv4::PROTO_UDP,
            saddr: [198, 19, 0, 1],
            sport: n,
            daddr: [198, 18, 0, 100],
            dport: 9,
        })
    }

    #[test]
    fn key_is_in_network_order() {
        let k = key(0x1234);
        assert_eq!(k.sport, [0x12, 0x34]);
        assert_eq!(k.dport, [0, 9]);
        assert_eq!(k.pad, [0; 3]);
    }

    #[test]
    fn flush_is_due_on_a_full_batch_on_age_or_when_idle() {
        let mut f = FastPath::new();
        assert!(!f.due(100, true), "nothing queued, nothing to write");
        f.add(0, key(1), FlowValue::default(), 100);
        assert!(!f.due(100, false), "one change, fresh, busy worker: wait");
        assert!(f.due(100, true), "idle worker: write now");
        assert!(f.due(100 + FLUSH_MS, false), "waited long enough");
        let mut f = FastPath::new();
        for i in 0..FLUSH_BATCH as u16 {
            f.add(0, key(i), FlowValue::default(), 100);
        }
        assert!(f.due(100, false), "a full batch");
    }

    #[test]
    fn queue_is_bounded_for_inserts_but_never_loses_a_removal() {
        let mut f = FastPath::new();
        for i in 0..QUEUE_CAP {
            assert!(f.add(0, key(i as u16), FlowValue::default(), 0));
        }
        assert!(!f.add(0, key(1), FlowValue::default(), 0));
        assert_eq!(f.counters.queue_full, 1);
        f.del(0, key(7), 0);
        assert_eq!(f.pending(), QUEUE_CAP + 1);
    }

    #[test]
    fn flush_keeps_order_per_port_and_counts_refusals() {
        let mut f = FastPath::new();
        f.add(1, key(1), FlowValue::default(), 0);
        f.add(0, key(2), FlowValue::default(), 0);
        f.del(1, key(1), 0);
        let mut seen = Vec::new();
        f.flush(2, |port, ops| {
            seen.push((port, ops.to_vec()));
            (port == 0) as usize
        });
        assert_eq!(
            seen,
            vec![
                (0, vec![Op::Add(key(2), FlowValue::default())]),
                (
                    1,
                    vec![Op::Add(key(1), FlowValue::default()), Op::Del(key(1))]
                ),
            ]
        );
        assert_eq!(f.counters.refused, 1);
        assert_eq!(f.counters.flushes, 2);
        assert_eq!(f.pending(), 0);
    }

    #[test]
    fn timer_keeps_what_the_program_still_forwards() {
        // Fired after a 300 s timeout: the program forwarded a packet 10 s
        // ago, so 290 s remain.
        assert_eq!(keep_ms(300, Some(10_000)), Some(290_000));
        // Idle for the whole timeout, or never used: expire.
        assert_eq!(keep_ms(300, Some(300_000)), None);
        assert_eq!(keep_ms(300, Some(400_000)), None);
        assert_eq!(keep_ms(300, None), None);
    }

    #[test]
    fn only_settled_dr_connections_are_eligible_and_marks_round_trip() {
        let mut c = Conn::EMPTY;
        c.proto = ipv4::PROTO_TCP;
        c.state = TcpState::SynRecv as u8;
        assert!(!eligible(&c), "half-open");
        c.state = TcpState::Established as u8;
        assert!(eligible(&c));
        mark(&mut c, 5);
        assert_eq!(offloaded_port(&c), Some(5));
        assert_eq!(TcpState::from_u8(c.state), TcpState::Established);
        assert!(eligible(&c), "the mark leaves the state alone");
        unmark(&mut c);
        assert_eq!(offloaded_port(&c), None);
        c.flags |= F_SYNPROXY;
        assert!(!eligible(&c), "SYN-proxied: sequence numbers translated");
        c.flags = 0;
        c.state = TcpState::FinWait as u8;
        assert!(!eligible(&c));
        c.fwd = FwdMethod::Nat;
        c.state = TcpState::Established as u8;
        assert!(!eligible(&c), "NAT sees replies: not offloaded");

        let mut u = Conn::EMPTY;
        u.proto = ipv4::PROTO_UDP;
        assert!(!eligible(&u), "unconfirmed: maybe spoofed");
        u.flags |= F_CONFIRMED;
        assert!(eligible(&u));
    }
}
