//! ovf — weighted overflow (ip_vs_ovf.c): the available server with the
//! highest weight whose active connections do not exceed its weight; the
//! first one wins a tie.
//!
//! The kernel's test is "skip if ActiveConn > weight", so a server keeps
//! taking connections while ActiveConn == weight and overflows to the next
//! one only beyond that (the Kconfig help says the same: "overflows to the
//! next when active connections exceed the node's weight").

use crate::service::Dest;

pub(crate) fn pick(dests: &[Dest]) -> Option<usize> {
    let mut best: Option<(usize, u32)> = None;
    for (i, d) in dests.iter().enumerate() {
        if !d.is_available() || d.shared.active() > d.weight {
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
        Scheduler::new(SchedKind::Ovf, SchedFlags::default(), ds).pick(
            ds,
            &mut SchedState::new(0),
            &client(0),
            0,
        )
    }

    #[test]
    fn sched_ovf_overflows_past_weight() {
        let ds = dests(&[2, 3, 3]);
        assert_eq!(pick(&ds), Some(1));
        load(&ds[1], 3, 100); // Active == weight: still eligible; inactive ignored
        assert_eq!(pick(&ds), Some(1));
        load(&ds[1], 4, 0); // Active > weight: overflow to the next of weight 3
        assert_eq!(pick(&ds), Some(2));
        load(&ds[2], 4, 0);
        assert_eq!(pick(&ds), Some(0));
        load(&ds[0], 3, 0);
        assert_eq!(pick(&ds), None, "every server beyond its weight");
    }

    #[test]
    fn sched_ovf_skips_unavailable() {
        let mut ds = dests(&[1, 0, 9]);
        overload(&mut ds[2]);
        assert_eq!(pick(&ds), Some(0));
    }
}
