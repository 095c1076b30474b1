//! The worker: a run-to-completion loop over bursts of packets.
//!
//! Each worker owns one queue on every port, its connection table, its
//! neighbour cache and its scheduler state. Per packet: parse, classify the
//! destination (active VIP, local address, our own address, or a reply of a
//! tracked NAT flow), find or create the connection, hand the packet to the
//! connection's forwarding mode (`fwd/`) and queue what it gives back for
//! transmission. Nothing on this path locks, allocates (once the queues are
//! warm) or makes a syscall.
//!
//! Flow ownership (DESIGN.md): NAT flows belong to the worker a keyed hash of
//! the client address and port names, FULLNAT replies to the worker whose
//! slice holds the local port; a packet that reaches another worker is handed
//! to its owner through a single-producer ring for that pair of workers.

use crate::conn::entry::{
    mapped, F_CONFIRMED, F_INACTIVE, F_OUT_INDEXED, F_REPLIED, F_SYNPROXY, F_TEMPLATE_FRESH,
    F_TEMPLATE_REF,
};
use crate::conn::template::Lookup;
use crate::conn::{Conn, ConnTable, Dir, TcpState, Tuple, Tuple6};
use crate::counters::{DropReason, WorkerCounters};
use crate::fastpath::{self, FastPath, FastPathCounters, FlowKey, FlowValue};
use crate::frag::{self, FragTable, Later};
use crate::fwd::alloc::{IpIds, PortAllocator};
use crate::fwd::synproxy::{self, CookieKey};
use crate::fwd::{self, L34};
use crate::neigh::{NeighCache, Resolve};
use crate::port::{Packet, Port, BURST};
use crate::sched::{SchedInput, SchedState};
use crate::service::{FwdMethod, ServiceId};
use crate::snapshot::{AddrKind, Snapshot};
use crate::stats::PerWorker;
use crate::wire::{arp, ethernet, icmp, ipv4, ipv6, l4, tcp, Mac};
use arc_swap::ArcSwap;
use crossbeam_queue::ArrayQueue;
use hashbrown::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

mod restore;
mod sync;
mod synproxy6;
mod v6;

pub use restore::{restore_owner, RestoreStats};
pub use v6::NeighEvent6;

/// Entries examined per poll by the expiry wheel and the template reaper.
pub const EXPIRE_BUDGET: usize = 256;
pub const REAP_BUDGET: usize = 256;
/// Ring slots one eviction may examine before it gives up (stale slots,
/// left by entries that completed their handshake, are skipped; each slot
/// is examined once, so this is rarely reached).
pub const EVICT_BUDGET: usize = 1024;
/// Slots of each worker-to-worker ring.
pub const RING_SIZE: usize = 1024;
/// Packets taken from each peer's ring per poll, at most.
pub const HANDOVER_DRAIN: usize = RING_SIZE / 2;
/// A handover ring carries (word, packet): the word is the port the packet
/// came in on, in its low bits (`snapshot::MAX_PORTS`), and above them the
/// hops of a fragment passed round the workers (`chain_fragment`).
const CHAIN_SHIFT: u16 = 8;
const PORT_MASK: u16 = (1 << CHAIN_SHIFT) - 1;
/// Neighbour entries per worker.
pub const NEIGH_CAPACITY: usize = 4096;
/// SYN proxy: client segments a worker holds while real servers complete
/// their handshakes, and how long one may wait.
///
/// Held rather than dropped: a client sends its request right after its
/// ACK, before the real server's SYN-ACK can come back, so dropping it
/// would cost nearly every connection a retransmission timeout (200 ms at
/// least). The hold is bounded (preallocated slots, each keeping the
/// buffer the segment arrived in, so nothing is copied or allocated), and
/// a segment that finds no slot, or waits longer than [`HOLD_MS`], is
/// dropped and counted (`synproxy_early_dropped`): the client retransmits.
pub const HOLD_SLOTS: usize = 256;
pub const HOLD_MS: u64 = 2000;

/// A neighbour learnt by one worker, passed on to the others (ARP replies
/// reach only one of them).
#[derive(Clone, Copy, Debug)]
pub struct NeighEvent {
    pub ip: Ipv4Addr,
    pub mac: Mac,
    pub port: u16,
}

/// A connection as listed by `ipvsadm -Lnc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnView {
    pub proto: u8,
    pub state: &'static str,
    pub expires_s: u32,
    pub client: (Ipv4Addr, u16),
    pub virt: (Ipv4Addr, u16),
    /// IPv6 for an IPv4 service's tunnel to an IPv6 server.
    pub dest: (std::net::IpAddr, u16),
    pub fwd: FwdMethod,
}

/// An IPv6 connection (or a NAT64 one, whose real server is IPv4) as
/// `ipvsadm -Lnc` lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnView6 {
    pub proto: u8,
    pub state: &'static str,
    pub expires_s: u32,
    pub client: (std::net::IpAddr, u16),
    pub virt: (std::net::IpAddr, u16),
    pub dest: (std::net::IpAddr, u16),
    pub fwd: FwdMethod,
}

/// Requests the control plane sends a worker; answered between bursts.
pub enum Request {
    /// Every connection of the worker's table.
    ListConns(std::sync::mpsc::SyncSender<Vec<ConnView>>),
    /// Every connection of the worker's IPv6 table.
    ListConns6(std::sync::mpsc::SyncSender<Vec<ConnView6>>),
    /// Send a frame the control plane built (gratuitous ARP when a VIP is
    /// taken over) out of a port.
    Transmit { port: u16, frame: Vec<u8> },
    /// Connections and templates a sync master sent (`sync.rs`), to
    /// install in this worker's table.
    SyncInstall(Vec<crate::sync::Record>),
}

/// What all workers share: the published snapshot, counters and rings.
pub struct Shared<T> {
    pub snapshot: ArcSwap<Snapshot>,
    pub counters: PerWorker<WorkerCounters>,
    /// Worker-to-worker packet rings, `[from * workers + to]`.
    handover: Vec<ArrayQueue<(u16, T)>>,
    neigh_events: Vec<ArrayQueue<NeighEvent>>,
    neigh6_events: Vec<ArrayQueue<NeighEvent6>>,
    /// The SYN proxy's cookie secret, one per process (every worker must
    /// check the cookies the others made: a client's SYN and ACK may
    /// reach different queues).
    pub synproxy_key: CookieKey,
    /// Connection sync: the master flag and the workers' record rings.
    pub sync: crate::sync::SyncShared,
    /// Control-plane requests, one queue per worker.
    requests: Vec<ArrayQueue<Request>>,
    /// Per worker: rung by peers that hand it packets while it sleeps
    /// (None where no eventfd could be made: the sleeper then wakes at its
    /// timeout).
    doorbells: Vec<Option<crate::port::Doorbell>>,
    /// Snapshots published so far: a plain load tells a worker whether to
    /// look at the `ArcSwap` at all.
    published: crossbeam_utils::CachePadded<std::sync::atomic::AtomicU64>,
    pub workers: usize,
}

impl<T> Shared<T> {
    /// Drops the packets still queued between workers, once they have
    /// stopped: their buffers go back to the port's pool now rather than
    /// when the last reference goes (a hand-over counts the free ones).
    pub fn drop_queued_packets(&self) {
        for q in &self.handover {
            while q.pop().is_some() {}
        }
    }

    pub fn new(snapshot: Snapshot) -> Arc<Shared<T>> {
        let w = snapshot.workers.max(1);
        Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            counters: PerWorker::new(w),
            handover: (0..w * w).map(|_| ArrayQueue::new(RING_SIZE)).collect(),
            neigh_events: (0..w * w).map(|_| ArrayQueue::new(256)).collect(),
            neigh6_events: (0..w * w).map(|_| ArrayQueue::new(256)).collect(),
            requests: (0..w).map(|_| ArrayQueue::new(64)).collect(),
            synproxy_key: CookieKey::random(),
            sync: crate::sync::SyncShared::new(w),
            doorbells: (0..w).map(|_| crate::port::Doorbell::new().ok()).collect(),
            published: Default::default(),
            workers: w,
        })
    }

    /// Packets waiting in the hand-over rings towards worker `to`.
    pub fn handover_backlog(&self, to: usize) -> usize {
        (0..self.workers)
            .map(|from| self.handover[from * self.workers + to].len())
            .sum()
    }

    /// Queues a request for worker `w`; false when its queue is full.
    pub fn request(&self, w: usize, r: Request) -> bool {
        self.try_request(w, r).is_ok()
    }

    /// Queues a request for worker `w`, or gives it back when its queue
    /// is full (or there is no worker `w`).
    fn try_request(&self, w: usize, r: Request) -> Result<(), Request> {
        match self.requests.get(w) {
            Some(q) => q.push(r),
            None => Err(r),
        }
    }

    /// Queues a request and wakes the worker if it sleeps (installing
    /// synced connections should not wait for its idle timeout).
    pub fn request_now(&self, w: usize, r: Request) -> bool {
        self.try_request_now(w, r).is_ok()
    }

    /// [`Self::request_now`] that gives the request back when the queue
    /// is full (or there is no worker `w`), for a caller that waits.
    pub fn try_request_now(&self, w: usize, r: Request) -> Result<(), Request> {
        self.try_request(w, r)?;
        if let Some(Some(d)) = self.doorbells.get(w) {
            d.ring();
        }
        Ok(())
    }

    /// Publishes a new snapshot; workers switch at their next burst.
    pub fn publish(&self, s: Snapshot) {
        self.snapshot.store(Arc::new(s));
        // After the store: a worker that sees the new count finds the new
        // snapshot.
        self.published
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }
}

/// The IPv6 table's default size for an IPv4 table of `capacity`.
pub fn default_capacity6(capacity: usize) -> usize {
    (capacity / 4).max(1024)
}

/// Slots of the next-hop cache.
const NH_CACHE: usize = 64;

/// A resolved next hop, valid for a second while the neighbour table's
/// generation is unchanged (so stale entries still get their refresh probes).
#[derive(Clone, Copy, Default)]
struct NhCached<A = u32> {
    ip: A,
    port: u16,
    mac: Mac,
    generation: u64,
    until_ms: u64,
}

/// A client segment held until its real server's handshake completes.
struct HeldSeg<K> {
    ci: u32,
    flow: HeldFlow,
    seq: u32,
    port: u16,
    at_ms: u64,
    pkt: K,
}

/// The client flow a held segment belongs to: with the entry index, it
/// tells a reused slot from the connection that held the segment, and the
/// IPv4 table's slots from the IPv6 table's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HeldFlow {
    V4(Tuple),
    V6(Tuple6),
}

/// Everything a worker mutates, apart from the snapshot it reads.
struct Core<P: Port> {
    id: usize,
    shared: Arc<Shared<P::Pkt>>,
    ports: Vec<P>,
    /// Exception interfaces (DPDK's TAPs), `kernel[i]` paired with data
    /// port `i`; empty when the kernel sees the data ports itself
    /// (AF_PACKET).
    kernel: Vec<P>,
    kernel_tx: Vec<Vec<P::Pkt>>,
    conns: ConnTable,
    /// IPv6 connections (and NAT64's), in a table of their own
    /// (`ConnTable::new_v6`).
    conns6: ConnTable,
    neigh: NeighCache<P::Pkt>,
    neigh6: NeighCache<P::Pkt, Ipv6Addr>,
    /// When IPv6 templates were last reaped.
    reap_ms6: u64,
    sched: HashMap<ServiceId, SchedState, ahash::RandomState>,
    lports: PortAllocator,
    tx: Vec<Vec<P::Pkt>>,
    ready: Vec<(u16, P::Pkt)>,
    ip_ids: IpIds,
    /// The tuple and hash the prefetch pass computed for the packet being
    /// handled.
    hash_hint: Option<(Tuple, u64)>,
    /// The destination's classification from the same pass.
    kind_hint: Option<([u8; 4], Option<AddrKind>)>,
    /// The IPv6-table tuple and hash of an IPv4 reply to a NAT64 local
    /// address, from the same pass.
    hash_hint6: Option<(Tuple6, u64)>,
    /// For an IPv6 frame with TCP or UDP right after the fixed header, the
    /// pass's tuple hash and destination class. No tuple to check them
    /// against: the fast path (`tcp_udp6`) takes them at once, and only for
    /// such a frame, whose tuple it reads from the very bytes the pass read.
    peek6: Option<(u64, Option<AddrKind>)>,
    /// When templates were last reaped.
    reap_ms: u64,
    nh_cache: [NhCached; NH_CACHE],
    /// The same for IPv6 next hops.
    nh_cache6: [NhCached<u128>; NH_CACHE],
    /// When neighbour retries last ran (they need no finer pace).
    neigh_tick_ms: u64,
    /// SYN proxy: client segments waiting for their real server's
    /// handshake, at most [`HOLD_SLOTS`], oldest first.
    held: Vec<HeldSeg<P::Pkt>>,
    /// Paces the ICMP errors the worker originates (time exceeded).
    icmp_limit: IcmpLimiter,
    /// IPv4 fragments: the ports of datagrams whose first fragment came,
    /// and the fragments that came before it (`frag.rs`).
    frags: FragTable<P::Pkt>,
    /// How many workers the packet being handled has been passed through
    /// looking for its connection (`chain_fragment`); 0 for a packet from a
    /// port or an ordinary handover.
    chain_hops: u16,
    /// The XDP fast path: queued flow-map changes (`fastpath`).
    fast: FastPath,
    /// Some port has a flow map (AF_XDP with the fast path on): checked
    /// before anything else of the fast path, so that packets of other
    /// ports pay one branch for it. Worked out again at the next poll
    /// after the ports were handed out mutably (`fast_known` false).
    fast_on: bool,
    fast_known: bool,
    /// Where offloaded flows go, per real server address: the egress port
    /// and next-hop MAC their entries hold. Checked when the neighbour
    /// table or the snapshot changes; entries of a changed one are taken
    /// back (their next packet through the worker offloads them afresh).
    fast_routes: HashMap<[u8; 4], (u16, Mac), ahash::RandomState>,
    /// (neighbour generation, snapshot generation) last checked.
    fast_seen: (u64, u64),
    /// When the program's per-server counters were last read, and the
    /// totals read then, per (port, DestId).
    fast_harvest_ms: u64,
    fast_harvested: HashMap<(u16, u32), (u64, u64), ahash::RandomState>,
    /// Connection sync: whether this worker records (read from
    /// `Shared::sync` once a poll), which records it sends, and its
    /// connections' inbound packet counts (`sync.rs`).
    sync_on: bool,
    sync_policy: crate::sync::Policy,
    sync_meta: crate::sync::Meta,
    /// The same counters for the IPv6 table's slots.
    sync_meta6: crate::sync::Meta,
}

/// Linux's `icmp_global_allow` (net/ipv4/icmp.c): at most
/// `net.ipv4.icmp_msgs_per_sec` (1000) ICMP errors a second with a burst
/// of `icmp_msgs_burst` (50), here per worker, so a flood of TTL-1
/// packets cannot turn the director into a reflector.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IcmpLimiter {
    tokens: u32,
    last_ms: u64,
}

