//! IPVS schedulers, one file each, with the kernel's semantics
//! (net/netfilter/ipvs/ip_vs_*.c).
//!
//! Shared rules, as in IPVS:
//! - A server with weight 0 (quiesced) or with the overload flag (upper
//!   connection threshold reached) gets no new connection:
//!   [`Dest::is_available`].
//! - Load is [`Dest::overhead`] = 256 × ActiveConn + InActConn, read from the
//!   atomics every worker shares; sed and nq use ActiveConn + 1.
//! - "Least h/w" is decided as h1·w2 > h2·w1 on integers, so ties go to the
//!   server that comes first in the list.
//! - The server list order is IPVS's list order (`ipvsadm -L` order).
//!
//! Layout: [`Scheduler`] is immutable and lives in the service snapshot. It
//! holds everything precomputed from the server list (wrr's max weight and
//! gcd, the sh/dh bucket tables, the Maglev lookup table, lblc's id index).
//! [`SchedState`] is per worker and per service and holds what IPVS mutates
//! under the service's scheduler lock: the rr/wrr cursors, the lblc/lblcr
//! caches and twos's random generator. Because that state is per worker, rr
//! and wrr interleave per worker (the aggregate proportions are IPVS's) and
//! lblc/lblcr learn their destination → server mapping per worker (see
//! `cache.rs`). `pick` does not allocate; the lblc/lblcr caches are
//! allocated once, by [`SchedState::prepare`] or on the first pick.

use crate::service::Dest;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};

mod cache;
mod hash;

mod dh;
mod fo;
mod lblc;
mod lblcr;
mod lc;
mod mh;
mod nq;
mod ovf;
mod rr;
mod sed;
mod sh;
mod twos;
mod wlc;
mod wrr;

pub use mh::{MH_DEFAULT_TAB_INDEX, MH_PRIMES};

/// The IPVS scheduler names (`ipvsadm -s`, keepalived `lb_algo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchedKind {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Sed,
    Nq,
    Sh,
    Dh,
    Mh,
    Lblc,
    Lblcr,
    Fo,
    Ovf,
    Twos,
}

impl SchedKind {
    pub const ALL: [SchedKind; 14] = [
        SchedKind::Rr,
        SchedKind::Wrr,
        SchedKind::Lc,
        SchedKind::Wlc,
        SchedKind::Sed,
        SchedKind::Nq,
        SchedKind::Sh,
        SchedKind::Dh,
        SchedKind::Mh,
        SchedKind::Lblc,
        SchedKind::Lblcr,
        SchedKind::Fo,
        SchedKind::Ovf,
        SchedKind::Twos,
    ];

    /// The name ipvsadm and keepalived use.
    pub fn name(self) -> &'static str {
        match self {
            SchedKind::Rr => "rr",
            SchedKind::Wrr => "wrr",
            SchedKind::Lc => "lc",
            SchedKind::Wlc => "wlc",
            SchedKind::Sed => "sed",
            SchedKind::Nq => "nq",
            SchedKind::Sh => "sh",
            SchedKind::Dh => "dh",
            SchedKind::Mh => "mh",
            SchedKind::Lblc => "lblc",
            SchedKind::Lblcr => "lblcr",
            SchedKind::Fo => "fo",
            SchedKind::Ovf => "ovf",
            SchedKind::Twos => "twos",
        }
    }

    /// Parses an ipvsadm scheduler name. Exact match, like the kernel's
    /// scheduler lookup.
    pub fn from_name(name: &str) -> Option<SchedKind> {
        SchedKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether `SchedFlags` mean anything to this scheduler (ipvsadm `-b`).
    pub fn uses_flags(self) -> bool {
        matches!(self, SchedKind::Sh | SchedKind::Mh)
    }
}

/// `wlc`, the ipvsadm default.
impl Default for SchedKind {
    fn default() -> SchedKind {
        SchedKind::Wlc
    }
}

impl fmt::Display for SchedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// IPVS service scheduler flags `IP_VS_SVC_F_SCHED1..3`. For sh and mh,
/// flag1 is `*-fallback` and flag2 is `*-port`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SchedFlags {
    pub flag1: bool,
    pub flag2: bool,
    pub flag3: bool,
}

/// What a scheduler may look at in the packet that opens a connection.
#[derive(Clone, Copy, Debug)]
pub struct SchedInput {
    pub caddr: Ipv4Addr,
    pub cport: u16,
    pub daddr: Ipv4Addr,
    pub dport: u16,
}

