//! wrr — weighted round robin (ip_vs_wrr.c).
//!
//! IPVS walks the server list in passes. Pass k takes, in list order, every
//! available server whose weight is at least the current weight `cw`; `cw`
//! starts at the maximum weight and steps down by `di`, the gcd of the
//! positive weights, after each pass, wrapping back to the top below 1. So
//! with weights 4, 3, 2 the picks are A A B A B C A B C, and every server
//! gets weight/di picks per cycle.
//!
//! The kernel lowers the top by di − 1 (`mw = max − (di − 1)`) so that the
//! last pass runs at cw = 1 and still catches a server whose weight dropped
//! below di while the list was changing. It also bounds the search: with
//! every server overloaded, one full cycle finds nothing and returns None.

use super::gcd_weights;
use crate::service::Dest;

/// What IPVS recomputes on every server change.
#[derive(Debug)]
pub(crate) struct Params {
    /// Top of the cycle, `max weight − (di − 1)`; 0 when every weight is 0.
    mw: i64,
    /// Step: gcd of the positive weights, 1 if none.
    di: i64,
}

impl Params {
    pub(crate) fn new(dests: &[Dest]) -> Params {
        let di = match gcd_weights(dests.iter().map(|d| d.weight)) {
            0 => 1,
            g => g as i64,
        };
        let max = dests.iter().map(|d| d.weight as i64).max().unwrap_or(0);
        Params {
            mw: max - (di - 1),
            di,
        }
    }
}

/// The per-worker cursor (IPVS `ip_vs_wrr_mark`).
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Last server picked; None is the list head.
    cl: Option<usize>,
    /// Current weight; 0 before the first pick.
    cw: i64,
}

/// IPVS `ip_vs_wrr_dest_changed`: restart from the head, keep the current
/// weight if it still fits, aligned to the new step.
pub(crate) fn adopt(p: &Params, st: &mut State) {
    st.cl = None;
    if st.cw > p.mw || st.cw == 0 {
        st.cw = p.mw;
    } else if p.di > 1 {
        st.cw = (st.cw / p.di) * p.di + 1;
    }
}

pub(crate) fn pick(p: &Params, dests: &[Dest], st: &mut State) -> Option<usize> {
    let n = dests.len();
    if p.mw <= 0 || n == 0 {
        return None;
    }
    let last = st.cl.filter(|&l| l < n);
    let mut i = last.map_or(0, |l| l + 1);
    let mut stop: Option<usize> = None;
    let mut last_pass = false;
    let mut restarted = false;
    // Highest weight among available servers, known once a pass has walked
    // the whole list (`whole`).
    let mut max_avail = 0i64;
    let mut whole = i == 0;
    // The kernel's stop rules end the walk within one cycle; the bound only
    // guards against a state we did not foresee.
    let mut budget = (p.mw / p.di + 2) as u64 * (n as u64 + 1) + n as u64;
    loop {
        while i < n {
            let d = &dests[i];
            if d.is_available() {
                let w = d.weight as i64;
                if w >= st.cw {
                    st.cl = Some(i);
                    return Some(i);
                }
                max_avail = max_avail.max(w);
            }
            if stop == Some(i) {
                st.cl = Some(i);
                return None;
            }
            i += 1;
            budget = budget.saturating_sub(1);
        }
        if whole && max_avail == 0 {
            // Nothing available. Leave the cursor where IPVS's walk would
            // end: after a restart it goes on down to the last pass and
            // stops at `last`; otherwise it wraps back to the head.
            if restarted {
                let mut cw = st.cw - p.di;
                if cw > p.di {
                    cw -= (cw - 1) / p.di * p.di;
                }
                st.cw = cw;
                st.cl = last;
            } else {
                st.cl = None;
                st.cw = p.mw;
            }
            return None;
        }
        // End of the list: next pass, one step lower.
        st.cw -= p.di;
        if whole && st.cw > max_avail {
            // Passes above every available weight find nothing: go straight
            // to the first step at or below it. Same result as IPVS, without
            // walking max/gcd passes when, say, a 1000-weight server is
            // overloaded next to a weight-1 one.
            let k = (st.cw - max_avail + p.di - 1) / p.di;
            if st.cw - k * p.di >= 1 {
                st.cw -= k * p.di;
            }
        }
        if st.cw <= 0 {
            st.cw = p.mw;
            // Every server has been checked at weight ≥ 1 already.
            if last_pass || last.is_none() {
                st.cl = None;
                return None;
            }
            restarted = true;
        }
        last_pass = st.cw <= p.di;
        if last_pass && restarted && last.is_some() {
            // The first walk at w ≥ 1 covered only the servers after
            // `last`; this one covers those up to it.
            stop = last;
        }
        i = 0;
        whole = true;
        if budget == 0 {
            st.cl = None;
            return None;
        }
        budget -= 1;
    }
}