impl IcmpLimiter {
    const BURST: u64 = 50;

    fn new() -> IcmpLimiter {
        IcmpLimiter {
            tokens: Self::BURST as u32,
            last_ms: 0,
        }
    }

    /// One token a millisecond, at most [`Self::BURST`] saved.
    #[inline]
    pub(crate) fn allow(&mut self, now_ms: u64) -> bool {
        let add = now_ms.saturating_sub(self.last_ms);
        if add > 0 {
            self.tokens = (self.tokens as u64 + add).min(Self::BURST) as u32;
            self.last_ms = now_ms;
        }
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            false
        }
    }
}

/// Martian IPv4 sources, as Linux's `ip_route_input_slow` refuses them
/// before IPVS sees the packet (`ipv4_is_zeronet`, `ipv4_is_loopback`
/// without `route_localnet`, `ipv4_is_multicast`, `ipv4_is_lbcast`, and
/// class E, which `fib_validate_source` finds no route back to): 0/8,
/// 127/8, 224/4, 240/4 and 255.255.255.255. Three compares.
#[inline(always)]
pub(crate) fn martian_src4(s: [u8; 4]) -> bool {
    s[0] == 0 || s[0] == 127 || s[0] >= 224
}

pub struct Worker<P: Port> {
    snap: Arc<Snapshot>,
    seen_published: u64,
    core: Core<P>,
    rx: Vec<P::Pkt>,
    /// Scratch for [`Worker::wait`].
    fds: Vec<std::os::fd::RawFd>,
}

/// The parsed headers of an IPv4 packet being handled.
#[derive(Clone, Copy)]
struct Ip {
    l2: ethernet::L2,
    info: ipv4::Ipv4Info,
}

/// What a connection that leaves the table holds goes back: its place in
/// its real server's counts, and its persistence template. With `abandon`
/// (a half-open connection evicted, or timed out under pressure), a
/// template it created itself dies with it unless another connection holds
/// it.
#[inline]
/// A persistence template was made (`TemplateTable::create`): the server
/// of the one it took the place of lets go of it, and a fresh one counts
/// for `dest` (ipvsadm's PersistConn). Whether it is fresh.
fn template_made(
    snap: &Snapshot,
    dest: &crate::service::Dest,
    made: &crate::conn::template::Created,
) -> bool {
    if let Some(e) = made.evicted.and_then(|d| snap.dest(d)) {
        e.dest.shared.persist_released();
    }
    if made.fresh {
        dest.shared
            .persistconns
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    made.fresh
}

fn release_conn(snap: &Snapshot, c: &Conn, now_s: u32, abandon: bool) {
    if let Some(e) = snap.dest(c.dest_id) {
        e.dest.unbind_conn(c.is_active());
    }
    if c.flags & F_TEMPLATE_REF != 0 {
        if abandon && c.flags & F_TEMPLATE_FRESH != 0 {
            snap.templates.release_abandoned(c.tmpl, now_s);
        } else {
            snap.templates.release(c.tmpl, now_s);
        }
    }
}

/// The IPv6 address of a TUN connection's server when it is one (an IPv4
/// service tunnelling to a server of the other family): only TUN
/// connections ask, and the server's entry is an index away.
#[inline]
fn tunnel6(snap: &Snapshot, c: &Conn) -> Option<[u8; 16]> {
    snap.dest(c.dest_id)
        .and_then(|e| e.dest.shared.tunnel6)
        .map(|a| a.octets())
}

/// IPVS's `conn_reuse_mode` 1 (`is_new_conn_expected`): a SYN that finds
/// its tuple's connection in TIME_WAIT or CLOSE, or in FIN_WAIT where the
/// director sees no replies (DR, TUN: IPVS's NOOUTPUT), starts a new
/// connection rather than continuing the old one.
#[inline]
fn reuse_is_new(c: &Conn) -> bool {
    match TcpState::from_u8(c.state) {
        TcpState::TimeWait | TcpState::Close => true,
        TcpState::FinWait => !c.fwd.sees_replies(),
        _ => false,
    }
}

impl<P: Port> Worker<P> {
    /// `ports` must be in the snapshot's port order.
    pub fn new(
        id: usize,
        shared: Arc<Shared<P::Pkt>>,
        ports: Vec<P>,
        conn_capacity: usize,
        now_ms: u64,
    ) -> Worker<P> {
        let conns = ConnTable::new(conn_capacity, now_ms);
        let conns6 = ConnTable::new_v6(default_capacity6(conn_capacity), now_ms);
        Worker::with_tables(id, shared, ports, conns, conns6, now_ms)
    }

    /// Worker `id`'s IPv4 and IPv6 connection tables (the capacities
    /// [`Worker::new`] gives them) in `store`'s files, so that they outlive
    /// the process (`crate::persist`); for [`Worker::with_tables`].
    pub fn stored_tables(
        store: &crate::persist::Store,
        id: usize,
        conn_capacity: usize,
        now_ms: u64,
    ) -> std::io::Result<(ConnTable, ConnTable)> {
        let store = store.for_worker(id);
        let conns = ConnTable::new_stored(conn_capacity, now_ms, &store)?;
        let conns6 = ConnTable::new_v6_stored(default_capacity6(conn_capacity), now_ms, &store)?;
        Ok((conns, conns6))
    }

    /// [`Worker::new`] with the given IPv4 and IPv6 tables.
    pub fn with_tables(
        id: usize,
        shared: Arc<Shared<P::Pkt>>,
        ports: Vec<P>,
        conns: ConnTable,
        conns6: ConnTable,
        now_ms: u64,
    ) -> Worker<P> {
        // The count first: a publish in between is then seen next poll.
        let seen_published = shared.published.load(std::sync::atomic::Ordering::Acquire);
        let snap = shared.snapshot.load_full();
        let workers = shared.workers;
        let nports = ports.len();
        let mut w = Worker {
            snap,
            seen_published,
            core: Core {
                id,
                shared,
                ports,
                kernel: Vec::new(),
                kernel_tx: Vec::new(),
                conns,
                conns6,
                neigh: NeighCache::new(NEIGH_CAPACITY),
                neigh6: NeighCache::new(NEIGH_CAPACITY),
                reap_ms6: 0,
                sched: HashMap::with_hasher(ahash::RandomState::new()),
                lports: PortAllocator::new(id, workers),
                tx: (0..nports).map(|_| Vec::with_capacity(BURST * 4)).collect(),
                ready: Vec::with_capacity(BURST),
                ip_ids: IpIds::new(id),
                neigh_tick_ms: 0,
                hash_hint: None,
                kind_hint: None,
                hash_hint6: None,
                peek6: None,
                reap_ms: 0,
                nh_cache: [NhCached::default(); NH_CACHE],
                nh_cache6: [NhCached::default(); NH_CACHE],
                held: Vec::with_capacity(HOLD_SLOTS),
                frags: FragTable::new(frag::CAPACITY),
                chain_hops: 0,
                icmp_limit: IcmpLimiter::new(),
                fast: FastPath::new(),
                fast_on: false,
                fast_known: false,
                fast_routes: HashMap::with_hasher(ahash::RandomState::new()),
                fast_seen: (0, 0),
                fast_harvest_ms: now_ms,
                fast_harvested: HashMap::with_hasher(ahash::RandomState::new()),
                sync_on: false,
                sync_policy: crate::sync::Policy::default(),
                sync_meta: crate::sync::Meta::default(),
                sync_meta6: crate::sync::Meta::default(),
            },
            rx: Vec::with_capacity(BURST),
            fds: Vec::new(),
        };
        w.core.sync_sched(&w.snap);
        w
    }

    pub fn id(&self) -> usize {
        self.core.id
    }

    /// Gives the worker an exception path: `kernel[i]` is the queue of the
    /// kernel interface (a TAP) that stands for data port `i`. Frames for the
    /// director itself (its own addresses, ARP for them, multicast such as
    /// VRRP, IPv6, other ethertypes) go to the kernel there instead of being
    /// dropped, and what the kernel sends on it leaves through the data port
    /// unchanged, as DPVS's KNI does. Needed when the dataplane owns the NIC.
    pub fn set_exception(&mut self, kernel: Vec<P>) {
        self.core.kernel_tx = (0..kernel.len())
            .map(|_| Vec::with_capacity(BURST * 2))
            .collect();
        self.core.kernel = kernel;
    }

    pub fn ports_mut(&mut self) -> &mut [P] {
        // A flow map may come or go: looked for again at the next poll.
        self.core.fast_known = false;
        &mut self.core.ports
    }

    /// The exception interfaces' queues, in data-port order.
    pub fn kernel_mut(&mut self) -> &mut [P] {
        &mut self.core.kernel
    }

    pub fn conns(&self) -> &ConnTable {
        &self.core.conns
    }

    /// The IPv6 connection table.
    pub fn conns6(&self) -> &ConnTable {
        &self.core.conns6
    }

    /// Gives the IPv6 connection table `capacity` entries (empty, before
    /// the worker runs; by default a quarter of the IPv4 table's, at least
    /// 1024, since an IPv6 entry takes twice the memory).
    pub fn set_conn_capacity6(&mut self, capacity: usize, now_ms: u64) {
        self.core.conns6 = ConnTable::new_v6(capacity, now_ms);
        // Sized again for the new table when the worker next records.
        self.core.sync_meta6 = crate::sync::Meta::default();
    }

    pub fn neigh6(&self) -> &NeighCache<P::Pkt, Ipv6Addr> {
        &self.core.neigh6
    }

    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snap
    }

    pub fn neigh(&self) -> &NeighCache<P::Pkt> {
        &self.core.neigh
    }

    /// The XDP fast path's counters (`fastpath`).
    pub fn fast_path(&self) -> FastPathCounters {
        self.core.fast.counters
    }

    /// Flow-map changes waiting for their flush.
    pub fn fast_path_pending(&self) -> usize {
        self.core.fast.pending()
    }

    /// Sleeps until a port has frames, a peer hands over packets, or
    /// `timeout_ms` passes. Without pollable ports (memory, DPDK) it only
    /// yields for a moment: those workers poll.
    pub fn wait(&mut self, timeout_ms: i32) {
        let core = &self.core;
        let mut fds = std::mem::take(&mut self.fds);
        fds.clear();
        for p in core.ports.iter().chain(core.kernel.iter()) {
            p.poll_fds(&mut fds);
        }
        let bell = core.shared.doorbells[core.id].as_ref();
        if fds.len() < core.ports.len() + core.kernel.len() || bell.is_none() {
            std::thread::sleep(std::time::Duration::from_micros(50));
            self.fds = fds;
            return;
        }
        let bell = bell.unwrap();
        fds.push(bell.raw_fd());
        bell.sleeping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // Peers that pushed before seeing the flag did not ring: look.
        let w = core.shared.workers;
        let pending = (0..w).any(|from| !core.shared.handover[from * w + core.id].is_empty())
            || !core.shared.requests[core.id].is_empty();
        if !pending {
            crate::port::wait_readable(&fds, timeout_ms);
        }
        bell.sleeping
            .store(false, std::sync::atomic::Ordering::SeqCst);
        bell.clear();
        self.fds = fds;
    }

    /// One iteration: pick up a new snapshot, take packets handed over by
    /// other workers, receive a burst on every port, forward, transmit, then
    /// bounded housekeeping. Returns the number of packets handled.
    pub fn poll(&mut self, now_ms: u64) -> usize {
        self.refresh_snapshot();
        let snap = &*self.snap;
        let core = &mut self.core;
        let mut n = 0;
        if !core.fast_known {
            core.fast_on = core.ports.iter_mut().any(|p| p.flow_map().is_some());
            core.fast_known = true;
        }
        core.sync_on = core.shared.sync.is_master();
        if core.sync_on && !core.sync_meta.is_ready() {
            // Once, when the worker first becomes a sync master: the
            // counters of the connections already there start at zero.
            core.sync_meta.prepare(core.conns.capacity());
        }
        if core.sync_on && !core.sync_meta6.is_ready() {
            core.sync_meta6.prepare(core.conns6.capacity());
        }

        // Packets other workers passed to us.
        let w = core.shared.workers;
        for from in 0..w {
            if from == core.id {
                continue;
            }
            // A peer may hand over up to a burst per port per poll, and
            // the owner may poll more slowly than its peers: drain several
            // bursts' worth, or the ring fills and drops while this core
            // has time to spare.
            for _ in 0..HANDOVER_DRAIN {
                let Some((word, pkt)) = core.shared.handover[from * w + core.id].pop() else {
                    break;
                };
                core.ctr().handover_in.inc();
                let (port, hops) = (word & PORT_MASK, word >> CHAIN_SHIFT);
                core.chain_hops = hops;
                core.handle(snap, pkt, port, now_ms, true);
                core.chain_hops = 0;
                n += 1;
            }
        }

        for port in 0..core.ports.len() {
            let got = core.ports[port].rx_burst(&mut self.rx);
            if got == 0 {
                continue;
            }
            let ctr = core.ctr();
            ctr.rx_packets.add(got as u64);
            // Three passes over the burst so that table lookups overlap
            // instead of stalling one after another: fetch every packet's
            // index bucket, then every candidate entry, then handle.
            let mut pre = [None; BURST];
            for (k, p) in self.rx.iter().enumerate().take(BURST) {
                pre[k] = peek(snap, p.data(), &core.conns, &core.conns6);
                if let Some(pk) = &pre[k] {
                    pk.prefetch(&core.conns, &core.conns6, false);
                }
            }
            for pk in pre.iter().take(got).flatten() {
                let c = pk.prefetch(&core.conns, &core.conns6, true);
                // A sync master counts inbound packets beside the table.
                if let (true, Some(i)) = (core.sync_on, c) {
                    core.sync_meta.prefetch(i);
                }
            }
            for (k, p) in self.rx.drain(..).enumerate() {
                core.ctr().rx_bytes.add(p.len() as u64);
                match pre.get(k).copied().flatten() {
                    Some(Peeked::V4(t, h, kind, h64)) => {
                        core.hash_hint = Some((t, h));
                        core.kind_hint = Some((t.daddr, kind));
                        core.hash_hint6 = h64.map(|h6| (mapped_tuple(&t), h6));
                    }
                    Some(Peeked::V6(h, kind)) => core.peek6 = Some((h, kind)),
                    None => {}
                }
                core.handle(snap, p, port as u16, now_ms, false);
                // A hint the packet did not use must not meet the next one.
                core.hash_hint = None;
                core.kind_hint = None;
                core.hash_hint6 = None;
                core.peek6 = None;
            }
            n += got;
        }
        // What the kernel sends leaves as it is: it built the frame for the
        // data port's MAC and resolved the next hop itself.
        for k in 0..core.kernel.len() {
            let got = core.kernel[k].rx_burst(&mut self.rx);
            if got == 0 || k >= core.tx.len() {
                self.rx.clear();
                continue;
            }
            core.ctr().kernel_in.add(got as u64);
            core.tx[k].append(&mut self.rx);
            if core.tx[k].len() >= BURST {
                core.flush_port(k);
            }
            n += got;
        }
        core.flush_tx();
        if n > 0 {
            core.ctr().busy_polls.inc();
        } else {
            core.ctr().idle_polls.inc();
        }
        core.housekeeping(snap, now_ms);
        // After housekeeping, which may have queued removals.
        core.flush_fast(now_ms, n == 0);
        n
    }

    fn refresh_snapshot(&mut self) {
        let seen = self
            .core
            .shared
            .published
            .load(std::sync::atomic::Ordering::Acquire);
        if seen == self.seen_published {
            return;
        }
        self.seen_published = seen;
        let cur = self.core.shared.snapshot.load();
        if cur.generation != self.snap.generation || !Arc::ptr_eq(&cur, &self.snap) {
            self.snap = arc_swap::Guard::into_inner(cur);
            self.core.sync_sched(&self.snap);
            // Room for the new configuration's IPv6 addresses besides the
            // old one's, which connections may still name (allocates only
            // when a snapshot names more than ever before).
            self.core
                .conns6
                .reserve_addrs6(2 * self.snap.addrs6_named() + 64);
        }
    }
}

