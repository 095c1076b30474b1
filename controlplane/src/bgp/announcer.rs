//! Which VIPs a director announces, as a sans-IO state machine: inputs are
//! the services' quorum, the dataplane's liveness, drains, reloads and
//! shutdown; outputs are announcements and withdrawals, each emitted once
//! per change.
//!
//! A VIP is announced while at least one of its services has quorum (the
//! live weight of its real servers reaches `quorum`, as keepalived's
//! `quorum_up`/`quorum_down` decide), every worker polls, and the director
//! is neither draining nor stopping. A graceful drain withdraws every VIP at
//! once and keeps forwarding: the routers send new flows elsewhere while
//! established ones finish here (the caller stops the process when they
//! have ended or the drain's timeout passed). After the BGP speaker
//! (re)starts, [`Input::SpeakerUp`] announces again what should be.

use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// The VIPs this director may announce (at start and on every reload):
    /// each with whether one of its services has quorum now.
    SetVips(Vec<(IpAddr, bool)>),
    /// A service of `vip` gained or lost quorum; `up` says whether the VIP
    /// has a service with quorum after the change.
    Quorum { vip: IpAddr, up: bool },
    /// Every worker polls (false: one stopped; see the heartbeat).
    Workers(bool),
    /// `ferrovsadm`/API drain: withdraw everything, keep forwarding.
    Drain,
    /// End of a drain: announce again what should be.
    Undrain,
    /// SIGTERM: withdraw everything before the process goes.
    Shutdown,
    /// The speaker (re)started and knows nothing we announced.
    SpeakerUp,
    /// A speaker adopted from the process before this one (an upgrade)
    /// announces exactly these: what is no longer wanted is withdrawn,
    /// what is missing announced, the rest left alone.
    Adopted(Vec<IpAddr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Announce(IpAddr),
    Withdraw(IpAddr),
}

#[derive(Clone, Copy, Debug, Default)]
struct Vip {
    quorum: bool,
    announced: bool,
}

#[derive(Debug)]
pub struct Announcer {
    vips: BTreeMap<IpAddr, Vip>,
    workers_alive: bool,
    draining: bool,
    stopping: bool,
}

impl Default for Announcer {
    fn default() -> Self {
        Announcer::new()
    }
}

impl Announcer {
    pub fn new() -> Announcer {
        Announcer {
            vips: BTreeMap::new(),
            workers_alive: true,
            draining: false,
            stopping: false,
        }
    }

    /// Whether `vip` is announced now.
    pub fn announced(&self, vip: &IpAddr) -> bool {
        self.vips.get(vip).is_some_and(|v| v.announced)
    }

    pub fn draining(&self) -> bool {
        self.draining
    }

