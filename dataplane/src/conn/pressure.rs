//! Pressure on a connection table: when it is near full, half-open and
//! unconfirmed entries get short timeouts and the secure TCP rule applies.
//!
//! This follows IPVS's defence strategies (`update_defense_level` in
//! ip_vs_ctl.c), with the table's free slots in place of the kernel's free
//! memory and a threshold like its `amemthresh`:
//!
//! - IPVS's `secure_tcp` in its automatic mode switches to a stricter state
//!   table while memory is short; here, under pressure, a NAT or FULLNAT
//!   connection becomes ESTABLISHED only after the real server answered
//!   (`state::tcp_next_secure`).
//! - IPVS's `drop_entry` drops half-open entries (SYN_RECV, SYNACK) and
//!   UDP entries with few packets while memory is short, a random slice of
//!   the table each second. Here the table keeps its candidates in arrival
//!   order (`evict::EvictRing`), and a new connection that finds the table
//!   full evicts the oldest of them; ESTABLISHED and closing connections are
//!   never evicted. Eviction does not depend on the pressure level: a full
//!   table with a half-open entry in it always has room for a SYN.
//! - What IPVS does not have and a table of fixed size needs: while under
//!   pressure, a half-open TCP entry (SYN_RECV, SYNACK, SYN_SENT, NONE) and
//!   an unconfirmed UDP entry get a short timeout when they are created or
//!   change state, so that a flood's garbage leaves in seconds, not in the
//!   minute of SYN_RECV or the five minutes of UDP.
//!
//! The level has hysteresis: pressure starts when fewer than an eighth of
//! the slots are free and ends when a quarter are free again, so it does not
//! flap with every connection. Checking it costs two comparisons, done as
//! the table's occupancy changes.

use super::state::{TcpState, Timeouts};

/// SYN_RECV (and the other half-open states) under pressure, seconds.
/// Enough for the server's SYN-ACK and two of its retransmissions (1 s,
/// then 3 s) to be answered.
pub const PRESSURE_HALF_OPEN_S: u32 = 5;
/// An unconfirmed UDP entry under pressure, seconds: a request and its
/// answer.
pub const PRESSURE_UDP_S: u32 = 10;

/// The pressure level of one table, with hysteresis.
#[derive(Clone, Copy, Debug)]
pub struct Pressure {
    on: bool,
    /// Pressure starts when fewer slots than this are free...
    enter_below_free: usize,
    /// ...and ends when at least this many are free again.
    leave_at_free: usize,
    /// Times pressure started.
    entered: u64,
}

impl Pressure {
    pub fn new(capacity: usize) -> Pressure {
        let enter = (capacity / 8).max(1);
        Pressure {
            on: false,
            enter_below_free: enter,
            leave_at_free: (capacity / 4).max(enter + 1),
            entered: 0,
        }
    }

    /// Re-evaluates the level for `free` free slots.
    #[inline(always)]
    pub fn update(&mut self, free: usize) {
        if self.on {
            if free >= self.leave_at_free {
                self.on = false;
            }
        } else if free < self.enter_below_free {
            self.on = true;
            self.entered += 1;
        }
    }

    #[inline(always)]
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// How many times pressure started.
    pub fn entered(&self) -> u64 {
        self.entered
    }

    /// The thresholds, in free slots: (enter below, leave at).
    pub fn thresholds(&self) -> (usize, usize) {
        (self.enter_below_free, self.leave_at_free)
    }

    /// The timeout of a TCP connection entering state `s`.
    #[inline(always)]
    pub fn tcp_timeout(&self, t: &Timeouts, s: TcpState) -> u32 {
        let v = t.tcp(s);
        if self.on && s.is_half_open() {
            v.min(PRESSURE_HALF_OPEN_S)
        } else {
            v
        }
    }

    /// The timeout of a UDP entry, confirmed or not.
    #[inline(always)]
    pub fn udp_timeout(&self, t: &Timeouts, confirmed: bool) -> u32 {
        if self.on && !confirmed {
            t.udp.min(PRESSURE_UDP_S)
        } else {
            t.udp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hysteresis() {
        let mut p = Pressure::new(1024);
        assert_eq!(p.thresholds(), (128, 256));
        p.update(129);
        assert!(!p.is_on());
        p.update(127);
        assert!(p.is_on());
        // Stays on until a quarter is free.
        p.update(200);
        assert!(p.is_on());
        p.update(255);
        assert!(p.is_on());
        p.update(256);
        assert!(!p.is_on());
        p.update(200);
        assert!(!p.is_on(), "not on again above the lower threshold");
        p.update(0);
        assert!(p.is_on());
        assert_eq!(p.entered(), 2);
    }

    #[test]
    fn tiny_tables_enter_when_full() {
        let mut p = Pressure::new(3);
        assert_eq!(p.thresholds(), (1, 2));
        p.update(1);
        assert!(!p.is_on());
        p.update(0);
        assert!(p.is_on());
        p.update(1);
        assert!(p.is_on());
        p.update(2);
        assert!(!p.is_on());
    }

    #[test]
    fn short_timeouts_only_for_unconfirmed_and_under_pressure() {
        let t = Timeouts::default();
        let mut p = Pressure::new(100);
        assert_eq!(p.tcp_timeout(&t, TcpState::SynRecv), 60);
        assert_eq!(p.udp_timeout(&t, false), 300);
        p.update(0);
        assert_eq!(p.tcp_timeout(&t, TcpState::SynRecv), PRESSURE_HALF_OPEN_S);
        assert_eq!(p.tcp_timeout(&t, TcpState::SynAck), PRESSURE_HALF_OPEN_S);
        assert_eq!(p.tcp_timeout(&t, TcpState::None), 2, "already shorter");
        assert_eq!(p.tcp_timeout(&t, TcpState::Established), 900);
        assert_eq!(p.tcp_timeout(&t, TcpState::TimeWait), 120);
        assert_eq!(p.udp_timeout(&t, false), PRESSURE_UDP_S);
        assert_eq!(p.udp_timeout(&t, true), 300);
    }
}
