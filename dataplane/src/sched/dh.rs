//! dh — destination hashing (ip_vs_dh.c).
//!
//! A 256-bucket table gives one bucket to each server in list order, round
//! and round (weights are not used, and a quiesced server keeps its
//! buckets). The connection's destination address hashes with `hash_32` to a
//! bucket; if that server is quiesced or overloaded there is no server, which
//! is what cache clusters with IPVS "cache bypass" rely on.

use super::hash::hash_32;
use super::sh::{NONE, TAB_SIZE};
use super::SchedInput;
use crate::service::Dest;
use std::fmt;

const TAB_BITS: u32 = TAB_SIZE.trailing_zeros();

pub(crate) struct Table {
    buckets: [u32; TAB_SIZE],
}

impl Table {
    pub(crate) fn new(dests: &[Dest]) -> Table {
        let mut buckets = [NONE; TAB_SIZE];
        if !dests.is_empty() {
            for (i, b) in buckets.iter_mut().enumerate() {
                *b = (i % dests.len()) as u32;
            }
        }
        Table { buckets }
    }

    pub(crate) fn pick(&self, dests: &[Dest], input: &SchedInput) -> Option<usize> {
        let i = self.buckets[hash_32(u32::from(input.daddr), TAB_BITS) as usize] as usize;
        dests.get(i).filter(|d| d.is_available()).map(|_| i)
    }
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dh::Table({} buckets)", TAB_SIZE)
    }
}

#[cfg(test)]
mod tests {
    use crate::sched::testutil::*;
    use crate::sched::*;

    #[test]
    fn sched_dh_same_destination_same_server() {
        let ds = dests(&[1, 1, 1]);
        let s = Scheduler::new(SchedKind::Dh, SchedFlags::default(), &ds);
        let mut st = SchedState::new(0);
        let mut seen = [0usize; 3];
        for d in 0..3000u32 {
            let daddr = 0xC612_0000 + d * 7919;
            let p = s.pick(&ds, &mut st, &input(1, 1, daddr), 0).unwrap();
            seen[p] += 1;
            // Any client, any port: the destination decides.
            for c in [2u32, 0xC613_0101, 77] {
                assert_eq!(s.pick(&ds, &mut st, &input(c, c as u16, daddr), 0), Some(p));
            }
        }
        assert!(seen.iter().all(|&n| n > 700), "{seen:?}");
    }

    #[test]
    fn sched_dh_unavailable_server_means_no_server() {
        let mut ds = dests(&[1, 1]);
        let s = Scheduler::new(SchedKind::Dh, SchedFlags::default(), &ds);
        let mut st = SchedState::new(0);
        let homes: Vec<Option<usize>> = (0..500u32)
            .map(|d| s.pick(&ds, &mut st, &input(1, 1, 0xC612_0000 + d), 0))
            .collect();
        overload(&mut ds[0]);
        for (d, h) in homes.iter().enumerate() {
            let p = s.pick(&ds, &mut st, &input(1, 1, 0xC612_0000 + d as u32), 0);
            assert_eq!(p, if *h == Some(0) { None } else { *h });
        }
    }
}
