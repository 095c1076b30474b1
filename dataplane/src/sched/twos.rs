//! twos — weighted random two choices (ip_vs_twos.c).
//!
//! IPVS draws two random numbers in [0, total weight] over the available
//! servers, walks the list subtracting each weight, and takes for each draw
//! the first server that brings it to ≤ 0 (so the first server is slightly
//! favoured: it also owns the draw 0). Of the two, the second wins only if
//! its overhead / weight is strictly lower.

use super::heavier;
use crate::service::Dest;

/// SplitMix64: a small, fast generator with a 64-bit state that every seed
/// (0 included) starts well. The kernel uses its per-cpu `prandom`; we want a
/// per-worker generator that needs no syscall and replays from a seed in
/// tests.
#[derive(Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    #[inline]
    pub(crate) fn next_u32(&mut self) -> u32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 32) as u32
    }
}

pub(crate) fn pick(dests: &[Dest], rng: &mut Rng) -> Option<usize> {
    let total: u64 = dests
        .iter()
        .filter(|d| d.is_available())
        .map(|d| d.weight as u64)
        .sum();
    if total == 0 {
        return None;
    }
    // Inclusive of total, as IPVS: [0, total].
    let mut r1 = (rng.next_u32() as u64 % (total + 1)) as i64;
    let mut r2 = (rng.next_u32() as u64 % (total + 1)) as i64;
    let mut c1: Option<(usize, u64)> = None;
    let mut c2: Option<(usize, u64)> = None;
    for (i, d) in dests.iter().enumerate() {
        if !d.is_available() {
            continue;
        }
        r1 -= d.weight as i64;
        r2 -= d.weight as i64;
        if r1 <= 0 && c1.is_none() {
            c1 = Some((i, d.overhead()));
        }
        if r2 <= 0 && c2.is_none() {
            c2 = Some((i, d.overhead()));
        }
        if c1.is_some() && c2.is_some() {
            break;
        }
    }
    // The draws never exceed the total, so both are set.
    let (i1, oh1) = c1?;
    let (i2, oh2) = c2?;
    if heavier(oh1, dests[i1].weight, oh2, dests[i2].weight) {
        Some(i2)
    } else {
        Some(i1)
    }
}

#[cfg(test)]
mod tests {
    use crate::sched::testutil::*;
    use crate::sched::*;

    #[test]
    fn sched_twos_prefers_lower_load() {
        // Four equal servers, the last one heavily loaded: it wins only when
        // both draws land on it (1/5 each: 4%). The first server owns draws 0
        // and 1 (2/5), so it gets about half, the middle two about a quarter.
        let ds = dests(&[1, 1, 1, 1]);
        load(&ds[3], 100, 0);
        let s = Scheduler::new(SchedKind::Twos, SchedFlags::default(), &ds);
        let mut st = SchedState::new(42);
        let c = counts(4, (0..20_000).map(|i| s.pick(&ds, &mut st, &client(i), 0)));
        assert!(c[3] < 20_000 * 7 / 100, "{c:?}");
        for &x in &c[..3] {
            assert!(x > 20_000 * 20 / 100, "{c:?}");
        }
    }

    #[test]
    fn sched_twos_normalizes_by_weight() {
        // Load 512 on weight 4 (128 per unit) beats load 256 on weight 1.
        let ds = dests(&[1, 4]);
        load(&ds[0], 1, 0);
        load(&ds[1], 2, 0);
        let s = Scheduler::new(SchedKind::Twos, SchedFlags::default(), &ds);
        let mut st = SchedState::new(3);
        let c = counts(2, (0..10_000).map(|i| s.pick(&ds, &mut st, &client(i), 0)));
        // Server 0 wins only when both draws hit it: (2/6)^2 ≈ 11%.
        assert!(c[0] < 1_500, "{c:?}");
    }

    #[test]
    fn sched_twos_respects_weight_zero_and_is_seeded() {
        let mut ds = dests(&[1, 0, 2, 3]);
        overload(&mut ds[3]);
        let s = Scheduler::new(SchedKind::Twos, SchedFlags::default(), &ds);
        let run = |seed| {
            let mut st = SchedState::new(seed);
            (0..2000)
                .map(|i| s.pick(&ds, &mut st, &client(i), 0))
                .collect::<Vec<_>>()
        };
        let a = run(9);
        assert_eq!(a, run(9), "same seed, same picks");
        assert_ne!(a, run(10));
        let c = counts(4, a.into_iter());
        assert_eq!((c[1], c[3]), (0, 0), "{c:?}");
        assert!(c[0] > 0 && c[2] > c[0], "{c:?}");
    }
}