/// What a forwarding mode that makes packets of its own (TUN) sends them
/// through.
impl<P: Port> fwd::Egress for Core<P> {
    type Pkt = P::Pkt;

    #[inline(always)]
    fn alloc(&mut self, port: u16) -> Option<P::Pkt> {
        self.ports[port as usize].alloc()
    }

    #[inline(always)]
    fn send(&mut self, snap: &Snapshot, pkt: P::Pkt, dst: [u8; 4], now: u64) {
        Core::send(self, snap, pkt, dst, now)
    }

    #[inline(always)]
    fn drop_pkt(&mut self, r: DropReason, pkt: P::Pkt) {
        Core::drop_pkt(self, r, pkt)
    }

    #[inline(always)]
    fn counters(&self) -> &WorkerCounters {
        self.ctr()
    }

    #[inline(always)]
    fn ip_id(&mut self) -> u16 {
        self.ip_ids.fresh()
    }
}

/// Whether a TCP segment without SYN of a flow not in the table makes a
/// connection (IPVS's `sloppy_tcp`): not a RST (which ends a flow, never
/// starts one), and not to FULLNAT servers, which would see the flow come
/// from a new local port (the one its first director chose is not known
/// here).
#[inline]
fn sloppy_pickup(snap: &Snapshot, dests: &[crate::service::Dest], flags: u8) -> bool {
    snap.sloppy_tcp
        && flags & l4::TCP_RST == 0
        && !dests.iter().any(|d| d.fwd == FwdMethod::FullNat)
}

/// What the prefetch pass learnt of a frame: its TCP/UDP tuple, the
/// tuple's hash in its family's table, and its destination's class; for an
/// IPv4 reply to a NAT64 local address, also its IPv4-mapped hash in the
/// IPv6 table, where NAT64's connections live.
#[derive(Clone, Copy)]
enum Peeked {
    V4(Tuple, u64, Option<AddrKind>, Option<u64>),
    V6(u64, Option<AddrKind>),
}

impl Peeked {
    /// Fetches the index bucket (`entry` false) or the candidate entry the
    /// bucket names (`entry` true) of every lookup the frame will make. A
    /// frame to a VIP is looked up by its client tuple, any other (a
    /// server's reply) by its reply tuple. At the entry stage, returns the
    /// candidate of an IPv4 frame to a VIP (a sync master counts its
    /// packets beside the table, `sync.rs`).
    #[inline(always)]
    fn prefetch(&self, v4: &ConnTable, v6: &ConnTable, entry: bool) -> Option<u32> {
        let go = |t: &ConnTable, h: u64, kind: Option<AddrKind>| {
            let reply = !matches!(kind, Some(AddrKind::Vip { .. }));
            if entry {
                t.prefetch_entry(h, reply)
            } else {
                t.prefetch_bucket(h, reply);
                None
            }
        };
        match *self {
            Peeked::V4(_, h, kind, h64) => {
                let c = go(v4, h, kind);
                if let Some(h6) = h64 {
                    go(v6, h6, kind);
                }
                c.filter(|_| matches!(kind, Some(AddrKind::Vip { .. })))
            }
            Peeked::V6(h, kind) => {
                go(v6, h, kind);
                None
            }
        }
    }
}

/// A NAT64 reply's tuple as the IPv6 table keys it (IPv4-mapped).
#[inline(always)]
fn mapped_tuple(t: &Tuple) -> Tuple6 {
    Tuple6 {
        proto: t.proto,
        saddr: mapped(t.saddr),
        sport: t.sport,
        daddr: mapped(t.daddr),
        dport: t.dport,
    }
}

/// A cheap look at a frame for the prefetch pass. It reads the headers
/// through the same views as the full parse, without the checks that need
/// the whole packet (total length, checksum, extension headers): those come
/// when the packet is handled, and an IPv6 packet with extension headers
/// simply gets no prefetch.
#[inline(always)]
fn peek(snap: &Snapshot, d: &[u8], v4: &ConnTable, v6: &ConnTable) -> Option<Peeked> {
    let l2 = ethernet::parse(d)?;
    match l2.ethertype {
        ethernet::ETHERTYPE_IPV4 => {
            let ip = ipv4::Ipv4Packet::new_checked(d.get(l2.l3_offset..)?).ok()?;
            let proto = ip.protocol();
            if proto != ipv4::PROTO_TCP && proto != ipv4::PROTO_UDP {
                return None;
            }
            let ports = l4::Ports::new_checked(ip.payload())?;
            let dst = ip.dst_addr();
            let t = Tuple {
                proto,
                saddr: ip.src_addr(),
                sport: ports.src_port(),
                daddr: dst,
                dport: ports.dst_port(),
            };
            let kind = snap.addr_kind(dst);
            let h64 = (matches!(kind, Some(AddrKind::Laddr { .. })) && snap.is_laddr64(dst))
                .then(|| v6.hash6(&mapped_tuple(&t)));
            Some(Peeked::V4(t, v4.hash(&t), kind, h64))
        }
        ethernet::ETHERTYPE_IPV6 if snap.has_ipv6() => {
            // The fixed header's fields through the same accessors as the
            // full parse (`ipv6::parse`), without its extension-header walk:
            // a packet with extension headers gets no prefetch.
            let p = d.get(l2.l3_offset..)?.get(..ipv6::HEADER_LEN)?;
            let proto = ipv6::next_header(p);
            if ipv6::version(p) != 6 || (proto != ipv6::NH_TCP && proto != ipv6::NH_UDP) {
                return None;
            }
            let p = &d[l2.l3_offset..];
            let ports = l4::Ports::new_checked(p.get(ipv6::HEADER_LEN..)?)?;
            let t = Tuple6 {
                proto,
                saddr: ipv6::src(p),
                sport: ports.src_port(),
                daddr: ipv6::dst(p),
                dport: ports.dst_port(),
            };
            Some(Peeked::V6(v6.hash6(&t), snap.addr_kind6(&t.daddr)))
        }
        _ => None,
    }
}

impl<P: Port> Core<P> {
    #[inline(always)]
    fn ctr(&self) -> &WorkerCounters {
        self.shared.counters.cell(self.id)
    }

    /// The flow hash, from the prefetch pass when it saw this very tuple.
    #[inline(always)]
    fn hash_of(&mut self, t: &Tuple) -> u64 {
        match self.hash_hint.take() {
            Some((ht, h)) if ht == *t => h,
            _ => self.conns.hash(t),
        }
    }

    #[inline(always)]
    fn drop_pkt(&self, r: DropReason, _p: P::Pkt) {
        self.ctr().drop(r);
    }

    /// Hands a frame for the director itself to the kernel through the
    /// exception interface of the port it came in on; without one (the
    /// kernel already saw it), counts it under `otherwise`.
    fn pass_to_kernel(&mut self, pkt: P::Pkt, in_port: u16, otherwise: DropReason) {
        let Some(q) = self.kernel_tx.get_mut(in_port as usize) else {
            return self.drop_pkt(otherwise, pkt);
        };
        q.push(pkt);
        let full = q.len() >= BURST;
        self.ctr().kernel_out.inc();
        if full {
            self.flush_kernel(in_port as usize);
        }
    }

    fn flush_kernel(&mut self, k: usize) {
        let q = &mut self.kernel_tx[k];
        if q.is_empty() {
            return;
        }
        self.kernel[k].tx_burst(q);
        let left = q.len() as u64;
        if left > 0 {
            self.shared.counters.cell(self.id).drops[DropReason::TxFull as usize].add(left);
            q.clear();
        }
    }

    /// Keeps scheduler state for services that remain, adds it for new ones.
    fn sync_sched(&mut self, snap: &Snapshot) {
        let id = self.id as u64;
        // IPv4 and IPv6 services share one id space (the control plane's).
        let ids = || {
            snap.services
                .iter()
                .map(|s| s.id())
                .chain(snap.services6.iter().map(|s| s.id()))
        };
        self.sched.retain(|k, _| ids().any(|i| i == *k));
        for i in ids() {
            self.sched
                .entry(i)
                .or_insert_with(|| SchedState::new(0x9e37_79b9 ^ (id << 32) ^ i as u64));
        }
    }

    fn handle(&mut self, snap: &Snapshot, pkt: P::Pkt, in_port: u16, now: u64, handed: bool) {
        let data = pkt.data();
        let Some(l2) = ethernet::parse(data) else {
            return self.drop_pkt(DropReason::Truncated, pkt);
        };
        // Linux's ip_rcv drops PACKET_OTHERHOST frames: a unicast frame for
        // another MAC reaches us when a switch floods or the port is
        // promiscuous, and is not ours to balance.
        let dst = ethernet::dst(data);
        if dst[0] & 1 == 0
            && snap
                .ports
                .get(in_port as usize)
                .is_some_and(|p| p.mac != dst)
        {
            return self.drop_pkt(DropReason::OtherHost, pkt);
        }
        // Ports are untagged: a tagged frame (VLAN id 0 is a priority tag,
        // untagged for 802.1Q) belongs to a VLAN interface the kernel may
        // have; the dataplane never balances it.
        if l2.vlan.is_some_and(|v| v != 0) {
            return self.pass_to_kernel(pkt, in_port, DropReason::VlanTagged);
        }
        match l2.ethertype {
            ethernet::ETHERTYPE_IPV4 => {}
            ethernet::ETHERTYPE_ARP => return self.handle_arp(snap, pkt, l2, in_port, now),
            ethernet::ETHERTYPE_IPV6 => return self.handle6(snap, pkt, l2, in_port, now, handed),
            _ => return self.pass_to_kernel(pkt, in_port, DropReason::OtherEthertype),
        }
        let info = match ipv4::parse(&data[l2.l3_offset..]) {
            Ok(i) => i,
            Err(e) => {
                let r = match e {
                    ipv4::Ipv4Error::Truncated => DropReason::Truncated,
                    ipv4::Ipv4Error::BadVersion => DropReason::BadIpVersion,
                    ipv4::Ipv4Error::BadIhl => DropReason::BadIhl,
                    ipv4::Ipv4Error::BadTotalLen => DropReason::BadTotalLen,
                    ipv4::Ipv4Error::BadChecksum => DropReason::BadIpChecksum,
                };
                return self.drop_pkt(r, pkt);
            }
        };
        let kind = match self.kind_hint.take() {
            Some((d, k)) if d == info.dst => k,
            _ => snap.addr_kind(info.dst),
        };
        match kind {
            Some(AddrKind::Own) => return self.pass_to_kernel(pkt, in_port, DropReason::ToKernel),
            Some(AddrKind::Vip { active: false }) | Some(AddrKind::Laddr { active: false }) => {
                return self.drop_pkt(DropReason::VipInactive, pkt)
            }
            // Multicast and broadcast (VRRP adverts among them) are the
            // kernel's; the dataplane never forwards them.
            None if info.dst[0] >= 224 || info.dst == [255; 4] => {
                return self.pass_to_kernel(pkt, in_port, DropReason::NotOurs)
            }
            _ => {}
        }
        // Martian sources never reach IPVS on Linux (`ip_route_input_slow`:
        // martian_source): checked on every packet as there, three
        // compares. A source that is an address of ours (which
        // `fib_validate_source` finds local) is refused where a connection
        // would be made (`inbound`): no connection can carry one, so the
        // table lookup stays off established flows.
        if martian_src4(info.src) {
            return self.drop_pkt(DropReason::MartianSource, pkt);
        }
        let ip = Ip { l2, info };
        if info.is_fragment() {
            return self.fragment(snap, pkt, ip, kind, in_port, now, handed);
        }
        match info.proto {
            ipv4::PROTO_TCP | ipv4::PROTO_UDP => {}
            ipv4::PROTO_ICMP => return self.handle_icmp(snap, pkt, ip, kind, in_port, now, handed),
            _ if kind.is_none() => return self.drop_pkt(DropReason::NotOurs, pkt),
            _ => return self.drop_pkt(DropReason::UnsupportedProto, pkt),
        }
        let l3 = l2.l3_offset;
        let o = L34 {
            l3,
            l4: l3 + info.header_len,
            proto: info.proto,
        };
        let end = l3 + info.total_len;
        let seg = &data[o.l4..end];
        if !l4::header_ok(info.proto, seg) {
            return self.drop_pkt(DropReason::BadL4Header, pkt);
        }
        let (sport, dport) = (l4::src_port(seg), l4::dst_port(seg));
        let flags = if info.proto == ipv4::PROTO_TCP {
            l4::tcp_flags(seg)
        } else {
            0
        };
        let t = Tuple {
            proto: info.proto,
            saddr: info.src,
            sport,
            daddr: info.dst,
            dport,
        };
        match kind {
            Some(AddrKind::Vip { .. }) => {
                self.inbound(snap, pkt, ip, o, t, flags, in_port, now, handed, false)
            }
            Some(AddrKind::Laddr { .. }) => self.reply(
                snap, pkt, ip, o, t, flags, true, in_port, now, handed, false,
            ),
            _ => self.reply(
                snap, pkt, ip, o, t, flags, false, in_port, now, handed, false,
            ),
        }
    }

