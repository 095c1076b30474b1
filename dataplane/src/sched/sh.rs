//! sh — source hashing (ip_vs_sh.c), with `sh-fallback` (flag1) and
//! `sh-port` (flag2).
//!
//! A 256-bucket table is filled by walking the server list and giving each
//! server `weight` consecutive buckets (at least one: a quiesced server keeps
//! a bucket, which then finds no server), round and round until the table is
//! full. A client address (plus its source port with sh-port) hashes with
//! `hash_32` to a bucket. If that server is quiesced or overloaded, plain sh
//! returns no server (IPVS's "cache bypass" use); sh-fallback instead walks
//! further buckets, deterministically for the client, until it finds an
//! available server.

use super::hash::hash_32;
use super::SchedFlags;
use super::SchedInput;
use crate::service::Dest;
use std::fmt;

/// `CONFIG_IP_VS_SH_TAB_BITS` default.
const TAB_BITS: u32 = 8;
pub(crate) const TAB_SIZE: usize = 1 << TAB_BITS;
const TAB_MASK: u32 = TAB_SIZE as u32 - 1;
/// An empty bucket (no servers at all).
pub(crate) const NONE: u32 = u32::MAX;

pub(crate) struct Table {
    buckets: [u32; TAB_SIZE],
}

impl Table {
    pub(crate) fn new(dests: &[Dest]) -> Table {
        let mut buckets = [NONE; TAB_SIZE];
        if !dests.is_empty() {
            let (mut cur, mut count) = (0usize, 0u32);
            for b in buckets.iter_mut() {
                *b = cur as u32;
                count += 1;
                // Don't move on until the server has `weight` buckets.
                if count >= dests[cur].weight {
                    cur = (cur + 1) % dests.len();
                    count = 0;
                }
            }
        }
        Table { buckets }
    }

    pub(crate) fn pick(
        &self,
        dests: &[Dest],
        input: &SchedInput,
        flags: SchedFlags,
    ) -> Option<usize> {
        let port = if flags.flag2 { input.cport } else { 0 };
        let base = hash_32(u32::from(input.caddr).wrapping_add(port as u32), TAB_BITS);
        let at = |offset: u32| self.buckets[(offset.wrapping_add(base) & TAB_MASK) as usize];
        let home = at(0) as usize;
        if dests.get(home)?.is_available() {
            return Some(home);
        }
        if !flags.flag1 {
            return None;
        }
        // sh-fallback: IPVS rehashes with offsets counting up from the home
        // bucket's number, i.e. probes buckets 2·home, 2·home + 1, ... The
        // order depends only on the client, so it keeps landing on the same
        // replacement; with equal weights (cyclic buckets) a failed server's
        // clients mostly land on one neighbour, as in the kernel.
        let start = (base & TAB_MASK) as usize;
        for offset in 0..TAB_SIZE {
            let roffset = ((offset + start) % TAB_SIZE) as u32;
            let i = at(roffset) as usize;
            match dests.get(i) {
                None => return None,
                Some(d) if d.is_available() => return Some(i),
                Some(_) => {}
            }
        }
        None
    }

    #[cfg(test)]
    pub(crate) fn share(&self, i: usize) -> usize {
        self.buckets.iter().filter(|&&b| b as usize == i).count()
    }
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sh::Table({} buckets)", TAB_SIZE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::*;
    use crate::sched::*;

    const PLAIN: SchedFlags = SchedFlags {
        flag1: false,
        flag2: false,
        flag3: false,
    };
    const FALLBACK: SchedFlags = SchedFlags {
        flag1: true,
        flag2: false,
        flag3: false,
    };
    const PORT: SchedFlags = SchedFlags {
        flag1: false,
        flag2: true,
        flag3: false,
    };

    #[test]
    fn sched_sh_buckets_follow_weights() {
        let t = Table::new(&dests(&[1, 3]));
        assert_eq!((t.share(0), t.share(1)), (64, 192));
        // A quiesced server keeps one bucket per round, as in IPVS.
        let t = Table::new(&dests(&[2, 0, 1]));
        assert_eq!((t.share(0), t.share(1), t.share(2)), (128, 64, 64));
        // A weight beyond the table size takes all of it.
        let t = Table::new(&dests(&[1000, 1]));
        assert_eq!(t.share(0), 256);
    }

    #[test]
    fn sched_sh_same_client_same_server() {
        let ds = dests(&[1, 1, 1, 1]);
        let s = Scheduler::new(SchedKind::Sh, PLAIN, &ds);
        let mut st = SchedState::new(0);
        let mut seen = [0usize; 4];
        for i in 0..2000 {
            let c = client(i);
            let p = s.pick(&ds, &mut st, &c, 0).unwrap();
            seen[p] += 1;
            // Other ports, later, other load: same server.
            load(&ds[p], i % 7, i);
            for port in [1u16, 80, 65535] {
                let c2 = SchedInput { cport: port, ..c };
                assert_eq!(s.pick(&ds, &mut st, &c2, i), Some(p));
            }
        }
        assert!(
            seen.iter().all(|&n| n > 300),
            "spread over the servers: {seen:?}"
        );
    }

    #[test]
    fn sched_sh_port_varies_by_port() {
        let ds = dests(&[1, 1, 1, 1]);
        let s = Scheduler::new(SchedKind::Sh, PORT, &ds);
        let mut st = SchedState::new(0);
        let c = client(5);
        let mut seen = [false; 4];
        for port in 1000..1100u16 {
            let inp = SchedInput { cport: port, ..c };
            let p = s.pick(&ds, &mut st, &inp, 0).unwrap();
            seen[p] = true;
            assert_eq!(
                s.pick(&ds, &mut st, &inp, 0),
                Some(p),
                "same flow, same server"
            );
        }
        assert!(
            seen.iter().all(|&x| x),
            "one client's ports spread: {seen:?}"
        );
    }

    #[test]
    fn sched_sh_fallback_skips_unavailable() {
        let mut ds = dests(&[1, 1, 1]);
        let healthy = Scheduler::new(SchedKind::Sh, PLAIN, &ds);
        let mut st = SchedState::new(0);
        let home: Vec<usize> = (0..3000)
            .map(|i| healthy.pick(&ds, &mut st, &client(i), 0).unwrap())
            .collect();
        overload(&mut ds[1]);
        let plain = Scheduler::new(SchedKind::Sh, PLAIN, &ds);
        let fb = Scheduler::new(SchedKind::Sh, FALLBACK, &ds);
        let mut moved = [0usize; 3];
        for (i, &h) in home.iter().enumerate() {
            let c = client(i as u32);
            let p = plain.pick(&ds, &mut st, &c, 0);
            let f = fb
                .pick(&ds, &mut st, &c, 0)
                .expect("fallback finds a server");
            if h == 1 {
                assert_eq!(p, None, "plain sh bypasses an overloaded server");
                assert_ne!(f, 1);
                moved[f] += 1;
                assert_eq!(fb.pick(&ds, &mut st, &c, 0), Some(f), "deterministic");
            } else {
                assert_eq!((p, f), (Some(h), h), "other clients stay");
            }
        }
        // IPVS probes linearly from twice the home bucket; with the cyclic
        // 0,1,2 layout that lands server 1's clients on server 2.
        assert!(moved[2] > 0, "{moved:?}");
    }
}
