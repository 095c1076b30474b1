//! fo — weighted failover (ip_vs_fo.c): the available server with the
//! highest weight; the first one wins a tie. Load plays no part.

use crate::service::Dest;

pub(crate) fn pick(dests: &[Dest]) -> Option<usize> {
    let mut best: Option<(usize, u32)> = None;
    for (i, d) in dests.iter().enumerate() {
        if !d.is_available() {
            continue;
        }
        match best {
            Some((_, hw)) if d.weight <= hw => {}
            _ => best = Some((i, d.weight)),
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use crate::sched::testutil::*;
    use crate::sched::*;

    fn pick(ds: &[crate::service::Dest]) -> Option<usize> {
        Scheduler::new(SchedKind::Fo, SchedFlags::default(), ds).pick(
            ds,
            &mut SchedState::new(0),
            &client(0),
            0,
        )
    }

    #[test]
    fn sched_fo_picks_highest_weight_available() {
        let mut ds = dests(&[5, 10, 10, 1]);
        load(&ds[1], 10_000, 0); // load does not matter
        assert_eq!(pick(&ds), Some(1), "first of the two highest");
        overload(&mut ds[1]);
        assert_eq!(pick(&ds), Some(2));
        ds[2].weight = 0;
        assert_eq!(pick(&ds), Some(0));
    }
}