    /// An IPv4 fragment, by shallow reassembly (`frag.rs`): the first
    /// (offset 0) is forwarded as any packet, on its 5-tuple, and its
    /// ports are remembered; a later one is forwarded with those ports
    /// through the same connection (addresses rewritten, the transport
    /// header being in the first), or held until the first comes. UDP and
    /// TCP (which rarely fragments, thanks to MSS and path MTU discovery,
    /// but IPVS takes what Linux reassembles): the first fragment carries
    /// the TCP flags, so it alone drives the connection's state and the SYN
    /// proxy's sequence translation, once per datagram as IPVS does on the
    /// whole datagram. ICMP and other protocols' fragments are dropped.
    ///
    /// With several workers, a datagram's fragments all reach one worker
    /// as long as the queue steering hashes fragments on the addresses
    /// alone (RSS and Linux's flow dissector do: a fragment has no ports
    /// to hash); that worker remembers the ports, so later fragments are
    /// handed to the connection's owner exactly as the first was, through
    /// the same ring, in order, and the owner, having seen the first,
    /// knows their ports too. The owner is known for NAT (a hash of the
    /// client) and for replies; an inbound fragment of a DR, TUN or FULLNAT
    /// flow is passed round the workers until one has its connection
    /// (`chain_fragment`), since steering put the flow's unfragmented
    /// packets wherever their four fields hashed.
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn fragment(
        &mut self,
        snap: &Snapshot,
        pkt: P::Pkt,
        ip: Ip,
        kind: Option<AddrKind>,
        in_port: u16,
        now: u64,
        handed: bool,
    ) {
        let info = ip.info;
        if info.proto != ipv4::PROTO_UDP && info.proto != ipv4::PROTO_TCP {
            return self.drop_pkt(DropReason::Fragment, pkt);
        }
        let l3 = ip.l2.l3_offset;
        let (l4_at, end) = (l3 + info.header_len, l3 + info.total_len);
        let key = frag::Key::v4(
            info.src,
            info.dst,
            info.proto,
            ipv4::Ipv4Packet::new_unchecked(&pkt.data()[l3..]).ident(),
        );
        let piece = frag::Piece::new(info.frag, info.total_len - info.header_len);
        let hl = info.header_len as u32;
        let first = piece.offset == 0;
        let Some((pkt, (sport, dport), flags)) =
            self.frag_admit(pkt, key, &piece, hl, l4_at, end, in_port, handed, now)
        else {
            return;
        };
        self.forward_fragment(
            snap,
            pkt,
            ip,
            kind,
            (sport, dport),
            flags,
            !first,
            in_port,
            now,
            handed,
        );
        if first {
            // Those that came before it, in the order they came, with its
            // ports (the table recorded them when it held them).
            while let Some((p, port, h)) = self.frags.release(key) {
                self.ctr().frag_released.inc();
                let data = p.data();
                let parsed = ethernet::parse(data)
                    .and_then(|l2| Some((l2, ipv4::parse(data.get(l2.l3_offset..)?).ok()?)));
                let Some((l2, info)) = parsed else {
                    self.drop_pkt(DropReason::Truncated, p);
                    continue;
                };
                let kind = snap.addr_kind(info.dst);
                let ip = Ip { l2, info };
                self.forward_fragment(snap, p, ip, kind, (sport, dport), 0, true, port, now, h);
            }
        }
    }

    /// A fragment of either family through the shallow reassembly table
    /// (`frag.rs`): a first one (offset 0), whose transport header at
    /// `l4_at..end` must be whole (RFC 1858 §3.1, RFC 3128; RFC 7112 for
    /// IPv6: otherwise its ports could come from a later, overlapping
    /// fragment), records its ports; a later one takes them, or is held
    /// until its first comes. Returns the fragment to forward with its
    /// datagram's ports and, for a TCP first fragment, its flags; None
    /// when the table held it or it was dropped (counted).
    #[allow(clippy::too_many_arguments)]
    fn frag_admit(
        &mut self,
        pkt: P::Pkt,
        key: frag::Key,
        piece: &frag::Piece,
        hl: u32,
        l4_at: usize,
        end: usize,
        in_port: u16,
        handed: bool,
        now: u64,
    ) -> Option<(P::Pkt, (u16, u16), u8)> {
        let shared = &self.shared;
        let id = self.id;
        let mut dropped = |r: DropReason, _p: P::Pkt| shared.counters.cell(id).drop(r);
        let first = piece.offset == 0;
        let mut flags = 0;
        let verdict = if first {
            let seg = &pkt.data()[l4_at..end];
            if !l4::header_ok(key.proto, seg) {
                self.drop_pkt(DropReason::FragTiny, pkt);
                return None;
            }
            let (sport, dport) = (l4::src_port(seg), l4::dst_port(seg));
            if key.proto == ipv4::PROTO_TCP {
                flags = l4::tcp_flags(seg);
            }
            match self
                .frags
                .first(key, piece, hl, (sport, dport), now, &mut dropped)
            {
                Ok(()) => Later::Forward { pkt, sport, dport },
                Err(r) => Later::Drop(r, pkt),
            }
        } else {
            self.frags
                .later(key, piece, hl, pkt, in_port, handed, now, &mut dropped)
        };
        let evicted = self.frags.take_evicted();
        if evicted > 0 {
            self.ctr().frag_evicted.add(evicted);
        }
        match verdict {
            Later::Forward { pkt, sport, dport } => {
                if first {
                    self.ctr().frag_datagrams.inc();
                }
                Some((pkt, (sport, dport), flags))
            }
            Later::Held => {
                self.ctr().frag_held.inc();
                None
            }
            Later::Drop(r, pkt) => {
                self.drop_pkt(r, pkt);
                None
            }
        }
    }

    /// Forwards a fragment the table let through, with its datagram's
    /// ports and, for the first of a TCP datagram, its flags; `later`: not
    /// the first, so without a transport header.
    #[allow(clippy::too_many_arguments)]
    fn forward_fragment(
        &mut self,
        snap: &Snapshot,
        pkt: P::Pkt,
        ip: Ip,
        kind: Option<AddrKind>,
        (sport, dport): (u16, u16),
        flags: u8,
        later: bool,
        in_port: u16,
        now: u64,
        handed: bool,
    ) {
        self.ctr().frag_forwarded.inc();
        let info = ip.info;
        let l3 = ip.l2.l3_offset;
        let o = L34 {
            l3,
            l4: l3 + info.header_len,
            proto: info.proto,
        };
        let t = Tuple {
            proto: info.proto,
            saddr: info.src,
            sport,
            daddr: info.dst,
            dport,
        };
        match kind {
            Some(AddrKind::Vip { .. }) => {
                self.inbound(snap, pkt, ip, o, t, flags, in_port, now, handed, later)
            }
            Some(AddrKind::Laddr { .. }) => self.reply(
                snap, pkt, ip, o, t, flags, true, in_port, now, handed, later,
            ),
            _ => self.reply(
                snap, pkt, ip, o, t, flags, false, in_port, now, handed, later,
            ),
        }
    }

    fn handover(&mut self, pkt: P::Pkt, in_port: u16, owner: usize) {
        self.handover_word(pkt, in_port, owner)
    }

    /// An inbound fragment of a flow this worker has no connection for,
    /// in a service whose flows belong to the worker the port's queue
    /// steering gave them (DR, TUN, FULLNAT: `Snapshot::inbound_owner` is
    /// None). Steering hashes a fragment on its addresses alone, having no
    /// ports, and the flow's other packets on all four fields, so the
    /// connection may live on another worker: the fragment is passed round
    /// the workers, each looking in its own table, and the last one takes
    /// it as any packet (makes the connection, or drops it counted). Only
    /// fragments that miss pay this; IPVS has one table and needs none of
    /// it, DPVS redirects to the owning core by a shared table instead.
    /// Returns the packet when this worker is the last (or the only).
    fn chain_fragment(
        &mut self,
        snap: &Snapshot,
        pkt: P::Pkt,
        in_port: u16,
        nat_owned: bool,
    ) -> Option<P::Pkt> {
        self.chain(snap, pkt, in_port, nat_owned, true)
    }

    /// [`Self::chain_fragment`]'s walk, for a fragment or (`fragment`
    /// false) a TCP segment that may belong to a synced connection.
    fn chain(
        &mut self,
        snap: &Snapshot,
        pkt: P::Pkt,
        in_port: u16,
        nat_owned: bool,
        fragment: bool,
    ) -> Option<P::Pkt> {
        // The hops live in the word's high byte.
        let w = snap.workers.min(self.shared.workers).min(256);
        if nat_owned || w < 2 || self.chain_hops as usize + 1 >= w {
            return Some(pkt);
        }
        if fragment {
            self.ctr().frag_chained.inc();
        } else {
            self.ctr().sync_chained.inc();
        }
        let word = in_port | (self.chain_hops + 1) << CHAIN_SHIFT;
        self.handover_word(pkt, word, (self.id + 1) % w);
        None
    }

