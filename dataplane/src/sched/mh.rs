//! mh — Maglev hashing (ip_vs_mh.c; Eisenbud et al., NSDI 2016, §3.4), with
//! `mh-fallback` (flag1) and `mh-port` (flag2).
//!
//! Table size: a prime M from [`MH_PRIMES`], chosen by the kernel build
//! option `CONFIG_IP_VS_MH_TAB_INDEX` (8..=17 → primes[index − 8]). Its
//! default is 12, so stock kernels use **M = 4093**; 65521 is index 16.
//!
//! Each server gets a permutation of the table positions from two keyed
//! hashes (hsiphash with IPVS's fixed keys) of its address + port: start at
//! `offset = h1 % M` and step by `skip = h2 % (M − 1) + 1`. Servers take
//! turns, in list order, claiming the next free position of their
//! permutation until the table is full; a server claims `turns` positions per
//! round, turns = (weight / gcd) >> rshift, where rshift keeps the largest
//! turns within 2^(index/2) so one heavy server cannot starve the round.
//! Weight here is IPVS's `last_weight`, the latest non-zero weight, so a
//! quiesced server keeps its positions and nobody else's clients move.
//!
//! A client hashes (h1 of its address, plus its source port with mh-port) to
//! a position. If that server is unavailable, mh returns no server; with
//! mh-fallback it rehashes with offsets counting up from that position until
//! it finds an available one.

use super::hash::{hsiphash_u32, SipKey};
use super::{gcd_weights, SchedFlags, SchedInput};
use crate::service::Dest;
use std::fmt;
use std::net::Ipv4Addr;

/// The table sizes IPVS offers (`primes[]` in ip_vs_mh.c).
pub const MH_PRIMES: [u32; 10] = [
    251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
];
/// `CONFIG_IP_VS_MH_TAB_INDEX` default: primes[12 − 8] = 4093.
pub const MH_DEFAULT_TAB_INDEX: u8 = 12;

/// IPVS `generate_hash_secret`: fixed keys, so every director (and every
/// worker) builds the same table for the same servers.
const HASH1: SipKey = SipKey(2_654_435_761, 2_654_435_761);
const HASH2: SipKey = SipKey(2_654_446_892, 2_654_446_892);

const NONE: u32 = u32::MAX;

/// IPVS `ip_vs_mh_hashkey`: hsiphash of offset + port + address, all in host
/// order, as one 32-bit word.
#[inline]
fn hashkey(addr: Ipv4Addr, port: u16, key: SipKey, offset: u32) -> u32 {
    hsiphash_u32(
        key,
        offset
            .wrapping_add(port as u32)
            .wrapping_add(u32::from(addr)),
    )
}

/// The Maglev lookup table: a server index per position.
pub(crate) struct Table {
    lookup: Box<[u32]>,
}