impl SchedInput {
    /// The input for an IPv6 connection. The kernel's hashing schedulers
    /// (sh, dh, mh, lblc, lblcr) hash an IPv6 address as the XOR of its four
    /// 32-bit words and then exactly as an IPv4 address (`addr_fold` in
    /// `ip_vs_sh_hashkey` and its siblings), so an IPv6 flow lands on the
    /// server the kernel would give it; the other schedulers do not look at
    /// addresses.
    pub fn v6(caddr: &[u8; 16], cport: u16, daddr: &[u8; 16], dport: u16) -> SchedInput {
        SchedInput {
            caddr: fold_v6(caddr),
            cport,
            daddr: fold_v6(daddr),
            dport,
        }
    }
}

/// An IPv6 address folded to 32 bits as IPVS folds it for hashing.
#[inline]
pub fn fold_v6(a: &[u8; 16]) -> Ipv4Addr {
    let w = |i: usize| u32::from_be_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]);
    Ipv4Addr::from(w(0) ^ w(4) ^ w(8) ^ w(12))
}

/// Build-time knobs that IPVS takes from kernel config, sysctls or its own
/// bookkeeping. [`Scheduler::new`] uses the defaults.
#[derive(Clone, Copy, Debug)]
pub struct SchedOptions<'a> {
    /// mh: `CONFIG_IP_VS_MH_TAB_INDEX` (8..=17) picks the lookup table size
    /// from [`MH_PRIMES`]; the kernel default 12 gives 4093 entries.
    pub mh_tab_index: u8,
    /// mh: IPVS `last_weight`, the latest non-zero weight of each server (same
    /// order as the server list). mh sizes a quiesced (weight 0) server's
    /// share of the table by it, so quiescing a server does not move any other
    /// server's clients. `None`: use the current weights, as for servers that
    /// were added with their weight.
    pub last_weights: Option<&'a [u32]>,
    /// lblc/lblcr: sysctl `lblc_expiration` / `lblcr_expiration` in seconds
    /// (default 24 h): idle cache entries die after it, and an lblcr server
    /// set not modified for that long drops its most loaded member.
    pub expiration_s: u32,
}

impl Default for SchedOptions<'_> {
    fn default() -> Self {
        SchedOptions {
            mh_tab_index: MH_DEFAULT_TAB_INDEX,
            last_weights: None,
            expiration_s: cache::DEFAULT_EXPIRATION_S,
        }
    }
}

/// A service's scheduler with whatever it precomputes from the server list
/// (built by the control plane when it builds a snapshot). `pick` must be
/// given the same server list, in the same order, as `new`.
#[derive(Debug)]
pub struct Scheduler {
    kind: SchedKind,
    flags: SchedFlags,
    /// Distinguishes schedulers so a `SchedState` notices a new one (IPVS's
    /// `add_dest`/`upd_dest`/`del_dest` hooks).
    gen: u64,
    algo: Algo,
}

/// Per-scheduler precomputed data; dispatch is a match on this.
#[derive(Debug)]
enum Algo {
    Rr,
    Wrr(wrr::Params),
    Lc,
    Wlc,
    Sed,
    Nq,
    Sh(sh::Table),
    Dh(dh::Table),
    Mh(mh::Table),
    Lblc(cache::Locality),
    Lblcr(cache::Locality),
    Fo,
    Ovf,
    Twos,
}

static NEXT_GEN: AtomicU64 = AtomicU64::new(1);

/// Per worker, per service mutable scheduler state.
pub struct SchedState {
    /// `Scheduler::gen` this state was last used with (0: never).
    gen: u64,
    rr_next: usize,
    wrr: wrr::State,
    rng: twos::Rng,
    lblc: Option<Box<lblc::Cache>>,
    lblcr: Option<Box<lblcr::Cache>>,
}

impl SchedState {
    /// `seed` seeds twos's random generator; give each worker its own.
    pub fn new(seed: u64) -> SchedState {
        SchedState {
            gen: 0,
            rr_next: 0,
            wrr: wrr::State::default(),
            rng: twos::Rng::new(seed),
            lblc: None,
            lblcr: None,
        }
    }

    /// Allocates what `sched` keeps per worker (the lblc/lblcr caches, 256 KiB
    /// and 768 KiB) now, off the packet path, instead of on the first pick.
    pub fn prepare(&mut self, sched: &Scheduler) {
        match sched.algo {
            Algo::Lblc(_) => {
                self.lblc
                    .get_or_insert_with(|| Box::new(lblc::Cache::new()));
            }
            Algo::Lblcr(_) => {
                self.lblcr
                    .get_or_insert_with(|| Box::new(lblcr::Cache::new()));
            }
            _ => {}
        }
    }
}