    fn handover_word(&mut self, pkt: P::Pkt, word: u16, owner: usize) {
        let w = self.shared.workers;
        match self.shared.handover[self.id * w + owner].push((word, pkt)) {
            Ok(()) => {
                self.ctr().handover_out.inc();
                if let Some(d) = &self.shared.doorbells[owner] {
                    d.ring();
                }
            }
            Err((_, p)) => self.drop_pkt(DropReason::HandoverFull, p),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn inbound(
        &mut self,
        snap: &Snapshot,
        mut pkt: P::Pkt,
        ip: Ip,
        o: L34,
        t: Tuple,
        flags: u8,
        in_port: u16,
        now: u64,
        handed: bool,
        later: bool,
    ) {
        // Known flows first: only a new one needs its service.
        let h = self.hash_of(&t);
        let mut found = self.conns.lookup_in(&t, h);
        if let Some(ci) = found {
            if t.proto == ipv4::PROTO_TCP
                && flags & (l4::TCP_SYN | l4::TCP_ACK | l4::TCP_RST) == l4::TCP_SYN
                && reuse_is_new(self.conns.get(ci))
            {
                // A client that reuses the port of a finished connection
                // opens a new one: scheduled afresh, not sent to the old
                // server (which may have left the service).
                self.expire_now(snap, ci, now);
                found = None;
            }
        }
        let ci = match found {
            Some(ci) => {
                let c = self.conns.get(ci);
                if c.flags & F_SYNPROXY != 0 && c.proto == ipv4::PROTO_TCP {
                    if c.synproxy_waiting() {
                        // Held segments are replayed whole; a fragment of
                        // one would be taken for a repeat. The client
                        // retransmits after the server's one round trip.
                        if ip.info.is_fragment() {
                            return self.drop_pkt(DropReason::Fragment, pkt);
                        }
                        // A client RST passes (the server's SYN_RECV takes
                        // it by its sequence number); the rest waits.
                        if flags & l4::TCP_RST == 0 {
                            let seg = o.l4..o.l3 + ip.info.total_len;
                            let flow = HeldFlow::V4(t);
                            return self.synproxy_hold(snap, pkt, ci, flow, seg, in_port, now);
                        }
                    } else if !later {
                        // The header is in the first fragment only.
                        let end = o.l3 + ip.info.total_len;
                        synproxy::client_to_rs(&mut pkt.data_mut()[o.l4..end], c.ring_seq);
                    }
                }
                let fwd = self.conns.get(ci).fwd;
                let dir = if fwd.sees_replies() {
                    Dir::Input
                } else {
                    Dir::InputOnly
                };
                let offloaded = fastpath::offloaded_port(self.conns.get(ci));
                // A later fragment has no flags: its datagram's first
                // fragment moved the state.
                if !later {
                    self.update_state(snap, ci, dir, flags, now);
                    if self.sync_on {
                        self.sync_note(snap, ci);
                    }
                }
                if let Some(p) = offloaded {
                    // A FIN or RST (the program leaves them to us) moves
                    // the connection out of ESTABLISHED: take it back.
                    if !fastpath::eligible(self.conns.get(ci)) {
                        self.unoffload(ci, p, now);
                    }
                }
                ci
            }
            None => {
                // Our own address as the source (see `handle`): a forged
                // one would be scheduled, hold a connection and draw the
                // server's answers to ourselves.
                if snap.addr_kind(t.saddr).is_some() {
                    return self.drop_pkt(DropReason::MartianSource, pkt);
                }
                let Some(si) = snap.service(t.proto, t.daddr, t.dport) else {
                    return self.drop_pkt(DropReason::NoService, pkt);
                };
                let svc = &snap.services[si as usize];
                let owner = snap.inbound_owner(svc, t.saddr, t.sport);
                if let Some(owner) = owner.filter(|&o| !handed && o != self.id) {
                    return self.handover(pkt, in_port, owner);
                }
                if ip.info.is_fragment() {
                    match self.chain_fragment(snap, pkt, in_port, owner.is_some()) {
                        Some(p) => pkt = p,
                        None => return,
                    }
                } else if t.proto == ipv4::PROTO_TCP
                    && flags & l4::TCP_SYN == 0
                    && snap.workers > 1
                    && self.shared.sync.holds_installed()
                {
                    // A synced connection (`sync.rs`) was installed on the
                    // worker its owner rule names, which the receive
                    // steering of a DR, TUN or FULLNAT flow may not be: a
                    // segment that would be refused for want of one looks
                    // round the workers first, as fragments do.
                    match self.chain(snap, pkt, in_port, owner.is_some(), false) {
                        Some(p) => pkt = p,
                        None => return,
                    }
                }
                // A later fragment never makes a connection: its first
                // did not (it was dropped, counted).
                if later {
                    return self.drop_pkt(DropReason::FragOrphan, pkt);
                }
                if svc.synproxy && t.proto == ipv4::PROTO_TCP {
                    return self.synproxy_first(
                        snap,
                        si as usize,
                        pkt,
                        ip,
                        o,
                        t,
                        flags,
                        in_port,
                        now,
                    );
                }
                // IPVS schedules TCP only on a SYN without RST.
                if t.proto == ipv4::PROTO_TCP
                    && (flags & l4::TCP_SYN == 0 || flags & l4::TCP_RST != 0)
                {
                    let revived = if flags & l4::TCP_RST == 0 {
                        self.revive(snap, si as usize, &t, h, flags, now)
                    } else {
                        None
                    };
                    match revived {
                        Some(ci) => ci,
                        None if sloppy_pickup(snap, &svc.dests, flags) => {
                            match self.new_conn(snap, si as usize, &t, flags, now, None) {
                                Ok(ci) => self.picked_up(snap, false, ci, now),
                                Err(r) => return self.drop_pkt(r, pkt),
                            }
                        }
                        None => return self.drop_pkt(DropReason::NoConnection, pkt),
                    }
                } else {
                    match self.new_conn(snap, si as usize, &t, flags, now, None) {
                        Ok(ci) => ci,
                        Err(r) => return self.drop_pkt(r, pkt),
                    }
                }
            }
        };
        let c = *self.conns.get(ci);
        let len = (ip.info.total_len) as u64;
        self.count_traffic(snap, c.dest_id, len, true);
        // IPVS's transmitters all route through `__ip_vs_get_out_rt`, whose
        // `decrement_ttl` (ip_vs_xmit.c, Linux >= 4.3) lowers the TTL of
        // what goes to a real server, NAT, TUN (the inner header) and DR
        // alike, and answers TTL 1 with ICMP time exceeded from the VIP
        // (`icmp_send` takes the local destination as its source). The
        // connection stays, as IPVS's does.
        if ip.info.ttl <= 1 {
            // No ICMP error about a fragment other than the first
            // (RFC 1122 §3.2.2, Linux's icmp_send).
            if later {
                return self.drop_pkt(DropReason::TtlExceeded, pkt);
            }
            return self.time_exceeded(snap, pkt, &ip, Some(t.daddr), now);
        }
        ipv4::dec_ttl(&mut pkt.data_mut()[o.l3..]);
        match c.fwd {
            FwdMethod::Dr => {
                if self.fast_on
                    && !later
                    && c.state & fastpath::OFFLOADED == 0
                    && ip.l2.vlan.is_none()
                    && fastpath::eligible(&c)
                {
                    self.offload(snap, ci, &t, in_port, now);
                }
            }
            // A later fragment has no transport header: addresses only.
            FwdMethod::Nat if later => fwd::nat::inbound_fragment(pkt.data_mut(), o, c.daddr),
            FwdMethod::FullNat if later => {
                fwd::fullnat::inbound_fragment(pkt.data_mut(), o, c.laddr, c.daddr)
            }
            FwdMethod::Nat => fwd::nat::inbound(pkt.data_mut(), o, c.daddr, c.dport),
            FwdMethod::FullNat => {
                fwd::fullnat::inbound(pkt.data_mut(), o, c.laddr, c.lport, c.daddr, c.dport)
            }
            FwdMethod::Tun => {
                if let Some(rip6) = tunnel6(snap, &c) {
                    return self.tunnel_4in6(snap, pkt, &ip, true, rip6, now);
                }
                return fwd::tun::transmit(
                    self,
                    snap,
                    pkt,
                    ip.l2.l3_offset,
                    &ip.info,
                    c.daddr,
                    now,
                );
            }
        }
        self.send(snap, pkt, c.daddr, now);
    }

    /// Schedules a new connection (through its persistence template when
    /// the service has one) and adds it to the table. It starts in the state
    /// its first packet leads to, so the timer wheel files it once, for that
    /// state's timeout.
    /// With `synproxy` (the cookie the client acknowledged), the
    /// connection is a SYN-proxied one waiting for its server's SYN-ACK.
    fn new_conn(
        &mut self,
        snap: &Snapshot,
        si: usize,
        t: &Tuple,
        flags: u8,
        now: u64,
        synproxy: Option<u32>,
    ) -> Result<u32, DropReason> {
        if self.conns.is_full() {
            self.make_room(snap, now)?;
        }
        let svc = &snap.services[si];
        let now_s = (now / 1000) as u32;
        let mut held = None;
        let mut fresh_template = false;
        let mut di = None;
        let masked = svc
            .persistence
            .map(|p| (u32::from_be_bytes(t.saddr) & u32::from(p.netmask)).to_be_bytes());
        if let (Some(p), Some(m)) = (svc.persistence, masked) {
            if let Lookup::Hit(h) = snap.templates.lookup(svc.id(), m, now_s, p.timeout_s) {
                match svc.dests.iter().position(|d| d.shared.id == h.dest) {
                    Some(i) => {
                        held = Some(h);
                        di = Some(i);
                    }
                    None => {
                        // Its server left the service: schedule afresh.
                        if let Some(d) = snap.templates.invalidate(h.slot) {
                            if let Some(e) = snap.dest(d) {
                                e.dest.shared.persist_released();
                            }
                        }
                        snap.templates.release(h.slot, now_s);
                    }
                }
            }
        }
        let di = match di {
            Some(i) => i,
            None => {
                let seed = svc.id() as u64;
                let st = self
                    .sched
                    .entry(svc.id())
                    .or_insert_with(|| SchedState::new(seed));
                let input = SchedInput {
                    caddr: Ipv4Addr::from(t.saddr),
                    cport: t.sport,
                    daddr: Ipv4Addr::from(t.daddr),
                    dport: t.dport,
                };
                let Some(mut i) = svc.sched.pick(&svc.dests, st, &input, now_s) else {
                    return Err(DropReason::NoDest);
                };
                if let (Some(p), Some(m)) = (svc.persistence, masked) {
                    match snap.templates.create(
                        svc.id(),
                        m,
                        svc.dests[i].shared.id,
                        now_s,
                        p.timeout_s,
                    ) {
                        Some(c) => {
                            let h = c.held;
                            if template_made(snap, &svc.dests[i], &c) {
                                fresh_template = true;
                            } else if let Some(j) =
                                svc.dests.iter().position(|d| d.shared.id == h.dest)
                            {
                                // Another worker created it first: follow it.
                                i = j;
                            }
                            held = Some(h);
                        }
                        None => self.ctr().templates_full.inc(),
                    }
                }
                i
            }
        };
        let release = |held: Option<crate::conn::template::Held>| {
            if let Some(h) = held {
                snap.templates.release(h.slot, now_s);
            }
        };
        let dest = &svc.dests[di];
        let dport = if dest.port == 0 { t.dport } else { dest.port };
        let mut c = Conn {
            caddr: t.saddr,
            cport: t.sport,
            vaddr: t.daddr,
            vport: t.dport,
            daddr: dest.addr.octets(),
            dport,
            laddr: t.saddr,
            lport: t.sport,
            proto: t.proto,
            fwd: dest.fwd,
            flags: F_INACTIVE,
            dest_id: dest.shared.id,
            svc_id: svc.id(),
            ..Conn::EMPTY
        };
        if t.proto == ipv4::PROTO_TCP {
            let dir = if dest.fwd.sees_replies() {
                Dir::Input
            } else {
                Dir::InputOnly
            };
            let mut first = crate::conn::state::tcp_next(TcpState::None, dir, flags);
            if let Some(cookie) = synproxy {
                // The director's SYN is on its way to the server.
                first = TcpState::SynSent;
                c.flags |= F_SYNPROXY;
                c.ring_seq = cookie;
            }
            c.state = first as u8;
            c.timeout_s = self.conns.pressure().tcp_timeout(&snap.timeouts, first);
        } else {
            c.timeout_s = self.conns.pressure().udp_timeout(&snap.timeouts, false);
        }
        match dest.fwd {
            FwdMethod::Nat => c.flags |= F_OUT_INDEXED,
            FwdMethod::FullNat => {
                let conns = &self.conns;
                let (proto, ra, rp) = (t.proto, c.daddr, c.dport);
                let got = self.lports.alloc(snap.held_laddrs(si), |la, lp| {
                    conns.out_tuple_in_use(&Tuple {
                        proto,
                        saddr: ra,
                        sport: rp,
                        daddr: la,
                        dport: lp,
                    })
                });
                let Some((la, lp)) = got else {
                    release(held);
                    return Err(DropReason::LaddrExhausted);
                };
                c.laddr = la;
                c.lport = lp;
                c.flags |= F_OUT_INDEXED;
            }
            FwdMethod::Dr | FwdMethod::Tun => {}
        }
        if let Some(h) = held {
            c.flags |= F_TEMPLATE_REF;
            if fresh_template {
                c.flags |= F_TEMPLATE_FRESH;
            }
            c.tmpl = h.slot;
        }
        let ci = match self.conns.insert(c, now) {
            Ok(ci) => ci,
            Err(_) => {
                release(held);
                return Err(DropReason::ConnTableFull);
            }
        };
        dest.bind_conn(false);
        // The creating packet is the connection's first (IPVS's in_pkts).
        self.sync_meta.started(ci);
        self.ctr().conns_created.inc();
        dest.shared.stats.cell(self.id).conns.inc();
        svc.shared.stats.cell(self.id).conns.inc();
        Ok(ci)
    }

    /// A client segment without SYN and without a connection: if its
    /// half-open entry was evicted (a flood filled the table) and left a
    /// ghost, the connection comes back, to the same real server and, for
    /// FULLNAT, the same local address and port (`conn::ghost`). Without a
    /// persistence template reference: the template may expire while it
    /// lives, as IPVS's may after a connection sync.
    #[cold]
    fn revive(
        &mut self,
        snap: &Snapshot,
        si: usize,
        t: &Tuple,
        h: u64,
        flags: u8,
        now: u64,
    ) -> Option<u32> {
        let g = self.conns.revive(h)?;
        let svc = &snap.services[si];
        let dest = svc.dests.iter().find(|d| d.shared.id == g.dest_id)?;
        let mut c = Conn {
            caddr: t.saddr,
            cport: t.sport,
            vaddr: t.daddr,
            vport: t.dport,
            daddr: dest.addr.octets(),
            dport: if dest.port == 0 { t.dport } else { dest.port },
            laddr: t.saddr,
            lport: t.sport,
            proto: t.proto,
            state: TcpState::SynRecv as u8,
            fwd: dest.fwd,
            flags: F_INACTIVE | (g.flags & F_REPLIED),
            dest_id: dest.shared.id,
            svc_id: svc.id(),
            timeout_s: self
                .conns
                .pressure()
                .tcp_timeout(&snap.timeouts, TcpState::SynRecv),
            ..Conn::EMPTY
        };
        match dest.fwd {
            FwdMethod::Nat => c.flags |= F_OUT_INDEXED,
            FwdMethod::FullNat => {
                c.laddr = g.laddr;
                c.lport = g.lport;
                c.flags |= F_OUT_INDEXED;
                if self.conns.out_tuple_in_use(&c.out_tuple()) {
                    return None;
                }
            }
            FwdMethod::Dr | FwdMethod::Tun => {}
        }
        if self.conns.is_full() {
            self.make_room(snap, now).ok()?;
        }
        let ci = self.conns.insert(c, now).ok()?;
        dest.bind_conn(false);
        self.sync_meta.started(ci);
        self.ctr().conns_revived.inc();
        let dir = if dest.fwd.sees_replies() {
            Dir::Input
        } else {
            Dir::InputOnly
        };
        self.update_state(snap, ci, dir, flags, now);
        Some(ci)
    }

    /// A connection just made for a mid-flow segment (`sloppy_tcp`): it
    /// starts half-open (SYN_RECV) rather than ESTABLISHED, so that it is
    /// an eviction candidate until the client's next segment confirms it
    /// (the state machine moves SYN_RECV to ESTABLISHED on an ACK): a flood
    /// of spoofed ACKs then costs no established connection its place. A
    /// picked-up connection that expires costs nothing either: the next
    /// segment picks it up again, with `mh` to the same server.
    pub(super) fn picked_up(&mut self, snap: &Snapshot, v6: bool, ci: u32, now: u64) -> u32 {
        let table = if v6 {
            &mut self.conns6
        } else {
            &mut self.conns
        };
        let e = table.get_mut(ci);
        if TcpState::from_u8(e.state) == TcpState::Established {
            e.state = TcpState::SynRecv as u8;
            let secs = table
                .pressure()
                .tcp_timeout(&snap.timeouts, TcpState::SynRecv);
            table.set_timeout(ci, secs, now);
            table.reclassify(ci);
        }
        self.ctr().conns_picked_up.inc();
        ci
    }

    /// SYN proxy, a client segment without a connection: a SYN is answered
    /// with a cookie (nothing is created); an ACK whose cookie validates
    /// creates the connection and sends the SYN to the real server; any
    /// other segment, or a bad cookie, is dropped.
    #[allow(clippy::too_many_arguments)]
    fn synproxy_first(
        &mut self,
        snap: &Snapshot,
        si: usize,
        mut pkt: P::Pkt,
        ip: Ip,
        o: L34,
        t: Tuple,
        flags: u8,
        in_port: u16,
        now: u64,
    ) {
        let key = self.shared.synproxy_key;
        let now_s = now / 1000;
        let end = o.l3 + ip.info.total_len;
        match flags & (l4::TCP_SYN | l4::TCP_ACK | l4::TCP_RST) {
            l4::TCP_SYN => {
                // Never answer towards an address that cannot have sent it
                // (RFC 1812 §5.3.7 martians, our own): no loops, no
                // broadcast.
                let s = t.saddr;
                if martian_src4(s) || snap.addr_kind(s).is_some() {
                    return self.drop_pkt(DropReason::SynproxyMartian, pkt);
                }
                let need = o.l3 + synproxy::MAX_SEGMENT_LEN;
                if pkt.len() < need && !pkt.set_len(need) {
                    return self.drop_pkt(DropReason::NoBuffer, pkt);
                }
                let id = self.ip_ids.fresh();
                let (n, _) = synproxy::answer_syn(&mut pkt.data_mut()[o.l3..], &key, now_s, id);
                pkt.set_len(o.l3 + n);
                self.ctr().synproxy_cookies_sent.inc();
                self.send(snap, pkt, t.saddr, now);
            }
            l4::TCP_ACK => {
                let seg = &pkt.data()[o.l4..end];
                let isn = tcp::seq(seg).wrapping_sub(1);
                let cookie = tcp::ack(seg).wrapping_sub(1);
                let Some(opts) = synproxy::check_cookie(&key, &t, isn, cookie, now_s) else {
                    self.ctr().synproxy_cookies_failed.inc();
                    return self.drop_pkt(DropReason::SynproxyBadCookie, pkt);
                };
                let window = tcp::window(seg);
                let carries = end - o.l4 > tcp::header_len(seg) || flags & l4::TCP_FIN != 0;
                self.ctr().synproxy_cookies_validated.inc();
                let ci = match self.new_conn(snap, si, &t, l4::TCP_SYN, now, Some(cookie)) {
                    Ok(ci) => ci,
                    Err(r) => return self.drop_pkt(r, pkt),
                };
                let c = *self.conns.get(ci);
                self.count_traffic(snap, c.dest_id, ip.info.total_len as u64, true);
                self.synproxy_syn(snap, &c, isn, &opts, window, now);
                if carries {
                    let seg = o.l4..end;
                    self.synproxy_hold(snap, pkt, ci, HeldFlow::V4(t), seg, in_port, now);
                }
                // A bare ACK is consumed: the director acks the server's
                // SYN-ACK itself.
            }
            _ => self.drop_pkt(DropReason::NoConnection, pkt),
        }
    }

    /// The source the real server sees: the client (NAT) or the local
    /// address (FULLNAT).
    #[inline(always)]
    fn server_side_src(c: &Conn) -> ([u8; 4], u16) {
        if c.fwd == FwdMethod::FullNat {
            (c.laddr, c.lport)
        } else {
            (c.caddr, c.cport)
        }
    }

    /// A frame from `port`'s pool for a segment the director writes: an
    /// Ethernet header of `ethertype` (the MACs are filled in when the
    /// next hop is resolved) and room for `len` bytes of IP after it.
    pub(super) fn synproxy_frame(
        &mut self,
        port: usize,
        ethertype: u16,
        len: usize,
    ) -> Option<P::Pkt> {
        let Some(mut pkt) = self.ports.get_mut(port).and_then(|p| p.alloc()) else {
            self.ctr().drop(DropReason::NoBuffer);
            return None;
        };
        if !pkt.set_len(ethernet::HEADER_LEN + len) {
            self.drop_pkt(DropReason::NoBuffer, pkt);
            return None;
        }
        ethernet::write_header(pkt.data_mut(), &[0; 6], &[0; 6], None, ethertype);
        Some(pkt)
    }

    /// Sends the director's IPv4 SYN from `src` to the real server `rs`
    /// (IPv4 NAT and FULLNAT, and NAT64's IPv4 side).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn synproxy_syn4(
        &mut self,
        snap: &Snapshot,
        src: ([u8; 4], u16),
        rs: ([u8; 4], u16),
        isn: u32,
        opts: &synproxy::CookieOptions,
        window: u16,
        now: u64,
    ) {
        let port = snap
            .routes
            .lookup(Ipv4Addr::from(rs.0))
            .map_or(0, |nh| nh.port as usize);
        let l3 = ethernet::HEADER_LEN;
        let eth = ethernet::ETHERTYPE_IPV4;
        let Some(mut pkt) = self.synproxy_frame(port, eth, synproxy::MAX_SEGMENT_LEN) else {
            return;
        };
        let id = self.ip_ids.fresh();
        let n = synproxy::syn_to_rs(&mut pkt.data_mut()[l3..], src, rs, isn, opts, window, id);
        pkt.set_len(l3 + n);
        self.send(snap, pkt, rs.0, now);
    }

    /// Sends the director's SYN for connection `c` to its real server.
    fn synproxy_syn(
        &mut self,
        snap: &Snapshot,
        c: &Conn,
        isn: u32,
        opts: &synproxy::CookieOptions,
        window: u16,
        now: u64,
    ) {
        let src = Self::server_side_src(c);
        self.synproxy_syn4(snap, src, (c.daddr, c.dport), isn, opts, window, now);
    }

    /// The real server's SYN-ACK for a SYN-proxied connection: recorded
    /// (sequence delta, window scale), turned into the ACK that completes
    /// the server's handshake, and the client's held segments released.
    fn synproxy_server_synack(
        &mut self,
        snap: &Snapshot,
        mut pkt: P::Pkt,
        ci: u32,
        o: L34,
        end: usize,
        now: u64,
    ) {
        let (c, window) = self.synproxy_record(false, snap, ci, o.l4..end, &pkt, now);
        self.count_traffic(snap, c.dest_id, (end - o.l3) as u64, false);
        let id = self.ip_ids.fresh();
        let n = synproxy::ack_to_rs(
            &mut pkt.data_mut()[o.l3..],
            Self::server_side_src(&c),
            window,
            id,
        );
        pkt.set_len(o.l3 + n);
        self.ctr().synproxy_rs_established.inc();
        self.send(snap, pkt, c.daddr, now);
        self.synproxy_release(snap, ci, HeldFlow::V4(c.in_tuple()), now);
    }

    /// Records the real server's SYN-ACK (its TCP header at `th` in
    /// `pkt`) in connection `ci` of the IPv4 or the IPv6 table: the
    /// sequence delta and the server's window scale, ESTABLISHED, active.
    /// Returns the connection as it was and the window of the director's
    /// ACK: until the client's next segment says otherwise, 64 KiB in the
    /// client's scale.
    pub(super) fn synproxy_record(
        &mut self,
        v6: bool,
        snap: &Snapshot,
        ci: u32,
        th: std::ops::Range<usize>,
        pkt: &P::Pkt,
        now: u64,
    ) -> (Conn, u16) {
        let conns = if v6 {
            &mut self.conns6
        } else {
            &mut self.conns
        };
        let c = *conns.get(ci);
        let s = synproxy::server_syn_ack(&pkt.data()[th], c.ring_seq);
        let ws_client = synproxy::cookie_wscale(c.ring_seq).unwrap_or(0);
        let timeout = conns
            .pressure()
            .tcp_timeout(&snap.timeouts, TcpState::Established);
        let e = conns.get_mut(ci);
        e.ring_seq = s.delta;
        e.state = (s.ws_rs << 4) | TcpState::Established as u8;
        // The delta before the flag that makes it one: what a crash leaves
        // is read by the next process (`crate::persist`).
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::Release);
        e.flags |= F_REPLIED;
        if e.flags & F_INACTIVE != 0 {
            e.flags &= !F_INACTIVE;
            if let Some(d) = snap.dest(e.dest_id) {
                d.dest.shared.conn_became(true);
            }
        }
        conns.set_timeout(ci, timeout, now);
        (c, (65535u32 >> ws_client) as u16)
    }

