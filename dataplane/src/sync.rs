//! Connection sync, the workers' side (issue 16): which connections a
//! master's worker records for the sync daemon, the per-worker rings those
//! records wait in, and what a backup's worker installs.
//!
//! The master follows IPVS's `ip_vs_sync_conn_needed`
//! (net/netfilter/ipvs/ip_vs_sync.c) with its defaults (`sync_threshold`
//! 3, `sync_period` 50, `sync_refresh_period` 0): a TCP connection is sent
//! only in ESTABLISHED, FIN_WAIT, CLOSE, CLOSE_WAIT and TIME_WAIT; a change
//! into one of those but ESTABLISHED is sent at once, and otherwise (and
//! for UDP) on the connection's inbound packet number 3, 53, 103... so that
//! the backup's copy is refreshed before it would time out. A persistence
//! template is sent with each connection it controls that is sent (IPVS
//! sends it on every controlled packet with these defaults; riding its
//! connection bounds the traffic and still refreshes it as often as the
//! connection).
//!
//! Sans-IO and allocation-free on the fast path: a record is a `Copy`
//! value pushed into a preallocated `ArrayQueue`; a full ring is a counted
//! drop (the next refresh, 50 packets later, sends the connection again).
//!
//! IPv4 connections are [`SyncRecord`]s, IPv6 ones (DR, NAT66, FULLNAT66,
//! TUN, and NAT64's and TUN's IPv4 servers behind an IPv6 VIP)
//! [`SyncRecord6`]s, whose IPv4 server and local addresses are kept
//! IPv4-mapped as the IPv6 table keeps them (`conn::entry::Addrs6`). A
//! SYN-proxied connection carries its sequence delta and the server's
//! window scale ([`SynSeq`]), which a backup needs to go on translating.

use crate::conn::TcpState;
use crate::service::FwdMethod;
use crate::snapshot::Snapshot;
use crate::wire::ipv4;
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// Records each worker's ring holds (92 bytes each, an IPv6 record's
/// size, 3 MB): the sync daemon drains the rings every 10 ms, and a worker
/// opening 200k connections a second records about 500k a second (two
/// each, plus the refreshes of established flows), 5,000 a tick; the rest
/// absorbs a control plane that was scheduled late (measured with
/// `ferrovs-perf --sync` on a loaded two-core machine, 8192 overflowed).
pub const RING_SIZE: usize = 32768;

/// A SYN-proxied connection's translation (`fwd/synproxy.rs`, the
/// [`crate::conn::entry::F_SYNPROXY`] docs): `delta` is `rs_isn - cookie`
/// (the connection's `ring_seq` once the server answered), `ws` the
/// server's window scale (or `synproxy::NO_RESCALE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynSeq {
    pub delta: u32,
    pub ws: u8,
}

/// One connection or template as the sync daemon carries it (IPv4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncRecord {
    pub proto: u8,
    /// IPVS's state number (`TcpState` as u8; 0 for UDP).
    pub state: u8,
    pub fwd: FwdMethod,
    /// A persistence template: `caddr` is the masked client, `cport` 0.
    pub template: bool,
    pub caddr: [u8; 4],
    pub cport: u16,
    pub vaddr: [u8; 4],
    pub vport: u16,
    pub daddr: [u8; 4],
    pub dport: u16,
    /// FULLNAT's local address and port (zero otherwise).
    pub laddr: [u8; 4],
    pub lport: u16,
    pub timeout_s: u32,
    /// A SYN-proxied connection whose server answered.
    pub synproxy: Option<SynSeq>,
}

/// One IPv6 connection or template. `daddr` and `laddr` are IPv4-mapped
/// (`::ffff:a.b.c.d`) for an IPv4 real server (NAT64, TUN to an IPv4
/// server) and an IPv4 local address (NAT64).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncRecord6 {
    pub proto: u8,
    /// IPVS's state number (`TcpState` as u8; 0 for UDP).
    pub state: u8,
    pub fwd: FwdMethod,
    /// A persistence template: `caddr` is the client's prefix, `cport` 0.
    pub template: bool,
    pub caddr: [u8; 16],
    pub cport: u16,
    pub vaddr: [u8; 16],
    pub vport: u16,
    pub daddr: [u8; 16],
    pub dport: u16,
    /// FULLNAT's local address and port (zero otherwise).
    pub laddr: [u8; 16],
    pub lport: u16,
    pub timeout_s: u32,
    pub synproxy: Option<SynSeq>,
}

