//! When a graceful drain ends the process, as a sans-IO state machine:
//! inputs carry the time (milliseconds on any monotonic clock) and the
//! number of connections the drain waits for; the output says whether the
//! process should stop now. The withdrawals themselves are the
//! announcer's ([`super::announcer`]); this only decides when to stop.
//!
//! A drain that may stop (`ferrovsadm --drain --stop-after S`, or SIGTERM
//! with `drain_timeout S`) stops at the first of: no connection left, no
//! packet forwarded for [`QUIET_MS`], S seconds after it began; but never
//! before [`MIN_DRAIN_MS`]: see there. A plain `--drain` never stops the
//! process.
//!
//! Why the quiet rule beside the count: behind ECMP, once the routers
//! have moved, this director receives nothing more, not even the end of
//! the flows it carried (their packets reach the other directors, which
//! take them over). Its table keeps those entries ESTABLISHED until their
//! timeout (15 minutes for TCP), so the count alone would hold the process
//! to the deadline while it serves no one.
//! A SIGTERM while draining stops at once: the administrator (or systemd,
//! or a second Ctrl-C) has said it will not wait.

/// The least time between the withdrawal and a stop, even with no
/// connection left. The withdrawal has to reach the routers and they have
/// to move their next hops (ExaBGP sends the UPDATE within milliseconds;
/// FRR reprograms its ECMP group in 0.2-0.4 s in tests/e2e_ecmp.sh):
/// until then new flows still arrive here, and a director that stopped at
/// the first moment it held no connection would lose them. Two seconds
/// leave a margin over what we measured without making maintenance wait.
pub const MIN_DRAIN_MS: u64 = 2_000;

/// How long without a forwarded packet means no one is served here any
/// more. An established flow that still reaches this director (a router
/// that has not moved, a path this one alone has) shows traffic well
/// within it, as TCP keepalives and applications' own ones do not, so a
/// truly idle flow may be cut: the deadline cannot help that either, and
/// five seconds after the routers moved nothing else comes here.
pub const QUIET_MS: u64 = 5_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// A drain begins (or is asked again): `stop_after` seconds, or never
    /// stop. Asked again while draining, the new `stop_after` replaces the
    /// old one (from `now`); the drain's beginning stays.
    Start { stop_after: Option<u64>, now: u64 },
    /// The periodic look at the connections: how many the drain waits for
    /// and the services' packet counter (any monotonic count; only its
    /// changes matter).
    Tick {
        now: u64,
        active_conns: u64,
        forwarded: u64,
    },
    /// `--undrain`: no stop is pending any more.
    Cancel,
    /// SIGTERM or SIGINT. Draining: stop at once. Not draining: drain first
    /// for `drain_timeout` seconds if that is set and not 0, else stop now.
    Terminate { now: u64, drain_timeout: u64 },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Phase {
    #[default]
    Serving,
    Draining {
        since: u64,
        /// When the process stops whatever the connections; None: never.
        deadline: Option<u64>,
        /// When a packet was last seen forwarded (the drain's beginning
        /// at first).
        traffic_at: u64,
    },
    Stopping,
}

/// What `ferrovsadm -L --bgp` and the status JSON show of a drain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DrainStatus {
    pub draining: bool,
    /// Milliseconds since the drain began.
    pub draining_for_ms: Option<u64>,
    /// Milliseconds until the process stops whatever the connections;
    /// None: the drain does not stop the process.
    pub stops_in_ms: Option<u64>,
    /// Whether the process stops when the last connection ends.
    pub stops_when_idle: bool,
    /// The connections the drain waits for, at the last look.
    pub connections: u64,
    /// Milliseconds since a packet was last forwarded.
    pub quiet_for_ms: Option<u64>,
    pub stopping: bool,
}

#[derive(Debug, Default)]
pub struct Drain {
    phase: Phase,
    conns: u64,
    /// The packet counter at the last look.
    forwarded: Option<u64>,
}

impl Drain {
    pub fn new() -> Drain {
        Drain::default()
    }

    pub fn draining(&self) -> bool {
        matches!(self.phase, Phase::Draining { .. })
    }