    /// Releases the client segments held for connection `ci` (its server
    /// has answered): each goes through the worker again, now translated.
    pub(super) fn synproxy_release(&mut self, snap: &Snapshot, ci: u32, flow: HeldFlow, now: u64) {
        while let Some(i) = self.held.iter().position(|h| h.ci == ci && h.flow == flow) {
            let h = self.held.remove(i);
            self.ctr().synproxy_early_released.inc();
            self.handle(snap, h.pkt, h.port, now, true);
        }
    }

    /// A client segment of a SYN-proxied connection whose server has not
    /// answered yet: data and FIN are held (bounded, [`HOLD_SLOTS`]); a
    /// bare ACK, or a segment that finds no slot, is dropped. A segment
    /// already held (the client retransmits: the server is slow, or the
    /// director's SYN was lost) sends the SYN again, once its sequence
    /// number proves to be the client's ISN + 1 by the cookie.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn synproxy_hold(
        &mut self,
        snap: &Snapshot,
        pkt: P::Pkt,
        ci: u32,
        flow: HeldFlow,
        seg: std::ops::Range<usize>,
        port: u16,
        now: u64,
    ) {
        let seg = &pkt.data()[seg];
        let carries = seg.len() > tcp::header_len(seg) || l4::tcp_flags(seg) & l4::TCP_FIN != 0;
        if !carries {
            return self.drop_pkt(DropReason::SynproxyEarly, pkt);
        }
        let seq = tcp::seq(seg);
        if self
            .held
            .iter()
            .any(|h| h.ci == ci && h.flow == flow && h.seq == seq)
        {
            let (isn, window) = (seq.wrapping_sub(1), tcp::window(seg));
            let key = self.shared.synproxy_key;
            let now_s = now / 1000;
            match flow {
                HeldFlow::V4(t) => {
                    let c = *self.conns.get(ci);
                    if let Some(opts) = synproxy::check_cookie(&key, &t, isn, c.ring_seq, now_s) {
                        self.ctr().synproxy_syn_retransmitted.inc();
                        self.synproxy_syn(snap, &c, isn, &opts, window, now);
                    }
                }
                HeldFlow::V6(t) => {
                    let cookie = self.conns6.get(ci).ring_seq;
                    if let Some(opts) = synproxy::check_cookie(&key, &t, isn, cookie, now_s) {
                        self.ctr().synproxy_syn_retransmitted.inc();
                        self.synproxy_syn6(snap, ci, isn, &opts, window, now);
                    }
                }
            }
            return self.drop_pkt(DropReason::SynproxyEarly, pkt);
        }
        if self.held.len() >= HOLD_SLOTS {
            self.ctr().synproxy_early_dropped.inc();
            return self.drop_pkt(DropReason::SynproxyEarly, pkt);
        }
        self.ctr().synproxy_early_held.inc();
        self.held.push(HeldSeg {
            ci,
            flow,
            seq,
            port,
            at_ms: now,
            pkt,
        });
    }

    /// Drops the held segments of connection `ci` (its server refused).
    pub(super) fn synproxy_drop_held(&mut self, ci: u32, flow: HeldFlow) {
        while let Some(i) = self.held.iter().position(|h| h.ci == ci && h.flow == flow) {
            let h = self.held.remove(i);
            self.ctr().synproxy_early_dropped.inc();
            self.drop_pkt(DropReason::SynproxyEarly, h.pkt);
        }
    }

    /// Removes a connection at once, releasing its real server and
    /// template as expiry does.
    /// Offers an established DR connection to the XDP program of the port
    /// its packets come in on, if that port has one and the real server's
    /// next hop is resolved (else the next packet tries again).
    #[cold]
    fn offload(&mut self, snap: &Snapshot, ci: u32, t: &Tuple, in_port: u16, now: u64) {
        let p = in_port as usize;
        if p >= fastpath::MAX_PORTS || self.ports[p].flow_map().is_none() {
            return;
        }
        let daddr = self.conns.get(ci).daddr;
        let Some(nh) = snap.routes.lookup(Ipv4Addr::from(daddr)) else {
            return;
        };
        let out = nh.port as usize;
        if out >= self.ports.len() {
            return;
        }
        let Some(mac) = self.neigh.get(nh.ip) else {
            return;
        };
        let ifindex = self.ports[out].ifindex();
        if ifindex == 0 {
            return;
        }
        let v = FlowValue {
            dmac: mac,
            smac: self.ports[out].mac(),
            ifindex,
            dest_id: self.conns.get(ci).dest_id,
            flags: 0,
            last_seen: 0,
        };
        if self.fast.add(in_port, FlowKey::of(t), v, now) {
            fastpath::mark(self.conns.get_mut(ci), p);
            self.fast_routes.insert(daddr, (nh.port, mac));
            // The worker no longer counts this flow's packets: the backup
            // gets it now rather than at a threshold packet it won't see.
            if self.sync_on {
                self.sync_send(snap, ci);
            }
        }
    }

    /// Takes an offloaded connection back: its entry leaves the map with
    /// the next flush.
    fn unoffload(&mut self, ci: u32, port: usize, now: u64) {
        let c = self.conns.get_mut(ci);
        let k = FlowKey::of(&c.in_tuple());
        fastpath::unmark(c);
        self.fast.del(port as u16, k, now);
    }

    /// Writes the queued flow-map changes when due (`FastPath::due`).
    fn flush_fast(&mut self, now: u64, idle: bool) {
        if !self.fast.due(now, idle) {
            return;
        }
        let ports = &mut self.ports;
        self.fast.flush(ports.len(), |p, ops| {
            ports[p].flow_map().map_or(0, |m| m.apply(ops))
        });
        let (f, ctr) = (self.fast.counters, self.shared.counters.cell(self.id));
        ctr.fast_offloaded.set(f.offloaded);
        ctr.fast_removed.set(f.removed);
        ctr.fast_refused.set(f.refused);
        ctr.fast_kept.set(f.kept);
    }

    /// Keeps the next hops of offloaded flows resolved as the packets the
    /// worker no longer sends would: a stale entry is refreshed by an ARP
    /// probe (at most one a second, `NeighCache::resolve`), and one that
    /// goes unanswered is forgotten, which `fast_revalidate` then sees.
    #[cold]
    fn fast_refresh_neigh(&mut self, snap: &Snapshot, now: u64) {
        if self.fast_routes.is_empty() {
            return;
        }
        let hops: Vec<(Ipv4Addr, u16)> = self
            .fast_routes
            .keys()
            .filter_map(|d| snap.routes.lookup(Ipv4Addr::from(*d)))
            .map(|nh| (nh.ip, nh.port))
            .collect();
        for (ip, port) in hops {
            let mut none = None;
            if let Resolve::MacAndProbe(_) = self.neigh.resolve(ip, port, now, &mut none) {
                self.arp_probe(snap, ip, port);
            }
        }
    }

    /// The neighbour table or the snapshot (routes) changed: an offloaded
    /// flow whose real server is now reached through another port or MAC
    /// is taken back (a scan of the table, only when one did change).
    #[cold]
    fn fast_revalidate(&mut self, snap: &Snapshot, now: u64) {
        let seen = (self.neigh.generation, snap.generation);
        if self.fast_routes.is_empty() || seen == self.fast_seen {
            self.fast_seen = seen;
            return;
        }
        self.fast_seen = seen;
        let neigh = &self.neigh;
        let changed: Vec<[u8; 4]> = self
            .fast_routes
            .iter()
            .filter(|(d, &(port, mac))| {
                let now_nh = snap
                    .routes
                    .lookup(Ipv4Addr::from(**d))
                    .and_then(|nh| neigh.get(nh.ip).map(|m| (nh.port, m)));
                now_nh != Some((port, mac))
            })
            .map(|(d, _)| *d)
            .collect();
        if changed.is_empty() {
            return;
        }
        for d in &changed {
            self.fast_routes.remove(d);
        }
        let stale: Vec<(u32, usize)> = self
            .conns
            .iter()
            .filter(|(_, c)| changed.contains(&c.daddr))
            .filter_map(|(i, c)| fastpath::offloaded_port(c).map(|p| (i, p)))
            .collect();
        for (ci, p) in stale {
            self.unoffload(ci, p, now);
        }
    }

    /// Credits what the XDP program forwarded to the servers' and services'
    /// counters (inbound packets and bytes; DR sees nothing else). Worker 0
    /// does it for every port: the program's counters are per interface,
    /// not per worker.
    #[cold]
    fn fast_harvest(&mut self, snap: &Snapshot, now: u64) {
        if self.id != 0 || now < self.fast_harvest_ms + fastpath::HARVEST_MS {
            return;
        }
        self.fast_harvest_ms = now;
        for p in 0..self.ports.len() {
            let Some(map) = self.ports[p].flow_map() else {
                continue;
            };
            for e in snap.dests() {
                let id = e.dest.shared.id;
                let Some((pk, by)) = map.dest_totals(id) else {
                    continue;
                };
                let last = self.fast_harvested.entry((p as u16, id)).or_default();
                let (dp, db) = (pk.saturating_sub(last.0), by.saturating_sub(last.1));
                *last = (pk, by);
                if dp == 0 && db == 0 {
                    continue;
                }
                for c in [e.dest.shared.stats.cell(self.id), e.svc.stats.cell(self.id)] {
                    c.inpkts.add(dp);
                    c.inbytes.add(db);
                }
            }
        }
    }

    fn expire_now(&mut self, snap: &Snapshot, ci: u32, now: u64) {
        if let Some(p) = fastpath::offloaded_port(self.conns.get(ci)) {
            self.unoffload(ci, p, now);
        }
        let c = *self.conns.get(ci);
        self.conns.remove(ci);
        release_conn(snap, &c, (now / 1000) as u32, false);
        self.ctr().conns_expired.inc();
    }

    /// The table is full: evict its oldest half-open TCP or unconfirmed UDP
    /// entry, releasing its real server and template as expiry would.
    /// Established and closing connections are never evicted; with none of
    /// the others left, the new connection is refused (`conn_table_full`).
    #[cold]
    fn make_room(&mut self, snap: &Snapshot, now: u64) -> Result<(), DropReason> {
        let Some(old) = self.conns.evict_oldest(EVICT_BUDGET) else {
            return Err(DropReason::ConnTableFull);
        };
        // Only half-open and unconfirmed connections are evicted, and those
        // are never offloaded; should one be, its entry must go too.
        if let Some(p) = fastpath::offloaded_port(&old) {
            self.fast.del(p as u16, FlowKey::of(&old.in_tuple()), now);
        }
        // A template this half-open connection created dies with it (unless
        // another connection holds it too): a spoofed flood must not fill
        // the template table for a persistence timeout.
        release_conn(snap, &old, (now / 1000) as u32, true);
        let ctr = self.ctr();
        if old.proto == ipv4::PROTO_TCP {
            ctr.evicted_tcp_half_open.inc();
        } else {
            ctr.evicted_udp_unconfirmed.inc();
        }
        Ok(())
    }

    /// A packet of a connection to `dest_id`, for the server's and the
    /// service's counters (`inbound`: client to server).
    #[inline(always)]
    fn count_traffic(&self, snap: &Snapshot, dest_id: u32, len: u64, inbound: bool) {
        if let Some(e) = snap.dest(dest_id) {
            for t in [e.dest.shared.stats.cell(self.id), e.svc.stats.cell(self.id)] {
                if inbound {
                    t.inpkts.inc();
                    t.inbytes.add(len);
                } else {
                    t.outpkts.inc();
                    t.outbytes.add(len);
                }
            }
        }
    }

    /// IPVS state transition, ActiveConn/InActConn accounting and timeout;
    /// for UDP, confirmation. Under pressure, half-open states get the short
    /// timeout and NAT/FULLNAT follow the secure TCP rule (`conn::pressure`).
    #[inline]
    fn update_state(&mut self, snap: &Snapshot, ci: u32, dir: Dir, flags: u8, now: u64) {
        self.update_state_in(false, snap, ci, dir, flags, now)
    }

    /// `update_state` on the IPv6 table (`v6`) or the IPv4 one.
    #[inline]
    fn update_state_in(
        &mut self,
        v6: bool,
        snap: &Snapshot,
        ci: u32,
        dir: Dir,
        flags: u8,
        now: u64,
    ) {
        let conns = if v6 {
            &mut self.conns6
        } else {
            &mut self.conns
        };
        let pressure = *conns.pressure();
        let c = conns.get_mut(ci);
        if c.proto != ipv4::PROTO_TCP {
            // UDP: the entry was made by the client's first packet; a second
            // one, or a second reply, shows a flow that came back (a spoofed
            // source sends once; a real server answers a spoofed request once).
            if c.flags & F_CONFIRMED == 0 {
                let confirmed = dir != Dir::Output || c.flags & F_REPLIED != 0;
                if dir == Dir::Output {
                    c.flags |= F_REPLIED;
                }
                if confirmed {
                    c.flags |= F_CONFIRMED;
                    c.timeout_s = snap.timeouts.udp;
                    conns.reclassify(ci);
                }
            }
            conns.touch(ci, now);
            return;
        }
        if dir == Dir::Output {
            c.flags |= F_REPLIED;
        }
        let old = TcpState::from_u8(c.state);
        let new = if pressure.is_on() {
            let n = crate::conn::state::tcp_next_secure(old, dir, flags, c.flags & F_REPLIED != 0);
            if n == old && crate::conn::state::tcp_next(old, dir, flags) != old {
                self.shared.counters.cell(self.id).secure_tcp_held.inc();
            }
            n
        } else {
            crate::conn::state::tcp_next(old, dir, flags)
        };
        let c = conns.get_mut(ci);
        if new != old {
            // The high nibble is the SYN proxy's (`F_SYNPROXY`).
            c.state = (c.state & 0xf0) | new as u8;
            let active = new == TcpState::Established;
            if active != c.is_active() {
                c.flags ^= F_INACTIVE;
                if let Some(e) = snap.dest(c.dest_id) {
                    e.dest.shared.conn_became(active);
                }
            }
            if new.is_half_open() != old.is_half_open() {
                conns.reclassify(ci);
            }
        }
        conns.set_timeout(ci, pressure.tcp_timeout(&snap.timeouts, new), now);
    }

    /// A reply from a real server: NAT (to the client's address) or FULLNAT
    /// (to a local address).
    #[allow(clippy::too_many_arguments)]
    fn reply(
        &mut self,
        snap: &Snapshot,
        mut pkt: P::Pkt,
        ip: Ip,
        o: L34,
        t: Tuple,
        flags: u8,
        fullnat: bool,
        in_port: u16,
        now: u64,
        handed: bool,
        later: bool,
    ) {
        if !handed && snap.workers > 1 {
            let owner = snap.reply_owner(t.daddr, t.dport, fullnat);
            if owner != self.id {
                return self.handover(pkt, in_port, owner);
            }
        }
        let h = self.hash_of(&t);
        let Some(ci) = self.conns.lookup_out(&t, h) else {
            if later {
                return self.drop_pkt(DropReason::FragOrphan, pkt);
            }
            // NAT64's replies come to IPv4 local addresses too.
            if fullnat && !snap.services6.is_empty() {
                return self.reply64(snap, pkt, ip, o, t, flags, now);
            }
            // Anything else to a foreign address is not relayed.
            let r = if fullnat {
                DropReason::NoConnection
            } else {
                DropReason::NotOurs
            };
            return self.drop_pkt(r, pkt);
        };
        let c = *self.conns.get(ci);
        // The connection's mode decides, as it decides the rewrite below: a
        // NAT connection's reply can meet a local address when a client
        // spoofed one, and its TTL is lowered all the same.
        // A NAT reply is forwarded by the kernel (`ip_forward`), which
        // checks the TTL before the FORWARD hook where IPVS rewrites it: the
        // server is told, quoting its own packet, from the director's
        // address towards it.
        if c.fwd != FwdMethod::FullNat && fwd::nat::reply_ttl_expired(ip.info.ttl) {
            if later {
                return self.drop_pkt(DropReason::TtlExceeded, pkt);
            }
            return self.time_exceeded(snap, pkt, &ip, None, now);
        }
        if c.flags & F_SYNPROXY != 0 && c.proto == ipv4::PROTO_TCP {
            let end = o.l3 + ip.info.total_len;
            let th = &mut pkt.data_mut()[o.l4..end];
            if c.synproxy_waiting() && ip.info.is_fragment() {
                // The server's SYN-ACK or RST, which this waits for, is
                // never fragmented.
                return self.drop_pkt(DropReason::Fragment, pkt);
            } else if later {
                // The header is in the first fragment only.
            } else if c.synproxy_waiting() {
                if flags & l4::TCP_RST != 0 {
                    // Refused: the client gets the RST in its own
                    // sequence space, and its held segments go.
                    let d = synproxy::rst_delta(tcp::seq(th), c.ring_seq);
                    synproxy::rs_to_client(th, d, synproxy::NO_RESCALE);
                    self.conns.get_mut(ci).ring_seq = d;
                    self.ctr().synproxy_rs_refused.inc();
                    self.synproxy_drop_held(ci, HeldFlow::V4(c.in_tuple()));
                } else if flags & (l4::TCP_SYN | l4::TCP_ACK) == l4::TCP_SYN | l4::TCP_ACK {
                    return self.synproxy_server_synack(snap, pkt, ci, o, end, now);
                } else {
                    return self.drop_pkt(DropReason::NoConnection, pkt);
                }
            } else {
                synproxy::rs_to_client(th, c.ring_seq, c.synproxy_ws());
            }
        }
        if !later {
            self.update_state(snap, ci, Dir::Output, flags, now);
        }
        let len = ip.info.total_len as u64;
        self.count_traffic(snap, c.dest_id, len, false);
        let frame = pkt.data_mut();
        if later {
            // A later fragment: addresses only (see `fragment`).
            if c.fwd == FwdMethod::FullNat {
                fwd::fullnat::outbound_fragment(frame, o, c.vaddr, c.caddr);
            } else {
                fwd::nat::outbound_fragment(frame, o, c.vaddr);
            }
        } else if c.fwd == FwdMethod::FullNat {
            fwd::fullnat::outbound(frame, o, c.vaddr, c.vport, c.caddr, c.cport);
        } else {
            fwd::nat::outbound(frame, o, c.vaddr, c.vport);
        }
        self.send(snap, pkt, c.caddr, now);
    }

    /// A packet whose TTL would reach 0: dropped (counted) and, within
    /// the rate limit, answered with ICMP time exceeded (type 11 code 0)
    /// quoting it as Linux's `icmp_send` does, from `from` or else the
    /// director's address on the port towards the sender. `ip`'s packet is
    /// still as it arrived.
    #[cold]
    fn time_exceeded(
        &mut self,
        snap: &Snapshot,
        pkt: P::Pkt,
        ip: &Ip,
        from: Option<[u8; 4]>,
        now: u64,
    ) {
        let to = ip.info.src;
        if self.icmp_limit.allow(now) {
            if let Some(nh) = snap.routes.lookup(Ipv4Addr::from(to)) {
                let src = from.or_else(|| snap.port_addr(nh.port).map(|a| a.octets()));
                let l3 = ip.l2.l3_offset;
                let orig = pkt.data().get(l3..l3 + ip.info.total_len);
                if let (Some(src), Some(orig)) = (src, orig) {
                    let n = ethernet::HEADER_LEN + icmp::time_exceeded_len(orig.len());
                    let mut reply = fwd::Egress::alloc(self, nh.port);
                    let fits = reply.as_mut().is_some_and(|r| r.set_len(n));
                    match reply {
                        Some(mut reply) if fits => {
                            let o = reply.data_mut();
                            ethernet::write_header(
                                o,
                                &[0; 6],
                                &[0; 6],
                                None,
                                ethernet::ETHERTYPE_IPV4,
                            );
                            let m = icmp::build_time_exceeded(
                                &mut o[ethernet::HEADER_LEN..],
                                orig,
                                src,
                            );
                            if m > 0 {
                                self.send(snap, reply, to, now);
                            }
                        }
                        _ => self.ctr().drop(DropReason::NoBuffer),
                    }
                }
            }
        }
        self.drop_pkt(DropReason::TtlExceeded, pkt)
    }

    /// Routes to `dst`, resolves the next hop and queues for transmission.
    fn send(&mut self, snap: &Snapshot, pkt: P::Pkt, dst: [u8; 4], now: u64) {
        let Some(nh) = snap.routes.lookup(Ipv4Addr::from(dst)) else {
            return self.drop_pkt(DropReason::NoRoute, pkt);
        };
        let port = nh.port as usize;
        if port >= self.ports.len() {
            return self.drop_pkt(DropReason::NoRoute, pkt);
        }
        // Most packets go to a handful of next hops: a small direct-mapped
        // cache, checked against the neighbour table's generation, saves
        // the table lookup.
        let key = u32::from(nh.ip);
        let c = &self.nh_cache[key as usize % NH_CACHE];
        if c.ip == key
            && c.port == nh.port
            && c.generation == self.neigh.generation
            && now < c.until_ms
        {
            let mac = c.mac;
            return self.queue_tx(port, pkt, &mac);
        }
        let mut slot = Some(pkt);
        match self.neigh.resolve(nh.ip, nh.port, now, &mut slot) {
            Resolve::Mac(mac) => {
                self.nh_cache[key as usize % NH_CACHE] = NhCached {
                    ip: key,
                    port: nh.port,
                    mac,
                    generation: self.neigh.generation,
                    until_ms: now + 1000,
                };
                if let Some(p) = slot.take() {
                    self.queue_tx(port, p, &mac)
                }
            }
            Resolve::MacAndProbe(mac) => {
                if let Some(p) = slot.take() {
                    self.queue_tx(port, p, &mac);
                }
                self.arp_probe(snap, nh.ip, nh.port);
            }
            Resolve::QueuedProbe => self.arp_probe(snap, nh.ip, nh.port),
            Resolve::Queued => {}
            Resolve::Full => {
                if let Some(p) = slot.take() {
                    self.drop_pkt(DropReason::NeighFull, p)
                }
            }
        }
    }

    #[inline(always)]
    fn queue_tx(&mut self, port: usize, mut pkt: P::Pkt, dst: &Mac) {
        let src = self.ports[port].mac();
        fwd::dr::rewrite(pkt.data_mut(), &src, dst);
        self.tx[port].push(pkt);
        if self.tx[port].len() >= BURST {
            self.flush_port(port);
        }
    }

    fn flush_port(&mut self, port: usize) {
        let q = &mut self.tx[port];
        if q.is_empty() {
            return;
        }
        let before = q.len();
        let bytes: usize = q.iter().map(|p| p.len()).sum();
        self.ports[port].tx_burst(q);
        let left = q.len();
        let ctr = self.shared.counters.cell(self.id);
        ctr.tx_packets.add((before - left) as u64);
        ctr.tx_bytes
            .add(bytes as u64 - q.iter().map(|p| p.len() as u64).sum::<u64>());
        if left > 0 {
            for _ in 0..left {
                ctr.drop(DropReason::TxFull);
            }
            q.clear();
        }
    }

    fn flush_tx(&mut self) {
        for port in 0..self.tx.len() {
            self.flush_port(port);
        }
        for k in 0..self.kernel_tx.len() {
            self.flush_kernel(k);
        }
    }

    fn arp_probe(&mut self, snap: &Snapshot, target: Ipv4Addr, port: u16) {
        let p = port as usize;
        let Some(mut pkt) = self.ports[p].alloc() else {
            return self.ctr().drop(DropReason::NoBuffer);
        };
        let sender = snap.port_addr(port).unwrap_or(Ipv4Addr::UNSPECIFIED);
        let mac = self.ports[p].mac();
        if !pkt.set_len(arp::MIN_FRAME) {
            return self.ctr().drop(DropReason::NoBuffer);
        }
        arp::build_request(pkt.data_mut(), &mac, sender, target, None);
        self.ctr().arp_requests.inc();
        self.tx[p].push(pkt);
    }

    fn handle_arp(
        &mut self,
        snap: &Snapshot,
        mut pkt: P::Pkt,
        l2: ethernet::L2,
        in_port: u16,
        now: u64,
    ) {
        let Ok(a) = arp::Arp::parse(&pkt.data()[l2.l3_offset..]) else {
            return self.drop_pkt(DropReason::Truncated, pkt);
        };
        let target = snap.addr_kind(a.tpa.octets());
        // Learn senders on our subnets: create entries for those talking to
        // one of our addresses, only refresh the others (Linux `arp_process`).
        if !a.spa.is_unspecified() && snap.routes.is_connected(in_port, a.spa) {
            // A sender that is a martian or one of our own addresses is a
            // forger (Linux's arp_process drops both): it updates nothing.
            let bogus = martian_src4(a.spa.octets()) || snap.addr_kind(a.spa.octets()).is_some();
            let create = target.is_some();
            let mut ready = std::mem::take(&mut self.ready);
            if bogus
                || !self
                    .neigh
                    .learn(a.spa, a.sha, in_port, now, create, &mut ready)
            {
                self.ctr().drop(DropReason::NeighRefused);
            }
            if !bogus && self.neigh.get(a.spa) == Some(a.sha) {
                self.share_neigh(NeighEvent {
                    ip: a.spa,
                    mac: a.sha,
                    port: in_port,
                });
            }
            for (port, p) in ready.drain(..) {
                self.queue_tx(port as usize, p, &a.sha);
            }
            self.ready = ready;
        }
        match target {
            Some(AddrKind::Vip { active: true }) | Some(AddrKind::Laddr { active: true })
                if a.op == arp::OP_REQUEST && !a.is_gratuitous() =>
            {
                let mac = self.ports[in_port as usize].mac();
                if !pkt.set_len(arp::MIN_FRAME.max(l2.l3_offset + arp::LEN)) {
                    return self.drop_pkt(DropReason::NoBuffer, pkt);
                }
                let n = arp::build_reply(pkt.data_mut(), &a, &mac, l2.vlan);
                pkt.set_len(n);
                self.ctr().arp_replies.inc();
                self.tx[in_port as usize].push(pkt);
            }
            Some(AddrKind::Own) => self.pass_to_kernel(pkt, in_port, DropReason::ToKernel),
            _ if a.op == arp::OP_REPLY => {} // consumed by learning
            _ => self.drop_pkt(DropReason::ArpIgnored, pkt),
        }
    }

    fn share_neigh(&self, ev: NeighEvent) {
        let w = self.shared.workers;
        for to in 0..w {
            if to != self.id {
                // Best effort: a full ring only means that worker ARPs itself.
                let _ = self.shared.neigh_events[self.id * w + to].push(ev);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_icmp(
        &mut self,
        snap: &Snapshot,
        mut pkt: P::Pkt,
        ip: Ip,
        kind: Option<AddrKind>,
        in_port: u16,
        now: u64,
        handed: bool,
    ) {
        let l3 = ip.l2.l3_offset;
        let icmp_off = l3 + ip.info.header_len;
        let end = l3 + ip.info.total_len;
        if end - icmp_off < icmp::HEADER_LEN {
            return self.drop_pkt(DropReason::Truncated, pkt);
        }
        let ty = pkt.data()[icmp_off];
        if ty == icmp::TYPE_ECHO_REQUEST && matches!(kind, Some(AddrKind::Vip { .. })) {
            // A director answers pings to its VIPs, as the kernel does for
            // an LVS director that holds them.
            fwd::icmp::echo_reply(pkt.data_mut(), l3, icmp_off, end);
            return self.send(snap, pkt, ip.info.src, now);
        }
        let Some(q) = fwd::icmp::parse_error(pkt.data(), icmp_off, end) else {
            let r = if kind.is_none() {
                DropReason::NotOurs
            } else {
                DropReason::IcmpUnmatched
            };
            return self.drop_pkt(r, pkt);
        };
        match kind {
            Some(AddrKind::Vip { .. }) => {
                // From the client side, about a reply we sent: the quoted
                // packet went VIP → client.
                let t = q.flow();
                let Some(si) = snap.service(t.proto, t.daddr, t.dport) else {
                    return self.drop_pkt(DropReason::IcmpUnmatched, pkt);
                };
                let svc = &snap.services[si as usize];
                if let Some(owner) = snap
                    .inbound_owner(svc, t.saddr, t.sport)
                    .filter(|&o| !handed && o != self.id)
                {
                    return self.handover(pkt, in_port, owner);
                }
                let h = self.conns.hash(&t);
                let Some(ci) = self.conns.lookup_in(&t, h) else {
                    return self.drop_pkt(DropReason::IcmpUnmatched, pkt);
                };
                let c = *self.conns.get(ci);
                self.conns.touch(ci, now);
                // `ip_vs_icmp_xmit` routes through `__ip_vs_get_out_rt` too:
                // the error goes one hop lower, and one with TTL 1 dies
                // silently (`icmp_send` never answers an ICMP error).
                if ip.info.ttl <= 1 {
                    return self.drop_pkt(DropReason::TtlExceeded, pkt);
                }
                ipv4::dec_ttl(&mut pkt.data_mut()[l3..]);
                let Some(r) = fwd::icmp::from_client(&c) else {
                    self.ctr().icmp_translated.inc();
                    if let Some(rip6) = tunnel6(snap, &c) {
                        return self.tunnel_4in6(snap, pkt, &ip, false, rip6, now);
                    }
                    return fwd::tun::transmit(self, snap, pkt, l3, &ip.info, c.daddr, now);
                };
                fwd::icmp::translate(pkt.data_mut(), l3, end, &q, &r);
                self.ctr().icmp_translated.inc();
                self.send(snap, pkt, c.daddr, now);
            }
            _ => {
                // From a real server, about a packet we forwarded to it:
                // the quoted packet went (client | local address) → RIP.
                let fullnat = matches!(kind, Some(AddrKind::Laddr { .. }));
                let t = q.flow();
                if !handed && snap.workers > 1 {
                    let owner = snap.reply_owner(t.daddr, t.dport, fullnat);
                    if owner != self.id {
                        return self.handover(pkt, in_port, owner);
                    }
                }
                let h = self.conns.hash(&t);
                let Some(ci) = self.conns.lookup_out(&t, h) else {
                    if fullnat && !snap.services6.is_empty() {
                        return self.icmp4_to_v6(snap, pkt, &ip, &q, now);
                    }
                    let r = if fullnat {
                        DropReason::IcmpUnmatched
                    } else {
                        DropReason::NotOurs
                    };
                    return self.drop_pkt(r, pkt);
                };
                let c = *self.conns.get(ci);
                self.conns.touch(ci, now);
                // A NAT server's error is routed on by `ip_forward`, as its
                // replies are (FULLNAT's, like its replies, keep their TTL).
                if c.fwd != FwdMethod::FullNat {
                    if fwd::nat::reply_ttl_expired(ip.info.ttl) {
                        return self.drop_pkt(DropReason::TtlExceeded, pkt);
                    }
                    ipv4::dec_ttl(&mut pkt.data_mut()[l3..]);
                }
                let r = fwd::icmp::from_server(&c, fullnat);
                fwd::icmp::translate(pkt.data_mut(), l3, end, &q, &r);
                self.ctr().icmp_translated.inc();
                self.send(snap, pkt, c.caddr, now);
            }
        }
    }

    /// Bounded background work: connection expiry, template reaping,
    /// neighbour retries and neighbours learnt by other workers.
    fn housekeeping(&mut self, snap: &Snapshot, now: u64) {
        let now_s = (now / 1000) as u32;
        // Under pressure a half-open connection that times out takes the
        // template it created with it, as an evicted one does.
        let pressure = self.conns.under_pressure();
        // An offloaded connection's packets go through the XDP program, not
        // through us, so its timer knows only the packets we saw: ask the
        // program when it last forwarded one before letting it go (a
        // syscall, on the timer's slow path only).
        let ports = &mut self.ports;
        let fast = &mut self.fast;
        let mut kept = 0;
        let expired = self.conns.expire_or_keep(
            now,
            EXPIRE_BUDGET,
            |c| {
                let p = fastpath::offloaded_port(c)?;
                let idle = ports[p].flow_map()?.idle_ms(&FlowKey::of(&c.in_tuple()));
                let keep = fastpath::keep_ms(c.timeout_s, idle);
                kept += keep.is_some() as u64;
                keep
            },
            |c| {
                if let Some(p) = fastpath::offloaded_port(c) {
                    fast.del(p as u16, FlowKey::of(&c.in_tuple()), now);
                }
                release_conn(snap, c, now_s, pressure && c.is_unconfirmed());
            },
        );
        self.fast.counters.kept += kept;
        self.conns.trim_candidates(EXPIRE_BUDGET);
        // Held SYN-proxy segments whose server never answered.
        while self.held.first().is_some_and(|h| now >= h.at_ms + HOLD_MS) {
            let h = self.held.remove(0);
            self.ctr().synproxy_early_dropped.inc();
            self.drop_pkt(DropReason::SynproxyEarly, h.pkt);
        }
        self.conns.shorten_candidates(now, EXPIRE_BUDGET);
        let ctr = self.shared.counters.cell(self.id);
        ctr.conns_expired.add(expired as u64);
        ctr.conns_active
            .set((self.conns.len() + self.conns6.len()) as u64);
        ctr.conns_unconfirmed
            .set((self.conns.unconfirmed() + self.conns6.unconfirmed()) as u64);
        ctr.conn_capacity.set(self.conns.capacity() as u64);
        ctr.conn_pressure.set(self.conns.under_pressure() as u64);
        ctr.conn_pressure_entered
            .set(self.conns.pressure().entered());
        ctr.conns_untracked.set(self.conns.untracked());
        ctr.neigh_entries.set(self.neigh.len() as u64);
        ctr.neigh_queued.set(self.neigh.queued() as u64);
        ctr.laddr_ports_in_use
            .set((self.conns.fullnat_len() + self.conns6.fullnat_len()) as u64);
        // Templates die slowly (seconds): reaping a slice every few
        // milliseconds keeps up without a scan in every poll.
        if now >= self.reap_ms + 5 {
            self.reap_ms = now;
            snap.templates.reap(now_s, REAP_BUDGET, |d| {
                if let Some(e) = snap.dest(d) {
                    e.dest.shared.persist_released();
                }
            });
        }

        while let Some(r) = self.shared.requests[self.id].pop() {
            match r {
                Request::ListConns(reply) => {
                    let list = self
                        .conns
                        .iter()
                        .map(|(i, c)| ConnView {
                            proto: c.proto,
                            state: if c.proto == ipv4::PROTO_TCP {
                                TcpState::from_u8(c.state).name()
                            } else {
                                "UDP"
                            },
                            expires_s: self.conns.remaining_ms(i, now).div_ceil(1000) as u32,
                            client: (Ipv4Addr::from(c.caddr), c.cport),
                            virt: (Ipv4Addr::from(c.vaddr), c.vport),
                            dest: (
                                tunnel6(snap, c).map_or(Ipv4Addr::from(c.daddr).into(), |a| {
                                    std::net::Ipv6Addr::from(a).into()
                                }),
                                c.dport,
                            ),
                            fwd: c.fwd,
                        })
                        .collect();
                    // The requester may have given up waiting.
                    let _ = reply.try_send(list);
                }
                Request::ListConns6(reply) => {
                    let ip = |a: &[u8; 16]| match crate::conn::entry::unmapped(a) {
                        Some(v4) => std::net::IpAddr::from(v4),
                        None => std::net::IpAddr::from(*a),
                    };
                    let list = self
                        .conns6
                        .iter()
                        .map(|(i, c)| {
                            let a = self.conns6.get6(i);
                            ConnView6 {
                                proto: c.proto,
                                state: if c.proto == ipv4::PROTO_TCP {
                                    TcpState::from_u8(c.state).name()
                                } else {
                                    "UDP"
                                },
                                expires_s: self.conns6.remaining_ms(i, now).div_ceil(1000) as u32,
                                client: (ip(&a.caddr), c.cport),
                                virt: (ip(&a.vaddr), c.vport),
                                dest: (ip(&a.daddr), c.dport),
                                fwd: c.fwd,
                            }
                        })
                        .collect();
                    let _ = reply.try_send(list);
                }
                Request::Transmit { port, frame } => {
                    let p = port as usize;
                    let Some(mut pkt) = self.ports.get_mut(p).and_then(|x| x.alloc()) else {
                        self.ctr().drop(DropReason::NoBuffer);
                        continue;
                    };
                    if !pkt.copy_from(&frame) {
                        self.ctr().drop(DropReason::NoBuffer);
                        continue;
                    }
                    self.tx[p].push(pkt);
                }
                Request::SyncInstall(records) => {
                    for r in &records {
                        let done = match r {
                            crate::sync::Record::V4(r) => self.sync_install(snap, r, now),
                            crate::sync::Record::V6(r) => self.sync_install6(snap, r, now),
                        };
                        match done {
                            Ok(()) => self.ctr().sync_installed.inc(),
                            Err(_) => self.ctr().sync_refused.inc(),
                        }
                    }
                }
            }
        }

        let w = self.shared.workers;
        let mut ready = std::mem::take(&mut self.ready);
        for from in 0..w {
            if from == self.id {
                continue;
            }
            while let Some(ev) = self.shared.neigh_events[from * w + self.id].pop() {
                self.neigh
                    .learn(ev.ip, ev.mac, ev.port, now, true, &mut ready);
                for (port, p) in ready.drain(..) {
                    self.queue_tx(port as usize, p, &ev.mac);
                }
            }
        }
        self.ready = ready;

        let neigh_tick = now >= self.neigh_tick_ms + 100;
        if neigh_tick {
            self.fast_refresh_neigh(snap, now);
            self.fast_revalidate(snap, now);
            self.fast_harvest(snap, now);
        }
        self.housekeeping6(snap, now, neigh_tick);
        if !neigh_tick {
            self.flush_tx();
            return;
        }
        self.neigh_tick_ms = now;
        if !self.frags.is_empty() {
            let shared = &self.shared;
            let id = self.id;
            let g = self
                .frags
                .expire(now, &mut |r, _p| shared.counters.cell(id).drop(r));
            self.ctr().frag_expired.add(g.expired);
        }
        let mut probes: [(Ipv4Addr, u16); 16] = [(Ipv4Addr::UNSPECIFIED, 0); 16];
        let mut np = 0;
        let mut dropped = 0u64;
        self.neigh.tick(
            now,
            |ip, port| {
                if np < probes.len() {
                    probes[np] = (ip, port);
                    np += 1;
                }
            },
            |_p| dropped += 1,
        );
        for _ in 0..dropped {
            self.ctr().drop(DropReason::NeighUnresolved);
        }
        for &(ip, port) in &probes[..np] {
            self.arp_probe(snap, ip, port);
        }
        self.flush_tx();
    }
}

#[cfg(test)]
mod martian_tests {
    use super::v6::martian_src6;
    use super::{martian_src4, IcmpLimiter};
    use std::net::Ipv6Addr;

    #[test]
    fn ipv4_martian_classes() {
        for a in [
            [0, 0, 0, 0],
            [0, 255, 1, 2],
            [127, 0, 0, 1],
            [127, 1, 2, 3],
            [224, 0, 0, 18],
            [239, 1, 1, 1],
            [240, 0, 0, 1],
            [255, 255, 255, 255],
        ] {
            assert!(martian_src4(a), "{a:?}");
        }
        for a in [
            [1, 0, 0, 1],
            [10, 0, 0, 1],
            [126, 255, 255, 255],
            [223, 255, 255, 254],
        ] {
            assert!(!martian_src4(a), "{a:?}");
        }
    }

    #[test]
    fn ipv6_martian_classes() {
        let m = |s: &str| martian_src6(&s.parse::<Ipv6Addr>().unwrap().octets());
        for a in ["::", "::1", "ff02::1", "ff0e::5", "::ffff:198.18.0.2"] {
            assert!(m(a), "{a}");
        }
        for a in [
            "2001:db8::1",
            "fe80::1",
            "::2",
            "::198.18.0.2",
            "64:ff9b::c612:2",
        ] {
            assert!(!m(a), "{a}");
        }
    }

    #[test]
    fn icmp_limiter_allows_a_burst_then_one_a_millisecond() {
        let mut l = IcmpLimiter::new();
        let sent = (0..100).filter(|_| l.allow(5_000)).count();
        assert_eq!(sent, 50);
        assert!(!l.allow(5_000));
        assert!(l.allow(5_001));
        assert!(!l.allow(5_001));
        // A long pause refills to the burst, no more.
        let sent = (0..100).filter(|_| l.allow(60_000)).count();
        assert_eq!(sent, 50);
        // A clock that goes back never underflows.
        assert!(!l.allow(1));
    }
}
