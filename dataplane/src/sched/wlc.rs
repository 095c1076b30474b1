//! wlc — weighted least connection (ip_vs_wlc.c), the IPVS default: the
//! available server with the least overhead / weight, compared as
//! h1·w2 > h2·w1; the first one wins a tie. lblc and lblcr pick new servers
//! with it too.

use super::heavier;
use crate::service::Dest;

pub(crate) fn pick(dests: &[Dest]) -> Option<usize> {
    let mut least: Option<(usize, u64, u32)> = None;
    for (i, d) in dests.iter().enumerate() {
        if !d.is_available() {
            continue;
        }
        let doh = d.overhead();
        match least {
            Some((_, loh, lw)) if !heavier(loh, lw, doh, d.weight) => {}
            _ => least = Some((i, doh, d.weight)),
        }
    }
    least.map(|(i, _, _)| i)
}

#[cfg(test)]
mod tests {
    use crate::sched::testutil::*;
    use crate::sched::*;

    fn pick(ds: &[crate::service::Dest]) -> Option<usize> {
        Scheduler::new(SchedKind::Wlc, SchedFlags::default(), ds).pick(
            ds,
            &mut SchedState::new(0),
            &client(0),
            0,
        )
    }

    #[test]
    fn sched_wlc_picks_least_overhead_per_weight() {
        let ds = dests(&[1, 3]);
        load(&ds[0], 1, 0); // 256 / 1 = 256
        load(&ds[1], 2, 0); // 512 / 3 ≈ 171
        assert_eq!(pick(&ds), Some(1));
        load(&ds[1], 3, 10); // 778 / 3 ≈ 259
        assert_eq!(pick(&ds), Some(0));
        // Inactive connections count 1/256 of an active one.
        load(&ds[0], 1, 0); // 256
        load(&ds[1], 3, 0); // 768 / 3 = 256: a tie, the first wins
        assert_eq!(pick(&ds), Some(0));
        load(&ds[0], 1, 1); // 257 > 256
        assert_eq!(pick(&ds), Some(1));
    }

    #[test]
    fn sched_wlc_skips_unavailable_even_when_idle() {
        let mut ds = dests(&[0, 2, 5]);
        load(&ds[1], 10, 0);
        load(&ds[2], 1, 0);
        assert_eq!(pick(&ds), Some(2));
        overload(&mut ds[2]);
        load(&ds[2], 0, 0);
        assert_eq!(pick(&ds), Some(1));
    }

    #[test]
    fn sched_wlc_spreads_new_connections_by_weight() {
        // Binding every pick as an active connection converges on 1:2:3.
        let ds = dests(&[1, 2, 3]);
        let s = Scheduler::new(SchedKind::Wlc, SchedFlags::default(), &ds);
        let mut st = SchedState::new(0);
        for i in 0..600 {
            let p = s.pick(&ds, &mut st, &client(i), 0).unwrap();
            ds[p].bind_conn(true);
        }
        let a: Vec<u32> = ds.iter().map(|d| d.shared.active()).collect();
        assert_eq!(a, vec![100, 200, 300]);
    }
}