impl Default for SchedState {
    fn default() -> SchedState {
        SchedState::new(0)
    }
}

impl fmt::Debug for SchedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchedState")
            .field("gen", &self.gen)
            .field("rr_next", &self.rr_next)
            .field("wrr", &self.wrr)
            .field("lblc_cache", &self.lblc.is_some())
            .field("lblcr_cache", &self.lblcr.is_some())
            .finish()
    }
}

impl Scheduler {
    pub fn new(kind: SchedKind, flags: SchedFlags, dests: &[Dest]) -> Scheduler {
        Scheduler::with_options(kind, flags, dests, &SchedOptions::default())
    }

    pub fn with_options(
        kind: SchedKind,
        flags: SchedFlags,
        dests: &[Dest],
        opts: &SchedOptions<'_>,
    ) -> Scheduler {
        let algo = match kind {
            SchedKind::Rr => Algo::Rr,
            SchedKind::Wrr => Algo::Wrr(wrr::Params::new(dests)),
            SchedKind::Lc => Algo::Lc,
            SchedKind::Wlc => Algo::Wlc,
            SchedKind::Sed => Algo::Sed,
            SchedKind::Nq => Algo::Nq,
            SchedKind::Sh => Algo::Sh(sh::Table::new(dests)),
            SchedKind::Dh => Algo::Dh(dh::Table::new(dests)),
            SchedKind::Mh => Algo::Mh(mh::Table::new(dests, opts.last_weights, opts.mh_tab_index)),
            SchedKind::Lblc => Algo::Lblc(cache::Locality::new(dests, opts.expiration_s)),
            SchedKind::Lblcr => Algo::Lblcr(cache::Locality::new(dests, opts.expiration_s)),
            SchedKind::Fo => Algo::Fo,
            SchedKind::Ovf => Algo::Ovf,
            SchedKind::Twos => Algo::Twos,
        };
        Scheduler {
            kind,
            flags,
            gen: NEXT_GEN.fetch_add(1, Ordering::Relaxed),
            algo,
        }
    }

    pub fn kind(&self) -> SchedKind {
        self.kind
    }

    pub fn flags(&self) -> SchedFlags {
        self.flags
    }

    /// Size of the scheduler's table: 256 buckets for sh/dh, the prime size
    /// of the Maglev lookup table for mh, the per-worker cache capacity for
    /// lblc/lblcr; `None` for the others.
    pub fn table_size(&self) -> Option<usize> {
        match &self.algo {
            Algo::Sh(_) | Algo::Dh(_) => Some(sh::TAB_SIZE),
            Algo::Mh(t) => Some(t.size()),
            Algo::Lblc(_) | Algo::Lblcr(_) => Some(cache::CAPACITY),
            _ => None,
        }
    }

    /// Index into `dests` of the server for a new connection, or None when
    /// no server is available. `now_s` is the worker clock in seconds.
    pub fn pick(
        &self,
        dests: &[Dest],
        st: &mut SchedState,
        input: &SchedInput,
        now_s: u32,
    ) -> Option<usize> {
        if st.gen != self.gen {
            self.adopt(st, dests.len());
        }
        match &self.algo {
            Algo::Rr => rr::pick(dests, &mut st.rr_next),
            Algo::Wrr(p) => wrr::pick(p, dests, &mut st.wrr),
            Algo::Lc => lc::pick(dests),
            Algo::Wlc => wlc::pick(dests),
            Algo::Sed => sed::pick(dests),
            Algo::Nq => nq::pick(dests),
            Algo::Sh(t) => t.pick(dests, input, self.flags),
            Algo::Dh(t) => t.pick(dests, input),
            Algo::Mh(t) => t.pick(dests, input, self.flags),
            Algo::Lblc(loc) => {
                let c = st.lblc.get_or_insert_with(|| Box::new(lblc::Cache::new()));
                lblc::pick(loc, dests, c, input.daddr, now_s)
            }
            Algo::Lblcr(loc) => {
                let c = st
                    .lblcr
                    .get_or_insert_with(|| Box::new(lblcr::Cache::new()));
                lblcr::pick(loc, dests, c, input.daddr, now_s)
            }
            Algo::Fo => fo::pick(dests),
            Algo::Ovf => ovf::pick(dests),
            Algo::Twos => twos::pick(dests, &mut st.rng),
        }
    }