/// What a ring holds: a record of either family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    V4(SyncRecord),
    V6(SyncRecord6),
}

impl Record {
    pub fn v4(&self) -> Option<&SyncRecord> {
        match self {
            Record::V4(r) => Some(r),
            Record::V6(_) => None,
        }
    }
    pub fn v6(&self) -> Option<&SyncRecord6> {
        match self {
            Record::V6(r) => Some(r),
            Record::V4(_) => None,
        }
    }
    pub fn is_template(&self) -> bool {
        match self {
            Record::V4(r) => r.template,
            Record::V6(r) => r.template,
        }
    }
}

impl From<SyncRecord> for Record {
    fn from(r: SyncRecord) -> Record {
        Record::V4(r)
    }
}

impl From<SyncRecord6> for Record {
    fn from(r: SyncRecord6) -> Record {
        Record::V6(r)
    }
}

/// `sync_threshold` and `sync_period` (`net.ipv4.vs.sync_threshold`, "3 50").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub threshold: u32,
    pub period: u32,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            threshold: 3,
            period: 50,
        }
    }
}

/// The TCP states IPVS synchronises.
#[inline]
pub fn tcp_state_synced(s: TcpState) -> bool {
    matches!(
        s,
        TcpState::Established
            | TcpState::FinWait
            | TcpState::Close
            | TcpState::CloseWait
            | TcpState::TimeWait
    )
}

impl Policy {
    /// Whether a connection in `state` (IPVS number), last sent in
    /// `last_sent`, is sent at its inbound packet number `pkts`.
    #[inline]
    pub fn conn_needed(&self, proto: u8, state: u8, last_sent: u8, pkts: u32) -> bool {
        if proto == ipv4::PROTO_TCP {
            let s = TcpState::from_u8(state & 0x0f);
            if !tcp_state_synced(s) {
                return false;
            }
            // A change of state is forced, except into ESTABLISHED, which
            // waits for the threshold packet as IPVS's does.
            if s as u8 != last_sent && s != TcpState::Established {
                return true;
            }
        }
        if self.period > 0 {
            pkts % self.period == self.threshold
        } else {
            pkts == self.threshold
        }
    }
}

/// Per connection slot: its inbound packets (IPVS's `in_pkts`) in the low
/// 28 bits and the state last sent (`old_state`) in the high 4. Kept beside
/// the table, so the 64-byte `Conn` keeps its cache line; allocated when a
/// worker first becomes a sync master.
#[derive(Debug, Default)]
pub struct Meta {
    v: Vec<u32>,
}

const PKTS_MASK: u32 = (1 << 28) - 1;

impl Meta {
    pub fn is_ready(&self) -> bool {
        !self.v.is_empty()
    }
    /// Sizes the counters for a table of `capacity` slots (zeroed).
    pub fn prepare(&mut self, capacity: usize) {
        if self.v.len() != capacity {
            self.v = vec![0; capacity];
        }
    }
    /// A new connection took slot `i` with its first packet (a
    /// connection installed from a sync message: with none).
    #[inline]
    pub fn started(&mut self, i: u32) {
        self.set(i, 1);
    }
    #[inline]
    pub fn installed(&mut self, i: u32) {
        self.set(i, 0);
    }
    #[inline]
    fn set(&mut self, i: u32, pkts: u32) {
        if let Some(m) = self.v.get_mut(i as usize) {
            *m = pkts;
        }
    }
    /// Counts an inbound packet of slot `i`; returns (packets, state last
    /// sent).
    #[inline]
    pub fn count(&mut self, i: u32) -> (u32, u8) {
        match self.v.get_mut(i as usize) {
            Some(m) => {
                let p = ((*m & PKTS_MASK) + 1) & PKTS_MASK;
                *m = (*m & !PKTS_MASK) | p;
                (p, (*m >> 28) as u8)
            }
            None => (0, 0),
        }
    }
    /// Fetches slot `i`'s counter ahead of its packet (the burst's
    /// prefetch pass): the counters are as many as the table's slots, too
    /// many to stay in cache.
    #[inline(always)]
    pub fn prefetch(&self, i: u32) {
        if let Some(m) = self.v.get(i as usize) {
            crate::port::prefetch(m);
        }
    }
    /// Slot `i` was sent in `state`.
    #[inline]
    pub fn sent(&mut self, i: u32, state: u8) {
        if let Some(m) = self.v.get_mut(i as usize) {
            *m = (*m & PKTS_MASK) | (((state & 0x0f) as u32) << 28);
        }
    }
}