/// IPVS's walk step by step, without the pass skipping, to check `pick`
/// against.
#[cfg(test)]
fn pick_reference(p: &Params, dests: &[Dest], st: &mut State) -> Option<usize> {
    let n = dests.len();
    if p.mw <= 0 || n == 0 {
        return None;
    }
    let last = st.cl.filter(|&l| l < n);
    let mut i = last.map_or(0, |l| l + 1);
    let (mut stop, mut last_pass, mut restarted) = (None, false, false);
    loop {
        while i < n {
            let d = &dests[i];
            if d.is_available() && d.weight as i64 >= st.cw {
                st.cl = Some(i);
                return Some(i);
            }
            if stop == Some(i) {
                st.cl = Some(i);
                return None;
            }
            i += 1;
        }
        st.cw -= p.di;
        if st.cw <= 0 {
            st.cw = p.mw;
            if last_pass || last.is_none() {
                st.cl = None;
                return None;
            }
            restarted = true;
        }
        last_pass = st.cw <= p.di;
        if last_pass && restarted && last.is_some() {
            stop = last;
        }
        i = 0;
    }
}

#[cfg(test)]
mod tests {
    use crate::sched::testutil::*;
    use crate::sched::*;
    use crate::service::Dest;

    fn seq(ds: &[Dest], n: usize) -> Vec<usize> {
        let s = Scheduler::new(SchedKind::Wrr, SchedFlags::default(), ds);
        let mut st = SchedState::new(0);
        (0..n)
            .map(|i| s.pick(ds, &mut st, &client(i as u32), 0).expect("a server"))
            .collect()
    }

    #[test]
    fn sched_wrr_3_to_1_is_exact() {
        let ds = dests(&[3, 1]);
        let c = counts(2, seq(&ds, 4000).into_iter().map(Some));
        assert_eq!(c, vec![3000, 1000]);
        assert_eq!(seq(&ds, 8), vec![0, 0, 0, 1, 0, 0, 0, 1]);
    }

    #[test]
    fn sched_wrr_interleaves_by_current_weight() {
        // cw = 4: A; 3: A B; 2: A B C; 1: A B C.
        let ds = dests(&[4, 3, 2]);
        assert_eq!(seq(&ds, 10), vec![0, 0, 1, 0, 1, 2, 0, 1, 2, 0]);
        let c = counts(3, seq(&ds, 9000).into_iter().map(Some));
        assert_eq!(c, vec![4000, 3000, 2000]);
    }

    #[test]
    fn sched_wrr_steps_by_gcd() {
        // gcd 2, top = 4 − 1 = 3: passes at cw 3 (A) and 1 (A B).
        let ds = dests(&[4, 2]);
        assert_eq!(seq(&ds, 6), vec![0, 0, 1, 0, 0, 1]);
        let ds = dests(&[300, 200, 100]);
        let c = counts(3, seq(&ds, 6000).into_iter().map(Some));
        assert_eq!(c, vec![3000, 2000, 1000]);
        assert_eq!(seq(&ds, 6), vec![0, 0, 1, 0, 1, 2]);
    }