    /// First pick with this scheduler: carry the worker's state over the way
    /// IPVS does when the server list changes.
    #[cold]
    fn adopt(&self, st: &mut SchedState, n: usize) {
        st.gen = self.gen;
        if st.rr_next > n {
            st.rr_next = 0;
        }
        if let Algo::Wrr(p) = &self.algo {
            wrr::adopt(p, &mut st.wrr);
        }
        // lblc/lblcr caches name servers by id and stay valid, as IPVS keeps
        // its tables across server changes.
    }
}

/// Whether load `h1` on weight `w1` exceeds `h2` on `w2`, i.e. h1/w1 > h2/w2
/// computed as h1·w2 > h2·w1 without division (IPVS does it in 64 bits with
/// an int overhead; ours is u64 overhead × u32 weight, so widen to 128).
#[inline(always)]
pub(crate) fn heavier(h1: u64, w1: u32, h2: u64, w2: u32) -> bool {
    h1 as u128 * w2 as u128 > h2 as u128 * w1 as u128
}

/// Greatest common divisor of the positive weights (0 if there are none).
pub(crate) fn gcd_weights(weights: impl Iterator<Item = u32>) -> u32 {
    fn gcd(mut a: u32, mut b: u32) -> u32 {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    }
    weights.filter(|&w| w > 0).fold(0, gcd)
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Real `Dest`s for the scheduler tests, with load set on the shared
    //! atomics the way connections would.

    use super::*;
    use crate::service::{DestShared, FwdMethod};
    use std::sync::atomic::Ordering::Relaxed;

    pub fn dest(id: u32, weight: u32) -> Dest {
        Dest {
            addr: Ipv4Addr::new(198, 18, 1, id as u8),
            port: 80,
            weight,
            fwd: FwdMethod::Dr,
            u_threshold: 0,
            l_threshold: 0,
            shared: DestShared::new(id, 1),
        }
    }

    pub fn dests(weights: &[u32]) -> Vec<Dest> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| dest(i as u32 + 1, w))
            .collect()
    }

    pub fn load(d: &Dest, active: u32, inactive: u32) {
        d.shared.activeconns.store(active, Relaxed);
        d.shared.inactconns.store(inactive, Relaxed);
    }

    /// Sets the IPVS overload flag the way the connection path does: an
    /// upper threshold of 1 and one connection bound.
    pub fn overload(d: &mut Dest) {
        d.u_threshold = 1;
        d.bind_conn(false);
        assert!(d.shared.is_overloaded());
    }

    pub fn input(caddr: u32, cport: u16, daddr: u32) -> SchedInput {
        SchedInput {
            caddr: Ipv4Addr::from(caddr),
            cport,
            daddr: Ipv4Addr::from(daddr),
            dport: 80,
        }
    }

    pub fn client(i: u32) -> SchedInput {
        // 198.18.0.0/15 plus a spread; the address only feeds hashes.
        input(
            0xC612_0000u32.wrapping_add(i.wrapping_mul(2_654_435_761)),
            1024 + (i % 50_000) as u16,
            0xC612_0064,
        )
    }

    pub fn counts(n: usize, picks: impl Iterator<Item = Option<usize>>) -> Vec<usize> {
        let mut c = vec![0; n];
        for p in picks {
            c[p.expect("a server")] += 1;
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    /// Counts allocations made by the current thread, so a test can assert
    /// that `pick` allocates nothing (other threads' tests don't interfere).
    struct CountingAlloc;
    thread_local! {
        static ALLOCS: Cell<u64> = const { Cell::new(0) };
    }
    unsafe impl GlobalAlloc for CountingAlloc {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
            System.alloc(layout)
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            System.dealloc(ptr, layout)
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
            System.alloc_zeroed(layout)
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
            System.realloc(ptr, layout, new_size)
        }
    }
    #[global_allocator]
    static GLOBAL: CountingAlloc = CountingAlloc;

    fn allocs() -> u64 {
        ALLOCS.with(|c| c.get())
    }

    const BOTH: SchedFlags = SchedFlags {
        flag1: true,
        flag2: true,
        flag3: false,
    };

    #[test]
    fn sched_names_round_trip() {
        for k in SchedKind::ALL {
            assert_eq!(SchedKind::from_name(k.name()), Some(k));
            assert_eq!(k.to_string(), k.name());
        }
        assert_eq!(SchedKind::from_name("wlc"), Some(SchedKind::Wlc));
        assert_eq!(SchedKind::from_name("lblcr"), Some(SchedKind::Lblcr));
        assert_eq!(SchedKind::from_name("WLC"), None);
        assert_eq!(SchedKind::from_name("maglev"), None);
        assert_eq!(SchedKind::default(), SchedKind::Wlc);
        assert!(
            SchedKind::Sh.uses_flags()
                && SchedKind::Mh.uses_flags()
                && !SchedKind::Wrr.uses_flags()
        );
    }

    #[test]
    fn sched_table_sizes() {
        let ds = dests(&[1, 1]);
        let size = |k| Scheduler::new(k, SchedFlags::default(), &ds).table_size();
        assert_eq!(size(SchedKind::Sh), Some(256));
        assert_eq!(size(SchedKind::Dh), Some(256));
        assert_eq!(size(SchedKind::Mh), Some(4093));
        assert_eq!(size(SchedKind::Lblc), Some(16384));
        assert_eq!(size(SchedKind::Wlc), None);
    }

    /// Every scheduler, whatever the input, only ever picks available
    /// servers, and finds none when there are none.
    #[test]
    fn sched_never_picks_quiesced_or_overloaded() {
        for k in SchedKind::ALL {
            for flags in [SchedFlags::default(), BOTH] {
                let mut ds = dests(&[2, 0, 3, 1, 0, 2]);
                overload(&mut ds[2]);
                overload(&mut ds[5]);
                for (i, d) in ds.iter().enumerate() {
                    load(d, i as u32, 3 * i as u32);
                }
                let s = Scheduler::new(k, flags, &ds);
                let mut st = SchedState::new(7);
                let mut picked = 0;
                for i in 0..3000 {
                    if let Some(p) = s.pick(&ds, &mut st, &client(i), i) {
                        assert!(ds[p].is_available(), "{k} picked unavailable server {p}");
                        picked += 1;
                    }
                }
                // Only the hashing schedulers without fallback may refuse.
                let hashing =
                    matches!(k, SchedKind::Sh | SchedKind::Dh | SchedKind::Mh) && !flags.flag1;
                assert!(
                    hashing || picked == 3000,
                    "{k} {flags:?} picked {picked}/3000"
                );
                assert!(picked > 0, "{k} picked nothing");

                // No available server at all.
                let mut none = dests(&[0, 4, 0]);
                overload(&mut none[1]);
                let s = Scheduler::new(k, flags, &none);
                for i in 0..50 {
                    assert_eq!(s.pick(&none, &mut st, &client(i), i), None, "{k}");
                }
                let s = Scheduler::new(k, flags, &[]);
                assert_eq!(s.pick(&[], &mut st, &client(1), 1), None, "{k}");
            }
        }
    }

    /// Once a worker's state is warm, `pick` allocates nothing.
    #[test]
    fn sched_pick_does_not_allocate() {
        let ds = dests(&[3, 1, 2, 5]);
        for k in SchedKind::ALL {
            let s = Scheduler::new(k, BOTH, &ds);
            let mut st = SchedState::new(1);
            st.prepare(&s);
            s.pick(&ds, &mut st, &client(0), 0);
            let before = allocs();
            for i in 0..20_000u32 {
                let _ = s.pick(&ds, &mut st, &client(i), i / 100);
            }
            assert_eq!(allocs() - before, 0, "{k} allocated in pick");
        }
    }

    #[test]
    fn sched_heavier_is_exact_for_large_values() {
        // 2^40 overhead × 2^31 weight overflows 64 bits; the comparison must
        // still be right.
        let h = (u32::MAX as u64) << 8;
        assert!(heavier(h, 1 << 31, h - 1, 1 << 31));
        assert!(!heavier(h - 1, 1 << 31, h, 1 << 31));
        assert!(!heavier(512, 2, 256, 1), "equal loads are not heavier");
        assert_eq!(gcd_weights([0, 12, 18, 0, 30].into_iter()), 6);
        assert_eq!(gcd_weights([0, 0].into_iter()), 0);
    }

    #[test]
    fn sched_ipv6_input_folds_as_ipvs() {
        let c: [u8; 16] = "2001:db8:1:2:3:4:5:6"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        let v: [u8; 16] = "2001:db8::64"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        // 0x20010db8 ^ 0x00010002 ^ 0x00030004 ^ 0x00050006
        assert_eq!(
            fold_v6(&c),
            Ipv4Addr::from(0x2001_0db8u32 ^ 0x0001_0002 ^ 0x0003_0004 ^ 0x0005_0006)
        );
        let i = SchedInput::v6(&c, 40000, &v, 80);
        assert_eq!(
            (i.caddr, i.cport, i.daddr, i.dport),
            (fold_v6(&c), 40000, fold_v6(&v), 80)
        );
    }
}
