//! lc — least connection (ip_vs_lc.c): the available server with the least
//! overhead (256 × active + inactive), weights ignored except that 0
//! quiesces; the first one wins a tie.

use crate::service::Dest;

pub(crate) fn pick(dests: &[Dest]) -> Option<usize> {
    let mut least: Option<(usize, u64)> = None;
    for (i, d) in dests.iter().enumerate() {
        if !d.is_available() {
            continue;
        }
        let oh = d.overhead();
        match least {
            Some((_, loh)) if oh >= loh => {}
            _ => least = Some((i, oh)),
        }
    }
    least.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use crate::sched::testutil::*;
    use crate::sched::*;

    fn pick(ds: &[crate::service::Dest]) -> Option<usize> {
        Scheduler::new(SchedKind::Lc, SchedFlags::default(), ds).pick(
            ds,
            &mut SchedState::new(0),
            &client(0),
            0,
        )
    }

    #[test]
    fn sched_lc_picks_least_overhead() {
        let ds = dests(&[1, 1, 1]);
        // Overheads 256, 300, 266: one active connection weighs 256 inactive.
        load(&ds[0], 1, 0);
        load(&ds[1], 0, 300);
        load(&ds[2], 1, 10);
        assert_eq!(pick(&ds), Some(0));
        // Weights play no part: a heavier-weighted server is not preferred.
        let ds = dests(&[1, 100]);
        load(&ds[0], 2, 0); // 512
        load(&ds[1], 3, 0); // 768
        assert_eq!(pick(&ds), Some(0));
    }

    #[test]
    fn sched_lc_ties_go_to_the_first_and_skips_unavailable() {
        let mut ds = dests(&[1, 1, 0, 1]);
        load(&ds[0], 3, 0);
        load(&ds[1], 2, 0);
        load(&ds[3], 2, 0);
        assert_eq!(pick(&ds), Some(1));
        // Quiesced server 2 is idle but gets nothing.
        overload(&mut ds[1]);
        load(&ds[1], 0, 0);
        assert_eq!(pick(&ds), Some(3));
    }
}