    #[test]
    fn sched_wrr_skips_quiesced_and_overloaded() {
        let mut ds = dests(&[2, 0, 5, 1]);
        overload(&mut ds[2]);
        let c = counts(4, seq(&ds, 3000).into_iter().map(Some));
        assert_eq!(c, vec![2000, 0, 0, 1000]);
    }

    #[test]
    fn sched_wrr_with_everything_overloaded_finds_nothing_and_recovers() {
        let mut ds = dests(&[3, 2]);
        let s = Scheduler::new(SchedKind::Wrr, SchedFlags::default(), &ds);
        let mut st = SchedState::new(0);
        assert_eq!(s.pick(&ds, &mut st, &client(0), 0), Some(0));
        let healthy = ds.clone();
        overload(&mut ds[0]);
        overload(&mut ds[1]);
        for _ in 0..3 {
            assert_eq!(s.pick(&ds, &mut st, &client(0), 0), None);
        }
        // Same scheduler, servers back (a snapshot without the flag).
        for d in &healthy {
            load(d, 0, 0);
            d.recheck_overload();
        }
        let c = counts(
            2,
            (0..500).map(|i| s.pick(&healthy, &mut st, &client(i), 0)),
        );
        assert_eq!(c, vec![300, 200]);
    }

    /// Same picks as IPVS's pass-by-pass walk, over random weights and
    /// random overloads changing between picks.
    #[test]
    fn sched_wrr_matches_the_kernel_walk() {
        let mut rng = super::super::twos::Rng::new(5);
        for _ in 0..300 {
            let n = 1 + rng.next_u32() as usize % 6;
            let scale = [1, 2, 3, 100][rng.next_u32() as usize % 4];
            let ws: Vec<u32> = (0..n).map(|_| (rng.next_u32() % 5) * scale).collect();
            let mut ds = dests(&ws);
            for d in ds.iter_mut() {
                d.u_threshold = 1;
            }
            let p = super::Params::new(&ds);
            let (mut a, mut b) = (super::State::default(), super::State::default());
            super::adopt(&p, &mut a);
            super::adopt(&p, &mut b);
            for _ in 0..200 {
                for d in &ds {
                    // Overload about one server in four, changing each pick.
                    if rng.next_u32() < u32::MAX / 4 {
                        d.bind_conn(false);
                    } else {
                        load(d, 0, 0);
                        d.recheck_overload();
                    }
                }
                let x = super::pick(&p, &ds, &mut a);
                let y = super::pick_reference(&p, &ds, &mut b);
                assert_eq!(x, y, "weights {ws:?}");
                assert_eq!((a.cl, a.cw), (b.cl, b.cw), "weights {ws:?}");
            }
        }
    }

    #[test]
    fn sched_wrr_skips_empty_passes() {
        // A 1000-weight server overloaded next to a weight-1 one: each pick
        // would walk 1000 passes; the skip makes it one or two.
        let mut ds = dests(&[1000, 1]);
        overload(&mut ds[0]);
        let c = counts(2, seq(&ds, 1000).into_iter().map(Some));
        assert_eq!(c, vec![0, 1000]);
    }

    #[test]
    fn sched_wrr_weight_change_keeps_cycling() {
        let ds = dests(&[4, 2]);
        let s = Scheduler::new(SchedKind::Wrr, SchedFlags::default(), &ds);
        let mut st = SchedState::new(0);
        for i in 0..5 {
            s.pick(&ds, &mut st, &client(i), 0);
        }
        // New snapshot with weights 6:3; the worker's state carries over.
        let mut ds2 = ds.clone();
        ds2[0].weight = 6;
        ds2[1].weight = 3;
        let s2 = Scheduler::new(SchedKind::Wrr, SchedFlags::default(), &ds2);
        let c = counts(2, (0..900).map(|i| s2.pick(&ds2, &mut st, &client(i), 0)));
        assert!(
            (c[0] as i64 - 600).abs() <= 6 && (c[1] as i64 - 300).abs() <= 6,
            "{c:?}"
        );
    }
}