/// What the workers and the sync daemon share: whether the workers record
/// (the master role), and one ring of records per worker.
pub struct SyncShared {
    master: CachePadded<AtomicBool>,
    /// Set once a worker installed a received connection: from then on a
    /// TCP segment that finds no connection on a worker of several looks
    /// round the others (the installing worker may not be the one the
    /// receive steering picks).
    installed: AtomicBool,
    rings: Vec<ArrayQueue<Record>>,
}

impl SyncShared {
    pub fn new(workers: usize) -> SyncShared {
        SyncShared {
            master: CachePadded::new(AtomicBool::new(false)),
            installed: AtomicBool::new(false),
            // Allocated lazily would mean a fast-path branch on every push;
            // RING_SIZE × 92 bytes per worker is small beside the tables.
            rings: (0..workers.max(1))
                .map(|_| ArrayQueue::new(RING_SIZE))
                .collect(),
        }
    }
    /// Starts or stops the workers' recording.
    pub fn set_master(&self, on: bool) {
        self.master.store(on, Relaxed);
    }
    pub fn is_master(&self) -> bool {
        self.master.load(Relaxed)
    }
    pub fn mark_installed(&self) {
        if !self.installed.load(Relaxed) {
            self.installed.store(true, Relaxed);
        }
    }
    #[inline]
    pub fn holds_installed(&self) -> bool {
        self.installed.load(Relaxed)
    }
    /// A worker's record; false when its ring is full.
    #[inline]
    pub fn push(&self, worker: usize, r: impl Into<Record>) -> bool {
        self.rings[worker].push(r.into()).is_ok()
    }
    /// Takes up to `max` records of worker `w`'s ring.
    pub fn drain(&self, w: usize, max: usize, mut f: impl FnMut(Record)) -> usize {
        let mut n = 0;
        while n < max {
            match self.rings.get(w).and_then(|r| r.pop()) {
                Some(r) => {
                    f(r);
                    n += 1;
                }
                None => break,
            }
        }
        n
    }
    pub fn workers(&self) -> usize {
        self.rings.len()
    }
}

/// The worker that must hold a received connection, by the rules flow
/// ownership gives (DESIGN.md): NAT's by the client hash both directions
/// carry, FULLNAT's by the local port's slice its replies are steered by.
/// DR and TUN see only the inbound direction, whose worker is the
/// receive queue's steering, which the control plane cannot compute: the
/// client hash stands in for it, and an inbound segment that misses on
/// the steered worker is passed round the others (`SyncShared::installed`).
/// IPv6 follows the same rules (`worker/v6.rs`: NAT66 by the IPv6 client
/// hash, FULLNAT66 and NAT64 by the local port).
pub fn owner(snap: &Snapshot, r: &Record) -> usize {
    match r {
        Record::V4(r) => match r.fwd {
            FwdMethod::FullNat if !r.template => snap.lport_owner(r.lport),
            _ => snap.nat_owner(r.caddr, r.cport),
        },
        Record::V6(r) => match r.fwd {
            FwdMethod::FullNat if !r.template => snap.lport_owner(r.lport),
            _ => snap.nat_owner6(&r.caddr, r.cport),
        },
    }
}

