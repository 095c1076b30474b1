//! The IPVS rate estimator (ip_vs_est.c): every 2 seconds the counters are
//! sampled and each rate moves a quarter of the way towards the rate of the
//! last interval, so `ipvsadm -L --rate` shows a smoothed CPS, PPS and BPS.

use ferrovs_config::ipvsadm::list::Stats;
use ferrovs_dataplane::stats::TrafficTotals;
use std::collections::HashMap;
use std::time::Instant;

#[derive(Clone, Copy, Debug, Default)]
struct Est {
    last: TrafficTotals,
    at: Option<Instant>,
    cps: f64,
    inpps: f64,
    outpps: f64,
    inbps: f64,
    outbps: f64,
}

/// Smoothed rates per counter set, keyed by a caller-chosen name.
#[derive(Clone, Debug, Default)]
pub struct RateEstimator {
    est: HashMap<String, Est>,
}

impl RateEstimator {
    /// Takes a sample now.
    pub fn sample(&mut self, key: &str, t: TrafficTotals) {
        self.sample_at(key, t, Instant::now())
    }

    pub fn sample_at(&mut self, key: &str, t: TrafficTotals, now: Instant) {
        let e = self.est.entry(key.to_string()).or_default();
        if let Some(at) = e.at {
            let dt = now.duration_since(at).as_secs_f64();
            if dt > 0.0 {
                let r = |new: u64, old: u64| new.saturating_sub(old) as f64 / dt;
                let step = |avg: &mut f64, rate: f64| *avg += (rate - *avg) / 4.0;
                step(&mut e.cps, r(t.conns, e.last.conns));
                step(&mut e.inpps, r(t.inpkts, e.last.inpkts));
                step(&mut e.outpps, r(t.outpkts, e.last.outpkts));
                // IPVS's "BPS" are bytes per second (ip_vs_est.c scales
                // byte counts), not bits.
                step(&mut e.inbps, r(t.inbytes, e.last.inbytes));
                step(&mut e.outbps, r(t.outbytes, e.last.outbytes));
            }
        }
        e.last = t;
        e.at = Some(now);
    }

    /// Writes the rates of `key` into `s`.
    pub fn fill(&self, key: &str, s: &mut Stats) {
        if let Some(e) = self.est.get(key) {
            s.cps = e.cps.round() as u64;
            s.inpps = e.inpps.round() as u64;
            s.outpps = e.outpps.round() as u64;
            s.inbps = e.inbps.round() as u64;
            s.outbps = e.outbps.round() as u64;
        }
    }

    /// `-Z` starts the estimates afresh.
    pub fn reset(&mut self) {
        self.est.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn converges_to_the_steady_rate() {
        let mut r = RateEstimator::default();
        let t0 = Instant::now();
        for i in 0..100u64 {
            let t = TrafficTotals {
                conns: i * 200,
                inpkts: i * 2000,
                outpkts: i * 1000,
                inbytes: i * 200_000,
                outbytes: 0,
            };
            r.sample_at("x", t, t0 + Duration::from_secs(2 * i));
        }
        let mut s = Stats::default();
        r.fill("x", &mut s);
        assert_eq!(s.cps, 100);
        assert_eq!(s.inpps, 1000);
        assert_eq!(s.outpps, 500);
        assert_eq!(s.inbps, 100_000);
        assert_eq!(s.outbps, 0);
    }
}