impl Table {
    pub(crate) fn new(dests: &[Dest], last_weights: Option<&[u32]>, tab_index: u8) -> Table {
        let index = tab_index.clamp(8, 17);
        let m = MH_PRIMES[(index - 8) as usize];
        let tab_bits = (index / 2) as u32;
        let mut lookup = vec![NONE; m as usize].into_boxed_slice();

        // A server with a weight has it as last_weight too; a quiesced one
        // keeps the last non-zero weight the control plane remembers.
        let lw = |i: usize| match dests[i].weight {
            0 => last_weights.and_then(|l| l.get(i).copied()).unwrap_or(0),
            w => w,
        };
        let g = gcd_weights((0..dests.len()).map(lw));
        if g == 0 {
            // No weights at all: IPVS empties the table.
            return Table { lookup };
        }
        let mw = (0..dests.len()).map(lw).max().unwrap_or(0) / g;
        let fls = 32 - mw.leading_zeros();
        let rshift = fls.saturating_sub(tab_bits);

        struct Setup {
            skip: u32,
            perm: u32,
            turns: u32,
        }
        let mut setup: Vec<Setup> = dests
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let w = lw(i);
                let t = (w / g) >> rshift;
                Setup {
                    perm: hashkey(d.addr, d.port, HASH1, 0) % m,
                    skip: hashkey(d.addr, d.port, HASH2, 0) % (m - 1) + 1,
                    turns: if t > 0 { t } else { (w != 0) as u32 },
                }
            })
            .collect();

        let mut filled = 0u32;
        'fill: loop {
            for (i, s) in setup.iter_mut().enumerate() {
                for _ in 0..s.turns {
                    while lookup[s.perm as usize] != NONE {
                        s.perm += s.skip;
                        if s.perm >= m {
                            s.perm -= m;
                        }
                    }
                    lookup[s.perm as usize] = i as u32;
                    filled += 1;
                    if filled == m {
                        break 'fill;
                    }
                }
            }
        }
        Table { lookup }
    }

    pub(crate) fn size(&self) -> usize {
        self.lookup.len()
    }

    pub(crate) fn pick(
        &self,
        dests: &[Dest],
        input: &SchedInput,
        flags: SchedFlags,
    ) -> Option<usize> {
        let m = self.lookup.len() as u32;
        let port = if flags.flag2 { input.cport } else { 0 };
        let ihash = hashkey(input.caddr, port, HASH1, 0) % m;
        let i = self.lookup[ihash as usize] as usize;
        if dests.get(i)?.is_available() {
            return Some(i);
        }
        if !flags.flag1 {
            return None;
        }
        // The walk below would try up to M positions and find nothing;
        // answer that case from the (short) server list instead.
        if !dests.iter().any(|d| d.is_available()) {
            return None;
        }
        for offset in 0..m {
            let roffset = (offset + ihash) % m;
            let i = self.lookup[(hashkey(input.caddr, port, HASH1, roffset) % m) as usize] as usize;
            match dests.get(i) {
                None => return None,
                Some(d) if d.is_available() => return Some(i),
                Some(_) => {}
            }
        }
        None
    }

    #[cfg(test)]
    fn share(&self, i: usize) -> usize {
        self.lookup.iter().filter(|&&x| x as usize == i).count()
    }
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mh::Table({} entries)", self.lookup.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::*;
    use crate::sched::*;

    const PLAIN: SchedFlags = SchedFlags {
        flag1: false,
        flag2: false,
        flag3: false,
    };
    const FALLBACK: SchedFlags = SchedFlags {
        flag1: true,
        flag2: false,
        flag3: false,
    };
    const PORT: SchedFlags = SchedFlags {
        flag1: false,
        flag2: true,
        flag3: false,
    };
    const CLIENTS: u32 = 100_000;

    fn ids(s: &Scheduler, ds: &[Dest]) -> Vec<Option<u32>> {
        let mut st = SchedState::new(0);
        (0..CLIENTS)
            .map(|i| s.pick(ds, &mut st, &client(i), 0).map(|p| ds[p].shared.id))
            .collect()
    }

    #[test]
    fn sched_mh_default_table_is_4093_and_index_selects_prime() {
        let ds = dests(&[1, 1]);
        assert_eq!(Table::new(&ds, None, MH_DEFAULT_TAB_INDEX).size(), 4093);
        assert_eq!(Table::new(&ds, None, 8).size(), 251);
        assert_eq!(Table::new(&ds, None, 16).size(), 65521);
        assert_eq!(Table::new(&ds, None, 17).size(), 131071);
        // Every position is filled.
        let t = Table::new(&ds, None, 12);
        assert_eq!(t.share(0) + t.share(1), 4093);
    }

    #[test]
    fn sched_mh_same_flow_same_server() {
        let ds = dests(&[1, 1, 1, 1]);
        let s = Scheduler::new(SchedKind::Mh, PLAIN, &ds);
        let again = Scheduler::new(SchedKind::Mh, PLAIN, &ds);
        let mut st = SchedState::new(0);
        for i in 0..5000 {
            let c = client(i);
            let p = s.pick(&ds, &mut st, &c, 0);
            assert!(p.is_some());
            // Same table on every worker and after a rebuild; port ignored.
            assert_eq!(
                again.pick(&ds, &mut st, &SchedInput { cport: 9, ..c }, 5),
                p
            );
        }
    }

    #[test]
    fn sched_mh_distribution_follows_weights() {
        let ds = dests(&[1, 2, 3]);
        let t = Table::new(&ds, None, MH_DEFAULT_TAB_INDEX);
        // Rounds of 1 + 2 + 3 claims: 682 rounds and one left over.
        assert_eq!((t.share(0), t.share(1), t.share(2)), (683, 1364, 2046));
        let s = Scheduler::new(SchedKind::Mh, PLAIN, &ds);
        let mut st = SchedState::new(0);
        let c = counts(3, (0..CLIENTS).map(|i| s.pick(&ds, &mut st, &client(i), 0)));
        let frac: Vec<f64> = c.iter().map(|&x| x as f64 / CLIENTS as f64).collect();
        eprintln!("mh weights 1:2:3 over {CLIENTS} clients: {frac:.4?}");
        for (f, want) in frac.iter().zip([1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0]) {
            assert!((f - want).abs() < 0.02, "{frac:?}");
        }
    }

    #[test]
    fn sched_mh_removing_one_server_remaps_about_one_nth() {
        for n in [3usize, 5, 10] {
            let ds = dests(&vec![1; n]);
            let before = ids(&Scheduler::new(SchedKind::Mh, PLAIN, &ds), &ds);
            let mut fewer = ds.clone();
            fewer.remove(n / 2);
            let after = ids(&Scheduler::new(SchedKind::Mh, PLAIN, &fewer), &fewer);
            let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
            let frac = moved as f64 / CLIENTS as f64;
            let ideal = 1.0 / n as f64;
            eprintln!(
                "mh remove 1 of {n}: {frac:.4} of {CLIENTS} clients remapped (ideal {ideal:.4})"
            );
            assert!(frac >= ideal - 0.02 && frac < ideal + 0.05, "n={n}: {frac}");
        }
    }

    #[test]
    fn sched_mh_port_varies_by_port() {
        let ds = dests(&[1, 1, 1, 1]);
        let s = Scheduler::new(SchedKind::Mh, PORT, &ds);
        let mut st = SchedState::new(0);
        let c = client(77);
        let mut seen = [false; 4];
        for port in 2000..2100u16 {
            let inp = SchedInput { cport: port, ..c };
            let p = s.pick(&ds, &mut st, &inp, 0).unwrap();
            seen[p] = true;
            assert_eq!(s.pick(&ds, &mut st, &inp, 0), Some(p));
        }
        assert!(seen.iter().all(|&x| x), "{seen:?}");
    }

    #[test]
    fn sched_mh_fallback_skips_unavailable() {
        let mut ds = dests(&[1, 1, 1]);
        let home = ids(&Scheduler::new(SchedKind::Mh, PLAIN, &ds), &ds);
        overload(&mut ds[1]);
        let plain = ids(&Scheduler::new(SchedKind::Mh, PLAIN, &ds), &ds);
        let fb = ids(&Scheduler::new(SchedKind::Mh, FALLBACK, &ds), &ds);
        let id1 = ds[1].shared.id;
        let mut moved = 0;
        for i in 0..CLIENTS as usize {
            if home[i] == Some(id1) {
                assert_eq!(plain[i], None);
                assert!(fb[i].is_some() && fb[i] != Some(id1));
                moved += 1;
            } else {
                assert_eq!((plain[i], fb[i]), (home[i], home[i]), "other clients stay");
            }
        }
        assert!(moved > 0);
    }

    #[test]
    fn sched_mh_quiesce_with_last_weight_keeps_the_table() {
        let ds = dests(&[2, 1, 1]);
        let t = Table::new(&ds, None, MH_DEFAULT_TAB_INDEX);
        let mut quiesced = ds.clone();
        quiesced[1].weight = 0;
        let kept = Table::new(&quiesced, Some(&[2, 1, 1]), MH_DEFAULT_TAB_INDEX);
        assert_eq!(t.lookup, kept.lookup, "IPVS sizes by last_weight");
        let opts = SchedOptions {
            last_weights: Some(&[2, 1, 1]),
            ..SchedOptions::default()
        };
        let s = Scheduler::with_options(SchedKind::Mh, FALLBACK, &quiesced, &opts);
        let before = ids(&Scheduler::new(SchedKind::Mh, FALLBACK, &ds), &ds);
        let after = ids(&s, &quiesced);
        for (b, a) in before.iter().zip(&after) {
            if *b != Some(2) {
                assert_eq!(a, b);
            } else {
                assert_ne!(*a, Some(2));
            }
        }
        // Without last_weight the quiesced server simply has no share.
        let fresh = Table::new(&quiesced, None, MH_DEFAULT_TAB_INDEX);
        assert_eq!(fresh.share(1), 0);
    }

    #[test]
    fn sched_mh_large_weights_are_shifted() {
        // max/gcd = 1000 needs 10 bits; with index 12 (6 bits) turns are
        // shifted right by 4: 1000 → 62, 1 → 0 → 1 (non-zero weight keeps a
        // turn).
        let ds = dests(&[1000, 1]);
        let t = Table::new(&ds, None, MH_DEFAULT_TAB_INDEX);
        let (a, b) = (t.share(0), t.share(1));
        assert_eq!(a + b, 4093);
        assert!((b as f64 - 4093.0 / 63.0).abs() < 2.0, "{a} {b}");
    }
}
