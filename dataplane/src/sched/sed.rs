//! sed — shortest expected delay (ip_vs_sed.c): the available server with
//! the least (ActiveConn + 1) / weight, compared as h1·w2 > h2·w1; inactive
//! connections are ignored; the first one wins a tie.

use super::heavier;
use crate::service::Dest;

/// The expected delay numerator sed and nq use.
#[inline]
pub(crate) fn overhead(d: &Dest) -> u64 {
    d.shared.active() as u64 + 1
}

pub(crate) fn pick(dests: &[Dest]) -> Option<usize> {
    let mut least: Option<(usize, u64, u32)> = None;
    for (i, d) in dests.iter().enumerate() {
        if !d.is_available() {
            continue;
        }
        let doh = overhead(d);
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
        Scheduler::new(SchedKind::Sed, SchedFlags::default(), ds).pick(
            ds,
            &mut SchedState::new(0),
            &client(0),
            0,
        )
    }

    #[test]
    fn sched_sed_counts_the_incoming_connection() {
        // (0+1)/1 = 1 vs (1+1)/3 ≈ 0.67: the busier but faster server wins,
        // where wlc would take the idle one.
        let ds = dests(&[1, 3]);
        load(&ds[1], 1, 0);
        assert_eq!(pick(&ds), Some(1));
        let wlc = Scheduler::new(SchedKind::Wlc, SchedFlags::default(), &ds);
        assert_eq!(
            wlc.pick(&ds, &mut SchedState::new(0), &client(0), 0),
            Some(0)
        );
        // (2+1)/3 = 1: a tie with server 0, the first wins.
        load(&ds[1], 2, 0);
        assert_eq!(pick(&ds), Some(0));
    }

    #[test]
    fn sched_sed_ignores_inactive_connections() {
        let ds = dests(&[1, 1]);
        load(&ds[0], 0, 1000); // (0+1)/1
        load(&ds[1], 1, 0); // (1+1)/1
        assert_eq!(pick(&ds), Some(0));
    }

    #[test]
    fn sched_sed_skips_unavailable() {
        let mut ds = dests(&[0, 1, 4]);
        overload(&mut ds[2]);
        load(&ds[1], 50, 0);
        assert_eq!(pick(&ds), Some(1));
    }
}