    /// Applies one input; true: stop the process now (and from then on).
    pub fn handle(&mut self, input: Input) -> bool {
        match input {
            Input::Start { stop_after, now } => {
                let (since, traffic_at) = match self.phase {
                    Phase::Draining {
                        since, traffic_at, ..
                    } => (since, traffic_at),
                    Phase::Serving => (now, now),
                    Phase::Stopping => return true,
                };
                self.phase = Phase::Draining {
                    since,
                    deadline: stop_after.map(|s| now.saturating_add(s.saturating_mul(1000))),
                    traffic_at,
                };
                false
            }
            Input::Tick {
                now,
                active_conns,
                forwarded,
            } => {
                self.conns = active_conns;
                let moved = self.forwarded.is_some_and(|f| f != forwarded);
                self.forwarded = Some(forwarded);
                if let Phase::Draining {
                    since,
                    deadline,
                    ref mut traffic_at,
                } = self.phase
                {
                    if moved {
                        *traffic_at = now;
                    }
                    let quiet = now >= traffic_at.saturating_add(QUIET_MS);
                    let settled = now >= since.saturating_add(MIN_DRAIN_MS);
                    if let Some(deadline) = deadline {
                        if settled && (active_conns == 0 || quiet || now >= deadline) {
                            self.phase = Phase::Stopping;
                        }
                    }
                }
                self.phase == Phase::Stopping
            }
            Input::Cancel => {
                if self.draining() {
                    self.phase = Phase::Serving;
                }
                self.phase == Phase::Stopping
            }
            Input::Terminate { now, drain_timeout } => {
                if self.phase == Phase::Serving && drain_timeout > 0 {
                    self.phase = Phase::Draining {
                        since: now,
                        deadline: Some(now.saturating_add(drain_timeout.saturating_mul(1000))),
                        traffic_at: now,
                    };
                } else {
                    self.phase = Phase::Stopping;
                }
                self.phase == Phase::Stopping
            }
        }
    }

    pub fn status(&self, now: u64) -> DrainStatus {
        match self.phase {
            Phase::Serving => DrainStatus::default(),
            Phase::Draining {
                since,
                deadline,
                traffic_at,
            } => DrainStatus {
                draining: true,
                draining_for_ms: Some(now.saturating_sub(since)),
                // The minimum holds a deadline shorter than it back too.
                stops_in_ms: deadline.map(|d| {
                    d.max(since.saturating_add(MIN_DRAIN_MS))
                        .saturating_sub(now)
                }),
                stops_when_idle: deadline.is_some(),
                connections: self.conns,
                quiet_for_ms: Some(now.saturating_sub(traffic_at)),
                stopping: false,
            },
            Phase::Stopping => DrainStatus {
                stopping: true,
                connections: self.conns,
                ..DrainStatus::default()
            },
        }
    }
}