    /// Applies one input and returns what to tell the speaker, in VIP order.
    pub fn handle(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::SetVips(list) => {
                let wanted: BTreeMap<IpAddr, bool> = list.into_iter().collect();
                self.vips.retain(|a, v| {
                    let keep = wanted.contains_key(a);
                    if !keep && v.announced {
                        out.push(Output::Withdraw(*a));
                    }
                    keep
                });
                for (a, quorum) in wanted {
                    self.vips.entry(a).or_default().quorum = quorum;
                }
            }
            Input::Quorum { vip, up } => {
                if let Some(v) = self.vips.get_mut(&vip) {
                    v.quorum = up;
                }
            }
            Input::Workers(alive) => self.workers_alive = alive,
            Input::Drain => self.draining = true,
            Input::Undrain => self.draining = false,
            Input::Shutdown => self.stopping = true,
            Input::SpeakerUp => {
                for v in self.vips.values_mut() {
                    v.announced = false;
                }
            }
            Input::Adopted(list) => {
                for (a, v) in self.vips.iter_mut() {
                    v.announced = list.contains(a);
                }
                for a in list {
                    // Not ours (any more): known, so that it is withdrawn.
                    self.vips.entry(a).or_insert(Vip {
                        quorum: false,
                        announced: true,
                    });
                }
            }
        }
        self.reconcile(&mut out);
        out
    }

    fn reconcile(&mut self, out: &mut Vec<Output>) {
        let allowed = self.workers_alive && !self.draining && !self.stopping;
        for (a, v) in self.vips.iter_mut() {
            let want = allowed && v.quorum;
            if want != v.announced {
                v.announced = want;
                out.push(if want {
                    Output::Announce(*a)
                } else {
                    Output::Withdraw(*a)
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Output::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn announces_what_has_quorum_and_follows_it() {
        let mut a = Announcer::new();
        let (v1, v2) = (ip("198.18.0.100"), ip("2001:db8::64"));
        assert_eq!(
            a.handle(Input::SetVips(vec![(v1, true), (v2, false)])),
            vec![Announce(v1)]
        );
        assert_eq!(
            a.handle(Input::Quorum { vip: v2, up: true }),
            vec![Announce(v2)]
        );
        assert_eq!(
            a.handle(Input::Quorum { vip: v2, up: true }),
            vec![],
            "no repeat"
        );
        assert_eq!(
            a.handle(Input::Quorum { vip: v1, up: false }),
            vec![Withdraw(v1)]
        );
        assert_eq!(
            a.handle(Input::Quorum {
                vip: ip("198.18.0.9"),
                up: true
            }),
            vec![],
            "not ours"
        );
    }

    #[test]
    fn workers_drain_and_shutdown_withdraw_everything() {
        let mut a = Announcer::new();
        let (v1, v2) = (ip("198.18.0.100"), ip("198.18.0.101"));
        a.handle(Input::SetVips(vec![(v1, true), (v2, true)]));
        assert_eq!(
            a.handle(Input::Workers(false)),
            vec![Withdraw(v1), Withdraw(v2)]
        );
        assert_eq!(
            a.handle(Input::Workers(true)),
            vec![Announce(v1), Announce(v2)]
        );
        assert_eq!(a.handle(Input::Drain), vec![Withdraw(v1), Withdraw(v2)]);
        assert!(a.draining());
        // Quorum changes while drained are remembered, not announced.
        assert_eq!(a.handle(Input::Quorum { vip: v2, up: false }), vec![]);
        assert_eq!(a.handle(Input::Undrain), vec![Announce(v1)]);
        assert_eq!(a.handle(Input::Shutdown), vec![Withdraw(v1)]);
        assert_eq!(
            a.handle(Input::Quorum { vip: v2, up: true }),
            vec![],
            "stopping"
        );
    }

    #[test]
    fn reload_withdraws_removed_vips_and_speaker_restart_reannounces() {
        let mut a = Announcer::new();
        let (v1, v2, v3) = (ip("198.18.0.100"), ip("198.18.0.101"), ip("198.18.0.102"));
        a.handle(Input::SetVips(vec![(v1, true), (v2, true)]));
        assert_eq!(
            a.handle(Input::SetVips(vec![(v2, true), (v3, true)])),
            vec![Withdraw(v1), Announce(v3)]
        );
        assert!(!a.announced(&v1) && a.announced(&v2));
        assert_eq!(a.handle(Input::SpeakerUp), vec![Announce(v2), Announce(v3)]);
    }

    #[test]
    fn an_adopted_speaker_keeps_what_is_wanted_and_loses_the_rest() {
        let mut a = Announcer::new();
        let (v1, v2, v3) = (ip("198.18.0.100"), ip("198.18.0.101"), ip("198.18.0.102"));
        // This process wants v1 and v2; the speaker it adopted announces
        // v1 (wanted: left alone) and v3 (removed by the upgrade's config).
        a.handle(Input::SetVips(vec![(v1, true), (v2, true)]));
        assert_eq!(
            a.handle(Input::Adopted(vec![v1, v3])),
            vec![Announce(v2), Withdraw(v3)]
        );
        assert!(a.announced(&v1) && a.announced(&v2) && !a.announced(&v3));
        // The next configuration forgets v3 without a second withdrawal.
        assert_eq!(
            a.handle(Input::SetVips(vec![(v1, true), (v2, true)])),
            vec![]
        );
        // Adopted while draining: everything the speaker has goes.
        a.handle(Input::Drain);
        assert_eq!(a.handle(Input::Adopted(vec![v1])), vec![Withdraw(v1)]);
    }
}
