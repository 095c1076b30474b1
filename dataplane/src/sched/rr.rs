//! rr — round robin (ip_vs_rr.c).
//!
//! IPVS keeps a cursor on the last server picked and takes the next
//! available one after it, wrapping around and ending with the last one
//! itself; quiesced and overloaded servers are passed over.

use crate::service::Dest;

/// `next` is the index to start looking from (one past the last pick).
pub(crate) fn pick(dests: &[Dest], next: &mut usize) -> Option<usize> {
    let n = dests.len();
    let start = if *next >= n { 0 } else { *next };
    for k in 0..n {
        let i = if start + k >= n {
            start + k - n
        } else {
            start + k
        };
        if dests[i].is_available() {
            *next = i + 1;
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use crate::sched::testutil::*;
    use crate::sched::*;

    fn run(ds: &[crate::service::Dest], n: usize) -> Vec<usize> {
        let s = Scheduler::new(SchedKind::Rr, SchedFlags::default(), ds);
        let mut st = SchedState::new(0);
        (0..n)
            .map(|i| s.pick(ds, &mut st, &client(i as u32), 0).unwrap())
            .collect()
    }

    #[test]
    fn sched_rr_cycles_in_list_order() {
        let ds = dests(&[1, 5, 1]);
        // Weights do not matter to rr, only to say "not quiesced".
        assert_eq!(run(&ds, 7), vec![0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn sched_rr_skips_quiesced_and_overloaded() {
        let mut ds = dests(&[1, 0, 1, 1]);
        overload(&mut ds[3]);
        assert_eq!(run(&ds, 5), vec![0, 2, 0, 2, 0]);
        // Load does not matter to rr.
        load(&ds[0], 1000, 0);
        assert_eq!(run(&ds, 2), vec![0, 2]);
    }

    #[test]
    fn sched_rr_keeps_its_place_when_a_server_comes_back() {
        let ds = dests(&[1, 1, 1]);
        let s = Scheduler::new(SchedKind::Rr, SchedFlags::default(), &ds);
        let mut st = SchedState::new(0);
        assert_eq!(s.pick(&ds, &mut st, &client(0), 0), Some(0));
        assert_eq!(s.pick(&ds, &mut st, &client(0), 0), Some(1));
        // A new snapshot with one server fewer: the cursor carries over.
        let two = ds[..2].to_vec();
        let s2 = Scheduler::new(SchedKind::Rr, SchedFlags::default(), &two);
        assert_eq!(s2.pick(&two, &mut st, &client(0), 0), Some(0));
        assert_eq!(s2.pick(&two, &mut st, &client(0), 0), Some(1));
    }
}