/// Why a received record was not installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// No virtual service for its (protocol, VIP, port) here.
    NoService,
    /// Its real server is not in the service here.
    NoDest,
    /// The connection table is full.
    TableFull,
    /// FULLNAT: its local address and port are held by another connection.
    LportInUse,
    /// FULLNAT: its local address is not one of the service's here (the
    /// directors of a pair need the same `local_address_group`).
    NoLaddr,
    /// The template table had no room.
    TemplateFull,
    /// IPv6: the table's address pool had no room for a new address.
    AddrPoolFull,
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: u8 = ipv4::PROTO_TCP;
    const UDP: u8 = ipv4::PROTO_UDP;

    fn est() -> u8 {
        TcpState::Established as u8
    }

    #[test]
    fn tcp_half_open_states_are_never_sent() {
        let p = Policy::default();
        for s in [
            TcpState::None,
            TcpState::SynSent,
            TcpState::SynRecv,
            TcpState::LastAck,
            TcpState::Listen,
            TcpState::SynAck,
        ] {
            for pkts in 0..200 {
                assert!(!p.conn_needed(TCP, s as u8, 0, pkts), "{s:?} {pkts}");
            }
        }
    }

    #[test]
    fn established_is_sent_at_the_threshold_then_every_period() {
        let p = Policy::default();
        let sent: Vec<u32> = (1..=160)
            .filter(|&n| p.conn_needed(TCP, est(), 0, n))
            .collect();
        assert_eq!(sent, vec![3, 53, 103, 153]);
        // Already sent as ESTABLISHED: the same packets.
        let sent: Vec<u32> = (1..=60)
            .filter(|&n| p.conn_needed(TCP, est(), est(), n))
            .collect();
        assert_eq!(sent, vec![3, 53]);
    }

    #[test]
    fn a_change_into_a_closing_state_is_sent_at_once() {
        let p = Policy::default();
        for s in [
            TcpState::FinWait,
            TcpState::Close,
            TcpState::CloseWait,
            TcpState::TimeWait,
        ] {
            assert!(p.conn_needed(TCP, s as u8, est(), 17));
            // Once sent in it, it waits for the period again.
            assert!(!p.conn_needed(TCP, s as u8, s as u8, 17));
            assert!(p.conn_needed(TCP, s as u8, s as u8, 53));
        }
    }

    #[test]
    fn the_synproxy_nibble_is_not_the_state() {
        let p = Policy::default();
        assert!(p.conn_needed(TCP, 0x70 | est(), 0, 3));
        assert!(!p.conn_needed(TCP, 0x70 | TcpState::SynRecv as u8, 0, 3));
    }

    #[test]
    fn udp_follows_the_packet_count() {
        let p = Policy::default();
        let sent: Vec<u32> = (1..=110).filter(|&n| p.conn_needed(UDP, 0, 0, n)).collect();
        assert_eq!(sent, vec![3, 53, 103]);
        let once = Policy {
            threshold: 3,
            period: 0,
        };
        let sent: Vec<u32> = (1..=110)
            .filter(|&n| once.conn_needed(UDP, 0, 0, n))
            .collect();
        assert_eq!(sent, vec![3]);
    }

    #[test]
    fn meta_counts_and_remembers_the_state_sent() {
        let mut m = Meta::default();
        assert_eq!(m.count(3), (0, 0), "unprepared: nothing counted");
        m.prepare(8);
        assert_eq!(m.count(3), (1, 0));
        assert_eq!(m.count(3), (2, 0));
        m.sent(3, est());
        assert_eq!(m.count(3), (3, est()));
        m.started(3);
        assert_eq!(m.count(3), (2, 0));
        m.installed(3);
        assert_eq!(m.count(3), (1, 0));
        assert_eq!(m.count(9), (0, 0), "out of range");
    }

    #[test]
    fn a_record_is_the_size_the_ring_budget_says() {
        // RING_SIZE's memory is counted with this (see its docs).
        assert_eq!(std::mem::size_of::<Record>(), 92);
    }

    #[test]
    fn rings_are_bounded_and_drained_in_order() {
        let s = SyncShared::new(2);
        let r = |n: u16| SyncRecord {
            proto: TCP,
            state: est(),
            fwd: FwdMethod::Dr,
            template: false,
            caddr: [198, 18, 0, 10],
            cport: n,
            vaddr: [198, 18, 0, 100],
            vport: 80,
            daddr: [198, 18, 1, 11],
            dport: 80,
            laddr: [0; 4],
            lport: 0,
            timeout_s: 900,
            synproxy: None,
        };
        let mut pushed = 0;
        for n in 0..(RING_SIZE as u16 + 5) {
            if s.push(1, r(n)) {
                pushed += 1;
            }
        }
        assert_eq!(pushed, RING_SIZE);
        let mut got = Vec::new();
        assert_eq!(s.drain(1, 3, |x| got.push(x.v4().unwrap().cport)), 3);
        assert_eq!(got, vec![0, 1, 2]);
        assert_eq!(s.drain(0, 10, |_| ()), 0);
    }
}