impl DrainStatus {
    /// One line for `ferrovsadm -L --bgp`, or None when not draining.
    pub fn render(&self) -> Option<String> {
        if self.stopping {
            return Some("stopping".into());
        }
        if !self.draining {
            return None;
        }
        let since = self.draining_for_ms.unwrap_or(0) / 1000;
        Some(match self.stops_in_ms {
            Some(ms) => format!(
                "draining for {since} s, stops in {} s, or when the last of {} connections ends, or after {} s without traffic (quiet for {} s)",
                ms.div_ceil(1000),
                self.connections,
                QUIET_MS / 1000,
                self.quiet_for_ms.unwrap_or(0) / 1000
            ),
            None => format!(
                "draining for {since} s ({} connections), the process keeps running",
                self.connections
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A look with traffic since the last one (the counter is the time).
    fn tick(d: &mut Drain, now: u64, active_conns: u64) -> bool {
        d.handle(Input::Tick {
            now,
            active_conns,
            forwarded: now,
        })
    }

    /// A look with no packet forwarded since the last one.
    fn quiet_tick(d: &mut Drain, now: u64, active_conns: u64) -> bool {
        d.handle(Input::Tick {
            now,
            active_conns,
            forwarded: 0,
        })
    }

    #[test]
    fn stops_when_the_connections_end_but_not_before_the_minimum() {
        let mut d = Drain::new();
        assert!(!d.handle(Input::Start {
            stop_after: Some(60),
            now: 10_000
        }));
        assert!(d.draining());
        assert!(!tick(&mut d, 10_200, 5));
        // None left, but the routers may not have moved yet.
        assert!(!tick(&mut d, 10_400, 0));
        assert!(!tick(&mut d, 10_000 + MIN_DRAIN_MS - 1, 0));
        assert!(tick(&mut d, 10_000 + MIN_DRAIN_MS, 0));
        assert!(d.status(12_000).stopping);
        assert!(tick(&mut d, 13_000, 3), "a stop is not taken back");
    }

    #[test]
    fn stops_at_the_deadline_with_connections_left() {
        let mut d = Drain::new();
        d.handle(Input::Start {
            stop_after: Some(30),
            now: 0,
        });
        for now in (0..30_000).step_by(200) {
            assert!(!tick(&mut d, now, 7), "{now}");
        }
        let st = d.status(29_000);
        assert_eq!(st.stops_in_ms, Some(1_000));
        assert_eq!(st.connections, 7);
        assert_eq!(
            st.render().unwrap(),
            "draining for 29 s, stops in 1 s, or when the last of 7 connections ends, or after 5 s without traffic (quiet for 0 s)"
        );
        assert!(tick(&mut d, 30_000, 7));
    }

    #[test]
    fn stops_when_no_packet_came_for_a_while() {
        // Behind ECMP a withdrawn director hears nothing more, and its
        // table keeps the flows it carried until their timeout.
        let mut d = Drain::new();
        assert!(!quiet_tick(&mut d, 0, 0));
        d.handle(Input::Start {
            stop_after: Some(600),
            now: 1_000,
        });
        assert!(!tick(&mut d, 1_200, 40));
        assert!(
            !quiet_tick(&mut d, 2_000, 40),
            "a packet since the last look"
        );
        assert!(!quiet_tick(&mut d, 2_000 + QUIET_MS - 1, 40));
        assert_eq!(d.status(6_000).quiet_for_ms, Some(4_000));
        assert!(quiet_tick(&mut d, 2_000 + QUIET_MS, 40));
    }

    #[test]
    fn a_zero_stop_after_still_waits_the_minimum() {
        let mut d = Drain::new();
        d.handle(Input::Start {
            stop_after: Some(0),
            now: 0,
        });
        assert_eq!(d.status(0).stops_in_ms, Some(MIN_DRAIN_MS));
        assert!(!tick(&mut d, 1, 9));
        assert!(tick(&mut d, MIN_DRAIN_MS, 9));
    }

    #[test]
    fn cancel_keeps_the_process() {
        let mut d = Drain::new();
        d.handle(Input::Start {
            stop_after: Some(5),
            now: 0,
        });
        assert!(!d.handle(Input::Cancel));
        assert!(!d.draining());
        assert_eq!(d.status(1), DrainStatus::default());
        assert!(!tick(&mut d, 100_000, 0));
        // A new drain counts from its own beginning.
        d.handle(Input::Start {
            stop_after: Some(5),
            now: 200_000,
        });
        assert!(!tick(&mut d, 200_000 + MIN_DRAIN_MS - 1, 0));
        assert!(tick(&mut d, 200_000 + MIN_DRAIN_MS, 0));
    }

    #[test]
    fn a_plain_drain_never_stops_the_process() {
        let mut d = Drain::new();
        d.handle(Input::Start {
            stop_after: None,
            now: 0,
        });
        assert!(!tick(&mut d, 10 * MIN_DRAIN_MS, 0));
        assert!(!quiet_tick(&mut d, 10 * QUIET_MS, 0));
        assert!(!quiet_tick(&mut d, u64::MAX, 0));
        let st = d.status(4_000);
        assert!(st.draining && st.stops_in_ms.is_none() && !st.stops_when_idle);
        // Asked again with a stop: it stops, counted from the first drain.
        d.handle(Input::Start {
            stop_after: Some(60),
            now: 5_000,
        });
        assert_eq!(d.status(5_000).draining_for_ms, Some(5_000));
        assert!(tick(&mut d, 5_000, 0));
    }

    #[test]
    fn sigterm_drains_with_a_timeout_and_a_second_one_stops_at_once() {
        let mut d = Drain::new();
        assert!(!d.handle(Input::Terminate {
            now: 0,
            drain_timeout: 20
        }));
        assert!(d.draining());
        assert_eq!(d.status(0).stops_in_ms, Some(20_000));
        assert!(!tick(&mut d, 3_000, 4));
        assert!(d.handle(Input::Terminate {
            now: 3_100,
            drain_timeout: 20
        }));
        assert!(d.status(3_100).stopping);
    }

    #[test]
    fn sigterm_without_drain_timeout_or_while_draining_stops_at_once() {
        let mut d = Drain::new();
        assert!(d.handle(Input::Terminate {
            now: 0,
            drain_timeout: 0
        }));
        // A plain `--drain`, then SIGTERM: no second drain.
        let mut d = Drain::new();
        d.handle(Input::Start {
            stop_after: None,
            now: 0,
        });
        assert!(d.handle(Input::Terminate {
            now: 1,
            drain_timeout: 30
        }));
        // Nothing brings a stopping process back.
        assert!(d.handle(Input::Cancel));
        assert!(d.handle(Input::Start {
            stop_after: None,
            now: 2
        }));
    }
}
