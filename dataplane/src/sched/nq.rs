//! nq — never queue (ip_vs_nq.c): the first available server with no
//! active connection, else sed's choice ((ActiveConn + 1) / weight).

use super::{heavier, sed};
use crate::service::Dest;

pub(crate) fn pick(dests: &[Dest]) -> Option<usize> {
    let mut least: Option<(usize, u64, u32)> = None;
    for (i, d) in dests.iter().enumerate() {
        if !d.is_available() {
            continue;
        }
        // An idle server takes the job at once, whatever its weight.
        if d.shared.active() == 0 {
            return Some(i);
        }
        let doh = sed::overhead(d);
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
        Scheduler::new(SchedKind::Nq, SchedFlags::default(), ds).pick(
            ds,
            &mut SchedState::new(0),
            &client(0),
            0,
        )
    }

    #[test]
    fn sched_nq_prefers_an_idle_server() {
        // sed would take server 1 ((1+1)/3 < (0+1)/1); nq takes the idle one.
        let ds = dests(&[3, 3, 1]);
        load(&ds[0], 1, 0);
        load(&ds[1], 1, 0);
        assert_eq!(pick(&ds), Some(2));
        // Inactive connections do not make a server busy.
        load(&ds[2], 0, 500);
        assert_eq!(pick(&ds), Some(2));
    }

    #[test]
    fn sched_nq_falls_back_to_sed() {
        let ds = dests(&[1, 3]);
        load(&ds[0], 1, 0); // (1+1)/1 = 2
        load(&ds[1], 2, 0); // (2+1)/3 = 1
        assert_eq!(pick(&ds), Some(1));
        load(&ds[1], 5, 0); // 6/3 = 2: tie, first wins
        assert_eq!(pick(&ds), Some(0));
    }

    #[test]
    fn sched_nq_ignores_idle_but_unavailable_servers() {
        let mut ds = dests(&[0, 1, 1]);
        overload(&mut ds[1]);
        load(&ds[1], 0, 0);
        load(&ds[2], 7, 0);
        assert_eq!(pick(&ds), Some(2));
    }
}
